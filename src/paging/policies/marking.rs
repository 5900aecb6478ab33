//! State shared by the marking algorithms: cached pages, pins, marks, phases, stale pages
//! and the latest prediction of every cached page.
//!
//! Rules. A page is marked when it is requested (a hit, or its insert). A phase ends when
//! an eviction is needed and no unmarked unpinned page exists (in the paging lab nothing is
//! pinned, so: a page misses while every cached page is marked); at that moment every
//! cached page becomes unmarked, and the pages cached then are the stale pages of the new
//! phase. A pinned page (in use in a serving run) can never be chosen; it is unmarked at a
//! phase change like the others and, once unpinned, choosable if still unmarked.
//!
//! Cost. Marks are phase stamps (a page is marked when its stamp is the current phase), so
//! a phase change unmarks everything at once; the unpinned pages live in two collections,
//! unmarked and marked (a vector for uniform choice and a heap by prediction each), and a
//! phase change makes the marked one the unmarked one. Whether a page was cached when the
//! phase began is kept per page (its state at its first insert or removal of the phase).
//! Every operation is O(1) or O(log k) (heap updates), `new_phase` O(1) when no unmarked
//! unpinned page is left, which is the only case the marking policies call it in; a phase
//! change with both collections non-empty (LNonMarker's phases, counted in distinct
//! requests) merges the smaller into the larger. [`Marking::random_unmarked_where`] is
//! linear in the unmarked pages.
//!
//! Forgetting (serving). Whether a missing page is stale depends on its history in the
//! phase, so a page evicted or removed in a phase is remembered until the phase ends; from
//! then on [`Marking::take_forgotten`] gives it back (unless it is cached again), so that
//! its id may be reused. Only a state made by [`Marking::with_ghosts`] keeps this list,
//! from its first [`Marking::insert_pinned`] on (a serving run: the paging lab never calls
//! it, and nobody would take the list).
//!
//! Policies. Every marking policy is a [`Marked`] state (this state, a random stream and
//! the policy's own part) run by one [`Eviction`] implementation; a policy implements
//! [`MarkingRule`] with only what differs: its name, whether it serves, the key it stores,
//! its victim choice and the hooks where it does something extra on a request, hit or miss.
//! Adding a marking policy touches one file and one registry line.

use crate::paging::util::IndexedHeap;
use crate::paging::{Eviction, Req};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

const NO: u32 = u32::MAX;

/// A set of unpinned cached pages: a vector for uniform choice and a heap by prediction.
#[derive(Default)]
struct Pool {
    list: Vec<u32>,
    heap: IndexedHeap<f64>,
    /// Keep the heap (false for policies that never choose by prediction).
    by_pred: bool,
}

impl Pool {
    fn len(&self) -> usize {
        self.list.len()
    }

    fn push(&mut self, slot: &mut [u32], page: u32, key: f64) {
        slot[page as usize] = self.list.len() as u32;
        self.list.push(page);
        if self.by_pred {
            self.heap.set(page, key);
        }
    }

    fn take(&mut self, slot: &mut [u32], page: u32) {
        let pos = slot[page as usize] as usize;
        debug_assert_eq!(self.list[pos], page);
        self.list.swap_remove(pos);
        if let Some(&moved) = self.list.get(pos) {
            slot[moved as usize] = pos as u32;
        }
        slot[page as usize] = NO;
        if self.by_pred {
            self.heap.remove(page);
        }
    }
}

/// Marks, pins, phases and predictions of a marking algorithm's cache.
pub struct Marking {
    /// Per page: slot in its pool's list (unpinned cached pages), else `NO`.
    slot: Vec<u32>,
    cached: Vec<bool>,
    pinned: Vec<bool>,
    /// Per page: the phase of its latest mark.
    mark_phase: Vec<u32>,
    pred: Vec<f64>,
    /// Per page: the phase of its first insert or removal in that phase, and whether it was
    /// cached just before it.
    touched: Vec<u32>,
    cached_at_touch: Vec<bool>,
    len: usize,
    /// Unpinned pages: `pools[unmarked]` unmarked, the other marked.
    pools: [Pool; 2],
    unmarked: usize,
    /// Serving: pages evicted or removed in this phase, those of earlier phases, and who is
    /// listed in either.
    gone: Vec<u32>,
    forgettable: Vec<u32>,
    listed: Vec<bool>,
    ghosts: bool,
    track_gone: bool,
    /// Current phase number (from 1).
    pub phase: u32,
}

