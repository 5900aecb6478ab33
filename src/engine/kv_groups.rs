//! KV cache groups, after vLLM 0.33's hybrid KV cache allocator
//! (`vllm/v1/core/kv_cache_planning.py`, `get_kv_cache_groups`).
//!
//! A model whose layers all attend the same way has one group holding every layer. A
//! hybrid model (sliding-window or chunked-local layers beside full ones) has one block
//! table per group: layers of a kind are split into groups of equal size (the smallest
//! kind's layer count, or the largest's when it is under 1.5 times the smallest, padding
//! the last group of a kind), so that every block of the shared pool is the same number
//! of bytes: `layers per group x page`, the page being one layer's `block_size` tokens.

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
}
