//! Parameter sweeps: the cartesian grid of `--vary key=v1,v2,...` axes over a scenario,
//! run in parallel, one CSV row per point. Every run is deterministic, so a grid can be
//! split with `--shard K/N` (point `i` belongs to shard `i mod N + 1`) and the shards'
//! CSVs joined by [`merge`] into exactly the unsharded file.

use crate::engine::config::EngineSetup;
use crate::error::{Error, Result};
use crate::report::Summary;
use crate::scenario::load_scenario;
use crate::sim::recorder::Recorder;
use rayon::prelude::*;
use std::path::{Path, PathBuf};

/// One varied field and its values (YAML text, as `--set` takes them).
#[derive(Debug, Clone, PartialEq)]
pub struct Axis {
    /// Dotted scenario key.
    pub key: String,
    /// Values in order.
    pub values: Vec<String>,
}

/// Split at commas that are not inside brackets, braces or quotes.
fn split_values(s: &str) -> Vec<String> {
    let (mut out, mut cur, mut depth, mut quote) = (Vec::new(), String::new(), 0i32, None);
    for ch in s.chars() {
        match (ch, quote) {
            ('"' | '\'', None) => quote = Some(ch),
            (c, Some(q)) if c == q => quote = None,
            ('[' | '{', None) => depth += 1,
            (']' | '}', None) => depth -= 1,
            (',', None) if depth == 0 => {
                out.push(std::mem::take(&mut cur).trim().to_string());
                continue;
            }
            _ => {}
        }
        cur.push(ch);
    }
    out.push(cur.trim().to_string());
    out
}

impl Axis {
    /// Parse `key=v1,v2,...` (`flag` names the option in errors).
    pub fn parse(flag: &str, s: &str) -> Result<Axis> {
        let (key, values) = s.split_once('=').ok_or_else(|| {
            Error::input(format!("{flag} {s}: expected dotted.key=value1,value2,..."))
        })?;
        let values = split_values(values);
        if key.trim().is_empty() || values.iter().any(String::is_empty) {
            return Err(Error::input(format!("{flag} {s}: empty key or value")));
        }
        Ok(Axis {
            key: key.trim().to_string(),
            values,
        })
    }
}

/// The grid's points: for each, one value index per axis; the first axis varies slowest.
pub fn grid(axes: &[Axis]) -> Vec<Vec<usize>> {
    let mut points = vec![Vec::new()];
    for a in axes {
        points = points
            .into_iter()
            .flat_map(|p| {
                (0..a.values.len()).map(move |i| {
                    let mut q = p.clone();
                    q.push(i);
                    q
                })
            })
            .collect();
    }
    points
}

/// A slice of a grid: shard `k` of `n` (1-based).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Shard {
    /// This shard, 1..=n.
    pub k: u32,
    /// Number of shards.
    pub n: u32,
}

impl Shard {
    /// Parse `K/N`.
    pub fn parse(s: &str) -> Result<Shard> {
        let bad = || Error::input(format!("--shard {s}: expected K/N with 1 <= K <= N"));
        let (k, n) = s.split_once('/').ok_or_else(bad)?;
        let (k, n): (u32, u32) = (
            k.trim().parse().map_err(|_| bad())?,
            n.trim().parse().map_err(|_| bad())?,
        );
        if k == 0 || n == 0 || k > n {
            return Err(bad());
        }
        Ok(Shard { k, n })
    }

    /// Whether point `i` is in this shard.
    pub fn holds(&self, i: usize) -> bool {
        i % self.n as usize == (self.k - 1) as usize
    }
}

/// The `--set` overrides of one point.
pub fn point_sets(axes: &[Axis], point: &[usize]) -> Vec<String> {
    axes.iter()
        .zip(point)
        .map(|(a, &i)| format!("{}={}", a.key, a.values[i]))
        .collect()
}

/// Run one scenario with overrides and no files; the summary. A run in which nothing
/// completed (an empty workload, every request rejected) is an error: its latencies would
/// read as zeros.
pub fn run_point(scenario: &Path, sets: &[String]) -> Result<Summary> {
    crate::interrupt::check()?;
    let s = load_scenario(scenario, sets)?;
    let setup = EngineSetup::from_scenario(&s)?;
    let mut rec = Recorder::new(None, None, s.slo.clone())?;
    let summary = crate::sim::run(&s, &setup, &mut rec, false)?;
    crate::report::check_succeeded(&summary)?;
    Ok(summary)
}

