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
    /// Architecture beyond a dense GQA transformer (mixture of experts, latent attention,
    /// sliding-window layers); all `None`/zero for a dense model.
    pub arch: Arch,
}

/// How a layer attends, as vLLM 0.33's KV cache specs tell the kinds apart
/// (`vllm/v1/kv_cache_interface.py`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
pub enum LayerAttention {
    /// To the whole context (`FullAttentionSpec`, `MLAAttentionSpec`).
    Full,
    /// To the last `window` tokens, itself included (`SlidingWindowSpec`).
    SlidingWindow(u32),
    /// To the tokens of its own chunk of `chunk` tokens (`ChunkedLocalAttentionSpec`).
    ChunkedLocal(u32),
    /// Through a fixed recurrent state per request instead of keys and values per token
    /// (linear attention, Qwen3-Next's Gated DeltaNet: `MambaSpec`).
    Linear,
}

/// What a model's `config.json` says beyond the dense GQA shape.
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize)]
pub struct Arch {
    /// Mixture of experts in the MLP.
    pub moe: Option<Moe>,
    /// Multi-head latent attention (DeepSeek) instead of per-head keys and values.
    pub mla: Option<Mla>,
    /// Sliding-window attention: the window in tokens, and how many of the layers use it
    /// (the others attend to the full context).
    pub sliding_window: Option<(u32, u32)>,
    /// Chunked local attention (Llama 4's `attention_chunk_size`): each token attends only
    /// to the tokens of its own chunk of this many; the chunk size and how many of the
    /// layers use it.
    pub chunked_local: Option<(u32, u32)>,
    /// Biases on the Q, K, V and output projections (`attention_bias`).
    pub attention_bias: bool,
    /// Biases on the Q, K and V projections only (Qwen2.5).
    pub qkv_bias: bool,
    /// One learned attention sink per query head and layer (gpt-oss).
    pub attention_sinks: bool,
    /// RMS norms on the queries and keys, one weight per head dimension (Qwen3).
    pub qk_norm: bool,
    /// Four RMS norms of `hidden` per layer instead of two: Gemma's pre- and post-attention
    /// and pre- and post-feedforward norms.
    #[serde(skip_serializing_if = "is_false")]
    pub sandwich_norms: bool,
    /// A sigmoid output gate on the attention (`attn_output_gate`, Qwen3-Next): the query
    /// projection also yields one gate per query element, doubling its width.
    #[serde(skip_serializing_if = "is_false")]
    pub attention_output_gate: bool,
    /// Linear-attention layers (Qwen3-Next's Gated DeltaNet) in place of some attention
    /// layers.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub linear_attention: Option<LinearAttention>,
    /// Weights of the vision encoder and its projector into the text model, which vLLM
    /// loads with a multimodal checkpoint (counted flat, from the checkpoint's
    /// `vision_config`; they do not run for text tokens); 0 for a text-only model.
    #[serde(skip_serializing_if = "is_zero")]
    pub vision_params: u64,
}

fn is_false(b: &bool) -> bool {
    !*b
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

fn is_one(n: &u32) -> bool {
    *n == 1
}

/// The experts of a mixture-of-experts MLP (`config.json` names in brackets).
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Moe {
    /// Routed experts (`num_local_experts`, `num_experts`, `n_routed_experts`).
    pub experts: u32,
    /// Experts each token is routed to (`num_experts_per_tok`).
    pub top_k: u32,
    /// Width of one expert's gated MLP (`moe_intermediate_size`, or `intermediate_size`
    /// where every layer is MoE).
    pub expert_intermediate: u32,
    /// Total width of the shared experts every token also runs (`n_shared_experts` times
    /// `moe_intermediate_size`, or `shared_expert_intermediate_size`); 0 for none.
    pub shared_intermediate: u32,
    /// Leading layers with a dense MLP of `intermediate` instead (`first_k_dense_replace`).
    pub dense_layers: u32,
    /// After the leading dense layers, every this-many-th layer is MoE and the others have a
    /// dense MLP of `intermediate` (Llama 4's `interleave_moe_layer_step`: layers
    /// `step - 1`, `2 step - 1`, ...); 1: every layer.
    #[serde(skip_serializing_if = "is_one")]
    pub moe_layer_step: u32,
    /// A sigmoid gate (one `hidden`-wide weight row) scaling the shared experts' output
    /// (`shared_expert_gate`, Qwen2-MoE and Qwen3-Next).
    #[serde(skip_serializing_if = "is_false")]
    pub shared_expert_gate: bool,
    /// GPUs the routed experts are split over as whole experts (vLLM's expert parallelism:
    /// each holds `ceil(experts / expert_parallel)` of them); 1 for a whole model, or one
    /// whose experts are sliced over the tensor-parallel ranks instead.
    #[serde(skip_serializing_if = "is_one")]
    pub expert_parallel: u32,
    /// Biases on the router and the experts (gpt-oss).
    pub biases: bool,
    /// Bytes per expert weight when the checkpoint stores experts in a format of their
    /// own (gpt-oss: MXFP4, 4-bit values and one 8-bit scale per 32: 0.53125), else the
    /// model's dtype.
    pub expert_bytes: Option<f64>,
}

/// Multi-head latent attention (`config.json` names).
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Mla {
    /// Rank of the compressed keys and values (`kv_lora_rank`).
    pub kv_lora_rank: u32,
    /// Rank of the compressed queries (`q_lora_rank`; 0: queries are not compressed).
    pub q_lora_rank: u32,
    /// Per-head dimension with rotary positions (`qk_rope_head_dim`), shared by all heads
    /// in the cached key.
    pub qk_rope_head_dim: u32,
    /// Per-head query/key dimension without rotary positions (`qk_nope_head_dim`).
    pub qk_nope_head_dim: u32,
    /// Per-head value dimension (`v_head_dim`).
    pub v_head_dim: u32,
}

/// Linear-attention layers: Qwen3-Next's Gated DeltaNet (`config.json` names in brackets).
/// Each keeps a fixed state per request, whatever its length, instead of keys and values per
/// token: a short causal convolution's last inputs and a recurrent matrix per value head.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct LinearAttention {
    /// Layers with linear attention; the others attend to the full context
    /// (`full_attention_interval`: every such-th layer attends fully).
    pub layers: u32,
    /// Query and key heads (`linear_num_key_heads`).
    pub key_heads: u32,
    /// Value heads (`linear_num_value_heads`).
    pub value_heads: u32,
    /// Dimension of a query or key head (`linear_key_head_dim`).
    pub key_head_dim: u32,
    /// Dimension of a value head (`linear_value_head_dim`).
    pub value_head_dim: u32,
    /// Taps of the causal convolution over the projected queries, keys and values
    /// (`linear_conv_kernel_dim`).
    pub conv_kernel: u32,
}

impl LinearAttention {
    /// Width of all query or key heads.
    fn key_dim(&self) -> u64 {
        self.key_heads as u64 * self.key_head_dim as u64
    }

    /// Width of all value heads.
    fn value_dim(&self) -> u64 {
        self.value_heads as u64 * self.value_head_dim as u64
    }

    /// Channels of the convolution: queries, keys and values.
    pub fn conv_dim(&self) -> u64 {
        2 * self.key_dim() + self.value_dim()
    }

