//! Clusters: tensor and pipeline parallelism against hand-computed numbers, routers, the
//! CPU tier, swap preemption, prefill/decode disaggregation, sweeps and plans.

mod common;
use common::*;
use kvsim::cost::{BatchShape, SeqWork};
use kvsim::engine::config::EngineSetup;
use kvsim::scenario::parse_scenario;
use std::path::Path;

/// A small model whose sizes are easy to compute by hand, on a 10 GiB H100.
fn small(extra: &[&str]) -> (kvsim::scenario::Scenario, EngineSetup) {
    let text = format!("name: small\nworkload:\n  source: {{kind: native, path: none.csv}}\nmodel: {{layers: 4, hidden: 1024, heads: 8, kv_heads: 4, head_dim: 128, intermediate: 4096, vocab: 32000, dtype: bf16, max_position: 4096, tie_embeddings: false}}\nhardware: {{gpu: h100-sxm, memory_gib: 10, efficiency: {PLAIN_EFFICIENCY}}}\nengine: {{step_overhead_us: 0, per_request_overhead_us: 0}}\nkv_cache: {{gpu_memory_utilization: 0.9, activation_gib: 1.0, non_torch_gib: 0.5}}\n");
    let sets: Vec<String> = extra.iter().map(|s| s.to_string()).collect();
    let s = parse_scenario(&text, "small", Path::new("."), &sets).unwrap();
    let setup = EngineSetup::from_scenario(&s).unwrap();
    (s, setup)
}

const GIB: f64 = 1024.0 * 1024.0 * 1024.0;

#[test]
fn tensor_parallelism_splits_weights_and_kv_as_computed_by_hand() {
    // Budget per GPU: 10 GiB x 0.9 - 1 GiB activations - 0.5 GiB other.
    let budget = 10.0 * GIB * 0.9 - 1.5 * GIB;
    // (TP, weight bytes per GPU, KV block bytes per GPU), from the layer sizes:
    // TP 1: 4 layers x 15,730,688 + 2 x 32,768,000 embeddings + 1,024 = 128,459,776 params.
    // TP 2: 4 x 7,866,368 + 2 x 16,384,000 + 1,024 = 64,234,496 params.
    // TP 4: 4 x 3,934,208 + 2 x 8,192,000 + 1,024 = 32,121,856 params.
    // Block: 16 tokens x 4 layers x 2 (K, V) x KV heads per GPU x 128 x 2 bytes.
    for (tp, weights, block) in [
        (1u32, 256_919_552u64, 131_072u64),
        (2, 128_468_992, 65_536),
        (4, 64_243_712, 32_768),
    ] {
        let set = format!("engine.tensor_parallel_size={tp}");
        let (_, setup) = small(&[&set]);
        assert_eq!(setup.memory.weight_bytes, weights, "TP {tp}");
        assert_eq!(setup.memory.block_bytes, block, "TP {tp}");
        let blocks = ((budget - weights as f64) / block as f64).floor() as u64;
        assert_eq!(setup.memory.num_gpu_blocks, blocks, "TP {tp}");
    }
    // So: 59,479 / 120,919 / 243,799 blocks: TP 2 more than doubles the KV capacity.
    let (_, one) = small(&[]);
    let (_, four) = small(&["engine.tensor_parallel_size=4"]);
    assert_eq!(one.memory.num_gpu_blocks, 59_479);
    assert_eq!(four.memory.num_gpu_blocks, 243_799);
}

/// Roofline time of one kernel, ns, on an H100 with the plain roofline's efficiencies.
fn kernel(flops: f64, bytes: f64, compute_eff: f64, memory_eff: f64) -> f64 {
    (flops / (989e12 * compute_eff)).max(bytes / (3350e9 * memory_eff)) * 1e9
}

fn gemm(t: f64, k: f64, n: f64) -> f64 {
    kernel(2.0 * t * k * n, (k * n + t * (k + n)) * 2.0, 0.7, 0.8)
}

