//! Linear attention (Qwen3-Next's Gated DeltaNet) as vLLM 0.33 runs it
//! (`vllm/model_executor/layers/mamba/qwen_gdn_linear_attn.py`): per layer the projections
//! `in_proj_qkvz` (queries, keys, values and the output gate), `in_proj_ba` (the beta and
//! alpha gates) and `out_proj`, then, instead of attention over cached keys, a recurrent
//! state per request: prefill chunks run the chunked delta rule (flash-linear-attention's
//! `chunk_gated_delta_rule`, the FlashInfer GDN prefill on Hopper), decodes one recurrent
//! step (`fused_recurrent_gated_delta_rule`). Both read and write each request's state
//! (convolution and recurrent matrices) once per layer and step. There are no
//! attention scores. Formulas in `docs/cost-model.md`, "Linear attention".

use super::Roofline;
use crate::cost::SeqWork;
use crate::model::LinearAttention;

/// Tokens per chunk of the chunked delta rule (flash-linear-attention's
/// `chunk_gated_delta_rule`, `BT = 64`): the width of the intra-chunk matrices.
pub const DELTA_RULE_CHUNK: f64 = 64.0;

/// FLOPs per token and value head of the chunked delta rule with chunks of `c` tokens,
/// keys of `dk` and values of `dv` (2 per multiply-add). Per chunk and head the algorithm
/// (Yang, Kautz and Hatamizadeh, "Gated Delta Networks", ICLR 2025, section 3.3, with the
/// WY representation of Yang et al., "Parallelizing Linear Transformers with the Delta
/// Rule over Sequence Length", NeurIPS 2024) forms `K K^T` and `Q K^T` (`c^2 dk` each),
/// solves the triangular `c x c` system (`c^3 / 3`), builds `W = A K` (`c^2 dk`) and
/// `U = A V` (`c^2 dv`), applies the state to the new values (`V - W S`, `c dk dv`) and
/// the queries (`Q S`, `c dk dv`), the masked intra-chunk product (`(Q K^T) V`,
/// `c^2 dv`), and updates the state (`S + K^T V`, `c dk dv`). Per token:
/// `2 (3 dk dv + c (3 dk + 2 dv) + c^2 / 3)`; with `dk = dv = 128` and `c = 64` about
/// `11.2 dk dv`.
pub fn chunk_flops_per_token(c: f64, dk: f64, dv: f64) -> f64 {
    2.0 * (3.0 * dk * dv + c * (3.0 * dk + 2.0 * dv) + c * c / 3.0)
}

/// FLOPs per token and value head of one recurrent step (decode): the state decayed,
/// read against the key, updated by the rank-one delta and read by the query, four
/// `dk x dv` passes of one multiply-add each: `8 dk dv`.
pub fn recurrent_flops_per_token(dk: f64, dv: f64) -> f64 {
    8.0 * dk * dv
}

impl Roofline {
    /// The shard's linear attention, if any.
    fn linear(&self) -> Option<LinearAttention> {
        self.model.arch.linear_attention
    }

    /// Bytes of one request's state in one linear-attention layer of this GPU's shard.
    fn state_bytes(&self) -> f64 {
        let (conv, ssm) = self.model.linear_state_bytes_per_layer();
        (conv + ssm) as f64
    }

    /// Activation bytes per token a linear-attention kernel reads and writes: the
    /// convolved queries, keys and values in, the output out.
    fn linear_token_bytes(&self, l: &LinearAttention) -> f64 {
        let b = self.model.compute_bytes() as f64;
        (l.conv_dim() + l.value_heads as u64 * l.value_head_dim as u64) as f64 * b
    }

    /// The projections of one linear-attention layer over `tokens` tokens, in place of the
    /// attention layer's QKV and O: `in_proj_qkvz` (`hidden -> 2 key + 2 value`),
    /// `in_proj_ba` (`hidden -> 2 value_heads`) and `out_proj` (`value -> hidden`), each a
    /// GEMM of the shard's heads. 0 without linear attention.
    pub fn linear_attention_gemms_ns(&self, tokens: f64) -> f64 {
        let Some(l) = self.linear() else {
            return 0.0;
        };
        let h = self.model.hidden as u64;
        let (k, v) = (
            l.key_heads as u64 * l.key_head_dim as u64,
            l.value_heads as u64 * l.value_head_dim as u64,
        );
        self.gemm_ns(tokens, h, 2 * k + 2 * v)
            + self.gemm_ns(tokens, h, 2 * l.value_heads as u64)
            + self.gemm_ns(tokens, v, h)
    }

