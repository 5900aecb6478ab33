//! Command-line interface. Exit codes: 0 success, 1 failure while running, 2 bad input
//! (usage, scenario, trace).

use crate::engine::config::EngineSetup;
use crate::error::{Error, Result};
use crate::output::OutputDir;
use crate::scenario::{load_scenario, to_yaml_string, Scenario, SourceKind, SourceSpec, Workload};
use crate::sim::recorder::Recorder;
use crate::workload;
use clap::{Parser, Subcommand, ValueEnum};
use std::path::{Path, PathBuf};

/// kvsim: simulate the KV cache of LLM serving.
#[derive(Parser, Debug)]
#[command(name = "kvsim", version, about, long_about = None)]
pub struct Cli {
    /// No progress bar or spinner (none is drawn when stderr is not a terminal either).
    #[arg(long, short, global = true)]
    quiet: bool,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Replay a scenario's workload through the modelled engine and report.
    Run {
        /// Scenario YAML file.
        scenario: PathBuf,
        /// Override a field: dotted.key=value (repeatable).
        #[arg(long = "set", value_name = "KEY=VALUE")]
        sets: Vec<String>,
        /// Output directory (default: output.dir, or out/<name>).
        #[arg(long)]
        out: Option<PathBuf>,
        /// Print the summary as JSON instead of a table.
        #[arg(long)]
        json: bool,
        /// Write no files; print the summary only.
        #[arg(long)]
        no_files: bool,
        /// Recount every block after every step (slow; for debugging).
        #[arg(long)]
        audit: bool,
        /// Run every engine step through the event loop: no steady decode steps
        /// fast-forwarded (same results, slower; docs/performance.md).
        #[arg(long)]
        no_fast_forward: bool,
        /// Latency percentiles to report, e.g. `50,90,95,99,99.9` (output.percentiles).
        #[arg(long, value_name = "P,P,...")]
        percentiles: Option<String>,
        /// Also write bench_result.json, as `vllm bench serve --save-result --save-detailed`
        /// does (output.bench_json).
        #[arg(long)]
        bench_json: bool,
        /// Also write trace.json, the run as a Chrome / Perfetto trace (as output.trace).
        #[arg(long)]
        trace: bool,
        /// Run seeds seed, seed+1, ..., seed+N-1 in parallel and report every figure's
        /// mean and 95 % confidence interval; files are the first seed's.
        #[arg(long, value_name = "N")]
        seeds: Option<u32>,
        /// Worker threads for --seeds (default: one per core; fewer hold less memory).
        #[arg(long)]
        jobs: Option<usize>,
    },
    /// Check a scenario without running it.
    Validate {
        /// Scenario YAML file.
        scenario: PathBuf,
        /// Override a field: dotted.key=value (repeatable).
        #[arg(long = "set", value_name = "KEY=VALUE")]
        sets: Vec<String>,
    },
    /// Model presets: list them, or show one's weights, KV bytes and FLOPs per token.
    Model {
        #[command(subcommand)]
        command: ModelCommand,
    },
    /// Inspect, generate and convert traces.
    Trace {
        #[command(subcommand)]
        command: TraceCommand,
    },
    /// Standalone cache simulation: policies x cache sizes x predictors over page traces.
    Paging(PagingArgs),
    /// Measure the model's kernels on this GPU (cuBLAS, NVRTC) and write a calibration
    /// profile; `--validate` checks a profile against composed steps; `--dry-run` prints the plan.
    Calibrate(CalibrateArgs),
    /// Run a scenario over the cartesian grid of `--vary` values in parallel; one CSV row
    /// per point. `--shard K/N` runs a fixed slice (for job arrays); `kvsim merge` joins them.
    Sweep(SweepArgs),
    /// Join the CSVs of a sharded sweep into the unsharded result.
    Merge {
        /// Shard CSV files.
        #[arg(required = true)]
        inputs: Vec<PathBuf>,
        /// The merged CSV.
        #[arg(long)]
        out: PathBuf,
    },
    /// Find the cheapest configuration that meets the SLOs, and each candidate's highest
    /// sustainable load.
    Plan(PlanArgs),
    /// Score token-level KV policies on a recorded attention trace: attention mass kept,
    /// top-k recall, attention-output error and whether a planted fact survives.
    AttentionEval(AttentionEvalArgs),
    /// Serve a scenario with each token-level policy and budget, score the same policies on
    /// an attention trace, and join both in one table and plot.
    Compare(CompareArgs),
    /// Replay conformance cases (vLLM's own scheduler run on the same requests, step by
    /// step) through kvsim's engine and compare every step, schedule and request exactly.
    Conformance {
        /// Case directories (scenario.yaml, trace, vllm/ and/or vllm_async/), or folders of
        /// them.
        #[arg(required = true)]
        cases: Vec<PathBuf>,
    },
    /// Fit the cost model's coefficients to measurements by least squares: kernel times
    /// (`kernels`) or real serving runs kvsim replays (`serving`); prints the residuals and
    /// writes the fitted `hardware`/`engine` block (see `docs/fit.md`).
    Fit {
        #[command(subcommand)]
        command: FitCommand,
    },
    /// Compare the cost model with real-GPU measurements made by others (see
    /// `docs/validation.md`).
    Fidelity {
        #[command(subcommand)]
        command: FidelityCommand,
    },
}

/// What `kvsim fit` fits to.
#[derive(Subcommand, Debug)]
enum FitCommand {
    /// Kernel times: a calibration profile's measured points (`--profile`, `--gpu`), or
    /// one GPU's GEMM and attention points in Vidur's folder (`--vidur`, `--gpu h100|a100`).
    /// Default: every kernel coefficient the measurements determine.
    Kernels {
        /// Calibration profile, path without extension (NAME.csv and NAME.yaml).
        #[arg(long, conflicts_with = "vidur", required_unless_present = "vidur")]
        profile: Option<PathBuf>,
        /// Vidur's profiling folder (the one holding `compute/`).
        #[arg(long)]
        vidur: Option<PathBuf>,
        /// GPU preset of the profile (`h100-sxm`), or Vidur's GPU folder (`h100`, `a100`).
        #[arg(long)]
        gpu: String,
        /// Model preset of the profile (default: the profile's model name).
        #[arg(long)]
        model: Option<String>,
        #[command(flatten)]
        common: FitArgs,
    },
    /// Real serving runs, replayed request for request: inference-perf experiment folders
    /// (`--inference-perf`, a folder or a folder of them) and scenarios replaying a
    /// `vllm bench serve --save-detailed` result (`--vllm-bench`). Default:
    /// `engine.server_latency_us,hardware.efficiency.attention_memory`.
    Serving {
        /// inference-perf experiment folder, or a folder of them (repeatable).
        #[arg(long = "inference-perf", value_name = "DIR")]
        inference_perf: Vec<PathBuf>,
        /// Scenario whose workload source is a `vllm_bench` result file (repeatable).
        #[arg(long = "vllm-bench", value_name = "SCENARIO")]
        vllm_bench: Vec<PathBuf>,
        #[command(flatten)]
        common: FitArgs,
    },
}

/// Options of both `kvsim fit` commands.
#[derive(clap::Args, Debug)]
struct FitArgs {
    /// Coefficients to fit, comma-separated: dotted scenario keys or their last part
    /// (`gemm_compute`, `engine.server_latency_us`).
    #[arg(long, value_delimiter = ',')]
    fit: Vec<String>,
    /// Start value of a coefficient (kernels), or an override of every replayed scenario
    /// (serving): key=value (repeatable).
    #[arg(long = "set", value_name = "KEY=VALUE")]
    sets: Vec<String>,
    /// Write the fitted block (YAML for a scenario's sections) here, atomically; default:
    /// print it.
    #[arg(long)]
    out: Option<PathBuf>,
    /// The largest relative standard error a fitted coefficient may keep.
    #[arg(long, default_value_t = 0.25)]
    max_uncertainty: f64,
    /// Central-difference step in ln of a coefficient (default: 1e-4 for kernels, 0.03
    /// for serving, whose replays change in discrete steps).
    #[arg(long)]
    step: Option<f64>,
}

