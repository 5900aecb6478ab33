//! SIEVE (Zhang et al., NSDI 2024): a FIFO queue with a visited bit per page and a hand that
//! moves from the oldest page towards the newest, clearing visited bits and evicting the
//! first unvisited page; pages stay in place on hits.

use crate::paging::util::{DList, NONE};
use crate::paging::{Eviction, Req};

/// SIEVE.
pub struct Sieve {
    list: DList,
    visited: Vec<bool>,
    hand: u32,
}

impl Sieve {
    /// A SIEVE cache for page ids below `num_pages`.
    pub fn new(num_pages: usize) -> Self {
        Sieve {
            list: DList::new(num_pages),
            visited: vec![false; num_pages],
            hand: NONE,
        }
    }
}

impl Eviction for Sieve {
    fn name(&self) -> String {
        "sieve".into()
    }
    fn find(&mut self, r: &Req) -> bool {
        if self.list.contains(r.page) {
            self.visited[r.page as usize] = true;
            true
        } else {
            false
        }
    }
    fn insert(&mut self, r: &Req) {
        if r.page as usize >= self.visited.len() {
            self.visited.resize(r.page as usize + 1, false);
        }
        self.visited[r.page as usize] = false;
        self.list.push_head(r.page);
    }
    fn evict(&mut self, _: &Req) -> u32 {
        let mut o = if self.hand != NONE {
            self.hand
        } else {
            self.list.tail().expect("evict from an empty cache")
        };
        while self.visited[o as usize] {
            self.visited[o as usize] = false;
            o = self
                .list
                .prev_of(o)
                .or_else(|| self.list.tail())
                .expect("non-empty");
        }
        self.hand = self.list.prev_of(o).unwrap_or(NONE);
        self.list.unlink(o);
        o
    }
    fn remove(&mut self, page: u32) {
        if self.list.contains(page) {
            if self.hand == page {
                self.hand = self.list.prev_of(page).unwrap_or(NONE);
            }
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
