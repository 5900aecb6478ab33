//! Token counts of text, from a BPE vocabulary bundled in the binary so that it works
//! offline: OpenAI's `cl100k_base` (GPT-3.5 / GPT-4, the models that wrote ShareGPT's
//! answers) and `o200k_base` (GPT-4o), through the `tiktoken-rs` crate (0.12), whose
//! vocabularies are tiktoken's own files.

use crate::error::{Error, Result};
use serde::{Deserialize, Serialize};
use std::collections::HashSet;
use std::sync::OnceLock;

/// A vocabulary as loaded, or why it could not be.
type Loaded = std::result::Result<tiktoken_rs::CoreBPE, String>;

/// A bundled vocabulary.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum TokenizerKind {
    /// tiktoken `cl100k_base` (GPT-3.5-turbo, GPT-4).
    Cl100kBase,
    /// tiktoken `o200k_base` (GPT-4o).
    O200kBase,
}

impl TokenizerKind {
    /// The name as written in YAML.
    pub fn name(self) -> &'static str {
        match self {
            TokenizerKind::Cl100kBase => "cl100k_base",
            TokenizerKind::O200kBase => "o200k_base",
        }
    }
}

/// Counts the tokens of text with one vocabulary.
pub struct Tokenizer {
    bpe: &'static tiktoken_rs::CoreBPE,
    kind: TokenizerKind,
}

/// The loaded vocabularies, one per kind, shared by every tokenizer of the process.
static CL100K: OnceLock<Loaded> = OnceLock::new();
static O200K: OnceLock<Loaded> = OnceLock::new();

impl Tokenizer {
    /// A tokenizer of a vocabulary. The first one of a kind in the process loads it (a
    /// few hundred milliseconds: it parses the bundled file); later ones share it, so
    /// that reopening a ShareGPT file (a sweep, a fuzz run) does not pay again.
    pub fn new(kind: TokenizerKind) -> Result<Self> {
        let (cell, load): (_, fn() -> Loaded) = match kind {
            TokenizerKind::Cl100kBase => (&CL100K, || {
                tiktoken_rs::cl100k_base().map_err(|e| e.to_string())
            }),
            TokenizerKind::O200kBase => (&O200K, || {
                tiktoken_rs::o200k_base().map_err(|e| e.to_string())
            }),
        };
        let bpe = cell
            .get_or_init(load)
            .as_ref()
            .map_err(|e| Error::failure(format!("cannot load tokenizer {}: {e}", kind.name())))?;
        Ok(Tokenizer { bpe, kind })
    }

    /// Tokens in `text`, taken as plain text: a special token's spelling such as
    /// `<|endoftext|>` is counted as the ordinary text it is.
    pub fn count(&self, text: &str) -> Result<usize> {
        // `encode` with no special token allowed is `encode_ordinary`, but reports the regex
        // engine's backtracking limit as an error instead of panicking.
        self.bpe
            .encode(text, &HashSet::new())
            .map(|(tokens, _)| tokens.len())
            .map_err(|e| {
                Error::input(format!(
                    "{} cannot tokenize the text: {}",
                    self.kind.name(),
                    e.message
                ))
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_counts() {
        let t = Tokenizer::new(TokenizerKind::Cl100kBase).unwrap();
        // tiktoken: "hello world" is [15339, 1917] in cl100k_base.
        assert_eq!(t.count("hello world").unwrap(), 2);
        assert_eq!(t.count("").unwrap(), 0);
        // A special token's spelling is ordinary text, several tokens.
        assert!(t.count("<|endoftext|>").unwrap() > 1);
        let o = Tokenizer::new(TokenizerKind::O200kBase).unwrap();
        assert_eq!(o.count("hello world").unwrap(), 2);
    }
}
