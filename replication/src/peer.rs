//! Peers: who they are, and how much we currently trust them to answer.

use crate::hash::FastMap;
use crate::id::Id;
use crate::rtt::RttEstimator;
use crate::time::Time;
use serde::{Deserialize, Serialize};
use std::fmt;
use std::net::SocketAddr;

/// A node as others see it: its ring id and the address its RPC listener advertises.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Peer {
    pub id: Id,
    pub addr: SocketAddr,
}

impl Peer {
    /// A peer whose id is derived from its advertised address, the default for every node.
    pub fn from_addr(addr: SocketAddr) -> Self {
        Peer { id: Id::hash(addr.to_string().as_bytes()), addr }
    }
}

impl fmt::Debug for Peer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?}@{}", self.id, self.addr)
    }
}

/// What we know of one peer's liveness.
#[derive(Debug, Clone, Default)]
pub struct Standing {
    pub rtt: RttEstimator,
    /// Requests in a row that went unanswered. Any answer resets it.
    pub misses: u32,
    /// When we last heard anything from the peer.
    pub last_heard: Option<Time>,
}

impl Standing {
    /// A suspected peer is routed around at once but not yet forgotten (Bamboo).
    pub fn suspected(&self) -> bool {
        self.misses > 0
    }
}

/// Standing of every peer we route through, keyed by id.
///
/// Entries are created when we first send to or hear from a peer and dropped when the peer
/// leaves every routing structure, so the table stays O(log N).
#[derive(Debug, Default)]
pub struct PeerTable {
    peers: FastMap<Id, Standing>,
}

impl PeerTable {
    pub fn get(&self, id: Id) -> Option<&Standing> {
        self.peers.get(&id)
    }

    pub fn entry(&mut self, id: Id) -> &mut Standing {
        self.peers.entry(id).or_default()
    }

    pub fn is_suspected(&self, id: Id) -> bool {
        self.peers.get(&id).is_some_and(Standing::suspected)
    }

    /// Records that the peer answered (or spoke to us): it is no longer suspected.
    pub fn heard_from(&mut self, id: Id, now: Time) {
        let s = self.entry(id);
        s.misses = 0;
        s.last_heard = Some(now);
    }

    /// Records a missed request; returns the number of misses in a row.
    pub fn missed(&mut self, id: Id) -> u32 {
        let s = self.entry(id);
        s.misses = s.misses.saturating_add(1);
        s.misses
    }

    pub fn remove(&mut self, id: Id) {
        self.peers.remove(&id);
    }

    /// Drops entries for which `keep` is false (peers no longer referenced).
    pub fn retain(&mut self, mut keep: impl FnMut(Id, &Standing) -> bool) {
        self.peers.retain(|id, s| keep(*id, s));
    }

    pub fn len(&self) -> usize {
        self.peers.len()
    }

    pub fn is_empty(&self) -> bool {
        self.peers.is_empty()
    }

    pub fn suspected(&self) -> impl Iterator<Item = Id> + '_ {
        self.peers.iter().filter(|(_, s)| s.suspected()).map(|(id, _)| *id)
    }
}