/// One layer of a GPU's shard for `tokens` decode tokens of context 1000, heads per GPU
/// `h`, KV heads `kv`, MLP width `i`.
fn decode_layer(tokens: f64, h: f64, kv: f64, i: f64) -> (f64, f64) {
    let linear = gemm(tokens, 1024.0, (h + 2.0 * kv) * 128.0)
        + gemm(tokens, h * 128.0, 1024.0)
        + gemm(tokens, 1024.0, 2.0 * i)
        + gemm(tokens, i, 1024.0);
    let kv_bytes = 2.0 * kv * 128.0 * 2.0;
    let q_bytes = h * 128.0 * 2.0;
    let attn = kernel(
        tokens * 4.0 * h * 128.0 * 1001.0,
        tokens * (1001.0 * kv_bytes + 2.0 * q_bytes),
        0.5,
        0.7,
    );
    (linear, attn)
}

fn decode_batch(n: usize) -> BatchShape {
    BatchShape {
        prefills: vec![],
        decodes: vec![
            SeqWork {
                new_tokens: 1,
                context: 1000
            };
            n
        ],
        sampled: n as u32,
        moe_tokens: 0,
    }
}

#[test]
fn tensor_parallel_step_adds_its_all_reduces_by_hand() {
    let batch = decode_batch(4);
    for (tp, h, kv, i, vocab) in [
        (2u32, 4.0, 2.0, 2048.0, 16000.0),
        (4, 2.0, 1.0, 1024.0, 8000.0),
    ] {
        let set = format!("engine.tensor_parallel_size={tp}");
        let (s, setup) = small(&[&set, "engine.all_reduce=ring"]);
        let cost = kvsim::sim::build_cost_model(&s, &setup).unwrap();
        let c = cost.step_cost(&batch);
        let (linear, attn) = decode_layer(4.0, h, kv, i);
        assert!((c.linear_ns - 4.0 * linear).abs() < 1e-6, "TP {tp}");
        assert!((c.decode_attention_ns - 4.0 * attn).abs() < 1e-6, "TP {tp}");
        assert!((c.lm_head_ns - gemm(4.0, 1024.0, vocab)).abs() < 1e-6);
        // Two ring all-reduces per layer of 4 tokens x 1024 x 2 bytes over NVLink
        // (450 GB/s, 2 us through the switch): 2 (n-1)/n * 8192 B / 450e9 + 2 (n-1) * 2 us.
        let n = tp as f64;
        let ring = 2.0 * (n - 1.0) / n * 8192.0 / 450e9 * 1e9 + 2.0 * (n - 1.0) * 2000.0;
        assert!(
            (c.communication_ns - 2.0 * 4.0 * ring).abs() < 1e-6,
            "TP {tp}: {} vs {}",
            c.communication_ns,
            8.0 * ring
        );
        assert_eq!(c.pipeline_bubble_ns, 0.0);
        // vLLM 0.33's default on an NVSwitch node: an 8 KiB message is FlashInfer's
        // one-shot, one 2 us wait and (n - 1) messages in.
        let (s, setup) = small(&[&set]);
        let vllm = kvsim::sim::build_cost_model(&s, &setup)
            .unwrap()
            .step_cost(&batch);
        let one_shot = 2000.0 + (n - 1.0) * 8192.0 / 450e9 * 1e9;
        assert!(
            (vllm.communication_ns - 2.0 * 4.0 * one_shot).abs() < 1e-6,
            "TP {tp}: {}",
            vllm.communication_ns
        );
        assert_eq!(vllm.linear_ns, c.linear_ns);
    }
}

#[test]
fn pipeline_step_is_stage_slots_of_micro_batches_by_hand() {
    let (s, setup) = small(&["engine.pipeline_parallel_size=2"]);
    assert_eq!(setup.shard.layers, 2);
    let cost = kvsim::sim::build_cost_model(&s, &setup).unwrap();
    let c = cost.step_cost(&decode_batch(4));
    // Two micro-batches of 2 sequences; a stage is 2 layers of the full-width model.
    let (linear, attn) = decode_layer(2.0, 8.0, 4.0, 4096.0);
    let stage = 2.0 * (linear + attn);
    // GPipe: (m + p - 1) = 3 stage slots, of which 2 do work; one hop of 2 tokens x 1024 x
    // 2 bytes between the stages (GPU 0 to GPU 1 over NVLink).
    let hop = 2000.0 + 4096.0 / 450e9 * 1e9;
    let lm = gemm(4.0, 1024.0, 32000.0);
    assert!((c.pipeline_bubble_ns - stage).abs() < 1e-6);
    assert!((c.communication_ns - hop).abs() < 1e-6);
    let total = 3.0 * stage + hop + lm;
    assert_eq!(c.total_ns(), total.ceil() as u64);
}

