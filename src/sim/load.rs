//! The client side of a run: when each request is sent. Open-loop by default (every request
//! at its source time); two closed-loop rules can hold requests back:
//!
//! - `workload.max_concurrency` (as `vllm bench serve --max-concurrency`, vLLM 0.33.0
//!   `benchmarks/serve.py`: a semaphore around each request): at most that many requests
//!   are in flight (sent and not yet finished or rejected). A request due while all are in
//!   use waits, first come first served, and is sent when one finishes; its latencies count
//!   from that send, as the benchmark's timer starts inside the semaphore.
//! - `workload.turn_timing: after_answer`: a session's next turn is sent its think time
//!   after the previous turn's answer came back, the think time being the source's gap
//!   between the two turns. Turns of one session never overlap.
//!
//! Without either rule, requests pass through in source order at their source times, one
//! read ahead, exactly as before the rules existed.

use crate::error::Result;
use crate::scenario::TurnTiming;
use crate::workload::schedule::Schedule;
use crate::workload::{Request, RequestStream};
use std::collections::{HashMap, VecDeque};

/// A session's state under `after_answer` timing.
#[derive(Debug, Default)]
struct Session {
    /// Source arrival of its latest turn read from the source.
    last_source_ns: u64,
    /// A turn is sent (or scheduled to be) and has not finished.
    busy: bool,
    /// When its latest turn finished.
    finished_ns: u64,
    /// Turns read while one was busy: (gap after the previous turn's answer, turn).
    parked: VecDeque<(u64, Request)>,
}

/// Decides when each request of the stream is sent.
pub struct Load {
    stream: RequestStream,
    /// The next request of the stream (read ahead by one).
    ahead: Option<Request>,
    max_concurrency: Option<u32>,
    after_answer: bool,
    in_flight: u32,
    /// Requests whose send time is known, and, for one that holds a concurrency slot
    /// already, when it became due (same-time sends in the order they were scheduled).
    scheduled: Schedule<(Option<u64>, Request)>,
    /// Requests due while every concurrency slot was taken, in the order they became due
    /// (non-empty only while every slot is taken).
    blocked: VecDeque<Request>,
    /// How long the request [`Load::take_due`] returned last waited for a slot.
    last_queue_ns: u64,
    sessions: HashMap<u64, Session>,
    /// Session of each request in flight, by request id (only under `after_answer`).
    session_of: HashMap<u64, u64>,
}

impl Load {
    /// The sender for `stream` under these rules.
    pub fn new(
        mut stream: RequestStream,
        max_concurrency: Option<u32>,
        timing: TurnTiming,
    ) -> Result<Self> {
        let ahead = stream.next().transpose()?;
        Ok(Load {
            stream,
            ahead,
            max_concurrency,
            after_answer: timing == TurnTiming::AfterAnswer,
            in_flight: 0,
            scheduled: Schedule::default(),
            blocked: VecDeque::new(),
            last_queue_ns: 0,
            sessions: HashMap::new(),
            session_of: HashMap::new(),
        })
    }

    /// Whether the rules can hold requests back (then finishes must be reported).
    pub fn is_closed_loop(&self) -> bool {
        self.max_concurrency.is_some() || self.after_answer
    }

    /// When the next thing happens on the client side: a request of the stream reaches its
    /// source time or a scheduled one its send time (a request held for a slot is
    /// scheduled when one frees). `None`: nothing more until a request finishes (or the run
    /// is over).
    pub fn next_time(&self) -> Option<u64> {
        let a = self.ahead.as_ref().map(|r| r.arrival_ns);
        [a, self.scheduled.next_due()].into_iter().flatten().min()
    }

    /// Whether requests are left to send (read, scheduled, parked or blocked).
    pub fn has_more(&self) -> bool {
        self.ahead.is_some()
            || !self.scheduled.is_empty()
            || !self.blocked.is_empty()
            || self.sessions.values().any(|s| !s.parked.is_empty())
    }

