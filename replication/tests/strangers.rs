//! Messages from strangers: arbitrary sequences of well-formed and ill-formed messages fed to
//! one node. Nothing panics, the routing invariants hold after every input, and messages no
//! correct node sends are refused with an error value.

use beehive_replication::beehive::wire::{ObjectInfo, Offer};
use beehive_replication::message::{NextHop, Request, Response, MAX_LISTED_PEERS};
use beehive_replication::{ChordConfig, Id, Message, Node, Peer, ProtocolError};
use proptest::prelude::*;
use std::net::SocketAddr;
use std::time::Duration;

fn peer(id: u128, port: u16) -> Peer {
    let addr: SocketAddr = SocketAddr::from(([127, 0, 0, 1], port));
    Peer { id: Id(id), addr }
}

const ME: u128 = 1 << 127;

fn me() -> Peer {
    peer(ME, 7000)
}

/// A node in a small ring it knows, with one finger and a predecessor, and a lookup in flight
/// so that responses have requests to match.
fn node() -> Node {
    let mut n = Node::new(me(), ChordConfig::default(), Duration::ZERO);
    let r = n.routing_mut();
    r.set_successors([peer(ME + 10, 7001), peer(ME + 20, 7002)]);
    r.set_predecessor(Some(peer(ME - 10, 7003)));
    r.set_finger(100, peer(ME + (1 << 100), 7004));
    n.lookup(Duration::ZERO, Id(ME + (1 << 101)));
    while n.poll_transmit().is_some() {}
    n
}

/// Routing state no correct node can be in.
fn check_invariants(n: &Node) -> Result<(), TestCaseError> {
    let me = n.me().id;
    let r = n.routing();
    prop_assert!(r.successors().len() <= n.config().successors, "successor list too long");
    prop_assert!(r.successors().iter().all(|p| p.id != me), "we are our own successor");
    let d: Vec<u128> = r.successors().iter().map(|p| me.distance_to(p.id)).collect();
    prop_assert!(d.windows(2).all(|w| w[0] < w[1]), "successors not in ring order: {d:?}");
    prop_assert!(r.predecessor().is_none_or(|p| p.id != me), "we are our own predecessor");
    prop_assert!(
        n.outstanding_requests() <= 64,
        "{} requests outstanding",
        n.outstanding_requests()
    );
    prop_assert!(n.poll_timeout().is_some(), "a joined node always has a timer");
    Ok(())
}

fn any_peer() -> impl Strategy<Value = Peer> {
    prop_oneof![
        // Strangers anywhere on the ring...
        (any::<u128>(), 1u16..60000).prop_map(|(id, port)| peer(id, port)),
        // ...our own neighbours (so responses can match pending requests)...
        Just(peer(ME + 10, 7001)),
        Just(peer(ME + 20, 7002)),
        Just(peer(ME + (1 << 100), 7004)),
        // ...and impostors using our id.
        Just(me()),
    ]
}

fn peers(max: usize) -> impl Strategy<Value = Vec<Peer>> {
    prop::collection::vec(any_peer(), 0..max)
}

fn next_hop() -> impl Strategy<Value = NextHop> {
    prop_oneof![
        Just(NextHop::Here),
        peers(MAX_LISTED_PEERS + 4).prop_map(NextHop::Successors),
        peers(MAX_LISTED_PEERS + 4).prop_map(NextHop::Closer),
        (any::<u8>(), any::<bool>()).prop_map(|(level, _)| NextHop::Have { level, object: None }),
    ]
}

fn offer() -> impl Strategy<Value = Offer> {
    (any::<u128>(), any::<u8>(), any::<u64>(), any::<u32>(), any::<bool>(), any::<u64>()).prop_map(
        |(k, level, version, lease_ms, from_home, stamp)| Offer {
            key: Id(k),
            level,
            stamp,
            info: ObjectInfo { version, hash: [7; 32], size: 1 },
            lease_ms,
            from_home,
            renewable: true,
        },
    )
}

fn message() -> impl Strategy<Value = Message> {
    let request = prop_oneof![
        Just(Request::Ping),
        Just(Request::Stabilize),
        (any::<u128>(), any::<bool>(), any::<bool>()).prop_map(|(k, as_home, want_object)| {
            Request::FindNext { key: Id(k), as_home, want_object }
        }),
        (any::<u128>(), any::<u64>(), any::<u128>(), any::<u128>()).prop_map(|(k, v, s, l)| {
            Request::Invalidate { key: Id(k), min_version: v, arc_start: Id(s), limit: Id(l) }
        }),
        (prop::option::of(any_peer()), peers(MAX_LISTED_PEERS + 4))
            .prop_map(|(predecessor, successors)| Request::Leaving { predecessor, successors }),
        // Pushed offers for any key, at any level, with any lease: a stranger's push may
        // make us fetch a body (verified against its hash by the caller), never corrupt state.
        prop::collection::vec(offer(), 0..4).prop_map(|offers| Request::Push { offers }),
    ];
    let response = prop_oneof![
        Just(Response::Pong),
        Just(Response::Ack),
        (prop::option::of(any_peer()), peers(MAX_LISTED_PEERS + 4))
            .prop_map(|(predecessor, successors)| Response::Neighbors { predecessor, successors }),
        next_hop().prop_map(Response::Next),
    ];
    prop_oneof![
        (any::<u64>(), request).prop_map(|(id, body)| Message::Request { id, body }),
        // Small ids collide with the node's own request numbers, which start at 1.
        (0u64..40, response).prop_map(|(id, body)| Message::Response { id, body }),
    ]
}

