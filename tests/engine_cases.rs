//! Hand-checked small cases of the engine, run end to end through the CLI.

mod common;
use common::*;
use kvsim::cost::{BatchShape, CostModel, Roofline, SeqWork};
use kvsim::hardware::Gpu;
use kvsim::model::Model;
use kvsim::scenario::{Efficiency, HardwareSpec, ModelSpec};

fn llama_on_h100() -> Roofline {
    let model = Model::from_spec(&ModelSpec {
        preset: Some("llama-3.1-8b".into()),
        ..Default::default()
    })
    .unwrap();
    let gpu = Gpu::from_spec(&HardwareSpec::default()).unwrap();
    // The scenario defaults: step overhead 1500 us, 5 us per request.
    Roofline::new(&model, &gpu, &Efficiency::default(), 1500.0, 5.0)
}

/// The steps of one request alone with a 100-token prompt and 5 output tokens, as the cost
/// model sees them: the prefill, then four decodes with 100 + k tokens before them.
fn one_request_steps(cost: &Roofline) -> Vec<kvsim::cost::StepCost> {
    let prefill = BatchShape {
        prefills: vec![SeqWork {
            new_tokens: 100,
            context: 0,
        }],
        decodes: vec![],
        sampled: 1,
        moe_tokens: 0,
    };
    let decode = |k: u32| BatchShape {
        prefills: vec![],
        decodes: vec![SeqWork {
            new_tokens: 1,
            context: 100 + k,
        }],
        sampled: 1,
        moe_tokens: 0,
    };
    std::iter::once(prefill)
        .chain((0..4).map(decode))
        .map(|b| cost.step_cost(&b))
        .collect()
}

#[test]
fn one_request_ttft_and_tpot_equal_the_cost_model_sum() {
    // Synchronous scheduling: each step's CPU work and then its GPU work, after the API
    // server's 2.5 ms on the way in.
    let dir = temp_dir("one-request");
    let sc = native_scenario(
        &dir,
        "arrival_s,input_tokens,output_tokens\n0,100,5\n",
        "engine: {async_scheduling: false, server_latency_us: 2500}\n",
    );
    let s = json(&run_ok(&[
        "run",
        sc.to_str().unwrap(),
        "--json",
        "--no-files",
    ]));
    let steps = one_request_steps(&llama_on_h100());
    let prefill = 2_500_000 + steps[0].total_ns();
    // Four decode steps produce tokens 2..5.
    let decodes: Vec<u64> = steps[1..].iter().map(|c| c.total_ns()).collect();
    let ttft_ms = s["latency"]["ttft_ms"]["mean"].as_f64().unwrap();
    let tpot_ms = s["latency"]["tpot_ms"]["mean"].as_f64().unwrap();
    let e2e_ms = s["latency"]["e2e_ms"]["mean"].as_f64().unwrap();
    assert!(
        (ttft_ms - prefill as f64 / 1e6).abs() < 1e-9,
        "ttft {ttft_ms} vs {prefill} ns"
    );
    let decode_sum: u64 = decodes.iter().sum();
    assert!(
        (tpot_ms - decode_sum as f64 / 4.0 / 1e6).abs() < 1e-9,
        "tpot {tpot_ms} vs {decode_sum}/4 ns"
    );
    assert!((e2e_ms - (prefill + decode_sum) as f64 / 1e6).abs() < 1e-9);
    assert_eq!(s["steps"], 5);
    assert_eq!(s["output_tokens"], 5);
}

#[test]
fn asynchronous_scheduling_hides_the_cpu_work_of_a_step_behind_the_gpu_work_of_the_last() {
    // vLLM 0.33's default: step n+1 is scheduled (CPU) while step n runs (GPU). The first
    // step pays its CPU work; each later step starts when the GPU is free, because its CPU
    // work (1.5 ms + 5 us) is shorter than the step before it; a token is out when the step
    // that made it ends.
    let dir = temp_dir("one-request-async");
    let sc = native_scenario(
        &dir,
        "arrival_s,input_tokens,output_tokens\n0,100,5\n",
        "engine: {server_latency_us: 0}\n",
    );
    let s = json(&run_ok(&[
        "run",
        sc.to_str().unwrap(),
        "--json",
        "--no-files",
    ]));
    let split = |c: &kvsim::cost::StepCost| {
        let cpu = c.overhead_ns.ceil() as u64;
        (c.total_ns() - cpu, cpu)
    };
    let steps = one_request_steps(&llama_on_h100());
    let (prefill_gpu, prefill_cpu) = split(&steps[0]);
    let decode_gpu: Vec<u64> = steps[1..]
        .iter()
        .map(|c| {
            let (gpu, cpu) = split(c);
            assert!(cpu < gpu, "the CPU work hides behind the GPU");
            gpu
        })
        .collect();
    let ms = |ns: u64| ns as f64 / 1e6;
    let v = |k: &str| s["latency"][k]["mean"].as_f64().unwrap();
    assert!((v("ttft_ms") - ms(prefill_cpu + prefill_gpu)).abs() < 1e-9);
    let sum: u64 = decode_gpu.iter().sum();
    assert!(
        (v("tpot_ms") - ms(sum) / 4.0).abs() < 1e-9,
        "{}",
        v("tpot_ms")
    );
    assert!((v("e2e_ms") - ms(prefill_cpu + prefill_gpu + sum)).abs() < 1e-9);
    assert_eq!(s["steps"], 5);
}

