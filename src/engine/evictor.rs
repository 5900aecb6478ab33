//! Cached-block eviction by a paging policy. When `kv_cache.eviction` names a policy of the
//! paging lab, the block pool hands every evictable cached block (reference count 0, with
//! a hash) to this evictor instead of appending it to vLLM's free queue, and asks it for a
//! victim when no empty block is left. Pages of the policy are block *contents* (dense ids
//! of block hashes), so ghost lists and frequencies refer to content, not to recycled
//! block slots. A block is a page of the policy only while it is evictable: a hit takes it
//! out (the engine never evicts a referenced block) and its release puts it back.

use super::learned::LearnedReuse;
use crate::idhash::IdMap;
use crate::paging::{Eviction, Req, NEVER};
use rand::rngs::StdRng;
use rand::SeedableRng;
use rand_distr::{Distribution, LogNormal};
use std::sync::Arc;

/// Offline knowledge of the workload: when is a block content requested next?
pub trait NextUse {
    /// The index of the first request after request `after` whose prompt contains the block
    /// with content `hash`, or [`NEVER`].
    fn next_use(&self, hash: u64, after: u64) -> u64;
}

/// Next uses built from a pass over the workload: for every block hash, the sorted
/// indices of the requests whose prompts contain it.
#[derive(Default)]
pub struct TraceNextUse {
    occurrences: IdMap<Vec<u32>>,
}

impl TraceNextUse {
    /// Record that request `index` contains the blocks `hashes`.
    pub fn add(&mut self, index: u64, hashes: &[u64]) {
        for &h in hashes {
            let v = self.occurrences.entry(h).or_default();
            if v.last() != Some(&(index as u32)) {
                v.push(index as u32);
            }
        }
    }
}

impl NextUse for TraceNextUse {
    fn next_use(&self, hash: u64, after: u64) -> u64 {
        match self.occurrences.get(&hash) {
            Some(v) => {
                let i = v.partition_point(|&x| x as u64 <= after);
                v.get(i).map_or(NEVER, |&x| x as u64)
            }
            None => NEVER,
        }
    }
}

/// Sentinel page for the block being allocated (it has no content yet).
const NEW_BLOCK: u32 = u32::MAX - 1;

/// Where a learning-augmented policy's predictions come from.
pub enum BlockPredictions {
    /// None (the policy does not use predictions).
    None,
    /// The true next use plus lognormal noise with this sigma (offline oracle).
    Oracle {
        /// Noise parameter.
        sigma: f64,
    },
    /// The online model of [`super::learned::LearnedReuse`].
    Learned(Box<LearnedReuse>),
}

/// A paging policy over the evictable cached blocks.
pub struct PolicyEvictor {
    policy: Box<dyn Eviction>,
    name: String,
    content_id: IdMap<u32>,
    content_hash: Vec<u64>,
    oracle: Option<Arc<dyn NextUse>>,
    predictions: BlockPredictions,
    noise: Option<(LogNormal<f64>, StdRng)>,
    clock: u64,
}

impl PolicyEvictor {
    /// Wrap `policy`; `oracle` supplies next uses (for Belady and oracle predictions).
    pub fn new(
        name: &str,
        policy: Box<dyn Eviction>,
        oracle: Option<Arc<dyn NextUse>>,
        predictions: BlockPredictions,
        seed: u64,
    ) -> Self {
        let noise = match &predictions {
            BlockPredictions::Oracle { sigma } if *sigma > 0.0 => Some((
                LogNormal::new(0.0, *sigma).expect("sigma >= 0"),
                StdRng::seed_from_u64(seed),
            )),
            _ => None,
        };
        PolicyEvictor {
            policy,
            name: name.to_string(),
            content_id: IdMap::default(),
            content_hash: Vec::new(),
            oracle,
            predictions,
            noise,
            clock: 0,
        }
    }

    /// The policy's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    fn id_of(&mut self, hash: u64) -> u32 {
        let next = self.content_hash.len() as u32;
        let id = *self.content_id.entry(hash).or_insert(next);
        if id == next {
            self.content_hash.push(hash);
        }
        id
    }

    /// A block with content `hash`, last used by request `owner`, became evictable.
    pub fn insert(&mut self, hash: u64, owner: u64) {
        let page = self.id_of(hash);
        let next_use = self
            .oracle
            .as_ref()
            .map_or(NEVER, |o| o.next_use(hash, owner));
        let pred = match &mut self.predictions {
            BlockPredictions::None => f64::INFINITY,
            BlockPredictions::Learned(m) => m.predict(hash),
            BlockPredictions::Oracle { .. } => match (&mut self.noise, next_use) {
                (_, NEVER) => f64::MAX,
                (Some((d, rng)), n) => n as f64 + d.sample(rng),
                (None, n) => n as f64,
            },
        };
        self.clock += 1;
        let r = Req {
            t: self.clock,
            page,
            next_use,
            pred,
        };
        self.policy.insert(&r);
    }

    /// The block with content `hash` is no longer evictable (it was hit).
    pub fn remove(&mut self, hash: u64) {
        if let Some(&page) = self.content_id.get(&hash) {
            self.policy.remove(page);
        }
    }

    /// Choose a victim; returns its content hash.
    pub fn evict(&mut self) -> u64 {
        self.clock += 1;
        let r = Req {
            t: self.clock,
            page: NEW_BLOCK,
            next_use: NEVER,
            pred: f64::INFINITY,
        };
        let page = self.policy.evict(&r);
        self.content_hash[page as usize]
    }

    /// A request's prompt blocks were looked up: lets a learned predictor train.
    pub fn observe_request(
        &mut self,
        index: u64,
        arrival_ns: u64,
        prompt_tokens: u32,
        prompt_hashes: &[u64],
    ) {
        if let BlockPredictions::Learned(m) = &mut self.predictions {
            m.observe_request(index, arrival_ns, prompt_tokens, prompt_hashes);
        }
    }

    /// The learned model, if predictions are learned.
    pub fn learned(&self) -> Option<&LearnedReuse> {
        match &self.predictions {
            BlockPredictions::Learned(m) => Some(m),
            _ => None,
        }
    }

    /// Evictable blocks held.
    pub fn len(&self) -> usize {
        self.policy.len()
    }

    /// True when nothing is evictable.
    pub fn is_empty(&self) -> bool {
        self.policy.is_empty()
    }
}

impl std::fmt::Debug for PolicyEvictor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PolicyEvictor")
            .field("name", &self.name)
            .field("len", &self.len())
            .finish()
    }
}
