//! Data and expert parallelism from the command line (vLLM 0.33's `data_parallel_size` and
//! `enable_expert_parallel`): the memory plan of DeepSeek-V3 with DP attention and EP 8 on
//! 8 x H200 against vLLM's formula by hand, cores of a mixture-of-experts model stepping
//! together, vLLM's balancer spreading requests over the cores, and the refusals.

mod common;

use common::{csv_rows, json, kv_available_bytes, native_scenario, run, run_ok, temp_dir};

fn summary(
    d: &std::path::Path,
    trace: &str,
    sets: &[&str],
    out: Option<&str>,
) -> serde_json::Value {
    let scenario = native_scenario(d, trace, "");
    let mut args = vec!["run", scenario.to_str().unwrap(), "--json", "-q"];
    match out {
        Some(o) => args.extend_from_slice(&["--out", o]),
        None => args.push("--no-files"),
    }
    for s in sets {
        args.extend_from_slice(&["--set", s]);
    }
    json(&run_ok(&args))
}

/// DeepSeek-V3 with `--data-parallel-size 8 --enable-expert-parallel` on one node of 8
/// H200s: every GPU is an engine core at TP 1 holding the attention, the 3 dense layers,
/// the shared experts and the embeddings whole, and 256 / 8 = 32 of each MoE layer's 256
/// routed experts (3 x 7,168 x 2,048 weights each, fp8: one byte). The latent cache is
/// 61 layers x 16 tokens x 576 x 2 bytes per block, as at TP 8, and each core plans
/// `available // bytes_per_block` blocks of its own.
#[test]
fn deepseek_v3_with_dp_attention_and_ep_8_plans_vllms_block_count_per_core() {
    let d = temp_dir("dp-plan");
    let trace = "arrival_s,input_tokens,output_tokens\n0,100,20\n";
    let base = ["model.preset=deepseek-v3", "hardware.gpu=h200"];
    let tp8 = summary(
        &d,
        trace,
        &[&base[..], &["engine.tensor_parallel_size=8"]].concat(),
        None,
    );
    let dp8 = summary(
        &d,
        trace,
        &[
            &base[..],
            &[
                "engine.data_parallel_size=8",
                "engine.enable_expert_parallel=true",
            ],
        ]
        .concat(),
        None,
    );
    let per_expert = 3u64 * 7168 * 2048;
    // At TP 8 a GPU holds an eighth of everything (embeddings, LM head and vocabulary
    // split too); with DP 8 + EP 8 it holds everything but 7/8 of the routed experts.
    let w_tp8 = tp8["memory"]["weight_bytes"].as_u64().unwrap();
    let w_dp8 = dp8["memory"]["weight_bytes"].as_u64().unwrap();
    let total = 671_026_404_352u64; // kvsim's DeepSeek-V3 (no MTP layer), fp8 bytes
    let routed = 58 * 256 * per_expert;
    assert_eq!(w_dp8, total - routed + 58 * 32 * per_expert);
    assert!(w_tp8 < w_dp8, "{w_tp8} {w_dp8}");
    let m = &dp8["memory"];
    assert_eq!(m["block_bytes"], 61 * 16 * 576 * 2);
    assert_eq!(m["gpus_per_replica"], 1);
    assert_eq!(
        m["num_gpu_blocks"].as_u64().unwrap(),
        (kv_available_bytes(m) / 1_124_352.0).floor() as u64
    );
    let c = &dp8["cluster"];
    assert_eq!(
        (c["replicas"].as_u64(), c["data_parallel"].as_u64()),
        (Some(1), Some(8))
    );
    assert_eq!(c["gpus"], 8);
    assert_eq!(dp8["per_replica"].as_array().unwrap().len(), 8);
    assert_eq!(dp8["requests_completed"], 1);
    assert!(dp8["cost_model"]
        .as_str()
        .unwrap()
        .contains("MoE layers over 8 data-parallel cores, expert parallel"));
}

