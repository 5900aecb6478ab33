//! When the serving benchmarks of vLLM and SGLang send their requests: the arrival rules of
//! `vllm bench serve` (vLLM 0.33.0, `vllm/benchmarks/serve.py`, `get_request`) and of
//! SGLang's `bench_serving` (SGLang 0.5.23, `sglang/benchmark/serving.py`, `get_request`),
//! reproducible from the seed and streamed in constant memory.
//!
//! - vLLM, `--request-rate inf` (its default): every request at time 0.
//! - vLLM, finite rate: gaps drawn from a gamma distribution of shape `burstiness` and scale
//!   `1 / (rate x burstiness)` (burstiness 1 is exponential, a Poisson process; `inf` gives
//!   equal gaps of `1 / rate`). The first request waits one gap. The running sums are then
//!   rescaled so that the last request is sent at exactly `num_requests / rate`. kvsim draws
//!   the gaps twice from the same seed, once to sum them and once to emit them, so that no
//!   list of times is held.
//! - vLLM, `--ramp-up-strategy linear|exponential`: request `i` of `n` uses the rate
//!   `start + (end - start) p` or `start (end / start)^p`, `p = i / max(n - 1, 1)`, with the
//!   same gamma gaps; no rescaling.
//! - SGLang, `--request-rate inf` (its default): every request at time 0. Finite: the first
//!   request at time 0, then an exponential gap of mean `1 / rate` after each request.

use super::{mix, NS_PER_S};
use rand::rngs::StdRng;
use rand::SeedableRng;
use rand_distr::{Distribution, Exp, Gamma};

/// How a vLLM ramp-up interpolates the rate from its start to its end.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RampUp {
    /// `start + (end - start) p`.
    Linear,
    /// `start (end / start)^p`.
    Exponential,
}

/// The arrival rule of a benchmark client.
#[derive(Debug, Clone, PartialEq)]
pub enum BenchArrival {
    /// Request rate infinity: every request at time 0 (both tools).
    AllAtOnce,
    /// `vllm bench serve --request-rate R --burstiness B`.
    Vllm {
        /// Requests per second, finite and positive.
        rate: f64,
        /// Gamma shape; `f64::INFINITY` for equal gaps.
        burstiness: f64,
    },
    /// `vllm bench serve --ramp-up-strategy S --ramp-up-start-rps A --ramp-up-end-rps B`.
    VllmRampUp {
        /// How the rate moves from `start_rps` to `end_rps`.
        strategy: RampUp,
        /// Rate of the first request, at least 1.
        start_rps: u32,
        /// Rate of the last request, at least `start_rps`.
        end_rps: u32,
        /// Gamma shape; `f64::INFINITY` for equal gaps.
        burstiness: f64,
    },
    /// SGLang's `bench_serving --request-rate R`: Poisson, the first request at 0.
    Sglang {
        /// Requests per second, finite and positive.
        rate: f64,
    },
}

/// The gamma distribution of vLLM's gaps at `rate` with shape `burstiness`, or why it does
/// not exist (`None` burstiness-infinite gaps are constant and need none).
pub fn vllm_gamma(rate: f64, burstiness: f64) -> Result<Option<Gamma<f64>>, String> {
    if burstiness == f64::INFINITY {
        return Ok(None);
    }
    Gamma::new(burstiness, 1.0 / (rate * burstiness))
        .map(Some)
        .map_err(|e| format!("no gamma distribution of shape {burstiness} at rate {rate}: {e}"))
}

/// One gap of vLLM's `get_request` at `rate`, seconds.
fn vllm_gap(rate: f64, burstiness: f64, rng: &mut StdRng) -> f64 {
    match vllm_gamma(rate, burstiness) {
        Ok(Some(g)) => g.sample(rng),
        // Checked when the source was resolved; equal gaps are the limit either way.
        Ok(None) | Err(_) => 1.0 / rate,
    }
}

