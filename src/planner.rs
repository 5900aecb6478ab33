//! `kvsim plan`: the cheapest deployment that meets the SLOs. Every combination of the
//! `--search` axes is a candidate; each runs at the scenario's load and, by doubling then
//! bisection on `workload.rate_scale`, finds the highest load at which its SLOs still
//! hold. Candidates that meet the SLOs at the scenario's load rank first, cheapest per hour
//! first (ties: more headroom first).

use crate::error::{Error, Result};
use crate::output::Staged;
use crate::report::Summary;
use crate::scenario::{load_scenario, to_yaml_string};
use crate::sweep::{csv_field, grid, point_sets, run_point, Axis};
use rayon::prelude::*;
use std::path::{Path, PathBuf};

pub use crate::slo::SloBound;

/// Whether a run meets every bound and completed every request; if not, why.
pub fn check(s: &Summary, slo: &[SloBound]) -> std::result::Result<(), String> {
    if s.requests_completed < s.requests_arrived {
        return Err(format!(
            "{} of {} requests not completed",
            s.requests_arrived - s.requests_completed,
            s.requests_arrived
        ));
    }
    for b in slo {
        let v = b.value(s).unwrap_or(f64::NAN);
        if v.is_nan() || v > b.limit_ms {
            return Err(format!("{} {:.1} > {}", b.name(), v, b.limit_ms));
        }
    }
    Ok(())
}

/// A plan to search.
pub struct PlanJob {
    /// Scenario file.
    pub scenario: PathBuf,
    /// Overrides applied to every candidate.
    pub sets: Vec<String>,
    /// The search space.
    pub search: Vec<Axis>,
    /// The SLOs.
    pub slo: Vec<SloBound>,
    /// Largest load multiple tried.
    pub max_scale: f64,
    /// Bisection steps of the rate search.
    pub iterations: u32,
    /// Directory for `plan.csv`, `best.yaml` and `plan.svg`.
    pub out: Option<PathBuf>,
    /// Draw no progress bar (none is drawn either when stderr is not a terminal).
    pub quiet: bool,
}

/// One evaluated candidate.
pub struct Candidate {
    /// Its overrides.
    pub sets: Vec<String>,
    /// GPUs it uses.
    pub gpus: u32,
    /// Price per hour.
    pub cost_per_hour: f64,
    /// The run at the scenario's load.
    pub at_load: Result<Summary>,
    /// Whether the SLOs hold there (or why not).
    pub verdict: std::result::Result<(), String>,
    /// Highest load multiple found to meet the SLOs (0: none tried did).
    pub max_scale: f64,
    /// The run at that load, if any.
    pub at_max: Option<Summary>,
    /// Runs spent.
    pub runs: u32,
}

fn evaluate(job: &PlanJob, sets: Vec<String>, base_rate: f64) -> Candidate {
    // The percentiles the bounds read (`--slo ttft_p95_ms=...`) are computed.
    let mut wanted = crate::scenario::default_percentiles();
    wanted.extend(crate::slo::percentiles_needed(&job.slo));
    let wanted: Vec<String> = wanted.iter().map(f64::to_string).collect();
    let at = |scale: f64| {
        let mut s = sets.clone();
        s.push(format!("output.percentiles=[{}]", wanted.join(",")));
        s.push(format!("workload.rate_scale={}", base_rate * scale));
        run_point(&job.scenario, &s)
    };
    let mut runs = 1;
    let at_load = at(1.0);
    let (gpus, cost_per_hour) = match &at_load {
        Ok(s) => (s.cluster.gpus, s.cluster.cost_per_hour),
        Err(_) => (0, 0.0),
    };
    let verdict = match &at_load {
        Ok(s) => check(s, &job.slo),
        Err(e) => Err(e.to_string()),
    };
    let mut best: Option<(f64, Summary)> = None;
    if let Ok(s) = &at_load {
        // Bracket the highest passing load: [lo passes (or 0), hi fails (or the cap)].
        let (mut lo, mut hi) = if verdict.is_ok() {
            best = Some((1.0, s.clone()));
            let mut lo = 1.0;
            let mut hi = None;
            while lo * 2.0 <= job.max_scale {
                runs += 1;
                match at(lo * 2.0) {
                    Ok(r) if check(&r, &job.slo).is_ok() => {
                        lo *= 2.0;
                        best = Some((lo, r));
                    }
                    _ => {
                        hi = Some(lo * 2.0);
                        break;
                    }
                }
            }
            (lo, hi.unwrap_or(lo))
        } else {
            (0.0, 1.0)
        };
        for _ in 0..job.iterations {
            if hi <= lo {
                break;
            }
            let mid = (lo + hi) / 2.0;
            runs += 1;
            match at(mid) {
                Ok(r) if check(&r, &job.slo).is_ok() => {
                    lo = mid;
                    best = Some((mid, r));
                }
                _ => hi = mid,
            }
        }
    }
    let (max_scale, at_max) = match best {
        Some((s, r)) => (s, Some(r)),
        None => (0.0, None),
    };
    Candidate {
        sets,
        gpus,
        cost_per_hour,
        at_load,
        verdict,
        max_scale,
        at_max,
        runs,
    }
}

