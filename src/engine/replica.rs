//! One engine replica: turns scheduler decisions into timed steps on the cost model and
//! reports what happened to a [`Recorder`].

use super::config::EngineSetup;
use super::core::EngineCore;
use super::kv_cache_manager::KvCacheManager;
use super::request::EngineRequest;
use super::scheduler::{Scheduled, Scheduler, StepOutcome};
use super::sglang::scheduler::SglScheduler;
use crate::cluster::topology::Route;
use crate::cost::{BatchShape, CostModel, SeqWork};
use crate::error::{Error, Result};
use crate::sim::recorder::{Recorder, StepRecord};
use crate::workload::Request;
use std::collections::VecDeque;

mod fast_forward;

/// Why a request was rejected on arrival.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum RejectReason {
    /// Prompt plus output exceeds `max_model_len`.
    ExceedsMaxModelLen,
    /// Prompt plus output needs more blocks than the whole KV cache.
    ExceedsKvCapacity,
    /// The trace asks for no output tokens.
    ZeroOutputTokens,
    /// The trace has an empty prompt.
    EmptyPrompt,
}

impl RejectReason {
    /// Short name used in reports.
    pub fn as_str(self) -> &'static str {
        match self {
            RejectReason::ExceedsMaxModelLen => "exceeds_max_model_len",
            RejectReason::ExceedsKvCapacity => "exceeds_kv_capacity",
            RejectReason::ZeroOutputTokens => "zero_output_tokens",
            RejectReason::EmptyPrompt => "empty_prompt",
        }
    }
}

/// What a replica does in a cluster.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// Prompts and output.
    Unified,
    /// Prompts only: a request leaves after its first token, for a decode replica.
    Prefill,
    /// Output only: requests arrive with their prompt's KV.
    Decode,
}

/// A replica of the engine.
pub struct Replica {
    index: u32,
    role: Role,
    core: EngineCore,
    cost: Box<dyn CostModel>,
    /// Route between this replica's GPUs and host memory (CPU tier, swap).
    host_route: Route,
    /// Bytes of one block on one GPU.
    block_bytes: f64,
    /// Bytes of one token's K and V on one GPU at the model's dtype.
    kv_bytes_per_token: f64,
    /// Requests that finished their prompt here and leave for a decode replica.
    handoffs: Vec<EngineRequest>,
    batch: BatchShape,
    outcome: StepOutcome,
    max_model_len: u32,
    busy: bool,
    audit: bool,
    /// Steps scheduled whose output is not yet applied, oldest first (one with synchronous
    /// scheduling, up to two with asynchronous).
    in_flight: VecDeque<InFlight>,
    spare_plans: Vec<Vec<Scheduled>>,
    /// The next `finish_step` applies the oldest step in flight.
    apply_due: bool,
    /// When the GPU finishes the last step started, ns.
    gpu_free_ns: u64,
    steps_started: u64,
    applied: Vec<Applied>,
    applied_step: bool,
    last_step: StepRecord,
}

/// vLLM's scheduler over a KV cache manager built from `setup`.
fn vllm_scheduler(setup: &EngineSetup) -> Scheduler {
    let mut kv = KvCacheManager::new(
        setup.memory.num_gpu_blocks as u32,
        setup.block_size,
        setup.enable_prefix_caching,
        setup.free_unhashed_first,
    );
    if let Some(t) = &setup.token_policy {
        kv.set_token_policy(t.clone());
    }
    let kinds = &setup.kv_groups.kinds;
    if kinds.len() > 1 || kinds[0] != crate::model::LayerAttention::Full {
        // vLLM's `max_concurrent_batches`: two with asynchronous scheduling, else one
        // per pipeline stage.
        let sched = &setup.scheduler;
        let batches = if sched.async_scheduling && setup.parallel.pp == 1 {
            2
        } else {
            setup.parallel.pp as u64
        };
        kv.set_groups(
            kinds.clone(),
            batches * sched.max_num_batched_tokens as u64,
            sched.max_model_len as u64,
        );
    }
    Scheduler::new(setup.scheduler.clone(), kv)
}

/// A request that got a token when a step's output was applied.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Applied {
    /// The request's index in the workload.
    pub id: u64,
    /// The token was its last.
    pub finished: bool,
}

