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

use crate::cost::{Roofline, SeqWork};
use crate::error::{Error, Result};
use crate::hardware::Gpu;
use crate::model::Model;
use crate::scenario::Efficiency;
use std::collections::HashMap;
use std::path::{Path, PathBuf};

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

/// The kvsim GPU preset for a Vidur GPU folder.
fn gpu_of(folder: &str) -> Result<Gpu> {
    let preset = match folder {
        "h100" => "h100-sxm",
        "a100" => "a100-80gb",
        other => return Err(Error::input(format!("unknown Vidur GPU folder `{other}`"))),
    };
    Gpu::preset(preset)
}

/// One CSV file's rows as maps from column to text.
struct Table {
    path: PathBuf,
    rows: Vec<HashMap<String, String>>,
}

impl Table {
    fn read(path: &Path) -> Result<Table> {
        let mut r = csv::Reader::from_path(path)
            .map_err(|e| Error::input(format!("{}: {e}", path.display())))?;
        let header = r
            .headers()
            .map_err(|e| Error::input(format!("{}: {e}", path.display())))?
            .clone();
        let mut rows = Vec::new();
        for (i, rec) in r.records().enumerate() {
            let rec =
                rec.map_err(|e| Error::input(format!("{} row {}: {e}", path.display(), i + 2)))?;
            rows.push(
                header
                    .iter()
                    .zip(rec.iter())
                    .map(|(h, v)| (h.to_string(), v.to_string()))
                    .collect(),
            );
        }
        Ok(Table {
            path: path.to_path_buf(),
            rows,
        })
    }

    /// Column `col` of row `i` as a number; `None` when empty.
    fn num(&self, i: usize, col: &str) -> Result<Option<f64>> {
        let v = self.rows[i]
            .get(col)
            .ok_or_else(|| Error::input(format!("{}: no column `{col}`", self.path.display())))?;
        if v.is_empty() {
            return Ok(None);
        }
        v.parse().map(Some).map_err(|_| {
            Error::input(format!(
                "{} row {}: `{col}` is `{v}`, not a number",
                self.path.display(),
                i + 2
            ))
        })
    }

    /// Like [`Table::num`] but required.
    fn need(&self, i: usize, col: &str) -> Result<f64> {
        self.num(i, col)?.ok_or_else(|| {
            Error::input(format!(
                "{} row {}: `{col}` is empty",
                self.path.display(),
                i + 2
            ))
        })
    }
}

/// A one-layer fp16 model of this shape (per GPU: heads already divided by the TP degree).
fn layer_model(hidden: u32, heads: u32, kv_heads: u32, head_dim: u32, inter: u32) -> Model {
    Model {
        name: "vidur-shape".into(),
        layers: 1,
        hidden,
        heads,
        kv_heads,
        head_dim,
        intermediate: inter,
        vocab: 32_000,
        dtype_bytes: 2,
        dtype: "fp16".into(),
        max_position: 1 << 20,
        tie_embeddings: false,
    }
}

/// The GEMM points of one `mlp.csv`.
fn mlp_points(t: &Table, gpu_dir: &str, source: &str, out: &mut Vec<KernelPoint>) -> Result<()> {
    let gpu = gpu_of(gpu_dir)?;
    let eff = Efficiency::default();
    for i in 0..t.rows.len() {
        let heads = t.need(i, "n_head")?;
        let kv = t.need(i, "n_kv_head")?;
        let h = t.need(i, "n_embd")?;
        let inter = t.need(i, "n_expanded_embd")?;
        let tp = t.need(i, "num_tensor_parallel_workers")?;
        let tokens = t.need(i, "num_tokens")?;
        let gated = t.rows[i].get("use_gated_mlp").map(String::as_str) != Some("False");
        let hd = h / heads;
        let m = layer_model(h as u32, heads as u32, kv as u32, hd as u32, inter as u32);
        let r = Roofline::new(&m, &gpu, &eff, 0.0, 0.0);
        let up = if gated { 2.0 } else { 1.0 } * inter / tp;
        let shapes = [
            ("qkv", "attn_pre_proj", h, (heads + 2.0 * kv) * hd / tp),
            ("o", "attn_post_proj", heads * hd / tp, h),
            ("up", "mlp_up_proj", h, up),
            ("down", "mlp_down_proj", inter / tp, h),
        ];
        for (op, col, k, n) in shapes {
            let Some(ms) = t.num(i, &format!("time_stats.{col}.median"))? else {
                continue;
            };
            if ms <= 0.0 {
                continue;
            }
            out.push(KernelPoint {
                gpu: gpu_dir.to_string(),
                source: source.to_string(),
                op,
                measured_ns: ms * 1e6,
                predicted_ns: r.gemm_ns(tokens, k.round() as u64, n.round() as u64),
            });
        }
    }
    Ok(())
}

