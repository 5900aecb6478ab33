//! Robust combinations of two policies (Antoniadis et al., ICML 2020, after Fiat et al.
//! and Blum and Burch). Both policies are simulated on their own virtual caches of the
//! combination's size `k`; the combined cache follows one of them lazily: on a miss it
//! evicts, among its pages that the followed policy does not hold, the one placed earliest
//! (placed = inserted; ties by insert order), so it loads one page per miss.
//!
//! - `Deterministic` (the switch with a growing bound): follow policy A until its cost
//!   exceeds the bound, then switch to the other and multiply the bound by `1 + gamma`.
//!   Cost at most `(9/gamma) min(cost_A, cost_B)` plus lower-order terms (O(1) for fixed
//!   gamma).
//! - `Randomized` (Blum–Burch): weights `w_i ← w_i beta^{loss_i}` with `beta = 1 - eps/2`;
//!   when the followed policy's probability drops, switch with the probability of the drop.
//!   Cost at most `(1 + eps) min(cost_A, cost_B) + O(k/eps)` in expectation. Both
//!   probabilities are kept at least `MIN_PROB` (1e-200), out of the subnormal range.
//!
//! In the paging lab a page outside the followed cache always exists at a miss (the
//! followed policy holds the requested page and `k - 1` others after serving it, and the
//! combined cache holds `k` pages without the requested one). The placement order is that
//! of the earlier frame rule (pages placed into empty frames at time -1, ties to the lower
//! frame: frames fill in insert order), except after `remove`, which that rule got wrong
//! (the next page placed into the removed page's frame kept its placement time).
//!
//! Serving (pins): the sub-policies are fed every access (`hit` and `insert_pinned`, as a
//! lab access of that page) and never see pins. `evict` takes the earliest-placed unpinned
//! page outside the followed policy's virtual cache, or, if every unpinned page is in it,
//! the earliest-placed unpinned page. The sub-policies remember pages the combined cache no
//! longer holds, so the combination has ghosts: a page id is forgotten once neither the
//! combined cache nor a virtual cache holds it.
//!
//! Cost: the cached pages in placement order ([`SeqSets`]: insert numbers as slots of bit
//! sets, renumbered in order when they run out) with three sets over them, kept exact: the
//! unpinned pages (`free`) and, per sub-policy `s`, those of them its virtual cache does not
//! hold (`outside[s]`). A page joins `free` and the `outside` sets of the sub-policies that
//! do not hold it when it is unpinned, leaves them all when pinned or dropped, joins
//! `outside[s]` when `s` loses it and leaves it when `s` gains it (only the requested page
//! can be gained). `evict` takes the first member of `outside[followed]`, else of `free`: a
//! search of the bit sets from the lowest slot that may hold one, so every operation is O(1)
//! but the search, which skips 64 slots a word and 4,096 a summary word. The sub-policies
//! are driven as the lab does (find, then evict and insert on a miss) and asked `contains`
//! only where the answer matters: after an access of a page unpinned here, for a page being
//! unpinned, for a victim that the combined cache does not hold (does the other one?) and
//! at drops.

use crate::paging::util::SeqSets;
use crate::paging::{Eviction, Req};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

/// How the combination chooses which policy to follow.
pub enum Scheme {
    /// Switch when the followed policy's cost exceeds a bound that grows by `1 + gamma`.
    Deterministic {
        /// Bound growth.
        gamma: f64,
    },
    /// Blum–Burch multiplicative weights with parameter `eps`.
    Randomized {
        /// Learning parameter.
        eps: f64,
    },
}

/// A sub-policy on its own cache, driven as [`crate::paging::Cache::access`] does, that
/// reports what each access changed.
struct Virtual {
    policy: Box<dyn Eviction>,
    capacity: usize,
}

impl Virtual {
    /// Serve `r` as one lab access; returns whether it hit and the page evicted to make
    /// room, if any. A hit means the page was cached before the access (`find`'s meaning);
    /// on a miss the page was not, and `insert` may cache it (or not: a policy may bypass
    /// it). A hit may drop the page (a policy that discards it once served); the caller
    /// asks `contains` where that matters.
    fn access(&mut self, r: &Req) -> (bool, Option<u32>) {
        if self.policy.find(r) {
            return (true, None);
        }
        let lost = if self.policy.len() >= self.capacity {
            Some(self.policy.evict(r))
        } else {
            None
        };
        self.policy.insert(r);
        (false, lost)
    }
}

