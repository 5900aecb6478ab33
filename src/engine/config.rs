//! Resolving a scenario into a concrete engine: defaults by GPU class, the KV memory plan
//! and the cost model.

use super::kv_groups::KvGroups;
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
    /// Weights on one GPU, bytes.
    pub weight_bytes: u64,
    /// Activation peak, bytes.
    pub activation_bytes: u64,
    /// Memory outside PyTorch, bytes.
    pub non_torch_bytes: u64,
    /// Bytes of one KV block on one GPU (its KV heads, the layers of one KV cache group
    /// of its stage: every layer unless the model is hybrid).
    pub block_bytes: u64,
    /// The KV cache groups sharing the pool ([`KvGroups::describe`]).
    pub kv_cache_groups: String,
    /// How many of the groups attend to the full context (each holds a block per
    /// `block_size` tokens of a request; local groups hold a bounded number).
    pub full_attention_groups: u32,
    /// Blocks in the pool, including vLLM's null block. Each GPU of a replica holds its
    /// slice of every block (its KV heads and layers), so the count is per replica.
    pub num_gpu_blocks: u64,
    /// GPUs per replica (tensor times pipeline parallel).
    pub gpus_per_replica: u32,
    /// True when `num_gpu_blocks` was given explicitly.
    pub explicit: bool,
}

impl MemoryPlan {
    /// KV cache capacity in tokens: usable blocks times block size, shared by the
    /// full-attention groups (a hybrid model's local groups, bounded per request, left out).
    pub fn capacity_tokens(&self, block_size: u32) -> u64 {
        (self.num_gpu_blocks - 1) * block_size as u64 / self.full_attention_groups.max(1) as u64
    }
}

/// How one replica is split over GPUs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Parallelism {
    /// Tensor-parallel degree.
    pub tp: u32,
    /// Pipeline stages.
    pub pp: u32,
    /// Micro-batches per step when `pp > 1`.
    pub micro_batches: u32,
    /// Data-parallel engine cores per deployment (`data_parallel_size`).
    pub dp: u32,
    /// Routed experts split whole over the deployment's GPUs (`enable_expert_parallel`).
    pub expert_parallel: bool,
}

impl Parallelism {
    /// GPUs of one engine core (one data-parallel rank): `tp x pp`.
    pub fn gpus(&self) -> u32 {
        self.tp * self.pp
    }
}

/// Everything the engine needs, resolved from a scenario.
#[derive(Debug, Clone)]
pub struct EngineSetup {
    /// The model.
    pub model: Model,
    /// The part of the model on one GPU ([`Model::shard`]).
    pub shard: Model,
    /// Tensor and pipeline parallelism.
    pub parallel: Parallelism,
    /// Preemption by swapping to host memory: the swap space in blocks (per replica), or
    /// `None` for recompute.
    pub swap_blocks: Option<u64>,
    /// Blocks of the CPU offloading tier and its policy, if any.
    pub cpu_offload: Option<(u64, String)>,
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
    /// Token-level compression, if any.
    pub token_policy: Option<super::token_policy::TokenPolicy>,
    /// The KV cache groups (one block table each).
    pub kv_groups: KvGroups,
    /// SGLang's resolved settings when `engine.kind` is `sglang` (then the vLLM scheduler
    /// and block settings above are unused).
    pub sglang: Option<super::sglang::config::SglangConfig>,
}

