//! The leader's work, once per interval: merged reports in, a [`LevelResult`] out.
//!
//! The leader is whoever is home for key 0, so leadership moves with the ring and needs no
//! election; a new leader continues from the highest epoch it has seen.

use super::levels::{solve, solve_for_budget, thresholds, LevelParams};
use super::popularity::SmoothedRate;
use super::wire::{LevelResult, Report};
use super::zipf::{FitConfig, ZipfFit, ALPHA_RANGE};
use crate::config::ReplicationConfig;
use crate::id::Id;

/// Level sums below this are too few lookups to measure the hop cost from.
const MIN_LEVEL_SUM: f64 = 50.0;
/// The measured hop cost per level is kept in this range.
const HOP_COST_RANGE: (f64, f64) = (0.2, 1.5);

/// Weight of one interval's measurement in the hop cost and the object count. Slower than
/// the per-object rates: both feed back into the levels they are measured under, and a fast
/// loop overshoots.
const SLOW_WEIGHT: f64 = 0.1;

/// Lookups per interval below which the measured average is too noisy to steer by.
const MIN_LOOKUPS: u64 = 100;
/// Gain of the correction per interval.
const STEER_WEIGHT: f64 = 0.15;

#[derive(Debug)]
pub struct Leader {
    hop_cost: f64,
    objects: SmoothedRate,
    /// Added to `C` before solving; see `solve`.
    correction: f64,
    /// The previous result's `M` and storage per node: steering waits while `M` still moves,
    /// and does not add copies before the ring has once stored what it was asked for.
    asked: Option<Asked>,
    /// The ring has stored what a result asked for at least once: its first convergence is
    /// over.
    placed_once: bool,
    /// The previous interval's measured average was near the target.
    was_near: bool,
    /// Objects stored per node at the previous result.
    last_stored: Option<f64>,
    /// Objects the homes had seen at the previous result.
    last_seen: Option<f64>,
    /// Share of requests per interval that went to an object no home had seen.
    discovery: SmoothedRate,
}

/// What a result asked of the ring.
#[derive(Debug, Clone, Copy)]
struct Asked {
    objects: f64,
    stored_per_node: f64,
}

/// `M` (and the stored copies) moving less than this share per interval: the ring's
/// catalogue is known well enough for the measured average to say something about the
/// levels rather than about objects not yet seen (or copies not yet placed).
const SETTLED: f64 = 0.05;
/// The measured average within this share of C: near enough to steer on. Farther off, the
/// ring is still converging or recovering, and integrating that error winds up.
const NEAR: f64 = 0.2;

impl Leader {
    pub fn new(cfg: &ReplicationConfig) -> Self {
        Leader {
            hop_cost: cfg.initial_hop_cost,
            objects: SmoothedRate::default(),
            correction: 0.0,
            asked: None,
            was_near: false,
            placed_once: false,
            last_stored: None,
            last_seen: None,
            discovery: SmoothedRate::default(),
        }
    }

    /// Continues from `previous`, a result another leader published: leadership moved (a
    /// join or a crash near key 0). The new leader keeps its predecessor's M, hop cost and
    /// correction: starting from nothing, its first results would take M from the fitted
    /// curve alone, the initial hop cost and no correction, and the ring would add copies and
    /// drop them again for several intervals after every handoff.
    pub fn take_over(&mut self, previous: &LevelResult, cfg: &ReplicationConfig) {
        let mut next = Leader::new(cfg);
        if previous.hop_cost.is_finite() {
            next.hop_cost = previous.hop_cost.clamp(HOP_COST_RANGE.0, HOP_COST_RANGE.1);
        }
        next.objects = SmoothedRate::primed_at(previous.objects);
        if cfg.budget.is_none() && previous.target_hops.is_finite() {
            next.correction =
                correction_range(cfg.target_hops, previous.target_hops - cfg.target_hops);
        }
        *self = next;
    }

    /// The hop cost per level the next result uses.
    pub fn hop_cost(&self) -> f64 {
        self.hop_cost
    }

