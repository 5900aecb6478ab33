//! Reading a scenario file. This is the only module that touches `serde_yaml`, so that a
//! maintained fork can replace it in one place.

use super::Scenario;
use crate::error::{Error, Result};
use std::path::{Path, PathBuf};

/// Load a scenario file, apply `--set key=value` overrides, resolve relative paths against
/// the file's directory (a path given with `--set` against the current directory, where it
/// was typed), and check every value.
pub fn load_scenario(path: &Path, sets: &[String]) -> Result<Scenario> {
    let text = crate::input::read_bounded(path, "scenario", crate::input::MAX_SCENARIO_BYTES)?;
    let base = path.parent().map(Path::to_path_buf).unwrap_or_default();
    parse_scenario(&text, &path.display().to_string(), &base, sets)
}

/// Parse scenario text. `origin` names the text in messages; `base` resolves relative paths.
pub fn parse_scenario(text: &str, origin: &str, base: &Path, sets: &[String]) -> Result<Scenario> {
    // First pass on the text itself, so that errors carry line and column.
    let mut scenario: Scenario = serde_yaml::from_str(text)
        .map_err(|e| Error::input(format!("{origin}: {}", describe_yaml_error(&e))))?;
    if !sets.is_empty() {
        let mut value: serde_yaml::Value = serde_yaml::from_str(text)
            .map_err(|e| Error::input(format!("{origin}: {}", describe_yaml_error(&e))))?;
        for set in sets {
            apply_set(&mut value, set)?;
        }
        scenario = serde_yaml::from_value(value).map_err(|e| {
            Error::input(format!(
                "{origin} with --set {}: {}",
                sets.join(" --set "),
                describe_yaml_error(&e)
            ))
        })?;
    }
    let located = |field: &str, msg: &str| {
        let at = match line_of_key(text, field) {
            Some((line, col)) => format!("{origin}: line {line} column {col}"),
            None => origin.to_string(),
        };
        Error::input(format!("{at}: {field}: {msg}"))
    };
    if let Err((field, msg)) = check_values(&scenario) {
        return Err(located(&field, &msg));
    }
    resolve_paths(&mut scenario, base, sets);
    // Presets and shapes: their errors start with the field they concern.
    let shapes = crate::model::Model::from_spec(&scenario.model)
        .and_then(|m| m.with_kv_cache_dtype(&scenario.kv_cache.cache_dtype))
        .err()
        .or_else(|| crate::hardware::Gpu::from_spec(&scenario.hardware).err());
    if let Some(e) = shapes {
        let text = e.to_string();
        return Err(match text.split_once(": ") {
            Some((field, msg)) if !field.contains(' ') => located(field, msg),
            _ => e,
        });
    }
    Ok(scenario)
}

/// Check that the dotted `key` of a command-line axis (`flag`: `--vary`, `--search`) names
/// a scenario field, by setting it to `value` over the scenario and its `sets`: an input
/// error naming the key and the nearest field of its section when it does not (a typo
/// would otherwise fail every point alike). Errors in the value are not its concern: they
/// belong to the points that use it.
pub fn check_key(path: &Path, sets: &[String], flag: &str, key: &str, value: &str) -> Result<()> {
    let text = crate::input::read_bounded(path, "scenario", crate::input::MAX_SCENARIO_BYTES)?;
    let mut tree: serde_yaml::Value = serde_yaml::from_str(&text)
        .map_err(|e| Error::input(format!("{}: {}", path.display(), describe_yaml_error(&e))))?;
    for set in sets {
        apply_set(&mut tree, set)?;
    }
    apply_set(&mut tree, &format!("{key}={value}"))
        .map_err(|e| Error::input(format!("{flag} {key}: {e}")))?;
    let Err(e) = serde_yaml::from_value::<Scenario>(tree) else {
        return Ok(());
    };
    let body = e.to_string();
    let Some(wrong) = body
        .split_once("unknown field `")
        .and_then(|(_, rest)| rest.split('`').next())
    else {
        return Ok(());
    };
    let parts: Vec<&str> = key.split('.').collect();
    let Some(i) = parts.iter().position(|p| *p == wrong) else {
        return Ok(());
    };
    let section = parts[..i].join(".");
    let mut msg = if section.is_empty() {
        format!("{flag} {key}: a scenario has no section `{wrong}`")
    } else {
        format!("{flag} {key}: `{section}` has no field `{wrong}`")
    };
    if let Some(s) = suggestion(&body) {
        let near = if section.is_empty() {
            s
        } else {
            format!("{section}.{s}")
        };
        msg.push_str(&format!(" (did you mean `{near}`?)"));
    }
    Err(Error::input(msg))
}

