//! Models beyond dense GQA transformers from the command line: `kvsim model show`
//! describes mixture-of-experts, latent-attention, sliding-window, chunked-local and
//! linear-attention presets with the KV bytes (and per-request state) their `config.json`
//! gives; full-attention MoE models run with their experts priced by the distinct-experts
//! formula; linear attention runs with vLLM's Mamba groups; `kvsim run` refuses what it
//! does not model (exit 2, naming the field) rather than running it as something else.

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

/// Qwen3-Next's linear attention runs (its groups printed by `kvsim validate`); allocating
/// its state as full attention, which vLLM cannot, is refused naming the key.
#[test]
fn qwen3_next_validates_with_its_groups_and_refuses_the_hybrid_manager_off() {
    let d = temp_dir("models-qwen3-next");
    let scenario = native_scenario(&d, "arrival_s,input_tokens,output_tokens\n0,10,2\n", "");
    let sets = [
        "--set",
        "model.preset=qwen3-next-80b-a3b",
        "--set",
        "hardware.gpu=h200",
        "--set",
        "model.dtype=fp8",
    ];
    let mut args = vec!["validate", scenario.to_str().unwrap()];
    args.extend_from_slice(&sets);
    let out = run_ok(&args);
    assert!(out.contains("GPU blocks of 576 tokens"), "{out}");
    assert!(
        out.contains("KV cache groups: 4 groups of 12 layers (3 linear attention, 1 full attention), 14155776 bytes per block"),
        "{out}"
    );
    assert!(out.contains("1097728 bytes of state per layer"), "{out}");
    let mut args = vec!["run", scenario.to_str().unwrap(), "--no-files"];
    args.extend_from_slice(&sets);
    args.extend(["--set", "kv_cache.disable_hybrid_kv_cache_manager=true"]);
    let out = run(&args);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("kv_cache.disable_hybrid_kv_cache_manager"),
        "{err}"
    );
    assert!(err.contains("linear-attention"), "{err}");
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

