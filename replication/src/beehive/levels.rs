//! Beehive's closed form (Ramasubramanian & Sirer, NSDI 2004, §2.1): how many of the most
//! popular objects to replicate at each level so that the average lookup costs `C` hops while
//! storing as few replicas as possible.
//!
//! # The model
//!
//! Objects are ranked by popularity (rank 1 is the most popular) and queries follow Zipf(α) over
//! `M` objects. An object at level `i` is stored on ≈ `N/bⁱ` nodes (on our ring, the `b = 2` arc
//! of `2¹²⁸/2ⁱ` ids ending at the key) and a lookup for it costs `i` levels. `xᵢ` is the fraction
//! of objects, most popular first, stored at level `i` or lower. The paper approximates the
//! share of queries that go to the top `x` of objects by the integral
//! `q(x) = (x^(1−α) − M^(α−1)) / (1 − M^(α−1))` (`ln(xM)/ln M` at α = 1), which makes the
//! average cost `Σ_{i<k'} (1 − q(xᵢ))`. Minimising the storage `Σ xᵢ/bⁱ` under that constraint
//! (Lagrange) gives `xᵢ^(1−α) ∝ dⁱ` with `d = b^((1−α)/α)` and so, with `C' = C·(1 − 1/M^(1−α))`,
//!
//! ```text
//! xᵢ = [ dⁱ·(k' − C') / (1 + d + … + d^(k'−1)) ]^(1/(1−α))   for 0 ≤ i < k'
//! xᵢ = 1                                                      for k' ≤ i ≤ k
//! ```
//!
//! where `k = ⌈log_b N⌉` and `k'` is the largest integer (searched upward from `⌊C'⌋ + 1`,
//! capped at `k`) with `x_(k'−1) < 1`.
//!
//! # α = 1
//!
//! At α = 1 the constraint is `Σ_{i<k'} −ln xᵢ = C·ln M` and `xᵢ ∝ bⁱ`, which gives exactly
//! `xᵢ = M^(−C/k')·b^(i − (k'−1)/2)` — the paper's formula, and also the limit of
//! the general form as α → 1. We only take that branch for `|1 − α| < 1e-9`: the general form is
//! evaluated as `ln xᵢ = (i·ln d + ln_1p(R/S)) / (1 − α)` with
//! `R = −C' − Σ expm1(m·ln d)`, whose terms all share one sign, so there is no cancellation and
//! α = 1 ± 1e-6 agrees with the limit to ~1e-6 relative (see the tests).
//!
//! # Beyond the paper
//!
//! * **Hop cost.** The paper counts one hop per level. Chord costs about `h = ½` hop per level,
//!   so we solve for the effective target `C/h` ([`LevelParams::hop_cost_per_level`]).
//! * **Empty low levels.** When `M·x₀ < 1` the closed form puts less than one object on level 0
//!   and credits it a *negative* share of queries (`q < 0` below one object), so the real
//!   average would exceed `C`. The optimum then leaves level 0 empty (cost: exactly one level
//!   for every query) and solves the same closed form over levels `1..k` for target `C − 1`;
//!   we repeat until the lowest used level holds at least one object. The paper's vectors never
//!   reach this branch; [`LevelSolution::empty_levels`] says when it was taken.
//! * **Degenerate targets.** `C/h ≥ k`: nothing needs replicating (every object at level `k`).
//!   `C = 0`: everything everywhere. `M = 1`: the one object sits at level `⌊C/h⌋`.
//! * **Storage budget.** [`solve_for_budget`] finds the smallest `C` whose storage fits.

use serde::{Deserialize, Serialize};
use thiserror::Error;

/// Chord's measured cost of one level, in hops (each hop at least halves the distance, and a
/// random start sits halfway on average).
pub const DEFAULT_HOP_COST: f64 = 0.5;

/// `|1 − α|` below which the α = 1 closed form is used.
pub const ALPHA_ONE_EPSILON: f64 = 1e-9;

/// Absolute tolerance, in hops, of [`solve_for_budget`]: far below any measurable difference.
pub const BUDGET_TOLERANCE: f64 = 1e-6;

/// Largest α accepted. Beyond it one object takes essentially all queries and `M^(α−1)`
/// overflows for large `M`.
pub const MAX_ALPHA: f64 = 10.0;