    /// Weights of one layer, as vLLM 0.33 holds them
    /// (`qwen_gdn_linear_attn.py`): `in_proj_qkvz` (queries, keys, values and the output
    /// gate z, `hidden x (2 key + 2 value)`), `in_proj_ba` (the beta and alpha gates,
    /// `hidden x 2 value_heads`), `conv1d` (one filter of `conv_kernel` taps per channel),
    /// `dt_bias` and `A_log` (one per value head), the gated RMS norm (`value_head_dim`) and
    /// `out_proj` (`value x hidden`).
    pub fn params(&self, hidden: u32) -> u64 {
        let h = hidden as u64;
        let (k, v) = (self.key_dim(), self.value_dim());
        h * (2 * k + 2 * v)
            + h * 2 * self.value_heads as u64
            + self.conv_dim() * self.conv_kernel as u64
            + 2 * self.value_heads as u64
            + self.value_head_dim as u64
            + v * h
    }

    /// Elements of one layer's convolution state per request: the last `conv_kernel - 1`
    /// inputs of every channel (vLLM's `gated_delta_net_state_shape`, without speculative
    /// tokens).
    pub fn conv_state_elements(&self) -> u64 {
        self.conv_dim() * self.conv_kernel.saturating_sub(1) as u64
    }

    /// Elements of one layer's recurrent (SSM) state per request: a `value_head_dim x
    /// key_head_dim` matrix per value head.
    pub fn ssm_state_elements(&self) -> u64 {
        self.value_heads as u64 * self.value_head_dim as u64 * self.key_head_dim as u64
    }
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
    /// The dtype the checkpoint ships its weights in (`bf16` for most).
    dtype: &'static str,
    arch: Arch,
}

const DENSE: Arch = Arch {
    moe: None,
    mla: None,
    sliding_window: None,
    chunked_local: None,
    attention_bias: false,
    qkv_bias: false,
    attention_sinks: false,
    qk_norm: false,
    sandwich_norms: false,
    attention_output_gate: false,
    linear_attention: None,
    vision_params: 0,
};

/// A preset with the fields most share (to fill with struct update syntax).
const BASE: Preset = Preset {
    name: "",
    layers: 0,
    hidden: 0,
    heads: 0,
    kv_heads: 0,
    head_dim: 0,
    intermediate: 0,
    vocab: 0,
    max_position: 0,
    tie: false,
    dtype: "bf16",
    arch: DENSE,
};

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
        "mixtral-8x7b-v0.1" | "mixtral-8x7b-instruct-v0.1" => Some("mixtral-8x7b"),
        "qwen3-30b-a3b" => Some("qwen3-30b-a3b"),
        "qwen3-235b-a22b" => Some("qwen3-235b-a22b"),
        "gpt-oss-20b" => Some("gpt-oss-20b"),
        "gpt-oss-120b" => Some("gpt-oss-120b"),
        "deepseek-v3" => Some("deepseek-v3"),
        "deepseek-r1" => Some("deepseek-r1"),
        "gemma-3-12b-it" | "gemma-3-12b-pt" => Some("gemma-3-12b"),
        "gemma-3-27b-it" | "gemma-3-27b-pt" => Some("gemma-3-27b"),
        "llama-4-scout-17b-16e" | "llama-4-scout-17b-16e-instruct" => Some("llama-4-scout-17b-16e"),
        "llama-4-maverick-17b-128e" | "llama-4-maverick-17b-128e-instruct" => {
            Some("llama-4-maverick-17b-128e")
        }
        "qwen3-next-80b-a3b-instruct" | "qwen3-next-80b-a3b-thinking" => Some("qwen3-next-80b-a3b"),
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
        ..BASE
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
        ..BASE
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
        ..BASE
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
        ..BASE
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
        arch: Arch {
            qkv_bias: true,
            ..DENSE
        },
        ..BASE
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
        arch: Arch {
            qkv_bias: true,
            ..DENSE
        },
        ..BASE
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
        arch: Arch {
            qkv_bias: true,
            ..DENSE
        },
        ..BASE
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
        ..BASE
    },
    // mistralai/Mixtral-8x7B-v0.1: 46.7 B parameters.
    Preset {
        name: "mixtral-8x7b",
        layers: 32,
        hidden: 4096,
        heads: 32,
        kv_heads: 8,
        head_dim: 128,
        intermediate: 14336,
        vocab: 32000,
        max_position: 32768,
        arch: Arch {
            moe: Some(Moe {
                experts: 8,
                top_k: 2,
                expert_intermediate: 14336,
                ..ROUTED
            }),
            ..DENSE
        },
        ..BASE
    },
    // Qwen/Qwen3-30B-A3B: 30.5 B parameters, 3.3 B active.
    Preset {
        name: "qwen3-30b-a3b",
        layers: 48,
        hidden: 2048,
        heads: 32,
        kv_heads: 4,
        head_dim: 128,
        intermediate: 6144,
        vocab: 151936,
        max_position: 40960,
        arch: Arch {
            moe: Some(Moe {
                experts: 128,
                top_k: 8,
                expert_intermediate: 768,
                ..ROUTED
            }),
            qk_norm: true,
            ..DENSE
        },
        ..BASE
    },
    // Qwen/Qwen3-235B-A22B: 235 B parameters, 22 B active.
    Preset {
        name: "qwen3-235b-a22b",
        layers: 94,
        hidden: 4096,
        heads: 64,
        kv_heads: 4,
        head_dim: 128,
        intermediate: 12288,
        vocab: 151936,
        max_position: 40960,
        arch: Arch {
            moe: Some(Moe {
                experts: 128,
                top_k: 8,
                expert_intermediate: 1536,
                ..ROUTED
            }),
            qk_norm: true,
            ..DENSE
        },
        ..BASE
    },
    // openai/gpt-oss-20b: 20.9 B parameters; every other layer (the even ones) attends to a
    // 128-token window; experts in MXFP4.
    Preset {
        name: "gpt-oss-20b",
        layers: 24,
        hidden: 2880,
        heads: 64,
        kv_heads: 8,
        head_dim: 64,
        intermediate: 2880,
        vocab: 201088,
        max_position: 131072,
        arch: GPT_OSS_ARCH,
        ..BASE
    },
    // openai/gpt-oss-120b: 116.8 B parameters.
    Preset {
        name: "gpt-oss-120b",
        layers: 36,
        hidden: 2880,
        heads: 64,
        kv_heads: 8,
        head_dim: 64,
        intermediate: 2880,
        vocab: 201088,
        max_position: 131072,
        arch: Arch {
            moe: Some(Moe {
                experts: 128,
                ..GPT_OSS_MOE
            }),
            sliding_window: Some((128, 18)),
            ..GPT_OSS_ARCH
        },
        ..BASE
    },
    // deepseek-ai/DeepSeek-V3 (and DeepSeek-R1, the same shape): 671 B parameters without
    // the multi-token-prediction layer (which vLLM loads only for speculative decoding),
    // shipped in FP8.
    Preset {
        name: "deepseek-v3",
        ..DEEPSEEK_V3
    },
    Preset {
        name: "deepseek-r1",
        ..DEEPSEEK_V3
    },
    // google/gemma-3-12b-it (Gemma3ForConditionalGeneration; its `text_config`, which
    // vLLM's gemma3.py reads): 48 layers, all but every 6th (`sliding_window_pattern` 6:
    // layers 5, 11, ..., 47 attend fully) in a 1,024-token window: 40 sliding, 8 full; four
    // norms per layer and Q/K norms; tied embeddings; plus the vision tower vLLM loads with
    // it. 12,187,325,040 parameters (the Hugging Face safetensors total), 11,766,034,176 of
    // them the text decoder.
    Preset {
        name: "gemma-3-12b",
        layers: 48,
        hidden: 3840,
        heads: 16,
        kv_heads: 8,
        head_dim: 256,
        intermediate: 15360,
        vocab: 262208,
        max_position: 131072,
        tie: true,
        arch: Arch {
            sliding_window: Some((1024, 40)),
            vision_params: gemma3_vision(3840),
            ..GEMMA3_ARCH
        },
        ..BASE
    },
    // google/gemma-3-27b-it (as gemma-3-12b): 62 layers, 52 sliding and 10 full (layers 5,
    // 11, ..., 59). 27,432,406,640 parameters (the safetensors total), 27,009,346,304 of
    // them the text decoder.
    Preset {
        name: "gemma-3-27b",
        layers: 62,
        hidden: 5376,
        heads: 32,
        kv_heads: 16,
        head_dim: 128,
        intermediate: 21504,
        vocab: 262208,
        max_position: 131072,
        tie: true,
        arch: Arch {
            sliding_window: Some((1024, 52)),
            vision_params: gemma3_vision(5376),
            ..GEMMA3_ARCH
        },
        ..BASE
    },
    // meta-llama/Llama-4-Scout-17B-16E-Instruct (Llama4ForConditionalGeneration; its
    // `text_config`, as vLLM's llama4.py reads it): every layer MoE
    // (`interleave_moe_layer_step` 1) with 16 experts of `intermediate_size` 8,192, top 1,
    // and one shared expert of the same width; the RoPE layers (`no_rope_layers`: all but
    // every 4th) attend within chunks of `attention_chunk_size` 8,192 (36 layers), the NoPE
    // ones to the whole context (12); their QK norm (`use_qk_norm`) has no weights; plus the
    // vision encoder vLLM loads with it. 108,641,793,536 parameters (the Hugging Face
    // safetensors total; "109 B" on the model card), 107,769,861,120 of them the text model.
    Preset {
        name: "llama-4-scout-17b-16e",
        ..LLAMA4
    },
    // meta-llama/Llama-4-Maverick-17B-128E-Instruct (as Scout, and its `text_config`): 128
    // experts, every other layer MoE (`interleave_moe_layer_step` 2: layers 1, 3, ..., 47),
    // the others a dense MLP of `intermediate_size_mlp` 16,384; context 1,048,576.
    // 401,583,781,376 parameters (the safetensors total; "400 B" on the model card),
    // 400,711,848,960 of them the text model.
    Preset {
        name: "llama-4-maverick-17b-128e",
        max_position: 1_048_576,
        arch: Arch {
            moe: Some(Moe {
                experts: 128,
                moe_layer_step: 2,
                ..LLAMA4_MOE
            }),
            ..LLAMA4.arch
        },
        ..LLAMA4
    },
    // Qwen/Qwen3-Next-80B-A3B-Instruct (Qwen3NextForCausalLM, vLLM's qwen3_next.py): 48
    // layers, every 4th (`full_attention_interval` 4) gated attention (`attn_output_gate`:
    // the query projection also yields the gate; 16 heads, 2 KV heads of 256, Q/K norms),
    // the other 36 Gated DeltaNet linear attention; every layer MoE (`decoder_sparse_step`
    // 1, no `mlp_only_layers`): 512 experts of 512, top 10, one shared expert of 512 with
    // its sigmoid gate. 79,674,391,296 parameters without the multi-token-prediction layer
    // (which vLLM loads only for speculative decoding): the safetensors total 81,324,862,720
    // less its 1,650,471,424; "80 B" on the model card. `intermediate_size` 5,120 is unused
    // (no dense layers).
    Preset {
        name: "qwen3-next-80b-a3b",
        layers: 48,
        hidden: 2048,
        heads: 16,
        kv_heads: 2,
        head_dim: 256,
        intermediate: 5120,
        vocab: 151936,
        max_position: 262144,
        arch: Arch {
            moe: Some(Moe {
                experts: 512,
                top_k: 10,
                expert_intermediate: 512,
                shared_intermediate: 512,
                shared_expert_gate: true,
                ..ROUTED
            }),
            linear_attention: Some(LinearAttention {
                layers: 36,
                key_heads: 16,
                value_heads: 32,
                key_head_dim: 128,
                value_head_dim: 128,
                conv_kernel: 4,
            }),
            attention_output_gate: true,
            qk_norm: true,
            ..DENSE
        },
        ..BASE
    },
];

