//! kv-cache-tester agentic coding traces (callanjfox/kv-cache-tester, `traces/*.json`, the
//! input of its `trace_replay_tester.py`): one JSON file per conversation,
//! `{"id", "block_size": 64, "hash_id_scope": "local", "requests": [...]}`, each request
//! `{"t" (seconds from the conversation's start), "type" ("s"/"n"), "in", "out",
//! "hash_ids", ...}` with one hash id per full `block_size`-token block of the prompt, and
//! sub-agents as entries `{"type": "subagent", "t", "requests": [...]}` whose own `t` count
//! from the sub-agent's start (the tool flattens them the same way).
//!
//! `path` is one trace file or a directory of them (`*.json`, in name order). Each
//! conversation is a session and each sub-agent a session of its own (the tool replays a
//! sub-agent as a separate user). With `hash_id_scope: "global"` ids mean the same content
//! in every file; otherwise (`local`, the tool's default) they are private to their file.
//! Requests keep their recorded times (the tool's `original` timing); conversations start at
//! the times of `arrival`, or all at 0 without one. A trace file is one JSON document, so it
//! is read whole (at most [`MAX_TRACE_FILE_BYTES`]); the replay holds the conversations under
//! way, each stored as block-id differences from its previous request.

use super::arrivals::Clock;
use super::check::{block_count, block_segments, request_tokens, seconds_ns};
use super::schedule::Schedule;
use super::synth::Arrival;
use super::{mix, RawRequest};
use crate::error::{Error, Result};
use serde::Deserialize;
use std::path::{Path, PathBuf};

/// Largest trace file read, bytes (256 MiB; the published traces are at most 5 MB).
pub const MAX_TRACE_FILE_BYTES: u64 = 256 << 20;
/// Tokens per hash block when a file does not say (the tool's default `block_size`).
pub const DEFAULT_BLOCK_TOKENS: u32 = 64;
/// Namespace of kv-cache-tester block ids.
const NAMESPACE: u64 = 0x006b_7663_7465_7374;
/// Namespace of its session ids.
const SESSIONS: u64 = 0x6b76_6374_7365_7373;

/// A checked kv-cache-tester source.
#[derive(Debug, Clone, PartialEq)]
pub struct KvCacheTesterSpec {
    /// A trace file or a directory of them.
    pub path: PathBuf,
    /// Arrival process of conversation starts (`None`: all start at 0).
    pub arrival: Option<Arrival>,
}

#[derive(Deserialize)]
struct TraceFile {
    #[serde(default)]
    block_size: Option<u32>,
    #[serde(default)]
    hash_id_scope: Option<String>,
    #[serde(default)]
    requests: Vec<Entry>,
}

#[derive(Deserialize)]
struct Entry {
    #[serde(default)]
    t: f64,
    #[serde(rename = "type", default)]
    kind: String,
    #[serde(rename = "in", default)]
    input: Option<u64>,
    #[serde(rename = "out", default)]
    output: Option<u64>,
    #[serde(default)]
    hash_ids: Vec<u64>,
    #[serde(default)]
    requests: Vec<Entry>,
}

/// One request of an agent, its block ids as a difference from the agent's previous request.
struct Call {
    t_ns: u64,
    input: u32,
    output: u32,
    keep: usize,
    fresh: Vec<u64>,
}

/// A conversation's parent or one of its sub-agents, being replayed.
struct Agent {
    session: u64,
    namespace: u64,
    block_tokens: u32,
    start_ns: u64,
    calls: Vec<Call>,
    next: usize,
    ids: Vec<u64>,
}

/// What a conversation file is flattened into.
struct Flatten<'a> {
    at: &'a str,
    namespace: u64,
    block_tokens: u32,
    agents: Vec<Agent>,
}

