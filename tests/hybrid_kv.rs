//! vLLM 0.33's hybrid KV cache manager from the command line: the memory plan of a model
//! with sliding-window layers (KV cache groups, bytes per block, block count) against vLLM's
//! formula by hand, and a sliding-window group that frees its blocks in a long generation;
//! Qwen3-Next's linear-attention (Mamba) groups: the aligned block size, their bounded
//! blocks per request and their hits at block boundaries.

mod common;

use common::{json, kv_available_bytes, native_scenario, run, run_ok, temp_dir};

fn memory(d: &std::path::Path, preset: &str, extra: &[&str]) -> serde_json::Value {
    let scenario = native_scenario(d, "arrival_s,input_tokens,output_tokens\n0,100,2000\n", "");
    let mut args = vec![
        "run",
        scenario.to_str().unwrap(),
        "--no-files",
        "--json",
        "-q",
        "--set",
    ];
    let model = format!("model.preset={preset}");
    args.push(&model);
    args.extend_from_slice(extra);
    json(&run_ok(&args))
}

/// gpt-oss-120b on one H100: 18 sliding-window and 18 full layers form two groups of 18
/// (`_get_kv_cache_groups_uniform_page_size`); a block is one page of 16 tokens x 2 x 8 KV
/// heads x 64 x 2 bytes = 32,768 bytes per layer of a group: 18 x 32,768 = 589,824; and
/// `num_blocks = available // bytes_per_block`. With the hybrid manager off, one group of
/// all 36 layers: twice the bytes, half the blocks.
#[test]
fn gpt_oss_120b_on_an_h100_plans_vllms_block_count() {
    let d = temp_dir("hybrid-plan");
    let s = memory(&d, "gpt-oss-120b", &[]);
    let m = &s["memory"];
    assert_eq!(m["block_bytes"], 18 * 16 * 2 * 8 * 64 * 2);
    assert_eq!(
        m["kv_cache_groups"],
        "2 groups of 18 layers (1 sliding window 128, 1 full attention)"
    );
    let by_hand = (kv_available_bytes(m) / 589_824.0).floor() as u64;
    assert_eq!(m["num_gpu_blocks"].as_u64().unwrap(), by_hand);
    let off = memory(
        &d,
        "gpt-oss-120b",
        &["--set", "kv_cache.disable_hybrid_kv_cache_manager=true"],
    );
    let m = &off["memory"];
    assert_eq!(m["block_bytes"], 36 * 16 * 2 * 8 * 64 * 2);
    assert_eq!(m["kv_cache_groups"], "1 group of 36 layers");
    assert_eq!(
        m["num_gpu_blocks"].as_u64().unwrap(),
        (kv_available_bytes(m) / 1_179_648.0).floor() as u64
    );
    // The capacity in tokens is the same: the full group holds one block per 16 tokens.
    assert_eq!(
        s["kv_capacity_tokens"].as_u64().unwrap() / 16,
        s["memory"]["num_gpu_blocks"].as_u64().unwrap() - 1
    );
}

/// One request, 100 prompt tokens and 2,000 generated, on gpt-oss-20b (12 sliding, 12 full
/// layers): the last step computes token 2,098, so the full group ends with
/// cdiv(2,099, 16) = 132 blocks; the sliding group never holds more than 128 / 16 + 1 = 9:
/// a peak of 141 blocks. With the hybrid manager off the one group holds 132.
#[test]
fn a_long_generation_holds_the_window_plus_one_block_in_the_sliding_group() {
    let d = temp_dir("hybrid-long");
    let on = memory(&d, "gpt-oss-20b", &["--audit"]);
    assert_eq!(on["requests_completed"], 1);
    assert_eq!(on["kv_blocks_used_peak"], 132 + 9);
    let off = memory(
        &d,
        "gpt-oss-20b",
        &["--set", "kv_cache.disable_hybrid_kv_cache_manager=true"],
    );
    assert_eq!(off["kv_blocks_used_peak"], 132);
}

