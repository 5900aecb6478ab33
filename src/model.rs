//! Model shapes: presets and explicit shapes, and the quantities derived from them
//! (weight bytes, KV bytes per token, FLOPs per token).

use crate::error::{Error, Result};
use crate::scenario::ModelSpec;
use serde::Serialize;

/// A dense decoder-only transformer, fully specified.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Model {
    /// Preset name, or `custom`.
    pub name: String,
    /// Transformer layers.
    pub layers: u32,
    /// Hidden size.
    pub hidden: u32,
    /// Query heads.
    pub heads: u32,
    /// Key/value heads.
    pub kv_heads: u32,
    /// Head dimension.
    pub head_dim: u32,
    /// MLP intermediate size (gated MLP: gate, up and down projections).
    pub intermediate: u32,
    /// Vocabulary size.
    pub vocab: u32,
    /// Bytes per weight (and per activation element).
    pub dtype_bytes: u32,
    /// Weights' data type name.
    pub dtype: String,
    /// Bytes per KV-cache element (the weights' unless `kv_cache.cache_dtype` says
    /// otherwise).
    pub kv_dtype_bytes: u32,
    /// KV-cache data type name, as vLLM's `--kv-cache-dtype` names it (`auto`: the
    /// weights').
    pub kv_dtype: String,
    /// Maximum context length.
    pub max_position: u32,
    /// Input and output embeddings share weights.
    pub tie_embeddings: bool,
}

struct Preset {
    name: &'static str,
    layers: u32,
    hidden: u32,
    heads: u32,
    kv_heads: u32,
    head_dim: u32,
    intermediate: u32,
    vocab: u32,
    max_position: u32,
    tie: bool,
}

/// The kvsim preset of a Hugging Face model name (`org/name` or `name`, any case), if any.
pub fn hf_preset(name: &str) -> Option<&'static str> {
    match name
        .rsplit('/')
        .next()
        .unwrap_or(name)
        .to_lowercase()
        .as_str()
    {
        "llama-2-7b-hf" => Some("llama-2-7b"),
        "llama-2-70b-hf" => Some("llama-2-70b"),
        _ => None,
    }
}

/// The model of a scenario that names none.
pub const DEFAULT_PRESET: &str = "llama-3.1-8b";

/// Shapes from each model's published `config.json`.
const PRESETS: &[Preset] = &[
    Preset {
        name: "llama-2-7b",
        layers: 32,
        hidden: 4096,
        heads: 32,
        kv_heads: 32,
        head_dim: 128,
        intermediate: 11008,
        vocab: 32000,
        max_position: 4096,
        tie: false,
    },
    Preset {
        name: "llama-2-70b",
        layers: 80,
        hidden: 8192,
        heads: 64,
        kv_heads: 8,
        head_dim: 128,
        intermediate: 28672,
        vocab: 32000,
        max_position: 4096,
        tie: false,
    },
    Preset {
        name: "llama-3.1-8b",
        layers: 32,
        hidden: 4096,
        heads: 32,
        kv_heads: 8,
        head_dim: 128,
        intermediate: 14336,
        vocab: 128256,
        max_position: 131072,
        tie: false,
    },
    Preset {
        name: "llama-3.1-70b",
        layers: 80,
        hidden: 8192,
        heads: 64,
        kv_heads: 8,
        head_dim: 128,
        intermediate: 28672,
        vocab: 128256,
        max_position: 131072,
        tie: false,
    },
    Preset {
        name: "qwen2.5-7b",
        layers: 28,
        hidden: 3584,
        heads: 28,
        kv_heads: 4,
        head_dim: 128,
        intermediate: 18944,
        vocab: 152064,
        max_position: 32768,
        tie: false,
    },
    Preset {
        name: "qwen2.5-32b",
        layers: 64,
        hidden: 5120,
        heads: 40,
        kv_heads: 8,
        head_dim: 128,
        intermediate: 27648,
        vocab: 152064,
        max_position: 32768,
        tie: false,
    },
    Preset {
        name: "qwen2.5-72b",
        layers: 80,
        hidden: 8192,
        heads: 64,
        kv_heads: 8,
        head_dim: 128,
        intermediate: 29568,
        vocab: 152064,
        max_position: 32768,
        tie: false,
    },
    Preset {
        name: "mistral-7b",
        layers: 32,
        hidden: 4096,
        heads: 32,
        kv_heads: 8,
        head_dim: 128,
        intermediate: 14336,
        vocab: 32768,
        max_position: 32768,
        tie: false,
    },
];

