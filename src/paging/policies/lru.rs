//! LRU: evict the least recently used page. In serving a page's last use is its release
//! (vLLM's free queue: a request's blocks are released tail first, so a prompt's first
//! blocks are the most recent), and a page in use cannot be evicted.

use crate::paging::util::{DList, Pins};
use crate::paging::{Eviction, Req};

/// Least recently used.
pub struct Lru {
    list: DList,
    pins: Pins,
}

impl Lru {
    /// An LRU cache for page ids below `num_pages`.
    pub fn new(num_pages: usize) -> Self {
        Lru {
            list: DList::new(num_pages),
            pins: Pins::default(),
        }
    }
}

impl Eviction for Lru {
    fn name(&self) -> String {
        "lru".into()
    }
    fn find(&mut self, r: &Req) -> bool {
        if self.list.contains(r.page) {
            self.list.move_to_head(r.page);
            true
        } else {
            false
        }
    }
    fn insert(&mut self, r: &Req) {
        self.list.push_head(r.page);
    }
    fn evict(&mut self, _: &Req) -> u32 {
        self.list.pop_tail().expect("evict from an empty cache")
    }
    fn remove(&mut self, page: u32) {
        if self.list.contains(page) {
            self.list.unlink(page);
        }
        self.pins.unpin(page);
    }
    fn len(&self) -> usize {
        self.list.len() + self.pins.len()
    }
    fn contains(&self, page: u32) -> bool {
        self.list.contains(page) || self.pins.is_pinned(page)
    }
    fn serves(&self) -> bool {
        true
    }
    fn insert_pinned(&mut self, r: &Req) {
        self.pins.pin(r.page);
    }
    fn hit(&mut self, r: &Req) {
        // A pinned page's recency is set when it is released.
        if self.list.contains(r.page) {
            self.list.move_to_head(r.page);
        }
    }
    fn pin(&mut self, page: u32) {
        if self.list.contains(page) {
            self.list.unlink(page);
            self.pins.pin(page);
        }
    }
    fn unpin(&mut self, r: &Req) {
        if self.pins.unpin(r.page) {
            self.list.push_head(r.page);
        }
    }
}
