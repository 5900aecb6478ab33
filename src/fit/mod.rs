//! `kvsim fit`: the cost model's coefficients fitted to measurements by least squares
//! (Levenberg-Marquardt, the `levenberg-marquardt` crate), with a check that the data
//! determines every coefficient it is asked to fit.
//!
//! A fit minimises the squared `ln(predicted / measured)` over the measurements, so that a
//! 10 % error weighs the same on a 5 us kernel and a 5 ms one. Coefficients are searched
//! from their current values in a variable that keeps them inside their physical range (the
//! logit of an efficiency, `ln` of a floor's excess over its minimum); the Jacobian is taken
//! by central differences of `step` in each search variable. A coefficient is
//! *undetermined* when, after the other coefficients compensate, a 10 % change of it moves
//! the predictions by less than [`MIN_SENSITIVITY`] x 10 % RMS (no measurement depends on
//! it, or only as another coefficient does); it is *loose* when its standard error at the
//! fit exceeds the settings' `max_uncertainty`. `kvsim fit` refuses both, and a value the
//! search drives to the edge of its physical range (an efficiency of 1, a floor of 0).
//! The two kinds of data are in [`kernels`] and [`serving`]; `docs/fit.md` is the guide.

pub mod command;
pub mod kernels;
pub mod serving;

use crate::error::{Error, Result};
use levenberg_marquardt::{LeastSquaresProblem, LevenbergMarquardt};
use nalgebra::{storage::Owned, DMatrix, DVector, Dyn};
use rayon::prelude::*;
use std::cell::{Cell, RefCell};

/// The sensitivity below which a coefficient is undetermined: the RMS change of the
/// `ln` predictions per unit change of `ln` of the coefficient, the others compensating.
pub const MIN_SENSITIVITY: f64 = 1e-3;

/// Measurements the cost model explains.
pub trait Measurements: Sync {
    /// `ln(predicted / measured)` of every measurement, with these coefficient values (in
    /// the order of the fit's coefficients).
    fn residuals(&self, values: &[f64]) -> Result<Vec<f64>>;
}

/// A fitted coefficient: a scenario key and its physical range.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Key {
    /// The dotted scenario key (`hardware.efficiency.gemm_compute`).
    pub key: &'static str,
    /// Lowest physical value.
    pub min: f64,
    /// Highest physical value.
    pub max: f64,
}

/// Every coefficient `kvsim fit` can fit.
pub const KEYS: [Key; 19] = [
    eff("hardware.efficiency.gemm_compute"),
    eff("hardware.efficiency.gemm_memory"),
    Key {
        key: "hardware.efficiency.gemm_overlap",
        min: 1.0,
        max: f64::INFINITY,
    },
    floor("hardware.efficiency.gemm_floor_us"),
    Key {
        key: "hardware.efficiency.gemm_tile_exponent",
        min: 0.0,
        max: f64::INFINITY,
    },
    eff("hardware.efficiency.attention_compute"),
    eff("hardware.efficiency.attention_causal_compute"),
    eff("hardware.efficiency.attention_memory"),
    floor("hardware.efficiency.prefill_attention_floor_us"),
    floor("hardware.efficiency.decode_attention_floor_us"),
    floor("hardware.efficiency.decode_split_floor_us"),
    floor("hardware.efficiency.decode_split_wave_us"),
    floor("hardware.efficiency.decode_split_combine_us"),
    floor("hardware.efficiency.decode_split_sm_gbps"),
    eff("hardware.efficiency.elementwise_memory"),
    floor("hardware.efficiency.elementwise_floor_us"),
    floor("engine.step_overhead_us"),
    floor("engine.per_request_overhead_us"),
    floor("engine.server_latency_us"),
];

const fn eff(key: &'static str) -> Key {
    Key {
        key,
        min: 0.0,
        max: 1.0,
    }
}

const fn floor(key: &'static str) -> Key {
    Key {
        key,
        min: 0.0,
        max: f64::INFINITY,
    }
}

