//! Prefix identity: a request's prompt, given as segments at the trace's own granularity, is
//! mapped onto the engine's block size. An engine block's hash is the chain hash of the
//! segments up to the one holding the block's last token, mixed with that token's offset in
//! the segment ([`block_hash`], which lays the bits out for the block pool's map). Two
//! requests therefore share an engine block exactly when the trace says their prompts agree
//! on every token up to the block's end.

use crate::workload::{mix, Segment};

/// Seed of every chain.
const CHAIN_SEED: u64 = 0x6b76_7369_6d00_0001;
/// Namespace of the per-request unique content (tokens the trace does not identify, and all
/// generated tokens).
const UNIQUE_NAMESPACE: u64 = 0x756e_6971_7565;

/// The hashes of the full blocks of a request's prompt (what a prefix lookup or a router
/// compares), appended to `out`.
pub fn prompt_block_hashes(req: &crate::workload::Request, block_size: u32, out: &mut Vec<u64>) {
    let len = req.input_tokens as u64;
    block_hashes(
        &req.segments,
        req.input_tokens,
        len,
        block_size,
        req.id,
        out,
    );
}

/// How many of a request's tokens its segments identify, as [`block_hashes`] and
/// [`segment_keys`] take it (`prompt_tokens`): the prompt, and as much of the output as the
/// segments go on to cover ([`crate::workload::Request::segments`]; readers trim a
/// segment that their format lets run past the prompt, such as a partial last block).
pub fn identified_tokens(req: &crate::workload::Request) -> u32 {
    let covered: u64 = req.segments.iter().map(|s| s.tokens as u64).sum();
    let prompt = req.input_tokens as u64;
    if covered <= prompt {
        return req.input_tokens;
    }
    covered
        .min(prompt + req.output_tokens as u64)
        .min(u32::MAX as u64) as u32
}

/// Hashes of the full blocks of a request's first `total_tokens` tokens (prompt and output,
/// [`identified_tokens`]), appended to `out`.
pub fn request_block_hashes(
    req: &crate::workload::Request,
    total_tokens: u64,
    block_size: u32,
    out: &mut Vec<u64>,
) {
    let identified = identified_tokens(req);
    block_hashes(
        &req.segments,
        identified,
        total_tokens,
        block_size,
        req.id,
        out,
    );
}

/// The segment keys of a request's tokens, prompt and output ([`identified_tokens`]).
pub fn request_segment_keys(req: &crate::workload::Request, out: &mut Vec<SegmentKey>) {
    segment_keys(&req.segments, identified_tokens(req), req.id, out);
}

/// Hashes of the full `block_size` blocks of a token sequence of `total_tokens` tokens whose
/// first tokens are `segments` (trimmed to `prompt_tokens`) and whose remaining tokens are
/// unique to the request identified by `unique_id`. Results are appended to `out`.
/// Hashes are never zero.
///
/// ```
/// use kvsim::prefix::block_hashes;
/// use kvsim::workload::Segment;
/// // Two prompts that share their first 32-token trace block and differ after it.
/// let a = [Segment { id: 1, tokens: 32 }, Segment { id: 2, tokens: 32 }];
/// let b = [Segment { id: 1, tokens: 32 }, Segment { id: 3, tokens: 32 }];
/// let (mut ha, mut hb) = (Vec::new(), Vec::new());
/// block_hashes(&a, 64, 64, 16, 0, &mut ha);
/// block_hashes(&b, 64, 64, 16, 1, &mut hb);
/// assert_eq!(ha[..2], hb[..2]); // two 16-token engine blocks shared
/// assert_ne!(ha[2], hb[2]);
/// ```
pub fn block_hashes(
    segments: &[Segment],
    prompt_tokens: u32,
    total_tokens: u64,
    block_size: u32,
    unique_id: u64,
    out: &mut Vec<u64>,
) {
    let bs = block_size as u64;
    let full_blocks = total_tokens / bs;
    out.reserve(full_blocks as usize);
    let mut chain = CHAIN_SEED;
    let mut seg_start = 0u64; // first token of the current segment
    let mut seg_end = 0u64; // one past its last token
    let mut segs = segments.iter();
    let mut in_unique = false;
    let prompt = prompt_tokens as u64;
    for b in 0..full_blocks {
        let last = (b + 1) * bs - 1; // index of the block's last token
        while last >= seg_end {
            // Advance to the segment holding `last`.
            let next = if in_unique { None } else { segs.next() };
            match next {
                Some(s) if seg_end < prompt => {
                    let len = (s.tokens as u64).min(prompt - seg_end);
                    seg_start = seg_end;
                    seg_end += len;
                    chain = mix(chain, s.id);
                }
                _ => {
                    in_unique = true;
                    seg_start = seg_end;
                    seg_end = u64::MAX;
                    chain = mix(chain, mix(UNIQUE_NAMESPACE, unique_id));
                }
            }
        }
        out.push(block_hash(chain, last - seg_start));
    }
}