impl Marking {
    /// Empty state for page ids below `num_pages` (arrays grow beyond).
    pub fn new(num_pages: usize) -> Self {
        Marking {
            slot: vec![NO; num_pages],
            cached: vec![false; num_pages],
            pinned: vec![false; num_pages],
            mark_phase: vec![0; num_pages],
            pred: vec![f64::INFINITY; num_pages],
            touched: vec![0; num_pages],
            cached_at_touch: vec![false; num_pages],
            len: 0,
            pools: [0, 1].map(|_| Pool {
                by_pred: true,
                ..Pool::default()
            }),
            unmarked: 0,
            gone: Vec::new(),
            forgettable: Vec::new(),
            listed: vec![false; num_pages],
            ghosts: false,
            track_gone: false,
            phase: 1,
        }
    }

    /// Empty state that remembers evicted pages until their phase ends, in serving (see
    /// the module doc).
    pub fn with_ghosts(num_pages: usize) -> Self {
        Marking {
            ghosts: true,
            ..Marking::new(num_pages)
        }
    }

    /// Empty state without the order by prediction: for policies that never call
    /// [`Marking::furthest_unmarked`] or [`Marking::key_of_unmarked`] (saves the heap updates).
    pub fn without_predictions(num_pages: usize) -> Self {
        let mut m = Marking::new(num_pages);
        for pool in &mut m.pools {
            pool.by_pred = false;
        }
        m
    }

    /// True when made by [`Marking::with_ghosts`]: evicted pages are remembered until their
    /// phase ends (the stale test, and Predictive Marker's chains, need the pages evicted in
    /// the current phase).
    pub fn has_ghosts(&self) -> bool {
        self.ghosts
    }

    fn grow(&mut self, page: u32) {
        let n = page as usize + 1;
        if n > self.cached.len() {
            self.slot.resize(n, NO);
            self.cached.resize(n, false);
            self.pinned.resize(n, false);
            self.mark_phase.resize(n, 0);
            self.pred.resize(n, f64::INFINITY);
            self.touched.resize(n, 0);
            self.cached_at_touch.resize(n, false);
            self.listed.resize(n, false);
        }
    }

    /// Cached pages, pinned or not.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Is `page` cached?
    pub fn contains(&self, page: u32) -> bool {
        self.cached.get(page as usize) == Some(&true)
    }

    /// Is `page` cached and pinned?
    pub fn is_pinned(&self, page: u32) -> bool {
        self.pinned.get(page as usize) == Some(&true)
    }

    /// Was `page` cached when the current phase began?
    pub fn is_stale(&self, page: u32) -> bool {
        match self.touched.get(page as usize) {
            Some(&t) if t == self.phase => self.cached_at_touch[page as usize],
            _ => self.contains(page),
        }
    }

    /// Is cached `page` marked in the current phase?
    pub fn is_marked(&self, page: u32) -> bool {
        self.mark_phase.get(page as usize) == Some(&self.phase)
    }

    /// Unmarked unpinned cached pages (the choosable ones).
    pub fn num_unmarked(&self) -> usize {
        self.pools[self.unmarked].len()
    }

    /// Record `page`'s cached state before its first insert or removal of the phase.
    fn touch(&mut self, page: u32) {
        let p = page as usize;
        if self.touched[p] != self.phase {
            self.touched[p] = self.phase;
            self.cached_at_touch[p] = self.cached[p];
        }
    }

    /// The pool an unpinned cached page is in.
    fn pool_of(&self, page: u32) -> usize {
        if self.is_marked(page) {
            1 - self.unmarked
        } else {
            self.unmarked
        }
    }

    fn take_free(&mut self, page: u32) {
        let i = self.pool_of(page);
        self.pools[i].take(&mut self.slot, page);
    }

    fn put_free(&mut self, page: u32) {
        let i = self.pool_of(page);
        let key = self.pred[page as usize];
        self.pools[i].push(&mut self.slot, page, key);
    }

