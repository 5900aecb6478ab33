//! Token-level KV compression in serving: what a policy keeps resident per request, what a
//! decode step reads, how many bytes a token takes and what crosses to host memory. The
//! KV cache manager sizes each request's blocks with [`TokenPolicy::resident_slots`]; the
//! replica times decode attention with [`TokenPolicy::read_tokens`]; the memory plan
//! sizes blocks with [`TokenPolicy::memory_factor`]. Rules and sources: `docs/policies.md`.

use crate::error::{Error, Result};
use crate::model::Model;
use crate::scenario::TokenPolicySpec;
use serde::Serialize;

/// What a policy does to the KV cache.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub enum Class {
    /// Drops tokens after the prompt: fewer resident tokens, fewer blocks.
    Eviction {
        /// The budget holds the whole cache (new tokens evict old ones), not just the
        /// compressed prompt with new tokens appended.
        whole_cache: bool,
    },
    /// Keeps every token and reads a chosen subset each step (plus metadata to choose).
    Selection,
    /// Stores tokens in fewer bits.
    Quantization,
    /// Keeps compressed keys on the GPU and values in host memory; fetches the selected
    /// values each step (ShadowKV).
    Offload,
}

impl Class {
    /// A short description for reports.
    pub fn describe(self) -> &'static str {
        match self {
            Class::Eviction { whole_cache: true } => "eviction, whole cache",
            Class::Eviction { whole_cache: false } => "eviction, prompt",
            Class::Selection => "selection",
            Class::Quantization => "quantization",
            Class::Offload => "offload",
        }
    }
}

/// Names of the serving models, for errors and docs.
pub const TOKEN_POLICIES: &[&str] = &[
    "none",
    "streaming_llm",
    "h2o",
    "snapkv",
    "pyramidkv",
    "ada_snapkv",
    "tova",
    "quest",
    "tokenselect",
    "shadowkv",
    "kivi",
];

/// A resolved `kv_cache.token_policy`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TokenPolicy {
    /// Policy name.
    pub name: String,
    /// What it does.
    pub class: Class,
    /// Share of the prompt kept (eviction) or of the context read (selection, offload).
    pub keep_ratio: Option<f64>,
    /// Fixed token budget; overrides `keep_ratio`.
    pub budget_tokens: Option<u32>,
    /// Attention is masked, not compacted: the public implementation frees no memory and
    /// reads every token (only its scoring costs).
    pub masked: bool,
    /// Bits per stored element (quantization), of `dtype_bits`.
    pub bits: u32,
    /// Bits of the model's KV dtype.
    pub dtype_bits: u32,
    /// Elements sharing one scale and zero point (quantization; 0 = no overhead).
    pub group_size: u32,
    /// Most recent tokens kept in full precision (KIVI's residual).
    pub residual_tokens: u32,
    /// Tokens per page of selection metadata (Quest) or per landmark chunk (ShadowKV).
    pub page_size: u32,
    /// Leading layers that read every token (Quest skips the first two).
    pub dense_layers: u32,
    /// Rank of ShadowKV's low-rank keys, and the model's key width (KV heads x head dim).
    pub key_rank: u32,
    /// Key width of the model, per layer (`kv_heads * head_dim`).
    pub key_width: u32,
    /// Layers of the model.
    pub layers: u32,
    /// Extra bytes per resident token of a decode step, as a share of its KV bytes, for
    /// rules that score every token each step from the attention weights (H2O, TOVA): one
    /// fp32 weight per query head written and read back.
    pub score_share: f64,
}

/// The class of a policy name: `None` if unknown, `Some(None)` for `none`.
fn class_of(kind: &str) -> Option<Option<Class>> {
    Some(Some(match kind {
        "none" => return Some(None),
        "streaming_llm" | "h2o" | "tova" => Class::Eviction { whole_cache: true },
        "snapkv" | "pyramidkv" | "ada_snapkv" => Class::Eviction { whole_cache: false },
        "quest" | "tokenselect" => Class::Selection,
        "kivi" => Class::Quantization,
        "shadowkv" => Class::Offload,
        _ => return None,
    }))
}

