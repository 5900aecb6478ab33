//! A run's result in the format of `vllm bench serve --save-result --save-detailed` (vLLM
//! 0.33.0, `vllm/benchmarks/serve.py`, `benchmark()` and `main()`): the same keys and
//! units, so that scripts written against vLLM's result files read kvsim's
//! (`bench_result.json`, with `--bench-json` or `output.bench_json: true`).
//!
//! Per request, in sending order (request id): `input_lens`, `output_lens`, `ttfts`,
//! `latencies` and `start_times` in seconds (`start_times` from the first send, where vLLM
//! has the client's `perf_counter`), `itls` (each request's inter-token gaps, seconds),
//! `generated_texts` (empty: kvsim has no text) and `errors` (empty, or the rejection
//! reason). Aggregates: `duration` (makespan, s), `completed`, `failed`,
//! `total_input_tokens`, `total_output_tokens`, `request_throughput`, `output_throughput`,
//! `total_token_throughput` (per second of duration), `max_output_tokens_per_s` and
//! `max_concurrent_requests` (vLLM's one-second buckets), `rtfx` (0, as vLLM writes it for
//! text), `queue_times` (per request, the wait for a `max_concurrency` slot), and for
//! `ttft`, `tpot`, `itl` and `e2el` the `mean_*_ms`, `median_*_ms`, `std_*_ms` (population,
//! as `np.std`) and `pNN_*_ms` of `output.percentiles` (`np.percentile`'s linear rule; keys
//! `p99`, `p99.9` as vLLM writes them); under `max_concurrency` also those of
//! `client_queue_time` and `e2el_including_client_queue` (vLLM writes these, and `e2el`'s,
//! when `--percentile-metrics` names them). Run facts: `backend` and `endpoint_type`
//! `vllm`, `model_id` and `tokenizer_id` the model, `num_prompts`, `max_concurrency`,
//! `date` (`simulated`, so that reruns are byte-identical). `request_rate`, `burstiness`
//! and `request_goodput` are `null`; the server-side `server_queue_times` and the
//! speculative-decoding keys are left out (kvsim models neither).

use crate::metrics::quantile_sorted;
use crate::scenario::Scenario;
use serde_json::{json, Map, Value};
use std::collections::HashMap;

/// One request as the benchmark reports it.
#[derive(Debug, Clone, Default)]
struct Entry {
    start_s: f64,
    input: u32,
    output: u32,
    ttft_s: f64,
    latency_s: f64,
    itls: Vec<f64>,
    /// Time waiting for a `max_concurrency` slot before sending.
    queue_s: f64,
    error: String,
}

/// Collects every request's figures during a run (per-token gaps included: memory grows
/// with the tokens generated, so it is kept only when asked for).
#[derive(Debug, Default)]
pub struct BenchRecorder {
    entries: HashMap<u64, Entry>,
}

impl BenchRecorder {
    /// Request `id` is sent after `queue_ns` waiting for a concurrency slot.
    pub fn on_send(&mut self, id: u64, queue_ns: u64) {
        self.entries.entry(id).or_default().queue_s = queue_ns as f64 / 1e9;
    }

    /// A generated token of request `id`, `gap_ns` after its previous one.
    pub fn on_token(&mut self, id: u64, gap_ns: Option<u64>) {
        if let Some(g) = gap_ns {
            self.entries
                .entry(id)
                .or_default()
                .itls
                .push(g as f64 / 1e9);
        }
    }

    /// Request `id` sent at `sent_ns` finished: `ttft_ns` and `latency_ns` after sending.
    pub fn on_finish(
        &mut self,
        id: u64,
        sent_ns: u64,
        lens: (u32, u32),
        ttft_ns: u64,
        latency_ns: u64,
    ) {
        let e = self.entries.entry(id).or_default();
        e.start_s = sent_ns as f64 / 1e9;
        (e.input, e.output) = lens;
        e.ttft_s = ttft_ns as f64 / 1e9;
        e.latency_s = latency_ns as f64 / 1e9;
    }

