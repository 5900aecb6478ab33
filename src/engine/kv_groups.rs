//! KV cache groups, after vLLM 0.33's hybrid KV cache allocator
//! (`vllm/v1/core/kv_cache_planning.py`, `get_kv_cache_groups`).
//!
//! A model whose layers all attend the same way has one group holding every layer. A
//! hybrid model (sliding-window or chunked-local layers beside full ones) has one block
//! table per group: layers of a kind are split into groups of equal size (the smallest
//! kind's layer count, or the largest's when it is under 1.5 times the smallest, padding
//! the last group of a kind), so that every block of the shared pool is the same number
//! of bytes: `layers per group x page`, the page being one layer's `block_size` tokens.
//! Linear-attention layers (Qwen3-Next's Gated DeltaNet, vLLM's `MambaSpec`) keep a state
//! per request instead: their page is padded to an attention page, whose block size grows
//! until it holds one ([`MambaLayout`]).

use crate::model::{LayerAttention, Model};
use serde::Serialize;

/// How the layers of one replica's stage share the block pool.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct KvGroups {
    /// Each group's kind, in vLLM's group order (the kind of the first layer first).
    pub kinds: Vec<LayerAttention>,
    /// Layers per group (the last group of a kind may hold padding in their place).
    pub layers_per_group: u32,
}

impl KvGroups {
    /// vLLM's groups for the layers of `shard` (one stage on one GPU). With `hybrid` off
    /// (`--disable-hybrid-kv-cache-manager`), local layers are allocated as full ones
    /// (`unify_hybrid_kv_cache_specs`): one group, every layer, full-attention rules; the
    /// attention itself still reads only its window.
    pub fn plan(shard: &Model, hybrid: bool) -> KvGroups {
        let kinds = shard.layer_attention();
        if kinds.len() == 1 || !hybrid {
            return KvGroups {
                kinds: vec![if hybrid {
                    kinds[0].0
                } else {
                    LayerAttention::Full
                }],
                layers_per_group: shard.layers,
            };
        }
        // `_get_kv_cache_groups_uniform_page_size`.
        let min = kinds.iter().map(|k| k.1).min().expect("a kind");
        let max = kinds.iter().map(|k| k.1).max().expect("a kind");
        let size = if (max as f64) < min as f64 * 1.5 {
            max
        } else {
            min
        };
        let kinds = kinds
            .iter()
            .flat_map(|&(kind, n)| std::iter::repeat_n(kind, n.div_ceil(size) as usize))
            .collect();
        KvGroups {
            kinds,
            layers_per_group: size,
        }
    }

    /// True when there is more than one group.
    pub fn is_hybrid(&self) -> bool {
        self.kinds.len() > 1
    }

    /// Bytes of one pool block: one page per layer of a group
    /// (`_get_kv_cache_bytes_per_block`), a page holding `page_tokens_bytes` (one layer's
    /// block of tokens).
    pub fn bytes_per_block(&self, page_bytes: u64) -> u64 {
        self.layers_per_group as u64 * page_bytes
    }

    /// A short description: `1 group of 32 full-attention layers`, `2 groups of 18 layers
    /// (1 sliding window 128, 1 full)`.
    pub fn describe(&self) -> String {
        if !self.is_hybrid() {
            return format!("1 group of {} layers", self.layers_per_group);
        }
        let mut parts: Vec<(LayerAttention, usize)> = Vec::new();
        for &k in &self.kinds {
            match parts.iter_mut().find(|p| p.0 == k) {
                Some(p) => p.1 += 1,
                None => parts.push((k, 1)),
            }
        }
        let names: Vec<String> = parts
            .iter()
            .map(|&(k, n)| match k {
                LayerAttention::Full => format!("{n} full attention"),
                LayerAttention::SlidingWindow(w) => format!("{n} sliding window {w}"),
                LayerAttention::ChunkedLocal(c) => format!("{n} chunked local {c}"),
                LayerAttention::Linear => format!("{n} linear attention"),
            })
            .collect();
        format!(
            "{} groups of {} layers ({})",
            self.kinds.len(),
            self.layers_per_group,
            names.join(", ")
        )
    }
}

/// vLLM 0.33's smallest attention kernel block (FlashAttention's `MultipleOf(16)`), which
/// the block size of a model with linear attention is a multiple of.
pub const KERNEL_BLOCK_ALIGNMENT: u32 = 16;

