//! Result folders and files, written so that no run loses the results of the one before.
//!
//! A command that writes a folder `<out>` (`run`, `plan --out`, `compare --out`) writes
//! everything into a sibling `<out>.tmp-<pid>` ([`Staged`]); only when every file is
//! written and synced does [`Staged::commit`] swap it in:
//!
//! 1. `<out>.tmp-<pid>` is renamed `<out>.new-<pid>` (complete, not yet in place);
//! 2. the previous `<out>`, if any, is renamed `<out>.old-<pid>`;
//! 3. `<out>.new-<pid>` is renamed `<out>`;
//! 4. `<out>.old-<pid>` is removed.
//!
//! Each rename is atomic (same parent, same filesystem), so a crash at any moment leaves
//! complete results under `<out>` or a sibling whose name says what it is: before 1 the old
//! `<out>` (a `.tmp-` is never complete); between 1 and 2 the old `<out>` and the new
//! `.new-`; between 2 and 3 the old `.old-` and the new `.new-`; after 3 the new `<out>`. The
//! next command writing the same `<out>` finishes or undoes what a dead process left
//! ([`prepare`]): it removes `.tmp-` folders, swaps the newest `.new-` in, restores an
//! `.old-` when `<out>` is missing and removes the rest. A failed, interrupted or
//! disk-full run removes its `.tmp-` folder and leaves `<out>` untouched.
//!
//! A folder holding anything kvsim did not write (its file list, [`MANIFEST`], says what it
//! wrote) is not replaced: the command stops with an input error naming the file. Single
//! result files (`sweep --out`, `merge --out`, CSVs) go through [`write_atomic`]: a
//! temporary `<file>.tmp-<pid>` renamed over the file.

use crate::error::{Error, Result};
use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};

/// Files a run writes.
pub const FILES: [&str; 7] = [
    "requests.csv",
    "steps.csv",
    "scenario.yaml",
    "summary.json",
    "latency_cdf.svg",
    "kv_blocks.svg",
    "queue.svg",
];

/// The list of files kvsim wrote into a result folder, one name a line, written last.
pub const MANIFEST: &str = ".kvsim-files";

/// Files that `plan` and `compare` wrote into result folders before [`MANIFEST`] existed. A
/// folder without a manifest may be replaced when it holds only these and [`FILES`] (or
/// their `.partial` forms); `trace.json` and `bench_result.json` came after the manifest.
const LEGACY_OTHER_FILES: [&str; 6] = [
    "plan.csv",
    "plan.svg",
    "best.yaml",
    "compare.csv",
    "compare.md",
    "compare.svg",
];

fn fail(path: &Path, e: std::io::Error) -> Error {
    Error::failure(format!("cannot write {}: {e}", path.display()))
}

/// `<out>` split into its parent folder (`.` for a bare name) and file name.
fn split(out: &Path) -> Result<(PathBuf, String)> {
    let name = out
        .file_name()
        .and_then(|n| n.to_str())
        .filter(|n| *n != "." && *n != "..")
        .ok_or_else(|| {
            Error::input(format!(
                "{}: the output must be a named folder or file (not `.`, `..` or `/`)",
                out.display()
            ))
        })?;
    let parent = match out.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    Ok((parent, name.to_string()))
}

/// The sibling `<out>.<tag>-<pid>`.
fn sibling(out: &Path, tag: &str, pid: u32) -> Result<PathBuf> {
    let (parent, name) = split(out)?;
    Ok(parent.join(format!("{name}.{tag}-{pid}")))
}

/// Whether process `pid` still runs (then its siblings are left alone). This process's own
/// id counts as dead: a leftover with it is from an earlier process that had the same id.
fn alive(pid: u32) -> bool {
    if pid == std::process::id() || pid == 0 || pid > i32::MAX as u32 {
        return false;
    }
    #[cfg(unix)]
    {
        // SAFETY: signal 0 only checks that the process exists; nothing is sent.
        let r = unsafe { libc::kill(pid as libc::pid_t, 0) };
        r == 0 || std::io::Error::last_os_error().raw_os_error() == Some(libc::EPERM)
    }
    #[cfg(not(unix))]
    {
        false
    }
}

