//! The zero of a trace whose rows carry absolute times (wall-clock dates, or a clock that
//! does not start at the first row): the earliest arrival among the first rows.
//!
//! The replay reorders rows that are out of order by up to 4,096 rows (`REORDER_WINDOW`), so
//! a trace's first replayed request is the earliest of its first 4,096 rows. That row is the
//! zero: [`EarliestZero`] reads that many rows ahead, takes the earliest time
//! among them, and then streams every row relative to it. A later row earlier than the zero
//! is out of order by more than the window could fix and is an error naming its file and
//! row (instead of being moved silently to time 0).

use super::{at_row, RawRequest, REORDER_WINDOW};
use crate::error::{Error, Result};
use std::collections::VecDeque;
use std::path::PathBuf;

/// A row with its absolute time (nanoseconds on the trace's own clock, any origin).
#[derive(Debug, Clone, PartialEq)]
pub struct Timed {
    /// Row (line) in the file, for messages.
    pub row: u64,
    /// Absolute arrival time, nanoseconds.
    pub t_ns: i128,
    /// The request; its `arrival_ns` is set from `t_ns`.
    pub req: RawRequest,
}

/// Streams timed rows as raw requests relative to the earliest of the first rows.
pub struct EarliestZero<I> {
    inner: I,
    path: PathBuf,
    window: usize,
    ahead: VecDeque<Timed>,
    zero: Option<i128>,
}

impl<I: Iterator<Item = Result<Timed>>> EarliestZero<I> {
    /// Wrap the rows of `path`, looking `REORDER_WINDOW` (4,096) rows ahead.
    pub fn new(inner: I, path: PathBuf) -> Self {
        Self::with_window(inner, path, REORDER_WINDOW)
    }

    /// Wrap with a look-ahead of `window` rows (at least 1).
    pub fn with_window(inner: I, path: PathBuf, window: usize) -> Self {
        EarliestZero {
            inner,
            path,
            window: window.max(1),
            ahead: VecDeque::new(),
            zero: None,
        }
    }

    /// Read the look-ahead and fix the zero; an error in those rows is returned first.
    fn fix_zero(&mut self) -> Result<i128> {
        while self.ahead.len() < self.window {
            match self.inner.next() {
                Some(Ok(t)) => self.ahead.push_back(t),
                Some(Err(e)) => return Err(e),
                None => break,
            }
        }
        let zero = self.ahead.iter().map(|t| t.t_ns).min().unwrap_or(0);
        self.zero = Some(zero);
        Ok(zero)
    }

    fn relative(&self, t: Timed, zero: i128) -> Result<RawRequest> {
        let at = at_row(&self.path, t.row);
        if t.t_ns < zero {
            return Err(Error::input(format!(
                "{at}: arrives {:.6} s before the trace's first arrival (the earliest of its \
                 first {} rows); rows may be out of order by at most that many rows: sort \
                 the trace by time",
                (zero - t.t_ns) as f64 / 1e9,
                self.window
            )));
        }
        let rel = u64::try_from(t.t_ns - zero)
            .map_err(|_| Error::input(format!("{at}: arrives too late after the first row")))?;
        Ok(RawRequest {
            arrival_ns: rel,
            ..t.req
        })
    }
}

impl<I: Iterator<Item = Result<Timed>>> Iterator for EarliestZero<I> {
    type Item = Result<RawRequest>;

    fn next(&mut self) -> Option<Result<RawRequest>> {
        let zero = match self.zero {
            Some(z) => z,
            None => match self.fix_zero() {
                Ok(z) => z,
                Err(e) => return Some(Err(e)),
            },
        };
        let t = match self.ahead.pop_front() {
            Some(t) => t,
            None => match self.inner.next()? {
                Ok(t) => t,
                Err(e) => return Some(Err(e)),
            },
        };
        Some(self.relative(t, zero))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn timed(row: u64, t_ns: i128) -> Result<Timed> {
        Ok(Timed {
            row,
            t_ns,
            req: RawRequest {
                arrival_ns: 0,
                input_tokens: 1,
                output_tokens: 1,
                session: None,
                segments: vec![],
            },
        })
    }

    #[test]
    fn zero_is_the_earliest_of_the_window() {
        // Row 2 is 5 ns earlier than row 1: times are relative to row 2, none clamped.
        let rows = vec![timed(1, 105), timed(2, 100), timed(3, 130)];
        let out: Vec<u64> = EarliestZero::with_window(rows.into_iter(), "t.csv".into(), 3)
            .map(|r| r.unwrap().arrival_ns)
            .collect();
        assert_eq!(out, vec![5, 0, 30]);
    }

    #[test]
    fn a_row_earlier_than_the_zero_past_the_window_is_an_error() {
        let s = 1_000_000_000;
        let rows = vec![timed(2, 100 * s), timed(3, 110 * s), timed(4, 50 * s)];
        let out: Vec<Result<RawRequest>> =
            EarliestZero::with_window(rows.into_iter(), "t.csv".into(), 2).collect();
        assert_eq!(out[1].as_ref().unwrap().arrival_ns, 10 * s as u64);
        let e = out[2].as_ref().unwrap_err().to_string();
        assert!(e.starts_with("t.csv:4: arrives 50.000000 s before"), "{e}");
    }
}
