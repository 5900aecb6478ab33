//! Step-time models. The engine describes each step as a [`BatchShape`]; a [`CostModel`]
//! turns it into nanoseconds. The roofline model is the default; the calibrated model
//! ([`Calibrated`], from a `kvsim calibrate` profile) implements the same trait.

pub mod all_reduce;
pub mod calibrated;
pub mod interp;
pub mod parallel;
pub mod profile;
mod roofline;

pub use calibrated::Calibrated;
pub use parallel::Parallel;
pub use roofline::{AttentionWork, PrefillSpan, Roofline};

/// One request's share of a step.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SeqWork {
    /// Tokens computed for this request in the step.
    pub new_tokens: u32,
    /// Tokens already in its KV cache before the step (cached prefix or earlier chunks).
    pub context: u32,
}

/// The composition of one engine step.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct BatchShape {
    /// Requests with more than one new token (prefill chunks).
    pub prefills: Vec<SeqWork>,
    /// Requests with exactly one new token (decodes); `context` excludes the new token.
    pub decodes: Vec<SeqWork>,
    /// Requests that sample a token at the end of the step (run the LM head).
    pub sampled: u32,
    /// Tokens the routed experts of this GPU see in the step when a mixture-of-experts
    /// model's MoE layers span several data-parallel engine cores: the whole group's
    /// batch, gathered before the experts run; 0: this batch's own tokens.
    pub moe_tokens: u64,
}

impl BatchShape {
    /// Empty the batch, keeping its allocations.
    pub fn clear(&mut self) {
        self.prefills.clear();
        self.decodes.clear();
        self.sampled = 0;
        self.moe_tokens = 0;
    }

    /// Tokens the routed experts see: [`BatchShape::moe_tokens`], or the batch's own.
    pub fn expert_tokens(&self) -> u64 {
        if self.moe_tokens > 0 {
            self.moe_tokens
        } else {
            self.total_tokens()
        }
    }

    /// Total tokens computed in the step.
    pub fn total_tokens(&self) -> u64 {
        self.prefills
            .iter()
            .chain(&self.decodes)
            .map(|s| s.new_tokens as u64)
            .sum()
    }

    /// Requests in the step.
    pub fn num_seqs(&self) -> usize {
        self.prefills.len() + self.decodes.len()
    }
}

/// The time of one step, split into its terms (nanoseconds).
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct StepCost {
    /// Linear layers over all layers.
    pub linear_ns: f64,
    /// Prefill attention over all layers.
    pub prefill_attention_ns: f64,
    /// Decode attention over all layers.
    pub decode_attention_ns: f64,
    /// LM head and sampler (once per step, whatever the parallelism).
    pub lm_head_ns: f64,
    /// Element-wise kernels: norms, RoPE, activation, KV-cache write, embedding, final norm.
    pub elementwise_ns: f64,
    /// CPU overhead.
    pub overhead_ns: f64,
    /// Collective and point-to-point communication: tensor-parallel all-reduces and the
    /// activations sent between pipeline stages.
    pub communication_ns: f64,
    /// Idle pipeline time: stages waiting for micro-batches (fill and drain, imbalance).
    pub pipeline_bubble_ns: f64,
    /// Copies between GPU and host memory that the step waits for (CPU-tier loads, swaps).
    pub host_transfer_ns: f64,
}

impl StepCost {
    /// The whole step, rounded up to an integer nanosecond (at least 1).
    pub fn total_ns(&self) -> u64 {
        let t = self.linear_ns
            + self.prefill_attention_ns
            + self.decode_attention_ns
            + self.lm_head_ns
            + self.elementwise_ns
            + self.overhead_ns
            + self.communication_ns
            + self.pipeline_bubble_ns
            + self.host_transfer_ns;
        (t.ceil() as u64).max(1)
    }
}

/// Predicts the duration of an engine step.
pub trait CostModel {
    /// The cost of one step with the given composition.
    fn step_cost(&self, batch: &BatchShape) -> StepCost;
    /// A short description for reports (which model, which parameters).
    fn describe(&self) -> String;
    /// Warnings gathered while predicting (e.g. queries outside a measured grid).
    fn warnings(&self) -> Vec<String> {
        Vec::new()
    }
}
