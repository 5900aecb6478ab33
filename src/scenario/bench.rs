//! The `workload.source` sections of the generated workloads of SGLang's and vLLM's serving
//! benchmarks (`sglang_gsp`, `vllm_random`, `vllm_prefix_repetition`): keys named as the
//! tools' command-line options, with the tools' defaults, checked into typed specs. Upstream
//! versions and rules are in the generators' module docs (`crate::workload::sglang_gsp`,
//! `vllm_random`, `vllm_prefix_repetition`, `bench_arrival`).

use super::source::FieldError;
use crate::workload::bench_arrival::{vllm_gamma, BenchArrival, RampUp};
use crate::workload::sglang_gsp::{GroupDistribution, GspTokens, SglangGspSpec};
use crate::workload::vllm_prefix_repetition::VllmPrefixRepetitionSpec;
use crate::workload::vllm_random::VllmRandomSpec;
use serde::{Deserialize, Serialize};

/// Most requests a generated benchmark workload may have (the shuffled kinds hold 4 bytes
/// per request).
pub const MAX_PROMPTS: u64 = 10_000_000;
/// Most tokens one prompt or output of a generated benchmark workload may have.
pub const MAX_TOKENS: u64 = 1 << 24;

fn err<T>(field: String, msg: impl Into<String>) -> Result<T, FieldError> {
    Err((field, msg.into()))
}

/// Serde helpers for a rate that may be written `inf`, as on the tools' command lines.
mod rate {
    use serde::de::{self, Visitor};
    use serde::{Deserializer, Serializer};

    /// Write the number (`.inf` for infinity, which reads back).
    pub fn serialize<S: Serializer>(v: &f64, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_f64(*v)
    }

    /// Read a number, or `inf` / `infinity` (any case).
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<f64, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = f64;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a number or inf")
            }
            fn visit_f64<E: de::Error>(self, v: f64) -> Result<f64, E> {
                Ok(v)
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<f64, E> {
                Ok(v as f64)
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<f64, E> {
                Ok(v as f64)
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<f64, E> {
                match v.trim_start_matches('+').to_ascii_lowercase().as_str() {
                    "inf" | "infinity" | ".inf" => Ok(f64::INFINITY),
                    _ => Err(E::invalid_value(de::Unexpected::Str(v), &self)),
                }
            }
        }
        d.deserialize_any(V)
    }
}

fn inf() -> f64 {
    f64::INFINITY
}

/// `--ramp-up-strategy` of `vllm bench serve`.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum RampUpStrategy {
    /// Linear in the request index.
    Linear,
    /// Geometric in the request index.
    Exponential,
}

/// `--random-range-ratio`: one ratio for input and output, or one each.
#[derive(Debug, Clone, Copy, Serialize, PartialEq)]
#[serde(untagged)]
pub enum RangeRatio {
    /// Both lengths.
    Both(f64),
    /// `{input: r, output: r}`.
    Split(SplitRatio),
}

/// Separate input and output range ratios.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct SplitRatio {
    /// Ratio of the input length.
    pub input: f64,
    /// Ratio of the output length.
    pub output: f64,
}

impl<'de> Deserialize<'de> for RangeRatio {
    /// A number, or a map with exactly `input` and `output` (vLLM's JSON form), with
    /// serde's own message for a missing or unknown key.
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        use serde::de::{self, MapAccess, Visitor};
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = RangeRatio;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a number or {input: r, output: r}")
            }
            fn visit_f64<E: de::Error>(self, v: f64) -> Result<RangeRatio, E> {
                Ok(RangeRatio::Both(v))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<RangeRatio, E> {
                Ok(RangeRatio::Both(v as f64))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<RangeRatio, E> {
                Ok(RangeRatio::Both(v as f64))
            }
            fn visit_map<A: MapAccess<'de>>(self, m: A) -> Result<RangeRatio, A::Error> {
                SplitRatio::deserialize(de::value::MapAccessDeserializer::new(m))
                    .map(RangeRatio::Split)
            }
        }
        d.deserialize_any(V)
    }
}

impl Default for RangeRatio {
    fn default() -> Self {
        RangeRatio::Both(0.0)
    }
}

/// `--gsp-group-distribution` of SGLang's bench.
#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum GroupDistributionKind {
    /// Equal groups.
    #[default]
    Uniform,
    /// Zipf over group ranks.
    Zipf,
}

