//! The scenario: one YAML file that says what to simulate. Every field has a default
//! (documented in `docs/scenario.md`); unknown fields are errors.

mod bench;
mod engine_keys;
mod load;
mod readers;
mod source;

pub use bench::{
    GroupDistributionKind, RampUpStrategy, RangeRatio, SglangGspSection, SplitRatio,
    VllmPrefixRepetitionSection, VllmRandomSection, MAX_PROMPTS, MAX_TOKENS,
};
pub use load::{check_key, load_scenario, parse_scenario, parse_yaml, to_yaml, to_yaml_string};
pub use source::{
    ArrivalKind, ArrivalSpec, LengthKind, LengthSpec, SessionSpec, SourceKind, SourceSpec,
    SystemPromptSpec,
};

use serde::{Deserialize, Serialize};
use std::path::PathBuf;

/// A complete scenario.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Scenario {
    /// Name used in reports and the default output directory.
    #[serde(default = "default_name")]
    pub name: String,
    /// Seed for every random choice (synthetic workloads, sampling).
    #[serde(default)]
    pub seed: u64,
    /// Where requests come from.
    pub workload: Workload,
    /// The served model.
    #[serde(default)]
    pub model: ModelSpec,
    /// The GPU and cost-model settings.
    #[serde(default)]
    pub hardware: HardwareSpec,
    /// Scheduler settings of the modelled engine.
    #[serde(default)]
    pub engine: EngineSpec,
    /// KV cache settings.
    #[serde(default)]
    pub kv_cache: KvCacheSpec,
    /// Replicas, routing, node topology and prefill/decode disaggregation.
    #[serde(default)]
    pub cluster: ClusterSpec,
    /// Service-level objectives used for goodput.
    #[serde(default)]
    pub slo: SloSpec,
    /// What to write and where.
    #[serde(default)]
    pub output: OutputSpec,
}

fn default_name() -> String {
    "scenario".to_string()
}

/// Request source and its transformations.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Workload {
    /// Where the requests come from.
    pub source: SourceSpec,
    /// Multiply every arrival time by this factor (2.0 stretches the trace to twice as long).
    #[serde(default = "one")]
    pub time_scale: f64,
    /// Multiply the request rate by this factor (2.0 halves every arrival time).
    #[serde(default = "one")]
    pub rate_scale: f64,
    /// Keep only requests that arrive at or after this many seconds into the trace.
    #[serde(default)]
    pub start_s: Option<f64>,
    /// Keep only requests that arrive before this many seconds into the trace.
    #[serde(default)]
    pub end_s: Option<f64>,
    /// Keep at most this many requests.
    #[serde(default)]
    pub limit: Option<u64>,
    /// At most this many requests in flight (sent, not finished); the others wait for a
    /// slot, as `vllm bench serve --max-concurrency` does. `None`: no limit (open loop).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_concurrency: Option<u32>,
    /// When a session's later turns are sent: at their source times (`arrival`, open
    /// loop), or their think time after the previous turn's answer (`after_answer`).
    #[serde(default, skip_serializing_if = "TurnTiming::is_arrival")]
    pub turn_timing: TurnTiming,
}

/// When a session's later turns are sent.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq, Default)]
#[serde(rename_all = "snake_case")]
pub enum TurnTiming {
    /// At the source's time (open loop).
    #[default]
    Arrival,
    /// The source's gap between the two turns after the previous turn's answer came back
    /// (closed loop: a user reads the answer, thinks, and writes the next message).
    AfterAnswer,
}

impl TurnTiming {
    /// Whether this is the default, open-loop timing.
    pub fn is_arrival(&self) -> bool {
        *self == TurnTiming::Arrival
    }
}

fn one() -> f64 {
    1.0
}

impl Workload {
    /// A whole source, unscaled and unwindowed.
    pub fn of(source: SourceSpec) -> Self {
        Workload {
            source,
            time_scale: 1.0,
            rate_scale: 1.0,
            start_s: None,
            end_s: None,
            limit: None,
            max_concurrency: None,
            turn_timing: TurnTiming::Arrival,
        }
    }
}

/// The served model: a preset name, explicit shapes, or a preset with some shapes overridden.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Default)]
#[serde(deny_unknown_fields)]
pub struct ModelSpec {
    /// A Hugging Face `config.json` to read the model from (`src/hf_config.rs`), instead
    /// of a preset or a shape; `dtype` and `max_position` may override it.
    #[serde(default)]
    pub hf_config: Option<std::path::PathBuf>,
    /// Preset name, e.g. `llama-3.1-8b` (see `docs/scenario.md` for the list).
    #[serde(default)]
    pub preset: Option<String>,
    /// Number of transformer layers.
    #[serde(default)]
    pub layers: Option<u32>,
    /// Hidden size.
    #[serde(default)]
    pub hidden: Option<u32>,
    /// Attention (query) heads.
    #[serde(default)]
    pub heads: Option<u32>,
    /// Key/value heads (grouped-query attention).
    #[serde(default)]
    pub kv_heads: Option<u32>,
    /// Head dimension.
    #[serde(default)]
    pub head_dim: Option<u32>,
    /// MLP intermediate size.
    #[serde(default)]
    pub intermediate: Option<u32>,
    /// Vocabulary size.
    #[serde(default)]
    pub vocab: Option<u32>,
    /// Weight and KV data type: `bf16`, `fp16`, `fp8` or `fp32`.
    #[serde(default)]
    pub dtype: Option<String>,
    /// Maximum context length of the model.
    #[serde(default)]
    pub max_position: Option<u32>,
    /// Whether input and output embeddings share weights.
    #[serde(default)]
    pub tie_embeddings: Option<bool>,
}

