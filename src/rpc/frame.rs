//! What one frame is: its fixed layout, its kinds, and the MAC that seals it.
//!
//! ```text
//!  0      4      5     6          14         22            22+p        54+p
//!  +------+------+-----+----------+----------+-------------+-----------+
//!  | len  | ver  |kind | seq      | req id   | payload     | mac       |
//!  | u32  | u8   | u8  | u64      | u64      | p bytes     | 32 bytes  |
//!  +------+------+-----+----------+----------+-------------+-----------+
//!   `len` counts every byte after itself (18 + p + 32); all integers big-endian.
//!   `mac` = blake3 keyed hash of every byte before it, `len` included: under the cluster
//!   MAC key for a hello, under the connection's session key (see [`MacKey::session`]) for
//!   every later frame.
//! ```
//!
//! Everything here is byte layout only; the payload's serialization lives in
//! the private `payload` module so it can be swapped without touching the layout or the MAC.

use beehive_replication::beehive::wire::ObjectInfo;
use beehive_replication::{Id, Message, Peer};
use bytes::{BufMut, Bytes, BytesMut};
use serde::{Deserialize, Serialize};
use std::fmt;

/// The protocol version this build speaks. A frame with any other version is refused.
/// Version 2 added the proof frame: a version-1 node, which routes traffic to a connection
/// on a (replayable) hello alone, cannot join a version-2 ring. Version 3 added the successor
/// copies' messages (`Copy`, `Sync`, `Synced`, `FetchCopy`). Version 4 added the direct
/// object request to a successor home (`Get`, `Served`). Version 5 carries objects in their
/// second encoding (`BHO2`, see `beehive_proxy::CachedObject`), which a version-4 node cannot
/// decode. Version 6 adds the resync digest to a pull and the matched buckets to its answer.
/// Version 7 adds the puller's next node to a pull (pushes come only from a key's next hop).
pub const VERSION: u8 = 7;
/// Bytes of the big-endian length prefix.
pub const PREFIX_LEN: usize = 4;
/// Bytes of the fixed header after the prefix: version, kind, sequence number, request id.
pub const HEADER_LEN: usize = 1 + 1 + 8 + 8;
/// Bytes of the trailing MAC.
pub const MAC_LEN: usize = blake3::OUT_LEN;
/// The shortest possible frame (bytes counted by the length prefix): header and MAC, no payload.
pub const MIN_FRAME_LEN: usize = HEADER_LEN + MAC_LEN;
/// Bytes every frame costs on the wire beyond its payload.
pub const OVERHEAD: usize = PREFIX_LEN + HEADER_LEN + MAC_LEN;
/// Default cap on the length prefix. The largest protocol message (a peer list at its cap of 64
/// IPv6 peers) is under 3 KiB; a node that carries object bodies raises the cap to fit its
/// `max_body_bytes` ([`super::FrameCodec::with_max_frame_length`]).
pub const DEFAULT_MAX_FRAME_LEN: usize = 64 * 1024;
/// Cap on frames before the peer's hello is authenticated: a hello is a few dozen bytes.
pub const UNAUTHENTICATED_MAX_FRAME_LEN: usize = 4 * 1024;
/// The blake3 `derive_key` context for the frame MAC key. Changing it splits the cluster.
pub const MAC_CONTEXT: &str = "beehive rpc frame mac v1";
/// The blake3 `derive_key` context for per-connection session keys.
pub const SESSION_CONTEXT: &str = "beehive rpc session key v1";
/// The blake3 `derive_key` context for the key of handshake proofs.
pub const PROOF_CONTEXT: &str = "beehive rpc handshake proof v1";
/// Bytes of the random nonce each side puts in its hello.
pub const NONCE_LEN: usize = 16;

/// A hello's nonce: fresh random bytes per connection, so that keys (and so frames) of one
/// connection are worthless on another.
pub type Nonce = [u8; NONCE_LEN];

