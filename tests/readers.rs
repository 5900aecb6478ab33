//! The trace readers on their samples (`traces/samples/`): request counts, token totals,
//! sessions and the prefix-reuse bound, each computed here from the sample itself with
//! plain parsing, then compared with `kvsim trace stats` and `kvsim run`; and bad rows,
//! which must be refused with their file and row and exit code 2.

mod common;
use common::*;
use serde_json::Value;
use std::collections::{HashMap, HashSet};
use std::path::Path;

/// A prompt as the test sees it: one identity and token count per segment, then the
/// prompt's length (tokens past the segments are unique).
struct Prompt {
    segments: Vec<(String, u32)>,
    input: u32,
    /// The answer, when a later prompt of the conversation repeats it: seen once the
    /// request has run (`kvsim trace stats` counts an identified answer as seen).
    answer: Option<(String, u32)>,
}

/// Tokens of prompts whose segment chain (and that segment's length) was seen in an
/// earlier prompt, walking each prompt until its first unseen segment: the definition of
/// `prefix_reuse_bound` in `src/workload/stats.rs`. Returns (input tokens, reusable).
fn reuse_bound(prompts: &[Prompt]) -> (u64, u64) {
    let mut seen: HashSet<(Vec<String>, u32)> = HashSet::new();
    let (mut input, mut reusable) = (0u64, 0u64);
    for p in prompts {
        input += p.input as u64;
        let mut chain = Vec::new();
        let mut left = p.input;
        let mut hit = true;
        for (id, tokens) in &p.segments {
            let len = (*tokens).min(left);
            if len == 0 {
                break;
            }
            left -= len;
            chain.push(id.clone());
            let key = (chain.clone(), len);
            if hit && seen.contains(&key) {
                reusable += len as u64;
            } else {
                hit = false;
            }
            seen.insert(key);
        }
        if let Some((id, tokens)) = &p.answer {
            chain.push(id.clone());
            seen.insert((chain, *tokens));
        }
    }
    (input, reusable)
}

/// Blocks of `ids` over a prompt of `input` tokens, `block` tokens each, named in `scope`.
fn blocks(scope: &str, ids: &[u64], input: u32, block: u32) -> Prompt {
    let segments = ids
        .iter()
        .enumerate()
        .map(|(j, id)| {
            let start = j as u32 * block;
            (
                format!("{scope}/{id}"),
                block.min(input.saturating_sub(start)),
            )
        })
        .collect();
    Prompt {
        segments,
        input,
        answer: None,
    }
}

fn stats(args: &[&str]) -> Value {
    let mut all = vec!["trace", "stats"];
    all.extend_from_slice(args);
    all.push("--json");
    json(&run_ok(&all))
}

fn run_json(args: &[&str]) -> Value {
    let mut all = vec!["run"];
    all.extend_from_slice(args);
    all.extend_from_slice(&["--json", "--no-files"]);
    json(&run_ok(&all))
}

/// What the trace says, computed here.
struct Expected {
    requests: u64,
    output: u64,
    sessions: u64,
    prompts: Vec<Prompt>,
}

/// Compare `trace stats` and `kvsim run` on a scenario with the expected figures.
fn check(scenario: &str, sets: &[&str], e: &Expected) {
    let mut args = vec![scenario];
    for s in sets {
        args.extend_from_slice(&["--set", s]);
    }
    let s = stats(&args);
    let (input, reusable) = reuse_bound(&e.prompts);
    assert_eq!(s["requests"], e.requests, "{scenario}");
    assert_eq!(s["sessions"], e.sessions, "{scenario}");
    assert_eq!(s["bound"]["input_tokens"], input, "{scenario}");
    assert_eq!(s["bound"]["reusable_tokens"], reusable, "{scenario}");
    let r = run_json(&args);
    assert_eq!(r["requests_arrived"], e.requests, "{scenario}");
    assert_eq!(r["expected_output_tokens"], e.output, "{scenario}");
    assert_eq!(r["requests_completed"], e.requests, "{scenario}");
}

fn sample(name: &str) -> std::path::PathBuf {
    root().join("traces/samples").join(name)
}

fn read_json(p: &Path) -> Value {
    serde_json::from_str(&std::fs::read_to_string(p).unwrap()).unwrap()
}

