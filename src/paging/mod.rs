//! The paging lab: unit-size cache eviction policies behind one small interface (after
//! libCacheSim's find / insert / evict / remove), the offline optimum, learning-augmented
//! policies with their predictors, and a fast standalone simulator (`kvsim paging`).

pub mod labels;
pub mod lcs_csv;
pub mod policies;
pub mod predictor;
pub mod prefix_cache;
pub mod readers;
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
///
/// In a serving run (the KV block pool, [`crate::engine::evictor`]) the cache holds every
/// block content on the GPU, and a content in use by a running request must not be evicted.
/// The serving call pattern is explicit:
/// - [`Eviction::insert_pinned`]: a request computed a new content (it enters in use);
/// - [`Eviction::hit`]: a cached content was requested again (a prefix-cache hit, or content
///   a request computed again while a copy was cached): history builds up as on a hit of
///   `find` (counts, ghost lists, visited bits, marks);
/// - [`Eviction::pin`] / [`Eviction::unpin`]: the content went into use / out of use (its
///   last request released it: `unpin`'s request carries that moment, its next use and its
///   prediction);
/// - `evict`: choose a cached content that is not in use, remove and return it;
/// - `remove`: forget a content without an eviction choice.
///
/// A policy that implements this pattern says so with [`Eviction::serves`]; the serving
/// simulator refuses the others.
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

    /// Serving: true when the policy implements the serving call pattern (pins and hits).
    fn serves(&self) -> bool {
        false
    }
    /// Serving: cache the new page `r.page`, in use (not evictable until `unpin`).
    fn insert_pinned(&mut self, r: &Req) {
        self.insert(r);
        self.pin(r.page);
    }
    /// Serving: the cached page `r.page` (in use or not) is requested again.
    fn hit(&mut self, r: &Req) {
        let _ = r;
    }
    /// Serving: the cached page is in use and may not be evicted until `unpin`.
    fn pin(&mut self, page: u32) {
        let _ = page;
    }
    /// Serving: the cached page `r.page` is out of use (evictable) from `r.t` on.
    fn unpin(&mut self, r: &Req) {
        let _ = r;
    }
    /// Serving: move the page ids the policy no longer remembers at all (neither cached nor
    /// in a ghost list) into `out`, so that their ids can be reused. Policies without ghost
    /// lists forget a page when it is evicted or removed and need not implement this.
    fn take_forgotten(&mut self, out: &mut Vec<u32>) {
        let _ = out;
    }
    /// Serving: true when the policy remembers evicted pages (ghost lists), so that an
    /// evicted page's id is reusable only once [`Eviction::take_forgotten`] returns it.
    fn has_ghosts(&self) -> bool {
        false
    }
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
