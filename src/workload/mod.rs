//! Requests and where they come from. Every reader streams its file: it holds one row (and a
//! small reorder window) at a time, never the whole trace.

pub mod arrivals;
pub mod azure;
pub mod bailian;
pub mod bench_arrival;
pub mod burstgpt;
pub mod check;
pub mod clock;
pub mod json_stream;
pub mod kv_cache_tester;
pub mod lines;
pub mod mooncake;
pub mod native;
pub mod ragpulse;
pub mod schedule;
pub mod sglang_gsp;
pub mod shared_prefix;
pub mod sharegpt;
pub mod stats;
pub mod synth;
pub mod tokenizer;
pub mod vllm_bench;
pub mod vllm_prefix_repetition;
pub mod vllm_random;

use crate::error::{Error, Result};
use crate::scenario::Workload;
use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::path::PathBuf;

/// Nanoseconds per second.
pub const NS_PER_S: f64 = 1e9;

/// A run of prompt tokens with one content identity. Two requests whose prompts start with
/// the same chain of segment ids share exactly those tokens.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Segment {
    /// Content id (namespaced by the reader so that ids of different kinds never collide).
    pub id: u64,
    /// Tokens in the segment.
    pub tokens: u32,
}

/// One request as the simulator sees it.
#[derive(Debug, Clone, PartialEq)]
pub struct Request {
    /// Position in the replayed workload, from 0.
    pub id: u64,
    /// Arrival time, nanoseconds from the start of the replay.
    pub arrival_ns: u64,
    /// Prompt tokens.
    pub input_tokens: u32,
    /// Output tokens to generate.
    pub output_tokens: u32,
    /// Session (conversation) identifier, if the trace has one.
    pub session: Option<u64>,
    /// Content as segments, in order: the prompt's, then, past `input_tokens`, the
    /// output's when a later prompt repeats it (a conversation's answer, which the next
    /// turn's prompt holds under the same segment id, so that the answer's cached blocks
    /// are hit). Prompt tokens past the segments, and output tokens past them, are unique
    /// to the request; the output is identified only if the segments cover the whole prompt
    /// (a reader trims a segment its format lets run past the prompt's end).
    pub segments: Vec<Segment>,
}

/// A stream of requests in arrival order.
pub type RequestStream = Box<dyn Iterator<Item = Result<Request>>>;

/// A request as a reader produces it: arrival relative to the trace's own zero.
#[derive(Debug, Clone, PartialEq)]
pub struct RawRequest {
    /// Arrival, nanoseconds from the trace's first row (may be out of order in the file).
    pub arrival_ns: u64,
    /// Prompt tokens.
    pub input_tokens: u32,
    /// Output tokens.
    pub output_tokens: u32,
    /// Session identifier.
    pub session: Option<u64>,
    /// Content: the prompt's segments, then the output's ([`Request::segments`]).
    pub segments: Vec<Segment>,
}

/// Mix two 64-bit values into one (splitmix64 finaliser over a combination). Deterministic
/// across platforms and runs.
pub fn mix(a: u64, b: u64) -> u64 {
    let mut z = a.rotate_left(29) ^ b.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ 0xD6E8_FEB8_6659_FD93;
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// Hash a string (session ids) to 64 bits, FNV-1a.
pub fn hash_str(s: &str) -> u64 {
    s.bytes().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ b as u64).wrapping_mul(0x100_0000_01b3)
    })
}

/// A resolved request source.
#[derive(Debug, Clone, PartialEq)]
pub enum Source {
    /// Mooncake JSON lines with `block_tokens`-token hash blocks.
    Mooncake {
        /// Trace file.
        path: PathBuf,
        /// Tokens per hash block.
        block_tokens: u32,
    },
    /// Azure LLM inference CSV.
    Azure {
        /// Trace file.
        path: PathBuf,
    },
    /// RAGPulse JSON lines (side files beside it).
    Ragpulse {
        /// Trace file.
        path: PathBuf,
    },
    /// Native kvsim CSV.
    Native {
        /// Trace file.
        path: PathBuf,
    },
    /// `vllm bench serve --save-result --save-detailed` JSON.
    VllmBench {
        /// Result file.
        path: PathBuf,
    },
    /// Generated.
    Synthetic(synth::SynthSpec),
    /// inference-perf's `shared_prefix` workload, generated.
    SharedPrefix(shared_prefix::SharedPrefixSpec),
    /// SGLang bench's `generated-shared-prefix` dataset, generated.
    SglangGsp(sglang_gsp::SglangGspSpec),
    /// vLLM bench's `random` dataset, generated.
    VllmRandom(vllm_random::VllmRandomSpec),
    /// vLLM bench's `prefix_repetition` dataset, generated.
    VllmPrefixRepetition(vllm_prefix_repetition::VllmPrefixRepetitionSpec),
    /// ShareGPT conversations (JSON array or JSON lines), tokenized, as sessions.
    Sharegpt(sharegpt::SharegptSpec),
    /// BurstGPT CSV.
    Burstgpt {
        /// Trace file.
        path: PathBuf,
    },
    /// Alibaba Bailian (Qwen) usage-trace JSON lines.
    Bailian {
        /// Trace file.
        path: PathBuf,
        /// Tokens per hash block.
        block_tokens: u32,
        /// Chats whose session the reader remembers.
        max_tracked_chats: u64,
    },
    /// kv-cache-tester agentic coding traces (a file or a directory of them).
    KvCacheTester(kv_cache_tester::KvCacheTesterSpec),
}

