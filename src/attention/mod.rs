//! Attention fidelity of token-level KV policies on recorded attention.
//!
//! A trace ([`trace`]) holds, for some layers of a real model, the keys, values, queries
//! and attention of a long prompt and of its greedy decode steps. Each policy
//! ([`policies`]) picks which prompt tokens a KV head keeps (eviction) or reads at a step
//! (selection); [`quantize`] stores them in fewer bits instead; [`eval`] scores the choice
//! against the full attention.

pub mod eval;
pub mod policies;
pub mod quantize;
pub mod trace;

pub use eval::{evaluate, EvalRow};
pub use trace::AttentionTrace;
