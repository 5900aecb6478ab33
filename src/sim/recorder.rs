//! Collects what a run produces: per-request and per-step rows (streamed to CSV as they
//! happen) and the aggregates behind the summary.

use crate::engine::block_pool::BlockCounts;
use crate::engine::replica::RejectReason;
use crate::engine::request::EngineRequest;
use crate::error::{Error, Result};
use crate::metrics::LogHistogram;
use crate::scenario::SloSpec;
use crate::workload::Request;
use std::collections::BTreeMap;
use std::fs::File;
use std::io::{BufWriter, Write};

/// One engine step, as written to `steps.csv`.
#[derive(Debug, Clone, Copy, Default)]
pub struct StepRecord {
    /// The replica that ran it.
    pub replica: u32,
    /// Step start, ns.
    pub start_ns: u64,
    /// Step duration, ns.
    pub duration_ns: u64,
    /// Requests in the step.
    pub batch_size: u32,
    /// Requests running a prefill chunk.
    pub prefill_seqs: u32,
    /// Prefill tokens.
    pub prefill_tokens: u64,
    /// Decode tokens.
    pub decode_tokens: u64,
    /// Blocks by state after scheduling.
    pub blocks: BlockCounts,
    /// Waiting requests after scheduling.
    pub waiting: u32,
    /// Running requests after scheduling.
    pub running: u32,
    /// Preemptions while scheduling this step.
    pub preemptions: u32,
    /// SGLang's own columns, when the engine is SGLang.
    pub sglang: Option<crate::engine::sglang::scheduler::StepSummary>,
}

/// Latencies of one completed request, milliseconds.
#[derive(Debug, Clone, Copy)]
pub struct RequestLatency {
    /// Arrival, nanoseconds from the start of the replay.
    pub arrival_ns: u64,
    /// Output tokens generated.
    pub output_tokens: u32,
    /// Time to first token.
    pub ttft_ms: f64,
    /// Mean time per output token after the first (None with one output token).
    pub tpot_ms: Option<f64>,
    /// End to end.
    pub e2e_ms: f64,
}

/// Aggregates of one replica.
#[derive(Debug, Default, Clone)]
pub struct ReplicaStats {
    /// Completed requests whose prompt ran here.
    pub prompts: u64,
    /// Completed requests that finished here.
    pub completed: u64,
    /// Prompt tokens of those prompts.
    pub input_tokens: u64,
    /// Their GPU prefix-cache hit tokens.
    pub cached_tokens: u64,
    /// Their CPU-tier hit tokens.
    pub cpu_hit_tokens: u64,
    /// Steps run.
    pub steps: u64,
    /// Busy time, ns.
    pub busy_ns: u64,
    /// Peak used blocks.
    pub peak_used_blocks: u32,
    /// Largest batch.
    pub max_batch: u32,
    /// Preemptions.
    pub preemptions: u64,
    /// Time to first token of the prompts that ran here, ms.
    pub ttft_ms: Vec<f64>,
}

/// The cluster's state at one moment (for plots over time).
#[derive(Debug, Clone, Copy, Default)]
pub struct TimelinePoint {
    /// Seconds since the start of the trace clock.
    pub t_s: f64,
    /// Blocks used, over replicas.
    pub used_blocks: u64,
    /// Requests waiting, over replicas.
    pub waiting: u64,
    /// Requests running, over replicas.
    pub running: u64,
}

