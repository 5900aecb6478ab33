//! The engine core a replica runs: vLLM's scheduler over its block pool, or SGLang's over
//! its radix tree. Each engine's rules live in its own modules; this is the one seam the
//! replica, the cost model and the recorder see (schedule a step, describe it, apply its
//! output).

use super::block_pool::BlockCounts;
use super::replica::RejectReason;
use super::request::{EngineRequest, Status};
use super::scheduler::{HostTraffic, Scheduled, Scheduler, StepOutcome};
use super::sglang::scheduler::SglScheduler;
use crate::error::{Error, Result};

/// One engine core.
#[derive(Debug)]
pub enum EngineCore {
    /// vLLM 0.33.0's v1 scheduler and KV cache manager.
    Vllm(Box<Scheduler>),
    /// SGLang 0.5.23's scheduler, radix cache and token-slot pool.
    Sglang(Box<SglScheduler>),
}

/// What the recorder needs of a request that got a token.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TokenView {
    /// The request's index in the workload.
    pub id: u64,
    /// Output tokens generated so far.
    pub generated: u32,
    /// When its previous token came, ns.
    pub last_token_ns: u64,
    /// The token was its last.
    pub finished: bool,
}

impl EngineCore {
    /// The engine's name in reports.
    pub fn kind(&self) -> &'static str {
        match self {
            EngineCore::Vllm(_) => "vllm",
            EngineCore::Sglang(_) => "sglang",
        }
    }

    /// The vLLM scheduler, if this core is vLLM's.
    pub fn vllm(&self) -> Option<&Scheduler> {
        match self {
            EngineCore::Vllm(s) => Some(s),
            EngineCore::Sglang(_) => None,
        }
    }

    /// The vLLM scheduler, mutable, if this core is vLLM's.
    pub fn vllm_mut(&mut self) -> Option<&mut Scheduler> {
        match self {
            EngineCore::Vllm(s) => Some(s),
            EngineCore::Sglang(_) => None,
        }
    }

    /// The SGLang scheduler, if this core is SGLang's.
    pub fn sglang(&self) -> Option<&SglScheduler> {
        match self {
            EngineCore::Sglang(s) => Some(s),
            EngineCore::Vllm(_) => None,
        }
    }

    /// Schedule a step at `now_ns`; [`EngineCore::scheduled`] then holds it.
    pub fn schedule(&mut self, now_ns: u64) -> Result<()> {
        match self {
            EngineCore::Vllm(s) => {
                s.schedule(now_ns);
                Ok(())
            }
            EngineCore::Sglang(s) => s.schedule(now_ns),
        }
    }

    /// The step last scheduled.
    pub fn scheduled(&self) -> &[Scheduled] {
        match self {
            EngineCore::Vllm(s) => &s.scheduled,
            EngineCore::Sglang(s) => &s.scheduled,
        }
    }

    /// Apply the output of the oldest step in flight (`plan`, as it was scheduled).
    pub fn update_from_output(&mut self, now_ns: u64, plan: &[Scheduled], out: &mut StepOutcome) {
        match self {
            EngineCore::Vllm(s) => s.update_from_output(now_ns, plan, out),
            EngineCore::Sglang(s) => s.update_from_output(out),
        }
    }

    /// The request in `slot`, as the recorder sees a token of it.
    pub fn token_view(&self, slot: u32) -> TokenView {
        let (er, finished) = match self {
            EngineCore::Vllm(s) => {
                let r = s.request(slot);
                (r, r.status == Status::Finished)
            }
            EngineCore::Sglang(s) => {
                let r = s.request(slot);
                (&r.er, r.finished())
            }
        };
        TokenView {
            id: er.req.id,
            generated: er.generated,
            last_token_ns: er.last_token_ns,
            finished,
        }
    }

    /// The engine-independent state of the request in `slot`.
    pub fn request(&self, slot: u32) -> &EngineRequest {
        match self {
            EngineCore::Vllm(s) => s.request(slot),
            EngineCore::Sglang(s) => &s.request(slot).er,
        }
    }

    /// Record the time of a request's latest token.
    pub fn set_last_token(&mut self, slot: u32, now_ns: u64) {
        match self {
            EngineCore::Vllm(s) => s.set_last_token(slot, now_ns),
            EngineCore::Sglang(s) => s.set_last_token(slot, now_ns),
        }
    }

    /// Remove a finished request and return it.
    pub fn take_finished(&mut self, slot: u32) -> EngineRequest {
        match self {
            EngineCore::Vllm(s) => s.take_finished(slot),
            EngineCore::Sglang(s) => s.take_finished(slot).er,
        }
    }

    /// Queue a request.
    pub fn add_request(&mut self, er: EngineRequest) {
        match self {
            EngineCore::Vllm(s) => {
                s.add_request(er);
            }
            EngineCore::Sglang(s) => {
                s.add(er);
            }
        }
    }

    /// Why a request of `input` prompt and `output` output tokens cannot be served, if it
    /// cannot: more blocks than the whole cache (vLLM), a prompt of at least
    /// `max_req_input_len` tokens (SGLang, which refuses it).
    pub fn refuse(&self, input: u32, output: u32) -> Option<RejectReason> {
        match self {
            EngineCore::Vllm(s) => {
                let kv = s.kv();
                (kv.peak_blocks(input, output) > kv.num_usable_blocks() as u64)
                    .then_some(RejectReason::ExceedsKvCapacity)
            }
            EngineCore::Sglang(s) => {
                let c = s.config();
                if input as u64 + 6 > c.context_len as u64 {
                    Some(RejectReason::ExceedsMaxModelLen)
                } else if input as u64 >= c.max_req_input_len() {
                    Some(RejectReason::ExceedsKvCapacity)
                } else {
                    None
                }
            }
        }
    }

    /// Waiting requests.
    pub fn num_waiting(&self) -> usize {
        match self {
            EngineCore::Vllm(s) => s.num_waiting(),
            EngineCore::Sglang(s) => s.num_waiting(),
        }
    }

    /// Requests it holds (waiting or running; SGLang's mid-prefill and just-prefilled ones
    /// too, which are in neither of its queues).
    pub fn num_held(&self) -> usize {
        match self {
            EngineCore::Vllm(s) => s.num_waiting() + s.num_running(),
            EngineCore::Sglang(s) => s.num_held(),
        }
    }

    /// Running requests (SGLang: the decoding batch).
    pub fn num_running(&self) -> usize {
        match self {
            EngineCore::Vllm(s) => s.num_running(),
            EngineCore::Sglang(s) => s.num_running(),
        }
    }

    /// Nothing to schedule.
    pub fn is_idle(&self) -> bool {
        match self {
            EngineCore::Vllm(s) => s.is_idle(),
            EngineCore::Sglang(s) => s.is_idle(),
        }
    }

    /// Step n+1 is scheduled before step n's output is applied (vLLM's asynchronous
    /// scheduling, SGLang's overlap scheduler).
    pub fn is_async(&self) -> bool {
        match self {
            EngineCore::Vllm(s) => s.is_async(),
            EngineCore::Sglang(s) => s.overlaps(),
        }
    }

    /// Tokens still to produce (prompt and output) over the requests it holds.
    pub fn outstanding_tokens(&self) -> u64 {
        match self {
            EngineCore::Vllm(s) => s.outstanding_tokens(),
            EngineCore::Sglang(s) => s.outstanding_tokens(),
        }
    }

    /// KV by state. vLLM: blocks. SGLang: pages (`page_size` token slots): used = held by
    /// requests or locked in the tree, cached = the tree's evictable pages, free.
    pub fn counts(&self) -> BlockCounts {
        match self {
            EngineCore::Vllm(s) => s.kv().counts(),
            EngineCore::Sglang(s) => sglang_counts(s),
        }
    }

    /// Recount everything and check conservation (vLLM: every block; SGLang: free + tree +
    /// requests = the pool, and the tree against its nodes).
    pub fn audit(&self) -> Result<BlockCounts> {
        match self {
            EngineCore::Vllm(s) => s
                .kv()
                .audit()
                .map_err(|e| Error::failure(format!("block audit failed: {e}"))),
            EngineCore::Sglang(s) => {
                s.audit()
                    .map_err(|e| Error::failure(format!("token-slot audit failed: {e}")))?;
                Ok(sglang_counts(s))
            }
        }
    }

    /// Fraction of the KV cache held by requests.
    pub fn kv_usage(&self) -> f64 {
        let c = self.counts();
        c.used as f64 / c.total.max(1) as f64
    }

    /// SGLang's columns of the step just scheduled (`None` for vLLM).
    pub fn sglang_step(&self) -> Option<crate::engine::sglang::scheduler::StepSummary> {
        self.sglang().map(|s| s.step_summary())
    }

    /// Preemptions (SGLang: retractions) while scheduling the last step.
    pub fn step_preemptions(&self) -> u32 {
        match self {
            EngineCore::Vllm(s) => s.step_preemptions,
            EngineCore::Sglang(s) => s.log.retracted.len() as u32,
        }
    }

    /// Preemptions (SGLang: retractions) so far.
    pub fn total_preemptions(&self) -> u64 {
        match self {
            EngineCore::Vllm(s) => s.total_preemptions,
            EngineCore::Sglang(s) => s.total_retractions,
        }
    }

    /// Host transfers of the last step (SGLang's default radix cache has no host tier).
    pub fn step_traffic(&self) -> HostTraffic {
        match self {
            EngineCore::Vllm(s) => s.step_traffic,
            EngineCore::Sglang(_) => HostTraffic::default(),
        }
    }

    /// Cached blocks (SGLang: pages) evicted so far.
    pub fn evictions(&self) -> u64 {
        match self {
            EngineCore::Vllm(s) => s.kv().evictions(),
            EngineCore::Sglang(s) => s.evicted_tokens / s.config().page_size.max(1) as u64,
        }
    }

    /// Leading blocks of a prompt the cache holds: of its full-block `hashes` (vLLM), or
    /// the tokens of its ids `tokens` the radix tree holds, in blocks of `block_size`
    /// (SGLang), at most `hashes.len()`.
    pub fn cached_prefix_blocks(&self, hashes: &[u64], tokens: &[u64], block_size: u32) -> usize {
        match self {
            EngineCore::Vllm(s) => s.kv().cached_prefix_blocks(hashes),
            EngineCore::Sglang(s) => {
                let blocks = s.tree().cached_prefix(tokens) / block_size.max(1) as usize;
                blocks.min(hashes.len())
            }
        }
    }
}

fn sglang_counts(s: &SglScheduler) -> BlockCounts {
    let page = s.config().page_size.max(1) as u64;
    let pool = s.pool();
    let total = pool.total() / page;
    let free = pool.available() / page;
    let cached = s.tree().evictable() / page;
    BlockCounts {
        total: total as u32,
        used: (total - free - cached) as u32,
        cached: cached as u32,
        free: free as u32,
    }
}
