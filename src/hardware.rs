//! GPU presets: memory, HBM bandwidth, dense bf16 throughput, host link, NVLink and price.

use crate::error::{Error, Result};
use crate::scenario::HardwareSpec;
use serde::Serialize;

/// One GPU as the cost model sees it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Gpu {
    /// Preset name.
    pub name: String,
    /// Device memory as the driver reports it, bytes.
    pub memory_bytes: u64,
    /// HBM bandwidth, bytes per second.
    pub hbm_bytes_per_s: f64,
    /// Dense bf16 tensor throughput, FLOP per second.
    pub bf16_flops: f64,
    /// Host link bandwidth per direction, bytes per second.
    pub host_link_bytes_per_s: f64,
    /// NVLink bandwidth per GPU and direction, bytes per second (0: none).
    pub nvlink_bytes_per_s: f64,
    /// Price per GPU-hour, US dollars.
    pub price_per_hour: f64,
    /// Fraction of HBM bandwidth the engine's attention kernels reach on this GPU: the
    /// default of `hardware.efficiency.attention_memory` (`docs/cost-model.md`).
    pub attention_memory: f64,
    /// Streaming multiprocessors (the datasheet's SM count).
    pub sms: u32,
    /// Whether vLLM's decode attention on this GPU is FlashAttention 2's split-KV kernel
    /// (Ampere and Ada), whose splits and waves of thread blocks kvsim models: the default
    /// of `hardware.efficiency.decode_splits` (`docs/cost-model.md`).
    pub fa2_decode: bool,
}

struct Preset {
    name: &'static str,
    memory_mib: u64,
    hbm_gbps: f64,
    bf16_tflops: f64,
    host_link_gbps: f64,
    nvlink_gbps: f64,
    price: f64,
    attention_memory: f64,
    sms: u32,
    fa2_decode: bool,
}

/// Datasheet figures; memory is what `nvidia-smi` reports. Prices are typical on-demand
/// cloud rates in 2025 and only a starting point: set `hardware.price_per_hour`.
/// `attention_memory`: Ampere and Ada 0.78, fitted to Vidur's A100 FlashAttention-2 decode
/// timings; Hopper and Blackwell 0.9, the H100 serving runs' decode steps (FlashAttention 3,
/// which vLLM uses there); see `docs/cost-model.md`. `sms` from NVIDIA's datasheets
/// (A100 108, H100 SXM and H200 132, L40S 142, B200 148). `fa2_decode`: vLLM 0.33 runs
/// FlashAttention 2 on Ampere and Ada (A100, L40S) and FlashAttention 3 on Hopper, whose
/// scheduling differs and has no kernel timings in `../shared`.
const PRESETS: &[Preset] = &[
    Preset {
        name: "a100-80gb",
        memory_mib: 81920,
        hbm_gbps: 2039.0,
        bf16_tflops: 312.0,
        host_link_gbps: 25.0,
        nvlink_gbps: 300.0,
        price: 1.80,
        attention_memory: 0.78,
        sms: 108,
        fa2_decode: true,
    },
    Preset {
        name: "h100-sxm",
        memory_mib: 81559,
        hbm_gbps: 3350.0,
        bf16_tflops: 989.0,
        host_link_gbps: 55.0,
        nvlink_gbps: 450.0,
        price: 2.50,
        attention_memory: 0.9,
        sms: 132,
        fa2_decode: false,
    },
    Preset {
        name: "h200",
        memory_mib: 143771,
        hbm_gbps: 4800.0,
        bf16_tflops: 989.0,
        host_link_gbps: 55.0,
        nvlink_gbps: 450.0,
        price: 3.50,
        attention_memory: 0.9,
        sms: 132,
        fa2_decode: false,
    },
    Preset {
        name: "l40s",
        memory_mib: 46068,
        hbm_gbps: 864.0,
        bf16_tflops: 362.0,
        host_link_gbps: 25.0,
        nvlink_gbps: 0.0,
        price: 1.00,
        attention_memory: 0.78,
        sms: 142,
        fa2_decode: true,
    },
    Preset {
        name: "b200",
        memory_mib: 183359,
        hbm_gbps: 8000.0,
        bf16_tflops: 2250.0,
        host_link_gbps: 110.0,
        nvlink_gbps: 900.0,
        price: 5.00,
        attention_memory: 0.9,
        sms: 148,
        fa2_decode: false,
    },
];

