//! The scheduler, after vLLM v1's `sched/scheduler.py` (FCFS policy):
//!
//! 1. Running requests first, in order: each gets `num_tokens - num_computed` new tokens
//!    (capped by `long_prefill_token_threshold` and the remaining token budget). If its
//!    blocks cannot be allocated, the newest running request is preempted (recompute: its
//!    blocks are freed, hashed ones stay cached, it goes to the front of the waiting queue)
//!    until the allocation succeeds or the request itself was preempted.
//!    With swap preemption (vLLM v0's `preemption_mode=swap`), the victim's blocks are
//!    copied to host memory instead when the swap space holds them, and copied back when
//!    it is admitted again, so nothing is recomputed.
//! 2. Only if nothing was preempted this step: waiting requests in FCFS order while the
//!    budget lasts and fewer than `max_num_seqs` run. A request's prefix-cache hit is looked
//!    up, its remaining tokens chunked to the budget (or, without chunked prefill, it waits
//!    for a budget that holds them all), and it is admitted only if the blocks it needs (its
//!    whole prompt, with `full_prompt_admission`) are free, keeping the watermark while any
//!    request runs. The first request that cannot be admitted stops admission.

use super::kv_cache_manager::{CacheHit, KvCacheManager};
use super::request::{EngineRequest, Status};
use crate::prefix::request_block_hashes;
use std::collections::VecDeque;

mod steady;

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
    /// Swap space in blocks for swap preemption; `None`: recompute.
    pub swap_blocks: Option<u64>,
    /// Floor the long-prefill cap at the budget's fair share per request (vLLM
    /// `long_prefill_token_threshold_adaptive`).
    pub long_prefill_token_threshold_adaptive: bool,
    /// Schedule step n+1 before step n's output is applied (vLLM `async_scheduling`).
    pub async_scheduling: bool,
}

/// Blocks moved between GPU and host memory while scheduling one step.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct HostTraffic {
    /// Blocks loaded from the CPU tier (prefix hits there).
    pub cpu_load_blocks: u64,
    /// Blocks swapped out by preemptions.
    pub swap_out_blocks: u64,
    /// Blocks swapped back in by resumed requests.
    pub swap_in_blocks: u64,
}

/// One request's part of a scheduled step.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Scheduled {
    /// Slot of the request.
    pub slot: u32,
    /// The request's index in the workload.
    pub id: u64,
    /// Tokens computed in the step.
    pub new_tokens: u32,
    /// Tokens computed before the step.
    pub context: u32,
    /// One new token after all known ones: a decode (otherwise a prefill chunk).
    pub decode: bool,
    /// The step ends at the request's last known token, so it samples one.
    pub samples: bool,
}

/// Requests finished or advanced by a step.
#[derive(Debug, Default)]
pub struct StepOutcome {
    /// Slots of requests that produced a token.
    pub sampled: Vec<u32>,
    /// Slots of requests that finished (a subset of `sampled`).
    pub finished: Vec<u32>,
}

/// What [`Scheduler::plan_admission`] found for the head of the waiting queue.
#[derive(Debug, Clone, Copy)]
enum Admission {
    /// Without chunked prefill, its remaining tokens exceed the budget left.
    WaitsForBudget,
    /// No token of it can run this step.
    NothingToRun,
    /// A chunk to allocate and run.
    Chunk(AdmissionPlan),
}

/// The chunk of a waiting request that admission would run.
#[derive(Debug, Clone, Copy)]
struct AdmissionPlan {
    /// Its tokens now (prompt and output so far).
    known: u32,
    /// Tokens whose KV arrives without being computed (`EngineRequest::resume_tokens`).
    resume: u32,
    /// Its prefix-cache hit (none when resuming).
    hit: CacheHit,
    /// Tokens loaded from the CPU tier.
    cpu_tokens: u32,
    /// Tokens computed before the chunk.
    start: u32,
    /// Tokens of the chunk.
    n: u32,
    /// With whole-prompt admission, the tokens blocks must be free for first.
    full: Option<u32>,
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
    /// Workload indices of the requests preempted in the current step, in order.
    pub step_preempted: Vec<u64>,
    /// The requests admitted from the waiting queue in the current step, in admission order:
    /// workload index and whether it resumed after a preemption.
    pub step_admitted: Vec<(u64, bool)>,
    /// Preemptions in total.
    pub total_preemptions: u64,
    /// Host-memory traffic of the current step.
    pub step_traffic: HostTraffic,
    /// Host-memory traffic in total.
    pub total_traffic: HostTraffic,
    /// Preemptions that swapped (a subset of `total_preemptions`).
    pub swap_preemptions: u64,
    swap_used: u64,
    /// A request finished while in the waiting queue (it must leave it).
    finished_waiting: bool,
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
            step_preempted: Vec::new(),
            step_admitted: Vec::new(),
            total_preemptions: 0,
            step_traffic: HostTraffic::default(),
            total_traffic: HostTraffic::default(),
            swap_preemptions: 0,
            swap_used: 0,
            finished_waiting: false,
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