#[derive(Debug, Clone)]
enum Step {
    Deliver(Peer, Box<Message>),
    Tick(u64),
    Lookup(u128),
}

fn step() -> impl Strategy<Value = Step> {
    prop_oneof![
        6 => (any_peer(), message()).prop_map(|(p, m)| Step::Deliver(p, Box::new(m))),
        2 => (1u64..3000).prop_map(Step::Tick),
        1 => any::<u128>().prop_map(Step::Lookup),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn strangers_cannot_break_a_node(steps in prop::collection::vec(step(), 1..80)) {
        let mut n = node();
        let mut now = Duration::ZERO;
        for s in steps {
            match s {
                Step::Deliver(from, msg) => {
                    let oversized = match &*msg {
                        Message::Request { body: Request::Leaving { successors, .. }, .. }
                        | Message::Response { body: Response::Neighbors { successors, .. }, .. } => {
                            successors.len() > MAX_LISTED_PEERS
                        }
                        Message::Response {
                            body: Response::Next(NextHop::Closer(c) | NextHop::Successors(c)),
                            ..
                        } => c.len() > MAX_LISTED_PEERS,
                        _ => false,
                    };
                    let result = n.handle_message(now, from, *msg);
                    if from.id == n.me().id {
                        prop_assert_eq!(result, Err(ProtocolError::FromSelf(from.id)));
                    } else if oversized {
                        let refused = matches!(result, Err(ProtocolError::TooManyPeers { .. }));
                        prop_assert!(refused, "oversized list accepted");
                    }
                }
                Step::Tick(ms) => {
                    now += Duration::from_millis(ms);
                    n.handle_timeout(now);
                }
                Step::Lookup(k) => {
                    n.lookup(now, Id(k));
                }
            }
            while let Some(t) = n.poll_transmit() {
                prop_assert!(t.to.id != n.me().id, "the node sent a message to itself");
            }
            while n.poll_event().is_some() {}
            check_invariants(&n)?;
        }
    }
}

#[test]
fn a_response_nobody_asked_for_is_refused() {
    let mut n = node();
    let msg = Message::Response { id: 9999, body: Response::Pong };
    let r = n.handle_message(Duration::ZERO, peer(5, 5), msg);
    assert_eq!(r, Err(ProtocolError::UnknownRequest { id: 9999 }));
}

#[test]
fn a_response_from_the_wrong_peer_is_refused_and_the_request_stays_open() {
    let mut n = node();
    let before = n.outstanding_requests();
    // Request 1 is the lookup step sent to our finger at ME + 2^100.
    let msg = Message::Response { id: 1, body: Response::Next(NextHop::Here) };
    let r = n.handle_message(Duration::ZERO, peer(5, 5), msg);
    assert!(matches!(r, Err(ProtocolError::WrongResponder { id: 1, .. })), "{r:?}");
    assert_eq!(n.outstanding_requests(), before);
}

/// Answers request 1, the first lookup step `node()` sent (key ME + 2^101, to its finger at
/// ME + 2^100), with `body` from that finger.
fn answer_first_step(body: Response) -> Result<(), ProtocolError> {
    let mut n = node();
    let finger = peer(ME + (1 << 100), 7004);
    n.handle_message(Duration::ZERO, finger, Message::Response { id: 1, body })
}

#[test]
fn a_response_of_the_wrong_kind_is_refused() {
    let r = answer_first_step(Response::Pong);
    assert!(matches!(r, Err(ProtocolError::MismatchedResponse { id: 1, .. })), "{r:?}");
}

#[test]
fn a_lookup_step_that_goes_backwards_is_refused() {
    // The responder names a node behind itself.
    let r = answer_first_step(Response::Next(NextHop::Closer(vec![peer(ME + 5, 7010)])));
    assert!(matches!(r, Err(ProtocolError::NoProgress { .. })), "{r:?}");
}

#[test]
fn a_home_before_the_key_is_refused() {
    // A "home" between the responder and the key.
    let home = peer(ME + (1 << 100) + 5, 7011);
    let r = answer_first_step(Response::Next(NextHop::Successors(vec![home])));
    assert!(matches!(r, Err(ProtocolError::NotPastKey { .. })), "{r:?}");
}

#[test]
fn an_oversized_peer_list_is_refused_before_it_touches_state() {
    let mut n = node();
    let successors: Vec<Peer> =
        (0..MAX_LISTED_PEERS as u128 + 1).map(|i| peer(ME + 100 + i, 8000)).collect();
    let msg = Message::Request { id: 1, body: Request::Leaving { predecessor: None, successors } };
    let before: Vec<Peer> = n.routing().successors().to_vec();
    let r = n.handle_message(Duration::ZERO, peer(ME + 10, 7001), msg);
    assert!(matches!(r, Err(ProtocolError::TooManyPeers { .. })), "{r:?}");
    assert_eq!(n.routing().successors(), &before[..]);
}
