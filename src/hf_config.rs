//! A model from its Hugging Face `config.json` (`model.hf_config`): the shape, mixture of
//! experts, latent attention, sliding-window, chunked-local and linear-attention layers,
//! read by the names the model families use (and vLLM's model files read). A multimodal
//! checkpoint's text model is read from its `text_config`; its vision encoder is not
//! counted (its weights depend on the tower, which `config.json` names but does not size).

use crate::error::{Error, Result};
use crate::model::{Arch, LinearAttention, Mla, Model, Moe};
use serde_json::Value;
use std::path::Path;

/// Read `path` (a `config.json`) into a model named after its folder.
pub fn read(path: &Path) -> Result<Model> {
    let text = std::fs::read_to_string(path).map_err(|e| {
        Error::input(format!(
            "model.hf_config: cannot read {}: {e}",
            path.display()
        ))
    })?;
    let root: Value = serde_json::from_str(&text).map_err(|e| {
        Error::input(format!(
            "model.hf_config: {} is not JSON: {e} (line {})",
            path.display(),
            e.line()
        ))
    })?;
    let name = path
        .parent()
        .and_then(|p| p.file_name())
        .map_or("custom".to_string(), |n| n.to_string_lossy().to_lowercase());
    parse(&root, &name)
        .map_err(|e| Error::input(format!("model.hf_config: {}: {e}", path.display())))
}

/// The fields of one config: the text model's, falling back to the top level, then to the
/// defaults of the family's `transformers` config class for keys checkpoints leave out.
struct Config<'a> {
    text: &'a Value,
    root: &'a Value,
    defaults: Value,
}

/// Defaults of `transformers`' config classes that published checkpoints rely on
/// (`Gemma3TextConfig`: vocabulary, context, tied embeddings, window pattern;
/// `Qwen3NextConfig`: the gated attention output).
fn family_defaults(family: &str) -> Value {
    match family {
        "gemma3_text" | "gemma3" => serde_json::json!({
            "vocab_size": 262208,
            "max_position_embeddings": 131072,
            "tie_word_embeddings": true,
            "sliding_window": 4096,
            "sliding_window_pattern": 6,
        }),
        "qwen3_next" => serde_json::json!({"attn_output_gate": true}),
        _ => Value::Null,
    }
}

impl Config<'_> {
    fn get(&self, key: &str) -> Option<&Value> {
        [self.text, self.root, &self.defaults]
            .into_iter()
            .find_map(|v| v.get(key).filter(|v| !v.is_null()))
    }

    fn u32_opt(&self, key: &str) -> std::result::Result<Option<u32>, String> {
        match self.get(key) {
            None => Ok(None),
            Some(v) => v
                .as_u64()
                .filter(|&n| n <= u32::MAX as u64)
                .map(|n| Some(n as u32))
                .ok_or_else(|| format!("`{key}` must be a whole number (got {v})")),
        }
    }

    fn u32(&self, key: &str) -> std::result::Result<u32, String> {
        self.u32_opt(key)?
            .ok_or_else(|| format!("`{key}` is missing"))
    }

    fn str(&self, key: &str) -> Option<&str> {
        self.get(key).and_then(|v| v.as_str())
    }

    /// `quantization_config.quant_method` (`fp8`, `mxfp4`, ...), if any.
    fn quant_method(&self) -> Option<&str> {
        self.get("quantization_config")
            .and_then(|q| q.get("quant_method"))
            .and_then(|q| q.as_str())
    }

    fn bool(&self, key: &str) -> Option<bool> {
        self.get(key).and_then(|v| v.as_bool())
    }

    /// `layer_types`: how many layers are of `kind`.
    fn count_layer_type(&self, kind: &str) -> Option<u32> {
        let list = self.get("layer_types")?.as_array()?;
        Some(list.iter().filter(|v| v.as_str() == Some(kind)).count() as u32)
    }
}

