//! Round robin: candidates in turn, whatever their load.

use super::{ClusterView, Router};
use crate::scenario::RouterSpec;

struct RoundRobin {
    next: usize,
}

pub(super) fn build(_: &RouterSpec) -> Box<dyn Router> {
    Box::new(RoundRobin { next: 0 })
}

impl Router for RoundRobin {
    fn name(&self) -> &'static str {
        "round_robin"
    }

    fn route(&mut self, _: &[u64], _: &dyn ClusterView, candidates: &[usize]) -> usize {
        let c = candidates[self.next % candidates.len()];
        self.next += 1;
        c
    }
}