/// Expert parallelism over 2 GPUs: each holds 4 of Mixtral's 8 experts whole, so a token
/// (top 2) activates `4 (1 - 0.75^B)` of a GPU's experts, 1 at batch 1; without it each GPU
/// holds half of every expert's width, and the same batch reads as many bytes. A GPU whose
/// core gathers its group's tokens sees the group's experts activated: more bytes, and
/// the MoE MLP slower than on its own tokens.
#[test]
fn expert_parallel_gpus_read_the_experts_they_hold() {
    use kvsim::cost::Roofline;
    use kvsim::hardware::Gpu;
    use kvsim::model::Model;
    let gpu = Gpu::preset("h100-sxm").unwrap();
    let eff = kvsim::scenario::Efficiency::default();
    let mixtral = Model::preset("mixtral-8x7b").unwrap();
    let ep = mixtral.shard_parallel(1, 1, 2, true).unwrap();
    let sliced = mixtral.shard_parallel(1, 1, 2, false).unwrap();
    assert_eq!(ep.local_experts(), 4);
    assert_eq!(ep.arch.moe.unwrap().expert_intermediate, 14336);
    assert_eq!(sliced.arch.moe.unwrap().expert_intermediate, 7168);
    assert_eq!(ep.weight_bytes(), sliced.weight_bytes());
    let expert = 3.0 * 4096.0 * 14336.0 * 2.0;
    let roof_ep = Roofline::new(&ep, &gpu, &eff, 0.0, 0.0);
    let roof_sliced = Roofline::new(&sliced, &gpu, &eff, 0.0, 0.0);
    for batch in [1.0, 8.0, 64.0] {
        let experts = 4.0 * (1.0 - 0.75f64.powf(batch));
        assert!((roof_ep.expected_experts(batch) - experts).abs() < 1e-9);
        assert!((roof_ep.moe_weight_bytes(batch) - experts * expert).abs() < 1.0);
        let half = roof_sliced.moe_weight_bytes(batch);
        assert!((half - 2.0 * experts * expert / 2.0).abs() < 1.0, "{half}");
    }
    assert!(roof_ep.moe_mlp_group_ns(1.0, 16.0) > roof_ep.moe_mlp_ns(1.0));
    // Active weights per GPU: a token's 2 experts spread over the 2 GPUs, 1 on each.
    let dense_part = ep.total_params() - 32 * 4 * (3 * 4096 * 14336);
    assert_eq!(ep.active_params(), dense_part + 32 * (3 * 4096 * 14336));
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

/// The 2026 presets against the Hugging Face safetensors totals of their checkpoints
/// (`api/models/<repo>` `safetensors.total`, bf16), which kvsim's parameter count meets
/// exactly: the text model from `text_config`, plus for Gemma 3 and Llama 4 the vision
/// encoder vLLM loads with the checkpoint; Qwen3-Next without its multi-token-prediction
/// layer. KV bytes per token and layer, and Qwen3-Next's linear-attention state per
/// request, by hand from each `config.json`.
#[test]
fn presets_of_2026_match_their_checkpoints_and_hand_kv_bytes() {
    use kvsim::model::Model;
    // SigLIP (27 layers of 1,152, MLP 4,304, 4,096 patches of 14 x 14 x 3) plus Gemma 3's
    // projector (1,152 x hidden and a 1,152 norm).
    let siglip = 27 * (4 * (1152 * 1152 + 1152) + 2 * 1152 * 4304 + 4304 + 1152 + 4 * 1152)
        + 14 * 14 * 3 * 1152
        + 1152
        + 4096 * 1152
        + 2 * 1152;
    assert_eq!(siglip, 416_866_032u64);
    // Llama 4's encoder (34 layers of 1,408, MLP 5,632, 577 positions, pixel-shuffle
    // adapter 5,632 -> 4,096 -> 4,096) and projector 4,096 -> 5,120.
    let llama4_vision = 34
        * (4 * 1408 * 1408 + 4 * 1408 + 2 * 1408 * 5632 + 5632 + 1408 + 4 * 1408)
        + 14 * 14 * 3 * 1408
        + 1408
        + 577 * 1408
        + 4 * 1408
        + 5632 * 4096
        + 4096 * 4096
        + 4096 * 5120;
    assert_eq!(llama4_vision, 871_932_416u64);
    // (preset, safetensors total, of which vision, KV layer types by hand)
    let sliding = |kv: u64| 2 * kv * 2; // K and V, bf16, per head dimension
    type LayerTypes = Vec<(&'static str, u32, u64)>;
    let cases: [(&str, u64, u64, LayerTypes); 5] = [
        (
            "gemma-3-12b",
            12_187_325_040,
            siglip + 1152 * 3840 + 1152,
            // 48 layers, every 6th full: 2 x 8 KV heads x 256 x 2 bytes
            vec![
                ("sliding window of 1024", 40, sliding(8 * 256)),
                ("full attention", 8, sliding(8 * 256)),
            ],
        ),
        (
            "gemma-3-27b",
            27_432_406_640,
            siglip + 1152 * 5376 + 1152,
            // 62 layers, every 6th full (5, 11, ..., 59): 2 x 16 x 128 x 2
            vec![
                ("sliding window of 1024", 52, sliding(16 * 128)),
                ("full attention", 10, sliding(16 * 128)),
            ],
        ),
        (
            "llama-4-scout-17b-16e",
            108_641_793_536,
            llama4_vision,
            // every 4th layer NoPE and global: 2 x 8 x 128 x 2
            vec![
                ("chunked local attention of 8192", 36, sliding(8 * 128)),
                ("full attention", 12, sliding(8 * 128)),
            ],
        ),
        (
            "llama-4-maverick-17b-128e",
            401_583_781_376,
            llama4_vision,
            vec![
                ("chunked local attention of 8192", 36, sliding(8 * 128)),
                ("full attention", 12, sliding(8 * 128)),
            ],
        ),
        (
            // 81,324,862,720 less the MTP layer: fc 2 x 2048 x 2048, two norms, one gated
            // attention + MoE layer, its norms and a final norm.
            "qwen3-next-80b-a3b",
            81_324_862_720 - 1_650_471_424,
            0,
            // every 4th layer attends: 2 x 2 KV heads x 256 x 2
            vec![("full attention", 12, sliding(2 * 256))],
        ),
    ];
    for (name, published, vision, kv) in cases {
        let m = Model::preset(name).unwrap();
        let bytes = m.weight_bytes() as f64;
        assert!(
            (bytes / (2.0 * published as f64) - 1.0).abs() < 0.01,
            "{name}: {bytes} bytes vs {published} parameters"
        );
        assert_eq!(m.total_params(), published, "{name}");
        assert_eq!(m.arch.vision_params, vision, "{name}");
        let want: Vec<(String, u32, u64)> =
            kv.iter().map(|&(k, n, b)| (k.to_string(), n, b)).collect();
        assert_eq!(m.kv_layer_types(), want, "{name}");
        let per_token: u64 = kv.iter().map(|&(_, n, b)| n as u64 * b).sum();
        assert_eq!(m.kv_bytes_per_token(), per_token, "{name}");
    }
    // The model cards' round figures: Scout 109 B, Maverick 400 B, Qwen3-Next 80 B.
    for (name, card) in [
        ("llama-4-scout-17b-16e", 109e9),
        ("llama-4-maverick-17b-128e", 400e9),
        ("qwen3-next-80b-a3b", 80e9),
    ] {
        let p = Model::preset(name).unwrap().total_params() as f64;
        assert!((p / card - 1.0).abs() < 0.01, "{name}: {p}");
    }
    // Active: all but the idle routed experts and the vision encoder. Llama 4's "17 B
    // active": Scout 48 layers x 15 idle experts, Maverick 24 x 127, of 3 x 5120 x 8192.
    let expert = 3 * 5120 * 8192u64;
    let scout = Model::preset("llama-4-scout-17b-16e").unwrap();
    assert_eq!(
        scout.active_params(),
        108_641_793_536 - llama4_vision - 48 * 15 * expert
    );
    let maverick = Model::preset("llama-4-maverick-17b-128e").unwrap();
    assert_eq!(maverick.moe_layers(), 24);
    assert_eq!(
        maverick.active_params(),
        401_583_781_376 - llama4_vision - 24 * 127 * expert
    );
    // Qwen3-Next: 48 layers x 502 idle experts of 3 x 2048 x 512.
    let next = Model::preset("qwen3-next-80b-a3b").unwrap();
    assert_eq!(
        next.active_params(),
        79_674_391_296 - 48 * 502 * 3 * 2048 * 512
    );
}

/// Qwen3-Next's 36 Gated DeltaNet layers keep a fixed state per request, as vLLM 0.33's
/// `gated_delta_net_state_shape` allocates it in the model dtype: a convolution state of
/// `(2 x 16 x 128 + 32 x 128)` channels x `(4 - 1)` taps and a recurrent state of 32 value
/// heads x 128 x 128, 2 bytes each; the KV cache dtype does not change it, TP splits it.
#[test]
fn qwen3_next_linear_attention_keeps_a_fixed_state_per_request() {
    use kvsim::model::{LayerAttention, Model};
    let m = Model::preset("qwen3-next-80b-a3b").unwrap();
    let conv = (2 * 16 * 128 + 32 * 128) * 3 * 2;
    let ssm = 32 * 128 * 128 * 2;
    assert_eq!((conv, ssm), (49_152, 1_048_576));
    assert_eq!(m.linear_state_bytes_per_layer(), (conv, ssm));
    assert_eq!(
        m.state_layer_types(),
        vec![(
            "linear attention (Gated DeltaNet)".to_string(),
            36,
            conv + ssm
        )]
    );
    assert_eq!(m.state_bytes_per_request(), 36 * (conv + ssm));
    assert_eq!(
        m.layer_attention(),
        vec![(LayerAttention::Linear, 36), (LayerAttention::Full, 12)]
    );
    let fp8 = m.clone().with_kv_cache_dtype("fp8").unwrap();
    assert_eq!(fp8.kv_bytes_per_token(), 12 * 2 * 2 * 256);
    assert_eq!(fp8.state_bytes_per_request(), 36 * (conv + ssm));
    // TP 4: a quarter of the heads' state; the 2 KV heads are replicated, one per GPU.
    let shard = m.shard(4, 1).unwrap();
    assert_eq!(shard.state_bytes_per_request(), 36 * (conv + ssm) / 4);
    assert_eq!(shard.kv_bytes_per_token(), 12 * 2 * 256 * 2);
    assert!(
        m.shard(32, 1).is_err(),
        "32 ranks cannot split 16 key heads"
    );

    let text = run_ok(&["model", "show", "qwen3-next-80b-a3b", "--tp", "4"]);
    assert!(
        text.contains("full attention: 12 layers x 2048 bytes = 24576"),
        "{text}"
    );
    assert!(
        text.contains(
            "linear attention (Gated DeltaNet): 36 layers x 1097728 bytes (convolution 49152 + recurrent 1048576) = 39518208"
        ),
        "{text}"
    );
    assert!(
        text.contains("state per request, fixed whatever its length"),
        "{text}"
    );
    assert!(text.contains("9879552 state bytes per request"), "{text}");
    let j = json(&run_ok(&["model", "show", "qwen3-next-80b-a3b", "--json"]));
    assert_eq!(j["kv_bytes_per_token"], 24_576);
    assert_eq!(j["state_bytes_per_request"], 39_518_208);
    assert_eq!(j["model"]["arch"]["linear_attention"]["value_heads"], 32);
    // Attention-only models keep their JSON as it was: no state fields.
    let llama = json(&run_ok(&["model", "show", "llama-3.1-8b", "--json"]));
    assert!(llama.get("state_bytes_per_request").is_none(), "{llama}");
    assert!(llama["model"]["arch"].get("linear_attention").is_none());
}

/// Maverick alternates dense and MoE layers (`interleave_moe_layer_step` 2): the roofline
/// prices 24 layers with the dense MLP of `intermediate_size_mlp` and 24 with the experts,
/// and the activation estimate takes the wider of the two.
#[test]
fn maverick_interleaves_dense_and_moe_layers_in_the_step_cost() {
    use kvsim::cost::{BatchShape, CostModel, Roofline, SeqWork};
    use kvsim::hardware::Gpu;
    use kvsim::model::Model;
    let m = Model::preset("llama-4-maverick-17b-128e").unwrap();
    let text = run_ok(&["model", "show", "llama-4-maverick-17b-128e"]);
    assert!(
        text.contains("one layer in 2 MoE (24 of 48), the others dense"),
        "{text}"
    );
    let gpu = Gpu::preset("h200").unwrap();
    let eff = kvsim::scenario::Efficiency::default();
    let roof = Roofline::new(&m, &gpu, &eff, 0.0, 0.0);
    let batch = BatchShape {
        decodes: vec![
            SeqWork {
                new_tokens: 1,
                context: 1000
            };
            32
        ],
        sampled: 32,
        moe_tokens: 0,
        ..Default::default()
    };
    let t = 32.0;
    let [qkv, o, gate_up, down] = roof.layer_gemms();
    assert_eq!(qkv, (5120, (40 + 2 * 8) * 128));
    assert_eq!(gate_up, (5120, 2 * 16384));
    let g = |(k, n): (u64, u64)| roof.gemm_ns(t, k, n);
    let attention = g(qkv) + g(o);
    let want = 24.0 * (attention + g(gate_up) + g(down)) + 24.0 * (attention + roof.moe_mlp_ns(t));
    let got = roof.step_cost(&batch).linear_ns;
    assert!((got - want).abs() < 1e-6 * want, "{got} vs {want}");
    // Activations of one token: the MoE layers' routed row (3 x 8192 + 5120) and shared
    // expert (3 x 8192), 54,272 wide, outgrow the dense layers' 3 x 16384 = 49,152.
    let peak = kvsim::engine::config::activation_peak(&m, 1, 0);
    let per_token = 4 * 5120 + (40 + 2 * 8) * 128 + (3 * 8192 + 5120) + 3 * 8192;
    assert_eq!(peak, per_token * 2);
}

/// Gemma 3 and Llama 4 run end to end under vLLM's KV cache groups: Gemma 3 27B's 52
/// sliding and 10 full layers in 7 groups of 10; Llama 4 Scout in one group by vLLM 0.33's
/// default for chunked local attention, or 3 chunked and 1 full group of 12 with the hybrid
/// manager asked for.
#[test]
fn gemma_3_and_llama_4_run_under_vllms_kv_cache_groups() {
    let d = temp_dir("models-run-2026");
    let scenario = native_scenario(
        &d,
        "arrival_s,input_tokens,output_tokens\n0,3000,40\n0.1,3000,40\n",
        "",
    );
    let groups = |extra: &[&str]| {
        let mut args = vec!["run", scenario.to_str().unwrap(), "--no-files", "--json"];
        args.extend_from_slice(extra);
        let s = json(&run_ok(&args));
        assert_eq!(s["requests_completed"], 2, "{extra:?}");
        s["memory"]["kv_cache_groups"].as_str().unwrap().to_string()
    };
    assert_eq!(
        groups(&["--set", "model.preset=gemma-3-27b"]),
        "7 groups of 10 layers (6 sliding window 1024, 1 full attention)"
    );
    let scout = [
        "--set",
        "model.preset=llama-4-scout-17b-16e",
        "--set",
        "engine.tensor_parallel_size=4",
    ];
    assert_eq!(groups(&scout), "1 group of 48 layers");
    let mut hybrid = scout.to_vec();
    hybrid.extend(["--set", "kv_cache.disable_hybrid_kv_cache_manager=false"]);
    assert_eq!(
        groups(&hybrid),
        "4 groups of 12 layers (3 chunked local 8192, 1 full attention)"
    );
}

#[test]
fn hugging_face_names_map_to_the_2026_presets() {
    use kvsim::model::hf_preset;
    for (hf, preset) in [
        ("google/gemma-3-27b-it", "gemma-3-27b"),
        ("google/gemma-3-12b-pt", "gemma-3-12b"),
        (
            "meta-llama/Llama-4-Scout-17B-16E-Instruct",
            "llama-4-scout-17b-16e",
        ),
        (
            "meta-llama/Llama-4-Maverick-17B-128E-Instruct",
            "llama-4-maverick-17b-128e",
        ),
        ("Qwen/Qwen3-Next-80B-A3B-Instruct", "qwen3-next-80b-a3b"),
        ("Qwen/Qwen3-Next-80B-A3B-Thinking", "qwen3-next-80b-a3b"),
    ] {
        assert_eq!(hf_preset(hf), Some(preset), "{hf}");
    }
    // The FP8 checkpoint is another dtype: no bf16 preset stands for it.
    assert_eq!(
        hf_preset("meta-llama/Llama-4-Maverick-17B-128E-Instruct-FP8"),
        None
    );
}
