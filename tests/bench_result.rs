//! `bench_result.json`: a run's result in `vllm bench serve --save-result --save-detailed`'s
//! format, read here with the key names vLLM 0.33.0 writes.

mod common;
use common::*;
use serde_json::Value;

fn quantile(sorted: &[f64], q: f64) -> f64 {
    let pos = q * (sorted.len() - 1) as f64;
    let (lo, hi) = (pos.floor() as usize, pos.ceil() as usize);
    sorted[lo] + (sorted[hi] - sorted[lo]) * (pos - lo as f64)
}

fn floats(v: &Value, key: &str) -> Vec<f64> {
    v[key]
        .as_array()
        .unwrap_or_else(|| panic!("{key}"))
        .iter()
        .map(|x| x.as_f64().unwrap())
        .collect()
}

fn close(a: f64, b: f64) -> bool {
    (a - b).abs() <= 1e-9 * a.abs().max(b.abs()).max(1.0)
}

fn bench_run(name: &str, sets: &[&str]) -> (Value, Value, std::path::PathBuf) {
    let out = temp_dir(name);
    let mut a = vec![
        "run",
        "scenarios/quickstart.yaml",
        "--json",
        "--bench-json",
        "--out",
        out.to_str().unwrap(),
    ];
    for s in sets {
        a.extend(["--set", s]);
    }
    let summary: Value = serde_json::from_str(&run_ok(&a)).unwrap();
    let text = std::fs::read_to_string(out.join("bench_result.json")).unwrap();
    (serde_json::from_str(&text).unwrap(), summary, out)
}

#[test]
fn the_result_reads_with_vllm_bench_serve_keys() {
    let (b, s, _) = bench_run("bench-json", &[]);
    let n = b["num_prompts"].as_u64().unwrap() as usize;
    assert_eq!(n, 300);
    assert_eq!(b["completed"], s["requests_completed"]);
    assert_eq!(b["failed"], 0);
    assert_eq!(b["total_output_tokens"], s["output_tokens"]);
    for key in [
        "input_lens",
        "output_lens",
        "ttfts",
        "itls",
        "latencies",
        "start_times",
        "errors",
    ] {
        assert_eq!(b[key].as_array().unwrap().len(), n, "{key}");
    }
    let ttfts = floats(&b, "ttfts");
    let mean = ttfts.iter().sum::<f64>() / n as f64;
    assert!(close(b["mean_ttft_ms"].as_f64().unwrap(), mean * 1e3));
    let mut sorted = ttfts.clone();
    sorted.sort_by(f64::total_cmp);
    for (key, q) in [
        ("median_ttft_ms", 0.5),
        ("p99_ttft_ms", 0.99),
        ("p90_ttft_ms", 0.9),
    ] {
        assert!(
            close(b[key].as_f64().unwrap(), quantile(&sorted, q) * 1e3),
            "{key}"
        );
    }
    // Same figures as the summary's (milliseconds there).
    assert!(close(
        b["p99_ttft_ms"].as_f64().unwrap(),
        s["latency"]["ttft_ms"]["p99"].as_f64().unwrap()
    ));
    let dur = b["duration"].as_f64().unwrap();
    assert!(close(
        b["request_throughput"].as_f64().unwrap(),
        300.0 / dur
    ));
    // Each request's gaps add up to its time from first token to finish.
    let lat = floats(&b, "latencies");
    let outs = floats(&b, "output_lens");
    for (i, itl) in b["itls"].as_array().unwrap().iter().enumerate() {
        let gaps: Vec<f64> = itl
            .as_array()
            .unwrap()
            .iter()
            .map(|x| x.as_f64().unwrap())
            .collect();
        assert_eq!(gaps.len() as f64, outs[i] - 1.0, "request {i}");
        let sum: f64 = gaps.iter().sum();
        assert!((sum - (lat[i] - ttfts[i])).abs() < 1e-6, "request {i}");
    }
    let starts = floats(&b, "start_times");
    assert_eq!(starts[0], 0.0);
    assert!(b["errors"].as_array().unwrap().iter().all(|e| e == ""));
    // The TPOT of vLLM: (latency - ttft) / (output - 1) per request with more than one token.
    let tpots: Vec<f64> = (0..n)
        .filter(|&i| outs[i] > 1.0)
        .map(|i| (lat[i] - ttfts[i]) / (outs[i] - 1.0))
        .collect();
    let mean_tpot = tpots.iter().sum::<f64>() / tpots.len() as f64;
    assert!(close(b["mean_tpot_ms"].as_f64().unwrap(), mean_tpot * 1e3));
}

