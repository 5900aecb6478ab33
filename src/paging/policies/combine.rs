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
//!   Cost at most `(1 + eps) min(cost_A, cost_B) + O(k/eps)` in expectation.
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
//! Cost: ordered sets (by placement) of the unpinned pages, and per sub-policy of those it
//! does not hold, kept up to date from what each access changes in the virtual caches (a
//! small driver, `Virtual`, reports the inserted page and the victim): every operation is
//! O(log k) plus the sub-policies' own work.

use crate::paging::{Eviction, Req};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use std::collections::BTreeSet;

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

/// What one access changed in a virtual cache.
struct Change {
    hit: bool,
    /// The page evicted to make room, if any.
    lost: Option<u32>,
    /// Was the requested page cached before the access, and after it?
    before: bool,
    after: bool,
}

impl Virtual {
    fn access(&mut self, r: &Req) -> Change {
        let before = self.policy.contains(r.page);
        let hit = self.policy.find(r);
        let mut lost = None;
        if !hit {
            if self.policy.len() >= self.capacity {
                lost = Some(self.policy.evict(r));
            }
            self.policy.insert(r);
        }
        Change {
            hit,
            lost,
            before,
            after: self.policy.contains(r.page),
        }
    }
}

/// A cached page's place in the order of placement: its insert number (high 32 bits) and
/// the page (low 32 bits). Requests come in time order, so placement time order is insert
/// order.
type Key = u64;