/// The ShareGPT conversations of a sample: an array, or one object per line.
fn conversations(p: &Path) -> Vec<Value> {
    let text = std::fs::read_to_string(p).unwrap();
    if text.trim_start().starts_with('[') {
        serde_json::from_str::<Vec<Value>>(&text).unwrap()
    } else {
        text.lines()
            .filter(|l| !l.trim().is_empty())
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    }
}

/// ShareGPT as `docs/traces.md` says it is replayed: each message costs its cl100k_base
/// tokens plus 3; each assistant message after the first message is a request whose prompt
/// is every earlier message plus the 3-token reply header.
fn sharegpt_expected(p: &Path) -> Expected {
    let bpe = tiktoken_rs::cl100k_base().unwrap();
    let h = 3u32;
    let mut e = Expected {
        requests: 0,
        output: 0,
        sessions: 0,
        prompts: Vec::new(),
    };
    for c in conversations(p) {
        let msgs = c
            .get("conversations")
            .or(c.get("messages"))
            .unwrap()
            .as_array()
            .unwrap();
        let mut history: Vec<(String, u32)> = Vec::new();
        let mut requests = 0;
        for (i, m) in msgs.iter().enumerate() {
            let from = m.get("from").or(m.get("role")).unwrap().as_str().unwrap();
            let text = m
                .get("value")
                .or(m.get("content"))
                .unwrap()
                .as_str()
                .unwrap();
            let role = match from {
                "human" | "user" => "user",
                "gpt" | "chatgpt" | "assistant" => "assistant",
                "system" => "system",
                other => panic!("role {other}"),
            };
            let n = bpe.encode_ordinary(text).len() as u32;
            let id = format!("{role}:{text}");
            if role == "assistant" && i > 0 {
                history.push(("reply header".into(), h));
                if n > 0 {
                    let input = history.iter().map(|(_, t)| t).sum();
                    // The answer of the conversation's previous request is repeated here.
                    if let Some(prev) = e.prompts.last_mut().filter(|_| requests > 0) {
                        let (id, n) = history[prev.segments.len()].clone();
                        prev.answer = Some((id, n));
                    }
                    e.prompts.push(Prompt {
                        segments: history.clone(),
                        input,
                        answer: None,
                    });
                    e.output += n as u64;
                    requests += 1;
                }
                if n > 0 {
                    history.push((id, n));
                }
            } else {
                history.push((id, h + n));
            }
        }
        e.requests += requests;
        e.sessions += (requests > 0) as u64;
    }
    e
}

#[test]
fn sharegpt_array_and_lines_replay_every_turn() {
    let e = sharegpt_expected(&sample("sharegpt.json"));
    // The sample's shape: 41 conversations, of which some make no request.
    assert!(
        e.requests > 80 && e.sessions == 39,
        "{} {}",
        e.requests,
        e.sessions
    );
    check("scenarios/sharegpt-sample.yaml", &[], &e);
    let lines = sample("sharegpt.jsonl");
    let set = format!("workload.source.path={}", lines.display());
    let e = sharegpt_expected(&lines);
    assert_eq!(e.sessions, 15);
    check("scenarios/sharegpt-sample.yaml", &[&set], &e);
}

#[test]
fn sharegpt_turns_arrive_in_session_order_after_think_times() {
    // Constant starts 100 s apart, no think time: each conversation's turns come together,
    // in order, at its start.
    let trace = temp_dir("sharegpt-order").join("t.csv");
    let out = run_ok(&[
        "trace",
        "synth",
        "scenarios/sharegpt-sample.yaml",
        "--set",
        "workload.source.arrival={kind: constant, rate: 0.01}",
        "--set",
        "workload.source.think_time_s=0",
        "--out",
        trace.to_str().unwrap(),
    ]);
    assert!(out.is_empty());
    let rows = csv_rows_after_comment(&trace);
    let times: Vec<f64> = rows
        .iter()
        .map(|r| r["arrival_s"].parse().unwrap())
        .collect();
    assert!(
        times.iter().all(|t| (t / 100.0).fract() == 0.0),
        "{times:?}"
    );
    assert!(times.windows(2).all(|w| w[0] <= w[1]));
    let e = sharegpt_expected(&sample("sharegpt.json"));
    assert_eq!(rows.len() as u64, e.requests);
    // Prompts in replay order are the test's prompts in file order.
    let inputs: Vec<u32> = rows
        .iter()
        .map(|r| r["input_tokens"].parse().unwrap())
        .collect();
    let want: Vec<u32> = e.prompts.iter().map(|p| p.input).collect();
    assert_eq!(inputs, want);
}

