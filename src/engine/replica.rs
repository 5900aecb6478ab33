//! One engine replica: turns scheduler decisions into timed steps on the cost model and
//! reports what happened to a [`Recorder`].

use super::config::EngineSetup;
use super::kv_cache_manager::KvCacheManager;
use super::request::EngineRequest;
use super::scheduler::{Scheduler, StepOutcome};
use crate::cost::{BatchShape, CostModel, SeqWork};
use crate::error::{Error, Result};
use crate::sim::recorder::{Recorder, StepRecord};
use crate::workload::Request;

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

/// A replica of the engine.
pub struct Replica {
    scheduler: Scheduler,
    cost: Box<dyn CostModel>,
    batch: BatchShape,
    outcome: StepOutcome,
    max_model_len: u32,
    busy: bool,
    audit: bool,
}

impl Replica {
    /// Build a replica from a resolved setup and a cost model. With `audit`, every step
    /// recounts all blocks (slow; for tests).
    pub fn new(setup: &EngineSetup, cost: Box<dyn CostModel>, audit: bool) -> Self {
        let kv = KvCacheManager::new(
            setup.memory.num_gpu_blocks as u32,
            setup.block_size,
            setup.enable_prefix_caching,
            setup.free_unhashed_first,
        );
        Replica {
            scheduler: Scheduler::new(setup.scheduler.clone(), kv),
            cost,
            batch: BatchShape::default(),
            outcome: StepOutcome::default(),
            max_model_len: setup.scheduler.max_model_len,
            busy: false,
            audit,
        }
    }

    /// The scheduler (read only).
    pub fn scheduler(&self) -> &Scheduler {
        &self.scheduler
    }

    /// True while a step is executing.
    pub fn is_busy(&self) -> bool {
        self.busy
    }

    /// True when the replica has work that a new step could do.
    pub fn has_work(&self) -> bool {
        !self.scheduler.is_idle()
    }

    /// Accept an arriving request, or reject it with a reason.
    pub fn add_request(&mut self, req: Request, now_ns: u64, rec: &mut Recorder) -> Result<()> {
        let total = req.input_tokens as u64 + req.output_tokens as u64;
        let bs = self.scheduler.kv().block_size() as u64;
        let reason = if req.input_tokens == 0 {
            Some(RejectReason::EmptyPrompt)
        } else if req.output_tokens == 0 {
            Some(RejectReason::ZeroOutputTokens)
        } else if total > self.max_model_len as u64 {
            Some(RejectReason::ExceedsMaxModelLen)
        } else if total.div_ceil(bs) > self.scheduler.kv().num_usable_blocks() as u64 {
            Some(RejectReason::ExceedsKvCapacity)
        } else {
            None
        };
        match reason {
            Some(r) => rec.on_reject(&req, r, now_ns),
            None => {
                self.scheduler.add_request(EngineRequest::new(req));
                Ok(())
            }
        }
    }

    /// Schedule and start a step at `now_ns`. Returns its duration, or `None` if there is
    /// nothing to run.
    pub fn start_step(&mut self, now_ns: u64, rec: &mut Recorder) -> Result<Option<u64>> {
        debug_assert!(!self.busy);
        if self.scheduler.is_idle() {
            return Ok(None);
        }
        self.scheduler.schedule(now_ns);
        if self.scheduler.scheduled.is_empty() {
            return Err(Error::failure(format!(
                "scheduler stalled at t={:.3}s with {} waiting and {} running requests",
                now_ns as f64 / 1e9,
                self.scheduler.num_waiting(),
                self.scheduler.num_running()
            )));
        }
        self.batch.clear();
        let (mut prefill_tokens, mut decode_tokens) = (0u64, 0u64);
        for s in &self.scheduler.scheduled {
            let r = self.scheduler.request(s.slot);
            let work = SeqWork {
                new_tokens: s.new_tokens,
                context: s.context,
            };
            if s.new_tokens == 1 && r.generated > 0 && s.context + 1 == r.num_tokens() {
                self.batch.decodes.push(work);
                decode_tokens += 1;
            } else {
                self.batch.prefills.push(work);
                prefill_tokens += s.new_tokens as u64;
            }
            if r.num_computed >= r.num_tokens() {
                self.batch.sampled += 1;
            }
        }
        let cost = self.cost.step_cost(&self.batch);
        let duration = cost.total_ns();
        let counts = if self.audit {
            self.scheduler
                .kv()
                .audit()
                .map_err(|e| Error::failure(format!("block audit failed: {e}")))?
        } else {
            let c = self.scheduler.kv().counts();
            if c.used + c.cached + c.free != c.total {
                return Err(Error::failure(format!(
                    "block conservation violated: {c:?}"
                )));
            }
            c
        };
        rec.on_step(&StepRecord {
            start_ns: now_ns,
            duration_ns: duration,
            batch_size: self.batch.num_seqs() as u32,
            prefill_seqs: self.batch.prefills.len() as u32,
            prefill_tokens,
            decode_tokens,
            blocks: counts,
            waiting: self.scheduler.num_waiting() as u32,
            running: self.scheduler.num_running() as u32,
            preemptions: self.scheduler.step_preemptions,
        })?;
        self.busy = true;
        Ok(Some(duration))
    }

    /// Finish the running step at `now_ns`: emit tokens and complete requests.
    pub fn finish_step(&mut self, now_ns: u64, rec: &mut Recorder) -> Result<()> {
        self.busy = false;
        self.scheduler.update_from_output(now_ns, &mut self.outcome);
        for &slot in &self.outcome.sampled {
            let r = self.scheduler.request(slot);
            let gap = (r.generated > 1).then(|| now_ns - r.last_token_ns);
            rec.on_token(gap);
            self.scheduler.set_last_token(slot, now_ns);
        }
        for k in 0..self.outcome.finished.len() {
            let r = self.scheduler.take_finished(self.outcome.finished[k]);
            rec.on_finish(&r, now_ns)?;
        }
        if self.audit {
            self.scheduler
                .kv()
                .audit()
                .map_err(|e| Error::failure(format!("block audit failed: {e}")))?;
        }
        Ok(())
    }

    /// Choose cached-block evictions with a paging policy.
    pub fn set_evictor(&mut self, evictor: super::evictor::PolicyEvictor) {
        self.scheduler.kv_mut().set_evictor(evictor);
    }

    /// Total preemptions.
    pub fn preemptions(&self) -> u64 {
        self.scheduler.total_preemptions
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
