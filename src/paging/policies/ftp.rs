//! Follow-the-prediction, also called BlindOracle: evict the cached page whose predicted
//! next request is furthest away. With exact predictions it is Belady's MIN; with wrong
//! ones it has no worst-case guarantee (its cost grows with the prediction error and can
//! be unbounded against OPT), which is why the robust combinations exist. In serving, a page
//! in use cannot be evicted; its prediction is taken when it is released.

use crate::paging::util::KeyedCache;
use crate::paging::{Eviction, Req};

/// Follow the prediction.
#[derive(Default)]
pub struct FollowPrediction {
    /// Key (next use, minus the time of the last use): the furthest on top; among equal
    /// next uses the page used longest ago (in serving, the deeper block of a prompt, which
    /// is released first).
    cache: KeyedCache<(f64, i64)>,
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
        if !self.cache.contains(r.page) {
            return false;
        }
        self.hit(r);
        true
    }
    fn insert(&mut self, r: &Req) {
        self.cache.set(r.page, (r.pred, -(r.t as i64)));
    }
    fn evict(&mut self, _: &Req) -> u32 {
        self.cache.pop().expect("evict from an empty cache")
    }
    fn remove(&mut self, page: u32) {
        self.cache.remove(page);
    }
    fn len(&self) -> usize {
        self.cache.len()
    }
    fn contains(&self, page: u32) -> bool {
        self.cache.contains(page)
    }
    fn serves(&self) -> bool {
        true
    }
    fn insert_pinned(&mut self, r: &Req) {
        self.cache.insert_pinned(r.page);
    }
    fn hit(&mut self, r: &Req) {
        if self.cache.is_evictable(r.page) {
            self.cache.set(r.page, (r.pred, -(r.t as i64)));
        }
    }
    fn pin(&mut self, page: u32) {
        self.cache.pin(page);
    }
    fn unpin(&mut self, r: &Req) {
        self.cache.unpin(r.page, (r.pred, -(r.t as i64)));
    }
}