    /// Solves for the ring described by `report`. `None` when there is not yet enough
    /// popularity data to fit (the previous result stays in force until it ages).
    pub fn solve(
        &mut self,
        me: Id,
        epoch: u64,
        report: &Report,
        cfg: &ReplicationConfig,
        interval_s: f64,
    ) -> Option<LevelResult> {
        if report.level_sum >= MIN_LEVEL_SUM {
            let h = (report.hop_sum / report.level_sum).clamp(HOP_COST_RANGE.0, HOP_COST_RANGE.1);
            self.hop_cost += SLOW_WEIGHT * (h - self.hop_cost);
        }
        let fit_config = FitConfig {
            // A smoothed rate averages over ≈ interval / WEIGHT; below ten requests in that
            // window Poisson noise lifts rare objects into busier bins and steepens the fit.
            min_rate: 10.0 * SmoothedRate::WEIGHT / interval_s,
            min_alpha: ALPHA_RANGE.0,
            max_alpha: ALPHA_RANGE.1,
        };
        let fit = report.summary.fit(&fit_config).ok()?;
        // M: the objects homes have seen, plus the curve's tail long enough to carry the
        // requests that went to objects nobody had seen before (Good–Turing: the share of
        // requests that discover a new object is the unseen objects' share of all requests).
        // The curve alone (M with rate(1)·H(M) = total) moves M by 40 % when rate(1) is off by
        // 5 % at α = 0.91; the discovery share goes to 0 as the catalogue is seen, and so
        // does the tail. Never more than twice what the homes have seen.
        let seen = (fit.objects as f64).max(1.0);
        let total = report.summary.total_rate + report.untracked_rate;
        let curve = match self.last_seen.filter(|_| total > 0.0) {
            Some(before) => {
                let new = (seen - before).max(0.0) / (total * interval_s);
                self.discovery.update(new.min(1.0));
                Some(objects_for_sum(&fit, seen, self.discovery.value() * total))
            }
            // Taken over: the predecessor's M stands until the discovery share is measured.
            None if self.objects.value() > 0.0 => None,
            None => Some(objects_for_sum(&fit, 0.0, total)),
        };
        self.last_seen = Some(seen);
        if let Some(curve) = curve {
            self.objects.update(curve.min(2.0 * seen));
        }
        let objects = self.objects.value().max(seen);
        let nodes = (report.nodes as f64).max(1.0);
        // Until the copies the last result asked for are in place, the measured average says
        // how far placement lags, not how far the model is off: steering on it then winds the
        // correction up, and the ring overshoots once the copies land. Placed: the stored
        // copies and `M` no longer move.
        let stored = report.stored as f64 / nodes;
        let moving =
            self.last_stored.replace(stored).is_none_or(|s| (stored / s - 1.0).abs() >= SETTLED);
        let settled =
            !moving && self.asked.is_some_and(|a| (objects / a.objects - 1.0).abs() < SETTLED);
        // The ring's first convergence is placement catching up, all of it: the average comes
        // down toward C over many intervals while M and the stored copies still move a few
        // per cent per interval, and steering on that lowers the target; the copies that adds
        // outlast the correction. So no copies are added by steering until the ring has once
        // stored what it was asked for. A one-time gate, not a test on every interval: stored
        // and asked are both noisy, and a gate on them would block corrections one way more
        // often than the other, so the target would ratchet. Settled too: in the first
        // intervals, while M is a fraction of the catalogue, the ring briefly stores more
        // than the small model asks.
        if settled && self.asked.is_some_and(|a| stored >= a.stored_per_node) {
            self.placed_once = true;
        }
        let params = LevelParams {
            base: 2.0,
            nodes,
            objects,
            alpha: fit.alpha,
            target_hops: cfg.target_hops,
            hop_cost_per_level: self.hop_cost(),
        };
        // Steer on the measured average: a level's real hop cost is not exactly h per level
        // (reaching an arc costs a little more than the halving steps), so the model's average
        // and the measured one differ. Integrated slowly, and only near the target, so the
        // first convergence (measured ≫ C) does not wind the correction up.
        // A disturbance (a popularity shift) also throws the average far off for an interval;
        // the interval after it is recovery, not model error, so steering waits for two near
        // the target in a row.
        if cfg.budget.is_none() && report.lookups >= MIN_LOOKUPS {
            let measured = report.hop_sum / report.lookups as f64;
            let c = cfg.target_hops;
            let near = (measured - c).abs() < NEAR * c;
            let was_near = std::mem::replace(&mut self.was_near, near);
            // No winding up past the point where every object is home-only: on a ring so
            // small that plain Chord beats C, a larger target changes nothing.
            let home_only = (c + self.correction) >= params.top_level() as f64 * self.hop_cost;
            let converging = !self.placed_once && measured > c;
            if settled && near && was_near && !converging && !(home_only && measured < c) {
                let step = STEER_WEIGHT * (c - measured);
                self.correction = correction_range(c, self.correction + step);
            }
        }
        let steered = (cfg.target_hops + self.correction).max(0.0);
        let params = LevelParams { target_hops: steered, ..params };
        let (target_hops, solution) = match cfg.budget {
            Some(b) => solve_for_budget(&params, b).ok()?,
            None => (steered, solve(&params).ok()?),
        };
        // The measured rate at each level's last rank, not the fitted curve's: homes compare
        // measured (noisy) rates, and noise spreads them both ways around the curve, so only
        // the measured distribution puts x_i·M objects at levels ≤ i. Below the binned
        // rates (objects not yet seen, or faint), the curve.
        let summary = &report.summary;
        let thresholds = thresholds(&solution, |r| {
            summary.rate_at_rank(r).unwrap_or_else(|| fit.rate_of_rank(r))
        });
        let model_stored_per_node = solution.replicas_per_node(nodes);
        self.asked = Some(Asked { objects, stored_per_node: model_stored_per_node });
        let result = LevelResult {
            epoch,
            leader: me,
            alpha: fit.alpha,
            objects,
            nodes,
            hop_cost: params.hop_cost_per_level,
            target_hops,
            thresholds,
            model_stored_per_node,
            age: 0,
        };
        result.is_sane().then_some(result)
    }
}

