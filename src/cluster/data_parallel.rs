//! Data-parallel deployments (vLLM 0.33's `data_parallel_size`): `dp` engine cores, each
//! with its own scheduler and KV cache, behind one API server.
//!
//! - The API server sends each request to the core with the lowest score
//!   (`DPLBAsyncMPClient.get_core_engine_for_request`, `vllm/v1/engine/core_client.py`):
//!   its requests in flight, plus `6 x waiting x max(0, kv_usage - 0.5)` when it has a
//!   queue; ties go to the first core from a start index that moves on by one per request.
//!   vLLM reads the counts from snapshots the coordinator publishes every 100 ms, floored
//!   by the client's own in-flight count; kvsim reads them exact.
//! - A mixture-of-experts model's MoE layers gather every core's tokens (all-gather before
//!   the experts, reduce-scatter after), so the cores step together: every step starts
//!   when the slowest core is ready and lasts as long as the slowest core's; a core with
//!   nothing to run joins with a dummy batch (vLLM's `execute_dummy_batch`) and its GPU is
//!   busy meanwhile. Every core's routed experts see the whole group's tokens.
//!   A dense model's cores are independent replicas.

use super::routers::ClusterView;
use crate::engine::replica::{Planned, Replica, StepTiming};
use crate::error::Result;
use crate::sim::recorder::Recorder;

/// The deployments, each seen as the sum of its cores, for the cluster's router.
pub struct GroupView<'a> {
    /// All cores, deployment by deployment.
    pub cores: &'a [Replica],
    /// Cores per deployment.
    pub dp: usize,
}

impl GroupView<'_> {
    fn group(&self, i: usize) -> &[Replica] {
        &self.cores[i * self.dp..(i + 1) * self.dp]
    }
}

impl ClusterView for GroupView<'_> {
    fn outstanding_tokens(&self, i: usize) -> u64 {
        self.group(i).iter().map(|r| r.outstanding_tokens()).sum()
    }
    fn outstanding_requests(&self, i: usize) -> u64 {
        self.group(i).iter().map(|r| r.outstanding_requests()).sum()
    }
    fn kv_usage(&self, i: usize) -> f64 {
        let g = self.group(i);
        g.iter().map(|r| r.kv_usage()).sum::<f64>() / g.len() as f64
    }
    fn cached_prefix_blocks(&self, i: usize, hashes: &[u64]) -> usize {
        self.group(i)
            .iter()
            .map(|r| r.cached_prefix_blocks(hashes, &[], 1))
            .max()
            .unwrap_or(0)
    }
}

/// vLLM's load balancing over the cores of each deployment.
#[derive(Debug, Clone)]
pub struct DpBalancer {
    dp: usize,
    /// Per deployment, the core the next scan starts from.
    start: Vec<usize>,
}

impl DpBalancer {
    /// A balancer for `deployments` deployments of `dp` cores.
    pub fn new(deployments: usize, dp: usize) -> DpBalancer {
        DpBalancer {
            dp: dp.max(1),
            start: vec![0; deployments],
        }
    }

    /// The core (index into `cores`) of deployment `group` that takes the next request.
    pub fn pick(&mut self, group: usize, cores: &[Replica]) -> usize {
        let first = group * self.dp;
        let mut best = (f64::INFINITY, first);
        for k in 0..self.dp {
            let core = first + (self.start[group] + k) % self.dp;
            let score = Self::score(&cores[core]);
            if score < best.0 {
                best = (score, core);
            }
        }
        self.start[group] = (self.start[group] + 1) % self.dp;
        best.1
    }

    /// A core's load: its requests, plus a penalty for a queue on a full KV cache.
    fn score(core: &Replica) -> f64 {
        let waiting = core.core().num_waiting() as f64;
        let mut score = core.outstanding_requests() as f64;
        if waiting > 0.0 {
            score += waiting * 6.0 * (core.kv_usage() - 0.5).max(0.0);
        }
        score
    }
}

/// Start one step of a data-parallel group whose cores step together (`plans`: scratch
/// space). Returns when the group's [`Replica::finish_step`]s are due, or `None` if no
/// core has anything to run.
pub fn start_group_step(
    cores: &mut [Replica],
    now_ns: u64,
    rec: &mut Recorder,
    plans: &mut Vec<Planned>,
) -> Result<Option<u64>> {
    plans.clear();
    let mut group_tokens = 0u64;
    for core in cores.iter_mut() {
        let p = core.plan_step(now_ns)?;
        if p == Planned::Batch {
            group_tokens += core.scheduled_tokens();
        }
        plans.push(p);
    }
    let mut due: Option<u64> = None;
    let mut common: Option<StepTiming> = None;
    for (core, p) in cores.iter_mut().zip(plans.iter()) {
        match *p {
            Planned::Idle => {}
            Planned::Wait(at) => due = due.max(Some(at)),
            Planned::Batch => {
                let t = core.price_step(now_ns, group_tokens);
                common = Some(match common {
                    None => t,
                    Some(c) => StepTiming {
                        start_ns: c.start_ns.max(t.start_ns),
                        duration_ns: c.duration_ns.max(t.duration_ns),
                    },
                });
            }
        }
    }
    let Some(timing) = common else {
        return Ok(due);
    };
    for (core, p) in cores.iter_mut().zip(plans.iter()) {
        if *p == Planned::Batch {
            let at = core.commit_step(timing, rec)?;
            due = due.max(Some(at));
        }
        core.hold_gpu_until(timing.start_ns + timing.duration_ns);
    }
    Ok(due)
}
