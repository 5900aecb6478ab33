//! Checks every trace reader applies to a row before it allocates anything for it: the
//! per-request token bound, and the number of hash blocks a prompt can hold.

use super::Segment;
use crate::error::{Error, Result};

/// Most tokens (prompt plus output) one request may have: 2^24 = 16,777,216. It is above
/// the longest context window of any released model (10M tokens, Llama 4 Scout) and keeps
/// what one request costs bounded: at 16-token blocks, 2^20 block hashes (8 MiB). A row
/// past it is refused rather than allocated for (a 4,294,967,295-token row would otherwise
/// make `trace stats` and `paging` allocate gigabytes). It is a memory-safety limit, not a
/// modelling default: the engine's own `max_model_len` rejects long requests in a run.
pub const MAX_REQUEST_TOKENS: u64 = 1 << 24;

/// Refuse a request whose prompt plus output exceeds [`MAX_REQUEST_TOKENS`]; `at` names the
/// file and row.
pub fn request_tokens(at: &str, input: u64, output: u64) -> Result<()> {
    let total = input.saturating_add(output);
    if total > MAX_REQUEST_TOKENS {
        return Err(Error::input(format!(
            "{at}: {input} input + {output} output tokens exceed the limit of \
             {MAX_REQUEST_TOKENS} tokens per request"
        )));
    }
    Ok(())
}

/// The segments of a prompt of `input` tokens described by one id per `block_tokens`-token
/// block: block `j` covers tokens `[j b, (j+1) b)`, the last one possibly partial. More ids
/// than `ceil(input / block_tokens)` cannot describe the prompt and are refused, naming
/// `at` (file and row); fewer are allowed (the tokens past the last block are unique to
/// the request). `id` maps a trace id to a namespaced content id. Call
/// [`request_tokens`] first: it bounds `input`.
pub fn block_segments(
    at: &str,
    ids: &[u64],
    input: u32,
    block_tokens: u32,
    id: impl Fn(u64) -> u64,
) -> Result<Vec<Segment>> {
    block_count(at, ids.len(), input, block_tokens)?;
    let bt = block_tokens.max(1);
    let mut left = input;
    Ok(ids
        .iter()
        .map(|&h| {
            let tokens = left.min(bt);
            left -= tokens;
            Segment { id: id(h), tokens }
        })
        .collect())
}

/// Refuse `ids` hash ids for a prompt of `input` tokens in blocks of `block_tokens` when
/// they are more than `ceil(input / block_tokens)` (see [`block_segments`]).
pub fn block_count(at: &str, ids: usize, input: u32, block_tokens: u32) -> Result<()> {
    let bt = block_tokens.max(1);
    let most = input.div_ceil(bt) as usize;
    if ids > most {
        return Err(Error::input(format!(
            "{at}: {ids} hash ids, but {input} input tokens hold at most {most} blocks of {bt}"
        )));
    }
    Ok(())
}

/// A finite, non-negative number of seconds as nanoseconds, or an error naming `at` and
/// `field`. Times past 2^63 ns (292 years) are refused as well.
pub fn seconds_ns(at: &str, field: &str, s: f64) -> Result<u64> {
    if !s.is_finite() || s < 0.0 || s * 1e9 >= 9.2e18 {
        return Err(Error::input(format!(
            "{at}: {field} must be a finite number of seconds >= 0 (got {s})"
        )));
    }
    Ok((s * 1e9).round() as u64)
}

/// Write a note about a trace file (rows a reader left out) to stderr, unless the same
/// note was written before in this process: a run opens its workload more than once (to
/// check it, then to replay it), and a small file gives the same note each time.
pub fn note_once(path: &std::path::Path, note: &str) {
    static NOTED: std::sync::Mutex<Vec<String>> = std::sync::Mutex::new(Vec::new());
    let line = format!("note: {}: {note}", path.display());
    let Ok(mut noted) = NOTED.lock() else {
        return;
    };
    if !noted.contains(&line) {
        eprintln!("{line}");
        noted.push(line);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn token_bound_names_the_row() {
        assert!(request_tokens("t.csv:3", 1 << 23, 1 << 23).is_ok());
        let e = request_tokens("t.csv:3", u32::MAX as u64, 1)
            .unwrap_err()
            .to_string();
        assert!(e.starts_with("t.csv:3: 4294967295 input + 1 output"), "{e}");
    }

    #[test]
    fn blocks_cover_the_prompt_and_refuse_extra_ids() {
        let s = block_segments("x:1", &[7, 8, 9], 40, 16, |h| h + 100).unwrap();
        let tokens: Vec<u32> = s.iter().map(|s| s.tokens).collect();
        assert_eq!(tokens, vec![16, 16, 8]);
        assert_eq!(s[2].id, 109);
        // Fewer ids than blocks: allowed.
        assert_eq!(block_segments("x:1", &[7], 40, 16, |h| h).unwrap().len(), 1);
        // 40 tokens fit 3 blocks of 16, not 4.
        let e = block_segments("x:2", &[1, 2, 3, 4], 40, 16, |h| h)
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("x:2: 4 hash ids") && e.contains("at most 3 blocks"),
            "{e}"
        );
        assert!(block_segments("x:3", &[1], 0, 16, |h| h).is_err());
    }

    #[test]
    fn seconds_refuse_nan_and_negative() {
        assert_eq!(seconds_ns("a:1", "t", 1.5).unwrap(), 1_500_000_000);
        for bad in [f64::NAN, -1.0, f64::INFINITY, 1e12] {
            let e = seconds_ns("a:1", "timestamp", bad).unwrap_err().to_string();
            assert!(e.starts_with("a:1: timestamp must be"), "{e}");
        }
    }
}
