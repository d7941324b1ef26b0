//! Object bodies a node holds, keyed by ring id, with their blake3 hash.
//!
//! A trait, so that a running node keeps its bodies in the HTTP face's byte-bounded
//! `ObjectStore` (`SharedStore` in `cluster.rs`) while tests and the RPC bench use the plain
//! map [`MemoryStore`]. Bodies are `Bytes`: serving one is a reference-count bump.

use beehive_replication::Id;
use bytes::Bytes;
use std::collections::BTreeMap;
use std::sync::Mutex;

/// One stored object.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredObject {
    pub body: Bytes,
    pub hash: [u8; 32],
}

impl StoredObject {
    pub fn new(body: Bytes) -> Self {
        let hash = *blake3::hash(&body).as_bytes();
        StoredObject { body, hash }
    }
}

/// Where a node keeps bodies it can serve to other nodes.
pub trait BodyStore: Send + Sync + std::fmt::Debug {
    fn get(&self, key: Id) -> Option<StoredObject>;
    /// Stores (or replaces) the object under `key`.
    fn put(&self, key: Id, object: StoredObject);
    /// Drops `key` (a copy demoted or invalidated, a purge).
    fn remove(&self, key: Id);
    /// Every key held, in ring order, with the body's length.
    fn list(&self) -> Vec<(Id, usize, [u8; 32])>;
}

/// The simplest store: a map under a mutex (held only to clone a `Bytes` handle).
#[derive(Debug, Default)]
pub struct MemoryStore {
    objects: Mutex<BTreeMap<Id, StoredObject>>,
}

impl BodyStore for MemoryStore {
    fn get(&self, key: Id) -> Option<StoredObject> {
        self.objects.lock().unwrap_or_else(|e| e.into_inner()).get(&key).cloned()
    }

    fn put(&self, key: Id, object: StoredObject) {
        self.objects.lock().unwrap_or_else(|e| e.into_inner()).insert(key, object);
    }

    fn remove(&self, key: Id) {
        self.objects.lock().unwrap_or_else(|e| e.into_inner()).remove(&key);
    }

    fn list(&self) -> Vec<(Id, usize, [u8; 32])> {
        let objects = self.objects.lock().unwrap_or_else(|e| e.into_inner());
        objects.iter().map(|(k, o)| (*k, o.body.len(), o.hash)).collect()
    }
}
