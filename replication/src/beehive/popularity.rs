//! Memory-bounded access counting at a node, and the smoothed per-object rate homes keep.
//!
//! A node may see millions of distinct keys per interval but only the popular ones matter for
//! replication, so it counts with **Space-Saving** (Metwally, Agrawal & El Abbadi, 2005): `K`
//! counters; a new key evicts the smallest counter and inherits its count as an over-estimate,
//! recorded as `error`. Guarantees, with `T` the records so far:
//!
//! * every key whose true count exceeds `T/K` is tracked;
//! * for a tracked key, `count − error ≤ true ≤ count`, and `error ≤ min count ≤ T/K`;
//! * a key tracked since its first record (`error = 0`, the usual case for heavy keys, which
//!   arrive early) is counted exactly.
//!
//! [`SpaceSaving::drain_interval`] reports the guaranteed part `count − error` per key and puts
//! everything else in one tail counter, so reported counts never over-credit a key and still
//! add up to `T`.
//!
//! # Memory
//!
//! Per tracked key: a 32-byte [`Tracked`] entry in a binary min-heap (a `u128` key, the count
//! and the error), plus one index bucket of 33 bytes (a `(u128, usize)` slot and a control
//! byte). The index keeps at most 7/8 of its power-of-two buckets full, so it holds 1.14 to 2.3
//! buckets per key: **≈ 70–108 bytes per tracked key**; `K = 4096` uses 8192 buckets, ≈ 98
//! bytes a key, ≈ 400 KiB in all. Each record costs one hash lookup and `O(log K)` heap moves.

use std::collections::HashMap;
use std::hash::{BuildHasher, Hasher};
use std::num::NonZeroUsize;

/// One tracked key. 32 bytes (see the module doc).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Tracked {
    /// The object's ring key.
    pub key: u128,
    /// Upper bound on the key's records this interval.
    pub count: u64,
    /// How much of `count` may belong to evicted keys: `count − error` is a lower bound.
    pub error: u64,
}

impl Tracked {
    /// The count this key certainly received.
    pub fn guaranteed(&self) -> u64 {
        self.count - self.error
    }
}

/// One interval's counts, ready to send toward the homes.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct IntervalCounts {
    /// `(key, guaranteed count)`, highest count first (then by key); zero counts omitted.
    pub keys: Vec<(u128, u64)>,
    /// Records not attributed to any key above: `total − Σ keys`.
    pub tail: u64,
    /// All records in the interval.
    pub total: u64,
}

/// The Space-Saving sketch. See the module doc.
#[derive(Debug, Clone)]
pub struct SpaceSaving {
    capacity: usize,
    /// Min-heap on `count`.
    heap: Vec<Tracked>,
    /// key → position in `heap`.
    index: HashMap<u128, usize, KeyHashing>,
    total: u64,
}

impl SpaceSaving {
    /// A sketch tracking at most `capacity` keys. `seed` keys the index's hash (pass a per-node
    /// secret in production, the run's seed in the simulator): keys derive from URLs, and a
    /// client who knew the hash could pick URLs that all land in one bucket.
    pub fn new(capacity: NonZeroUsize, seed: u64) -> Self {
        let capacity = capacity.get();
        SpaceSaving {
            capacity,
            heap: Vec::with_capacity(capacity),
            index: HashMap::with_capacity_and_hasher(capacity, KeyHashing::new(seed)),
            total: 0,
        }
    }

    /// Counts `n` requests for `key`.
    pub fn record(&mut self, key: u128, n: u64) {
        if n == 0 {
            return;
        }
        self.total = self.total.saturating_add(n);
        if let Some(&at) = self.index.get(&key) {
            self.heap[at].count = self.heap[at].count.saturating_add(n);
            self.sift_down(at);
        } else if self.heap.len() < self.capacity {
            self.heap.push(Tracked { key, count: n, error: 0 });
            let at = self.heap.len() - 1;
            self.index.insert(key, at);
            self.sift_up(at);
        } else {
            // Evict the minimum; the newcomer inherits its count as error.
            let evicted = self.heap[0];
            self.index.remove(&evicted.key);
            self.heap[0] =
                Tracked { key, count: evicted.count.saturating_add(n), error: evicted.count };
            self.index.insert(key, 0);
            self.sift_down(0);
        }
    }

