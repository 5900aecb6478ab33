//! Token-level policies in serving, against numbers computed by hand: eviction shrinks a
//! request to its budget after the prompt and so raises the batch; selection reads fewer
//! tokens per step but holds as many blocks; quantization packs more tokens per block.

mod common;

use common::{csv_rows, json, native_scenario, run, run_ok, temp_dir};
use kvsim::engine::config::EngineSetup;
use kvsim::scenario::parse_scenario;
use std::path::Path;

/// Twenty requests at t=0, 320-token prompts (20 blocks of 16), 32 output tokens, on a
/// cache of exactly 100 usable blocks.
fn twenty_requests(dir: &Path, extra: &str) -> String {
    let trace: String = std::iter::once("arrival_s,input_tokens,output_tokens\n".to_string())
        .chain((0..20).map(|_| "0,320,32\n".to_string()))
        .collect();
    let yaml = format!(
        "kv_cache: {{num_gpu_blocks: 101, block_size: 16, enable_prefix_caching: false{extra}}}\nengine: {{max_num_batched_tokens: 100000}}\n"
    );
    native_scenario(dir, &trace, &yaml)
        .to_string_lossy()
        .into_owned()
}

fn summary(scenario: &str) -> serde_json::Value {
    json(&run_ok(&["run", scenario, "--json", "--no-files"]))
}

#[test]
fn eviction_at_20_percent_raises_the_batch_as_computed_by_hand() {
    let d = temp_dir("tp-evict");
    let full = summary(&twenty_requests(&d, ""));
    // Full cache: 5 prompts fill the 100 blocks; each needs a 21st block to decode, so no
    // step ever holds more than 5.
    assert_eq!(full["max_batch"], 5);
    assert_eq!(full["requests_completed"], 20);

    let d2 = temp_dir("tp-evict-snap");
    let snap = summary(&twenty_requests(
        &d2,
        ", token_policy: {kind: snapkv, keep_ratio: 0.2}",
    ));
    // SnapKV at 20 %: a prompt of 320 keeps 64 tokens, so from its first decode step a
    // request holds ceil(65 / 16) = 5 blocks instead of 21. Admission still needs the 20
    // blocks of a whole prompt. Step 1: 5 prompts (100 blocks). Step 2: 5 x 5 = 25 held,
    // 3 prompts admitted (batch 8). Then 11, 13, 14, 15, 16 and at step 8: 16 x 5 + 20 =
    // 100 blocks, batch 17; later steps hold 17 at most (16 x 5 + one whole prompt).
    assert_eq!(snap["max_batch"], 17);
    assert_eq!(snap["requests_completed"], 20);
    let tput = |s: &serde_json::Value| s["output_token_throughput"].as_f64().unwrap();
    assert!(
        tput(&snap) > 1.5 * tput(&full),
        "throughput {} vs {}",
        tput(&snap),
        tput(&full)
    );

    // A masked implementation frees nothing: the same batch as the full cache, and its
    // scoring (32 fp32 weights per token written and read back) slows decoding a little.
    let d3 = temp_dir("tp-evict-masked");
    let masked = summary(&twenty_requests(
        &d3,
        ", token_policy: {kind: h2o, keep_ratio: 0.2, masked: true}",
    ));
    assert_eq!(masked["max_batch"], 5);
    assert!(tput(&masked) <= tput(&full) && tput(&masked) > 0.95 * tput(&full));
}

#[test]
fn evicted_requests_leave_blocks_by_their_budget() {
    // One request: prompt 800 (50 blocks), 100 output tokens, SnapKV at 20 % (160 kept).
    let d = temp_dir("tp-single");
    let sc = native_scenario(
        &d,
        "arrival_s,input_tokens,output_tokens\n0,800,100\n",
        "kv_cache: {num_gpu_blocks: 101, token_policy: {kind: snapkv, keep_ratio: 0.2}}\n",
    );
    let out = d.join("out");
    run_ok(&["run", sc.to_str().unwrap(), "--out", out.to_str().unwrap()]);
    let used: Vec<u32> = csv_rows(&out.join("steps.csv"))
        .iter()
        .map(|r| r["blocks_used"].parse().unwrap())
        .collect();
    // Step 1 prefills the whole prompt (50 blocks); step 2 decodes token 801 with 161
    // resident (11 blocks); the last step decodes token 899 with 259 resident (17 blocks).
    assert_eq!(used.len(), 100);
    assert_eq!(used[0], 50);
    assert_eq!(used[1], 11);
    assert_eq!(used[99], 17);
    assert!(used.windows(2).skip(1).all(|w| w[1] >= w[0]));
}

