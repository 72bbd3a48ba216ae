"""Metadata scale: what one broker writes to etcd while it takes a steady produce load
spread over many partitions, and whether it keeps up. Run through bench/metadata_scale.sh.

For each partition count: a fresh etcd (optionally with a small quota), a fresh local object
store, one release broker with `flush.ms`, a topic of that many partitions, then librdkafka's
rdkafka_performance producing RATE records/s of SIZE bytes with acks=all, every record to a
random partition (`sticky.partitioning.linger.ms=0`), for SECONDS. etcd's own /metrics give
puts, transactions, bytes received from clients and the database size before and after; the
broker's give its metadata writes; rdkafka_performance gives every record's latency.

The soak mode runs one partition count for MINUTES and prints etcd's database size every
30 s: under a steady load it must stay flat.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests" / "e2e"))

from harness import Broker, Etcd  # noqa: E402

MIB = 1024 * 1024


def run_cli(binary: Path, *args: str) -> str:
    res = subprocess.run([str(binary), *args], capture_output=True, text=True, timeout=300)
    if res.returncode != 0:
        raise RuntimeError(f"kafscale {' '.join(args)}: {res.stderr.strip()}")
    return res.stdout


def percentile(sorted_values: list[float], p: float) -> float:
    if not sorted_values:
        return float("nan")
    i = min(len(sorted_values) - 1, max(0, round(p / 100 * (len(sorted_values) - 1))))
    return sorted_values[i]


def produce(perf: Path, bootstrap: str, topic: str, rate: int, size: int, seconds: float,
            workdir: Path) -> dict:
    """rdkafka_performance at `rate` records/s for `seconds`; returns delivery and latency."""
    count = int(rate * seconds)
    lat_file = workdir / "latency.txt"
    cmd = [str(perf), "-P", "-t", topic, "-b", bootstrap, "-s", str(size), "-r", str(rate),
           "-c", str(count), "-a", "-1", "-l", "-A", str(lat_file), "-u",
           "-X", "sticky.partitioning.linger.ms=0", "-X", "message.timeout.ms=120000",
           # rdkafka_performance sets linger.ms to 1000 unless told otherwise, which would make
           # every latency here the client's own wait; librdkafka's default is 5 ms.
           "-X", "linger.ms=5"]
    started = time.monotonic()
    res = subprocess.run(cmd, capture_output=True, text=True, timeout=seconds * 4 + 300)
    elapsed = time.monotonic() - started
    out = res.stdout + res.stderr
    m = re.findall(r"(\d+) messages? .*?delivered", out)
    if not lat_file.exists():
        raise RuntimeError(f"rdkafka_performance wrote no latencies (exit {res.returncode}):\n{out[-2000:]}")
    lats = sorted(float(x) / 1000.0 for x in lat_file.read_text().split() if x.strip())
    delivered = len(lats)
    failed = len(re.findall(r"Message delivery failed", out))
    return {
        "sent": count,
        "delivered": delivered,
        "failed": failed,
        "elapsed_s": elapsed,
        "delivered_per_s": delivered / seconds,
        "p50_ms": percentile(lats, 50),
        "p99_ms": percentile(lats, 99),
        "avg_ms": statistics.fmean(lats) if lats else float("nan"),
        "max_ms": lats[-1] if lats else float("nan"),
        "rdkafka_summary": m[-1] if m else "",
        "exit": res.returncode,
    }


def flush_metrics(broker: Broker) -> dict[str, float]:
    """The broker's flush counters: how often it flushed, how big, and where the time went."""
    return {
        "flushes": broker.metric("kafscale_flushes_total"),
        "bytes": broker.metric("kafscale_flush_size_bytes_sum"),
        "uploads": broker.metric("kafscale_flush_upload_duration_seconds_count"),
        "upload_s": broker.metric("kafscale_flush_upload_duration_seconds_sum"),
        "commits": broker.metric("kafscale_flush_commit_duration_seconds_count"),
        "commit_s": broker.metric("kafscale_flush_commit_duration_seconds_sum"),
        # What the broker asks of the object store (flushes, merges, checkpoints, reads).
        "store_puts": broker.metric("kafscale_object_store_requests_total", 'op="put",result="ok"'),
        "store_gets": broker.metric("kafscale_object_store_requests_total", 'op="get",result="ok"'),
        "store_written": broker.metric("kafscale_object_store_written_bytes_total"),
        "store_read": broker.metric("kafscale_object_store_read_bytes_total"),
    }


