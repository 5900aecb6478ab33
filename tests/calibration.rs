//! The calibrated cost model without a GPU: profiles synthesised from the roofline with a
//! known factor, the reader's errors, the interpolation seen through whole runs, and the
//! command's dry run and missing-GPU error.

mod common;
use common::*;
use kvsim::calibrate::plan::{plan_points, shard};
use kvsim::cost::profile::{points_to_csv, read_profile, Op, ProfileMeta};
use kvsim::cost::{BatchShape, Calibrated, CostModel, Roofline, SeqWork};
use kvsim::model::Model;
use std::path::{Path, PathBuf};

fn llama() -> Model {
    Model::from_spec(&kvsim::scenario::ModelSpec {
        preset: Some("llama-3.1-8b".into()),
        ..Default::default()
    })
    .unwrap()
}

/// The plain roofline (no floors, no element-wise kernels), so that a synthetic profile
/// is an exact multiple of what the scenario's model predicts.
fn plain() -> kvsim::scenario::Efficiency {
    kvsim::scenario::Efficiency::plain_roofline((0.7, 0.8), (0.5, 0.7))
}

fn roofline(m: &Model) -> Roofline {
    let gpu = kvsim::hardware::Gpu::from_spec(&Default::default()).unwrap();
    Roofline::new(m, &gpu, &plain(), 0.0, 0.0)
}

fn meta() -> ProfileMeta {
    ProfileMeta {
        model: "llama-3.1-8b".into(),
        tp: 1,
        gpu_name: "synthetic (roofline x factor)".into(),
        sm_count: 132,
        compute_capability: "9.0".into(),
        memory_total_bytes: 80 << 30,
        memory_free_bytes: 79 << 30,
        memory_free_after_weights_bytes: 64 << 30,
        driver_version: "-".into(),
        nvrtc_version: "-".into(),
        cublas_version: "-".into(),
        clocks: "-".into(),
        date: "2026-11-22T00:00:00Z".into(),
        kvsim_version: "test".into(),
        command: "synthesised by tests/calibration.rs".into(),
        quick: true,
        correctness: vec![],
        provenance: None,
    }
}

/// A profile whose every point is `factor x roofline` (mixed decode batches `mixed x`
/// their uniform counterpart), written under `dir/NAME`.
fn synth_profile(dir: &Path, factor: f64, mixed: f64) -> PathBuf {
    let m = llama();
    let roof = roofline(&m);
    let mut pts = plan_points(&shard(&m, 1).unwrap(), true);
    for p in &mut pts {
        let ns = match p.op {
            op if op.is_gemm() => roof.gemm_ns(p.m as f64, p.k, p.n),
            Op::DecodeAttention => {
                let uniform = p.batch as f64
                    * roof.decode_layer_ns(&[SeqWork {
                        new_tokens: 1,
                        context: p.context as u32 - 1,
                    }]);
                if p.context_max > p.context {
                    uniform * mixed
                } else {
                    uniform
                }
            }
            Op::PrefillAttention => roof.prefill_layer_ns(&[SeqWork {
                new_tokens: p.chunk as u32,
                context: p.prefix as u32,
            }]),
            _ => p.bytes as f64 / 50.0,
        };
        let us = factor * ns / 1e3;
        (p.median_us, p.p10_us, p.p90_us, p.reps) = (us, us * 0.98, us * 1.03, 10);
    }
    let base = dir.join("synthetic");
    std::fs::write(base.with_extension("csv"), points_to_csv(&pts).unwrap()).unwrap();
    std::fs::write(
        base.with_extension("yaml"),
        kvsim::scenario::to_yaml(&meta()).unwrap(),
    )
    .unwrap();
    base
}

fn decode_batch(contexts: &[u32]) -> BatchShape {
    BatchShape {
        prefills: vec![],
        decodes: contexts
            .iter()
            .map(|&c| SeqWork {
                new_tokens: 1,
                context: c - 1,
            })
            .collect(),
        sampled: contexts.len() as u32,
        moe_tokens: 0,
    }
}

