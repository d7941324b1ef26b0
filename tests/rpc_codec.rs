//! The RPC frame codec against whole byte streams: round trips across every split point,
//! and every way a stream can be wrong (wrong secret, flipped bits, oversized, truncated,
//! replayed, garbage), plus property tests that the decoder never panics and never accepts
//! a frame without a valid MAC.
//!
//! Streams are one direction of a connection whose hellos were exchanged: the sender's
//! frames after its hello (its proof first) are sealed under the session key from both
//! nonces.

use beehive::rpc::frame::{
    DEFAULT_MAX_FRAME_LEN, MAC_CONTEXT, MIN_FRAME_LEN, NONCE_LEN, OVERHEAD, PREFIX_LEN,
    SESSION_CONTEXT, UNAUTHENTICATED_MAX_FRAME_LEN, VERSION,
};
use beehive::rpc::{BodyMsg, Frame, FrameCodec, FrameError, Hello, MacKey, Nonce, Payload};
use beehive_replication::beehive::wire::ObjectInfo;
use beehive_replication::message::MAX_LISTED_PEERS;
use beehive_replication::{Id, Message, NextHop, Peer, Request, Response};
use bytes::{Bytes, BytesMut};
use proptest::prelude::*;
use std::net::SocketAddr;
use tokio_util::codec::{Decoder, Encoder};

const SECRET: &[u8] = b"the cluster secret";

fn key() -> MacKey {
    MacKey::derive(SECRET)
}

fn peer_v4(n: u16) -> Peer {
    Peer::from_addr(SocketAddr::from(([10, 0, (n >> 8) as u8, n as u8], 7000 + n)))
}

fn peer_v6(n: u16) -> Peer {
    Peer {
        id: Id(u128::MAX - u128::from(n)),
        addr: SocketAddr::from(([0xfd00, 0, 0, 0, 0, 0, 0, n], n)),
    }
}

fn peers(count: u16) -> Vec<Peer> {
    (0..count).map(|n| if n % 2 == 0 { peer_v4(n) } else { peer_v6(n) }).collect()
}

/// Every `Message` variant, with edge-case ids and lists (empty, full, IPv4 and IPv6).
fn all_messages() -> Vec<Message> {
    let full = MAX_LISTED_PEERS as u16;
    vec![
        Message::Request { id: 0, body: Request::Ping },
        Message::Request { id: 1, body: Request::Stabilize },
        Message::Request {
            id: 2,
            body: Request::FindNext { key: Id(0), as_home: false, want_object: false },
        },
        Message::Request {
            id: u64::MAX,
            body: Request::FindNext { key: Id(u128::MAX), as_home: true, want_object: true },
        },
        Message::Request {
            id: 4,
            body: Request::Leaving { predecessor: Some(peer_v6(9)), successors: peers(3) },
        },
        Message::Request {
            id: 5,
            body: Request::Leaving { predecessor: None, successors: vec![] },
        },
        Message::Response { id: 0, body: Response::Pong },
        Message::Response { id: 1, body: Response::Ack },
        Message::Response {
            id: 2,
            body: Response::Neighbors { predecessor: Some(peer_v4(1)), successors: peers(full) },
        },
        Message::Response {
            id: 3,
            body: Response::Neighbors { predecessor: None, successors: vec![] },
        },
        Message::Response { id: 4, body: Response::Next(NextHop::Here) },
        Message::Response { id: 5, body: Response::Next(NextHop::Successors(peers(4))) },
        Message::Response { id: 6, body: Response::Next(NextHop::Closer(peers(full))) },
        Message::Response { id: 1 << 40, body: Response::Next(NextHop::Closer(vec![])) },
    ]
}

/// The sender's and the receiver's hello nonces.
const SENDER_NONCE: Nonce = [0x5e; NONCE_LEN];
const RECEIVER_NONCE: Nonce = [0x7e; NONCE_LEN];

fn hello(peer: Peer) -> Payload {
    Payload::Hello(Hello { peer, nonce: SENDER_NONCE })
}

