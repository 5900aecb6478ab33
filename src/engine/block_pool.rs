//! The block pool, after vLLM v1's `block_pool.py`: fixed KV blocks with reference counts,
//! a free queue that doubles as the LRU eviction order of cached blocks, and the map from
//! block hash to cached block.
//!
//! Rules (vLLM 0.33.0, `vllm/v1/core/block_pool.py`, `BlockPool` and `BlockHashToBlockMap`):
//! - block 0 is the null block and is never handed out;
//! - new blocks are taken from the head of the free queue; a taken block that still holds a
//!   hash is evicted from the cache at that moment;
//! - a hit on a cached block with reference count 0 removes it from the free queue ("touch");
//! - freed blocks whose count reaches 0 go to the tail if they have a hash, to the head if
//!   they do not (`free_blocks` prepends blocks without a hash), in the order given;
//! - the hash map keeps every block registered under a hash (`BlockHashToBlockMap`): two
//!   requests that compute the same content each keep their own block; evicting one drops
//!   only that block, and a lookup returns the earliest registered block that is left.
//!
//! With a [`PolicyEvictor`] (scenario `kv_cache.eviction: <policy>`), every cached content
//! is a page of the policy: it enters when a block is registered (in use), each hit reaches
//! the policy, and a block's release makes its content evictable there; the free queue then
//! holds only empty blocks, which are always reused first, and the policy picks the victim
//! when none is left. In this mode a content is held by one block: a block computed again
//! while a copy is cached counts as a hit of the copy and stays unregistered (freed empty).
//!
//! With a policy that remembers evicted contents (ghost lists, [`PolicyEvictor::has_ghosts`]),
//! the hash map names each content's *page id* instead of its block, and the evictor's
//! record of the id names the block caching it (none once evicted). An evicted content still
//! remembered is then a *ghost entry*, with no map write at eviction, so that a content
//! computed again gets back the id the policy knows it by, found by the same probe that
//! registers it. Ghost entries are never lookup hits, and are dropped when the policy forgets
//! the content (its id is freed).
//!
//! Next uses (`next_uses`, one per block given, in the same order; empty for "unknown")
//! feed policies that look ahead (Belady, oracle predictions).

use super::content_map::ContentMap;
use super::evictor::PolicyEvictor;
use crate::paging::NEVER;

/// Index of a block in the pool.
pub type BlockId = u32;

const NIL: u32 = u32::MAX;

#[derive(Debug, Clone)]
struct Block {
    ref_cnt: u32,
    /// Content hash, 0 when the block holds no full, registered content.
    hash: u64,
    prev: u32,
    next: u32,
    /// Next and previous block registered under the same hash (registration order).
    dup_next: u32,
    dup_prev: u32,
    in_free_queue: bool,
    /// Held by the policy evictor (evictable cached block).
    in_policy: bool,
    /// With a policy: the page id of the content it holds.
    page: u32,
}

/// Counts of blocks by state. `used + cached + free == total` always holds.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct BlockCounts {
    /// Usable blocks (all but the null block).
    pub total: u32,
    /// Blocks referenced by at least one request.
    pub used: u32,
    /// Unreferenced blocks that still hold cached content (evictable).
    pub cached: u32,
    /// Unreferenced blocks without content.
    pub free: u32,
}

/// The blocks registered under one hash, in registration order (an intrusive list through
/// `Block::dup_next`). With a policy that has ghost lists, an entry instead names the
/// content's page id (`first == NIL`, the id in `last`), and the policy evictor its block,
/// if it is still cached ([`PolicyEvictor::block_of`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct HashEntry {
    first: BlockId,
    last: BlockId,
}

impl HashEntry {
    /// No entry (a vacant slot of the map).
    const VACANT: HashEntry = HashEntry {
        first: NIL,
        last: NIL,
    };

