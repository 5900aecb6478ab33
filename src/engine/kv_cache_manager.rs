//! The KV cache manager, after vLLM v1's `kv_cache_manager.py` (one full-attention group):
//! the only way a request gets, shares or returns blocks.
//!
//! - `get_computed_blocks`: the longest run of cached full blocks from the start of the
//!   request, stopping at the first miss and covering at most `num_tokens - 1` tokens;
//! - `allocate_slots`: checks that the blocks needed (new ones, plus hit blocks that must
//!   leave the free queue) are free, touches the hits, takes new blocks, and registers
//!   every block that becomes full as cached;
//! - `free`: returns a request's blocks tail first, so that a prompt's last blocks are
//!   evicted before its first ones.
//!
//! With a CPU tier ([`CpuTier`]), evicted contents are stored in host memory and a lookup
//! continues there after the GPU run ends; blocks found there are allocated fresh and
//! counted apart (`CacheHit::cpu_blocks`) so that the engine charges their load.
//!
//! With a token-level policy ([`TokenPolicy`]), a request holds blocks for its resident
//! slots, not its tokens: an eviction policy's request shrinks to its budget after the
//! prompt (the surplus blocks return to the pool), a quantized one packs more tokens per
//! block. Evicting requests neither hit nor fill the prefix cache, since their blocks hold
//! a compacted subset of the tokens their hashes name.

mod hybrid;

use super::block_pool::{BlockCounts, BlockId, BlockPool};
use super::cpu_tier::CpuTier;
use super::evictor::TraceNextUse;
use super::token_policy::TokenPolicy;
use crate::idhash::SlotMap;
use crate::paging::NEVER;
use crate::prefix::SegmentKey;
use std::sync::Arc;

/// A request's blocks and content hashes.
#[derive(Debug, Default)]
struct RequestBlocks {
    blocks: Vec<BlockId>,
    /// Hashes of every full block the request will ever have (prompt and output).
    hashes: Vec<u64>,
    /// Leading blocks already registered as cached.
    num_cached: usize,
    /// The request's index in the workload (for next-use oracles).
    owner: u64,
    /// Prompt tokens (the token policy's budget is a share of it).
    prompt: u32,
    /// The identities behind the hashes (kept only for a next-use oracle).
    keys: Vec<SegmentKey>,
    /// With an oracle: when each block's content is next requested after this request.
    next_uses: Vec<u64>,
    /// With several KV cache groups: each group's table (`blocks` is then unused).
    groups: Vec<hybrid::GroupTable>,
    /// With several groups: blocks were allocated since the request was (re)admitted.
    allocated: bool,
    /// With several groups: the shared prefix (tokens) its last lookup found cached in
    /// full attention beyond the common hit, whose sliding-window blocks it keeps
    /// (vLLM's `shared_prefix_boundary`); 0 for none.
    junction: u64,
}

/// What an allocation would need ([`KvCacheManager::room_for`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Room {
    /// The blocks are free (keeping the reserve).
    pub fits: bool,
    /// Blocks the request needs in all.
    pub needed: u64,
    /// Blocks to take from the free queue.
    pub new_blocks: u64,
    /// Hit blocks that are evictable (touching them takes them out of the free queue).
    pub evictable_hits: u64,
}

/// A prefix-cache lookup result, valid until the next call on the manager.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CacheHit {
    /// Hit blocks.
    pub blocks: usize,
    /// Hit tokens (blocks times block size).
    pub tokens: u32,
    /// Further blocks found in the CPU tier (loaded into new GPU blocks on allocation).
    pub cpu_blocks: usize,
}

impl CacheHit {
    /// No hit.
    pub const NONE: CacheHit = CacheHit {
        blocks: 0,
        tokens: 0,
        cpu_blocks: 0,
    };
}

/// Owns the block pool and every request's block table.
#[derive(Debug)]
pub struct KvCacheManager {
    pool: BlockPool,
    block_size: u32,
    enable_caching: bool,
    /// The requests holding blocks, by scheduler slot.
    requests: SlotMap<RequestBlocks>,
    hit_scratch: Vec<BlockId>,
    spare: Vec<RequestBlocks>,
    cpu: Option<CpuTier>,
    evicted_scratch: Vec<u64>,
    token: Option<TokenPolicy>,
    oracle: Option<Arc<TraceNextUse>>,
    hybrid: Option<hybrid::Hybrid>,
}