/// The key named `name`: the dotted key, or its last part (`gemm_compute`).
pub fn key(name: &str) -> Result<Key> {
    KEYS.iter()
        .find(|k| k.key == name || k.key.rsplit('.').next() == Some(name))
        .copied()
        .ok_or_else(|| {
            let all: Vec<&str> = KEYS.iter().map(|k| k.key).collect();
            Error::input(format!(
                "--fit: no coefficient `{name}` (one of: {})",
                all.join(", ")
            ))
        })
}

/// How a fit runs.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Settings {
    /// Central-difference step in `ln` of a coefficient.
    pub step: f64,
    /// The largest standard error (relative) a fitted coefficient may keep.
    pub max_uncertainty: f64,
}

/// How well the data determines one coefficient at the fitted values.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Determination {
    /// RMS change of the `ln` predictions per unit change of `ln` of the coefficient, the
    /// other coefficients compensating.
    pub sensitivity: f64,
    /// Standard error of the coefficient, relative to its value.
    pub uncertainty: f64,
}

/// A finished fit.
#[derive(Debug, Clone, PartialEq)]
pub struct Fit {
    /// The fitted coefficients.
    pub keys: Vec<Key>,
    /// Their values before.
    pub start: Vec<f64>,
    /// Their fitted values.
    pub values: Vec<f64>,
    /// Residuals (`ln(predicted / measured)`) before.
    pub before: Vec<f64>,
    /// Residuals after.
    pub after: Vec<f64>,
    /// How well each coefficient is determined.
    pub determination: Vec<Determination>,
    /// Evaluations of the measurements' residuals.
    pub evaluations: usize,
}

/// The residuals at `values`, refused when one is not finite (a prediction of zero).
fn residuals_at(m: &dyn Measurements, keys: &[Key], values: &[f64]) -> Result<Vec<f64>> {
    let r = m.residuals(values)?;
    if let Some(i) = r.iter().position(|x| !x.is_finite()) {
        let at: Vec<String> = set_args(keys, values);
        return Err(Error::failure(format!(
            "measurement {i}: the prediction is zero or not finite at {}",
            at.join(", ")
        )));
    }
    Ok(r)
}

impl Key {
    /// The unbounded search variable of value `v`: the logit within a finite range,
    /// `ln(v - min)` above a floor.
    fn search_of(&self, v: f64) -> f64 {
        if self.max.is_finite() {
            let u = (v - self.min) / (self.max - self.min);
            (u / (1.0 - u)).ln()
        } else {
            (v - self.min).ln()
        }
    }

    /// The value of search variable `x`.
    fn value_of(&self, x: f64) -> f64 {
        if self.max.is_finite() {
            self.min + (self.max - self.min) / (1.0 + (-x).exp())
        } else {
            self.min + x.exp()
        }
    }

    /// `d ln(v) / dx` at value `v`.
    fn dlnv_dx(&self, v: f64) -> f64 {
        if self.max.is_finite() {
            (v - self.min) * (self.max - v) / ((self.max - self.min) * v)
        } else {
            (v - self.min) / v
        }
    }

    /// Whether `v` lies strictly inside the range, where the search can start.
    fn inside(&self, v: f64) -> bool {
        v.is_finite() && v > self.min && v < self.max
    }
}

/// Central-difference Jacobian of the residuals in the search variables, at `x`.
fn jacobian_x(m: &dyn Measurements, keys: &[Key], x: &[f64], step: f64) -> Result<DMatrix<f64>> {
    let shifted: Vec<Vec<f64>> = (0..x.len())
        .flat_map(|j| [step, -step].map(|s| (j, s)))
        .map(|(j, s)| {
            keys.iter()
                .zip(x)
                .enumerate()
                .map(|(i, (k, &xi))| k.value_of(if i == j { xi + s } else { xi }))
                .collect()
        })
        .collect();
    let rows: Vec<Vec<f64>> = shifted
        .par_iter()
        .map(|v: &Vec<f64>| residuals_at(m, keys, v))
        .collect::<Result<_>>()?;
    let n = rows[0].len();
    Ok(DMatrix::from_fn(n, x.len(), |i, j| {
        (rows[2 * j][i] - rows[2 * j + 1][i]) / (2.0 * step)
    }))
}

