//! Token-level selection rules as their papers define them, applied to one KV head of a
//! recorded trace. Each rule marks the prompt tokens a KV head keeps (eviction, decided once
//! at the end of the prompt) or reads at a decode step (selection, decided every step).
//! Tokens generated during decoding are always kept. For grouped-query attention a KV head
//! scores a token by the sum over the query heads that share it, since one KV head's memory
//! is what a rule frees. Parameters and sources: `docs/policies.md`.

use super::trace::{AttentionTrace, LayerData};
use crate::error::{Error, Result};
use rand::rngs::StdRng;
use rand::SeedableRng;

/// Whether a rule frees memory once or picks what to read each step.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Keeps a fixed subset of the prompt for every decode step.
    Eviction,
    /// Keeps everything and reads a subset chosen per decode step.
    Selection,
}

/// One KV head of one recorded layer.
#[derive(Clone, Copy)]
pub struct HeadView<'a> {
    /// The whole trace.
    pub trace: &'a AttentionTrace,
    /// The layer.
    pub layer: &'a LayerData,
    /// The KV head.
    pub kv_head: usize,
    /// For rules that choose per query head ([`Selector::per_query_head`]): that head.
    pub query_head: Option<usize>,
}

impl HeadView<'_> {
    /// The query heads that read this KV head.
    pub fn group_heads(&self) -> std::ops::Range<usize> {
        let g = self.trace.group();
        self.kv_head * g..(self.kv_head + 1) * g
    }

    /// Attention of query head `h` at decode step `s` over the whole context.
    pub fn decode_attn(&self, h: usize, s: usize) -> &[f32] {
        let (t, d) = (self.trace.total_tokens(), self.trace.decode_steps);
        &self.layer.attn_decode[(h * d + s) * t..(h * d + s + 1) * t]
    }

    /// Attention of query head `h`'s `i`-th window query over the prompt.
    pub fn window_attn(&self, h: usize, i: usize) -> &[f32] {
        let (p, w) = (self.trace.prompt_len, self.trace.window);
        &self.layer.attn_window[(h * w + i) * p..(h * w + i + 1) * p]
    }

    /// Attention each prompt token received from all prompt queries of head `h`.
    pub fn colsum(&self, h: usize) -> &[f32] {
        let p = self.trace.prompt_len;
        &self.layer.colsum[h * p..(h + 1) * p]
    }

    /// Key of token `j` for KV head `kv`.
    pub fn key(&self, kv: usize, j: usize) -> &[f32] {
        let (t, d) = (self.trace.total_tokens(), self.trace.head_dim);
        &self.layer.keys[(kv * t + j) * d..(kv * t + j + 1) * d]
    }

    /// Value of token `j` for KV head `kv`.
    pub fn value(&self, kv: usize, j: usize) -> &[f32] {
        let (t, d) = (self.trace.total_tokens(), self.trace.head_dim);
        &self.layer.values[(kv * t + j) * d..(kv * t + j + 1) * d]
    }

    /// Query of head `h` at decode step `s`.
    pub fn decode_query(&self, h: usize, s: usize) -> &[f32] {
        let (n, d) = (self.trace.decode_steps, self.trace.head_dim);
        &self.layer.q_decode[(h * n + s) * d..(h * n + s + 1) * d]
    }
}

/// A token selection rule.
pub trait Selector: Sync {
    /// Registry name.
    fn name(&self) -> &'static str;
    /// Eviction or selection.
    fn kind(&self) -> Kind;
    /// True when each query head chooses its own tokens (the oracle).
    fn per_query_head(&self) -> bool {
        false
    }
    /// Set `keep[j]` for the prompt tokens kept (at most `budget` of them, except where the
    /// rule's unit is coarser). `step` is the decode step for selection rules.
    fn select(&self, v: &HeadView, budget: usize, step: usize, keep: &mut [bool]);
}

/// Every rule, by registry name.
pub const POLICIES: &[&str] = &[
    "oracle",
    "random",
    "streaming_llm",
    "h2o",
    "snapkv",
    "pyramidkv",
    "ada_snapkv",
    "tova",
    "quest",
    "tokenselect",
];

