//! The scheduler, after vLLM v1's `sched/scheduler.py` (FCFS policy):
//!
//! 1. Running requests first, in order: each gets `num_tokens - num_computed` new tokens
//!    (capped by `long_prefill_token_threshold` and the remaining token budget). If its
//!    blocks cannot be allocated, the newest running request is preempted (recompute: its
//!    blocks are freed, hashed ones stay cached, it goes to the front of the waiting queue)
//!    until the allocation succeeds or the request itself was preempted.
//! 2. Only if nothing was preempted this step: waiting requests in FCFS order while the
//!    budget lasts and fewer than `max_num_seqs` run. A request's prefix-cache hit is looked
//!    up, its remaining tokens chunked to the budget (or, without chunked prefill, it waits
//!    for a budget that holds them all), and it is admitted only if the blocks it needs (its
//!    whole prompt, with `full_prompt_admission`) are free, keeping the watermark. The first
//!    request that cannot be admitted stops admission.

use super::kv_cache_manager::KvCacheManager;
use super::request::{EngineRequest, Status};
use crate::prefix::block_hashes;
use std::collections::VecDeque;

/// Scheduler limits.
#[derive(Debug, Clone)]
pub struct SchedulerConfig {
    /// Token budget per step.
    pub max_num_batched_tokens: u32,
    /// Maximum running requests.
    pub max_num_seqs: u32,
    /// Allow prompts to be split across steps.
    pub enable_chunked_prefill: bool,
    /// Per-request cap on new tokens in a step (0 = none).
    pub long_prefill_token_threshold: u32,
    /// Maximum sequence length.
    pub max_model_len: u32,
    /// Admission requires blocks for the whole prompt.
    pub full_prompt_admission: bool,
    /// Blocks kept free when admitting waiting requests.
    pub watermark_blocks: u32,
}

/// One request's part of a scheduled step.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Scheduled {
    /// Slot of the request.
    pub slot: u32,
    /// Tokens computed in the step.
    pub new_tokens: u32,
    /// Tokens computed before the step.
    pub context: u32,
}

/// Requests finished or advanced by a step.
#[derive(Debug, Default)]
pub struct StepOutcome {
    /// Slots of requests that produced a token.
    pub sampled: Vec<u32>,
    /// Slots of requests that finished (a subset of `sampled`).
    pub finished: Vec<u32>,
}

/// The scheduler with its request table and KV cache manager.
#[derive(Debug)]
pub struct Scheduler {
    cfg: SchedulerConfig,
    kv: KvCacheManager,
    slots: Vec<Option<EngineRequest>>,
    free_slots: Vec<u32>,
    waiting: VecDeque<u32>,
    running: Vec<u32>,
    /// The current step's schedule.
    pub scheduled: Vec<Scheduled>,
    /// Preemptions in the current step.
    pub step_preemptions: u32,
    /// Preemptions in total.
    pub total_preemptions: u64,
}

impl Scheduler {
    /// A scheduler over the given KV cache manager.
    pub fn new(cfg: SchedulerConfig, kv: KvCacheManager) -> Self {
        Scheduler {
            cfg,
            kv,
            slots: Vec::new(),
            free_slots: Vec::new(),
            waiting: VecDeque::new(),
            running: Vec::new(),
            scheduled: Vec::new(),
            step_preemptions: 0,
            total_preemptions: 0,
        }
    }

    /// The KV cache manager, to configure it.
    pub fn kv_mut(&mut self) -> &mut KvCacheManager {
        &mut self.kv
    }

    /// The KV cache manager (read only).
    pub fn kv(&self) -> &KvCacheManager {
        &self.kv
    }

    /// Requests waiting (new or preempted).
    pub fn num_waiting(&self) -> usize {
        self.waiting.len()
    }

    /// Requests running.
    pub fn num_running(&self) -> usize {
        self.running.len()
    }

    /// True when no request is waiting or running.
    pub fn is_idle(&self) -> bool {
        self.waiting.is_empty() && self.running.is_empty()
    }

    /// The request in a slot.
    pub fn request(&self, slot: u32) -> &EngineRequest {
        self.slots[slot as usize].as_ref().expect("live slot")
    }

    fn req_mut(&mut self, slot: u32) -> &mut EngineRequest {
        self.slots[slot as usize].as_mut().expect("live slot")
    }

    /// Queue a new request; returns its slot.
    pub fn add_request(&mut self, er: EngineRequest) -> u32 {
        let slot = match self.free_slots.pop() {
            Some(s) => s,
            None => {
                self.slots.push(None);
                self.slots.len() as u32 - 1
            }
        };
        self.slots[slot as usize] = Some(er);
        self.waiting.push_back(slot);
        slot
    }

    /// Register a request with the KV cache manager when it first reaches the head of the
    /// waiting queue, so that queued requests hold no block hashes.
    fn ensure_registered(&mut self, slot: u32) {
        if self.kv.has_request(slot as u64) {
            return;
        }
        let bs = self.kv.block_size();
        let er = self.slots[slot as usize].as_ref().expect("live slot");
        let total = er.max_tokens();
        let r = &er.req;
        let (index, arrival, input) = (r.id, r.arrival_ns, r.input_tokens);
        self.kv.add_request(slot as u64, r.id, |out| {
            block_hashes(&r.segments, r.input_tokens, total, bs, r.id, out)
        });
        self.kv.observe_request(slot as u64, index, arrival, input);
    }