/// The receiver's hello.
fn receiver_hello() -> Hello {
    Hello { peer: peer_v4(200), nonce: RECEIVER_NONCE }
}

/// The sender's proof, over the receiver's nonce, for a sender that said `hello(peer)`.
fn proof(peer: Peer) -> Payload {
    Payload::Proof(key().proof(&Hello { peer, nonce: SENDER_NONCE }, &receiver_hello()))
}

fn payloads() -> Vec<Payload> {
    let mut all = vec![hello(peer_v4(100)), proof(peer_v4(100))];
    all.extend(all_messages().into_iter().map(Payload::Message));
    all.extend([
        Payload::Body(BodyMsg::Fetch { id: 7, key: Id(3), hash: [1; 32] }),
        Payload::Body(BodyMsg::Found { id: 7, body: Bytes::from(vec![0xab; 3000]) }),
        Payload::Body(BodyMsg::Missing { id: 8 }),
        Payload::Body(BodyMsg::Store { id: 9, key: Id(u128::MAX), body: Bytes::new() }),
        Payload::Body(BodyMsg::Stored { id: 9, accepted: true }),
        Payload::Body(BodyMsg::Load { id: 10, key: Id(5), load: Bytes::from_static(b"{}") }),
        Payload::Body(BodyMsg::Loaded { id: 10, body: Bytes::from(vec![1; 500]), cacheable: true }),
        Payload::Body(BodyMsg::LoadFailed { id: 11, status: 504, message: "timeout".into() }),
        Payload::Body(BodyMsg::Pass { id: 12 }),
        Payload::Body(BodyMsg::Purge { id: 13, key: Id(6) }),
        Payload::Body(BodyMsg::Purged { id: 13, done: false }),
        Payload::Body(BodyMsg::Copy { id: 14, key: Id(7), body: Bytes::from(vec![2; 100]) }),
        Payload::Body(BodyMsg::Sync { id: 15, fresh: true, keys: vec![(Id(8), [3; 32])] }),
        Payload::Body(BodyMsg::Synced {
            id: 15,
            lacking: vec![Id(8)],
            extra: vec![(Id(9), [4; 32])],
        }),
        Payload::Body(BodyMsg::FetchCopy { id: 16, key: Id(9) }),
        Payload::Body(BodyMsg::Get { id: 17, key: Id(10) }),
        Payload::Body(BodyMsg::Served {
            id: 17,
            level: 3,
            object: Some(ObjectInfo { version: 2, hash: [5; 32], size: 700 }),
            body: Bytes::from(vec![6; 700]),
        }),
        Payload::Body(BodyMsg::Served { id: 18, level: 0, object: None, body: Bytes::new() }),
    ]);
    all
}

/// The receiver's side of the hello exchange: a codec that has sent its hello (sealed under
/// `key`), and the bytes of that hello.
fn receiver(key: MacKey) -> (FrameCodec, BytesMut) {
    let mut codec = FrameCodec::new(key);
    let mut out = BytesMut::new();
    codec.encode(Payload::Hello(receiver_hello()), &mut out).unwrap();
    (codec, out)
}

/// Encodes `items` (a hello and a proof first) on one fresh connection whose receiver's
/// hello arrives right after our hello, and its proof right after ours; returns the bytes
/// and where each frame ends.
fn encode_all(key: MacKey, items: &[Payload]) -> (BytesMut, Vec<usize>) {
    let mut codec = FrameCodec::new(key.clone());
    let (mut peer, mut theirs) = receiver(key);
    let mut out = BytesMut::new();
    let mut ends = Vec::new();
    for item in items {
        let start = out.len();
        codec.encode(item.clone(), &mut out).unwrap();
        match item {
            Payload::Hello(_) => {
                codec.decode(&mut theirs).unwrap().unwrap();
                peer.decode(&mut BytesMut::from(&out[start..])).unwrap().unwrap();
                let their_proof = peer.proof().unwrap();
                peer.encode(their_proof, &mut theirs).unwrap();
            }
            Payload::Proof(_) => {
                codec.decode(&mut theirs).unwrap().unwrap();
            }
            _ => {}
        }
        ends.push(out.len());
    }
    (out, ends)
}

