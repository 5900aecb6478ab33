//! The run summary: what a capacity planner reads, as a table or JSON.

use crate::engine::config::{EngineSetup, MemoryPlan};
use crate::engine::VLLM_REFERENCE;
use crate::metrics::Percentiles;
use crate::scenario::Scenario;
use crate::sim::recorder::Recorder;
use serde::Serialize;
use std::collections::BTreeMap;

/// Latency percentiles in milliseconds.
#[derive(Debug, Clone, Serialize)]
pub struct Latencies {
    /// Time to first token.
    pub ttft_ms: Percentiles,
    /// Time per output token after the first, per request.
    pub tpot_ms: Percentiles,
    /// Inter-token latency, per token gap.
    pub itl_ms: Percentiles,
    /// End-to-end latency.
    pub e2e_ms: Percentiles,
}

/// How the learned block predictor trained.
#[derive(Debug, Clone, Serialize)]
pub struct LearnedStats {
    /// Training examples (block contents requested again after a prediction).
    pub updates: u64,
    /// Mean squared error of the predicted log reuse distance.
    pub mean_squared_log_error: f64,
}

/// Summary of one run.
#[derive(Debug, Clone, Serialize)]
pub struct Summary {
    /// Scenario name.
    pub scenario: String,
    /// Model name.
    pub model: String,
    /// GPU name.
    pub gpu: String,
    /// The engine rules followed.
    pub engine: String,
    /// The cost model used.
    pub cost_model: String,
    /// Warnings of the cost model (e.g. steps outside the calibrated grid).
    pub cost_model_warnings: Vec<String>,
    /// Requests that arrived.
    pub requests_arrived: u64,
    /// Requests completed.
    pub requests_completed: u64,
    /// Requests rejected, by reason.
    pub requests_rejected: BTreeMap<String, u64>,
    /// First arrival to last completion, seconds.
    pub makespan_s: f64,
    /// Completed requests per second.
    pub request_throughput: f64,
    /// Prompt tokens of completed requests per second.
    pub input_token_throughput: f64,
    /// Output tokens per second.
    pub output_token_throughput: f64,
    /// Output tokens generated.
    pub output_tokens: u64,
    /// Output tokens the trace asked for (completed requests).
    pub expected_output_tokens: u64,
    /// Latency percentiles.
    pub latency: Latencies,
    /// Completed requests meeting the SLO per second.
    pub goodput: f64,
    /// Fraction of completed requests meeting the SLO.
    pub slo_attainment: f64,
    /// KV memory plan.
    pub memory: MemoryPlan,
    /// KV cache capacity, tokens.
    pub kv_capacity_tokens: u64,
    /// Mean used blocks over busy time.
    pub kv_blocks_used_mean: f64,
    /// Peak used blocks.
    pub kv_blocks_used_peak: u32,
    /// Prefix-cache hit rate: hit tokens at first admission over prompt tokens.
    pub prefix_hit_rate: f64,
    /// Prefix-cache hit tokens.
    pub prefix_hit_tokens: u64,
    /// The policy choosing which cached block to evict.
    pub eviction: String,
    /// Cached blocks evicted to make room.
    pub evictions: u64,
    /// Training figures of the learned block predictor, if one was used.
    pub learned_predictor: Option<LearnedStats>,
    /// Preemptions.
    pub preemptions: u64,
    /// Tokens recomputed after preemption.
    pub recomputed_tokens: u64,
    /// Engine steps.
    pub steps: u64,
    /// Fraction of the makespan the engine was busy.
    pub busy_fraction: f64,
    /// Largest batch in a step.
    pub max_batch: u32,
    /// Scheduler limits used.
    pub max_num_batched_tokens: u32,
    /// Scheduler limits used.
    pub max_num_seqs: u32,
    /// Warnings about the configuration.
    pub warnings: Vec<String>,
}

impl Summary {
    /// Build the summary from a finished run.
    pub fn build(
        s: &Scenario,
        setup: &EngineSetup,
        rec: &Recorder,
        cost_model: String,
        evictions: u64,
    ) -> Summary {
        let start = rec.first_arrival_ns.unwrap_or(0);
        let makespan_s = rec.last_finish_ns.saturating_sub(start) as f64 / 1e9;
        let per_s = |x: f64| {
            if makespan_s > 0.0 {
                x / makespan_s
            } else {
                0.0
            }
        };
        let mut ttft: Vec<f64> = rec.latencies.iter().map(|l| l.ttft_ms).collect();
        let mut tpot: Vec<f64> = rec.latencies.iter().filter_map(|l| l.tpot_ms).collect();
        let mut e2e: Vec<f64> = rec.latencies.iter().map(|l| l.e2e_ms).collect();
        let mut warnings = Vec::new();
        let cap = setup.memory.capacity_tokens(setup.block_size);
        if (setup.scheduler.max_model_len as u64) > cap {
            warnings.push(format!(
                "max_model_len {} exceeds the KV capacity of {cap} tokens; vLLM would refuse to start (lower engine.max_model_len)",
                setup.scheduler.max_model_len
            ));
        }
        Summary {
            scenario: s.name.clone(),
            model: setup.model.name.clone(),
            gpu: setup.gpu.name.clone(),
            engine: VLLM_REFERENCE.to_string(),
            cost_model,
            cost_model_warnings: Vec::new(),
            requests_arrived: rec.arrived,
            requests_completed: rec.completed,
            requests_rejected: rec
                .rejected
                .iter()
                .map(|(k, v)| (k.to_string(), *v))
                .collect(),
            makespan_s,
            request_throughput: per_s(rec.completed as f64),
            input_token_throughput: per_s(rec.input_tokens as f64),
            output_token_throughput: per_s(rec.output_tokens as f64),
            output_tokens: rec.output_tokens,
            expected_output_tokens: rec.expected_output_tokens,
            latency: Latencies {
                ttft_ms: Percentiles::of(&mut ttft),
                tpot_ms: Percentiles::of(&mut tpot),
                itl_ms: rec.itl.percentiles(1e6),
                e2e_ms: Percentiles::of(&mut e2e),
            },
            goodput: per_s(rec.slo_met as f64),
            slo_attainment: if rec.completed > 0 {
                rec.slo_met as f64 / rec.completed as f64
            } else {
                0.0
            },
            memory: setup.memory.clone(),
            kv_capacity_tokens: cap,
            kv_blocks_used_mean: if rec.busy_ns > 0 {
                rec.used_block_ns as f64 / rec.busy_ns as f64
            } else {
                0.0
            },
            kv_blocks_used_peak: rec.peak_used_blocks,
            prefix_hit_rate: if rec.input_tokens > 0 {
                rec.cached_tokens as f64 / rec.input_tokens as f64
            } else {
                0.0
            },
            prefix_hit_tokens: rec.cached_tokens,
            eviction: "vllm".to_string(),
            evictions,
            learned_predictor: None,
            preemptions: rec.preemptions,
            recomputed_tokens: rec.recomputed_tokens,
            steps: rec.steps,
            busy_fraction: if makespan_s > 0.0 {
                rec.busy_ns as f64 / 1e9 / makespan_s
            } else {
                0.0
            },
            max_batch: rec.max_batch,
            max_num_batched_tokens: setup.scheduler.max_num_batched_tokens,
            max_num_seqs: setup.scheduler.max_num_seqs,
            warnings,
        }
    }

