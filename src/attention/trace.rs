//! Reading a KVAT attention trace (format in `calibration/attention/FORMAT.md`).

use crate::error::{Error, Result};
use std::ops::Range;
use std::path::Path;

const MAGIC: &[u8; 8] = b"KVSIMATT";
const VERSION: u32 = 1;
/// Bytes of the fixed header: magic and twelve u32 fields.
const HEADER_BYTES: usize = 8 + 12 * 4;
/// Largest string in a header (model name, note).
const MAX_STRING: usize = 1 << 16;

/// The recorded tensors of one layer, as f32, row-major in the order given.
#[derive(Debug, Clone)]
pub struct LayerData {
    /// Index of the layer in the model.
    pub layer: u32,
    /// `[kv_heads][total_tokens][head_dim]`, after RoPE.
    pub keys: Vec<f32>,
    /// `[kv_heads][total_tokens][head_dim]`.
    pub values: Vec<f32>,
    /// Queries of the last `window` prompt positions: `[heads][window][head_dim]`.
    pub q_window: Vec<f32>,
    /// Queries of the decode steps: `[heads][decode_steps][head_dim]`.
    pub q_decode: Vec<f32>,
    /// Attention of the last `window` prompt queries: `[heads][window][prompt_len]`.
    pub attn_window: Vec<f32>,
    /// Attention of each decode step over the whole context, zero past its causal end:
    /// `[heads][decode_steps][total_tokens]`.
    pub attn_decode: Vec<f32>,
    /// Attention each prompt token received, summed over all prompt queries:
    /// `[heads][prompt_len]`.
    pub colsum: Vec<f32>,
}

/// A recorded attention trace.
#[derive(Debug, Clone)]
pub struct AttentionTrace {
    /// Model name from the GGUF file.
    pub model: String,
    /// Free text: where the fact is, what the model answered.
    pub note: String,
    /// Layers of the model.
    pub model_layers: u32,
    /// Query heads per layer.
    pub heads: usize,
    /// KV heads per layer.
    pub kv_heads: usize,
    /// Dimension of one head.
    pub head_dim: usize,
    /// Prompt tokens.
    pub prompt_len: usize,
    /// Greedy decode steps recorded.
    pub decode_steps: usize,
    /// Prompt queries recorded at the end of the prompt (the observation window).
    pub window: usize,
    /// Prompt positions of the planted fact's tokens, if any.
    pub fact: Option<Range<usize>>,
    /// The recorded layers.
    pub layers: Vec<LayerData>,
}

impl AttentionTrace {
    /// Tokens of prompt plus decode steps.
    pub fn total_tokens(&self) -> usize {
        self.prompt_len + self.decode_steps
    }

    /// Query heads that share one KV head.
    pub fn group(&self) -> usize {
        self.heads / self.kv_heads
    }

    /// Read and check a trace file.
    pub fn read(path: &Path) -> Result<AttentionTrace> {
        let bytes = std::fs::read(path)
            .map_err(|e| Error::input(format!("{}: cannot read: {e}", path.display())))?;
        Self::parse(&bytes).map_err(|e| Error::input(format!("{}: {e}", path.display())))
    }

