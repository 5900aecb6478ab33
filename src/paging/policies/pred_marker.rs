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

use super::marking::{Marked, Marking, MarkingRule};
use crate::paging::Req;
use rand::rngs::StdRng;
use std::collections::HashMap;

/// Predictive Marker.
pub type PredictiveMarker = Marked<Chains>;

/// Predictive Marker's eviction chains.
pub struct Chains {
    hk: f64,
    /// Chain representative (last page evicted in the chain) to chain length.
    chains: HashMap<u32, u32>,
    /// The phase the chains belong to (they end with it).
    phase: u32,
}

impl PredictiveMarker {
    /// A Predictive Marker cache of `k` pages.
    pub fn new(k: usize, num_pages: usize, seed: u64) -> Self {
        let hk = (1..=k).map(|i| 1.0 / i as f64).sum();
        let m = Marking::with_ghosts(num_pages);
        let phase = m.phase;
        let chains = HashMap::new();
        Marked::with_rule(m, seed, Chains { hk, chains, phase })
    }
}

impl MarkingRule for Chains {
    const NAME: &'static str = "predictive-marker";
    const SERVES: bool = true;
    fn choose(&mut self, m: &Marking, rng: &mut StdRng, r: &Req) -> Option<u32> {
        // Phases change only at an eviction: this one began a phase.
        if m.phase != self.phase {
            self.phase = m.phase;
            if !self.chains.is_empty() {
                // A fresh map, not `clear` (which is linear in the capacity).
                self.chains = HashMap::new();
            }
        }
        let victim = if !m.is_stale(r.page) {
            // A clean page starts a chain.
            let v = m.furthest_unmarked()?;
            self.chains.insert(v, 1);
            v
        } else {
            let len = self.chains.remove(&r.page).map_or(1, |l| l + 1);
            let v = if len as f64 <= self.hk {
                m.furthest_unmarked()
            } else {
                m.random_unmarked(rng)
            }?;
            self.chains.insert(v, len);
            v
        };
        Some(victim)
    }
}
