//! The default cost model: every kernel takes its compute time and its memory time at
//! configurable fractions of the GPU's peak, combined as a soft roofline, plus a fixed
//! floor per launch; prefill attention is counted in FlashAttention's tiles, and the
//! element-wise kernels between the GEMMs are memory traffic. Sliding-window and
//! chunked-local layers read only their keys; latent attention (MLA) follows vLLM's two
//! paths; linear attention (Gated DeltaNet) reads and writes a state per request. Formulas in `docs/cost-model.md`.

use super::{BatchShape, CostModel, SeqWork, StepCost};
use crate::hardware::Gpu;
use crate::model::{LayerAttention, Model};
use crate::scenario::Efficiency;

mod gemm_tiles;
mod linear_attention;
mod mla;
pub mod split_kv;

/// vLLM's cap on the context rows its MLA prefill gathers and up-projects at once
/// (`MLACommonMetadataBuilder.determine_chunked_prefill_workspace_size`: 64 Ki tokens).
const MLA_WORKSPACE_CAP: f64 = 65536.0;

/// The query-key pairs and keys one prefill chunk's attention visits in one layer
/// ([`Roofline::prefill_span`]).
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct PrefillSpan {
    /// Pairs against the cached prefix, in full tiles (real query rows times keys).
    pub full: f64,
    /// Pairs of the chunk against itself, in whole square tiles (causal efficiency).
    pub causal: f64,
    /// Keys whose K and V the kernel reads: the visited prefix and the chunk.
    pub keys: f64,
}

impl PrefillSpan {
    fn add(&mut self, o: PrefillSpan) {
        self.full += o.full;
        self.causal += o.causal;
        self.keys += o.keys;
    }
}

/// The FLOPs and bytes of one decode attention kernel
/// ([`Roofline::decode_attention_work`]).
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct AttentionWork {
    /// FLOPs (at `attention_compute`).
    pub flops: f64,
    /// Bytes through HBM.
    pub bytes: f64,
}

/// The default step-time model for one GPU (parallelism is added by [`super::Parallel`]).
#[derive(Debug, Clone)]
pub struct Roofline {
    model: Model,
    gpu: Gpu,
    eff: Efficiency,
    step_overhead_ns: f64,
    per_request_overhead_ns: f64,
    /// Fraction of HBM bandwidth attention reaches: the scenario's, else the GPU's.
    attention_memory: f64,
    /// Full-attention decode as FlashAttention 2's split-KV kernel ([`split_kv`]): the
    /// scenario's `decode_splits`, else the GPU's; never for MLA.
    decode_splits: bool,
    /// Each of [`gemm_tiles::TILES`]'s efficiency ([`gemm_tiles::tile_efficiencies`]).
    tile_efficiency: [f64; gemm_tiles::TILES.len()],
    /// Weight matrices of one layer, in elements: QKV, O, gate+up, down (with output widths).
    gemms: [(u64, u64); 4],
    /// The layers by how they attend and how many of each (`Model::layer_attention`, kept
    /// so that a step allocates nothing).
    kinds: Vec<(LayerAttention, f64)>,
    /// MLA's projections ([`Roofline::mla_gemms`]); `None` without MLA.
    mla_gemms: Option<[(u64, u64); 4]>,
    /// Context rows MLA's prefill up-projects per launch ([`Roofline::mla_context_chunks`]).
    mla_workspace: f64,
    /// The step terms that depend on the token count alone, computed once per count.
    by_tokens: TokenMemo,
}

/// Step terms that are functions of one integer count (the step's tokens, its sampled
/// sequences), remembered per count: each GEMM's soft roofline costs two `powf`, and a
/// replay asks for the same few hundred batch sizes hundreds of thousands of times. The
/// value returned is the one computed, bit for bit.
#[derive(Debug, Clone, Default)]
struct TokenMemo {
    /// `linear_ns` of a dense step by token count (NaN: not computed yet).
    linear: std::cell::RefCell<Vec<f64>>,
    /// The LM head and sampler by sampled sequences (NaN: not computed yet).
    lm_head: std::cell::RefCell<Vec<f64>>,
}

/// Counts above this are computed every time (a memo entry is 8 bytes).
const MEMO_MAX_COUNT: usize = 1 << 16;

impl TokenMemo {
    /// `table[count]`, computing it with `f` the first time.
    fn get(table: &std::cell::RefCell<Vec<f64>>, count: f64, f: impl FnOnce() -> f64) -> f64 {
        let i = count as usize;
        if i as f64 != count || i > MEMO_MAX_COUNT {
            return f();
        }
        if let Some(&v) = table.borrow().get(i) {
            if !v.is_nan() {
                return v;
            }
        }
        let v = f();
        let mut t = table.borrow_mut();
        if t.len() <= i {
            t.resize(i + 1, f64::NAN);
        }
        t[i] = v;
        v
    }
}