/// What `kvsim fidelity` compares.
#[derive(Subcommand, Debug)]
enum FidelityCommand {
    /// Every GEMM and attention time in Vidur's H100/A100 profiles against the default
    /// roofline of that GPU: errors by GPU and operation.
    Kernels {
        /// Vidur's profiling folder (the one holding `compute/`), e.g.
        /// `../shared/fidelity/vidur`.
        vidur: PathBuf,
        /// Also write every point (GPU, source, op, measured and predicted ns) as CSV.
        #[arg(long)]
        csv: Option<PathBuf>,
    },
    /// Convert Vidur's GEMM measurements into kvsim calibration profiles (one per GPU,
    /// model and TP degree), the ops Vidur does not time filled in by the roofline.
    Import {
        /// Vidur's profiling folder (the one holding `compute/`).
        vidur: PathBuf,
        /// Output folder, e.g. `calibration/public`.
        #[arg(long)]
        out: PathBuf,
        /// The date recorded as the import date (default: today, UTC).
        #[arg(long)]
        date: Option<String>,
    },
    /// Replay every inference-perf experiment (real vLLM serving runs) and compare each
    /// stage's TTFT, end-to-end latency and time per output token.
    Serving {
        /// The folder of experiments, e.g. `../shared/fidelity/inference-perf-h100`, or one
        /// experiment folder.
        experiments: Option<PathBuf>,
        /// Also a scenario whose workload source is a `vllm_bench` result file, compared
        /// with that file's TTFTs and latencies (repeatable).
        #[arg(long = "vllm-bench", value_name = "SCENARIO")]
        vllm_bench: Vec<PathBuf>,
        /// Override a field of every replayed scenario: dotted.key=value (repeatable), e.g.
        /// `hardware.efficiency.attention_memory=0.8` or `engine.step_overhead_us=500`.
        #[arg(long = "set", value_name = "KEY=VALUE")]
        sets: Vec<String>,
    },
}

/// Arguments of `kvsim attention-eval`.
#[derive(clap::Args, Debug)]
struct AttentionEvalArgs {
    /// Attention trace (KVAT, e.g. calibration/attention/needle-1k.kvat).
    trace: PathBuf,
    /// Policies, comma-separated (default: all, with `kivi` and `kivi4` quantization).
    #[arg(long, value_delimiter = ',')]
    policies: Vec<String>,
    /// Keep ratios of the prompt, comma-separated.
    #[arg(long, value_delimiter = ',', default_values_t = [0.5, 0.2, 0.1])]
    budgets: Vec<f64>,
    /// Seed of the random policy.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Also write the rows to this CSV.
    #[arg(long)]
    out: Option<PathBuf>,
}

/// Arguments of `kvsim compare`.
#[derive(clap::Args, Debug)]
struct CompareArgs {
    /// Scenario YAML file served with each policy.
    scenario: PathBuf,
    /// Attention trace scored with each policy.
    #[arg(long)]
    trace: PathBuf,
    /// Policies, comma-separated (default: those with a serving model and a fidelity rule).
    #[arg(long, value_delimiter = ',')]
    policies: Vec<String>,
    /// Keep ratios, comma-separated.
    #[arg(long, value_delimiter = ',', default_values_t = [0.5, 0.2, 0.1])]
    budgets: Vec<f64>,
    /// Override a field of every serving run (repeatable).
    #[arg(long = "set", value_name = "KEY=VALUE")]
    sets: Vec<String>,
    /// Directory for compare.csv, compare.md and compare.svg.
    #[arg(long)]
    out: PathBuf,
    /// Seed of the random policy.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Worker threads (default: one per core).
    #[arg(long)]
    jobs: Option<usize>,
}

/// Arguments of `kvsim sweep`.
#[derive(clap::Args, Debug)]
struct SweepArgs {
    /// Scenario YAML file.
    scenario: PathBuf,
    /// A varied field: dotted.key=v1,v2,... (repeatable; the grid is their product).
    #[arg(long = "vary", value_name = "KEY=V1,V2,...", required = true)]
    vary: Vec<String>,
    /// Override a field for every point: dotted.key=value (repeatable).
    #[arg(long = "set", value_name = "KEY=VALUE")]
    sets: Vec<String>,
    /// Run only shard K of N (points i with i mod N = K - 1).
    #[arg(long, value_name = "K/N")]
    shard: Option<String>,
    /// The CSV to write.
    #[arg(long, default_value = "out/sweep.csv")]
    out: PathBuf,
    /// Worker threads (default: one per core).
    #[arg(long)]
    jobs: Option<usize>,
    /// Also draw throughput against p99 TTFT (the CSV's name with `.svg`).
    #[arg(long)]
    plot: bool,
}

/// Arguments of `kvsim plan`.
#[derive(clap::Args, Debug)]
struct PlanArgs {
    /// Scenario YAML file: the workload and the starting configuration.
    scenario: PathBuf,
    /// SLO bounds: METRIC_STAT_ms=BOUND,... with METRIC ttft, tpot, itl, e2e and STAT mean,
    /// p50, p90, p99 (repeatable).
    #[arg(long, value_name = "BOUNDS", required = true)]
    slo: Vec<String>,
    /// A searched field: dotted.key=v1,v2,... (repeatable; candidates are their product).
    #[arg(long, value_name = "KEY=V1,V2,...", required = true)]
    search: Vec<String>,
    /// Override a field for every candidate (repeatable).
    #[arg(long = "set", value_name = "KEY=VALUE")]
    sets: Vec<String>,
    /// Highest multiple of the scenario's load tried.
    #[arg(long, default_value_t = 16.0)]
    max_scale: f64,
    /// Bisection steps of each candidate's load search.
    #[arg(long, default_value_t = 4)]
    iterations: u32,
    /// Directory for plan.csv, best.yaml and plan.svg.
    #[arg(long)]
    out: Option<PathBuf>,
    /// Worker threads (default: one per core).
    #[arg(long)]
    jobs: Option<usize>,
}

/// Arguments of `kvsim calibrate`.
#[derive(clap::Args, Debug)]
struct CalibrateArgs {
    /// Model preset, e.g. `llama-3.1-8b`.
    #[arg(long)]
    model: String,
    /// Tensor-parallel degree: shapes are one GPU's share.
    #[arg(long, default_value_t = 1)]
    tp: u32,
    /// A reduced grid (minutes instead of tens of minutes).
    #[arg(long)]
    quick: bool,
    /// Profile path without extension: writes NAME.csv and NAME.yaml.
    #[arg(long, value_name = "calibration/NAME")]
    out: Option<PathBuf>,
    /// Print the measurement plan and its expected duration; needs no GPU.
    #[arg(long)]
    dry_run: bool,
    /// Run composed steps from a scenario and compare with the profile's predictions;
    /// writes NAME-validation.csv.
    #[arg(long)]
    validate: bool,
    /// Scenario whose batch compositions `--validate` replays.
    #[arg(long, default_value = "scenarios/quickstart.yaml")]
    scenario: PathBuf,
    /// Steps `--validate` measures.
    #[arg(long, default_value_t = 40)]
    steps: usize,
    /// GPU preset for the roofline (dry-run estimate, validation comparison).
    #[arg(long, default_value = "h100-sxm")]
    gpu: String,
    /// Seed of the random inputs.
    #[arg(long, default_value_t = 1)]
    seed: u64,
}

