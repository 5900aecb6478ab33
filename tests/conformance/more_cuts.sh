#!/usr/bin/env bash
# Check kvsim against vLLM 0.33.0 beyond the committed cases: the shared kit's sync-only
# cases run asynchronously, and further cuts of the Mooncake trace with other settings, each
# driven through vLLM's own scheduler by the kit's driver, then compared step by step by
# `kvsim conformance`. Everything is written under a scratch folder (default
# /tmp/kvsim-more-cuts), never into the repository or ../shared.
#
#   bash tests/conformance/more_cuts.sh VENV_PYTHON KVSIM [SCRATCH]
#
# VENV_PYTHON: python of a virtual environment with `pip install vllm==0.33.0` (about 9 GB,
# no GPU); KVSIM: the kvsim binary. About 5 minutes on 2 cores. Exit status: kvsim's.
set -euo pipefail
PY=${1:?usage: more_cuts.sh VENV_PYTHON KVSIM [SCRATCH]}
KVSIM=${2:?usage: more_cuts.sh VENV_PYTHON KVSIM [SCRATCH]}
OUT=${3:-/tmp/kvsim-more-cuts}
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
KIT="$ROOT/../shared/conformance/vllm-0.33.0"
TRACE="$ROOT/../shared/traces/mooncake/conversation_trace.jsonl"
KVSIM=$(cd "$(dirname "$KVSIM")" && pwd)/$(basename "$KVSIM")
rm -rf "$OUT"
mkdir -p "$OUT/cases"
cp -r "$KIT/driver" "$OUT/driver"   # prep_case.py writes next to its own folder
drive() { # CASE [driver options]
  local c=$1
  shift
  "$PY" "$OUT/driver/drive_vllm.py" "$OUT/cases/$c" "$@" > "$OUT/$c.$#.log" 2>&1 ||
    { tail -5 "$OUT/$c.$#.log"; exit 1; }
}

# The kit's sync-only cases, asynchronously.
for c in C2 C3 D1 D2 D4 E1 F1; do
  mkdir -p "$OUT/cases/$c"
  cp "$KIT/cases/$c/trace.jsonl" "$KIT/cases/$c/scenario.yaml" "$KIT/cases/$c/case.json" \
    "$OUT/cases/$c/"
  if [ -f "$KIT/cases/$c/arrivals.txt" ]; then
    cp "$KIT/cases/$c/arrivals.txt" "$OUT/cases/$c/"
    drive "$c" --async --arrivals "$OUT/cases/$c/arrivals.txt" --out vllm_async
  else
    drive "$c" --async --out vllm_async
  fi
done

# Further cuts, sync and async: long prompts on a small cache with a watermark (G1), chunked
# prefill off (G2), a small budget and threshold with many sequences (G3), a tight
# max_model_len (G4), every third row on a tiny cache (G5), the trace's own arrival times
# (G6, arrivals by step from kvsim's timed replay, as the kit's E1).
prep() { "$PY" "$OUT/driver/prep_case.py" --trace "$TRACE" "$@" > /dev/null; }
prep G1 --rows 3000:300 --max-input 16384 --max-output 512 --blocks 2000 --mbt 2048 --seqs 32 \
  --lpt 1024 --watermark 0.01
prep G2 --rows 6000:500 --max-input 8192 --max-output 128 --blocks 1500 --mbt 8192 --seqs 48 \
  --max-model-len 8192 --no-chunked
prep G3 --rows 9000:600 --max-input 4096 --max-output 200 --blocks 1200 --mbt 1024 --seqs 128 \
  --lpt 256
prep G4 --rows 11000:400 --max-input 12000 --max-output 64 --blocks 4000 --mbt 8192 --seqs 16 \
  --watermark 0.02 --max-model-len 12100
prep G5 --rows 1500:800 --every 3 --max-input 2048 --max-output 300 --blocks 800 --mbt 512 \
  --seqs 64
prep G6 --rows 4000:400 --keep-time --max-input 8192 --max-output 256 --blocks 2500 --mbt 2048 \
  --seqs 64 --lpt 512
(cd "$OUT/cases/G6" && "$KVSIM" run scenario.yaml --out kvsim -q > /dev/null 2>&1 &&
  python3 "$OUT/driver/arrivals_from_kvsim.py" . > /dev/null && rm -rf kvsim)
for c in G1 G2 G3 G4 G5; do
  drive "$c"
  drive "$c" --async --out vllm_async
done
drive G6 --arrivals "$OUT/cases/G6/arrivals.txt"
drive G6 --arrivals "$OUT/cases/G6/arrivals.txt" --async --out vllm_async
gzip -f "$OUT"/cases/*/vllm*/vllm_sched.jsonl
"$KVSIM" conformance "$OUT/cases"