/// The values of `kv_cache.cache_dtype` ([`Model::with_kv_cache_dtype`]).
pub const KV_CACHE_DTYPES: &[&str] = &[
    "auto", "float16", "bfloat16", "fp16", "bf16", "fp8", "fp8_e4m3", "fp8_e5m2",
];

/// Largest accepted value of any shape field (keeps every derived product within `u64`).
const MAX_DIMENSION: u32 = 1 << 22;

/// Names of the model presets.
pub fn preset_names() -> Vec<&'static str> {
    PRESETS.iter().map(|p| p.name).collect()
}

fn dtype_bytes(dtype: &str) -> Option<u32> {
    match dtype {
        "bf16" | "fp16" => Some(2),
        "fp8" => Some(1),
        "fp32" => Some(4),
        _ => None,
    }
}

impl Model {
    /// The preset `name`, unchanged.
    pub fn preset(name: &str) -> Result<Model> {
        Model::from_spec(&ModelSpec {
            preset: Some(name.to_string()),
            ..ModelSpec::default()
        })
    }

    /// Build a model from a scenario's `model` section: a preset with optional overrides, or
    /// a complete explicit shape.
    pub fn from_spec(spec: &ModelSpec) -> Result<Model> {
        let preset = match &spec.preset {
            Some(name) => Some(
                PRESETS
                    .iter()
                    .find(|p| p.name == name.to_lowercase())
                    .ok_or_else(|| {
                        Error::input(format!(
                            "model.preset: unknown model `{name}`; known: {}",
                            preset_names().join(", ")
                        ))
                    })?,
            ),
            None if spec.layers.is_none() => PRESETS.iter().find(|p| p.name == DEFAULT_PRESET),
            None => None,
        };
        let need = |field: &str, v: Option<u32>, p: Option<u32>| -> Result<u32> {
            let v = v.or(p).ok_or_else(|| {
                Error::input(format!("model.{field}: required when no preset is given"))
            })?;
            if v == 0 || v > MAX_DIMENSION {
                return Err(Error::input(format!(
                    "model.{field}: must be between 1 and {MAX_DIMENSION} (got {v})"
                )));
            }
            Ok(v)
        };
        let dtype = spec.dtype.clone().unwrap_or_else(|| "bf16".to_string());
        let bytes = dtype_bytes(&dtype).ok_or_else(|| {
            Error::input(format!(
                "model.dtype: unknown dtype `{dtype}`; known: bf16, fp16, fp8, fp32"
            ))
        })?;
        let m = Model {
            name: match (&spec.preset, spec.layers) {
                (Some(n), _) => n.to_lowercase(),
                (None, None) => preset.map(|p| p.name.to_string()).unwrap_or_default(),
                (None, Some(_)) => "custom".to_string(),
            },
            layers: need("layers", spec.layers, preset.map(|p| p.layers))?,
            hidden: need("hidden", spec.hidden, preset.map(|p| p.hidden))?,
            heads: need("heads", spec.heads, preset.map(|p| p.heads))?,
            kv_heads: need("kv_heads", spec.kv_heads, preset.map(|p| p.kv_heads))?,
            head_dim: need("head_dim", spec.head_dim, preset.map(|p| p.head_dim))?,
            intermediate: need(
                "intermediate",
                spec.intermediate,
                preset.map(|p| p.intermediate),
            )?,
            vocab: need("vocab", spec.vocab, preset.map(|p| p.vocab))?,
            dtype_bytes: bytes,
            kv_dtype_bytes: bytes,
            kv_dtype: "auto".to_string(),
            dtype,
            max_position: need(
                "max_position",
                spec.max_position,
                preset.map(|p| p.max_position),
            )?,
            tie_embeddings: spec
                .tie_embeddings
                .or(preset.map(|p| p.tie))
                .unwrap_or(false),
        };
        if !m.heads.is_multiple_of(m.kv_heads) {
            return Err(Error::input(format!(
                "model.kv_heads: {} does not divide heads {}",
                m.kv_heads, m.heads
            )));
        }
        Ok(m)
    }

