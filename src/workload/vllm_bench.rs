//! The result file of `vllm bench serve --save-result --save-detailed` (vLLM 0.33.0,
//! `vllm/benchmarks/serve.py`): one JSON object whose arrays hold one entry per request, in
//! the order the requests were sent: `start_times` (the client's `perf_counter` at sending,
//! seconds), `input_lens` and `output_lens` (tokens), `ttfts` and `latencies` (seconds) and
//! `errors` (empty for a success). As a trace it replays the successful requests at their
//! sending times with their lengths; their prompts share no content (the file has none).
//! The file is one object whose arrays are the trace: it is parsed as it streams, keeping
//! only those arrays (at most [`MAX_RESULT_REQUESTS`] entries each) and skipping the rest.

use super::RawRequest;
use crate::error::{Error, Result};
use serde::de::{Deserializer, SeqAccess, Visitor};
use serde::Deserialize;
use std::path::Path;

/// One request of the result file.
#[derive(Debug, Clone, PartialEq)]
pub struct BenchRequest {
    /// Seconds from the first request sent.
    pub start_s: f64,
    /// Prompt tokens.
    pub input_tokens: u32,
    /// Output tokens received.
    pub output_tokens: u32,
    /// Measured time to first token, seconds.
    pub ttft_s: f64,
    /// Measured end-to-end latency, seconds.
    pub latency_s: f64,
}

/// The successful requests of a result file, in sending order, and how many failed.
#[derive(Debug, Clone, PartialEq)]
pub struct BenchResult {
    /// Successful requests.
    pub requests: Vec<BenchRequest>,
    /// Requests with a non-empty `errors` entry (left out).
    pub failed: usize,
}

/// Most requests a result file may hold: 2^22 = 4,194,304, far beyond any `vllm bench`
/// run; it bounds what the five arrays read cost (8 bytes an entry: 160 MiB).
pub const MAX_RESULT_REQUESTS: usize = 1 << 22;

/// The arrays of the result object that make the trace; every other key (`itls`,
/// `generated_texts`, ..., most of the file) is skipped as it streams by.
#[derive(Deserialize)]
struct Detailed {
    #[serde(default)]
    start_times: Option<Column>,
    #[serde(default)]
    input_lens: Option<Column>,
    #[serde(default)]
    output_lens: Option<Column>,
    #[serde(default)]
    ttfts: Option<Column>,
    #[serde(default)]
    latencies: Option<Column>,
    #[serde(default)]
    errors: Option<Errors>,
}

/// An array of non-negative numbers, and its first entry that is not one.
struct Column {
    values: Vec<f64>,
    bad: Option<(usize, serde_json::Value)>,
}

/// The `errors` array: whether each entry is a non-empty string (a failed request).
struct Errors(Vec<bool>);

/// Visit a JSON array entry by entry, refusing more than [`MAX_RESULT_REQUESTS`].
fn each_entry<'de, A: SeqAccess<'de>>(
    mut seq: A,
    mut f: impl FnMut(usize, serde_json::Value),
) -> std::result::Result<(), A::Error> {
    let mut i = 0;
    while let Some(x) = seq.next_element::<serde_json::Value>()? {
        if i == MAX_RESULT_REQUESTS {
            return Err(serde::de::Error::custom(format!(
                "an array has more than {MAX_RESULT_REQUESTS} entries"
            )));
        }
        f(i, x);
        i += 1;
    }
    Ok(())
}

impl<'de> Deserialize<'de> for Column {
    fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Column;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("an array of numbers")
            }
            fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> std::result::Result<Column, A::Error> {
                let mut c = Column {
                    values: Vec::new(),
                    bad: None,
                };
                each_entry(seq, |i, x| {
                    match x.as_f64().filter(|f| f.is_finite() && *f >= 0.0) {
                        Some(f) => c.values.push(f),
                        None => {
                            c.values.push(f64::NAN);
                            c.bad.get_or_insert((i, x));
                        }
                    }
                })?;
                Ok(c)
            }
        }
        d.deserialize_seq(V)
    }
}

