//! ShareGPT conversations replayed as multi-turn sessions. The file is the JSON array of
//! `ShareGPT_V3_unfiltered_cleaned_split.json` (huggingface.co/datasets/anon8231489123/
//! ShareGPT_Vicuna_unfiltered, the file vLLM's `vllm bench serve --dataset-name sharegpt` and
//! Vidur's ShareGPT traces start from), `[{"id", "conversations": [{"from", "value"}]}]`,
//! or JSON lines of such objects; `"messages": [{"role", "content"}]` is accepted too.
//!
//! Every message's text is tokenized with a bundled vocabulary ([`super::tokenizer`]). A
//! message costs its tokens plus `message_overhead_tokens` (the chat template's role header
//! and end marker). Each assistant message that has an earlier message is one request: its
//! prompt is every earlier message (system, user and assistant) plus the overhead of the
//! reply's own header, its output is the reply's tokens. So turn k+1's prompt starts with
//! turn k's prompt and answer (turn k's segments go on past its prompt with its answer).
//! A trailing user message has no reply in the data and makes no request; an empty reply
//! makes none either (an engine generates at least one token), though it stays in the
//! history. Conversations start at the times of an arrival process; a session's next turn
//! comes an exponential think time after the previous turn's arrival (the synthetic
//! source's `sessions.think_time_s`).

use super::arrivals::Clock;
use super::check::request_tokens;
use super::json_stream::{JsonElements, Place};
use super::schedule::Schedule;
use super::synth::Arrival;
use super::tokenizer::{Tokenizer, TokenizerSource};
use super::{hash_str, mix, RawRequest, Segment};
use crate::error::{Error, Result};
use serde::Deserialize;
use std::path::PathBuf;

/// Namespace of ShareGPT content ids.
const NAMESPACE: u64 = 0x7368_6172_6567_7074;
/// Namespace of ShareGPT session ids.
const SESSIONS: u64 = 0x7368_6172_6573_6573;
/// Default tokens of chat-template overhead per message: 3, what OpenAI's cookbook counts
/// for `gpt-3.5-turbo` and `gpt-4` with `cl100k_base` ("How to count tokens with tiktoken":
/// `tokens_per_message = 3`, and every reply is primed with 3 tokens).
pub const DEFAULT_MESSAGE_OVERHEAD_TOKENS: u32 = 3;

/// A checked ShareGPT source.
#[derive(Debug, Clone, PartialEq)]
pub struct SharegptSpec {
    /// The JSON array or JSON lines file.
    pub path: PathBuf,
    /// Arrival process of conversation starts.
    pub arrival: Arrival,
    /// Mean think time between a turn's arrival and the next turn's, seconds.
    pub think_time_s: f64,
    /// Vocabulary that counts tokens.
    pub tokenizer: TokenizerSource,
    /// Chat-template tokens added per message.
    pub message_overhead_tokens: u32,
}

#[derive(Deserialize)]
struct RawConversation {
    #[serde(default)]
    conversations: Option<Vec<RawMessage>>,
    #[serde(default)]
    messages: Option<Vec<RawMessage>>,
}

