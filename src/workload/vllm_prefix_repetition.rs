//! The `prefix_repetition` dataset of `vllm bench serve` (vLLM 0.33.0,
//! `vllm/benchmarks/datasets/datasets.py`, `PrefixRepetitionRandomDataset.sample`), generated
//! from the seed with the same structure and counts.
//!
//! What the tool builds, and how it is modelled here:
//! - `num_prefixes` prefixes of `prefix_len` random token ids, each followed by
//!   `num_prompts // num_prefixes` suffixes of `suffix_len` random ids, every suffix its own:
//!   `num_prefixes x (num_prompts // num_prefixes)` requests in all (the remainder of the
//!   division is dropped, and the tool refuses fewer prompts than prefixes).
//! - Prefix and suffix are each decoded and re-encoded until their count is exact, then the
//!   two are joined and decoded to one text, which the server tokenizes, adding its special
//!   tokens (`bos_tokens`): a prompt is `bos_tokens + prefix_len` tokens shared with the
//!   other prompts of its prefix, then `suffix_len` tokens of its own. A token may change
//!   where prefix and suffix meet when the server re-encodes the text; kvsim keeps both
//!   whole.
//! - The list, built prefix by prefix, is shuffled (`random.shuffle`) unless
//!   `--disable-shuffle`.
//! - Every response is `output_len` tokens (`max_tokens`; exactly so with `--ignore-eos`).

use super::bench_arrival::{BenchArrival, BenchTimes};
use super::{mix, RawRequest, Segment};
use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::SeedableRng;

/// Namespace of this source's content ids.
const NAMESPACE: u64 = 0x766c_6c6d_5f70_7265;

/// A checked `vllm_prefix_repetition` workload.
#[derive(Debug, Clone, PartialEq)]
pub struct VllmPrefixRepetitionSpec {
    /// `--num-prompts`.
    pub num_prompts: u64,
    /// `--prefix-repetition-prefix-len`.
    pub prefix_len: u32,
    /// `--prefix-repetition-suffix-len`.
    pub suffix_len: u32,
    /// `--prefix-repetition-num-prefixes`, at least 1 and at most `num_prompts`.
    pub num_prefixes: u64,
    /// `--prefix-repetition-output-len`.
    pub output_len: u32,
    /// `--disable-shuffle`: keep the requests prefix by prefix.
    pub disable_shuffle: bool,
    /// Special tokens the server's tokenizer adds in front of a prompt.
    pub bos_tokens: u32,
    /// When the requests are sent.
    pub arrival: BenchArrival,
}

impl VllmPrefixRepetitionSpec {
    /// Prompts per prefix.
    pub fn prompts_per_prefix(&self) -> u64 {
        self.num_prompts / self.num_prefixes.max(1)
    }

    /// Requests generated.
    pub fn requests(&self) -> u64 {
        self.num_prefixes * self.prompts_per_prefix()
    }

    /// Tokens a prompt shares with the others of its prefix.
    pub fn shared_tokens(&self) -> u32 {
        self.bos_tokens.saturating_add(self.prefix_len)
    }
}

/// Streams the requests of a [`VllmPrefixRepetitionSpec`] in sending order.
pub struct VllmPrefixRepetitionGenerator {
    spec: VllmPrefixRepetitionSpec,
    /// Prefix of each position after the shuffle (empty without the shuffle).
    order: Vec<u32>,
    times: BenchTimes,
    next: u64,
    seed: u64,
}

impl VllmPrefixRepetitionGenerator {
    /// The workload for `seed`. Holds one 4-byte entry per request to shuffle (the loader
    /// bounds `num_prompts`).
    pub fn new(spec: &VllmPrefixRepetitionSpec, seed: u64) -> Self {
        let n = spec.requests();
        let mut order = Vec::new();
        if !spec.disable_shuffle {
            let per = spec.prompts_per_prefix();
            order.reserve(n as usize);
            for g in 0..spec.num_prefixes {
                order.extend(std::iter::repeat_n(g as u32, per as usize));
            }
            order.shuffle(&mut StdRng::seed_from_u64(mix(NAMESPACE, seed)));
        }
        VllmPrefixRepetitionGenerator {
            spec: spec.clone(),
            order,
            times: BenchTimes::new(&spec.arrival, n, seed),
            next: 0,
            seed,
        }
    }
}

impl Iterator for VllmPrefixRepetitionGenerator {
    type Item = RawRequest;

    fn next(&mut self) -> Option<RawRequest> {
        let arrival_ns = self.times.next()?;
        let k = self.next;
        self.next += 1;
        let prefix = match self.order.get(k as usize) {
            Some(&g) => g as u64,
            None => k / self.spec.prompts_per_prefix().max(1),
        };
        let shared = self.spec.shared_tokens();
        let mut segments = Vec::with_capacity(1);
        if shared > 0 {
            segments.push(Segment {
                id: mix(NAMESPACE, mix(self.seed, prefix)),
                tokens: shared,
            });
        }
        Some(RawRequest {
            arrival_ns,
            // The suffix follows, unique to the request.
            input_tokens: shared.saturating_add(self.spec.suffix_len),
            output_tokens: self.spec.output_len,
            session: None,
            segments,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn spec() -> VllmPrefixRepetitionSpec {
        VllmPrefixRepetitionSpec {
            num_prompts: 1003,
            prefix_len: 256,
            suffix_len: 256,
            num_prefixes: 10,
            output_len: 128,
            disable_shuffle: false,
            bos_tokens: 1,
            arrival: BenchArrival::AllAtOnce,
        }
    }

    fn per_prefix(r: &[RawRequest]) -> HashMap<u64, usize> {
        let mut m = HashMap::new();
        for q in r {
            *m.entry(q.segments[0].id).or_default() += 1;
        }
        m
    }

    #[test]
    fn ten_prefixes_of_floor_n_over_ten_prompts_shuffled() {
        let r: Vec<RawRequest> = VllmPrefixRepetitionGenerator::new(&spec(), 3).collect();
        // 1003 // 10 = 100 per prefix: 1000 requests, the remainder dropped.
        assert_eq!(r.len(), 1000);
        let m = per_prefix(&r);
        assert_eq!(m.len(), 10);
        assert!(m.values().all(|&c| c == 100));
        assert!(r
            .iter()
            .all(|q| q.input_tokens == 513 && q.output_tokens == 128));
        assert_eq!(r[0].segments[0].tokens, 257);
        // Shuffled: the first hundred are not all one prefix.
        assert!(per_prefix(&r[..100]).len() > 1);
    }

    #[test]
    fn disable_shuffle_keeps_prefix_order() {
        let mut s = spec();
        s.disable_shuffle = true;
        let r: Vec<RawRequest> = VllmPrefixRepetitionGenerator::new(&s, 3).collect();
        for (k, q) in r.iter().enumerate() {
            assert_eq!(q.segments[0], r[k / 100 * 100].segments[0]);
        }
        assert_ne!(r[99].segments[0], r[100].segments[0]);
    }

    #[test]
    fn same_seed_same_order() {
        let a: Vec<RawRequest> = VllmPrefixRepetitionGenerator::new(&spec(), 1).collect();
        let b: Vec<RawRequest> = VllmPrefixRepetitionGenerator::new(&spec(), 1).collect();
        let c: Vec<RawRequest> = VllmPrefixRepetitionGenerator::new(&spec(), 2).collect();
        assert_eq!(a, b);
        assert_ne!(a, c);
    }
}