impl std::fmt::Debug for TraceNextUse {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("TraceNextUse")
    }
}

impl KvCacheManager {
    /// A manager over `num_gpu_blocks` blocks (including vLLM's null block).
    pub fn new(
        num_gpu_blocks: u32,
        block_size: u32,
        enable_caching: bool,
        free_unhashed_first: bool,
    ) -> Self {
        KvCacheManager {
            pool: BlockPool::new(num_gpu_blocks, free_unhashed_first),
            block_size,
            enable_caching,
            requests: SlotMap::default(),
            hit_scratch: Vec::new(),
            spare: Vec::new(),
            cpu: None,
            evicted_scratch: Vec::new(),
            token: None,
            oracle: None,
            hybrid: None,
        }
    }

    /// Keep one block table per KV cache group of these kinds (vLLM's hybrid KV cache
    /// manager; [`crate::engine::kv_groups::KvGroups`]), instead of one full-attention
    /// table. `max_in_flight` is the most tokens scheduled and not yet settled
    /// (concurrent batches times `max_num_batched_tokens`).
    pub fn set_groups(
        &mut self,
        kinds: Vec<crate::model::LayerAttention>,
        max_in_flight: u64,
        max_model_len: u64,
    ) {
        let mut h = hybrid::Hybrid::new(kinds, max_in_flight, max_model_len);
        // vLLM's mamba cache mode: "align" with prefix caching, "none" without.
        h.set_mamba_align(self.enable_caching);
        self.hybrid = Some(h);
    }

    /// How many of `num_new` tokens from `start` a prefill chunk schedules with
    /// linear-attention groups in align mode (`Scheduler._mamba_block_aligned_split`): a
    /// chunk that does not reach `prefill_end` ends on a block boundary (its state is the
    /// one a later request may hit), and a chunk that cannot export the prompt's
    /// checkpoint internally stops at the last boundary before the end of the `num_tokens`
    /// known ones (or at the next boundary when it starts inside a block). Unchanged
    /// otherwise. `max_prefill_tokens` is the most tokens one request's chunk may take.
    pub fn mamba_split(
        &self,
        start: u32,
        num_new: u32,
        prefill_end: u32,
        num_tokens: u32,
        max_prefill_tokens: u32,
    ) -> u32 {
        let Some(bs) = self
            .hybrid
            .as_ref()
            .and_then(|h| h.mamba_align_block(self.block_size))
        else {
            return num_new;
        };
        if start >= prefill_end {
            return num_new;
        }
        let (start, bs) = (start as u64, bs as u64);
        let mut end = start + num_new as u64;
        let internal = end >= prefill_end as u64
            && hybrid::prefill_checkpoint(start, end, bs)
                .is_some_and(|(cp, _)| cp == (prefill_end as u64 - 1) / bs * bs);
        if end < prefill_end as u64 {
            let aligned = end / bs * bs;
            if aligned > start || bs <= max_prefill_tokens as u64 {
                end = aligned;
            }
        }
        let next_boundary = (start / bs + 1) * bs;
        let last_cache = (num_tokens as u64).saturating_sub(1) / bs * bs;
        let stops = [
            if !start.is_multiple_of(bs) && !internal {
                next_boundary
            } else {
                0
            },
            if internal { 0 } else { last_cache },
        ];
        let end = stops
            .into_iter()
            .filter(|&s| start < s && s < end)
            .min()
            .unwrap_or(end);
        end.saturating_sub(start) as u32
    }

    /// Tell the eviction policy when each block content is next requested (Belady, oracle
    /// predictions).
    pub fn set_oracle(&mut self, oracle: Arc<TraceNextUse>) {
        self.oracle = Some(oracle);
    }

    /// True when requests must give their segment keys ([`KvCacheManager::set_keys`]).
    pub fn wants_keys(&self) -> bool {
        self.oracle.is_some()
    }

