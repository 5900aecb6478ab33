//! SGLang 0.5.23's `PrefillAdder` (`managers/schedule_policy.py:607-1706`) and its
//! `PrefillBudget` (`mem_cache/prefill_budget.py`): which waiting requests one prefill
//! batch takes, and how far each is chunked.
//!
//! Memory: a request is admitted when its extend, its clipped remaining output and one
//! page fit strictly below `available + evictable - total_offset`, where `total_offset`
//! starts at the running requests' remaining outputs times the new-token ratio and grows
//! by each admission's page-ceiled extend, a page and its clipped output. Compute: the
//! batch takes at most `max_prefill_tokens` and `chunked_prefill_size` page-ceiled extend
//! tokens; the request that overflows the chunk budget is cut at a page boundary and
//! becomes the chunked request.

use super::config::CLIP_MAX_NEW_TOKENS;
use super::pool::SlotPool;
use super::radix::RadixTree;
use super::request::SglReq;

/// `AddReqResult`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AddResult {
    /// Budgets left: try the next request.
    Continue,
    /// Out of memory budget.
    NoToken,
    /// A compute budget is spent (or a cut would be empty).
    Other,
}

/// One prefill batch being built.
#[derive(Debug)]
pub struct PrefillAdder {
    page: u64,
    rem_input: i64,
    rem_chunk: Option<i64>,
    total_offset: f64,
    current_offset: i64,
    /// Requests admitted, in order (slots).
    pub can_run: Vec<u32>,
    /// Of them, the one cut short (the new chunked request).
    pub new_chunked: Option<u32>,
}

fn ceil_page(n: u64, page: u64) -> u64 {
    n.div_ceil(page) * page
}

impl PrefillAdder {
    /// An adder over the running requests `running` (their remaining outputs reserved at
    /// `ratio`, or in full for `ignore_eos`).
    pub fn new<'a>(
        page: u64,
        ratio: f64,
        max_prefill_tokens: u32,
        chunked_prefill_size: Option<u32>,
        running: impl Iterator<Item = &'a SglReq>,
    ) -> Self {
        // `sum(...)` over the running requests, left to right, added to 0.
        let reserved = running.fold(0.0f64, |acc, r| {
            let rate = if r.ignore_eos { 1.0 } else { ratio };
            acc + r.remaining_new().min(CLIP_MAX_NEW_TOKENS) as f64 * rate
        });
        PrefillAdder {
            page,
            rem_input: max_prefill_tokens as i64,
            rem_chunk: chunked_prefill_size.map(|c| c as i64),
            total_offset: reserved,
            current_offset: 0,
            can_run: Vec::new(),
            new_chunked: None,
        }
    }

    fn room(pool: &SlotPool, tree: &RadixTree) -> f64 {
        (pool.available() + tree.evictable()) as f64
    }

    fn remaining_total(&self, pool: &SlotPool, tree: &RadixTree) -> f64 {
        Self::room(pool, tree) - self.total_offset
    }

    fn remaining_current(&self, pool: &SlotPool, tree: &RadixTree) -> f64 {
        Self::room(pool, tree) - self.current_offset as f64
    }

    /// `budget_state()`.
    pub fn state(&self, pool: &SlotPool, tree: &RadixTree) -> AddResult {
        if !(self.remaining_total(pool, tree) > 0.0 && self.remaining_current(pool, tree) > 0.0) {
            return AddResult::NoToken;
        }
        if self.rem_input <= 0 || self.rem_chunk.is_some_and(|c| c <= 0) {
            return AddResult::Other;
        }
        AddResult::Continue
    }

    /// `_update_prefill_budget` with `PrefillBudget.reserve`.
    fn charge(&mut self, extend: u64, max_new: u64) {
        let ext = ceil_page(extend, self.page);
        let immediate = ext + self.page;
        self.total_offset += (immediate + max_new) as f64;
        self.current_offset += immediate as i64;
        self.rem_input -= ext as i64;
        if let Some(c) = &mut self.rem_chunk {
            *c -= ext as i64;
        }
    }

    /// `add_chunked_req`: the next chunk of the request left mid-prefill. Returns true if
    /// it is still cut short after this chunk.
    pub fn add_chunked_req(
        &mut self,
        slot: u32,
        r: &mut SglReq,
        pool: &SlotPool,
        tree: &RadixTree,
    ) -> bool {
        let Some(chunk) = self.rem_chunk else {
            return true;
        };
        let fit = (self.remaining_total(pool, tree) as i64).min(chunk);
        let rem = if fit > 0 { fit } else { chunk };
        let cand = (r.fill_len() - r.prefix_len) as i64;
        let truncated = cand > rem;
        let new_len = cand.min(rem).max(0) as usize;
        r.extend_end = r.prefix_len + new_len;
        self.can_run.push(slot);
        let max_new = if truncated {
            0
        } else {
            (r.max_new as u64).min(CLIP_MAX_NEW_TOKENS)
        };
        self.charge(new_len as u64, max_new);
        truncated
    }

    /// `add_one_req` for a request whose prefix was just matched (`prefix_len`,
    /// `last_node`): admit it whole, cut it to the chunk budget, or refuse. An admitted
    /// request locks its matched path.
    pub fn add_one_req(
        &mut self,
        slot: u32,
        r: &mut SglReq,
        pool: &SlotPool,
        tree: &mut RadixTree,
    ) -> AddResult {
        let page = self.page;
        let max_new_rem = r.remaining_new().min(CLIP_MAX_NEW_TOKENS);
        let extend = (r.fill_len() - r.prefix_len) as u64;
        let total_tokens = extend + max_new_rem + page;
        // The candidate's own prefix is pinned while it is checked.
        tree.lock(r.last_node);
        let fits = (total_tokens as f64) < self.remaining_total(pool, tree);
        tree.unlock(r.last_node);
        if !fits {
            return AddResult::NoToken;
        }
        let input_tokens = ceil_page(extend, page);
        if self.rem_chunk.is_none()
            && !self.can_run.is_empty()
            && input_tokens as i64 >= self.rem_input
        {
            return AddResult::Other;
        }
        let mut max_new = (r.max_new as u64).min(CLIP_MAX_NEW_TOKENS);
        let mut ext = extend;
        let mut chunked = false;
        if let Some(limit) = self.rem_chunk {
            if input_tokens as i64 > limit {
                let cut = (limit.max(0) as u64) / page * page;
                let end = (r.prefix_len as u64 + cut) / page * page;
                let e = end as i64 - r.prefix_len as i64;
                if e <= 0 {
                    return AddResult::Other;
                }
                ext = e as u64;
                chunked = true;
                max_new = 0;
            }
        }
        r.extend_end = r.prefix_len + ext as usize;
        tree.lock(r.last_node);
        r.lock = Some(r.last_node);
        self.can_run.push(slot);
        if chunked {
            self.new_chunked = Some(slot);
        }
        self.charge(ext, max_new);
        self.state(pool, tree)
    }
}
