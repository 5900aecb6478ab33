//! The modelled serving engine (vLLM v1): block pool, KV cache manager, scheduler, and the
//! replica that runs steps on the cost model. The seams follow vLLM: requests reach blocks
//! only through the KV cache manager.

pub mod block_pool;
pub mod config;
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
