//! Service-level objectives on a run's latency distributions: `METRIC_STAT_ms` bounds such
//! as `ttft_p99_ms: 2000`, `tpot_mean_ms: 50` or `e2e_p99.9_ms: 30000`, with METRIC one of
//! `ttft`, `tpot`, `itl`, `e2e` and STAT `mean` or any percentile `pNN` (0 < NN < 100).
//! Written in a scenario's `slo` section beside the per-request bounds, and given to
//! `kvsim plan --slo`.

use crate::error::{Error, Result};
use crate::metrics::{parse_percentile_key, Percentiles};
use crate::report::Summary;
use serde::Serialize;

/// The latency metrics a bound may name.
pub const METRICS: [&str; 4] = ["ttft", "tpot", "itl", "e2e"];

/// One bound on a latency distribution, e.g. `ttft_p99_ms=2000`.
#[derive(Debug, Clone, PartialEq)]
pub struct SloBound {
    /// `ttft`, `tpot`, `itl` or `e2e`.
    pub metric: String,
    /// `mean` or a percentile key (`p99`, `p99.9`).
    pub stat: String,
    /// Bound in milliseconds.
    pub limit_ms: f64,
}

/// What a bound's key must look like (for error messages).
pub const FORM: &str = "METRIC_STAT_ms with METRIC ttft, tpot, itl or e2e and STAT mean or \
                        a percentile pNN with 0 < NN < 100 (e.g. ttft_p99_ms, tpot_mean_ms, e2e_p99.9_ms)";

impl SloBound {
    /// The bound `key` (`ttft_p95_ms`) at `limit_ms`; the error says what is wrong.
    pub fn new(key: &str, limit_ms: f64) -> std::result::Result<SloBound, String> {
        let bad = || format!("`{key}`: expected {FORM}");
        let k = key.strip_suffix("_ms").ok_or_else(bad)?;
        let (metric, stat) = k.split_once('_').ok_or_else(bad)?;
        // `p99_9` is `p99.9` spelled without a dot (which `--set` reads as nesting).
        let stat = stat.replacen('_', ".", 1);
        let stat = stat.as_str();
        let ok_stat = stat == "mean" || parse_percentile_key(stat).is_some();
        if !METRICS.contains(&metric) || !ok_stat {
            return Err(bad());
        }
        if !limit_ms.is_finite() || limit_ms <= 0.0 {
            return Err(format!(
                "`{key}`: the bound must be a positive number of ms"
            ));
        }
        Ok(SloBound {
            metric: metric.to_string(),
            stat: stat.to_string(),
            limit_ms,
        })
    }

    /// Parse `metric_stat_ms=value[,...]` (the `--slo` option).
    pub fn parse_list(s: &str) -> Result<Vec<SloBound>> {
        s.split(',')
            .map(|part| {
                let (k, v) = part
                    .split_once('=')
                    .ok_or_else(|| Error::input(format!("--slo {part}: expected {FORM}=BOUND")))?;
                let limit: f64 = v.trim().parse().map_err(|_| {
                    Error::input(format!("--slo {part}: the bound `{v}` is not a number"))
                })?;
                SloBound::new(k.trim(), limit).map_err(|m| Error::input(format!("--slo {m}")))
            })
            .collect()
    }

    /// The distribution the bound is on.
    fn distribution<'a>(&self, s: &'a Summary) -> &'a Percentiles {
        let l = &s.latency;
        match self.metric.as_str() {
            "ttft" => &l.ttft_ms,
            "tpot" => &l.tpot_ms,
            "itl" => &l.itl_ms,
            _ => &l.e2e_ms,
        }
    }

    /// The measured value in a summary built with this bound's percentile
    /// ([`percentiles_needed`]); `None` if that percentile was not computed.
    pub fn value(&self, s: &Summary) -> Option<f64> {
        self.distribution(s).get(&self.stat)
    }

    /// The percentile it needs computed, in percent (`None` for `mean`).
    pub fn percentile(&self) -> Option<f64> {
        parse_percentile_key(&self.stat)
    }

    /// `ttft_p99_ms`.
    pub fn name(&self) -> String {
        format!("{}_{}_ms", self.metric, self.stat)
    }
}

/// The percentiles (in percent) these bounds read.
pub fn percentiles_needed(bounds: &[SloBound]) -> Vec<f64> {
    bounds.iter().filter_map(SloBound::percentile).collect()
}

/// A bound checked against a run.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SloCheck {
    /// The bound's key (`ttft_p99_ms`).
    pub name: String,
    /// The bound, ms.
    pub bound_ms: f64,
    /// The run's value, ms.
    pub value_ms: f64,
    /// Whether the value is within the bound.
    pub met: bool,
}

/// Check every bound against a summary built with their percentiles.
pub fn check_all(bounds: &[SloBound], s: &Summary) -> Vec<SloCheck> {
    bounds
        .iter()
        .map(|b| {
            let v = b.value(s).unwrap_or(f64::NAN);
            SloCheck {
                name: b.name(),
                bound_ms: b.limit_ms,
                value_ms: v,
                met: v <= b.limit_ms,
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_parse_with_any_percentile_and_reject_nonsense() {
        let b = SloBound::parse_list("ttft_p99_ms=2000, tpot_mean_ms=50,e2e_p99.9_ms=9").unwrap();
        assert_eq!(b[0].name(), "ttft_p99_ms");
        assert_eq!(b[1].stat, "mean");
        assert_eq!(b[2].percentile(), Some(99.9));
        let dotless = SloBound::new("e2e_p99_9_ms", 9.0).unwrap();
        assert_eq!(
            (dotless.stat.as_str(), dotless.name()),
            ("p99.9", "e2e_p99.9_ms".into())
        );
        assert_eq!(percentiles_needed(&b), vec![99.0, 99.9]);
        let p95 = SloBound::new("ttft_p95_ms", 500.0).unwrap();
        assert_eq!(p95.percentile(), Some(95.0));
        for bad in [
            "ttft_p99_ms=x",
            "lat_p99_ms=1",
            "ttft_p99_ms=-1",
            "ttft_p100_ms=1",
            "ttft_p0_ms=1",
            "ttft_p95",
            "ttft_p095_ms=1",
            "ttft_q95_ms=1",
            "ttft_p99_ms=NaN",
        ] {
            assert!(SloBound::parse_list(bad).is_err(), "{bad}");
        }
    }
}
