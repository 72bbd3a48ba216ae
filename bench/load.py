"""End-to-end load with a real client (librdkafka via confluent-kafka) against any Kafka
broker: produce throughput and latency, consume throughput, end-to-end latency, and what the
broker process and the object store spent on it.

    python bench/load.py --bootstrap 127.0.0.1:9092 --http 127.0.0.1:9093 --pid 1234 \\
        --records 200000 --size 1024 --partitions 1 --acks all

Phases (--phases, in order; default produce,consume,consume,e2e):
- produce: RECORDS records as fast as the client queues them; records/s, MB/s and the
  produce latency (send to delivery report) under that load;
- consume: every produced record read from offset 0 by a fresh consumer (assign); the first
  read after producing is reported as `consume`, a second one as `consume_warm`; with
  --phases consume alone (after a broker restart) it is `consume_cold`;
- e2e: a steady --latency-rate below saturation for --latency-seconds while a consumer
  reads along: produce latency and end-to-end latency (send to receive; each payload
  carries its send time), p50 / p99 / p99.9;
- produce_c: the produce load again from librdkafka's C benchmark, rdkafka_performance
  (--rdkafka-performance; bench/rdkafka_performance.sh builds it): records/s, MB/s and the
  broker's CPU with a client that costs far less per record than Python.

Broker-side figures, when given the means: peak RSS (VmHWM of --pid), CPU seconds per GiB
(utime+stime of --pid during produce / consume), object-store PUTs per GiB (the broker's own
count with --http, the S3 server's with --s3-metrics), metadata transactions per second
(--http). Prints one JSON object. Every phase is bounded in time (--max-seconds)."""

from __future__ import annotations

import argparse
import json
import os
import re
import struct
import subprocess
import sys
import threading
import time
import urllib.request
import uuid

from confluent_kafka import Consumer, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

CLK_TCK = os.sysconf("SC_CLK_TCK")
# e2e payloads start with a marker and the send time: records of other phases are skipped
# even if a broker delivers some (one peer answered a fetch at the log end with older ones).
STAMP = struct.Struct(">4sd")
MARK = b"E2E!"


def scrape(url: str, name: str, labels: tuple[str, ...] = ()) -> float:
    """Sum of the samples of `name` whose label text contains every item of `labels`."""
    with urllib.request.urlopen(url, timeout=5) as r:
        text = r.read().decode()
    total = 0.0
    for line in text.splitlines():
        if line.startswith("#"):
            continue
        sample = line.split("{", 1)[0].split(" ", 1)[0]
        if sample == name and all(l in line for l in labels):
            total += float(line.rsplit(" ", 1)[1])
    return total