    /// Give a registered request's segment keys (`fill` appends them).
    pub fn set_keys(&mut self, id: u64, fill: impl FnOnce(&mut Vec<SegmentKey>)) {
        let rb = self.requests.get_mut(&id).expect("request registered");
        rb.keys.clear();
        fill(&mut rb.keys);
        // Every block's next use, once: lookups, registrations and releases reuse them.
        let mut next = std::mem::take(&mut rb.next_uses);
        next.clear();
        if let Some(o) = &self.oracle {
            let rb = &self.requests[&id];
            Self::next_uses_into(o, rb, self.block_size, &mut next);
        }
        self.requests
            .get_mut(&id)
            .expect("request registered")
            .next_uses = next;
    }

    /// Next uses, by the oracle, of every block of the request, in order, into `out`. One
    /// pass: blocks and segment keys advance together, each segment's later holders are
    /// looked up once, and within a segment the first holder covering a block only moves
    /// forward (a later block needs a holder covering at least as far).
    fn next_uses_into(oracle: &TraceNextUse, rb: &RequestBlocks, bs: u32, out: &mut Vec<u64>) {
        let bs = bs as u64;
        let mut k = 0;
        let mut segment: Option<(usize, &[(u32, u32)])> = None;
        for i in 0..rb.hashes.len() {
            let token = (i as u64 + 1) * bs - 1;
            while rb.keys.get(k).is_some_and(|key| key.end <= token) {
                k += 1;
            }
            let Some(key) = rb.keys.get(k).filter(|key| !key.unique) else {
                out.push(NEVER);
                continue;
            };
            let candidates = match &mut segment {
                Some((m, c)) if *m == k => c,
                _ => &mut segment.insert((k, oracle.after(key.chain, rb.owner))).1,
            };
            let offset = token - key.start;
            let skip = candidates
                .iter()
                .position(|&(_, o)| o as u64 >= offset)
                .unwrap_or(candidates.len());
            *candidates = &candidates[skip..];
            out.push(candidates.first().map_or(NEVER, |&(r, _)| r as u64));
        }
    }

    /// The next uses of the request's first blocks (shorter than its blocks, or empty
    /// without an oracle: the others are unknown).
    fn next_uses_of(requests: &SlotMap<RequestBlocks>, id: u64, blocks: usize) -> &[u64] {
        let v = &requests[&id].next_uses;
        &v[..blocks.min(v.len())]
    }

    /// Store evicted contents in a CPU tier and look prefixes up there too.
    pub fn set_cpu_tier(&mut self, tier: CpuTier) {
        self.pool.record_evictions();
        self.cpu = Some(tier);
    }

    /// Size requests' blocks by a token-level policy.
    pub fn set_token_policy(&mut self, policy: TokenPolicy) {
        self.token = Some(policy);
    }

    /// The token-level policy, if any.
    pub fn token_policy(&self) -> Option<&TokenPolicy> {
        self.token.as_ref()
    }

    /// Blocks a request of `prompt` tokens needs when `tokens` of it are cached.
    pub fn blocks_needed(&self, prompt: u32, tokens: u64) -> u64 {
        let slots = match &self.token {
            Some(t) => t.resident_slots(prompt, tokens),
            None => tokens,
        };
        self.blocks_for(slots)
    }

    /// Most blocks a request of `prompt` plus `output` tokens ever holds.
    pub fn peak_blocks(&self, prompt: u32, output: u32) -> u64 {
        if self.hybrid.is_some() {
            return self.hybrid_peak_blocks(prompt as u64 + output as u64);
        }
        match &self.token {
            Some(t) => self.blocks_for(t.peak_slots(prompt, output)),
            None => self.blocks_for(prompt as u64 + output as u64),
        }
    }

    /// Free blocks (cached ones included: they are evicted on demand).
    pub fn num_free_blocks(&self) -> u32 {
        self.pool.num_free_blocks()
    }

    /// True when a decode token's allocation is the plain one (no token policy, CPU tier
    /// or KV cache groups), so steps of decodes alone may be run back to back
    /// (`Scheduler::steady_decode_steps`).
    pub fn allows_steady_decode(&self) -> bool {
        self.token.is_none() && self.cpu.is_none() && self.hybrid.is_none()
    }

    /// The CPU tier, if any.
    pub fn cpu_tier(&self) -> Option<&CpuTier> {
        self.cpu.as_ref()
    }