/// Gemma 3's attention and norms: Q/K norms and four norms per layer (`input_layernorm`,
/// `post_attention_layernorm`, `pre_feedforward_layernorm`, `post_feedforward_layernorm`).
const GEMMA3_ARCH: Arch = Arch {
    qk_norm: true,
    sandwich_norms: true,
    ..DENSE
};

/// The SigLIP vision tower of Gemma 3's multimodal checkpoints (`vision_config`: 27 layers of
/// width 1,152, MLP 4,304, 896-pixel images in 14-pixel patches, no pooling head), as
/// vLLM's siglip.py holds it: per layer the Q, K, V and output projections and the MLP, all
/// with biases, and two LayerNorms; the patch convolution (with bias), 4,096 position
/// embeddings and the final LayerNorm: 416,866,032 weights (SigLIP so400m's).
const SIGLIP_SO400M: u64 = 27
    * (4 * (1152 * 1152 + 1152) + (1152 * 4304 + 4304) + (4304 * 1152 + 1152) + 2 * 2 * 1152)
    + (3 * 14 * 14 * 1152 + 1152)
    + 4096 * 1152
    + 2 * 1152;

/// Gemma 3's vision tower and its projector into a text model of width `hidden`
/// (`mm_input_projection_weight`, 1,152 x `hidden`, and `mm_soft_emb_norm`, 1,152). vLLM
/// loads them with the checkpoint unless `--limit-mm-per-prompt` gives images 0.
const fn gemma3_vision(hidden: u64) -> u64 {
    SIGLIP_SO400M + 1152 * hidden + 1152
}

/// Llama 4's vision encoder and projector (the `vision_config` both checkpoints share: 34
/// layers of width 1,408, MLP 5,632, 336-pixel tiles in 14-pixel patches; pixel-shuffle
/// adapter 5,632 -> 4,096 -> 4,096 without biases; projector 4,096 -> 5,120 without), as
/// vLLM's mllama4.py holds them: per layer the fused QKV and output projections and the MLP,
/// all with biases, and two LayerNorms; the patch projection, the class embedding, 577
/// position embeddings and two LayerNorms. 871,932,416 weights, loaded unless
/// `--limit-mm-per-prompt` gives images 0.
const LLAMA4_VISION: u64 = 34
    * ((1408 * 3 * 1408 + 3 * 1408)
        + (1408 * 1408 + 1408)
        + (1408 * 5632 + 5632)
        + (5632 * 1408 + 1408)
        + 2 * 2 * 1408)
    + 3 * 14 * 14 * 1408
    + 1408
    + (24 * 24 + 1) * 1408
    + 2 * 2 * 1408
    + (5632 * 4096 + 4096 * 4096)
    + 4096 * 5120;

/// Llama 4 Scout's experts (`num_local_experts` 16, `num_experts_per_tok` 1,
/// `intermediate_size` 8,192, one shared expert of that width).
const LLAMA4_MOE: Moe = Moe {
    experts: 16,
    top_k: 1,
    expert_intermediate: 8192,
    shared_intermediate: 8192,
    ..ROUTED
};