/// Largest object count accepted (keeps `M^(α−1)` finite for every accepted α).
pub const MAX_OBJECTS: f64 = 1e15;

/// Largest node count accepted: ids are `u128`, so no ring has more than 2¹²⁸ nodes.
pub const MAX_NODES: f64 = 3.402_823_669_209_385e38;

/// Why the closed form refused its inputs. Nothing is stored on error: the caller keeps its
/// previous solution.
#[derive(Debug, Clone, PartialEq, Error)]
pub enum LevelError {
    /// A field is NaN or infinite.
    #[error("{field} must be a finite number (got {value})")]
    NotFinite { field: &'static str, value: f64 },
    /// α ≤ 0 is not a Zipf popularity skew; α = 0 (uniform) has no popular objects to favour.
    #[error("alpha must be > 0 (got {0}); measure it with the Zipf fit")]
    AlphaNotPositive(f64),
    /// α too large for the model to be meaningful or finite.
    #[error("alpha must be <= {MAX_ALPHA} (got {0})")]
    AlphaTooLarge(f64),
    /// Fewer than one node.
    #[error("nodes must be >= 1 (got {0})")]
    TooFewNodes(f64),
    /// More nodes than ring ids.
    #[error("nodes must be <= 2^128 (got {0})")]
    TooManyNodes(f64),
    /// Fewer than one object.
    #[error("objects must be >= 1 (got {0})")]
    TooFewObjects(f64),
    /// More objects than the arithmetic is checked for.
    #[error("objects must be <= {MAX_OBJECTS} (got {0})")]
    TooManyObjects(f64),
    /// A negative hop target.
    #[error("target_hops must be >= 0 (got {0})")]
    NegativeTarget(f64),
    /// Base below 2: levels would not shrink.
    #[error("base must be >= 2 (got {0}); our ring uses 2")]
    BaseTooSmall(f64),
    /// Hop cost per level must be positive (0.5 for Chord, 1 for the paper's model).
    #[error("hop_cost_per_level must be > 0 (got {0}); use 0.5 for Chord")]
    HopCostNotPositive(f64),
    /// A storage budget of zero or less (or NaN) cannot hold even the home copies.
    #[error("budget must be a positive number of objects per node (got {0})")]
    BudgetNotPositive(f64),
    /// Even with no replication (every object on its home only) storage exceeds the budget.
    #[error("budget {budget} objects/node is below the minimum {minimum} (home copies alone)")]
    BudgetTooSmall { budget: f64, minimum: f64 },
    /// The arithmetic produced a non-finite value; should not happen for validated inputs.
    #[error("the closed form produced a non-finite value for these parameters")]
    Numerical,
}

/// Inputs of the closed form. `nodes` and `objects` are `f64` because they are estimates.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct LevelParams {
    /// `b`: how much each level shrinks the replica set. Our ring's arcs halve: 2.
    pub base: f64,
    /// `N`: nodes in the ring.
    pub nodes: f64,
    /// `M`: objects with measurable popularity.
    pub objects: f64,
    /// Zipf α of the query distribution.
    pub alpha: f64,
    /// `C`: the average lookup cost to reach, in hops.
    pub target_hops: f64,
    /// `h`: hops per level; the closed form is solved for `C/h`.
    pub hop_cost_per_level: f64,
}

impl LevelParams {
    /// Parameters for our Chord ring: base 2, [`DEFAULT_HOP_COST`].
    pub fn chord(nodes: f64, objects: f64, alpha: f64, target_hops: f64) -> Self {
        LevelParams {
            base: 2.0,
            nodes,
            objects,
            alpha,
            target_hops,
            hop_cost_per_level: DEFAULT_HOP_COST,
        }
    }