    /// A request for cached `page` (pinned or not) with prediction `pred`: record it and
    /// mark the page.
    pub fn hit(&mut self, page: u32, pred: f64) {
        debug_assert!(self.contains(page));
        let free = !self.pinned[page as usize];
        if free {
            self.take_free(page);
        }
        self.pred[page as usize] = pred;
        self.mark_phase[page as usize] = self.phase;
        if free {
            self.put_free(page);
        }
    }

    fn add(&mut self, page: u32, pred: f64, pinned: bool) {
        self.grow(page);
        debug_assert!(!self.contains(page));
        self.touch(page);
        let p = page as usize;
        self.cached[p] = true;
        self.pinned[p] = pinned;
        self.pred[p] = pred;
        self.mark_phase[p] = self.phase;
        self.len += 1;
        if !pinned {
            self.put_free(page);
        }
    }

    /// Cache `page` (marked, unpinned) with prediction `pred`.
    pub fn insert(&mut self, page: u32, pred: f64) {
        self.add(page, pred, false);
    }

    /// Cache `page` marked and pinned, with prediction `pred`.
    pub fn insert_pinned(&mut self, page: u32, pred: f64) {
        self.track_gone = self.ghosts;
        self.add(page, pred, true);
    }

    /// Pin cached `page`: it can't be chosen until [`Marking::unpin`].
    pub fn pin(&mut self, page: u32) {
        if self.contains(page) && !self.pinned[page as usize] {
            self.take_free(page);
            self.pinned[page as usize] = true;
        }
    }

    /// Unpin cached `page`, with its latest prediction `pred` (its mark is unchanged).
    pub fn unpin(&mut self, page: u32, pred: f64) {
        if self.is_pinned(page) {
            self.pinned[page as usize] = false;
            self.pred[page as usize] = pred;
            self.put_free(page);
        }
    }

    /// Remove cached `page`, pinned or not.
    pub fn remove(&mut self, page: u32) {
        if !self.contains(page) {
            return;
        }
        if !self.pinned[page as usize] {
            self.take_free(page);
        }
        self.touch(page);
        self.cached[page as usize] = false;
        self.pinned[page as usize] = false;
        self.len -= 1;
        if self.track_gone && !self.listed[page as usize] {
            self.listed[page as usize] = true;
            self.gone.push(page);
        }
    }

    /// Serving: move into `out` the pages evicted or removed in earlier phases and not
    /// cached since (each once); their ids may be reused.
    pub fn take_forgotten(&mut self, out: &mut Vec<u32>) {
        let mut list = std::mem::take(&mut self.forgettable);
        for page in list.drain(..) {
            let p = page as usize;
            if self.contains(page) {
                self.listed[p] = false;
            } else if self.touched[p] == self.phase {
                // Cached again and gone again in this phase: remembered until it ends.
                self.gone.push(page);
            } else {
                self.listed[p] = false;
                out.push(page);
            }
        }
        self.forgettable = list;
    }

    /// Start a new phase: every cached page becomes unmarked and stale.
    pub fn new_phase(&mut self) {
        self.phase += 1;
        self.forgettable.append(&mut self.gone);
        let marked = 1 - self.unmarked;
        if self.pools[self.unmarked].len() >= self.pools[marked].len() {
            self.merge(marked, self.unmarked);
        } else {
            self.merge(self.unmarked, marked);
            self.unmarked = marked;
        }
    }

    /// Move every page of pool `from` into pool `to`.
    fn merge(&mut self, from: usize, to: usize) {
        let moved = std::mem::take(&mut self.pools[from].list);
        for page in moved {
            if self.pools[from].by_pred {
                self.pools[from].heap.remove(page);
            }
            let key = self.pred[page as usize];
            self.pools[to].push(&mut self.slot, page, key);
        }
    }

    /// Start a new phase if no unmarked unpinned page is left; true if it did.
    pub fn ensure_unmarked(&mut self) -> bool {
        let roll = self.num_unmarked() == 0;
        if roll {
            self.new_phase();
        }
        roll
    }

    /// The unmarked unpinned page predicted to be requested furthest in the future (ties:
    /// the lower page id).
    pub fn furthest_unmarked(&self) -> Option<u32> {
        debug_assert!(self.pools[0].by_pred, "made without predictions");
        self.pools[self.unmarked].heap.top().map(|(_, p)| p)
    }

