//! The discrete-event simulation: one clock, an event queue, replicas, and a streamed
//! workload (only the next arrival is read ahead).

pub mod event;
pub mod load;
pub mod recorder;

use crate::cluster::routers::make_router;
use crate::cluster::{Cluster, Placement};
use crate::cost::{Calibrated, CostModel, Parallel, Roofline};
use crate::engine::config::EngineSetup;
use crate::engine::cpu_tier::CpuTier;
use crate::engine::evictor::{BlockPredictions, PolicyEvictor, TraceNextUse};
use crate::engine::learned::LearnedReuse;
use crate::engine::replica::Replica;
use crate::engine::request::EngineRequest;
use crate::error::{Error, Result};
use crate::paging::PolicyParams;
use crate::prefix::prompt_block_hashes;
use crate::report::{LearnedStats, Summary};
use crate::scenario::PredictorKind;
use crate::scenario::Scenario;
use crate::workload;
use event::{EventKind, EventQueue};
use recorder::Recorder;
use std::sync::Arc;

/// Events between two polls of the interrupt flag (one relaxed atomic load each).
const INTERRUPT_POLL: u64 = 4096;

/// Run a scenario to completion, writing rows through `rec`. Returns the summary.
pub fn run(
    scenario: &Scenario,
    setup: &EngineSetup,
    rec: &mut Recorder,
    audit: bool,
) -> Result<Summary> {
    run_with_cost(scenario, setup, rec, audit, &|placement, r| {
        build_replica_cost(scenario, setup, placement, r)
    })
}

/// Builds replica `r`'s cost model for its place in the cluster.
pub type CostFactory<'a> = dyn Fn(&Placement, u32) -> Result<Box<dyn CostModel>> + 'a;