impl<'de> Deserialize<'de> for Errors {
    fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Errors;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("an array of error strings")
            }
            fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> std::result::Result<Errors, A::Error> {
                let mut e = Vec::new();
                each_entry(seq, |_, x| {
                    e.push(x.as_str().is_some_and(|s| !s.is_empty()))
                })?;
                Ok(Errors(e))
            }
        }
        d.deserialize_seq(V)
    }
}

/// One array of numbers of the result object.
fn numbers(c: Option<Column>, key: &str, path: &Path) -> Result<Vec<f64>> {
    let c = c.ok_or_else(|| {
        Error::input(format!(
            "{}: no `{key}` array (save the result with `vllm bench serve --save-result \
             --save-detailed`)",
            path.display()
        ))
    })?;
    if let Some((i, x)) = c.bad {
        return Err(Error::input(format!(
            "{}: {key}[{i}] is not a non-negative number (got {x})",
            path.display()
        )));
    }
    Ok(c.values)
}

/// A token count of request `i`.
fn tokens(x: f64, key: &str, i: usize, path: &Path) -> Result<u32> {
    if x.fract() != 0.0 || x > u32::MAX as f64 {
        return Err(Error::input(format!(
            "{}: {key}[{i}] is not a token count (got {x})",
            path.display()
        )));
    }
    Ok(x as u32)
}

/// Read a result file.
pub fn read(path: &Path) -> Result<BenchResult> {
    let file = super::open_file(path)?;
    let v: Detailed = serde_json::from_reader(file)
        .map_err(|e| Error::input(format!("{}: not a result file: {e}", path.display())))?;
    let start = numbers(v.start_times, "start_times", path)?;
    let n = start.len();
    let mut cols = Vec::new();
    let rest = [
        ("input_lens", v.input_lens),
        ("output_lens", v.output_lens),
        ("ttfts", v.ttfts),
        ("latencies", v.latencies),
    ];
    for (key, column) in rest {
        let c = numbers(column, key, path)?;
        if c.len() != n {
            return Err(Error::input(format!(
                "{}: `{key}` has {} entries, `start_times` {n}",
                path.display(),
                c.len()
            )));
        }
        cols.push(c);
    }
    let errors: Vec<bool> = match v.errors {
        Some(Errors(e)) if e.len() == n => e,
        Some(Errors(e)) => {
            return Err(Error::input(format!(
                "{}: `errors` has {} entries, `start_times` {n}",
                path.display(),
                e.len()
            )))
        }
        None => vec![false; n],
    };
    let t0 = start.iter().copied().fold(f64::INFINITY, f64::min);
    let mut requests = Vec::with_capacity(n);
    for i in (0..n).filter(|&i| !errors[i]) {
        let input_tokens = tokens(cols[0][i], "input_lens", i, path)?;
        let output_tokens = tokens(cols[1][i], "output_lens", i, path)?;
        super::check::request_tokens(
            &format!("{}: request {i}", path.display()),
            input_tokens as u64,
            output_tokens as u64,
        )?;
        requests.push(BenchRequest {
            start_s: start[i] - t0,
            input_tokens,
            output_tokens,
            ttft_s: cols[2][i],
            latency_s: cols[3][i],
        });
    }
    if requests.is_empty() {
        return Err(Error::input(format!(
            "{}: no successful request",
            path.display()
        )));
    }
    requests.sort_by(|a, b| a.start_s.total_cmp(&b.start_s));
    Ok(BenchResult {
        failed: n - requests.len(),
        requests,
    })
}

