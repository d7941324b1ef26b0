//! The node's object store: encoded objects (home copies and replicas alike) in a moka cache
//! bounded by bytes, evicting by moka's TinyLFU admission and LRU eviction. Each entry keeps
//! its decoded form once a hit needed it, so a hit is one map lookup and no parse.

use crate::key::ObjectKey;
use crate::object::CachedObject;
use bytes::Bytes;
use moka::sync::Cache;
use std::sync::{Arc, OnceLock};

/// Bytes charged per entry besides its body (key, moka's bookkeeping).
const ENTRY_OVERHEAD: u32 = 96;

/// An encoded object, its blake3 hash (computed once when stored: other nodes ask for
/// objects by hash, and answering them must not hash the body on every request) and its
/// decoded form, made on the first hit (`None`: the bytes do not decode).
#[derive(Clone)]
struct Stored {
    bytes: Bytes,
    hash: [u8; 32],
    decoded: Arc<OnceLock<Option<Arc<CachedObject>>>>,
}

impl Stored {
    fn new(bytes: Bytes, hash: [u8; 32]) -> Self {
        Stored { bytes, hash, decoded: Arc::default() }
    }
}

/// A cheap-to-clone handle on the store.
#[derive(Clone)]
pub struct ObjectStore {
    cache: Cache<ObjectKey, Stored>,
}

impl std::fmt::Debug for ObjectStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ObjectStore").field("entries", &self.cache.entry_count()).finish()
    }
}

impl ObjectStore {
    /// A store holding at most `capacity_bytes` of encoded objects (and their decoded
    /// metadata: the decoded body is a slice of the encoded bytes).
    pub fn new(capacity_bytes: u64) -> Self {
        let cache = Cache::builder()
            .max_capacity(capacity_bytes)
            .weigher(|_k: &ObjectKey, v: &Stored| {
                let meta = CachedObject::meta_len(&v.bytes);
                u32::try_from(v.bytes.len() + meta)
                    .unwrap_or(u32::MAX)
                    .saturating_add(ENTRY_OVERHEAD)
            })
            .build();
        ObjectStore { cache }
    }

    /// The encoded object under `key`.
    pub fn get(&self, key: &ObjectKey) -> Option<Bytes> {
        self.cache.get(key).map(|s| s.bytes)
    }

    /// The encoded object under `key` with its blake3 hash.
    pub fn get_hashed(&self, key: &ObjectKey) -> Option<(Bytes, [u8; 32])> {
        self.cache.get(key).map(|s| (s.bytes, s.hash))
    }

    /// The decoded object under `key` (decoded on the first call for the stored bytes);
    /// `None` also when the stored bytes do not decode.
    pub fn get_decoded(&self, key: &ObjectKey) -> Option<Arc<CachedObject>> {
        let s = self.cache.get(key)?;
        s.decoded.get_or_init(|| CachedObject::decode_shared(&s.bytes).ok().map(Arc::new)).clone()
    }

    /// Stores (or replaces) the encoded object under `key`; returns its blake3 hash.
    pub fn insert(&self, key: ObjectKey, object: Bytes) -> [u8; 32] {
        let hash = *blake3::hash(&object).as_bytes();
        self.insert_hashed(key, object, hash);
        hash
    }

    /// Stores `object` whose blake3 hash the caller has already checked to be `hash`.
    pub fn insert_hashed(&self, key: ObjectKey, object: Bytes, hash: [u8; 32]) {
        self.cache.insert(key, Stored::new(object, hash));
    }

    /// Stores `object`, hashing it unless `hash` (already checked by the caller) is given.
    pub fn keep(&self, key: ObjectKey, object: Bytes, hash: Option<[u8; 32]>) {
        match hash {
            Some(hash) => self.insert_hashed(key, object, hash),
            None => {
                self.insert(key, object);
            }
        }
    }

    /// Drops `key`.
    pub fn remove(&self, key: &ObjectKey) {
        self.cache.invalidate(key);
    }

    /// Number of objects (after applying pending evictions).
    pub fn len(&self) -> u64 {
        self.cache.run_pending_tasks();
        self.cache.entry_count()
    }

    /// Whether the store is empty.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Bytes charged against the capacity.
    pub fn bytes(&self) -> u64 {
        self.cache.run_pending_tasks();
        self.cache.weighted_size()
    }

    /// Every key with the size and hash of its encoded object (for the node's `/objects`).
    pub fn keys(&self) -> Vec<(ObjectKey, usize, [u8; 32])> {
        self.cache.iter().map(|(k, v)| (*k, v.bytes.len(), v.hash)).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn insert_get_remove_and_capacity() {
        let s = ObjectStore::new(10_000);
        let k = ObjectKey::of("a");
        s.insert(k, Bytes::from_static(b"xyz"));
        assert_eq!(s.get(&k).as_deref(), Some(&b"xyz"[..]));
        assert!(s.get_decoded(&k).is_none(), "not an encoded object");
        assert_eq!(s.len(), 1);
        assert_eq!(s.keys(), vec![(k, 3, *blake3::hash(b"xyz").as_bytes())]);
        assert_eq!(s.get_hashed(&k).unwrap().1, *blake3::hash(b"xyz").as_bytes());
        s.remove(&k);
        assert!(s.get(&k).is_none());
        for i in 0..100 {
            s.insert(ObjectKey::of(&i.to_string()), Bytes::from(vec![0u8; 1000]));
        }
        assert!(s.bytes() <= 10_000, "{}", s.bytes());
    }
}
