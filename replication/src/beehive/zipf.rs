//! Fitting Zipf's α (and reading `M` and the rank→rate curve) from observed per-object rates.
//!
//! Homes summarise the rates of the objects they own in a [`PopularitySummary`]: total rate,
//! object count, a [`RateHistogram`] of object rates and the exact top entries. Summaries
//! merge (commutative, associative up to float rounding in the sums), so they can be combined
//! hop by hop on the way to the leader in any order. The leader [`fit`]s α by least squares of
//! `ln rate` on `ln rank`.
//!
//! # Why the histogram is enough for the fit
//!
//! Ranks are positions in rate order, and the histogram knows exactly how many objects lie in
//! each rate bin, so it knows the exact rank range of every bin. Each non-empty bin gives one
//! point `(ln mid-rank, ln mean-rate)`; bins are equally spaced in `ln rate`, so every decade of
//! popularity weighs the same — the head does not drown in thousands of tail objects and the
//! tail does not drown in individual head objects. The top list adds keys (hot objects for
//! the dashboard), not rank information.
//!
//! # The noisy tail
//!
//! An object seen `n` times has a relative count error of about `1/√n`, and objects never seen
//! have no rate at all. Ranking by noisy counts bends the tail: objects that happened to draw
//! few requests fall below the curve (seeded α = 0.7 traffic over 10 000 objects fits 0.77
//! with every bin, 0.70 without the noisy ones), and where counts are ones and zeros the curve
//! flattens and ends early. The fit therefore ignores bins whose mean rate is below
//! [`FitConfig::min_rate`], which the caller sets to the rate of ~10 observations over its
//! measurement window (±30 %, a tenth of a decade in log space). Objects below that rate still
//! count in `M` and in the ranks — they just place no points.

use serde::{Deserialize, Serialize};
use thiserror::Error;

/// Lowest rate with a regular bin; lower (and zero) rates go to the underflow bin.
pub const HIST_MIN_RATE: f64 = 1e-3;
/// Decades covered by regular bins: rates in `[1e-3, 1e7)`.
pub const HIST_DECADES: usize = 10;
/// Bins per decade: adjacent bins differ by a factor 10^(1/8) ≈ 1.33.
pub const HIST_BINS_PER_DECADE: usize = 8;
/// Underflow bin + regular bins + overflow bin.
pub const HIST_BINS: usize = HIST_DECADES * HIST_BINS_PER_DECADE + 2;
/// Length of a summary's exact top list (24 bytes an entry on the wire).
pub const SUMMARY_TOP_LEN: usize = 64;
/// Default clamp for the fitted α: outside it the traffic is not Zipf-like enough to trust.
pub const ALPHA_RANGE: (f64, f64) = (0.3, 2.0);

/// Log-binned counts of object rates, with the sum of rates per bin (so each bin's mean rate
/// is exact). Fixed bins, so merging is element-wise addition.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(try_from = "RawHistogram")]
pub struct RateHistogram {
    counts: Vec<u64>,
    sums: Vec<f64>,
}

/// The wire form, checked before it becomes a [`RateHistogram`].
#[derive(Deserialize)]
struct RawHistogram {
    counts: Vec<u64>,
    sums: Vec<f64>,
}

impl TryFrom<RawHistogram> for RateHistogram {
    type Error = String;
    fn try_from(raw: RawHistogram) -> Result<Self, String> {
        if raw.counts.len() != HIST_BINS || raw.sums.len() != HIST_BINS {
            return Err(format!("histogram must have {HIST_BINS} bins"));
        }
        if raw.sums.iter().any(|s| !s.is_finite() || *s < 0.0) {
            return Err("histogram sums must be finite and non-negative".into());
        }
        Ok(RateHistogram { counts: raw.counts, sums: raw.sums })
    }
}

impl Default for RateHistogram {
    fn default() -> Self {
        RateHistogram { counts: vec![0; HIST_BINS], sums: vec![0.0; HIST_BINS] }
    }
}

impl RateHistogram {
    /// The bin of `rate`: 0 for underflow (including 0), `HIST_BINS − 1` for overflow.
    pub fn bin_of(rate: f64) -> usize {
        if rate.is_nan() || rate < HIST_MIN_RATE {
            return 0;
        }
        let position = (rate / HIST_MIN_RATE).log10() * HIST_BINS_PER_DECADE as f64;
        (position.floor() as usize).saturating_add(1).min(HIST_BINS - 1)
    }

