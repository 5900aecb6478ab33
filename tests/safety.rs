//! No run loses the results of the one before: failed, interrupted and disk-full reruns
//! leave the previous output byte for byte and no temporaries; `merge` refuses shards of
//! another sweep; a run in which nothing succeeded exits 1 and writes nothing; typos in
//! `--search`/`--vary` keys are usage errors; NaN in an attention trace is refused.

mod common;

use common::*;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

const QUICKSTART: &str = "scenarios/quickstart.yaml";

/// Every file in a folder (flat), name to bytes.
fn snapshot(dir: &Path) -> BTreeMap<String, Vec<u8>> {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| {
            let p = e.unwrap().path();
            assert!(p.is_file(), "{} is not a file", p.display());
            let name = p.file_name().unwrap().to_string_lossy().to_string();
            (name, std::fs::read(&p).unwrap())
        })
        .collect()
}

/// Names in a folder, sorted.
fn entries(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().to_string())
        .collect();
    v.sort();
    v
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).to_string()
}

/// A first, good run of the quickstart into `<dir>/out`; returns the folder and its files.
fn first_run(dir: &Path) -> (PathBuf, BTreeMap<String, Vec<u8>>) {
    let out = dir.join("out");
    run_ok(&["run", QUICKSTART, "--out", out.to_str().unwrap()]);
    let files = snapshot(&out);
    assert!(files.contains_key("summary.json") && files.contains_key("steps.csv"));
    (out, files)
}

/// Run kvsim and check that it failed with `code`, that stderr holds `says`, and that the
/// previous results in `out` and the folder around them are as they were.
fn fails_keeping(
    args: &[&str],
    code: i32,
    says: &str,
    out: &Path,
    before: &BTreeMap<String, Vec<u8>>,
) {
    let o = run(args);
    assert_eq!(o.status.code(), Some(code), "{args:?}: {}", stderr(&o));
    assert!(stderr(&o).contains(says), "{args:?}: {}", stderr(&o));
    assert!(
        &snapshot(out) == before,
        "{args:?} changed {}",
        out.display()
    );
    let parent = out.parent().unwrap();
    let name = out.file_name().unwrap().to_string_lossy().to_string();
    let stray: Vec<String> = entries(parent)
        .into_iter()
        .filter(|e| e.starts_with(&format!("{name}.")))
        .collect();
    assert!(stray.is_empty(), "{args:?} left {stray:?}");
}

#[test]
fn a_rerun_that_fails_late_or_early_keeps_the_previous_results_byte_for_byte() {
    let d = temp_dir("safety-rerun");
    let (out, before) = first_run(&d);
    let o = out.to_str().unwrap();
    // A native trace longer than the reader's reorder window (4,096 rows), so that its
    // malformed row is met during the simulation, after the output folder was opened.
    let good = d.join("good.csv");
    run_ok(&[
        "trace",
        "synth",
        QUICKSTART,
        "--set",
        "workload.source.requests=6000",
        "--out",
        good.to_str().unwrap(),
    ]);
    let text = std::fs::read_to_string(&good).unwrap();
    let mut lines: Vec<&str> = text.lines().collect();
    assert!(lines.len() > 5002, "{} rows", lines.len());
    lines[5000] = "1.0,oops";
    let bad = d.join("bad.csv");
    std::fs::write(&bad, lines.join("\n") + "\n").unwrap();
    let source = |path: &Path| format!("workload.source.path={}", path.display());
    let (bad, missing, good) = (source(&bad), source(&d.join("missing.csv")), source(&good));
    fn native<'a>(out: &'a str, set: &'a str) -> [&'a str; 6] {
        [
            "run",
            "scenarios/native-quickstart.yaml",
            "--out",
            out,
            "--set",
            set,
        ]
    }
    fails_keeping(&native(o, &bad), 2, "bad.csv:5001", &out, &before);
    fails_keeping(&native(o, &missing), 2, "missing.csv", &out, &before);
    // A good rerun replaces the folder as a whole: the native run's files, nothing else.
    run_ok(&native(o, &good));
    let after = snapshot(&out);
    assert_ne!(after["summary.json"], before["summary.json"]);
    assert_eq!(
        after.keys().collect::<Vec<_>>(),
        before.keys().collect::<Vec<_>>()
    );
    assert_eq!(entries(&d), vec!["bad.csv", "good.csv", "out"]);
}

