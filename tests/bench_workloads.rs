//! The generated workloads of SGLang's and vLLM's serving benchmarks (`sglang_gsp`,
//! `vllm_random`, `vllm_prefix_repetition`) through the command line: counts, token totals
//! and the prefix-reuse bound computed here from the parameters, length ranges from the
//! upstream formulas, reproducibility, and bad parameters refused by name.

mod common;
use common::{json, run, run_ok, temp_dir};

const BLOCK: u64 = 16;

/// `kvsim trace stats SCENARIO --json` with `--set` overrides.
fn stats(scenario: &str, sets: &[&str]) -> serde_json::Value {
    let mut args = vec!["trace", "stats", scenario, "--json"];
    for s in sets {
        args.extend(["--set", s]);
    }
    json(&run_ok(&args))
}

fn u(v: &serde_json::Value, path: &[&str]) -> u64 {
    let mut v = v;
    for p in path {
        v = &v[*p];
    }
    v.as_u64()
        .unwrap_or_else(|| panic!("{path:?} is not an integer: {v}"))
}

/// The rows of `kvsim trace synth` for a scenario: (arrival_s, input, output).
fn rows(scenario: &str, sets: &[&str], name: &str) -> (Vec<(f64, u64, u64)>, Vec<u8>) {
    let out = temp_dir(name).join("t.csv");
    let mut args = vec!["trace", "synth", scenario, "--out", out.to_str().unwrap()];
    for s in sets {
        args.extend(["--set", s]);
    }
    run_ok(&args);
    let bytes = std::fs::read(&out).unwrap();
    let text = String::from_utf8(bytes.clone()).unwrap();
    let rows = text
        .lines()
        .skip(2)
        .map(|l| {
            let f: Vec<&str> = l.split(',').collect();
            (
                f[0].parse().unwrap(),
                f[1].parse().unwrap(),
                f[2].parse().unwrap(),
            )
        })
        .collect();
    (rows, bytes)
}

/// The bound of `g` groups of `p` prompts sharing an `s`-token prefix and nothing else:
/// `(reusable, engine_hit)` tokens. The first prompt of a group hits nothing; every other
/// hits the whole prefix at trace granularity, and its full blocks at engine granularity
/// (the block that holds the prefix's end also holds own tokens).
fn group_bound(g: u64, p: u64, s: u64) -> (u64, u64) {
    (g * (p - 1) * s, g * (p - 1) * (s / BLOCK) * BLOCK)
}

#[test]
fn sglang_gsp_groups_share_their_system_prompt() {
    let s = stats("scenarios/sglang-gsp.yaml", &[]);
    // 10 groups of 20; system 1 BOS + round(2048 x 1.04) + 2 ("\n\n"), question round(128 x 1.04).
    let system = 1 + (2048.0f64 * 1.04).round() as u64 + 2;
    let question = (128.0f64 * 1.04).round() as u64;
    assert_eq!(u(&s, &["requests"]), 200);
    assert_eq!(u(&s, &["bound", "input_tokens"]), 200 * (system + question));
    let (reusable, engine) = group_bound(10, 20, system);
    assert_eq!(u(&s, &["bound", "reusable_tokens"]), reusable);
    assert_eq!(u(&s, &["bound", "engine_hit_tokens"]), engine);
    assert_eq!(s["output_tokens"]["mean"], 256.0);
    // Token ids sent as they are: no BOS, no separator, no re-tokenization.
    let s = stats(
        "scenarios/sglang-gsp.yaml",
        &["workload.source.sglang_gsp.tokenize_prompt=true"],
    );
    assert_eq!(u(&s, &["bound", "input_tokens"]), 200 * (2048 + 128));
    let (reusable, engine) = group_bound(10, 20, 2048);
    assert_eq!(u(&s, &["bound", "reusable_tokens"]), reusable);
    assert_eq!(u(&s, &["bound", "engine_hit_tokens"]), engine);
}