impl Roofline {
    /// A roofline model for this model on this GPU.
    pub fn new(
        model: &Model,
        gpu: &Gpu,
        eff: &Efficiency,
        step_overhead_us: f64,
        per_request_overhead_us: f64,
    ) -> Self {
        let h = model.hidden as u64;
        // Queries (with their output gate, if any), keys and values.
        let qkv_out = model.qkv_params() / h;
        let o_in = model.heads as u64 * model.head_dim as u64;
        let i = model.intermediate as u64;
        Roofline {
            model: model.clone(),
            gpu: gpu.clone(),
            eff: eff.clone(),
            attention_memory: eff.attention_memory.unwrap_or(gpu.attention_memory),
            decode_splits: eff.decode_splits.unwrap_or(gpu.fa2_decode) && model.arch.mla.is_none(),
            tile_efficiency: gemm_tiles::tile_efficiencies(eff),
            step_overhead_ns: step_overhead_us * 1e3,
            per_request_overhead_ns: per_request_overhead_us * 1e3,
            // (input width, output width) of each GEMM.
            gemms: [(h, qkv_out), (o_in, h), (h, 2 * i), (i, h)],
            kinds: model
                .layer_attention()
                .into_iter()
                .map(|(kind, n)| (kind, n as f64))
                .collect(),
            mla_gemms: model.arch.mla.map(|a| {
                let heads = model.heads as u64;
                let (ql, kl) = (a.q_lora_rank as u64, a.kv_lora_rank as u64);
                let (rope, nope, v) = (
                    a.qk_rope_head_dim as u64,
                    a.qk_nope_head_dim as u64,
                    a.v_head_dim as u64,
                );
                let q_out = heads * (nope + rope);
                let (first, second) = if ql > 0 {
                    // fused_qkv_a_proj (replicated), then q_b_proj.
                    ((h, ql + kl + rope), (ql, q_out))
                } else {
                    // q_proj, then kv_a_proj_with_mqa (replicated).
                    ((h, q_out), (h, kl + rope))
                };
                [first, second, (kl, heads * (nope + v)), (heads * v, h)]
            }),
            mla_workspace: (8.0 * model.max_position as f64).min(MLA_WORKSPACE_CAP),
            by_tokens: TokenMemo::default(),
        }
    }

    /// Seconds to compute `flops` at `eff` of peak FLOP/s.
    fn compute_s(&self, flops: f64, eff: f64) -> f64 {
        flops / (self.gpu.bf16_flops * eff)
    }

    /// Seconds to move `bytes` through HBM at `eff` of its bandwidth.
    fn memory_s(&self, bytes: f64, eff: f64) -> f64 {
        bytes / (self.gpu.hbm_bytes_per_s * eff)
    }

    /// One GEMM of `tokens` rows against a `k x n` weight: its compute time (tiled, with
    /// `gemm_tiles`: [`Roofline::tiled_gemm_compute_s`]; else `2 t k n` FLOPs at
    /// `gemm_compute`) and the memory time of the weight plus the input and output
    /// activations, combined with the overlap exponent, plus the launch floor.
    pub fn gemm_ns(&self, tokens: f64, k: u64, n: u64) -> f64 {
        let b = self.model.dtype_bytes as f64;
        let (k, n) = (k as f64, n as f64);
        let bytes = (k * n + tokens * (k + n)) * b;
        if !self.eff.gemm_tiles {
            return self.gemm_kernel_ns(2.0 * tokens * k * n, bytes);
        }
        let compute = self.tiled_gemm_compute_s(tokens, k, n);
        let memory = self.memory_s(bytes, self.eff.gemm_memory);
        self.eff.gemm_floor_us * 1e3 + soft_max(compute, memory, self.eff.gemm_overlap) * 1e9
    }

    /// A GEMM-class kernel of `flops` and `bytes`: compute and memory time at the GEMM
    /// efficiencies, combined with the overlap exponent, plus the launch floor.
    fn gemm_kernel_ns(&self, flops: f64, bytes: f64) -> f64 {
        let compute = self.compute_s(flops, self.eff.gemm_compute);
        let memory = self.memory_s(bytes, self.eff.gemm_memory);
        self.eff.gemm_floor_us * 1e3 + soft_max(compute, memory, self.eff.gemm_overlap) * 1e9
    }

    /// One MoE layer's MLP over `tokens` tokens, as vLLM's fused MoE runs it: the router
    /// GEMM, the gate+up and down expert GEMMs (each one grouped kernel over the experts the
    /// batch activates: FLOPs for `tokens x top_k` rows, weights of the
    /// [`Roofline::expected_experts`] distinct experts read once), and the shared experts as
    /// dense GEMMs.
    pub fn moe_mlp_ns(&self, tokens: f64) -> f64 {
        self.moe_mlp_group_ns(tokens, tokens)
    }

    /// [`Roofline::moe_mlp_ns`] on a GPU whose routed experts see `expert_tokens` tokens
    /// (its data-parallel group's, gathered) while the router and the shared experts run
    /// on its own `tokens`. With expert parallelism over `n` GPUs, its experts get
    /// `expert_tokens x top_k / n` rows on average (uniform routing).
    pub fn moe_mlp_group_ns(&self, tokens: f64, expert_tokens: f64) -> f64 {
        let m = &self.model;
        let Some(moe) = m.arch.moe else {
            return 0.0;
        };
        let h = m.hidden as u64;
        let (e, s) = (
            moe.expert_intermediate as u64,
            moe.shared_intermediate as u64,
        );
        let rows = expert_tokens * moe.top_k as f64 / moe.expert_parallel.max(1) as f64;
        let active = self.expected_experts(expert_tokens);
        let mut ns = self.gemm_ns(tokens, h, moe.experts as u64)
            + self.grouped_gemm_ns(rows, active, h, 2 * e)
            + self.grouped_gemm_ns(rows, active, e, h);
        if s > 0 {
            ns += self.gemm_ns(tokens, h, 2 * s) + self.gemm_ns(tokens, s, h);
        }
        ns
    }

