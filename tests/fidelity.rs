//! The cost model against real-GPU measurements made by others (`../shared/fidelity`):
//! every Vidur kernel point is read and predicted, and the errors may not regress.

mod common;
use common::*;

/// The table's row for `group`: (points, median %, p90 %).
fn row(table: &str, group: &str) -> (usize, f64, f64) {
    let line = table
        .lines()
        .find(|l| l.starts_with(&format!("| {group} |")))
        .unwrap_or_else(|| panic!("no row `{group}` in\n{table}"));
    let cells: Vec<&str> = line.split('|').map(str::trim).collect();
    let pct = |s: &str| s.trim_end_matches(" %").parse::<f64>().unwrap();
    (cells[2].parse().unwrap(), pct(cells[3]), pct(cells[4]))
}

#[test]
#[cfg_attr(not(kvsim_shared), ignore = "needs ../shared (or KVSIM_SHARED)")]
fn every_vidur_kernel_point_is_compared_and_errors_do_not_regress() {
    let traces = shared_traces();
    let vidur = traces.join("../fidelity/vidur");
    let csv = temp_dir("fidelity-csv").join("points.csv");
    let table = run_ok(&[
        "fidelity",
        "kernels",
        vidur.to_str().unwrap(),
        "--csv",
        csv.to_str().unwrap(),
    ]);
    // Every point is a CSV row with its shape: a GEMM's rows and weight, an attention
    // kernel's tokens per sequence, sequences and context.
    let text = std::fs::read_to_string(&csv).unwrap();
    let mut lines = text.lines();
    let header = "gpu,source,op,tokens,k,n,batch,context,measured_ns,predicted_ns";
    assert_eq!(lines.next(), Some(header));
    let rows: Vec<Vec<&str>> = lines.map(|l| l.split(',').collect()).collect();
    assert!(rows.iter().all(|r| r.len() == 10));
    let gemm = rows.iter().find(|r| r[2] == "qkv").unwrap();
    assert!(gemm[3..6].iter().all(|c| c.parse::<u64>().is_ok()) && gemm[6].is_empty());
    let decode = rows.iter().find(|r| r[2] == "decode_attention").unwrap();
    assert_eq!((decode[3], decode[4]), ("1", ""));
    assert!(decode[6].parse::<u64>().unwrap() >= 1 && decode[7].parse::<u64>().is_ok());
    // Points: four GEMMs per mlp.csv row (H100: 5 models x 1044 rows + Phi-2's 261; A100
    // adds Llama-3-8B/70B's 1824 rows each), and every row of the A100 attention file.
    let (h100_qkv, _, _) = row(&table, "h100 qkv");
    assert_eq!(h100_qkv, 5 * 1044 + 261);
    let (a100_up, _, _) = row(&table, "a100 up");
    assert_eq!(a100_up, 5 * 1044 + 261 + 2 * 1824);
    assert_eq!(row(&table, "a100 decode_attention").0, 10_240);
    assert_eq!(row(&table, "a100 prefill_attention").0, 4_418);
    let (all, median, p90) = row(&table, "all");
    assert_eq!(
        all,
        4 * (5 * 1044 + 261) + 4 * (5 * 1044 + 261 + 2 * 1824) + 14_658
    );
    assert_eq!(rows.len(), all);
    // The default roofline's errors today (docs/validation.md); lower them as the model
    // improves, never raise them.
    assert!(median <= 5.5, "median abs. error {median} %");
    assert!(p90 <= 15.3, "p90 abs. error {p90} %");
    // FlashAttention 2's split-KV decode (docs/cost-model.md) took the A100 decode points
    // from 8.7 / 20.4 % to 5.8 / 13.7 %.
    let (_, median, p90) = row(&table, "a100 decode_attention");
    assert!(median <= 6.0 && p90 <= 14.0, "decode {median} / {p90} %");
}

#[test]
fn a_folder_without_profiles_is_an_input_error() {
    let dir = temp_dir("fidelity-empty");
    std::fs::create_dir_all(dir.join("compute/h100")).unwrap();
    let o = run(&["fidelity", "kernels", dir.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(2));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("no Vidur profiles"), "{err}");
}

#[test]
#[cfg_attr(not(kvsim_shared), ignore = "needs ../shared (or KVSIM_SHARED)")]
fn every_inference_perf_experiment_is_replayed_stage_by_stage() {
    let traces = shared_traces();
    let dir = traces.join("../fidelity/inference-perf-h100");
    let table = run_ok(&["fidelity", "serving", dir.to_str().unwrap()]);
    // Three experiments, two stages each, five statistics per stage.
    let rows = table.lines().filter(|l| l.starts_with("| 2026")).count();
    assert_eq!(rows, 30, "{table}");
    let last = table.lines().last().unwrap();
    let num = |after: &str| -> f64 {
        let rest = &last[last.find(after).unwrap() + after.len()..];
        rest.split(" %").next().unwrap().trim().parse().unwrap()
    };
    // Today's errors (docs/validation.md); lower them as the model improves. The p90 rose
    // from 6.2 to 8.1 % with the tiled GEMMs (fitted to the kernels alone), which brought
    // 29 of the 30 statistics within issue 13's 10 % (28 before): that count must not fall.
    let (median, p90) = (num("median absolute error"), num("p90"));
    assert!(median <= 1.5, "median {median} %\n{table}");
    assert!(p90 <= 8.5, "p90 {p90} %\n{table}");
    let within = table
        .lines()
        .filter(|l| l.starts_with("| 2026"))
        .filter(|l| {
            let e = l.rsplit('|').nth(1).unwrap().trim().trim_end_matches(" %");
            e.parse::<f64>().unwrap().abs() <= 10.0
        })
        .count();
    assert!(within >= 29, "{within} of 30 within 10 %\n{table}");
    // The 20 req/s stage of the Llama-2-7B general run does not collapse: its TTFT and
    // end-to-end means stay within 10 % of the real run's; nor does the Llama-2-70B TP 4
    // run's, whose end-to-end mean and time per output token stay within 10 % too.
    for (run, metric) in [
        ("7b-tp1-general", "ttft mean"),
        ("7b-tp1-general", "e2e mean"),
        ("70b-tp4-general", "e2e mean"),
        ("70b-tp4-general", "tpot mean"),
    ] {
        let line = table
            .lines()
            .find(|l| l.contains(&format!("{run} | 1 | ")) && l.contains(metric))
            .unwrap();
        let err: f64 = line
            .rsplit('|')
            .nth(1)
            .unwrap()
            .trim()
            .trim_end_matches(" %")
            .parse()
            .unwrap();
        assert!(err.abs() <= 10.0, "{line}");
    }
}

