//! Hand-computed answers for every policy on small sequences, and properties checked on
//! random sequences: nobody beats Belady, exact predictions make follow-the-prediction
//! Belady, and the robust combinations stay within their stated factors.

use kvsim::paging::policies::{Combined, PolicyParams, Scheme};
use kvsim::paging::predictor::Predictor;
use kvsim::paging::{make_policy, policy_names, simulate, Cache, Eviction, Trace};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

fn trace(s: &str) -> Trace {
    Trace::from_labels(
        "t",
        s.split_whitespace()
            .map(|w| w.bytes().fold(0u64, |h, b| h * 256 + b as u64)),
    )
}

fn misses(policy: &str, k: usize, t: &Trace) -> u64 {
    misses_seeded(policy, k, t, 0, None)
}

fn misses_seeded(policy: &str, k: usize, t: &Trace, seed: u64, preds: Option<&[f64]>) -> u64 {
    simulate(
        make_policy(policy, &PolicyParams::new(k, t.num_pages, seed)).unwrap(),
        k,
        t,
        preds,
    )
}

/// Run and return the cache afterwards (membership of the labels given).
fn cached_after(policy: &str, k: usize, seq: &str, seed: u64) -> Vec<bool> {
    let t = trace(seq);
    let mut c = Cache::new(
        make_policy(policy, &PolicyParams::new(k, t.num_pages, seed)).unwrap(),
        k,
    );
    for i in 0..t.len() {
        c.access(&t.req(i, None));
    }
    (0..t.num_pages as u32)
        .map(|p| c.policy().contains(p))
        .collect()
}

#[test]
fn fifo_beats_lru_here_and_belady_matches_fifo() {
    // A B C A D B, k = 3. LRU evicts B for D and misses B again: 5. FIFO evicts A (oldest)
    // for D and hits B: 4. Belady evicts A or C (never requested again): 4.
    let t = trace("A B C A D B");
    assert_eq!(misses("lru", 3, &t), 5);
    assert_eq!(misses("fifo", 3, &t), 4);
    assert_eq!(misses("belady", 3, &t), 4);
}

#[test]
fn lru_beats_fifo_here_and_belady_beats_both() {
    // A B C A D A B, k = 3. LRU: D evicts B; A hits; B evicts C: 5. FIFO: D evicts A; A
    // evicts B; B evicts C: 6. Belady: D evicts C (never again); A and B hit: 4.
    let t = trace("A B C A D A B");
    assert_eq!(misses("lru", 3, &t), 5);
    assert_eq!(misses("fifo", 3, &t), 6);
    assert_eq!(misses("belady", 3, &t), 4);
}

#[test]
fn textbook_reference_string() {
    // Silberschatz's reference string with three frames: OPT 9, LRU 12, FIFO 15 faults.
    let t = trace("7 0 1 2 0 3 0 4 2 3 0 3 2 1 2 0 1 7 0 1");
    assert_eq!(misses("belady", 3, &t), 9);
    assert_eq!(misses("lru", 3, &t), 12);
    assert_eq!(misses("fifo", 3, &t), 15);
}

#[test]
fn clock_gives_a_second_chance() {
    // A B C A D B C, k = 3. A's bit is set by its hit; D: the hand clears A and evicts B.
    // B: the hand is at C (bit clear), evicts C. C: the hand wraps to A (bit now clear),
    // evicts A. Misses: A B C D B C = 6; cached D B C.
    assert_eq!(misses("clock", 3, &trace("A B C A D B C")), 6);
    assert_eq!(
        cached_after("clock", 3, "A B C A D B C", 0),
        vec![false, true, true, true]
    );
}

#[test]
fn lfu_breaks_ties_by_recency() {
    // A A B C D B C, k = 3. D: B and C have one use each, B is older: evict B. B: C and D
    // have one use, C older: evict C. C: D and B have one use, D older: evict D. 6 misses.
    assert_eq!(misses("lfu", 3, &trace("A A B C D B C")), 6);
    assert_eq!(
        cached_after("lfu", 3, "A A B C D B C", 0),
        vec![true, true, true, false]
    );
}

