//! Calibration profiles: `NAME.csv` (one row per measured point) and `NAME.yaml` (the GPU,
//! the software, the command). Written by `kvsim calibrate`, read by the calibrated cost
//! model. Format in `docs/calibration.md`.

use crate::error::{Error, Result};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

/// The header of a profile CSV, in order.
pub const CSV_HEADER: [&str; 15] = [
    "op",
    "m",
    "k",
    "n",
    "batch",
    "context",
    "context_max",
    "chunk",
    "prefix",
    "bytes",
    "dtype",
    "median_us",
    "p10_us",
    "p90_us",
    "reps",
];

/// What a profile row measured.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Op {
    /// QKV projection GEMM (`m` tokens, `k x n` weight).
    GemmQkv,
    /// Attention output projection GEMM.
    GemmO,
    /// Fused gate and up projection GEMM.
    GemmGateUp,
    /// Down projection GEMM.
    GemmDown,
    /// LM head GEMM.
    GemmLmHead,
    /// One layer of paged decode attention (`batch` sequences, mean `context`, longest
    /// `context_max`).
    DecodeAttention,
    /// One layer of causal prefill attention (`chunk` new tokens after `prefix` cached).
    PrefillAttention,
    /// Device-to-device copy of `bytes`.
    CopyD2D,
    /// Pinned host-to-device copy of `bytes`.
    CopyH2D,
    /// Device-to-pinned-host copy of `bytes`.
    CopyD2H,
}

impl Op {
    /// Every op, in file order.
    pub const ALL: [Op; 10] = [
        Op::GemmQkv,
        Op::GemmO,
        Op::GemmGateUp,
        Op::GemmDown,
        Op::GemmLmHead,
        Op::DecodeAttention,
        Op::PrefillAttention,
        Op::CopyD2D,
        Op::CopyH2D,
        Op::CopyD2H,
    ];

    /// The name in the CSV.
    pub fn name(self) -> &'static str {
        match self {
            Op::GemmQkv => "gemm_qkv",
            Op::GemmO => "gemm_o",
            Op::GemmGateUp => "gemm_gate_up",
            Op::GemmDown => "gemm_down",
            Op::GemmLmHead => "gemm_lm_head",
            Op::DecodeAttention => "decode_attention",
            Op::PrefillAttention => "prefill_attention",
            Op::CopyD2D => "copy_d2d",
            Op::CopyH2D => "copy_h2d",
            Op::CopyD2H => "copy_d2h",
        }
    }

    /// Parse a CSV name.
    pub fn parse(s: &str) -> Option<Op> {
        Op::ALL.into_iter().find(|o| o.name() == s)
    }

    /// Is it one of the GEMMs?
    pub fn is_gemm(self) -> bool {
        matches!(
            self,
            Op::GemmQkv | Op::GemmO | Op::GemmGateUp | Op::GemmDown | Op::GemmLmHead
        )
    }
}

/// One measured point.
#[derive(Debug, Clone, PartialEq)]
pub struct Point {
    /// What was measured.
    pub op: Op,
    /// GEMM rows (tokens).
    pub m: u64,
    /// GEMM inner dimension.
    pub k: u64,
    /// GEMM output width.
    pub n: u64,
    /// Decode batch size.
    pub batch: u64,
    /// Decode mean context length (tokens in the KV cache per sequence).
    pub context: u64,
    /// Decode longest context in the batch (equal to `context` for uniform batches).
    pub context_max: u64,
    /// Prefill chunk length.
    pub chunk: u64,
    /// Prefill cached prefix length.
    pub prefix: u64,
    /// Copy size.
    pub bytes: u64,
    /// Element type, e.g. `bf16`.
    pub dtype: String,
    /// Median time, microseconds.
    pub median_us: f64,
    /// 10th percentile, microseconds.
    pub p10_us: f64,
    /// 90th percentile, microseconds.
    pub p90_us: f64,
    /// Timed repetitions.
    pub reps: u32,
}

impl Point {
    /// A point of `op` with every shape parameter zero and no timing yet.
    pub fn new(op: Op) -> Self {
        Point {
            op,
            m: 0,
            k: 0,
            n: 0,
            batch: 0,
            context: 0,
            context_max: 0,
            chunk: 0,
            prefix: 0,
            bytes: 0,
            dtype: "bf16".into(),
            median_us: 0.0,
            p10_us: 0.0,
            p90_us: 0.0,
            reps: 0,
        }
    }