/// The Jacobian of the residuals in `ln` of each coefficient, at `values`.
pub fn jacobian(
    m: &dyn Measurements,
    keys: &[Key],
    values: &[f64],
    step: f64,
) -> Result<DMatrix<f64>> {
    let x: Vec<f64> = keys
        .iter()
        .zip(values)
        .map(|(k, &v)| k.search_of(v))
        .collect();
    let mut j = jacobian_x(m, keys, &x, step)?;
    for (c, (k, &v)) in keys.iter().zip(values).enumerate() {
        let d = k.dlnv_dx(v);
        j.column_mut(c).iter_mut().for_each(|e| *e /= d);
    }
    Ok(j)
}

/// Each column's part that the other columns cannot reproduce, as an RMS over the rows: the
/// sensitivity of the residuals to that coefficient alone.
pub fn sensitivities(j: &DMatrix<f64>) -> Vec<f64> {
    let (n, p) = j.shape();
    (0..p)
        .map(|c| {
            let col = j.column(c).into_owned();
            let orth = if p == 1 {
                col
            } else {
                let rest = j.clone().remove_column(c);
                let beta = rest
                    .clone()
                    .svd(true, true)
                    .solve(&col, 1e-12)
                    .unwrap_or_else(|_| DVector::zeros(p - 1));
                col - rest * beta
            };
            orth.norm() / (n as f64).sqrt()
        })
        .collect()
}

/// The coefficients whose sensitivity is below [`MIN_SENSITIVITY`], as an error, if any.
fn refuse_undetermined(keys: &[Key], sens: &[f64]) -> Result<()> {
    let bad: Vec<String> = keys
        .iter()
        .zip(sens)
        .filter(|(_, &s)| s.is_nan() || s < MIN_SENSITIVITY)
        .map(|(k, s)| {
            format!(
                "{} (a 10 % change of it moves the predictions by {:.4} % RMS)",
                k.key,
                s * 10.0
            )
        })
        .collect();
    if bad.is_empty() {
        return Ok(());
    }
    let them = if bad.len() == 1 { "it" } else { "them" };
    Err(Error::failure(format!(
        "the data cannot determine {}; leave {them} out of --fit, or add measurements that \
         depend on {them}",
        bad.join(", "),
    )))
}

/// Refuse a start outside a coefficient's range.
fn check_start(keys: &[Key], start: &[f64]) -> Result<()> {
    match keys.iter().zip(start).find(|(k, &v)| !k.inside(v)) {
        Some((k, v)) => Err(Error::input(format!(
            "{}: the fit starts from its current value, which must lie inside ({}, {}) (got \
             {v}); set a start with --set",
            k.key, k.min, k.max
        ))),
        None => Ok(()),
    }
}

/// The indices of the coefficients these measurements determine at `values`, and of the
/// others.
pub fn split_determined(
    m: &dyn Measurements,
    keys: &[Key],
    values: &[f64],
    step: f64,
) -> Result<(Vec<usize>, Vec<usize>)> {
    check_start(keys, values)?;
    let sens = sensitivities(&jacobian(m, keys, values, step)?);
    let (mut yes, mut no) = (Vec::new(), Vec::new());
    for (i, s) in sens.into_iter().enumerate() {
        if s >= MIN_SENSITIVITY {
            yes.push(i);
        } else {
            no.push(i);
        }
    }
    Ok((yes, no))
}

/// The least-squares problem in the search variables.
struct Problem<'a> {
    m: &'a dyn Measurements,
    keys: &'a [Key],
    x: DVector<f64>,
    step: f64,
    error: RefCell<Option<Error>>,
    evaluations: Cell<usize>,
}

