//! Randomized Marker (Fiat et al., 1991): on a miss with every cached page marked a new
//! phase begins and all pages are unmarked; the victim is a uniformly random unmarked page.
//! 2 H_k-competitive.

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
            m: Marking::new(num_pages),
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
        if self.m.num_unmarked() == 0 {
            self.m.new_phase();
        }
        let v = self
            .m
            .random_unmarked(&mut self.rng)
            .expect("a full cache has unmarked pages after a phase change");
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
}
