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
//! - Linear attention (vLLM's `MambaManager`, mamba cache mode "align" with prefix
//!   caching on) keeps one state block per request, the one of its last computed token:
//!   a table of `cdiv(tokens, block_size)` entries, the earlier ones null. The previous
//!   step's state block is freed once the settled tokens are past it, so a request holds
//!   at most 2 blocks per group, 3 while its prefill's last chunk also writes the
//!   checkpoint block (the state at the prompt's last block boundary, the only one cached
//!   with `prefix_cache_retention_interval` 0). Its hit is the rightmost cached state
//!   block. With prefix caching off ("none" mode) a request holds one block per group for
//!   its whole life.
//!
//! A lookup takes the full-attention hit first, then each local kind's within it, until the
//! length stops shrinking; admission caps a local group at the blocks it can ever hold
//! (`max_admission_blocks_per_request`). Blocks are hashed per group: the same content in
//! two groups is two cache entries.

use super::{BlockId, CacheHit, KvCacheManager, RequestBlocks};
use crate::engine::kv_groups::GDN_PREFILL_CHECKPOINT_ALIGNMENT;
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
    /// Linear-attention groups in vLLM's mamba cache mode "align" (prefix caching on): a
    /// state block per `block_size` tokens; off, "none": one block per request.
    mamba_align: bool,
}

/// One group's block table of a request.
#[derive(Debug, Default, Clone)]
pub(super) struct GroupTable {
    blocks: Vec<BlockId>,
    num_cached: usize,
    /// Linear attention: the index of the state block before the current one
    /// (`last_state_block_idx`), freed once the settled tokens pass it.
    last_state: Option<usize>,
    /// Linear attention: entries below this index are already freed (`_num_retired_blocks`).
    retired: usize,
}

impl GroupTable {
    /// Empty the table.
    fn reset(&mut self) {
        self.blocks.clear();
        self.num_cached = 0;
        self.last_state = None;
        self.retired = 0;
    }
}

/// The cache key of `hash` in group `g` (group 0 keeps the content hash): the run's key
/// changed by the group, the place in the run kept ([`crate::prefix::block_hash`]), so that
/// a group's blocks share runs as the content's do.
fn group_hash(hash: u64, g: usize) -> u64 {
    if g == 0 {
        return hash;
    }
    let h = hash ^ ((g as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15) << crate::prefix::HASH_RUN_BITS);
    h.max(1)
}

/// Tokens at the start of a sequence of `n` processed tokens that no later token of a
/// layer of this kind attends to (`get_num_skipped_tokens`); linear attention in align
/// mode needs only the last token's state (`n - 1`), in "none" mode its one block.
fn skipped_tokens(kind: LayerAttention, n: u64, mamba_align: bool) -> u64 {
    match kind {
        LayerAttention::Full => 0,
        LayerAttention::Linear if mamba_align => n.saturating_sub(1),
        LayerAttention::Linear => 0,
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
            mamba_align: true,
        }
    }

    /// Linear-attention groups in align mode (prefix caching on) or "none" mode.
    pub(super) fn set_mamba_align(&mut self, align: bool) {
        self.mamba_align = align;
    }

    /// The block size prefill chunks are clipped to, if any: align mode with a
    /// linear-attention group.
    pub(super) fn mamba_align_block(&self, bs: u32) -> Option<u32> {
        (self.mamba_align && self.kinds.contains(&LayerAttention::Linear)).then_some(bs)
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
            LayerAttention::Full => {
                let len = (0..n).take_while(|&i| hit(i)).count();
                (0, len)
            }
            // The rightmost cached state block; the ones before it are null.
            LayerAttention::Linear => (0..n)
                .rev()
                .find(|&i| hit(i))
                .map_or((0, 0), |i| (i, i + 1)),
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
        prefill_end: u64,
    ) -> u64 {
        let bs = self.block_size as u64;
        let kind = h.kinds[g];
        if kind == LayerAttention::Linear {
            let t = &rb.groups[g];
            return self.linear_blocks_to_allocate(h, t, num_tokens, computed, hits, prefill_end);
        }
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
        let skipped = skipped_tokens(kind, computed, h.mamba_align) / bs;
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
            if h.kinds[g] == LayerAttention::Linear {
                if h.mamba_align {
                    retire_states(&mut self.pool, t, processed, bs);
                }
                continue;
            }
            let skip = skipped_tokens(h.kinds[g], processed, h.mamba_align);
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
        let prefill_end = {
            let rb = &self.requests[&id];
            (rb.prompt as u64).max((known as u64).saturating_sub(1))
        };
        let total = |m: &Self, tokens: u64, cap: bool| -> u64 {
            let rb = &m.requests[&id];
            (0..groups)
                .map(|g| {
                    let hits = hits_of(g);
                    m.group_blocks_to_allocate(h, rb, g, tokens, computed, cap, hits, prefill_end)
                })
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
                let skip = (skipped_tokens(h.kinds[g], computed, h.mamba_align) / bs) as usize;
                let hits = hits_of(g);
                let kept = &hits[skip.min(hits.len())..];
                for &b in kept.iter().filter(|&&b| b != NULL) {
                    self.pool.touch(&[b], &[]);
                }
                t.blocks.resize(skip, NULL);
                t.blocks.extend_from_slice(kept);
                t.num_cached = t.blocks.len();
            }
            if h.kinds[g] == LayerAttention::Linear {
                self.allocate_linear(h, t, need_slot, computed, prefill_end);
                continue;
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
                // The state block ending at the prompt's last block boundary below its
                // last token (`reachable_block_mask`, retention interval 0); its junction
                // state exists only with vLLM's opt-in shared-prefix checkpoints.
                LayerAttention::Linear => {
                    let end = (prompt.saturating_sub(1) / bs) as usize;
                    (end.saturating_sub(1)..end, 0..0)
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
            t.reset();
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
                match k {
                    // `MambaSpec.max_memory_usage_bytes`: 2 state blocks and a checkpoint
                    // block in align mode, one block in "none" mode.
                    LayerAttention::Linear => {
                        n.min(if h.mamba_align { MAMBA_PEAK_BLOCKS } else { 1 })
                    }
                    _ => h.admission_cap(k, bs).map_or(n, |c| n.min(c)),
                }
            })
            .sum()
    }
}

