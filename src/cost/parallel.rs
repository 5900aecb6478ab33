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
//! - data parallelism of a mixture-of-experts model (vLLM's `data_parallel_size`, its
//!   default `all2all_backend: allgather_reducescatter`): each MoE layer gathers the hidden
//!   states of every core's tokens before the experts (all-gather) and sums the experts'
//!   outputs back to each core's tokens after them (reduce-scatter), NCCL rings over the
//!   `dp` cores: together `2 (dp - 1) / dp x S / W + 2 (dp - 1) a` for the group's
//!   `S = tokens x hidden x 2` bytes, a ring all-reduce's time.

use super::all_reduce::AllReduce;
use super::{BatchShape, CostModel, StepCost};
use crate::cluster::topology::{ring_all_reduce_ns, Route};
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
    /// The MoE layers' dispatch and combine across data-parallel cores, if any.
    expert_group: Option<ExpertGroup>,
}

/// The data-parallel cores a mixture-of-experts model's MoE layers span.
#[derive(Debug, Clone, Copy)]
struct ExpertGroup {
    /// Cores.
    dp: u32,
    /// The slowest link between neighbouring cores' GPUs.
    link: Route,
    /// MoE layers of one pipeline stage.
    moe_layers: f64,
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
            expert_group: None,
        }
    }

    /// Gather and scatter the MoE layers' tokens over `dp` data-parallel cores joined by
    /// `link`, `moe_layers` of them per pipeline stage (no effect for `dp` 1 or no MoE
    /// layer).
    pub fn with_expert_group(mut self, dp: u32, link: Route, moe_layers: u32) -> Parallel {
        if dp > 1 && moe_layers > 0 {
            self.expert_group = Some(ExpertGroup {
                dp,
                link,
                moe_layers: moe_layers as f64,
            });
        }
        self
    }

    /// The MoE layers' all-gather and reduce-scatter of one stage over the data-parallel
    /// group when its experts see `expert_tokens` tokens (0 without a group).
    pub fn expert_dispatch_ns(&self, expert_tokens: u64) -> f64 {
        let Some(g) = self.expert_group else {
            return 0.0;
        };
        let bytes = expert_tokens as f64 * self.activation_bytes_per_token;
        g.moe_layers * ring_all_reduce_ns(g.dp, bytes, &g.link)
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
        // The group's tokens gathered for the experts, in proportion to the micro-batch's.
        let own = batch.total_tokens().max(1);
        if batch.moe_tokens > 0 {
            for b in out.iter_mut() {
                b.moe_tokens = (batch.moe_tokens * b.total_tokens()).div_ceil(own);
            }
        }
    }
}

impl CostModel for Parallel {
    fn step_cost(&self, batch: &BatchShape) -> StepCost {
        let whole = self.inner.step_cost(batch);
        let p = self.parallel.pp as usize;
        if p == 1 {
            return StepCost {
                communication_ns: self.tp_communication_ns(batch.total_tokens())
                    + self.expert_dispatch_ns(batch.expert_tokens()),
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
            let comm =
                self.tp_communication_ns(tokens) + self.expert_dispatch_ns(part.expert_tokens());
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
        let mut s = format!(
            "{} with TP {} and PP {} ({} micro-batches)",
            self.inner.describe(),
            self.parallel.tp,
            self.parallel.pp,
            self.parallel.micro_batches
        );
        if let Some(g) = self.expert_group {
            s += &format!(", MoE layers over {} data-parallel cores", g.dp);
        }
        if self.parallel.expert_parallel {
            s += ", expert parallel";
        }
        s
    }

    fn warnings(&self) -> Vec<String> {
        self.inner.warnings()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cost::StepCost;

    struct Free;
    impl CostModel for Free {
        fn step_cost(&self, _: &BatchShape) -> StepCost {
            StepCost::default()
        }
        fn describe(&self) -> String {
            "free".into()
        }
    }

    /// The MoE layers' all-gather and reduce-scatter over 4 cores: for the group's `S`
    /// bytes, `2 (n - 1) / n x S / W + 2 (n - 1) a` per MoE layer, by hand.
    #[test]
    fn data_parallel_moe_layers_pay_a_gather_and_a_scatter_of_the_groups_tokens() {
        let link = Route {
            bytes_per_s: 400e9,
            latency_ns: 2_000.0,
            hops: 1,
        };
        let p = Parallelism {
            tp: 1,
            pp: 1,
            micro_batches: 1,
            dp: 4,
            expert_parallel: true,
        };
        let par = Parallel::new(Box::new(Free), p, 32, 4096, 2, link, link)
            .with_expert_group(4, link, 32);
        let mut batch = BatchShape::default();
        batch.decodes.push(crate::cost::SeqWork {
            new_tokens: 1,
            context: 10,
        });
        batch.moe_tokens = 100;
        let bytes = 100.0 * 4096.0 * 2.0;
        let one = 2.0 * 3.0 / 4.0 * bytes / 400e9 * 1e9 + 2.0 * 3.0 * 2_000.0;
        let got = par.step_cost(&batch).communication_ns;
        assert!((got - 32.0 * one).abs() < 1e-6, "{got} vs {}", 32.0 * one);
        // Without a group (one core, or a dense model) nothing is gathered.
        let alone = Parallel::new(Box::new(Free), p, 32, 4096, 2, link, link)
            .with_expert_group(1, link, 32);
        assert_eq!(alone.step_cost(&batch).communication_ns, 0.0);
    }
}
