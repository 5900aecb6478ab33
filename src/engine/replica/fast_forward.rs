//! Fast-forwarding: runs of steps in which every running request decodes one token and
//! nothing else happens are run back to back, without the event queue, each step exactly
//! as the step-by-step loop runs it: the same schedule, the same blocks allocated and
//! registered in the same order, the same step time from the cost model, the same
//! `steps.csv` row, tokens and latencies. A run ends before the first step in which a
//! request would finish, a block might run short, or any other event is due (an arrival,
//! another replica's step, a transfer): the replica then goes on step by step.

use super::{InFlight, Replica, Role};
use crate::error::Result;
use crate::sim::recorder::Recorder;

impl Replica {
    /// From a step start at `now_ns`, run the steady decode steps whose events are all
    /// due before `horizon_ns` (the next event of the rest of the simulation). Returns
    /// when the step after them is to be scheduled: `now_ns` when none ran. The caller
    /// goes on with [`Replica::start_step`] at that time.
    pub fn fast_forward(
        &mut self,
        now_ns: u64,
        horizon_ns: u64,
        rec: &mut Recorder,
    ) -> Result<u64> {
        if self.audit
            || self.busy
            || self.apply_due
            || self.role != Role::Unified
            || !rec.allows_fast_forward()
        {
            return Ok(now_ns);
        }
        let asynchronous = self.core.is_async();
        let Some(sched) = self.core.vllm_mut() else {
            return Ok(now_ns);
        };
        let in_flight = match (asynchronous, self.in_flight.len()) {
            (true, 1) => Some(self.in_flight[0].plan.as_slice()),
            (false, 0) => None,
            _ => return Ok(now_ns),
        };
        let Some(steps) = sched.steady_decode_steps(in_flight) else {
            return Ok(now_ns);
        };
        self.batch.clear();
        sched.steady_batch(&mut self.batch.decodes);
        self.batch.sampled = self.batch.decodes.len() as u32;
        let mut t = now_ns;
        for _ in 0..steps {
            let (start, duration, due) = self.steady_timing(t, asynchronous);
            if due >= horizon_ns {
                break;
            }
            let sched = self.core.vllm_mut().expect("a vLLM core");
            if !sched.schedule_steady_decode() {
                break;
            }
            self.run_steady_step(start, duration, due, asynchronous, rec)?;
            t = due;
        }
        Ok(t)
    }

    /// Record the steady step just scheduled (GPU from `start_ns` for `duration_ns`),
    /// and apply at `due_ns` the output it makes due: its own, or with asynchronous
    /// scheduling the step's before it, which it replaces in flight.
    fn run_steady_step(
        &mut self,
        start_ns: u64,
        duration_ns: u64,
        due_ns: u64,
        asynchronous: bool,
        rec: &mut Recorder,
    ) -> Result<()> {
        self.record_step(start_ns, duration_ns, rec)?;
        let end_ns = start_ns + duration_ns;
        self.gpu_free_ns = end_ns;
        self.steps_started += 1;
        rec.fast_forwarded_steps += 1;
        let mut plan = self.spare_plans.pop().unwrap_or_default();
        plan.clear();
        plan.extend_from_slice(self.core.scheduled());
        let applied = if asynchronous {
            let oldest = self.in_flight.pop_front().expect("a step in flight");
            self.in_flight.push_back(InFlight { plan, end_ns });
            oldest.plan
        } else {
            plan
        };
        let sched = self.core.vllm_mut().expect("a vLLM core");
        // Tokens with the same gap (after the first step, all of them) are counted
        // together.
        let mut same_gap = (0u64, 0u64);
        sched.apply_steady_decode(due_ns, &applied, |last| {
            let gap = due_ns - last;
            if gap != same_gap.0 {
                rec.on_tokens(same_gap.0, same_gap.1);
                same_gap = (gap, 0);
            }
            same_gap.1 += 1;
        });
        rec.on_tokens(same_gap.0, same_gap.1);
        self.spare_plans.push(applied);
        for w in &mut self.batch.decodes {
            w.context += 1;
        }
        Ok(())
    }

    /// The next steady step scheduled at `now_ns`, priced as [`Replica::price_step`]
    /// prices it: its GPU start, its duration, and when its output (with asynchronous
    /// scheduling, the previous step's) is applied.
    fn steady_timing(&self, now_ns: u64, asynchronous: bool) -> (u64, u64, u64) {
        let t = self.timing_of(&self.cost.step_cost(&self.batch), now_ns);
        let due = if asynchronous {
            t.start_ns
        } else {
            t.start_ns + t.duration_ns
        };
        (t.start_ns, t.duration_ns, due)
    }
}