/// Siblings `<name>.<tag>-<pid>` of dead processes: (tag, pid, path).
fn leftovers(out: &Path) -> Result<Vec<(String, u32, PathBuf)>> {
    let (parent, name) = split(out)?;
    let Ok(rd) = std::fs::read_dir(&parent) else {
        return Ok(Vec::new());
    };
    let prefix = format!("{name}.");
    let mut found = Vec::new();
    for e in rd.flatten() {
        let file = e.file_name();
        let Some(rest) = file.to_str().and_then(|f| f.strip_prefix(&prefix)) else {
            continue;
        };
        let Some((tag, pid)) = rest.split_once('-') else {
            continue;
        };
        let Ok(pid) = pid.parse::<u32>() else {
            continue;
        };
        if ["tmp", "new", "old"].contains(&tag) && !alive(pid) {
            found.push((tag.to_string(), pid, e.path()));
        }
    }
    found.sort_by_key(|(_, _, p)| {
        std::fs::metadata(p)
            .and_then(|m| m.modified())
            .unwrap_or(std::time::SystemTime::UNIX_EPOCH)
    });
    Ok(found)
}

fn remove_any(p: &Path) -> Result<()> {
    let r = if p.is_dir() {
        std::fs::remove_dir_all(p)
    } else {
        std::fs::remove_file(p)
    };
    r.map_err(|e| Error::failure(format!("cannot remove {}: {e}", p.display())))
}

fn rename(from: &Path, to: &Path) -> Result<()> {
    std::fs::rename(from, to).map_err(|e| {
        Error::failure(format!(
            "cannot rename {} to {}: {e}",
            from.display(),
            to.display()
        ))
    })
}

/// Finish or undo what dead processes left beside `out` (see the module documentation).
fn recover(out: &Path) -> Result<()> {
    let found = leftovers(out)?;
    let of = |tag: &'static str| found.iter().filter(move |(t, _, _)| t == tag);
    for (_, _, p) in of("tmp") {
        remove_any(p)?;
    }
    // Complete results newer than `out`: the newest is swapped in, the others removed.
    let news: Vec<_> = of("new").collect();
    if let Some((newest, older)) = news.split_last() {
        for (_, _, p) in older {
            remove_any(p)?;
        }
        let old = sibling(out, "old", newest.1)?;
        if out.exists() && old.exists() {
            remove_any(&old)?;
        }
        swap(&newest.2, out, &old)?;
        eprintln!(
            "note: {} completed from {}, left by an interrupted run",
            out.display(),
            newest.2.display()
        );
    }
    let olds: Vec<_> = leftovers(out)?
        .into_iter()
        .filter(|(t, _, _)| t == "old")
        .collect();
    for (i, (_, _, p)) in olds.iter().enumerate().rev() {
        if !out.exists() && i + 1 == olds.len() {
            rename(p, out)?;
            eprintln!(
                "note: {} restored from {}, left by an interrupted run",
                out.display(),
                p.display()
            );
        } else {
            remove_any(p)?;
        }
    }
    Ok(())
}

/// Put the complete folder `new` in place of `out`, moving the previous one to `old` first
/// and removing it after (steps 2 to 4 of the module documentation).
fn swap(new: &Path, out: &Path, old: &Path) -> Result<()> {
    let had_old = match std::fs::symlink_metadata(out) {
        Ok(_) => {
            rename(out, old)?;
            true
        }
        Err(_) => false,
    };
    if let Err(e) = rename(new, out) {
        if had_old {
            // Put the previous results back; if even that fails they stay in `old`.
            let _ = std::fs::rename(old, out);
        }
        return Err(e);
    }
    sync_dir(out.parent().unwrap_or(Path::new(".")));
    if had_old {
        remove_any(old)?;
    }
    Ok(())
}

/// Flush a directory's entries to disk (best effort: not every filesystem allows it).
fn sync_dir(dir: &Path) {
    let dir = if dir.as_os_str().is_empty() {
        Path::new(".")
    } else {
        dir
    };
    if let Ok(f) = File::open(dir) {
        let _ = f.sync_all();
    }
}

