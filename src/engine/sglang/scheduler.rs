//! SGLang 0.5.23's scheduler step (`managers/scheduler.py`): `get_next_batch_to_run`,
//! `_get_new_batch_prefill_raw`, `update_running_batch` with `retract_decode`, and
//! `process_batch_result`, over the radix tree and the slot pool. One call of
//! [`SglScheduler::schedule`] is one pass of `event_loop_normal`'s scheduling part; one
//! call of [`SglScheduler::update_from_output`] processes that batch's result.
//!
//! Rules, in SGLang's order: the request left mid-prefill by the last batch has its KV so
//! far inserted into the tree; the last batch, if it was a prefill, joins the running
//! batch (minus finished and chunked requests); a prefill batch is formed if any request
//! can be admitted (prefill first); otherwise the running requests decode, after the
//! decode memory check, which evicts, and may retract requests when even eviction cannot
//! make room. `batch_is_full` latches admission shut after a refusal until a request
//! leaves the running batch.

use super::adder::{AddResult, PrefillAdder};
use super::config::SglangConfig;
use super::policy::Policy;
use super::pool::SlotPool;
use super::radix::RadixTree;
use super::ratio::{RatioTracker, RETRACT_DECODE_STEPS};
use super::request::SglReq;
use crate::engine::scheduler::{Scheduled, StepOutcome};
use crate::error::{Error, Result};

/// What the last schedule decided, for step records and the conformance driver.
#[derive(Debug, Clone, Default)]
pub struct StepLog {
    /// The batch is a prefill (extend) batch; otherwise a decode batch (if any).
    pub extend: bool,
    /// Requests (slots) retracted by this step's decode memory check, in order.
    pub retracted: Vec<u32>,
    /// Requests admitted (or re-admitted after a retraction) by this step, with their
    /// matched prefix and whether it was their first admission.
    pub admitted: Vec<(u32, usize, bool)>,
}

/// A batch scheduled whose result is not processed yet.
#[derive(Debug, Clone, Default)]
struct Pending {
    slots: Vec<u32>,
    extend: bool,
}

/// The SGLang columns of one step's row (`steps.csv`, the kit's `sglang_steps.csv`),
/// taken after scheduling and allocation, before the step's result.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct StepSummary {
    /// An extend (prefill) batch; otherwise decode.
    pub extend: bool,
    /// Prefix hit tokens of the requests (re)admitted this step.
    pub cached_hit_tokens: u64,
    /// Requests retracted this step.
    pub retracted: u32,
    /// First admissions.
    pub new: u32,
    /// Re-admissions after a retraction.
    pub resumed: u32,
    /// The request left mid-prefill (its workload id).
    pub chunked: Option<u64>,
    /// Token slots not free (tree's evictable ones included).
    pub kv_used: u64,
    /// Tokens of the tree no request locks.
    pub tree_evictable: u64,
    /// Tokens of the tree some request locks.
    pub tree_protected: u64,
    /// Free token slots.
    pub kv_free: u64,
    /// The new-token ratio after scheduling.
    pub new_token_ratio: f64,
}

/// The prefill batch run last, as the next pass merges it.
#[derive(Debug, Clone, Default)]
struct LastExtend {
    slots: Vec<u32>,
    chunked: Option<u32>,
    shrank: bool,
}

/// One SGLang engine core's scheduler.
#[derive(Debug)]
pub struct SglScheduler {
    cfg: SglangConfig,
    page: u64,
    tree: RadixTree,
    pool: SlotPool,
    reqs: Vec<Option<SglReq>>,
    free_slots: Vec<u32>,
    waiting: Vec<u32>,
    running: Vec<u32>,
    chunked: Option<u32>,
    last_extend: Option<LastExtend>,
    running_shrank: bool,
    batch_is_full: bool,
    ratio: RatioTracker,
    policy: Policy,
    rows_held: u32,
    /// Batches scheduled whose results are not processed, oldest first (one at most when
    /// the next is scheduled: SGLang's `result_queue`).
    pending: std::collections::VecDeque<Pending>,
    spare: Vec<Vec<u32>>,
    /// Scratch flags by slot (all false between uses).
    marks: Vec<bool>,
    /// The batch to run, as the engine-independent step description.
    pub scheduled: Vec<Scheduled>,
    /// What this pass did.
    pub log: StepLog,
    /// Retractions so far.
    pub total_retractions: u64,
    /// Token slots the tree evicted so far.
    pub evicted_tokens: u64,
}

