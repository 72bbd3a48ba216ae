"""Prints the table of bench/compare.sh from its JSON lines: one row per broker and workload
and run, and the ratio KafScale / Tansu where both ran (higher is better for rates, lower is
better for latency, CPU, memory and PUTs; the ratio column says which way).

    python bench/table.py results.jsonl [--markdown]"""

from __future__ import annotations

import json
import sys
from collections import defaultdict

# (key, heading, better): better is "hi" or "lo" (for the ratio's direction)
COLUMNS = [
    ("produce_rec_s", "prod rec/s", "hi"),
    ("produce_mb_s", "prod MB/s", "hi"),
    ("produce_load_p99_ms", "prod p99 loaded ms", "lo"),
    ("produce_c_mb_s", "C prod MB/s", "hi"),
    ("produce_c_broker_cores", "broker cores C prod", "lo"),
    ("produce_c_cpu_s_per_gib", "CPU s/GiB C prod", "lo"),
    ("produce_p50_ms", "prod p50 ms", "lo"),
    ("produce_p99_ms", "prod p99 ms", "lo"),
    ("produce_p999_ms", "prod p99.9 ms", "lo"),
    ("e2e_p50_ms", "e2e p50 ms", "lo"),
    ("e2e_p99_ms", "e2e p99 ms", "lo"),
    ("e2e_p999_ms", "e2e p99.9 ms", "lo"),
    ("consume_mb_s", "cons MB/s", "hi"),
    ("consume_warm_mb_s", "warm MB/s", "hi"),
    ("consume_cold_mb_s", "cold MB/s", "hi"),
    ("produce_broker_cores", "broker cores prod", "lo"),
    ("produce_client_cores", "client cores prod", "lo"),
    ("peak_rss_mib", "peak RSS MiB", "lo"),
    ("produce_cpu_s_per_gib", "CPU s/GiB prod", "lo"),
    ("consume_cpu_s_per_gib", "CPU s/GiB cons", "lo"),
    ("s3_puts_per_gib", "S3 PUTs/GiB", "lo"),
    ("puts_per_gib", "own PUTs/GiB", "lo"),
    ("txns_per_s", "meta txn/s", "lo"),
]


def fmt(v) -> str:
    if v is None:
        return "n/a"
    if isinstance(v, float) and v >= 100:
        return f"{v:,.0f}"
    if isinstance(v, int):
        return f"{v:,}"
    return f"{v}"


def load(path: str) -> dict[tuple, dict]:
    runs: dict[tuple, dict] = defaultdict(dict)
    with open(path) as f:
        for line in f:
            line = line.strip()
            if not line.startswith("{"):
                continue
            d = json.loads(line)
            broker, storage, size, parts, acks, rep = d["label"].split("|")
            runs[(storage, int(size), int(parts), acks, int(rep), broker)].update(d)
    return runs


def main() -> None:
    path = sys.argv[1]
    markdown = "--markdown" in sys.argv
    runs = load(path)
    cols = [c for c in COLUMNS if any(r.get(c[0]) is not None for r in runs.values())]
    head = ["broker", "storage", "size", "parts", "acks", "run"] + [c[1] for c in cols]
    rows = []
    workloads = sorted({k[:5] for k in runs})
    for w in workloads:
        ours, peer = runs.get(w + ("kafscale",)), runs.get(w + ("tansu",))
        for broker, r in (("kafscale", ours), ("tansu", peer)):
            if r is not None:
                rows.append([broker, w[0], str(w[1]), str(w[2]), w[3], str(w[4])]
                            + [fmt(r.get(c[0])) for c in cols])
        if ours and peer:
            ratio = []
            for key, _, better in cols:
                a, b = ours.get(key), peer.get(key)
                if a is None or b is None or not a or not b:
                    ratio.append("")
                else:
                    x = a / b if better == "hi" else b / a
                    ratio.append(f"{x:.2f}x")
            rows.append(["ours/peer", w[0], str(w[1]), str(w[2]), w[3], str(w[4])] + ratio)
    if markdown:
        print("| " + " | ".join(head) + " |")
        print("|" + "---|" * len(head))
        for r in rows:
            print("| " + " | ".join(r) + " |")
        return
    widths = [max(len(h), *(len(r[i]) for r in rows)) if rows else len(h) for i, h in enumerate(head)]
    print("  ".join(h.rjust(w) for h, w in zip(head, widths)))
    for r in rows:
        print("  ".join(v.rjust(w) for v, w in zip(r, widths)))
    print("ratio row: how many times better KafScale is (rates: ours/peer; latency, CPU, memory,"
          " PUTs: peer/ours)")


if __name__ == "__main__":
    main()
