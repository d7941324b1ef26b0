//! Successor copies: every home object is also kept by the home's first successor (as DHash
//! keeps its fragments on the successor list), so that the ring, not the origin, still holds
//! an object whose home lost its store.
//!
//! A node killed and restarted at its address keeps its id and its arc, usually before the
//! ring notices it was gone: no predecessor change happens, so no handoff either, and its
//! empty store would send its whole arc back to the origin. With the copies, the restarted
//! home gets its arc back from its successor (the first `Sync` after it starts is `fresh`:
//! the successor names the copies it holds of its arc, and the home pulls them), a home that
//! misses an object asks its successor before the origin, an entry node whose lookup found
//! no live home asks the home's successor, and a successor that takes a dead home's arc
//! already holds its objects.
//!
//! The copies are held apart from the object store: they are not served to clients and the
//! protocol core does not know them. Their cost is one body per home object on one more
//! node (bounded by the copy budget) and one `Sync` key list per home per
//! [`SYNC_EVERY`](crate::node::copy_sync::SYNC_EVERY).

use super::store::StoredObject;
use beehive_replication::Id;
use bytes::Bytes;
use std::collections::HashMap;
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

/// A sender not heard from for this long is no longer our predecessor: its copies go at the
/// next sync of another sender (unless a predecessor change adopted them first).
const SENDER_STALE: Duration = Duration::from_secs(10);

/// The copies this node holds for its predecessor(s). Cheap to share behind an `Arc`.
#[derive(Debug)]
pub struct Copies {
    inner: Mutex<Inner>,
    cap_bytes: u64,
}

#[derive(Debug, Default)]
struct Inner {
    held: HashMap<Id, Held>,
    bytes: u64,
    /// When each sender last synced.
    senders: HashMap<Id, Instant>,
}

#[derive(Debug)]
struct Held {
    object: StoredObject,
    from: Id,
}

/// What a sync asks of its sender.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct SyncAnswer {
    /// Listed keys with no copy here (or another version): the sender pushes them.
    pub lacking: Vec<Id>,
    /// For a fresh sender: copies held of its that it did not list, for it to pull.
    pub extra: Vec<(Id, [u8; 32])>,
}

impl Inner {
    fn drop_key(&mut self, key: Id) -> Option<StoredObject> {
        let held = self.held.remove(&key)?;
        self.bytes -= held.object.body.len() as u64;
        Some(held.object)
    }
}

