//! `kvsim calibrate`: measure the model's kernels on the GPU it runs on and write a profile
//! (`NAME.csv`, `NAME.yaml`) that the calibrated cost model reads; `--validate` runs whole
//! composed steps and compares them with the calibrated and roofline predictions;
//! `--dry-run` prints the plan without a GPU. Documented in `docs/calibration.md`.

pub mod gpu;
pub mod plan;
pub mod vidur;
pub mod vidur_files;

use crate::cost::profile::{points_to_csv, with_ext, Op, Point, ProfileMeta};
use crate::cost::{BatchShape, Calibrated, CostModel, Roofline, StepCost};
use crate::error::{Error, Result};
use crate::model::Model;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

/// What `kvsim calibrate` was asked to do.
#[derive(Debug, Clone)]
pub struct CalibrateJob {
    /// Model preset.
    pub model: String,
    /// Tensor-parallel degree.
    pub tp: u32,
    /// Reduced grid.
    pub quick: bool,
    /// Profile path without extension.
    pub out: Option<PathBuf>,
    /// Print the plan only.
    pub dry_run: bool,
    /// Validate an existing profile with composed steps.
    pub validate: bool,
    /// Scenario whose steps the validation replays.
    pub scenario: PathBuf,
    /// Steps to validate.
    pub steps: usize,
    /// GPU preset for the dry-run estimate.
    pub gpu: String,
    /// Seed of the random inputs.
    pub seed: u64,
    /// No progress bar.
    pub quiet: bool,
    /// The command line, recorded in the metadata.
    pub command: String,
}

/// Largest relative error accepted from a kernel against its CPU reference (bf16 output
/// has 8 significant bits: 2^-8 = 0.4 %; accumulation order adds a little).
pub const TOLERANCE: f64 = 0.02;

fn model_of(name: &str) -> Result<Model> {
    Model::from_spec(&crate::scenario::ModelSpec {
        preset: Some(name.to_string()),
        ..Default::default()
    })
    .map_err(|e| Error::input(format!("--model: {e}")))
}

fn roofline_for(model: &Model, gpu: &str) -> Result<Roofline> {
    let gpu = crate::hardware::Gpu::from_spec(&crate::scenario::HardwareSpec {
        gpu: gpu.to_string(),
        ..Default::default()
    })
    .map_err(|e| Error::input(format!("--gpu: {e}")))?;
    Ok(Roofline::new(model, &gpu, &Default::default(), 0.0, 0.0))
}

/// Run the job.
pub fn run(job: &CalibrateJob) -> Result<()> {
    let model = model_of(&job.model)?;
    let shard = plan::shard(&model, job.tp)?;
    let points = plan::plan_points(&shard, job.quick);
    if job.dry_run {
        let roof = roofline_for(&model, &job.gpu)?;
        let secs = plan::expected_seconds(&points, &roof, job.quick, 50.0);
        let (w, r) = plan::repetitions(job.quick);
        print!("{}", plan::describe(&points));
        println!(
            "{} points, {w} warm-up + {r} timed runs each, plus kernel checks against CPU references",
            points.len()
        );
        println!(
            "expected duration on {}: about {:.0} s of GPU time (roofline estimate), plus about 30 s of CPU reference checks",
            job.gpu, secs
        );
        println!(
            "weights of {} at TP {}: {:.2} GiB per GPU (the profile records the memory left after them)",
            model.name,
            job.tp,
            shard.weight_bytes as f64 / (1u64 << 30) as f64
        );
        return Ok(());
    }
    let out = job
        .out
        .clone()
        .ok_or_else(|| Error::input("--out calibration/NAME is required (or use --dry-run)"))?;
    if job.validate {
        return validate(job, &model, &shard, &out);
    }
    measure(job, &model, &shard, points, &out)
}

fn write_atomically(path: &Path, text: &str) -> Result<()> {
    let partial = with_ext(path, "partial");
    std::fs::write(&partial, text)
        .map_err(|e| Error::failure(format!("cannot write {}: {e}", partial.display())))?;
    std::fs::rename(&partial, path)
        .map_err(|e| Error::failure(format!("cannot write {}: {e}", path.display())))
}