/// Most blocks a request holds in one linear-attention group in align mode: the state
/// blocks of this step and the last, and the prefill's checkpoint block
/// (`MambaSpec.max_memory_usage_bytes`: `2 + num_speculative_blocks +
/// num_prefill_checkpoint_blocks` pages, without speculative decoding).
pub const MAMBA_PEAK_BLOCKS: u64 = 3;

/// Where a prefill chunk of tokens `[start, end)` writes its internal checkpoint, the state
/// at the last block boundary below `end` (`get_mamba_prefill_checkpoint_position`), when
/// the GDN kernel can export it there (`is_mamba_prefill_checkpoint_valid`): the chunk
/// starts on a block boundary, the checkpoint lies a block or more past its start on a
/// multiple of the kernel's alignment, and in a later block than the chunk's initial state.
/// Returns the checkpoint in tokens and its block index.
pub(crate) fn prefill_checkpoint(start: u64, end: u64, bs: u64) -> Option<(u64, u64)> {
    if end == 0 || bs == 0 {
        return None;
    }
    let cp = (end - 1) / bs * bs;
    let col = end.div_ceil(bs) as i64 - 2;
    let initial = if start == 0 {
        -1
    } else {
        ((start - 1) / bs) as i64
    };
    let align = GDN_PREFILL_CHECKPOINT_ALIGNMENT as u64;
    let valid = start.is_multiple_of(bs)
        && col > initial
        && start + bs <= cp
        && start < cp
        && cp < end
        && (cp - start).is_multiple_of(align);
    (valid && col >= 0).then_some((cp, col as u64))
}

/// Free a linear-attention table's state blocks below the one of the last of `processed`
/// settled tokens, newest first (`MambaManager.remove_skipped_blocks`: the range below
/// `processed - 1`, null gaps skipped, and the previous step's state block).
fn retire_states(pool: &mut super::BlockPool, t: &mut GroupTable, processed: u64, bs: u64) {
    if processed == 0 {
        return;
    }
    let k = (((processed - 1) / bs) as usize).min(t.blocks.len());
    if t.retired < k {
        let range = &mut t.blocks[t.retired..k];
        pool.free_blocks(range.iter().rev().copied().filter(|&b| b != NULL), |_| {
            NEVER
        });
        range.fill(NULL);
        t.retired = k;
    }
    if let Some(i) = t.last_state {
        if (i as u64) < processed.div_ceil(bs) - 1 && t.blocks[i] != NULL {
            pool.free_blocks(std::iter::once(t.blocks[i]), |_| NEVER);
            t.blocks[i] = NULL;
        }
    }
}

