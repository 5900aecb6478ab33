//! Public calibration profiles from Vidur's measurements (microsoft/vidur, MIT licence):
//! every `compute/<gpu>/<org>/<model>/mlp.csv` becomes one kvsim profile per
//! tensor-parallel degree, `<gpu>-<model>-tp<N>.{csv,yaml}`.
//!
//! What is measured and what is filled in:
//! - the four GEMMs of a layer (QKV, O, gate+up, down) at every token count Vidur timed,
//!   with their shapes split over the TP ranks as Megatron does (median, and Vidur's min and
//!   max as the p10 and p90 columns);
//! - attention, where a Vidur attention file measured the same per-GPU shape (the A100 file
//!   of Llama-2-70B at TP 2: 32 query and 4 KV heads of 128, so also Llama-3-70B and
//!   CodeLlama-34B at TP 2): decode over its full grid of batch 1-128 x context 32-4032, and
//!   prefill where chunk + prefix <= 4096, the other cells of the rectangular grid the
//!   calibrated model interpolates being the same chunk's longest measured prefix scaled by
//!   the roofline ([`measured_prefill_grid`]);
//! - the LM head, and the attention of every other shape, are not measured: they are filled
//!   in by kvsim's default roofline for that GPU and shape, and the profile's
//!   `provenance.filled` says so.
//!
//! The profile's YAML records the source, the commit, the licence and the date.

use crate::cost::profile::{points_to_csv, with_ext, Op, Point, ProfileMeta, Provenance};
use crate::cost::{Roofline, SeqWork};
use crate::error::{Error, Result};
use crate::hardware::Gpu;
use crate::model::Model;
use crate::scenario::Efficiency;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// The Vidur commit the profiles in `../shared/fidelity/vidur` were copied from.
pub const VIDUR_COMMIT: &str = "7d47513";

/// The kvsim GPU preset of a Vidur GPU folder.
fn gpu_preset(folder: &str) -> Option<&'static str> {
    match folder {
        "h100" => Some("h100-sxm"),
        "a100" => Some("a100-80gb"),
        _ => None,
    }
}

/// One `mlp.csv` row: the shape and the four GEMM medians, min and max (microseconds).
struct Row {
    heads: u32,
    kv_heads: u32,
    hidden: u32,
    inter: u32,
    vocab: u32,
    gated: bool,
    tokens: u64,
    tp: u32,
    gemms: [Option<(f64, f64, f64)>; 4],
}

const GEMM_COLUMNS: [(Op, &str); 4] = [
    (Op::GemmQkv, "attn_pre_proj"),
    (Op::GemmO, "attn_post_proj"),
    (Op::GemmGateUp, "mlp_up_proj"),
    (Op::GemmDown, "mlp_down_proj"),
];

fn read_rows(path: &Path) -> Result<Vec<Row>> {
    let at = |row: usize, msg: String| Error::input(format!("{} row {row}: {msg}", path.display()));
    let mut r = csv::Reader::from_path(path)
        .map_err(|e| Error::input(format!("{}: {e}", path.display())))?;
    let header = r
        .headers()
        .map_err(|e| Error::input(format!("{}: {e}", path.display())))?
        .clone();
    let col = |name: &str| {
        header
            .iter()
            .position(|h| h == name)
            .ok_or_else(|| Error::input(format!("{}: no column `{name}`", path.display())))
    };
    let idx = |names: [&str; 8]| -> Result<Vec<usize>> { names.iter().map(|n| col(n)).collect() };
    let shape = idx([
        "n_head",
        "n_kv_head",
        "n_embd",
        "n_expanded_embd",
        "vocab_size",
        "use_gated_mlp",
        "num_tokens",
        "num_tensor_parallel_workers",
    ])?;
    let mut stats = Vec::new();
    for (_, c) in GEMM_COLUMNS {
        stats.push([
            col(&format!("time_stats.{c}.median"))?,
            col(&format!("time_stats.{c}.min"))?,
            col(&format!("time_stats.{c}.max"))?,
        ]);
    }
    let mut rows = Vec::new();
    for (i, rec) in r.records().enumerate() {
        let row = i + 2;
        let rec = rec.map_err(|e| at(row, e.to_string()))?;
        let int = |j: usize| -> Result<u64> {
            rec[j].parse::<u64>().map_err(|_| {
                at(
                    row,
                    format!("`{}` is `{}`, not an integer", &header[j], &rec[j]),
                )
            })
        };
        let ms = |j: usize| -> Result<Option<f64>> {
            match rec[j].trim() {
                "" => Ok(None),
                v => v
                    .parse::<f64>()
                    .map(|x| (x > 0.0).then_some(x * 1e3))
                    .map_err(|_| at(row, format!("`{}` is `{v}`, not a number", &header[j]))),
            }
        };
        let mut gemms = [None; 4];
        for (g, [med, lo, hi]) in gemms.iter_mut().zip(&stats) {
            if let (Some(m), Some(l), Some(h)) = (ms(*med)?, ms(*lo)?, ms(*hi)?) {
                *g = Some((m, l.min(m), h.max(m)));
            }
        }
        rows.push(Row {
            heads: int(shape[0])? as u32,
            kv_heads: int(shape[1])? as u32,
            hidden: int(shape[2])? as u32,
            inter: int(shape[3])? as u32,
            vocab: int(shape[4])? as u32,
            gated: &rec[shape[5]] != "False",
            tokens: int(shape[6])?,
            tp: int(shape[7])? as u32,
            gemms,
        });
    }
    Ok(rows)
}

