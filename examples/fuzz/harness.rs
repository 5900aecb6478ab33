//! The fuzz harness: targets, seed corpus, mutations and the run loop. Shared by the
//! `fuzz` example (long runs) and `tests/fuzz_smoke.rs` (the short run in CI), each of
//! which installs [`super::alloc::Counting`] as its global allocator.

use super::alloc;
use kvsim::scenario::{ArrivalKind, ArrivalSpec, SourceKind, SourceSpec, Workload};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Every target, in the order `--target all` runs them.
pub const TARGETS: &[&str] = &[
    "scenario",
    "mooncake",
    "azure",
    "ragpulse",
    "native",
    "vllm_bench",
    "sharegpt",
    "burstgpt",
    "bailian",
    "kv_cache_tester",
    "kvat",
    "paging_text",
    "paging_csv",
    "paging_lcs_csv",
    "paging_oracle_general",
];

/// A target outside [`TARGETS`] whose parser panics on input starting with `!`: checks
/// that the harness catches and saves panics.
pub const SELFTEST: &str = "selftest";

/// Requests one input may yield before its stream counts as endless.
const MAX_ITEMS: u64 = 1_000_000;
/// Prompt and output tokens per input that the consumers (block hashes, reuse bound) see;
/// past it the stream is still drained, but its requests are not hashed, so that a few
/// rows of 2^24 tokens do not turn one execution into seconds.
const CONSUMER_TOKENS: u64 = 1 << 20;
/// Engine block size of the consumers (vLLM's default, 16).
const BLOCK_SIZE: u32 = 16;
/// Crash files written per target (later panics are only counted).
const MAX_SAVED: u64 = 20;

/// What to run.
pub struct Config {
    /// Repository root (the corpus is read from it).
    pub root: PathBuf,
    /// Executions per target.
    pub runs: u64,
    /// Seed of the mutations.
    pub seed: u64,
    /// Largest input, bytes.
    pub max_len: usize,
    /// Where crashing inputs are written (`<target>-<what>-<run>`).
    pub crash_dir: PathBuf,
    /// Stop a target early after this long (the summary says how many runs it made).
    pub max_time: Option<Duration>,
}

/// What a target's run found.
#[derive(Debug, Clone)]
pub struct Summary {
    /// Target name.
    pub target: String,
    /// Executions.
    pub runs: u64,
    /// Inputs the parser accepted (every item Ok).
    pub accepted: u64,
    /// Inputs it refused with an error.
    pub rejected: u64,
    /// Panics (each input saved while under [`MAX_SAVED`]).
    pub panics: u64,
    /// Streams that did not end within [`MAX_ITEMS`] items.
    pub endless: u64,
    /// Requests produced by accepted or partly accepted inputs.
    pub requests: u64,
    /// Peak live heap bytes during the run.
    pub peak_bytes: usize,
    /// Wall time.
    pub wall: Duration,
}

impl Summary {
    /// Failures: panics and endless streams.
    pub fn failures(&self) -> u64 {
        self.panics + self.endless
    }

    /// One line for the log.
    pub fn line(&self) -> String {
        let s = self.wall.as_secs_f64();
        format!(
            "{:<16} runs {:>9}  ok {:>8}  err {:>8}  panics {}  endless {}  requests {:>10}  peak {:>7.1} MiB  wall {:>8.1} s  {:>7.0} exec/s",
            self.target,
            self.runs,
            self.accepted,
            self.rejected,
            self.panics,
            self.endless,
            self.requests,
            self.peak_bytes as f64 / (1 << 20) as f64,
            s,
            self.runs as f64 / s.max(1e-9)
        )
    }
}

/// xorshift64*: small, fast, deterministic from the seed.
pub struct Rng(u64);

impl Rng {
    /// A generator from a seed (any value).
    pub fn new(seed: u64) -> Self {
        Rng(kvsim::workload::mix(seed, 0x6675_7a7a) | 1)
    }