    /// Tokens still to compute (prompt and output) over the requests held.
    pub fn outstanding_tokens(&self) -> u64 {
        self.slots
            .iter()
            .flatten()
            .map(|r| {
                (r.req.input_tokens + r.output_limit)
                    .saturating_sub(r.num_computed.max(r.resume_tokens)) as u64
            })
            .sum()
    }

    /// True with asynchronous scheduling.
    pub fn is_async(&self) -> bool {
        self.cfg.async_scheduling
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
            request_block_hashes(r, total, bs, out)
        });
        if self.kv.wants_keys() {
            self.kv.set_keys(slot as u64, |out| {
                crate::prefix::request_segment_keys(r, out)
            });
        }
        self.kv.set_prompt(slot as u64, input);
        self.kv.observe_request(slot as u64, index, arrival, input);
    }

    /// Remove a finished request and return its state.
    pub fn take_finished(&mut self, slot: u32) -> EngineRequest {
        self.kv.remove_request(slot as u64);
        self.free_slots.push(slot);
        self.slots[slot as usize].take().expect("live slot")
    }

    fn preempt(&mut self, slot: u32) {
        let blocks = self.kv.num_blocks_of(slot as u64) as u64;
        let swap = self
            .cfg
            .swap_blocks
            .is_some_and(|cap| self.swap_used + blocks <= cap);
        self.kv.free(slot as u64);
        if swap {
            self.swap_used += blocks;
            self.swap_preemptions += 1;
            self.step_traffic.swap_out_blocks += blocks;
        }
        let r = self.req_mut(slot);
        r.status = Status::Preempted;
        if swap {
            r.resume_tokens = r.num_computed;
            r.resume_from_host = true;
            r.swapped_blocks = blocks;
        }
        r.num_computed = 0;
        r.preemptions += 1;
        // Output of steps in flight still arrives, but no longer moves the counters.
        r.stale_tokens = r.in_flight_tokens;
        r.placeholders = 0;
        let id = r.req.id;
        self.step_preempted.push(id);
        self.waiting.push_front(slot);
        self.step_preemptions += 1;
        self.total_preemptions += 1;
    }

    /// The per-request cap on new tokens this step: `long_prefill_token_threshold`, lifted
    /// when at most one request is running or waiting (vLLM 0.33 `schedule()`: a lone
    /// request has nobody to starve), and floored at a fair share of the budget when
    /// adaptive.
    fn long_prefill_cap(&self) -> u32 {
        let eligible = (self.running.len() + self.waiting.len()) as u32;
        let t = self.cfg.long_prefill_token_threshold;
        if eligible <= 1 || t == 0 {
            return 0;
        }
        if self.cfg.long_prefill_token_threshold_adaptive {
            t.max(self.cfg.max_num_batched_tokens / eligible)
        } else {
            t
        }
    }

    /// Decide the next step. Fills `self.scheduled` (empty if nothing can run) and advances
    /// each scheduled request's computed-token count.
    pub fn schedule(&mut self, now_ns: u64) {
        self.scheduled.clear();
        self.step_preempted.clear();
        self.step_preemptions = 0;
        self.step_admitted.clear();
        self.step_traffic = HostTraffic::default();
        let cap = self.long_prefill_cap();
        let mut budget = self.cfg.max_num_batched_tokens;
        self.schedule_running(cap, &mut budget);
        if self.step_preemptions == 0 {
            self.schedule_waiting(cap, &mut budget, now_ns);
        }
        let (t, s) = (&mut self.total_traffic, self.step_traffic);
        t.cpu_load_blocks += s.cpu_load_blocks;
        t.swap_out_blocks += s.swap_out_blocks;
        t.swap_in_blocks += s.swap_in_blocks;
        self.after_schedule();
    }

    /// Running requests first, in order, each its next tokens; preempt the newest when
    /// blocks run out.
    fn schedule_running(&mut self, cap: u32, budget: &mut u32) {
        let mut i = 0;
        while i < self.running.len() && *budget > 0 {
            let slot = self.running[i];
            let r = self.request(slot);
            if r.placeholders > 0
                && r.num_computed + 2 >= r.placeholders + r.req.input_tokens + r.output_limit
            {
                // Asynchronous scheduling: the step in flight produces the last token.
                i += 1;
                continue;
            }
            let mut n = r.num_tokens_with_placeholders() - r.num_computed;
            if cap > 0 {
                n = n.min(cap);
            }
            n = n
                .min(*budget)
                .min(self.cfg.max_model_len.saturating_sub(1 + r.num_computed));
            n = self.mamba_split(slot, r.num_computed, n, cap);
            if n == 0 {
                i += 1;
                continue;
            }
            let (computed, known, in_flight) = (r.num_computed, r.num_tokens(), r.in_flight_tokens);
            let mut ok = true;
            while !self
                .kv
                .allocate_slots(slot as u64, computed, n, None, None, 0, known, in_flight)
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
            self.push_scheduled(slot, n, computed);
            *budget -= n;
            i += 1;
        }
    }

    /// Waiting requests in FCFS order while the budget lasts and fewer than `max_num_seqs`
    /// run; the first that cannot be admitted stops admission.
    fn schedule_waiting(&mut self, cap: u32, budget: &mut u32, now_ns: u64) {
        while *budget > 0 && (self.running.len() as u32) < self.cfg.max_num_seqs {
            let Some(&slot) = self.waiting.front() else {
                break;
            };
            self.ensure_registered(slot);
            let Admission::Chunk(a) = self.plan_admission(slot, cap, *budget) else {
                break;
            };
            let reserve = self.admission_reserve();
            let in_flight = self.request(slot).in_flight_tokens;
            if !self.kv.allocate_slots(
                slot as u64,
                a.resume,
                a.n,
                Some(a.hit),
                a.full,
                reserve,
                a.known,
                in_flight,
            ) {
                break;
            }
            self.waiting.pop_front();
            self.running.push(slot);
            self.step_traffic.cpu_load_blocks += a.hit.cpu_blocks as u64;
            self.admit(slot, a.hit.tokens, a.cpu_tokens, a.start, now_ns);
            self.push_scheduled(slot, a.n, a.start);
            *budget -= a.n;
        }
    }

    /// Blocks an admission must leave free: the watermark whenever a request is running,
    /// scheduled this step or not (vLLM 0.33 passes `has_scheduled_reqs=bool(self.running)`
    /// to `allocate_slots`; with asynchronous scheduling a request whose last token is in
    /// flight runs without being scheduled).
    fn admission_reserve(&self) -> u32 {
        if self.running.is_empty() {
            0
        } else {
            self.cfg.watermark_blocks
        }
    }

    /// What admitting the waiting request in `slot` (registered with the KV cache
    /// manager) would schedule with `budget` tokens left: its prefix hit looked up, its
    /// remaining tokens capped and chunked. The allocation is the caller's.
    fn plan_admission(&mut self, slot: u32, cap: u32, budget: u32) -> Admission {
        let known = self.request(slot).num_tokens();
        let resume = self.request(slot).resume_tokens;
        let hit = if resume > 0 {
            CacheHit::NONE
        } else {
            self.kv.get_computed_blocks(slot as u64, known)
        };
        let cpu_tokens = self.kv.tokens_of(hit.cpu_blocks);
        let start = resume + hit.tokens + cpu_tokens;
        let mut n = known - start;
        if cap > 0 {
            n = n.min(cap);
        }
        if !self.cfg.enable_chunked_prefill && n > budget {
            return Admission::WaitsForBudget;
        }
        let n = self.mamba_split(slot, start, n.min(budget), cap);
        if n == 0 {
            return Admission::NothingToRun;
        }
        Admission::Chunk(AdmissionPlan {
            known,
            resume,
            hit,
            cpu_tokens,
            start,
            n,
            full: self.cfg.full_prompt_admission.then_some(known),
        })
    }

    /// Clip a prefill chunk of `n` tokens from `start` to the block boundaries linear
    /// attention caches its state at ([`KvCacheManager::mamba_split`]); `n` unchanged for
    /// other models.
    fn mamba_split(&self, slot: u32, start: u32, n: u32, cap: u32) -> u32 {
        let r = self.request(slot);
        let known = r.num_tokens();
        let prefill_end = r.req.input_tokens.max(known.saturating_sub(1));
        let mut max_prefill = self.cfg.max_num_batched_tokens;
        if cap > 0 {
            max_prefill = max_prefill.min(cap);
        }
        self.kv
            .mamba_split(start, n, prefill_end, known, max_prefill)
    }

    /// Mark a waiting request running from `start` computed tokens.
    fn admit(&mut self, slot: u32, hit_tokens: u32, cpu_tokens: u32, start: u32, now_ns: u64) {
        let r = self.req_mut(slot);
        let swapped_in = if r.resume_from_host {
            r.swapped_blocks
        } else {
            0
        };
        let resumed = r.status == Status::Preempted;
        r.status = Status::Running;
        r.num_computed = start;
        if r.cached_tokens < 0 {
            r.cached_tokens = hit_tokens as i64;
            r.cpu_hit_tokens = cpu_tokens as u64;
        }
        r.resume_tokens = 0;
        r.resume_from_host = false;
        r.swapped_blocks = 0;
        r.first_scheduled_ns.get_or_insert(now_ns);
        let id = r.req.id;
        self.swap_used -= swapped_in;
        self.step_traffic.swap_in_blocks += swapped_in;
        self.step_admitted.push((id, resumed));
    }

    fn push_scheduled(&mut self, slot: u32, new_tokens: u32, context: u32) {
        let r = self.request(slot);
        let known = r.num_tokens_with_placeholders();
        let decode = new_tokens == 1 && r.generated + r.placeholders > 0 && context + 1 == known;
        self.scheduled.push(Scheduled {
            slot,
            id: r.req.id,
            new_tokens,
            context,
            decode,
            samples: false,
        });
    }

    /// Advance computed tokens now, as vLLM does right after scheduling
    /// (`_update_after_schedule`); a request that reaches its known tokens samples one at
    /// the end of the step (with asynchronous scheduling it is promised as a placeholder).
    fn after_schedule(&mut self) {
        let promise = self.cfg.async_scheduling;
        for k in 0..self.scheduled.len() {
            let s = self.scheduled[k];
            let r = self.slots[s.slot as usize].as_mut().expect("live slot");
            let end = s.context + s.new_tokens;
            if s.context < r.computed_high_water {
                r.recomputed_tokens += (end.min(r.computed_high_water) - s.context) as u64;
            }
            r.computed_high_water = r.computed_high_water.max(end);
            r.num_computed = end;
            r.in_flight_tokens += s.new_tokens;
            let samples = end >= r.num_tokens_with_placeholders();
            if samples && promise {
                r.placeholders += 1;
            }
            self.scheduled[k].samples = samples;
        }
    }

    /// Apply the output of a step, at `now_ns`: every request of `plan` that sampled gets
    /// its token; those with all their output are finished and their blocks freed. With
    /// synchronous scheduling `plan` is the step just scheduled; with asynchronous
    /// scheduling it is the step before it.
    pub fn update_from_output(&mut self, now_ns: u64, plan: &[Scheduled], out: &mut StepOutcome) {
        out.sampled.clear();
        out.finished.clear();
        let bs = self.kv.block_size();
        for s in plan {
            let Some(r) = self.slots[s.slot as usize].as_mut() else {
                continue;
            };
            if r.req.id != s.id || r.status == Status::Finished {
                continue;
            }
            r.in_flight_tokens -= s.new_tokens;
            let stale = r.stale_tokens > 0;
            if stale {
                r.stale_tokens -= s.new_tokens;
            }
            if !s.samples {
                continue; // a prefill chunk that has not reached the end of the prompt
            }
            let had_placeholders = r.placeholders > 0;
            let was_running = r.status == Status::Running;
            r.generated += 1;
            if !stale && had_placeholders {
                r.placeholders -= 1;
            }
            if r.first_token_ns.is_none() {
                r.first_token_ns = Some(now_ns);
            }
            out.sampled.push(s.slot);
            let cache_upto = r.num_computed - r.in_flight_tokens;
            let finished = r.generated >= r.output_limit;
            if finished {
                self.finished_waiting |= !was_running;
                r.status = Status::Finished;
                out.finished.push(s.slot);
            }
            if !stale && was_running && had_placeholders {
                // Asynchronous scheduling: blocks filled by tokens that just became known.
                let known = r.num_tokens();
                self.kv
                    .cache_blocks(s.slot as u64, cache_upto.min(known) / bs);
            }
        }
        if !out.finished.is_empty() {
            for &slot in &out.finished {
                self.kv.free(slot as u64);
            }
            let slots = &self.slots;
            let live = |s: &u32| {
                slots[*s as usize]
                    .as_ref()
                    .is_some_and(|r| r.status != Status::Finished)
            };
            self.running.retain(live);
            if std::mem::take(&mut self.finished_waiting) {
                // A preempted request's last token arrived (asynchronous scheduling).
                self.waiting.retain(live);
            }
        }
    }

    /// Record the time of the latest token of a request.
    pub fn set_last_token(&mut self, slot: u32, now_ns: u64) {
        self.req_mut(slot).last_token_ns = now_ns;
    }
}