#[test]
fn a_folder_holding_other_files_is_not_replaced() {
    let d = temp_dir("safety-foreign");
    let (out, _) = first_run(&d);
    std::fs::write(out.join("notes.txt"), "my notes").unwrap();
    let before = snapshot(&out);
    let o = out.to_str().unwrap();
    fails_keeping(
        &["run", QUICKSTART, "--out", o],
        2,
        "`notes.txt`",
        &out,
        &before,
    );
    // Nor is a plain file where the folder would go.
    let file = d.join("file");
    std::fs::write(&file, "x").unwrap();
    let r = run(&["run", QUICKSTART, "--out", file.to_str().unwrap()]);
    assert_eq!(r.status.code(), Some(2));
    assert!(stderr(&r).contains("not a folder"), "{}", stderr(&r));
    assert_eq!(std::fs::read(&file).unwrap(), b"x");
}

/// A quickstart long enough to take seconds: 100,000 requests.
fn long_run(out: &Path) -> Command {
    let mut c = kvsim();
    c.args([
        "run",
        QUICKSTART,
        "--set",
        "workload.source.requests=100000",
        "--set",
        "workload.source.arrival.rate=20",
        "--out",
    ])
    .arg(out)
    .current_dir(root())
    .stdout(Stdio::null())
    .stderr(Stdio::piped());
    c
}

/// Start `cmd`, send `sig` after half a second, and return its output and how long it took
/// to stop after the signal.
fn interrupt(mut cmd: Command, sig: i32) -> (Output, Duration) {
    let mut child = cmd.spawn().unwrap();
    std::thread::sleep(Duration::from_millis(500));
    assert!(
        child.try_wait().unwrap().is_none(),
        "the command ended before the signal: make it longer"
    );
    let sent = Instant::now();
    // SAFETY: signalling our own child, which has not been reaped yet.
    assert_eq!(unsafe { libc::kill(child.id() as libc::pid_t, sig) }, 0);
    let o = child.wait_with_output().unwrap();
    (o, sent.elapsed())
}

fn interrupted_run_keeps_the_previous_results(sig: i32, code: i32, name: &str) {
    let d = temp_dir(name);
    let (out, before) = first_run(&d);
    let (o, took) = interrupt(long_run(&out), sig);
    assert_eq!(o.status.code(), Some(code), "{}", stderr(&o));
    let want = format!("interrupted: previous results in {} kept", out.display());
    assert!(stderr(&o).contains(&want), "{}", stderr(&o));
    assert!(
        took < Duration::from_secs(2),
        "stopped {took:?} after the signal"
    );
    assert!(
        snapshot(&out) == before,
        "the interrupted run changed the results"
    );
    assert_eq!(entries(&d), vec!["out"], "temporaries left");
}

#[test]
fn sigterm_stops_a_run_with_143_and_keeps_the_previous_results() {
    interrupted_run_keeps_the_previous_results(libc::SIGTERM, 143, "safety-sigterm");
}

#[test]
fn sigint_stops_a_run_with_130_and_keeps_the_previous_results() {
    interrupted_run_keeps_the_previous_results(libc::SIGINT, 130, "safety-sigint");
}

#[test]
fn sigint_stops_a_sweep_and_keeps_the_previous_csv() {
    let d = temp_dir("safety-sweep-sigint");
    let csv = d.join("sweep.csv");
    let args = |vary: &str| {
        let mut c = kvsim();
        c.args(["sweep", QUICKSTART, "--vary", vary, "--jobs", "2", "--out"])
            .arg(&csv)
            .current_dir(root())
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        c
    };
    assert!(args("workload.rate_scale=1,2")
        .output()
        .unwrap()
        .status
        .success());
    let before = std::fs::read(&csv).unwrap();
    let mut long = args("workload.source.requests=40000,40001,40002,40003");
    long.args(["--set", "workload.source.arrival.rate=20"]);
    let (o, _) = interrupt(long, libc::SIGINT);
    assert_eq!(o.status.code(), Some(130), "{}", stderr(&o));
    assert!(stderr(&o).contains("interrupted: previous results in"));
    assert_eq!(std::fs::read(&csv).unwrap(), before);
    assert_eq!(entries(&d), vec!["sweep.csv"]);
}

