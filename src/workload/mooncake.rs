//! Mooncake JSON lines: `{"timestamp": ms, "input_length", "output_length", "hash_ids": [...]}`
//! with one hash id per `block_tokens`-token prefix block (512 in the FAST'25 release).

use super::{at_row, mix, open_file, RawRequest, Segment};
use crate::error::{Error, Result};
use serde::Deserialize;
use std::io::BufRead;
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

/// Streaming reader of a Mooncake trace.
pub struct MooncakeReader {
    path: PathBuf,
    lines: std::io::Lines<std::io::BufReader<std::fs::File>>,
    row: u64,
    block_tokens: u32,
    first_ms: Option<f64>,
}

impl MooncakeReader {
    /// Open a Mooncake trace.
    pub fn open(path: &Path, block_tokens: u32) -> Result<Self> {
        Ok(MooncakeReader {
            path: path.to_path_buf(),
            lines: open_file(path)?.lines(),
            row: 0,
            block_tokens,
            first_ms: None,
        })
    }

    fn parse(&mut self, line: &str) -> Result<RawRequest> {
        let r: Row = serde_json::from_str(line).map_err(|e| {
            Error::input(format!(
                "{}: malformed Mooncake row: {e}",
                at_row(&self.path, self.row)
            ))
        })?;
        if !r.timestamp.is_finite() || r.timestamp < 0.0 {
            return Err(Error::input(format!(
                "{}: timestamp must be >= 0 (got {})",
                at_row(&self.path, self.row),
                r.timestamp
            )));
        }
        let first = *self.first_ms.get_or_insert(r.timestamp);
        let rel_ms = (r.timestamp - first).max(0.0);
        let bt = self.block_tokens;
        let mut remaining = r.input_length;
        let segments = r
            .hash_ids
            .iter()
            .map_while(|&id| {
                let tokens = remaining.min(bt);
                remaining -= tokens;
                (tokens > 0).then_some(Segment {
                    id: mix(NAMESPACE, id),
                    tokens,
                })
            })
            .collect();
        Ok(RawRequest {
            arrival_ns: (rel_ms * 1e6).round() as u64,
            input_tokens: r.input_length,
            output_tokens: r.output_length,
            session: None,
            segments,
        })
    }
}

impl Iterator for MooncakeReader {
    type Item = Result<RawRequest>;

    fn next(&mut self) -> Option<Self::Item> {
        loop {
            self.row += 1;
            let line = match self.lines.next()? {
                Ok(l) => l,
                Err(e) => {
                    return Some(Err(Error::input(format!(
                        "{}: cannot read: {e}",
                        at_row(&self.path, self.row)
                    ))))
                }
            };
            if line.trim().is_empty() {
                continue;
            }
            return Some(self.parse(&line));
        }
    }
}