/// Refuse (an input error, exit code 2) an axis whose key is not a scenario field, naming
/// it and the nearest field; `flag` is the option that gave the axes.
pub fn check_axes(scenario: &Path, sets: &[String], flag: &str, axes: &[Axis]) -> Result<()> {
    for a in axes {
        crate::scenario::check_key(scenario, sets, flag, &a.key, &a.values[0])?;
    }
    Ok(())
}

/// Result columns of a sweep row, after the point index and the axes.
pub const METRICS: &[&str] = &[
    "status",
    "requests_completed",
    "requests_rejected",
    "makespan_s",
    "request_throughput",
    "output_token_throughput",
    "ttft_mean_ms",
    "ttft_p50_ms",
    "ttft_p99_ms",
    "tpot_mean_ms",
    "tpot_p99_ms",
    "e2e_p99_ms",
    "goodput",
    "slo_attainment",
    "prefix_hit_rate",
    "total_hit_rate",
    "kv_blocks_used_peak",
    "max_batch",
    "preemptions",
    "gpus",
    "cost_per_hour",
    "cost_per_million_tokens",
    "error",
];

/// One CSV field: newlines flattened, quoted when it holds a comma or a quote.
pub fn csv_field(s: &str) -> String {
    let s = s.replace(['\n', '\r'], " ");
    if s.contains([',', '"']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s
    }
}

/// Columns after the metrics that identify the sweep a row belongs to: the same in every
/// row of a sweep and of each of its shards, compared by [`merge`].
pub const PROVENANCE: &[&str] = &["kvsim_version", "scenario_hash", "seed", "sets", "grid"];

/// What identifies a sweep ([`PROVENANCE`]): kvsim's version, a hash of the scenario file's
/// bytes, the scenario's seed after the overrides, the `--set` overrides and the grid, the
/// last two as they would be typed (`--set k=v`, `--vary k=v1,v2`).
#[derive(Debug, Clone, PartialEq)]
pub struct Provenance {
    /// Values in the order of [`PROVENANCE`].
    pub values: [String; 5],
}

impl Provenance {
    /// The provenance of a sweep of `scenario` with `sets` over `axes`.
    pub fn of(scenario: &Path, sets: &[String], axes: &[Axis]) -> Result<Provenance> {
        let bytes = std::fs::read(scenario).map_err(|e| {
            Error::input(format!("cannot read scenario {}: {e}", scenario.display()))
        })?;
        // FNV-1a, 64 bits: enough to tell two scenario files apart (not a security hash).
        let hash = bytes.iter().fold(0xcbf2_9ce4_8422_2325u64, |h, &b| {
            (h ^ b as u64).wrapping_mul(0x100_0000_01b3)
        });
        let seed = load_scenario(scenario, sets)?.seed;
        let typed = |flag: &str, items: Vec<String>| {
            items
                .iter()
                .map(|i| format!("{flag} {i}"))
                .collect::<Vec<_>>()
                .join(" ")
        };
        let grid = axes
            .iter()
            .map(|a| format!("{}={}", a.key, a.values.join(",")))
            .collect();
        Ok(Provenance {
            values: [
                env!("CARGO_PKG_VERSION").to_string(),
                format!("{hash:016x}"),
                seed.to_string(),
                typed("--set", sets.to_vec()),
                typed("--vary", grid),
            ],
        })
    }

    fn cells(&self) -> impl Iterator<Item = String> + '_ {
        self.values.iter().map(|v| csv_field(v))
    }
}

/// The CSV header of a sweep over `axes`.
pub fn header(axes: &[Axis]) -> String {
    let mut cols = vec!["point".to_string(), "grid_points".to_string()];
    cols.extend(axes.iter().map(|a| csv_field(&a.key)));
    cols.extend(METRICS.iter().map(|m| m.to_string()));
    cols.extend(PROVENANCE.iter().map(|m| m.to_string()));
    cols.join(",")
}

