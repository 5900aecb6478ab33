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

use crate::paging::util::ListSet;
use crate::paging::{Eviction, Req};

/// ARC's lists in its [`ListSet`], and the states of pages in use (serving).
const T1: u8 = 0;
const T2: u8 = 1;
const B1: u8 = 2;
const B2: u8 = 3;
/// In use, a member of T1 (counted in its size, out of its order).
const PINNED_T1: u8 = 4;
/// In use, a member of T2.
const PINNED_T2: u8 = 5;

/// Adaptive replacement cache.
pub struct Arc {
    c: usize,
    p: f64,
    /// T1, T2, B1 and B2, with the pinned pages' states: one tag and one pair of links per
    /// page.
    lists: ListSet<4>,
    /// Request time for which `p` was already adapted (a ghost hit adapts once).
    adapted_at: u64,
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
            lists: ListSet::new(num_pages),
            adapted_at: u64::MAX,
            t1_pinned: 0,
            t2_pinned: 0,
            forgotten: Vec::new(),
            serving: false,
        }
    }

    fn t1_len(&self) -> usize {
        self.lists.len(T1) + self.t1_pinned
    }

    fn t2_len(&self) -> usize {
        self.lists.len(T2) + self.t2_pinned
    }

    fn ghosts(&self) -> usize {
        self.lists.len(B1) + self.lists.len(B2)
    }

    fn adapt(&mut self, r: &Req) {
        if self.adapted_at == r.t {
            return;
        }
        self.adapted_at = r.t;
        let (b1, b2) = (self.lists.len(B1) as f64, self.lists.len(B2) as f64);
        match self.lists.tag(r.page) {
            B1 => self.p = (self.p + (b2 / b1).max(1.0)).min(self.c as f64),
            B2 => self.p = (self.p - (b1 / b2).max(1.0)).max(0.0),
            _ => {}
        }
    }

    fn drop_ghost(&mut self, from_b1: bool) {
        let g = self.lists.pop_tail(if from_b1 { B1 } else { B2 });
        if let (Some(g), true) = (g, self.serving) {
            self.forgotten.push(g);
        }
    }

    /// REPLACE(x, p): demote the LRU page of T1 or T2 to its ghost list.
    fn replace(&mut self, page: u32) -> u32 {
        let t1 = self.t1_len() as f64;
        let from_t1 = !self.lists.is_empty(T1)
            && ((self.lists.contains(B2, page) && t1 == self.p) || t1 > self.p)
            || self.lists.is_empty(T2);
        let (from, to) = if from_t1 { (T1, B1) } else { (T2, B2) };
        let v = self
            .lists
            .pop_tail(from)
            .expect("T1 or T2 has an evictable page");
        self.lists.push_head(to, v);
        v
    }

    /// Keep |T1| + |B1| <= c and the directory within 2c (serving: ghosts added by
    /// evictions whose incoming page is not known).
    fn trim_directory(&mut self) {
        while self.t1_len() + self.lists.len(B1) > self.c && !self.lists.is_empty(B1) {
            self.drop_ghost(true);
        }
        while self.t1_len() + self.t2_len() + self.ghosts() > 2 * self.c {
            let from_b1 = self.lists.is_empty(B2);
            if from_b1 && self.lists.is_empty(B1) {
                break;
            }
            self.drop_ghost(from_b1);
        }
    }

    /// Admit missing `x`: from a ghost list to T2 (true), or new to T1 (false).
    fn admit(&mut self, r: &Req) -> bool {
        let x = r.page;
        if matches!(self.lists.tag(x), B1 | B2) {
            self.adapt(r);
            self.lists.unlink(x);
            return true;
        }
        // Keep the directory within 2c and L1 within c (matters when the cache was not full).
        if self.t1_len() + self.lists.len(B1) >= self.c && !self.lists.is_empty(B1) {
            self.drop_ghost(true);
        }
        if self.t1_len() + self.t2_len() + self.ghosts() >= 2 * self.c && !self.lists.is_empty(B2) {
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
        match self.lists.tag(r.page) {
            T1 => {
                self.lists.unlink(r.page);
                self.lists.push_head(T2, r.page);
                true
            }
            T2 => {
                self.lists.move_to_head(T2, r.page);
                true
            }
            _ => false,
        }
    }
    fn evict(&mut self, r: &Req) -> u32 {
        if self.serving {
            let v = self.replace(r.page);
            self.trim_directory();
            return v;
        }
        let x = r.page;
        if matches!(self.lists.tag(x), B1 | B2) {
            self.adapt(r);
            return self.replace(x);
        }
        // Case IV: x is new.
        if self.lists.len(T1) + self.lists.len(B1) >= self.c {
            if self.lists.len(T1) < self.c {
                self.lists.pop_tail(B1);
                self.replace(x)
            } else {
                // T1 fills the cache: drop its LRU page without a ghost.
                self.lists.pop_tail(T1).expect("T1 is full")
            }
        } else {
            if self.lists.len(T1) + self.lists.len(T2) + self.ghosts() >= 2 * self.c {
                self.lists.pop_tail(B2);
            }
            self.replace(x)
        }
    }
    fn insert(&mut self, r: &Req) {
        let to = if self.admit(r) { T2 } else { T1 };
        self.lists.push_head(to, r.page);
    }
    fn remove(&mut self, page: u32) {
        match self.lists.tag(page) {
            PINNED_T1 => {
                self.t1_pinned -= 1;
                self.lists.set_state(page, ListSet::<4>::NOWHERE);
            }
            PINNED_T2 => {
                self.t2_pinned -= 1;
                self.lists.set_state(page, ListSet::<4>::NOWHERE);
            }
            T1 | T2 => self.lists.unlink(page),
            _ => {}
        }
    }
    fn len(&self) -> usize {
        self.t1_len() + self.t2_len()
    }
    fn contains(&self, page: u32) -> bool {
        matches!(self.lists.tag(page), T1 | T2 | PINNED_T1 | PINNED_T2)
    }
    fn serves(&self) -> bool {
        true
    }
    fn insert_pinned(&mut self, r: &Req) {
        self.serving = true;
        if self.admit(r) {
            self.lists.set_state(r.page, PINNED_T2);
            self.t2_pinned += 1;
        } else {
            self.lists.set_state(r.page, PINNED_T1);
            self.t1_pinned += 1;
        }
    }
    fn hit(&mut self, r: &Req) {
        match self.lists.tag(r.page) {
            PINNED_T1 => {
                self.lists.set_state(r.page, PINNED_T2);
                self.t1_pinned -= 1;
                self.t2_pinned += 1;
            }
            PINNED_T2 => {}
            _ => {
                self.find(r);
            }
        }
    }
    fn pin(&mut self, page: u32) {
        let state = match self.lists.tag(page) {
            T1 => {
                self.t1_pinned += 1;
                PINNED_T1
            }
            T2 => {
                self.t2_pinned += 1;
                PINNED_T2
            }
            _ => return,
        };
        self.lists.unlink(page);
        self.lists.set_state(page, state);
    }
    fn unpin(&mut self, r: &Req) {
        let to = match self.lists.tag(r.page) {
            PINNED_T1 => {
                self.t1_pinned -= 1;
                T1
            }
            PINNED_T2 => {
                self.t2_pinned -= 1;
                T2
            }
            _ => return,
        };
        self.lists.push_head(to, r.page);
    }
    fn take_forgotten(&mut self, out: &mut Vec<u32>) {
        out.append(&mut self.forgotten);
    }
    fn has_ghosts(&self) -> bool {
        true
    }
}