/// What [`Replica::plan_step`] found to do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Planned {
    /// Nothing: no request and no output in flight.
    Idle,
    /// No new step; the output in flight is due at this time, ns.
    Wait(u64),
    /// A step is scheduled, to price and commit.
    Batch,
}

/// When a step starts on the GPU and how long it runs, ns.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StepTiming {
    /// GPU start.
    pub start_ns: u64,
    /// GPU duration (with synchronous scheduling, the CPU work too).
    pub duration_ns: u64,
}

/// A step whose output is not yet applied.
#[derive(Debug)]
struct InFlight {
    plan: Vec<Scheduled>,
    end_ns: u64,
}

impl Replica {
    /// Build a replica from a resolved setup and a cost model. With `audit`, every step
    /// recounts all blocks (slow; for tests). A one-replica cluster: index 0, unified,
    /// PCIe to the host as the GPU preset says.
    pub fn new(setup: &EngineSetup, cost: Box<dyn CostModel>, audit: bool) -> Self {
        let host_route = Route {
            bytes_per_s: setup.gpu.host_link_bytes_per_s,
            latency_ns: 0.0,
            hops: 1,
        };
        Self::in_cluster(setup, cost, audit, 0, Role::Unified, host_route)
    }

    /// A replica with an index, a role and a route to host memory.
    pub fn in_cluster(
        setup: &EngineSetup,
        cost: Box<dyn CostModel>,
        audit: bool,
        index: u32,
        role: Role,
        host_route: Route,
    ) -> Self {
        let (core, max_model_len) = match &setup.sglang {
            Some(cfg) => (
                EngineCore::Sglang(Box::new(SglScheduler::new(cfg.clone()))),
                cfg.context_len,
            ),
            None => (
                EngineCore::Vllm(Box::new(vllm_scheduler(setup))),
                setup.scheduler.max_model_len,
            ),
        };
        Replica {
            index,
            role,
            host_route,
            block_bytes: setup.memory.block_bytes as f64,
            kv_bytes_per_token: setup.shard.kv_bytes_per_token() as f64,
            handoffs: Vec::new(),
            core,
            cost,
            batch: BatchShape::default(),
            outcome: StepOutcome::default(),
            max_model_len,
            busy: false,
            audit,
            in_flight: VecDeque::new(),
            spare_plans: Vec::new(),
            apply_due: false,
            gpu_free_ns: 0,
            steps_started: 0,
            applied: Vec::new(),
            applied_step: false,
            last_step: StepRecord::default(),
        }
    }

    /// The engine core (read only).
    pub fn core(&self) -> &EngineCore {
        &self.core
    }

    /// The vLLM scheduler, if the replica runs vLLM.
    pub fn vllm(&self) -> Option<&Scheduler> {
        self.core.vllm()
    }

    /// The replica's index in the cluster.
    pub fn index(&self) -> u32 {
        self.index
    }

    /// Its role.
    pub fn role(&self) -> Role {
        self.role
    }

    /// Tokens still to produce (prompt and output) over the requests it holds.
    pub fn outstanding_tokens(&self) -> u64 {
        self.core.outstanding_tokens()
    }

    /// Requests it holds.
    pub fn outstanding_requests(&self) -> u64 {
        self.core.num_held() as u64
    }

    /// Fraction of usable blocks referenced by requests.
    pub fn kv_usage(&self) -> f64 {
        self.core.kv_usage()
    }

    /// Leading blocks of a prompt this replica holds (GPU, then CPU tier): of its block
    /// `hashes` (vLLM) or its token ids `tokens` (SGLang; see
    /// [`EngineCore::cached_prefix_blocks`]).
    pub fn cached_prefix_blocks(&self, hashes: &[u64], tokens: &[u64], block_size: u32) -> usize {
        self.core.cached_prefix_blocks(hashes, tokens, block_size)
    }

    /// Move the requests whose prompt finished here (for a decode replica) into `out`.
    pub fn take_handoffs(&mut self, out: &mut Vec<EngineRequest>) {
        out.append(&mut self.handoffs);
    }

    /// Use a CPU tier for evicted blocks.
    pub fn set_cpu_tier(&mut self, tier: super::cpu_tier::CpuTier) {
        if let Some(s) = self.core.vllm_mut() {
            s.kv_mut().set_cpu_tier(tier);
        }
    }

