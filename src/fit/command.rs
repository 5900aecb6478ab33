//! The `kvsim fit kernels` and `kvsim fit serving` commands: choose the coefficients, fit,
//! print the coefficients and the residuals before and after, and write the fitted block.

use super::kernels::{self, KernelData, KERNEL_KEYS};
use super::serving::{Run, ServingData};
use super::{error_quantiles, Fit, Key, Settings};
use crate::error::{Error, Result};
use crate::fidelity::{summarize, KernelPoint, StageMetric};
use crate::hardware::Gpu;
use crate::scenario::Efficiency;
use std::path::PathBuf;

/// Where `kvsim fit kernels` reads its measurements.
#[derive(Debug, Clone, PartialEq)]
pub enum KernelSource {
    /// A calibration profile (path without extension) measured on GPU preset `gpu`, of
    /// model preset `model` (default: the profile's).
    Profile {
        /// The profile.
        base: PathBuf,
        /// GPU preset.
        gpu: String,
        /// Model preset.
        model: Option<String>,
    },
    /// Vidur's profiling folder, GPU folder `gpu` (`h100`, `a100`).
    Vidur {
        /// The folder holding `compute/`.
        dir: PathBuf,
        /// Vidur's GPU folder.
        gpu: String,
    },
}

/// What to fit and where to write it.
#[derive(Debug, Clone, PartialEq)]
pub struct FitJob {
    /// Coefficients named with `--fit` (empty: the command's default set).
    pub fit: Vec<String>,
    /// Overrides: start values (kernels: `hardware.efficiency` keys), or scenario overrides
    /// of every replay (serving).
    pub sets: Vec<String>,
    /// The block's file.
    pub out: Option<PathBuf>,
    /// How the fit runs.
    pub settings: Settings,
    /// The command line, for the block's header.
    pub command: String,
}

/// Parse `--fit` names into keys.
fn keys_of(names: &[String]) -> Result<Vec<Key>> {
    let mut keys: Vec<Key> = Vec::new();
    for n in names.iter().flat_map(|n| n.split(',')).map(str::trim) {
        let k = super::key(n)?;
        if !keys.contains(&k) {
            keys.push(k);
        }
    }
    Ok(keys)
}

/// The kernel measurements and the GPU's default efficiencies with `--set` applied.
fn kernel_cases(
    src: &KernelSource,
    sets: &[String],
) -> Result<(Vec<crate::fidelity::KernelCase>, Efficiency, Gpu)> {
    let cases = match src {
        KernelSource::Profile { base, gpu, model } => {
            kernels::profile_cases(base, gpu, &Gpu::preset(gpu)?, model.as_deref())?
        }
        KernelSource::Vidur { dir, gpu } => kernels::vidur_cases(dir, gpu)?,
    };
    let gpu = cases[0].gpu.clone();
    let mut eff = Efficiency::default();
    for s in sets {
        let (k, v) = s
            .split_once('=')
            .ok_or_else(|| Error::input(format!("--set {s}: expected coefficient=value")))?;
        if kernels::set_switch(&mut eff, k.trim(), v.trim())? {
            continue;
        }
        let key = super::key(k.trim())?;
        let name = kernels::efficiency_name(&key)?;
        let v: f64 = v
            .trim()
            .parse()
            .ok()
            .filter(|v: &f64| v.is_finite())
            .ok_or_else(|| {
                Error::input(format!("--set {s}: `{}` is not a finite number", v.trim()))
            })?;
        kernels::set_efficiency(&mut eff, name, v)?;
    }
    Ok((cases, eff, gpu))
}

/// `kvsim fit kernels`: returns the report to print.
pub fn fit_kernels(src: &KernelSource, job: &FitJob) -> Result<String> {
    let (cases, base, gpu) = kernel_cases(src, &job.sets)?;
    let explicit = !job.fit.is_empty();
    let keys: Vec<Key> = if explicit {
        keys_of(&job.fit)?
    } else {
        KERNEL_KEYS
            .iter()
            .map(|n| super::key(n))
            .collect::<Result<_>>()?
    };
    let mut start: Vec<f64> = keys
        .iter()
        .map(|k| kernels::efficiency_value(&base, &gpu, kernels::efficiency_name(k)?))
        .collect::<Result<_>>()?;
    let mut data = KernelData { cases, base, keys };
    let mut report = String::new();
    if !explicit {
        let (yes, no) = super::split_determined(&data, &data.keys, &start, job.settings.step)?;
        if yes.is_empty() {
            return Err(Error::failure(
                "the measurements determine none of the kernel coefficients",
            ));
        }
        if !no.is_empty() {
            let left: Vec<&str> = no.iter().map(|&i| data.keys[i].key).collect();
            report.push_str(&format!(
                "not fitted (no measurement here determines them; they keep their values): {}\n",
                left.join(", ")
            ));
        }
        data.keys = yes.iter().map(|&i| data.keys[i]).collect();
        start = yes.iter().map(|&i| start[i]).collect();
    }
    let fit = super::fit(&data, &data.keys, &start, job.settings)?;
    // The points' predictions are the fit's residuals applied to the measurements.
    let points = |residuals: &[f64]| -> Vec<KernelPoint> {
        data.cases
            .iter()
            .zip(residuals)
            .map(|(c, r)| KernelPoint {
                gpu: c.gpu_label.clone(),
                source: c.source.clone(),
                op: c.op,
                measured_ns: c.measured_ns,
                predicted_ns: c.measured_ns * r.exp(),
            })
            .collect()
    };
    let (before, after) = (points(&fit.before), points(&fit.after));
    let what = format!(
        "{} kernel measurements ({})",
        data.cases.len(),
        data.cases[0].gpu_label
    );
    report.push_str(&coefficient_table(&fit, &what));
    report.push_str(&kernel_residual_table(&before, &after));
    finish(&fit, &what, job, report)
}

