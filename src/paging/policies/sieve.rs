//! SIEVE (Zhang et al., NSDI 2024): a FIFO queue with a visited bit per page and a hand that
//! moves from the oldest page towards the newest, clearing visited bits and evicting the
//! first unvisited page; pages stay in place on hits. In serving, a page in use is out of
//! the queue (keeping its place and its bit) until it is released.
//!
//! The queue is a [`SeqQueue`]: insertion numbers in a bit set of the evictable pages.

use crate::paging::util::{grow, SeqQueue};
use crate::paging::{Eviction, Req};

/// SIEVE.
#[derive(Default)]
pub struct Sieve {
    /// Pages by insertion number (oldest first); the evictable ones form the queue.
    queue: SeqQueue,
    visited: Vec<bool>,
    /// The evictable page the hand points at (the next page it examines is the first at or
    /// after it); `None`: the oldest.
    hand: Option<u32>,
}

impl Sieve {
    /// An empty SIEVE cache.
    pub fn new() -> Self {
        Sieve::default()
    }

    fn stamp(&mut self, page: u32, evictable: bool) {
        grow(&mut self.visited, page, false);
        self.visited[page as usize] = false;
        self.queue.push(page, evictable);
    }

    /// The page after slot `s` in the queue (towards the newest), if any.
    fn after(&self, s: u32) -> Option<u32> {
        self.queue
            .next_at_or_after(s + 1)
            .map(|n| self.queue.page_at(n))
    }

    /// Take `page` out of the queue, moving the hand past it if it points at it.
    fn take_out(&mut self, page: u32) -> bool {
        if !self.queue.is_evictable(page) {
            return false;
        }
        self.queue.set_evictable(page, false);
        if self.hand == Some(page) {
            let s = self.queue.slot(page).expect("present");
            self.hand = self.after(s);
        }
        true
    }
}

impl Eviction for Sieve {
    fn name(&self) -> String {
        "sieve".into()
    }
    fn find(&mut self, r: &Req) -> bool {
        if self.contains(r.page) {
            self.visited[r.page as usize] = true;
            true
        } else {
            false
        }
    }
    fn insert(&mut self, r: &Req) {
        self.stamp(r.page, true);
    }
    fn evict(&mut self, _: &Req) -> u32 {
        let from = self.hand.and_then(|p| self.queue.slot(p)).unwrap_or(0);
        let mut s = self
            .queue
            .next_at_or_after(from)
            .or_else(|| self.queue.first())
            .expect("evict from an empty cache");
        let mut o = self.queue.page_at(s);
        while self.visited[o as usize] {
            self.visited[o as usize] = false;
            s = match self.queue.next_at_or_after(s + 1) {
                Some(n) => n,
                None => self.queue.first().expect("non-empty"),
            };
            o = self.queue.page_at(s);
        }
        self.hand = self.after(s);
        self.queue.remove(o);
        o
    }
    fn remove(&mut self, page: u32) {
        self.take_out(page);
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
        self.stamp(r.page, false);
    }
    fn hit(&mut self, r: &Req) {
        self.visited[r.page as usize] = true;
    }
    fn pin(&mut self, page: u32) {
        self.take_out(page);
    }
    fn unpin(&mut self, r: &Req) {
        if self.queue.contains(r.page) {
            self.queue.set_evictable(r.page, true);
        }
    }
}
