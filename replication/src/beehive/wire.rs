//! What Beehive adds to the messages: offers, counts, reports and the leader's result.
//!
//! Every field a peer sends is checked by [`check_pull`], [`check_offers`] and
//! [`LevelResult::is_sane`] before the receiver acts on it; a bad one refuses the whole
//! message, as a malformed frame would be.

use super::digest::{Digest, Mask, BUCKETS};
use super::zipf::{PopularitySummary, SUMMARY_TOP_LEN};
use crate::error::ProtocolError;
use crate::id::Id;
use serde::{Deserialize, Serialize};

/// Most count entries one pull may carry; a sender keeps the largest counts.
pub const MAX_COUNT_ENTRIES: usize = 16_384;
/// Most offers one answer may carry; a holder offers its lowest levels first.
pub const MAX_OFFERS: usize = 16_384;
/// The unit of [`OfferList::leases`], in milliseconds (rounded down: a copy may lapse a
/// little early, never late).
pub const LEASE_UNIT_MS: u32 = 100;
/// Most thresholds a result may carry: one per level of a 2^128 ring, plus the home level.
pub const MAX_LEVELS: usize = 129;

/// One version of an object's body, as its home published it. Holders fetch the body and check
/// it against `hash` (blake3) before they store it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ObjectInfo {
    pub version: u64,
    pub hash: [u8; 32],
    pub size: u64,
}

/// "Hold this": an object whose arc contains the puller, at the level its home set.
///
/// Leases start at the home and only shrink on the way out: a holder offers what is left of
/// its own lease, and a puller only takes offers from nodes between itself and the home. So
/// renewals flow strictly away from the home and copies cannot keep each other alive in a
/// cycle. Bulk renewals could still keep a demoted object's old arc alive through copies that
/// have not heard of the demotion yet, renewing each other down the successor chain; the
/// level's `stamp` stops that: a copy never takes an older level than one it has seen, and a
/// withdrawal carries the new level on (see [`Withdrawn`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Offer {
    pub key: Id,
    pub level: u8,
    /// When the home set `level`, in milliseconds on the shared clock: of two levels for
    /// one object, the later stamp is the current one.
    pub stamp: u64,
    pub info: ObjectInfo,
    /// Milliseconds of lease the offerer has left (the full lease from the home).
    pub lease_ms: u32,
    /// The offerer is the object's home (which lies past the key, outside the arc).
    pub from_home: bool,
    /// The offerer's own copy is being renewed (or it is the home): the puller may let this
    /// finger's bulk renewals extend its copy. A copy whose renewals stopped is offered with
    /// `renewable: false`, so the copies downstream stop being extended too and lapse.
    pub renewable: bool,
}

/// An object's level as its home set it, with the home's stamp (see [`Offer::stamp`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct LevelStamp {
    pub level: u8,
    pub stamp: u64,
}

/// "Stop holding this from me." With the object's current level when the offerer knows it:
/// the puller lies outside that level's arc, so it drops its copy at once, remembers the
/// level so that no offer of an older one brings the copy back, and withdraws it in turn from
/// the nodes that pull from it. Without a level (the offerer's own copy lapsed) the puller
/// only stops following this offerer's renewals.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Withdrawn {
    pub key: Id,
    pub level: Option<LevelStamp>,
}

/// Requests for `key` that `origin` served in one interval, on their way to the key's home.
/// Entries keep their origin all the way, so the home can refuse counts from a node that
/// cannot have served the key and cap what one node adds (see `home.rs`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct CountEntry {
    pub key: Id,
    pub origin: Id,
    pub count: u32,
}

/// What a part of the ring tells the leader: its homes' popularity, how many nodes it holds
/// and the hops its lookups cost per level. Reports of one generation merge by addition on
/// the way to key 0.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Report {
    /// The shared clock's interval its nodes ticked in. The leader solves one generation at
    /// a time, so a report that misses a tick is neither lost nor counted twice (see
    /// [`crate::node`]'s replication tick).
    pub generation: u64,
    pub summary: PopularitySummary,
    /// Requests per second the sketches could not attribute to a key (their tail).
    pub untracked_rate: f64,
    pub nodes: u64,
    /// Sums over object lookups that ended at a holder: hops taken, and the holder's level.
    pub hop_sum: f64,
    pub level_sum: f64,
    /// How many lookups those sums cover.
    pub lookups: u64,
    /// Objects the nodes store (home copies with a body, and replicas): the leader compares
    /// them with what its last result asked for.
    pub stored: u64,
}

