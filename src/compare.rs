//! `kvsim compare`: each token-level policy at each budget, served on a scenario and
//! scored on a recorded attention trace, in one table (CSV, Markdown) and one plot of
//! throughput against attention-output error. The first row is the full cache (the
//! scenario with `kv_cache.token_policy.kind=none`); each other row sets the policy's
//! `kind` and `keep_ratio`, keeping the scenario's other `token_policy` fields.

use crate::attention::quantize::QUANTIZERS;
use crate::attention::{self, AttentionTrace, EvalRow};
use crate::engine::config::EngineSetup;
use crate::engine::token_policy::TOKEN_POLICIES;
use crate::error::{Error, Result};
use crate::report::Summary;
use crate::scenario::load_scenario;
use crate::sim::recorder::Recorder;
use crate::sweep::csv_field;
use rayon::prelude::*;
use std::path::{Path, PathBuf};

/// Policies with both a serving model and a fidelity rule: the default set.
pub const DEFAULT_POLICIES: &[&str] = &[
    "streaming_llm",
    "h2o",
    "snapkv",
    "pyramidkv",
    "ada_snapkv",
    "tova",
    "quest",
    "tokenselect",
    "kivi",
    "kivi4",
];

/// What to compare.
pub struct CompareJob {
    /// Scenario file.
    pub scenario: PathBuf,
    /// Attention trace (KVAT).
    pub trace: PathBuf,
    /// Policy names.
    pub policies: Vec<String>,
    /// Keep ratios.
    pub ratios: Vec<f64>,
    /// Overrides for every serving run.
    pub sets: Vec<String>,
    /// Output directory.
    pub out: PathBuf,
    /// Seed of the random policy.
    pub seed: u64,
    /// No progress bar.
    pub quiet: bool,
}

/// The serving side of one row.
#[derive(Debug, Clone)]
pub struct Serving {
    /// Output tokens per second.
    pub throughput: f64,
    /// p99 time to first token, ms.
    pub ttft_p99_ms: f64,
    /// p99 time per output token, ms.
    pub tpot_p99_ms: f64,
    /// Mean engine step, ms.
    pub mean_step_ms: f64,
    /// Peak KV memory in use on one replica's GPUs, GiB.
    pub peak_kv_gib: f64,
    /// Largest batch.
    pub max_batch: u32,
}

/// One policy at one budget (or the full cache).
#[derive(Debug, Clone)]
pub struct CompareRow {
    /// Policy name (`full` for the uncompressed baseline).
    pub policy: String,
    /// Keep ratio.
    pub keep_ratio: f64,
    /// Serving result; `None` when the policy has no serving model; `Err` when the run failed.
    pub serving: Option<std::result::Result<Serving, String>>,
    /// Fidelity; `None` when the policy has no selection rule.
    pub fidelity: Option<EvalRow>,
}

/// True when attention-eval scores this policy.
fn evaluable(policy: &str) -> bool {
    attention::policies::POLICIES.contains(&policy) || QUANTIZERS.contains(&policy)
}

/// The overrides that serve `policy` at `ratio`, if it has a serving model (`kivi4` is
/// `kivi` at 4 bits).
fn serving_sets(policy: &str, ratio: f64) -> Option<Vec<String>> {
    let (kind, extra) = match policy {
        "kivi4" => ("kivi", Some("kv_cache.token_policy.bits=4".to_string())),
        "none" => return None,
        p if TOKEN_POLICIES.contains(&p) => (p, None),
        _ => return None,
    };
    let mut sets = vec![
        format!("kv_cache.token_policy.kind={kind}"),
        format!("kv_cache.token_policy.keep_ratio={ratio}"),
    ];
    sets.extend(extra);
    Some(sets)
}