/// Refuse an `out` that exists and is not a folder of kvsim's results: a file, or a folder
/// holding an entry that its [`MANIFEST`] (or, without one, kvsim's former file names)
/// does not list.
fn check_replaceable(out: &Path) -> Result<()> {
    let Ok(meta) = std::fs::symlink_metadata(out) else {
        return Ok(());
    };
    if !meta.is_dir() {
        return Err(Error::input(format!(
            "{} exists and is not a folder; kvsim writes its results into a folder there: choose another output",
            out.display()
        )));
    }
    let listed: Option<Vec<String>> = std::fs::read_to_string(out.join(MANIFEST))
        .ok()
        .map(|t| t.lines().map(str::to_string).collect());
    let ours = |name: &str| match &listed {
        Some(l) => name == MANIFEST || l.iter().any(|n| n == name),
        None => {
            let base = name.strip_suffix(".partial").unwrap_or(name);
            FILES.contains(&base) || LEGACY_OTHER_FILES.contains(&base)
        }
    };
    let rd = std::fs::read_dir(out)
        .map_err(|e| Error::failure(format!("cannot read {}: {e}", out.display())))?;
    for e in rd.flatten() {
        let name = e.file_name().to_string_lossy().to_string();
        let is_file = e.file_type().is_ok_and(|t| t.is_file());
        if !is_file || !ours(&name) {
            return Err(Error::input(format!(
                "{}: holds `{name}`, which kvsim did not write; kvsim replaces the whole folder, so move it away or choose another output folder",
                out.display()
            )));
        }
    }
    Ok(())
}

/// Make `out` ready to be replaced: recover what dead runs left beside it and check that it
/// holds only kvsim's results. Commands call it before long work, so that a folder they may
/// not replace is refused at once.
pub fn prepare(out: &Path) -> Result<()> {
    recover(out)?;
    check_replaceable(out)
}

/// A result folder being written into `<out>.tmp-<pid>`, swapped in by [`Staged::commit`];
/// dropped without a commit, it is removed and `<out>` stays as it was.
pub struct Staged {
    out: PathBuf,
    stage: PathBuf,
    files: Vec<String>,
    done: bool,
}

impl Staged {
    /// Prepare `out` ([`prepare`]) and create the empty staging folder beside it.
    pub fn begin(out: &Path) -> Result<Staged> {
        let (parent, _) = split(out)?;
        std::fs::create_dir_all(&parent).map_err(|e| fail(&parent, e))?;
        prepare(out)?;
        let stage = sibling(out, "tmp", std::process::id())?;
        std::fs::create_dir(&stage).map_err(|e| fail(&stage, e))?;
        Ok(Staged {
            out: out.to_path_buf(),
            stage,
            files: Vec::new(),
            done: false,
        })
    }

    /// The folder the results will have.
    pub fn out(&self) -> &Path {
        &self.out
    }

    /// Create a result file in the staging folder (for rows streamed while a run goes on).
    pub fn create(&mut self, name: &str) -> Result<File> {
        let p = self.stage.join(name);
        let f = File::create(&p).map_err(|e| fail(&p, e))?;
        self.files.push(name.to_string());
        Ok(f)
    }

    /// Write a whole result file into the staging folder.
    pub fn write(&mut self, name: &str, bytes: &[u8]) -> Result<()> {
        let mut f = self.create(name)?;
        let p = self.stage.join(name);
        f.write_all(bytes).map_err(|e| fail(&p, e))
    }

    /// Sync every file, write the manifest and swap the folder in (unless a signal asked
    /// to stop: then nothing is replaced).
    pub fn commit(mut self) -> Result<()> {
        crate::interrupt::check()?;
        let mut list = self.files.clone();
        list.sort();
        list.dedup();
        let manifest: String = list.iter().map(|n| format!("{n}\n")).collect();
        self.write(MANIFEST, manifest.as_bytes())?;
        for name in &self.files {
            let p = self.stage.join(name);
            File::open(&p)
                .and_then(|f| f.sync_all())
                .map_err(|e| fail(&p, e))?;
        }
        sync_dir(&self.stage);
        let new = sibling(&self.out, "new", std::process::id())?;
        let old = sibling(&self.out, "old", std::process::id())?;
        rename(&self.stage, &new)?;
        // From here the results are complete: a failure below leaves them in `new`, which
        // the next run swaps in.
        self.done = true;
        swap(&new, &self.out, &old)
    }
}

impl Drop for Staged {
    fn drop(&mut self) {
        if !self.done {
            let _ = std::fs::remove_dir_all(&self.stage);
        }
    }
}

/// The output folder of `kvsim run`: [`Staged`], with the row files opened first.
pub struct OutputDir {
    staged: Staged,
}

