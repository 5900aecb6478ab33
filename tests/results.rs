//! Run outputs: the Perfetto trace, several seeds with confidence intervals, progress bars.

mod common;
use common::*;
use serde_json::Value;
use std::collections::HashMap;
use std::path::Path;

fn num(e: &Value, k: &str) -> f64 {
    e[k].as_f64()
        .unwrap_or_else(|| panic!("{k} is not a number in {e}"))
}

/// Check every event against the Trace Event Format's rules; returns the events.
fn check_format(trace: &Value) -> Vec<Value> {
    let unit = trace["displayTimeUnit"].as_str().expect("displayTimeUnit");
    assert!(unit == "ms" || unit == "ns", "{unit}");
    let events = trace["traceEvents"].as_array().expect("traceEvents array");
    for e in events {
        let ph = e["ph"].as_str().unwrap_or_else(|| panic!("no ph: {e}"));
        assert!(e["name"].is_string(), "{e}");
        assert!(num(e, "ts") >= 0.0, "{e}");
        assert!(e["pid"].is_u64() && e["tid"].is_u64(), "{e}");
        match ph {
            "X" => assert!(num(e, "dur") >= 0.0, "{e}"),
            "C" => {
                let args = e["args"].as_object().expect("counter args");
                assert!(
                    !args.is_empty() && args.values().all(|v| v.is_number()),
                    "{e}"
                );
            }
            "b" | "e" => assert!(e["id"].is_u64() && e["cat"].is_string(), "{e}"),
            "M" => assert!(e["args"]["name"].is_string() || e["args"]["sort_index"].is_u64()),
            "i" => assert_eq!(e["s"], "p"),
            other => panic!("unexpected phase {other}"),
        }
    }
    events.clone()
}

/// CSV rows by column.
type Rows = Vec<HashMap<String, String>>;

/// Run a scenario with the trace on; the parsed trace and the two CSVs.
fn traced_run(name: &str, extra: &[&str]) -> (Vec<Value>, Rows, Rows) {
    let dir = temp_dir(name);
    let out = dir.to_str().unwrap();
    let mut args = vec!["run", "scenarios/quickstart.yaml", "--out", out];
    args.extend_from_slice(extra);
    run_ok(&args);
    assert!(!dir.join("trace.json.partial").exists());
    let text = std::fs::read_to_string(dir.join("trace.json")).expect("trace.json written");
    let trace: Value = serde_json::from_str(&text).expect("trace.json is JSON");
    let events = check_format(&trace);
    (
        events,
        csv_rows(&dir.join("requests.csv")),
        csv_rows(&dir.join("steps.csv")),
    )
}

fn check_requests(events: &[Value], requests: &[HashMap<String, String>]) {
    // (id, name) -> (begin ts, end ts), each seen once.
    let mut spans: HashMap<(u64, String), (Option<f64>, Option<f64>)> = HashMap::new();
    for e in events.iter().filter(|e| e["ph"] == "b" || e["ph"] == "e") {
        let key = (
            e["id"].as_u64().unwrap(),
            e["name"].as_str().unwrap().to_string(),
        );
        let s = spans.entry(key).or_default();
        let slot = if e["ph"] == "b" { &mut s.0 } else { &mut s.1 };
        assert!(slot.is_none(), "{e} twice");
        *slot = Some(num(e, "ts"));
    }
    let completed: Vec<_> = requests
        .iter()
        .filter(|r| r["status"] == "completed")
        .collect();
    assert!(completed.len() > 100);
    assert_eq!(
        spans.len(),
        4 * completed.len(),
        "4 spans per completed request"
    );
    let args: HashMap<u64, &Value> = events
        .iter()
        .filter(|e| e["ph"] == "b" && e["name"] == "request")
        .map(|e| (e["id"].as_u64().unwrap(), &e["args"]))
        .collect();
    for r in completed {
        let id: u64 = r["request_id"].parse().unwrap();
        let span = |n: &str| {
            let (b, e) = spans[&(id, n.to_string())];
            (b.unwrap(), e.unwrap())
        };
        let (send, finish) = span("request");
        let (q0, q1) = span("queued");
        let (p0, p1) = span("prefill");
        let (d0, d1) = span("decode");
        assert!(send <= p1 && p1 <= finish, "request {id}");
        assert_eq!(
            (q0, q1, p1, d1),
            (send, p0, d0, finish),
            "phases of {id} nest"
        );
        // requests.csv keeps seconds to 6 decimals: 1 µs.
        let us = |k: &str| r[k].parse::<f64>().unwrap() * 1e6;
        for (got, col) in [
            (send, "arrival_s"),
            (p0, "first_scheduled_s"),
            (p1, "first_token_s"),
            (finish, "finish_s"),
        ] {
            assert!(
                (got - us(col)).abs() <= 1.0,
                "request {id} {col}: {got} vs {}",
                us(col)
            );
        }
        let a = args[&id];
        assert_eq!(a["input_tokens"].to_string(), r["input_tokens"]);
        assert_eq!(a["cached_tokens"].to_string(), r["cached_tokens"]);
    }
}

