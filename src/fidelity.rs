//! Kernel-level fidelity: the cost model's kernel times against public measurements made on
//! real GPUs by others (Vidur's profiles, `../shared/fidelity/vidur`, MIT licence).
//!
//! Vidur's `compute/<gpu>/<org>/<model>/mlp.csv` times one transformer layer's operations
//! per (tensor-parallel degree, tokens) with the model's shape in the row; the four GEMMs are
//! compared here (`attn_pre_proj` = QKV, `attn_post_proj` = O, `mlp_up_proj` = gate and up,
//! `mlp_down_proj` = down), each with its weight split over the TP ranks as Megatron does.
//! `compute/a100/attention_*.csv` times FlashAttention for decode batches (batch size x
//! context) and prefill chunks (chunk x cached prefix) at one TP shape. Every point is
//! predicted by the default roofline of that GPU ([`Roofline::gemm_ns`],
//! [`Roofline::prefill_layer_ns`], [`Roofline::decode_layer_ns`]) and compared by its
//! relative error against the measured median. Element-wise operations (norms, RoPE,
//! activation, adds) are not compared: the cost model has no term for them yet.

use crate::calibrate::vidur_files::{self, VidurFile};
use crate::cost::{Roofline, SeqWork};
use crate::error::{Error, Result};
use crate::hardware::Gpu;
use crate::scenario::Efficiency;
use std::path::Path;

/// One measured kernel time and the model's prediction of it.
#[derive(Debug, Clone, PartialEq)]
pub struct KernelPoint {
    /// Vidur's GPU folder: `h100` or `a100`.
    pub gpu: String,
    /// The measured model (`org/model`), or the attention file's name.
    pub source: String,
    /// The operation compared: `qkv`, `o`, `up`, `down`, `decode_attention`,
    /// `prefill_attention`.
    pub op: &'static str,
    /// Measured median, nanoseconds.
    pub measured_ns: f64,
    /// Predicted, nanoseconds.
    pub predicted_ns: f64,
}

impl KernelPoint {
    /// `|predicted - measured| / measured`.
    pub fn abs_error(&self) -> f64 {
        (self.predicted_ns - self.measured_ns).abs() / self.measured_ns
    }
}

/// The kvsim GPU for a Vidur GPU folder.
fn gpu_of(folder: &str) -> Result<Gpu> {
    let preset = vidur_files::gpu_preset(folder)
        .ok_or_else(|| Error::input(format!("unknown Vidur GPU folder `{folder}`")))?;
    Gpu::preset(preset)
}

/// Its name in the table of each GEMM of [`vidur_files::GEMMS`].
const GEMM_LABELS: [&str; 4] = ["qkv", "o", "up", "down"];

/// What a measured kernel computed, in the terms the cost model predicts it from.
#[derive(Debug, Clone, PartialEq)]
pub enum Kernel {
    /// A GEMM of `tokens` rows against a `k x n` weight.
    Gemm {
        /// Rows.
        tokens: f64,
        /// Inner dimension.
        k: u64,
        /// Output width.
        n: u64,
    },
    /// One layer of prefill attention over these chunks.
    Prefill(Vec<SeqWork>),
    /// One layer of decode attention over these sequences, by a kernel sized for `kv_len`
    /// keys (Vidur's benchmark allocates the cache for `max_model_len`; unset: the
    /// longest sequence's, as in serving).
    Decode {
        /// The sequences.
        seqs: Vec<SeqWork>,
        /// The key length the kernel was sized for.
        kv_len: Option<u32>,
    },
}