/// Clocks from `nvidia-smi` (SM, memory MHz), if it is there.
fn smi_clocks() -> Option<(u32, u32)> {
    let out = std::process::Command::new("nvidia-smi")
        .args([
            "--query-gpu=clocks.sm,clocks.mem",
            "--format=csv,noheader,nounits",
            "-i",
            "0",
        ])
        .output()
        .ok()?;
    let text = String::from_utf8(out.stdout).ok()?;
    let mut it = text.trim().split(',').map(|v| v.trim().parse::<u32>());
    Some((it.next()?.ok()?, it.next()?.ok()?))
}

/// A bar of `len` points named `what` (hidden with `--quiet` or off a terminal).
fn progress(len: usize, what: &str, quiet: bool) -> indicatif::ProgressBar {
    if !crate::progress::enabled(quiet) {
        return indicatif::ProgressBar::hidden();
    }
    let bar = indicatif::ProgressBar::new(len as u64);
    bar.set_style(
        indicatif::ProgressStyle::with_template(
            "{msg:>12} [{bar:40}] {pos}/{len} {wide_msg:.dim} eta {eta}",
        )
        .expect("valid template")
        .progress_chars("=> "),
    );
    bar.set_message(what.to_string());
    bar
}

fn measure(
    job: &CalibrateJob,
    model: &Model,
    shard: &plan::Shard,
    mut points: Vec<Point>,
    out: &Path,
) -> Result<()> {
    let mut dev = gpu::Device::open(model.head_dim, job.seed)?;
    let info = dev.info.clone();
    eprintln!(
        "{} ({} SMs, {:.1} GiB, driver {}, NVRTC {}, cuBLAS {})",
        info.name,
        info.sm_count,
        info.memory_total as f64 / (1u64 << 30) as f64,
        info.driver_version,
        info.nvrtc_version,
        info.cublas_version
    );
    // Correctness before timing.
    let mut correctness = Vec::new();
    let mut check = |name: String, err: f64| -> Result<()> {
        eprintln!("check {name}: max relative error {err:.2e}");
        correctness.push(format!("{name}: {err:.3e}"));
        if err.is_finite() && err <= TOLERANCE {
            Ok(())
        } else {
            Err(Error::failure(format!(
                "kernel check failed: {name} differs from the CPU reference by {err:.3e} (tolerance {TOLERANCE}); no profile written"
            )))
        }
    };
    for &(op, k, n) in &shard.gemms {
        let e = dev.check_gemm(8, k, n)?;
        check(format!("{} {k}x{n}", op.name()), e)?;
    }
    let e = dev.check_decode(shard)?;
    check("decode_attention".into(), e)?;
    let e = dev.check_prefill(shard)?;
    check("prefill_attention".into(), e)?;

    let (warmup, reps) = plan::repetitions(job.quick);
    let mut clocks: Vec<(u32, u32)> = smi_clocks().into_iter().collect();
    let bar = progress(points.len(), "calibrating", job.quiet);
    for (i, p) in points.iter_mut().enumerate() {
        bar.set_message(p.op.name());
        let s = match p.op {
            op if op.is_gemm() => dev.time_gemm(p.m, p.k, p.n, warmup, reps)?,
            Op::DecodeAttention => {
                dev.time_decode(shard, &plan::decode_contexts(p), warmup, reps)?
            }
            Op::PrefillAttention => dev.time_prefill(shard, p.chunk, p.prefix, warmup, reps)?,
            op => dev.time_copy(op, p.bytes, warmup, reps)?,
        };
        (p.median_us, p.p10_us, p.p90_us, p.reps) = (s.median_us, s.p10_us, s.p90_us, s.reps);
        if i % 16 == 0 {
            clocks.extend(smi_clocks());
        }
        bar.inc(1);
    }
    bar.finish_and_clear();
    clocks.extend(smi_clocks());
    let clocks_text = if clocks.is_empty() {
        format!(
            "rated SM {} MHz, memory {} MHz (device attributes; nvidia-smi not available)",
            info.rated_clocks_mhz.0, info.rated_clocks_mhz.1
        )
    } else {
        let sm = clocks.iter().map(|c| c.0);
        let mem = clocks.iter().map(|c| c.1);
        format!(
            "SM {}..{} MHz, memory {}..{} MHz over {} nvidia-smi samples",
            sm.clone().min().unwrap_or(0),
            sm.max().unwrap_or(0),
            mem.clone().min().unwrap_or(0),
            mem.max().unwrap_or(0),
            clocks.len()
        )
    };
    let meta = ProfileMeta {
        model: job.model.clone(),
        tp: job.tp,
        gpu_name: info.name.clone(),
        sm_count: info.sm_count,
        compute_capability: info.compute_capability.clone(),
        memory_total_bytes: info.memory_total,
        memory_free_bytes: info.memory_free,
        memory_free_after_weights_bytes: info.memory_free.saturating_sub(shard.weight_bytes),
        driver_version: info.driver_version.clone(),
        nvrtc_version: info.nvrtc_version.clone(),
        cublas_version: info.cublas_version.clone(),
        clocks: clocks_text,
        date: utc_now(),
        kvsim_version: env!("CARGO_PKG_VERSION").to_string(),
        command: job.command.clone(),
        quick: job.quick,
        correctness,
        provenance: None,
    };
    if let Some(dir) = out.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir)
            .map_err(|e| Error::failure(format!("cannot create {}: {e}", dir.display())))?;
    }
    write_atomically(&with_ext(out, "csv"), &points_to_csv(&points)?)?;
    write_atomically(&with_ext(out, "yaml"), &crate::scenario::to_yaml(&meta)?)?;
    eprintln!(
        "wrote {} and {} ({} points)",
        with_ext(out, "csv").display(),
        with_ext(out, "yaml").display(),
        points.len()
    );
    Ok(())
}

