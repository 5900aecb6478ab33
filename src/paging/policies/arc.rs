//! ARC (Megiddo and Modha, FAST 2003): two LRU lists, T1 for pages seen once recently and
//! T2 for pages seen at least twice, with ghost lists B1 and B2 of recently evicted pages
//! whose hits move the target size `p` of T1.

use crate::paging::util::DList;
use crate::paging::{Eviction, Req};

/// Adaptive replacement cache.
pub struct Arc {
    c: usize,
    p: f64,
    t1: DList,
    t2: DList,
    b1: DList,
    b2: DList,
    /// Request time for which `p` was already adapted (a ghost hit adapts once).
    adapted_at: u64,
}

impl Arc {
    /// An ARC cache of `c` pages.
    pub fn new(c: usize, num_pages: usize) -> Self {
        Arc {
            c,
            p: 0.0,
            t1: DList::new(num_pages),
            t2: DList::new(num_pages),
            b1: DList::new(num_pages),
            b2: DList::new(num_pages),
            adapted_at: u64::MAX,
        }
    }

    fn adapt(&mut self, r: &Req) {
        if self.adapted_at == r.t {
            return;
        }
        self.adapted_at = r.t;
        let (b1, b2) = (self.b1.len() as f64, self.b2.len() as f64);
        if self.b1.contains(r.page) {
            self.p = (self.p + (b2 / b1).max(1.0)).min(self.c as f64);
        } else if self.b2.contains(r.page) {
            self.p = (self.p - (b1 / b2).max(1.0)).max(0.0);
        }
    }

    /// REPLACE(x, p): demote the LRU page of T1 or T2 to its ghost list.
    fn replace(&mut self, page: u32) -> u32 {
        let t1 = self.t1.len() as f64;
        let from_t1 = !self.t1.is_empty()
            && ((self.b2.contains(page) && t1 == self.p) || t1 > self.p)
            || self.t2.is_empty();
        if from_t1 {
            let v = self.t1.pop_tail().expect("T1 is not empty");
            self.b1.push_head(v);
            v
        } else {
            let v = self.t2.pop_tail().expect("T2 is not empty");
            self.b2.push_head(v);
            v
        }
    }
}

impl Eviction for Arc {
    fn name(&self) -> String {
        "arc".into()
    }
    fn find(&mut self, r: &Req) -> bool {
        if self.t1.contains(r.page) {
            self.t1.unlink(r.page);
            self.t2.push_head(r.page);
            true
        } else if self.t2.contains(r.page) {
            self.t2.move_to_head(r.page);
            true
        } else {
            false
        }
    }
    fn evict(&mut self, r: &Req) -> u32 {
        let x = r.page;
        if self.b1.contains(x) || self.b2.contains(x) {
            self.adapt(r);
            return self.replace(x);
        }
        // Case IV: x is new.
        if self.t1.len() + self.b1.len() >= self.c {
            if self.t1.len() < self.c {
                self.b1.pop_tail();
                self.replace(x)
            } else {
                // T1 fills the cache: drop its LRU page without a ghost.
                self.t1.pop_tail().expect("T1 is full")
            }
        } else {
            if self.t1.len() + self.t2.len() + self.b1.len() + self.b2.len() >= 2 * self.c {
                self.b2.pop_tail();
            }
            self.replace(x)
        }
    }
    fn insert(&mut self, r: &Req) {
        let x = r.page;
        if self.b1.contains(x) || self.b2.contains(x) {
            self.adapt(r);
            if self.b1.contains(x) {
                self.b1.unlink(x);
            } else {
                self.b2.unlink(x);
            }
            self.t2.push_head(x);
            return;
        }
        // Keep the directory within 2c and L1 within c (matters when the cache was not full).
        if self.t1.len() + self.b1.len() >= self.c && !self.b1.is_empty() {
            self.b1.pop_tail();
        }
        if self.t1.len() + self.t2.len() + self.b1.len() + self.b2.len() >= 2 * self.c
            && !self.b2.is_empty()
        {
            self.b2.pop_tail();
        }
        self.t1.push_head(x);
    }
    fn remove(&mut self, page: u32) {
        if self.t1.contains(page) {
            self.t1.unlink(page);
        } else if self.t2.contains(page) {
            self.t2.unlink(page);
        }
    }
    fn len(&self) -> usize {
        self.t1.len() + self.t2.len()
    }
    fn contains(&self, page: u32) -> bool {
        self.t1.contains(page) || self.t2.contains(page)
    }
}