fn check_steps(events: &[Value], steps: &[HashMap<String, String>]) {
    let mut by_pid: HashMap<u64, Vec<&Value>> = HashMap::new();
    for e in events.iter().filter(|e| e["ph"] == "X" || e["ph"] == "C") {
        by_pid
            .entry(e["pid"].as_u64().unwrap())
            .or_default()
            .push(e);
    }
    let replicas: std::collections::BTreeSet<&str> =
        steps.iter().map(|s| s["replica"].as_str()).collect();
    assert_eq!(by_pid.len(), replicas.len());
    let mut matched = 0;
    for (pid, evs) in by_pid {
        let rows: Vec<_> = steps
            .iter()
            .filter(|s| s["replica"] == (pid - 1).to_string())
            .collect();
        let xs: Vec<_> = evs.iter().filter(|e| e["ph"] == "X").collect();
        assert_eq!(xs.len(), rows.len(), "one step event per steps.csv row");
        for w in xs.windows(2) {
            let end = num(w[0], "ts") + num(w[0], "dur");
            assert!(
                end <= num(w[1], "ts") + 1e-6,
                "steps overlap on pid {pid}: {} {}",
                w[0],
                w[1]
            );
        }
        let counter = |name: &'static str| {
            evs.iter()
                .filter(move |e| e["ph"] == "C" && e["name"] == name)
        };
        for (((x, row), blocks), queue) in xs
            .iter()
            .zip(&rows)
            .zip(counter("kv blocks"))
            .zip(counter("queue"))
        {
            assert_eq!(num(blocks, "ts"), num(x, "ts"));
            assert!((num(x, "ts") / 1e6 - row["start_s"].parse::<f64>().unwrap()).abs() < 1e-6);
            let a = &x["args"];
            for (v, col) in [
                (&a["batch_size"], "batch_size"),
                (&a["prefill_tokens"], "prefill_tokens"),
                (&a["decode_tokens"], "decode_tokens"),
                (&a["preemptions"], "preemptions"),
                (&blocks["args"]["used"], "blocks_used"),
                (&blocks["args"]["cached"], "blocks_cached"),
                (&blocks["args"]["free"], "blocks_free"),
                (&queue["args"]["waiting"], "waiting"),
                (&queue["args"]["running"], "running"),
            ] {
                assert_eq!(
                    v.to_string(),
                    row[col],
                    "{col} of step at {}",
                    row["start_s"]
                );
            }
            matched += 1;
        }
    }
    assert_eq!(matched, steps.len(), "every step has both counters");
}

#[test]
fn trace_json_follows_the_format_and_matches_the_csvs() {
    let (events, requests, steps) = traced_run("trace", &["--trace"]);
    check_requests(&events, &requests);
    check_steps(&events, &steps);
}