    /// Accept a request whose prompt ran on a prefill replica: its KV (`input_tokens`) and
    /// first token arrived at `now_ns`.
    pub fn add_transferred(&mut self, mut er: EngineRequest, now_ns: u64) {
        debug_assert_eq!(self.role, Role::Decode);
        er.status = super::request::Status::Waiting;
        er.num_computed = 0;
        er.computed_high_water = er.req.input_tokens;
        er.resume_tokens = er.req.input_tokens;
        er.resume_from_host = false;
        er.output_limit = er.req.output_tokens;
        er.first_token_ns = Some(now_ns);
        er.last_token_ns = now_ns;
        self.core.add_request(er);
    }

    /// True while a step is executing.
    pub fn is_busy(&self) -> bool {
        self.busy
    }

    /// True when the replica has work that a new step could do, or output in flight.
    pub fn has_work(&self) -> bool {
        !self.core.is_idle() || !self.in_flight.is_empty()
    }

    /// Accept an arriving request, or reject it with a reason.
    pub fn add_request(&mut self, req: Request, now_ns: u64, rec: &mut Recorder) -> Result<()> {
        let total = req.input_tokens as u64 + req.output_tokens as u64;
        let reason = if req.input_tokens == 0 {
            Some(RejectReason::EmptyPrompt)
        } else if req.output_tokens == 0 {
            Some(RejectReason::ZeroOutputTokens)
        } else if total > self.max_model_len as u64 {
            Some(RejectReason::ExceedsMaxModelLen)
        } else {
            self.core.refuse(req.input_tokens, req.output_tokens)
        };
        match reason {
            Some(r) => rec.on_reject(&req, r, now_ns),
            None => {
                let mut er = EngineRequest::new(req);
                er.prefill_replica = self.index;
                if self.role == Role::Prefill {
                    er.output_limit = 1;
                }
                self.core.add_request(er);
                Ok(())
            }
        }
    }

    /// Schedule a step at `now_ns` and start it. Returns when [`Replica::finish_step`] is
    /// due, or `None` if there is nothing to run.
    ///
    /// Synchronous scheduling: the step runs its CPU work and then its GPU work, and its
    /// output is applied at its end. Asynchronous scheduling (vLLM 0.33's default, a batch
    /// queue of two): the CPU schedules step n+1 while the GPU runs step n; step n+1 starts
    /// on the GPU at `max(now + cpu, end of step n)`, and step n's output is applied then
    /// (so a request that finished in step n holds its blocks through the scheduling of
    /// step n+1).
    pub fn start_step(&mut self, now_ns: u64, rec: &mut Recorder) -> Result<Option<u64>> {
        match self.plan_step(now_ns)? {
            Planned::Idle => Ok(None),
            Planned::Wait(at) => Ok(Some(at)),
            Planned::Batch => {
                let timing = self.price_step(now_ns, 0);
                self.commit_step(timing, rec).map(Some)
            }
        }
    }

    /// The first part of [`Replica::start_step`]: schedule a step at `now_ns`. A replica
    /// with nothing new to run but output in flight waits for it (and is busy until then).
    pub fn plan_step(&mut self, now_ns: u64) -> Result<Planned> {
        debug_assert!(!self.busy);
        if self.core.is_idle() && self.in_flight.is_empty() {
            return Ok(Planned::Idle);
        }
        self.core.schedule(now_ns)?;
        if !self.core.scheduled().is_empty() {
            return Ok(Planned::Batch);
        }
        // Nothing new can run: wait for the output of the step in flight.
        let Some(oldest) = self.in_flight.front() else {
            return Err(Error::failure(format!(
                "scheduler stalled at t={:.3}s with {} waiting and {} running requests",
                now_ns as f64 / 1e9,
                self.core.num_waiting(),
                self.core.num_running()
            )));
        };
        self.apply_due = true;
        self.busy = true;
        Ok(Planned::Wait(oldest.end_ns.max(now_ns)))
    }

    /// Tokens of the step just planned.
    pub fn scheduled_tokens(&self) -> u64 {
        self.core
            .scheduled()
            .iter()
            .map(|s| s.new_tokens as u64)
            .sum()
    }