    /// Leading blocks of `hashes` cached on the GPU or, after the GPU run, in the CPU tier
    /// (no state change; for routers).
    pub fn cached_prefix_blocks(&self, hashes: &[u64]) -> usize {
        if !self.enable_caching {
            return 0;
        }
        if let Some(h) = &self.hybrid {
            return self.hybrid_cached_prefix(h, hashes);
        }
        let gpu = hashes
            .iter()
            .take_while(|&&h| self.pool.get_cached_block(h).is_some())
            .count();
        match &self.cpu {
            Some(c) => gpu + hashes[gpu..].iter().take_while(|&&h| c.contains(h)).count(),
            None => gpu,
        }
    }

    /// Tokens per block times blocks, as bytes are counted elsewhere.
    pub fn tokens_of(&self, blocks: usize) -> u32 {
        blocks as u32 * self.block_size
    }

    /// Tokens per block.
    pub fn block_size(&self) -> u32 {
        self.block_size
    }

    /// Usable blocks.
    pub fn num_usable_blocks(&self) -> u32 {
        self.pool.num_usable_blocks()
    }

    /// Block counts by state.
    pub fn counts(&self) -> BlockCounts {
        self.pool.counts()
    }

    /// Choose evictions with a paging policy instead of vLLM's free queue.
    pub fn set_evictor(&mut self, evictor: super::evictor::PolicyEvictor) {
        self.pool.set_evictor(evictor);
    }

    /// Tell a learned predictor that request `slot` (workload index `index`) looks up its
    /// first `prompt_tokens` tokens now.
    pub fn observe_request(&mut self, slot: u64, index: u64, arrival_ns: u64, prompt_tokens: u32) {
        let Some(ev) = self.pool.evictor_mut() else {
            return;
        };
        let rb = &self.requests[&slot];
        let n = ((prompt_tokens / self.block_size) as usize).min(rb.hashes.len());
        ev.observe_request(index, arrival_ns, prompt_tokens, &rb.hashes[..n]);
    }

    /// The learned predictor's training figures (examples, mean squared log error).
    pub fn learned_stats(&self) -> Option<(u64, f64)> {
        let m = self.pool.evictor()?.learned()?;
        Some((
            m.updates,
            if m.updates > 0 {
                m.squared_error / m.updates as f64
            } else {
                0.0
            },
        ))
    }

    /// The eviction policy's name.
    pub fn eviction_name(&self) -> &str {
        self.pool.eviction_name()
    }

    /// Cached blocks evicted so far.
    pub fn evictions(&self) -> u64 {
        self.pool.evictions()
    }

    /// Full recount of the pool (slow; for tests and `--audit`).
    pub fn audit(&self) -> Result<BlockCounts, String> {
        let c = self.pool.audit()?;
        let referenced: u64 = self
            .requests
            .values()
            .map(|r| (r.blocks.len() + hybrid::held_blocks(r)) as u64)
            .sum();
        let refs: u64 = (1..=c.total).map(|id| self.pool.ref_cnt(id) as u64).sum();
        if referenced != refs {
            return Err(format!(
                "requests hold {referenced} block references but the pool counts {refs}"
            ));
        }
        Ok(c)
    }

    /// True when the request is registered.
    pub fn has_request(&self, id: u64) -> bool {
        self.requests.contains_key(&id)
    }

    /// Register a request with the hashes of its full blocks. `fill` appends them to the
    /// vector it is given. `id` is the scheduler's slot of the request (a small integer,
    /// reused: requests are kept in a vector indexed by it).
    pub fn add_request(&mut self, id: u64, owner: u64, fill: impl FnOnce(&mut Vec<u64>)) {
        let mut rb = self.spare.pop().unwrap_or_default();
        rb.owner = owner;
        rb.blocks.clear();
        rb.hashes.clear();
        rb.num_cached = 0;
        rb.keys.clear();
        rb.next_uses.clear();
        fill(&mut rb.hashes);
        rb.prompt = 0;
        hybrid::reset_tables(&mut rb, self.hybrid.as_ref().map_or(0, |h| h.num_groups()));
        self.requests.insert(id, rb);
    }

    /// Tell the manager a request's prompt length (before its first allocation).
    pub fn set_prompt(&mut self, id: u64, prompt: u32) {
        let rewrites = self.token.as_ref().is_some_and(|t| t.rewrites_blocks());
        let rb = self.requests.get_mut(&id).expect("request registered");
        rb.prompt = prompt;
        if rewrites {
            rb.hashes.clear();
        }
    }