#[test]
fn sharegpt_counts_tokens_with_a_tokenizer_json_the_user_names() {
    // A word-level vocabulary (whitespace and punctuation split, one token a piece), with a
    // BOS that its post-processor adds and the count leaves out.
    let dir = temp_dir("sharegpt-tokenizer-file");
    std::fs::copy(
        root().join("tests/data/word-level-tokenizer.json"),
        dir.join("tokenizer.json"),
    )
    .unwrap();
    std::fs::write(
        dir.join("chats.json"),
        r#"[{"id": "a", "conversations": [
            {"from": "human", "value": "hello world"},
            {"from": "gpt", "value": "hello, world!"},
            {"from": "human", "value": "again"},
            {"from": "gpt", "value": "world"}]}]"#,
    )
    .unwrap();
    let scenario = dir.join("chat.yaml");
    let yaml = "name: chat\nworkload:\n  source:\n    kind: sharegpt\n    path: chats.json\n    \
                arrival: {kind: constant, rate: 1}\n    think_time_s: 0\n    \
                tokenizer_file: tokenizer.json\nmodel:\n  preset: llama-3.1-8b\n";
    std::fs::write(&scenario, yaml).unwrap();
    let trace = dir.join("t.csv");
    let synth = |extra: &[&str]| {
        let mut a = vec!["trace", "synth", scenario.to_str().unwrap()];
        a.extend_from_slice(extra);
        a.extend(["--out", trace.to_str().unwrap()]);
        run(&a)
    };
    let o = synth(&[]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let rows = csv_rows_after_comment(&trace);
    let got: Vec<(u32, u32)> = rows
        .iter()
        .map(|r| {
            (
                r["input_tokens"].parse().unwrap(),
                r["output_tokens"].parse().unwrap(),
            )
        })
        .collect();
    // Turn 1: (3 + 2) + 3 in, 4 out. Turn 2: 8 + 4 + (3 + 1) + 3 in, 1 out.
    assert_eq!(got, vec![(8, 4), (19, 1)]);
    // Both a bundled vocabulary and a file: refused, naming the field.
    let o = synth(&["--set", "workload.source.tokenizer=cl100k_base"]);
    assert_eq!(o.status.code(), Some(2));
    let e = String::from_utf8_lossy(&o.stderr);
    assert!(e.contains("tokenizer_file"), "{e}");
    // A missing file: refused, naming it.
    std::fs::remove_file(dir.join("tokenizer.json")).unwrap();
    let o = synth(&[]);
    assert_eq!(o.status.code(), Some(2));
    let e = String::from_utf8_lossy(&o.stderr);
    assert!(e.contains("tokenizer.json"), "{e}");
}

/// Rows of a native trace (its first line is a comment).
fn csv_rows_after_comment(p: &Path) -> Vec<HashMap<String, String>> {
    let text = std::fs::read_to_string(p).unwrap();
    let body: String = text.lines().skip(1).map(|l| format!("{l}\n")).collect();
    let q = p.with_extension("body.csv");
    std::fs::write(&q, body).unwrap();
    csv_rows(&q)
}