impl OutputDir {
    /// Prepare the folder and open the row files that are enabled, in the staging folder.
    pub fn create(
        dir: &Path,
        per_request: bool,
        per_step: bool,
    ) -> Result<(OutputDir, Option<File>, Option<File>)> {
        let mut staged = Staged::begin(dir)?;
        let req = per_request
            .then(|| staged.create("requests.csv"))
            .transpose()?;
        let steps = per_step.then(|| staged.create("steps.csv")).transpose()?;
        Ok((OutputDir { staged }, req, steps))
    }

    /// The folder the results will have.
    pub fn path(&self) -> &Path {
        self.staged.out()
    }

    /// Open another result file to stream into (in the staging folder).
    pub fn open_partial(&mut self, name: &str) -> Result<File> {
        self.staged.create(name)
    }

    /// Write another result file.
    pub fn add_file(&mut self, name: &str, text: &str) -> Result<()> {
        self.staged.write(name, text.as_bytes())
    }

    /// Finish: write the scenario and summary and swap the folder in.
    pub fn commit(mut self, scenario_yaml: &str, summary_json: &str) -> Result<()> {
        self.staged
            .write("scenario.yaml", scenario_yaml.as_bytes())?;
        self.staged.write("summary.json", summary_json.as_bytes())?;
        self.staged.commit()
    }
}

/// Write `bytes` to `path` through `<path>.tmp-<pid>`, synced and renamed over it; removes
/// temporaries that dead processes left beside it. On failure `path` is untouched.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    let (parent, _) = split(path)?;
    std::fs::create_dir_all(&parent)
        .map_err(|e| Error::failure(format!("cannot create {}: {e}", parent.display())))?;
    for (tag, _, p) in leftovers(path)? {
        if tag == "tmp" {
            remove_any(&p)?;
        }
    }
    let tmp = sibling(path, "tmp", std::process::id())?;
    let written = File::create(&tmp)
        .and_then(|mut f| f.write_all(bytes).and_then(|()| f.sync_all()))
        .map_err(|e| fail(&tmp, e))
        .and_then(|()| rename(&tmp, path));
    if written.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    sync_dir(&parent);
    written
}

/// An interruption's message for a command writing `out`: whether previous results there
/// were kept or nothing was written. Other errors pass through.
pub fn interrupted_at(e: Error, out: &Path) -> Error {
    match e {
        Error::Interrupted(sig, _) => Error::Interrupted(
            sig,
            format!(
                "interrupted: {} ({})",
                kept(out),
                crate::interrupt::signal_name(sig)
            ),
        ),
        e => e,
    }
}

