//! Why a frame was refused (or could not be sent).
//!
//! Every decode error is final for its connection: the owner closes it and counts
//! [`FrameError::reason`] in `rpc_rejected_frames_total{reason}`. No variant is retryable on
//! the same connection, and none has changed the node's protocol state: a refused frame never
//! reaches the core.

use beehive_replication::ProtocolError;
use thiserror::Error;

pub use super::payload::PayloadError;

#[derive(Debug, Error)]
pub enum FrameError {
    /// The length prefix announces more than the cap. Nothing of the claimed size was
    /// allocated. On encode: the message is too big to send in one frame.
    #[error("frame of {len} bytes exceeds the cap of {max} bytes")]
    TooLarge { len: u64, max: usize },
    /// A complete frame shorter than a header and a MAC: not something any node sends.
    #[error("frame of {len} bytes is shorter than the minimum of {min} bytes")]
    Truncated { len: usize, min: usize },
    /// The peer speaks another protocol version (checked before the MAC, so that a version
    /// skew is reported as such rather than as a bad secret).
    #[error("frame has protocol version {got}, this node speaks {expected}")]
    BadVersion { got: u8, expected: u8 },
    /// The MAC does not match: the sender lacks the cluster secret, or the bytes were altered.
    #[error("frame MAC does not verify (wrong cluster secret or altered bytes)")]
    BadMac,
    /// The peer's proof does not match our nonce: it does not hold the cluster secret (a
    /// replayed hello), or it answered another connection's nonce.
    #[error("handshake proof does not verify (replayed hello or wrong cluster secret)")]
    BadProof,
    /// The sequence number is not above the last accepted one on this connection: a replay.
    #[error("frame sequence number {seq} is not above the last accepted {last} (replayed)")]
    Replayed { seq: u64, last: u64 },
    /// An authentic frame that breaks the layout: unknown kind byte, trailing payload bytes,
    /// a header request id that differs from the message's.
    #[error("malformed frame: {0}")]
    Malformed(String),
    /// An authentic frame of a kind not allowed here: a message before the peer's hello, or a
    /// second hello.
    #[error("unexpected {got} frame: expected {expected}")]
    UnexpectedKind { got: &'static str, expected: &'static str },
    /// The payload is not a valid encoding (or exceeds the decode limit).
    #[error("payload does not decode")]
    Decode(#[source] PayloadError),
    /// The message decoded but breaks the protocol's limits ([`beehive_replication::Message::validate`]).
    #[error("invalid message")]
    Invalid(#[from] ProtocolError),
    /// Encoding side: a payload could not be serialized.
    #[error("payload does not encode")]
    Encode(#[source] PayloadError),
    /// Encoding side: a message before both hellos were exchanged (no session key yet).
    /// Nothing was sent; wait for the peer's hello.
    #[error("no session yet: both hellos must be exchanged before other frames")]
    NotEstablished,
    /// Encoding side: this connection has used every sequence number. Open a new one.
    #[error("sequence numbers exhausted on this connection")]
    SeqExhausted,
    /// The transport failed (from `tokio_util::codec::Framed`, which needs `From<io::Error>`).
    #[error("i/o error")]
    Io(#[from] std::io::Error),
}

impl FrameError {
    /// A stable, low-cardinality label for `rpc_rejected_frames_total{reason}`.
    pub fn reason(&self) -> &'static str {
        match self {
            FrameError::TooLarge { .. } => "too_large",
            FrameError::Truncated { .. } => "truncated",
            FrameError::BadVersion { .. } => "bad_version",
            FrameError::BadMac => "bad_mac",
            FrameError::BadProof => "bad_proof",
            FrameError::Replayed { .. } => "replayed",
            FrameError::Malformed(_) => "malformed",
            FrameError::UnexpectedKind { .. } => "unexpected_kind",
            FrameError::Decode(_) => "decode",
            FrameError::Invalid(_) => "invalid",
            FrameError::Encode(_) => "encode",
            FrameError::SeqExhausted => "seq_exhausted",
            FrameError::NotEstablished => "not_established",
            FrameError::Io(_) => "io",
        }
    }
}
