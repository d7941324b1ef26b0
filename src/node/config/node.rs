//! The validated node configuration and its defaults.

use super::error::{invalid, ConfigError};
use super::seed::Seed;
use beehive_proxy::ProxyConfig;
use beehive_replication::ChordConfig;
use std::fmt;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::Duration;

/// Default RPC and admin listen addresses: loopback, so a node is private until configured.
pub const DEFAULT_RPC: SocketAddr = SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), 7000);
pub const DEFAULT_ADMIN: SocketAddr = SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), 9090);
/// The shortest cluster secret accepted.
pub const MIN_SECRET_LEN: usize = 16;

/// Which replication the node runs (docs/replication.md, "Baselines"); the core's own setting.
pub use beehive_replication::config::Mode;

/// The cluster secret. Its `Debug` never shows it.
#[derive(Clone, PartialEq, Eq, Default)]
pub struct Secret(pub(super) Vec<u8>);

impl Secret {
    pub fn expose(&self) -> &[u8] {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Secret(<{} bytes redacted>)", self.0.len())
    }
}

/// A validated node configuration: the node's own settings around the core's
/// [`ChordConfig`] and the HTTP face's [`ProxyConfig`], which hold the rest.
#[derive(Debug, Clone)]
pub struct NodeConfig {
    pub http: Option<SocketAddr>,
    pub rpc: SocketAddr,
    pub admin: SocketAddr,
    /// `None`: advertise the bound RPC address (only allowed for a specific IP).
    pub advertise: Option<SocketAddr>,
    pub join: Vec<Seed>,
    pub secret: Secret,
    /// Ring, replication mode, C, budget and every period.
    pub chord: ChordConfig,
    /// The HTTP face; its `max_object_bytes` is also the cap on a body moved between nodes
    /// (an object the ring cannot carry in one frame is passed to the origin instead).
    pub proxy: ProxyConfig,
    pub shutdown_bound: Duration,
}

impl Default for NodeConfig {
    fn default() -> Self {
        NodeConfig {
            http: None,
            rpc: DEFAULT_RPC,
            admin: DEFAULT_ADMIN,
            advertise: None,
            join: Vec::new(),
            secret: Secret::default(),
            chord: ChordConfig::default(),
            proxy: ProxyConfig::default(),
            shutdown_bound: Duration::from_secs(5),
        }
    }
}

impl NodeConfig {
    /// The checks that involve more than one setting.
    pub(super) fn check(&self) -> Result<(), ConfigError> {
        let listeners = [("rpc", Some(self.rpc)), ("admin", Some(self.admin)), ("http", self.http)];
        for (i, (field, a)) in listeners.iter().enumerate() {
            let Some(a) = a.filter(|a| a.port() != 0) else { continue };
            if let Some((other, _)) = listeners[..i].iter().find(|(_, b)| *b == Some(a)) {
                return Err(invalid(
                    field,
                    a,
                    format!("already taken by `{other}`; pick another port"),
                ));
            }
        }
        match self.advertise {
            Some(a) if a.ip().is_unspecified() || a.port() == 0 => {
                return Err(invalid(
                    "advertise",
                    a,
                    "give the specific IP and port other nodes can reach this node at",
                ))
            }
            None if self.rpc.ip().is_unspecified() => {
                return Err(ConfigError::Missing {
                    field: "advertise",
                    fix: format!(
                        "rpc listens on {}, which names no single address; set --advertise \
                         to the IP:PORT other nodes reach this node at",
                        self.rpc
                    ),
                })
            }
            _ => {}
        }
        self.chord.validate().map_err(|e| invalid(e.field, "", e.reason))?;
        self.proxy.validate().map_err(|e| invalid("http", "", e.0))
    }
}
