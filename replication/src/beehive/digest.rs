//! Bucket digests of offer sets, so a periodic resync costs bytes only where the two sides
//! differ.
//!
//! A resync pull carries a [`Digest`] of the copies the puller holds that the finger would
//! offer (in the puller's arc, of keys the finger is the puller's next hop for). The finger
//! builds the same digest of its own offers and lists in full only the buckets whose sums
//! differ; in the others the puller's copies are exactly what the finger offers, so the
//! answer renews them instead of repeating them. A bucket is a slice of the key space by the
//! key's low bits (ids are blake3 output, so the buckets are even), and its sum covers what
//! both sides agree on for a copy: key, level, level stamp and version.

use crate::hash::MixHasher;
use crate::id::Id;
use serde::{Deserialize, Serialize};
use std::hash::Hasher;

/// Buckets per digest. A bucket that differs is listed in full, so more buckets list less
/// at a larger digest: at 256, a list of a few thousand offers has ~10 per bucket, and the
/// digest is ~2.3 KB.
pub const BUCKETS: usize = 256;

/// Per-bucket sums of copy hashes (order-free: the two sides walk different tables).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Digest(Vec<u64>);

impl Default for Digest {
    fn default() -> Self {
        Digest(vec![0; BUCKETS])
    }
}

/// The bucket `key` falls in.
pub fn bucket(key: Id) -> usize {
    (key.0 as usize) % BUCKETS
}

/// A set of buckets (bit b % 64 of word b / 64): those whose digests matched.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Mask(Vec<u64>);

impl Mask {
    /// Whether `key`'s bucket is in the set.
    pub fn has(&self, key: Id) -> bool {
        let b = bucket(key);
        self.0.get(b / 64).is_some_and(|w| w & (1 << (b % 64)) != 0)
    }

    /// The buckets in the set, in ascending order.
    pub fn buckets(&self) -> impl Iterator<Item = usize> + '_ {
        (0..BUCKETS).filter(|b| self.0.get(b / 64).is_some_and(|w| w & (1 << (b % 64)) != 0))
    }

    pub fn is_empty(&self) -> bool {
        self.0.iter().all(|w| *w == 0)
    }

    /// The words, as sent.
    pub fn words(&self) -> &[u64] {
        &self.0
    }

    /// `sorted` (ordered by bucket, holding only buckets in the set) cut into each bucket's
    /// run, bucket by bucket in ascending order: how the finger lays out a matched bucket's
    /// leases and the puller finds them again.
    pub fn runs<'a, T>(
        &'a self,
        sorted: &'a [T],
        bucket_of: impl Fn(&T) -> usize + 'a,
    ) -> impl Iterator<Item = &'a [T]> + 'a {
        let mut rest = sorted;
        self.buckets().map(move |b| {
            let (here, after) = rest.split_at(rest.partition_point(|t| bucket_of(t) <= b));
            rest = after;
            here
        })
    }
}

impl Digest {
    /// Adds a copy of `key` at `level`, stamped `stamp`, of body `version`.
    pub fn add(&mut self, key: Id, level: u8, stamp: u64, version: u64) {
        let mut h = MixHasher::default();
        h.write_u128(key.0);
        h.write_u64(stamp);
        h.write_u64(version);
        h.write_u64(u64::from(level));
        if let Some(sum) = self.0.get_mut(bucket(key)) {
            *sum = sum.wrapping_add(h.finish());
        }
    }

    /// The buckets whose sums equal `other`'s.
    pub fn matching(&self, other: &Digest) -> Mask {
        let mut words = vec![0u64; BUCKETS / 64];
        let pairs = self.0.iter().zip(&other.0).take(BUCKETS).enumerate();
        for (b, _) in pairs.filter(|(_, (a, b))| a == b) {
            words[b / 64] |= 1 << (b % 64);
        }
        Mask(words)
    }

    /// Whether it has the shape every digest has (a peer's may not).
    pub fn is_well_formed(&self) -> bool {
        self.0.len() == BUCKETS
    }

    /// The sums, bucket by bucket.
    pub fn sums(&self) -> &[u64] {
        &self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_same_copies_in_any_order_match_and_a_difference_marks_its_bucket_only() {
        let keys: Vec<Id> =
            (0..500u128).map(|i| Id(i.wrapping_mul(0x9e37_79b9_7f4a_7c15_f39c))).collect();
        let (mut a, mut b) = (Digest::default(), Digest::default());
        for k in &keys {
            a.add(*k, 3, 1_000, 1);
        }
        for k in keys.iter().rev() {
            b.add(*k, 3, 1_000, 1);
        }
        assert_eq!(a.matching(&b).buckets().count(), BUCKETS);

        // One copy at another level, one at another stamp, one missing.
        let mut c = Digest::default();
        for (i, k) in keys.iter().enumerate() {
            match i {
                7 => c.add(*k, 4, 1_000, 1),
                8 => c.add(*k, 3, 2_000, 1),
                9 => {}
                _ => c.add(*k, 3, 1_000, 1),
            }
        }
        let mut differ: Vec<usize> = [7, 8, 9].iter().map(|i| bucket(keys[*i])).collect();
        differ.sort_unstable();
        differ.dedup();
        let matched = a.matching(&c);
        let unmatched: Vec<usize> =
            (0..BUCKETS).filter(|b| !matched.buckets().any(|m| m == *b)).collect();
        assert_eq!(unmatched, differ);
        assert!(!matched.has(keys[9]));
        assert_eq!(matched.has(keys[10]), !differ.contains(&bucket(keys[10])));
    }

    #[test]
    fn a_digest_with_the_wrong_number_of_buckets_is_refused() {
        let cfg = bincode::config::standard();
        let bytes = bincode::serde::encode_to_vec(vec![0u64; 3], cfg).expect("encodes");
        let (short, _): (Digest, usize) =
            bincode::serde::decode_from_slice(&bytes, cfg).expect("decodes");
        assert!(!short.is_well_formed() && Digest::default().is_well_formed());
        let pull = super::super::wire::Pull {
            counts: Vec::new(),
            report: None,
            known: None,
            since: None,
            full: true,
            digest: Some(short),
            next: None,
        };
        assert!(super::super::wire::check_pull(&pull).is_err());
    }
}
