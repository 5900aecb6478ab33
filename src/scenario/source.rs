//! The `workload.source` section as written in YAML (plain structs, so that every error
//! keeps its line and column), and its resolution into a typed [`Source`].

use super::bench::{SglangGspSection, VllmPrefixRepetitionSection, VllmRandomSection};
use crate::workload::shared_prefix::{SharedPrefixSpec, Stage};
use crate::workload::synth::{Arrival, Lengths, SynthSpec};
use crate::workload::tokenizer::TokenizerKind;
use crate::workload::Source;
use serde::{Deserialize, Serialize};
use std::path::PathBuf;

/// Where requests come from.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct SourceSpec {
    /// `mooncake`, `azure`, `ragpulse`, `native`, `vllm_bench`, `sharegpt`, `burstgpt`,
    /// `bailian`, `kv_cache_tester`, `synthetic`, `shared_prefix`, `sglang_gsp`,
    /// `vllm_random` or `vllm_prefix_repetition`.
    pub kind: SourceKind,
    /// Trace file, relative to the scenario file (trace kinds).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<PathBuf>,
    /// Tokens per `hash_ids` block (mooncake; default 512).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub block_tokens: Option<u32>,
    /// Requests to generate (synthetic).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub requests: Option<u64>,
    /// Arrival process (synthetic; sharegpt and kv_cache_tester: of conversation starts).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub arrival: Option<ArrivalSpec>,
    /// Prompt lengths (synthetic; with sessions, the new user message of each turn).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub input: Option<LengthSpec>,
    /// Output lengths (synthetic).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub output: Option<LengthSpec>,
    /// Shared system prompts (synthetic).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub system_prompts: Option<SystemPromptSpec>,
    /// Multi-turn sessions (synthetic).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sessions: Option<SessionSpec>,
    /// The prompts of inference-perf's `shared_prefix` data (shared_prefix).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shared_prefix: Option<SharedPrefixData>,
    /// Constant-rate load stages, in order (shared_prefix).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stages: Option<Vec<StageSpec>>,
    /// Seconds from a stage's last arrival to the next stage (shared_prefix; default 2: the
    /// tool's 1 s interval and 1 s start offset, the previous stage's drain not counted).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stage_gap_s: Option<f64>,
    /// SGLang bench's `generated-shared-prefix` dataset (sglang_gsp).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sglang_gsp: Option<SglangGspSection>,
    /// vLLM bench's `random` dataset (vllm_random).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vllm_random: Option<VllmRandomSection>,
    /// vLLM bench's `prefix_repetition` dataset (vllm_prefix_repetition).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vllm_prefix_repetition: Option<VllmPrefixRepetitionSection>,
    /// Mean think time between a conversation's turns, seconds (sharegpt).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub think_time_s: Option<f64>,
    /// Vocabulary that counts message tokens (sharegpt; default `cl100k_base`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tokenizer: Option<TokenizerKind>,
    /// A Hugging Face `tokenizer.json` that counts message tokens instead, relative to the
    /// scenario file (sharegpt).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tokenizer_file: Option<PathBuf>,
    /// Chat-template tokens added per message (sharegpt; default 3).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message_overhead_tokens: Option<u32>,
    /// Chats whose session the reader remembers (bailian; default 1048576).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_tracked_chats: Option<u64>,
}

/// inference-perf's `data.shared_prefix` section, with the two token counts the server sees.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct SharedPrefixData {
    /// System prompts (inference-perf `num_groups`).
    pub num_groups: u32,
    /// Questions per system prompt (`num_prompts_per_group`).
    pub num_prompts_per_group: u32,
    /// Random token ids per system prompt (`system_prompt_len`).
    pub system_prompt_len: u32,
    /// Random token ids per question (`question_len`).
    pub question_len: u32,
    /// Output tokens, sent as `max_tokens` with `ignore_eos` (`output_len`).
    pub output_len: u32,
    /// Tokens the server counts per random token id sent (decoded random ids re-tokenize
    /// into more tokens; default 1.04, measured with the Llama-2 tokenizer).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retokenize_factor: Option<f64>,
    /// Tokens the server's tokenizer adds in front (default 1: BOS).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bos_tokens: Option<u32>,
}

