//! Follow-the-prediction, also called BlindOracle: evict the cached page whose predicted
//! next request is furthest away. With exact predictions it is Belady's MIN; with wrong
//! ones it has no worst-case guarantee (its cost grows with the prediction error and can
//! be unbounded against OPT), which is why the robust combinations exist.

use crate::paging::util::IndexedHeap;
use crate::paging::{Eviction, Req};

/// Follow the prediction.
#[derive(Default)]
pub struct FollowPrediction {
    heap: IndexedHeap<f64>,
}

impl FollowPrediction {
    /// An empty cache.
    pub fn new() -> Self {
        FollowPrediction::default()
    }
}

impl Eviction for FollowPrediction {
    fn name(&self) -> String {
        "ftp".into()
    }
    fn find(&mut self, r: &Req) -> bool {
        if self.heap.contains(r.page) {
            self.heap.set(r.page, r.pred);
            true
        } else {
            false
        }
    }
    fn insert(&mut self, r: &Req) {
        self.heap.set(r.page, r.pred);
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
