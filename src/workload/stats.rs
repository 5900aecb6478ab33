//! `kvsim trace stats`: count, duration, rate, length percentiles and the infinite-cache
//! prefix-reuse bound.

use super::RequestStream;
use crate::error::Result;
use crate::metrics::Percentiles;
use crate::prefix::{ReuseBound, ReuseBoundCounter};
use serde::Serialize;

/// Summary statistics of a workload.
#[derive(Debug, Clone, Serialize)]
pub struct TraceStats {
    /// Requests.
    pub requests: u64,
    /// Time from the first to the last arrival, seconds.
    pub duration_s: f64,
    /// Requests per second over the duration.
    pub rate_per_s: f64,
    /// Prompt lengths.
    pub input_tokens: Percentiles,
    /// Output lengths.
    pub output_tokens: Percentiles,
    /// Distinct sessions (0 if the trace has none).
    pub sessions: u64,
    /// Fraction of prompt tokens in trace blocks whose prefix was seen before.
    pub prefix_reuse_bound: f64,
    /// The same bound under vLLM's rules at the engine block size.
    pub engine_hit_bound: f64,
    /// Engine block size used for `engine_hit_bound`.
    pub block_size: u32,
    /// Token counts behind the bounds.
    pub bound: ReuseBound,
}

/// Compute statistics over a request stream.
pub fn trace_stats(stream: RequestStream, block_size: u32) -> Result<TraceStats> {
    let mut inputs = Vec::new();
    let mut outputs = Vec::new();
    let mut first = None;
    let mut last = 0;
    let mut counter = ReuseBoundCounter::new(block_size);
    let mut sessions = std::collections::HashSet::new();
    for r in stream {
        let r = r?;
        first.get_or_insert(r.arrival_ns);
        last = r.arrival_ns;
        inputs.push(r.input_tokens as f64);
        outputs.push(r.output_tokens as f64);
        if let Some(s) = r.session {
            sessions.insert(s);
        }
        counter.add(r.id, &r.segments, r.input_tokens);
        counter.remember_output(&r);
    }
    let n = inputs.len() as u64;
    let duration_s = (last - first.unwrap_or(0)) as f64 / 1e9;
    Ok(TraceStats {
        requests: n,
        duration_s,
        rate_per_s: if duration_s > 0.0 {
            n as f64 / duration_s
        } else {
            0.0
        },
        input_tokens: Percentiles::of(&mut inputs),
        output_tokens: Percentiles::of(&mut outputs),
        sessions: sessions.len() as u64,
        prefix_reuse_bound: counter.bound.fraction(),
        engine_hit_bound: counter.bound.engine_fraction(),
        block_size,
        bound: counter.bound,
    })
}

impl TraceStats {
    /// Human-readable table.
    pub fn to_table(&self) -> String {
        let p = |x: &Percentiles| {
            format!(
                "mean {:.1}  p50 {:.0}  p90 {:.0}  p99 {:.0}  max {:.0}",
                x.mean, x.p50, x.p90, x.p99, x.max
            )
        };
        format!(
            "requests            {}\nduration            {:.1} s\nrate                {:.3} req/s\ninput tokens        {}\noutput tokens       {}\nsessions            {}\nprefix reuse bound  {:.4} (fraction of input tokens in trace blocks seen before)\nengine hit bound    {:.4} (vLLM rules, {}-token blocks, infinite cache)\n",
            self.requests,
            self.duration_s,
            self.rate_per_s,
            p(&self.input_tokens),
            p(&self.output_tokens),
            self.sessions,
            self.prefix_reuse_bound,
            self.engine_hit_bound,
            self.block_size
        )
    }
}