impl EngineSetup {
    /// Resolve a scenario.
    pub fn from_scenario(s: &Scenario) -> Result<EngineSetup> {
        let model = Model::from_spec(&s.model)?.with_kv_cache_dtype(&s.kv_cache.cache_dtype)?;
        let missing = model.unmodelled_features();
        if !missing.is_empty() {
            return Err(Error::input(format!(
                "model.preset: {} has {}, whose KV cache groups and step cost kvsim does not model yet; `kvsim model show {}` describes its weights and KV bytes",
                model.name,
                missing.join(" and "),
                model.name
            )));
        }
        let gpu = Gpu::from_spec(&s.hardware)?;
        let e = &s.engine;
        let shard = model.shard_parallel(
            e.tensor_parallel_size,
            e.pipeline_parallel_size,
            e.data_parallel_size,
            e.enable_expert_parallel,
        )?;
        let parallel = Parallelism {
            tp: e.tensor_parallel_size,
            pp: e.pipeline_parallel_size,
            micro_batches: e.pipeline_micro_batches.unwrap_or(e.pipeline_parallel_size),
            dp: e.data_parallel_size,
            expert_parallel: e.enable_expert_parallel,
        };
        if parallel.micro_batches == 0 {
            return Err(Error::input(
                "engine.pipeline_micro_batches: must be at least 1".to_string(),
            ));
        }
        let (default_tokens, default_seqs) = gpu.vllm_api_server_defaults();
        let max_model_len = e.max_model_len.unwrap_or(model.max_position);
        // vLLM's defaults for the OpenAI API server (EngineArgs._set_default_args).
        let max_num_batched_tokens = match e.max_num_batched_tokens {
            Some(v) => v,
            None if !e.enable_chunked_prefill => max_model_len.max(default_tokens),
            None => default_tokens,
        };
        let max_num_seqs = e.max_num_seqs.unwrap_or(default_seqs);
        if !e.enable_chunked_prefill && max_num_batched_tokens < max_model_len {
            return Err(Error::input(format!(
                "engine.max_num_batched_tokens: {max_num_batched_tokens} is smaller than max_model_len {max_model_len}, which vLLM refuses without chunked prefill"
            )));
        }
        let k = &s.kv_cache;
        let token_policy = match &k.token_policy {
            Some(t) => super::token_policy::TokenPolicy::from_spec(t, &model)?,
            None => None,
        };
        // A block holds `block_size` tokens at the stored size (quantized, with metadata)
        // in every layer of one group.
        // vLLM 0.33 (`VllmConfig`) disables the hybrid manager for chunked local attention.
        let disable = k
            .disable_hybrid_kv_cache_manager
            .unwrap_or(model.arch.chunked_local.is_some());
        let kv_groups = KvGroups::plan(&shard, !disable);
        if kv_groups.is_hybrid() {
            refuse_with_hybrid_groups(s, &model)?;
        }
        // Linear attention: vLLM's aligned block size and padded state page.
        let mamba = super::kv_groups::MambaLayout::for_scenario(&shard, k, !disable)?;
        let block_size = mamba.map_or(k.block_size, |m| m.block_size);
        let factor = token_policy.as_ref().map_or(1.0, |t| t.memory_factor());
        let page = block_size as u64 * shard.kv_bytes_per_token_layer();
        let block_bytes = (kv_groups.bytes_per_block(page) as f64 * factor).ceil() as u64;
        let activation_bytes = match k.activation_gib {
            Some(g) => (g * GIB) as u64,
            None => activation_peak(&shard, max_num_batched_tokens, max_num_seqs),
        };
        let non_torch_bytes = (k.non_torch_gib * GIB) as u64;
        let weight_bytes = shard.weight_bytes();
        if e.kind == "sglang" && (kv_groups.is_hybrid() || mamba.is_some()) {
            return Err(Error::input(format!(
                "engine.kind: model {} has sliding-window, chunked-local or linear-attention layers; kvsim's SGLang engine models full attention only (SGLang keeps such layers in separate pools)",
                model.name
            )));
        }
        let sglang = match e.kind.as_str() {
            "sglang" => Some(super::sglang::plan::resolve(s, &model, &shard, &gpu)?),
            _ => None,
        };
        let (num_gpu_blocks, explicit) = match (&sglang, k.num_gpu_blocks) {
            (Some(p), _) => (
                p.config.max_total_tokens / p.config.page_size as u64 + 1,
                p.explicit,
            ),
            (None, Some(n)) => (n, true),
            (None, None) => {
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
                        "model {} does not fit on {} (TP {}, PP {}): {:.1} GiB budget per GPU ({} x {:.2}) minus weights {:.1} GiB, activations {:.1} GiB and {:.1} GiB other leaves no room for KV blocks of {:.1} MiB",
                        model.name,
                        gpu.name,
                        parallel.tp,
                        parallel.pp,
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
            utilization: sglang
                .as_ref()
                .map_or(k.gpu_memory_utilization, |p| p.mem_fraction_static),
            weight_bytes,
            activation_bytes: sglang.as_ref().map_or(activation_bytes, |p| {
                (p.reserved_mib * 1024.0 * 1024.0) as u64
            }),
            non_torch_bytes,
            block_bytes: sglang.as_ref().map_or(block_bytes, |p| p.page_bytes),
            kv_cache_groups: kv_groups.describe(),
            full_attention_groups: kv_groups
                .kinds
                .iter()
                .filter(|&&k| k == crate::model::LayerAttention::Full)
                .count() as u32,
            num_gpu_blocks,
            gpus_per_replica: parallel.gpus(),
            explicit,
        };
        let gpus = parallel.gpus() as f64;
        let swap_blocks = (e.preemption_mode == crate::scenario::PreemptionMode::Swap)
            .then(|| (e.swap_space_gib * GIB / block_bytes as f64).floor() as u64);
        let cpu_offload = match &k.cpu_offload {
            None => None,
            Some(c) => {
                let entry = crate::paging::policies::entry(&c.policy)
                    .map_err(|e| Error::input(format!("kv_cache.cpu_offload.policy: {e}")))?;
                if entry.prediction.is_some() {
                    return Err(Error::input(format!(
                        "kv_cache.cpu_offload.policy: `{}` needs predictions; use lru, arc or another policy without them",
                        c.policy
                    )));
                }
                // The tier's GiB hold whole blocks: every GPU's slice.
                let blocks = (c.gib * GIB / (block_bytes as f64 * gpus)).floor() as u64;
                if c.gib.is_nan() || c.gib <= 0.0 || blocks == 0 {
                    return Err(Error::input(format!(
                        "kv_cache.cpu_offload.gib: {} GiB holds no block of {:.2} MiB",
                        c.gib,
                        block_bytes as f64 * gpus / (1024.0 * 1024.0)
                    )));
                }
                Some((blocks.min(MAX_BLOCKS), c.policy.clone()))
            }
        };
        let scheduler = SchedulerConfig {
            max_num_batched_tokens,
            max_num_seqs,
            enable_chunked_prefill: e.enable_chunked_prefill,
            long_prefill_token_threshold: e.long_prefill_token_threshold,
            max_model_len,
            full_prompt_admission: e.full_prompt_admission,
            watermark_blocks: (e.watermark * num_gpu_blocks as f64) as u32,
            swap_blocks,
            long_prefill_token_threshold_adaptive: e.long_prefill_token_threshold_adaptive,
            async_scheduling: resolve_async_scheduling(e.async_scheduling, parallel)?,
        };
        Ok(EngineSetup {
            model,
            shard,
            parallel,
            swap_blocks,
            cpu_offload,
            gpu,
            scheduler,
            memory,
            block_size: sglang.as_ref().map_or(block_size, |p| p.config.page_size),
            enable_prefix_caching: k.enable_prefix_caching,
            free_unhashed_first: k.free_unhashed_first,
            token_policy,
            kv_groups,
            sglang: sglang.map(|p| p.config),
        })
    }
}

/// The features kvsim models for one full-attention group only, refused for a hybrid
/// model (several KV cache groups) with the key to change.
fn refuse_with_hybrid_groups(s: &Scenario, model: &Model) -> Result<()> {
    let k = &s.kv_cache;
    let clash = if k.token_policy.is_some() {
        Some("kv_cache.token_policy")
    } else if k.cpu_offload.is_some() {
        Some("kv_cache.cpu_offload")
    } else if k.eviction != "vllm" {
        Some("kv_cache.eviction")
    } else if s.engine.preemption_mode == crate::scenario::PreemptionMode::Swap {
        Some("engine.preemption_mode")
    } else {
        None
    };
    match clash {
        Some(key) if model.arch.linear_attention.is_some() => Err(Error::input(format!(
            "{key}: kvsim models this only for one full-attention KV cache group, and {} has linear-attention layers in groups of their own",
            model.name
        ))),
        Some(key) => Err(Error::input(format!(
            "{key}: kvsim models this only for one full-attention KV cache group, and {} has sliding-window or chunked-local layers in groups of their own; set kv_cache.disable_hybrid_kv_cache_manager: true to allocate them as full attention",
            model.name
        ))),
        None => Ok(()),
    }
}

/// vLLM 0.33's resolution of `async_scheduling` (`VllmConfig`): on by default for generate
/// models, off by default with pipeline parallelism (the V1 model runner does not support
/// the combination), and an error if asked for explicitly there.
fn resolve_async_scheduling(asked: Option<bool>, p: Parallelism) -> Result<bool> {
    match asked {
        Some(true) if p.pp > 1 => Err(Error::input(format!(
            "engine.async_scheduling: vLLM 0.33 does not support asynchronous scheduling with pipeline parallelism (pipeline_parallel_size {}); set it to false",
            p.pp
        ))),
        Some(v) => Ok(v),
        None => Ok(p.pp == 1),
    }
}

/// Estimated activation peak of vLLM's profiling run: `tokens` tokens through one layer's
/// widest intermediates (kept alive together: input, QKV, attention output, gate/up and
/// activation output; in a MoE layer the routed rows through the experts) plus fp32
/// logits (and their softmax) for `seqs` sampled sequences.
pub fn activation_peak(model: &Model, tokens: u32, seqs: u32) -> u64 {
    let b = model.compute_bytes() as u64;
    // The widest MLP intermediates of the layers there are: a dense layer's gate/up and
    // activation output, a MoE layer's routed rows (top_k per token through gate/up,
    // activation and down) plus the shared experts'.
    let moe_layers = model.moe_layers();
    let dense = if moe_layers < model.layers {
        3 * model.intermediate as u64
    } else {
        0
    };
    let mlp = match model.arch.moe {
        Some(m) if moe_layers > 0 => dense.max(
            m.top_k as u64 * (3 * m.expert_intermediate as u64 + model.hidden as u64)
                + 3 * m.shared_intermediate as u64,
        ),
        _ => dense,
    };
    let per_token = 4 * model.hidden as u64
        + (model.heads + 2 * model.kv_heads) as u64 * model.head_dim as u64
        + mlp;
    tokens as u64 * per_token * b + seqs as u64 * model.vocab as u64 * 8
}