    /// The `n` keys with the highest counts, highest first (ties by key).
    pub fn top(&self, n: usize) -> Vec<Tracked> {
        let mut all = self.heap.clone();
        all.sort_by(|a, b| b.count.cmp(&a.count).then(a.key.cmp(&b.key)));
        all.truncate(n);
        all
    }

    /// The entry for `key`, if tracked.
    pub fn get(&self, key: u128) -> Option<Tracked> {
        self.index.get(&key).map(|&at| self.heap[at])
    }

    /// Keys tracked now (never more than the capacity).
    pub fn len(&self) -> usize {
        self.heap.len()
    }

    /// Whether nothing was recorded this interval.
    pub fn is_empty(&self) -> bool {
        self.heap.is_empty()
    }

    /// The most keys this sketch tracks.
    pub fn capacity(&self) -> usize {
        self.capacity
    }

    /// Memory held by the sketch's two tables, in bytes (see the module doc): the heap's
    /// entries plus the index's buckets (each a `(u128, usize)` slot and a control byte).
    pub fn approx_bytes(&self) -> usize {
        // The index keeps 7/8 of its buckets usable.
        let buckets = self.index.capacity().div_ceil(7) * 8;
        self.heap.capacity() * std::mem::size_of::<Tracked>()
            + buckets * (std::mem::size_of::<(u128, usize)>() + 1)
    }

    /// Records this interval.
    pub fn total(&self) -> u64 {
        self.total
    }

    /// Closes the interval: returns its counts and starts the next one empty (the allocation is
    /// kept).
    pub fn drain_interval(&mut self) -> IntervalCounts {
        let mut keys: Vec<(u128, u64)> = self
            .heap
            .iter()
            .filter(|t| t.guaranteed() > 0)
            .map(|t| (t.key, t.guaranteed()))
            .collect();
        keys.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
        let attributed = keys.iter().fold(0u64, |a, k| a.saturating_add(k.1));
        let counts =
            IntervalCounts { tail: self.total.saturating_sub(attributed), total: self.total, keys };
        self.heap.clear();
        self.index.clear();
        self.total = 0;
        counts
    }

    fn swap(&mut self, a: usize, b: usize) {
        self.heap.swap(a, b);
        self.index.insert(self.heap[a].key, a);
        self.index.insert(self.heap[b].key, b);
    }

    fn sift_up(&mut self, mut at: usize) {
        while at > 0 {
            let parent = (at - 1) / 2;
            if self.heap[parent].count <= self.heap[at].count {
                break;
            }
            self.swap(at, parent);
            at = parent;
        }
    }

    fn sift_down(&mut self, mut at: usize) {
        let len = self.heap.len();
        loop {
            let (left, right) = (2 * at + 1, 2 * at + 2);
            let mut smallest = at;
            if left < len && self.heap[left].count < self.heap[smallest].count {
                smallest = left;
            }
            if right < len && self.heap[right].count < self.heap[smallest].count {
                smallest = right;
            }
            if smallest == at {
                break;
            }
            self.swap(at, smallest);
            at = smallest;
        }
    }
}

/// A seeded hash for `u128` keys: two rounds of the 64×64→128 folded multiply (wyhash's
/// mixer). Fast, deterministic for a given seed, and without the seed an attacker cannot aim
/// keys at one bucket.
#[derive(Debug, Clone, Copy)]
struct KeyHashing {
    k0: u64,
    k1: u64,
}

impl KeyHashing {
    fn new(seed: u64) -> Self {
        let mut state = seed;
        KeyHashing { k0: splitmix64(&mut state), k1: splitmix64(&mut state) }
    }
}

impl BuildHasher for KeyHashing {
    type Hasher = KeyHasher;
    fn build_hasher(&self) -> KeyHasher {
        KeyHasher { k0: self.k0, k1: self.k1, state: self.k0 }
    }
}

#[derive(Debug)]
struct KeyHasher {
    k0: u64,
    k1: u64,
    state: u64,
}

