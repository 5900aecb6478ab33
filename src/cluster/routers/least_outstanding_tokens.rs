//! Least outstanding tokens: the replica with the fewest prompt and output tokens still to
//! compute (ties: the lowest index).

use super::{argmin_by, ClusterView, Router};
use crate::scenario::RouterSpec;

struct LeastOutstandingTokens;

pub(super) fn build(_: &RouterSpec) -> Box<dyn Router> {
    Box::new(LeastOutstandingTokens)
}

impl Router for LeastOutstandingTokens {
    fn name(&self) -> &'static str {
        "least_outstanding_tokens"
    }

    fn route(&mut self, _: &[u64], view: &dyn ClusterView, candidates: &[usize]) -> usize {
        argmin_by(candidates, |i| view.outstanding_tokens(i))
    }
}
