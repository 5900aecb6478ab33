//! A run as a Chrome / Perfetto trace (`trace.json`): the Trace Event Format's JSON object
//! (`traceEvents`, `displayTimeUnit`), streamed to the file as the run goes, so memory
//! stays bounded whatever the run's length. Open it in <https://ui.perfetto.dev> or
//! `chrome://tracing`.
//!
//! Layout (see `docs/scenario.md`, "Outputs"):
//! - process 0 `requests`: per completed request a nestable async event (`ph` "b"/"e",
//!   `cat` "request", `id` the request id) from send to finish, with three nested phases
//!   `queued` (send to first scheduled), `prefill` (to first token) and `decode` (to
//!   finish); per rejected request an instant event (`ph` "i") at its rejection.
//! - process `r + 1` `replica r`: thread 0 `engine steps` with one complete event (`ph`
//!   "X") per step, and counter tracks (`ph` "C") `kv blocks` (used, cached, free) and
//!   `queue` (waiting, running) sampled at each step's start, the values of `steps.csv`.
//!
//! Times are integer nanoseconds written as microseconds with three decimals (exact).

use crate::engine::replica::RejectReason;
use crate::engine::request::EngineRequest;
use crate::error::{Error, Result};
use crate::sim::recorder::StepRecord;
use crate::workload::Request;
use std::fs::File;
use std::io::{BufWriter, Write};

/// The process of the request tracks.
const REQUESTS_PID: u64 = 0;

/// Streams trace events to a file.
#[derive(Debug)]
pub struct TraceWriter {
    w: BufWriter<File>,
    /// Whether an event has been written (a comma goes before the next).
    any: bool,
    /// Replicas whose process and thread names have been written.
    named: Vec<bool>,
}

fn io_err(e: std::io::Error) -> Error {
    Error::failure(format!("cannot write trace.json: {e}"))
}

/// Write `ns` as microseconds with three decimals, exactly.
fn us(w: &mut impl Write, ns: u64) -> std::io::Result<()> {
    write!(w, "{}.{:03}", ns / 1000, ns % 1000)
}

impl TraceWriter {
    /// Start the trace in `file` (the header and the requests process's name).
    pub fn new(file: File) -> Result<TraceWriter> {
        let mut t = TraceWriter {
            w: BufWriter::with_capacity(1 << 16, file),
            any: false,
            named: Vec::new(),
        };
        t.w.write_all(b"{\"displayTimeUnit\":\"ms\",\"traceEvents\":[\n")
            .map_err(io_err)?;
        t.metadata(REQUESTS_PID, "process_name", "requests")
            .map_err(io_err)?;
        t.metadata(REQUESTS_PID, "thread_name", "requests")
            .map_err(io_err)?;
        Ok(t)
    }

    /// A comma between events.
    fn sep(&mut self) -> std::io::Result<()> {
        if self.any {
            self.w.write_all(b",\n")?;
        }
        self.any = true;
        Ok(())
    }

    fn metadata(&mut self, pid: u64, what: &str, name: &str) -> std::io::Result<()> {
        self.sep()?;
        write!(
            self.w,
            "{{\"ph\":\"M\",\"name\":\"{what}\",\"pid\":{pid},\"tid\":0,\"ts\":0,\"args\":{{\"name\":\"{name}\"}}}}"
        )
    }

    /// Name replica `r`'s process and step thread the first time it steps.
    fn name_replica(&mut self, r: u32) -> std::io::Result<()> {
        let i = r as usize;
        if self.named.len() <= i {
            self.named.resize(i + 1, false);
        }
        if self.named[i] {
            return Ok(());
        }
        self.named[i] = true;
        let pid = r as u64 + 1;
        self.metadata(pid, "process_name", &format!("replica {r}"))?;
        self.sep()?;
        write!(
            self.w,
            "{{\"ph\":\"M\",\"name\":\"process_sort_index\",\"pid\":{pid},\"tid\":0,\"ts\":0,\"args\":{{\"sort_index\":{pid}}}}}"
        )?;
        self.metadata(pid, "thread_name", "engine steps")
    }

    /// One engine step: its complete event and the counters at its start.
    pub fn on_step(&mut self, st: &StepRecord) -> Result<()> {
        self.step_events(st).map_err(io_err)
    }