/// Arguments of `kvsim paging`.
#[derive(clap::Args, Debug)]
struct PagingArgs {
    /// Trace files; costs are summed over them.
    #[arg(required = true)]
    files: Vec<PathBuf>,
    /// `text` (one page per line, also libCacheSim's txt), `csv` (time,obj_id[,size]),
    /// libCacheSim's `libcachesim-csv` (columns from --trace-type-params) and
    /// `oracle-general` (its 24-byte binary records), or a request trace whose requests
    /// touch their prompt blocks in order: `mooncake`, `azure`, `ragpulse`, `native`,
    /// `burstgpt`, `bailian`, `kv-cache-tester` (see `docs/traces.md`).
    #[arg(long, value_enum, default_value = "text")]
    format: PagingFormat,
    /// libCacheSim's csv reader parameters for `--format libcachesim-csv`, as its `-t`:
    /// e.g. "time-col=1, obj-id-col=2, obj-size-col=3, delimiter=,, has-header=true"
    /// (default: that layout, delimiter and header detected).
    #[arg(long, value_name = "K=V,...")]
    trace_type_params: Option<String>,
    /// Count every object as one page and skip requests of size 0, as libCacheSim's
    /// `--ignore-obj-size` (formats with object sizes: csv, libcachesim-csv,
    /// oracle-general); without it, sizes other than 1 are refused.
    #[arg(long)]
    ignore_obj_size: bool,
    /// Cache sizes in pages (comma-separated).
    #[arg(long, short, value_delimiter = ',', required = true)]
    k: Vec<usize>,
    /// Policies (comma-separated); see `docs/policies.md`.
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "lru,fifo,clock,lfu,arc,s3fifo,sieve,marker,belady"
    )]
    policies: Vec<String>,
    /// Predictors for the policies that use predictions: oracle, popu, pleco, lru (next
    /// request times), discard, phase (one-bit predictions). Each policy is run with every
    /// predictor of the kind it reads.
    #[arg(long, value_delimiter = ',', default_value = "oracle")]
    predictor: Vec<String>,
    /// Noise levels of the oracle predictor (comma-separated).
    #[arg(long, value_delimiter = ',', default_value = "0")]
    sigma: Vec<f64>,
    /// Probabilities of flipping each bit of the discard and phase predictors
    /// (comma-separated).
    #[arg(long, value_delimiter = ',', default_value = "0")]
    flip: Vec<f64>,
    /// Runs averaged for randomized policies and noisy predictions.
    #[arg(long, default_value_t = 10)]
    runs: u32,
    /// Base seed.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Bound growth of the deterministic combinations.
    #[arg(long, default_value_t = 0.01)]
    gamma: f64,
    /// Learning rate of the randomized combinations.
    #[arg(long, default_value_t = 0.5)]
    eps: f64,
    /// Block size for request traces, tokens.
    #[arg(long, default_value_t = 16)]
    block_size: u32,
    /// Order of a request trace's block requests: `trace` (every full prompt block in
    /// order, any cached block a hit) or `serving` (a prefix cache as vLLM drives it, one
    /// request at a time: prefix hits only, the request's blocks in use, release last block
    /// first; see `docs/policies.md`).
    #[arg(long, value_enum, default_value = "trace")]
    order: PagingOrder,
    /// Also write the rows as CSV to this file.
    #[arg(long)]
    csv: Option<PathBuf>,
    /// Compute Belady's optimum for the cost/OPT and std columns even when `belady` is not
    /// one of the policies (when it is, its own rows give the optimum at no extra cost;
    /// otherwise the columns show `-`).
    #[arg(long)]
    opt: bool,
    /// Worker threads for the policies, sizes, runs and traces (default: one per core, or
    /// RAYON_NUM_THREADS); the output does not depend on it.
    #[arg(long)]
    jobs: Option<usize>,
}

/// How a request trace becomes block requests in `kvsim paging`.
#[derive(ValueEnum, Clone, Copy, Debug, PartialEq)]
enum PagingOrder {
    Trace,
    Serving,
}

/// Inputs of `kvsim paging`.
#[derive(ValueEnum, Clone, Copy, Debug, PartialEq)]
enum PagingFormat {
    Text,
    Csv,
    /// libCacheSim's csv reader.
    #[value(name = "libcachesim-csv")]
    LibcachesimCsv,
    /// libCacheSim's oracleGeneral binary records.
    #[value(
        name = "oracle-general",
        alias = "oracleGeneral",
        alias = "oracleGeneralBin"
    )]
    OracleGeneral,
    Mooncake,
    Azure,
    Ragpulse,
    Native,
    Burstgpt,
    Bailian,
    KvCacheTester,
}

