//! The `shared_prefix` workload of inference-perf (kubernetes-sigs/inference-perf, as of
//! February 2026, `datagen/shared_prefix_datagen.py` and `loadgen/`), so that kvsim replays
//! what its experiments sent to a vLLM server.
//!
//! What the tool sends, and how it is modelled here:
//! - `num_groups` system prompts of `system_prompt_len` random token ids, each shared by
//!   `num_prompts_per_group` questions of `question_len` random token ids; every question is
//!   fixed for the whole run. A prompt is the system text, a space and the question text, sent
//!   to `/v1/completions`. Random ids decoded to text re-tokenize into about 4 % more tokens
//!   (`retokenize_factor`), and the server adds a BOS token (`bos_tokens`): a prompt is two
//!   segments, the group's system prompt of `bos + round(system_prompt_len x factor)` tokens
//!   and the question of `round(question_len x factor)` tokens.
//! - The (prompt, output) pairs are shuffled once and sent round robin; the index restarts
//!   at the first pair in each stage.
//! - `output_len` is `max_tokens` with `ignore_eos`: every response is exactly that long.
//! - Load `constant`: a stage of `rate` requests/s for `duration` seconds sends
//!   `floor(rate x duration)` requests at the running sums of exponential gaps rescaled to
//!   sum to `duration` (random times, the last one at the stage's end). The next stage starts
//!   `stage_gap_s` after the previous one's last arrival; the tool waits for the previous
//!   stage's requests to finish, then its interval (1 s) and a 1 s start offset.
//!
//! `enable_multi_turn_chat` and the `num_unique_system_prompts` / `num_users_per_system_prompt`
//! aliases are not modelled: the February 2026 runs in `../shared/fidelity` record
//! `num_groups: 10, num_prompts_per_group: 10` and no multi-turn field in their
//! `results/config.yaml`, and their flat prompt lengths (mean 575.5, max 592) show no history.

use super::{mix, RawRequest, Segment, NS_PER_S};
use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::SeedableRng;
use rand_distr::{Distribution, Exp};

/// One constant-rate stage.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Stage {
    /// Requests per second.
    pub rate: f64,
    /// Seconds.
    pub duration_s: f64,
}

/// A checked `shared_prefix` workload.
#[derive(Debug, Clone, PartialEq)]
pub struct SharedPrefixSpec {
    /// System prompts.
    pub num_groups: u32,
    /// Questions per system prompt.
    pub num_prompts_per_group: u32,
    /// Random token ids in a system prompt.
    pub system_prompt_len: u32,
    /// Random token ids in a question.
    pub question_len: u32,
    /// Output tokens of every request.
    pub output_len: u32,
    /// Tokens the server counts per random token id sent (decoded text re-tokenized).
    pub retokenize_factor: f64,
    /// Tokens the server adds at the start of a prompt.
    pub bos_tokens: u32,
    /// The load stages, in order.
    pub stages: Vec<Stage>,
    /// Seconds from a stage's last arrival to the next stage's start.
    pub stage_gap_s: f64,
}

impl SharedPrefixSpec {
    /// Tokens of a system prompt as served (BOS included).
    pub fn system_tokens(&self) -> u32 {
        self.bos_tokens + (self.system_prompt_len as f64 * self.retokenize_factor).round() as u32
    }

    /// Tokens of a question as served.
    pub fn question_tokens(&self) -> u32 {
        (self.question_len as f64 * self.retokenize_factor).round() as u32
    }

    /// Requests over all stages.
    pub fn requests(&self) -> u64 {
        self.stages.iter().map(stage_requests).sum()
    }
}

fn stage_requests(s: &Stage) -> u64 {
    (s.rate * s.duration_s).floor() as u64
}

/// Generates the requests of a [`SharedPrefixSpec`], in arrival order.
pub struct SharedPrefixGenerator {
    spec: SharedPrefixSpec,
    /// (group, question) pairs in sending order.
    pairs: Vec<(u32, u32)>,
    rng: StdRng,
    /// Arrival times of the current stage, nanoseconds, and the next one to send.
    times: Vec<u64>,
    next: usize,
    stage: usize,
    stage_start_ns: f64,
}

impl SharedPrefixGenerator {
    /// The workload for `seed`.
    pub fn new(spec: &SharedPrefixSpec, seed: u64) -> Self {
        let mut rng = StdRng::seed_from_u64(mix(0x7368_7072, seed));
        let mut pairs: Vec<(u32, u32)> = (0..spec.num_groups)
            .flat_map(|g| (0..spec.num_prompts_per_group).map(move |q| (g, q)))
            .collect();
        pairs.shuffle(&mut rng);
        let mut g = SharedPrefixGenerator {
            spec: spec.clone(),
            pairs,
            rng,
            times: Vec::new(),
            next: 0,
            stage: 0,
            stage_start_ns: 0.0,
        };
        g.plan_stage();
        g
    }

