//! S3-FIFO (Yang et al., SOSP 2023): a small FIFO queue (10 % of the cache) for new pages, a
//! main FIFO queue with lazy reinsertion, and a ghost queue of page ids evicted from the
//! small queue. Each page counts hits up to 3. A page leaving the small queue moves to the
//! main queue if it was hit at least `move_to_main_threshold` (2) times there, otherwise it
//! is evicted into the ghost queue; a missed page found in the ghost queue enters the main
//! queue directly. The main queue reinserts a page with hits left, decrementing its count.
//!
//! In serving, a page in use keeps its queue and place (it counts in the queue's size) but
//! is skipped until released; hits count at once. Each queue is a [`SeqQueue`] (entry numbers
//! in a bit set of its evictable pages).

use crate::paging::util::{grow, DList, SeqQueue};
use crate::paging::{Eviction, Req};

/// Hit counts saturate here.
const MAX_FREQ: u8 = 3;

const NOWHERE: u8 = 0;
const SMALL: u8 = 1;
const MAIN: u8 = 2;

/// S3-FIFO.
pub struct S3Fifo {
    /// The pages of each queue in entry order, in use or not (only pages out of use are
    /// evictable there).
    small: SeqQueue,
    main: SeqQueue,
    ghost: DList,
    freq: Vec<u8>,
    queue: Vec<u8>,
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
            small: SeqQueue::default(),
            main: SeqQueue::default(),
            ghost: DList::new(num_pages),
            freq: vec![0; num_pages],
            queue: vec![NOWHERE; num_pages],
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

    /// Enter queue `q` (the page is in none) at its newest end.
    fn enter(&mut self, page: u32, q: u8, pinned: bool) {
        self.queue[page as usize] = q;
        if q == SMALL {
            self.small.push(page, !pinned);
        } else {
            self.main.push(page, !pinned);
        }
    }

    /// Admit a missing page: from the ghost queue to main, else to small.
    fn admit(&mut self, r: &Req, pinned: bool) {
        grow(&mut self.freq, r.page, 0);
        grow(&mut self.queue, r.page, NOWHERE);
        self.freq[r.page as usize] = 0;
        if self.ghost.contains(r.page) {
            self.ghost.unlink(r.page);
            self.enter(r.page, MAIN, pinned);
        } else {
            self.enter(r.page, SMALL, pinned);
        }
    }

    /// The queue holding present `page`.
    fn queue_of(&mut self, page: u32) -> &mut SeqQueue {
        if self.queue[page as usize] == SMALL {
            &mut self.small
        } else {
            &mut self.main
        }
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
            let from_small = self.small.evictable_len() > 0
                && (self.small.len() >= self.small_capacity || self.main.evictable_len() == 0);
            if from_small {
                let s = self.small.first().expect("small has evictable pages");
                let t = self.small.page_at(s);
                self.small.remove(t);
                if self.freq[t as usize] >= self.threshold {
                    self.freq[t as usize] = 0;
                    self.enter(t, MAIN, false);
                } else {
                    self.queue[t as usize] = NOWHERE;
                    self.add_ghost(t);
                    return t;
                }
            } else {
                let s = self.main.first().expect("evict from an empty cache");
                let t = self.main.page_at(s);
                self.main.remove(t);
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
        self.queue_of(page).remove(page);
        self.queue[page as usize] = NOWHERE;
    }
    fn len(&self) -> usize {
        self.small.len() + self.main.len()
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
    }
    fn hit(&mut self, r: &Req) {
        self.find(r);
    }
    fn pin(&mut self, page: u32) {
        if self.contains(page) {
            self.queue_of(page).set_evictable(page, false);
        }
    }
    fn unpin(&mut self, r: &Req) {
        if self.contains(r.page) {
            self.queue_of(r.page).set_evictable(r.page, true);
        }
    }
    fn take_forgotten(&mut self, out: &mut Vec<u32>) {
        out.append(&mut self.forgotten);
    }
    fn has_ghosts(&self) -> bool {
        true
    }
}
