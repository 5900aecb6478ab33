//! Belady's MIN, the offline optimum for unit pages: evict the cached page whose next
//! request is furthest in the future. Next uses come from one backward pass over the trace
//! ([`crate::paging::Trace::next_use`]); an indexed heap keeps every step O(log k).

use crate::paging::util::IndexedHeap;
use crate::paging::{Eviction, Req};

/// Belady / MIN.
#[derive(Default)]
pub struct Belady {
    heap: IndexedHeap<u64>,
}

impl Belady {
    /// An empty cache.
    pub fn new() -> Self {
        Belady::default()
    }
}

impl Eviction for Belady {
    fn name(&self) -> String {
        "belady".into()
    }
    fn find(&mut self, r: &Req) -> bool {
        if self.heap.contains(r.page) {
            self.heap.set(r.page, r.next_use);
            true
        } else {
            false
        }
    }
    fn insert(&mut self, r: &Req) {
        self.heap.set(r.page, r.next_use);
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