    /// Expected distinct routed experts of this GPU that `tokens` tokens activate in one
    /// layer with uniform routing: each token picks `top_k` of `E` experts, so an expert
    /// is left out by all of them with probability `(1 - top_k / E)^tokens`:
    /// `L (1 - (1 - top_k / E)^tokens)` for the `L` experts it holds (`E`, or `E / n`
    /// with expert parallelism over `n` GPUs).
    pub fn expected_experts(&self, tokens: f64) -> f64 {
        let Some(moe) = self.model.arch.moe else {
            return 0.0;
        };
        let e = moe.experts as f64;
        let local = self.model.local_experts() as f64;
        local * (1.0 - (1.0 - moe.top_k as f64 / e).powf(tokens))
    }

    /// Bytes of routed-expert weights one MoE layer reads for `tokens` tokens (the
    /// activated experts' gate, up and down matrices).
    pub fn moe_weight_bytes(&self, tokens: f64) -> f64 {
        let m = &self.model;
        let Some(moe) = m.arch.moe else {
            return 0.0;
        };
        let per_expert = 3.0 * m.hidden as f64 * moe.expert_intermediate as f64;
        self.expected_experts(tokens) * per_expert * self.expert_bytes()
    }

    /// Bytes per routed-expert weight.
    fn expert_bytes(&self) -> f64 {
        let m = &self.model;
        m.arch
            .moe
            .and_then(|e| e.expert_bytes)
            .unwrap_or(m.dtype_bytes as f64)
    }

    /// A grouped GEMM of `rows` rows over `experts` weights of `k x n` (the fused MoE
    /// kernel): FLOPs `2 rows k n`; bytes the experts' weights plus the rows' inputs and
    /// outputs; priced as one GEMM-class kernel.
    fn grouped_gemm_ns(&self, rows: f64, experts: f64, k: u64, n: u64) -> f64 {
        let act = self.model.compute_bytes() as f64;
        let (k, n) = (k as f64, n as f64);
        let bytes = experts * k * n * self.expert_bytes() + rows * (k + n) * act;
        self.gemm_kernel_ns(2.0 * rows * k * n, bytes)
    }

    /// One element-wise kernel moving `bytes` through HBM.
    fn elementwise_kernel_ns(&self, bytes: f64) -> f64 {
        self.eff.elementwise_floor_us * 1e3
            + self.memory_s(bytes, self.eff.elementwise_memory) * 1e9
    }

    /// The element-wise kernels of a step with `tokens` tokens, as vLLM runs them: per layer a fused residual-add + RMSNorm before attention and
    /// before the MLP (read input and residual, write both), RoPE on the queries and keys
    /// (read and write), the gated activation (read gate and up, write the product) and
    /// the KV-cache write (read the new keys and values, write them into their blocks);
    /// per step the embedding lookup and the final norm. The sampler is the LM head's
    /// ([`Roofline::sampler_ns`]).
    pub fn elementwise_ns(&self, tokens: f64) -> f64 {
        self.elementwise_group_ns(tokens, tokens)
    }

    /// [`Roofline::elementwise_ns`] on a GPU whose routed experts see `expert_tokens`
    /// tokens ([`Roofline::moe_mlp_group_ns`]): the experts' activation runs on their rows.
    pub fn elementwise_group_ns(&self, tokens: f64, expert_tokens: f64) -> f64 {
        if !self.eff.elementwise_kernels || tokens == 0.0 {
            return 0.0;
        }
        let m = &self.model;
        let b = m.dtype_bytes as f64;
        let h = m.hidden as f64;
        // RoPE turns every query head and key head; with MLA the rope part of each
        // query head and the one shared rope key.
        let qk = match m.arch.mla {
            Some(a) => ((m.heads + 1) * a.qk_rope_head_dim) as f64,
            None => ((m.heads + m.kv_heads) * m.head_dim) as f64,
        };
        let kv = m.kv_bytes_per_token_layer() as f64;
        let norm = self.elementwise_kernel_ns(4.0 * tokens * h * b);
        let rope = self.elementwise_kernel_ns(2.0 * tokens * qk * b);
        // The gated activation runs on the dense MLP's width, or on the routed rows of the
        // experts plus the shared experts (MoE layers).
        let width = |i: f64| self.elementwise_kernel_ns(3.0 * tokens * i * b);
        let moe_layers = m.moe_layers() as f64;
        let act_dense = width(m.intermediate as f64);
        let act_moe = m.arch.moe.map_or(0.0, |e| {
            let routed = expert_tokens * e.top_k as f64 / e.expert_parallel.max(1) as f64;
            let rows =
                routed * e.expert_intermediate as f64 + tokens * e.shared_intermediate as f64;
            self.elementwise_kernel_ns(3.0 * rows * b)
        });
        let kv_write = self.elementwise_kernel_ns(2.0 * tokens * kv);
        let per_layer = 2.0 * norm + rope + kv_write;
        let per_step = 2.0 * self.elementwise_kernel_ns(2.0 * tokens * h * b);
        let layers = m.layers as f64;
        layers * per_layer + (layers - moe_layers) * act_dense + moe_layers * act_moe + per_step
    }

    /// The sampler over the logits of `sampled` rows, one element-wise kernel paid once per
    /// step with the LM head: bf16 logits read, fp32 written and read by the softmax,
    /// probabilities written.
    pub fn sampler_ns(&self, sampled: f64) -> f64 {
        if !self.eff.elementwise_kernels || sampled == 0.0 {
            return 0.0;
        }
        let m = &self.model;
        self.elementwise_kernel_ns(sampled * m.vocab as f64 * (m.dtype_bytes as f64 + 12.0))
    }

    /// The (input width, output width) of the QKV, O, gate+up and down weights (the dense
    /// shape; an MLA model's projections are [`Roofline::mla_gemms`]).
    pub fn layer_gemms(&self) -> [(u64, u64); 4] {
        self.gemms
    }

