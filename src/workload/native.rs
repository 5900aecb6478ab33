//! The native kvsim trace: CSV `arrival_s,input_tokens,output_tokens[,session,prefix_hashes]`,
//! optionally preceded by `# kvsim-trace v1 hash_block_tokens=N` (default 16).
//! `prefix_hashes` is a space-separated list of block ids, one per `N` prompt tokens (the last
//! block may be partial); equal ids at equal positions mean equal content. The list may go
//! on past the prompt into the output (at most `input_tokens + output_tokens` tokens in
//! all), when a later prompt repeats that output: a conversation's answer.

use super::{at_row, mix, open_file, RawRequest, Request, Segment};
use crate::error::{Error, Result};
use crate::prefix::{fixed_block_ids, identified_tokens};
use std::io::{BufRead, Write};
use std::path::{Path, PathBuf};

/// Default tokens per prefix hash.
pub const DEFAULT_HASH_BLOCK_TOKENS: u32 = 16;
const NAMESPACE: u64 = 0x6e61_7469_7665;

/// Streaming reader of a native trace.
pub struct NativeReader {
    path: PathBuf,
    rows: csv::StringRecordsIntoIter<std::io::BufReader<std::fs::File>>,
    /// Lines consumed before the CSV header (the comment line).
    line_offset: u64,
    block_tokens: u32,
}

impl NativeReader {
    /// Open a native trace.
    pub fn open(path: &Path) -> Result<Self> {
        let mut file = open_file(path)?;
        let mut block_tokens = DEFAULT_HASH_BLOCK_TOKENS;
        let mut line_offset = 0;
        let starts_with_comment = file
            .fill_buf()
            .map_err(|e| Error::input(format!("cannot read {}: {e}", path.display())))?
            .first()
            == Some(&b'#');
        if starts_with_comment {
            let mut first = String::new();
            file.read_line(&mut first)
                .map_err(|e| Error::input(format!("cannot read {}: {e}", path.display())))?;
            line_offset = 1;
            for word in first.split_whitespace() {
                if let Some(v) = word.strip_prefix("hash_block_tokens=") {
                    block_tokens = v.parse().ok().filter(|&b| b > 0).ok_or_else(|| {
                        Error::input(format!(
                            "{}: hash_block_tokens must be a positive integer",
                            at_row(path, 1)
                        ))
                    })?;
                }
            }
        }
        let mut rdr = csv::ReaderBuilder::new()
            .has_headers(true)
            .flexible(true)
            .from_reader(file);
        let h = rdr
            .headers()
            .map_err(|e| {
                Error::input(format!(
                    "{}: cannot read header: {e}",
                    at_row(path, line_offset + 1)
                ))
            })?
            .clone();
        let names: Vec<&str> = h.iter().map(str::trim).collect();
        let ok3 = names.len() >= 3 && names[..3] == ["arrival_s", "input_tokens", "output_tokens"];
        let ok5 =
            names.len() == 3 || (names.len() == 5 && names[3..] == ["session", "prefix_hashes"]);
        if !ok3 || !ok5 {
            return Err(Error::input(format!(
                "{}: expected header arrival_s,input_tokens,output_tokens[,session,prefix_hashes]",
                at_row(path, line_offset + 1)
            )));
        }
        Ok(NativeReader {
            path: path.to_path_buf(),
            rows: rdr.into_records(),
            line_offset,
            block_tokens,
        })
    }
}

impl Iterator for NativeReader {
    type Item = Result<RawRequest>;

