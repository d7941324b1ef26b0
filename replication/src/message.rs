//! The messages nodes exchange. Every request gets exactly one response (or a timeout).
//!
//! Serialization is the transport's business (the live node's codec, the simulator's byte
//! counter); here messages are plain data with serde derives, and [`Message::validate`] holds
//! the size limits every receiver enforces before touching state.

use crate::beehive::wire::{
    self, LevelResult, ObjectInfo, Offer, OfferList, Pull, Report, MAX_LEVELS,
};
use crate::error::ProtocolError;
use crate::id::Id;
use crate::peer::Peer;
use serde::{Deserialize, Serialize};

/// Correlates a response with the request that asked for it. Unique per sender.
pub type RequestId = u64;

/// Most peers any message may list. A successor list is at most this long, so a longer list
/// is malformed rather than generous.
pub const MAX_LISTED_PEERS: usize = 64;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum Message {
    Request { id: RequestId, body: Request },
    Response { id: RequestId, body: Response },
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum Request {
    /// Are you alive? (check-predecessor, and probes of suspected peers)
    Ping,
    /// "I believe you are my successor": Chord's notify and the stabilize query in one
    /// round trip. Answered with [`Response::Neighbors`].
    Stabilize,
    /// One step of an iterative lookup: who is the home of `key`, or whom should I ask next?
    /// `as_home` says the asker was told the receiver is the key's home (a `Successors`
    /// answer), which settles the question when the receiver has no live predecessor.
    /// `want_object` says a copy is as good as the home: a holder answers [`NextHop::Have`].
    FindNext { key: Id, as_home: bool, want_object: bool },
    /// A graceful departure: the sender leaves the ring; splice it out.
    Leaving { predecessor: Option<Peer>, successors: Vec<Peer> },
    /// Once per replication interval, to each finger: counts toward homes, the report toward
    /// the leader, and "which of your objects should I hold?". Answered with
    /// [`Response::Offers`].
    Pull(Box<Pull>),
    /// Passive mode: a lookup for this object passed you; fetch it from `holder` and cache it.
    Cache { offer: Offer, holder: Peer },
    /// Versions of `key` below `min_version` are void: drop them, and pass this on to the
    /// fingers in `(you, limit)` whose part of the ring meets the replica arc
    /// `(arc_start, key]` (a range broadcast, O(log N) deep).
    Invalidate { key: Id, min_version: u64, arc_start: Id, limit: Id },
    /// New offers for a node that pulled from the sender lately: a copy the sender just
    /// stored, or a level its home just changed. The pull tree carries them downstream at
    /// once instead of one pull per interval and hop, so a promoted object fills its arc
    /// within an interval. Answered with [`Response::Ack`].
    Push { offers: Vec<Offer> },
    /// A report that reached the sender after the sender's tick for its generation: passed
    /// on toward key 0 at once rather than an interval late. Answered with [`Response::Ack`].
    Report(Box<Report>),
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum Response {
    Pong,
    Ack,
    /// The responder's predecessor (after taking the notify into account) and successor list.
    Neighbors {
        predecessor: Option<Peer>,
        successors: Vec<Peer>,
    },
    Next(NextHop),
    /// The objects whose replica arc contains the puller, and the responder's leader result
    /// if it is newer than the puller's.
    Offers {
        list: OfferList,
        result: Option<LevelResult>,
    },
}

/// The answer to one lookup step. A lookup ends only when a node answers [`NextHop::Here`],
/// so it never ends at a node that is not there to answer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum NextHop {
    /// "I am the home of the key."
    Here,
    /// "The key lies between me and my successor": the home is the first live node of this
    /// list (the responder's successors, nearest first). Ask them in order.
    Successors(Vec<Peer>),
    /// "Ask one of these next": nodes strictly between the responder and the key, closest
    /// to the key first. Several, so the asker can route around a dead one by itself.
    Closer(Vec<Peer>),
    /// "I hold the object" (its home or a copy), at `level`; `object` is `None` while the
    /// home has not fetched the body from the origin yet. Only for `want_object` lookups.
    Have { level: u8, object: Option<ObjectInfo> },
}

impl Message {
    /// Rejects messages no correct node sends: oversized peer lists, out-of-range figures.
    pub fn validate(&self) -> Result<(), ProtocolError> {
        match self {
            Message::Request { body: Request::Pull(pull), .. } => wire::check_pull(pull)?,
            Message::Request { body: Request::Report(report), .. } => wire::check_report(report)?,
            Message::Response { body: Response::Offers { list, result }, .. } => {
                wire::check_offers(list, result.as_ref())?
            }
            Message::Request { body: Request::Push { offers }, .. } => {
                wire::check_offer_items(offers)?
            }
            Message::Response { body: Response::Next(NextHop::Have { level, .. }), .. }
                if usize::from(*level) >= MAX_LEVELS =>
            {
                return Err(ProtocolError::Malformed("level beyond the ring's levels"))
            }
            _ => {}
        }
        let listed = match self {
            Message::Request { body: Request::Leaving { successors, .. }, .. } => successors.len(),
            Message::Response { body: Response::Neighbors { successors, .. }, .. } => {
                successors.len()
            }
            Message::Response {
                body: Response::Next(NextHop::Closer(c) | NextHop::Successors(c)),
                ..
            } => c.len(),
            _ => 0,
        };
        if listed > MAX_LISTED_PEERS {
            return Err(ProtocolError::TooManyPeers { listed, max: MAX_LISTED_PEERS });
        }
        Ok(())
    }

    /// Replication control traffic (as opposed to Chord's maintenance and lookups), for the
    /// simulator's per-interval figures. Exhaustive, so a new kind has to be placed.
    pub fn is_replication(&self) -> bool {
        match self {
            Message::Request { body, .. } => match body {
                Request::Pull(_)
                | Request::Cache { .. }
                | Request::Invalidate { .. }
                | Request::Push { .. }
                | Request::Report(_) => true,
                Request::Ping
                | Request::Stabilize
                | Request::FindNext { .. }
                | Request::Leaving { .. } => false,
            },
            Message::Response { body, .. } => match body {
                Response::Offers { .. } => true,
                Response::Pong | Response::Ack | Response::Neighbors { .. } | Response::Next(_) => {
                    false
                }
            },
        }
    }

    /// A short name for the message kind, for per-kind metrics and the event log.
    pub fn kind(&self) -> &'static str {
        match self {
            Message::Request { body, .. } => match body {
                Request::Ping => "ping",
                Request::Stabilize => "stabilize",
                Request::FindNext { .. } => "find_next",
                Request::Leaving { .. } => "leaving",
                Request::Pull(_) => "pull",
                Request::Cache { .. } => "cache",
                Request::Invalidate { .. } => "invalidate",
                Request::Push { .. } => "push",
                Request::Report(_) => "report",
            },
            Message::Response { body, .. } => match body {
                Response::Pong => "pong",
                Response::Ack => "ack",
                Response::Neighbors { .. } => "neighbors",
                Response::Next(_) => "next",
                Response::Offers { .. } => "offers",
            },
        }
    }
}
