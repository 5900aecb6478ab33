//! Predictive Marker (Lykouris and Vassilvitskii, ICML 2018; "L&V"): a marking algorithm
//! that evicts the unmarked page predicted furthest in the future, except that evictions
//! are organised in chains (a clean page starts a chain; a stale page requested after its
//! eviction extends the chain of the page that evicted it) and once a chain is longer than
//! H_k the victim is a uniformly random unmarked page. Guarantee: O(1 + min(sqrt(eta/OPT),
//! log k))-competitive, where eta is the l1 error of the predicted next-arrival times; at
//! most 4 H_k-competitive whatever the predictions.
//!
//! Serving: the choice is among unmarked unpinned pages (see [`Marking`]); chains and the
//! stale test follow the page of the request `evict` receives (a page id never cached
//! counts as clean and starts a chain). A prediction is the latest of the page's requests
//! and unpin. A page evicted or removed is forgotten (its id reusable) once its phase has
//! ended. O(log k) per operation (amortized: chains are cleared at a phase change).

use super::marking::Marking;
use crate::paging::{Eviction, Req};
use rand::rngs::StdRng;
use rand::SeedableRng;
use std::collections::HashMap;

/// Predictive Marker.
pub struct PredictiveMarker {
    m: Marking,
    rng: StdRng,
    hk: f64,
    /// Chain representative (last page evicted in the chain) to chain length.
    chains: HashMap<u32, u32>,
}

impl PredictiveMarker {
    /// A Predictive Marker cache of `k` pages.
    pub fn new(k: usize, num_pages: usize, seed: u64) -> Self {
        let hk = (1..=k).map(|i| 1.0 / i as f64).sum();
        PredictiveMarker {
            m: Marking::with_ghosts(num_pages),
            rng: StdRng::seed_from_u64(seed),
            hk,
            chains: HashMap::new(),
        }
    }
}

impl Eviction for PredictiveMarker {
    fn name(&self) -> String {
        "predictive-marker".into()
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
        if self.m.ensure_unmarked() && !self.chains.is_empty() {
            // A fresh map, not `clear` (which is linear in the capacity).
            self.chains = HashMap::new();
        }
        let victim = if !self.m.is_stale(r.page) {
            // A clean page starts a chain.
            let v = self.m.furthest_unmarked().expect("unmarked pages");
            self.chains.insert(v, 1);
            v
        } else {
            let len = self.chains.remove(&r.page).map_or(1, |l| l + 1);
            let v = if len as f64 <= self.hk {
                self.m.furthest_unmarked()
            } else {
                self.m.random_unmarked(&mut self.rng)
            }
            .expect("unmarked pages");
            self.chains.insert(v, len);
            v
        };
        self.m.remove(victim);
        victim
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
    fn take_forgotten(&mut self, out: &mut Vec<u32>) {
        self.m.take_forgotten(out);
    }
    fn has_ghosts(&self) -> bool {
        // The stale test (and Predictive Marker's chains) remember the pages evicted in
        // the current phase.
        true
    }
}
