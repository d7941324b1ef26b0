//! [`FrameCodec`]: frames to bytes and back, for one connection.
//!
//! Decoding follows mini-redis: first check that a whole frame has arrived (running short of
//! bytes is `Ok(None)`, not an error), then check it in this order, cheapest and least
//! trusting first:
//!
//! 1. length cap — before anything of the claimed size is allocated;
//! 2. minimum length, then protocol version;
//! 3. MAC (constant-time) — nothing below runs on bytes without the cluster secret; the
//!    hello is sealed under the cluster key, every later frame under the connection's session
//!    key ([`MacKey::session`]), which needs both sides' hello nonces;
//! 4. sequence number strictly above the last accepted one on this connection;
//! 5. kind byte and handshake order: the hello first, then the proof (checked against our
//!    nonce), only then messages and bodies;
//! 6. payload decode (with a limit, no trailing bytes), header/message request id agree;
//! 7. [`Message::validate`].
//!
//! Any failure is a [`FrameError`] and ends the connection; the codec's state after an error
//! is not meant to be used again.

use super::error::FrameError;
use super::frame::{
    self, BodyMsg, Frame, Hello, Kind, MacKey, Payload, Proof, DEFAULT_MAX_FRAME_LEN,
    MIN_FRAME_LEN, UNAUTHENTICATED_MAX_FRAME_LEN,
};
use super::payload::{self, DecodeFailure};
use beehive_replication::{Message, Peer};
use bytes::{BufMut, BytesMut};
use tokio_util::codec::{Decoder, Encoder, LengthDelimitedCodec, LengthDelimitedCodecError};

/// Both directions of one connection's framing: what we send (our sequence numbers) and what
/// we receive (the peer's hello and the last sequence number accepted from it).
///
/// The handshake, in each direction: a hello (sealed under the cluster key), then a proof
/// ([`FrameCodec::proof`]) over the other side's nonce. Messages and bodies are refused both
/// ways until our proof is sent and the peer's has checked out ([`FrameCodec::is_established`]).
///
/// Not `Clone`: two encoders sharing a connection would reuse sequence numbers and the peer
/// would close the connection as a replay.
#[derive(Debug)]
pub struct FrameCodec {
    /// The cluster key: seals and checks hellos, and derives the session keys.
    key: MacKey,
    /// Our hello, once we sent it.
    local: Option<Hello>,
    /// Whether we sent our proof.
    proof_sent: bool,
    /// Whether the peer's proof arrived and checked out.
    proven: bool,
    /// Keys for frames after the hellos, once both hellos are known.
    send_key: Option<MacKey>,
    recv_key: Option<MacKey>,
    lengths: LengthDelimitedCodec,
    /// The cap in force: [`UNAUTHENTICATED_MAX_FRAME_LEN`] (or less) until the peer's hello
    /// arrived, then `established_max`.
    max_frame_len: usize,
    established_max: usize,
    /// The sequence number of the next frame we send. Starts at 1.
    next_seq: u64,
    /// The last sequence number accepted from the peer; 0 before any (so 0 is never valid).
    last_seq: u64,
    /// The peer's hello, once it arrived.
    remote: Option<Hello>,
}

impl FrameCodec {
    /// A codec for a fresh connection, with the [`DEFAULT_MAX_FRAME_LEN`] cap.
    pub fn new(key: MacKey) -> Self {
        Self::with_max_frame_length(key, DEFAULT_MAX_FRAME_LEN)
    }

    /// A codec whose length prefix may announce at most `max` bytes (raised to
    /// [`MIN_FRAME_LEN`] if below it, capped at `u32::MAX`) once the peer's hello has been
    /// authenticated; before that, at most [`UNAUTHENTICATED_MAX_FRAME_LEN`], so a stranger
    /// cannot make the node buffer a large frame before its MAC is checked. Both ends should
    /// agree on `max`.
    pub fn with_max_frame_length(key: MacKey, max: usize) -> Self {
        let established_max = max.clamp(MIN_FRAME_LEN, u32::MAX as usize);
        let max = established_max.min(UNAUTHENTICATED_MAX_FRAME_LEN);
        let lengths = LengthDelimitedCodec::builder()
            .big_endian()
            .length_field_type::<u32>()
            .max_frame_length(max)
            .new_codec();
        FrameCodec {
            key,
            local: None,
            proof_sent: false,
            proven: false,
            send_key: None,
            recv_key: None,
            lengths,
            max_frame_len: max,
            established_max,
            next_seq: 1,
            last_seq: 0,
            remote: None,
        }
    }

