//! The calibrated cost model: step times from a measured profile (`kvsim calibrate`).
//! Each term interpolates the profile's grid monotonically in log space; outside the grid
//! the nearest measured value is scaled by the roofline's ratio between the query and that
//! point, and a warning records which op and how far. Formulas in `docs/cost-model.md`.

use super::interp::{Curve, Grid2, Lookup};
use super::profile::{Op, Profile};
use super::Roofline;
use super::{BatchShape, CostModel, SeqWork, StepCost};
use crate::error::{Error, Result};
use crate::model::Model;
use std::collections::BTreeMap;
use std::sync::Mutex;

/// Correction for decode batches of mixed context lengths: measured time over the uniform
/// batch's time at the same size and mean, as a function of `longest / mean`.
#[derive(Debug, Clone)]
struct SkewFactor {
    /// `(ln(longest / mean), factor)`, sorted, starting at `(0, 1)`.
    points: Vec<(f64, f64)>,
}

impl SkewFactor {
    fn new(mut raw: Vec<(f64, f64)>) -> Self {
        raw.push((1.0, 1.0));
        raw.sort_by(|a, b| a.0.total_cmp(&b.0));
        let mut points: Vec<(f64, f64, u32)> = Vec::new();
        for (s, f) in raw {
            let ls = s.max(1.0).ln();
            match points.last_mut() {
                Some(last) if (last.0 - ls).abs() < 1e-12 => {
                    last.1 += f;
                    last.2 += 1;
                }
                _ => points.push((ls, f, 1)),
            }
        }
        SkewFactor {
            points: points.iter().map(|&(s, f, n)| (s, f / n as f64)).collect(),
        }
    }

    fn at(&self, skew: f64) -> f64 {
        let ls = skew.max(1.0).ln();
        let p = &self.points;
        if ls <= p[0].0 {
            return p[0].1;
        }
        for w in p.windows(2) {
            if ls <= w[1].0 {
                let t = (ls - w[0].0) / (w[1].0 - w[0].0);
                return w[0].1 * (1.0 - t) + w[1].1 * t;
            }
        }
        p[p.len() - 1].1
    }
}

/// Step times from a calibration profile.
#[derive(Debug)]
pub struct Calibrated {
    roof: Roofline,
    layers: f64,
    /// QKV, O, gate+up, down: curve over tokens and the weight shape `(k, n)`.
    gemms: Vec<(Op, Curve, u64, u64)>,
    lm_head: (Curve, u64, u64),
    prefill: Grid2,
    decode: Grid2,
    skew: SkewFactor,
    label: String,
    /// Op name -> furthest a query went outside the measured grid (ratio).
    outside: Mutex<BTreeMap<&'static str, f64>>,
}

