//! Step-for-step conformance with SGLang 0.5.23's own scheduler.
//!
//! A case directory (the layout of `../shared/conformance/sglang-0.5.23/cases/NAME`) holds
//! `case.json` (the settings), `trace.jsonl` (Mooncake rows, all arriving before step 0)
//! and SGLang's run: `sglang_steps.csv`, `sglang_requests.csv` and `sglang_sched.jsonl.gz`.
//!
//! [`replay`] drives kvsim's SGLang scheduler the way the kit's driver drives SGLang's
//! (`event_loop_normal`'s body, synchronous): schedule, run (one token per request that
//! completes its prefill or decodes), process the result. [`compare`] checks every column
//! of every step row, every request row and every step's schedule record for exact
//! equality and reports the first divergent step.

use crate::engine::request::EngineRequest;
use crate::engine::scheduler::StepOutcome;
use crate::engine::sglang::config::{SchedulePolicy, SglangConfig, POLICY_NAMES};
use crate::engine::sglang::scheduler::SglScheduler;
use crate::error::{Error, Result};
use crate::workload::Request;
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::io::{BufRead, BufReader};
use std::path::Path;

/// The columns of `sglang_steps.csv`, in order.
pub const STEP_COLUMNS: [&str; 18] = [
    "step",
    "mode",
    "batch_size",
    "prefill_seqs",
    "prefill_tokens",
    "decode_tokens",
    "cached_hit_tokens",
    "retracted",
    "new",
    "resumed",
    "chunked_rid",
    "kv_used",
    "tree_evictable",
    "tree_protected",
    "kv_free",
    "waiting",
    "running",
    "new_token_ratio",
];

/// The columns of `sglang_requests.csv`, in order.
pub const REQUEST_COLUMNS: [&str; 11] = [
    "request_id",
    "input_tokens",
    "output_tokens",
    "cached_tokens",
    "first_sched_step",
    "first_token_step",
    "finish_step",
    "retractions",
    "recomputed_tokens",
    "generated",
    "sglang_cached_tokens",
];

/// A value of a row: an integer, text (`mode`, an empty `chunked_rid`) or the ratio.
#[derive(Debug, Clone, PartialEq)]
pub enum Cell {
    /// An integer column.
    Int(i64),
    /// A text column, or an empty one.
    Text(String),
    /// `new_token_ratio` (rounded to 6 decimals by the driver).
    Float(f64),
}

impl std::fmt::Display for Cell {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Cell::Int(v) => write!(f, "{v}"),
            Cell::Text(t) => write!(f, "{t}"),
            Cell::Float(x) => write!(f, "{x}"),
        }
    }
}

/// One step's schedule record (`sglang_sched.jsonl.gz`).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct StepRecord {
    /// Request to `(new tokens, tokens computed before)`.
    pub sched: BTreeMap<u64, (u64, u64)>,
    /// First admissions, in order.
    pub new: Vec<u64>,
    /// Re-admissions after a retraction, in order.
    pub resumed: Vec<u64>,
    /// Retracted this step, in order.
    pub retracted: Vec<u64>,
    /// Prefix hit of each (re)admitted request.
    pub hits: BTreeMap<u64, u64>,
    /// The request left mid-prefill.
    pub chunked: Option<u64>,
    /// Queue length before the step.
    pub waiting_before: u64,
    /// The policy the step sorted with.
    pub active_policy: String,
    /// New-token ratio before and after scheduling.
    pub ratio_before: f64,
    /// After scheduling.
    pub ratio: f64,
    /// After the result: free slots, evictable and protected tree tokens.
    pub after: (u64, u64, u64),
}

/// One side of a comparison.
#[derive(Debug, Clone, Default)]
pub struct Run {
    /// Step rows by step.
    pub steps: BTreeMap<i64, Vec<Cell>>,
    /// Request rows by request.
    pub requests: BTreeMap<i64, Vec<Cell>>,
    /// Schedule records by step.
    pub sched: BTreeMap<i64, StepRecord>,
}

