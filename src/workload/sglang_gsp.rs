//! SGLang's `generated-shared-prefix` benchmark dataset (SGLang 0.5.23,
//! `sglang/benchmark/datasets/generated_shared_prefix.py`,
//! `sample_generated_shared_prefix_requests`, with `compute_random_lens` and `gen_prompt` of
//! `datasets/common.py`; `python -m sglang.bench_serving --dataset-name
//! generated-shared-prefix`), generated from the seed with the same structure, counts and
//! length distributions.
//!
//! What the tool builds, and how it is modelled here:
//! - `gsp_num_groups x gsp_prompts_per_group` requests. Lengths are drawn uniformly from
//!   the integers `[max(int(L x gsp_range_ratio), 1), L]` (ratio 1, the default, gives
//!   exactly `L`): one system-prompt length per group, one question length and one output
//!   length per request.
//! - Group `g`'s system prompt is random token ids decoded to text; a request's prompt is
//!   `system + "\n\n" + question`, which the server tokenizes: decoded random ids
//!   re-tokenize into more tokens (`retokenize_factor`), and the tokenizer adds its BOS
//!   (`bos_tokens`). A prompt is the group's shared segment of `bos_tokens +
//!   round(system_len x retokenize_factor) + separator_tokens` tokens, then its own question
//!   of `round(question_len x retokenize_factor)` tokens. With `tokenize_prompt` (SGLang's
//!   `--tokenize-prompt`) the ids themselves are sent: `system_len` then `question_len`
//!   tokens, no BOS, no separator.
//! - `gsp_group_distribution: uniform` gives every group exactly `gsp_prompts_per_group`
//!   requests; `zipf` draws each request's group with probability proportional to
//!   `1 / rank^gsp_zipf_alpha` (group 0 the hottest).
//! - The list is shuffled (`random.shuffle`) unless `gsp_ordered`. Lengths are independent
//!   of position, so kvsim shuffles only the group labels and draws the lengths as it
//!   emits; the sequence has the tool's distribution.
//! - Outputs are exactly their length: the tool sends `ignore_eos` unless
//!   `--disable-ignore-eos`.
//!
//! Not modelled: `--gsp-num-turns` above 1 (each round is sent when the previous answer
//! has arrived, a closed loop that an arrival-time workload cannot express); the warm-up
//! request the tool sends before the run (the first request with at most 32 output
//! tokens, which leaves that group's system prompt in the cache unless the server's cache
//! is flushed).

use super::bench_arrival::{BenchArrival, BenchTimes};
use super::{mix, RawRequest, Segment};
use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use rand_distr::{Distribution, WeightedIndex};

/// Namespace of this source's content ids.
const NAMESPACE: u64 = 0x7367_6c5f_6773_7000;

/// How requests are spread over the groups.
#[derive(Debug, Clone, PartialEq)]
pub enum GroupDistribution {
    /// `gsp_prompts_per_group` requests each.
    Uniform,
    /// Each request's group drawn with probability proportional to `1 / rank^alpha`.
    Zipf {
        /// The exponent, finite and positive.
        alpha: f64,
    },
}

/// What the server counts for the text the tool sends.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct GspTokens {
    /// Tokens per random id after decoding and re-tokenizing (1 when ids are sent).
    pub retokenize_factor: f64,
    /// Tokens the tokenizer adds in front.
    pub bos_tokens: u32,
    /// Tokens of the `"\n\n"` between system prompt and question.
    pub separator_tokens: u32,
}

/// A checked `sglang_gsp` workload.
#[derive(Debug, Clone, PartialEq)]
pub struct SglangGspSpec {
    /// `--gsp-num-groups`.
    pub num_groups: u32,
    /// `--gsp-prompts-per-group`.
    pub prompts_per_group: u32,
    /// `--gsp-system-prompt-len`: random ids per system prompt (at most).
    pub system_prompt_len: u32,
    /// `--gsp-question-len`: random ids per question (at most).
    pub question_len: u32,
    /// `--gsp-output-len`: output tokens (at most).
    pub output_len: u32,
    /// `--gsp-range-ratio`, in `[0, 1]`.
    pub range_ratio: f64,
    /// `--gsp-ordered`: keep the requests group by group.
    pub ordered: bool,
    /// `--gsp-group-distribution` and `--gsp-zipf-alpha`.
    pub distribution: GroupDistribution,
    /// The server's token counts.
    pub tokens: GspTokens,
    /// When the requests are sent.
    pub arrival: BenchArrival,
}

impl SglangGspSpec {
    /// Requests generated.
    pub fn requests(&self) -> u64 {
        self.num_groups as u64 * self.prompts_per_group as u64
    }

