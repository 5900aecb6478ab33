//! Paging experiments: several policies, cache sizes and predictors over one or more
//! traces, randomized ones averaged over runs, costs summed over traces and compared with
//! Belady's (total cost over total optimal cost, as the literature reports).

use super::policies::{entry, PolicyParams};
use super::predictor::Predictor;
use super::{make_policy, simulate, Trace};
use crate::error::Result;
use crate::workload::mix;
use serde::Serialize;

/// What to run.
#[derive(Debug, Clone)]
pub struct PagingJob {
    /// Cache sizes.
    pub ks: Vec<usize>,
    /// Policy names.
    pub policies: Vec<String>,
    /// Predictors for the policies that use predictions.
    pub predictors: Vec<Predictor>,
    /// Runs to average randomized policies and noisy predictions over.
    pub runs: u32,
    /// Base seed.
    pub seed: u64,
    /// Bound growth of deterministic combinations.
    pub gamma: f64,
    /// Learning rate of randomized combinations.
    pub eps: f64,
}

/// One result row.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct PagingRow {
    /// Policy.
    pub policy: String,
    /// Predictor, or `-`.
    pub predictor: String,
    /// Cache size.
    pub k: usize,
    /// Requests over all traces.
    pub requests: u64,
    /// Misses over all traces, mean over runs.
    pub misses: f64,
    /// Misses per request.
    pub miss_ratio: f64,
    /// Belady's misses over all traces.
    pub opt_misses: u64,
    /// Misses over Belady's, mean over runs.
    pub cost_ratio: f64,
    /// Standard deviation of the cost ratio over runs.
    pub cost_ratio_std: f64,
    /// Runs averaged.
    pub runs: u32,
}

impl PagingRow {
    /// The row of `policy` at size `k` from its misses in each run, against Belady's
    /// `opt_misses` over the same `requests`.
    pub fn from_runs(
        policy: &str,
        predictor: String,
        k: usize,
        requests: u64,
        opt_misses: u64,
        per_run: &[f64],
    ) -> PagingRow {
        let runs = per_run.len() as u32;
        let mean = per_run.iter().sum::<f64>() / runs as f64;
        let ratios: Vec<f64> = per_run
            .iter()
            .map(|m| m / opt_misses.max(1) as f64)
            .collect();
        let rmean = ratios.iter().sum::<f64>() / runs as f64;
        let var = ratios.iter().map(|r| (r - rmean).powi(2)).sum::<f64>() / runs as f64;
        PagingRow {
            policy: policy.to_string(),
            predictor,
            k,
            requests,
            misses: mean,
            miss_ratio: mean / requests.max(1) as f64,
            opt_misses,
            cost_ratio: rmean,
            cost_ratio_std: var.sqrt(),
            runs,
        }
    }
}

fn seed_for(base: u64, parts: &[u64]) -> u64 {
    parts.iter().fold(base, |acc, &p| mix(acc, p))
}

/// Run the job over the traces. Every policy that reads predictions must have a predictor
/// of its kind in the job.
pub fn run_paging(traces: &[Trace], job: &PagingJob) -> Result<Vec<PagingRow>> {
    for p in &job.policies {
        if let Some(kind) = entry(p)?.prediction {
            if !job.predictors.iter().any(|q| q.kind() == kind) {
                return Err(crate::error::Error::input(format!(
                    "policy `{p}` needs predictions of the kind it reads: add --predictor {}",
                    kind.predictor_names()
                )));
            }
        }
    }
    let requests: u64 = traces.iter().map(|t| t.len() as u64).sum();
    let mut rows = Vec::new();
    for &k in &job.ks {
        crate::interrupt::check()?;
        let opt: u64 = traces
            .iter()
            .map(|t| {
                simulate(
                    make_policy("belady", &PolicyParams::new(k, t.num_pages, 0))
                        .expect("registered"),
                    k,
                    t,
                    None,
                )
            })
            .sum();
        let mut push = |policy: &str, predictor: String, per_run: Vec<f64>| {
            rows.push(PagingRow::from_runs(
                policy, predictor, k, requests, opt, &per_run,
            ));
        };
        // Policies without predictions.
        for name in job
            .policies
            .iter()
            .filter(|p| !entry(p).expect("checked").uses_predictions())
        {
            crate::interrupt::check()?;
            let e = entry(name)?;
            let runs = if e.randomized { job.runs } else { 1 };
            let per_run: Vec<f64> = (0..runs)
                .map(|run| {
                    traces
                        .iter()
                        .enumerate()
                        .map(|(i, t)| {
                            let mut p = PolicyParams::new(
                                k,
                                t.num_pages,
                                seed_for(job.seed, &[run as u64, i as u64, 1]),
                            );
                            p.gamma = job.gamma;
                            p.eps = job.eps;
                            simulate((e.build)(&p), k, t, None) as f64
                        })
                        .sum()
                })
                .collect();
            push(name, "-".into(), per_run);
        }
        // Policies with predictions: one set of predictions per run, trace and predictor,
        // shared by every policy (as in the literature's experiments).
        let predictive: Vec<&String> = job
            .policies
            .iter()
            .filter(|p| entry(p).expect("checked").uses_predictions())
            .collect();
        for pred in &job.predictors {
            // Each policy reads one kind of prediction; pair it with predictors of that kind.
            let predictive: Vec<&String> = predictive
                .iter()
                .copied()
                .filter(|p| entry(p).expect("checked").prediction == Some(pred.kind()))
                .collect();
            if predictive.is_empty() {
                continue;
            }
            let noisy = pred.is_noisy();
            let any_random = predictive
                .iter()
                .any(|p| entry(p).expect("checked").randomized);
            let runs = if noisy || any_random { job.runs } else { 1 };
            let mut per_policy = vec![vec![0.0; runs as usize]; predictive.len()];
            for run in 0..runs {
                crate::interrupt::check()?;
                for (i, t) in traces.iter().enumerate() {
                    let preds = pred.predict(t, k, seed_for(job.seed, &[run as u64, i as u64, 2]));
                    for (j, name) in predictive.iter().enumerate() {
                        let e = entry(name)?;
                        let mut p = PolicyParams::new(
                            k,
                            t.num_pages,
                            seed_for(job.seed, &[run as u64, i as u64, 3, j as u64]),
                        );
                        p.gamma = job.gamma;
                        p.eps = job.eps;
                        per_policy[j][run as usize] +=
                            simulate((e.build)(&p), k, t, Some(&preds)) as f64;
                    }
                }
            }
            for (j, name) in predictive.iter().enumerate() {
                push(name, pred.label(), std::mem::take(&mut per_policy[j]));
            }
        }
    }
    Ok(rows)
}

/// The rows as an aligned table.
pub fn to_table(rows: &[PagingRow]) -> String {
    let mut o = format!(
        "{:<20} {:<20} {:>7} {:>12} {:>9} {:>9} {:>8}\n",
        "policy", "predictor", "k", "misses", "miss%", "cost/OPT", "std"
    );
    for r in rows {
        o.push_str(&format!(
            "{:<20} {:<20} {:>7} {:>12.1} {:>9.4} {:>9.4} {:>8.4}\n",
            r.policy,
            r.predictor,
            r.k,
            r.misses,
            100.0 * r.miss_ratio,
            r.cost_ratio,
            r.cost_ratio_std
        ));
    }
    o
}
