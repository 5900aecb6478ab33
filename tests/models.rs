//! Models beyond dense GQA transformers from the command line: `kvsim model show`
//! describes mixture-of-experts, latent-attention and sliding-window presets with the KV
//! bytes their `config.json` gives, and `kvsim run` refuses them (exit 2, naming the field)
//! until their KV cache groups and step costs are modelled, rather than running them as
//! something else.

mod common;

use common::{json, native_scenario, run, run_ok, temp_dir};

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
    assert!(oss.contains("not yet simulated by kvsim run"), "{oss}");
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
        "model.preset=mixtral-8x7b",
    ]);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("model.preset"), "{err}");
    assert!(err.contains("mixture of experts"), "{err}");
    assert!(err.contains("kvsim model show mixtral-8x7b"), "{err}");
}
