#!/usr/bin/env python3
"""Write kvsim's own vLLM conformance cases (synthetic traces, no data from elsewhere) for
rules the shared kit does not exercise. Each case gets trace.jsonl (Mooncake format, 512-token
hash blocks), scenario.yaml, case.json and, for online arrivals, arrivals.txt. vLLM's runs are
then made with the shared kit's driver (see README.md here):

    python3 tests/conformance/make_cases.py
    D=../shared/conformance/vllm-0.33.0/driver/drive_vllm.py   # VENV: pip install vllm==0.33.0
    C=tests/conformance/cases
    VENV/bin/python $D $C/L1 --arrivals $C/L1/arrivals.txt
    VENV/bin/python $D $C/L1 --arrivals $C/L1/arrivals.txt --async --out vllm_async
    VENV/bin/python $D $C/H1
    VENV/bin/python $D $C/H1 --async --out vllm_async
    VENV/bin/python $D $C/W1
    VENV/bin/python $D $C/W1 --async --out vllm_async
    gzip -f $C/*/vllm*/vllm_sched.jsonl

Rerunning them reproduces the committed files (vLLM 0.33.0, torch 2.14.0, CPU only).

Cases:
  L1  lone requests (arrivals spaced so each runs alone) under long_prefill_token_threshold 512:
      vLLM lifts the cap when running + waiting <= 1; bursts and overlaps where it applies.
  W1  long prompts on a small cache with a watermark: a request runs alone while the next
      one's whole prompt fits only without the watermark; with asynchronous scheduling the
      lone request, its last token in flight, is running but not scheduled, and vLLM keeps
      the watermark (`has_scheduled_reqs=bool(self.running)`).
  H1  shared prefixes computed concurrently in small chunks, repeated whole prompts (a whole-
      prompt hit recomputes its last block), and a cache small enough to evict and preempt:
      many blocks registered twice under one hash, the first evicted while a copy survives.
"""
import json, os, random

HERE = os.path.dirname(os.path.abspath(__file__))


def write_case(name, rows, settings, arrivals=None):
    d = os.path.join(HERE, "cases", name)
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, "trace.jsonl"), "w") as f:
        for r in rows:
            f.write(json.dumps(r) + "\n")
    s = settings
    scen = f"""name: {name}
seed: 1
workload:
  source:
    kind: mooncake
    path: trace.jsonl
    block_tokens: 512
model:
  preset: llama-3.1-8b
hardware:
  gpu: h100-sxm
engine:
  kind: vllm
  max_num_batched_tokens: {s['mbt']}
  max_num_seqs: {s['seqs']}
  max_model_len: {s['max_model_len']}
  enable_chunked_prefill: {str(not s.get('no_chunked', False)).lower()}
  long_prefill_token_threshold: {s.get('lpt', 0)}
  watermark: {s.get('watermark', 0.0)}
kv_cache:
  block_size: 16
  enable_prefix_caching: true
  num_gpu_blocks: {s['blocks']}
"""
    open(os.path.join(d, "scenario.yaml"), "w").write(scen)
    json.dump(dict(name=name, generator="tests/conformance/make_cases.py", **s),
              open(os.path.join(d, "case.json"), "w"), indent=1)
    if arrivals is not None:
        with open(os.path.join(d, "arrivals.txt"), "w") as f:
            for i, step in arrivals:
                f.write(f"{i} {step}\n")


def blocks(next_id, n):
    return list(range(next_id, next_id + n)), next_id + n


def case_l1():
    rng = random.Random(11)
    rows, arrivals, nid = [], [], 0
    step = 0
    for i in range(24):
        inp = rng.randrange(1500, 7000)
        hids, nid = blocks(nid, (inp + 511) // 512)
        rows.append({"timestamp": 0, "input_length": inp, "output_length": rng.randrange(2, 12),
                     "hash_ids": hids})
        # Mostly alone (the previous one is done), sometimes in a burst or overlapping.
        kind = i % 6
        step += {0: 40, 1: 40, 2: 0, 3: 1, 4: 40, 5: 6}[kind]
        arrivals.append((i, step))
    write_case("L1", rows, dict(blocks=3000, mbt=2048, seqs=16, max_model_len=16384, lpt=512),
               arrivals)


def case_h1():
    rng = random.Random(7)
    rows, nid = [], 0
    families = []
    for f in range(6):
        hids, nid = blocks(nid, rng.randrange(2, 5))
        families.append(hids)
    for i in range(240):
        fam = families[rng.randrange(len(families))]
        if rng.random() < 0.5:
            # The family prompt itself: a whole number of 16-token blocks.
            inp, hids = len(fam) * 512, list(fam)
        else:
            extra = rng.randrange(1, 3)
            tail, nid = blocks(nid, extra)
            inp = len(fam) * 512 + rng.randrange(1, extra * 512)
            # One id per 512-token block the prompt has: ceil(inp / 512) (a tail of fewer
            # than 513 tokens uses one of its two ids; the ids are allocated as before, so
            # the other rows keep theirs).
            hids = fam + tail[: (inp + 511) // 512 - len(fam)]
        rows.append({"timestamp": 0, "input_length": inp, "output_length": rng.randrange(4, 40),
                     "hash_ids": hids})
    write_case("H1", rows, dict(blocks=900, mbt=512, seqs=24, max_model_len=16384))


def case_w1():
    rng = random.Random(5)
    rows, nid = [], 0
    shared, nid = blocks(nid, 2)
    for i in range(40):
        inp = rng.randrange(4000, 15500)
        own, nid = blocks(nid, (inp + 511) // 512 - 2)
        rows.append({"timestamp": 0, "input_length": inp, "output_length": rng.randrange(10, 160),
                     "hash_ids": shared + own})
    write_case("W1", rows, dict(blocks=1400, mbt=2048, seqs=16, max_model_len=16384, lpt=1024,
                                watermark=0.03))


if __name__ == "__main__":
    case_l1()
    case_h1()
    case_w1()