/// The rule of this name; `seed` drives `random`.
pub fn make(name: &str, seed: u64) -> Result<Box<dyn Selector>> {
    Ok(match name {
        "oracle" => Box::new(Oracle),
        "random" => Box::new(RandomKeep { seed }),
        "streaming_llm" => Box::new(StreamingLlm { sinks: 4 }),
        "h2o" => Box::new(H2o { recent_share: 0.5 }),
        "snapkv" => Box::new(SnapKv::paper()),
        "pyramidkv" => Box::new(PyramidKv {
            snap: SnapKv::paper(),
            beta: 20,
        }),
        "ada_snapkv" => Box::new(AdaSnapKv {
            snap: SnapKv::paper(),
        }),
        "tova" => Box::new(Tova),
        "quest" => Box::new(Quest { page: 16 }),
        "tokenselect" => Box::new(TokenSelect),
        other => {
            return Err(Error::input(format!(
                "--policies: unknown policy `{other}`; known: {}",
                POLICIES.join(", ")
            )))
        }
    })
}

/// Mark the `k` highest `scores` (ties to the earlier token) as `offset + index`.
pub fn mark_top_k(scores: &[f32], k: usize, offset: usize, keep: &mut [bool]) {
    let k = k.min(scores.len());
    if k == 0 {
        return;
    }
    let mut idx: Vec<u32> = (0..scores.len() as u32).collect();
    let order = |a: &u32, b: &u32| {
        scores[*b as usize]
            .total_cmp(&scores[*a as usize])
            .then(a.cmp(b))
    };
    if k < idx.len() {
        idx.select_nth_unstable_by(k - 1, order);
    }
    for &i in &idx[..k] {
        keep[offset + i as usize] = true;
    }
}

/// Per-token sum over this KV head's query heads of `row(h)`.
fn group_sum<'a>(v: &'a HeadView, len: usize, row: impl Fn(usize) -> &'a [f32]) -> Vec<f32> {
    let mut s = vec![0.0f32; len];
    for h in v.group_heads() {
        for (a, b) in s.iter_mut().zip(row(h)) {
            *a += b;
        }
    }
    s
}

/// The best possible choice at each step: each query head reads the `k` prompt tokens it
/// attends to most at this step (known only after the fact).
pub struct Oracle;

impl Selector for Oracle {
    fn name(&self) -> &'static str {
        "oracle"
    }
    fn kind(&self) -> Kind {
        Kind::Selection
    }
    fn per_query_head(&self) -> bool {
        true
    }
    fn select(&self, v: &HeadView, budget: usize, step: usize, keep: &mut [bool]) {
        let p = v.trace.prompt_len;
        match v.query_head {
            Some(h) => mark_top_k(&v.decode_attn(h, step)[..p], budget, 0, keep),
            None => {
                let scores = group_sum(v, p, |h| &v.decode_attn(h, step)[..p]);
                mark_top_k(&scores, budget, 0, keep);
            }
        }
    }
}

/// `k` prompt tokens drawn uniformly, once per head.
pub struct RandomKeep {
    /// Seed; each (layer, KV head) derives its own stream.
    pub seed: u64,
}

impl Selector for RandomKeep {
    fn name(&self) -> &'static str {
        "random"
    }
    fn kind(&self) -> Kind {
        Kind::Eviction
    }
    fn select(&self, v: &HeadView, budget: usize, _step: usize, keep: &mut [bool]) {
        let p = v.trace.prompt_len;
        let stream = (v.layer.layer as u64) << 16 | v.kv_head as u64;
        let mut rng = StdRng::seed_from_u64(self.seed ^ stream.wrapping_mul(0x9e37_79b9_7f4a_7c15));
        for j in rand::seq::index::sample(&mut rng, p, budget.min(p)) {
            keep[j] = true;
        }
    }
}

/// StreamingLLM (Xiao et al., 2024): the first `sinks` tokens plus the most recent ones.
pub struct StreamingLlm {
    /// Attention-sink tokens at the start (paper: 4).
    pub sinks: usize,
}