    /// Checks every field, naming the first one that is wrong and what to fix.
    pub fn validate(&self) -> Result<(), LevelError> {
        for (field, value) in [
            ("base", self.base),
            ("nodes", self.nodes),
            ("objects", self.objects),
            ("alpha", self.alpha),
            ("target_hops", self.target_hops),
            ("hop_cost_per_level", self.hop_cost_per_level),
        ] {
            if !value.is_finite() {
                return Err(LevelError::NotFinite { field, value });
            }
        }
        let p = self;
        match () {
            _ if p.base < 2.0 => Err(LevelError::BaseTooSmall(p.base)),
            _ if p.nodes < 1.0 => Err(LevelError::TooFewNodes(p.nodes)),
            _ if p.nodes > MAX_NODES => Err(LevelError::TooManyNodes(p.nodes)),
            _ if p.objects < 1.0 => Err(LevelError::TooFewObjects(p.objects)),
            _ if p.objects > MAX_OBJECTS => Err(LevelError::TooManyObjects(p.objects)),
            _ if p.alpha <= 0.0 => Err(LevelError::AlphaNotPositive(p.alpha)),
            _ if p.alpha > MAX_ALPHA => Err(LevelError::AlphaTooLarge(p.alpha)),
            _ if p.target_hops < 0.0 => Err(LevelError::NegativeTarget(p.target_hops)),
            _ if p.hop_cost_per_level <= 0.0 => {
                Err(LevelError::HopCostNotPositive(p.hop_cost_per_level))
            }
            _ => Ok(()),
        }
    }

    /// `k = ⌈log_b N⌉`: the level at which an object lives on its home alone.
    pub fn top_level(&self) -> usize {
        if !(self.nodes > 1.0 && self.base >= 2.0) {
            return 0;
        }
        // The 1e-9 keeps exact powers (N = 1024, b = 2) from rounding up to k + 1.
        let k = (self.nodes.ln() / self.base.ln() - 1e-9).ceil();
        if k.is_finite() && k > 0.0 {
            k as usize
        } else {
            0
        }
    }
}

/// The solved levels: `x[i]` is the fraction of objects (most popular first) at level `i` or
/// lower, non-decreasing, `x[k] = 1`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LevelSolution {
    /// The inputs this was solved for (with the `target_hops` actually used).
    pub params: LevelParams,
    /// `k'`: levels `k'..=k` hold every object (`x = 1`).
    pub k_prime: usize,
    /// `k = ⌈log_b N⌉`: the home-only level.
    pub k: usize,
    /// Levels `0..empty_levels` hold no object (see the module doc, "Empty low levels").
    pub empty_levels: usize,
    /// `x[i]` for `0 ≤ i ≤ k`.
    pub x: Vec<f64>,
}

/// Solves the closed form for `params` (see the module doc).
pub fn solve(params: &LevelParams) -> Result<LevelSolution, LevelError> {
    params.validate()?;
    let k = params.top_level();
    let target = params.target_hops / params.hop_cost_per_level;
    let (k_prime, empty_levels, x) = if k == 0 {
        (0, 0, vec![1.0])
    } else if target >= k as f64 {
        (k, k, step(k, k))
    } else if params.objects.ln() < 1e-12 {
        let level = (target.floor() as usize).min(k);
        (level, level, step(k, level))
    } else {
        closed_form(params, k, target)?
    };
    if x.iter().any(|v| !v.is_finite()) {
        return Err(LevelError::Numerical);
    }
    Ok(LevelSolution { params: *params, k_prime, k, empty_levels, x })
}

/// `x = 0` below `level`, 1 from it on.
fn step(k: usize, level: usize) -> Vec<f64> {
    (0..=k).map(|i| if i < level { 0.0 } else { 1.0 }).collect()
}

/// The closed form with the empty-low-levels extension: returns `(k', empty, x)`.
fn closed_form(
    p: &LevelParams,
    k: usize,
    target: f64,
) -> Result<(usize, usize, Vec<f64>), LevelError> {
    for empty in 0..k {
        let sub_target = target - empty as f64;
        if sub_target <= 0.0 {
            return Ok((empty, empty, step(k, empty)));
        }
        let (n, xs) = sub_problem(p, sub_target, k - empty).ok_or(LevelError::Numerical)?;
        // Fewer than one object on the lowest level: empty it and retry one level up. With one
        // level left this cannot happen (q(x) = 1 − target > 0 there), so the loop ends.
        if xs[0] * p.objects < 1.0 && n > 1 {
            continue;
        }
        let mut x = vec![0.0; empty];
        x.extend(xs);
        x.resize(k + 1, 1.0);
        return Ok((empty + n, empty, x));
    }
    Err(LevelError::Numerical)
}

