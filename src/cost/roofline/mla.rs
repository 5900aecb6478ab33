//! Multi-head latent attention (DeepSeek-V2/V3) as vLLM 0.33 runs it
//! (`vllm/model_executor/layers/attention/mla_attention.py`, `MLAAttention.forward_impl`;
//! the projections of `vllm/model_executor/models/deepseek_v2.py`,
//! `DeepseekV2MLAAttention`). Requests with one new token take the absorbed,
//! data-movement friendly path (`forward_mqa`), the others the compute-friendly one
//! (`MLACommonBaseImpl.forward_mha`): the metadata builder splits the batch at
//! `reorder_batch_threshold`, 1 without speculative decoding
//! (`MLACommonMetadataBuilder.build`, `split_decodes_and_prefills`), which is kvsim's own
//! split of a step into decodes and prefill chunks. Formulas in `docs/cost-model.md`.

use super::{AttentionWork, PrefillSpan, Roofline};
use crate::cost::{BatchShape, SeqWork};
use crate::model::{LayerAttention, Mla};

/// New tokens and cached context of these prefill chunks.
fn totals(prefills: &[SeqWork]) -> (f64, f64) {
    prefills.iter().fold((0.0, 0.0), |(new, rows), s| {
        (new + s.new_tokens as f64, rows + s.context as f64)
    })
}

impl Roofline {
    fn mla(&self) -> Option<Mla> {
        self.model.arch.mla
    }

    /// MLA's projections of one GPU's shard, (input width, output width): the two every
    /// token runs (`fused_qkv_a_proj`, replicated, `hidden -> q_lora_rank + kv_lora_rank +
    /// qk_rope_head_dim`, then `q_b_proj`, `q_lora_rank -> heads (nope + rope)`; without a
    /// query rank `q_proj`, `hidden -> heads (nope + rope)`, and the replicated
    /// `kv_a_proj_with_mqa`), `kv_b_proj` (`kv_lora_rank -> heads (nope + v)`, prefill
    /// rows only) and `o_proj` (`heads v -> hidden`), with the shard's heads (column- and
    /// row-parallel, as vLLM splits them). The same shapes as
    /// [`crate::model::Model::attention_params`]. `None` without MLA.
    pub fn mla_gemms(&self) -> Option<[(u64, u64); 4]> {
        self.mla_gemms
    }

    /// Launches in which MLA's prefill gathers and up-projects `rows` cached context rows:
    /// `ceil(rows / workspace)`, the workspace `min(8 max_position, 64 Ki)` rows
    /// (`determine_chunked_prefill_workspace_size`, whose other term only matters below
    /// a 2,048-token context).
    pub fn mla_context_chunks(&self, rows: f64) -> f64 {
        (rows / self.mla_workspace).ceil()
    }

    /// One layer's MLA projections for this batch of `tokens` tokens: the two
    /// [`Roofline::mla_gemms`] every token runs and `o_proj`, `kv_b_proj` for the prefill
    /// chunks ([`Roofline::mla_up_projection_ns`]) and the absorbed batched GEMMs for the
    /// decodes ([`Roofline::mla_absorbed_ns`]).
    pub fn mla_linear_ns(&self, batch: &BatchShape, tokens: f64) -> f64 {
        let Some([a, b, _, o]) = self.mla_gemms else {
            return 0.0;
        };
        let gemm = |(k, n): (u64, u64)| self.gemm_ns(tokens, k, n);
        let mut ns = gemm(a) + gemm(b) + gemm(o) + self.mla_up_projection_ns(&batch.prefills);
        if !batch.decodes.is_empty() {
            ns += self.mla_absorbed_ns(batch.decodes.len() as f64);
        }
        ns
    }