fn serve(scenario: &Path, sets: &[String]) -> Result<Serving> {
    let s = load_scenario(scenario, sets)?;
    let setup = EngineSetup::from_scenario(&s)?;
    let mut rec = Recorder::new(None, None, s.slo.clone())?;
    let sum: Summary = crate::sim::run(&s, &setup, &mut rec, false)?;
    let gib = 1024.0 * 1024.0 * 1024.0;
    Ok(Serving {
        throughput: sum.output_token_throughput,
        ttft_p99_ms: sum.latency.ttft_ms.p99,
        tpot_p99_ms: sum.latency.tpot_ms.p99,
        mean_step_ms: if sum.steps > 0 {
            sum.busy_fraction * sum.makespan_s * 1e3 / sum.steps as f64
        } else {
            0.0
        },
        peak_kv_gib: sum.kv_blocks_used_peak as f64
            * sum.memory.block_bytes as f64
            * sum.memory.gpus_per_replica as f64
            / gib,
        max_batch: sum.max_batch,
    })
}

/// Run the comparison: the full cache, then every policy at every ratio.
pub fn compare(job: &CompareJob) -> Result<Vec<CompareRow>> {
    for p in &job.policies {
        if serving_sets(p, 1.0).is_none() && !evaluable(p) {
            return Err(Error::input(format!(
                "--policies: unknown policy `{p}`; serving: {}, kivi4; attention: {}, {}",
                TOKEN_POLICIES.join(", "),
                attention::policies::POLICIES.join(", "),
                QUANTIZERS.join(", ")
            )));
        }
    }
    load_scenario(&job.scenario, &job.sets)?;
    crate::output::prepare(&job.out)?;
    let trace = AttentionTrace::read(&job.trace)?;
    let scored: Vec<String> = job
        .policies
        .iter()
        .filter(|p| evaluable(p))
        .cloned()
        .collect();
    let fidelity = attention::evaluate(&trace, &scored, &job.ratios, job.seed)?;
    let mut cells: Vec<(String, f64)> = vec![("full".into(), 1.0)];
    for p in &job.policies {
        for &r in &job.ratios {
            cells.push((p.clone(), r));
        }
    }
    let bar = crate::progress::points_bar(cells.len(), job.quiet);
    let rows = cells
        .par_iter()
        .map(|(policy, ratio)| {
            let serving = if policy == "full" {
                let mut sets = job.sets.clone();
                sets.push("kv_cache.token_policy.kind=none".to_string());
                Some(serve(&job.scenario, &sets))
            } else {
                serving_sets(policy, *ratio).map(|extra| {
                    let sets: Vec<String> = job.sets.iter().cloned().chain(extra).collect();
                    serve(&job.scenario, &sets)
                })
            };
            bar.inc(1);
            CompareRow {
                policy: policy.clone(),
                keep_ratio: *ratio,
                serving: serving.map(|r| r.map_err(|e| e.to_string())),
                fidelity: fidelity
                    .iter()
                    .find(|f| &f.policy == policy && f.keep_ratio == *ratio)
                    .cloned(),
            }
        })
        .collect::<Vec<_>>();
    bar.finish_and_clear();
    crate::interrupt::check()?;
    write_outputs(job, &rows)?;
    let failed: Vec<&String> = rows
        .iter()
        .filter_map(|r| match &r.serving {
            Some(Err(e)) => Some(e),
            _ => None,
        })
        .collect();
    if let Some(first) = failed.first() {
        return Err(Error::failure(format!(
            "{} of {} serving runs failed (status `error` in compare.csv); the first: {first}",
            failed.len(),
            rows.len()
        )));
    }
    Ok(rows)
}

/// CSV header of the comparison.
pub const CSV_HEADER: &str = "policy,keep_ratio,status,output_token_throughput,ttft_p99_ms,tpot_p99_ms,mean_step_ms,peak_kv_gib,max_batch,attention_mass,topk_recall,output_error,fact_survives,error";

