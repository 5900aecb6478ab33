//! `model.hf_config`: a model read from its Hugging Face `config.json` equals the preset
//! written from the same numbers, for a dense model, mixtures of experts, latent attention,
//! sliding-window, chunked-local and linear-attention layers; and bad configs are refused
//! with the file and the key.

mod common;

use common::{native_scenario, run, run_ok, temp_dir};
use kvsim::model::Model;
use kvsim::scenario::ModelSpec;

/// The `config.json` fields of each model, as its checkpoint publishes them (keys the
/// checkpoint leaves to its `transformers` class defaults are left out here too).
const CONFIGS: &[(&str, &str)] = &[
    (
        "llama-3.1-8b",
        r#"{"architectures": ["LlamaForCausalLM"], "model_type": "llama", "hidden_size": 4096,
        "intermediate_size": 14336, "num_hidden_layers": 32, "num_attention_heads": 32,
        "num_key_value_heads": 8, "vocab_size": 128256, "max_position_embeddings": 131072,
        "tie_word_embeddings": false, "torch_dtype": "bfloat16"}"#,
    ),
    (
        "mixtral-8x7b",
        r#"{"model_type": "mixtral", "hidden_size": 4096, "intermediate_size": 14336,
        "max_position_embeddings": 32768, "num_attention_heads": 32, "num_experts_per_tok": 2,
        "num_hidden_layers": 32, "num_key_value_heads": 8, "num_local_experts": 8,
        "sliding_window": null, "tie_word_embeddings": false, "torch_dtype": "bfloat16",
        "vocab_size": 32000}"#,
    ),
    (
        "qwen3-30b-a3b",
        r#"{"model_type": "qwen3_moe", "hidden_size": 2048, "intermediate_size": 6144,
        "num_hidden_layers": 48, "num_attention_heads": 32, "num_key_value_heads": 4,
        "head_dim": 128, "num_experts": 128, "num_experts_per_tok": 8,
        "moe_intermediate_size": 768, "decoder_sparse_step": 1, "vocab_size": 151936,
        "max_position_embeddings": 40960, "tie_word_embeddings": false,
        "torch_dtype": "bfloat16", "sliding_window": null, "use_sliding_window": false}"#,
    ),
    (
        "deepseek-v3",
        r#"{"model_type": "deepseek_v3", "hidden_size": 7168, "intermediate_size": 18432,
        "kv_lora_rank": 512, "max_position_embeddings": 163840, "moe_intermediate_size": 2048,
        "n_routed_experts": 256, "n_shared_experts": 1, "num_attention_heads": 128,
        "num_experts_per_tok": 8, "num_hidden_layers": 61, "num_key_value_heads": 128,
        "q_lora_rank": 1536, "qk_nope_head_dim": 128, "qk_rope_head_dim": 64,
        "v_head_dim": 128, "first_k_dense_replace": 3, "vocab_size": 129280,
        "tie_word_embeddings": false, "torch_dtype": "bfloat16", "num_nextn_predict_layers": 1,
        "quantization_config": {"quant_method": "fp8", "fmt": "e4m3",
        "weight_block_size": [128, 128]}}"#,
    ),
    (
        "gpt-oss-120b",
        r#"{"model_type": "gpt_oss", "hidden_size": 2880, "intermediate_size": 2880,
        "num_hidden_layers": 36, "num_attention_heads": 64, "num_key_value_heads": 8,
        "head_dim": 64, "num_local_experts": 128, "num_experts_per_tok": 4,
        "sliding_window": 128, "attention_bias": true, "vocab_size": 201088,
        "max_position_embeddings": 131072, "tie_word_embeddings": false,
        "torch_dtype": "bfloat16", "quantization_config": {"quant_method": "mxfp4"},
        "layer_types": LAYER_TYPES}"#,
    ),
    (
        "gemma-3-27b",
        r#"{"architectures": ["Gemma3ForConditionalGeneration"], "model_type": "gemma3",
        "text_config": {"model_type": "gemma3_text", "head_dim": 128, "hidden_size": 5376,
        "intermediate_size": 21504, "num_attention_heads": 32, "num_hidden_layers": 62,
        "num_key_value_heads": 16, "sliding_window": 1024},
        "vision_config": {"model_type": "siglip_vision_model", "hidden_size": 1152},
        "torch_dtype": "bfloat16"}"#,
    ),
    (
        "llama-4-scout-17b-16e",
        r#"{"model_type": "llama4", "text_config": {"model_type": "llama4_text",
        "hidden_size": 5120, "intermediate_size": 8192, "intermediate_size_mlp": 16384,
        "num_hidden_layers": 48, "num_attention_heads": 40, "num_key_value_heads": 8,
        "head_dim": 128, "num_local_experts": 16, "num_experts_per_tok": 1,
        "interleave_moe_layer_step": 1, "attention_chunk_size": 8192,
        "no_rope_layers": NO_ROPE, "use_qk_norm": true, "vocab_size": 202048,
        "max_position_embeddings": 10485760, "tie_word_embeddings": false},
        "torch_dtype": "bfloat16"}"#,
    ),
    (
        "qwen3-next-80b-a3b",
        r#"{"model_type": "qwen3_next", "hidden_size": 2048, "intermediate_size": 5120,
        "num_hidden_layers": 48, "num_attention_heads": 16, "num_key_value_heads": 2,
        "head_dim": 256, "num_experts": 512, "num_experts_per_tok": 10,
        "moe_intermediate_size": 512, "shared_expert_intermediate_size": 512,
        "decoder_sparse_step": 1, "full_attention_interval": 4, "linear_num_key_heads": 16,
        "linear_num_value_heads": 32, "linear_key_head_dim": 128,
        "linear_value_head_dim": 128, "linear_conv_kernel_dim": 4, "vocab_size": 151936,
        "max_position_embeddings": 262144, "tie_word_embeddings": false,
        "torch_dtype": "bfloat16"}"#,
    ),
];

