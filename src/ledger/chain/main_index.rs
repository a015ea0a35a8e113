//! The main chain as memory holds it at any length: its hashes by height, and the way back from
//! a hash to its height, in about 60 bytes a block.
//!
//! Rules kept:
//! - heights run 0 (genesis) to the tip without a gap; only the tip is ever removed;
//! - a hash is looked up by its last 8 bytes (its first ones are the proof of work's zeros), and
//!   the candidate height found is always checked against the full hash, so a key shared by two
//!   main-chain blocks (possible, if unlikely) never gives a wrong answer: the second such block
//!   goes to a small overflow map;
//! - the keys are hashed by one keyed multiply ([`DigestMap`]), not SipHash: a restart builds
//!   the map for every main-chain block, and the keys are already uniform.
//!
//! It imports nothing from the chain; [`super::Chain`] keeps one.

use crate::ledger::digest_map::DigestMap;
use crate::ledger::hash::BlockHash;

/// The main chain's hashes by height, with a compact index from hash to height.
#[derive(Debug, Default)]
pub(super) struct MainIndex {
    /// `hashes[h]` is the main-chain block at height `h`.
    hashes: Vec<BlockHash>,
    /// Last 8 bytes of a hash -> its height.
    by_prefix: DigestMap<u64, u32>,
    /// Hashes whose prefix another main-chain hash took first.
    overflow: DigestMap<BlockHash, u32>,
}

/// The lookup key of a hash: its last 8 bytes.
fn prefix(hash: &BlockHash) -> u64 {
    let mut last = [0u8; 8];
    last.copy_from_slice(&hash.0[24..]);
    u64::from_le_bytes(last)
}

impl MainIndex {
    /// An index of the main chain `hashes` (genesis first).
    pub(super) fn from_hashes(hashes: Vec<BlockHash>) -> Self {
        let mut by_prefix = DigestMap::with_capacity_and_hasher(hashes.len(), Default::default());
        let mut overflow = DigestMap::default();
        for (height, hash) in hashes.iter().enumerate() {
            let height = u32::try_from(height).unwrap_or(u32::MAX);
            if let std::collections::hash_map::Entry::Vacant(slot) = by_prefix.entry(prefix(hash)) {
                slot.insert(height);
            } else {
                overflow.insert(*hash, height);
            }
        }
        Self {
            hashes,
            by_prefix,
            overflow,
        }
    }

    /// Number of blocks (tip height + 1).
    pub(super) fn len(&self) -> usize {
        self.hashes.len()
    }

    /// The hashes by height, genesis first.
    pub(super) fn hashes(&self) -> &[BlockHash] {
        &self.hashes
    }

    /// The tip's hash.
    pub(super) fn last(&self) -> Option<BlockHash> {
        self.hashes.last().copied()
    }

    /// The hash at `height`.
    pub(super) fn get(&self, height: u64) -> Option<BlockHash> {
        self.hashes.get(usize::try_from(height).ok()?).copied()
    }

    /// The main-chain height of `hash`, if it is on the main chain.
    pub(super) fn height_of(&self, hash: &BlockHash) -> Option<u64> {
        let candidate = self.by_prefix.get(&prefix(hash)).copied();
        let found = candidate
            .filter(|&h| self.hashes.get(h as usize) == Some(hash))
            .or_else(|| self.overflow.get(hash).copied())?;
        Some(u64::from(found))
    }

    /// Puts `hash` on top of the main chain.
    pub(super) fn push(&mut self, hash: BlockHash) {
        let height = u32::try_from(self.hashes.len()).unwrap_or(u32::MAX);
        match self.by_prefix.entry(prefix(&hash)) {
            std::collections::hash_map::Entry::Vacant(slot) => {
                slot.insert(height);
            }
            std::collections::hash_map::Entry::Occupied(_) => {
                self.overflow.insert(hash, height);
            }
        }
        self.hashes.push(hash);
    }

    /// Takes the tip off; genesis stays.
    pub(super) fn pop(&mut self) -> Option<BlockHash> {
        if self.hashes.len() <= 1 {
            return None;
        }
        let hash = self.hashes.pop()?;
        let height = self.hashes.len() as u32;
        if self.overflow.remove(&hash).is_none() {
            let key = prefix(&hash);
            if self.by_prefix.get(&key) == Some(&height) {
                self.by_prefix.remove(&key);
            }
        }
        Some(hash)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A hash whose lookup key (its last 8 bytes) is `key` repeated, the rest `rest`.
    fn hash(key: u8, rest: u8) -> BlockHash {
        let mut bytes = [rest; 32];
        bytes[24..].copy_from_slice(&[key; 8]);
        BlockHash(bytes)
    }

    #[test]
    fn heights_are_found_by_hash_and_forgotten_when_popped() {
        let mut index = MainIndex::from_hashes(vec![hash(0, 0), hash(1, 1), hash(2, 2)]);
        assert_eq!(index.height_of(&hash(1, 1)), Some(1));
        assert_eq!(index.height_of(&hash(1, 9)), None, "same key, other hash");
        assert_eq!(index.pop(), Some(hash(2, 2)));
        assert_eq!(index.height_of(&hash(2, 2)), None);
        assert_eq!(index.len(), 2);
        index.push(hash(3, 3));
        assert_eq!(index.height_of(&hash(3, 3)), Some(2));
        assert_eq!(index.get(2), Some(hash(3, 3)));
    }

    #[test]
    fn two_main_hashes_sharing_a_prefix_are_both_found() {
        let mut index = MainIndex::from_hashes(vec![hash(0, 0), hash(5, 1)]);
        index.push(hash(5, 2));
        assert_eq!(index.height_of(&hash(5, 1)), Some(1));
        assert_eq!(index.height_of(&hash(5, 2)), Some(2));
        assert_eq!(index.pop(), Some(hash(5, 2)));
        assert_eq!(index.height_of(&hash(5, 2)), None);
        assert_eq!(index.height_of(&hash(5, 1)), Some(1));
    }

    #[test]
    fn hashes_sharing_a_key_in_a_loaded_index_are_both_found() {
        let index = MainIndex::from_hashes(vec![hash(0, 0), hash(5, 1), hash(5, 2)]);
        assert_eq!(index.height_of(&hash(5, 1)), Some(1));
        assert_eq!(index.height_of(&hash(5, 2)), Some(2));
        assert_eq!(index.height_of(&hash(5, 3)), None);
    }

    #[test]
    fn genesis_is_never_popped() {
        let mut index = MainIndex::from_hashes(vec![hash(0, 0)]);
        assert_eq!(index.pop(), None);
        assert_eq!(index.last(), Some(hash(0, 0)));
    }
}