macro_rules! defaults {
    ($($name:ident: $t:ty = $v:expr;)*) => {
        $(fn $name() -> $t { $v })*
    };
}

defaults! {
    d_groups: u32 = 64;
    d_per_group: u32 = 16;
    d_system_len: u32 = 2048;
    d_question_len: u32 = 128;
    d_gsp_output_len: u32 = 256;
    d_one_f: f64 = 1.0;
    d_one_u: u32 = 1;
    d_prompts: u64 = 1000;
    d_input_len: u32 = 1024;
    d_output_len: u32 = 128;
    d_vocab: u32 = 32000;
    d_special_ids: u32 = 3;
    d_rep_len: u32 = 256;
    d_num_prefixes: u64 = 10;
}

/// `workload.source.sglang_gsp`: SGLang 0.5.23 `bench_serving --dataset-name
/// generated-shared-prefix` (defaults from its argument parser).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct SglangGspSection {
    /// System prompts (default 64).
    #[serde(default = "d_groups")]
    pub gsp_num_groups: u32,
    /// Requests per system prompt (default 16).
    #[serde(default = "d_per_group")]
    pub gsp_prompts_per_group: u32,
    /// Random ids per system prompt (default 2048).
    #[serde(default = "d_system_len")]
    pub gsp_system_prompt_len: u32,
    /// Random ids per question (default 128).
    #[serde(default = "d_question_len")]
    pub gsp_question_len: u32,
    /// Output tokens (default 256).
    #[serde(default = "d_gsp_output_len")]
    pub gsp_output_len: u32,
    /// Lengths uniform in `[max(int(L x ratio), 1), L]` (default 1: exact).
    #[serde(default = "d_one_f")]
    pub gsp_range_ratio: f64,
    /// Keep requests group by group instead of shuffling (default false).
    #[serde(default)]
    pub gsp_ordered: bool,
    /// `uniform` (default) or `zipf`.
    #[serde(default)]
    pub gsp_group_distribution: GroupDistributionKind,
    /// Zipf exponent (required with `zipf`, refused otherwise).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gsp_zipf_alpha: Option<f64>,
    /// Rounds per conversation (default 1; only 1 is modelled).
    #[serde(default = "d_one_u")]
    pub gsp_num_turns: u32,
    /// `--tokenize-prompt`: send token ids, not text (default false).
    #[serde(default)]
    pub tokenize_prompt: bool,
    /// Requests per second (default inf: all at time 0).
    #[serde(default = "inf", with = "rate")]
    pub request_rate: f64,
    /// Tokens per random id after the server re-tokenizes the text (default 1.04).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retokenize_factor: Option<f64>,
    /// Tokens the server's tokenizer adds in front (default 1).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bos_tokens: Option<u32>,
    /// Tokens of the `"\n\n"` after the system prompt (default 2).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub separator_tokens: Option<u32>,
}

/// `workload.source.vllm_random`: vLLM 0.33.0 `vllm bench serve --dataset-name random`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct VllmRandomSection {
    /// Requests (default 1000).
    #[serde(default = "d_prompts")]
    pub num_prompts: u64,
    /// Prompt tokens, special tokens included, prefix not (default 1024).
    #[serde(default = "d_input_len")]
    pub random_input_len: u32,
    /// Output tokens (default 128).
    #[serde(default = "d_output_len")]
    pub random_output_len: u32,
    /// Range ratio, one number or `{input, output}`, each in `[0, 1)` (default 0).
    #[serde(default)]
    pub random_range_ratio: RangeRatio,
    /// Random ids shared by every prompt (default 0).
    #[serde(default)]
    pub random_prefix_len: u32,
    /// Special tokens the tokenizer adds to a prompt (default 1: Llama-2's BOS).
    #[serde(default = "d_one_u")]
    pub bos_tokens: u32,
    /// The tokenizer's vocabulary size (default 32000: Llama-2).
    #[serde(default = "d_vocab")]
    pub vocab_size: u32,
    /// Special ids in that vocabulary, never sampled (default 3: Llama-2's unk, BOS, EOS).
    #[serde(default = "d_special_ids")]
    pub special_ids: u32,
    /// Requests per second (default inf: all at time 0).
    #[serde(default = "inf", with = "rate")]
    pub request_rate: f64,
    /// Gamma shape of the gaps (default 1: Poisson; inf: equal gaps).
    #[serde(default = "d_one_f", with = "rate")]
    pub burstiness: f64,
    /// `linear` or `exponential` (default none).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ramp_up_strategy: Option<RampUpStrategy>,
    /// Rate of the first request of a ramp-up.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ramp_up_start_rps: Option<u32>,
    /// Rate of the last request of a ramp-up.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ramp_up_end_rps: Option<u32>,
}

