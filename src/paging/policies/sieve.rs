//! SIEVE (Zhang et al., NSDI 2024): a FIFO queue with a visited bit per page and a hand that
//! moves from the oldest page towards the newest, clearing visited bits and evicting the
//! first unvisited page; pages stay in place on hits. In serving, a page in use is out of
//! the queue (keeping its place and its bit) until it is released.

use crate::paging::util::{grow, Pins};
use crate::paging::{Eviction, Req};
use std::collections::BTreeMap;

/// SIEVE.
#[derive(Default)]
pub struct Sieve {
    /// Evictable pages by insertion number (oldest first).
    queue: BTreeMap<u64, u32>,
    seq: Vec<u64>,
    visited: Vec<bool>,
    /// The insertion number the hand points at (the next page it examines is the first at
    /// or after it); `None`: the oldest.
    hand: Option<u64>,
    next: u64,
    pins: Pins,
}

impl Sieve {
    /// An empty SIEVE cache.
    pub fn new() -> Self {
        Sieve::default()
    }

    fn stamp(&mut self, page: u32) {
        grow(&mut self.seq, page, 0);
        grow(&mut self.visited, page, false);
        self.next += 1;
        self.seq[page as usize] = self.next;
        self.visited[page as usize] = false;
    }

    /// The entry the hand examines: the first at or after it, else the oldest.
    fn at_hand(&self) -> Option<(u64, u32)> {
        let from = self.hand.unwrap_or(0);
        self.queue
            .range(from..)
            .next()
            .or_else(|| self.queue.iter().next())
            .map(|(&s, &p)| (s, p))
    }

    /// The entry after insertion number `s` (towards the newest), if any.
    fn after(&self, s: u64) -> Option<u64> {
        self.queue.range(s + 1..).next().map(|(&s, _)| s)
    }

    /// Take `page` out of the queue, moving the hand past it if it points at it.
    fn take_out(&mut self, page: u32) -> bool {
        let s = self.seq[page as usize];
        if self.queue.remove(&s).is_none() {
            return false;
        }
        if self.hand == Some(s) {
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
        self.stamp(r.page);
        self.queue.insert(self.next, r.page);
    }
    fn evict(&mut self, _: &Req) -> u32 {
        let (mut s, mut o) = self.at_hand().expect("evict from an empty cache");
        while self.visited[o as usize] {
            self.visited[o as usize] = false;
            (s, o) = match self.after(s) {
                Some(n) => (n, self.queue[&n]),
                None => self
                    .queue
                    .iter()
                    .next()
                    .map(|(&s, &p)| (s, p))
                    .expect("non-empty"),
            };
        }
        self.hand = self.after(s);
        self.queue.remove(&s);
        o
    }
    fn remove(&mut self, page: u32) {
        if !self.pins.unpin(page) && (page as usize) < self.seq.len() {
            self.take_out(page);
        }
    }
    fn len(&self) -> usize {
        self.queue.len() + self.pins.len()
    }
    fn contains(&self, page: u32) -> bool {
        self.pins.is_pinned(page)
            || self
                .seq
                .get(page as usize)
                .is_some_and(|s| self.queue.get(s) == Some(&page))
    }
    fn serves(&self) -> bool {
        true
    }
    fn insert_pinned(&mut self, r: &Req) {
        self.stamp(r.page);
        self.pins.pin(r.page);
    }
    fn hit(&mut self, r: &Req) {
        self.visited[r.page as usize] = true;
    }
    fn pin(&mut self, page: u32) {
        if self.take_out(page) {
            self.pins.pin(page);
        }
    }
    fn unpin(&mut self, r: &Req) {
        if self.pins.unpin(r.page) {
            self.queue.insert(self.seq[r.page as usize], r.page);
        }
    }
}
