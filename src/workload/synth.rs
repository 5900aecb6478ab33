//! Synthetic workloads: arrival processes (Poisson, Gamma with a coefficient of variation,
//! constant), length distributions (constant, uniform, lognormal, empirical), shared system
//! prompts and multi-turn sessions, all reproducible from the seed.

use super::{mix, RawRequest, Segment};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use rand_distr::{Distribution, Exp, Gamma, LogNormal, WeightedIndex};
use std::cmp::Reverse;
use std::collections::BinaryHeap;

/// A checked synthetic workload (built from `workload.source` by the scenario loader).
#[derive(Debug, Clone, PartialEq)]
pub struct SynthSpec {
    /// Requests to generate.
    pub requests: u64,
    /// Arrival process of new sessions (or of requests, without sessions).
    pub arrival: Arrival,
    /// Prompt length of each request (with sessions: the new user message of each turn).
    pub input: Lengths,
    /// Output length of each request.
    pub output: Lengths,
    /// Shared system prompts: (count, tokens each); each session starts with one.
    pub system_prompts: Option<(u32, u32)>,
    /// Sessions: turns per session and mean think time in seconds.
    pub sessions: Option<(Lengths, f64)>,
}

/// Inter-arrival process.
#[derive(Debug, Clone, PartialEq)]
pub enum Arrival {
    /// Exponential gaps at `rate` per second.
    Poisson {
        /// Arrivals per second.
        rate: f64,
    },
    /// Gamma gaps with mean `1/rate` and coefficient of variation `cv` (cv 1 is Poisson).
    Gamma {
        /// Arrivals per second.
        rate: f64,
        /// Coefficient of variation of the gaps.
        cv: f64,
    },
    /// Equal gaps of `1/rate`.
    Constant {
        /// Arrivals per second.
        rate: f64,
    },
}

/// A distribution of token counts (always at least 1).
#[derive(Debug, Clone, PartialEq)]
pub enum Lengths {
    /// Always `value`.
    Constant {
        /// The length.
        value: u32,
    },
    /// Uniform on `[min, max]`.
    Uniform {
        /// Smallest length.
        min: u32,
        /// Largest length.
        max: u32,
    },
    /// Lognormal with the given mean and log-space sigma, capped at `max`.
    Lognormal {
        /// Mean length.
        mean: f64,
        /// Standard deviation of the underlying normal.
        sigma: f64,
        /// Cap.
        max: u32,
    },
    /// One of `values`, chosen with `weights` (uniform if omitted).
    Empirical {
        /// The lengths.
        values: Vec<u32>,
        /// Their relative weights.
        weights: Option<Vec<f64>>,
    },
}

/// A sampler for one [`Lengths`].
enum LengthSampler {
    Constant(u32),
    Uniform(u32, u32),
    Lognormal(LogNormal<f64>, u32),
    Empirical(Vec<u32>, WeightedIndex<f64>),
}

impl LengthSampler {
    fn new(l: &Lengths) -> Self {
        match l {
            Lengths::Constant { value } => LengthSampler::Constant(*value),
            Lengths::Uniform { min, max } => LengthSampler::Uniform(*min, *max),
            Lengths::Lognormal { mean, sigma, max } => {
                // Mean of a lognormal is exp(mu + sigma^2 / 2).
                let mu = mean.ln() - sigma * sigma / 2.0;
                LengthSampler::Lognormal(LogNormal::new(mu, *sigma).expect("checked"), *max)
            }
            Lengths::Empirical { values, weights } => {
                let w = weights.clone().unwrap_or_else(|| vec![1.0; values.len()]);
                LengthSampler::Empirical(values.clone(), WeightedIndex::new(w).expect("checked"))
            }
        }
    }

    fn sample(&self, rng: &mut StdRng) -> u32 {
        match self {
            LengthSampler::Constant(v) => *v,
            LengthSampler::Uniform(a, b) => rng.gen_range(*a..=*b),
            LengthSampler::Lognormal(d, max) => (d.sample(rng).round() as u32).clamp(1, *max),
            LengthSampler::Empirical(v, w) => v[w.sample(rng)],
        }
    }
}

enum GapSampler {
    Exp(Exp<f64>),
    Gamma(Gamma<f64>),
    Constant(f64),
}

impl GapSampler {
    fn sample(&self, rng: &mut StdRng) -> f64 {
        match self {
            GapSampler::Exp(d) => d.sample(rng),
            GapSampler::Gamma(d) => d.sample(rng),
            GapSampler::Constant(g) => *g,
        }
    }
}