impl Selector for StreamingLlm {
    fn name(&self) -> &'static str {
        "streaming_llm"
    }
    fn kind(&self) -> Kind {
        Kind::Eviction
    }
    fn select(&self, v: &HeadView, budget: usize, _step: usize, keep: &mut [bool]) {
        let p = v.trace.prompt_len;
        let sinks = self.sinks.min(budget);
        keep[..sinks].iter_mut().for_each(|k| *k = true);
        let recent = budget - sinks;
        keep[p.saturating_sub(recent)..]
            .iter_mut()
            .for_each(|k| *k = true);
    }
}

/// H2O (Zhang et al., 2023): heavy hitters by attention accumulated over every query so
/// far, plus a recent window; the paper splits the budget evenly between the two.
pub struct H2o {
    /// Share of the budget for recent tokens (paper: 0.5).
    pub recent_share: f64,
}

impl Selector for H2o {
    fn name(&self) -> &'static str {
        "h2o"
    }
    fn kind(&self) -> Kind {
        Kind::Eviction
    }
    fn select(&self, v: &HeadView, budget: usize, _step: usize, keep: &mut [bool]) {
        let p = v.trace.prompt_len;
        let recent = ((budget as f64 * self.recent_share) as usize).min(p);
        keep[p - recent..].iter_mut().for_each(|k| *k = true);
        let scores = group_sum(v, p - recent, |h| &v.colsum(h)[..p - recent]);
        mark_top_k(&scores, budget - recent, 0, keep);
    }
}

/// SnapKV (Li et al., 2024): the last `window` prompt queries vote (attention summed over
/// the window, smoothed by 1-D pooling) for the earlier tokens; the window itself is kept.
pub struct SnapKv {
    /// Observation window (paper: 32; capped by the trace's window).
    pub window: usize,
    /// Pooling kernel (KVCache-Factory: 5).
    pub kernel: usize,
    /// Max pooling instead of average pooling (KVCache-Factory: average).
    pub max_pool: bool,
}

impl SnapKv {
    /// The defaults used in the SnapKV/PyramidKV reference code.
    pub fn paper() -> Self {
        SnapKv {
            window: 32,
            kernel: 5,
            max_pool: false,
        }
    }

    /// Pooled window votes for the prompt tokens before the window.
    fn votes(&self, v: &HeadView, window: usize) -> Vec<f32> {
        let (p, w) = (v.trace.prompt_len, v.trace.window);
        let n = p - window;
        let mut sum = vec![0.0f32; n];
        for h in v.group_heads() {
            for i in w - window..w {
                for (a, b) in sum.iter_mut().zip(&v.window_attn(h, i)[..n]) {
                    *a += b;
                }
            }
        }
        // Same-length pooling with zero padding (PyTorch's avg_pool1d counts the padding).
        let half = self.kernel / 2;
        (0..n)
            .map(|j| {
                let lo = j.saturating_sub(half);
                let hi = (j + half + 1).min(n);
                let cells = sum[lo..hi].iter();
                if self.max_pool {
                    cells.fold(f32::MIN, |a, &b| a.max(b))
                } else {
                    cells.sum::<f32>() / self.kernel as f32
                }
            })
            .collect()
    }

    fn keep_with(&self, v: &HeadView, prefix_budget: usize, window: usize, keep: &mut [bool]) {
        let p = v.trace.prompt_len;
        keep[p - window..].iter_mut().for_each(|k| *k = true);
        let votes = self.votes(v, window);
        mark_top_k(&votes, prefix_budget, 0, keep);
    }

    fn window_for(&self, v: &HeadView, budget: usize) -> usize {
        self.window.min(v.trace.window).min(budget)
    }
}

impl Selector for SnapKv {
    fn name(&self) -> &'static str {
        "snapkv"
    }
    fn kind(&self) -> Kind {
        Kind::Eviction
    }
    fn select(&self, v: &HeadView, budget: usize, _step: usize, keep: &mut [bool]) {
        let w = self.window_for(v, budget);
        self.keep_with(v, budget - w, w, keep);
    }
}