#[derive(Subcommand, Debug)]
enum ModelCommand {
    /// Names of the model presets.
    List,
    /// A preset's shape, weights, KV bytes per token per layer type and FLOPs per token,
    /// whole and for one GPU at a tensor-parallel size.
    Show {
        /// Preset name (`kvsim model list`).
        name: String,
        /// Weights' dtype: bf16, fp16, fp8 or fp32 (default bf16).
        #[arg(long)]
        dtype: Option<String>,
        /// KV cache dtype, as vLLM's `--kv-cache-dtype` (scenario `kv_cache.cache_dtype`).
        #[arg(long, default_value = "auto")]
        kv_cache_dtype: String,
        /// Tensor-parallel size of the shard shown.
        #[arg(long, default_value_t = 1)]
        tp: u32,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
}

#[derive(Subcommand, Debug)]
enum TraceCommand {
    /// Count, duration, rate, length percentiles and the prefix-reuse bound.
    Stats {
        /// A scenario YAML (its workload, with its window and scaling) or a trace file.
        input: PathBuf,
        /// Format of a trace file given directly.
        #[arg(long, value_enum)]
        format: Option<Format>,
        /// Override a scenario field: dotted.key=value (repeatable).
        #[arg(long = "set", value_name = "KEY=VALUE")]
        sets: Vec<String>,
        /// Engine block size for the engine-level bound (default: the scenario's, or 16).
        #[arg(long)]
        block_size: Option<u32>,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Write a scenario's workload (synthetic or any trace) as a native kvsim CSV.
    Synth {
        /// Scenario YAML whose workload to write.
        scenario: PathBuf,
        /// Override a scenario field: dotted.key=value (repeatable).
        #[arg(long = "set", value_name = "KEY=VALUE")]
        sets: Vec<String>,
        /// Output CSV file.
        #[arg(long)]
        out: PathBuf,
        /// Tokens per prefix hash in the output.
        #[arg(long, default_value_t = 16)]
        block_tokens: u32,
    },
}

/// Trace formats accepted on the command line (ShareGPT needs a scenario: its arrivals and
/// think times are scenario fields).
#[derive(ValueEnum, Clone, Copy, Debug)]
enum Format {
    Mooncake,
    Azure,
    Ragpulse,
    Native,
    Burstgpt,
    Bailian,
    KvCacheTester,
}

/// Parse arguments, run, print errors; returns the exit code.
pub fn main() -> i32 {
    let cli = match Cli::try_parse() {
        Ok(c) => c,
        Err(e) => {
            let code = if e.use_stderr() { 2 } else { 0 };
            let _ = e.print();
            return code;
        }
    };
    if handles_signals(&cli.command) {
        if let Err(e) = crate::interrupt::install() {
            eprintln!("error: {e}");
            return e.exit_code();
        }
    }
    match dispatch(cli.command, cli.quiet) {
        Ok(()) => 0,
        Err(e) => {
            eprintln!("error: {e}");
            e.exit_code()
        }
    }
}

/// A spinner for a command without a bar of their own, shown once it has run a second;
/// `fit serving` and `fidelity serving` count their replays on it.
fn delayed_spinner(cmd: &Command, quiet: bool) -> Option<crate::progress::Delayed> {
    let (what, unit) = match cmd {
        Command::Run { .. }
        | Command::Sweep(_)
        | Command::Plan(_)
        | Command::Compare(_)
        | Command::Calibrate(_)
        | Command::Paging(_)
        | Command::Model { .. }
        | Command::Trace {
            command: TraceCommand::Stats { .. },
        } => return None,
        Command::Fit {
            command: FitCommand::Serving { .. },
        } => ("fitting to real serving runs", "replays"),
        Command::Fidelity {
            command: FidelityCommand::Serving { .. },
        } => ("replaying real serving runs", "runs"),
        Command::Fit { .. } => ("fitting", ""),
        Command::Fidelity { .. } => ("comparing with measurements", ""),
        Command::Validate { .. } => ("checking the scenario", ""),
        Command::Trace { .. } => ("writing the trace", ""),
        Command::Merge { .. } => ("merging", ""),
        Command::AttentionEval(_) => ("scoring policies", ""),
        Command::Conformance { .. } => ("replaying conformance cases", ""),
    };
    Some(crate::progress::Delayed::new(what, unit, quiet))
}

/// Commands that stop cleanly on SIGINT and SIGTERM (they poll `crate::interrupt`); the
/// others keep the default action, since they write nothing or one file atomically.
fn handles_signals(cmd: &Command) -> bool {
    matches!(
        cmd,
        Command::Run { .. }
            | Command::Sweep(_)
            | Command::Plan(_)
            | Command::Compare(_)
            | Command::Paging(_)
            | Command::Trace {
                command: TraceCommand::Synth { .. }
            }
    )
}

fn dispatch(cmd: Command, quiet: bool) -> Result<()> {
    // Commands without a bar of their own get a spinner once they have run a second.
    let spinner = delayed_spinner(&cmd, quiet);
    let counter = || {
        spinner
            .as_ref()
            .map_or_else(indicatif::ProgressBar::hidden, |s| s.bar())
    };
    match cmd {
        Command::Run {
            scenario,
            mut sets,
            out,
            json,
            no_files,
            audit,
            no_fast_forward,
            percentiles,
            bench_json,
            trace,
            seeds,
            jobs,
        } => {
            if let Some(p) = percentiles {
                sets.push(format!("output.percentiles=[{p}]"));
            }
            if bench_json {
                sets.push("output.bench_json=true".into());
            }
            run(
                &scenario,
                &sets,
                RunOptions {
                    out,
                    json,
                    no_files,
                    audit,
                    step_by_step: no_fast_forward,
                    trace,
                    seeds,
                    jobs,
                    quiet,
                },
            )
        }
        Command::Validate { scenario, sets } => validate(&scenario, &sets),
        Command::Model { command } => model_command(command),
        Command::Trace {
            command:
                TraceCommand::Stats {
                    input,
                    format,
                    sets,
                    block_size,
                    json,
                },
        } => {
            let reading = crate::progress::activity("reading the trace", quiet);
            let r = trace_stats(&input, format, &sets, block_size, json);
            reading.finish_and_clear();
            r
        }
        Command::Trace {
            command:
                TraceCommand::Synth {
                    scenario,
                    sets,
                    out,
                    block_tokens,
                },
        } => trace_synth(&scenario, &sets, &out, block_tokens),
        Command::Paging(args) => {
            let csv = args.csv.clone();
            paging(args, quiet).map_err(|e| match &csv {
                Some(c) => crate::output::interrupted_at(e, c),
                None => e,
            })
        }
        Command::Calibrate(a) => crate::calibrate::run(&crate::calibrate::CalibrateJob {
            model: a.model,
            tp: a.tp,
            quick: a.quick,
            out: a.out,
            dry_run: a.dry_run,
            validate: a.validate,
            scenario: a.scenario,
            steps: a.steps,
            gpu: a.gpu,
            seed: a.seed,
            quiet,
            command: std::env::args().collect::<Vec<_>>().join(" "),
        }),
        Command::Sweep(a) => sweep(a, quiet),
        Command::Merge { inputs, out } => {
            let n = crate::sweep::merge(&inputs, &out)?;
            eprintln!("merged {n} points into {}", out.display());
            Ok(())
        }
        Command::Plan(a) => plan(a, quiet),
        Command::AttentionEval(a) => attention_eval(a),
        Command::Compare(a) => compare(a, quiet),
        Command::Conformance { cases } => conformance(&cases),
        Command::Fit { command } => fit(command, counter()),
        Command::Fidelity {
            command: FidelityCommand::Kernels { vidur, csv },
        } => fidelity_kernels(&vidur, csv.as_deref()),
        Command::Fidelity {
            command: FidelityCommand::Import { vidur, out, date },
        } => {
            let date = date.unwrap_or_else(|| crate::calibrate::utc_now()[..10].to_string());
            let written = crate::calibrate::vidur::import(&vidur, &out, &date)?;
            for b in &written {
                println!("{}", b.display());
            }
            eprintln!("wrote {} profiles to {}", written.len(), out.display());
            Ok(())
        }
        Command::Fidelity {
            command:
                FidelityCommand::Serving {
                    experiments,
                    vllm_bench,
                    sets,
                },
        } => {
            if experiments.is_none() && vllm_bench.is_empty() {
                return Err(Error::input(
                    "name an experiment folder or a --vllm-bench scenario",
                ));
            }
            let runs = serving_runs(experiments.as_slice(), vllm_bench)?;
            let replayed = counter();
            let mut rows = Vec::new();
            for r in &runs {
                rows.extend(r.metrics(&sets)?);
                replayed.inc(1);
            }
            print!("{}", crate::fidelity::serving_markdown(&rows));
            Ok(())
        }
    }
}

/// The real serving runs of `fit serving` and `fidelity serving`: every inference-perf
/// experiment in `experiments` (each a folder or a folder of them), then the `vllm bench`
/// scenarios.
fn serving_runs(
    experiments: &[PathBuf],
    vllm_bench: Vec<PathBuf>,
) -> Result<Vec<crate::fit::serving::Run>> {
    let mut runs = Vec::new();
    for d in experiments {
        for e in crate::fidelity::experiment_dirs(d)? {
            runs.push(crate::fit::serving::Run::InferencePerf(e));
        }
    }
    runs.extend(
        vllm_bench
            .into_iter()
            .map(crate::fit::serving::Run::VllmBench),
    );
    Ok(runs)
}

/// The job of a `kvsim fit` command.
fn fit_job(a: FitArgs, default_step: f64) -> Result<crate::fit::command::FitJob> {
    let step = a.step.unwrap_or(default_step);
    if !(step > 0.0 && step < 1.0) {
        return Err(Error::input(format!("--step {step}: must be in (0, 1)")));
    }
    if !a.max_uncertainty.is_finite() || a.max_uncertainty <= 0.0 {
        return Err(Error::input(format!(
            "--max-uncertainty must be a positive finite number (got {})",
            a.max_uncertainty
        )));
    }
    Ok(crate::fit::command::FitJob {
        fit: a.fit,
        sets: a.sets,
        out: a.out,
        settings: crate::fit::Settings {
            step,
            max_uncertainty: a.max_uncertainty,
        },
        command: std::env::args().collect::<Vec<_>>().join(" "),
    })
}

/// `kvsim fit`.
fn fit(command: FitCommand, progress: indicatif::ProgressBar) -> Result<()> {
    use crate::fit::command::{fit_kernels, fit_serving, KernelSource};
    let report = match command {
        FitCommand::Kernels {
            profile,
            vidur,
            gpu,
            model,
            common,
        } => {
            let src = match (profile, vidur) {
                (Some(base), None) => KernelSource::Profile { base, gpu, model },
                (None, Some(dir)) => KernelSource::Vidur { dir, gpu },
                _ => return Err(Error::input("name --profile or --vidur")),
            };
            fit_kernels(&src, &fit_job(common, 1e-4)?)?
        }
        FitCommand::Serving {
            inference_perf,
            vllm_bench,
            common,
        } => {
            let runs = serving_runs(&inference_perf, vllm_bench)?;
            if runs.is_empty() {
                return Err(Error::input(
                    "name a run: --inference-perf DIR or --vllm-bench SCENARIO",
                ));
            }
            fit_serving(runs, &fit_job(common, 0.03)?, progress)?
        }
    };
    print!("{report}");
    Ok(())
}

/// `kvsim fidelity kernels`: the error table, and optionally every point as CSV.
fn fidelity_kernels(vidur: &Path, csv: Option<&Path>) -> Result<()> {
    let cases = crate::fidelity::vidur_kernel_cases(vidur)?;
    let eff = crate::scenario::Efficiency::default();
    let points: Vec<_> = cases.iter().map(|c| c.point(&eff)).collect();
    if let Some(path) = csv {
        let mut text =
            String::from("gpu,source,op,tokens,k,n,batch,context,measured_ns,predicted_ns\n");
        for (c, p) in cases.iter().zip(&points) {
            text.push_str(&format!(
                "{},{},{},{},{:.1},{:.1}\n",
                p.gpu,
                p.source,
                p.op,
                c.kernel.csv_fields(),
                p.measured_ns,
                p.predicted_ns
            ));
        }
        crate::sweep::write_atomic(path, text.as_bytes())?;
    }
    print!(
        "{}",
        crate::fidelity::markdown(&crate::fidelity::summarize(&points))
    );
    Ok(())
}

/// Case directories named on the command line: each one, or each subfolder of a folder that
/// is not a case itself.
fn conformance_cases(inputs: &[PathBuf]) -> Result<Vec<PathBuf>> {
    let mut cases = Vec::new();
    for p in inputs {
        let is_case =
            |d: &Path| d.join("scenario.yaml").is_file() || crate::conformance::sglang::is_case(d);
        if is_case(p) {
            cases.push(p.clone());
            continue;
        }
        let rd = std::fs::read_dir(p)
            .map_err(|e| Error::input(format!("cannot read case folder {}: {e}", p.display())))?;
        let mut found: Vec<PathBuf> = rd
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|d| is_case(d))
            .collect();
        if found.is_empty() {
            return Err(Error::input(format!(
                "{}: neither a conformance case (a vLLM case's scenario.yaml, an SGLang case's case.json and sglang_steps.csv) nor a folder of cases",
                p.display()
            )));
        }
        found.sort();
        cases.append(&mut found);
    }
    Ok(cases)
}

fn conformance(inputs: &[PathBuf]) -> Result<()> {
    let mut failed = 0;
    let mut total = 0;
    for case in conformance_cases(inputs)? {
        for (run, c) in crate::conformance::check_case(&case)? {
            total += 1;
            let name = format!("{} {run}", case.display());
            if c.matches() {
                println!("{name}: match ({} steps, {} requests)", c.steps, c.requests);
            } else {
                failed += 1;
                println!(
                    "{name}: DIFFERS ({} steps, {} of {} requests differ)\n{}",
                    c.steps, c.mismatched_requests, c.requests, c.detail
                );
            }
        }
    }
    println!("{} of {total} runs match exactly", total - failed);
    if failed > 0 {
        return Err(Error::failure(format!(
            "{failed} of {total} conformance runs differ"
        )));
    }
    Ok(())
}

fn attention_eval(a: AttentionEvalArgs) -> Result<()> {
    let trace = crate::attention::AttentionTrace::read(&a.trace)?;
    let policies = if a.policies.is_empty() {
        crate::attention::policies::POLICIES
            .iter()
            .chain(crate::attention::quantize::QUANTIZERS)
            .map(|p| p.to_string())
            .collect()
    } else {
        a.policies
    };
    let rows = crate::attention::evaluate(&trace, &policies, &a.budgets, a.seed)?;
    println!(
        "{}: {}, prompt {} tokens, {} decode steps, layers {:?} of {}",
        a.trace.display(),
        trace.model,
        trace.prompt_len,
        trace.decode_steps,
        trace.layers.iter().map(|l| l.layer).collect::<Vec<_>>(),
        trace.model_layers
    );
    println!("{}\n", trace.note);
    print!("{}", crate::attention::eval::markdown(&rows));
    if let Some(out) = a.out {
        let mut csv = String::from(crate::attention::eval::CSV_HEADER);
        csv.push('\n');
        for r in &rows {
            csv.push_str(&crate::attention::eval::csv_row(r));
            csv.push('\n');
        }
        crate::sweep::write_atomic(&out, csv.as_bytes())?;
        eprintln!("wrote {}", out.display());
    }
    Ok(())
}

fn compare(a: CompareArgs, quiet: bool) -> Result<()> {
    let policies = if a.policies.is_empty() {
        crate::compare::DEFAULT_POLICIES
            .iter()
            .map(|p| p.to_string())
            .collect()
    } else {
        a.policies
    };
    let job = crate::compare::CompareJob {
        scenario: a.scenario,
        trace: a.trace,
        policies,
        ratios: a.budgets,
        sets: a.sets,
        out: a.out,
        seed: a.seed,
        quiet,
    };
    let rows = thread_pool(a.jobs)?
        .install(|| crate::compare::compare(&job))
        .map_err(|e| crate::output::interrupted_at(e, &job.out))?;
    print!("{}", crate::compare::markdown(&rows));
    eprintln!(
        "wrote compare.csv, compare.md and compare.svg in {}",
        job.out.display()
    );
    Ok(())
}

fn thread_pool(jobs: Option<usize>) -> Result<rayon::ThreadPool> {
    let mut b = rayon::ThreadPoolBuilder::new();
    if let Some(j) = jobs {
        if j == 0 {
            return Err(Error::input("--jobs: must be at least 1".to_string()));
        }
        b = b.num_threads(j);
    }
    b.build()
        .map_err(|e| Error::failure(format!("cannot start worker threads: {e}")))
}

fn sweep(a: SweepArgs, quiet: bool) -> Result<()> {
    let axes = a
        .vary
        .iter()
        .map(|v| crate::sweep::Axis::parse("--vary", v))
        .collect::<Result<Vec<_>>>()?;
    let shard = a
        .shard
        .as_deref()
        .map(crate::sweep::Shard::parse)
        .transpose()?;
    let job = crate::sweep::SweepJob {
        scenario: a.scenario,
        sets: a.sets,
        axes,
        shard,
        out: a.out,
        plot: a.plot,
        quiet,
    };
    let started = std::time::Instant::now();
    let (n, failed) = thread_pool(a.jobs)?
        .install(|| crate::sweep::sweep(&job))
        .map_err(|e| crate::output::interrupted_at(e, &job.out))?;
    eprintln!(
        "wrote {} ({n} points in {:.1} s{})",
        job.out.display(),
        started.elapsed().as_secs_f64(),
        if failed > 0 {
            format!("; {failed} failed, see the error column")
        } else {
            String::new()
        }
    );
    Ok(())
}

fn plan(a: PlanArgs, quiet: bool) -> Result<()> {
    let search = a
        .search
        .iter()
        .map(|v| crate::sweep::Axis::parse("--search", v))
        .collect::<Result<Vec<_>>>()?;
    let mut slo = Vec::new();
    for s in &a.slo {
        slo.extend(crate::planner::SloBound::parse_list(s)?);
    }
    let job = crate::planner::PlanJob {
        scenario: a.scenario,
        sets: a.sets,
        search,
        slo,
        max_scale: a.max_scale,
        iterations: a.iterations,
        out: a.out,
        quiet,
    };
    let started = std::time::Instant::now();
    let cands = thread_pool(a.jobs)?
        .install(|| crate::planner::plan(&job))
        .map_err(|e| match &job.out {
            Some(d) => crate::output::interrupted_at(e, d),
            None => e,
        })?;
    print!("{}", crate::planner::table(&job, &cands));
    let runs: u32 = cands.iter().map(|c| c.runs).sum();
    eprintln!(
        "{} candidates, {runs} runs in {:.1} s",
        cands.len(),
        started.elapsed().as_secs_f64()
    );
    if let Some(d) = &job.out {
        eprintln!(
            "wrote {}/{{plan.csv,plan.svg{}}}",
            d.display(),
            if cands.iter().any(|c| c.verdict.is_ok()) {
                ",best.yaml"
            } else {
                ""
            }
        );
    }
    if cands.iter().all(|c| c.verdict.is_err()) {
        return Err(Error::failure(
            "no candidate meets the SLOs at the scenario's load; widen the search".to_string(),
        ));
    }
    Ok(())
}

/// Load and fully check a scenario: the file, the model and GPU, the memory plan, and that
/// the trace opens and its first row parses.
fn load_checked(path: &Path, sets: &[String]) -> Result<(Scenario, EngineSetup)> {
    let s = load_scenario(path, sets)?;
    let setup = EngineSetup::from_scenario(&s)?;
    let mut stream = workload::open(&s.workload, s.seed)?;
    if let Some(Err(e)) = stream.next() {
        return Err(e);
    }
    Ok((s, setup))
}

/// Options of `kvsim run`.
struct RunOptions {
    out: Option<PathBuf>,
    json: bool,
    no_files: bool,
    audit: bool,
    step_by_step: bool,
    trace: bool,
    seeds: Option<u32>,
    jobs: Option<usize>,
    quiet: bool,
}

fn run(path: &Path, sets: &[String], o: RunOptions) -> Result<()> {
    let (s, setup) = load_checked(path, sets)?;
    let dir = o
        .out
        .clone()
        .or_else(|| s.output.dir.clone())
        .unwrap_or_else(|| PathBuf::from("out").join(&s.name));
    let no_files = o.no_files;
    run_into(&s, &setup, &dir, o).map_err(|e| {
        if no_files {
            e
        } else {
            crate::output::interrupted_at(e, &dir)
        }
    })
}

/// `kvsim run` once the scenario is loaded: simulate (one seed or several), then write
/// `dir` (unless `no_files`) only when something completed.
fn run_into(s: &Scenario, setup: &EngineSetup, dir: &Path, o: RunOptions) -> Result<()> {
    let seeds = crate::seeds::seed_list(s.seed, o.seeds.unwrap_or(1))?;
    let (outdir, req_file, step_file) = if o.no_files {
        (None, None, None)
    } else {
        let (d, r, st) = OutputDir::create(dir, s.output.per_request, s.output.per_step)?;
        (Some(d), r, st)
    };
    let mut rec = Recorder::for_engine(req_file, step_file, s.slo.clone(), &s.engine.kind)?;
    rec.set_step_by_step(o.step_by_step);
    let tracing = o.trace || s.output.trace;
    let mut outdir = outdir;
    if let (Some(d), true) = (&mut outdir, tracing) {
        rec.set_trace(crate::trace_events::TraceWriter::new(
            d.open_partial("trace.json")?,
        )?);
    }
    if s.output.bench_json && outdir.is_some() {
        rec.bench = Some(Default::default());
    }
    let progress = crate::progress::RunProgress::new(
        crate::progress::Measure::of(&s.workload),
        seeds.len() as u64,
        o.quiet,
    );
    if let Some(t) = progress.ticker() {
        rec.set_progress(t);
    }
    let started = std::time::Instant::now();
    let result = if seeds.len() == 1 {
        crate::sim::run(s, setup, &mut rec, o.audit).map(|x| (x, None))
    } else {
        thread_pool(o.jobs)?
            .install(|| crate::seeds::run_seeds(s, setup, &mut rec, o.audit, &seeds, &progress))
            .and_then(|all| {
                let st = crate::seeds::SeedStats::of(seeds.clone(), &all)?;
                let first = all.into_iter().next().expect("two or more seeds");
                Ok((first, Some(st)))
            })
    };
    progress.finish();
    let (summary, seed_stats) = result?;
    let elapsed = started.elapsed();
    if let Err(e) = crate::report::check_succeeded(&summary) {
        let note = if o.no_files {
            String::new()
        } else {
            format!("; no results written, {}", crate::output::kept(dir))
        };
        return Err(Error::failure(format!("{e}{note}")));
    }
    let summary_json = match &seed_stats {
        None => serde_json::to_string_pretty(&summary),
        Some(st) => serde_json::to_string_pretty(&crate::seeds::SeedsSummary {
            first: &summary,
            seeds: st,
        }),
    }
    .map_err(|e| Error::failure(e.to_string()))?;
    if let Some(mut d) = outdir {
        let dir_shown = d.path().display().to_string();
        for (name, svg) in run_plots(&rec)? {
            d.add_file(name, &svg)?;
        }
        if let Some(b) = &rec.bench {
            let bench = b.to_json(s, summary.makespan_s);
            let text = serde_json::to_string(&bench).map_err(|e| Error::failure(e.to_string()))?;
            d.add_file("bench_result.json", &text)?;
            eprintln!("wrote {dir_shown}/bench_result.json (vllm bench serve's result format)");
        }
        d.commit(&to_yaml_string(s)?, &summary_json)?;
        eprintln!("wrote {dir_shown}/{{requests.csv,steps.csv,scenario.yaml,summary.json,latency_cdf.svg,kv_blocks.svg,queue.svg}}");
        if tracing {
            eprintln!("wrote {dir_shown}/trace.json (open in https://ui.perfetto.dev)");
        }
        if seed_stats.is_some() {
            eprintln!(
                "per-request, per-step and trace files are those of seed {}",
                seeds[0]
            );
        }
    }
    if o.json {
        println!("{summary_json}");
        if let Some(w) = &summary.load_warning {
            eprintln!("warning: {w}");
        }
    } else {
        match &seed_stats {
            None => print!("{}", summary.to_table()),
            Some(st) => print!("{}", crate::seeds::table(&summary, st)),
        }
        eprintln!("simulated in {:.3} s", elapsed.as_secs_f64());
    }
    Ok(())
}

/// The plots of a run: latency CDFs, KV blocks and queues over time.
fn run_plots(rec: &Recorder) -> Result<Vec<(&'static str, String)>> {
    use crate::plots::{cdf, line_chart, Series};
    let ttft: Vec<f64> = rec.latencies.iter().map(|l| l.ttft_ms).collect();
    let tpot: Vec<f64> = rec.latencies.iter().filter_map(|l| l.tpot_ms).collect();
    let e2e: Vec<f64> = rec.latencies.iter().map(|l| l.e2e_ms).collect();
    let cdfs = line_chart(
        "Latency CDFs",
        "milliseconds (log scale)",
        "fraction of requests",
        &[
            Series {
                label: "TTFT",
                points: cdf(&ttft, 2000),
            },
            Series {
                label: "TPOT",
                points: cdf(&tpot, 2000),
            },
            Series {
                label: "E2E",
                points: cdf(&e2e, 2000),
            },
        ],
        true,
        false,
    )?;
    let step = rec.timeline.len().div_ceil(3000).max(1);
    let over = |f: fn(&crate::sim::recorder::TimelinePoint) -> f64| -> Vec<(f64, f64)> {
        rec.timeline
            .iter()
            .step_by(step)
            .map(|p| (p.t_s, f(p)))
            .collect()
    };
    let blocks = line_chart(
        "KV blocks in use",
        "seconds",
        "blocks (all replicas)",
        &[Series {
            label: "used blocks",
            points: over(|p| p.used_blocks as f64),
        }],
        false,
        false,
    )?;
    let queue = line_chart(
        "Queue length",
        "seconds",
        "requests (all replicas)",
        &[
            Series {
                label: "waiting",
                points: over(|p| p.waiting as f64),
            },
            Series {
                label: "running",
                points: over(|p| p.running as f64),
            },
        ],
        false,
        false,
    )?;
    Ok(vec![
        ("latency_cdf.svg", cdfs),
        ("kv_blocks.svg", blocks),
        ("queue.svg", queue),
    ])
}

fn validate(path: &Path, sets: &[String]) -> Result<()> {
    let (scenario, setup) = load_checked(path, sets)?;
    let cost = crate::sim::build_cost_model(&scenario, &setup)?;
    let m = &setup.model;
    match &setup.sglang {
        Some(g) => println!(
            "{}: ok ({} on {}, SGLang: {} KV token slots in pages of {}, mem_fraction_static {}, max_running_requests {}, chunked_prefill_size {}, max_prefill_tokens {}, schedule_policy {})",
            path.display(),
            m.name,
            setup.gpu.name,
            g.max_total_tokens,
            g.page_size,
            setup.memory.utilization,
            g.max_running_requests,
            g.chunked_prefill_size
                .map_or("off".to_string(), |c| c.to_string()),
            g.max_prefill_tokens,
            g.schedule_policy.as_str()
        ),
        None => println!(
            "{}: ok ({} on {}, {} GPU blocks of {} tokens, max_num_batched_tokens {}, max_num_seqs {})",
            path.display(),
            m.name,
            setup.gpu.name,
            setup.memory.num_gpu_blocks,
            setup.block_size,
            setup.scheduler.max_num_batched_tokens,
            setup.scheduler.max_num_seqs
        ),
    }
    println!(
        "model: {:.3} B parameters, {:.2} GiB of weights, {} KV bytes per token (KV cache dtype {}), {:.2} GFLOP per token (linear layers and LM head)",
        m.total_params() as f64 / 1e9,
        m.weight_bytes() as f64 / (1u64 << 30) as f64,
        m.kv_bytes_per_token(),
        m.kv_dtype,
        m.linear_flops_per_token() as f64 / 1e9
    );
    if setup.kv_groups.is_hybrid() {
        println!(
            "KV cache groups: {}, {} bytes per block",
            setup.memory.kv_cache_groups, setup.memory.block_bytes
        );
    }
    let (conv, ssm) = setup.shard.linear_state_bytes_per_layer();
    if conv + ssm > 0 {
        println!(
            "linear attention: {} bytes of state per layer and request on one GPU, padded to a page of {} tokens ({} bytes)",
            conv + ssm,
            setup.block_size,
            setup.block_size as u64 * setup.shard.kv_bytes_per_token_layer()
        );
    }
    println!("cost model: {}", cost.describe());
    Ok(())
}

/// `kvsim model list` and `kvsim model show`.
fn model_command(cmd: ModelCommand) -> Result<()> {
    match cmd {
        ModelCommand::List => {
            for name in crate::model::preset_names() {
                println!("{name}");
            }
            Ok(())
        }
        ModelCommand::Show {
            name,
            dtype,
            kv_cache_dtype,
            tp,
            json,
        } => {
            let spec = crate::scenario::ModelSpec {
                preset: Some(name),
                dtype,
                ..Default::default()
            };
            let model =
                crate::model::Model::from_spec(&spec)?.with_kv_cache_dtype(&kv_cache_dtype)?;
            let report = crate::model::ModelReport::new(&model, tp)?;
            if json {
                let text = serde_json::to_string_pretty(&report)
                    .map_err(|e| Error::failure(format!("cannot write JSON: {e}")))?;
                println!("{text}");
            } else {
                println!("{report}");
            }
            Ok(())
        }
    }
}

fn is_yaml(p: &Path) -> bool {
    matches!(
        p.extension().and_then(|e| e.to_str()),
        Some("yaml") | Some("yml")
    )
}

fn trace_workload(
    input: &Path,
    format: Option<Format>,
    sets: &[String],
) -> Result<(Workload, u64, u32)> {
    if is_yaml(input) && format.is_none() {
        let s = load_scenario(input, sets)?;
        return Ok((s.workload, s.seed, s.kv_cache.block_size));
    }
    let format = format.ok_or_else(|| {
        Error::input("trace stats: give a scenario .yaml, or a trace file with --format")
    })?;
    let path = input.to_path_buf();
    let kind = match format {
        Format::Mooncake => SourceKind::Mooncake,
        Format::Azure => SourceKind::Azure,
        Format::Ragpulse => SourceKind::Ragpulse,
        Format::Native => SourceKind::Native,
        Format::Burstgpt => SourceKind::Burstgpt,
        Format::Bailian => SourceKind::Bailian,
        Format::KvCacheTester => SourceKind::KvCacheTester,
    };
    Ok((Workload::of(SourceSpec::trace(kind, path)), 0, 16))
}

fn trace_stats(
    input: &Path,
    format: Option<Format>,
    sets: &[String],
    block_size: Option<u32>,
    json: bool,
) -> Result<()> {
    let (w, seed, bs) = trace_workload(input, format, sets)?;
    let bs = block_size.unwrap_or(bs);
    if bs == 0 {
        return Err(Error::input("--block-size must be at least 1"));
    }
    let stats = workload::stats::trace_stats(workload::open(&w, seed)?, bs)?;
    if json {
        println!(
            "{}",
            serde_json::to_string_pretty(&stats).map_err(|e| Error::failure(e.to_string()))?
        );
    } else {
        print!("{}", stats.to_table());
    }
    Ok(())
}

fn trace_synth(path: &Path, sets: &[String], out: &Path, block_tokens: u32) -> Result<()> {
    if block_tokens == 0 {
        return Err(Error::input("--block-tokens must be at least 1"));
    }
    let s = load_scenario(path, sets)?;
    let stream = workload::open(&s.workload, s.seed)?;
    let part = out.with_extension("csv.partial");
    let file = std::fs::File::create(&part)
        .map_err(|e| Error::failure(format!("cannot create {}: {e}", part.display())))?;
    let result = workload::native::write_native(&file, stream, block_tokens).and_then(|n| {
        file.sync_all()
            .map_err(|e| Error::failure(format!("cannot write {}: {e}", part.display())))?;
        Ok(n)
    });
    match result {
        Ok(n) => {
            std::fs::rename(&part, out)
                .map_err(|e| Error::failure(format!("cannot write {}: {e}", out.display())))?;
            eprintln!("wrote {n} requests to {}", out.display());
            Ok(())
        }
        Err(e) => {
            let _ = std::fs::remove_file(&part);
            Err(crate::output::interrupted_at(e, out))
        }
    }
}

/// The request-trace reader behind a paging format (`None` for page traces).
fn request_trace_kind(format: PagingFormat) -> Option<SourceKind> {
    match format {
        PagingFormat::Text
        | PagingFormat::Csv
        | PagingFormat::LibcachesimCsv
        | PagingFormat::OracleGeneral => None,
        PagingFormat::Mooncake => Some(SourceKind::Mooncake),
        PagingFormat::Azure => Some(SourceKind::Azure),
        PagingFormat::Ragpulse => Some(SourceKind::Ragpulse),
        PagingFormat::Native => Some(SourceKind::Native),
        PagingFormat::Burstgpt => Some(SourceKind::Burstgpt),
        PagingFormat::Bailian => Some(SourceKind::Bailian),
        PagingFormat::KvCacheTester => Some(SourceKind::KvCacheTester),
    }
}

/// The page-trace format of a paging format (`None` for request traces).
fn page_format(a: &PagingArgs) -> Result<Option<crate::paging::readers::PageFormat>> {
    use crate::paging::readers::{LcsCsvParams, PageFormat};
    if a.trace_type_params.is_some() && a.format != PagingFormat::LibcachesimCsv {
        return Err(Error::input(
            "--trace-type-params applies to --format libcachesim-csv only",
        ));
    }
    let format = match a.format {
        PagingFormat::Text => PageFormat::Text,
        PagingFormat::Csv => PageFormat::Csv,
        PagingFormat::OracleGeneral => PageFormat::OracleGeneral,
        PagingFormat::LibcachesimCsv => PageFormat::LibCacheSimCsv(match &a.trace_type_params {
            Some(s) => LcsCsvParams::parse(s)?,
            None => LcsCsvParams::default(),
        }),
        _ => {
            if a.ignore_obj_size {
                return Err(Error::input(
                    "--ignore-obj-size applies to formats with object sizes: csv, \
                     libcachesim-csv, oracle-general",
                ));
            }
            return Ok(None);
        }
    };
    if a.ignore_obj_size && format == PageFormat::Text {
        return Err(Error::input(
            "--ignore-obj-size applies to formats with object sizes: csv, libcachesim-csv, \
             oracle-general",
        ));
    }
    Ok(Some(format))
}

/// Load one paging input as a page trace.
fn load_paging_trace(
    path: &Path,
    format: PagingFormat,
    pages: Option<&crate::paging::readers::PageFormat>,
    ignore_obj_size: bool,
    block_size: u32,
) -> Result<crate::paging::Trace> {
    use crate::paging::Trace;
    if let Some(f) = pages {
        return crate::paging::readers::read_pages(path, f, ignore_obj_size);
    }
    let kind = request_trace_kind(format)
        .ok_or_else(|| Error::failure(format!("{format:?} is not a request trace format")))?;
    let stream = workload::open(
        &Workload::of(SourceSpec::trace(kind, path.to_path_buf())),
        0,
    )?;
    let mut labels = Vec::new();
    let mut hashes = Vec::new();
    for (i, r) in stream.enumerate() {
        let r = r?;
        if i.is_multiple_of(4096) {
            crate::interrupt::check()?;
        }
        hashes.clear();
        crate::prefix::block_hashes(
            &r.segments,
            r.input_tokens,
            r.input_tokens as u64,
            block_size,
            r.id,
            &mut hashes,
        );
        labels.extend_from_slice(&hashes);
    }
    Trace::try_from_labels(&path.display().to_string(), labels).ok_or_else(|| {
        Error::input(format!(
            "{}: more than {} distinct blocks",
            path.display(),
            crate::paging::labels::MAX_PAGES
        ))
    })
}

fn paging(a: PagingArgs, quiet: bool) -> Result<()> {
    use crate::paging::predictor::Predictor;
    use crate::paging::run::{run_paging, to_table, PagingJob};
    use rayon::prelude::*;
    if a.k.contains(&0) {
        return Err(Error::input("--k: cache sizes must be at least 1"));
    }
    if a.runs == 0 {
        return Err(Error::input("--runs must be at least 1"));
    }
    if a.block_size == 0 {
        return Err(Error::input("--block-size must be at least 1"));
    }
    if !(a.gamma > 0.0 && a.gamma.is_finite() && a.eps > 0.0 && a.eps < 2.0) {
        return Err(Error::input("--gamma must be positive and --eps in (0, 2)"));
    }
    if let Some(s) = a.sigma.iter().find(|s| !(s.is_finite() && **s >= 0.0)) {
        return Err(Error::input(format!(
            "--sigma: {s} is not a non-negative number"
        )));
    }
    if let Some(p) = a.flip.iter().find(|p| !(**p >= 0.0 && **p <= 1.0)) {
        return Err(Error::input(format!(
            "--flip: {p} is not a probability in [0, 1]"
        )));
    }
    let mut predictors = Vec::new();
    for name in &a.predictor {
        if name == "oracle" {
            for &s in &a.sigma {
                predictors.push(Predictor::parse(name, s)?);
            }
        } else if name == "discard" || name == "phase" {
            for &p in &a.flip {
                predictors.push(Predictor::parse(name, p)?);
            }
        } else {
            predictors.push(Predictor::parse(name, 0.0)?);
        }
    }
    let pages = page_format(&a)?;
    let pool = thread_pool(a.jobs)?;
    let spinner = crate::progress::activity("reading traces and simulating policies", quiet);
    if a.order == PagingOrder::Serving {
        return paging_serving_order(&a);
    }
    let traces = pool.install(|| {
        a.files
            .par_iter()
            .map(|f| {
                load_paging_trace(f, a.format, pages.as_ref(), a.ignore_obj_size, a.block_size)
            })
            .collect::<Result<Vec<_>>>()
    })?;
    let job = PagingJob {
        ks: a.k,
        policies: a.policies,
        predictors,
        runs: a.runs,
        seed: a.seed,
        gamma: a.gamma,
        eps: a.eps,
        opt: a.opt,
    };
    let started = std::time::Instant::now();
    let rows = pool.install(|| run_paging(&traces, &job))?;
    spinner.finish_and_clear();
    print!("{}", to_table(&rows));
    let requests: usize = traces.iter().map(|t| t.len()).sum();
    eprintln!(
        "{} traces, {requests} requests, {:.2} s",
        traces.len(),
        started.elapsed().as_secs_f64()
    );
    write_paging_csv(a.csv.as_deref(), &rows)
}

/// `kvsim paging --order serving`: request traces replayed as a vLLM prefix cache.
fn paging_serving_order(a: &PagingArgs) -> Result<()> {
    use crate::paging::prefix_cache::{run_prefix, PrefixRequest, PrefixTrace};
    let kind = request_trace_kind(a.format).ok_or_else(|| {
        Error::input(
            "--order serving needs a request trace (--format mooncake, azure, ragpulse, native, \
             burstgpt, bailian or kv-cache-tester)",
        )
    })?;
    let started = std::time::Instant::now();
    let mut traces = Vec::new();
    for f in &a.files {
        let stream = workload::open(&Workload::of(SourceSpec::trace(kind, f.clone())), 0)?;
        let mut requests = Vec::new();
        for (i, r) in stream.enumerate() {
            let r = r?;
            if i.is_multiple_of(4096) {
                crate::interrupt::check()?;
            }
            let mut hashes = Vec::new();
            crate::prefix::prompt_block_hashes(&r, a.block_size, &mut hashes);
            requests.push(PrefixRequest::new(hashes, r.input_tokens, a.block_size));
        }
        traces.push(PrefixTrace::new(requests));
    }
    let rows = run_prefix(&traces, &a.k, &a.policies, a.runs, a.seed, a.opt)?;
    print!("{}", crate::paging::run::to_table(&rows));
    eprintln!(
        "{} traces in serving order, {} full blocks, {:.2} s",
        traces.len(),
        traces.iter().map(|t| t.full_blocks()).sum::<u64>(),
        started.elapsed().as_secs_f64()
    );
    write_paging_csv(a.csv.as_deref(), &rows)
}

fn write_paging_csv(path: Option<&Path>, rows: &[crate::paging::run::PagingRow]) -> Result<()> {
    let Some(path) = path else {
        return Ok(());
    };
    let bad = |e: csv::Error| Error::failure(format!("cannot write {}: {e}", path.display()));
    let mut w = csv::Writer::from_writer(Vec::new());
    for r in rows {
        w.serialize(r).map_err(bad)?;
    }
    let bytes = w
        .into_inner()
        .map_err(|e| Error::failure(format!("cannot write {}: {e}", path.display())))?;
    crate::output::write_atomic(path, &bytes)
}
