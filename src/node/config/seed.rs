//! Seeds: the nodes a new node joins the ring through.

use super::error::{invalid, ConfigError};
use std::fmt;
use std::net::SocketAddr;

/// A node to join through, as configured: an address, or a host name that the node resolves
/// when it starts (a compose service, a Kubernetes headless service), so that seeds need not
/// have fixed addresses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Seed {
    Addr(SocketAddr),
    Host { name: String, port: u16 },
}

impl Seed {
    pub fn parse(s: &str) -> Result<Seed, ConfigError> {
        const FIX: &str = "give the seed's advertised IP:PORT or HOST:PORT, e.g. node1:7000";
        let s = s.trim();
        if let Ok(a) = s.parse::<SocketAddr>() {
            if a.ip().is_unspecified() || a.port() == 0 {
                return Err(invalid("join", s, FIX));
            }
            return Ok(Seed::Addr(a));
        }
        let (name, port) = s.rsplit_once(':').ok_or_else(|| invalid("join", s, FIX))?;
        let port: u16 =
            port.parse().ok().filter(|p| *p != 0).ok_or_else(|| invalid("join", s, FIX))?;
        // RFC 1123 host names: letters, digits, '-' and '.'; anything else (an IPv6 address
        // without brackets, a URL) is a mistake better named now than at resolution.
        let valid = !name.is_empty()
            && name.len() <= 253
            && name.split('.').all(|l| {
                !l.is_empty()
                    && l.len() <= 63
                    && !l.starts_with('-')
                    && !l.ends_with('-')
                    && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
            });
        if !valid {
            return Err(invalid("join", s, FIX));
        }
        Ok(Seed::Host { name: name.to_string(), port })
    }

    /// The seed's addresses: itself, or what its name resolves to now.
    pub async fn resolve(&self) -> std::io::Result<Vec<SocketAddr>> {
        match self {
            Seed::Addr(a) => Ok(vec![*a]),
            Seed::Host { name, port } => {
                Ok(tokio::net::lookup_host((name.as_str(), *port)).await?.collect())
            }
        }
    }
}

impl fmt::Display for Seed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Seed::Addr(a) => write!(f, "{a}"),
            Seed::Host { name, port } => write!(f, "{name}:{port}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seeds_are_addresses_or_host_names() {
        assert_eq!(
            Seed::parse(" 10.0.0.2:7000").unwrap(),
            Seed::Addr("10.0.0.2:7000".parse().unwrap())
        );
        assert_eq!(Seed::parse("[::1]:7000").unwrap(), Seed::Addr("[::1]:7000".parse().unwrap()));
        let host = Seed::parse("beehive-0.beehive-peers:7000").unwrap();
        assert_eq!(host, Seed::Host { name: "beehive-0.beehive-peers".into(), port: 7000 });
        assert_eq!(host.to_string(), "beehive-0.beehive-peers:7000");
        for bad in [
            "node1",
            "node1:0",
            "node1:x",
            ":7000",
            "::1:7000",
            "http://a:7000",
            "a..b:1",
            "-a:1",
            "0.0.0.0:7000",
        ] {
            assert!(
                matches!(Seed::parse(bad), Err(ConfigError::Invalid { field: "join", .. })),
                "{bad} accepted"
            );
        }
    }

    #[tokio::test]
    async fn a_seed_name_resolves() {
        let addrs = Seed::parse("localhost:7000").unwrap().resolve().await.unwrap();
        assert!(
            !addrs.is_empty() && addrs.iter().all(|a| a.ip().is_loopback() && a.port() == 7000),
            "{addrs:?}"
        );
    }
}