impl SglScheduler {
    /// An empty scheduler.
    pub fn new(cfg: SglangConfig) -> Self {
        let page = cfg.page_size.max(1) as u64;
        SglScheduler {
            page,
            tree: RadixTree::new(page as usize),
            pool: SlotPool::new(cfg.max_total_tokens, page),
            reqs: Vec::new(),
            free_slots: Vec::new(),
            waiting: Vec::new(),
            running: Vec::new(),
            chunked: None,
            last_extend: None,
            running_shrank: false,
            batch_is_full: false,
            ratio: RatioTracker::new(cfg.schedule_conservativeness),
            policy: Policy::new(cfg.schedule_policy, cfg.seed),
            rows_held: 0,
            pending: std::collections::VecDeque::new(),
            spare: Vec::new(),
            marks: Vec::new(),
            scheduled: Vec::new(),
            log: StepLog::default(),
            total_retractions: 0,
            evicted_tokens: 0,
            cfg,
        }
    }

    /// The settings.
    pub fn config(&self) -> &SglangConfig {
        &self.cfg
    }

    /// The radix tree.
    pub fn tree(&self) -> &RadixTree {
        &self.tree
    }

    /// The slot pool.
    pub fn pool(&self) -> &SlotPool {
        &self.pool
    }

    /// The new-token ratio.
    pub fn ratio(&self) -> f64 {
        self.ratio.current
    }

    /// The request in a slot.
    pub fn request(&self, slot: u32) -> &SglReq {
        self.reqs[slot as usize].as_ref().expect("live slot")
    }

    fn req_mut(&mut self, slot: u32) -> &mut SglReq {
        self.reqs[slot as usize].as_mut().expect("live slot")
    }

    /// Waiting requests (`len(waiting_queue)`).
    pub fn num_waiting(&self) -> usize {
        self.waiting.len()
    }

    /// Requests it holds: waiting, running, mid-prefill or just prefilled.
    pub fn num_held(&self) -> usize {
        self.reqs.len() - self.free_slots.len()
    }

    /// Requests in the running (decode) batch.
    pub fn num_running(&self) -> usize {
        self.running.len()
    }

    /// The request left mid-prefill (`chunked_req`).
    pub fn chunked(&self) -> Option<u32> {
        self.chunked
    }

    /// The active policy for the queue as it stands.
    pub fn active_policy(&self) -> super::config::SchedulePolicy {
        self.policy.active(self.waiting.len())
    }

    /// Nothing waits, runs or is mid-prefill.
    pub fn is_idle(&self) -> bool {
        self.waiting.is_empty()
            && self.running.is_empty()
            && self.chunked.is_none()
            && self.last_extend.as_ref().is_none_or(|l| l.slots.is_empty())
    }

    /// Tokens still to produce (prompt and output) over the requests it holds.
    pub fn outstanding_tokens(&self) -> u64 {
        self.reqs
            .iter()
            .flatten()
            .filter(|r| !r.finished())
            .map(|r| {
                let left_prompt = r.fill_len().saturating_sub(r.committed) as u64;
                left_prompt + r.remaining_new()
            })
            .sum()
    }

    /// Queue a request from the workload: its token ids, its output clamped as
    /// `init_req_max_new_tokens` clamps it. Returns its slot.
    pub fn add(&mut self, mut er: crate::engine::request::EngineRequest) -> u32 {
        let input = er.req.input_tokens as u64;
        let max_new = self.cfg.clamp_max_new(input, er.output_limit as u64) as u32;
        er.output_limit = max_new;
        let ignore_eos = self.cfg.ignore_eos;
        self.add_request(SglReq::new(er, Vec::new(), max_new, ignore_eos))
    }