#[test]
fn burstgpt_leaves_out_failed_requests_and_says_how_many() {
    let path = sample("burstgpt.csv");
    let mut rdr = csv::Reader::from_path(&path).unwrap();
    let (mut kept, mut failed, mut input, mut output) = (0u64, 0u64, 0u64, 0u64);
    let mut times = Vec::new();
    for rec in rdr.records() {
        let rec = rec.unwrap();
        let resp: u64 = rec[3].parse().unwrap();
        if resp == 0 {
            failed += 1;
            continue;
        }
        kept += 1;
        input += rec[2].parse::<u64>().unwrap();
        output += resp;
        times.push(rec[0].parse::<f64>().unwrap());
    }
    assert!(failed > 0);
    let o = run(&[
        "trace",
        "stats",
        path.to_str().unwrap(),
        "--format",
        "burstgpt",
        "--json",
    ]);
    assert!(o.status.success());
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert!(
        stderr.contains(&format!(
            "left out {failed} failed requests (Response tokens 0)"
        )),
        "{stderr}"
    );
    let s = json(&String::from_utf8(o.stdout).unwrap());
    assert_eq!(s["requests"], kept);
    assert_eq!(s["bound"]["input_tokens"], input);
    assert_eq!(s["prefix_reuse_bound"], 0.0);
    let span = times.iter().cloned().fold(f64::MIN, f64::max)
        - times.iter().cloned().fold(f64::MAX, f64::min);
    assert!((s["duration_s"].as_f64().unwrap() - span).abs() < 1e-9);
    let r = run_json(&["scenarios/burstgpt-sample.yaml"]);
    assert_eq!(r["expected_output_tokens"], output);
    // The trace clock is kept: the first request arrives 9 hours into the first day.
    let first = times.iter().cloned().fold(f64::MAX, f64::min);
    assert!(first >= 32_400.0);
    let out = temp_dir("burstgpt-clock").join("t.csv");
    run_ok(&[
        "trace",
        "synth",
        "scenarios/burstgpt-sample.yaml",
        "--out",
        out.to_str().unwrap(),
    ]);
    let rows = csv_rows_after_comment(&out);
    assert_eq!(rows[0]["arrival_s"].parse::<f64>().unwrap(), first);
}

/// Seconds since midnight of an Azure 2024 timestamp of the sample (one day, UTC).
fn azure_time_of_day(ts: &str) -> f64 {
    let t = ts.split(' ').nth(1).unwrap().trim_end_matches("+00:00");
    let p: Vec<f64> = t.split(':').map(|x| x.parse().unwrap()).collect();
    p[0] * 3600.0 + p[1] * 60.0 + p[2]
}

#[test]
fn azure_2024_timestamps_and_rows_before_the_first() {
    let path = sample("azure2024.csv");
    let mut rdr = csv::Reader::from_path(&path).unwrap();
    let (mut n, mut input, mut output, mut times) = (0u64, 0u64, 0u64, Vec::new());
    for rec in rdr.records() {
        let rec = rec.unwrap();
        n += 1;
        input += rec[1].parse::<u64>().unwrap();
        output += rec[2].parse::<u64>().unwrap();
        times.push(azure_time_of_day(&rec[0]));
    }
    // The sample's first row is not its earliest.
    let earliest = times.iter().cloned().fold(f64::MAX, f64::min);
    assert!(times[0] > earliest);
    let s = stats(&["scenarios/azure2024-sample.yaml"]);
    assert_eq!(s["requests"], n);
    assert_eq!(s["bound"]["input_tokens"], input);
    let span = times.iter().cloned().fold(f64::MIN, f64::max) - earliest;
    assert!((s["duration_s"].as_f64().unwrap() - span).abs() < 1e-6);
    let r = run_json(&["scenarios/azure2024-sample.yaml"]);
    assert_eq!(r["expected_output_tokens"], output);
    assert_eq!(r["requests_completed"], n);
}

#[test]
fn azure_row_earlier_than_the_reorder_window_can_fix_is_an_error() {
    let dir = temp_dir("azure-early");
    let mut text = String::from("TIMESTAMP,ContextTokens,GeneratedTokens\n");
    for i in 0..5000 {
        let (h, m, s) = (1 + i / 3600, i / 60 % 60, i % 60);
        text.push_str(&format!(
            "2024-05-10 {h:02}:{m:02}:{s:02}.000000+00:00,10,2\n"
        ));
    }
    text.push_str("2024-05-10 00:59:59.500000+00:00,10,2\n");
    let p = dir.join("a.csv");
    std::fs::write(&p, text).unwrap();
    let o = run(&["trace", "stats", p.to_str().unwrap(), "--format", "azure"]);
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(2), "{stderr}");
    // Header on line 1, 5,000 rows, then the early one on line 5,002.
    assert!(
        stderr.contains("a.csv:5002: arrives 0.500000 s before the trace's first arrival"),
        "{stderr}"
    );
}

