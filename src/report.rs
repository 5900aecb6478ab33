//! The run summary: what a capacity planner reads, as a table or JSON.

use crate::cluster::Cluster;
use crate::engine::config::{EngineSetup, MemoryPlan};
use crate::engine::replica::Role;
use crate::engine::VLLM_REFERENCE;
use crate::metrics::Percentiles;
use crate::scenario::Scenario;
use crate::sim::recorder::{Recorder, ReplicaStats};
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

/// The deployment: replicas, GPUs, parallelism and price.
#[derive(Debug, Clone, Serialize, Default)]
pub struct ClusterSummary {
    /// Replicas (prefill plus decode with disaggregation).
    pub replicas: u32,
    /// Prefill replicas (0 without disaggregation).
    pub prefill_replicas: u32,
    /// Decode replicas (0 without disaggregation).
    pub decode_replicas: u32,
    /// Engine cores per replica (vLLM `data_parallel_size`; `per_replica` rows are
    /// cores).
    pub data_parallel: u32,
    /// Tensor-parallel degree.
    pub tensor_parallel: u32,
    /// Pipeline stages.
    pub pipeline_parallel: u32,
    /// GPUs in all.
    pub gpus: u32,
    /// Nodes they occupy.
    pub nodes: u32,
    /// The router.
    pub router: String,
    /// Price of the GPUs per hour, US dollars.
    pub cost_per_hour: f64,
    /// Price per million tokens processed (prompt plus output) at the simulated load.
    pub cost_per_million_tokens: f64,
}

/// One replica's share of the run.
#[derive(Debug, Clone, Serialize)]
pub struct ReplicaSummary {
    /// Index.
    pub replica: u32,
    /// `unified`, `prefill` or `decode`.
    pub role: String,
    /// Completed requests whose prompt ran here.
    pub prompts: u64,
    /// Completed requests that finished here.
    pub completed: u64,
    /// Prompt tokens hit in the GPU prefix cache (fraction of its prompt tokens).
    pub prefix_hit_rate: f64,
    /// Prompt tokens loaded from its CPU tier (fraction).
    pub cpu_hit_rate: f64,
    /// TTFT of its prompts, ms.
    pub ttft_ms: Percentiles,
    /// Busy fraction of the makespan.
    pub busy_fraction: f64,
    /// Peak used blocks.
    pub kv_blocks_used_peak: u32,
    /// Largest batch.
    pub max_batch: u32,
    /// Preemptions.
    pub preemptions: u64,
}

/// The CPU-memory KV tier, summed over replicas.
#[derive(Debug, Clone, Serialize)]
pub struct CpuTierSummary {
    /// Blocks per replica.
    pub blocks_per_replica: u64,
    /// Its policy.
    pub policy: String,
    /// Prompt tokens loaded from it (completed requests).
    pub hit_tokens: u64,
    /// Blocks loaded back to GPUs.
    pub loaded_blocks: u64,
    /// Blocks stored from GPU evictions.
    pub stored_blocks: u64,
    /// Blocks it dropped when full.
    pub dropped_blocks: u64,
}

/// Swap preemption figures, summed over replicas.
#[derive(Debug, Clone, Serialize)]
pub struct SwapSummary {
    /// Preemptions that swapped (the rest recomputed).
    pub swap_preemptions: u64,
    /// Blocks copied to host memory.
    pub swapped_out_blocks: u64,
    /// Blocks copied back.
    pub swapped_in_blocks: u64,
}