    /// When the step just planned would start on the GPU and how long it would run, its
    /// routed experts seeing `moe_tokens` tokens (0: its own; [`BatchShape::moe_tokens`]).
    pub fn price_step(&mut self, now_ns: u64, moe_tokens: u64) -> StepTiming {
        let cost = self.step_cost(moe_tokens);
        self.timing_of(&cost, now_ns)
    }

    /// When a step of `cost` scheduled at `now_ns` runs on the GPU: with asynchronous
    /// scheduling its CPU work is done by `now + cpu` and the GPU starts it when the step
    /// before ends; otherwise it starts at once and its CPU work is part of its duration.
    fn timing_of(&self, cost: &crate::cost::StepCost, now_ns: u64) -> StepTiming {
        let cpu = (cost.overhead_ns.ceil() as u64).min(cost.total_ns());
        if self.core.is_async() {
            StepTiming {
                start_ns: (now_ns + cpu).max(self.gpu_free_ns),
                duration_ns: (cost.total_ns() - cpu).max(1),
            }
        } else {
            StepTiming {
                start_ns: now_ns,
                duration_ns: cost.total_ns(),
            }
        }
    }

    /// Start the step just planned with `timing` (its own [`Replica::price_step`], or a
    /// data-parallel group's common one). Returns when [`Replica::finish_step`] is due.
    pub fn commit_step(&mut self, timing: StepTiming, rec: &mut Recorder) -> Result<u64> {
        let asynchronous = self.core.is_async();
        let StepTiming {
            start_ns: start,
            duration_ns: duration,
        } = timing;
        self.record_step(start, duration, rec)?;
        let end_ns = start + duration;
        self.gpu_free_ns = end_ns;
        let mut plan = self.spare_plans.pop().unwrap_or_default();
        plan.clear();
        plan.extend_from_slice(self.core.scheduled());
        self.in_flight.push_back(InFlight { plan, end_ns });
        self.steps_started += 1;
        self.apply_due = !asynchronous || self.in_flight.len() >= 2;
        self.busy = true;
        Ok(if asynchronous { start } else { end_ns })
    }

    /// The GPU is busy until `end_ns` (a data-parallel group's step it joined with a
    /// dummy batch).
    pub fn hold_gpu_until(&mut self, end_ns: u64) {
        self.gpu_free_ns = self.gpu_free_ns.max(end_ns);
    }

    /// The cost of the step just scheduled, host transfers included.
    fn step_cost(&mut self, moe_tokens: u64) -> crate::cost::StepCost {
        self.batch.clear();
        self.batch.moe_tokens = moe_tokens;
        let mut host_value_tokens = 0.0f64;
        let token_policy = self.core.vllm().and_then(|v| v.kv().token_policy());
        for s in self.core.scheduled() {
            let r = self.core.request(s.slot);
            let mut work = SeqWork {
                new_tokens: s.new_tokens,
                context: s.context,
            };
            if s.decode {
                if let Some(t) = token_policy {
                    // The step reads the policy's share of the context (decode attention
                    // reads `context + 1` tokens).
                    let ctx = s.context as u64 + 1;
                    let read = t.read_tokens(r.req.input_tokens, ctx);
                    work.context = (read.round() as u32).max(1) - 1;
                    host_value_tokens += t.host_value_tokens(ctx);
                }
                self.batch.decodes.push(work);
            } else {
                self.batch.prefills.push(work);
            }
            if s.samples {
                self.batch.sampled += 1;
            }
        }
        let mut cost = self.cost.step_cost(&self.batch);
        let t = self.core.step_traffic();
        // Loads and swap-ins come in, swap-outs go out: the two directions overlap.
        // Offloaded values fetched for the step (ShadowKV): half of each token's KV bytes.
        let load = (t.cpu_load_blocks + t.swap_in_blocks) as f64 * self.block_bytes
            + host_value_tokens * self.kv_bytes_per_token / 2.0;
        let store = t.swap_out_blocks as f64 * self.block_bytes;
        let one_way = |bytes: f64| {
            if bytes > 0.0 {
                self.host_route.time_ns(bytes)
            } else {
                0.0
            }
        };
        cost.host_transfer_ns = one_way(load).max(one_way(store));
        cost
    }