fn csv(rows: &[CompareRow]) -> String {
    let mut out = String::from(CSV_HEADER);
    out.push('\n');
    for r in rows {
        let (status, serving, error) = match &r.serving {
            Some(Ok(s)) => (
                "ok",
                format!(
                    "{:.2},{:.2},{:.3},{:.3},{:.3},{}",
                    s.throughput,
                    s.ttft_p99_ms,
                    s.tpot_p99_ms,
                    s.mean_step_ms,
                    s.peak_kv_gib,
                    s.max_batch
                ),
                String::new(),
            ),
            Some(Err(e)) => ("error", ",,,,,".to_string(), csv_field(e)),
            None => ("no_serving_model", ",,,,,".to_string(), String::new()),
        };
        let fid = fidelity_cells(r);
        out.push_str(&format!(
            "{},{},{status},{serving},{},{},{},{},{error}\n",
            r.policy, r.keep_ratio, fid[0], fid[1], fid[2], fid[3]
        ));
    }
    out
}

fn fidelity_cells(r: &CompareRow) -> [String; 4] {
    match (&r.fidelity, r.policy.as_str()) {
        (Some(f), _) => [
            format!("{:.4}", f.mass),
            format!("{:.4}", f.recall),
            format!("{:.4}", f.output_error),
            f.fact_survives.map_or(String::new(), |b| b.to_string()),
        ],
        (None, "full") => [
            "1.0000".into(),
            "1.0000".into(),
            "0.0000".into(),
            "true".into(),
        ],
        (None, _) => Default::default(),
    }
}

/// The comparison as a Markdown table.
pub fn markdown(rows: &[CompareRow]) -> String {
    let mut s = String::from("| policy | keep | tok/s | TTFT p99 ms | TPOT p99 ms | step ms | peak KV GiB | max batch | attn mass | top-k recall | output error | fact |\n|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|\n");
    for r in rows {
        let serving = match &r.serving {
            Some(Ok(v)) => format!(
                "{:.0} | {:.0} | {:.2} | {:.2} | {:.2} | {}",
                v.throughput,
                v.ttft_p99_ms,
                v.tpot_p99_ms,
                v.mean_step_ms,
                v.peak_kv_gib,
                v.max_batch
            ),
            Some(Err(_)) => "error | - | - | - | - | -".into(),
            None => "- | - | - | - | - | -".into(),
        };
        let f = fidelity_cells(r).map(|c| if c.is_empty() { "-".to_string() } else { c });
        s.push_str(&format!(
            "| {} | {:.0} % | {serving} | {} | {} | {} | {} |\n",
            r.policy,
            r.keep_ratio * 100.0,
            f[0],
            f[1],
            f[2],
            match f[3].as_str() {
                "true" => "kept",
                "false" => "lost",
                _ => "-",
            }
        ));
    }
    s
}

fn write_outputs(job: &CompareJob, rows: &[CompareRow]) -> Result<()> {
    let mut series: Vec<(String, Vec<(f64, f64)>)> = Vec::new();
    for r in rows {
        let (Some(Ok(s)), err) = (&r.serving, r.fidelity.as_ref().map(|f| f.output_error)) else {
            continue;
        };
        let err = match (err, r.policy.as_str()) {
            (Some(e), _) => e,
            (None, "full") => 0.0,
            _ => continue,
        };
        match series.iter_mut().find(|(n, _)| *n == r.policy) {
            Some((_, pts)) => pts.push((err, s.throughput)),
            None => series.push((r.policy.clone(), vec![(err, s.throughput)])),
        }
    }
    let plotted: Vec<crate::plots::Series> = series
        .iter()
        .map(|(n, pts)| crate::plots::Series {
            label: n,
            points: pts.clone(),
        })
        .collect();
    let svg = crate::plots::line_chart(
        "Throughput against attention-output error",
        "relative attention-output error",
        "output tokens/s",
        &plotted,
        false,
        true,
    )?;
    let mut out = crate::output::Staged::begin(&job.out)?;
    out.write("compare.csv", csv(rows).as_bytes())?;
    out.write("compare.md", markdown(rows).as_bytes())?;
    out.write("compare.svg", svg.as_bytes())?;
    out.commit()
}
