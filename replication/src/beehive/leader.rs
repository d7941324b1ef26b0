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

/// The correction loop (see docs/replication.md, "The controller"). The plant: the measured
/// average first answers a change of the solved target `u` after [`DELAY`] intervals (the
/// result spreads on pull answers, copies go down the pull tree, lookups measure, and the
/// report climbs back to key 0), and has followed it after about [`LAG`], with gain `g`
/// (measured ≈ 0.65 at N = 128). An integrator `u(n+1) = u(n) + K·e(n)` on a plant of delay
/// `d` has the characteristic polynomial `z^(d+1) − z^d + gK`; its double root
/// `z* = d/(d+1)` is the fastest response that does not overshoot, at `gK = z*^d·(1 − z*)`.
const DELAY: u32 = 4;
/// The delay the gain is designed for: objects move only once their rate leaves the band
/// around a moved threshold, and a faint object's rate moves over its long window, so the
/// average keeps following a change of `u` for several intervals after [`DELAY`] (its peak
/// came about 10 intervals after the target's at N = 256).
const LAG: u32 = 8;
/// Measured plant gain: hops the average moves per hop of target.
const PLANT_GAIN: f64 = 0.65;
/// An error farther than this share of C is a transient (first convergence, a popularity
/// shift), not model error: it is not integrated.
const TRANSIENT: f64 = 0.2;
/// Each interval's error is clipped to this share of C before it is integrated.
const ERROR_CLIP: f64 = 0.1;
/// While the nodes store less than the last result's model by more than this share, copies
/// are still being fetched: an average above C is the placement's lag, not the model's
/// error, and is not integrated (it would lower the target for copies already on their way).
const PLACEMENT_LAG: f64 = 0.1;

/// The integrator's gain `K`, from [`LAG`] and [`PLANT_GAIN`] (see [`DELAY`]).
pub fn loop_gain() -> f64 {
    let d = f64::from(LAG);
    let z = d / (d + 1.0);
    z.powi(LAG as i32) * (1.0 - z) / PLANT_GAIN
}

#[derive(Debug)]
pub struct Leader {
    hop_cost: f64,
    objects: SmoothedRate,
    /// `u`: added to `C` before solving; see `solve`.
    correction: f64,
    /// Results this leader has published: it integrates only once its first result has had
    /// [`DELAY`] intervals to show in the measured average.
    results: u32,
    /// Objects the homes had seen at the previous result.
    last_seen: Option<f64>,
    /// Share of requests per interval that went to an object no home had seen.
    discovery: SmoothedRate,
    /// The storage per node the last result's model asked for.
    last_model: Option<f64>,
}

impl Leader {
    pub fn new(cfg: &ReplicationConfig) -> Self {
        Leader {
            hop_cost: cfg.initial_hop_cost,
            objects: SmoothedRate::default(),
            correction: 0.0,
            results: 0,
            last_seen: None,
            discovery: SmoothedRate::default(),
            last_model: None,
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

    /// The correction `u` the next result adds to `C`.
    pub fn correction(&self) -> f64 {
        self.correction
    }

    /// One step of the correction loop on the measured average `measured` (hops per lookup)
    /// for target `c`; `ceiling` is the most `u` can usefully be (every object home-only).
    /// Errors beyond [`TRANSIENT`]·C are not integrated, the rest is clipped to
    /// ±[`ERROR_CLIP`]·C, and `u` stays in [`correction_range`] and below `ceiling`
    /// (anti-windup: at a bound the integrator holds).
    fn steer(&mut self, c: f64, measured: f64, ceiling: f64) {
        if self.results < DELAY || !measured.is_finite() {
            return;
        }
        let error = c - measured;
        if error.abs() >= TRANSIENT * c {
            return;
        }
        let error = error.clamp(-ERROR_CLIP * c, ERROR_CLIP * c);
        let next = correction_range(c, self.correction + loop_gain() * error);
        // Only as far as it changes anything: past `ceiling` every object is home-only.
        self.correction =
            if next > self.correction { next.min(ceiling.max(self.correction)) } else { next };
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
        let params = LevelParams {
            base: 2.0,
            nodes,
            objects,
            alpha: fit.alpha,
            target_hops: cfg.target_hops,
            hop_cost_per_level: self.hop_cost(),
        };
        // Steer on the measured average: a level's real hop cost is not exactly h per level
        // (reaching an arc costs a little more than the halving steps), and copies outside
        // their arc make the ring cost less than the model; the loop removes that offset.
        // With a storage budget C is whatever fits: no steering.
        if cfg.budget.is_none() && report.lookups >= MIN_LOOKUPS {
            let measured = report.hop_sum / report.lookups as f64;
            let c = cfg.target_hops;
            let ceiling = params.top_level() as f64 * self.hop_cost - c;
            let placing = self
                .last_model
                .is_none_or(|model| (report.stored as f64 / nodes) < (1.0 - PLACEMENT_LAG) * model);
            if !(placing && measured > c) {
                self.steer(c, measured, ceiling);
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
        self.last_model = Some(model_stored_per_node);
        self.results = self.results.saturating_add(1);
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