/// [`run`] with given cost models (e.g. ones that record the steps they are asked about).
pub fn run_with_cost(
    scenario: &Scenario,
    setup: &EngineSetup,
    rec: &mut Recorder,
    audit: bool,
    make_cost: &CostFactory,
) -> Result<Summary> {
    let (mut cluster, read_ahead) = build_cluster(scenario, setup, audit, make_cost)?;
    // The oracle's pass over the workload keeps it, so it is not read twice.
    let stream: workload::RequestStream = match read_ahead {
        Some(requests) => Box::new(requests.into_iter().map(Ok)),
        None => workload::open(&scenario.workload, scenario.seed)?,
    };
    let w = &scenario.workload;
    let mut load = load::Load::new(stream, w.max_concurrency, w.turn_timing)?;
    if load.is_closed_loop() {
        rec.track_done();
    }
    let mut queue = EventQueue::default();
    // Requests reach the scheduler after the API server's latency; their metrics count
    // from the moment they were sent. `armed`: times of the arrival events queued.
    let server_ns = (scenario.engine.server_latency_us * 1e3).round() as u64;
    let mut armed = std::collections::BinaryHeap::new();
    let mut next_request = None;
    arm_arrival(&mut load, &mut queue, &mut armed, server_ns, 0);
    // (send time, requests waiting in the replicas) at the last send.
    let mut last_send = (0u64, 0usize);
    let mut start_pending = vec![false; cluster.units()];
    let mut hashes = Vec::new();
    let mut handoffs: Vec<EngineRequest> = Vec::new();
    let wants_hashes = cluster.router.needs_hashes() && cluster.entry.len() > 1;
    let wants_tokens = cluster.wants_prompt_tokens();
    let wants_decode_hashes = cluster.router.needs_hashes() && cluster.decode.len() > 1;
    let bs = setup.block_size;
    // Events name step units: a replica, or a data-parallel group stepping together.
    let wake = |queue: &mut EventQueue, pending: &mut [bool], c: &Cluster, i: usize, now| {
        let u = c.unit_of(i);
        if c.unit_wants_step(u) && !pending[u] {
            pending[u] = true;
            queue.push(now, EventKind::StepStart { replica: u as u32 });
        }
    };
    let mut events = 0u64;
    while let Some(ev) = queue.pop() {
        events += 1;
        if events.is_multiple_of(INTERRUPT_POLL) {
            crate::interrupt::check()?;
        }
        let now = ev.time_ns;
        match ev.kind {
            EventKind::Arrival => {
                armed.pop();
                if next_request.is_none() {
                    next_request = load.take_due(now.saturating_sub(server_ns))?;
                }
                let Some(req) = next_request.take() else {
                    arm_arrival(&mut load, &mut queue, &mut armed, server_ns, now);
                    continue;
                };
                rec.on_arrival(now);
                rec.on_send(req.id, load.last_queue_ns());
                hashes.clear();
                if wants_hashes {
                    prompt_block_hashes(&req, bs, &mut hashes);
                }
                if wants_tokens {
                    cluster.prompt_tokens.clear();
                    let n = req.input_tokens as usize;
                    crate::prefix::token_ids(&req, n, &mut cluster.prompt_tokens);
                }
                let target = cluster.route(&hashes, false);
                let sent = req.arrival_ns;
                cluster.replicas[target].add_request(req, now, rec)?;
                wake(&mut queue, &mut start_pending, &cluster, target, now);
                let waiting = cluster.replicas.iter().map(|r| r.core().num_waiting());
                last_send = (sent, waiting.sum());
            }
            EventKind::StepDone { replica } => {
                let unit = cluster.unit_replicas(replica as usize);
                for i in unit.clone() {
                    if !cluster.replicas[i].is_busy() {
                        continue;
                    }
                    cluster.replicas[i].finish_step(now, rec)?;
                    cluster.replicas[i].take_handoffs(&mut handoffs);
                    for er in handoffs.drain(..) {
                        hashes.clear();
                        if wants_decode_hashes {
                            prompt_block_hashes(&er.req, bs, &mut hashes);
                        }
                        let (slot, done) = cluster.start_transfer(i, er, &hashes, now);
                        queue.push(done, EventKind::TransferDone { slot });
                    }
                }
                wake(&mut queue, &mut start_pending, &cluster, unit.start, now);
            }
            EventKind::TransferDone { slot } => {
                let (to, er) = cluster.finish_transfer(slot);
                cluster.replicas[to].add_transferred(er, now);
                wake(&mut queue, &mut start_pending, &cluster, to, now);
            }
            EventKind::StepStart { replica } => {
                let u = replica as usize;
                start_pending[u] = false;
                let horizon = queue.next_time().unwrap_or(u64::MAX);
                if let Some(at) = cluster.start_unit_step(u, now, horizon, rec)? {
                    queue.push(at, EventKind::StepDone { replica });
                }
            }
        }
        if let Some(done) = &mut rec.done {
            for id in done.drain(..) {
                load.on_done(id, now);
            }
        }
        arm_arrival(&mut load, &mut queue, &mut armed, server_ns, now);
    }
    rec.finish_files()?;
    let mut summary = summarize(scenario, setup, rec, &cluster);
    summary.load_warning = overload_warning(rec.first_arrival_ns, last_send, rec.last_finish_ns);
    Ok(summary)
}

/// A warning when the offered load exceeds what the deployment serves: requests were still
/// waiting (not yet admitted) when the last one was sent at `last_send.0`, and the run
/// needed more than a tenth of the sending span to drain after it. (A long request alone
/// at the end leaves nothing waiting, so it does not count.)
pub fn overload_warning(
    first_ns: Option<u64>,
    last_send: (u64, usize),
    last_finish_ns: u64,
) -> Option<String> {
    let (sent, waiting) = last_send;
    let span = sent.saturating_sub(first_ns?);
    let drain = last_finish_ns.saturating_sub(sent);
    if waiting == 0 || span == 0 || drain * 10 <= span {
        return None;
    }
    Some(format!(
        "overloaded: {waiting} requests were waiting when the last was sent, and the run \
         took {:.1} s after it to drain ({:.0} % of the {:.1} s of sending); the queue grew \
         through the run, so latencies depend on its length: lower workload.rate_scale, \
         set workload.max_concurrency, or add replicas",
        drain as f64 / 1e9,
        100.0 * drain as f64 / span as f64,
        span as f64 / 1e9
    ))
}

/// Queue an arrival event for the client's next send unless one is queued at or before
/// it (a send at `t` reaches the scheduler at `t + server_ns`, never before `now`).
fn arm_arrival(
    load: &mut load::Load,
    queue: &mut EventQueue,
    armed: &mut std::collections::BinaryHeap<std::cmp::Reverse<u64>>,
    server_ns: u64,
    now: u64,
) {
    let Some(t) = load.next_time() else {
        return;
    };
    let at = t.saturating_add(server_ns).max(now);
    if armed.peek().is_none_or(|&std::cmp::Reverse(a)| at < a) {
        armed.push(std::cmp::Reverse(at));
        queue.push(at, EventKind::Arrival);
    }
}