#[test]
fn selection_lowers_step_time_by_the_bytes_it_skips_but_not_memory() {
    // One request of 8,000 prompt tokens and 2 output tokens: step 2 decodes with 8,001
    // tokens in context.
    let steps = |extra: &str, name: &str| {
        let d = temp_dir(name);
        let sc = native_scenario(
            &d,
            "arrival_s,input_tokens,output_tokens\n0,8000,2\n",
            &format!("kv_cache: {{num_gpu_blocks: 1001{extra}}}\n"),
        );
        let out = d.join("out");
        run_ok(&["run", sc.to_str().unwrap(), "--out", out.to_str().unwrap()]);
        csv_rows(&out.join("steps.csv"))
    };
    let full = steps("", "tp-sel-full");
    let quest = steps(
        ", token_policy: {kind: quest, keep_ratio: 0.2}",
        "tp-sel-quest",
    );
    let ms = |rows: &[std::collections::HashMap<String, String>], i: usize| -> f64 {
        rows[i]["duration_ms"].parse().unwrap()
    };
    // The prefill is untouched.
    assert_eq!(ms(&full, 0), ms(&quest, 0));
    // Quest reads round(0.2 x 8,001) = 1,600 selected tokens plus one page bound per 16
    // tokens (8,001 / 16 = 500.06) in 30 layers, and all 8,001 in its 2 dense layers:
    // (2 x 8,001 + 30 x 2,100.06) / 32 = 2,468.9, so 2,469 tokens per layer. Llama-3.1-8B
    // reads 4,096 KV bytes per token and layer; H100 3.35 TB/s at its 90 % attention
    // efficiency: 32 x (8,001 - 2,469) x 4,096 B / 3.015 TB/s = 0.240494 ms less.
    let saved = ms(&full, 1) - ms(&quest, 1);
    assert!((saved - 0.240494).abs() < 0.0003, "saved {saved} ms");
    // Memory: every token stays, so the same 501 blocks are in use.
    assert_eq!(full[1]["blocks_used"], "501");
    assert_eq!(quest[1]["blocks_used"], "501");
}

/// The 10 GiB small model of the cluster tests: 7,796,144,128 bytes left for KV blocks of
/// 131,072 bytes at bf16 (59,479 blocks).
fn small_blocks(token_policy: &str) -> (u64, u64) {
    let text = format!("name: small\nworkload:\n  source: {{kind: native, path: none.csv}}\nmodel: {{layers: 4, hidden: 1024, heads: 8, kv_heads: 4, head_dim: 128, intermediate: 4096, vocab: 32000, dtype: bf16, max_position: 4096, tie_embeddings: false}}\nhardware: {{gpu: h100-sxm, memory_gib: 10}}\nkv_cache: {{gpu_memory_utilization: 0.9, activation_gib: 1.0, non_torch_gib: 0.5{token_policy}}}\n");
    let s = parse_scenario(&text, "small", Path::new("."), &[]).unwrap();
    let setup = EngineSetup::from_scenario(&s).unwrap();
    (setup.memory.block_bytes, setup.memory.num_gpu_blocks)
}

#[test]
fn quantization_to_4_bits_doubles_the_blocks_of_8_bits() {
    let left = 7_796_144_128u64;
    assert_eq!(small_blocks(""), (131_072, left / 131_072));
    assert_eq!(small_blocks("").1, 59_479);
    // Without scale overhead: 8 bits halve the block, 4 bits quarter it.
    let bits = |b: u32| format!(", token_policy: {{kind: kivi, bits: {b}, group_size: 0}}");
    assert_eq!(small_blocks(&bits(8)), (65_536, 118_959));
    assert_eq!(small_blocks(&bits(4)), (32_768, 237_919));
    // 237,919 = 2 x 118,959 + 1 (the floor of 7,796,144,128 / 32,768 = 237,919.4).
    // KIVI's default group of 32 with an fp16 scale and zero point adds 1 bit per element:
    // 5/16 of the bf16 block, 40,960 bytes, 190,335 blocks (3.2 x).
    assert_eq!(
        small_blocks(", token_policy: {kind: kivi, bits: 4}"),
        (40_960, 190_335)
    );
}

