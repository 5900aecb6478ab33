//! Several KV cache groups in one pool, after vLLM 0.33's `HybridKVCacheCoordinator`
//! (`v1/core/kv_cache_coordinator.py`) and its single-type managers
//! (`v1/core/single_type_kv_cache_manager.py`): one block table per group per request,
//! each group following the rules of its kind.
//!
//! - Full attention keeps every block and caches every full block.
//! - Sliding window `w` frees the blocks wholly below the last `w - 1` processed tokens
//!   (`remove_skipped_blocks`, before each allocation), leaving the null block in their
//!   place; its cache hit is the rightmost run of `cdiv(w - 1, block_size)` cached blocks
//!   (or a shorter run from the start), and it caches only the runs of that many blocks
//!   ending at the prompt's last full block and at the request's shared-prefix junction
//!   (`prefix_cache_retention_interval` 0: `reachable_block_mask`).
//! - Chunked local attention `c` frees the blocks of the chunks before the current one;
//!   blocks of earlier chunks count as computed for a hit, which continues from the current
//!   chunk's first block.
//!
//! A lookup takes the full-attention hit first, then each local kind's within it, until the
//! length stops shrinking; admission caps a local group at the blocks it can ever hold
//! (`max_admission_blocks_per_request`). Blocks are hashed per group: the same content in
//! two groups is two cache entries.

use super::{BlockId, CacheHit, KvCacheManager, RequestBlocks};
use crate::model::LayerAttention;
use crate::paging::NEVER;

/// The null block: a placeholder for a freed block in a block table.
const NULL: BlockId = 0;

/// The groups of a hybrid model and the limits their rules depend on.
#[derive(Debug)]
pub(super) struct Hybrid {
    /// Each group's kind, in vLLM's group order.
    kinds: Vec<LayerAttention>,
    /// Tokens scheduled and not yet settled, at most (vLLM's `max_in_flight_tokens`:
    /// concurrent batches times `max_num_batched_tokens`).
    max_in_flight: u64,
    /// `max_model_len`.
    max_model_len: u64,
    /// The distinct kinds in lookup order: full attention first, then the others in
    /// group order (computed once: every lookup walks them).
    lookup: Vec<LayerAttention>,
    /// The last lookup's blocks per group (null where skipped).
    hits: Vec<Vec<BlockId>>,
}

/// One group's block table of a request.
#[derive(Debug, Default, Clone)]
pub(super) struct GroupTable {
    blocks: Vec<BlockId>,
    num_cached: usize,
}

/// The cache key of `hash` in group `g` (group 0 keeps the content hash).
fn group_hash(hash: u64, g: usize) -> u64 {
    if g == 0 {
        return hash;
    }
    let h = (hash ^ (g as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15)).rotate_left(17);
    h.max(1)
}

/// Tokens at the start of a sequence of `n` processed tokens that no later token of a
/// layer of this kind attends to (`get_num_skipped_tokens`).
fn skipped_tokens(kind: LayerAttention, n: u64) -> u64 {
    match kind {
        // Linear-attention models are refused before a manager is built.
        LayerAttention::Full | LayerAttention::Linear => 0,
        LayerAttention::SlidingWindow(w) => n.saturating_sub(w as u64 - 1),
        LayerAttention::ChunkedLocal(c) => n / c as u64 * c as u64,
    }
}

impl Hybrid {
    /// Groups of these kinds; `max_in_flight` and `max_model_len` in tokens.
    pub(super) fn new(kinds: Vec<LayerAttention>, max_in_flight: u64, max_model_len: u64) -> Self {
        let mut lookup: Vec<LayerAttention> = Vec::with_capacity(kinds.len());
        for &k in &kinds {
            if !lookup.contains(&k) {
                lookup.push(k);
            }
        }
        lookup.sort_by_key(|k| *k != LayerAttention::Full);
        Hybrid {
            hits: vec![Vec::new(); kinds.len()],
            lookup,
            kinds,
            max_in_flight,
            max_model_len,
        }
    }

