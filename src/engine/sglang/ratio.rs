//! SGLang 0.5.23's new-token ratio (`managers/scheduler_components/new_token_ratio_tracker.py`,
//! constants from `environ.py`): the share of a running request's remaining output that
//! admission reserves. It starts at `0.7 x schedule_conservativeness`, decays by a fixed
//! step after every decode step that did not retract, is re-estimated after a retraction
//! and goes back to its start when the scheduler idles.

/// `SGLANG_INIT_NEW_TOKEN_RATIO`.
pub const INIT_NEW_TOKEN_RATIO: f64 = 0.7;
/// `SGLANG_MIN_NEW_TOKEN_RATIO_FACTOR`.
pub const MIN_NEW_TOKEN_RATIO_FACTOR: f64 = 0.14;
/// `SGLANG_NEW_TOKEN_RATIO_DECAY_STEPS`.
pub const NEW_TOKEN_RATIO_DECAY_STEPS: f64 = 600.0;
/// `SGLANG_RETRACT_DECODE_STEPS`: decode steps of room a retraction aims to leave each
/// request kept.
pub const RETRACT_DECODE_STEPS: u64 = 20;

/// The tracker.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RatioTracker {
    /// Starting value.
    pub init: f64,
    /// Floor of the decay.
    pub min: f64,
    /// Decrease per decode step.
    pub decay: f64,
    /// Current value.
    pub current: f64,
}

impl RatioTracker {
    /// As `NewTokenRatioTracker.from_config` builds it.
    pub fn new(schedule_conservativeness: f64) -> Self {
        let init = (INIT_NEW_TOKEN_RATIO * schedule_conservativeness).min(1.0);
        let min = (init * MIN_NEW_TOKEN_RATIO_FACTOR).min(1.0);
        let decay = (init - min) / NEW_TOKEN_RATIO_DECAY_STEPS;
        RatioTracker {
            init,
            min,
            decay,
            current: init,
        }
    }

    /// One decode step without retraction.
    pub fn decay_step(&mut self) {
        self.current = (self.current - self.decay).max(self.min);
    }

    /// Back to the start (the scheduler went idle).
    pub fn reset(&mut self) {
        self.current = self.init;
    }

    /// The estimate after a retraction over the requests kept, given as
    /// `(generated, max_new_tokens)` pairs.
    pub fn after_retract(kept: impl Iterator<Item = (u64, u64)>) -> f64 {
        let (mut decoded, mut max_new, mut n) = (0u64, 0u64, 0u64);
        for (g, m) in kept {
            decoded += g;
            max_new += m;
            n += 1;
        }
        ((decoded + RETRACT_DECODE_STEPS * n) as f64 / (max_new + 1) as f64).min(1.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_and_decay_as_sglang() {
        let mut r = RatioTracker::new(1.0);
        assert_eq!(r.init, 0.7);
        assert!((r.min - 0.098).abs() < 1e-15);
        assert_eq!(r.decay, (0.7 - 0.7 * 0.14) / 600.0);
        for _ in 0..10_000 {
            r.decay_step();
        }
        assert_eq!(r.current, r.min);
        r.reset();
        assert_eq!(r.current, 0.7);
        // Two kept requests: 10 and 30 generated of 100 and 200.
        let e = RatioTracker::after_retract([(10, 100), (30, 200)].into_iter());
        assert_eq!(e, 80.0 / 301.0);
    }
}