fn folded_multiply(a: u64, b: u64) -> u64 {
    let product = u128::from(a) * u128::from(b);
    (product as u64) ^ ((product >> 64) as u64)
}

fn splitmix64(state: &mut u64) -> u64 {
    *state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
    let mut z = *state;
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

impl Hasher for KeyHasher {
    fn write_u128(&mut self, key: u128) {
        let (low, high) = (key as u64, (key >> 64) as u64);
        let mixed = folded_multiply(low ^ self.k0 ^ self.state, high ^ self.k1);
        self.state = folded_multiply(mixed ^ self.k1, 0x9E37_79B9_7F4A_7C15 ^ self.k0);
    }

    fn write(&mut self, bytes: &[u8]) {
        // Only `u128` keys are hashed here; this keeps the trait total for any other input.
        for chunk in bytes.chunks(16) {
            let mut word = [0u8; 16];
            word[..chunk.len()].copy_from_slice(chunk);
            self.write_u128(u128::from_le_bytes(word));
        }
    }

    fn finish(&self) -> u64 {
        self.state
    }
}

/// An exponentially weighted moving average of a per-interval rate: an object's, kept by its
/// home, or the leader's figures.
///
/// [`update`](Self::update) moves the value [`WEIGHT`](Self::WEIGHT) = 0.3 of the way to the
/// new observation. That keeps Poisson noise down (variance × 0.3/1.7 ≈ 0.18, so ±42 % of the
/// raw standard deviation) while a real change shows: a step is 66 % through after 3 intervals
/// and 97 % after 10. The first observation is taken as is, so a flash crowd on a new object
/// reaches its level in one interval rather than ramping up from zero. Object rates use
/// [`update_counted`](Self::update_counted), whose window grows for faint objects.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct SmoothedRate {
    value: f64,
    /// The same average at [`WEIGHT`](Self::WEIGHT) always: what a faint object's longer
    /// window is checked against (see [`update_counted`](Self::update_counted)).
    fast: f64,
    primed: bool,
    /// Intervals left after a [`SmoothedRate::restart`] during which a higher observation is
    /// taken as is: the restart saw only part of an interval of the new rate.
    young: u8,
}

impl SmoothedRate {
    /// Weight of the newest interval.
    pub const WEIGHT: f64 = 0.3;
    /// Requests an object's smoothing window holds at the least (see
    /// [`weight_for`](Self::weight_for)).
    pub const WINDOW_REQUESTS: f64 = 10.0;
    /// The longest window: a faint object's rate still follows a change within tens of
    /// intervals.
    pub const MIN_WEIGHT: f64 = 0.03;
    /// Poisson deviations (at least 1) between the short and the long window that are a
    /// change, not noise.
    const CHANGE_SIGMAS: f64 = 3.0;
    /// Requests in an object's first interval from which that interval's rate is taken as is.
    const FIRST_AS_IS: f64 = 3.0;
    /// Weight of an interval that is clearly a change, not noise.
    pub const FAST_WEIGHT: f64 = 0.6;
    /// Intervals after a restart that may only raise the rate.
    const YOUNG: u8 = 3;

    /// An average that already stands at `value` (a new leader continues from its
    /// predecessor's figures). Not a number, or negative: an empty average.
    pub fn primed_at(value: f64) -> Self {
        if value.is_finite() && value >= 0.0 {
            SmoothedRate { value, fast: value, primed: true, young: 0 }
        } else {
            SmoothedRate::default()
        }
    }

    /// Folds in the rate observed over the interval just closed. NaN, infinite and negative
    /// observations are ignored (the state is unchanged).
    pub fn update(&mut self, observed: f64) {
        self.update_by(observed, Self::WEIGHT);
    }

