//! Whole text files read into memory (scenarios, profiles, shard CSVs, metadata), their size
//! checked before anything is allocated, so that a wrong path to a huge file is an input
//! error naming it, not an exhausted machine.

use crate::error::{Error, Result};
use std::path::Path;

/// Largest scenario file read (a scenario is a few kilobytes of YAML).
pub const MAX_SCENARIO_BYTES: u64 = 16 << 20;
/// Largest other whole file read (a profile, a shard CSV, a metadata file).
pub const MAX_TEXT_BYTES: u64 = 1 << 30;

/// The text of `path` (`what` names it in errors: "scenario", "calibration profile"), at
/// most `max_bytes` long.
pub fn read_bounded(path: &Path, what: &str, max_bytes: u64) -> Result<String> {
    let at = path.display();
    let size = std::fs::metadata(path)
        .map_err(|e| Error::input(format!("cannot read {what} {at}: {e}")))?
        .len();
    if size > max_bytes {
        return Err(Error::input(format!(
            "{what} {at}: {size} bytes, more than the {max_bytes} kvsim reads"
        )));
    }
    std::fs::read_to_string(path).map_err(|e| Error::input(format!("cannot read {what} {at}: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_file_over_the_bound_is_refused_before_reading() {
        let p = std::env::temp_dir().join(format!("kvsim-input-{}.yaml", std::process::id()));
        std::fs::write(&p, "name: x\n").unwrap();
        assert_eq!(read_bounded(&p, "scenario", 8).unwrap(), "name: x\n");
        let e = read_bounded(&p, "scenario", 7).unwrap_err();
        assert_eq!(e.exit_code(), 2);
        assert!(e.to_string().contains("8 bytes, more than the 7"), "{e}");
        let e = read_bounded(&p.with_extension("none"), "scenario", 7).unwrap_err();
        assert!(e.to_string().starts_with("cannot read scenario"), "{e}");
    }
}
