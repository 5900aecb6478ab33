//! The output directory. Rows stream into `*.partial` files; only a run that finishes
//! renames them and writes `summary.json` and `scenario.yaml`, so a failed run never leaves
//! files that look complete.

use crate::error::{Error, Result};
use std::fs::File;
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

/// Files a run writes only when asked (`trace.json`: `--trace`, `output.trace`); removed,
/// like [`FILES`], when a run starts.
pub const OPTIONAL_FILES: [&str; 1] = ["trace.json"];

/// An output directory being written.
pub struct OutputDir {
    dir: PathBuf,
    partials: Vec<(PathBuf, PathBuf)>,
    committed: bool,
}

fn fail(path: &Path, e: std::io::Error) -> Error {
    Error::failure(format!("cannot write {}: {e}", path.display()))
}

impl OutputDir {
    /// Create (or reuse) the directory, remove results of an earlier run, and open the
    /// partial row files that are enabled.
    pub fn create(
        dir: &Path,
        per_request: bool,
        per_step: bool,
    ) -> Result<(OutputDir, Option<File>, Option<File>)> {
        std::fs::create_dir_all(dir).map_err(|e| fail(dir, e))?;
        for name in FILES.iter().chain(&OPTIONAL_FILES) {
            let p = dir.join(name);
            if p.exists() {
                std::fs::remove_file(&p).map_err(|e| fail(&p, e))?;
            }
        }
        let mut out = OutputDir {
            dir: dir.to_path_buf(),
            partials: Vec::new(),
            committed: false,
        };
        let mut open = |name: &str, on: bool| -> Result<Option<File>> {
            if !on {
                return Ok(None);
            }
            let fin = dir.join(name);
            let part = dir.join(format!("{name}.partial"));
            let f = File::create(&part).map_err(|e| fail(&part, e))?;
            out.partials.push((part, fin));
            Ok(Some(f))
        };
        let req = open("requests.csv", per_request)?;
        let steps = open("steps.csv", per_step)?;
        Ok((out, req, steps))
    }

    /// The directory.
    pub fn path(&self) -> &Path {
        &self.dir
    }

    /// Open another result file to stream into (as a partial, renamed on commit).
    pub fn open_partial(&mut self, name: &str) -> Result<File> {
        let fin = self.dir.join(name);
        let part = self.dir.join(format!("{name}.partial"));
        let f = File::create(&part).map_err(|e| fail(&part, e))?;
        self.partials.push((part, fin));
        Ok(f)
    }

    /// Write another result file (as a partial, renamed on commit).
    pub fn add_file(&mut self, name: &str, text: &str) -> Result<()> {
        let fin = self.dir.join(name);
        let part = self.dir.join(format!("{name}.partial"));
        std::fs::write(&part, text).map_err(|e| fail(&part, e))?;
        self.partials.push((part, fin));
        Ok(())
    }

    /// Finish: rename the row files and write the scenario and summary.
    pub fn commit(mut self, scenario_yaml: &str, summary_json: &str) -> Result<()> {
        for (part, fin) in &self.partials {
            std::fs::rename(part, fin).map_err(|e| fail(fin, e))?;
        }
        for (name, text) in [
            ("scenario.yaml", scenario_yaml),
            ("summary.json", summary_json),
        ] {
            let fin = self.dir.join(name);
            let part = self.dir.join(format!("{name}.partial"));
            std::fs::write(&part, text).map_err(|e| fail(&part, e))?;
            std::fs::rename(&part, &fin).map_err(|e| fail(&fin, e))?;
        }
        self.committed = true;
        Ok(())
    }
}

impl Drop for OutputDir {
    fn drop(&mut self) {
        if !self.committed {
            for (part, _) in &self.partials {
                let _ = std::fs::remove_file(part);
            }
        }
    }
}
