//! Reading Vidur's profiling files (microsoft/vidur `data/profiling/`, MIT licence), as
//! `kvsim fidelity kernels` compares them and `kvsim fidelity import` converts them:
//! `compute/<gpu>/<org>/<model>/mlp.csv` (one transformer layer's operations per TP degree
//! and token count, the model's shape in the row) and `compute/<gpu>/attention*.csv`
//! (attention per batch, chunk and cached context). Times are kept as written, in
//! milliseconds; an empty cell is `None`.

use crate::cost::profile::Op;
use crate::error::{Error, Result};
use crate::model::Model;
use std::path::{Path, PathBuf};

/// The kvsim GPU preset of a Vidur GPU folder.
pub fn gpu_preset(folder: &str) -> Option<&'static str> {
    match folder {
        "h100" => Some("h100-sxm"),
        "a100" => Some("a100-80gb"),
        _ => None,
    }
}

/// One file of Vidur's profiling folder.
#[derive(Debug, Clone, PartialEq)]
pub enum VidurFile {
    /// `compute/<gpu>/<org>/<model>/mlp.csv`.
    Mlp {
        /// GPU folder.
        gpu: String,
        /// Organisation folder.
        org: String,
        /// Model folder.
        model: String,
        /// The file.
        path: PathBuf,
    },
    /// `compute/<gpu>/attention*.csv`.
    Attention {
        /// GPU folder.
        gpu: String,
        /// File name.
        name: String,
        /// The file.
        path: PathBuf,
    },
}

/// The entries of folder `dir`, sorted by path (an input error names the folder).
pub fn sorted_entries(dir: &Path) -> Result<Vec<PathBuf>> {
    let rd = std::fs::read_dir(dir)
        .map_err(|e| Error::input(format!("cannot read {}: {e}", dir.display())))?;
    let mut v: Vec<PathBuf> = rd.filter_map(|e| e.ok().map(|e| e.path())).collect();
    v.sort();
    Ok(v)
}

fn file_name(p: &Path) -> String {
    p.file_name()
        .and_then(|n| n.to_str())
        .unwrap_or("")
        .to_string()
}

/// Every profile file under `vidur` (the folder holding `compute/`), in sorted path order
/// (every GPU folder, known to kvsim or not); an error when there is none.
pub fn files(vidur: &Path) -> Result<Vec<VidurFile>> {
    let mut out = Vec::new();
    for g in sorted_entries(&vidur.join("compute"))?
        .into_iter()
        .filter(|p| p.is_dir())
    {
        let gpu = file_name(&g);
        for entry in sorted_entries(&g)? {
            let name = file_name(&entry);
            if entry.is_file() && name.starts_with("attention") && name.ends_with(".csv") {
                out.push(VidurFile::Attention {
                    gpu: gpu.clone(),
                    name,
                    path: entry,
                });
            } else if entry.is_dir() {
                for m in sorted_entries(&entry)? {
                    let path = m.join("mlp.csv");
                    if path.is_file() {
                        out.push(VidurFile::Mlp {
                            gpu: gpu.clone(),
                            org: name.clone(),
                            model: file_name(&m),
                            path,
                        });
                    }
                }
            }
        }
    }
    if !out.iter().any(|f| matches!(f, VidurFile::Mlp { .. })) {
        return Err(Error::input(format!(
            "{}: no Vidur profiles (compute/<gpu>/<org>/<model>/mlp.csv) found",
            vidur.display()
        )));
    }
    Ok(out)
}

/// A measured time's median, min and max, milliseconds (`None`: empty cell).
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct Stat {
    /// Median.
    pub median: Option<f64>,
    /// Minimum.
    pub min: Option<f64>,
    /// Maximum.
    pub max: Option<f64>,
}

/// One `mlp.csv` row: the model's shape, the TP degree, the tokens and the four GEMMs.
#[derive(Debug, Clone, PartialEq)]
pub struct MlpRow {
    /// Query heads (whole model).
    pub heads: u32,
    /// KV heads (whole model).
    pub kv_heads: u32,
    /// Hidden size.
    pub hidden: u32,
    /// MLP intermediate size (whole model).
    pub inter: u32,
    /// Vocabulary as Vidur gives it (may be padded).
    pub vocab: u32,
    /// Gated MLP (gate and up fused, twice the intermediate width).
    pub gated: bool,
    /// Tokens.
    pub tokens: u64,
    /// Tensor-parallel degree.
    pub tp: u32,
    /// QKV, O, gate+up and down, in [`GEMMS`] order.
    pub gemms: [Stat; 4],
}