#[test]
fn trace_of_two_replicas_from_the_scenario_key() {
    let (events, requests, steps) = traced_run(
        "trace2",
        &["--set", "output.trace=true", "--set", "cluster.replicas=2"],
    );
    assert!(steps.iter().any(|s| s["replica"] == "1"));
    check_requests(&events, &requests);
    check_steps(&events, &steps);
}

#[test]
fn no_trace_unless_asked() {
    let dir = temp_dir("notrace");
    let out = dir.join("res");
    let args = [
        "run",
        "scenarios/quickstart.yaml",
        "--out",
        out.to_str().unwrap(),
    ];
    run_ok(&[&args[..], &["--trace"]].concat());
    assert!(out.join("trace.json").exists());
    run_ok(&args);
    assert!(
        !out.join("trace.json").exists(),
        "the earlier run's trace is gone"
    );
}

/// The value at a dotted path of a summary.
fn at<'a>(v: &'a Value, path: &str) -> &'a Value {
    path.split('.').fold(v, |v, k| match k.parse::<usize>() {
        Ok(i) if v.is_array() => &v[i],
        _ => &v[k],
    })
}

fn close(a: f64, b: f64) -> bool {
    (a - b).abs() <= 1e-9 * a.abs().max(b.abs()).max(1.0)
}

#[test]
fn three_seeds_are_the_three_single_runs_with_t_intervals() {
    let many = json(&run_ok(&[
        "run",
        "scenarios/quickstart.yaml",
        "--no-files",
        "--json",
        "--seeds",
        "3",
    ]));
    let single: Vec<Value> = (42..45)
        .map(|k| {
            let set = format!("seed={k}");
            json(&run_ok(&[
                "run",
                "scenarios/quickstart.yaml",
                "--no-files",
                "--json",
                "--set",
                &set,
            ]))
        })
        .collect();
    let seeds = &many["seeds"];
    assert_eq!(seeds["seeds"], serde_json::json!([42, 43, 44]));
    // The top level is the first seed's summary.
    let mut top = many.clone();
    top.as_object_mut().unwrap().remove("seeds");
    assert_eq!(top, single[0]);
    let metrics = seeds["metrics"].as_object().unwrap();
    for key in [
        "latency.ttft_ms.p99",
        "request_throughput",
        "prefix_hit_rate",
        "per_replica.0.ttft_ms.mean",
    ] {
        assert!(metrics.contains_key(key), "{key}");
    }
    let t = 4.302652729911275; // t(0.975, 2), from tables
    for (key, m) in metrics {
        let vals: Vec<f64> = single
            .iter()
            .map(|s| at(s, key).as_f64().unwrap())
            .collect();
        let got: Vec<f64> = m["values"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_f64().unwrap())
            .collect();
        assert_eq!(got, vals, "{key}");
        let mean = vals.iter().sum::<f64>() / 3.0;
        let sd = (vals.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / 2.0).sqrt();
        let half = t * sd / 3f64.sqrt();
        assert!(close(m["mean"].as_f64().unwrap(), mean), "{key} mean");
        assert!(
            close(m["ci95_low"].as_f64().unwrap(), mean - half),
            "{key} low"
        );
        assert!(
            close(m["ci95_high"].as_f64().unwrap(), mean + half),
            "{key} high"
        );
    }
    let ttft: Vec<f64> = single
        .iter()
        .map(|s| at(s, "latency.ttft_ms.mean").as_f64().unwrap())
        .collect();
    assert!(
        ttft[0] != ttft[1] && ttft[1] != ttft[2] && ttft[0] != ttft[2],
        "{ttft:?}"
    );
    // The table: mean ± half-width.
    let table = run_ok(&[
        "run",
        "scenarios/quickstart.yaml",
        "--no-files",
        "--seeds",
        "3",
    ]);
    let m = &metrics["latency.ttft_ms.p99"];
    let want = format!(
        "{:.4} ± {:.4}",
        m["mean"].as_f64().unwrap(),
        m["half_width"].as_f64().unwrap()
    );
    assert!(
        table
            .lines()
            .any(|l| l.starts_with("TTFT p99 (ms)") && l.ends_with(&want)),
        "{table}"
    );
}

