//! Step-for-step conformance with vLLM's own scheduler.
//!
//! A case directory (the layout of `../shared/conformance/vllm-0.33.0/cases/NAME`) holds a
//! kvsim `scenario.yaml` with its trace, optionally `arrivals.txt` (lines `request step`:
//! the request arrives just before that step), and one or more runs of vLLM's scheduler on
//! the same requests: `vllm/` (synchronous scheduling) and `vllm_async/` (asynchronous),
//! each with `vllm_steps.csv`, `vllm_requests.csv` and `vllm_sched.jsonl.gz` (or `.jsonl`).
//!
//! [`replay`] drives kvsim's engine (the same [`Replica`] a simulation runs) the way the
//! kit's driver drives vLLM: arrivals are injected by step index, not by time, so the
//! comparison holds whatever the cost model says a step takes. [`compare`] checks every
//! column of every step, every request's row and every step's per-request schedule for
//! exact equality and reports the first divergent step with both sides' rows.

pub mod sglang;

use crate::engine::config::EngineSetup;
use crate::engine::replica::Replica;
use crate::error::{Error, Result};
use crate::scenario::load_scenario;
use crate::sim::recorder::Recorder;
use crate::workload::{self, Request};
use std::collections::{BTreeMap, VecDeque};
use std::fmt::Write as _;
use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};

/// The columns of `vllm_steps.csv`, in order.
pub const STEP_COLUMNS: [&str; 13] = [
    "step",
    "batch_size",
    "prefill_seqs",
    "prefill_tokens",
    "decode_tokens",
    "blocks_used",
    "blocks_cached",
    "blocks_free",
    "waiting",
    "running",
    "preemptions",
    "new",
    "resumed",
];

/// The columns of `vllm_requests.csv`, in order.
pub const REQUEST_COLUMNS: [&str; 10] = [
    "request_id",
    "input_tokens",
    "output_tokens",
    "cached_tokens",
    "first_sched_step",
    "first_token_step",
    "finish_step",
    "preemptions",
    "recomputed_tokens",
    "generated",
];

/// One step's schedule: for every scheduled request `[new tokens, computed before]`, the
/// requests admitted for the first time and those preempted.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StepSchedule {
    /// Request index to `(new tokens, tokens computed before the step)`.
    pub sched: BTreeMap<u64, (u32, u32)>,
    /// Requests admitted for the first time, in admission order.
    pub new: Vec<u64>,
    /// Requests preempted, by index.
    pub preempted: Vec<u64>,
}

/// One side of a comparison: rows as vLLM's driver writes them.
#[derive(Debug, Clone, Default)]
pub struct Run {
    /// Step rows keyed by step index; values in [`STEP_COLUMNS`] order (-1: not counted).
    pub steps: BTreeMap<i64, Vec<i64>>,
    /// Request rows keyed by request index; values in [`REQUEST_COLUMNS`] order.
    pub requests: BTreeMap<i64, Vec<i64>>,
    /// Per-step schedules keyed by step index.
    pub sched: BTreeMap<i64, StepSchedule>,
}

/// The vLLM runs a case holds: `(subdirectory, asynchronous scheduling)`.
pub fn vllm_runs(case: &Path) -> Vec<(String, bool)> {
    [("vllm", false), ("vllm_async", true)]
        .into_iter()
        .filter(|(d, _)| case.join(d).join("vllm_steps.csv").is_file())
        .map(|(d, a)| (d.to_string(), a))
        .collect()
}

/// Per-request bookkeeping of a replay, as the kit's driver keeps it.
#[derive(Debug, Clone)]
struct RequestLog {
    cached: i64,
    first_sched: i64,
    first_token: i64,
    finish: i64,
    preemptions: i64,
    recomputed: i64,
    generated: i64,
    high_water: u32,
}

impl Default for RequestLog {
    fn default() -> Self {
        RequestLog {
            cached: -1,
            first_sched: -1,
            first_token: -1,
            finish: -1,
            preemptions: 0,
            recomputed: 0,
            generated: 0,
            high_water: 0,
        }
    }
}

/// Read a case's `arrivals.txt` (lines `request_index step_index`) into step -> requests,
/// each step's requests in index order.
fn read_arrivals(path: &Path) -> Result<BTreeMap<i64, Vec<u64>>> {
    let text = crate::input::read_bounded(path, "arrivals", crate::input::MAX_TEXT_BYTES)?;
    let mut out: BTreeMap<i64, Vec<u64>> = BTreeMap::new();
    for (i, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let mut it = line.split_whitespace().map(str::parse::<u64>);
        match (it.next(), it.next(), it.next()) {
            (Some(Ok(r)), Some(Ok(s)), None) => out.entry(s as i64).or_default().push(r),
            _ => {
                return Err(Error::input(format!(
                    "{}: line {}: expected `request_index step_index`, got `{line}`",
                    path.display(),
                    i + 1
                )))
            }
        }
    }
    for v in out.values_mut() {
        v.sort_unstable();
    }
    Ok(out)
}