/// One constant-rate load stage (inference-perf `load.stages`).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct StageSpec {
    /// Requests per second.
    pub rate: f64,
    /// Seconds.
    pub duration_s: f64,
}

/// Kinds of request source.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum SourceKind {
    /// Mooncake JSON lines.
    Mooncake,
    /// Azure LLM inference CSV.
    Azure,
    /// RAGPulse JSON lines.
    Ragpulse,
    /// Native kvsim CSV.
    Native,
    /// `vllm bench serve --save-result --save-detailed` JSON.
    VllmBench,
    /// Generated from the seed.
    Synthetic,
    /// inference-perf's `shared_prefix` workload, generated from the seed.
    SharedPrefix,
    /// SGLang bench's `generated-shared-prefix` dataset, generated from the seed.
    SglangGsp,
    /// vLLM bench's `random` dataset, generated from the seed.
    VllmRandom,
    /// vLLM bench's `prefix_repetition` dataset, generated from the seed.
    VllmPrefixRepetition,
    /// ShareGPT conversations (JSON array or lines), tokenized.
    Sharegpt,
    /// BurstGPT CSV.
    Burstgpt,
    /// Alibaba Bailian (Qwen) usage-trace JSON lines.
    #[serde(alias = "qwen")]
    Bailian,
    /// kv-cache-tester agentic coding traces.
    KvCacheTester,
}

impl SourceKind {
    /// The kind as written in YAML.
    pub fn name(self) -> &'static str {
        match self {
            SourceKind::Mooncake => "mooncake",
            SourceKind::Azure => "azure",
            SourceKind::Ragpulse => "ragpulse",
            SourceKind::Native => "native",
            SourceKind::VllmBench => "vllm_bench",
            SourceKind::Synthetic => "synthetic",
            SourceKind::SharedPrefix => "shared_prefix",
            SourceKind::SglangGsp => "sglang_gsp",
            SourceKind::VllmRandom => "vllm_random",
            SourceKind::VllmPrefixRepetition => "vllm_prefix_repetition",
            SourceKind::Sharegpt => "sharegpt",
            SourceKind::Burstgpt => "burstgpt",
            SourceKind::Bailian => "bailian",
            SourceKind::KvCacheTester => "kv_cache_tester",
        }
    }
}

/// An arrival process.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ArrivalSpec {
    /// `poisson`, `gamma` or `constant`.
    pub kind: ArrivalKind,
    /// Arrivals per second.
    pub rate: f64,
    /// Coefficient of variation of the gaps (gamma only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cv: Option<f64>,
}

/// Kinds of arrival process.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum ArrivalKind {
    /// Exponential gaps.
    Poisson,
    /// Gamma gaps with a coefficient of variation.
    Gamma,
    /// Equal gaps.
    Constant,
}

/// A length distribution.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct LengthSpec {
    /// `constant`, `uniform`, `lognormal` or `empirical`.
    pub kind: LengthKind,
    /// The length (constant).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<u32>,
    /// Smallest length (uniform).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min: Option<u32>,
    /// Largest length (uniform), or cap (lognormal; default 131072).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max: Option<u32>,
    /// Mean length (lognormal).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mean: Option<f64>,
    /// Standard deviation of the underlying normal (lognormal).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sigma: Option<f64>,
    /// The lengths (empirical).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub values: Option<Vec<u32>>,
    /// Their weights (empirical; uniform if omitted).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub weights: Option<Vec<f64>>,
}

/// Kinds of length distribution.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum LengthKind {
    /// Always the same.
    Constant,
    /// Uniform on an interval.
    Uniform,
    /// Lognormal by mean and sigma.
    Lognormal,
    /// Drawn from a list.
    Empirical,
}