const ABSENT: u8 = 0;
const PINNED: u8 = 1;
const FREE: u8 = 2;

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
    // Own cache: per page ABSENT, PINNED or FREE (cached, unpinned), and its placement.
    state: Vec<u8>,
    placed: Vec<u64>,
    last_t: u64,
    inserts: u64,
    len: usize,
    /// Unpinned cached pages by placement.
    free: BTreeSet<Key>,
    /// Per sub-policy: the unpinned cached pages its virtual cache does not hold.
    outside: [BTreeSet<Key>; 2],
    /// Pages that may be held by nobody any more (checked when taken), and who is listed.
    forgotten: Vec<u32>,
    listed: Vec<bool>,
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
            state: vec![ABSENT; num_pages],
            placed: vec![0; num_pages],
            last_t: 0,
            inserts: 0,
            len: 0,
            free: BTreeSet::new(),
            outside: [BTreeSet::new(), BTreeSet::new()],
            forgotten: Vec::new(),
            listed: vec![false; num_pages],
        }
    }

    /// The policy followed now (0 or 1, in the order of construction).
    pub fn following(&self) -> usize {
        self.current
    }

    fn state(&self, page: u32) -> u8 {
        self.state.get(page as usize).copied().unwrap_or(ABSENT)
    }

    fn key(&self, page: u32) -> Key {
        (self.placed[page as usize] << 32) | page as u64
    }

    fn held_by_a_sub(&self, page: u32) -> bool {
        self.subs.iter().any(|s| s.policy.contains(page))
    }

    /// Serve `r` on both simulated policies, track what changed in their caches and
    /// choose which one to follow.
    fn step_subs(&mut self, r: &Req) {
        let mut loss = [0u64; 2];
        for (s, l) in loss.iter_mut().enumerate() {
            let c = self.subs[s].access(r);
            *l = !c.hit as u64;
            if let Some(v) = c.lost {
                self.sub_lost(s, v);
            }
            match (c.before, c.after) {
                (false, true) => self.sub_gained(s, r.page),
                (true, false) => self.sub_lost(s, r.page),
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
                let w = [
                    self.probs[0] * beta.powi(loss[0] as i32),
                    self.probs[1] * beta.powi(loss[1] as i32),
                ];
                let total = w[0] + w[1];
                let new = [w[0] / total, w[1] / total];
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

    /// Sub-policy `s`'s virtual cache gained `page`.
    fn sub_gained(&mut self, s: usize, page: u32) {
        if self.state(page) == FREE {
            let k = self.key(page);
            self.outside[s].remove(&k);
        }
    }

    /// Sub-policy `s`'s virtual cache lost `page`.
    fn sub_lost(&mut self, s: usize, page: u32) {
        match self.state(page) {
            FREE => {
                let k = self.key(page);
                self.outside[s].insert(k);
            }
            ABSENT if !self.held_by_a_sub(page) => self.forget(page),
            _ => {}
        }
    }

    /// `page` may be held by nobody now.
    fn forget(&mut self, page: u32) {
        let p = page as usize;
        if p >= self.listed.len() {
            self.listed.resize(p + 1, false);
        }
        if !self.listed[p] {
            self.listed[p] = true;
            self.forgotten.push(page);
        }
    }

    /// Cache the missing page `r.page`, placed now.
    fn place(&mut self, r: &Req, pinned: bool) {
        let p = r.page as usize;
        if p >= self.state.len() {
            self.state.resize(p + 1, ABSENT);
            self.placed.resize(p + 1, 0);
        }
        debug_assert_eq!(self.state[p], ABSENT, "page {p} is cached");
        debug_assert!(r.t >= self.last_t, "requests in time order");
        self.last_t = r.t;
        assert!(self.inserts < 1 << 32, "insert numbers fit in 32 bits");
        self.placed[p] = self.inserts;
        self.inserts += 1;
        self.len += 1;
        self.state[p] = PINNED;
        if !pinned {
            self.make_free(r.page);
        }
    }

    /// The pinned cached `page` becomes evictable.
    fn make_free(&mut self, page: u32) {
        self.state[page as usize] = FREE;
        let k = self.key(page);
        self.free.insert(k);
        for s in 0..2 {
            if !self.subs[s].policy.contains(page) {
                self.outside[s].insert(k);
            }
        }
    }

    /// The unpinned cached `page` becomes unevictable (pinned).
    fn make_pinned(&mut self, page: u32) {
        self.state[page as usize] = PINNED;
        let k = self.key(page);
        self.free.remove(&k);
        for o in &mut self.outside {
            o.remove(&k);
        }
    }

    /// Forget cached `page` (pinned or not).
    fn drop_page(&mut self, page: u32) {
        if self.state[page as usize] == FREE {
            self.make_pinned(page);
        }
        self.state[page as usize] = ABSENT;
        self.len -= 1;
        if !self.held_by_a_sub(page) {
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
        let v = self.outside[self.current]
            .first()
            .or_else(|| self.free.first())
            .map(|&k| k as u32)
            .expect("evict with no unpinned page");
        self.drop_page(v);
        v
    }
    fn remove(&mut self, page: u32) {
        if self.contains(page) {
            self.drop_page(page);
        }
    }
    fn len(&self) -> usize {
        self.len
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
        let mut list = std::mem::take(&mut self.forgotten);
        for page in list.drain(..) {
            self.listed[page as usize] = false;
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
    use std::collections::HashSet;

    fn combo(a: &str, b: &str, k: usize, scheme: Scheme, seed: u64) -> Combined {
        let p = PolicyParams::new(k, 4, seed);
        let (a, b) = (make_policy(a, &p).unwrap(), make_policy(b, &p).unwrap());
        Combined::new("c".into(), a, b, k, 4, scheme, seed)
    }

    /// The rule, by a scan: the earliest-placed unpinned page outside the followed cache,
    /// else the earliest-placed unpinned page.
    fn expected_victim(c: &Combined) -> Option<u32> {
        let free = (0..c.state.len() as u32).filter(|&p| c.state(p) == FREE);
        let lead = &c.subs[c.current].policy;
        let outside = free.clone().filter(|&p| !lead.contains(p));
        let first = |it: &mut dyn Iterator<Item = u32>| it.min_by_key(|&p| c.key(p));
        first(&mut outside.into_iter()).or_else(|| first(&mut free.into_iter()))
    }

    fn check_sets(c: &Combined) {
        for p in 0..c.state.len() as u32 {
            let free = c.state(p) == FREE;
            let k = c.key(p);
            assert_eq!(c.free.contains(&k), free, "page {p}");
            for s in 0..2 {
                let out = free && !c.subs[s].policy.contains(p);
                assert_eq!(c.outside[s].contains(&k), out, "page {p} sub {s}");
            }
        }
        let n = c.state.iter().filter(|&&s| s != ABSENT).count();
        assert_eq!(c.len, n);
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
    /// and every page held by nobody is eventually given back as forgotten.
    fn random_serving(mut c: Combined, seed: u64) {
        let mut rng = StdRng::seed_from_u64(seed);
        let ids = rng.gen_range(4..30);
        let mut known = HashSet::new();
        for t in 0..800u64 {
            let p = rng.gen_range(0..ids);
            let r = req(t, p, &mut rng);
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
            random_serving(combo("ftp", "lru", k, det, seed), seed);
            let rnd = Scheme::Randomized { eps: 0.5 };
            random_serving(combo("marker", "ftp", k, rnd, seed), seed + 100);
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