    /// Forget a finished or rejected request (its blocks must have been freed).
    pub fn remove_request(&mut self, id: u64) {
        if let Some(rb) = self.requests.remove(&id) {
            debug_assert!(rb.blocks.is_empty() && hybrid::held_blocks(&rb) == 0);
            self.spare.push(rb);
        }
    }

    /// Blocks the request holds.
    pub fn num_blocks_of(&self, id: u64) -> usize {
        self.requests
            .get(&id)
            .map_or(0, |r| r.blocks.len() + hybrid::held_blocks(r))
    }

    /// Longest cached prefix of the request's first `num_tokens` tokens, at most
    /// `num_tokens - 1` tokens. The hit blocks are remembered for `allocate_slots`.
    pub fn get_computed_blocks(&mut self, id: u64, num_tokens: u32) -> CacheHit {
        if self.hybrid.is_some() {
            return self.hybrid_computed_blocks(id, num_tokens);
        }
        self.hit_scratch.clear();
        if !self.enable_caching || num_tokens == 0 {
            return CacheHit::NONE;
        }
        let rb = &self.requests[&id];
        let max_blocks = ((num_tokens - 1) / self.block_size) as usize;
        for &h in rb.hashes.iter().take(max_blocks) {
            match self.pool.get_cached_block(h) {
                Some(b) => self.hit_scratch.push(b),
                None => break,
            }
        }
        let blocks = self.hit_scratch.len();
        let cpu_blocks = match &self.cpu {
            Some(c) => rb.hashes[blocks..max_blocks.min(rb.hashes.len())]
                .iter()
                .take_while(|&&h| c.contains(h))
                .count(),
            None => 0,
        };
        CacheHit {
            blocks,
            tokens: blocks as u32 * self.block_size,
            cpu_blocks,
        }
    }

    fn blocks_for(&self, tokens: u64) -> u64 {
        tokens.div_ceil(self.block_size as u64)
    }

    /// Allocate room for `num_new_tokens` more tokens of a request that has
    /// `num_computed_tokens` computed, adopting the hit from the last `get_computed_blocks`
    /// when `hit` is given. With `full_tokens`, first require room for that many tokens
    /// (the whole prompt). `reserve` blocks must stay free (the watermark). `known_tokens` is
    /// the request's current length: blocks full up to it are registered as cached.
    /// `in_flight` tokens of the computed ones are scheduled but not yet settled (local
    /// groups free only below the settled ones). Returns false when the blocks are not
    /// free, changing nothing but, with local groups, the blocks they no longer need.
    #[allow(clippy::too_many_arguments)]
    pub fn allocate_slots(
        &mut self,
        id: u64,
        num_computed_tokens: u32,
        num_new_tokens: u32,
        hit: Option<CacheHit>,
        full_tokens: Option<u32>,
        reserve: u32,
        known_tokens: u32,
        in_flight: u32,
    ) -> bool {
        if self.hybrid.is_some() {
            return self.hybrid_allocate_slots(
                id,
                num_computed_tokens,
                num_new_tokens,
                hit,
                full_tokens,
                reserve,
                known_tokens,
                in_flight,
            );
        }
        if hit.is_none() && full_tokens.is_none() && reserve == 0 {
            let end = num_computed_tokens + num_new_tokens;
            if self.fits_in_held_blocks(id, end, known_tokens) {
                return true;
            }
        }
        let hit = hit.unwrap_or(CacheHit::NONE);
        let room = self.room_for(
            id,
            num_computed_tokens,
            num_new_tokens,
            hit,
            full_tokens,
            reserve,
        );
        if !room.fits {
            return false;
        }
        let (needed, new_blocks) = (room.needed, room.new_blocks);
        let computed = self.computed_with_hit(num_computed_tokens, hit);
        let hit_blocks: &[BlockId] = &self.hit_scratch[..hit.blocks];
        let next_uses = Self::next_uses_of(&self.requests, id, hit.blocks);
        self.pool.touch(hit_blocks, next_uses);
        let rb = self.requests.get_mut(&id).expect("request registered");
        if !hit_blocks.is_empty() {
            // Hits are whole cached blocks at the start of a request that holds none yet.
            rb.blocks.extend_from_slice(hit_blocks);
            rb.num_cached = rb.num_cached.max(rb.blocks.len());
        }
        // The contents the new blocks will hold (full ones), for policies that tell a miss on
        // a page they remember (a ghost) from a new one.
        let first_new = rb.blocks.len().min(rb.hashes.len());
        let incoming = &rb.hashes[first_new..];
        self.pool
            .get_new_blocks_for(new_blocks as u32, &mut rb.blocks, incoming);
        if (rb.blocks.len() as u64) > needed {
            // Eviction after the prompt: the compacted request returns its surplus tail
            // (token policies that compact blocks hold no hashes, so no next uses).
            self.pool
                .free_blocks(rb.blocks.drain(needed as usize..).rev(), |_| NEVER);
            rb.num_cached = rb.num_cached.min(rb.blocks.len());
        }
        if let Some(cpu) = &mut self.cpu {
            let first = hit.blocks;
            for &h in &rb.hashes[first..first + hit.cpu_blocks] {
                cpu.touch(h);
            }
            self.pool.take_evicted(&mut self.evicted_scratch);
            for h in self.evicted_scratch.drain(..) {
                cpu.store(h);
            }
        }
        if self.enable_caching {
            let upto = (computed + num_new_tokens as u64).min(known_tokens as u64);
            let full = ((upto / self.block_size as u64) as usize).min(rb.hashes.len());
            self.register(id, full);
        }
        true
    }