fn mooncake(t: &Path) -> String {
    format!(
        "workload.source.path={}",
        t.join("mooncake/conversation_trace.jsonl").display()
    )
}

#[test]
#[cfg_attr(not(kvsim_shared), ignore = "needs ../shared (or KVSIM_SHARED)")]
fn prefix_affinity_beats_round_robin_on_mooncake_with_four_replicas() {
    let t = shared_traces();
    let set = mooncake(&t);
    let run = |router: &str| {
        let r = format!("cluster.router.kind={router}");
        json(&run_ok(&[
            "run",
            "scenarios/mooncake-conversation.yaml",
            "--set",
            &set,
            "--set",
            "cluster.replicas=4",
            "--set",
            &r,
            "--json",
            "--no-files",
        ]))
    };
    let rr = run("round_robin");
    let pa = run("prefix_affinity");
    for s in [&rr, &pa] {
        assert_eq!(s["requests_completed"], 12031);
        assert_eq!(s["per_replica"].as_array().unwrap().len(), 4);
        let prompts: u64 = s["per_replica"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r["prompts"].as_u64().unwrap())
            .sum();
        assert_eq!(prompts, 12031);
    }
    let hit = |s: &serde_json::Value| s["prefix_hit_rate"].as_f64().unwrap();
    let p99 = |s: &serde_json::Value| s["latency"]["ttft_ms"]["p99"].as_f64().unwrap();
    assert!(hit(&pa) > hit(&rr) * 1.2, "{} vs {}", hit(&pa), hit(&rr));
    assert!(p99(&pa) < p99(&rr), "{} vs {}", p99(&pa), p99(&rr));
    // Round robin deals requests out evenly.
    for r in rr["per_replica"].as_array().unwrap() {
        let p = r["prompts"].as_u64().unwrap();
        assert!((3007..=3008).contains(&p));
    }
}

#[test]
fn routers_keep_every_request_and_runs_are_reproducible() {
    let d = temp_dir("routers");
    for router in [
        "round_robin",
        "least_outstanding_tokens",
        "least_kv_usage",
        "prefix_affinity",
    ] {
        let r = format!("cluster.router.kind={router}");
        let mut outs = Vec::new();
        for k in 0..2 {
            let out = d.join(format!("{router}-{k}"));
            // A small cache keeps the per-step block audit quick.
            run_ok(&[
                "run",
                "scenarios/quickstart.yaml",
                "--set",
                "kv_cache.num_gpu_blocks=3001",
                "--set",
                "cluster.replicas=3",
                "--set",
                &r,
                "--audit",
                "--out",
                out.to_str().unwrap(),
            ]);
            outs.push(out);
        }
        for f in ["requests.csv", "steps.csv", "summary.json"] {
            assert_eq!(
                std::fs::read(outs[0].join(f)).unwrap(),
                std::fs::read(outs[1].join(f)).unwrap(),
                "{router} {f}"
            );
        }
        let rows = csv_rows(&outs[0].join("requests.csv"));
        assert_eq!(rows.len(), 300);
        assert!(rows.iter().all(|r| r["status"] == "completed"));
        for f in ["latency_cdf.svg", "kv_blocks.svg", "queue.svg"] {
            let svg = std::fs::read_to_string(outs[0].join(f)).unwrap();
            assert!(svg.starts_with("<svg") && svg.contains("</svg>"), "{f}");
        }
    }
}