/// The least probability the randomized scheme gives a policy (far above the subnormal
/// range, far below any switching probability that matters: 1,600 net losses below
/// 1/2 at the default `eps`).
const MIN_PROB: f64 = 1e-200;

/// The sets over the placement order: `outside[0]`, `outside[1]` and `free` (`ALL`).
const ALL: usize = 2;

const ABSENT: u8 = 0;
const PINNED: u8 = 1;
const FREE: u8 = 2;

/// What the combined cache knows of one page.
#[derive(Clone, Copy)]
struct Slot {
    /// ABSENT, PINNED or FREE (cached, unpinned).
    state: u8,
    /// Listed in `forgotten`.
    listed: bool,
}

const UNKNOWN: Slot = Slot {
    state: ABSENT,
    listed: false,
};

/// A lazy follower of two simulated policies.
pub struct Combined {
    name: String,
    subs: [Virtual; 2],
    scheme: Scheme,
    current: usize,
    // Deterministic state.
    costs: [u64; 2],
    bound: f64,
    // Randomized state.
    probs: [f64; 2],
    rng: StdRng,
    // Own cache, per page.
    slots: Vec<Slot>,
    last_t: u64,
    /// The cached pages in placement order, with the sets `free` (`ALL`: the unpinned
    /// ones) and `outside[s]` (those that sub-policy `s`'s virtual cache does not hold).
    order: SeqSets<3>,
    /// Pages that may be held by nobody any more (checked when taken; `Slot::listed`).
    forgotten: Vec<u32>,
}

impl Combined {
    /// Combine `a` and `b` (each simulated with capacity `k`) under `scheme`.
    pub fn new(
        name: String,
        a: Box<dyn Eviction>,
        b: Box<dyn Eviction>,
        k: usize,
        num_pages: usize,
        scheme: Scheme,
        seed: u64,
    ) -> Self {
        let mut rng = StdRng::seed_from_u64(seed);
        let current = if matches!(scheme, Scheme::Randomized { .. }) {
            rng.gen_range(0..2)
        } else {
            0
        };
        let sub = |policy| Virtual {
            policy,
            capacity: k,
        };
        Combined {
            name,
            subs: [sub(a), sub(b)],
            scheme,
            current,
            costs: [0, 0],
            bound: 1.0,
            probs: [0.5, 0.5],
            rng,
            slots: vec![UNKNOWN; num_pages],
            last_t: 0,
            order: SeqSets::default(),
            forgotten: Vec::new(),
        }
    }

    /// The policy followed now (0 or 1, in the order of construction).
    pub fn following(&self) -> usize {
        self.current
    }

    fn state(&self, page: u32) -> u8 {
        self.slots.get(page as usize).map_or(ABSENT, |s| s.state)
    }

    fn held_by_a_sub(&self, page: u32) -> bool {
        self.subs.iter().any(|s| s.policy.contains(page))
    }

    /// Serve `r` on both simulated policies, track what changed in their caches and
    /// choose which one to follow.
    ///
    /// Only the requested page can be gained, and it may be dropped on a hit too: if it is
    /// unpinned here, its `outside[s]` membership is set from `s`'s answer; if it is not
    /// cached here, a drop may leave it held by nobody. A pinned page is in no set.
    fn step_subs(&mut self, r: &Req) {
        let mut loss = [0u64; 2];
        for (s, l) in loss.iter_mut().enumerate() {
            let (hit, lost) = self.subs[s].access(r);
            *l = !hit as u64;
            if let Some(v) = lost {
                self.sub_lost(s, v);
            }
            match self.state(r.page) {
                FREE => {
                    if self.subs[s].policy.contains(r.page) {
                        self.order.remove(s, r.page);
                    } else {
                        self.order.insert(s, r.page);
                    }
                }
                ABSENT if hit && !self.subs[s].policy.contains(r.page) => self.sub_lost(s, r.page),
                _ => {}
            }
        }
        self.choose(loss);
    }