impl Calibrated {
    /// Build the model from a profile for `model`; `roof` supplies the shapes and the
    /// scaling outside the grid (and the CPU overheads, which a kernel profile cannot see).
    /// `model` is one GPU's shard at tensor parallelism `tp`, which must be the profile's.
    pub fn new(profile: &Profile, model: &Model, tp: u32, roof: Roofline) -> Result<Calibrated> {
        let origin = profile.base.display().to_string();
        let err = |msg: String| Error::input(format!("hardware.calibration: {origin}: {msg}"));
        if profile.meta.tp != tp {
            return Err(err(format!(
                "measured at TP {}, but engine.tensor_parallel_size is {tp}; calibrate with --tp {tp}",
                profile.meta.tp
            )));
        }
        if model.arch.moe.is_some() {
            return Err(err(format!(
                "{} is a mixture of experts; kernel profiles hold no MoE kernels yet, so it runs on the roofline only",
                model.name
            )));
        }
        let local = model.layer_attention().len() > 1;
        if local || model.arch.mla.is_some() {
            let kind = if model.arch.linear_attention.is_some() {
                "linear-attention (Gated DeltaNet)"
            } else if local {
                "sliding-window or chunked-local"
            } else {
                "latent-attention (MLA)"
            };
            return Err(err(format!(
                "{} has {kind} layers; kernel profiles time full-attention kernels only, so it runs on the roofline only",
                model.name
            )));
        }
        let of = |op: Op| profile.points.iter().filter(move |p| p.op == op);
        // Attention was measured reading a KV cache of the points' dtype.
        let attention = of(Op::PrefillAttention).chain(of(Op::DecodeAttention));
        if let Some(p) = attention
            .clone()
            .find(|p| crate::model::element_bytes(&p.dtype) != Some(model.kv_dtype_bytes))
        {
            return Err(err(format!(
                "attention was measured with a {} KV cache, but kv_cache.cache_dtype is {} ({} bytes per element); use a profile measured at that dtype or the roofline",
                p.dtype, model.kv_dtype, model.kv_dtype_bytes
            )));
        }
        let gemm = |op: Op, k: u64, n: u64| -> Result<Curve> {
            let pts: Vec<(f64, f64)> = of(op)
                .filter(|p| p.k == k && p.n == n)
                .map(|p| (p.m as f64, p.median_us * 1e3))
                .collect();
            if pts.is_empty() {
                let seen: Vec<String> = of(op).map(|p| format!("{}x{}", p.k, p.n)).collect();
                return Err(err(format!(
                    "no {} points for the weight shape {k}x{n} of {} (profile has: {})",
                    op.name(),
                    model.name,
                    if seen.is_empty() {
                        "none".to_string()
                    } else {
                        seen[0].clone()
                    }
                )));
            }
            Ok(Curve::new(&pts).expect("positive times checked by the reader"))
        };
        let ops = [Op::GemmQkv, Op::GemmO, Op::GemmGateUp, Op::GemmDown];
        let mut gemms = Vec::new();
        for (op, (k, n)) in ops.into_iter().zip(roof.layer_gemms()) {
            gemms.push((op, gemm(op, k, n)?, k, n));
        }
        let (h, v) = (model.hidden as u64, model.vocab as u64);
        let lm_head = (gemm(Op::GemmLmHead, h, v)?, h, v);

        let prefill_pts: Vec<(f64, f64, f64)> = of(Op::PrefillAttention)
            .map(|p| (p.chunk as f64, p.prefix as f64, p.median_us * 1e3))
            .collect();
        let prefill = Grid2::new(&prefill_pts)
            .map_err(|e| err(format!("prefill_attention (chunk, prefix): {e}")))?;
        let uniform: Vec<(f64, f64, f64)> = of(Op::DecodeAttention)
            .filter(|p| p.context_max == p.context)
            .map(|p| (p.batch as f64, p.context as f64, p.median_us * 1e3))
            .collect();
        let decode = Grid2::new(&uniform)
            .map_err(|e| err(format!("decode_attention uniform (batch, context): {e}")))?;
        let skew = SkewFactor::new(
            of(Op::DecodeAttention)
                .filter(|p| p.context_max > p.context)
                .map(|p| {
                    let base = decode.at(p.batch as f64, p.context as f64).value;
                    (
                        p.context_max as f64 / p.context as f64,
                        p.median_us * 1e3 / base,
                    )
                })
                .collect(),
        );
        Ok(Calibrated {
            roof,
            layers: model.layers as f64,
            gemms,
            lm_head,
            prefill,
            decode,
            skew,
            label: match &profile.meta.provenance {
                Some(p) => format!(
                    "calibrated (public: {} {}, {} at TP {} on {}; filled by the roofline: {})",
                    p.source.split_whitespace().next().unwrap_or("source"),
                    p.commit,
                    profile.meta.model,
                    profile.meta.tp,
                    profile.meta.gpu_name,
                    p.filled.join(", ")
                ),
                None => format!(
                    "calibrated (profile {}: {} measured on {} on {})",
                    origin, profile.meta.model, profile.meta.gpu_name, profile.meta.date
                ),
            },
            outside: Mutex::new(BTreeMap::new()),
        })
    }

