//! Token counts of text: from a BPE vocabulary bundled in the binary so that it works
//! offline, OpenAI's `cl100k_base` (GPT-3.5 / GPT-4, the models that wrote ShareGPT's
//! answers) and `o200k_base` (GPT-4o), through the `tiktoken-rs` crate (0.12), whose
//! vocabularies are tiktoken's own files; or from a Hugging Face `tokenizer.json` the user
//! names (the served model's own, e.g. Llama 3's), through Hugging Face's `tokenizers`
//! crate (0.22), counted without the special tokens its post-processor adds.

use crate::error::{Error, Result};
use serde::{Deserialize, Serialize};
use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock};

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

/// Where a tokenizer comes from.
#[derive(Debug, Clone, PartialEq)]
pub enum TokenizerSource {
    /// A vocabulary bundled in the binary.
    Bundled(TokenizerKind),
    /// A Hugging Face `tokenizer.json` file.
    File(PathBuf),
}

/// Counts the tokens of text with one vocabulary.
pub struct Tokenizer {
    vocabulary: Vocabulary,
    /// The vocabulary's name in errors.
    name: String,
}

enum Vocabulary {
    Bundled(&'static tiktoken_rs::CoreBPE),
    File(Arc<tokenizers::Tokenizer>),
}

/// The `tokenizer.json` files loaded so far, by path, shared by every tokenizer of the
/// process.
static FILES: OnceLock<Mutex<HashMap<PathBuf, Arc<tokenizers::Tokenizer>>>> = OnceLock::new();

/// The loaded vocabularies, one per kind, shared by every tokenizer of the process.
static CL100K: OnceLock<Loaded> = OnceLock::new();
static O200K: OnceLock<Loaded> = OnceLock::new();

impl Tokenizer {
    /// A tokenizer from `source`; a file is read once per process and path.
    pub fn open(source: &TokenizerSource) -> Result<Self> {
        match source {
            TokenizerSource::Bundled(kind) => Self::new(*kind),
            TokenizerSource::File(path) => Self::file(path),
        }
    }

    /// A Hugging Face `tokenizer.json`.
    fn file(path: &Path) -> Result<Self> {
        let name = path.display().to_string();
        let cache = FILES.get_or_init(|| Mutex::new(HashMap::new()));
        let cached = cache
            .lock()
            .map_err(|_| Error::failure("tokenizer cache poisoned"))?
            .get(path)
            .cloned();
        let tok = match cached {
            Some(t) => t,
            None => {
                let t = Arc::new(load_file(path)?);
                if let Ok(mut c) = cache.lock() {
                    c.insert(path.to_path_buf(), t.clone());
                }
                t
            }
        };
        Ok(Tokenizer {
            vocabulary: Vocabulary::File(tok),
            name,
        })
    }

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
        Ok(Tokenizer {
            vocabulary: Vocabulary::Bundled(bpe),
            name: kind.name().to_string(),
        })
    }

    /// Tokens in `text`, taken as plain text: a special token's spelling such as
    /// `<|endoftext|>` is counted as the ordinary text it is.
    pub fn count(&self, text: &str) -> Result<usize> {
        let refuse =
            |e: String| Error::input(format!("{} cannot tokenize the text: {e}", self.name));
        match &self.vocabulary {
            // `encode` with no special token allowed is `encode_ordinary`, but reports the
            // regex engine's backtracking limit as an error instead of panicking.
            Vocabulary::Bundled(bpe) => bpe
                .encode(text, &HashSet::new())
                .map(|(tokens, _)| tokens.len())
                .map_err(|e| refuse(e.message)),
            // Without the post-processor's special tokens (BOS): the chat template's are
            // `message_overhead_tokens`.
            Vocabulary::File(t) => t
                .encode(text, false)
                .map(|e| e.len())
                .map_err(|e| refuse(e.to_string())),
        }
    }
}

/// Read a `tokenizer.json`, its size checked first (at most
/// [`crate::input::MAX_TEXT_BYTES`]; the largest public ones are about 35 MB).
fn load_file(path: &Path) -> Result<tokenizers::Tokenizer> {
    let text = crate::input::read_bounded(path, "tokenizer file", crate::input::MAX_TEXT_BYTES)?;
    text.parse().map_err(|e| {
        Error::input(format!(
            "tokenizer file {} is not a Hugging Face tokenizer.json: {e}",
            path.display()
        ))
    })
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

    /// A `tokenizer.json` written to a fresh file; returns its path.
    fn file(name: &str, json: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("kvsim-tok-{}-{name}", std::process::id()));
        std::fs::create_dir_all(&d).unwrap();
        let p = d.join("tokenizer.json");
        std::fs::write(&p, json).unwrap();
        p
    }

    /// A word-level vocabulary split on whitespace and punctuation, whose post-processor
    /// adds a BOS token (shared with `tests/readers.rs`).
    const WORD_LEVEL: &str = include_str!("../../tests/data/word-level-tokenizer.json");

    #[test]
    fn a_tokenizer_json_counts_without_its_special_tokens() {
        let t = Tokenizer::open(&TokenizerSource::File(file("wl", WORD_LEVEL))).unwrap();
        // hello | , | world | ! (unknown words and punctuation are one token each).
        assert_eq!(t.count("hello, world!").unwrap(), 4);
        assert_eq!(t.count("  ").unwrap(), 0);
        assert_eq!(t.count("hello").unwrap(), 1);
    }

    #[test]
    fn a_bpe_tokenizer_json_applies_its_merges() {
        let bpe = r#"{"version": "1.0", "added_tokens": [], "normalizer": null,
            "pre_tokenizer": null, "post_processor": null, "decoder": null,
            "model": {"type": "BPE", "dropout": null, "unk_token": null,
                      "continuing_subword_prefix": null, "end_of_word_suffix": null,
                      "fuse_unk": false, "byte_fallback": false,
                      "vocab": {"h": 0, "e": 1, "l": 2, "o": 3, "he": 4, "ll": 5,
                                "hell": 6, "hello": 7},
                      "merges": ["h e", "l l", "he ll", "hell o"]}}"#;
        let t = Tokenizer::open(&TokenizerSource::File(file("bpe", bpe))).unwrap();
        assert_eq!(t.count("hello").unwrap(), 1);
        // hello + he; o + h (no merge makes "oh").
        assert_eq!(t.count("hellohe").unwrap(), 2);
        assert_eq!(t.count("oh").unwrap(), 2);
        assert_eq!(t.count("hell").unwrap(), 1);
    }

    #[test]
    fn a_bad_tokenizer_file_is_an_input_error_naming_it() {
        let missing = std::env::temp_dir().join("kvsim-no-such-dir/tokenizer.json");
        let Err(e) = Tokenizer::open(&TokenizerSource::File(missing)) else {
            panic!("a missing file loads")
        };
        assert_eq!(e.exit_code(), 2);
        assert!(
            e.to_string().contains("kvsim-no-such-dir/tokenizer.json"),
            "{e}"
        );
        let p = file("bad", r#"{"model": {"type": "Nothing"}}"#);
        let Err(e) = Tokenizer::open(&TokenizerSource::File(p.clone())) else {
            panic!("a bad file loads")
        };
        assert!(
            e.to_string().contains(&format!(
                "{} is not a Hugging Face tokenizer.json",
                p.display()
            )),
            "{e}"
        );
    }
}