/// Replay a case through kvsim's engine with synchronous or asynchronous scheduling.
pub fn replay(case: &Path, asynchronous: bool) -> Result<Run> {
    let sets = [format!("engine.async_scheduling={asynchronous}")];
    let scenario = load_scenario(&case.join("scenario.yaml"), &sets)?;
    let setup = EngineSetup::from_scenario(&scenario)?;
    let cost = crate::sim::build_cost_model(&scenario, &setup)?;
    let mut replica = Replica::new(&setup, cost, false);
    let mut requests: Vec<Option<Request>> = Vec::new();
    for r in workload::open(&scenario.workload, scenario.seed)? {
        let r = r?;
        let i = r.id as usize;
        if requests.len() <= i {
            requests.resize(i + 1, None);
        }
        requests[i] = Some(r);
    }
    let arrivals_path = case.join("arrivals.txt");
    let mut arrivals = if arrivals_path.is_file() {
        read_arrivals(&arrivals_path)?
    } else {
        BTreeMap::from([(0, (0..requests.len() as u64).collect())])
    };
    let mut rec = Recorder::new(None, None, scenario.slo.clone())?;
    let mut logs = vec![RequestLog::default(); requests.len()];
    let mut run = Run::default();
    let mut in_flight: VecDeque<i64> = VecDeque::new();
    let (mut step, mut now) = (0i64, 0u64);
    loop {
        for i in arrivals.remove(&step).unwrap_or_default() {
            let req = requests
                .get_mut(i as usize)
                .and_then(Option::take)
                .ok_or_else(|| {
                    Error::input(format!(
                        "arrivals name request {i} twice or one the trace lacks"
                    ))
                })?;
            replica.add_request(req, now, &mut rec)?;
        }
        let started = replica.steps_started();
        let Some(at) = replica.start_step(now, &mut rec)? else {
            match arrivals.keys().next() {
                Some(&next) => {
                    step = next.max(step);
                    continue;
                }
                None => break,
            }
        };
        if replica.steps_started() > started {
            record_step(&replica, step, &mut logs, &mut run);
            in_flight.push_back(step);
            step += 1;
        }
        now = at;
        replica.finish_step(now, &mut rec)?;
        if replica.applied_a_step() {
            let applied_step = in_flight.pop_front().expect("a step in flight");
            for a in replica.applied_tokens() {
                let log = &mut logs[a.id as usize];
                log.generated += 1;
                if log.first_token < 0 {
                    log.first_token = applied_step;
                }
                if a.finished {
                    log.finish = applied_step;
                }
            }
        }
    }
    if let Some(i) = requests.iter().position(Option::is_some) {
        return Err(Error::input(format!(
            "request {i} never arrives (arrivals.txt does not name it)"
        )));
    }
    fill_requests(&scenario, &logs, &mut run)?;
    Ok(run)
}

/// The step row and schedule of the step just scheduled.
fn record_step(replica: &Replica, step: i64, logs: &mut [RequestLog], run: &mut Run) {
    let Some(s) = replica.vllm() else {
        return;
    };
    let r = replica.last_step();
    let row = vec![
        step,
        r.batch_size as i64,
        r.prefill_seqs as i64,
        r.prefill_tokens as i64,
        r.decode_tokens as i64,
        r.blocks.used as i64,
        r.blocks.cached as i64,
        r.blocks.free as i64,
        r.waiting as i64,
        r.running as i64,
        r.preemptions as i64,
        // vLLM 0.33's default (V2) model runner is sent resumed requests as new ones
        // (`scheduled_new_reqs.extend(scheduled_resumed_reqs)`), so its scheduler output
        // lists every admission as new and none as resumed.
        s.step_admitted.len() as i64,
        0,
    ];
    run.steps.insert(step, row);
    let mut sched = StepSchedule::default();
    for x in &s.scheduled {
        sched.sched.insert(x.id, (x.new_tokens, x.context));
        let log = &mut logs[x.id as usize];
        if log.first_sched < 0 {
            log.first_sched = step;
            log.cached = x.context as i64;
        }
        let end = x.context + x.new_tokens;
        if x.context < log.high_water {
            log.recomputed += (end.min(log.high_water) - x.context) as i64;
        }
        log.high_water = log.high_water.max(end);
    }
    // New requests first, then resumed ones (the V2 runner's `extend`).
    let admitted = |resumed: bool| s.step_admitted.iter().filter(move |a| a.1 == resumed);
    sched.new = admitted(false).chain(admitted(true)).map(|a| a.0).collect();
    sched.preempted = s.step_preempted.clone();
    sched.preempted.sort_unstable();
    for &p in &sched.preempted {
        logs[p as usize].preemptions += 1;
    }
    run.sched.insert(step, sched);
}

