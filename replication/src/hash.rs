//! A fast, fixed hasher for the core's maps, whose keys are ring ids (already uniform blake3
//! output) and sequential request numbers.
//!
//! SipHash's DoS resistance buys nothing here: ids are hashes chosen by no one, request numbers
//! are our own. A fixed hasher also makes iteration order the same in every run, one less way
//! for a simulation to stop replaying.

use std::collections::{HashMap, HashSet};
use std::hash::{BuildHasherDefault, Hasher};

/// Folds integers with a multiply-xorshift; not for untrusted, attacker-chosen keys.
#[derive(Debug, Default, Clone, Copy)]
pub struct MixHasher(u64);

impl Hasher for MixHasher {
    fn finish(&self) -> u64 {
        let mut h = self.0;
        h ^= h >> 32;
        h = h.wrapping_mul(0xd6e8_feb8_6659_fd93);
        h ^ (h >> 32)
    }

    fn write(&mut self, bytes: &[u8]) {
        for chunk in bytes.chunks(8) {
            let mut buf = [0u8; 8];
            buf[..chunk.len()].copy_from_slice(chunk);
            self.write_u64(u64::from_le_bytes(buf));
        }
    }

    fn write_u64(&mut self, n: u64) {
        self.0 = (self.0.rotate_left(5) ^ n).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    }

    fn write_u128(&mut self, n: u128) {
        self.write_u64(n as u64);
        self.write_u64((n >> 64) as u64);
    }

    fn write_usize(&mut self, n: usize) {
        self.write_u64(n as u64);
    }
}

/// A `HashMap` keyed by ids or request numbers.
pub type FastMap<K, V> = HashMap<K, V, BuildHasherDefault<MixHasher>>;
pub type FastSet<K> = HashSet<K, BuildHasherDefault<MixHasher>>;

#[cfg(test)]
mod tests {
    use super::*;
    use std::hash::{BuildHasher, Hash};

    fn hash<T: Hash>(t: T) -> u64 {
        BuildHasherDefault::<MixHasher>::default().hash_one(t)
    }

    #[test]
    fn sequential_numbers_spread_over_buckets() {
        let mut low_bits = std::collections::BTreeSet::new();
        for i in 0u64..1024 {
            low_bits.insert(hash(i) & 1023);
        }
        // A good spread hits most of the 1024 buckets (a random function hits ~63%).
        assert!(low_bits.len() > 550, "only {} distinct buckets", low_bits.len());
    }

    #[test]
    fn equal_keys_hash_equal() {
        assert_eq!(hash(42u128), hash(42u128));
        assert_ne!(hash(42u128), hash(43u128));
    }
}