/// The GPU and the efficiencies of the roofline cost model.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct HardwareSpec {
    /// GPU preset name, e.g. `h100-sxm`.
    #[serde(default = "default_gpu")]
    pub gpu: String,
    /// Override: usable device memory in GiB.
    #[serde(default)]
    pub memory_gib: Option<f64>,
    /// Override: HBM bandwidth in GB/s.
    #[serde(default)]
    pub hbm_gbps: Option<f64>,
    /// Override: dense bf16 tensor throughput in TFLOP/s.
    #[serde(default)]
    pub bf16_tflops: Option<f64>,
    /// Override: host link bandwidth in GB/s (one direction).
    #[serde(default)]
    pub host_link_gbps: Option<f64>,
    /// Override: NVLink bandwidth per GPU in GB/s (one direction; 0: no NVLink, GPUs talk
    /// over PCIe through the host).
    #[serde(default)]
    pub nvlink_gbps: Option<f64>,
    /// Override: price per GPU-hour in US dollars.
    #[serde(default)]
    pub price_per_hour: Option<f64>,
    /// Efficiencies of the roofline cost model.
    #[serde(default)]
    pub efficiency: Efficiency,
    /// A calibration profile (`calibration/NAME`, without extension; relative to the
    /// scenario file): when set, step times come from its measurements.
    #[serde(default)]
    pub calibration: Option<PathBuf>,
}

fn default_gpu() -> String {
    "h100-sxm".to_string()
}

impl Default for HardwareSpec {
    fn default() -> Self {
        HardwareSpec {
            gpu: default_gpu(),
            memory_gib: None,
            hbm_gbps: None,
            bf16_tflops: None,
            host_link_gbps: None,
            nvlink_gbps: None,
            price_per_hour: None,
            efficiency: Efficiency::default(),
            calibration: None,
        }
    }
}