/// A native trace of `n` requests that all share a 4,000-token document and ask about it
/// 30 s apart (so the GPU cache, sized to hold one document, has evicted it in between:
/// every other request brings a different 4,000-token document).
fn revisit_trace(n: u32) -> String {
    let mut t = String::from("arrival_s,input_tokens,output_tokens,session,prefix_hashes\n");
    for i in 0..n {
        let doc = if i % 2 == 0 { 1 } else { 100 + i as u64 };
        // 4,100 tokens: 250 blocks of the document, then 7 blocks of this request's own.
        let ids: Vec<String> = (0..257u64)
            .map(|j| {
                if j < 250 {
                    doc * 1000 + j
                } else {
                    1_000_000 * (i as u64 + 1) + j
                }
            })
            .map(|x| x.to_string())
            .collect();
        t.push_str(&format!(
            "{},4100,10,{},{}\n",
            i as f64 * 15.0,
            i,
            ids.join(" ")
        ));
    }
    t
}

#[test]
fn cpu_tier_raises_the_hit_rate_and_charges_its_loads() {
    let d = temp_dir("cpu-tier");
    // 300 usable blocks of 16 tokens = 4,800 tokens: room for one request at a time.
    let sc = native_scenario(&d, &revisit_trace(20), "kv_cache: {num_gpu_blocks: 301}\n");
    let sc = sc.to_str().unwrap();
    let base = json(&run_ok(&["run", sc, "--json", "--no-files"]));
    let tier = json(&run_ok(&[
        "run",
        sc,
        "--set",
        "kv_cache.cpu_offload={gib: 4}",
        "--json",
        "--no-files",
    ]));
    assert_eq!(base["cpu_hit_rate"], 0.0);
    // Without the tier the request in between evicts most of the shared document (its
    // first blocks, freed last, survive).
    let gpu_hits = |s: &serde_json::Value| s["prefix_hit_tokens"].as_u64().unwrap();
    assert!(gpu_hits(&base) < 9 * 4000 / 4, "{}", gpu_hits(&base));
    let t = &tier["cpu_tier"];
    // With the tier, requests 2, 4, ..., 18 find the rest of the document's 250 blocks in
    // host memory: GPU and CPU hits together cover the document every time.
    let cpu = t["hit_tokens"].as_u64().unwrap();
    assert!(cpu > 0);
    assert_eq!(gpu_hits(&tier) + cpu, 9 * 4000);
    assert_eq!(t["loaded_blocks"].as_u64().unwrap() * 16, cpu);
    assert!(
        tier["total_hit_rate"].as_f64().unwrap() > 2.0 * base["total_hit_rate"].as_f64().unwrap()
    );
    // The load is charged (2 MiB blocks over the 55 GB/s host link, 5 us latency), and is
    // cheaper than computing the tokens: TTFT falls but stays above the load time.
    let ttft = |s: &serde_json::Value| s["latency"]["ttft_ms"]["mean"].as_f64().unwrap();
    assert!(ttft(&tier) < ttft(&base));
    let d2 = d.join("out");
    run_ok(&[
        "run",
        sc,
        "--set",
        "kv_cache.cpu_offload={gib: 4}",
        "--out",
        d2.to_str().unwrap(),
    ]);
    let rows = csv_rows(&d2.join("requests.csv"));
    let mut revisits = 0;
    for r in rows.iter().filter(|r| r["cpu_hit_tokens"] != "0") {
        let blocks = r["cpu_hit_tokens"].parse::<f64>().unwrap() / 16.0;
        let load_ms = blocks * 2.0 * 1024.0 * 1024.0 / 55e9 * 1e3 + 0.005;
        let ttft: f64 = r["ttft_ms"].parse().unwrap();
        assert!(ttft > load_ms, "{ttft} <= {load_ms}");
        revisits += 1;
    }
    assert_eq!(revisits, 9);
}

