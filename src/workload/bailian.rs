//! Alibaba Bailian (Qwen) usage traces (alibaba-edu/qwen-bailian-usagetraces-anon,
//! `qwen_traceA_blksz_16.jsonl` and the like): JSON lines `{"chat_id", "parent_chat_id"
//! (-1 for a root), "timestamp" (float seconds from the start of the trace), "input_length",
//! "output_length", "type" (text/search/image/file), "turn", "hash_ids"}`, one salted hash
//! per 16-token block of the prompt (the last block may be partial: it holds padding).
//!
//! A chat whose parent is -1 starts a session; a child belongs to its parent's session, so a
//! session's id is its root chat's. The reader remembers the root of the last
//! `max_tracked_chats` chats (oldest forgotten first); a child whose parent it does not know
//! (never in the file, or forgotten) takes its parent's id as the session, so that siblings
//! still group, and how many did is written to stderr when the reader stops.

use super::check::{block_segments, request_tokens, seconds_ns};
use super::lines::Lines;
use super::{at_row, hash_str, mix, RawRequest};
use crate::error::{Error, Result};
use serde::Deserialize;
use std::collections::{HashMap, VecDeque};
use std::path::{Path, PathBuf};

/// Namespace of Bailian block ids.
const NAMESPACE: u64 = 0x0062_6169_6c69_616e;
/// Namespace of Bailian session ids.
const SESSIONS: u64 = 0x6261_696c_7365_7373;

/// Default tokens per hash block (the `blksz_16` of the file names).
pub const DEFAULT_BLOCK_TOKENS: u32 = 16;
/// Default number of chats whose session the reader remembers (2^20: about 50 MB).
pub const DEFAULT_MAX_TRACKED_CHATS: u64 = 1 << 20;

/// A chat id: an integer in the release, a string accepted.
#[derive(Deserialize)]
#[serde(untagged)]
enum ChatId {
    Int(i64),
    Str(String),
}

impl ChatId {
    /// The id as a map key; `None` for a root's parent (-1, "-1" or empty).
    fn key(&self) -> Option<u64> {
        match self {
            ChatId::Int(-1) => None,
            ChatId::Int(i) => Some(*i as u64),
            ChatId::Str(s) if s.trim() == "-1" || s.trim().is_empty() => None,
            ChatId::Str(s) => Some(hash_str(s.trim())),
        }
    }
}

#[derive(Deserialize)]
struct Row {
    chat_id: ChatId,
    #[serde(default)]
    parent_chat_id: Option<ChatId>,
    timestamp: f64,
    input_length: u32,
    output_length: u32,
    #[serde(default)]
    hash_ids: Vec<u64>,
}

/// Streaming reader of a Bailian trace.
pub struct BailianReader {
    path: PathBuf,
    lines: Lines,
    block_tokens: u32,
    sessions: Sessions,
    reported: bool,
}

/// The root chat of the most recent chats, oldest forgotten first.
struct Sessions {
    roots: HashMap<u64, u64>,
    order: VecDeque<u64>,
    max_chats: u64,
    orphans: u64,
}

impl BailianReader {
    /// Open a trace with `block_tokens`-token hash blocks, remembering the sessions of at
    /// most `max_chats` chats (at least 1).
    pub fn open(path: &Path, block_tokens: u32, max_chats: u64) -> Result<Self> {
        Ok(BailianReader {
            path: path.to_path_buf(),
            lines: Lines::open(path)?,
            block_tokens,
            sessions: Sessions {
                roots: HashMap::new(),
                order: VecDeque::new(),
                max_chats: max_chats.max(1),
                orphans: 0,
            },
            reported: false,
        })
    }

    fn report(&mut self) {
        let s = &self.sessions;
        if !self.reported && s.orphans > 0 {
            let note = format!(
                "{} chats whose parent chat was not among the last {} read take their \
                 parent's id as the session",
                s.orphans, s.max_chats
            );
            super::check::note_once(&self.path, &note);
        }
        self.reported = true;
    }
}

impl Sessions {
    /// The session (root chat) of a chat with this parent, remembering the chat's root.
    fn session(&mut self, chat: u64, parent: Option<u64>) -> u64 {
        let root = match parent {
            None => chat,
            Some(p) => match self.roots.get(&p) {
                Some(&r) => r,
                None => {
                    self.orphans += 1;
                    p
                }
            },
        };
        if self.roots.insert(chat, root).is_none() {
            self.order.push_back(chat);
            while self.order.len() as u64 > self.max_chats {
                if let Some(old) = self.order.pop_front() {
                    self.roots.remove(&old);
                }
            }
        }
        root
    }
}