/// Llama 4 Scout (Maverick differs in its experts and context).
const LLAMA4: Preset = Preset {
    name: "llama-4-scout-17b-16e",
    layers: 48,
    hidden: 5120,
    heads: 40,
    kv_heads: 8,
    head_dim: 128,
    // `intermediate_size_mlp`: the dense layers' MLP (Maverick's; Scout has none).
    intermediate: 16384,
    vocab: 202048,
    max_position: 10_485_760,
    arch: Arch {
        moe: Some(LLAMA4_MOE),
        chunked_local: Some((8192, 36)),
        vision_params: LLAMA4_VISION,
        ..DENSE
    },
    ..BASE
};

/// An MoE with routed experts only, every layer MoE, no biases, experts at the model's
/// dtype (to fill with struct update syntax).
const ROUTED: Moe = Moe {
    experts: 0,
    top_k: 0,
    expert_intermediate: 0,
    shared_intermediate: 0,
    dense_layers: 0,
    moe_layer_step: 1,
    shared_expert_gate: false,
    expert_parallel: 1,
    biases: false,
    expert_bytes: None,
};

const GPT_OSS_MOE: Moe = Moe {
    experts: 32,
    top_k: 4,
    expert_intermediate: 2880,
    biases: true,
    expert_bytes: Some(0.53125),
    ..ROUTED
};

const GPT_OSS_ARCH: Arch = Arch {
    moe: Some(GPT_OSS_MOE),
    sliding_window: Some((128, 12)),
    attention_bias: true,
    attention_sinks: true,
    ..DENSE
};

const DEEPSEEK_V3: Preset = Preset {
    name: "deepseek-v3",
    layers: 61,
    hidden: 7168,
    heads: 128,
    kv_heads: 128,
    head_dim: 192,
    intermediate: 18432,
    vocab: 129280,
    max_position: 163840,
    dtype: "fp8",
    arch: Arch {
        moe: Some(Moe {
            experts: 256,
            top_k: 8,
            expert_intermediate: 2048,
            shared_intermediate: 2048,
            dense_layers: 3,
            ..ROUTED
        }),
        mla: Some(Mla {
            kv_lora_rank: 512,
            q_lora_rank: 1536,
            qk_rope_head_dim: 64,
            qk_nope_head_dim: 128,
            v_head_dim: 128,
        }),
        ..DENSE
    },
    ..BASE
};

/// The values of `kv_cache.cache_dtype` ([`Model::with_kv_cache_dtype`]).
pub const KV_CACHE_DTYPES: &[&str] = &[
    "auto", "float16", "bfloat16", "fp16", "bf16", "fp8", "fp8_e4m3", "fp8_e5m2",
];

/// Largest accepted value of any shape field (keeps every derived product within `u64`).
const MAX_DIMENSION: u32 = 1 << 22;

/// Largest accepted `max_position` (Llama 4 Scout's 10,485,760 fits).
const MAX_CONTEXT: u32 = 1 << 24;

/// Names of the model presets.
pub fn preset_names() -> Vec<&'static str> {
    PRESETS.iter().map(|p| p.name).collect()
}

/// Bytes per element of an element type, under kvsim's and vLLM's names (`bf16`,
/// `bfloat16`, `fp16`, `float16`, `fp8`, `fp8_e4m3`, `fp8_e5m2`, `fp32`, `float32`).
pub fn element_bytes(dtype: &str) -> Option<u32> {
    match dtype {
        "fp8" | "fp8_e4m3" | "fp8_e5m2" => Some(1),
        "bf16" | "fp16" | "float16" | "bfloat16" => Some(2),
        "fp32" | "float32" => Some(4),
        _ => None,
    }
}

/// The weights' dtypes `model.dtype` takes.
const WEIGHT_DTYPES: &[&str] = &["bf16", "fp16", "fp8", "fp32"];