/// Efficiencies, floors and overlap of the default cost model (`docs/cost-model.md`). The
/// defaults were fitted to Vidur's public H100 and A100 kernel measurements (`kvsim
/// fidelity kernels`) and checked against the H100 serving runs (`kvsim fidelity
/// serving`), which chose the GEMM overlap; none depends on a workload.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Efficiency {
    /// Fraction of peak FLOP/s reached by the linear layers (GEMMs).
    #[serde(default = "eff_gemm_compute")]
    pub gemm_compute: f64,
    /// Fraction of HBM bandwidth reached by the linear layers.
    #[serde(default = "eff_gemm_memory")]
    pub gemm_memory: f64,
    /// How a GEMM's compute time `c` and memory time `m` combine: `(c^q + m^q)^(1/q)`.
    /// Large values give the plain roofline `max(c, m)`; 1 means no overlap at all.
    #[serde(default = "eff_gemm_overlap")]
    pub gemm_overlap: f64,
    /// Fixed GPU time of one GEMM launch, microseconds (a 1-token GEMM is never faster).
    #[serde(default = "eff_gemm_floor_us")]
    pub gemm_floor_us: f64,
    /// Price a dense GEMM's compute as a tiled kernel (output tiles of six shapes, split-K
    /// of 1, 2 or 4, waves of tiles over the SMs; `docs/cost-model.md`) instead of its
    /// FLOPs alone. Grouped (MoE) GEMMs keep the FLOP count.
    #[serde(default = "yes")]
    pub gemm_tiles: bool,
    /// How much a smaller tile loses: its efficiency is `gemm_compute x (intensity /
    /// largest intensity)^gemm_tile_exponent`, intensity `BM BN / (BM + BN)`.
    #[serde(default = "eff_gemm_tile_exponent")]
    pub gemm_tile_exponent: f64,
    /// Fraction of peak FLOP/s reached by prefill attention's full tiles (the chunk
    /// against the keys before it).
    #[serde(default = "eff_attn_compute")]
    pub attention_compute: f64,
    /// Fraction of peak FLOP/s reached by prefill attention's causal tiles (the chunk
    /// against itself, computed in square tiles of `attention_tile` rows).
    #[serde(default = "eff_attn_causal_compute")]
    pub attention_causal_compute: f64,
    /// Rows of the query tile FlashAttention computes the causal part in.
    #[serde(default = "eff_attn_tile")]
    pub attention_tile: u32,
    /// Fraction of HBM bandwidth reached by attention (decode attention is memory bound);
    /// unset: the GPU preset's (0.78 on A100 and L40S, 0.9 on H100, H200 and B200).
    #[serde(default)]
    pub attention_memory: Option<f64>,
    /// Fixed GPU time of one layer's prefill attention kernel, microseconds.
    #[serde(default = "eff_prefill_attn_floor_us")]
    pub prefill_attention_floor_us: f64,
    /// Fixed GPU time of one layer's decode attention kernel, microseconds.
    #[serde(default = "eff_decode_attn_floor_us")]
    pub decode_attention_floor_us: f64,
    /// Model decode attention as FlashAttention 2's split-KV kernel (its split heuristic,
    /// waves of thread blocks, the SM that holds the most work, the combine kernel)
    /// instead of one roofline with a floor; unset: the GPU preset's (on for Ampere and
    /// Ada, where vLLM runs FlashAttention 2). Full-attention, non-MLA layers only.
    #[serde(default)]
    pub decode_splits: Option<bool>,
    /// Split-KV decode: fixed GPU time of one layer's attention kernel, microseconds.
    #[serde(default = "eff_decode_split_floor_us")]
    pub decode_split_floor_us: f64,
    /// Split-KV decode: time each wave of thread blocks after the first adds (two blocks
    /// resident per SM), microseconds.
    #[serde(default = "eff_decode_split_wave_us")]
    pub decode_split_wave_us: f64,
    /// Split-KV decode: the combine kernel that merges the splits' partial outputs,
    /// microseconds (charged when there is more than one split).
    #[serde(default = "eff_decode_split_combine_us")]
    pub decode_split_combine_us: f64,
    /// Split-KV decode: HBM bandwidth one SM's thread blocks reach together, GB/s (in
    /// each round of blocks, the SM holding the most bounds it when HBM is not saturated).
    #[serde(default = "eff_decode_split_sm_gbps")]
    pub decode_split_sm_gbps: f64,
    /// Fraction of HBM bandwidth reached by element-wise kernels (norms, RoPE, activation,
    /// KV-cache write, sampler).
    #[serde(default = "eff_elementwise_memory")]
    pub elementwise_memory: f64,
    /// Fixed GPU time of one element-wise kernel, microseconds.
    #[serde(default = "eff_elementwise_floor_us")]
    pub elementwise_floor_us: f64,
    /// Whether the element-wise kernels are charged at all.
    #[serde(default = "yes")]
    pub elementwise_kernels: bool,
}

fn eff_gemm_compute() -> f64 {
    0.77
}
fn eff_gemm_memory() -> f64 {
    0.94
}
fn eff_gemm_tile_exponent() -> f64 {
    0.08
}
fn eff_gemm_overlap() -> f64 {
    2.0
}
fn eff_gemm_floor_us() -> f64 {
    5.4
}
fn eff_attn_compute() -> f64 {
    0.45
}
fn eff_attn_causal_compute() -> f64 {
    0.19
}
fn eff_attn_tile() -> u32 {
    128
}
fn eff_prefill_attn_floor_us() -> f64 {
    21.0
}
fn eff_decode_attn_floor_us() -> f64 {
    16.0
}
fn eff_decode_split_floor_us() -> f64 {
    8.8
}
fn eff_decode_split_wave_us() -> f64 {
    5.5
}
fn eff_decode_split_combine_us() -> f64 {
    3.0
}
fn eff_decode_split_sm_gbps() -> f64 {
    21.7
}
fn eff_elementwise_memory() -> f64 {
    0.5
}
fn eff_elementwise_floor_us() -> f64 {
    2.0
}

impl Default for Efficiency {
    fn default() -> Self {
        Efficiency {
            gemm_compute: eff_gemm_compute(),
            gemm_memory: eff_gemm_memory(),
            gemm_overlap: eff_gemm_overlap(),
            gemm_floor_us: eff_gemm_floor_us(),
            gemm_tiles: true,
            gemm_tile_exponent: eff_gemm_tile_exponent(),
            attention_compute: eff_attn_compute(),
            attention_causal_compute: eff_attn_causal_compute(),
            attention_tile: eff_attn_tile(),
            attention_memory: None,
            prefill_attention_floor_us: eff_prefill_attn_floor_us(),
            decode_attention_floor_us: eff_decode_attn_floor_us(),
            decode_splits: None,
            decode_split_floor_us: eff_decode_split_floor_us(),
            decode_split_wave_us: eff_decode_split_wave_us(),
            decode_split_combine_us: eff_decode_split_combine_us(),
            decode_split_sm_gbps: eff_decode_split_sm_gbps(),
            elementwise_memory: eff_elementwise_memory(),
            elementwise_floor_us: eff_elementwise_floor_us(),
            elementwise_kernels: true,
        }
    }
}