#[test]
fn swap_preemption_moves_blocks_instead_of_recomputing() {
    let d = temp_dir("swap");
    // Eight long requests at once into 700 blocks: decode growth forces preemptions.
    let mut t = String::from("arrival_s,input_tokens,output_tokens\n");
    for _ in 0..8 {
        t.push_str("0,1000,600\n");
    }
    let sc = native_scenario(&d, &t, "kv_cache: {num_gpu_blocks: 701}\n");
    let sc = sc.to_str().unwrap();
    let rec = json(&run_ok(&["run", sc, "--json", "--no-files", "--audit"]));
    let swap = json(&run_ok(&[
        "run",
        sc,
        "--set",
        "engine.preemption_mode=swap",
        "--json",
        "--no-files",
        "--audit",
    ]));
    assert!(rec["preemptions"].as_u64().unwrap() > 0);
    assert!(rec["recomputed_tokens"].as_u64().unwrap() > 0);
    let s = &swap["swap"];
    assert!(s["swap_preemptions"].as_u64().unwrap() > 0);
    assert_eq!(s["swapped_out_blocks"], s["swapped_in_blocks"]);
    assert_eq!(swap["recomputed_tokens"], 0);
    assert_eq!(swap["requests_completed"], 8);
    assert_eq!(swap["output_tokens"], 8 * 600);
}

#[test]
fn disaggregated_prompts_move_their_kv_and_ttft_includes_the_transfer() {
    let d = temp_dir("pd");
    let out = d.join("out");
    run_ok(&[
        "run",
        "scenarios/quickstart.yaml",
        "--set",
        "cluster.disaggregation={prefill_replicas: 1, decode_replicas: 2}",
        "--set",
        "cluster.router.kind=least_outstanding_tokens",
        "--audit",
        "--out",
        out.to_str().unwrap(),
    ]);
    let s: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("summary.json")).unwrap()).unwrap();
    let rows = csv_rows(&out.join("requests.csv"));
    assert_eq!(rows.len(), 300);
    let multi = rows.iter().filter(|r| r["output_tokens"] != "1").count() as u64;
    assert_eq!(s["kv_transfer"]["transfers"], multi);
    let expected: u64 = rows
        .iter()
        .map(|r| r["output_tokens"].parse::<u64>().unwrap())
        .sum();
    assert_eq!(s["output_tokens"], expected);
    // KV of a 128 KiB-per-token prompt over NVLink (450 GB/s, 2 us) before the first token.
    for r in &rows {
        assert_eq!(r["prefill_replica"], "0");
        if r["output_tokens"] == "1" {
            continue;
        }
        assert!(r["replica"] == "1" || r["replica"] == "2");
        let input: f64 = r["input_tokens"].parse().unwrap();
        let transfer_ms = (2000.0 + input * 131072.0 / 450e9 * 1e9) / 1e6;
        let start: f64 = r["first_scheduled_s"].parse().unwrap();
        let first: f64 = r["first_token_s"].parse().unwrap();
        assert!((first - start) * 1e3 >= transfer_ms - 1e-3, "{r:?}");
    }
}

fn sweep_args<'a>(out: &'a str, extra: &[&'a str]) -> Vec<&'a str> {
    let mut v = vec![
        "sweep",
        "scenarios/quickstart.yaml",
        "--vary",
        "workload.rate_scale=0.5,1,2",
        "--vary",
        "cluster.replicas=1,2",
        "--vary",
        "cluster.router.kind=round_robin,prefix_affinity",
        "--out",
        out,
    ];
    v.extend_from_slice(extra);
    v
}

#[test]
fn three_shards_merge_into_the_unsharded_sweep_byte_for_byte() {
    let d = temp_dir("shards");
    let full = d.join("full.csv");
    run_ok(&sweep_args(full.to_str().unwrap(), &["--plot"]));
    let rows = csv_rows(&full);
    assert_eq!(rows.len(), 12);
    assert!(rows
        .iter()
        .all(|r| r["status"] == "ok" && r["requests_completed"] == "300"));
    assert!(std::fs::read_to_string(d.join("full.svg"))
        .unwrap()
        .contains("</svg>"));
    let mut parts = Vec::new();
    for k in 1..=3 {
        let p = d.join(format!("part{k}.csv"));
        let shard = format!("{k}/3");
        run_ok(&sweep_args(
            p.to_str().unwrap(),
            &["--shard", &shard, "--jobs", "1"],
        ));
        parts.push(p);
    }
    let merged = d.join("merged.csv");
    let mut args = vec!["merge".to_string()];
    args.extend(parts.iter().rev().map(|p| p.display().to_string()));
    args.extend(["--out".to_string(), merged.display().to_string()]);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    run_ok(&args);
    assert_eq!(
        std::fs::read(&merged).unwrap(),
        std::fs::read(&full).unwrap()
    );
    // A missing shard is an error naming the missing points, and writes nothing.
    let o = run(&[
        "merge",
        parts[0].to_str().unwrap(),
        "--out",
        d.join("bad.csv").to_str().unwrap(),
    ]);
    assert_eq!(o.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&o.stderr).contains("points missing"));
    assert!(!d.join("bad.csv").exists());
}

