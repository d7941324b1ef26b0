//! What a node hands its caller: messages to send and events to act on.

use crate::beehive::wire::Offer;
use crate::id::Id;
use crate::lookup::{LookupId, ObjectAnswer};
use crate::message::Message;
use crate::peer::Peer;

/// A message the caller must deliver to `to`.
#[derive(Debug, Clone, PartialEq)]
pub struct Transmit {
    pub to: Peer,
    pub message: Message,
}

/// Something the caller may want to act on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// The join lookup answered: `successor` is our first successor.
    Joined { successor: Peer },
    /// No seed answered; the node retries after a backoff.
    JoinFailed,
    /// A caller's lookup ended: `home` is successor(key) as the ring sees it. For an object
    /// lookup ([`crate::Node::fetch`]) `home` is the node that answered (the home or a holder
    /// of a copy) and `served` says what it holds.
    LookupDone { id: LookupId, key: Id, home: Peer, hops: u32, served: Option<ObjectAnswer> },
    /// A caller's lookup ran out of candidates or hops.
    LookupFailed { id: LookupId, key: Id, hops: u32 },
    /// Our predecessor changed, so the arc of keys we are home for changed.
    PredecessorChanged { old: Option<Peer>, new: Option<Peer> },
    /// Fetch the body `offer` describes from `from`, check its blake3 against `offer.info.hash`,
    /// then call [`crate::Node::replica_stored`] (or [`crate::Node::fetch_failed`]).
    FetchBody { from: Peer, offer: Offer },
    /// We are home for `key` and have no body: fetch it from the origin and call
    /// [`crate::Node::put_home`].
    NeedObject { key: Id },
    /// The core no longer holds `key` (lease expired, purged, home moved): drop the body.
    Evict { key: Id },
}