impl Efficiency {
    /// The plain roofline of kvsim's first round: `max(compute, memory)` per kernel at
    /// the given efficiencies, no floors, no element-wise kernels, causal tiles as
    /// efficient as full ones. Hand-computed tests use it.
    pub fn plain_roofline(gemm: (f64, f64), attention: (f64, f64)) -> Self {
        Efficiency {
            gemm_compute: gemm.0,
            gemm_memory: gemm.1,
            gemm_overlap: f64::INFINITY,
            gemm_floor_us: 0.0,
            gemm_tiles: false,
            gemm_tile_exponent: eff_gemm_tile_exponent(),
            attention_compute: attention.0,
            attention_causal_compute: attention.0,
            attention_tile: 1,
            attention_memory: Some(attention.1),
            prefill_attention_floor_us: 0.0,
            decode_attention_floor_us: 0.0,
            decode_splits: Some(false),
            decode_split_floor_us: eff_decode_split_floor_us(),
            decode_split_wave_us: eff_decode_split_wave_us(),
            decode_split_combine_us: eff_decode_split_combine_us(),
            decode_split_sm_gbps: eff_decode_split_sm_gbps(),
            elementwise_memory: 1.0,
            elementwise_floor_us: 0.0,
            elementwise_kernels: false,
        }
    }
}

/// Scheduler settings (vLLM v1 names where they exist).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct EngineSpec {
    /// The engine modelled: `vllm` (vLLM 0.33.0, the default) or `sglang` (SGLang
    /// 0.5.23). Keys of one engine are refused under the other.
    #[serde(default = "default_engine_kind")]
    pub kind: String,
    /// SGLang `--schedule-policy`: `fcfs` (default), `lpm`, `dfs-weight`, `lof`, `random`.
    #[serde(default)]
    pub schedule_policy: Option<String>,
    /// SGLang `--chunked-prefill-size`: tokens per prefill chunk (page-aligned); -1 or 0
    /// disables chunking; default by GPU memory (8192 on H100 and H200).
    #[serde(default)]
    pub chunked_prefill_size: Option<i64>,
    /// SGLang `--max-running-requests`; default from the KV pool size.
    #[serde(default)]
    pub max_running_requests: Option<u32>,
    /// SGLang `--max-prefill-tokens`: prompt tokens one prefill batch may take (16384).
    #[serde(default)]
    pub max_prefill_tokens: Option<u32>,
    /// SGLang `--schedule-conservativeness`: scales the new-token ratio (1.0).
    #[serde(default)]
    pub schedule_conservativeness: Option<f64>,
    /// SGLang `--disable-overlap-schedule`: schedule synchronously (SGLang overlaps the
    /// CPU work of step n+1 with step n by default).
    #[serde(default)]
    pub disable_overlap_schedule: Option<bool>,
    /// SGLang `--enable-mixed-chunk` (default false; kvsim does not model mixing yet).
    #[serde(default)]
    pub enable_mixed_chunk: Option<bool>,
    /// SGLang sampling parameter `ignore_eos` for every request: admission reserves each
    /// running request's whole remaining output (ratio 1) instead of the new-token ratio.
    #[serde(default)]
    pub ignore_eos: Option<bool>,
    /// SGLang `--context-length`; default: the model's maximum context.
    #[serde(default)]
    pub context_length: Option<u32>,
    /// Token budget per step; default by GPU memory class as vLLM's API server sets it.
    #[serde(default)]
    pub max_num_batched_tokens: Option<u32>,
    /// Maximum running requests; default by GPU memory class as vLLM sets it.
    #[serde(default)]
    pub max_num_seqs: Option<u32>,
    /// Split long prompts across steps.
    #[serde(default = "yes")]
    pub enable_chunked_prefill: bool,
    /// Cap on prompt tokens one request may take in a step (0 = no cap). vLLM lifts it
    /// in a step where at most one request is running or waiting.
    #[serde(default)]
    pub long_prefill_token_threshold: u32,
    /// Floor the cap at `max_num_batched_tokens` divided by the requests running and
    /// waiting (vLLM `long_prefill_token_threshold_adaptive`, default false).
    #[serde(default)]
    pub long_prefill_token_threshold_adaptive: bool,
    /// Schedule step n+1 while step n runs (vLLM 0.33 `async_scheduling`); default: on,
    /// except with pipeline parallelism, where vLLM turns it off.
    #[serde(default)]
    pub async_scheduling: Option<bool>,
    /// Maximum prompt plus output length; default: the model's maximum context.
    #[serde(default)]
    pub max_model_len: Option<u32>,
    /// Admit a waiting request only if blocks for its whole prompt are free
    /// (vLLM's `full_sequence_must_fit` admission gate).
    #[serde(default = "yes")]
    pub full_prompt_admission: bool,
    /// Fraction of blocks kept free when admitting waiting requests (vLLM `watermark`).
    #[serde(default)]
    pub watermark: f64,
    /// CPU time per engine step (scheduling, input preparation, sampling), microseconds.
    #[serde(default = "default_step_overhead")]
    pub step_overhead_us: f64,
    /// Extra CPU time per scheduled request in a step, microseconds.
    #[serde(default = "default_per_seq_overhead")]
    pub per_request_overhead_us: f64,
    /// Time the API server adds to every request, microseconds: HTTP handling,
    /// tokenisation and the hand-off to the engine core on the way in, detokenisation and
    /// streaming on the way out. A request reaches the scheduler this long after it was
    /// sent; its TTFT and end-to-end latency include it. 0 for the engine alone.
    #[serde(default = "default_server_latency")]
    pub server_latency_us: f64,
    /// GPUs each layer is split over (vLLM `tensor_parallel_size`).
    #[serde(default = "one_u32")]
    pub tensor_parallel_size: u32,
    /// How the tensor-parallel all-reduces are priced: `vllm` (vLLM 0.33.0's choice by
    /// message size: FlashInfer, custom, symmetric memory, NCCL) or `ring` (NCCL's ring).
    #[serde(default)]
    pub all_reduce: crate::cost::all_reduce::AllReduce,
    /// Pipeline stages (vLLM `pipeline_parallel_size`); layers are split evenly.
    #[serde(default = "one_u32")]
    pub pipeline_parallel_size: u32,
    /// Micro-batches a step is split into when `pipeline_parallel_size > 1` (default: the
    /// number of stages).
    #[serde(default)]
    pub pipeline_micro_batches: Option<u32>,
    /// Engine cores of one deployment (vLLM `data_parallel_size`): each has its own
    /// scheduler and KV cache on `tensor_parallel_size x pipeline_parallel_size` GPUs, and
    /// the API server balances requests over them. A mixture-of-experts model's MoE layers
    /// span all of them, so its cores step together.
    #[serde(default = "one_u32")]
    pub data_parallel_size: u32,
    /// Split the routed experts whole over all `data_parallel_size x
    /// tensor_parallel_size` GPUs of a deployment instead of slicing each expert over the
    /// tensor-parallel ranks (vLLM `enable_expert_parallel`, default false).
    #[serde(default)]
    pub enable_expert_parallel: bool,
    /// What a preempted request loses: `recompute` (vLLM v1: its blocks are freed and its
    /// tokens computed again) or `swap` (vLLM v0: its blocks are copied to host memory and
    /// back over the host link).
    #[serde(default)]
    pub preemption_mode: PreemptionMode,
    /// Host memory for swapped-out blocks per GPU, GiB (vLLM v0 `swap_space`, default 4);
    /// a preemption that does not fit falls back to recompute.
    #[serde(default = "default_swap_space")]
    pub swap_space_gib: f64,
}