    /// The entry of the content known to the policy as `page`.
    fn of_page(page: u32) -> Self {
        HashEntry {
            first: NIL,
            last: page,
        }
    }

    /// The page id, for an entry that names one.
    fn page(&self) -> Option<u32> {
        (self.first == NIL).then_some(self.last)
    }
}

/// The pool of KV blocks.
#[derive(Debug)]
pub struct BlockPool {
    blocks: Vec<Block>,
    head: u32,
    tail: u32,
    num_free: u32,
    num_free_hashed: u32,
    cached: ContentMap<HashEntry>,
    free_unhashed_first: bool,
    evictions: u64,
    scratch: Vec<BlockId>,
    evictor: Option<PolicyEvictor>,
    /// Contents evicted since the last `take_evicted` (kept only when asked to).
    evicted: Option<Vec<u64>>,
    /// The policy has ghost lists: entries of `cached` name page ids, and evicted contents
    /// leave ghost entries.
    ghosts: bool,
    /// Page ids the policy freed (with their contents), whose ghost entries are dropped.
    freed: Vec<(u32, u64)>,
}

impl BlockPool {
    /// A pool of `num_blocks` blocks (including the null block), all free.
    pub fn new(num_blocks: u32, free_unhashed_first: bool) -> Self {
        assert!(num_blocks >= 2, "need the null block and at least one more");
        let mut pool = BlockPool {
            blocks: vec![
                Block {
                    ref_cnt: 0,
                    hash: 0,
                    prev: NIL,
                    next: NIL,
                    dup_next: NIL,
                    dup_prev: NIL,
                    in_free_queue: false,
                    in_policy: false,
                    page: NIL,
                };
                num_blocks as usize
            ],
            head: NIL,
            tail: NIL,
            num_free: 0,
            num_free_hashed: 0,
            cached: ContentMap::new(HashEntry::VACANT),
            free_unhashed_first,
            evictions: 0,
            scratch: Vec::new(),
            evictor: None,
            evicted: None,
            ghosts: false,
            freed: Vec::new(),
        };
        pool.blocks[0].ref_cnt = 1; // the null block
        for id in 1..num_blocks {
            pool.push_back(id);
        }
        pool
    }

    fn push_back(&mut self, id: BlockId) {
        let b = &mut self.blocks[id as usize];
        debug_assert!(!b.in_free_queue);
        b.in_free_queue = true;
        b.prev = self.tail;
        b.next = NIL;
        if self.tail == NIL {
            self.head = id;
        } else {
            self.blocks[self.tail as usize].next = id;
        }
        self.tail = id;
        self.num_free += 1;
        if self.blocks[id as usize].hash != 0 {
            self.num_free_hashed += 1;
        }
    }

    fn push_front(&mut self, id: BlockId) {
        let b = &mut self.blocks[id as usize];
        debug_assert!(!b.in_free_queue);
        b.in_free_queue = true;
        b.next = self.head;
        b.prev = NIL;
        if self.head == NIL {
            self.tail = id;
        } else {
            self.blocks[self.head as usize].prev = id;
        }
        self.head = id;
        self.num_free += 1;
        if self.blocks[id as usize].hash != 0 {
            self.num_free_hashed += 1;
        }
    }

    fn unlink(&mut self, id: BlockId) {
        let (prev, next) = {
            let b = &self.blocks[id as usize];
            debug_assert!(b.in_free_queue);
            (b.prev, b.next)
        };
        if prev == NIL {
            self.head = next;
        } else {
            self.blocks[prev as usize].next = next;
        }
        if next == NIL {
            self.tail = prev;
        } else {
            self.blocks[next as usize].prev = prev;
        }
        let b = &mut self.blocks[id as usize];
        b.in_free_queue = false;
        b.prev = NIL;
        b.next = NIL;
        self.num_free -= 1;
        if b.hash != 0 {
            self.num_free_hashed -= 1;
        }
    }