    /// One linear-attention layer of prefill over these chunks, as one kernel: the
    /// prefill floor plus the larger of the chunked delta rule's FLOPs (at
    /// `gemm_compute`: its work is small dense matrix products) and its bytes (at
    /// `gemm_memory`): per token its activations, per chunk of [`DELTA_RULE_CHUNK`] tokens
    /// the recurrent state written and read back between the kernel's passes, per request
    /// its state read and written.
    pub fn linear_prefill_layer_ns(&self, prefills: &[SeqWork]) -> f64 {
        let Some(l) = self.linear() else {
            return 0.0;
        };
        let (dk, dv) = (l.key_head_dim as f64, l.value_head_dim as f64);
        let heads = l.value_heads as f64;
        let ssm = self.model.linear_state_bytes_per_layer().1 as f64;
        let per_token = heads * chunk_flops_per_token(DELTA_RULE_CHUNK, dk, dv);
        let (mut flops, mut bytes) = (0.0, 0.0);
        for s in prefills {
            let c = s.new_tokens as f64;
            flops += c * per_token;
            bytes += c * self.linear_token_bytes(&l)
                + 2.0 * (c / DELTA_RULE_CHUNK).ceil() * ssm
                + 2.0 * self.state_bytes();
        }
        let compute = self.compute_s(flops, self.eff.gemm_compute);
        let memory = self.memory_s(bytes, self.eff.gemm_memory);
        self.eff.prefill_attention_floor_us * 1e3 + compute.max(memory) * 1e9
    }

    /// One linear-attention layer of decode over these sequences, as one kernel: the
    /// decode floor plus the larger of the recurrent step's FLOPs (at `gemm_compute`)
    /// and its bytes (at `gemm_memory`): per sequence its state read and written and its
    /// token's activations. The context length plays no part.
    pub fn linear_decode_layer_ns(&self, decodes: &[SeqWork]) -> f64 {
        let Some(l) = self.linear() else {
            return 0.0;
        };
        let (dk, dv) = (l.key_head_dim as f64, l.value_head_dim as f64);
        let n: f64 = decodes.iter().map(|s| s.new_tokens as f64).sum();
        let flops = n * l.value_heads as f64 * recurrent_flops_per_token(dk, dv);
        let bytes =
            decodes.len() as f64 * 2.0 * self.state_bytes() + n * self.linear_token_bytes(&l);
        let compute = self.compute_s(flops, self.eff.gemm_compute);
        let memory = self.memory_s(bytes, self.eff.gemm_memory);
        self.eff.decode_attention_floor_us * 1e3 + compute.max(memory) * 1e9
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hardware::Gpu;
    use crate::model::{LayerAttention, Model};

    fn qwen3_next_on_h200() -> Roofline {
        let m = Model::preset("qwen3-next-80b-a3b").unwrap();
        let eff = Default::default();
        Roofline::new(&m, &Gpu::preset("h200").unwrap(), &eff, 0.0, 0.0)
    }

    #[test]
    fn the_chunked_delta_rule_is_about_eleven_dk_dv_per_token() {
        let f = chunk_flops_per_token(64.0, 128.0, 128.0);
        assert_eq!(f, 2.0 * (49152.0 + 64.0 * 640.0 + 4096.0 / 3.0));
        assert!((f / (128.0 * 128.0) - 11.17).abs() < 0.01);
    }

    /// A decode reads and writes each request's 1,097,728-byte state per layer whatever its
    /// context: memory bound, the same for 100 or 100,000 tokens of context, and the
    /// linear layers are priced by the linear kernels, not attention.
    #[test]
    fn a_linear_decode_is_its_state_at_the_memory_bandwidth_whatever_the_context() {
        let r = qwen3_next_on_h200();
        let seqs = |context| {
            vec![
                SeqWork {
                    new_tokens: 1,
                    context
                };
                64
            ]
        };
        let short = r.linear_decode_layer_ns(&seqs(100));
        assert_eq!(short, r.linear_decode_layer_ns(&seqs(100_000)));
        let e = crate::scenario::Efficiency::default();
        let gpu = Gpu::preset("h200").unwrap();
        let bytes = 64.0 * (2.0 * 1_097_728.0 + (8192.0 + 4096.0) * 2.0);
        let want =
            e.decode_attention_floor_us * 1e3 + bytes / (gpu.hbm_bytes_per_s * e.gemm_memory) * 1e9;
        assert!((short - want).abs() < 1e-6, "{short} {want}");
        assert_eq!(
            r.decode_attention_layer_ns(LayerAttention::Linear, &seqs(100)),
            short
        );
        // A full-attention layer's decode grows with the context.
        let full = |c| r.decode_attention_layer_ns(LayerAttention::Full, &seqs(c));
        assert!(full(100_000) > 10.0 * full(100));
    }

    /// A prefill chunk's cost grows linearly with its tokens, not with the cached context.
    #[test]
    fn a_linear_prefill_is_linear_in_its_tokens() {
        let r = qwen3_next_on_h200();
        let one = |c, p| {
            r.linear_prefill_layer_ns(&[SeqWork {
                new_tokens: c,
                context: p,
            }])
        };
        assert_eq!(one(4096, 0), one(4096, 100_000));
        let floor = crate::scenario::Efficiency::default().prefill_attention_floor_us * 1e3;
        let ratio = (one(8192, 0) - floor) / (one(4096, 0) - floor);
        assert!((ratio - 2.0).abs() < 0.01, "{ratio}");
        assert_eq!(
            r.prefill_attention_layer_ns(
                LayerAttention::Linear,
                &[SeqWork {
                    new_tokens: 4096,
                    context: 0
                }]
            ),
            one(4096, 0)
        );
    }
}