    /// Groups.
    pub(super) fn num_groups(&self) -> usize {
        self.kinds.len()
    }

    /// Most blocks a request may need in a group of this kind at admission
    /// (`max_admission_blocks_per_request`), `None` for full attention.
    fn admission_cap(&self, kind: LayerAttention, bs: u64) -> Option<u64> {
        let mml = self.max_model_len;
        match kind {
            LayerAttention::Full | LayerAttention::Linear => None,
            LayerAttention::SlidingWindow(w) => {
                Some((w as u64 - 1 + self.max_in_flight).min(mml).div_ceil(bs) + 1)
            }
            LayerAttention::ChunkedLocal(c) => {
                Some((c as u64 + self.max_in_flight).min(mml).div_ceil(bs))
            }
        }
    }
}

impl KvCacheManager {
    /// Is content `hash` cached in every group of `kind`?
    fn cached_in_kind(&self, h: &Hybrid, kind: LayerAttention, hash: u64) -> bool {
        h.kinds
            .iter()
            .enumerate()
            .filter(|&(_, &k)| k == kind)
            .all(|(g, _)| self.pool.get_cached_block(group_hash(hash, g)).is_some())
    }

    /// The hit of one kind within `max_tokens`, as block lists per group of the kind
    /// (null where the kind needs nothing); returns its length in blocks.
    fn find_kind_hit(
        &self,
        h: &mut Hybrid,
        kind: LayerAttention,
        hashes: &[u64],
        max_tokens: u64,
    ) -> usize {
        let bs = self.block_size as u64;
        let n = ((max_tokens / bs) as usize).min(hashes.len());
        let hit = |i: usize| self.cached_in_kind(h, kind, hashes[i]);
        // Which blocks are hits: [first, len), the ones below `first` null.
        let (first, len) = match kind {
            LayerAttention::Full | LayerAttention::Linear => {
                let len = (0..n).take_while(|&i| hit(i)).count();
                (0, len)
            }
            LayerAttention::SlidingWindow(w) => {
                let need = (w as u64 - 1).div_ceil(bs) as usize;
                let mut run = 0;
                let mut found = None;
                for i in (0..n).rev() {
                    if hit(i) {
                        run += 1;
                        if run >= need {
                            found = Some((i, i + run));
                            break;
                        }
                    } else {
                        run = 0;
                    }
                }
                found.unwrap_or((0, run))
            }
            LayerAttention::ChunkedLocal(c) => {
                let start = (max_tokens / c as u64 * c as u64 / bs) as usize;
                let start = start.min(n);
                let more = (start..n).take_while(|&i| hit(i)).count();
                (start, start + more)
            }
        };
        for g in 0..h.kinds.len() {
            if h.kinds[g] != kind {
                continue;
            }
            let list = &mut h.hits[g];
            list.clear();
            list.resize(first, NULL);
            for &hash in &hashes[first..len] {
                let b = self.pool.get_cached_block(group_hash(hash, g));
                list.push(b.expect("checked cached in every group"));
            }
        }
        len
    }