/// The settings of `case.json` as SGLang resolved them for the run.
pub fn case_config(case: &Path) -> Result<SglangConfig> {
    let path = case.join("case.json");
    let text = crate::input::read_bounded(&path, "case.json", crate::input::MAX_TEXT_BYTES)?;
    let v: serde_json::Value = serde_json::from_str(&text)
        .map_err(|e| Error::input(format!("{}: not JSON: {e}", path.display())))?;
    let int = |key: &str| -> Result<u64> {
        v[key].as_u64().ok_or_else(|| {
            Error::input(format!(
                "{}: `{key}` must be a whole number",
                path.display()
            ))
        })
    };
    let policy = v["schedule_policy"].as_str().unwrap_or("fcfs");
    let schedule_policy = SchedulePolicy::parse(policy).ok_or_else(|| {
        Error::input(format!(
            "{}: unknown schedule_policy `{policy}`; known: {POLICY_NAMES}",
            path.display()
        ))
    })?;
    let chunk = v["chunked_prefill_size"].as_i64().unwrap_or(-1);
    Ok(SglangConfig {
        page_size: int("page_size")? as u32,
        max_total_tokens: int("max_total_tokens")?,
        max_running_requests: int("max_running_requests")? as u32,
        max_prefill_tokens: v["max_prefill_tokens"].as_u64().unwrap_or(16384) as u32,
        chunked_prefill_size: (chunk > 0).then_some(chunk as u32),
        schedule_policy,
        schedule_conservativeness: 1.0,
        context_len: int("context_length")? as u32,
        ignore_eos: v["ignore_eos"].as_bool().unwrap_or(false),
        disable_overlap_schedule: true,
        seed: 0,
    })
}

/// The case's requests, in trace order.
fn case_requests(case: &Path) -> Result<Vec<Request>> {
    let mut out = Vec::new();
    for (i, r) in crate::workload::mooncake::open(&case.join("trace.jsonl"), 512)?.enumerate() {
        let r = r?;
        out.push(Request {
            id: i as u64,
            arrival_ns: 0,
            input_tokens: r.input_tokens,
            output_tokens: r.output_tokens,
            session: r.session,
            segments: r.segments,
        });
    }
    Ok(out)
}

/// Per-request steps the driver records; the rest of a request's row is its own
/// accounting, read when it finishes.
#[derive(Debug, Clone, Default)]
struct Log {
    first_sched: Option<i64>,
    first_token: Option<i64>,
    finish: Option<i64>,
    /// `cached_tokens, retractions, recomputed_tokens, generated, sglang_cached_tokens`.
    finished: Option<[i64; 5]>,
}

/// Replay a case through kvsim's SGLang scheduler.
pub fn replay(case: &Path) -> Result<Run> {
    let cfg = case_config(case)?;
    let requests = case_requests(case)?;
    let mut sched = SglScheduler::new(cfg);
    let mut inputs = Vec::with_capacity(requests.len());
    for r in requests {
        inputs.push((r.input_tokens, r.output_tokens));
        sched.add(EngineRequest::new(r));
    }
    let mut logs = vec![Log::default(); inputs.len()];
    let mut run = Run::default();
    let mut out = StepOutcome::default();
    let mut step = 0i64;
    loop {
        let ratio_before = sched.ratio();
        let waiting_before = sched.num_waiting() as u64;
        let active = sched.active_policy().as_str().to_string();
        sched.schedule(0)?;
        if sched.scheduled.is_empty() {
            if sched.is_idle() {
                break;
            }
            if sched.log.retracted.is_empty() {
                return Err(Error::failure(format!(
                    "{}: kvsim stalled at step {step} ({} waiting, {} running)",
                    case.display(),
                    sched.num_waiting(),
                    sched.num_running()
                )));
            }
        }
        let mut rec = StepRecord {
            waiting_before,
            active_policy: active,
            ratio_before,
            ..schedule_record(&sched)
        };
        for &(slot, _, first) in &sched.log.admitted {
            if first {
                let id = sched.request(slot).er.req.id as usize;
                logs[id].first_sched = Some(step);
            }
        }
        run.steps.insert(step, step_row(step, &sched));
        if !sched.scheduled.is_empty() {
            sched.update_from_output(&mut out);
            for &slot in &out.sampled {
                let id = sched.request(slot).er.req.id as usize;
                logs[id].first_token.get_or_insert(step);
            }
            for k in 0..out.finished.len() {
                let r = sched.take_finished(out.finished[k]);
                let log = &mut logs[r.er.req.id as usize];
                log.finish = Some(step);
                log.finished = Some([
                    r.er.cached_tokens,
                    r.er.preemptions as i64,
                    r.er.recomputed_tokens as i64,
                    r.er.generated as i64,
                    r.sglang_cached_tokens as i64,
                ]);
            }
        }
        sched
            .audit()
            .map_err(|e| Error::failure(format!("{}: step {step}: {e}", case.display())))?;
        rec.after = (
            sched.pool().available(),
            sched.tree().evictable(),
            sched.tree().protected(),
        );
        run.sched.insert(step, rec);
        step += 1;
    }
    request_rows(&logs, &inputs, &mut run);
    Ok(run)
}