/// Open a source as a stream of raw requests.
pub fn open_raw(
    source: &Source,
    seed: u64,
) -> Result<Box<dyn Iterator<Item = Result<RawRequest>>>> {
    Ok(match source {
        Source::Mooncake { path, block_tokens } => Box::new(mooncake::open(path, *block_tokens)?),
        Source::Azure { path } => Box::new(azure::open(path)?),
        Source::Ragpulse { path } => Box::new(ragpulse::open(path)?),
        Source::Native { path } => Box::new(native::NativeReader::open(path)?),
        Source::VllmBench { path } => Box::new(vllm_bench::raw_requests(path)?),
        Source::Synthetic(spec) => Box::new(synth::SynthGenerator::new(spec, seed).map(Ok)),
        Source::SharedPrefix(spec) => {
            Box::new(shared_prefix::SharedPrefixGenerator::new(spec, seed).map(Ok))
        }
        Source::SglangGsp(spec) => {
            Box::new(sglang_gsp::SglangGspGenerator::new(spec, seed).map(Ok))
        }
        Source::VllmRandom(spec) => {
            Box::new(vllm_random::VllmRandomGenerator::new(spec, seed).map(Ok))
        }
        Source::VllmPrefixRepetition(spec) => {
            Box::new(vllm_prefix_repetition::VllmPrefixRepetitionGenerator::new(spec, seed).map(Ok))
        }
        Source::Sharegpt(spec) => Box::new(sharegpt::SharegptGenerator::open(spec, seed)?),
        Source::Burstgpt { path } => Box::new(burstgpt::BurstgptReader::open(path)?),
        Source::Bailian {
            path,
            block_tokens,
            max_tracked_chats,
        } => Box::new(bailian::BailianReader::open(
            path,
            *block_tokens,
            *max_tracked_chats,
        )?),
        Source::KvCacheTester(spec) => {
            Box::new(kv_cache_tester::KvCacheTesterGenerator::open(spec, seed)?)
        }
    })
}

/// Open the workload with its time window, scaling and limit applied.
pub fn open(w: &Workload, seed: u64) -> Result<RequestStream> {
    let source = w
        .source
        .resolve()
        .map_err(|(f, m)| Error::input(format!("workload.source.{f}: {m}")))?;
    let raw = open_raw(&source, seed)?;
    Ok(Box::new(Transform::new(raw, w)))
}

/// How many rows may arrive out of order and still be put back in order.
pub(crate) const REORDER_WINDOW: usize = 4096;

/// Applies ordering, the time window, time and rate scaling and the request limit.
struct Transform {
    inner: Box<dyn Iterator<Item = Result<RawRequest>>>,
    heap: BinaryHeap<Reverse<(u64, u64, HeapItem)>>,
    seq: u64,
    inner_done: bool,
    start_ns: u64,
    end_ns: Option<u64>,
    factor: f64,
    limit: Option<u64>,
    emitted: u64,
    last_raw_ns: u64,
}

#[derive(Debug, PartialEq)]
struct HeapItem(RawRequest);
impl Eq for HeapItem {}
impl PartialOrd for HeapItem {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for HeapItem {
    fn cmp(&self, _: &Self) -> std::cmp::Ordering {
        std::cmp::Ordering::Equal
    }
}

impl Transform {
    fn new(inner: Box<dyn Iterator<Item = Result<RawRequest>>>, w: &Workload) -> Self {
        Transform {
            inner,
            heap: BinaryHeap::new(),
            seq: 0,
            inner_done: false,
            start_ns: (w.start_s.unwrap_or(0.0) * NS_PER_S) as u64,
            end_ns: w.end_s.map(|e| (e * NS_PER_S) as u64),
            factor: w.time_scale / w.rate_scale,
            limit: w.limit,
            emitted: 0,
            last_raw_ns: 0,
        }
    }