#[test]
fn compacted_requests_do_not_share_prefixes() {
    // Two requests with the same 512-token prefix (hash ids per 512 tokens).
    let trace = "# kvsim-trace v1 hash_block_tokens=512\narrival_s,input_tokens,output_tokens,session,prefix_hashes\n0,1024,4,1,1 2\n5,1024,4,2,1 3\n";
    let hit = |extra: &str, name: &str| {
        let d = temp_dir(name);
        let sc = native_scenario(&d, trace, &format!("kv_cache: {{block_size: 16{extra}}}\n"));
        summary(sc.to_str().unwrap())["prefix_hit_rate"]
            .as_f64()
            .unwrap()
    };
    assert_eq!(hit("", "tp-px-none"), 0.25);
    assert_eq!(
        hit(", token_policy: {kind: quest, keep_ratio: 0.2}", "tp-px-q"),
        0.25
    );
    assert_eq!(
        hit(", token_policy: {kind: snapkv, keep_ratio: 0.2}", "tp-px-s"),
        0.0
    );
}

#[test]
fn token_policy_errors_name_the_field() {
    let d = temp_dir("tp-errors");
    for (extra, field) in [
        ("{kind: lru, keep_ratio: 0.2}", "kv_cache.token_policy.kind"),
        ("{kind: snapkv}", "kv_cache.token_policy.keep_ratio"),
        (
            "{kind: snapkv, keep_ratio: 1.5}",
            "kv_cache.token_policy.keep_ratio",
        ),
        ("{kind: kivi, bits: 0}", "kv_cache.token_policy.bits"),
        ("{kind: kivi, bits: 32}", "kv_cache.token_policy.bits"),
        (
            "{kind: quest, keep_ratio: 0.2, masked: true}",
            "kv_cache.token_policy.masked",
        ),
        ("{kind: snapkv, keep_ratio: 0.2, budget: 5}", "budget"),
    ] {
        let sc = native_scenario(
            &d,
            "arrival_s,input_tokens,output_tokens\n0,10,2\n",
            &format!("kv_cache: {{token_policy: {extra}}}\n"),
        );
        let o = run(&["run", sc.to_str().unwrap(), "--no-files"]);
        let err = String::from_utf8_lossy(&o.stderr);
        assert_eq!(o.status.code(), Some(2), "{extra}: {err}");
        assert!(err.contains(field), "{extra}: {err}");
        assert!(err.contains("line 6"), "{extra}: {err}");
    }
}

#[test]
fn four_bit_kivi_on_an_h100_doubles_the_blocks_of_8_bit() {
    // The Mooncake scenario's deployment (Llama-3.1-8B on one H100): 2 MiB blocks at bf16.
    let root = common::root();
    let plan = |sets: &[&str]| {
        let sets: Vec<String> = sets.iter().map(|s| s.to_string()).collect();
        let s = kvsim::scenario::load_scenario(
            &root.join("scenarios/mooncake-conversation.yaml"),
            &sets,
        )
        .unwrap();
        EngineSetup::from_scenario(&s).unwrap().memory
    };
    let full = plan(&[]);
    assert_eq!(full.block_bytes, 2 * 1024 * 1024);
    let left = full.gpu_memory_bytes as f64 * full.utilization
        - (full.weight_bytes + full.activation_bytes + full.non_torch_bytes) as f64;
    let kivi = |bits: &str| {
        plan(&[
            "kv_cache.token_policy.kind=kivi",
            bits,
            "kv_cache.token_policy.group_size=0",
        ])
    };
    let (eight, four) = (
        kivi("kv_cache.token_policy.bits=8"),
        kivi("kv_cache.token_policy.bits=4"),
    );
    assert_eq!(eight.block_bytes, 1024 * 1024);
    assert_eq!(four.block_bytes, 512 * 1024);
    assert_eq!(
        four.num_gpu_blocks,
        (left / (512.0 * 1024.0)).floor() as u64
    );
    assert!(four.num_gpu_blocks - 2 * eight.num_gpu_blocks <= 1);
    assert!(eight.num_gpu_blocks - 2 * full.num_gpu_blocks <= 1);
}

