#!/usr/bin/env python3
"""Write the small sample traces under traces/samples/ (python3 stdlib only, fixed seeds).

Each sample is made by this script in the exact format of a public trace; no public data is
copied. Run from the repository root:  python3 traces/make_samples.py
"""

import csv
import json
import os
import random

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "samples")

WORDS = (
    "the cache model token block prefix request server batch memory page queue time "
    "latency answer question code python rust function value list string file error "
    "system user help explain write short long simple example test data table chart "
    "sort search tree graph node edge path cost fast slow better because when where how "
    "what why please thanks hello world good morning evening plan trip city food music"
).split()


def sentence(rng, lo, hi):
    n = rng.randint(lo, hi)
    return " ".join(rng.choice(WORDS) for _ in range(n)).capitalize() + "."


def text(rng, lo, hi):
    return " ".join(sentence(rng, 4, 14) for _ in range(rng.randint(lo, hi)))


def sharegpt(rng):
    """ShareGPT_V3-style array: {id, conversations: [{from, value}]}, with the cases the
    reader must handle: system prompts, shared first questions, a trailing question without
    an answer, a leading gpt message, an empty answer, role aliases, a conversation with a
    single message."""
    shared_system = "You are a helpful assistant. " + text(rng, 2, 3)
    shared_first = ["hello", "Explain the cache model please.", "Write a short python example."]
    convs = []
    for i in range(40):
        msgs = []
        if i % 5 == 0:
            msgs.append({"from": "system", "value": shared_system})
        turns = rng.randint(1, 5)
        for k in range(turns):
            q = rng.choice(shared_first) if k == 0 and i % 3 == 0 else text(rng, 1, 3)
            msgs.append({"from": "human", "value": q})
            a = text(rng, 1, 6)
            msgs.append({"from": "chatgpt" if i == 7 else "gpt", "value": a})
        if i % 4 == 1:
            msgs.append({"from": "human", "value": text(rng, 1, 2)})  # no reply in the data
        if i == 9:
            msgs.insert(0, {"from": "gpt", "value": "Hi! How can I help?"})
        if i == 11:
            msgs[-1]["value"] = ""  # an empty answer
        convs.append({"id": "%06x_%d" % (rng.getrandbits(24), i % 2), "conversations": msgs})
    convs.append({"id": "single", "conversations": [{"from": "human", "value": "hello"}]})
    with open(os.path.join(OUT, "sharegpt.json"), "w") as f:
        json.dump(convs, f, indent=1)
        f.write("\n")


def sharegpt_lines(rng):
    """JSON lines in the `messages: [{role, content}]` form."""
    with open(os.path.join(OUT, "sharegpt.jsonl"), "w") as f:
        for i in range(15):
            msgs = [{"role": "system", "content": "Answer briefly."}]
            for _ in range(rng.randint(1, 4)):
                msgs.append({"role": "user", "content": text(rng, 1, 3)})
                msgs.append({"role": "assistant", "content": text(rng, 1, 4)})
            f.write(json.dumps({"id": "line-%d" % i, "messages": msgs}) + "\n")


def burstgpt(rng):
    """BurstGPT_1.csv columns; integer seconds from the first day's midnight; some failed
    requests (Response tokens 0)."""
    t = 3600 * 9
    rows = []
    for i in range(160):
        t += rng.choice([0, 1, 1, 2, 3, 5, 8, 13])
        model = rng.choice(["ChatGPT", "ChatGPT", "GPT-4"])
        log = rng.choice(["Conversation log", "API log"])
        req = int(rng.lognormvariate(6.0, 1.0)) + 1
        resp = 0 if i % 19 == 7 else int(rng.lognormvariate(5.0, 0.8)) + 1
        rows.append([t, model, req, resp, req + resp, log])
    with open(os.path.join(OUT, "burstgpt.csv"), "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["Timestamp", "Model", "Request tokens", "Response tokens", "Total tokens",
                    "Log Type"])
        w.writerows(rows)


