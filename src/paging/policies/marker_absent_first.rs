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

use super::marking::{Marked, Marking, MarkingRule};
use crate::paging::Req;
use rand::rngs::StdRng;

/// Marking that evicts pages predicted absent from the next phase first.
pub type MarkerAbsentFirst = Marked<AbsentFirst>;

/// The victim choice: the first page predicted absent, else a random unmarked page.
#[derive(Default)]
pub struct AbsentFirst;

impl MarkingRule for AbsentFirst {
    const NAME: &'static str = "marker-absent-first";
    /// Heap key: 1 for "not requested in the next phase" (evicted first), else 0.
    fn key(r: &Req) -> f64 {
        if r.pred >= 0.5 {
            0.0
        } else {
            1.0
        }
    }
    fn choose(&mut self, m: &Marking, rng: &mut StdRng, _: &Req) -> Option<u32> {
        match m.furthest_unmarked() {
            Some(p) if m.key_of_unmarked(p) == Some(1.0) => Some(p),
            _ => m.random_unmarked(rng),
        }
    }
}