    /// Check the block counts and write the step's row.
    fn record_step(&mut self, start_ns: u64, duration_ns: u64, rec: &mut Recorder) -> Result<()> {
        let counts = if self.audit {
            self.core.audit()?
        } else {
            let c = self.core.counts();
            if c.used + c.cached + c.free != c.total {
                return Err(Error::failure(format!(
                    "block conservation violated: {c:?}"
                )));
            }
            c
        };
        let scheduled = self.core.scheduled();
        let decode_tokens = scheduled.iter().filter(|s| s.decode).count() as u64;
        let prefill_tokens = scheduled
            .iter()
            .filter(|s| !s.decode)
            .map(|s| s.new_tokens as u64)
            .sum();
        self.last_step = StepRecord {
            replica: self.index,
            start_ns,
            duration_ns,
            batch_size: scheduled.len() as u32,
            prefill_seqs: scheduled.len() as u32 - decode_tokens as u32,
            prefill_tokens,
            decode_tokens,
            blocks: counts,
            waiting: self.core.num_waiting() as u32,
            running: self.core.num_running() as u32,
            preemptions: self.core.step_preemptions(),
            sglang: self.core.sglang_step(),
        };
        rec.on_step(&self.last_step)
    }

    /// The row of the last step started (what `steps.csv` got).
    pub fn last_step(&self) -> &StepRecord {
        &self.last_step
    }

    /// At `now_ns`, when [`Replica::start_step`] said: apply the output of the oldest step
    /// in flight if it is due (emit tokens, complete requests).
    pub fn finish_step(&mut self, now_ns: u64, rec: &mut Recorder) -> Result<()> {
        self.busy = false;
        self.applied.clear();
        self.applied_step = false;
        if !std::mem::take(&mut self.apply_due) {
            return Ok(());
        }
        let Some(done) = self.in_flight.pop_front() else {
            return Ok(());
        };
        self.applied_step = true;
        self.core
            .update_from_output(now_ns, &done.plan, &mut self.outcome);
        self.spare_plans.push(done.plan);
        for &slot in &self.outcome.sampled {
            let r = self.core.token_view(slot);
            let gap = (r.generated > 1).then(|| now_ns - r.last_token_ns);
            rec.on_token(r.id, gap);
            self.applied.push(Applied {
                id: r.id,
                finished: r.finished,
            });
            self.core.set_last_token(slot, now_ns);
        }
        for k in 0..self.outcome.finished.len() {
            let r = self.core.take_finished(self.outcome.finished[k]);
            if self.role == Role::Prefill && r.req.output_tokens > 1 {
                self.handoffs.push(r);
            } else {
                rec.on_finish(self.index, &r, now_ns)?;
            }
        }
        if self.audit {
            self.core.audit()?;
        }
        Ok(())
    }

    /// The requests that got a token in the last [`Replica::finish_step`] (empty if it
    /// applied no output), and which of them it finished.
    pub fn applied_tokens(&self) -> &[Applied] {
        &self.applied
    }

    /// True when the last [`Replica::finish_step`] applied a step's output.
    pub fn applied_a_step(&self) -> bool {
        self.applied_step
    }

    /// Steps started so far.
    pub fn steps_started(&self) -> u64 {
        self.steps_started
    }

    /// Choose cached-block evictions with a paging policy, told next uses by `oracle` if
    /// it looks ahead.
    pub fn set_evictor(
        &mut self,
        evictor: super::evictor::PolicyEvictor,
        oracle: Option<std::sync::Arc<super::evictor::TraceNextUse>>,
    ) {
        if let Some(s) = self.core.vllm_mut() {
            let kv = s.kv_mut();
            kv.set_evictor(evictor);
            if let Some(o) = oracle {
                kv.set_oracle(o);
            }
        }
    }

    /// Total preemptions.
    pub fn preemptions(&self) -> u64 {
        self.core.total_preemptions()
    }

    /// Description of the cost model.
    pub fn cost_model(&self) -> String {
        self.cost.describe()
    }

    /// Warnings of the cost model (queries outside a calibrated grid).
    pub fn cost_warnings(&self) -> Vec<String> {
        self.cost.warnings()
    }
}
