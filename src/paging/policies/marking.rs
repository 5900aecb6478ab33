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
//! a phase change unmarks everything at once. The unpinned pages live in two vectors (for
//! uniform choice), unmarked and marked; a phase change makes the marked one the unmarked
//! one (merging the smaller into the larger when both are non-empty). Whether a page was
//! cached when the phase began is kept per page (its state at its first insert or removal
//! of the phase). All that is known about a page id is one record: an operation reads one
//! cache line per page.
//!
//! Only unmarked pages are chosen by prediction, so only they are ordered by it (in a state
//! made with predictions): a binary max-heap of (prediction, page) entries with lazy
//! deletion. In serving most pages enter the unmarked pool between phase changes (unmarked
//! by a phase change while in use, then unpinned) and are pushed; a page leaving the pool
//! (evicted, removed, pinned, hit) leaves its entry behind, and an entry that is not an
//! unmarked unpinned page with its latest prediction is popped when it reaches the top. So
//! the top is the largest such page, as a scan finds it: the order (prediction, then the
//! lower page id) is total, every unmarked unpinned page has an entry with its latest
//! prediction, and a stale entry never passes (a duplicate of a live one does no harm).
//! When stale entries outnumber the live ones by 32 the heap is rebuilt from the unmarked
//! vector. The marked pool has no heap (new pages enter marked: inserts, and hits and pins
//! of marked pages, do no heap work); at a phase change its pages join the heap, which is
//! empty at the marking policies' phase changes (no unmarked unpinned page is left), so it
//! is built bottom-up in O(n); when both pools are non-empty (LNonMarker's phases, counted
//! in distinct requests) `BinaryHeap::extend` pushes the marked pages one by one or
//! rebuilds, whichever its comparison count estimate finds cheaper. Every operation is O(1)
//! or O(log k) amortized, and `new_phase` O(marked unpinned pages), each of which got there
//! by an operation of the ending phase; without predictions (Marker) `new_phase` is O(1)
//! when no unmarked unpinned page is left, the only case the marking policies call it in.
//! [`Marking::random_unmarked_where`] is linear in the unmarked pages.
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

use crate::paging::util::BitSet;
use crate::paging::{Eviction, Req};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use std::collections::BinaryHeap;

const NO: u32 = u32::MAX;

/// Everything known about one page id.
#[derive(Clone, Copy)]
struct Page {
    /// The latest prediction.
    pred: f64,
    /// Slot in its pool's vector (unpinned cached pages), else `NO`.
    slot: u32,
    /// The phase of its latest mark.
    mark_phase: u32,
    /// The phase of its first insert or removal in that phase, and whether it was cached
    /// just before it.
    touched: u32,
    cached_at_touch: bool,
    cached: bool,
    pinned: bool,
    /// Listed in `gone` or `forgettable`.
    listed: bool,
}

const FRESH: Page = Page {
    pred: f64::INFINITY,
    slot: NO,
    mark_phase: 0,
    touched: 0,
    cached_at_touch: false,
    cached: false,
    pinned: false,
    listed: false,
};

/// An entry of the heap of unmarked pages: ordered by prediction (as [`order_key`], high
/// 64 bits), then by the lower page id (its complement, low 32 bits).
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
struct Entry(u128);

impl Entry {
    fn new(page: u32, pred: f64) -> Self {
        Entry((order_key(pred) as u128) << 64 | (!page) as u128)
    }

    fn key(&self) -> u64 {
        (self.0 >> 64) as u64
    }

    fn page(&self) -> u32 {
        !(self.0 as u32)
    }
}

/// A prediction as an integer in the same order (`-0.0` equals `0.0`, as `f64` compares
/// them; a NaN, which has no place in that order, sorts beyond the infinity of its sign).
fn order_key(pred: f64) -> u64 {
    let bits = if pred == 0.0 { 0 } else { pred.to_bits() };
    if bits >> 63 == 0 {
        bits | 1 << 63
    } else {
        !bits
    }
}

