//! JSON-lines input read one bounded line at a time, with its row number for messages.

use super::{at_row, open_file};
use crate::error::{Error, Result};
use std::io::{BufRead, Read};
use std::path::{Path, PathBuf};

/// Longest line accepted, bytes (64 MiB: a 2^24-token prompt's 16-token block ids take
/// about 10 MiB of JSON). A longer line is refused instead of being read into memory.
pub const MAX_LINE_BYTES: u64 = 64 << 20;

/// A JSON-lines file read line by line into one reused buffer.
pub struct Lines {
    path: PathBuf,
    reader: std::io::BufReader<std::fs::File>,
    row: u64,
    buf: Vec<u8>,
}

impl Lines {
    /// Open a file.
    pub fn open(path: &Path) -> Result<Self> {
        Ok(Lines {
            path: path.to_path_buf(),
            reader: open_file(path)?,
            row: 0,
            buf: Vec::new(),
        })
    }

    /// The file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The next line that is not blank, with its row (1-based line number); `None` at the
    /// end of the file.
    pub fn next_line(&mut self) -> Option<Result<(u64, &str)>> {
        loop {
            self.row += 1;
            self.buf.clear();
            let read = (&mut self.reader)
                .take(MAX_LINE_BYTES + 1)
                .read_until(b'\n', &mut self.buf);
            let at = at_row(&self.path, self.row);
            match read {
                Ok(0) => return None,
                Ok(_) => {}
                Err(e) => return Some(Err(Error::input(format!("{at}: cannot read: {e}")))),
            }
            if self.buf.len() as u64 > MAX_LINE_BYTES {
                return Some(Err(Error::input(format!(
                    "{at}: line longer than {MAX_LINE_BYTES} bytes"
                ))));
            }
            let blank = match std::str::from_utf8(&self.buf) {
                Ok(l) => l.trim().is_empty(),
                Err(e) => return Some(Err(Error::input(format!("{at}: not UTF-8: {e}")))),
            };
            if blank {
                continue;
            }
            // Checked above; converted again so that the borrow ends before the loop goes on.
            let line = std::str::from_utf8(&self.buf).unwrap_or_default();
            return Some(Ok((self.row, line)));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn skips_blank_lines_and_counts_rows() {
        let p = std::env::temp_dir().join(format!("kvsim-lines-{}.jsonl", std::process::id()));
        std::fs::write(&p, "{\"a\":1}\n\n  \n{\"a\":2}").unwrap();
        let mut l = Lines::open(&p).unwrap();
        let (r, s) = l.next_line().unwrap().unwrap();
        assert_eq!((r, s.trim()), (1, "{\"a\":1}"));
        let (r, s) = l.next_line().unwrap().unwrap();
        assert_eq!((r, s), (4, "{\"a\":2}"));
        assert!(l.next_line().is_none());
        std::fs::remove_file(p).unwrap();
    }
}