/// `workload.source.vllm_prefix_repetition`: vLLM 0.33.0 `vllm bench serve --dataset-name
/// prefix_repetition`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct VllmPrefixRepetitionSection {
    /// Prompts asked for (default 1000).
    #[serde(default = "d_prompts")]
    pub num_prompts: u64,
    /// Random ids per prefix (default 256).
    #[serde(default = "d_rep_len")]
    pub prefix_repetition_prefix_len: u32,
    /// Random ids per suffix (default 256).
    #[serde(default = "d_rep_len")]
    pub prefix_repetition_suffix_len: u32,
    /// Prefixes (default 10).
    #[serde(default = "d_num_prefixes")]
    pub prefix_repetition_num_prefixes: u64,
    /// Output tokens (default 128).
    #[serde(default = "d_output_len")]
    pub prefix_repetition_output_len: u32,
    /// `--disable-shuffle` (default false).
    #[serde(default)]
    pub disable_shuffle: bool,
    /// Special tokens the server's tokenizer adds in front (default 1: BOS).
    #[serde(default = "d_one_u")]
    pub bos_tokens: u32,
    /// Requests per second (default inf: all at time 0).
    #[serde(default = "inf", with = "rate")]
    pub request_rate: f64,
    /// Gamma shape of the gaps (default 1: Poisson; inf: equal gaps).
    #[serde(default = "d_one_f", with = "rate")]
    pub burstiness: f64,
    /// `linear` or `exponential` (default none).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ramp_up_strategy: Option<RampUpStrategy>,
    /// Rate of the first request of a ramp-up.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ramp_up_start_rps: Option<u32>,
    /// Rate of the last request of a ramp-up.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ramp_up_end_rps: Option<u32>,
}

/// Field path of `key` in section `at`.
fn at(section: &str, key: &str) -> String {
    format!("{section}.{key}")
}

/// A length that is at least `min` and at most [`MAX_TOKENS`].
fn length(section: &str, key: &str, v: u64, min: u64) -> Result<(), FieldError> {
    if v < min || v > MAX_TOKENS {
        return err(
            at(section, key),
            format!("must be between {min} and {MAX_TOKENS} (got {v})"),
        );
    }
    Ok(())
}

/// A request count between 1 and [`MAX_PROMPTS`].
fn prompts(section: &str, key: &str, v: u64) -> Result<(), FieldError> {
    if v == 0 || v > MAX_PROMPTS {
        return err(
            at(section, key),
            format!("must be between 1 and {MAX_PROMPTS} (got {v})"),
        );
    }
    Ok(())
}

/// A rate or shape that is positive, infinity allowed.
fn positive_or_inf(section: &str, key: &str, v: f64) -> Result<(), FieldError> {
    if v.is_nan() || v <= 0.0 {
        return err(
            at(section, key),
            format!("must be a positive number or inf (got {v})"),
        );
    }
    Ok(())
}

