//! Scoring token selection rules against the full attention of a trace.
//!
//! For every recorded layer, KV head and decode step, a rule's kept prompt tokens plus all
//! generated tokens form the set `S`. With `p` the step's recorded attention of one query
//! head and `v` the recorded values:
//! - attention mass retained: `sum_{j in S} p_j`;
//! - top-k recall: the share of the `k` prompt tokens this query head attends to most that
//!   `S` keeps;
//! - relative output error: `|o_S - o| / |o|` with `o = sum_j p_j v_j` and
//!   `o_S = sum_{j in S} p_j v_j / sum_{j in S} p_j` (softmax over the kept tokens);
//! - the fact survives when, at every step, each of its tokens is kept for some head in
//!   at least half of the recorded layers.
//!
//! The oracle lets each query head read its own `k` most-attended prompt tokens, so it
//! bounds every rule's mass and recall by construction.
//!
//! Each figure is the mean over layers, heads and steps.
//!
//! Quantization rules ([`Kivi`]) keep every token, so for them attention is recomputed
//! from the stored queries and keys, once exactly and once with the quantized keys, and
//! compared: mass is the overlap `sum_j min(p_j, p~_j)`, recall is that of the quantized
//! attention's top `k` against the exact top `k`, the output error uses the quantized
//! values too, and the fact always survives.

use super::policies::{self, HeadView, Kind, Selector};
use super::quantize::{Kivi, QUANTIZERS};
use super::trace::AttentionTrace;
use crate::error::{Error, Result};

/// One policy at one keep ratio.
#[derive(Debug, Clone, PartialEq)]
pub struct EvalRow {
    /// Policy name.
    pub policy: String,
    /// Eviction or selection.
    pub kind: &'static str,
    /// Share of the prompt kept.
    pub keep_ratio: f64,
    /// Prompt tokens kept per KV head.
    pub budget_tokens: usize,
    /// Mean attention mass retained.
    pub mass: f64,
    /// Mean top-k recall.
    pub recall: f64,
    /// Mean relative attention-output error.
    pub output_error: f64,
    /// Share of (layer, KV head, step, fact token) with the token kept; `None` without a
    /// planted fact.
    pub fact_kept: Option<f64>,
    /// Whether the fact survives (see the module doc).
    pub fact_survives: Option<bool>,
}

/// Prompt tokens kept at a ratio: `round(ratio * prompt)`, at least one.
pub fn budget_for(ratio: f64, prompt: usize) -> usize {
    ((ratio * prompt as f64).round() as usize).clamp(1, prompt)
}

/// Score each policy at each keep ratio. `seed` drives the random policy.
pub fn evaluate(
    trace: &AttentionTrace,
    policies: &[String],
    ratios: &[f64],
    seed: u64,
) -> Result<Vec<EvalRow>> {
    for p in policies {
        if !policies::POLICIES.contains(&p.as_str()) && Kivi::named(p).is_none() {
            return Err(Error::input(format!(
                "--policies: unknown policy `{p}`; known: {}, {}",
                policies::POLICIES.join(", "),
                QUANTIZERS.join(", ")
            )));
        }
    }
    for &r in ratios {
        if !(r > 0.0 && r <= 1.0) {
            return Err(Error::input(format!(
                "--budgets: keep ratio {r} is not in (0, 1]"
            )));
        }
    }
    let full = FullOutputs::new(trace);
    let mut rows = Vec::new();
    for name in policies {
        match Kivi::named(name) {
            Some(kivi) => {
                for &ratio in ratios {
                    rows.push(score_quantized(trace, name, kivi, ratio));
                }
            }
            None => {
                let rule = policies::make(name, seed)?;
                for &ratio in ratios {
                    rows.push(score(trace, &full, rule.as_ref(), ratio));
                }
            }
        }
    }
    Ok(rows)
}

/// The full-attention output of every (layer, head, step) and its norm.
struct FullOutputs {
    /// `[layer][head][step][head_dim]`.
    out: Vec<f32>,
}

impl FullOutputs {
    fn new(t: &AttentionTrace) -> Self {
        let d = t.head_dim;
        let mut out = vec![0.0f32; t.layers.len() * t.heads * t.decode_steps * d];
        for (li, layer) in t.layers.iter().enumerate() {
            for kv in 0..t.kv_heads {
                let v = HeadView {
                    trace: t,
                    layer,
                    kv_head: kv,
                    query_head: None,
                };
                for h in v.group_heads() {
                    for s in 0..t.decode_steps {
                        let o = &mut out[((li * t.heads + h) * t.decode_steps + s) * d..][..d];
                        let p = v.decode_attn(h, s);
                        for (j, &pj) in p[..t.prompt_len + s + 1].iter().enumerate() {
                            for (a, b) in o.iter_mut().zip(v.value(kv, j)) {
                                *a += pj * b;
                            }
                        }
                    }
                }
            }
        }
        FullOutputs { out }
    }