/// Shared system prompts.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct SystemPromptSpec {
    /// Distinct system prompts; each request (session) picks one uniformly.
    pub count: u32,
    /// Tokens in each.
    pub tokens: u32,
}

/// Multi-turn sessions.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct SessionSpec {
    /// Turns per session.
    pub turns: LengthSpec,
    /// Mean think time between turns, seconds (exponential).
    pub think_time_s: f64,
}

/// A field path and what is wrong with it.
pub type FieldError = (String, String);

pub(super) fn err<T>(field: &str, msg: impl Into<String>) -> Result<T, FieldError> {
    Err((field.to_string(), msg.into()))
}

pub(super) fn required<T: Clone>(field: &str, v: &Option<T>, kind: &str) -> Result<T, FieldError> {
    v.clone()
        .ok_or_else(|| (field.to_string(), format!("required for kind {kind}")))
}

pub(super) fn forbid<T>(field: &str, v: &Option<T>, kind: &str) -> Result<(), FieldError> {
    match v {
        Some(_) => err(field, format!("does not apply to kind {kind}")),
        None => Ok(()),
    }
}

/// The fields of a `synthetic` source.
const SYNTH_FIELDS: [&str; 6] = [
    "requests",
    "arrival",
    "input",
    "output",
    "system_prompts",
    "sessions",
];

/// The fields of a `shared_prefix` source.
const PREFIX_FIELDS: [&str; 3] = ["shared_prefix", "stages", "stage_gap_s"];

impl SourceSpec {
    /// A trace source of the given kind.
    pub fn trace(kind: SourceKind, path: PathBuf) -> Self {
        SourceSpec {
            kind,
            path: Some(path),
            block_tokens: None,
            requests: None,
            arrival: None,
            input: None,
            output: None,
            system_prompts: None,
            sessions: None,
            shared_prefix: None,
            stages: None,
            stage_gap_s: None,
            sglang_gsp: None,
            vllm_random: None,
            vllm_prefix_repetition: None,
            think_time_s: None,
            tokenizer: None,
            tokenizer_file: None,
            message_overhead_tokens: None,
            max_tracked_chats: None,
        }
    }

