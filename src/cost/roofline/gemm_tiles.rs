//! The compute time of a dense GEMM as a tiled kernel runs it (cuBLAS's, CUTLASS's): the
//! `tokens x n` output is cut into tiles of `BM x BN`, optionally with the inner dimension
//! split `s` ways (split-K, partial sums in fp32 written and reduced), and the tiles run in
//! waves over the SMs; a wave takes as long as one tile. Of the tile shapes and splits
//! below, the fastest is taken, as the library's heuristic aims to. Formulas and the fit
//! in `docs/cost-model.md`, "GEMMs".

use super::Roofline;
use crate::scenario::Efficiency;

/// Tile shapes (rows x columns of the output) considered.
pub const TILES: [(f64, f64); 6] = [
    (64.0, 64.0),
    (64.0, 128.0),
    (128.0, 64.0),
    (128.0, 128.0),
    (128.0, 256.0),
    (256.0, 128.0),
];

/// Split-K factors considered.
const SPLITS: [f64; 3] = [1.0, 2.0, 4.0];

/// Arithmetic intensity of a tile, `BM BN / (BM + BN)` (multiply-adds per element loaded
/// per step of the inner dimension).
fn intensity(bm: f64, bn: f64) -> f64 {
    bm * bn / (bm + bn)
}

/// The efficiency each of [`TILES`] reaches: `gemm_compute x (intensity / largest
/// intensity)^gemm_tile_exponent` (computed once per cost model, not per GEMM).
pub fn tile_efficiencies(eff: &Efficiency) -> [f64; TILES.len()] {
    let top = TILES
        .iter()
        .map(|&(m, c)| intensity(m, c))
        .fold(0.0, f64::max);
    TILES.map(|(bm, bn)| eff.gemm_compute * (intensity(bm, bn) / top).powf(eff.gemm_tile_exponent))
}

impl Roofline {
    /// Seconds of compute of a `tokens x k` by `k x n` GEMM, tiled (module doc): per tile
    /// shape and split, `ceil(tiles x s / SMs)` waves of one tile's `2 BM BN ceil(k / s)`
    /// FLOPs at an SM's share of peak times the tile's efficiency ([`tile_efficiencies`]),
    /// plus the split-K partial sums through HBM; the least over the shapes.
    pub fn tiled_gemm_compute_s(&self, tokens: f64, k: f64, n: f64) -> f64 {
        let sms = self.gpu.sms.max(1) as f64;
        let per_sm = self.gpu.bf16_flops / sms;
        let mut best = f64::INFINITY;
        for (&(bm, bn), &eff) in TILES.iter().zip(&self.tile_efficiency) {
            let tiles = (tokens / bm).ceil() * (n / bn).ceil();
            for &s in &SPLITS {
                let waves = (tiles * s / sms).ceil();
                let mut t = waves * 2.0 * bm * bn * (k / s).ceil() / (per_sm * eff);
                if s > 1.0 {
                    t += self.memory_s(s * tokens * n * 4.0, self.eff.gemm_memory);
                }
                best = best.min(t);
            }
        }
        best
    }
}

#[cfg(test)]
mod tests {
    use crate::cost::roofline::Roofline;
    use crate::hardware::Gpu;
    use crate::model::Model;
    use crate::scenario::Efficiency;

    fn on(gpu: &str, eff: &Efficiency) -> Roofline {
        let m = Model::preset("llama-2-7b").unwrap();
        Roofline::new(&m, &Gpu::preset(gpu).unwrap(), eff, 0.0, 0.0)
    }

    #[test]
    fn a_large_gemm_by_hand() {
        // 4096 x 4096 by 4096 x 4096 on an A100 (108 SMs, 312 TFLOP/s): 256 x 128 tiles,
        // 16 x 32 = 512 of them, 5 waves (4.74) of 2 x 256 x 128 x 4096 FLOPs at 2.89
        // TFLOP/s x 0.77 per SM; no smaller tile or split does better.
        let e = Efficiency::default();
        let r = on("a100-80gb", &e);
        let per_sm = 312e12 / 108.0 * e.gemm_compute;
        let want = 5.0 * 2.0 * 256.0 * 128.0 * 4096.0 / per_sm;
        let got = r.tiled_gemm_compute_s(4096.0, 4096.0, 4096.0);
        assert!((got - want).abs() < 1e-15, "{got} {want}");
    }

    #[test]
    fn waves_make_steps_in_tokens() {
        // Llama-2-70B's 8192 x 8192 on an A100: never less for more tokens (each shape's
        // waves only grow), flat within a wave with steps between, and never below the
        // untiled compute time.
        let r = on("a100-80gb", &Efficiency::default());
        let t = |m: f64| r.tiled_gemm_compute_s(m, 8192.0, 8192.0);
        let (mut flat, mut steps) = (0, 0);
        for m in 1..2048 {
            let (a, b) = (t(m as f64), t(m as f64 + 1.0));
            assert!(b >= a, "{m}");
            flat += (a == b) as u32;
            steps += (b > a * 1.05) as u32;
        }
        assert!(flat > 1700 && steps >= 8, "{flat} flat, {steps} steps");
        for m in [1.0, 7.0, 100.0, 333.0, 1000.0, 4096.0] {
            let e = Efficiency::default().gemm_compute;
            let plain = 2.0 * m * 8192.0 * 8192.0 / (312e12 * e);
            assert!(t(m) >= plain * 0.999, "{m}");
        }
    }

    #[test]
    fn split_k_serves_a_narrow_output() {
        // 64 tokens x 4096 -> 768 (InternLM's QKV at TP 8): 1 x 12 tiles of 64 x 64 leave
        // 96 of 108 SMs idle; splitting k in 4 uses 48 and is faster than any unsplit
        // tile.
        let r = on("a100-80gb", &Efficiency::default());
        let e = Efficiency::default();
        let unsplit = 2.0 * 64.0 * 64.0 * 4096.0 / (312e12 / 108.0 * e.gemm_compute);
        assert!(r.tiled_gemm_compute_s(64.0, 4096.0, 768.0) < unsplit);
    }
}