impl KvCacheManager {
    /// The internal checkpoint block index of a chunk `[start, end)` in table `t`, if it
    /// writes one (`_needs_internal_checkpoint`): the chunk reaches the end of the prefill
    /// and the checkpoint's entry is past the table or null.
    fn checkpoint_index(
        t: &GroupTable,
        start: u64,
        end: u64,
        prefill_end: u64,
        bs: u64,
    ) -> Option<usize> {
        if end < prefill_end {
            return None;
        }
        let (_, col) = prefill_checkpoint(start, end, bs)?;
        let col = col as usize;
        (col >= t.blocks.len() || t.blocks[col] == NULL).then_some(col)
    }

    /// Blocks a linear-attention group must take for `num_tokens` (`MambaManager
    /// .get_num_blocks_to_allocate`): in align mode the missing entries, at most one state
    /// block plus the checkpoint block, and the evictable hit; in "none" mode one block
    /// the first time.
    fn linear_blocks_to_allocate(
        &self,
        h: &Hybrid,
        t: &GroupTable,
        num_tokens: u64,
        computed: u64,
        hits: &[BlockId],
        prefill_end: u64,
    ) -> u64 {
        if !h.mamba_align {
            return u64::from(num_tokens > 0).saturating_sub(t.blocks.len() as u64);
        }
        let bs = self.block_size as u64;
        let required = num_tokens.div_ceil(bs);
        let checkpoint = Self::checkpoint_index(t, computed, num_tokens, prefill_end, bs).is_some();
        let mut new = required.saturating_sub(hits.len() as u64 + t.blocks.len() as u64);
        if new > 0 {
            new = new.min(1 + checkpoint as u64);
        }
        let evictable = hits
            .iter()
            .filter(|&&b| b != NULL && self.pool.ref_cnt(b) == 0)
            .count() as u64;
        new + evictable
    }

    /// Give a linear-attention table room for `num_tokens` (`MambaManager
    /// .allocate_new_blocks`): remember the current state block as the previous one, pad
    /// with nulls up to the new state block (the checkpoint's entry aside) and take the
    /// new blocks.
    fn allocate_linear(
        &mut self,
        h: &Hybrid,
        t: &mut GroupTable,
        num_tokens: u64,
        computed: u64,
        prefill_end: u64,
    ) {
        if !h.mamba_align {
            if t.blocks.is_empty() && num_tokens > 0 {
                self.pool.get_new_blocks(1, &mut t.blocks);
            }
            return;
        }
        let bs = self.block_size as u64;
        let required = num_tokens.div_ceil(bs) as usize;
        let checkpoint = Self::checkpoint_index(t, computed, num_tokens, prefill_end, bs).is_some();
        if required <= t.blocks.len() && !checkpoint {
            return;
        }
        let prev = t.blocks.len();
        if prev > 0 {
            t.last_state = Some(prev - 1);
        }
        let skipped = required.saturating_sub(1);
        if prev < skipped {
            t.blocks.resize(skipped - checkpoint as usize, NULL);
        }
        let k = required.saturating_sub(t.blocks.len());
        if k > 0 {
            self.pool.get_new_blocks(k as u32, &mut t.blocks);
        }
    }
}

