//! Decode attention as FlashAttention 2's split-KV kernel runs it (flash-attn 2.5,
//! `csrc/flash_attn/flash_api.cpp`: `set_params_splitkv` and `num_splits_heuristic`; the
//! kernel vLLM 0.33 runs on Ampere and Ada). Formulas and the fit in `docs/cost-model.md`,
//! "Decode attention with split KV".
//!
//! - With one query per sequence and more query heads than KV heads, FlashAttention folds
//!   each KV head's query group into the rows of one tile (`seqlenq_ngroups_swapped`): the
//!   grid has `sequences x KV heads x ceil(group / 64)` row blocks, each reading one KV
//!   head's keys and values. Otherwise one row block per sequence and query head.
//! - The keys, in blocks of `block_n` (256 for head size up to 64, 128 up to 128, else 64)
//!   up to the kernel's longest key length, are split `s` ways, `s` chosen by
//!   [`num_splits`]; each split reads `ceil(blocks / s)` blocks of its sequence, and a
//!   split past a sequence's last key has nothing to read.
//! - Time: the floor, plus one wave time per wave of thread blocks after the first (two
//!   resident per SM), plus the reading: the working blocks in rounds of two per SM, each
//!   round the longer of its share of the bytes through HBM and its busiest SM's blocks at
//!   one SM's bandwidth (no less than the compute time); plus the combine kernel when
//!   `s > 1`.

use super::Roofline;
use crate::cost::SeqWork;

/// Thread blocks of the split-KV kernel resident on one SM (four warps and about 80 KB of
/// shared memory for head size 128; later flash-attn versions hard-code this factor).
const BLOCKS_PER_SM: f64 = 2.0;

/// Query rows of one split-KV tile (`kBlockM`).
const TILE_ROWS: u32 = 64;

/// Most splits the heuristic considers.
const MAX_SPLITS: u32 = 128;

/// Key block (`kBlockN`) of the split-KV kernel for this head size.
pub fn key_block(head_dim: u32) -> u32 {
    if head_dim <= 64 {
        256
    } else if head_dim <= 128 {
        128
    } else {
        64
    }
}

/// The number of splits FlashAttention 2 chooses for `row_blocks` (sequences x heads x
/// row tiles) on `sms` SMs with `key_blocks` key blocks: one if the row blocks almost fill
/// the SMs (at least 0.8 of them); otherwise, among the split counts up to
/// `min(128, sms, key_blocks)` that change the blocks per split, the smallest whose wave
/// efficiency (`waves / ceil(waves)`, `waves = row_blocks x s / sms`) is at least 0.85 of
/// the best.
pub fn num_splits(row_blocks: u32, sms: u32, key_blocks: u32) -> u32 {
    if row_blocks as f32 >= 0.8 * sms as f32 {
        return 1;
    }
    let max_splits = MAX_SPLITS.min(sms).min(key_blocks);
    let per_split = |s: u32| key_blocks.div_ceil(s);
    let eligible = |s: u32| s == 1 || per_split(s) != per_split(s - 1);
    let efficiency = |s: u32| {
        let waves = (row_blocks * s) as f32 / sms as f32;
        waves / waves.ceil()
    };
    let best = (1..=max_splits)
        .filter(|&s| eligible(s))
        .map(efficiency)
        .fold(0.0f32, f32::max);
    (1..=max_splits)
        .find(|&s| eligible(s) && efficiency(s) as f64 >= 0.85 * best as f64)
        .unwrap_or(1)
}

/// The launch of one layer's split-KV decode kernel over some sequences.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SplitLaunch {
    /// Splits of the keys ([`num_splits`]).
    pub splits: u32,
    /// Thread blocks launched (row blocks x splits).
    pub blocks: u32,
    /// Thread blocks with keys to read.
    pub working_blocks: u32,
    /// Keys read by the longest working block.
    pub longest_keys: f64,
}

impl Roofline {
    /// Row blocks per sequence: `KV heads x ceil(group / 64)` for grouped queries (the
    /// group folded into a tile's rows, each block reading one KV head), else one per
    /// query head.
    fn split_rows_per_seq(&self) -> u32 {
        let (q, kv) = (self.model.heads.max(1), self.model.kv_heads.max(1));
        if q > kv {
            kv * (q / kv).div_ceil(TILE_ROWS)
        } else {
            q
        }
    }

