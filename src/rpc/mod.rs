//! Node-to-node RPC framing (frame layout in `frame.rs`): authenticated, length-delimited frames that carry
//! [`beehive_replication::Message`]s between nodes.
//!
//! # Contract
//!
//! * Sans-IO: [`FrameCodec`] implements `tokio_util::codec::{Decoder, Encoder}` over
//!   `BytesMut` and owns no socket, clock or RNG. The connection driver wraps it in `Framed`.
//! * One codec per connection. Each side's first frame is a [`Payload::Hello`] with its
//!   advertised [`beehive_replication::Peer`] and a fresh nonce, its second a
//!   [`Payload::Proof`]: a keyed hash over the *other* side's nonce that only a holder of the
//!   cluster secret can make (a hello alone can be replayed). Every later frame is a message
//!   (or an object body, [`BodyMsg`]) from that peer, and none is accepted or sent before
//!   both proofs.
//! * Every frame is sealed with a blake3 keyed MAC: the hello under a key derived from the
//!   cluster secret ([`MacKey::derive`]), every later frame under a per-connection,
//!   per-direction session key derived from it and both hellos' random nonces
//!   ([`MacKey::session`]), so a frame recorded on one connection fails the MAC on any
//!   other. Each frame also carries a sequence number strictly increasing per connection and
//!   direction, so a frame replayed on the same connection is refused.
//! * Decoding never panics and never allocates more than the frame cap, whatever the bytes.
//!   `Ok(None)` means "wait for more bytes"; any error means "close the connection and count
//!   [`FrameError::reason`]".
//!
//! # Module map
//!
//! * [`frame`] — the byte layout, frame kinds, the MAC key and the MAC
//! * [`codec`] — [`FrameCodec`]: the per-connection decoder/encoder and its check order
//! * [`error`] — [`FrameError`] and its metric labels
//! * `payload` — the payload's serialization (bincode 2); the only module that knows it

pub mod codec;
pub mod error;
pub mod frame;
mod payload;

pub use codec::FrameCodec;
pub use error::{FrameError, PayloadError};
pub use frame::{BodyMsg, Frame, Hello, Kind, MacKey, Nonce, Payload, Proof};
pub use payload::DECODE_LIMIT;