/// Tokens between the Gated DeltaNet prefill's internal state checkpoints with the
/// FlashInfer GDN prefill kernel, vLLM 0.33's choice on Hopper
/// (`qwen_gdn_linear_attn.py`, `_checkpoint_alignment = 64`;
/// `platforms/interface.py`, `get_mamba_prefill_checkpoint_alignment`). With prefix
/// caching on (mamba cache mode "align") the block size is a multiple of it. The Triton
/// GDN backend has none (1), which gives 544 tokens instead of 576 for Qwen3-Next at TP 1.
pub const GDN_PREFILL_CHECKPOINT_ALIGNMENT: u32 = 64;

/// The block size and page of a model with linear-attention layers beside attention ones,
/// after vLLM 0.33's `HybridAttentionMambaModelConfig` / `Platform`
/// `_align_hybrid_block_size` (`platforms/interface.py`): the attention block grows until
/// one layer's page of it holds a linear-attention layer's state, and that state's page is
/// padded to the attention page, so that every group's block is the same bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct MambaLayout {
    /// Tokens per block of every group (the scheduler's and the hashes' block size).
    pub block_size: u32,
    /// Bytes of one layer's page in every group: `block_size` tokens of one attention
    /// layer, which a linear-attention layer's padded state fills.
    pub page_bytes: u64,
    /// One linear-attention layer's state before padding (convolution plus recurrent).
    pub state_bytes: u64,
    /// vLLM's mamba cache mode "align" (prefix caching on): a state block per
    /// `block_size` tokens, cacheable at block boundaries. Off ("none"): one state block
    /// per request for its whole life (`mamba_block_size = max_model_len`).
    pub align: bool,
}

impl MambaLayout {
    /// The layout for the layers of `shard` with `configured` tokens per block
    /// (`kv_cache.block_size`, the starting value), prefix caching on or off; `None`
    /// without linear attention. `checkpoint_alignment` is the GDN prefill's
    /// ([`GDN_PREFILL_CHECKPOINT_ALIGNMENT`]), used in align mode only.
    pub fn plan(
        shard: &Model,
        configured: u32,
        prefix_caching: bool,
        checkpoint_alignment: u32,
    ) -> Option<MambaLayout> {
        let (conv, ssm) = shard.linear_state_bytes_per_layer();
        let state = conv + ssm;
        if state == 0 || shard.linear_attention_layers() == shard.layers {
            return None;
        }
        let per_token = shard.kv_bytes_per_token_layer().max(1);
        let mut kab = KERNEL_BLOCK_ALIGNMENT.max(configured) as u64;
        if prefix_caching {
            kab = lcm(kab, checkpoint_alignment.max(1) as u64);
        }
        let attn = kab * state.div_ceil(kab * per_token);
        let attn = attn.div_ceil(KERNEL_BLOCK_ALIGNMENT as u64) * KERNEL_BLOCK_ALIGNMENT as u64;
        let block_size = (configured as u64).max(attn).min(u32::MAX as u64) as u32;
        Some(MambaLayout {
            block_size,
            page_bytes: block_size as u64 * per_token,
            state_bytes: state,
            align: prefix_caching,
        })
    }
}

impl MambaLayout {
    /// [`MambaLayout::plan`] for a scenario's `kv_cache` settings with the hybrid manager
    /// on or off (`hybrid`); an error when it is off for a model with linear attention,
    /// whose state vLLM cannot allocate as full-attention KV.
    pub fn for_scenario(
        shard: &Model,
        k: &crate::scenario::KvCacheSpec,
        hybrid: bool,
    ) -> crate::error::Result<Option<MambaLayout>> {
        let layout = MambaLayout::plan(
            shard,
            k.block_size,
            k.enable_prefix_caching,
            GDN_PREFILL_CHECKPOINT_ALIGNMENT,
        );
        if layout.is_some() && !hybrid {
            return Err(crate::error::Error::input(format!(
                "kv_cache.disable_hybrid_kv_cache_manager: {} has linear-attention layers, whose state vLLM 0.33 cannot allocate as full-attention KV (`unify_hybrid_kv_cache_specs` fails); leave it unset or false",
                shard.name
            )));
        }
        Ok(layout)
    }
}

/// Least common multiple.
fn lcm(a: u64, b: u64) -> u64 {
    let (mut x, mut y) = (a, b);
    while y != 0 {
        (x, y) = (y, x % y);
    }
    a / x.max(1) * b
}