/// The four GEMMs of an `mlp.csv` row: kvsim's op and Vidur's column name.
pub const GEMMS: [(Op, &str); 4] = [
    (Op::GemmQkv, "attn_pre_proj"),
    (Op::GemmO, "attn_post_proj"),
    (Op::GemmGateUp, "mlp_up_proj"),
    (Op::GemmDown, "mlp_down_proj"),
];

impl MlpRow {
    /// Head size.
    pub fn head_dim(&self) -> u32 {
        self.hidden / self.heads
    }

    /// The `(k, n)` weight of each GEMM on one GPU, in [`GEMMS`] order, split over the TP
    /// ranks as Megatron does.
    pub fn gemm_shapes(&self) -> [(u64, u64); 4] {
        let tp = self.tp as u64;
        let hd = self.head_dim() as u64;
        let (h, heads, kv, inter) = (
            self.hidden as u64,
            self.heads as u64,
            self.kv_heads as u64,
            self.inter as u64,
        );
        let up = if self.gated { 2 * inter } else { inter } / tp;
        [
            (h, (heads + 2 * kv) * hd / tp),
            (heads * hd / tp, h),
            (h, up),
            (inter / tp, h),
        ]
    }

    /// One GPU's shard of one layer, fp16, with this vocabulary.
    pub fn shard(&self, vocab: u32) -> Model {
        layer_shard(
            self.hidden,
            self.heads / self.tp,
            (self.kv_heads / self.tp).max(1),
            self.head_dim(),
            self.inter / self.tp,
            vocab,
        )
    }
}

/// One row of an attention file.
#[derive(Debug, Clone, PartialEq)]
pub struct AttentionRow {
    /// Hidden size.
    pub hidden: u32,
    /// Query heads (whole model).
    pub heads: u32,
    /// KV heads (whole model).
    pub kv_heads: u32,
    /// Tensor-parallel degree.
    pub tp: u32,
    /// The longest sequence the profiled cache holds (`max_model_len`): FlashAttention sizes
    /// its decode splits by it.
    pub max_model_len: u32,
    /// Sequences.
    pub batch: u64,
    /// Prefill chunk (prefill rows).
    pub chunk: u64,
    /// Tokens already in each sequence's KV cache.
    pub context: u64,
    /// A prefill row (else decode).
    pub prefill: bool,
    /// Decode attention time.
    pub decode: Stat,
    /// Prefill attention time.
    pub prefill_time: Stat,
}

impl AttentionRow {
    /// (query heads, KV heads, head size) on one GPU.
    pub fn shard_shape(&self) -> (u32, u32, u32) {
        (
            self.heads / self.tp,
            self.kv_heads / self.tp,
            self.hidden / self.heads,
        )
    }

    /// One GPU's shard of one layer's attention, fp16.
    pub fn shard(&self) -> Model {
        let (q, kv, hd) = self.shard_shape();
        layer_shard(self.hidden, q, kv, hd, 1, 32_000)
    }
}

/// A one-layer fp16 model of this per-GPU shape.
fn layer_shard(
    hidden: u32,
    heads: u32,
    kv_heads: u32,
    head_dim: u32,
    inter: u32,
    vocab: u32,
) -> Model {
    Model {
        name: "vidur-shape".into(),
        layers: 1,
        hidden,
        heads,
        kv_heads,
        head_dim,
        intermediate: inter,
        vocab,
        dtype_bytes: 2,
        dtype: "fp16".into(),
        kv_dtype_bytes: 2,
        kv_dtype: "auto".into(),
        arch: Default::default(),
        max_position: 1 << 20,
        tie_embeddings: false,
    }
}

/// A CSV file read by column name; errors name the file, the row and the column.
struct Csv {
    path: PathBuf,
    header: csv::StringRecord,
    records: Vec<csv::StringRecord>,
}

impl Csv {
    fn read(path: &Path) -> Result<Csv> {
        let fail = |e: csv::Error| Error::input(format!("{}: {e}", path.display()));
        let mut r = csv::Reader::from_path(path).map_err(fail)?;
        let header = r.headers().map_err(fail)?.clone();
        let mut records = Vec::new();
        for (i, rec) in r.records().enumerate() {
            records.push(
                rec.map_err(|e| Error::input(format!("{} row {}: {e}", path.display(), i + 2)))?,
            );
        }
        Ok(Csv {
            path: path.to_path_buf(),
            header,
            records,
        })
    }

    fn col(&self, name: &str) -> Result<usize> {
        self.header
            .iter()
            .position(|h| h == name)
            .ok_or_else(|| Error::input(format!("{}: no column `{name}`", self.path.display())))
    }

