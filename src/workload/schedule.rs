//! Items due at times (conversations waiting for their next turn, the simulator's events),
//! taken in order of their key (a due time, or a time and a class); items of equal keys come
//! out in the order they were scheduled.

use std::cmp::{Ordering, Reverse};
use std::collections::BinaryHeap;

/// An item with its key and scheduling order; ordered by those two only.
struct Due<K, T>(K, u64, T);

impl<K: Ord, T> PartialEq for Due<K, T> {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}
impl<K: Ord, T> Eq for Due<K, T> {}
impl<K: Ord, T> PartialOrd for Due<K, T> {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}
impl<K: Ord, T> Ord for Due<K, T> {
    fn cmp(&self, other: &Self) -> Ordering {
        (&self.0, self.1).cmp(&(&other.0, other.1))
    }
}

/// A min-heap of items by key (default: a due time in nanoseconds), then by scheduling
/// order; O(log n) insert and pop.
pub struct Schedule<T, K = u64> {
    heap: BinaryHeap<Reverse<Due<K, T>>>,
    seq: u64,
}

impl<T, K: Ord> Default for Schedule<T, K> {
    fn default() -> Self {
        Schedule {
            heap: BinaryHeap::new(),
            seq: 0,
        }
    }
}

impl<T, K: Ord + Copy> Schedule<T, K> {
    /// Schedule `item` at `key`.
    pub fn insert(&mut self, key: K, item: T) {
        self.seq += 1;
        self.heap.push(Reverse(Due(key, self.seq, item)));
    }

    /// The smallest key.
    pub fn next_due(&self) -> Option<K> {
        self.heap.peek().map(|Reverse(d)| d.0)
    }

    /// Take the item of the smallest key, with its key.
    pub fn pop(&mut self) -> Option<(K, T)> {
        self.heap.pop().map(|Reverse(Due(k, _, item))| (k, item))
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
