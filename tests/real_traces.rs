//! Replays of the real public traces in `../shared/traces` (or `$KVSIM_SHARED/traces`). The
//! tests are listed as ignored when `build.rs` did not find that folder; CI always has it.

mod common;
use common::*;
use std::io::BufRead;

fn mooncake_args(traces: &std::path::Path) -> String {
    format!(
        "workload.source.path={}",
        traces.join("mooncake/conversation_trace.jsonl").display()
    )
}

/// Sum of output tokens in the Mooncake conversation trace, read independently of kvsim.
fn mooncake_output_tokens(traces: &std::path::Path) -> (u64, u64) {
    let f = std::fs::File::open(traces.join("mooncake/conversation_trace.jsonl")).unwrap();
    let (mut n, mut out) = (0, 0);
    for line in std::io::BufReader::new(f).lines() {
        let v: serde_json::Value = serde_json::from_str(&line.unwrap()).unwrap();
        n += 1;
        out += v["output_length"].as_u64().unwrap();
    }
    (n, out)
}

#[test]
#[cfg_attr(not(kvsim_shared), ignore = "needs ../shared (or KVSIM_SHARED)")]
fn mooncake_conversation_replays_completely() {
    let t = shared_traces();
    let set = mooncake_args(&t);
    let s = json(&run_ok(&[
        "run",
        "scenarios/mooncake-conversation.yaml",
        "--set",
        &set,
        "--json",
        "--no-files",
    ]));
    let (n, out) = mooncake_output_tokens(&t);
    assert_eq!(n, 12_031);
    assert_eq!(s["requests_arrived"], n);
    assert_eq!(
        s["requests_completed"], n,
        "every request completes: {:?}",
        s["requests_rejected"]
    );
    assert_eq!(s["output_tokens"], out);
    assert_eq!(s["expected_output_tokens"], out);
}

#[test]
#[cfg_attr(not(kvsim_shared), ignore = "needs ../shared (or KVSIM_SHARED)")]
fn mooncake_hit_rate_meets_the_infinite_cache_bound_and_never_exceeds_it() {
    let t = shared_traces();
    let set = mooncake_args(&t);
    let stats = json(&run_ok(&[
        "trace",
        "stats",
        "scenarios/mooncake-conversation.yaml",
        "--set",
        &set,
        "--json",
    ]));
    let bound = &stats["bound"];
    // The trace README's orientation figure: 36.6 % of blocks repeat; token-weighted with the
    // prefix rule it is 37.4 %.
    assert!((stats["prefix_reuse_bound"].as_f64().unwrap() - 0.3736).abs() < 1e-3);
    let engine_bound = bound["engine_hit_tokens"].as_u64().unwrap();
    let trace_bound = bound["reusable_tokens"].as_u64().unwrap();
    assert!(engine_bound <= trace_bound);
    // Enough blocks that nothing is ever evicted (the trace holds about 9.3 million blocks).
    let big = json(&run_ok(&[
        "run",
        "scenarios/mooncake-conversation.yaml",
        "--set",
        &set,
        "--set",
        "kv_cache.num_gpu_blocks=9600000",
        "--json",
        "--no-files",
    ]));
    assert_eq!(big["evictions"], 0);
    assert_eq!(big["requests_completed"], 12_031);
    // Equal to the bound after vLLM's partial-block and prompt_len - 1 rules.
    assert_eq!(big["prefix_hit_tokens"].as_u64().unwrap(), engine_bound);
    // A cache of 9,000 blocks (144k tokens) must lose hits.
    let small = json(&run_ok(&[
        "run",
        "scenarios/mooncake-conversation.yaml",
        "--set",
        &set,
        "--set",
        "kv_cache.num_gpu_blocks=9000",
        "--json",
        "--no-files",
    ]));
    assert!(small["evictions"].as_u64().unwrap() > 0);
    let small_hits = small["prefix_hit_tokens"].as_u64().unwrap();
    assert!(small_hits < engine_bound, "{small_hits} vs {engine_bound}");
    assert_eq!(small["requests_completed"], 12_031);
    assert_eq!(small["output_tokens"], big["output_tokens"]);
}

#[test]
#[cfg_attr(not(kvsim_shared), ignore = "needs ../shared (or KVSIM_SHARED)")]
fn mooncake_replay_is_deterministic() {
    let t = shared_traces();
    let set = mooncake_args(&t);
    let dir = temp_dir("mooncake-det");
    for d in ["a", "b"] {
        run_ok(&[
            "run",
            "scenarios/mooncake-conversation.yaml",
            "--set",
            &set,
            "--set",
            "workload.limit=3000",
            "--out",
            dir.join(d).to_str().unwrap(),
        ]);
    }
    for f in kvsim::output::FILES {
        assert_eq!(
            std::fs::read(dir.join("a").join(f)).unwrap(),
            std::fs::read(dir.join("b").join(f)).unwrap(),
            "{f}"
        );
    }
}

#[test]
#[cfg_attr(not(kvsim_shared), ignore = "needs ../shared (or KVSIM_SHARED)")]
fn azure_conversation_replays_completely() {
    let t = shared_traces();
    let path = t.join("azure2023/AzureLLMInferenceTrace_conv.csv");
    let mut rdr = csv::Reader::from_path(&path).unwrap();
    let (mut n, mut out) = (0u64, 0u64);
    for rec in rdr.records() {
        let rec = rec.unwrap();
        n += 1;
        out += rec[2].parse::<u64>().unwrap();
    }
    assert_eq!(n, 19_366);
    let set = format!("workload.source.path={}", path.display());
    let s = json(&run_ok(&[
        "run",
        "scenarios/azure-conversation.yaml",
        "--set",
        &set,
        "--json",
        "--no-files",
    ]));
    assert_eq!(s["requests_completed"], n);
    assert_eq!(s["output_tokens"], out);
    // Azure prompts carry no content ids, so nothing can hit.
    assert_eq!(s["prefix_hit_tokens"], 0);
    // The trace lasts about 3,502 s; a single H100 keeps up with it.
    assert!(s["makespan_s"].as_f64().unwrap() < 3_600.0);
}

#[test]
#[cfg_attr(not(kvsim_shared), ignore = "needs ../shared (or KVSIM_SHARED)")]
fn ragpulse_reads_segments_and_sessions() {
    let t = shared_traces();
    let path = t.join("ragpulse/0_trace.jsonl");
    let stats = json(&run_ok(&[
        "trace",
        "stats",
        path.to_str().unwrap(),
        "--format",
        "ragpulse",
        "--json",
    ]));
    // 7,106 rows; the blank lines are skipped and the out-of-order pair reordered.
    assert_eq!(stats["requests"], 7_106);
    assert!(stats["sessions"].as_u64().unwrap() > 1000);
    let bound = stats["prefix_reuse_bound"].as_f64().unwrap();
    assert!(bound > 0.1 && bound < 0.9, "{bound}");
}