    /// [`update`](Self::update) for an object's request rate over intervals of `interval_s`,
    /// at the weight [`weight_for`](Self::weight_for) gives its current value.
    ///
    /// When the count over the plain average's window lies far outside what the long window
    /// expects, the rate starts over from the plain average: a faint object whose rate really
    /// changed follows in a few intervals instead of tens.
    pub fn update_counted(&mut self, observed: f64, interval_s: f64) {
        if !observed.is_finite() || observed < 0.0 {
            return;
        }
        if !self.primed && observed * interval_s < Self::FIRST_AS_IS {
            // A request or two on an object never seen says little: most such objects are
            // in the Zipf tail, and starting one at a request per interval left it replicated
            // far past its rate while its long window brought it down.
            self.value = Self::weight_for(0.0, interval_s) * observed;
            self.fast = Self::WEIGHT * observed;
            self.primed = true;
            return;
        }
        self.update_by(observed, Self::weight_for(self.value, interval_s));
        let window = interval_s / Self::WEIGHT;
        let (seen, expected) = (self.fast * window, self.value * window);
        let apart = |a, b| beyond_noise(a, b, Self::CHANGE_SIGMAS);
        if apart(seen, expected) || apart(expected, seen) {
            self.value = self.fast;
        }
    }

    /// The weight for a rate that stands at `rate` (requests/s): [`WEIGHT`](Self::WEIGHT) while
    /// its window of `1/WEIGHT` intervals holds [`WINDOW_REQUESTS`](Self::WINDOW_REQUESTS)
    /// requests, else a longer window that does, down to [`MIN_WEIGHT`](Self::MIN_WEIGHT).
    /// A faint object sees a request every few intervals; at weight 0.3 each one tripled its
    /// rate for a while, moving it across two or three level thresholds and back, and every
    /// move refilled or emptied a whole arc. The weight follows the value, not the
    /// observation, so the average stays unbiased (its drift `w·(λ − v)` vanishes at λ).
    pub fn weight_for(rate: f64, interval_s: f64) -> f64 {
        let exposure = rate * interval_s;
        if exposure.is_nan() || exposure <= 0.0 {
            return Self::MIN_WEIGHT;
        }
        (exposure / Self::WINDOW_REQUESTS).clamp(Self::MIN_WEIGHT, Self::WEIGHT)
    }

    /// [`update`](Self::update) with [`FAST_WEIGHT`](Self::FAST_WEIGHT): for an observation
    /// too far from the value to be noise.
    pub fn update_fast(&mut self, observed: f64) {
        self.update_by(observed, Self::FAST_WEIGHT);
    }

    fn update_by(&mut self, observed: f64, weight: f64) {
        if !observed.is_finite() || observed < 0.0 {
            return;
        }
        if self.young > 0 {
            self.young -= 1;
            self.value = observed.max(self.value + weight * (observed - self.value));
            self.fast = observed.max(self.fast + Self::WEIGHT * (observed - self.fast));
        } else if self.primed {
            self.value += weight * (observed - self.value);
            self.fast += Self::WEIGHT * (observed - self.fast);
        } else {
            self.value = observed;
            self.fast = observed;
            self.primed = true;
        }
    }

    /// Starts over at `observed`: the caller has proof that the rate jumped (see
    /// `Homes::close_interval`), and averaging the jump in would take several intervals.
    pub fn restart(&mut self, observed: f64) {
        if observed.is_finite() && observed >= 0.0 {
            self.value = observed;
            self.fast = observed;
            self.primed = true;
            self.young = Self::YOUNG;
        }
    }

    /// The smoothed rate (0 before the first observation).
    pub fn value(&self) -> f64 {
        self.value
    }
}