    /// The latest prediction of an unmarked unpinned page.
    pub fn key_of_unmarked(&self, page: u32) -> Option<f64> {
        debug_assert!(self.pools[0].by_pred, "made without predictions");
        self.pools[self.unmarked].heap.key(page)
    }

    /// A uniformly random unmarked unpinned page.
    pub fn random_unmarked(&self, rng: &mut StdRng) -> Option<u32> {
        let l = &self.pools[self.unmarked].list;
        (!l.is_empty()).then(|| l[rng.gen_range(0..l.len())])
    }

    /// A uniformly random unmarked unpinned page among those whose latest prediction
    /// satisfies `keep` (two passes over the unmarked pages).
    pub fn random_unmarked_where(
        &self,
        rng: &mut StdRng,
        keep: impl Fn(f64) -> bool,
    ) -> Option<u32> {
        let l = &self.pools[self.unmarked].list;
        let ok = |p: &&u32| keep(self.pred[**p as usize]);
        let n = l.iter().filter(ok).count();
        (n > 0).then(|| {
            let i = rng.gen_range(0..n);
            *l.iter().filter(ok).nth(i).expect("i < n")
        })
    }

    /// A uniformly random unpinned cached page, marked or not.
    pub fn random_cached(&self, rng: &mut StdRng) -> Option<u32> {
        let (u, m) = (
            &self.pools[self.unmarked].list,
            &self.pools[1 - self.unmarked].list,
        );
        let n = u.len() + m.len();
        (n > 0).then(|| {
            let i = rng.gen_range(0..n);
            if i < u.len() {
                u[i]
            } else {
                m[i - u.len()]
            }
        })
    }
}

/// What a marking policy adds to the shared [`Marking`] state; [`Marked`] runs it.
///
/// The shared calls: a request runs [`MarkingRule::on_request`], then on a hit marks the page
/// with [`MarkingRule::key`] and runs [`MarkingRule::after_hit`]; a miss inserts the page
/// (marked) if [`MarkingRule::admits`] it; an eviction starts a new phase when no unmarked
/// unpinned page is left (unless [`MarkingRule::PHASE_ON_EVICT`] is false), then removes the
/// page [`MarkingRule::choose`] returns. A policy that serves ([`MarkingRule::SERVES`]) gets
/// the serving calls forwarded to the state; the others keep [`Eviction`]'s defaults.
pub trait MarkingRule {
    /// Name for reports.
    const NAME: &'static str;
    /// Implements the serving call pattern (pins and hits).
    const SERVES: bool = false;
    /// An eviction finding no unmarked unpinned page starts a new phase (false for a rule
    /// that keeps its own phases).
    const PHASE_ON_EVICT: bool = true;
    /// The empty shared state for page ids below `num_pages` (made with predictions, without
    /// ghosts unless the rule says otherwise); used by [`Marked::new`].
    const STATE: fn(usize) -> Marking = Marking::new;
    /// The key (prediction) kept for the requested page.
    fn key(r: &Req) -> f64 {
        r.pred
    }
    /// Keep the missing page `r.page` once its miss is served?
    fn admits(_r: &Req) -> bool {
        true
    }
    /// Before the lookup of every request (lab and `find` only).
    fn on_request(&mut self, _m: &mut Marking, _r: &Req) {}
    /// After a hit of `find` has marked its page.
    fn after_hit(_m: &mut Marking, _r: &Req) {}
    /// The victim for the miss `r` (the caller removes it); `None` only if nothing is
    /// choosable.
    fn choose(&mut self, m: &Marking, rng: &mut StdRng, r: &Req) -> Option<u32>;
}

/// A marking policy: the shared state, its random stream and its rule's own part.
pub struct Marked<R> {
    /// The shared marks, pins and phases.
    pub(super) m: Marking,
    rng: StdRng,
    /// What the policy adds.
    pub(super) rule: R,
}

impl<R> Marked<R> {
    /// A policy following `rule` on the state `m`, with its own random stream from `seed`.
    pub fn with_rule(m: Marking, seed: u64, rule: R) -> Self {
        Marked {
            m,
            rng: StdRng::seed_from_u64(seed),
            rule,
        }
    }
}

impl<R: MarkingRule + Default> Marked<R> {
    /// An empty cache following the rule, with its own random stream from `seed`.
    pub fn new(num_pages: usize, seed: u64) -> Self {
        Marked::with_rule((R::STATE)(num_pages), seed, R::default())
    }
}