    /// The cap on the length prefix in force.
    pub fn max_frame_length(&self) -> usize {
        self.max_frame_len
    }

    /// The peer's advertised identity, from its hello; `None` until the hello arrived.
    pub fn remote_peer(&self) -> Option<Peer> {
        self.remote.map(|h| h.peer)
    }

    /// Whether the handshake is done both ways (our proof sent, the peer's checked), so
    /// messages and bodies can be sent and received.
    pub fn is_established(&self) -> bool {
        self.proof_sent && self.proven
    }

    /// Whether the peer proved it holds the cluster secret over our nonce.
    pub fn is_proven(&self) -> bool {
        self.proven
    }

    /// Our proof for this connection, to send right after the hellos are exchanged.
    /// `NotEstablished` until both hellos are known.
    pub fn proof(&self) -> Result<Payload, FrameError> {
        match (&self.local, &self.remote) {
            (Some(local), Some(remote)) => Ok(Payload::Proof(self.key.proof(local, remote))),
            _ => Err(FrameError::NotEstablished),
        }
    }

    /// Derives the session keys once both nonces are known.
    fn establish(&mut self) {
        if let (Some(local), Some(remote)) = (self.local, self.remote) {
            self.send_key = Some(self.key.session(&local.nonce, &remote.nonce));
            self.recv_key = Some(self.key.session(&remote.nonce, &local.nonce));
        }
    }

    /// Checks the peer's proof against the one only a holder of the secret can make for our
    /// nonce. The comparison is constant-time (`blake3::Hash`'s `PartialEq`).
    fn check_proof(&mut self, proof: Proof) -> Result<(), FrameError> {
        let (Some(local), Some(remote)) = (self.local, self.remote) else {
            // Without our hello the peer has no nonce of ours to prove anything over.
            return Err(FrameError::UnexpectedKind { got: "proof", expected: "our hello first" });
        };
        let expected = blake3::Hash::from(self.key.proof(&remote, &local).tag);
        if expected != blake3::Hash::from(proof.tag) {
            return Err(FrameError::BadProof);
        }
        self.proven = true;
        Ok(())
    }

    /// The last sequence number accepted from the peer (0: none yet).
    pub fn last_seq(&self) -> u64 {
        self.last_seq
    }

    /// Checks one complete frame body (the bytes after the length prefix), steps 2–7.
    fn check(&mut self, body: &[u8]) -> Result<Frame, FrameError> {
        let Some(header) = frame::read_header(body) else {
            return Err(FrameError::Truncated { len: body.len(), min: MIN_FRAME_LEN });
        };
        if header.version != frame::VERSION {
            return Err(FrameError::BadVersion { got: header.version, expected: frame::VERSION });
        }
        if !frame::mac_ok(self.recv_key.as_ref().unwrap_or(&self.key), body) {
            return Err(FrameError::BadMac);
        }
        if header.seq <= self.last_seq {
            return Err(FrameError::Replayed { seq: header.seq, last: self.last_seq });
        }
        self.last_seq = header.seq;

        let Some(kind) = Kind::from_byte(header.kind) else {
            return Err(FrameError::Malformed(format!("unknown frame kind {}", header.kind)));
        };
        let bytes = frame::payload_of(body);
        let payload = match (kind, self.remote) {
            (Kind::Proof, Some(_)) if !self.proven => {
                let proof: Proof = decode_payload(bytes)?;
                self.check_proof(proof)?;
                Payload::Proof(proof)
            }
            (Kind::Message | Kind::Body, Some(_)) if !self.proven => {
                return Err(FrameError::UnexpectedKind { got: kind.name(), expected: "proof" })
            }
            (Kind::Hello, None) => {
                let hello: Hello = decode_payload(bytes)?;
                self.remote = Some(hello);
                self.establish();
                self.max_frame_len = self.established_max;
                self.lengths.set_max_frame_length(self.established_max);
                Payload::Hello(hello)
            }
            (Kind::Message, Some(_)) => {
                let msg: Message = decode_payload(bytes)?;
                msg.validate()?;
                Payload::Message(msg)
            }
            (Kind::Body, Some(_)) => {
                let msg: BodyMsg =
                    payload::decode_limited::<_, { payload::BODY_DECODE_LIMIT }>(bytes)
                        .map_err(decode_failure)?;
                Payload::Body(msg)
            }
            (Kind::Hello | Kind::Proof, Some(_)) => {
                return Err(FrameError::UnexpectedKind { got: kind.name(), expected: "message" })
            }
            (kind @ (Kind::Message | Kind::Body | Kind::Proof), None) => {
                return Err(FrameError::UnexpectedKind { got: kind.name(), expected: "hello" })
            }
        };
        if payload.request_id() != header.request_id {
            return Err(FrameError::Malformed(format!(
                "header request id {} but payload request id {}",
                header.request_id,
                payload.request_id()
            )));
        }
        Ok(Frame { seq: header.seq, request_id: header.request_id, payload })
    }
}