    /// Queue a request (`_add_request_to_queue`); returns its slot.
    pub fn add_request(&mut self, r: SglReq) -> u32 {
        let slot = match self.free_slots.pop() {
            Some(s) => s,
            None => {
                self.reqs.push(None);
                self.reqs.len() as u32 - 1
            }
        };
        self.reqs[slot as usize] = Some(r);
        self.waiting.push(slot);
        slot
    }

    /// Remove a finished request and return it.
    pub fn take_finished(&mut self, slot: u32) -> SglReq {
        self.free_slots.push(slot);
        self.reqs[slot as usize].take().expect("live slot")
    }

    fn evict_to_free(&mut self, need: u64) {
        let available = self.pool.available();
        if need > available {
            let freed = self.tree.evict(need - available);
            self.evicted_tokens += freed;
            self.pool.free(freed / self.page);
        }
    }

    /// Insert the request's first `up_to` tokens into the tree and move its lock to the
    /// inserted path (`checkpoint_into_tree`).
    fn checkpoint(&mut self, slot: u32, up_to: usize) {
        let page = self.page as usize;
        let r = self.reqs[slot as usize].as_mut().expect("live slot");
        let ins = self.tree.insert(&r.tokens[..up_to], r.protected_len);
        self.pool.free((ins.duplicate / page) as u64);
        // Split at the prompt's end so that eviction can drop the output alone.
        let prompt = r.input_len / page * page;
        if 0 < prompt && prompt < ins.len {
            self.tree.insert(&r.tokens[..prompt], prompt);
        }
        if let Some(old) = r.lock.take() {
            self.tree.unlock(old);
        }
        self.tree.lock(ins.node);
        r.lock = Some(ins.node);
        r.protected_len = ins.len;
        r.last_node = ins.node;
    }

    /// Pages a request holds that the tree does not.
    fn private_pages(&self, r: &SglReq) -> u64 {
        self.pool.pages_for(r.allocated as u64) - (r.protected_len as u64) / self.page
    }

    /// `release_kv_cache`: with `checkpoint` the tree keeps what it can key; the rest of
    /// the request's slots, its lock and its row are given back.
    fn release(&mut self, slot: u32, checkpoint: bool) {
        if checkpoint {
            let committed = self.request(slot).committed;
            self.checkpoint(slot, committed);
        }
        let pages = self.private_pages(self.request(slot));
        self.pool.free(pages);
        let r = self.reqs[slot as usize].as_mut().expect("live slot");
        if let Some(l) = r.lock.take() {
            self.tree.unlock(l);
        }
        if r.holds_row {
            r.holds_row = false;
            self.rows_held -= 1;
        }
        r.allocated = 0;
        r.committed = 0;
    }

    fn allocatable(&self, running_bs: usize, held_rows: usize) -> i64 {
        let r = self.cfg.max_running_requests as i64;
        let rows_free = r - self.rows_held as i64;
        (r - running_bs as i64).min(rows_free + held_rows as i64)
    }

    /// Schedule one step at `now_ns` (`get_next_batch_to_run`). Afterwards
    /// [`SglScheduler::scheduled`] holds the batch (empty if nothing can run) and
    /// [`SglScheduler::log`] what was decided; the batch waits for
    /// [`SglScheduler::update_from_output`].
    pub fn schedule(&mut self, now_ns: u64) -> Result<()> {
        self.scheduled.clear();
        self.log.retracted.clear();
        self.log.admitted.clear();
        self.log.extend = false;
        if let Some(c) = self.chunked {
            let r = self.request(c);
            if r.extend_end > r.prefix_len {
                let end = r.extend_end;
                self.checkpoint(c, end);
                self.req_mut(c).prefix_len = end;
            }
        }
        if let Some(last) = self.last_extend.take() {
            if last.shrank || last.chunked.is_some() {
                self.batch_is_full = false;
            }
            let chunked = self.chunked;
            for s in last.slots {
                if Some(s) != last.chunked && Some(s) != chunked {
                    self.running.push(s);
                }
            }
        }
        if std::mem::take(&mut self.running_shrank) {
            self.batch_is_full = false;
        }
        if !self.new_prefill_batch()? && !self.running.is_empty() && self.update_running_batch()? {
            for &s in &self.running {
                let r = self.reqs[s as usize].as_ref().expect("live slot");
                self.scheduled.push(Scheduled {
                    slot: s,
                    id: r.er.req.id,
                    new_tokens: 1,
                    context: (r.committed - 1) as u32,
                    decode: true,
                    samples: true,
                });
            }
        }
        if self.scheduled.is_empty() {
            if self.is_idle() {
                self.ratio.reset();
            }
            return Ok(());
        }
        self.account(now_ns);
        let mut slots = self.spare.pop().unwrap_or_default();
        slots.clear();
        slots.extend(self.scheduled.iter().map(|s| s.slot));
        let extend = self.log.extend;
        self.pending.push_back(Pending { slots, extend });
        Ok(())
    }

