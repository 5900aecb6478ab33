//! Metrics: percentiles, a log-bucketed histogram for per-token latencies, and the run
//! summary.

use serde::Serialize;
use std::collections::BTreeMap;

/// Mean, percentiles and extremes of a sample: always the median, 90th and 99th
/// percentiles, and any others asked for (`more`, keyed `p95`, `p99.9`: [`percentile_key`]).
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Percentiles {
    /// Sample size.
    pub count: u64,
    /// Arithmetic mean.
    pub mean: f64,
    /// Median.
    pub p50: f64,
    /// 90th percentile.
    pub p90: f64,
    /// 99th percentile.
    pub p99: f64,
    /// Further percentiles asked for, by key.
    #[serde(flatten)]
    pub more: BTreeMap<String, f64>,
    /// Largest value.
    pub max: f64,
}

/// The key of the `p`-th percentile (0 < p < 100): `p95`, `p99.9`.
pub fn percentile_key(p: f64) -> String {
    format!("p{p}")
}

/// The percentile a key names (`p95` -> 95), if it is one (0 < p < 100).
pub fn parse_percentile_key(key: &str) -> Option<f64> {
    let p: f64 = key.strip_prefix('p')?.parse().ok()?;
    (p > 0.0 && p < 100.0 && key == percentile_key(p)).then_some(p)
}

impl Percentiles {
    /// The `p`-th percentile (or the mean for `mean`), if computed.
    pub fn get(&self, stat: &str) -> Option<f64> {
        match stat {
            "mean" => Some(self.mean),
            "p50" => Some(self.p50),
            "p90" => Some(self.p90),
            "p99" => Some(self.p99),
            "max" => Some(self.max),
            k => self.more.get(k).copied(),
        }
    }

    /// Add the percentiles of `extra` (in percent) not yet present, from `quantile`.
    fn add_more(&mut self, extra: &[f64], quantile: impl Fn(f64) -> f64) {
        for &p in extra {
            let key = percentile_key(p);
            if self.get(&key).is_none() {
                self.more.insert(key, quantile(p / 100.0));
            }
        }
    }
}

/// The `q`-quantile (0..=1) of sorted data, by linear interpolation between closest ranks
/// (NumPy's default, which vLLM's benchmarks use).
///
/// ```
/// use kvsim::metrics::quantile_sorted;
/// let v = [1.0, 2.0, 3.0, 4.0];
/// assert_eq!(quantile_sorted(&v, 0.5), 2.5);
/// assert_eq!(quantile_sorted(&v, 1.0), 4.0);
/// ```
pub fn quantile_sorted(sorted: &[f64], q: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let pos = q * (sorted.len() - 1) as f64;
    let lo = pos.floor() as usize;
    let hi = pos.ceil() as usize;
    sorted[lo] + (sorted[hi] - sorted[lo]) * (pos - lo as f64)
}

impl Percentiles {
    /// Summarise a sample (sorts it in place).
    pub fn of(values: &mut [f64]) -> Percentiles {
        Self::with(values, &[])
    }

    /// Summarise a sample with the further percentiles `extra` (in percent; sorts it in
    /// place).
    pub fn with(values: &mut [f64], extra: &[f64]) -> Percentiles {
        if values.is_empty() {
            return Percentiles::default();
        }
        values.sort_by(|a, b| a.total_cmp(b));
        let mut p = Percentiles {
            count: values.len() as u64,
            mean: values.iter().sum::<f64>() / values.len() as f64,
            p50: quantile_sorted(values, 0.5),
            p90: quantile_sorted(values, 0.9),
            p99: quantile_sorted(values, 0.99),
            more: BTreeMap::new(),
            max: *values.last().expect("non-empty"),
        };
        p.add_more(extra, |q| quantile_sorted(values, q));
        p
    }
}

/// Sub-buckets per power of two: values are kept within 1/128 relative error.
const SUB_BITS: u32 = 7;

/// A histogram of non-negative integer values (nanoseconds) in log-linear buckets, for
/// samples too numerous to keep (one per generated token). Exact count, sum and max.
#[derive(Debug, Clone, Default)]
pub struct LogHistogram {
    counts: Vec<u64>,
    total: u64,
    sum: u128,
    max: u64,
}

