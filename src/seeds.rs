//! `kvsim run --seeds N`: the scenario run with seeds `seed, seed+1, ..., seed+N-1` in
//! parallel, and every numeric figure of the summary reported as the mean over the seeds
//! with a 95 % confidence interval (Student t with N-1 degrees of freedom).
//!
//! Only the first seed's run writes per-request, per-step and trace files; the others run
//! without files. `summary.json` holds the first seed's summary (so it matches those
//! files) and a `seeds` section ([`SeedStats`]).

use crate::engine::config::EngineSetup;
use crate::error::{Error, Result};
use crate::progress::RunProgress;
use crate::report::Summary;
use crate::scenario::Scenario;
use crate::sim::recorder::Recorder;
use rayon::prelude::*;
use serde::Serialize;
use statrs::distribution::{ContinuousCDF, StudentsT};
use std::collections::BTreeMap;

/// The confidence level of the intervals.
pub const CONFIDENCE: f64 = 0.95;

/// The most seeds one command runs (each run holds its per-request latencies).
pub const MAX_SEEDS: u32 = 10_000;

/// The seeds of `n` runs from `base`: `base, base+1, ..., base+n-1`.
pub fn seed_list(base: u64, n: u32) -> Result<Vec<u64>> {
    if n == 0 || n > MAX_SEEDS {
        return Err(Error::input(format!(
            "--seeds {n}: must be from 1 to {MAX_SEEDS}"
        )));
    }
    if base.checked_add(n as u64 - 1).is_none() {
        return Err(Error::input(format!(
            "--seeds {n}: seed {base} plus {} overflows 64 bits; lower the scenario's seed",
            n - 1
        )));
    }
    Ok((0..n as u64).map(|i| base + i).collect())
}

/// One figure over the seeds.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct MetricStats {
    /// Mean over the seeds.
    pub mean: f64,
    /// Lower end of the 95 % confidence interval of the mean.
    pub ci95_low: f64,
    /// Upper end.
    pub ci95_high: f64,
    /// Half-width of the interval: t(0.975, N-1) times the sample standard deviation
    /// over the square root of N.
    pub half_width: f64,
    /// The figure of each seed, in seed order.
    pub values: Vec<f64>,
}

impl MetricStats {
    /// Mean and interval of `values` (at least two).
    pub fn of(values: Vec<f64>) -> MetricStats {
        let n = values.len() as f64;
        let mean = values.iter().sum::<f64>() / n;
        let var = values.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / (n - 1.0);
        let half_width = t_quantile(values.len() - 1) * (var / n).sqrt();
        MetricStats {
            mean,
            ci95_low: mean - half_width,
            ci95_high: mean + half_width,
            half_width,
            values,
        }
    }
}

/// The two-sided [`CONFIDENCE`] quantile of Student's t with `df` degrees of freedom.
pub fn t_quantile(df: usize) -> f64 {
    match StudentsT::new(0.0, 1.0, df.max(1) as f64) {
        Ok(t) => t.inverse_cdf(0.5 + CONFIDENCE / 2.0),
        Err(_) => f64::NAN,
    }
}

/// The `seeds` section of `summary.json`.
#[derive(Debug, Clone, Serialize)]
pub struct SeedStats {
    /// The seeds run, in order.
    pub seeds: Vec<u64>,
    /// The confidence level of the intervals.
    pub confidence: f64,
    /// Every numeric figure of the summary, by its dotted JSON path (`latency.ttft_ms.p99`,
    /// `per_replica.0.prompts`), present in every seed's summary.
    pub metrics: BTreeMap<String, MetricStats>,
}

impl SeedStats {
    /// Aggregate the summaries of `seeds` (same order, at least two).
    pub fn of(seeds: Vec<u64>, summaries: &[Summary]) -> Result<SeedStats> {
        let mut per_seed = Vec::with_capacity(summaries.len());
        for s in summaries {
            let v = serde_json::to_value(s).map_err(|e| Error::failure(e.to_string()))?;
            let mut leaves = BTreeMap::new();
            numeric_leaves(&v, &mut String::new(), &mut leaves);
            per_seed.push(leaves);
        }
        let mut metrics = BTreeMap::new();
        if let Some((first, rest)) = per_seed.split_first() {
            for key in first.keys() {
                let values: Option<Vec<f64>> =
                    per_seed.iter().map(|m| m.get(key).copied()).collect();
                if let (Some(values), false) = (values, rest.is_empty()) {
                    metrics.insert(key.clone(), MetricStats::of(values));
                }
            }
        }
        Ok(SeedStats {
            seeds,
            confidence: CONFIDENCE,
            metrics,
        })
    }
}