// Offsets into the frame body (the bytes after the length prefix).
const VERSION_AT: usize = 0;
const KIND_AT: usize = 1;
const SEQ_AT: usize = 2;
const REQUEST_ID_AT: usize = 10;

/// The frame kind byte.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum Kind {
    /// The first frame each side sends on a connection: its advertised [`Peer`].
    Hello = 1,
    /// A protocol [`Message`]; the header's request id is the message's id.
    Message = 2,
    /// A [`BodyMsg`]: object bodies moving between nodes, outside the protocol core.
    Body = 3,
    /// The second frame each side sends: a [`Proof`] that it holds the cluster secret.
    Proof = 4,
}

impl Kind {
    /// The kind for a kind byte, or `None` for a byte this version never sends.
    pub fn from_byte(byte: u8) -> Option<Kind> {
        match byte {
            1 => Some(Kind::Hello),
            2 => Some(Kind::Message),
            3 => Some(Kind::Body),
            4 => Some(Kind::Proof),
            _ => None,
        }
    }

    /// A short name for errors and logs.
    pub fn name(self) -> &'static str {
        match self {
            Kind::Hello => "hello",
            Kind::Message => "message",
            Kind::Body => "body",
            Kind::Proof => "proof",
        }
    }
}

/// The first frame on a connection, in each direction.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Hello {
    /// The sender's advertised identity; every later frame on the connection is from it.
    pub peer: Peer,
    /// Fresh random bytes; both sides' nonces key the rest of the connection.
    pub nonce: Nonce,
}

/// The second frame on a connection, in each direction: a keyed hash, under a key derived
/// from the cluster secret, over the *receiver's* nonce (fresh for this connection), the
/// sender's nonce and both ids ([`MacKey::proof`]). A hello recorded off the wire verifies
/// anywhere (it is sealed under the cluster key), but only a holder of the secret can answer
/// a nonce it has never seen; until the peer's proof arrives, nothing is routed to it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Proof {
    pub tag: [u8; 32],
}

/// Object bodies between nodes (replica fetch, home → entry node, handoff on leave). The
/// request id pairs an answer with its request, like a [`Message`]'s.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum BodyMsg {
    /// "Send me the body of `key`, whose blake3 is `hash`."
    Fetch { id: u64, key: Id, hash: [u8; 32] },
    /// The body asked for. The asker checks it against the hash it asked with.
    Found { id: u64, body: Bytes },
    /// "I do not hold that object (or not that version of it)."
    Missing { id: u64 },
    /// "Keep this object": a leaving node hands its home objects to its successor.
    Store { id: u64, key: Id, body: Bytes },
    /// The answer to `Store`: `accepted` is false when the receiver refused (size cap).
    Stored { id: u64, accepted: bool },
    /// "You are `key`'s home: give me the object, loading it from the origin with `load` (the
    /// HTTP face's opaque request) if you have none or yours is stale."
    Load { id: u64, key: Id, load: Bytes },
    /// The answer to `Load`: the encoded object, and whether it may be shared.
    Loaded { id: u64, body: Bytes, cacheable: bool },
    /// The answer to `Load` when the origin failed: the HTTP status the entry node gives.
    LoadFailed { id: u64, status: u16, message: String },
    /// The answer to `Load` for an object the ring does not carry (too large): the entry
    /// node fetches it from the origin itself.
    Pass { id: u64 },
    /// "You are `key`'s home: purge it here and over its replica arc."
    Purge { id: u64, key: Id },
    /// The answer to `Purge`: `done` is false when the receiver is not the home.
    Purged { id: u64, done: bool },
    /// "Keep this as the successor copy of my home object `key`" (answered by `Stored`).
    Copy { id: u64, key: Id, body: Bytes },
    /// A home to its successor: "these are my home objects". The successor drops its copies
    /// of the sender's that are not listed, unless `fresh` (the sender has just started and
    /// lists what it has so far), in which case it keeps them and names them in `extra`.
    Sync { id: u64, fresh: bool, keys: Vec<(Id, [u8; 32])> },
    /// The answer to `Sync`: the listed keys the successor has no copy of, and (for a fresh
    /// sender) the copies it holds of the sender's that were not listed.
    Synced { id: u64, lacking: Vec<Id>, extra: Vec<(Id, [u8; 32])> },
    /// "Send me any copy you hold of `key`" (answered by `Found` or `Missing`): a home that
    /// lost its store asks its successor, and an entry node the successor of a silent home.
    FetchCopy { id: u64, key: Id },
    /// "You are `key`'s home as I see the ring (my successor): answer and count what my
    /// object lookup's one request would have asked, and send the body with it." One round
    /// trip instead of the lookup's and the body fetch's. Answered by `Served` or `Missing`
    /// (neither home nor holder: the asker falls back to a lookup).
    Get { id: u64, key: Id },
    /// The answer to `Get`: the lookup answer (`level`, `object`) and, when `object` is
    /// there, its body (empty while the home has not loaded it).
    Served { id: u64, level: u8, object: Option<ObjectInfo>, body: Bytes },
}

