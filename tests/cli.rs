//! The command line end to end: bad input, determinism, validation and trace tools.

mod common;
use common::*;
use std::path::Path;

fn files_in(dir: &Path) -> Vec<String> {
    match std::fs::read_dir(dir) {
        Ok(rd) => rd
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect(),
        Err(_) => Vec::new(),
    }
}

/// Runs `kvsim run` on a scenario text and checks it fails with exit code 2, one line on
/// stderr naming `expect`, and no output files.
fn expect_input_error(
    name: &str,
    scenario: &str,
    extra_files: &[(&str, &str)],
    args: &[&str],
    expect: &[&str],
) {
    let dir = temp_dir(name);
    for (f, text) in extra_files {
        std::fs::write(dir.join(f), text).unwrap();
    }
    let sc = dir.join("s.yaml");
    std::fs::write(&sc, scenario).unwrap();
    let out = dir.join("out");
    let mut all = vec!["run", sc.to_str().unwrap(), "--out", out.to_str().unwrap()];
    all.extend_from_slice(args);
    let o = run(&all);
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(2), "{name}: stderr {stderr}");
    assert_eq!(
        stderr.lines().count(),
        1,
        "{name}: one line expected, got {stderr}"
    );
    assert!(stderr.starts_with("error: "), "{name}: {stderr}");
    for e in expect {
        assert!(stderr.contains(e), "{name}: `{e}` not in {stderr}");
    }
    assert!(o.stdout.is_empty(), "{name}: nothing on stdout");
    assert!(
        files_in(&out).is_empty(),
        "{name}: files left behind: {:?}",
        files_in(&out)
    );
}

const GOOD: &str = "name: t\nseed: 1\nworkload:\n  source:\n    kind: synthetic\n    requests: 20\n    arrival: {kind: poisson, rate: 5}\n    input: {kind: constant, value: 100}\n    output: {kind: constant, value: 10}\nmodel: {preset: llama-3.1-8b}\n";

#[test]
fn typo_in_a_key_names_line_and_suggests_the_key() {
    let bad = GOOD.replace("seed: 1", "sede: 1");
    expect_input_error(
        "typo",
        &bad,
        &[],
        &[],
        &[
            "line 2 column 1",
            "unknown field `sede`",
            "did you mean `seed`",
        ],
    );
    let bad = GOOD.replace("kind: constant, value: 100", "kind: constant, valeu: 100");
    expect_input_error(
        "typo-nested",
        &bad,
        &[],
        &[],
        &["workload.source.input", "line 8", "did you mean `value`"],
    );
}

#[test]
fn wrong_type_names_the_field_and_line() {
    let bad = GOOD.replace("rate: 5", "rate: fast");
    expect_input_error(
        "type",
        &bad,
        &[],
        &[],
        &["workload.source.arrival.rate", "line 7", "invalid type"],
    );
}

#[test]
fn negative_rate_names_the_field_and_line() {
    let bad = GOOD.replace("rate: 5", "rate: -5");
    expect_input_error(
        "negative",
        &bad,
        &[],
        &[],
        &["workload.source.arrival.rate", "line 7", "positive"],
    );
    expect_input_error(
        "negative-scale",
        GOOD,
        &[],
        &["--set", "workload.rate_scale=-2"],
        &["workload.rate_scale", "positive"],
    );
}

#[test]
fn missing_trace_file_is_an_input_error() {
    let sc = "workload:\n  source: {kind: mooncake, path: nowhere.jsonl}\n";
    expect_input_error(
        "missing",
        sc,
        &[],
        &[],
        &["cannot open trace", "nowhere.jsonl"],
    );
}

#[test]
fn malformed_trace_row_names_file_and_row_and_leaves_no_results() {
    let sc = "workload:\n  source: {kind: native, path: t.csv}\n";
    let trace = "arrival_s,input_tokens,output_tokens\n0,10,5\n1,10,5\n2,abc,5\n";
    // The bad row is found mid-run: partial files must be removed.
    expect_input_error(
        "malformed",
        sc,
        &[("t.csv", trace)],
        &[],
        &["t.csv:4", "input_tokens `abc`"],
    );
    let mooncake = "{\"timestamp\": 0, \"input_length\": 10, \"output_length\": 2, \"hash_ids\": [1]}\n{\"timestamp\": 5, \"input_length\": 10\n";
    let sc = "workload:\n  source: {kind: mooncake, path: m.jsonl}\n";
    expect_input_error(
        "malformed-json",
        sc,
        &[("m.jsonl", mooncake)],
        &[],
        &["m.jsonl:2", "malformed Mooncake row"],
    );
}

#[test]
fn unknown_subcommand_is_a_usage_error() {
    let o = run(&["frobnicate"]);
    assert_eq!(o.status.code(), Some(2));
}

