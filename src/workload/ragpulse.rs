//! RAGPulse JSON lines: `{"timestamp": "<s>", "input_length", "output_length",
//! "hash_ids": {sys_prompt, passages_ids, history, web_search, user_input}, "session_id"}`.
//! Segment lengths come from the side files `1_sys_prompt.jsonl` .. `5_web_search.jsonl`.
//! Times are relative to the earliest of the first rows ([`super::clock`]).

use super::check::{request_tokens, seconds_ns};
use super::clock::{EarliestZero, Timed};
use super::{at_row, hash_str, mix, open_file, RawRequest, Segment};
use crate::error::{Error, Result};
use serde::Deserialize;
use std::collections::HashMap;
use std::io::BufRead;
use std::path::{Path, PathBuf};

/// Segment kinds in prompt order, with their side file and the id field in it.
const KINDS: [(&str, &str, &str); 5] = [
    ("sys_prompt", "1_sys_prompt.jsonl", "sys_prompt_id"),
    ("passages_ids", "2_passages.jsonl", "passage_id"),
    ("history", "3_history.jsonl", "history_id"),
    ("web_search", "5_web_search.jsonl", "web_search_id"),
    ("user_input", "4_user_input.jsonl", "user_input_id"),
];

#[derive(Deserialize)]
struct Row {
    timestamp: serde_json::Value,
    input_length: u32,
    output_length: u32,
    #[serde(default)]
    hash_ids: HashMap<String, Vec<u64>>,
    #[serde(default)]
    session_id: Option<String>,
}

/// The rows of a RAGPulse trace with their times (the side files, a few MB, are loaded as
/// maps).
pub struct RagpulseRows {
    path: PathBuf,
    lines: std::io::Lines<std::io::BufReader<std::fs::File>>,
    row: u64,
    lengths: [HashMap<u64, u32>; 5],
}

/// A streaming RAGPulse reader: its rows, timed from the first arrival.
pub type RagpulseReader = EarliestZero<RagpulseRows>;

/// Open a RAGPulse trace and load its side files from the same directory.
pub fn open(path: &Path) -> Result<RagpulseReader> {
    Ok(EarliestZero::new(
        RagpulseRows::open(path)?,
        path.to_path_buf(),
    ))
}

fn side_file(dir: &Path, kind: usize) -> PathBuf {
    dir.join(KINDS[kind].1)
}

fn load_lengths(path: &Path, id_field: &str) -> Result<HashMap<u64, u32>> {
    let mut map = HashMap::new();
    for (i, line) in open_file(path)?.lines().enumerate() {
        let line = line.map_err(|e| {
            Error::input(format!("{}: cannot read: {e}", at_row(path, i as u64 + 1)))
        })?;
        if line.trim().is_empty() {
            continue;
        }
        let v: serde_json::Value = serde_json::from_str(&line).map_err(|e| {
            Error::input(format!(
                "{}: malformed row: {e}",
                at_row(path, i as u64 + 1)
            ))
        })?;
        let id = v.get(id_field).and_then(|x| x.as_u64());
        let len = v.get("token_length").and_then(|x| x.as_u64());
        match (id, len) {
            (Some(id), Some(len)) => {
                map.insert(id, len as u32);
            }
            _ => {
                return Err(Error::input(format!(
                    "{}: expected integer fields `{id_field}` and `token_length`",
                    at_row(path, i as u64 + 1)
                )))
            }
        }
    }
    Ok(map)
}

impl RagpulseRows {
    /// Open a RAGPulse trace and load its side files from the same directory.
    pub fn open(path: &Path) -> Result<Self> {
        let dir = path.parent().unwrap_or(Path::new("."));
        let mut lengths: [HashMap<u64, u32>; 5] = Default::default();
        for (k, slot) in lengths.iter_mut().enumerate() {
            *slot = load_lengths(&side_file(dir, k), KINDS[k].2)?;
        }
        Ok(RagpulseRows {
            path: path.to_path_buf(),
            lines: open_file(path)?.lines(),
            row: 0,
            lengths,
        })
    }

    fn parse(&mut self, line: &str) -> Result<Timed> {
        let at = at_row(&self.path, self.row);
        let r: Row = serde_json::from_str(line)
            .map_err(|e| Error::input(format!("{at}: malformed RAGPulse row: {e}")))?;
        let ts = match &r.timestamp {
            serde_json::Value::String(s) => s.trim().parse::<f64>().ok(),
            serde_json::Value::Number(n) => n.as_f64(),
            _ => None,
        }
        .filter(|t| t.is_finite() && *t >= 0.0)
        .ok_or_else(|| {
            Error::input(format!(
                "{at}: timestamp `{}` is not a number of seconds",
                r.timestamp
            ))
        })?;
        let t_ns = seconds_ns(&at, "timestamp", ts)?;
        request_tokens(&at, r.input_length as u64, r.output_length as u64)?;
        let mut segments = Vec::new();
        for (k, (kind, _, _)) in KINDS.iter().enumerate() {
            for &id in r.hash_ids.get(*kind).map(Vec::as_slice).unwrap_or(&[]) {
                let tokens = *self.lengths[k].get(&id).ok_or_else(|| {
                    Error::input(format!(
                        "{at}: {kind} id {id} is not in {}",
                        side_file(Path::new(""), k).display()
                    ))
                })?;
                if tokens > 0 {
                    segments.push(Segment {
                        id: mix(k as u64 + 0x5241_4700, id),
                        tokens,
                    });
                }
            }
        }
        // The prompt is at most input_length tokens: trim the segments to fit.
        let mut left = r.input_length;
        segments.retain_mut(|s| {
            s.tokens = s.tokens.min(left);
            left -= s.tokens;
            s.tokens > 0
        });
        Ok(Timed {
            row: self.row,
            t_ns: t_ns as i128,
            req: RawRequest {
                arrival_ns: 0,
                input_tokens: r.input_length,
                output_tokens: r.output_length,
                session: r.session_id.as_deref().map(hash_str),
                segments,
            },
        })
    }
}

impl Iterator for RagpulseRows {
    type Item = Result<Timed>;

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