/// The kvsim preset a Vidur model folder is, if any (its vocabulary is the model's own,
/// where Vidur's `vocab_size` may be padded).
fn preset_of(model_dir: &str) -> Option<&'static str> {
    match model_dir {
        "Llama-2-7b-hf" => Some("llama-2-7b"),
        "Llama-2-70b-hf" => Some("llama-2-70b"),
        _ => None,
    }
}

/// One GPU's shard of the model at `tp`, for the roofline's filled-in points.
fn shard(r: &Row, vocab: u32) -> Model {
    let head_dim = r.hidden / r.heads;
    Model {
        name: "vidur-shape".into(),
        layers: 1,
        hidden: r.hidden,
        heads: r.heads / r.tp,
        kv_heads: (r.kv_heads / r.tp).max(1),
        head_dim,
        intermediate: r.inter / r.tp,
        vocab,
        dtype_bytes: 2,
        dtype: "fp16".into(),
        max_position: 1 << 20,
        tie_embeddings: false,
    }
}

fn point(op: Op, median_us: f64, lo: f64, hi: f64, reps: u32) -> Point {
    Point {
        dtype: "fp16".into(),
        median_us,
        p10_us: lo,
        p90_us: hi,
        reps,
        ..Point::new(op)
    }
}

/// Measured decode attention of one per-GPU shape: (query heads, KV heads, head size) and
/// the points (keys attended per sequence, as the calibrated model looks them up).
struct MeasuredDecode {
    shape: (u32, u32, u32),
    file: String,
    points: Vec<Point>,
    /// Prefill rows: (chunk, cached prefix, median, min, max), microseconds.
    prefill: Vec<(u64, u64, f64, f64, f64)>,
}