    /// The row's fields in [`CSV_HEADER`] order.
    pub fn to_record(&self) -> Vec<String> {
        vec![
            self.op.name().to_string(),
            self.m.to_string(),
            self.k.to_string(),
            self.n.to_string(),
            self.batch.to_string(),
            self.context.to_string(),
            self.context_max.to_string(),
            self.chunk.to_string(),
            self.prefix.to_string(),
            self.bytes.to_string(),
            self.dtype.clone(),
            format!("{:.3}", self.median_us),
            format!("{:.3}", self.p10_us),
            format!("{:.3}", self.p90_us),
            self.reps.to_string(),
        ]
    }
}

/// The metadata of a profile (`NAME.yaml`).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ProfileMeta {
    /// Model preset or name the shapes come from.
    pub model: String,
    /// Tensor-parallel degree the shapes were divided by.
    pub tp: u32,
    /// GPU name as the driver reports it.
    pub gpu_name: String,
    /// Streaming multiprocessors.
    pub sm_count: u32,
    /// Compute capability, e.g. `9.0`.
    pub compute_capability: String,
    /// Device memory, bytes.
    pub memory_total_bytes: u64,
    /// Device memory free when calibration started, bytes.
    pub memory_free_bytes: u64,
    /// Free memory left once the model's weights (at this TP) would be placed, bytes.
    pub memory_free_after_weights_bytes: u64,
    /// CUDA driver version, e.g. `13.0`.
    pub driver_version: String,
    /// NVRTC (CUDA toolkit) version.
    pub nvrtc_version: String,
    /// cuBLAS version.
    pub cublas_version: String,
    /// Clocks seen while measuring (SM clock MHz, memory clock MHz), min and max.
    pub clocks: String,
    /// UTC date and time of the run.
    pub date: String,
    /// kvsim version.
    pub kvsim_version: String,
    /// The exact command line.
    pub command: String,
    /// Whether the reduced `--quick` grid was used.
    pub quick: bool,
    /// Kernel correctness checks against CPU references: `op: max relative error`.
    #[serde(default)]
    pub correctness: Vec<String>,
    /// Where an imported public profile comes from (absent for `kvsim calibrate` runs).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub provenance: Option<Provenance>,
}

/// The origin of a profile converted from measurements published by others.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Provenance {
    /// The data it was converted from.
    pub source: String,
    /// The source repository's commit.
    pub commit: String,
    /// The data's licence and where its notice is kept.
    pub licence: String,
    /// When it was converted (UTC date).
    pub imported: String,
    /// Ops not in the source, filled in by kvsim's roofline.
    pub filled: Vec<String>,
    /// How the source measured, and what the columns hold.
    pub note: String,
}

/// A profile: metadata and points.
#[derive(Debug, Clone)]
pub struct Profile {
    /// Where it was read from (the path without extension).
    pub base: PathBuf,
    /// Metadata.
    pub meta: ProfileMeta,
    /// Measured points.
    pub points: Vec<Point>,
}

/// `base` with `ext` appended (`calibration/h100` + `csv` = `calibration/h100.csv`).
pub fn with_ext(base: &Path, ext: &str) -> PathBuf {
    let mut s = base.as_os_str().to_os_string();
    s.push(".");
    s.push(ext);
    PathBuf::from(s)
}