    /// `get_computed_blocks` for several groups (`HybridKVCacheCoordinator`).
    pub(super) fn hybrid_computed_blocks(&mut self, id: u64, num_tokens: u32) -> CacheHit {
        let mut h = self.hybrid.take().expect("hybrid groups");
        for l in &mut h.hits {
            l.clear();
        }
        let bs = self.block_size as u64;
        let mut hit = num_tokens.saturating_sub(1) as u64;
        if self.enable_caching && num_tokens > 0 {
            let hashes =
                std::mem::take(&mut self.requests.get_mut(&id).expect("registered").hashes);
            let simple = h.lookup.len() == 2 && h.lookup[0] == LayerAttention::Full;
            let mut full_len: Option<u64> = None;
            // The longest hit any kind found (`longest_hit_length`).
            let mut longest = 0u64;
            loop {
                let mut cur = hit;
                for i in 0..h.lookup.len() {
                    let k = h.lookup[i];
                    if k == LayerAttention::Full {
                        if let Some(f) = full_len {
                            cur = cur.min(f);
                            continue;
                        }
                    }
                    cur = self.find_kind_hit(&mut h, k, &hashes, cur) as u64 * bs;
                    if k == LayerAttention::Full {
                        full_len = Some(cur);
                    }
                    longest = longest.max(cur);
                }
                let done = cur >= hit;
                hit = cur;
                if done || simple {
                    break;
                }
            }
            // Full attention keeps only the blocks within the common length.
            let keep = (hit / bs) as usize;
            for (g, l) in h.hits.iter_mut().enumerate() {
                if h.kinds[g] == LayerAttention::Full {
                    l.truncate(keep);
                }
            }
            let rb = self.requests.get_mut(&id).expect("registered");
            rb.hashes = hashes;
            // A shared prefix cached in full attention beyond what every group hit: the
            // junction this request keeps in its sliding-window groups, so that the next
            // request sharing it hits there (`shared_prefix_boundary`).
            rb.junction = if longest > hit { longest } else { 0 };
        } else {
            hit = 0;
        }
        self.hybrid = Some(h);
        CacheHit {
            blocks: (hit / bs) as usize,
            tokens: hit as u32,
            cpu_blocks: 0,
        }
    }

    /// Blocks group `g` must take to hold `num_tokens` (`get_num_blocks_to_allocate`):
    /// new ones plus evictable hits.
    #[allow(clippy::too_many_arguments)]
    fn group_blocks_to_allocate(
        &self,
        h: &Hybrid,
        rb: &RequestBlocks,
        g: usize,
        num_tokens: u64,
        computed: u64,
        cap: bool,
        hits: &[BlockId],
    ) -> u64 {
        let bs = self.block_size as u64;
        let kind = h.kinds[g];
        let mut req_n = num_tokens.div_ceil(bs);
        if cap {
            if let Some(c) = h.admission_cap(kind, bs) {
                req_n = req_n.min(c);
            }
        }
        let have = rb.groups[g].blocks.len() as u64;
        if rb.allocated {
            return req_n.saturating_sub(have);
        }
        let skipped = skipped_tokens(kind, computed) / bs;
        let new = req_n.saturating_sub(skipped.max(hits.len() as u64 + have));
        let from = (skipped.saturating_sub(have) as usize).min(hits.len());
        let evictable = hits[from..]
            .iter()
            .filter(|&&b| b != NULL && self.pool.ref_cnt(b) == 0)
            .count() as u64;
        new + evictable
    }

    /// Free group tables' blocks no later token attends to (`remove_skipped_blocks`),
    /// `processed` tokens being settled, newest first, leaving the null block in their place.
    fn remove_skipped_blocks(&mut self, h: &Hybrid, id: u64, processed: u64) {
        let bs = self.block_size as u64;
        let rb = self.requests.get_mut(&id).expect("registered");
        for (g, t) in rb.groups.iter_mut().enumerate() {
            let skip = skipped_tokens(h.kinds[g], processed);
            if skip == 0 {
                continue;
            }
            let k = ((skip / bs) as usize).min(t.blocks.len());
            let mut freed = k;
            while freed > 0 && t.blocks[freed - 1] != NULL {
                freed -= 1;
            }
            // Blocks [freed, k), newest first.
            self.pool
                .free_blocks(t.blocks[freed..k].iter().rev().copied(), |_| NEVER);
            t.blocks[freed..k].fill(NULL);
        }
    }

    /// `allocate_slots` for several groups; the arguments as [`KvCacheManager::allocate_slots`].
    #[allow(clippy::too_many_arguments)]
    pub(super) fn hybrid_allocate_slots(
        &mut self,
        id: u64,
        num_computed: u32,
        num_new: u32,
        hit: Option<CacheHit>,
        full_tokens: Option<u32>,
        reserve: u32,
        known: u32,
        in_flight: u32,
    ) -> bool {
        let h = self.hybrid.take().expect("hybrid groups");
        let ok = self.allocate_in_groups(
            &h,
            id,
            num_computed,
            num_new,
            hit,
            full_tokens,
            reserve,
            known,
            in_flight,
        );
        self.hybrid = Some(h);
        ok
    }