    /// Blocks in the free queue (free plus evictable cached).
    pub fn num_free_blocks(&self) -> u32 {
        self.num_free
    }

    /// Usable blocks (excluding the null block).
    pub fn num_usable_blocks(&self) -> u32 {
        self.blocks.len() as u32 - 1
    }

    /// Cached blocks evicted so far.
    pub fn evictions(&self) -> u64 {
        self.evictions
    }

    /// Block counts by state, from the running counters.
    pub fn counts(&self) -> BlockCounts {
        let total = self.num_usable_blocks();
        BlockCounts {
            total,
            used: total - self.num_free,
            cached: self.num_free_hashed,
            free: self.num_free - self.num_free_hashed,
        }
    }

    /// The cached block holding content `hash`, if any: the earliest registered one left.
    pub fn get_cached_block(&self, hash: u64) -> Option<BlockId> {
        self.cached.get(&hash).and_then(|&e| self.block_of(e))
    }

    /// The block holding the content of map entry `e`; none for a ghost.
    fn block_of(&self, e: HashEntry) -> Option<BlockId> {
        match e.page() {
            Some(page) => self.evictor.as_ref().and_then(|ev| ev.block_of(page)),
            None => Some(e.first),
        }
    }

    /// Take block `id` (registered under `hash`) out of the hash map.
    fn unregister(&mut self, id: BlockId, hash: u64) {
        if self.ghosts {
            // One block per content, evicted by the policy (which knows it no longer
            // caches it); the entry, naming the page id, stays as its ghost.
            return;
        }
        let (prev, next) = {
            let b = &mut self.blocks[id as usize];
            let links = (b.dup_prev, b.dup_next);
            b.dup_prev = NIL;
            b.dup_next = NIL;
            links
        };
        if prev != NIL {
            self.blocks[prev as usize].dup_next = next;
        }
        if next != NIL {
            self.blocks[next as usize].dup_prev = prev;
        }
        if prev == NIL && next == NIL {
            self.cached.remove(&hash);
        } else if let Some(e) = self.cached.get_mut(&hash) {
            if prev == NIL {
                e.first = next;
            }
            if next == NIL {
                e.last = prev;
            }
        }
    }

    /// Reference count of a block.
    pub fn ref_cnt(&self, id: BlockId) -> u32 {
        self.blocks[id as usize].ref_cnt
    }

    /// Take `n` blocks from the head of the free queue, evicting cached content, and append
    /// them to `out` with reference count 1. The caller checks that enough are free.
    pub fn get_new_blocks(&mut self, n: u32, out: &mut Vec<BlockId>) {
        self.get_new_blocks_for(n, out, &[]);
    }

    /// [`BlockPool::get_new_blocks`] for blocks that will hold the contents `incoming`, in
    /// order (shorter than `n` when some will hold content not known yet): a policy told the
    /// content it evicts for can act on a miss of a page it remembers.
    pub fn get_new_blocks_for(&mut self, n: u32, out: &mut Vec<BlockId>, incoming: &[u64]) {
        assert!(
            n <= self.num_free,
            "asked for {n} blocks with {} free",
            self.num_free
        );
        for j in 0..n as usize {
            let id = if self.head != NIL || self.evictor.is_none() {
                let id = self.head;
                self.unlink(id);
                id
            } else {
                let remembered = incoming
                    .get(j)
                    .filter(|_| self.ghosts)
                    .and_then(|h| self.cached.get(h))
                    .filter(|&&e| self.block_of(e).is_none())
                    .and_then(|e| e.page());
                self.take_policy_victim(remembered)
            };
            let b = &mut self.blocks[id as usize];
            if b.hash != 0 {
                let h = std::mem::take(&mut b.hash);
                self.unregister(id, h);
                self.evictions += 1;
                if let Some(ev) = &mut self.evicted {
                    ev.push(h);
                }
            }
            self.blocks[id as usize].ref_cnt = 1;
            out.push(id);
        }
    }