/// Solves over `n` consecutive levels (relative indices `0..n`) for `target` hops, choosing the
/// largest `n ≤ max_levels` whose last fraction stays below 1. `None` if none does.
fn sub_problem(p: &LevelParams, target: f64, max_levels: usize) -> Option<(usize, Vec<f64>)> {
    let e = 1.0 - p.alpha;
    let ln_m = p.objects.ln();
    // C' (0 in the α = 1 limit, where the search starts at one level).
    let c_prime = if e.abs() < ALPHA_ONE_EPSILON { 0.0 } else { target * -(-e * ln_m).exp_m1() };
    let start = if c_prime < 0.0 { 1 } else { (c_prime.floor() as usize).saturating_add(1) };
    let mut best = None;
    for n in start..=max_levels {
        let xs = fractions(p, target, c_prime, n);
        if xs.last().is_some_and(|&last| last < 1.0) {
            best = Some((n, xs));
        } else {
            // Validity is contiguous in n (checked over a wide parameter scan), so the first
            // failure ends the search and `best` is the largest valid n.
            break;
        }
    }
    best
}

/// `xᵢ` for `i in 0..n` given `C'`, evaluated in logs (see the module doc for why).
fn fractions(p: &LevelParams, target: f64, c_prime: f64, n: usize) -> Vec<f64> {
    let e = 1.0 - p.alpha;
    let ln_b = p.base.ln();
    let nf = n as f64;
    if e.abs() < ALPHA_ONE_EPSILON {
        let ln_m = p.objects.ln();
        return (0..n)
            .map(|i| (-(target / nf) * ln_m + ln_b * (i as f64 - (nf - 1.0) / 2.0)).exp())
            .collect();
    }
    let ln_d = e / p.alpha * ln_b;
    // ln((k' − C') / S), S = Σ_{m<n} d^m.
    let ln_ratio = if e.abs() < 0.5 {
        // |m·ln d| < ln N here, so exp cannot overflow; expm1 keeps the O(1−α) terms exact.
        let s: f64 = (0..n).map(|m| (m as f64 * ln_d).exp()).sum();
        let r = -c_prime - (0..n).map(|m| (m as f64 * ln_d).exp_m1()).sum::<f64>();
        (r / s).ln_1p()
    } else {
        let max = (0..n).map(|m| m as f64 * ln_d).fold(f64::MIN, f64::max);
        let lse = max + (0..n).map(|m| (m as f64 * ln_d - max).exp()).sum::<f64>().ln();
        (nf - c_prime).ln() - lse
    };
    (0..n).map(|i| ((i as f64 * ln_d + ln_ratio) / e).exp()).collect()
}

impl LevelSolution {
    /// The level of the object of `rank` (1-based; 0 is read as 1): the smallest `i` with
    /// `rank ≤ M·xᵢ`, or `k` for ranks beyond `M`.
    pub fn level_for_rank(&self, rank: u64) -> usize {
        let rank = rank.max(1) as f64;
        self.x.iter().position(|&xi| rank <= self.params.objects * xi + 1e-9).unwrap_or(self.k)
    }

    /// The paper's continuous-Zipf share of queries that go to the top `x` of objects, clamped
    /// to `[0, 1]` (it is 0 up to one object, where the integral starts).
    pub fn query_share(&self, x: f64) -> f64 {
        let m = self.params.objects;
        if x.is_nan() || x * m <= 1.0 {
            return 0.0;
        }
        if x >= 1.0 {
            return 1.0;
        }
        let e = 1.0 - self.params.alpha;
        let (ln_xm, ln_m) = ((x * m).ln(), m.ln());
        let share = if e.abs() < ALPHA_ONE_EPSILON {
            ln_xm / ln_m
        } else {
            (-e * ln_m).exp() * (e * ln_xm).exp_m1() / -(-e * ln_m).exp_m1()
        };
        share.clamp(0.0, 1.0)
    }

    /// The model's share of queries answered at each level (sums to 1).
    pub fn level_query_shares(&self) -> Vec<f64> {
        let mut previous = 0.0;
        self.x
            .iter()
            .map(|&xi| {
                let q = self.query_share(xi);
                let share = q - previous;
                previous = q;
                share
            })
            .collect()
    }

