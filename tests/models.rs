//! Models beyond dense GQA transformers from the command line: `kvsim model show`
//! describes mixture-of-experts, latent-attention and sliding-window presets with the KV
//! bytes their `config.json` gives; full-attention MoE models run with their experts priced
//! by the distinct-experts formula; `kvsim run` refuses what it does not model yet (exit 2,
//! naming the field) rather than running it as something else.

mod common;

use common::{json, native_scenario, run, run_ok, shared_traces, temp_dir};

#[test]
fn model_show_describes_moe_mla_and_sliding_presets() {
    let oss = run_ok(&["model", "show", "gpt-oss-120b"]);
    // 18 sliding and 18 full layers of 2 x 8 KV heads x 64 x 2 bytes.
    assert!(
        oss.contains("sliding window of 128: 18 layers x 2048 bytes = 36864"),
        "{oss}"
    );
    assert!(
        oss.contains("full attention: 18 layers x 2048 bytes = 36864"),
        "{oss}"
    );
    assert!(oss.contains("experts: 128 routed, top 4"), "{oss}");
    assert!(!oss.contains("not yet simulated by kvsim run"), "{oss}");
    let ds = json(&run_ok(&[
        "model",
        "show",
        "deepseek-v3",
        "--tp",
        "8",
        "--json",
    ]));
    // 61 layers x (512 + 64) x 2 bytes, replicated on every rank.
    assert_eq!(ds["kv_bytes_per_token"], 70_272);
    assert_eq!(ds["shard_kv_bytes_per_token"], 70_272);
    assert_eq!(ds["model"]["arch"]["mla"]["kv_lora_rank"], 512);
    let fp8 = json(&run_ok(&[
        "model",
        "show",
        "deepseek-v3",
        "--kv-cache-dtype",
        "fp8",
        "--json",
    ]));
    assert_eq!(fp8["kv_bytes_per_token"], 35_136);
}

#[test]
fn run_refuses_a_model_it_cannot_simulate_yet() {
    let d = temp_dir("models-refuse");
    let scenario = native_scenario(&d, "arrival_s,input_tokens,output_tokens\n0,10,2\n", "");
    let out = run(&[
        "run",
        scenario.to_str().unwrap(),
        "--no-files",
        "--set",
        "model.preset=deepseek-v3",
    ]);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("model.preset"), "{err}");
    assert!(err.contains("latent attention (MLA)"), "{err}");
    assert!(err.contains("kvsim model show deepseek-v3"), "{err}");
}

/// The distinct-experts formula `E (1 - (1 - k/E)^B)` at batch 1, 8, 64 and 512, by hand,
/// and the expert weight bytes a decode step reads growing with it.
#[test]
fn moe_decode_reads_the_weights_of_the_experts_the_batch_activates() {
    use kvsim::cost::Roofline;
    use kvsim::hardware::Gpu;
    use kvsim::model::Model;
    let gpu = Gpu::preset("h100-sxm").unwrap();
    let eff = kvsim::scenario::Efficiency::default();
    let roof = |name: &str| Roofline::new(&Model::preset(name).unwrap(), &gpu, &eff, 0.0, 0.0);
    // Mixtral: 8 experts, top 2; each expert 3 x 4096 x 14336 weights of 2 bytes.
    let mixtral = roof("mixtral-8x7b");
    let expert = 3.0 * 4096.0 * 14336.0 * 2.0;
    for (batch, experts) in [
        (1.0, 2.0),
        (8.0, 8.0 * (1.0 - 0.75f64.powi(8))), // 7.199
        (64.0, 8.0 * (1.0 - 0.75f64.powi(64))),
        (512.0, 8.0),
    ] {
        let got = mixtral.expected_experts(batch);
        assert!((got - experts).abs() < 1e-9, "batch {batch}: {got}");
        let bytes = mixtral.moe_weight_bytes(batch);
        assert!(
            (bytes - experts * expert).abs() < 1.0,
            "batch {batch}: {bytes}"
        );
    }
    // Qwen3-30B-A3B: 128 experts, top 8.
    let qwen = roof("qwen3-30b-a3b");
    for (batch, experts) in [(1.0, 8.0), (8.0, 51.62), (64.0, 125.94), (512.0, 128.0)] {
        let got = qwen.expected_experts(batch);
        assert!((got - experts).abs() < 0.01, "batch {batch}: {got}");
    }
    // More activated experts, more bytes: the MoE MLP of a step grows sublinearly in the
    // batch while it is memory bound.
    let (t1, t8, t64) = (
        qwen.moe_mlp_ns(1.0),
        qwen.moe_mlp_ns(8.0),
        qwen.moe_mlp_ns(64.0),
    );
    assert!(t1 < t8 && t8 < t64 && t64 < 64.0 * t1, "{t1} {t8} {t64}");
}

/// Mixtral-8x7B on two H100s at TP 2 replays the Azure 2023 conversation trace end to end.
#[test]
#[cfg_attr(not(kvsim_shared), ignore = "needs ../shared (or KVSIM_SHARED)")]
fn mixtral_at_tp2_replays_a_real_trace() {
    let trace = shared_traces().join("azure2023/AzureLLMInferenceTrace_conv.csv");
    let out = run_ok(&[
        "run",
        "scenarios/azure-conversation.yaml",
        "--set",
        &format!("workload.source.path={}", trace.display()),
        "--set",
        "model.preset=mixtral-8x7b",
        "--set",
        "engine.tensor_parallel_size=2",
        "--json",
        "--no-files",
    ]);
    let s = json(&out);
    assert_eq!(s["requests_completed"], 19_366);
    // 46.7 B parameters x 2 bytes over 2 GPUs (the router and norms are replicated).
    let w = s["memory"]["weight_bytes"].as_f64().unwrap();
    assert!((w / (46.70e9 * 2.0 / 2.0) - 1.0).abs() < 0.01, "{w}");
}