/// A session's next turn, waiting in the generator's queue.
#[derive(Debug, PartialEq, Eq, PartialOrd, Ord)]
struct PendingTurn {
    arrival_ns: u64,
    session: u64,
    turns_left: u32,
    history: Vec<(u64, u32)>,
}

/// Streams synthetic requests in arrival order.
pub struct SynthGenerator {
    rng: StdRng,
    gaps: GapSampler,
    input: LengthSampler,
    output: LengthSampler,
    turns: Option<(LengthSampler, f64)>,
    system: Option<(u32, u32)>,
    remaining: u64,
    next_new_ns: u64,
    next_session: u64,
    next_content: u64,
    pending: BinaryHeap<Reverse<PendingTurn>>,
}

impl SynthGenerator {
    /// A generator for the spec (which must have passed [`SynthSpec::check`]).
    pub fn new(spec: &SynthSpec, seed: u64) -> Self {
        let gaps = match &spec.arrival {
            Arrival::Poisson { rate } => GapSampler::Exp(Exp::new(*rate).expect("checked")),
            Arrival::Gamma { rate, cv } => {
                // Gamma with shape k and scale theta: mean k theta = 1/rate, cv = 1/sqrt(k).
                let k = 1.0 / (cv * cv);
                GapSampler::Gamma(Gamma::new(k, 1.0 / (rate * k)).expect("checked"))
            }
            Arrival::Constant { rate } => GapSampler::Constant(1.0 / rate),
        };
        let mut g = SynthGenerator {
            rng: StdRng::seed_from_u64(seed),
            gaps,
            input: LengthSampler::new(&spec.input),
            output: LengthSampler::new(&spec.output),
            turns: spec
                .sessions
                .as_ref()
                .map(|(t, think)| (LengthSampler::new(t), *think)),
            system: spec.system_prompts,
            remaining: spec.requests,
            next_new_ns: 0,
            next_session: 0,
            next_content: 0,
            pending: BinaryHeap::new(),
        };
        g.next_new_ns = g.gap_ns();
        g
    }

    fn gap_ns(&mut self) -> u64 {
        (self.gaps.sample(&mut self.rng) * 1e9).round() as u64
    }

    fn fresh_content(&mut self) -> u64 {
        self.next_content += 1;
        mix(0x7379_6e74, self.next_content)
    }

    /// Emit one turn and queue the session's next one.
    fn emit(
        &mut self,
        arrival_ns: u64,
        session: u64,
        turns_left: u32,
        mut history: Vec<(u64, u32)>,
    ) -> RawRequest {
        let user = self.input.sample(&mut self.rng);
        let output = self.output.sample(&mut self.rng);
        let user_id = self.fresh_content();
        history.push((user_id, user));
        let segments: Vec<Segment> = history
            .iter()
            .map(|&(id, tokens)| Segment { id, tokens })
            .collect();
        let input_tokens = history
            .iter()
            .map(|&(_, t)| t as u64)
            .sum::<u64>()
            .min(u32::MAX as u64) as u32;
        let mut segments = segments;
        if turns_left > 1 {
            if let Some((_, think)) = &self.turns {
                let think = *think;
                let out_id = self.fresh_content();
                // The next turn's prompt repeats this answer: identify it.
                segments.push(Segment {
                    id: out_id,
                    tokens: output,
                });
                history.push((out_id, output));
                let wait = if think > 0.0 {
                    Exp::new(1.0 / think)
                        .expect("positive")
                        .sample(&mut self.rng)
                } else {
                    0.0
                };
                let next = arrival_ns.saturating_add((wait * 1e9).round() as u64);
                self.pending.push(Reverse(PendingTurn {
                    arrival_ns: next,
                    session,
                    turns_left: turns_left - 1,
                    history,
                }));
            }
        }
        RawRequest {
            arrival_ns,
            input_tokens,
            output_tokens: output,
            session: self.turns.as_ref().map(|_| session),
            segments,
        }
    }
}

impl Iterator for SynthGenerator {
    type Item = RawRequest;