/// A frame sealed by hand (the layout in `src/rpc/frame.rs`) under `mac_key`, whatever the header says.
fn forge(mac_key: &[u8; 32], kind: u8, seq: u64, request_id: u64, payload: &[u8]) -> Vec<u8> {
    let len = (MIN_FRAME_LEN + payload.len()) as u32;
    let mut frame = len.to_be_bytes().to_vec();
    frame.extend_from_slice(&[VERSION, kind]);
    frame.extend_from_slice(&seq.to_be_bytes());
    frame.extend_from_slice(&request_id.to_be_bytes());
    frame.extend_from_slice(payload);
    let mac = blake3::keyed_hash(mac_key, &frame);
    frame.extend_from_slice(mac.as_bytes());
    frame
}

/// The cluster MAC key and the sender → receiver session key, derived again by hand.
fn cluster_mac_key() -> [u8; 32] {
    blake3::derive_key(MAC_CONTEXT, SECRET)
}

fn session_mac_key() -> [u8; 32] {
    let mut material = cluster_mac_key().to_vec();
    material.extend_from_slice(&SENDER_NONCE);
    material.extend_from_slice(&RECEIVER_NONCE);
    blake3::derive_key(SESSION_CONTEXT, &material)
}

/// What a receiving codec made of a stream fed in `chunks`: each accepted frame with the
/// stream range it came from, and the error that stopped it, if any.
struct Received {
    frames: Vec<(Frame, std::ops::Range<usize>)>,
    error: Option<FrameError>,
}

fn feed<'a>(chunks: impl IntoIterator<Item = &'a [u8]>) -> Received {
    let (mut codec, _) = receiver(key());
    let mut src = BytesMut::new();
    let (mut fed, mut frame_start) = (0usize, 0usize);
    let mut frames = Vec::new();
    for chunk in chunks {
        src.extend_from_slice(chunk);
        fed += chunk.len();
        // Bounded: every accepted frame consumes at least MIN_FRAME_LEN bytes.
        loop {
            match codec.decode(&mut src) {
                Ok(Some(frame)) => {
                    let end = fed - src.len();
                    frames.push((frame, frame_start..end));
                    frame_start = end;
                }
                Ok(None) => break,
                Err(e) => return Received { frames, error: Some(e) },
            }
        }
    }
    Received { frames, error: None }
}

fn feed_whole(bytes: &[u8]) -> Received {
    feed([bytes])
}

fn accepted_payloads(received: &Received) -> Vec<Payload> {
    received.frames.iter().map(|(f, _)| f.payload.clone()).collect()
}

/// The MAC check, written again from the layout in `src/rpc/frame.rs` rather than with the codec's
/// own code: the prefix announces the rest, and the last 32 bytes are the keyed blake3 of
/// everything before them, under the cluster key for a hello and the session key after it.
fn independently_authentic(frame: &[u8], hello: bool) -> bool {
    if frame.len() < PREFIX_LEN + MIN_FRAME_LEN {
        return false;
    }
    let announced = u32::from_be_bytes(frame[..4].try_into().unwrap()) as usize;
    let (sealed, tag) = frame.split_at(frame.len() - 32);
    let mac_key = if hello { cluster_mac_key() } else { session_mac_key() };
    announced == frame.len() - PREFIX_LEN && blake3::keyed_hash(&mac_key, sealed).as_bytes() == tag
}

fn is_hello(frame: &Frame) -> bool {
    matches!(frame.payload, Payload::Hello(_))
}

fn assert_reason(received: &Received, reason: &str) {
    match &received.error {
        Some(e) => assert_eq!(e.reason(), reason, "wrong error: {e}"),
        None => panic!("expected a {reason} error, got none"),
    }
}