    /// Which optional fields are set, by name.
    pub(super) fn set_fields(&self) -> [(&'static str, bool); 16] {
        [
            ("path", self.path.is_some()),
            ("block_tokens", self.block_tokens.is_some()),
            ("requests", self.requests.is_some()),
            ("arrival", self.arrival.is_some()),
            ("input", self.input.is_some()),
            ("output", self.output.is_some()),
            ("system_prompts", self.system_prompts.is_some()),
            ("sessions", self.sessions.is_some()),
            ("shared_prefix", self.shared_prefix.is_some()),
            ("stages", self.stages.is_some()),
            ("stage_gap_s", self.stage_gap_s.is_some()),
            ("think_time_s", self.think_time_s.is_some()),
            ("tokenizer", self.tokenizer.is_some()),
            ("tokenizer_file", self.tokenizer_file.is_some()),
            (
                "message_overhead_tokens",
                self.message_overhead_tokens.is_some(),
            ),
            ("max_tracked_chats", self.max_tracked_chats.is_some()),
        ]
    }

    /// Refuse the first of `fields` that is set: it does not apply to this kind.
    pub(super) fn refuse(&self, fields: &[&str]) -> Result<(), FieldError> {
        self.refuse_where(|f| fields.contains(&f))
    }

    /// Refuse the first set field not in `allowed`.
    pub(super) fn only(&self, allowed: &[&str]) -> Result<(), FieldError> {
        self.refuse_where(|f| !allowed.contains(&f))
    }

    /// Refuse the first set field that `applies_not` names.
    fn refuse_where(&self, applies_not: impl Fn(&str) -> bool) -> Result<(), FieldError> {
        match self
            .set_fields()
            .iter()
            .find(|(f, set)| *set && applies_not(f))
        {
            Some((f, _)) => err(f, format!("does not apply to kind {}", self.kind.name())),
            None => Ok(()),
        }
    }

    /// Check the section and build the typed source. Field paths are relative to
    /// `workload.source`.
    pub fn resolve(&self) -> Result<Source, FieldError> {
        if let Some(source) = self.resolve_reader()? {
            return Ok(source);
        }
        let kind = self.kind.name().to_string();
        if let Some(source) = self.resolve_bench() {
            return source;
        }
        if self.kind == SourceKind::SharedPrefix {
            return self.resolve_shared_prefix();
        }
        self.refuse(&PREFIX_FIELDS)?;
        if self.kind != SourceKind::Synthetic {
            self.refuse(&SYNTH_FIELDS)?;
            if self.kind != SourceKind::Mooncake {
                forbid("block_tokens", &self.block_tokens, &kind)?;
            }
            let path = required("path", &self.path, &kind)?;
            return Ok(match self.kind {
                SourceKind::Mooncake => {
                    let block_tokens = self.block_tokens.unwrap_or(512);
                    if block_tokens == 0 {
                        return err("block_tokens", "must be at least 1");
                    }
                    Source::Mooncake { path, block_tokens }
                }
                SourceKind::Azure => Source::Azure { path },
                SourceKind::Ragpulse => Source::Ragpulse { path },
                SourceKind::Native => Source::Native { path },
                SourceKind::VllmBench => Source::VllmBench { path },
                SourceKind::Synthetic
                | SourceKind::SharedPrefix
                | SourceKind::SglangGsp
                | SourceKind::VllmRandom
                | SourceKind::VllmPrefixRepetition
                | SourceKind::Sharegpt
                | SourceKind::Burstgpt
                | SourceKind::Bailian
                | SourceKind::KvCacheTester => unreachable!("handled apart"),
            });
        }
        self.resolve_synthetic(&kind)
    }
}

impl SourceSpec {
    /// Check a `synthetic` source.
    fn resolve_synthetic(&self, kind: &str) -> Result<Source, FieldError> {
        forbid("path", &self.path, kind)?;
        forbid("block_tokens", &self.block_tokens, kind)?;
        let requests = required("requests", &self.requests, kind)?;
        let arrival = resolve_arrival(&required("arrival", &self.arrival, kind)?)?;
        let input = required("input", &self.input, kind)?.resolve("input")?;
        let output = required("output", &self.output, kind)?.resolve("output")?;
        let system_prompts = match &self.system_prompts {
            Some(p) if p.count == 0 => return err("system_prompts.count", "must be at least 1"),
            Some(p) if p.tokens == 0 => return err("system_prompts.tokens", "must be at least 1"),
            Some(p) => Some((p.count, p.tokens)),
            None => None,
        };
        let sessions = match &self.sessions {
            Some(s) => {
                if !(s.think_time_s.is_finite() && s.think_time_s >= 0.0) {
                    return err(
                        "sessions.think_time_s",
                        format!("must be zero or positive (got {})", s.think_time_s),
                    );
                }
                Some((s.turns.resolve("sessions.turns")?, s.think_time_s))
            }
            None => None,
        };
        Ok(Source::Synthetic(SynthSpec {
            requests,
            arrival,
            input,
            output,
            system_prompts,
            sessions,
        }))
    }