#[test]
fn bundled_long_context_scenario_runs_and_snapkv_beats_the_full_cache() {
    let run_with = |kind: &str| {
        let set = format!("kv_cache.token_policy.kind={kind}");
        json(&run_ok(&[
            "run",
            "scenarios/long-context-snapkv.yaml",
            "--set",
            &set,
            "--json",
            "--no-files",
        ]))
    };
    let (snap, full) = (run_with("snapkv"), run_with("none"));
    assert_eq!(snap["requests_completed"], 400);
    assert_eq!(full["requests_completed"], 400);
    let get = |s: &serde_json::Value, k: &str| s[k].as_f64().unwrap();
    assert!(get(&snap, "kv_blocks_used_peak") < get(&full, "kv_blocks_used_peak"));
    assert!(get(&snap, "goodput") > get(&full, "goodput"));
    assert_eq!(snap["token_policy"]["name"], "snapkv");
    assert!(full["token_policy"].is_null());
    // The summary says why the prefix cache goes unused.
    assert!(snap["warnings"][0]
        .as_str()
        .unwrap()
        .contains("neither hit nor fill the prefix cache"));
    assert_eq!(full["warnings"].as_array().unwrap().len(), 0);
}

#[test]
fn every_request_completes_and_blocks_are_conserved_under_pressure() {
    // A small cache forces preemption (recompute or swap); --audit recounts every block
    // after every step. Eviction, selection and quantization, on one replica and on a
    // prefill/decode split.
    for (policy, extra) in [
        ("snapkv", &[][..]),
        (
            "snapkv",
            &[
                "engine.preemption_mode=swap",
                "kv_cache.token_policy.keep_ratio=0.9",
            ][..],
        ),
        ("streaming_llm", &[][..]),
        ("quest", &[][..]),
        ("kivi", &[][..]),
        (
            "snapkv",
            &[
                "cluster.replicas=2",
                "cluster.disaggregation.prefill_replicas=1",
                "cluster.disaggregation.decode_replicas=1",
            ][..],
        ),
    ] {
        let mut args: Vec<String> = [
            "run",
            "scenarios/quickstart.yaml",
            "--audit",
            "--json",
            "--no-files",
            "--set",
            "kv_cache.num_gpu_blocks=400",
            "--set",
            "kv_cache.token_policy.keep_ratio=0.2",
            "--set",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        args.push(format!("kv_cache.token_policy.kind={policy}"));
        for e in extra {
            args.push("--set".into());
            args.push(e.to_string());
        }
        let argv: Vec<&str> = args.iter().map(|s| s.as_str()).collect();
        let s = json(&run_ok(&argv));
        // Every request is accounted for: completed, or rejected for a prompt longer than
        // the whole 6,384-token cache (a few of the synthetic prompts reach 8,000).
        let rejected: u64 = s["requests_rejected"]
            .as_object()
            .unwrap()
            .iter()
            .map(|(reason, n)| {
                assert_eq!(reason, "exceeds_kv_capacity", "{policy} {extra:?}");
                n.as_u64().unwrap()
            })
            .sum();
        let completed = s["requests_completed"].as_u64().unwrap();
        assert_eq!(completed + rejected, 300, "{policy} {extra:?}");
        assert!(completed > 280, "{policy} {extra:?}: {completed}");
        if extra.contains(&"engine.preemption_mode=swap") {
            // Compacted requests were swapped out and back in.
            assert!(s["swap"]["swap_preemptions"].as_u64().unwrap() > 0);
            assert_eq!(
                s["swap"]["swapped_out_blocks"],
                s["swap"]["swapped_in_blocks"]
            );
        }
    }
}