// ---- round trips -------------------------------------------------------------------------

#[test]
fn every_variant_round_trips_fed_byte_by_byte() {
    let items = payloads();
    let (bytes, ends) = encode_all(key(), &items);
    let received = feed(bytes.chunks(1));
    assert!(received.error.is_none(), "{:?}", received.error);
    assert_eq!(accepted_payloads(&received), items);
    let seqs: Vec<u64> = received.frames.iter().map(|(f, _)| f.seq).collect();
    assert_eq!(seqs, (1..=items.len() as u64).collect::<Vec<_>>());
    for ((frame, range), end) in received.frames.iter().zip(&ends) {
        assert_eq!(range.end, *end, "frame {} ended at the wrong byte", frame.seq);
        assert_eq!(frame.request_id, frame.payload.request_id());
        assert!(independently_authentic(&bytes[range.clone()], is_hello(frame)));
    }
}

#[test]
fn every_variant_round_trips_split_at_every_point() {
    let items = payloads();
    let (bytes, _) = encode_all(key(), &items);
    for split in 0..=bytes.len() {
        let received = feed([&bytes[..split], &bytes[split..]]);
        assert!(received.error.is_none(), "split at {split}: {:?}", received.error);
        assert_eq!(accepted_payloads(&received), items, "split at {split}");
    }
}

#[test]
fn the_hello_names_the_remote_peer() {
    let (mut bytes, _) = encode_all(key(), &payloads()[..1]);
    let (mut codec, _) = receiver(key());
    assert_eq!(codec.remote_peer(), None);
    codec.decode(&mut bytes).unwrap().unwrap();
    assert_eq!(codec.remote_peer(), Some(peer_v4(100)));
    assert_eq!(codec.last_seq(), 1);
}

#[test]
fn overhead_is_54_bytes_and_the_largest_message_fits_the_default_cap() {
    assert_eq!(OVERHEAD, 54);
    let (bytes, ends) = encode_all(key(), &payloads());
    let mut start = 0;
    let mut largest = 0;
    for end in ends {
        let frame = &bytes[start..end];
        assert_eq!(u32::from_be_bytes(frame[..4].try_into().unwrap()) as usize, frame.len() - 4);
        largest = largest.max(frame.len());
        start = end;
    }
    // Closer/Neighbors with MAX_LISTED_PEERS peers, half of them IPv6.
    assert!(largest < DEFAULT_MAX_FRAME_LEN / 16, "largest frame is {largest} bytes");
}

// ---- what must be refused ----------------------------------------------------------------

#[test]
fn a_frame_made_with_the_wrong_secret_is_bad_mac() {
    let (bytes, _) = encode_all(MacKey::derive(b"not the cluster secret"), &payloads());
    let received = feed_whole(&bytes);
    assert!(received.frames.is_empty());
    assert_reason(&received, "bad_mac");
}

#[test]
fn every_single_bit_flip_is_refused() {
    let items = payloads();
    let (bytes, ends) = encode_all(key(), &items);
    // Flip each bit of the third frame (a message, after the hello and the proof), with the
    // rest of the stream following it.
    let (start, end) = (ends[1], ends[2]);
    for byte in start..end {
        for bit in 0..8 {
            let mut flipped = bytes.to_vec();
            flipped[byte] ^= 1 << bit;
            let received = feed_whole(&flipped);
            assert_eq!(
                received.frames.len(),
                2,
                "byte {byte} bit {bit}: only the handshake passes"
            );
            let at = byte - start;
            match (at, &received.error) {
                // The length prefix: the frame ends elsewhere, so the MAC cannot match, or the
                // cap or minimum refuses it first, or the decoder waits for bytes never sent.
                (0..4, None) => {}
                (0..4, Some(e)) => assert!(
                    matches!(e.reason(), "bad_mac" | "too_large" | "truncated"),
                    "byte {byte} bit {bit}: {e}"
                ),
                (4, Some(e)) => assert_eq!(e.reason(), "bad_version", "bit {bit}: {e}"),
                (_, Some(e)) => assert_eq!(e.reason(), "bad_mac", "byte {byte} bit {bit}: {e}"),
                (_, None) => panic!("byte {byte} bit {bit}: flipped frame not refused"),
            }
        }
    }
}