/// One row of `path`.
fn parse(
    path: &Path,
    block_tokens: u32,
    sessions: &mut Sessions,
    row: u64,
    line: &str,
) -> Result<RawRequest> {
    let at = at_row(path, row);
    let r: Row = serde_json::from_str(line)
        .map_err(|e| Error::input(format!("{at}: malformed Bailian row: {e}")))?;
    let arrival_ns = seconds_ns(&at, "timestamp", r.timestamp)?;
    request_tokens(&at, r.input_length as u64, r.output_length as u64)?;
    let segments = block_segments(&at, &r.hash_ids, r.input_length, block_tokens, |id| {
        mix(NAMESPACE, id)
    })?;
    let chat = r
        .chat_id
        .key()
        .ok_or_else(|| Error::input(format!("{at}: chat_id must not be -1 or empty")))?;
    let parent = r.parent_chat_id.as_ref().and_then(ChatId::key);
    let session = sessions.session(chat, parent);
    Ok(RawRequest {
        arrival_ns,
        input_tokens: r.input_length,
        output_tokens: r.output_length,
        session: Some(mix(SESSIONS, session)),
        segments,
    })
}

impl Iterator for BailianReader {
    type Item = Result<RawRequest>;

    fn next(&mut self) -> Option<Self::Item> {
        let Some(next) = self.lines.next_line() else {
            self.report();
            return None;
        };
        let (path, bt, sessions) = (&self.path, self.block_tokens, &mut self.sessions);
        Some(next.and_then(|(row, line)| parse(path, bt, sessions, row, line)))
    }
}

impl Drop for BailianReader {
    fn drop(&mut self) {
        self.report();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(name: &str, text: &str) -> PathBuf {
        let p = std::env::temp_dir().join(format!("kvsim-bl-{}-{name}.jsonl", std::process::id()));
        std::fs::write(&p, text).unwrap();
        p
    }

    fn row(chat: i64, parent: i64, t: f64, input: u32, ids: &[u64]) -> String {
        format!(
            "{{\"chat_id\": {chat}, \"parent_chat_id\": {parent}, \"timestamp\": {t}, \
             \"input_length\": {input}, \"output_length\": 7, \"type\": \"text\", \"turn\": 1, \
             \"hash_ids\": {ids:?}}}\n"
        )
    }

    #[test]
    fn seconds_blocks_and_sessions_by_root() {
        let text = row(10, -1, 0.5, 40, &[1, 2, 3])
            + &row(11, 10, 61.114, 70, &[1, 2, 3, 4, 5])
            + &row(12, 11, 62.0, 20, &[9, 9])
            + &row(20, -1, 63.0, 16, &[7]);
        let p = write("ok", &text);
        let r: Vec<RawRequest> = BailianReader::open(&p, 16, 100)
            .unwrap()
            .map(|r| r.unwrap())
            .collect();
        assert_eq!(r[1].arrival_ns, 61_114_000_000);
        assert_eq!(r[0].segments.iter().map(|s| s.tokens).sum::<u32>(), 40);
        assert_eq!(r[0].segments[2].tokens, 8);
        assert_eq!(r[0].session, r[1].session);
        assert_eq!(r[0].session, r[2].session);
        assert_ne!(r[0].session, r[3].session);
        std::fs::remove_file(p).unwrap();
    }

    #[test]
    fn forgotten_parents_group_by_parent_and_extra_ids_are_refused() {
        // Remembering one chat: chat 11's parent 10 is forgotten once 20 is read.
        let text = row(10, -1, 0.0, 16, &[1])
            + &row(20, -1, 1.0, 16, &[2])
            + &row(11, 10, 2.0, 16, &[1])
            + &row(12, 10, 3.0, 16, &[1]);
        let p = write("orphans", &text);
        let mut rd = BailianReader::open(&p, 16, 1).unwrap();
        let r: Vec<RawRequest> = rd.by_ref().map(|r| r.unwrap()).collect();
        assert_eq!(rd.sessions.orphans, 2);
        assert_eq!(r[2].session, r[3].session);
        assert_eq!(r[2].session, Some(mix(SESSIONS, 10)));
        let p2 = write("bad", &row(1, -1, 0.0, 17, &[1, 2, 3]));
        let e = BailianReader::open(&p2, 16, 10)
            .unwrap()
            .next()
            .unwrap()
            .unwrap_err()
            .to_string();
        assert!(
            e.contains(":1: 3 hash ids, but 17 input tokens hold at most 2"),
            "{e}"
        );
        for p in [p, p2] {
            std::fs::remove_file(p).unwrap();
        }
    }
}
