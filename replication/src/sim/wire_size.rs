//! The encoded size of a message (bincode, standard configuration: what the live codec
//! sends) without encoding it. The simulator counts the bytes of every message it carries;
//! offer lists and count lists are most of them (thousands of entries at large N), so those
//! are summed by formula, and only the small rest goes through a counting writer. The tests
//! hold the formula to the real encoding for every message kind.

use crate::beehive::wire::{CountEntry, ObjectInfo, Offer, OfferList, Pull, Withdrawn};
use crate::message::{Message, Request, Response};
use bincode::enc::write::SizeWriter;
use serde::Serialize;

/// Bytes of an unsigned integer in bincode's variable-length encoding.
fn varint(v: u128) -> usize {
    if v <= 250 {
        1
    } else if v <= u128::from(u16::MAX) {
        3
    } else if v <= u128::from(u32::MAX) {
        5
    } else if v <= u128::from(u64::MAX) {
        9
    } else {
        17
    }
}

fn v64(v: u64) -> usize {
    varint(u128::from(v))
}

/// A sequence's length prefix.
fn len_prefix(n: usize) -> usize {
    varint(n as u128)
}

/// What the counting writer makes of anything the formulas below do not cover.
fn encoded<T: Serialize>(value: &T) -> usize {
    let mut w = SizeWriter::default();
    match bincode::serde::encode_into_writer(value, &mut w, bincode::config::standard()) {
        Ok(()) => w.bytes_written,
        Err(_) => 0,
    }
}

fn info_len(i: &ObjectInfo) -> usize {
    v64(i.version) + i.hash.len() + v64(i.size)
}

fn offer_len(o: &Offer) -> usize {
    // key, level (one byte), stamp, info, lease_ms, from_home, renewable
    varint(o.key.0) + 1 + v64(o.stamp) + info_len(&o.info) + v64(u64::from(o.lease_ms)) + 2
}

fn offers_len(offers: &[Offer]) -> usize {
    len_prefix(offers.len()) + offers.iter().map(offer_len).sum::<usize>()
}

fn withdrawn_len(w: &Withdrawn) -> usize {
    // key, then the option tag and (level byte, stamp)
    varint(w.key.0) + 1 + w.level.map_or(0, |l| 1 + v64(l.stamp))
}

fn list_len(l: &OfferList) -> usize {
    v64(l.gen)
        + 1
        + offers_len(&l.offers)
        + len_prefix(l.withdrawn.len())
        + l.withdrawn.iter().map(withdrawn_len).sum::<usize>()
        + v64(u64::from(l.renew_ms))
        + len_prefix(l.matched.words().len())
        + l.matched.words().iter().map(|w| v64(*w)).sum::<usize>()
        + len_prefix(l.leases.len())
        + l.leases
            .iter()
            .map(|b| len_prefix(b.len()) + b.iter().map(|v| v64(u64::from(*v))).sum::<usize>())
            .sum::<usize>()
}

fn count_len(c: &CountEntry) -> usize {
    varint(c.key.0) + varint(c.origin.0) + v64(u64::from(c.count))
}

fn pull_len(p: &Pull) -> usize {
    len_prefix(p.counts.len())
        + p.counts.iter().map(count_len).sum::<usize>()
        + encoded(&p.report)
        + 1
        + p.known.map_or(0, |(epoch, leader)| v64(epoch) + varint(leader.0))
        + 1
        + p.since.map_or(0, v64)
        + 1
        + 1
        + p.digest.as_ref().map_or(0, |d| {
            len_prefix(d.sums().len()) + d.sums().iter().map(|s| v64(*s)).sum::<usize>()
        })
        + 1
        + p.next.map_or(0, |n| varint(n.0))
}

