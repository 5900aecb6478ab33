//! libCacheSim's csv trace reader (`cachesim TRACE csv ... -t "time-col=1, obj-id-col=2,
//! obj-size-col=3, delimiter=,, has-header=true"`): 1-based columns, the delimiter and
//! the header row given or detected from the first line as libCacheSim detects them,
//! object ids as text or (with `obj-id-is-num`) as numbers.

use super::labels::{str_label, Label};
use super::readers::{
    csv_reader, finite_number, next_record, not_unit_size, object_size, open, record_at, Pages,
};
use super::Trace;
use crate::error::{Error, Result};
use std::io::Read;
use std::path::Path;

/// The settings of libCacheSim's csv reader (its `-t` / `--trace-type-params` string).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LcsCsvParams {
    /// Column of the request time (1-based), checked to be a number; `None`: not read.
    pub time_col: Option<usize>,
    /// Column of the object id (1-based).
    pub obj_id_col: usize,
    /// Column of the object size (1-based); `None`: every object is one page.
    pub obj_size_col: Option<usize>,
    /// Object ids are integers (decimal, `0x` hexadecimal or `0` octal, as C's `strtoull`
    /// reads them), so `10` and `0xa` are one object; otherwise ids are text.
    pub obj_id_is_num: bool,
    /// Whether the first row is a header; `None`: detected as libCacheSim does.
    pub has_header: Option<bool>,
    /// Field delimiter; `None`: detected as libCacheSim does.
    pub delimiter: Option<u8>,
}

impl Default for LcsCsvParams {
    /// The common `time,obj_id,obj_size` layout, delimiter and header detected.
    fn default() -> Self {
        LcsCsvParams {
            time_col: Some(1),
            obj_id_col: 2,
            obj_size_col: Some(3),
            obj_id_is_num: false,
            has_header: None,
            delimiter: None,
        }
    }
}

/// An error in the `--trace-type-params` string.
fn bad(msg: String) -> Error {
    Error::input(format!("--trace-type-params: {msg}"))
}

/// A column number: 0 means "not read", as in libCacheSim.
fn column(key: &str, v: &str) -> Result<Option<usize>> {
    let n: usize = v
        .parse()
        .map_err(|_| bad(format!("{key}={v}: not a column number")))?;
    Ok((n > 0).then_some(n))
}

/// libCacheSim's booleans: true/1/yes/y and false/0/no/n, any case.
fn boolean(key: &str, v: &str) -> Result<bool> {
    match v.to_ascii_lowercase().as_str() {
        "true" | "1" | "yes" | "y" => Ok(true),
        "false" | "0" | "no" | "n" => Ok(false),
        _ => Err(bad(format!("{key}={v}: expected true or false"))),
    }
}

/// The delimiter at the start of `v` and the rest: `\t` is a tab, `\,` or nothing a comma.
fn delimiter(v: &str) -> Result<(u8, &str)> {
    if let Some(rest) = v.strip_prefix("\\t") {
        return Ok((b'\t', rest));
    }
    if let Some(rest) = v.strip_prefix("\\,") {
        return Ok((b',', rest));
    }
    match v.chars().next() {
        None => Ok((b',', v)),
        Some(c) if c.is_ascii() && c != '\\' && c != '"' && c != '\n' => Ok((c as u8, &v[1..])),
        Some(_) => Err(bad(format!("delimiter `{v}` is not supported"))),
    }
}