    /// Update the scheme with the sub-policies' losses on one request.
    fn choose(&mut self, loss: [u64; 2]) {
        match self.scheme {
            Scheme::Deterministic { gamma } => {
                self.costs[0] += loss[0];
                self.costs[1] += loss[1];
                while self.costs[self.current] as f64 > self.bound {
                    self.current = 1 - self.current;
                    self.bound *= 1.0 + gamma;
                }
            }
            Scheme::Randomized { eps } => {
                let beta = 1.0 - 0.5 * eps;
                // beta^loss for a loss of 0 or 1 (as `powi` gives, without its call).
                let f = |l: u64| if l == 0 { 1.0 } else { beta };
                let w = [self.probs[0] * f(loss[0]), self.probs[1] * f(loss[1])];
                let total = w[0] + w[1];
                let new = Self::floored([w[0] / total, w[1] / total]);
                let c = self.current;
                if new[c] < self.probs[c]
                    && self.rng.gen::<f64>() <= (self.probs[c] - new[c]) / self.probs[c]
                {
                    self.current = 1 - c;
                }
                self.probs = new;
            }
        }
    }

    /// Keep both probabilities at least [`MIN_PROB`]: a policy that keeps losing would
    /// otherwise sink into subnormal numbers, where every multiplication and division of
    /// the update takes a hundred cycles or more (and then to 0, never to be followed
    /// again). Probabilities above the floor are untouched.
    fn floored(p: [f64; 2]) -> [f64; 2] {
        match p {
            [a, _] if a < MIN_PROB => [MIN_PROB, 1.0 - MIN_PROB],
            [_, b] if b < MIN_PROB => [1.0 - MIN_PROB, MIN_PROB],
            p => p,
        }
    }

    /// The earliest-placed member of set `set`.
    fn first(&mut self, set: usize) -> Option<u32> {
        let slot = self.order.first(set)?;
        Some(self.order.page_at(slot))
    }

    /// Sub-policy `s`'s virtual cache lost `page` (so `s` does not hold it).
    fn sub_lost(&mut self, s: usize, page: u32) {
        match self.state(page) {
            FREE => {
                self.order.insert(s, page);
            }
            ABSENT if !self.subs[1 - s].policy.contains(page) => self.forget(page),
            _ => {}
        }
    }

    /// `page` may be held by nobody now.
    fn forget(&mut self, page: u32) {
        let p = page as usize;
        if p >= self.slots.len() {
            self.slots.resize(p + 1, UNKNOWN);
        }
        if !self.slots[p].listed {
            self.slots[p].listed = true;
            self.forgotten.push(page);
        }
    }

    /// Cache the missing page `r.page`, placed now.
    fn place(&mut self, r: &Req, pinned: bool) {
        let p = r.page as usize;
        if p >= self.slots.len() {
            self.slots.resize(p + 1, UNKNOWN);
        }
        debug_assert_eq!(self.slots[p].state, ABSENT, "page {p} is cached");
        debug_assert!(r.t >= self.last_t, "requests in time order");
        self.last_t = r.t;
        self.order.push(r.page);
        self.slots[p].state = PINNED;
        if !pinned {
            self.make_free(r.page);
        }
    }

    /// The pinned cached `page` becomes evictable.
    fn make_free(&mut self, page: u32) {
        self.slots[page as usize].state = FREE;
        self.order.insert(ALL, page);
        for s in 0..2 {
            if !self.subs[s].policy.contains(page) {
                self.order.insert(s, page);
            }
        }
    }

    /// The unpinned cached `page` becomes unevictable (pinned): it leaves every set.
    fn make_pinned(&mut self, page: u32) {
        self.slots[page as usize].state = PINNED;
        for set in 0..3 {
            self.order.remove(set, page);
        }
    }

    /// Forget cached `page` (pinned or not); `outside_of`: a sub-policy known not to hold
    /// it.
    fn drop_page(&mut self, page: u32, outside_of: Option<usize>) {
        if self.slots[page as usize].state == FREE {
            self.make_pinned(page);
        }
        self.order.remove_page(page);
        self.slots[page as usize].state = ABSENT;
        let held = match outside_of {
            Some(s) => self.subs[1 - s].policy.contains(page),
            None => self.held_by_a_sub(page),
        };
        if !held {
            self.forget(page);
        }
    }
}

