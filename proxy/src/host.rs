//! Host mapping (`NAME.<suffix>` and open mode's `host[.PORT].<suffix>`) and the SSRF guard.

use crate::config::ProxyConfig;
use ipnet::IpNet;
use serde::{Deserialize, Serialize};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use thiserror::Error;

/// The origin a request is for.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Target {
    /// Origin host name or address literal, lowercased.
    pub host: String,
    /// Origin port.
    pub port: u16,
    /// Reached through open mode (methods other than GET/HEAD/PURGE get 405). The SSRF check
    /// does not trust this flag: the origin client checks every origin that is not one of its
    /// own node's named origins.
    pub open: bool,
}

impl Target {
    /// `host:port` as the cache key and the `Host` header to the origin spell it.
    pub fn authority(&self) -> String {
        if self.port == 80 {
            self.host.clone()
        } else {
            format!("{}:{}", self.host, self.port)
        }
    }
}

/// Why a Host header maps to no origin (all answered with 400).
#[derive(Debug, Clone, Error, PartialEq, Eq)]
pub enum HostError {
    /// No Host header, or one that is not a valid host name.
    #[error("missing or malformed Host header")]
    Malformed,
    /// A well-formed host that names no origin served here.
    #[error("unknown host")]
    Unknown,
}

/// Maps a `Host` header value to its origin. Every request passes here, so a lowercase
/// header (what browsers and load generators send) is mapped without allocating.
pub fn map_host(host_header: &str, config: &ProxyConfig) -> Result<Target, HostError> {
    let name = strip_port(host_header.trim())?;
    let name = name.strip_suffix('.').unwrap_or(name);
    if name.is_empty() || !name.as_bytes().split(|&b| b == b'.').all(valid_label) {
        return Err(HostError::Malformed);
    }
    // Valid labels are ASCII, so byte offsets below are character boundaries.
    let lower;
    let name = if name.bytes().any(|b| b.is_ascii_uppercase()) {
        lower = name.to_ascii_lowercase();
        lower.as_str()
    } else {
        name
    };
    let suffix = config.suffix.as_str();
    let Some(prefix) = name
        .len()
        .checked_sub(suffix.len() + 1)
        .filter(|&dot| name.as_bytes()[dot] == b'.' && name[dot + 1..].eq_ignore_ascii_case(suffix))
        .map(|dot| &name[..dot])
    else {
        return Err(HostError::Unknown);
    };
    if let Some((host, port)) = config.origins.get(prefix) {
        return Ok(Target { host: host.to_ascii_lowercase(), port: *port, open: false });
    }
    if !config.open_mode {
        return Err(HostError::Unknown);
    }
    // A dotted-quad is a host on its own; otherwise a trailing all-digit label is the port.
    if prefix.parse::<Ipv4Addr>().is_ok() {
        return Ok(Target { host: prefix.to_string(), port: 80, open: true });
    }
    if let Some((host, last)) = prefix.rsplit_once('.') {
        if last.bytes().all(|b| b.is_ascii_digit()) {
            let port = last.parse::<u16>().map_err(|_| HostError::Malformed)?;
            if port == 0 {
                return Err(HostError::Malformed);
            }
            return Ok(Target { host: host.to_string(), port, open: true });
        }
    }
    Ok(Target { host: prefix.to_string(), port: 80, open: true })
}

/// Strips `:port` from a Host value; IPv6 literals are not CDN names and are refused.
fn strip_port(h: &str) -> Result<&str, HostError> {
    if h.starts_with('[') {
        return Err(HostError::Malformed);
    }
    match h.split_once(':') {
        None => Ok(h),
        Some((name, port)) if !port.is_empty() && port.parse::<u16>().is_ok() => Ok(name),
        Some(_) => Err(HostError::Malformed),
    }
}

fn valid_label(l: &[u8]) -> bool {
    !l.is_empty()
        && l.len() <= 63
        && l.iter().all(|&b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        && l[0] != b'-'
}

/// Whether open mode must refuse `ip`: loopback, private, link-local, multicast, unspecified,
/// and similar non-public ranges, unless an allow-listed network contains it.
pub fn is_forbidden(ip: IpAddr, allow: &[IpNet]) -> bool {
    if allow.iter().any(|n| n.contains(&ip)) {
        return false;
    }
    match ip {
        IpAddr::V4(v4) => forbidden_v4(v4),
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => forbidden_v4(v4),
            None => forbidden_v6(v6),
        },
    }
}