/// A request's tables for `groups` groups, empty.
pub(super) fn reset_tables(rb: &mut RequestBlocks, groups: usize) {
    rb.groups.resize_with(groups, GroupTable::default);
    for t in &mut rb.groups {
        t.reset();
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

    const LIN: LayerAttention = LayerAttention::Linear;

    /// Qwen3-Next's groups at TP 1: 3 linear-attention groups and 1 full, blocks of 576.
    fn qwen3_next(blocks: u32) -> KvCacheManager {
        let mut m = KvCacheManager::new(blocks, 576, true, true);
        m.set_groups(vec![LIN, LIN, LIN, LayerAttention::Full], 16384, 262_144);
        m
    }

    fn live(t: &GroupTable) -> usize {
        t.blocks.iter().filter(|&&b| b != NULL).count()
    }

    /// A 1,300-token prompt in one chunk: the state table is [null, checkpoint, state],
    /// the checkpoint (the state after 1,152 = floor(1299 / 576) 576 tokens) is the one
    /// block cached; replayed, the hit is 1,152 tokens. A prompt sharing only its first
    /// block misses: no state block is cached within 576 tokens.
    #[test]
    fn linear_attention_hits_at_the_prompts_last_block_boundary() {
        let mut m = qwen3_next(200);
        m.add_request(1, 1, hashes(3));
        m.set_prompt(1, 1300);
        assert!(m.allocate_slots(1, 0, 1300, None, Some(1300), 0, 1300, 0));
        let t = &m.requests[&1].groups;
        for g in &t[..3] {
            assert_eq!(g.blocks.len(), 3);
            assert_eq!(g.blocks[0], NULL);
            assert_eq!(live(g), 2);
        }
        assert_eq!(t[3].blocks.len(), 3);
        assert_eq!(m.audit().unwrap().used, 9);
        m.free(1);
        m.remove_request(1);
        m.add_request(2, 2, hashes(3));
        m.set_prompt(2, 1300);
        let hit = m.get_computed_blocks(2, 1300);
        assert_eq!(hit.tokens, 1152);
        assert!(m.allocate_slots(2, 0, 1300 - 1152, Some(hit), Some(1300), 0, 1300, 0));
        m.audit().unwrap();
        m.free(2);
        m.remove_request(2);
        m.add_request(3, 3, |v| v.extend([1, 10_001, 10_003]));
        m.set_prompt(3, 1300);
        assert_eq!(m.get_computed_blocks(3, 1300).tokens, 0);
    }

    /// A prompt of 10,000 tokens in chunks of 8,064 (clipped to a block boundary) and
    /// 1,936, then 3,000 decoded tokens with asynchronous scheduling (one step in flight):
    /// each linear group holds at most 3 blocks (2 once the prefill has settled), the full
    /// group one per 576 tokens, and the pool's count is the tables' at every step.
    #[test]
    fn linear_attention_holds_at_most_three_blocks_per_group() {
        let mut m = qwen3_next(400);
        let (p, o) = (10_000u32, 3_000u32);
        m.add_request(1, 1, hashes(((p + o) / 576) as u64));
        m.set_prompt(1, p);
        assert_eq!(m.mamba_split(0, 8192, p, p, 8192), 8064);
        assert!(m.allocate_slots(1, 0, 8064, None, Some(p), 0, p, 0));
        assert!(m.allocate_slots(1, 8064, p - 8064, None, None, 0, p, 8064));
        let mut peak = 0;
        for g in 0..3 {
            let t = &m.requests[&1].groups[g];
            assert_eq!(live(t), 3, "state 8064, checkpoint 9792, state 10000");
        }
        for computed in p..p + o - 1 {
            let in_flight = if computed == p { p - 8064 } else { 1 };
            assert!(m.allocate_slots(1, computed, 1, None, None, 0, computed + 1, in_flight));
            let t = &m.requests[&1].groups;
            for g in &t[..3] {
                peak = peak.max(live(g));
                // Once the prefill has settled: this step's state block and the last one.
                if computed > p {
                    assert!(live(g) <= 2, "step {computed}");
                }
            }
            assert_eq!(t[3].blocks.len(), (computed as usize + 1).div_ceil(576));
            let c = m.audit().unwrap();
            let held: usize = t.iter().map(live).sum();
            assert_eq!(c.used as usize, held);
        }
        // The first decode step still holds the prefill's three (its last chunk in flight).
        assert_eq!(peak, MAMBA_PEAK_BLOCKS as usize);
        m.free(1);
        assert_eq!(m.audit().unwrap().used, 0);
    }

    /// Prefix caching off ("none" mode): one block per linear group for the request's life.
    #[test]
    fn linear_attention_without_prefix_caching_keeps_one_block() {
        let mut m = KvCacheManager::new(100, 544, false, true);
        m.set_groups(vec![LIN, LIN, LIN, LayerAttention::Full], 16384, 262_144);
        m.add_request(1, 1, |_| {});
        m.set_prompt(1, 2000);
        assert!(m.allocate_slots(1, 0, 2000, None, Some(2000), 0, 2000, 0));
        for c in 2000..3000 {
            assert!(m.allocate_slots(1, c, 1, None, None, 0, c + 1, 1));
        }
        let t = &m.requests[&1].groups;
        assert!(t[..3].iter().all(|t| t.blocks.len() == 1 && live(t) == 1));
        assert_eq!(t[3].blocks.len(), 3000usize.div_ceil(544));
        assert_eq!(m.mamba_split(0, 8192, 9000, 9000, 8192), 8192);
    }
}