    /// The engine-independent bookkeeping of the step just scheduled: first admission
    /// (time, prefix hit), retractions, tokens computed again below a request's high
    /// water mark.
    fn account(&mut self, now_ns: u64) {
        for i in 0..self.log.admitted.len() {
            let (slot, prefix, first) = self.log.admitted[i];
            if first {
                let er = &mut self.req_mut(slot).er;
                er.cached_tokens = prefix as i64;
                er.first_scheduled_ns = Some(now_ns);
            }
        }
        for i in 0..self.log.retracted.len() {
            let slot = self.log.retracted[i];
            self.req_mut(slot).er.preemptions += 1;
        }
        for i in 0..self.scheduled.len() {
            let s = self.scheduled[i];
            let er = &mut self.reqs[s.slot as usize].as_mut().expect("live slot").er;
            let end = s.context + s.new_tokens;
            if s.context < er.computed_high_water {
                er.recomputed_tokens += (end.min(er.computed_high_water) - s.context) as u64;
            }
            er.computed_high_water = er.computed_high_water.max(end);
        }
    }

    /// The SGLang columns of the step just scheduled.
    pub fn step_summary(&self) -> StepSummary {
        let mut s = StepSummary {
            extend: self.log.extend,
            retracted: self.log.retracted.len() as u32,
            chunked: self.chunked.map(|c| self.request(c).er.req.id),
            kv_free: self.pool.available(),
            kv_used: self.pool.total() - self.pool.available(),
            tree_evictable: self.tree.evictable(),
            tree_protected: self.tree.protected(),
            new_token_ratio: self.ratio.current,
            ..StepSummary::default()
        };
        for &(_, prefix, first) in &self.log.admitted {
            s.cached_hit_tokens += prefix as u64;
            if first {
                s.new += 1;
            } else {
                s.resumed += 1;
            }
        }
        s
    }

    /// Running with the overlap scheduler (SGLang's default).
    pub fn overlaps(&self) -> bool {
        !self.cfg.disable_overlap_schedule
    }

    /// `_get_new_batch_prefill_raw`: build a prefill batch; false if none.
    fn new_prefill_batch(&mut self) -> Result<bool> {
        if self.running.is_empty() {
            self.batch_is_full = false;
        }
        if (self.batch_is_full || self.waiting.is_empty()) && self.chunked.is_none() {
            return Ok(false);
        }
        let running_bs = self.running.len();
        if self.allocatable(running_bs, 0) <= 0 && self.chunked.is_none() {
            self.batch_is_full = true;
            return Ok(false);
        }
        self.policy
            .calc_priority(&mut self.waiting, &mut self.reqs, &mut self.tree);
        let reqs = &self.reqs;
        let mut adder = PrefillAdder::new(
            self.page,
            self.ratio.current,
            self.cfg.max_prefill_tokens,
            self.cfg.chunked_prefill_size,
            self.running
                .iter()
                .map(|&s| reqs[s as usize].as_ref().expect("live slot")),
        );
        let continuing = self.chunked;
        if let Some(c) = continuing {
            let r = self.reqs[c as usize].as_mut().expect("live slot");
            let still = adder.add_chunked_req(c, r, &self.pool, &self.tree);
            self.chunked = still.then_some(c);
        }
        self.admit_waiting(&mut adder, running_bs);
        if adder.can_run.is_empty() {
            return Ok(false);
        }
        self.remove_from_waiting(&adder.can_run);
        if let Some(n) = adder.new_chunked {
            self.chunked = Some(n);
        }
        if let Some(c) = self.chunked {
            self.req_mut(c).inflight_middle_chunks += 1;
        }
        for &s in &adder.can_run {
            if Some(s) != continuing {
                let r = self.request(s);
                self.log.admitted.push((s, r.prefix_len, !r.admitted_once));
            }
        }
        self.prepare_for_extend(&adder.can_run)?;
        self.log.extend = true;
        for &s in &adder.can_run {
            let r = self.request(s);
            self.scheduled.push(Scheduled {
                slot: s,
                id: r.er.req.id,
                new_tokens: r.extend_len() as u32,
                context: r.prefix_len as u32,
                decode: false,
                samples: Some(s) != self.chunked,
            });
        }
        self.last_extend = Some(LastExtend {
            slots: adder.can_run,
            chunked: self.chunked,
            shrank: false,
        });
        Ok(true)
    }