    /// Next 64 random bits.
    pub fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    /// Uniform in `0..n` (`n > 0`).
    pub fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

/// Values that break parsers: zero, negatives, integer limits, float extremes, non-finite
/// spellings and digit strings no integer type holds.
const EXTREMES: &[&str] = &[
    "0",
    "-1",
    "1",
    "-0",
    "0.5",
    "255",
    "65536",
    "2147483647",
    "2147483648",
    "4294967295",
    "4294967296",
    "16777216",
    "16777217",
    "9223372036854775807",
    "9223372036854775808",
    "18446744073709551615",
    "18446744073709551616",
    "-9223372036854775809",
    "1e19",
    "1e308",
    "-1e308",
    "1e309",
    "1e-308",
    "5e-324",
    "NaN",
    "nan",
    "inf",
    "-inf",
    "Infinity",
    "1.7976931348623157e308",
    "999999999999999999999999999999999999999999",
    "0x10",
    "1_000",
    "",
];

/// Bytes worth inserting: structure of CSV, JSON and YAML, and odd bytes.
const PUNCT: &[u8] = b"0123456789,.-+eE:\"'{}[]\n\r\t #&*!|>%@`\\\0\xff\xc3";

/// Keys for `--set` overrides of the scenario target.
const SET_KEYS: &[&str] = &[
    "seed",
    "name",
    "workload.limit",
    "workload.time_scale",
    "workload.rate_scale",
    "workload.start_s",
    "workload.end_s",
    "workload.max_concurrency",
    "workload.source.kind",
    "workload.source.path",
    "workload.source.requests",
    "workload.source.block_tokens",
    "workload.source.think_time_s",
    "model.preset",
    "model.layers",
    "model.heads",
    "model.kv_heads",
    "model.head_dim",
    "hardware.gpu",
    "hardware.memory_gib",
    "hardware.hbm_gbps",
    "engine.kind",
    "engine.schedule_policy",
    "engine.chunked_prefill_size",
    "engine.max_running_requests",
    "engine.schedule_conservativeness",
    "kv_cache.page_size",
    "kv_cache.max_total_tokens",
    "kv_cache.mem_fraction_static",
    "engine.max_num_seqs",
    "engine.max_num_batched_tokens",
    "engine.max_model_len",
    "engine.watermark",
    "kv_cache.block_size",
    "cluster.replicas",
];

/// A target's parser, its file name in the work dir and its seed corpus.
struct Target {
    name: &'static str,
    file: &'static str,
    kind: Option<SourceKind>,
    corpus: Vec<Vec<u8>>,
}

/// Read the committed samples of a target (files under `root`) and add its inline seeds.
fn corpus(root: &Path, name: &str, max_len: usize) -> Vec<Vec<u8>> {
    let files: Vec<PathBuf> = match name {
        "scenario" => sorted(&root.join("scenarios"), "yaml"),
        "native" => vec![root.join("traces/quickstart.csv")],
        "azure" => vec![root.join("traces/samples/azure2024.csv")],
        "sharegpt" => vec![
            root.join("traces/samples/sharegpt.json"),
            root.join("traces/samples/sharegpt.jsonl"),
        ],
        "burstgpt" => vec![root.join("traces/samples/burstgpt.csv")],
        "bailian" => vec![root.join("traces/samples/bailian.jsonl")],
        "kv_cache_tester" => sorted(&root.join("traces/samples/kv-cache-tester"), "json"),
        _ => vec![],
    };
    let mut out: Vec<Vec<u8>> = Vec::new();
    for f in files {
        let bytes = std::fs::read(&f).unwrap_or_else(|e| panic!("corpus {}: {e}", f.display()));
        if bytes.len() > max_len {
            // Keep the whole lines of the first `max_len` bytes.
            let cut = bytes[..max_len]
                .iter()
                .rposition(|&b| b == b'\n')
                .map_or(max_len, |i| i + 1);
            out.push(bytes[..cut].to_vec());
        } else {
            out.push(bytes);
        }
    }
    out.extend(super::seeds::inline(name));
    out
}

fn sorted(dir: &Path, ext: &str) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("corpus {}: {e}", dir.display()))
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == ext))
        .collect();
    v.sort();
    v
}