    fn step_events(&mut self, st: &StepRecord) -> std::io::Result<()> {
        self.name_replica(st.replica)?;
        let pid = st.replica as u64 + 1;
        self.sep()?;
        self.w
            .write_all(b"{\"ph\":\"X\",\"name\":\"step\",\"cat\":\"step\",\"pid\":")?;
        write!(self.w, "{pid},\"tid\":0,\"ts\":")?;
        us(&mut self.w, st.start_ns)?;
        self.w.write_all(b",\"dur\":")?;
        us(&mut self.w, st.duration_ns)?;
        write!(
            self.w,
            ",\"args\":{{\"batch_size\":{},\"prefill_seqs\":{},\"prefill_tokens\":{},\"decode_tokens\":{},\"preemptions\":{}}}}}",
            st.batch_size, st.prefill_seqs, st.prefill_tokens, st.decode_tokens, st.preemptions
        )?;
        self.sep()?;
        write!(
            self.w,
            "{{\"ph\":\"C\",\"name\":\"kv blocks\",\"pid\":{pid},\"tid\":0,\"ts\":"
        )?;
        us(&mut self.w, st.start_ns)?;
        write!(
            self.w,
            ",\"args\":{{\"used\":{},\"cached\":{},\"free\":{}}}}}",
            st.blocks.used, st.blocks.cached, st.blocks.free
        )?;
        self.sep()?;
        write!(
            self.w,
            "{{\"ph\":\"C\",\"name\":\"queue\",\"pid\":{pid},\"tid\":0,\"ts\":"
        )?;
        us(&mut self.w, st.start_ns)?;
        write!(
            self.w,
            ",\"args\":{{\"waiting\":{},\"running\":{}}}}}",
            st.waiting, st.running
        )
    }

    /// One begin ("b") or end ("e") of request `id`'s async track.
    fn async_edge(&mut self, ph: char, name: &str, id: u64, ns: u64) -> std::io::Result<()> {
        self.sep()?;
        write!(
            self.w,
            "{{\"ph\":\"{ph}\",\"name\":\"{name}\",\"cat\":\"request\",\"id\":{id},\"pid\":{REQUESTS_PID},\"tid\":0,\"ts\":"
        )?;
        us(&mut self.w, ns)?;
        self.w.write_all(b"}")
    }

    /// A request finished on `replica` at `now_ns`: its track from send to finish with
    /// the queued, prefill and decode phases nested.
    pub fn on_finish(&mut self, replica: u32, r: &EngineRequest, now_ns: u64) -> Result<()> {
        self.request_events(replica, r, now_ns).map_err(io_err)
    }

    fn request_events(&mut self, replica: u32, r: &EngineRequest, end: u64) -> std::io::Result<()> {
        let q = &r.req;
        let sent = q.arrival_ns;
        // Finished requests have a first token; the clamps keep the phases nested anyway.
        let first_token = r.first_token_ns.unwrap_or(end).clamp(sent, end);
        let scheduled = r
            .first_scheduled_ns
            .unwrap_or(sent)
            .clamp(sent, first_token);
        self.sep()?;
        write!(
            self.w,
            "{{\"ph\":\"b\",\"name\":\"request\",\"cat\":\"request\",\"id\":{},\"pid\":{REQUESTS_PID},\"tid\":0,\"ts\":",
            q.id
        )?;
        us(&mut self.w, sent)?;
        write!(
            self.w,
            ",\"args\":{{\"id\":{},\"input_tokens\":{},\"output_tokens\":{},\"cached_tokens\":{},\"preemptions\":{},\"prefill_replica\":{},\"replica\":{}}}}}",
            q.id,
            q.input_tokens,
            r.generated,
            r.cached_tokens.max(0),
            r.preemptions,
            r.prefill_replica,
            replica
        )?;
        for (name, from, to) in [
            ("queued", sent, scheduled),
            ("prefill", scheduled, first_token),
            ("decode", first_token, end),
        ] {
            self.async_edge('b', name, q.id, from)?;
            self.async_edge('e', name, q.id, to)?;
        }
        self.async_edge('e', "request", q.id, end)
    }

    /// A request was rejected at `now_ns`: an instant event on the requests track.
    pub fn on_reject(&mut self, req: &Request, reason: RejectReason, now_ns: u64) -> Result<()> {
        (|| {
            self.sep()?;
            write!(
                self.w,
                "{{\"ph\":\"i\",\"s\":\"p\",\"name\":\"rejected\",\"cat\":\"request\",\"pid\":{REQUESTS_PID},\"tid\":0,\"ts\":"
            )?;
            us(&mut self.w, now_ns)?;
            write!(
                self.w,
                ",\"args\":{{\"id\":{},\"input_tokens\":{},\"output_tokens\":{},\"reason\":\"{}\"}}}}",
                req.id,
                req.input_tokens,
                req.output_tokens,
                reason.as_str()
            )
        })()
        .map_err(io_err)
    }

    /// Close the event array and the object, and flush.
    pub fn finish(&mut self) -> Result<()> {
        self.w.write_all(b"\n]}\n").map_err(io_err)?;
        self.w.flush().map_err(io_err)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn microseconds_are_exact() {
        let mut v = Vec::new();
        for ns in [0u64, 1, 999, 1000, 1_234_567, u64::MAX] {
            us(&mut v, ns).unwrap();
            v.push(b' ');
        }
        assert_eq!(
            String::from_utf8(v).unwrap(),
            format!(
                "0.000 0.001 0.999 1.000 1234.567 {}.{:03} ",
                u64::MAX / 1000,
                u64::MAX % 1000
            )
        );
    }
}
