//! The measurement plan of `kvsim calibrate`: which shapes of which ops, for a model at a
//! tensor-parallel degree, and how long measuring them should take. The same plan drives
//! `--dry-run` and the measurement, so the printed plan is exactly what runs.

use crate::cost::profile::{Op, Point};
use crate::cost::{Roofline, SeqWork};
use crate::error::{Error, Result};
use crate::model::Model;

/// Shapes of one GPU's share of the model at TP `tp`.
#[derive(Debug, Clone, PartialEq)]
pub struct Shard {
    /// Query heads on this GPU.
    pub heads: u32,
    /// KV heads on this GPU (at least 1; replicated when `kv_heads < tp`).
    pub kv_heads: u32,
    /// Head size.
    pub head_dim: u32,
    /// `(op, k, n)` of the five weight GEMMs.
    pub gemms: [(Op, u64, u64); 5],
    /// Weight bytes on this GPU (the model's over `tp`).
    pub weight_bytes: u64,
}

/// Split `model` over `tp` GPUs as vLLM's column/row-parallel layers do.
pub fn shard(model: &Model, tp: u32) -> Result<Shard> {
    if tp == 0
        || !model.heads.is_multiple_of(tp)
        || !model.intermediate.is_multiple_of(tp)
        || !model.vocab.is_multiple_of(tp)
    {
        return Err(Error::input(format!(
            "--tp {tp}: {} has {} heads, intermediate size {} and vocabulary {}; each must divide by the TP degree",
            model.name, model.heads, model.intermediate, model.vocab
        )));
    }
    let heads = model.heads / tp;
    let kv_heads = (model.kv_heads / tp).max(1);
    let d = model.head_dim as u64;
    let h = model.hidden as u64;
    let i = (model.intermediate / tp) as u64;
    let qkv = (heads + 2 * kv_heads) as u64 * d;
    let gemms = [
        (Op::GemmQkv, h, qkv),
        (Op::GemmO, heads as u64 * d, h),
        (Op::GemmGateUp, h, 2 * i),
        (Op::GemmDown, i, h),
        (Op::GemmLmHead, h, (model.vocab / tp) as u64),
    ];
    // Every weight is split over the GPUs except the small norms (replicated; ignored).
    let weight_bytes = model.weight_bytes() / tp as u64;
    Ok(Shard {
        heads,
        kv_heads,
        head_dim: model.head_dim,
        gemms,
        weight_bytes,
    })
}

/// Token counts of the GEMM grid.
pub fn gemm_tokens(quick: bool) -> Vec<u64> {
    if quick {
        vec![1, 8, 64, 512, 4096, 16384]
    } else {
        (0..=14).map(|e| 1u64 << e).collect()
    }
}

/// Batch sizes and context lengths of the uniform decode grid.
pub fn decode_grid(quick: bool) -> (Vec<u64>, Vec<u64>) {
    if quick {
        (vec![1, 16, 128], vec![256, 2048, 16384])
    } else {
        (vec![1, 4, 16, 64, 256], vec![128, 512, 2048, 8192, 32768])
    }
}

/// Chunk and prefix lengths of the prefill grid.
pub fn prefill_grid(quick: bool) -> (Vec<u64>, Vec<u64>) {
    if quick {
        (vec![64, 512, 4096], vec![0, 4096])
    } else {
        (
            vec![16, 64, 256, 1024, 2048, 4096, 8192],
            vec![0, 1024, 4096, 16384],
        )
    }
}

/// The contexts of a mixed decode batch of `batch` sequences with mean `mean` and
/// longest `skew x mean`: `ceil(batch / (2 skew))` long sequences, the rest equal and
/// short, so that the mean is exact up to rounding.
pub fn mixed_contexts(batch: u64, mean: u64, skew: u64) -> Vec<u64> {
    let long = batch.div_ceil(2 * skew).max(1).min(batch);
    let max = mean * skew;
    let total = batch * mean;
    let short_total = total.saturating_sub(long * max);
    let short_n = batch - long;
    let mut v = vec![max; long as usize];
    if let Some(base) = short_total.checked_div(short_n) {
        let base = base.max(1);
        let extra = short_total.saturating_sub(base * short_n);
        for j in 0..short_n {
            v.push(base + u64::from(j < extra));
        }
    }
    v
}

