//! The discrete-event simulation: one clock, an event queue, replicas, and a streamed
//! workload (only the next arrival is read ahead).

pub mod event;
pub mod recorder;

use crate::cost::{Calibrated, CostModel, Roofline};
use crate::engine::config::EngineSetup;
use crate::engine::evictor::{BlockPredictions, NextUse, PolicyEvictor, TraceNextUse};
use crate::engine::learned::LearnedReuse;
use crate::engine::replica::Replica;
use crate::error::Result;
use crate::paging::PolicyParams;
use crate::prefix::block_hashes;
use crate::report::{LearnedStats, Summary};
use crate::scenario::PredictorKind;
use crate::scenario::Scenario;
use crate::workload;
use event::{EventKind, EventQueue};
use recorder::Recorder;
use std::sync::Arc;

/// Run a scenario to completion, writing rows through `rec`. Returns the summary.
pub fn run(
    scenario: &Scenario,
    setup: &EngineSetup,
    rec: &mut Recorder,
    audit: bool,
) -> Result<Summary> {
    run_with_cost(
        scenario,
        setup,
        rec,
        audit,
        build_cost_model(scenario, setup)?,
    )
}

/// [`run`] with a given cost model (e.g. one that records the steps it is asked about).
pub fn run_with_cost(
    scenario: &Scenario,
    setup: &EngineSetup,
    rec: &mut Recorder,
    audit: bool,
    cost: Box<dyn CostModel>,
) -> Result<Summary> {
    let mut replicas = [Replica::new(setup, cost, audit)];
    if let Some(ev) = build_evictor(scenario, setup)? {
        replicas[0].set_evictor(ev);
    }
    let mut stream = workload::open(&scenario.workload, scenario.seed)?;
    let mut queue = EventQueue::default();
    let mut next_request = stream.next().transpose()?;
    if let Some(r) = &next_request {
        queue.push(r.arrival_ns, EventKind::Arrival);
    }
    let mut start_pending = vec![false; replicas.len()];
    while let Some(ev) = queue.pop() {
        let now = ev.time_ns;
        match ev.kind {
            EventKind::Arrival => {
                let req = next_request
                    .take()
                    .expect("an arrival event has its request");
                rec.on_arrival(now);
                let target = 0; // one replica; routing comes with clusters
                replicas[target].add_request(req, now, rec)?;
                if !replicas[target].is_busy() && !start_pending[target] {
                    start_pending[target] = true;
                    queue.push(
                        now,
                        EventKind::StepStart {
                            replica: target as u32,
                        },
                    );
                }
                next_request = stream.next().transpose()?;
                if let Some(r) = &next_request {
                    queue.push(r.arrival_ns.max(now), EventKind::Arrival);
                }
            }
            EventKind::StepDone { replica } => {
                let i = replica as usize;
                replicas[i].finish_step(now, rec)?;
                if replicas[i].has_work() && !start_pending[i] {
                    start_pending[i] = true;
                    queue.push(now, EventKind::StepStart { replica });
                }
            }
            EventKind::StepStart { replica } => {
                let i = replica as usize;
                start_pending[i] = false;
                if let Some(d) = replicas[i].start_step(now, rec)? {
                    queue.push(now + d, EventKind::StepDone { replica });
                }
            }
        }
    }
    rec.finish_files()?;
    let evictions = replicas
        .iter()
        .map(|r| r.scheduler().kv().evictions())
        .sum();
    let mut summary = Summary::build(scenario, setup, rec, replicas[0].cost_model(), evictions);
    summary.cost_model_warnings = replicas[0].cost_warnings();
    let kv = replicas[0].scheduler().kv();
    summary.eviction = kv.eviction_name().to_string();
    summary.learned_predictor = kv.learned_stats().map(|(updates, mse)| LearnedStats {
        updates,
        mean_squared_log_error: mse,
    });
    Ok(summary)
}

/// The step-time model: the roofline, or the calibrated model when the scenario names a
/// profile (`hardware.calibration`).
pub fn build_cost_model(scenario: &Scenario, setup: &EngineSetup) -> Result<Box<dyn CostModel>> {
    let roof = Roofline::new(
        &setup.model,
        &setup.gpu,
        &scenario.hardware.efficiency,
        scenario.engine.step_overhead_us,
        scenario.engine.per_request_overhead_us,
    );
    Ok(match &scenario.hardware.calibration {
        None => Box::new(roof),
        Some(base) => {
            let profile = crate::cost::profile::read_profile(base)?;
            Box::new(Calibrated::new(&profile, &setup.model, roof)?)
        }
    })
}

/// The paging policy that chooses evictions, if the scenario names one. Policies that look
/// ahead get next uses from a first pass over the workload (an offline oracle).
fn build_evictor(scenario: &Scenario, setup: &EngineSetup) -> Result<Option<PolicyEvictor>> {
    let k = &scenario.kv_cache;
    if k.eviction == "vllm" {
        return Ok(None);
    }
    let entry = crate::paging::policies::entry(&k.eviction)?;
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
    let needs_oracle =
        k.eviction == "belady" || matches!(predictions, BlockPredictions::Oracle { .. });
    let oracle: Option<Arc<dyn NextUse>> = if needs_oracle {
        let mut next = TraceNextUse::default();
        let mut hashes = Vec::new();
        for r in workload::open(&scenario.workload, scenario.seed)? {
            let r = r?;
            hashes.clear();
            block_hashes(
                &r.segments,
                r.input_tokens,
                r.input_tokens as u64,
                setup.block_size,
                r.id,
                &mut hashes,
            );
            next.add(r.id, &hashes);
        }
        Some(Arc::new(next))
    } else {
        None
    };
    Ok(Some(PolicyEvictor::new(
        &k.eviction,
        policy,
        oracle,
        predictions,
        scenario.seed,
    )))
}
