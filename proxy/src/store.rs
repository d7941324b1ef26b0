//! The node's object store: encoded objects (home copies and replicas alike) in a
//! quick_cache cache bounded by bytes (CLOCK-Pro eviction, scan resistant). Each entry keeps
//! its decoded form once a hit needed it, so a hit is one map lookup and no parse.

use crate::key::ObjectKey;
use crate::object::CachedObject;
use bytes::Bytes;
use quick_cache::sync::Cache;
use quick_cache::Weighter;
use std::sync::{Arc, OnceLock};

/// Bytes charged per entry besides its body and metadata (key, the cache's bookkeeping).
const ENTRY_OVERHEAD: u64 = 128;

/// Most shards the cache is split into: enough that two worker threads seldom meet on one lock.
const MAX_SHARDS: u64 = 16;

/// An encoded object, its blake3 hash (computed once when stored: other nodes ask for
/// objects by hash, and answering them must not hash the body on every request), the bytes
/// it is charged for, and its decoded form, made on the first hit (`None`: the bytes do not
/// decode). Shared, so a hit clones one pointer.
struct Stored {
    bytes: Bytes,
    hash: [u8; 32],
    weight: u64,
    decoded: OnceLock<Option<Arc<CachedObject>>>,
}

impl Stored {
    /// The decoded form, made on the first call; the body is a slice of the stored bytes.
    fn decoded(&self) -> Option<Arc<CachedObject>> {
        let decode = || CachedObject::decode_shared(&self.bytes).ok().map(Arc::new);
        self.decoded.get_or_init(decode).clone()
    }
}

/// Charges an entry its precomputed weight (the weighter runs on every insert and eviction).
#[derive(Clone)]
struct ByWeight;

impl Weighter<ObjectKey, Arc<Stored>> for ByWeight {
    fn weight(&self, _key: &ObjectKey, val: &Arc<Stored>) -> u64 {
        val.weight
    }
}

/// A cheap-to-clone handle on the store.
#[derive(Clone)]
pub struct ObjectStore {
    cache: Arc<Cache<ObjectKey, Arc<Stored>, ByWeight>>,
}

impl std::fmt::Debug for ObjectStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ObjectStore").field("entries", &self.cache.len()).finish()
    }
}

impl ObjectStore {
    /// A store holding at most `capacity_bytes` of encoded objects (and their decoded
    /// metadata: the decoded body is a slice of the encoded bytes), none larger than
    /// `max_object_bytes`. Each shard holds a share of the capacity and refuses an entry
    /// larger than that share, so there are only as many shards as leave room for two of the
    /// largest objects in each.
    pub fn new(capacity_bytes: u64, max_object_bytes: usize) -> Self {
        let largest = max_object_bytes as u64 + ENTRY_OVERHEAD;
        let fit = (capacity_bytes / largest.saturating_mul(2)).clamp(1, MAX_SHARDS);
        // A power of two no larger than `fit` (the cache rounds up otherwise).
        let shards = 1u64 << (63 - fit.leading_zeros());
        let options = quick_cache::OptionsBuilder::new()
            .shards(shards as usize)
            .estimated_items_capacity((capacity_bytes / 4096).clamp(64, 1 << 20) as usize)
            .weight_capacity(capacity_bytes)
            .build()
            .expect("shards, item estimate and capacity are all set");
        let cache = Cache::with_options(
            options,
            ByWeight,
            quick_cache::DefaultHashBuilder::default(),
            quick_cache::sync::DefaultLifecycle::default(),
        );
        ObjectStore { cache: Arc::new(cache) }
    }

    /// The encoded object under `key`.
    pub fn get(&self, key: &ObjectKey) -> Option<Bytes> {
        self.cache.get(key).map(|s| s.bytes.clone())
    }

    /// The encoded object under `key` with its blake3 hash.
    pub fn get_hashed(&self, key: &ObjectKey) -> Option<(Bytes, [u8; 32])> {
        self.cache.get(key).map(|s| (s.bytes.clone(), s.hash))
    }

    /// The decoded object under `key` (decoded on the first call for the stored bytes);
    /// `None` also when the stored bytes do not decode.
    pub fn get_decoded(&self, key: &ObjectKey) -> Option<Arc<CachedObject>> {
        self.cache.get(key)?.decoded()
    }

    /// The encoded object under `key`, its blake3 hash and its decoded form (`None` when the
    /// bytes do not decode), from one lookup: what a home revalidating its copy needs.
    pub fn get_all(&self, key: &ObjectKey) -> Option<(Bytes, [u8; 32], Option<Arc<CachedObject>>)> {
        let s = self.cache.get(key)?;
        Some((s.bytes.clone(), s.hash, s.decoded()))
    }

    /// Stores (or replaces) the encoded object under `key`; returns its blake3 hash.
    pub fn insert(&self, key: ObjectKey, object: Bytes) -> [u8; 32] {
        let hash = *blake3::hash(&object).as_bytes();
        self.insert_hashed(key, object, hash);
        hash
    }

    /// Stores `object` whose blake3 hash the caller has already checked to be `hash`.
    pub fn insert_hashed(&self, key: ObjectKey, object: Bytes, hash: [u8; 32]) {
        let meta = CachedObject::meta_len(&object);
        let weight = (object.len() + meta) as u64 + ENTRY_OVERHEAD;
        let stored = Stored { bytes: object, hash, weight, decoded: OnceLock::new() };
        self.cache.insert(key, Arc::new(stored));
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
        self.cache.remove(key);
    }

    /// Number of objects.
    pub fn len(&self) -> u64 {
        self.cache.len() as u64
    }

    /// Whether the store is empty.
    pub fn is_empty(&self) -> bool {
        self.cache.is_empty()
    }

    /// Bytes charged against the capacity.
    pub fn bytes(&self) -> u64 {
        self.cache.weight()
    }

    /// Every key with the size and hash of its encoded object (for the node's `/objects`).
    pub fn keys(&self) -> Vec<(ObjectKey, usize, [u8; 32])> {
        self.cache.iter().map(|(k, v)| (k, v.bytes.len(), v.hash)).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn insert_get_remove_and_capacity() {
        let s = ObjectStore::new(10_000, 1_000);
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

    #[test]
    /// A store of at least two of its largest objects keeps one (a shard refuses an entry
    /// above 97 % of its share).
    fn a_largest_object_fits_whatever_the_sharding() {
        for (capacity, largest) in
            [(1u64 << 20, 256usize << 10), (64 << 20, 1 << 20), (2 << 20, 1 << 20)]
        {
            let s = ObjectStore::new(capacity + 512, largest);
            let k = ObjectKey::of("big");
            s.insert(k, Bytes::from(vec![7u8; largest]));
            assert_eq!(s.get(&k).map(|b| b.len()), Some(largest), "capacity {capacity}");
        }
    }
}