impl LcsCsvParams {
    /// Parse libCacheSim's parameter string: `key=value` pairs separated by commas or
    /// semicolons (`_` and `-` alike in keys, any case). Only the columns it names are
    /// read; `obj-id-col` is required.
    pub fn parse(s: &str) -> Result<LcsCsvParams> {
        let mut p = LcsCsvParams {
            time_col: None,
            obj_id_col: 0,
            obj_size_col: None,
            obj_id_is_num: false,
            has_header: None,
            delimiter: None,
        };
        let sep = |c: char| c == ',' || c == ';' || c.is_whitespace();
        let mut rest = s.trim_start_matches(sep);
        while !rest.is_empty() {
            let (key, after) = rest
                .split_once('=')
                .ok_or_else(|| bad(format!("`{rest}` is not key=value")))?;
            let key = key.trim().to_ascii_lowercase().replace('_', "-");
            if key == "delimiter" {
                let (d, after) = delimiter(after)?;
                p.delimiter = Some(d);
                rest = after.trim_start_matches(sep);
                continue;
            }
            let end = after.find([',', ';']).unwrap_or(after.len());
            let v = after[..end].trim();
            rest = after[end..].trim_start_matches(sep);
            match key.as_str() {
                "time-col" | "time-field" => p.time_col = column(&key, v)?,
                "obj-id-col" | "obj-id-field" => p.obj_id_col = column(&key, v)?.unwrap_or(0),
                "obj-size-col" | "obj-size-field" | "size-col" | "size-field" => {
                    p.obj_size_col = column(&key, v)?
                }
                "obj-id-is-num" => p.obj_id_is_num = boolean(&key, v)?,
                "header" | "has-header" => p.has_header = Some(boolean(&key, v)?),
                "cnt-col" | "cnt-field" | "next-access-col" | "next-access-field" | "format" => {
                    return Err(bad(format!("{key} is not supported by kvsim")))
                }
                _ => return Err(bad(format!("unknown parameter `{key}`"))),
            }
        }
        if p.obj_id_col == 0 {
            return Err(bad("obj-id-col is required (1 for the first column)".into()));
        }
        Ok(p)
    }
}

/// The first line of `path`, at most 1023 bytes of it (what libCacheSim looks at).
fn first_line(path: &Path) -> Result<Vec<u8>> {
    let mut head = Vec::with_capacity(1023);
    open(path)?
        .take(1023)
        .read_to_end(&mut head)
        .map_err(|e| Error::input(format!("{}:1: cannot read: {e}", path.display())))?;
    if let Some(nl) = head.iter().position(|&b| b == b'\n') {
        head.truncate(nl + 1);
    }
    Ok(head)
}

/// libCacheSim's delimiter detection: the most frequent of tab, comma, `|` and `:` in the
/// first line, weighted 4, 3, 2, 1 (a comma when none occurs).
pub fn detect_delimiter(line: &[u8]) -> u8 {
    let mut best = (0, b',');
    for (w, d) in [(4, b'\t'), (3, b','), (2, b'|'), (1, b':')] {
        let n = w * line.iter().filter(|&&b| b == d).count();
        if n > best.0 {
            best = (n, d);
        }
    }
    best.1
}

/// libCacheSim's header detection: the first line is data when it has more digits than
/// ASCII letters, a header otherwise.
pub fn detect_header(line: &[u8]) -> bool {
    let digits = line.iter().filter(|b| b.is_ascii_digit()).count();
    let letters = line.iter().filter(|b| b.is_ascii_alphabetic()).count();
    digits <= letters
}

/// An integer as C's `strtoull(s, NULL, 0)` reads a whole field: `0x` hexadecimal, `0`
/// octal, decimal otherwise.
fn c_integer(s: &str) -> Option<u64> {
    if let Some(h) = s.strip_prefix("0x").or_else(|| s.strip_prefix("0X")) {
        return u64::from_str_radix(h, 16)
            .ok()
            .filter(|_| !h.starts_with('+'));
    }
    if s.len() > 1 && s.starts_with('0') {
        return u64::from_str_radix(&s[1..], 8)
            .ok()
            .filter(|_| !s[1..].starts_with('+'));
    }
    s.parse::<u64>().ok().filter(|_| !s.starts_with('+'))
}