fn target(root: &Path, name: &'static str, max_len: usize) -> Target {
    let (file, kind) = match name {
        "scenario" => ("scenario.yaml", None),
        "mooncake" => ("trace.jsonl", Some(SourceKind::Mooncake)),
        "azure" => ("trace.csv", Some(SourceKind::Azure)),
        "ragpulse" => ("0_trace.jsonl", Some(SourceKind::Ragpulse)),
        "native" => ("trace.csv", Some(SourceKind::Native)),
        "vllm_bench" => ("result.json", Some(SourceKind::VllmBench)),
        "sharegpt" => ("sharegpt.json", Some(SourceKind::Sharegpt)),
        "burstgpt" => ("trace.csv", Some(SourceKind::Burstgpt)),
        "bailian" => ("trace.jsonl", Some(SourceKind::Bailian)),
        "kv_cache_tester" => ("trace_0001.json", Some(SourceKind::KvCacheTester)),
        "kvat" => ("trace.kvat", None),
        "paging_text" => ("pages.txt", None),
        "paging_csv" => ("pages.csv", None),
        "paging_lcs_csv" => ("pages.csv", None),
        "paging_oracle_general" => ("pages.oracleGeneral", None),
        "selftest" => ("input.txt", None),
        other => panic!("unknown target {other}"),
    };
    Target {
        name,
        file,
        kind,
        corpus: corpus(root, name, max_len),
    }
}

/// Byte offsets of the starts of the lines of `b`.
fn line_starts(b: &[u8]) -> Vec<usize> {
    std::iter::once(0)
        .chain(
            b.iter()
                .enumerate()
                .filter(|&(_, &c)| c == b'\n')
                .map(|(i, _)| i + 1),
        )
        .filter(|&i| i <= b.len())
        .collect()
}

/// A random whole line of `b` (with its newline), as a range.
fn pick_line(rng: &mut Rng, b: &[u8]) -> std::ops::Range<usize> {
    let starts = line_starts(b);
    let i = rng.below(starts.len());
    let s = starts[i];
    let e = starts.get(i + 1).copied().unwrap_or(b.len());
    s..e
}

/// Apply one random mutation to `buf`; `other` is another corpus entry to splice from.
fn mutate_once(rng: &mut Rng, buf: &mut Vec<u8>, other: &[u8]) {
    let len = buf.len();
    match rng.below(13) {
        0 if len > 0 => {
            let i = rng.below(len);
            buf[i] ^= 1 << rng.below(8);
        }
        1 => {
            let i = rng.below(len + 1);
            let n = 1 + rng.below(4);
            for _ in 0..n {
                let c = PUNCT[rng.below(PUNCT.len())];
                buf.insert(i, c);
            }
        }
        2 if len > 0 => {
            let i = rng.below(len);
            let n = 1 + rng.below(16.min(len - i));
            buf.drain(i..i + n);
        }
        3 | 4 => replace_number(rng, buf),
        5 if !other.is_empty() => {
            // Splice a line of another corpus entry over a line of this one.
            let theirs = pick_line(rng, other);
            let mine = pick_line(rng, buf);
            buf.splice(mine, other[theirs].iter().copied());
        }
        6 => {
            // Duplicate a line, up to 64 times.
            let r = pick_line(rng, buf);
            let line = buf[r.clone()].to_vec();
            let most = if rng.below(4) == 0 { 64 } else { 2 };
            let times = 1 + rng.below(most);
            for _ in 0..times {
                buf.splice(r.end..r.end, line.iter().copied());
            }
        }
        7 if len > 0 => buf.truncate(rng.below(len)),
        8 if len > 0 => {
            // Delete a line.
            let r = pick_line(rng, buf);
            buf.drain(r);
        }
        9 if !other.is_empty() => {
            // Splice: this entry's head and the other's tail.
            let cut = rng.below(len + 1);
            let from = rng.below(other.len());
            buf.truncate(cut);
            buf.extend_from_slice(&other[from..]);
        }
        10 if len > 0 => {
            // Overwrite with an extreme byte.
            let i = rng.below(len);
            buf[i] = [0u8, 0xff, 0x7f, 0x80, b'"', b'\n'][rng.below(6)];
        }
        11 | 12 => replace_value(rng, buf, other),
        _ => {}
    }
}

