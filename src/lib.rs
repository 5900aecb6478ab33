//! kvsim: a discrete-event simulator for the KV cache of LLM serving.
//!
//! A scenario ([`scenario`]) names a workload ([`workload`]), a model ([`model`]), a GPU
//! ([`hardware`]) and an engine ([`engine`]); the simulation ([`sim`]) replays the workload
//! through the engine, timing each step with a cost model ([`cost`]), and reports
//! ([`report`]) throughput, latency and KV memory. The paging lab ([`paging`]) studies
//! eviction policies, the offline optimum and learned predictions on their own.

pub mod attention;
pub mod bench_result;
pub mod calibrate;
pub mod cli;
pub mod cluster;
pub mod compare;
pub mod conformance;
pub mod cost;
pub mod engine;
pub mod error;
pub mod fidelity;
pub mod fit;
pub mod hardware;
pub mod hf_config;
pub mod idhash;
pub mod input;
pub mod interrupt;
pub mod metrics;
pub mod model;
pub mod output;
pub mod paging;
pub mod planner;
pub mod plots;
pub mod prefix;
pub mod progress;
pub mod report;
pub mod scenario;
pub mod seeds;
pub mod sim;
pub mod slo;
pub mod sweep;
pub mod trace_events;
pub mod workload;

pub use error::{Error, Result};