impl Copies {
    /// An empty set holding at most `cap_bytes` of bodies.
    pub fn new(cap_bytes: u64) -> Self {
        Copies { inner: Mutex::new(Inner::default()), cap_bytes }
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Keeps `body` as `from`'s copy of `key`. `false`: over the budget, not kept.
    pub fn put(&self, from: Id, key: Id, body: Bytes) -> bool {
        let object = StoredObject::new(body);
        let mut inner = self.lock();
        inner.drop_key(key);
        let len = object.body.len() as u64;
        if inner.bytes + len > self.cap_bytes {
            return false;
        }
        inner.bytes += len;
        inner.held.insert(key, Held { object, from });
        // A handing node that never syncs to us (a successor handing a newcomer its arc)
        // counts as heard from now, so its copies last until they are taken on.
        inner.senders.entry(from).or_insert_with(Instant::now);
        true
    }

    pub fn get(&self, key: Id) -> Option<StoredObject> {
        self.lock().held.get(&key).map(|h| h.object.clone())
    }

    /// Takes (removes and returns) the copy of `key`, if held: this node became its home.
    pub fn take_key(&self, key: Id) -> Option<StoredObject> {
        self.lock().drop_key(key)
    }

    /// Takes (removes and returns) every copy whose key `in_arc` accepts: this node became
    /// their home.
    pub fn take(&self, in_arc: impl Fn(Id) -> bool) -> Vec<(Id, StoredObject)> {
        let mut inner = self.lock();
        let keys: Vec<Id> = inner.held.keys().copied().filter(|k| in_arc(*k)).collect();
        keys.into_iter().filter_map(|k| Some((k, inner.drop_key(k)?))).collect()
    }

    /// Applies `from`'s list of its home objects (see [`SyncAnswer`]). Unless `fresh`, copies
    /// of `from`'s that it no longer lists are dropped (it purged them, or they left its arc),
    /// and so are those of senders that stopped syncing.
    pub fn sync(&self, from: Id, fresh: bool, keys: &[(Id, [u8; 32])]) -> SyncAnswer {
        let mut inner = self.lock();
        let now = Instant::now();
        inner.senders.insert(from, now);
        let lacking = keys
            .iter()
            .filter(|(k, hash)| inner.held.get(k).is_none_or(|h| h.object.hash != *hash))
            .map(|(k, _)| *k)
            .collect();
        let listed: std::collections::HashSet<Id> = keys.iter().map(|(k, _)| *k).collect();
        let unlisted: Vec<(Id, [u8; 32])> = inner
            .held
            .iter()
            .filter(|(k, h)| h.from == from && !listed.contains(k))
            .map(|(k, h)| (*k, h.object.hash))
            .collect();
        if fresh {
            return SyncAnswer { lacking, extra: unlisted };
        }
        for (k, _) in unlisted {
            inner.drop_key(k);
        }
        let senders = &inner.senders;
        let stale: Vec<Id> = inner
            .held
            .iter()
            .filter(|(_, h)| {
                h.from != from
                    && senders.get(&h.from).is_none_or(|t| now.duration_since(*t) > SENDER_STALE)
            })
            .map(|(k, _)| *k)
            .collect();
        for k in stale {
            inner.drop_key(k);
        }
        inner.senders.retain(|_, t| now.duration_since(*t) <= SENDER_STALE);
        SyncAnswer { lacking, extra: Vec::new() }
    }

    /// How many copies are held, and their bytes.
    pub fn totals(&self) -> (u64, u64) {
        let inner = self.lock();
        (inner.held.len() as u64, inner.bytes)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn body(n: u8) -> Bytes {
        Bytes::from(vec![n; 10])
    }

    fn hash(n: u8) -> [u8; 32] {
        *blake3::hash(&body(n)).as_bytes()
    }

    #[test]
    fn a_sync_names_what_is_lacking_and_drops_what_is_no_longer_listed() {
        let c = Copies::new(1 << 20);
        assert!(c.put(Id(1), Id(10), body(1)));
        assert!(c.put(Id(1), Id(11), body(2)));
        let answer = c.sync(Id(1), false, &[(Id(10), hash(1)), (Id(12), hash(3))]);
        assert_eq!(answer, SyncAnswer { lacking: vec![Id(12)], extra: vec![] });
        assert!(c.get(Id(11)).is_none(), "an unlisted copy stays");
        assert_eq!(c.totals(), (1, 10));
    }

    #[test]
    fn a_fresh_sender_is_told_what_is_held_of_its_and_nothing_is_dropped() {
        let c = Copies::new(1 << 20);
        c.put(Id(1), Id(10), body(1));
        c.put(Id(2), Id(20), body(2));
        let answer = c.sync(Id(1), true, &[]);
        assert_eq!(answer.extra, vec![(Id(10), hash(1))]);
        assert_eq!(c.totals(), (2, 20));
    }

    #[test]
    fn the_budget_bounds_the_copies_and_taking_an_arc_removes_it() {
        let c = Copies::new(25);
        assert!(c.put(Id(1), Id(10), body(1)));
        assert!(c.put(Id(1), Id(11), body(2)));
        assert!(!c.put(Id(1), Id(12), body(3)), "past the budget");
        let taken = c.take(|k| k == Id(11));
        assert_eq!(taken.len(), 1);
        assert_eq!(taken[0].1.body, body(2));
        assert_eq!(c.totals(), (1, 10));
    }
}