/// The numbers in `v`, by dotted path (array elements by index).
fn numeric_leaves(v: &serde_json::Value, path: &mut String, out: &mut BTreeMap<String, f64>) {
    use serde_json::Value;
    let mut descend = |key: &str, child: &Value, path: &mut String| {
        let len = path.len();
        if !path.is_empty() {
            path.push('.');
        }
        path.push_str(key);
        numeric_leaves(child, path, out);
        path.truncate(len);
    };
    match v {
        Value::Number(n) => {
            if let Some(x) = n.as_f64() {
                out.insert(path.clone(), x);
            }
        }
        Value::Object(m) => {
            for (k, c) in m {
                descend(k, c, path);
            }
        }
        Value::Array(a) => {
            for (i, c) in a.iter().enumerate() {
                descend(&i.to_string(), c, path);
            }
        }
        _ => {}
    }
}

/// `summary.json` of a several-seed run: the first seed's summary and the `seeds` section.
#[derive(Serialize)]
pub struct SeedsSummary<'a> {
    /// The first seed's summary, its keys at the top level.
    #[serde(flatten)]
    pub first: &'a Summary,
    /// The figures over the seeds.
    pub seeds: &'a SeedStats,
}

/// Run scenario `s` once per seed of `seeds` in parallel (in the current rayon pool): the
/// first with `rec` (its files), the others without files. Summaries in seed order.
pub fn run_seeds(
    s: &Scenario,
    setup: &EngineSetup,
    rec: &mut Recorder,
    audit: bool,
    seeds: &[u64],
    progress: &RunProgress,
) -> Result<Vec<Summary>> {
    let Some((&first_seed, rest)) = seeds.split_first() else {
        return Ok(Vec::new());
    };
    let step_by_step = rec.is_step_by_step();
    let run_first = || {
        let mut first = s.clone();
        first.seed = first_seed;
        crate::sim::run(&first, setup, rec, audit)
    };
    let run_other = |&seed: &u64| -> Result<Summary> {
        let mut sc = s.clone();
        sc.seed = seed;
        let setup = EngineSetup::from_scenario(&sc)?;
        let mut r = Recorder::new(None, None, sc.slo.clone())?;
        r.set_step_by_step(step_by_step);
        if let Some(t) = progress.ticker() {
            r.set_progress(t);
        }
        crate::sim::run(&sc, &setup, &mut r, audit)
    };
    let (first, others) = rayon::join(run_first, || {
        rest.par_iter().map(run_other).collect::<Vec<_>>()
    });
    let mut out = vec![first?];
    for o in others {
        out.push(o?);
    }
    Ok(out)
}

/// Table lines: label and dotted metric path.
const TABLE: &[(&str, &str)] = &[
    ("requests completed", "requests_completed"),
    ("makespan (s)", "makespan_s"),
    ("throughput (req/s)", "request_throughput"),
    ("input tokens/s", "input_token_throughput"),
    ("output tokens/s", "output_token_throughput"),
    ("TTFT mean (ms)", "latency.ttft_ms.mean"),
    ("TTFT p50 (ms)", "latency.ttft_ms.p50"),
    ("TTFT p90 (ms)", "latency.ttft_ms.p90"),
    ("TTFT p99 (ms)", "latency.ttft_ms.p99"),
    ("TPOT mean (ms)", "latency.tpot_ms.mean"),
    ("TPOT p50 (ms)", "latency.tpot_ms.p50"),
    ("TPOT p90 (ms)", "latency.tpot_ms.p90"),
    ("TPOT p99 (ms)", "latency.tpot_ms.p99"),
    ("ITL mean (ms)", "latency.itl_ms.mean"),
    ("ITL p99 (ms)", "latency.itl_ms.p99"),
    ("E2E mean (ms)", "latency.e2e_ms.mean"),
    ("E2E p50 (ms)", "latency.e2e_ms.p50"),
    ("E2E p90 (ms)", "latency.e2e_ms.p90"),
    ("E2E p99 (ms)", "latency.e2e_ms.p99"),
    ("goodput (req/s)", "goodput"),
    ("SLO attainment", "slo_attainment"),
    ("prefix cache hit rate", "prefix_hit_rate"),
    ("total hit rate", "total_hit_rate"),
    ("KV blocks used mean", "kv_blocks_used_mean"),
    ("KV blocks used peak", "kv_blocks_used_peak"),
    ("evictions", "evictions"),
    ("preemptions", "preemptions"),
    ("recomputed tokens", "recomputed_tokens"),
    ("steps", "steps"),
    ("busy fraction", "busy_fraction"),
    ("$ per million tokens", "cluster.cost_per_million_tokens"),
];