    /// The indices of the columns `names`, in order (the first missing one is the error).
    fn cols<const N: usize>(&self, names: [&str; N]) -> Result<[usize; N]> {
        let mut out = [0; N];
        for (o, n) in out.iter_mut().zip(names) {
            *o = self.col(n)?;
        }
        Ok(out)
    }

    fn bad(&self, i: usize, j: usize, what: &str) -> Error {
        Error::input(format!(
            "{} row {}: `{}` is `{}`, not {what}",
            self.path.display(),
            i + 2,
            &self.header[j],
            &self.records[i][j]
        ))
    }

    fn int(&self, i: usize, j: usize) -> Result<u64> {
        let v = self.records[i][j].trim();
        v.parse::<u64>().map_err(|_| self.bad(i, j, "an integer"))
    }

    fn ms(&self, i: usize, j: usize) -> Result<Option<f64>> {
        match self.records[i][j].trim() {
            "" => Ok(None),
            v => v
                .parse::<f64>()
                .ok()
                .filter(|x| x.is_finite())
                .map(Some)
                .ok_or_else(|| self.bad(i, j, "a finite number")),
        }
    }

    /// The median, min and max columns of `time_stats.<op>`.
    fn stat_cols(&self, op: &str) -> Result<[usize; 3]> {
        Ok([
            self.col(&format!("time_stats.{op}.median"))?,
            self.col(&format!("time_stats.{op}.min"))?,
            self.col(&format!("time_stats.{op}.max"))?,
        ])
    }

    fn stat(&self, i: usize, [m, lo, hi]: [usize; 3]) -> Result<Stat> {
        Ok(Stat {
            median: self.ms(i, m)?,
            min: self.ms(i, lo)?,
            max: self.ms(i, hi)?,
        })
    }
}

/// The rows of an `mlp.csv`.
pub fn read_mlp(path: &Path) -> Result<Vec<MlpRow>> {
    let t = Csv::read(path)?;
    let c = [
        "n_head",
        "n_kv_head",
        "n_embd",
        "n_expanded_embd",
        "vocab_size",
        "use_gated_mlp",
        "num_tokens",
        "num_tensor_parallel_workers",
    ];
    let [heads, kv, hidden, inter, vocab, gated, tokens, tp] = t.cols(c)?;
    let mut stats = [[0; 3]; 4];
    for (s, (_, name)) in stats.iter_mut().zip(GEMMS) {
        *s = t.stat_cols(name)?;
    }
    let mut rows = Vec::with_capacity(t.records.len());
    for i in 0..t.records.len() {
        let mut gemms = [Stat::default(); 4];
        for (g, s) in gemms.iter_mut().zip(stats) {
            *g = t.stat(i, s)?;
        }
        rows.push(MlpRow {
            heads: t.int(i, heads)? as u32,
            kv_heads: t.int(i, kv)? as u32,
            hidden: t.int(i, hidden)? as u32,
            inter: t.int(i, inter)? as u32,
            vocab: t.int(i, vocab)? as u32,
            gated: &t.records[i][gated] != "False",
            tokens: t.int(i, tokens)?,
            tp: t.int(i, tp)? as u32,
            gemms,
        });
    }
    Ok(rows)
}

/// The rows of an attention file.
pub fn read_attention(path: &Path) -> Result<Vec<AttentionRow>> {
    let t = Csv::read(path)?;
    let c = [
        "n_embd",
        "n_q_head",
        "n_kv_head",
        "num_tensor_parallel_workers",
        "max_model_len",
        "batch_size",
        "prefill_chunk_size",
        "kv_cache_size",
        "is_prefill",
    ];
    let [hidden, heads, kv, tp, max_len, batch, chunk, context, prefill] = t.cols(c)?;
    let (decode, prefill_time) = (t.stat_cols("attn_decode")?, t.stat_cols("attn_prefill")?);
    let mut rows = Vec::with_capacity(t.records.len());
    for i in 0..t.records.len() {
        rows.push(AttentionRow {
            hidden: t.int(i, hidden)? as u32,
            heads: t.int(i, heads)? as u32,
            kv_heads: t.int(i, kv)? as u32,
            tp: t.int(i, tp)? as u32,
            max_model_len: t.int(i, max_len)? as u32,
            batch: t.int(i, batch)?,
            chunk: t.int(i, chunk)?,
            context: t.int(i, context)?,
            prefill: &t.records[i][prefill] == "True",
            decode: t.stat(i, decode)?,
            prefill_time: t.stat(i, prefill_time)?,
        });
    }
    Ok(rows)
}
