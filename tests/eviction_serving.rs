//! Eviction policies acting in a serving run.

mod common;

use common::temp_dir;
use kvsim::paging::policies::{entry, PolicyParams};
use kvsim::paging::prefix_cache::{PrefixRequest, PrefixTrace};
use std::path::Path;

/// The sessions workload of the known-answer test: one request in flight at a time.
fn one_at_a_time_scenario(dir: &Path, blocks: u32) -> std::path::PathBuf {
    let yaml = format!(
        "name: one-at-a-time\nseed: 7\nworkload:\n  source:\n    kind: synthetic\n    requests: 2000\n    arrival: {{kind: constant, rate: 0.5}}\n    input: {{kind: lognormal, mean: 900, sigma: 0.8, max: 6000}}\n    output: {{kind: constant, value: 1}}\n    system_prompts: {{count: 8, tokens: 1024}}\n    sessions:\n      turns: {{kind: uniform, min: 1, max: 12}}\n      think_time_s: 60\nmodel:\n  preset: llama-3.1-8b\nhardware:\n  gpu: h100-sxm\nengine:\n  max_num_batched_tokens: 131072\nkv_cache:\n  block_size: 16\n  num_gpu_blocks: {blocks}\n"
    );
    let p = dir.join("s.yaml");
    std::fs::write(&p, yaml).unwrap();
    p
}