/// The sending options of `vllm bench serve` (vLLM 0.33.0 `serve.py`: `get_request` and
/// the ramp-up checks of `main`).
fn vllm_arrival(
    section: &str,
    request_rate: f64,
    burstiness: f64,
    strategy: Option<RampUpStrategy>,
    start: Option<u32>,
    end: Option<u32>,
) -> Result<BenchArrival, FieldError> {
    positive_or_inf(section, "request_rate", request_rate)?;
    positive_or_inf(section, "burstiness", burstiness)?;
    let Some(strategy) = strategy else {
        for (key, v) in [("ramp_up_start_rps", start), ("ramp_up_end_rps", end)] {
            if v.is_some() {
                return err(at(section, key), "applies only with ramp_up_strategy");
            }
        }
        if request_rate == f64::INFINITY {
            return Ok(BenchArrival::AllAtOnce);
        }
        vllm_gamma(request_rate, burstiness).map_err(|m| (at(section, "burstiness"), m))?;
        return Ok(BenchArrival::Vllm {
            rate: request_rate,
            burstiness,
        });
    };
    if request_rate != f64::INFINITY {
        return err(
            at(section, "request_rate"),
            "must be left out with ramp_up_strategy (the ramp-up sets the rate)",
        );
    }
    let need = |key: &str, v: Option<u32>| {
        v.ok_or_else(|| {
            (
                at(section, key),
                "required with ramp_up_strategy".to_string(),
            )
        })
    };
    let (start_rps, end_rps) = (
        need("ramp_up_start_rps", start)?,
        need("ramp_up_end_rps", end)?,
    );
    if start_rps == 0 {
        // vLLM refuses 0 for exponential; for linear its first request asserts a rate > 0.
        return err(at(section, "ramp_up_start_rps"), "must be at least 1");
    }
    if start_rps > end_rps {
        return err(
            at(section, "ramp_up_end_rps"),
            format!("must be at least ramp_up_start_rps ({start_rps}; got {end_rps})"),
        );
    }
    for rps in [start_rps, end_rps] {
        vllm_gamma(rps as f64, burstiness).map_err(|m| (at(section, "burstiness"), m))?;
    }
    Ok(BenchArrival::VllmRampUp {
        strategy: match strategy {
            RampUpStrategy::Linear => RampUp::Linear,
            RampUpStrategy::Exponential => RampUp::Exponential,
        },
        start_rps,
        end_rps,
        burstiness,
    })
}

/// A vLLM range ratio, in `[0, 1)` (`get_sampling_params`).
fn vllm_ratio(field: String, r: f64) -> Result<f64, FieldError> {
    if !(0.0..1.0).contains(&r) {
        return err(field, format!("must be in [0, 1) (got {r})"));
    }
    Ok(r)
}

impl VllmRandomSection {
    /// Check the section (field paths from `workload.source`).
    pub fn resolve(&self) -> Result<VllmRandomSpec, FieldError> {
        let s = "vllm_random";
        prompts(s, "num_prompts", self.num_prompts)?;
        let key = "random_range_ratio";
        let (input_range_ratio, output_range_ratio) = match self.random_range_ratio {
            RangeRatio::Both(r) => (vllm_ratio(at(s, key), r)?, r),
            RangeRatio::Split(SplitRatio { input, output }) => (
                vllm_ratio(at(s, "random_range_ratio.input"), input)?,
                vllm_ratio(at(s, "random_range_ratio.output"), output)?,
            ),
        };
        if self.special_ids >= self.vocab_size {
            return err(
                at(s, "special_ids"),
                format!(
                    "must be less than vocab_size ({}; got {})",
                    self.vocab_size, self.special_ids
                ),
            );
        }
        let spec = VllmRandomSpec {
            num_prompts: self.num_prompts,
            input_len: self.random_input_len,
            output_len: self.random_output_len,
            input_range_ratio,
            output_range_ratio,
            prefix_len: self.random_prefix_len,
            bos_tokens: self.bos_tokens,
            vocab_size: self.vocab_size,
            special_ids: self.special_ids,
            arrival: vllm_arrival(
                s,
                self.request_rate,
                self.burstiness,
                self.ramp_up_strategy,
                self.ramp_up_start_rps,
                self.ramp_up_end_rps,
            )?,
        };
        let (low, high) = spec.input_range();
        if self.random_prefix_len as u64 + low < 1 {
            return err(
                at(s, "random_input_len"),
                format!(
                    "too small: with {} special tokens and range ratio {input_range_ratio} \
                     a prompt may have no token besides them (raise random_input_len or \
                     random_prefix_len, or lower the ratio)",
                    self.bos_tokens
                ),
            );
        }
        length(s, "random_input_len", spec.shared_tokens() + high, 1)?;
        length(s, "random_output_len", spec.output_range().1, 0)?;
        Ok(spec)
    }
}