#[test]
fn an_oversized_length_prefix_is_too_large_without_allocating() {
    for claimed in [u32::MAX, (DEFAULT_MAX_FRAME_LEN + 1) as u32] {
        let mut src = BytesMut::from(&claimed.to_be_bytes()[..]);
        src.extend_from_slice(&[0u8; 16]);
        let mut codec = FrameCodec::new(key());
        let err = codec.decode(&mut src).unwrap_err();
        assert!(
            matches!(err, FrameError::TooLarge { len, max } if len == u64::from(claimed) && max == UNAUTHENTICATED_MAX_FRAME_LEN),
            "{err}"
        );
        assert!(src.capacity() < 1024, "buffer grew to {} bytes", src.capacity());
    }
}

#[test]
fn the_cap_is_small_until_the_hello_is_authenticated() {
    let big = Payload::Body(BodyMsg::Found { id: 1, body: Bytes::from(vec![3; 20_000]) });
    let items = [hello(peer_v4(1)), proof(peer_v4(1)), big];
    let (bytes, ends) = encode_all(key(), &items);
    // A stranger's first frame may not be big.
    let received = feed_whole(&bytes[ends[1]..]);
    assert!(matches!(
        received.error,
        Some(FrameError::TooLarge { max: UNAUTHENTICATED_MAX_FRAME_LEN, .. })
    ));
    // After the hello, the connection's cap applies.
    let received = feed_whole(&bytes);
    assert!(received.error.is_none(), "{:?}", received.error);
    assert_eq!(accepted_payloads(&received), items);
}

#[test]
fn a_truncated_frame_waits_rather_than_fails() {
    let (bytes, ends) = encode_all(key(), &payloads()[..2]);
    for cut in [ends[0] + 1, ends[0] + 4, ends[0] + 30, ends[1] - 1] {
        let received = feed_whole(&bytes[..cut]);
        assert!(received.error.is_none(), "cut at {cut}: {:?}", received.error);
        assert_eq!(received.frames.len(), 1, "cut at {cut}: only the hello is complete");
    }
    // The rest arrives: the frame completes.
    assert_eq!(feed([&bytes[..ends[1] - 1], &bytes[ends[1] - 1..]]).frames.len(), 2);
}

#[test]
fn a_complete_frame_too_short_for_header_and_mac_is_truncated() {
    for len in [0u32, 1, 17, (MIN_FRAME_LEN - 1) as u32] {
        let mut src = BytesMut::from(&len.to_be_bytes()[..]);
        src.extend_from_slice(&vec![1u8; len as usize]);
        let err = FrameCodec::new(key()).decode(&mut src).unwrap_err();
        assert_eq!(err.reason(), "truncated", "len {len}: {err}");
    }
}

#[test]
fn a_replayed_frame_is_refused() {
    let (bytes, ends) = encode_all(key(), &payloads()[..4]);
    let handshake = &bytes[..ends[1]];
    let (first, second) = (&bytes[ends[1]..ends[2]], &bytes[ends[2]..]);

    // The same bytes twice on one connection.
    let received = feed([handshake, first, first]);
    assert_eq!(received.frames.len(), 3);
    assert!(matches!(received.error, Some(FrameError::Replayed { seq: 3, last: 3 })));

    // An old frame after a newer one (reordering is replay too; TCP never reorders).
    let received = feed([handshake, second, first]);
    assert_eq!(received.frames.len(), 3);
    assert!(matches!(received.error, Some(FrameError::Replayed { seq: 3, last: 4 })));

    // The hello again, later: sealed under the cluster key, while the connection has moved
    // on to its session key.
    let received = feed([handshake, first, &bytes[..ends[0]]]);
    assert_reason(&received, "bad_mac");

    // The proof again: a replay too.
    let received = feed([handshake, &bytes[ends[0]..ends[1]]]);
    assert!(matches!(received.error, Some(FrameError::Replayed { seq: 2, last: 2 })));
}