    fn next(&mut self) -> Option<Self::Item> {
        let rec = self.rows.next()?;
        Some(
            rec.map_err(|e| {
                Error::input(format!("{}: malformed CSV row: {e}", self.path.display()))
            })
            .and_then(|rec| {
                let line = rec.position().map(|p| p.line()).unwrap_or(0) + self.line_offset;
                let at = at_row(&self.path, line);
                if rec.len() != 3 && rec.len() != 5 {
                    return Err(Error::input(format!(
                        "{at}: expected 3 or 5 columns, found {}",
                        rec.len()
                    )));
                }
                let arrival: f64 = rec[0].trim().parse().map_err(|_| {
                    Error::input(format!("{at}: arrival_s `{}` is not a number", &rec[0]))
                })?;
                if !arrival.is_finite() || arrival < 0.0 {
                    return Err(Error::input(format!(
                        "{at}: arrival_s must be >= 0 (got {})",
                        &rec[0]
                    )));
                }
                let int = |i: usize, name: &str| -> Result<u32> {
                    rec[i].trim().parse().map_err(|_| {
                        Error::input(format!(
                            "{at}: {name} `{}` is not a non-negative integer",
                            &rec[i]
                        ))
                    })
                };
                let input = int(1, "input_tokens")?;
                let output = int(2, "output_tokens")?;
                super::check::request_tokens(&at, input as u64, output as u64)?;
                let (session, segments) = if rec.len() == 5 {
                    let session = match rec[3].trim() {
                        "" => None,
                        s => Some(s.parse::<u64>().map_err(|_| {
                            Error::input(format!("{at}: session `{s}` is not an integer"))
                        })?),
                    };
                    let mut left = input.saturating_add(output);
                    let mut segments = Vec::new();
                    for word in rec[4].split_whitespace() {
                        let id: u64 = word.parse().map_err(|_| {
                            Error::input(format!("{at}: prefix hash `{word}` is not an integer"))
                        })?;
                        let tokens = left.min(self.block_tokens);
                        if tokens == 0 {
                            return Err(Error::input(format!(
                                "{at}: more prefix hashes than (input_tokens + output_tokens) / {} allows",
                                self.block_tokens
                            )));
                        }
                        left -= tokens;
                        segments.push(Segment {
                            id: mix(NAMESPACE, id),
                            tokens,
                        });
                    }
                    (session, segments)
                } else {
                    (None, Vec::new())
                };
                Ok(RawRequest {
                    arrival_ns: super::check::seconds_ns(&at, "arrival_s", arrival)?,
                    input_tokens: input,
                    output_tokens: output,
                    session,
                    segments,
                })
            }),
        )
    }
}

/// A block hash as a native trace writes it: 63 bits (so that tools reading ids as signed
/// 64-bit integers keep them), dropping the lowest bit of the run's key rather than of the
/// block's place in its run ([`crate::prefix::block_hash`]), so distinct blocks keep
/// distinct ids.
fn written_id(hash: u64) -> u64 {
    let place_bits = crate::prefix::HASH_RUN_BITS;
    let place = hash & ((1 << place_bits) - 1);
    (hash >> (place_bits + 1)) << place_bits | place
}

/// Writes requests as a native trace with `block_tokens` tokens per prefix hash.
pub fn write_native<W: Write>(
    out: W,
    requests: impl Iterator<Item = Result<Request>>,
    block_tokens: u32,
) -> Result<u64> {
    let io = |e: std::io::Error| Error::failure(format!("cannot write trace: {e}"));
    let mut out = std::io::BufWriter::new(out);
    writeln!(out, "# kvsim-trace v1 hash_block_tokens={block_tokens}").map_err(io)?;
    writeln!(
        out,
        "arrival_s,input_tokens,output_tokens,session,prefix_hashes"
    )
    .map_err(io)?;
    let mut n = 0u64;
    for r in requests {
        if n.is_multiple_of(4096) {
            crate::interrupt::check()?;
        }
        let r = r?;
        let ids = fixed_block_ids(&r.segments, identified_tokens(&r), block_tokens);
        let ids: Vec<String> = ids.iter().map(|&i| written_id(i).to_string()).collect();
        let session = r.session.map(|s| s.to_string()).unwrap_or_default();
        writeln!(
            out,
            "{:.6},{},{},{},{}",
            r.arrival_ns as f64 / 1e9,
            r.input_tokens,
            r.output_tokens,
            session,
            ids.join(" ")
        )
        .map_err(io)?;
        n += 1;
    }
    out.flush().map_err(io)?;
    Ok(n)
}

#[cfg(test)]
mod written_id_tests {
    use super::written_id;
    use crate::prefix::block_hash;

    #[test]
    fn written_ids_fit_63_bits_and_stay_distinct() {
        let mut seen = std::collections::HashSet::new();
        for chain in 0..20u64 {
            for offset in 0..5_000u64 {
                let id = written_id(block_hash(chain, offset));
                assert!(id < 1 << 63);
                assert!(seen.insert(id), "chain {chain} offset {offset}");
            }
        }
    }
}