/// Bits of a block hash that give its place in its run (the other bits are the run's key).
pub const HASH_RUN_BITS: u32 = 5;

/// A run's places are slots of `2^HASH_SLOT_BITS` tokens: with blocks of 16 tokens, the
/// 32 blocks of an aligned 512 tokens of a segment share a run, one per place.
const HASH_SLOT_BITS: u32 = 4;

/// The hash of the block whose last token lies at `offset` in the segment with chain hash
/// `chain`: a function of the two alone, as identity must be (two blocks, of any size,
/// whose content agrees up to the same token of the same segment chain share it). Its low
/// [`HASH_RUN_BITS`] bits are the token's 16-token slot within its 512 tokens; the bits
/// above, the run's key, are a mix of the chain, the 512-token span and the token's place
/// within its slot, so blocks of 16 tokens of one segment fill the 32 places of one run in
/// order (larger blocks fill every second, fourth, ... place). The block pool's map keeps a
/// run in one record ([`crate::engine::content_map`]), so registering, looking up and
/// evicting a prompt's blocks probes its hash table once per run instead of once per block.
/// Never zero.
#[inline]
pub fn block_hash(chain: u64, offset: u64) -> u64 {
    let span = offset >> (HASH_SLOT_BITS + HASH_RUN_BITS);
    let within_slot = offset & ((1 << HASH_SLOT_BITS) - 1);
    let place = (offset >> HASH_SLOT_BITS) & ((1 << HASH_RUN_BITS) - 1);
    let run = mix(chain, span << HASH_SLOT_BITS | within_slot);
    (run << HASH_RUN_BITS | place).max(1)
}

/// A stretch of a request's tokens with one identity: the chain hash of the trace segments
/// up to and including it, and its token range `[start, end)`. A block whose last token lies
/// at `start + offset` has the hash `block_hash(chain, offset)` ([`block_hashes`]); two
/// requests share it exactly when they have a segment key with the same chain reaching the
/// same offset.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SegmentKey {
    /// Chain hash of the segments up to this one.
    pub chain: u64,
    /// First token.
    pub start: u64,
    /// One past the last token (`u64::MAX` for the request's unique tail).
    pub end: u64,
    /// Tokens unique to the request (not identified by the trace, or generated).
    pub unique: bool,
}

/// The segment keys of a request's tokens (prompt segments trimmed to `prompt_tokens`, then
/// the unique tail), appended to `out`: the identities [`block_hashes`] mixes into each
/// block's hash.
pub fn segment_keys(
    segments: &[Segment],
    prompt_tokens: u32,
    unique_id: u64,
    out: &mut Vec<SegmentKey>,
) {
    let prompt = prompt_tokens as u64;
    let mut chain = CHAIN_SEED;
    let mut end = 0u64;
    for s in segments {
        if end >= prompt {
            break;
        }
        let len = (s.tokens as u64).min(prompt - end);
        chain = mix(chain, s.id);
        out.push(SegmentKey {
            chain,
            start: end,
            end: end + len,
            unique: false,
        });
        end += len;
    }
    out.push(SegmentKey {
        chain: mix(chain, mix(UNIQUE_NAMESPACE, unique_id)),
        start: end,
        end: u64::MAX,
        unique: true,
    });
}

/// The segment key holding token `token` and the token's offset in it (`keys` from
/// [`segment_keys`], which always end with an unbounded key).
pub fn key_of_token(keys: &[SegmentKey], token: u64) -> (SegmentKey, u64) {
    let i = keys.partition_point(|k| k.end <= token).min(keys.len() - 1);
    (keys[i], token - keys[i].start)
}

