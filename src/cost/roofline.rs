//! The roofline cost model: every kernel takes `max(compute time, memory time)` at
//! configurable fractions of the GPU's peak. Formulas in `docs/cost-model.md`.

use super::{BatchShape, CostModel, SeqWork, StepCost};
use crate::hardware::Gpu;
use crate::model::Model;
use crate::scenario::Efficiency;

/// Roofline step-time model for one GPU (no parallelism yet).
#[derive(Debug, Clone)]
pub struct Roofline {
    model: Model,
    gpu: Gpu,
    eff: Efficiency,
    step_overhead_ns: f64,
    per_request_overhead_ns: f64,
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
        let qkv_out = (model.heads + 2 * model.kv_heads) as u64 * model.head_dim as u64;
        let o_in = model.heads as u64 * model.head_dim as u64;
        let i = model.intermediate as u64;
        Roofline {
            model: model.clone(),
            gpu: gpu.clone(),
            eff: eff.clone(),
            step_overhead_ns: step_overhead_us * 1e3,
            per_request_overhead_ns: per_request_overhead_us * 1e3,
            // (input width, output width) of each GEMM.
            gemms: [(h, qkv_out), (o_in, h), (h, 2 * i), (i, h)],
        }
    }

    fn kernel_ns(&self, flops: f64, bytes: f64, compute_eff: f64, memory_eff: f64) -> f64 {
        let compute = flops / (self.gpu.bf16_flops * compute_eff);
        let memory = bytes / (self.gpu.hbm_bytes_per_s * memory_eff);
        compute.max(memory) * 1e9
    }

    /// One GEMM of `tokens` rows against a `k x n` weight: FLOPs `2 t k n`, bytes for the
    /// weight plus the input and output activations.
    pub fn gemm_ns(&self, tokens: f64, k: u64, n: u64) -> f64 {
        let b = self.model.dtype_bytes as f64;
        let (k, n) = (k as f64, n as f64);
        let flops = 2.0 * tokens * k * n;
        let bytes = (k * n + tokens * (k + n)) * b;
        self.kernel_ns(flops, bytes, self.eff.gemm_compute, self.eff.gemm_memory)
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

    fn attention_kernel_ns(&self, flops: f64, bytes: f64) -> f64 {
        self.kernel_ns(
            flops,
            bytes,
            self.eff.attention_compute,
            self.eff.attention_memory,
        )
    }

    /// One layer of prefill attention over these chunks, as one kernel.
    pub fn prefill_layer_ns(&self, prefills: &[SeqWork]) -> f64 {
        let (kv_tok, q_tok, qk_pv) = self.attention_per_token();
        let (mut flops, mut bytes) = (0.0, 0.0);
        for s in prefills {
            let (c, p) = (s.new_tokens as f64, s.context as f64);
            // Causal: query i attends to p + i + 1 keys; the sum over the chunk is c(p + (c+1)/2).
            flops += qk_pv * c * (p + (c + 1.0) / 2.0);
            bytes += (p + c) * kv_tok + 2.0 * c * q_tok;
        }
        self.attention_kernel_ns(flops, bytes)
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
        self.attention_kernel_ns(flops, bytes)
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
        cost.linear_ns = layers
            * self
                .gemms
                .iter()
                .map(|&(k, n)| self.gemm_ns(tokens, k, n))
                .sum::<f64>();

        if !batch.prefills.is_empty() {
            cost.prefill_attention_ns = layers * self.prefill_layer_ns(&batch.prefills);
        }
        if !batch.decodes.is_empty() {
            cost.decode_attention_ns = layers * self.decode_layer_ns(&batch.decodes);
        }
        if batch.sampled > 0 {
            cost.lm_head_ns = self.gemm_ns(batch.sampled as f64, m.hidden as u64, m.vocab as u64);
        }
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
            self.eff.attention_memory
        )
    }
}
