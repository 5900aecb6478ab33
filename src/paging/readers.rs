//! Readers of page traces for `kvsim paging`: one label per line (also libCacheSim's `txt`),
//! CSV `time,obj_id[,size]`, libCacheSim's csv reader with its column settings, and
//! libCacheSim's `oracleGeneral` binary records. Files are read in large chunks, integer
//! labels are parsed from the bytes, and labels get dense ids in the same pass
//! ([`super::labels`]): nothing is allocated per line. Errors name the file and the line
//! (or record).

use super::labels::{line_label, str_label, Label, Renumber, MAX_PAGES};
use super::Trace;
use crate::error::{Error, Result};
use std::io::Read;
use std::path::Path;

pub use super::lcs_csv::LcsCsvParams;

/// Bytes read at a time.
const CHUNK: usize = 1 << 20;
/// Bytes of one oracleGeneral record: clock time u32, object id u64, object size u32,
/// next access vtime i64, packed little-endian.
pub const ORACLE_GENERAL_RECORD: usize = 24;

/// A page-trace format.
#[derive(Debug, Clone, PartialEq)]
pub enum PageFormat {
    /// One label per line; blank lines skipped.
    Text,
    /// `time,obj_id[,size]`, a header row allowed.
    Csv,
    /// libCacheSim's csv reader: columns, delimiter and header as its `-t` parameters say.
    LibCacheSimCsv(LcsCsvParams),
    /// libCacheSim's oracleGeneral binary records.
    OracleGeneral,
}

/// Read a page trace. With `ignore_obj_size`, formats with object sizes count every
/// object as one page and skip requests of size 0 (libCacheSim's `--ignore-obj-size`);
/// without it, a size other than 1 is an error.
pub fn read_pages(path: &Path, format: &PageFormat, ignore_obj_size: bool) -> Result<Trace> {
    match format {
        PageFormat::Text => read_text(path),
        PageFormat::Csv => read_csv(path, ignore_obj_size),
        PageFormat::LibCacheSimCsv(p) => super::lcs_csv::read(path, p, ignore_obj_size),
        PageFormat::OracleGeneral => read_oracle_general(path, ignore_obj_size),
    }
}

/// Requests with dense ids, as they are read.
pub(crate) struct Pages {
    ids: Renumber,
    pages: Vec<u32>,
}

impl Pages {
    /// Room for about `capacity` requests.
    pub(crate) fn with_capacity(capacity: usize) -> Self {
        Pages {
            ids: Renumber::new(),
            pages: Vec::with_capacity(capacity.min(1 << 27)),
        }
    }

    /// Append a request of `label`; `at` names the place for the error past
    /// [`MAX_PAGES`] distinct pages.
    #[inline]
    pub(crate) fn push(&mut self, label: Label<'_>, at: impl FnOnce() -> String) -> Result<()> {
        match self.ids.id(label) {
            Some(id) => {
                self.pages.push(id);
                Ok(())
            }
            None => Err(Error::input(format!(
                "{}: more than {MAX_PAGES} distinct pages",
                at()
            ))),
        }
    }

    /// Append requests of the integer labels `vals`; `at(j)` names the place of the `j`-th
    /// for the error past [`MAX_PAGES`] distinct pages. The ids are looked up after a pass
    /// that only reads them, so that their cache misses overlap.
    #[inline]
    pub(crate) fn push_ints(&mut self, vals: &[u64], at: impl Fn(usize) -> String) -> Result<()> {
        self.ids.touch(vals);
        for (j, &v) in vals.iter().enumerate() {
            self.push(Label::Int(v), || at(j))?;
        }
        Ok(())
    }

    /// The trace, named after `path`.
    pub(crate) fn finish(self, path: &Path) -> Trace {
        Trace::from_dense(&path.display().to_string(), self.pages, self.ids.len())
    }
}

/// Open `path` for reading.
pub(crate) fn open(path: &Path) -> Result<std::fs::File> {
    std::fs::File::open(path)
        .map_err(|e| Error::input(format!("cannot open {}: {e}", path.display())))
}

/// The file's length, or 0 when unknown.
pub(crate) fn file_len(f: &std::fs::File) -> usize {
    f.metadata()
        .map_or(0, |m| m.len().min(usize::MAX as u64) as usize)
}

/// Read into `buf`, retrying interrupted reads; 0 at the end of the file.
fn read_some(f: &mut impl Read, buf: &mut [u8]) -> std::io::Result<usize> {
    loop {
        match f.read(buf) {
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            r => return r,
        }
    }
}

