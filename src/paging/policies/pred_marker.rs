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
//! ended. O(log k) per operation (amortized; chains are per-page stamps of their phase, so
//! a phase change ends them all at once).

use super::marking::{Marked, Marking, MarkingRule};
use crate::paging::util::grow;
use crate::paging::Req;
use rand::rngs::StdRng;

/// Predictive Marker.
pub type PredictiveMarker = Marked<Chains>;

/// Predictive Marker's eviction chains.
pub struct Chains {
    hk: f64,
    /// Per page: the phase and length of the chain it represents (the last page evicted
    /// in the chain); a chain counts only in its phase (chains end with it), and length 0
    /// is none.
    chain: Vec<(u32, u32)>,
}

impl PredictiveMarker {
    /// A Predictive Marker cache of `k` pages.
    pub fn new(k: usize, num_pages: usize, seed: u64) -> Self {
        let hk = (1..=k).map(|i| 1.0 / i as f64).sum();
        let m = Marking::with_ghosts(num_pages);
        let chain = vec![(0, 0); num_pages];
        Marked::with_rule(m, seed, Chains { hk, chain })
    }
}

impl MarkingRule for Chains {
    const NAME: &'static str = "predictive-marker";
    const SERVES: bool = true;
    fn choose(&mut self, m: &Marking, rng: &mut StdRng, r: &Req) -> Option<u32> {
        let (victim, len) = if !m.is_stale(r.page) {
            // A clean page starts a chain.
            (m.furthest_unmarked()?, 1)
        } else {
            // The chain `r.page` represents (if any, in this phase) goes on from it.
            let len = match self.chain.get_mut(r.page as usize) {
                Some(c) if c.0 == m.phase => std::mem::take(&mut c.1),
                _ => 0,
            } + 1;
            let v = if len as f64 <= self.hk {
                m.furthest_unmarked()
            } else {
                m.random_unmarked(rng)
            }?;
            (v, len)
        };
        grow(&mut self.chain, victim, (0, 0));
        self.chain[victim as usize] = (m.phase, len);
        Some(victim)
    }
}