/// Replace the value after a random `:`, `,` or `=` (up to the next delimiter) with an
/// extreme value or with a value taken from `other`: reaches fields that hold words.
fn replace_value(rng: &mut Rng, buf: &mut Vec<u8>, other: &[u8]) {
    let is_sep = |c: u8| matches!(c, b':' | b',' | b'=');
    let is_end = |c: u8| matches!(c, b',' | b'}' | b']' | b'\n' | b'\r');
    let seps: Vec<usize> = (0..buf.len()).filter(|&i| is_sep(buf[i])).collect();
    if seps.is_empty() {
        return;
    }
    let s = seps[rng.below(seps.len())] + 1;
    let e = (s..buf.len())
        .find(|&i| is_end(buf[i]))
        .unwrap_or(buf.len());
    let value: Vec<u8> = if rng.below(2) == 0 || other.is_empty() {
        let v = EXTREMES[rng.below(EXTREMES.len())];
        if rng.below(3) == 0 {
            format!(" \"{v}\"").into_bytes()
        } else {
            format!(" {v}").into_bytes()
        }
    } else {
        let theirs: Vec<usize> = (0..other.len()).filter(|&i| is_sep(other[i])).collect();
        if theirs.is_empty() {
            return;
        }
        let os = theirs[rng.below(theirs.len())] + 1;
        let oe = (os..other.len())
            .find(|&i| is_end(other[i]))
            .unwrap_or(other.len());
        other[os..oe].to_vec()
    };
    buf.splice(s..e, value);
}

/// Replace a run of number characters near a random offset with an extreme value (or,
/// where there is no number, insert one).
fn replace_number(rng: &mut Rng, buf: &mut Vec<u8>) {
    let is_num = |c: u8| c.is_ascii_digit() || matches!(c, b'.' | b'-' | b'+' | b'e' | b'E');
    let value = EXTREMES[rng.below(EXTREMES.len())].as_bytes();
    let len = buf.len();
    let from = rng.below(len + 1);
    let Some(start) = (from..len).find(|&i| buf[i].is_ascii_digit()) else {
        buf.splice(from..from, value.iter().copied());
        return;
    };
    let mut s = start;
    while s > 0 && is_num(buf[s - 1]) {
        s -= 1;
    }
    let mut e = start;
    while e < len && is_num(buf[e]) {
        e += 1;
    }
    buf.splice(s..e, value.iter().copied());
}

/// A fresh input: a corpus entry with 1 to 8 mutations (sometimes none), cut to `max_len`.
fn next_input(rng: &mut Rng, t: &Target, max_len: usize, buf: &mut Vec<u8>) {
    buf.clear();
    let n = t.corpus.len();
    buf.extend_from_slice(&t.corpus[rng.below(n)]);
    let other = &t.corpus[rng.below(n)];
    let rounds = if rng.below(16) == 0 {
        0
    } else {
        1 + rng.below(8)
    };
    for _ in 0..rounds {
        mutate_once(rng, buf, other);
        buf.truncate(max_len);
    }
    if t.name == "scenario" && rng.below(4) == 0 {
        let key = SET_KEYS[rng.below(SET_KEYS.len())];
        let value = EXTREMES[rng.below(EXTREMES.len())];
        let line = format!("{SET_PREFIX}{key}={value}\n");
        buf.splice(0..0, line.bytes());
    }
}

/// How one execution ended.
enum Outcome {
    Accepted(u64),
    Rejected(u64),
    Endless,
}

/// Feed requests to the cheap consumers of the engine and `trace stats`: block hashes and
/// the reuse-bound counter, while the input's token budget lasts.
struct Consumers {
    hashes: Vec<u64>,
    keys: Vec<kvsim::prefix::SegmentKey>,
    counter: kvsim::prefix::ReuseBoundCounter,
    budget: u64,
}

impl Consumers {
    fn new() -> Self {
        Consumers {
            hashes: Vec::new(),
            keys: Vec::new(),
            counter: kvsim::prefix::ReuseBoundCounter::new(BLOCK_SIZE),
            budget: CONSUMER_TOKENS,
        }
    }

