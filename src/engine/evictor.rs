//! Cached-block eviction by a paging policy. When `kv_cache.eviction` names a policy of the
//! paging lab, the block pool hands the policy every block content on the GPU and asks it
//! for a victim when no empty block is left. Pages of the policy are block *contents*
//! (dense ids of block hashes), so ghost lists and frequencies refer to content, not to
//! recycled block slots.
//!
//! The serving call pattern ([`crate::paging::Eviction`]): a content a request computes
//! enters pinned (`insert`); a prefix-cache hit, or content computed again while a copy is
//! cached, is a request of it (`hit`); a content goes into use when a request takes its
//! evictable block (`pin`) and out of use when its last request releases it (`unpin`, in
//! vLLM's release order: a request's blocks tail first); the policy evicts only contents out
//! of use. Content ids are recycled once the policy forgets a content (evicted and in no
//! ghost list), so memory stays bounded by the cache and its ghosts.

use super::learned::LearnedReuse;
use crate::idhash::IdMap;
use crate::paging::{Eviction, Req, NEVER};
use crate::prefix::SegmentKey;
use rand::rngs::StdRng;
use rand::SeedableRng;
use rand_distr::{Distribution, LogNormal};

/// Next uses from one pass over the workload, kept per trace segment rather than per block
/// (a segment of a few hundred tokens covers many blocks): for every segment chain, the
/// requests whose prompts hold it, in order, with the last block offset each covers. Built
/// with [`TraceNextUse::add`], then frozen with [`TraceNextUse::finish`] into one flat array.
///
/// A request asks for the later holders of its own segments, so `finish` also keeps, per
/// request and in the order of its segments, where each segment's later holders start in the
/// flat array: the lookup of a request's segment reads one short run of that request's
/// records instead of probing a map of every chain and searching the chain's holders (both
/// cache misses, as the workload's chains do not fit a cache).
#[derive(Default)]
pub struct TraceNextUse {
    /// While building: (chain, request, last offset), in the order added.
    entries: Vec<(u64, u32, u32)>,
    /// Chain to its range of `flat`.
    by_chain: IdMap<(u32, u32)>,
    flat: Vec<(u32, u32)>,
    /// Per request, in the order added: its segments' chains with the range of `flat` that
    /// holds their later holders.
    own: Vec<OwnSegment>,
    /// Request `r`'s records are `own[own_start[r]..own_start[r + 1]]` (empty when request
    /// ids are too sparse to index: the map serves every lookup then).
    own_start: Vec<u32>,
}

/// One segment of one request, with where its later holders lie in [`TraceNextUse`]'s flat
/// array.
#[derive(Debug, Clone, Copy)]
struct OwnSegment {
    chain: u64,
    start: u32,
    end: u32,
}

impl TraceNextUse {
    /// Record request `index` with its segment keys and prompt length, for blocks of
    /// `block_size` tokens (requests in index order).
    pub fn add(&mut self, index: u64, keys: &[SegmentKey], prompt_tokens: u32, block_size: u32) {
        let bs = block_size as u64;
        let full_end = prompt_tokens as u64 / bs * bs; // one past the last full-block token
        for k in keys.iter().filter(|k| !k.unique) {
            let end = k.end.min(full_end);
            // The last block ending in [start, end): its last token is the largest
            // `m * bs - 1` below `end`.
            let last = end / bs * bs;
            if end <= k.start || last == 0 || last - 1 < k.start {
                continue;
            }
            let offset = (last - 1 - k.start) as u32;
            self.entries.push((k.chain, index as u32, offset));
        }
    }