    /// Check a `shared_prefix` source.
    fn resolve_shared_prefix(&self) -> Result<Source, FieldError> {
        let kind = "shared_prefix";
        self.refuse(&SYNTH_FIELDS)?;
        forbid("path", &self.path, kind)?;
        forbid("block_tokens", &self.block_tokens, kind)?;
        let d = required("shared_prefix", &self.shared_prefix, kind)?;
        for (f, v) in [
            ("num_groups", d.num_groups),
            ("num_prompts_per_group", d.num_prompts_per_group),
            ("system_prompt_len", d.system_prompt_len),
            ("question_len", d.question_len),
            ("output_len", d.output_len),
        ] {
            if v == 0 {
                return err(&format!("shared_prefix.{f}"), "must be at least 1");
            }
        }
        let factor = d.retokenize_factor.unwrap_or(1.04);
        if !(factor.is_finite() && factor > 0.0) {
            return err(
                "shared_prefix.retokenize_factor",
                format!("must be a positive number (got {factor})"),
            );
        }
        let stages = required("stages", &self.stages, kind)?;
        if stages.is_empty() {
            return err("stages", "needs at least one stage");
        }
        let mut out = Vec::with_capacity(stages.len());
        for (i, st) in stages.iter().enumerate() {
            if !(st.rate.is_finite() && st.rate > 0.0) {
                return err(
                    &format!("stages[{i}].rate"),
                    format!("must be a positive number (got {})", st.rate),
                );
            }
            if !(st.duration_s.is_finite() && st.duration_s > 0.0) {
                return err(
                    &format!("stages[{i}].duration_s"),
                    format!("must be a positive number (got {})", st.duration_s),
                );
            }
            out.push(Stage {
                rate: st.rate,
                duration_s: st.duration_s,
            });
        }
        let stage_gap_s = self.stage_gap_s.unwrap_or(2.0);
        if !(stage_gap_s.is_finite() && stage_gap_s >= 0.0) {
            return err(
                "stage_gap_s",
                format!("must be zero or positive (got {stage_gap_s})"),
            );
        }
        Ok(Source::SharedPrefix(SharedPrefixSpec {
            num_groups: d.num_groups,
            num_prompts_per_group: d.num_prompts_per_group,
            system_prompt_len: d.system_prompt_len,
            question_len: d.question_len,
            output_len: d.output_len,
            retokenize_factor: factor,
            bos_tokens: d.bos_tokens.unwrap_or(1),
            stages: out,
            stage_gap_s,
        }))
    }
}

impl SourceSpec {
    /// Check a generated benchmark source (`sglang_gsp`, `vllm_random`,
    /// `vllm_prefix_repetition`); `None` when the kind is another and none of their sections
    /// is set.
    fn resolve_bench(&self) -> Option<Result<Source, FieldError>> {
        let sections = [
            (SourceKind::SglangGsp, self.sglang_gsp.is_some()),
            (SourceKind::VllmRandom, self.vllm_random.is_some()),
            (
                SourceKind::VllmPrefixRepetition,
                self.vllm_prefix_repetition.is_some(),
            ),
        ];
        let kind = self.kind.name();
        if let Some((k, _)) = sections.iter().find(|(k, set)| *set && *k != self.kind) {
            return Some(err(k.name(), format!("does not apply to kind {kind}")));
        }
        if !sections.iter().any(|(k, _)| *k == self.kind) {
            return None;
        }
        if let Err(e) = self
            .refuse(&SYNTH_FIELDS)
            .and_then(|()| self.refuse(&PREFIX_FIELDS))
        {
            return Some(Err(e));
        }
        Some(self.resolve_bench_section(kind))
    }