#[test]
fn two_requests_sharing_a_prefix_hit_exactly_the_shared_full_blocks() {
    let dir = temp_dir("shared-prefix");
    // Trace blocks of 16 tokens. B shares A's first three blocks, then differs.
    let trace = "# kvsim-trace v1 hash_block_tokens=16\narrival_s,input_tokens,output_tokens,session,prefix_hashes\n\
                 0,64,2,,1 2 3 4\n10,80,2,,1 2 3 9 10\n20,50,2,,1 2 3 4\n";
    let sc = native_scenario(&dir, trace, "");
    let out = dir.join("out");
    run_ok(&["run", sc.to_str().unwrap(), "--out", out.to_str().unwrap()]);
    let rows = csv_rows(&out.join("requests.csv"));
    let cached: Vec<&str> = rows.iter().map(|r| r["cached_tokens"].as_str()).collect();
    // A: nothing cached. B: three full blocks (48 tokens). C: its 50 tokens span three full
    // blocks and a partial one; the partial block is never cached, so 48.
    assert_eq!(cached, vec!["0", "48", "48"]);
}

#[test]
fn coarse_trace_blocks_map_onto_engine_blocks() {
    let dir = temp_dir("coarse-blocks");
    // Trace blocks of 32 tokens: B shares A's first 32-token block only, which is two
    // 16-token engine blocks.
    let trace = "# kvsim-trace v1 hash_block_tokens=32\narrival_s,input_tokens,output_tokens,session,prefix_hashes\n\
                 0,64,1,,7 8\n5,64,1,,7 9\n";
    let sc = native_scenario(&dir, trace, "");
    let s = json(&run_ok(&[
        "run",
        sc.to_str().unwrap(),
        "--json",
        "--no-files",
    ]));
    assert_eq!(s["prefix_hit_tokens"], 32);
}

fn preemption_case(caching: bool) -> Vec<std::collections::HashMap<String, String>> {
    let dir = temp_dir(&format!("preempt-{caching}"));
    // Nine usable blocks of 16 tokens (plus the null block). Two 64-token prompts fill
    // eight; the first decode step needs a fifth block for each, so B is preempted.
    let extra = format!("kv_cache: {{num_gpu_blocks: 10, enable_prefix_caching: {caching}}}\nengine: {{max_model_len: 128}}\n");
    let sc = native_scenario(
        &dir,
        "arrival_s,input_tokens,output_tokens\n0,64,40\n0,64,40\n",
        &extra,
    );
    let out = dir.join("out");
    run_ok(&[
        "run",
        sc.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
        "--audit",
    ]);
    csv_rows(&out.join("requests.csv"))
}

#[test]
fn forced_preemption_without_caching_recomputes_the_whole_prompt() {
    let rows = preemption_case(false);
    assert_eq!(rows[0]["preemptions"], "0");
    assert_eq!(rows[1]["preemptions"], "1");
    // B had computed its 64 prompt tokens; none survive without prefix caching.
    assert_eq!(rows[1]["recomputed_tokens"], "64");
    assert!(rows.iter().all(|r| r["status"] == "completed"));
}

#[test]
fn forced_preemption_with_caching_recomputes_only_the_evicted_blocks() {
    let rows = preemption_case(true);
    assert_eq!(rows[1]["preemptions"], "1");
    // B's four prompt blocks return to the free queue tail-first; A's decode takes the
    // two at the head (B's blocks 3 and 2), so B resumes with 32 cached tokens and
    // recomputes the other 32.
    assert_eq!(rows[1]["recomputed_tokens"], "32");
}

