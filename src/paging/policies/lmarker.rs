//! LMarker (Rohatgi, SODA 2020): a marking algorithm that evicts the unmarked page
//! predicted furthest in the future when the missing page is clean, and a uniformly
//! random unmarked page when it is stale. Guarantee: O(1 + min(log k, log(1 + eta/OPT)))
//! against the l1 error eta of the predicted next-arrival times.

use super::marking::Marking;
use crate::paging::{Eviction, Req};
use rand::rngs::StdRng;
use rand::SeedableRng;

/// LMarker.
pub struct LMarker {
    m: Marking,
    rng: StdRng,
}

impl LMarker {
    /// An LMarker cache.
    pub fn new(num_pages: usize, seed: u64) -> Self {
        LMarker {
            m: Marking::new(num_pages),
            rng: StdRng::seed_from_u64(seed),
        }
    }
}

impl Eviction for LMarker {
    fn name(&self) -> String {
        "lmarker".into()
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
    fn evict(&mut self, r: &Req) -> u32 {
        if self.m.num_unmarked() == 0 {
            self.m.new_phase();
        }
        let v = if self.m.is_stale(r.page) {
            self.m.random_unmarked(&mut self.rng)
        } else {
            self.m.furthest_unmarked()
        }
        .expect("unmarked pages");
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