#[test]
fn sglang_gsp_range_ratio_and_arrivals() {
    let sets = [
        "workload.source.sglang_gsp.gsp_range_ratio=0.5",
        "workload.source.sglang_gsp.tokenize_prompt=true",
    ];
    let (r, _) = rows("scenarios/sglang-gsp.yaml", &sets, "gsp-ratio");
    assert_eq!(r.len(), 200);
    // [max(int(L x 0.5), 1), L] for the system prompt (2048), question (128), output (256).
    assert!(r
        .iter()
        .all(|&(_, i, _)| (1024 + 64..=2048 + 128).contains(&i)));
    assert!(r.iter().all(|&(_, _, o)| (128..=256).contains(&o)));
    let outs: std::collections::HashSet<u64> = r.iter().map(|x| x.2).collect();
    assert!(outs.len() > 50, "{} distinct output lengths", outs.len());
    // SGLang sends the first request at 0, then waits an exponential gap after each.
    assert_eq!(r[0].0, 0.0);
    let mean_gap = r[199].0 / 199.0;
    assert!((mean_gap - 0.25).abs() < 0.05, "{mean_gap}");
    // Rate inf (the default, written as on the command line): everything at 0.
    let (r, _) = rows(
        "scenarios/sglang-gsp.yaml",
        &["workload.source.sglang_gsp.request_rate=inf"],
        "gsp-inf",
    );
    assert!(r.iter().all(|x| x.0 == 0.0));
}

#[test]
fn vllm_random_lengths_and_shared_prefix() {
    let s = stats("scenarios/vllm-random.yaml", &[]);
    let n = 200u64;
    assert_eq!(u(&s, &["requests"]), n);
    // L' = 1024 - 1 special token; [floor(L' x 0.75), ceil(L' x 1.25)] plus 1 + 256 shared.
    let (lo, hi) = (
        (1023.0f64 * 0.75).floor() as u64,
        (1023.0f64 * 1.25).ceil() as u64,
    );
    let shared = 1 + 256;
    let total = u(&s, &["bound", "input_tokens"]);
    assert!((n * (shared + lo)..=n * (shared + hi)).contains(&total));
    // Every prompt shares the prefix; coinciding starts may share more.
    let (reusable, engine) = group_bound(1, n, shared);
    assert!(u(&s, &["bound", "reusable_tokens"]) >= reusable);
    assert!(u(&s, &["bound", "engine_hit_tokens"]) >= engine);
    // With a vocabulary too large for starts to coincide, exactly the prefix.
    let big = ["workload.source.vllm_random.vocab_size=4294967295"];
    let s = stats("scenarios/vllm-random.yaml", &big);
    assert_eq!(u(&s, &["bound", "reusable_tokens"]), reusable);
    assert_eq!(u(&s, &["bound", "engine_hit_tokens"]), engine);
    let (r, _) = rows("scenarios/vllm-random.yaml", &[], "random-rows");
    assert!(r
        .iter()
        .all(|&(_, i, _)| (shared + lo..=shared + hi).contains(&i)));
    // Output: [floor(128 x 0.75), ceil(128 x 1.25)].
    assert!(r.iter().all(|&(_, _, o)| (96..=160).contains(&o)));
    // vLLM rescales the gaps so that the last request goes at num_prompts / rate = 25 s.
    assert!((r[199].0 - 25.0).abs() < 1e-5, "{}", r[199].0);
    assert!(r[0].0 > 0.0);
}

#[test]
fn vllm_random_separate_ratios_and_ramp_up() {
    let sets = [
        "workload.source.vllm_random.random_range_ratio={input: 0, output: 0.5}",
        "workload.source.vllm_random.request_rate=inf",
        "workload.source.vllm_random.ramp_up_strategy=linear",
        "workload.source.vllm_random.ramp_up_start_rps=2",
        "workload.source.vllm_random.ramp_up_end_rps=20",
        "workload.source.vllm_random.burstiness=inf",
    ];
    let (r, _) = rows("scenarios/vllm-random.yaml", &sets, "random-ramp");
    assert!(r.iter().all(|&(_, i, _)| i == 1 + 256 + 1023));
    assert!(r.iter().all(|&(_, _, o)| (64..=192).contains(&o)));
    // Equal gaps at the ramp's rate: 1/2 s first, 1/20 s last.
    assert!((r[0].0 - 0.5).abs() < 2e-6);
    assert!((r[199].0 - r[198].0 - 0.05).abs() < 2e-6);
}