impl BenchArrival {
    /// The rate of request `i` of `n` under a ramp-up.
    fn ramp_rate(strategy: RampUp, start: u32, end: u32, i: u64, n: u64) -> f64 {
        let p = i as f64 / (n.saturating_sub(1).max(1)) as f64;
        let (a, b) = (start as f64, end as f64);
        match strategy {
            RampUp::Linear => a + (b - a) * p,
            RampUp::Exponential => a * (b / a).powf(p),
        }
    }

    /// The gap before request `i` of `n`, seconds (vLLM kinds only).
    fn gap(&self, i: u64, n: u64, rng: &mut StdRng) -> f64 {
        match *self {
            BenchArrival::AllAtOnce => 0.0,
            BenchArrival::Vllm { rate, burstiness } => vllm_gap(rate, burstiness, rng),
            BenchArrival::VllmRampUp {
                strategy,
                start_rps,
                end_rps,
                burstiness,
            } => {
                let rate = Self::ramp_rate(strategy, start_rps, end_rps, i, n);
                vllm_gap(rate, burstiness, rng)
            }
            BenchArrival::Sglang { rate } => match Exp::new(rate) {
                Ok(d) => d.sample(rng),
                Err(_) => 1.0 / rate,
            },
        }
    }
}

/// The arrival times of `n` requests, nanoseconds, in sending order.
pub struct BenchTimes {
    arrival: BenchArrival,
    rng: StdRng,
    n: u64,
    next: u64,
    /// Seconds since the start, before rescaling.
    elapsed_s: f64,
    /// Factor applied to `elapsed_s` (vLLM's rescaling to end at `n / rate`).
    scale: f64,
}

impl BenchTimes {
    /// Times for `n` requests under `arrival`, from `seed`.
    pub fn new(arrival: &BenchArrival, n: u64, seed: u64) -> Self {
        let rng = StdRng::seed_from_u64(mix(0x6172_7269_7661_6c73, seed));
        let mut scale = 1.0;
        if let BenchArrival::Vllm { rate, .. } = *arrival {
            // First pass: the sum of the gaps, so that the last time is `n / rate`.
            let mut probe = rng.clone();
            let total: f64 = (0..n).map(|i| arrival.gap(i, n, &mut probe)).sum();
            if total > 0.0 && total.is_finite() {
                scale = (n as f64 / rate) / total;
            }
        }
        BenchTimes {
            arrival: arrival.clone(),
            rng,
            n,
            next: 0,
            elapsed_s: 0.0,
            scale,
        }
    }
}

impl Iterator for BenchTimes {
    type Item = u64;

    fn next(&mut self) -> Option<u64> {
        if self.next >= self.n {
            return None;
        }
        let i = self.next;
        self.next += 1;
        match self.arrival {
            // SGLang sends, then sleeps: the gap comes after the request.
            BenchArrival::Sglang { .. } => {
                let t = self.elapsed_s;
                self.elapsed_s += self.arrival.gap(i, self.n, &mut self.rng);
                Some(to_ns(t))
            }
            _ => {
                self.elapsed_s += self.arrival.gap(i, self.n, &mut self.rng);
                Some(to_ns(self.elapsed_s * self.scale))
            }
        }
    }
}

/// Seconds to nanoseconds, saturating (a float-to-integer cast saturates; NaN gives 0).
fn to_ns(s: f64) -> u64 {
    (s * NS_PER_S).round() as u64
}

#[cfg(test)]
mod tests {
    use super::*;

    fn times(a: &BenchArrival, n: u64, seed: u64) -> Vec<u64> {
        BenchTimes::new(a, n, seed).collect()
    }

    fn gaps_s(t: &[u64]) -> Vec<f64> {
        let mut prev = 0;
        t.iter()
            .map(|&x| {
                let g = (x - prev) as f64 / 1e9;
                prev = x;
                g
            })
            .collect()
    }

    fn mean_cv(g: &[f64]) -> (f64, f64) {
        let m = g.iter().sum::<f64>() / g.len() as f64;
        let v = g.iter().map(|x| (x - m).powi(2)).sum::<f64>() / g.len() as f64;
        (m, v.sqrt() / m)
    }