    /// Take `slots` out of the waiting queue, keeping its order.
    fn remove_from_waiting(&mut self, slots: &[u32]) {
        set_marks(&mut self.marks, self.reqs.len(), slots, true);
        let marks = &self.marks;
        self.waiting.retain(|&s| !marks[s as usize]);
        set_marks(&mut self.marks, self.reqs.len(), slots, false);
    }

    /// The waiting loop of `_get_new_batch_prefill_raw`.
    fn admit_waiting(&mut self, adder: &mut PrefillAdder, running_bs: usize) {
        for i in 0..self.waiting.len() {
            let slot = self.waiting[i];
            if adder.state(&self.pool, &self.tree) == AddResult::Other {
                break;
            }
            let held = adder
                .can_run
                .iter()
                .filter(|&&s| self.request(s).holds_row)
                .count();
            if adder.can_run.len() as i64 >= self.allocatable(running_bs, held) {
                self.batch_is_full = true;
            }
            if self.batch_is_full {
                break;
            }
            // `init_next_round_input`: match again, at most `len - 1` tokens.
            let r = self.reqs[slot as usize].as_mut().expect("live slot");
            r.materialize();
            let limit = r.fill_len() - 1;
            let m = self.tree.match_prefix(r.fill_ids(), limit);
            r.prefix_len = m.len;
            r.last_node = m.node;
            r.protected_len = m.len;
            r.matched_for_sort = m.len;
            let res = adder.add_one_req(slot, r, &self.pool, &mut self.tree);
            if res != AddResult::Continue {
                if res == AddResult::NoToken {
                    self.batch_is_full = !adder.can_run.is_empty() || !self.running.is_empty();
                }
                break;
            }
        }
    }

    /// `prepare_for_extend`: rows, the cached-token count, eviction and slots.
    fn prepare_for_extend(&mut self, batch: &[u32]) -> Result<()> {
        let mut extend_tokens = 0u64;
        for &s in batch {
            let need_row = !self.request(s).holds_row;
            if need_row {
                if self.rows_held >= self.cfg.max_running_requests {
                    return Err(Error::failure("SGLang engine: no req_to_token row free"));
                }
                self.rows_held += 1;
            }
            let r = self.req_mut(s);
            r.holds_row = true;
            r.admitted_once = true;
            r.is_retracted = false;
            if !r.retracted_stain {
                r.sglang_cached_tokens += (r.prefix_len - r.already_computed) as u64;
                r.already_computed = r.extend_end;
            }
            extend_tokens += r.extend_len() as u64;
        }
        let need = if self.page == 1 {
            extend_tokens
        } else {
            extend_tokens + batch.len() as u64 * self.page
        };
        self.evict_to_free(need);
        for &s in batch {
            let r = self.request(s);
            let pages =
                self.pool.pages_for(r.extend_end as u64) - self.pool.pages_for(r.prefix_len as u64);
            if !self.pool.alloc(pages) {
                return Err(self.out_of_memory(pages * self.page));
            }
            let r = self.req_mut(s);
            r.allocated = r.extend_end;
            r.committed = r.extend_end;
        }
        Ok(())
    }