/// PyramidKV (Cai et al., 2024): SnapKV's vote with budgets that fall linearly from the
/// first layer to the last, averaging the uniform budget, as in its reference code.
pub struct PyramidKv {
    /// The vote.
    pub snap: SnapKv,
    /// Steepness: the last layer gets `1/beta` of the average (paper: 20).
    pub beta: usize,
}

impl PyramidKv {
    /// Prompt tokens kept before the window in `layer` of `layers` for an average budget.
    pub fn layer_budget(
        &self,
        budget: usize,
        window: usize,
        prompt: usize,
        layer: usize,
        layers: usize,
    ) -> usize {
        let avg = budget - window;
        if prompt < 2 * avg || layers < 2 {
            return avg; // the reference code falls back to a uniform budget
        }
        let mut min_num = avg / self.beta;
        let mut max_num = 2 * avg - min_num;
        if max_num >= prompt - window {
            max_num = prompt - window;
            min_num = 2 * avg - max_num;
        }
        let steps = (max_num - min_num) / (layers - 1);
        max_num - layer * steps
    }
}

impl Selector for PyramidKv {
    fn name(&self) -> &'static str {
        "pyramidkv"
    }
    fn kind(&self) -> Kind {
        Kind::Eviction
    }
    fn select(&self, v: &HeadView, budget: usize, _step: usize, keep: &mut [bool]) {
        let w = self.snap.window_for(v, budget);
        let b = self.layer_budget(
            budget,
            w,
            v.trace.prompt_len,
            v.layer.layer as usize,
            v.trace.model_layers as usize,
        );
        self.snap.keep_with(v, b, w, keep);
    }
}

/// Ada-SnapKV (Ada-KV, Feng et al., 2024): SnapKV's vote, but the layer's budget is shared
/// among its KV heads by the votes themselves: the layer keeps its `kv_heads x (budget -
/// window)` best-voted (head, token) pairs, so a head whose attention is concentrated gives
/// budget to one whose attention is spread. Per-head budgets, same total.
pub struct AdaSnapKv {
    /// The vote.
    pub snap: SnapKv,
}

impl Selector for AdaSnapKv {
    fn name(&self) -> &'static str {
        "ada_snapkv"
    }
    fn kind(&self) -> Kind {
        Kind::Eviction
    }
    fn select(&self, v: &HeadView, budget: usize, _step: usize, keep: &mut [bool]) {
        let t = v.trace;
        let w = self.snap.window_for(v, budget);
        let n = t.prompt_len - w;
        keep[t.prompt_len - w..].iter_mut().for_each(|k| *k = true);
        // Every head's votes, in one list: head h's token j at h * n + j.
        let mut all = Vec::with_capacity(n * t.kv_heads);
        for kv in 0..t.kv_heads {
            let other = HeadView { kv_head: kv, ..*v };
            all.extend(self.snap.votes(&other, w));
        }
        let mut chosen = vec![false; all.len()];
        mark_top_k(&all, (budget - w) * t.kv_heads, 0, &mut chosen);
        let mine = &chosen[v.kv_head * n..(v.kv_head + 1) * n];
        for (k, &c) in keep[..n].iter_mut().zip(mine) {
            *k |= c;
        }
    }
}

/// TOVA (Oren et al., 2024): keep the tokens the current query attends to most, averaged
/// over all heads of the layer, so every head of a layer keeps the same tokens. Applied
/// at the last prompt query.
pub struct Tova;

impl Selector for Tova {
    fn name(&self) -> &'static str {
        "tova"
    }
    fn kind(&self) -> Kind {
        Kind::Eviction
    }
    fn select(&self, v: &HeadView, budget: usize, _step: usize, keep: &mut [bool]) {
        let (p, w) = (v.trace.prompt_len, v.trace.window);
        let mut scores = vec![0.0f32; p];
        for h in 0..v.trace.heads {
            for (a, b) in scores.iter_mut().zip(v.window_attn(h, w - 1)) {
                *a += b;
            }
        }
        mark_top_k(&scores, budget, 0, keep);
    }
}

/// Quest (Tang et al., 2024): pages of keys keep their per-channel minimum and maximum; a
/// query scores a page by the upper bound `sum_d max(q_d min_d, q_d max_d)` and reads the
/// best pages that fit the budget.
pub struct Quest {
    /// Tokens per page (paper: 16).
    pub page: usize,
}

