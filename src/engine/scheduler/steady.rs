//! Steady decode: the steps in which every running request decodes one token and nothing
//! else happens (no waiting request that could be admitted, no preemption, no request
//! finishing, no prefill chunk). For those steps [`Scheduler::schedule_steady_decode`] and
//! [`Scheduler::apply_steady_decode`] do what [`Scheduler::schedule`] and
//! [`Scheduler::update_from_output`] would, without their general cases, so that the
//! replica can run such steps back to back without the event queue
//! (`Replica::fast_forward`). Blocks are still allocated and registered through the KV
//! cache manager's own calls, in the same order, so the cache ends in the same state.

use super::{Admission, Scheduled, Scheduler, Status};
use crate::cost::SeqWork;

impl Scheduler {
    /// How many steady decode steps can run from now, each exactly as the general
    /// scheduler would run it: `None` unless every running request is decoding one token
    /// per step and the waiting queue's head, if any, cannot be admitted until a request
    /// finishes. `in_flight` is the plan of the step whose output is not yet applied
    /// (asynchronous scheduling), which must be such a step of the same requests. The
    /// count stops a step short of any request's last token, of its length
    /// limit, and of the scheduler's token budget.
    pub fn steady_decode_steps(&mut self, in_flight: Option<&[Scheduled]>) -> Option<u32> {
        let promise = self.cfg.async_scheduling;
        if self.running.is_empty()
            || self.finished_waiting
            || !self.kv.allows_steady_decode()
            || self.running.len() as u32 > self.cfg.max_num_batched_tokens
            || promise != in_flight.is_some()
        {
            return None;
        }
        if let Some(plan) = in_flight {
            let steady = plan.len() == self.running.len()
                && plan.iter().zip(&self.running).all(|(s, &slot)| {
                    let same = self.slots[slot as usize]
                        .as_ref()
                        .is_some_and(|r| r.req.id == s.id);
                    same && s.slot == slot && s.new_tokens == 1 && s.decode && s.samples
                });
            if !steady {
                return None;
            }
        }
        if !self.waiting.is_empty() && !self.waiting_head_stays_blocked() {
            return None;
        }
        let placeholders = promise as u32;
        let mut steps = u32::MAX;
        for &slot in &self.running {
            let r = self.slots[slot as usize].as_ref()?;
            let steady = r.status == Status::Running
                && r.generated >= 1
                && r.stale_tokens == 0
                && r.placeholders == placeholders
                && r.in_flight_tokens == placeholders
                && r.num_computed == r.computed_high_water
                && r.num_computed + 1 == r.num_tokens_with_placeholders();
            if !steady {
                return None;
            }
            let c = r.num_computed as i64;
            let limit = r.output_limit as i64;
            // The step that would skip it (its last token in flight), finish it, or meet
            // the length limit is left to the general scheduler, with a step to spare.
            let last_in_flight = r.req.input_tokens as i64 + limit - 1 - c;
            let finish = limit - r.generated as i64 - 1;
            let length = self.cfg.max_model_len as i64 - 1 - c;
            let n = last_in_flight.min(finish).min(length) - 1;
            steps = steps.min(n.max(0) as u32);
        }
        Some(steps)
    }

