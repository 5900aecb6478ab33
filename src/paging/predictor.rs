//! Predictors of the next request time of each requested page, one value per request
//! (larger means later). The synthetic oracle follows the learning-augmented paging
//! experiments (Antoniadis et al., ICML 2020); POPU and PLECO are their history-based
//! predictors and see only the past.

use super::{Trace, NEVER};
use crate::error::{Error, Result};
use rand::rngs::StdRng;
use rand::SeedableRng;
use rand_distr::{Distribution, LogNormal};

/// A predictor and its parameter.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Predictor {
    /// The true next request time plus lognormal(0, sigma) noise; a page never requested
    /// again is predicted at `10000 n` (n = trace length) plus noise.
    Oracle {
        /// Noise parameter.
        sigma: f64,
    },
    /// POPU: `t + t / count(page)` (1-based t): popular pages are predicted sooner.
    Popu,
    /// PLECO for BrightKite (Zhao et al., WWW 2014): the probability that the page is the
    /// next request is a sum of decaying weights of its past requests, `w(d) = (d + 10)^-1.8
    /// e^{-d/670}`, normalised; the prediction is `1 / p + t - 1`.
    Pleco,
    /// `-t`: following these predictions is LRU.
    Lru,
}

impl Predictor {
    /// Parse `oracle`, `popu`, `pleco` or `lru`; `sigma` is used by the oracle.
    pub fn parse(name: &str, sigma: f64) -> Result<Predictor> {
        Ok(match name {
            "oracle" => Predictor::Oracle { sigma },
            "popu" => Predictor::Popu,
            "pleco" => Predictor::Pleco,
            "lru" => Predictor::Lru,
            _ => {
                return Err(Error::input(format!(
                    "unknown predictor `{name}`; known: oracle, popu, pleco, lru"
                )))
            }
        })
    }

    /// Short label for reports.
    pub fn label(&self) -> String {
        match self {
            Predictor::Oracle { sigma } => format!("oracle(sigma={sigma})"),
            Predictor::Popu => "popu".into(),
            Predictor::Pleco => "pleco".into(),
            Predictor::Lru => "lru".into(),
        }
    }

    /// Predictions for every request of `trace`.
    pub fn predict(&self, trace: &Trace, seed: u64) -> Vec<f64> {
        match *self {
            Predictor::Oracle { sigma } => oracle(trace, sigma, seed),
            Predictor::Popu => popu(trace),
            Predictor::Pleco => pleco(trace),
            Predictor::Lru => (0..trace.len()).map(|t| -(t as f64)).collect(),
        }
    }
}

fn oracle(trace: &Trace, sigma: f64, seed: u64) -> Vec<f64> {
    let never = trace.len() as f64 * 10000.0;
    let mut rng = StdRng::seed_from_u64(seed);
    let noise = LogNormal::new(0.0, sigma.max(0.0)).expect("sigma >= 0");
    trace
        .next_use
        .iter()
        .map(|&n| {
            let base = if n == NEVER { never } else { n as f64 };
            base + noise.sample(&mut rng)
        })
        .collect()
}

fn popu(trace: &Trace) -> Vec<f64> {
    let mut count = vec![0u64; trace.num_pages];
    trace
        .pages
        .iter()
        .enumerate()
        .map(|(i, &p)| {
            let t = (i + 1) as f64;
            count[p as usize] += 1;
            t + t / count[p as usize] as f64
        })
        .collect()
}

fn pleco(trace: &Trace) -> Vec<f64> {
    let n = trace.len();
    // weight[d] for a request d steps ago (d = 0 is the current one).
    let weight: Vec<f64> = (1..=n)
        .map(|t| ((t + 10) as f64).powf(-1.8) * (-(t as f64) / 670.0).exp())
        .collect();
    let mut occurrences: Vec<Vec<u32>> = vec![Vec::new(); trace.num_pages];
    let mut sum_weights = 0.0;
    let mut out = Vec::with_capacity(n);
    for (i, &p) in trace.pages.iter().enumerate() {
        let t = i + 1;
        sum_weights += weight[t - 1];
        occurrences[p as usize].push(t as u32);
        let mass: f64 = occurrences[p as usize]
            .iter()
            .map(|&o| weight[t - o as usize])
            .sum();
        let prob = mass / sum_weights;
        out.push(1.0 / prob + (t - 1) as f64);
    }
    out
}
