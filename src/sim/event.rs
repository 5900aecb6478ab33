//! The event queue: an integer-nanosecond clock and a binary heap ordered by time, then
//! event class, then insertion order, so that runs are deterministic.

use crate::workload::schedule::Schedule;

/// What happens at an event.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum EventKind {
    /// The next request of the workload arrives.
    Arrival,
    /// A replica's step ends.
    StepDone {
        /// Replica index.
        replica: u32,
    },
    /// A prompt's KV reaches its decode replica.
    TransferDone {
        /// Slot of the transfer in the cluster.
        slot: u32,
    },
    /// A replica may start a step (after every arrival and completion at the same instant).
    StepStart {
        /// Replica index.
        replica: u32,
    },
}

impl EventKind {
    fn class(self) -> u8 {
        match self {
            EventKind::Arrival => 0,
            EventKind::StepDone { .. } | EventKind::TransferDone { .. } => 1,
            EventKind::StepStart { .. } => 2,
        }
    }
}

/// A scheduled event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Event {
    /// When, in nanoseconds.
    pub time_ns: u64,
    /// What.
    pub kind: EventKind,
}

/// Min-heap of events with deterministic tie breaking (a [`Schedule`] keyed by time and
/// event class); O(log n) push and pop.
#[derive(Default)]
pub struct EventQueue {
    schedule: Schedule<EventKind, (u64, u8)>,
}

impl EventQueue {
    /// Schedule an event.
    pub fn push(&mut self, time_ns: u64, kind: EventKind) {
        self.schedule.insert((time_ns, kind.class()), kind);
    }

    /// The earliest event.
    pub fn pop(&mut self) -> Option<Event> {
        self.schedule
            .pop()
            .map(|((time_ns, _), kind)| Event { time_ns, kind })
    }

    /// When the earliest event is due.
    pub fn next_time(&self) -> Option<u64> {
        self.schedule.next_due().map(|(time_ns, _)| time_ns)
    }

    /// Events pending.
    pub fn len(&self) -> usize {
        self.schedule.len()
    }

    /// True when no event is pending.
    pub fn is_empty(&self) -> bool {
        self.schedule.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn orders_by_time_then_class_then_fifo() {
        let mut q = EventQueue::default();
        q.push(5, EventKind::StepStart { replica: 0 });
        q.push(5, EventKind::Arrival);
        q.push(3, EventKind::StepDone { replica: 1 });
        q.push(5, EventKind::StepDone { replica: 2 });
        q.push(5, EventKind::StepDone { replica: 1 });
        let order: Vec<EventKind> = std::iter::from_fn(|| q.pop()).map(|e| e.kind).collect();
        assert_eq!(
            order,
            vec![
                EventKind::StepDone { replica: 1 },
                EventKind::Arrival,
                EventKind::StepDone { replica: 2 },
                EventKind::StepDone { replica: 1 },
                EventKind::StepStart { replica: 0 },
            ]
        );
    }
}
