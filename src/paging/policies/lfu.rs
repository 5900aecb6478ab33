//! LFU: evict the cached page with the fewest requests since it entered the cache; ties go
//! to the page used least recently (then the smaller page id). In serving, a hit counts at
//! once and a page's recency is its release.

use crate::paging::util::{grow, KeyedCache};
use crate::paging::{Eviction, Req};

/// Least frequently used (in-cache counts, LRU tie rule).
#[derive(Default)]
pub struct Lfu {
    /// Key (-count, -last use): the top is the fewest uses, then the oldest.
    cache: KeyedCache<(i64, i64)>,
    count: Vec<i64>,
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
        if !self.cache.contains(r.page) {
            return false;
        }
        self.hit(r);
        true
    }
    fn insert(&mut self, r: &Req) {
        grow(&mut self.count, r.page, 0);
        self.count[r.page as usize] = 1;
        self.cache.set(r.page, (-1, -(r.t as i64)));
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
        grow(&mut self.count, r.page, 0);
        self.count[r.page as usize] = 1;
        self.cache.insert_pinned(r.page);
    }
    fn hit(&mut self, r: &Req) {
        let c = &mut self.count[r.page as usize];
        *c += 1;
        let c = *c;
        if self.cache.is_evictable(r.page) {
            self.cache.set(r.page, (-c, -(r.t as i64)));
        }
    }
    fn pin(&mut self, page: u32) {
        self.cache.pin(page);
    }
    fn unpin(&mut self, r: &Req) {
        let c = self.count[r.page as usize];
        self.cache.unpin(r.page, (-c, -(r.t as i64)));
    }
}