    /// Per token and layer: KV bytes, query (or output) bytes, and attention FLOPs per key
    /// (`QK^T` and `PV`, 2 FLOPs each per head dimension).
    fn attention_per_token(&self) -> (f64, f64, f64) {
        let m = &self.model;
        let q_width = (m.heads * m.head_dim) as f64;
        (
            m.kv_bytes_per_token_layer() as f64,
            q_width * m.dtype_bytes as f64,
            4.0 * q_width,
        )
    }

    /// The query-key pairs and keys of one prefill chunk (`c` new tokens after `p` cached)
    /// in a layer of `kind`, in FlashAttention's tiles of `r = attention_tile` rows: query
    /// tiles from the chunk's first token, key tiles aligned with them.
    /// - Full: `c p` pairs against the prefix, `n (n + 1) / 2` squares of the chunk against
    ///   itself (`n = ceil(c / r)`, diagonal ones whole), `p + c` keys.
    /// - Sliding window `W` shorter than `p + c`: each query tile visits the key tiles
    ///   that hold a key of its first query's window; tiles wholly before it are skipped
    ///   (FlashAttention's local window), the one across its edge counts whole.
    /// - Chunked local `C`: the chunk cut at multiples of `C`, each piece a full-attention
    ///   chunk whose prefix is the keys of its local chunk before it (vLLM's virtual
    ///   batches, `make_local_attention_virtual_batches`).
    pub fn prefill_span(&self, kind: LayerAttention, s: SeqWork) -> PrefillSpan {
        let (c, p) = (s.new_tokens as f64, s.context as f64);
        match kind {
            LayerAttention::SlidingWindow(w) if p + c > w as f64 => {
                self.window_span(w as f64, c, p)
            }
            LayerAttention::ChunkedLocal(chunk) => self.chunked_span(chunk.max(1) as u64, s),
            _ => self.full_span(c, p),
        }
    }

    /// [`Roofline::prefill_span`] of a full-attention chunk.
    fn full_span(&self, c: f64, p: f64) -> PrefillSpan {
        let r = self.eff.attention_tile as f64;
        // With tiles of one row this is the exact count: query i sees i + 1 keys.
        let n = (c / r).ceil();
        PrefillSpan {
            full: c * p,
            causal: r * r * n * (n + 1.0) / 2.0,
            keys: p + c,
        }
    }

    /// [`Roofline::prefill_span`] in a window of `w` keys: query tile `i` (rows from
    /// `i r`, relative to the chunk's first token) needs keys from `lo = i r - w + 1` on,
    /// so it visits `ceil(max(0, -lo) / r)` prefix tiles (at most `p` keys, its real rows
    /// each) and the chunk's tiles from `floor(max(0, lo) / r)` to its diagonal. The keys
    /// read are the chunk's and the prefix tiles of the first query tile.
    fn window_span(&self, w: f64, c: f64, p: f64) -> PrefillSpan {
        let r = self.eff.attention_tile as f64;
        let n = (c / r).ceil() as u64;
        let mut span = PrefillSpan {
            keys: c,
            ..PrefillSpan::default()
        };
        for i in 0..n {
            let start = i as f64 * r;
            let lo = start - w + 1.0;
            let prefix = p.min(r * ((-lo).max(0.0) / r).ceil());
            span.full += r.min(c - start) * prefix;
            span.causal += r * r * (i as f64 + 1.0 - (lo.max(0.0) / r).floor());
            if i == 0 {
                span.keys += prefix;
            }
        }
        span
    }

    /// [`Roofline::prefill_span`] in local chunks of `chunk` tokens.
    fn chunked_span(&self, chunk: u64, s: SeqWork) -> PrefillSpan {
        let (mut pos, end) = (s.context as u64, s.context as u64 + s.new_tokens as u64);
        let mut span = PrefillSpan::default();
        while pos < end {
            let first = pos / chunk * chunk;
            let stop = end.min(first + chunk);
            span.add(self.full_span((stop - pos) as f64, (pos - first) as f64));
            pos = stop;
        }
        span
    }

    /// One full-attention layer of prefill attention over these chunks
    /// ([`Roofline::prefill_attention_layer_ns`] of [`LayerAttention::Full`]).
    pub fn prefill_layer_ns(&self, prefills: &[SeqWork]) -> f64 {
        self.prefill_attention_layer_ns(LayerAttention::Full, prefills)
    }

    /// One layer of `kind` of prefill attention over these chunks, as one kernel: the
    /// [`Roofline::prefill_span`] pairs, `4 n_q d` FLOPs each, the prefix's at
    /// `attention_compute`, the chunk's own tiles at `attention_causal_compute`; the memory
    /// time is the visited keys' K and V and the queries and outputs, read once. MLA
    /// layers: [`Roofline::mla_prefill_layer_ns`].
    pub fn prefill_attention_layer_ns(&self, kind: LayerAttention, prefills: &[SeqWork]) -> f64 {
        if kind == LayerAttention::Linear {
            return self.linear_prefill_layer_ns(prefills);
        }
        if self.mla_gemms.is_some() {
            return self.mla_prefill_layer_ns(kind, prefills);
        }
        let (kv_tok, q_tok, qk_pv) = self.attention_per_token();
        let (mut full, mut causal, mut bytes) = (0.0, 0.0, 0.0);
        for s in prefills {
            let span = self.prefill_span(kind, *s);
            full += qk_pv * span.full;
            causal += qk_pv * span.causal;
            bytes += span.keys * kv_tok + 2.0 * s.new_tokens as f64 * q_tok;
        }
        self.prefill_kernel_ns(full, causal, bytes)
    }