/// The CSV row of point `index` of `total`.
pub fn row(
    index: usize,
    total: usize,
    axes: &[Axis],
    point: &[usize],
    r: &Result<Summary>,
    prov: &Provenance,
) -> String {
    let mut cols = vec![index.to_string(), total.to_string()];
    cols.extend(
        axes.iter()
            .zip(point)
            .map(|(a, &i)| csv_field(&a.values[i])),
    );
    match r {
        Ok(s) => {
            let l = &s.latency;
            let rejected: u64 = s.requests_rejected.values().sum();
            cols.extend([
                "ok".to_string(),
                s.requests_completed.to_string(),
                rejected.to_string(),
                format!("{:.3}", s.makespan_s),
                format!("{:.4}", s.request_throughput),
                format!("{:.2}", s.output_token_throughput),
                format!("{:.2}", l.ttft_ms.mean),
                format!("{:.2}", l.ttft_ms.p50),
                format!("{:.2}", l.ttft_ms.p99),
                format!("{:.3}", l.tpot_ms.mean),
                format!("{:.3}", l.tpot_ms.p99),
                format!("{:.2}", l.e2e_ms.p99),
                format!("{:.4}", s.goodput),
                format!("{:.4}", s.slo_attainment),
                format!("{:.4}", s.prefix_hit_rate),
                format!("{:.4}", s.total_hit_rate),
                s.kv_blocks_used_peak.to_string(),
                s.max_batch.to_string(),
                s.preemptions.to_string(),
                s.cluster.gpus.to_string(),
                format!("{:.2}", s.cluster.cost_per_hour),
                format!("{:.4}", s.cluster.cost_per_million_tokens),
                String::new(),
            ]);
        }
        Err(e) => {
            cols.push("error".to_string());
            cols.extend(std::iter::repeat_n(String::new(), METRICS.len() - 2));
            cols.push(csv_field(&e.to_string()));
        }
    }
    cols.extend(prov.cells());
    cols.join(",")
}

/// A sweep to run.
pub struct SweepJob {
    /// Scenario file.
    pub scenario: PathBuf,
    /// Overrides applied to every point.
    pub sets: Vec<String>,
    /// Varied fields.
    pub axes: Vec<Axis>,
    /// Only this slice of the grid.
    pub shard: Option<Shard>,
    /// The CSV to write.
    pub out: PathBuf,
    /// Also draw throughput against p99 TTFT next to the CSV (`.svg`).
    pub plot: bool,
    /// Draw no progress bar (none is drawn either when stderr is not a terminal).
    pub quiet: bool,
}

/// Run a sweep and write its CSV, atomically: a failed or interrupted sweep, or one in
/// which every point failed (an error naming the first), leaves the previous file as it
/// was. Returns (points run, points that failed).
pub fn sweep(job: &SweepJob) -> Result<(usize, usize)> {
    if job.axes.is_empty() {
        return Err(Error::input(
            "sweep: give at least one --vary key=v1,v2,...".to_string(),
        ));
    }
    // Check the output, the scenario and the axes' keys before spending time on the grid.
    if job.out.is_dir() {
        return Err(Error::input(format!(
            "--out {}: is a folder; a sweep writes one CSV file",
            job.out.display()
        )));
    }
    load_scenario(&job.scenario, &job.sets)?;
    check_axes(&job.scenario, &job.sets, "--vary", &job.axes)?;
    let prov = Provenance::of(&job.scenario, &job.sets, &job.axes)?;
    let points = grid(&job.axes);
    let total = points.len();
    let mine: Vec<usize> = (0..total)
        .filter(|&i| job.shard.is_none_or(|s| s.holds(i)))
        .collect();
    let bar = crate::progress::points_bar(mine.len(), job.quiet);
    let results: Vec<(usize, Result<Summary>)> = mine
        .par_iter()
        .map(|&i| {
            let mut sets = job.sets.clone();
            sets.extend(point_sets(&job.axes, &points[i]));
            let r = run_point(&job.scenario, &sets);
            bar.inc(1);
            (i, r)
        })
        .collect();
    bar.finish_and_clear();
    crate::interrupt::check()?;
    let failed = results.iter().filter(|(_, r)| r.is_err()).count();
    if let Some((i, Err(e))) = results.first().filter(|_| failed == results.len()) {
        return Err(Error::failure(format!(
            "every point failed ({failed}), so {} was not written; point {i} ({}): {e}",
            job.out.display(),
            point_sets(&job.axes, &points[*i]).join(" ")
        )));
    }
    let mut text = header(&job.axes);
    text.push('\n');
    for (i, r) in &results {
        text.push_str(&row(*i, total, &job.axes, &points[*i], r, &prov));
        text.push('\n');
    }
    write_atomic(&job.out, text.as_bytes())?;
    if job.plot {
        let svg = sweep_plot(&job.axes, &points, &results)?;
        write_atomic(&job.out.with_extension("svg"), svg.as_bytes())?;
    }
    Ok((results.len(), failed))
}