/// What the hybrid manager does not model yet is refused, naming the key.
#[test]
fn features_of_one_full_attention_group_are_refused_with_hybrid_groups() {
    let d = temp_dir("hybrid-refuse");
    let scenario = native_scenario(&d, "arrival_s,input_tokens,output_tokens\n0,10,2\n", "");
    for (key, value) in [
        ("kv_cache.eviction", "lru"),
        ("kv_cache.cpu_offload", "{gib: 4}"),
        ("engine.preemption_mode", "swap"),
    ] {
        let set = format!("{key}={value}");
        let out = run(&[
            "run",
            scenario.to_str().unwrap(),
            "--no-files",
            "--set",
            "model.preset=gpt-oss-20b",
            "--set",
            &set,
        ]);
        assert_eq!(out.status.code(), Some(2), "{key}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(key), "{key}: {err}");
        assert!(err.contains("disable_hybrid_kv_cache_manager"), "{err}");
    }
}

/// DeepSeek-V3 on 8 x H200 at TP 8: MLA caches one latent of `kv_lora_rank +
/// qk_rope_head_dim` = 576 elements per token and layer, the same on every rank (vLLM's
/// `MLAAttentionSpec`, replicated over TP): one group of 61 layers, a block of 61 x 16 x
/// 576 x 2 bytes = 1,124,352 on each GPU, and `num_blocks = available // bytes_per_block`
/// per GPU (the minimum over ranks, which are alike).
#[test]
fn deepseek_v3_on_8_h200_plans_vllms_block_count() {
    let d = temp_dir("hybrid-mla");
    let s = memory(
        &d,
        "deepseek-v3",
        &[
            "--set",
            "hardware.gpu=h200",
            "--set",
            "engine.tensor_parallel_size=8",
        ],
    );
    assert_eq!(s["requests_completed"], 1);
    let m = &s["memory"];
    assert_eq!(m["block_bytes"], 61 * 16 * 576 * 2);
    assert_eq!(m["kv_cache_groups"], "1 group of 61 layers");
    assert_eq!(m["gpus_per_replica"], 8);
    assert_eq!(
        m["num_gpu_blocks"].as_u64().unwrap(),
        (kv_available_bytes(m) / 1_124_352.0).floor() as u64
    );
}

/// Qwen3-Next-80B-A3B (FP8 weights) on one H200: 36 Gated DeltaNet layers and 12 full,
/// groups of 12: 3 linear and 1 full. A linear layer's state is (4 - 1) x 8,192 x 2 +
/// 32 x 128 x 128 x 2 = 1,097,728 bytes; an attention token 2 x 2 x 256 x 2 = 2,048 bytes
/// per layer; with prefix caching ("align") the block is 64 x cdiv(1,097,728, 64 x 2,048)
/// = 576 tokens (a multiple of 16 already), the state padded to 576 x 2,048 = 1,179,648
/// bytes, 12 of them per block: 14,155,776; `num_blocks = available // bytes_per_block`.
/// At TP 4 on 4 x H200 (bf16): 274,432 bytes of state, 1,024 per token, 64 x
/// cdiv(274,432, 65,536) = 320 tokens, 12 x 320 x 1,024 = 3,932,160 bytes per block.
#[test]
fn qwen3_next_on_h200_plans_vllms_aligned_blocks() {
    let d = temp_dir("hybrid-mamba-plan");
    let tp1 = ["--set", "hardware.gpu=h200", "--set", "model.dtype=fp8"];
    let s = memory(&d, "qwen3-next-80b-a3b", &tp1);
    assert_eq!(s["requests_completed"], 1);
    let m = &s["memory"];
    assert_eq!(m["block_bytes"], 14_155_776);
    assert_eq!(
        m["kv_cache_groups"],
        "4 groups of 12 layers (3 linear attention, 1 full attention)"
    );
    assert_eq!(m["full_attention_groups"], 1);
    let blocks = m["num_gpu_blocks"].as_u64().unwrap();
    assert_eq!(
        blocks,
        (kv_available_bytes(m) / 14_155_776.0).floor() as u64
    );
    // The block size is 576 tokens: the one full group's capacity.
    assert_eq!(
        s["kv_capacity_tokens"].as_u64().unwrap(),
        (blocks - 1) * 576
    );
    let tp4 = [
        "--set",
        "hardware.gpu=h200",
        "--set",
        "engine.tensor_parallel_size=4",
    ];
    let s = memory(&d, "qwen3-next-80b-a3b", &tp4);
    let m = &s["memory"];
    assert_eq!(m["block_bytes"], 3_932_160);
    let blocks = m["num_gpu_blocks"].as_u64().unwrap();
    assert_eq!(blocks, (kv_available_bytes(m) / 3_932_160.0).floor() as u64);
    assert_eq!(
        s["kv_capacity_tokens"].as_u64().unwrap(),
        (blocks - 1) * 320
    );
    // Prefix caching off ("none" mode): no checkpoint alignment, 16 x cdiv(1,097,728,
    // 32,768) = 544 tokens.
    let mut none = tp1.to_vec();
    none.extend(["--set", "kv_cache.enable_prefix_caching=false"]);
    let s = memory(&d, "qwen3-next-80b-a3b", &none);
    assert_eq!(s["memory"]["block_bytes"], 12 * 544 * 2048);
}

/// One request, 100 prompt tokens and 2,000 generated, on Qwen3-Next (blocks of 576): the
/// full group ends with cdiv(2,099, 576) = 4 blocks; each linear group holds its current
/// state block and, for a step or two after crossing a block boundary (the last step's
/// output still in flight), the previous one: at most 2 (the bound is 3 with a prefill
/// checkpoint, tested in the manager's unit tests), so the peak is 4 + 3 x 2 = 10, under
/// `--audit` (every step checks that the tables' blocks are the pool's).
#[test]
fn qwen3_next_linear_groups_hold_a_bounded_number_of_blocks_in_a_long_generation() {
    let d = temp_dir("hybrid-mamba-long");
    let s = memory(
        &d,
        "qwen3-next-80b-a3b",
        &[
            "--set",
            "hardware.gpu=h200",
            "--set",
            "model.dtype=fp8",
            "--audit",
        ],
    );
    assert_eq!(s["requests_completed"], 1);
    assert_eq!(s["kv_blocks_used_peak"], 4 + 3 * 2);
}

/// Hits of a linear-attention model: a second request replaying a 1,300-token prompt hits
/// floor((1,300 - 1) / 576) x 576 = 1,152 tokens (the only state block cached, the prompt's
/// checkpoint); one sharing 1,200 tokens hits the same 1,152; one sharing 600 tokens gets
/// 0, though the full group alone would give it one block of 576: no state block is cached
/// within it.
#[test]
fn qwen3_next_hits_only_at_the_cached_state_blocks_boundary() {
    let d = temp_dir("hybrid-mamba-hits");
    let ids = |from: u32, n: u32| {
        (from..from + n)
            .map(|i| i.to_string())
            .collect::<Vec<_>>()
            .join(" ")
    };
    let first = format!("0,1300,2,1,{}", ids(1, 13));
    let hit = |second: String| -> serde_json::Value {
        let trace = format!(
            "# kvsim-trace v1 hash_block_tokens=100\narrival_s,input_tokens,output_tokens,session,prefix_hashes\n{first}\n{second}\n"
        );
        let scenario = native_scenario(&d, &trace, "");
        json(&run_ok(&[
            "run",
            scenario.to_str().unwrap(),
            "--no-files",
            "--json",
            "-q",
            "--audit",
            "--set",
            "model.preset=qwen3-next-80b-a3b",
            "--set",
            "hardware.gpu=h200",
            "--set",
            "model.dtype=fp8",
        ]))
    };
    let replay = hit(format!("60,1300,2,2,{}", ids(1, 13)));
    assert_eq!(replay["prefix_hit_tokens"], 1152);
    let longer = hit(format!("60,2000,2,3,{} {}", ids(1, 12), ids(201, 8)));
    assert_eq!(longer["prefix_hit_tokens"], 1152);
    let short = hit(format!("60,1300,2,4,{} {}", ids(1, 6), ids(301, 7)));
    assert_eq!(short["prefix_hit_tokens"], 0);
}
