//! `kvsim attention-eval` on the committed SmolLM2 traces and on a hand-made trace with
//! known answers, and `kvsim compare` on the Mooncake trace.

mod common;

use common::{csv_rows, run, run_ok, shared_traces, temp_dir};
use kvsim::attention::{evaluate, AttentionTrace};
use std::collections::HashMap;
use std::path::Path;

const TRACES: [&str; 2] = [
    "calibration/attention/needle-1k.kvat",
    "calibration/attention/needle-2k.kvat",
];

fn f(row: &HashMap<String, String>, col: &str) -> f64 {
    row[col].parse().unwrap()
}

#[test]
fn oracle_bounds_every_policy_and_random_is_worst_on_the_committed_traces() {
    for trace in TRACES {
        let d = temp_dir(&format!("ae-{}", trace.len()));
        let out = d.join("eval.csv");
        let printed = run_ok(&["attention-eval", trace, "--out", out.to_str().unwrap()]);
        assert!(
            printed.contains("| oracle | selection | 50 % |"),
            "{printed}"
        );
        let rows = csv_rows(&out);
        assert_eq!(
            rows.len(),
            12 * 3,
            "ten rules, two quantizers, three ratios"
        );
        for ratio in ["0.5", "0.2", "0.1"] {
            // The bounds are about choosing tokens; quantization keeps them all.
            let at: Vec<_> = rows
                .iter()
                .filter(|r| r["keep_ratio"] == ratio && r["kind"] != "quantization")
                .collect();
            assert_eq!(at.len(), 10);
            let quant = |p: &str| {
                rows.iter()
                    .find(|r| r["keep_ratio"] == ratio && r["policy"] == p)
                    .unwrap()
            };
            // Four bits err less than two, and both keep the fact.
            assert!(f(quant("kivi4"), "output_error") < f(quant("kivi"), "output_error"));
            assert!(f(quant("kivi4"), "attention_mass") > f(quant("kivi"), "attention_mass"));
            assert_eq!(quant("kivi")["fact_survives"], "true");
            let get = |p: &str| *at.iter().find(|r| r["policy"] == p).unwrap();
            let (oracle, random) = (get("oracle"), get("random"));
            assert_eq!(f(oracle, "topk_recall"), 1.0);
            for r in &at {
                let name = format!("{trace} {} at {ratio}", r["policy"]);
                assert!(
                    f(oracle, "attention_mass") >= f(r, "attention_mass"),
                    "{name}"
                );
                assert!(f(oracle, "output_error") <= f(r, "output_error"), "{name}");
                assert!(f(r, "attention_mass") > 0.0 && f(r, "attention_mass") <= 1.0 + 1e-3);
                if r["policy"] != "random" {
                    assert!(
                        f(random, "attention_mass") < f(r, "attention_mass"),
                        "{name}"
                    );
                    assert!(f(random, "topk_recall") < f(r, "topk_recall"), "{name}");
                    assert!(f(random, "output_error") > f(r, "output_error"), "{name}");
                }
            }
        }
        // Sharing the budget among heads by their votes keeps more than SnapKV's even split.
        for ratio in ["0.5", "0.2", "0.1"] {
            let mass = |p: &str| {
                f(
                    rows.iter()
                        .find(|r| r["policy"] == p && r["keep_ratio"] == ratio)
                        .unwrap(),
                    "attention_mass",
                )
            };
            assert!(mass("ada_snapkv") > mass("snapkv"), "{trace} at {ratio}");
        }
        // Less budget, less attention kept, for every policy.
        for p in kvsim::attention::policies::POLICIES {
            let m = |ratio: &str| {
                f(
                    rows.iter()
                        .find(|r| r["policy"] == *p && r["keep_ratio"] == ratio)
                        .unwrap(),
                    "attention_mass",
                )
            };
            assert!(m("0.5") > m("0.2") && m("0.2") > m("0.1"), "{trace} {p}");
        }
        // Same seed, same bytes.
        let again = d.join("again.csv");
        run_ok(&["attention-eval", trace, "--out", again.to_str().unwrap()]);
        assert_eq!(std::fs::read(&out).unwrap(), std::fs::read(&again).unwrap());
    }
}

#[test]
fn committed_traces_have_the_documented_shapes() {
    let root = common::root();
    let t = AttentionTrace::read(&root.join(TRACES[0])).unwrap();
    assert_eq!(
        (t.model_layers, t.heads, t.kv_heads, t.head_dim),
        (30, 9, 3, 64)
    );
    assert_eq!((t.prompt_len, t.decode_steps, t.window), (1043, 20, 32));
    assert_eq!(
        t.layers.iter().map(|l| l.layer).collect::<Vec<_>>(),
        [0, 7, 14, 22, 29]
    );
    assert_eq!(t.fact, Some(412..418));
    assert!(t.note.contains("48173"), "{}", t.note);
    let t = AttentionTrace::read(&root.join(TRACES[1])).unwrap();
    assert_eq!((t.prompt_len, t.decode_steps), (1850, 20));
    assert_eq!(
        t.layers.iter().map(|l| l.layer).collect::<Vec<_>>(),
        [2, 15, 28]
    );
    assert_eq!(t.fact, Some(1368..1374));
    for path in TRACES {
        assert!(std::fs::metadata(root.join(path)).unwrap().len() < 10_000_000);
    }
}