fn decode_payload<T: serde::de::DeserializeOwned>(bytes: &[u8]) -> Result<T, FrameError> {
    payload::decode(bytes).map_err(decode_failure)
}

fn decode_failure(failure: DecodeFailure) -> FrameError {
    match failure {
        DecodeFailure::Format(e) => FrameError::Decode(e),
        DecodeFailure::Trailing { unused } => {
            FrameError::Malformed(format!("{unused} bytes after the payload"))
        }
    }
}

impl Decoder for FrameCodec {
    type Item = Frame;
    type Error = FrameError;

    fn decode(&mut self, src: &mut BytesMut) -> Result<Option<Frame>, FrameError> {
        // Step 1 is the length-delimited codec's: it checks the prefix against the cap before
        // it reserves room for the frame, and returns `None` until the whole frame is there.
        let body = match self.lengths.decode(src) {
            Ok(Some(body)) => body,
            Ok(None) => return Ok(None),
            Err(e) => return Err(self.length_error(e, src)),
        };
        self.check(&body).map(Some)
    }
}

impl FrameCodec {
    /// Turns the length-delimited codec's error into ours. On an over-cap prefix it returns
    /// before consuming anything, so the claimed length is still at the front of `src`.
    fn length_error(&self, e: std::io::Error, src: &BytesMut) -> FrameError {
        let over_cap = e.get_ref().is_some_and(|inner| inner.is::<LengthDelimitedCodecError>());
        match src.get(..frame::PREFIX_LEN) {
            Some(&[a, b, c, d]) if over_cap => FrameError::TooLarge {
                len: u32::from_be_bytes([a, b, c, d]).into(),
                max: self.max_frame_len,
            },
            _ => FrameError::Io(e),
        }
    }
}

impl Encoder<Payload> for FrameCodec {
    type Error = FrameError;