impl BodyMsg {
    pub fn id(&self) -> u64 {
        match self {
            BodyMsg::Fetch { id, .. }
            | BodyMsg::Found { id, .. }
            | BodyMsg::Missing { id }
            | BodyMsg::Store { id, .. }
            | BodyMsg::Stored { id, .. }
            | BodyMsg::Load { id, .. }
            | BodyMsg::Loaded { id, .. }
            | BodyMsg::LoadFailed { id, .. }
            | BodyMsg::Pass { id }
            | BodyMsg::Purge { id, .. }
            | BodyMsg::Purged { id, .. }
            | BodyMsg::Copy { id, .. }
            | BodyMsg::Sync { id, .. }
            | BodyMsg::Synced { id, .. }
            | BodyMsg::FetchCopy { id, .. }
            | BodyMsg::Get { id, .. }
            | BodyMsg::Served { id, .. } => *id,
        }
    }

    /// Whether this answers a request (rather than asking one).
    pub fn is_response(&self) -> bool {
        matches!(
            self,
            BodyMsg::Found { .. }
                | BodyMsg::Missing { .. }
                | BodyMsg::Stored { .. }
                | BodyMsg::Loaded { .. }
                | BodyMsg::LoadFailed { .. }
                | BodyMsg::Pass { .. }
                | BodyMsg::Purged { .. }
                | BodyMsg::Synced { .. }
                | BodyMsg::Served { .. }
        )
    }
}

/// What a frame carries.
#[derive(Debug, Clone, PartialEq)]
pub enum Payload {
    /// The sender's identity and nonce. Sent once, first, on every connection, in each
    /// direction.
    Hello(Hello),
    /// A protocol message.
    Message(Message),
    /// An object body request or answer.
    Body(BodyMsg),
    /// The sender's proof that it holds the cluster secret. Sent once, right after the hello
    /// (see [`crate::rpc::FrameCodec::proof`]).
    Proof(Proof),
}

impl Payload {
    /// The frame kind that carries this payload.
    pub fn kind(&self) -> Kind {
        match self {
            Payload::Hello(_) => Kind::Hello,
            Payload::Message(_) => Kind::Message,
            Payload::Body(_) => Kind::Body,
            Payload::Proof(_) => Kind::Proof,
        }
    }

    /// The request id the header carries: the message's own id, 0 for a hello or a proof.
    pub fn request_id(&self) -> u64 {
        match self {
            Payload::Hello(_) | Payload::Proof(_) => 0,
            Payload::Message(Message::Request { id, .. } | Message::Response { id, .. }) => *id,
            Payload::Body(b) => b.id(),
        }
    }
}

