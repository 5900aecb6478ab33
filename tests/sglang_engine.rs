//! `engine.kind: sglang` end to end: the Mooncake and Azure traces replay with every
//! request accounted for and exact output tokens under `--audit` (token slots conserved
//! after every step), with the overlap scheduler and without; the files carry the SGLang
//! kit's columns; the memory plan is SGLang's; keys of the other engine are refused.

mod common;

use common::{csv_rows, json, native_scenario, rejected_total, run, run_ok, shared, temp_dir};

fn replay(scenario: &str, trace: &str, limit: u32, extra: &[&str]) -> serde_json::Value {
    let path = format!("workload.source.path={}", shared().join(trace).display());
    let limit = format!("workload.limit={limit}");
    let mut args = vec![
        "run",
        scenario,
        "--set",
        &path,
        "--set",
        &limit,
        "--set",
        "engine.kind=sglang",
        "--no-files",
        "--json",
        "-q",
        "--audit",
    ];
    args.extend_from_slice(extra);
    json(&run_ok(&args))
}

fn accounted_and_exact(s: &serde_json::Value, limit: u64) {
    let arrived = s["requests_arrived"].as_u64().unwrap();
    assert_eq!(arrived, limit);
    let done = s["requests_completed"].as_u64().unwrap();
    assert_eq!(
        done + rejected_total(s),
        arrived,
        "every request accounted for"
    );
    assert_eq!(s["output_tokens"], s["expected_output_tokens"]);
    assert!(done > limit * 9 / 10, "{done} of {limit} completed");
}

#[test]
#[cfg_attr(not(kvsim_shared), ignore = "needs ../shared (or KVSIM_SHARED)")]
fn mooncake_and_azure_replay_under_sglang_with_audited_slots() {
    let mooncake = "traces/mooncake/conversation_trace.jsonl";
    let azure = "traces/azure2023/AzureLLMInferenceTrace_conv.csv";
    let mut retractions = 0;
    for overlap in ["false", "true"] {
        let set = format!("engine.disable_overlap_schedule={overlap}");
        let m = replay(
            "scenarios/mooncake-conversation.yaml",
            mooncake,
            1500,
            &["--set", &set],
        );
        accounted_and_exact(&m, 1500);
        assert!(m["prefix_hit_rate"].as_f64().unwrap() > 0.0);
        assert_eq!(m["sglang"]["overlap_schedule"], overlap == "false");
        retractions += m["preemptions"].as_u64().unwrap();
        let a = replay(
            "scenarios/azure-conversation.yaml",
            azure,
            1500,
            &["--set", &set],
        );
        accounted_and_exact(&a, 1500);
    }
    // One H100 is overloaded by Mooncake's conversations: the KV pool fills and SGLang
    // retracts decoding requests, so the audit covers retraction too.
    assert!(retractions > 0);
}

#[test]
fn files_carry_the_kits_columns_and_repeat_byte_for_byte() {
    let dir = temp_dir("sglang-files");
    let trace = grouped_trace(60, 900, 37);
    let extra = "engine: {kind: sglang, chunked_prefill_size: 1024}\nkv_cache: {max_total_tokens: 12000}\noutput: {per_step: true}\n";
    let sc = native_scenario(&dir, &trace, extra);
    let sc = sc.to_str().unwrap();
    let (a, b) = (dir.join("a"), dir.join("b"));
    for out in [&a, &b] {
        run_ok(&["run", sc, "--out", out.to_str().unwrap(), "-q", "--audit"]);
    }
    for f in ["steps.csv", "requests.csv"] {
        assert_eq!(
            std::fs::read(a.join(f)).unwrap(),
            std::fs::read(b.join(f)).unwrap(),
            "{f} differs between two runs of one seed"
        );
    }
    let steps = csv_rows(&a.join("steps.csv"));
    assert!(steps.len() > 50);
    let int = |r: &std::collections::HashMap<String, String>, k: &str| -> u64 {
        r[k].parse().unwrap_or_else(|_| panic!("{k} = {:?}", r[k]))
    };
    let mut chunked = 0;
    for r in &steps {
        assert_eq!(int(r, "kv_used") + int(r, "kv_free"), 12000);
        assert!(int(r, "tree_evictable") + int(r, "tree_protected") <= int(r, "kv_used"));
        match r["mode"].as_str() {
            "extend" => assert_eq!(int(r, "prefill_seqs"), int(r, "batch_size")),
            "decode" => assert_eq!(int(r, "decode_tokens"), int(r, "batch_size")),
            m => panic!("mode {m}"),
        }
        assert!(
            int(r, "prefill_tokens") <= 1024,
            "chunks of at most 1024 tokens"
        );
        chunked += !r["chunked_rid"].is_empty() as u32;
        let ratio: f64 = r["new_token_ratio"].parse().unwrap();
        assert!((0.098..=1.0).contains(&ratio));
    }
    assert!(chunked > 0, "prompts above 1024 tokens are chunked");
    let reqs = csv_rows(&a.join("requests.csv"));
    assert_eq!(reqs.len(), 60);
    // Requests of one prefix group share a prompt head: later ones hit the radix cache.
    let hits: u64 = reqs.iter().map(|r| int(r, "cached_tokens")).sum();
    assert!(hits > 0);
    assert!(reqs.iter().all(|r| r.contains_key("retractions")));
}