    /// The next request to send at `now` (its `arrival_ns` set to the send time), if one is
    /// due and a concurrency slot is free. Requests of the stream due now are taken in;
    /// under `after_answer` a later turn may be scheduled for later instead.
    pub fn take_due(&mut self, now: u64) -> Result<Option<Request>> {
        loop {
            let ahead_first = match (&self.ahead, self.scheduled.next_due()) {
                (Some(r), Some(at)) => r.arrival_ns < at,
                (Some(_), None) => true,
                _ => false,
            };
            let due = if ahead_first && self.ahead.as_ref().is_some_and(|r| r.arrival_ns <= now) {
                let r = self.ahead.take().expect("ahead");
                self.ahead = self.stream.next().transpose()?;
                match self.admit_turn(r) {
                    Some(r) => r,
                    None => continue,
                }
            } else if self.scheduled.next_due().is_some_and(|at| at <= now) {
                let (at, (held_since, mut r)) = self.scheduled.pop().expect("due");
                r.arrival_ns = at;
                if let Some(due) = held_since {
                    self.last_queue_ns = at.saturating_sub(due);
                    return Ok(Some(self.send(r, true)));
                }
                r
            } else {
                return Ok(None);
            };
            if self.slot_free() {
                self.last_queue_ns = 0;
                return Ok(Some(self.send(due, false)));
            }
            self.blocked.push_back(due);
        }
    }

    /// A request finished or was rejected at `now`: free its slot, and under
    /// `after_answer` schedule its session's next turn.
    pub fn on_done(&mut self, id: u64, now: u64) {
        if self.max_concurrency.is_some() {
            // The slot passes to the first request held for one: it is sent now.
            match self.blocked.pop_front() {
                Some(r) => {
                    let due = r.arrival_ns;
                    self.schedule(now, Some(due), r)
                }
                None => self.in_flight -= 1,
            }
        }
        let Some(session) = self.session_of.remove(&id) else {
            return;
        };
        let s = self
            .sessions
            .get_mut(&session)
            .expect("a session in flight");
        s.busy = false;
        s.finished_ns = now;
        if let Some((gap, r)) = s.parked.pop_front() {
            s.busy = true;
            self.schedule(now.saturating_add(gap), None, r);
        }
    }

    fn slot_free(&self) -> bool {
        self.max_concurrency.is_none_or(|m| self.in_flight < m)
    }

    /// Send `r`, taking a slot unless it holds one already (`reserved`).
    fn send(&mut self, r: Request, reserved: bool) -> Request {
        if self.max_concurrency.is_some() && !reserved {
            self.in_flight += 1;
        }
        if self.after_answer {
            if let Some(s) = r.session {
                self.session_of.insert(r.id, s);
            }
        }
        r
    }

    /// Send `r` at `at`; `held_since`: it holds a concurrency slot already, and became due
    /// then.
    fn schedule(&mut self, at: u64, held_since: Option<u64>, r: Request) {
        self.scheduled.insert(at, (held_since, r));
    }

    /// How long the request [`Load::take_due`] returned last had waited for a concurrency
    /// slot: its send time minus the time it became due (`vllm bench serve`'s client queue
    /// time; 0 without `max_concurrency`).
    pub fn last_queue_ns(&self) -> u64 {
        self.last_queue_ns
    }