    /// Parse a trace from its bytes; errors say what is wrong.
    pub fn parse(bytes: &[u8]) -> std::result::Result<AttentionTrace, String> {
        let mut r = Reader { bytes, at: 0 };
        if bytes.len() < HEADER_BYTES || &bytes[..8] != MAGIC {
            return Err("not a KVAT attention trace (bad magic)".into());
        }
        r.at = 8;
        let version = r.u32()?;
        if version != VERSION {
            return Err(format!(
                "KVAT version {version}; this kvsim reads {VERSION}"
            ));
        }
        let fields: Vec<usize> = (0..11)
            .map(|_| r.u32().map(|v| v as usize))
            .collect::<std::result::Result<_, _>>()?;
        let [model_layers, n_rec, heads, kv_heads, head_dim, prompt_len, decode_steps, window, fact_start, fact_len, name_len] =
            fields[..]
        else {
            unreachable!("eleven fields read")
        };
        if model_layers == 0 || n_rec == 0 || heads == 0 || kv_heads == 0 || head_dim == 0 {
            return Err("header has a zero layer, head or dimension count".into());
        }
        if heads % kv_heads != 0 {
            return Err(format!(
                "{heads} query heads do not split over {kv_heads} KV heads"
            ));
        }
        if prompt_len == 0 || window == 0 || window > prompt_len || decode_steps == 0 {
            return Err(format!(
                "prompt {prompt_len}, window {window}, decode steps {decode_steps}: need 0 < window <= prompt and at least one step"
            ));
        }
        if fact_len > 0 && fact_start + fact_len > prompt_len {
            return Err(format!(
                "fact tokens {fact_start}..{} lie outside the prompt of {prompt_len}",
                fact_start + fact_len
            ));
        }
        let model = r.string(name_len)?;
        let note_len = r.u32()? as usize;
        let note = r.string(note_len)?;
        let mut indices = Vec::with_capacity(n_rec.min(4096));
        for _ in 0..n_rec {
            let l = r.u32()?;
            if l as usize >= model_layers {
                return Err(format!(
                    "recorded layer {l} of a {model_layers}-layer model"
                ));
            }
            indices.push(l);
        }
        let total = prompt_len + decode_steps;
        let sizes = || {
            [
                kv_heads * total * head_dim,
                kv_heads * total * head_dim,
                heads * window * head_dim,
                heads * decode_steps * head_dim,
                heads * window * prompt_len,
                heads * decode_steps * total,
            ]
        };
        // In u128: header fields up to 2^32 cannot overflow it, so a hostile header is
        // caught by the length check below instead of wrapping.
        let wide = |n: &[usize]| n.iter().map(|&x| x as u128).product::<u128>();
        let per_layer: u128 = 2
            * (2 * wide(&[kv_heads, total, head_dim])
                + wide(&[heads, window, head_dim])
                + wide(&[heads, decode_steps, head_dim])
                + wide(&[heads, window, prompt_len])
                + wide(&[heads, decode_steps, total]))
            + 4 * wide(&[heads, prompt_len]);
        let expected = r.at as u128 + per_layer * n_rec as u128;
        if bytes.len() as u128 != expected {
            return Err(format!(
                "{} bytes, but the header describes {expected}",
                bytes.len()
            ));
        }
        let mut layers = Vec::with_capacity(n_rec);
        for layer in indices {
            let mut arrays = sizes().into_iter().map(|n| r.f16s(n));
            let mut next = || arrays.next().expect("six arrays");
            let (keys, values, q_window, q_decode, attn_window, attn_decode) =
                (next()?, next()?, next()?, next()?, next()?, next()?);
            let colsum = r.f32s(heads * prompt_len)?;
            layers.push(LayerData {
                layer,
                keys,
                values,
                q_window,
                q_decode,
                attn_window,
                attn_decode,
                colsum,
            });
        }
        let trace = AttentionTrace {
            model,
            note,
            model_layers: model_layers as u32,
            heads,
            kv_heads,
            head_dim,
            prompt_len,
            decode_steps,
            window,
            fact: (fact_len > 0).then_some(fact_start..fact_start + fact_len),
            layers,
        };
        trace.check_finite()?;
        trace.check_rows()?;
        Ok(trace)
    }

