//! Page request sequences in memory: dense page ids and next-use positions, from the page
//! traces of [`super::readers`] or the block accesses of a request trace.

use super::labels::Renumber;
use super::{Req, NEVER};
use crate::error::Result;
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
    /// appearance; `None` past [`super::labels::MAX_PAGES`] distinct labels.
    pub fn try_from_labels(name: &str, labels: impl IntoIterator<Item = u64>) -> Option<Trace> {
        let labels = labels.into_iter();
        let mut ids = Renumber::new();
        let mut pages = Vec::with_capacity(labels.size_hint().0);
        for l in labels {
            pages.push(ids.int(l)?);
        }
        Some(Trace::from_dense(name, pages, ids.len()))
    }

    /// [`Trace::try_from_labels`] for at most [`super::labels::MAX_PAGES`] distinct labels.
    ///
    /// # Panics
    /// With more distinct labels than that (page ids are `u32`).
    pub fn from_labels(name: &str, labels: impl IntoIterator<Item = u64>) -> Trace {
        Trace::try_from_labels(name, labels).expect("at most MAX_PAGES distinct labels")
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

    /// Read one page label per line (blank lines skipped; see [`super::readers`]).
    pub fn read_text(path: &Path) -> Result<Trace> {
        super::readers::read_text(path)
    }

    /// Read CSV `time,obj_id[,size]` (a header row is allowed); sizes must be 1 (unit pages).
    pub fn read_csv(path: &Path) -> Result<Trace> {
        super::readers::read_csv(path, false)
    }
}