fn dtype_bytes(dtype: &str) -> Option<u32> {
    WEIGHT_DTYPES
        .contains(&dtype)
        .then(|| element_bytes(dtype))
        .flatten()
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
        if let Some(path) = &spec.hf_config {
            return Model::from_hf_config(path, spec);
        }
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
            let max = if field == "max_position" {
                MAX_CONTEXT
            } else {
                MAX_DIMENSION
            };
            if v == 0 || v > max {
                return Err(Error::input(format!(
                    "model.{field}: must be between 1 and {max} (got {v})"
                )));
            }
            Ok(v)
        };
        let dtype = spec
            .dtype
            .clone()
            .unwrap_or_else(|| preset.map_or("bf16", |p| p.dtype).to_string());
        let bytes = dtype_bytes(&dtype).ok_or_else(|| {
            Error::input(format!(
                "model.dtype: unknown dtype `{dtype}`; known: {}",
                WEIGHT_DTYPES.join(", ")
            ))
        })?;
        let mut m = Model {
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
            kv_dtype_bytes: 0, // set below: the compute dtype's
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
            arch: preset.map_or(DENSE, |p| p.arch),
        };
        m.kv_dtype_bytes = m.compute_bytes();
        if !m.heads.is_multiple_of(m.kv_heads) {
            return Err(Error::input(format!(
                "model.kv_heads: {} does not divide heads {}",
                m.kv_heads, m.heads
            )));
        }
        Ok(m)
    }

    /// The model a Hugging Face `config.json` describes ([`crate::hf_config`]), with the
    /// spec's `dtype` and `max_position`, if given, in place of the config's; the other
    /// shape fields and a preset are refused beside it.
    fn from_hf_config(path: &std::path::Path, spec: &ModelSpec) -> Result<Model> {
        let shape = [
            ("preset", spec.preset.is_some()),
            ("layers", spec.layers.is_some()),
            ("hidden", spec.hidden.is_some()),
            ("heads", spec.heads.is_some()),
            ("kv_heads", spec.kv_heads.is_some()),
            ("head_dim", spec.head_dim.is_some()),
            ("intermediate", spec.intermediate.is_some()),
            ("vocab", spec.vocab.is_some()),
            ("tie_embeddings", spec.tie_embeddings.is_some()),
        ];
        if let Some((field, _)) = shape.iter().find(|(_, set)| *set) {
            return Err(Error::input(format!(
                "model.{field}: give either model.hf_config or a preset or shape, not both"
            )));
        }
        let mut m = crate::hf_config::read(path)?;
        if let Some(dtype) = &spec.dtype {
            m.dtype_bytes = dtype_bytes(dtype).ok_or_else(|| {
                Error::input(format!(
                    "model.dtype: unknown dtype `{dtype}`; known: {}",
                    WEIGHT_DTYPES.join(", ")
                ))
            })?;
            m.dtype = dtype.clone();
            m.kv_dtype_bytes = m.compute_bytes();
        }
        if let Some(p) = spec.max_position {
            m.max_position = p;
        }
        m.check_shape(&format!("model.hf_config: {}", path.display()))?;
        Ok(m)
    }

    /// Dimensions in range and heads that split into KV groups; `origin` starts messages.
    fn check_shape(&self, origin: &str) -> Result<()> {
        for (field, v, max) in [
            ("num_hidden_layers", self.layers, MAX_DIMENSION),
            ("hidden_size", self.hidden, MAX_DIMENSION),
            ("num_attention_heads", self.heads, MAX_DIMENSION),
            ("num_key_value_heads", self.kv_heads, MAX_DIMENSION),
            ("head_dim", self.head_dim, MAX_DIMENSION),
            ("intermediate_size", self.intermediate, MAX_DIMENSION),
            ("vocab_size", self.vocab, MAX_DIMENSION),
            ("max_position_embeddings", self.max_position, MAX_CONTEXT),
        ] {
            if v == 0 || v > max {
                return Err(Error::input(format!(
                    "{origin}: `{field}` must be between 1 and {max} (got {v})"
                )));
            }
        }
        if !self.heads.is_multiple_of(self.kv_heads) {
            return Err(Error::input(format!(
                "{origin}: `num_key_value_heads` {} does not divide `num_attention_heads` {}",
                self.kv_heads, self.heads
            )));
        }
        let local = self.arch.sliding_window.map_or(0, |s| s.1)
            + self.arch.chunked_local.map_or(0, |c| c.1)
            + self.linear_attention_layers();
        if local > self.layers {
            return Err(Error::input(format!(
                "{origin}: {local} sliding-window, chunked-local and linear-attention layers are more than its {} layers",
                self.layers
            )));
        }
        if let Some(m) = self.arch.moe {
            if m.top_k == 0 || m.top_k > m.experts {
                return Err(Error::input(format!(
                    "{origin}: `num_experts_per_tok` {} must be between 1 and the {} experts",
                    m.top_k, m.experts
                )));
            }
        }
        Ok(())
    }

    /// The model with its KV cache stored as `cache_dtype`, one of vLLM 0.33's
    /// `--kv-cache-dtype` values kvsim models (`vllm/config/cache.py`, `CacheDType`):
    /// `auto` (the model's compute dtype: the weights', bf16 for an fp8 checkpoint),
    /// `float16`, `bfloat16` (2 bytes), `fp8`, `fp8_e4m3`,
    /// `fp8_e5m2` (1 byte; vLLM keeps one scale per layer, not per block, so a block holds
    /// exactly half the bytes of a 16-bit one).
    pub fn with_kv_cache_dtype(mut self, cache_dtype: &str) -> Result<Model> {
        let bytes = match cache_dtype {
            "auto" => self.compute_bytes(),
            d if KV_CACHE_DTYPES.contains(&d) => element_bytes(d).expect("a known element type"),
            other => {
                return Err(Error::input(format!(
                "kv_cache.cache_dtype: unknown or unmodelled KV cache dtype `{other}`; known: {}",
                KV_CACHE_DTYPES.join(", ")
            )))
            }
        };
        self.kv_dtype_bytes = bytes;
        self.kv_dtype = cache_dtype.to_string();
        Ok(self)
    }

    /// Bytes per element of the model's compute dtype: an fp8 checkpoint is quantized
    /// weights computed in bf16 (vLLM's `--dtype auto` then, and so its `auto` KV cache).
    pub fn compute_bytes(&self) -> u32 {
        self.dtype_bytes.max(2)
    }

    /// Weights of the fused QKV projection of one attention layer (with an output gate, the
    /// query projection's share is twice as wide).
    pub fn qkv_params(&self) -> u64 {
        let gate = if self.arch.attention_output_gate {
            2
        } else {
            1
        };
        let q = gate * self.heads as u64;
        self.hidden as u64 * (q + 2 * self.kv_heads as u64) * self.head_dim as u64
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

    /// Weights of one attention layer's attention: projections (with their biases and output
    /// gate), sinks and query/key norms; with MLA the compressed query and key/value paths and
    /// their norms. Linear-attention layers have their own ([`LinearAttention::params`]).
    pub fn attention_params(&self) -> u64 {
        let (h, q, kv, d) = (
            self.hidden as u64,
            self.heads as u64,
            self.kv_heads as u64,
            self.head_dim as u64,
        );
        let a = &self.arch;
        if let Some(m) = a.mla {
            let (ql, kl) = (m.q_lora_rank as u64, m.kv_lora_rank as u64);
            let (rope, nope, v) = (
                m.qk_rope_head_dim as u64,
                m.qk_nope_head_dim as u64,
                m.v_head_dim as u64,
            );
            let q_proj = if ql > 0 {
                h * ql + ql + ql * q * (nope + rope)
            } else {
                h * q * (nope + rope)
            };
            let kv_a = h * (kl + rope) + kl;
            let kv_b = kl * q * (nope + v);
            return q_proj + kv_a + kv_b + q * v * h;
        }
        let mut n = self.qkv_params() + self.o_params();
        if a.attention_bias {
            n += (q + 2 * kv) * d + h;
        } else if a.qkv_bias {
            n += (q + 2 * kv) * d;
        }
        if a.attention_sinks {
            n += q;
        }
        if a.qk_norm {
            n += 2 * d;
        }
        n
    }

    /// Layers whose MLP is a mixture of experts: after the leading dense layers, every
    /// `moe_layer_step`-th (all of them for most MoE models).
    pub fn moe_layers(&self) -> u32 {
        self.arch.moe.map_or(0, |m| {
            self.layers.saturating_sub(m.dense_layers) / m.moe_layer_step.max(1)
        })
    }

    /// Layers with linear attention (0 without).
    pub fn linear_attention_layers(&self) -> u32 {
        self.arch
            .linear_attention
            .map_or(0, |l| l.layers.min(self.layers))
    }

    /// Weights of the RMS norms: two of `hidden` per layer (four with
    /// [`Arch::sandwich_norms`]) and the final one.
    pub fn norm_params(&self) -> u64 {
        let per_layer = if self.arch.sandwich_norms { 4 } else { 2 };
        (per_layer * self.layers as u64 + 1) * self.hidden as u64
    }

    /// Weights of the routed experts of one MoE layer this model (or shard) holds: all of
    /// them, or with expert parallelism [`Model::local_experts`] of them (0 for a dense
    /// model).
    pub fn routed_expert_params(&self) -> u64 {
        self.local_experts() as u64 * self.expert_params()
    }

    /// Weights of one routed expert (gate, up and down, biases if any; 0 for a dense
    /// model).
    pub fn expert_params(&self) -> u64 {
        let Some(m) = self.arch.moe else { return 0 };
        let (h, e) = (self.hidden as u64, m.expert_intermediate as u64);
        let bias = if m.biases { 2 * e + h } else { 0 };
        3 * h * e + bias
    }

    /// Routed experts of one MoE layer this model (or shard) holds: all of them, or with
    /// expert parallelism over `n` GPUs `ceil(experts / n)` (vLLM's linear placement gives
    /// the remainder to the first ranks; the fullest one counts); 0 for a dense model.
    pub fn local_experts(&self) -> u32 {
        self.arch
            .moe
            .map_or(0, |m| m.experts.div_ceil(m.expert_parallel.max(1)))
    }

    /// Weights of one MoE layer's MLP besides the routed experts: router, shared experts and
    /// their gate.
    pub fn moe_other_params(&self) -> u64 {
        let Some(m) = self.arch.moe else { return 0 };
        let h = self.hidden as u64;
        let router = h * m.experts as u64 + if m.biases { m.experts as u64 } else { 0 };
        let gate = if m.shared_expert_gate { h } else { 0 };
        router + 3 * h * m.shared_intermediate as u64 + gate
    }

    /// Weights of one dense layer's MLP (gate, up and down).
    pub fn dense_mlp_params(&self) -> u64 {
        self.gate_up_params() + self.down_params()
    }

    /// Weights of the LM head.
    pub fn lm_head_params(&self) -> u64 {
        self.vocab as u64 * self.hidden as u64
    }

    /// All weights: layers (attention or linear attention, dense or MoE MLP, their norms),
    /// embeddings (twice unless tied), the final norm and the vision encoder, if any.
    pub fn total_params(&self) -> u64 {
        let emb = self.lm_head_params() * if self.tie_embeddings { 1 } else { 2 };
        let moe = self.moe_layers() as u64;
        let dense = self.layers as u64 - moe;
        let linear = self.linear_attention_layers() as u64;
        let attention = self.layers as u64 - linear;
        let linear_params = self
            .arch
            .linear_attention
            .map_or(0, |l| linear * l.params(self.hidden));
        attention * self.attention_params()
            + linear_params
            + dense * self.dense_mlp_params()
            + moe * (self.routed_expert_params() + self.moe_other_params())
            + emb
            + self.norm_params()
            + self.arch.vision_params
    }

    /// Weights one text token runs through: all but the routed experts it is not sent to
    /// and the vision encoder.
    pub fn active_params(&self) -> u64 {
        let text = self.total_params() - self.arch.vision_params;
        let Some(m) = self.arch.moe else {
            return text;
        };
        // A token's `top_k` experts, spread evenly over the expert-parallel GPUs.
        let active = self.expert_params() * m.top_k as u64 / m.expert_parallel.max(1) as u64;
        let idle = self.routed_expert_params().saturating_sub(active);
        text - self.moe_layers() as u64 * idle
    }

    /// The part of the model one GPU holds with tensor parallelism `tp` and pipeline
    /// parallelism `pp`, as vLLM splits it: query heads, MLP width and vocabulary divided by
    /// `tp`, KV heads divided by `tp` (replicated when `tp` exceeds them, one per GPU), and
    /// `ceil(layers / pp)` layers per stage. The stage keeps the embeddings and LM head
    /// (the first and last stages hold one each), so its weights are an upper bound.
    pub fn shard(&self, tp: u32, pp: u32) -> Result<Model> {
        self.shard_parallel(tp, pp, 1, false)
    }

    /// [`Model::shard`] for one GPU of a deployment with `dp` data-parallel engine cores
    /// of `tp x pp` GPUs each, as vLLM 0.33's `FusedMoEParallelConfig` splits a
    /// mixture-of-experts model over them: attention, dense MLPs, shared experts and
    /// embeddings as with `tp` alone (every core holds its copy); the routed experts over
    /// all `dp x tp` GPUs of a stage, sliced (each expert's width divided by `dp x tp`)
    /// or, with `expert_parallel`, whole (`ceil(experts / (dp x tp))` experts per GPU).
    /// A dense model's cores are plain copies: `dp` and `expert_parallel` change nothing.
    pub fn shard_parallel(
        &self,
        tp: u32,
        pp: u32,
        dp: u32,
        expert_parallel: bool,
    ) -> Result<Model> {
        let divides = |x: u32| tp > 0 && x.is_multiple_of(tp);
        let moe_gpus = tp * dp.max(1);
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
        if let Some(l) = self.arch.linear_attention {
            if !(divides(l.key_heads) && divides(l.value_heads)) {
                return Err(Error::input(format!(
                    "engine.tensor_parallel_size: {tp} must divide {}'s {} linear-attention key heads and {} value heads, which vLLM splits over the ranks",
                    self.name, l.key_heads, l.value_heads
                )));
            }
        }
        if let Some(m) = self.arch.moe {
            self.check_expert_split(m, tp, moe_gpus, expert_parallel)?;
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
            arch: Arch {
                moe: self.arch.moe.map(|m| Moe {
                    expert_intermediate: if expert_parallel {
                        m.expert_intermediate
                    } else {
                        m.expert_intermediate / moe_gpus
                    },
                    expert_parallel: if expert_parallel { moe_gpus } else { 1 },
                    shared_intermediate: m.shared_intermediate / tp,
                    ..m
                }),
                // A stage holds its share of each kind of layer (vLLM's stages interleave
                // them as the model does).
                sliding_window: self.arch.sliding_window.map(|(w, n)| (w, n.div_ceil(pp))),
                chunked_local: self.arch.chunked_local.map(|(c, n)| (c, n.div_ceil(pp))),
                linear_attention: self.arch.linear_attention.map(|l| LinearAttention {
                    layers: l.layers.div_ceil(pp),
                    key_heads: l.key_heads / tp,
                    value_heads: l.value_heads / tp,
                    ..l
                }),
                // vLLM splits the vision encoder's layers over the ranks too (its default
                // `mm_encoder_tp_mode: weights`); like the embeddings, every stage counts it.
                vision_params: self.arch.vision_params.div_ceil(tp as u64),
                ..self.arch
            },
            ..self.clone()
        })
    }

    /// Whether vLLM can split `m`'s experts over `moe_gpus` GPUs (`tp` of them in one
    /// core): sliced, every expert's width must divide; whole, there must be an expert per
    /// GPU. The shared experts split over `tp`.
    fn check_expert_split(&self, m: Moe, tp: u32, moe_gpus: u32, whole: bool) -> Result<()> {
        if !m.shared_intermediate.is_multiple_of(tp) {
            return Err(Error::input(format!(
                "engine.tensor_parallel_size: {tp} must divide {}'s shared-expert MLP width {}, which vLLM splits over the ranks",
                self.name, m.shared_intermediate
            )));
        }
        if whole && m.experts < moe_gpus {
            return Err(Error::input(format!(
                "engine.enable_expert_parallel: {}'s {} experts cannot be split whole over {moe_gpus} GPUs (data_parallel_size x tensor_parallel_size)",
                self.name, m.experts
            )));
        }
        if !whole && !m.expert_intermediate.is_multiple_of(moe_gpus) {
            return Err(Error::input(format!(
                "engine.tensor_parallel_size: {moe_gpus} GPUs (data_parallel_size x tensor_parallel_size) must divide {}'s expert MLP width {}, which vLLM slices over them without enable_expert_parallel",
                self.name, m.expert_intermediate
            )));
        }
        Ok(())
    }

    /// Bytes of all weights: the model's dtype, except experts stored in a format of
    /// their own ([`Moe::expert_bytes`]).
    pub fn weight_bytes(&self) -> u64 {
        match self.arch.moe.and_then(|m| m.expert_bytes) {
            Some(b) => {
                let experts = self.moe_layers() as u64 * self.routed_expert_params();
                (self.total_params() - experts) * self.dtype_bytes as u64
                    + (experts as f64 * b).ceil() as u64
            }
            None => self.total_params() * self.dtype_bytes as u64,
        }
    }

    /// Bytes of K and V for one token in one layer: per KV head a key and a value; with
    /// MLA one compressed latent plus the shared rotary key (vLLM caches them as one
    /// `kv_lora_rank + qk_rope_head_dim` vector, the same on every tensor-parallel rank).
    pub fn kv_bytes_per_token_layer(&self) -> u64 {
        let elements = match self.arch.mla {
            Some(m) => (m.kv_lora_rank + m.qk_rope_head_dim) as u64,
            None => 2 * self.kv_heads as u64 * self.head_dim as u64,
        };
        elements * self.kv_dtype_bytes as u64
    }

    /// The layers by how they attend, in the order vLLM's KV cache groups take them (the
    /// kind of the first layer first: linear attention, the local kinds, then full
    /// attention, MLA included, for every preset). Every layer is in exactly one entry;
    /// counts are never zero.
    pub fn layer_attention(&self) -> Vec<(LayerAttention, u32)> {
        let mut v = Vec::new();
        let mut local = 0;
        let linear = self.linear_attention_layers();
        if linear > 0 {
            v.push((LayerAttention::Linear, linear));
            local += linear;
        }
        if let Some((w, n)) = self.arch.sliding_window.filter(|&(_, n)| n > 0) {
            v.push((LayerAttention::SlidingWindow(w), n));
            local += n;
        }
        if let Some((c, n)) = self.arch.chunked_local.filter(|&(_, n)| n > 0) {
            v.push((LayerAttention::ChunkedLocal(c), n));
            local += n;
        }
        if self.layers > local {
            v.push((LayerAttention::Full, self.layers - local));
        }
        v
    }

    /// The attention layers by kind of KV cache, with the KV bytes one token takes in each
    /// layer of the kind: full attention, sliding window or chunked local attention (bytes
    /// per token while it is in the window or chunk), latent (MLA). Linear-attention layers
    /// keep a state per request instead ([`Model::state_layer_types`]).
    pub fn kv_layer_types(&self) -> Vec<(String, u32, u64)> {
        let per = self.kv_bytes_per_token_layer();
        self.layer_attention()
            .into_iter()
            .filter(|&(kind, _)| kind != LayerAttention::Linear)
            .map(|(kind, n)| {
                let name = match kind {
                    LayerAttention::Full if self.arch.mla.is_some() => {
                        "latent attention (MLA)".to_string()
                    }
                    LayerAttention::Full => "full attention".to_string(),
                    LayerAttention::SlidingWindow(w) => format!("sliding window of {w}"),
                    LayerAttention::ChunkedLocal(c) => format!("chunked local attention of {c}"),
                    LayerAttention::Linear => unreachable!("filtered out above"),
                };
                (name, n, per)
            })
            .collect()
    }

    /// The architecture features kvsim's engine does not model yet; empty for every preset
    /// now that linear attention has its KV cache groups (vLLM's `MambaManager`) and step
    /// cost. A scenario naming a model with one is refused.
    pub fn unmodelled_features(&self) -> Vec<&'static str> {
        Vec::new()
    }

    /// Bytes of K and V for one token across all attention layers (linear-attention layers
    /// keep none: [`Model::state_bytes_per_request`]).
    pub fn kv_bytes_per_token(&self) -> u64 {
        (self.layers - self.linear_attention_layers()) as u64 * self.kv_bytes_per_token_layer()
    }

    /// Bytes of one linear-attention layer's state per request, whatever its length: the
    /// convolution state and the recurrent (SSM) state, both in the compute dtype as vLLM
    /// 0.33 allocates them with its default `--mamba-cache-dtype auto` and
    /// `--mamba-ssm-cache-dtype auto` (`MambaStateDtypeCalculator.gated_delta_net_state_dtype`;
    /// `--kv-cache-dtype` does not apply); (0, 0) without linear attention.
    pub fn linear_state_bytes_per_layer(&self) -> (u64, u64) {
        let b = self.compute_bytes() as u64;
        self.arch.linear_attention.map_or((0, 0), |l| {
            (l.conv_state_elements() * b, l.ssm_state_elements() * b)
        })
    }

    /// Bytes of state one request holds across all linear-attention layers (0 without).
    pub fn state_bytes_per_request(&self) -> u64 {
        let (conv, ssm) = self.linear_state_bytes_per_layer();
        self.linear_attention_layers() as u64 * (conv + ssm)
    }

    /// The layers that keep a fixed state per request instead of KV per token, with the
    /// bytes of one request's state in each layer of the kind (linear attention); empty for
    /// attention-only models.
    pub fn state_layer_types(&self) -> Vec<(String, u32, u64)> {
        let (conv, ssm) = self.linear_state_bytes_per_layer();
        self.layer_attention()
            .into_iter()
            .filter(|&(kind, _)| kind == LayerAttention::Linear)
            .map(|(_, n)| {
                (
                    "linear attention (Gated DeltaNet)".to_string(),
                    n,
                    conv + ssm,
                )
            })
            .collect()
    }

    /// FLOPs of the linear layers and LM head for one token (2 per multiply-add), without
    /// attention scores.
    pub fn linear_flops_per_token(&self) -> u64 {
        // Active weights but the embedding lookup and the norms (biases, sinks, QK norms and
        // linear attention's gates and norm stay in: a negligible overcount; its convolution
        // is one multiply-add per weight and token too). For a dense model without them this
        // is `2 (layers (qkv + o + gate_up + down) + lm_head)`.
        let emb = self.lm_head_params() * if self.tie_embeddings { 0 } else { 1 };
        2 * (self.active_params() - emb - self.norm_params())
    }

    /// Attention FLOPs (QK^T and PV) for one query token against `context` keys in one layer.
    pub fn attention_flops(&self, context: u64) -> u64 {
        match self.arch.mla {
            // Scores over the nope and rope dimensions, values of v_head_dim.
            Some(m) => {
                let qk = (m.qk_nope_head_dim + m.qk_rope_head_dim + m.v_head_dim) as u64;
                2 * self.heads as u64 * qk * context
            }
            None => 4 * self.heads as u64 * self.head_dim as u64 * context,
        }
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
    /// Parameters one text token runs through: all but the routed experts it is not sent to
    /// and the vision encoder (the embedding table included, as Mistral, Qwen and DeepSeek
    /// count active parameters; OpenAI's gpt-oss figures leave it out).
    pub active_params: u64,
    /// Bytes of all weights at the weights' dtype.
    pub weight_bytes: u64,
    /// Per attention layer type: (type, layers, KV bytes per token and layer).
    pub kv_layer_types: Vec<(String, u32, u64)>,
    /// KV bytes per token over all attention layers.
    pub kv_bytes_per_token: u64,
    /// Per layer type that keeps a fixed state per request instead (linear attention):
    /// (type, layers, state bytes per request and layer); absent for attention-only models.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub state_layer_types: Vec<(String, u32, u64)>,
    /// State bytes per request over those layers, whatever the request's length.
    #[serde(skip_serializing_if = "is_zero")]
    pub state_bytes_per_request: u64,
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
    /// One GPU's state bytes per request at that size.
    #[serde(skip_serializing_if = "is_zero")]
    pub shard_state_bytes_per_request: u64,
}