    fn get(&self, t: &AttentionTrace, li: usize, h: usize, s: usize) -> &[f32] {
        let d = t.head_dim;
        &self.out[((li * t.heads + h) * t.decode_steps + s) * d..][..d]
    }
}

fn score(t: &AttentionTrace, full: &FullOutputs, rule: &dyn Selector, ratio: f64) -> EvalRow {
    let (p, d, steps) = (t.prompt_len, t.head_dim, t.decode_steps);
    let budget = budget_for(ratio, p);
    let (mut mass, mut recall, mut err, mut n_head) = (0.0, 0.0, 0.0, 0usize);
    let (mut fact_hits, mut fact_cells) = (0usize, 0usize);
    let fact = t.fact.clone().unwrap_or(0..0);
    // held[step][fact token] = recorded layers where some KV head keeps it.
    let mut held = vec![vec![0usize; fact.len()]; steps];
    let mut keep = vec![false; p];
    let mut oracle = vec![false; p];
    let mut o_kept = vec![0.0f32; d];
    for (li, layer) in t.layers.iter().enumerate() {
        let mut layer_holds = vec![vec![false; fact.len()]; steps];
        for kv in 0..t.kv_heads {
            let v = HeadView {
                trace: t,
                layer,
                kv_head: kv,
                query_head: None,
            };
            if rule.kind() == Kind::Eviction {
                keep.fill(false);
                rule.select(&v, budget, 0, &mut keep);
            }
            for (s, step_holds) in layer_holds.iter_mut().enumerate() {
                if rule.kind() == Kind::Selection {
                    keep.fill(false);
                    rule.select(&v, budget, s, &mut keep);
                }
                let ctx = p + s + 1;
                for h in v.group_heads() {
                    if rule.per_query_head() {
                        keep.fill(false);
                        let vh = HeadView {
                            query_head: Some(h),
                            ..v
                        };
                        rule.select(&vh, budget, s, &mut keep);
                    }
                    oracle.fill(false);
                    policies::mark_top_k(&v.decode_attn(h, s)[..p], budget, 0, &mut oracle);
                    let hits = keep.iter().zip(&oracle).filter(|(a, b)| **a && **b).count();
                    recall += hits as f64 / budget as f64;
                    for (i, j) in fact.clone().enumerate() {
                        if keep[j] {
                            fact_hits += 1;
                            step_holds[i] = true;
                        }
                        fact_cells += 1;
                    }
                    let row = &v.decode_attn(h, s)[..ctx];
                    o_kept.fill(0.0);
                    let mut m = 0.0f64;
                    for (j, &pj) in row.iter().enumerate() {
                        if j >= p || keep[j] {
                            m += pj as f64;
                            for (a, b) in o_kept.iter_mut().zip(v.value(kv, j)) {
                                *a += pj * b;
                            }
                        }
                    }
                    let o = full.get(t, li, h, s);
                    let scale = if m > 0.0 { 1.0 / m as f32 } else { 0.0 };
                    let diff: f64 = o_kept
                        .iter()
                        .zip(o)
                        .map(|(a, b)| ((a * scale - b) as f64).powi(2))
                        .sum();
                    let norm: f64 = o.iter().map(|&b| (b as f64).powi(2)).sum();
                    mass += m;
                    err += (diff / norm.max(f64::MIN_POSITIVE)).sqrt();
                    n_head += 1;
                }
            }
        }
        for s in 0..steps {
            for (i, &h) in layer_holds[s].iter().enumerate() {
                held[s][i] += h as usize;
            }
        }
    }
    let layers = t.layers.len();
    let survives = held
        .iter()
        .all(|step| step.iter().all(|&n| 2 * n >= layers));
    EvalRow {
        policy: rule.name().to_string(),
        kind: match rule.kind() {
            Kind::Eviction => "eviction",
            Kind::Selection => "selection",
        },
        keep_ratio: ratio,
        budget_tokens: budget,
        mass: mass / n_head as f64,
        recall: recall / n_head as f64,
        output_error: err / n_head as f64,
        fact_kept: t
            .fact
            .as_ref()
            .map(|_| fact_hits as f64 / fact_cells.max(1) as f64),
        fact_survives: t.fact.as_ref().map(|_| survives),
    }
}

/// Softmax of `q . k_j / sqrt(d)` over `keys[..n]`, key `j` from `pick(j)`, into `out`.
fn attention_row<'a>(q: &[f32], n: usize, pick: impl Fn(usize) -> &'a [f32], out: &mut [f32]) {
    let scale = 1.0 / (q.len() as f32).sqrt();
    for (j, o) in out[..n].iter_mut().enumerate() {
        *o = q.iter().zip(pick(j)).map(|(a, b)| a * b).sum::<f32>() * scale;
    }
    let max = out[..n].iter().fold(f32::NEG_INFINITY, |a, &b| a.max(b));
    let mut z = 0.0;
    for o in out[..n].iter_mut() {
        *o = (*o - max).exp();
        z += *o;
    }
    out[..n].iter_mut().for_each(|o| *o /= z);
}