    /// Request `id` sent at `sent_ns` was rejected (`reason`): a failed request.
    pub fn on_reject(&mut self, id: u64, sent_ns: u64, input: u32, reason: &str) {
        let e = self.entries.entry(id).or_default();
        e.start_s = sent_ns as f64 / 1e9;
        e.input = input;
        e.error = format!("rejected: {reason}");
    }

    /// The result object, for `scenario` run over `duration_s`.
    pub fn to_json(&self, scenario: &Scenario, duration_s: f64) -> Value {
        let mut ids: Vec<u64> = self.entries.keys().copied().collect();
        ids.sort_unstable();
        let rows: Vec<&Entry> = ids.iter().map(|i| &self.entries[i]).collect();
        let first = rows.iter().map(|e| e.start_s).fold(f64::INFINITY, f64::min);
        let first = if first.is_finite() { first } else { 0.0 };
        let ok: Vec<&&Entry> = rows.iter().filter(|e| e.error.is_empty()).collect();
        let total_in: u64 = ok.iter().map(|e| e.input as u64).sum();
        let total_out: u64 = ok.iter().map(|e| e.output as u64).sum();
        let per_s = |x: f64| {
            if duration_s > 0.0 {
                x / duration_s
            } else {
                0.0
            }
        };
        let model = scenario
            .model
            .preset
            .clone()
            .unwrap_or_else(|| "custom".into());
        let mut r = Map::new();
        let mut put = |k: &str, v: Value| {
            r.insert(k.to_string(), v);
        };
        put("date", json!("simulated"));
        put("endpoint_type", json!("vllm"));
        put("backend", json!("vllm"));
        put("label", Value::Null);
        put("model_id", json!(model));
        put("tokenizer_id", json!(model));
        put("num_prompts", json!(rows.len()));
        put("request_rate", Value::Null);
        put("burstiness", Value::Null);
        put("max_concurrency", json!(scenario.workload.max_concurrency));
        put("duration", json!(duration_s));
        put("completed", json!(ok.len()));
        put("failed", json!(rows.len() - ok.len()));
        put("total_input_tokens", json!(total_in));
        put("total_output_tokens", json!(total_out));
        put("request_throughput", json!(per_s(ok.len() as f64)));
        put("request_goodput", Value::Null);
        put("output_throughput", json!(per_s(total_out as f64)));
        put(
            "total_token_throughput",
            json!(per_s((total_in + total_out) as f64)),
        );
        let (max_tokens_per_s, max_concurrent) = peaks(&ok);
        put("max_output_tokens_per_s", json!(max_tokens_per_s));
        put("max_concurrent_requests", json!(max_concurrent));
        put("rtfx", json!(0.0));
        put(
            "input_lens",
            json!(rows.iter().map(|e| e.input).collect::<Vec<_>>()),
        );
        put(
            "output_lens",
            json!(rows.iter().map(|e| e.output).collect::<Vec<_>>()),
        );
        put(
            "ttfts",
            json!(rows.iter().map(|e| e.ttft_s).collect::<Vec<_>>()),
        );
        put(
            "itls",
            json!(rows.iter().map(|e| &e.itls).collect::<Vec<_>>()),
        );
        put(
            "latencies",
            json!(rows.iter().map(|e| e.latency_s).collect::<Vec<_>>()),
        );
        put(
            "start_times",
            json!(rows.iter().map(|e| e.start_s - first).collect::<Vec<_>>()),
        );
        put(
            "queue_times",
            json!(rows.iter().map(|e| e.queue_s).collect::<Vec<_>>()),
        );
        put(
            "generated_texts",
            json!(rows.iter().map(|_| "").collect::<Vec<_>>()),
        );
        put(
            "errors",
            json!(rows.iter().map(|e| &e.error).collect::<Vec<_>>()),
        );
        let tpots: Vec<f64> = ok
            .iter()
            .filter(|e| e.output > 1)
            .map(|e| (e.latency_s - e.ttft_s) / (e.output - 1) as f64)
            .collect();
        let series: [(&str, Vec<f64>); 4] = [
            ("ttft", ok.iter().map(|e| e.ttft_s).collect()),
            ("tpot", tpots),
            (
                "itl",
                ok.iter().flat_map(|e| e.itls.iter().copied()).collect(),
            ),
            ("e2el", ok.iter().map(|e| e.latency_s).collect()),
        ];
        for (name, mut v) in series {
            stats_into(&mut r, name, &mut v, &scenario.output.percentiles);
        }
        if scenario.workload.max_concurrency.is_some() {
            let queued = [
                (
                    "client_queue_time",
                    ok.iter().map(|e| e.queue_s).collect::<Vec<_>>(),
                ),
                (
                    "e2el_including_client_queue",
                    ok.iter().map(|e| e.latency_s + e.queue_s).collect(),
                ),
            ];
            for (name, mut v) in queued {
                stats_into(&mut r, name, &mut v, &scenario.output.percentiles);
            }
        }
        Value::Object(r)
    }
}