/// Evaluate every candidate and rank them. Writes the outputs if `job.out` is set.
pub fn plan(job: &PlanJob) -> Result<Vec<Candidate>> {
    if job.search.is_empty() {
        return Err(Error::input(
            "plan: give at least one --search key=v1,v2,...".to_string(),
        ));
    }
    if !job.max_scale.is_finite() || job.max_scale < 1.0 {
        return Err(Error::input(format!(
            "plan: --max-scale must be a finite number of at least 1 (got {})",
            job.max_scale
        )));
    }
    let base = load_scenario(&job.scenario, &job.sets)?;
    crate::sweep::check_axes(&job.scenario, &job.sets, "--search", &job.search)?;
    if let Some(dir) = &job.out {
        crate::output::prepare(dir)?;
    }
    let base_rate = base.workload.rate_scale;
    let points = grid(&job.search);
    let bar = crate::progress::points_bar(points.len(), job.quiet);
    let mut cands: Vec<Candidate> = points
        .par_iter()
        .map(|p| {
            let mut sets = job.sets.clone();
            sets.extend(point_sets(&job.search, p));
            let c = evaluate(job, sets, base_rate);
            bar.inc(1);
            c
        })
        .collect();
    bar.finish_and_clear();
    crate::interrupt::check()?;
    let all_failed = cands.iter().all(|c| c.at_load.is_err());
    if let Some(c) = cands.first().filter(|_| all_failed) {
        let e = c.at_load.as_ref().err().map(|e| e.to_string());
        return Err(Error::failure(format!(
            "every candidate failed to run, so nothing was written; {}: {}",
            label(job, c),
            e.unwrap_or_default()
        )));
    }
    cands.sort_by(|a, b| {
        let rank = |c: &Candidate| (c.verdict.is_err(), c.at_load.is_err());
        rank(a)
            .cmp(&rank(b))
            .then(a.cost_per_hour.total_cmp(&b.cost_per_hour))
            .then(b.max_scale.total_cmp(&a.max_scale))
    });
    if let Some(dir) = &job.out {
        write_outputs(job, &cands, dir)?;
    }
    Ok(cands)
}

fn label(job: &PlanJob, c: &Candidate) -> String {
    c.sets[job.sets.len()..].join(" ")
}

fn per_million(s: &Summary) -> f64 {
    s.cluster.cost_per_million_tokens
}

/// The ranked table.
pub fn table(job: &PlanJob, cands: &[Candidate]) -> String {
    let mut o = format!(
        "{:<4} {:<60} {:>4} {:>8} {:>9} {:>10} {:>10} {:>9} {:>10}  {}\n",
        "rank",
        "candidate",
        "gpus",
        "$/hour",
        "$/Mtok",
        "TTFT p99",
        "TPOT p99",
        "max load",
        "$/Mtok max",
        "SLO at load"
    );
    for (i, c) in cands.iter().enumerate() {
        let (ttft, tpot, pm) = match &c.at_load {
            Ok(s) => (
                format!("{:.1}", s.latency.ttft_ms.p99),
                format!("{:.2}", s.latency.tpot_ms.p99),
                format!("{:.4}", per_million(s)),
            ),
            Err(_) => ("-".into(), "-".into(), "-".into()),
        };
        let pm_max = c
            .at_max
            .as_ref()
            .map_or("-".to_string(), |s| format!("{:.4}", per_million(s)));
        o.push_str(&format!(
            "{:<4} {:<60} {:>4} {:>8.2} {:>9} {:>10} {:>10} {:>8.2}x {:>10}  {}\n",
            i + 1,
            label(job, c),
            c.gpus,
            c.cost_per_hour,
            pm,
            ttft,
            tpot,
            c.max_scale,
            pm_max,
            match &c.verdict {
                Ok(()) => "meets".to_string(),
                Err(e) => format!("fails: {e}"),
            }
        ));
    }
    o
}