    /// A prefill attention kernel: the prefill floor plus the larger of the compute time
    /// (`full` FLOPs at `attention_compute`, `causal` at `attention_causal_compute`) and
    /// the memory time of `bytes`.
    fn prefill_kernel_ns(&self, full: f64, causal: f64, bytes: f64) -> f64 {
        let compute = self.compute_s(full, self.eff.attention_compute)
            + self.compute_s(causal, self.eff.attention_causal_compute);
        let memory = self.memory_s(bytes, self.attention_memory);
        self.eff.prefill_attention_floor_us * 1e3 + compute.max(memory) * 1e9
    }

    /// Keys a decode of `context` cached tokens attends in a layer of `kind`, its new
    /// token included: `context + 1`; `min(context + 1, W)` in a sliding window of `W`;
    /// `context mod C + 1` in chunked local attention of `C`.
    pub fn decode_keys(kind: LayerAttention, context: u32) -> f64 {
        let keys = match kind {
            LayerAttention::Full => context as u64 + 1,
            LayerAttention::SlidingWindow(w) => (context as u64 + 1).min(w as u64),
            LayerAttention::ChunkedLocal(c) => (context % c.max(1)) as u64 + 1,
            // No keys: linear attention keeps a state instead
            // ([`Roofline::linear_decode_layer_ns`]).
            LayerAttention::Linear => 0,
        };
        keys as f64
    }

    /// The FLOPs and bytes of one layer of `kind` of decode attention over these
    /// sequences: per key [`Roofline::decode_keys`] `4 n_q d` FLOPs and one token's KV
    /// bytes, per sequence its query read and its output written. MLA layers:
    /// [`Roofline::mla_decode_work`].
    pub fn decode_attention_work(
        &self,
        kind: LayerAttention,
        decodes: &[SeqWork],
    ) -> AttentionWork {
        if self.mla_gemms.is_some() {
            return self.mla_decode_work(kind, decodes);
        }
        let (kv_tok, q_tok, qk_pv) = self.attention_per_token();
        let (mut flops, mut bytes) = (0.0, 0.0);
        for s in decodes {
            let keys = Self::decode_keys(kind, s.context);
            flops += qk_pv * keys;
            bytes += keys * kv_tok + 2.0 * q_tok;
        }
        AttentionWork { flops, bytes }
    }

    /// One full-attention layer of decode attention over these sequences
    /// ([`Roofline::decode_attention_layer_ns`] of [`LayerAttention::Full`]).
    pub fn decode_layer_ns(&self, decodes: &[SeqWork]) -> f64 {
        self.decode_attention_layer_ns(LayerAttention::Full, decodes)
    }

    /// One full-attention layer of decode attention by a kernel sized for `kv_len` keys (a
    /// benchmark's preallocated cache; unset: the longest sequence's, as in serving). Only
    /// the split-KV model ([`split_kv`]) depends on it.
    pub fn decode_layer_ns_sized(&self, decodes: &[SeqWork], kv_len: Option<u32>) -> f64 {
        if self.decode_splits {
            return self.split_kv_decode_ns(decodes, kv_len);
        }
        self.decode_layer_ns(decodes)
    }

    /// One layer of `kind` of decode attention over these sequences, as one kernel: for
    /// full attention on a GPU with the split-KV model, [`Roofline::split_kv_decode_ns`];
    /// otherwise the decode floor plus the larger of the compute and memory times of
    /// [`Roofline::decode_attention_work`].
    pub fn decode_attention_layer_ns(&self, kind: LayerAttention, decodes: &[SeqWork]) -> f64 {
        if kind == LayerAttention::Linear {
            return self.linear_decode_layer_ns(decodes);
        }
        if kind == LayerAttention::Full && self.decode_splits {
            return self.split_kv_decode_ns(decodes, None);
        }
        let w = self.decode_attention_work(kind, decodes);
        let compute = self.compute_s(w.flops, self.eff.attention_compute);
        let memory = self.memory_s(w.bytes, self.attention_memory);
        self.eff.decode_attention_floor_us * 1e3 + compute.max(memory) * 1e9
    }

    /// `per_layer` of each kind of layer times its count, summed over the kinds.
    fn over_layers(&self, per_layer: impl Fn(LayerAttention) -> f64) -> f64 {
        self.kinds
            .iter()
            .map(|&(kind, n)| n * per_layer(kind))
            .sum()
    }

    /// The GEMMs of every layer for a step of `tokens` tokens (`StepCost::linear_ns`).
    fn linear_ns(&self, batch: &BatchShape, tokens: f64) -> f64 {
        let m = &self.model;
        let layers = m.layers as f64;
        let gemm = |i: usize| self.gemm_ns(tokens, self.gemms[i].0, self.gemms[i].1);
        let attention_gemms = if self.mla_gemms.is_some() {
            self.mla_linear_ns(batch, tokens)
        } else {
            gemm(0) + gemm(1)
        };
        let moe_layers = m.moe_layers() as f64;
        let mut ns = (layers - moe_layers) * (attention_gemms + gemm(2) + gemm(3));
        if moe_layers > 0.0 {
            let experts = batch.expert_tokens() as f64;
            ns += moe_layers * (attention_gemms + self.moe_mlp_group_ns(tokens, experts));
        }
        let linear = m.linear_attention_layers() as f64;
        if linear > 0.0 {
            // Linear-attention layers run their own projections instead of QKV and O.
            ns += linear * (self.linear_attention_gemms_ns(tokens) - attention_gemms);
        }
        ns
    }