#[test]
fn sieve_keeps_visited_pages_in_place() {
    // A B C A D B A, k = 3. D: the hand starts at the oldest (A, visited): clears it, moves
    // to B (unvisited): evicts B. B: hand at C: evicts C. A hits. 5 misses, A D B cached.
    assert_eq!(misses("sieve", 3, &trace("A B C A D B A")), 5);
    assert_eq!(
        cached_after("sieve", 3, "A B C A D B A", 0),
        vec![true, true, false, true]
    );
}

#[test]
fn arc_resists_a_scan() {
    // A and B are used twice (they move to T2); a scan of six new pages only cycles T1;
    // A and B still hit afterwards. LRU loses them to the scan.
    let seq = "A B A B C D E F G H A B";
    assert_eq!(misses("arc", 4, &trace(seq)), 8);
    assert_eq!(misses("lru", 4, &trace(seq)), 10);
}

#[test]
fn s3fifo_promotes_twice_hit_pages_and_filters_one_hit_wonders() {
    // k = 10: small queue of 1 page. Ten new pages fill the cache (all in the small queue);
    // P0 is hit twice; the next new page evicts from the small queue: P0 (2 hits) moves to
    // main, P1 (no hits) is evicted to the ghost queue.
    let seq = "P0 P1 P2 P3 P4 P5 P6 P7 P8 P9 P0 P0 N1";
    let c = cached_after("s3fifo", 10, seq, 0);
    assert!(c[0], "P0 survives");
    assert!(!c[1], "P1 is evicted");
    assert!(
        !cached_after("fifo", 10, seq, 0)[0],
        "FIFO would have evicted P0"
    );
}

#[test]
fn marker_never_evicts_a_page_marked_in_its_phase() {
    // A B C A D B, k = 3: phase 2 starts at D; D and then B are marked, so whichever random
    // choices are made, both are cached at the end.
    for seed in 0..50 {
        let c = cached_after("marker", 3, "A B C A D B", seed);
        assert!(c[3] && c[1], "seed {seed}: {c:?}");
    }
}

fn random_trace(seed: u64, n: usize, pages: u64) -> Trace {
    let mut rng = StdRng::seed_from_u64(seed);
    // A skewed mix so that caching matters: half the requests go to a fifth of the pages.
    Trace::from_labels(
        "random",
        (0..n).map(|_| {
            if rng.gen::<bool>() {
                rng.gen_range(0..pages / 5)
            } else {
                rng.gen_range(0..pages)
            }
        }),
    )
}

#[test]
fn no_policy_beats_belady() {
    for seed in 0..6 {
        let t = random_trace(seed, 2000, 60);
        for k in [2, 5, 12, 30] {
            let opt = misses("belady", k, &t);
            for sigma in [0.0, 3.0, 50.0] {
                let preds = Predictor::Oracle { sigma }.predict(&t, k, seed);
                for name in policy_names() {
                    let m = misses_seeded(name, k, &t, seed, Some(&preds));
                    assert!(m >= opt, "{name} k={k} sigma={sigma}: {m} < OPT {opt}");
                }
            }
        }
    }
}

#[test]
fn follow_the_prediction_with_exact_predictions_is_belady() {
    for seed in 0..6 {
        let t = random_trace(seed + 100, 3000, 80);
        let preds = Predictor::Oracle { sigma: 0.0 }.predict(&t, 0, 7);
        for k in [1, 3, 10, 40] {
            assert_eq!(
                misses_seeded("ftp", k, &t, 0, Some(&preds)),
                misses("belady", k, &t),
                "k={k}"
            );
        }
    }
}

fn combined(k: usize, t: &Trace, a: &str, b: &str, scheme: Scheme, seed: u64) -> Box<dyn Eviction> {
    let p = PolicyParams::new(k, t.num_pages, seed);
    Box::new(Combined::new(
        "c".into(),
        make_policy(a, &p).unwrap(),
        make_policy(b, &p).unwrap(),
        k,
        t.num_pages,
        scheme,
        seed,
    ))
}

