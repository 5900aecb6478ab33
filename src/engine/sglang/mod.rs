//! The SGLang engine (0.5.23): a radix-tree prefix cache over token ids, its schedule
//! policies, the prefill adder with the new-token-ratio reservation, and retraction, in
//! SGLang's own seams: tree cache ([`radix`]), allocator ([`pool`]), schedule policy
//! ([`policy`]), prefill adder ([`adder`]), the scheduler step ([`scheduler`]); defaults and the KV
//! memory plan in [`plan`].

pub mod adder;
pub mod config;
pub mod plan;
pub mod policy;
pub mod pool;
pub mod radix;
pub mod ratio;
pub mod request;
pub mod scheduler;

/// The SGLang source this engine follows.
pub const SGLANG_REFERENCE: &str = "SGLang 0.5.23 (managers/scheduler.py, schedule_policy.py, schedule_batch.py, mem_cache/unified_radix_cache.py, unified_cache/unified_tree_core.py, allocator/, prefill_budget.py)";