#[test]
#[cfg_attr(not(kvsim_shared), ignore = "needs ../shared (or KVSIM_SHARED)")]
fn the_public_profiles_are_reproduced_by_the_importer_and_load() {
    // The profiles record the command that made them, `... import ../shared/fidelity/vidur`:
    // run it from a folder beside a link named `shared` to wherever the data is.
    let out = temp_dir("vidur-import");
    let beside = temp_dir("vidur-import-cwd");
    std::fs::create_dir_all(beside.join("cwd")).unwrap();
    std::os::unix::fs::symlink(shared(), beside.join("shared")).unwrap();
    let o = kvsim()
        .args(["fidelity", "import", "../shared/fidelity/vidur", "--out"])
        .arg(&out)
        .args(["--date", "2026-12-01"])
        .current_dir(beside.join("cwd"))
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let committed = root().join("calibration/public");
    let mut n = 0;
    for e in std::fs::read_dir(&out).unwrap() {
        let p = e.unwrap().path();
        let name = p.file_name().unwrap();
        let want = std::fs::read(committed.join(name)).unwrap_or_default();
        assert!(
            std::fs::read(&p).unwrap() == want,
            "{name:?} differs from calibration/public"
        );
        n += 1;
    }
    assert_eq!(n, 100, "50 profiles of two files each");
    // Vidur's A100 attention file measured the per-GPU shape of the 70B models at TP 2:
    // their attention is measured, not filled.
    let meta = std::fs::read_to_string(committed.join("a100-llama-2-70b-hf-tp2.yaml")).unwrap();
    assert!(
        meta.contains("(decode attention;")
            && !meta.contains("- decode_attention")
            && !meta.contains("- prefill_attention"),
        "{meta}"
    );
    let meta = std::fs::read_to_string(committed.join("h100-llama-2-70b-hf-tp4.yaml")).unwrap();
    assert!(meta.contains("- decode_attention"), "{meta}");
    // A public profile drives a run and the report says where it comes from.
    let dir = temp_dir("public-profile");
    let sc = dir.join("s.yaml");
    let profile = committed.join("h100-llama-2-70b-hf-tp4");
    std::fs::write(
        &sc,
        format!(
            "name: p\nseed: 1\nworkload:\n  source:\n    kind: synthetic\n    requests: 30\n    arrival: {{kind: poisson, rate: 2}}\n    input: {{kind: constant, value: 500}}\n    output: {{kind: constant, value: 20}}\nmodel: {{preset: llama-2-70b}}\nhardware:\n  gpu: h100-sxm\n  calibration: {}\nengine:\n  tensor_parallel_size: 4\n",
            profile.display()
        ),
    )
    .unwrap();
    let report = run_ok(&["run", sc.to_str().unwrap(), "--no-files"]);
    assert!(
        report.contains("calibrated (public: vidur 7d47513, llama-2-70b at TP 4"),
        "{report}"
    );
}

#[test]
#[cfg_attr(not(kvsim_shared), ignore = "needs ../shared (or KVSIM_SHARED)")]
fn serving_overrides_reach_every_replayed_scenario() {
    let traces = shared_traces();
    let dir = traces.join("../fidelity/inference-perf-h100");
    let d = dir.to_str().unwrap();
    let base = run_ok(&["fidelity", "serving", d]);
    let faster = run_ok(&[
        "fidelity",
        "serving",
        d,
        "--set",
        "hardware.efficiency.attention_memory=0.95",
    ]);
    assert_ne!(base, faster, "the override changed nothing");
    let o = run(&["fidelity", "serving", d, "--set", "engine.bogus=1"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&o.stderr).contains("unknown field `bogus`"));
}

#[test]
fn the_bundled_inference_perf_scenario_runs_as_it_is() {
    let json = run_ok(&[
        "run",
        "scenarios/inference-perf-llama-2-7b-general.yaml",
        "--no-files",
        "--json",
    ]);
    let v: serde_json::Value = serde_json::from_str(&json).unwrap();
    assert_eq!(v["requests_arrived"], 16_800);
    assert_eq!(v["requests_completed"], 16_800);
    assert_eq!(v["output_tokens"], 16_800 * 248);
}