/// Aggregates of a run.
#[derive(Debug, Default)]
pub struct Recorder {
    /// The cluster's used blocks and queues, at most one point per second of simulated time.
    pub timeline: Vec<TimelinePoint>,
    /// Latest (used blocks, waiting, running) of each replica.
    latest: Vec<(u32, u32, u32)>,
    /// Per-replica aggregates, by replica index.
    pub replicas: Vec<ReplicaStats>,
    /// Prompt tokens loaded from CPU tiers, over completed requests.
    pub cpu_hit_tokens: u64,
    requests_csv: Option<BufWriter<File>>,
    steps_csv: Option<BufWriter<File>>,
    slo: SloSpec,
    /// Per completed request latencies.
    pub latencies: Vec<RequestLatency>,
    /// Inter-token latencies, ns.
    pub itl: LogHistogram,
    /// Completed requests.
    pub completed: u64,
    /// Completed requests that met every SLO bound.
    pub slo_met: u64,
    /// Rejections by reason.
    pub rejected: BTreeMap<&'static str, u64>,
    /// Requests that arrived.
    pub arrived: u64,
    /// Prompt tokens of completed requests.
    pub input_tokens: u64,
    /// Output tokens generated.
    pub output_tokens: u64,
    /// Output tokens the trace asked for, over completed requests.
    pub expected_output_tokens: u64,
    /// Prefix-cache hit tokens at first admission, over completed requests.
    pub cached_tokens: u64,
    /// Tokens recomputed after preemptions.
    pub recomputed_tokens: u64,
    /// Preemptions (counted per step).
    pub preemptions: u64,
    /// Steps run.
    pub steps: u64,
    /// Time the engine was busy, ns.
    pub busy_ns: u64,
    /// Integral of used blocks over busy time (block-ns).
    pub used_block_ns: u128,
    /// Peak used blocks.
    pub peak_used_blocks: u32,
    /// Largest batch.
    pub max_batch: u32,
    /// Largest running set.
    pub max_running: u32,
    /// First arrival, ns.
    pub first_arrival_ns: Option<u64>,
    /// Last completion, ns.
    pub last_finish_ns: u64,
    /// Prefill tokens computed.
    pub prefill_tokens: u64,
    /// Ids of the requests finished or rejected since the client last looked (kept only
    /// under closed-loop load, [`Recorder::track_done`]).
    pub done: Option<Vec<u64>>,
    /// The Perfetto trace being written, if asked for ([`Recorder::set_trace`]).
    trace: Option<crate::trace_events::TraceWriter>,
    /// Every step goes through the event loop (`kvsim run --no-fast-forward`).
    step_by_step: bool,
    /// Steps the replicas ran by fast-forwarding (`Replica::fast_forward`).
    pub fast_forwarded_steps: u64,
    /// Every request's figures for `bench_result.json`, if asked for.
    pub bench: Option<crate::bench_result::BenchRecorder>,
    /// The progress display's handle, if one is shown ([`Recorder::set_progress`]).
    progress: Option<crate::progress::Ticker>,
}

fn io_err(what: &str) -> impl Fn(std::io::Error) -> Error + '_ {
    move |e| Error::failure(format!("cannot write {what}: {e}"))
}

impl Recorder {
    /// A recorder that writes rows to the given files (if any), vLLM's columns.
    pub fn new(requests_csv: Option<File>, steps_csv: Option<File>, slo: SloSpec) -> Result<Self> {
        Self::for_engine(requests_csv, steps_csv, slo, "vllm")
    }

    /// A recorder whose files carry the columns of `engine` (`vllm`, or `sglang`: the
    /// SGLang kit's step columns, and `retractions` for `preemptions`).
    pub fn for_engine(
        requests_csv: Option<File>,
        steps_csv: Option<File>,
        slo: SloSpec,
        engine: &str,
    ) -> Result<Self> {
        let sglang = engine == "sglang";
        let mut r = Recorder {
            requests_csv: requests_csv.map(|f| BufWriter::with_capacity(1 << 16, f)),
            steps_csv: steps_csv.map(|f| BufWriter::with_capacity(1 << 16, f)),
            slo,
            ..Default::default()
        };
        let preempted = if sglang { "retractions" } else { "preemptions" };
        if let Some(w) = &mut r.requests_csv {
            writeln!(w, "request_id,arrival_s,input_tokens,output_tokens,status,reason,cached_tokens,first_scheduled_s,first_token_s,finish_s,ttft_ms,tpot_ms,e2e_ms,{preempted},recomputed_tokens,cpu_hit_tokens,prefill_replica,replica")
                .map_err(io_err("requests.csv"))?;
        }
        if let Some(w) = &mut r.steps_csv {
            let header = if sglang {
                "replica,start_s,duration_ms,mode,batch_size,prefill_seqs,prefill_tokens,decode_tokens,cached_hit_tokens,retracted,new,resumed,chunked_rid,kv_used,tree_evictable,tree_protected,kv_free,waiting,running,new_token_ratio"
            } else {
                "replica,start_s,duration_ms,batch_size,prefill_seqs,prefill_tokens,decode_tokens,blocks_used,blocks_cached,blocks_free,waiting,running,preemptions"
            };
            writeln!(w, "{header}").map_err(io_err("steps.csv"))?;
        }
        Ok(r)
    }