/// Check a `kv_cache.token_policy` without a model: the field (below `token_policy`) and
/// the problem. The scenario loader runs it so that the error carries the line.
pub fn check_spec(s: &TokenPolicySpec) -> std::result::Result<(), (String, String)> {
    let err = |f: &str, m: String| Err((f.to_string(), m));
    let Some(class) = class_of(&s.kind) else {
        return err(
            "kind",
            format!(
                "unknown policy `{}`; known: {}",
                s.kind,
                TOKEN_POLICIES.join(", ")
            ),
        );
    };
    if let Some(r) = s.keep_ratio {
        if !(r > 0.0 && r <= 1.0) {
            return err("keep_ratio", format!("{r} is not in (0, 1]"));
        }
    }
    if s.budget_tokens == Some(0) {
        return err("budget_tokens", "must be at least 1".into());
    }
    let Some(class) = class else {
        return Ok(());
    };
    if s.window.is_some() && s.kind != "streaming_llm" {
        return err(
            "window",
            format!(
                "only streaming_llm takes sinks and window, not `{}`",
                s.kind
            ),
        );
    }
    if s.window.is_some() && (s.keep_ratio.is_some() || s.budget_tokens.is_some()) {
        return err(
            "window",
            "give sinks and window, or keep_ratio, or budget_tokens: one budget".into(),
        );
    }
    let needs_budget = !matches!(class, Class::Quantization);
    if needs_budget && s.keep_ratio.is_none() && s.budget_tokens.is_none() && s.window.is_none() {
        return err(
            "keep_ratio",
            format!("`{}` needs keep_ratio or budget_tokens", s.kind),
        );
    }
    if let Some(b) = s.bits.filter(|b| !(1..=16).contains(b)) {
        return err("bits", format!("{b} is not in 1..=16"));
    }
    if s.masked && !matches!(class, Class::Eviction { .. }) {
        return err("masked", "only eviction policies can be masked".into());
    }
    if s.page_size == Some(0) {
        return err("page_size", "must be at least 1".into());
    }
    if s.key_rank == Some(0) {
        return err("key_rank", "must be at least 1".into());
    }
    Ok(())
}

impl TokenPolicy {
    /// Resolve a scenario's policy for a model with these dimensions; `None` for `none`.
    pub fn from_spec(s: &TokenPolicySpec, model: &Model) -> Result<Option<TokenPolicy>> {
        // Bits and sizes are those of the KV cache elements.
        let (dtype_bytes, layers) = (model.kv_dtype_bytes, model.layers);
        let key_width = model.kv_heads * model.head_dim;
        let field =
            |f: &str, msg: String| Error::input(format!("kv_cache.token_policy.{f}: {msg}"));
        check_spec(s).map_err(|(f, m)| field(&f, m))?;
        let Some(class) = class_of(&s.kind).flatten() else {
            return Ok(None);
        };
        let dtype_bits = dtype_bytes * 8;
        let bits = match class {
            Class::Quantization => s.bits.unwrap_or(2),
            _ => dtype_bits,
        };
        if bits > dtype_bits {
            return Err(field("bits", format!("{bits} is not in 1..={dtype_bits}")));
        }
        let page_size = s
            .page_size
            .unwrap_or(if s.kind == "shadowkv" { 8 } else { 16 });
        let key_rank = s.key_rank.unwrap_or(160).min(key_width);
        Ok(Some(TokenPolicy {
            name: s.kind.clone(),
            class,
            keep_ratio: s.keep_ratio,
            // StreamingLLM's cache is its sinks plus its window.
            budget_tokens: s
                .budget_tokens
                .or(s.window.map(|w| w + s.sinks.unwrap_or(4))),
            masked: s.masked,
            bits,
            dtype_bits,
            group_size: s.group_size.unwrap_or(32),
            residual_tokens: s
                .residual_tokens
                .unwrap_or(if s.kind == "kivi" { 128 } else { 0 }),
            page_size,
            dense_layers: s
                .dense_layers
                .unwrap_or(if s.kind == "quest" { 2 } else { 0 })
                .min(layers),
            key_rank,
            key_width,
            layers,
            score_share: if matches!(s.kind.as_str(), "h2o" | "tova") {
                (model.heads * 4) as f64 / (2 * key_width * dtype_bytes) as f64
            } else {
                0.0
            },
        }))
    }