impl Report {
    /// Adds `other` in; the caller merges only reports of one generation.
    pub fn merge(&mut self, other: &Report) {
        debug_assert_eq!(self.generation, other.generation);
        self.summary.merge(&other.summary);
        self.untracked_rate += other.untracked_rate;
        self.nodes = self.nodes.saturating_add(other.nodes);
        self.hop_sum += other.hop_sum;
        self.level_sum += other.level_sum;
        self.lookups = self.lookups.saturating_add(other.lookups);
        self.stored = self.stored.saturating_add(other.stored);
    }

    fn is_sane(&self) -> bool {
        let finite = |x: f64| x.is_finite() && x >= 0.0;
        finite(self.untracked_rate)
            && finite(self.hop_sum)
            && finite(self.level_sum)
            && finite(self.summary.total_rate)
            && self.summary.top.len() <= SUMMARY_TOP_LEN
    }
}

/// The leader's answer for the whole ring: nodes keep the highest `(epoch, leader)`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LevelResult {
    pub epoch: u64,
    pub leader: Id,
    pub alpha: f64,
    /// `M`, estimated.
    pub objects: f64,
    /// `N`, counted by the reports.
    pub nodes: f64,
    /// `h`, measured (or the configured default until there is data).
    pub hop_cost: f64,
    /// The `C` solved for (from the configuration, or from a storage budget).
    pub target_hops: f64,
    /// `t_i`: an object with rate ≥ `t_i` belongs at level `i` or lower.
    pub thresholds: Vec<f64>,
    /// The closed form's storage per node for these parameters (home copies included), for
    /// operators to compare with what nodes really store.
    pub model_stored_per_node: f64,
    /// Intervals since the leader issued it, added to by every node that passes it on, so a
    /// result cannot circulate for ever (the ARPANET's 1980 outage, RFC 789: routing updates
    /// that each looked newer than another circulated until the network was reset).
    pub age: u32,
}

impl LevelResult {
    /// Whether `self` supersedes `other`.
    pub fn newer_than(&self, other: &LevelResult) -> bool {
        (self.epoch, self.leader) > (other.epoch, other.leader)
    }

    pub fn is_sane(&self) -> bool {
        let pos = |x: f64| x.is_finite() && x > 0.0;
        pos(self.alpha)
            && pos(self.objects)
            && pos(self.nodes)
            && pos(self.hop_cost)
            && self.target_hops.is_finite()
            && self.target_hops >= 0.0
            && !self.thresholds.is_empty()
            && self.thresholds.len() <= MAX_LEVELS
            && self.thresholds.iter().all(|t| !t.is_nan() && *t >= 0.0)
            && self.thresholds.windows(2).all(|w| w[0] >= w[1])
    }

    /// The home-only level `k`.
    pub fn top_level(&self) -> u8 {
        (self.thresholds.len() - 1) as u8
    }
}

/// A finger's answer to a pull. The first answer to a puller is `full`: every object the
/// puller should hold. Later answers are deltas since the generation the puller last saw: the
/// objects whose offer changed (new, new version or level, or renewals that stopped), the
/// ones withdrawn, and one bulk lease extension for every other copy the puller holds from
/// this finger (attached through a `renewable` offer). Steady state then costs a few bytes
/// per pull instead of one offer per replica.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct OfferList {
    pub gen: u64,
    pub full: bool,
    pub offers: Vec<Offer>,
    pub withdrawn: Vec<Withdrawn>,
    /// The lease every copy that follows this finger's renewals may extend to: in a delta
    /// every unchanged one, in a full answer those outside the keys it lists in full (the
    /// ones it is the puller's next hop for), which it renewed by an earlier offer.
    pub renew_ms: u32,
    /// A full answer to a pull with a [`Digest`]: the buckets ([`super::digest::bucket`])
    /// whose offers in the finger's scope are not listed because the puller's digest showed
    /// it holds exactly them. Every other offer is listed.
    pub matched: Mask,
    /// For each `matched` bucket in ascending order, the lease left of each offer not
    /// listed there, in key order, in [`LEASE_UNIT_MS`]: the puller rebuilds those offers
    /// from its own copies.
    pub leases: Vec<Vec<u32>>,
}

/// A replica pull: "which of your objects should I hold?", carrying counts toward homes and,
/// toward key 0, the report.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Pull {
    pub counts: Vec<CountEntry>,
    pub report: Option<Report>,
    /// The newest result the puller has, so the answer only carries a newer one.
    pub known: Option<(u64, Id)>,
    /// The generation of this finger's offers the puller last saw; `None` asks for all.
    pub since: Option<u64>,
    /// Ask for all offers even so (a periodic resync); the answer still carries what was
    /// withdrawn since `since`, so a resync loses no withdrawal.
    pub full: bool,
    /// With `full`: the puller's copies the finger would offer (in the puller's arc, of keys
    /// the finger is its next hop for, see `next`), so the answer lists only the buckets
    /// that differ.
    pub digest: Option<Digest>,
    /// The next node past this finger that the puller pulls from every tick (a finger or
    /// its successor): this finger pushes it, and lists in a full answer, only the copies of
    /// keys before that node, for which it is the puller's next hop. The others reach it
    /// from that node, so a new copy comes once, and a resync renews a copy once, not from
    /// every finger between the puller and the key.
    pub next: Option<Id>,
}