/// The contexts of the sequences a planned decode point measures: `batch` equal contexts
/// for a uniform point, else the [`mixed_contexts`] that produced its mean and longest.
pub fn decode_contexts(p: &Point) -> Vec<u64> {
    if p.context_max > p.context {
        let skew = (p.context_max as f64 / p.context.max(1) as f64).round() as u64;
        mixed_contexts(p.batch, p.context_max / skew.max(1), skew)
    } else {
        vec![p.context; p.batch as usize]
    }
}

/// Largest total KV tokens of one decode measurement (bounds memory: 2M tokens of one
/// layer of Llama-3.1-8B are 8 GiB for K and V together with rotation).
pub const MAX_DECODE_TOKENS: u64 = 1 << 21;

/// Every point to measure, shapes only, in order.
pub fn plan_points(shard: &Shard, quick: bool) -> Vec<Point> {
    let mut pts = Vec::new();
    for &(op, k, n) in &shard.gemms {
        for m in gemm_tokens(quick) {
            let mut p = Point::new(op);
            (p.m, p.k, p.n) = (m, k, n);
            pts.push(p);
        }
    }
    let (batches, contexts) = decode_grid(quick);
    for &b in &batches {
        for &c in &contexts {
            if b * c <= MAX_DECODE_TOKENS {
                let mut p = Point::new(Op::DecodeAttention);
                (p.batch, p.context, p.context_max) = (b, c, c);
                pts.push(p);
            }
        }
    }
    // Mixed batches: skews 2, 4, 8 at two means, for the batches with room.
    let means: &[u64] = if quick { &[2048] } else { &[1024, 4096] };
    let skews: &[u64] = if quick { &[4] } else { &[2, 4, 8] };
    for &b in batches.iter().filter(|&&b| b >= 4) {
        for &mean in means {
            for &s in skews {
                // Only skews the batch can hold with the mean exact.
                let long = b.div_ceil(2 * s);
                if b * mean * 2 <= MAX_DECODE_TOKENS && long * s < b {
                    let ctx = mixed_contexts(b, mean, s);
                    let mut p = Point::new(Op::DecodeAttention);
                    p.batch = b;
                    p.context = ctx.iter().sum::<u64>() / b;
                    p.context_max = *ctx.iter().max().expect("non-empty");
                    pts.push(p);
                }
            }
        }
    }
    let (chunks, prefixes) = prefill_grid(quick);
    for &c in &chunks {
        for &pre in &prefixes {
            let mut p = Point::new(Op::PrefillAttention);
            (p.chunk, p.prefix) = (c, pre);
            pts.push(p);
        }
    }
    for op in [Op::CopyD2D, Op::CopyH2D, Op::CopyD2H] {
        for bytes in [1u64 << 20, 16 << 20, 256 << 20, 1 << 30] {
            let mut p = Point::new(op);
            p.bytes = bytes;
            pts.push(p);
        }
    }
    pts
}

/// Warm-up and timed repetitions per point.
pub fn repetitions(quick: bool) -> (u32, u32) {
    if quick {
        (3, 10)
    } else {
        (5, 30)
    }
}

/// Expected seconds to measure `points` on a GPU like the roofline's: each point runs
/// `warmup + reps` times at its roofline time, plus a fixed 20 ms for allocation, random
/// fill and rotation set-up.
pub fn expected_seconds(points: &[Point], roof: &Roofline, quick: bool, host_gbps: f64) -> f64 {
    let (w, r) = repetitions(quick);
    let runs = (w + r) as f64;
    points
        .iter()
        .map(|p| {
            let ns = match p.op {
                op if op.is_gemm() => roof.gemm_ns(p.m as f64, p.k, p.n),
                Op::DecodeAttention => {
                    p.batch as f64
                        * roof.decode_layer_ns(&[SeqWork {
                            new_tokens: 1,
                            context: p.context as u32,
                        }])
                }
                Op::PrefillAttention => roof.prefill_layer_ns(&[SeqWork {
                    new_tokens: p.chunk as u32,
                    context: p.prefix as u32,
                }]),
                Op::CopyD2D => 2.0 * p.bytes as f64 / 2.0e12 * 1e9,
                _ => p.bytes as f64 / (host_gbps * 1e9) * 1e9,
            };
            (ns.max(5_000.0) * runs) / 1e9 + 0.02
        })
        .sum()
}