fn parse(root: &Value, name: &str) -> std::result::Result<Model, String> {
    let text = root
        .get("text_config")
        .filter(|v| v.is_object())
        .unwrap_or(root);
    let family = text
        .get("model_type")
        .or_else(|| root.get("model_type"))
        .and_then(|v| v.as_str())
        .unwrap_or("")
        .to_string();
    let c = Config {
        text,
        root,
        defaults: family_defaults(&family),
    };
    let layers = c.u32("num_hidden_layers")?;
    let hidden = c.u32("hidden_size")?;
    let heads = c.u32("num_attention_heads")?;
    let kv_heads = c.u32_opt("num_key_value_heads")?.unwrap_or(heads);
    let mla = mla(&c)?;
    let head_dim = match mla {
        Some(m) => m.qk_nope_head_dim + m.qk_rope_head_dim,
        None => match c.u32_opt("head_dim")? {
            Some(d) => d,
            None if heads > 0 => hidden / heads,
            None => return Err("`num_attention_heads` must be at least 1".into()),
        },
    };
    // Llama 4 names the dense layers' MLP `intermediate_size_mlp` and the experts'
    // `intermediate_size`.
    let intermediate = match c.u32_opt("intermediate_size_mlp")? {
        Some(i) => i,
        None => c.u32("intermediate_size")?,
    };
    let arch = Arch {
        moe: moe(&c, &family)?,
        mla,
        sliding_window: sliding_window(&c, layers)?,
        chunked_local: chunked_local(&c)?,
        attention_bias: c.bool("attention_bias").unwrap_or(false),
        qkv_bias: matches!(family.as_str(), "qwen2" | "qwen2_moe"),
        attention_sinks: family == "gpt_oss",
        qk_norm: matches!(
            family.as_str(),
            "qwen3" | "qwen3_moe" | "qwen3_next" | "gemma3" | "gemma3_text"
        ),
        sandwich_norms: matches!(family.as_str(), "gemma3" | "gemma3_text" | "gemma2"),
        attention_output_gate: c.bool("attn_output_gate").unwrap_or(false),
        linear_attention: linear_attention(&c, layers)?,
        ..Arch::default()
    };
    let dtype = dtype(&c)?;
    let mut m = Model {
        name: name.to_string(),
        layers,
        hidden,
        heads,
        kv_heads,
        head_dim,
        intermediate,
        vocab: c.u32("vocab_size")?,
        dtype_bytes: crate::model::element_bytes(&dtype).unwrap_or(2),
        dtype,
        kv_dtype_bytes: 0,
        kv_dtype: "auto".to_string(),
        max_position: c.u32("max_position_embeddings")?,
        tie_embeddings: c.bool("tie_word_embeddings").unwrap_or(false),
        arch,
    };
    m.kv_dtype_bytes = m.compute_bytes();
    Ok(m)
}

/// The weights' dtype: `torch_dtype` (or `dtype`), and an FP8 checkpoint's quantization.
fn dtype(c: &Config) -> std::result::Result<String, String> {
    if c.quant_method() == Some("fp8") {
        return Ok("fp8".to_string());
    }
    let named = c
        .str("torch_dtype")
        .or_else(|| c.str("dtype"))
        .unwrap_or("bfloat16");
    match named {
        "bfloat16" => Ok("bf16".to_string()),
        "float16" => Ok("fp16".to_string()),
        "float32" => Ok("fp32".to_string()),
        other => Err(format!(
            "`torch_dtype` `{other}` is not one kvsim models (bfloat16, float16, float32)"
        )),
    }
}

/// Multi-head latent attention's ranks and head sizes (DeepSeek's names).
fn mla(c: &Config) -> std::result::Result<Option<Mla>, String> {
    let Some(kv_lora_rank) = c.u32_opt("kv_lora_rank")? else {
        return Ok(None);
    };
    Ok(Some(Mla {
        kv_lora_rank,
        q_lora_rank: c.u32_opt("q_lora_rank")?.unwrap_or(0),
        qk_rope_head_dim: c.u32("qk_rope_head_dim")?,
        qk_nope_head_dim: c.u32("qk_nope_head_dim")?,
        v_head_dim: c.u32("v_head_dim")?,
    }))
}

