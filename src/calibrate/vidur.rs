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

use super::vidur_files::{
    self, gpu_preset, read_attention, read_mlp, AttentionRow, MlpRow, Stat, VidurFile, GEMMS,
};
use crate::cost::profile::{points_to_csv, with_ext, Op, Point, ProfileMeta, Provenance};
use crate::cost::{Roofline, SeqWork};
use crate::error::{Error, Result};
use crate::hardware::Gpu;
use crate::scenario::Efficiency;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// The Vidur commit the profiles in `../shared/fidelity/vidur` were copied from.
pub const VIDUR_COMMIT: &str = "7d47513";

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

/// A time's (median, min, max) in microseconds, when all three are there and positive.
fn positive_us(s: Stat) -> Option<(f64, f64, f64)> {
    match (s.median, s.min, s.max) {
        (Some(m), Some(l), Some(h)) if m > 0.0 && l > 0.0 && h > 0.0 => {
            Some((m * 1e3, (l * 1e3).min(m * 1e3), (h * 1e3).max(m * 1e3)))
        }
        _ => None,
    }
}

/// Measured attention of one per-GPU shape: (query heads, KV heads, head size), the decode
/// points (keys attended per sequence, as the calibrated model looks them up) and the
/// single-sequence prefill rows.
struct MeasuredAttention {
    shape: (u32, u32, u32),
    file: String,
    points: Vec<Point>,
    /// Prefill rows: (chunk, cached prefix, median, min, max), microseconds.
    prefill: Vec<(u64, u64, f64, f64, f64)>,
}

/// The attention measured in one Vidur attention file.
fn measured_attention(path: &Path, file: &str) -> Result<Option<MeasuredAttention>> {
    let rows = read_attention(path)?;
    let Some(shape) = rows.last().map(AttentionRow::shard_shape) else {
        return Ok(None);
    };
    let missing = |i: usize, what: &str| {
        Error::input(format!("{} row {}: no {what} times", path.display(), i + 2))
    };
    let (mut points, mut prefill) = (Vec::new(), Vec::new());
    for (i, r) in rows.iter().enumerate() {
        if r.prefill {
            if r.batch == 1 {
                let s = r.prefill_time;
                if s.median.is_none() || s.min.is_none() || s.max.is_none() {
                    return Err(missing(i, "attn_prefill"));
                }
                if let Some((m, lo, hi)) = positive_us(s) {
                    prefill.push((r.chunk, r.context, m, lo, hi));
                }
            }
            continue;
        }
        let s = r.decode;
        if s.median.is_none() || s.min.is_none() || s.max.is_none() {
            return Err(missing(i, "attn_decode"));
        }
        if let Some((m, lo, hi)) = positive_us(s) {
            let keys = r.context + 1;
            points.push(Point {
                batch: r.batch,
                context: keys,
                context_max: keys,
                ..point(Op::DecodeAttention, m, lo, hi, 0)
            });
        }
    }
    Ok(Some(MeasuredAttention {
        shape,
        file: file.to_string(),
        points,
        prefill,
    }))
}

/// The points of one (GPU, model, TP): measured GEMMs (and decode attention when
/// `decode` is given), then the filled-in ops.
fn profile_points(
    rows: &[&MlpRow],
    gpu: &Gpu,
    vocab: u32,
    decode: Option<&MeasuredAttention>,
) -> Vec<Point> {
    let r0 = rows[0];
    let tp = r0.tp as u64;
    let h = r0.hidden as u64;
    let shapes = r0.gemm_shapes();
    let mut pts = Vec::new();
    for r in rows {
        for (((op, _), (k, n)), g) in GEMMS.iter().zip(shapes).zip(r.gemms) {
            if let Some((m, lo, hi)) = positive_us(g) {
                pts.push(Point {
                    m: r.tokens,
                    k,
                    n,
                    ..point(*op, m, lo, hi, 0)
                });
            }
        }
    }
    let model = r0.shard(vocab);
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
    let files = vidur_files::files(vidur)?;
    let known = |gpu: &str| gpu_preset(gpu).is_some();
    let mut attention: Vec<(String, MeasuredAttention)> = Vec::new();
    for f in &files {
        if let VidurFile::Attention { gpu, name, path } = f {
            if known(gpu) {
                if let Some(a) = measured_attention(path, name)? {
                    attention.push((gpu.clone(), a));
                }
            }
        }
    }
    std::fs::create_dir_all(out)
        .map_err(|e| Error::failure(format!("cannot create {}: {e}", out.display())))?;
    let mut written = Vec::new();
    for f in &files {
        let VidurFile::Mlp {
            gpu: gname,
            model: mname,
            path,
            ..
        } = f
        else {
            continue;
        };
        if !known(gname) {
            continue;
        }
        let gpu = Gpu::preset(gpu_preset(gname).expect("known"))?;
        let rows = read_mlp(path)?;
        let mut by_tp: BTreeMap<u32, Vec<&MlpRow>> = BTreeMap::new();
        for r in &rows {
            by_tp.entry(r.tp).or_default().push(r);
        }
        for (tp, rows) in by_tp {
            let preset = crate::model::hf_preset(mname);
            let vocab = match preset {
                Some(p) => crate::model::Model::preset(p)?.vocab,
                None => rows[0].vocab,
            };
            let r0 = rows[0];
            let shape = (r0.heads / tp, (r0.kv_heads / tp).max(1), r0.head_dim());
            let decode = attention
                .iter()
                .find(|(g, a)| g == gname && a.shape == shape)
                .map(|(_, a)| a);
            let points = profile_points(&rows, &gpu, vocab, decode);
            let meta = profile_meta(vidur, gname, mname, tp, preset, &gpu, decode, date);
            let base = out.join(format!("{gname}-{}-tp{tp}", mname.to_lowercase()));
            let csv = points_to_csv(&points)?;
            let yaml = crate::scenario::to_yaml(&meta)?;
            crate::sweep::write_atomic(&with_ext(&base, "csv"), csv.as_bytes())?;
            crate::sweep::write_atomic(&with_ext(&base, "yaml"), yaml.as_bytes())?;
            written.push(base);
        }
    }
    Ok(written)
}

/// The YAML of one imported profile, with its provenance.
#[allow(clippy::too_many_arguments)]
fn profile_meta(
    vidur: &Path,
    gname: &str,
    mname: &str,
    tp: u32,
    preset: Option<&str>,
    gpu: &Gpu,
    attention: Option<&MeasuredAttention>,
    date: &str,
) -> ProfileMeta {
    let mut filled = vec!["gemm_lm_head".to_string()];
    let mut source = format!("vidur data/profiling/compute/{gname}/.../{mname}/mlp.csv");
    match attention {
        Some(d) => source.push_str(&format!(
            " and {gname}/{} (decode attention; prefill attention where chunk + prefix <= 4096, beyond it the same chunk's longest measured prefix scaled by the roofline)",
            d.file
        )),
        None => filled.extend(["decode_attention".into(), "prefill_attention".into()]),
    }
    ProfileMeta {
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
    }
}