#[test]
fn garbage_is_refused() {
    // Someone speaking HTTP to the RPC port: "GET " is a 1.2 GB length prefix.
    assert_reason(&feed_whole(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n"), "too_large");
    // A length that fits, then junk: refused on version or MAC.
    let mut junk = 60u32.to_be_bytes().to_vec();
    junk.extend((0..60u8).map(|i| i.wrapping_mul(37)));
    junk[PREFIX_LEN] = VERSION; // the right version, so the MAC is what refuses it
    assert_reason(&feed_whole(&junk), "bad_mac");
    junk[PREFIX_LEN] = VERSION.wrapping_add(1);
    assert_reason(&feed_whole(&junk), "bad_version");
    // One stray byte before a valid stream throws the framing off.
    let (bytes, _) = encode_all(key(), &payloads());
    let mut shifted = vec![0u8];
    shifted.extend_from_slice(&bytes);
    let received = feed_whole(&shifted);
    assert!(received.frames.is_empty());
    assert!(received.error.is_some());
}

#[test]
fn another_protocol_version_is_bad_version() {
    let (bytes, _) = encode_all(key(), &payloads()[..1]);
    let mut bumped = bytes.to_vec();
    bumped[PREFIX_LEN] = VERSION - 1;
    let received = feed_whole(&bumped);
    let old = VERSION - 1;
    assert!(
        matches!(received.error, Some(FrameError::BadVersion { got, expected: VERSION }) if got == old),
        "{:?}",
        received.error
    );
}

#[test]
fn messages_need_exactly_one_hello_first() {
    let (bytes, ends) = encode_all(key(), &payloads()[..3]);
    let (hello_frame, message_frame) = (&bytes[..ends[0]], &bytes[ends[1]..]);
    // Without the hello there is no session key: the message cannot even be authenticated.
    assert_reason(&feed_whole(message_frame), "bad_mac");
    // A member of the cluster sealing a message under the cluster key still needs a hello.
    let payload = &message_frame[PREFIX_LEN + 18..message_frame.len() - 32];
    let early = forge(&cluster_mac_key(), 2, 1, 0, payload);
    assert_reason(&feed_whole(&early), "unexpected_kind");
    // A second hello (sealed under the session key, as a member would) is refused.
    let hello_payload = &hello_frame[PREFIX_LEN + 18..hello_frame.len() - 32];
    let mut stream = hello_frame.to_vec();
    stream.extend(forge(&session_mac_key(), 1, 2, 0, hello_payload));
    let received = feed_whole(&stream);
    assert_eq!(received.frames.len(), 1);
    assert_reason(&received, "unexpected_kind");
    // So is an authentic message between the hello and the proof.
    let mut stream = hello_frame.to_vec();
    stream.extend(forge(&session_mac_key(), 2, 2, 0, payload));
    let received = feed_whole(&stream);
    assert_eq!(received.frames.len(), 1);
    assert_reason(&received, "unexpected_kind");
}

#[test]
fn a_proof_made_for_another_nonce_is_bad_proof() {
    // A member answering some other connection's nonce (or a proof recorded there and
    // resealed): authentic frame, wrong proof.
    let elsewhere = Hello { peer: peer_v4(200), nonce: [0x99; NONCE_LEN] };
    let wrong = key().proof(&Hello { peer: peer_v4(100), nonce: SENDER_NONCE }, &elsewhere);
    // The wrong proof's payload bytes, from a frame a codec seals on some connection, resealed
    // by hand under this connection's session key.
    let mut encoder = FrameCodec::new(key());
    let somebody = Hello { peer: peer_v4(1), nonce: [0; NONCE_LEN] };
    encoder.encode(Payload::Hello(somebody), &mut BytesMut::new()).unwrap();
    encoder.decode(&mut receiver(key()).1).unwrap().unwrap();
    let mut sealed = BytesMut::new();
    encoder.encode(Payload::Proof(wrong), &mut sealed).unwrap();
    let payload = &sealed[PREFIX_LEN + 18..sealed.len() - 32];
    let (bytes, ends) = encode_all(key(), &payloads()[..1]);
    let mut stream = bytes[..ends[0]].to_vec();
    stream.extend(forge(&session_mac_key(), 4, 2, 0, payload));
    let received = feed_whole(&stream);
    assert_eq!(received.frames.len(), 1);
    assert_reason(&received, "bad_proof");
}

#[test]
fn a_frame_recorded_on_one_connection_fails_on_another() {
    let (bytes, ends) = encode_all(key(), &payloads()[..2]);
    // The same hello replays fine (it only names the peer), but the receiver's new nonce
    // gives the connection a new session key, so the recorded proof fails the MAC: a
    // replayer never gets past the handshake.
    let mut other = FrameCodec::new(key());
    let mut out = BytesMut::new();
    let fresh = Hello { peer: peer_v4(200), nonce: [0x11; NONCE_LEN] };
    other.encode(Payload::Hello(fresh), &mut out).unwrap();
    let mut src = BytesMut::from(&bytes[..]);
    assert!(other.decode(&mut src).unwrap().is_some());
    let err = other.decode(&mut src).unwrap_err();
    assert_eq!(err.reason(), "bad_mac", "{err}");
    assert_eq!(src.len(), bytes.len() - ends[1]);
}

#[test]
fn an_authentic_but_invalid_message_is_invalid() {
    let too_many = Message::Response {
        id: 1,
        body: Response::Next(NextHop::Closer(peers(MAX_LISTED_PEERS as u16 + 1))),
    };
    let items = [hello(peer_v4(1)), proof(peer_v4(1)), Payload::Message(too_many)];
    let received = feed_whole(&encode_all(key(), &items).0);
    assert_eq!(received.frames.len(), 2);
    assert_reason(&received, "invalid");
}

// ---- properties --------------------------------------------------------------------------

/// Checks what any decode of any bytes must satisfy: every accepted frame's bytes carry a
/// valid MAC (checked independently) and are the frame the honest encoder sent with that seq.
fn assert_only_authentic_frames(received: &Received, stream: &[u8], sent: &[Payload]) {
    for (frame, range) in &received.frames {
        assert!(
            independently_authentic(&stream[range.clone()], is_hello(frame)),
            "accepted a frame without a valid MAC"
        );
        let original = frame
            .seq
            .checked_sub(1)
            .and_then(|i| usize::try_from(i).ok())
            .and_then(|i| sent.get(i));
        assert_eq!(Some(&frame.payload), original, "accepted a frame the sender never sent");
    }
}

/// Bounded so the whole file runs in a few seconds: 256 cases per property.
fn config() -> ProptestConfig {
    ProptestConfig { cases: 256, failure_persistence: None, ..ProptestConfig::default() }
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn random_chunking_round_trips(cuts in prop::collection::vec(0usize..6000, 0..40)) {
        let items = payloads();
        let (bytes, _) = encode_all(key(), &items);
        let mut cuts: Vec<usize> = cuts.into_iter().map(|c| c % (bytes.len() + 1)).collect();
        cuts.push(0);
        cuts.push(bytes.len());
        cuts.sort_unstable();
        let chunks: Vec<&[u8]> = cuts.windows(2).map(|w| &bytes[w[0]..w[1]]).collect();
        let received = feed(chunks);
        prop_assert!(received.error.is_none(), "{:?}", received.error);
        prop_assert_eq!(accepted_payloads(&received), items);
    }

    #[test]
    fn random_bytes_never_panic_and_are_never_accepted(
        announced in 0u32..200,
        junk in prop::collection::vec(any::<u8>(), 0..400),
        raw_prefix in any::<bool>(),
    ) {
        // Half the cases get a plausible length prefix, so junk reaches the MAC check.
        let mut stream = if raw_prefix { Vec::new() } else { announced.to_be_bytes().to_vec() };
        stream.extend_from_slice(&junk);
        for chunking in [1, 7, stream.len().max(1)] {
            let received = feed(stream.chunks(chunking));
            assert_only_authentic_frames(&received, &stream, &[]);
        }
    }

    #[test]
    fn mutated_streams_never_panic_and_never_yield_a_forged_frame(
        edits in prop::collection::vec((any::<prop::sample::Index>(), any::<u8>(), 0u8..4), 1..6),
        chunking in 1usize..300,
    ) {
        let items = payloads();
        let (bytes, _) = encode_all(key(), &items);
        let mut stream = bytes.to_vec();
        for (at, byte, op) in edits {
            let i = at.index(stream.len().max(1));
            match op {
                0 if !stream.is_empty() => stream[i] = byte,
                1 if !stream.is_empty() => stream[i] ^= 1 << (byte % 8),
                2 => stream.insert(i.min(stream.len()), byte),
                _ if !stream.is_empty() => { stream.remove(i); }
                _ => {}
            }
        }
        let received = feed(stream.chunks(chunking));
        assert_only_authentic_frames(&received, &stream, &items);
    }

    /// A member of the cluster (or the codec's own bugs) sending any hello payload under the
    /// cluster key: decoded or refused, never a panic; accepted only as a hello.
    #[test]
    fn any_hello_payload_is_a_hello_or_refused(payload in prop::collection::vec(any::<u8>(), 0..120)) {
        let stream = forge(&cluster_mac_key(), 1, 1, 0, &payload);
        let received = feed_whole(&stream);
        for (frame, _) in &received.frames {
            prop_assert!(is_hello(frame));
        }
    }

    /// After a real hello, a proof of any bytes (sealed under the right session key, so only
    /// the proof itself is wrong) never establishes the connection, and nothing after it is
    /// accepted.
    #[test]
    fn a_proof_of_any_other_bytes_never_establishes(
        payload in prop::collection::vec(any::<u8>(), 0..80),
        then in prop::collection::vec(any::<u8>(), 0..60),
    ) {
        let (bytes, ends) = encode_all(key(), &payloads()[..2]);
        let real = &bytes[ends[0]..ends[1]];
        let forged_proof = forge(&session_mac_key(), 4, 2, 0, &payload);
        prop_assume!(forged_proof[..] != real[..]);
        let mut stream = bytes[..ends[0]].to_vec();
        stream.extend_from_slice(&forged_proof);
        stream.extend(forge(&session_mac_key(), 2, 3, 0, &then));
        let received = feed_whole(&stream);
        prop_assert_eq!(received.frames.len(), 1, "only the hello passes");
        prop_assert!(received.error.is_some());
    }

    /// Once established, frames of every kind byte with any payload, sealed under the
    /// session key: never a panic, and an accepted frame's payload is of its header's kind.
    #[test]
    fn authentic_frames_of_any_kind_and_payload_never_panic(
        frames in prop::collection::vec((0u8..6, any::<u64>(), prop::collection::vec(any::<u8>(), 0..100)), 1..6),
    ) {
        let (bytes, ends) = encode_all(key(), &payloads()[..2]);
        let mut stream = bytes[..ends[1]].to_vec();
        for (i, (kind, request_id, payload)) in frames.iter().enumerate() {
            stream.extend(forge(&session_mac_key(), *kind, 3 + i as u64, *request_id, payload));
        }
        let received = feed_whole(&stream);
        for (frame, range) in received.frames.iter().skip(2) {
            let kind = stream[range.start + PREFIX_LEN + 1];
            prop_assert_eq!(frame.payload.kind() as u8, kind);
            prop_assert!(matches!(frame.payload, Payload::Message(_) | Payload::Body(_)));
        }
    }
}