    /// CPU overhead of a step with `seqs` sequences.
    pub fn overhead_ns(&self, seqs: usize) -> f64 {
        self.step_overhead_ns + self.per_request_overhead_ns * seqs as f64
    }
}

impl CostModel for Roofline {
    fn step_cost(&self, batch: &BatchShape) -> StepCost {
        let m = &self.model;
        let tokens = batch.total_tokens() as f64;
        let mut cost = StepCost {
            overhead_ns: self.overhead_ns(batch.num_seqs()),
            ..Default::default()
        };
        if tokens == 0.0 {
            return cost;
        }
        // Dense layers' GEMMs depend on the token count alone (MLA's on the batch's split,
        // MoE's on the experts' tokens).
        cost.linear_ns = if self.mla_gemms.is_none() && m.moe_layers() == 0 {
            TokenMemo::get(&self.by_tokens.linear, tokens, || {
                self.linear_ns(batch, tokens)
            })
        } else {
            self.linear_ns(batch, tokens)
        };

        if !batch.prefills.is_empty() {
            cost.prefill_attention_ns =
                self.over_layers(|kind| self.prefill_attention_layer_ns(kind, &batch.prefills));
        }
        if !batch.decodes.is_empty() {
            cost.decode_attention_ns =
                self.over_layers(|kind| self.decode_attention_layer_ns(kind, &batch.decodes));
        }
        if batch.sampled > 0 {
            let sampled = batch.sampled as f64;
            cost.lm_head_ns = TokenMemo::get(&self.by_tokens.lm_head, sampled, || {
                self.gemm_ns(sampled, m.hidden as u64, m.vocab as u64) + self.sampler_ns(sampled)
            });
        }
        cost.elementwise_ns = self.elementwise_group_ns(tokens, batch.expert_tokens() as f64);
        cost
    }

    fn describe(&self) -> String {
        format!(
            "roofline ({} on {}; gemm {:.2}/{:.2}, attention {:.2}/{:.2} of peak FLOP/s / HBM)",
            self.model.name,
            self.gpu.name,
            self.eff.gemm_compute,
            self.eff.gemm_memory,
            self.eff.attention_compute,
            self.attention_memory
        )
    }
}