/// What a command that stopped before writing `out` left there: "previous results in
/// `out` kept" or "nothing written to `out`".
pub fn kept(out: &Path) -> String {
    if out.exists() {
        format!("previous results in {} kept", out.display())
    } else {
        format!("nothing written to {}", out.display())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tmp(name: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("kvsim-output-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        d
    }

    fn entries(d: &Path) -> Vec<String> {
        let mut v: Vec<String> = std::fs::read_dir(d)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().to_string())
            .collect();
        v.sort();
        v
    }

    #[test]
    fn a_folder_without_manifest_is_replaced_only_when_it_holds_former_file_names() {
        let d = tmp("legacy");
        let out = d.join("res");
        std::fs::create_dir_all(&out).unwrap();
        for f in [
            "requests.csv",
            "summary.json.partial",
            "plan.csv",
            "compare.md",
        ] {
            std::fs::write(out.join(f), b"old").unwrap();
        }
        assert!(check_replaceable(&out).is_ok());
        // Written only since the manifest: a folder without one holding it is not ours.
        std::fs::write(out.join("trace.json"), b"{}").unwrap();
        let e = check_replaceable(&out).unwrap_err().to_string();
        assert!(e.contains("`trace.json`, which kvsim did not write"), "{e}");
    }

    #[test]
    fn a_commit_replaces_the_folder_and_a_drop_leaves_it() {
        let d = tmp("swap");
        let out = d.join("res");
        let mut s = Staged::begin(&out).unwrap();
        s.write("a.csv", b"one").unwrap();
        s.commit().unwrap();
        assert_eq!(std::fs::read(out.join("a.csv")).unwrap(), b"one");
        assert_eq!(entries(&out), vec![MANIFEST, "a.csv"]);
        // A run that fails (dropped) leaves the first results and no sibling.
        let mut s = Staged::begin(&out).unwrap();
        s.write("a.csv", b"two").unwrap();
        s.write("b.csv", b"two").unwrap();
        drop(s);
        assert_eq!(std::fs::read(out.join("a.csv")).unwrap(), b"one");
        assert_eq!(entries(&d), vec!["res"]);
        // A second commit replaces the whole folder.
        let mut s = Staged::begin(&out).unwrap();
        s.write("b.csv", b"three").unwrap();
        s.commit().unwrap();
        assert_eq!(entries(&out), vec![MANIFEST, "b.csv"]);
        assert_eq!(entries(&d), vec!["res"]);
    }

    #[test]
    fn foreign_files_and_plain_files_are_refused() {
        let d = tmp("foreign");
        let out = d.join("res");
        let mut s = Staged::begin(&out).unwrap();
        s.write("a.csv", b"one").unwrap();
        s.commit().unwrap();
        std::fs::write(out.join("notes.txt"), "mine").unwrap();
        let e = Staged::begin(&out).err().unwrap();
        assert_eq!(e.exit_code(), 2);
        assert!(e.to_string().contains("notes.txt"), "{e}");
        let file = d.join("plain");
        std::fs::write(&file, "x").unwrap();
        assert!(Staged::begin(&file)
            .err()
            .unwrap()
            .to_string()
            .contains("not a folder"));
        // A folder of the former file names, without a manifest, may be replaced.
        let legacy = d.join("legacy");
        std::fs::create_dir(&legacy).unwrap();
        std::fs::write(legacy.join("summary.json"), "{}").unwrap();
        std::fs::write(legacy.join("steps.csv.partial"), "").unwrap();
        Staged::begin(&legacy).unwrap().commit().unwrap();
        assert_eq!(entries(&legacy), vec![MANIFEST]);
    }

    /// A dead process's id: a child that has exited and been reaped.
    fn dead_pid() -> u32 {
        let mut c = std::process::Command::new("true").spawn().unwrap();
        let pid = c.id();
        c.wait().unwrap();
        pid
    }

    #[cfg(unix)]
    #[test]
    fn leftovers_of_dead_runs_are_finished_or_undone() {
        let d = tmp("recover");
        let out = d.join("res");
        let pid = dead_pid();
        let make = |p: &Path, text: &str| {
            std::fs::create_dir_all(p).unwrap();
            std::fs::write(p.join("a.csv"), text).unwrap();
            std::fs::write(p.join(MANIFEST), "a.csv\n").unwrap();
        };
        // A crash between steps 2 and 3: the old results aside, the new ones complete.
        make(&sibling(&out, "old", pid).unwrap(), "old");
        make(&sibling(&out, "new", pid).unwrap(), "new");
        make(&sibling(&out, "tmp", pid).unwrap(), "partial");
        prepare(&out).unwrap();
        assert_eq!(std::fs::read(out.join("a.csv")).unwrap(), b"new");
        assert_eq!(entries(&d), vec!["res"]);
        // Only the old results aside: they are restored.
        std::fs::rename(&out, sibling(&out, "old", pid).unwrap()).unwrap();
        prepare(&out).unwrap();
        assert_eq!(std::fs::read(out.join("a.csv")).unwrap(), b"new");
        // A live process's staging folder (the test runner's parent here) is left alone.
        let parent_pid = std::os::unix::process::parent_id();
        let theirs = sibling(&out, "tmp", parent_pid).unwrap();
        make(&theirs, "theirs");
        prepare(&out).unwrap();
        assert!(theirs.exists());
    }

    #[test]
    fn write_atomic_replaces_and_cleans_dead_temporaries() {
        let d = tmp("atomic");
        let f = d.join("x.csv");
        std::fs::write(sibling(&f, "tmp", dead_pid()).unwrap(), "junk").unwrap();
        write_atomic(&f, b"1").unwrap();
        write_atomic(&f, b"2").unwrap();
        assert_eq!(std::fs::read(&f).unwrap(), b"2");
        assert_eq!(entries(&d), vec!["x.csv"]);
    }

    #[test]
    fn interruptions_say_what_was_kept() {
        let d = tmp("kept");
        let e = interrupted_at(Error::interrupted(15), &d);
        assert_eq!(e.exit_code(), 143);
        assert!(e.to_string().contains("previous results in"), "{e}");
        let e = interrupted_at(Error::interrupted(2), &d.join("none"));
        assert!(e.to_string().contains("nothing written"), "{e}");
        let e = interrupted_at(Error::input("x"), &d);
        assert_eq!(e.exit_code(), 2);
    }
}