/// The attention points of one attention CSV.
fn attention_points(
    t: &Table,
    gpu_dir: &str,
    source: &str,
    out: &mut Vec<KernelPoint>,
) -> Result<()> {
    let gpu = gpu_of(gpu_dir)?;
    let eff = Efficiency::default();
    let mut seqs = Vec::new();
    for i in 0..t.rows.len() {
        let h = t.need(i, "n_embd")?;
        let heads = t.need(i, "n_q_head")?;
        let kv = t.need(i, "n_kv_head")?;
        let tp = t.need(i, "num_tensor_parallel_workers")?;
        let batch = t.need(i, "batch_size")? as usize;
        let chunk = t.need(i, "prefill_chunk_size")? as u32;
        let context = t.need(i, "kv_cache_size")? as u32;
        let prefill = t.rows[i].get("is_prefill").map(String::as_str) == Some("True");
        let hd = (h / heads) as u32;
        let m = layer_model(h as u32, (heads / tp) as u32, (kv / tp) as u32, hd, 1);
        let r = Roofline::new(&m, &gpu, &eff, 0.0, 0.0);
        seqs.clear();
        let (op, col) = if prefill {
            seqs.resize(
                batch,
                SeqWork {
                    new_tokens: chunk,
                    context,
                },
            );
            ("prefill_attention", "time_stats.attn_prefill.median")
        } else {
            seqs.resize(
                batch,
                SeqWork {
                    new_tokens: 1,
                    context,
                },
            );
            ("decode_attention", "time_stats.attn_decode.median")
        };
        let Some(ms) = t.num(i, col)? else { continue };
        if ms <= 0.0 {
            continue;
        }
        let predicted_ns = if prefill {
            r.prefill_layer_ns(&seqs)
        } else {
            r.decode_layer_ns(&seqs)
        };
        out.push(KernelPoint {
            gpu: gpu_dir.to_string(),
            source: source.to_string(),
            op,
            measured_ns: ms * 1e6,
            predicted_ns,
        });
    }
    Ok(())
}

fn sorted_dirs(dir: &Path) -> Result<Vec<PathBuf>> {
    let rd = std::fs::read_dir(dir)
        .map_err(|e| Error::input(format!("cannot read {}: {e}", dir.display())))?;
    let mut v: Vec<PathBuf> = rd.filter_map(|e| e.ok().map(|e| e.path())).collect();
    v.sort();
    Ok(v)
}

/// Every GEMM and attention point of Vidur's profiles under `vidur` (the folder holding
/// `compute/`), each with the default roofline's prediction, in file order.
pub fn vidur_kernel_points(vidur: &Path) -> Result<Vec<KernelPoint>> {
    let compute = vidur.join("compute");
    let mut out = Vec::new();
    for gpu_path in sorted_dirs(&compute)? {
        let Some(gpu) = gpu_path
            .file_name()
            .and_then(|n| n.to_str())
            .map(String::from)
        else {
            continue;
        };
        if !gpu_path.is_dir() {
            continue;
        }
        for entry in sorted_dirs(&gpu_path)? {
            let name = entry
                .file_name()
                .and_then(|n| n.to_str())
                .unwrap_or("")
                .to_string();
            if entry.is_file() && name.starts_with("attention") && name.ends_with(".csv") {
                attention_points(&Table::read(&entry)?, &gpu, &name, &mut out)?;
            } else if entry.is_dir() {
                for model in sorted_dirs(&entry)? {
                    let mlp = model.join("mlp.csv");
                    if mlp.is_file() {
                        let m = model.file_name().and_then(|n| n.to_str()).unwrap_or("");
                        let source = format!("{name}/{m}");
                        mlp_points(&Table::read(&mlp)?, &gpu, &source, &mut out)?;
                    }
                }
            }
        }
    }
    if out.is_empty() {
        return Err(Error::input(format!(
            "{}: no Vidur profiles (compute/<gpu>/<org>/<model>/mlp.csv) found",
            vidur.display()
        )));
    }
    Ok(out)
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
fn quantile(sorted: &[f64], q: f64) -> f64 {
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
    std::fs::read_to_string(path)
        .map_err(|e| Error::input(format!("cannot read {}: {e}", path.display())))
}

/// The kvsim model preset of a Hugging Face model name.
fn preset_of(model: &str) -> Result<&'static str> {
    match model
        .rsplit('/')
        .next()
        .unwrap_or(model)
        .to_lowercase()
        .as_str()
    {
        "llama-2-7b-hf" => Ok("llama-2-7b"),
        "llama-2-70b-hf" => Ok("llama-2-70b"),
        other => Err(Error::input(format!("no kvsim model preset for `{other}`"))),
    }
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
        ("ttft mean", get("time_to_first_token", "mean")?),
        ("ttft p90", get("time_to_first_token", "p90")?),
        ("e2e mean", get("request_latency", "mean")?),
        ("e2e p90", get("request_latency", "p90")?),
        ("tpot mean", get("time_per_output_token", "mean")?),
    ])
}