#[test]
fn the_result_replays_as_a_vllm_bench_trace_and_rejections_are_failures() {
    // Prompts over 3000 tokens are rejected: failed requests with their error.
    let (b, s, out) = bench_run("bench-json-rej", &["engine.max_model_len=3000"]);
    let rejected = rejected_total(&s);
    assert!(rejected > 0);
    assert_eq!(b["failed"].as_u64().unwrap(), rejected);
    let errors = b["errors"].as_array().unwrap();
    assert_eq!(errors.iter().filter(|e| *e != "").count() as u64, rejected);
    // Read back as kvsim's `vllm_bench` source: the successful requests, their lengths.
    let scenario = out.join("replay.yaml");
    std::fs::write(
        &scenario,
        format!(
            "name: replay\nworkload:\n  source:\n    kind: vllm_bench\n    path: {}\nmodel:\n  preset: llama-3.1-8b\n",
            out.join("bench_result.json").display()
        ),
    )
    .unwrap();
    let stats: Value = serde_json::from_str(&run_ok(&[
        "trace",
        "stats",
        scenario.to_str().unwrap(),
        "--json",
    ]))
    .unwrap();
    assert_eq!(stats["requests"], b["completed"]);
    assert_eq!(stats["bound"]["input_tokens"], b["total_input_tokens"]);
}

/// vLLM's `calculate_metrics` peaks, from the result's own arrays: one-second buckets from
/// the first send; tokens at send + TTFT and after each gap; requests in every bucket from
/// their send's to their end's.
fn vllm_peaks(b: &Value) -> (f64, f64) {
    let starts = floats(b, "start_times");
    let ttfts = floats(b, "ttfts");
    let lat = floats(b, "latencies");
    let end = (0..starts.len())
        .map(|i| starts[i] + lat[i])
        .fold(0.0, f64::max);
    let buckets = end.ceil() as usize + 1;
    let mut tokens = vec![0.0; buckets];
    let mut running = vec![0.0; buckets];
    for (i, itl) in b["itls"].as_array().unwrap().iter().enumerate() {
        let mut t = starts[i] + ttfts[i];
        tokens[t as usize] += 1.0;
        for g in itl.as_array().unwrap() {
            t += g.as_f64().unwrap();
            tokens[t as usize] += 1.0;
        }
        let (from, to) = (starts[i] as usize, (starts[i] + lat[i]) as usize);
        for r in &mut running[from..=to] {
            *r += 1.0;
        }
    }
    let max = |v: &[f64]| v.iter().copied().fold(0.0, f64::max);
    (max(&tokens), max(&running))
}

#[test]
fn peaks_and_queue_times_follow_vllm_bench_serve() {
    let sets = [
        "workload.source.requests=60",
        "workload.turn_timing=arrival",
        "workload.max_concurrency=1",
    ];
    let (b, _, out) = bench_run("bench-queue", &sets);
    let (tokens, running) = vllm_peaks(&b);
    assert_eq!(b["max_output_tokens_per_s"].as_f64().unwrap(), tokens);
    assert_eq!(b["max_concurrent_requests"].as_f64().unwrap(), running);
    assert_eq!(b["rtfx"].as_f64().unwrap(), 0.0);
    // Each request waits from its due time (the trace's arrival) to its send.
    let trace = out.join("trace.csv");
    let mut a = vec!["trace", "synth", "scenarios/quickstart.yaml"];
    for s in &sets {
        a.extend(["--set", s]);
    }
    a.extend(["--out", trace.to_str().unwrap()]);
    run_ok(&a);
    let arrivals: Vec<f64> = std::fs::read_to_string(&trace)
        .unwrap()
        .lines()
        .filter(|l| !l.starts_with('#') && !l.starts_with("arrival"))
        .map(|l| l.split(',').next().unwrap().parse().unwrap())
        .collect();
    let starts = floats(&b, "start_times");
    let queue = floats(&b, "queue_times");
    assert_eq!(queue.len(), 60);
    assert_eq!(queue[0], 0.0);
    for i in 0..60 {
        let sent = starts[i] + arrivals[0];
        assert!(
            (queue[i] - (sent - arrivals[i])).abs() < 1e-6,
            "request {i}: queued {} s, sent {sent} s, due {} s",
            queue[i],
            arrivals[i]
        );
    }
    assert!(queue.iter().filter(|&&q| q > 0.0).count() > 30, "{queue:?}");
    let mean = queue.iter().sum::<f64>() / 60.0;
    assert!(close(
        b["mean_client_queue_time_ms"].as_f64().unwrap(),
        mean * 1e3
    ));
}
