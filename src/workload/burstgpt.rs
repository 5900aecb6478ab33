//! BurstGPT CSV (HPMLL/BurstGPT, `data/BurstGPT_*.csv`): `Timestamp,Model,Request tokens,
//! Response tokens,Total tokens,Log Type`. `Timestamp` is the request's submission time in
//! seconds from 0:00:00 on the trace's first day (integer in the release, a float accepted);
//! arrivals keep that clock, so `workload.start_s` picks a time of day. Columns are found by
//! their header names (exports reorder them); `Model`, `Total tokens` and `Log Type` are not
//! used. A failed request is one with `Response tokens` 0 (the BurstGPT README: the files
//! "with some failure that `Response tokens` are 0s"): it is left out, and how many were is
//! written to stderr when the reader stops. No prefix content: every prompt is unique.

use super::check::{request_tokens, seconds_ns};
use super::{at_row, open_file, RawRequest};
use crate::error::{Error, Result};
use std::path::{Path, PathBuf};

/// Streaming reader of a BurstGPT trace.
pub struct BurstgptReader {
    path: PathBuf,
    rows: csv::StringRecordsIntoIter<std::io::BufReader<std::fs::File>>,
    /// Column of `Timestamp`, `Request tokens`, `Response tokens`.
    cols: [usize; 3],
    row: u64,
    failed: u64,
    reported: bool,
}

const COLUMNS: [&str; 3] = ["Timestamp", "Request tokens", "Response tokens"];

impl BurstgptReader {
    /// Open a BurstGPT trace and find its columns.
    pub fn open(path: &Path) -> Result<Self> {
        let mut rdr = csv::ReaderBuilder::new()
            .has_headers(true)
            .flexible(true)
            .from_reader(open_file(path)?);
        let headers = rdr
            .headers()
            .map_err(|e| Error::input(format!("{}: cannot read header: {e}", at_row(path, 1))))?
            .clone();
        let mut cols = [0; 3];
        for (slot, name) in cols.iter_mut().zip(COLUMNS) {
            *slot = headers
                .iter()
                .position(|h| h.trim() == name)
                .ok_or_else(|| {
                    Error::input(format!(
                        "{}: no `{name}` column (expected the BurstGPT header \
                     Timestamp,Model,Request tokens,Response tokens,Total tokens,Log Type)",
                        at_row(path, 1)
                    ))
                })?;
        }
        Ok(BurstgptReader {
            path: path.to_path_buf(),
            rows: rdr.into_records(),
            cols,
            row: 1,
            failed: 0,
            reported: false,
        })
    }

    /// Requests left out so far because they failed.
    pub fn failed(&self) -> u64 {
        self.failed
    }

    /// One row: `None` for a failed request.
    fn parse(&self, rec: csv::Result<csv::StringRecord>) -> Result<Option<RawRequest>> {
        let at = at_row(&self.path, self.row);
        let rec = rec.map_err(|e| Error::input(format!("{at}: malformed CSV row: {e}")))?;
        let field = |i: usize| rec.get(self.cols[i]).map(str::trim);
        let Some(ts) = field(0) else {
            return Err(Error::input(format!("{at}: missing Timestamp")));
        };
        let ts: f64 = ts
            .parse()
            .map_err(|_| Error::input(format!("{at}: Timestamp `{ts}` is not a number")))?;
        let arrival_ns = seconds_ns(&at, "Timestamp", ts)?;
        let tokens = |i: usize| -> Result<u32> {
            let v = field(i).unwrap_or("");
            v.parse().map_err(|_| {
                Error::input(format!(
                    "{at}: {} `{v}` is not a non-negative integer",
                    COLUMNS[i]
                ))
            })
        };
        let input = tokens(1)?;
        let output = tokens(2)?;
        if output == 0 {
            return Ok(None);
        }
        request_tokens(&at, input as u64, output as u64)?;
        Ok(Some(RawRequest {
            arrival_ns,
            input_tokens: input,
            output_tokens: output,
            session: None,
            segments: Vec::new(),
        }))
    }

    fn report(&mut self) {
        if !self.reported && self.failed > 0 {
            let note = format!(
                "left out {} failed requests (Response tokens 0) of {} rows read",
                self.failed,
                self.row - 1
            );
            super::check::note_once(&self.path, &note);
        }
        self.reported = true;
    }
}

impl Iterator for BurstgptReader {
    type Item = Result<RawRequest>;

    fn next(&mut self) -> Option<Self::Item> {
        loop {
            let Some(rec) = self.rows.next() else {
                self.report();
                return None;
            };
            self.row += 1;
            match self.parse(rec) {
                Ok(Some(r)) => return Some(Ok(r)),
                Ok(None) => self.failed += 1,
                Err(e) => return Some(Err(e)),
            }
        }
    }
}

impl Drop for BurstgptReader {
    fn drop(&mut self) {
        self.report();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(name: &str, text: &str) -> PathBuf {
        let p = std::env::temp_dir().join(format!("kvsim-bg-{}-{name}.csv", std::process::id()));
        std::fs::write(&p, text).unwrap();
        p
    }

    #[test]
    fn reads_rows_and_leaves_out_failures() {
        let p = write(
            "ok",
            "Timestamp,Model,Request tokens,Response tokens,Total tokens,Log Type\n\
             5,ChatGPT,472,18,490,Conversation log\n\
             7.5,GPT-4,100,0,100,API log\n\
             45,ChatGPT,1087,230,1317,Conversation log\n",
        );
        let mut r = BurstgptReader::open(&p).unwrap();
        let a = r.next().unwrap().unwrap();
        assert_eq!(
            (a.arrival_ns, a.input_tokens, a.output_tokens),
            (5_000_000_000, 472, 18)
        );
        let b = r.next().unwrap().unwrap();
        assert_eq!((b.arrival_ns, b.input_tokens), (45_000_000_000, 1087));
        assert!(r.next().is_none());
        assert_eq!(r.failed(), 1);
        std::fs::remove_file(p).unwrap();
    }

    #[test]
    fn columns_by_name_and_errors_name_the_row() {
        let p = write(
            "reordered",
            "Log Type,Timestamp,Request tokens,Response tokens\nAPI log,1,10,2\nAPI log,x,1,1\n",
        );
        let mut r = BurstgptReader::open(&p).unwrap();
        assert_eq!(r.next().unwrap().unwrap().input_tokens, 10);
        let e = r.next().unwrap().unwrap_err().to_string();
        assert!(e.ends_with(":3: Timestamp `x` is not a number"), "{e}");
        let p2 = write("nohdr", "Time,Tokens\n1,2\n");
        let e = BurstgptReader::open(&p2).err().unwrap().to_string();
        assert!(e.contains(":1: no `Timestamp` column"), "{e}");
        for p in [p, p2] {
            std::fs::remove_file(p).unwrap();
        }
    }
}