    /// Adds one object of `rate`. NaN, infinite and negative rates are ignored.
    pub fn record(&mut self, rate: f64) {
        if !rate.is_finite() || rate < 0.0 {
            return;
        }
        let bin = Self::bin_of(rate);
        self.counts[bin] = self.counts[bin].saturating_add(1);
        self.sums[bin] += rate;
    }

    /// Adds `other` bin by bin.
    pub fn merge(&mut self, other: &RateHistogram) {
        for (mine, theirs) in self.counts.iter_mut().zip(&other.counts) {
            *mine = mine.saturating_add(*theirs);
        }
        for (mine, theirs) in self.sums.iter_mut().zip(&other.sums) {
            *mine += *theirs;
        }
    }

    /// Objects recorded.
    pub fn objects(&self) -> u64 {
        self.counts.iter().fold(0, |a, c| a.saturating_add(*c))
    }

    /// The measured rate of the object at `rank` (1-based), read off the bins: within a bin,
    /// ranks are spread evenly in log rate between the bin's edges. `None` for ranks in the
    /// underflow bin (rates below [`HIST_MIN_RATE`], zeros included) or past the last object.
    pub fn rate_at_rank(&self, rank: u64) -> Option<f64> {
        let mut before = 0u64;
        for bin in (1..HIST_BINS).rev() {
            let n = self.counts[bin];
            if n == 0 {
                continue;
            }
            if rank.max(1) <= before.saturating_add(n) {
                let step = 1.0 / HIST_BINS_PER_DECADE as f64;
                let low = HIST_MIN_RATE * 10f64.powf((bin - 1) as f64 * step);
                if bin == HIST_BINS - 1 {
                    return Some(self.sums[bin] / n as f64);
                }
                // The share of the bin above this rank, its midpoint in the bin's rank range.
                let above = (rank.max(1) - before) as f64 - 0.5;
                let from_top = above / n as f64;
                return Some(low * 10f64.powf(step * (1.0 - from_top)));
            }
            before = before.saturating_add(n);
        }
        None
    }

    /// `(count, mean rate)` per non-empty bin, most popular bin first.
    pub fn bins_descending(&self) -> impl Iterator<Item = (u64, f64)> + '_ {
        self.counts
            .iter()
            .zip(&self.sums)
            .rev()
            .filter(|(c, _)| **c > 0)
            .map(|(c, s)| (*c, s / *c as f64))
    }
}

/// What a home (or a subtree of homes, once merged) knows about popularity. Fields are public
/// plain data; [`merge`](Self::merge) re-establishes the invariants (finite non-negative rates,
/// top sorted by rate then key, no duplicate keys, at most [`SUMMARY_TOP_LEN`] entries).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct PopularitySummary {
    /// Sum of object rates.
    pub total_rate: f64,
    /// Objects owned, including those with rate 0 (this is the fit's `M`).
    pub objects: u64,
    /// Rates of those objects.
    pub histogram: RateHistogram,
    /// The most popular objects, `(key, rate)`, highest rate first.
    pub top: Vec<(u128, f64)>,
}

fn sane(rate: f64) -> f64 {
    if rate.is_finite() && rate > 0.0 {
        rate
    } else {
        0.0
    }
}

impl PopularitySummary {
    /// Adds one object the home owns. A NaN or negative rate counts the object with rate 0.
    pub fn record(&mut self, key: u128, rate: f64) {
        let rate = sane(rate);
        self.total_rate += rate;
        self.objects = self.objects.saturating_add(1);
        self.histogram.record(rate);
        let full = self.top.len() >= SUMMARY_TOP_LEN;
        let beaten = |last: &(u128, f64)| last.1 > rate || (last.1 == rate && last.0 < key);
        if rate > 0.0 && !(full && self.top.last().is_some_and(beaten)) {
            // Rare after the first few objects: only a new top entry pays the O(L) insert.
            self.top.push((key, rate));
            normalize_top(&mut self.top);
        }
    }

    /// A summary of `(key, rate)` pairs.
    pub fn from_rates(rates: impl IntoIterator<Item = (u128, f64)>) -> Self {
        let mut summary = PopularitySummary::default();
        for (key, rate) in rates {
            summary.record(key, rate);
        }
        summary
    }