def one_run(args, binary: Path, perf: Path, partitions: int, soak_minutes: float | None) -> dict:
    workdir = Path(tempfile.mkdtemp(prefix=f"metascale-{partitions}-", dir=args.workdir))
    etcd = Etcd(workdir, quota_bytes=args.quota).start()
    broker = Broker(workdir, data_dir=workdir / "data", binary=binary,
                    args=["--metadata", etcd.url + "/bench",
                          "--object-store", f"file://{workdir / 'objects'}"],
                    env={"KAFSCALE_FLUSH_MS": str(args.flush_ms), "RUST_LOG": "warn"})
    try:
        broker.start(timeout=120)
        topic = "scale"
        run_cli(binary, "topic", "create", topic, "--partitions", str(partitions),
                "--bootstrap", broker.bootstrap)
        # Every partition led and loaded before the clock starts.
        time.sleep(2)
        before_etcd = etcd.metrics()
        before_written = broker.metric("kafscale_metadata_written_bytes_total")
        before_flush = flush_metrics(broker)
        started = time.monotonic()
        curve = []
        if soak_minutes:
            seconds = soak_minutes * 60
            import threading
            result: dict = {}
            t = threading.Thread(target=lambda: result.update(
                produce(perf, broker.bootstrap, topic, args.rate, args.size, seconds, workdir)))
            t.start()
            while t.is_alive():
                m = etcd.metrics()
                curve.append({"t_s": round(time.monotonic() - started),
                              "db_bytes": m["etcd_mvcc_db_total_size_in_bytes"],
                              "db_in_use_bytes": m["etcd_mvcc_db_total_size_in_use_in_bytes"],
                              "keys": m["etcd_debugging_mvcc_keys_total"]})
                print(f"  t={curve[-1]['t_s']:>5}s etcd db {curve[-1]['db_bytes'] / MIB:7.1f} MiB "
                      f"(in use {curve[-1]['db_in_use_bytes'] / MIB:6.1f} MiB), keys {int(curve[-1]['keys'])}",
                      flush=True)
                t.join(timeout=30)
            load = result
        else:
            load = produce(perf, broker.bootstrap, topic, args.rate, args.size, args.seconds, workdir)
        secs = time.monotonic() - started
        after_etcd = etcd.metrics()
        after_written = broker.metric("kafscale_metadata_written_bytes_total")
        flush = {k: v - before_flush[k] for k, v in flush_metrics(broker).items()}
        d = {k: after_etcd[k] - before_etcd[k] for k in after_etcd}
        produced_bytes = load["delivered"] * args.size
        row = {
            "partitions": partitions,
            "rate": args.rate,
            "size": args.size,
            "flush_ms": args.flush_ms,
            "seconds": round(secs, 1),
            "etcd_puts_per_s": d["etcd_mvcc_put_total"] / secs,
            "etcd_txn_per_s": d["txn"] / secs,
            "etcd_received_bytes_per_s": d["etcd_network_client_grpc_received_bytes_total"] / secs,
            "broker_written_bytes_per_s": (after_written - before_written) / secs,
            "etcd_db_growth_mb_per_min": d["etcd_mvcc_db_total_size_in_bytes"] / 1e6 / (secs / 60),
            "etcd_db_bytes_end": after_etcd["etcd_mvcc_db_total_size_in_bytes"],
            "etcd_keys_end": after_etcd["etcd_debugging_mvcc_keys_total"],
            "etcd_mib_per_gib_received": (d["etcd_network_client_grpc_received_bytes_total"] / MIB)
            / (produced_bytes / (1024 * MIB)) if produced_bytes else float("nan"),
            "etcd_mib_per_gib_written": ((after_written - before_written) / MIB)
            / (produced_bytes / (1024 * MIB)) if produced_bytes else float("nan"),
            **{k: load[k] for k in ("sent", "delivered", "failed", "delivered_per_s", "p50_ms",
                                    "p99_ms", "avg_ms", "max_ms")},
            "flushes_per_s": flush["flushes"] / secs,
            "flush_avg_bytes": flush["bytes"] / max(flush["flushes"], 1),
            "flush_avg_upload_ms": 1000 * flush["upload_s"] / max(flush["uploads"], 1),
            "flush_avg_commit_ms": 1000 * flush["commit_s"] / max(flush["commits"], 1),
            "store_puts_per_s": flush["store_puts"] / secs,
            "store_gets_per_s": flush["store_gets"] / secs,
            # Object store bytes written (flushes, merges, checkpoints) per byte produced.
            "store_write_amplification": flush["store_written"] / produced_bytes if produced_bytes else float("nan"),
            "store_read_mib_per_s": flush["store_read"] / MIB / secs,
        }
        if curve:
            row["soak_curve"] = curve
        return row
    finally:
        broker.stop()
        etcd.stop()


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--binary", type=Path, required=True)
    ap.add_argument("--perf", type=Path, required=True)
    ap.add_argument("--partitions", default="10,100,1000,10000")
    ap.add_argument("--rate", type=int, default=5000)
    ap.add_argument("--size", type=int, default=1024)
    ap.add_argument("--seconds", type=float, default=20)
    ap.add_argument("--flush-ms", type=int, default=100)
    ap.add_argument("--quota", type=int, default=None, help="etcd --quota-backend-bytes")
    ap.add_argument("--soak", type=float, default=None, help="minutes (one partition count)")
    ap.add_argument("--workdir", default=None)
    ap.add_argument("--out", type=Path, default=None)
    args = ap.parse_args()
    rows = []
    for n in [int(x) for x in args.partitions.split(",")]:
        print(f"== {n} partitions, {args.rate} records/s of {args.size} B, flush.ms {args.flush_ms}"
              + (f", soak {args.soak} min" if args.soak else f", {args.seconds:g} s"), flush=True)
        row = one_run(args, args.binary, args.perf, n, args.soak)
        rows.append(row)
        if args.out:
            with open(args.out, "a") as f:
                f.write(json.dumps(row) + "\n")
        print(f"   puts/s {row['etcd_puts_per_s']:.0f}  txn/s {row['etcd_txn_per_s']:.1f}  "
              f"etcd rx {row['etcd_received_bytes_per_s'] / 1e3:.1f} kB/s "
              f"({row['etcd_mib_per_gib_received']:.1f} MiB/GiB)  "
              f"db +{row['etcd_db_growth_mb_per_min']:.1f} MB/min  "
              f"delivered {row['delivered_per_s']:.0f}/s ({row['failed']} failed)  "
              f"p50/p99 {row['p50_ms']:.0f}/{row['p99_ms']:.0f} ms  avg/max {row['avg_ms']:.0f}/{row['max_ms']:.0f} ms\n"
              f"   flushes {row['flushes_per_s']:.1f}/s of {row['flush_avg_bytes'] / 1e3:.0f} kB, "
              f"upload {row['flush_avg_upload_ms']:.1f} ms, commit {row['flush_avg_commit_ms']:.1f} ms (averages)\n"
              f"   object store: {row['store_puts_per_s']:.1f} PUT/s, {row['store_gets_per_s']:.1f} GET/s, "
              f"{row['store_write_amplification']:.2f} bytes written per byte produced, "
              f"{row['store_read_mib_per_s']:.1f} MiB/s read",
              flush=True)
    print("\n| partitions | etcd puts/s | txn/s | etcd bytes received | MiB per GiB produced | "
          "etcd db growth | delivered | p50 / p99 | avg / max |")
    print("|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['partitions']:,} | {r['etcd_puts_per_s']:,.0f} | {r['etcd_txn_per_s']:.1f} | "
              f"{r['etcd_received_bytes_per_s'] / 1e3:,.1f} kB/s | {r['etcd_mib_per_gib_received']:.1f} | "
              f"{r['etcd_db_growth_mb_per_min']:.1f} MB/min | {r['delivered_per_s']:,.0f}/s | "
              f"{r['p50_ms']:.0f} / {r['p99_ms']:.0f} ms | {r['avg_ms']:.0f} / {r['max_ms']:.0f} ms |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