    /// The model with its KV cache stored as `cache_dtype`, one of vLLM 0.33's
    /// `--kv-cache-dtype` values kvsim models (`vllm/config/cache.py`, `CacheDType`):
    /// `auto` (the weights' dtype), `float16`, `bfloat16` (2 bytes), `fp8`, `fp8_e4m3`,
    /// `fp8_e5m2` (1 byte; vLLM keeps one scale per layer, not per block, so a block holds
    /// exactly half the bytes of a 16-bit one).
    pub fn with_kv_cache_dtype(mut self, cache_dtype: &str) -> Result<Model> {
        let bytes = match cache_dtype {
            "auto" => self.dtype_bytes,
            "float16" | "bfloat16" | "fp16" | "bf16" => 2,
            "fp8" | "fp8_e4m3" | "fp8_e5m2" => 1,
            other => return Err(Error::input(format!(
                "kv_cache.cache_dtype: unknown or unmodelled KV cache dtype `{other}`; known: {}",
                KV_CACHE_DTYPES.join(", ")
            ))),
        };
        self.kv_dtype_bytes = bytes;
        self.kv_dtype = cache_dtype.to_string();
        Ok(self)
    }

    /// Weights of the fused QKV projection of one layer.
    pub fn qkv_params(&self) -> u64 {
        self.hidden as u64 * (self.heads + 2 * self.kv_heads) as u64 * self.head_dim as u64
    }

    /// Weights of the attention output projection of one layer.
    pub fn o_params(&self) -> u64 {
        self.heads as u64 * self.head_dim as u64 * self.hidden as u64
    }

    /// Weights of the fused gate and up projections of one layer.
    pub fn gate_up_params(&self) -> u64 {
        2 * self.hidden as u64 * self.intermediate as u64
    }

    /// Weights of the down projection of one layer.
    pub fn down_params(&self) -> u64 {
        self.intermediate as u64 * self.hidden as u64
    }

    /// Weights of one layer, including its two RMS norms.
    pub fn layer_params(&self) -> u64 {
        self.qkv_params()
            + self.o_params()
            + self.gate_up_params()
            + self.down_params()
            + 2 * self.hidden as u64
    }

    /// Weights of the LM head.
    pub fn lm_head_params(&self) -> u64 {
        self.vocab as u64 * self.hidden as u64
    }

    /// All weights: layers, embeddings (twice unless tied) and the final norm.
    pub fn total_params(&self) -> u64 {
        let emb = self.lm_head_params() * if self.tie_embeddings { 1 } else { 2 };
        self.layers as u64 * self.layer_params() + emb + self.hidden as u64
    }

    /// The part of the model one GPU holds with tensor parallelism `tp` and pipeline
    /// parallelism `pp`, as vLLM splits it: query heads, MLP width and vocabulary divided by
    /// `tp`, KV heads divided by `tp` (replicated when `tp` exceeds them, one per GPU), and
    /// `ceil(layers / pp)` layers per stage. The stage keeps the embeddings and LM head
    /// (the first and last stages hold one each), so its weights are an upper bound.
    pub fn shard(&self, tp: u32, pp: u32) -> Result<Model> {
        let divides = |x: u32| tp > 0 && x.is_multiple_of(tp);
        if !(divides(self.heads) && divides(self.intermediate) && divides(self.vocab)) {
            return Err(Error::input(format!(
                "engine.tensor_parallel_size: {tp} must divide {}'s {} attention heads, MLP width {} and vocabulary {}",
                self.name, self.heads, self.intermediate, self.vocab
            )));
        }
        if !(self.kv_heads.is_multiple_of(tp) || tp.is_multiple_of(self.kv_heads)) {
            return Err(Error::input(format!(
                "engine.tensor_parallel_size: {tp} and {}'s {} KV heads: one must divide the other",
                self.name, self.kv_heads
            )));
        }
        if pp == 0 || pp > self.layers {
            return Err(Error::input(format!(
                "engine.pipeline_parallel_size: {pp} must be between 1 and {}'s {} layers",
                self.name, self.layers
            )));
        }
        Ok(Model {
            name: self.name.clone(),
            layers: self.layers.div_ceil(pp),
            heads: self.heads / tp,
            kv_heads: (self.kv_heads / tp).max(1),
            intermediate: self.intermediate / tp,
            vocab: self.vocab / tp,
            ..self.clone()
        })
    }

    /// Bytes of all weights.
    pub fn weight_bytes(&self) -> u64 {
        self.total_params() * self.dtype_bytes as u64
    }