    fn feed(&mut self, r: &kvsim::workload::Request) {
        let total = r.input_tokens as u64 + r.output_tokens as u64;
        if total > self.budget {
            return;
        }
        self.budget -= total;
        self.hashes.clear();
        kvsim::prefix::request_block_hashes(r, total, BLOCK_SIZE, &mut self.hashes);
        self.hashes.clear();
        kvsim::prefix::prompt_block_hashes(r, BLOCK_SIZE, &mut self.hashes);
        self.keys.clear();
        kvsim::prefix::request_segment_keys(r, &mut self.keys);
        self.counter.add(r.id, &r.segments, r.input_tokens);
        self.counter.remember_output(r);
    }
}

/// The workload of a trace reader over `path`, with the defaults of every other key (and
/// the keys ShareGPT requires: Poisson starts, 2 per second, and 1 s think time).
fn workload(kind: SourceKind, path: &Path) -> Workload {
    let mut spec = SourceSpec::trace(kind, path.to_path_buf());
    if kind == SourceKind::Sharegpt {
        spec.arrival = Some(ArrivalSpec {
            kind: ArrivalKind::Poisson,
            rate: 2.0,
            cv: None,
        });
        spec.think_time_s = Some(1.0);
    }
    Workload::of(spec)
}

/// Run one input through a trace reader, draining its stream.
fn exec_reader(kind: SourceKind, path: &Path, seed: u64) -> Outcome {
    let w = workload(kind, path);
    let stream = match kvsim::workload::open(&w, seed) {
        Ok(s) => s,
        Err(_) => return Outcome::Rejected(0),
    };
    let (mut ok, mut errs) = (0u64, 0u64);
    let mut consumers = Consumers::new();
    for item in stream {
        match item {
            Ok(r) => {
                ok += 1;
                consumers.feed(&r);
            }
            Err(e) => {
                errs += 1;
                std::hint::black_box(e.to_string());
            }
        }
        if ok + errs > MAX_ITEMS {
            return Outcome::Endless;
        }
    }
    std::hint::black_box(&consumers.counter.bound);
    if errs == 0 {
        Outcome::Accepted(ok)
    } else {
        Outcome::Rejected(ok)
    }
}

/// The `--set` override a scenario input carries on its first line, `# --set KEY=VALUE`
/// (a YAML comment, so the text parses the same without it); the input alone reproduces
/// the execution.
fn sets_of(text: &str) -> Vec<String> {
    text.lines()
        .next()
        .and_then(|l| l.strip_prefix(SET_PREFIX))
        .map(|s| vec![s.to_string()])
        .unwrap_or_default()
}

const SET_PREFIX: &str = "# --set ";

/// Parse scenario text with its `--set` override, and write the result back as YAML.
fn exec_scenario(input: &[u8], base: &Path) -> Outcome {
    let text = String::from_utf8_lossy(input);
    let sets = sets_of(&text);
    match kvsim::scenario::parse_scenario(&text, "fuzz.yaml", base, &sets) {
        Ok(s) => {
            std::hint::black_box(kvsim::scenario::to_yaml_string(&s).ok());
            Outcome::Accepted(0)
        }
        Err(e) => {
            std::hint::black_box(e.to_string());
            Outcome::Rejected(0)
        }
    }
}

/// Read a `kvsim paging` trace (one label per line, `time,obj_id[,size]` CSV, libCacheSim's
/// csv with the parameters of a first line `# -t PARAMS` or its defaults, or oracleGeneral
/// records) and walk its requests with their next uses.
fn exec_paging(name: &str, path: &Path, input: &[u8]) -> Outcome {
    use kvsim::paging::readers::{read_pages, LcsCsvParams, PageFormat};
    use kvsim::paging::trace::Trace;
    let read = match name {
        "paging_csv" => Trace::read_csv(path),
        "paging_oracle_general" => read_pages(path, &PageFormat::OracleGeneral, false),
        "paging_lcs_csv" => {
            let first = input.split(|&b| b == b'\n').next().unwrap_or_default();
            let params = match std::str::from_utf8(first)
                .ok()
                .and_then(|l| l.strip_prefix("# -t "))
            {
                Some(p) => LcsCsvParams::parse(p),
                None => Ok(LcsCsvParams::default()),
            };
            params.and_then(|p| read_pages(path, &PageFormat::LibCacheSimCsv(p), true))
        }
        _ => Trace::read_text(path),
    };
    match read {
        Ok(t) => {
            for i in 0..t.len() {
                std::hint::black_box(t.req(i, None));
            }
            Outcome::Accepted(t.len() as u64)
        }
        Err(e) => {
            std::hint::black_box(e.to_string());
            Outcome::Rejected(0)
        }
    }
}

