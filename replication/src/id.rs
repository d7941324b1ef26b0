//! Ring identifiers and arc arithmetic on the 2^128 circle.
//!
//! Every comparison on the ring is a question about an arc, and every arc wraps: the successor
//! of `u128::MAX` is `0`. All arithmetic here is wrapping, so the rest of the crate never has
//! to think about the seam.

use serde::{Deserialize, Serialize};
use std::fmt;

/// Number of bits in a ring id; also the number of finger-table entries.
pub const ID_BITS: u32 = 128;

/// A position on the ring: the first 16 bytes of a blake3 hash, read big-endian.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, Default)]
pub struct Id(pub u128);

impl Id {
    /// The id of arbitrary bytes (a node's advertised address, an object's cache key).
    pub fn hash(bytes: &[u8]) -> Self {
        let digest = blake3::hash(bytes);
        let mut first = [0u8; 16];
        first.copy_from_slice(&digest.as_bytes()[..16]);
        Id(u128::from_be_bytes(first))
    }

    /// Clockwise distance from `self` to `to`: how far one walks forward to get there.
    /// `a.distance_to(a)` is 0.
    pub fn distance_to(self, to: Id) -> u128 {
        to.0.wrapping_sub(self.0)
    }

    /// `self + delta`, wrapping at 2^128.
    pub fn offset(self, delta: u128) -> Id {
        Id(self.0.wrapping_add(delta))
    }

    /// The target of finger `j`: `self + 2^j`. Finger `j` is `successor(self + 2^j)`.
    pub fn finger_target(self, j: u32) -> Id {
        debug_assert!(j < ID_BITS);
        self.offset(1u128 << j)
    }

    /// Whether `self` lies in the half-open arc `(from, to]`.
    ///
    /// When `from == to` the arc is the whole ring (a one-node ring owns every key).
    pub fn in_open_closed(self, from: Id, to: Id) -> bool {
        if from == to {
            return true;
        }
        let d = from.distance_to(self);
        d != 0 && d <= from.distance_to(to)
    }

    /// Whether `self` lies in the open arc `(from, to)`.
    ///
    /// When `from == to` the arc is the whole ring except that one point.
    pub fn in_open(self, from: Id, to: Id) -> bool {
        if from == to {
            return self != from;
        }
        let d = from.distance_to(self);
        d != 0 && d < from.distance_to(to)
    }
}

impl fmt::Debug for Id {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The top 8 hex digits are enough to tell nodes apart in logs and tests.
        write!(f, "{:08x}", (self.0 >> 96) as u32)
    }
}

impl fmt::Display for Id {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:032x}", self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MAX: Id = Id(u128::MAX);

    #[test]
    fn distance_wraps_at_the_seam() {
        assert_eq!(MAX.distance_to(Id(0)), 1);
        assert_eq!(Id(0).distance_to(MAX), u128::MAX);
        assert_eq!(Id(5).distance_to(Id(5)), 0);
        assert_eq!(Id(u128::MAX - 2).distance_to(Id(3)), 6);
    }

    #[test]
    fn open_closed_arc_across_the_seam() {
        let from = Id(u128::MAX - 10);
        let to = Id(10);
        assert!(Id(0).in_open_closed(from, to));
        assert!(MAX.in_open_closed(from, to));
        assert!(to.in_open_closed(from, to));
        assert!(!from.in_open_closed(from, to));
        assert!(!Id(11).in_open_closed(from, to));
        assert!(!Id(u128::MAX - 11).in_open_closed(from, to));
    }

    #[test]
    fn open_arc_excludes_both_ends() {
        let from = Id(u128::MAX);
        let to = Id(1);
        assert!(Id(0).in_open(from, to));
        assert!(!from.in_open(from, to));
        assert!(!to.in_open(from, to));
        // Adjacent ends: the open arc is empty.
        assert!(!Id(0).in_open(MAX, Id(0)));
        assert!(!MAX.in_open(MAX, Id(0)));
    }

    #[test]
    fn degenerate_arcs_cover_the_ring() {
        let a = Id(42);
        assert!(Id(7).in_open_closed(a, a));
        assert!(a.in_open_closed(a, a));
        assert!(Id(7).in_open(a, a));
        assert!(!a.in_open(a, a));
    }

    #[test]
    fn finger_targets_wrap() {
        assert_eq!(Id(0).finger_target(0), Id(1));
        assert_eq!(Id(0).finger_target(127), Id(1 << 127));
        assert_eq!(MAX.finger_target(0), Id(0));
        assert_eq!(Id(1 << 127).finger_target(127), Id(0));
        assert_eq!(Id(u128::MAX - 3).finger_target(3), Id(4));
    }

    #[test]
    fn hash_is_the_first_sixteen_bytes_big_endian() {
        let digest = blake3::hash(b"127.0.0.1:7000");
        let expected = u128::from_be_bytes(digest.as_bytes()[..16].try_into().unwrap());
        assert_eq!(Id::hash(b"127.0.0.1:7000"), Id(expected));
        assert_ne!(Id::hash(b"a"), Id::hash(b"b"));
    }
}
