//! S3-FIFO (Yang et al., SOSP 2023): a small FIFO queue (10 % of the cache) for new pages, a
//! main FIFO queue with lazy reinsertion, and a ghost queue of page ids evicted from the
//! small queue. Each page counts hits up to 3. A page leaving the small queue moves to the
//! main queue if it was hit at least `move_to_main_threshold` (2) times there, otherwise it
//! is evicted into the ghost queue; a missed page found in the ghost queue enters the main
//! queue directly. The main queue reinserts a page with hits left, decrementing its count.

use crate::paging::util::DList;
use crate::paging::{Eviction, Req};

/// Hit counts saturate here.
const MAX_FREQ: u8 = 3;

/// S3-FIFO.
pub struct S3Fifo {
    small: DList,
    main: DList,
    ghost: DList,
    freq: Vec<u8>,
    small_capacity: usize,
    ghost_capacity: usize,
    threshold: u8,
}

impl S3Fifo {
    /// An S3-FIFO cache of `k` pages with a small queue of `small_ratio` of it.
    pub fn new(k: usize, num_pages: usize, small_ratio: f64, threshold: u8) -> Self {
        let small_capacity = ((k as f64 * small_ratio).round() as usize).clamp(1, k.max(1));
        S3Fifo {
            small: DList::new(num_pages),
            main: DList::new(num_pages),
            ghost: DList::new(num_pages),
            freq: vec![0; num_pages],
            small_capacity,
            ghost_capacity: k.saturating_sub(small_capacity).max(1),
            threshold,
        }
    }

    fn add_ghost(&mut self, page: u32) {
        if self.ghost.len() >= self.ghost_capacity {
            self.ghost.pop_tail();
        }
        self.ghost.push_head(page);
    }
}

impl Eviction for S3Fifo {
    fn name(&self) -> String {
        "s3fifo".into()
    }
    fn find(&mut self, r: &Req) -> bool {
        if self.small.contains(r.page) || self.main.contains(r.page) {
            let f = &mut self.freq[r.page as usize];
            *f = (*f + 1).min(MAX_FREQ);
            true
        } else {
            false
        }
    }
    fn insert(&mut self, r: &Req) {
        if r.page as usize >= self.freq.len() {
            self.freq.resize(r.page as usize + 1, 0);
        }
        self.freq[r.page as usize] = 0;
        if self.ghost.contains(r.page) {
            self.ghost.unlink(r.page);
            self.main.push_head(r.page);
        } else {
            self.small.push_head(r.page);
        }
    }
    fn evict(&mut self, _: &Req) -> u32 {
        loop {
            if self.small.len() >= self.small_capacity || self.main.is_empty() {
                let t = self.small.pop_tail().expect("evict from an empty cache");
                if self.freq[t as usize] >= self.threshold {
                    self.freq[t as usize] = 0;
                    self.main.push_head(t);
                } else {
                    self.add_ghost(t);
                    return t;
                }
            } else {
                let t = self.main.pop_tail().expect("main is not empty");
                if self.freq[t as usize] > 0 {
                    self.freq[t as usize] -= 1;
                    self.main.push_head(t);
                } else {
                    return t;
                }
            }
        }
    }
    fn remove(&mut self, page: u32) {
        if self.small.contains(page) {
            self.small.unlink(page);
        } else if self.main.contains(page) {
            self.main.unlink(page);
        }
    }
    fn len(&self) -> usize {
        self.small.len() + self.main.len()
    }
    fn contains(&self, page: u32) -> bool {
        self.small.contains(page) || self.main.contains(page)
    }
}
