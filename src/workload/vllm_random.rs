//! The `random` dataset of `vllm bench serve` (vLLM 0.33.0, `vllm/benchmarks/datasets/
//! datasets.py`, `RandomDataset.sample`, and `datasets/utils.py`, `get_sampling_params`),
//! generated from the seed with the same structure, counts and length distributions.
//!
//! What the tool builds, and how it is modelled here:
//! - `num_prompts` requests, in order (no shuffle). With `s` the tokenizer's special tokens
//!   (`num_special_tokens_to_add()`, `bos_tokens` here) and `r_in`, `r_out` the range
//!   ratios, request `i` samples an input length uniformly from the integers
//!   `[floor(L' (1 - r_in)), ceil(L' (1 + r_in))]`, `L' = max(0, random_input_len - s)`, and
//!   an output length from `[max(floor(O (1 - r_out)), 1), max(ceil(O (1 + r_out)), 1)]`,
//!   `O = random_output_len`.
//! - The prompt is one prefix of `random_prefix_len` random token ids, the same for every
//!   request, then the sampled number of ids taken consecutively from the tokenizer's
//!   allowed (non-special) ids, starting at `(offset_i + i) mod A` with `offset_i` uniform in
//!   `[0, vocab_size)` and `A = vocab_size - special_ids`. The tool decodes the ids to text
//!   and re-encodes it, truncating or topping up until the count is exact, so the server
//!   sees `s + random_prefix_len + sampled` tokens: its tokenizer adds the special tokens
//!   back. The retokenization can change a token where the prefix meets the rest; kvsim
//!   keeps the counts exact and the prefix whole.
//! - Two requests whose start ids coincide send the same consecutive ids and so share
//!   their prompt up to the shorter one (with a 32000-id vocabulary and 1000 prompts, about
//!   16 such pairs); kvsim gives that run the start's content id, so the cache sees it too.
//! - The output length is sent as `max_tokens`; every response is taken to be that long (as
//!   with `--ignore-eos`; without it a model may stop earlier).

use super::bench_arrival::{BenchArrival, BenchTimes};
use super::{mix, RawRequest, Segment};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

/// Namespace of this source's content ids.
const NAMESPACE: u64 = 0x766c_6c6d_5f72_6e64;

/// A checked `vllm_random` workload.
#[derive(Debug, Clone, PartialEq)]
pub struct VllmRandomSpec {
    /// Requests (`--num-prompts`).
    pub num_prompts: u64,
    /// `--random-input-len`: tokens per prompt, special tokens and prefix aside.
    pub input_len: u32,
    /// `--random-output-len`.
    pub output_len: u32,
    /// Range ratio of the input length, in `[0, 1)`.
    pub input_range_ratio: f64,
    /// Range ratio of the output length, in `[0, 1)`.
    pub output_range_ratio: f64,
    /// `--random-prefix-len`: random ids shared by every prompt.
    pub prefix_len: u32,
    /// Special tokens the tokenizer adds to a prompt (`num_special_tokens_to_add()`).
    pub bos_tokens: u32,
    /// The tokenizer's `vocab_size`.
    pub vocab_size: u32,
    /// How many of those ids are special (`len(all_special_ids)`), never sampled.
    pub special_ids: u32,
    /// When the requests are sent.
    pub arrival: BenchArrival,
}

impl VllmRandomSpec {
    /// The sampled input lengths, `(low, high)`, special tokens and prefix not included.
    pub fn input_range(&self) -> (u64, u64) {
        let real = self.input_len.saturating_sub(self.bos_tokens) as f64;
        let r = self.input_range_ratio;
        (
            (real * (1.0 - r)).floor() as u64,
            (real * (1.0 + r)).ceil() as u64,
        )
    }

    /// The output lengths, `(low, high)`.
    pub fn output_range(&self) -> (u64, u64) {
        let o = self.output_len as f64;
        let r = self.output_range_ratio;
        (
            ((o * (1.0 - r)).floor() as u64).max(1),
            ((o * (1.0 + r)).ceil() as u64).max(1),
        )
    }

    /// Tokens every prompt shares: the special tokens and the prefix.
    pub fn shared_tokens(&self) -> u64 {
        self.bos_tokens as u64 + self.prefix_len as u64
    }

    /// Allowed (non-special) token ids, from which the consecutive runs are taken.
    pub fn allowed_ids(&self) -> u64 {
        self.vocab_size.saturating_sub(self.special_ids) as u64
    }
}

/// Streams the requests of a [`VllmRandomSpec`] in sending order.
pub struct VllmRandomGenerator {
    spec: VllmRandomSpec,
    rng: StdRng,
    times: BenchTimes,
    next: u64,
    prefix_id: u64,
    input: (u64, u64),
    output: (u64, u64),
}

impl VllmRandomGenerator {
    /// The workload for `seed` (the spec must have been checked by the scenario loader).
    pub fn new(spec: &VllmRandomSpec, seed: u64) -> Self {
        VllmRandomGenerator {
            spec: spec.clone(),
            rng: StdRng::seed_from_u64(mix(NAMESPACE, seed)),
            times: BenchTimes::new(&spec.arrival, spec.num_prompts, seed),
            next: 0,
            prefix_id: mix(NAMESPACE, mix(1, seed)),
            input: spec.input_range(),
            output: spec.output_range(),
        }
    }
}