/// How preempted requests are resumed.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq, Default)]
#[serde(rename_all = "snake_case")]
pub enum PreemptionMode {
    /// Free the blocks and compute the tokens again.
    #[default]
    Recompute,
    /// Copy the blocks to host memory and back.
    Swap,
}

fn one_u32() -> u32 {
    1
}
fn default_swap_space() -> f64 {
    4.0
}

fn default_engine_kind() -> String {
    "vllm".to_string()
}
fn yes() -> bool {
    true
}
fn default_server_latency() -> f64 {
    6000.0
}

fn default_step_overhead() -> f64 {
    1500.0
}
fn default_per_seq_overhead() -> f64 {
    5.0
}

impl Default for EngineSpec {
    fn default() -> Self {
        EngineSpec {
            kind: default_engine_kind(),
            schedule_policy: None,
            chunked_prefill_size: None,
            max_running_requests: None,
            max_prefill_tokens: None,
            schedule_conservativeness: None,
            disable_overlap_schedule: None,
            enable_mixed_chunk: None,
            ignore_eos: None,
            context_length: None,
            max_num_batched_tokens: None,
            max_num_seqs: None,
            enable_chunked_prefill: true,
            long_prefill_token_threshold: 0,
            long_prefill_token_threshold_adaptive: false,
            async_scheduling: None,
            max_model_len: None,
            full_prompt_admission: true,
            watermark: 0.0,
            step_overhead_us: default_step_overhead(),
            server_latency_us: default_server_latency(),
            per_request_overhead_us: default_per_seq_overhead(),
            tensor_parallel_size: 1,
            all_reduce: Default::default(),
            pipeline_parallel_size: 1,
            pipeline_micro_batches: None,
            data_parallel_size: 1,
            enable_expert_parallel: false,
            preemption_mode: PreemptionMode::Recompute,
            swap_space_gib: default_swap_space(),
        }
    }
}