    /// Also write the run as a Perfetto trace.
    pub fn set_trace(&mut self, trace: crate::trace_events::TraceWriter) {
        self.trace = Some(trace);
    }

    /// Report progress (requests finished, simulated time) through `ticker`.
    pub fn set_progress(&mut self, ticker: crate::progress::Ticker) {
        self.progress = Some(ticker);
    }

    /// Keep the ids of finished and rejected requests in [`Recorder::done`].
    pub fn track_done(&mut self) {
        self.done.get_or_insert_with(Vec::new);
    }

    /// A request arrived (accepted or not).
    pub fn on_arrival(&mut self, now_ns: u64) {
        self.arrived += 1;
        self.first_arrival_ns.get_or_insert(now_ns);
    }

    /// Request `id` is sent after waiting `queue_ns` for a concurrency slot.
    pub fn on_send(&mut self, id: u64, queue_ns: u64) {
        if let Some(b) = &mut self.bench {
            b.on_send(id, queue_ns);
        }
    }

    /// A request was rejected.
    pub fn on_reject(&mut self, req: &Request, reason: RejectReason, now_ns: u64) -> Result<()> {
        *self.rejected.entry(reason.as_str()).or_default() += 1;
        if let Some(d) = &mut self.done {
            d.push(req.id);
        }
        if let Some(b) = &mut self.bench {
            b.on_reject(req.id, req.arrival_ns, req.input_tokens, reason.as_str());
        }
        if let Some(t) = &mut self.trace {
            t.on_reject(req, reason, now_ns)?;
        }
        if let Some(w) = &mut self.requests_csv {
            writeln!(
                w,
                "{},{:.6},{},{},rejected,{},,,,,,,,0,0,,,",
                req.id,
                s(req.arrival_ns),
                req.input_tokens,
                req.output_tokens,
                reason.as_str()
            )
            .map_err(io_err("requests.csv"))?;
        }
        Ok(())
    }

    fn replica(&mut self, i: u32) -> &mut ReplicaStats {
        let i = i as usize;
        if self.replicas.len() <= i {
            self.replicas.resize_with(i + 1, ReplicaStats::default);
        }
        &mut self.replicas[i]
    }

    /// True when steps may be fast-forwarded: nothing recorded per token by request
    /// (`bench_result.json`), no trace, and not turned off
    /// ([`Recorder::set_step_by_step`]). (A closed-loop client is fine: fast-forwarded
    /// steps finish no request, so they send it nothing.)
    pub fn allows_fast_forward(&self) -> bool {
        !self.step_by_step && self.bench.is_none() && self.trace.is_none()
    }

    /// Run every step through the event loop, none fast-forwarded (the results are the
    /// same; this is the check that they are).
    pub fn set_step_by_step(&mut self, on: bool) {
        self.step_by_step = on;
    }

    /// True when [`Recorder::set_step_by_step`] turned fast-forwarding off.
    pub fn is_step_by_step(&self) -> bool {
        self.step_by_step
    }