impl From<Message> for Payload {
    fn from(msg: Message) -> Self {
        Payload::Message(msg)
    }
}

/// A frame that passed every check: MAC, sequence, decoding and [`Message::validate`].
#[derive(Debug, Clone, PartialEq)]
pub struct Frame {
    /// Its sequence number, strictly greater than every earlier one on the connection.
    pub seq: u64,
    /// Its header's request id (equal to the message's id; 0 for a hello).
    pub request_id: u64,
    pub payload: Payload,
}

/// The key every frame's MAC is computed under, derived from the cluster secret.
///
/// Its `Debug` output never shows the key.
#[derive(Clone)]
pub struct MacKey([u8; 32]);

impl MacKey {
    /// `blake3::derive_key(MAC_CONTEXT, secret)`: every node with the same cluster secret
    /// derives the same key; the secret itself is never used as a key directly.
    pub fn derive(secret: &[u8]) -> Self {
        MacKey(blake3::derive_key(MAC_CONTEXT, secret))
    }

    /// The key for frames `sender` → `receiver` on one connection, from the cluster key and
    /// both hellos' nonces. The receiver's fresh nonce is what makes a frame recorded on one
    /// connection fail the MAC on any other (sequence numbers only guard one connection),
    /// and the order of the nonces gives each direction its own key.
    pub fn session(&self, sender: &Nonce, receiver: &Nonce) -> MacKey {
        let mut hasher = blake3::Hasher::new_derive_key(SESSION_CONTEXT);
        hasher.update(&self.0);
        hasher.update(sender);
        hasher.update(receiver);
        MacKey(*hasher.finalize().as_bytes())
    }

    /// The proof that the holder of this key, `sender`, saw `receiver`'s hello: bound to
    /// both nonces (the receiver's first, so each direction's proof differs) and both ids.
    pub fn proof(&self, sender: &Hello, receiver: &Hello) -> Proof {
        let key = blake3::derive_key(PROOF_CONTEXT, &self.0);
        let mut hasher = blake3::Hasher::new_keyed(&key);
        hasher.update(&receiver.nonce);
        hasher.update(&sender.nonce);
        hasher.update(&sender.peer.id.0.to_be_bytes());
        hasher.update(&receiver.peer.id.0.to_be_bytes());
        Proof { tag: *hasher.finalize().as_bytes() }
    }

    /// The MAC of a frame: the keyed hash of its length prefix and body up to the MAC.
    pub(crate) fn mac(&self, prefix: [u8; PREFIX_LEN], sealed: &[u8]) -> blake3::Hash {
        let mut hasher = blake3::Hasher::new_keyed(&self.0);
        hasher.update(&prefix);
        hasher.update(sealed);
        hasher.finalize()
    }
}

impl fmt::Debug for MacKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("MacKey(<redacted>)")
    }
}

/// The fixed header of a frame body, read without looking at the payload.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Header {
    pub version: u8,
    pub kind: u8,
    pub seq: u64,
    pub request_id: u64,
}

/// Reads the header of `body` (the bytes after the prefix). `None` if `body` is shorter than
/// [`MIN_FRAME_LEN`].
pub(crate) fn read_header(body: &[u8]) -> Option<Header> {
    if body.len() < MIN_FRAME_LEN {
        return None;
    }
    let u64_at = |at: usize| {
        let mut bytes = [0u8; 8];
        bytes.copy_from_slice(&body[at..at + 8]);
        u64::from_be_bytes(bytes)
    };
    Some(Header {
        version: body[VERSION_AT],
        kind: body[KIND_AT],
        seq: u64_at(SEQ_AT),
        request_id: u64_at(REQUEST_ID_AT),
    })
}

/// The length prefix a body of `len` bytes carries. `None` if it does not fit in a `u32`.
pub(crate) fn prefix_for(len: usize) -> Option<[u8; PREFIX_LEN]> {
    u32::try_from(len).ok().map(u32::to_be_bytes)
}

