//! The README's commands run as written, in the order written, as a new user would run
//! them after `cargo install --path .`: every `kvsim` line of its `sh` blocks (shell
//! variables it sets included), in a fresh folder holding the checkout's scenarios, traces
//! and calibration, with the shared data at `../shared`. Left out: `cargo` and `bash` lines
//! (they are this test's own commands) and lines naming a file the reader must supply
//! (`my-...`, `calibration/NAME`).

mod common;
use common::*;
use std::path::Path;

/// The README's shell commands: continuation lines joined, comments dropped.
fn commands(readme: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut in_sh = false;
    let mut pending = String::new();
    for line in readme.lines() {
        if line.starts_with("```") {
            in_sh = line.trim() == "```sh";
            continue;
        }
        if !in_sh {
            continue;
        }
        let code = match line.find(" #") {
            Some(i) => &line[..i],
            None => line,
        };
        let code = code.trim_end();
        if let Some(head) = code.strip_suffix('\\') {
            pending.push_str(head);
            continue;
        }
        pending.push_str(code);
        let cmd = std::mem::take(&mut pending).trim().to_string();
        if !cmd.is_empty() && !cmd.starts_with('#') {
            out.push(cmd);
        }
    }
    out
}

fn is_assignment(cmd: &str) -> bool {
    cmd.split_once('=').is_some_and(|(k, _)| {
        !k.is_empty() && k.chars().all(|c| c.is_ascii_uppercase() || c == '_')
    }) && !cmd.contains(' ')
}

/// A fresh folder with the checkout's inputs and `../shared` beside it.
fn workspace() -> std::path::PathBuf {
    let base = temp_dir("readme");
    let work = base.join("work");
    std::fs::create_dir_all(&work).unwrap();
    for d in ["scenarios", "calibration", "tests"] {
        std::os::unix::fs::symlink(root().join(d), work.join(d)).unwrap();
    }
    // Copied: the README writes into traces/ (trace synth).
    copy_dir(&root().join("traces"), &work.join("traces"));
    std::os::unix::fs::symlink(shared(), base.join("shared")).unwrap();
    work
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        let p = e.path();
        if p.is_dir() {
            copy_dir(&p, &to.join(e.file_name()));
        } else {
            std::fs::copy(&p, to.join(e.file_name())).unwrap();
        }
    }
}

#[test]
#[cfg_attr(not(kvsim_shared), ignore = "needs ../shared (or KVSIM_SHARED)")]
fn every_readme_command_runs_as_written() {
    let readme = std::fs::read_to_string(root().join("README.md")).unwrap();
    let all = commands(&readme);
    assert!(all.len() > 20, "{all:?}");
    let work = workspace();
    let bin = Path::new(env!("CARGO_BIN_EXE_kvsim")).parent().unwrap();
    let path = format!(
        "{}:{}",
        bin.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let mut vars = Vec::new();
    let mut ran = 0;
    for cmd in &all {
        if is_assignment(cmd) {
            vars.push(cmd.clone());
            continue;
        }
        let placeholder = cmd.contains("my-") || cmd.contains("calibration/NAME");
        if !cmd.starts_with("kvsim ") || placeholder {
            continue;
        }
        let script = format!("{}\n{cmd}", vars.join("\n"));
        let o = std::process::Command::new("sh")
            .args(["-c", &script])
            .current_dir(&work)
            .env("PATH", &path)
            .output()
            .unwrap();
        assert!(
            o.status.success(),
            "README command failed ({:?}): {cmd}\n{}",
            o.status.code(),
            String::from_utf8_lossy(&o.stderr)
        );
        ran += 1;
    }
    assert!(ran > 20, "ran {ran}");
}

#[test]
fn commands_are_read_with_continuations_and_without_comments() {
    let text = "x\n```sh\nkvsim a \\\n  --b c   # note\n# only a comment\nAZ=1\n```\n```text\nkvsim no\n```\n";
    assert_eq!(commands(text), vec!["kvsim a   --b c", "AZ=1"]);
    assert!(is_assignment("AZ=workload.x=1") && !is_assignment("kvsim run a=b"));
}
