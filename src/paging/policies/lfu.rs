//! LFU: evict the cached page with the fewest hits since it entered the cache; ties go to
//! the page used least recently (then the smaller page id).

use crate::paging::util::IndexedHeap;
use crate::paging::{Eviction, Req};

/// Least frequently used (in-cache counts, LRU tie rule).
#[derive(Default)]
pub struct Lfu {
    /// Key (-count, -last use): the top is the fewest uses, then the oldest.
    heap: IndexedHeap<(i64, i64)>,
}

impl Lfu {
    /// An empty LFU cache.
    pub fn new() -> Self {
        Lfu::default()
    }
}

impl Eviction for Lfu {
    fn name(&self) -> String {
        "lfu".into()
    }
    fn find(&mut self, r: &Req) -> bool {
        match self.heap.key(r.page) {
            Some((neg_count, _)) => {
                self.heap.set(r.page, (neg_count - 1, -(r.t as i64)));
                true
            }
            None => false,
        }
    }
    fn insert(&mut self, r: &Req) {
        self.heap.set(r.page, (-1, -(r.t as i64)));
    }
    fn evict(&mut self, _: &Req) -> u32 {
        self.heap.pop().expect("evict from an empty cache").1
    }
    fn remove(&mut self, page: u32) {
        self.heap.remove(page);
    }
    fn len(&self) -> usize {
        self.heap.len()
    }
    fn contains(&self, page: u32) -> bool {
        self.heap.contains(page)
    }
}
