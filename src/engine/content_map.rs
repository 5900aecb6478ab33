//! The block pool's map from block content hash to its entry, kept by *runs*: a hash's low
//! [`RUN_BITS`] bits are its place in a run, the rest the run's key
//! ([`crate::prefix::block_hash`] gives consecutive blocks of a prompt segment consecutive
//! places of one run). The map holds one record per run with a slot per place, so that the
//! blocks of a prompt, which are registered, looked up and evicted one after another, share
//! one hash-table entry and one record: a run costs one cold probe instead of one per block.
//!
//! Semantically it is a plain map from `u64` to `V`: any hashes may be stored (two hashes
//! that differ only in their place share a record, others do not), a value equal to the
//! map's `empty` marks a vacant slot, and a record whose last slot empties leaves the table
//! and waits on a free list for the next new run (records are never released: the map
//! stays at its peak size).

use crate::idhash::BlockHashMap;

/// Bits of a hash that give its place in its run.
pub const RUN_BITS: u32 = crate::prefix::HASH_RUN_BITS;
/// Places per run.
pub const RUN: usize = 1 << RUN_BITS;

/// One run's slots.
#[derive(Debug, Clone)]
struct Record<V> {
    /// The run's key (the hash without its place bits).
    key: u64,
    /// Occupied slots.
    live: u32,
    slots: [V; RUN],
}

/// A map from content hash to `V`, by runs (see the module doc).
#[derive(Debug, Clone)]
pub struct ContentMap<V: Copy + PartialEq> {
    /// Run key to its record (keys are hashes shifted right, so their top bits are zero:
    /// they are mixed, not passed through, for the table's tags to tell them apart).
    runs: BlockHashMap<u32>,
    records: Vec<Record<V>>,
    /// Records not in use.
    free: Vec<u32>,
    len: usize,
    empty: V,
}

/// A hash's run key and place.
#[inline]
fn split(hash: u64) -> (u64, usize) {
    (hash >> RUN_BITS, (hash as usize) & (RUN - 1))
}

impl<V: Copy + PartialEq> ContentMap<V> {
    /// An empty map; `empty` is the value of a vacant slot (never stored).
    pub fn new(empty: V) -> Self {
        ContentMap {
            runs: BlockHashMap::default(),
            records: Vec::new(),
            free: Vec::new(),
            len: 0,
            empty,
        }
    }

    /// Entries stored.
    pub fn len(&self) -> usize {
        self.len
    }

    /// True when nothing is stored.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The value under `hash`.
    #[inline]
    pub fn get(&self, hash: &u64) -> Option<&V> {
        let (key, place) = split(*hash);
        let &r = self.runs.get(&key)?;
        let v = &self.records[r as usize].slots[place];
        (*v != self.empty).then_some(v)
    }

    /// The value under `hash`, mutably (it must not be set to `empty`: use
    /// [`ContentMap::remove`]).
    #[inline]
    pub fn get_mut(&mut self, hash: &u64) -> Option<&mut V> {
        let (key, place) = split(*hash);
        let &r = self.runs.get(&key)?;
        let empty = self.empty;
        let v = &mut self.records[r as usize].slots[place];
        (*v != empty).then_some(v)
    }

    /// Store `value` (not `empty`) under `hash`, replacing any value there.
    pub fn insert(&mut self, hash: u64, value: V) {
        assert!(value != self.empty, "the empty value is not stored");
        let (key, place) = split(hash);
        let r = match self.runs.get(&key) {
            Some(&r) => r,
            None => {
                let r = self.new_record(key);
                self.runs.insert(key, r);
                r
            }
        };
        let rec = &mut self.records[r as usize];
        if rec.slots[place] == self.empty {
            rec.live += 1;
            self.len += 1;
        }
        rec.slots[place] = value;
    }

    /// A vacant record for run `key`.
    fn new_record(&mut self, key: u64) -> u32 {
        let empty = self.empty;
        match self.free.pop() {
            Some(r) => {
                let rec = &mut self.records[r as usize];
                debug_assert_eq!(rec.live, 0);
                rec.key = key;
                r
            }
            None => {
                self.records.push(Record {
                    key,
                    live: 0,
                    slots: [empty; RUN],
                });
                self.records.len() as u32 - 1
            }
        }
    }

    /// Remove the value under `hash`, if any.
    pub fn remove(&mut self, hash: &u64) -> Option<V> {
        let (key, place) = split(*hash);
        let &r = self.runs.get(&key)?;
        let rec = &mut self.records[r as usize];
        let v = std::mem::replace(&mut rec.slots[place], self.empty);
        if v == self.empty {
            return None;
        }
        rec.live -= 1;
        self.len -= 1;
        if rec.live == 0 {
            self.runs.remove(&key);
            self.free.push(r);
        }
        Some(v)
    }

    /// Every (hash, value) stored, in no particular order.
    pub fn iter(&self) -> impl Iterator<Item = (u64, &V)> + '_ {
        self.runs.values().flat_map(move |&r| {
            let rec = &self.records[r as usize];
            rec.slots
                .iter()
                .enumerate()
                .filter(move |(_, v)| **v != self.empty)
                .map(move |(place, v)| (rec.key << RUN_BITS | place as u64, v))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::rngs::StdRng;
    use rand::{Rng, SeedableRng};
    use std::collections::HashMap;

    #[test]
    fn behaves_as_a_plain_map_and_frees_empty_runs() {
        let mut rng = StdRng::seed_from_u64(7);
        let mut map = ContentMap::new(u32::MAX);
        let mut model: HashMap<u64, u32> = HashMap::new();
        // Few runs, so that places collide within runs and runs empty and fill again.
        for step in 0..200_000u32 {
            let h = (rng.gen_range(0..40u64) << RUN_BITS | rng.gen_range(0..RUN as u64))
                ^ rng.gen_range(0..2u64) << 63;
            match rng.gen_range(0..4) {
                0 => assert_eq!(map.remove(&h), model.remove(&h)),
                1 => {
                    if let (Some(v), Some(w)) = (map.get_mut(&h), model.get_mut(&h)) {
                        *v = step;
                        *w = step;
                    }
                }
                _ => {
                    map.insert(h, step);
                    model.insert(h, step);
                }
            }
            assert_eq!(map.get(&h), model.get(&h));
            assert_eq!(map.len(), model.len());
        }
        let mut all: Vec<(u64, u32)> = map.iter().map(|(h, &v)| (h, v)).collect();
        all.sort_unstable();
        let mut want: Vec<(u64, u32)> = model.into_iter().collect();
        want.sort_unstable();
        assert_eq!(all, want);
        // Records in use are exactly the runs with an entry; the rest are free.
        let runs: std::collections::HashSet<u64> =
            all.iter().map(|&(h, _)| h >> RUN_BITS).collect();
        assert_eq!(map.runs.len(), runs.len());
        assert_eq!(map.records.len(), map.runs.len() + map.free.len());
    }
}