    fn out_of_memory(&self, tokens: u64) -> Error {
        Error::failure(format!(
            "SGLang engine out of KV memory: {tokens} tokens to allocate, {} free, {} evictable (SGLang raises the same)",
            self.pool.available(),
            self.tree.evictable()
        ))
    }

    /// `check_decode_mem` over `slots`: a page for each request whose last page is full;
    /// evicts as a side effect.
    fn check_decode_mem(&mut self, slots: impl Iterator<Item = u32>) -> bool {
        let page = self.page;
        let full = slots
            .filter(|&s| (self.request(s).committed as u64).is_multiple_of(page))
            .count() as u64;
        let need = full * page;
        self.evict_to_free(need);
        self.pool.available() >= need
    }

    /// `update_running_batch`: the decode memory check, retraction, the ratio, and
    /// `prepare_for_decode`. False when the step decodes nothing. With the overlap
    /// scheduler, requests whose result in flight gives them their last token leave the
    /// batch first (`_reqs_finishing_inflight`), and decode waits a step for their memory
    /// rather than retract.
    fn update_running_batch(&mut self) -> Result<bool> {
        let initial = self.running.len();
        let finishing = self.exclude_finishing_inflight();
        if self.running.is_empty() {
            self.batch_is_full = false;
            return Ok(false);
        }
        let running = std::mem::take(&mut self.running);
        let fits = self.check_decode_mem(running.iter().copied());
        self.running = running;
        if !fits && finishing {
            self.batch_is_full = false;
            return Ok(false);
        }
        if !fits {
            self.retract_decode()?;
            let reqs = &self.reqs;
            self.ratio.current = RatioTracker::after_retract(self.running.iter().map(|&s| {
                let r = reqs[s as usize].as_ref().expect("live slot");
                (r.generated() as u64, r.max_new as u64)
            }));
            let retracted = self.log.retracted.clone();
            self.waiting.extend(retracted);
        } else {
            self.ratio.decay_step();
        }
        if self.running.len() < initial {
            self.batch_is_full = false;
        }
        self.prepare_for_decode()?;
        Ok(true)
    }

    /// With the overlap scheduler: drop from the running batch the requests of the batch
    /// in flight whose result is their last token. True if any left.
    fn exclude_finishing_inflight(&mut self) -> bool {
        if !self.overlaps() {
            return false;
        }
        let Some(inflight) = self.pending.front() else {
            return false;
        };
        set_marks(&mut self.marks, self.reqs.len(), &inflight.slots, true);
        let (reqs, marks) = (&self.reqs, &self.marks);
        let before = self.running.len();
        self.running.retain(|&s| {
            let r = reqs[s as usize].as_ref().expect("live slot");
            !(marks[s as usize] && r.generated() + 1 >= r.max_new as usize)
        });
        set_marks(&mut self.marks, self.reqs.len(), &inflight.slots, false);
        self.running.len() < before
    }

    /// `retract_decode` (retraction policy "length"): retract the requests with the
    /// fewest outputs (then the longest prompts) until the rest can decode; always at
    /// least one, never the last.
    fn retract_decode(&mut self) -> Result<()> {
        let mut order: Vec<u32> = self.running.clone();
        // Sorted by (outputs, -prompt) descending, stably; popped from the end.
        order.sort_by(|&a, &b| {
            let key = |s: u32| {
                let r = self.request(s);
                (r.generated(), std::cmp::Reverse(r.input_len))
            };
            key(b).cmp(&key(a))
        });
        let mut first = true;
        loop {
            if !first && self.check_decode_mem(order.clone().into_iter()) {
                break;
            }
            if order.len() == 1 {
                break;
            }
            first = false;
            let slot = order.pop().expect("two or more");
            self.release(slot, false);
            self.evict_to_free(order.len() as u64 * RETRACT_DECODE_STEPS);
            let r = self.req_mut(slot);
            r.retractions += 1;
            r.prefix_len = 0;
            r.protected_len = 0;
            r.last_node = super::radix::ROOT;
            r.matched_for_sort = 0;
            r.extend_end = 0;
            r.retracted_stain = true;
            r.is_retracted = true;
            r.inflight_middle_chunks = 0;
            r.already_computed = 0;
            self.log.retracted.push(slot);
            self.total_retractions += 1;
        }
        if order.len() <= 1 && !self.check_decode_mem(order.clone().into_iter()) {
            return Err(self.out_of_memory(self.page));
        }
        self.running = order;
        Ok(())
    }