    /// A step started.
    pub fn on_step(&mut self, st: &StepRecord) -> Result<()> {
        let i = st.replica as usize;
        if self.latest.len() <= i {
            self.latest.resize(i + 1, (0, 0, 0));
        }
        self.latest[i] = (st.blocks.used, st.waiting, st.running);
        let second = st.start_ns / 1_000_000_000;
        if self.timeline.last().is_none_or(|p| (p.t_s as u64) < second) {
            let (mut u, mut w, mut r) = (0u64, 0u64, 0u64);
            for &(a, b, c) in &self.latest {
                u += a as u64;
                w += b as u64;
                r += c as u64;
            }
            self.timeline.push(TimelinePoint {
                t_s: second as f64,
                used_blocks: u,
                waiting: w,
                running: r,
            });
        }
        let r = self.replica(st.replica);
        r.steps += 1;
        r.busy_ns += st.duration_ns;
        r.peak_used_blocks = r.peak_used_blocks.max(st.blocks.used);
        r.max_batch = r.max_batch.max(st.batch_size);
        r.preemptions += st.preemptions as u64;
        self.steps += 1;
        self.busy_ns += st.duration_ns;
        self.used_block_ns += st.blocks.used as u128 * st.duration_ns as u128;
        self.peak_used_blocks = self.peak_used_blocks.max(st.blocks.used);
        self.max_batch = self.max_batch.max(st.batch_size);
        self.max_running = self.max_running.max(st.running);
        self.preemptions += st.preemptions as u64;
        self.prefill_tokens += st.prefill_tokens;
        if let Some(p) = &mut self.progress {
            p.tick(st.start_ns, self.completed);
        }
        if let Some(t) = &mut self.trace {
            t.on_step(st)?;
        }
        if let Some(w) = &mut self.steps_csv {
            write_step_row(w, st).map_err(io_err("steps.csv"))?;
        }
        Ok(())
    }

    /// An output token was produced; `gap_ns` is the time since the request's previous one.
    pub fn on_token(&mut self, id: u64, gap_ns: Option<u64>) {
        self.output_tokens += 1;
        if let Some(b) = &mut self.bench {
            b.on_token(id, gap_ns);
        }
        if let Some(g) = gap_ns {
            self.itl.record(g);
        }
    }

    /// `n` output tokens were produced, each `gap_ns` after its request's previous one,
    /// by requests that `bench_result.json` does not follow (the same as `n` calls of
    /// [`Recorder::on_token`] then).
    pub fn on_tokens(&mut self, gap_ns: u64, n: u64) {
        debug_assert!(self.bench.is_none());
        self.output_tokens += n;
        self.itl.record_n(gap_ns, n);
    }

