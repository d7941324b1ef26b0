//! What a node keeps for the objects it is home for: the body's identity, the smoothed rate
//! and the level it sets from the leader's thresholds.
//!
//! Counts arrive with their origin (the node that served the requests). A home takes counts
//! only from nodes that can have served the key (itself, or a node in the replica arc of the
//! object's current or previous level) and caps what one origin adds to a key in one interval
//! at twice the largest other origin's count (or [`ORIGIN_FLOOR`]). A node that lies about
//! hits therefore cannot move a home-only object at all, and can at most add a bounded share
//! to an object it really holds (limit the scope of a fault).

use super::levels::level_for_rate;
use super::popularity::{beyond_noise, SmoothedRate};
use super::wire::{in_arc, CountEntry, ObjectInfo};
use super::zipf::PopularitySummary;
use crate::hash::FastMap;
use crate::id::Id;
use crate::time::Time;

/// What one origin may always add to a key per interval, whatever the others report.
pub const ORIGIN_FLOOR: u64 = 4;

/// Intervals after a level change during which counts from the old, wider arc still count:
/// copies there serve until their leases (a few intervals) run out, and refusing their counts
/// would make a demoted object look less popular than it is.
const WIDE_TICKS: u8 = 12;

/// Deviations of the smoothed rate's noise the hysteresis band spans on each side. One: the
/// estimator's window holds at least ten requests (see [`SmoothedRate::weight_for`]), so its
/// noise moves slowly and seldom crosses even one deviation and back within the window; at
/// two, objects whose rate rose after a change of α waited in the band (13 % under the model
/// at α = 0.7).
const BAND_SIGMAS: f64 = 1.0;
/// The widest band: wider, the objects held back at their old level (a band holds back as
/// many promotions as demotions only where objects are spread evenly in log rate) leave the
/// levels visibly short of the model.
const BAND_CAP: f64 = 2.0;

/// The hysteresis band for an object of smoothed rate `rate` (requests/s), intervals of
/// `interval_s`: an object moves up a level once its rate is this factor above the level's
/// threshold, and down once it is this factor below. Sized from the estimator's own noise:
/// an exponential average with weight `w` (the object's own, [`SmoothedRate::weight_for`])
/// of Poisson counts over `T` s has variance `w/(2 − w)·r/T`, so the band is `1 + σ/r`.
/// Capped at [`BAND_CAP`].
pub fn band(rate: f64, interval_s: f64) -> f64 {
    let w = SmoothedRate::weight_for(rate, interval_s);
    let exposure = rate * interval_s;
    if exposure.is_nan() || exposure <= 0.0 {
        return BAND_CAP;
    }
    (1.0 + BAND_SIGMAS * (w / ((2.0 - w) * exposure)).sqrt()).min(BAND_CAP)
}

/// A surge: the home served at least this many times the smoothed rate itself in one
/// interval, [`SURGE_SIGMAS`] Poisson deviations above it and at least [`SURGE_MIN`] requests.
const SURGE_FACTOR: f64 = 3.0;
const SURGE_SIGMAS: f64 = 4.0;
const SURGE_MIN: u64 = 8;
/// An interval's count this many Poisson deviations above the smoothed rate moves it faster.
const JUMP_SIGMAS: f64 = 3.0;

/// Below this smoothed rate (requests/s) an object the home holds no body for is forgotten.
const FORGET_RATE: f64 = 1e-4;

#[derive(Debug, Clone)]
pub struct HomeObject {
    /// The body this home serves, once fetched from the origin.
    pub info: Option<ObjectInfo>,
    /// The version the next body gets: bumped past every invalidated version.
    pub next_version: u64,
    pub level: u8,
    /// When `level` was set (see [`super::wire::Offer::stamp`]); 0 for the initial level.
    pub stamp: u64,
    /// The lowest level of the last [`WIDE_TICKS`] intervals: copies from it may still be
    /// around, serving (and counting) until their leases run out.
    pub previous_level: u8,
    /// Intervals until `previous_level` narrows to `level`.
    wide_for: u8,
    pub rate: SmoothedRate,
    /// The origin fetch was asked for and not yet answered.
    pub fetch_asked: bool,
    /// When this home first served the object itself in the current interval: a surge that
    /// began mid-interval is measured over the time since, not the whole interval.
    pub first_served: Option<Time>,
    /// The object has left the home-only level before: its first promotion ignores the
    /// band (see `Homes::close_interval`).
    pub replicated_before: bool,
    /// This interval's requests were far beyond the rate's noise (a surge or a jump): the
    /// level follows the new rate without the band.
    jumped: bool,
}