/// Request rows from the replay's logs and the trace's lengths.
fn fill_requests(
    scenario: &crate::scenario::Scenario,
    logs: &[RequestLog],
    run: &mut Run,
) -> Result<()> {
    for r in workload::open(&scenario.workload, scenario.seed)? {
        let r = r?;
        let l = &logs[r.id as usize];
        run.requests.insert(
            r.id as i64,
            vec![
                r.id as i64,
                r.input_tokens as i64,
                r.output_tokens as i64,
                l.cached,
                l.first_sched,
                l.first_token,
                l.finish,
                l.preemptions,
                l.recomputed,
                l.generated,
            ],
        );
    }
    Ok(())
}

/// Read one of vLLM's runs (`vllm/` or `vllm_async/`).
pub fn read_vllm(dir: &Path) -> Result<Run> {
    let mut run = Run::default();
    for row in read_csv(&dir.join("vllm_steps.csv"), &STEP_COLUMNS)? {
        run.steps.insert(row[0], row);
    }
    for row in read_csv(&dir.join("vllm_requests.csv"), &REQUEST_COLUMNS)? {
        run.requests.insert(row[0], row);
    }
    run.sched = read_sched(dir)?;
    Ok(run)
}

fn read_csv(path: &Path, columns: &[&str]) -> Result<Vec<Vec<i64>>> {
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
        let row = idx
            .iter()
            .zip(columns)
            .map(|(&k, c)| {
                rec.get(k)
                    .and_then(|v| v.parse::<i64>().ok())
                    .ok_or_else(|| {
                        Error::input(format!(
                            "{}: row {}: column `{c}` is not an integer",
                            path.display(),
                            i + 2
                        ))
                    })
            })
            .collect::<Result<Vec<i64>>>()?;
        rows.push(row);
    }
    Ok(rows)
}

/// Read `vllm_sched.jsonl.gz` (or the uncompressed `vllm_sched.jsonl`) of a run.
fn read_sched(dir: &Path) -> Result<BTreeMap<i64, StepSchedule>> {
    let gz = dir.join("vllm_sched.jsonl.gz");
    let plain = dir.join("vllm_sched.jsonl");
    let (path, reader): (PathBuf, Box<dyn Read>) = if gz.is_file() {
        let f = std::fs::File::open(&gz)
            .map_err(|e| Error::input(format!("cannot read {}: {e}", gz.display())))?;
        (gz, Box::new(flate2::read::GzDecoder::new(f)))
    } else {
        let f = std::fs::File::open(&plain)
            .map_err(|e| Error::input(format!("cannot read {}: {e}", plain.display())))?;
        (plain, Box::new(f))
    };
    let mut out = BTreeMap::new();
    for (i, line) in BufReader::new(reader).lines().enumerate() {
        let line = line.map_err(|e| Error::input(format!("{}: {e}", path.display())))?;
        if line.trim().is_empty() {
            continue;
        }
        let bad = |what: &str| Error::input(format!("{}: line {}: {what}", path.display(), i + 1));
        let v: serde_json::Value =
            serde_json::from_str(&line).map_err(|e| bad(&format!("not JSON: {e}")))?;
        let step = v["step"].as_i64().ok_or_else(|| bad("no integer `step`"))?;
        let mut s = StepSchedule::default();
        for (id, pair) in v["sched"]
            .as_object()
            .ok_or_else(|| bad("no object `sched`"))?
        {
            let id: u64 = id
                .parse()
                .map_err(|_| bad("a request id is not an integer"))?;
            let n = pair[0].as_u64().ok_or_else(|| bad("bad `sched` entry"))?;
            let ctx = pair[1].as_u64().ok_or_else(|| bad("bad `sched` entry"))?;
            s.sched.insert(id, (n as u32, ctx as u32));
        }
        let ids = |key: &str| -> Result<Vec<u64>> {
            v[key]
                .as_array()
                .ok_or_else(|| bad(&format!("no list `{key}`")))?
                .iter()
                .map(|x| x.as_u64().ok_or_else(|| bad(&format!("bad `{key}` entry"))))
                .collect()
        };
        s.new = ids("new")?;
        s.preempted = ids("preempted")?;
        out.insert(step, s);
    }
    Ok(out)
}

/// The outcome of a comparison.
#[derive(Debug, Clone, Default)]
pub struct Comparison {
    /// Steps compared.
    pub steps: usize,
    /// Requests compared.
    pub requests: usize,
    /// The first divergent step, if any.
    pub first_divergent_step: Option<i64>,
    /// Requests whose rows differ.
    pub mismatched_requests: usize,
    /// A readable account of the differences (empty when everything matches).
    pub detail: String,
}

