//! The leader's work, once per interval: merged reports in, a [`LevelResult`] out.
//!
//! The leader is whoever is home for key 0, so leadership moves with the ring and needs no
//! election; a new leader continues from the highest epoch it has seen.

use super::catalogue::{objects_for_discovery, objects_for_sum, MAX_OVER_SEEN};
use super::levels::{solve, solve_for_budget, thresholds, LevelParams};
use super::popularity::SmoothedRate;
use super::wire::{LevelResult, Report};
use super::zipf::{FitConfig, ALPHA_RANGE};
use crate::config::ReplicationConfig;
use crate::id::Id;
use std::collections::VecDeque;

/// Level sums below this are too few lookups to measure the hop cost from.
const MIN_LEVEL_SUM: f64 = 50.0;
/// The measured hop cost per level is kept in this range.
const HOP_COST_RANGE: (f64, f64) = (0.2, 1.5);

/// Weight of one interval's measurement in the hop cost and the object count. Slower than
/// the per-object rates: both feed back into the levels they are measured under, and a fast
/// loop overshoots.
const SLOW_WEIGHT: f64 = 0.1;

/// Weight of one fit in the α the levels use. The fitted α wanders by about ±0.01 from one
/// result to the next (Poisson noise in the binned rates), and the tail's levels are steep in
/// α: each wander moved the model's storage by up to 10 %, and objects with it.
const ALPHA_WEIGHT: f64 = 0.3;
/// A fit this far from the average α is a change of the workload (or of its shape while a
/// shift settles): taken at once. At 0.05 the fits during a popularity reversal (0.91 → 0.87
/// and back) were averaged in and out, and the ring's average read 1.055 five intervals after
/// the reversal's result, where taking each fit as it came read 1.03.
const ALPHA_JUMP: f64 = 0.03;

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
/// An error farther than this share of C is not model error (the first convergence, a
/// popularity shift) and is not integrated.
const TRANSIENT: f64 = 0.2;
/// A transient is over once the measured average comes this close to C (or closes in too
/// slowly, see [`Settling`]): until then it is the plant still answering, not model error.
const SETTLED: f64 = 0.05;
/// Each interval's error is clipped to this share of C before it is integrated.
const ERROR_CLIP: f64 = 0.1;
/// While the nodes store less than the last result's model by more than this share, copies
/// are still being fetched: an average above C is the placement's lag, not the model's
/// error, and is not integrated (it would lower the target for copies already on their way).
const PLACEMENT_LAG: f64 = 0.1;

/// The designed loop's pole `z* = d/(d+1)`: the error decays as `z*ⁿ` (see [`DELAY`]).
fn loop_pole() -> f64 {
    let d = f64::from(LAG);
    d / (d + 1.0)
}

/// `z*^LAG`: what the designed loop leaves of an error after [`LAG`] results.
fn decay_over_lag() -> f64 {
    loop_pole().powi(LAG as i32)
}

/// The integrator's gain `K`, from [`LAG`] and [`PLANT_GAIN`] (see [`DELAY`]).
pub fn loop_gain() -> f64 {
    decay_over_lag() * (1.0 - loop_pole()) / PLANT_GAIN
}

/// The first convergence from a leader's start, in progress: which side of C it started from,
/// and |error| at each of its last [`LAG`] results. It comes down from far above C over as
/// long as the faint objects' rate windows (tens of intervals): integrating that tail wound u
/// down, and the ring undershot by 6–9 % once the copies it asked for had landed. It is over
/// when the average is within [`SETTLED`]·C, when it has crossed to C's other side, or when
/// it closes the error more slowly than the designed loop would (to `z*^LAG` over [`LAG`]
/// results): what is left is model error, the integrator's job. A popularity shift does not
/// start one: waiting it out held 16 live nodes at 1.09–1.13 hops for 14 s after a reversal.
#[derive(Debug, Default, Clone)]
struct Settling {
    /// Whether the transient started above C (unknown until its first measured result).
    above: Option<bool>,
    recent: VecDeque<f64>,
}