/// Replay every inference-perf experiment under `dir` (folders with `exp-config.yaml`), with
/// the scenario overrides `sets` (`key=value`, as `kvsim run --set`), and
/// compare each stage's TTFT, end-to-end latency and time per output token with what was
/// measured. Time per output token is inference-perf's: the time from the first to the last
/// stream event over the events after the first. In these runs the stream carries two
/// events per token: in every stage the measured `(e2e mean - TTFT mean) / TPOT mean` is
/// 495-497 for `n` = 247-248 output tokens, i.e. `2n + 1`, and the median gap between events
/// is about 30 us. So kvsim's is `(e2e - ttft) / (2n + 1)` here.
pub fn serving_metrics(dir: &Path, sets: &[String]) -> Result<Vec<StageMetric>> {
    let mut out = Vec::new();
    for exp in sorted_dirs(dir)? {
        if !exp.join("exp-config.yaml").is_file() {
            continue;
        }
        let scenario = experiment_scenario(&exp, sets)?;
        let setup = crate::engine::config::EngineSetup::from_scenario(&scenario)?;
        let mut rec = crate::sim::recorder::Recorder::new(None, None, scenario.slo.clone())?;
        crate::sim::run(&scenario, &setup, &mut rec, false)?;
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
        let mut start = 0.0;
        for (i, st) in spec.stages.iter().enumerate() {
            let end = start + st.duration_s;
            let (lo, hi) = ((start * 1e9) as u64, (end * 1e9).round() as u64 + 1);
            let sel: Vec<_> = rec
                .latencies
                .iter()
                .filter(|l| l.arrival_ns >= lo && l.arrival_ns <= hi)
                .collect();
            if sel.is_empty() {
                return Err(Error::failure(format!(
                    "{name}: stage {i} completed no request"
                )));
            }
            let secs = |f: &dyn Fn(&crate::sim::recorder::RequestLatency) -> f64| -> Vec<f64> {
                let mut v: Vec<f64> = sel.iter().map(|l| f(l)).collect();
                v.sort_by(f64::total_cmp);
                v
            };
            let ttft = secs(&|l| l.ttft_ms / 1e3);
            let e2e = secs(&|l| l.e2e_ms / 1e3);
            let tpot =
                secs(&|l| (l.e2e_ms - l.ttft_ms) / 1e3 / (2.0 * l.output_tokens as f64 + 1.0));
            let mean = |v: &[f64]| v.iter().sum::<f64>() / v.len() as f64;
            let predicted = [
                mean(&ttft),
                quantile(&ttft, 0.9),
                mean(&e2e),
                quantile(&e2e, 0.9),
                mean(&tpot),
            ];
            for ((metric, measured_s), predicted_s) in
                measured_stage(&exp, i)?.into_iter().zip(predicted)
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
    }
    if out.is_empty() {
        return Err(Error::input(format!(
            "{}: no experiment folders (with exp-config.yaml)",
            dir.display()
        )));
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
            "time_stats.attn_pre_proj.median,time_stats.attn_post_proj.median,\
             time_stats.mlp_up_proj.median,time_stats.mlp_down_proj.median,n_head,n_kv_head,\
             n_embd,n_expanded_embd,vocab_size,use_gated_mlp,num_tokens,\
             num_tensor_parallel_workers\n0.05,,,,32,32,4096,11008,32768,True,512,2\n",
        )
        .unwrap();
        let pts = vidur_kernel_points(&dir.join("")).unwrap();
        assert_eq!(pts.len(), 1);
        let gpu = Gpu::preset("h100-sxm").unwrap();
        let eff = Efficiency::default();
        // FLOPs 2 * 512 * 4096 * 6144 at 0.7 of peak against the weight and activations.
        let flops = 2.0 * 512.0 * 4096.0 * 6144.0;
        let bytes = 2.0 * (4096.0 * 6144.0 + 512.0 * (4096.0 + 6144.0));
        let want = (flops / (gpu.bf16_flops * eff.gemm_compute))
            .max(bytes / (gpu.hbm_bytes_per_s * eff.gemm_memory))
            * 1e9;
        assert!((pts[0].predicted_ns - want).abs() < 1e-6 * want);
        assert_eq!(pts[0].measured_ns, 50_000.0);
        assert_eq!((pts[0].op, pts[0].source.as_str()), ("qkv", "org/m"));
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
