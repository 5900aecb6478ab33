//! Robust combinations of two policies (Antoniadis et al., ICML 2020, after Fiat et al.
//! and Blum and Burch). Both policies are simulated on their own caches; the combined cache
//! follows one of them lazily: on a miss it evicts, among its pages that the followed
//! policy does not hold, the one placed earliest (pages placed into empty frames count as
//! placed at time -1; ties go to the lower frame), so it loads one page per miss.
//!
//! - `Deterministic` (the switch with a growing bound): follow policy A until its cost
//!   exceeds the bound, then switch to the other and multiply the bound by `1 + gamma`.
//!   Cost at most `(9/gamma) min(cost_A, cost_B)` plus lower-order terms (O(1) for fixed
//!   gamma).
//! - `Randomized` (Blum–Burch): weights `w_i ← w_i beta^{loss_i}` with `beta = 1 - eps/2`;
//!   when the followed policy's probability drops, switch with the probability of the drop.
//!   Cost at most `(1 + eps) min(cost_A, cost_B) + O(k/eps)` in expectation.

use crate::paging::util::NONE;
use crate::paging::{Cache, Eviction, Req};
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

/// A lazy follower of two simulated policies.
pub struct Combined {
    name: String,
    subs: [Cache; 2],
    scheme: Scheme,
    current: usize,
    // Deterministic state.
    costs: [u64; 2],
    bound: f64,
    // Randomized state.
    probs: [f64; 2],
    rng: StdRng,
    // Own cache as frames.
    frames: Vec<u32>,
    placed_at: Vec<i64>,
    frame_of: Vec<u32>,
    len: usize,
    /// Frame freed by the last eviction (the next insert fills it).
    freed: Option<usize>,
}

impl Combined {
    /// Combine `a` and `b` (each with capacity `k`) under `scheme`.
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
        Combined {
            name,
            subs: [Cache::new(a, k), Cache::new(b, k)],
            scheme,
            current,
            costs: [0, 0],
            bound: 1.0,
            probs: [0.5, 0.5],
            rng,
            frames: vec![NONE; k],
            placed_at: vec![-1; k],
            frame_of: vec![NONE; num_pages],
            len: 0,
            freed: None,
        }
    }

    fn frame(&self, page: u32) -> Option<usize> {
        self.frame_of
            .get(page as usize)
            .and_then(|&f| (f != NONE).then_some(f as usize))
    }

    /// Serve `r` on both simulated policies and choose which one to follow.
    fn step_subs(&mut self, r: &Req) {
        let loss = [
            !self.subs[0].access(r) as u64,
            !self.subs[1].access(r) as u64,
        ];
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
}

impl Eviction for Combined {
    fn name(&self) -> String {
        self.name.clone()
    }
    fn find(&mut self, r: &Req) -> bool {
        self.step_subs(r);
        self.frame(r.page).is_some()
    }
    fn insert(&mut self, r: &Req) {
        let f = match self.freed.take() {
            Some(f) => {
                self.placed_at[f] = r.t as i64;
                f
            }
            None => self
                .frames
                .iter()
                .position(|&p| p == NONE)
                .expect("a free frame"),
        };
        if r.page as usize >= self.frame_of.len() {
            self.frame_of.resize(r.page as usize + 1, NONE);
        }
        self.frames[f] = r.page;
        self.frame_of[r.page as usize] = f as u32;
        self.len += 1;
    }
    fn evict(&mut self, _: &Req) -> u32 {
        let target = self.subs[self.current].policy();
        let mut best: Option<(i64, usize)> = None;
        for (f, &p) in self.frames.iter().enumerate() {
            if p != NONE && !target.contains(p) && best.is_none_or(|b| (self.placed_at[f], f) < b) {
                best = Some((self.placed_at[f], f));
            }
        }
        // The followed policy holds the requested page and k-1 others, so some page of ours
        // is not among them.
        let (_, f) = best.expect("a page outside the followed cache");
        let v = self.frames[f];
        self.frames[f] = NONE;
        self.frame_of[v as usize] = NONE;
        self.len -= 1;
        self.freed = Some(f);
        v
    }
    fn remove(&mut self, page: u32) {
        if let Some(f) = self.frame(page) {
            self.frames[f] = NONE;
            self.frame_of[page as usize] = NONE;
            self.len -= 1;
        }
    }
    fn len(&self) -> usize {
        self.len
    }
    fn contains(&self, page: u32) -> bool {
        self.frame(page).is_some()
    }
}