/// The scenario as YAML, as it was resolved (written next to the results).
pub fn to_yaml_string(s: &Scenario) -> Result<String> {
    serde_yaml::to_string(s).map_err(|e| Error::failure(format!("cannot serialise scenario: {e}")))
}

/// Parse any YAML document (calibration metadata, for instance) with located errors. Kept
/// here so that `serde_yaml` stays behind this one module.
pub fn parse_yaml<T: serde::de::DeserializeOwned>(text: &str, origin: &str) -> Result<T> {
    serde_yaml::from_str(text)
        .map_err(|e| Error::input(format!("{origin}: {}", describe_yaml_error(&e))))
}

/// Serialise any value as YAML.
pub fn to_yaml<T: serde::Serialize>(value: &T) -> Result<String> {
    serde_yaml::to_string(value).map_err(|e| Error::failure(format!("cannot serialise YAML: {e}")))
}

/// Resolve the scenario's relative paths against `base`, except those a `--set` gave (or
/// replaced with a section above them): those stay relative to the current directory.
fn resolve_paths(s: &mut Scenario, base: &Path, sets: &[String]) {
    let from_command_line = |field: &str| {
        sets.iter().any(|set| {
            let key = set.split_once('=').map_or(set.as_str(), |(k, _)| k).trim();
            field == key || field.strip_prefix(key).is_some_and(|r| r.starts_with('.'))
        })
    };
    let fix = |p: &mut PathBuf, field: &str| {
        if p.is_relative() && !from_command_line(field) {
            *p = base.join(&*p);
        }
    };
    if let Some(p) = &mut s.workload.source.path {
        fix(p, "workload.source.path");
    }
    if let Some(p) = &mut s.workload.source.tokenizer_file {
        fix(p, "workload.source.tokenizer_file");
    }
    if let Some(p) = &mut s.hardware.calibration {
        fix(p, "hardware.calibration");
    }
    if let Some(p) = &mut s.model.hf_config {
        fix(p, "model.hf_config");
    }
}

/// Apply one `dotted.key=value` override to the YAML tree.
fn apply_set(root: &mut serde_yaml::Value, set: &str) -> Result<()> {
    let (key, raw) = set
        .split_once('=')
        .ok_or_else(|| Error::input(format!("--set {set}: expected dotted.key=value")))?;
    let key = key.trim();
    if key.is_empty() || key.split('.').any(str::is_empty) {
        return Err(Error::input(format!("--set {set}: empty key")));
    }
    let value: serde_yaml::Value = serde_yaml::from_str(raw)
        .map_err(|e| Error::input(format!("--set {set}: value is not valid YAML: {e}")))?;
    let mut node = root;
    let parts: Vec<&str> = key.split('.').collect();
    for (i, part) in parts.iter().enumerate() {
        if node.is_null() {
            *node = serde_yaml::Value::Mapping(Default::default());
        }
        let map = node.as_mapping_mut().ok_or_else(|| {
            Error::input(format!(
                "--set {set}: `{}` is not a section",
                parts[..i].join(".")
            ))
        })?;
        let k = serde_yaml::Value::String(part.to_string());
        if i + 1 == parts.len() {
            map.insert(k, value);
            return Ok(());
        }
        node = map.entry(k).or_insert(serde_yaml::Value::Null);
    }
    Ok(())
}

/// Turn a serde_yaml error into one line: field path, message, location, and a suggestion
/// for a misspelt key or variant.
fn describe_yaml_error(e: &serde_yaml::Error) -> String {
    let msg = e.to_string();
    // serde_yaml appends " at line L column C"; move the location to the front.
    let (body, loc) = match (msg.rfind(" at line "), e.location()) {
        (Some(i), Some(l)) => (
            msg[..i].to_string(),
            format!("line {} column {}: ", l.line(), l.column()),
        ),
        _ => (msg.clone(), String::new()),
    };
    let mut out = format!("{loc}{body}");
    if let Some(s) = suggestion(&body) {
        out.push_str(&format!(" (did you mean `{s}`?)"));
    }
    out.replace('\n', " ")
}