/// The plan as a table (for `--dry-run`).
pub fn describe(points: &[Point]) -> String {
    let mut o = String::new();
    let count = |op: Op| points.iter().filter(|p| p.op == op).count();
    for op in Op::ALL {
        let n = count(op);
        if n == 0 {
            continue;
        }
        let shapes: Vec<String> = points
            .iter()
            .filter(|p| p.op == op)
            .map(|p| match op {
                o if o.is_gemm() => format!("m={}", p.m),
                Op::DecodeAttention if p.context_max > p.context => {
                    format!("b={} mean={} max={}", p.batch, p.context, p.context_max)
                }
                Op::DecodeAttention => format!("b={} ctx={}", p.batch, p.context),
                Op::PrefillAttention => format!("c={} p={}", p.chunk, p.prefix),
                _ => format!("{} MiB", p.bytes >> 20),
            })
            .collect();
        let first = points.iter().find(|p| p.op == op).expect("counted");
        let shape = if op.is_gemm() {
            format!(" [{}x{}]", first.k, first.n)
        } else {
            String::new()
        };
        o.push_str(&format!(
            "{:<18}{shape} {n} points: {}\n",
            op.name(),
            shapes.join(", ")
        ));
    }
    o
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mixed_contexts_keep_the_mean_and_the_skew() {
        for (b, mean, s) in [(16, 1024, 2), (16, 1024, 8), (64, 4096, 4), (4, 1024, 2)] {
            let c = mixed_contexts(b, mean, s);
            assert_eq!(c.len() as u64, b);
            let sum: u64 = c.iter().sum();
            assert!(sum.abs_diff(b * mean) < b, "{b} {mean} {s}: {sum}");
            assert_eq!(*c.iter().max().unwrap(), mean * s);
        }
    }

    #[test]
    fn llama_8b_shards_like_vllm() {
        let m = Model::from_spec(&crate::scenario::ModelSpec {
            preset: Some("llama-3.1-8b".into()),
            ..Default::default()
        })
        .unwrap();
        let s1 = shard(&m, 1).unwrap();
        assert_eq!(s1.gemms[0], (Op::GemmQkv, 4096, 6144));
        assert_eq!(s1.gemms[2], (Op::GemmGateUp, 4096, 28672));
        assert_eq!(s1.weight_bytes, m.weight_bytes());
        let s2 = shard(&m, 2).unwrap();
        assert_eq!((s2.heads, s2.kv_heads), (16, 4));
        assert_eq!(s2.gemms[3], (Op::GemmDown, 7168, 4096));
        assert!(shard(&m, 3).is_err());
        let pts = plan_points(&s1, false);
        assert_eq!(pts.iter().filter(|p| p.op == Op::GemmQkv).count(), 15);
        assert!(pts
            .iter()
            .filter(|p| p.op == Op::DecodeAttention)
            .all(|p| p.batch * p.context <= MAX_DECODE_TOKENS));
        assert!(pts
            .iter()
            .any(|p| p.op == Op::DecodeAttention && p.context_max > p.context));
        // The contexts measured for every decode point are the ones its row records.
        for quick in [false, true] {
            for p in plan_points(&s1, quick)
                .iter()
                .filter(|p| p.op == Op::DecodeAttention)
            {
                let c = decode_contexts(p);
                assert_eq!(c.len() as u64, p.batch);
                assert_eq!(c.iter().sum::<u64>() / p.batch, p.context, "{p:?}");
                assert_eq!(*c.iter().max().unwrap(), p.context_max, "{p:?}");
            }
        }
    }
}
