//! The elements of one big JSON document read one at a time: a top-level array
//! (`[{...}, {...}]`, as ShareGPT ships) or JSON lines (one value per line). Each element is
//! deserialized on its own from the buffered file, so memory holds one element (at most
//! [`MAX_ELEMENT_BYTES`] of JSON), never the document.

use super::open_file;
use crate::error::{Error, Result};
use serde::de::DeserializeOwned;
use std::io::{BufRead, Read};
use std::path::{Path, PathBuf};

/// Largest element accepted, bytes of JSON (64 MiB; ShareGPT's longest conversation is well
/// under 1 MiB). A larger one is refused instead of being read into memory.
pub const MAX_ELEMENT_BYTES: u64 = 64 << 20;

/// Where an element starts: its number (from 1) and the line of the file it starts on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Place {
    /// Element number, from 1.
    pub index: u64,
    /// Line of the file where it starts, from 1.
    pub line: u64,
}

/// A reader that counts lines and refuses to give more than a budget of bytes.
struct Counted<R> {
    inner: R,
    newlines: u64,
    budget: u64,
}

impl<R: BufRead> Read for Counted<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let avail = self.fill_buf()?;
        let n = avail.len().min(buf.len());
        buf[..n].copy_from_slice(&avail[..n]);
        self.consume(n);
        Ok(n)
    }
}

impl<R: BufRead> BufRead for Counted<R> {
    fn fill_buf(&mut self) -> std::io::Result<&[u8]> {
        if self.budget == 0 {
            return Err(std::io::Error::other(format!(
                "element longer than {MAX_ELEMENT_BYTES} bytes"
            )));
        }
        let budget = self.budget.min(usize::MAX as u64) as usize;
        let buf = self.inner.fill_buf()?;
        Ok(&buf[..buf.len().min(budget)])
    }

    fn consume(&mut self, n: usize) {
        if let Ok(buf) = self.inner.fill_buf() {
            let n = n.min(buf.len());
            self.newlines += buf[..n].iter().filter(|&&b| b == b'\n').count() as u64;
        }
        self.budget = self.budget.saturating_sub(n as u64);
        self.inner.consume(n);
    }
}

/// The elements of a JSON array or of JSON lines, one at a time.
pub struct JsonElements {
    path: PathBuf,
    reader: Counted<std::io::BufReader<std::fs::File>>,
    array: bool,
    index: u64,
    done: bool,
}

impl JsonElements {
    /// Open a file: an array if its first non-blank byte is `[`, else JSON lines.
    pub fn open(path: &Path) -> Result<Self> {
        let mut s = JsonElements {
            path: path.to_path_buf(),
            reader: Counted {
                inner: open_file(path)?,
                newlines: 0,
                budget: u64::MAX,
            },
            array: false,
            index: 0,
            done: false,
        };
        if s.peek()? == Some(b'[') {
            s.reader.consume(1);
            s.array = true;
        }
        Ok(s)
    }

    /// The file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The next non-whitespace byte, not consumed.
    fn peek(&mut self) -> Result<Option<u8>> {
        loop {
            let first = match self.reader.fill_buf() {
                Ok(buf) => buf.first().copied(),
                Err(e) => return Err(self.io_error(e)),
            };
            let Some(b) = first else {
                return Ok(None);
            };
            if b.is_ascii_whitespace() {
                self.reader.consume(1);
            } else {
                return Ok(Some(b));
            }
        }
    }

    fn io_error(&self, e: std::io::Error) -> Error {
        Error::input(format!(
            "{}:{}: cannot read: {e}",
            self.path.display(),
            self.reader.newlines + 1
        ))
    }