    #[allow(clippy::too_many_arguments)]
    fn allocate_in_groups(
        &mut self,
        h: &Hybrid,
        id: u64,
        num_computed: u32,
        num_new: u32,
        hit: Option<CacheHit>,
        full_tokens: Option<u32>,
        reserve: u32,
        known: u32,
        in_flight: u32,
    ) -> bool {
        let bs = self.block_size as u64;
        let hit_tokens = hit.map_or(0, |c| c.tokens as u64);
        let empty = Vec::new();
        let hits_of = |g: usize| if hit.is_some() { &h.hits[g] } else { &empty };
        let computed = num_computed as u64 + hit_tokens;
        let free = self.pool.num_free_blocks() as u64;
        let groups = h.kinds.len();
        let total = |m: &Self, tokens: u64, cap: bool| -> u64 {
            let rb = &m.requests[&id];
            (0..groups)
                .map(|g| m.group_blocks_to_allocate(h, rb, g, tokens, computed, cap, hits_of(g)))
                .sum()
        };
        if let Some(full) = full_tokens {
            let n = total(self, (full as u64).min(h.max_model_len), true);
            if n + reserve as u64 > free {
                return false;
            }
        }
        let need_slot = (computed + num_new as u64).min(h.max_model_len);
        self.remove_skipped_blocks(h, id, computed.saturating_sub(in_flight as u64));
        let free = self.pool.num_free_blocks() as u64;
        let n = total(self, need_slot, false);
        if n + reserve as u64 > free {
            return false;
        }
        let rb = self.requests.get_mut(&id).expect("registered");
        let new_request = !rb.allocated;
        let mut tables = std::mem::take(&mut rb.groups);
        for (g, t) in tables.iter_mut().enumerate() {
            if new_request {
                // `add_local_computed_blocks`: skipped hits become null, the rest are touched.
                let skip = (skipped_tokens(h.kinds[g], computed) / bs) as usize;
                let hits = hits_of(g);
                let kept = &hits[skip.min(hits.len())..];
                for &b in kept.iter().filter(|&&b| b != NULL) {
                    self.pool.touch(&[b], &[]);
                }
                t.blocks.resize(skip, NULL);
                t.blocks.extend_from_slice(kept);
                t.num_cached = t.blocks.len();
            }
            let want = need_slot.div_ceil(bs) as usize;
            if want > t.blocks.len() {
                let k = (want - t.blocks.len()) as u32;
                self.pool.get_new_blocks(k, &mut t.blocks);
            }
        }
        let rb = self.requests.get_mut(&id).expect("registered");
        rb.groups = tables;
        rb.allocated = true;
        if self.enable_caching {
            self.hybrid_cache(h, id, (computed + num_new as u64).min(known as u64));
        }
        true
    }

    /// Register the full blocks below `tokens` that each group keeps cached
    /// (`cache_blocks`, with the sliding window's retention mask).
    fn hybrid_cache(&mut self, h: &Hybrid, id: u64, tokens: u64) {
        let bs = self.block_size as u64;
        let rb = self.requests.get_mut(&id).expect("registered");
        let prompt = rb.prompt as u64;
        let hashes = &rb.hashes;
        for (g, t) in rb.groups.iter_mut().enumerate() {
            let full = ((tokens / bs) as usize)
                .min(hashes.len())
                .min(t.blocks.len());
            if t.num_cached >= full {
                continue;
            }
            // The runs a later hit can end on: the replay boundary (`num_prompt - 1`) and
            // the shared-prefix junction, each block-aligned (`reachable_block_mask` with
            // `prefix_cache_retention_interval` 0).
            let (replay, junction) = match h.kinds[g] {
                LayerAttention::SlidingWindow(w) => {
                    let need = (w as u64 - 1).div_ceil(bs) as usize;
                    let run = |end: usize| end.saturating_sub(need)..end;
                    let end = (prompt.saturating_sub(1) / bs) as usize;
                    (run(end), run((rb.junction / bs) as usize))
                }
                _ => (0..usize::MAX, 0..0),
            };
            let first = t.num_cached;
            let fresh = t.blocks[first..full].iter().zip(&hashes[first..full]);
            for (j, (&b, &hash)) in (first..).zip(fresh) {
                if b != NULL && (replay.contains(&j) || junction.contains(&j)) {
                    self.pool.cache_block(b, group_hash(hash, g), NEVER);
                }
            }
            t.num_cached = full;
        }
    }