/// One measured kernel with the shapes that predict it.
#[derive(Debug, Clone, PartialEq)]
pub struct KernelCase {
    /// The GPU's label (Vidur's folder, `h100` or `a100`, or a profile's preset).
    pub gpu_label: String,
    /// The GPU it ran on.
    pub gpu: Gpu,
    /// The model shard (one tensor-parallel rank) it belongs to.
    pub model: crate::model::Model,
    /// The measured model (`org/model`), the attention file's name, or the profile.
    pub source: String,
    /// The operation: `qkv`, `o`, `up`, `down`, `lm_head`, `decode_attention`,
    /// `prefill_attention`.
    pub op: &'static str,
    /// What it computed.
    pub kernel: Kernel,
    /// Measured median, nanoseconds.
    pub measured_ns: f64,
}

impl Kernel {
    /// Its shape as CSV fields `tokens,k,n,batch,context`: a GEMM's rows and weight (no
    /// batch or context); an attention kernel's new tokens per sequence, sequences and
    /// cached tokens per sequence (of the first sequence; Vidur's batches are uniform).
    pub fn csv_fields(&self) -> String {
        match self {
            Kernel::Gemm { tokens, k, n } => format!("{tokens},{k},{n},,"),
            Kernel::Prefill(seqs) | Kernel::Decode { seqs, .. } => {
                let first = seqs.first().copied().unwrap_or(SeqWork {
                    new_tokens: 0,
                    context: 0,
                });
                format!("{},,,{},{}", first.new_tokens, seqs.len(), first.context)
            }
        }
    }
}

impl KernelCase {
    /// The cost model's time for it with these efficiencies, nanoseconds.
    pub fn predict_ns(&self, eff: &Efficiency) -> f64 {
        let r = Roofline::new(&self.model, &self.gpu, eff, 0.0, 0.0);
        match &self.kernel {
            Kernel::Gemm { tokens, k, n } => r.gemm_ns(*tokens, *k, *n),
            Kernel::Prefill(seqs) => r.prefill_layer_ns(seqs),
            Kernel::Decode { seqs, kv_len } => r.decode_layer_ns_sized(seqs, *kv_len),
        }
    }

    /// The case as a point predicted with these efficiencies.
    pub fn point(&self, eff: &Efficiency) -> KernelPoint {
        KernelPoint {
            gpu: self.gpu_label.clone(),
            source: self.source.clone(),
            op: self.op,
            measured_ns: self.measured_ns,
            predicted_ns: self.predict_ns(eff),
        }
    }
}

/// The GEMM cases of one `mlp.csv`.
fn mlp_cases(path: &Path, gpu_dir: &str, source: &str, out: &mut Vec<KernelCase>) -> Result<()> {
    let gpu = gpu_of(gpu_dir)?;
    for row in vidur_files::read_mlp(path)? {
        let model = row.shard(32_000);
        for ((op, (k, n)), stat) in GEMM_LABELS
            .into_iter()
            .zip(row.gemm_shapes())
            .zip(row.gemms)
        {
            let Some(ms) = stat.median.filter(|&ms| ms > 0.0) else {
                continue;
            };
            out.push(KernelCase {
                gpu_label: gpu_dir.to_string(),
                gpu: gpu.clone(),
                model: model.clone(),
                source: source.to_string(),
                op,
                kernel: Kernel::Gemm {
                    tokens: row.tokens as f64,
                    k,
                    n,
                },
                measured_ns: ms * 1e6,
            });
        }
    }
    Ok(())
}

/// The attention cases of one attention CSV.
fn attention_cases(
    path: &Path,
    gpu_dir: &str,
    source: &str,
    out: &mut Vec<KernelCase>,
) -> Result<()> {
    let gpu = gpu_of(gpu_dir)?;
    for row in vidur_files::read_attention(path)? {
        let (op, stat, new_tokens) = if row.prefill {
            ("prefill_attention", row.prefill_time, row.chunk as u32)
        } else {
            ("decode_attention", row.decode, 1)
        };
        let Some(ms) = stat.median.filter(|&ms| ms > 0.0) else {
            continue;
        };
        let work = SeqWork {
            new_tokens,
            context: row.context as u32,
        };
        let seqs = vec![work; row.batch as usize];
        out.push(KernelCase {
            gpu_label: gpu_dir.to_string(),
            gpu: gpu.clone(),
            model: row.shard(),
            source: source.to_string(),
            op,
            kernel: if row.prefill {
                Kernel::Prefill(seqs)
            } else {
                Kernel::Decode {
                    seqs,
                    kv_len: Some(row.max_model_len),
                }
            },
            measured_ns: ms * 1e6,
        });
    }
    Ok(())
}