/// Checks the MAC at the end of `body` (at least [`MIN_FRAME_LEN`] long, after its prefix).
/// The comparison is constant-time (`blake3::Hash`'s `PartialEq`).
pub(crate) fn mac_ok(key: &MacKey, body: &[u8]) -> bool {
    let Some(split) = body.len().checked_sub(MAC_LEN) else { return false };
    let Some(prefix) = prefix_for(body.len()) else { return false };
    let (sealed, tag) = body.split_at(split);
    let mut claimed = [0u8; MAC_LEN];
    claimed.copy_from_slice(tag);
    key.mac(prefix, sealed) == blake3::Hash::from(claimed)
}

/// The payload bytes of a body that passed [`read_header`]: between the header and the MAC.
pub(crate) fn payload_of(body: &[u8]) -> &[u8] {
    &body[HEADER_LEN..body.len() - MAC_LEN]
}

/// Room reserved for a payload beyond [`OVERHEAD`] before encoding it (a protocol message
/// fits; a body grows the buffer once).
pub(crate) const PAYLOAD_HINT: usize = 256;

/// Appends the fixed header (version, kind, sequence number, request id) to `out`.
pub(crate) fn put_header(out: &mut BytesMut, kind: u8, seq: u64, request_id: u64) {
    out.put_u8(VERSION);
    out.put_u8(kind);
    out.put_u64(seq);
    out.put_u64(request_id);
}

/// Writes a whole frame body (header, payload, MAC; no prefix) for a prefix announcing
/// `HEADER_LEN + payload.len() + MAC_LEN` bytes. The caller has checked that length fits.
/// (The codec writes frames in place; tests forge frames with this.)
#[cfg(test)]
pub(crate) fn seal(
    key: &MacKey,
    kind: u8,
    seq: u64,
    request_id: u64,
    payload: &[u8],
    prefix: [u8; PREFIX_LEN],
) -> BytesMut {
    let mut body = BytesMut::with_capacity(HEADER_LEN + payload.len() + MAC_LEN);
    put_header(&mut body, kind, seq, request_id);
    body.put_slice(payload);
    let mac = key.mac(prefix, &body);
    body.put_slice(mac.as_bytes());
    body
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layout_constants_add_up() {
        assert_eq!(HEADER_LEN, 18);
        assert_eq!(MAC_LEN, 32);
        assert_eq!(MIN_FRAME_LEN, 50);
        assert_eq!(OVERHEAD, 54);
        // The simulator counts the same bytes per message.
        assert_eq!(OVERHEAD, beehive_replication::sim::FRAME_OVERHEAD);
    }

    #[test]
    fn sealed_body_reads_back_and_verifies() {
        let key = MacKey::derive(b"secret");
        let payload = b"abc";
        let prefix = prefix_for(MIN_FRAME_LEN + payload.len()).unwrap();
        let body = seal(&key, Kind::Message as u8, 7, 9, payload, prefix);
        assert_eq!(body.len(), MIN_FRAME_LEN + payload.len());
        let header = read_header(&body).unwrap();
        assert_eq!(header, Header { version: VERSION, kind: 2, seq: 7, request_id: 9 });
        assert_eq!(payload_of(&body), payload);
        assert!(mac_ok(&key, &body));
        assert!(!mac_ok(&MacKey::derive(b"other"), &body));
    }

    #[test]
    fn short_bodies_have_no_header_and_no_valid_mac() {
        let key = MacKey::derive(b"secret");
        for len in 0..MIN_FRAME_LEN {
            let body = vec![0u8; len];
            assert!(read_header(&body).is_none());
            if len < MAC_LEN {
                assert!(!mac_ok(&key, &body));
            }
        }
    }

    #[test]
    fn mac_key_debug_is_redacted() {
        assert_eq!(format!("{:?}", MacKey::derive(b"hunter2")), "MacKey(<redacted>)");
    }
}