#[test]
fn bailian_sessions_follow_parent_chats_and_blocks_are_16_tokens() {
    let path = sample("bailian.jsonl");
    let text = std::fs::read_to_string(&path).unwrap();
    let mut rows: Vec<Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    rows.sort_by(|a, b| {
        a["timestamp"]
            .as_f64()
            .unwrap()
            .total_cmp(&b["timestamp"].as_f64().unwrap())
    });
    let mut root: HashMap<i64, i64> = HashMap::new();
    let mut e = Expected {
        requests: rows.len() as u64,
        output: 0,
        sessions: 0,
        prompts: Vec::new(),
    };
    for r in &rows {
        let (chat, parent) = (
            r["chat_id"].as_i64().unwrap(),
            r["parent_chat_id"].as_i64().unwrap(),
        );
        let rt = if parent == -1 { chat } else { root[&parent] };
        root.insert(chat, rt);
        e.output += r["output_length"].as_u64().unwrap();
        let ids: Vec<u64> = r["hash_ids"]
            .as_array()
            .unwrap()
            .iter()
            .map(|x| x.as_u64().unwrap())
            .collect();
        e.prompts.push(blocks(
            "b",
            &ids,
            r["input_length"].as_u64().unwrap() as u32,
            16,
        ));
    }
    e.sessions = root.values().collect::<HashSet<_>>().len() as u64;
    assert!(e.sessions > 10 && e.sessions < e.requests);
    check("scenarios/bailian-sample.yaml", &[], &e);
    // Read as Mooncake (as the docs used to say), the float seconds are taken as
    // milliseconds: the replay would be 1000 times too short.
    let s = stats(&[path.to_str().unwrap(), "--format", "bailian"]);
    let m = stats(&[
        "scenarios/bailian-sample.yaml",
        "--set",
        "workload.source={kind: mooncake, block_tokens: 16}",
        "--set",
        &format!("workload.source.path={}", path.display()),
    ]);
    let ratio = s["duration_s"].as_f64().unwrap() / m["duration_s"].as_f64().unwrap();
    assert!((ratio - 1000.0).abs() < 1.0, "{ratio}");
}

/// The requests of one kv-cache-tester file, flattened: (absolute t, prompt, output,
/// session).
fn kv_requests(
    entries: &[Value],
    start: f64,
    scope: &str,
    session: String,
    out: &mut Vec<(f64, Prompt, u64, String)>,
) {
    let mut subs = 0;
    for e in entries {
        let t = start + e["t"].as_f64().unwrap_or(0.0);
        if e["type"] == "subagent" {
            subs += 1;
            kv_requests(
                e["requests"].as_array().unwrap(),
                t,
                scope,
                format!("{session}/{subs}"),
                out,
            );
            continue;
        }
        let ids: Vec<u64> = e["hash_ids"]
            .as_array()
            .unwrap()
            .iter()
            .map(|x| x.as_u64().unwrap())
            .collect();
        let input = e["in"].as_u64().unwrap() as u32;
        out.push((
            t,
            blocks(scope, &ids, input, 64),
            e["out"].as_u64().unwrap(),
            session.clone(),
        ));
    }
}

#[test]
fn kv_cache_tester_conversations_subagents_and_scopes() {
    let dir = sample("kv-cache-tester");
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    files.sort();
    let mut all = Vec::new();
    for (i, f) in files.iter().enumerate() {
        let v = read_json(f);
        assert_eq!(v["block_size"], 64);
        let scope = if v["hash_id_scope"] == "global" {
            "global".to_string()
        } else {
            format!("file{i}")
        };
        kv_requests(
            v["requests"].as_array().unwrap(),
            0.0,
            &scope,
            format!("file{i}"),
            &mut all,
        );
    }
    let sessions: HashSet<&String> = all.iter().map(|r| &r.3).collect();
    let e = Expected {
        requests: all.len() as u64,
        output: all.iter().map(|r| r.2).sum(),
        sessions: sessions.len() as u64,
        prompts: all.into_iter().map(|r| r.1).collect(),
    };
    // Four files, one with a sub-agent.
    assert_eq!(e.sessions, 5);
    check("scenarios/kv-cache-tester-sample.yaml", &[], &e);
    // The two global-scope files share their first 200 blocks: without the scope they
    // would not.
    let (_, reusable) = reuse_bound(&e.prompts);
    assert!(reusable > 0);
}