    fn resolve_bench_section(&self, kind: &str) -> Result<Source, FieldError> {
        forbid("path", &self.path, kind)?;
        forbid("block_tokens", &self.block_tokens, kind)?;
        Ok(match self.kind {
            SourceKind::SglangGsp => {
                Source::SglangGsp(required(kind, &self.sglang_gsp, kind)?.resolve()?)
            }
            SourceKind::VllmRandom => {
                Source::VllmRandom(required(kind, &self.vllm_random, kind)?.resolve()?)
            }
            // resolve_bench calls this for the three kinds only: vllm_prefix_repetition.
            _ => Source::VllmPrefixRepetition(
                required(kind, &self.vllm_prefix_repetition, kind)?.resolve()?,
            ),
        })
    }
}

/// Check an arrival process (at `workload.source.arrival`).
pub(super) fn resolve_arrival(a: &ArrivalSpec) -> Result<Arrival, FieldError> {
    if !(a.rate.is_finite() && a.rate > 0.0) {
        return err(
            "arrival.rate",
            format!("must be a positive number (got {})", a.rate),
        );
    }
    Ok(match a.kind {
        ArrivalKind::Poisson => {
            forbid("arrival.cv", &a.cv, "poisson")?;
            Arrival::Poisson { rate: a.rate }
        }
        ArrivalKind::Constant => {
            forbid("arrival.cv", &a.cv, "constant")?;
            Arrival::Constant { rate: a.rate }
        }
        ArrivalKind::Gamma => {
            let cv = required("arrival.cv", &a.cv, "gamma")?;
            if !(cv.is_finite() && cv > 0.0) {
                return err(
                    "arrival.cv",
                    format!("must be a positive number (got {cv})"),
                );
            }
            Arrival::Gamma { rate: a.rate, cv }
        }
    })
}

impl LengthSpec {
    fn resolve(&self, at: &str) -> Result<Lengths, FieldError> {
        let f = |name: &str| format!("{at}.{name}");
        let kind = format!("{:?}", self.kind).to_lowercase();
        let allowed: &[&str] = match self.kind {
            LengthKind::Constant => &["value"],
            LengthKind::Uniform => &["min", "max"],
            LengthKind::Lognormal => &["mean", "sigma", "max"],
            LengthKind::Empirical => &["values", "weights"],
        };
        let present = [
            ("value", self.value.is_some()),
            ("min", self.min.is_some()),
            ("max", self.max.is_some()),
            ("mean", self.mean.is_some()),
            ("sigma", self.sigma.is_some()),
            ("values", self.values.is_some()),
            ("weights", self.weights.is_some()),
        ];
        if let Some((name, _)) = present.iter().find(|(n, set)| *set && !allowed.contains(n)) {
            return err(&f(name), format!("does not apply to kind {kind}"));
        }
        Ok(match self.kind {
            LengthKind::Constant => {
                let value = required(&f("value"), &self.value, &kind)?;
                if value == 0 {
                    return err(&f("value"), "must be at least 1");
                }
                Lengths::Constant { value }
            }
            LengthKind::Uniform => {
                let min = required(&f("min"), &self.min, &kind)?;
                let max = required(&f("max"), &self.max, &kind)?;
                if min == 0 || min > max {
                    return err(
                        &f("min"),
                        format!("need 1 <= min <= max (got {min}, {max})"),
                    );
                }
                Lengths::Uniform { min, max }
            }
            LengthKind::Lognormal => {
                let mean = required(&f("mean"), &self.mean, &kind)?;
                let sigma = required(&f("sigma"), &self.sigma, &kind)?;
                let max = self.max.unwrap_or(131_072);
                if !(mean.is_finite() && mean >= 1.0) {
                    return err(&f("mean"), format!("must be at least 1 (got {mean})"));
                }
                if !(sigma.is_finite() && sigma >= 0.0) {
                    return err(
                        &f("sigma"),
                        format!("must be zero or positive (got {sigma})"),
                    );
                }
                if max == 0 {
                    return err(&f("max"), "must be at least 1");
                }
                Lengths::Lognormal { mean, sigma, max }
            }
            LengthKind::Empirical => {
                let values = required(&f("values"), &self.values, &kind)?;
                if values.is_empty() || values.contains(&0) {
                    return err(&f("values"), "must be non-empty, each at least 1");
                }
                if let Some(w) = &self.weights {
                    if w.len() != values.len()
                        || w.iter().any(|x| !x.is_finite() || *x < 0.0)
                        || w.iter().sum::<f64>() <= 0.0
                    {
                        return err(
                            &f("weights"),
                            "must have one weight >= 0 per value, not all zero",
                        );
                    }
                }
                Lengths::Empirical {
                    values,
                    weights: self.weights.clone(),
                }
            }
        })
    }
}