    /// How FlashAttention 2 launches the split-KV kernel for these decodes (each with
    /// `context + 1` keys), the kernel sized for `kv_len` keys (unset: the longest
    /// sequence's, as vLLM passes `max_seqlen_k`).
    pub fn split_launch(&self, decodes: &[SeqWork], kv_len: Option<u32>) -> SplitLaunch {
        let block = key_block(self.model.head_dim) as f64;
        let longest = decodes.iter().map(|s| s.context + 1).max().unwrap_or(0);
        let key_blocks = (kv_len.unwrap_or(longest) as f64 / block).ceil().max(1.0) as u32;
        let rows = self.split_rows_per_seq();
        let row_blocks = rows.saturating_mul(decodes.len() as u32);
        let splits = num_splits(row_blocks, self.gpu.sms.max(1), key_blocks);
        let keys_per_split = key_blocks.div_ceil(splits) as f64 * block;
        let working: f64 = decodes
            .iter()
            .map(|s| ((s.context + 1) as f64 / keys_per_split).ceil())
            .sum();
        SplitLaunch {
            splits,
            blocks: row_blocks.saturating_mul(splits),
            working_blocks: (working * rows as f64) as u32,
            longest_keys: keys_per_split.min(longest as f64),
        }
    }

    /// One full-attention layer of decode attention as the split-KV kernel, nanoseconds
    /// (module doc), the kernel sized for `kv_len` keys (unset: the longest sequence's).
    pub fn split_kv_decode_ns(&self, decodes: &[SeqWork], kv_len: Option<u32>) -> f64 {
        if decodes.is_empty() {
            return 0.0;
        }
        let e = &self.eff;
        let launch = self.split_launch(decodes, kv_len);
        let sms = self.gpu.sms.max(1) as f64;
        let waves = (launch.blocks as f64 / (BLOCKS_PER_SM * sms))
            .ceil()
            .max(1.0);
        let w = self.decode_attention_work(crate::model::LayerAttention::Full, decodes);
        let compute = self.compute_s(w.flops, e.attention_compute);
        let key_bytes = 2.0 * self.model.head_dim as f64 * self.model.kv_dtype_bytes as f64;
        let block_bytes = launch.longest_keys * key_bytes;
        let working = (launch.working_blocks as f64).max(1.0);
        // The working blocks run in rounds of two per SM; a round takes the longer of its
        // share of the bytes through HBM and its busiest SM's blocks at one SM's bandwidth.
        let round = |n: f64| {
            let memory = self.memory_s(w.bytes * n / working, self.attention_memory);
            let sm = (n / sms).ceil() * block_bytes / (e.decode_split_sm_gbps * 1e9);
            memory.max(sm)
        };
        let slots = BLOCKS_PER_SM * sms;
        let full = (working / slots).floor();
        let rest = working - full * slots;
        let mut reading = full * round(slots);
        if rest > 0.0 {
            reading += round(rest);
        }
        let combine = if launch.splits > 1 {
            e.decode_split_combine_us
        } else {
            0.0
        };
        (e.decode_split_floor_us + (waves - 1.0) * e.decode_split_wave_us + combine) * 1e3
            + reading.max(compute) * 1e9
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hardware::Gpu;
    use crate::scenario::Efficiency;

    /// Llama-2-70B's attention at TP 2 (32 query and 4 KV heads per GPU, head size 128),
    /// as in Vidur's A100 attention file.
    fn llama70_tp2(gpu: &str) -> Roofline {
        let m = crate::model::Model::preset("llama-2-70b").unwrap();
        let shard = m.shard(2, 1).unwrap();
        assert_eq!((shard.heads, shard.kv_heads, shard.head_dim), (32, 4, 128));
        Roofline::new(
            &shard,
            &Gpu::preset(gpu).unwrap(),
            &Efficiency::default(),
            0.0,
            0.0,
        )
    }

    fn seqs(n: usize, context: u32) -> Vec<SeqWork> {
        vec![
            SeqWork {
                new_tokens: 1,
                context
            };
            n
        ]
    }

    #[test]
    fn the_heuristic_by_hand() {
        // 16 sequences x 4 KV heads = 64 row blocks on 108 SMs, 32 key blocks (4096 keys):
        // eligible splits 1-8, 11, 16, 32; waves 64 s / 108; efficiencies 0.59, 0.59,
        // 0.89, 0.79, 0.99, ... the best 0.998 (s = 32), so the first at 0.85 of it: 3.
        assert_eq!(num_splits(64, 108, 32), 3);
        // 7 sequences: 28 row blocks; s = 3: 0.78, s = 4: 1.04 waves -> 0.52, s = 7: 196 /
        // 108 = 1.81 -> 0.91, s = 11: 308 / 108 = 2.85 -> 0.95, s = 16: 448 / 108 = 4.15 ->
        // 0.83, s = 32: 896 / 108 = 8.30 -> 0.92; the best 0.95, first at 0.81: s = 7.
        assert_eq!(num_splits(28, 108, 32), 7);
        // 22 x 4 = 88 >= 0.8 x 108: no split.
        assert_eq!(num_splits(88, 108, 32), 1);
        assert_eq!(num_splits(84, 108, 32), 5);
        // One key block: nothing to split.
        assert_eq!(num_splits(4, 108, 1), 1);
        // One sequence: the best efficiency is 0.59 (16 and 32 splits, 64 / 108 and 1.19
        // waves), the first within 0.85 of it 16.
        assert_eq!(num_splits(4, 108, 32), 16);
    }

    #[test]
    fn key_blocks_by_head_size() {
        assert_eq!(key_block(64), 256);
        assert_eq!(key_block(128), 128);
        assert_eq!(key_block(256), 64);
    }

    #[test]
    fn launch_of_a_grouped_query_batch() {
        let r = llama70_tp2("a100-80gb");
        // 16 sequences of 1000 keys (context 999), the kernel sized for 4096 keys: 3
        // splits of 11 blocks (1408 keys): only the first split of each row block works.
        let l = r.split_launch(&seqs(16, 999), Some(4096));
        assert_eq!(
            l,
            SplitLaunch {
                splits: 3,
                blocks: 192,
                working_blocks: 64,
                longest_keys: 1000.0,
            }
        );
        // Sized by the longest sequence (8 key blocks): 64 row blocks, eligible splits
        // 1-4 and 8; 2 splits -> 1.19 waves (0.59), 3 -> 1.78 (0.89), 4 -> 2.37 (0.79), 8
        // -> 4.74 (0.95): 3 splits of 3 blocks, each sequence's three working.
        let l = r.split_launch(&seqs(16, 999), None);
        assert_eq!(
            (l.splits, l.working_blocks, l.longest_keys),
            (3, 192, 384.0)
        );
    }

    #[test]
    fn time_by_hand() {
        let r = llama70_tp2("a100-80gb");
        let e = Efficiency::default();
        let per_sm = e.decode_split_sm_gbps * 1e9;
        // 27 sequences of 4032 keys: 108 row blocks, no split, one wave and one round; one
        // block per SM reading 4032 x 512 bytes at 21.7 GB/s = 95.1 us; all 27 x 4 x 4032 x
        // 512 bytes (plus queries and outputs) at 0.78 x 2039 GB/s = 140.0 us: HBM bound.
        let s = seqs(27, 4031);
        let kv = 27.0 * 4.0 * 4032.0 * 512.0;
        let q = 27.0 * 2.0 * 32.0 * 128.0 * 2.0;
        let want = e.decode_split_floor_us * 1e3 + (kv + q) / (0.78 * 2039e9) * 1e9;
        assert!((r.split_kv_decode_ns(&s, Some(4096)) - want).abs() < 1e-6);
        // 16 sequences of 1000 keys, 3 splits: 192 blocks fit one wave of 216; 64 working
        // blocks, one per SM, each 1000 x 512 bytes at 21.7 GB/s = 23.6 us, longer than the
        // 20.6 us all bytes take; plus the combine kernel.
        let s = seqs(16, 999);
        let sm = 1000.0 * 512.0 / per_sm * 1e9;
        let want = (e.decode_split_floor_us + e.decode_split_combine_us) * 1e3 + sm;
        assert!((r.split_kv_decode_ns(&s, Some(4096)) - want).abs() < 1e-6);
        // 28 sequences: 112 blocks over 108 SMs, so some SM holds two (twice 95.1 us) and
        // the kernel takes longer than 27 did by more than a 28th.
        let t27 = r.split_kv_decode_ns(&seqs(27, 4031), Some(4096));
        let t28 = r.split_kv_decode_ns(&seqs(28, 4031), Some(4096));
        assert!(t28 > t27 * 28.0 / 27.0 * 1.25, "{t27} {t28}");
        // 56 sequences: 224 blocks, two waves; a round of 216 (two per SM: HBM bound, 216 /
        // 224 of the bytes) and a round of the last 8 (one per SM at 21.7 GB/s).
        let s = seqs(56, 4031);
        let bytes: f64 = 56.0 * (4.0 * 4032.0 * 512.0 + 2.0 * 32.0 * 128.0 * 2.0);
        let hbm: f64 = 0.78 * 2039e9;
        let block: f64 = 4032.0 * 512.0;
        let first = (bytes * 216.0 / 224.0 / hbm).max(2.0 * block / per_sm);
        let last = (bytes * 8.0 / 224.0 / hbm).max(block / per_sm);
        let want = (e.decode_split_floor_us + e.decode_split_wave_us) * 1e3 + (first + last) * 1e9;
        let got = r.split_kv_decode_ns(&s, Some(4096));
        assert!((got - want).abs() < 1e-6 * want, "{got} {want}");
        assert!(
            last / first > 0.3,
            "the last round is not a 27th of the first"
        );
    }

    #[test]
    fn a_longer_context_never_takes_less_time_at_one_batch() {
        let r = llama70_tp2("a100-80gb");
        for b in [1usize, 4, 7, 16, 27, 56, 128] {
            let mut last = 0.0;
            for c in (0..8192).step_by(97) {
                let t = r.split_kv_decode_ns(&seqs(b, c), Some(8192));
                assert!(t >= last, "batch {b} context {c}: {t} < {last}");
                last = t;
            }
        }
    }
}
