"""End-to-end load with a real client (librdkafka via confluent-kafka): produce throughput and
latency, consume throughput, and the broker's object-store PUTs per GiB from /metrics.

    python bench/load.py --bootstrap 127.0.0.1:9092 --http 127.0.0.1:9093 \
        --records 200000 --size 1024 --partitions 1 --acks all

Prints one line of JSON per run. Bounded in time (--max-seconds)."""

from __future__ import annotations

import argparse
import json
import time
import urllib.request
import uuid

from confluent_kafka import Consumer, KafkaError, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic


def metric(http: str, name: str, labels: str = "") -> float:
    with urllib.request.urlopen(f"http://{http}/metrics", timeout=5) as r:
        text = r.read().decode()
    return sum(float(l.rsplit(" ", 1)[1]) for l in text.splitlines() if l.startswith(name) and labels in l)


def percentile(sorted_values: list[float], p: float) -> float:
    if not sorted_values:
        return float("nan")
    return sorted_values[min(len(sorted_values) - 1, int(p * len(sorted_values)))]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--bootstrap", required=True)
    ap.add_argument("--http", help="broker http address, for PUT counts")
    ap.add_argument("--records", type=int, default=200_000)
    ap.add_argument("--size", type=int, default=1024)
    ap.add_argument("--partitions", type=int, default=1)
    ap.add_argument("--acks", default="all")
    ap.add_argument("--linger-ms", type=int, default=5)
    ap.add_argument("--max-seconds", type=float, default=120)
    ap.add_argument("--label", default="")
    ap.add_argument("--latency-rate", type=int, default=2000,
                    help="records/s of the latency phase (below saturation, so that latency is the broker's)")
    ap.add_argument("--latency-seconds", type=float, default=5)
    a = ap.parse_args()

    topic = f"bench-{uuid.uuid4().hex[:8]}"
    admin = AdminClient({"bootstrap.servers": a.bootstrap})
    admin.create_topics([NewTopic(topic, a.partitions, 1)])[topic].result(30)
    puts0 = metric(a.http, "kafscale_object_store_requests_total", 'op="put",result="ok"') if a.http else 0

    p = Producer({"bootstrap.servers": a.bootstrap, "acks": a.acks, "linger.ms": a.linger_ms,
                  "batch.size": 1_000_000, "compression.type": "none", "enable.idempotence": False,
                  "max.in.flight.requests.per.connection": 1000,
                  "queue.buffering.max.messages": 1_000_000, "queue.buffering.max.kbytes": 1_048_576})
    payload = b"x" * a.size
    latencies: list[float] = []
    errors = [0]

    def cb(err, msg, sent=None):
        if err is not None:
            errors[0] += 1
        elif sent is not None:
            latencies.append(time.perf_counter() - sent)

    t0 = time.perf_counter()
    deadline = t0 + a.max_seconds
    produced = 0
    for i in range(a.records):
        if time.perf_counter() > deadline:
            break
        sent = time.perf_counter()
        while True:
            try:
                p.produce(topic, payload, partition=i % a.partitions,
                          on_delivery=lambda err, msg, sent=sent: cb(err, msg, sent))
                break
            except BufferError:
                p.poll(0.005)
        produced += 1
        if i % 1000 == 0:
            p.poll(0)
    p.flush(a.max_seconds)
    produce_s = time.perf_counter() - t0
    puts = (metric(a.http, "kafscale_object_store_requests_total", 'op="put",result="ok"') - puts0) if a.http else None

    c = Consumer({"bootstrap.servers": a.bootstrap, "group.id": topic, "enable.auto.commit": False,
                  "fetch.max.bytes": 52_428_800, "max.partition.fetch.bytes": 10_485_760,
                  "enable.partition.eof": False})
    c.assign([TopicPartition(topic, part, 0) for part in range(a.partitions)])
    got = 0
    t1 = time.perf_counter()
    while got < produced and time.perf_counter() - t1 < a.max_seconds:
        for m in c.consume(10_000, 0.5):
            if m.error() is None:
                got += 1
    consume_s = time.perf_counter() - t1
    c.close()

    # Latency phase: a steady rate well below saturation, so the client's own queue stays
    # empty and the delivery latency is the broker's (plus linger.ms).
    latencies.clear()
    t2 = time.perf_counter()
    n = int(a.latency_rate * a.latency_seconds)
    for i in range(n):
        due = t2 + i / a.latency_rate
        while (now := time.perf_counter()) < due:
            p.poll(min(due - now, 0.001))
        p.produce(topic, payload, partition=i % a.partitions,
                  on_delivery=lambda err, msg, sent=now: cb(err, msg, sent))
    p.flush(a.max_seconds)

    latencies.sort()
    gib = produced * a.size / 2**30
    print(json.dumps({
        "label": a.label, "records": produced, "size": a.size, "partitions": a.partitions, "acks": a.acks,
        "produce_records_per_s": round(produced / produce_s), "produce_mb_per_s": round(produced * a.size / produce_s / 1e6, 1),
        "latency_rate": a.latency_rate,
        "p50_ms": round(percentile(latencies, 0.50) * 1e3, 1), "p99_ms": round(percentile(latencies, 0.99) * 1e3, 1),
        "consume_records_per_s": round(got / consume_s), "consume_mb_per_s": round(got * a.size / consume_s / 1e6, 1),
        "consumed": got, "errors": errors[0], "puts": puts, "puts_per_gib": round(puts / gib, 1) if puts is not None and gib else None,
    }))


if __name__ == "__main__":
    main()
