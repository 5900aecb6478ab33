//! Resolving a scenario into a concrete engine: defaults by GPU class, the KV memory plan
//! and the cost model.

use super::scheduler::SchedulerConfig;
use crate::error::{Error, Result};
use crate::hardware::Gpu;
use crate::model::Model;
use crate::scenario::Scenario;
use serde::Serialize;

const GIB: f64 = 1024.0 * 1024.0 * 1024.0;

/// Most blocks one replica may have (about 3 GiB of block metadata).
pub const MAX_BLOCKS: u64 = 1 << 27;

/// How the KV cache size was obtained.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct MemoryPlan {
    /// Device memory, bytes.
    pub gpu_memory_bytes: u64,
    /// `gpu_memory_utilization`.
    pub utilization: f64,
    /// Weights, bytes.
    pub weight_bytes: u64,
    /// Activation peak, bytes.
    pub activation_bytes: u64,
    /// Memory outside PyTorch, bytes.
    pub non_torch_bytes: u64,
    /// Bytes of one KV block (all layers).
    pub block_bytes: u64,
    /// Blocks in the pool, including vLLM's null block.
    pub num_gpu_blocks: u64,
    /// True when `num_gpu_blocks` was given explicitly.
    pub explicit: bool,
}

impl MemoryPlan {
    /// KV cache capacity in tokens (usable blocks times block size).
    pub fn capacity_tokens(&self, block_size: u32) -> u64 {
        (self.num_gpu_blocks - 1) * block_size as u64
    }
}

/// Everything the engine needs, resolved from a scenario.
#[derive(Debug, Clone)]
pub struct EngineSetup {
    /// The model.
    pub model: Model,
    /// The GPU.
    pub gpu: Gpu,
    /// Scheduler limits with defaults filled in.
    pub scheduler: SchedulerConfig,
    /// KV memory plan.
    pub memory: MemoryPlan,
    /// Tokens per block.
    pub block_size: u32,
    /// Prefix caching on.
    pub enable_prefix_caching: bool,
    /// Free-queue placement of unhashed blocks.
    pub free_unhashed_first: bool,
}

impl EngineSetup {
    /// Resolve a scenario.
    pub fn from_scenario(s: &Scenario) -> Result<EngineSetup> {
        let model = Model::from_spec(&s.model)?;
        let gpu = Gpu::from_spec(&s.hardware)?;
        let e = &s.engine;
        let (default_tokens, default_seqs) = gpu.vllm_api_server_defaults();
        let max_model_len = e.max_model_len.unwrap_or(model.max_position);
        // vLLM's defaults for the OpenAI API server (EngineArgs._set_default_args).
        let max_num_batched_tokens = match e.max_num_batched_tokens {
            Some(v) => v,
            None if !e.enable_chunked_prefill => max_model_len.max(2048),
            None => default_tokens,
        };
        let max_num_seqs = e.max_num_seqs.unwrap_or(default_seqs);
        if !e.enable_chunked_prefill && max_num_batched_tokens < max_model_len {
            return Err(Error::input(format!(
                "engine.max_num_batched_tokens: {max_num_batched_tokens} is smaller than max_model_len {max_model_len}, which vLLM refuses without chunked prefill"
            )));
        }
        let k = &s.kv_cache;
        let block_bytes = k.block_size as u64 * model.kv_bytes_per_token();
        let activation_bytes = match k.activation_gib {
            Some(g) => (g * GIB) as u64,
            None => activation_peak(&model, max_num_batched_tokens, max_num_seqs),
        };
        let non_torch_bytes = (k.non_torch_gib * GIB) as u64;
        let weight_bytes = model.weight_bytes();
        let (num_gpu_blocks, explicit) = match k.num_gpu_blocks {
            Some(n) => (n, true),
            None => {
                let budget = gpu.memory_bytes as f64 * k.gpu_memory_utilization;
                let left =
                    budget - weight_bytes as f64 - activation_bytes as f64 - non_torch_bytes as f64;
                let n = if left > 0.0 {
                    (left / block_bytes as f64).floor() as u64
                } else {
                    0
                };
                if n < 2 {
                    return Err(Error::input(format!(
                        "model {} does not fit on {}: {:.1} GiB budget ({} x {:.2}) minus weights {:.1} GiB, activations {:.1} GiB and {:.1} GiB other leaves no room for KV blocks of {:.1} MiB",
                        model.name,
                        gpu.name,
                        budget / GIB,
                        gpu.name,
                        k.gpu_memory_utilization,
                        weight_bytes as f64 / GIB,
                        activation_bytes as f64 / GIB,
                        non_torch_bytes as f64 / GIB,
                        block_bytes as f64 / (1024.0 * 1024.0)
                    )));
                }
                (n, false)
            }
        };
        if num_gpu_blocks > MAX_BLOCKS {
            return Err(Error::input(format!(
                "kv_cache.num_gpu_blocks: {num_gpu_blocks} blocks is more than the simulator holds ({MAX_BLOCKS}); use larger blocks"
            )));
        }
        let memory = MemoryPlan {
            gpu_memory_bytes: gpu.memory_bytes,
            utilization: k.gpu_memory_utilization,
            weight_bytes,
            activation_bytes,
            non_torch_bytes,
            block_bytes,
            num_gpu_blocks,
            explicit,
        };
        let scheduler = SchedulerConfig {
            max_num_batched_tokens,
            max_num_seqs,
            enable_chunked_prefill: e.enable_chunked_prefill,
            long_prefill_token_threshold: e.long_prefill_token_threshold,
            max_model_len,
            full_prompt_admission: e.full_prompt_admission,
            watermark_blocks: (e.watermark * num_gpu_blocks as f64) as u32,
        };
        Ok(EngineSetup {
            model,
            gpu,
            scheduler,
            memory,
            block_size: k.block_size,
            enable_prefix_caching: k.enable_prefix_caching,
            free_unhashed_first: k.free_unhashed_first,
        })
    }
}

/// Estimated activation peak of vLLM's profiling run: `tokens` tokens through one layer's
/// widest intermediates (kept alive together: input, QKV, attention output, gate/up and
/// activation output) plus fp32 logits (and their softmax) for `seqs` sampled sequences.
pub fn activation_peak(model: &Model, tokens: u32, seqs: u32) -> u64 {
    let b = model.dtype_bytes as u64;
    let per_token = 4 * model.hidden as u64
        + (model.heads + 2 * model.kv_heads) as u64 * model.head_dim as u64
        + 3 * model.intermediate as u64;
    tokens as u64 * per_token * b + seqs as u64 * model.vocab as u64 * 8
}
