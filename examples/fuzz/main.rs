//! `cargo run --release --example fuzz -- --target NAME --runs N --seed S [--max-len BYTES]
//! [--crash-dir DIR] [--max-seconds T]`: the mutation fuzzer of the scenario loader, every trace reader and
//! the KVAT reader (docs/fuzzing.md). `--target all` runs every target in turn;
//! `--max-seconds` stops each target early (its line says how many runs it made);
//! `--replay FILE` runs one saved input through its target (named by the file, or by
//! `--target`) and prints what the parser said. Exit status 1 when any input panicked,
//! never ended, or allocated past 1 GiB.

mod alloc;
mod harness;
mod seeds;

#[global_allocator]
static GLOBAL: alloc::Counting = alloc::Counting;

use std::path::PathBuf;
use std::time::Duration;

fn usage() -> ! {
    eprintln!(
        "usage: fuzz --target NAME|all --runs N [--seed S] [--max-len BYTES] [--crash-dir DIR] [--max-seconds T]\n       fuzz --replay FILE [--target NAME]\ntargets: {}",
        harness::TARGETS.join(", ")
    );
    std::process::exit(2)
}

fn main() {
    let mut args = std::env::args().skip(1);
    let (mut target, mut runs, mut seed, mut max_len) = (None, 10_000u64, 0u64, 16_384usize);
    let (mut crash_dir, mut replay) = (PathBuf::from("fuzz-crashes"), None);
    let mut max_time = None;
    while let Some(a) = args.next() {
        let mut value = || args.next().unwrap_or_else(|| usage());
        let number = |v: String| v.parse::<u64>().unwrap_or_else(|_| usage());
        match a.as_str() {
            "--target" => target = Some(value()),
            "--runs" => runs = number(value()),
            "--seed" => seed = number(value()),
            "--max-len" => max_len = number(value()).clamp(1, 1 << 24) as usize,
            "--crash-dir" => crash_dir = PathBuf::from(value()),
            "--max-seconds" => max_time = Some(Duration::from_secs(number(value()))),
            "--replay" => replay = Some(PathBuf::from(value())),
            _ => usage(),
        }
    }
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    if let Some(file) = replay {
        let Some(name) = target
            .as_deref()
            .or_else(|| harness::target_of_crash(&file))
        else {
            usage()
        };
        match harness::replay(&root, name, &file) {
            Ok(m) => println!("{name}: {m}"),
            Err(m) => println!("{name}: rejected: {m}"),
        }
        return;
    }
    let Some(target) = target else { usage() };
    let names: Vec<&str> = if target == "all" {
        harness::TARGETS.to_vec()
    } else {
        vec![target.as_str()]
    };
    if let Some(bad) = names.iter().find(|n| !harness::TARGETS.contains(n)) {
        eprintln!("unknown target {bad}");
        usage();
    }
    std::fs::create_dir_all(&crash_dir).unwrap_or_else(|e| {
        eprintln!("cannot create {}: {e}", crash_dir.display());
        std::process::exit(2)
    });
    let cfg = harness::Config {
        root,
        runs,
        seed,
        max_len,
        crash_dir,
        max_time,
    };
    alloc::silence_stderr();
    println!("kvsim-fuzz: seed {seed}, max-len {max_len}, {runs} runs per target");
    let mut failed = false;
    for name in names {
        let s = harness::run_target(&cfg, name);
        println!("{}", s.line());
        failed |= s.failures() > 0;
    }
    if failed {
        alloc::say(&format!(
            "kvsim-fuzz: failures; inputs in {}",
            cfg.crash_dir.display()
        ));
        std::process::exit(1);
    }
}
