//! Object bodies a node holds, keyed by ring id, with their blake3 hash.
//!
//! A trait so the transport and the driver can work on the HTTP face's [`ObjectStore`] (a
//! running node: replicas fetched by the driver and bodies served to other nodes live in the
//! proxy's one byte-bounded cache) or on a plain map (tests). Bodies are `Bytes`: serving one
//! is a reference-count bump.

use beehive_proxy::{ObjectKey, ObjectStore};
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

impl BodyStore for ObjectStore {
    fn get(&self, key: Id) -> Option<StoredObject> {
        let (body, hash) = self.get_hashed(&ObjectKey(key.0))?;
        Some(StoredObject { body, hash })
    }

    fn put(&self, key: Id, object: StoredObject) {
        self.insert_hashed(ObjectKey(key.0), object.body, object.hash);
    }

    fn remove(&self, key: Id) {
        ObjectStore::remove(self, &ObjectKey(key.0));
    }

    fn list(&self) -> Vec<(Id, usize, [u8; 32])> {
        let mut keys: Vec<_> =
            self.keys().into_iter().map(|(k, len, hash)| (Id(k.0), len, hash)).collect();
        keys.sort_by_key(|(k, _, _)| *k);
        keys
    }
}