/// Unmounts on drop.
struct Mount(PathBuf);

impl Drop for Mount {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.0).status();
    }
}

#[test]
fn a_disk_full_rerun_keeps_the_previous_results() {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        eprintln!("skipped the disk-full test: mounting a small tmpfs needs root");
        return;
    }
    let mnt = temp_dir("safety-diskfull").join("mnt");
    std::fs::create_dir_all(&mnt).unwrap();
    let ok = Command::new("mount")
        .args(["-t", "tmpfs", "-o", "size=2m", "tmpfs"])
        .arg(&mnt)
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !ok {
        eprintln!("skipped the disk-full test: mount -t tmpfs is not allowed here");
        return;
    }
    let _mounted = Mount(mnt.clone());
    // The quickstart's results take about 0.6 MB of the 2 MB; 3,000 requests need more
    // than the rest.
    let (out, before) = first_run(&mnt);
    let o = out.to_str().unwrap();
    let big = [
        "run",
        QUICKSTART,
        "--set",
        "workload.source.requests=3000",
        "--out",
        o,
    ];
    fails_keeping(&big, 1, "No space left on device", &out, &before);
    assert_eq!(entries(&mnt), vec!["out"]);
}

/// `kvsim plan` of the quickstart with a p99 TTFT bound of one second over `search`,
/// writing to `out`.
fn plan_quickstart(search: &str, out: &Path) -> Output {
    run(&[
        "plan",
        QUICKSTART,
        "--slo",
        "ttft_p99_ms=1000",
        "--search",
        search,
        "--out",
        out.to_str().unwrap(),
    ])
}

#[test]
fn runs_in_which_nothing_succeeded_exit_1_and_write_nothing() {
    let d = temp_dir("safety-nothing");
    let (out, before) = first_run(&d);
    let o = out.to_str().unwrap();
    // Two blocks hold no request of the quickstart: every one is rejected.
    let rejected = [
        "run",
        QUICKSTART,
        "--set",
        "kv_cache.num_gpu_blocks=2",
        "--set",
        "workload.source.requests=5",
        "--out",
        o,
    ];
    fails_keeping(
        &rejected,
        1,
        "none of the 5 requests completed (rejected: exceeds_kv_capacity: 5)",
        &out,
        &before,
    );
    let empty = [
        "run",
        QUICKSTART,
        "--set",
        "workload.start_s=1e9",
        "--out",
        o,
    ];
    fails_keeping(&empty, 1, "the workload has no requests", &out, &before);
    // A sweep whose every point fails keeps the previous CSV; one with a failing point
    // among good ones writes it with status `error` and exits 0.
    let csv = d.join("sweep.csv");
    let c = csv.to_str().unwrap();
    run_ok(&[
        "sweep",
        QUICKSTART,
        "--vary",
        "workload.rate_scale=1,2",
        "--out",
        c,
    ]);
    let sweep_before = std::fs::read(&csv).unwrap();
    let all_fail = [
        "sweep",
        QUICKSTART,
        "--vary",
        "kv_cache.num_gpu_blocks=2,3",
        "--out",
        c,
    ];
    let r = run(&all_fail);
    assert_eq!(r.status.code(), Some(1), "{}", stderr(&r));
    assert!(
        stderr(&r).contains("every point failed (2)"),
        "{}",
        stderr(&r)
    );
    assert_eq!(std::fs::read(&csv).unwrap(), sweep_before);
    let some_fail = [
        "sweep",
        QUICKSTART,
        "--vary",
        "kv_cache.num_gpu_blocks=2,30000",
        "--out",
        c,
    ];
    run_ok(&some_fail);
    let rows = csv_rows(&csv);
    let status: Vec<&str> = rows.iter().map(|r| r["status"].as_str()).collect();
    assert_eq!(status, vec!["error", "ok"]);
    assert!(rows[0]["error"].contains("none of the 300 requests completed"));
    // A plan whose every candidate fails writes no folder.
    let plan = d.join("plan");
    let r = plan_quickstart("kv_cache.num_gpu_blocks=2,3", &plan);
    assert_eq!(r.status.code(), Some(1), "{}", stderr(&r));
    assert!(
        stderr(&r).contains("every candidate failed to run"),
        "{}",
        stderr(&r)
    );
    assert!(!plan.exists());
}