/// The `sglang_requests.csv` rows: the trace's lengths, the steps logged, and each
/// request's own counts.
fn request_rows(logs: &[Log], inputs: &[(u32, u32)], run: &mut Run) {
    for (i, log) in logs.iter().enumerate() {
        let (input, output) = inputs[i];
        let [cached, retractions, recomputed, generated, sglang_cached] =
            log.finished.unwrap_or([-1, 0, 0, 0, -1]);
        let row = [
            i as i64,
            input as i64,
            output as i64,
            cached,
            log.first_sched.unwrap_or(-1),
            log.first_token.unwrap_or(-1),
            log.finish.unwrap_or(-1),
            retractions,
            recomputed,
            generated,
            sglang_cached,
        ];
        run.requests
            .insert(i as i64, row.into_iter().map(Cell::Int).collect());
    }
}

/// The schedule record of the step just scheduled (all but what comes before the step
/// and after its result).
fn schedule_record(sched: &SglScheduler) -> StepRecord {
    let id = |slot: u32| sched.request(slot).er.req.id;
    let mut rec = StepRecord {
        ratio: sched.ratio(),
        chunked: sched.chunked().map(id),
        retracted: sched.log.retracted.iter().map(|&s| id(s)).collect(),
        ..Default::default()
    };
    for &(slot, prefix, first) in &sched.log.admitted {
        rec.hits.insert(id(slot), prefix as u64);
        match first {
            true => rec.new.push(id(slot)),
            false => rec.resumed.push(id(slot)),
        }
    }
    for s in &sched.scheduled {
        rec.sched
            .insert(s.id, (s.new_tokens as u64, s.context as u64));
    }
    rec
}

/// The `sglang_steps.csv` row of the step just scheduled.
fn step_row(step: i64, sched: &SglScheduler) -> Vec<Cell> {
    let g = sched.step_summary();
    let batch = sched.scheduled.len() as i64;
    let extend = g.extend && batch > 0;
    let mode = match (batch, extend) {
        (0, _) => "idle",
        (_, true) => "extend",
        (_, false) => "decode",
    };
    let prefill_tokens: i64 = match extend {
        true => sched.scheduled.iter().map(|s| s.new_tokens as i64).sum(),
        false => 0,
    };
    let int = |v: u64| Cell::Int(v as i64);
    vec![
        Cell::Int(step),
        Cell::Text(mode.into()),
        Cell::Int(batch),
        Cell::Int(if extend { batch } else { 0 }),
        Cell::Int(prefill_tokens),
        Cell::Int(if extend { 0 } else { batch }),
        int(g.cached_hit_tokens),
        int(g.retracted as u64),
        int(g.new as u64),
        int(g.resumed as u64),
        g.chunked
            .map_or(Cell::Text(String::new()), |c| Cell::Int(c as i64)),
        int(g.kv_used),
        int(g.tree_evictable),
        int(g.tree_protected),
        int(g.kv_free),
        int(sched.num_waiting() as u64),
        int(sched.num_running() as u64),
        Cell::Float(round6(g.new_token_ratio)),
    ]
}