impl Flatten<'_> {
    /// Add the agent made of `entries` (and, recursively, its sub-agents), starting at
    /// `start_ns` after the conversation's start.
    fn agent(&mut self, entries: &[Entry], start_ns: u64, session: u64, path: &str) -> Result<()> {
        let mut calls: Vec<(u64, &Entry)> = Vec::new();
        let mut subagents = 0u64;
        for (i, e) in entries.iter().enumerate() {
            let at = format!("{}: {path}requests[{i}]", self.at);
            let t = seconds_ns(&at, "t", e.t)?;
            if e.kind == "subagent" {
                subagents += 1;
                let start = start_ns.saturating_add(t);
                let sub = mix(session, subagents);
                self.agent(&e.requests, start, sub, &format!("{path}requests[{i}]."))?;
                continue;
            }
            let (Some(input), Some(output)) = (e.input, e.output) else {
                return Err(Error::input(format!(
                    "{at}: a request needs `in` and `out`"
                )));
            };
            request_tokens(&at, input, output)?;
            block_count(&at, e.hash_ids.len(), input as u32, self.block_tokens)?;
            calls.push((t, e));
        }
        if calls.is_empty() {
            return Ok(());
        }
        calls.sort_by_key(|(t, _)| *t);
        let mut prev: &[u64] = &[];
        let calls = calls
            .into_iter()
            .map(|(t_ns, e)| {
                let keep = prev
                    .iter()
                    .zip(&e.hash_ids)
                    .take_while(|(a, b)| a == b)
                    .count();
                prev = &e.hash_ids;
                Call {
                    t_ns,
                    input: e.input.unwrap_or(0) as u32,
                    output: e.output.unwrap_or(0) as u32,
                    keep,
                    fresh: e.hash_ids[keep..].to_vec(),
                }
            })
            .collect();
        self.agents.push(Agent {
            session,
            namespace: self.namespace,
            block_tokens: self.block_tokens,
            start_ns,
            calls,
            next: 0,
            ids: Vec::new(),
        });
        Ok(())
    }
}

/// The trace files of `path`: the file itself, or a directory's `*.json` in name order.
fn trace_files(path: &Path) -> Result<Vec<PathBuf>> {
    let cannot = |e: std::io::Error| Error::input(format!("cannot read {}: {e}", path.display()));
    if !std::fs::metadata(path).map_err(cannot)?.is_dir() {
        return Ok(vec![path.to_path_buf()]);
    }
    let mut files = Vec::new();
    for entry in std::fs::read_dir(path).map_err(cannot)? {
        let p = entry.map_err(cannot)?.path();
        if p.extension().is_some_and(|e| e == "json") && p.is_file() {
            files.push(p);
        }
    }
    if files.is_empty() {
        return Err(Error::input(format!(
            "{}: no .json trace files in the directory",
            path.display()
        )));
    }
    files.sort();
    Ok(files)
}

/// Read one trace file (the conversation numbered `ordinal`) into its agents.
fn load(path: &Path, ordinal: u64) -> Result<Vec<Agent>> {
    let at = path.display().to_string();
    let cannot = |e: std::io::Error| Error::input(format!("cannot read {at}: {e}"));
    let len = std::fs::metadata(path).map_err(cannot)?.len();
    if len > MAX_TRACE_FILE_BYTES {
        return Err(Error::input(format!(
            "{at}: {len} bytes, more than the {MAX_TRACE_FILE_BYTES} a trace file may have"
        )));
    }
    let bytes = std::fs::read(path).map_err(cannot)?;
    let file: TraceFile = serde_json::from_slice(&bytes)
        .map_err(|e| Error::input(format!("{at}: not a kv-cache-tester trace: {e}")))?;
    drop(bytes);
    let block_tokens = file.block_size.unwrap_or(DEFAULT_BLOCK_TOKENS);
    if block_tokens == 0 {
        return Err(Error::input(format!("{at}: block_size must be at least 1")));
    }
    let namespace = match file.hash_id_scope.as_deref() {
        Some("global") => NAMESPACE,
        _ => mix(NAMESPACE, ordinal),
    };
    let mut f = Flatten {
        at: &at,
        namespace,
        block_tokens,
        agents: Vec::new(),
    };
    f.agent(&file.requests, 0, mix(SESSIONS, ordinal), "")?;
    Ok(f.agents)
}

/// Streams the requests of kv-cache-tester conversations in arrival order.
pub struct KvCacheTesterGenerator {
    files: Vec<PathBuf>,
    next_file: usize,
    clock: Option<Clock>,
    next_start_ns: u64,
    pending: Schedule<Agent>,
}

impl KvCacheTesterGenerator {
    /// List the trace files; conversation start times are drawn from `seed`.
    pub fn open(spec: &KvCacheTesterSpec, seed: u64) -> Result<Self> {
        let mut clock = spec
            .arrival
            .as_ref()
            .map(|a| Clock::new(a, seed))
            .transpose()?;
        Ok(KvCacheTesterGenerator {
            files: trace_files(&spec.path)?,
            next_file: 0,
            next_start_ns: clock.as_mut().map_or(0, Clock::gap_ns),
            clock,
            pending: Schedule::default(),
        })
    }

    /// Load the next conversation that has a request and schedule its agents.
    fn admit(&mut self) -> Result<()> {
        while self.next_file < self.files.len() {
            let ordinal = self.next_file as u64 + 1;
            let agents = load(&self.files[self.next_file], ordinal)?;
            self.next_file += 1;
            if agents.is_empty() {
                continue;
            }
            let start = self.next_start_ns;
            if let Some(c) = self.clock.as_mut() {
                self.next_start_ns = start.saturating_add(c.gap_ns());
            }
            for mut a in agents {
                a.start_ns = a.start_ns.saturating_add(start);
                self.pending
                    .insert(a.start_ns.saturating_add(a.calls[0].t_ns), a);
            }
            return Ok(());
        }
        Ok(())
    }