    /// Bytes a stored token takes relative to the model's KV dtype: `(bits + 2 * 16 /
    /// group) / dtype_bits` quantized (an fp16 scale and zero point per group); `1 + 1/page`
    /// with Quest's per-page key minimum and maximum; ShadowKV's rank-`r` keys and chunk
    /// landmarks without values: `(r / key_width + 1 / chunk) / 2`.
    pub fn memory_factor(&self) -> f64 {
        match self.class {
            Class::Quantization => {
                let overhead = if self.group_size > 0 {
                    32.0 / self.group_size as f64
                } else {
                    0.0
                };
                (self.bits as f64 + overhead) / self.dtype_bits as f64
            }
            Class::Selection if self.name == "quest" => 1.0 + 1.0 / self.page_size as f64,
            Class::Offload => {
                (self.key_rank as f64 / self.key_width as f64 + 1.0 / self.page_size as f64) / 2.0
            }
            _ => 1.0,
        }
    }

    /// True when kept tokens are compacted into fewer blocks, so that a request's blocks
    /// no longer hold the prefix their hash names: such requests neither hit nor fill the
    /// prefix cache.
    pub fn rewrites_blocks(&self) -> bool {
        matches!(self.class, Class::Eviction { .. }) && !self.masked
    }

    /// The eviction budget of a prompt, in tokens.
    fn budget(&self, base: u64) -> u64 {
        match self.budget_tokens {
            Some(b) => b as u64,
            None => (self.keep_ratio.unwrap_or(1.0) * base as f64)
                .round()
                .max(1.0) as u64,
        }
    }

    /// KV slots (tokens at the stored size) a request of `prompt` tokens holds when
    /// `tokens` of it are in the cache. A prompt is held whole while it is prefilled (the
    /// policies score it after the last chunk); eviction then keeps the budget.
    pub fn resident_slots(&self, prompt: u32, tokens: u64) -> u64 {
        let prompt = prompt as u64;
        match self.class {
            Class::Eviction { whole_cache } if !self.masked && tokens > prompt => {
                let kept = self.budget(prompt).min(prompt);
                if whole_cache {
                    tokens.min(kept.max(1))
                } else {
                    kept + (tokens - prompt)
                }
            }
            Class::Quantization if self.residual_tokens > 0 => {
                let r = tokens.min(self.residual_tokens as u64) as f64;
                let full = 1.0 / self.memory_factor();
                ((tokens as f64 - r) + r * full).ceil() as u64
            }
            _ => tokens,
        }
    }

    /// Most slots a request holds over its life (prompt plus `output` tokens).
    pub fn peak_slots(&self, prompt: u32, output: u32) -> u64 {
        let total = prompt as u64 + output as u64;
        self.resident_slots(prompt, prompt as u64)
            .max(self.resident_slots(prompt, total))
    }

    /// KV tokens' worth of bytes (at the model's dtype) one decode step reads per layer,
    /// averaged over layers, when the context holds `context` tokens (the new one included).
    pub fn read_tokens(&self, prompt: u32, context: u64) -> f64 {
        let ctx = context as f64;
        let budget = |c: u64| self.budget(c).min(c) as f64;
        match self.class {
            Class::Eviction { .. } if self.masked => ctx * (1.0 + self.score_share),
            Class::Eviction { .. } => {
                self.resident_slots(prompt, context) as f64 * (1.0 + self.score_share)
            }
            Class::Selection => {
                let sparse = if self.name == "quest" {
                    // Selected pages plus every page's minimum and maximum key.
                    budget(context) + ctx / self.page_size as f64
                } else {
                    // TokenSelect: q.k over every key (half the KV bytes), then the
                    // selected tokens' keys and values.
                    ctx / 2.0 + budget(context)
                };
                let dense = self.dense_layers as f64;
                let layers = self.layers as f64;
                (dense * ctx + (layers - dense) * sparse.min(1.5 * ctx)) / layers
            }
            Class::Quantization => {
                self.resident_slots(prompt, context) as f64 * self.memory_factor()
            }
            Class::Offload => {
                // Landmark keys to score chunks, then the selected tokens' reconstructed
                // keys and their values (fetched from host memory).
                ctx / self.page_size as f64 / 2.0 + budget(context)
            }
        }
    }