/// KV cache settings.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct KvCacheSpec {
    /// Tokens per KV block.
    #[serde(default = "default_block_size")]
    pub block_size: u32,
    /// Automatic prefix caching.
    #[serde(default = "yes")]
    pub enable_prefix_caching: bool,
    /// Data type of the KV cache, as vLLM's `--kv-cache-dtype`: `auto` (the weights'),
    /// `float16`, `bfloat16`, `fp8`, `fp8_e4m3` or `fp8_e5m2`.
    #[serde(default = "default_cache_dtype")]
    pub cache_dtype: String,
    /// Fraction of device memory vLLM may use.
    #[serde(default = "default_util")]
    pub gpu_memory_utilization: f64,
    /// Explicit block count (copy it from vLLM's log); overrides the memory computation.
    #[serde(default)]
    pub num_gpu_blocks: Option<u64>,
    /// Override: activation peak in GiB used in the block computation.
    #[serde(default)]
    pub activation_gib: Option<f64>,
    /// Memory outside PyTorch's allocator (CUDA context, NCCL, CUDA graphs), GiB.
    #[serde(default = "default_non_torch")]
    pub non_torch_gib: f64,
    /// Freed blocks without a hash go to the head of the free queue (reused first).
    #[serde(default = "yes")]
    pub free_unhashed_first: bool,
    /// vLLM's `--disable-hybrid-kv-cache-manager`: allocate sliding-window and chunked-local
    /// layers as full-attention ones (one block table, nothing freed outside the window).
    /// Unset: vLLM 0.33's default, on for a model with chunked local attention (unless
    /// `VLLM_ALLOW_CHUNKED_LOCAL_ATTN_WITH_HYBRID_KV_CACHE=1`: set `false`), off otherwise.
    #[serde(default)]
    pub disable_hybrid_kv_cache_manager: Option<bool>,
    /// Which evictable cached block to drop: `vllm` (vLLM's free queue, LRU by release
    /// time) or a policy of the paging lab (`docs/policies.md`).
    #[serde(default = "default_eviction")]
    pub eviction: String,
    /// Predictions for the learning-augmented eviction policies.
    #[serde(default)]
    pub predictor: Option<PredictorSpec>,
    /// A host-memory tier for evicted prompt blocks (vLLM's native CPU offloading).
    #[serde(default)]
    pub cpu_offload: Option<CpuOffloadSpec>,
    /// Token-level compression: eviction, selection, quantization or offload
    /// (`docs/policies.md`, "Token-level policies").
    #[serde(default)]
    pub token_policy: Option<TokenPolicySpec>,
    /// SGLang `--page-size`: tokens per KV page of the radix cache (1).
    #[serde(default)]
    pub page_size: Option<u32>,
    /// SGLang `--max-total-tokens`: caps the token slots of the KV pool.
    #[serde(default)]
    pub max_total_tokens: Option<u64>,
    /// SGLang `--mem-fraction-static`: the share of device memory for weights and the KV
    /// pool; default as SGLang derives it from the GPU memory (0.830 on H100).
    #[serde(default)]
    pub mem_fraction_static: Option<f64>,
}

/// `kv_cache.token_policy`: which token-level policy runs and its budget. Fields a policy
/// does not use are ignored; unset ones take the paper's default.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct TokenPolicySpec {
    /// `none`; `streaming_llm`, `h2o`, `snapkv`, `pyramidkv`, `ada_snapkv`, `tova`
    /// (eviction); `quest`, `tokenselect` (selection); `kivi` (quantization); `shadowkv`
    /// (offload).
    pub kind: String,
    /// Share of the prompt kept (eviction) or of the context read (selection, offload).
    #[serde(default)]
    pub keep_ratio: Option<f64>,
    /// Fixed token budget instead of a ratio.
    #[serde(default)]
    pub budget_tokens: Option<u32>,
    /// StreamingLLM: attention-sink tokens kept at the start (paper: 4).
    #[serde(default)]
    pub sinks: Option<u32>,
    /// StreamingLLM: recent tokens kept; the budget is `sinks + window`.
    #[serde(default)]
    pub window: Option<u32>,
    /// Model an implementation that masks attention instead of dropping tokens (no memory
    /// or bandwidth saved), as H2O's and Keyformer's public code does.
    #[serde(default)]
    pub masked: bool,
    /// Bits per element for `kivi` (KIVI: 2 or 4; default 2).
    #[serde(default)]
    pub bits: Option<u32>,
    /// Elements per quantization group, each with an fp16 scale and zero point (KIVI: 32;
    /// 0: no overhead).
    #[serde(default)]
    pub group_size: Option<u32>,
    /// Recent tokens kept in full precision (KIVI: 128).
    #[serde(default)]
    pub residual_tokens: Option<u32>,
    /// Tokens per metadata page (Quest: 16) or landmark chunk (ShadowKV: 8).
    #[serde(default)]
    pub page_size: Option<u32>,
    /// Leading layers left dense (Quest: 2).
    #[serde(default)]
    pub dense_layers: Option<u32>,
    /// Rank of ShadowKV's low-rank keys (ShadowKV: 160).
    #[serde(default)]
    pub key_rank: Option<u32>,
}