    /// The lengths `compute_random_lens` draws for a target `len`: `(low, high)`.
    pub fn length_range(&self, len: u32) -> (u32, u32) {
        let low = (len as f64 * self.range_ratio) as u32; // Python's int(): toward zero
        (low.clamp(1, len.max(1)), len)
    }

    /// Tokens of a group's shared segment for a system prompt of `ids` random ids.
    pub fn system_tokens(&self, ids: u32) -> u32 {
        let t = &self.tokens;
        t.bos_tokens
            .saturating_add(retokenized(ids, t.retokenize_factor))
            .saturating_add(t.separator_tokens)
    }

    /// Tokens of a question of `ids` random ids.
    pub fn question_tokens(&self, ids: u32) -> u32 {
        retokenized(ids, self.tokens.retokenize_factor)
    }
}

fn retokenized(ids: u32, factor: f64) -> u32 {
    // The loader bounds both, so the product fits.
    (ids as f64 * factor).round().min(u32::MAX as f64) as u32
}

/// Which group each request belongs to, in sending order.
enum Groups {
    /// Group by group (`gsp_ordered`).
    InOrder(u32),
    /// Shuffled labels, one per request.
    Shuffled(Vec<u32>),
    /// Independent draws (zipf; a shuffle of independent draws is again independent).
    Drawn(WeightedIndex<f64>),
}

/// Streams the requests of a [`SglangGspSpec`] in sending order.
pub struct SglangGspGenerator {
    spec: SglangGspSpec,
    rng: StdRng,
    groups: Groups,
    /// Tokens of each group's shared segment.
    system: Vec<u32>,
    times: BenchTimes,
    next: u64,
    seed: u64,
}

impl SglangGspGenerator {
    /// The workload for `seed`. Holds one entry per group and, shuffled uniform groups, one
    /// 4-byte label per request (the loader bounds both).
    pub fn new(spec: &SglangGspSpec, seed: u64) -> Self {
        let mut rng = StdRng::seed_from_u64(mix(NAMESPACE, seed));
        let (lo, hi) = spec.length_range(spec.system_prompt_len);
        let system = (0..spec.num_groups)
            .map(|_| spec.system_tokens(rng.gen_range(lo..=hi)))
            .collect();
        let groups = match &spec.distribution {
            GroupDistribution::Zipf { alpha } => {
                let w = (1..=spec.num_groups).map(|rank| (rank as f64).powf(-alpha));
                match WeightedIndex::new(w) {
                    Ok(d) => Groups::Drawn(d),
                    // Weights underflowing to zero: every request goes to the hottest group.
                    Err(_) => Groups::InOrder(u32::MAX),
                }
            }
            GroupDistribution::Uniform if spec.ordered => Groups::InOrder(spec.prompts_per_group),
            GroupDistribution::Uniform => {
                let mut labels = Vec::with_capacity(spec.requests() as usize);
                for g in 0..spec.num_groups {
                    labels.extend(std::iter::repeat_n(g, spec.prompts_per_group as usize));
                }
                labels.shuffle(&mut rng);
                Groups::Shuffled(labels)
            }
        };
        SglangGspGenerator {
            spec: spec.clone(),
            rng,
            groups,
            system,
            times: BenchTimes::new(&spec.arrival, spec.requests(), seed),
            next: 0,
            seed,
        }
    }

    fn group(&mut self, k: u64) -> u32 {
        match &self.groups {
            Groups::InOrder(per) => (k / (*per).max(1) as u64) as u32,
            Groups::Shuffled(labels) => labels.get(k as usize).copied().unwrap_or(0),
            Groups::Drawn(d) => d.sample(&mut self.rng) as u32,
        }
    }
}

impl Iterator for SglangGspGenerator {
    type Item = RawRequest;