#[cfg(test)]
mod tests {
    use super::*;

    fn groups(name: &str) -> KvGroups {
        KvGroups::plan(&Model::preset(name).unwrap(), true)
    }

    #[test]
    fn a_dense_model_has_one_group_of_every_layer() {
        let g = groups("llama-3.1-8b");
        assert_eq!(g.kinds, vec![LayerAttention::Full]);
        assert_eq!(g.layers_per_group, 32);
    }

    #[test]
    fn gpt_oss_has_a_sliding_and_a_full_group_of_18_layers() {
        let g = groups("gpt-oss-120b");
        assert_eq!(
            g.kinds,
            vec![LayerAttention::SlidingWindow(128), LayerAttention::Full]
        );
        assert_eq!(g.layers_per_group, 18);
        let off = KvGroups::plan(&Model::preset("gpt-oss-120b").unwrap(), false);
        assert_eq!(off.kinds, vec![LayerAttention::Full]);
        assert_eq!(off.layers_per_group, 36);
    }

    #[test]
    fn five_to_one_layers_split_into_groups_of_the_smaller_count() {
        // Gemma 3 27B's pattern: 52 sliding and 10 full layers -> 6 sliding groups
        // (the last padded by 8) and 1 full group, 10 layers each.
        let mut m = Model::preset("llama-3.1-8b").unwrap();
        m.layers = 62;
        m.arch.sliding_window = Some((1024, 52));
        let g = KvGroups::plan(&m, true);
        assert_eq!(g.layers_per_group, 10);
        assert_eq!(g.kinds.len(), 7);
        assert_eq!(g.kinds[6], LayerAttention::Full);
        // 12 sliding and 13 full (gpt-oss-20b with a draft layer): one group of 13 each.
        m.layers = 25;
        m.arch.sliding_window = Some((128, 12));
        let g = KvGroups::plan(&m, true);
        assert_eq!((g.kinds.len(), g.layers_per_group), (2, 13));
    }

    /// Qwen3-Next's 36 linear and 12 full layers: 3 linear groups and 1 full of 12; the
    /// block size and padded page of vLLM 0.33 (docs: `/work/mamba-notes.md` section 5.2).
    #[test]
    fn qwen3_next_aligns_its_block_to_the_linear_attention_state() {
        let m = Model::preset("qwen3-next-80b-a3b").unwrap();
        let g = KvGroups::plan(&m, true);
        assert_eq!(g.layers_per_group, 12);
        assert_eq!(
            g.kinds
                .iter()
                .filter(|&&k| k == LayerAttention::Linear)
                .count(),
            3
        );
        assert_eq!(g.kinds[3], LayerAttention::Full);
        assert_eq!(
            g.describe(),
            "4 groups of 12 layers (3 linear attention, 1 full attention)"
        );
        let a = GDN_PREFILL_CHECKPOINT_ALIGNMENT;
        let tp1 = MambaLayout::plan(&m, 16, true, a).unwrap();
        assert_eq!(
            (tp1.block_size, tp1.page_bytes, tp1.state_bytes),
            (576, 1_179_648, 1_097_728)
        );
        assert_eq!(g.bytes_per_block(tp1.page_bytes), 14_155_776);
        let tp4 = MambaLayout::plan(&m.shard(4, 1).unwrap(), 16, true, a).unwrap();
        assert_eq!(
            (tp4.block_size, tp4.page_bytes, tp4.state_bytes),
            (320, 327_680, 274_432)
        );
        assert_eq!(g.bytes_per_block(tp4.page_bytes), 3_932_160);
        // Prefix caching off ("none" mode): no checkpoint alignment.
        assert_eq!(MambaLayout::plan(&m, 16, false, a).unwrap().block_size, 544);
        let none4 = MambaLayout::plan(&m.shard(4, 1).unwrap(), 16, false, a).unwrap();
        assert_eq!(none4.block_size, 272);
        // A configured block is the starting value; the Triton GDN backend has no alignment.
        assert_eq!(
            MambaLayout::plan(&m, 1024, true, a).unwrap().block_size,
            1024
        );
        assert_eq!(MambaLayout::plan(&m, 16, true, 1).unwrap().block_size, 544);
        assert!(MambaLayout::plan(&Model::preset("llama-3.1-8b").unwrap(), 16, true, a).is_none());
    }
}