impl HomeObject {
    fn new(top: u8) -> Self {
        HomeObject {
            info: None,
            next_version: 1,
            level: top,
            stamp: 0,
            previous_level: top,
            wide_for: 0,
            rate: SmoothedRate::default(),
            fetch_asked: false,
            first_served: None,
            replicated_before: false,
            jumped: false,
        }
    }

    /// The widest arc replicas of this object may occupy now.
    pub fn widest_level(&self) -> u8 {
        self.level.min(self.previous_level)
    }
}

/// What closing an interval decided, keys sorted.
#[derive(Debug, Default)]
pub struct Closed {
    /// Replicated, no body yet: the home should fetch it from the origin now.
    pub fetch: Vec<Id>,
    /// The level changed.
    pub changed: Vec<Id>,
}

/// The home table. See the module docs.
#[derive(Debug, Default)]
pub struct Homes {
    objects: FastMap<Id, HomeObject>,
    /// This interval's counts: key → (origin, count).
    inbound: FastMap<Id, Vec<(Id, u64)>>,
    /// Counts refused because their origin cannot have served the key.
    pub refused_counts: u64,
}

impl Homes {
    pub fn get(&self, key: Id) -> Option<&HomeObject> {
        self.objects.get(&key)
    }

    pub fn len(&self) -> usize {
        self.objects.len()
    }

    pub fn is_empty(&self) -> bool {
        self.objects.is_empty()
    }

    pub fn iter(&self) -> impl Iterator<Item = (&Id, &HomeObject)> {
        self.objects.iter()
    }

    /// The entry for `key`, created at the home-only level `top`.
    pub fn entry(&mut self, key: Id, top: u8) -> &mut HomeObject {
        self.objects.entry(key).or_insert_with(|| HomeObject::new(top))
    }

    pub fn remove(&mut self, key: Id) -> Option<HomeObject> {
        self.inbound.remove(&key);
        self.objects.remove(&key)
    }

    /// Keys this node no longer owns (its predecessor moved), for the caller to release.
    pub fn take_foreign(&mut self, mine: impl Fn(Id) -> bool) -> Vec<Id> {
        let mut gone: Vec<Id> = self.objects.keys().copied().filter(|k| !mine(*k)).collect();
        gone.sort_unstable();
        for k in &gone {
            self.remove(*k);
        }
        gone
    }

    /// Takes one count entry for a key this node is home for.
    pub fn count(&mut self, e: CountEntry) {
        let per_key = self.inbound.entry(e.key).or_default();
        match per_key.iter_mut().find(|(o, _)| *o == e.origin) {
            Some((_, c)) => *c = c.saturating_add(u64::from(e.count)),
            None => per_key.push((e.origin, u64::from(e.count))),
        }
    }