fn summarize(scenario: &Scenario, setup: &EngineSetup, rec: &Recorder, c: &Cluster) -> Summary {
    let first = &c.replicas[0];
    let evictions = c.replicas.iter().map(|r| r.core().evictions()).sum();
    let mut summary = Summary::build(scenario, setup, rec, first.cost_model(), evictions);
    summary.cost_model_warnings = first.cost_warnings();
    summary.slo_bounds = crate::slo::check_all(&scenario.slo.bounds, &summary);
    match first.vllm().map(|s| s.kv()) {
        Some(kv) => {
            summary.eviction = kv.eviction_name().to_string();
            summary.learned_predictor = kv.learned_stats().map(|(updates, mse)| LearnedStats {
                updates,
                mean_squared_log_error: mse,
            });
        }
        None => summary.eviction = "sglang-radix-lru".to_string(),
    }
    summary.add_cluster(setup, rec, c);
    summary
}

/// The replicas, their evictors, CPU tiers and cost models, placed on the machines; and the
/// workload when the evictors' oracle had to read it all first.
fn build_cluster(
    scenario: &Scenario,
    setup: &EngineSetup,
    audit: bool,
    make_cost: &CostFactory,
) -> Result<(Cluster, Option<Vec<workload::Request>>)> {
    let roles = crate::cluster::roles(scenario);
    if roles.is_empty() {
        return Err(Error::input(
            "cluster.replicas: a cluster needs at least one replica".to_string(),
        ));
    }
    if let Some(d) = &scenario.cluster.disaggregation {
        if d.prefill_replicas == 0 || d.decode_replicas == 0 {
            return Err(Error::input(format!(
                "cluster.disaggregation: needs at least one prefill and one decode replica (got {} and {})",
                d.prefill_replicas, d.decode_replicas
            )));
        }
    }
    if roles.len() > 4096 {
        return Err(Error::input(format!(
            "cluster.replicas: {} replicas is more than the simulator holds (4096)",
            roles.len()
        )));
    }
    let dp = setup.parallel.dp.max(1) as usize;
    if dp > 1 && scenario.cluster.disaggregation.is_some() {
        return Err(Error::input(
            "engine.data_parallel_size: kvsim does not model data-parallel deployments with cluster.disaggregation yet; use data_parallel_size 1 or unified replicas".to_string(),
        ));
    }
    if roles.len() * dp > 4096 {
        return Err(Error::input(format!(
            "engine.data_parallel_size: {} replicas of {dp} engine cores is more than the simulator holds (4096)",
            roles.len()
        )));
    }
    let placement = Placement::new(scenario, setup, roles.len() as u32);
    let (evictors, read_ahead) = EvictorFactory::new(scenario, setup)?;
    // Each deployment's engine cores, consecutive.
    let cores: Vec<crate::engine::replica::Role> = roles
        .iter()
        .flat_map(|&r| std::iter::repeat_n(r, dp))
        .collect();
    let mut replicas = Vec::with_capacity(cores.len());
    for (i, &role) in cores.iter().enumerate() {
        let r = i as u32;
        let cost = make_cost(&placement, r)?;
        let mut rep = Replica::in_cluster(setup, cost, audit, r, role, placement.host_link(r));
        if let Some(ev) = evictors.build(scenario, setup) {
            rep.set_evictor(ev, evictors.oracle.clone());
        }
        if let Some((blocks, policy)) = &setup.cpu_offload {
            rep.set_cpu_tier(CpuTier::new(*blocks, policy, scenario.seed)?);
        }
        replicas.push(rep);
    }
    let router = make_router(&scenario.cluster.router)?;
    Ok((Cluster::new(replicas, router, placement, setup), read_ahead))
}

/// The step-time model of replica 0 of a scenario's cluster (for `kvsim validate`).
pub fn build_cost_model(scenario: &Scenario, setup: &EngineSetup) -> Result<Box<dyn CostModel>> {
    let placement = Placement::new(scenario, setup, 1);
    build_replica_cost(scenario, setup, &placement, 0)
}

