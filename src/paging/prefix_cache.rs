//! A request trace replayed through a paging policy in the order a vLLM prefix cache makes
//! its calls, one request at a time (`kvsim paging --order serving`). It restates, with no
//! engine around it, what the serving simulator does to a policy, so that the two can be
//! checked against each other and compared with the classic block stream.
//!
//! For each request, whose prompt holds `n` full blocks and occupies `ceil(prompt / bs)`
//! blocks:
//! 1. lookup: the longest run of cached blocks from the start, at most `(prompt - 1) / bs`
//!    blocks (vLLM leaves at least one token to compute); each is pinned and is a hit;
//! 2. allocation of the other blocks: empty blocks first, then one eviction each, told the
//!    content the block will hold when it is a full prompt block;
//! 3. registration of the new full blocks in order: a content already cached (further into
//!    the prompt than the first miss) is a hit of that copy and its block stays empty;
//!    otherwise the content enters the cache in use;
//! 4. release, last block first: contents go out of use (LRU recency is this order: a
//!    prompt's first block is the most recent), empty blocks return.
//!
//! The classic stream (`--order trace`) instead requests every full block in prompt order
//! and counts a hit for any cached block: it has no prefix rule, no pins (a request may evict
//! its own blocks) and no release order.

use super::{Eviction, Req, NEVER};
use crate::idhash::BlockHashMap;

/// One request of the replay.
#[derive(Debug, Clone)]
pub struct PrefixRequest {
    /// Hashes of the prompt's full blocks.
    pub hashes: Vec<u64>,
    /// Blocks the request occupies (full plus a partial last one).
    pub blocks: usize,
    /// Most blocks a lookup may hit.
    pub max_hit: usize,
}

impl PrefixRequest {
    /// A request of `prompt_tokens` tokens with these full-block hashes, blocks of `bs`.
    pub fn new(hashes: Vec<u64>, prompt_tokens: u32, bs: u32) -> Self {
        PrefixRequest {
            hashes,
            blocks: prompt_tokens.div_ceil(bs) as usize,
            max_hit: (prompt_tokens.saturating_sub(1) / bs) as usize,
        }
    }
}

/// Dense page ids and, per request and block, the next request holding the block.
pub struct PrefixTrace {
    requests: Vec<PrefixRequest>,
    pages: Vec<Vec<u32>>,
    next_use: Vec<Vec<u64>>,
    /// Distinct contents.
    pub num_pages: usize,
}

impl PrefixTrace {
    /// Number the contents and find next uses (one backward pass).
    pub fn new(requests: Vec<PrefixRequest>) -> Self {
        let mut ids: BlockHashMap<u32> = BlockHashMap::default();
        let pages: Vec<Vec<u32>> = requests
            .iter()
            .map(|r| {
                r.hashes
                    .iter()
                    .map(|h| {
                        let n = ids.len() as u32;
                        *ids.entry(*h).or_insert(n)
                    })
                    .collect()
            })
            .collect();
        let mut last = vec![NEVER; ids.len()];
        let mut next_use: Vec<Vec<u64>> = vec![Vec::new(); requests.len()];
        for (r, ps) in pages.iter().enumerate().rev() {
            next_use[r] = ps.iter().map(|&p| last[p as usize]).collect();
            for &p in ps {
                last[p as usize] = r as u64;
            }
        }
        PrefixTrace {
            num_pages: ids.len(),
            requests,
            pages,
            next_use,
        }
    }

    /// Full prompt blocks over all requests.
    pub fn full_blocks(&self) -> u64 {
        self.requests.iter().map(|r| r.hashes.len() as u64).sum()
    }

    /// Replay through `policy` with `k` blocks; returns the prefix-hit blocks. Requests that
    /// need more than `k` blocks are skipped (the engine rejects them).
    pub fn replay(&self, policy: &mut dyn Eviction, k: usize) -> u64 {
        self.replay_each(policy, k).iter().sum()
    }

