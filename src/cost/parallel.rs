//! Tensor and pipeline parallelism around a one-GPU cost model. The inner model is built
//! for the model shard one GPU holds ([`crate::model::Model::shard`]): its layers are one
//! pipeline stage's, its widths divided by the tensor-parallel degree. This wrapper adds
//! what parallelism costs (formulas in `docs/cost-model.md`):
//!
//! - tensor parallelism: two all-reduces of the step's activations per layer (after the
//!   attention output projection and after the MLP down projection, as in Megatron-LM and
//!   vLLM), each priced by the engine's algorithm ([`AllReduce`]) over the link between
//!   neighbouring GPUs;
//! - pipeline parallelism: the batch split into micro-batches that flow through the stages
//!   (GPipe schedule): `(m + p - 1)` stage slots of the slowest micro-batch, plus the
//!   activations sent between stages. The LM head and CPU overhead are paid once per step.

use super::all_reduce::AllReduce;
use super::{BatchShape, CostModel, StepCost};
use crate::cluster::topology::Route;
use crate::engine::config::Parallelism;

/// A parallel replica's step-time model.
pub struct Parallel {
    inner: Box<dyn CostModel>,
    parallel: Parallelism,
    layers_per_stage: f64,
    activation_bytes_per_token: f64,
    tp_link: Route,
    stage_link: Route,
    all_reduce: AllReduce,
    /// Every pair of a tensor-parallel group's GPUs is joined through an NVSwitch.
    nvswitch: bool,
}

impl Parallel {
    /// Wrap `inner` (a model of one GPU's shard). `tp_link` joins neighbouring GPUs of the
    /// tensor-parallel group; `stage_link` joins consecutive pipeline stages. Use
    /// [`Parallel::with_all_reduce`] for the engine's all-reduce (default: the ring).
    pub fn new(
        inner: Box<dyn CostModel>,
        parallel: Parallelism,
        layers_per_stage: u32,
        hidden: u32,
        dtype_bytes: u32,
        tp_link: Route,
        stage_link: Route,
    ) -> Parallel {
        Parallel {
            inner,
            parallel,
            layers_per_stage: layers_per_stage as f64,
            activation_bytes_per_token: hidden as f64 * dtype_bytes as f64,
            tp_link,
            stage_link,
            all_reduce: AllReduce::Ring,
            nvswitch: false,
        }
    }

    /// Price the all-reduces with `algorithm`; `nvswitch`: the tensor-parallel GPUs are
    /// joined through an NVSwitch.
    pub fn with_all_reduce(mut self, algorithm: AllReduce, nvswitch: bool) -> Parallel {
        self.all_reduce = algorithm;
        self.nvswitch = nvswitch;
        self
    }

    /// All-reduces of one stage for `tokens` tokens: two per layer.
    pub fn tp_communication_ns(&self, tokens: u64) -> f64 {
        let bytes = tokens as f64 * self.activation_bytes_per_token;
        let one = self
            .all_reduce
            .time_ns(self.parallel.tp, bytes, &self.tp_link, self.nvswitch);
        2.0 * self.layers_per_stage * one
    }

    fn split(&self, batch: &BatchShape, m: usize, out: &mut Vec<BatchShape>) {
        out.resize_with(m, BatchShape::default);
        for b in out.iter_mut() {
            b.clear();
        }
        let mut i = 0usize;
        for s in &batch.prefills {
            out[i % m].prefills.push(*s);
            i += 1;
        }
        for s in &batch.decodes {
            out[i % m].decodes.push(*s);
            i += 1;
        }
    }
}

impl CostModel for Parallel {
    fn step_cost(&self, batch: &BatchShape) -> StepCost {
        let whole = self.inner.step_cost(batch);
        let p = self.parallel.pp as usize;
        if p == 1 {
            return StepCost {
                communication_ns: self.tp_communication_ns(batch.total_tokens()),
                ..whole
            };
        }
        let m = (self.parallel.micro_batches as usize)
            .min(batch.num_seqs())
            .max(1);
        let mut parts = Vec::with_capacity(m);
        self.split(batch, m, &mut parts);
        let mut cost = StepCost {
            lm_head_ns: whole.lm_head_ns,
            overhead_ns: whole.overhead_ns,
            ..Default::default()
        };
        let (mut slowest, mut sum, mut largest) = (0.0f64, 0.0, 0u64);
        for part in &parts {
            let c = self.inner.step_cost(part);
            let tokens = part.total_tokens();
            let comm = self.tp_communication_ns(tokens);
            let stage = c.linear_ns
                + c.prefill_attention_ns
                + c.decode_attention_ns
                + c.elementwise_ns
                + comm;
            cost.linear_ns += c.linear_ns;
            cost.elementwise_ns += c.elementwise_ns;
            cost.prefill_attention_ns += c.prefill_attention_ns;
            cost.decode_attention_ns += c.decode_attention_ns;
            cost.communication_ns += comm;
            slowest = slowest.max(stage);
            sum += stage;
            largest = largest.max(tokens);
        }
        let hop = self
            .stage_link
            .time_ns(largest as f64 * self.activation_bytes_per_token);
        cost.communication_ns += (p - 1) as f64 * hop;
        cost.pipeline_bubble_ns = (m + p - 1) as f64 * slowest - sum;
        cost
    }

    fn describe(&self) -> String {
        format!(
            "{} with TP {} and PP {} ({} micro-batches)",
            self.inner.describe(),
            self.parallel.tp,
            self.parallel.pp,
            self.parallel.micro_batches
        )
    }

    fn warnings(&self) -> Vec<String> {
        self.inner.warnings()
    }
}
