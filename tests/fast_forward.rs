//! Fast-forwarding (steady decode steps run back to back outside the event loop) changes
//! nothing a run writes: every bundled scenario and the real traces, run with and without
//! `--no-fast-forward`, give byte-identical files (`requests.csv`, `steps.csv`,
//! `summary.json`, `scenario.yaml`, the plots) and the same printed summary, but for the
//! one figure that says how many steps were fast-forwarded. The real-trace tests are listed
//! as ignored when `build.rs` did not find `../shared`; CI always has it.

mod common;
use common::*;
use std::path::{Path, PathBuf};

/// The line of `summary.json` (and of `--json`) that differs by construction.
const FAST_FORWARDED: &str = "\"fast_forwarded_steps\"";

/// Run `kvsim run` with `args` into `dir`; returns the printed JSON summary.
fn run_into(dir: &Path, args: &[&str]) -> String {
    let out = dir.display().to_string();
    let mut all = vec!["run"];
    all.extend_from_slice(args);
    all.extend_from_slice(&["--out", &out, "--json", "-q"]);
    run_ok(&all)
}

/// `text` without the fast-forward figure.
fn without_figure(text: &str) -> String {
    text.lines()
        .filter(|l| !l.contains(FAST_FORWARDED))
        .collect::<Vec<_>>()
        .join("\n")
}

/// Every file under `dir`, by name.
fn files(dir: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    v.sort();
    v
}

/// Run `args` both ways; assert every output is the same and return the share of steps
/// fast-forwarded.
fn same_both_ways(name: &str, args: &[&str]) -> f64 {
    let on = temp_dir(&format!("ff-on-{name}"));
    let off = temp_dir(&format!("ff-off-{name}"));
    let printed_on = run_into(&on, args);
    let mut step_args = args.to_vec();
    step_args.push("--no-fast-forward");
    let printed_off = run_into(&off, &step_args);
    assert_eq!(
        without_figure(&printed_on),
        without_figure(&printed_off),
        "{name}: printed summaries differ"
    );
    let (a, b) = (files(&on), files(&off));
    let names = |v: &[PathBuf]| {
        v.iter()
            .map(|p| p.file_name().unwrap().to_owned())
            .collect::<Vec<_>>()
    };
    assert_eq!(names(&a), names(&b), "{name}: different files");
    assert!(a.len() >= 4, "{name}: wrote {a:?}");
    for (x, y) in a.iter().zip(&b) {
        let (bx, by) = (std::fs::read(x).unwrap(), std::fs::read(y).unwrap());
        if x.ends_with("summary.json") {
            let (sx, sy) = (
                String::from_utf8(bx).unwrap(),
                String::from_utf8(by).unwrap(),
            );
            assert_eq!(without_figure(&sx), without_figure(&sy), "{name}: {x:?}");
        } else {
            assert!(bx == by, "{name}: {} differs", x.display());
        }
    }
    let s = json(&printed_on);
    let off_steps = json(&printed_off)["fast_forwarded_steps"].as_u64().unwrap();
    assert_eq!(off_steps, 0, "{name}: --no-fast-forward fast-forwarded");
    s["fast_forwarded_steps"].as_u64().unwrap() as f64 / s["steps"].as_u64().unwrap().max(1) as f64
}

#[test]
fn every_bundled_scenario_writes_the_same_files_both_ways() {
    let mut any = false;
    for e in std::fs::read_dir(root().join("scenarios")).unwrap() {
        let p = e.unwrap().path();
        let name = p.file_stem().unwrap().to_string_lossy().to_string();
        // These two replay traces from ../shared (tested below).
        if name == "azure-conversation" || name == "mooncake-conversation" {
            continue;
        }
        let path = p.display().to_string();
        let share = same_both_ways(&name, &[&path]);
        any |= share > 0.0;
    }
    assert!(any, "no bundled scenario fast-forwarded a step");
}

#[test]
fn synchronous_scheduling_and_a_prefix_cache_policy_write_the_same_files_both_ways() {
    let share = same_both_ways(
        "quickstart-sync-lru",
        &[
            "scenarios/quickstart.yaml",
            "--set",
            "engine.async_scheduling=false",
            "--set",
            "kv_cache.eviction=lru",
        ],
    );
    assert!(share > 0.0);
}

#[test]
fn a_cache_small_enough_to_preempt_writes_the_same_files_both_ways() {
    // 700 and 1,500 blocks: requests are preempted and recomputed between the runs of
    // steady steps, which must stop a step before a block could run short.
    for blocks in [700, 1500] {
        for asynchronous in [true, false] {
            let name = format!("small-{blocks}-{asynchronous}");
            let b = format!("kv_cache.num_gpu_blocks={blocks}");
            let a = format!("engine.async_scheduling={asynchronous}");
            let args = ["scenarios/quickstart.yaml", "--set", &b, "--set", &a];
            let share = same_both_ways(&name, &args);
            let mut summary_args = vec!["run"];
            summary_args.extend_from_slice(&args);
            summary_args.extend_from_slice(&["--no-files", "--json", "-q"]);
            let s = json(&run_ok(&summary_args));
            assert!(s["preemptions"].as_u64().unwrap() > 0, "{name}");
            assert!(share > 0.05, "{name}: {share}");
        }
    }
}

/// [`same_both_ways`] on `scenario` replaying the real trace at `trace` (under
/// `../shared/traces`), with `sets` (`key=value` each) overriding it.
fn trace_both_ways(name: &str, scenario: &str, trace: &str, sets: &[&str]) -> f64 {
    let source = format!(
        "workload.source.path={}",
        shared_traces().join(trace).display()
    );
    let mut args = vec![scenario, "--set", &source];
    for set in sets {
        args.extend(["--set", set]);
    }
    same_both_ways(name, &args)
}

const AZURE: (&str, &str) = (
    "scenarios/azure-conversation.yaml",
    "azure2023/AzureLLMInferenceTrace_conv.csv",
);
const MOONCAKE: (&str, &str) = (
    "scenarios/mooncake-conversation.yaml",
    "mooncake/conversation_trace.jsonl",
);

#[test]
#[cfg_attr(not(kvsim_shared), ignore = "needs ../shared (or KVSIM_SHARED)")]
fn azure_conversation_writes_the_same_files_both_ways_and_skips_most_steps() {
    let (s, t) = AZURE;
    // Most of the trace's steps are decode steps between arrivals and completions.
    let share = trace_both_ways("azure", s, t, &[]);
    assert!(share > 0.5, "{share}");
    let sync = trace_both_ways("azure-sync", s, t, &["engine.async_scheduling=false"]);
    assert!(sync > 0.5, "{sync}");
    trace_both_ways("azure-4", s, t, &["cluster.replicas=4"]);
}

#[test]
#[cfg_attr(not(kvsim_shared), ignore = "needs ../shared (or KVSIM_SHARED)")]
fn mooncake_conversation_writes_the_same_files_both_ways() {
    let (s, t) = MOONCAKE;
    // One H100 is overloaded by the trace: thousands of requests wait throughout, and
    // the runs are those in which the head of the queue cannot be admitted.
    let share = trace_both_ways("mooncake", s, t, &[]);
    assert!(share > 0.3, "{share}");
    trace_both_ways("mooncake-4", s, t, &["cluster.replicas=4"]);
    // At a quarter of the rate nothing waits for long, so decode runs are long.
    let light = ["workload.rate_scale=0.25", "workload.limit=3000"];
    let share = trace_both_ways("mooncake-light", s, t, &light);
    assert!(share > 0.2, "{share}");
}
