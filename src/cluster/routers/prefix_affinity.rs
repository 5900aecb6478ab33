//! Prefix affinity, after SGLang's cache-aware router (`sgl-router`, policy `cache_aware`):
//!
//! 1. If the load is imbalanced (the busiest replica holds more than
//!    `balance_abs_threshold` requests above the idlest *and* more than
//!    `balance_rel_threshold` times as many), send to the least loaded (outstanding
//!    requests).
//! 2. Otherwise send to the replica holding the longest cached prefix of the prompt, if it
//!    covers at least `cache_threshold` of the prompt's full blocks (ties: fewer outstanding
//!    tokens).
//! 3. Otherwise to the replica with the fewest outstanding tokens.
//!
//! SGLang's router keeps an approximate radix tree of the text it routed to each worker;
//! kvsim asks each replica's cache directly (the router's ideal knowledge): a vLLM
//! replica's KV cache manager for the prompt's block hashes, an SGLang replica's radix
//! tree for its token ids.

use super::{argmin_by, ClusterView, Router};
use crate::scenario::RouterSpec;

struct PrefixAffinity {
    abs: u64,
    rel: f64,
    cache_threshold: f64,
}

pub(super) fn build(s: &RouterSpec) -> Box<dyn Router> {
    Box::new(PrefixAffinity {
        abs: s.balance_abs_threshold as u64,
        rel: s.balance_rel_threshold,
        cache_threshold: s.cache_threshold,
    })
}

impl Router for PrefixAffinity {
    fn name(&self) -> &'static str {
        "prefix_affinity"
    }

    fn needs_hashes(&self) -> bool {
        true
    }

    fn route(&mut self, hashes: &[u64], view: &dyn ClusterView, candidates: &[usize]) -> usize {
        let loads = candidates.iter().map(|&i| view.outstanding_requests(i));
        let (min, max) = loads.fold((u64::MAX, 0), |(lo, hi), l| (lo.min(l), hi.max(l)));
        if max > min + self.abs && max as f64 > min as f64 * self.rel {
            return argmin_by(candidates, |i| view.outstanding_requests(i));
        }
        let best = argmin_by(candidates, |i| {
            (
                std::cmp::Reverse(view.cached_prefix_blocks(i, hashes)),
                view.outstanding_tokens(i),
            )
        });
        let matched = view.cached_prefix_blocks(best, hashes);
        if !hashes.is_empty()
            && matched as f64 >= self.cache_threshold * hashes.len() as f64
            && matched > 0
        {
            best
        } else {
            argmin_by(candidates, |i| view.outstanding_tokens(i))
        }
    }
}
