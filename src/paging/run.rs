//! Paging experiments: several policies, cache sizes and predictors over one or more
//! traces, randomized ones averaged over runs, costs summed over traces and compared with
//! Belady's (total cost over total optimal cost, as the literature reports).

use super::policies::{entry, Entry, PolicyParams};
use super::predictor::Predictor;
use super::{make_policy, simulate, Trace};
use crate::error::Result;
use crate::workload::mix;
use rayon::prelude::*;
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
    /// Compute Belady's optimum for the cost/OPT columns even when `belady` is not one of
    /// the policies (when it is, its own runs give the optimum, and this costs nothing).
    pub opt: bool,
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
    /// Belady's misses over all traces (`None` when the optimum was not computed).
    pub opt_misses: Option<u64>,
    /// Misses over Belady's, mean over runs.
    pub cost_ratio: Option<f64>,
    /// Standard deviation of the cost ratio over runs.
    pub cost_ratio_std: Option<f64>,
    /// Runs averaged.
    pub runs: u32,
}

impl PagingRow {
    /// The row of `policy` at size `k` from its misses in each run, against Belady's
    /// `opt_misses` over the same `requests` (no cost ratio without them).
    pub fn from_runs(
        policy: &str,
        predictor: String,
        k: usize,
        requests: u64,
        opt_misses: Option<u64>,
        per_run: &[f64],
    ) -> PagingRow {
        let runs = per_run.len() as u32;
        let mean = per_run.iter().sum::<f64>() / runs as f64;
        let ratio = opt_misses.map(|opt| {
            let ratios: Vec<f64> = per_run.iter().map(|m| m / opt.max(1) as f64).collect();
            let rmean = ratios.iter().sum::<f64>() / runs as f64;
            let var = ratios.iter().map(|r| (r - rmean).powi(2)).sum::<f64>() / runs as f64;
            (rmean, var.sqrt())
        });
        PagingRow {
            policy: policy.to_string(),
            predictor,
            k,
            requests,
            misses: mean,
            miss_ratio: mean / requests.max(1) as f64,
            opt_misses,
            cost_ratio: ratio.map(|r| r.0),
            cost_ratio_std: ratio.map(|r| r.1),
            runs,
        }
    }
}

fn seed_for(base: u64, parts: &[u64]) -> u64 {
    parts.iter().fold(base, |acc, &p| mix(acc, p))
}

/// The predictive policies run with one predictor, on one set of predictions per run and
/// trace.
struct Group<'a> {
    pred: &'a Predictor,
    policies: Vec<(&'a str, &'static Entry)>,
    runs: u32,
}

/// The rows of a job: policies without predictions, predictor groups, and whether the
/// optimum needs a Belady pass of its own.
struct Plan<'a> {
    plain: Vec<(&'a str, &'static Entry)>,
    groups: Vec<Group<'a>>,
    /// Index in `plain` of `belady`, whose misses are the optimum.
    belady: Option<usize>,
    /// Run Belady for the optimum besides the rows.
    opt_pass: bool,
}

