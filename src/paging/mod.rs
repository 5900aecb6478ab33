//! The paging lab: unit-size cache eviction policies behind one small interface (after
//! libCacheSim's find / insert / evict / remove), the offline optimum, learning-augmented
//! policies with their predictors, and a fast standalone simulator (`kvsim paging`).

pub mod policies;
pub mod predictor;
pub mod run;
pub mod trace;
pub mod util;

pub use policies::{make_policy, policy_names, PolicyParams};
pub use trace::Trace;

/// "Never requested again".
pub const NEVER: u64 = u64::MAX;

/// One request as a policy sees it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Req {
    /// Position in the sequence, from 0.
    pub t: u64,
    /// The requested page (dense id).
    pub page: u32,
    /// Position of the next request of the same page, or [`NEVER`] (offline knowledge:
    /// only Belady and oracle predictors may look at it).
    pub next_use: u64,
    /// The predictor's estimate of the time of the next request of this page (larger is
    /// later); `f64::INFINITY` without a predictor.
    pub pred: f64,
}

/// A cache eviction policy for unit-size pages. The [`Cache`] driver calls `find` for every
/// request, and on a miss `evict` (when full) and then `insert`. Policies that need the
/// cache size receive it at construction.
pub trait Eviction {
    /// Name for reports.
    fn name(&self) -> String;
    /// Is `r.page` cached? On a hit, update the policy's state (recency, frequency, marks).
    fn find(&mut self, r: &Req) -> bool;
    /// Insert the missing page `r.page`; there is room.
    fn insert(&mut self, r: &Req);
    /// Choose a victim for the miss `r`, remove it and return it.
    fn evict(&mut self, r: &Req) -> u32;
    /// Remove `page` if cached (no eviction cost).
    fn remove(&mut self, page: u32);
    /// Pages cached.
    fn len(&self) -> usize;
    /// True when nothing is cached.
    fn is_empty(&self) -> bool {
        self.len() == 0
    }
    /// Is `page` cached? (No state change.)
    fn contains(&self, page: u32) -> bool;
}

/// Drives a policy over a request sequence and counts misses.
pub struct Cache {
    policy: Box<dyn Eviction>,
    capacity: usize,
    /// Requests served.
    pub requests: u64,
    /// Misses (cold misses included).
    pub misses: u64,
}

impl Cache {
    /// A cache of `capacity` pages run by `policy`.
    pub fn new(policy: Box<dyn Eviction>, capacity: usize) -> Self {
        Cache {
            policy,
            capacity,
            requests: 0,
            misses: 0,
        }
    }

    /// Serve one request; returns true on a hit.
    #[inline]
    pub fn access(&mut self, r: &Req) -> bool {
        self.requests += 1;
        if self.policy.find(r) {
            return true;
        }
        self.misses += 1;
        if self.policy.len() >= self.capacity {
            self.policy.evict(r);
        }
        self.policy.insert(r);
        false
    }

    /// The policy.
    pub fn policy(&self) -> &dyn Eviction {
        self.policy.as_ref()
    }

    /// The capacity.
    pub fn capacity(&self) -> usize {
        self.capacity
    }
}

/// Run a policy over a whole trace with the given per-request predictions (or none) and
/// return the misses.
pub fn simulate(policy: Box<dyn Eviction>, k: usize, trace: &Trace, preds: Option<&[f64]>) -> u64 {
    let mut cache = Cache::new(policy, k);
    for t in 0..trace.len() {
        cache.access(&trace.req(t, preds));
    }
    cache.misses
}