/// Python's `round(x, 6)`: the double nearest the value rounded to 6 decimals.
fn round6(x: f64) -> f64 {
    format!("{x:.6}").parse().unwrap_or(x)
}

/// Read SGLang's run of a case.
pub fn read_sglang(case: &Path) -> Result<Run> {
    let mut run = Run::default();
    for row in read_rows(&case.join("sglang_steps.csv"), &STEP_COLUMNS)? {
        if let Some(Cell::Int(s)) = row.first() {
            run.steps.insert(*s, row);
        }
    }
    for row in read_rows(&case.join("sglang_requests.csv"), &REQUEST_COLUMNS)? {
        if let Some(Cell::Int(id)) = row.first() {
            run.requests.insert(*id, row);
        }
    }
    run.sched = read_sched(&case.join("sglang_sched.jsonl.gz"))?;
    Ok(run)
}

fn read_rows(path: &Path, columns: &[&str]) -> Result<Vec<Vec<Cell>>> {
    let mut rd = csv::Reader::from_path(path)
        .map_err(|e| Error::input(format!("cannot read {}: {e}", path.display())))?;
    let headers = rd
        .headers()
        .map_err(|e| Error::input(format!("{}: {e}", path.display())))?
        .clone();
    let idx: Vec<usize> = columns
        .iter()
        .map(|c| {
            headers
                .iter()
                .position(|h| h == *c)
                .ok_or_else(|| Error::input(format!("{}: no column `{c}`", path.display())))
        })
        .collect::<Result<_>>()?;
    let mut rows = Vec::new();
    for (i, rec) in rd.records().enumerate() {
        let rec =
            rec.map_err(|e| Error::input(format!("{}: row {}: {e}", path.display(), i + 2)))?;
        let mut row = Vec::with_capacity(columns.len());
        for (&k, c) in idx.iter().zip(columns) {
            let v = rec.get(k).unwrap_or("");
            row.push(if *c == "new_token_ratio" {
                Cell::Float(v.parse().map_err(|_| {
                    Error::input(format!(
                        "{}: row {}: `{c}` is not a number",
                        path.display(),
                        i + 2
                    ))
                })?)
            } else if let Ok(x) = v.parse::<i64>() {
                Cell::Int(x)
            } else {
                Cell::Text(v.to_string())
            });
        }
        rows.push(row);
    }
    Ok(rows)
}

fn read_sched(path: &Path) -> Result<BTreeMap<i64, StepRecord>> {
    let f = std::fs::File::open(path)
        .map_err(|e| Error::input(format!("cannot read {}: {e}", path.display())))?;
    let mut out = BTreeMap::new();
    for (i, line) in BufReader::new(flate2::read::GzDecoder::new(f))
        .lines()
        .enumerate()
    {
        let line = line.map_err(|e| Error::input(format!("{}: {e}", path.display())))?;
        if line.trim().is_empty() {
            continue;
        }
        let bad = |what: &str| Error::input(format!("{}: line {}: {what}", path.display(), i + 1));
        let v: serde_json::Value =
            serde_json::from_str(&line).map_err(|e| bad(&format!("not JSON: {e}")))?;
        let num = |key: &str| v[key].as_u64().ok_or_else(|| bad(&format!("no `{key}`")));
        let ids = |key: &str| -> Result<Vec<u64>> {
            v[key]
                .as_array()
                .ok_or_else(|| bad(&format!("no list `{key}`")))?
                .iter()
                .map(|x| x.as_u64().ok_or_else(|| bad(&format!("bad `{key}` entry"))))
                .collect()
        };
        let map = |key: &str| -> Result<Vec<(u64, &serde_json::Value)>> {
            v[key]
                .as_object()
                .ok_or_else(|| bad(&format!("no object `{key}`")))?
                .iter()
                .map(|(k, x)| {
                    Ok((
                        k.parse()
                            .map_err(|_| bad("a request id is not an integer"))?,
                        x,
                    ))
                })
                .collect()
        };
        let mut rec = StepRecord {
            new: ids("new")?,
            resumed: ids("resumed")?,
            retracted: ids("retracted")?,
            chunked: v["chunked"].as_u64(),
            waiting_before: num("waiting_before")?,
            active_policy: v["active_policy"].as_str().unwrap_or("").to_string(),
            ratio_before: v["ratio_before"]
                .as_f64()
                .ok_or_else(|| bad("no `ratio_before`"))?,
            ratio: v["ratio"].as_f64().ok_or_else(|| bad("no `ratio`"))?,
            after: (
                num("kv_free_after")?,
                num("tree_evictable_after")?,
                num("tree_protected_after")?,
            ),
            ..Default::default()
        };
        for (id, pair) in map("sched")? {
            let n = pair[0].as_u64().ok_or_else(|| bad("bad `sched` entry"))?;
            let ctx = pair[1].as_u64().ok_or_else(|| bad("bad `sched` entry"))?;
            rec.sched.insert(id, (n, ctx));
        }
        for (id, h) in map("hits")? {
            rec.hits
                .insert(id, h.as_u64().ok_or_else(|| bad("bad `hits` entry"))?);
        }
        out.insert(num("step")? as i64, rec);
    }
    Ok(out)
}