    /// Step over the separator before the next element; `false` at the end.
    fn separator(&mut self) -> Result<bool> {
        let b = self.peek()?;
        if !self.array {
            return Ok(b.is_some());
        }
        let line = self.reader.newlines + 1;
        match b {
            Some(b']') => Ok(false),
            Some(b',') if self.index > 0 => {
                self.reader.consume(1);
                Ok(true)
            }
            Some(_) if self.index == 0 => Ok(true),
            other => Err(Error::input(format!(
                "{}:{line}: expected `,` or `]` after element {} of the array, found {}",
                self.path.display(),
                self.index,
                other.map_or("the end of the file".to_string(), |c| format!(
                    "`{}`",
                    c as char
                ))
            ))),
        }
    }

    /// The next element, deserialized, with its place; `None` after the last.
    pub fn next_element<T: DeserializeOwned>(&mut self) -> Option<Result<(Place, T)>> {
        if self.done {
            return None;
        }
        let r = self.read_element();
        if !matches!(r, Some(Ok(_))) {
            self.done = true;
        }
        r
    }

    fn read_element<T: DeserializeOwned>(&mut self) -> Option<Result<(Place, T)>> {
        match self.separator() {
            Ok(true) => {}
            Ok(false) => return None,
            Err(e) => return Some(Err(e)),
        }
        if let Err(e) = self.peek() {
            return Some(Err(e));
        }
        self.index += 1;
        let place = Place {
            index: self.index,
            line: self.reader.newlines + 1,
        };
        self.reader.budget = MAX_ELEMENT_BYTES;
        let mut de = serde_json::Deserializer::from_reader(&mut self.reader);
        let value = T::deserialize(&mut de);
        self.reader.budget = u64::MAX;
        Some(value.map(|v| (place, v)).map_err(|e| {
            // serde_json counts lines from where this element starts.
            let line = place.line + e.line().saturating_sub(1) as u64;
            let msg = e.to_string();
            let msg = msg
                .strip_suffix(&format!(" at line {} column {}", e.line(), e.column()))
                .unwrap_or(&msg);
            Error::input(format!(
                "{}:{line}: element {}: {msg}",
                self.path.display(),
                place.index
            ))
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(name: &str, text: &str) -> PathBuf {
        let p = std::env::temp_dir().join(format!("kvsim-js-{}-{name}.json", std::process::id()));
        std::fs::write(&p, text).unwrap();
        p
    }

    fn all(p: &Path) -> Vec<Result<(Place, serde_json::Value)>> {
        let mut e = JsonElements::open(p).unwrap();
        std::iter::from_fn(|| e.next_element()).collect()
    }

    #[test]
    fn array_and_lines_give_the_same_elements() {
        let a = write("arr", "[\n {\"a\": 1},\n {\"a\": [2, 3]}\n]\n");
        let l = write("lines", "{\"a\": 1}\n\n{\"a\": [2, 3]}\n");
        let va: Vec<_> = all(&a).into_iter().map(|r| r.unwrap()).collect();
        let vl: Vec<_> = all(&l).into_iter().map(|r| r.unwrap()).collect();
        assert_eq!(va.len(), 2);
        assert_eq!(va[1].1, vl[1].1);
        assert_eq!(va[1].0, Place { index: 2, line: 3 });
        assert_eq!(vl[1].0, Place { index: 2, line: 3 });
        assert!(all(&write("empty", " [ ] ")).is_empty());
        for p in [a, l] {
            std::fs::remove_file(p).unwrap();
        }
    }

    #[test]
    fn errors_name_the_line_and_element() {
        let p = write("bad", "[{\"a\": 1},\n{\"a\": 1,\n \"b\": }]");
        let r = all(&p);
        assert!(r[0].is_ok());
        let e = r[1].as_ref().unwrap_err().to_string();
        assert!(e.contains(":3: element 2: expected value"), "{e}");
        assert_eq!(r.len(), 2);
        let p2 = write("sep", "[{\"a\": 1} {\"a\": 2}]");
        let e = all(&p2)[1].as_ref().unwrap_err().to_string();
        assert!(e.contains(":1: expected `,` or `]` after element 1"), "{e}");
        for p in [p, p2] {
            std::fs::remove_file(p).unwrap();
        }
    }
}
