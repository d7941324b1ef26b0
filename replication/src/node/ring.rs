//! The read-only view of the ring that the replication sub-machine works over: who we are,
//! which keys are ours, where a key goes next, and our fingers.

use crate::id::Id;
use crate::message::NextHop;
use crate::peer::{Peer, PeerTable};
use crate::routing::Routing;

/// Borrowed from the node for one input; replication never changes routing state.
#[derive(Debug, Clone, Copy)]
pub(crate) struct RingView<'a> {
    routing: &'a Routing,
    peers: &'a PeerTable,
}

impl<'a> RingView<'a> {
    pub fn new(routing: &'a Routing, peers: &'a PeerTable) -> Self {
        RingView { routing, peers }
    }

    pub fn me(&self) -> Peer {
        self.routing.me()
    }

    /// Whether we are `key`'s home; `named` is a lookup's `as_home` flag (the asker already
    /// believes we are).
    pub fn is_home(&self, key: Id, named: bool) -> bool {
        self.routing.is_home(key, named, |p| self.peers.is_suspected(p))
    }

    /// Whether we are `key`'s home by our own view of the ring.
    pub fn owns(&self, key: Id) -> bool {
        self.is_home(key, false)
    }

    /// The peer a count or report for `key` goes to next; `None` if we are its home.
    pub fn next_hop(&self, key: Id) -> Option<Peer> {
        let hop = self.routing.route(key, None, false, |p| self.peers.is_suspected(p), 1);
        match hop {
            NextHop::Here | NextHop::Have { .. } => None,
            NextHop::Successors(l) | NextHop::Closer(l) => l.first().copied(),
        }
    }

    /// Our fingers, each peer once.
    pub fn fingers(&self) -> &'a [Peer] {
        self.routing.distinct_fingers()
    }

    pub fn successor(&self) -> Option<Peer> {
        self.routing.successors().first().copied()
    }
}