fn sweep_plot(
    axes: &[Axis],
    points: &[Vec<usize>],
    results: &[(usize, Result<Summary>)],
) -> Result<String> {
    use crate::plots::{line_chart, Series};
    // One line per combination of every axis but the first (usually the load).
    let mut lines: Vec<(String, Vec<(f64, f64)>)> = Vec::new();
    for (i, r) in results {
        let Ok(s) = r else { continue };
        let label: Vec<String> = axes
            .iter()
            .zip(&points[*i])
            .skip(1)
            .map(|(a, &v)| format!("{}={}", a.key, a.values[v]))
            .collect();
        let label = if label.is_empty() {
            "all points".to_string()
        } else {
            label.join(" ")
        };
        let p = (s.output_token_throughput, s.latency.ttft_ms.p99);
        match lines.iter_mut().find(|(l, _)| *l == label) {
            Some((_, v)) => v.push(p),
            None => lines.push((label, vec![p])),
        }
    }
    for (_, v) in &mut lines {
        v.sort_by(|a, b| a.0.total_cmp(&b.0));
    }
    let series: Vec<Series> = lines
        .iter()
        .map(|(l, v)| Series {
            label: l,
            points: v.clone(),
        })
        .collect();
    line_chart(
        "Throughput against p99 TTFT",
        "output tokens per second",
        "p99 TTFT (ms)",
        &series,
        false,
        false,
    )
}

/// Atomic single-file writes, kept under this name for the commands that use them.
pub use crate::output::write_atomic;

/// The shards read so far: the first one's header and provenance, rows by point.
#[derive(Default)]
struct Shards {
    header: Option<(String, PathBuf)>,
    provenance: Option<(Vec<String>, PathBuf)>,
    total: Option<usize>,
    rows: Vec<(usize, String)>,
}

impl Shards {
    /// Read one shard CSV, refusing a header or a provenance that differs from the first
    /// shard's (naming the shard, row and field).
    fn read(&mut self, path: &Path) -> Result<()> {
        let text = crate::input::read_bounded(path, "shard", crate::input::MAX_TEXT_BYTES)?;
        let mut lines = text.lines();
        let h = lines
            .next()
            .ok_or_else(|| Error::input(format!("{}: empty file", path.display())))?;
        if !h.ends_with(&PROVENANCE.join(",")) {
            return Err(Error::input(format!(
                "{}: no {} columns (not a kvsim sweep CSV, or one from before they existed): run the shard again",
                path.display(),
                PROVENANCE.join(", ")
            )));
        }
        match &self.header {
            None => self.header = Some((h.to_string(), path.to_path_buf())),
            Some((first, from)) if first != h => {
                return Err(Error::input(format!(
                    "{}: its header differs from {}'s: not shards of one sweep",
                    path.display(),
                    from.display()
                )))
            }
            _ => {}
        }
        for (n, line) in lines.enumerate() {
            let bad =
                |what: String| Error::input(format!("{} row {}: {what}", path.display(), n + 2));
            let mut f = line.splitn(3, ',');
            let point: usize = f
                .next()
                .and_then(|x| x.parse().ok())
                .ok_or_else(|| bad("the first column is not a point index".into()))?;
            let of: usize = f
                .next()
                .and_then(|x| x.parse().ok())
                .ok_or_else(|| bad("the second column is not the grid size".into()))?;
            if *self.total.get_or_insert(of) != of || point >= of {
                return Err(bad("its grid size differs from the other rows'".into()));
            }
            self.check_provenance(path, line).map_err(bad)?;
            self.rows.push((point, line.to_string()));
        }
        Ok(())
    }

