//! Throughput of the paging policies on an in-memory Zipf(1.0) trace of 10 million requests
//! over 1 million objects, single-threaded, at cache sizes of 1 % and 10 % of the objects.
//!
//!     cargo bench --bench paging_throughput [-- --requests N --objects M --policies a,b]
//!
//! Prints requests per second (best of three runs) and the miss ratio of each policy.
//!
//! With `--write-text PATH` and/or `--write-oracle-general PATH` it writes the same trace
//! to files instead (one 0-based object id per line; libCacheSim's 24-byte oracleGeneral
//! records of object size 1), for whole-process timings of `kvsim paging` and libCacheSim
//! (`docs/performance.md`).

use kvsim::paging::{make_policy, simulate, PolicyParams, Trace, NEVER};
use rand::rngs::StdRng;
use rand::SeedableRng;
use rand_distr::{Distribution, Zipf};
use std::io::Write;
use std::time::Instant;

fn arg(name: &str) -> Option<String> {
    let args: Vec<String> = std::env::args().collect();
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1).cloned())
}

/// One 0-based object id per line.
fn write_text(path: &str, trace: &Trace) -> std::io::Result<()> {
    let mut w = std::io::BufWriter::with_capacity(1 << 20, std::fs::File::create(path)?);
    for &p in &trace.pages {
        writeln!(w, "{p}")?;
    }
    w.flush()
}

/// libCacheSim's oracleGeneral records: clock time u32 (the request's position), object
/// id u64, object size u32 (1), next access vtime i64 (position of the next request of the
/// object, -1 if none), packed little-endian.
fn write_oracle_general(path: &str, trace: &Trace) -> std::io::Result<()> {
    let mut w = std::io::BufWriter::with_capacity(1 << 20, std::fs::File::create(path)?);
    for (i, (&p, &next)) in trace.pages.iter().zip(&trace.next_use).enumerate() {
        let next = if next == NEVER { -1 } else { next as i64 };
        w.write_all(&(i as u32).to_le_bytes())?;
        w.write_all(&(p as u64).to_le_bytes())?;
        w.write_all(&1u32.to_le_bytes())?;
        w.write_all(&next.to_le_bytes())?;
    }
    w.flush()
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
    let text = arg("--write-text");
    let oracle = arg("--write-oracle-general");
    if let Some(p) = &text {
        write_text(p, &trace).expect("write the text trace");
        eprintln!("wrote {p}");
    }
    if let Some(p) = &oracle {
        write_oracle_general(p, &trace).expect("write the oracleGeneral trace");
        eprintln!("wrote {p}");
    }
    if text.is_some() || oracle.is_some() {
        return;
    }
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