fn score_quantized(t: &AttentionTrace, name: &str, kivi: Kivi, ratio: f64) -> EvalRow {
    let (p, d, steps, total) = (t.prompt_len, t.head_dim, t.decode_steps, t.total_tokens());
    let budget = budget_for(ratio, p);
    let (mut mass, mut recall, mut err, mut n) = (0.0, 0.0, 0.0, 0usize);
    let (mut exact, mut approx) = (vec![0.0f32; total], vec![0.0f32; total]);
    let (mut top_exact, mut top_approx) = (vec![false; p], vec![false; p]);
    let (mut o, mut o_q) = (vec![0.0f64; d], vec![0.0f64; d]);
    for layer in &t.layers {
        for kv in 0..t.kv_heads {
            let v = HeadView {
                trace: t,
                layer,
                kv_head: kv,
                query_head: None,
            };
            let span = kv * total * d..(kv + 1) * total * d;
            let kq = kivi.keys(&layer.keys[span.clone()], d);
            let vq = kivi.values(&layer.values[span], d);
            for h in v.group_heads() {
                for s in 0..steps {
                    let ctx = p + s + 1;
                    let nq = kivi.quantized_tokens(ctx);
                    let q = v.decode_query(h, s);
                    attention_row(q, ctx, |j| v.key(kv, j), &mut exact);
                    attention_row(
                        q,
                        ctx,
                        |j| {
                            if j < nq {
                                &kq[j * d..(j + 1) * d]
                            } else {
                                v.key(kv, j)
                            }
                        },
                        &mut approx,
                    );
                    mass += exact[..ctx]
                        .iter()
                        .zip(&approx[..ctx])
                        .map(|(a, b)| a.min(*b) as f64)
                        .sum::<f64>();
                    top_exact.fill(false);
                    top_approx.fill(false);
                    policies::mark_top_k(&exact[..p], budget, 0, &mut top_exact);
                    policies::mark_top_k(&approx[..p], budget, 0, &mut top_approx);
                    let hits = top_exact
                        .iter()
                        .zip(&top_approx)
                        .filter(|(a, b)| **a && **b)
                        .count();
                    recall += hits as f64 / budget as f64;
                    o.fill(0.0);
                    o_q.fill(0.0);
                    for j in 0..ctx {
                        let val = v.value(kv, j);
                        let val_q = if j < nq { &vq[j * d..(j + 1) * d] } else { val };
                        for c in 0..d {
                            o[c] += exact[j] as f64 * val[c] as f64;
                            o_q[c] += approx[j] as f64 * val_q[c] as f64;
                        }
                    }
                    let diff: f64 = o.iter().zip(&o_q).map(|(a, b)| (a - b).powi(2)).sum();
                    let norm: f64 = o.iter().map(|a| a * a).sum();
                    err += (diff / norm.max(f64::MIN_POSITIVE)).sqrt();
                    n += 1;
                }
            }
        }
    }
    EvalRow {
        policy: name.to_string(),
        kind: "quantization",
        keep_ratio: ratio,
        budget_tokens: budget,
        mass: mass / n as f64,
        recall: recall / n as f64,
        output_error: err / n as f64,
        fact_kept: t.fact.as_ref().map(|_| 1.0),
        fact_survives: t.fact.as_ref().map(|_| true),
    }
}

/// CSV header of [`csv_row`].
pub const CSV_HEADER: &str =
    "policy,kind,keep_ratio,budget_tokens,attention_mass,topk_recall,output_error,fact_kept,fact_survives";

/// One row as CSV.
pub fn csv_row(r: &EvalRow) -> String {
    format!(
        "{},{},{},{},{:.6},{:.6},{:.6},{},{}",
        r.policy,
        r.kind,
        r.keep_ratio,
        r.budget_tokens,
        r.mass,
        r.recall,
        r.output_error,
        r.fact_kept.map_or(String::new(), |f| format!("{f:.4}")),
        r.fact_survives.map_or(String::new(), |b| b.to_string())
    )
}

/// The rows as a Markdown table.
pub fn markdown(rows: &[EvalRow]) -> String {
    let mut s = String::from(
        "| policy | kind | keep | tokens | attention mass | top-k recall | output error | fact kept | fact survives |\n|---|---|---:|---:|---:|---:|---:|---:|---|\n",
    );
    for r in rows {
        s.push_str(&format!(
            "| {} | {} | {:.0} % | {} | {:.4} | {:.4} | {:.4} | {} | {} |\n",
            r.policy,
            r.kind,
            r.keep_ratio * 100.0,
            r.budget_tokens,
            r.mass,
            r.recall,
            r.output_error,
            r.fact_kept
                .map_or_else(|| "-".to_string(), |f| format!("{f:.3}")),
            r.fact_survives
                .map_or("-", |b| if b { "yes" } else { "no" })
        ));
    }
    s
}
