//! The non-robust core of LNonMarker (Rohatgi, SODA 2020). Like LMarker for clean pages
//! (evict the unmarked page predicted furthest away); for a stale page it looks at the page
//! that replaced it when it was evicted: if that page was clean, the victim is uniformly
//! random among all cached pages (marked ones included, so this is not a marking
//! algorithm), otherwise a uniformly random unmarked page. Alone it has no worst-case
//! bound; `lnonmarker` combines it with Marker by the deterministic switch, which gives
//! O(1 + min(log k, eta / (k OPT))).

use super::marking::Marking;
use crate::paging::{Eviction, Req};
use rand::rngs::StdRng;
use rand::SeedableRng;
use std::collections::HashMap;

/// LNonMarker without the robustness wrapper.
pub struct LNonMarkerCore {
    m: Marking,
    rng: StdRng,
    /// Page evicted this phase to the page that took its place.
    replaced_by: HashMap<u32, u32>,
    k: usize,
    /// Phase in which each page was last requested.
    seen_in: Vec<u32>,
    /// Distinct pages requested in the current phase.
    distinct: usize,
}

impl LNonMarkerCore {
    /// An LNonMarker core cache.
    pub fn new(k: usize, num_pages: usize, seed: u64) -> Self {
        LNonMarkerCore {
            m: Marking::new(num_pages),
            rng: StdRng::seed_from_u64(seed),
            replaced_by: HashMap::new(),
            k,
            seen_in: vec![0; num_pages],
            distinct: 0,
        }
    }
}

impl Eviction for LNonMarkerCore {
    fn name(&self) -> String {
        "lnonmarker-core".into()
    }
    fn find(&mut self, r: &Req) -> bool {
        // Phases are counted in distinct requested pages: the (k+1)-th starts a new one.
        if r.page as usize >= self.seen_in.len() {
            self.seen_in.resize(r.page as usize + 1, 0);
        }
        if self.seen_in[r.page as usize] != self.m.phase {
            self.distinct += 1;
            if self.distinct == self.k + 1 {
                self.m.new_phase();
                self.replaced_by.clear();
                self.distinct = 1;
            }
            self.seen_in[r.page as usize] = self.m.phase;
        }
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
        let v = if self.m.is_stale(r.page) {
            let by_clean = self
                .replaced_by
                .get(&r.page)
                .is_some_and(|&q| !self.m.is_stale(q));
            if by_clean {
                self.m.random_cached(&mut self.rng)
            } else {
                self.m.random_unmarked(&mut self.rng)
            }
        } else {
            self.m.furthest_unmarked()
        }
        .expect("pages to evict");
        self.replaced_by.insert(v, r.page);
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
