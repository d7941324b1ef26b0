//! What the demo origin serves: its settings, each object's deterministic size and bytes,
//! their ETags, and the `/stats` counts. No I/O; the server (`server.rs`) and the handle
//! (`mod.rs`) both build on it.

use bytes::Bytes;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// How object sizes are chosen.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SizeMix {
    /// Every object is exactly `size` bytes.
    #[default]
    Small,
    /// A deterministic mix per path: 60 % are `size / 4`, 30 % `size`, 10 % `size * 8`.
    Mixed,
}

/// The origin's settings.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OriginConfig {
    /// Number of objects, served at `/o/0` .. `/o/<objects-1>`.
    pub objects: u64,
    /// Object size in bytes (the base size under [`SizeMix::Mixed`]).
    pub size: u64,
    pub size_mix: SizeMix,
    /// The `max-age` of every object, in seconds.
    pub max_age: u64,
    /// Keys the content: same seed, same bytes.
    pub seed: u64,
}

impl Default for OriginConfig {
    fn default() -> Self {
        Self { objects: 1000, size: 4096, size_mix: SizeMix::Small, max_age: 300, seed: 1 }
    }
}

/// Why an [`OriginConfig`] was refused; nothing was started.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum OriginError {
    #[error("--objects must be at least 1")]
    NoObjects,
    #[error("--size must be at least 1 byte")]
    ZeroSize,
    #[error("--size must be at most 64 MiB (got {0})")]
    TooLarge(u64),
}

impl OriginConfig {
    /// Checks the settings; the messages say what to fix.
    pub fn validate(&self) -> Result<(), OriginError> {
        if self.objects == 0 {
            return Err(OriginError::NoObjects);
        }
        if self.size == 0 {
            return Err(OriginError::ZeroSize);
        }
        if self.size > 64 << 20 {
            return Err(OriginError::TooLarge(self.size));
        }
        Ok(())
    }

    /// The size of the object at `path` (deterministic per seed and path).
    pub fn size_of(&self, path: &str) -> usize {
        let size = match self.size_mix {
            SizeMix::Small => self.size,
            SizeMix::Mixed => {
                let roll = u64::from_le_bytes(
                    content_hasher(self.seed, path, u64::MAX).finalize().as_bytes()[..8]
                        .try_into()
                        .expect("8 bytes"),
                ) % 100;
                match roll {
                    0..60 => (self.size / 4).max(1),
                    60..90 => self.size,
                    _ => self.size.saturating_mul(8),
                }
            }
        };
        size as usize
    }

    /// The body of the object at `path` in `version`.
    pub fn body(&self, path: &str, version: u64) -> Bytes {
        let mut buf = vec![0u8; self.size_of(path)];
        content_hasher(self.seed, path, version).finalize_xof().fill(&mut buf);
        Bytes::from(buf)
    }
}

fn content_hasher(seed: u64, path: &str, version: u64) -> blake3::Hasher {
    let mut h = blake3::Hasher::new_derive_key("beehive origin object content v1");
    h.update(&seed.to_le_bytes()).update(&version.to_le_bytes()).update(path.as_bytes());
    h
}

/// The strong ETag of `body`.
pub fn etag_of(body: &[u8]) -> String {
    format!("\"{}\"", &blake3::hash(body).to_hex()[..32])
}

/// The JSON answered at `/stats` (schema in the module docs).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct OriginStats {
    pub total: u64,
    pub paths: BTreeMap<String, u64>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn content_is_deterministic_and_versioned() {
        let c = OriginConfig { objects: 4, size: 100, ..OriginConfig::default() };
        assert_eq!(c.body("/o/1", 0), c.body("/o/1", 0));
        assert_ne!(c.body("/o/1", 0), c.body("/o/1", 1));
        assert_ne!(c.body("/o/1", 0), c.body("/o/2", 0));
        assert_eq!(c.body("/o/1", 0).len(), 100);
        let other_seed = OriginConfig { seed: 2, ..c.clone() };
        assert_ne!(c.body("/o/1", 0), other_seed.body("/o/1", 0));
    }

    #[test]
    fn mixed_sizes_are_spread() {
        let c = OriginConfig { size: 1024, size_mix: SizeMix::Mixed, ..OriginConfig::default() };
        let sizes: std::collections::BTreeSet<usize> =
            (0..200).map(|i| c.size_of(&format!("/o/{i}"))).collect();
        assert_eq!(sizes.into_iter().collect::<Vec<_>>(), vec![256, 1024, 8192]);
    }

    #[test]
    fn validation() {
        let ok = OriginConfig::default();
        assert_eq!(ok.validate(), Ok(()));
        assert_eq!(
            OriginConfig { objects: 0, ..ok.clone() }.validate(),
            Err(OriginError::NoObjects)
        );
        assert_eq!(OriginConfig { size: 0, ..ok }.validate(), Err(OriginError::ZeroSize));
    }
}
