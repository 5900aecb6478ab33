//! Page request sequences in memory: dense page ids and next-use positions, from
//! one-page-per-line text, `time,obj_id[,size]` CSV, or the block accesses of a request
//! trace.

use super::{Req, NEVER};
use crate::error::{Error, Result};
use std::collections::HashMap;
use std::io::BufRead;
use std::path::Path;

/// A request sequence with dense page ids.
#[derive(Debug, Clone, Default)]
pub struct Trace {
    /// Page of each request.
    pub pages: Vec<u32>,
    /// Position of the next request of the same page (`NEVER` if none).
    pub next_use: Vec<u64>,
    /// Distinct pages.
    pub num_pages: usize,
    /// Where it came from.
    pub name: String,
}

impl Trace {
    /// Build from page ids (any `u64` labels), renumbering them densely in order of first
    /// appearance.
    pub fn from_labels(name: &str, labels: impl IntoIterator<Item = u64>) -> Trace {
        let mut ids: HashMap<u64, u32> = HashMap::new();
        let pages: Vec<u32> = labels
            .into_iter()
            .map(|l| {
                let n = ids.len() as u32;
                *ids.entry(l).or_insert(n)
            })
            .collect();
        Trace::from_dense(name, pages, ids.len())
    }

    /// Build from dense ids below `num_pages`.
    pub fn from_dense(name: &str, pages: Vec<u32>, num_pages: usize) -> Trace {
        let mut next_use = vec![NEVER; pages.len()];
        let mut last = vec![NEVER; num_pages];
        for (i, &p) in pages.iter().enumerate().rev() {
            next_use[i] = last[p as usize];
            last[p as usize] = i as u64;
        }
        Trace {
            pages,
            next_use,
            num_pages,
            name: name.to_string(),
        }
    }

    /// Requests.
    pub fn len(&self) -> usize {
        self.pages.len()
    }

    /// True when empty.
    pub fn is_empty(&self) -> bool {
        self.pages.is_empty()
    }

    /// The request at position `t`, with its prediction if any.
    #[inline]
    pub fn req(&self, t: usize, preds: Option<&[f64]>) -> Req {
        Req {
            t: t as u64,
            page: self.pages[t],
            next_use: self.next_use[t],
            pred: preds.map_or(f64::INFINITY, |p| p[t]),
        }
    }

    /// Read one page label per line (blank lines skipped).
    pub fn read_text(path: &Path) -> Result<Trace> {
        let f = std::fs::File::open(path)
            .map_err(|e| Error::input(format!("cannot open {}: {e}", path.display())))?;
        let mut labels: HashMap<String, u64> = HashMap::new();
        let mut seq = Vec::new();
        for (i, line) in std::io::BufReader::new(f).lines().enumerate() {
            let line = line.map_err(|e| {
                Error::input(format!("{}:{}: cannot read: {e}", path.display(), i + 1))
            })?;
            let l = line.trim();
            if l.is_empty() {
                continue;
            }
            let n = labels.len() as u64;
            seq.push(*labels.entry(l.to_string()).or_insert(n));
        }
        Ok(Trace::from_labels(&path.display().to_string(), seq))
    }

    /// Read CSV `time,obj_id[,size]` (a header row is allowed); sizes must be 1 (unit pages).
    pub fn read_csv(path: &Path) -> Result<Trace> {
        let f = std::fs::File::open(path)
            .map_err(|e| Error::input(format!("cannot open {}: {e}", path.display())))?;
        let mut rdr = csv::ReaderBuilder::new()
            .has_headers(false)
            .flexible(true)
            .from_reader(std::io::BufReader::new(f));
        let mut labels: HashMap<String, u64> = HashMap::new();
        let mut seq = Vec::new();
        for (i, rec) in rdr.records().enumerate() {
            let at = format!("{}:{}", path.display(), i + 1);
            let rec = rec.map_err(|e| Error::input(format!("{at}: malformed CSV row: {e}")))?;
            if rec.len() < 2 || rec.len() > 3 {
                return Err(Error::input(format!(
                    "{at}: expected time,obj_id[,size], found {} columns",
                    rec.len()
                )));
            }
            if i == 0 && rec[0].trim().parse::<f64>().is_err() {
                continue; // header
            }
            rec[0]
                .trim()
                .parse::<f64>()
                .ok()
                .filter(|t| t.is_finite())
                .ok_or_else(|| {
                    Error::input(format!("{at}: time `{}` is not a finite number", &rec[0]))
                })?;
            if rec.len() == 3 && rec[2].trim() != "1" {
                return Err(Error::input(format!(
                    "{at}: size {} is not 1; only unit-size pages are supported",
                    &rec[2]
                )));
            }
            let n = labels.len() as u64;
            seq.push(*labels.entry(rec[1].trim().to_string()).or_insert(n));
        }
        Ok(Trace::from_labels(&path.display().to_string(), seq))
    }
}
