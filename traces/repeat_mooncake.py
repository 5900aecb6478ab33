#!/usr/bin/env python3
"""Write a Mooncake trace repeated N times back to back, for scaling benchmarks.

Each copy is shifted in time by the trace's duration plus one gap, and its hash ids are
offset so that copies share no prefix with each other (each copy keeps its own reuse).

    python3 traces/repeat_mooncake.py IN.jsonl N OUT.jsonl
"""
import json
import sys


def main():
    if len(sys.argv) != 4:
        sys.exit(__doc__)
    src, n, dst = sys.argv[1], int(sys.argv[2]), sys.argv[3]
    rows = [json.loads(line) for line in open(src) if line.strip()]
    span = rows[-1]["timestamp"] - rows[0]["timestamp"] + 3000
    id_offset = 1 + max(max(r["hash_ids"], default=0) for r in rows)
    with open(dst, "w") as out:
        for k in range(n):
            for r in rows:
                row = dict(r)
                row["timestamp"] = r["timestamp"] + k * span
                row["hash_ids"] = [h + k * id_offset for h in r["hash_ids"]]
                out.write(json.dumps(row) + "\n")


if __name__ == "__main__":
    main()