/// `kvsim trace stats` on `text` in `file` with `format` fails with exit code 2 and a
/// message containing `expect`.
fn refused(name: &str, file: &str, text: &str, format: &str, expect: &str) {
    let dir = temp_dir(name);
    let p = dir.join(file);
    std::fs::write(&p, text).unwrap();
    let o = run(&["trace", "stats", p.to_str().unwrap(), "--format", format]);
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(2), "{name}: {stderr}");
    assert!(
        stderr.contains(&format!("{file}{expect}")),
        "{name}: {stderr}"
    );
}

#[test]
fn malformed_rows_name_file_and_row() {
    refused(
        "bg",
        "b.csv",
        "Timestamp,Model,Request tokens,Response tokens,Total tokens,Log Type\n1,ChatGPT,5,5,10,API log\n2,ChatGPT,-4,5,1,API log\n",
        "burstgpt",
        ":3: Request tokens `-4` is not a non-negative integer",
    );
    refused(
        "bl",
        "q.jsonl",
        "{\"chat_id\": 1, \"parent_chat_id\": -1, \"timestamp\": 0.5, \"input_length\": 16, \"output_length\": 1, \"hash_ids\": [1]}\n{\"chat_id\": 2, \"timestamp\": \"soon\"}\n",
        "bailian",
        ":2: malformed Bailian row",
    );
    refused(
        "kct",
        "t.json",
        r#"{"block_size": 64, "requests": [{"t": 0, "type": "n", "in": 100, "out": 5, "hash_ids": [1]}, {"t": 1, "type": "n", "out": 5}]}"#,
        "kv-cache-tester",
        ": requests[1]: a request needs `in` and `out`",
    );
    refused(
        "mc",
        "m.jsonl",
        "{\"timestamp\": 0, \"input_length\": 1000, \"output_length\": 5, \"hash_ids\": [1, 2]}\n{\"timestamp\": 5, \"input_length\": 1000, \"output_length\": 5, \"hash_ids\": [1, 2, 3]}\n",
        "mooncake",
        ":2: 3 hash ids, but 1000 input tokens hold at most 2 blocks of 512",
    );
    // A ShareGPT conversation with an unknown role, through a scenario.
    let dir = temp_dir("sg-bad");
    std::fs::write(
        dir.join("s.json"),
        "[{\"conversations\": [{\"from\": \"human\", \"value\": \"hi\"}, {\"from\": \"gpt\", \"value\": \"yo\"}]},\n {\"conversations\": [{\"from\": \"robot\", \"value\": \"x\"}]}]",
    )
    .unwrap();
    let set = format!("workload.source.path={}", dir.join("s.json").display());
    let o = run(&[
        "trace",
        "stats",
        "scenarios/sharegpt-sample.yaml",
        "--set",
        &set,
    ]);
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("s.json:2: conversation 2: message 0: role `robot`"),
        "{stderr}"
    );
}

#[test]
fn absurd_token_counts_are_refused_before_allocating() {
    // 4,294,967,295 input tokens would be 268 million 16-token block hashes.
    let trace = "arrival_s,input_tokens,output_tokens\n0,100,10\n1,4294967295,10\n";
    let dir = temp_dir("huge");
    let p = dir.join("n.csv");
    std::fs::write(&p, trace).unwrap();
    for args in [
        vec!["trace", "stats", p.to_str().unwrap(), "--format", "native"],
        vec![
            "paging",
            p.to_str().unwrap(),
            "--format",
            "native",
            "-k",
            "10",
        ],
    ] {
        let o = run(&args);
        let stderr = String::from_utf8_lossy(&o.stderr);
        assert_eq!(o.status.code(), Some(2), "{stderr}");
        assert!(
            stderr.contains(
                "n.csv:3: 4294967295 input + 10 output tokens exceed the limit of 16777216"
            ),
            "{stderr}"
        );
    }
    refused(
        "huge-azure",
        "a.csv",
        "TIMESTAMP,ContextTokens,GeneratedTokens\n2024-05-10 00:00:00.000001+00:00,16777216,1\n",
        "azure",
        ":2: 16777216 input + 1 output tokens exceed",
    );
}
