//! The modelled serving engines: vLLM v1 (block pool, KV cache manager, scheduler) and
//! SGLang ([`sglang`]: radix cache, slot pool, schedule policy, prefill adder,
//! scheduler), behind one [`core::EngineCore`], and the replica that runs steps on the
//! cost model. The seams follow each engine: requests reach KV only through its cache.

pub mod block_pool;
pub mod config;
pub mod content_map;
pub mod core;
pub mod cpu_tier;
pub mod evictor;
pub mod kv_cache_manager;
pub mod kv_groups;
pub mod learned;
pub mod replica;
pub mod request;
pub mod scheduler;
pub mod sglang;
pub mod token_policy;

/// The vLLM source this engine follows.
pub const VLLM_REFERENCE: &str =
    "vLLM 0.33.0 v1 core (block_pool.py, kv_cache_manager.py, kv_cache_coordinator.py, single_type_kv_cache_manager.py, kv_cache_planning.py, sched/scheduler.py, sched/async_scheduler.py)";
