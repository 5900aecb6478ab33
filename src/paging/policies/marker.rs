//! Randomized Marker (Fiat et al., 1991): on a miss with every cached page marked a new
//! phase begins and all pages are unmarked; the victim is a uniformly random unmarked page.
//! 2 H_k-competitive.
//!
//! Serving: pinned pages are never chosen; a phase ends when an eviction finds no unmarked
//! unpinned page (see [`Marking`]). Every operation O(1) (heap updates of the shared
//! marking state: O(log k); Marker keeps no order by prediction, so O(1)).

use super::marking::Marking;
use crate::paging::{Eviction, Req};
use rand::rngs::StdRng;
use rand::SeedableRng;

/// Randomized marking.
pub struct Marker {
    m: Marking,
    rng: StdRng,
}

impl Marker {
    /// A Marker cache with its own random stream.
    pub fn new(num_pages: usize, seed: u64) -> Self {
        Marker {
            m: Marking::without_predictions(num_pages),
            rng: StdRng::seed_from_u64(seed),
        }
    }
}

impl Eviction for Marker {
    fn name(&self) -> String {
        "marker".into()
    }
    fn find(&mut self, r: &Req) -> bool {
        if self.m.contains(r.page) {
            self.m.hit(r.page, r.pred);
            true
        } else {
            false
        }
    }
    fn insert(&mut self, r: &Req) {
        self.m.insert(r.page, r.pred);
    }
    fn evict(&mut self, _: &Req) -> u32 {
        self.m.ensure_unmarked();
        let v = self
            .m
            .random_unmarked(&mut self.rng)
            .expect("an unpinned page is unmarked after a phase change");
        self.m.remove(v);
        v
    }
    fn remove(&mut self, page: u32) {
        self.m.remove(page);
    }
    fn len(&self) -> usize {
        self.m.len()
    }
    fn contains(&self, page: u32) -> bool {
        self.m.contains(page)
    }
    fn serves(&self) -> bool {
        true
    }
    fn insert_pinned(&mut self, r: &Req) {
        self.m.insert_pinned(r.page, r.pred);
    }
    fn hit(&mut self, r: &Req) {
        self.m.hit(r.page, r.pred);
    }
    fn pin(&mut self, page: u32) {
        self.m.pin(page);
    }
    fn unpin(&mut self, r: &Req) {
        self.m.unpin(r.page, r.pred);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::paging::NEVER;

    fn req(t: u64, page: u32) -> Req {
        Req {
            t,
            page,
            next_use: NEVER,
            pred: t as f64,
        }
    }

    #[test]
    fn a_phase_change_costs_o1_with_most_pages_pinned() {
        // 200,000 pinned pages and one unpinned page at a time, marked by its insert: every
        // eviction begins a phase (a linear phase change would cost 4e9 steps here).
        let n = 200_000u32;
        let mut p = Marker::new(0, 1);
        for i in 0..n {
            p.insert_pinned(&req(i as u64, i));
        }
        for i in n..n + 20_000 {
            p.insert_pinned(&req(i as u64, i));
            p.unpin(&req(i as u64, i));
            assert_eq!(p.evict(&req(i as u64, u32::MAX - 1)), i);
        }
        assert_eq!(p.m.phase, 20_001);
        assert_eq!(p.len(), n as usize);
    }
}
