//! The built-in demo origin: `M` deterministic objects behind plain HTTP/1.1.
//!
//! Routes:
//!
//! | method | path | answer |
//! |---|---|---|
//! | GET, HEAD | `/` | a small HTML index page linking a few objects |
//! | GET, HEAD | `/o/<i>` for `i` in `0..objects` | the object: `Cache-Control: public, max-age=<max_age>`, strong `ETag`, `Last-Modified`, `Content-Type`; a matching `If-None-Match` (or, without it, `If-Modified-Since`) → 304; HEAD has no body |
//! | GET | `/slow/<ms>` | a short text body after `ms` milliseconds (at most 60 s): a slow origin |
//! | GET | `/redirect/<i>` | 302 to `http://<Host>/o/<i>`: an absolute redirect to this origin |
//! | GET | `/vary/<i>` | a body naming the request's `Accept-Language`, with `Vary: Accept-Language` |
//! | POST | `/o/<i>/bump` | bumps the object's version (new body, new ETag); loopback clients only; answers the new ETag |
//! | GET | `/stats` | JSON request counts (below) |
//! | POST | `/stats/reset` | zeroes the counts (204) |
//!
//! Anything else is 404 (unknown path) or 405 (known path, other method).
//!
//! Content is a blake3 XOF stream keyed by `(seed, path, version)`, so two origins with the same
//! seed serve the same bytes; the ETag is a hash of the bytes.
//!
//! # `/stats` schema
//!
//! ```json
//! {"total": 12, "paths": {"/o/0": 10, "/o/3": 2}}
//! ```
//!
//! `total` (u64) counts every GET and HEAD the origin answered except those of `/stats` itself,
//! including 304s and 404s; `paths` maps each requested path to its count (absent = 0). The
//! load generator reads `total` each second to measure origin offload.

mod server;

pub use server::serve;

use bytes::Bytes;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::net::SocketAddr;
use tokio::net::TcpListener;

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

/// A running origin on a loopback port, for tests and the demo. Dropping it stops the server.
#[derive(Debug)]
pub struct Origin {
    addr: SocketAddr,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<std::io::Result<()>>>,
}

impl Origin {
    /// Validates `config`, binds `127.0.0.1:0` and serves in a background task.
    pub async fn start(config: OriginConfig) -> std::io::Result<Origin> {
        Self::start_on(config, "127.0.0.1:0".parse().expect("loopback address")).await
    }

    /// As [`Origin::start`], on `addr`.
    pub async fn start_on(config: OriginConfig, addr: SocketAddr) -> std::io::Result<Origin> {
        config
            .validate()
            .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidInput, e.to_string()))?;
        let listener = TcpListener::bind(addr).await?;
        let addr = listener.local_addr()?;
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let task = tokio::spawn(serve(config, listener, async move {
            let _ = stopped.await;
        }));
        Ok(Origin { addr, stop: Some(stop), task: Some(task) })
    }

    /// The bound address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://<addr>`, without a trailing slash.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// `http://<addr>/stats`, for `LoadConfig::origin_stats`.
    pub fn stats_url(&self) -> String {
        format!("http://{}/stats", self.addr)
    }

    /// Stops accepting, waits for open connections (bounded), and returns the server's result.
    pub async fn shutdown(mut self) -> std::io::Result<()> {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        match self.task.take() {
            Some(task) => task.await.unwrap_or(Ok(())),
            None => Ok(()),
        }
    }
}

impl Drop for Origin {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
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