impl Problem<'_> {
    fn values(&self) -> Vec<f64> {
        self.keys
            .iter()
            .zip(self.x.iter())
            .map(|(k, &x)| k.value_of(x))
            .collect()
    }

    fn keep<T>(&self, r: Result<T>) -> Option<T> {
        r.map_err(|e| *self.error.borrow_mut() = Some(e)).ok()
    }
}

impl LeastSquaresProblem<f64, Dyn, Dyn> for Problem<'_> {
    type ResidualStorage = Owned<f64, Dyn>;
    type JacobianStorage = Owned<f64, Dyn, Dyn>;
    type ParameterStorage = Owned<f64, Dyn>;

    fn set_params(&mut self, x: &DVector<f64>) {
        self.x.copy_from(x);
    }

    fn params(&self) -> DVector<f64> {
        self.x.clone()
    }

    fn residuals(&self) -> Option<DVector<f64>> {
        self.evaluations.set(self.evaluations.get() + 1);
        let r = self.keep(residuals_at(self.m, self.keys, &self.values()))?;
        Some(DVector::from_vec(r))
    }

    fn jacobian(&self) -> Option<DMatrix<f64>> {
        self.evaluations
            .set(self.evaluations.get() + 2 * self.keys.len());
        let x: Vec<f64> = self.x.iter().copied().collect();
        self.keep(jacobian_x(self.m, self.keys, &x, self.step))
    }
}

/// Fit `keys`, starting at `start`, to the measurements; refuses coefficients the data
/// cannot determine, loose ones and values driven to the edge of their range.
pub fn fit(m: &dyn Measurements, keys: &[Key], start: &[f64], s: Settings) -> Result<Fit> {
    check_start(keys, start)?;
    let before = residuals_at(m, keys, start)?;
    if before.len() <= keys.len() {
        return Err(Error::failure(format!(
            "{} measurements cannot determine {} coefficients",
            before.len(),
            keys.len()
        )));
    }
    refuse_undetermined(keys, &sensitivities(&jacobian(m, keys, start, s.step)?))?;
    let problem = Problem {
        m,
        keys,
        x: keys
            .iter()
            .zip(start)
            .map(|(k, &v)| k.search_of(v))
            .collect::<Vec<_>>()
            .into(),
        step: s.step,
        error: RefCell::new(None),
        evaluations: Cell::new(0),
    };
    let (problem, report) = LevenbergMarquardt::new().minimize(problem);
    if let Some(e) = problem.error.borrow_mut().take() {
        return Err(e);
    }
    if !report.termination.was_successful() {
        return Err(Error::failure(format!(
            "the least-squares search did not converge ({:?})",
            report.termination
        )));
    }
    let values = problem.values();
    check_edges(keys, &values)?;
    let after = residuals_at(m, keys, &values)?;
    let sens = sensitivities(&jacobian(m, keys, &values, s.step)?);
    refuse_undetermined(keys, &sens)?;
    let n = after.len() as f64;
    let sigma = (after.iter().map(|r| r * r).sum::<f64>() / (n - keys.len() as f64)).sqrt();
    let determination: Vec<Determination> = sens
        .iter()
        .map(|&sensitivity| Determination {
            sensitivity,
            uncertainty: sigma / (sensitivity * n.sqrt()),
        })
        .collect();
    check_loose(keys, &values, &determination, s.max_uncertainty)?;
    Ok(Fit {
        keys: keys.to_vec(),
        start: start.to_vec(),
        values,
        before,
        after,
        determination,
        evaluations: problem.evaluations.get(),
    })
}