    /// Every recorded value must be finite: the first NaN or infinity is an error naming the
    /// record (its place in the file and its layer), the array and the element.
    fn check_finite(&self) -> std::result::Result<(), String> {
        let (kv, h, hd) = (self.kv_heads, self.heads, self.head_dim);
        let (t, p, w, d) = (
            self.total_tokens(),
            self.prompt_len,
            self.window,
            self.decode_steps,
        );
        for (rec, l) in self.layers.iter().enumerate() {
            let arrays: [Named; 7] = [
                (
                    "keys",
                    &l.keys,
                    &[("kv_head", kv), ("token", t), ("dim", hd)],
                ),
                (
                    "values",
                    &l.values,
                    &[("kv_head", kv), ("token", t), ("dim", hd)],
                ),
                (
                    "q_window",
                    &l.q_window,
                    &[("head", h), ("query", w), ("dim", hd)],
                ),
                (
                    "q_decode",
                    &l.q_decode,
                    &[("head", h), ("step", d), ("dim", hd)],
                ),
                (
                    "attn_window",
                    &l.attn_window,
                    &[("head", h), ("query", w), ("token", p)],
                ),
                (
                    "attn_decode",
                    &l.attn_decode,
                    &[("head", h), ("step", d), ("token", t)],
                ),
                ("colsum", &l.colsum, &[("head", h), ("token", p)]),
            ];
            for (field, values, dims) in arrays {
                let Some(i) = values.iter().position(|x| !x.is_finite()) else {
                    continue;
                };
                let mut at = Vec::new();
                let mut rest = i;
                for &(name, n) in dims.iter().rev() {
                    at.push(format!("{name} {}", rest % n));
                    rest /= n;
                }
                at.reverse();
                return Err(format!(
                    "record {rec} (layer {}): {field} [{}] is {}: NaN and infinite values are refused",
                    l.layer,
                    at.join(", "),
                    values[i]
                ));
            }
        }
        Ok(())
    }

    /// Every recorded attention row must be a distribution over its causal context.
    fn check_rows(&self) -> std::result::Result<(), String> {
        let (t, p, d) = (self.total_tokens(), self.prompt_len, self.decode_steps);
        for l in &self.layers {
            for h in 0..self.heads {
                for s in 0..d {
                    let row = &l.attn_decode[(h * d + s) * t..(h * d + s + 1) * t];
                    let sum: f64 = row[..p + s + 1].iter().map(|&x| x as f64).sum();
                    let tail = row[p + s + 1..].iter().any(|&x| x != 0.0);
                    if (sum - 1.0).abs() > 0.02 || tail || row.iter().any(|x| !x.is_finite()) {
                        return Err(format!(
                            "layer {} head {h} decode step {s}: attention sums to {sum:.4} or reaches past its position",
                            l.layer
                        ));
                    }
                }
            }
        }
        Ok(())
    }
}