    /// Remove a finished request and return its state.
    pub fn take_finished(&mut self, slot: u32) -> EngineRequest {
        self.kv.remove_request(slot as u64);
        self.free_slots.push(slot);
        self.slots[slot as usize].take().expect("live slot")
    }

    fn preempt(&mut self, slot: u32) {
        self.kv.free(slot as u64);
        let r = self.req_mut(slot);
        r.status = Status::Preempted;
        r.num_computed = 0;
        r.preemptions += 1;
        self.waiting.push_front(slot);
        self.step_preemptions += 1;
        self.total_preemptions += 1;
    }

    /// Decide the next step. Fills `self.scheduled` (empty if nothing can run) and advances
    /// each scheduled request's computed-token count.
    pub fn schedule(&mut self, now_ns: u64) {
        self.scheduled.clear();
        self.step_preemptions = 0;
        let mut budget = self.cfg.max_num_batched_tokens;

        let mut i = 0;
        while i < self.running.len() && budget > 0 {
            let slot = self.running[i];
            let r = self.request(slot);
            let mut n = r.num_tokens() - r.num_computed;
            if self.cfg.long_prefill_token_threshold > 0 {
                n = n.min(self.cfg.long_prefill_token_threshold);
            }
            n = n
                .min(budget)
                .min(self.cfg.max_model_len.saturating_sub(1 + r.num_computed));
            if n == 0 {
                i += 1;
                continue;
            }
            let (computed, known) = (r.num_computed, r.num_tokens());
            let mut ok = true;
            while !self
                .kv
                .allocate_slots(slot as u64, computed, n, None, None, 0, known)
            {
                let victim = self.running.pop().expect("running is not empty");
                self.preempt(victim);
                if victim == slot {
                    ok = false;
                    break;
                }
            }
            if !ok {
                break;
            }
            self.scheduled.push(Scheduled {
                slot,
                new_tokens: n,
                context: computed,
            });
            budget -= n;
            i += 1;
        }

        if self.step_preemptions == 0 {
            while budget > 0 && (self.running.len() as u32) < self.cfg.max_num_seqs {
                let Some(&slot) = self.waiting.front() else {
                    break;
                };
                self.ensure_registered(slot);
                let known = self.request(slot).num_tokens();
                let hit = self.kv.get_computed_blocks(slot as u64, known);
                let mut n = known - hit.tokens;
                if self.cfg.long_prefill_token_threshold > 0 {
                    n = n.min(self.cfg.long_prefill_token_threshold);
                }
                if !self.cfg.enable_chunked_prefill && n > budget {
                    break;
                }
                n = n.min(budget);
                let full = self.cfg.full_prompt_admission.then_some(known);
                let reserve = if self.scheduled.is_empty() {
                    0
                } else {
                    self.cfg.watermark_blocks
                };
                if !self
                    .kv
                    .allocate_slots(slot as u64, 0, n, Some(hit), full, reserve, known)
                {
                    break;
                }
                self.waiting.pop_front();
                self.running.push(slot);
                let r = self.req_mut(slot);
                r.status = Status::Running;
                r.num_computed = hit.tokens;
                if r.cached_tokens < 0 {
                    r.cached_tokens = hit.tokens as i64;
                }
                r.first_scheduled_ns.get_or_insert(now_ns);
                self.scheduled.push(Scheduled {
                    slot,
                    new_tokens: n,
                    context: hit.tokens,
                });
                budget -= n;
            }
        }

        // Advance computed tokens now, as vLLM does right after scheduling.
        for k in 0..self.scheduled.len() {
            let s = self.scheduled[k];
            let r = self.req_mut(s.slot);
            let end = s.context + s.new_tokens;
            if s.context < r.computed_high_water {
                r.recomputed_tokens += (end.min(r.computed_high_water) - s.context) as u64;
            }
            r.computed_high_water = r.computed_high_water.max(end);
            r.num_computed = end;
        }
    }

    /// Apply the end of the step at `now_ns`: every scheduled request that has computed all
    /// its known tokens samples one; those with all their output are finished and their
    /// blocks freed.
    pub fn update_from_output(&mut self, now_ns: u64, out: &mut StepOutcome) {
        out.sampled.clear();
        out.finished.clear();
        for k in 0..self.scheduled.len() {
            let slot = self.scheduled[k].slot;
            let r = self.req_mut(slot);
            if r.num_computed < r.num_tokens() {
                continue; // a prefill chunk that has not reached the end of the prompt
            }
            r.generated += 1;
            if r.first_token_ns.is_none() {
                r.first_token_ns = Some(now_ns);
            }
            out.sampled.push(slot);
            if r.generated >= r.req.output_tokens {
                r.status = Status::Finished;
                out.finished.push(slot);
            }
        }
        if !out.finished.is_empty() {
            for &slot in &out.finished {
                self.kv.free(slot as u64);
            }
            let slots = &self.slots;
            self.running.retain(|&s| {
                slots[s as usize]
                    .as_ref()
                    .is_some_and(|r| r.status != Status::Finished)
            });
        }
    }

    /// Record the time of the latest token of a request.
    pub fn set_last_token(&mut self, slot: u32, now_ns: u64) {
        self.req_mut(slot).last_token_ns = now_ns;
    }
}
