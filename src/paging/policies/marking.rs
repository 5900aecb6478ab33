//! State shared by the marking algorithms: cached pages, marks, phases, stale pages and the
//! latest prediction of every cached page. A phase ends when a page misses while every
//! cached page is marked; at that moment all cached pages become unmarked and stale (they
//! were cached when the phase began). A page is marked when requested.

use crate::paging::util::IndexedHeap;
use rand::rngs::StdRng;
use rand::Rng;

/// Marks, phases and predictions of a marking algorithm's cache.
pub struct Marking {
    cached: Vec<u32>,
    cached_pos: Vec<u32>,
    /// Unmarked cached pages keyed by predicted next request (largest on top).
    unmarked: IndexedHeap<f64>,
    unmarked_list: Vec<u32>,
    unmarked_pos: Vec<u32>,
    pred: Vec<f64>,
    stale_phase: Vec<u32>,
    /// Current phase number (from 1).
    pub phase: u32,
}

const NO: u32 = u32::MAX;

impl Marking {
    /// Empty state for page ids below `num_pages`.
    pub fn new(num_pages: usize) -> Self {
        Marking {
            cached: Vec::new(),
            cached_pos: vec![NO; num_pages],
            unmarked: IndexedHeap::default(),
            unmarked_list: Vec::new(),
            unmarked_pos: vec![NO; num_pages],
            pred: vec![f64::INFINITY; num_pages],
            stale_phase: vec![0; num_pages],
            phase: 1,
        }
    }

    fn grow(&mut self, page: u32) {
        let n = page as usize + 1;
        if n > self.cached_pos.len() {
            self.cached_pos.resize(n, NO);
            self.unmarked_pos.resize(n, NO);
            self.pred.resize(n, f64::INFINITY);
            self.stale_phase.resize(n, 0);
        }
    }

    /// Cached pages.
    pub fn len(&self) -> usize {
        self.cached.len()
    }

    /// Is `page` cached?
    pub fn contains(&self, page: u32) -> bool {
        self.cached_pos.get(page as usize).is_some_and(|&p| p != NO)
    }

    /// Was `page` cached when the current phase began?
    pub fn is_stale(&self, page: u32) -> bool {
        self.stale_phase.get(page as usize) == Some(&self.phase)
    }

    /// Unmarked cached pages.
    pub fn num_unmarked(&self) -> usize {
        self.unmarked_list.len()
    }

    /// A request for cached `page` with prediction `pred`: record it and mark the page.
    pub fn hit(&mut self, page: u32, pred: f64) {
        self.pred[page as usize] = pred;
        self.mark(page);
    }

    fn mark(&mut self, page: u32) {
        let pos = self.unmarked_pos[page as usize];
        if pos != NO {
            let last = *self.unmarked_list.last().expect("non-empty");
            self.unmarked_list.swap_remove(pos as usize);
            if last != page {
                self.unmarked_pos[last as usize] = pos;
            }
            self.unmarked_pos[page as usize] = NO;
            self.unmarked.remove(page);
        }
    }

    /// Cache `page` (marked) with prediction `pred`.
    pub fn insert(&mut self, page: u32, pred: f64) {
        self.grow(page);
        self.cached_pos[page as usize] = self.cached.len() as u32;
        self.cached.push(page);
        self.pred[page as usize] = pred;
    }

    /// Remove cached `page`.
    pub fn remove(&mut self, page: u32) {
        if !self.contains(page) {
            return;
        }
        self.mark(page);
        let pos = self.cached_pos[page as usize] as usize;
        let last = *self.cached.last().expect("non-empty");
        self.cached.swap_remove(pos);
        if last != page {
            self.cached_pos[last as usize] = pos as u32;
        }
        self.cached_pos[page as usize] = NO;
    }

    /// Start a new phase: every cached page becomes unmarked and stale.
    pub fn new_phase(&mut self) {
        self.phase += 1;
        for i in 0..self.cached.len() {
            let p = self.cached[i];
            self.stale_phase[p as usize] = self.phase;
            if self.unmarked_pos[p as usize] == NO {
                self.unmarked_pos[p as usize] = self.unmarked_list.len() as u32;
                self.unmarked_list.push(p);
                self.unmarked.set(p, self.pred[p as usize]);
            }
        }
    }

    /// The unmarked page predicted to be requested furthest in the future.
    pub fn furthest_unmarked(&self) -> Option<u32> {
        self.unmarked.top().map(|(_, p)| p)
    }

    /// The heap key (latest prediction) of an unmarked page.
    pub fn key_of_unmarked(&self, page: u32) -> Option<f64> {
        self.unmarked.key(page)
    }

    /// A uniformly random unmarked page.
    pub fn random_unmarked(&self, rng: &mut StdRng) -> Option<u32> {
        (!self.unmarked_list.is_empty())
            .then(|| self.unmarked_list[rng.gen_range(0..self.unmarked_list.len())])
    }

    /// A uniformly random unmarked page among those whose latest prediction satisfies
    /// `keep` (two passes over the unmarked pages).
    pub fn random_unmarked_where(
        &self,
        rng: &mut StdRng,
        keep: impl Fn(f64) -> bool,
    ) -> Option<u32> {
        let ok = |p: &&u32| keep(self.pred[**p as usize]);
        let n = self.unmarked_list.iter().filter(ok).count();
        (n > 0).then(|| {
            let i = rng.gen_range(0..n);
            *self.unmarked_list.iter().filter(ok).nth(i).expect("i < n")
        })
    }

    /// A uniformly random cached page.
    pub fn random_cached(&self, rng: &mut StdRng) -> Option<u32> {
        (!self.cached.is_empty()).then(|| self.cached[rng.gen_range(0..self.cached.len())])
    }
}
