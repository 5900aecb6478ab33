//! Kernel measurements for `kvsim fit kernels`: the measured points of a kvsim calibration
//! profile (ops its provenance marks as filled in by the roofline are left out, and copies,
//! which no coefficient prices), or every GEMM and attention point of one GPU in Vidur's
//! profiling folder. Each point is predicted by the default cost model's kernel time
//! ([`KernelCase::predict_ns`]) with the coefficients being fitted.

use super::{Key, Measurements};
use crate::cost::profile::{read_profile, Op};
use crate::cost::SeqWork;
use crate::error::{Error, Result};
use crate::fidelity::{Kernel, KernelCase};
use crate::hardware::Gpu;
use crate::model::Model;
use crate::scenario::Efficiency;
use std::path::Path;

/// The `hardware.efficiency` coefficients kernel times depend on (the element-wise ones
/// have no kernel in the data).
pub const KERNEL_KEYS: [&str; 14] = [
    "gemm_compute",
    "gemm_memory",
    "gemm_overlap",
    "gemm_floor_us",
    "gemm_tile_exponent",
    "attention_compute",
    "attention_causal_compute",
    "attention_memory",
    "prefill_attention_floor_us",
    "decode_attention_floor_us",
    "decode_split_floor_us",
    "decode_split_wave_us",
    "decode_split_combine_us",
    "decode_split_sm_gbps",
];

/// Set the efficiency field `name` (the last part of its key).
pub fn set_efficiency(eff: &mut Efficiency, name: &str, v: f64) -> Result<()> {
    match name {
        "gemm_compute" => eff.gemm_compute = v,
        "gemm_memory" => eff.gemm_memory = v,
        "gemm_overlap" => eff.gemm_overlap = v,
        "gemm_floor_us" => eff.gemm_floor_us = v,
        "gemm_tile_exponent" => eff.gemm_tile_exponent = v,
        "decode_split_floor_us" => eff.decode_split_floor_us = v,
        "decode_split_wave_us" => eff.decode_split_wave_us = v,
        "decode_split_combine_us" => eff.decode_split_combine_us = v,
        "decode_split_sm_gbps" => eff.decode_split_sm_gbps = v,
        "attention_compute" => eff.attention_compute = v,
        "attention_causal_compute" => eff.attention_causal_compute = v,
        "attention_memory" => eff.attention_memory = Some(v),
        "prefill_attention_floor_us" => eff.prefill_attention_floor_us = v,
        "decode_attention_floor_us" => eff.decode_attention_floor_us = v,
        "elementwise_memory" => eff.elementwise_memory = v,
        "elementwise_floor_us" => eff.elementwise_floor_us = v,
        _ => {
            return Err(Error::input(format!(
                "`hardware.efficiency.{name}` is not a fitted coefficient"
            )))
        }
    }
    Ok(())
}

/// Set a model switch of `hardware.efficiency` (`gemm_tiles`, `decode_splits`; the key or
/// its last part) to `value` (`true` or `false`); false when `key` names no switch.
pub fn set_switch(eff: &mut Efficiency, key: &str, value: &str) -> Result<bool> {
    let set: fn(&mut Efficiency, bool) =
        match key.strip_prefix("hardware.efficiency.").unwrap_or(key) {
            "gemm_tiles" => |e, on| e.gemm_tiles = on,
            "decode_splits" => |e, on| e.decode_splits = Some(on),
            _ => return Ok(false),
        };
    let on = match value {
        "true" => true,
        "false" => false,
        _ => {
            return Err(Error::input(format!(
                "--set {key}={value}: expected true or false"
            )))
        }
    };
    set(eff, on);
    Ok(true)
}

/// The value of the efficiency field `name` on `gpu` (its attention bandwidth default
/// resolved).
pub fn efficiency_value(eff: &Efficiency, gpu: &Gpu, name: &str) -> Result<f64> {
    Ok(match name {
        "gemm_compute" => eff.gemm_compute,
        "gemm_memory" => eff.gemm_memory,
        "gemm_overlap" => eff.gemm_overlap,
        "gemm_floor_us" => eff.gemm_floor_us,
        "gemm_tile_exponent" => eff.gemm_tile_exponent,
        "decode_split_floor_us" => eff.decode_split_floor_us,
        "decode_split_wave_us" => eff.decode_split_wave_us,
        "decode_split_combine_us" => eff.decode_split_combine_us,
        "decode_split_sm_gbps" => eff.decode_split_sm_gbps,
        "attention_compute" => eff.attention_compute,
        "attention_causal_compute" => eff.attention_causal_compute,
        "attention_memory" => eff.attention_memory.unwrap_or(gpu.attention_memory),
        "prefill_attention_floor_us" => eff.prefill_attention_floor_us,
        "decode_attention_floor_us" => eff.decode_attention_floor_us,
        "elementwise_memory" => eff.elementwise_memory,
        "elementwise_floor_us" => eff.elementwise_floor_us,
        _ => {
            return Err(Error::input(format!(
                "`hardware.efficiency.{name}` is not a fitted coefficient"
            )))
        }
    })
}