/// `mean_`, `median_`, `std_` and `pNN_` keys of `name` (values in seconds, keys in ms), as
/// vLLM's `process_one_metric` writes them (zeros for an empty sample, as `np.mean(0)`).
fn stats_into(r: &mut Map<String, Value>, name: &str, v: &mut [f64], percentiles: &[f64]) {
    v.sort_by(f64::total_cmp);
    let n = v.len() as f64;
    let mean = if v.is_empty() {
        0.0
    } else {
        v.iter().sum::<f64>() / n
    };
    let var = if v.is_empty() {
        0.0
    } else {
        v.iter().map(|x| (x - mean) * (x - mean)).sum::<f64>() / n
    };
    let q = |p: f64| {
        if v.is_empty() {
            0.0
        } else {
            quantile_sorted(v, p)
        }
    };
    r.insert(format!("mean_{name}_ms"), json!(mean * 1e3));
    r.insert(format!("median_{name}_ms"), json!(q(0.5) * 1e3));
    r.insert(format!("std_{name}_ms"), json!(var.sqrt() * 1e3));
    for &p in percentiles {
        r.insert(format!("p{p}_{name}_ms"), json!(q(p / 100.0) * 1e3));
    }
}

/// `max_output_tokens_per_s` and `max_concurrent_requests` by vLLM's rule
/// (`calculate_metrics`): one-second buckets from the first successful send; each token
/// (first at send plus TTFT, then after each gap) counts in its bucket, and each request
/// in every bucket from its send's to its end's, both included.
fn peaks(ok: &[&&Entry]) -> (f64, u64) {
    let Some(first) = ok.iter().map(|e| e.start_s).min_by(f64::total_cmp) else {
        return (0.0, 0);
    };
    let mut tokens: HashMap<u64, u64> = HashMap::new();
    let mut edges: HashMap<u64, i64> = HashMap::new();
    for e in ok {
        let mut t = e.start_s + e.ttft_s;
        *tokens.entry((t - first) as u64).or_default() += 1;
        for gap in &e.itls {
            t += gap;
            *tokens.entry((t - first) as u64).or_default() += 1;
        }
        *edges.entry((e.start_s - first) as u64).or_default() += 1;
        let end = (e.start_s + e.latency_s - first) as u64;
        *edges.entry(end.saturating_add(1)).or_default() -= 1;
    }
    let mut seconds: Vec<(u64, i64)> = edges.into_iter().collect();
    seconds.sort_unstable();
    let (mut now, mut most) = (0i64, 0i64);
    for (_, d) in seconds {
        now += d;
        most = most.max(now);
    }
    let busiest = tokens.values().copied().max().unwrap_or(0);
    (busiest as f64, most.max(0) as u64)
}