fn forbidden_v4(ip: Ipv4Addr) -> bool {
    let o = ip.octets();
    ip.is_loopback()
        || ip.is_private()
        || ip.is_link_local()
        || ip.is_multicast()
        || ip.is_unspecified()
        || ip.is_broadcast()
        || o[0] == 0 // "this network"
        || (o[0] == 100 && (o[1] & 0xc0) == 64) // carrier-grade NAT 100.64/10
        || o[0] >= 240 // reserved
}

fn forbidden_v6(ip: Ipv6Addr) -> bool {
    let s = ip.segments();
    ip.is_loopback()
        || ip.is_unspecified()
        || ip.is_multicast()
        || (s[0] & 0xfe00) == 0xfc00 // unique local fc00::/7
        || (s[0] & 0xffc0) == 0xfe80 // link-local fe80::/10
        || (s[0] == 0 && s[1] == 0 && s[2] == 0 && s[3] == 0 && s[4] == 0 && s[5] == 0)
    // v4-compatible
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(open: bool) -> ProxyConfig {
        let mut c = ProxyConfig { open_mode: open, ..ProxyConfig::default() };
        c.origins.insert("site1".into(), ("127.0.0.1".into(), 9000));
        c
    }

    #[test]
    fn host_mapping_table() {
        let t = |h: &str, open: bool| map_host(h, &cfg(open));
        let named = Target { host: "127.0.0.1".into(), port: 9000, open: false };
        assert_eq!(t("site1.beehive.localhost", false), Ok(named.clone()));
        assert_eq!(t("SITE1.Beehive.Localhost:8080", false), Ok(named.clone()));
        assert_eq!(t("site1.beehive.localhost.", false), Ok(named));
        assert_eq!(t("example.com.beehive.localhost", false), Err(HostError::Unknown));
        assert_eq!(t("beehive.localhost", true), Err(HostError::Unknown));
        assert_eq!(t("example.org", true), Err(HostError::Unknown));
        let open = |h: &str, p: u16| Ok(Target { host: h.into(), port: p, open: true });
        assert_eq!(t("example.com.beehive.localhost", true), open("example.com", 80));
        assert_eq!(t("example.com.8080.beehive.localhost:1", true), open("example.com", 8080));
        assert_eq!(t("127.0.0.1.beehive.localhost", true), open("127.0.0.1", 80));
        assert_eq!(t("10.0.0.1.81.beehive.localhost", true), open("10.0.0.1", 81));
        assert_eq!(t("a.99999.beehive.localhost", true), Err(HostError::Malformed));
        assert_eq!(t("a.0.beehive.localhost", true), Err(HostError::Malformed));
        for bad in ["", ":80", "a..b.beehive.localhost", "a b.beehive.localhost", "x:y", "[::1]:80"]
        {
            assert_eq!(t(bad, true), Err(HostError::Malformed), "{bad:?}");
        }
    }

    #[test]
    fn address_classifier() {
        let no: Vec<IpNet> = vec![];
        for bad in [
            "127.0.0.1",
            "10.1.2.3",
            "172.16.0.1",
            "172.31.255.255",
            "192.168.1.1",
            "169.254.169.254",
            "224.0.0.1",
            "0.0.0.0",
            "255.255.255.255",
            "100.64.0.1",
            "::1",
            "::",
            "fc00::1",
            "fd12::1",
            "fe80::1",
            "ff02::1",
            "::ffff:127.0.0.1",
            "::ffff:10.0.0.1",
        ] {
            assert!(is_forbidden(bad.parse().unwrap(), &no), "{bad}");
        }
        for good in ["93.184.216.34", "172.32.0.1", "8.8.8.8", "2606:4700::1111"] {
            assert!(!is_forbidden(good.parse().unwrap(), &no), "{good}");
        }
        let allow: Vec<IpNet> = vec!["127.0.0.0/8".parse().unwrap()];
        assert!(!is_forbidden("127.0.0.1".parse().unwrap(), &allow));
        assert!(is_forbidden("10.0.0.1".parse().unwrap(), &allow));
    }
}
