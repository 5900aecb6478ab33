//! Azure LLM inference trace CSV: `TIMESTAMP,ContextTokens,GeneratedTokens`, with
//! timestamps like `2023-11-16 18:15:46.6805900` (7 fractional digits). No prefix content:
//! every prompt is unique.

use super::{at_row, open_file, RawRequest};
use crate::error::{Error, Result};
use std::path::{Path, PathBuf};

/// Streaming reader of an Azure trace.
pub struct AzureReader {
    path: PathBuf,
    rows: csv::StringRecordsIntoIter<std::io::BufReader<std::fs::File>>,
    row: u64,
    first_ns: Option<i128>,
}

impl AzureReader {
    /// Open an Azure trace and check its header.
    pub fn open(path: &Path) -> Result<Self> {
        let mut rdr = csv::ReaderBuilder::new()
            .has_headers(true)
            .from_reader(open_file(path)?);
        let headers = rdr
            .headers()
            .map_err(|e| Error::input(format!("{}: cannot read header: {e}", at_row(path, 1))))?
            .clone();
        let want = ["TIMESTAMP", "ContextTokens", "GeneratedTokens"];
        if headers.len() < 3 || want.iter().zip(headers.iter()).any(|(a, b)| *a != b.trim()) {
            return Err(Error::input(format!(
                "{}: expected header TIMESTAMP,ContextTokens,GeneratedTokens",
                at_row(path, 1)
            )));
        }
        Ok(AzureReader {
            path: path.to_path_buf(),
            rows: rdr.into_records(),
            row: 1,
            first_ns: None,
        })
    }
}

/// Parse `YYYY-MM-DD HH:MM:SS[.fffffff]` into nanoseconds since 1970 (UTC, no zone).
pub fn parse_datetime_ns(s: &str) -> Option<i128> {
    let s = s.trim();
    let (date, time) = s.split_once([' ', 'T'])?;
    let mut d = date.split('-');
    let y: i64 = d.next()?.parse().ok()?;
    let mo: i64 = d.next()?.parse().ok()?;
    let da: i64 = d.next()?.parse().ok()?;
    if d.next().is_some() || !(1..=12).contains(&mo) || !(1..=31).contains(&da) {
        return None;
    }
    let (hms, frac) = match time.split_once('.') {
        Some((a, b)) => (a, b),
        None => (time, ""),
    };
    let mut t = hms.split(':');
    let h: i64 = t.next()?.parse().ok()?;
    let mi: i64 = t.next()?.parse().ok()?;
    let se: i64 = t.next()?.parse().ok()?;
    if t.next().is_some() || h > 23 || mi > 59 || se > 60 {
        return None;
    }
    if frac.len() > 9 || !frac.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let frac_ns: i128 = if frac.is_empty() {
        0
    } else {
        frac.parse::<i128>().ok()? * 10i128.pow(9 - frac.len() as u32)
    };
    // Days from civil (Howard Hinnant's algorithm).
    let y2 = if mo <= 2 { y - 1 } else { y };
    let era = y2.div_euclid(400);
    let yoe = y2 - era * 400;
    let mp = (mo + 9) % 12;
    let doy = (153 * mp + 2) / 5 + da - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    let secs = days * 86_400 + h * 3600 + mi * 60 + se;
    Some(secs as i128 * 1_000_000_000 + frac_ns)
}

impl Iterator for AzureReader {
    type Item = Result<RawRequest>;

    fn next(&mut self) -> Option<Self::Item> {
        let rec = self.rows.next()?;
        self.row += 1;
        let at = at_row(&self.path, self.row);
        let rec = match rec {
            Ok(r) => r,
            Err(e) => return Some(Err(Error::input(format!("{at}: malformed CSV row: {e}")))),
        };
        if rec.len() < 3 {
            return Some(Err(Error::input(format!(
                "{at}: expected 3 columns, found {}",
                rec.len()
            ))));
        }
        let Some(t) = parse_datetime_ns(&rec[0]) else {
            return Some(Err(Error::input(format!(
                "{at}: TIMESTAMP `{}` is not `YYYY-MM-DD HH:MM:SS.fffffff`",
                &rec[0]
            ))));
        };
        let num = |i: usize, name: &str| -> Result<u32> {
            rec[i].trim().parse::<u32>().map_err(|_| {
                Error::input(format!(
                    "{at}: {name} `{}` is not a non-negative integer",
                    &rec[i]
                ))
            })
        };
        let input = match num(1, "ContextTokens") {
            Ok(v) => v,
            Err(e) => return Some(Err(e)),
        };
        let output = match num(2, "GeneratedTokens") {
            Ok(v) => v,
            Err(e) => return Some(Err(e)),
        };
        let first = *self.first_ns.get_or_insert(t);
        Some(Ok(RawRequest {
            arrival_ns: (t - first).max(0) as u64,
            input_tokens: input,
            output_tokens: output,
            session: None,
            segments: Vec::new(),
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn datetime_known_values() {
        assert_eq!(
            parse_datetime_ns("1970-01-01 00:00:01"),
            Some(1_000_000_000)
        );
        let a = parse_datetime_ns("2023-11-16 18:15:46.6805900").unwrap();
        let b = parse_datetime_ns("2023-11-16 18:15:50.9951690").unwrap();
        assert_eq!(b - a, 4_314_579_000);
        // 2023-11-16 is day 19677 since the epoch.
        assert_eq!(a / 1_000_000_000, 19677 * 86400 + 18 * 3600 + 15 * 60 + 46);
        assert!(parse_datetime_ns("2023-13-01 00:00:00").is_none());
        assert!(parse_datetime_ns("yesterday").is_none());
    }
}