/// The bincode length of `m`, exactly.
pub(super) fn message_len(m: &Message) -> usize {
    // Each enum tag below (Message's and the body's) is an index under 251: one byte.
    match m {
        Message::Request { id, body: Request::Push { offers } } => {
            2 + v64(*id) + offers_len(offers)
        }
        Message::Request { id, body: Request::Pull(p) } => 2 + v64(*id) + pull_len(p),
        Message::Response { id, body: Response::Offers { list, result } } => {
            2 + v64(*id) + list_len(list) + encoded(result)
        }
        other => encoded(other),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::beehive::digest::Digest;
    use crate::beehive::wire::{LevelStamp, Report};
    use crate::id::Id;
    use crate::message::NextHop;
    use crate::peer::Peer;
    use rand::{Rng, SeedableRng};
    use rand_chacha::ChaCha8Rng;

    fn bincode_len(m: &Message) -> usize {
        bincode::serde::encode_to_vec(m, bincode::config::standard()).map(|v| v.len()).unwrap_or(0)
    }

    /// Integers spread over every varint width, edges included.
    fn any_u64(rng: &mut ChaCha8Rng) -> u64 {
        let edges = [0, 250, 251, 65_535, 65_536, u64::from(u32::MAX), 1 << 32, u64::MAX];
        if rng.random_bool(0.3) {
            edges[rng.random_range(0..edges.len())]
        } else {
            rng.random::<u64>() >> rng.random_range(0..64)
        }
    }

    fn any_id(rng: &mut ChaCha8Rng) -> Id {
        match rng.random_range(0..4) {
            0 => Id(u128::from(any_u64(rng))),
            1 => Id(u128::MAX),
            _ => Id(rng.random::<u128>() >> rng.random_range(0..128)),
        }
    }

    fn any_offer(rng: &mut ChaCha8Rng) -> Offer {
        Offer {
            key: any_id(rng),
            level: rng.random(),
            stamp: any_u64(rng),
            info: ObjectInfo { version: any_u64(rng), hash: rng.random(), size: any_u64(rng) },
            lease_ms: any_u64(rng) as u32,
            from_home: rng.random(),
            renewable: rng.random(),
        }
    }

    fn any_list(rng: &mut ChaCha8Rng, n: usize) -> OfferList {
        OfferList {
            gen: any_u64(rng),
            full: rng.random(),
            offers: (0..n).map(|_| any_offer(rng)).collect(),
            withdrawn: (0..n / 3)
                .map(|_| Withdrawn {
                    key: any_id(rng),
                    level: rng
                        .random_bool(0.5)
                        .then(|| LevelStamp { level: rng.random(), stamp: any_u64(rng) }),
                })
                .collect(),
            renew_ms: any_u64(rng) as u32,
            matched: {
                let (mut a, mut b) = (Digest::default(), Digest::default());
                a.add(any_id(rng), 1, 1, 1);
                b.add(any_id(rng), 1, 1, 1);
                a.matching(&b)
            },
            leases: (0..n / 100)
                .map(|_| (0..n / 50).map(|_| any_u64(rng) as u32).collect())
                .collect(),
        }
    }

    fn any_pull(rng: &mut ChaCha8Rng, n: usize) -> Pull {
        Pull {
            counts: (0..n)
                .map(|_| CountEntry {
                    key: any_id(rng),
                    origin: any_id(rng),
                    count: any_u64(rng) as u32,
                })
                .collect(),
            report: rng.random_bool(0.5).then(|| Report {
                generation: any_u64(rng),
                nodes: any_u64(rng),
                stored: any_u64(rng),
                ..Report::default()
            }),
            known: rng.random_bool(0.5).then(|| (any_u64(rng), any_id(rng))),
            since: rng.random_bool(0.5).then(|| any_u64(rng)),
            full: rng.random(),
            digest: rng.random_bool(0.5).then(|| {
                let mut d = Digest::default();
                for _ in 0..n {
                    d.add(any_id(rng), rng.random(), any_u64(rng), any_u64(rng));
                }
                d
            }),
            next: rng.random_bool(0.5).then(|| any_id(rng)),
        }
    }

    #[test]
    fn the_formula_is_the_encoded_length_of_every_kind() {
        let mut rng = ChaCha8Rng::seed_from_u64(7);
        let peer = Peer::from_addr("127.0.0.1:7000".parse().expect("an address"));
        for round in 0..200 {
            // Up to a few thousand entries: length prefixes of every width.
            let n = [0, 1, 250, 251, 3000][round % 5];
            let id = any_u64(&mut rng);
            let bodies = vec![
                Message::Request {
                    id,
                    body: Request::Push { offers: any_list(&mut rng, n).offers },
                },
                Message::Request { id, body: Request::Pull(Box::new(any_pull(&mut rng, n))) },
                Message::Response {
                    id,
                    body: Response::Offers { list: any_list(&mut rng, n), result: None },
                },
                Message::Request { id, body: Request::Ping },
                Message::Request {
                    id,
                    body: Request::FindNext {
                        key: any_id(&mut rng),
                        as_home: true,
                        want_object: false,
                    },
                },
                Message::Request {
                    id,
                    body: Request::Cache { offer: any_offer(&mut rng), holder: peer },
                },
                Message::Response {
                    id,
                    body: Response::Next(NextHop::Have {
                        level: 3,
                        object: Some(any_offer(&mut rng).info),
                    }),
                },
                Message::Response {
                    id,
                    body: Response::Neighbors {
                        predecessor: Some(peer),
                        successors: vec![peer; 8],
                    },
                },
            ];
            for m in &bodies {
                assert_eq!(message_len(m), bincode_len(m), "{} with {n} entries", m.kind());
            }
        }
    }
}
