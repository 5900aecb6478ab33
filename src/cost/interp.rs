//! Interpolation in measured grids, in log space. Times are made monotone (non-decreasing
//! in every coordinate) before interpolating, since more work never takes less time and a
//! noisy measurement must not make the model reward bigger batches. Coordinates are
//! transformed by `ln(x)`, which makes power laws (linear in batch, quadratic in chunk)
//! exact between grid points; an axis whose grid contains zero (an empty prefix) uses
//! `ln(1 + x)` instead.

/// Where a query fell relative to the grid.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Lookup {
    /// The interpolated time (at the clamped coordinates when outside).
    pub value: f64,
    /// Coordinates after clamping into the grid.
    pub clamped: [f64; 2],
    /// How far outside: the largest ratio query/edge or edge/query over the coordinates
    /// (1.0 when inside).
    pub outside_by: f64,
}

/// The log transform of an axis: `ln(x)`, or `ln(1 + x)` when the grid holds zero.
fn lx(xs: &[f64], x: f64) -> f64 {
    if xs[0] > 0.0 {
        x.max(f64::MIN_POSITIVE).ln()
    } else {
        x.max(0.0).ln_1p()
    }
}

/// Index `i` with `xs[i] <= x <= xs[i+1]` and the weight of `xs[i+1]` (log space).
fn bracket(xs: &[f64], x: f64) -> (usize, f64) {
    if xs.len() == 1 {
        return (0, 0.0);
    }
    let i = match xs.iter().rposition(|&v| v <= x) {
        Some(i) => i.min(xs.len() - 2),
        None => 0,
    };
    let (a, b) = (lx(xs, xs[i]), lx(xs, xs[i + 1]));
    let w = if b > a {
        (lx(xs, x) - a) / (b - a)
    } else {
        0.0
    };
    (i, w.clamp(0.0, 1.0))
}

fn clamp_to(xs: &[f64], x: f64) -> (f64, f64) {
    let (lo, hi) = (xs[0], *xs.last().expect("non-empty"));
    let c = x.clamp(lo, hi);
    let ratio = if c == x {
        1.0
    } else {
        let (a, b) = (x.max(1e-9), c.max(1e-9));
        (a / b).max(b / a)
    };
    (c, ratio)
}

/// A time measured along one coordinate.
#[derive(Debug, Clone, PartialEq)]
pub struct Curve {
    xs: Vec<f64>,
    log_t: Vec<f64>,
}

impl Curve {
    /// A curve through `(x, time)` points; duplicates of an `x` are averaged; times are
    /// made non-decreasing in `x`. `None` if there are no points or a time is not positive.
    pub fn new(points: &[(f64, f64)]) -> Option<Curve> {
        let mut pts: Vec<(f64, f64)> = points.to_vec();
        if pts.is_empty()
            || pts
                .iter()
                .any(|&(x, t)| t.is_nan() || t <= 0.0 || x.is_nan() || x < 0.0)
        {
            return None;
        }
        pts.sort_by(|a, b| a.0.total_cmp(&b.0));
        let mut xs: Vec<f64> = Vec::new();
        let mut ts: Vec<(f64, u32)> = Vec::new();
        for (x, t) in pts {
            if xs.last() == Some(&x) {
                let last = ts.last_mut().expect("parallel");
                last.0 += t;
                last.1 += 1;
            } else {
                xs.push(x);
                ts.push((t, 1));
            }
        }
        let mut running = 0.0f64;
        let log_t = ts
            .iter()
            .map(|&(sum, n)| {
                running = running.max(sum / n as f64);
                running.ln()
            })
            .collect();
        Some(Curve { xs, log_t })
    }

    /// Interpolated time at `x` (clamped into the measured range).
    pub fn at(&self, x: f64) -> Lookup {
        let (c, outside_by) = clamp_to(&self.xs, x);
        let (i, w) = bracket(&self.xs, c);
        let v = if self.xs.len() == 1 {
            self.log_t[0]
        } else {
            self.log_t[i] * (1.0 - w) + self.log_t[i + 1] * w
        };
        Lookup {
            value: v.exp(),
            clamped: [c, 0.0],
            outside_by,
        }
    }

    /// The measured coordinates.
    pub fn xs(&self) -> &[f64] {
        &self.xs
    }
}

/// A time measured on a rectangular grid of two coordinates.
#[derive(Debug, Clone, PartialEq)]
pub struct Grid2 {
    xs: Vec<f64>,
    ys: Vec<f64>,
    /// `log_t[i * ys.len() + j]` at `(xs[i], ys[j])`.
    log_t: Vec<f64>,
}