    /// [`PrefixTrace::replay`], with the prefix-hit blocks of each request.
    pub fn replay_each(&self, policy: &mut dyn Eviction, k: usize) -> Vec<u64> {
        let mut each = vec![0u64; self.requests.len()];
        let mut clock = 0u64;
        let mut req = |page: u32, next_use: u64| {
            clock += 1;
            Req {
                t: clock,
                page,
                next_use,
                pred: next_use as f64,
            }
        };
        let mut empty = k;
        let mut registered: Vec<bool> = Vec::new();
        for (r, rq) in self.requests.iter().enumerate() {
            if rq.blocks > k {
                continue;
            }
            let (pages, nu) = (&self.pages[r], &self.next_use[r]);
            let n = pages.len();
            let hit = pages
                .iter()
                .take(rq.max_hit.min(n))
                .take_while(|&&p| policy.contains(p))
                .count();
            for i in 0..hit {
                policy.pin(pages[i]);
                policy.hit(&req(pages[i], nu[i]));
            }
            each[r] = hit as u64;
            let need = rq.blocks - hit;
            let from_empty = need.min(empty);
            empty -= from_empty;
            for j in from_empty..need {
                // The content the block will hold, if a full prompt block (a policy may
                // remember it in a ghost list).
                let incoming = pages.get(hit + j).copied().unwrap_or(u32::MAX - 1);
                policy.evict(&req(incoming, NEVER));
            }
            registered.clear();
            registered.resize(n, true);
            for i in hit..n {
                if policy.contains(pages[i]) {
                    policy.hit(&req(pages[i], nu[i]));
                    registered[i] = false;
                } else {
                    policy.insert_pinned(&req(pages[i], nu[i]));
                }
            }
            for i in (0..rq.blocks).rev() {
                if i < n && registered[i] {
                    policy.unpin(&req(pages[i], nu[i]));
                } else {
                    empty += 1;
                }
            }
        }
        each
    }
}

/// `kvsim paging --order serving`: every policy (which must act in serving) at every size,
/// hits summed over the traces, costs relative to Belady under the same order when `opt`
/// or when `belady` is one of the policies (its own run is the optimum then).
pub fn run_prefix(
    traces: &[PrefixTrace],
    ks: &[usize],
    policies: &[String],
    runs: u32,
    seed: u64,
    opt: bool,
) -> crate::error::Result<Vec<super::run::PagingRow>> {
    use super::policies::{entry, PolicyParams};
    for p in policies {
        if !entry(p)?.serves() {
            return Err(crate::error::Error::input(format!(
                "--order serving: policy `{p}` does not act in serving; use one of {}",
                super::policies::serving_names().join(", ")
            )));
        }
    }
    let blocks: u64 = traces.iter().map(|t| t.full_blocks()).sum();
    let hits_of = |name: &str, k: usize, run: u32| -> u64 {
        traces
            .iter()
            .map(|t| {
                let s = crate::workload::mix(seed, run as u64);
                let e = entry(name).expect("checked");
                let mut pol = (e.build)(&PolicyParams::new(k, t.num_pages, s));
                t.replay(pol.as_mut(), k)
            })
            .sum()
    };
    let with_opt = opt || policies.iter().any(|p| p == "belady");
    let mut rows = Vec::new();
    for &k in ks {
        crate::interrupt::check()?;
        let opt_misses = with_opt.then(|| blocks - hits_of("belady", k, 0));
        for p in policies {
            crate::interrupt::check()?;
            let n = if entry(p)?.randomized { runs.max(1) } else { 1 };
            let per_run: Vec<f64> = match opt_misses {
                Some(m) if p == "belady" => vec![m as f64],
                _ => (0..n)
                    .map(|run| (blocks - hits_of(p, k, run)) as f64)
                    .collect(),
            };
            let row =
                super::run::PagingRow::from_runs(p, "-".into(), k, blocks, opt_misses, &per_run);
            rows.push(row);
        }
    }
    Ok(rows)
}
