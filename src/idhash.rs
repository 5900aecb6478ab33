//! A hasher for keys that are already well-mixed 64-bit hashes: it passes them through, so
//! block-hash lookups cost no extra hashing.

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};

/// Pass-through hasher for `u64` keys.
#[derive(Default, Clone, Copy)]
pub struct IdHasher(u64);

impl Hasher for IdHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = (self.0.rotate_left(8) ^ b as u64).wrapping_mul(0x100_0000_01b3);
        }
    }

    fn write_u64(&mut self, v: u64) {
        self.0 = v;
    }
}

/// A map keyed by pre-mixed `u64` hashes.
pub type IdMap<V> = HashMap<u64, V, BuildHasherDefault<IdHasher>>;

/// A hasher for block hashes, whose low bits are a block's place in its run
/// ([`crate::prefix::block_hash`]) rather than random: one multiply, then the product's
/// high half folded onto its low half, so that a run's consecutive blocks land in scattered
/// buckets (a pass-through hasher would put them side by side and its probes would cluster).
#[derive(Default, Clone, Copy)]
pub struct BlockHasher(u64);

impl Hasher for BlockHasher {
    fn finish(&self) -> u64 {
        let z = self.0.wrapping_mul(0x9E37_79B9_7F4A_7C15);
        z ^ (z >> 32)
    }

    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = (self.0.rotate_left(8) ^ b as u64).wrapping_mul(0x100_0000_01b3);
        }
    }

    fn write_u64(&mut self, v: u64) {
        self.0 = v;
    }
}

/// A map keyed by block hashes (see [`BlockHasher`]); the block pool's own map is run-aware
/// ([`crate::engine::content_map`]).
pub type BlockHashMap<V> = HashMap<u64, V, BuildHasherDefault<BlockHasher>>;

/// A map keyed by small dense integers (a scheduler's request slots): one vector indexed
/// by the key, so a lookup is an index, not a probe. Values are boxed, so a key without a
/// value costs 8 bytes (a scheduler has a slot for every waiting request, most of which
/// hold nothing here yet). Memory grows with the largest key inserted, so it suits keys
/// that are reused, not arbitrary ids.
#[derive(Debug, Clone)]
pub struct SlotMap<V> {
    entries: Vec<Option<Box<V>>>,
    len: usize,
}

impl<V> Default for SlotMap<V> {
    fn default() -> Self {
        SlotMap {
            entries: Vec::new(),
            len: 0,
        }
    }
}

impl<V> SlotMap<V> {
    /// The value under `key`.
    pub fn get(&self, key: &u64) -> Option<&V> {
        self.entries.get(*key as usize)?.as_deref()
    }

    /// The value under `key`, mutably.
    pub fn get_mut(&mut self, key: &u64) -> Option<&mut V> {
        self.entries.get_mut(*key as usize)?.as_deref_mut()
    }

    /// True when `key` holds a value.
    pub fn contains_key(&self, key: &u64) -> bool {
        self.get(key).is_some()
    }

    /// Put `value` under `key`, returning the value it replaces.
    pub fn insert(&mut self, key: u64, value: V) -> Option<V> {
        let i = key as usize;
        if self.entries.len() <= i {
            self.entries.resize_with(i + 1, || None);
        }
        let old = self.entries[i].replace(Box::new(value));
        if old.is_none() {
            self.len += 1;
        }
        old.map(|b| *b)
    }

    /// Take the value under `key` out.
    pub fn remove(&mut self, key: &u64) -> Option<V> {
        let old = self.entries.get_mut(*key as usize)?.take();
        if old.is_some() {
            self.len -= 1;
        }
        old.map(|b| *b)
    }

    /// The values, by key.
    pub fn values(&self) -> impl Iterator<Item = &V> {
        self.entries.iter().flatten().map(|b| &**b)
    }

    /// Values held.
    pub fn len(&self) -> usize {
        self.len
    }

    /// True when no value is held.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
}

impl<V> std::ops::Index<&u64> for SlotMap<V> {
    type Output = V;

    fn index(&self, key: &u64) -> &V {
        self.get(key).expect("no value under this slot")
    }
}

#[cfg(test)]
mod slot_map_tests {
    use super::SlotMap;

    #[test]
    fn insert_replace_remove_and_count() {
        let mut m = SlotMap::default();
        assert!(m.is_empty());
        assert_eq!(m.insert(3, "a"), None);
        assert_eq!(m.insert(0, "b"), None);
        assert_eq!(m.insert(3, "c"), Some("a"));
        assert_eq!(m.len(), 2);
        assert_eq!(m[&3], "c");
        assert!(!m.contains_key(&1) && !m.contains_key(&99));
        assert_eq!(m.values().copied().collect::<Vec<_>>(), ["b", "c"]);
        assert_eq!(m.remove(&3), Some("c"));
        assert_eq!(m.remove(&3), None);
        assert_eq!(m.remove(&50), None);
        assert_eq!(m.len(), 1);
        *m.get_mut(&0).unwrap() = "d";
        assert_eq!(m.get(&0), Some(&"d"));
    }
}
