//! Azure LLM inference trace CSV: `TIMESTAMP,ContextTokens,GeneratedTokens`, with
//! timestamps like `2023-11-16 18:15:46.6805900` (2023: 7 fractional digits, no zone) or
//! `2024-05-10 00:00:00.009930+00:00` (2024: 6 digits and a UTC offset). No prefix content:
//! every prompt is unique. Times are relative to the earliest of the first rows
//! ([`super::clock`]); a later row earlier than that is an error naming it.

use super::check::request_tokens;
use super::clock::{EarliestZero, Timed};
use super::{at_row, open_file, RawRequest};
use crate::error::{Error, Result};
use std::path::{Path, PathBuf};

/// The rows of an Azure trace with their absolute (UTC) times.
pub struct AzureRows {
    path: PathBuf,
    rows: csv::StringRecordsIntoIter<std::io::BufReader<std::fs::File>>,
    row: u64,
}

/// A streaming Azure reader: its rows, timed from the first arrival.
pub type AzureReader = EarliestZero<AzureRows>;

/// Open an Azure trace.
pub fn open(path: &Path) -> Result<AzureReader> {
    Ok(EarliestZero::new(
        AzureRows::open(path)?,
        path.to_path_buf(),
    ))
}

impl AzureRows {
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
        Ok(AzureRows {
            path: path.to_path_buf(),
            rows: rdr.into_records(),
            row: 1,
        })
    }
}

/// Parse `YYYY-MM-DD HH:MM:SS[.f{1,9}][zone]` into nanoseconds since 1970 UTC. The zone is
/// `Z`, `+HH:MM`, `-HH:MM`, `+HHMM` or `+HH`; without one the time is taken as UTC (the 2023
/// trace's dates carry none).
pub fn parse_datetime_ns(s: &str) -> Option<i128> {
    let s = s.trim();
    let (date, time) = s.split_once([' ', 'T'])?;
    let (time, offset_s) = split_zone(time)?;
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
    let secs = days * 86_400 + h * 3600 + mi * 60 + se - offset_s;
    Some(secs as i128 * 1_000_000_000 + frac_ns)
}

/// Split a time of day from its zone suffix; returns the time and the zone's offset from UTC
/// in seconds (0 without a zone).
fn split_zone(time: &str) -> Option<(&str, i64)> {
    if let Some(t) = time.strip_suffix(['Z', 'z']) {
        return Some((t, 0));
    }
    let Some(i) = time.find(['+', '-']) else {
        return Some((time, 0));
    };
    let (t, zone) = time.split_at(i);
    let sign = if zone.starts_with('-') { -1 } else { 1 };
    let digits: String = zone[1..].chars().filter(|c| *c != ':').collect();
    if !(digits.len() == 2 || digits.len() == 4) || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let hh: i64 = digits[..2].parse().ok()?;
    let mm: i64 = if digits.len() == 4 {
        digits[2..].parse().ok()?
    } else {
        0
    };
    if hh > 23 || mm > 59 {
        return None;
    }
    Some((t, sign * (hh * 3600 + mm * 60)))
}

impl Iterator for AzureRows {
    type Item = Result<Timed>;

    fn next(&mut self) -> Option<Self::Item> {
        let rec = self.rows.next()?;
        self.row += 1;
        Some(self.parse(rec))
    }
}

impl AzureRows {
    fn parse(&self, rec: csv::Result<csv::StringRecord>) -> Result<Timed> {
        let at = at_row(&self.path, self.row);
        let rec = rec.map_err(|e| Error::input(format!("{at}: malformed CSV row: {e}")))?;
        if rec.len() < 3 {
            return Err(Error::input(format!(
                "{at}: expected 3 columns, found {}",
                rec.len()
            )));
        }
        let t = parse_datetime_ns(&rec[0]).ok_or_else(|| {
            Error::input(format!(
                "{at}: TIMESTAMP `{}` is not `YYYY-MM-DD HH:MM:SS[.fffffff][+HH:MM]`",
                &rec[0]
            ))
        })?;
        let num = |i: usize, name: &str| -> Result<u32> {
            rec[i].trim().parse::<u32>().map_err(|_| {
                Error::input(format!(
                    "{at}: {name} `{}` is not a non-negative integer",
                    &rec[i]
                ))
            })
        };
        let input = num(1, "ContextTokens")?;
        let output = num(2, "GeneratedTokens")?;
        request_tokens(&at, input as u64, output as u64)?;
        Ok(Timed {
            row: self.row,
            t_ns: t,
            req: RawRequest {
                arrival_ns: 0,
                input_tokens: input,
                output_tokens: output,
                session: None,
                segments: Vec::new(),
            },
        })
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
        // Azure 2024: six digits and a UTC offset.
        let c = parse_datetime_ns("2024-05-10 00:00:00.009930+00:00").unwrap();
        // 2024-05-10 is day 19853 since the epoch.
        assert_eq!(c, 19853 * 86400 * 1_000_000_000 + 9_930_000);
        let d = parse_datetime_ns("2024-05-10 02:00:00.009930+02:00").unwrap();
        assert_eq!(c, d);
        assert_eq!(
            parse_datetime_ns("2024-05-10T00:00:01Z").unwrap(),
            19853 * 86400 * 1_000_000_000 + 1_000_000_000
        );
        assert_eq!(
            parse_datetime_ns("2024-05-09 19:00:00-0500"),
            parse_datetime_ns("2024-05-10 00:00:00")
        );
        assert!(parse_datetime_ns("2024-05-10 00:00:00+25:00").is_none());
        assert!(parse_datetime_ns("2024-05-10 00:00:00+0").is_none());
        assert!(parse_datetime_ns("yesterday").is_none());
    }
}