    /// The next raw request in arrival order, using a bounded reorder window.
    fn next_ordered(&mut self) -> Option<Result<RawRequest>> {
        while !self.inner_done && self.heap.len() < REORDER_WINDOW {
            match self.inner.next() {
                Some(Ok(r)) => {
                    self.seq += 1;
                    self.heap
                        .push(Reverse((r.arrival_ns, self.seq, HeapItem(r))));
                }
                Some(Err(e)) => return Some(Err(e)),
                None => self.inner_done = true,
            }
        }
        let Reverse((_, _, HeapItem(r))) = self.heap.pop()?;
        if r.arrival_ns < self.last_raw_ns {
            return Some(Err(Error::input(format!(
                "trace rows are out of order by more than {REORDER_WINDOW} rows; sort the trace first"
            ))));
        }
        self.last_raw_ns = r.arrival_ns;
        Some(Ok(r))
    }
}

impl Iterator for Transform {
    type Item = Result<Request>;

    fn next(&mut self) -> Option<Result<Request>> {
        if self.limit.is_some_and(|l| self.emitted >= l) {
            return None;
        }
        loop {
            let r = match self.next_ordered()? {
                Ok(r) => r,
                Err(e) => return Some(Err(e)),
            };
            if r.arrival_ns < self.start_ns {
                continue;
            }
            if self.end_ns.is_some_and(|e| r.arrival_ns >= e) {
                // Rows are in order, so nothing later can fall inside the window.
                self.inner_done = true;
                self.heap.clear();
                return None;
            }
            // Every trace reader checks this naming its row; generators are checked here.
            if let Err(e) = check::request_tokens(
                &format!("request {} of the workload", self.emitted),
                r.input_tokens as u64,
                r.output_tokens as u64,
            ) {
                return Some(Err(e));
            }
            let offset = r.arrival_ns - self.start_ns;
            let arrival_ns = if self.factor == 1.0 {
                offset
            } else {
                (offset as f64 * self.factor).round() as u64
            };
            let req = Request {
                id: self.emitted,
                arrival_ns,
                input_tokens: r.input_tokens,
                output_tokens: r.output_tokens,
                session: r.session,
                segments: r.segments,
            };
            self.emitted += 1;
            return Some(Ok(req));
        }
    }
}

/// Format a `file:row` location for messages.
pub(crate) fn at_row(path: &std::path::Path, row: u64) -> String {
    format!("{}:{}", path.display(), row)
}

/// Open a file for streaming, with a clear error if it cannot be read.
pub(crate) fn open_file(path: &std::path::Path) -> Result<std::io::BufReader<std::fs::File>> {
    let f = std::fs::File::open(path)
        .map_err(|e| Error::input(format!("cannot open trace {}: {e}", path.display())))?;
    Ok(std::io::BufReader::with_capacity(1 << 16, f))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn raw(t: u64) -> Result<RawRequest> {
        Ok(RawRequest {
            arrival_ns: t,
            input_tokens: 10,
            output_tokens: 2,
            session: None,
            segments: vec![],
        })
    }

    fn workload() -> Workload {
        Workload::of(crate::scenario::SourceSpec::trace(
            crate::scenario::SourceKind::Native,
            "x.csv".into(),
        ))
    }

    #[test]
    fn reorders_and_windows_and_scales() {
        let rows = vec![
            raw(0),
            raw(3_000_000_000),
            raw(2_000_000_000),
            raw(5_000_000_000),
            raw(9_000_000_000),
        ];
        let mut w = workload();
        w.start_s = Some(1.0);
        w.end_s = Some(6.0);
        w.rate_scale = 2.0;
        let out: Vec<Request> = Transform::new(Box::new(rows.into_iter()), &w)
            .map(|r| r.unwrap())
            .collect();
        let times: Vec<u64> = out.iter().map(|r| r.arrival_ns).collect();
        assert_eq!(times, vec![500_000_000, 1_000_000_000, 2_000_000_000]);
        assert_eq!(out.iter().map(|r| r.id).collect::<Vec<_>>(), vec![0, 1, 2]);
    }

    #[test]
    fn limit_stops_early() {
        let rows = (0..10).map(|i| raw(i * 10));
        let mut w = workload();
        w.limit = Some(3);
        assert_eq!(Transform::new(Box::new(rows), &w).count(), 3);
    }

    #[test]
    fn mix_is_stable() {
        assert_eq!(mix(1, 2), mix(1, 2));
        assert_ne!(mix(1, 2), mix(2, 1));
    }
}