#[test]
fn deterministic_switch_stays_within_its_bound() {
    // Bound (docs/policies.md): cost <= ((1+g)^3 / g) min(cost_A, cost_B) + (J+1)(k+1),
    // with J <= 2 + ln(max(min, 1)) / ln(1+g) switches.
    for seed in 0..4 {
        let t = random_trace(seed + 200, 3000, 80);
        for sigma in [0.0, 200.0] {
            let preds = Predictor::Oracle { sigma }.predict(&t, 0, seed);
            for k in [4, 16] {
                for g in [0.5, 1.0] {
                    let a = misses_seeded("ftp", k, &t, seed, Some(&preds)) as f64;
                    let b = misses_seeded("lru", k, &t, seed, Some(&preds)) as f64;
                    let min = a.min(b);
                    let ours = simulate(
                        combined(
                            k,
                            &t,
                            "ftp",
                            "lru",
                            Scheme::Deterministic { gamma: g },
                            seed,
                        ),
                        k,
                        &t,
                        Some(&preds),
                    ) as f64;
                    let switches = 2.0 + min.max(1.0).ln() / (1.0 + g).ln();
                    let bound = (1.0 + g).powi(3) / g * min + (switches + 1.0) * (k as f64 + 1.0);
                    assert!(
                        ours <= bound,
                        "k={k} g={g} sigma={sigma}: {ours} > {bound} (ftp {a}, lru {b})"
                    );
                }
            }
        }
    }
}

#[test]
fn randomized_combination_tracks_the_better_policy() {
    // Blum-Burch: E[cost] <= (1 + eps) min(cost_A, cost_B) + O(k / eps); checked on the mean
    // of 20 runs with the constant 4.
    for sigma in [0.0, 200.0] {
        let t = random_trace(300, 4000, 80);
        let preds = Predictor::Oracle { sigma }.predict(&t, 0, 1);
        for k in [4, 16] {
            let eps = 0.5;
            let a = (0..20)
                .map(|s| misses_seeded("marker", k, &t, s, Some(&preds)) as f64)
                .sum::<f64>()
                / 20.0;
            let b = misses_seeded("ftp", k, &t, 0, Some(&preds)) as f64;
            let ours = (0..20)
                .map(|s| {
                    simulate(
                        combined(k, &t, "marker", "ftp", Scheme::Randomized { eps }, s),
                        k,
                        &t,
                        Some(&preds),
                    ) as f64
                })
                .sum::<f64>()
                / 20.0;
            let bound = (1.0 + eps) * a.min(b) + 4.0 * k as f64 / eps;
            assert!(
                ours <= bound,
                "k={k} sigma={sigma}: {ours} > {bound} (marker {a}, ftp {b})"
            );
        }
    }
}

#[test]
fn lazy_follower_of_identical_policies_pays_exactly_their_cost() {
    // Both inputs are the same deterministic policy, so the followed cache is always the
    // same; the lazy follower then evicts exactly the page it evicts (the only candidate)
    // and pays exactly its cost, whatever it switches.
    let t = random_trace(400, 3000, 80);
    for k in [3, 10] {
        for name in ["fifo", "lru", "lfu"] {
            let alone = misses(name, k, &t);
            for scheme in [
                Scheme::Deterministic { gamma: 0.01 },
                Scheme::Randomized { eps: 0.5 },
            ] {
                let ours = simulate(combined(k, &t, name, name, scheme, 0), k, &t, None);
                assert_eq!(ours, alone, "{name} k={k}");
            }
        }
    }
}

#[test]
fn phase_and_discard_bits_of_a_hand_computed_sequence() {
    use kvsim::paging::predictor::{discard_bits, phase_bits, phases};
    // k = 2: phases a b a | c a | b c | d.
    let t = trace("a b a c a b c d");
    assert_eq!(phases(&t, 2), vec![0, 0, 0, 1, 1, 2, 2, 3]);
    // a (phase 0) returns in phase 1; b (phase 0) does not (next in phase 2); c (phase 1)
    // returns in phase 2; a (phase 1) never returns; b, c (phase 2) never; d never.
    assert_eq!(
        phase_bits(&t, 2),
        vec![1.0, 0.0, 1.0, 1.0, 0.0, 0.0, 0.0, 0.0]
    );
    // Belady with 2 pages: a b (a hit) ; c evicts b (next use 5, furthest) -> bit of
    // request 1 is 1; a hit; b evicts a (never again) -> a's bit (request 4) is 1 anyway;
    // c hit; d evicts any. Never-again requests (4, 5, 6, 7) are 1.
    assert_eq!(
        discard_bits(&t, 2),
        vec![0.0, 1.0, 0.0, 0.0, 1.0, 1.0, 1.0, 1.0]
    );
}

