//! Whole-process wall time of the replays the speed targets name (`docs/performance.md`),
//! run through the release binary, best of N runs, optionally side by side with another
//! kvsim binary in the same sitting (the way issue 17's ratios are measured):
//!
//!     cargo bench --bench replay_wall [-- --runs 3 --compare /path/to/old/kvsim
//!                                         --zipf /tmp/zipf/zipf10m.txt]
//!
//! Cases: the quickstart scenario; with the public traces (`KVSIM_SHARED`, else
//! `../shared`): the Azure 2023 conversation replay, the Mooncake conversation replay on
//! one and on four replicas; with `--zipf FILE` (written by `cargo bench --bench
//! paging_throughput -- --write-text FILE`): `kvsim paging FILE --policies lru -k 10000`.
//! Every run writes no files (`--no-files`, or paging's table to a discarded stdout).

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Instant;

fn arg(name: &str) -> Option<String> {
    let args: Vec<String> = std::env::args().collect();
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1).cloned())
}

/// The shared data folder, if present.
fn shared() -> Option<PathBuf> {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let dir = match std::env::var_os("KVSIM_SHARED") {
        Some(d) if !d.is_empty() => root.join(d),
        _ => root.join("../shared"),
    };
    dir.join("traces/README.md").is_file().then_some(dir)
}

/// Best wall time of `runs` runs of `bin args`, in seconds; `None` if a run fails.
fn best_of(bin: &Path, args: &[String], runs: u32) -> Option<f64> {
    let mut best = f64::INFINITY;
    for _ in 0..runs {
        let start = Instant::now();
        let status = Command::new(bin)
            .args(args)
            .current_dir(env!("CARGO_MANIFEST_DIR"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .ok()?;
        if !status.success() {
            return None;
        }
        best = best.min(start.elapsed().as_secs_f64());
    }
    Some(best)
}

/// The cases: a name and the arguments.
fn cases() -> Vec<(String, Vec<String>)> {
    let s = |v: &[&str]| v.iter().map(|a| a.to_string()).collect::<Vec<_>>();
    let mut cases = vec![(
        "quickstart".to_string(),
        s(&["run", "scenarios/quickstart.yaml", "--no-files", "-q"]),
    )];
    if let Some(dir) = shared() {
        let t = dir.join("traces");
        let azure = t.join("azure2023/AzureLLMInferenceTrace_conv.csv");
        let mooncake = t.join("mooncake/conversation_trace.jsonl");
        let path = |p: &Path| format!("workload.source.path={}", p.display());
        let mut az = s(&[
            "run",
            "scenarios/azure-conversation.yaml",
            "--no-files",
            "-q",
        ]);
        az.extend(["--set".into(), path(&azure)]);
        cases.push(("azure conversation, 1 replica".into(), az));
        for replicas in [1, 4] {
            let mut mc = s(&[
                "run",
                "scenarios/mooncake-conversation.yaml",
                "--no-files",
                "-q",
            ]);
            mc.extend(["--set".into(), path(&mooncake)]);
            mc.extend(["--set".into(), format!("cluster.replicas={replicas}")]);
            cases.push((format!("mooncake conversation, {replicas} replicas"), mc));
        }
    } else {
        eprintln!("no ../shared (or KVSIM_SHARED): only the quickstart is timed");
    }
    if let Some(zipf) = arg("--zipf") {
        cases.push((
            "paging lru k=10000 on --zipf".into(),
            s(&["paging", &zipf, "--policies", "lru", "-k", "10000", "-q"]),
        ));
    }
    cases
}

fn main() {
    let runs: u32 = arg("--runs").and_then(|r| r.parse().ok()).unwrap_or(3);
    let bin = PathBuf::from(env!("CARGO_BIN_EXE_kvsim"));
    let other = arg("--compare").map(PathBuf::from);
    let fmt = |t: Option<f64>| t.map_or("failed".to_string(), |t| format!("{t:.3} s"));
    println!("best of {runs} runs, whole process");
    for (name, args) in cases() {
        let now = best_of(&bin, &args, runs);
        match &other {
            Some(o) => {
                let then = best_of(o, &args, runs);
                let ratio = match (then, now) {
                    (Some(a), Some(b)) if b > 0.0 => format!("{:.2}x", a / b),
                    _ => "-".into(),
                };
                println!(
                    "{name:40} this {:>10}  other {:>10}  faster by {ratio}",
                    fmt(now),
                    fmt(then)
                );
            }
            None => println!("{name:40} {:>10}", fmt(now)),
        }
    }
}