/// The table of a several-seed run: `mean ± half-width` per figure.
pub fn table(first: &Summary, st: &SeedStats) -> String {
    let mut o = String::new();
    let mut line = |k: &str, v: String| o.push_str(&format!("{k:<26}{v}\n"));
    line("scenario", first.scenario.clone());
    line("model / gpu", format!("{} on {}", first.model, first.gpu));
    line("cost model", first.cost_model.clone());
    let seeds: Vec<String> = st.seeds.iter().map(|s| s.to_string()).collect();
    line(
        "seeds",
        format!(
            "{} ({} runs; mean ± half-width of the {:.0} % confidence interval, Student t, {} degrees of freedom)",
            seeds.join(", "),
            st.seeds.len(),
            100.0 * st.confidence,
            st.seeds.len().saturating_sub(1)
        ),
    );
    for (label, key) in TABLE {
        if let Some(m) = st.metrics.get(*key) {
            line(label, format!("{:>12.4} ± {:.4}", m.mean, m.half_width));
        }
    }
    line(
        "all figures",
        "summary.json, section seeds.metrics (per-seed values included)".to_string(),
    );
    o
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seed_lists_and_refusals() {
        assert_eq!(seed_list(5, 3).unwrap(), vec![5, 6, 7]);
        assert_eq!(seed_list(u64::MAX, 1).unwrap(), vec![u64::MAX]);
        assert_eq!(seed_list(1, 0).unwrap_err().exit_code(), 2);
        assert_eq!(seed_list(1, MAX_SEEDS + 1).unwrap_err().exit_code(), 2);
        assert_eq!(seed_list(u64::MAX, 2).unwrap_err().exit_code(), 2);
    }

    #[test]
    fn interval_matches_tabulated_t() {
        // t(0.975, 2) = 4.302652729911275 (tables); sample sd of 1, 2, 3 is 1.
        let m = MetricStats::of(vec![1.0, 2.0, 3.0]);
        assert!((m.mean - 2.0).abs() < 1e-12);
        let half = 4.302652729911275 / 3f64.sqrt();
        assert!((m.half_width - half).abs() < 1e-9, "{}", m.half_width);
        assert!((m.ci95_low - (2.0 - half)).abs() < 1e-9);
        // t(0.975, 9) = 2.262157162740992.
        assert!((t_quantile(9) - 2.262157162740992).abs() < 1e-9);
        let same = MetricStats::of(vec![4.0, 4.0]);
        assert_eq!((same.half_width, same.ci95_high), (0.0, 4.0));
    }

    #[test]
    fn leaves_are_dotted_paths_of_numbers() {
        let v = serde_json::json!({"a": 1, "b": {"c": 2.5, "d": "x", "e": [3, {"f": 4}]}, "g": null, "h": true});
        let mut out = BTreeMap::new();
        numeric_leaves(&v, &mut String::new(), &mut out);
        let want: BTreeMap<String, f64> =
            [("a", 1.0), ("b.c", 2.5), ("b.e.0", 3.0), ("b.e.1.f", 4.0)]
                .into_iter()
                .map(|(k, v)| (k.to_string(), v))
                .collect();
        assert_eq!(out, want);
    }
}