/// What `kvsim fit serving` fits unless told: the API server's latency, which only
/// end-to-end runs show, and attention's HBM bandwidth, which decode-heavy runs determine
/// and for which no public H100 kernel measurement exists. The per-step CPU overhead is
/// left out: under asynchronous scheduling it hides behind the GPU step, so these runs
/// hardly determine it.
pub const DEFAULT_SERVING_KEYS: [&str; 2] = [
    "engine.server_latency_us",
    "hardware.efficiency.attention_memory",
];

/// `kvsim fit serving`: returns the report to print; each replay bumps `progress`.
pub fn fit_serving(
    runs: Vec<Run>,
    job: &FitJob,
    progress: indicatif::ProgressBar,
) -> Result<String> {
    let names = if job.fit.is_empty() {
        DEFAULT_SERVING_KEYS.iter().map(|k| k.to_string()).collect()
    } else {
        job.fit.clone()
    };
    let data = ServingData {
        runs,
        sets: job.sets.clone(),
        keys: keys_of(&names)?,
        progress,
    };
    let start = data.start()?;
    let fit = super::fit(&data, &data.keys, &start, job.settings)?;
    // One replay for the labels; the fitted predictions are the fit's residuals applied.
    let before = data.metrics(&fit.start)?;
    let after: Vec<StageMetric> = before
        .iter()
        .zip(&fit.after)
        .map(|(b, r)| StageMetric {
            predicted_s: b.measured_s * r.exp(),
            ..b.clone()
        })
        .collect();
    let what = format!(
        "{} statistics of {} real runs",
        before.len(),
        data.runs.len()
    );
    let mut report = coefficient_table(&fit, &what);
    report.push_str(
        "\n| run | stage | statistic | measured | before | after |\n|---|---|---|---|---|---|\n",
    );
    for (b, a) in before.iter().zip(&after) {
        report.push_str(&format!(
            "| {} | {} | {} | {:.4} s | {:+.1} % | {:+.1} % |\n",
            b.experiment,
            b.stage,
            b.metric,
            b.measured_s,
            b.error() * 100.0,
            a.error() * 100.0
        ));
    }
    finish(&fit, &what, job, report)
}

/// The coefficients, before and after.
fn coefficient_table(fit: &Fit, what: &str) -> String {
    let mut s = format!(
        "fitted {} coefficients to {what} ({} evaluations)\n\n| coefficient | start | fitted | +/- |\n|---|---|---|---|\n",
        fit.keys.len(),
        fit.evaluations
    );
    for ((k, (a, b)), d) in fit
        .keys
        .iter()
        .zip(fit.start.iter().zip(&fit.values))
        .zip(&fit.determination)
    {
        s.push_str(&format!(
            "| {} | {} | {} | {:.1} % |\n",
            k.key,
            super::round_sig(*a),
            super::round_sig(*b),
            d.uncertainty * 100.0
        ));
    }
    s
}

/// Kernel errors by GPU and op, before and after.
fn kernel_residual_table(before: &[KernelPoint], after: &[KernelPoint]) -> String {
    let mut s = String::from(
        "\n| kernels | points | median before | p90 before | median after | p90 after |\n|---|---|---|---|---|---|\n",
    );
    for (b, a) in summarize(before).iter().zip(summarize(after)) {
        s.push_str(&format!(
            "| {} | {} | {:.1} % | {:.1} % | {:.1} % | {:.1} % |\n",
            b.group,
            b.points,
            b.median * 100.0,
            b.p90 * 100.0,
            a.median * 100.0,
            a.p90 * 100.0
        ));
    }
    s
}

/// The summary line, the block (written to `--out`, or appended to the report) and the
/// overrides.
fn finish(fit: &Fit, what: &str, job: &FitJob, mut report: String) -> Result<String> {
    let (mb, pb) = error_quantiles(&fit.before);
    let (ma, pa) = error_quantiles(&fit.after);
    let summary = format!(
        "{what}: |error| median {:.1} % -> {:.1} %, p90 {:.1} % -> {:.1} %",
        mb * 100.0,
        ma * 100.0,
        pb * 100.0,
        pa * 100.0
    );
    report.push_str(&format!("\n{summary}\n"));
    let header = vec![
        format!(
            "Fitted by `{}` (kvsim {}).",
            job.command,
            env!("CARGO_PKG_VERSION")
        ),
        format!("{summary}."),
    ];
    let block = super::block_yaml(&header, &fit.keys, &fit.values, &fit.determination);
    match &job.out {
        Some(path) => {
            crate::sweep::write_atomic(path, block.as_bytes())?;
            report.push_str(&format!("wrote the fitted block to {}\n", path.display()));
        }
        None => report.push_str(&format!("\n{block}")),
    }
    let sets: Vec<String> = super::set_args(&fit.keys, &fit.values)
        .into_iter()
        .map(|s| format!("--set {s}"))
        .collect();
    report.push_str(&format!("as overrides: {}\n", sets.join(" ")));
    Ok(report)
}