/// The decode rows of Vidur's attention files in `gpu_dir` (`attention*.csv`), by shape.
fn measured_decode(gpu_dir: &Path) -> Result<Vec<MeasuredDecode>> {
    let mut out = Vec::new();
    let rd = std::fs::read_dir(gpu_dir)
        .map_err(|e| Error::input(format!("cannot read {}: {e}", gpu_dir.display())))?;
    let mut files: Vec<PathBuf> = rd.filter_map(|e| e.ok().map(|e| e.path())).collect();
    files.sort();
    for f in files {
        let name = f
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or("")
            .to_string();
        if !(f.is_file() && name.starts_with("attention") && name.ends_with(".csv")) {
            continue;
        }
        let mut r = csv::Reader::from_path(&f)
            .map_err(|e| Error::input(format!("{}: {e}", f.display())))?;
        let header = r
            .headers()
            .map_err(|e| Error::input(format!("{}: {e}", f.display())))?
            .clone();
        let col = |n: &str| {
            header
                .iter()
                .position(|h| h == n)
                .ok_or_else(|| Error::input(format!("{}: no column `{n}`", f.display())))
        };
        let c = [
            col("n_embd")?,
            col("n_q_head")?,
            col("n_kv_head")?,
            col("num_tensor_parallel_workers")?,
            col("batch_size")?,
            col("kv_cache_size")?,
            col("is_prefill")?,
            col("time_stats.attn_decode.median")?,
            col("time_stats.attn_decode.min")?,
            col("time_stats.attn_decode.max")?,
            col("prefill_chunk_size")?,
            col("time_stats.attn_prefill.median")?,
            col("time_stats.attn_prefill.min")?,
            col("time_stats.attn_prefill.max")?,
        ];
        let mut prefill = Vec::new();
        let mut shape = None;
        let mut points = Vec::new();
        for (i, rec) in r.records().enumerate() {
            let rec =
                rec.map_err(|e| Error::input(format!("{} row {}: {e}", f.display(), i + 2)))?;
            let num = |j: usize| -> Result<f64> {
                rec[c[j]].parse::<f64>().map_err(|_| {
                    Error::input(format!(
                        "{} row {}: `{}` is `{}`, not a number",
                        f.display(),
                        i + 2,
                        &header[c[j]],
                        &rec[c[j]]
                    ))
                })
            };
            let (h, q, kv, tp) = (num(0)?, num(1)?, num(2)?, num(3)?);
            shape = Some(((q / tp) as u32, (kv / tp) as u32, (h / q) as u32));
            if &rec[c[6]] != "False" {
                if num(4)? == 1.0 {
                    let (med, lo, hi) = (num(11)? * 1e3, num(12)? * 1e3, num(13)? * 1e3);
                    if med > 0.0 {
                        prefill.push((
                            num(10)? as u64,
                            num(5)? as u64,
                            med,
                            lo.min(med),
                            hi.max(med),
                        ));
                    }
                }
                continue;
            }
            let (med, lo, hi) = (num(7)? * 1e3, num(8)? * 1e3, num(9)? * 1e3);
            if med <= 0.0 {
                continue;
            }
            let keys = num(5)? as u64 + 1;
            points.push(Point {
                batch: num(4)? as u64,
                context: keys,
                context_max: keys,
                ..point(Op::DecodeAttention, med, lo.min(med), hi.max(med), 0)
            });
        }
        if let Some(shape) = shape {
            out.push(MeasuredDecode {
                shape,
                file: name,
                points,
                prefill,
            });
        }
    }
    Ok(out)
}

/// The points of one (GPU, model, TP): measured GEMMs (and decode attention when
/// `decode` is given), then the filled-in ops.
fn profile_points(
    rows: &[&Row],
    gpu: &Gpu,
    vocab: u32,
    decode: Option<&MeasuredDecode>,
) -> Vec<Point> {
    let r0 = rows[0];
    let tp = r0.tp as u64;
    let hd = (r0.hidden / r0.heads) as u64;
    let (h, heads, kv, inter) = (
        r0.hidden as u64,
        r0.heads as u64,
        r0.kv_heads as u64,
        r0.inter as u64,
    );
    let up = if r0.gated { 2 * inter } else { inter } / tp;
    let shapes = [
        (h, (heads + 2 * kv) * hd / tp),
        (heads * hd / tp, h),
        (h, up),
        (inter / tp, h),
    ];
    let mut pts = Vec::new();
    for r in rows {
        for (((op, _), (k, n)), g) in GEMM_COLUMNS.iter().zip(shapes).zip(r.gemms) {
            if let Some((m, lo, hi)) = g {
                pts.push(Point {
                    m: r.tokens,
                    k,
                    n,
                    ..point(*op, m, lo, hi, 0)
                });
            }
        }
    }
    let model = shard(r0, vocab);
    let roof = Roofline::new(&model, gpu, &Efficiency::default(), 0.0, 0.0);
    let us = |ns: f64| ns / 1e3;
    let mut tokens: Vec<u64> = rows.iter().map(|r| r.tokens).collect();
    tokens.sort_unstable();
    tokens.dedup();
    // The LM head is split over the TP ranks by vocabulary, as vLLM's is.
    let lm_n = vocab as u64 / tp;
    for m in tokens {
        let t = us(roof.gemm_ns(m as f64, h, lm_n));
        pts.push(Point {
            m,
            k: h,
            n: lm_n,
            ..point(Op::GemmLmHead, t, t, t, 0)
        });
    }
    if let Some(d) = decode {
        pts.extend(d.points.iter().cloned());
    }
    for batch in [1u64, 2, 4, 8, 16, 32, 64, 128, 256, 512]
        .into_iter()
        .filter(|_| decode.is_none())
    {
        for context in [16u64, 64, 256, 1024, 4096, 16384] {
            let seqs = vec![
                SeqWork {
                    new_tokens: 1,
                    context: context as u32 - 1,
                };
                batch as usize
            ];
            let t = us(roof.decode_layer_ns(&seqs));
            pts.push(Point {
                batch,
                context,
                context_max: context,
                ..point(Op::DecodeAttention, t, t, t, 0)
            });
        }
    }
    if let Some(d) = decode.filter(|d| !d.prefill.is_empty()) {
        pts.extend(measured_prefill_grid(&d.prefill, &roof));
        return pts;
    }
    for chunk in [1u64, 16, 64, 256, 1024, 4096, 16384] {
        for prefix in [0u64, 256, 1024, 4096, 16384] {
            let t = us(roof.prefill_layer_ns(&[SeqWork {
                new_tokens: chunk as u32,
                context: prefix as u32,
            }]));
            pts.push(Point {
                chunk,
                prefix,
                ..point(Op::PrefillAttention, t, t, t, 0)
            });
        }
    }
    pts
}

