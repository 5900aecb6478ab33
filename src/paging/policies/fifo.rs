//! FIFO: evict the page inserted earliest; hits change nothing. In serving, a page in use
//! keeps its place and is skipped until it is released.

use crate::paging::util::{grow, KeyedCache};
use crate::paging::{Eviction, Req};

/// First in, first out.
#[derive(Default)]
pub struct Fifo {
    /// Key: minus the insertion number (the earliest insertion on top).
    cache: KeyedCache<i64>,
    inserted: Vec<i64>,
    next: i64,
}

impl Fifo {
    /// An empty FIFO cache.
    pub fn new() -> Self {
        Fifo::default()
    }

    fn stamp(&mut self, page: u32) -> i64 {
        grow(&mut self.inserted, page, 0);
        self.next += 1;
        self.inserted[page as usize] = -self.next;
        -self.next
    }
}

impl Eviction for Fifo {
    fn name(&self) -> String {
        "fifo".into()
    }
    fn find(&mut self, r: &Req) -> bool {
        self.cache.contains(r.page)
    }
    fn insert(&mut self, r: &Req) {
        let key = self.stamp(r.page);
        self.cache.set(r.page, key);
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
        self.stamp(r.page);
        self.cache.insert_pinned(r.page);
    }
    fn pin(&mut self, page: u32) {
        self.cache.pin(page);
    }
    fn unpin(&mut self, r: &Req) {
        self.cache.unpin(r.page, self.inserted[r.page as usize]);
    }
}
