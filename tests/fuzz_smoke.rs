//! The short fuzz run of CI: every target of the fuzz harness (`examples/fuzz`, see
//! docs/fuzzing.md) for a few thousand mutated inputs, failing on any panic, endless
//! stream or allocation past 1 GiB; and checks that the harness itself catches each.

#[allow(dead_code)]
#[path = "../examples/fuzz/alloc.rs"]
mod alloc;
#[allow(dead_code)]
#[path = "../examples/fuzz/harness.rs"]
mod harness;
#[allow(dead_code)]
#[path = "../examples/fuzz/seeds.rs"]
mod seeds;

#[global_allocator]
static GLOBAL: alloc::Counting = alloc::Counting;

use std::path::PathBuf;

/// Executions per target in CI (the long run is documented in docs/validation.md).
const SMOKE_RUNS: u64 = 10_000;

fn crash_dir(name: &str) -> PathBuf {
    let d = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(format!("fuzz-smoke-{name}"));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn config(runs: u64, crash_dir: PathBuf) -> harness::Config {
    harness::Config {
        root: PathBuf::from(env!("CARGO_MANIFEST_DIR")),
        runs,
        seed: 20_261_201,
        max_len: 16_384,
        crash_dir,
        max_time: None,
    }
}

/// One test runs the targets in turn: the allocator's peak is process-wide, and the
/// machine's cores are better spent on the other tests.
#[test]
fn every_target_survives_a_short_fuzz_run() {
    let dir = crash_dir("all");
    let cfg = config(SMOKE_RUNS, dir.clone());
    let mut failed = Vec::new();
    for name in harness::TARGETS {
        let s = harness::run_target(&cfg, name);
        println!("{}", s.line());
        assert_eq!(s.runs, SMOKE_RUNS, "{name}");
        // The corpus parses and the mutations break it: both outcomes occur, so the
        // run reached past the first error and into the accepted paths.
        assert!(s.accepted > 0, "{name}: no input accepted");
        assert!(s.rejected > 0, "{name}: no input rejected");
        if s.failures() > 0 {
            failed.push(s.line());
        }
    }
    assert!(
        failed.is_empty(),
        "fuzz failures (inputs in {}):\n{}",
        dir.display(),
        failed.join("\n")
    );
}

#[test]
fn harness_catches_and_saves_a_panic() {
    let dir = crash_dir("selftest");
    let s = harness::run_target(&config(200, dir.clone()), harness::SELFTEST);
    assert!(s.panics > 0, "{}", s.line());
    assert_eq!(s.accepted, 0);
    assert_eq!(s.panics + s.rejected, 200);
    let saved: Vec<Vec<u8>> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.is_file())
        .map(|p| std::fs::read(p).unwrap())
        .collect();
    assert_eq!(saved.len() as u64, s.panics.min(20));
    assert!(saved.iter().all(|b| b.first() == Some(&b'!')));
}

/// Run in a child process by [`an_allocation_past_1_gib_stops_the_process_and_saves_the_input`]:
/// allocates 1.5 GiB under the guard. A no-op unless the child's variable is set.
#[test]
fn oversize_allocation_child() {
    let Ok(dir) = std::env::var("KVSIM_FUZZ_OOM_CHILD") else {
        return;
    };
    let dir = PathBuf::from(dir);
    let input = dir.join("input");
    std::fs::write(&input, b"the input that allocated").unwrap();
    alloc::guard(&input, &dir.join("oom"));
    let v: Vec<u8> = Vec::with_capacity(3 << 29);
    std::hint::black_box(&v);
    unreachable!("the allocator stops the process first");
}

#[test]
fn an_allocation_past_1_gib_stops_the_process_and_saves_the_input() {
    let dir = crash_dir("oom");
    let out = std::process::Command::new(std::env::current_exe().unwrap())
        .args(["--exact", "oversize_allocation_child", "--nocapture"])
        .env("KVSIM_FUZZ_OOM_CHILD", &dir)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("one allocation of 1610612736 bytes passes the 1 GiB limit"),
        "{stderr}"
    );
    assert_eq!(
        std::fs::read(dir.join("oom")).unwrap(),
        b"the input that allocated"
    );
}