impl<R: MarkingRule> Eviction for Marked<R> {
    fn name(&self) -> String {
        R::NAME.into()
    }
    fn find(&mut self, r: &Req) -> bool {
        self.rule.on_request(&mut self.m, r);
        if !self.m.contains(r.page) {
            return false;
        }
        self.m.hit(r.page, R::key(r));
        R::after_hit(&mut self.m, r);
        true
    }
    fn insert(&mut self, r: &Req) {
        if R::admits(r) {
            self.m.insert(r.page, R::key(r));
        }
    }
    fn evict(&mut self, r: &Req) -> u32 {
        if R::PHASE_ON_EVICT {
            self.m.ensure_unmarked();
        }
        let v = (self.rule.choose(&self.m, &mut self.rng, r))
            .expect("an unpinned page is unmarked after a phase change");
        self.m.remove(v);
        v
    }
    fn remove(&mut self, page: u32) {
        self.m.remove(page);
    }
    fn len(&self) -> usize {
        self.m.len()
    }
    fn contains(&self, page: u32) -> bool {
        self.m.contains(page)
    }
    fn serves(&self) -> bool {
        R::SERVES
    }
    fn insert_pinned(&mut self, r: &Req) {
        if R::SERVES {
            self.m.insert_pinned(r.page, R::key(r));
        } else {
            // Eviction's default (`pin` does nothing here).
            self.insert(r);
        }
    }
    fn hit(&mut self, r: &Req) {
        if R::SERVES {
            self.m.hit(r.page, R::key(r));
        }
    }
    fn pin(&mut self, page: u32) {
        if R::SERVES {
            self.m.pin(page);
        }
    }
    fn unpin(&mut self, r: &Req) {
        if R::SERVES {
            self.m.unpin(r.page, R::key(r));
        }
    }
    fn take_forgotten(&mut self, out: &mut Vec<u32>) {
        // Without ghosts the state lists nothing.
        self.m.take_forgotten(out);
    }
    fn has_ghosts(&self) -> bool {
        self.m.has_ghosts()
    }
}

