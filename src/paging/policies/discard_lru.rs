//! `discard-lru`: on a miss, evict the least recently requested cached page whose latest
//! one-bit discard prediction says it is safe to discard (bit 1); if there is none, the
//! least recently requested page of all (LRU). This project's own lazy follower of the
//! discard bits of Antoniadis et al., "Paging with Succinct Predictions" (ICML 2023), not
//! that paper's algorithm (which is `mark0`, in `mark0.rs`).
//!
//! Guarantee (1-consistency): when the bits are those of an optimal lazy algorithm OPT run
//! at the same cache size (bit 1 exactly when OPT evicts the page before its next request),
//! the policy misses only where OPT misses, so its cost equals OPT's. Proof: pages with bit
//! 0 are in OPT's cache until their next request. At a miss on `q`, OPT's cache holds `q`
//! and every bit-0 page after loading, so at most `k - 1` cached pages have bit 0 and a
//! bit-1 page is available; hence bit-0 pages are never evicted, a page misses only if its
//! previous bit was 1 (or it is new), and then OPT misses too. Robustness: with wrong bits
//! nothing bounds it against OPT beyond one extra miss per wrongly discarded page; the
//! robust variant `robust-discard-lru` combines it with Marker.

use crate::paging::util::DList;
use crate::paging::{Eviction, Req};

/// Follow the one-bit discard predictions, LRU within each class.
pub struct DiscardLru {
    discard: DList,
    keep: DList,
}

impl DiscardLru {
    /// An empty cache for page ids below `num_pages` (the lists grow beyond).
    pub fn new(num_pages: usize) -> Self {
        DiscardLru {
            discard: DList::new(num_pages),
            keep: DList::new(num_pages),
        }
    }

    fn place(&mut self, r: &Req) {
        let (to, from) = if r.pred >= 0.5 {
            (&mut self.discard, &mut self.keep)
        } else {
            (&mut self.keep, &mut self.discard)
        };
        if from.contains(r.page) {
            from.unlink(r.page);
        }
        if to.contains(r.page) {
            to.move_to_head(r.page);
        } else {
            to.push_head(r.page);
        }
    }
}

impl Eviction for DiscardLru {
    fn name(&self) -> String {
        "discard-lru".into()
    }
    fn find(&mut self, r: &Req) -> bool {
        if self.contains(r.page) {
            self.place(r);
            true
        } else {
            false
        }
    }
    fn insert(&mut self, r: &Req) {
        self.place(r);
    }
    fn evict(&mut self, _: &Req) -> u32 {
        self.discard
            .pop_tail()
            .or_else(|| self.keep.pop_tail())
            .expect("evict from an empty cache")
    }
    fn remove(&mut self, page: u32) {
        for l in [&mut self.discard, &mut self.keep] {
            if l.contains(page) {
                l.unlink(page);
            }
        }
    }
    fn len(&self) -> usize {
        self.discard.len() + self.keep.len()
    }
    fn contains(&self, page: u32) -> bool {
        self.discard.contains(page) || self.keep.contains(page)
    }
}