/// The last part of a `hardware.efficiency` key, or an error for another section.
pub fn efficiency_name(k: &Key) -> Result<&'static str> {
    k.key.strip_prefix("hardware.efficiency.").ok_or_else(|| {
        Error::input(format!(
            "--fit {}: kernel times do not depend on it (fit it with `kvsim fit serving`)",
            k.key
        ))
    })
}

/// Kernel measurements of one GPU and the efficiencies the unfitted coefficients keep.
pub struct KernelData {
    /// The measured kernels.
    pub cases: Vec<KernelCase>,
    /// Efficiencies the fitted values are put into.
    pub base: Efficiency,
    /// The fitted coefficients (`hardware.efficiency` keys), in order.
    pub keys: Vec<Key>,
}

impl KernelData {
    /// The efficiencies with these values of the fitted coefficients.
    pub fn efficiency(&self, values: &[f64]) -> Result<Efficiency> {
        let mut eff = self.base.clone();
        for (k, &v) in self.keys.iter().zip(values) {
            set_efficiency(&mut eff, efficiency_name(k)?, v)?;
        }
        Ok(eff)
    }
}

impl Measurements for KernelData {
    fn residuals(&self, values: &[f64]) -> Result<Vec<f64>> {
        let eff = self.efficiency(values)?;
        Ok(self
            .cases
            .iter()
            .map(|c| (c.predict_ns(&eff) / c.measured_ns).ln())
            .collect())
    }
}

/// Every GEMM and attention case of GPU folder `gpu` (`h100`, `a100`) in Vidur's profiling
/// folder.
pub fn vidur_cases(vidur: &Path, gpu: &str) -> Result<Vec<KernelCase>> {
    let cases: Vec<KernelCase> = crate::fidelity::vidur_kernel_cases(vidur)?
        .into_iter()
        .filter(|c| c.gpu_label == gpu)
        .collect();
    if cases.is_empty() {
        return Err(Error::input(format!(
            "{}: no measurement of GPU `{gpu}` (Vidur's GPU folders: h100, a100)",
            vidur.display()
        )));
    }
    Ok(cases)
}

/// The measured points of a calibration profile, as cases of `gpu` and the profile's model
/// (`model`, or the profile's own model name as a preset), at the profile's TP degree.
pub fn profile_cases(
    base: &Path,
    gpu_name: &str,
    gpu: &Gpu,
    model: Option<&str>,
) -> Result<Vec<KernelCase>> {
    let p = read_profile(base)?;
    let name = model.unwrap_or(&p.meta.model);
    let full = Model::preset(name).map_err(|e| {
        Error::input(format!(
            "{}: model `{name}`: {e} (name the model preset with --model)",
            base.display()
        ))
    })?;
    let shard = full.shard(p.meta.tp.max(1), 1)?;
    let filled: Vec<String> = p
        .meta
        .provenance
        .as_ref()
        .map(|pr| pr.filled.clone())
        .unwrap_or_default();
    let mut out = Vec::new();
    for pt in p
        .points
        .iter()
        .filter(|pt| !filled.iter().any(|f| f == pt.op.name()))
    {
        let kernel = match pt.op {
            op if op.is_gemm() => Kernel::Gemm {
                tokens: pt.m as f64,
                k: pt.k,
                n: pt.n,
            },
            Op::DecodeAttention => Kernel::Decode {
                seqs: vec![
                    SeqWork {
                        new_tokens: 1,
                        context: pt.context as u32,
                    };
                    pt.batch as usize
                ],
                kv_len: None,
            },
            Op::PrefillAttention => Kernel::Prefill(vec![SeqWork {
                new_tokens: pt.chunk as u32,
                context: pt.prefix as u32,
            }]),
            _ => continue,
        };
        if pt.median_us.is_nan() || pt.median_us <= 0.0 {
            continue;
        }
        out.push(KernelCase {
            gpu_label: gpu_name.to_string(),
            gpu: gpu.clone(),
            model: shard.clone(),
            source: base.display().to_string(),
            op: op_label(pt.op),
            kernel,
            measured_ns: pt.median_us * 1e3,
        });
    }
    if out.is_empty() {
        return Err(Error::input(format!(
            "{}: no measured GEMM or attention point (ops filled in by the roofline are not \
             measurements)",
            base.display()
        )));
    }
    Ok(out)
}

/// The label of a profile op in the residual table (as Vidur's are labelled).
fn op_label(op: Op) -> &'static str {
    match op {
        Op::GemmQkv => "qkv",
        Op::GemmO => "o",
        Op::GemmGateUp => "up",
        Op::GemmDown => "down",
        Op::GemmLmHead => "lm_head",
        Op::DecodeAttention => "decode_attention",
        Op::PrefillAttention => "prefill_attention",
        Op::CopyD2D | Op::CopyH2D | Op::CopyD2H => "copy",
    }
}
