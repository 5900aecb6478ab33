//! `marker-absent-first`: a marking algorithm (phases, marks on request) that, on a miss,
//! evicts the unmarked page with the smallest page id (the earliest first seen) among those
//! whose latest phase bit says they are *not* requested in the next phase; if every
//! unmarked page is predicted to return, a uniformly random unmarked page (randomized
//! Marker's rule). This project's own rule for the phase bits of Antoniadis et al.,
//! "Paging with Succinct Predictions" (ICML 2023). The paper's MARK&PREDICT (`mark-predict`,
//! in `mark_predict.rs`) differs only in choosing uniformly at random among the pages
//! predicted absent.
//!
//! Guarantees. Robustness: it is a marking algorithm, so whatever the bits it misses at
//! most `k` times per phase while OPT misses at least once per phase after the first:
//! `k`-competitive. Consistency: with correct bits, at the start of phase `i + 1` the cache
//! holds exactly the `k` pages of phase `i`, of which exactly `new(i + 1)` (the pages of
//! phase `i + 1` not in phase `i`) have bit 0; each new page evicts one of them and no
//! page predicted to return is evicted, so the cost is `sum_i new(i)`, the least any
//! marking algorithm can pay, and at most `2 OPT` since `OPT >= sum_i new(i) / 2`.

use super::marking::Marking;
use crate::paging::{Eviction, Req};
use rand::rngs::StdRng;
use rand::SeedableRng;

/// Marking that evicts pages predicted absent from the next phase first.
pub struct MarkerAbsentFirst {
    m: Marking,
    rng: StdRng,
}

impl MarkerAbsentFirst {
    /// An empty cache with its own random stream.
    pub fn new(num_pages: usize, seed: u64) -> Self {
        MarkerAbsentFirst {
            m: Marking::new(num_pages),
            rng: StdRng::seed_from_u64(seed),
        }
    }
}

/// Heap key: 1 for "not requested in the next phase" (evicted first), else 0.
fn key(r: &Req) -> f64 {
    if r.pred >= 0.5 {
        0.0
    } else {
        1.0
    }
}

impl Eviction for MarkerAbsentFirst {
    fn name(&self) -> String {
        "marker-absent-first".into()
    }
    fn find(&mut self, r: &Req) -> bool {
        if self.m.contains(r.page) {
            self.m.hit(r.page, key(r));
            true
        } else {
            false
        }
    }
    fn insert(&mut self, r: &Req) {
        self.m.insert(r.page, key(r));
    }
    fn evict(&mut self, _: &Req) -> u32 {
        if self.m.num_unmarked() == 0 {
            self.m.new_phase();
        }
        let v = match self.m.furthest_unmarked() {
            Some(p) if self.m.key_of_unmarked(p) == Some(1.0) => p,
            _ => self
                .m
                .random_unmarked(&mut self.rng)
                .expect("a full cache has unmarked pages after a phase change"),
        };
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