    /// True when, in every steady step from now, [`Scheduler::schedule`] would admit
    /// nobody from the waiting queue: it stops at the head, which it cannot admit now and
    /// will not be able to while only decodes run. Either the loop does not start (no token
    /// budget left by the decodes, or `max_num_seqs` running), or the head's blocks are
    /// not free and its prefix hit holds only blocks in use: running requests keep those,
    /// decodes register only their own new contents, so the hit cannot change, while the
    /// free blocks only decrease. (An evictable hit could shrink as decodes evict, and
    /// with it what the head needs; such a head is left to the general scheduler.)
    fn waiting_head_stays_blocked(&mut self) -> bool {
        let budget = self
            .cfg
            .max_num_batched_tokens
            .saturating_sub(self.running.len() as u32);
        if budget == 0 || self.running.len() as u32 >= self.cfg.max_num_seqs {
            return true;
        }
        let Some(&slot) = self.waiting.front() else {
            return true;
        };
        if !self.kv.has_request(slot as u64) {
            return false; // not registered yet: the general scheduler does that first
        }
        match self.plan_admission(slot, self.long_prefill_cap(), budget) {
            Admission::WaitsForBudget => true,
            Admission::NothingToRun => false,
            Admission::Chunk(a) => {
                let watermark = self.admission_reserve();
                let room = self
                    .kv
                    .room_for(slot as u64, a.resume, a.n, a.hit, a.full, watermark);
                a.hit.cpu_blocks == 0 && !room.fits && room.evictable_hits == 0
            }
        }
    }

    /// The work of the next steady decode step for the cost model: each running request,
    /// in order, one token on its computed ones.
    pub fn steady_batch(&self, out: &mut Vec<SeqWork>) {
        out.extend(self.running.iter().map(|&slot| {
            SeqWork {
                new_tokens: 1,
                context: self.slots[slot as usize]
                    .as_ref()
                    .map_or(0, |r| r.num_computed),
            }
        }));
    }

    /// Schedule one steady decode step (only after [`Scheduler::steady_decode_steps`]
    /// allowed it): every running request, in order, its next token, its blocks allocated
    /// as [`Scheduler::schedule`] allocates them. Returns false, having changed nothing,
    /// when fewer blocks are free than requests run (a step might then preempt).
    pub fn schedule_steady_decode(&mut self) -> bool {
        if (self.kv.num_free_blocks() as usize) < self.running.len() {
            return false;
        }
        self.scheduled.clear();
        self.step_preempted.clear();
        self.step_preemptions = 0;
        self.step_admitted.clear();
        self.step_traffic = super::HostTraffic::default();
        let promise = self.cfg.async_scheduling;
        for i in 0..self.running.len() {
            let slot = self.running[i];
            let r = self.slots[slot as usize].as_mut().expect("live slot");
            let (computed, known, in_flight) = (r.num_computed, r.num_tokens(), r.in_flight_tokens);
            let allocated =
                self.kv
                    .allocate_slots(slot as u64, computed, 1, None, None, 0, known, in_flight);
            assert!(allocated, "a free block per request was checked");
            r.num_computed = computed + 1;
            r.computed_high_water = computed + 1;
            r.in_flight_tokens += 1;
            if promise {
                r.placeholders += 1;
            }
            self.scheduled.push(Scheduled {
                slot,
                id: r.req.id,
                new_tokens: 1,
                context: computed,
                decode: true,
                samples: true,
            });
        }
        true
    }

    /// Apply the output of a steady decode step at `now_ns` (as
    /// [`Scheduler::update_from_output`] does for it): every request of `plan` gets its
    /// token, none finishes. `on_token` is told the time of each request's previous token,
    /// in plan order.
    pub fn apply_steady_decode(
        &mut self,
        now_ns: u64,
        plan: &[Scheduled],
        mut on_token: impl FnMut(u64),
    ) {
        let bs = self.kv.block_size();
        let promise = self.cfg.async_scheduling;
        for s in plan {
            let r = self.slots[s.slot as usize].as_mut().expect("live slot");
            debug_assert!(r.req.id == s.id && r.status == Status::Running);
            r.in_flight_tokens -= 1;
            r.generated += 1;
            debug_assert!(r.generated < r.output_limit);
            on_token(r.last_token_ns);
            r.last_token_ns = now_ns;
            if promise {
                r.placeholders -= 1;
                let cache_upto = r.num_computed - r.in_flight_tokens;
                let known = r.num_tokens();
                self.kv
                    .cache_blocks(s.slot as u64, cache_upto.min(known) / bs);
            }
        }
    }
}
