//! S3-FIFO (Yang et al., SOSP 2023): a small FIFO queue (10 % of the cache) for new pages, a
//! main FIFO queue with lazy reinsertion, and a ghost queue of page ids evicted from the
//! small queue. Each page counts hits up to 3. A page leaving the small queue moves to the
//! main queue if it was hit at least `move_to_main_threshold` (2) times there, otherwise it
//! is evicted into the ghost queue; a missed page found in the ghost queue enters the main
//! queue directly. The main queue reinserts a page with hits left, decrementing its count.
//!
//! In serving, a page in use keeps its queue and place (it counts in the queue's size) but
//! is skipped until released; hits count at once.

use crate::paging::util::{grow, DList, IndexedHeap, Pins};
use crate::paging::{Eviction, Req};

/// Hit counts saturate here.
const MAX_FREQ: u8 = 3;

const NOWHERE: u8 = 0;
const SMALL: u8 = 1;
const MAIN: u8 = 2;

/// S3-FIFO.
pub struct S3Fifo {
    /// Evictable pages of each queue keyed by minus their entry number (oldest on top).
    small: IndexedHeap<i64>,
    main: IndexedHeap<i64>,
    ghost: DList,
    freq: Vec<u8>,
    queue: Vec<u8>,
    entered: Vec<i64>,
    next: i64,
    small_pinned: usize,
    pins: Pins,
    small_capacity: usize,
    ghost_capacity: usize,
    threshold: u8,
    forgotten: Vec<u32>,
    serving: bool,
}

impl S3Fifo {
    /// An S3-FIFO cache of `k` pages with a small queue of `small_ratio` of it.
    pub fn new(k: usize, num_pages: usize, small_ratio: f64, threshold: u8) -> Self {
        let small_capacity = ((k as f64 * small_ratio).round() as usize).clamp(1, k.max(1));
        S3Fifo {
            small: IndexedHeap::default(),
            main: IndexedHeap::default(),
            ghost: DList::new(num_pages),
            freq: vec![0; num_pages],
            queue: vec![NOWHERE; num_pages],
            entered: vec![0; num_pages],
            next: 0,
            small_pinned: 0,
            pins: Pins::default(),
            small_capacity,
            ghost_capacity: k.saturating_sub(small_capacity).max(1),
            threshold,
            forgotten: Vec::new(),
            serving: false,
        }
    }

    fn add_ghost(&mut self, page: u32) {
        if self.ghost.len() >= self.ghost_capacity {
            if let (Some(g), true) = (self.ghost.pop_tail(), self.serving) {
                self.forgotten.push(g);
            }
        }
        self.ghost.push_head(page);
    }

    /// Enter queue `q` at its head (the newest end).
    fn enter(&mut self, page: u32, q: u8, pinned: bool) {
        self.next += 1;
        self.entered[page as usize] = -self.next;
        self.queue[page as usize] = q;
        if pinned {
            self.small_pinned += usize::from(q == SMALL);
        } else if q == SMALL {
            self.small.set(page, -self.next);
        } else {
            self.main.set(page, -self.next);
        }
    }

    /// Admit a missing page: from the ghost queue to main, else to small.
    fn admit(&mut self, r: &Req, pinned: bool) {
        grow(&mut self.freq, r.page, 0);
        grow(&mut self.queue, r.page, NOWHERE);
        grow(&mut self.entered, r.page, 0);
        self.freq[r.page as usize] = 0;
        if self.ghost.contains(r.page) {
            self.ghost.unlink(r.page);
            self.enter(r.page, MAIN, pinned);
        } else {
            self.enter(r.page, SMALL, pinned);
        }
    }

    fn small_len(&self) -> usize {
        self.small.len() + self.small_pinned
    }
}

impl Eviction for S3Fifo {
    fn name(&self) -> String {
        "s3fifo".into()
    }
    fn find(&mut self, r: &Req) -> bool {
        if self.contains(r.page) {
            let f = &mut self.freq[r.page as usize];
            *f = (*f + 1).min(MAX_FREQ);
            true
        } else {
            false
        }
    }
    fn insert(&mut self, r: &Req) {
        self.admit(r, false);
    }
    fn evict(&mut self, _: &Req) -> u32 {
        loop {
            let from_small = !self.small.is_empty()
                && (self.small_len() >= self.small_capacity || self.main.is_empty());
            if from_small {
                let (_, t) = self.small.pop().expect("small is not empty");
                if self.freq[t as usize] >= self.threshold {
                    self.freq[t as usize] = 0;
                    self.enter(t, MAIN, false);
                } else {
                    self.queue[t as usize] = NOWHERE;
                    self.add_ghost(t);
                    return t;
                }
            } else {
                let (_, t) = self.main.pop().expect("evict from an empty cache");
                if self.freq[t as usize] > 0 {
                    self.freq[t as usize] -= 1;
                    self.enter(t, MAIN, false);
                } else {
                    self.queue[t as usize] = NOWHERE;
                    if self.serving {
                        self.forgotten.push(t);
                    }
                    return t;
                }
            }
        }
    }
    fn remove(&mut self, page: u32) {
        if !self.contains(page) {
            return;
        }
        if self.pins.unpin(page) {
            self.small_pinned -= usize::from(self.queue[page as usize] == SMALL);
        }
        self.small.remove(page);
        self.main.remove(page);
        self.queue[page as usize] = NOWHERE;
    }
    fn len(&self) -> usize {
        self.small.len() + self.main.len() + self.pins.len()
    }
    fn contains(&self, page: u32) -> bool {
        self.queue.get(page as usize).is_some_and(|&q| q != NOWHERE)
    }
    fn serves(&self) -> bool {
        true
    }
    fn insert_pinned(&mut self, r: &Req) {
        self.serving = true;
        self.admit(r, true);
        self.pins.pin(r.page);
    }
    fn hit(&mut self, r: &Req) {
        self.find(r);
    }
    fn pin(&mut self, page: u32) {
        let q = self.queue[page as usize];
        let was = if q == SMALL {
            self.small.contains(page)
        } else {
            self.main.contains(page)
        };
        if !was {
            return;
        }
        self.small.remove(page);
        self.main.remove(page);
        self.small_pinned += usize::from(q == SMALL);
        self.pins.pin(page);
    }
    fn unpin(&mut self, r: &Req) {
        if !self.pins.unpin(r.page) {
            return;
        }
        let key = self.entered[r.page as usize];
        if self.queue[r.page as usize] == SMALL {
            self.small_pinned -= 1;
            self.small.set(r.page, key);
        } else {
            self.main.set(r.page, key);
        }
    }
    fn take_forgotten(&mut self, out: &mut Vec<u32>) {
        out.append(&mut self.forgotten);
    }
    fn has_ghosts(&self) -> bool {
        true
    }
}