    /// Average lookup cost under the model: Σ share(level i) · i · h. Equals the target `C`
    /// whenever `C/h < k` (and `M > 1`); otherwise it is what no replication (or the single
    /// object's level) costs, which is at most `C`.
    pub fn model_average_hops(&self) -> f64 {
        let h = self.params.hop_cost_per_level;
        self.level_query_shares().iter().enumerate().map(|(i, share)| share * i as f64 * h).sum()
    }

    /// Storage cost: copies held per node, `Σᵢ M·(xᵢ − xᵢ₋₁)·holdersᵢ / N`. An object at a
    /// replicated level `0 < i < top` lives on the ≈ `N/bⁱ` nodes of its arc and on its home,
    /// which follows the key and so lies just outside the arc (Pastry's prefix levels, the
    /// paper's, include the home); level 0 is every node, the top level the home alone. Home
    /// copies are included. `nodes` below 1 (or NaN) is read as 1.
    pub fn replicas_per_node(&self, nodes: f64) -> f64 {
        let n = if nodes >= 1.0 { nodes } else { 1.0 };
        let (m, b) = (self.params.objects, self.params.base);
        let top = self.params.top_level();
        let mut previous = 0.0;
        let mut total = 0.0;
        for (i, &xi) in self.x.iter().enumerate() {
            let holders = match i {
                0 => n,
                i if i >= top => 1.0,
                i => (n / b.powi(i as i32) + 1.0).min(n),
            };
            total += m * (xi - previous) * holders;
            previous = xi;
        }
        total / n
    }
}

/// The smallest target `C` (within [`BUDGET_TOLERANCE`] hops) whose solution stores at most
/// `budget` replicas per node, and that solution. `params.target_hops` is ignored.
///
/// Storage falls monotonically as `C` grows (a looser target never needs more replicas), so
/// bisection over `[0, k·h]` finds the boundary: the returned `C` fits, `C − tolerance` does
/// not. `C = 0` (everything everywhere) is returned when the budget holds all `M` objects.
pub fn solve_for_budget(
    params: &LevelParams,
    budget: f64,
) -> Result<(f64, LevelSolution), LevelError> {
    if budget.is_nan() || budget <= 0.0 {
        return Err(LevelError::BudgetNotPositive(budget));
    }
    let at = |target_hops: f64| solve(&LevelParams { target_hops, ..*params });
    let lowest = at(0.0)?;
    if lowest.replicas_per_node(params.nodes) <= budget {
        return Ok((0.0, lowest));
    }
    let mut high = params.top_level() as f64 * params.hop_cost_per_level;
    let cheapest = at(high)?;
    let minimum = cheapest.replicas_per_node(params.nodes);
    if minimum > budget {
        return Err(LevelError::BudgetTooSmall { budget, minimum });
    }
    let mut best = cheapest;
    let mut low = 0.0;
    // Each step halves the bracket; 200 steps is far more than f64 needs.
    for _ in 0..200 {
        if high - low <= BUDGET_TOLERANCE {
            break;
        }
        let mid = low + (high - low) / 2.0;
        let solution = at(mid)?;
        if solution.replicas_per_node(params.nodes) <= budget {
            high = mid;
            best = solution;
        } else {
            low = mid;
        }
    }
    Ok((high, best))
}

/// Rate thresholds: `tᵢ` is the rate of the last object at level ≤ `i` (rank `⌊M·xᵢ⌋`), so a home
/// puts an object at the smallest `i` with `rate ≥ tᵢ` ([`level_for_rate`]).
///
/// We take `⌊M·xᵢ⌋` rather than `⌈M·xᵢ⌉` so that thresholds agree with
/// [`LevelSolution::level_for_rank`] (rank `r` is at level ≤ `i` iff `r ≤ M·xᵢ`). A level that
/// holds no object gets `+∞`; a NaN rate is read as `+∞` and a negative one as 0; the result is
/// made non-increasing so a noisy `rank_rate` cannot invert levels.
pub fn thresholds(solution: &LevelSolution, rank_rate: impl Fn(u64) -> f64) -> Vec<f64> {
    let m = solution.params.objects;
    let mut previous = f64::INFINITY;
    solution
        .x
        .iter()
        .map(|&xi| {
            let last_rank = (m * xi + 1e-9).floor();
            let t = if last_rank >= 1.0 {
                let rate = rank_rate(last_rank as u64);
                if rate.is_nan() {
                    f64::INFINITY
                } else {
                    rate.max(0.0)
                }
            } else {
                f64::INFINITY
            };
            previous = previous.min(t);
            previous
        })
        .collect()
}