    /// Group the recorded entries by chain (each chain's requests in order), and keep each
    /// request's own records.
    pub fn finish(mut self) -> Self {
        let entries = std::mem::take(&mut self.entries);
        // Sort positions, not the entries, so that each entry's own record can be written
        // back in the order added.
        let mut order: Vec<u32> = (0..entries.len() as u32).collect();
        order.sort_unstable_by_key(|&i| entries[i as usize]);
        self.flat.reserve_exact(entries.len());
        self.own = vec![
            OwnSegment {
                chain: 0,
                start: 0,
                end: 0
            };
            entries.len()
        ];
        let mut i = 0;
        while i < order.len() {
            let chain = entries[order[i] as usize].0;
            let start = self.flat.len() as u32;
            let first = i;
            while i < order.len() && entries[order[i] as usize].0 == chain {
                let (_, r, o) = entries[order[i] as usize];
                let len = self.flat.len() as u32;
                match self.flat.last_mut() {
                    Some(e) if len > start && e.0 == r => e.1 = e.1.max(o),
                    _ => self.flat.push((r, o)),
                }
                // The later holders start after this request's (merged) holder.
                self.own[order[i] as usize] = OwnSegment {
                    chain,
                    start: self.flat.len() as u32,
                    end: 0,
                };
                i += 1;
            }
            let end = self.flat.len() as u32;
            for &j in &order[first..i] {
                self.own[j as usize].end = end;
            }
            self.by_chain.insert(chain, (start, end - start));
        }
        self.index_own(&entries);
        self.flat.shrink_to_fit();
        self
    }

    /// Index the own records by request (entries were added in request order); left empty
    /// when request ids are too sparse for a dense index.
    fn index_own(&mut self, entries: &[(u64, u32, u32)]) {
        let Some(&(_, last, _)) = entries.last() else {
            return;
        };
        let in_order = entries.windows(2).all(|w| w[0].1 <= w[1].1);
        if !in_order || last as usize > 4 * entries.len() + 1024 {
            self.own = Vec::new();
            return;
        }
        self.own_start = vec![0; last as usize + 2];
        for &(_, r, _) in entries {
            self.own_start[r as usize + 1] += 1;
        }
        for r in 1..self.own_start.len() {
            self.own_start[r] += self.own_start[r - 1];
        }
    }

    /// The requests holding `chain` after request `after`, with their last offsets.
    pub fn after(&self, chain: u64, after: u64) -> &[(u32, u32)] {
        if let Some(own) = self.own_records(after) {
            if let Some(s) = own.iter().find(|s| s.chain == chain) {
                return &self.flat[s.start as usize..s.end as usize];
            }
        }
        self.after_by_chain(chain, after)
    }

    /// [`TraceNextUse::after`] by the chain map and a search of the chain's holders.
    fn after_by_chain(&self, chain: u64, after: u64) -> &[(u32, u32)] {
        let Some(&(start, len)) = self.by_chain.get(&chain) else {
            return &[];
        };
        let v = &self.flat[start as usize..(start + len) as usize];
        &v[v.partition_point(|&(r, _)| r as u64 <= after)..]
    }

    /// Request `r`'s own records, if indexed.
    fn own_records(&self, r: u64) -> Option<&[OwnSegment]> {
        let r = usize::try_from(r).ok()?;
        let (&a, &b) = (self.own_start.get(r)?, self.own_start.get(r + 1)?);
        Some(&self.own[a as usize..b as usize])
    }
}

/// The first request of `candidates` (from [`TraceNextUse::after`]) holding a block that
/// ends at `offset`.
pub fn first_covering(candidates: &[(u32, u32)], offset: u64) -> u64 {
    candidates
        .iter()
        .find(|&&(_, o)| o as u64 >= offset)
        .map_or(NEVER, |&(r, _)| r as u64)
}

impl TraceNextUse {
    /// The index of the first request after request `after` whose prompt holds, as a full
    /// block, the block whose last token lies at `offset` in the segment with chain hash
    /// `chain` ([`crate::prefix::SegmentKey`]), or [`NEVER`].
    pub fn next_use(&self, chain: u64, offset: u64, after: u64) -> u64 {
        first_covering(self.after(chain, after), offset)
    }
}

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

/// What the evictor knows of one content id.
#[derive(Debug, Clone, Copy)]
struct IdState {
    /// The content's hash.
    hash: u64,
    /// Assigned to a content (not in `free_ids`).
    live: bool,
    /// With ghost lists: the block caching the content, [`NO_BLOCK`] if none (evicted).
    block: u32,
}

/// [`IdState::block`] of a content not cached.
const NO_BLOCK: u32 = u32::MAX;