    /// KV tokens' worth of values a decode step fetches from host memory (all layers).
    pub fn host_value_tokens(&self, context: u64) -> f64 {
        match self.class {
            Class::Offload => self.budget(context).min(context) as f64,
            _ => 0.0,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(kind: &str) -> TokenPolicySpec {
        TokenPolicySpec {
            kind: kind.into(),
            keep_ratio: Some(0.2),
            ..Default::default()
        }
    }

    /// Llama-3.1-8B: 32 layers, 32 query heads, 8 KV heads of 128 (key width 1024).
    fn llama() -> Model {
        Model::from_spec(&crate::scenario::ModelSpec::default()).unwrap()
    }

    fn resolve(s: &TokenPolicySpec) -> TokenPolicy {
        TokenPolicy::from_spec(s, &llama()).unwrap().unwrap()
    }

    #[test]
    fn eviction_keeps_the_budget_after_the_prompt() {
        let snap = resolve(&spec("snapkv"));
        assert_eq!(snap.resident_slots(1000, 600), 600); // prefilling: whole chunk
        assert_eq!(snap.resident_slots(1000, 1000), 1000);
        assert_eq!(snap.resident_slots(1000, 1001), 201); // 200 kept + 1 new
        assert_eq!(snap.resident_slots(1000, 1100), 300);
        let stream = resolve(&spec("streaming_llm"));
        assert_eq!(stream.resident_slots(1000, 1100), 200); // the budget holds everything
        assert_eq!(stream.peak_slots(1000, 100), 1000);
        let masked = resolve(&TokenPolicySpec {
            masked: true,
            ..spec("h2o")
        });
        assert_eq!(masked.resident_slots(1000, 1100), 1100);
        // H2O writes and reads back 32 fp32 weights per token: 128 of 4,096 KV bytes.
        assert_eq!(masked.score_share, 1.0 / 32.0);
        assert_eq!(masked.read_tokens(1000, 1100), 1100.0 * 1.03125);
        assert_eq!(snap.read_tokens(1000, 1100), 300.0);
    }

    #[test]
    fn streaming_budget_is_sinks_plus_window() {
        let s = resolve(&TokenPolicySpec {
            kind: "streaming_llm".into(),
            window: Some(1020),
            ..Default::default()
        });
        assert_eq!(s.budget_tokens, Some(1024));
        assert_eq!(s.resident_slots(4000, 4100), 1024);
        let bad = TokenPolicySpec {
            window: Some(8),
            ..spec("snapkv")
        };
        assert_eq!(check_spec(&bad).unwrap_err().0, "window");
    }

    #[test]
    fn quantization_bytes() {
        let four = TokenPolicySpec {
            kind: "kivi".into(),
            bits: Some(4),
            group_size: Some(0),
            residual_tokens: Some(0),
            ..Default::default()
        };
        assert_eq!(resolve(&four).memory_factor(), 0.25);
        let kivi = resolve(&TokenPolicySpec {
            kind: "kivi".into(),
            bits: Some(4),
            ..Default::default()
        });
        // 4 bits plus an fp16 scale and zero point per 32 elements: 5/16.
        assert_eq!(kivi.memory_factor(), 5.0 / 16.0);
        // 128 residual tokens at 16/5 slots each: 100 - 100 + 320.
        assert_eq!(kivi.resident_slots(50, 100), 320);
        assert_eq!(kivi.resident_slots(50, 1000), 872 + 410);
    }

    #[test]
    fn selection_reads_less_but_stores_metadata() {
        let quest = resolve(&TokenPolicySpec {
            budget_tokens: Some(1024),
            dense_layers: Some(0),
            ..spec("quest")
        });
        assert_eq!(quest.memory_factor(), 1.0 + 1.0 / 16.0);
        assert_eq!(quest.resident_slots(4000, 8192), 8192);
        assert_eq!(quest.read_tokens(4000, 8192), 1024.0 + 512.0);
        let ts = resolve(&TokenPolicySpec {
            budget_tokens: Some(1024),
            ..spec("tokenselect")
        });
        assert_eq!(ts.read_tokens(4000, 8192), 4096.0 + 1024.0);
    }

    #[test]
    fn bad_fields_are_named() {
        let e = TokenPolicy::from_spec(&spec("lru"), &llama()).unwrap_err();
        assert!(e.to_string().contains("kv_cache.token_policy.kind"), "{e}");
        let e = TokenPolicy::from_spec(
            &TokenPolicySpec {
                keep_ratio: None,
                ..spec("h2o")
            },
            &llama(),
        )
        .unwrap_err();
        assert!(e.to_string().contains("keep_ratio"), "{e}");
    }
}