/// Read one page label per line: trimmed, blank lines skipped, every distinct label a
/// page (`7` and `007` are two pages). The file is read in chunks of [`CHUNK`] bytes into
/// one buffer.
pub fn read_text(path: &Path) -> Result<Trace> {
    let mut file = open(path)?;
    let mut pages = Pages::with_capacity(file_len(&file) / 8);
    let mut buf = vec![0u8; CHUNK];
    let (mut start, mut end, mut line) = (0usize, 0usize, 0u64);
    loop {
        crate::interrupt::check()?;
        // Keep the unfinished line; grow the buffer for a line longer than it.
        buf.copy_within(start..end, 0);
        end -= start;
        if end == buf.len() {
            buf.resize(2 * buf.len(), 0);
        }
        let n = read_some(&mut file, &mut buf[end..]).map_err(|e| {
            Error::input(format!("{}:{}: cannot read: {e}", path.display(), line + 1))
        })?;
        if n == 0 {
            if end > 0 {
                text_line(&mut pages, path, line + 1, &buf[..end])?;
            }
            return Ok(pages.finish(path));
        }
        end += n;
        start = text_lines(&mut pages, path, &mut line, &buf[..end])?;
    }
}

/// Integer labels parsed before their ids are looked up together (see
/// [`Pages::push_ints`]).
const BATCH: usize = 64;

/// Take the complete lines of `buf`, counting them in `line`; returns where the
/// unfinished last line starts. Lines of a canonical integer of up to 19 digits are parsed
/// as they are scanned and looked up in batches; the others go to [`text_line`].
#[inline]
fn text_lines(pages: &mut Pages, path: &Path, line: &mut u64, buf: &[u8]) -> Result<usize> {
    let mut start = 0;
    let mut batch = [0u64; BATCH];
    let mut n = 0;
    // Line numbers of the batch: *line - n + 1 ..= *line.
    let flush = |pages: &mut Pages, batch: &[u64], line: u64| {
        let first = line + 1 - batch.len() as u64;
        pages.push_ints(batch, |j| {
            format!("{}:{}", path.display(), first + j as u64)
        })
    };
    loop {
        let rest = &buf[start..];
        let (mut v, mut i) = (0u64, 0usize);
        while i < rest.len().min(19) {
            let d = rest[i].wrapping_sub(b'0');
            if d > 9 {
                break;
            }
            v = 10 * v + d as u64;
            i += 1;
        }
        if i > 0 && rest.get(i) == Some(&b'\n') && (rest[0] != b'0' || i == 1) {
            *line += 1;
            batch[n] = v;
            n += 1;
            if n == BATCH {
                flush(pages, &batch, *line)?;
                n = 0;
            }
            start += i + 1;
            continue;
        }
        flush(pages, &batch[..n], *line)?;
        n = 0;
        let Some(nl) = memchr::memchr(b'\n', &rest[i..]) else {
            return Ok(start);
        };
        *line += 1;
        text_line(pages, path, *line, &rest[..i + nl])?;
        start += i + nl + 1;
    }
}

/// One line of a text trace (without its `\n`), the `n`-th.
fn text_line(pages: &mut Pages, path: &Path, n: u64, line: &[u8]) -> Result<()> {
    let label = line_label(line).map_err(|_| {
        Error::input(format!(
            "{}:{n}: cannot read: stream did not contain valid UTF-8",
            path.display()
        ))
    })?;
    match label {
        Some(l) => pages.push(l, || format!("{}:{n}", path.display())),
        None => Ok(()),
    }
}

/// True when `s` parses as a finite `f64` (digit strings without parsing).
pub(crate) fn finite_number(s: &str) -> bool {
    let b = s.as_bytes();
    if !b.is_empty() && b.len() <= 300 && b.iter().all(u8::is_ascii_digit) {
        return true;
    }
    s.parse::<f64>().is_ok_and(f64::is_finite)
}

/// A CSV reader of `path` without headers, rows of any length, fields split at `delim`.
pub(crate) fn csv_reader(path: &Path, delim: u8) -> Result<csv::Reader<std::fs::File>> {
    Ok(csv::ReaderBuilder::new()
        .has_headers(false)
        .flexible(true)
        .delimiter(delim)
        .buffer_capacity(CHUNK)
        .from_reader(open(path)?))
}

/// Read the next CSV record into `rec`; false at the end. `i` counts the records before.
pub(crate) fn next_record(
    rdr: &mut csv::Reader<std::fs::File>,
    rec: &mut csv::StringRecord,
    path: &Path,
    i: u64,
) -> Result<bool> {
    rdr.read_record(rec).map_err(|e| {
        Error::input(format!(
            "{}:{}: malformed CSV row: {e}",
            path.display(),
            i + 1
        ))
    })
}