/// Refuse fitted values driven to within 0.1 % of the edge of their physical range: the
/// cost model explains the data only with an unphysical value there.
fn check_edges(keys: &[Key], values: &[f64]) -> Result<()> {
    for (k, &v) in keys.iter().zip(values) {
        let near_max = k.max.is_finite() && v > k.max - 1e-3 * (k.max - k.min);
        let near_min = v < k.min + 1e-3 * v.abs().max(1e-9) || v - k.min < 1e-9;
        if near_max || near_min {
            return Err(Error::failure(format!(
                "{} went to {v:.4}, the edge of its physical range [{}, {}]: the cost model \
                 explains these measurements only with an unphysical value; leave it out of \
                 --fit",
                k.key, k.min, k.max
            )));
        }
    }
    Ok(())
}

/// Refuse coefficients the data hardly determines.
fn check_loose(keys: &[Key], values: &[f64], det: &[Determination], max_u: f64) -> Result<()> {
    for ((k, &v), d) in keys.iter().zip(values).zip(det) {
        if d.uncertainty.is_nan() || d.uncertainty > max_u {
            return Err(Error::failure(format!(
                "{} fitted to {v:.4} +/- {:.0} %, looser than --max-uncertainty {:.0} %: the \
                 data hardly determines it; leave it out of --fit, or add measurements that \
                 depend on it",
                k.key,
                d.uncertainty * 100.0,
                max_u * 100.0
            )));
        }
    }
    Ok(())
}

/// Median and 90th percentile of `|exp(r) - 1|`, the absolute relative errors.
pub fn error_quantiles(residuals: &[f64]) -> (f64, f64) {
    let mut a: Vec<f64> = residuals.iter().map(|r| r.exp_m1().abs()).collect();
    a.sort_by(f64::total_cmp);
    let q = |p: f64| crate::fidelity::quantile(&a, p);
    (q(0.5), q(0.9))
}

/// The fitted values as the YAML of a scenario's sections, under a comment header.
pub fn block_yaml(
    header: &[String],
    keys: &[Key],
    values: &[f64],
    det: &[Determination],
) -> String {
    let mut s: String = header.iter().map(|h| format!("# {h}\n")).collect();
    let mut entries: Vec<(&str, &str, f64, f64)> = keys
        .iter()
        .zip(values)
        .zip(det)
        .map(|((k, &v), d)| {
            let (section, name) = k.key.rsplit_once('.').expect("dotted key");
            (section, name, v, d.uncertainty)
        })
        .collect();
    entries.sort_by(|a, b| a.0.cmp(b.0));
    let mut open: Vec<&str> = Vec::new();
    for (section, name, v, u) in entries {
        let parts: Vec<&str> = section.split('.').collect();
        let common = open.iter().zip(&parts).take_while(|(a, b)| a == b).count();
        for (depth, p) in parts.iter().enumerate().skip(common) {
            s.push_str(&format!("{}{p}:\n", "  ".repeat(depth)));
        }
        open = parts.clone();
        s.push_str(&format!(
            "{}{name}: {}  # +/- {:.1} %\n",
            "  ".repeat(parts.len()),
            round_sig(v),
            u * 100.0
        ));
    }
    s
}

/// `v` with 5 significant digits, as YAML reads it back.
pub fn round_sig(v: f64) -> String {
    if v == 0.0 {
        return "0".into();
    }
    let digits = (4 - v.abs().log10().floor() as i32).max(0) as usize;
    format!("{v:.digits$}")
}