impl Eviction for Combined {
    fn name(&self) -> String {
        self.name.clone()
    }
    fn find(&mut self, r: &Req) -> bool {
        self.step_subs(r);
        self.contains(r.page)
    }
    fn insert(&mut self, r: &Req) {
        self.place(r, false);
    }
    fn evict(&mut self, _: &Req) -> u32 {
        // In the lab the followed policy holds the requested page and k-1 others, so some
        // page of ours is not among them; in serving, fall back to the earliest unpinned.
        let cur = self.current;
        let (v, known) = match self.first(cur) {
            Some(v) => (v, Some(cur)),
            None => {
                let v = self.first(ALL).expect("evict with no unpinned page");
                (v, None)
            }
        };
        self.drop_page(v, known);
        v
    }
    fn remove(&mut self, page: u32) {
        if self.contains(page) {
            self.drop_page(page, None);
        }
    }
    fn len(&self) -> usize {
        self.order.len()
    }
    fn contains(&self, page: u32) -> bool {
        self.state(page) != ABSENT
    }
    fn serves(&self) -> bool {
        true
    }
    fn insert_pinned(&mut self, r: &Req) {
        self.step_subs(r);
        self.place(r, true);
    }
    fn hit(&mut self, r: &Req) {
        self.step_subs(r);
    }
    fn pin(&mut self, page: u32) {
        if self.state(page) == FREE {
            self.make_pinned(page);
        }
    }
    fn unpin(&mut self, r: &Req) {
        if self.state(r.page) == PINNED {
            self.make_free(r.page);
        }
    }
    fn take_forgotten(&mut self, out: &mut Vec<u32>) {
        // Called after every eviction; usually nothing is listed.
        if self.forgotten.is_empty() {
            return;
        }
        let mut list = std::mem::take(&mut self.forgotten);
        for page in list.drain(..) {
            self.slots[page as usize].listed = false;
            if self.state(page) == ABSENT && !self.held_by_a_sub(page) {
                out.push(page);
            }
        }
        self.forgotten = list;
    }
    fn has_ghosts(&self) -> bool {
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::paging::{make_policy, PolicyParams, NEVER};
    use std::collections::{BTreeSet, HashSet};

    fn combo(a: &str, b: &str, k: usize, scheme: Scheme, seed: u64) -> Combined {
        let p = PolicyParams::new(k, 4, seed);
        let (a, b) = (make_policy(a, &p).unwrap(), make_policy(b, &p).unwrap());
        Combined::new("c".into(), a, b, k, 4, scheme, seed)
    }

    /// A cached page's placement: its slot in the placement order (slots only grow with
    /// placement, renumbering keeps their order).
    fn placed(c: &Combined, page: u32) -> u32 {
        c.order.slot(page).expect("cached")
    }

    /// The rule, by a scan: the earliest-placed unpinned page outside the followed cache,
    /// else the earliest-placed unpinned page.
    fn expected_victim(c: &Combined) -> Option<u32> {
        let free = (0..c.slots.len() as u32).filter(|&p| c.state(p) == FREE);
        let lead = &c.subs[c.current].policy;
        let outside = free.clone().filter(|&p| !lead.contains(p));
        let first = |it: &mut dyn Iterator<Item = u32>| it.min_by_key(|&p| placed(c, p));
        first(&mut outside.into_iter()).or_else(|| first(&mut free.into_iter()))
    }

    /// The members of set `set`.
    fn members(c: &Combined, set: usize) -> BTreeSet<u32> {
        (0..c.slots.len() as u32)
            .filter(|&p| c.order.in_set(set, p))
            .collect()
    }

    /// The sets are exactly what they stand for, and the placement order holds exactly the
    /// cached pages.
    fn check_sets(c: &Combined) {
        let pages = 0..c.slots.len() as u32;
        let free: BTreeSet<u32> = pages.clone().filter(|&p| c.state(p) == FREE).collect();
        assert_eq!(members(c, ALL), free);
        for s in 0..2 {
            let held = |p: &u32| c.subs[s].policy.contains(*p);
            let out: BTreeSet<u32> = free.iter().copied().filter(|p| !held(p)).collect();
            assert_eq!(members(c, s), out, "sub {s}");
        }
        for p in pages {
            assert_eq!(c.order.contains(p), c.state(p) != ABSENT, "page {p}");
        }
        assert_eq!(c.order.set_len(ALL), free.len());
        let n = c.slots.iter().filter(|s| s.state != ABSENT).count();
        assert_eq!(c.len(), n);
        assert_eq!(c.order.len(), n);
    }

    fn req(t: u64, page: u32, rng: &mut StdRng) -> Req {
        Req {
            t,
            page,
            next_use: t + rng.gen_range(1..50),
            pred: rng.gen_range(0.0..50.0) + t as f64,
        }
    }

    /// Random serving operations; every eviction follows the rule, the sets stay exact
    /// and every page held by nobody is eventually given back as forgotten. With `bits`,
    /// the predictions are one-bit (0 or 1).
    fn random_serving(mut c: Combined, seed: u64, bits: bool) {
        let mut rng = StdRng::seed_from_u64(seed);
        let ids = rng.gen_range(4..30);
        let mut known = HashSet::new();
        for t in 0..800u64 {
            let p = rng.gen_range(0..ids);
            let mut r = req(t, p, &mut rng);
            if bits {
                r.pred = rng.gen_range(0..2) as f64;
            }
            match (rng.gen_range(0..6), c.state(p)) {
                (0 | 1, ABSENT) => {
                    c.insert_pinned(&r);
                    known.insert(p);
                }
                (0 | 1, _) => c.hit(&r),
                (2, _) => c.pin(p),
                (3, _) => c.unpin(&r),
                (4, _) => c.remove(p),
                _ => {
                    if let Some(v) = expected_victim(&c) {
                        assert_eq!(c.evict(&r), v);
                    }
                }
            }
            check_sets(&c);
            let mut out = Vec::new();
            c.take_forgotten(&mut out);
            for q in out {
                assert!(!c.contains(q) && !c.held_by_a_sub(q));
                assert!(known.remove(&q), "page {q} given twice");
            }
            for &q in &known {
                assert!(c.contains(q) || c.held_by_a_sub(q), "page {q} not given");
            }
        }
    }

    #[test]
    fn serving_follows_the_rule_on_random_operations() {
        for seed in 0..12 {
            let k = 2 + seed as usize % 7;
            let det = Scheme::Deterministic { gamma: 0.01 };
            random_serving(combo("ftp", "lru", k, det, seed), seed, false);
            let rnd = Scheme::Randomized { eps: 0.5 };
            random_serving(combo("marker", "ftp", k, rnd, seed), seed + 100, false);
            // Mark0 drops a page on a hit with bit 1 and does not admit such a miss.
            let rnd = Scheme::Randomized { eps: 0.5 };
            random_serving(
                combo("mark0", "discard-lru", k, rnd, seed),
                seed + 200,
                true,
            );
        }
    }

    fn lab(t: u64, page: u32, pred: f64) -> Req {
        Req {
            t,
            page,
            next_use: NEVER,
            pred,
        }
    }

    #[test]
    fn the_order_stays_bounded_under_pin_unpin_cycles_and_churn() {
        // At most 40 cached pages (ids below 60), sub-policies of 8, so that hits make the
        // sub-policies drop unpinned pages. Some 80,000 operations with evictions and
        // inserts: the placement order is renumbered many times and keeps its slots within
        // twice the cached pages (or its minimum of 1,024), the sets stay exact and every
        // eviction follows the rule.
        let n = 40;
        for (a, b) in [("ftp", "lru"), ("marker", "ftp")] {
            let mut c = combo(a, b, 8, Scheme::Randomized { eps: 0.5 }, 3);
            let mut rng = StdRng::seed_from_u64(3);
            let mut t = 0;
            for p in 0..n as u32 {
                let r = req(t, p, &mut rng);
                c.insert_pinned(&r);
                c.unpin(&r);
                t += 1;
            }
            let mut placed = 0;
            for round in 0..80_000 {
                let r = req(t, rng.gen_range(0..60), &mut rng);
                match (rng.gen_range(0..5), c.state(r.page)) {
                    (0, ABSENT) => {
                        if c.len() == n {
                            match expected_victim(&c) {
                                Some(v) => assert_eq!(c.evict(&r), v),
                                None => continue,
                            }
                        }
                        c.insert_pinned(&r);
                        placed += 1;
                    }
                    (0, _) => c.hit(&r),
                    (1 | 2, _) => c.unpin(&r),
                    (3, _) => c.pin(r.page),
                    _ => c.hit(&r),
                }
                t += 1;
                assert!(c.order.capacity() <= 1024, "round {round}");
                if round % 1000 == 0 {
                    check_sets(&c);
                }
            }
            assert!(
                placed > 4 * 1024,
                "{placed} placements: too few to renumber"
            );
            check_sets(&c);
            while let Some(v) = expected_victim(&c) {
                assert_eq!(c.evict(&req(t, 0, &mut rng)), v);
                check_sets(&c);
            }
        }
    }

    #[test]
    fn a_long_losing_streak_leaves_a_normal_probability_that_recovers() {
        // 0.75^5000 is about 1e-625: without the floor the loser's probability sinks
        // through the subnormal numbers to 0 and never comes back.
        let mut c = combo("lru", "fifo", 4, Scheme::Randomized { eps: 0.5 }, 3);
        for _ in 0..5000 {
            c.choose([1, 0]);
            assert!(c.probs.iter().all(|p| p.is_normal()), "{:?}", c.probs);
        }
        assert_eq!(c.probs[0], MIN_PROB);
        assert_eq!(c.following(), 1, "switched away from the loser");
        for _ in 0..5000 {
            c.choose([0, 1]);
        }
        assert!(c.probs[0] > 0.99, "{:?}", c.probs);
        assert_eq!(c.following(), 0, "the winner is followed again");
    }

    #[test]
    fn a_page_inserted_after_a_remove_is_placed_at_its_insert() {
        // k = 3, both followed policies FTP. A(100) B(200) C(5); remove A; D(1000): FTP
        // evicts B (A is still in its cache); E(1): FTP evicts D, so B and D are outside
        // it. B was placed first. (The frame rule placed D into A's frame with A's time -1,
        // tied with B and ahead of it by frame, and evicted D.)
        let mut c = combo("ftp", "ftp", 3, Scheme::Deterministic { gamma: 0.01 }, 0);
        for (t, page, pred) in [(0, 0, 100.0), (1, 1, 200.0), (2, 2, 5.0)] {
            assert!(!c.find(&lab(t, page, pred)));
            c.insert(&lab(t, page, pred));
        }
        c.remove(0);
        assert!(!c.find(&lab(3, 3, 1000.0)));
        c.insert(&lab(3, 3, 1000.0));
        let e = lab(4, 4, 1.0);
        assert!(!c.find(&e));
        assert_eq!(c.evict(&e), 1);
        c.insert(&e);
        assert!(c.contains(3) && c.contains(2) && c.contains(4) && c.len() == 3);
    }
}

#[cfg(test)]
mod scale {
    use super::*;
    use crate::paging::{make_policy, PolicyParams, NEVER};

    #[test]
    fn evictions_cost_o_log_k_with_most_pages_pinned() {
        // 100,000 pinned pages, sub-policies of 100,000 pages, and 20,000 rounds of a new
        // page entering, leaving use and being evicted (a scan per eviction would cost 2e9
        // steps here).
        let (n, k) = (100_000u32, 100_000);
        let p = PolicyParams::new(k, 0, 0);
        let (a, b) = (
            make_policy("ftp", &p).unwrap(),
            make_policy("lru", &p).unwrap(),
        );
        let mut c = Combined::new(
            "c".into(),
            a,
            b,
            k,
            0,
            Scheme::Deterministic { gamma: 0.01 },
            0,
        );
        let r = |t: u64, page: u32| Req {
            t,
            page,
            next_use: NEVER,
            pred: (t % 977) as f64,
        };
        for i in 0..n {
            c.insert_pinned(&r(i as u64, i));
        }
        for i in n..n + 20_000 {
            c.insert_pinned(&r(i as u64, i));
            c.unpin(&r(i as u64, i));
            assert_eq!(c.evict(&r(i as u64, u32::MAX - 1)), i);
        }
        assert_eq!(c.len(), n as usize);
    }
}