#[test]
fn calibrated_terms_reproduce_the_measured_points_and_interpolate_between_them() {
    let dir = temp_dir("calib-points");
    let base = synth_profile(&dir, 2.0, 1.5);
    let m = llama();
    let roof = roofline(&m);
    let cal = Calibrated::new(&read_profile(&base).unwrap(), &m, 1, roof.clone()).unwrap();
    // At grid points (512 tokens after 4096; 16 decodes of 2048) the terms are exactly 2x
    // the roofline's.
    for shape in [
        BatchShape {
            prefills: vec![SeqWork {
                new_tokens: 512,
                context: 4096,
            }],
            decodes: vec![],
            sampled: 1,
            moe_tokens: 0,
        },
        decode_batch(&[2048; 16]),
    ] {
        let (c, r) = (cal.step_cost(&shape), roof.step_cost(&shape));
        let on_grid = if shape.decodes.is_empty() {
            vec![
                (c.linear_ns, r.linear_ns),
                (c.prefill_attention_ns, r.prefill_attention_ns),
                (c.lm_head_ns, r.lm_head_ns),
            ]
        } else {
            vec![(c.decode_attention_ns, r.decode_attention_ns)]
        };
        for (a, b) in on_grid {
            assert!((a - 2.0 * b).abs() <= 1e-5 * b.max(1.0), "{a} vs 2 x {b}");
        }
    }
    // Between grid points: bracketed by the neighbours, and monotone in tokens.
    let t = |n: u32| {
        cal.step_cost(&BatchShape {
            prefills: vec![SeqWork {
                new_tokens: n,
                context: 0,
            }],
            decodes: vec![],
            sampled: 0,
            moe_tokens: 0,
        })
        .linear_ns
    };
    assert!(t(64) < t(200) && t(200) < t(512));
    assert!(cal.warnings().is_empty());
    assert!(cal.describe().starts_with("calibrated"));
}

#[test]
fn mixed_decode_batches_use_the_measured_mixed_points() {
    let dir = temp_dir("calib-mixed");
    let m = llama();
    let cal = |mixed: f64| {
        let base = synth_profile(&dir, 1.0, mixed);
        Calibrated::new(&read_profile(&base).unwrap(), &m, 1, roofline(&m)).unwrap()
    };
    let (plain, slow) = (cal(1.0), cal(1.5));
    let uniform = decode_batch(&[2048; 16]);
    // The measured mixed shape: 16 sequences, mean 2048, longest 4x the mean.
    let ctx: Vec<u32> = kvsim::calibrate::plan::mixed_contexts(16, 2048, 4)
        .iter()
        .map(|&c| c as u32)
        .collect();
    let mixed = decode_batch(&ctx);
    let d = |c: &Calibrated, b: &BatchShape| c.step_cost(b).decode_attention_ns;
    assert!((d(&slow, &uniform) - d(&plain, &uniform)).abs() < 1e-6);
    let ratio = d(&slow, &mixed) / d(&plain, &mixed);
    assert!((ratio - 1.5).abs() < 1e-4, "{ratio}");
}

#[test]
fn outside_the_grid_scales_by_the_roofline_and_warns() {
    let dir = temp_dir("calib-outside");
    let base = synth_profile(&dir, 2.0, 1.0);
    let m = llama();
    let roof = roofline(&m);
    let cal = Calibrated::new(&read_profile(&base).unwrap(), &m, 1, roof.clone()).unwrap();
    let big = BatchShape {
        prefills: vec![SeqWork {
            new_tokens: 32768,
            context: 0,
        }],
        decodes: vec![],
        sampled: 0,
        moe_tokens: 0,
    };
    let (c, r) = (cal.step_cost(&big), roof.step_cost(&big));
    assert!((c.linear_ns / r.linear_ns - 2.0).abs() < 1e-6);
    let w = cal.warnings().join("\n");
    assert!(w.contains("gemm_qkv: queries reached 2.0x beyond"), "{w}");
    assert!(
        w.contains("prefill_attention: queries reached 8.0x beyond"),
        "{w}"
    );
}