/// For "unknown field `x`, expected one of `a`, `b`" find the closest candidate.
fn suggestion(body: &str) -> Option<String> {
    let kind_at = body
        .find("unknown field `")
        .or_else(|| body.find("unknown variant `"))?;
    let rest = &body[kind_at..];
    let start = rest.find('`')? + 1;
    let end = start + rest[start..].find('`')?;
    let wrong = &rest[start..end];
    let expected = &rest[end..];
    let candidates: Vec<&str> = expected.split('`').skip(2).step_by(2).collect();
    let best = candidates
        .iter()
        .map(|c| (edit_distance(wrong, c), *c))
        .min()?;
    (best.0 <= wrong.len().max(3) / 2 + 1).then(|| best.1.to_string())
}

/// Levenshtein distance between two strings.
pub(crate) fn edit_distance(a: &str, b: &str) -> usize {
    let a: Vec<char> = a.chars().collect();
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    let mut cur = vec![0; b.len() + 1];
    for i in 1..=a.len() {
        cur[0] = i;
        for j in 1..=b.len() {
            let sub = prev[j - 1] + usize::from(a[i - 1] != b[j - 1]);
            cur[j] = sub.min(prev[j] + 1).min(cur[j - 1] + 1);
        }
        std::mem::swap(&mut prev, &mut cur);
    }
    prev[b.len()]
}

/// Line and column (1-based) of a dotted key in the YAML text. Block mappings are followed
/// by indentation; the last keys may sit in a flow mapping (`{a: 1, b: 2}`) on the line of
/// their parent. Falls back to the deepest parent found.
fn line_of_key(text: &str, dotted: &str) -> Option<(usize, usize)> {
    let want: Vec<&str> = dotted.split('.').collect();
    let mut stack: Vec<(usize, String)> = Vec::new();
    let mut best: Option<(usize, usize, usize)> = None; // (depth, line, column)
    for (no, line) in text.lines().enumerate() {
        let trimmed = line.trim_start();
        if trimmed.is_empty() || trimmed.starts_with('#') || trimmed.starts_with('-') {
            continue;
        }
        let indent = line.len() - trimmed.len();
        let Some(colon) = trimmed.find(':') else {
            continue;
        };
        let key = trimmed[..colon].trim().trim_matches('"').to_string();
        while stack.last().is_some_and(|(i, _)| *i >= indent) {
            stack.pop();
        }
        stack.push((indent, key));
        let depth = stack.len();
        if depth > want.len() || !stack.iter().zip(&want).all(|((_, k), w)| k == w) {
            continue;
        }
        if best.is_none_or(|(d, _, _)| depth > d) {
            best = Some((depth, no + 1, indent + 1));
        }
        if depth == want.len() {
            return Some((no + 1, indent + 1));
        }
        // Look for the remaining keys inside a flow mapping on this line.
        let mut col = indent + colon;
        let mut found = depth;
        for w in &want[depth..] {
            let pat = format!("{w}:");
            match line[col..].find(&pat) {
                Some(i) if line[..col + i].ends_with([' ', '{', ',']) => {
                    col += i;
                    found += 1;
                }
                _ => break,
            }
        }
        if found == want.len() {
            return Some((no + 1, col + 1));
        }
    }
    best.map(|(_, l, c)| (l, c))
}