    /// `prepare_for_decode`: one slot per running request (a page when its last is full).
    fn prepare_for_decode(&mut self) -> Result<()> {
        let bs = self.running.len() as u64;
        self.evict_to_free(if self.page == 1 { bs } else { bs * self.page });
        for i in 0..self.running.len() {
            let s = self.running[i];
            if (self.request(s).allocated as u64).is_multiple_of(self.page) && !self.pool.alloc(1) {
                return Err(self.out_of_memory(self.page));
            }
            let r = self.req_mut(s);
            r.allocated += 1;
            r.committed += 1;
        }
        Ok(())
    }

    /// Process the result of the oldest batch scheduled (`process_batch_result`): every
    /// request that completed its prefill or decoded gets a token; finished requests give
    /// their KV to the tree; prefilled ones insert theirs. A request retracted since the
    /// batch was scheduled (overlap only) gets nothing.
    pub fn update_from_output(&mut self, out: &mut StepOutcome) {
        out.sampled.clear();
        out.finished.clear();
        let Some(batch) = self.pending.pop_front() else {
            return;
        };
        for &slot in &batch.slots {
            let r = self.req_mut(slot);
            if r.is_retracted || r.finished() {
                continue;
            }
            if batch.extend && r.inflight_middle_chunks > 0 {
                r.inflight_middle_chunks -= 1;
                continue;
            }
            r.er.generated += 1;
            out.sampled.push(slot);
            if r.generated() >= r.max_new as usize {
                r.er.status = crate::engine::request::Status::Finished;
                out.finished.push(slot);
                self.release(slot, true);
            } else if batch.extend {
                let end = r.extend_end;
                self.checkpoint(slot, end);
                self.req_mut(slot).prefix_len = end;
            }
        }
        self.spare.push(batch.slots);
        if !out.finished.is_empty() {
            let reqs = &self.reqs;
            let live = |s: &u32| !reqs[*s as usize].as_ref().is_some_and(|r| r.finished());
            if let Some(l) = self.last_extend.as_mut() {
                let n = l.slots.len();
                l.slots.retain(live);
                l.shrank |= l.slots.len() < n;
            }
            let n = self.running.len();
            self.running.retain(live);
            self.running_shrank |= self.running.len() < n;
        }
    }

    /// Record the time of a request's latest token (and its first).
    pub fn set_last_token(&mut self, slot: u32, now_ns: u64) {
        let er = &mut self.req_mut(slot).er;
        er.first_token_ns.get_or_insert(now_ns);
        er.last_token_ns = now_ns;
    }

    /// Check token-slot conservation: free + tree (evictable + protected) + the requests'
    /// own slots = the pool, and the tree's counts against its nodes.
    pub fn audit(&self) -> std::result::Result<(), String> {
        self.tree.audit()?;
        let private: u64 = self
            .reqs
            .iter()
            .flatten()
            .filter(|r| r.holds_row)
            .map(|r| self.private_pages(r) * self.page)
            .sum();
        let sum = self.pool.available() + self.tree.evictable() + self.tree.protected() + private;
        if sum != self.pool.total() {
            return Err(format!(
                "token slots not conserved: free {} + evictable {} + protected {} + requests {} != {}",
                self.pool.available(),
                self.tree.evictable(),
                self.tree.protected(),
                private,
                self.pool.total()
            ));
        }
        Ok(())
    }
}