/// The CPU-memory KV tier of one replica.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct CpuOffloadSpec {
    /// Host memory for KV blocks per replica, GiB (vLLM `kv_offloading_size`).
    pub gib: f64,
    /// Which block the CPU tier drops when full: `lru` or `arc` (vLLM's two offloading
    /// managers) or any policy of the paging lab that needs no predictions.
    #[serde(default = "default_cpu_policy")]
    pub policy: String,
}

fn default_cpu_policy() -> String {
    "lru".to_string()
}

fn default_eviction() -> String {
    "vllm".to_string()
}

/// A predictor of when a cached block's content is requested next.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct PredictorSpec {
    /// `oracle`: the true next request (known offline from the trace) plus noise;
    /// `learned`: an online regression trained during the replay (sees only the past).
    pub kind: PredictorKind,
    /// Lognormal noise parameter of the oracle (0: exact).
    #[serde(default)]
    pub sigma: f64,
}

/// Kinds of block predictor.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum PredictorKind {
    /// Next request index from the trace plus lognormal noise.
    Oracle,
    /// Online reuse-distance regression (`src/engine/learned.rs`).
    Learned,
}

fn default_block_size() -> u32 {
    16
}
fn default_cache_dtype() -> String {
    "auto".to_string()
}
fn default_util() -> f64 {
    0.92
}
fn default_non_torch() -> f64 {
    0.5
}

impl Default for KvCacheSpec {
    fn default() -> Self {
        KvCacheSpec {
            block_size: default_block_size(),
            cache_dtype: default_cache_dtype(),
            enable_prefix_caching: true,
            gpu_memory_utilization: default_util(),
            num_gpu_blocks: None,
            activation_gib: None,
            non_torch_gib: default_non_torch(),
            free_unhashed_first: true,
            disable_hybrid_kv_cache_manager: None,
            eviction: default_eviction(),
            predictor: None,
            cpu_offload: None,
            token_policy: None,
            page_size: None,
            max_total_tokens: None,
            mem_fraction_static: None,
        }
    }
}

/// Replicas, how requests are routed to them, and the machines they run on.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ClusterSpec {
    /// Engine replicas (each with `tensor_parallel_size x pipeline_parallel_size` GPUs).
    /// With `disaggregation`, the sum of its two pools replaces this.
    #[serde(default = "one_u32")]
    pub replicas: u32,
    /// How an arriving request picks a replica.
    #[serde(default)]
    pub router: RouterSpec,
    /// GPUs per node (replicas are packed onto nodes in order).
    #[serde(default = "default_gpus_per_node")]
    pub gpus_per_node: u32,
    /// Links between GPUs, host and nodes.
    #[serde(default)]
    pub links: LinkSpec,
    /// Separate prefill and decode pools.
    #[serde(default)]
    pub disaggregation: Option<DisaggregationSpec>,
}

fn default_gpus_per_node() -> u32 {
    8
}

impl Default for ClusterSpec {
    fn default() -> Self {
        ClusterSpec {
            replicas: 1,
            router: RouterSpec::default(),
            gpus_per_node: default_gpus_per_node(),
            links: LinkSpec::default(),
            disaggregation: None,
        }
    }
}

/// The request router and its parameters.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct RouterSpec {
    /// `round_robin`, `least_outstanding_tokens`, `least_kv_usage` or `prefix_affinity`.
    #[serde(default = "default_router")]
    pub kind: String,
    /// Prefix affinity: fall back to the least loaded replica when the most loaded one has
    /// more than this many outstanding requests above the least loaded one ...
    #[serde(default = "default_balance_abs")]
    pub balance_abs_threshold: u32,
    /// ... and more than this factor times its outstanding requests (SGLang router defaults).
    #[serde(default = "default_balance_rel")]
    pub balance_rel_threshold: f64,
    /// Prefix affinity: route by cache only when the best replica holds at least this
    /// fraction of the prompt; otherwise to the least loaded.
    #[serde(default = "default_cache_threshold")]
    pub cache_threshold: f64,
}

fn default_router() -> String {
    "round_robin".to_string()
}
fn default_balance_abs() -> u32 {
    64
}
fn default_balance_rel() -> f64 {
    1.5
}
fn default_cache_threshold() -> f64 {
    0.3
}

impl Default for RouterSpec {
    fn default() -> Self {
        RouterSpec {
            kind: default_router(),
            balance_abs_threshold: default_balance_abs(),
            balance_rel_threshold: default_balance_rel(),
            cache_threshold: default_cache_threshold(),
        }
    }
}