    #[test]
    fn infinite_rate_sends_everything_at_zero() {
        let t = times(&BenchArrival::AllAtOnce, 50, 1);
        assert_eq!(t.len(), 50);
        assert!(t.iter().all(|&x| x == 0));
    }

    #[test]
    fn vllm_rescales_the_last_arrival_to_n_over_rate() {
        for burstiness in [1.0, 0.25, 4.0, f64::INFINITY] {
            let a = BenchArrival::Vllm {
                rate: 8.0,
                burstiness,
            };
            let t = times(&a, 20000, 3);
            assert_eq!(t.len(), 20000);
            assert!(t.windows(2).all(|w| w[0] <= w[1]));
            // 20000 / 8 = 2500 s, to the nanosecond's rounding.
            assert!(t[19999].abs_diff(2_500_000_000_000) <= 1, "{}", t[19999]);
            // The first request waits one gap.
            assert!(t[0] > 0);
            let (m, cv) = mean_cv(&gaps_s(&t));
            assert!((m - 0.125).abs() < 1e-9, "mean gap {m}");
            // Gamma of shape k has cv 1/sqrt(k).
            let want = 1.0 / burstiness.sqrt();
            assert!(
                (cv - want).abs() < 0.1 * want.max(0.1),
                "cv {cv} want {want}"
            );
        }
    }

    #[test]
    fn vllm_equal_gaps_at_infinite_burstiness() {
        let a = BenchArrival::Vllm {
            rate: 4.0,
            burstiness: f64::INFINITY,
        };
        let t = times(&a, 10, 0);
        let want: Vec<u64> = (1..=10).map(|i| i * 250_000_000).collect();
        assert_eq!(t, want);
    }

    #[test]
    fn ramp_up_moves_the_rate_from_start_to_end() {
        for strategy in [RampUp::Linear, RampUp::Exponential] {
            let a = BenchArrival::VllmRampUp {
                strategy,
                start_rps: 2,
                end_rps: 32,
                burstiness: f64::INFINITY,
            };
            let t = times(&a, 101, 0);
            let g = gaps_s(&t);
            assert!((g[0] - 0.5).abs() < 3e-9, "{}", g[0]);
            assert!((g[100] - 1.0 / 32.0).abs() < 3e-9, "{}", g[100]);
            let mid = match strategy {
                RampUp::Linear => 17.0,
                RampUp::Exponential => 8.0,
            };
            assert!((g[50] - 1.0 / mid).abs() < 3e-9, "{strategy:?} {}", g[50]);
        }
        // With gamma gaps and no rescaling, the gaps keep the rate's mean and shape.
        let a = BenchArrival::VllmRampUp {
            strategy: RampUp::Linear,
            start_rps: 10,
            end_rps: 10,
            burstiness: 1.0,
        };
        let (m, cv) = mean_cv(&gaps_s(&times(&a, 20000, 5)));
        assert!(
            (m - 0.1).abs() < 0.003 && (cv - 1.0).abs() < 0.05,
            "{m} {cv}"
        );
    }

    #[test]
    fn sglang_starts_at_zero_with_exponential_gaps() {
        let a = BenchArrival::Sglang { rate: 5.0 };
        let t = times(&a, 20000, 9);
        assert_eq!(t[0], 0);
        let (m, cv) = mean_cv(&gaps_s(&t[1..]));
        assert!(
            (m - 0.2).abs() < 0.006 && (cv - 1.0).abs() < 0.05,
            "{m} {cv}"
        );
    }

    #[test]
    fn same_seed_same_times_other_seed_other_times() {
        let a = BenchArrival::Vllm {
            rate: 3.0,
            burstiness: 0.5,
        };
        assert_eq!(times(&a, 300, 4), times(&a, 300, 4));
        assert_ne!(times(&a, 300, 4), times(&a, 300, 5));
    }
}