/// Semantic checks that types alone cannot express. Returns the field path and the problem.
fn check_values(s: &Scenario) -> std::result::Result<(), (String, String)> {
    let w = &s.workload;
    positive("workload.time_scale", w.time_scale)?;
    positive("workload.rate_scale", w.rate_scale)?;
    if let Some(v) = w.start_s {
        non_negative("workload.start_s", v)?;
    }
    if let Some(v) = w.end_s {
        positive("workload.end_s", v)?;
        if w.start_s.is_some_and(|s| s >= v) {
            return Err((
                "workload.end_s".into(),
                "must be greater than start_s".into(),
            ));
        }
    }
    for &p in &s.output.percentiles {
        if !(p > 0.0 && p < 100.0) {
            return Err((
                "output.percentiles".into(),
                format!("{p} is not a percentile: each must be above 0 and below 100"),
            ));
        }
    }
    if w.max_concurrency == Some(0) {
        return Err((
            "workload.max_concurrency".into(),
            "must be at least 1 (leave it out for no limit)".into(),
        ));
    }
    w.source
        .resolve()
        .map_err(|(f, m)| (format!("workload.source.{f}"), m))?;
    let e = &s.hardware.efficiency;
    fraction("hardware.efficiency.gemm_compute", e.gemm_compute)?;
    fraction("hardware.efficiency.gemm_memory", e.gemm_memory)?;
    fraction("hardware.efficiency.attention_compute", e.attention_compute)?;
    if let Some(v) = e.attention_memory {
        fraction("hardware.efficiency.attention_memory", v)?;
    }
    fraction(
        "hardware.efficiency.attention_causal_compute",
        e.attention_causal_compute,
    )?;
    fraction(
        "hardware.efficiency.elementwise_memory",
        e.elementwise_memory,
    )?;
    if e.gemm_overlap.is_nan() || e.gemm_overlap < 1.0 {
        return Err((
            "hardware.efficiency.gemm_overlap".into(),
            format!("must be at least 1, got {}", e.gemm_overlap),
        ));
    }
    if e.attention_tile == 0 {
        return Err((
            "hardware.efficiency.attention_tile".into(),
            "must be at least 1".into(),
        ));
    }
    for (f, v) in [
        ("hardware.efficiency.gemm_floor_us", e.gemm_floor_us),
        (
            "hardware.efficiency.prefill_attention_floor_us",
            e.prefill_attention_floor_us,
        ),
        (
            "hardware.efficiency.decode_attention_floor_us",
            e.decode_attention_floor_us,
        ),
        (
            "hardware.efficiency.elementwise_floor_us",
            e.elementwise_floor_us,
        ),
        (
            "hardware.efficiency.decode_split_floor_us",
            e.decode_split_floor_us,
        ),
        (
            "hardware.efficiency.decode_split_wave_us",
            e.decode_split_wave_us,
        ),
        (
            "hardware.efficiency.decode_split_combine_us",
            e.decode_split_combine_us,
        ),
    ] {
        non_negative(f, v)?;
    }
    non_negative(
        "hardware.efficiency.gemm_tile_exponent",
        e.gemm_tile_exponent,
    )?;
    positive(
        "hardware.efficiency.decode_split_sm_gbps",
        e.decode_split_sm_gbps,
    )?;
    for (f, v) in [
        ("hardware.memory_gib", s.hardware.memory_gib),
        ("hardware.hbm_gbps", s.hardware.hbm_gbps),
        ("hardware.bf16_tflops", s.hardware.bf16_tflops),
        ("hardware.host_link_gbps", s.hardware.host_link_gbps),
    ] {
        if let Some(v) = v {
            positive(f, v)?;
        }
    }
    if let Some(p) = s.hardware.price_per_hour {
        non_negative("hardware.price_per_hour", p)?;
    }
    let g = &s.engine;
    non_negative("engine.server_latency_us", g.server_latency_us)?;
    super::engine_keys::check(s)?;
    if g.max_num_batched_tokens == Some(0) {
        return Err((
            "engine.max_num_batched_tokens".into(),
            "must be at least 1".into(),
        ));
    }
    if g.max_num_seqs == Some(0) {
        return Err(("engine.max_num_seqs".into(), "must be at least 1".into()));
    }
    if g.max_model_len == Some(0) {
        return Err(("engine.max_model_len".into(), "must be at least 1".into()));
    }
    if !(0.0..1.0).contains(&g.watermark) {
        return Err((
            "engine.watermark".into(),
            format!("must be in [0, 1) (got {})", g.watermark),
        ));
    }
    non_negative("engine.step_overhead_us", g.step_overhead_us)?;
    non_negative("engine.per_request_overhead_us", g.per_request_overhead_us)?;
    for (f, v) in [
        ("engine.tensor_parallel_size", g.tensor_parallel_size),
        ("engine.pipeline_parallel_size", g.pipeline_parallel_size),
        ("engine.data_parallel_size", g.data_parallel_size),
        (
            "engine.pipeline_micro_batches",
            g.pipeline_micro_batches.unwrap_or(1),
        ),
    ] {
        if v == 0 {
            return Err((f.into(), "must be at least 1".into()));
        }
    }
    non_negative("engine.swap_space_gib", g.swap_space_gib)?;
    if let Some(v) = s.hardware.nvlink_gbps {
        non_negative("hardware.nvlink_gbps", v)?;
    }
    let c = &s.cluster;
    if c.replicas == 0 {
        return Err(("cluster.replicas".into(), "must be at least 1".into()));
    }
    if c.gpus_per_node == 0 {
        return Err(("cluster.gpus_per_node".into(), "must be at least 1".into()));
    }
    if !crate::cluster::routers::ROUTERS
        .iter()
        .any(|(n, _)| *n == c.router.kind)
    {
        let known: Vec<&str> = crate::cluster::routers::ROUTERS
            .iter()
            .map(|r| r.0)
            .collect();
        return Err((
            "cluster.router.kind".into(),
            format!(
                "unknown router `{}`; known: {}",
                c.router.kind,
                known.join(", ")
            ),
        ));
    }
    positive(
        "cluster.router.balance_rel_threshold",
        c.router.balance_rel_threshold,
    )?;
    non_negative("cluster.router.cache_threshold", c.router.cache_threshold)?;
    positive("cluster.links.network_gbps", c.links.network_gbps)?;
    non_negative("cluster.links.nvlink_latency_us", c.links.nvlink_latency_us)?;
    non_negative("cluster.links.pcie_latency_us", c.links.pcie_latency_us)?;
    non_negative(
        "cluster.links.network_latency_us",
        c.links.network_latency_us,
    )?;
    if let Some(d) = &c.disaggregation {
        if d.prefill_replicas == 0 || d.decode_replicas == 0 {
            return Err((
                "cluster.disaggregation".into(),
                "needs at least one prefill and one decode replica".into(),
            ));
        }
    }
    if let Some(o) = &s.kv_cache.cpu_offload {
        positive("kv_cache.cpu_offload.gib", o.gib)?;
    }
    if let Some(t) = &s.kv_cache.token_policy {
        crate::engine::token_policy::check_spec(t)
            .map_err(|(f, m)| (format!("kv_cache.token_policy.{f}"), m))?;
    }
    let k = &s.kv_cache;
    if k.block_size == 0 {
        return Err(("kv_cache.block_size".into(), "must be at least 1".into()));
    }
    fraction("kv_cache.gpu_memory_utilization", k.gpu_memory_utilization)?;
    if k.num_gpu_blocks == Some(0) || k.num_gpu_blocks == Some(1) {
        return Err((
            "kv_cache.num_gpu_blocks".into(),
            "must be at least 2 (one is vLLM's null block)".into(),
        ));
    }
    if let Some(a) = k.activation_gib {
        non_negative("kv_cache.activation_gib", a)?;
    }
    non_negative("kv_cache.non_torch_gib", k.non_torch_gib)?;
    if k.eviction != "vllm" {
        let e = crate::paging::policies::entry(&k.eviction).map_err(|_| {
            (
                "kv_cache.eviction".to_string(),
                format!(
                    "unknown policy `{}`; known: vllm, {}",
                    k.eviction,
                    crate::paging::policy_names().join(", ")
                ),
            )
        })?;
        if matches!(e.prediction, Some(kind) if kind != crate::paging::predictor::PredictionKind::NextRequest)
        {
            return Err((
                "kv_cache.eviction".into(),
                format!(
                    "policy `{}` reads one-bit predictions, which the serving simulation does not provide (use it with `kvsim paging`)",
                    k.eviction
                ),
            ));
        }
        if !e.serves() {
            return Err((
                "kv_cache.eviction".into(),
                format!(
                    "policy `{}` cannot act in a serving run (it does not keep contents in use by running requests out of its choices); use it with `kvsim paging`, or one of: vllm, {}",
                    k.eviction,
                    crate::paging::policies::serving_names().join(", ")
                ),
            ));
        }
        if e.uses_predictions() && k.predictor.is_none() {
            return Err((
                "kv_cache.predictor".into(),
                format!("required by eviction policy `{}`", k.eviction),
            ));
        }
    }
    if let Some(p) = &k.predictor {
        non_negative("kv_cache.predictor.sigma", p.sigma)?;
    }
    for (f, v) in [
        ("slo.ttft_ms", s.slo.ttft_ms),
        ("slo.tpot_ms", s.slo.tpot_ms),
        ("slo.e2e_ms", s.slo.e2e_ms),
    ] {
        if let Some(v) = v {
            positive(f, v)?;
        }
    }
    Ok(())
}