fn exec_selftest(input: &[u8]) -> Outcome {
    assert!(
        input.first() != Some(&b'!'),
        "selftest input starts with `!`"
    );
    Outcome::Rejected(0)
}

fn exec_kvat(input: &[u8]) -> Outcome {
    match kvsim::attention::trace::AttentionTrace::parse(input) {
        Ok(t) => {
            std::hint::black_box((t.total_tokens(), t.group()));
            Outcome::Accepted(0)
        }
        Err(e) => {
            std::hint::black_box(e);
            Outcome::Rejected(0)
        }
    }
}

/// The last panic's message, set by the hook [`quiet_panics`] installs.
static LAST_PANIC: Mutex<String> = Mutex::new(String::new());

/// Replace the panic hook with one that records the message instead of printing it.
fn quiet_panics() {
    std::panic::set_hook(Box::new(|info| {
        if let Ok(mut m) = LAST_PANIC.lock() {
            *m = info.to_string();
        }
    }));
}

/// Run `cfg.runs` executions of one target; panics are saved to `cfg.crash_dir`.
pub fn run_target(cfg: &Config, name: &str) -> Summary {
    let name: &'static str = TARGETS
        .iter()
        .chain(&[SELFTEST])
        .find(|&&t| t == name)
        .unwrap_or_else(|| panic!("unknown target {name}; targets: {}", TARGETS.join(", ")));
    let t = target(&cfg.root, name, cfg.max_len);
    let work = work_root().join(format!("kvsim-fuzz-{}-{name}", std::process::id()));
    std::fs::create_dir_all(&work).expect("create the work dir");
    super::seeds::side_files(name, &work);
    let input_path = work.join(t.file);
    alloc::guard(&input_path, &cfg.crash_dir.join(format!("{name}-oom")));
    quiet_panics();
    let base = cfg.root.join("scenarios");
    let mut rng = Rng::new(kvsim::workload::mix(
        cfg.seed,
        kvsim::workload::hash_str(name),
    ));
    let mut sum = Summary {
        target: name.to_string(),
        runs: 0,
        accepted: 0,
        rejected: 0,
        panics: 0,
        endless: 0,
        requests: 0,
        peak_bytes: 0,
        wall: Duration::ZERO,
    };
    alloc::reset_peak();
    let start = Instant::now();
    let mut buf = Vec::new();
    for i in 0..cfg.runs {
        if i % 256 == 0 && cfg.max_time.is_some_and(|m| start.elapsed() >= m) {
            break;
        }
        next_input(&mut rng, &t, cfg.max_len, &mut buf);
        // Every input is on disk before it runs, so that an abort leaves it behind.
        std::fs::write(&input_path, &buf).expect("write the input file");
        let exec_seed = rng.next();
        let outcome = catch_unwind(AssertUnwindSafe(|| match (name, t.kind) {
            ("scenario", _) => exec_scenario(&buf, &base),
            ("kvat", _) => exec_kvat(&buf),
            ("selftest", _) => exec_selftest(&buf),
            ("paging_text" | "paging_csv" | "paging_lcs_csv" | "paging_oracle_general", _) => {
                exec_paging(name, &input_path, &buf)
            }
            (_, Some(kind)) => exec_reader(kind, &input_path, exec_seed),
            _ => unreachable!("every reader target has a kind"),
        }));
        sum.runs += 1;
        match outcome {
            Ok(Outcome::Accepted(n)) => {
                sum.accepted += 1;
                sum.requests += n;
            }
            Ok(Outcome::Rejected(n)) => {
                sum.rejected += 1;
                sum.requests += n;
            }
            Ok(Outcome::Endless) => {
                sum.endless += 1;
                save(cfg, name, "endless", i, &buf, "stream did not end");
            }
            Err(_) => {
                sum.panics += 1;
                let msg = LAST_PANIC.lock().map(|m| m.clone()).unwrap_or_default();
                if sum.panics <= MAX_SAVED {
                    save(cfg, name, "panic", i, &buf, &msg);
                }
            }
        }
    }
    sum.wall = start.elapsed();
    sum.peak_bytes = alloc::peak();
    let _ = std::panic::take_hook();
    let _ = std::fs::remove_dir_all(&work);
    sum
}

