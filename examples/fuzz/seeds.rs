//! Small hand-written seed inputs (formats with no committed sample, and small valid
//! documents the mutations can reach all of), the RAGPulse side files, and a KVAT builder.

use std::path::Path;

/// Inline seeds of a target.
pub fn inline(name: &str) -> Vec<Vec<u8>> {
    let text: &[&str] = match name {
        "scenario" => &[
            "name: tiny\nseed: 1\nworkload:\n  source:\n    kind: synthetic\n    requests: 10\nmodel:\n  preset: llama-3.1-8b\nhardware:\n  gpu: h100\n",
            "workload:\n  limit: 5\n  time_scale: 2.0\n  source:\n    kind: native\n    path: ../traces/quickstart.csv\n",
        ],
        "mooncake" => &[
            "{\"timestamp\": 0, \"input_length\": 600, \"output_length\": 5, \"hash_ids\": [1, 2]}\n{\"timestamp\": 27, \"input_length\": 1200, \"output_length\": 50, \"hash_ids\": [1, 2, 3]}\n{\"timestamp\": 2000, \"input_length\": 10, \"output_length\": 1, \"hash_ids\": []}\n",
            "{\"timestamp\": 5, \"input_length\": 513, \"output_length\": 500, \"hash_ids\": [0, 1]}\n",
        ],
        "azure" => &[
            "TIMESTAMP,ContextTokens,GeneratedTokens\n2023-11-16 18:15:46.6805900,374,44\n2023-11-16 18:15:50.9951690,396,109\n2023-11-16 18:15:51.0000000+00:00,1,1\n",
        ],
        "ragpulse" => &[
            "{\"timestamp\": \"82\", \"input_length\": 3112, \"output_length\": 192, \"hash_ids\": {\"sys_prompt\": [1], \"passages_ids\": [2, 3], \"history\": [4], \"web_search\": [], \"user_input\": [5]}, \"session_id\": \"s-1\"}\n{\"timestamp\": 93.5, \"input_length\": 900, \"output_length\": 12, \"hash_ids\": {\"sys_prompt\": [1], \"user_input\": [6]}, \"session_id\": \"s-2\"}\n",
        ],
        "native" => &[
            "arrival_s,input_tokens,output_tokens\n0.0,100,10\n0.5,200,20\n",
            "# kvsim-trace v1 hash_block_tokens=4\narrival_s,input_tokens,output_tokens,session,prefix_hashes\n0.0,10,6,7,1 2 3\n1.0,20,2,7,1 2 3 4 5\n",
        ],
        "vllm_bench" => &[
            "{\"start_times\": [10.5, 10.0, 11.0], \"input_lens\": [100, 200, 300], \"output_lens\": [10, 20, 30], \"ttfts\": [0.1, 0.2, 0.3], \"latencies\": [1.0, 2.0, 3.0], \"errors\": [\"\", \"\", \"\"]}",
            "{\"start_times\": [0, 1], \"input_lens\": [1, 2], \"output_lens\": [1, 1], \"ttfts\": [0.01, 0], \"latencies\": [0.5, 0], \"errors\": [\"\", \"timeout\"], \"completed\": 1}",
        ],
        "sharegpt" => &[
            "[{\"id\": \"a\", \"conversations\": [{\"from\": \"human\", \"value\": \"Hi there.\"}, {\"from\": \"gpt\", \"value\": \"Hello! How can I help?\"}, {\"from\": \"human\", \"value\": \"Tell me a joke.\"}, {\"from\": \"gpt\", \"value\": \"No.\"}]}]",
            "{\"id\": \"b\", \"messages\": [{\"role\": \"system\", \"content\": \"Be brief.\"}, {\"role\": \"user\", \"content\": \"2+2?\"}, {\"role\": \"assistant\", \"content\": \"4\"}]}\n{\"id\": \"c\", \"messages\": [{\"role\": \"user\", \"content\": [{\"type\": \"text\", \"text\": \"x\"}]}]}\n",
        ],
        "burstgpt" => &[
            "Timestamp,Model,Request tokens,Response tokens,Total tokens,Log Type\n5,ChatGPT,100,20,120,Conversation log\n6,GPT-4,0,0,0,API log\n7,GPT-4,30,40,70,API log\n",
        ],
        "bailian" => &[
            "{\"chat_id\": 1, \"parent_chat_id\": -1, \"timestamp\": 0.5, \"input_length\": 40, \"output_length\": 7, \"type\": \"text\", \"turn\": 1, \"hash_ids\": [1, 2, 3]}\n{\"chat_id\": 2, \"parent_chat_id\": 1, \"timestamp\": 1.5, \"input_length\": 60, \"output_length\": 2, \"type\": \"text\", \"turn\": 2, \"hash_ids\": [1, 2, 3, 4]}\n",
        ],
        "kv_cache_tester" => &[
            "{\"id\": \"t\", \"block_size\": 64, \"hash_id_scope\": \"local\", \"requests\": [{\"t\": 0.0, \"type\": \"n\", \"in\": 130, \"out\": 10, \"hash_ids\": [1, 2, 3]}, {\"t\": 2.0, \"type\": \"s\", \"in\": 200, \"out\": 5, \"hash_ids\": [1, 2, 3, 4]}, {\"t\": 3.0, \"type\": \"subagent\", \"requests\": [{\"t\": 3.5, \"type\": \"n\", \"in\": 70, \"out\": 3, \"hash_ids\": [9, 10]}]}]}",
        ],
        "paging_text" => &["a\nb\na\n\nc\nb\n", "1\n2\n3\n1\n"],
        "paging_csv" => &[
            "time,obj_id,size\n0,a,1\n1,b,1\n2.5,a,1\n",
            "0,7\n1,8\n2,7\n3,9\n",
        ],
        "paging_lcs_csv" => &[
            "timestamp,obj_id,obj_size\n0,a,1\n1,b,1\n2.5,a,1\n",
            "# -t obj-id-col=2, delimiter=\\t, obj-id-is-num=1\n0\t0x10\n1\t16\n2\t017\n",
            "# -t time-col=2, obj-id-col=1, obj-size-col=3, has-header=false\nx|1|1\ny|2|1\n",
        ],
        "selftest" => &["!boom", "fine"],
        _ => &[],
    };
    let mut out: Vec<Vec<u8>> = text.iter().map(|s| s.as_bytes().to_vec()).collect();
    if name == "kvat" {
        out.push(kvat(1, 1, 2, 2, 1, 1));
        out.push(kvat(2, 1, 1, 3, 2, 2));
    }
    if name == "paging_oracle_general" {
        out.push(oracle_general(&[
            (0, 7, 1, 2),
            (1, 8, 1, -1),
            (2, 7, 1, -1),
        ]));
        out.push(oracle_general(&[(5, u64::MAX, 1, -1), (6, 1 << 40, 1, -1)]));
    }
    out
}

