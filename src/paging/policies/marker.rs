//! Randomized Marker (Fiat et al., 1991): on a miss with every cached page marked a new
//! phase begins and all pages are unmarked; the victim is a uniformly random unmarked page.
//! 2 H_k-competitive.
//!
//! Serving: pinned pages are never chosen; a phase ends when an eviction finds no unmarked
//! unpinned page (see [`Marking`]). Every operation O(1) (heap updates of the shared
//! marking state: O(log k); Marker keeps no order by prediction, so O(1)).

use super::marking::{Marked, Marking, MarkingRule};
use crate::paging::Req;
use rand::rngs::StdRng;

/// Randomized marking.
pub type Marker = Marked<MarkerRule>;

/// Marker's victim: a uniformly random unmarked page.
#[derive(Default)]
pub struct MarkerRule;

impl MarkingRule for MarkerRule {
    const NAME: &'static str = "marker";
    const SERVES: bool = true;
    const STATE: fn(usize) -> Marking = Marking::without_predictions;
    fn choose(&mut self, m: &Marking, rng: &mut StdRng, _: &Req) -> Option<u32> {
        m.random_unmarked(rng)
    }
}

#[cfg(test)]
mod tests {
    use super::super::marking::test_req;
    use super::*;
    use crate::paging::Eviction;

    fn req(t: u64, page: u32) -> Req {
        test_req(t, page, t as f64)
    }

    #[test]
    fn a_phase_change_costs_o1_with_most_pages_pinned() {
        // 200,000 pinned pages and one unpinned page at a time, marked by its insert: every
        // eviction begins a phase (a linear phase change would cost 4e9 steps here).
        let n = 200_000u32;
        let mut p = Marker::new(0, 1);
        for i in 0..n {
            p.insert_pinned(&req(i as u64, i));
        }
        for i in n..n + 20_000 {
            p.insert_pinned(&req(i as u64, i));
            p.unpin(&req(i as u64, i));
            assert_eq!(p.evict(&req(i as u64, u32::MAX - 1)), i);
        }
        assert_eq!(p.m.phase, 20_001);
        assert_eq!(p.len(), n as usize);
    }
}