#[derive(Deserialize)]
struct RawMessage {
    #[serde(default, alias = "role")]
    from: Option<String>,
    #[serde(default, alias = "content")]
    value: Option<serde_json::Value>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Role {
    System,
    User,
    Assistant,
}

fn role(from: &str) -> Option<Role> {
    match from.trim().to_ascii_lowercase().as_str() {
        "system" => Some(Role::System),
        "human" | "user" => Some(Role::User),
        "gpt" | "assistant" | "chatgpt" | "bing" | "bard" | "model" => Some(Role::Assistant),
        _ => None,
    }
}

/// A message's text: a string, null (no text), or a list of `{"type": "text", "text"}` parts.
fn text(v: &Option<serde_json::Value>) -> Option<String> {
    match v {
        None | Some(serde_json::Value::Null) => Some(String::new()),
        Some(serde_json::Value::String(s)) => Some(s.clone()),
        Some(serde_json::Value::Array(parts)) => parts
            .iter()
            .map(|p| p.get("text").and_then(|t| t.as_str()))
            .collect::<Option<Vec<&str>>>()
            .map(|t| t.concat()),
        Some(_) => None,
    }
}

/// One request of a conversation: its prompt is the first `prefix` segments.
#[derive(Debug, Clone, PartialEq)]
struct Turn {
    prefix: usize,
    input: u32,
    output: u32,
    /// The answer's segment id when a later prompt repeats it.
    output_id: Option<u64>,
}

impl Turn {
    /// The request's segments: its prompt's, then its answer's when a later prompt
    /// repeats it ([`super::Request::segments`]).
    fn segments(&self, conversation: &[Segment]) -> Vec<Segment> {
        let mut v = conversation[..self.prefix].to_vec();
        if let Some(id) = self.output_id {
            v.push(Segment {
                id,
                tokens: self.output,
            });
        }
        v
    }
}

/// A conversation's requests; every prompt is a prefix of one chain of segments.
#[derive(Debug, Clone, PartialEq)]
struct Conversation {
    segments: Vec<Segment>,
    turns: Vec<Turn>,
}

/// Builds the requests of conversations.
struct Builder {
    tokenizer: Tokenizer,
    overhead: u32,
}

impl Builder {
    fn content_id(r: Role, text: &str) -> u64 {
        mix(mix(NAMESPACE, r as u64 + 1), hash_str(text))
    }

    fn push(segments: &mut Vec<Segment>, id: u64, tokens: u64) {
        if tokens > 0 {
            segments.push(Segment {
                id,
                tokens: tokens as u32,
            });
        }
    }

    /// The requests of one conversation; `at` names it for messages.
    fn build(&self, at: &str, c: RawConversation) -> Result<Conversation> {
        let messages = c.conversations.or(c.messages).ok_or_else(|| {
            Error::input(format!("{at}: no `conversations` (or `messages`) list"))
        })?;
        let h = self.overhead as u64;
        let (mut segments, mut turns) = (Vec::new(), Vec::new());
        let mut tokens = 0u64; // tokens of the history so far
        for (i, m) in messages.iter().enumerate() {
            let from = m.from.as_deref().unwrap_or("");
            let r = role(from).ok_or_else(|| {
                Error::input(format!(
                    "{at}: message {i}: role `{from}` is not one of human/user, gpt/assistant \
                     (or chatgpt, bing, bard, model), system"
                ))
            })?;
            let t = text(&m.value)
                .ok_or_else(|| Error::input(format!("{at}: message {i}: value is not text")))?;
            let n = self
                .tokenizer
                .count(&t)
                .map_err(|e| Error::input(format!("{at}: message {i}: {e}")))?
                as u64;
            let id = Self::content_id(r, &t);
            if r == Role::Assistant && i > 0 {
                // The reply's header ends the prompt; the reply is the output.
                Self::push(&mut segments, mix(NAMESPACE, 0x0072_6570_6c79), h);
                let input = tokens + h;
                request_tokens(&format!("{at}: message {i}"), input, n)?;
                if n > 0 {
                    turns.push(Turn {
                        prefix: segments.len(),
                        input: input as u32,
                        output: n as u32,
                        output_id: Some(id),
                    });
                }
                Self::push(&mut segments, id, n);
            } else {
                Self::push(&mut segments, id, h + n);
            }
            tokens += h + n;
            request_tokens(&format!("{at}: message {i}"), tokens, 0)?;
        }
        // The last answer is not repeated in any prompt.
        if let Some(t) = turns.last_mut() {
            t.output_id = None;
        }
        segments.truncate(turns.last().map_or(0, |t| t.prefix));
        Ok(Conversation { segments, turns })
    }
}

/// A conversation being replayed.
struct Active {
    conv: Conversation,
    session: u64,
    next: usize,
}

/// Streams the turns of ShareGPT conversations in arrival order. Memory holds the
/// conversations under way (started, with turns to come), not the file.
pub struct SharegptGenerator {
    elements: JsonElements,
    builder: Builder,
    clock: Clock,
    think_s: f64,
    next_start_ns: u64,
    exhausted: bool,
    conversations: u64,
    pending: Schedule<Active>,
}

impl SharegptGenerator {
    /// Open the file and load the vocabulary; times are drawn from `seed`.
    pub fn open(spec: &SharegptSpec, seed: u64) -> Result<Self> {
        let mut clock = Clock::new(&spec.arrival, seed)?;
        Ok(SharegptGenerator {
            elements: JsonElements::open(&spec.path)?,
            builder: Builder {
                tokenizer: Tokenizer::open(&spec.tokenizer)?,
                overhead: spec.message_overhead_tokens,
            },
            next_start_ns: clock.gap_ns(),
            clock,
            think_s: spec.think_time_s,
            exhausted: false,
            conversations: 0,
            pending: Schedule::default(),
        })
    }