/// KV transfers from prefill to decode replicas.
#[derive(Debug, Clone, Serialize)]
pub struct TransferSummary {
    /// Transfers.
    pub transfers: u64,
    /// GiB moved.
    pub gib: f64,
    /// Mean time on the link, ms.
    pub mean_link_ms: f64,
    /// Mean wait for the link, ms.
    pub mean_queue_ms: f64,
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
    /// Set when the offered load exceeds what the deployment serves: requests were still
    /// waiting when the last one was sent, and draining them took more than a tenth of
    /// the sending span ([`crate::sim::overload_warning`]).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub load_warning: Option<String>,
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
    /// The scenario's bounds on latency distributions (`slo.ttft_p95_ms`, ...), checked.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub slo_bounds: Vec<crate::slo::SloCheck>,
    /// The percentiles the table shows (`output.percentiles`).
    #[serde(skip)]
    pub shown_percentiles: Vec<f64>,
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
    /// Steps run by fast-forwarding (steady decode steps run back to back, outside the
    /// event loop; the results are the same without it: `kvsim run --no-fast-forward`).
    pub fast_forwarded_steps: u64,
    /// Fraction of the makespan the engine was busy.
    pub busy_fraction: f64,
    /// Largest batch in a step.
    pub max_batch: u32,
    /// Scheduler limits used (SGLang: the chunk size, or `max_prefill_tokens` without
    /// chunking).
    pub max_num_batched_tokens: u32,
    /// Scheduler limits used (SGLang: `max_running_requests`).
    pub max_num_seqs: u32,
    /// Asynchronous scheduling (vLLM 0.33's default; SGLang's overlap scheduler): the CPU
    /// work of a step overlaps the GPU work of the one before.
    pub async_scheduling: bool,
    /// SGLang's resolved settings, when the engine is SGLang.
    pub sglang: Option<SglangSummary>,
    /// The deployment.
    pub cluster: ClusterSummary,
    /// Per replica.
    pub per_replica: Vec<ReplicaSummary>,
    /// Prompt tokens loaded from CPU tiers (fraction of prompt tokens).
    pub cpu_hit_rate: f64,
    /// GPU and CPU-tier hits together (fraction of prompt tokens).
    pub total_hit_rate: f64,
    /// The CPU tier, if configured.
    pub cpu_tier: Option<CpuTierSummary>,
    /// Swap preemption, if configured.
    pub swap: Option<SwapSummary>,
    /// Prefill-to-decode KV transfers, with disaggregation.
    pub kv_transfer: Option<TransferSummary>,
    /// Token-level compression, if configured.
    pub token_policy: Option<crate::engine::token_policy::TokenPolicy>,
    /// Warnings about the configuration.
    pub warnings: Vec<String>,
}

/// SGLang's settings as the run resolved them.
#[derive(Debug, Clone, Serialize)]
pub struct SglangSummary {
    /// `--schedule-policy`.
    pub schedule_policy: String,
    /// Tokens per KV page.
    pub page_size: u32,
    /// Token slots of the KV pool (`max_total_num_tokens`).
    pub max_total_tokens: u64,
    /// `--max-running-requests`.
    pub max_running_requests: u32,
    /// `--chunked-prefill-size` (`None`: chunking off).
    pub chunked_prefill_size: Option<u32>,
    /// `--max-prefill-tokens`.
    pub max_prefill_tokens: u32,
    /// `--schedule-conservativeness`.
    pub schedule_conservativeness: f64,
    /// The overlap scheduler is on.
    pub overlap_schedule: bool,
}