impl<'a> Plan<'a> {
    /// Check the policies and their predictors and group them as the rows come out.
    fn new(job: &'a PagingJob) -> Result<Plan<'a>> {
        let mut plain = Vec::new();
        let mut predictive = Vec::new();
        for p in &job.policies {
            let e = entry(p)?;
            match e.prediction {
                None => plain.push((p.as_str(), e)),
                Some(kind) => {
                    if !job.predictors.iter().any(|q| q.kind() == kind) {
                        return Err(crate::error::Error::input(format!(
                            "policy `{p}` needs predictions of the kind it reads: add \
                             --predictor {}",
                            kind.predictor_names()
                        )));
                    }
                    predictive.push((p.as_str(), e));
                }
            }
        }
        // Each policy reads one kind of prediction; pair it with predictors of that kind.
        let groups = job
            .predictors
            .iter()
            .filter_map(|pred| {
                let policies: Vec<_> = predictive
                    .iter()
                    .copied()
                    .filter(|(_, e)| e.prediction == Some(pred.kind()))
                    .collect();
                let random = pred.is_noisy() || policies.iter().any(|(_, e)| e.randomized);
                let runs = if random { job.runs } else { 1 };
                (!policies.is_empty()).then_some(Group {
                    pred,
                    policies,
                    runs,
                })
            })
            .collect();
        let belady = plain
            .iter()
            .position(|(_, e)| e.name == "belady" && !e.randomized);
        Ok(Plan {
            opt_pass: job.opt && belady.is_none(),
            plain,
            groups,
            belady,
        })
    }
}

/// One simulation: a policy, or the predictive policies of one group on one set of
/// predictions, over one trace at one cache size (`k` indexes the job's sizes).
#[derive(Debug, Clone, Copy, PartialEq)]
enum Task {
    /// Belady's run for the optimum.
    Opt { k: usize, trace: usize },
    /// A policy without predictions.
    Plain {
        k: usize,
        policy: usize,
        run: u32,
        trace: usize,
    },
    /// The policies of a predictor group.
    Predicted {
        k: usize,
        group: usize,
        run: u32,
        trace: usize,
    },
}

/// Every task of the job, in the order the rows consume their results.
fn tasks(plan: &Plan, job: &PagingJob, traces: usize) -> Vec<Task> {
    let mut out = Vec::new();
    for k in 0..job.ks.len() {
        if plan.opt_pass {
            out.extend((0..traces).map(|trace| Task::Opt { k, trace }));
        }
        for (policy, (_, e)) in plan.plain.iter().enumerate() {
            for run in 0..if e.randomized { job.runs } else { 1 } {
                out.extend((0..traces).map(|trace| Task::Plain {
                    k,
                    policy,
                    run,
                    trace,
                }));
            }
        }
        for (group, g) in plan.groups.iter().enumerate() {
            for run in 0..g.runs {
                out.extend((0..traces).map(|trace| Task::Predicted {
                    k,
                    group,
                    run,
                    trace,
                }));
            }
        }
    }
    out
}

/// The parameters of a policy of the job.
fn params(job: &PagingJob, k: usize, t: &Trace, seed: u64) -> PolicyParams {
    let mut p = PolicyParams::new(k, t.num_pages, seed);
    p.gamma = job.gamma;
    p.eps = job.eps;
    p
}

/// Misses of the task's policies (one, or one per policy of the group).
fn execute(task: Task, plan: &Plan, job: &PagingJob, traces: &[Trace]) -> Result<Vec<u64>> {
    crate::interrupt::check()?;
    Ok(match task {
        Task::Opt { k, trace } => {
            let (k, t) = (job.ks[k], &traces[trace]);
            vec![simulate(
                make_policy("belady", &PolicyParams::new(k, t.num_pages, 0))?,
                k,
                t,
                None,
            )]
        }
        Task::Plain {
            k,
            policy,
            run,
            trace,
        } => {
            let (k, t) = (job.ks[k], &traces[trace]);
            let p = params(
                job,
                k,
                t,
                seed_for(job.seed, &[run as u64, trace as u64, 1]),
            );
            vec![simulate((plan.plain[policy].1.build)(&p), k, t, None)]
        }
        Task::Predicted {
            k,
            group,
            run,
            trace,
        } => {
            let (k, t, g) = (job.ks[k], &traces[trace], &plan.groups[group]);
            let (run, i) = (run as u64, trace as u64);
            let preds = g.pred.predict(t, k, seed_for(job.seed, &[run, i, 2]));
            g.policies
                .par_iter()
                .enumerate()
                .map(|(j, (_, e))| {
                    let p = params(job, k, t, seed_for(job.seed, &[run, i, 3, j as u64]));
                    simulate((e.build)(&p), k, t, Some(&preds))
                })
                .collect()
        }
    })
}

/// Results in task order, taken one at a time with a check of which task each is.
struct Results(std::vec::IntoIter<(Task, Vec<u64>)>);

impl Results {
    /// The misses of the next task, which must be `want`.
    fn take(&mut self, want: Task) -> Result<Vec<u64>> {
        match self.0.next() {
            Some((task, misses)) if task == want => Ok(misses),
            other => Err(crate::error::Error::failure(format!(
                "internal error: expected the results of {want:?}, found {:?}",
                other.map(|o| o.0)
            ))),
        }
    }
}

/// Run the job over the traces: every simulation is a task on the current rayon pool
/// (each single-threaded and seeded by its position in the job, so the rows do not depend
/// on the number of threads). Every policy that reads predictions must have a predictor
/// of its kind in the job. Cost/OPT columns come from `belady`'s own rows when it is one
/// of the policies, from a Belady pass per trace and size with `job.opt`, else are empty.
pub fn run_paging(traces: &[Trace], job: &PagingJob) -> Result<Vec<PagingRow>> {
    let plan = Plan::new(job)?;
    let todo = tasks(&plan, job, traces.len());
    let done = todo
        .par_iter()
        .map(|&t| execute(t, &plan, job, traces))
        .collect::<Result<Vec<_>>>()?;
    let mut results = Results(todo.into_iter().zip(done).collect::<Vec<_>>().into_iter());
    let requests: u64 = traces.iter().map(|t| t.len() as u64).sum();
    let mut rows = Vec::new();
    for (ki, &k) in job.ks.iter().enumerate() {
        rows.extend(rows_of_size(
            &plan,
            job,
            ki,
            k,
            requests,
            traces.len(),
            &mut results,
        )?);
    }
    Ok(rows)
}

/// The rows of cache size `k` (the `ki`-th), from the results of its tasks.
fn rows_of_size(
    plan: &Plan,
    job: &PagingJob,
    ki: usize,
    k: usize,
    requests: u64,
    traces: usize,
    results: &mut Results,
) -> Result<Vec<PagingRow>> {
    let mut opt = None;
    if plan.opt_pass {
        let mut sum = 0;
        for trace in 0..traces {
            sum += results.take(Task::Opt { k: ki, trace })?[0];
        }
        opt = Some(sum);
    }
    let plain = plain_misses(plan, job, ki, traces, results)?;
    if let Some(b) = plan.belady {
        opt = Some(plain[b][0].iter().sum());
    }
    let mut rows = Vec::new();
    for ((name, _), per_run) in plan.plain.iter().zip(&plain) {
        let per_run: Vec<f64> = per_run
            .iter()
            .map(|each| each.iter().map(|&m| m as f64).sum())
            .collect();
        rows.push(PagingRow::from_runs(
            name,
            "-".into(),
            k,
            requests,
            opt,
            &per_run,
        ));
    }
    for (group, g) in plan.groups.iter().enumerate() {
        let mut per_policy = vec![vec![0.0; g.runs as usize]; g.policies.len()];
        for run in 0..g.runs {
            for trace in 0..traces {
                let t = Task::Predicted {
                    k: ki,
                    group,
                    run,
                    trace,
                };
                for (j, m) in results.take(t)?.into_iter().enumerate() {
                    per_policy[j][run as usize] += m as f64;
                }
            }
        }
        for ((name, _), per_run) in g.policies.iter().zip(per_policy) {
            rows.push(PagingRow::from_runs(
                name,
                g.pred.label(),
                k,
                requests,
                opt,
                &per_run,
            ));
        }
    }
    Ok(rows)
}

/// Misses of the policies without predictions at the `ki`-th size: per policy, per run,
/// per trace.
fn plain_misses(
    plan: &Plan,
    job: &PagingJob,
    ki: usize,
    traces: usize,
    results: &mut Results,
) -> Result<Vec<Vec<Vec<u64>>>> {
    let mut plain = Vec::with_capacity(plan.plain.len());
    for (policy, (_, e)) in plan.plain.iter().enumerate() {
        let mut per_run = Vec::new();
        for run in 0..if e.randomized { job.runs } else { 1 } {
            let mut each = Vec::with_capacity(traces);
            for trace in 0..traces {
                let t = Task::Plain {
                    k: ki,
                    policy,
                    run,
                    trace,
                };
                each.push(results.take(t)?[0]);
            }
            per_run.push(each);
        }
        plain.push(per_run);
    }
    Ok(plain)
}

/// The rows as an aligned table.
pub fn to_table(rows: &[PagingRow]) -> String {
    let mut o = format!(
        "{:<20} {:<20} {:>7} {:>12} {:>9} {:>9} {:>8}\n",
        "policy", "predictor", "k", "misses", "miss%", "cost/OPT", "std"
    );
    let or_dash = |v: Option<f64>, w: usize| match v {
        Some(v) => format!("{v:>w$.4}"),
        None => format!("{:>w$}", "-"),
    };
    for r in rows {
        o.push_str(&format!(
            "{:<20} {:<20} {:>7} {:>12.1} {:>9.4} {} {}\n",
            r.policy,
            r.predictor,
            r.k,
            r.misses,
            100.0 * r.miss_ratio,
            or_dash(r.cost_ratio, 9),
            or_dash(r.cost_ratio_std, 8)
        ));
    }
    o
}