    /// Folds `other` into `self`. Commutative exactly; associative except for float rounding in
    /// `total_rate` and the histogram sums. A key in both top lists keeps its larger rate (keys
    /// have one home, so this only happens while a home moves; max does not double count and,
    /// unlike a sum, stays associative under truncation).
    pub fn merge(&mut self, other: &PopularitySummary) {
        self.total_rate = sane(self.total_rate) + sane(other.total_rate);
        self.objects = self.objects.saturating_add(other.objects);
        self.histogram.merge(&other.histogram);
        self.top.extend_from_slice(&other.top);
        normalize_top(&mut self.top);
    }

    /// The measured rate at `rank` (1-based): exact within the top list, read off the
    /// histogram below it; `None` where the rates are too small to bin.
    pub fn rate_at_rank(&self, rank: u64) -> Option<f64> {
        match self.top.get(rank.max(1) as usize - 1) {
            Some((_, rate)) => Some(*rate),
            None => self.histogram.rate_at_rank(rank),
        }
    }

    /// Fits α and the rank→rate curve; see [`fit`].
    pub fn fit(&self, config: &FitConfig) -> Result<ZipfFit, FitError> {
        fit(self, config)
    }
}

/// Sorts by rate (desc) then key, keeps the larger rate per key, drops bad rates, truncates.
fn normalize_top(top: &mut Vec<(u128, f64)>) {
    top.retain(|(_, r)| r.is_finite() && *r > 0.0);
    // Key first, largest rate first, so dedup keeps the max.
    top.sort_by(|a, b| a.0.cmp(&b.0).then(b.1.total_cmp(&a.1)));
    top.dedup_by_key(|e| e.0);
    top.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
    top.truncate(SUMMARY_TOP_LEN);
}

/// How to fit.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct FitConfig {
    /// Bins with a mean rate below this place no point (see the module doc, "The noisy tail").
    /// Set it to `10 / window` for rates measured over `window`.
    pub min_rate: f64,
    /// The fitted α is clamped to `[min_alpha, max_alpha]`.
    pub min_alpha: f64,
    /// See `min_alpha`.
    pub max_alpha: f64,
}

impl Default for FitConfig {
    /// Every bin with a positive rate; α clamped to [`ALPHA_RANGE`].
    fn default() -> Self {
        FitConfig { min_rate: 0.0, min_alpha: ALPHA_RANGE.0, max_alpha: ALPHA_RANGE.1 }
    }
}

/// Why a fit failed; the leader keeps its previous fit.
#[derive(Debug, Clone, PartialEq, Error)]
pub enum FitError {
    /// Fewer than two bins above `min_rate` (or all at one rank): no slope to measure.
    #[error("not enough popularity data to fit Zipf: {points} usable bins, need 2")]
    NotEnoughData { points: usize },
    /// The config is unusable.
    #[error("fit config invalid: need finite 0 < min_alpha <= max_alpha and min_rate >= 0")]
    InvalidConfig,
}

/// A fitted Zipf curve: `rate(rank) = rank_one_rate · rank^(−α)`.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct ZipfFit {
    /// The fitted (and clamped) α.
    pub alpha: f64,
    /// `M`: objects the homes reported, including unpopular ones.
    pub objects: u64,
    /// Sum of all object rates.
    pub total_rate: f64,
    /// The curve's rate at rank 1.
    pub rank_one_rate: f64,
    /// Histogram bins the regression used.
    pub points: usize,
    /// Whether α hit the clamp.
    pub clamped: bool,
}

impl ZipfFit {
    /// The fitted curve's rate at `rank` (1-based; 0 is read as 1).
    pub fn rate_of_rank(&self, rank: u64) -> f64 {
        self.rank_one_rate * (rank.max(1) as f64).powf(-self.alpha)
    }
}

