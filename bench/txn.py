"""Transactional producer throughput with a real client (librdkafka via confluent-kafka):
RECORDS records of SIZE bytes over PARTITIONS partitions of a new topic, from

- idempotent: an idempotent producer (enable.idempotence, acks all), the baseline;
- txn-100ms: a transactional producer that commits every 100 ms;
- txn-1000: a transactional producer that commits every 1,000 records;

each on its own topic. Prints one JSON object per mode: records/s, MB/s, transactions per
second and the commit latency (commit_transaction, which waits for the records and the
markers) p50 / p99. Every mode is bounded in time (--max-seconds).

    python bench/txn.py --bootstrap 127.0.0.1:9092 --records 100000 --size 1024 --partitions 4
"""

from __future__ import annotations

import argparse
import json
import time
import uuid

from confluent_kafka import KafkaException, Producer
from confluent_kafka.admin import AdminClient, NewTopic

MODES = ("idempotent", "txn-100ms", "txn-1000")


def create_topic(a, topic: str) -> None:
    admin = AdminClient({"bootstrap.servers": a.bootstrap})
    for f in admin.create_topics([NewTopic(topic, a.partitions, 1)]).values():
        f.result(30)


def pct(sorted_values: list[float], p: float) -> float | None:
    if not sorted_values:
        return None
    return round(sorted_values[min(len(sorted_values) - 1, int(p / 100 * len(sorted_values)))] * 1e3, 1)


def run(a, mode: str) -> dict:
    topic = f"bench-{mode}-{uuid.uuid4().hex[:8]}"
    create_topic(a, topic)
    conf = {"bootstrap.servers": a.bootstrap, "acks": "all", "enable.idempotence": True,
            "linger.ms": a.linger_ms, "batch.size": 1_000_000, "compression.type": "none",
            "queue.buffering.max.messages": 1_000_000, "queue.buffering.max.kbytes": 1_048_576}
    txn = mode != "idempotent"
    if txn:
        conf["transactional.id"] = f"bench-{uuid.uuid4().hex[:8]}"
    p = Producer(conf)
    if txn:
        p.init_transactions(30)
    state = {"ok": 0, "errors": 0}

    def cb(err, _msg):
        state["errors" if err is not None else "ok"] += 1

    payload = b"x" * a.size
    commits: list[float] = []
    t0 = time.perf_counter()
    deadline = t0 + a.max_seconds
    in_txn = 0
    began = t0
    if txn:
        p.begin_transaction()

    def commit() -> None:
        c0 = time.perf_counter()
        p.commit_transaction(30)
        commits.append(time.perf_counter() - c0)

    for i in range(a.records):
        if time.perf_counter() > deadline:
            break
        while True:
            try:
                p.produce(topic, payload, partition=i % a.partitions, on_delivery=cb)
                break
            except BufferError:
                p.poll(0.005)
        in_txn += 1
        if i % 1000 == 0:
            p.poll(0)
        if txn:
            now = time.perf_counter()
            if (mode == "txn-1000" and in_txn >= 1000) or (mode == "txn-100ms" and now - began >= 0.1):
                commit()
                p.begin_transaction()
                in_txn, began = 0, time.perf_counter()
    if txn:
        if in_txn:
            commit()
        else:
            p.abort_transaction(30)
    left = p.flush(30)
    elapsed = time.perf_counter() - t0
    delivered = state["ok"]
    commits.sort()
    out = {"label": a.label, "mode": mode, "records": delivered, "errors": state["errors"],
           "undelivered": left, "size": a.size, "partitions": a.partitions,
           "seconds": round(elapsed, 2), "rec_s": round(delivered / elapsed),
           "mb_s": round(delivered * a.size / elapsed / 1e6, 1)}
    if txn:
        out.update({"transactions": len(commits), "txn_s": round(len(commits) / elapsed, 1),
                    "records_per_txn": round(delivered / max(len(commits), 1)),
                    "commit_p50_ms": pct(commits, 50), "commit_p99_ms": pct(commits, 99)})
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--bootstrap", required=True)
    ap.add_argument("--records", type=int, default=100_000)
    ap.add_argument("--size", type=int, default=1024)
    ap.add_argument("--partitions", type=int, default=4)
    ap.add_argument("--linger-ms", type=int, default=5)
    ap.add_argument("--modes", default=",".join(MODES))
    ap.add_argument("--max-seconds", type=float, default=60)
    ap.add_argument("--label", default="")
    a = ap.parse_args()
    for mode in a.modes.split(","):
        if mode not in MODES:
            ap.error(f"unknown mode {mode!r} (one of {', '.join(MODES)})")
        try:
            print(json.dumps(run(a, mode)), flush=True)
        except KafkaException as e:
            print(json.dumps({"label": a.label, "mode": mode, "error": str(e)}), flush=True)


if __name__ == "__main__":
    main()
