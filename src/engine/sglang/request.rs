//! A request's state in the SGLang engine (the scheduling fields of SGLang 0.5.23's
//! `managers/schedule_batch.py` `Req` and its `kv` record).

use super::radix::{NodeId, ROOT};
use crate::engine::request::EngineRequest;

/// One request.
#[derive(Debug, Clone)]
pub struct SglReq {
    /// The engine-independent state (the trace's request, output count, timestamps).
    pub er: EngineRequest,
    /// Token ids of the prompt and of every output token it will generate; empty until
    /// [`SglReq::materialize`] (a request deep in the queue needs none yet).
    pub tokens: Vec<u64>,
    /// Prompt tokens (`len(origin_input_ids)`).
    pub input_len: usize,
    /// Output tokens it may generate (`sampling_params.max_new_tokens` after
    /// `init_req_max_new_tokens`).
    pub max_new: u32,
    /// Admission reserves its remaining output in full (`ignore_eos`).
    pub ignore_eos: bool,
    /// Tokens whose KV it has (matched, or computed by earlier chunks) (`prefix_len`).
    pub prefix_len: usize,
    /// End of the tokens scheduled in the current extend (`extend_end`).
    pub extend_end: usize,
    /// Deepest tree node of its last match (`last_node`).
    pub last_node: NodeId,
    /// The node whose path it locks (`lock`).
    pub lock: Option<NodeId>,
    /// Leading tokens whose slots the tree owns (`kv.cache_protected_len`).
    pub protected_len: usize,
    /// Tokens with KV written (`kv.kv_committed_len`).
    pub committed: usize,
    /// Tokens with slots allocated (`kv.kv_allocated_len`).
    pub allocated: usize,
    /// Holds a `req_to_token` row.
    pub holds_row: bool,
    /// Was ever retracted (`retracted_stain`).
    pub retracted_stain: bool,
    /// Retracted and not yet re-admitted (`is_retracted`): a result still in flight for
    /// it is dropped.
    pub is_retracted: bool,
    /// Chunks scheduled whose result still leaves it mid-prefill
    /// (`inflight_middle_chunks`).
    pub inflight_middle_chunks: u32,
    /// SGLang's own `cached_tokens` (counted at the first admission only).
    pub sglang_cached_tokens: u64,
    /// Tokens already computed when it was last admitted (`already_computed`).
    pub already_computed: usize,
    /// Sort key of longest-prefix-match (`num_matched_prefix_tokens`).
    pub matched_for_sort: usize,
    /// Times retracted.
    pub retractions: u32,
    /// Admitted at least once.
    pub admitted_once: bool,
}

impl SglReq {
    /// A new request with its token ids and clamped output limit.
    pub fn new(er: EngineRequest, tokens: Vec<u64>, max_new: u32, ignore_eos: bool) -> Self {
        SglReq {
            input_len: er.req.input_tokens as usize,
            er,
            tokens,
            max_new,
            ignore_eos,
            prefix_len: 0,
            extend_end: 0,
            last_node: ROOT,
            lock: None,
            protected_len: 0,
            committed: 0,
            allocated: 0,
            holds_row: false,
            retracted_stain: false,
            is_retracted: false,
            inflight_middle_chunks: 0,
            sglang_cached_tokens: 0,
            already_computed: 0,
            matched_for_sort: 0,
            retractions: 0,
            admitted_once: false,
        }
    }

    /// Give the request its token ids (from the trace's segments) if it has none.
    pub fn materialize(&mut self) {
        if self.tokens.is_empty() {
            let n = self.input_len + self.max_new as usize;
            crate::prefix::token_ids(&self.er.req, n, &mut self.tokens);
        }
    }

    /// All output generated.
    pub fn finished(&self) -> bool {
        self.er.status == crate::engine::request::Status::Finished
    }

    /// Output tokens generated (`len(output_ids)`).
    pub fn generated(&self) -> usize {
        self.er.generated as usize
    }

    /// Prompt plus generated output (`fill_ids`).
    pub fn fill_len(&self) -> usize {
        self.input_len + self.generated()
    }

    /// The prompt and generated output's ids.
    pub fn fill_ids(&self) -> &[u64] {
        debug_assert!(!self.tokens.is_empty(), "materialize() first");
        &self.tokens[..self.fill_len()]
    }

    /// Tokens the current extend computes (`extend_len`).
    pub fn extend_len(&self) -> usize {
        self.extend_end - self.prefix_len
    }

    /// Output still to generate, clipped for the reservation estimate.
    pub fn remaining_new(&self) -> u64 {
        (self.max_new as u64).saturating_sub(self.generated() as u64)
    }
}