impl Comparison {
    /// True when every step, schedule and request matched exactly.
    pub fn matches(&self) -> bool {
        self.first_divergent_step.is_none() && self.mismatched_requests == 0
    }
}

fn fmt_row(columns: &[&str], row: Option<&Vec<i64>>) -> String {
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

fn step_matches(k: Option<&Vec<i64>>, v: Option<&Vec<i64>>) -> bool {
    match (k, v) {
        (Some(k), Some(v)) => k.iter().zip(v).all(|(a, b)| *b < 0 || a == b),
        (None, None) => true,
        _ => false,
    }
}

/// Compare kvsim's replay with vLLM's run, exactly (vLLM's -1 marks a value it did not
/// count, which is skipped).
pub fn compare(kvsim: &Run, vllm: &Run) -> Comparison {
    let mut c = Comparison {
        steps: vllm.steps.len(),
        requests: vllm.requests.len(),
        ..Default::default()
    };
    let steps: std::collections::BTreeSet<i64> = kvsim
        .steps
        .keys()
        .chain(vllm.steps.keys())
        .chain(kvsim.sched.keys())
        .chain(vllm.sched.keys())
        .copied()
        .collect();
    for &s in &steps {
        let rows_ok = step_matches(kvsim.steps.get(&s), vllm.steps.get(&s));
        let sched_ok = kvsim.sched.get(&s) == vllm.sched.get(&s);
        if rows_ok && sched_ok {
            continue;
        }
        c.first_divergent_step = Some(s);
        let _ = writeln!(c.detail, "first divergent step: {s}");
        for t in (s - 1).max(0)..=s {
            let _ = writeln!(
                c.detail,
                "  kvsim {}",
                fmt_row(&STEP_COLUMNS, kvsim.steps.get(&t))
            );
            let _ = writeln!(
                c.detail,
                "  vllm  {}",
                fmt_row(&STEP_COLUMNS, vllm.steps.get(&t))
            );
        }
        if !sched_ok {
            describe_sched(&mut c.detail, kvsim.sched.get(&s), vllm.sched.get(&s));
        }
        break;
    }
    let mut shown = 0;
    let ids: std::collections::BTreeSet<i64> = kvsim
        .requests
        .keys()
        .chain(vllm.requests.keys())
        .copied()
        .collect();
    for id in ids {
        let (k, v) = (kvsim.requests.get(&id), vllm.requests.get(&id));
        if k == v {
            continue;
        }
        c.mismatched_requests += 1;
        if shown < 3 {
            shown += 1;
            let _ = writeln!(c.detail, "request {id} differs:");
            let _ = writeln!(c.detail, "  kvsim {}", fmt_row(&REQUEST_COLUMNS, k));
            let _ = writeln!(c.detail, "  vllm  {}", fmt_row(&REQUEST_COLUMNS, v));
        }
    }
    c
}

fn describe_sched(out: &mut String, k: Option<&StepSchedule>, v: Option<&StepSchedule>) {
    let empty = StepSchedule::default();
    let (k, v) = (k.unwrap_or(&empty), v.unwrap_or(&empty));
    let ids: std::collections::BTreeSet<u64> =
        k.sched.keys().chain(v.sched.keys()).copied().collect();
    let mut shown = 0;
    for id in ids {
        let (a, b) = (k.sched.get(&id), v.sched.get(&id));
        if a != b && shown < 8 {
            shown += 1;
            let _ = writeln!(
                out,
                "  request {id}: kvsim [new, computed] {a:?}, vllm {b:?}"
            );
        }
    }
    if k.new != v.new {
        let _ = writeln!(out, "  admitted: kvsim {:?}, vllm {:?}", k.new, v.new);
    }
    if k.preempted != v.preempted {
        let _ = writeln!(
            out,
            "  preempted: kvsim {:?}, vllm {:?}",
            k.preempted, v.preempted
        );
    }
}

/// Replay and compare every vLLM run of a case; returns `(run name, comparison)` pairs.
pub fn check_case(case: &Path) -> Result<Vec<(String, Comparison)>> {
    if sglang::is_case(case) {
        return Ok(vec![("sglang".to_string(), sglang::check_case(case)?)]);
    }
    let runs = vllm_runs(case);
    if runs.is_empty() {
        return Err(Error::input(format!(
            "{}: no vLLM run (vllm/ or vllm_async/ with vllm_steps.csv)",
            case.display()
        )));
    }
    let mut out = Vec::new();
    for (sub, asynchronous) in runs {
        let vllm = read_vllm(&case.join(&sub))?;
        let kvsim = replay(case, asynchronous)?;
        out.push((sub, compare(&kvsim, &vllm)));
    }
    Ok(out)
}