/// Parse profile CSV text; `origin` names the file in errors, which give the row number
/// (1-based, the header is row 1) and the column.
pub fn parse_points(text: &str, origin: &str) -> Result<Vec<Point>> {
    let mut rdr = csv::ReaderBuilder::new()
        .has_headers(true)
        .comment(Some(b'#'))
        .from_reader(text.as_bytes());
    let header = rdr
        .headers()
        .map_err(|e| Error::input(format!("{origin}: cannot read the header: {e}")))?
        .clone();
    let got: Vec<&str> = header.iter().collect();
    if got != CSV_HEADER {
        return Err(Error::input(format!(
            "{origin}: row 1: header must be `{}` (got `{}`)",
            CSV_HEADER.join(","),
            got.join(",")
        )));
    }
    let mut points = Vec::new();
    for (i, rec) in rdr.records().enumerate() {
        let row = i + 2;
        let rec = rec.map_err(|e| Error::input(format!("{origin}: row {row}: {e}")))?;
        let bad = |col: &str, why: &str| Error::input(format!("{origin}: row {row}: {col}: {why}"));
        if rec.len() != CSV_HEADER.len() {
            return Err(bad(
                "row",
                &format!("{} fields, expected {}", rec.len(), CSV_HEADER.len()),
            ));
        }
        let op = Op::parse(&rec[0]).ok_or_else(|| {
            bad(
                "op",
                &format!(
                    "unknown op `{}`; known: {}",
                    &rec[0],
                    Op::ALL.map(Op::name).join(", ")
                ),
            )
        })?;
        let int = |j: usize| -> Result<u64> {
            rec[j].trim().parse::<u64>().map_err(|_| {
                bad(
                    CSV_HEADER[j],
                    &format!("`{}` is not a non-negative integer", &rec[j]),
                )
            })
        };
        let time = |j: usize| -> Result<f64> {
            match rec[j].trim().parse::<f64>() {
                Ok(v) if v.is_finite() && v > 0.0 => Ok(v),
                _ => Err(bad(
                    CSV_HEADER[j],
                    &format!("`{}` is not a positive number of microseconds", &rec[j]),
                )),
            }
        };
        let p = Point {
            op,
            m: int(1)?,
            k: int(2)?,
            n: int(3)?,
            batch: int(4)?,
            context: int(5)?,
            context_max: int(6)?,
            chunk: int(7)?,
            prefix: int(8)?,
            bytes: int(9)?,
            dtype: rec[10].trim().to_string(),
            median_us: time(11)?,
            p10_us: time(12)?,
            p90_us: time(13)?,
            reps: int(14)? as u32,
        };
        let need = |ok: bool, col: &str, why: &str| if ok { Ok(()) } else { Err(bad(col, why)) };
        if op.is_gemm() {
            need(
                p.m > 0 && p.k > 0 && p.n > 0,
                "m",
                "a GEMM needs m, k and n >= 1",
            )?;
        }
        match op {
            Op::DecodeAttention => {
                need(p.batch > 0, "batch", "must be at least 1")?;
                need(p.context > 0, "context", "must be at least 1")?;
                need(
                    p.context_max >= p.context,
                    "context_max",
                    "must be at least the mean context",
                )?;
            }
            Op::PrefillAttention => need(p.chunk > 0, "chunk", "must be at least 1")?,
            Op::CopyD2D | Op::CopyH2D | Op::CopyD2H => {
                need(p.bytes > 0, "bytes", "must be at least 1")?
            }
            _ => {}
        }
        need(
            p.p10_us <= p.median_us && p.median_us <= p.p90_us,
            "median_us",
            "p10 <= median <= p90 must hold",
        )?;
        points.push(p);
    }
    if points.is_empty() {
        return Err(Error::input(format!("{origin}: no measured points")));
    }
    Ok(points)
}

/// Write points as CSV text.
pub fn points_to_csv(points: &[Point]) -> Result<String> {
    let mut w = csv::Writer::from_writer(Vec::new());
    let fail = |e: csv::Error| Error::failure(format!("cannot write profile CSV: {e}"));
    w.write_record(CSV_HEADER).map_err(fail)?;
    for p in points {
        w.write_record(p.to_record()).map_err(fail)?;
    }
    let bytes = w
        .into_inner()
        .map_err(|e| Error::failure(format!("cannot write profile CSV: {e}")))?;
    String::from_utf8(bytes).map_err(|e| Error::failure(e.to_string()))
}

/// Read `BASE.yaml` and `BASE.csv`.
pub fn read_profile(base: &Path) -> Result<Profile> {
    let csv_path = with_ext(base, "csv");
    let yaml_path = with_ext(base, "yaml");
    let read = |p: &Path| {
        crate::input::read_bounded(p, "calibration profile", crate::input::MAX_TEXT_BYTES)
    };
    let meta: ProfileMeta =
        crate::scenario::parse_yaml(&read(&yaml_path)?, &yaml_path.display().to_string())?;
    let points = parse_points(&read(&csv_path)?, &csv_path.display().to_string())?;
    Ok(Profile {
        base: base.to_path_buf(),
        meta,
        points,
    })
}
