//! LMarker (Rohatgi, SODA 2020): a marking algorithm that evicts the unmarked page
//! predicted furthest in the future when the missing page is clean, and a uniformly
//! random unmarked page when it is stale. Guarantee: O(1 + min(log k, log(1 + eta/OPT)))
//! against the l1 error eta of the predicted next-arrival times.
//!
//! Serving: the choice is among unmarked unpinned pages (see [`Marking`]); the stale test
//! is on the page of the request `evict` receives (a page id never cached, such as the
//! serving simulator's sentinel for a block without content yet, counts as clean). A
//! prediction is the latest of the page's requests and unpin. A page evicted or removed is
//! forgotten (its id reusable) once its phase has ended. O(log k) per operation.

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
            m: Marking::with_ghosts(num_pages),
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
        self.m.ensure_unmarked();
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