/// `YYYY-MM-DDTHH:MM:SSZ` from the system clock.
pub fn utc_now() -> String {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let (days, rem) = (secs / 86400, secs % 86400);
    // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
    let z = days as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        (rem / 60) % 60,
        rem % 60
    )
}

/// A cost model that remembers every step it is asked about (to replay real batch
/// compositions on the GPU).
struct ShapeLog {
    inner: Roofline,
    log: Arc<Mutex<Vec<BatchShape>>>,
}

impl CostModel for ShapeLog {
    fn step_cost(&self, batch: &BatchShape) -> StepCost {
        self.log.lock().expect("not poisoned").push(batch.clone());
        self.inner.step_cost(batch)
    }
    fn describe(&self) -> String {
        self.inner.describe()
    }
}

/// The batch compositions of a scenario's run: `count` steps spread evenly over it.
pub fn sample_steps(scenario: &Path, count: usize) -> Result<Vec<BatchShape>> {
    let s = crate::scenario::load_scenario(scenario, &[])?;
    let setup = crate::engine::config::EngineSetup::from_scenario(&s)?;
    let log = Arc::new(Mutex::new(Vec::new()));
    let roof = Roofline::new(&setup.model, &setup.gpu, &s.hardware.efficiency, 0.0, 0.0);
    let mut rec = crate::sim::recorder::Recorder::new(None, None, s.slo.clone())?;
    crate::sim::run_with_cost(&s, &setup, &mut rec, false, &|_, _| {
        Ok(Box::new(ShapeLog {
            inner: roof.clone(),
            log: log.clone(),
        }))
    })?;
    let all = std::mem::take(&mut *log.lock().expect("not poisoned"));
    let all: Vec<BatchShape> = all.into_iter().filter(|b| b.total_tokens() > 0).collect();
    if all.is_empty() {
        return Err(Error::input(format!(
            "{}: the run has no steps to validate",
            scenario.display()
        )));
    }
    let n = count.clamp(1, all.len());
    Ok((0..n).map(|i| all[i * all.len() / n].clone()).collect())
}

