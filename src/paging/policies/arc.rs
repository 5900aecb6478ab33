//! ARC (Megiddo and Modha, FAST 2003): two LRU lists, T1 for pages seen once recently and
//! T2 for pages seen at least twice, with ghost lists B1 and B2 of recently evicted pages
//! whose hits move the target size `p` of T1.
//!
//! In serving, a page in use stays a member of T1 or T2 (it counts in their sizes) but is
//! out of the list order until released, when it becomes the most recent of its list; a hit
//! moves it from T1 to T2 at once. The victim is chosen without knowing the page that will
//! take its block (the pool asks before the content is known): REPLACE takes T1's LRU page
//! when |T1| > p (or T2 has nothing evictable), else T2's; the directory bounds
//! (|T1| + |B1| <= c, all four <= 2c) are kept by dropping ghosts.

use crate::paging::util::{grow, DList, Pins};
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
    pins: Pins,
    /// Pinned members of T2 (the others pinned are in T1).
    in_t2: Vec<bool>,
    t1_pinned: usize,
    t2_pinned: usize,
    /// Pages dropped from the directory (serving: their ids may be reused).
    forgotten: Vec<u32>,
    serving: bool,
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
            pins: Pins::default(),
            in_t2: Vec::new(),
            t1_pinned: 0,
            t2_pinned: 0,
            forgotten: Vec::new(),
            serving: false,
        }
    }

    fn t1_len(&self) -> usize {
        self.t1.len() + self.t1_pinned
    }

    fn t2_len(&self) -> usize {
        self.t2.len() + self.t2_pinned
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

    fn drop_ghost(&mut self, from_b1: bool) {
        let g = if from_b1 {
            self.b1.pop_tail()
        } else {
            self.b2.pop_tail()
        };
        if let (Some(g), true) = (g, self.serving) {
            self.forgotten.push(g);
        }
    }

    /// REPLACE(x, p): demote the LRU page of T1 or T2 to its ghost list.
    fn replace(&mut self, page: u32) -> u32 {
        let t1 = self.t1_len() as f64;
        let from_t1 = !self.t1.is_empty()
            && ((self.b2.contains(page) && t1 == self.p) || t1 > self.p)
            || self.t2.is_empty();
        if from_t1 {
            let v = self.t1.pop_tail().expect("T1 has an evictable page");
            self.b1.push_head(v);
            v
        } else {
            let v = self.t2.pop_tail().expect("T2 has an evictable page");
            self.b2.push_head(v);
            v
        }
    }

    /// Keep |T1| + |B1| <= c and the directory within 2c (serving: ghosts added by
    /// evictions whose incoming page is not known).
    fn trim_directory(&mut self) {
        while self.t1_len() + self.b1.len() > self.c && !self.b1.is_empty() {
            self.drop_ghost(true);
        }
        while self.t1_len() + self.t2_len() + self.b1.len() + self.b2.len() > 2 * self.c {
            let from_b1 = self.b2.is_empty();
            if from_b1 && self.b1.is_empty() {
                break;
            }
            self.drop_ghost(from_b1);
        }
    }

    /// Admit missing `x`: from a ghost list to T2 (true), or new to T1 (false).
    fn admit(&mut self, r: &Req) -> bool {
        let x = r.page;
        if self.b1.contains(x) || self.b2.contains(x) {
            self.adapt(r);
            if self.b1.contains(x) {
                self.b1.unlink(x);
            } else {
                self.b2.unlink(x);
            }
            return true;
        }
        // Keep the directory within 2c and L1 within c (matters when the cache was not full).
        if self.t1_len() + self.b1.len() >= self.c && !self.b1.is_empty() {
            self.drop_ghost(true);
        }
        if self.t1_len() + self.t2_len() + self.b1.len() + self.b2.len() >= 2 * self.c
            && !self.b2.is_empty()
        {
            self.drop_ghost(false);
        }
        false
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
        if self.serving {
            let v = self.replace(r.page);
            self.trim_directory();
            return v;
        }
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
        if self.admit(r) {
            self.t2.push_head(r.page);
        } else {
            self.t1.push_head(r.page);
        }
    }
    fn remove(&mut self, page: u32) {
        if self.pins.unpin(page) {
            if self.in_t2[page as usize] {
                self.t2_pinned -= 1;
            } else {
                self.t1_pinned -= 1;
            }
        } else if self.t1.contains(page) {
            self.t1.unlink(page);
        } else if self.t2.contains(page) {
            self.t2.unlink(page);
        }
    }
    fn len(&self) -> usize {
        self.t1_len() + self.t2_len()
    }
    fn contains(&self, page: u32) -> bool {
        self.t1.contains(page) || self.t2.contains(page) || self.pins.is_pinned(page)
    }
    fn serves(&self) -> bool {
        true
    }
    fn insert_pinned(&mut self, r: &Req) {
        self.serving = true;
        let to_t2 = self.admit(r);
        grow(&mut self.in_t2, r.page, false);
        self.in_t2[r.page as usize] = to_t2;
        self.pins.pin(r.page);
        if to_t2 {
            self.t2_pinned += 1;
        } else {
            self.t1_pinned += 1;
        }
    }
    fn hit(&mut self, r: &Req) {
        if !self.pins.is_pinned(r.page) {
            self.find(r);
        } else if !self.in_t2[r.page as usize] {
            self.in_t2[r.page as usize] = true;
            self.t1_pinned -= 1;
            self.t2_pinned += 1;
        }
    }
    fn pin(&mut self, page: u32) {
        grow(&mut self.in_t2, page, false);
        let in_t2 = self.t2.contains(page);
        if in_t2 {
            self.t2.unlink(page);
            self.t2_pinned += 1;
        } else if self.t1.contains(page) {
            self.t1.unlink(page);
            self.t1_pinned += 1;
        } else {
            return;
        }
        self.in_t2[page as usize] = in_t2;
        self.pins.pin(page);
    }
    fn unpin(&mut self, r: &Req) {
        if !self.pins.unpin(r.page) {
            return;
        }
        if self.in_t2[r.page as usize] {
            self.t2_pinned -= 1;
            self.t2.push_head(r.page);
        } else {
            self.t1_pinned -= 1;
            self.t1.push_head(r.page);
        }
    }
    fn take_forgotten(&mut self, out: &mut Vec<u32>) {
        out.append(&mut self.forgotten);
    }
    fn has_ghosts(&self) -> bool {
        true
    }
}