impl VllmPrefixRepetitionSection {
    /// Check the section (field paths from `workload.source`).
    pub fn resolve(&self) -> Result<VllmPrefixRepetitionSpec, FieldError> {
        let s = "vllm_prefix_repetition";
        prompts(s, "num_prompts", self.num_prompts)?;
        let g = self.prefix_repetition_num_prefixes;
        if g == 0 {
            return err(
                at(s, "prefix_repetition_num_prefixes"),
                "must be at least 1",
            );
        }
        if g > self.num_prompts {
            return err(
                at(s, "num_prompts"),
                format!(
                    "must be at least prefix_repetition_num_prefixes ({g}; got {})",
                    self.num_prompts
                ),
            );
        }
        let prompt = self.bos_tokens as u64
            + self.prefix_repetition_prefix_len as u64
            + self.prefix_repetition_suffix_len as u64;
        length(s, "prefix_repetition_suffix_len", prompt, 1)?;
        length(
            s,
            "prefix_repetition_output_len",
            self.prefix_repetition_output_len as u64,
            1,
        )?;
        Ok(VllmPrefixRepetitionSpec {
            num_prompts: self.num_prompts,
            prefix_len: self.prefix_repetition_prefix_len,
            suffix_len: self.prefix_repetition_suffix_len,
            num_prefixes: g,
            output_len: self.prefix_repetition_output_len,
            disable_shuffle: self.disable_shuffle,
            bos_tokens: self.bos_tokens,
            arrival: vllm_arrival(
                s,
                self.request_rate,
                self.burstiness,
                self.ramp_up_strategy,
                self.ramp_up_start_rps,
                self.ramp_up_end_rps,
            )?,
        })
    }
}

impl SglangGspSection {
    /// Check the section (field paths from `workload.source`).
    pub fn resolve(&self) -> Result<SglangGspSpec, FieldError> {
        let s = "sglang_gsp";
        for (key, v) in [
            ("gsp_num_groups", self.gsp_num_groups),
            ("gsp_prompts_per_group", self.gsp_prompts_per_group),
        ] {
            prompts(s, key, v as u64)?;
        }
        let n = self.gsp_num_groups as u64 * self.gsp_prompts_per_group as u64;
        if n > MAX_PROMPTS {
            return err(
                at(s, "gsp_prompts_per_group"),
                format!("gsp_num_groups x gsp_prompts_per_group must be at most {MAX_PROMPTS} (got {n})"),
            );
        }
        let r = self.gsp_range_ratio;
        if !(0.0..=1.0).contains(&r) {
            return err(
                at(s, "gsp_range_ratio"),
                format!("must be in [0, 1] (got {r})"),
            );
        }
        if self.gsp_num_turns != 1 {
            return err(
                at(s, "gsp_num_turns"),
                format!(
                    "only 1 is modelled (got {}): SGLang sends each further round when the \
                     previous answer has arrived, a closed loop that arrival times cannot express",
                    self.gsp_num_turns
                ),
            );
        }
        positive_or_inf(s, "request_rate", self.request_rate)?;
        let tokens = self.tokens()?;
        let spec = SglangGspSpec {
            num_groups: self.gsp_num_groups,
            prompts_per_group: self.gsp_prompts_per_group,
            system_prompt_len: self.gsp_system_prompt_len,
            question_len: self.gsp_question_len,
            output_len: self.gsp_output_len,
            range_ratio: r,
            ordered: self.gsp_ordered,
            distribution: self.distribution()?,
            tokens,
            arrival: if self.request_rate == f64::INFINITY {
                BenchArrival::AllAtOnce
            } else {
                BenchArrival::Sglang {
                    rate: self.request_rate,
                }
            },
        };
        for (key, v) in [
            ("gsp_system_prompt_len", self.gsp_system_prompt_len),
            ("gsp_question_len", self.gsp_question_len),
            ("gsp_output_len", self.gsp_output_len),
        ] {
            length(s, key, v as u64, 1)?;
        }
        let prompt = spec.system_tokens(self.gsp_system_prompt_len) as u64
            + spec.question_tokens(self.gsp_question_len) as u64;
        if prompt > MAX_TOKENS {
            return err(
                at(s, "retokenize_factor"),
                format!("gives prompts of {prompt} tokens, more than {MAX_TOKENS}"),
            );
        }
        Ok(spec)
    }

    fn distribution(&self) -> Result<GroupDistribution, FieldError> {
        let s = "sglang_gsp";
        match (self.gsp_group_distribution, self.gsp_zipf_alpha) {
            (GroupDistributionKind::Uniform, None) => Ok(GroupDistribution::Uniform),
            (GroupDistributionKind::Uniform, Some(_)) => err(
                at(s, "gsp_zipf_alpha"),
                "applies only with gsp_group_distribution: zipf",
            ),
            (GroupDistributionKind::Zipf, None) => err(
                at(s, "gsp_zipf_alpha"),
                "required with gsp_group_distribution: zipf",
            ),
            (GroupDistributionKind::Zipf, Some(alpha)) => {
                if !(alpha.is_finite() && alpha > 0.0) {
                    return err(
                        at(s, "gsp_zipf_alpha"),
                        format!("must be a finite number above 0 (got {alpha})"),
                    );
                }
                Ok(GroupDistribution::Zipf { alpha })
            }
        }
    }