/// The cheapest passing candidate as a complete scenario (absolute paths, no output
/// folder) under a comment naming the SLOs and the candidate.
fn best_yaml(job: &PlanJob, best: &Candidate) -> Result<String> {
    let mut s = load_scenario(&job.scenario, &best.sets)?;
    for p in [&mut s.workload.source.path, &mut s.hardware.calibration]
        .into_iter()
        .flatten()
    {
        if let Ok(abs) = std::fs::canonicalize(&*p) {
            *p = abs;
        }
    }
    s.output.dir = None;
    let header = format!(
        "# The cheapest plan found by kvsim plan for the SLOs {}:\n#   {}\n",
        job.slo
            .iter()
            .map(|b| format!("{}={}", b.name(), b.limit_ms))
            .collect::<Vec<_>>()
            .join(","),
        label(job, best)
    );
    Ok(header + &to_yaml_string(&s)?)
}

/// `plan.csv`, `best.yaml` (when a candidate passes) and `plan.svg`, replacing the folder
/// as a whole (`crate::output`).
fn write_outputs(job: &PlanJob, cands: &[Candidate], dir: &Path) -> Result<()> {
    let mut out = Staged::begin(dir)?;
    let mut csv = String::from("rank,candidate,gpus,cost_per_hour,meets_slo,reason,ttft_p99_ms,tpot_p99_ms,cost_per_million_tokens,max_rate_scale,max_request_throughput,cost_per_million_tokens_at_max,runs\n");
    for (i, c) in cands.iter().enumerate() {
        let (ttft, tpot, pm) = match &c.at_load {
            Ok(s) => (
                format!("{:.2}", s.latency.ttft_ms.p99),
                format!("{:.3}", s.latency.tpot_ms.p99),
                format!("{:.4}", per_million(s)),
            ),
            Err(_) => (String::new(), String::new(), String::new()),
        };
        let (thr, pmm) = c
            .at_max
            .as_ref()
            .map_or((String::new(), String::new()), |s| {
                (
                    format!("{:.4}", s.request_throughput),
                    format!("{:.4}", per_million(s)),
                )
            });
        csv.push_str(&format!(
            "{},{},{},{:.2},{},{},{},{},{},{:.4},{},{},{}\n",
            i + 1,
            csv_field(&label(job, c)),
            c.gpus,
            c.cost_per_hour,
            c.verdict.is_ok(),
            csv_field(&c.verdict.clone().err().unwrap_or_default()),
            ttft,
            tpot,
            pm,
            c.max_scale,
            thr,
            pmm,
            c.runs
        ));
    }
    out.write("plan.csv", csv.as_bytes())?;
    if let Some(best) = cands.iter().find(|c| c.verdict.is_ok()) {
        out.write("best.yaml", best_yaml(job, best)?.as_bytes())?;
    }
    let series: Vec<crate::plots::Series> = cands
        .iter()
        .filter_map(|c| {
            let s = c.at_max.as_ref()?;
            Some(crate::plots::Series {
                label: "",
                points: vec![(s.request_throughput, c.cost_per_hour)],
            })
        })
        .collect();
    let points: Vec<(f64, f64)> = series.iter().flat_map(|s| s.points.clone()).collect();
    let svg = crate::plots::line_chart(
        "Cost against the highest request rate that meets the SLOs",
        "requests per second at the highest passing load",
        "US dollars per hour",
        &[crate::plots::Series {
            label: "candidates",
            points,
        }],
        false,
        true,
    )?;
    out.write("plan.svg", svg.as_bytes())?;
    out.commit()
}
