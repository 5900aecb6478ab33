//! Belady's MIN, the offline optimum for unit pages: evict the cached page whose next
//! request is furthest in the future. Next uses come from one backward pass over the trace
//! ([`crate::paging::Trace::next_use`]), or in serving from the workload's next-use oracle;
//! an indexed heap keeps every step O(log k). In serving, a page in use cannot be evicted;
//! its next use is taken when it is released.

use crate::paging::util::KeyedCache;
use crate::paging::{Eviction, Req};

/// Belady / MIN.
#[derive(Default)]
pub struct Belady {
    /// Key (next use, minus the time of the last use): the furthest on top; among equal
    /// next uses the page used longest ago (in serving, the deeper block of a prompt, which
    /// is released first).
    cache: KeyedCache<(u64, i64)>,
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
        if !self.cache.contains(r.page) {
            return false;
        }
        self.hit(r);
        true
    }
    fn insert(&mut self, r: &Req) {
        self.cache.set(r.page, (r.next_use, -(r.t as i64)));
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
            self.cache.set(r.page, (r.next_use, -(r.t as i64)));
        }
    }
    fn pin(&mut self, page: u32) {
        self.cache.pin(page);
    }
    fn unpin(&mut self, r: &Req) {
        self.cache.unpin(r.page, (r.next_use, -(r.t as i64)));
    }
}
