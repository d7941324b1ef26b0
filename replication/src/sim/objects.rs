//! The simulated origin: a catalog of objects with Zipf popularity, content that can change,
//! and a popularity order that can be reversed mid-run.

use crate::beehive::wire::ObjectInfo;
use crate::id::Id;
use rand::Rng;
use rand_distr::{Distribution, Zipf};
use serde::Serialize;

/// What the simulated clients ask for.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct Catalog {
    /// `M`.
    pub objects: usize,
    /// Zipf α of the requests.
    pub alpha: f64,
    /// Body size of every object, in bytes (for transfer accounting).
    pub size: u64,
}

impl Default for Catalog {
    /// The paper's workload: 40 960 objects, α = 0.91.
    fn default() -> Self {
        Catalog { objects: 40_960, alpha: 0.91, size: 8 * 1024 }
    }
}

#[derive(Debug)]
pub(crate) struct Origin {
    keys: Vec<Id>,
    /// Content version per object; the body's hash is derived from (key, content version).
    content: Vec<u64>,
    size: u64,
    zipf: Zipf<f64>,
    /// Rank `r` (1-based) asks for object `r − 1`, or `M − r` once reversed.
    reversed: bool,
    /// Ranks `1..=2s` are rotated by `s` before that: the top `s` objects drop `s` ranks and
    /// the next `s` take their place ([`Origin::swap_top`]).
    swapped: usize,
}

impl Origin {
    pub fn new(c: &Catalog) -> Result<Self, String> {
        let zipf = Zipf::new(c.objects as f64, c.alpha).map_err(|e| e.to_string())?;
        let keys = (0..c.objects).map(|i| Id::hash(format!("/o/{i}").as_bytes())).collect();
        Ok(Origin {
            keys,
            content: vec![0; c.objects],
            size: c.size,
            zipf,
            reversed: false,
            swapped: 0,
        })
    }

    pub fn len(&self) -> usize {
        self.keys.len()
    }

    /// The object of popularity `rank` (1-based) under the current order.
    pub fn index_of_rank(&self, rank: usize) -> usize {
        let mut r = rank.clamp(1, self.keys.len());
        let s = self.swapped;
        if r <= 2 * s {
            r = (r - 1 + s) % (2 * s) + 1;
        }
        if self.reversed {
            self.keys.len() - r
        } else {
            r - 1
        }
    }

    pub fn sample(&self, rng: &mut impl Rng) -> usize {
        let rank = self.zipf.sample(rng) as usize;
        self.index_of_rank(rank)
    }

    pub fn key(&self, index: usize) -> Id {
        self.keys[index]
    }

    /// Changes the Zipf α of the requests from now on.
    pub fn set_alpha(&mut self, alpha: f64) -> Result<(), String> {
        self.zipf = Zipf::new(self.keys.len() as f64, alpha).map_err(|e| e.to_string())?;
        Ok(())
    }

    pub fn reverse(&mut self) {
        self.reversed = !self.reversed;
    }

    /// A shift of the top ranks, not a reversal: the `s` most popular objects trade places
    /// with the next `s` (at most half the catalogue). `0` restores the order.
    pub fn swap_top(&mut self, s: usize) {
        self.swapped = s.min(self.keys.len() / 2);
    }

    /// The hash of the body the origin serves now for `index`.
    pub fn hash(&self, index: usize) -> [u8; 32] {
        self.hash_of(index, self.content[index])
    }

    /// The hash of `index`'s body at content revision `content`.
    fn hash_of(&self, index: usize, content: u64) -> [u8; 32] {
        let mut h = blake3::Hasher::new();
        h.update(&self.keys[index].0.to_le_bytes());
        h.update(&content.to_le_bytes());
        *h.finalize().as_bytes()
    }

    pub fn size(&self) -> u64 {
        self.size
    }

    /// Changes the content of `index`; returns the new body hash.
    pub fn change(&mut self, index: usize) -> [u8; 32] {
        self.content[index] += 1;
        self.hash(index)
    }

    /// Which of `index`'s bodies `info` describes, newest first (one hash per revision).
    pub fn body_of(&self, index: usize, info: &ObjectInfo) -> Body {
        let current = self.content[index];
        match (0..=current).rev().find(|c| info.hash == self.hash_of(index, *c)) {
            Some(c) if c == current => Body::Current,
            Some(_) => Body::Older,
            None => Body::Foreign,
        }
    }
}

/// What a served body is to the object it was served for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Body {
    /// What the origin serves now.
    Current,
    /// One the origin served before a change.
    Older,
    /// Not a body this object ever had.
    Foreign,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_version_of_an_object_is_its_own_and_no_other() {
        let mut origin = Origin::new(&Catalog { objects: 4, alpha: 0.9, size: 1 }).unwrap();
        let info = |hash| ObjectInfo { version: 1, hash, size: 1 };
        let first = info(origin.hash(2));
        origin.change(2);
        let second = info(origin.hash(2));
        assert_ne!(first.hash, second.hash);
        assert_eq!(origin.body_of(2, &second), Body::Current);
        assert_eq!(origin.body_of(2, &first), Body::Older);
        assert_eq!(origin.body_of(3, &first), Body::Foreign, "another object's body");
        assert_eq!(origin.body_of(2, &info([7; 32])), Body::Foreign, "never the origin's");
    }
}
