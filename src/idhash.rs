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
