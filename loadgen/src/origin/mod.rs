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
//! | GET | `/o/<i>/hash` | the hex blake3 of the object's current body (for `loadgen --verify`; not counted in `/stats`) |
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
//! `total` (u64) counts every GET and HEAD the origin answered except those of `/stats` itself
//! and of `/o/<i>/hash`, including 304s and 404s; `paths` maps each requested path to its count
//! (absent = 0). The load generator reads `total` each second to measure origin offload.

mod catalog;
mod server;

pub use catalog::{etag_of, OriginConfig, OriginError, OriginStats, SizeMix};
pub use server::serve;

use std::net::SocketAddr;
use tokio::net::TcpListener;

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