impl SglangSummary {
    fn of(c: &crate::engine::sglang::config::SglangConfig) -> Self {
        SglangSummary {
            schedule_policy: c.schedule_policy.as_str().to_string(),
            page_size: c.page_size,
            max_total_tokens: c.max_total_tokens,
            max_running_requests: c.max_running_requests,
            chunked_prefill_size: c.chunked_prefill_size,
            max_prefill_tokens: c.max_prefill_tokens,
            schedule_conservativeness: c.schedule_conservativeness,
            overlap_schedule: !c.disable_overlap_schedule,
        }
    }
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
        let mut extra = s.output.percentiles.clone();
        extra.extend(crate::slo::percentiles_needed(&s.slo.bounds));
        let mut warnings = Vec::new();
        let cap = setup.memory.capacity_tokens(setup.block_size);
        if (setup.scheduler.max_model_len as u64) > cap {
            warnings.push(format!(
                "max_model_len {} exceeds the KV capacity of {cap} tokens; vLLM would refuse to start (lower engine.max_model_len)",
                setup.scheduler.max_model_len
            ));
        }
        if setup.enable_prefix_caching
            && setup
                .token_policy
                .as_ref()
                .is_some_and(|t| t.rewrites_blocks())
        {
            warnings.push(format!(
                "token policy {} compacts each request's blocks after its prompt, so its requests neither hit nor fill the prefix cache",
                setup.token_policy.as_ref().map_or("", |t| t.name.as_str())
            ));
        }
        Summary {
            scenario: s.name.clone(),
            model: setup.model.name.clone(),
            gpu: setup.gpu.name.clone(),
            engine: match setup.sglang {
                Some(_) => crate::engine::sglang::SGLANG_REFERENCE.to_string(),
                None => VLLM_REFERENCE.to_string(),
            },
            cost_model,
            cost_model_warnings: Vec::new(),
            load_warning: None,
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
                ttft_ms: Percentiles::with(&mut ttft, &extra),
                tpot_ms: Percentiles::with(&mut tpot, &extra),
                itl_ms: rec.itl.percentiles_with(1e6, &extra),
                e2e_ms: Percentiles::with(&mut e2e, &extra),
            },
            slo_bounds: Vec::new(),
            shown_percentiles: s.output.percentiles.clone(),
            goodput: per_s(rec.slo_met as f64),
            slo_attainment: if rec.completed > 0 {
                rec.slo_met as f64 / rec.completed as f64
            } else {
                0.0
            },
            memory: setup.memory.clone(),
            token_policy: setup.token_policy.clone(),
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
            fast_forwarded_steps: rec.fast_forwarded_steps,
            busy_fraction: if makespan_s > 0.0 {
                rec.busy_ns as f64 / 1e9 / makespan_s
            } else {
                0.0
            },
            max_batch: rec.max_batch,
            max_num_batched_tokens: setup
                .sglang
                .as_ref()
                .map_or(setup.scheduler.max_num_batched_tokens, |c| {
                    c.chunked_prefill_size.unwrap_or(c.max_prefill_tokens)
                }),
            max_num_seqs: setup
                .sglang
                .as_ref()
                .map_or(setup.scheduler.max_num_seqs, |c| c.max_running_requests),
            async_scheduling: setup
                .sglang
                .as_ref()
                .map_or(setup.scheduler.async_scheduling, |c| {
                    !c.disable_overlap_schedule
                }),
            sglang: setup.sglang.as_ref().map(SglangSummary::of),
            cluster: ClusterSummary::default(),
            per_replica: Vec::new(),
            cpu_hit_rate: 0.0,
            total_hit_rate: 0.0,
            cpu_tier: None,
            swap: None,
            kv_transfer: None,
            warnings,
        }
    }

    /// Add the cluster's figures: deployment and price, per-replica rows, CPU tier, swap
    /// and transfers.
    pub fn add_cluster(&mut self, setup: &EngineSetup, rec: &Recorder, c: &Cluster) {
        let cores = c.replicas.len() as u32;
        let dp = setup.parallel.dp.max(1);
        let n = cores / dp;
        let gpus = cores * setup.parallel.gpus();
        let cost_per_hour = gpus as f64 * setup.gpu.price_per_hour;
        let tokens_per_hour = (self.input_token_throughput + self.output_token_throughput) * 3600.0;
        self.cluster = ClusterSummary {
            replicas: n,
            prefill_replicas: c
                .replicas
                .iter()
                .filter(|r| r.role() == Role::Prefill)
                .count() as u32,
            decode_replicas: c.decode.len() as u32,
            data_parallel: dp,
            tensor_parallel: setup.parallel.tp,
            pipeline_parallel: setup.parallel.pp,
            gpus,
            nodes: c.placement.topology.nodes(),
            router: if n > 1 {
                c.router.name().to_string()
            } else {
                "none".to_string()
            },
            cost_per_hour,
            cost_per_million_tokens: if tokens_per_hour > 0.0 {
                cost_per_hour / tokens_per_hour * 1e6
            } else {
                0.0
            },
        };
        // Busy time summed over engine cores: report the mean core's fraction.
        self.busy_fraction /= cores as f64;
        let frac = |a: u64, b: u64| if b > 0 { a as f64 / b as f64 } else { 0.0 };
        self.cpu_hit_rate = frac(rec.cpu_hit_tokens, rec.input_tokens);
        self.total_hit_rate = frac(rec.cpu_hit_tokens + rec.cached_tokens, rec.input_tokens);
        let empty = ReplicaStats::default();
        self.per_replica = c
            .replicas
            .iter()
            .map(|r| {
                let st = rec.replicas.get(r.index() as usize).unwrap_or(&empty);
                let mut ttft = st.ttft_ms.clone();
                ReplicaSummary {
                    replica: r.index(),
                    role: match r.role() {
                        Role::Unified => "unified",
                        Role::Prefill => "prefill",
                        Role::Decode => "decode",
                    }
                    .to_string(),
                    prompts: st.prompts,
                    completed: st.completed,
                    prefix_hit_rate: frac(st.cached_tokens, st.input_tokens),
                    cpu_hit_rate: frac(st.cpu_hit_tokens, st.input_tokens),
                    ttft_ms: Percentiles::of(&mut ttft),
                    busy_fraction: if self.makespan_s > 0.0 {
                        st.busy_ns as f64 / 1e9 / self.makespan_s
                    } else {
                        0.0
                    },
                    kv_blocks_used_peak: st.peak_used_blocks,
                    max_batch: st.max_batch,
                    preemptions: st.preemptions,
                }
            })
            .collect();
        let traffic = c
            .replicas
            .iter()
            .filter_map(|r| r.vllm())
            .fold((0, 0, 0, 0), |acc, s| {
                let t = s.total_traffic;
                (
                    acc.0 + t.cpu_load_blocks,
                    acc.1 + t.swap_out_blocks,
                    acc.2 + t.swap_in_blocks,
                    acc.3 + s.swap_preemptions,
                )
            });
        if let Some((blocks, policy)) = &setup.cpu_offload {
            let tiers = c
                .replicas
                .iter()
                .filter_map(|r| r.vllm().and_then(|s| s.kv().cpu_tier()));
            let (stored, dropped) = tiers.fold((0, 0), |a, t| (a.0 + t.stored, a.1 + t.dropped));
            self.cpu_tier = Some(CpuTierSummary {
                blocks_per_replica: *blocks,
                policy: policy.clone(),
                hit_tokens: rec.cpu_hit_tokens,
                loaded_blocks: traffic.0,
                stored_blocks: stored,
                dropped_blocks: dropped,
            });
        }
        if setup.swap_blocks.is_some() {
            self.swap = Some(SwapSummary {
                swap_preemptions: traffic.3,
                swapped_out_blocks: traffic.1,
                swapped_in_blocks: traffic.2,
            });
        }
        if !c.decode.is_empty() {
            let t = &c.transfers;
            let per = |x: f64| {
                if t.transfers > 0 {
                    x / t.transfers as f64 / 1e6
                } else {
                    0.0
                }
            };
            self.kv_transfer = Some(TransferSummary {
                transfers: t.transfers,
                gib: t.bytes / (1u64 << 30) as f64,
                mean_link_ms: per(t.link_ns),
                mean_queue_ms: per(t.queue_ns),
            });
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
        if let Some(w) = &self.load_warning {
            line("load warning", w.clone());
        }
        let kv = match &self.sglang {
            Some(g) => format!(
                "{} token slots{} in pages of {} (mem_fraction_static {}: weights {:.2} GiB, {:.2} GiB reserved outside the pool)",
                g.max_total_tokens,
                if self.memory.explicit { " (capped)" } else { "" },
                g.page_size,
                self.memory.utilization,
                self.memory.weight_bytes as f64 / GIB,
                self.memory.activation_bytes as f64 / GIB
            ),
            None => format!(
                "{} GPU blocks{} x {:.2} MiB = {} tokens (weights {:.2} GiB, activations {:.2} GiB)",
                self.memory.num_gpu_blocks,
                if self.memory.explicit { " (explicit)" } else { "" },
                self.memory.block_bytes as f64 / (1024.0 * 1024.0),
                self.kv_capacity_tokens,
                self.memory.weight_bytes as f64 / GIB,
                self.memory.activation_bytes as f64 / GIB
            ),
        };
        line("kv cache", kv);
        if let Some(g) = &self.sglang {
            line(
                "sglang",
                format!(
                    "schedule_policy {}, page_size {}, max_total_tokens {}, max_running_requests {}, chunked_prefill_size {}, max_prefill_tokens {}, {} scheduling",
                    g.schedule_policy,
                    g.page_size,
                    g.max_total_tokens,
                    g.max_running_requests,
                    g.chunked_prefill_size.map_or("off".to_string(), |c| c.to_string()),
                    g.max_prefill_tokens,
                    if g.overlap_schedule { "overlap" } else { "synchronous" }
                ),
            );
        } else {
            line(
                "scheduler limits",
                format!(
                    "max_num_batched_tokens {}, max_num_seqs {}, {} scheduling",
                    self.max_num_batched_tokens,
                    self.max_num_seqs,
                    if self.async_scheduling {
                        "asynchronous"
                    } else {
                        "synchronous"
                    }
                ),
            );
        }
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
        let c = &self.cluster;
        if c.gpus > 1 {
            line(
                "cluster",
                format!(
                    "{} replicas{} x TP {} x PP {} = {} GPUs on {} nodes, router {}",
                    c.replicas,
                    if c.decode_replicas > 0 {
                        format!(
                            " ({} prefill, {} decode)",
                            c.prefill_replicas, c.decode_replicas
                        )
                    } else {
                        String::new()
                    },
                    c.tensor_parallel,
                    c.pipeline_parallel,
                    c.gpus,
                    c.nodes,
                    c.router
                ),
            );
        }
        line(
            "cost",
            format!(
                "${:.2} per hour, ${:.4} per million tokens at this load",
                c.cost_per_hour, c.cost_per_million_tokens
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
            let mut t = format!("mean {:>9.2}", x.mean);
            for &q in &self.shown_percentiles {
                let key = crate::metrics::percentile_key(q);
                let v = x.get(&key).unwrap_or(f64::NAN);
                t.push_str(&format!("  {key} {v:>9.2}"));
            }
            t
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
        for c in &self.slo_bounds {
            let verdict = if c.met { "met" } else { "MISSED" };
            line(
                "SLO",
                format!(
                    "{} {:.2} (bound {}): {verdict}",
                    c.name, c.value_ms, c.bound_ms
                ),
            );
        }
        line(
            "KV blocks used",
            format!(
                "mean {:.1}, peak {} of {}",
                self.kv_blocks_used_mean,
                self.kv_blocks_used_peak,
                self.memory.num_gpu_blocks - 1
            ),
        );
        if let Some(t) = &self.token_policy {
            use crate::engine::token_policy::Class;
            let budget = match (t.class, t.budget_tokens, t.keep_ratio) {
                (Class::Quantization, _, _) => {
                    format!("{} bits, {} residual tokens", t.bits, t.residual_tokens)
                }
                (_, Some(b), _) => format!("{b} tokens"),
                (_, None, Some(r)) => format!("{:.0} % kept", r * 100.0),
                (_, None, None) => "no budget".to_string(),
            };
            line(
                "token policy",
                format!(
                    "{} ({}{}), {budget}, {:.3} x bytes per token",
                    t.name,
                    t.class.describe(),
                    if t.masked { ", masked" } else { "" },
                    t.memory_factor()
                ),
            );
        }
        line(
            "prefix cache hit rate",
            format!(
                "{:.4} ({} of prompt tokens; {} cached blocks evicted by {})",
                self.prefix_hit_rate, self.prefix_hit_tokens, self.evictions, self.eviction
            ),
        );
        if let Some(t) = &self.cpu_tier {
            line(
                "CPU tier",
                format!(
                    "hit rate {:.4} ({} tokens; {} blocks loaded, {} stored, {} dropped; {} blocks per replica, {})",
                    self.cpu_hit_rate,
                    t.hit_tokens,
                    t.loaded_blocks,
                    t.stored_blocks,
                    t.dropped_blocks,
                    t.blocks_per_replica,
                    t.policy
                ),
            );
            line("total hit rate", format!("{:.4}", self.total_hit_rate));
        }
        if let Some(sw) = &self.swap {
            line(
                "swap",
                format!(
                    "{} preemptions swapped ({} blocks out, {} in)",
                    sw.swap_preemptions, sw.swapped_out_blocks, sw.swapped_in_blocks
                ),
            );
        }
        if let Some(t) = &self.kv_transfer {
            line(
                "KV transfers",
                format!(
                    "{} ({:.2} GiB; mean {:.3} ms on the link, {:.3} ms queued)",
                    t.transfers, t.gib, t.mean_link_ms, t.mean_queue_ms
                ),
            );
        }
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
                "{} (busy {:.1} % of makespan, max batch {}; {:.1} % fast-forwarded)",
                self.steps,
                100.0 * self.busy_fraction,
                self.max_batch,
                100.0 * self.fast_forwarded_steps as f64 / self.steps.max(1) as f64
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
        if self.per_replica.len() > 1 {
            line(
                "per replica",
                "role     prompts  hit rate  cpu hit   TTFT p50   TTFT p99  busy %  peak blocks"
                    .to_string(),
            );
            for r in &self.per_replica {
                line(
                    &format!("  replica {}", r.replica),
                    format!(
                        "{:<8} {:>7}  {:>8.4}  {:>7.4}  {:>9.2}  {:>9.2}  {:>6.1}  {:>11}",
                        r.role,
                        r.prompts,
                        r.prefix_hit_rate,
                        r.cpu_hit_rate,
                        r.ttft_ms.p50,
                        r.ttft_ms.p99,
                        100.0 * r.busy_fraction,
                        r.kv_blocks_used_peak
                    ),
                );
            }
        }
        for w in &self.warnings {
            line("warning", w.clone());
        }
        o
    }
}

/// `Err` (a failure, exit code 1) when a run produced nothing to report: no request in the
/// workload (after `workload.start_s`, `end_s` and `limit`), or every request rejected.
/// Such a run is not written as a result (`docs/outputs.md`).
pub fn check_succeeded(s: &Summary) -> crate::error::Result<()> {
    if s.requests_arrived == 0 {
        return Err(crate::error::Error::failure(
            "the workload has no requests (after workload.start_s, end_s and limit): nothing was simulated",
        ));
    }
    if s.requests_completed == 0 {
        let reasons: Vec<String> = s
            .requests_rejected
            .iter()
            .map(|(r, n)| format!("{r}: {n}"))
            .collect();
        return Err(crate::error::Error::failure(format!(
            "none of the {} requests completed (rejected: {})",
            s.requests_arrived,
            if reasons.is_empty() {
                "none".to_string()
            } else {
                reasons.join(", ")
            }
        )));
    }
    Ok(())
}