/// Eight requests arriving together on four cores: vLLM's balancer scores every core by
/// its requests and starts each scan one core further on, so they go two to a core.
/// Mixtral's cores step together: every step of the run starts on all four at once and
/// lasts the same, whatever each core runs.
#[test]
fn moe_cores_step_together_and_the_balancer_spreads_requests() {
    let d = temp_dir("dp-lockstep");
    let mut trace = String::from("arrival_s,input_tokens,output_tokens\n");
    for k in 0..8 {
        trace += &format!("0,{},{}\n", 200 + 300 * k, 5 + 7 * k);
    }
    let out = d.join("out");
    let s = summary(
        &d,
        &trace,
        &[
            "model.preset=mixtral-8x7b",
            "engine.data_parallel_size=4",
            "engine.tensor_parallel_size=2",
        ],
        Some(out.to_str().unwrap()),
    );
    assert_eq!(s["requests_completed"], 8);
    let prompts: Vec<u64> = s["per_replica"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["prompts"].as_u64().unwrap())
        .collect();
    assert_eq!(prompts, vec![2, 2, 2, 2]);
    let steps = csv_rows(&out.join("steps.csv"));
    let mut by_start: std::collections::BTreeMap<String, Vec<&str>> = Default::default();
    for r in &steps {
        by_start
            .entry(r["start_s"].clone())
            .or_default()
            .push(r["duration_ms"].as_str());
    }
    // The longest request runs alone at the end: the others' cores join with dummy
    // batches and record no row.
    let shared = by_start.values().filter(|v| v.len() > 1).count();
    assert!(shared > 5, "{by_start:?}");
    for durations in by_start.values() {
        assert!(
            durations.iter().all(|d| *d == durations[0]),
            "{durations:?}"
        );
    }
    let per_core = |k: &str| steps.iter().filter(|r| r["replica"] == k).count();
    assert!(
        per_core("0") < per_core("3"),
        "core 3 holds the longest outputs"
    );
}

/// A dense model's cores are independent: a core's steps do not wait for another's.
#[test]
fn dense_cores_step_on_their_own() {
    let d = temp_dir("dp-dense");
    let trace = "arrival_s,input_tokens,output_tokens\n0,3000,50\n0,100,50\n";
    let out = d.join("out");
    let s = summary(
        &d,
        trace,
        &["engine.data_parallel_size=2"],
        Some(out.to_str().unwrap()),
    );
    assert_eq!(s["requests_completed"], 2);
    assert_eq!(s["cluster"]["gpus"], 2);
    let steps = csv_rows(&out.join("steps.csv"));
    let first = |k: &str| {
        steps
            .iter()
            .find(|r| r["replica"] == k)
            .map(|r| r["duration_ms"].parse::<f64>().unwrap())
            .unwrap()
    };
    // The 3,000-token prompt's step is longer than the 100-token one's.
    assert!(
        first("0") > first("1") * 2.0,
        "{} {}",
        first("0"),
        first("1")
    );
}

/// What vLLM cannot split, or kvsim does not model, is refused with the key to change.
#[test]
fn impossible_splits_are_refused_with_the_key() {
    let d = temp_dir("dp-refuse");
    let scenario = native_scenario(&d, "arrival_s,input_tokens,output_tokens\n0,10,2\n", "");
    let p = scenario.to_str().unwrap();
    let cases: [(&[&str], &str); 3] = [
        (
            &[
                "model.preset=mixtral-8x7b",
                "engine.data_parallel_size=8",
                "engine.tensor_parallel_size=2",
                "engine.enable_expert_parallel=true",
            ],
            "engine.enable_expert_parallel",
        ),
        (
            &["engine.data_parallel_size=0"],
            "engine.data_parallel_size",
        ),
        (
            &[
                "engine.data_parallel_size=2",
                "cluster.disaggregation.prefill_replicas=1",
                "cluster.disaggregation.decode_replicas=1",
            ],
            "engine.data_parallel_size",
        ),
    ];
    for (sets, key) in cases {
        let mut args = vec!["run", p, "--no-files", "-q"];
        for s in sets {
            args.extend_from_slice(&["--set", s]);
        }
        let o = run(&args);
        assert_eq!(o.status.code(), Some(2), "{sets:?}");
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(err.contains(key), "{sets:?}: {err}");
    }
}