/// libCacheSim oracleGeneral records: (clock time, object id, size, next access vtime).
fn oracle_general(records: &[(u32, u64, u32, i64)]) -> Vec<u8> {
    let mut b = Vec::new();
    for &(t, id, size, next) in records {
        b.extend_from_slice(&t.to_le_bytes());
        b.extend_from_slice(&id.to_le_bytes());
        b.extend_from_slice(&size.to_le_bytes());
        b.extend_from_slice(&next.to_le_bytes());
    }
    b
}

/// Files a target's reader needs beside its input (RAGPulse's segment lengths).
pub fn side_files(name: &str, dir: &Path) {
    if name != "ragpulse" {
        return;
    }
    let files = [
        (
            "1_sys_prompt.jsonl",
            "sys_prompt_id",
            &[(1u64, 512u64), (7, 0)][..],
        ),
        (
            "2_passages.jsonl",
            "passage_id",
            &[(2, 300), (3, 4294967295)][..],
        ),
        ("3_history.jsonl", "history_id", &[(4, 77)][..]),
        (
            "4_user_input.jsonl",
            "user_input_id",
            &[(5, 20), (6, 1)][..],
        ),
        ("5_web_search.jsonl", "web_search_id", &[(8, 1000)][..]),
    ];
    for (file, field, rows) in files {
        let text: String = rows
            .iter()
            .map(|(id, n)| format!("{{\"{field}\": {id}, \"token_length\": {n}}}\n"))
            .collect();
        std::fs::write(dir.join(file), text).expect("write a RAGPulse side file");
    }
}

/// A valid KVAT trace (format in `calibration/attention/FORMAT.md`): one recorded layer,
/// `heads` query heads over `kv_heads` KV heads of `head_dim`, `prompt` tokens of which
/// the last `window` are the observation window, `steps` decode steps; attention rows are
/// uniform over their causal context.
pub fn kvat(
    heads: u32,
    kv_heads: u32,
    head_dim: u32,
    prompt: u32,
    window: u32,
    steps: u32,
) -> Vec<u8> {
    let mut b = b"KVSIMATT".to_vec();
    let (name, note) = (b"m".as_slice(), b"fact".as_slice());
    let header = [
        1,
        2,
        1,
        heads,
        kv_heads,
        head_dim,
        prompt,
        steps,
        window,
        0,
        1,
        name.len() as u32,
    ];
    for v in header {
        b.extend_from_slice(&v.to_le_bytes());
    }
    b.extend_from_slice(name);
    b.extend_from_slice(&(note.len() as u32).to_le_bytes());
    b.extend_from_slice(note);
    b.extend_from_slice(&1u32.to_le_bytes()); // recorded layer index
    let (h, kv, hd, p, w, d) = (
        heads as usize,
        kv_heads as usize,
        head_dim as usize,
        prompt as usize,
        window as usize,
        steps as usize,
    );
    let t = p + d;
    let half = 0x3800u16; // 0.5 in f16
    let f16s = |b: &mut Vec<u8>, n: usize, v: u16| {
        for _ in 0..n {
            b.extend_from_slice(&v.to_le_bytes());
        }
    };
    f16s(&mut b, 2 * kv * t * hd, half); // keys, values
    f16s(&mut b, h * w * hd + h * d * hd, half); // q_window, q_decode
    f16s(&mut b, h * w * p, half); // attn_window
    for _ in 0..h {
        for s in 0..d {
            let ctx = p + s + 1;
            for j in 0..t {
                let x = if j < ctx { 1.0 / ctx as f32 } else { 0.0 };
                b.extend_from_slice(&f32_to_f16(x).to_le_bytes());
            }
        }
    }
    for _ in 0..h * p {
        b.extend_from_slice(&1.0f32.to_le_bytes()); // colsum
    }
    b
}

/// f32 to f16 for values in [0, 1] (normal range; enough for the builder).
fn f32_to_f16(x: f32) -> u16 {
    if x == 0.0 {
        return 0;
    }
    let bits = x.to_bits();
    let exp = ((bits >> 23) & 0xff) as i32 - 127 + 15;
    let mant = (bits >> 13) & 0x3ff;
    ((exp as u32) << 10 | mant) as u16
}
