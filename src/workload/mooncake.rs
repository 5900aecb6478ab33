//! Mooncake JSON lines: `{"timestamp": ms, "input_length", "output_length", "hash_ids": [...]}`
//! with one hash id per `block_tokens`-token prefix block (512 in the FAST'25 release, whose
//! README gives `len(hash_ids) == ceil(input_length / 512)`). More ids than the prompt can
//! hold are refused; fewer leave the rest of the prompt unique to the request. Times are
//! relative to the earliest of the first rows ([`super::clock`]).

use super::check::{block_segments, request_tokens};
use super::clock::{EarliestZero, Timed};
use super::lines::Lines;
use super::{at_row, mix, RawRequest};
use crate::error::{Error, Result};
use serde::Deserialize;
use std::path::{Path, PathBuf};

/// Namespace for Mooncake block ids.
const NAMESPACE: u64 = 0x4d6f_6f6e;

#[derive(Deserialize)]
struct Row {
    timestamp: f64,
    input_length: u32,
    output_length: u32,
    #[serde(default)]
    hash_ids: Vec<u64>,
}

/// The rows of a Mooncake trace with their absolute times.
pub struct MooncakeRows {
    path: PathBuf,
    lines: Lines,
    block_tokens: u32,
}

/// A streaming Mooncake reader: its rows, timed from the first arrival.
pub type MooncakeReader = EarliestZero<MooncakeRows>;

/// Open a Mooncake trace whose hash ids cover `block_tokens` tokens each.
pub fn open(path: &Path, block_tokens: u32) -> Result<MooncakeReader> {
    let rows = MooncakeRows {
        path: path.to_path_buf(),
        lines: Lines::open(path)?,
        block_tokens,
    };
    Ok(EarliestZero::new(rows, path.to_path_buf()))
}

/// One row of `path`.
fn parse(path: &Path, block_tokens: u32, row: u64, line: &str) -> Result<Timed> {
    let at = at_row(path, row);
    let r: Row = serde_json::from_str(line)
        .map_err(|e| Error::input(format!("{at}: malformed Mooncake row: {e}")))?;
    if !r.timestamp.is_finite() || r.timestamp < 0.0 || r.timestamp > 9e15 {
        return Err(Error::input(format!(
            "{at}: timestamp must be a number of milliseconds >= 0 (got {})",
            r.timestamp
        )));
    }
    request_tokens(&at, r.input_length as u64, r.output_length as u64)?;
    let segments = block_segments(&at, &r.hash_ids, r.input_length, block_tokens, |id| {
        mix(NAMESPACE, id)
    })?;
    Ok(Timed {
        row,
        t_ns: (r.timestamp * 1e6).round() as i128,
        req: RawRequest {
            arrival_ns: 0,
            input_tokens: r.input_length,
            output_tokens: r.output_length,
            session: None,
            segments,
        },
    })
}

impl Iterator for MooncakeRows {
    type Item = Result<Timed>;

    fn next(&mut self) -> Option<Self::Item> {
        Some(
            self.lines
                .next_line()?
                .and_then(|(row, line)| parse(&self.path, self.block_tokens, row, line)),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(name: &str, text: &str) -> std::path::PathBuf {
        let p = std::env::temp_dir().join(format!("kvsim-mc-{}-{name}.jsonl", std::process::id()));
        std::fs::write(&p, text).unwrap();
        p
    }

    #[test]
    fn blocks_and_times() {
        let p = write(
            "ok",
            "{\"timestamp\": 2000, \"input_length\": 600, \"output_length\": 5, \"hash_ids\": [1, 2]}\n\
             {\"timestamp\": 1500.5, \"input_length\": 10, \"output_length\": 5, \"hash_ids\": []}\n",
        );
        let r: Vec<RawRequest> = open(&p, 512).unwrap().map(|r| r.unwrap()).collect();
        // The second row is the earliest: it is the zero, nothing is clamped.
        assert_eq!(r[0].arrival_ns, 499_500_000);
        assert_eq!(r[1].arrival_ns, 0);
        let tokens: Vec<u32> = r[0].segments.iter().map(|s| s.tokens).collect();
        assert_eq!(tokens, vec![512, 88]);
        std::fs::remove_file(p).unwrap();
    }

    #[test]
    fn too_many_hash_ids_name_the_row() {
        let p = write(
            "bad",
            "{\"timestamp\": 0, \"input_length\": 600, \"output_length\": 5, \"hash_ids\": [1, 2]}\n\
             {\"timestamp\": 1, \"input_length\": 512, \"output_length\": 5, \"hash_ids\": [1, 2]}\n",
        );
        let e = open(&p, 512)
            .unwrap()
            .find_map(|r| r.err())
            .unwrap()
            .to_string();
        assert!(
            e.contains(":2: 2 hash ids, but 512 input tokens hold at most 1 blocks"),
            "{e}"
        );
        std::fs::remove_file(p).unwrap();
    }
}