    fn tokens(&self) -> Result<GspTokens, FieldError> {
        let s = "sglang_gsp";
        if self.tokenize_prompt {
            for (key, set) in [
                ("retokenize_factor", self.retokenize_factor.is_some()),
                ("bos_tokens", self.bos_tokens.is_some()),
                ("separator_tokens", self.separator_tokens.is_some()),
            ] {
                if set {
                    return err(
                        at(s, key),
                        "does not apply with tokenize_prompt: true (the ids are sent as they are)",
                    );
                }
            }
            return Ok(GspTokens {
                retokenize_factor: 1.0,
                bos_tokens: 0,
                separator_tokens: 0,
            });
        }
        let f = self.retokenize_factor.unwrap_or(1.04);
        if !(f.is_finite() && f > 0.0 && f <= 16.0) {
            return err(
                at(s, "retokenize_factor"),
                format!("must be above 0 and at most 16 (got {f})"),
            );
        }
        let bos_tokens = self.bos_tokens.unwrap_or(1);
        let separator_tokens = self.separator_tokens.unwrap_or(2);
        for (key, v) in [
            ("bos_tokens", bos_tokens),
            ("separator_tokens", separator_tokens),
        ] {
            length(s, key, v as u64, 0)?;
        }
        Ok(GspTokens {
            retokenize_factor: f,
            bos_tokens,
            separator_tokens,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse<T: serde::de::DeserializeOwned>(yaml: &str) -> T {
        serde_yaml::from_str(yaml).expect("valid section")
    }

    #[test]
    fn empty_sections_take_the_tools_defaults() {
        // SGLang 0.5.23 serving.py argument defaults.
        let g = parse::<SglangGspSection>("{}").resolve().unwrap();
        assert_eq!(
            (g.num_groups, g.prompts_per_group, g.system_prompt_len),
            (64, 16, 2048)
        );
        assert_eq!(
            (g.question_len, g.output_len, g.range_ratio),
            (128, 256, 1.0)
        );
        assert!(!g.ordered && g.distribution == GroupDistribution::Uniform);
        assert_eq!(g.arrival, BenchArrival::AllAtOnce);
        // vLLM 0.33.0 datasets.py argument defaults.
        let r = parse::<VllmRandomSection>("{}").resolve().unwrap();
        assert_eq!(
            (r.num_prompts, r.input_len, r.output_len),
            (1000, 1024, 128)
        );
        assert_eq!((r.prefix_len, r.input_range_ratio), (0, 0.0));
        assert_eq!(r.arrival, BenchArrival::AllAtOnce);
        let p = parse::<VllmPrefixRepetitionSection>("{}")
            .resolve()
            .unwrap();
        assert_eq!((p.prefix_len, p.suffix_len, p.num_prefixes), (256, 256, 10));
        assert_eq!((p.output_len, p.requests()), (128, 1000));
    }

    #[test]
    fn rates_read_inf_and_numbers() {
        let r: VllmRandomSection = parse("{request_rate: 3, burstiness: inf}");
        assert_eq!(
            r.resolve().unwrap().arrival,
            BenchArrival::Vllm {
                rate: 3.0,
                burstiness: f64::INFINITY
            }
        );
        let g: SglangGspSection = parse("{request_rate: 2.5}");
        assert_eq!(
            g.resolve().unwrap().arrival,
            BenchArrival::Sglang { rate: 2.5 }
        );
        for text in ["inf", "Infinity", ".inf", "+inf"] {
            let g: SglangGspSection = parse(&format!("{{request_rate: {text}}}"));
            assert_eq!(g.request_rate, f64::INFINITY, "{text}");
        }
        let split: VllmRandomSection = parse("{random_range_ratio: {input: 0.1, output: 0.9}}");
        let s = split.resolve().unwrap();
        assert_eq!((s.input_range_ratio, s.output_range_ratio), (0.1, 0.9));
    }
}