/// Ids of fixed-size blocks of `block_tokens` that describe the same prompt content as
/// `segments` (used to write native traces). The last block may be partial.
pub fn fixed_block_ids(segments: &[Segment], prompt_tokens: u32, block_tokens: u32) -> Vec<u64> {
    let covered: u64 = segments
        .iter()
        .map(|s| s.tokens as u64)
        .sum::<u64>()
        .min(prompt_tokens as u64);
    let mut ids = Vec::new();
    let mut full = Vec::new();
    block_hashes(
        segments,
        covered as u32,
        covered,
        block_tokens,
        0,
        &mut full,
    );
    ids.extend(full);
    let rem = covered % block_tokens as u64;
    if rem > 0 {
        // Identify the partial block by the hash of its last token's position.
        let mut tail = Vec::new();
        block_hashes(segments, covered as u32, covered, 1, 0, &mut tail);
        ids.push(*tail.last().expect("covered > 0"));
    }
    ids
}

/// Statistics of the infinite-cache prefix-reuse bound.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize)]
pub struct ReuseBound {
    /// Prompt tokens seen.
    pub input_tokens: u64,
    /// Prompt tokens in trace segments whose whole prefix chain was seen before.
    pub reusable_tokens: u64,
    /// Prompt tokens an engine with `block_size` blocks and an infinite cache would hit,
    /// applying vLLM's rules (full blocks only, at most `prompt_len - 1` tokens).
    pub engine_hit_tokens: u64,
}

impl ReuseBound {
    /// Fraction of prompt tokens that could be reused.
    pub fn fraction(&self) -> f64 {
        ratio(self.reusable_tokens, self.input_tokens)
    }

    /// Fraction of prompt tokens the engine could hit.
    pub fn engine_fraction(&self) -> f64 {
        ratio(self.engine_hit_tokens, self.input_tokens)
    }
}

fn ratio(a: u64, b: u64) -> f64 {
    if b == 0 {
        0.0
    } else {
        a as f64 / b as f64
    }
}

/// Computes [`ReuseBound`] over a stream of requests in arrival order.
#[derive(Debug, Default)]
pub struct ReuseBoundCounter {
    seen_chains: std::collections::HashSet<u64>,
    seen_blocks: std::collections::HashSet<u64>,
    block_size: u32,
    scratch: Vec<u64>,
    /// The running totals.
    pub bound: ReuseBound,
}

impl ReuseBoundCounter {
    /// A counter for an engine with the given block size.
    pub fn new(block_size: u32) -> Self {
        ReuseBoundCounter {
            block_size,
            ..Default::default()
        }
    }

    /// Account one request.
    pub fn add(&mut self, id: u64, segments: &[Segment], prompt_tokens: u32) {
        self.bound.input_tokens += prompt_tokens as u64;
        // Trace granularity: walk the chain until the first unseen segment.
        let mut chain = CHAIN_SEED;
        let mut left = prompt_tokens;
        let mut hit = true;
        for s in segments {
            let len = s.tokens.min(left);
            if len == 0 {
                break;
            }
            left -= len;
            chain = mix(chain, s.id);
            // A truncated segment is a different (shorter) content unit.
            let key = mix(chain, len as u64);
            if hit && self.seen_chains.contains(&key) {
                self.bound.reusable_tokens += len as u64;
            } else {
                hit = false;
            }
            self.seen_chains.insert(key);
        }
        // Engine granularity with vLLM's rules.
        self.scratch.clear();
        block_hashes(
            segments,
            prompt_tokens,
            prompt_tokens as u64,
            self.block_size,
            id,
            &mut self.scratch,
        );
        let max_blocks = (prompt_tokens.saturating_sub(1) / self.block_size) as usize;
        let hits = self
            .scratch
            .iter()
            .take(max_blocks)
            .take_while(|h| self.seen_blocks.contains(h))
            .count();
        self.bound.engine_hit_tokens += hits as u64 * self.block_size as u64;
        // The hit blocks are in the set already (a block hash names its whole prefix).
        self.seen_blocks
            .extend(self.scratch[hits..].iter().copied());
    }

