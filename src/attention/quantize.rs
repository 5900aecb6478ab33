//! KIVI-style quantization of recorded keys and values (Liu et al., ICML 2024): keys per
//! channel (each group holds `group` consecutive tokens of one channel), values per token
//! (each group holds `group` consecutive channels of one token), asymmetric `bits`-bit
//! integers with a float minimum and scale per group. The most recent `residual` tokens,
//! and a last group not yet full, stay at full precision.

/// A KIVI quantizer.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Kivi {
    /// Bits per element.
    pub bits: u32,
    /// Elements per group (KIVI: 32).
    pub group: usize,
    /// Recent tokens kept at full precision (KIVI: 128).
    pub residual: usize,
}

/// Quantization rules for attention-eval, by name: KIVI at 2 bits (its default) and 4.
pub const QUANTIZERS: &[&str] = &["kivi", "kivi4"];

impl Kivi {
    /// The rule of this name, if it is one.
    pub fn named(name: &str) -> Option<Kivi> {
        let bits = match name {
            "kivi" => 2,
            "kivi4" => 4,
            _ => return None,
        };
        Some(Kivi {
            bits,
            group: 32,
            residual: 128,
        })
    }

    /// Tokens quantized when `context` tokens are cached: whole groups outside the
    /// residual window.
    pub fn quantized_tokens(&self, context: usize) -> usize {
        context.saturating_sub(self.residual) / self.group * self.group
    }

    /// Round `x` to the `bits`-bit grid between `lo` and `hi`.
    fn round(&self, x: f32, lo: f32, hi: f32) -> f32 {
        let levels = ((1u32 << self.bits) - 1) as f32;
        let scale = (hi - lo) / levels;
        if scale <= 0.0 {
            return lo;
        }
        ((x - lo) / scale).round().clamp(0.0, levels) * scale + lo
    }

    /// Keys `[tokens][dim]` with every whole group of `group` tokens quantized per channel.
    pub fn keys(&self, keys: &[f32], dim: usize) -> Vec<f32> {
        let tokens = keys.len() / dim;
        let mut out = keys.to_vec();
        for start in (0..tokens / self.group * self.group).step_by(self.group) {
            for c in 0..dim {
                let cell = |j: usize| keys[(start + j) * dim + c];
                let (lo, hi) = (0..self.group).fold((f32::MAX, f32::MIN), |(lo, hi), j| {
                    (lo.min(cell(j)), hi.max(cell(j)))
                });
                for j in 0..self.group {
                    out[(start + j) * dim + c] = self.round(cell(j), lo, hi);
                }
            }
        }
        out
    }

    /// Values `[tokens][dim]` with each token's channels quantized in groups.
    pub fn values(&self, values: &[f32], dim: usize) -> Vec<f32> {
        let mut out = values.to_vec();
        for row in out.chunks_mut(dim) {
            for g in row.chunks_mut(self.group) {
                let (lo, hi) = g
                    .iter()
                    .fold((f32::MAX, f32::MIN), |(lo, hi), &x| (lo.min(x), hi.max(x)));
                for x in g.iter_mut() {
                    *x = self.round(*x, lo, hi);
                }
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn two_bits_round_to_four_levels() {
        let k = Kivi {
            bits: 2,
            group: 4,
            residual: 0,
        };
        // Levels between 0 and 3: 0, 1, 2, 3.
        assert_eq!(k.values(&[0.0, 1.2, 2.6, 3.0], 4), [0.0, 1.0, 3.0, 3.0]);
        // Keys: one channel, groups along tokens; the partial last group stays exact.
        let q = k.keys(&[0.0, 0.4, 0.6, 3.0, 0.7], 1);
        assert_eq!(q, [0.0, 0.0, 1.0, 3.0, 0.7]);
        assert_eq!(k.quantized_tokens(5), 4);
        let kivi = Kivi::named("kivi").unwrap();
        assert_eq!(kivi.quantized_tokens(200), 64);
        assert_eq!(kivi.quantized_tokens(100), 0);
    }
}