/// Every GEMM and attention case of Vidur's profiles under `vidur` (the folder holding
/// `compute/`), in file order.
pub fn vidur_kernel_cases(vidur: &Path) -> Result<Vec<KernelCase>> {
    let mut out = Vec::new();
    for f in vidur_files::files(vidur)? {
        match f {
            VidurFile::Attention { gpu, name, path } => {
                attention_cases(&path, &gpu, &name, &mut out)?
            }
            VidurFile::Mlp {
                gpu,
                org,
                model,
                path,
            } => mlp_cases(&path, &gpu, &format!("{org}/{model}"), &mut out)?,
        }
    }
    Ok(out)
}

/// Every GEMM and attention point of Vidur's profiles under `vidur` (the folder holding
/// `compute/`), each with the default roofline's prediction, in file order.
pub fn vidur_kernel_points(vidur: &Path) -> Result<Vec<KernelPoint>> {
    let eff = Efficiency::default();
    Ok(vidur_kernel_cases(vidur)?
        .iter()
        .map(|c| c.point(&eff))
        .collect())
}

/// Error statistics of a group of points.
#[derive(Debug, Clone, PartialEq)]
pub struct ErrorRow {
    /// The group (`h100 qkv`, `all`, ...).
    pub group: String,
    /// Points.
    pub points: usize,
    /// Median absolute relative error.
    pub median: f64,
    /// 90th percentile of the absolute relative error.
    pub p90: f64,
    /// Median signed error (positive: the model is slower than measured).
    pub bias: f64,
}