/// The fitted values as `--set` overrides.
pub fn set_args(keys: &[Key], values: &[f64]) -> Vec<String> {
    keys.iter()
        .zip(values)
        .map(|(k, &v)| format!("{}={}", k.key, round_sig(v)))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `y = a x + b` on a grid, in logs.
    struct Line(Vec<(f64, f64)>);

    impl Measurements for Line {
        fn residuals(&self, v: &[f64]) -> Result<Vec<f64>> {
            Ok(self
                .0
                .iter()
                .map(|(x, y)| ((v[0] * x + v.get(1).copied().unwrap_or(0.0)) / y).ln())
                .collect())
        }
    }

    fn keys(names: &[&str]) -> Vec<Key> {
        names.iter().map(|n| key(n).unwrap()).collect()
    }

    const S: Settings = Settings {
        step: 1e-4,
        max_uncertainty: 0.25,
    };

    #[test]
    fn recovers_known_coefficients() {
        let data = Line((1..20).map(|x| (x as f64, 3.0 * x as f64 + 7.0)).collect());
        let k = keys(&["gemm_floor_us", "engine.step_overhead_us"]);
        let f = fit(&data, &k, &[1.0, 1.0], S).unwrap();
        assert!((f.values[0] - 3.0).abs() < 1e-6 && (f.values[1] - 7.0).abs() < 1e-5);
        assert!(error_quantiles(&f.after).1 < 1e-8);
    }

    #[test]
    fn refuses_a_coefficient_nothing_depends_on() {
        // The second coefficient never enters this model.
        struct Slope(Vec<(f64, f64)>);
        impl Measurements for Slope {
            fn residuals(&self, v: &[f64]) -> Result<Vec<f64>> {
                Ok(self.0.iter().map(|(x, y)| (v[0] * x / y).ln()).collect())
            }
        }
        let data = Slope((1..10).map(|x| (x as f64, 2.0 * x as f64)).collect());
        let k = keys(&["gemm_floor_us", "decode_attention_floor_us"]);
        let e = fit(&data, &k, &[1.0, 1.0], S).unwrap_err().to_string();
        assert!(
            e.contains("cannot determine hardware.efficiency.decode_attention_floor_us"),
            "{e}"
        );
        assert!(!e.contains("gemm_floor_us"), "{e}");
    }

    #[test]
    fn refuses_two_coefficients_that_act_only_together() {
        // `a * b * x`: any product fits, neither is determined alone.
        struct Product(Vec<(f64, f64)>);
        impl Measurements for Product {
            fn residuals(&self, v: &[f64]) -> Result<Vec<f64>> {
                Ok(self
                    .0
                    .iter()
                    .map(|(x, y)| (v[0] * v[1] * x / y).ln())
                    .collect())
            }
        }
        let data = Product((1..10).map(|x| (x as f64, 2.0 * x as f64)).collect());
        let k = keys(&["gemm_floor_us", "decode_attention_floor_us"]);
        let e = fit(&data, &k, &[1.0, 1.0], S).unwrap_err().to_string();
        assert!(
            e.contains("gemm_floor_us") && e.contains("decode_attention_floor_us"),
            "{e}"
        );
    }

    #[test]
    fn refuses_an_unphysical_efficiency() {
        // Time = work / efficiency, measured twice as fast as an efficiency of 1 allows.
        struct Work(Vec<(f64, f64)>);
        impl Measurements for Work {
            fn residuals(&self, v: &[f64]) -> Result<Vec<f64>> {
                Ok(self.0.iter().map(|(x, y)| (x / v[0] / y).ln()).collect())
            }
        }
        let data = Work((1..10).map(|x| (x as f64, 0.5 * x as f64)).collect());
        let e = fit(&data, &keys(&["gemm_compute"]), &[0.5], S)
            .unwrap_err()
            .to_string();
        assert!(e.contains("the edge of its physical range [0, 1]"), "{e}");
    }

    #[test]
    fn the_block_nests_sections_and_reads_back() {
        let k = keys(&["gemm_compute", "gemm_floor_us", "server_latency_us"]);
        let d = Determination {
            sensitivity: 1.0,
            uncertainty: 0.01,
        };
        let y = block_yaml(&["fit".into()], &k, &[0.7123456, 5.4321, 6012.3], &[d; 3]);
        assert_eq!(
            y,
            "# fit\nengine:\n  server_latency_us: 6012.3  # +/- 1.0 %\nhardware:\n  \
             efficiency:\n    gemm_compute: 0.71235  # +/- 1.0 %\n    gemm_floor_us: 5.4321  \
             # +/- 1.0 %\n"
        );
        assert_eq!(
            set_args(&k[..1], &[0.7123456]),
            ["hardware.efficiency.gemm_compute=0.71235"]
        );
    }
}
