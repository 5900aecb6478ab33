//! The default cost model: every kernel takes its compute time and its memory time at
//! configurable fractions of the GPU's peak, combined as a soft roofline, plus a fixed
//! floor per launch; prefill attention is counted in FlashAttention's tiles, and the
//! element-wise kernels between the GEMMs are memory traffic. Formulas in
//! `docs/cost-model.md`.

use super::{BatchShape, CostModel, SeqWork, StepCost};
use crate::hardware::Gpu;
use crate::model::Model;
use crate::scenario::Efficiency;

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
    /// Weight matrices of one layer, in elements: QKV, O, gate+up, down (with output widths).
    gemms: [(u64, u64); 4],
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
            step_overhead_ns: step_overhead_us * 1e3,
            per_request_overhead_ns: per_request_overhead_us * 1e3,
            // (input width, output width) of each GEMM.
            gemms: [(h, qkv_out), (o_in, h), (h, 2 * i), (i, h)],
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

    /// One GEMM of `tokens` rows against a `k x n` weight: FLOPs `2 t k n`, bytes for the
    /// weight plus the input and output activations; compute and memory time combined with
    /// the overlap exponent, plus the launch floor.
    pub fn gemm_ns(&self, tokens: f64, k: u64, n: u64) -> f64 {
        let b = self.model.dtype_bytes as f64;
        let (k, n) = (k as f64, n as f64);
        self.gemm_kernel_ns(2.0 * tokens * k * n, (k * n + tokens * (k + n)) * b)
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
        let m = &self.model;
        let Some(moe) = m.arch.moe else {
            return 0.0;
        };
        let h = m.hidden as u64;
        let (e, s) = (
            moe.expert_intermediate as u64,
            moe.shared_intermediate as u64,
        );
        let rows = tokens * moe.top_k as f64;
        let active = self.expected_experts(tokens);
        let mut ns = self.gemm_ns(tokens, h, moe.experts as u64)
            + self.grouped_gemm_ns(rows, active, h, 2 * e)
            + self.grouped_gemm_ns(rows, active, e, h);
        if s > 0 {
            ns += self.gemm_ns(tokens, h, 2 * s) + self.gemm_ns(tokens, s, h);
        }
        ns
    }

    /// Expected distinct routed experts `tokens` tokens activate in one layer with
    /// uniform routing: each token picks `top_k` of `E` experts, so an expert is left out
    /// by all of them with probability `(1 - top_k / E)^tokens`:
    /// `E (1 - (1 - top_k / E)^tokens)`.
    pub fn expected_experts(&self, tokens: f64) -> f64 {
        let Some(moe) = self.model.arch.moe else {
            return 0.0;
        };
        let e = moe.experts as f64;
        e * (1.0 - (1.0 - moe.top_k as f64 / e).powf(tokens))
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
        if !self.eff.elementwise_kernels || tokens == 0.0 {
            return 0.0;
        }
        let m = &self.model;
        let b = m.dtype_bytes as f64;
        let h = m.hidden as f64;
        let qk = ((m.heads + m.kv_heads) * m.head_dim) as f64;
        let kv = m.kv_bytes_per_token_layer() as f64;
        let norm = self.elementwise_kernel_ns(4.0 * tokens * h * b);
        let rope = self.elementwise_kernel_ns(2.0 * tokens * qk * b);
        // The gated activation runs on the dense MLP's width, or on the routed rows of the
        // experts plus the shared experts (MoE layers).
        let width = |i: f64| self.elementwise_kernel_ns(3.0 * tokens * i * b);
        let moe_layers = m.moe_layers() as f64;
        let act_dense = width(m.intermediate as f64);
        let act_moe = m.arch.moe.map_or(0.0, |e| {
            width((e.top_k * e.expert_intermediate + e.shared_intermediate) as f64)
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

    /// The (input width, output width) of the QKV, O, gate+up and down weights.
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

    /// One layer of prefill attention over these chunks, as one kernel: the chunk
    /// against its cached keys in full tiles, the chunk against itself in causal tiles
    /// (`n (n + 1) / 2` square tiles of `r` rows, `n = ceil(c / r)`), each at its own
    /// efficiency; the memory time is the keys, values, queries and outputs read once.
    pub fn prefill_layer_ns(&self, prefills: &[SeqWork]) -> f64 {
        let (kv_tok, q_tok, qk_pv) = self.attention_per_token();
        let r = self.eff.attention_tile as f64;
        let (mut full, mut causal, mut bytes) = (0.0, 0.0, 0.0);
        for s in prefills {
            let (c, p) = (s.new_tokens as f64, s.context as f64);
            full += qk_pv * c * p;
            // With tiles of one row this is the exact count: query i sees i + 1 keys.
            let n = (c / r).ceil();
            causal += qk_pv * r * r * n * (n + 1.0) / 2.0;
            bytes += (p + c) * kv_tok + 2.0 * c * q_tok;
        }
        let compute = self.compute_s(full, self.eff.attention_compute)
            + self.compute_s(causal, self.eff.attention_causal_compute);
        let memory = self.memory_s(bytes, self.attention_memory);
        self.eff.prefill_attention_floor_us * 1e3 + compute.max(memory) * 1e9
    }

    /// One layer of decode attention over these sequences, as one kernel.
    pub fn decode_layer_ns(&self, decodes: &[SeqWork]) -> f64 {
        let (kv_tok, q_tok, qk_pv) = self.attention_per_token();
        let (mut flops, mut bytes) = (0.0, 0.0);
        for s in decodes {
            let ctx = s.context as f64 + 1.0;
            flops += qk_pv * ctx;
            bytes += ctx * kv_tok + 2.0 * q_tok;
        }
        let compute = self.compute_s(flops, self.eff.attention_compute);
        let memory = self.memory_s(bytes, self.attention_memory);
        self.eff.decode_attention_floor_us * 1e3 + compute.max(memory) * 1e9
    }

    /// CPU overhead of a step with `seqs` sequences.
    pub fn overhead_ns(&self, seqs: usize) -> f64 {
        self.step_overhead_ns + self.per_request_overhead_ns * seqs as f64
    }
}

impl CostModel for Roofline {
    fn step_cost(&self, batch: &BatchShape) -> StepCost {
        let m = &self.model;
        let layers = m.layers as f64;
        let tokens = batch.total_tokens() as f64;
        let mut cost = StepCost {
            overhead_ns: self.overhead_ns(batch.num_seqs()),
            ..Default::default()
        };
        if tokens == 0.0 {
            return cost;
        }
        let gemm = |i: usize| self.gemm_ns(tokens, self.gemms[i].0, self.gemms[i].1);
        let attention_gemms = gemm(0) + gemm(1);
        let moe_layers = m.moe_layers() as f64;
        cost.linear_ns = (layers - moe_layers) * (attention_gemms + gemm(2) + gemm(3));
        if moe_layers > 0.0 {
            cost.linear_ns += moe_layers * (attention_gemms + self.moe_mlp_ns(tokens));
        }

        if !batch.prefills.is_empty() {
            cost.prefill_attention_ns = layers * self.prefill_layer_ns(&batch.prefills);
        }
        if !batch.decodes.is_empty() {
            cost.decode_attention_ns = layers * self.decode_layer_ns(&batch.decodes);
        }
        if batch.sampled > 0 {
            let sampled = batch.sampled as f64;
            cost.lm_head_ns =
                self.gemm_ns(sampled, m.hidden as u64, m.vocab as u64) + self.sampler_ns(sampled);
        }
        cost.elementwise_ns = self.elementwise_ns(tokens);
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
        let plain = |gpu: &str, eff: &Efficiency| {
            Roofline::new(&model, &Gpu::preset(gpu).unwrap(), eff, 0.0, 0.0)
                .decode_layer_ns(&decode)
        };
        let floorless = Efficiency {
            decode_attention_floor_us: 0.0,
            ..Efficiency::default()
        };
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
}