impl ModelReport {
    /// The report of `model`, with its shard at tensor parallelism `tp`.
    pub fn new(model: &Model, tp: u32) -> Result<ModelReport> {
        let shard = model.shard(tp, 1)?;
        Ok(ModelReport {
            params: model.total_params(),
            active_params: model.active_params(),
            weight_bytes: model.weight_bytes(),
            kv_layer_types: model.kv_layer_types(),
            kv_bytes_per_token: model.kv_bytes_per_token(),
            state_layer_types: model.state_layer_types(),
            state_bytes_per_request: model.state_bytes_per_request(),
            linear_flops_per_token: model.linear_flops_per_token(),
            attention_flops_per_key: model.attention_flops(1),
            tp,
            shard_weight_bytes: shard.weight_bytes(),
            shard_kv_bytes_per_token: shard.kv_bytes_per_token(),
            shard_state_bytes_per_request: shard.state_bytes_per_request(),
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
        if let Some(a) = m.arch.mla {
            writeln!(
                f,
                "  latent attention: KV rank {}, query rank {}, rope {}, nope {}, value {} per head",
                a.kv_lora_rank, a.q_lora_rank, a.qk_rope_head_dim, a.qk_nope_head_dim, a.v_head_dim
            )?;
        }
        if let Some(a) = m.arch.linear_attention {
            writeln!(
                f,
                "  linear attention (Gated DeltaNet): {} layers, {} query/key heads of {}, {} value heads of {}, convolution of {} taps",
                m.linear_attention_layers(),
                a.key_heads,
                a.key_head_dim,
                a.value_heads,
                a.value_head_dim,
                a.conv_kernel
            )?;
        }
        if let Some(e) = m.arch.moe {
            writeln!(
                f,
                "  experts: {} routed, top {}, width {}; shared width {}{}; {} dense leading layers{}{}",
                e.experts,
                e.top_k,
                e.expert_intermediate,
                e.shared_intermediate,
                if e.shared_expert_gate { " (gated)" } else { "" },
                e.dense_layers,
                if e.moe_layer_step > 1 {
                    format!(
                        "; one layer in {} MoE ({} of {}), the others dense",
                        e.moe_layer_step,
                        m.moe_layers(),
                        m.layers
                    )
                } else {
                    String::new()
                },
                match e.expert_bytes {
                    Some(b) => format!("; experts stored at {b} bytes per weight"),
                    None => String::new(),
                }
            )?;
        }
        if m.arch.vision_params > 0 {
            writeln!(
                f,
                "  vision encoder: {:.3} B parameters, loaded with the checkpoint (run for images only)",
                m.arch.vision_params as f64 / 1e9
            )?;
        }
        writeln!(
            f,
            "  weights: {:.3} B parameters ({:.3} B active per token), {:.2} GiB at {} ({} bytes)",
            self.params as f64 / 1e9,
            self.active_params as f64 / 1e9,
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
        if !self.state_layer_types.is_empty() {
            let (conv, ssm) = m.linear_state_bytes_per_layer();
            writeln!(
                f,
                "  state per request, fixed whatever its length (mamba cache dtype auto = {}):",
                if m.compute_bytes() == m.dtype_bytes {
                    m.dtype.clone()
                } else {
                    "bf16".to_string()
                }
            )?;
            for (kind, layers, bytes) in &self.state_layer_types {
                writeln!(
                    f,
                    "    {kind}: {layers} layers x {bytes} bytes (convolution {conv} + recurrent {ssm}) = {}",
                    *layers as u64 * bytes
                )?;
            }
            writeln!(f, "    total: {} bytes", self.state_bytes_per_request)?;
        }
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
        )?;
        if self.shard_state_bytes_per_request > 0 {
            write!(
                f,
                ", {} state bytes per request",
                self.shard_state_bytes_per_request
            )?;
        }
        let missing = m.unmodelled_features();
        if !missing.is_empty() {
            write!(
                f,
                "\n  not yet simulated by kvsim run: {} (described here only)",
                missing.join(", ")
            )?;
        }
        Ok(())
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

    /// Published parameter counts (model cards) and the KV bytes per token by hand from
    /// each `config.json`, at the checkpoint's dtype (`auto` KV: bf16).
    #[test]
    fn new_architecture_presets_match_published_sizes_and_hand_kv_bytes() {
        let cases: [(&str, f64, u64); 7] = [
            // 32 layers x 2 x 8 KV heads x 128 x 2 bytes
            ("mixtral-8x7b", 46.7e9, 32 * 2 * 8 * 128 * 2),
            // 48 x 2 x 4 x 128 x 2
            ("qwen3-30b-a3b", 30.5e9, 48 * 2 * 4 * 128 * 2),
            // 94 x 2 x 4 x 128 x 2
            ("qwen3-235b-a22b", 235e9, 94 * 2 * 4 * 128 * 2),
            // 24 x 2 x 8 x 64 x 2 (half the layers in a 128-token window)
            ("gpt-oss-20b", 20.91e9, 24 * 2 * 8 * 64 * 2),
            ("gpt-oss-120b", 116.83e9, 36 * 2 * 8 * 64 * 2),
            // 61 layers x (kv_lora_rank 512 + qk_rope_head_dim 64) x 2 bytes
            ("deepseek-v3", 671e9, 61 * (512 + 64) * 2),
            ("deepseek-r1", 671e9, 61 * (512 + 64) * 2),
        ];
        for (name, published, kv) in cases {
            let m = preset(name);
            let p = m.total_params() as f64;
            assert!(
                (p / published - 1.0).abs() < 0.01,
                "{name}: {p} vs {published}"
            );
            assert_eq!(m.kv_bytes_per_token(), kv, "{name}");
        }
        // gpt-oss ships its experts in MXFP4 (4.25 bits): 65.2 GB for 120b, not 234 GB.
        let oss = preset("gpt-oss-120b");
        assert!(
            (oss.weight_bytes() as f64 / 1e9 - 65.2).abs() < 0.2,
            "{}",
            oss.weight_bytes()
        );
        // OpenAI's active counts (5.13 B, 3.61 B) leave out the embedding table.
        for (name, active) in [("gpt-oss-120b", 5.13e9), ("gpt-oss-20b", 3.61e9)] {
            let m = preset(name);
            let a = (m.active_params() - m.lm_head_params()) as f64;
            assert!((a / active - 1.0).abs() < 0.01, "{name}: {a}");
        }
        // DeepSeek-V3 is an fp8 checkpoint: weights at 1 byte, KV (auto) in bf16.
        let ds = preset("deepseek-v3");
        assert_eq!((ds.dtype_bytes, ds.kv_dtype_bytes), (1, 2));
        // The MLA latent is the same on every TP rank; experts split their width.
        let shard = ds.shard(8, 1).unwrap();
        assert_eq!(shard.kv_bytes_per_token(), ds.kv_bytes_per_token());
        assert_eq!(shard.arch.moe.unwrap().expert_intermediate, 256);
        assert!(preset("mixtral-8x7b").unmodelled_features().is_empty());
        assert!(preset("gpt-oss-20b").unmodelled_features().is_empty());
        assert!(preset("deepseek-v3").unmodelled_features().is_empty());
        assert!(preset("llama-3.1-8b").unmodelled_features().is_empty());
    }

    #[test]
    fn interleaved_moe_layers_follow_the_step_and_the_pipeline_stages() {
        let m = preset("llama-4-maverick-17b-128e");
        assert_eq!(m.moe_layers(), 24);
        // 24 and 16 layers per stage: every other one MoE.
        assert_eq!(m.shard(1, 2).unwrap().moe_layers(), 12);
        assert_eq!(m.shard(1, 3).unwrap().moe_layers(), 8);
        assert_eq!(preset("llama-4-scout-17b-16e").moe_layers(), 48);
        // Leading dense layers, then every layer (step 1).
        assert_eq!(preset("deepseek-v3").moe_layers(), 58);
        assert!(preset("llama-4-scout-17b-16e")
            .unmodelled_features()
            .is_empty());
        assert!(preset("qwen3-next-80b-a3b")
            .unmodelled_features()
            .is_empty());
    }

    #[test]
    fn context_length_may_exceed_the_shape_limit_up_to_its_own() {
        let spec = |max_position| ModelSpec {
            preset: Some("llama-3.1-8b".into()),
            max_position: Some(max_position),
            ..Default::default()
        };
        assert!(Model::from_spec(&spec(10_485_760)).is_ok());
        let err = Model::from_spec(&spec((1 << 24) + 1))
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("model.max_position: must be between 1 and 16777216"),
            "{err}"
        );
        assert_eq!(preset("llama-4-scout-17b-16e").max_position, 10_485_760);
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