    /// Closes the interval: folds the plausible, capped counts into each object's smoothed
    /// rate and sets levels from `thresholds` (all home-only without a fresh result). A level
    /// that changes is stamped `stamp` (the shared clock in ms), or just past its last stamp.
    pub fn close_interval(
        &mut self,
        now: Time,
        stamp: u64,
        me: Id,
        interval_s: f64,
        thresholds: Option<&[f64]>,
        top: u8,
    ) -> Closed {
        let mut inbound = std::mem::take(&mut self.inbound);
        let mut counted: FastMap<Id, (u64, u64)> = FastMap::default();
        for (key, mut origins) in inbound.drain() {
            let obj = self.objects.entry(key).or_insert_with(|| HomeObject::new(top));
            let widest = obj.widest_level();
            let before = origins.len();
            origins.retain(|(o, _)| *o == me || in_arc(*o, key, widest));
            self.refused_counts += (before - origins.len()) as u64;
            let own = origins.iter().find(|(o, _)| *o == me).map_or(0, |(_, c)| *c);
            counted.insert(key, (capped_total(&origins, me), own));
        }
        // Keep the allocation for the next interval.
        self.inbound = inbound;
        let mut out = Closed::default();
        self.objects.retain(|key, obj| {
            let (total, own) = counted.get(key).copied().unwrap_or((0, 0));
            // The requests the home served itself are a lower bound on the object's rate that
            // no other node can inflate. When they alone surge far above the smoothed rate
            // (a newly popular object, still home-only), the rate starts over from them
            // instead of needing several intervals to average the jump in; relayed counts
            // arrive in lumps and never trigger this.
            let expected = obj.rate.value() * interval_s;
            let surge = own >= SURGE_MIN
                && own as f64 >= SURGE_FACTOR * expected
                && beyond_noise(own as f64, expected, SURGE_SIGMAS);
            let first_served = obj.first_served.take();
            let jump = total >= SURGE_MIN && beyond_noise(total as f64, expected, JUMP_SIGMAS);
            obj.jumped = surge || jump;
            if surge {
                // Over the time since the first request, not counting that one (it only
                // marks the start), so a surge that began mid-interval gets its full rate;
                // two deviations below, because a clump of noise is what looks like a surge.
                let served_for = first_served.map_or(interval_s, |t| {
                    now.saturating_sub(t).as_secs_f64().clamp(interval_s / 8.0, interval_s)
                });
                let n = own.saturating_sub(1) as f64;
                let since = (n - 2.0 * n.sqrt()).max(0.0) / served_for;
                obj.rate.restart((total as f64 / interval_s).max(since));
            } else if jump {
                // Relayed counts (a replicated object's requests mostly end at copies) that
                // rose this far in one interval are a change, not noise: taken in faster.
                // Not below SURGE_MIN, where a few stray requests are 3 σ of nothing.
                obj.rate.update_fast(total as f64 / interval_s);
            } else {
                obj.rate.update_counted(total as f64 / interval_s, interval_s);
            }
            obj.info.is_some() || obj.fetch_asked || obj.rate.value() >= FORGET_RATE
        });
        // Levels from k' on hold every object (their threshold is the least popular one's
        // rate): any object the ring has served belongs there.
        let k_prime = thresholds.and_then(|t| {
            let least = *t.last()?;
            t.iter().position(|th| *th <= least).filter(|_| least.is_finite())
        });
        for (key, obj) in self.objects.iter_mut() {
            let level = match thresholds.filter(|t| !t.is_empty()) {
                Some(t) => {
                    // The thresholds are quantiles of the measured rates (see the leader), so
                    // the measured rate itself is compared: noise that lifts one object over a
                    // threshold has already been counted against the others. A band around
                    // each threshold, sized from the rate's own noise (`band`), keeps noise
                    // from moving a whole arc of copies back and forth every interval, and a
                    // demoted copy from coming back unless its rate really rose. An object's
                    // first promotion from home-only ignores the band: nothing can oscillate
                    // yet, and holding every newcomer back leaves the levels short. Nor does
                    // a rate that just jumped far past its noise (a popularity shift) wait.
                    let r = obj.rate.value();
                    let served = obj.info.is_some() && r > 0.0;
                    let cap = |level: usize| match k_prime.filter(|_| served) {
                        Some(k) => level.min(k) as u8,
                        None => level as u8,
                    };
                    let banded = (obj.replicated_before || obj.level < top) && !obj.jumped;
                    let b = if banded { band(r, interval_s) } else { 1.0 };
                    let clearly = cap(level_for_rate(t, r / b));
                    let barely = cap(level_for_rate(t, r * b));
                    if obj.level > clearly {
                        clearly
                    } else if obj.level < barely {
                        cap(level_for_rate(t, r))
                    } else {
                        obj.level
                    }
                }
                _ => top,
            };
            obj.replicated_before |= level < top;
            if level != obj.level {
                obj.previous_level = obj.previous_level.min(obj.level);
                obj.wide_for = WIDE_TICKS;
                obj.level = level;
                obj.stamp = stamp.max(obj.stamp + 1);
                out.changed.push(*key);
            } else if obj.wide_for > 0 {
                obj.wide_for -= 1;
            } else {
                obj.previous_level = level;
            }
            if obj.level < top && obj.info.is_none() && !obj.fetch_asked {
                obj.fetch_asked = true;
                out.fetch.push(*key);
            }
        }
        out.fetch.sort_unstable();
        out.changed.sort_unstable();
        out
    }

    /// The mergeable summary the leader needs.
    pub fn summary(&self) -> PopularitySummary {
        let mut s = PopularitySummary::default();
        for (key, obj) in &self.objects {
            s.record(key.0, obj.rate.value());
        }
        s
    }
}