/// An array of a layer by name, with its dimensions (name and length, outermost first).
type Named<'a> = (&'a str, &'a [f32], &'a [(&'a str, usize)]);

struct Reader<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl Reader<'_> {
    fn take(&mut self, n: usize) -> std::result::Result<&[u8], String> {
        let end = self
            .at
            .checked_add(n)
            .filter(|&e| e <= self.bytes.len())
            .ok_or_else(|| format!("truncated at byte {}", self.at))?;
        let s = &self.bytes[self.at..end];
        self.at = end;
        Ok(s)
    }

    fn u32(&mut self) -> std::result::Result<u32, String> {
        let b = self.take(4)?;
        Ok(u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    }

    fn string(&mut self, n: usize) -> std::result::Result<String, String> {
        if n > MAX_STRING {
            return Err(format!("header string of {n} bytes"));
        }
        let b = self.take(n)?;
        String::from_utf8(b.to_vec()).map_err(|_| "header string is not UTF-8".to_string())
    }

    fn f16s(&mut self, n: usize) -> std::result::Result<Vec<f32>, String> {
        let b = self.take(n * 2)?;
        Ok(b.chunks_exact(2)
            .map(|c| f16_to_f32(u16::from_le_bytes([c[0], c[1]])))
            .collect())
    }

    fn f32s(&mut self, n: usize) -> std::result::Result<Vec<f32>, String> {
        let b = self.take(n * 4)?;
        Ok(b.chunks_exact(4)
            .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect())
    }
}

/// IEEE 754 half precision to single precision.
pub fn f16_to_f32(h: u16) -> f32 {
    let sign = ((h >> 15) as u32) << 31;
    let exp = ((h >> 10) & 0x1f) as u32;
    let frac = (h & 0x3ff) as u32;
    let bits = match exp {
        0 if frac == 0 => sign,
        0 => {
            // Subnormal: normalise the fraction.
            let shift = frac.leading_zeros() - 21;
            let frac = (frac << shift) & 0x3ff;
            sign | ((113 - shift) << 23) | (frac << 13)
        }
        0x1f => sign | 0x7f80_0000 | (frac << 13),
        _ => sign | ((exp + 112) << 23) | (frac << 13),
    };
    f32::from_bits(bits)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn half_precision_values() {
        assert_eq!(f16_to_f32(0x3c00), 1.0);
        assert_eq!(f16_to_f32(0xc000), -2.0);
        assert_eq!(f16_to_f32(0x3555), 0.333_251_95);
        assert_eq!(f16_to_f32(0x0001), 5.960_464_5e-8); // smallest subnormal
        assert_eq!(f16_to_f32(0x03ff), 6.097_555e-5); // largest subnormal
        assert_eq!(f16_to_f32(0x7bff), 65504.0);
        assert!(f16_to_f32(0x7c00).is_infinite());
        assert_eq!(f16_to_f32(0x8000).to_bits(), 0x8000_0000);
    }

    #[test]
    fn rejects_garbage_and_truncation() {
        assert!(AttentionTrace::parse(b"hello")
            .unwrap_err()
            .contains("magic"));
        let mut b = MAGIC.to_vec();
        b.extend_from_slice(&2u32.to_le_bytes());
        b.extend_from_slice(&[0u8; 44]);
        assert!(AttentionTrace::parse(&b).unwrap_err().contains("version 2"));
    }

    /// A one-head, one-dimension trace of one prompt token and one decode step, with the
    /// given f16 key of token 0 and f32 column sum.
    fn tiny(key0: u16, colsum: f32) -> Vec<u8> {
        let mut b = MAGIC.to_vec();
        // version, layers, recorded, heads, kv heads, head dim, prompt, decode, window,
        // fact start, fact length, name length; note length; the layer index.
        for v in [1u32, 1, 1, 1, 1, 1, 1, 1, 1, 0, 0, 0, 0, 0] {
            b.extend_from_slice(&v.to_le_bytes());
        }
        let one = 0x3c00u16;
        let half = 0x3800u16;
        // keys (2), values (2), q_window, q_decode, attn_window, attn_decode (2).
        for h in [key0, one, one, one, one, one, one, half, half] {
            b.extend_from_slice(&h.to_le_bytes());
        }
        b.extend_from_slice(&colsum.to_le_bytes());
        b
    }

    #[test]
    fn nan_and_infinite_values_are_refused_naming_record_field_and_element() {
        let ok = AttentionTrace::parse(&tiny(0x3c00, 1.0)).unwrap();
        assert_eq!(ok.layers[0].keys, vec![1.0, 1.0]);
        let e = AttentionTrace::parse(&tiny(0x7e00, 1.0)).unwrap_err();
        assert!(
            e.contains("record 0 (layer 0): keys [kv_head 0, token 0, dim 0] is NaN"),
            "{e}"
        );
        let e = AttentionTrace::parse(&tiny(0x7c00, 1.0)).unwrap_err();
        assert!(e.contains("keys") && e.contains("is inf"), "{e}");
        let e = AttentionTrace::parse(&tiny(0x3c00, f32::NEG_INFINITY)).unwrap_err();
        assert!(e.contains("colsum [head 0, token 0] is -inf"), "{e}");
    }

    #[test]
    fn huge_dimensions_are_a_length_error_not_an_overflow() {
        let mut b = MAGIC.to_vec();
        let max = u32::MAX;
        // version, layers, recorded, heads, kv heads, head dim, prompt, decode, window,
        // fact start, fact length, name length.
        for v in [1, 1, 1, max, max, max, max, max, 1, 0, 0, 0] {
            b.extend_from_slice(&v.to_le_bytes());
        }
        b.extend_from_slice(&0u32.to_le_bytes()); // note length
        b.extend_from_slice(&0u32.to_le_bytes()); // layer 0
        let e = AttentionTrace::parse(&b).unwrap_err();
        assert!(e.contains("header describes"), "{e}");
    }
}