    /// Appends one sealed frame to `dst`, stamped with this connection's next sequence number.
    /// Does not validate the message: the receiver does, and refuses it as `Invalid`.
    /// A hello must come first (and only once), then, once the peer's hello arrived, our
    /// proof (once); messages and bodies wait until the handshake is done both ways.
    fn encode(&mut self, item: Payload, dst: &mut BytesMut) -> Result<(), FrameError> {
        let unexpected = |got| Err(FrameError::UnexpectedKind { got, expected: "message" });
        match &item {
            Payload::Hello(_) if self.local.is_some() => return unexpected("hello"),
            Payload::Hello(_) => {}
            _ if self.send_key.is_none() => return Err(FrameError::NotEstablished),
            Payload::Proof(_) if self.proof_sent => return unexpected("proof"),
            Payload::Proof(_) => {}
            _ if !self.is_established() => return Err(FrameError::NotEstablished),
            _ => {}
        }
        // The frame is written straight into `dst`: prefix (filled in last), header, payload,
        // MAC; no intermediate buffers, so a body is copied once, by the payload encoder.
        let start = dst.len();
        let seq = self.next_seq;
        let next_seq = seq.checked_add(1).ok_or(FrameError::SeqExhausted)?;
        dst.reserve(frame::OVERHEAD + frame::PAYLOAD_HINT);
        dst.put_u32(0);
        frame::put_header(dst, item.kind() as u8, seq, item.request_id());
        let encoded = match &item {
            Payload::Hello(h) => payload::encode(h, dst),
            Payload::Proof(p) => payload::encode(p, dst),
            Payload::Message(msg) => payload::encode(msg, dst),
            Payload::Body(msg) => payload::encode(msg, dst),
        };
        if let Err(e) = encoded {
            dst.truncate(start);
            return Err(FrameError::Encode(e));
        }
        let len = dst.len() - start - frame::PREFIX_LEN + frame::MAC_LEN;
        let too_large = || FrameError::TooLarge { len: len as u64, max: self.established_max };
        // The cap in force (lower until the peer's hello arrived) bounds what we send too.
        let prefix = match frame::prefix_for(len) {
            Some(prefix) if len <= self.established_max && len <= self.max_frame_len => prefix,
            _ => {
                dst.truncate(start);
                return Err(too_large());
            }
        };
        self.next_seq = next_seq;

        let key = match &item {
            Payload::Hello(h) => {
                self.local = Some(*h);
                self.establish();
                &self.key
            }
            Payload::Proof(_) => {
                self.proof_sent = true;
                self.send_key.as_ref().unwrap_or(&self.key)
            }
            _ => self.send_key.as_ref().unwrap_or(&self.key),
        };
        dst[start..start + frame::PREFIX_LEN].copy_from_slice(&prefix);
        let mac = key.mac(prefix, &dst[start + frame::PREFIX_LEN..]);
        dst.put_slice(mac.as_bytes());
        Ok(())
    }
}

impl Encoder<Message> for FrameCodec {
    type Error = FrameError;