/// GPU time of a step (everything but the CPU overhead), microseconds.
fn gpu_us(c: &StepCost) -> f64 {
    (c.linear_ns + c.prefill_attention_ns + c.decode_attention_ns + c.lm_head_ns) / 1e3
}

/// Median and 90th percentile of absolute percentage errors.
pub fn error_summary(errors: &[f64]) -> (f64, f64) {
    let s = gpu::stats(errors.iter().map(|e| e.abs()).collect());
    (s.median_us, s.p90_us)
}

fn validate(job: &CalibrateJob, model: &Model, shard: &plan::Shard, out: &Path) -> Result<()> {
    let profile = crate::cost::profile::read_profile(out)?;
    if profile.meta.model != job.model {
        return Err(Error::input(format!(
            "--validate: the profile {} is for {}, not {}",
            out.display(),
            profile.meta.model,
            job.model
        )));
    }
    let one_gpu = model.shard(job.tp, 1)?;
    let roof = roofline_for(&one_gpu, &job.gpu)?;
    let calibrated = Calibrated::new(&profile, &one_gpu, job.tp, roof.clone())?;
    let steps = sample_steps(&job.scenario, job.steps)?;
    let mut dev = gpu::Device::open(model.head_dim, job.seed)?;
    let weights = dev.layer_weights(shard, model.layers)?;
    let (warmup, reps) = (2, 5);
    let bar = progress(steps.len(), "validating", job.quiet);
    let mut rows = vec![
        "step,tokens,prefills,decodes,sampled,max_context,measured_us,calibrated_us,roofline_us,calibrated_error_pct,roofline_error_pct"
            .to_string(),
    ];
    let (mut cal_err, mut roof_err) = (Vec::new(), Vec::new());
    for (i, shape) in steps.iter().enumerate() {
        let measured = dev
            .time_step(&weights, shard, model.layers, shape, warmup, reps)?
            .median_us;
        let c = gpu_us(&calibrated.step_cost(shape));
        let r = gpu_us(&roof.step_cost(shape));
        let ec = 100.0 * (c - measured) / measured;
        let er = 100.0 * (r - measured) / measured;
        cal_err.push(ec);
        roof_err.push(er);
        let max_ctx = shape
            .prefills
            .iter()
            .chain(&shape.decodes)
            .map(|s| s.context + s.new_tokens)
            .max()
            .unwrap_or(0);
        rows.push(format!(
            "{i},{},{},{},{},{max_ctx},{measured:.1},{c:.1},{r:.1},{ec:.2},{er:.2}",
            shape.total_tokens(),
            shape.prefills.len(),
            shape.decodes.len(),
            shape.sampled
        ));
        bar.inc(1);
    }
    bar.finish_and_clear();
    let (cm, cp) = error_summary(&cal_err);
    let (rm, rp) = error_summary(&roof_err);
    println!(
        "model       median |error|  p90 |error|  ({} steps of {})",
        steps.len(),
        job.scenario.display()
    );
    println!("calibrated  {cm:>13.1}% {cp:>11.1}%");
    println!("roofline    {rm:>13.1}% {rp:>11.1}%");
    for w in calibrated.warnings() {
        println!("warning: {w}");
    }
    let path = PathBuf::from(format!("{}-validation.csv", out.display()));
    write_atomically(&path, &(rows.join("\n") + "\n"))?;
    eprintln!("wrote {}", path.display());
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn utc_dates_are_well_formed() {
        let d = utc_now();
        assert_eq!(d.len(), 20);
        assert!(d.starts_with("20") && d.ends_with('Z'));
    }

    #[test]
    fn error_summary_takes_absolute_values() {
        let (m, p) = error_summary(&[-10.0, 2.0, -3.0, 4.0, 5.0]);
        assert_eq!(m, 4.0);
        assert_eq!(p, 10.0);
    }
}