#[test]
fn flipping_with_probability_one_inverts_every_bit() {
    let t = random_trace(5, 500, 30);
    for (exact, inverted) in [
        (
            Predictor::Discard { flip: 0.0 },
            Predictor::Discard { flip: 1.0 },
        ),
        (
            Predictor::Phase { flip: 0.0 },
            Predictor::Phase { flip: 1.0 },
        ),
    ] {
        let a = exact.predict(&t, 8, 1);
        let b = inverted.predict(&t, 8, 1);
        assert!(a.iter().zip(&b).all(|(x, y)| x + y == 1.0));
        let half = Predictor::Phase { flip: 0.5 }.predict(&t, 8, 1);
        let changed = half.iter().zip(&a).filter(|(x, y)| x != y).count();
        assert!(changed > 0 && changed < t.len());
    }
}

#[test]
fn following_exact_discard_bits_costs_exactly_opt() {
    for seed in 0..6 {
        let t = random_trace(seed + 400, 3000, 80);
        for k in [1, 3, 10, 40] {
            let bits = Predictor::Discard { flip: 0.0 }.predict(&t, k, 0);
            assert_eq!(
                misses_seeded("discard-ftp", k, &t, 0, Some(&bits)),
                misses("belady", k, &t),
                "seed {seed} k={k}"
            );
        }
    }
}

#[test]
fn phase_marker_with_exact_bits_pays_the_new_pages_and_stays_marking() {
    use kvsim::paging::predictor::phases;
    for seed in 0..6 {
        let t = random_trace(seed + 500, 3000, 80);
        for k in [2, 5, 20] {
            // Sum over phases of pages not requested in the previous phase.
            let ph = phases(&t, k);
            let mut in_phase: Vec<std::collections::HashSet<u32>> = Vec::new();
            for (i, &p) in ph.iter().enumerate() {
                if in_phase.len() <= p as usize {
                    in_phase.push(Default::default());
                }
                in_phase[p as usize].insert(t.pages[i]);
            }
            let new: usize = (0..in_phase.len())
                .map(|i| match i {
                    0 => in_phase[0].len(),
                    _ => in_phase[i].difference(&in_phase[i - 1]).count(),
                })
                .sum();
            let opt = misses("belady", k, &t);
            let exact = Predictor::Phase { flip: 0.0 }.predict(&t, k, 0);
            let m = misses_seeded("phase-marker", k, &t, seed, Some(&exact));
            assert_eq!(m as usize, new, "seed {seed} k={k}");
            assert!(m <= 2 * opt);
            // Whatever the bits, a marking algorithm misses at most k times per phase.
            let wrong = Predictor::Phase { flip: 0.5 }.predict(&t, k, seed);
            let m = misses_seeded("phase-marker", k, &t, seed, Some(&wrong));
            assert!(m as usize <= k * in_phase.len(), "seed {seed} k={k}");
        }
    }
}

#[test]
fn robust_discard_tracks_the_better_of_marker_and_discard_following() {
    // Same Blum-Burch bound as robust-ftp: mean over 20 runs <= (1 + eps) min + 4 k / eps.
    let t = random_trace(600, 4000, 80);
    for flip in [0.0, 0.5] {
        for k in [4, 16] {
            let eps = 0.5;
            let bits = Predictor::Discard { flip }.predict(&t, k, 3);
            let a = (0..20)
                .map(|s| misses_seeded("marker", k, &t, s, Some(&bits)) as f64)
                .sum::<f64>()
                / 20.0;
            let b = misses_seeded("discard-ftp", k, &t, 0, Some(&bits)) as f64;
            let ours = (0..20)
                .map(|s| misses_seeded("robust-discard", k, &t, s, Some(&bits)) as f64)
                .sum::<f64>()
                / 20.0;
            let bound = (1.0 + eps) * a.min(b) + 4.0 * k as f64 / eps;
            assert!(ours <= bound, "flip {flip} k={k}: {ours} > {bound}");
        }
    }
}