fn summary_bytes(dir: &Path, extra: &[&str]) -> Vec<u8> {
    let mut args = vec![
        "run",
        "scenarios/quickstart.yaml",
        "--out",
        dir.to_str().unwrap(),
    ];
    args.extend_from_slice(extra);
    run_ok(&args);
    std::fs::read(dir.join("summary.json")).unwrap()
}

#[test]
fn seeds_reruns_are_byte_identical_and_one_seed_is_todays_run() {
    let d = temp_dir("seeds-bytes");
    let plain = summary_bytes(&d.join("plain"), &[]);
    assert_eq!(summary_bytes(&d.join("one"), &["--seeds", "1"]), plain);
    let a = summary_bytes(&d.join("a"), &["--seeds", "4", "--jobs", "2", "--trace"]);
    let b = summary_bytes(&d.join("b"), &["--seeds", "4", "--trace"]);
    assert_eq!(a, b);
    assert_eq!(
        std::fs::read(d.join("a/trace.json")).unwrap(),
        std::fs::read(d.join("b/trace.json")).unwrap()
    );
    // The first seed's files: its requests.csv is the plain run's.
    assert_eq!(
        std::fs::read(d.join("a/requests.csv")).unwrap(),
        std::fs::read(d.join("plain/requests.csv")).unwrap()
    );
}

#[test]
fn zero_seeds_is_a_usage_error() {
    let o = run(&[
        "run",
        "scenarios/quickstart.yaml",
        "--no-files",
        "--seeds",
        "0",
    ]);
    assert_eq!(o.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&o.stderr).contains("--seeds"));
}

fn no_bar(stderr: &[u8]) {
    let s = String::from_utf8_lossy(stderr);
    assert!(
        !s.contains('\r') && !s.contains('\u{1b}') && !s.contains('█'),
        "{s}"
    );
}