/// Tests: a request at `t` for `page` with prediction `pred`, never requested again.
#[cfg(test)]
pub(super) fn test_req(t: u64, page: u32, pred: f64) -> Req {
    Req {
        t,
        page,
        next_use: crate::paging::NEVER,
        pred,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;
    use std::collections::{HashMap, HashSet};

    /// The rules, naively: per cached page (pinned, marked, prediction), and the set of
    /// pages cached when the phase began.
    #[derive(Default)]
    struct Naive {
        pages: HashMap<u32, (bool, bool, f64)>,
        stale: HashSet<u32>,
    }

    impl Naive {
        fn new_phase(&mut self) {
            self.stale = self.pages.keys().copied().collect();
            for v in self.pages.values_mut() {
                v.1 = false;
            }
        }
        fn choosable(&self) -> Vec<u32> {
            let mut c: Vec<u32> = (self.pages.iter())
                .filter(|(_, v)| !v.0 && !v.1)
                .map(|(&p, _)| p)
                .collect();
            c.sort();
            c
        }
        fn furthest(&self) -> Option<u32> {
            // Largest prediction, ties to the lower id.
            let mut best: Option<(f64, u32)> = None;
            for p in self.choosable() {
                let k = self.pages[&p].2;
                if best.is_none_or(|(bk, _)| k > bk) {
                    best = Some((k, p));
                }
            }
            best.map(|b| b.1)
        }
    }

    fn check(m: &Marking, n: &Naive, ids: u32) {
        assert_eq!(m.len(), n.pages.len());
        assert_eq!(m.num_unmarked(), n.choosable().len());
        assert_eq!(m.furthest_unmarked(), n.furthest());
        let mut u = m.pools[m.unmarked].list.clone();
        u.sort();
        assert_eq!(u, n.choosable());
        for p in 0..ids {
            assert_eq!(m.contains(p), n.pages.contains_key(&p), "page {p}");
            assert_eq!(m.is_pinned(p), n.pages.get(&p).is_some_and(|v| v.0));
            assert_eq!(m.is_stale(p), n.stale.contains(&p), "stale {p}");
        }
    }

    /// One random operation on both.
    fn step(m: &mut Marking, n: &mut Naive, rng: &mut StdRng, ids: u32) {
        let p = rng.gen_range(0..ids);
        let pred = rng.gen_range(0..8) as f64;
        let cached = n.pages.contains_key(&p);
        match rng.gen_range(0..7) {
            0 | 1 if !cached => {
                let pinned = rng.gen::<bool>();
                if pinned {
                    m.insert_pinned(p, pred);
                } else {
                    m.insert(p, pred);
                }
                n.pages.insert(p, (pinned, true, pred));
            }
            0 | 1 => {
                m.hit(p, pred);
                let v = n.pages.get_mut(&p).unwrap();
                (v.1, v.2) = (true, pred);
            }
            2 => {
                m.pin(p);
                if let Some(v) = n.pages.get_mut(&p) {
                    v.0 = true;
                }
            }
            3 => {
                m.unpin(p, pred);
                if let Some(v) = n.pages.get_mut(&p).filter(|v| v.0) {
                    (v.0, v.2) = (false, pred);
                }
            }
            4 => {
                m.remove(p);
                n.pages.remove(&p);
            }
            5 => {
                m.new_phase();
                n.new_phase();
            }
            _ => {
                if m.ensure_unmarked() {
                    n.new_phase();
                }
            }
        }
    }

    #[test]
    fn matches_the_naive_rules_on_random_operations() {
        for seed in 0..40 {
            let mut rng = StdRng::seed_from_u64(seed);
            let ids = rng.gen_range(2..24);
            let (mut m, mut n) = (Marking::new(4), Naive::default());
            for _ in 0..600 {
                step(&mut m, &mut n, &mut rng, ids);
                check(&m, &n, ids + 2);
            }
        }
    }

    #[test]
    fn pinned_pages_are_unmarked_by_a_phase_change_and_choosable_once_unpinned() {
        let mut m = Marking::new(0);
        m.insert_pinned(0, 1.0);
        m.insert(1, 2.0);
        m.insert(2, 3.0);
        assert_eq!(m.num_unmarked(), 0);
        assert!(m.ensure_unmarked());
        assert_eq!(m.phase, 2);
        assert!(!m.is_marked(0) && m.is_stale(0));
        assert_eq!(m.furthest_unmarked(), Some(2));
        m.hit(2, 0.0);
        assert_eq!(m.furthest_unmarked(), Some(1));
        m.remove(1);
        assert!(m.is_stale(1), "cached when the phase began");
        assert_eq!(m.num_unmarked(), 0);
        m.unpin(0, 9.0);
        assert_eq!(m.furthest_unmarked(), Some(0));
        assert!(!m.ensure_unmarked());
        m.insert(1, 5.0);
        assert!(m.is_stale(1) && m.is_marked(1));
        m.insert(7, 5.0);
        assert!(!m.is_stale(7));
        let mut rng = StdRng::seed_from_u64(1);
        assert_eq!(m.random_unmarked(&mut rng), Some(0));
    }
}

#[cfg(test)]
mod forgetting {
    use super::*;

    #[test]
    fn evicted_pages_are_forgotten_once_their_phase_ends() {
        let mut m = Marking::with_ghosts(0);
        for p in 0..3 {
            m.insert_pinned(p, 0.0);
            m.unpin(p, 0.0);
        }
        m.remove(0);
        m.remove(1);
        let mut out = Vec::new();
        m.take_forgotten(&mut out);
        assert!(out.is_empty(), "still in their phase");
        m.new_phase();
        m.insert(1, 0.0);
        m.take_forgotten(&mut out);
        assert_eq!(out, [0], "1 is cached again");
        out.clear();
        m.remove(1);
        m.insert(0, 0.0);
        m.remove(0);
        m.take_forgotten(&mut out);
        assert!(out.is_empty(), "gone again in this phase");
        m.new_phase();
        m.take_forgotten(&mut out);
        out.sort();
        assert_eq!(out, [0, 1]);
        m.take_forgotten(&mut out);
        assert_eq!(out, [0, 1], "each once");
    }

    #[test]
    fn the_lab_keeps_no_list() {
        let mut m = Marking::with_ghosts(0);
        m.insert(0, 0.0);
        m.remove(0);
        m.new_phase();
        assert!(m.forgettable.is_empty() && m.gone.is_empty());
    }
}