    /// Whether [`KvCacheManager::allocate_slots`] would find the blocks it needs (its
    /// check, without allocating): `hit` is the last `get_computed_blocks`'s result.
    pub fn room_for(
        &self,
        id: u64,
        num_computed_tokens: u32,
        num_new_tokens: u32,
        hit: CacheHit,
        full_tokens: Option<u32>,
        reserve: u32,
    ) -> Room {
        let hit_blocks: &[BlockId] = &self.hit_scratch[..hit.blocks];
        let evictable_hits = hit_blocks
            .iter()
            .filter(|&&b| self.pool.ref_cnt(b) == 0)
            .count() as u64;
        let rb = &self.requests[&id];
        let held = rb.blocks.len() as u64 + hit.blocks as u64;
        let computed = self.computed_with_hit(num_computed_tokens, hit);
        let free = self.pool.num_free_blocks() as u64;
        let full_fits = full_tokens.is_none_or(|full| {
            let need = self
                .blocks_needed(rb.prompt, full as u64)
                .saturating_sub(held)
                + evictable_hits;
            need + reserve as u64 <= free
        });
        let needed = self.blocks_needed(rb.prompt, computed + num_new_tokens as u64);
        let new_blocks = needed.saturating_sub(held);
        Room {
            fits: full_fits && new_blocks + evictable_hits + reserve as u64 <= free,
            needed,
            new_blocks,
            evictable_hits,
        }
    }

    /// Tokens a request has once `hit` (GPU and CPU-tier blocks) is added to its
    /// `num_computed_tokens`.
    fn computed_with_hit(&self, num_computed_tokens: u32, hit: CacheHit) -> u64 {
        num_computed_tokens as u64
            + hit.tokens as u64
            + hit.cpu_blocks as u64 * self.block_size as u64
    }

    /// True when a request growing to `end` tokens (`known` of them known) needs no new
    /// block and fills none it has not registered: then `allocate_slots` has nothing to do
    /// (the common decode step: one token into a block with room). Only for the plain
    /// cache (no token policy, CPU tier or groups, whose allocations do more).
    fn fits_in_held_blocks(&self, id: u64, end: u32, known: u32) -> bool {
        if self.token.is_some() || self.cpu.is_some() {
            return false;
        }
        let Some(rb) = self.requests.get(&id) else {
            return false;
        };
        let bs = self.block_size as u64;
        let held = rb.blocks.len() as u64;
        if (end as u64).div_ceil(bs) != held {
            return false;
        }
        if !self.enable_caching {
            return true;
        }
        let full = ((end.min(known) as u64 / bs) as usize)
            .min(rb.hashes.len())
            .min(rb.blocks.len());
        full <= rb.num_cached
    }