#[test]
fn small_cache_conserves_blocks_every_step_and_accounts_every_request() {
    let dir = temp_dir("small-cache");
    let out = dir.join("out");
    let stdout = run_ok(&[
        "run",
        "scenarios/quickstart.yaml",
        "--set",
        "kv_cache.num_gpu_blocks=700",
        "--set",
        "engine.max_model_len=10000",
        "--audit",
        "--json",
        "--out",
        out.to_str().unwrap(),
    ]);
    let s = json(&stdout);
    assert!(
        s["preemptions"].as_u64().unwrap() > 0,
        "the small cache should force preemptions"
    );
    let rejected = rejected_total(&s);
    assert_eq!(
        s["requests_completed"].as_u64().unwrap() + rejected,
        s["requests_arrived"].as_u64().unwrap()
    );
    assert_eq!(s["output_tokens"], s["expected_output_tokens"]);
    for step in csv_rows(&out.join("steps.csv")) {
        let n = |k: &str| step[k].parse::<u64>().unwrap();
        assert_eq!(
            n("blocks_used") + n("blocks_cached") + n("blocks_free"),
            699
        );
    }
}

#[test]
fn lru_policy_in_the_engine_reproduces_the_vllm_free_queue() {
    // vLLM's free queue evicts cached blocks in order of release; the paging lab's LRU,
    // fed blocks on release and losing them on hits, must make the same choices.
    let dir = temp_dir("lru-equals-vllm");
    let (a, b) = (dir.join("a"), dir.join("b"));
    for (d, ev) in [(&a, "vllm"), (&b, "lru")] {
        run_ok(&[
            "run",
            "scenarios/quickstart.yaml",
            "--set",
            "kv_cache.num_gpu_blocks=600",
            "--set",
            "engine.max_model_len=9000",
            "--set",
            &format!("kv_cache.eviction={ev}"),
            "--audit",
            "--out",
            d.to_str().unwrap(),
        ]);
    }
    for f in ["requests.csv", "steps.csv"] {
        assert_eq!(
            std::fs::read(a.join(f)).unwrap(),
            std::fs::read(b.join(f)).unwrap(),
            "{f}"
        );
    }
}

#[test]
fn belady_in_the_engine_hits_at_least_as_often_as_lru() {
    let run = |ev: &str, extra: &[&str]| {
        let mut args = vec![
            "run",
            "scenarios/quickstart.yaml",
            "--set",
            "kv_cache.num_gpu_blocks=600",
            "--set",
            "engine.max_model_len=9000",
            "--json",
            "--no-files",
            "--audit",
        ];
        let set = format!("kv_cache.eviction={ev}");
        args.extend(["--set", set.as_str()]);
        args.extend_from_slice(extra);
        json(&run_ok(&args))
    };
    let lru = run("lru", &[]);
    let opt = run("belady", &[]);
    let ftp = run(
        "ftp",
        &["--set", "kv_cache.predictor={kind: oracle, sigma: 0}"],
    );
    let hits = |s: &serde_json::Value| s["prefix_hit_tokens"].as_u64().unwrap();
    assert!(
        lru["evictions"].as_u64().unwrap() > 0,
        "the cache must be under pressure"
    );
    assert!(
        hits(&opt) >= hits(&lru),
        "belady {} < lru {}",
        hits(&opt),
        hits(&lru)
    );
    // Exact predictions make follow-the-prediction the same policy as Belady.
    assert_eq!(hits(&ftp), hits(&opt));
    assert_eq!(opt["eviction"], "belady");
    for s in [&lru, &opt, &ftp] {
        assert_eq!(s["requests_completed"], 300);
        assert_eq!(s["output_tokens"], s["expected_output_tokens"]);
    }
}

#[test]
fn predictive_eviction_requires_a_predictor() {
    let o = run(&[
        "validate",
        "scenarios/quickstart.yaml",
        "--set",
        "kv_cache.eviction=ftp",
    ]);
    assert_eq!(o.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&o.stderr).contains("kv_cache.predictor"));
    let o = run(&[
        "validate",
        "scenarios/quickstart.yaml",
        "--set",
        "kv_cache.eviction=lur",
    ]);
    assert_eq!(o.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&o.stderr).contains("unknown policy `lur`"));
}

#[test]
fn learned_predictor_trains_online_and_serves_every_request() {
    let out = json(&run_ok(&[
        "run",
        "scenarios/quickstart.yaml",
        "--set",
        "kv_cache.num_gpu_blocks=600",
        "--set",
        "engine.max_model_len=9000",
        "--set",
        "kv_cache.eviction=ftp",
        "--set",
        "kv_cache.predictor={kind: learned}",
        "--json",
        "--no-files",
        "--audit",
    ]));
    assert_eq!(out["requests_completed"], 300);
    assert_eq!(out["output_tokens"], out["expected_output_tokens"]);
    assert!(out["evictions"].as_u64().unwrap() > 0);
    let learned = &out["learned_predictor"];
    assert!(learned["updates"].as_u64().unwrap() > 100, "{learned}");
    assert!(learned["mean_squared_log_error"]
        .as_f64()
        .unwrap()
        .is_finite());
}