#[test]
fn a_scenario_with_a_profile_runs_on_it_and_says_so() {
    let dir = temp_dir("calib-run");
    let base = synth_profile(&dir, 3.0, 1.2);
    let run = |extra: &[&str]| {
        let mut args = vec!["run", "scenarios/quickstart.yaml", "--json", "--no-files"];
        let plain = format!("hardware.efficiency={PLAIN_EFFICIENCY}");
        args.extend_from_slice(&["--set", &plain]);
        args.extend_from_slice(extra);
        json(&run_ok(&args))
    };
    let set = format!("hardware.calibration={}", base.display());
    let cal = run(&["--set", &set]);
    let roof = run(&[]);
    assert!(cal["cost_model"]
        .as_str()
        .unwrap()
        .starts_with("calibrated"));
    assert!(roof["cost_model"].as_str().unwrap().starts_with("roofline"));
    assert_eq!(cal["requests_completed"], roof["requests_completed"]);
    let tpot = |s: &serde_json::Value| s["latency"]["tpot_ms"]["mean"].as_f64().unwrap();
    assert!(tpot(&cal) > 1.3 * tpot(&roof));
    // One request alone (no queueing), synchronous scheduling: GPU terms are 3x the
    // roofline's and the CPU overhead is the same, so it is slower by less than 3x.
    let one = |extra: &[&str]| {
        let mut a = vec!["--set", "workload.limit=1"];
        a.extend_from_slice(extra);
        run(&a)
    };
    let sync = "engine.async_scheduling=false";
    let (c1, r1) = (one(&["--set", &set, "--set", sync]), one(&["--set", sync]));
    let v = |s: &serde_json::Value, key: &str| s["latency"][key]["mean"].as_f64().unwrap();
    for key in ["ttft_ms", "tpot_ms"] {
        let ratio = v(&c1, key) / v(&r1, key);
        assert!(ratio > 1.3 && ratio < 3.0, "{key} ratio {ratio}");
    }
    // Asynchronous scheduling hides the CPU work of a decode step behind the GPU work of
    // the step before, so a lone request's decode steps cost their GPU terms only: 3x.
    let (c1, r1) = (one(&["--set", &set]), one(&[]));
    let ratio = v(&c1, "tpot_ms") / v(&r1, "tpot_ms");
    assert!(
        (ratio - 3.0).abs() < 0.01,
        "asynchronous tpot_ms ratio {ratio}"
    );
}

#[test]
fn malformed_profiles_name_the_file_row_and_column() {
    let dir = temp_dir("calib-bad");
    let base = synth_profile(&dir, 1.0, 1.0);
    let csv = base.with_extension("csv");
    let text = std::fs::read_to_string(&csv).unwrap();
    let mut lines: Vec<String> = text.lines().map(String::from).collect();
    lines[2] = lines[2].replacen("gemm_qkv", "gemm_qvk", 1);
    std::fs::write(&csv, lines.join("\n")).unwrap();
    let set = format!("hardware.calibration={}", base.display());
    let o = run(&["validate", "scenarios/quickstart.yaml", "--set", &set]);
    assert_eq!(o.status.code(), Some(2));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("synthetic.csv: row 3: op: unknown op `gemm_qvk`"),
        "{err}"
    );
    // A negative time.
    lines[2] = text.lines().nth(2).unwrap().to_string();
    let mut f: Vec<&str> = lines[5].split(',').collect();
    f[11] = "-4";
    lines[5] = f.join(",");
    std::fs::write(&csv, lines.join("\n")).unwrap();
    let o = run(&["validate", "scenarios/quickstart.yaml", "--set", &set]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("row 6: median_us"), "{err}");
    // A missing profile.
    let o = run(&[
        "validate",
        "scenarios/quickstart.yaml",
        "--set",
        "hardware.calibration=/nonexistent/profile",
    ]);
    assert_eq!(o.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&o.stderr).contains("/nonexistent/profile.yaml"));
}

#[test]
fn dry_run_prints_the_plan_and_calibrate_without_a_gpu_fails_clearly() {
    let out = run_ok(&[
        "calibrate",
        "--model",
        "llama-3.1-8b",
        "--quick",
        "--dry-run",
    ]);
    assert!(
        out.contains("gemm_gate_up       [4096x28672] 6 points"),
        "{out}"
    );
    assert!(out.contains("expected duration on h100-sxm"));
    let o = run(&[
        "calibrate",
        "--model",
        "llama-3.1-8b",
        "--tp",
        "3",
        "--dry-run",
    ]);
    assert_eq!(o.status.code(), Some(2));
    let o = run(&[
        "calibrate",
        "--model",
        "llama-3.1-8b",
        "--out",
        "/tmp/kvsim-x",
    ]);
    if o.status.success() {
        return; // a machine with a GPU
    }
    let err = String::from_utf8_lossy(&o.stderr);
    if err.contains("needs an NVIDIA GPU") {
        assert_eq!(o.status.code(), Some(1));
    } else {
        println!("calibrate failed for another reason on this machine: {err}");
    }
}