    /// `kv_b_proj` of one layer for these prefill chunks: one GEMM over their new tokens'
    /// latents (`forward_mha`), and one per [`Roofline::mla_context_chunks`] launch over
    /// an equal share of their cached context's latents, gathered from the cache
    /// (`_compute_prefill_context`): keys and values are up-projected for every context
    /// token of every chunk, in every step.
    pub fn mla_up_projection_ns(&self, prefills: &[SeqWork]) -> f64 {
        let Some([_, _, (k, n), _]) = self.mla_gemms else {
            return 0.0;
        };
        let (new, rows) = totals(prefills);
        if new == 0.0 {
            return 0.0;
        }
        let mut ns = self.gemm_ns(new, k, n);
        if rows > 0.0 {
            let chunks = self.mla_context_chunks(rows);
            ns += chunks * self.gemm_ns(rows / chunks, k, n);
        }
        ns
    }

    /// The absorbed path's two batched GEMMs for `decodes` decodes, each one `torch.bmm`
    /// over the shard's `H` heads: `q_nope` (`nope` wide) times `W_UK` into latent queries
    /// (`kv_lora_rank`), and the latent outputs times `W_UV` into values (`v`) before
    /// `o_proj`. FLOPs `2 D H k n`, bytes `(H k n + D H (k + n))` at the compute dtype
    /// (vLLM dequantizes `W_UK_T` and `W_UV` to it, `process_weights_after_loading`).
    pub fn mla_absorbed_ns(&self, decodes: f64) -> f64 {
        let Some(a) = self.mla() else {
            return 0.0;
        };
        let heads = self.model.heads as f64;
        let act = self.model.compute_bytes() as f64;
        let bmm = |k: f64, n: f64| {
            let bytes = (heads * k * n + decodes * heads * (k + n)) * act;
            self.gemm_kernel_ns(2.0 * decodes * heads * k * n, bytes)
        };
        let kl = a.kv_lora_rank as f64;
        bmm(a.qk_nope_head_dim as f64, kl) + bmm(kl, a.v_head_dim as f64)
    }

    /// The FLOPs and bytes of one layer of `kind` of MLA decode attention (the absorbed
    /// path, `forward_mqa`, FlashMLA on Hopper): every local head's latent query
    /// (`kv_lora_rank + qk_rope_head_dim` wide) against the cached latents, one "KV head"
    /// all heads share (MQA), the first `kv_lora_rank` elements as values. Per head and
    /// key `2 (kv_lora_rank + rope) + 2 kv_lora_rank` FLOPs; per key its latent at the KV
    /// dtype, read once per sequence; per sequence its latent queries read and latent
    /// outputs written.
    pub fn mla_decode_work(&self, kind: LayerAttention, decodes: &[SeqWork]) -> AttentionWork {
        let Some(a) = self.mla() else {
            return AttentionWork::default();
        };
        let heads = self.model.heads as f64;
        let act = self.model.compute_bytes() as f64;
        let kl = a.kv_lora_rank as f64;
        let latent = (a.kv_lora_rank + a.qk_rope_head_dim) as f64;
        let per_key = heads * (2.0 * latent + 2.0 * kl);
        let kv_tok = self.model.kv_bytes_per_token_layer() as f64;
        let io = heads * (latent + kl) * act;
        let (mut flops, mut bytes) = (0.0, 0.0);
        for s in decodes {
            let keys = Self::decode_keys(kind, s.context);
            flops += per_key * keys;
            bytes += keys * kv_tok + io;
        }
        AttentionWork { flops, bytes }
    }