/// Where inputs are written to be read back: `/dev/shm` (tmpfs) where there is one, since
/// writing each input to a disk file costs more than parsing it (20x on ext4 here), else
/// the temp dir.
fn work_root() -> PathBuf {
    let shm = Path::new("/dev/shm");
    if shm.is_dir() {
        shm.to_path_buf()
    } else {
        std::env::temp_dir()
    }
}

/// Write a failing input to `<crash_dir>/<target>-<what>-<run>` and say so.
fn save(cfg: &Config, name: &str, what: &str, run: u64, input: &[u8], msg: &str) {
    let p = cfg.crash_dir.join(format!("{name}-{what}-{run}"));
    let _ = std::fs::write(&p, input);
    if name == SELFTEST {
        return; // its panics are the expected outcome: saved, not announced
    }
    alloc::say(&format!(
        "kvsim-fuzz: FAIL {name} run {run}: {msg}; input saved to {}",
        p.display()
    ));
}

/// Parse a crash file's name back into its target (`<target>-<what>-<run>`).
pub fn target_of_crash(file: &Path) -> Option<&'static str> {
    let stem = file.file_name()?.to_str()?;
    TARGETS.iter().copied().find(|t| {
        stem.strip_prefix(t)
            .is_some_and(|rest| rest.starts_with('-'))
    })
}

/// Run one saved input through its target once, with panics shown (reproduce a crash).
pub fn replay(root: &Path, name: &str, file: &Path) -> std::result::Result<String, String> {
    let name: &'static str = TARGETS
        .iter()
        .find(|&&t| t == name)
        .ok_or_else(|| format!("unknown target {name}"))?;
    let t = target(root, name, usize::MAX);
    let input = std::fs::read(file).map_err(|e| format!("{}: {e}", file.display()))?;
    let work = work_root().join(format!("kvsim-fuzz-replay-{}", std::process::id()));
    std::fs::create_dir_all(&work).map_err(|e| e.to_string())?;
    super::seeds::side_files(name, &work);
    let path = work.join(t.file);
    std::fs::write(&path, &input).map_err(|e| e.to_string())?;
    let out = match (name, t.kind) {
        ("scenario", _) => kvsim::scenario::parse_scenario(
            &String::from_utf8_lossy(&input),
            &file.display().to_string(),
            &root.join("scenarios"),
            &sets_of(&String::from_utf8_lossy(&input)),
        )
        .map(|_| "accepted".to_string())
        .map_err(|e| e.to_string()),
        ("kvat", _) => kvsim::attention::trace::AttentionTrace::parse(&input)
            .map(|t| format!("accepted: {} layers", t.layers.len())),
        ("paging_text", _) => kvsim::paging::trace::Trace::read_text(&path)
            .map(|t| format!("accepted: {} requests", t.len()))
            .map_err(|e| e.to_string()),
        ("paging_csv", _) => kvsim::paging::trace::Trace::read_csv(&path)
            .map(|t| format!("accepted: {} requests", t.len()))
            .map_err(|e| e.to_string()),
        (_, Some(kind)) => {
            let w = workload(kind, &path);
            let mut n = 0u64;
            let mut consumers = Consumers::new();
            let stream = kvsim::workload::open(&w, 0).map_err(|e| e.to_string())?;
            let mut first_err = None;
            for item in stream.take(MAX_ITEMS as usize) {
                match item {
                    Ok(r) => {
                        n += 1;
                        consumers.feed(&r);
                    }
                    Err(e) => {
                        first_err.get_or_insert(e.to_string());
                    }
                }
            }
            match first_err {
                None => Ok(format!("accepted: {n} requests")),
                Some(e) => Err(format!("{n} requests, then: {e}")),
            }
        }
        _ => unreachable!("every reader target has a kind"),
    };
    let _ = std::fs::remove_dir_all(&work);
    out
}
