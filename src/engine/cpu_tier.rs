//! The CPU-memory tier of the KV cache (after vLLM's native KV offloading,
//! `vllm/v1/kv_offload/`): block contents evicted from the GPU are stored in host memory, a
//! prefix lookup that stops at a GPU miss continues in this tier, and hits are loaded back
//! over the host link. The tier holds a fixed number of blocks and drops one by its own
//! policy (LRU or ARC as vLLM's offloading managers, or any paging-lab policy).

use crate::idhash::BlockHashMap;
use crate::paging::{make_policy, Eviction, PolicyParams, Req, NEVER};

/// Block contents in host memory.
pub struct CpuTier {
    name: String,
    policy: Box<dyn Eviction>,
    capacity: usize,
    /// Dense content id of every hash held (or remembered by the policy's ghost lists).
    ids: BlockHashMap<u32>,
    hashes: Vec<u64>,
    /// Ids free for reuse: a policy without ghost lists forgets a content when it drops
    /// it; one with ghost lists keeps every id (its ghosts must stay exact).
    free_ids: Vec<u32>,
    clock: u64,
    /// Blocks stored (copied from GPU) so far.
    pub stored: u64,
    /// Blocks dropped to make room.
    pub dropped: u64,
}

impl CpuTier {
    /// A tier of `capacity` blocks managed by the paging policy `policy`.
    pub fn new(capacity: u64, policy: &str, seed: u64) -> crate::Result<CpuTier> {
        let capacity = capacity as usize;
        Ok(CpuTier {
            name: policy.to_string(),
            policy: make_policy(policy, &PolicyParams::new(capacity, 0, seed))?,
            capacity,
            ids: BlockHashMap::default(),
            hashes: Vec::new(),
            free_ids: Vec::new(),
            clock: 0,
            stored: 0,
            dropped: 0,
        })
    }

    fn req(&mut self, page: u32) -> Req {
        self.clock += 1;
        Req {
            t: self.clock,
            page,
            next_use: NEVER,
            pred: f64::INFINITY,
        }
    }

    /// The tier's policy.
    pub fn policy_name(&self) -> &str {
        &self.name
    }

    /// Blocks it can hold.
    pub fn capacity(&self) -> usize {
        self.capacity
    }

    /// Blocks held.
    pub fn len(&self) -> usize {
        self.policy.len()
    }

    /// True when empty.
    pub fn is_empty(&self) -> bool {
        self.policy.is_empty()
    }

    /// Is this content in the tier? (No state change.)
    pub fn contains(&self, hash: u64) -> bool {
        self.ids
            .get(&hash)
            .is_some_and(|&id| self.policy.contains(id))
    }

    /// Count a hit on content that is in the tier (updates recency and frequency).
    pub fn touch(&mut self, hash: u64) {
        if let Some(&id) = self.ids.get(&hash) {
            let r = self.req(id);
            let hit = self.policy.find(&r);
            debug_assert!(hit);
        }
    }

    /// Store content evicted from the GPU, dropping a block if the tier is full.
    pub fn store(&mut self, hash: u64) {
        let id = match self.ids.get(&hash) {
            Some(&id) => id,
            None => {
                let id = match self.free_ids.pop() {
                    Some(id) => {
                        self.hashes[id as usize] = hash;
                        id
                    }
                    None => {
                        self.hashes.push(hash);
                        self.hashes.len() as u32 - 1
                    }
                };
                self.ids.insert(hash, id);
                id
            }
        };
        let r = self.req(id);
        if self.policy.find(&r) {
            return;
        }
        if self.policy.len() >= self.capacity {
            let victim = self.policy.evict(&r);
            self.dropped += 1;
            if !self.policy.has_ghosts() {
                self.ids.remove(&self.hashes[victim as usize]);
                self.free_ids.push(victim);
            }
        }
        self.policy.insert(&r);
        self.stored += 1;
    }
}

impl std::fmt::Debug for CpuTier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "CpuTier({} of {} blocks, {})",
            self.policy.len(),
            self.capacity,
            self.name
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lru_tier_keeps_the_most_recent_contents() {
        let mut t = CpuTier::new(2, "lru", 0).unwrap();
        t.store(11);
        t.store(12);
        t.touch(11);
        t.store(13); // drops 12, the least recently used
        assert!(t.contains(11) && t.contains(13) && !t.contains(12));
        assert_eq!((t.stored, t.dropped, t.len()), (3, 1, 2));
        t.store(13); // already there: no copy
        assert_eq!(t.stored, 3);
    }
}