    fn note_outside(&self, op: Op, l: &Lookup) {
        if l.outside_by > 1.0 {
            let mut m = self.outside.lock().expect("not poisoned");
            let e = m.entry(op.name()).or_insert(1.0);
            *e = e.max(l.outside_by);
        }
    }

    fn gemm_ns(&self, op: Op, curve: &Curve, k: u64, n: u64, tokens: f64) -> f64 {
        let l = curve.at(tokens);
        self.note_outside(op, &l);
        if l.outside_by > 1.0 {
            l.value * self.roof.gemm_ns(tokens, k, n) / self.roof.gemm_ns(l.clamped[0], k, n)
        } else {
            l.value
        }
    }

    fn prefill_chunk_ns(&self, s: &SeqWork) -> f64 {
        let (c, p) = (s.new_tokens as f64, s.context as f64);
        let l = self.prefill.at(c, p);
        self.note_outside(Op::PrefillAttention, &l);
        if l.outside_by > 1.0 {
            let roof = |c: f64, p: f64| {
                self.roof.prefill_layer_ns(&[SeqWork {
                    new_tokens: c.round().max(1.0) as u32,
                    context: p.round() as u32,
                }])
            };
            l.value * roof(c, p) / roof(l.clamped[0], l.clamped[1])
        } else {
            l.value
        }
    }

    fn decode_ns(&self, decodes: &[SeqWork]) -> f64 {
        let b = decodes.len() as f64;
        let (mut sum, mut max) = (0.0f64, 0.0f64);
        for s in decodes {
            let ctx = s.context as f64 + 1.0;
            sum += ctx;
            max = max.max(ctx);
        }
        let mean = sum / b;
        let l = self.decode.at(b, mean);
        self.note_outside(Op::DecodeAttention, &l);
        let mut t = l.value * self.skew.at(max / mean);
        if l.outside_by > 1.0 {
            let one = |ctx: f64| {
                self.roof.decode_layer_ns(&[SeqWork {
                    new_tokens: 1,
                    context: (ctx.round() as u32).saturating_sub(1),
                }])
            };
            t *= (b * one(mean)) / (l.clamped[0] * one(l.clamped[1]));
        }
        t
    }
}

impl CostModel for Calibrated {
    fn step_cost(&self, batch: &BatchShape) -> StepCost {
        let mut cost = StepCost {
            overhead_ns: self.roof.overhead_ns(batch.num_seqs()),
            ..Default::default()
        };
        let tokens = batch.total_tokens() as f64;
        if tokens == 0.0 {
            return cost;
        }
        cost.linear_ns = self.layers
            * self
                .gemms
                .iter()
                .map(|(op, c, k, n)| self.gemm_ns(*op, c, *k, *n, tokens))
                .sum::<f64>();
        if !batch.prefills.is_empty() {
            cost.prefill_attention_ns = self.layers
                * batch
                    .prefills
                    .iter()
                    .map(|s| self.prefill_chunk_ns(s))
                    .sum::<f64>();
        }
        if !batch.decodes.is_empty() {
            cost.decode_attention_ns = self.layers * self.decode_ns(&batch.decodes);
        }
        if batch.sampled > 0 {
            let (c, k, n) = &self.lm_head;
            let sampled = batch.sampled as f64;
            // Profiles measure GEMMs and attention only; the sampler and the element-wise
            // kernels are modelled.
            cost.lm_head_ns =
                self.gemm_ns(Op::GemmLmHead, c, *k, *n, sampled) + self.roof.sampler_ns(sampled);
        }
        cost.elementwise_ns = self.roof.elementwise_ns(tokens);
        cost
    }

    fn describe(&self) -> String {
        self.label.clone()
    }

    fn warnings(&self) -> Vec<String> {
        self.outside
            .lock()
            .expect("not poisoned")
            .iter()
            .map(|(op, by)| {
                format!(
                    "{op}: queries reached {by:.1}x beyond the measured grid; scaled by the roofline there"
                )
            })
            .collect()
    }
}
