//! Step for step with vLLM 0.33: every case of `../shared/conformance/vllm-0.33.0` (vLLM's
//! own scheduler on requests cut from the Mooncake trace) and kvsim's own cases in
//! `tests/conformance/cases` (made with the same driver) are replayed through kvsim's engine,
//! synchronously and asynchronously as each case was run, and must match every column of
//! every step, every step's per-request schedule and every request's row exactly.

mod common;

use common::{root, run, shared, temp_dir};
use kvsim::conformance::{check_case, compare, read_vllm, replay};
use std::path::{Path, PathBuf};

fn cases_in(dir: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.join("scenario.yaml").is_file())
        .collect();
    v.sort();
    v
}

fn shared_cases() -> PathBuf {
    shared().join("conformance/vllm-0.33.0/cases")
}

fn own_cases() -> PathBuf {
    root().join("tests/conformance/cases")
}

/// Check every run of the given cases; panics with each divergence.
fn check_all(cases: &[PathBuf]) -> (usize, usize) {
    let (mut runs, mut asynchronous) = (0, 0);
    let mut failures = String::new();
    for case in cases {
        for (sub, c) in check_case(case).unwrap() {
            runs += 1;
            asynchronous += usize::from(sub == "vllm_async");
            if !c.matches() {
                failures += &format!("{} {sub}:\n{}\n", case.display(), c.detail);
            }
        }
    }
    assert!(failures.is_empty(), "conformance failures:\n{failures}");
    (runs, asynchronous)
}

#[test]
#[cfg_attr(not(kvsim_shared), ignore = "needs ../shared (or KVSIM_SHARED)")]
fn every_shared_vllm_case_matches_step_for_step_sync_and_async() {
    let dir = shared_cases();
    let cases = cases_in(&dir);
    assert!(cases.len() >= 9, "the kit holds at least 9 cases");
    let (runs, asynchronous) = check_all(&cases);
    assert!(asynchronous >= 2, "the async runs (A0, B1) were checked");
    eprintln!("{runs} vLLM runs matched ({asynchronous} asynchronous)");
}

#[test]
fn own_cases_match_vllm_lone_requests_duplicate_blocks_and_the_watermark() {
    let cases = cases_in(&own_cases());
    let names: Vec<String> = cases
        .iter()
        .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
        .collect();
    assert_eq!(names, ["H1", "L1", "W1"]);
    let (runs, asynchronous) = check_all(&cases);
    assert_eq!((runs, asynchronous), (6, 3));
}

#[test]
fn h1_really_exercises_duplicate_blocks() {
    // The driver counts, in vLLM's own hash map, inserts under a hash that already had a
    // block and evictions of the first block while a copy stayed.
    let meta: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(own_cases().join("H1/vllm/meta.json")).unwrap(),
    )
    .unwrap();
    assert!(meta["dup_inserts"].as_u64().unwrap() >= 100, "{meta}");
    assert!(
        meta["primary_evicted_with_dup"].as_u64().unwrap() >= 5,
        "{meta}"
    );
    assert_eq!(meta["vllm_version"], "0.33.0");
}

#[test]
fn synchronous_kvsim_differs_from_asynchronous_vllm() {
    // The two modes are distinguishable: a replay in the wrong mode must not pass.
    let case = own_cases().join("H1");
    let vllm_async = read_vllm(&case.join("vllm_async")).unwrap();
    let sync = replay(&case, false).unwrap();
    let c = compare(&sync, &vllm_async);
    assert!(!c.matches());
    assert!(c.first_divergent_step.is_some());
    assert!(compare(&replay(&case, true).unwrap(), &vllm_async).matches());
}

#[test]
fn a_changed_value_is_reported_at_its_first_step_with_both_rows() {
    let case = own_cases().join("L1");
    let kvsim = replay(&case, false).unwrap();
    let mut vllm = read_vllm(&case.join("vllm")).unwrap();
    assert!(compare(&kvsim, &vllm).matches());
    // One step's cached-block count, then one request's schedule in a later step.
    let step = *vllm.steps.keys().nth(40).unwrap();
    vllm.steps.get_mut(&step).unwrap()[6] += 1;
    let later = *vllm.sched.keys().nth(60).unwrap();
    let entry = vllm.sched.get_mut(&later).unwrap();
    let first = *entry.sched.keys().next().unwrap();
    entry.sched.get_mut(&first).unwrap().0 += 1;
    let c = compare(&kvsim, &vllm);
    assert_eq!(c.first_divergent_step, Some(step));
    assert!(c.detail.contains(&format!("first divergent step: {step}")));
    assert!(c.detail.contains("  kvsim step=") && c.detail.contains("  vllm  step="));
    // A request row that differs is counted and shown.
    let mut vllm = read_vllm(&case.join("vllm")).unwrap();
    vllm.requests.get_mut(&3).unwrap()[5] += 1;
    let c = compare(&kvsim, &vllm);
    assert_eq!(c.mismatched_requests, 1);
    assert!(c.detail.contains("request 3 differs"));
}

#[test]
fn the_cli_reports_matches_and_divergences_with_exit_codes() {
    let case = own_cases().join("L1");
    let ok = run(&["conformance", case.to_str().unwrap()]);
    assert!(ok.status.success());
    let out = String::from_utf8_lossy(&ok.stdout);
    assert!(
        out.contains("vllm: match") && out.contains("vllm_async: match"),
        "{out}"
    );
    assert!(out.contains("2 of 2 runs match exactly"));

    // A copy of the case whose vLLM steps file was edited at one step.
    let dir = temp_dir("conformance-bad").join("L1");
    std::fs::create_dir_all(dir.join("vllm")).unwrap();
    for f in ["scenario.yaml", "trace.jsonl", "arrivals.txt", "case.json"] {
        std::fs::copy(case.join(f), dir.join(f)).unwrap();
    }
    for f in ["vllm_requests.csv", "vllm_sched.jsonl.gz"] {
        std::fs::copy(case.join("vllm").join(f), dir.join("vllm").join(f)).unwrap();
    }
    let steps = std::fs::read_to_string(case.join("vllm/vllm_steps.csv")).unwrap();
    let mut lines: Vec<String> = steps.lines().map(str::to_string).collect();
    let mut cols: Vec<String> = lines[11].split(',').map(str::to_string).collect();
    cols[8] = (cols[8].parse::<i64>().unwrap() + 1).to_string(); // waiting
    lines[11] = cols.join(",");
    std::fs::write(dir.join("vllm/vllm_steps.csv"), lines.join("\n") + "\n").unwrap();
    let bad = run(&["conformance", dir.to_str().unwrap()]);
    assert_eq!(bad.status.code(), Some(1));
    let out = String::from_utf8_lossy(&bad.stdout);
    assert!(
        out.contains("DIFFERS") && out.contains(&format!("first divergent step: {}", cols[0])),
        "{out}"
    );

    // Not a case: a usage error naming the path.
    let none = run(&["conformance", "docs"]);
    assert_eq!(none.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&none.stderr).contains("docs"));
}
