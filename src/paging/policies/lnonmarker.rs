//! The non-robust core of LNonMarker (Rohatgi, SODA 2020). Like LMarker for clean pages
//! (evict the unmarked page predicted furthest away); for a stale page it looks at the page
//! that replaced it when it was evicted: if that page was clean, the victim is uniformly
//! random among all cached pages (marked ones included, so this is not a marking
//! algorithm), otherwise a uniformly random unmarked page. Alone it has no worst-case
//! bound; `lnonmarker` combines it with Marker by the deterministic switch, which gives
//! O(1 + min(log k, eta / (k OPT))).

use super::marking::{Marked, Marking, MarkingRule};
use crate::paging::util::grow;
use crate::paging::Req;
use rand::rngs::StdRng;

/// LNonMarker without the robustness wrapper.
pub type LNonMarkerCore = Marked<LNonMarkerRule>;

/// LNonMarker's phases (in distinct requests) and replacements.
pub struct LNonMarkerRule {
    /// Per page evicted: the phase and the page that took its place (counts only in that
    /// phase, so a phase change forgets them all at once).
    replaced_by: Vec<(u32, u32)>,
    k: usize,
    /// Phase in which each page was last requested.
    seen_in: Vec<u32>,
    /// Distinct pages requested in the current phase.
    distinct: usize,
}

impl LNonMarkerCore {
    /// An LNonMarker core cache.
    pub fn new(k: usize, num_pages: usize, seed: u64) -> Self {
        let rule = LNonMarkerRule {
            replaced_by: Vec::new(),
            k,
            seen_in: vec![0; num_pages],
            distinct: 0,
        };
        Marked::with_rule(Marking::new(num_pages), seed, rule)
    }
}

impl MarkingRule for LNonMarkerRule {
    const NAME: &'static str = "lnonmarker-core";
    const PHASE_ON_EVICT: bool = false;
    fn on_request(&mut self, m: &mut Marking, r: &Req) {
        // Phases are counted in distinct requested pages: the (k+1)-th starts a new one.
        if r.page as usize >= self.seen_in.len() {
            self.seen_in.resize(r.page as usize + 1, 0);
        }
        if self.seen_in[r.page as usize] != m.phase {
            self.distinct += 1;
            if self.distinct == self.k + 1 {
                m.new_phase();
                self.distinct = 1;
            }
            self.seen_in[r.page as usize] = m.phase;
        }
    }
    fn choose(&mut self, m: &Marking, rng: &mut StdRng, r: &Req) -> Option<u32> {
        let v = if m.is_stale(r.page) {
            let by = self.replaced_by.get(r.page as usize);
            let by_clean = by.is_some_and(|&(phase, q)| phase == m.phase && !m.is_stale(q));
            if by_clean {
                m.random_cached(rng)
            } else {
                m.random_unmarked(rng)
            }
        } else {
            m.furthest_unmarked()
        }?;
        grow(&mut self.replaced_by, v, (0, 0));
        self.replaced_by[v as usize] = (m.phase, r.page);
        Some(v)
    }
}