    /// Remember the part of a request's output its segments identify (after [`Self::add`]
    /// of its prompt): a later prompt that repeats it may hit it. At engine granularity only
    /// the blocks full of tokens whose KV was computed (all but the last generated token's).
    pub fn remember_output(&mut self, req: &crate::workload::Request) {
        let identified = identified_tokens(req);
        let prompt = req.input_tokens;
        if identified <= prompt {
            return;
        }
        let mut chain = CHAIN_SEED;
        let mut end = 0u32;
        for s in &req.segments {
            if end >= identified {
                break;
            }
            let len = s.tokens.min(identified - end);
            chain = mix(chain, s.id);
            if end + len > prompt {
                self.seen_chains.insert(mix(chain, len as u64));
            }
            end += len;
        }
        let computed = (prompt as u64 + req.output_tokens as u64).saturating_sub(1);
        self.scratch.clear();
        block_hashes(
            &req.segments,
            identified,
            computed.min(identified as u64),
            self.block_size,
            req.id,
            &mut self.scratch,
        );
        self.seen_blocks.extend(self.scratch.iter().copied());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn seg(id: u64, tokens: u32) -> Segment {
        Segment { id, tokens }
    }

    #[test]
    fn shared_prefix_shares_exactly_the_covered_blocks() {
        // Two prompts share a 512-token segment, then differ.
        let a = [seg(1, 512), seg(2, 512)];
        let b = [seg(1, 512), seg(3, 512)];
        let (mut ha, mut hb) = (Vec::new(), Vec::new());
        block_hashes(&a, 1024, 1024, 16, 100, &mut ha);
        block_hashes(&b, 1024, 1024, 16, 200, &mut hb);
        assert_eq!(ha.len(), 64);
        let shared = ha.iter().zip(&hb).take_while(|(x, y)| x == y).count();
        assert_eq!(shared, 32);
        assert!(ha[32..].iter().all(|h| !hb.contains(h)));
    }

    #[test]
    fn block_spanning_segments_needs_both() {
        // Segments of 10 and 10 tokens; block 0 (tokens 0..16) spans both.
        let a = [seg(1, 10), seg(2, 10)];
        let b = [seg(1, 10), seg(9, 10)];
        let (mut ha, mut hb) = (Vec::new(), Vec::new());
        block_hashes(&a, 20, 20, 16, 1, &mut ha);
        block_hashes(&b, 20, 20, 16, 2, &mut hb);
        assert_eq!(ha.len(), 1);
        assert_ne!(ha[0], hb[0]);
        // With 8-token blocks the first block lies inside segment 1 and is shared.
        let (mut ha, mut hb) = (Vec::new(), Vec::new());
        block_hashes(&a, 20, 20, 8, 1, &mut ha);
        block_hashes(&b, 20, 20, 8, 2, &mut hb);
        assert_eq!(ha[0], hb[0]);
        assert_ne!(ha[1], hb[1]);
    }

    #[test]
    fn requests_without_segments_are_unique() {
        let (mut ha, mut hb) = (Vec::new(), Vec::new());
        block_hashes(&[], 64, 64, 16, 1, &mut ha);
        block_hashes(&[], 64, 64, 16, 2, &mut hb);
        assert!(ha.iter().all(|h| !hb.contains(h)));
        assert!(ha.iter().all(|h| *h != 0));
    }

    #[test]
    fn generated_tokens_are_unique_even_after_shared_prompt() {
        let a = [seg(1, 32)];
        let (mut ha, mut hb) = (Vec::new(), Vec::new());
        block_hashes(&a, 32, 64, 16, 1, &mut ha);
        block_hashes(&a, 32, 64, 16, 2, &mut hb);
        assert_eq!(ha[..2], hb[..2]);
        assert_ne!(ha[2], hb[2]);
    }

    #[test]
    fn fixed_block_ids_round_trip_sharing() {
        let a = [seg(1, 20), seg(2, 30)];
        let b = [seg(1, 20), seg(3, 30)];
        let ia = fixed_block_ids(&a, 50, 16);
        let ib = fixed_block_ids(&b, 50, 16);
        assert_eq!(ia.len(), 4);
        assert_eq!(ia[0], ib[0]);
        assert_ne!(ia[1], ib[1]);
    }

    #[test]
    fn reuse_bound_hand_computed() {
        let mut c = ReuseBoundCounter::new(16);
        // First request: nothing seen.
        c.add(0, &[seg(1, 512), seg(2, 100)], 612);
        // Second: first segment seen (512 tokens), second new.
        c.add(1, &[seg(1, 512), seg(5, 512)], 1024);
        // Third: identical to the first; all 612 tokens reusable at trace level; the engine
        // hits full blocks only, and at most 611 tokens: 38 blocks = 608 tokens.
        c.add(2, &[seg(1, 512), seg(2, 100)], 612);
        assert_eq!(c.bound.input_tokens, 612 + 1024 + 612);
        assert_eq!(c.bound.reusable_tokens, 512 + 612);
        assert_eq!(c.bound.engine_hit_tokens, 512 + 608);
    }
}

#[cfg(test)]
mod segment_key_tests {
    use super::*;