/// Three groups of prompts sharing their first 40 blocks of 16 tokens, `n` requests of
/// `base + step * i` prompt tokens.
fn grouped_trace(n: u64, base: u64, step: u64) -> String {
    let mut trace = String::from("arrival_s,input_tokens,output_tokens,session,prefix_hashes\n");
    for i in 0..n {
        let input = base + step * i;
        let ids: Vec<String> = (0..input.div_ceil(16))
            .map(|k| match k < 40 {
                true => (i % 3) * 1000 + k,
                false => (i + 1) * 100_000 + k,
            })
            .map(|id| id.to_string())
            .collect();
        let t = i as f64 * 0.05;
        trace += &format!("{t:.2},{input},{},,{}\n", 20 + i % 7, ids.join(" "));
    }
    trace
}

#[test]
fn prefix_affinity_asks_the_sglang_replicas_radix_trees() {
    let dir = temp_dir("sglang-affinity");
    let sc = native_scenario(&dir, &grouped_trace(60, 700, 5), "engine: {kind: sglang}\n");
    let hit = |router: &str| {
        let set = format!("cluster.router.kind={router}");
        let s = json(&run_ok(&[
            "run",
            sc.to_str().unwrap(),
            "--no-files",
            "--json",
            "-q",
            "--audit",
            "--set",
            "cluster.replicas=2",
            "--set",
            &set,
        ]));
        assert_eq!(s["requests_completed"], 60);
        s["prefix_hit_rate"].as_f64().unwrap()
    };
    // Round robin splits every group over both replicas; affinity keeps a group where its
    // prefix is cached, so each prefix is computed once instead of twice.
    let (rr, affinity) = (hit("round_robin"), hit("prefix_affinity"));
    assert!(
        affinity > rr,
        "prefix_affinity {affinity} against round_robin {rr}"
    );
}

#[test]
fn memory_plan_and_defaults_are_sglangs() {
    let dir = temp_dir("sglang-plan");
    let trace = "arrival_s,input_tokens,output_tokens\n0,100,5\n";
    let sc = native_scenario(&dir, trace, "engine: {kind: sglang}\n");
    let s = json(&run_ok(&[
        "run",
        sc.to_str().unwrap(),
        "--no-files",
        "--json",
        "-q",
    ]));
    let m = &s["memory"];
    assert_eq!(
        m["utilization"].as_f64().unwrap(),
        0.83,
        "H100: mem_fraction_static 0.830"
    );
    // (device - 0.5 GiB outside PyTorch) x 0.83 - weights, over 128 KiB per token
    // (Llama-3.1-8B: 32 layers x 8 KV heads x 128 x 2 (K, V) x 2 bytes).
    let device = m["gpu_memory_bytes"].as_f64().unwrap();
    let weights = m["weight_bytes"].as_f64().unwrap();
    let tokens = (((device - 0.5 * (1u64 << 30) as f64) * 0.83 - weights) / 131072.0).floor();
    let g = &s["sglang"];
    assert_eq!(g["max_total_tokens"].as_f64().unwrap(), tokens);
    assert_eq!(s["kv_capacity_tokens"].as_f64().unwrap(), tokens);
    // min(max(min(tokens / 131072 * 512, 4096), 2048), tokens / 2)
    assert_eq!(g["max_running_requests"], 2048);
    assert_eq!(g["chunked_prefill_size"], 8192);
    assert_eq!(g["max_prefill_tokens"], 16384);
    assert_eq!(g["schedule_policy"], "fcfs");
    assert_eq!(g["page_size"], 1);
    assert_eq!(g["overlap_schedule"], true);
    let s = json(&run_ok(&[
        "run",
        sc.to_str().unwrap(),
        "--no-files",
        "--json",
        "-q",
        "--set",
        "hardware.gpu=h200",
    ]));
    assert_eq!(s["memory"]["utilization"].as_f64().unwrap(), 0.903);
}

#[test]
fn keys_of_the_other_engine_are_refused_with_the_key_to_use() {
    let dir = temp_dir("sglang-keys");
    let sc = native_scenario(&dir, "arrival_s,input_tokens,output_tokens\n0,10,2\n", "");
    let sc = sc.to_str().unwrap();
    for (sets, field, hint) in [
        (
            vec!["engine.kind=sglang", "engine.max_num_seqs=8"],
            "engine.max_num_seqs",
            "engine.max_running_requests",
        ),
        (
            vec!["engine.kind=sglang", "kv_cache.num_gpu_blocks=100"],
            "kv_cache.num_gpu_blocks",
            "kv_cache.max_total_tokens",
        ),
        (
            vec!["engine.schedule_policy=lpm"],
            "engine.schedule_policy",
            "engine.kind: sglang",
        ),
        (
            vec!["engine.kind=sglang", "engine.schedule_policy=sjf"],
            "engine.schedule_policy",
            "fcfs, lpm, dfs-weight, lof, random",
        ),
        (
            vec!["engine.kind=sglang", "engine.enable_mixed_chunk=true"],
            "engine.enable_mixed_chunk",
            "not modelled",
        ),
        (
            vec![
                "engine.kind=sglang",
                "kv_cache.page_size=16",
                "engine.chunked_prefill_size=24",
            ],
            "engine.chunked_prefill_size",
            "not a multiple of kv_cache.page_size 16",
        ),
        (vec!["engine.kind=tgi"], "engine.kind", "vllm, sglang"),
    ] {
        let mut args = vec!["run", sc, "--no-files", "-q"];
        for s in &sets {
            args.extend_from_slice(&["--set", s]);
        }
        let o = run(&args);
        let err = String::from_utf8_lossy(&o.stderr);
        assert_eq!(o.status.code(), Some(2), "{sets:?}: {err}");
        assert!(err.contains(field) && err.contains(hint), "{sets:?}: {err}");
    }
}
