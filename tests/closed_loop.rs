//! Closed-loop load: `workload.max_concurrency` and `workload.turn_timing: after_answer`,
//! checked from the per-request rows of real runs.

mod common;
use common::*;
use std::path::Path;

/// (id, sent, finished, input, output, cached) of every completed request.
fn rows(out: &Path) -> Vec<(u64, f64, f64, u64, u64, u64)> {
    let mut rd = csv::Reader::from_path(out.join("requests.csv")).unwrap();
    let h = rd.headers().unwrap().clone();
    let col = |name: &str| h.iter().position(|x| x == name).unwrap();
    let (id, sent, fin) = (col("request_id"), col("arrival_s"), col("finish_s"));
    let (inp, outp, cached) = (
        col("input_tokens"),
        col("output_tokens"),
        col("cached_tokens"),
    );
    rd.records()
        .map(|r| r.unwrap())
        .filter(|r| &r[col("status")] == "completed")
        .map(|r| {
            (
                r[id].parse().unwrap(),
                r[sent].parse().unwrap(),
                r[fin].parse().unwrap(),
                r[inp].parse().unwrap(),
                r[outp].parse().unwrap(),
                r[cached].parse().unwrap(),
            )
        })
        .collect()
}

/// The most requests in flight at once (a finish at the same instant as a send frees its
/// slot first).
fn most_in_flight(rows: &[(u64, f64, f64, u64, u64, u64)]) -> usize {
    let mut events: Vec<(f64, i32)> = Vec::new();
    for r in rows {
        events.push((r.1, 1));
        events.push((r.2, -1));
    }
    events.sort_by(|a, b| a.partial_cmp(b).unwrap());
    let (mut now, mut most) = (0i32, 0i32);
    for (_, d) in events {
        now += d;
        most = most.max(now);
    }
    most as usize
}

fn run_quickstart(name: &str, sets: &[&str]) -> std::path::PathBuf {
    let out = temp_dir(name);
    let mut args = vec![
        "run",
        "scenarios/quickstart.yaml",
        "--out",
        out.to_str().unwrap(),
    ];
    for s in sets {
        args.extend(["--set", s]);
    }
    run_ok(&args);
    out
}

#[test]
fn max_concurrency_8_never_has_more_than_8_requests_in_flight() {
    // Quickstart's 300 requests sent 20 times faster, open loop: without the limit far more
    // than 8 overlap; with it, never more than 8, and all complete.
    let sets = ["workload.rate_scale=20", "workload.turn_timing=arrival"];
    let free = rows(&run_quickstart("cl-free", &sets));
    assert_eq!(free.len(), 300);
    assert!(most_in_flight(&free) > 16, "{}", most_in_flight(&free));
    let mut limited_sets = sets.to_vec();
    limited_sets.push("workload.max_concurrency=8");
    let limited = rows(&run_quickstart("cl-8", &limited_sets));
    assert_eq!(limited.len(), 300);
    assert_eq!(most_in_flight(&limited), 8);
    // Sent later than their source times, so the limited run lasts longer.
    let last = |r: &[(u64, f64, f64, u64, u64, u64)]| r.iter().map(|x| x.2).fold(0.0, f64::max);
    assert!(last(&limited) > last(&free));
}

#[test]
fn a_second_turn_hits_the_first_turns_prompt_and_answer() {
    // One session of two turns: the second prompt repeats the first prompt and its answer.
    // Every full block of the first turn whose tokens had their KV computed (all but the
    // last generated token) is a hit for the second.
    let dir = temp_dir("cl-turns");
    let scenario = dir.join("two-turns.yaml");
    std::fs::write(
        &scenario,
        "name: two-turns\nseed: 3\nworkload:\n  source:\n    kind: synthetic\n    requests: 2\n    \
         arrival: {kind: poisson, rate: 0.001}\n    input: {kind: constant, value: 1000}\n    \
         output: {kind: constant, value: 300}\n    sessions:\n      turns: {kind: constant, value: 2}\n      \
         think_time_s: 5\n  turn_timing: after_answer\nmodel:\n  preset: llama-3.1-8b\n",
    )
    .unwrap();
    let out = dir.join("out");
    run_ok(&[
        "run",
        scenario.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
    ]);
    let mut r = rows(&out);
    r.sort_by_key(|x| x.0);
    let (first, second) = (r[0], r[1]);
    assert_eq!((first.3, first.4), (1000, 300));
    assert_eq!(second.3, 1000 + 300 + 1000, "the prompt holds the answer");
    assert!(second.1 >= first.2, "sent after the answer");
    let full_computed_blocks = (first.3 + first.4 - 1) / 16;
    assert_eq!(second.5, full_computed_blocks * 16);
}

#[test]
fn zero_concurrency_is_a_usage_error_naming_the_field() {
    let o = run(&[
        "run",
        "scenarios/quickstart.yaml",
        "--no-files",
        "--set",
        "workload.max_concurrency=0",
    ]);
    assert_eq!(o.status.code(), Some(2));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("workload.max_concurrency"), "{err}");
}

#[test]
fn an_overloaded_run_says_so_and_a_served_one_does_not() {
    // Quickstart sent 40 times faster on a GPU with room for few sequences at once: the
    // queue grows through the run.
    let summary = |sets: &[&str]| -> serde_json::Value {
        let mut a = vec!["run", "scenarios/quickstart.yaml", "--json", "--no-files"];
        for s in sets {
            a.extend(["--set", s]);
        }
        serde_json::from_str(&run_ok(&a)).unwrap()
    };
    let served = summary(&[]);
    assert!(served.get("load_warning").is_none(), "{served}");
    let sets = [
        "workload.rate_scale=40",
        "workload.turn_timing=arrival",
        "engine.max_num_seqs=4",
    ];
    let over = summary(&sets);
    let w = over["load_warning"].as_str().expect("a load warning");
    assert!(w.starts_with("overloaded:"), "{w}");
    // The same load under a concurrency limit is closed-loop: nothing waits in the engine.
    let mut limited = sets.to_vec();
    limited.push("workload.max_concurrency=4");
    assert!(summary(&limited).get("load_warning").is_none());
}
