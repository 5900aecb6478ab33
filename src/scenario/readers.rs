//! Resolution of the `workload.source` kinds read by `sharegpt`, `burstgpt`, `bailian` and
//! `kv_cache_tester` (each allows a few of the section's fields; any other set field is an
//! error naming it).

use super::source::{err, required, resolve_arrival, FieldError, SourceKind, SourceSpec};
use crate::workload::bailian::{DEFAULT_BLOCK_TOKENS, DEFAULT_MAX_TRACKED_CHATS};
use crate::workload::kv_cache_tester::KvCacheTesterSpec;
use crate::workload::sharegpt::{SharegptSpec, DEFAULT_MESSAGE_OVERHEAD_TOKENS};
use crate::workload::tokenizer::{TokenizerKind, TokenizerSource};
use crate::workload::Source;

/// Fields only these kinds read.
const READER_FIELDS: [&str; 5] = [
    "think_time_s",
    "tokenizer",
    "tokenizer_file",
    "message_overhead_tokens",
    "max_tracked_chats",
];

impl SourceSpec {
    /// Resolve the kinds this module owns; for any other kind, check that none of their
    /// fields is set and return `None`.
    pub(super) fn resolve_reader(&self) -> Result<Option<Source>, FieldError> {
        let kind = self.kind.name();
        let path = || required("path", &self.path, kind);
        Ok(Some(match self.kind {
            SourceKind::Sharegpt => self.resolve_sharegpt()?,
            SourceKind::Burstgpt => {
                self.only(&["path"])?;
                Source::Burstgpt { path: path()? }
            }
            SourceKind::Bailian => {
                self.only(&["path", "block_tokens", "max_tracked_chats"])?;
                let block_tokens = self.block_tokens.unwrap_or(DEFAULT_BLOCK_TOKENS);
                if block_tokens == 0 {
                    return err("block_tokens", "must be at least 1");
                }
                let max_tracked_chats = self.max_tracked_chats.unwrap_or(DEFAULT_MAX_TRACKED_CHATS);
                if max_tracked_chats == 0 {
                    return err("max_tracked_chats", "must be at least 1");
                }
                Source::Bailian {
                    path: path()?,
                    block_tokens,
                    max_tracked_chats,
                }
            }
            SourceKind::KvCacheTester => {
                self.only(&["path", "arrival"])?;
                let arrival = self.arrival.as_ref().map(resolve_arrival).transpose()?;
                Source::KvCacheTester(KvCacheTesterSpec {
                    path: path()?,
                    arrival,
                })
            }
            _ => {
                self.refuse(&READER_FIELDS)?;
                return Ok(None);
            }
        }))
    }

    /// Check a `sharegpt` source.
    fn resolve_sharegpt(&self) -> Result<Source, FieldError> {
        let kind = "sharegpt";
        self.only(&[
            "path",
            "arrival",
            "think_time_s",
            "tokenizer",
            "tokenizer_file",
            "message_overhead_tokens",
        ])?;
        let tokenizer = match (self.tokenizer, &self.tokenizer_file) {
            (Some(_), Some(_)) => {
                return err(
                    "tokenizer_file",
                    "set either tokenizer (a bundled vocabulary) or tokenizer_file, not both",
                )
            }
            (_, Some(f)) => TokenizerSource::File(f.clone()),
            (k, None) => TokenizerSource::Bundled(k.unwrap_or(TokenizerKind::Cl100kBase)),
        };
        let path = required("path", &self.path, kind)?;
        let arrival = resolve_arrival(&required("arrival", &self.arrival, kind)?)?;
        let think_time_s = required("think_time_s", &self.think_time_s, kind)?;
        if !(think_time_s.is_finite() && think_time_s >= 0.0) {
            return err(
                "think_time_s",
                format!("must be zero or positive (got {think_time_s})"),
            );
        }
        let message_overhead_tokens = self
            .message_overhead_tokens
            .unwrap_or(DEFAULT_MESSAGE_OVERHEAD_TOKENS);
        if message_overhead_tokens > 1000 {
            return err(
                "message_overhead_tokens",
                format!("must be at most 1000 (got {message_overhead_tokens})"),
            );
        }
        Ok(Source::Sharegpt(SharegptSpec {
            path,
            arrival,
            think_time_s,
            tokenizer,
            message_overhead_tokens,
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(yaml: &str) -> SourceSpec {
        serde_yaml::from_str(yaml).unwrap()
    }

    #[test]
    fn defaults_and_field_errors() {
        let s = spec("{kind: bailian, path: t.jsonl}").resolve().unwrap();
        assert_eq!(
            s,
            Source::Bailian {
                path: "t.jsonl".into(),
                block_tokens: 16,
                max_tracked_chats: 1 << 20
            }
        );
        let s = spec(
            "{kind: sharegpt, path: s.json, arrival: {kind: poisson, rate: 2}, think_time_s: 5}",
        )
        .resolve()
        .unwrap();
        let Source::Sharegpt(g) = s else { panic!() };
        assert_eq!(
            (g.tokenizer, g.message_overhead_tokens),
            (TokenizerSource::Bundled(TokenizerKind::Cl100kBase), 3)
        );
        let e = spec("{kind: sharegpt, path: s.json, arrival: {kind: poisson, rate: 2}}")
            .resolve()
            .unwrap_err();
        assert_eq!(e.0, "think_time_s");
        let e = spec("{kind: burstgpt, path: b.csv, block_tokens: 4}")
            .resolve()
            .unwrap_err();
        assert_eq!(
            e,
            (
                "block_tokens".into(),
                "does not apply to kind burstgpt".into()
            )
        );
        let e = spec("{kind: mooncake, path: m.jsonl, tokenizer: o200k_base}")
            .resolve()
            .unwrap_err();
        assert_eq!(e.0, "tokenizer");
        let e = spec("{kind: kv_cache_tester, path: d, arrival: {kind: poisson, rate: 0}}")
            .resolve()
            .unwrap_err();
        assert_eq!(e.0, "arrival.rate");
        assert!(matches!(
            spec("{kind: qwen, path: q.jsonl}").resolve(),
            Ok(Source::Bailian { .. })
        ));
    }
}
