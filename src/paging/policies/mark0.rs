//! MARK0, the discard-prediction algorithm of Antoniadis, Boyar, Eliáš, Favrholdt, Hoeksma,
//! Larsen, Polak and Simon, "Paging with Succinct Predictions" (ICML 2023, arXiv
//! 2210.02775). Each request carries one bit: 1 when a fixed optimal algorithm evicts the
//! page before its next request ("safe to discard"), else 0.
//!
//! Rule. A marking algorithm (randomized Marker's phases and marks, shared with `marker`
//! through [`Marking`]) that discards pages at once when their bit says so:
//! - a request marks its page; on a miss with a full cache whose pages are all marked, a
//!   new phase begins and every cached page becomes unmarked; the victim of a miss is a
//!   uniformly random unmarked page;
//! - after a request whose bit is 1, the page is evicted at once (evicting costs nothing;
//!   its next request is a miss).
//!
//! Source. The paper's algorithm section could not be read here (only its abstract); the
//! rule follows the public implementation `OptiSys-ZJU/Cache-Coliseum`,
//! `cache/evict/algorithms.py`, class `Mark0` (read, not copied), which cites the paper:
//! marking with random unmarked victims, and a page whose bit is 1 is dropped from its slot
//! right after its request.
//!
//! Guarantees. The abstract states consistency, robustness and smoothness; a third-party
//! summary of the paper (arxivlens) gives the discard-prediction algorithm's bound as
//! `(1, k - 1, 1)`-competitive, without naming the algorithm, which we read
//! as `cost <= OPT + (k - 1) eta0 + eta1 (+ const)` with `eta0` the wrong 0 bits and `eta1`
//! the wrong 1 bits, and the lower bound "no `(a, b, c)`-competitive algorithm with
//! `a + b < k` or `a + (k - 1) c < k`". What is proved here:
//! - 1-consistency, exactly: with the bits of a lazy optimal algorithm OPT at the same cache
//!   size (the `discard` predictor's bits are Belady's decisions), MARK0 misses exactly
//!   where OPT misses. A page whose latest bit is 0 stays in OPT's cache until its next
//!   request; MARK0 holds only such pages (bit-1 pages leave at once). If a miss on `q`
//!   found MARK0's cache full, OPT would hold those `k` pages and `q` at the same moment,
//!   `k + 1` pages: impossible. So the marking rule never evicts, MARK0 keeps every bit-0
//!   page until its next request and misses only on first requests and after bit-1
//!   requests, where OPT (lazy) misses too; and OPT misses nowhere else.
//! - with arbitrary bits it is not robust on its own: with every bit 1 every request
//!   misses. The smoothness bound above is checked on random sequences in
//!   `tests/paging_cases.rs` (not proved here).

use super::marking::{Marked, Marking, MarkingRule};
use crate::paging::Req;
use rand::rngs::StdRng;

/// MARK0: randomized marking that drops a page as soon as its discard bit is 1.
pub type Mark0 = Marked<Mark0Rule>;

/// MARK0's discards (the victim: a uniformly random unmarked page).
#[derive(Default)]
pub struct Mark0Rule;

/// "Safe to discard".
fn discard(r: &Req) -> bool {
    r.pred >= 0.5
}

impl MarkingRule for Mark0Rule {
    const NAME: &'static str = "mark0";
    const STATE: fn(usize) -> Marking = Marking::without_predictions;
    fn admits(r: &Req) -> bool {
        // Served, then discarded at once: a page with bit 1 is not kept.
        !discard(r)
    }
    fn after_hit(m: &mut Marking, r: &Req) {
        if discard(r) {
            m.remove(r.page);
        }
    }
    fn choose(&mut self, m: &Marking, rng: &mut StdRng, _: &Req) -> Option<u32> {
        m.random_unmarked(rng)
    }
}

#[cfg(test)]
mod tests {
    use super::super::marking::test_req as req;
    use super::*;
    use crate::paging::Cache;

    #[test]
    fn a_page_with_bit_one_leaves_right_after_its_request() {
        let mut c = Cache::new(Box::new(Mark0::new(4, 0)), 2);
        assert!(!c.access(&req(0, 0, 0.0)));
        assert!(!c.access(&req(1, 1, 1.0)));
        assert!(c.policy().contains(0) && !c.policy().contains(1));
        // A hit with bit 1 is a hit, and then the page is gone.
        assert!(c.access(&req(2, 0, 1.0)));
        assert!(c.policy().is_empty());
    }

    #[test]
    fn the_victim_is_an_unmarked_page() {
        // k = 2, all bits 0: a b fill phase 1 (both marked); c misses on a full, all-marked
        // cache: new phase, a and b unmarked, one of them (random) evicted, c marked. d
        // must evict the other old page, the only unmarked one, never c.
        for seed in 0..20 {
            let mut c = Cache::new(Box::new(Mark0::new(8, seed)), 2);
            for p in 0..4u32 {
                assert!(!c.access(&req(p as u64, p, 0.0)));
            }
            assert!(
                c.policy().contains(2) && c.policy().contains(3),
                "seed {seed}"
            );
        }
    }
}