    /// A request of the stream at its source time: sent now (returned), or under
    /// `after_answer`, a later turn of a session scheduled after its predecessor's answer
    /// or parked until that answer.
    fn admit_turn(&mut self, r: Request) -> Option<Request> {
        let Some(id) = r.session.filter(|_| self.after_answer) else {
            return Some(r);
        };
        let source_ns = r.arrival_ns;
        let Some(s) = self.sessions.get_mut(&id) else {
            self.sessions.insert(
                id,
                Session {
                    last_source_ns: source_ns,
                    busy: true,
                    ..Session::default()
                },
            );
            return Some(r);
        };
        let gap = source_ns.saturating_sub(s.last_source_ns);
        s.last_source_ns = source_ns;
        if s.busy {
            s.parked.push_back((gap, r));
            return None;
        }
        s.busy = true;
        let at = s.finished_ns.saturating_add(gap);
        self.schedule(at, None, r);
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::cmp::Reverse;
    use std::collections::BinaryHeap;

    fn req(id: u64, t: u64, session: Option<u64>) -> Request {
        Request {
            id,
            arrival_ns: t,
            input_tokens: 10,
            output_tokens: 2,
            session,
            segments: vec![],
        }
    }

    fn load(reqs: Vec<Request>, max: Option<u32>, timing: TurnTiming) -> Load {
        Load::new(Box::new(reqs.into_iter().map(Ok)), max, timing).unwrap()
    }

    /// Drive the load with a server that finishes each request `service` ns after it is
    /// sent; returns (id, send time) in send order, and the most in flight at once.
    fn drive(mut l: Load, service: u64) -> (Vec<(u64, u64)>, u32) {
        let mut finishes: BinaryHeap<Reverse<(u64, u64)>> = BinaryHeap::new();
        let mut sent = Vec::new();
        let mut most = 0;
        loop {
            let next_finish = finishes.peek().map(|Reverse((t, _))| *t);
            let now = match (l.next_time(), next_finish) {
                (Some(a), Some(f)) => a.min(f),
                (a, f) => match a.or(f) {
                    Some(t) => t,
                    None => break,
                },
            };
            while let Some(Reverse((t, id))) = finishes.peek().copied() {
                if t > now {
                    break;
                }
                finishes.pop();
                l.on_done(id, t);
            }
            while let Some(r) = l.take_due(now).unwrap() {
                assert!(r.arrival_ns <= now);
                sent.push((r.id, now));
                finishes.push(Reverse((now + service, r.id)));
                most = most.max(finishes.len() as u32);
            }
        }
        assert!(!l.has_more());
        (sent, most)
    }

    #[test]
    fn open_loop_passes_requests_through_at_their_times() {
        let reqs = (0..5).map(|i| req(i, i * 10, Some(0))).collect();
        let (sent, most) = drive(load(reqs, None, TurnTiming::Arrival), 100);
        assert_eq!(sent, (0..5).map(|i| (i, i * 10)).collect::<Vec<_>>());
        assert_eq!(most, 5);
    }

    #[test]
    fn max_concurrency_holds_requests_until_a_slot_frees() {
        // Ten requests at time 0, two slots, 100 ns each: sent in pairs every 100 ns.
        let reqs = (0..10).map(|i| req(i, 0, None)).collect();
        let (sent, most) = drive(load(reqs, Some(2), TurnTiming::Arrival), 100);
        assert_eq!(most, 2);
        let times: Vec<u64> = sent.iter().map(|s| s.1).collect();
        assert_eq!(times, vec![0, 0, 100, 100, 200, 200, 300, 300, 400, 400]);
        let ids: Vec<u64> = sent.iter().map(|s| s.0).collect();
        assert_eq!(ids, (0..10).collect::<Vec<_>>(), "first come first served");
    }

    #[test]
    fn a_turn_waits_for_the_previous_answer_plus_its_gap() {
        // Session 7: turns at source times 0, 5, 50 (gaps 5 and 45); session 8 at 1.
        // Service 100: turn 1 at 100 + 5, turn 2 at 205 + 100 + 45.
        let reqs = vec![
            req(0, 0, Some(7)),
            req(1, 1, Some(8)),
            req(2, 5, Some(7)),
            req(3, 50, Some(7)),
        ];
        let (sent, _) = drive(load(reqs, None, TurnTiming::AfterAnswer), 100);
        assert_eq!(sent, vec![(0, 0), (1, 1), (2, 105), (3, 250)]);
    }

    #[test]
    fn a_late_turn_after_an_answer_keeps_its_gap_from_that_answer() {
        // The answer comes back at 100; the next turn is read at its source time 500, and
        // is sent 500 after the answer.
        let reqs = vec![req(0, 0, Some(1)), req(1, 500, Some(1))];
        let (sent, _) = drive(load(reqs, None, TurnTiming::AfterAnswer), 100);
        assert_eq!(sent, vec![(0, 0), (1, 600)]);
    }

    #[test]
    fn both_rules_together_never_exceed_the_limit() {
        let mut reqs = Vec::new();
        for i in 0..200u64 {
            reqs.push(req(i, i * 3, Some(i % 13)));
        }
        let (sent, most) = drive(load(reqs, Some(4), TurnTiming::AfterAnswer), 37);
        assert_eq!(sent.len(), 200);
        assert!(most <= 4);
        // Turns of a session are sent in order, each after the previous one finished.
        let mut last: HashMap<u64, u64> = HashMap::new();
        for (id, t) in sent {
            if let Some(prev) = last.insert(id % 13, t) {
                assert!(t >= prev + 37, "request {id}");
            }
        }
    }
}