fn fmt_row(columns: &[&str], row: Option<&Vec<Cell>>) -> String {
    match row {
        None => "(none)".to_string(),
        Some(r) => columns
            .iter()
            .zip(r)
            .map(|(c, v)| format!("{c}={v}"))
            .collect::<Vec<_>>()
            .join(" "),
    }
}

/// Compare kvsim's replay with SGLang's run, exactly.
pub fn compare(kvsim: &Run, sglang: &Run) -> super::Comparison {
    let mut c = super::Comparison {
        steps: sglang.steps.len(),
        requests: sglang.requests.len(),
        ..Default::default()
    };
    let steps: std::collections::BTreeSet<i64> = kvsim
        .steps
        .keys()
        .chain(sglang.steps.keys())
        .copied()
        .collect();
    for &s in &steps {
        let rows_ok = kvsim.steps.get(&s) == sglang.steps.get(&s);
        let (k, v) = (kvsim.sched.get(&s), sglang.sched.get(&s));
        if rows_ok && k == v {
            continue;
        }
        c.first_divergent_step = Some(s);
        let _ = writeln!(c.detail, "first divergent step: {s}");
        for t in (s - 1).max(0)..=s {
            let _ = writeln!(
                c.detail,
                "  kvsim  {}",
                fmt_row(&STEP_COLUMNS, kvsim.steps.get(&t))
            );
            let _ = writeln!(
                c.detail,
                "  sglang {}",
                fmt_row(&STEP_COLUMNS, sglang.steps.get(&t))
            );
        }
        if k != v {
            let _ = writeln!(c.detail, "  kvsim  record {k:?}");
            let _ = writeln!(c.detail, "  sglang record {v:?}");
        }
        break;
    }
    let ids: std::collections::BTreeSet<i64> = kvsim
        .requests
        .keys()
        .chain(sglang.requests.keys())
        .copied()
        .collect();
    let mut shown = 0;
    for id in ids {
        let (k, v) = (kvsim.requests.get(&id), sglang.requests.get(&id));
        if k == v {
            continue;
        }
        c.mismatched_requests += 1;
        if shown < 3 {
            shown += 1;
            let _ = writeln!(c.detail, "request {id} differs:");
            let _ = writeln!(c.detail, "  kvsim  {}", fmt_row(&REQUEST_COLUMNS, k));
            let _ = writeln!(c.detail, "  sglang {}", fmt_row(&REQUEST_COLUMNS, v));
        }
    }
    c
}

/// True if `case` is an SGLang case (it has `case.json` and SGLang's step rows).
pub fn is_case(case: &Path) -> bool {
    case.join("case.json").is_file() && case.join("sglang_steps.csv").is_file()
}

/// Replay and compare a case.
pub fn check_case(case: &Path) -> Result<super::Comparison> {
    let sglang = read_sglang(case)?;
    let kvsim = replay(case)?;
    Ok(compare(&kvsim, &sglang))
}
