//! M, the number of objects, from what the homes have seen of the catalogue.
//!
//! Homes know only objects someone has asked for, and a Zipf tail is mostly objects nobody
//! has asked for yet. What the leader can measure is how many objects were seen and the share
//! of an interval's requests that found one no home had seen before (Good–Turing: the unseen
//! objects' share of requests). Both follow from M once α is known: after an exposure τ
//! (requests per unit of Zipf weight `r^−α`), rank r has been seen with probability
//! `1 − e^(−τ·r^−α)`. [`objects_for_discovery`] solves the pair for M.
//!
//! The unseen objects are not the ranks past the seen ones: they are scattered over the
//! whole tail, and those nearer the head draw more of the unseen share. Carrying that share
//! on the curve's ranks past `seen` (the faintest ones) needs more of them than there are:
//! at N = 1 024, M = 40 960, α = 0.91 that read 47 000 at 180 s and 43 500 at 300 s.

use super::zipf::ZipfFit;

/// Ranks summed one by one; past this, on geometric buckets.
const EXACT_RANKS: f64 = 512.0;
/// Buckets past [`EXACT_RANKS`], whatever M (0.4 % apart in rank at M = 10⁶).
const TAIL_BUCKETS: u32 = 256;
/// Most the estimate reaches past what was seen: early on, a small sample says little about
/// the tail, and M only sets how far the last level reaches.
pub const MAX_OVER_SEEN: f64 = 2.0;

/// The Zipf weights of ranks 1..=M, as (ranks, weight of each): exact in the head, one
/// bucket per geometric step in the tail.
fn weights(m: f64, alpha: f64) -> Vec<(f64, f64)> {
    let head = m.min(EXACT_RANKS).floor();
    let mut out: Vec<(f64, f64)> =
        (1..=head as u32).map(|r| (1.0, f64::from(r).powf(-alpha))).collect();
    if m > head {
        // Ranks (head, m] as a continuum: bucket [a, b) weighs b − a ranks at rank √(ab).
        let (lo, hi) = (head + 0.5, m + 0.5);
        let step = (hi / lo).powf(1.0 / f64::from(TAIL_BUCKETS));
        let mut a = lo;
        for _ in 0..TAIL_BUCKETS {
            let b = a * step;
            out.push((b - a, (a * b).sqrt().powf(-alpha)));
            a = b;
        }
    }
    out
}

/// Objects seen after exposure `tau`, and the share of requests that find an unseen one.
fn seen_and_share(weights: &[(f64, f64)], tau: f64) -> (f64, f64) {
    let (mut seen, mut unseen_weight, mut total_weight) = (0.0, 0.0, 0.0);
    for &(n, w) in weights {
        let unseen = (-tau * w).exp();
        seen += n * (1.0 - unseen);
        unseen_weight += n * w * unseen;
        total_weight += n * w;
    }
    (seen, unseen_weight / total_weight)
}

/// The share of requests that find an unseen object in a catalogue of `m` objects once
/// `seen` of them have been seen.
fn unseen_share(m: f64, alpha: f64, seen: f64) -> f64 {
    let w = weights(m, alpha);
    // Objects seen grow with the exposure.
    let tau = log_bisect(1e-9, 1e18, 1e-6, |tau| seen_and_share(&w, tau).0 < seen);
    seen_and_share(&w, tau).1
}

/// The `x` in `[lo, hi]` where `below` (monotone: true, then false) turns false, to a
/// relative `tolerance`: bisection on `ln x`, since every quantity here spans orders of
/// magnitude. `hi` when `below` still holds there, `lo` when it holds nowhere.
fn log_bisect(lo: f64, hi: f64, tolerance: f64, below: impl Fn(f64) -> bool) -> f64 {
    if below(hi) {
        return hi;
    }
    if !below(lo) {
        return lo;
    }
    let (mut lo, mut hi) = (lo.ln(), hi.ln());
    while hi - lo > tolerance {
        let mid = 0.5 * (lo + hi);
        if below(mid.exp()) {
            lo = mid;
        } else {
            hi = mid;
        }
    }
    hi.exp()
}

