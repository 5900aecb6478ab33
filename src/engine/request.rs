//! A request's state inside the engine.

use crate::workload::Request;

/// Where a request is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    /// Queued, never scheduled.
    Waiting,
    /// Scheduled at least once and holding blocks.
    Running,
    /// Preempted: blocks freed, back in the waiting queue.
    Preempted,
    /// All output tokens generated.
    Finished,
}

/// Engine-side state of one request.
#[derive(Debug, Clone)]
pub struct EngineRequest {
    /// The request as read from the workload.
    pub req: Request,
    /// Lifecycle state.
    pub status: Status,
    /// Tokens whose KV is computed (or scheduled to be, during a step).
    pub num_computed: u32,
    /// Output tokens generated.
    pub generated: u32,
    /// Prefix-cache hit at first admission, tokens (-1 until admitted).
    pub cached_tokens: i64,
    /// Times preempted.
    pub preemptions: u32,
    /// Highest `num_computed` ever reached (to count recomputation).
    pub computed_high_water: u32,
    /// Tokens computed again after a preemption.
    pub recomputed_tokens: u64,
    /// When it was first scheduled, ns.
    pub first_scheduled_ns: Option<u64>,
    /// When its first output token was produced, ns.
    pub first_token_ns: Option<u64>,
    /// When its latest output token was produced, ns.
    pub last_token_ns: u64,
    /// Stop after this many output tokens (the trace's count; 1 on a prefill replica).
    pub output_limit: u32,
    /// Tokens whose KV arrives on admission without being computed (a prompt transferred
    /// from a prefill replica, or a swapped-out request); 0 otherwise.
    pub resume_tokens: u32,
    /// The resumed KV comes back from host memory (swap-in is charged to the step).
    pub resume_from_host: bool,
    /// Blocks of the request in the swap space.
    pub swapped_blocks: u64,
    /// Prompt tokens loaded from the CPU tier at first admission.
    pub cpu_hit_tokens: u64,
    /// The replica that ran the prompt.
    pub prefill_replica: u32,
    /// Asynchronous scheduling: tokens promised by steps in flight whose output is not yet
    /// applied (vLLM `num_output_placeholders`).
    pub placeholders: u32,
    /// Tokens scheduled in steps whose output is not yet applied (`num_in_flight_tokens`).
    pub in_flight_tokens: u32,
    /// In-flight tokens scheduled before the latest preemption: their output still arrives
    /// but no longer moves the reset counters (`num_stale_output_tokens`).
    pub stale_tokens: u32,
}

impl EngineRequest {
    /// A new waiting request.
    pub fn new(req: Request) -> Self {
        EngineRequest {
            status: Status::Waiting,
            num_computed: 0,
            generated: 0,
            cached_tokens: -1,
            preemptions: 0,
            computed_high_water: 0,
            recomputed_tokens: 0,
            first_scheduled_ns: None,
            first_token_ns: None,
            last_token_ns: 0,
            output_limit: req.output_tokens,
            resume_tokens: 0,
            resume_from_host: false,
            swapped_blocks: 0,
            cpu_hit_tokens: 0,
            prefill_replica: 0,
            placeholders: 0,
            in_flight_tokens: 0,
            stale_tokens: 0,
            req,
        }
    }

    /// Tokens known so far: prompt plus generated output.
    pub fn num_tokens(&self) -> u32 {
        self.req.input_tokens + self.generated
    }

    /// Tokens known or promised: [`EngineRequest::num_tokens`] plus the placeholders of
    /// steps in flight (equal to it with synchronous scheduling).
    pub fn num_tokens_with_placeholders(&self) -> u32 {
        self.num_tokens() + self.placeholders
    }

    /// Prompt plus all output: the most tokens this request will ever have.
    pub fn max_tokens(&self) -> u64 {
        self.req.input_tokens as u64 + self.req.output_tokens as u64
    }
}
