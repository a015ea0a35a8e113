//! Hash maps keyed by digests (block hashes, txids, addresses), hashed by one keyed multiply
//! instead of SipHash.
//!
//! Rules kept: only keys that are already uniform digests (or a `u64` taken from one) use it,
//! never a key a peer chooses freely; the multiplier's key is random per process, so nobody
//! outside can aim keys at a bucket; a digest is reduced to its last 8 bytes (the first ones of
//! a block hash are the proof of work's zeros). Every block of a sync touches several such
//! maps, and SipHash was a tenth of the event loop's time there.

use std::collections::{HashMap, HashSet};
use std::hash::{BuildHasher, Hasher};

/// A map keyed by a digest.
pub type DigestMap<K, V> = HashMap<K, V, DigestHasher>;
/// A set of digests.
pub type DigestSet<K> = HashSet<K, DigestHasher>;

/// Builds [`KeyedHasher`]s sharing one per-process random key.
#[derive(Debug, Clone, Copy)]
pub struct DigestHasher(u64);

impl Default for DigestHasher {
    fn default() -> Self {
        // std's RandomState is seeded randomly per process, once; one of its outputs is our key.
        let mut seed = std::collections::hash_map::RandomState::new().build_hasher();
        seed.write_u64(0x6469_6765_7374_6d61);
        Self(seed.finish() | 1)
    }
}

impl BuildHasher for DigestHasher {
    type Hasher = KeyedHasher;

    fn build_hasher(&self) -> KeyedHasher {
        KeyedHasher {
            key: self.0,
            value: 0,
        }
    }
}

/// The hasher [`DigestHasher`] builds: meant for one digest or one `u64`.
#[derive(Debug)]
pub struct KeyedHasher {
    key: u64,
    value: u64,
}

impl Hasher for KeyedHasher {
    fn finish(&self) -> u64 {
        let mixed = (self.value ^ self.key).wrapping_mul(0x9e37_79b9_7f4a_7c15);
        mixed ^ (mixed >> 29)
    }

    fn write(&mut self, bytes: &[u8]) {
        match bytes.last_chunk::<8>() {
            Some(last) => self.value ^= u64::from_le_bytes(*last),
            None => {
                for &b in bytes {
                    self.value = self.value.rotate_left(8) ^ u64::from(b);
                }
            }
        }
    }

    fn write_u64(&mut self, n: u64) {
        self.value ^= n;
    }

    fn write_usize(&mut self, n: usize) {
        // The length prefix of an array key: the same for every key of a map.
        self.value ^= n as u64;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ledger::hash::{sha256, BlockHash};

    #[test]
    fn digests_differing_only_in_their_last_bytes_hash_apart_and_equal_ones_alike() {
        let build = DigestHasher::default();
        let a = BlockHash(sha256(b"a"));
        let mut b = a;
        b.0[31] ^= 1;
        assert_ne!(build.hash_one(a), build.hash_one(b));
        assert_eq!(build.hash_one(a), build.hash_one(a));
        let mut map: DigestMap<BlockHash, u32> = DigestMap::default();
        map.insert(a, 1);
        map.insert(b, 2);
        assert_eq!((map.get(&a), map.get(&b)), (Some(&1), Some(&2)));
    }

    #[test]
    fn each_map_builder_draws_its_own_key() {
        // Each map builder draws its own key from the process's random state.
        let (one, two) = (DigestHasher::default(), DigestHasher::default());
        let key = BlockHash(sha256(b"k"));
        assert_ne!(one.hash_one(key), two.hash_one(key));
    }
}
