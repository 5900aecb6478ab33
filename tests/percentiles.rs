//! Configurable latency percentiles and SLO bounds on any percentile.

mod common;
use common::*;

/// NumPy's default quantile (linear between closest ranks), as vLLM's benchmarks use.
fn quantile(sorted: &[f64], q: f64) -> f64 {
    let pos = q * (sorted.len() - 1) as f64;
    let (lo, hi) = (pos.floor() as usize, pos.ceil() as usize);
    sorted[lo] + (sorted[hi] - sorted[lo]) * (pos - lo as f64)
}

#[test]
fn requested_percentiles_match_the_per_request_rows() {
    let out = temp_dir("pct");
    let s: serde_json::Value = serde_json::from_str(&run_ok(&[
        "run",
        "scenarios/quickstart.yaml",
        "--json",
        "--out",
        out.to_str().unwrap(),
        "--percentiles",
        "50,95,99.9",
    ]))
    .unwrap();
    let mut rd = csv::Reader::from_path(out.join("requests.csv")).unwrap();
    let h = rd.headers().unwrap().clone();
    let col = h.iter().position(|x| x == "ttft_ms").unwrap();
    let mut ttft: Vec<f64> = rd
        .records()
        .map(|r| r.unwrap()[col].parse().unwrap())
        .collect();
    ttft.sort_by(f64::total_cmp);
    let t = &s["latency"]["ttft_ms"];
    // The CSV keeps 3 decimals.
    for (key, q) in [("p50", 0.5), ("p95", 0.95), ("p99.9", 0.999), ("p90", 0.9)] {
        let got = t[key].as_f64().unwrap_or_else(|| panic!("{key} in {t}"));
        assert!((got - quantile(&ttft, q)).abs() < 1e-3, "{key}: {got}");
    }
    // The table shows what was asked for.
    let table = run_ok(&[
        "run",
        "scenarios/quickstart.yaml",
        "--no-files",
        "--percentiles",
        "95,99.9",
    ]);
    let line = table.lines().find(|l| l.starts_with("TTFT")).unwrap();
    assert!(
        line.contains("p95") && line.contains("p99.9") && !line.contains("p50"),
        "{line}"
    );
}

#[test]
fn slo_bounds_on_any_percentile_are_checked() {
    let s: serde_json::Value = serde_json::from_str(&run_ok(&[
        "run",
        "scenarios/quickstart.yaml",
        "--json",
        "--no-files",
        "--set",
        "slo.ttft_p95_ms=100000",
        "--set",
        "slo.tpot_p99_9_ms=0.001",
    ]))
    .unwrap();
    let bounds = s["slo_bounds"].as_array().unwrap();
    let by = |name: &str| bounds.iter().find(|b| b["name"] == name).unwrap().clone();
    let p95 = by("ttft_p95_ms");
    assert_eq!(p95["met"], true);
    assert_eq!(p95["value_ms"], s["latency"]["ttft_ms"]["p95"]);
    let tpot = by("tpot_p99.9_ms");
    assert_eq!(tpot["met"], false);
    assert_eq!(tpot["value_ms"], s["latency"]["tpot_ms"]["p99.9"]);
}

#[test]
fn bad_percentiles_and_bounds_are_usage_errors_naming_them() {
    for (args, needle) in [
        (vec!["--percentiles", "50,100"], "output.percentiles"),
        (vec!["--percentiles", "x"], "output.percentiles"),
        (vec!["--set", "slo.ttft_q95_ms=3"], "ttft_q95_ms"),
        (vec!["--set", "slo.ttft_p95_ms=-3"], "ttft_p95_ms"),
    ] {
        let mut a = vec!["run", "scenarios/quickstart.yaml", "--no-files"];
        a.extend(args.iter());
        let o = run(&a);
        assert_eq!(o.status.code(), Some(2), "{args:?}");
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(err.contains(needle), "{args:?}: {err}");
    }
}