impl LogHistogram {
    fn bucket(v: u64) -> usize {
        if v < (1 << SUB_BITS) {
            return v as usize;
        }
        let exp = 63 - v.leading_zeros(); // >= SUB_BITS
        let shift = exp - SUB_BITS;
        let sub = (v >> shift) as usize & ((1 << SUB_BITS) - 1);
        (((exp - SUB_BITS + 1) as usize) << SUB_BITS) + sub
    }

    fn bucket_mid(b: usize) -> f64 {
        if b < (1 << SUB_BITS) {
            return b as f64;
        }
        let group = (b >> SUB_BITS) as u32; // exp - SUB_BITS + 1
        let sub = (b & ((1 << SUB_BITS) - 1)) as u64;
        let shift = group - 1;
        let lo = ((1u64 << SUB_BITS) | sub) << shift;
        lo as f64 + ((1u64 << shift) as f64 - 1.0) / 2.0
    }

    /// Record one value.
    pub fn record(&mut self, v: u64) {
        self.record_n(v, 1);
    }

    /// Record the value `v` `n` times (the same as `n` calls of [`LogHistogram::record`]).
    pub fn record_n(&mut self, v: u64, n: u64) {
        if n == 0 {
            return;
        }
        let b = Self::bucket(v);
        if b >= self.counts.len() {
            self.counts.resize(b + 1, 0);
        }
        self.counts[b] += n;
        self.total += n;
        self.sum += v as u128 * n as u128;
        self.max = self.max.max(v);
    }

    /// Values recorded.
    pub fn count(&self) -> u64 {
        self.total
    }

    /// Approximate `q`-quantile (bucket midpoint; exact below 128).
    pub fn quantile(&self, q: f64) -> f64 {
        if self.total == 0 {
            return 0.0;
        }
        let rank = ((q * self.total as f64).ceil() as u64).clamp(1, self.total);
        let mut seen = 0;
        for (b, &c) in self.counts.iter().enumerate() {
            seen += c;
            if seen >= rank {
                return Self::bucket_mid(b).min(self.max as f64);
            }
        }
        self.max as f64
    }

    /// Summary, with values divided by `scale` (e.g. 1e6 for milliseconds).
    pub fn percentiles(&self, scale: f64) -> Percentiles {
        self.percentiles_with(scale, &[])
    }

    /// Summary with the further percentiles `extra` (in percent).
    pub fn percentiles_with(&self, scale: f64, extra: &[f64]) -> Percentiles {
        if self.total == 0 {
            return Percentiles::default();
        }
        let mut p = Percentiles {
            count: self.total,
            mean: self.sum as f64 / self.total as f64 / scale,
            p50: self.quantile(0.5) / scale,
            p90: self.quantile(0.9) / scale,
            p99: self.quantile(0.99) / scale,
            more: BTreeMap::new(),
            max: self.max as f64 / scale,
        };
        p.add_more(extra, |q| self.quantile(q) / scale);
        p
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numpy_linear_quantiles() {
        let mut v = vec![4.0, 1.0, 3.0, 2.0];
        let p = Percentiles::of(&mut v);
        assert_eq!(p.p50, 2.5);
        assert!((p.p90 - 3.7).abs() < 1e-12);
        assert_eq!(p.max, 4.0);
        assert_eq!(p.mean, 2.5);
    }

    #[test]
    fn histogram_is_exact_for_small_and_close_for_large() {
        let mut h = LogHistogram::default();
        for v in 0..100 {
            h.record(v);
        }
        assert_eq!(h.quantile(0.5), 49.0);
        let mut h = LogHistogram::default();
        for v in 1..=100_000u64 {
            h.record(v * 1000);
        }
        let p99 = h.quantile(0.99);
        assert!((p99 / 99_000_000.0 - 1.0).abs() < 1.0 / 64.0, "{p99}");
        assert_eq!(h.percentiles(1.0).max, 100_000_000.0);
        assert_eq!(h.count(), 100_000);
    }
}