/// The level for an object of `rate`: the smallest `i` with `rate ≥ tᵢ`; objects below every
/// threshold (new or unmeasured ones, NaN) go to the last level, the home alone.
pub fn level_for_rate(thresholds: &[f64], rate: f64) -> usize {
    let last = thresholds.len().saturating_sub(1);
    if rate.is_nan() {
        return last;
    }
    thresholds.iter().position(|&t| rate >= t).unwrap_or(last)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn paper(base: f64, target: f64) -> LevelParams {
        LevelParams {
            base,
            nodes: 1024.0,
            objects: 40_960.0,
            alpha: 0.91,
            target_hops: target,
            hop_cost_per_level: 1.0,
        }
    }

    #[test]
    fn validate_names_the_bad_field() {
        let ok = paper(2.0, 1.0);
        assert_eq!(ok.validate(), Ok(()));
        let cases = [
            (LevelParams { alpha: 0.0, ..ok }, "alpha"),
            (LevelParams { alpha: f64::NAN, ..ok }, "alpha"),
            (LevelParams { nodes: 0.5, ..ok }, "nodes"),
            (LevelParams { objects: 0.0, ..ok }, "objects"),
            (LevelParams { target_hops: -1.0, ..ok }, "target_hops"),
            (LevelParams { base: 1.5, ..ok }, "base"),
            (LevelParams { hop_cost_per_level: 0.0, ..ok }, "hop_cost"),
            (LevelParams { nodes: f64::INFINITY, ..ok }, "nodes"),
        ];
        for (params, field) in cases {
            let err = solve(&params).unwrap_err();
            assert!(err.to_string().contains(field), "{err} should name {field}");
        }
    }

    #[test]
    fn top_level_is_exact_for_powers() {
        assert_eq!(paper(2.0, 1.0).top_level(), 10);
        assert_eq!(paper(16.0, 1.0).top_level(), 3);
        assert_eq!(LevelParams { nodes: 1.0, ..paper(2.0, 1.0) }.top_level(), 0);
        assert_eq!(LevelParams { nodes: 1025.0, ..paper(2.0, 1.0) }.top_level(), 11);
    }

    #[test]
    fn degenerate_targets() {
        let everywhere = solve(&paper(2.0, 0.0)).unwrap();
        assert!(everywhere.x.iter().all(|&x| x == 1.0));
        let nothing = solve(&paper(2.0, 10.0)).unwrap();
        assert_eq!(nothing.level_for_rank(1), 10);
        assert_eq!(nothing.model_average_hops(), 10.0);
        let one = solve(&LevelParams { objects: 1.0, ..paper(2.0, 2.5) }).unwrap();
        assert_eq!(one.level_for_rank(1), 2);
        let single_node = solve(&LevelParams { nodes: 1.0, ..paper(2.0, 1.0) }).unwrap();
        assert_eq!(single_node.x, vec![1.0]);
    }

    #[test]
    fn empty_levels_keep_the_average() {
        // Small M and a loose target drive M·x₀ below one object.
        let p = LevelParams { objects: 50.0, ..paper(2.0, 6.0) };
        let s = solve(&p).unwrap();
        assert!(s.empty_levels > 0, "{s:?}");
        assert!(s.x[s.empty_levels] * p.objects >= 1.0);
        assert!((s.model_average_hops() - 6.0).abs() < 1e-9);
    }

    #[test]
    fn thresholds_and_rates_agree_with_ranks() {
        let s = solve(&paper(2.0, 1.0)).unwrap();
        let rate = |r: u64| 1000.0 / (r as f64).powf(0.91);
        let t = thresholds(&s, rate);
        assert!(t.windows(2).all(|w| w[0] >= w[1]));
        for rank in [1, 2, 100, 1975, 1976, 4231, 9000, 19_413, 19_414, 40_960] {
            assert_eq!(level_for_rate(&t, rate(rank)), s.level_for_rank(rank), "rank {rank}");
        }
        assert_eq!(level_for_rate(&t, f64::NAN), 10);
        assert_eq!(level_for_rate(&t, 0.0), 10);
        assert_eq!(level_for_rate(&[], 1.0), 0);
    }
}
