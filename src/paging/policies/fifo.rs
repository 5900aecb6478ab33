//! FIFO: evict the page inserted earliest; hits change nothing. In serving, a page in use
//! keeps its place: when it reaches the end of the queue it is set aside, and once released
//! it is evicted before every page inserted after it, in insertion order.

use crate::paging::util::{grow, DList, IndexedHeap, Pins};
use crate::paging::{Eviction, Req};

/// First in, first out.
pub struct Fifo {
    /// Pages in insertion order (in use or not), newest at the head.
    list: DList,
    pins: Pins,
    /// Pages in use that reached the end of the queue (out of the list).
    parked: Vec<bool>,
    parked_count: usize,
    /// Parked pages since released, keyed by minus their insertion number: all older than
    /// every page of the list, so evicted first.
    returned: IndexedHeap<i64>,
    inserted: Vec<i64>,
    next: i64,
}

impl Fifo {
    /// A FIFO cache for page ids below `num_pages`.
    pub fn new(num_pages: usize) -> Self {
        Fifo {
            list: DList::new(num_pages),
            pins: Pins::default(),
            parked: Vec::new(),
            parked_count: 0,
            returned: IndexedHeap::default(),
            inserted: Vec::new(),
            next: 0,
        }
    }

    fn stamp(&mut self, page: u32) {
        grow(&mut self.inserted, page, 0);
        grow(&mut self.parked, page, false);
        self.next += 1;
        self.inserted[page as usize] = -self.next;
        self.list.push_head(page);
    }

    fn is_parked(&self, page: u32) -> bool {
        self.parked.get(page as usize).copied().unwrap_or(false)
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
        self.stamp(r.page);
    }
    fn evict(&mut self, _: &Req) -> u32 {
        if let Some((_, p)) = self.returned.pop() {
            return p;
        }
        loop {
            let t = self.list.pop_tail().expect("evict from an empty cache");
            if !self.pins.is_pinned(t) {
                return t;
            }
            self.parked[t as usize] = true;
            self.parked_count += 1;
        }
    }
    fn remove(&mut self, page: u32) {
        self.pins.unpin(page);
        if self.list.contains(page) {
            self.list.unlink(page);
        } else if self.is_parked(page) {
            self.parked[page as usize] = false;
            self.parked_count -= 1;
        } else {
            self.returned.remove(page);
        }
    }
    fn len(&self) -> usize {
        self.list.len() + self.parked_count + self.returned.len()
    }
    fn contains(&self, page: u32) -> bool {
        self.list.contains(page) || self.is_parked(page) || self.returned.contains(page)
    }
    fn serves(&self) -> bool {
        true
    }
    fn insert_pinned(&mut self, r: &Req) {
        self.stamp(r.page);
        self.pins.pin(r.page);
    }
    fn pin(&mut self, page: u32) {
        if self.returned.contains(page) {
            self.returned.remove(page);
            self.parked[page as usize] = true;
            self.parked_count += 1;
        }
        self.pins.pin(page);
    }
    fn unpin(&mut self, r: &Req) {
        if self.pins.unpin(r.page) && self.is_parked(r.page) {
            self.parked[r.page as usize] = false;
            self.parked_count -= 1;
            self.returned.set(r.page, self.inserted[r.page as usize]);
        }
    }
}