/// Whether a `count` lies `sigmas` Poisson deviations above the `expected` count (the
/// deviation taken as at least 1, so a handful of requests on a cold object is not one).
pub(crate) fn beyond_noise(count: f64, expected: f64, sigmas: f64) -> bool {
    count >= expected + sigmas * expected.max(1.0).sqrt()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sketch(k: usize) -> SpaceSaving {
        SpaceSaving::new(NonZeroUsize::new(k).unwrap(), 7)
    }

    #[test]
    fn entry_is_32_bytes() {
        assert_eq!(std::mem::size_of::<Tracked>(), 32);
        assert_eq!(std::mem::size_of::<(u128, usize)>(), 32);
    }

    #[test]
    fn about_98_bytes_per_key_at_4096() {
        let s = sketch(4096);
        let per_key = s.approx_bytes() as f64 / 4096.0;
        assert!((70.0..=108.0).contains(&per_key), "{per_key} bytes per key");
        println!("K = 4096: {} bytes, {per_key:.1} per key", s.approx_bytes());
    }

    #[test]
    fn eviction_inherits_the_minimum() {
        let mut s = sketch(2);
        s.record(1, 5);
        s.record(2, 3);
        s.record(3, 1);
        assert_eq!(s.get(2), None);
        let three = s.get(3).unwrap();
        assert_eq!((three.count, three.error, three.guaranteed()), (4, 3, 1));
        assert_eq!(s.len(), 2);
        let counts = s.drain_interval();
        assert_eq!(counts.keys, vec![(1, 5), (3, 1)]);
        assert_eq!((counts.tail, counts.total), (3, 9));
        assert!(s.is_empty() && s.total() == 0);
    }

    #[test]
    fn zero_records_are_ignored() {
        let mut s = sketch(1);
        s.record(1, 0);
        assert!(s.is_empty());
    }

    #[test]
    fn smoothed_rate() {
        let mut r = SmoothedRate::default();
        r.update(f64::NAN);
        assert_eq!(r.value(), 0.0);
        r.update(10.0);
        assert_eq!(r.value(), 10.0);
        r.update(0.0);
        assert!((r.value() - 7.0).abs() < 1e-12);
        r.update(-1.0);
        assert!((r.value() - 7.0).abs() < 1e-12);
    }

    #[test]
    fn a_faint_rate_keeps_a_long_window_and_still_follows_a_change() {
        // 0.1 requests per 10 s interval: a window of 33 intervals, not 3.
        let t = 10.0;
        assert_eq!(SmoothedRate::weight_for(0.01, t), SmoothedRate::MIN_WEIGHT);
        assert_eq!(SmoothedRate::weight_for(0.2, t), 0.2);
        assert_eq!(SmoothedRate::weight_for(5.0, t), SmoothedRate::WEIGHT);
        // One request on an object never seen is not taken as a rate of one per interval.
        let mut r = SmoothedRate::default();
        r.update_counted(0.1, t);
        assert!(r.value() < 0.01, "{}", r.value());
        // Primed at 0.01/s, a lone request moves it by a few percent, not threefold.
        let mut r = SmoothedRate::primed_at(0.01);
        r.update_counted(0.1, t);
        assert!(r.value() < 0.015, "{}", r.value());
        // A real rise to 1/s (ten per interval) is followed within a few intervals.
        let mut r = SmoothedRate::primed_at(0.01);
        let mut took = 0;
        while r.value() < 0.5 && took < 10 {
            r.update_counted(1.0, t);
            took += 1;
        }
        assert!(took <= 2, "{took} intervals, at {}", r.value());
        // And a fall from 1/s to nothing, within a few intervals too.
        let mut took = 0;
        while r.value() > 0.3 && took < 10 {
            r.update_counted(0.0, t);
            took += 1;
        }
        assert!(took <= 4, "{took} intervals, at {}", r.value());
    }

    #[test]
    fn a_restart_takes_higher_observations_while_young() {
        let mut r = SmoothedRate::default();
        r.update(1.0);
        r.restart(40.0);
        assert_eq!(r.value(), 40.0);
        // Young: a higher interval is taken as is, a lower one only averaged in.
        r.update(100.0);
        assert_eq!(r.value(), 100.0);
        r.update(0.0);
        assert!((r.value() - 70.0).abs() < 1e-9, "{}", r.value());
        r.update(100.0);
        assert_eq!(r.value(), 100.0);
        // Grown up: back to the plain average.
        r.update(200.0);
        assert!((r.value() - 130.0).abs() < 1e-9, "{}", r.value());
        r.restart(f64::NAN);
        assert!((r.value() - 130.0).abs() < 1e-9);
    }

    #[test]
    fn hasher_depends_on_seed() {
        let (a, b) = (KeyHashing::new(1), KeyHashing::new(2));
        assert_ne!(a.hash_one(42u128), b.hash_one(42u128));
        assert_eq!(a.hash_one(42u128), KeyHashing::new(1).hash_one(42u128));
    }
}