/// Marks, pins, phases and predictions of a marking algorithm's cache.
pub struct Marking {
    /// Per page id.
    pages: Vec<Page>,
    len: usize,
    /// Unpinned pages: `pools[unmarked]` unmarked, the other marked.
    pools: [Vec<u32>; 2],
    unmarked: usize,
    /// Keep the heap (false for policies that never choose by prediction).
    by_pred: bool,
    /// The unmarked pages by prediction, with lazy deletion (see the module doc): the top,
    /// if any, is an unmarked unpinned page with its latest prediction.
    heap: BinaryHeap<Entry>,
    /// The unmarked unpinned pages predicted never to be requested again (`f64::MAX`, most
    /// block contents of a serving run), outside the heap: among them the lower page id
    /// goes first, as in the heap's order, and a set of page ids finds it in O(1).
    never: BitSet,
    /// Serving: pages evicted or removed in this phase, and those of earlier phases (who
    /// is listed in either: `Page::listed`).
    gone: Vec<u32>,
    forgettable: Vec<u32>,
    ghosts: bool,
    track_gone: bool,
    /// Current phase number (from 1).
    pub phase: u32,
}

impl Marking {
    /// Empty state for page ids below `num_pages` (arrays grow beyond).
    pub fn new(num_pages: usize) -> Self {
        Marking {
            pages: vec![FRESH; num_pages],
            len: 0,
            pools: [Vec::new(), Vec::new()],
            unmarked: 0,
            by_pred: true,
            heap: BinaryHeap::new(),
            never: BitSet::default(),
            gone: Vec::new(),
            forgettable: Vec::new(),
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
    /// [`Marking::furthest_unmarked`] or [`Marking::key_of_unmarked`] (saves the heap work).
    pub fn without_predictions(num_pages: usize) -> Self {
        Marking {
            by_pred: false,
            ..Marking::new(num_pages)
        }
    }

    /// True when made by [`Marking::with_ghosts`]: evicted pages are remembered until their
    /// phase ends (the stale test, and Predictive Marker's chains, need the pages evicted in
    /// the current phase).
    pub fn has_ghosts(&self) -> bool {
        self.ghosts
    }

    fn grow(&mut self, page: u32) {
        let n = page as usize + 1;
        if n > self.pages.len() {
            self.pages.resize(n, FRESH);
        }
    }

    /// Cached pages, pinned or not.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Is `page` cached?
    pub fn contains(&self, page: u32) -> bool {
        self.pages.get(page as usize).is_some_and(|s| s.cached)
    }

    /// Is `page` cached and pinned?
    pub fn is_pinned(&self, page: u32) -> bool {
        self.pages.get(page as usize).is_some_and(|s| s.pinned)
    }

    /// Was `page` cached when the current phase began?
    pub fn is_stale(&self, page: u32) -> bool {
        match self.pages.get(page as usize) {
            Some(s) if s.touched == self.phase => s.cached_at_touch,
            Some(s) => s.cached,
            None => false,
        }
    }

    /// Is cached `page` marked in the current phase?
    pub fn is_marked(&self, page: u32) -> bool {
        self.pages
            .get(page as usize)
            .is_some_and(|s| s.mark_phase == self.phase)
    }

    /// Unmarked unpinned cached pages (the choosable ones).
    pub fn num_unmarked(&self) -> usize {
        self.pools[self.unmarked].len()
    }

    /// Is `page` unmarked, unpinned and cached (in the unmarked pool)?
    fn is_unmarked_free(&self, page: u32) -> bool {
        (self.pages.get(page as usize)).is_some_and(|s| s.slot != NO && s.mark_phase != self.phase)
    }

    /// Record `page`'s cached state before its first insert or removal of the phase.
    fn touch(&mut self, page: u32) {
        let phase = self.phase;
        let s = &mut self.pages[page as usize];
        if s.touched != phase {
            s.touched = phase;
            s.cached_at_touch = s.cached;
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

    /// Take unpinned cached `page` out of its pool.
    fn take_free(&mut self, page: u32) {
        let i = self.pool_of(page);
        let list = &mut self.pools[i];
        let pos = std::mem::replace(&mut self.pages[page as usize].slot, NO) as usize;
        debug_assert_eq!(list[pos], page);
        list.swap_remove(pos);
        if let Some(&moved) = list.get(pos) {
            self.pages[moved as usize].slot = pos as u32;
        }
        if self.by_pred && i == self.unmarked && !self.never.remove(page) {
            self.clean_top();
            self.bound_heap();
        }
    }

    /// Put unpinned cached `page` into its pool.
    fn put_free(&mut self, page: u32) {
        let i = self.pool_of(page);
        let list = &mut self.pools[i];
        let s = &mut self.pages[page as usize];
        s.slot = list.len() as u32;
        list.push(page);
        if self.by_pred && i == self.unmarked {
            self.order(page);
        }
    }

    /// Order the unmarked unpinned `page` by its prediction: in the heap, or in the set of
    /// pages predicted never to return.
    fn order(&mut self, page: u32) {
        let pred = self.pages[page as usize].pred;
        if pred == f64::MAX {
            self.never.grow(page as usize + 1);
            self.never.insert(page);
        } else {
            self.heap.push(Entry::new(page, pred));
            self.bound_heap();
        }
    }

    /// Is heap entry `e` the unmarked unpinned page it names, with its latest prediction?
    fn is_live(&self, e: &Entry) -> bool {
        let s = &self.pages[e.page() as usize];
        s.slot != NO && s.mark_phase != self.phase && order_key(s.pred) == e.key()
    }

    /// Pop stale entries off the top of the heap.
    fn clean_top(&mut self) {
        while let Some(top) = self.heap.peek() {
            if self.is_live(top) {
                break;
            }
            self.heap.pop();
        }
    }

    /// Rebuild the heap from the unmarked pool once stale entries outnumber the live ones by
    /// 32 (checked after every push and take: amortized O(1), since every stale entry was
    /// left by a take since the last rebuild, and they outnumber the entries a rebuild
    /// makes).
    #[inline]
    fn bound_heap(&mut self) {
        let live = self.pools[self.unmarked].len() - self.never.len();
        if self.heap.len() > 2 * live + 32 {
            self.rebuild_heap();
        }
    }

    /// The heap of the unmarked pool's entries only, built bottom-up.
    #[cold]
    fn rebuild_heap(&mut self) {
        let mut v = std::mem::take(&mut self.heap).into_vec();
        v.clear();
        let pages = &self.pages;
        let list = &self.pools[self.unmarked];
        let preds = list.iter().map(|&p| (p, pages[p as usize].pred));
        v.extend(
            preds
                .filter(|&(_, x)| x != f64::MAX)
                .map(|(p, x)| Entry::new(p, x)),
        );
        self.heap = BinaryHeap::from(v);
    }

    /// A request for cached `page` (pinned or not) with prediction `pred`: record it and
    /// mark the page.
    pub fn hit(&mut self, page: u32, pred: f64) {
        debug_assert!(self.contains(page));
        let free = !self.pages[page as usize].pinned;
        if free {
            self.take_free(page);
        }
        let s = &mut self.pages[page as usize];
        s.pred = pred;
        s.mark_phase = self.phase;
        if free {
            self.put_free(page);
        }
    }

    fn add(&mut self, page: u32, pred: f64, pinned: bool) {
        self.grow(page);
        debug_assert!(!self.contains(page));
        self.touch(page);
        let s = &mut self.pages[page as usize];
        s.cached = true;
        s.pinned = pinned;
        s.pred = pred;
        s.mark_phase = self.phase;
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
        if self.contains(page) && !self.pages[page as usize].pinned {
            self.take_free(page);
            self.pages[page as usize].pinned = true;
        }
    }

    /// Unpin cached `page`, with its latest prediction `pred` (its mark is unchanged).
    pub fn unpin(&mut self, page: u32, pred: f64) {
        if self.is_pinned(page) {
            let s = &mut self.pages[page as usize];
            s.pinned = false;
            s.pred = pred;
            self.put_free(page);
        }
    }

    /// Remove cached `page`, pinned or not.
    pub fn remove(&mut self, page: u32) {
        if !self.contains(page) {
            return;
        }
        if !self.pages[page as usize].pinned {
            self.take_free(page);
        }
        self.touch(page);
        let s = &mut self.pages[page as usize];
        s.cached = false;
        s.pinned = false;
        self.len -= 1;
        if self.track_gone && !s.listed {
            s.listed = true;
            self.gone.push(page);
        }
    }

    /// Serving: move into `out` the pages evicted or removed in earlier phases and not
    /// cached since (each once); their ids may be reused.
    #[inline]
    pub fn take_forgotten(&mut self, out: &mut Vec<u32>) {
        if !self.forgettable.is_empty() {
            self.forget(out);
        }
    }

    /// [`Marking::take_forgotten`] with pages to look at.
    fn forget(&mut self, out: &mut Vec<u32>) {
        for &page in &self.forgettable {
            let s = &mut self.pages[page as usize];
            if s.cached {
                s.listed = false;
            } else if s.touched == self.phase {
                // Cached again and gone again in this phase: remembered until it ends.
                self.gone.push(page);
            } else {
                s.listed = false;
                out.push(page);
            }
        }
        self.forgettable.clear();
    }

    /// Start a new phase: every cached page becomes unmarked and stale.
    pub fn new_phase(&mut self) {
        self.phase += 1;
        self.forgettable.append(&mut self.gone);
        let marked = 1 - self.unmarked;
        if self.by_pred {
            // The marked pages join the heap or the never set (the unmarked pages are
            // ordered already).
            let pages = &self.pages;
            let list = &self.pools[marked];
            let preds = list.iter().map(|&p| (p, pages[p as usize].pred));
            let (never, heap) = (&mut self.never, &mut self.heap);
            heap.extend(preds.filter_map(|(p, x)| {
                if x == f64::MAX {
                    never.grow(p as usize + 1);
                    never.insert(p);
                    None
                } else {
                    Some(Entry::new(p, x))
                }
            }));
        }
        if self.pools[self.unmarked].len() >= self.pools[marked].len() {
            self.merge(marked);
        } else {
            self.merge(self.unmarked);
            self.unmarked = marked;
        }
        if self.by_pred {
            self.bound_heap();
        }
    }

    /// Move every page of pool `from` to the end of the other pool, in order.
    fn merge(&mut self, from: usize) {
        let [a, b] = &mut self.pools;
        let (from, to) = if from == 0 { (a, b) } else { (b, a) };
        for page in from.drain(..) {
            self.pages[page as usize].slot = to.len() as u32;
            to.push(page);
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
        debug_assert!(self.by_pred, "made without predictions");
        let top = self.heap.peek();
        match top {
            Some(e) if e.key() > order_key(f64::MAX) => top.map(Entry::page),
            _ if !self.never.is_empty() => self.never.next_at_or_after(0),
            _ => top.map(Entry::page),
        }
    }

    /// The latest prediction of an unmarked unpinned page.
    pub fn key_of_unmarked(&self, page: u32) -> Option<f64> {
        debug_assert!(self.by_pred, "made without predictions");
        (self.is_unmarked_free(page)).then(|| self.pages[page as usize].pred)
    }

    /// A uniformly random unmarked unpinned page.
    pub fn random_unmarked(&self, rng: &mut StdRng) -> Option<u32> {
        let l = &self.pools[self.unmarked];
        (!l.is_empty()).then(|| l[rng.gen_range(0..l.len())])
    }

    /// A uniformly random unmarked unpinned page among those whose latest prediction
    /// satisfies `keep` (two passes over the unmarked pages).
    pub fn random_unmarked_where(
        &self,
        rng: &mut StdRng,
        keep: impl Fn(f64) -> bool,
    ) -> Option<u32> {
        let l = &self.pools[self.unmarked];
        let ok = |p: &&u32| keep(self.pages[**p as usize].pred);
        let n = l.iter().filter(ok).count();
        (n > 0).then(|| {
            let i = rng.gen_range(0..n);
            *l.iter().filter(ok).nth(i).expect("i < n")
        })
    }

    /// A uniformly random unpinned cached page, marked or not.
    pub fn random_cached(&self, rng: &mut StdRng) -> Option<u32> {
        let (u, m) = (&self.pools[self.unmarked], &self.pools[1 - self.unmarked]);
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
        let mut u = m.pools[m.unmarked].clone();
        u.sort();
        assert_eq!(u, n.choosable());
        assert!(
            m.heap.len() <= 2 * m.num_unmarked() + 32,
            "stale entries are bounded"
        );
        for p in 0..ids {
            assert_eq!(m.contains(p), n.pages.contains_key(&p), "page {p}");
            assert_eq!(m.is_pinned(p), n.pages.get(&p).is_some_and(|v| v.0));
            assert_eq!(m.is_stale(p), n.stale.contains(&p), "stale {p}");
            let key = (n.pages.get(&p)).and_then(|v| (!v.0 && !v.1).then_some(v.2));
            assert_eq!(
                m.key_of_unmarked(p).map(f64::to_bits),
                key.map(f64::to_bits)
            );
        }
    }

    /// Predictions with ties, both zeros, negatives and infinities.
    const PREDS: [f64; 12] = [
        0.0,
        -0.0,
        1.0,
        2.0,
        3.0,
        5.0,
        7.0,
        -1.5,
        f64::MAX,
        f64::INFINITY,
        f64::NEG_INFINITY,
        1e-300,
    ];

    /// One random operation on both.
    /// Evict the unmarked page predicted furthest (a new phase first if none is left), and
    /// check it is the naive model's choice.
    fn evict_furthest(m: &mut Marking, n: &mut Naive) {
        if m.ensure_unmarked() {
            n.new_phase();
        }
        let v = m.furthest_unmarked();
        assert_eq!(v, n.furthest());
        if let Some(v) = v {
            m.remove(v);
            n.pages.remove(&v);
        }
    }

    fn step(m: &mut Marking, n: &mut Naive, rng: &mut StdRng, ids: u32) {
        let p = rng.gen_range(0..ids);
        let pred = PREDS[rng.gen_range(0..PREDS.len())];
        let cached = n.pages.contains_key(&p);
        match rng.gen_range(0..9) {
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
            6 => {
                if m.ensure_unmarked() {
                    n.new_phase();
                }
            }
            // An eviction by prediction (the serving path's main operation).
            _ => evict_furthest(m, n),
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
    fn serving_operations_evict_as_a_scan_with_many_pages() {
        // Mostly pinned pages unpinned after phase changes (serving's pattern: they enter
        // the unmarked pool between phase changes), evictions by prediction, and enough
        // pages for a deep heap and its rebuilds.
        for seed in 0..6 {
            let mut rng = StdRng::seed_from_u64(100 + seed);
            let ids = rng.gen_range(150..400);
            let (mut m, mut n) = (Marking::with_ghosts(0), Naive::default());
            for _ in 0..4000 {
                let p = rng.gen_range(0..ids);
                let pred = if rng.gen_range(0..3) == 0 {
                    PREDS[rng.gen_range(0..PREDS.len())]
                } else {
                    rng.gen_range(0..1000) as f64
                };
                match (n.pages.get(&p).copied(), rng.gen_range(0..6)) {
                    (None, _) => {
                        m.insert_pinned(p, pred);
                        n.pages.insert(p, (true, true, pred));
                    }
                    (Some((true, ..)), 0..=2) => {
                        m.unpin(p, pred);
                        let v = n.pages.get_mut(&p).unwrap();
                        (v.0, v.2) = (false, pred);
                    }
                    (Some((false, ..)), 0) => {
                        m.pin(p);
                        m.hit(p, pred);
                        n.pages.insert(p, (true, true, pred));
                    }
                    (Some(_), 1) if n.pages.len() * 2 > ids as usize => {
                        evict_furthest(&mut m, &mut n)
                    }
                    _ => step(&mut m, &mut n, &mut rng, ids),
                }
                check(&m, &n, ids + 2);
            }
        }
    }

    #[test]
    fn phase_changes_with_most_pages_pinned_cost_the_unpinned_pages_only() {
        // 200,000 pinned pages and one unpinned page at a time, marked by its insert: every
        // eviction begins a phase, which must not look at the pinned pages.
        let n = 200_000u32;
        let mut m = Marking::with_ghosts(0);
        for p in 0..n {
            m.insert_pinned(p, 0.0);
        }
        for p in n..n + 20_000 {
            m.insert_pinned(p, 0.0);
            m.unpin(p, 1.0);
            assert!(m.ensure_unmarked());
            assert_eq!(m.furthest_unmarked(), Some(p));
            m.remove(p);
        }
        assert_eq!(m.phase, 20_001);
        // Unpinned now, all unmarked: evicted by prediction, furthest first (ties: lower id).
        for p in 0..n {
            m.unpin(p, (p % 1000) as f64);
        }
        let mut last = (f64::INFINITY, 0);
        for _ in 0..n {
            let v = m.furthest_unmarked().unwrap();
            let key = (v % 1000) as f64;
            assert!(key < last.0 || (key == last.0 && v > last.1));
            last = (key, v);
            m.remove(v);
        }
        assert_eq!(m.furthest_unmarked(), None);
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
