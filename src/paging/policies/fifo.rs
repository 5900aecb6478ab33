//! FIFO: evict the page inserted earliest; hits change nothing. In serving, a page in use
//! keeps its place: when it reaches the end of the queue it is set aside, and once released
//! it is evicted before every page inserted after it, in insertion order. That is: the
//! victim is the evictable page inserted earliest ([`SeqQueue`]: insertion numbers in a bit
//! set of the evictable pages).

use crate::paging::util::SeqQueue;
use crate::paging::{Eviction, Req};

/// First in, first out.
pub struct Fifo {
    /// Pages in insertion order (in use or not).
    queue: SeqQueue,
}

impl Fifo {
    /// A FIFO cache for page ids below `num_pages`.
    pub fn new(_num_pages: usize) -> Self {
        Fifo {
            queue: SeqQueue::default(),
        }
    }
}

impl Eviction for Fifo {
    fn name(&self) -> String {
        "fifo".into()
    }
    fn find(&mut self, r: &Req) -> bool {
        self.contains(r.page)
    }
    fn insert(&mut self, r: &Req) {
        self.queue.push(r.page, true);
    }
    fn evict(&mut self, _: &Req) -> u32 {
        let s = self.queue.first().expect("evict from an empty cache");
        let p = self.queue.page_at(s);
        self.queue.remove(p);
        p
    }
    fn remove(&mut self, page: u32) {
        self.queue.remove(page);
    }
    fn len(&self) -> usize {
        self.queue.len()
    }
    fn contains(&self, page: u32) -> bool {
        self.queue.contains(page)
    }
    fn serves(&self) -> bool {
        true
    }
    fn insert_pinned(&mut self, r: &Req) {
        self.queue.push(r.page, false);
    }
    fn pin(&mut self, page: u32) {
        if self.queue.contains(page) {
            self.queue.set_evictable(page, false);
        }
    }
    fn unpin(&mut self, r: &Req) {
        if self.queue.contains(r.page) {
            self.queue.set_evictable(r.page, true);
        }
    }
}