#[test]
fn same_seed_gives_byte_identical_files_and_another_seed_does_not() {
    let dir = temp_dir("determinism");
    let (a, b, c) = (dir.join("a"), dir.join("b"), dir.join("c"));
    for d in [&a, &b] {
        run_ok(&[
            "run",
            "scenarios/quickstart.yaml",
            "--out",
            d.to_str().unwrap(),
        ]);
    }
    run_ok(&[
        "run",
        "scenarios/quickstart.yaml",
        "--set",
        "seed=43",
        "--out",
        c.to_str().unwrap(),
    ]);
    for f in kvsim::output::FILES {
        let x = std::fs::read(a.join(f)).unwrap();
        assert_eq!(
            x,
            std::fs::read(b.join(f)).unwrap(),
            "{f} differs between identical runs"
        );
        assert!(!x.is_empty());
    }
    assert_ne!(
        std::fs::read(a.join("requests.csv")).unwrap(),
        std::fs::read(c.join("requests.csv")).unwrap()
    );
}

#[test]
fn quickstart_accounts_for_every_request_and_every_token() {
    let s = json(&run_ok(&[
        "run",
        "scenarios/quickstart.yaml",
        "--json",
        "--no-files",
    ]));
    assert_eq!(s["requests_arrived"], 300);
    assert_eq!(s["requests_completed"], 300);
    assert_eq!(s["output_tokens"], s["expected_output_tokens"]);
    assert!(
        s["prefix_hit_rate"].as_f64().unwrap() > 0.3,
        "shared system prompts and sessions give reuse"
    );
    // vLLM 0.33 uses 0.92 of the 80 GiB.
    assert_eq!(s["memory"]["num_gpu_blocks"], 28589);
}

#[test]
fn validate_reports_the_plan_without_running() {
    let out = run_ok(&["validate", "scenarios/quickstart.yaml"]);
    assert!(
        out.contains("ok") && out.contains("28589 GPU blocks"),
        "{out}"
    );
    let o = run(&[
        "validate",
        "scenarios/quickstart.yaml",
        "--set",
        "model.preset=llama-3.1-70b",
    ]);
    assert_eq!(o.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&o.stderr).contains("does not fit"));
}

