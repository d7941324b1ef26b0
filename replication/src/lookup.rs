//! An iterative lookup in flight at its entry node.
//!
//! The entry node owns the whole lookup: it asks one node at a time, keeps every candidate it
//! has been told about (closest to the key first), and on a timeout moves on to the next
//! candidate instead of asking again. That is how a lookup routes around a dead node without
//! any help from the rest of the ring.

use crate::beehive::wire::ObjectInfo;
use crate::error::ProtocolError;
use crate::id::Id;
use crate::message::{NextHop, Request};
use crate::peer::Peer;
use serde::{Deserialize, Serialize};

/// Names a lookup started with [`crate::Node::lookup`]; echoed in its completion event.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct LookupId(pub u64);

/// Who answered an object lookup, and with what.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ObjectAnswer {
    /// The object's level as the holder knows it (the home-only level for a home that has no
    /// result yet).
    pub level: u8,
    /// The body to fetch from the holder; `None` while its home has not fetched it yet.
    pub object: Option<ObjectInfo>,
}

/// Why the node is looking a key up; decides what happens with the answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Purpose {
    /// Asked for by the caller: report the answer as an event.
    User(LookupId),
    /// An object lookup for the caller: any holder of a copy may answer.
    Object(LookupId),
    /// Our own successor, through a seed: the answer is where we join.
    Join,
    /// successor(me + 2^j): the answer is finger j.
    FixFinger(u32),
    /// Our own successor, through a peer we lost touch with: heals split rings.
    Merge,
}

/// How often a named home is asked before the next one is. One lost packet is far likelier
/// than a dead home, and asking the next home too early risks an answer from a node that
/// wrongly believes its predecessor dead.
pub(crate) const HOME_TRIES: usize = 2;

/// How often one home may be asked over a whole lookup, however often it is named again: a
/// dead home named over and over would otherwise keep a lookup busy until its hop limit.
pub(crate) const HOME_TRIES_PER_LOOKUP: usize = 4;

/// What an answer to one of the lookup's requests means for it.
#[derive(Debug)]
pub(crate) enum Step {
    /// The node that answered is the key's home, or (with `Some`) holds the object.
    Done(Option<ObjectAnswer>),
    /// We are the first of the homes named: the key is ours after all (our predecessor
    /// pointer was not yet set).
    Ours,
    /// Ask the next candidate. An `Err` says what was wrong with the answer; the lookup goes
    /// on without it.
    Continue(Result<(), ProtocolError>),
}

#[derive(Debug)]
pub(crate) struct Lookup {
    pub key: Id,
    pub purpose: Purpose,
    /// Nodes contacted so far (each request counts, answered or not).
    pub hops: u32,
    /// The latest `Successors` answer's view of the key's home, nearest first. Asked before
    /// any other candidate, since the first live one of them should say "here".
    pub homes: Vec<Peer>,
    /// Homes asked, once per try, over the whole lookup. A node first asked as a router may
    /// be asked again as a named home.
    pub asked_homes: Vec<Id>,
    /// Where in `asked_homes` the current naming began.
    pub named_at: usize,
    /// Everyone else we may still ask, closest to the key first.
    pub candidates: Vec<Peer>,
    /// Everyone already asked as a router, so nobody is asked twice.
    pub asked: Vec<Id>,
    /// Every node asked, in order (passive caching copies the object onto them).
    pub visited: Vec<Peer>,
}

impl Lookup {
    pub fn new(key: Id, purpose: Purpose, candidates: Vec<Peer>) -> Self {
        let mut l = Lookup {
            key,
            purpose,
            hops: 0,
            homes: Vec::new(),
            asked_homes: Vec::new(),
            named_at: 0,
            candidates: Vec::new(),
            asked: Vec::new(),
            visited: Vec::new(),
        };
        l.add_candidates(candidates);
        l
    }

    /// Merges new candidates, keeping the list sorted by distance to the key and free of
    /// duplicates.
    pub fn add_candidates(&mut self, new: impl IntoIterator<Item = Peer>) {
        for p in new {
            if self.candidates.iter().any(|q| q.id == p.id) {
                continue;
            }
            let d = p.id.distance_to(self.key);
            let at = self.candidates.partition_point(|q| q.id.distance_to(self.key) < d);
            self.candidates.insert(at, p);
        }
    }

    /// Takes a `Successors` answer: these are now the homes to ask, in order.
    pub fn name_homes(&mut self, homes: Vec<Peer>) {
        self.homes = homes;
        self.named_at = self.asked_homes.len();
    }

    /// The best node not yet asked, and whether it is asked as a named home.
    ///
    /// Named homes go strictly in order, suspected or not: the home is the *first* live one,
    /// and a later one would wrongly agree to be home while an earlier one lives. Other
    /// candidates go closest to the key first, healthy ones before those `suspected` flags
    /// (routing around a possible failure at once).
    pub fn next_candidate(&self, suspected: impl Fn(Id) -> bool) -> Option<(Peer, bool)> {
        let tries =
            |from: usize, id: Id| self.asked_homes[from..].iter().filter(|a| **a == id).count();
        let fresh =
            |id: Id| tries(self.named_at, id) < HOME_TRIES && tries(0, id) < HOME_TRIES_PER_LOOKUP;
        if let Some(h) = self.homes.iter().find(|p| fresh(p.id)) {
            return Some((*h, true));
        }
        let others = || self.candidates.iter().filter(|p| !self.asked.contains(&p.id));
        others().find(|p| !suspected(p.id)).or_else(|| others().next()).map(|p| (*p, false))
    }

