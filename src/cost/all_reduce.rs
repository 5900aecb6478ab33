//! The tensor-parallel all-reduce an engine runs, by algorithm.
//!
//! - [`AllReduce::Ring`]: NCCL's ring, `2 (n - 1) / n x S / W + 2 (n - 1) a`.
//! - [`AllReduce::Vllm`]: what vLLM 0.33.0 runs by default on GPUs joined by NVLink through
//!   an NVSwitch (`vllm/distributed/device_communicators/cuda_communicator.py`,
//!   `all_reduce`: the first implementation that takes the message), for `n` of 2, 4 or 8:
//!   1. FlashInfer's MNNVL all-reduce (`VLLM_ALLREDUCE_USE_FLASHINFER=1`; fused with the
//!      RMSNorm that follows by the default `fuse_allreduce_rms` pass), for `S` up to 64,
//!      2 and 0.5 MiB at `n` 2, 4, 8 (`allreduce_rms_fusion.py`, capability 9.0).
//!      One-shot when `n S <= 1 MiB` (FlashInfer `MNNVL_ONE_SHOT_THRESHOLD`): every GPU
//!      multicasts its data and waits for the others', `a + (n - 1) S / W`. Two-shot
//!      otherwise: reduce-scatter then all-gather, two waits, `2 a + 2 (n - 1) / n x S / W`.
//!   2. vLLM's custom all-reduce, for `S` under 8, 8 and 0.25 MiB (its 8 MiB `max_size`,
//!      capped by `CUSTOM_ALL_REDUCE_MAX_SIZES`). One stage (every GPU reads every
//!      other's buffer) when `n = 2`, or `n <= 4` and `S < 512 KiB`, or `S < 256 KiB`:
//!      `2 a + (n - 1) S / W`; two stages otherwise: `2 a + 2 (n - 1) / n x S / W`; two
//!      cross-GPU barriers either way.
//!   3. PyTorch's symmetric-memory multimem all-reduce (`VLLM_ALLREDUCE_USE_SYMM_MEM=1`),
//!      for `S` up to 64, 32 and 64 MiB: a multicast reduce-load and store of each GPU's
//!      `S / n` slice between two barriers, `2 a + (1 + 1 / n) S / W` (its copies in and
//!      out of the symmetric buffer are local and left out).
//!   4. NCCL (the ring) beyond, for other `n`, and without an NVSwitch.
//!
//! `a` is the latency between two GPUs (the topology's route, one wait or barrier each) and
//! `W` the narrowest bandwidth of one direction of a GPU's links.

use crate::cluster::topology::{ring_all_reduce_ns, Route};
use serde::{Deserialize, Serialize};

const KIB: f64 = 1024.0;
const MIB: f64 = 1024.0 * 1024.0;

/// Which all-reduce algorithm prices tensor parallelism (`engine.all_reduce`).
#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum AllReduce {
    /// vLLM 0.33.0's choice by message size (FlashInfer, custom, symmetric memory, NCCL).
    #[default]
    Vllm,
    /// NCCL's ring for every message.
    Ring,
}

