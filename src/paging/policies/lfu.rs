//! LFU: evict the cached page with the fewest requests since it entered the cache; ties go
//! to the page used least recently (then the smaller page id). Pages sit in one LRU list per
//! request count, so every step is O(1) but for finding the smallest count (a small ordered
//! set). In serving, a hit counts at once and a page's recency is its release.

use crate::paging::util::{grow, Pins, NONE};
use crate::paging::{Eviction, Req};
use std::collections::BTreeSet;

/// Least frequently used (in-cache counts, LRU tie rule).
#[derive(Default)]
pub struct Lfu {
    count: Vec<u32>,
    prev: Vec<u32>,
    next: Vec<u32>,
    /// Per count: the most and the least recently used evictable page.
    head: Vec<u32>,
    tail: Vec<u32>,
    /// Counts with an evictable page.
    counts: BTreeSet<u32>,
    /// Evictable pages in the lists.
    listed: Vec<bool>,
    len: usize,
    pins: Pins,
}

impl Lfu {
    /// An empty LFU cache.
    pub fn new() -> Self {
        Lfu::default()
    }

    /// Put evictable `page` at the most recent end of its count's list.
    fn link(&mut self, page: u32) {
        let c = self.count[page as usize];
        grow(&mut self.head, c, NONE);
        grow(&mut self.tail, c, NONE);
        let h = self.head[c as usize];
        self.prev[page as usize] = NONE;
        self.next[page as usize] = h;
        if h == NONE {
            self.tail[c as usize] = page;
            self.counts.insert(c);
        } else {
            self.prev[h as usize] = page;
        }
        self.head[c as usize] = page;
        self.listed[page as usize] = true;
    }

    fn unlink(&mut self, page: u32) {
        let c = self.count[page as usize] as usize;
        let (p, n) = (self.prev[page as usize], self.next[page as usize]);
        if p == NONE {
            self.head[c] = n;
        } else {
            self.next[p as usize] = n;
        }
        if n == NONE {
            self.tail[c] = p;
        } else {
            self.prev[n as usize] = p;
        }
        if self.head[c] == NONE {
            self.counts.remove(&(c as u32));
        }
        self.listed[page as usize] = false;
    }

    fn is_listed(&self, page: u32) -> bool {
        self.listed.get(page as usize).copied().unwrap_or(false)
    }

    fn enter(&mut self, page: u32) {
        grow(&mut self.count, page, 0);
        grow(&mut self.prev, page, NONE);
        grow(&mut self.next, page, NONE);
        grow(&mut self.listed, page, false);
        self.count[page as usize] = 1;
        self.len += 1;
    }
}

impl Eviction for Lfu {
    fn name(&self) -> String {
        "lfu".into()
    }
    fn find(&mut self, r: &Req) -> bool {
        if !self.contains(r.page) {
            return false;
        }
        self.hit(r);
        true
    }
    fn insert(&mut self, r: &Req) {
        self.enter(r.page);
        self.link(r.page);
    }
    fn evict(&mut self, _: &Req) -> u32 {
        let c = *self.counts.first().expect("evict from an empty cache");
        let v = self.tail[c as usize];
        self.unlink(v);
        self.len -= 1;
        v
    }
    fn remove(&mut self, page: u32) {
        if self.is_listed(page) {
            self.unlink(page);
            self.len -= 1;
        } else if self.pins.unpin(page) {
            self.len -= 1;
        }
    }
    fn len(&self) -> usize {
        self.len
    }
    fn contains(&self, page: u32) -> bool {
        self.is_listed(page) || self.pins.is_pinned(page)
    }
    fn serves(&self) -> bool {
        true
    }
    fn insert_pinned(&mut self, r: &Req) {
        self.enter(r.page);
        self.pins.pin(r.page);
    }
    fn hit(&mut self, r: &Req) {
        let listed = self.is_listed(r.page);
        if listed {
            self.unlink(r.page);
        }
        self.count[r.page as usize] += 1;
        if listed {
            self.link(r.page);
        }
    }
    fn pin(&mut self, page: u32) {
        if self.is_listed(page) {
            self.unlink(page);
            self.pins.pin(page);
        }
    }
    fn unpin(&mut self, r: &Req) {
        if self.pins.unpin(r.page) {
            self.link(r.page);
        }
    }
}