def azure2024(rng):
    """AzureLLMInferenceTrace_*_1week.csv: TIMESTAMP with 6 fractional digits and +00:00;
    a few rows earlier than the first row, within the reorder window."""
    us = 0
    rows = []
    for i in range(120):
        us += rng.randint(1, 900_000)
        rows.append([us, rng.randint(20, 6000), rng.randint(1, 700)])
    # Rows 2 and 5 swap with the first: the earliest is not the first row.
    rows[0], rows[2] = rows[2], rows[0]
    rows[3], rows[5] = rows[5], rows[3]
    with open(os.path.join(OUT, "azure2024.csv"), "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["TIMESTAMP", "ContextTokens", "GeneratedTokens"])
        for us, ctx, gen in rows:
            s, frac = divmod(us, 1_000_000)
            h, rem = divmod(s, 3600)
            m, sec = divmod(rem, 60)
            ts = "2024-05-10 %02d:%02d:%02d.%06d+00:00" % (h, m, sec, frac)
            w.writerow([ts, ctx, gen])


def bailian(rng):
    """qwen_traceA_blksz_16.jsonl: chats with parent_chat_id chains; hash_ids per 16-token
    block (ceil); each turn repeats the previous turn's full input blocks; roots share system
    prompt blocks per type."""
    next_id = [1]

    def new_ids(n):
        ids = list(range(next_id[0], next_id[0] + n))
        next_id[0] += n
        return ids

    system = {k: new_ids(rng.randint(3, 12)) for k in ["text", "search", "image", "file"]}
    rows = []
    chat = 100
    t = 0.0
    for s in range(40):
        t += rng.expovariate(1.0)
        kind = rng.choice(["text", "text", "search", "image", "file"])
        parent = -1
        ids = list(system[kind])
        length = len(ids) * 16
        tt = t
        prev_out = 0
        for turn in range(1, rng.randint(1, 6) + 1):
            user = rng.randint(5, 400)
            if turn > 1:
                full = length // 16
                ids = ids[:full]
                length = full * 16 + prev_out + user
            else:
                length += user
            ids = ids + new_ids(-(-length // 16) - len(ids))
            out = rng.randint(1, 300)
            chat += 1
            rows.append({"chat_id": chat, "parent_chat_id": parent, "timestamp": round(tt, 3),
                         "input_length": length, "output_length": out, "type": kind,
                         "turn": turn, "hash_ids": ids})
            parent, prev_out = chat, out
            tt += rng.uniform(2.0, 60.0)
    rows.sort(key=lambda r: r["timestamp"])
    with open(os.path.join(OUT, "bailian.jsonl"), "w") as f:
        for r in rows:
            f.write(json.dumps(r) + "\n")


def kv_cache_tester(rng):
    """traces/trace_NNNN.json of callanjfox/kv-cache-tester: 64-token blocks, one hash id per
    full block; a sub-agent; a context pull-back (compaction); two files with global scope
    that share their first blocks (tool definitions and system prompt)."""
    d = os.path.join(OUT, "kv-cache-tester")
    os.makedirs(d, exist_ok=True)
    shared = list(range(1, 201))  # 200 blocks = 12,800 tokens, the same in both global files
    for n in range(1, 5):
        glob = n >= 3
        next_id = [100_000 * n]

        def new_ids(k):
            ids = list(range(next_id[0], next_id[0] + k))
            next_id[0] += k
            return ids

        def agent(count, start_in, prefix):
            reqs, ids, length, t, out = [], [], start_in, 0.0, 0
            for i in range(count):
                if i == 0:
                    ids = prefix + new_ids(length // 64 - len(prefix))
                elif i == count // 2 and n == 1:
                    length = length // 3  # a pull-back: most of the context replaced
                    ids = ids[:2] + new_ids(length // 64 - 2)
                else:
                    length += out + rng.randint(20, 3000)
                    ids = ids + new_ids(length // 64 - len(ids))
                out = rng.randint(20, 800)
                reqs.append({"t": round(t, 3), "type": rng.choice(["s", "n"]),
                             "model": "claude-sonnet-4-20250514", "in": length, "out": out,
                             "hash_ids": ids, "input_types": ["tool_result"],
                             "output_types": ["tool_use"], "stop": "tool_use",
                             "api_time": round(rng.uniform(1, 9), 2), "think_time": 0.0})
                t += rng.uniform(2, 30)
            return reqs

        requests = agent(rng.randint(8, 14), rng.randint(13000, 20000), shared if glob else [])
        if n == 2:
            sub = {"t": requests[3]["t"] + 1.5, "type": "subagent", "agent_id": "agent_001",
                   "subagent_type": "Explore", "requests": agent(5, 8000, []),
                   "tool_tokens": 7771, "system_tokens": 952}
            requests.insert(4, sub)
        trace = {"id": "trace_%04d" % n, "models": ["claude-sonnet-4-20250514"],
                 "block_size": 64, "hash_id_scope": "global" if glob else "local",
                 "tool_tokens": 12000, "system_tokens": 2900, "requests": requests}
        with open(os.path.join(d, "trace_%04d.json" % n), "w") as f:
            json.dump(trace, f)
            f.write("\n")


def main():
    os.makedirs(OUT, exist_ok=True)
    sharegpt(random.Random(1))
    sharegpt_lines(random.Random(2))
    burstgpt(random.Random(3))
    azure2024(random.Random(4))
    bailian(random.Random(5))
    kv_cache_tester(random.Random(6))


if __name__ == "__main__":
    main()
