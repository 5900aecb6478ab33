//! End-to-end measurements for `kvsim fit serving`: real serving runs that kvsim replays
//! request for request, with what was measured of them. Two kinds:
//! - an inference-perf experiment folder (`exp-config.yaml`, `results/`), replayed with its
//!   `shared_prefix` workload stage by stage ([`crate::fidelity::experiment_metrics`]);
//! - a scenario whose `workload.source` is a `vllm_bench` result file (`vllm bench serve
//!   --save-result --save-detailed`): its requests replayed at their sending times, compared
//!   on TTFT mean and p90, e2e mean and p90 and vLLM's time per output token
//!   (`(e2e - TTFT) / (output tokens - 1)`, requests with more than one token).
//!
//! Each statistic is one measurement of the fit. Every evaluation replays every run with the
//! coefficients as `--set` overrides, so any numeric scenario key of [`super::KEYS`] can be
//! fitted.

use super::{Key, Measurements};
use crate::error::{Error, Result};
use crate::fidelity::{latency_stats, seconds, StageMetric, STAT_NAMES};
use crate::hardware::Gpu;
use crate::scenario::Scenario;
use crate::workload::{vllm_bench, Source};
use rayon::prelude::*;
use std::path::{Path, PathBuf};

/// One real run.
#[derive(Debug, Clone, PartialEq)]
pub enum Run {
    /// An inference-perf experiment folder.
    InferencePerf(PathBuf),
    /// A scenario replaying a `vllm_bench` result file.
    VllmBench(PathBuf),
}

impl Run {
    /// The scenario that replays it, with overrides.
    pub fn scenario(&self, sets: &[String]) -> Result<Scenario> {
        match self {
            Run::InferencePerf(dir) => crate::fidelity::experiment_scenario(dir, sets),
            Run::VllmBench(path) => crate::scenario::load_scenario(path, sets),
        }
    }

    /// Replay it with overrides and compare with what was measured.
    pub fn metrics(&self, sets: &[String]) -> Result<Vec<StageMetric>> {
        match self {
            Run::InferencePerf(dir) => crate::fidelity::experiment_metrics(dir, sets),
            Run::VllmBench(path) => bench_metrics(path, sets),
        }
    }
}

/// vLLM's time per output token of one request, if it has more than one token.
fn vllm_tpot(ttft: f64, e2e: f64, n: u32) -> Option<f64> {
    (n > 1).then(|| (e2e - ttft) / (n - 1) as f64)
}

/// Replay a `vllm_bench` scenario and compare with its result file.
fn bench_metrics(path: &Path, sets: &[String]) -> Result<Vec<StageMetric>> {
    let scenario = crate::scenario::load_scenario(path, sets)?;
    let source =
        scenario.workload.source.resolve().map_err(|(f, m)| {
            Error::input(format!("{}: workload.source.{f}: {m}", path.display()))
        })?;
    let Source::VllmBench { path: result } = source else {
        return Err(Error::input(format!(
            "{}: workload.source.kind must be vllm_bench for --vllm-bench (the measurements \
             come from its result file)",
            path.display()
        )));
    };
    let measured = vllm_bench::read(&result)?;
    let lat = crate::fidelity::replay(&scenario)?;
    if lat.len() != measured.requests.len() {
        return Err(Error::failure(format!(
            "{}: {} of {} requests completed in the replay (set workload limits and the \
             model's length so that every request runs)",
            path.display(),
            lat.len(),
            measured.requests.len()
        )));
    }
    let predicted = latency_stats(lat.iter().map(seconds), vllm_tpot);
    let measured_stats = latency_stats(
        measured
            .requests
            .iter()
            .map(|r| (r.ttft_s, r.latency_s, r.output_tokens)),
        vllm_tpot,
    );
    Ok(STAT_NAMES
        .iter()
        .zip(measured_stats.iter().zip(predicted))
        .filter(|(_, (&m, p))| m > 0.0 && p.is_finite())
        .map(|(&metric, (&measured_s, predicted_s))| StageMetric {
            experiment: scenario.name.clone(),
            stage: 0,
            metric,
            measured_s,
            predicted_s,
        })
        .collect())
}

/// The value of `key` in a scenario (the GPU's attention bandwidth default resolved).
pub fn scenario_value(s: &Scenario, key: &Key) -> Result<f64> {
    if let Some(name) = key.key.strip_prefix("hardware.efficiency.") {
        let gpu = Gpu::from_spec(&s.hardware)?;
        return super::kernels::efficiency_value(&s.hardware.efficiency, &gpu, name);
    }
    Ok(match key.key {
        "engine.step_overhead_us" => s.engine.step_overhead_us,
        "engine.per_request_overhead_us" => s.engine.per_request_overhead_us,
        "engine.server_latency_us" => s.engine.server_latency_us,
        other => {
            return Err(Error::input(format!(
                "`{other}` is not a fitted coefficient"
            )))
        }
    })
}

/// Real runs with overrides, the coefficients fitted to them.
pub struct ServingData {
    /// The runs.
    pub runs: Vec<Run>,
    /// Overrides of every replay (before the fitted values).
    pub sets: Vec<String>,
    /// The fitted coefficients.
    pub keys: Vec<Key>,
    /// Counts replays (a hidden bar draws nothing).
    pub progress: indicatif::ProgressBar,
}

impl ServingData {
    /// The overrides that put these values of the coefficients into a replay.
    pub fn sets_with(&self, values: &[f64]) -> Vec<String> {
        let mut sets = self.sets.clone();
        sets.extend(
            self.keys
                .iter()
                .zip(values)
                .map(|(k, v)| format!("{}={v}", k.key)),
        );
        sets
    }

    /// Every run's statistics with these values of the coefficients.
    pub fn metrics(&self, values: &[f64]) -> Result<Vec<StageMetric>> {
        let sets = self.sets_with(values);
        let per_run: Vec<Vec<StageMetric>> = self
            .runs
            .par_iter()
            .map(|r| {
                let m = r.metrics(&sets);
                self.progress.inc(1);
                m
            })
            .collect::<Result<_>>()?;
        Ok(per_run.into_iter().flatten().collect())
    }

    /// The coefficients' values in the runs' scenarios; all runs must agree.
    pub fn start(&self) -> Result<Vec<f64>> {
        let mut start: Option<(String, Vec<f64>)> = None;
        for r in &self.runs {
            let s = r.scenario(&self.sets)?;
            let v: Vec<f64> = self
                .keys
                .iter()
                .map(|k| scenario_value(&s, k))
                .collect::<Result<_>>()?;
            match &start {
                None => start = Some((s.name.clone(), v)),
                Some((first, w)) => {
                    if let Some(i) = (0..v.len()).find(|&i| v[i] != w[i]) {
                        return Err(Error::input(format!(
                            "{} is {} in {first} but {} in {}: a fit needs one start; set it \
                             with --set",
                            self.keys[i].key, w[i], v[i], s.name
                        )));
                    }
                }
            }
        }
        start
            .map(|(_, v)| v)
            .ok_or_else(|| Error::input("kvsim fit serving: name at least one run"))
    }
}

impl Measurements for ServingData {
    fn residuals(&self, values: &[f64]) -> Result<Vec<f64>> {
        Ok(self
            .metrics(values)?
            .iter()
            .map(|m| (m.predicted_s / m.measured_s).ln())
            .collect())
    }
}