#[test]
fn no_progress_when_stderr_is_not_a_terminal() {
    // A run of a few seconds: long enough for a bar on a terminal.
    let long = [
        "run",
        "scenarios/quickstart.yaml",
        "--no-files",
        "--set",
        "workload.source.requests=60000",
    ];
    let o = run(&long);
    assert!(o.status.success());
    no_bar(&o.stderr);
    let mut quiet = long.to_vec();
    quiet.push("--quiet");
    let o = run(&quiet);
    assert!(o.status.success());
    no_bar(&o.stderr);
    let dir = temp_dir("progress-sweep");
    let csv = dir.join("s.csv");
    let o = run(&[
        "sweep",
        "scenarios/quickstart.yaml",
        "--vary",
        "workload.rate_scale=1,2",
        "--out",
        csv.to_str().unwrap(),
        "--quiet",
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    no_bar(&o.stderr);
    let o = run(&[
        "plan",
        "scenarios/quickstart.yaml",
        "--slo",
        "ttft_p99_ms=100000",
        "--search",
        "engine.max_num_seqs=64",
        "--iterations",
        "1",
        "--max-scale",
        "1",
        "--quiet",
    ]);
    assert!(
        o.status.code().is_some_and(|c| c < 2),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    no_bar(&o.stderr);
}

/// `kvsim ARGS` run on a pseudo-terminal (util-linux `script`) in the repository root: what
/// the terminal showed. `None`, with a note, where no terminal can be made here.
fn on_terminal(args: &str) -> Option<String> {
    let probe = std::process::Command::new("script")
        .args(["-qec", "true", "/dev/null"])
        .output();
    if !probe.is_ok_and(|p| p.status.success()) {
        eprintln!("skipped: `script` cannot make a terminal here");
        return None;
    }
    let c = format!("{} {args}", env!("CARGO_BIN_EXE_kvsim"));
    let o = std::process::Command::new("script")
        .args(["-qec", &c, "/dev/null"])
        .current_dir(root())
        .output()
        .unwrap();
    let shown = String::from_utf8_lossy(&o.stdout).to_string();
    assert!(o.status.success(), "{c}: {shown}");
    Some(shown)
}

/// `args` shows `shown` on a terminal, not with `--quiet` (before or after the command), and
/// nothing is drawn when stderr is not a terminal.
fn progress_on_terminal_only(args: &str, shown: &str) {
    let Some(plain) = on_terminal(args) else {
        return;
    };
    assert!(
        plain.contains(shown),
        "expected {shown:?} on the terminal: {plain}"
    );
    let quiet = on_terminal(&format!("{args} --quiet")).unwrap();
    assert!(!quiet.contains(shown), "{quiet}");
    let quiet_first = on_terminal(&format!("-q {args}")).unwrap();
    assert!(!quiet_first.contains(shown), "{quiet_first}");
    let words: Vec<&str> = args.split(' ').collect();
    let o = run(&words);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    no_bar(&o.stderr);
}

#[test]
fn progress_shows_on_a_terminal_unless_quiet() {
    // 150,000 requests: two seconds or more, past the second before a run's bar appears
    // (60,000 took 0.99 s on an idle machine).
    progress_on_terminal_only(
        "run scenarios/quickstart.yaml --no-files --set workload.source.requests=150000",
        "/150000 requests",
    );
}

#[test]
fn paging_shows_a_spinner_on_a_terminal_only_and_not_with_quiet() {
    // Three million requests over 100,000 pages: a second or so of simulation.
    let dir = temp_dir("paging-spinner");
    let trace = dir.join("pages.txt");
    let mut text = String::with_capacity(24_000_000);
    let mut x: u64 = 7;
    for _ in 0..3_000_000 {
        x = x
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        text.push_str(&((x >> 33) % 100_000).to_string());
        text.push('\n');
    }
    std::fs::write(&trace, text).unwrap();
    progress_on_terminal_only(
        &format!(
            "paging {} -k 1000 --policies lru,arc,belady",
            trace.display()
        ),
        "simulating policies",
    );
}

#[test]
fn trace_stats_shows_a_spinner_on_a_terminal_only() {
    // 100,000 closed-loop chat requests: two seconds of reading and counting.
    progress_on_terminal_only(
        "trace stats scenarios/quickstart.yaml --set workload.source.requests=100000",
        "reading the trace",
    );
}

#[test]
fn a_command_without_its_own_bar_counts_on_a_spinner_after_a_second() {
    // `fidelity serving` replaying a `vllm bench serve` result of 9,600 lone requests of
    // 4,000 tokens each: about 38 million decode steps, fast-forwarded (`docs/performance.md`)
    // at about 85 ns each: three seconds or more.
    let dir = temp_dir("delayed-spinner");
    let n = 9600;
    let list = |v: &str| vec![v; n].join(",");
    let starts: Vec<String> = (0..n).map(|i| format!("{}.0", i * 30)).collect();
    std::fs::write(
        dir.join("bench.json"),
        format!(
            "{{\"start_times\": [{}], \"input_lens\": [{}], \"output_lens\": [{}], \
             \"ttfts\": [{}], \"latencies\": [{}], \"errors\": [{}]}}",
            starts.join(","),
            list("100"),
            list("4000"),
            list("0.02"),
            list("28.0"),
            list("\"\"")
        ),
    )
    .unwrap();
    let scenario = dir.join("replay.yaml");
    std::fs::write(
        &scenario,
        "name: replay\nworkload:\n  source:\n    kind: vllm_bench\n    path: bench.json\n\
         model:\n  preset: llama-3.1-8b\n",
    )
    .unwrap();
    progress_on_terminal_only(
        &format!("fidelity serving --vllm-bench {}", scenario.display()),
        "replaying real serving runs: 0 runs",
    );
}