impl Iterator for VllmRandomGenerator {
    type Item = RawRequest;

    fn next(&mut self) -> Option<RawRequest> {
        let arrival_ns = self.times.next()?;
        let i = self.next;
        self.next += 1;
        let sampled = self.rng.gen_range(self.input.0..=self.input.1);
        let output = self.rng.gen_range(self.output.0..=self.output.1);
        let offset = self.rng.gen_range(0..self.spec.vocab_size.max(1) as u64);
        let start = (offset + i) % self.spec.allowed_ids().max(1);
        let shared = self.spec.shared_tokens();
        let mut segments = Vec::with_capacity(2);
        if shared > 0 {
            segments.push(Segment {
                id: self.prefix_id,
                tokens: clamp_u32(shared),
            });
        }
        if sampled > 0 {
            segments.push(Segment {
                id: mix(NAMESPACE, mix(2, start)),
                tokens: clamp_u32(sampled),
            });
        }
        Some(RawRequest {
            arrival_ns,
            // The loader bounds the lengths far below u32::MAX.
            input_tokens: clamp_u32(shared + sampled),
            output_tokens: clamp_u32(output),
            session: None,
            segments,
        })
    }
}

fn clamp_u32(x: u64) -> u32 {
    x.min(u32::MAX as u64) as u32
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec() -> VllmRandomSpec {
        VllmRandomSpec {
            num_prompts: 3000,
            input_len: 1024,
            output_len: 128,
            input_range_ratio: 0.25,
            output_range_ratio: 0.5,
            prefix_len: 100,
            bos_tokens: 1,
            vocab_size: 32000,
            special_ids: 3,
            arrival: BenchArrival::AllAtOnce,
        }
    }

    #[test]
    fn ranges_follow_vllm_formula() {
        let s = spec();
        // L' = 1023: floor(1023 x 0.75) = 767, ceil(1023 x 1.25) = 1279.
        assert_eq!(s.input_range(), (767, 1279));
        // floor(128 x 0.5) = 64, ceil(128 x 1.5) = 192.
        assert_eq!(s.output_range(), (64, 192));
        let mut z = s.clone();
        z.output_len = 0;
        z.input_range_ratio = 0.0;
        z.output_range_ratio = 0.0;
        assert_eq!(z.output_range(), (1, 1));
        assert_eq!(z.input_range(), (1023, 1023));
    }

    #[test]
    fn lengths_cover_the_ranges_uniformly() {
        let s = spec();
        let r: Vec<RawRequest> = VllmRandomGenerator::new(&s, 1).collect();
        assert_eq!(r.len(), 3000);
        let sampled: Vec<u64> = r.iter().map(|q| q.input_tokens as u64 - 101).collect();
        assert!(sampled.iter().all(|&x| (767..=1279).contains(&x)));
        assert_eq!(*sampled.iter().min().unwrap(), 767);
        assert_eq!(*sampled.iter().max().unwrap(), 1279);
        let mean = sampled.iter().sum::<u64>() as f64 / 3000.0;
        assert!((mean - 1023.0).abs() < 6.0, "{mean}");
        assert!(r.iter().all(|q| (64..=192).contains(&q.output_tokens)));
        // Every prompt starts with the same 101 tokens (BOS and prefix).
        assert!(r.iter().all(|q| q.segments[0] == r[0].segments[0]));
        assert_eq!(r[0].segments[0].tokens, 101);
        assert!(r.iter().all(|q| q.arrival_ns == 0));
    }

    #[test]
    fn coinciding_starts_share_their_tokens() {
        // Four allowed ids: 40 prompts must reuse starts; each run's content is its start.
        let mut s = spec();
        s.num_prompts = 40;
        s.vocab_size = 7;
        let r: Vec<RawRequest> = VllmRandomGenerator::new(&s, 2).collect();
        let starts: std::collections::HashSet<u64> = r.iter().map(|q| q.segments[1].id).collect();
        assert_eq!(starts.len(), 4);
        // With a vocabulary as large as u32 allows, 3000 starts are all distinct (in all
        // likelihood; this seed shows it).
        s.vocab_size = u32::MAX;
        s.num_prompts = 3000;
        let r: Vec<RawRequest> = VllmRandomGenerator::new(&s, 2).collect();
        let starts: std::collections::HashSet<u64> = r.iter().map(|q| q.segments[1].id).collect();
        assert_eq!(starts.len(), 3000);
    }

    #[test]
    fn same_seed_same_requests() {
        let a: Vec<RawRequest> = VllmRandomGenerator::new(&spec(), 5).collect();
        let b: Vec<RawRequest> = VllmRandomGenerator::new(&spec(), 5).collect();
        let c: Vec<RawRequest> = VllmRandomGenerator::new(&spec(), 6).collect();
        assert_eq!(a, b);
        assert_ne!(a, c);
    }
}
