//! One client connection's two timeouts, which hyper does not tell apart.
//!
//! hyper's header-read timer also runs while a keep-alive connection waits for its next
//! request, so an idle connection used to be cut at the header timeout (5 s), without a word,
//! racing the client's next request (which the client then had to retry). Here:
//!
//! * the **header timeout** runs from the first byte of a request to its complete head (the
//!   service being called), and only then: a slow-loris client is dropped. A response still
//!   being written restarts it (a pipelined head waits in hyper's buffer until then);
//! * the **idle timeout** (much longer) runs while no request is under way and nothing moves;
//!   an idle connection is then closed cleanly, through hyper's graceful shutdown (FIN after
//!   the last response, never mid-request).
//!
//! [`Tracked`] wraps the socket to see bytes move; [`Activity`] is what it and the service
//! share; [`Activity::expired`] is what the connection task polls.

use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// "No request head under way".
const NONE: u64 = u64::MAX;

/// What moved on one connection, in milliseconds since it was accepted.
#[derive(Debug)]
pub(crate) struct Activity {
    start: Instant,
    /// When bytes were last read or written.
    last_io: AtomicU64,
    /// When bytes were last written (or a response was ready).
    last_write: AtomicU64,
    /// When the first byte of a request head arrived, while no request was being served;
    /// [`NONE`] otherwise.
    head_since: AtomicU64,
    /// Requests handed to the service and not yet answered.
    active: AtomicUsize,
}

/// Which timeout ran out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Expired {
    /// A request head did not complete in time: drop the connection.
    Header,
    /// Nothing under way for the idle timeout: close the connection cleanly.
    Idle,
}

impl Activity {
    pub(crate) fn new() -> Arc<Self> {
        Arc::new(Activity {
            start: Instant::now(),
            last_io: AtomicU64::new(0),
            last_write: AtomicU64::new(0),
            head_since: AtomicU64::new(NONE),
            active: AtomicUsize::new(0),
        })
    }

    fn now_ms(&self) -> u64 {
        u64::try_from(self.start.elapsed().as_millis()).unwrap_or(NONE - 1)
    }

    fn on_read(&self) {
        let now = self.now_ms();
        self.last_io.store(now, Ordering::Relaxed);
        if self.active.load(Ordering::Acquire) == 0 {
            // Bytes while nothing is being served start a request head (a no-op if one is
            // already under way).
            let _ =
                self.head_since.compare_exchange(NONE, now, Ordering::AcqRel, Ordering::Relaxed);
        }
    }

    fn on_write(&self) {
        let now = self.now_ms();
        self.last_io.store(now, Ordering::Relaxed);
        self.last_write.store(now, Ordering::Relaxed);
    }

    /// A request head is complete and the service has it; the request counts as under way
    /// until the guard drops.
    pub(crate) fn request(self: &Arc<Self>) -> RequestGuard {
        self.active.fetch_add(1, Ordering::AcqRel);
        self.head_since.store(NONE, Ordering::Release);
        RequestGuard(self.clone())
    }

    /// Which timeout, if any, has run out.
    pub(crate) fn expired(&self, header: Duration, idle: Duration) -> Option<Expired> {
        let now = self.now_ms();
        let head_since = self.head_since.load(Ordering::Acquire);
        if head_since != NONE {
            let since = head_since.max(self.last_write.load(Ordering::Relaxed));
            return (now.saturating_sub(since) > millis(header)).then_some(Expired::Header);
        }
        let quiet = now.saturating_sub(self.last_io.load(Ordering::Relaxed));
        (self.active.load(Ordering::Acquire) == 0 && quiet > millis(idle)).then_some(Expired::Idle)
    }
}

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

/// Marks a request under way; dropping it (the response is ready) counts as activity.
pub(crate) struct RequestGuard(Arc<Activity>);

impl Drop for RequestGuard {
    fn drop(&mut self) {
        self.0.on_write();
        self.0.active.fetch_sub(1, Ordering::AcqRel);
    }
}

/// A socket that reports to its [`Activity`] whenever bytes move.
pub(crate) struct Tracked<T> {
    inner: T,
    activity: Arc<Activity>,
}

impl<T> Tracked<T> {
    pub(crate) fn new(inner: T, activity: Arc<Activity>) -> Self {
        Tracked { inner, activity }
    }
}

impl<T: AsyncRead + Unpin> AsyncRead for Tracked<T> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let polled = Pin::new(&mut self.inner).poll_read(cx, buf);
        if matches!(polled, Poll::Ready(Ok(()))) && buf.filled().len() > before {
            self.activity.on_read();
        }
        polled
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for Tracked<T> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let polled = Pin::new(&mut self.inner).poll_write(cx, buf);
        if matches!(polled, Poll::Ready(Ok(n)) if n > 0) {
            self.activity.on_write();
        }
        polled
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let polled = Pin::new(&mut self.inner).poll_write_vectored(cx, bufs);
        if matches!(polled, Poll::Ready(Ok(n)) if n > 0) {
            self.activity.on_write();
        }
        polled
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_started_head_expires_at_the_header_timeout_an_idle_connection_at_the_idle_one() {
        let (header, idle) = (Duration::from_millis(20), Duration::from_millis(60));
        let a = Activity::new();
        assert_eq!(a.expired(header, idle), None);
        // Idle past the header timeout: nothing has expired yet.
        std::thread::sleep(Duration::from_millis(30));
        assert_eq!(a.expired(header, idle), None);
        // A request head starts and does not complete.
        a.on_read();
        std::thread::sleep(Duration::from_millis(30));
        assert_eq!(a.expired(header, idle), Some(Expired::Header));
        // Unless a response is still being written (the head is a pipelined one).
        a.on_write();
        assert_eq!(a.expired(header, idle), None);
        std::thread::sleep(Duration::from_millis(30));
        assert_eq!(a.expired(header, idle), Some(Expired::Header));
        // It completes; while it is served, nothing expires however long it takes.
        let guard = a.request();
        std::thread::sleep(Duration::from_millis(80));
        a.on_read(); // body bytes of the request being served
        assert_eq!(a.expired(header, idle), None);
        drop(guard);
        assert_eq!(a.expired(header, idle), None);
        std::thread::sleep(Duration::from_millis(80));
        assert_eq!(a.expired(header, idle), Some(Expired::Idle));
    }
}
