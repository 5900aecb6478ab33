//! Predictors, one value per request, of three kinds ([`PredictionKind`]):
//! - the next request time of the requested page (larger means later). The synthetic
//!   oracle follows the learning-augmented paging experiments (Antoniadis et al., ICML
//!   2020); POPU and PLECO are their history-based predictors and see only the past;
//! - one-bit *discard* predictions (Antoniadis et al., "Paging with Succinct Predictions",
//!   ICML 2023): 1 when it is safe to evict the page, that is when an optimal algorithm
//!   (here Belady's, at the same cache size) evicts it before its next request;
//! - one-bit *phase* predictions (same paper): 1 when the page is requested again in the
//!   next k-phase (phases: maximal stretches of the sequence with k distinct pages).
//!
//! The bit predictors derive the true bit from the whole trace and flip each bit
//! independently with probability `flip`, the controlled error of that paper's setting.

use super::{Trace, NEVER};
use crate::error::{Error, Result};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
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
    /// One-bit discard predictions from Belady's run at the cache size, each flipped with
    /// probability `flip`.
    Discard {
        /// Probability of flipping each bit.
        flip: f64,
    },
    /// One-bit phase predictions from the k-phase partition, each flipped with
    /// probability `flip`.
    Phase {
        /// Probability of flipping each bit.
        flip: f64,
    },
}

/// What a prediction value means; a policy reads one kind only.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PredictionKind {
    /// The time of the page's next request (larger is later).
    NextRequest,
    /// 1 if safe to evict the page before its next request, else 0.
    DiscardBit,
    /// 1 if the page is requested in the next phase, else 0.
    PhaseBit,
}

impl PredictionKind {
    /// The predictor names that give this kind.
    pub fn predictor_names(self) -> &'static str {
        match self {
            PredictionKind::NextRequest => "oracle, popu, pleco, lru",
            PredictionKind::DiscardBit => "discard",
            PredictionKind::PhaseBit => "phase",
        }
    }
}

impl Predictor {
    /// Parse `oracle`, `popu`, `pleco`, `lru`, `discard` or `phase`; `noise` is the
    /// oracle's sigma or the bit predictors' flip probability.
    pub fn parse(name: &str, noise: f64) -> Result<Predictor> {
        Ok(match name {
            "oracle" => Predictor::Oracle { sigma: noise },
            "popu" => Predictor::Popu,
            "pleco" => Predictor::Pleco,
            "lru" => Predictor::Lru,
            "discard" => Predictor::Discard { flip: noise },
            "phase" => Predictor::Phase { flip: noise },
            _ => {
                return Err(Error::input(format!(
                    "unknown predictor `{name}`; known: oracle, popu, pleco, lru, discard, phase"
                )))
            }
        })
    }

    /// The kind of value it predicts.
    pub fn kind(&self) -> PredictionKind {
        match self {
            Predictor::Discard { .. } => PredictionKind::DiscardBit,
            Predictor::Phase { .. } => PredictionKind::PhaseBit,
            _ => PredictionKind::NextRequest,
        }
    }

    /// Whether its predictions are random (and so averaged over runs).
    pub fn is_noisy(&self) -> bool {
        match *self {
            Predictor::Oracle { sigma } => sigma > 0.0,
            Predictor::Discard { flip } | Predictor::Phase { flip } => flip > 0.0,
            _ => false,
        }
    }

    /// Short label for reports.
    pub fn label(&self) -> String {
        match self {
            Predictor::Oracle { sigma } => format!("oracle(sigma={sigma})"),
            Predictor::Popu => "popu".into(),
            Predictor::Pleco => "pleco".into(),
            Predictor::Lru => "lru".into(),
            Predictor::Discard { flip } => format!("discard(p={flip})"),
            Predictor::Phase { flip } => format!("phase(p={flip})"),
        }
    }

    /// Predictions for every request of `trace` served by a cache of `k` pages (the bit
    /// predictors depend on `k`; the others do not).
    pub fn predict(&self, trace: &Trace, k: usize, seed: u64) -> Vec<f64> {
        match *self {
            Predictor::Oracle { sigma } => oracle(trace, sigma, seed),
            Predictor::Popu => popu(trace),
            Predictor::Pleco => pleco(trace),
            Predictor::Lru => (0..trace.len()).map(|t| -(t as f64)).collect(),
            Predictor::Discard { flip } => flip_bits(discard_bits(trace, k), flip, seed),
            Predictor::Phase { flip } => flip_bits(phase_bits(trace, k), flip, seed),
        }
    }
}

/// Flip each bit independently with probability `p`.
fn flip_bits(mut bits: Vec<f64>, p: f64, seed: u64) -> Vec<f64> {
    if p > 0.0 {
        let mut rng = StdRng::seed_from_u64(seed);
        for b in &mut bits {
            if rng.gen::<f64>() < p {
                *b = 1.0 - *b;
            }
        }
    }
    bits
}

/// True discard bits: replay the registry's Belady (the same optimum the reports compare
/// with) with `k` pages and mark each request whose page is evicted before its next
/// request, or never requested again. This is the paper's discard prediction with Belady's
/// MIN as the fixed optimal algorithm; it is lazy (evicts only on misses), which `mark0`'s
/// exact 1-consistency relies on.
pub fn discard_bits(trace: &Trace, k: usize) -> Vec<f64> {
    let k = k.max(1);
    let mut opt = super::make_policy("belady", &super::PolicyParams::new(k, trace.num_pages, 0))
        .expect("belady is registered");
    let mut bits = vec![0.0; trace.len()];
    let mut last_request = vec![usize::MAX; trace.num_pages];
    for t in 0..trace.len() {
        let r = trace.req(t, None);
        if !opt.find(&r) {
            if opt.len() >= k {
                let victim = opt.evict(&r);
                bits[last_request[victim as usize]] = 1.0;
            }
            opt.insert(&r);
        }
        last_request[r.page as usize] = t;
        if r.next_use == NEVER {
            bits[t] = 1.0;
        }
    }
    bits
}

/// The k-phase of every request: a phase is a maximal stretch with at most `k` distinct
/// pages; phases are numbered from 0.
pub fn phases(trace: &Trace, k: usize) -> Vec<u32> {
    let mut seen_in = vec![u32::MAX; trace.num_pages];
    let (mut phase, mut distinct) = (0u32, 0usize);
    trace
        .pages
        .iter()
        .map(|&p| {
            if seen_in[p as usize] != phase {
                if distinct == k.max(1) {
                    phase += 1;
                    distinct = 0;
                }
                seen_in[p as usize] = phase;
                distinct += 1;
            }
            phase
        })
        .collect()
}

/// True phase bits: 1 when the request's page is requested in the next k-phase.
pub fn phase_bits(trace: &Trace, k: usize) -> Vec<f64> {
    let phase = phases(trace, k);
    let mut bits = vec![0.0; trace.len()];
    for t in (0..trace.len()).rev() {
        let next = trace.next_use[t];
        if next == NEVER {
            continue;
        }
        let next = next as usize;
        bits[t] = if phase[next] == phase[t] {
            bits[next]
        } else if phase[next] == phase[t] + 1 {
            1.0
        } else {
            0.0
        };
    }
    bits
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