/// The successful requests of a result file as raw requests, in sending order.
pub fn raw_requests(path: &Path) -> Result<impl Iterator<Item = Result<RawRequest>>> {
    let result = read(path)?;
    Ok(result.requests.into_iter().map(|r| {
        Ok(RawRequest {
            arrival_ns: (r.start_s * super::NS_PER_S).round() as u64,
            input_tokens: r.input_tokens,
            output_tokens: r.output_tokens,
            session: None,
            segments: Vec::new(),
        })
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(name: &str, text: &str) -> std::path::PathBuf {
        let p =
            std::env::temp_dir().join(format!("kvsim-bench-{}-{name}.json", std::process::id()));
        std::fs::write(&p, text).unwrap();
        p
    }

    #[test]
    fn reads_successes_in_sending_order_from_the_first_send() {
        let p = write(
            "ok",
            r#"{"start_times": [10.5, 10.0, 11.0], "input_lens": [100, 200, 300],
                "output_lens": [5, 6, 0], "ttfts": [0.1, 0.2, 0.0],
                "latencies": [0.5, 0.6, 0.0], "errors": ["", "", "timeout"]}"#,
        );
        let r = read(&p).unwrap();
        assert_eq!(r.failed, 1);
        assert_eq!(r.requests.len(), 2);
        assert_eq!(r.requests[0].input_tokens, 200);
        assert_eq!(r.requests[1].start_s, 0.5);
        let raw: Vec<RawRequest> = raw_requests(&p).unwrap().map(|r| r.unwrap()).collect();
        assert_eq!(raw[1].arrival_ns, 500_000_000);
        assert_eq!(raw[1].output_tokens, 5);
        std::fs::remove_file(p).unwrap();
    }

    #[test]
    fn names_the_missing_or_bad_field() {
        let p = write("no-detail", r#"{"completed": 3, "mean_ttft_ms": 20.0}"#);
        let e = read(&p).unwrap_err().to_string();
        assert!(
            e.contains("no `start_times` array") && e.contains("--save-detailed"),
            "{e}"
        );
        let p2 = write(
            "bad",
            r#"{"start_times": [0, 1], "input_lens": [1, 2.5], "output_lens": [1, 1],
                "ttfts": [0, 0], "latencies": [0, 0]}"#,
        );
        let e = read(&p2).unwrap_err().to_string();
        assert!(e.contains("input_lens[1] is not a token count"), "{e}");
        let p3 = write(
            "short",
            r#"{"start_times": [0, 1], "input_lens": [1], "output_lens": [1, 1],
                "ttfts": [0, 0], "latencies": [0, 0]}"#,
        );
        let e = read(&p3).unwrap_err().to_string();
        assert!(
            e.contains("`input_lens` has 1 entries, `start_times` 2"),
            "{e}"
        );
        for p in [p, p2, p3] {
            std::fs::remove_file(p).unwrap();
        }
    }

    #[test]
    fn skips_other_keys_and_bounds_the_arrays() {
        let p = write(
            "skip",
            r#"{"itls": [[0.1, 0.2], [0.3]], "generated_texts": ["a", "b"], "start_times": [0, 2],
                "input_lens": [3, 4], "output_lens": [1, 2], "ttfts": [0, 0], "latencies": [1, 1],
                "errors": ["", ""], "extra": {"nested": [1, {"x": null}]}}"#,
        );
        let r = read(&p).unwrap();
        assert_eq!(r.requests.len(), 2);
        assert_eq!(r.requests[1].start_s, 2.0);
        let p2 = write(
            "negative",
            r#"{"start_times": [0, 1], "input_lens": [1, 1], "output_lens": [1, 1],
                "ttfts": [0, "x"], "latencies": [0, 0]}"#,
        );
        let e = read(&p2).unwrap_err().to_string();
        assert!(
            e.contains("ttfts[1] is not a non-negative number (got \"x\")"),
            "{e}"
        );
        // One entry past the bound is refused while it streams, before the next array.
        let mut big = String::from("{\"start_times\": [");
        for _ in 0..MAX_RESULT_REQUESTS {
            big.push_str("0,");
        }
        big.push_str("0]}");
        let p3 = write("huge", &big);
        let e = read(&p3).unwrap_err().to_string();
        assert!(
            e.contains(&format!("more than {MAX_RESULT_REQUESTS} entries")),
            "{e}"
        );
        for p in [p, p2, p3] {
            std::fs::remove_file(p).unwrap();
        }
    }
}
