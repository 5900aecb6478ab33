//! FIFO: evict the page inserted earliest; hits change nothing.

use crate::paging::util::DList;
use crate::paging::{Eviction, Req};

/// First in, first out.
pub struct Fifo {
    list: DList,
}

impl Fifo {
    /// A FIFO cache for page ids below `num_pages`.
    pub fn new(num_pages: usize) -> Self {
        Fifo {
            list: DList::new(num_pages),
        }
    }
}

impl Eviction for Fifo {
    fn name(&self) -> String {
        "fifo".into()
    }
    fn find(&mut self, r: &Req) -> bool {
        self.list.contains(r.page)
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