fn config_text(raw: &str) -> String {
    let layer_types: Vec<&str> = (0..36)
        .map(|i| {
            if i % 2 == 0 {
                "\"sliding_attention\""
            } else {
                "\"full_attention\""
            }
        })
        .collect();
    let no_rope: Vec<&str> = (0..48)
        .map(|i| if i % 4 == 3 { "0" } else { "1" })
        .collect();
    raw.replace("LAYER_TYPES", &format!("[{}]", layer_types.join(", ")))
        .replace("NO_ROPE", &format!("[{}]", no_rope.join(", ")))
}

fn write_config(dir: &std::path::Path, name: &str, raw: &str) -> std::path::PathBuf {
    let folder = dir.join(name);
    std::fs::create_dir_all(&folder).unwrap();
    let path = folder.join("config.json");
    std::fs::write(&path, config_text(raw)).unwrap();
    path
}

#[test]
fn each_config_reads_as_its_preset() {
    let d = temp_dir("hf-config");
    for (preset, raw) in CONFIGS {
        let path = write_config(&d, preset, raw);
        let read = Model::from_spec(&ModelSpec {
            hf_config: Some(path),
            ..ModelSpec::default()
        })
        .unwrap_or_else(|e| panic!("{preset}: {e}"));
        let mut want = Model::preset(preset).unwrap();
        // The vision encoder is not in config.json's numbers.
        want.arch.vision_params = 0;
        assert_eq!(read, want, "{preset}");
    }
}

#[test]
fn a_scenario_runs_a_config_from_a_path_beside_it() {
    let d = temp_dir("hf-config-run");
    write_config(&d, "Mixtral-8x7B-v0.1", CONFIGS[1].1);
    let scenario = native_scenario(&d, "arrival_s,input_tokens,output_tokens\n0,100,5\n", "");
    let yaml = std::fs::read_to_string(&scenario).unwrap().replace(
        "model: {preset: llama-3.1-8b}",
        "model: {hf_config: Mixtral-8x7B-v0.1/config.json}",
    );
    std::fs::write(&scenario, yaml).unwrap();
    let out = run_ok(&[
        "run",
        scenario.to_str().unwrap(),
        "--no-files",
        "--json",
        "-q",
        "--set",
        "engine.tensor_parallel_size=2",
    ]);
    let s: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(s["requests_completed"], 1);
    assert_eq!(s["model"], "mixtral-8x7b-v0.1");
}

#[test]
fn bad_configs_are_refused_with_the_file_and_key() {
    let d = temp_dir("hf-config-bad");
    let cases = [
        (r#"{"hidden_size": 4096}"#, "num_hidden_layers"),
        (
            r#"{"num_hidden_layers": 2, "hidden_size": 64, "num_attention_heads": 4,
            "num_key_value_heads": 3, "intermediate_size": 128, "vocab_size": 100,
            "max_position_embeddings": 512}"#,
            "num_key_value_heads",
        ),
        (
            r#"{"num_hidden_layers": -2, "hidden_size": 64}"#,
            "num_hidden_layers",
        ),
        (r#"{"num_hidden_layers": 2,"#, "line 1"),
        (
            r#"{"num_hidden_layers": 2, "hidden_size": 64, "num_attention_heads": 4,
            "intermediate_size": 128, "vocab_size": 100, "max_position_embeddings": 512,
            "torch_dtype": "int4"}"#,
            "torch_dtype",
        ),
    ];
    for (k, (raw, key)) in cases.iter().enumerate() {
        let path = write_config(&d, &format!("bad{k}"), raw);
        let scenario = native_scenario(&d, "arrival_s,input_tokens,output_tokens\n0,10,2\n", "");
        let o = run(&[
            "run",
            scenario.to_str().unwrap(),
            "--no-files",
            "-q",
            "--set",
            "model.preset=null",
            "--set",
            &format!("model.hf_config={}", path.display()),
        ]);
        assert_eq!(o.status.code(), Some(2), "{raw}");
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(
            err.contains("model.hf_config") && err.contains(key),
            "{raw}: {err}"
        );
        assert!(err.contains(&format!("bad{k}")), "{err}");
    }
    // A preset beside it is refused.
    let path = write_config(&d, "both", CONFIGS[0].1);
    let scenario = native_scenario(&d, "arrival_s,input_tokens,output_tokens\n0,10,2\n", "");
    let o = run(&[
        "run",
        scenario.to_str().unwrap(),
        "--no-files",
        "-q",
        "--set",
        &format!("model.hf_config={}", path.display()),
    ]);
    assert_eq!(o.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&o.stderr).contains("model.preset"));
}
