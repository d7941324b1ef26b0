//! Why the core refused an input. Every variant leaves the node's state as it was, except
//! where the variant says otherwise: a refused message is simply not applied.

use crate::id::Id;
use thiserror::Error;

#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum ProtocolError {
    /// A response to a request we never sent or already gave up on. Ignored; state unchanged.
    #[error("response {id} matches no outstanding request (late or forged); ignored")]
    UnknownRequest { id: u64 },
    /// A response came from a peer other than the one asked. Ignored; the request stays open.
    #[error("response {id} came from {from:?}, but the request went to {to:?}; ignored")]
    WrongResponder { id: u64, from: Id, to: Id },
    /// The response does not answer the request (a pong to a lookup step, say). Ignored; the
    /// request stays open and will count as a miss if no proper answer follows.
    #[error("response {id} ({got}) does not answer a {expected} request; ignored")]
    MismatchedResponse { id: u64, expected: &'static str, got: &'static str },
    /// A message listed more peers than any correct node ever does. Ignored.
    #[error("message lists {listed} peers, more than the limit of {max}; ignored")]
    TooManyPeers { listed: usize, max: usize },
    /// A lookup step named a node that is not strictly closer to the key than the responder,
    /// which would let a faulty node send lookups in circles. The bad entries are dropped.
    #[error(
        "lookup step for {key:?} from {from:?} named {named:?}, which is not closer to the key"
    )]
    NoProgress { key: Id, from: Id, named: Id },
    /// A lookup step named as the key's home a node that does not lie past the key. The step
    /// is ignored; the lookup goes on with its other candidates.
    #[error(
        "lookup step for {key:?} from {from:?} named {named:?} as home, but it lies before the key"
    )]
    NotPastKey { key: Id, from: Id, named: Id },
    /// A message claimed to come from this node's own id. Ignored.
    #[error("message claims to come from this node's own id {0:?}; ignored")]
    FromSelf(Id),
    /// A field no correct node sends (too many entries, a NaN rate, a level past the ring's).
    /// The whole message is ignored.
    #[error("malformed message: {0}; ignored")]
    Malformed(&'static str),
    /// The node has left the ring and accepts nothing more. Ignored.
    #[error("node has left the ring; message ignored")]
    Left,
}

/// A configuration value that cannot work, with what to change.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error("invalid setting `{field}`: {reason}")]
pub struct ConfigError {
    pub field: &'static str,
    pub reason: String,
}