    fn at(&self, p: Place) -> String {
        format!(
            "{}:{}: conversation {}",
            self.elements.path().display(),
            p.line,
            p.index
        )
    }

    /// Read the next conversation that has a request and start it at the next start time.
    fn admit(&mut self) -> Result<()> {
        loop {
            let Some(next) = self.elements.next_element::<RawConversation>() else {
                self.exhausted = true;
                return Ok(());
            };
            let (place, raw) = next?;
            let conv = self.builder.build(&self.at(place), raw)?;
            self.conversations += 1;
            if conv.turns.is_empty() {
                continue;
            }
            let active = Active {
                conv,
                session: mix(SESSIONS, self.conversations),
                next: 0,
            };
            let t = self.next_start_ns;
            self.next_start_ns = t.saturating_add(self.clock.gap_ns());
            self.pending.insert(t, active);
            return Ok(());
        }
    }

    /// Emit the next turn of a conversation due at `t_ns` and schedule the one after.
    fn emit(&mut self, t_ns: u64, mut a: Active) -> RawRequest {
        let turn = &a.conv.turns[a.next];
        let req = RawRequest {
            arrival_ns: t_ns,
            input_tokens: turn.input,
            output_tokens: turn.output,
            session: Some(a.session),
            segments: turn.segments(&a.conv.segments),
        };
        a.next += 1;
        if a.next < a.conv.turns.len() {
            let next = t_ns.saturating_add(self.clock.think_ns(self.think_s));
            self.pending.insert(next, a);
        }
        req
    }
}

impl Iterator for SharegptGenerator {
    type Item = Result<RawRequest>;

    fn next(&mut self) -> Option<Result<RawRequest>> {
        while !self.exhausted
            && self
                .pending
                .next_due()
                .is_none_or(|t| self.next_start_ns <= t)
        {
            if let Err(e) = self.admit() {
                self.exhausted = true;
                return Some(Err(e));
            }
        }
        let (t, a) = self.pending.pop()?;
        Some(Ok(self.emit(t, a)))
    }
}

#[cfg(test)]
mod tests {
    use super::super::tokenizer::TokenizerKind;
    use super::*;

    fn builder(overhead: u32) -> Builder {
        Builder {
            tokenizer: Tokenizer::new(TokenizerKind::Cl100kBase).unwrap(),
            overhead,
        }
    }

    fn conv(json: &str) -> RawConversation {
        serde_json::from_str(json).unwrap()
    }