fn serving_hits(scenario: &Path, policy: &str, out: &Path) -> Vec<u64> {
    let o = common::run(&[
        "run",
        scenario.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
        "--set",
        &format!("kv_cache.eviction={policy}"),
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let mut rd = csv::Reader::from_path(out.join("requests.csv")).unwrap();
    let h = rd.headers().unwrap().clone();
    let col = |n: &str| h.iter().position(|x| x == n).unwrap();
    let (id, cached) = (col("request_id"), col("cached_tokens"));
    let mut v: Vec<(u64, u64)> = rd
        .records()
        .map(|r| {
            let r = r.unwrap();
            (
                r[id].parse().unwrap(),
                r[cached].parse::<u64>().unwrap() / 16,
            )
        })
        .collect();
    v.sort();
    v.into_iter().map(|x| x.1).collect()
}

/// Rewrite a native trace's arrival times to `gap_s` apart (one request in flight at a time).
fn space_arrivals(csv: &Path, gap_s: f64) -> String {
    let text = std::fs::read_to_string(csv).unwrap();
    let mut out = String::new();
    let mut i = 0;
    for line in text.lines() {
        if line.starts_with('#') || line.starts_with("arrival_s") {
            out += line;
        } else {
            let rest = &line[line.find(',').unwrap()..];
            out += &format!("{:.6}{rest}", i as f64 * gap_s);
            i += 1;
        }
        out.push('\n');
    }
    out
}

#[test]
fn one_request_at_a_time_serving_hits_equal_the_paging_lab_in_serving_order() {
    let dir = temp_dir("known-answer");
    let sc = one_at_a_time_scenario(&dir, 4001);
    let csv = dir.join("t.csv");
    let o = common::run(&[
        "trace",
        "synth",
        sc.to_str().unwrap(),
        "--out",
        csv.to_str().unwrap(),
    ]);
    assert!(o.status.success());
    std::fs::write(dir.join("spaced.csv"), space_arrivals(&csv, 5.0)).unwrap();
    let native = dir.join("native.yaml");
    std::fs::write(&native, "name: spaced\nworkload:\n  source: {kind: native, path: spaced.csv}\nmodel: {preset: llama-3.1-8b}\nhardware: {gpu: h100-sxm}\nengine: {max_num_batched_tokens: 131072}\nkv_cache: {num_gpu_blocks: 4001}\n").unwrap();
    let scenario = kvsim::scenario::load_scenario(&native, &[]).unwrap();
    let mut requests = Vec::new();
    for r in kvsim::workload::open(&scenario.workload, scenario.seed).unwrap() {
        let r = r.unwrap();
        let mut h = Vec::new();
        kvsim::prefix::prompt_block_hashes(&r, 16, &mut h);
        requests.push(PrefixRequest::new(h, r.input_tokens, 16));
    }
    let trace = PrefixTrace::new(requests);
    let blocks = trace.full_blocks();
    let mut totals = Vec::new();
    for p in [
        "lru", "fifo", "clock", "lfu", "arc", "s3fifo", "sieve", "belady",
    ] {
        let e = entry(p).unwrap();
        let mut pol = (e.build)(&PolicyParams::new(4000, trace.num_pages, 7));
        let lab = trace.replay_each(pol.as_mut(), 4000);
        let out = dir.join(format!("out-{p}"));
        let serving = serving_hits(&native, p, &out);
        assert_eq!(lab.len(), serving.len());
        if let Some(i) = lab.iter().zip(&serving).position(|(a, b)| a != b) {
            panic!(
                "{p}: request {i} hits {} blocks in the lab, {} in serving",
                lab[i], serving[i]
            );
        }
        assert!(one_at_a_time(&out), "{p}: requests overlapped");
        totals.push((p, lab.iter().sum::<u64>()));
    }
    // The policies differ, and none beats Belady.
    let belady = totals.last().unwrap().1;
    for w in totals.windows(2) {
        assert_ne!(w[0].1, w[1].1, "{totals:?}");
    }
    assert!(totals.iter().all(|t| t.1 <= belady), "{totals:?}");
    assert!(
        belady as f64 > 0.3 * blocks as f64,
        "a reuse-heavy workload: {totals:?}"
    );
}

/// True when no step of a run had more than one request running or any waiting.
fn one_at_a_time(out: &Path) -> bool {
    let mut rd = csv::Reader::from_path(out.join("steps.csv")).unwrap();
    let h = rd.headers().unwrap().clone();
    let (w, r) = (
        h.iter().position(|x| x == "waiting").unwrap(),
        h.iter().position(|x| x == "running").unwrap(),
    );
    rd.records().all(|rec| {
        let rec = rec.unwrap();
        rec[w].parse::<u32>().unwrap() == 0 && rec[r].parse::<u32>().unwrap() <= 1
    })
}

fn summary(args: &[&str]) -> serde_json::Value {
    let mut a = vec![
        "run",
        "scenarios/quickstart.yaml",
        "--json",
        "--no-files",
        "--audit",
    ];
    a.extend_from_slice(args);
    serde_json::from_str(&common::run_ok(&a)).unwrap()
}

#[test]
fn policies_act_in_a_concurrent_serving_run_and_belady_hits_most() {
    // Quickstart's sessions and shared system prompts on 1,500 blocks: requests overlap,
    // blocks are evicted, and every block is recounted after every step (--audit).
    let small = "kv_cache.num_gpu_blocks=1500";
    let hit = |policy: &str, predictor: Option<&str>| {
        let e = format!("kv_cache.eviction={policy}");
        let mut a = vec!["--set", small, "--set", &e];
        let p;
        if let Some(pred) = predictor {
            p = format!("kv_cache.predictor={pred}");
            a.extend(["--set", &p]);
        }
        let s = summary(&a);
        assert_eq!(s["requests_completed"], 300, "{policy}");
        assert_eq!(s["eviction"], policy);
        s["prefix_hit_tokens"].as_u64().unwrap()
    };
    let vllm = hit("vllm", None);
    assert_eq!(hit("lru", None), vllm, "lru is vLLM's free queue");
    let classic: Vec<(&str, u64)> = ["fifo", "clock", "lfu", "arc", "s3fifo", "sieve", "marker"]
        .iter()
        .map(|p| (*p, hit(p, None)))
        .collect();
    let belady = hit("belady", None);
    let exact = hit("ftp", Some("{kind: oracle, sigma: 0}"));
    let noisy = hit("ftp", Some("{kind: oracle, sigma: 10}"));
    assert_eq!(exact, belady, "ftp with exact predictions is Belady");
    let mut all: Vec<u64> = classic.iter().map(|c| c.1).collect();
    all.extend([vllm, noisy]);
    assert!(
        all.iter().all(|&h| h < belady),
        "{classic:?} {vllm} {noisy} < {belady}"
    );
    let mut distinct = all.clone();
    distinct.sort_unstable();
    distinct.dedup();
    assert!(
        distinct.len() >= 7,
        "history reaches the policies: {classic:?} lru {vllm}"
    );
}

#[test]
fn combinations_and_marking_policies_run_in_serving() {
    for p in [
        "marker",
        "lmarker",
        "predictive-marker",
        "robust-ftp",
        "switch-ftp",
        "lnonmarker",
    ] {
        let e = format!("kv_cache.eviction={p}");
        let s = summary(&[
            "--set",
            "kv_cache.num_gpu_blocks=1500",
            "--set",
            &e,
            "--set",
            "kv_cache.predictor={kind: oracle, sigma: 5}",
        ]);
        assert_eq!(s["requests_completed"], 300, "{p}");
        assert!(s["prefix_hit_rate"].as_f64().unwrap() > 0.3, "{p}");
    }
}

#[test]
fn policies_that_cannot_serve_are_refused_with_the_list_of_those_that_can() {
    for (p, needle) in [
        ("mark0", "one-bit predictions"),
        ("mark-predict", "one-bit predictions"),
        ("discard-lru", "one-bit predictions"),
    ] {
        let e = format!("kv_cache.eviction={p}");
        let o = common::run(&["validate", "scenarios/quickstart.yaml", "--set", &e]);
        assert_eq!(o.status.code(), Some(2), "{p}");
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(
            err.contains("kv_cache.eviction") && err.contains(needle),
            "{err}"
        );
    }
}

#[test]
fn paging_in_serving_order_matches_the_library_and_differs_from_the_trace_order() {
    let dir = temp_dir("serving-order");
    let csv = dir.join("q.csv");
    let o = common::run(&[
        "trace",
        "synth",
        "scenarios/quickstart.yaml",
        "--out",
        csv.to_str().unwrap(),
    ]);
    assert!(o.status.success());
    let table = |order: &str| {
        let out = dir.join(format!("{order}.csv"));
        common::run_ok(&[
            "paging",
            csv.to_str().unwrap(),
            "--format",
            "native",
            "-k",
            "1500",
            "--policies",
            "lru,arc,belady",
            "--order",
            order,
            "--csv",
            out.to_str().unwrap(),
        ]);
        let mut rd = csv::Reader::from_path(&out).unwrap();
        rd.records()
            .map(|r| r.unwrap()[4].parse::<f64>().unwrap())
            .collect::<Vec<f64>>()
    };
    let serving = table("serving");
    let trace = table("trace");
    assert_eq!(serving.len(), 3);
    assert_ne!(
        serving, trace,
        "prefix rule, pins and release order change the misses"
    );
    assert!(
        serving[2] <= serving[0] && serving[2] <= serving[1],
        "Belady misses least here: {serving:?}"
    );
    // A policy that cannot serve is a usage error in serving order.
    let o = common::run(&[
        "paging",
        csv.to_str().unwrap(),
        "--format",
        "native",
        "-k",
        "100",
        "--policies",
        "mark0",
        "--predictor",
        "discard",
        "--order",
        "serving",
    ]);
    assert_eq!(o.status.code(), Some(2));
}