    /// Compare a row's provenance columns with the first row's.
    fn check_provenance(&mut self, path: &Path, line: &str) -> std::result::Result<(), String> {
        let mut r = csv::ReaderBuilder::new()
            .has_headers(false)
            .from_reader(line.as_bytes());
        let rec = r
            .records()
            .next()
            .and_then(|x| x.ok())
            .ok_or_else(|| "not a CSV row".to_string())?;
        let n = rec.len();
        if n < PROVENANCE.len() {
            return Err(format!("{n} columns, fewer than the header's"));
        }
        let mine: Vec<String> = rec
            .iter()
            .skip(n - PROVENANCE.len())
            .map(str::to_string)
            .collect();
        let (first, from) = self
            .provenance
            .get_or_insert_with(|| (mine.clone(), path.to_path_buf()));
        match PROVENANCE.iter().zip(first.iter().zip(&mine)).find(|(_, (a, b))| a != b) {
            None => Ok(()),
            Some((field, (a, b))) => Err(format!(
                "{field} is `{b}` but `{a}` in {}: not a shard of the same sweep (same scenario file, --set, --vary and kvsim version)",
                from.display()
            )),
        }
    }
}

/// Join shard CSVs into the unsharded sweep's CSV: same header and provenance columns
/// ([`PROVENANCE`]), every point exactly once, rows by point index.
pub fn merge(inputs: &[PathBuf], out: &Path) -> Result<usize> {
    if inputs.is_empty() {
        return Err(Error::input("merge: give the shard CSV files".to_string()));
    }
    let mut shards = Shards::default();
    for path in inputs {
        shards.read(path)?;
    }
    let Shards {
        header,
        total,
        mut rows,
        ..
    } = shards;
    let total = total.unwrap_or(0);
    rows.sort_by_key(|r| r.0);
    for w in rows.windows(2) {
        if w[0].0 == w[1].0 {
            return Err(Error::input(format!(
                "merge: point {} appears twice (the same shard given twice?)",
                w[0].0
            )));
        }
    }
    if rows.len() != total {
        let have: std::collections::BTreeSet<usize> = rows.iter().map(|r| r.0).collect();
        let missing: Vec<String> = (0..total)
            .filter(|i| !have.contains(i))
            .take(10)
            .map(|i| i.to_string())
            .collect();
        return Err(Error::input(format!(
            "merge: {} of {} points missing (first: {}); merge every shard",
            total - rows.len(),
            total,
            missing.join(", ")
        )));
    }
    let mut text = header.map(|h| h.0).unwrap_or_default();
    text.push('\n');
    for (_, r) in &rows {
        text.push_str(r);
        text.push('\n');
    }
    write_atomic(out, text.as_bytes())?;
    Ok(rows.len())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn axes_parse_with_flow_values() {
        let a = Axis::parse("--vary", "x.y=1, 2,{a: 1, b: 2},[3,4]").unwrap();
        assert_eq!(a.values, vec!["1", "2", "{a: 1, b: 2}", "[3,4]"]);
        assert!(Axis::parse("--vary", "novalue").is_err());
        assert!(Axis::parse("--vary", "k=1,,2").is_err());
    }

    #[test]
    fn grid_is_cartesian_first_axis_slowest_and_shards_partition_it() {
        let a = Axis::parse("--vary", "a=1,2").unwrap();
        let b = Axis::parse("--vary", "b=x,y,z").unwrap();
        let g = grid(&[a, b]);
        assert_eq!(g.len(), 6);
        assert_eq!(g[0], vec![0, 0]);
        assert_eq!(g[1], vec![0, 1]);
        assert_eq!(g[5], vec![1, 2]);
        let shards: Vec<Shard> = (1..=4).map(|k| Shard { k, n: 4 }).collect();
        for i in 0..g.len() {
            assert_eq!(shards.iter().filter(|s| s.holds(i)).count(), 1);
        }
        assert!(Shard::parse("0/3").is_err() && Shard::parse("4/3").is_err());
        assert_eq!(Shard::parse("2/3").unwrap(), Shard { k: 2, n: 3 });
    }
}