impl Selector for Quest {
    fn name(&self) -> &'static str {
        "quest"
    }
    fn kind(&self) -> Kind {
        Kind::Selection
    }
    fn select(&self, v: &HeadView, budget: usize, step: usize, keep: &mut [bool]) {
        let (p, d) = (v.trace.prompt_len, v.trace.head_dim);
        let pages = p.div_ceil(self.page);
        let mut scores = vec![0.0f32; pages];
        let (mut lo, mut hi) = (vec![0.0f32; d], vec![0.0f32; d]);
        for (page, score) in scores.iter_mut().enumerate() {
            let tokens = page * self.page..((page + 1) * self.page).min(p);
            lo.fill(f32::INFINITY);
            hi.fill(f32::NEG_INFINITY);
            for j in tokens {
                for (c, &x) in v.key(v.kv_head, j).iter().enumerate() {
                    lo[c] = lo[c].min(x);
                    hi[c] = hi[c].max(x);
                }
            }
            for h in v.group_heads() {
                let q = v.decode_query(h, step);
                *score += (0..d)
                    .map(|c| (q[c] * lo[c]).max(q[c] * hi[c]))
                    .sum::<f32>();
            }
        }
        let mut chosen = vec![false; pages];
        mark_top_k(&scores, (budget / self.page).max(1), 0, &mut chosen);
        for (page, _) in chosen.iter().enumerate().filter(|(_, c)| **c) {
            keep[page * self.page..((page + 1) * self.page).min(p)]
                .iter_mut()
                .for_each(|k| *k = true);
        }
    }
}

/// TokenSelect (Wu et al., 2025): every query head of the layer scores all tokens by its
/// softmax of `q . k`, the heads' scores are summed (the soft vote), and the layer reads
/// the top tokens, the same for all heads.
pub struct TokenSelect;

impl Selector for TokenSelect {
    fn name(&self) -> &'static str {
        "tokenselect"
    }
    fn kind(&self) -> Kind {
        Kind::Selection
    }
    fn select(&self, v: &HeadView, budget: usize, step: usize, keep: &mut [bool]) {
        let t = &v.trace;
        let (p, ctx) = (t.prompt_len, t.prompt_len + step + 1);
        let scale = 1.0 / (t.head_dim as f32).sqrt();
        let mut vote = vec![0.0f32; p];
        let mut logits = vec![0.0f32; ctx];
        for h in 0..t.heads {
            let kv = h / t.group();
            let q = v.decode_query(h, step);
            for (j, l) in logits.iter_mut().enumerate() {
                *l = q.iter().zip(v.key(kv, j)).map(|(a, b)| a * b).sum::<f32>() * scale;
            }
            let max = logits.iter().fold(f32::NEG_INFINITY, |a, &b| a.max(b));
            let z: f32 = logits.iter().map(|l| (l - max).exp()).sum();
            for (a, l) in vote.iter_mut().zip(&logits[..p]) {
                *a += (l - max).exp() / z;
            }
        }
        mark_top_k(&vote, budget, 0, keep);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn top_k_prefers_high_scores_and_earlier_ties() {
        let mut keep = vec![false; 6];
        mark_top_k(&[0.1, 0.5, 0.5, 0.9, 0.0, 0.5], 3, 0, &mut keep);
        assert_eq!(keep, [false, true, true, true, false, false]);
    }

    #[test]
    fn pyramid_budgets_follow_the_reference_formula() {
        let p = PyramidKv {
            snap: SnapKv::paper(),
            beta: 20,
        };
        // Average 128 + 32 window over 32 layers, prompt 4096: min 6, max 250, step 7.
        assert_eq!(p.layer_budget(160, 32, 4096, 0, 32), 250);
        assert_eq!(p.layer_budget(160, 32, 4096, 1, 32), 243);
        assert_eq!(p.layer_budget(160, 32, 4096, 31, 32), 250 - 31 * 7);
        // Short prompts fall back to the uniform budget.
        assert_eq!(p.layer_budget(160, 32, 200, 5, 32), 128);
    }
}