impl Grid2 {
    /// A grid through `(x, y, time)` points. Every pair of the distinct `x` and `y` values
    /// must be present (duplicates averaged); otherwise `Err` names a missing pair. Times
    /// are made non-decreasing along both coordinates.
    pub fn new(points: &[(f64, f64, f64)]) -> Result<Grid2, String> {
        if points.is_empty() {
            return Err("no points".into());
        }
        if let Some(p) = points.iter().find(|p| p.2.is_nan() || p.2 <= 0.0) {
            return Err(format!("time at ({}, {}) is not positive", p.0, p.1));
        }
        let mut xs: Vec<f64> = points.iter().map(|p| p.0).collect();
        let mut ys: Vec<f64> = points.iter().map(|p| p.1).collect();
        for v in [&mut xs, &mut ys] {
            v.sort_by(f64::total_cmp);
            v.dedup();
        }
        let (nx, ny) = (xs.len(), ys.len());
        let mut sum = vec![(0.0, 0u32); nx * ny];
        for &(x, y, t) in points {
            let i = xs.iter().position(|&v| v == x).expect("collected");
            let j = ys.iter().position(|&v| v == y).expect("collected");
            sum[i * ny + j].0 += t;
            sum[i * ny + j].1 += 1;
        }
        if let Some(idx) = sum.iter().position(|s| s.1 == 0) {
            return Err(format!(
                "grid is not rectangular: no point at ({}, {})",
                xs[idx / ny],
                ys[idx % ny]
            ));
        }
        let mut t: Vec<f64> = sum.iter().map(|&(s, n)| s / n as f64).collect();
        for i in 0..nx {
            for j in 0..ny {
                let mut v = t[i * ny + j];
                if i > 0 {
                    v = v.max(t[(i - 1) * ny + j]);
                }
                if j > 0 {
                    v = v.max(t[i * ny + j - 1]);
                }
                t[i * ny + j] = v;
            }
        }
        Ok(Grid2 {
            xs,
            ys,
            log_t: t.iter().map(|v| v.ln()).collect(),
        })
    }

    /// Interpolated time at `(x, y)` (bilinear in log space, clamped into the grid).
    pub fn at(&self, x: f64, y: f64) -> Lookup {
        let (cx, rx) = clamp_to(&self.xs, x);
        let (cy, ry) = clamp_to(&self.ys, y);
        let (i, wx) = bracket(&self.xs, cx);
        let (j, wy) = bracket(&self.ys, cy);
        let ny = self.ys.len();
        let at = |a: usize, b: usize| self.log_t[a.min(self.xs.len() - 1) * ny + b.min(ny - 1)];
        let v = at(i, j) * (1.0 - wx) * (1.0 - wy)
            + at(i + 1, j) * wx * (1.0 - wy)
            + at(i, j + 1) * (1.0 - wx) * wy
            + at(i + 1, j + 1) * wx * wy;
        Lookup {
            value: v.exp(),
            clamped: [cx, cy],
            outside_by: rx.max(ry),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn curve_passes_through_points_and_interpolates_power_laws_exactly() {
        // t = 3 x^0.5 sampled at 1, 4, 16.
        let c = Curve::new(&[(1.0, 3.0), (16.0, 12.0), (4.0, 6.0)]).unwrap();
        for (x, t) in [(1.0, 3.0), (4.0, 6.0), (16.0, 12.0)] {
            assert!((c.at(x).value - t).abs() < 1e-9);
            assert_eq!(c.at(x).outside_by, 1.0);
        }
        let mid = c.at(8.0).value;
        assert!(mid > 6.0 && mid < 12.0);
        // t = 3 sqrt(x) is a power law: exact in between (x = 8: 3 sqrt 8).
        assert!((c.at(8.0).value - 3.0 * 8.0f64.sqrt()).abs() < 1e-9);
        // An axis holding zero interpolates in ln(1 + x).
        let z = Curve::new(&[(0.0, 2.0), (3.0, 8.0)]).unwrap();
        assert!((z.at(1.0).value - 4.0).abs() < 1e-9);
    }

    #[test]
    fn curve_is_monotone_and_clamps_with_the_distance() {
        // A noisy dip at x = 8 is lifted to the previous value.
        let c = Curve::new(&[(1.0, 2.0), (8.0, 1.5), (64.0, 4.0)]).unwrap();
        assert!((c.at(8.0).value - 2.0).abs() < 1e-12);
        let mut prev = 0.0;
        for x in [1.0, 2.0, 5.0, 8.0, 20.0, 64.0] {
            let v = c.at(x).value;
            assert!(v >= prev);
            prev = v;
        }
        let out = c.at(256.0);
        assert_eq!(out.value, 4.0);
        assert_eq!(out.clamped[0], 64.0);
        assert_eq!(out.outside_by, 4.0);
        assert_eq!(c.at(0.5).outside_by, 2.0);
        assert!(Curve::new(&[]).is_none());
        assert!(Curve::new(&[(1.0, 0.0)]).is_none());
    }

    #[test]
    fn grid_is_bilinear_in_log_space_and_rejects_holes() {
        let pts = [
            (1.0, 0.0, 1.0),
            (1.0, 3.0, 4.0),
            (3.0, 0.0, 2.0),
            (3.0, 3.0, 8.0),
        ];
        let g = Grid2::new(&pts).unwrap();
        for &(x, y, t) in &pts {
            assert!((g.at(x, y).value - t).abs() < 1e-9);
        }
        // Centre in ln(x), ln(1+y): geometric mean of the four corners.
        let cx = 3.0f64.sqrt();
        let cy = ((1.0f64.ln() + 4.0f64.ln()) / 2.0).exp() - 1.0;
        let want = (1.0f64 * 4.0 * 2.0 * 8.0).powf(0.25);
        assert!((g.at(cx, cy).value - want).abs() < 1e-9);
        assert_eq!(g.at(6.0, 3.0).outside_by, 2.0);
        let err = Grid2::new(&pts[..3]).unwrap_err();
        assert!(err.contains("no point at (3, 3)"), "{err}");
    }
}