/// `path:n` of the `i`-th record (from 0): errors of CSV traces name the record, from 1,
/// which is the line when the file has no blank lines (the CSV reader skips them) and no
/// quoted line breaks.
pub(crate) fn record_at(path: &Path, i: u64) -> String {
    format!("{}:{}", path.display(), i + 1)
}

/// Read CSV `time,obj_id[,size]`: a first row whose time is not a number is a header;
/// every time must be a finite number; sizes must be 1 (unit pages), or with
/// `ignore_obj_size` any non-negative integer (rows of size 0 skipped).
pub fn read_csv(path: &Path, ignore_obj_size: bool) -> Result<Trace> {
    let mut rdr = csv_reader(path, b',')?;
    let cap = open(path).map_or(0, |f| file_len(&f) / 16);
    let mut pages = Pages::with_capacity(cap);
    let mut rec = csv::StringRecord::new();
    let mut i = 0u64;
    while next_record(&mut rdr, &mut rec, path, i)? {
        let idx = i;
        i += 1;
        let at = || record_at(path, idx);
        if rec.len() < 2 || rec.len() > 3 {
            return Err(Error::input(format!(
                "{}: expected time,obj_id[,size], found {} columns",
                at(),
                rec.len()
            )));
        }
        if idx == 0 && rec[0].trim().parse::<f64>().is_err() {
            continue; // header
        }
        if !finite_number(rec[0].trim()) {
            return Err(Error::input(format!(
                "{}: time `{}` is not a finite number",
                at(),
                &rec[0]
            )));
        }
        if rec.len() == 3 && rec[2].trim() != "1" {
            if !ignore_obj_size {
                return Err(Error::input(format!(
                    "{}: size {} is not 1; only unit-size pages are supported",
                    at(),
                    &rec[2]
                )));
            }
            if object_size(rec[2].trim(), &at)? == 0 {
                continue;
            }
        }
        pages.push(str_label(rec[1].trim()), at)?;
    }
    Ok(pages.finish(path))
}

/// An object size of a text trace, a non-negative decimal integer.
pub(crate) fn object_size(s: &str, at: &impl Fn() -> String) -> Result<u64> {
    s.parse::<u64>().map_err(|_| {
        Error::input(format!(
            "{}: object size `{s}` is not a non-negative integer",
            at()
        ))
    })
}

/// The error for an object size other than 1 without `--ignore-obj-size`.
pub(crate) fn not_unit_size(at: &str, size: u64) -> Error {
    Error::input(format!(
        "{at}: object size {size} is not 1; only unit-size pages are supported \
         (--ignore-obj-size counts every object as one page, as libCacheSim's option does)"
    ))
}

/// Read libCacheSim's oracleGeneral binary trace: packed little-endian records of clock
/// time u32, object id u64, object size u32 and next access vtime i64 (24 bytes). Times
/// and next access vtimes are not used (next uses are recomputed from the sequence). A
/// file that is not a whole number of records is an error naming its last record.
pub fn read_oracle_general(path: &Path, ignore_obj_size: bool) -> Result<Trace> {
    const R: usize = ORACLE_GENERAL_RECORD;
    let mut file = open(path)?;
    let mut pages = Pages::with_capacity(file_len(&file) / R);
    let mut buf = vec![0u8; R * (CHUNK / R)];
    let (mut have, mut record) = (0usize, 0u64);
    let at = |record: u64| format!("{}: record {record}", path.display());
    loop {
        crate::interrupt::check()?;
        let n = read_some(&mut file, &mut buf[have..])
            .map_err(|e| Error::input(format!("{}: cannot read: {e}", at(record + 1))))?;
        if n == 0 {
            if have > 0 {
                return Err(Error::input(format!(
                    "{}: truncated: {have} of {R} bytes (the file is not a whole number of \
                     oracleGeneral records)",
                    at(record + 1)
                )));
            }
            return Ok(pages.finish(path));
        }
        have += n;
        let (records, _) = buf[..have].as_chunks::<R>();
        for r in records {
            record += 1;
            let id = u64::from_le_bytes([r[4], r[5], r[6], r[7], r[8], r[9], r[10], r[11]]);
            let size = u32::from_le_bytes([r[12], r[13], r[14], r[15]]);
            if size != 1 {
                if !ignore_obj_size {
                    return Err(not_unit_size(&at(record), size as u64));
                }
                if size == 0 {
                    continue;
                }
            }
            pages.push(Label::Int(id), || at(record))?;
        }
        let whole = records.len() * R;
        buf.copy_within(whole..have, 0);
        have -= whole;
    }
}