/// `correction` kept to what the leader may add to `c`: down to C/4 (at small C most lookups
/// go to levels 0 and 1, where a lookup that misses costs a whole hop, far more than h per
/// level), up to 1.5·C.
fn correction_range(c: f64, correction: f64) -> f64 {
    correction.clamp(-0.75 * c, c / 2.0)
}

/// The `M ≥ from` at which the fitted curve's ranks `from + 1 ..= M` add up to `sum`:
/// `rate(1)·(H(M, α) − H(from, α)) = sum`. Homes only know objects someone has asked for, which
/// misses most of a Zipf tail; the curve says how far the tail must reach to carry the rate
/// the known objects do not. `from` when the curve is unusable, 10¹² at most.
pub fn objects_for_sum(fit: &ZipfFit, from: f64, sum: f64) -> f64 {
    let from = from.max(0.0);
    if !(fit.rank_one_rate > 0.0 && sum.is_finite() && sum > 0.0) {
        return from;
    }
    let alpha = fit.alpha;
    // Σ_{r=1..M} r^−α by Euler–Maclaurin: the integral plus the end corrections.
    let harmonic = |m: f64| {
        if m < 1.0 {
            return 0.0;
        }
        let integral = if (alpha - 1.0).abs() < 1e-9 {
            m.ln()
        } else {
            (m.powf(1.0 - alpha) - 1.0) / (1.0 - alpha)
        };
        integral + 0.5 * (1.0 + m.powf(-alpha)) + alpha / 12.0 * (1.0 - m.powf(-alpha - 1.0))
    };
    let want = harmonic(from) + sum / fit.rank_one_rate;
    let (mut lo, mut hi) = (from.max(1.0), 1e12f64);
    if harmonic(hi) < want {
        return hi;
    }
    if harmonic(lo) >= want {
        return lo;
    }
    for _ in 0..100 {
        let mid = (lo * hi).sqrt();
        if harmonic(mid) < want {
            lo = mid;
        } else {
            hi = mid;
        }
        if hi / lo < 1.0 + 1e-6 {
            break;
        }
    }
    hi
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn objects_are_recovered_from_the_curve() {
        let (m, alpha) = (40_960u64, 0.91);
        let total: f64 = (1..=m).map(|r| (r as f64).powf(-alpha)).sum();
        let fit = ZipfFit {
            alpha,
            objects: 300,
            total_rate: total,
            rank_one_rate: 1.0,
            points: 10,
            clamped: false,
        };
        let est = objects_for_sum(&fit, 0.0, total);
        assert!((est / m as f64 - 1.0).abs() < 0.01, "{est}");
        // The tail past the 300 objects seen: the same M.
        let head: f64 = (1..=300).map(|r| (r as f64).powf(-alpha)).sum();
        let est = objects_for_sum(&fit, 300.0, total - head);
        assert!((est / m as f64 - 1.0).abs() < 0.01, "{est}");
        // Nothing left to carry: what the homes saw.
        assert_eq!(objects_for_sum(&fit, 300.0, 0.0), 300.0);
    }
}