/// `(a^q + b^q)^(1/q)` for non-negative `a`, `b`: `max(a, b)` as `q` grows, `a + b` at 1.
fn soft_max(a: f64, b: f64, q: f64) -> f64 {
    let (hi, lo) = if a >= b { (a, b) } else { (b, a) };
    if hi == 0.0 || q.is_infinite() {
        return hi;
    }
    hi * (1.0 + (lo / hi).powf(q)).powf(1.0 / q)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn llama_on_h100(eff: &Efficiency) -> Roofline {
        let model = Model::preset("llama-2-7b").unwrap();
        Roofline::new(&model, &Gpu::preset("h100-sxm").unwrap(), eff, 0.0, 0.0)
    }

    #[test]
    fn soft_max_is_the_sum_at_one_and_the_max_at_infinity() {
        assert_eq!(soft_max(3.0, 4.0, 1.0), 7.0);
        assert_eq!(soft_max(3.0, 4.0, f64::INFINITY), 4.0);
        assert!((soft_max(3.0, 4.0, 2.0) - 5.0).abs() < 1e-12);
        assert_eq!(soft_max(0.0, 0.0, 2.0), 0.0);
    }

    #[test]
    fn causal_tiles_count_whole_squares_and_the_prefix_in_full() {
        // Llama-2-7B: 32 query heads of 128, so 4 x 4096 FLOPs per query-key pair. A chunk
        // of 200 tokens in tiles of 128 rows is n = 2 tiles: 3 squares of 128 x 128; its
        // 1,000-token prefix is 200 x 1000 pairs in full tiles.
        let eff = Efficiency {
            prefill_attention_floor_us: 7.0,
            ..Efficiency::default()
        };
        let r = llama_on_h100(&eff);
        let pairs_causal = 3.0 * 128.0 * 128.0;
        let pairs_full = 200.0 * 1000.0;
        let flop = 4.0 * 4096.0;
        let want = 7000.0
            + (flop * pairs_full / (989e12 * eff.attention_compute)
                + flop * pairs_causal / (989e12 * eff.attention_causal_compute))
                * 1e9;
        let got = r.prefill_layer_ns(&[SeqWork {
            new_tokens: 200,
            context: 1000,
        }]);
        assert!((got - want).abs() < 1e-6 * want, "{got} vs {want}");
    }

    #[test]
    fn elementwise_kernels_are_bytes_at_their_bandwidth_plus_a_floor_each() {
        // Per layer, for T tokens of Llama-2-7B in fp16 (h 4096, q+k 8192 wide, I 11008,
        // KV 16 KiB per token): two fused add+norms (4 T h b), RoPE (2 T 8192 b), the
        // activation (3 T I b), the KV write (2 T 16384); per step embedding and final norm
        // (2 T h b each); the sampler, with the LM head, S V (2 + 12).
        let eff = Efficiency {
            elementwise_memory: 0.5,
            elementwise_floor_us: 2.0,
            ..Efficiency::default()
        };
        let r = llama_on_h100(&eff);
        let (t, b) = (10.0, 2.0);
        let k = |bytes: f64| 2000.0 + bytes / (3350e9 * 0.5) * 1e9;
        let layer = 2.0 * k(4.0 * t * 4096.0 * b)
            + k(2.0 * t * 8192.0 * b)
            + k(3.0 * t * 11008.0 * b)
            + k(2.0 * t * 16384.0);
        let want = 32.0 * layer + 2.0 * k(2.0 * t * 4096.0 * b);
        let got = r.elementwise_ns(t);
        assert!((got - want).abs() < 1e-6 * want, "{got} vs {want}");
        let sampler = k(4.0 * 32000.0 * 14.0);
        assert!((r.sampler_ns(4.0) - sampler).abs() < 1e-6 * sampler);
        let off = Efficiency {
            elementwise_kernels: false,
            ..eff
        };
        assert_eq!(llama_on_h100(&off).elementwise_ns(t), 0.0);
        assert_eq!(llama_on_h100(&off).sampler_ns(4.0), 0.0);
    }

    #[test]
    fn attention_memory_defaults_to_the_gpus_and_the_scenario_overrides_it() {
        let model = Model::preset("llama-2-7b").unwrap();
        let decode = [SeqWork {
            new_tokens: 1,
            context: 9999,
        }];
        let roof = |gpu: &str, eff: &Efficiency| {
            Roofline::new(&model, &Gpu::preset(gpu).unwrap(), eff, 0.0, 0.0)
        };
        let plain = |gpu: &str, eff: &Efficiency| roof(gpu, eff).decode_layer_ns(&decode);
        let floorless = Efficiency {
            decode_attention_floor_us: 0.0,
            decode_splits: Some(false),
            ..Efficiency::default()
        };
        // The A100's default is FlashAttention 2's split-KV kernel; the H100's the line.
        let split = |gpu: &str| roof(gpu, &Efficiency::default()).split_kv_decode_ns(&decode, None);
        assert_eq!(
            plain("a100-80gb", &Efficiency::default()),
            split("a100-80gb")
        );
        assert_ne!(plain("h100-sxm", &Efficiency::default()), split("h100-sxm"));
        // 10,000 tokens x 16 KiB (+ the query in and out) at 0.9 of 3.35 TB/s, 0.78 of 2.039.
        let bytes = 10_000.0 * 16384.0 + 2.0 * 4096.0 * 2.0;
        let h100 = plain("h100-sxm", &floorless);
        assert!((h100 - bytes / (3350e9 * 0.9) * 1e9).abs() < 1e-3);
        let a100 = plain("a100-80gb", &floorless);
        assert!((a100 - bytes / (2039e9 * 0.78) * 1e9).abs() < 1e-3);
        let set = Efficiency {
            attention_memory: Some(0.5),
            ..floorless
        };
        assert!((plain("h100-sxm", &set) - bytes / (3350e9 * 0.5) * 1e9).abs() < 1e-3);
    }

    fn on_h100(model: &Model, eff: &Efficiency) -> Roofline {
        Roofline::new(model, &Gpu::preset("h100-sxm").unwrap(), eff, 0.0, 0.0)
    }

    fn decode(context: u32) -> SeqWork {
        SeqWork {
            new_tokens: 1,
            context,
        }
    }

    #[test]
    fn sliding_window_decode_reads_the_context_below_the_window_and_the_window_above() {
        // gpt-oss-20b: 64 query heads of 64 (4 x 4096 FLOPs per key), 8 KV heads (2 x 8 x
        // 64 x 2 = 2048 bytes per token), queries of 64 x 64 x 2 = 8192 bytes.
        let r = on_h100(
            &Model::preset("gpt-oss-20b").unwrap(),
            &Efficiency::default(),
        );
        let window = LayerAttention::SlidingWindow(128);
        let want = |keys: f64| AttentionWork {
            flops: 16384.0 * keys,
            bytes: keys * 2048.0 + 2.0 * 8192.0,
        };
        // Context 100: its 100 keys and the new one, all inside the window.
        assert_eq!(r.decode_attention_work(window, &[decode(100)]), want(101.0));
        // Context 1,000: the last 128 keys only; a full layer reads all 1,001.
        assert_eq!(
            r.decode_attention_work(window, &[decode(1000)]),
            want(128.0)
        );
        let full = r.decode_attention_work(LayerAttention::Full, &[decode(1000)]);
        assert_eq!(full, want(1001.0));
        // At the edge: context 127 attends 128 keys, as does context 128.
        assert_eq!(Roofline::decode_keys(window, 127), 128.0);
        assert_eq!(Roofline::decode_keys(window, 128), 128.0);
    }

    #[test]
    fn chunked_local_decode_restarts_at_each_chunk_boundary() {
        // Llama-3.1-8B with 24 of its 32 layers in local chunks of 8,192 (Llama 4's
        // shape): position 8,191 is the last of the first chunk (8,192 keys), position
        // 8,192 the first of the second (itself only).
        let mut model = Model::preset("llama-3.1-8b").unwrap();
        model.arch.chunked_local = Some((8192, 24));
        let r = on_h100(&model, &Efficiency::default());
        let chunked = LayerAttention::ChunkedLocal(8192);
        assert_eq!(Roofline::decode_keys(chunked, 8191), 8192.0);
        assert_eq!(Roofline::decode_keys(chunked, 8192), 1.0);
        assert_eq!(Roofline::decode_keys(chunked, 10_000), 1809.0);
        // 8 KV heads of 128: 4096 bytes per token and layer; 32 x 128 x 2 bytes a query.
        let work = r.decode_attention_work(chunked, &[decode(8192), decode(8191)]);
        assert_eq!(work.bytes, (1.0 + 8192.0) * 4096.0 + 2.0 * 2.0 * 8192.0);
        assert_eq!(work.flops, 4.0 * 4096.0 * 8193.0);
        // A step: 24 chunked layers and 8 full ones.
        let batch = BatchShape {
            decodes: vec![decode(8192)],
            ..BatchShape::default()
        };
        let want = 24.0 * r.decode_attention_layer_ns(chunked, &batch.decodes)
            + 8.0 * r.decode_layer_ns(&batch.decodes);
        assert_eq!(r.step_cost(&batch).decode_attention_ns, want);
    }

    #[test]
    fn a_prefill_chunk_crossing_the_window_edge_skips_the_tiles_before_it() {
        // A window of 200, 512 new tokens after 1,000 cached, tiles of 128: query tile i
        // (rows 128 i..) needs keys from 128 i - 199 on (relative to the chunk).
        // Tile 0: prefix keys 801..999, 199 keys in 2 prefix tiles (256 keys), diagonal.
        // Tile 1: from 929, 71 keys in 1 prefix tile (128), chunk tiles 0 and 1.
        // Tile 2: from 57 in the chunk: tiles 0 (the edge, whole), 1, 2; no prefix.
        // Tile 3: from 185: tile 0 skipped, tiles 1, 2, 3.
        // So 128 x 256 + 128 x 128 prefix pairs, 1 + 2 + 3 + 3 = 9 squares (of 10), and
        // the chunk's 512 keys plus the first tile's 256 prefix keys read.
        let model = Model::preset("gpt-oss-20b").unwrap();
        let eff = Efficiency {
            prefill_attention_floor_us: 7.0,
            ..Efficiency::default()
        };
        let r = on_h100(&model, &eff);
        let chunk = SeqWork {
            new_tokens: 512,
            context: 1000,
        };
        let window = LayerAttention::SlidingWindow(200);
        let span = r.prefill_span(window, chunk);
        let want = PrefillSpan {
            full: 128.0 * 256.0 + 128.0 * 128.0,
            causal: 9.0 * 128.0 * 128.0,
            keys: 512.0 + 256.0,
        };
        assert_eq!(span, want);
        let flop = 16384.0;
        let compute = flop * want.full / (989e12 * eff.attention_compute)
            + flop * want.causal / (989e12 * eff.attention_causal_compute);
        let memory = (768.0 * 2048.0 + 2.0 * 512.0 * 8192.0) / (3350e9 * 0.9);
        let ns = 7000.0 + compute.max(memory) * 1e9;
        let got = r.prefill_attention_layer_ns(window, &[chunk]);
        assert!((got - ns).abs() < 1e-6 * ns, "{got} vs {ns}");
        // gpt-oss's own window of 128 from an empty cache: every tile but the first needs
        // its diagonal and the tile before it, 1 + 2 + 2 + 2 squares.
        let fresh = SeqWork {
            new_tokens: 512,
            context: 0,
        };
        let own = r.prefill_span(LayerAttention::SlidingWindow(128), fresh);
        assert_eq!(own.causal, 7.0 * 128.0 * 128.0);
        // A window as long as the context is full attention.
        let wide = LayerAttention::SlidingWindow(1512);
        assert_eq!(
            r.prefill_span(wide, chunk),
            r.prefill_span(LayerAttention::Full, chunk)
        );
        assert_eq!(
            r.prefill_attention_layer_ns(wide, &[chunk]),
            r.prefill_layer_ns(&[chunk])
        );
    }

    #[test]
    fn a_chunked_local_prefill_is_one_full_chunk_per_local_chunk_it_touches() {
        // Local chunks of 1,024; 300 new tokens after 900: positions 900..1023 attend the
        // 900 keys of their chunk before them (124 x 900 pairs, one square), positions
        // 1024..1199 start a chunk (176 rows: 2 tiles, 3 squares); keys 1,024 + 176.
        let r = llama_on_h100(&Efficiency::default());
        let span = r.prefill_span(
            LayerAttention::ChunkedLocal(1024),
            SeqWork {
                new_tokens: 300,
                context: 900,
            },
        );
        let want = PrefillSpan {
            full: 124.0 * 900.0,
            causal: 4.0 * 128.0 * 128.0,
            keys: 1200.0,
        };
        assert_eq!(span, want);
    }

    #[test]
    fn a_dense_model_prices_every_layer_as_before_and_a_hybrid_one_by_kind() {
        let batch = BatchShape {
            prefills: vec![SeqWork {
                new_tokens: 700,
                context: 3000,
            }],
            decodes: vec![decode(5000), decode(20)],
            sampled: 3,
            moe_tokens: 0,
        };
        // Llama-2-7B: 32 full layers, each the one-layer kernel.
        let r = llama_on_h100(&Efficiency::default());
        let cost = r.step_cost(&batch);
        assert_eq!(
            cost.prefill_attention_ns,
            32.0 * r.prefill_layer_ns(&batch.prefills)
        );
        assert_eq!(
            cost.decode_attention_ns,
            32.0 * r.decode_layer_ns(&batch.decodes)
        );
        // gpt-oss-20b: 12 layers in a window of 128, 12 full; the window's are cheaper.
        let oss = on_h100(
            &Model::preset("gpt-oss-20b").unwrap(),
            &Efficiency::default(),
        );
        let cost = oss.step_cost(&batch);
        let window = LayerAttention::SlidingWindow(128);
        let local = oss.prefill_attention_layer_ns(window, &batch.prefills);
        let full = oss.prefill_layer_ns(&batch.prefills);
        assert!(local < full, "{local} vs {full}");
        assert_eq!(cost.prefill_attention_ns, 12.0 * local + 12.0 * full);
        let local = oss.decode_attention_layer_ns(window, &batch.decodes);
        let full = oss.decode_layer_ns(&batch.decodes);
        assert!(local < full, "{local} vs {full}");
        assert_eq!(cost.decode_attention_ns, 12.0 * local + 12.0 * full);
    }
}
