//! SGLang 0.5.23's defaults and KV memory plan for a scenario: `chunked_prefill_size` and
//! the CUDA-graph batch sizes by device memory (`srt/arg_groups/memory_hook.py:89-177`),
//! `mem_fraction_static` from the memory it reserves (`memory_hook.py:270-343`,
//! `reserve_for_graph_mb` 357-397), the token slots of the KV pool
//! (`mem_cache/kv_cache_configurator.py`, `max_total_num_tokens`) and
//! `max_running_requests` from them (`kv_cache_configurator.py:3119-3132`).

use super::config::{SchedulePolicy, SglangConfig, POLICY_NAMES};
use crate::error::{Error, Result};
use crate::hardware::Gpu;
use crate::model::Model;
use crate::scenario::Scenario;

const MIB: f64 = 1024.0 * 1024.0;

/// `--max-prefill-tokens` default (`arg_groups/fields/schedule.py:71-81`).
pub const DEFAULT_MAX_PREFILL_TOKENS: u32 = 16384;

/// How SGLang sized the KV pool.
#[derive(Debug, Clone, PartialEq)]
pub struct SglangPlan {
    /// The engine's settings.
    pub config: SglangConfig,
    /// `mem_fraction_static` (given or derived).
    pub mem_fraction_static: f64,
    /// Memory SGLang keeps out of the static pool (activations, graphs, metadata), MiB;
    /// 0 when `mem_fraction_static` was given.
    pub reserved_mib: f64,
    /// Bytes of one KV page on one GPU (every layer's K and V of `page_size` tokens).
    pub page_bytes: u64,
    /// The pool was capped by `kv_cache.max_total_tokens`.
    pub explicit: bool,
}

/// `chunked_prefill_size` and the decode CUDA graph's largest batch by device memory
/// (MiB) and tensor-parallel degree (`_handle_gpu_memory_settings`).
pub fn gpu_memory_defaults(gpu_mib: f64, tp: u32) -> (u32, u32) {
    let g = |gib: f64| gpu_mib < gib * 1024.0;
    if g(20.0) {
        (2048, 8)
    } else if g(35.0) {
        (4096, if tp < 4 { 48 } else { 160 })
    } else if g(60.0) {
        (4096, if tp < 4 { 32 } else { 160 })
    } else if g(160.0) {
        (8192, if tp < 4 { 256 } else { 512 })
    } else {
        (16384, 512)
    }
}

/// Batch sizes (tokens) the prefill CUDA graph captures up to `max_bs`
/// (`generate_prefill_cuda_graph_batch_sizes`, `cuda_graph_hook.py:480-497`).
pub fn prefill_graph_sizes(max_bs: u32) -> usize {
    let ranges: [(u32, u32, u32); 6] = [
        (4, 32, 4),
        (48, 256, 16),
        (288, 512, 32),
        (576, 1024, 64),
        (1280, 4096, 256),
        (4608, u32::MAX, 512),
    ];
    ranges
        .iter()
        .map(|&(lo, hi, step)| {
            let hi = hi.min(max_bs);
            if hi < lo {
                0
            } else {
                ((hi - lo) / step + 1) as usize
            }
        })
        .sum()
}

/// Memory SGLang reserves outside the static pool, MiB (non-post-capture sizing, the
/// default): metadata, activations of one chunk, parallel slack, CUDA graphs; at least
/// 10 GiB on GPUs above 60 GiB.
pub fn reserved_mib(
    gpu_mib: f64,
    tp: u32,
    pp: u32,
    activation_tokens: u32,
    graphs: (u32, usize),
) -> f64 {
    let (decode_max_bs, prefill_sizes) = graphs;
    let mut r = 512.0 + activation_tokens.max(2048) as f64 * 1.5;
    r += (tp * pp) as f64 / 8.0 * 1024.0;
    r += decode_max_bs as f64 * 2.0 + prefill_sizes as f64 * 8.0;
    if gpu_mib > 60.0 * 1024.0 {
        r = r.max(10.0 * 1024.0);
    }
    r
}

/// `max_running_requests` for a pool of `tokens` slots: the given value or
/// `clamp(tokens / context_len * 512, 2048, 4096)`, at most half the slots.
pub fn max_running_requests(given: Option<u32>, tokens: u64, context_len: u32) -> u64 {
    let by_pool = tokens / 2;
    match given {
        Some(m) => (m as u64).min(by_pool),
        None => {
            let by_context = (tokens as f64 / context_len as f64 * 512.0) as u64;
            by_context.clamp(2048, 4096).min(by_pool)
        }
    }
}

/// `chunked_prefill_size`: `given` or the GPU's default; `None` (off) for -1 or 0; a
/// multiple of the page size, as SGLang asserts at startup
/// (`arg_groups/validation_hook.py:243-246`).
fn resolve_chunk(
    given: Option<i64>,
    default: u32,
    page_size: u32,
    gpu: &str,
) -> Result<Option<u32>> {
    let chunk =
        match given {
            None => Some(default),
            Some(c) if c <= 0 => None,
            Some(c) => Some(u32::try_from(c).map_err(|_| {
                Error::input(format!("engine.chunked_prefill_size: {c} is too large"))
            })?),
        };
    if let Some(c) = chunk.filter(|c| c % page_size != 0) {
        let which = match given {
            Some(_) => String::new(),
            None => format!(" (the default on {gpu})"),
        };
        return Err(Error::input(format!(
            "engine.chunked_prefill_size: {c}{which} is not a multiple of kv_cache.page_size {page_size} (SGLang requires it)"
        )));
    }
    Ok(chunk)
}