#[test]
fn synth_writes_a_native_trace_with_the_same_reuse() {
    let dir = temp_dir("synth");
    let csv = dir.join("quick.csv");
    let o = run(&[
        "trace",
        "synth",
        "scenarios/quickstart.yaml",
        "--out",
        csv.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let from_scenario = json(&run_ok(&[
        "trace",
        "stats",
        "scenarios/quickstart.yaml",
        "--json",
    ]));
    let from_file = json(&run_ok(&[
        "trace",
        "stats",
        csv.to_str().unwrap(),
        "--format",
        "native",
        "--json",
    ]));
    assert_eq!(from_scenario["requests"], 300);
    assert_eq!(from_file["requests"], 300);
    assert_eq!(from_scenario["input_tokens"], from_file["input_tokens"]);
    assert_eq!(
        from_scenario["bound"]["engine_hit_tokens"],
        from_file["bound"]["engine_hit_tokens"]
    );
    assert!(from_file["bound"]["engine_hit_tokens"].as_u64().unwrap() > 0);
}

#[test]
fn window_limit_and_rate_scale_apply() {
    let s = json(&run_ok(&[
        "trace",
        "stats",
        "scenarios/quickstart.yaml",
        "--json",
        "--set",
        "workload.limit=50",
    ]));
    assert_eq!(s["requests"], 50);
    let full = json(&run_ok(&[
        "trace",
        "stats",
        "scenarios/quickstart.yaml",
        "--json",
    ]));
    let fast = json(&run_ok(&[
        "trace",
        "stats",
        "scenarios/quickstart.yaml",
        "--json",
        "--set",
        "workload.rate_scale=2",
    ]));
    let ratio = fast["rate_per_s"].as_f64().unwrap() / full["rate_per_s"].as_f64().unwrap();
    assert!((ratio - 2.0).abs() < 1e-6, "{ratio}");
    let win = json(&run_ok(&[
        "trace",
        "stats",
        "scenarios/quickstart.yaml",
        "--json",
        "--set",
        "workload.start_s=30",
        "--set",
        "workload.end_s=60",
    ]));
    assert!(win["duration_s"].as_f64().unwrap() <= 30.0);
    assert!(win["requests"].as_u64().unwrap() < 300);
}

#[test]
fn committed_native_trace_matches_the_generator_and_replays_alike() {
    let dir = temp_dir("native-sync");
    let csv = dir.join("q.csv");
    run_ok(&[
        "trace",
        "synth",
        "scenarios/quickstart.yaml",
        "--out",
        csv.to_str().unwrap(),
    ]);
    let committed = std::fs::read(root().join("traces/quickstart.csv")).unwrap();
    assert_eq!(
        std::fs::read(&csv).unwrap(),
        committed,
        "regenerate traces/quickstart.csv with kvsim trace synth"
    );
    let a = json(&run_ok(&[
        "run",
        "scenarios/quickstart.yaml",
        "--json",
        "--no-files",
    ]));
    let b = json(&run_ok(&[
        "run",
        "scenarios/native-quickstart.yaml",
        "--json",
        "--no-files",
    ]));
    assert_eq!(a["prefix_hit_tokens"], b["prefix_hit_tokens"]);
    assert_eq!(a["output_tokens"], b["output_tokens"]);
    let (ta, tb) = (
        a["latency"]["ttft_ms"]["mean"].as_f64().unwrap(),
        b["latency"]["ttft_ms"]["mean"].as_f64().unwrap(),
    );
    assert!((ta - tb).abs() < 1e-3, "{ta} vs {tb}");
}

#[test]
fn paging_runs_one_bit_predictors_and_rejects_a_policy_without_its_predictor() {
    let dir = temp_dir("paging-bits");
    let f = dir.join("pages.txt");
    let seq: String = (0..400u32)
        .map(|i| format!("{}\n", (i * 7 + i / 3) % 23))
        .collect();
    std::fs::write(&f, seq).unwrap();
    let path = f.to_str().unwrap();
    let o = run_ok(&[
        "paging",
        path,
        "-k",
        "5",
        "--policies",
        "belady,discard-lru,marker-absent-first,mark0,mark-predict",
        "--predictor",
        "discard,phase",
        "--flip",
        "0,0.3",
        "--runs",
        "3",
    ]);
    let table = o;
    let row = |policy: &str, pred: &str| {
        table
            .lines()
            .find(|l| l.starts_with(policy) && l.contains(pred))
            .unwrap_or_else(|| panic!("no row {policy} {pred} in\n{table}"))
            .split_whitespace()
            .nth(5)
            .unwrap()
            .parse::<f64>()
            .unwrap()
    };
    // Exact discard bits are Belady's own decisions: cost ratio exactly 1.
    assert_eq!(row("discard-lru", "discard(p=0)"), 1.0);
    assert!(row("discard-lru", "discard(p=0.3)") >= 1.0);
    assert!(row("marker-absent-first", "phase(p=0)") >= 1.0);
    // MARK0 with exact bits never has to evict: exactly OPT; MARK&PREDICT is marking.
    assert_eq!(row("mark0", "discard(p=0)"), 1.0);
    assert!(row("mark0", "discard(p=0.3)") > 1.0);
    assert!(row("mark-predict", "phase(p=0)") >= 1.0);
    let o = run(&["paging", path, "-k", "5", "--policies", "discard-lru"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&o.stderr).contains("--predictor discard"));
    let o = run(&[
        "paging",
        path,
        "-k",
        "5",
        "--policies",
        "marker-absent-first",
        "--predictor",
        "phase",
        "--flip",
        "1.5",
    ]);
    assert_eq!(o.status.code(), Some(2));
}

#[cfg(unix)]
#[test]
fn a_closed_output_pipe_ends_the_run_quietly() {
    use std::os::unix::process::ExitStatusExt;
    use std::process::Stdio;
    // The reader is gone before the run prints: the print must not panic.
    let mut child = kvsim()
        .args(["run", "scenarios/quickstart.yaml", "--no-files", "--json"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    drop(child.stdout.take());
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!stderr.contains("panicked"), "stderr: {stderr}");
    assert_eq!(out.status.signal(), Some(13), "killed by SIGPIPE: {stderr}");
}

const SHARED_PREFIX: &str = "name: sp\nseed: 1\nworkload:\n  source:\n    kind: shared_prefix\n    shared_prefix: {num_groups: 2, num_prompts_per_group: 3, system_prompt_len: 100, question_len: 200, output_len: 8}\n    stages:\n      - {rate: 2, duration_s: 10}\n      - {rate: 4, duration_s: 5}\nmodel: {preset: llama-2-7b}\n";

#[test]
fn shared_prefix_stages_and_prompts_as_inference_perf_sends_them() {
    let dir = temp_dir("shared-prefix");
    let sc = dir.join("s.yaml");
    std::fs::write(&sc, SHARED_PREFIX).unwrap();
    let out = dir.join("out");
    run_ok(&["run", sc.to_str().unwrap(), "--out", out.to_str().unwrap()]);
    let csv = std::fs::read_to_string(out.join("requests.csv")).unwrap();
    let mut rows = csv.lines();
    let header: Vec<&str> = rows.next().unwrap().split(',').collect();
    let col = |name: &str| header.iter().position(|h| *h == name).unwrap();
    let (input, output) = (col("input_tokens"), col("output_tokens"));
    let rows: Vec<Vec<&str>> = rows.map(|l| l.split(',').collect()).collect();
    // 2 x 10 + 4 x 5 requests; prompts of 1 + 104 + 208 tokens; 8 output tokens each.
    assert_eq!(rows.len(), 40);
    assert!(rows.iter().all(|r| r[input] == "313" && r[output] == "8"));
    // A stage field out of range names its index.
    let bad = SHARED_PREFIX.replace("{rate: 4, duration_s: 5}", "{rate: 0, duration_s: 5}");
    expect_input_error(
        "shared-prefix-rate",
        &bad,
        &[],
        &[],
        &["workload.source.stages[1].rate", "positive"],
    );
    let bad = SHARED_PREFIX.replace("kind: shared_prefix", "kind: synthetic");
    expect_input_error(
        "shared-prefix-kind",
        &bad,
        &[],
        &[],
        &["workload.source.shared_prefix", "does not apply"],
    );
}
