//! Start times and think times for traces that have none of their own (ShareGPT
//! conversations, kv-cache-tester conversations): the synthetic source's arrival processes
//! ([`Arrival`]) and its exponential think times, drawn from the scenario seed.

use super::synth::Arrival;
use crate::error::{Error, Result};
use rand::rngs::StdRng;
use rand::SeedableRng;
use rand_distr::{Distribution, Exp, Gamma};

enum Gap {
    Exp(Exp<f64>),
    Gamma(Gamma<f64>),
    Constant(f64),
}

/// Draws gaps between conversation starts and think times between turns.
pub struct Clock {
    rng: StdRng,
    gap: Gap,
}

fn bad(what: &str, e: impl std::fmt::Display) -> Error {
    Error::input(format!("arrival: invalid {what}: {e}"))
}

impl Clock {
    /// A clock for `arrival` (checked by the scenario: rate and cv positive), seeded.
    pub fn new(arrival: &Arrival, seed: u64) -> Result<Self> {
        let gap = match arrival {
            Arrival::Poisson { rate } => Gap::Exp(Exp::new(*rate).map_err(|e| bad("rate", e))?),
            Arrival::Gamma { rate, cv } => {
                // Shape k and scale theta: mean k theta = 1/rate, cv = 1/sqrt(k).
                let k = 1.0 / (cv * cv);
                Gap::Gamma(Gamma::new(k, 1.0 / (rate * k)).map_err(|e| bad("rate or cv", e))?)
            }
            Arrival::Constant { rate } => Gap::Constant(1.0 / rate),
        };
        Ok(Clock {
            rng: StdRng::seed_from_u64(seed),
            gap,
        })
    }

    /// The next gap between starts, nanoseconds.
    pub fn gap_ns(&mut self) -> u64 {
        let s = match &self.gap {
            Gap::Exp(d) => d.sample(&mut self.rng),
            Gap::Gamma(d) => d.sample(&mut self.rng),
            Gap::Constant(g) => *g,
        };
        to_ns(s)
    }

    /// A think time with mean `mean_s` seconds (exponential; 0 gives 0), nanoseconds.
    pub fn think_ns(&mut self, mean_s: f64) -> u64 {
        match Exp::new(1.0 / mean_s) {
            Ok(d) if mean_s > 0.0 => to_ns(d.sample(&mut self.rng)),
            _ => 0,
        }
    }
}

/// Seconds to nanoseconds, saturating (a gap of a century is as good as never).
fn to_ns(s: f64) -> u64 {
    (s * 1e9).round().clamp(0.0, u64::MAX as f64) as u64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn constant_gaps_and_mean_think_time() {
        let mut c = Clock::new(&Arrival::Constant { rate: 4.0 }, 1).unwrap();
        assert_eq!(c.gap_ns(), 250_000_000);
        assert_eq!(c.think_ns(0.0), 0);
        let n = 20_000;
        let mean = (0..n).map(|_| c.think_ns(2.0) as f64).sum::<f64>() / n as f64 / 1e9;
        assert!((mean - 2.0).abs() < 0.1, "{mean}");
        let mut p = Clock::new(&Arrival::Poisson { rate: 10.0 }, 1).unwrap();
        let mean = (0..n).map(|_| p.gap_ns() as f64).sum::<f64>() / n as f64 / 1e9;
        assert!((mean - 0.1).abs() < 0.005, "{mean}");
    }
}
