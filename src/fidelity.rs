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