    /// Emit an agent's next request and schedule the one after.
    fn emit(&mut self, t_ns: u64, mut a: Agent) -> Result<RawRequest> {
        let call = &a.calls[a.next];
        a.ids.truncate(call.keep);
        a.ids.extend_from_slice(&call.fresh);
        let ns = a.namespace;
        let segments =
            block_segments("kv-cache-tester", &a.ids, call.input, a.block_tokens, |h| {
                mix(ns, h)
            })?;
        let req = RawRequest {
            arrival_ns: t_ns,
            input_tokens: call.input,
            output_tokens: call.output,
            session: Some(a.session),
            segments,
        };
        a.next += 1;
        if let Some(c) = a.calls.get(a.next) {
            self.pending.insert(a.start_ns.saturating_add(c.t_ns), a);
        }
        Ok(req)
    }
}

impl Iterator for KvCacheTesterGenerator {
    type Item = Result<RawRequest>;

    fn next(&mut self) -> Option<Result<RawRequest>> {
        while self.next_file < self.files.len()
            && self
                .pending
                .next_due()
                .is_none_or(|t| self.next_start_ns <= t)
        {
            if let Err(e) = self.admit() {
                self.next_file = self.files.len();
                return Some(Err(e));
            }
        }
        let (t, a) = self.pending.pop()?;
        Some(self.emit(t, a))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dir(name: &str, files: &[(&str, &str)]) -> PathBuf {
        let d = std::env::temp_dir().join(format!("kvsim-kct-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        for (n, text) in files {
            std::fs::write(d.join(n), text).unwrap();
        }
        d
    }

    const A: &str = r#"{"id": "a", "block_size": 4, "hash_id_scope": "local", "requests": [
        {"t": 0.0, "type": "n", "in": 9, "out": 2, "hash_ids": [1, 2]},
        {"t": 5.0, "type": "subagent", "requests": [
            {"t": 0.0, "type": "s", "in": 4, "out": 1, "hash_ids": [7]},
            {"t": 1.0, "type": "s", "in": 8, "out": 1, "hash_ids": [7, 8]}]},
        {"t": 10.0, "type": "n", "in": 13, "out": 3, "hash_ids": [1, 2, 3]}]}"#;

    #[test]
    fn flattens_subagents_and_rebuilds_blocks() {
        let d = dir("ok", &[("t1.json", A), ("t2.json", A), ("notes.txt", "x")]);
        let spec = KvCacheTesterSpec {
            path: d.clone(),
            arrival: Some(Arrival::Constant { rate: 0.01 }),
        };
        let r: Vec<RawRequest> = KvCacheTesterGenerator::open(&spec, 1)
            .unwrap()
            .map(|r| r.unwrap())
            .collect();
        let t: Vec<u64> = r.iter().map(|r| r.arrival_ns / 1_000_000_000).collect();
        // Conversations start at 100 s and 200 s; the sub-agent at 5 s into each.
        assert_eq!(t, vec![100, 105, 106, 110, 200, 205, 206, 210]);
        assert_eq!(r[3].segments.len(), 3);
        assert_eq!(r[3].segments[..2], r[0].segments[..]);
        assert_eq!(r[2].segments[0], r[1].segments[0]);
        assert_ne!(r[1].session, r[0].session);
        assert_eq!(r[3].session, r[0].session);
        // Local scope: the second file's ids are its own.
        assert_ne!(r[4].segments[0], r[0].segments[0]);
        std::fs::remove_dir_all(d).unwrap();
    }

    #[test]
    fn errors_name_file_and_request() {
        let bad = A.replace(
            "\"in\": 8, \"out\": 1, \"hash_ids\": [7, 8]",
            "\"in\": 8, \"out\": 1, \"hash_ids\": [7, 8, 9]",
        );
        let d = dir("bad", &[("t1.json", &bad)]);
        let spec = KvCacheTesterSpec {
            path: d.join("t1.json"),
            arrival: None,
        };
        let e = KvCacheTesterGenerator::open(&spec, 1)
            .unwrap()
            .find_map(|r| r.err())
            .unwrap()
            .to_string();
        assert!(
            e.contains("t1.json: requests[1].requests[1]: 3 hash ids, but 8 input tokens"),
            "{e}"
        );
        std::fs::remove_dir_all(d).unwrap();
    }
}
