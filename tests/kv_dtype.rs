//! The KV cache's dtype apart from the weights' (`kv_cache.cache_dtype`, vLLM's
//! `--kv-cache-dtype`): an fp8 cache halves a block's bytes, so the same memory holds twice
//! the blocks (counted by hand below), the weights are unchanged, and decode attention
//! reads half the bytes.

mod common;

use common::{json, native_scenario, run, run_ok, temp_dir};
use kvsim::engine::config::EngineSetup;
use kvsim::scenario::parse_scenario;
use std::path::Path;

fn memory(cache_dtype: &str) -> kvsim::engine::config::MemoryPlan {
    let text = format!(
        "workload:\n  source: {{kind: native, path: none.csv}}\nmodel: {{preset: llama-3.1-8b}}\nhardware: {{gpu: h100-sxm}}\nkv_cache: {{cache_dtype: {cache_dtype}}}\n"
    );
    let s = parse_scenario(&text, "kv-dtype", Path::new("."), &[]).unwrap();
    EngineSetup::from_scenario(&s).unwrap().memory
}

#[test]
fn fp8_doubles_the_blocks_of_the_same_memory_as_counted_by_hand() {
    // H100 SXM: 85,520,809,984 bytes x 0.92 = 78,679,145,185.28 for vLLM; minus the weights
    // (8,030,261,248 parameters x 2 = 16,060,522,496), the profiled activation peak
    // (2,124,414,976) and 0.5 GiB outside PyTorch (536,870,912): 59,957,336,801.28 bytes.
    // A bf16 block is 16 tokens x 131,072 bytes = 2,097,152; an fp8 one half of that.
    let left = 85_520_809_984f64 * 0.92 - 16_060_522_496.0 - 2_124_414_976.0 - 536_870_912.0;
    assert_eq!((left / 2_097_152.0).floor(), 28_589.0);
    assert_eq!((left / 1_048_576.0).floor(), 57_179.0);
    let bf16 = memory("auto");
    assert_eq!((bf16.num_gpu_blocks, bf16.block_bytes), (28_589, 2_097_152));
    for name in ["fp8", "fp8_e4m3", "fp8_e5m2"] {
        let fp8 = memory(name);
        assert_eq!(
            (fp8.num_gpu_blocks, fp8.block_bytes),
            (57_179, 1_048_576),
            "{name}"
        );
        assert_eq!(fp8.weight_bytes, bf16.weight_bytes);
        assert_eq!(fp8.activation_bytes, bf16.activation_bytes);
    }
    assert_eq!(memory("bfloat16").num_gpu_blocks, 28_589);
}

#[test]
fn fp8_cache_runs_faster_decode_steps_on_the_roofline() {
    let d = temp_dir("kv-dtype-run");
    let trace: String = std::iter::once("arrival_s,input_tokens,output_tokens\n".to_string())
        .chain((0..8).map(|_| "0,4000,64\n".to_string()))
        .collect();
    let scenario = native_scenario(&d, &trace, "");
    let s = scenario.to_str().unwrap();
    let bf16 = json(&run_ok(&["run", s, "--json", "--no-files"]));
    let fp8 = json(&run_ok(&[
        "run",
        s,
        "--json",
        "--no-files",
        "--set",
        "kv_cache.cache_dtype=fp8",
    ]));
    assert_eq!(fp8["requests_completed"], 8);
    let blocks = |v: &serde_json::Value| v["memory"]["num_gpu_blocks"].as_u64().unwrap();
    assert!(
        blocks(&fp8) >= 2 * blocks(&bf16),
        "{} {}",
        blocks(&fp8),
        blocks(&bf16)
    );
    // Same schedule (nothing is short of blocks), less KV read per decode step.
    let tpot = |v: &serde_json::Value| v["latency"]["tpot_ms"]["mean"].as_f64().unwrap();
    assert!(tpot(&fp8) < tpot(&bf16), "{} {}", tpot(&fp8), tpot(&bf16));
}

#[test]
fn an_unknown_cache_dtype_is_a_usage_error_naming_field_and_line() {
    let d = temp_dir("kv-dtype-bad");
    let scenario = native_scenario(
        &d,
        "arrival_s,input_tokens,output_tokens\n0,10,2\n",
        "kv_cache: {cache_dtype: fp4}\n",
    );
    let out = run(&["run", scenario.to_str().unwrap(), "--no-files"]);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("kv_cache.cache_dtype"), "{err}");
    assert!(err.contains("line"), "{err}");
    assert!(err.contains("fp8_e4m3"), "{err}");
}

#[test]
fn model_show_prints_the_hand_computed_kv_bytes_and_refuses_bad_input() {
    let text = run_ok(&[
        "model",
        "show",
        "llama-3.1-8b",
        "--kv-cache-dtype",
        "fp8",
        "--tp",
        "2",
    ]);
    // 32 layers x 2 (K, V) x 8 KV heads x 128 x 1 byte; TP 2 keeps 4 KV heads per GPU.
    assert!(text.contains("32 layers x 2048 bytes = 65536"), "{text}");
    assert!(text.contains("8.030 B parameters"), "{text}");
    assert!(text.contains("32768 KV bytes per token"), "{text}");
    let j = json(&run_ok(&["model", "show", "llama-3.1-8b", "--json"]));
    assert_eq!(j["kv_bytes_per_token"], 131_072);
    assert_eq!(j["params"], 8_030_261_248u64);
    assert_eq!(j["weight_bytes"], 16_060_522_496u64);
    let list = run_ok(&["model", "list"]);
    assert!(list.lines().any(|l| l == "mistral-7b"), "{list}");
    for bad in [
        &["model", "show", "gpt-9"][..],
        &["model", "show", "llama-3.1-8b", "--kv-cache-dtype", "int3"],
        &["model", "show", "llama-3.1-8b", "--tp", "3"],
    ] {
        let out = run(bad);
        assert_eq!(out.status.code(), Some(2), "{bad:?}");
        assert!(!out.stderr.is_empty());
    }
}