#[test]
fn vllm_prefix_repetition_prefixes_and_counts() {
    let s = stats("scenarios/vllm-prefix-repetition.yaml", &[]);
    assert_eq!(u(&s, &["requests"]), 200);
    assert_eq!(u(&s, &["bound", "input_tokens"]), 200 * (1 + 256 + 256));
    let (reusable, engine) = group_bound(10, 20, 1 + 256);
    assert_eq!(u(&s, &["bound", "reusable_tokens"]), reusable);
    assert_eq!(u(&s, &["bound", "engine_hit_tokens"]), engine);
    // num_prompts // num_prefixes per prefix: 207 prompts over 10 prefixes send 200.
    let s = stats(
        "scenarios/vllm-prefix-repetition.yaml",
        &[
            "workload.source.vllm_prefix_repetition.num_prompts=207",
            "workload.source.vllm_prefix_repetition.prefix_repetition_num_prefixes=7",
        ],
    );
    assert_eq!(u(&s, &["requests"]), 7 * 29);
    let (reusable, _) = group_bound(7, 29, 257);
    assert_eq!(u(&s, &["bound", "reusable_tokens"]), reusable);
}

#[test]
fn same_seed_same_bytes_other_seed_other_bytes() {
    for (i, scenario) in [
        "scenarios/sglang-gsp.yaml",
        "scenarios/vllm-random.yaml",
        "scenarios/vllm-prefix-repetition.yaml",
    ]
    .iter()
    .enumerate()
    {
        let (_, a) = rows(scenario, &[], &format!("seed-a{i}"));
        let (_, b) = rows(scenario, &[], &format!("seed-b{i}"));
        let (_, c) = rows(scenario, &["seed=12345"], &format!("seed-c{i}"));
        assert_eq!(a, b, "{scenario}");
        assert_ne!(a, c, "{scenario}");
    }
}

#[test]
fn the_scenarios_run() {
    for scenario in [
        "scenarios/sglang-gsp.yaml",
        "scenarios/vllm-random.yaml",
        "scenarios/vllm-prefix-repetition.yaml",
    ] {
        let s = json(&run_ok(&["run", scenario, "--json", "--no-files"]));
        assert_eq!(s["requests_completed"], 200, "{scenario}");
    }
}

/// A scenario of source `kind` whose section is the flow map `section` must fail to load
/// with exit code 2, naming `workload.source.{kind}.{field}`.
fn refused(kind: &str, section: &str, field: &str) {
    let dir = temp_dir(&format!("refused-{kind}"));
    let path = dir.join("s.yaml");
    let yaml = format!("name: t\nworkload:\n  source:\n    kind: {kind}\n    {kind}: {section}\n");
    std::fs::write(&path, yaml).unwrap();
    let o = run(&["validate", path.to_str().unwrap()]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(2), "{section}: {err}");
    let want = format!("workload.source.{kind}.{field}:");
    assert!(err.contains(&want), "{section}: want {want} in {err}");
}

