//! Reproduction of the learning-augmented paging experiments (Antoniadis, Coester, Eliáš,
//! Polak, Simon, ICML 2020) on the instances in `../shared/paging`. Published values are
//! the means of the authors' released results (docs/validation.md); randomized entries are
//! checked to within 0.01.

mod common;
use common::*;
use kvsim::paging::predictor::Predictor;
use kvsim::paging::run::{run_paging, PagingJob, PagingRow};
use kvsim::paging::Trace;

fn load(dir: &str) -> Vec<Trace> {
    let dir = shared().join("paging").join(dir);
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    files.sort();
    files.iter().map(|f| Trace::read_text(f).unwrap()).collect()
}

fn job(k: usize, policies: &[&str], sigma: f64, runs: u32) -> PagingJob {
    PagingJob {
        ks: vec![k],
        policies: policies.iter().map(|s| s.to_string()).collect(),
        predictors: vec![Predictor::Oracle { sigma }],
        runs,
        seed: 1,
        gamma: 0.01,
        eps: 0.5,
        opt: true,
    }
}

fn ratio(rows: &[PagingRow], policy: &str) -> f64 {
    rows.iter()
        .find(|r| r.policy == policy)
        .unwrap()
        .cost_ratio
        .unwrap()
}

#[test]
#[cfg_attr(not(kvsim_shared), ignore = "needs ../shared (or KVSIM_SHARED)")]
fn brightkite_k10_matches_the_published_ratios() {
    let traces = load("brightkite");
    assert_eq!(traces.len(), 100);
    let rows = run_paging(
        &traces,
        &job(
            10,
            &[
                "lru",
                "marker",
                "belady",
                "ftp",
                "predictive-marker",
                "lmarker",
                "lnonmarker",
                "robust-ftp",
            ],
            10.0,
            3,
        ),
    )
    .unwrap();
    assert_eq!(rows[0].opt_misses, Some(33_990));
    assert_eq!(
        rows.iter().find(|r| r.policy == "lru").unwrap().misses,
        43_883.0
    );
    for (policy, published) in [
        ("marker", 1.333),
        ("ftp", 1.129),
        ("predictive-marker", 1.255),
        ("lmarker", 1.258),
        ("lnonmarker", 1.256),
        ("robust-ftp", 1.140),
    ] {
        let r = ratio(&rows, policy);
        assert!(
            (r - published).abs() < 0.01,
            "{policy}: {r:.4} vs published {published}"
        );
    }
}

#[test]
#[cfg_attr(not(kvsim_shared), ignore = "needs ../shared (or KVSIM_SHARED)")]
fn citibike_k100_matches_the_published_ratios() {
    let traces = load("citibike");
    assert_eq!(traces.len(), 12);
    let rows = run_paging(
        &traces,
        &job(100, &["lru", "ftp", "robust-ftp", "lnonmarker"], 5.0, 1),
    )
    .unwrap();
    assert_eq!(rows[0].opt_misses, Some(105_192));
    assert_eq!(
        rows.iter().find(|r| r.policy == "lru").unwrap().misses,
        194_423.0
    );
    for (policy, published) in [("ftp", 1.133), ("robust-ftp", 1.134), ("lnonmarker", 1.647)] {
        let r = ratio(&rows, policy);
        assert!(
            (r - published).abs() < 0.01,
            "{policy}: {r:.4} vs published {published}"
        );
    }
}

#[test]
#[cfg_attr(not(kvsim_shared), ignore = "needs ../shared (or KVSIM_SHARED)")]
fn mark0_with_exact_discard_bits_pays_exactly_opt_on_brightkite_k10() {
    // MARK0 keeps exactly the pages whose latest bit is 0 (kept by Belady until their next
    // request) and drops the others at once, so it never has to evict and misses exactly
    // where Belady does (proof in src/paging/policies/mark0.rs).
    let traces = load("brightkite");
    let mut j = job(10, &["mark0", "discard-lru"], 0.0, 3);
    j.predictors = vec![Predictor::Discard { flip: 0.0 }];
    let rows = run_paging(&traces, &j).unwrap();
    assert_eq!(rows[0].opt_misses, Some(33_990));
    for r in &rows {
        assert_eq!(r.misses, 33_990.0, "{} {}", r.policy, r.predictor);
        assert_eq!(r.cost_ratio_std, Some(0.0), "{}", r.policy);
    }
    assert_eq!(rows.iter().find(|r| r.policy == "mark0").unwrap().runs, 3);
}
