//! Helpers shared by the integration tests.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// Path of the built `kvsim` binary.
pub fn kvsim() -> Command {
    Command::new(env!("CARGO_BIN_EXE_kvsim"))
}

/// Repository root.
pub fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// A fresh, empty temporary directory for one test.
pub fn temp_dir(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("kvsim-test-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// The shared data folder (`traces/`, `fidelity/`, `conformance/`, `paging/`) that
/// `build.rs` found: `KVSIM_SHARED`, else `../shared` beside the checkout. Tests that call
/// it carry `#[cfg_attr(not(kvsim_shared), ignore = "...")]`, so they run only when it
/// was found.
pub fn shared() -> PathBuf {
    match option_env!("KVSIM_SHARED_DIR") {
        Some(d) if Path::new(d).join("traces/README.md").is_file() => PathBuf::from(d),
        Some(d) => panic!("the shared folder {d} found at build time is gone; `touch build.rs`"),
        None => panic!("no shared folder was found at build time; this test should be ignored"),
    }
}

/// `shared()/traces`.
pub fn shared_traces() -> PathBuf {
    shared().join("traces")
}

/// Run kvsim with arguments; returns the output.
pub fn run(args: &[&str]) -> Output {
    kvsim()
        .args(args)
        .current_dir(root())
        .output()
        .expect("kvsim runs")
}

/// Run and require success; returns stdout.
pub fn run_ok(args: &[&str]) -> String {
    let o = run(args);
    assert!(
        o.status.success(),
        "kvsim {args:?} failed: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8(o.stdout).unwrap()
}

/// Parse a JSON summary from stdout.
pub fn json(stdout: &str) -> serde_json::Value {
    serde_json::from_str(stdout).expect("valid JSON")
}

/// Requests a summary counts as rejected, over every reason.
pub fn rejected_total(summary: &serde_json::Value) -> u64 {
    summary["requests_rejected"]
        .as_object()
        .expect("requests_rejected is an object")
        .values()
        .map(|v| v.as_u64().expect("a count"))
        .sum()
}

/// Rows of a CSV file as maps from column to value.
pub fn csv_rows(path: &Path) -> Vec<std::collections::HashMap<String, String>> {
    let mut r = csv::Reader::from_path(path).unwrap();
    let h = r.headers().unwrap().clone();
    r.records()
        .map(|rec| {
            let rec = rec.unwrap();
            h.iter()
                .zip(rec.iter())
                .map(|(a, b)| (a.to_string(), b.to_string()))
                .collect()
        })
        .collect()
}

/// Write a scenario for a native trace with the given CSV body into `dir`.
pub fn native_scenario(dir: &Path, trace: &str, extra: &str) -> PathBuf {
    std::fs::write(dir.join("trace.csv"), trace).unwrap();
    let yaml = format!(
        "name: t\nworkload:\n  source: {{kind: native, path: trace.csv}}\nmodel: {{preset: llama-3.1-8b}}\nhardware: {{gpu: h100-sxm}}\n{extra}"
    );
    let p = dir.join("scenario.yaml");
    std::fs::write(&p, yaml).unwrap();
    p
}

/// `hardware.efficiency` for the plain roofline of kvsim's first round (GEMMs 0.7 / 0.8,
/// attention 0.5 / 0.7, no floors, no element-wise kernels): tests that compute step
/// times by hand use it.
#[allow(dead_code)]
pub const PLAIN_EFFICIENCY: &str = "{gemm_compute: 0.7, gemm_memory: 0.8, \
    gemm_overlap: .inf, gemm_floor_us: 0, gemm_tiles: false, decode_splits: false, attention_compute: 0.5, \
    attention_causal_compute: 0.5, attention_tile: 1, attention_memory: 0.7, \
    prefill_attention_floor_us: 0, decode_attention_floor_us: 0, \
    elementwise_memory: 1, elementwise_floor_us: 0, elementwise_kernels: false}";

/// A memory plan's available bytes (`memory` of a JSON summary): vLLM's default
/// `gpu_memory_utilization` (0.92) of the device less weights, activations and memory
/// outside PyTorch, what `num_gpu_blocks` divides.
pub fn kv_available_bytes(m: &serde_json::Value) -> f64 {
    m["gpu_memory_bytes"].as_f64().unwrap() * 0.92
        - m["weight_bytes"].as_f64().unwrap()
        - m["activation_bytes"].as_f64().unwrap()
        - m["non_torch_bytes"].as_f64().unwrap()
}
