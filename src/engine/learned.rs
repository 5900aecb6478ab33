//! A learned predictor of block reuse, trained online while the trace is replayed; it sees
//! only the past.
//!
//! Model: linear regression on the logarithm of the reuse distance (requests between a
//! block content's last use and its next request), fitted by normalised stochastic gradient
//! descent (AdaGrad step sizes). Features, all known when a block is released:
//! - depth of the block in its prefix chain (log), since shared prefixes (system prompts,
//!   early turns) are reused more, and sooner, than deep, request-specific blocks;
//! - how many times the content has been requested before (log);
//! - the content's previous reuse distance (log; 0 if none), the strongest single signal
//!   of recurrence in caching traces;
//! - the prompt length of the request that used it last (log), since long prompts carry
//!   long, rarely repeated tails;
//! - the recent mean inter-arrival time of requests (log seconds, exponential average), so
//!   that the scale follows the load;
//! - a bias.
//!
//! Why this and not a tree or a network: each prediction and each update costs a few dozen
//! floating-point operations, so the predictor keeps up with millions of block releases;
//! the model is convex, so training online from a cold start is stable and reproducible;
//! its six weights can be printed and read. A training example arrives when a content is
//! requested again: the prediction made at its release is compared with the reuse distance
//! actually seen. Contents never requested again yield no example (the model learns from
//! reuses only), which biases absolute values low but keeps the ranking of blocks — the
//! only thing follow-the-prediction uses — informative.

use crate::idhash::BlockHashMap;

const FEATURES: usize = 6;

#[derive(Debug, Clone, Copy, Default)]
struct Record {
    last_use: u64,
    uses: u32,
    prev_gap: u64,
    depth: u32,
    prompt_tokens: u32,
    /// Features of the pending prediction (set at release, consumed at the next request).
    pending: Option<[f32; FEATURES]>,
}

/// Online reuse-distance regression for block contents.
#[derive(Debug, Default)]
pub struct LearnedReuse {
    records: BlockHashMap<Record>,
    /// Records kept at most (oldest by last use are dropped beyond it).
    capacity: usize,
    weights: [f64; FEATURES],
    grad_sq: [f64; FEATURES],
    mean_gap_s: f64,
    last_arrival_ns: Option<u64>,
    /// Training examples seen.
    pub updates: u64,
    /// Sum of squared errors (log space) of the predictions that were checked.
    pub squared_error: f64,
}

const LEARNING_RATE: f64 = 0.05;

impl LearnedReuse {
    /// A fresh model (weights zero: every block predicted one request ahead until it
    /// learns) that remembers the history of at most `capacity` block contents.
    pub fn new(capacity: usize) -> Self {
        LearnedReuse {
            mean_gap_s: 1.0,
            capacity: capacity.max(1024),
            ..Default::default()
        }
    }

    /// Forget the contents used longest ago once the table is twice its capacity.
    fn prune(&mut self, now: u64) {
        if self.records.len() <= 2 * self.capacity {
            return;
        }
        let mut window = now.max(1);
        while self.records.len() > self.capacity && window > 0 {
            window /= 2;
            let oldest = now.saturating_sub(window);
            self.records.retain(|_, r| r.last_use >= oldest);
        }
    }

    fn features(&self, r: &Record) -> [f32; FEATURES] {
        [
            1.0,
            (r.depth as f64).ln_1p() as f32,
            (r.uses as f64).ln_1p() as f32,
            (r.prev_gap as f64).ln_1p() as f32,
            (r.prompt_tokens as f64).ln_1p() as f32,
            self.mean_gap_s.max(1e-6).ln() as f32,
        ]
    }

    fn predict_log(&self, x: &[f32; FEATURES]) -> f64 {
        self.weights.iter().zip(x).map(|(w, &v)| w * v as f64).sum()
    }

    /// A request arrives (request index `index`, arrival time, prompt length) whose prompt
    /// holds the block contents `hashes` in chain order. Resolves pending predictions for
    /// those contents (one training step each) and updates their history.
    pub fn observe_request(
        &mut self,
        index: u64,
        arrival_ns: u64,
        prompt_tokens: u32,
        hashes: &[u64],
    ) {
        if let Some(prev) = self.last_arrival_ns {
            let gap = arrival_ns.saturating_sub(prev) as f64 / 1e9;
            self.mean_gap_s = 0.99 * self.mean_gap_s + 0.01 * gap;
        }
        self.last_arrival_ns = Some(arrival_ns);
        self.prune(index);
        for (depth, &h) in hashes.iter().enumerate() {
            let rec = self.records.entry(h).or_default();
            let seen_before = rec.uses > 0;
            let gap = index.saturating_sub(rec.last_use);
            let pending = rec.pending.take();
            if seen_before {
                rec.prev_gap = gap;
            }
            rec.uses += 1;
            rec.last_use = index;
            rec.depth = depth as u32;
            rec.prompt_tokens = prompt_tokens;
            if let (true, Some(x)) = (seen_before, pending) {
                self.train(&x, (gap as f64).ln_1p());
            }
        }
    }

    fn train(&mut self, x: &[f32; FEATURES], target: f64) {
        let err = self.predict_log(x) - target;
        self.updates += 1;
        self.squared_error += err * err;
        for ((w, g2), &xi) in self.weights.iter_mut().zip(&mut self.grad_sq).zip(x) {
            let g = err * xi as f64;
            *g2 += g * g;
            *w -= LEARNING_RATE * g / (g2.sqrt() + 1e-8);
        }
    }

    /// Predict the request index at which the content `hash`, just released, is requested
    /// next (larger is later).
    pub fn predict(&mut self, hash: u64) -> f64 {
        let rec = self.records.get(&hash).copied().unwrap_or_default();
        let x = self.features(&rec);
        let log_gap = self.predict_log(&x).clamp(0.0, 40.0);
        if let Some(r) = self.records.get_mut(&hash) {
            r.pending = Some(x);
        }
        rec.last_use as f64 + log_gap.exp_m1()
    }

    /// The current weights (bias, depth, uses, previous gap, prompt length, inter-arrival).
    pub fn weights(&self) -> [f64; FEATURES] {
        self.weights
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn learns_that_frequently_reused_shallow_blocks_come_back_sooner() {
        let mut m = LearnedReuse::new(64);
        // Block 1 (depth 0) recurs every 2 requests; block 9 (depth 5) every 40.
        for i in 0..4000u64 {
            let mut hashes = vec![1];
            if i % 40 == 0 {
                hashes.extend([2, 3, 4, 5, 9]);
            }
            m.observe_request(i, i * 1_000_000, 100, &hashes);
            m.predict(1);
            if i % 40 == 0 {
                m.predict(9);
            }
        }
        assert!(m.updates > 1000);
        let (p1, p9) = (m.predict(1), m.predict(9));
        // Both were last used at request 3960 or later; block 1 is predicted back sooner.
        assert!(p1 - 3999.0 < p9 - 3960.0, "p1 {p1} p9 {p9}");
        assert!((p1 - 3999.0 - 2.0).abs() < 1.5, "p1 {p1}");
    }
}