    fn next(&mut self) -> Option<RawRequest> {
        if self.remaining == 0 {
            return None;
        }
        self.remaining -= 1;
        let pending_first = self
            .pending
            .peek()
            .is_some_and(|Reverse(p)| p.arrival_ns <= self.next_new_ns);
        if pending_first {
            let Reverse(p) = self.pending.pop().expect("peeked");
            return Some(self.emit(p.arrival_ns, p.session, p.turns_left, p.history));
        }
        let arrival = self.next_new_ns;
        self.next_new_ns = arrival.saturating_add(self.gap_ns());
        let session = self.next_session;
        self.next_session += 1;
        let turns = match &self.turns {
            Some((t, _)) => t.sample(&mut self.rng),
            None => 1,
        };
        let mut history = Vec::new();
        if let Some((count, tokens)) = self.system {
            let which = self.rng.gen_range(0..count) as u64;
            history.push((mix(0x7379_7374_656d, which), tokens));
        }
        Some(self.emit(arrival, session, turns, history))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(requests: u64, arrival: Arrival, input: Lengths, output: Lengths) -> SynthSpec {
        SynthSpec {
            requests,
            arrival,
            input,
            output,
            system_prompts: None,
            sessions: None,
        }
    }

    #[test]
    fn poisson_rate_and_determinism() {
        let s = spec(
            20000,
            Arrival::Poisson { rate: 10.0 },
            Lengths::Constant { value: 100 },
            Lengths::Uniform { min: 1, max: 9 },
        );
        let a: Vec<RawRequest> = SynthGenerator::new(&s, 7).collect();
        let b: Vec<RawRequest> = SynthGenerator::new(&s, 7).collect();
        assert_eq!(a, b);
        let dur = a.last().unwrap().arrival_ns as f64 / 1e9;
        let rate = a.len() as f64 / dur;
        assert!((rate - 10.0).abs() < 0.3, "rate {rate}");
        assert!(a.iter().all(|r| (1..=9).contains(&r.output_tokens)));
        assert!(a.windows(2).all(|w| w[0].arrival_ns <= w[1].arrival_ns));
        let c: Vec<RawRequest> = SynthGenerator::new(&s, 8).collect();
        assert_ne!(a, c);
    }

    #[test]
    fn gamma_cv_is_respected() {
        let s = spec(
            50000,
            Arrival::Gamma { rate: 4.0, cv: 3.0 },
            Lengths::Constant { value: 1 },
            Lengths::Constant { value: 1 },
        );
        let t: Vec<f64> = SynthGenerator::new(&s, 1)
            .map(|r| r.arrival_ns as f64 / 1e9)
            .collect();
        let gaps: Vec<f64> = t.windows(2).map(|w| w[1] - w[0]).collect();
        let mean = gaps.iter().sum::<f64>() / gaps.len() as f64;
        let var = gaps.iter().map(|g| (g - mean).powi(2)).sum::<f64>() / gaps.len() as f64;
        assert!((mean - 0.25).abs() < 0.02, "mean {mean}");
        assert!(
            (var.sqrt() / mean - 3.0).abs() < 0.3,
            "cv {}",
            var.sqrt() / mean
        );
    }

    #[test]
    fn lognormal_mean_and_empirical_weights() {
        let s = spec(
            40000,
            Arrival::Constant { rate: 1.0 },
            Lengths::Lognormal {
                mean: 800.0,
                sigma: 0.5,
                max: 100_000,
            },
            Lengths::Constant { value: 1 },
        );
        let m = SynthGenerator::new(&s, 3)
            .map(|r| r.input_tokens as f64)
            .sum::<f64>()
            / 40000.0;
        assert!((m - 800.0).abs() < 15.0, "mean {m}");
        let e = Lengths::Empirical {
            values: vec![10, 20],
            weights: Some(vec![3.0, 1.0]),
        };
        let s = spec(
            40000,
            Arrival::Constant { rate: 1.0 },
            e,
            Lengths::Constant { value: 1 },
        );
        let tens = SynthGenerator::new(&s, 3)
            .filter(|r| r.input_tokens == 10)
            .count() as f64
            / 40000.0;
        assert!((tens - 0.75).abs() < 0.01, "{tens}");
    }

    #[test]
    fn sessions_repeat_history_and_share_system_prompt() {
        let mut s = spec(
            6,
            Arrival::Constant { rate: 0.001 },
            Lengths::Constant { value: 50 },
            Lengths::Constant { value: 20 },
        );
        s.system_prompts = Some((1, 100));
        s.sessions = Some((Lengths::Constant { value: 3 }, 1.0));
        let r: Vec<RawRequest> = SynthGenerator::new(&s, 5).collect();
        // Session 0's three turns come before session 1 starts (1000 s apart).
        assert_eq!(r[0].input_tokens, 150);
        assert_eq!(r[1].input_tokens, 150 + 20 + 50);
        assert_eq!(r[2].input_tokens, 150 + 2 * 70);
        assert_eq!(r[1].segments[..2], r[0].segments[..2]);
        assert_eq!(r[3].segments[0], r[0].segments[0]);
        assert_ne!(r[3].segments[1], r[0].segments[1]);
        assert_eq!(r[0].session, r[2].session);
    }
}
