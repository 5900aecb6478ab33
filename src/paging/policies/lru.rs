//! LRU: evict the least recently used page.

use crate::paging::util::DList;
use crate::paging::{Eviction, Req};

/// Least recently used.
pub struct Lru {
    list: DList,
}

impl Lru {
    /// An LRU cache for page ids below `num_pages`.
    pub fn new(num_pages: usize) -> Self {
        Lru {
            list: DList::new(num_pages),
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
    }
    fn len(&self) -> usize {
        self.list.len()
    }
    fn contains(&self, page: u32) -> bool {
        self.list.contains(page)
    }
}