    fn next(&mut self) -> Option<RawRequest> {
        let arrival_ns = self.times.next()?;
        let k = self.next;
        self.next += 1;
        let g = self.group(k);
        let (qlo, qhi) = self.spec.length_range(self.spec.question_len);
        let (olo, ohi) = self.spec.length_range(self.spec.output_len);
        let question = self.spec.question_tokens(self.rng.gen_range(qlo..=qhi));
        let output = self.rng.gen_range(olo..=ohi);
        let system = self.system.get(g as usize).copied().unwrap_or(0);
        Some(RawRequest {
            arrival_ns,
            // The question follows the shared segment, unique to the request.
            input_tokens: system.saturating_add(question),
            output_tokens: output,
            session: None,
            segments: vec![Segment {
                id: mix(NAMESPACE, mix(self.seed, g as u64)),
                tokens: system,
            }],
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn spec() -> SglangGspSpec {
        SglangGspSpec {
            num_groups: 8,
            prompts_per_group: 25,
            system_prompt_len: 2048,
            question_len: 128,
            output_len: 256,
            range_ratio: 1.0,
            ordered: false,
            distribution: GroupDistribution::Uniform,
            tokens: GspTokens {
                retokenize_factor: 1.04,
                bos_tokens: 1,
                separator_tokens: 2,
            },
            arrival: BenchArrival::AllAtOnce,
        }
    }

    fn by_group(r: &[RawRequest]) -> HashMap<u64, usize> {
        let mut m = HashMap::new();
        for q in r {
            *m.entry(q.segments[0].id).or_default() += 1;
        }
        m
    }

    #[test]
    fn groups_share_their_system_prompt_and_lengths_are_exact_at_ratio_one() {
        let r: Vec<RawRequest> = SglangGspGenerator::new(&spec(), 42).collect();
        assert_eq!(r.len(), 200);
        let m = by_group(&r);
        assert_eq!(m.len(), 8);
        assert!(m.values().all(|&c| c == 25));
        // 1 + round(2048 x 1.04) + 2 = 2133 shared; round(128 x 1.04) = 133 own.
        assert!(r
            .iter()
            .all(|q| q.segments[0].tokens == 2133 && q.input_tokens == 2133 + 133));
        assert!(r.iter().all(|q| q.output_tokens == 256));
        // Shuffled: the first 25 requests are not one group.
        assert!(by_group(&r[..25]).len() > 1);
    }

    #[test]
    fn range_ratio_draws_within_sglang_bounds() {
        let mut s = spec();
        s.range_ratio = 0.5;
        s.tokens = GspTokens {
            retokenize_factor: 1.0,
            bos_tokens: 0,
            separator_tokens: 0,
        };
        assert_eq!(s.length_range(256), (128, 256));
        assert_eq!(s.length_range(1), (1, 1));
        let r: Vec<RawRequest> = SglangGspGenerator::new(&s, 1).collect();
        assert!(r.iter().all(|q| (128..=256).contains(&q.output_tokens)));
        let own: Vec<u32> = r
            .iter()
            .map(|q| q.input_tokens - q.segments[0].tokens)
            .collect();
        assert!(own.iter().all(|x| (64..=128).contains(x)));
        assert!(own.iter().min() < own.iter().max());
        // One system length per group: every request of a group has the same one.
        let mut sys = HashMap::new();
        for q in &r {
            let t = sys.entry(q.segments[0].id).or_insert(q.segments[0].tokens);
            assert_eq!(*t, q.segments[0].tokens);
            assert!((1024..=2048).contains(t));
        }
    }

    #[test]
    fn ordered_keeps_groups_together() {
        let mut s = spec();
        s.ordered = true;
        let r: Vec<RawRequest> = SglangGspGenerator::new(&s, 3).collect();
        for (k, q) in r.iter().enumerate() {
            assert_eq!(q.segments[0].id, r[k / 25 * 25].segments[0].id);
        }
        assert_eq!(by_group(&r).len(), 8);
    }

    #[test]
    fn zipf_follows_rank_probabilities() {
        let mut s = spec();
        s.num_groups = 4;
        s.prompts_per_group = 10_000;
        s.distribution = GroupDistribution::Zipf { alpha: 1.0 };
        let r: Vec<RawRequest> = SglangGspGenerator::new(&s, 7).collect();
        assert_eq!(r.len(), 40_000);
        let m = by_group(&r);
        // p(rank) = (1/rank) / (1 + 1/2 + 1/3 + 1/4).
        let h = 1.0 + 0.5 + 1.0 / 3.0 + 0.25;
        for rank in 1..=4u64 {
            let id = mix(NAMESPACE, mix(7, rank - 1));
            let f = *m.get(&id).unwrap_or(&0) as f64 / 40_000.0;
            let p = 1.0 / rank as f64 / h;
            assert!((f - p).abs() < 0.01, "rank {rank}: {f} vs {p}");
        }
    }

    #[test]
    fn same_seed_same_requests() {
        let a: Vec<RawRequest> = SglangGspGenerator::new(&spec(), 1).collect();
        let b: Vec<RawRequest> = SglangGspGenerator::new(&spec(), 1).collect();
        let c: Vec<RawRequest> = SglangGspGenerator::new(&spec(), 2).collect();
        assert_eq!(a, b);
        assert_ne!(a, c);
    }
}