    /// Register the request's blocks up to `full` (those not yet registered) as cached.
    fn register(&mut self, id: u64, full: usize) {
        let rb = &self.requests[&id];
        let full = full.min(rb.hashes.len()).min(rb.blocks.len());
        let first = rb.num_cached;
        for i in first..full {
            let next = rb.next_uses.get(i).copied().unwrap_or(NEVER);
            self.pool.cache_block(rb.blocks[i], rb.hashes[i], next);
        }
        let rb = self.requests.get_mut(&id).expect("request registered");
        rb.num_cached = rb.num_cached.max(full);
    }

    /// Register the request's first `num_full_blocks` blocks as cached, those not yet
    /// registered (vLLM `cache_blocks`, called when tokens computed by earlier steps become
    /// known under asynchronous scheduling).
    pub fn cache_blocks(&mut self, id: u64, num_full_blocks: u32) {
        if !self.enable_caching {
            return;
        }
        if self.hybrid.is_some() {
            return self.hybrid_cache_blocks(id, num_full_blocks);
        }
        self.register(id, num_full_blocks as usize);
    }

    /// Return all of a request's blocks, last block first.
    pub fn free(&mut self, id: u64) {
        if self.hybrid.is_some() {
            return self.hybrid_free(id);
        }
        let rb = self.requests.get_mut(&id).expect("request registered");
        rb.num_cached = 0;
        let n = rb.blocks.len();
        let rb = &self.requests[&id];
        let next_uses = &rb.next_uses;
        self.pool.free_blocks(rb.blocks.iter().rev().copied(), |i| {
            next_uses.get(n - 1 - i).copied().unwrap_or(NEVER)
        });
        let rb = self.requests.get_mut(&id).expect("request registered");
        rb.blocks.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hashes(base: u64, n: u64) -> impl FnOnce(&mut Vec<u64>) {
        move |v: &mut Vec<u64>| v.extend((0..n).map(|i| (base + i) * 2 + 1))
    }

    #[test]
    fn shared_prefix_hits_exactly_the_full_shared_blocks() {
        let mut m = KvCacheManager::new(101, 16, true, true);
        // Request 1: 40 tokens = 2 full blocks + 8.
        m.add_request(1, 1, hashes(100, 2));
        assert!(m.allocate_slots(1, 0, 40, None, Some(40), 0, 40, 0));
        assert_eq!(m.num_blocks_of(1), 3);
        // Request 2 shares the first block's content only.
        m.add_request(2, 2, |v| v.extend([201, 999]));
        let hit = m.get_computed_blocks(2, 40);
        assert_eq!(
            hit,
            CacheHit {
                blocks: 1,
                tokens: 16,
                cpu_blocks: 0,
            }
        );
        assert!(m.allocate_slots(2, 0, 24, Some(hit), Some(40), 0, 40, 0));
        assert_eq!(m.num_blocks_of(2), 3);
        let c = m.audit().unwrap();
        assert_eq!(c.used, 5);
    }

    #[test]
    fn whole_prompt_hit_recomputes_last_block() {
        let mut m = KvCacheManager::new(101, 16, true, true);
        m.add_request(1, 1, hashes(0, 2));
        assert!(m.allocate_slots(1, 0, 32, None, None, 0, 32, 0));
        m.free(1);
        m.add_request(2, 2, hashes(0, 2));
        // 32 tokens, all cached, but at most 31 may hit: one block.
        assert_eq!(m.get_computed_blocks(2, 32).tokens, 16);
    }

    #[test]
    fn room_for_says_what_allocate_slots_then_does() {
        // Requests sharing a prefix, admitted and freed in turn on a small pool, with
        // whole-prompt admission and a reserve: before every admission, `room_for` must
        // predict whether `allocate_slots` succeeds.
        let mut m = KvCacheManager::new(12, 16, true, true); // 11 usable
        let mut checked = (0, 0);
        for id in 1..40u64 {
            let blocks = 1 + id % 6;
            m.add_request(id, id, |v| {
                v.extend((0..blocks).map(|i| 100 + i + (id % 3) * 1000))
            });
            let known = (blocks * 16) as u32;
            let hit = m.get_computed_blocks(id, known);
            let full = (id % 2 == 0).then_some(known);
            let reserve = (id % 4) as u32;
            let n = known - hit.tokens;
            let room = m.room_for(id, 0, n, hit, full, reserve);
            let ok = m.allocate_slots(id, 0, n, Some(hit), full, reserve, known, 0);
            assert_eq!(room.fits, ok, "request {id}");
            if ok {
                checked.0 += 1;
            } else {
                checked.1 += 1;
            }
            m.audit().unwrap();
            if id % 3 != 1 {
                m.free(id);
            }
        }
        assert!(checked.0 > 5 && checked.1 > 5, "{checked:?}");
    }

    #[test]
    fn allocation_fails_without_side_effects() {
        let mut m = KvCacheManager::new(3, 16, true, true); // 2 usable
        m.add_request(1, 1, hashes(0, 4));
        assert!(!m.allocate_slots(1, 0, 48, None, None, 0, 48, 0));
        assert_eq!(m.counts().free, 2);
        assert!(m.allocate_slots(1, 0, 20, None, Some(20), 0, 64, 0));
        assert!(!m.allocate_slots(1, 20, 20, None, None, 0, 64, 0));
        m.audit().unwrap();
    }
}

#[cfg(test)]
mod chunk_tests {
    use super::*;