/// The catalogue size M at which a Zipf(α) catalogue, with `seen` objects seen, sends `share`
/// of its requests to unseen ones (see the module docs); between `seen` and twice that.
/// `seen` itself when nothing is being discovered or the inputs are not usable.
pub fn objects_for_discovery(alpha: f64, seen: f64, share: f64) -> f64 {
    if !(seen >= 1.0 && alpha.is_finite() && alpha > 0.0 && share.is_finite() && share > 0.0) {
        return seen.max(1.0);
    }
    // The unseen share grows with M for the same objects seen.
    log_bisect(seen, MAX_OVER_SEEN * seen, 1e-4, |m| unseen_share(m, alpha, seen) < share)
}

/// The `M ≥ from` at which the fitted curve's ranks `from + 1 ..= M` add up to `sum`:
/// `rate(1)·(H(M, α) − H(from, α)) = sum`. Used before any discovery share is measured (a
/// leader's first result): the curve says how far the tail must reach to carry the whole
/// rate. `from` when the curve is unusable, 10¹² at most.
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
    log_bisect(from.max(1.0), 1e12, 1e-6, |m| harmonic(m) < want)
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
        let head: f64 = (1..=300).map(|r| (r as f64).powf(-alpha)).sum();
        let est = objects_for_sum(&fit, 300.0, total - head);
        assert!((est / m as f64 - 1.0).abs() < 0.01, "{est}");
        assert_eq!(objects_for_sum(&fit, 300.0, 0.0), 300.0);
    }

    /// What a catalogue of `m` objects shows after `requests` Zipf(α) requests, in
    /// expectation: objects seen, and the share of the next requests that find a new one.
    fn expected(m: u32, alpha: f64, requests: f64) -> (f64, f64) {
        let h: f64 = (1..=m).map(|r| f64::from(r).powf(-alpha)).sum();
        let p = |r: u32| f64::from(r).powf(-alpha) / h;
        let seen = (1..=m).map(|r| 1.0 - (-requests * p(r)).exp()).sum();
        let share = (1..=m).map(|r| p(r) * (-requests * p(r)).exp()).sum();
        (seen, share)
    }

    #[test]
    fn the_catalogue_is_found_long_before_it_is_seen() {
        // The paper's workload (M = 40 960) after 120 s to 600 s of 1 024 requests per
        // second, and other exponents: within 2 % while many requests still find a new
        // object, once more than half the catalogue has been seen.
        for (m, alpha) in [(40_960, 0.91), (40_960, 0.6), (40_960, 1.2), (2_048, 0.91)] {
            for requests in [120.0 * 1024.0, 300.0 * 1024.0, 600.0 * 1024.0] {
                let (seen, share) = expected(m, alpha, requests);
                if seen > 0.99 * f64::from(m) {
                    continue;
                }
                let est = objects_for_discovery(alpha, seen, share);
                if f64::from(m) > 1.9 * seen {
                    assert_eq!(est, 2.0 * seen, "too little seen: the cap");
                    continue;
                }
                let err = est / f64::from(m) - 1.0;
                assert!(err.abs() < 0.02, "M {m} α {alpha} n {requests}: {est} ({seen} seen)");
            }
        }
    }

    #[test]
    fn the_estimate_stays_between_seen_and_twice_seen() {
        // Most requests finding new objects: the cap.
        assert_eq!(objects_for_discovery(0.91, 1_000.0, 0.9), 2_000.0);
        // Nothing new: what was seen.
        assert_eq!(objects_for_discovery(0.91, 1_000.0, 0.0), 1_000.0);
        for bad in [f64::NAN, -1.0, f64::INFINITY] {
            assert_eq!(objects_for_discovery(0.91, 1_000.0, bad), 1_000.0);
            assert_eq!(objects_for_discovery(bad, 1_000.0, 0.1), 1_000.0);
        }
        assert_eq!(objects_for_discovery(0.91, 0.0, 0.1), 1.0);
    }
}