/// Set the scratch flags of `slots` to `on` (growing them to `len` slots first).
fn set_marks(marks: &mut Vec<bool>, len: usize, slots: &[u32], on: bool) {
    if marks.len() < len {
        marks.resize(len, false);
    }
    for &s in slots {
        marks[s as usize] = on;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::request::EngineRequest;
    use crate::workload::Request;

    fn config(overlap: bool, tokens: u64) -> SglangConfig {
        SglangConfig {
            page_size: 1,
            max_total_tokens: tokens,
            max_running_requests: 8,
            max_prefill_tokens: 16384,
            chunked_prefill_size: None,
            schedule_policy: super::super::config::SchedulePolicy::Fcfs,
            schedule_conservativeness: 1.0,
            context_len: 4096,
            ignore_eos: false,
            disable_overlap_schedule: !overlap,
            seed: 0,
        }
    }

    fn add(s: &mut SglScheduler, id: u64, input: u32, output: u32) -> u32 {
        s.add(EngineRequest::new(Request {
            id,
            arrival_ns: 0,
            input_tokens: input,
            output_tokens: output,
            session: None,
            segments: Vec::new(),
        }))
    }

    /// (mode, batch) of each step and the tokens each result gave, driven as the overlap
    /// loop drives it (schedule n+1, then process n) or synchronously.
    fn drive(overlap: bool, outputs: &[u32]) -> (Vec<String>, Vec<usize>) {
        let mut s = SglScheduler::new(config(overlap, 1000));
        for (i, &o) in outputs.iter().enumerate() {
            add(&mut s, i as u64, 8, o);
        }
        let (mut steps, mut tokens) = (Vec::new(), Vec::new());
        let mut out = StepOutcome::default();
        let mut in_flight = 0;
        for _ in 0..20 {
            s.schedule(0).unwrap();
            s.audit().unwrap();
            steps.push(match (s.scheduled.len(), s.log.extend) {
                (0, _) => "-".to_string(),
                (n, true) => format!("extend{n}"),
                (n, false) => format!("decode{n}"),
            });
            in_flight += !s.scheduled.is_empty() as usize;
            // Overlap: the result of the step before this one; sync: this one's.
            if in_flight > overlap as usize || (s.scheduled.is_empty() && in_flight > 0) {
                s.update_from_output(&mut out);
                in_flight -= 1;
                tokens.push(out.sampled.len());
                for k in 0..out.finished.len() {
                    s.take_finished(out.finished[k]);
                }
                s.audit().unwrap();
            }
            if s.is_idle() && in_flight == 0 {
                break;
            }
        }
        (steps, tokens)
    }

    #[test]
    fn synchronous_steps_apply_each_result_before_the_next() {
        let (steps, tokens) = drive(false, &[3]);
        assert_eq!(steps, ["extend1", "decode1", "decode1"]);
        assert_eq!(tokens, [1, 1, 1]);
    }

    #[test]
    fn overlap_schedules_ahead_and_skips_requests_finishing_in_flight() {
        // Step 2 decodes before step 1's token is in; step 3 finds the request's last
        // token in flight and leaves it out, so nothing runs and the result is awaited.
        let (steps, tokens) = drive(true, &[3]);
        assert_eq!(steps, ["extend1", "decode1", "decode1", "-"]);
        assert_eq!(tokens, [1, 1, 1]);
        // A one-token request finishes with its prefill: the next step has nothing.
        let (steps, tokens) = drive(true, &[1]);
        assert_eq!(steps, ["extend1", "-"]);
        assert_eq!(tokens, [1]);
    }

    #[test]
    fn overlap_holds_a_finished_requests_slots_until_its_result() {
        let mut s = SglScheduler::new(config(true, 1000));
        add(&mut s, 0, 8, 1);
        let mut out = StepOutcome::default();
        s.schedule(0).unwrap();
        let held = s.pool().total() - s.pool().available();
        assert_eq!(held, 8);
        // The next pass runs before the result: the request still holds its 8 slots.
        s.schedule(0).unwrap();
        assert!(s.scheduled.is_empty());
        assert_eq!(s.pool().total() - s.pool().available(), 8);
        s.update_from_output(&mut out);
        assert_eq!(out.finished.len(), 1);
        // Its KV went to the tree, evictable.
        assert_eq!(s.tree().evictable(), 8);
        s.audit().unwrap();
    }
}