impl AllReduce {
    /// Time of one all-reduce of `bytes` over `n` GPUs joined by `link`; `nvswitch`: every
    /// pair of them is joined by NVLink through an NVSwitch (one node).
    pub fn time_ns(self, n: u32, bytes: f64, link: &Route, nvswitch: bool) -> f64 {
        if n <= 1 {
            return 0.0;
        }
        let (a, per_byte) = (link.latency_ns, 1e9 / link.bytes_per_s);
        let nf = n as f64;
        let vllm = matches!(self, AllReduce::Vllm) && nvswitch && matches!(n, 2 | 4 | 8);
        if !vllm {
            return ring_all_reduce_ns(n, bytes, link);
        }
        let flashinfer_max = match n {
            2 => 64.0 * MIB,
            4 => 2.0 * MIB,
            _ => 0.5 * MIB,
        };
        let custom_max = if n == 8 { 256.0 * KIB } else { 8.0 * MIB };
        let symm_max = if n == 4 { 32.0 * MIB } else { 64.0 * MIB };
        let two_shot = 2.0 * a + 2.0 * (nf - 1.0) / nf * bytes * per_byte;
        if bytes <= flashinfer_max {
            if nf * bytes <= MIB {
                a + (nf - 1.0) * bytes * per_byte
            } else {
                two_shot
            }
        } else if bytes < custom_max {
            let one_stage = n == 2 || (n <= 4 && bytes < 512.0 * KIB) || bytes < 256.0 * KIB;
            if one_stage {
                2.0 * a + (nf - 1.0) * bytes * per_byte
            } else {
                two_shot
            }
        } else if bytes <= symm_max {
            2.0 * a + (1.0 + 1.0 / nf) * bytes * per_byte
        } else {
            ring_all_reduce_ns(n, bytes, link)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// H100 NVLink through the switch: 450 GB/s, 2 us.
    fn nvlink() -> Route {
        Route {
            bytes_per_s: 450e9,
            latency_ns: 2000.0,
            hops: 2,
        }
    }

    fn close(a: f64, b: f64) {
        assert!((a - b).abs() < 1e-6, "{a} != {b}");
    }

    #[test]
    fn each_size_takes_vllms_implementation() {
        let l = nvlink();
        let v = |n, s| AllReduce::Vllm.time_ns(n, s, &l, true);
        let ns = |bytes: f64| bytes / 450e9 * 1e9;
        // TP 4, 64 decode tokens of Llama-2-70B (1 MiB): FlashInfer two-shot.
        close(v(4, MIB), 4000.0 + 1.5 * ns(MIB));
        // 16 tokens (256 KiB): 4 x 256 KiB <= 1 MiB, FlashInfer one-shot.
        close(v(4, 256.0 * KIB), 2000.0 + 3.0 * ns(256.0 * KIB));
        // 4 MiB: past FlashInfer's 2 MiB, custom all-reduce in two stages.
        close(v(4, 4.0 * MIB), 4000.0 + 1.5 * ns(4.0 * MIB));
        // 16 MiB: symmetric memory's multimem.
        close(v(4, 16.0 * MIB), 4000.0 + 1.25 * ns(16.0 * MIB));
        // 48 MiB: NCCL's ring.
        close(v(4, 48.0 * MIB), 1.5 * ns(48.0 * MIB) + 6.0 * 2000.0);
        // TP 8, 300 KiB: within FlashInfer's 0.5 MiB, two-shot since 8 x 300 KiB > 1 MiB.
        close(v(8, 300.0 * KIB), 4000.0 + 1.75 * ns(300.0 * KIB));
        // TP 8, 1 MiB: past FlashInfer's 0.5 MiB and the custom 256 KiB: multimem.
        close(v(8, MIB), 4000.0 + 1.125 * ns(MIB));
        // TP 2, 32 MiB: FlashInfer two-shot all the way to 64 MiB.
        close(v(2, 32.0 * MIB), 4000.0 + ns(32.0 * MIB));
    }

    #[test]
    fn the_ring_elsewhere() {
        let l = nvlink();
        let ring = ring_all_reduce_ns(4, MIB, &l);
        close(ring, 1.5 * MIB / 450e9 * 1e9 + 12_000.0);
        // Without an NVSwitch, at TP 6, or when asked for: the ring.
        assert_eq!(AllReduce::Vllm.time_ns(4, MIB, &l, false), ring);
        assert_eq!(
            AllReduce::Vllm.time_ns(6, MIB, &l, true),
            ring_all_reduce_ns(6, MIB, &l)
        );
        assert_eq!(AllReduce::Ring.time_ns(4, MIB, &l, true), ring);
        assert_eq!(AllReduce::Vllm.time_ns(1, MIB, &l, true), 0.0);
        // vLLM's choice is never slower than the ring on these sizes.
        for kib in [16.0, 256.0, 1024.0, 3000.0, 9000.0, 30000.0] {
            for n in [2, 4, 8] {
                let s = kib * KIB;
                assert!(AllReduce::Vllm.time_ns(n, s, &l, true) <= ring_all_reduce_ns(n, s, &l));
            }
        }
    }
}