type Check = std::result::Result<(), (String, String)>;

fn positive(field: &str, v: f64) -> Check {
    if v.is_finite() && v > 0.0 {
        Ok(())
    } else {
        Err((field.into(), format!("must be a positive number (got {v})")))
    }
}

fn non_negative(field: &str, v: f64) -> Check {
    if v.is_finite() && v >= 0.0 {
        Ok(())
    } else {
        Err((field.into(), format!("must be zero or positive (got {v})")))
    }
}

fn fraction(field: &str, v: f64) -> Check {
    if v.is_finite() && v > 0.0 && v <= 1.0 {
        Ok(())
    } else {
        Err((field.into(), format!("must be in (0, 1] (got {v})")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn edit_distance_known_values() {
        assert_eq!(edit_distance("kitten", "sitting"), 3);
        assert_eq!(edit_distance("", "abc"), 3);
        assert_eq!(edit_distance("rate", "rate"), 0);
    }

    #[test]
    fn line_of_nested_key() {
        let t = "name: x\nworkload:\n  source:\n    kind: a\n    arrival: {kind: poisson, rate: -1}\n  rate_scale: -1\nengine:\n  rate_scale: 3\n";
        assert_eq!(line_of_key(t, "workload.rate_scale"), Some((6, 3)));
        assert_eq!(line_of_key(t, "engine.rate_scale"), Some((8, 3)));
        assert_eq!(
            line_of_key(t, "workload.source.arrival.rate"),
            Some((5, 30))
        );
        assert_eq!(line_of_key(t, "engine.missing"), Some((7, 1)));
        assert_eq!(line_of_key(t, "slo.ttft_ms"), None);
    }

    #[test]
    fn set_creates_nested_sections() {
        let mut v: serde_yaml::Value = serde_yaml::from_str("a: 1").unwrap();
        apply_set(&mut v, "b.c.d=5").unwrap();
        apply_set(&mut v, "a=hello").unwrap();
        assert_eq!(v["b"]["c"]["d"], serde_yaml::Value::from(5));
        assert_eq!(v["a"], serde_yaml::Value::from("hello"));
        assert!(apply_set(&mut v, "a.x=1").is_err());
        assert!(apply_set(&mut v, "novalue").is_err());
    }

    #[test]
    fn paths_from_the_file_resolve_against_it_and_paths_from_set_against_the_cwd() {
        let text = std::fs::read_to_string("scenarios/mooncake-conversation.yaml").unwrap();
        let base = Path::new("scenarios");
        let path = |sets: &[&str]| {
            let sets: Vec<String> = sets.iter().map(|s| s.to_string()).collect();
            let s = parse_scenario(&text, "m", base, &sets).unwrap();
            (s.workload.source.path.unwrap(), s.hardware.calibration)
        };
        let file = Path::new("scenarios/../traces/external/mooncake/conversation_trace.jsonl");
        assert_eq!(path(&[]).0, file);
        assert_eq!(path(&["workload.rate_scale=2"]).0, file);
        assert_eq!(
            path(&["workload.source.path=t.jsonl"]).0,
            Path::new("t.jsonl")
        );
        let section = "workload.source={kind: mooncake, path: u.jsonl}";
        assert_eq!(path(&[section]).0, Path::new("u.jsonl"));
        assert_eq!(path(&["workload.source.path=/a/t"]).0, Path::new("/a/t"));
        let (_, cal) = path(&["hardware.calibration=calibration/x"]);
        assert_eq!(cal.unwrap(), Path::new("calibration/x"));
    }
}
