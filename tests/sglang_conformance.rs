//! Step for step with SGLang 0.5.23: every case of `../shared/conformance/sglang-0.5.23`
//! (SGLang's own scheduler, tree cache and allocators on requests cut from the Mooncake
//! trace) is replayed through kvsim's SGLang engine and must match every column of every
//! step row, every step's schedule record (per-request extend/decode, admissions,
//! retractions, prefix hits, ratio, KV after the result) and every request's row exactly.
//! Token-slot conservation is audited after every step of the replay.

mod common;

use common::{run, shared, temp_dir};
use kvsim::conformance::sglang::{check_case, compare, read_sglang, replay};
use std::path::PathBuf;

fn kit_cases() -> Vec<PathBuf> {
    let dir = shared().join("conformance/sglang-0.5.23/cases");
    let mut v: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| kvsim::conformance::sglang::is_case(p))
        .collect();
    v.sort();
    v
}

#[test]
#[cfg_attr(not(kvsim_shared), ignore = "needs ../shared (or KVSIM_SHARED)")]
fn every_sglang_case_matches_step_for_step() {
    let cases = kit_cases();
    assert!(cases.len() >= 7, "the kit holds at least 7 cases");
    let mut failures = String::new();
    let (mut steps, mut retractions) = (0, 0);
    for case in &cases {
        let c = check_case(case).unwrap();
        steps += c.steps;
        if !c.matches() {
            failures += &format!("{}:\n{}\n", case.display(), c.detail);
        }
        let sg = read_sglang(case).unwrap();
        retractions += sg.sched.values().map(|r| r.retracted.len()).sum::<usize>();
    }
    assert!(failures.is_empty(), "conformance failures:\n{failures}");
    // The kit's cases retract (B1, D1, D2), evict and chunk: the match is not vacuous.
    assert!(retractions >= 5, "{retractions} retractions in the kit");
    assert!(steps > 35_000, "{steps} steps compared");
}

#[test]
#[cfg_attr(not(kvsim_shared), ignore = "needs ../shared (or KVSIM_SHARED)")]
fn a_changed_cell_is_reported_at_its_step() {
    let case = kit_cases().into_iter().find(|c| c.ends_with("B1")).unwrap();
    let sg = read_sglang(&case).unwrap();
    let mut kv = replay(&case).unwrap();
    assert!(compare(&kv, &sg).matches());
    // One more retraction at step 2218 (the kit's) and one token off a request's row.
    kv.sched.get_mut(&2218).unwrap().retracted.push(7);
    let c = compare(&kv, &sg);
    assert_eq!(c.first_divergent_step, Some(2218));
    assert!(
        c.detail.contains("first divergent step: 2218"),
        "{}",
        c.detail
    );
    let row = kv.requests.get_mut(&3).unwrap();
    row[9] = kvsim::conformance::sglang::Cell::Int(-5);
    assert_eq!(compare(&kv, &sg).mismatched_requests, 1);
}

#[test]
#[cfg_attr(not(kvsim_shared), ignore = "needs ../shared (or KVSIM_SHARED)")]
fn the_command_fails_with_the_first_divergent_step() {
    let src = kit_cases().into_iter().find(|c| c.ends_with("A1")).unwrap();
    let dir = temp_dir("sglang-conformance-edit");
    let case = dir.join("A1");
    std::fs::create_dir_all(&case).unwrap();
    for f in [
        "case.json",
        "trace.jsonl",
        "sglang_requests.csv",
        "sglang_sched.jsonl.gz",
    ] {
        std::fs::copy(src.join(f), case.join(f)).unwrap();
    }
    // SGLang's row of step 5 with one more waiting request.
    let steps = std::fs::read_to_string(src.join("sglang_steps.csv")).unwrap();
    let mut lines: Vec<String> = steps.lines().map(String::from).collect();
    let mut cells: Vec<String> = lines[6].split(',').map(String::from).collect();
    let w: i64 = cells[15].parse().unwrap();
    cells[15] = (w + 1).to_string();
    lines[6] = cells.join(",");
    std::fs::write(case.join("sglang_steps.csv"), lines.join("\n") + "\n").unwrap();
    let out = run(&["conformance", case.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("first divergent step: 5"), "{text}");
    let ok = run(&["conformance", src.to_str().unwrap()]);
    assert!(
        ok.status.success(),
        "{}",
        String::from_utf8_lossy(&ok.stdout)
    );
}
