//! LMarker (Rohatgi, SODA 2020): a marking algorithm that evicts the unmarked page
//! predicted furthest in the future when the missing page is clean, and a uniformly
//! random unmarked page when it is stale. Guarantee: O(1 + min(log k, log(1 + eta/OPT)))
//! against the l1 error eta of the predicted next-arrival times.
//!
//! Serving: the choice is among unmarked unpinned pages (see [`Marking`]); the stale test
//! is on the page of the request `evict` receives (a page id never cached, such as the
//! serving simulator's sentinel for a block without content yet, counts as clean). A
//! prediction is the latest of the page's requests and unpin. A page evicted or removed is
//! forgotten (its id reusable) once its phase has ended. O(log k) per operation (amortized).

use super::marking::{Marked, Marking, MarkingRule};
use crate::paging::Req;
use rand::rngs::StdRng;

/// LMarker.
pub type LMarker = Marked<LMarkerRule>;

/// LMarker's victim: by prediction for a clean page, at random for a stale one.
#[derive(Default)]
pub struct LMarkerRule;

impl MarkingRule for LMarkerRule {
    const NAME: &'static str = "lmarker";
    const SERVES: bool = true;
    const STATE: fn(usize) -> Marking = Marking::with_ghosts;
    fn choose(&mut self, m: &Marking, rng: &mut StdRng, r: &Req) -> Option<u32> {
        if m.is_stale(r.page) {
            m.random_unmarked(rng)
        } else {
            m.furthest_unmarked()
        }
    }
}