    /// Remember the content of every evicted block until [`BlockPool::take_evicted`] (for
    /// a lower tier that stores them).
    pub fn record_evictions(&mut self) {
        self.evicted.get_or_insert_with(Vec::new);
    }

    /// Move the contents evicted since the last call into `out`.
    pub fn take_evicted(&mut self, out: &mut Vec<u64>) {
        if let Some(ev) = &mut self.evicted {
            out.append(ev);
        }
    }

    /// Use a policy to choose which evictable cached block to drop.
    pub fn set_evictor(&mut self, evictor: PolicyEvictor) {
        self.ghosts = evictor.has_ghosts();
        self.evictor = Some(evictor);
    }

    /// Drop the ghost entries of the page ids the policy freed (before any reuse of them).
    fn drop_freed_ghosts(&mut self) {
        let Some(ev) = self.evictor.as_mut() else {
            return;
        };
        if !ev.has_freed() {
            return;
        }
        let mut freed = std::mem::take(&mut self.freed);
        ev.take_freed(&mut freed);
        for &(page, hash) in &freed {
            if self.cached.get(&hash) == Some(&HashEntry::of_page(page)) {
                self.cached.remove(&hash);
            }
        }
        freed.clear();
        self.freed = freed;
    }

    /// The eviction policy's name: `vllm` (the free queue) or the policy's.
    pub fn eviction_name(&self) -> &str {
        self.evictor.as_ref().map_or("vllm", |e| e.name())
    }

    /// The policy evictor, if any.
    pub fn evictor_mut(&mut self) -> Option<&mut PolicyEvictor> {
        self.evictor.as_mut()
    }

    /// The policy evictor, if any (read only).
    pub fn evictor(&self) -> Option<&PolicyEvictor> {
        self.evictor.as_ref()
    }

    fn take_policy_victim(&mut self, incoming: Option<u32>) -> BlockId {
        let ev = self.evictor.as_mut().expect("policy mode");
        let id = ev.evict(incoming);
        let b = &mut self.blocks[id as usize];
        assert!(
            b.in_policy && b.ref_cnt == 0,
            "the eviction policy chose content in use"
        );
        b.in_policy = false;
        self.num_free -= 1;
        self.num_free_hashed -= 1;
        id
    }

    /// Add a reference to each block (prefix-cache hits), taking unreferenced ones out of the
    /// free queue (or, with a policy, out of its evictable set), and report each hit to the
    /// policy.
    pub fn touch(&mut self, ids: &[BlockId], next_uses: &[u64]) {
        for (i, &id) in ids.iter().enumerate() {
            let b = &mut self.blocks[id as usize];
            if let Some(ev) = self.evictor.as_mut() {
                if b.in_policy {
                    b.in_policy = false;
                    self.num_free -= 1;
                    self.num_free_hashed -= 1;
                    ev.pin(b.page);
                }
                ev.hit(b.page, next_uses.get(i).copied().unwrap_or(NEVER));
            } else if b.ref_cnt == 0 {
                self.unlink(id);
            }
            self.blocks[id as usize].ref_cnt += 1;
        }
    }

    /// Drop one reference from each block, in eviction-priority order (first evicted first);
    /// `next_use(i)` is when the `i`-th block's content is next requested.
    pub fn free_blocks(
        &mut self,
        ordered: impl Iterator<Item = BlockId>,
        next_use: impl Fn(usize) -> u64,
    ) {
        let mut unhashed = std::mem::take(&mut self.scratch);
        unhashed.clear();
        for (i, id) in ordered.enumerate() {
            let b = &mut self.blocks[id as usize];
            debug_assert!(b.ref_cnt > 0 && id != 0);
            b.ref_cnt -= 1;
            if b.ref_cnt == 0 {
                if let Some(ev) = self.evictor.as_mut() {
                    if b.hash != 0 {
                        b.in_policy = true;
                        self.num_free += 1;
                        self.num_free_hashed += 1;
                        ev.unpin(b.page, next_use(i));
                    } else {
                        unhashed.push(id);
                    }
                } else if b.hash == 0 && self.free_unhashed_first {
                    unhashed.push(id);
                } else {
                    self.push_back(id);
                }
            }
        }
        // Prepend as a group, keeping the given order at the head.
        for &id in unhashed.iter().rev() {
            self.push_front(id);
        }
        self.scratch = unhashed;
    }

