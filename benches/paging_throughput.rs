//! Throughput of the paging policies on an in-memory Zipf(1.0) trace of 10 million requests
//! over 1 million objects, single-threaded, at cache sizes of 1 % and 10 % of the objects.
//!
//!     cargo bench --bench paging_throughput [-- --requests N --objects M --policies a,b]
//!
//! Prints requests per second (best of three runs) and the miss ratio of each policy.

use kvsim::paging::{make_policy, simulate, PolicyParams, Trace};
use rand::rngs::StdRng;
use rand::SeedableRng;
use rand_distr::{Distribution, Zipf};
use std::time::Instant;

fn arg(name: &str) -> Option<String> {
    let args: Vec<String> = std::env::args().collect();
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1).cloned())
}

fn main() {
    let requests: usize =
        arg("--requests").map_or(10_000_000, |v| v.parse().expect("--requests N"));
    let objects: u64 = arg("--objects").map_or(1_000_000, |v| v.parse().expect("--objects M"));
    let policies =
        arg("--policies").unwrap_or_else(|| "lru,sieve,arc,s3fifo,belady,fifo,clock,lfu".into());
    let mut rng = StdRng::seed_from_u64(42);
    let zipf = Zipf::new(objects, 1.0).expect("valid Zipf");
    let t0 = Instant::now();
    let pages: Vec<u32> = (0..requests)
        .map(|_| zipf.sample(&mut rng) as u32 - 1)
        .collect();
    let trace = Trace::from_dense("zipf", pages, objects as usize);
    eprintln!(
        "generated {requests} requests over {objects} objects in {:.1} s",
        t0.elapsed().as_secs_f64()
    );
    println!(
        "{:<8} {:>9} {:>12} {:>10}",
        "policy", "k", "Mreq/s", "miss%"
    );
    for k in [objects as usize / 100, objects as usize / 10] {
        for name in policies.split(',') {
            let mut best = f64::INFINITY;
            let mut misses = 0;
            for _ in 0..3 {
                let policy = make_policy(name, &PolicyParams::new(k, trace.num_pages, 1))
                    .expect("known policy");
                let start = Instant::now();
                misses = simulate(policy, k, &trace, None);
                best = best.min(start.elapsed().as_secs_f64());
            }
            println!(
                "{:<8} {:>9} {:>12.2} {:>10.3}",
                name,
                k,
                requests as f64 / best / 1e6,
                100.0 * misses as f64 / requests as f64
            );
        }
    }
}