    /// `cache_blocks` for several groups: the first `num_full_blocks` blocks' worth.
    pub(super) fn hybrid_cache_blocks(&mut self, id: u64, num_full_blocks: u32) {
        let h = self.hybrid.take().expect("hybrid groups");
        self.hybrid_cache(&h, id, num_full_blocks as u64 * self.block_size as u64);
        self.hybrid = Some(h);
    }

    /// Return every group's blocks, group by group, last block first.
    pub(super) fn hybrid_free(&mut self, id: u64) {
        let rb = self.requests.get_mut(&id).expect("registered");
        rb.allocated = false;
        for t in rb.groups.iter_mut() {
            self.pool.free_blocks(
                t.blocks.iter().rev().copied().filter(|&b| b != NULL),
                |_| NEVER,
            );
            t.blocks.clear();
            t.num_cached = 0;
        }
    }

    /// Leading blocks of `hashes` cached in every full-attention group (every group when
    /// there is none), for routers.
    pub(super) fn hybrid_cached_prefix(&self, h: &Hybrid, hashes: &[u64]) -> usize {
        let kind = h.lookup[0];
        hashes
            .iter()
            .take_while(|&&x| self.cached_in_kind(h, kind, x))
            .count()
    }

    /// Most blocks a request of `tokens` tokens holds over all groups at admission.
    pub(super) fn hybrid_peak_blocks(&self, tokens: u64) -> u64 {
        let h = self.hybrid.as_ref().expect("hybrid groups");
        let bs = self.block_size as u64;
        h.kinds
            .iter()
            .map(|&k| {
                let n = tokens.div_ceil(bs);
                h.admission_cap(k, bs).map_or(n, |c| n.min(c))
            })
            .sum()
    }
}

/// A request's tables for `groups` groups, empty.
pub(super) fn reset_tables(rb: &mut RequestBlocks, groups: usize) {
    rb.groups.resize_with(groups, GroupTable::default);
    for t in &mut rb.groups {
        t.blocks.clear();
        t.num_cached = 0;
    }
    rb.allocated = false;
    rb.junction = 0;
}

/// Non-null blocks of a request over all groups.
pub(super) fn held_blocks(rb: &RequestBlocks) -> usize {
    rb.groups
        .iter()
        .map(|t| t.blocks.iter().filter(|&&b| b != NULL).count())
        .sum()
}

#[cfg(test)]
mod tests {
    use super::*;

    const SW: LayerAttention = LayerAttention::SlidingWindow(128);

    fn manager(blocks: u32) -> KvCacheManager {
        let mut m = KvCacheManager::new(blocks, 16, true, true);
        m.set_groups(vec![SW, LayerAttention::Full], 16384, 1 << 20);
        m
    }

    fn hashes(n: u64) -> impl FnOnce(&mut Vec<u64>) {
        move |v: &mut Vec<u64>| v.extend((0..n).map(|i| i * 2 + 1))
    }