impl Settling {
    /// Whether `error` lies on the other side of C than the transient started from (the
    /// first error seen sets that side).
    fn crossed(&mut self, error: f64) -> bool {
        *self.above.get_or_insert(error < 0.0) != (error < 0.0)
    }

    /// Takes the next result's error; whether the transient is over.
    fn settled(&mut self, error: f64, c: f64) -> bool {
        let crossed = self.crossed(error);
        let error = error.abs();
        let closing_slowly = self.recent.len() >= LAG as usize
            && self.recent.front().is_some_and(|e0| error > decay_over_lag() * e0);
        if self.recent.len() >= LAG as usize {
            self.recent.pop_front();
        }
        self.recent.push_back(error);
        error <= SETTLED * c || crossed || closing_slowly
    }
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
    /// The α the levels use: the fits' average ([`ALPHA_WEIGHT`], [`ALPHA_JUMP`]).
    alpha: Option<f64>,
    /// From a leader's start until its first convergence settles.
    settling: Option<Settling>,
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
            settling: Some(Settling::default()),
            last_seen: None,
            alpha: None,
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
        next.alpha = previous.alpha.is_finite().then_some(previous.alpha);
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
    /// Errors beyond [`TRANSIENT`]·C are not integrated, and nothing is while a transient
    /// settles ([`Settling`]); the rest are clipped to ±[`ERROR_CLIP`]·C, and `u` stays in
    /// [`correction_range`] and below `ceiling` (anti-windup: at a bound the integrator holds).
    fn steer(&mut self, c: f64, measured: f64, ceiling: f64) {
        if self.results < DELAY || !measured.is_finite() {
            return;
        }
        let error = c - measured;
        if error.abs() >= TRANSIENT * c {
            if let Some(s) = &mut self.settling {
                // Not integrated, but the first error still sets the side it started from.
                s.crossed(error);
            }
            return;
        }
        if let Some(s) = &mut self.settling {
            if !s.settled(error, c) {
                return;
            }
            self.settling = None;
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
        let alpha = match self.alpha {
            Some(a) if (fit.alpha - a).abs() < ALPHA_JUMP => a + ALPHA_WEIGHT * (fit.alpha - a),
            _ => fit.alpha,
        };
        self.alpha = Some(alpha);
        // M: the catalogue that shows as many objects seen as the homes have, and sends
        // this interval's share of requests to objects no home had seen before (see
        // `catalogue`). The share goes to 0 as the catalogue is seen, and M to the objects seen.
        let seen = (fit.objects as f64).max(1.0);
        let total = report.summary.total_rate + report.untracked_rate;
        let curve = match self.last_seen.filter(|_| total > 0.0) {
            Some(before) => {
                // The interval's requests: the lookups counted, or the homes' rates where
                // those are more. Both fall short, in different phases: lookups before the
                // first result are not counted, and a new faint object's smoothed rate starts
                // far below its requests (from the rates alone M read 46 900 at 160 s for a
                // catalogue of 40 960, from the lookups 41 100).
                let requests = (report.lookups as f64).max(total * interval_s);
                let share = (seen - before).max(0.0) / requests;
                Some(objects_for_discovery(alpha, seen, share.min(1.0)))
            }
            // Taken over: the predecessor's M stands until the discovery share is measured.
            None if self.objects.value() > 0.0 => None,
            None => Some(objects_for_sum(&fit, 0.0, total).min(MAX_OVER_SEEN * seen)),
        };
        self.last_seen = Some(seen);
        if let Some(curve) = curve {
            self.objects.update(curve);
        }
        let objects = self.objects.value().max(seen);
        let nodes = (report.nodes as f64).max(1.0);
        let params = LevelParams {
            base: 2.0,
            nodes,
            objects,
            alpha,
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
            alpha,
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

#[cfg(test)]
mod tests {
    use super::*;

    /// A leader past its first results, fed `averages` one result at a time for C = 1: the
    /// correction after each.
    fn steered(averages: &[f64]) -> Vec<f64> {
        let mut leader = Leader::new(&ReplicationConfig::default());
        leader.results = DELAY;
        averages
            .iter()
            .map(|m| {
                leader.steer(1.0, *m, 10.0);
                leader.correction()
            })
            .collect()
    }

    #[test]
    fn a_first_convergence_is_not_integrated_until_it_settles() {
        // Coming down from far above C, faster than the loop would close it (×0.85 a result,
        // ×0.27 over LAG): nothing moves until the average is within 5 %.
        let mut ramp = vec![1.5];
        ramp.extend((0..10).map(|n| 1.0 + 0.19 * 0.85f64.powi(n)));
        ramp.push(0.97);
        let u = steered(&ramp);
        let within = ramp.iter().position(|m| *m - 1.0 <= SETTLED).unwrap();
        assert!(within > LAG as usize + 1, "the ramp outlasts LAG: {ramp:?}");
        assert!(u[..within].iter().all(|u| *u == 0.0), "{u:?}");
        // Then the errors are integrated: above C lowers u, 0.97 raises it again.
        assert!(u[within] < 0.0 && u.last() > Some(&u[within]), "{u:?}");
    }

    #[test]
    fn a_transient_that_crosses_c_is_over() {
        // A first convergence from above that lands below C: integrated from the crossing.
        let u = steered(&[1.5, 1.3, 0.9, 0.9]);
        assert_eq!(u[..2], [0.0, 0.0], "{u:?}");
        assert!(u[2] > 0.0 && u[3] > u[2], "{u:?}");
    }

    #[test]
    fn a_drift_past_the_band_is_not_a_new_transient() {
        // Settled at 1.0, then sliding under C: 0.79 is not integrated, but 0.85 after it is,
        // without waiting for a transient to settle.
        let u = steered(&[1.5, 1.1, 1.0, 0.9, 0.85, 0.79, 0.85]);
        assert_eq!(u[..3], [0.0, 0.0, 0.0], "{u:?}");
        assert!(u[3] > 0.0 && u[4] > u[3], "{u:?}");
        assert_eq!(u[5], u[4], "{u:?}");
        assert!(u[6] > u[5], "{u:?}");
    }

    #[test]
    fn a_transient_that_closes_slowly_is_model_error() {
        // Down by only 1 % a result from 15 % above C: integrated once LAG results show it.
        let slow: Vec<f64> = (0..12).map(|n| 1.15 - 0.01 * f64::from(n)).collect();
        let u = steered(&slow);
        let first = u.iter().position(|u| *u != 0.0).expect("integrated at last");
        assert_eq!(first, LAG as usize, "{u:?}");
        assert!(u.last() < Some(&u[first]), "{u:?}");
    }

    #[test]
    fn a_transient_that_stops_closing_is_model_error() {
        // Stuck 8 % above C: after LAG results without coming closer, integrated.
        let stuck =
            [1.3, 1.08, 1.081, 1.079, 1.082, 1.08, 1.081, 1.08, 1.082, 1.08, 1.081, 1.08, 1.08];
        let u = steered(&stuck);
        let first = u.iter().position(|u| *u != 0.0).expect("integrated at last");
        assert!(first > LAG as usize, "{u:?}");
        assert!(u[first] < 0.0 && u.last() < Some(&u[first]), "{u:?}");
        // Once settled, a jump beyond TRANSIENT (a popularity shift) is not integrated, and
        // what follows it inside the band is: no second wait.
        let mut leader = Leader::new(&ReplicationConfig::default());
        leader.results = DELAY;
        leader.settling = None;
        leader.steer(1.0, 1.04, 10.0);
        let held = leader.correction();
        assert!(held < 0.0);
        leader.steer(1.0, 1.4, 10.0);
        assert_eq!(leader.correction(), held);
        for m in [1.15, 1.1] {
            let before = leader.correction();
            leader.steer(1.0, m, 10.0);
            assert!(leader.correction() < before);
        }
    }
}