/// Least-squares fit of `ln rate = c − α·ln rank` over the histogram bins (see the module doc).
pub fn fit(summary: &PopularitySummary, config: &FitConfig) -> Result<ZipfFit, FitError> {
    let (lo, hi) = (config.min_alpha, config.max_alpha);
    if !(lo > 0.0 && lo <= hi && hi.is_finite() && config.min_rate >= 0.0) {
        return Err(FitError::InvalidConfig);
    }
    let mut points = Vec::new();
    let mut ranks_before = 0.0;
    for (count, mean) in summary.histogram.bins_descending() {
        let n = count as f64;
        if mean > 0.0 && mean >= config.min_rate {
            points.push(((ranks_before + (n + 1.0) / 2.0).ln(), mean.ln()));
        }
        ranks_before += n;
    }
    if points.len() < 2 {
        return Err(FitError::NotEnoughData { points: points.len() });
    }
    let count = points.len() as f64;
    let mean_x = points.iter().map(|p| p.0).sum::<f64>() / count;
    let mean_y = points.iter().map(|p| p.1).sum::<f64>() / count;
    let sxx: f64 = points.iter().map(|p| (p.0 - mean_x).powi(2)).sum();
    let sxy: f64 = points.iter().map(|p| (p.0 - mean_x) * (p.1 - mean_y)).sum();
    if sxx.is_nan() || sxx <= 0.0 {
        return Err(FitError::NotEnoughData { points: points.len() });
    }
    let raw = -sxy / sxx;
    let alpha = raw.clamp(lo, hi);
    // With α fixed (clamped or not) the least-squares intercept is ȳ + α·x̄.
    let intercept = mean_y + alpha * mean_x;
    Ok(ZipfFit {
        alpha,
        objects: summary.objects.max(summary.histogram.objects()),
        total_rate: sane(summary.total_rate),
        rank_one_rate: intercept.exp(),
        points: points.len(),
        clamped: alpha != raw,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bins_are_eight_per_decade() {
        assert_eq!(RateHistogram::bin_of(0.0), 0);
        assert_eq!(RateHistogram::bin_of(f64::NAN), 0);
        assert_eq!(RateHistogram::bin_of(1e-3), 1);
        assert_eq!(RateHistogram::bin_of(1e-2 * 1.0001), 9);
        assert_eq!(RateHistogram::bin_of(1e9), HIST_BINS - 1);
    }

    #[test]
    fn exact_curve_is_recovered() {
        let summary =
            PopularitySummary::from_rates((1..=5000u128).map(|r| (r, 1e5 * (r as f64).powf(-0.8))));
        let fit = summary.fit(&FitConfig::default()).unwrap();
        assert!((fit.alpha - 0.8).abs() < 0.02, "{fit:?}");
        assert!((fit.rate_of_rank(10) / (1e5 * 10f64.powf(-0.8)) - 1.0).abs() < 0.1);
        assert_eq!(fit.objects, 5000);
        assert_eq!(summary.top.len(), SUMMARY_TOP_LEN);
        assert_eq!(summary.top[0], (1, 1e5));
    }

    #[test]
    fn clamps_and_refuses() {
        let flat = PopularitySummary::from_rates((1..=100u128).map(|r| (r, 5.0)));
        let err = flat.fit(&FitConfig::default()).unwrap_err();
        assert_eq!(err, FitError::NotEnoughData { points: 1 });
        let steep =
            PopularitySummary::from_rates((1..=100u128).map(|r| (r, 1e6 * (r as f64).powi(-4))));
        let fit = steep.fit(&FitConfig::default()).unwrap();
        assert!(fit.clamped && fit.alpha == 2.0);
        let bad = FitConfig { min_alpha: f64::NAN, ..FitConfig::default() };
        assert_eq!(steep.fit(&bad), Err(FitError::InvalidConfig));
    }

    #[test]
    fn measured_rates_are_read_back_by_rank() {
        let rate = |r: u64| 1e3 * (r as f64).powf(-0.9);
        let summary = PopularitySummary::from_rates((1..=5000u64).map(|r| (r as u128, rate(r))));
        for rank in [1, 64, 65, 100, 1000, 3000, 5000] {
            let read = summary.rate_at_rank(rank).unwrap();
            // Within half a bin (bins are 10^(1/8) ≈ 1.33 wide).
            assert!(
                (read / rate(rank) - 1.0).abs() < 0.15,
                "rank {rank}: {read} vs {}",
                rate(rank)
            );
        }
        assert_eq!(summary.rate_at_rank(5001), None);
        // Past the exact top list, rates too small to bin are unknown.
        let mut faint = PopularitySummary::from_rates([(1, 5.0), (2, 1e-4), (3, 0.0)]);
        faint.top.truncate(1);
        assert_eq!(faint.rate_at_rank(1), Some(5.0));
        assert_eq!(faint.rate_at_rank(2), None);
        assert_eq!(faint.rate_at_rank(3), None);
    }

    #[test]
    fn garbage_rates_are_ignored() {
        let mut s = PopularitySummary::default();
        s.record(1, f64::NAN);
        s.record(2, -3.0);
        s.record(3, f64::INFINITY);
        assert_eq!(s.objects, 3);
        assert_eq!(s.total_rate, 0.0);
        assert!(s.top.is_empty());
    }
}