#[test]
fn misspelt_search_and_vary_keys_are_usage_errors_with_the_nearest_key() {
    let d = temp_dir("safety-typo");
    let plan = d.join("plan");
    let r = plan_quickstart("engine.max_num_seqz=8,16", &plan);
    assert_eq!(r.status.code(), Some(2), "{}", stderr(&r));
    let e = stderr(&r);
    assert!(
        e.contains("--search engine.max_num_seqz: `engine` has no field `max_num_seqz` (did you mean `engine.max_num_seqs`?)"),
        "{e}"
    );
    assert!(!plan.exists());
    let csv = d.join("s.csv");
    let r = run(&[
        "sweep",
        QUICKSTART,
        "--vary",
        "workload.rate_scale=1,2",
        "--vary",
        "clustr.replicas=1,2",
        "--out",
        csv.to_str().unwrap(),
    ]);
    assert_eq!(r.status.code(), Some(2), "{}", stderr(&r));
    assert!(
        stderr(&r).contains("a scenario has no section `clustr` (did you mean `cluster`?)"),
        "{}",
        stderr(&r)
    );
    assert!(!csv.exists());
}

/// Shard `k` of 2 of a sweep of `scenario` over `vary`, with `extra` arguments, into `path`.
fn shard(scenario: &str, k: u32, vary: &str, extra: &[&str], path: &Path) {
    let shard = format!("{k}/2");
    let mut args = vec!["sweep", scenario, "--vary", vary, "--shard", &shard];
    args.extend_from_slice(extra);
    args.extend(["--out", path.to_str().unwrap()]);
    run_ok(&args);
}

fn merge_fails(a: &Path, b: &Path, out: &Path) -> String {
    let r = run(&[
        "merge",
        a.to_str().unwrap(),
        b.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
    ]);
    assert_eq!(r.status.code(), Some(2), "{}", stderr(&r));
    assert!(!out.exists());
    stderr(&r)
}

#[test]
fn merge_refuses_shards_of_another_grid_scenario_or_set() {
    let d = temp_dir("safety-merge");
    let vary = "workload.rate_scale=1,2";
    let first = d.join("a.csv");
    shard(QUICKSTART, 1, vary, &[], &first);
    let out = d.join("merged.csv");
    let cases: [(&str, &str, &[&str], &str); 3] = [
        (
            QUICKSTART,
            "workload.rate_scale=1,3",
            &[],
            "grid is `--vary workload.rate_scale=1,3` but `--vary workload.rate_scale=1,2`",
        ),
        (
            QUICKSTART,
            vary,
            &["--set", "engine.max_num_seqs=64"],
            "sets is `--set engine.max_num_seqs=64` but ``",
        ),
        (
            QUICKSTART,
            vary,
            &["--set", "seed=7"],
            "seed is `7` but `42`",
        ),
    ];
    for (i, (scenario, v, extra, says)) in cases.iter().enumerate() {
        let second = d.join(format!("b{i}.csv"));
        shard(scenario, 2, v, extra, &second);
        let e = merge_fails(&first, &second, &out);
        assert!(e.contains(&format!("b{i}.csv row 2: {says}")), "{e}");
    }
    // The same scenario with one more comment line is another file.
    let copy = d.join("copy.yaml");
    let text = std::fs::read_to_string(root().join(QUICKSTART)).unwrap();
    std::fs::write(&copy, format!("# edited\n{text}")).unwrap();
    let second = d.join("c.csv");
    shard(copy.to_str().unwrap(), 2, vary, &[], &second);
    let e = merge_fails(&first, &second, &out);
    assert!(e.contains("c.csv row 2: scenario_hash is"), "{e}");
    // A CSV without the provenance columns cannot be checked, so it is refused.
    let legacy = d.join("legacy.csv");
    let mut r = csv::ReaderBuilder::new()
        .has_headers(false)
        .from_path(&first)
        .unwrap();
    let mut w = csv::Writer::from_path(&legacy).unwrap();
    for rec in r.records() {
        let rec = rec.unwrap();
        w.write_record(rec.iter().take(rec.len() - 5)).unwrap();
    }
    w.flush().unwrap();
    let e = merge_fails(&legacy, &second, &out);
    assert!(
        e.contains("legacy.csv: no kvsim_version, scenario_hash"),
        "{e}"
    );
    // The matching shard merges, into exactly the unsharded sweep.
    let second = d.join("b.csv");
    shard(QUICKSTART, 2, vary, &[], &second);
    run_ok(&[
        "merge",
        second.to_str().unwrap(),
        first.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
    ]);
    let full = d.join("full.csv");
    run_ok(&[
        "sweep",
        QUICKSTART,
        "--vary",
        vary,
        "--out",
        full.to_str().unwrap(),
    ]);
    assert_eq!(std::fs::read(&out).unwrap(), std::fs::read(&full).unwrap());
}

