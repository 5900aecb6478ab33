//! Which keys belong to which engine: `engine.kind` picks vLLM 0.33.0 or SGLang 0.5.23,
//! each configured under its own argument names; a key of one engine set under the other
//! is refused with the key to use instead, and so are the features kvsim models for vLLM
//! only.

use super::{PreemptionMode, Scenario};

type Check = std::result::Result<(), (String, String)>;

/// The engines kvsim models.
pub const ENGINE_KINDS: &str = "vllm, sglang";

/// Check `engine.kind` and that every engine-specific key set belongs to it.
pub fn check(s: &Scenario) -> Check {
    match s.engine.kind.as_str() {
        "vllm" => refuse_sglang_keys(s),
        "sglang" => {
            refuse_vllm_keys(s)?;
            refuse_vllm_only_features(s)?;
            check_sglang_values(s)
        }
        other => Err((
            "engine.kind".into(),
            format!("unknown engine `{other}`; known: {ENGINE_KINDS}"),
        )),
    }
}

fn refuse(field: &str, why: &str) -> Check {
    Err((field.into(), why.into()))
}

fn refuse_sglang_keys(s: &Scenario) -> Check {
    let (e, k) = (&s.engine, &s.kv_cache);
    let set = [
        ("engine.schedule_policy", e.schedule_policy.is_some()),
        (
            "engine.chunked_prefill_size",
            e.chunked_prefill_size.is_some(),
        ),
        (
            "engine.max_running_requests",
            e.max_running_requests.is_some(),
        ),
        ("engine.max_prefill_tokens", e.max_prefill_tokens.is_some()),
        (
            "engine.schedule_conservativeness",
            e.schedule_conservativeness.is_some(),
        ),
        (
            "engine.disable_overlap_schedule",
            e.disable_overlap_schedule.is_some(),
        ),
        ("engine.enable_mixed_chunk", e.enable_mixed_chunk.is_some()),
        ("engine.ignore_eos", e.ignore_eos.is_some()),
        ("engine.context_length", e.context_length.is_some()),
        ("kv_cache.page_size", k.page_size.is_some()),
        ("kv_cache.max_total_tokens", k.max_total_tokens.is_some()),
        (
            "kv_cache.mem_fraction_static",
            k.mem_fraction_static.is_some(),
        ),
    ];
    match set.iter().find(|(_, on)| *on) {
        Some((field, _)) => refuse(
            field,
            "is an SGLang setting; set `engine.kind: sglang` to use it",
        ),
        None => Ok(()),
    }
}

fn refuse_vllm_keys(s: &Scenario) -> Check {
    let (e, k) = (&s.engine, &s.kv_cache);
    let set = [
        (
            "engine.max_num_batched_tokens",
            e.max_num_batched_tokens.is_some(),
            "engine.chunked_prefill_size and engine.max_prefill_tokens",
        ),
        (
            "engine.max_num_seqs",
            e.max_num_seqs.is_some(),
            "engine.max_running_requests",
        ),
        (
            "engine.max_model_len",
            e.max_model_len.is_some(),
            "engine.context_length",
        ),
        (
            "engine.async_scheduling",
            e.async_scheduling.is_some(),
            "engine.disable_overlap_schedule",
        ),
        (
            "engine.enable_chunked_prefill",
            !e.enable_chunked_prefill,
            "engine.chunked_prefill_size: -1",
        ),
        (
            "engine.long_prefill_token_threshold",
            e.long_prefill_token_threshold != 0 || e.long_prefill_token_threshold_adaptive,
            "engine.chunked_prefill_size",
        ),
        (
            "engine.watermark",
            e.watermark != 0.0,
            "engine.schedule_conservativeness",
        ),
        (
            "kv_cache.num_gpu_blocks",
            k.num_gpu_blocks.is_some(),
            "kv_cache.max_total_tokens",
        ),
        (
            "kv_cache.gpu_memory_utilization",
            k.gpu_memory_utilization != 0.92,
            "kv_cache.mem_fraction_static",
        ),
        (
            "kv_cache.block_size",
            k.block_size != 16,
            "kv_cache.page_size",
        ),
        (
            "kv_cache.activation_gib",
            k.activation_gib.is_some(),
            "kv_cache.mem_fraction_static",
        ),
    ];
    match set.iter().find(|(_, on, _)| *on) {
        Some((field, _, instead)) => Err((
            field.to_string(),
            format!("is a vLLM setting; under `engine.kind: sglang` use {instead}"),
        )),
        None => Ok(()),
    }
}

fn refuse_vllm_only_features(s: &Scenario) -> Check {
    let (e, k, c) = (&s.engine, &s.kv_cache, &s.cluster);
    let not_yet = "is modelled for vLLM only; kvsim's SGLang engine does not have it yet";
    if e.preemption_mode == PreemptionMode::Swap {
        return refuse(
            "engine.preemption_mode",
            "SGLang retracts and recomputes; swap is vLLM v0's",
        );
    }
    if e.pipeline_parallel_size > 1 {
        return refuse("engine.pipeline_parallel_size", not_yet);
    }
    if e.data_parallel_size > 1 {
        return refuse("engine.data_parallel_size", not_yet);
    }
    if !k.enable_prefix_caching {
        return refuse(
            "kv_cache.enable_prefix_caching",
            "SGLang's --disable-radix-cache is not modelled; the radix cache is always on",
        );
    }
    if k.eviction != "vllm" {
        return refuse(
            "kv_cache.eviction",
            "SGLang's radix cache evicts least-recently-used leaves; the paging lab's policies plug into vLLM's block pool only",
        );
    }
    for (field, on) in [
        ("kv_cache.predictor", k.predictor.is_some()),
        ("kv_cache.cpu_offload", k.cpu_offload.is_some()),
        ("kv_cache.token_policy", k.token_policy.is_some()),
        ("cluster.disaggregation", c.disaggregation.is_some()),
    ] {
        if on {
            return refuse(field, not_yet);
        }
    }
    Ok(())
}

fn check_sglang_values(s: &Scenario) -> Check {
    let (e, k) = (&s.engine, &s.kv_cache);
    if e.enable_mixed_chunk == Some(true) {
        return refuse(
            "engine.enable_mixed_chunk",
            "mixing prefill chunks into decode batches is not modelled yet (SGLang's default is false)",
        );
    }
    if let Some(p) = &e.schedule_policy {
        if crate::engine::sglang::config::SchedulePolicy::parse(p).is_none() {
            return Err((
                "engine.schedule_policy".into(),
                format!(
                    "unknown policy `{p}`; known: {}",
                    crate::engine::sglang::config::POLICY_NAMES
                ),
            ));
        }
    }
    if let Some(c) = e.schedule_conservativeness {
        if c.is_nan() || c <= 0.0 {
            return refuse("engine.schedule_conservativeness", "must be above 0");
        }
    }
    if let Some(f) = k.mem_fraction_static {
        if !(f > 0.0 && f < 1.0) {
            return Err((
                "kv_cache.mem_fraction_static".into(),
                format!("must be above 0 and below 1 (got {f})"),
            ));
        }
    }
    for (field, v) in [
        (
            "engine.max_running_requests",
            e.max_running_requests.map(u64::from),
        ),
        (
            "engine.max_prefill_tokens",
            e.max_prefill_tokens.map(u64::from),
        ),
        ("engine.context_length", e.context_length.map(u64::from)),
        ("kv_cache.page_size", k.page_size.map(u64::from)),
        ("kv_cache.max_total_tokens", k.max_total_tokens),
    ] {
        if v == Some(0) {
            return refuse(field, "must be at least 1");
        }
    }
    Ok(())
}