    /// Draw the arrival times of the current stage (if any is left).
    fn plan_stage(&mut self) {
        self.times.clear();
        self.next = 0;
        let Some(s) = self.spec.stages.get(self.stage).copied() else {
            return;
        };
        let n = stage_requests(&s) as usize;
        let exp = Exp::new(s.rate).expect("rate > 0");
        let gaps: Vec<f64> = (0..n).map(|_| exp.sample(&mut self.rng)).collect();
        let total: f64 = gaps.iter().sum();
        let scale = if total > 0.0 {
            s.duration_s / total
        } else {
            0.0
        };
        let mut t = 0.0;
        for g in gaps {
            t += g * scale;
            self.times
                .push((self.stage_start_ns + t * NS_PER_S).round() as u64);
        }
    }

    /// Move to the next stage, starting `stage_gap_s` after this one's last arrival.
    fn next_stage(&mut self) {
        let s = self.spec.stages[self.stage];
        self.stage_start_ns += (s.duration_s + self.spec.stage_gap_s) * NS_PER_S;
        self.stage += 1;
        self.plan_stage();
    }
}

impl Iterator for SharedPrefixGenerator {
    type Item = RawRequest;

    fn next(&mut self) -> Option<RawRequest> {
        while self.next >= self.times.len() {
            if self.stage >= self.spec.stages.len() {
                return None;
            }
            self.next_stage();
        }
        let (g, q) = self.pairs[self.next % self.pairs.len()];
        let arrival_ns = self.times[self.next];
        self.next += 1;
        let (sys, question) = (self.spec.system_tokens(), self.spec.question_tokens());
        Some(RawRequest {
            arrival_ns,
            input_tokens: sys + question,
            output_tokens: self.spec.output_len,
            session: None,
            segments: vec![
                Segment {
                    id: mix(0x7368_7379, g as u64),
                    tokens: sys,
                },
                Segment {
                    id: mix(0x7368_7175, ((g as u64) << 32) | q as u64),
                    tokens: question,
                },
            ],
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec() -> SharedPrefixSpec {
        SharedPrefixSpec {
            num_groups: 10,
            num_prompts_per_group: 10,
            system_prompt_len: 100,
            question_len: 447,
            output_len: 248,
            retokenize_factor: 1.04,
            bos_tokens: 1,
            stages: vec![
                Stage {
                    rate: 8.0,
                    duration_s: 600.0,
                },
                Stage {
                    rate: 20.0,
                    duration_s: 600.0,
                },
            ],
            stage_gap_s: 2.0,
        }
    }

    #[test]
    fn stages_send_rate_times_duration_requests_within_their_windows() {
        let reqs: Vec<RawRequest> = SharedPrefixGenerator::new(&spec(), 7).collect();
        assert_eq!(reqs.len(), 4800 + 12000);
        assert!(reqs.windows(2).all(|w| w[0].arrival_ns <= w[1].arrival_ns));
        let (a, b) = reqs.split_at(4800);
        assert!(a.iter().all(|r| r.arrival_ns <= 600_000_000_000));
        // The last arrival of a stage is at its end (rounding aside).
        assert!(a[4799].arrival_ns.abs_diff(600_000_000_000) <= 1);
        assert!(b[0].arrival_ns > 602_000_000_000);
        assert!(b[11999].arrival_ns.abs_diff(1_202_000_000_000) <= 1);
    }

    #[test]
    fn prompts_share_their_group_system_prompt_and_repeat_round_robin() {
        let s = spec();
        let reqs: Vec<RawRequest> = SharedPrefixGenerator::new(&s, 7).collect();
        assert_eq!((s.system_tokens(), s.question_tokens()), (105, 465));
        assert!(reqs
            .iter()
            .all(|r| r.input_tokens == 570 && r.output_tokens == 248));
        // 100 distinct prompts, cycled: request n and n + 100 are the same prompt.
        let distinct: std::collections::HashSet<u64> =
            reqs.iter().map(|r| r.segments[1].id).collect();
        assert_eq!(distinct.len(), 100);
        assert_eq!(reqs[3].segments, reqs[103].segments);
        // Each stage restarts at the first pair.
        assert_eq!(reqs[0].segments, reqs[4800].segments);
        // Ten system prompts, each under ten questions.
        let mut by_sys = std::collections::HashMap::<u64, std::collections::HashSet<u64>>::new();
        for r in &reqs[..100] {
            by_sys
                .entry(r.segments[0].id)
                .or_default()
                .insert(r.segments[1].id);
        }
        assert_eq!(by_sys.len(), 10);
        assert!(by_sys.values().all(|q| q.len() == 10));
    }

    #[test]
    fn the_same_seed_gives_the_same_workload() {
        let a: Vec<RawRequest> = SharedPrefixGenerator::new(&spec(), 3).take(500).collect();
        let b: Vec<RawRequest> = SharedPrefixGenerator::new(&spec(), 3).take(500).collect();
        let c: Vec<RawRequest> = SharedPrefixGenerator::new(&spec(), 4).take(500).collect();
        assert_eq!(a, b);
        assert_ne!(a, c);
    }
}