/// The experts, by each family's names.
fn moe(c: &Config, family: &str) -> std::result::Result<Option<Moe>, String> {
    let experts = match c.u32_opt("num_local_experts")? {
        Some(e) => Some(e),
        None => match c.u32_opt("n_routed_experts")? {
            Some(e) => Some(e),
            None => c.u32_opt("num_experts")?,
        },
    };
    let Some(experts) = experts.filter(|&e| e > 0) else {
        return Ok(None);
    };
    let top_k = c.u32("num_experts_per_tok")?;
    let width = match c.u32_opt("moe_intermediate_size")? {
        Some(w) => w,
        None => c.u32("intermediate_size")?,
    };
    let shared = match (
        c.u32_opt("shared_expert_intermediate_size")?,
        c.u32_opt("n_shared_experts")?,
    ) {
        (Some(s), _) => s,
        (None, Some(n)) => n * width,
        // Llama 4: one shared expert as wide as the routed ones.
        (None, None) if family.starts_with("llama4") => width,
        (None, None) => 0,
    };
    let step = match c.u32_opt("interleave_moe_layer_step")? {
        Some(s) => s,
        None => c.u32_opt("decoder_sparse_step")?.unwrap_or(1),
    };
    Ok(Some(Moe {
        experts,
        top_k,
        expert_intermediate: width,
        shared_intermediate: shared,
        dense_layers: c.u32_opt("first_k_dense_replace")?.unwrap_or(0),
        moe_layer_step: step.max(1),
        shared_expert_gate: matches!(family, "qwen2_moe" | "qwen3_next") && shared > 0,
        expert_parallel: 1,
        biases: family == "gpt_oss",
        expert_bytes: match c.quant_method() {
            // 4-bit values and one 8-bit scale per 32.
            Some("mxfp4") => Some(0.53125),
            _ => None,
        },
    }))
}

/// The sliding-window layers: `layer_types` (`sliding_attention`), else Gemma's
/// `sliding_window_pattern` (every such-th layer full), else every layer when a window is
/// set and not switched off (`use_sliding_window: false`, Qwen2).
fn sliding_window(c: &Config, layers: u32) -> std::result::Result<Option<(u32, u32)>, String> {
    let Some(window) = c.u32_opt("sliding_window")? else {
        return Ok(None);
    };
    if c.bool("use_sliding_window") == Some(false) {
        return Ok(None);
    }
    let n = if let Some(n) = c.count_layer_type("sliding_attention") {
        n
    } else if let Some(p) = c.u32_opt("sliding_window_pattern")?.filter(|&p| p > 0) {
        layers - layers / p
    } else {
        layers
    };
    Ok((n > 0).then_some((window, n)))
}

/// Llama 4's chunked local attention: the RoPE layers (`no_rope_layers` 1) attend within
/// chunks of `attention_chunk_size`.
fn chunked_local(c: &Config) -> std::result::Result<Option<(u32, u32)>, String> {
    let Some(chunk) = c.u32_opt("attention_chunk_size")? else {
        return Ok(None);
    };
    let n = match c.get("no_rope_layers").and_then(|v| v.as_array()) {
        Some(list) => list.iter().filter(|v| v.as_u64() == Some(1)).count() as u32,
        None => return Err("`attention_chunk_size` is set but `no_rope_layers` is missing".into()),
    };
    Ok((n > 0).then_some((chunk, n)))
}

/// Qwen3-Next's Gated DeltaNet layers: all but every `full_attention_interval`-th (or the
/// `linear_attention` entries of `layer_types`).
fn linear_attention(
    c: &Config,
    layers: u32,
) -> std::result::Result<Option<LinearAttention>, String> {
    let Some(key_heads) = c.u32_opt("linear_num_key_heads")? else {
        return Ok(None);
    };
    let n = match c.count_layer_type("linear_attention") {
        Some(n) => n,
        None => {
            let every = c.u32("full_attention_interval")?.max(1);
            layers - layers / every
        }
    };
    Ok(Some(LinearAttention {
        layers: n,
        key_heads,
        value_heads: c.u32("linear_num_value_heads")?,
        key_head_dim: c.u32("linear_key_head_dim")?,
        value_head_dim: c.u32("linear_value_head_dim")?,
        conv_kernel: c.u32("linear_conv_kernel_dim")?,
    }))
}