/// The step-time model of replica `r`: the roofline, or the calibrated model when the
/// scenario names a profile (`hardware.calibration`), for one GPU's shard; wrapped in
/// [`Parallel`] when the replica spans several GPUs.
pub fn build_replica_cost(
    scenario: &Scenario,
    setup: &EngineSetup,
    placement: &Placement,
    r: u32,
) -> Result<Box<dyn CostModel>> {
    let roof = Roofline::new(
        &setup.shard,
        &setup.gpu,
        &scenario.hardware.efficiency,
        scenario.engine.step_overhead_us,
        scenario.engine.per_request_overhead_us,
    );
    let one_gpu: Box<dyn CostModel> = match &scenario.hardware.calibration {
        None => Box::new(roof),
        Some(base) => {
            let profile = crate::cost::profile::read_profile(base)?;
            Box::new(Calibrated::new(
                &profile,
                &setup.shard,
                setup.parallel.tp,
                roof,
            )?)
        }
    };
    let p = setup.parallel;
    let moe_layers = setup.shard.moe_layers();
    if p.gpus() == 1 && (p.dp == 1 || moe_layers == 0) {
        return Ok(one_gpu);
    }
    let nvswitch = setup.gpu.nvlink_bytes_per_s > 0.0 && placement.tp_within_node(r);
    Ok(Box::new(
        Parallel::new(
            one_gpu,
            p,
            setup.shard.layers,
            setup.model.hidden,
            setup.model.compute_bytes(),
            placement.tp_link(r),
            placement.stage_link(r),
        )
        .with_all_reduce(scenario.engine.all_reduce, nvswitch)
        .with_expert_group(p.dp, placement.core_group_link(r), moe_layers),
    ))
}

/// Builds each replica's paging-policy evictor, if the scenario names a policy. Policies
/// that look ahead get next uses from one first pass over the workload (an offline oracle),
/// shared by the replicas.
struct EvictorFactory {
    oracle: Option<Arc<TraceNextUse>>,
}

impl EvictorFactory {
    /// The factory, and the workload when the oracle read it (kept for the run).
    fn new(
        scenario: &Scenario,
        setup: &EngineSetup,
    ) -> Result<(EvictorFactory, Option<Vec<workload::Request>>)> {
        let k = &scenario.kv_cache;
        if k.eviction == "vllm" {
            return Ok((EvictorFactory { oracle: None }, None));
        }
        let entry = crate::paging::policies::entry(&k.eviction)?;
        let oracle_predictions = matches!(&k.predictor, Some(p) if entry.uses_predictions() && p.kind == PredictorKind::Oracle);
        if k.eviction != "belady" && !oracle_predictions {
            return Ok((EvictorFactory { oracle: None }, None));
        }
        let mut next = TraceNextUse::default();
        let mut keys = Vec::new();
        let mut requests = Vec::new();
        for (i, r) in workload::open(&scenario.workload, scenario.seed)?.enumerate() {
            let r = r?;
            if (i as u64).is_multiple_of(INTERRUPT_POLL) {
                crate::interrupt::check()?;
            }
            keys.clear();
            crate::prefix::request_segment_keys(&r, &mut keys);
            next.add(r.id, &keys, r.input_tokens, setup.block_size);
            requests.push(r);
        }
        let oracle = Some(Arc::new(next.finish()));
        Ok((EvictorFactory { oracle }, Some(requests)))
    }

    fn build(&self, scenario: &Scenario, setup: &EngineSetup) -> Option<PolicyEvictor> {
        let k = &scenario.kv_cache;
        if k.eviction == "vllm" {
            return None;
        }
        let entry = crate::paging::policies::entry(&k.eviction).ok()?;
        let usable = (setup.memory.num_gpu_blocks - 1) as usize;
        let policy = (entry.build)(&PolicyParams::new(usable, 0, scenario.seed));
        let predictions = match &k.predictor {
            Some(p) if entry.uses_predictions() => match p.kind {
                PredictorKind::Oracle => BlockPredictions::Oracle { sigma: p.sigma },
                PredictorKind::Learned => {
                    BlockPredictions::Learned(Box::new(LearnedReuse::new(8 * usable)))
                }
            },
            _ => BlockPredictions::None,
        };
        Some(PolicyEvictor::new(
            &k.eviction,
            policy,
            predictions,
            scenario.seed,
        ))
    }
}