/// Bandwidths (GB/s, one direction) and latencies (microseconds) of the links that are not
/// properties of the GPU preset.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct LinkSpec {
    /// Latency of one NVLink hop through the NVSwitch.
    #[serde(default = "default_nvlink_latency")]
    pub nvlink_latency_us: f64,
    /// Latency of a PCIe transfer between GPU and host memory.
    #[serde(default = "default_pcie_latency")]
    pub pcie_latency_us: f64,
    /// Network bandwidth of each node's NIC (400 Gb/s = 50 GB/s).
    #[serde(default = "default_network_gbps")]
    pub network_gbps: f64,
    /// Latency across the network (NIC to NIC).
    #[serde(default = "default_network_latency")]
    pub network_latency_us: f64,
}

fn default_nvlink_latency() -> f64 {
    2.0
}
fn default_pcie_latency() -> f64 {
    5.0
}
fn default_network_gbps() -> f64 {
    50.0
}
fn default_network_latency() -> f64 {
    10.0
}

impl Default for LinkSpec {
    fn default() -> Self {
        LinkSpec {
            nvlink_latency_us: default_nvlink_latency(),
            pcie_latency_us: default_pcie_latency(),
            network_gbps: default_network_gbps(),
            network_latency_us: default_network_latency(),
        }
    }
}

/// Prefill/decode disaggregation: prompts run on the prefill pool, their KV moves to a
/// decode replica, which generates the output.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct DisaggregationSpec {
    /// Replicas that run prompts.
    pub prefill_replicas: u32,
    /// Replicas that generate output.
    pub decode_replicas: u32,
}

/// Service-level objectives. Per request (`ttft_ms`, `tpot_ms`, `e2e_ms`): a request meets
/// the SLO when every set bound holds (goodput, attainment). On the run's distributions
/// (`METRIC_STAT_ms`, e.g. `ttft_p95_ms`: [`crate::slo`]): checked against the summary.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct SloSpec {
    /// Bound on time to first token, milliseconds.
    pub ttft_ms: Option<f64>,
    /// Bound on mean time per output token after the first, milliseconds.
    pub tpot_ms: Option<f64>,
    /// Bound on end-to-end latency, milliseconds.
    pub e2e_ms: Option<f64>,
    /// Bounds on the run's latency distributions, in key order.
    pub bounds: Vec<crate::slo::SloBound>,
}

impl Serialize for SloSpec {
    fn serialize<S: serde::Serializer>(&self, ser: S) -> std::result::Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let mut m = ser.serialize_map(None)?;
        for (k, v) in [
            ("ttft_ms", self.ttft_ms),
            ("tpot_ms", self.tpot_ms),
            ("e2e_ms", self.e2e_ms),
        ] {
            if let Some(v) = v {
                m.serialize_entry(k, &v)?;
            }
        }
        for b in &self.bounds {
            m.serialize_entry(&b.name(), &b.limit_ms)?;
        }
        m.end()
    }
}

impl<'de> Deserialize<'de> for SloSpec {
    fn deserialize<D: serde::Deserializer<'de>>(de: D) -> std::result::Result<Self, D::Error> {
        let map = std::collections::BTreeMap::<String, f64>::deserialize(de)?;
        let mut slo = SloSpec::default();
        for (k, v) in map {
            match k.as_str() {
                "ttft_ms" => slo.ttft_ms = Some(v),
                "tpot_ms" => slo.tpot_ms = Some(v),
                "e2e_ms" => slo.e2e_ms = Some(v),
                _ => slo
                    .bounds
                    .push(crate::slo::SloBound::new(&k, v).map_err(|m| {
                        serde::de::Error::custom(format!(
                            "unknown SLO {m}; per-request bounds are ttft_ms, tpot_ms and e2e_ms"
                        ))
                    })?),
            }
        }
        Ok(slo)
    }
}

/// The percentiles a run reports by default: 50, 90 and 99.
pub fn default_percentiles() -> Vec<f64> {
    vec![50.0, 90.0, 99.0]
}

/// What to write.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct OutputSpec {
    /// Output directory, relative to the current directory; default `out/<name>`.
    #[serde(default)]
    pub dir: Option<PathBuf>,
    /// Percentiles (in percent, 0 < p < 100) of every latency shown in the table and
    /// written to `summary.json` (which always has p50, p90 and p99 too); `--percentiles`.
    #[serde(default = "default_percentiles")]
    pub percentiles: Vec<f64>,
    /// Write `requests.csv`, one row per request.
    #[serde(default = "yes")]
    pub per_request: bool,
    /// Write `steps.csv`, one row per engine step.
    #[serde(default = "yes")]
    pub per_step: bool,
    /// Write `trace.json`, the run as a Chrome / Perfetto trace (off by default: it can
    /// be large).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub trace: bool,
    /// Write `bench_result.json`, the result as `vllm bench serve --save-result
    /// --save-detailed` writes it ([`crate::bench_result`]; keeps every token's gap).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub bench_json: bool,
}

impl Default for OutputSpec {
    fn default() -> Self {
        OutputSpec {
            dir: None,
            percentiles: default_percentiles(),
            per_request: true,
            per_step: true,
            trace: false,
            bench_json: false,
        }
    }
}
