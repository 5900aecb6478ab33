//! Items due at times (conversations waiting for their next turn), taken in time order;
//! items due at the same time come out in the order they were scheduled.

use std::cmp::{Ordering, Reverse};
use std::collections::BinaryHeap;

/// An item with its due time and scheduling order; ordered by those two only.
struct Due<T>(u64, u64, T);

impl<T> PartialEq for Due<T> {
    fn eq(&self, other: &Self) -> bool {
        (self.0, self.1) == (other.0, other.1)
    }
}
impl<T> Eq for Due<T> {}
impl<T> PartialOrd for Due<T> {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}
impl<T> Ord for Due<T> {
    fn cmp(&self, other: &Self) -> Ordering {
        (self.0, self.1).cmp(&(other.0, other.1))
    }
}

/// A min-heap of items by due time.
pub struct Schedule<T> {
    heap: BinaryHeap<Reverse<Due<T>>>,
    seq: u64,
}

impl<T> Default for Schedule<T> {
    fn default() -> Self {
        Schedule {
            heap: BinaryHeap::new(),
            seq: 0,
        }
    }
}

impl<T> Schedule<T> {
    /// Schedule `item` at `t_ns`.
    pub fn insert(&mut self, t_ns: u64, item: T) {
        self.seq += 1;
        self.heap.push(Reverse(Due(t_ns, self.seq, item)));
    }

    /// The earliest due time.
    pub fn next_due(&self) -> Option<u64> {
        self.heap.peek().map(|Reverse(d)| d.0)
    }

    /// Take the earliest item and its due time.
    pub fn pop(&mut self) -> Option<(u64, T)> {
        self.heap.pop().map(|Reverse(Due(t, _, item))| (t, item))
    }

    /// Items scheduled.
    pub fn len(&self) -> usize {
        self.heap.len()
    }

    /// True when nothing is scheduled.
    pub fn is_empty(&self) -> bool {
        self.heap.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn time_order_then_insertion_order() {
        let mut s = Schedule::default();
        s.insert(5, "c");
        s.insert(1, "a");
        s.insert(5, "d");
        s.insert(3, "b");
        assert_eq!(s.next_due(), Some(1));
        let order: Vec<&str> = std::iter::from_fn(|| s.pop().map(|(_, x)| x)).collect();
        assert_eq!(order, vec!["a", "b", "c", "d"]);
        assert!(s.is_empty());
    }
}