/// The `q`-quantile (nearest rank) of sorted values.
pub fn quantile(sorted: &[f64], q: f64) -> f64 {
    let i = ((q * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len()) - 1;
    sorted[i]
}

fn error_row(group: String, points: &[&KernelPoint]) -> ErrorRow {
    let mut abs: Vec<f64> = points.iter().map(|p| p.abs_error()).collect();
    let mut signed: Vec<f64> = points
        .iter()
        .map(|p| (p.predicted_ns - p.measured_ns) / p.measured_ns)
        .collect();
    abs.sort_by(f64::total_cmp);
    signed.sort_by(f64::total_cmp);
    ErrorRow {
        group,
        points: points.len(),
        median: quantile(&abs, 0.5),
        p90: quantile(&abs, 0.9),
        bias: quantile(&signed, 0.5),
    }
}

/// Errors by GPU and operation, by GPU, and over all points.
pub fn summarize(points: &[KernelPoint]) -> Vec<ErrorRow> {
    let mut groups: Vec<(String, &'static str)> =
        points.iter().map(|p| (p.gpu.clone(), p.op)).collect();
    groups.sort();
    groups.dedup();
    let mut rows: Vec<ErrorRow> = groups
        .iter()
        .map(|(g, op)| {
            let sel: Vec<&KernelPoint> = points
                .iter()
                .filter(|p| &p.gpu == g && p.op == *op)
                .collect();
            error_row(format!("{g} {op}"), &sel)
        })
        .collect();
    let mut gpus: Vec<&String> = groups.iter().map(|(g, _)| g).collect();
    gpus.dedup();
    for g in gpus {
        let sel: Vec<&KernelPoint> = points.iter().filter(|p| &p.gpu == g).collect();
        rows.push(error_row(format!("{g} all"), &sel));
    }
    rows.push(error_row("all".into(), &points.iter().collect::<Vec<_>>()));
    rows
}

/// The rows as a markdown table.
pub fn markdown(rows: &[ErrorRow]) -> String {
    let mut s = String::from(
        "| kernels | points | median abs. error | p90 abs. error | median signed error |\n|---|---|---|---|---|\n",
    );
    for r in rows {
        s.push_str(&format!(
            "| {} | {} | {:.1} % | {:.1} % | {:+.1} % |\n",
            r.group,
            r.points,
            r.median * 100.0,
            r.p90 * 100.0,
            r.bias * 100.0
        ));
    }
    s
}

/// What a run's `exp-config.yaml` says about the server.
#[derive(Debug, Clone, serde::Deserialize)]
struct ExpConfig {
    model: String,
    tensor_parallelism: u32,
    max_model_len: u32,
    max_num_batched_tokens: u32,
    max_num_seqs: u32,
}

/// The parts of inference-perf's effective `results/config.yaml` that shape the load.
#[derive(Debug, Clone, serde::Deserialize)]
struct ToolConfig {
    data: ToolData,
    load: ToolLoad,
}

#[derive(Debug, Clone, serde::Deserialize)]
struct ToolData {
    shared_prefix: ToolSharedPrefix,
}

#[derive(Debug, Clone, serde::Deserialize)]
struct ToolSharedPrefix {
    num_groups: u32,
    num_prompts_per_group: u32,
    system_prompt_len: u32,
    question_len: u32,
    output_len: u32,
}

#[derive(Debug, Clone, serde::Deserialize)]
struct ToolLoad {
    #[serde(default = "one_second")]
    interval: f64,
    stages: Vec<ToolStage>,
}

fn one_second() -> f64 {
    1.0
}

#[derive(Debug, Clone, serde::Deserialize)]
struct ToolStage {
    rate: f64,
    duration: f64,
}

/// A measured or predicted statistic of one stage, seconds.
#[derive(Debug, Clone, PartialEq)]
pub struct StageMetric {
    /// The experiment folder's name.
    pub experiment: String,
    /// Stage index.
    pub stage: usize,
    /// `ttft mean`, `ttft p90`, `e2e mean`, `e2e p90`, `tpot mean`.
    pub metric: &'static str,
    /// Measured by inference-perf, seconds.
    pub measured_s: f64,
    /// Predicted by kvsim, seconds.
    pub predicted_s: f64,
}

impl StageMetric {
    /// `(predicted - measured) / measured`.
    pub fn error(&self) -> f64 {
        (self.predicted_s - self.measured_s) / self.measured_s
    }
}

fn read_text(path: &Path) -> Result<String> {
    crate::input::read_bounded(path, "file", crate::input::MAX_TEXT_BYTES)
}

/// The kvsim model preset of a Hugging Face model name.
fn preset_of(model: &str) -> Result<&'static str> {
    crate::model::hf_preset(model)
        .ok_or_else(|| Error::input(format!("no kvsim model preset for `{model}`")))
}

/// The scenario that replays one inference-perf experiment folder.
pub fn experiment_scenario(dir: &Path, sets: &[String]) -> Result<crate::scenario::Scenario> {
    let exp: ExpConfig = crate::scenario::parse_yaml(
        &read_text(&dir.join("exp-config.yaml"))?,
        &dir.join("exp-config.yaml").display().to_string(),
    )?;
    let cfg_path = dir.join("results/config.yaml");
    let tool: ToolConfig =
        crate::scenario::parse_yaml(&read_text(&cfg_path)?, &cfg_path.display().to_string())?;
    let sp = &tool.data.shared_prefix;
    let stages: String = tool
        .load
        .stages
        .iter()
        .map(|s| format!("      - {{rate: {}, duration_s: {}}}\n", s.rate, s.duration))
        .collect();
    let name = dir
        .file_name()
        .and_then(|n| n.to_str())
        .unwrap_or("experiment");
    let text = format!(
        "name: {name}\nseed: 1\nworkload:\n  source:\n    kind: shared_prefix\n    shared_prefix:\n      \
         num_groups: {}\n      num_prompts_per_group: {}\n      system_prompt_len: {}\n      \
         question_len: {}\n      output_len: {}\n    stages:\n{stages}    stage_gap_s: {}\n\
         model:\n  preset: {}\n  dtype: fp16\nhardware:\n  gpu: h100-sxm\nengine:\n  kind: vllm\n  \
         max_num_batched_tokens: {}\n  max_num_seqs: {}\n  max_model_len: {}\n  \
         tensor_parallel_size: {}\n",
        sp.num_groups,
        sp.num_prompts_per_group,
        sp.system_prompt_len,
        sp.question_len,
        sp.output_len,
        tool.load.interval + 1.0,
        preset_of(&exp.model)?,
        exp.max_num_batched_tokens,
        exp.max_num_seqs,
        exp.max_model_len,
        exp.tensor_parallelism,
    );
    crate::scenario::parse_scenario(&text, name, dir, sets)
}

/// inference-perf's measured statistics of stage `i` (`results/stage_<i>_lifecycle_metrics.json`).
fn measured_stage(dir: &Path, i: usize) -> Result<[(&'static str, f64); 5]> {
    let path = dir.join(format!("results/stage_{i}_lifecycle_metrics.json"));
    let v: serde_json::Value = serde_json::from_str(&read_text(&path)?)
        .map_err(|e| Error::input(format!("{}: {e}", path.display())))?;
    let get = |metric: &str, stat: &str| -> Result<f64> {
        v["successes"]["latency"][metric][stat]
            .as_f64()
            .ok_or_else(|| {
                Error::input(format!(
                    "{}: no successes.latency.{metric}.{stat}",
                    path.display()
                ))
            })
    };
    Ok([
        (STAT_NAMES[0], get("time_to_first_token", "mean")?),
        (STAT_NAMES[1], get("time_to_first_token", "p90")?),
        (STAT_NAMES[2], get("request_latency", "mean")?),
        (STAT_NAMES[3], get("request_latency", "p90")?),
        (STAT_NAMES[4], get("time_per_output_token", "mean")?),
    ])
}

/// The experiment folders named by `dir`: itself if it holds `exp-config.yaml`, else its
/// subfolders that do, sorted.
pub fn experiment_dirs(dir: &Path) -> Result<Vec<std::path::PathBuf>> {
    if dir.join("exp-config.yaml").is_file() {
        return Ok(vec![dir.to_path_buf()]);
    }
    let found: Vec<_> = vidur_files::sorted_entries(dir)?
        .into_iter()
        .filter(|e| e.join("exp-config.yaml").is_file())
        .collect();
    if found.is_empty() {
        return Err(Error::input(format!(
            "{}: no experiment folders (with exp-config.yaml)",
            dir.display()
        )));
    }
    Ok(found)
}

/// Replay a scenario and return every completed request's latencies.
pub fn replay(
    scenario: &crate::scenario::Scenario,
) -> Result<Vec<crate::sim::recorder::RequestLatency>> {
    let setup = crate::engine::config::EngineSetup::from_scenario(scenario)?;
    let mut rec = crate::sim::recorder::Recorder::new(None, None, scenario.slo.clone())?;
    crate::sim::run(scenario, &setup, &mut rec, false)?;
    Ok(rec.latencies)
}

/// Mean of values.
fn mean(v: &[f64]) -> f64 {
    v.iter().sum::<f64>() / v.len() as f64
}

/// TTFT mean and p90, e2e mean and p90 and the mean of `tpot`, seconds, of requests given
/// as (TTFT, e2e, output tokens), seconds; `tpot` gives a request's time per output token
/// from those three (`None`: the request has none).
pub fn latency_stats(
    requests: impl Iterator<Item = (f64, f64, u32)> + Clone,
    tpot: impl Fn(f64, f64, u32) -> Option<f64>,
) -> [f64; 5] {
    let sorted = |mut v: Vec<f64>| {
        v.sort_by(f64::total_cmp);
        v
    };
    let ttft = sorted(requests.clone().map(|r| r.0).collect());
    let e2e = sorted(requests.clone().map(|r| r.1).collect());
    let per_token: Vec<f64> = requests.filter_map(|(t, e, n)| tpot(t, e, n)).collect();
    [
        mean(&ttft),
        quantile(&ttft, 0.9),
        mean(&e2e),
        quantile(&e2e, 0.9),
        mean(&per_token),
    ]
}

/// (TTFT, e2e, output tokens) of a replayed request, seconds, as [`latency_stats`] takes it.
pub fn seconds(l: &crate::sim::recorder::RequestLatency) -> (f64, f64, u32) {
    (l.ttft_ms / 1e3, l.e2e_ms / 1e3, l.output_tokens)
}

/// The names of [`latency_stats`]' statistics, in order.
pub const STAT_NAMES: [&str; 5] = ["ttft mean", "ttft p90", "e2e mean", "e2e p90", "tpot mean"];

/// Replay one inference-perf experiment folder (with `exp-config.yaml`), with the scenario
/// overrides `sets` (`key=value`, as `kvsim run --set`), and compare each stage's TTFT,
/// end-to-end latency and time per output token with what was measured. Time per output
/// token is inference-perf's: the time from the first to the last stream event over the
/// events after the first. In these runs the stream carries two events per token: in every
/// stage the measured `(e2e mean - TTFT mean) / TPOT mean` is 495-497 for `n` = 247-248
/// output tokens, i.e. `2n + 1`, and the median gap between events is about 30 us. So
/// kvsim's is `(e2e - ttft) / (2n + 1)` here.
pub fn experiment_metrics(exp: &Path, sets: &[String]) -> Result<Vec<StageMetric>> {
    let scenario = experiment_scenario(exp, sets)?;
    let latencies = replay(&scenario)?;
    let name = exp
        .file_name()
        .and_then(|n| n.to_str())
        .unwrap_or("")
        .to_string();
    let crate::workload::Source::SharedPrefix(spec) = scenario
        .workload
        .source
        .resolve()
        .map_err(|(f, m)| Error::input(format!("{f}: {m}")))?
    else {
        unreachable!("experiment scenarios are shared_prefix");
    };
    let mut out = Vec::new();
    let mut start = 0.0;
    for (i, st) in spec.stages.iter().enumerate() {
        let end = start + st.duration_s;
        let (lo, hi) = ((start * 1e9) as u64, (end * 1e9).round() as u64 + 1);
        let sel: Vec<_> = latencies
            .iter()
            .filter(|l| l.arrival_ns >= lo && l.arrival_ns <= hi)
            .collect();
        if sel.is_empty() {
            return Err(Error::failure(format!(
                "{name}: stage {i} completed no request"
            )));
        }
        let predicted = latency_stats(sel.iter().map(|l| seconds(l)), |ttft, e2e, n| {
            Some((e2e - ttft) / (2.0 * n as f64 + 1.0))
        });
        for ((metric, measured_s), predicted_s) in
            measured_stage(exp, i)?.into_iter().zip(predicted)
        {
            out.push(StageMetric {
                experiment: name.clone(),
                stage: i,
                metric,
                measured_s,
                predicted_s,
            });
        }
        start = end + spec.stage_gap_s;
    }
    Ok(out)
}

/// Replay every inference-perf experiment named by `dir` ([`experiment_dirs`]) and compare
/// it with the measurements ([`experiment_metrics`]).
pub fn serving_metrics(dir: &Path, sets: &[String]) -> Result<Vec<StageMetric>> {
    let mut out = Vec::new();
    for exp in experiment_dirs(dir)? {
        out.extend(experiment_metrics(&exp, sets)?);
    }
    Ok(out)
}

/// The serving comparison as a markdown table, with the median absolute error last.
pub fn serving_markdown(rows: &[StageMetric]) -> String {
    let mut s = String::from(
        "| experiment | stage | metric | measured | kvsim | error |\n|---|---|---|---|---|---|\n",
    );
    for r in rows {
        s.push_str(&format!(
            "| {} | {} | {} | {:.4} s | {:.4} s | {:+.1} % |\n",
            r.experiment,
            r.stage,
            r.metric,
            r.measured_s,
            r.predicted_s,
            r.error() * 100.0
        ));
    }
    let mut abs: Vec<f64> = rows.iter().map(|r| r.error().abs()).collect();
    abs.sort_by(f64::total_cmp);
    s.push_str(&format!(
        "\nmedian absolute error {:.1} %, p90 {:.1} %, over {} statistics\n",
        quantile(&abs, 0.5) * 100.0,
        quantile(&abs, 0.9) * 100.0,
        abs.len()
    ));
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantiles_by_nearest_rank() {
        let v = [0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0];
        assert_eq!(quantile(&v, 0.5), 0.5);
        assert_eq!(quantile(&v, 0.9), 0.9);
        assert_eq!(quantile(&[3.0], 0.9), 3.0);
    }

    #[test]
    fn a_gemm_point_is_the_roofline_of_its_split_shape() {
        // Llama-2-7B's QKV at TP 2, 512 tokens on an H100: k = 4096, n = 3 * 4096 / 2.
        let dir = std::env::temp_dir().join(format!("kvsim-fid-{}", std::process::id()));
        let model = dir.join("compute/h100/org/m");
        std::fs::create_dir_all(&model).unwrap();
        std::fs::write(
            model.join("mlp.csv"),
            "time_stats.attn_pre_proj.median,time_stats.attn_pre_proj.min,\
             time_stats.attn_pre_proj.max,time_stats.attn_post_proj.median,\
             time_stats.attn_post_proj.min,time_stats.attn_post_proj.max,\
             time_stats.mlp_up_proj.median,time_stats.mlp_up_proj.min,time_stats.mlp_up_proj.max,\
             time_stats.mlp_down_proj.median,time_stats.mlp_down_proj.min,\
             time_stats.mlp_down_proj.max,n_head,n_kv_head,n_embd,n_expanded_embd,vocab_size,\
             use_gated_mlp,num_tokens,num_tensor_parallel_workers\n\
             0.05,0.04,0.06,,,,,,,,,,32,32,4096,11008,32768,True,512,2\n",
        )
        .unwrap();
        let pts = vidur_kernel_points(&dir.join("")).unwrap();
        assert_eq!(pts.len(), 1);
        let gpu = Gpu::preset("h100-sxm").unwrap();
        let eff = Efficiency::default();
        // The tiled compute of the 512 x 4096 x 6144 GEMM (TP 2 of 12288 columns) against
        // the weight and activations, combined with the overlap exponent, plus the floor.
        let model = crate::model::Model::preset("llama-2-7b").unwrap();
        let c =
            Roofline::new(&model, &gpu, &eff, 0.0, 0.0).tiled_gemm_compute_s(512.0, 4096.0, 6144.0);
        let bytes = 2.0 * (4096.0 * 6144.0 + 512.0 * (4096.0 + 6144.0));
        let m = bytes / (gpu.hbm_bytes_per_s * eff.gemm_memory);
        let q = eff.gemm_overlap;
        let want = eff.gemm_floor_us * 1e3 + (c.powf(q) + m.powf(q)).powf(1.0 / q) * 1e9;
        assert!((pts[0].predicted_ns - want).abs() < 1e-6 * want);
        assert_eq!(pts[0].measured_ns, 50_000.0);
        assert_eq!((pts[0].op, pts[0].source.as_str()), ("qkv", "org/m"));
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