/// IEEE half precision of a value it represents exactly (a power of two or zero).
fn half(x: f32) -> [u8; 2] {
    let h: u16 = if x == 0.0 {
        0
    } else {
        let e = x.log2().round() as i32;
        assert_eq!(2f32.powi(e), x, "only powers of two");
        ((e + 15) as u16) << 10
    };
    h.to_le_bytes()
}

/// One layer, one head, head_dim 2, prompt 8, window 2, one decode step, fact at 7.
/// Decode attention: 1/4 on token 0, 1/16 on tokens 1-6, 1/8 on token 7, 1/4 on the new
/// token 8. Values: (1, 0) for the prompt, (0, 1) for token 8.
fn tiny_trace() -> Vec<u8> {
    let mut b = b"KVSIMATT".to_vec();
    for v in [1u32, 4, 1, 1, 1, 2, 8, 1, 2, 7, 1, 1] {
        b.extend_from_slice(&v.to_le_bytes());
    }
    b.push(b'm');
    b.extend_from_slice(&0u32.to_le_bytes());
    b.extend_from_slice(&2u32.to_le_bytes()); // recorded layer 2 of 4
    let halves = |xs: &[f32]| xs.iter().flat_map(|&x| half(x)).collect::<Vec<u8>>();
    let keys = halves(&[1.0; 18]);
    let values: Vec<f32> = (0..9)
        .flat_map(|j| if j < 8 { [1.0, 0.0] } else { [0.0, 1.0] })
        .collect();
    let mut attn = vec![0.0625f32; 9];
    attn[0] = 0.25;
    attn[7] = 0.125;
    attn[8] = 0.25;
    let window = [0.125f32; 16];
    b.extend(keys);
    b.extend(halves(&values));
    b.extend(halves(&[1.0; 4])); // window queries
    b.extend(halves(&[1.0; 2])); // decode query
    b.extend(halves(&window));
    b.extend(halves(&attn));
    for _ in 0..8 {
        b.extend_from_slice(&1.0f32.to_le_bytes()); // colsum
    }
    b
}

#[test]
fn known_answers_on_a_hand_made_trace() {
    let t = AttentionTrace::parse(&tiny_trace()).unwrap();
    let names = ["streaming_llm", "oracle"].map(String::from);
    let rows = evaluate(&t, &names, &[0.5], 0).unwrap();
    // StreamingLLM keeps 4 sinks (tokens 0-3) plus token 8: mass 1/4 + 3/16 + 1/4 =
    // 0.6875. Output (0.4375, 0.25) / 0.6875 = (7/11, 4/11) against the full (0.75, 0.25):
    // error sqrt(2) x 1.25/11 / sqrt(0.625) = 0.203279. The fact (token 7) is dropped.
    let s = &rows[0];
    assert_eq!((s.budget_tokens, s.mass), (4, 0.6875));
    assert!(
        (s.output_error - 0.203_279).abs() < 1e-5,
        "{}",
        s.output_error
    );
    // The top 4 are tokens 0 and 7 and, of the ties, the earliest: 1 and 2. It keeps three.
    assert_eq!(s.recall, 0.75);
    assert_eq!((s.fact_kept, s.fact_survives), (Some(0.0), Some(false)));
    // The oracle keeps tokens 0, 7, 1, 2: mass 1/4 + 1/8 + 1/8 + 1/4 = 0.75, recall 1.
    let o = &rows[1];
    assert_eq!((o.mass, o.recall), (0.75, 1.0));
    assert_eq!((o.fact_kept, o.fact_survives), (Some(1.0), Some(true)));
}

#[test]
fn bad_traces_and_arguments_are_input_errors() {
    let d = temp_dir("ae-bad");
    let mut bytes = tiny_trace();
    bytes.truncate(bytes.len() - 3);
    let path = d.join("cut.kvat");
    std::fs::write(&path, &bytes).unwrap();
    let o = run(&["attention-eval", path.to_str().unwrap()]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(2), "{err}");
    assert!(err.contains("cut.kvat") && err.contains("bytes"), "{err}");
    // Attention that is not a distribution.
    let mut bytes = tiny_trace();
    let n = bytes.len();
    bytes[n - 32 - 2..n - 32].copy_from_slice(&half(1.0)); // last decode weight 1/4 -> 1
    std::fs::write(&path, &bytes).unwrap();
    let err = String::from_utf8_lossy(&run(&["attention-eval", path.to_str().unwrap()]).stderr)
        .into_owned();
    assert!(err.contains("sums to"), "{err}");
    for args in [
        vec!["attention-eval", TRACES[0], "--policies", "lru"],
        vec!["attention-eval", TRACES[0], "--budgets", "0"],
        vec!["attention-eval", "no/such.kvat"],
    ] {
        let o = run(&args);
        assert_eq!(o.status.code(), Some(2), "{args:?}");
    }
    assert!(Path::new(&common::root().join(TRACES[0])).exists());
}