/// The measured prefill rows on a rectangular (chunk, prefix) grid: every measured row,
/// and for each cell Vidur did not time (chunk + prefix over the file's 4096) the same
/// chunk's measured cell of the largest prefix below it, scaled by the roofline's ratio
/// between the two cells.
fn measured_prefill_grid(rows: &[(u64, u64, f64, f64, f64)], roof: &Roofline) -> Vec<Point> {
    let mut chunks: Vec<u64> = rows.iter().map(|r| r.0).collect();
    let mut prefixes: Vec<u64> = rows.iter().map(|r| r.1).collect();
    for v in [&mut chunks, &mut prefixes] {
        v.sort_unstable();
        v.dedup();
    }
    let mut by_cell: BTreeMap<(u64, u64), (f64, f64, f64)> = BTreeMap::new();
    for &(c, p, m, lo, hi) in rows {
        by_cell.entry((c, p)).or_insert((m, lo, hi));
    }
    let roof_us = |c: u64, p: u64| {
        roof.prefill_layer_ns(&[SeqWork {
            new_tokens: c as u32,
            context: p as u32,
        }]) / 1e3
    };
    let mut pts: Vec<Point> = rows
        .iter()
        .map(|&(chunk, prefix, m, lo, hi)| Point {
            chunk,
            prefix,
            ..point(Op::PrefillAttention, m, lo, hi, 0)
        })
        .collect();
    for &c in &chunks {
        for &p in &prefixes {
            if by_cell.contains_key(&(c, p)) {
                continue;
            }
            let Some((&(_, q), &(m, _, _))) = by_cell.range((c, 0)..(c, p)).next_back() else {
                continue;
            };
            let t = m * roof_us(c, p) / roof_us(c, q);
            pts.push(Point {
                chunk: c,
                prefix: p,
                ..point(Op::PrefillAttention, t, t, t, 0)
            });
        }
    }
    pts
}