pub(crate) fn check_pull(pull: &Pull) -> Result<(), ProtocolError> {
    if pull.counts.len() > MAX_COUNT_ENTRIES {
        return Err(ProtocolError::Malformed("too many count entries"));
    }
    if pull.digest.as_ref().is_some_and(|d| !d.is_well_formed()) {
        return Err(ProtocolError::Malformed("digest with the wrong number of buckets"));
    }
    pull.report.as_ref().map_or(Ok(()), check_report)
}

pub(crate) fn check_report(report: &Report) -> Result<(), ProtocolError> {
    if !report.is_sane() {
        return Err(ProtocolError::Malformed("report with a negative or non-finite figure"));
    }
    Ok(())
}

/// Bounds shared by pulled offer lists and pushes.
pub(crate) fn check_offer_items(offers: &[Offer]) -> Result<(), ProtocolError> {
    if offers.len() > MAX_OFFERS {
        return Err(ProtocolError::Malformed("too many offers"));
    }
    if offers.iter().any(|o| usize::from(o.level) >= MAX_LEVELS) {
        return Err(ProtocolError::Malformed("offer level beyond the ring's levels"));
    }
    Ok(())
}

pub(crate) fn check_offers(
    list: &OfferList,
    result: Option<&LevelResult>,
) -> Result<(), ProtocolError> {
    check_offer_items(&list.offers)?;
    let leases = list.leases.iter().map(Vec::len).sum::<usize>();
    if list.matched.words().len() > BUCKETS / 64
        || list.leases.len() != list.matched.buckets().count()
    {
        return Err(ProtocolError::Malformed("leases that do not match the matched buckets"));
    }
    if list.withdrawn.len() > MAX_OFFERS || leases > MAX_OFFERS {
        return Err(ProtocolError::Malformed("too many offers"));
    }
    if list.withdrawn.iter().filter_map(|w| w.level).any(|l| usize::from(l.level) >= MAX_LEVELS) {
        return Err(ProtocolError::Malformed("withdrawal level beyond the ring's levels"));
    }
    if result.is_some_and(|r| !r.is_sane()) {
        return Err(ProtocolError::Malformed("leader result out of range"));
    }
    Ok(())
}

/// Whether `node` lies in the replica arc of an object `key` at `level`:
/// `(key − 2^128/2^level, key]`. Level 0 is the whole ring.
pub fn in_arc(node: Id, key: Id, level: u8) -> bool {
    // Level 0's start is the key itself, and `(key, key]` is the whole ring.
    node.in_open_closed(arc_start(key, level), key)
}

/// The first id of the replica arc (exclusive).
pub fn arc_start(key: Id, level: u8) -> Id {
    match level {
        0 => key,
        l if l >= 128 => key.offset(u128::MAX),
        l => key.offset((1u128 << (128 - u32::from(l))).wrapping_neg()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn arcs_halve_per_level() {
        let key = Id(1000);
        assert!(in_arc(Id(5), key, 0));
        assert!(in_arc(key, key, 1));
        assert!(in_arc(Id(1000u128.wrapping_sub(1 << 127) + 1), key, 1));
        assert!(!in_arc(Id(1000u128.wrapping_sub(1 << 127)), key, 1));
        assert!(!in_arc(Id(1001), key, 1));
        assert!(in_arc(Id(1000u128.wrapping_sub(1 << 20) + 1), key, 108));
        assert!(!in_arc(Id(1000u128.wrapping_sub(1 << 20)), key, 108));
        assert!(in_arc(key, key, 128) && !in_arc(Id(999), key, 128));
    }

    #[test]
    fn results_out_of_range_are_refused() {
        let good = LevelResult {
            epoch: 1,
            leader: Id(0),
            alpha: 0.9,
            objects: 100.0,
            nodes: 8.0,
            hop_cost: 0.5,
            target_hops: 1.0,
            thresholds: vec![5.0, 1.0, 0.0],
            model_stored_per_node: 2.0,
            age: 0,
        };
        assert!(good.is_sane());
        let rising = LevelResult { thresholds: vec![1.0, 5.0], ..good.clone() };
        assert!(!rising.is_sane());
        let nan = LevelResult { alpha: f64::NAN, ..good.clone() };
        assert!(!nan.is_sane());
        let long = LevelResult { thresholds: vec![0.0; 200], ..good };
        assert!(!long.is_sane());
    }
}
