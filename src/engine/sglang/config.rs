//! The SGLang engine's settings, under SGLang 0.5.23's own argument names
//! (`srt/arg_groups/fields/schedule.py`, `memory.py`), with its defaults.

/// `--schedule-policy` (`managers/schedule_policy.py`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SchedulePolicy {
    /// First come, first served: the queue is never re-sorted (the default).
    Fcfs,
    /// Longest prefix match, with the in-batch prefix dedup; falls back to fcfs while
    /// more than 128 requests wait.
    Lpm,
    /// Depth-first order of the radix tree, heavier subtrees first.
    DfsWeight,
    /// Longest output first (`max_new_tokens`).
    Lof,
    /// A seeded shuffle (SGLang uses Python's global RNG; no run matches it exactly).
    Random,
}

impl SchedulePolicy {
    /// Parse SGLang's name.
    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "fcfs" => SchedulePolicy::Fcfs,
            "lpm" => SchedulePolicy::Lpm,
            "dfs-weight" => SchedulePolicy::DfsWeight,
            "lof" => SchedulePolicy::Lof,
            "random" => SchedulePolicy::Random,
            _ => return None,
        })
    }

    /// SGLang's name.
    pub fn as_str(self) -> &'static str {
        match self {
            SchedulePolicy::Fcfs => "fcfs",
            SchedulePolicy::Lpm => "lpm",
            SchedulePolicy::DfsWeight => "dfs-weight",
            SchedulePolicy::Lof => "lof",
            SchedulePolicy::Random => "random",
        }
    }

    /// Matches every waiting request against the tree to sort (`CacheAwarePolicy`).
    pub fn is_cache_aware(self) -> bool {
        matches!(self, SchedulePolicy::Lpm | SchedulePolicy::DfsWeight)
    }
}

/// Names of the policies, for error messages.
pub const POLICY_NAMES: &str = "fcfs, lpm, dfs-weight, lof, random";

/// `WAITING_QUEUE_PREFIX_MATCH_MAX` (schedule_policy.py:137): lpm turns into fcfs above
/// this many waiting requests, and the waiting-prefix refresh touches this many.
pub const WAITING_QUEUE_PREFIX_MATCH_MAX: usize = 128;
/// `IN_BATCH_PREFIX_CACHING_CHECK_THRESHOLD` (schedule_policy.py:110).
pub const IN_BATCH_CHECK_THRESHOLD: usize = 32;
/// `IN_BATCH_PREFIX_CACHING_DEPRIORITIZE_THRESHOLD` (schedule_policy.py:117).
pub const IN_BATCH_DEPRIORITIZE_THRESHOLD: usize = 32;
/// `WAITING_PREFIX_REFRESH_INTERVAL` (schedule_policy.py:139): every this many sorts of a
/// cache-agnostic policy, the waiting requests' prefixes are touched in the tree.
pub const WAITING_PREFIX_REFRESH_INTERVAL: u64 = 32;
/// `SGLANG_CLIP_MAX_NEW_TOKENS_ESTIMATION` (environ.py:650).
pub const CLIP_MAX_NEW_TOKENS: u64 = 4096;

/// Resolved settings of one SGLang engine core.
#[derive(Debug, Clone, PartialEq)]
pub struct SglangConfig {
    /// Tokens per KV page (`--page-size`, default 1).
    pub page_size: u32,
    /// Token slots of the KV pool (`max_total_num_tokens`).
    pub max_total_tokens: u64,
    /// Most requests running at once (`--max-running-requests`; also the rows of
    /// `req_to_token_pool`).
    pub max_running_requests: u32,
    /// Prompt tokens one prefill batch may take (`--max-prefill-tokens`, 16384).
    pub max_prefill_tokens: u32,
    /// Tokens per prefill chunk (`--chunked-prefill-size`); `None` disables chunking.
    pub chunked_prefill_size: Option<u32>,
    /// `--schedule-policy`.
    pub schedule_policy: SchedulePolicy,
    /// `--schedule-conservativeness` (scales the new-token ratio; 1.0).
    pub schedule_conservativeness: f64,
    /// The model's context length (bounds a request's prompt plus output).
    pub context_len: u32,
    /// Requests reserve their whole remaining output at admission (`ignore_eos`).
    pub ignore_eos: bool,
    /// Synchronous scheduling (`--disable-overlap-schedule`); SGLang overlaps by default.
    pub disable_overlap_schedule: bool,
    /// Seed of the `random` policy's shuffle.
    pub seed: u64,
}

impl SglangConfig {
    /// `max_req_len` (scheduler.py): `min(context_len - 1, max_total_tokens - 1)`.
    pub fn max_req_len(&self) -> u64 {
        (self.context_len as u64)
            .saturating_sub(1)
            .min(self.max_total_tokens.saturating_sub(1))
    }

    /// `init_req_max_new_tokens` (scheduler.py:2693) with the allocator's
    /// `max_new_tokens_for_memory`: the output a request of `input` prompt tokens may
    /// generate of the `max_new` it asks for.
    pub fn clamp_max_new(&self, input: u64, max_new: u64) -> u64 {
        let page = self.page_size.max(1) as u64;
        let by_len = max_new.min(self.max_req_len().saturating_sub(input + 1));
        let paged_input = input.div_ceil(page) * page;
        by_len.min(self.max_total_tokens.saturating_sub(paged_input + page + 1))
    }

    /// `max_req_input_len` (scheduler.py): `max_req_len - 5`; longer prompts are refused.
    pub fn max_req_input_len(&self) -> u64 {
        self.max_req_len().saturating_sub(5)
    }
}