    /// Same as encoding [`Payload::Message`].
    fn encode(&mut self, item: Message, dst: &mut BytesMut) -> Result<(), FrameError> {
        Encoder::<Payload>::encode(self, Payload::Message(item), dst)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rpc::frame::{prefix_for, seal};
    use beehive_replication::Request;

    fn key() -> MacKey {
        MacKey::derive(b"cluster secret")
    }

    fn peer() -> Peer {
        Peer::from_addr(([127, 0, 0, 1], 7000).into())
    }

    fn hello() -> Hello {
        Hello { peer: peer(), nonce: [7; frame::NONCE_LEN] }
    }

    /// Our side's hello in these tests.
    fn mine() -> Hello {
        Hello { peer: Peer::from_addr(([127, 0, 0, 1], 7001).into()), nonce: [8; frame::NONCE_LEN] }
    }

    /// A frame sealed with the cluster key whose header says whatever the test wants.
    fn forged(kind: u8, seq: u64, request_id: u64, payload: &[u8]) -> BytesMut {
        forged_with(&key(), kind, seq, request_id, payload)
    }

    /// The same, under the peer's session key once both hellos were exchanged.
    fn forged_session(kind: u8, seq: u64, request_id: u64, payload: &[u8]) -> BytesMut {
        let session = key().session(&hello().nonce, &mine().nonce);
        forged_with(&session, kind, seq, request_id, payload)
    }

    fn forged_with(key: &MacKey, kind: u8, seq: u64, request_id: u64, payload: &[u8]) -> BytesMut {
        let prefix = prefix_for(MIN_FRAME_LEN + payload.len()).unwrap();
        let body = seal(key, kind, seq, request_id, payload, prefix);
        let mut out = BytesMut::from(&prefix[..]);
        out.extend_from_slice(&body);
        out
    }

    fn encoded<T: serde::Serialize>(value: &T) -> BytesMut {
        let mut out = BytesMut::new();
        payload::encode(value, &mut out).unwrap();
        out
    }

    /// A codec that sent its hello and took the peer's hello and proof (seq 1 and 2).
    fn after_handshake() -> FrameCodec {
        let mut codec = FrameCodec::new(key());
        codec.encode(Payload::Hello(mine()), &mut BytesMut::new()).unwrap();
        let mut theirs = forged(Kind::Hello as u8, 1, 0, &encoded(&hello()));
        assert!(codec.decode(&mut theirs).unwrap().is_some());
        let proof = key().proof(&hello(), &mine());
        let mut proof = forged_session(Kind::Proof as u8, 2, 0, &encoded(&proof));
        assert!(codec.decode(&mut proof).unwrap().is_some());
        assert!(codec.is_proven());
        codec
    }

    #[test]
    fn a_proof_over_another_nonce_or_id_is_bad_proof_and_messages_wait_for_it() {
        let msg = encoded(&Message::Request { id: 5, body: Request::Ping });
        let other_nonce = Hello { nonce: [9; frame::NONCE_LEN], ..mine() };
        let other_id = Hello { peer: Peer::from_addr(([127, 0, 0, 1], 7002).into()), ..mine() };
        for receiver in [other_nonce, other_id] {
            let mut codec = FrameCodec::new(key());
            codec.encode(Payload::Hello(mine()), &mut BytesMut::new()).unwrap();
            codec.decode(&mut forged(Kind::Hello as u8, 1, 0, &encoded(&hello()))).unwrap();
            let early = codec.decode(&mut forged_session(Kind::Message as u8, 2, 5, &msg));
            assert_eq!(early.unwrap_err().reason(), "unexpected_kind");
            let mut codec = FrameCodec::new(key());
            codec.encode(Payload::Hello(mine()), &mut BytesMut::new()).unwrap();
            codec.decode(&mut forged(Kind::Hello as u8, 1, 0, &encoded(&hello()))).unwrap();
            let wrong = encoded(&key().proof(&hello(), &receiver));
            let err = codec.decode(&mut forged_session(Kind::Proof as u8, 2, 0, &wrong));
            assert!(matches!(err, Err(FrameError::BadProof)), "{err:?}");
            assert!(!codec.is_proven());
        }
        // A second proof is refused.
        let mut codec = after_handshake();
        let again = encoded(&key().proof(&hello(), &mine()));
        let err = codec.decode(&mut forged_session(Kind::Proof as u8, 3, 0, &again)).unwrap_err();
        assert_eq!(err.reason(), "unexpected_kind");
    }

    #[test]
    fn unknown_kind_is_malformed() {
        let mut codec = FrameCodec::new(key());
        let err = codec.decode(&mut forged(9, 1, 0, &encoded(&hello()))).unwrap_err();
        assert_eq!(err.reason(), "malformed", "{err}");
    }

    #[test]
    fn header_and_message_request_ids_must_agree() {
        let mut codec = after_handshake();
        let msg = Message::Request { id: 5, body: Request::Ping };
        let err = codec
            .decode(&mut forged_session(Kind::Message as u8, 3, 6, &encoded(&msg)))
            .unwrap_err();
        assert_eq!(err.reason(), "malformed", "{err}");
    }

    #[test]
    fn trailing_payload_bytes_are_malformed() {
        let mut codec = after_handshake();
        let mut bytes = encoded(&Message::Request { id: 5, body: Request::Ping });
        bytes.extend_from_slice(&[0]);
        let err = codec.decode(&mut forged_session(Kind::Message as u8, 3, 5, &bytes)).unwrap_err();
        assert_eq!(err.reason(), "malformed", "{err}");
    }

    #[test]
    fn authentic_garbage_payload_is_a_decode_error() {
        let mut codec = after_handshake();
        let err =
            codec.decode(&mut forged_session(Kind::Message as u8, 3, 0, &[0xff; 8])).unwrap_err();
        assert_eq!(err.reason(), "decode", "{err}");
    }

    #[test]
    fn sequence_zero_is_never_accepted() {
        let mut codec = FrameCodec::new(key());
        let err =
            codec.decode(&mut forged(Kind::Hello as u8, 0, 0, &encoded(&hello()))).unwrap_err();
        assert!(matches!(err, FrameError::Replayed { seq: 0, last: 0 }), "{err}");
    }

    #[test]
    fn encoder_refuses_a_message_over_the_cap() {
        let mut codec = FrameCodec::with_max_frame_length(key(), MIN_FRAME_LEN + 4);
        let mut dst = BytesMut::new();
        let err =
            Encoder::<Payload>::encode(&mut codec, Payload::Hello(hello()), &mut dst).unwrap_err();
        assert_eq!(err.reason(), "too_large", "{err}");
        assert!(dst.is_empty());
        // The refused frame used no sequence number.
        assert_eq!(codec.next_seq, 1);
    }

    #[test]
    fn encoder_stops_when_sequence_numbers_run_out() {
        let mut codec = FrameCodec::new(key());
        codec.next_seq = u64::MAX;
        let mut dst = BytesMut::new();
        let err =
            Encoder::<Payload>::encode(&mut codec, Payload::Hello(hello()), &mut dst).unwrap_err();
        assert!(matches!(err, FrameError::SeqExhausted));
        assert!(dst.is_empty());
    }

    #[test]
    fn messages_wait_for_both_hellos_and_proofs_then_use_the_session_key() {
        let msg = Message::Request { id: 1, body: Request::Ping };
        let mut a = FrameCodec::new(key());
        let mut b = FrameCodec::new(key());
        let mut dst = BytesMut::new();
        let err = Encoder::<Message>::encode(&mut a, msg.clone(), &mut dst).unwrap_err();
        assert_eq!(err.reason(), "not_established");
        let (mut to_b, mut to_a) = (BytesMut::new(), BytesMut::new());
        a.encode(Payload::Hello(hello()), &mut to_b).unwrap();
        let b_hello = Hello { nonce: [9; frame::NONCE_LEN], ..hello() };
        b.encode(Payload::Hello(b_hello), &mut to_a).unwrap();
        assert!(!a.is_established());
        a.decode(&mut to_a).unwrap().unwrap();
        b.decode(&mut to_b).unwrap().unwrap();
        // Hellos alone establish nothing: a hello can be replayed.
        assert!(!a.is_established() && !b.is_established());
        let err = Encoder::<Message>::encode(&mut a, msg.clone(), &mut dst).unwrap_err();
        assert_eq!(err.reason(), "not_established");
        let (a_proof, b_proof) = (a.proof().unwrap(), b.proof().unwrap());
        assert_ne!(a_proof, b_proof, "each direction's proof is its own");
        a.encode(a_proof, &mut to_b).unwrap();
        b.encode(b_proof, &mut to_a).unwrap();
        assert!(matches!(a.decode(&mut to_a).unwrap().unwrap().payload, Payload::Proof(_)));
        assert!(matches!(b.decode(&mut to_b).unwrap().unwrap().payload, Payload::Proof(_)));
        assert!(a.is_established() && b.is_established());
        Encoder::<Message>::encode(&mut a, msg.clone(), &mut to_b).unwrap();
        let frame = b.decode(&mut to_b).unwrap().unwrap();
        assert_eq!(frame.payload, Payload::Message(msg));
        // A second hello is refused on the way out.
        let err = a.encode(Payload::Hello(hello()), &mut dst).unwrap_err();
        assert_eq!(err.reason(), "unexpected_kind");
    }

    #[test]
    fn reasons_are_stable_labels() {
        let labels = [
            FrameError::TooLarge { len: 1, max: 0 }.reason(),
            FrameError::Truncated { len: 1, min: 2 }.reason(),
            FrameError::BadVersion { got: 2, expected: 1 }.reason(),
            FrameError::BadMac.reason(),
            FrameError::BadProof.reason(),
            FrameError::Replayed { seq: 1, last: 1 }.reason(),
            FrameError::Malformed(String::new()).reason(),
            FrameError::UnexpectedKind { got: "a", expected: "b" }.reason(),
            FrameError::SeqExhausted.reason(),
        ];
        assert_eq!(
            labels,
            [
                "too_large",
                "truncated",
                "bad_version",
                "bad_mac",
                "bad_proof",
                "replayed",
                "malformed",
                "unexpected_kind",
                "seq_exhausted"
            ]
        );
    }
}