/// Resolve SGLang's settings for a scenario on `gpu`, for the part of `model` one GPU
/// holds (`shard`).
pub fn resolve(s: &Scenario, model: &Model, shard: &Model, gpu: &Gpu) -> Result<SglangPlan> {
    let (e, k) = (&s.engine, &s.kv_cache);
    let (tp, pp) = (e.tensor_parallel_size, e.pipeline_parallel_size);
    let gpu_mib = gpu.memory_bytes as f64 / MIB;
    let (default_chunk, mut decode_max_bs) = gpu_memory_defaults(gpu_mib, tp);
    let page_size = k.page_size.unwrap_or(1);
    let chunk = resolve_chunk(e.chunked_prefill_size, default_chunk, page_size, &gpu.name)?;
    let max_prefill_tokens = e.max_prefill_tokens.unwrap_or(DEFAULT_MAX_PREFILL_TOKENS);
    if let Some(m) = e.max_running_requests {
        decode_max_bs = decode_max_bs.min(m);
    }
    let activation_tokens = chunk.unwrap_or(max_prefill_tokens);
    let graphs = (decode_max_bs, prefill_graph_sizes(activation_tokens));
    let (mem_fraction_static, reserved) = match k.mem_fraction_static {
        Some(f) => (f, 0.0),
        None => {
            let r = reserved_mib(gpu_mib, tp, pp, activation_tokens, graphs);
            (((gpu_mib - r) / gpu_mib * 1000.0).round() / 1000.0, r)
        }
    };
    let cell = shard.kv_bytes_per_token();
    // Free memory before the weights load (the device less the CUDA context and other
    // memory outside PyTorch) times the static share, less the weights.
    let before_load = gpu.memory_bytes as f64 - k.non_torch_gib * 1024.0 * MIB;
    let rest = before_load * mem_fraction_static - shard.weight_bytes() as f64;
    let mut tokens = if rest > 0.0 {
        (rest / cell as f64).floor() as u64
    } else {
        0
    };
    tokens = tokens / page_size as u64 * page_size as u64;
    if let Some(cap) = k.max_total_tokens {
        tokens = tokens.min(cap / page_size as u64 * page_size as u64);
    }
    if tokens < 2 * page_size as u64 {
        return Err(Error::input(format!(
            "model {} does not fit on {} with SGLang (TP {tp}, PP {pp}): {:.1} GiB before the weights x mem_fraction_static {mem_fraction_static} minus weights {:.1} GiB leaves no KV token slots of {} bytes",
            model.name,
            gpu.name,
            before_load / (1024.0 * MIB),
            shard.weight_bytes() as f64 / (1024.0 * MIB),
            cell
        )));
    }
    let context_len = e.context_length.unwrap_or(model.max_position);
    let max_running = max_running_requests(e.max_running_requests, tokens, context_len);
    let policy = e.schedule_policy.as_deref().unwrap_or("fcfs");
    let schedule_policy = SchedulePolicy::parse(policy).ok_or_else(|| {
        Error::input(format!(
            "engine.schedule_policy: unknown policy `{policy}`; known: {POLICY_NAMES}"
        ))
    })?;
    let config = SglangConfig {
        page_size,
        max_total_tokens: tokens,
        max_running_requests: max_running.min(u32::MAX as u64) as u32,
        max_prefill_tokens,
        chunked_prefill_size: chunk,
        schedule_policy,
        schedule_conservativeness: e.schedule_conservativeness.unwrap_or(1.0),
        context_len,
        ignore_eos: e.ignore_eos.unwrap_or(false),
        disable_overlap_schedule: e.disable_overlap_schedule.unwrap_or(false),
        seed: s.seed,
    };
    Ok(SglangPlan {
        config,
        mem_fraction_static,
        reserved_mib: reserved,
        page_bytes: cell * page_size as u64,
        explicit: k.max_total_tokens.is_some(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn h100_and_h200_fractions_as_sglang_derives_them() {
        // H100 80GB: 81559 MiB; H200 141GB: 143771 MiB (torch totals), TP 1, chunk 8192.
        for (mib, want) in [(81559.0, 0.830), (143771.0, 0.903)] {
            let (chunk, bs) = gpu_memory_defaults(mib, 1);
            assert_eq!((chunk, bs), (8192, 256));
            assert_eq!(prefill_graph_sizes(chunk), 58);
            let r = reserved_mib(mib, 1, 1, chunk, (bs, 58));
            // 512 + 1.5 * 8192 + 128 + 512 + 464
            assert_eq!(r, 13904.0);
            assert_eq!((((mib - r) / mib) * 1000.0).round() / 1000.0, want);
        }
    }

    #[test]
    fn small_gpus_take_smaller_chunks_and_the_10_gib_floor_only_above_60_gib() {
        assert_eq!(gpu_memory_defaults(16_000.0, 1), (2048, 8));
        assert_eq!(gpu_memory_defaults(46_000.0, 1), (4096, 32));
        assert_eq!(gpu_memory_defaults(46_000.0, 4), (4096, 160));
        assert_eq!(gpu_memory_defaults(200_000.0, 1), (16384, 512));
        // 4096: 8 + 14 + 8 + 8 + 12 sizes.
        assert_eq!(prefill_graph_sizes(4096), 50);
        let r = reserved_mib(46_000.0, 1, 1, 4096, (32, 50));
        assert_eq!(r, 512.0 + 6144.0 + 128.0 + 64.0 + 400.0);
        assert_eq!(reserved_mib(81559.0, 1, 1, 2048, (8, 0)), 10240.0);
    }
}