    #[test]
    fn chunked_prefill_registers_every_full_block() {
        let mut m = KvCacheManager::new(2000, 16, true, true);
        m.add_request(1, 1, |v| v.extend((0..846u64).map(|i| i * 2 + 1)));
        // The first chunk ends inside block 409 (6559 = 409 * 16 + 15).
        assert!(m.allocate_slots(1, 0, 6559, None, Some(13544), 0, 13544, 0));
        assert!(m.allocate_slots(1, 6559, 6985, None, None, 0, 13544, 0));
        m.free(1);
        m.add_request(2, 2, |v| v.extend((0..846u64).map(|i| i * 2 + 1)));
        assert_eq!(m.get_computed_blocks(2, 13544).blocks, 846);
    }

    #[test]
    fn next_uses_in_one_pass_match_the_oracle_block_by_block() {
        use crate::prefix::{block_hashes, key_of_token, segment_keys};
        use crate::workload::Segment;
        use rand::{Rng, SeedableRng};
        let mut rng = rand::rngs::StdRng::seed_from_u64(21);
        let bs = 16u32;
        // Requests over a few shared segments of uneven lengths, prompts cut anywhere.
        let reqs: Vec<(Vec<Segment>, u32)> = (0..60)
            .map(|_| {
                let n = rng.gen_range(1..6);
                let segs: Vec<Segment> = (0..n)
                    .map(|_| {
                        let id = rng.gen_range(1..6u64);
                        Segment {
                            id,
                            tokens: 17 * id as u32 + 5,
                        }
                    })
                    .collect();
                let total: u32 = segs.iter().map(|s| s.tokens).sum();
                (segs, rng.gen_range(1..=total + 40))
            })
            .collect();
        let mut oracle = TraceNextUse::default();
        let mut keys = Vec::new();
        for (i, (segs, prompt)) in reqs.iter().enumerate() {
            keys.clear();
            segment_keys(segs, *prompt, i as u64, &mut keys);
            oracle.add(i as u64, &keys, *prompt, bs);
        }
        let oracle = Arc::new(oracle.finish());
        let mut m = KvCacheManager::new(64, bs, true, true);
        m.set_oracle(oracle.clone());
        for (i, (segs, prompt)) in reqs.iter().enumerate() {
            let id = i as u64;
            m.add_request(id, id, |v| {
                block_hashes(segs, *prompt, *prompt as u64, bs, id, v)
            });
            m.set_keys(id, |v| segment_keys(segs, *prompt, id, v));
            let rb = &m.requests[&id];
            assert_eq!(rb.next_uses.len(), rb.hashes.len());
            for (b, &got) in rb.next_uses.iter().enumerate() {
                let (k, off) = key_of_token(&rb.keys, (b as u64 + 1) * bs as u64 - 1);
                let want = if k.unique {
                    NEVER
                } else {
                    oracle.next_use(k.chain, off, id)
                };
                assert_eq!(got, want, "request {i} block {b}");
            }
            m.remove_request(id);
        }
    }
}