/// Names of the GPU presets.
pub fn preset_names() -> Vec<&'static str> {
    PRESETS.iter().map(|p| p.name).collect()
}

const GIB: f64 = 1024.0 * 1024.0 * 1024.0;

impl Gpu {
    /// The preset `name`, unchanged.
    pub fn preset(name: &str) -> Result<Gpu> {
        Gpu::from_spec(&HardwareSpec {
            gpu: name.to_string(),
            ..HardwareSpec::default()
        })
    }

    /// Build the GPU from the scenario's `hardware` section (preset plus overrides).
    pub fn from_spec(spec: &HardwareSpec) -> Result<Gpu> {
        let p = PRESETS
            .iter()
            .find(|p| p.name == spec.gpu.to_lowercase())
            .ok_or_else(|| {
                Error::input(format!(
                    "hardware.gpu: unknown GPU `{}`; known: {}",
                    spec.gpu,
                    preset_names().join(", ")
                ))
            })?;
        Ok(Gpu {
            name: p.name.to_string(),
            memory_bytes: spec
                .memory_gib
                .map(|g| (g * GIB) as u64)
                .unwrap_or(p.memory_mib * 1024 * 1024),
            hbm_bytes_per_s: spec.hbm_gbps.unwrap_or(p.hbm_gbps) * 1e9,
            bf16_flops: spec.bf16_tflops.unwrap_or(p.bf16_tflops) * 1e12,
            host_link_bytes_per_s: spec.host_link_gbps.unwrap_or(p.host_link_gbps) * 1e9,
            nvlink_bytes_per_s: spec.nvlink_gbps.unwrap_or(p.nvlink_gbps) * 1e9,
            price_per_hour: spec.price_per_hour.unwrap_or(p.price),
            attention_memory: p.attention_memory,
            sms: p.sms,
            fa2_decode: p.fa2_decode,
        })
    }

    /// vLLM 0.33.0's default `(max_num_batched_tokens, max_num_seqs)` for its OpenAI API
    /// server on this GPU (`vllm/engine/arg_utils.py`, `get_batch_defaults`): 16384 / 1024
    /// from 160 GiB of device memory; 8192 / 1024 from 70 GiB unless the device is an A100
    /// (H100, H200); otherwise 2048 / 256 (every A100, L40S and GPUs under 70 GiB).
    pub fn vllm_api_server_defaults(&self) -> (u32, u32) {
        let gib = self.memory_bytes as f64 / GIB;
        if gib >= 160.0 {
            (16384, 1024)
        } else if gib >= 70.0 && !self.name.contains("a100") {
            (8192, 1024)
        } else {
            (2048, 256)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn gpu(name: &str) -> Gpu {
        Gpu::from_spec(&HardwareSpec {
            gpu: name.into(),
            ..Default::default()
        })
        .unwrap()
    }

    #[test]
    fn vllm_defaults_by_memory_tier() {
        assert_eq!(gpu("h100-sxm").vllm_api_server_defaults(), (8192, 1024));
        assert_eq!(gpu("h200").vllm_api_server_defaults(), (8192, 1024));
        assert_eq!(gpu("a100-80gb").vllm_api_server_defaults(), (2048, 256));
        assert_eq!(gpu("l40s").vllm_api_server_defaults(), (2048, 256));
        assert_eq!(gpu("b200").vllm_api_server_defaults(), (16384, 1024));
    }

    #[test]
    fn overrides_and_unknown_names() {
        let spec = HardwareSpec {
            gpu: "h100-sxm".into(),
            memory_gib: Some(40.0),
            ..Default::default()
        };
        assert_eq!(
            Gpu::from_spec(&spec).unwrap().memory_bytes,
            40 * 1024 * 1024 * 1024
        );
        let spec = HardwareSpec {
            gpu: "tpu".into(),
            ..Default::default()
        };
        assert!(Gpu::from_spec(&spec)
            .unwrap_err()
            .to_string()
            .contains("h100-sxm"));
    }
}