    /// Bytes of K and V for one token in one layer.
    pub fn kv_bytes_per_token_layer(&self) -> u64 {
        2 * self.kv_heads as u64 * self.head_dim as u64 * self.kv_dtype_bytes as u64
    }

    /// Bytes of K and V for one token across all layers.
    pub fn kv_bytes_per_token(&self) -> u64 {
        self.layers as u64 * self.kv_bytes_per_token_layer()
    }

    /// FLOPs of the linear layers and LM head for one token (2 per multiply-add), without
    /// attention scores.
    pub fn linear_flops_per_token(&self) -> u64 {
        2 * (self.layers as u64 * (self.layer_params() - 2 * self.hidden as u64)
            + self.lm_head_params())
    }

    /// Attention FLOPs (QK^T and PV) for one query token against `context` keys in one layer.
    pub fn attention_flops(&self, context: u64) -> u64 {
        4 * self.heads as u64 * self.head_dim as u64 * context
    }
}

/// What `kvsim model show` prints about a model: its shape and the quantities derived
/// from it, for the whole model and for one GPU's shard at tensor parallelism `tp`.
#[derive(Debug, Clone, Serialize)]
pub struct ModelReport {
    /// The model, fully specified.
    pub model: Model,
    /// All parameters.
    pub params: u64,
    /// Bytes of all weights at the weights' dtype.
    pub weight_bytes: u64,
    /// Per layer type: (type, layers, KV bytes per token and layer).
    pub kv_layer_types: Vec<(String, u32, u64)>,
    /// KV bytes per token over all layers.
    pub kv_bytes_per_token: u64,
    /// FLOPs per token of the linear layers and LM head.
    pub linear_flops_per_token: u64,
    /// Attention FLOPs per token and layer for each key it attends to.
    pub attention_flops_per_key: u64,
    /// Tensor-parallel size of the shard.
    pub tp: u32,
    /// One GPU's weights at that size.
    pub shard_weight_bytes: u64,
    /// One GPU's KV bytes per token at that size.
    pub shard_kv_bytes_per_token: u64,
}

impl ModelReport {
    /// The report of `model`, with its shard at tensor parallelism `tp`.
    pub fn new(model: &Model, tp: u32) -> Result<ModelReport> {
        let shard = model.shard(tp, 1)?;
        Ok(ModelReport {
            params: model.total_params(),
            weight_bytes: model.weight_bytes(),
            kv_layer_types: vec![(
                "full attention".to_string(),
                model.layers,
                model.kv_bytes_per_token_layer(),
            )],
            kv_bytes_per_token: model.kv_bytes_per_token(),
            linear_flops_per_token: model.linear_flops_per_token(),
            attention_flops_per_key: model.attention_flops(1),
            tp,
            shard_weight_bytes: shard.weight_bytes(),
            shard_kv_bytes_per_token: shard.kv_bytes_per_token(),
            model: model.clone(),
        })
    }
}

impl std::fmt::Display for ModelReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let m = &self.model;
        let gib = |b: u64| b as f64 / (1u64 << 30) as f64;
        writeln!(f, "model {}", m.name)?;
        writeln!(
            f,
            "  shape: {} layers, hidden {}, {} query heads, {} KV heads of {}, MLP {}, vocabulary {}, context {}{}",
            m.layers,
            m.hidden,
            m.heads,
            m.kv_heads,
            m.head_dim,
            m.intermediate,
            m.vocab,
            m.max_position,
            if m.tie_embeddings { ", tied embeddings" } else { "" }
        )?;
        writeln!(
            f,
            "  weights: {:.3} B parameters, {:.2} GiB at {} ({} bytes)",
            self.params as f64 / 1e9,
            gib(self.weight_bytes),
            m.dtype,
            self.weight_bytes
        )?;
        let kv_dtype = if m.kv_dtype == "auto" {
            format!("auto = {}", m.dtype)
        } else {
            m.kv_dtype.clone()
        };
        writeln!(f, "  KV cache per token ({kv_dtype}):")?;
        for (kind, layers, bytes) in &self.kv_layer_types {
            writeln!(
                f,
                "    {kind}: {layers} layers x {bytes} bytes = {}",
                *layers as u64 * bytes
            )?;
        }
        writeln!(f, "    total: {} bytes", self.kv_bytes_per_token)?;
        writeln!(
            f,
            "  FLOPs per token: {:.3} G in linear layers and LM head, plus {} per layer for each key attended",
            self.linear_flops_per_token as f64 / 1e9,
            self.attention_flops_per_key
        )?;
        write!(
            f,
            "  one GPU at TP {}: {:.2} GiB of weights, {} KV bytes per token",
            self.tp,
            gib(self.shard_weight_bytes),
            self.shard_kv_bytes_per_token
        )
    }
}