#[test]
#[cfg_attr(not(kvsim_shared), ignore = "needs ../shared (or KVSIM_SHARED)")]
fn compare_on_mooncake_joins_serving_and_fidelity() {
    let traces = shared_traces();
    let d = temp_dir("compare");
    let trace = traces.join("mooncake/conversation_trace.jsonl");
    let set = format!("workload.source.path={}", trace.display());
    let out = d.join("cmp");
    let printed = run_ok(&[
        "compare",
        "scenarios/mooncake-conversation.yaml",
        "--trace",
        TRACES[0],
        "--policies",
        "snapkv,quest,oracle,kivi",
        "--budgets",
        "0.2",
        "--set",
        &set,
        "--out",
        out.to_str().unwrap(),
    ]);
    assert!(printed.contains("| full |"), "{printed}");
    let rows = csv_rows(&out.join("compare.csv"));
    let get = |p: &str| rows.iter().find(|r| r["policy"] == p).unwrap();
    let (full, snap, quest) = (get("full"), get("snapkv"), get("quest"));
    // Eviction at 20 %: a larger batch and more throughput than the full cache.
    assert!(f(snap, "max_batch") > f(full, "max_batch"));
    assert!(f(snap, "output_token_throughput") > f(full, "output_token_throughput"));
    // Selection: shorter steps, and no less KV memory in use.
    assert!(f(quest, "mean_step_ms") < f(full, "mean_step_ms"));
    assert!(f(quest, "peak_kv_gib") >= f(full, "peak_kv_gib") - 0.01);
    // Fidelity beside it; the oracle has no serving model, KIVI no selection rule.
    assert!(f(snap, "output_error") > 0.0 && f(full, "output_error") == 0.0);
    assert_eq!(get("oracle")["status"], "no_serving_model");
    assert_eq!(get("kivi")["status"], "ok");
    // 2-bit KIVI: every token kept, all attention there but blurred.
    assert!(f(get("kivi"), "output_error") > 0.0);
    assert!(f(get("kivi"), "max_batch") > f(full, "max_batch"));
    let svg = std::fs::read_to_string(out.join("compare.svg")).unwrap();
    assert!(svg.starts_with("<svg") && svg.contains("snapkv"));
}

#[test]
fn compare_runs_the_full_cache_even_when_the_scenario_has_a_policy() {
    let d = temp_dir("compare-lc");
    let out = d.join("cmp");
    run_ok(&[
        "compare",
        "scenarios/long-context-snapkv.yaml",
        "--trace",
        TRACES[1],
        "--policies",
        "snapkv",
        "--budgets",
        "0.2",
        "--out",
        out.to_str().unwrap(),
    ]);
    let rows = csv_rows(&out.join("compare.csv"));
    assert_eq!(rows.len(), 2);
    // Runs in parallel, writes in order: the same bytes every time.
    let again = d.join("again");
    run_ok(&[
        "compare",
        "scenarios/long-context-snapkv.yaml",
        "--trace",
        TRACES[1],
        "--policies",
        "snapkv",
        "--budgets",
        "0.2",
        "--jobs",
        "1",
        "--out",
        again.to_str().unwrap(),
    ]);
    for f in ["compare.csv", "compare.md", "compare.svg"] {
        assert_eq!(
            std::fs::read(out.join(f)).unwrap(),
            std::fs::read(again.join(f)).unwrap(),
            "{f}"
        );
    }
    let as_run = |set: &str| {
        common::json(&run_ok(&[
            "run",
            "scenarios/long-context-snapkv.yaml",
            "--set",
            set,
            "--json",
            "--no-files",
        ]))
    };
    let none = as_run("kv_cache.token_policy.kind=none");
    let snap = as_run("kv_cache.token_policy.keep_ratio=0.2");
    for (row, summary) in [(&rows[0], &none), (&rows[1], &snap)] {
        assert_eq!(
            row["max_batch"].parse::<u64>().unwrap(),
            summary["max_batch"].as_u64().unwrap()
        );
        let tput = summary["output_token_throughput"].as_f64().unwrap();
        assert!((f(row, "output_token_throughput") - tput).abs() < 0.01);
    }
    assert_eq!(rows[0]["policy"], "full");
    assert!(f(&rows[0], "peak_kv_gib") > f(&rows[1], "peak_kv_gib"));
}
