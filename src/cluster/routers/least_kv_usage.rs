//! Least KV usage: the replica with the smallest fraction of blocks in use (ties: fewer
//! outstanding requests, then the lowest index).

use super::{argmin_by, ClusterView, Router};
use crate::scenario::RouterSpec;

struct LeastKvUsage;

pub(super) fn build(_: &RouterSpec) -> Box<dyn Router> {
    Box::new(LeastKvUsage)
}

impl Router for LeastKvUsage {
    fn name(&self) -> &'static str {
        "least_kv_usage"
    }

    fn route(&mut self, _: &[u64], view: &dyn ClusterView, candidates: &[usize]) -> usize {
        argmin_by(candidates, |i| {
            (view.kv_usage(i), view.outstanding_requests(i))
        })
    }
}