#[cfg(test)]
mod tests {

    #[test]
    fn a_scenario_without_a_model_gets_the_documented_default() {
        let m = Model::from_spec(&ModelSpec::default()).unwrap();
        assert_eq!(m.name, DEFAULT_PRESET);
        assert_eq!((m.layers, m.kv_heads, m.vocab), (32, 8, 128256));
    }

    use super::*;

    fn preset(name: &str) -> Model {
        Model::from_spec(&ModelSpec {
            preset: Some(name.into()),
            ..Default::default()
        })
        .unwrap()
    }

    #[test]
    fn llama_8b_matches_published_size() {
        let m = preset("llama-3.1-8b");
        // 8.03 billion parameters, 128 KiB of KV per token in bf16.
        assert_eq!(m.total_params(), 8_030_261_248);
        assert_eq!(m.kv_bytes_per_token(), 131_072);
    }

    #[test]
    fn llama_70b_and_qwen_sizes() {
        let m = preset("llama-3.1-70b");
        assert!(
            (m.total_params() as f64 / 1e9 - 70.55).abs() < 0.05,
            "{}",
            m.total_params()
        );
        assert_eq!(m.kv_bytes_per_token(), 327_680);
        let q = preset("qwen2.5-7b");
        assert!(
            (q.total_params() as f64 / 1e9 - 7.6).abs() < 0.05,
            "{}",
            q.total_params()
        );
    }

    #[test]
    fn fp8_kv_cache_halves_kv_bytes_and_keeps_the_weights() {
        let bf16 = preset("llama-3.1-8b");
        for name in ["fp8", "fp8_e4m3", "fp8_e5m2"] {
            let fp8 = bf16.clone().with_kv_cache_dtype(name).unwrap();
            // 32 layers x 2 (K, V) x 8 heads x 128 dims x 1 byte.
            assert_eq!(fp8.kv_bytes_per_token(), 65_536);
            assert_eq!(fp8.weight_bytes(), bf16.weight_bytes());
        }
        let auto = bf16.clone().with_kv_cache_dtype("auto").unwrap();
        assert_eq!(auto.kv_bytes_per_token(), 131_072);
        let err = bf16.with_kv_cache_dtype("fp8_inc").unwrap_err().to_string();
        assert!(err.starts_with("kv_cache.cache_dtype: "), "{err}");
        assert!(err.contains("fp8_e5m2"), "{err}");
    }

    #[test]
    fn the_report_adds_up_and_splits_kv_heads_over_tp() {
        let m = preset("llama-3.1-70b").with_kv_cache_dtype("fp8").unwrap();
        let r = ModelReport::new(&m, 4).unwrap();
        // 80 layers x 2 x 8 KV heads x 128 x 1 byte; TP 4 keeps 2 KV heads per GPU.
        assert_eq!(r.kv_layer_types, vec![("full attention".into(), 80, 2048)]);
        assert_eq!(r.kv_bytes_per_token, 163_840);
        assert_eq!(r.shard_kv_bytes_per_token, 40_960);
        assert_eq!(r.attention_flops_per_key, 4 * 64 * 128);
        let text = r.to_string();
        assert!(text.contains("KV cache per token (fp8)"), "{text}");
        assert!(text.contains("80 layers x 2048 bytes = 163840"), "{text}");
    }

    #[test]
    fn explicit_shape_needs_every_field() {
        let spec = ModelSpec {
            layers: Some(2),
            hidden: Some(64),
            ..Default::default()
        };
        let err = Model::from_spec(&spec).unwrap_err().to_string();
        assert!(err.contains("model.heads"), "{err}");
    }

    #[test]
    fn unknown_preset_lists_known_ones() {
        let spec = ModelSpec {
            preset: Some("gpt-9".into()),
            ..Default::default()
        };
        let err = Model::from_spec(&spec).unwrap_err().to_string();
        assert!(err.contains("llama-3.1-8b"), "{err}");
    }
}