    /// The next request to send, counted as a hop; `None` when the lookup has run out of
    /// candidates or of `max_hops`.
    pub fn ask_next(
        &mut self,
        max_hops: u32,
        suspected: impl Fn(Id) -> bool,
    ) -> Option<(Peer, Request)> {
        if self.hops >= max_hops {
            return None;
        }
        let (p, as_home) = self.next_candidate(suspected)?;
        self.mark_asked(p, as_home);
        self.hops += 1;
        let want_object = matches!(self.purpose, Purpose::Object(_));
        Some((p, Request::FindNext { key: self.key, as_home, want_object }))
    }

    /// Takes `from`'s answer. Answers that do not bring the lookup closer to the key are
    /// refused, so a confused or lying node cannot send it backwards.
    pub fn answer(&mut self, me: Id, from: Id, hop: NextHop) -> Step {
        let key = self.key;
        match hop {
            NextHop::Here => Step::Done(None),
            NextHop::Have { level, object } => {
                if !matches!(self.purpose, Purpose::Object(_)) {
                    let e = ProtocolError::Malformed("object answer to a routing lookup");
                    return Step::Continue(Err(e));
                }
                Step::Done(Some(ObjectAnswer { level, object }))
            }
            NextHop::Successors(list) => {
                if let Some(first) = list.first() {
                    if first.id != key && !key.in_open_closed(from, first.id) {
                        let named = first.id;
                        return Step::Continue(Err(ProtocolError::NotPastKey { key, from, named }));
                    }
                }
                // Joins and merges never ask this.
                let ours = matches!(
                    self.purpose,
                    Purpose::User(_) | Purpose::Object(_) | Purpose::FixFinger(_)
                );
                if ours && list.first().is_some_and(|p| p.id == me) {
                    return Step::Ours;
                }
                self.name_homes(list.into_iter().filter(|p| p.id != me).collect());
                Step::Continue(Ok(()))
            }
            NextHop::Closer(list) => {
                let mut bad = None;
                let progress: Vec<Peer> = list
                    .into_iter()
                    .filter(|p| {
                        let ok = p.id.in_open(from, key);
                        if !ok {
                            bad.get_or_insert(p.id);
                        }
                        ok && p.id != me
                    })
                    .collect();
                self.add_candidates(progress);
                let refusal = bad.map(|named| ProtocolError::NoProgress { key, from, named });
                Step::Continue(refusal.map_or(Ok(()), Err))
            }
        }
    }

    /// Records that `p` is being asked.
    pub fn mark_asked(&mut self, p: Peer, as_home: bool) {
        if !self.visited.iter().any(|q| q.id == p.id) {
            self.visited.push(p);
        }
        if as_home {
            self.asked_homes.push(p.id);
        } else {
            self.asked.push(p.id);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn peer(id: u128) -> Peer {
        Peer { id: Id(id), addr: "127.0.0.1:1".parse().unwrap() }
    }

    #[test]
    fn candidates_stay_sorted_toward_the_key() {
        let mut l = Lookup::new(Id(1000), Purpose::Join, vec![peer(10), peer(900)]);
        l.add_candidates([peer(500), peer(10), peer(999)]);
        let ids: Vec<u128> = l.candidates.iter().map(|p| p.id.0).collect();
        assert_eq!(ids, vec![999, 900, 500, 10]);
    }

    #[test]
    fn asked_and_suspected_candidates_come_last() {
        let mut l = Lookup::new(Id(1000), Purpose::Join, vec![peer(10), peer(900), peer(999)]);
        l.mark_asked(peer(999), false);
        assert_eq!(l.next_candidate(|id| id == Id(900)), Some((peer(10), false)));
        l.mark_asked(peer(10), false);
        // Only a suspect is left: ask it rather than give up.
        assert_eq!(l.next_candidate(|id| id == Id(900)), Some((peer(900), false)));
        l.mark_asked(peer(900), false);
        assert_eq!(l.next_candidate(|_| false), None);
    }

    #[test]
    fn named_homes_come_before_closer_candidates() {
        let mut l = Lookup::new(Id(1000), Purpose::Join, vec![peer(999)]);
        l.name_homes(vec![peer(1005), peer(1010)]);
        assert_eq!(l.next_candidate(|_| false), Some((peer(1005), true)));
        // Homes go in order even when the first is suspected, each tried twice.
        assert_eq!(l.next_candidate(|id| id == Id(1005)), Some((peer(1005), true)));
        l.mark_asked(peer(1005), true);
        assert_eq!(l.next_candidate(|_| false), Some((peer(1005), true)));
        l.mark_asked(peer(1005), true);
        assert_eq!(l.next_candidate(|_| false), Some((peer(1010), true)));
        l.mark_asked(peer(1010), true);
        l.mark_asked(peer(1010), true);
        assert_eq!(l.next_candidate(|_| false), Some((peer(999), false)));
        // A node asked as a router can still be asked as a named home.
        l.mark_asked(peer(999), false);
        l.name_homes(vec![peer(999)]);
        assert_eq!(l.next_candidate(|_| false), Some((peer(999), true)));
    }
}