/// The sum of the counts, each origin other than the home capped at twice the largest other
/// origin's count (at least [`ORIGIN_FLOOR`]).
pub fn capped_total(origins: &[(Id, u64)], home: Id) -> u64 {
    let (mut first, mut second) = (0u64, 0u64);
    for (_, c) in origins {
        if *c > first {
            second = first;
            first = *c;
        } else if *c > second {
            second = *c;
        }
    }
    origins
        .iter()
        .map(|(o, c)| {
            if *o == home {
                return *c;
            }
            let others = if *c == first { second } else { first };
            (*c).min(others.saturating_mul(2).max(ORIGIN_FLOOR))
        })
        .fold(0u64, u64::saturating_add)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_band_is_one_deviation_of_the_estimator_and_capped() {
        // r·T = 100 requests per interval: weight 0.3, σ/r = √(0.3/1.7/100) = 0.042.
        assert!((band(20.0, 5.0) - 1.042).abs() < 0.001, "{}", band(20.0, 5.0));
        // r·T = 1: the window is ten intervals (weight 0.1), σ/r = √(0.1/1.9) = 0.23.
        assert!((band(0.2, 5.0) - 1.229).abs() < 0.001, "{}", band(0.2, 5.0));
        // Busier objects get a narrower band, faint and unmeasured ones the cap.
        assert!(band(200.0, 5.0) < band(20.0, 5.0));
        assert_eq!(band(0.0001, 5.0), BAND_CAP);
        assert_eq!(band(0.0, 5.0), BAND_CAP);
        assert_eq!(band(f64::NAN, 5.0), BAND_CAP);
    }

    #[test]
    fn one_origin_cannot_dominate() {
        let home = Id(1);
        let honest = [(home, 10), (Id(2), 12), (Id(3), 9)];
        assert_eq!(capped_total(&honest, home), 31);
        let liar = [(home, 10), (Id(2), 12), (Id(3), 1_000_000_000)];
        assert_eq!(capped_total(&liar, home), 10 + 12 + 24);
        assert_eq!(capped_total(&[(Id(9), 1_000_000)], home), ORIGIN_FLOOR);
        assert_eq!(capped_total(&[(home, 1_000_000)], home), 1_000_000);
    }

    /// Closes `n` intervals in which the home served `own` requests and `other` claimed
    /// `claimed`, and returns the smoothed rate.
    fn run(homes: &mut Homes, key: Id, me: Id, own: u32, claimed: u32, n: usize) -> f64 {
        for _ in 0..n {
            homes.count(CountEntry { key, origin: me, count: own });
            homes.count(CountEntry { key, origin: Id(99), count: claimed });
            homes.close_interval(Time::ZERO, 1, me, 1.0, Some(&[1000.0, 100.0, 0.0]), 2);
        }
        homes.get(key).unwrap().rate.value()
    }

    #[test]
    fn a_surge_the_home_serves_restarts_the_rate() {
        let (me, key) = (Id(100), Id(100));
        let mut homes = Homes::default();
        homes.entry(key, 2);
        assert!(run(&mut homes, key, me, 2, 0, 10) < 2.1);
        // Popularity moves here: the very next interval carries the new rate ...
        assert_eq!(run(&mut homes, key, me, 200, 0, 1), 200.0);
        assert_eq!(homes.get(key).unwrap().level, 1);
        // ... where plain averaging would have taken several.
        let mut slow = Homes::default();
        slow.entry(key, 2);
        run(&mut slow, key, me, 2, 0, 10);
        let mut r = slow.get(key).unwrap().rate;
        r.update(200.0);
        assert!(r.value() < 70.0);
    }

    #[test]
    fn a_surge_that_began_mid_interval_is_measured_from_its_start() {
        let (me, key) = (Id(100), Id(100));
        let mut homes = Homes::default();
        homes.entry(key, 2);
        run(&mut homes, key, me, 2, 0, 10);
        // 401 requests in the last half of a 1 s interval: 800/s, not 401/s.
        homes.entry(key, 2).first_served = Some(Time::from_millis(500));
        homes.count(CountEntry { key, origin: me, count: 401 });
        homes.close_interval(Time::from_secs(1), 2, me, 1.0, Some(&[1000.0, 100.0, 0.0]), 2);
        let r = homes.get(key).unwrap().rate.value();
        // Two deviations below 400 / 0.5 s.
        assert!((r - 720.0).abs() < 1.0, "{r}");
    }

    #[test]
    fn claims_from_other_nodes_never_surge() {
        // Node 99 lies inside the level-0 arc, so its counts are taken, but capped; they are
        // not the home's own requests and cannot restart the rate.
        let (me, key) = (Id(100), Id(100));
        let mut homes = Homes::default();
        homes.entry(key, 0).level = 0;
        homes.entry(key, 0).previous_level = 0;
        run(&mut homes, key, me, 2, 0, 10);
        let r = run(&mut homes, key, me, 2, 1_000_000_000, 1);
        assert!(r < 6.0, "a liar's claims restarted the rate at {r}");
    }

    #[test]
    fn counts_from_outside_the_arc_are_refused() {
        let mut homes = Homes::default();
        let (me, key) = (Id(100), Id(100));
        homes.entry(key, 10);
        // Level 10 arc of key 100: (100 - 2^118, 100]; Id(1 << 127) lies far outside it.
        homes.count(CountEntry { key, origin: Id(1 << 127), count: 1_000_000_000 });
        homes.count(CountEntry { key, origin: me, count: 5 });
        homes.close_interval(Time::ZERO, 1, me, 1.0, Some(&[100.0, 50.0, 0.0]), 10);
        assert_eq!(homes.refused_counts, 1);
        let obj = homes.get(key).unwrap();
        assert!(obj.rate.value() <= 5.0, "{}", obj.rate.value());
    }
}