class Broker:
    """What can be read about the broker under test: its process and its metrics."""

    def __init__(self, a):
        self.pid = a.pid
        self.http = a.http
        self.s3_metrics = a.s3_metrics
        self.s3_put = tuple(a.s3_put_labels.split(",")) if a.s3_put_labels else ()

    def cpu_s(self) -> float | None:
        if not self.pid:
            return None
        with open(f"/proc/{self.pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / CLK_TCK  # utime, stime

    def peak_rss_mib(self) -> float | None:
        if not self.pid:
            return None
        with open(f"/proc/{self.pid}/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return round(int(line.split()[1]) / 1024, 1)
        return None

    def counters(self) -> dict[str, float]:
        out = {}
        if self.http:
            url = f"http://{self.http}/metrics"
            out["puts"] = scrape(url, "kafscale_object_store_requests_total", ('op="put"', 'result="ok"'))
            out["txns"] = scrape(url, "kafscale_metadata_requests_total", ('op="txn"',))
        if self.s3_metrics:
            out["s3_puts"] = scrape(self.s3_metrics, "SeaweedFS_s3_request_total", self.s3_put)
        return out


def client_cpu_s() -> float:
    t = os.times()
    return t.user + t.system


def pct(sorted_values: list[float], p: float) -> float | None:
    if not sorted_values:
        return None
    return round(sorted_values[min(len(sorted_values) - 1, int(p * len(sorted_values)))] * 1e3, 2)


def percentiles(prefix: str, values: list[float]) -> dict:
    values.sort()
    return {f"{prefix}_p50_ms": pct(values, 0.50), f"{prefix}_p99_ms": pct(values, 0.99),
            f"{prefix}_p999_ms": pct(values, 0.999)}


def progress(a, what: str, done: int, total: int, started: float) -> None:
    if a.quiet:
        return
    rate = done / max(time.perf_counter() - started, 1e-9)
    print(f"\r  {a.label} {what}: {done:,}/{total:,} ({rate:,.0f}/s)   ", end="", file=sys.stderr, flush=True)


def producer(a) -> Producer:
    return Producer({"bootstrap.servers": a.bootstrap, "acks": a.acks, "linger.ms": a.linger_ms,
                     "batch.size": 1_000_000, "compression.type": "none", "enable.idempotence": False,
                     "max.in.flight.requests.per.connection": 1000,
                     "queue.buffering.max.messages": 1_000_000, "queue.buffering.max.kbytes": 1_048_576})


def consumer(a, group: str) -> Consumer:
    return Consumer({"bootstrap.servers": a.bootstrap, "group.id": group, "enable.auto.commit": False,
                     "fetch.max.bytes": 52_428_800, "max.partition.fetch.bytes": 10_485_760,
                     "enable.partition.eof": False, "auto.offset.reset": "earliest"})


def phase_produce(a, b: Broker, topic: str, out: dict) -> None:
    p = producer(a)
    payload = b"x" * a.size
    latencies: list[float] = []
    state = {"ok": 0, "errors": 0, "last": 0.0}

    def cb(err, _msg, sent):
        if err is not None:
            state["errors"] += 1
        else:
            now = time.perf_counter()
            state["ok"] += 1
            state["last"] = now
            latencies.append(now - sent)

    c0, m0, own0 = b.cpu_s(), b.counters(), client_cpu_s()
    t0 = time.perf_counter()
    deadline = t0 + a.max_seconds
    queued = 0
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
        queued += 1
        if i % 1000 == 0:
            p.poll(0)
            if i % 20_000 == 0:
                progress(a, "produce", state["ok"], a.records, t0)
    left = p.flush(max(deadline - time.perf_counter(), 5))
    if left:
        p.purge()
        p.flush(5)
    elapsed = (state["last"] or time.perf_counter()) - t0
    c1, m1, own1 = b.cpu_s(), b.counters(), client_cpu_s()
    delivered = state["ok"]
    nbytes = delivered * a.size
    gib = nbytes / 2**30
    out.update({"produced": delivered, "produce_errors": state["errors"], "produce_undelivered": left,
                "produce_rec_s": round(delivered / elapsed), "produce_mb_s": round(nbytes / elapsed / 1e6, 1),
                "produce_s": round(elapsed, 2), **percentiles("produce_load", latencies)})
    # Cores busy in this client process (Python and librdkafka's threads): near the
    # client's limit, the figure says more about the client than about the broker.
    out["produce_client_cores"] = round((own1 - own0) / elapsed, 2)
    if c0 is not None:
        out["produce_broker_cores"] = round((c1 - c0) / elapsed, 2)
    if c0 is not None and gib:
        out["produce_cpu_s_per_gib"] = round((c1 - c0) / gib, 1)
    for k in m0:
        out[f"{k}"] = m1[k] - m0[k]
        if k.endswith("puts") and gib:
            out[f"{k}_per_gib"] = round((m1[k] - m0[k]) / gib, 1)
    if "txns" in m0:
        out["txns_per_s"] = round((m1["txns"] - m0["txns"]) / elapsed, 1)
    if not a.quiet:
        print(file=sys.stderr)


SUMMARY = re.compile(r"% (\d+) messages produced \((\d+) bytes\), (\d+) delivered .* in (\d+)ms: "
                     r"(\d+) msgs/s and ([\d.]+) MB/s, (\d+) produce failures")


def phase_produce_c(a, b: Broker, topic: str, out: dict) -> None:
    """The same produce load from librdkafka's own C benchmark, rdkafka_performance (see
    bench/rdkafka_performance.sh): without Python's cost per record the client leaves more of
    the machine to the broker, so the figure says more about the broker."""
    acks = {"all": "-1"}.get(a.acks, a.acks)
    cmd = [a.rdkafka_performance, "-P", "-t", topic, "-b", a.bootstrap, "-s", str(a.size),
           "-c", str(a.records), "-a", acks, "-X", f"linger.ms={a.linger_ms}",
           "-X", "batch.size=1000000", "-X", "compression.type=none",
           "-X", "enable.idempotence=false", "-X", "max.in.flight=1000",
           "-X", "queue.buffering.max.messages=1000000", "-X", "queue.buffering.max.kbytes=1048576"]
    c0, m0 = b.cpu_s(), b.counters()
    t0 = time.perf_counter()
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=a.max_seconds + 30)
    except subprocess.TimeoutExpired:
        out["produce_c_error"] = "timed out"
        return
    elapsed = time.perf_counter() - t0
    c1 = b.cpu_s()
    found = SUMMARY.findall(proc.stdout)
    if not found:
        out["produce_c_error"] = (proc.stderr or proc.stdout)[-300:]
        return
    msgs, nbytes, delivered, ms, rate, mb_s, failures = found[-1]
    out.update({"produce_c_delivered": int(delivered), "produce_c_failures": int(failures),
                "produce_c_rec_s": int(rate), "produce_c_mb_s": round(float(mb_s), 1)})
    if c0 is not None:
        out["produce_c_broker_cores"] = round((c1 - c0) / elapsed, 2)
        gib = int(delivered) * a.size / 2**30
        if gib:
            out["produce_c_cpu_s_per_gib"] = round((c1 - c0) / gib, 1)
    m1 = b.counters()
    if "txns" in m0:
        out["produce_c_txns_per_s"] = round((m1["txns"] - m0["txns"]) / max(int(ms) / 1e3, 1e-3), 1)


def phase_consume(a, b: Broker, topic: str, out: dict, name: str) -> None:
    want = out.get("produced", a.records)
    c = consumer(a, f"{topic}-{name}-{uuid.uuid4().hex[:6]}")
    c.assign([TopicPartition(topic, part, 0) for part in range(a.partitions)])
    got = nbytes = 0
    c0 = b.cpu_s()
    t0 = time.perf_counter()
    first = None
    while got < want and time.perf_counter() - t0 < a.max_seconds:
        for m in c.consume(10_000, 0.5):
            if m.error() is None:
                if first is None:
                    first = time.perf_counter() - t0
                got += 1
                nbytes += len(m.value() or b"")
        progress(a, name, got, want, t0)
    elapsed = time.perf_counter() - t0
    c1 = b.cpu_s()
    c.close()
    out.update({f"{name}_records": got, f"{name}_rec_s": round(got / elapsed),
                f"{name}_mb_s": round(nbytes / elapsed / 1e6, 1),
                f"{name}_first_ms": round(first * 1e3, 1) if first is not None else None})
    if c0 is not None and nbytes:
        out[f"{name}_cpu_s_per_gib"] = round((c1 - c0) / (nbytes / 2**30), 1)
    if not a.quiet:
        print(file=sys.stderr)


def phase_e2e(a, b: Broker, topic: str, out: dict) -> None:
    """Steady produce below saturation while a consumer reads along from the end."""
    n = int(a.latency_rate * a.latency_seconds)
    c = consumer(a, f"{topic}-e2e")
    # Start from the current end of every partition, so only this phase's records count.
    ends = []
    for part in range(a.partitions):
        _, high = c.get_watermark_offsets(TopicPartition(topic, part), timeout=10)
        ends.append(TopicPartition(topic, part, high))
    c.assign(ends)
    e2e: list[float] = []
    foreign = [0]
    done = threading.Event()

    def read():
        while not done.is_set() and len(e2e) < n:
            # poll returns each record as soon as it is there (consume(n) would wait for n).
            m = c.poll(0.2)
            if m is not None and m.error() is None and len(m.value() or b"") >= STAMP.size:
                mark, sent = STAMP.unpack_from(m.value())
                if mark == MARK:
                    e2e.append(time.perf_counter() - sent)
                else:
                    foreign[0] += 1

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    time.sleep(0.5)  # let the consumer's first fetch start
    p = producer(a)
    produce_lat: list[float] = []
    errors = [0]

    def cb(err, _msg, sent):
        if err is not None:
            errors[0] += 1
        else:
            produce_lat.append(time.perf_counter() - sent)

    filler = b"x" * max(a.size - STAMP.size, 0)
    t0 = time.perf_counter()
    for i in range(n):
        due = t0 + i / a.latency_rate
        while (now := time.perf_counter()) < due:
            p.poll(min(due - now, 0.001))
        p.produce(topic, STAMP.pack(MARK, now) + filler, partition=i % a.partitions,
                  on_delivery=lambda err, msg, sent=now: cb(err, msg, sent))
        if i % 2000 == 0:
            progress(a, "e2e", i, n, t0)
    p.flush(a.max_seconds)
    deadline = time.perf_counter() + 10
    while len(e2e) < n and time.perf_counter() < deadline:
        time.sleep(0.05)
    done.set()
    reader.join(5)
    c.close()
    out.update({"e2e_rate": a.latency_rate, "e2e_sent": n, "e2e_received": len(e2e), "e2e_errors": errors[0],
                "e2e_foreign": foreign[0],
                **percentiles("produce", produce_lat), **percentiles("e2e", e2e)})
    if not a.quiet:
        print(file=sys.stderr)


def create_topic(a, topic: str) -> None:
    admin = AdminClient({"bootstrap.servers": a.bootstrap})
    admin.create_topics([NewTopic(topic, a.partitions, 1)])[topic].result(30)
    # Wait until every partition has a leader (a fresh topic may take a moment).
    deadline = time.time() + 30
    while time.time() < deadline:
        md = admin.list_topics(topic, timeout=10).topics.get(topic)
        if md and md.error is None and len(md.partitions) == a.partitions \
                and all(p.leader >= 0 for p in md.partitions.values()):
            return
        time.sleep(0.2)
    raise SystemExit(f"topic {topic} has no leaders after 30 s")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--bootstrap", required=True)
    ap.add_argument("--http", help="kafscale's http address (/metrics): PUTs, metadata transactions")
    ap.add_argument("--pid", type=int, help="broker process id: peak RSS, CPU seconds")
    ap.add_argument("--s3-metrics", help="the S3 server's Prometheus URL: PUTs whatever the broker")
    ap.add_argument("--s3-put-labels", default='type="PUT",code="200"',
                    help="label texts that select PUT samples of SeaweedFS_s3_request_total")
    ap.add_argument("--topic", help="use this topic (default: a new one)")
    ap.add_argument("--no-create", action="store_true", help="the topic exists already")
    ap.add_argument("--phases", default="produce,consume,consume,e2e")
    ap.add_argument("--records", type=int, default=200_000)
    ap.add_argument("--size", type=int, default=1024)
    ap.add_argument("--partitions", type=int, default=1)
    ap.add_argument("--acks", default="all")
    ap.add_argument("--linger-ms", type=int, default=5)
    ap.add_argument("--max-seconds", type=float, default=120)
    ap.add_argument("--label", default="")
    ap.add_argument("--latency-rate", type=int, default=2000,
                    help="records/s of the e2e phase (below saturation, so that latency is the broker's)")
    ap.add_argument("--latency-seconds", type=float, default=5)
    ap.add_argument("--quiet", action="store_true", help="no progress on stderr")
    ap.add_argument("--rdkafka-performance", help="path of rdkafka_performance, for the produce_c phase")
    a = ap.parse_args()

    topic = a.topic or f"bench-{uuid.uuid4().hex[:8]}"
    if not a.no_create:
        create_topic(a, topic)
    b = Broker(a)
    out: dict = {"label": a.label, "topic": topic, "size": a.size, "partitions": a.partitions, "acks": a.acks}
    phases = a.phases.split(",")
    reads = 0
    for ph in phases:
        if ph == "produce":
            phase_produce(a, b, topic, out)
        elif ph == "consume":
            name = "consume_cold" if "produce" not in phases else ("consume" if reads == 0 else "consume_warm")
            reads += 1
            phase_consume(a, b, topic, out, name)
        elif ph == "e2e":
            phase_e2e(a, b, topic, out)
        elif ph == "produce_c":
            if not a.rdkafka_performance:
                raise SystemExit("phase produce_c needs --rdkafka-performance PATH")
            phase_produce_c(a, b, topic, out)
        else:
            raise SystemExit(f"unknown phase {ph}")
    # A process that only ran produce_c reports its peak apart from the main one's.
    out["produce_c_peak_rss_mib" if phases == ["produce_c"] else "peak_rss_mib"] = b.peak_rss_mib()
    print(json.dumps(out), flush=True)


if __name__ == "__main__":
    main()