/// Read a csv trace as libCacheSim's csv reader with `p` does.
pub fn read(path: &Path, p: &LcsCsvParams, ignore_obj_size: bool) -> Result<Trace> {
    let head = if p.delimiter.is_none() || p.has_header.is_none() {
        first_line(path)?
    } else {
        Vec::new()
    };
    let delim = p.delimiter.unwrap_or_else(|| detect_delimiter(&head));
    let header = p.has_header.unwrap_or_else(|| detect_header(&head));
    let mut rdr = csv_reader(path, delim)?;
    let mut pages =
        Pages::with_capacity(open(path).map_or(0, |f| super::readers::file_len(&f) / 16));
    let mut rec = csv::StringRecord::new();
    let mut i = 0u64;
    while next_record(&mut rdr, &mut rec, path, i)? {
        let idx = i;
        i += 1;
        if idx == 0 && header {
            continue;
        }
        let at = || record_at(path, idx);
        let field = |name: &str, col: usize| {
            rec.get(col - 1).map(str::trim).ok_or_else(|| {
                Error::input(format!("{}: {} columns, {name} is {col}", at(), rec.len()))
            })
        };
        if let Some(c) = p.time_col {
            let t = field("time-col", c)?;
            if !finite_number(t) {
                return Err(Error::input(format!(
                    "{}: time `{t}` is not a finite number",
                    at()
                )));
            }
        }
        if let Some(c) = p.obj_size_col {
            let s = field("obj-size-col", c)?;
            if s != "1" {
                let size = object_size(s, &at)?;
                if !ignore_obj_size {
                    return Err(not_unit_size(&at(), size));
                }
                if size == 0 {
                    continue;
                }
            }
        }
        let id = field("obj-id-col", p.obj_id_col)?;
        let label = if p.obj_id_is_num {
            Label::Int(c_integer(id).ok_or_else(|| {
                Error::input(format!(
                    "{}: object id `{id}` is not a number (obj-id-is-num=true)",
                    at()
                ))
            })?)
        } else {
            str_label(id)
        };
        pages.push(label, at)?;
    }
    Ok(pages.finish(path))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_libcachesim_parameter_strings() {
        let p = LcsCsvParams::parse(
            "time-col=2, obj-id-col=5, obj-size-col=4, delimiter=,, has-header=true",
        )
        .unwrap();
        assert_eq!(
            p,
            LcsCsvParams {
                time_col: Some(2),
                obj_id_col: 5,
                obj_size_col: Some(4),
                obj_id_is_num: false,
                has_header: Some(true),
                delimiter: Some(b','),
            }
        );
        let p = LcsCsvParams::parse("obj_id_col=1;delimiter=\\t;obj-id-is-num=1").unwrap();
        assert_eq!(
            (p.obj_id_col, p.delimiter, p.obj_id_is_num),
            (1, Some(b'\t'), true)
        );
        assert_eq!(p.time_col, None);
        let p = LcsCsvParams::parse("delimiter=;,obj-id-col=1").unwrap();
        assert_eq!(p.delimiter, Some(b';'));
        let p = LcsCsvParams::parse("obj-id-col=1,delimiter=").unwrap();
        assert_eq!(p.delimiter, Some(b','));
        for (s, msg) in [
            (
                "time-col=1",
                "obj-id-col is required (1 for the first column)",
            ),
            ("obj-id-col=x", "obj-id-col=x: not a column number"),
            (
                "obj-id-col=1,header=maybe",
                "header=maybe: expected true or false",
            ),
            (
                "obj-id-col=1,cnt-col=3",
                "cnt-col is not supported by kvsim",
            ),
            ("obj-id-col=1,colour=3", "unknown parameter `colour`"),
            ("obj-id-col", "`obj-id-col` is not key=value"),
        ] {
            let e = LcsCsvParams::parse(s).unwrap_err().to_string();
            assert_eq!(e, format!("--trace-type-params: {msg}"), "{s}");
        }
    }

    #[test]
    fn detects_delimiters_and_headers_as_libcachesim() {
        assert_eq!(detect_delimiter(b"1,2,3\n"), b',');
        assert_eq!(detect_delimiter(b"1\t2\t3\n"), b'\t');
        // Weighted: two colons (2) lose to one comma (3).
        assert_eq!(detect_delimiter(b"00:00:01,7\n"), b',');
        assert_eq!(detect_delimiter(b"a|b|c|d\n"), b'|');
        assert!(detect_header(b"time,obj_id,obj_size\n"));
        assert!(!detect_header(b"12,345,1\n"));
        // Hex ids with more letters than digits read as a header, as in libCacheSim.
        assert!(detect_header(b"1,abcdef,1\n"));
        assert!(!detect_header(b"1,abc123,1\n"));
    }

    #[test]
    fn c_integers() {
        assert_eq!(c_integer("10"), Some(10));
        assert_eq!(c_integer("0xa"), Some(10));
        assert_eq!(c_integer("012"), Some(10));
        assert_eq!(c_integer("0"), Some(0));
        assert_eq!(c_integer("+1"), None);
        assert_eq!(c_integer("1x"), None);
        assert_eq!(c_integer("09"), None);
    }
}