    #[test]
    fn a_follow_up_hits_the_prompt_in_both_groups() {
        let mut m = manager(1000);
        m.add_request(1, 1, hashes(120));
        m.set_prompt(1, 1600);
        assert!(m.allocate_slots(1, 0, 1600, None, Some(1600), 0, 1600, 0));
        m.free(1);
        m.remove_request(1);
        m.add_request(2, 2, hashes(120));
        m.set_prompt(2, 1900);
        let hit = m.get_computed_blocks(2, 1900);
        // The sliding group cached blocks 91..99 (ending at (1600 - 1) / 16 = 99).
        assert_eq!(hit.tokens, 99 * 16);
        // Both groups adopt it: the full group its 99 blocks, the sliding group null up to
        // the window, skipped = 99 * 16 - 127 = 1457 tokens = 91 blocks, then 8 hits.
        assert!(m.allocate_slots(2, 0, 1900 - 1584, Some(hit), Some(1900), 0, 1900, 0));
        let t = &m.requests[&2].groups;
        assert_eq!(t[0].blocks.iter().filter(|&&b| b == NULL).count(), 91);
        assert_eq!(t[0].blocks.len(), 1900usize.div_ceil(16));
        assert_eq!(t[1].blocks.len(), 1900usize.div_ceil(16));
        m.audit().unwrap();
    }

    /// A request sharing only the first 50 blocks of a cached 100-block prompt: the full
    /// group hits 50 blocks, but the sliding group kept only blocks 91..99 of the first
    /// request, so no run of 8 lies within the 50 and the hit is 0.
    #[test]
    fn a_shared_prefix_shorter_than_the_cached_prompt_misses_in_the_sliding_group() {
        let mut m = manager(1000);
        m.add_request(1, 1, hashes(100));
        m.set_prompt(1, 1600);
        assert!(m.allocate_slots(1, 0, 1600, None, Some(1600), 0, 1600, 0));
        m.free(1);
        m.remove_request(1);
        m.add_request(2, 2, |v| {
            v.extend((0..50).map(|i| i * 2 + 1));
            v.extend((0..50).map(|i| 10_001 + i * 2));
        });
        m.set_prompt(2, 1600);
        assert_eq!(m.get_computed_blocks(2, 1600).tokens, 0);
        // Without the sliding group the full group alone would hit 50 blocks.
        let mut full = KvCacheManager::new(1000, 16, true, true);
        full.add_request(1, 1, hashes(100));
        assert!(full.allocate_slots(1, 0, 1600, None, None, 0, 1600, 0));
        full.free(1);
        full.add_request(2, 2, |v| {
            v.extend((0..50).map(|i| i * 2 + 1));
            v.extend((0..50).map(|i| 10_001 + i * 2));
        });
        assert_eq!(full.get_computed_blocks(2, 1600).tokens, 800);
    }

    /// The junction (vLLM's `shared_prefix_boundary`): request 2 shares the first 50
    /// blocks of request 1's cached prompt and misses in the sliding group, but full
    /// attention found the 50, so request 2 keeps its sliding blocks 42..50, the run ending
    /// there; request 3, sharing the same 50 blocks, then hits all 800 tokens. Request 2
    /// itself had no such junction to keep with request 1 gone from the full group.
    #[test]
    fn a_shared_prefix_is_kept_at_its_junction_for_the_next_request() {
        let mut m = manager(1000);
        let shared_then = |base: u64| {
            move |v: &mut Vec<u64>| {
                v.extend((0..50).map(|i| i * 2 + 1));
                v.extend((0..50).map(|i| base + i * 2));
            }
        };
        m.add_request(1, 1, hashes(100));
        m.set_prompt(1, 1600);
        assert!(m.allocate_slots(1, 0, 1600, None, Some(1600), 0, 1600, 0));
        m.free(1);
        m.remove_request(1);
        m.add_request(2, 2, shared_then(10_001));
        m.set_prompt(2, 1600);
        assert_eq!(m.get_computed_blocks(2, 1600).tokens, 0);
        assert!(m.allocate_slots(2, 0, 1600, None, Some(1600), 0, 1600, 0));
        m.free(2);
        m.remove_request(2);
        m.add_request(3, 3, shared_then(20_001));
        m.set_prompt(3, 1600);
        assert_eq!(m.get_computed_blocks(3, 1600).tokens, 800);
        m.audit().unwrap();
    }