    /// One layer of `kind` of MLA prefill attention (the compute-friendly path,
    /// `forward_mha`): keys and values up-projected per head (query/key head dim
    /// `nope + rope`, value head dim `v`), the chunks against themselves in one causal
    /// kernel, then against their cached context in [`Roofline::mla_context_chunks`]
    /// non-causal kernels, the pairs and tiles of [`Roofline::prefill_span`] at
    /// `2 H (nope + rope + v)` FLOPs each. Bytes: the up-projected keys and values in the
    /// compute dtype, the queries and outputs; plus the element-wise kernels of
    /// [`Roofline::mla_prefill_elementwise_ns`].
    pub fn mla_prefill_layer_ns(&self, kind: LayerAttention, prefills: &[SeqWork]) -> f64 {
        let Some(a) = self.mla() else {
            return 0.0;
        };
        let heads = self.model.heads as f64;
        let act = self.model.compute_bytes() as f64;
        let width = (a.qk_nope_head_dim + a.qk_rope_head_dim + a.v_head_dim) as f64;
        let pair = 2.0 * heads * width;
        // Per token: its up-projected key and value, or its query and output.
        let io = heads * width * act;
        let mut span = PrefillSpan::default();
        for s in prefills {
            span.add(self.prefill_span(kind, *s));
        }
        let (new, rows) = totals(prefills);
        let suffix = self.prefill_kernel_ns(0.0, pair * span.causal, 2.0 * new * io);
        let elementwise = self.mla_prefill_elementwise_ns(new, rows);
        if rows == 0.0 {
            return suffix + elementwise;
        }
        let extra_launches = self.mla_context_chunks(rows) - 1.0;
        let context_keys = span.keys - new;
        let context = extra_launches * self.eff.prefill_attention_floor_us * 1e3
            + self.prefill_kernel_ns(pair * span.full, 0.0, (context_keys + new) * io);
        suffix + context + elementwise
    }