#[test]
fn bad_parameters_are_refused_by_name() {
    let g = "sglang_gsp";
    for (section, field) in [
        ("{gsp_num_groups: 0}", "gsp_num_groups"),
        ("{gsp_num_groups: -2}", "gsp_num_groups"),
        ("{gsp_prompts_per_group: 0}", "gsp_prompts_per_group"),
        ("{gsp_question_len: 0}", "gsp_question_len"),
        ("{gsp_range_ratio: -0.1}", "gsp_range_ratio"),
        ("{gsp_range_ratio: 1.5}", "gsp_range_ratio"),
        ("{gsp_range_ratio: .nan}", "gsp_range_ratio"),
        ("{request_rate: 0}", "request_rate"),
        ("{request_rate: .nan}", "request_rate"),
        ("{request_rate: fast}", "request_rate"),
        ("{gsp_zipf_alpha: 1.0}", "gsp_zipf_alpha"),
        ("{gsp_group_distribution: zipf}", "gsp_zipf_alpha"),
        (
            "{gsp_group_distribution: zipf, gsp_zipf_alpha: 0}",
            "gsp_zipf_alpha",
        ),
        ("{gsp_num_turns: 2}", "gsp_num_turns"),
        ("{retokenize_factor: .inf}", "retokenize_factor"),
        ("{tokenize_prompt: true, bos_tokens: 1}", "bos_tokens"),
        (
            "{gsp_num_groups: 1000000, gsp_prompts_per_group: 20}",
            "gsp_prompts_per_group",
        ),
    ] {
        refused(g, section, field);
    }
    let v = "vllm_random";
    for (section, field) in [
        ("{num_prompts: 0}", "num_prompts"),
        ("{num_prompts: 20000000}", "num_prompts"),
        ("{random_range_ratio: 1.0}", "random_range_ratio"),
        ("{random_range_ratio: -0.5}", "random_range_ratio"),
        ("{random_range_ratio: .nan}", "random_range_ratio"),
        (
            "{random_range_ratio: {input: 0.2, output: 1}}",
            "random_range_ratio.output",
        ),
        ("{random_range_ratio: {input: 0.2}}", "random_range_ratio"),
        ("{burstiness: 0}", "burstiness"),
        ("{burstiness: .nan}", "burstiness"),
        (
            "{request_rate: 4, ramp_up_strategy: linear}",
            "request_rate",
        ),
        (
            "{ramp_up_strategy: linear, ramp_up_end_rps: 9}",
            "ramp_up_start_rps",
        ),
        (
            "{ramp_up_strategy: exponential, ramp_up_start_rps: 0, ramp_up_end_rps: 9}",
            "ramp_up_start_rps",
        ),
        (
            "{ramp_up_strategy: linear, ramp_up_start_rps: 9, ramp_up_end_rps: 3}",
            "ramp_up_end_rps",
        ),
        ("{ramp_up_start_rps: 3}", "ramp_up_start_rps"),
        ("{special_ids: 32000}", "special_ids"),
        ("{random_input_len: 100000000}", "random_input_len"),
        // Nothing besides the special token: vLLM's own "too small" check.
        ("{random_input_len: 1}", "random_input_len"),
    ] {
        refused(v, section, field);
    }
    let p = "vllm_prefix_repetition";
    for (section, field) in [
        (
            "{prefix_repetition_num_prefixes: 0}",
            "prefix_repetition_num_prefixes",
        ),
        (
            "{num_prompts: 9, prefix_repetition_num_prefixes: 10}",
            "num_prompts",
        ),
        (
            "{prefix_repetition_output_len: 0}",
            "prefix_repetition_output_len",
        ),
        ("{request_rate: -1}", "request_rate"),
    ] {
        refused(p, section, field);
    }
}

#[test]
fn misplaced_sections_and_keys_are_refused() {
    let o = run(&[
        "validate",
        "scenarios/sglang-gsp.yaml",
        "--set",
        "workload.source.vllm_random={}",
    ]);
    assert_eq!(o.status.code(), Some(2));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("workload.source.vllm_random: does not apply to kind sglang_gsp"),
        "{err}"
    );
    let o = run(&[
        "validate",
        "scenarios/sglang-gsp.yaml",
        "--set",
        "workload.source.sglang_gsp.gsp_num_group=3",
    ]);
    assert_eq!(o.status.code(), Some(2));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("did you mean `gsp_num_groups`"), "{err}");
    let o = run(&[
        "validate",
        "scenarios/vllm-random.yaml",
        "--set",
        "workload.source.path=x.csv",
    ]);
    assert_eq!(o.status.code(), Some(2));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("workload.source.path: does not apply to kind vllm_random"),
        "{err}"
    );
}