    #[test]
    fn a_segments_consecutive_blocks_share_runs() {
        // A 1,600-token segment after a 40-token one: its first block is the one ending
        // at token 47 (offset 7), block 2 of the prompt.
        let segs = [
            Segment { id: 1, tokens: 40 },
            Segment {
                id: 2,
                tokens: 1600,
            },
        ];
        let mut h = Vec::new();
        block_hashes(&segs, 1640, 1640, 16, 0, &mut h);
        let run = 1u64 << HASH_RUN_BITS;
        let long = &h[2..]; // blocks 2.. end in the second segment
        for (i, w) in long.windows(2).enumerate() {
            let (a, b) = (w[0], w[1]);
            let index = i as u64 + 1; // the second block's index in its segment
            if index.is_multiple_of(run) {
                assert_ne!(
                    a >> HASH_RUN_BITS,
                    b >> HASH_RUN_BITS,
                    "a new run at {index}"
                );
            } else {
                assert_eq!(a >> HASH_RUN_BITS, b >> HASH_RUN_BITS, "one run at {index}");
            }
            assert_eq!(b % run, index % run);
        }
        let distinct: std::collections::HashSet<u64> = h.iter().copied().collect();
        assert_eq!(distinct.len(), h.len(), "every block its own hash");
    }

    #[test]
    fn a_block_hash_is_its_chain_and_offset_whatever_the_block_size() {
        // Every offset of a chain its own hash, and the same hash at any block size: a
        // partial tail block (identified at block size 1) shares a hash only with blocks
        // that end at the same token.
        let n = 100_000u64;
        let all: std::collections::HashSet<u64> = (0..n).map(|o| block_hash(77, o)).collect();
        assert_eq!(all.len() as u64, n);
        let segs = [
            Segment { id: 1, tokens: 40 },
            Segment { id: 2, tokens: 600 },
        ];
        for bs in [1u32, 16, 32, 128] {
            let mut h = Vec::new();
            block_hashes(&segs, 640, 640, bs, 0, &mut h);
            let mut ones = Vec::new();
            block_hashes(&segs, 640, 640, 1, 0, &mut ones);
            for (b, &x) in h.iter().enumerate() {
                let last = (b + 1) * bs as usize - 1;
                assert_eq!(x, ones[last], "block size {bs}, block {b}");
            }
        }
        let seg = |id, tokens| Segment { id, tokens };
        let (a, b) = ([seg(1, 16), seg(2, 1)], [seg(1, 16), seg(2, 32)]);
        let (ia, ib) = (fixed_block_ids(&a, 17, 16), fixed_block_ids(&b, 48, 16));
        assert_eq!(ia[0], ib[0]);
        assert_ne!(ia[1], ib[1], "a one-token tail is not a 16-token block");
    }

    #[test]
    fn segment_keys_rebuild_every_block_hash() {
        let segs = [
            Segment { id: 7, tokens: 40 },
            Segment { id: 9, tokens: 25 },
            Segment { id: 3, tokens: 50 },
        ];
        for (prompt, total) in [(100u32, 150u64), (65, 65), (10, 64), (115, 200)] {
            let mut hashes = Vec::new();
            block_hashes(&segs, prompt, total, 16, 42, &mut hashes);
            let mut keys = Vec::new();
            segment_keys(&segs, prompt, 42, &mut keys);
            for (b, &h) in hashes.iter().enumerate() {
                let last = (b as u64 + 1) * 16 - 1;
                let (k, off) = key_of_token(&keys, last);
                assert_eq!(block_hash(k.chain, off), h, "prompt {prompt} block {b}");
                assert_eq!(k.unique, last >= prompt as u64);
            }
        }
    }
}

/// Token ids of a request's first `n` tokens, prompt then output, appended to `out`: a
/// token's id mixes its segment key's chain with its offset in the key, so two requests
/// share a token id exactly where the trace says their content agrees (what a radix tree
/// over token ids compares); the request's unique tail, generated tokens included, gets
/// ids no other request has.
pub fn token_ids(req: &crate::workload::Request, n: usize, out: &mut Vec<u64>) {
    let mut keys = Vec::new();
    request_segment_keys(req, &mut keys);
    out.reserve(n);
    let (n, mut t) = (n as u64, 0u64);
    for key in &keys {
        let end = key.end.min(n);
        out.extend((t.max(key.start)..end).map(|i| mix(key.chain, i - key.start)));
        t = t.max(end);
        if t == n {
            break;
        }
    }
    debug_assert_eq!(t, n, "the segment keys cover every token");
}