    /// MLA prefill's element-wise kernels in one layer for `new` new tokens after `rows`
    /// cached context rows (with `elementwise_kernels`): the new keys assembled from their
    /// up-projected `nope` part and the shared rope part (`_concat_k_nope_k_pe`: read
    /// `H nope + rope`, write `H (nope + rope)`); with context, per
    /// [`Roofline::mla_context_chunks`] launch the gather of the latents from the cache
    /// into the workspace (`gather_and_maybe_dequant_cache`: read at the KV dtype, write at
    /// the compute dtype) and the same assembly, then one merge of the two partial outputs
    /// (`merge_attn_states`: two read, one written, `H v` each).
    pub fn mla_prefill_elementwise_ns(&self, new: f64, rows: f64) -> f64 {
        let Some(a) = self.mla() else {
            return 0.0;
        };
        if !self.eff.elementwise_kernels || new == 0.0 {
            return 0.0;
        }
        let heads = self.model.heads as f64;
        let act = self.model.compute_bytes() as f64;
        let (nope, rope) = (a.qk_nope_head_dim as f64, a.qk_rope_head_dim as f64);
        let concat = |t: f64| t * (heads * nope + rope + heads * (nope + rope)) * act;
        let mut ns = self.elementwise_kernel_ns(concat(new));
        if rows > 0.0 {
            let chunks = self.mla_context_chunks(rows);
            let latent = (a.kv_lora_rank + a.qk_rope_head_dim) as f64;
            let gather = rows * latent * (self.model.kv_dtype_bytes as f64 + act);
            ns += chunks
                * (self.elementwise_kernel_ns(gather / chunks)
                    + self.elementwise_kernel_ns(concat(rows) / chunks));
            ns += self.elementwise_kernel_ns(3.0 * new * heads * a.v_head_dim as f64 * act);
        }
        ns
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hardware::Gpu;
    use crate::model::Model;
    use crate::scenario::Efficiency;

    /// DeepSeek-V3's shard at tensor parallelism `tp` on an H100 (989 TFLOP/s, 3.35 TB/s).
    fn deepseek(tp: u32, eff: &Efficiency) -> Roofline {
        let model = Model::preset("deepseek-v3").unwrap().shard(tp, 1).unwrap();
        Roofline::new(&model, &Gpu::preset("h100-sxm").unwrap(), eff, 0.0, 0.0)
    }

    fn close(got: f64, want: f64) {
        assert!((got - want).abs() < 1e-9 * want, "{got} vs {want}");
    }

    /// A GEMM-class kernel by hand with the default efficiencies, untiled: the 5.4 us
    /// floor plus `sqrt(C^2 + M^2)` at 0.77 of peak FLOP/s and 0.94 of HBM bandwidth.
    fn gemm_by_hand(flops: f64, bytes: f64) -> f64 {
        let c = flops / (989e12 * 0.77);
        let m = bytes / (3350e9 * 0.94);
        5400.0 + (c * c + m * m).sqrt() * 1e9
    }

    /// The default efficiencies with dense GEMMs priced by their FLOPs (no tiles), as the
    /// batched MLA products always are.
    fn untiled() -> Efficiency {
        Efficiency {
            gemm_tiles: false,
            ..Efficiency::default()
        }
    }

    #[test]
    fn the_projections_have_the_weights_shapes_split_over_tp_as_vllm_does() {
        // hidden 7168; q_lora_rank 1536, kv_lora_rank 512, rope 64, nope 128, v 128.
        let r = deepseek(1, &Efficiency::default());
        let gemms = r.mla_gemms().unwrap();
        assert_eq!(
            gemms,
            [
                (7168, 1536 + 512 + 64),
                (1536, 128 * 192),
                (512, 128 * 256),
                (128 * 128, 7168)
            ]
        );
        // The same weights the model counts, but the two RMSNorms on the ranks.
        let weights: u64 = gemms.iter().map(|(k, n)| k * n).sum();
        let model = Model::preset("deepseek-v3").unwrap();
        assert_eq!(weights, model.attention_params() - 1536 - 512);
        // TP 8: 16 heads per GPU; the fused down-projection stays whole (replicated).
        let tp8 = deepseek(8, &Efficiency::default()).mla_gemms().unwrap();
        assert_eq!(
            tp8,
            [
                (7168, 2112),
                (1536, 16 * 192),
                (512, 16 * 256),
                (16 * 128, 7168)
            ]
        );
    }

    #[test]
    fn mla_decode_reads_each_latent_once_for_all_heads() {
        // 4 decodes of context 999 (1,000 keys with the new one) at TP 1: 128 heads.
        let eff = Efficiency::default();
        let r = deepseek(1, &eff);
        let decodes = [SeqWork {
            new_tokens: 1,
            context: 999,
        }; 4];
        let work = r.decode_attention_work(LayerAttention::Full, &decodes);
        // KV: 576 latent elements of 2 bytes (bf16 cache) per key, once per sequence;
        // queries 128 x 576 and outputs 128 x 512 in bf16.
        let bytes = 4.0 * 1000.0 * 576.0 * 2.0 + 4.0 * 128.0 * (576.0 + 512.0) * 2.0;
        // Per head and key: 2 x 576 for the scores, 2 x 512 for the values.
        let flops = 4.0 * 1000.0 * 128.0 * (2.0 * 576.0 + 2.0 * 512.0);
        assert_eq!(work.bytes, bytes);
        assert_eq!(work.flops, flops);
        // Compute bound at 128 heads: 2.5 us of FLOPs against 1.9 us of bytes.
        let ns = 16_000.0 + (flops / (989e12 * 0.45)).max(bytes / (3350e9 * 0.9)) * 1e9;
        close(r.decode_layer_ns(&decodes), ns);
        // The latent is the same on every rank: TP 8 reads the same KV for 16 heads.
        let tp8 = deepseek(8, &eff).decode_attention_work(LayerAttention::Full, &decodes);
        assert_eq!(
            tp8.bytes,
            4.0 * 1000.0 * 576.0 * 2.0 + 4.0 * 16.0 * 1088.0 * 2.0
        );
    }

    #[test]
    fn mla_decode_multiplies_by_w_uk_and_w_uv_in_two_batched_gemms() {
        // 8 decodes, 128 heads: q_nope (128) x W_UK (128 x 512) and the latent output
        // (512) x W_UV (512 x 128), both 2 x 8 x 128 x 128 x 512 FLOPs and bf16 weights.
        let r = deepseek(1, &Efficiency::default());
        assert_eq!(
            r.mla_absorbed_ns(8.0),
            deepseek(1, &untiled()).mla_absorbed_ns(8.0)
        );
        let flops = 2.0 * 8.0 * 128.0 * 128.0 * 512.0;
        let bytes = (128.0 * 128.0 * 512.0 + 8.0 * 128.0 * (128.0 + 512.0)) * 2.0;
        close(r.mla_absorbed_ns(8.0), 2.0 * gemm_by_hand(flops, bytes));
        // A decode step's projections: the two down/up ones, o_proj, the batched GEMMs.
        let batch = BatchShape {
            decodes: vec![
                SeqWork {
                    new_tokens: 1,
                    context: 100
                };
                8
            ],
            ..BatchShape::default()
        };
        let want = r.gemm_ns(8.0, 7168, 2112)
            + r.gemm_ns(8.0, 1536, 24576)
            + r.gemm_ns(8.0, 16384, 7168)
            + r.mla_absorbed_ns(8.0);
        close(r.mla_linear_ns(&batch, 8.0), want);
    }

    #[test]
    fn mla_prefill_up_projects_the_new_tokens_and_the_whole_context() {
        // kv_b_proj, 512 -> 128 x 256, fp8 weights (1 byte): FLOPs 2 t 512 32768, bytes
        // 512 x 32768 + t (512 + 32768).
        let r = deepseek(1, &untiled());
        let kv_b = |t: f64| gemm_by_hand(2.0 * t * 512.0 * 32768.0, 512.0 * 32768.0 + t * 33280.0);
        let chunk = |context| SeqWork {
            new_tokens: 1000,
            context,
        };
        close(
            r.mla_up_projection_ns(&[chunk(3000)]),
            kv_b(1000.0) + kv_b(3000.0),
        );
        // 100,000 cached tokens exceed the 64 Ki-row workspace: two launches of 50,000.
        assert_eq!(r.mla_context_chunks(100_000.0), 2.0);
        close(
            r.mla_up_projection_ns(&[chunk(100_000)]),
            kv_b(1000.0) + 2.0 * kv_b(50_000.0),
        );
        assert_eq!(r.mla_up_projection_ns(&[]), 0.0);
    }

    #[test]
    fn mla_prefill_attends_to_itself_causally_then_to_the_up_projected_context() {
        // 256 new tokens after 1,000 cached, 128 heads, query/key head dim 192, value 128:
        // 2 x 128 x (192 + 128) FLOPs per pair; per token 128 x 320 x 2 bytes of key and
        // value (or query and output). The chunk against itself: 2 tiles, 3 squares of
        // 128; against its context 256 x 1,000 pairs in full tiles.
        let eff = Efficiency::default();
        let r = deepseek(1, &eff);
        let pair = 2.0 * 128.0 * 320.0;
        let io = 128.0 * 320.0 * 2.0;
        let kernel = |flops: f64, at: f64, bytes: f64| {
            21_000.0 + (flops / (989e12 * at)).max(bytes / (3350e9 * 0.9)) * 1e9
        };
        let suffix = kernel(pair * 3.0 * 128.0 * 128.0, 0.19, 2.0 * 256.0 * io);
        let context = kernel(pair * 256.0 * 1000.0, 0.45, (1000.0 + 256.0) * io);
        // Element-wise: keys assembled (read 128 x 128 + 64, write 128 x 192, bf16) for the
        // new tokens and the context, the context's latents gathered (576, read and
        // written at 2 bytes), the partial outputs merged (3 x 128 x 128 x 2 per token).
        let k = |bytes: f64| 2000.0 + bytes / (3350e9 * 0.5) * 1e9;
        let concat = (128.0 * 128.0 + 64.0 + 128.0 * 192.0) * 2.0;
        let elementwise = k(256.0 * concat)
            + k(1000.0 * 576.0 * 4.0)
            + k(1000.0 * concat)
            + k(3.0 * 256.0 * 128.0 * 128.0 * 2.0);
        let chunk = |context| SeqWork {
            new_tokens: 256,
            context,
        };
        close(
            r.prefill_layer_ns(&[chunk(1000)]),
            suffix + context + elementwise,
        );
        // Without a cached context: the causal kernel and the new keys' assembly only.
        close(r.prefill_layer_ns(&[chunk(0)]), suffix + k(256.0 * concat));
    }
}