    /// A prompt of 100 tokens: the sliding group keeps blocks [6 - 8, 6) = 0..6; replayed,
    /// the run from block 0 is shorter than 8 but reaches the start, so it counts: 96.
    #[test]
    fn a_short_prompt_replayed_hits_from_the_start() {
        let mut m = manager(100);
        m.add_request(1, 1, hashes(6));
        m.set_prompt(1, 100);
        assert!(m.allocate_slots(1, 0, 100, None, Some(100), 0, 100, 0));
        m.free(1);
        m.add_request(2, 2, hashes(6));
        m.set_prompt(2, 100);
        assert_eq!(m.get_computed_blocks(2, 100).tokens, 96);
    }

    /// One request decoding 2,000 tokens after a 100-token prompt: the sliding group never
    /// holds more than 128 / 16 + 1 = 9 blocks once past the window, the full group one per
    /// 16 tokens; blocks are conserved throughout.
    #[test]
    fn the_sliding_group_holds_the_window_plus_one_block_in_a_long_generation() {
        let mut m = manager(400);
        let (p, o) = (100u32, 2000u32);
        m.add_request(1, 1, hashes(((p + o) / 16) as u64));
        m.set_prompt(1, p);
        assert!(m.allocate_slots(1, 0, p, None, Some(p), 0, p, 0));
        let mut peak = 0;
        for computed in p..p + o - 1 {
            assert!(m.allocate_slots(1, computed, 1, None, None, 0, computed + 1, 0));
            let t = &m.requests[&1].groups;
            let live = t[0].blocks.iter().filter(|&&b| b != NULL).count();
            peak = peak.max(live);
            assert_eq!(t[1].blocks.len(), (computed as usize + 1).div_ceil(16));
            let c = m.audit().unwrap();
            assert_eq!(c.used as usize, live + t[1].blocks.len());
        }
        assert_eq!(peak, 9);
        m.free(1);
        assert_eq!(m.audit().unwrap().used, 0);
    }

    /// Chunked local attention (chunk 64): blocks of finished chunks are freed; a replay's
    /// hit counts the earlier chunks as computed and continues from the current chunk.
    #[test]
    fn chunked_local_frees_past_chunks_and_hits_from_the_chunk_start() {
        let cl = LayerAttention::ChunkedLocal(64);
        let mut m = KvCacheManager::new(200, 16, true, true);
        m.set_groups(vec![cl, LayerAttention::Full], 16384, 1 << 20);
        m.add_request(1, 1, hashes(20));
        m.set_prompt(1, 330);
        assert!(m.allocate_slots(1, 0, 200, None, None, 0, 330, 0));
        // 200 processed: chunks [0, 192) are done, blocks 0..12 freed.
        assert!(m.allocate_slots(1, 200, 130, None, None, 0, 330, 0));
        let t = &m.requests[&1].groups;
        assert_eq!(t[0].blocks.iter().filter(|&&b| b == NULL).count(), 12);
        assert_eq!(t[0].blocks.len(), 21);
        m.free(1);
        m.add_request(2, 2, hashes(20));
        m.set_prompt(2, 330);
        // Full group: 20 blocks (320 tokens); chunked: chunks below 320 count, then blocks
        // 20.. are past the 20 the full group found: 320 tokens.
        assert_eq!(m.get_computed_blocks(2, 330).tokens, 320);
        m.audit().unwrap();
    }

    #[test]
    fn admission_caps_follow_max_in_flight_tokens() {
        let h = Hybrid::new(vec![SW], 16384, 131072);
        assert_eq!(h.admission_cap(SW, 16), Some(1033));
        let cl = LayerAttention::ChunkedLocal(8192);
        assert_eq!(h.admission_cap(cl, 16), Some((8192 + 16384) / 16));
        assert_eq!(h.admission_cap(LayerAttention::Full, 16), None);
    }
}