    /// A request finished on `replica`.
    pub fn on_finish(&mut self, replica: u32, r: &EngineRequest, now_ns: u64) -> Result<()> {
        let q = &r.req;
        let first = r
            .first_token_ns
            .expect("finished requests have a first token");
        let lat = RequestLatency {
            arrival_ns: q.arrival_ns,
            output_tokens: r.generated,
            ttft_ms: (first - q.arrival_ns) as f64 / 1e6,
            tpot_ms: (r.generated > 1)
                .then(|| (now_ns - first) as f64 / 1e6 / (r.generated - 1) as f64),
            e2e_ms: (now_ns - q.arrival_ns) as f64 / 1e6,
        };
        if let Some(b) = &mut self.bench {
            let lens = (q.input_tokens, r.generated);
            let (ttft, e2e) = (first - q.arrival_ns, now_ns - q.arrival_ns);
            b.on_finish(q.id, q.arrival_ns, lens, ttft, e2e);
        }
        let meets = self.slo.ttft_ms.is_none_or(|b| lat.ttft_ms <= b)
            && self
                .slo
                .tpot_ms
                .is_none_or(|b| lat.tpot_ms.is_none_or(|t| t <= b))
            && self.slo.e2e_ms.is_none_or(|b| lat.e2e_ms <= b);
        self.slo_met += meets as u64;
        self.completed += 1;
        if let Some(d) = &mut self.done {
            d.push(q.id);
        }
        self.input_tokens += q.input_tokens as u64;
        self.expected_output_tokens += q.output_tokens as u64;
        self.cached_tokens += r.cached_tokens.max(0) as u64;
        self.cpu_hit_tokens += r.cpu_hit_tokens;
        self.replica(replica).completed += 1;
        let p = self.replica(r.prefill_replica);
        p.prompts += 1;
        p.input_tokens += q.input_tokens as u64;
        p.cached_tokens += r.cached_tokens.max(0) as u64;
        p.cpu_hit_tokens += r.cpu_hit_tokens;
        p.ttft_ms.push(lat.ttft_ms);
        self.recomputed_tokens += r.recomputed_tokens;
        self.last_finish_ns = self.last_finish_ns.max(now_ns);
        self.latencies.push(lat);
        if let Some(t) = &mut self.trace {
            t.on_finish(replica, r, now_ns)?;
        }
        if let Some(w) = &mut self.requests_csv {
            writeln!(
                w,
                "{},{:.6},{},{},completed,,{},{:.6},{:.6},{:.6},{:.3},{},{:.3},{},{},{},{},{}",
                q.id,
                s(q.arrival_ns),
                q.input_tokens,
                q.output_tokens,
                r.cached_tokens.max(0),
                s(r.first_scheduled_ns.unwrap_or(0)),
                s(first),
                s(now_ns),
                lat.ttft_ms,
                lat.tpot_ms.map(|t| format!("{t:.3}")).unwrap_or_default(),
                lat.e2e_ms,
                r.preemptions,
                r.recomputed_tokens,
                r.cpu_hit_tokens,
                r.prefill_replica,
                replica
            )
            .map_err(io_err("requests.csv"))?;
        }
        Ok(())
    }

    /// Flush the CSV files and close the trace.
    pub fn finish_files(&mut self) -> Result<()> {
        if let Some(mut t) = self.trace.take() {
            t.finish()?;
        }
        if let Some(p) = &mut self.progress {
            p.flush(self.completed);
        }
        if let Some(w) = &mut self.requests_csv {
            w.flush().map_err(io_err("requests.csv"))?;
        }
        if let Some(w) = &mut self.steps_csv {
            w.flush().map_err(io_err("steps.csv"))?;
        }
        Ok(())
    }
}

/// One `steps.csv` row: the common columns, then vLLM's block counts or SGLang's own.
fn write_step_row(w: &mut BufWriter<File>, st: &StepRecord) -> std::io::Result<()> {
    let (start, ms) = (s(st.start_ns), st.duration_ns as f64 / 1e6);
    write!(w, "{},{start:.6},{ms:.4},", st.replica)?;
    let Some(g) = &st.sglang else {
        return writeln!(
            w,
            "{},{},{},{},{},{},{},{},{},{}",
            st.batch_size,
            st.prefill_seqs,
            st.prefill_tokens,
            st.decode_tokens,
            st.blocks.used,
            st.blocks.cached,
            st.blocks.free,
            st.waiting,
            st.running,
            st.preemptions
        );
    };
    let mode = if g.extend { "extend" } else { "decode" };
    let chunked = g.chunked.map(|c| c.to_string()).unwrap_or_default();
    writeln!(
        w,
        "{mode},{},{},{},{},{},{},{},{},{chunked},{},{},{},{},{},{},{:.6}",
        st.batch_size,
        st.prefill_seqs,
        st.prefill_tokens,
        st.decode_tokens,
        g.cached_hit_tokens,
        g.retracted,
        g.new,
        g.resumed,
        g.kv_used,
        g.tree_evictable,
        g.tree_protected,
        g.kv_free,
        st.waiting,
        st.running,
        g.new_token_ratio
    )
}

fn s(ns: u64) -> f64 {
    ns as f64 / 1e9
}