    /// Register a full block's content hash. If other blocks already hold the same content,
    /// all stay registered (vLLM does not deduplicate); lookups return the earliest. With a
    /// policy, the content enters it in use; content cached already is a hit of it instead
    /// and the block stays unregistered.
    pub fn cache_block(&mut self, id: BlockId, hash: u64, next_use: u64) {
        debug_assert!(hash != 0);
        debug_assert!(
            !self.blocks[id as usize].in_free_queue && self.blocks[id as usize].hash == 0
        );
        if self.ghosts {
            self.cache_page(id, hash, next_use);
            return;
        }
        // A cached copy, or room for the first.
        match self.cached.get_mut(&hash) {
            Some(e) => {
                let entry = *e;
                if let Some(ev) = self.evictor.as_mut() {
                    ev.hit(self.blocks[entry.first as usize].page, next_use);
                    return;
                }
                e.last = id;
                self.blocks[entry.last as usize].dup_next = id;
                self.blocks[id as usize].dup_prev = entry.last;
            }
            None => {
                self.cached.insert(
                    hash,
                    HashEntry {
                        first: id,
                        last: id,
                    },
                );
                if let Some(ev) = self.evictor.as_mut() {
                    self.blocks[id as usize].page = ev.insert(hash, next_use, None, id);
                }
            }
        }
        self.blocks[id as usize].hash = hash;
    }

    /// [`BlockPool::cache_block`] with a policy that has ghost lists: the map's entry names
    /// the content's page id, which a remembered (ghost) content keeps.
    fn cache_page(&mut self, id: BlockId, hash: u64, next_use: u64) {
        let entry = self.cached.get(&hash).copied();
        let ev = self
            .evictor
            .as_mut()
            .expect("ghost lists come with a policy");
        let ghost = match entry {
            Some(e) => {
                let page = e.page().expect("entries name page ids");
                if ev.block_of(page).is_some() {
                    ev.hit(page, next_use);
                    return;
                }
                Some(page)
            }
            None => None,
        };
        let page = ev.insert(hash, next_use, ghost, id);
        let b = &mut self.blocks[id as usize];
        b.hash = hash;
        b.page = page;
        // Freed ids are dropped before the new entry goes in (one may be `page` itself).
        self.drop_freed_ghosts();
        if ghost.is_none() {
            self.cached.insert(hash, HashEntry::of_page(page));
        }
    }