/// Convert every Vidur profile under `vidur` (the folder holding `compute/`) into kvsim
/// profiles in `out`; returns the profile bases written, in order.
pub fn import(vidur: &Path, out: &Path, date: &str) -> Result<Vec<PathBuf>> {
    let compute = vidur.join("compute");
    let mut written = Vec::new();
    let mut found: Vec<(String, String, PathBuf)> = Vec::new();
    let list = |d: &Path| -> Result<Vec<PathBuf>> {
        let rd = std::fs::read_dir(d)
            .map_err(|e| Error::input(format!("cannot read {}: {e}", d.display())))?;
        let mut v: Vec<PathBuf> = rd
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.is_dir())
            .collect();
        v.sort();
        Ok(v)
    };
    for g in list(&compute)? {
        let gname = g
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or("")
            .to_string();
        if gpu_preset(&gname).is_none() {
            continue;
        }
        for org in list(&g)? {
            for m in list(&org)? {
                if m.join("mlp.csv").is_file() {
                    let mname = m
                        .file_name()
                        .and_then(|n| n.to_str())
                        .unwrap_or("")
                        .to_string();
                    found.push((gname.clone(), mname, m.join("mlp.csv")));
                }
            }
        }
    }
    if found.is_empty() {
        return Err(Error::input(format!(
            "{}: no Vidur profiles (compute/<gpu>/<org>/<model>/mlp.csv) found",
            vidur.display()
        )));
    }
    std::fs::create_dir_all(out)
        .map_err(|e| Error::failure(format!("cannot create {}: {e}", out.display())))?;
    let mut decodes: BTreeMap<String, Vec<MeasuredDecode>> = BTreeMap::new();
    for (gname, _, _) in &found {
        if !decodes.contains_key(gname) {
            decodes.insert(gname.clone(), measured_decode(&compute.join(gname))?);
        }
    }
    for (gname, mname, csv_path) in found {
        let gpu = Gpu::preset(gpu_preset(&gname).expect("filtered"))?;
        let rows = read_rows(&csv_path)?;
        let mut by_tp: BTreeMap<u32, Vec<&Row>> = BTreeMap::new();
        for r in &rows {
            by_tp.entry(r.tp).or_default().push(r);
        }
        for (tp, rows) in by_tp {
            let preset = preset_of(&mname);
            let vocab = match preset {
                Some(p) => crate::model::Model::preset(p)?.vocab,
                None => rows[0].vocab,
            };
            let r0 = rows[0];
            let shape = (
                r0.heads / tp,
                (r0.kv_heads / tp).max(1),
                r0.hidden / r0.heads,
            );
            let decode = decodes[&gname].iter().find(|d| d.shape == shape);
            let points = profile_points(&rows, &gpu, vocab, decode);
            let mut filled = vec!["gemm_lm_head".to_string()];
            let mut source = format!("vidur data/profiling/compute/{gname}/.../{mname}/mlp.csv");
            match decode {
                Some(d) => source.push_str(&format!(
                    " and {gname}/{} (decode attention; prefill attention where chunk + prefix <= 4096, beyond it the same chunk's longest measured prefix scaled by the roofline)",
                    d.file
                )),
                None => filled.extend(["decode_attention".into(), "prefill_attention".into()]),
            }
            let base = out.join(format!("{gname}-{}-tp{tp}", mname.to_lowercase()));
            let meta = ProfileMeta {
                model: preset.map_or_else(|| mname.to_lowercase(), String::from),
                tp,
                gpu_name: format!("{} (Vidur's profiling machine)", gname.to_uppercase()),
                sm_count: 0,
                compute_capability: if gname == "h100" { "9.0" } else { "8.0" }.into(),
                memory_total_bytes: gpu.memory_bytes,
                memory_free_bytes: 0,
                memory_free_after_weights_bytes: 0,
                driver_version: "unknown".into(),
                nvrtc_version: "unknown".into(),
                cublas_version: "unknown (PyTorch of 2024)".into(),
                clocks: "unknown".into(),
                date: "2024 (Vidur's measurements)".into(),
                kvsim_version: env!("CARGO_PKG_VERSION").into(),
                command: format!("kvsim fidelity import {}", vidur.display()),
                quick: false,
                correctness: Vec::new(),
                provenance: Some(Provenance {
                    source,
                    commit: VIDUR_COMMIT.into(),
                    licence: "MIT (calibration/public/LICENSE-vidur)".into(),
                    imported: date.into(),
                    filled,
                    note: "GEMMs measured with PyTorch/CUDA events (p10/p90 columns hold Vidur's min/max); the filled ops are kvsim's default roofline for this GPU and shape".into(),
                }),
            };
            let csv = points_to_csv(&points)?;
            let yaml = crate::scenario::to_yaml(&meta)?;
            crate::sweep::write_atomic(&with_ext(&base, "csv"), csv.as_bytes())?;
            crate::sweep::write_atomic(&with_ext(&base, "yaml"), yaml.as_bytes())?;
            written.push(base);
        }
    }
    Ok(written)
}
