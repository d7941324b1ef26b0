//! Admission controls: the per-client-IP rate limit and PURGE authorisation.

use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};
use std::net::IpAddr;
use std::num::NonZeroU32;
use std::time::Duration;

/// A GCRA limit per client address (governor's keyed limiter).
#[derive(Debug)]
pub struct ClientLimits {
    limiter: DefaultKeyedRateLimiter<IpAddr>,
}

impl ClientLimits {
    /// `per_sec` sustained, `burst` at once, per client IP (0 is taken as 1).
    pub fn new(per_sec: u32, burst: u32) -> Self {
        let rate = NonZeroU32::new(per_sec).unwrap_or(NonZeroU32::MIN);
        let burst = NonZeroU32::new(burst).unwrap_or(NonZeroU32::MIN);
        ClientLimits { limiter: RateLimiter::keyed(Quota::per_second(rate).allow_burst(burst)) }
    }

    /// `Ok` to admit one request from `ip`, or how long it should wait (for `Retry-After`).
    pub fn check(&self, ip: IpAddr) -> Result<(), Duration> {
        self.limiter
            .check_key(&ip)
            .map_err(|not_until| not_until.wait_time_from(DefaultClock::default().now()))
    }

    /// Forgets clients whose limit has fully recovered; call periodically to bound memory.
    pub fn retain_recent(&self) {
        self.limiter.retain_recent();
    }
}

/// Whether a PURGE may proceed: always from loopback, otherwise only with
/// `Authorization: Bearer <token>` matching the configured admin token.
pub fn purge_allowed(peer: IpAddr, authorization: Option<&str>, token: Option<&str>) -> bool {
    let loopback = match peer {
        IpAddr::V4(v4) => v4.is_loopback(),
        IpAddr::V6(v6) => v6.is_loopback() || v6.to_ipv4_mapped().is_some_and(|v| v.is_loopback()),
    };
    if loopback {
        return true;
    }
    match (authorization.and_then(|a| a.trim().strip_prefix("Bearer ")), token) {
        (Some(given), Some(want)) if !want.is_empty() => constant_time_eq(given.trim(), want),
        _ => false,
    }
}

/// Compares without an early exit, so timing does not reveal the token's prefix.
fn constant_time_eq(a: &str, b: &str) -> bool {
    let (a, b) = (blake3::hash(a.as_bytes()), blake3::hash(b.as_bytes()));
    a == b // blake3::Hash's PartialEq is constant time
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn purge_authorisation() {
        let lo: IpAddr = "127.0.0.1".parse().unwrap();
        let lo6: IpAddr = "::1".parse().unwrap();
        let far: IpAddr = "203.0.113.9".parse().unwrap();
        assert!(purge_allowed(lo, None, None));
        assert!(purge_allowed(lo6, None, Some("t")));
        assert!(!purge_allowed(far, None, None));
        assert!(!purge_allowed(far, Some("Bearer t"), None));
        assert!(!purge_allowed(far, Some("Bearer "), Some("")));
        assert!(!purge_allowed(far, Some("Bearer x"), Some("t")));
        assert!(!purge_allowed(far, Some("Basic t"), Some("t")));
        assert!(purge_allowed(far, Some("Bearer t"), Some("t")));
    }

    #[test]
    fn burst_then_refused() {
        let l = ClientLimits::new(1, 3);
        let ip: IpAddr = "192.0.2.1".parse().unwrap();
        assert!((0..3).all(|_| l.check(ip).is_ok()));
        let wait = l.check(ip).unwrap_err();
        assert!(wait <= Duration::from_secs(1));
        assert!(l.check("192.0.2.2".parse().unwrap()).is_ok());
        l.retain_recent();
    }
}