    /// Recount every block from scratch and compare with the running counters and the free
    /// queue. Returns a description of the first inconsistency.
    pub fn audit(&self) -> Result<BlockCounts, String> {
        let mut in_queue = 0u32;
        let mut cur = self.head;
        let mut prev = NIL;
        while cur != NIL {
            let b = &self.blocks[cur as usize];
            if !b.in_free_queue || b.ref_cnt != 0 || b.prev != prev {
                return Err(format!(
                    "block {cur} in the free queue is inconsistent: {b:?}"
                ));
            }
            in_queue += 1;
            prev = cur;
            cur = b.next;
        }
        if prev != self.tail {
            return Err("free queue tail is wrong".into());
        }
        let (mut used, mut cached, mut free) = (0u32, 0u32, 0u32);
        for (id, b) in self.blocks.iter().enumerate().skip(1) {
            match (b.ref_cnt, b.hash != 0) {
                (0, true) => cached += 1,
                (0, false) => free += 1,
                _ => used += 1,
            }
            if (b.ref_cnt == 0) != (b.in_free_queue || b.in_policy)
                || (b.in_free_queue && b.in_policy)
            {
                return Err(format!(
                    "block {id}: ref_cnt {} but in_free_queue {}",
                    b.ref_cnt, b.in_free_queue
                ));
            }
        }
        let mut registered = 0u64;
        let mut ghosts = 0u64;
        for (h, e) in self.cached.iter() {
            if let Some(page) = e.page() {
                let known =
                    self.ghosts && self.evictor.as_ref().is_some_and(|ev| ev.id_holds(page, h));
                if !known {
                    return Err(format!(
                        "the entry of hash {h:x} names page {page} the policy does not know it by"
                    ));
                }
                match self.block_of(*e) {
                    None => ghosts += 1,
                    Some(b)
                        if self.blocks[b as usize].hash == h
                            && self.blocks[b as usize].page == page =>
                    {
                        registered += 1
                    }
                    Some(b) => {
                        return Err(format!(
                        "page {page} of hash {h:x} is said to be in block {b}, which holds {:x}",
                        self.blocks[b as usize].hash
                    ))
                    }
                }
                continue;
            }
            let (mut cur, mut prev) = (e.first, NIL);
            while cur != NIL {
                let b = &self.blocks[cur as usize];
                if b.hash != h || b.dup_prev != prev {
                    return Err(format!(
                        "cache map lists block {cur} under hash {h:x} but it holds {:x}",
                        b.hash
                    ));
                }
                registered += 1;
                prev = cur;
                cur = b.dup_next;
            }
            if prev != e.last {
                return Err(format!(
                    "cache map list of hash {h:x} ends at the wrong block"
                ));
            }
        }
        let hashed = self.blocks.iter().filter(|b| b.hash != 0).count() as u64;
        if registered != hashed {
            return Err(format!(
                "{hashed} blocks hold a hash but the cache map lists {registered}"
            ));
        }
        let counts = BlockCounts {
            total: self.num_usable_blocks(),
            used,
            cached,
            free,
        };
        let in_policy = self.blocks.iter().filter(|b| b.in_policy).count() as u32;
        if let Some(ev) = &self.evictor {
            if ev.len() as u64 != hashed {
                return Err(format!(
                    "the policy holds {} contents but {hashed} blocks hold one",
                    ev.len()
                ));
            }
            if self.ghosts && (ev.live_ids() - ev.len()) as u64 != ghosts {
                return Err(format!(
                    "the policy remembers {} evicted contents but the map has {ghosts} ghosts",
                    ev.live_ids() - ev.len()
                ));
            }
        }
        if counts != self.counts()
            || in_queue + in_policy != self.num_free
            || used + cached + free != counts.total
        {
            return Err(format!(
                "block counts drifted: recounted {counts:?}, tracked {:?}",
                self.counts()
            ));
        }
        Ok(counts)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lru_order_and_unhashed_first() {
        let mut p = BlockPool::new(5, true); // usable 1..=4
        let mut a = Vec::new();
        p.get_new_blocks(4, &mut a);
        assert_eq!(a, vec![1, 2, 3, 4]);
        p.cache_block(1, 11, NEVER);
        p.cache_block(2, 12, NEVER);
        // Free tail-first as vLLM does: 4 (unhashed), 3 (unhashed), 2, 1.
        p.free_blocks(a.iter().rev().copied(), |_| NEVER);
        let c = p.audit().unwrap();
        assert_eq!((c.used, c.cached, c.free), (0, 2, 2));
        // Unhashed blocks come out first, then the hashed ones in LRU order (2 before 1).
        let mut b = Vec::new();
        p.get_new_blocks(3, &mut b);
        assert_eq!(b, vec![4, 3, 2]);
        assert_eq!(p.get_cached_block(12), None, "block 2 was evicted");
        assert_eq!(p.get_cached_block(11), Some(1));
        assert_eq!(p.evictions(), 1);
        p.audit().unwrap();
    }

    #[test]
    fn touch_removes_from_free_queue() {
        let mut p = BlockPool::new(3, true);
        let mut a = Vec::new();
        p.get_new_blocks(1, &mut a);
        p.cache_block(a[0], 7, NEVER);
        p.free_blocks(a.iter().copied(), |_| NEVER);
        assert_eq!(p.num_free_blocks(), 2);
        p.touch(&[a[0]], &[]);
        assert_eq!(p.num_free_blocks(), 1);
        assert_eq!(p.ref_cnt(a[0]), 1);
        p.touch(&[a[0]], &[]);
        assert_eq!(p.ref_cnt(a[0]), 2);
        p.free_blocks([a[0], a[0]].into_iter(), |_| NEVER);
        assert_eq!(p.audit().unwrap().cached, 1);
    }

    #[test]
    fn ghost_entries_keep_page_ids_and_are_not_hits() {
        use super::super::evictor::BlockPredictions;
        use crate::paging::PolicyParams;
        let entry = crate::paging::policies::entry("arc").unwrap();
        let policy = (entry.build)(&PolicyParams::new(2, 0, 1));
        let mut p = BlockPool::new(3, true); // usable 1..=2
        p.set_evictor(PolicyEvictor::new("arc", policy, BlockPredictions::None, 1));
        let mut a = Vec::new();
        p.get_new_blocks(2, &mut a);
        p.cache_block(a[0], 11, NEVER);
        p.cache_block(a[1], 12, NEVER);
        let pages = [p.blocks[a[0] as usize].page, p.blocks[a[1] as usize].page];
        p.free_blocks(a.iter().copied(), |_| NEVER);
        p.audit().unwrap();
        // One eviction: its content leaves a ghost entry, which is no lookup hit.
        let mut b = Vec::new();
        p.get_new_blocks(1, &mut b);
        let gone = [11u64, 12]
            .iter()
            .position(|&h| p.get_cached_block(h).is_none());
        let gone = gone.expect("one content was evicted");
        let entry = *p.cached.get(&[11u64, 12][gone]).expect("a ghost entry");
        assert_eq!(entry.page(), Some(pages[gone]));
        assert_eq!(p.block_of(entry), None);
        p.audit().unwrap();
        // Computed again, the content gets back the page id the policy remembers.
        p.cache_block(b[0], [11u64, 12][gone], NEVER);
        assert_eq!(p.blocks[b[0] as usize].page, pages[gone]);
        assert_eq!(p.get_cached_block([11u64, 12][gone]), Some(b[0]));
        p.audit().unwrap();
    }

    #[test]
    fn duplicate_blocks_stay_reachable_after_the_first_is_evicted() {
        let mut p = BlockPool::new(5, true); // usable 1..=4
        let mut a = Vec::new();
        p.get_new_blocks(2, &mut a);
        // Two requests computed the same content in blocks 1 and 2.
        p.cache_block(1, 42, NEVER);
        p.cache_block(2, 42, NEVER);
        assert_eq!(p.get_cached_block(42), Some(1), "the earliest registered");
        p.free_blocks([1].into_iter(), |_| NEVER);
        p.audit().unwrap();
        // Block 1 is the only evictable block with a hash: taking 3 blocks reuses 3, 4, 1.
        let mut b = Vec::new();
        p.get_new_blocks(3, &mut b);
        assert_eq!(b, vec![3, 4, 1]);
        assert_eq!(p.get_cached_block(42), Some(2), "the duplicate is left");
        p.audit().unwrap();
        p.free_blocks([2].into_iter(), |_| NEVER);
        let mut c = Vec::new();
        p.get_new_blocks(1, &mut c);
        assert_eq!(p.get_cached_block(42), None);
        p.audit().unwrap();
    }
}