impl IdState {
    const FREE: IdState = IdState {
        hash: 0,
        live: false,
        block: NO_BLOCK,
    };
}

/// A paging policy over the block contents on the GPU.
pub struct PolicyEvictor {
    policy: Box<dyn Eviction>,
    name: String,
    /// Per content id: what the evictor knows of it (one record, one cache line).
    ids: Vec<IdState>,
    /// Per content id, with a learned predictor: its latest prediction (what a hit
    /// reports to the policy).
    last_pred: Vec<f64>,
    free_ids: Vec<u32>,
    forgotten: Vec<u32>,
    /// Ids freed by [`PolicyEvictor::recycle`] since the last [`PolicyEvictor::take_freed`],
    /// with their contents' hashes: the block pool drops their ghost entries.
    freed: Vec<(u32, u64)>,
    predictions: BlockPredictions,
    noise: Option<(LogNormal<f64>, StdRng)>,
    clock: u64,
    /// The policy remembers evicted contents: the block pool keeps the id of each
    /// remembered content (its ghost entry) and passes it back to [`PolicyEvictor::insert`];
    /// ids are recycled when the policy forgets them.
    ghosts: bool,
}

impl PolicyEvictor {
    /// Wrap `policy` (which must serve: [`Eviction::serves`]).
    pub fn new(
        name: &str,
        policy: Box<dyn Eviction>,
        predictions: BlockPredictions,
        seed: u64,
    ) -> Self {
        debug_assert!(policy.serves());
        let ghosts = policy.has_ghosts();
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
            ids: Vec::new(),
            last_pred: Vec::new(),
            free_ids: Vec::new(),
            forgotten: Vec::new(),
            freed: Vec::new(),
            predictions,
            noise,
            clock: 0,
            ghosts,
        }
    }

    /// The policy's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// A fresh id for a content: a recycled one if any (the ids the policy forgot are
    /// collected, in a batch, when none is left).
    fn new_id(&mut self, hash: u64) -> u32 {
        if self.free_ids.is_empty() {
            self.recycle();
        }
        match self.free_ids.pop() {
            Some(id) => {
                let st = &mut self.ids[id as usize];
                st.hash = hash;
                st.live = true;
                id
            }
            None => {
                self.ids.push(IdState {
                    hash,
                    live: true,
                    ..IdState::FREE
                });
                self.ids.len() as u32 - 1
            }
        }
    }

    /// The id of a content entering the cache: `ghost`, the one a ghost list remembers
    /// (kept by the block pool), else fresh.
    fn id_of(&mut self, hash: u64, ghost: Option<u32>) -> u32 {
        match ghost {
            Some(id) => {
                debug_assert!(self.ghosts, "a ghost id without ghost lists");
                debug_assert!(
                    self.id_holds(id, hash),
                    "ghost id {id} is not the live id of its content"
                );
                id
            }
            None => self.new_id(hash),
        }
    }

    /// The request a policy sees for content `page`, next used at `next_use`; `release`
    /// asks a learned model for a fresh prediction.
    fn req(&mut self, page: u32, next_use: u64, release: bool) -> Req {
        let pred = match &mut self.predictions {
            BlockPredictions::None => f64::INFINITY,
            BlockPredictions::Learned(m) if release => m.predict(self.ids[page as usize].hash),
            BlockPredictions::Learned(_) => self
                .last_pred
                .get(page as usize)
                .copied()
                .unwrap_or(f64::INFINITY),
            BlockPredictions::Oracle { .. } => match (&mut self.noise, next_use) {
                (_, NEVER) => f64::MAX,
                (Some((d, rng)), n) => n as f64 + d.sample(rng),
                (None, n) => n as f64,
            },
        };
        if matches!(self.predictions, BlockPredictions::Learned(_)) {
            let i = page as usize;
            if i >= self.last_pred.len() {
                self.last_pred.resize(i + 1, f64::INFINITY);
            }
            self.last_pred[i] = pred;
        }
        self.clock += 1;
        Req {
            t: self.clock,
            page,
            next_use,
            pred,
        }
    }

    /// A request computed the new content `hash` (next used at `next_use`) in `block`:
    /// cached, in use. `ghost` is the id the policy still remembers the content by (from the
    /// block pool's ghost entry), if any. Returns the content's page id: without ghost
    /// lists a content lives exactly as long as its block, so its page id is the block's.
    pub fn insert(&mut self, hash: u64, next_use: u64, ghost: Option<u32>, block: u32) -> u32 {
        let page = if self.ghosts {
            let page = self.id_of(hash, ghost);
            self.ids[page as usize].block = block;
            page
        } else {
            self.block_page(hash, block)
        };
        let r = self.req(page, next_use, false);
        self.policy.insert_pinned(&r);
        page
    }

    /// The page id of content `hash` held by `block`, for a policy without ghost lists (the
    /// content's hash is kept only for a learned predictor).
    fn block_page(&mut self, hash: u64, block: u32) -> u32 {
        let i = block as usize;
        if let BlockPredictions::Learned(_) = self.predictions {
            if i >= self.ids.len() {
                self.ids.resize(i + 1, IdState::FREE);
            }
            self.ids[i].hash = hash;
        }
        block
    }

    /// The cached content `page` was requested again (a prefix hit, or computed again).
    pub fn hit(&mut self, page: u32, next_use: u64) {
        let r = self.req(page, next_use, false);
        self.policy.hit(&r);
    }

    /// The cached content `page` went into use.
    pub fn pin(&mut self, page: u32) {
        self.policy.pin(page);
    }

    /// The cached content `page` went out of use; it is next requested at `next_use`.
    pub fn unpin(&mut self, page: u32, next_use: u64) {
        let r = self.req(page, next_use, true);
        self.policy.unpin(&r);
    }

    /// Choose a victim among the contents out of use, for a block that will hold the
    /// remembered (ghost) page `incoming` if known; returns the block that cached it
    /// (without ghost lists, its page id is that block's).
    pub fn evict(&mut self, incoming: Option<u32>) -> u32 {
        self.clock += 1;
        let r = Req {
            t: self.clock,
            page: incoming.unwrap_or(u32::MAX - 1),
            next_use: NEVER,
            pred: f64::INFINITY,
        };
        let page = self.policy.evict(&r);
        if self.ghosts {
            return std::mem::replace(&mut self.ids[page as usize].block, NO_BLOCK);
        }
        page
    }

    /// Reuse the ids of contents the policy no longer remembers (called when no free id is
    /// left); each freed id is kept with its content's hash for
    /// [`PolicyEvictor::take_freed`]. Until then the block pool may still give a forgotten
    /// id back as a ghost of its content: the policy then sees an id it does not know, as
    /// with any reused id.
    fn recycle(&mut self) {
        self.policy.take_forgotten(&mut self.forgotten);
        while let Some(page) = self.forgotten.pop() {
            // A page may be reported again before its id is reused (then it is no longer
            // live) or while it is cached again (its ghost id given back before the batch).
            let st = &mut self.ids[page as usize];
            if !st.live || st.block != NO_BLOCK {
                continue;
            }
            st.live = false;
            self.free_ids.push(page);
            self.freed.push((page, st.hash));
        }
    }

    /// True when ids were freed since the last [`PolicyEvictor::take_freed`].
    pub fn has_freed(&self) -> bool {
        !self.freed.is_empty()
    }

    /// Move the ids freed since the last call (with their contents' hashes) into `out`.
    /// They are freed inside [`PolicyEvictor::insert`], which may reuse one at once: the
    /// caller drops their ghost entries right after it, before any other lookup.
    pub fn take_freed(&mut self, out: &mut Vec<(u32, u64)>) {
        out.append(&mut self.freed);
    }

    /// True when `page` is the live id of content `hash` (an audit check).
    pub fn id_holds(&self, page: u32, hash: u64) -> bool {
        self.ids
            .get(page as usize)
            .is_some_and(|st| st.live && st.hash == hash)
    }

    /// With ghost lists: the block caching content `page`, none if it was evicted.
    #[inline]
    pub fn block_of(&self, page: u32) -> Option<u32> {
        Some(self.ids[page as usize].block).filter(|&b| b != NO_BLOCK)
    }

    /// True when the policy remembers evicted contents (the pool keeps ghost entries).
    pub fn has_ghosts(&self) -> bool {
        self.ghosts
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

    /// Contents cached (in use or not).
    pub fn len(&self) -> usize {
        self.policy.len()
    }

    /// True when nothing is cached.
    pub fn is_empty(&self) -> bool {
        self.policy.is_empty()
    }

    /// Content ids in use (cached, or remembered by a ghost list): what the evictor's
    /// memory grows with.
    pub fn live_ids(&self) -> usize {
        if self.ghosts {
            self.ids.len() - self.free_ids.len()
        } else {
            self.policy.len()
        }
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::prefix::{block_hashes, key_of_token, segment_keys};
    use crate::workload::Segment;

    /// Random requests over a few chains (some repeated within a request), with ids
    /// `i * step` (a large step makes them too sparse for the per-request index).
    fn random_oracle(seed: u64, step: u64) -> TraceNextUse {
        use rand::Rng;
        let mut rng = StdRng::seed_from_u64(seed);
        let mut oracle = TraceNextUse::default();
        for i in 0..60u64 {
            let mut keys = Vec::new();
            let mut start = 0;
            for _ in 0..rng.gen_range(0..6) {
                let len = rng.gen_range(1..80);
                keys.push(SegmentKey {
                    chain: rng.gen_range(1..8),
                    start,
                    end: start + len,
                    unique: rng.gen_range(0..5) == 0,
                });
                start += len;
            }
            oracle.add(i * step, &keys, start as u32, 16);
        }
        oracle.finish()
    }

    #[test]
    fn a_requests_own_records_give_what_the_chain_map_gives() {
        for seed in 0..30 {
            let dense = random_oracle(seed, 1);
            let sparse = random_oracle(seed, 1000);
            assert!(!dense.own_start.is_empty(), "indexed");
            assert!(sparse.own_start.is_empty(), "too sparse to index");
            for r in 0..62u64 {
                for chain in 0..9 {
                    let own = dense.after(chain, r);
                    assert_eq!(own, dense.after_by_chain(chain, r), "seed {seed}");
                    let ids: Vec<(u32, u32)> = own.iter().map(|&(q, o)| (q * 1000, o)).collect();
                    assert_eq!(sparse.after(chain, r * 1000), &ids[..], "seed {seed}");
                }
            }
        }
    }

    #[test]
    fn next_uses_by_segment_match_a_scan_of_every_block() {
        // Three requests sharing a 40-token segment; the second is short.
        let reqs: [(Vec<Segment>, u32); 4] = [
            (
                vec![Segment { id: 1, tokens: 40 }, Segment { id: 2, tokens: 40 }],
                80,
            ),
            (vec![Segment { id: 1, tokens: 40 }], 20),
            (
                vec![Segment { id: 1, tokens: 40 }, Segment { id: 2, tokens: 40 }],
                70,
            ),
            (
                vec![Segment { id: 1, tokens: 40 }, Segment { id: 3, tokens: 40 }],
                80,
            ),
        ];
        let mut oracle = TraceNextUse::default();
        let mut all: Vec<Vec<u64>> = Vec::new();
        for (i, (segs, prompt)) in reqs.iter().enumerate() {
            let mut keys = Vec::new();
            segment_keys(segs, *prompt, i as u64, &mut keys);
            oracle.add(i as u64, &keys, *prompt, 16);
            let mut h = Vec::new();
            block_hashes(segs, *prompt, *prompt as u64, 16, i as u64, &mut h);
            all.push(h);
        }
        let oracle = oracle.finish();
        for (i, (segs, prompt)) in reqs.iter().enumerate() {
            let mut keys = Vec::new();
            segment_keys(segs, *prompt, i as u64, &mut keys);
            for (b, &h) in all[i].iter().enumerate() {
                let (k, off) = key_of_token(&keys, (b as u64 + 1) * 16 - 1);
                let expect = (i + 1..reqs.len())
                    .find(|&j| all[j].contains(&h))
                    .map_or(NEVER, |j| j as u64);
                assert_eq!(
                    oracle.next_use(k.chain, off, i as u64),
                    expect,
                    "req {i} block {b}"
                );
            }
        }
    }
}
