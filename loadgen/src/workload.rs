//! Which object the next request asks for: a popularity rank from the distribution, then the
//! phases in force at that moment map the rank to an object.

use crate::config::{LoadConfig, Phases, Workload};
use rand::Rng;
use rand_distr::{Distribution, Zipf};
use std::time::Duration;

/// Picks object indices; pure apart from the RNG passed in.
#[derive(Debug, Clone)]
pub struct Chooser {
    zipf: Option<Zipf<f64>>,
    objects: u64,
    phases: Phases,
}

impl Chooser {
    /// Builds the chooser for a validated config.
    pub fn new(config: &LoadConfig) -> Self {
        let zipf = match config.workload {
            // Validation guarantees objects >= 1 and alpha > 0, which Zipf::new accepts.
            Workload::Zipf { alpha } => {
                Some(Zipf::new(config.objects as f64, alpha).expect("validated Zipf parameters"))
            }
            Workload::Uniform => None,
        };
        Self { zipf, objects: config.objects, phases: config.phases }
    }

    /// The 0-based popularity rank of the next request.
    fn rank(&self, rng: &mut impl Rng) -> u64 {
        match &self.zipf {
            // Zipf samples 1..=M as a float; rank 1 is the most popular.
            Some(z) => ((z.sample(rng) as u64).clamp(1, self.objects)) - 1,
            None => rng.random_range(0..self.objects),
        }
    }

    /// The object index for a request sent `elapsed` after the start.
    pub fn pick(&self, rng: &mut impl Rng, elapsed: Duration) -> u64 {
        if let Some(flash) = self.phases.flash {
            if elapsed >= flash.at && rng.random::<f64>() < flash.share {
                return flash.object;
            }
        }
        self.map_rank(self.rank(rng), elapsed)
    }

    /// The object holding popularity rank `rank` (0-based) at `elapsed`.
    pub fn map_rank(&self, rank: u64, elapsed: Duration) -> u64 {
        let m = self.objects;
        let mut object = rank;
        if self.phases.reverse_at.is_some_and(|at| elapsed >= at) {
            object = m - 1 - object;
        }
        if let Some((at, by)) = self.phases.rotate_at {
            if elapsed >= at {
                object = (object + by % m) % m;
            }
        }
        object
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Flash;
    use rand::SeedableRng;
    use rand_chacha::ChaCha8Rng;

    fn config(phases: Phases) -> LoadConfig {
        LoadConfig { objects: 10, phases, ..LoadConfig::default() }
    }

    #[test]
    fn phases_map_ranks() {
        let s = Duration::from_secs;
        let c = Chooser::new(&config(Phases {
            reverse_at: Some(s(5)),
            rotate_at: Some((s(10), 3)),
            flash: None,
        }));
        // (rank, elapsed, object)
        let table = [(0, 0, 0), (9, 4, 9), (0, 5, 9), (9, 5, 0), (0, 10, 2), (2, 10, 0)];
        for (rank, at, want) in table {
            assert_eq!(c.map_rank(rank, s(at)), want, "rank {rank} at {at}s");
        }
    }

    #[test]
    fn zipf_favours_object_zero_and_stays_in_range() {
        let c = Chooser::new(&config(Phases::default()));
        let mut rng = ChaCha8Rng::seed_from_u64(7);
        let mut counts = [0u32; 10];
        for _ in 0..10_000 {
            counts[c.pick(&mut rng, Duration::ZERO) as usize] += 1;
        }
        let top = counts.iter().enumerate().max_by_key(|(_, n)| **n).map(|(i, _)| i);
        assert_eq!(top, Some(0));
        assert!(counts[0] > counts[1] && counts[1] > counts[9], "{counts:?}");
    }

    #[test]
    fn flash_crowd_takes_its_share() {
        let flash = Flash { at: Duration::from_secs(1), object: 7, share: 0.5 };
        let c = Chooser::new(&config(Phases { flash: Some(flash), ..Phases::default() }));
        let mut rng = ChaCha8Rng::seed_from_u64(1);
        let before = (0..4000).filter(|_| c.pick(&mut rng, Duration::ZERO) == 7).count();
        let after = (0..4000).filter(|_| c.pick(&mut rng, Duration::from_secs(2)) == 7).count();
        assert!(before < 400, "{before}");
        assert!((2000..2600).contains(&after), "{after}");
    }
}
