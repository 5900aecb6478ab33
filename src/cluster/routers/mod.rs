//! Request routers, one file each, behind [`Router`]; [`make_router`] builds them by name.
//! Adding a router is one file here and one line in [`ROUTERS`].

mod least_kv_usage;
mod least_outstanding_tokens;
mod prefix_affinity;
mod round_robin;

use crate::error::{Error, Result};
use crate::scenario::RouterSpec;

/// What a router may know about the replicas it chooses among.
pub trait ClusterView {
    /// Tokens still to compute on replica `i`.
    fn outstanding_tokens(&self, i: usize) -> u64;
    /// Requests held by replica `i`.
    fn outstanding_requests(&self, i: usize) -> u64;
    /// Fraction of replica `i`'s blocks in use.
    fn kv_usage(&self, i: usize) -> f64;
    /// Leading blocks of `hashes` cached on replica `i`.
    fn cached_prefix_blocks(&self, i: usize, hashes: &[u64]) -> usize;
}

/// Chooses the replica for each request.
pub trait Router: Send {
    /// Name for reports.
    fn name(&self) -> &'static str;
    /// Whether [`Router::route`] reads the prompt's block hashes (computed only if so).
    fn needs_hashes(&self) -> bool {
        false
    }
    /// Pick one of `candidates` (replica indices, never empty) for a request whose prompt
    /// has the full-block hashes `hashes`.
    fn route(&mut self, hashes: &[u64], view: &dyn ClusterView, candidates: &[usize]) -> usize;
}

type Build = fn(&RouterSpec) -> Box<dyn Router>;

/// The routers by name.
pub const ROUTERS: &[(&str, Build)] = &[
    ("round_robin", round_robin::build),
    ("least_outstanding_tokens", least_outstanding_tokens::build),
    ("least_kv_usage", least_kv_usage::build),
    ("prefix_affinity", prefix_affinity::build),
];

/// Build the router a scenario names.
pub fn make_router(spec: &RouterSpec) -> Result<Box<dyn Router>> {
    match ROUTERS.iter().find(|(n, _)| *n == spec.kind) {
        Some((_, build)) => Ok(build(spec)),
        None => Err(Error::input(format!(
            "cluster.router.kind: unknown router `{}`; known: {}",
            spec.kind,
            ROUTERS
                .iter()
                .map(|(n, _)| *n)
                .collect::<Vec<_>>()
                .join(", ")
        ))),
    }
}

/// The candidate with the smallest key (ties: the first).
fn argmin_by<K: PartialOrd>(candidates: &[usize], key: impl Fn(usize) -> K) -> usize {
    let mut best = candidates[0];
    let mut best_key = key(best);
    for &c in &candidates[1..] {
        let k = key(c);
        if k < best_key {
            best = c;
            best_key = k;
        }
    }
    best
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Replicas with given loads, usages and cached hashes.
    pub(super) struct Fake {
        pub tokens: Vec<u64>,
        pub requests: Vec<u64>,
        pub usage: Vec<f64>,
        pub cached: Vec<Vec<u64>>,
    }

    impl ClusterView for Fake {
        fn outstanding_tokens(&self, i: usize) -> u64 {
            self.tokens[i]
        }
        fn outstanding_requests(&self, i: usize) -> u64 {
            self.requests[i]
        }
        fn kv_usage(&self, i: usize) -> f64 {
            self.usage[i]
        }
        fn cached_prefix_blocks(&self, i: usize, hashes: &[u64]) -> usize {
            hashes
                .iter()
                .take_while(|h| self.cached[i].contains(h))
                .count()
        }
    }

    fn fake() -> Fake {
        Fake {
            tokens: vec![500, 100, 300],
            requests: vec![5, 1, 3],
            usage: vec![0.2, 0.9, 0.5],
            cached: vec![vec![], vec![], vec![1, 2, 3, 4]],
        }
    }

    fn router(kind: &str) -> Box<dyn Router> {
        make_router(&RouterSpec {
            kind: kind.into(),
            ..Default::default()
        })
        .unwrap()
    }

    #[test]
    fn each_router_picks_by_its_rule() {
        let f = fake();
        let all = [0, 1, 2];
        let h = [1, 2, 3, 4, 5];
        let mut rr = router("round_robin");
        let picks: Vec<usize> = (0..4).map(|_| rr.route(&h, &f, &all)).collect();
        assert_eq!(picks, vec![0, 1, 2, 0]);
        assert_eq!(router("least_outstanding_tokens").route(&h, &f, &all), 1);
        assert_eq!(router("least_kv_usage").route(&h, &f, &all), 0);
        // 4 of 5 blocks cached on replica 2, loads within the thresholds.
        assert_eq!(router("prefix_affinity").route(&h, &f, &all), 2);
        // No useful prefix anywhere: the least loaded.
        assert_eq!(router("prefix_affinity").route(&[9, 9], &f, &all), 1);
        // Candidates restrict the choice.
        assert_eq!(router("least_outstanding_tokens").route(&h, &f, &[0, 2]), 2);
    }

    #[test]
    fn prefix_affinity_yields_to_load_imbalance() {
        let mut f = fake();
        f.requests = vec![5, 1, 200];
        assert_eq!(
            router("prefix_affinity").route(&[1, 2, 3, 4], &f, &[0, 1, 2]),
            1
        );
    }

    #[test]
    fn unknown_router_lists_the_known_ones() {
        let e = make_router(&RouterSpec {
            kind: "random".into(),
            ..Default::default()
        })
        .err()
        .unwrap()
        .to_string();
        assert!(e.contains("cluster.router.kind") && e.contains("prefix_affinity"));
    }
}