    #[test]
    fn turns_share_the_previous_prompt_and_answer() {
        // "hello world" and "good morning" are 2 tokens each in cl100k_base, "hi there" 2.
        let c = builder(3)
            .build(
                "x",
                conv(
                    r#"{"conversations": [{"from": "human", "value": "hello world"},
                    {"from": "gpt", "value": "hi there"},
                    {"from": "human", "value": "good morning"},
                    {"from": "gpt", "value": "hello world"},
                    {"from": "human", "value": "no reply"}]}"#,
                ),
            )
            .unwrap();
        assert_eq!(c.turns.len(), 2);
        assert_eq!((c.turns[0].input, c.turns[0].output), (5 + 3, 2));
        // Turn 2: user 5, header 3, answer 2, user 5, header 3.
        assert_eq!((c.turns[1].input, c.turns[1].output), (18, 2));
        let p0 = &c.segments[..c.turns[0].prefix];
        let p1 = &c.segments[..c.turns[1].prefix];
        assert_eq!(p1[..p0.len()], *p0);
        assert_eq!(p1[p0.len()].id, c.turns[0].output_id.unwrap());
        assert_eq!(p1[p0.len()].tokens, c.turns[0].output);
        assert_eq!(c.turns[1].output_id, None);
        let sum: u32 = p1.iter().map(|s| s.tokens).sum();
        assert_eq!(sum, c.turns[1].input);
    }

    #[test]
    fn sessions_interleave_in_time_order_with_turns_in_order() {
        let p = std::env::temp_dir().join(format!("kvsim-sg-{}.jsonl", std::process::id()));
        let conv =
            r#"{"conversations": [{"from": "human", "value": "a"}, {"from": "gpt", "value": "b"},
            {"from": "human", "value": "c"}, {"from": "gpt", "value": "d"},
            {"from": "human", "value": "e"}, {"from": "gpt", "value": "f"}]}"#
                .replace('\n', " ");
        std::fs::write(
            &p,
            format!("{conv}\n{{\"conversations\": []}}\n{conv}\n{conv}\n"),
        )
        .unwrap();
        let spec = SharegptSpec {
            path: p.clone(),
            arrival: Arrival::Constant { rate: 1.0 },
            think_time_s: 2.0,
            tokenizer: TokenizerSource::Bundled(TokenizerKind::Cl100kBase),
            message_overhead_tokens: 3,
        };
        let r: Vec<RawRequest> = SharegptGenerator::open(&spec, 7)
            .unwrap()
            .map(|r| r.unwrap())
            .collect();
        assert_eq!(r.len(), 9);
        assert!(r.windows(2).all(|w| w[0].arrival_ns <= w[1].arrival_ns));
        // Starts at 1, 2 and 3 s (the empty conversation takes no start).
        let mut firsts: Vec<u64> = Vec::new();
        let mut by_session: std::collections::HashMap<u64, Vec<&RawRequest>> = Default::default();
        for q in &r {
            let turns = by_session.entry(q.session.unwrap()).or_default();
            if turns.is_empty() {
                firsts.push(q.arrival_ns);
            }
            turns.push(q);
        }
        assert_eq!(firsts, vec![1_000_000_000, 2_000_000_000, 3_000_000_000]);
        for turns in by_session.values() {
            let inputs: Vec<u32> = turns.iter().map(|q| q.input_tokens).collect();
            assert!(inputs.windows(2).all(|w| w[0] < w[1]), "{inputs:?}");
            // Each turn's segments (prompt and answer) start the next turn's prompt; the
            // last answer is repeated nowhere, so it is not identified.
            assert!(turns[1].segments.starts_with(&turns[0].segments));
            assert!(turns[2].segments.starts_with(&turns[1].segments));
            let covered: u32 = turns[2].segments.iter().map(|s| s.tokens).sum();
            assert_eq!(covered, turns[2].input_tokens);
        }
        std::fs::remove_file(p).unwrap();
    }

    #[test]
    fn messages_form_roles_and_errors() {
        let b = builder(0);
        let c = b
            .build(
                "x",
                conv(
                    r#"{"messages": [{"role": "system", "content": "hello world"},
                    {"role": "user", "content": [{"type": "text", "text": "good morning"}]},
                    {"role": "assistant", "content": "hi there"}]}"#,
                ),
            )
            .unwrap();
        assert_eq!((c.turns[0].input, c.turns[0].output), (4, 2));
        // A leading assistant message is history, not a request.
        let c = b
            .build(
                "x",
                conv(r#"{"conversations": [{"from": "gpt", "value": "hi"}]}"#),
            )
            .unwrap();
        assert!(c.turns.is_empty());
        let e = b
            .build(
                "f.json:3: conversation 2",
                conv(r#"{"conversations": [{"from": "robot", "value": "hi"}]}"#),
            )
            .err()
            .unwrap()
            .to_string();
        assert!(
            e.starts_with("f.json:3: conversation 2: message 0: role `robot`"),
            "{e}"
        );
        let e = b
            .build("x", conv(r#"{"id": 1}"#))
            .err()
            .unwrap()
            .to_string();
        assert!(e.contains("no `conversations`"), "{e}");
    }
}