    /// The summary as an aligned text table.
    pub fn to_table(&self) -> String {
        const GIB: f64 = 1024.0 * 1024.0 * 1024.0;
        let mut o = String::new();
        let mut line = |k: &str, v: String| o.push_str(&format!("{k:<26}{v}\n"));
        line("scenario", self.scenario.clone());
        line("model / gpu", format!("{} on {}", self.model, self.gpu));
        line("cost model", self.cost_model.clone());
        for w in &self.cost_model_warnings {
            line("cost model warning", w.clone());
        }
        line(
            "kv cache",
            format!(
                "{} GPU blocks{} x {:.2} MiB = {} tokens (weights {:.2} GiB, activations {:.2} GiB)",
                self.memory.num_gpu_blocks,
                if self.memory.explicit { " (explicit)" } else { "" },
                self.memory.block_bytes as f64 / (1024.0 * 1024.0),
                self.kv_capacity_tokens,
                self.memory.weight_bytes as f64 / GIB,
                self.memory.activation_bytes as f64 / GIB
            ),
        );
        line(
            "scheduler limits",
            format!(
                "max_num_batched_tokens {}, max_num_seqs {}",
                self.max_num_batched_tokens, self.max_num_seqs
            ),
        );
        let rejected: u64 = self.requests_rejected.values().sum();
        let reasons: Vec<String> = self
            .requests_rejected
            .iter()
            .map(|(k, v)| format!("{k}: {v}"))
            .collect();
        line(
            "requests",
            format!(
                "{} arrived, {} completed, {} rejected{}",
                self.requests_arrived,
                self.requests_completed,
                rejected,
                if reasons.is_empty() {
                    String::new()
                } else {
                    format!(" ({})", reasons.join(", "))
                }
            ),
        );
        line("makespan", format!("{:.3} s", self.makespan_s));
        line(
            "throughput",
            format!(
                "{:.3} req/s, {:.1} input tok/s, {:.1} output tok/s",
                self.request_throughput, self.input_token_throughput, self.output_token_throughput
            ),
        );
        let p = |x: &Percentiles| {
            format!(
                "mean {:>9.2}  p50 {:>9.2}  p90 {:>9.2}  p99 {:>9.2}",
                x.mean, x.p50, x.p90, x.p99
            )
        };
        line("TTFT (ms)", p(&self.latency.ttft_ms));
        line("TPOT (ms)", p(&self.latency.tpot_ms));
        line("ITL (ms)", p(&self.latency.itl_ms));
        line("E2E (ms)", p(&self.latency.e2e_ms));
        line(
            "goodput",
            format!(
                "{:.3} req/s ({:.1} % of completed meet the SLO)",
                self.goodput,
                100.0 * self.slo_attainment
            ),
        );
        line(
            "KV blocks used",
            format!(
                "mean {:.1}, peak {} of {}",
                self.kv_blocks_used_mean,
                self.kv_blocks_used_peak,
                self.memory.num_gpu_blocks - 1
            ),
        );
        line(
            "prefix cache hit rate",
            format!(
                "{:.4} ({} of prompt tokens; {} cached blocks evicted by {})",
                self.prefix_hit_rate, self.prefix_hit_tokens, self.evictions, self.eviction
            ),
        );
        line(
            "preemptions",
            format!(
                "{} ({} tokens recomputed)",
                self.preemptions, self.recomputed_tokens
            ),
        );
        line(
            "steps",
            format!(
                "{} (busy {:.1} % of makespan, max batch {})",
                self.steps,
                100.0 * self.busy_fraction,
                self.max_batch
            ),
        );
        if let Some(l) = &self.learned_predictor {
            line(
                "learned predictor",
                format!(
                    "{} training examples, mean squared log error {:.3}",
                    l.updates, l.mean_squared_log_error
                ),
            );
        }
        for w in &self.warnings {
            line("warning", w.clone());
        }
        o
    }
}