#[test]
#[cfg_attr(not(kvsim_shared), ignore = "needs ../shared (or KVSIM_SHARED)")]
fn plan_ranks_candidates_and_its_best_meets_the_slos_on_its_own() {
    let t = shared_traces();
    let d = temp_dir("plan");
    let set = format!(
        "workload.source.path={}",
        t.join("azure2023/AzureLLMInferenceTrace_conv.csv")
            .display()
    );
    let table = run_ok(&[
        "plan",
        "scenarios/azure-conversation.yaml",
        "--set",
        &set,
        "--slo",
        "ttft_p99_ms=1000,tpot_p99_ms=50",
        "--search",
        "hardware.gpu=h100-sxm,a100-80gb,l40s",
        "--search",
        "cluster.replicas=1,2",
        "--iterations",
        "2",
        "--out",
        d.to_str().unwrap(),
    ]);
    assert!(table.lines().count() == 7, "{table}");
    let rows = csv_rows(&d.join("plan.csv"));
    assert_eq!(rows.len(), 6);
    // Feasible first, by price; the cheapest feasible is rank 1.
    let first_fail = rows
        .iter()
        .position(|r| r["meets_slo"] == "false")
        .unwrap_or(6);
    assert!(first_fail > 0);
    let price = |r: &std::collections::HashMap<String, String>| -> f64 {
        r["cost_per_hour"].parse().unwrap()
    };
    for w in rows[..first_fail].windows(2) {
        assert!(price(&w[0]) <= price(&w[1]));
    }
    // The plan's scenario, run on its own, meets the SLOs.
    let s = json(&run_ok(&[
        "run",
        d.join("best.yaml").to_str().unwrap(),
        "--json",
        "--no-files",
    ]));
    assert_eq!(s["requests_completed"], s["requests_arrived"]);
    assert!(s["latency"]["ttft_ms"]["p99"].as_f64().unwrap() <= 1000.0);
    assert!(s["latency"]["tpot_ms"]["p99"].as_f64().unwrap() <= 50.0);
    assert_eq!(
        s["cluster"]["cost_per_hour"].as_f64().unwrap(),
        price(&rows[0])
    );
    assert!(std::fs::read_to_string(d.join("plan.svg"))
        .unwrap()
        .contains("</svg>"));
}

#[test]
fn cluster_input_errors_name_the_field() {
    let cases = [
        ("cluster.replicas=0", "cluster.replicas"),
        ("cluster.router.kind=random", "cluster.router.kind"),
        (
            "engine.tensor_parallel_size=3",
            "engine.tensor_parallel_size",
        ),
        (
            "cluster.disaggregation={prefill_replicas: 0, decode_replicas: 1}",
            "cluster.disaggregation",
        ),
        (
            "kv_cache.cpu_offload={gib: 1, policy: ftp}",
            "kv_cache.cpu_offload.policy",
        ),
    ];
    for (set, field) in cases {
        let o = run(&[
            "run",
            "scenarios/quickstart.yaml",
            "--set",
            set,
            "--no-files",
        ]);
        assert_eq!(o.status.code(), Some(2), "{set}");
        let e = String::from_utf8_lossy(&o.stderr);
        assert!(e.contains(field), "{set}: {e}");
    }
    let o = run(&[
        "sweep",
        "scenarios/quickstart.yaml",
        "--vary",
        "x=1",
        "--shard",
        "4/3",
    ]);
    assert_eq!(o.status.code(), Some(2));
    let o = run(&[
        "plan",
        "scenarios/quickstart.yaml",
        "--slo",
        "ttft_q42_ms=1",
        "--search",
        "cluster.replicas=1",
    ]);
    assert_eq!(o.status.code(), Some(2));
}