#[test]
fn nan_in_an_attention_trace_is_refused_naming_file_record_and_field() {
    let d = temp_dir("safety-kvat");
    let mut b = std::fs::read(root().join("calibration/attention/needle-1k.kvat")).unwrap();
    let u32_at = |b: &[u8], at: usize| u32::from_le_bytes(b[at..at + 4].try_into().unwrap());
    // Header: magic, version, eleven fields (the last the name's length), the name, the
    // note's length and the note, then one index per recorded layer; the keys follow.
    let (recorded, head_dim, name_len) = (u32_at(&b, 16), u32_at(&b, 28), u32_at(&b, 52));
    let note_at = 56 + name_len as usize;
    let keys_at = note_at + 4 + u32_at(&b, note_at) as usize + 4 * recorded as usize;
    let first_layer = u32_at(&b, keys_at - 4 * recorded as usize);
    // Element head_dim + 3 of the keys: KV head 0, token 1, dimension 3. f16 NaN is 0x7e00.
    let at = keys_at + 2 * (head_dim as usize + 3);
    b[at..at + 2].copy_from_slice(&0x7e00u16.to_le_bytes());
    let path = d.join("nan.kvat");
    std::fs::write(&path, &b).unwrap();
    let r = run(&["attention-eval", path.to_str().unwrap()]);
    assert_eq!(r.status.code(), Some(2), "{}", stderr(&r));
    let want = format!(
        "{}: record 0 (layer {first_layer}): keys [kv_head 0, token 1, dim 3] is NaN",
        path.display()
    );
    assert!(stderr(&r).contains(&want), "{}", stderr(&r));
}

#[test]
fn the_shared_folder_is_where_the_build_looked() {
    let expected = match std::env::var_os("KVSIM_SHARED") {
        Some(d) if !d.is_empty() => root().join(d),
        _ => root().join("../shared"),
    };
    let present = expected.join("traces/README.md").is_file();
    assert_eq!(
        cfg!(kvsim_shared),
        present,
        "build.rs saw {} as {}, but it is {} now: `touch build.rs` so that the tests that need it run (or are ignored)",
        expected.display(),
        if cfg!(kvsim_shared) { "present" } else { "absent" },
        if present { "present" } else { "absent" },
    );
    if present {
        assert_eq!(shared(), expected.canonicalize().unwrap());
    }
}

#[test]
fn sigterm_stops_trace_synth_and_keeps_the_previous_trace() {
    let d = temp_dir("safety-synth-sigterm");
    let out = d.join("trace.csv");
    let synth = |requests: &str| {
        let mut c = kvsim();
        c.args(["trace", "synth", QUICKSTART, "--out"])
            .arg(&out)
            .args(["--set", &format!("workload.source.requests={requests}")])
            .args([
                "--set",
                "workload.source.input={kind: uniform, min: 4, max: 8}",
            ])
            .args([
                "--set",
                "workload.source.system_prompts={count: 1, tokens: 16}",
            ])
            .current_dir(root())
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        c
    };
    assert!(synth("100").output().unwrap().status.success());
    let before = std::fs::read(&out).unwrap();
    // Ten million short requests: several seconds of writing.
    let (o, took) = interrupt(synth("10000000"), libc::SIGTERM);
    assert_eq!(o.status.code(), Some(143), "{}", stderr(&o));
    let want = format!("interrupted: previous results in {} kept", out.display());
    assert!(stderr(&o).contains(&want), "{}", stderr(&o));
    assert!(
        took < Duration::from_secs(2),
        "stopped {took:?} after the signal"
    );
    assert_eq!(std::fs::read(&out).unwrap(), before);
    assert_eq!(entries(&d), vec!["trace.csv"], "the partial file is left");
}
