"""Real-client helpers (confluent-kafka / librdkafka, kcat), record comparison, and the load
of the fault tests with its read-back for the history checker (history.py)."""

from __future__ import annotations

import json
import random
import string
import threading
import time
import uuid
from dataclasses import dataclass, field

from confluent_kafka import (
    OFFSET_BEGINNING,
    Consumer,
    KafkaError,
    KafkaException,
    Producer,
    TopicPartition,
)
from confluent_kafka.admin import AdminClient, NewTopic

from harness import run_kcat
from history import History

CODECS = ["none", "gzip", "snappy", "lz4", "zstd"]


@dataclass
class Rec:
    """A record as produced or consumed. headers: list of (name, bytes | None)."""

    key: bytes | None
    value: bytes | None
    headers: list = field(default_factory=list)
    timestamp: int | None = None  # ms; None: let the producer choose
    partition: int | None = None  # None: the producer's partitioner
    offset: int | None = None
    timestamp_type: int | None = None  # confluent_kafka.TIMESTAMP_*, where known

    def content(self) -> tuple:
        return (self.key, self.value, tuple(self.headers))


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


def make_records(n: int, *, seed: int, printable: bool = False, key_space: int = 50) -> list[Rec]:
    """Deterministic mix: null keys, tombstones, empty values, binary and compressible values,
    several headers (binary, null-valued, repeated names) or none at all.
    printable=True keeps keys/values to one line of text (for kcat's line input)."""
    rnd = random.Random(seed)
    out = []
    alphabet = string.ascii_letters + string.digits + " -_.:"
    for i in range(n):
        key = None if i % 13 == 5 else f"key-{rnd.randrange(key_space)}".encode()
        if i % 17 == 3 and key is not None:
            value = None  # tombstone
        elif i % 19 == 4 and not printable:
            value = b""
        elif printable:
            value = (f"v{i}-" + "".join(rnd.choice(alphabet) for _ in range(rnd.randrange(0, 300)))).encode()
        else:
            size = rnd.choice([1, 10, 100, 1000, 4000])
            text = (f"record {i} of {n}; " * (size // 16 + 1)).encode()[: size // 2]
            value = text + rnd.randbytes(size - len(text))
        if printable:
            headers = []
        else:
            headers = [("seq", str(i).encode())]
            if i % 5 == 0:
                headers.append(("bin", rnd.randbytes(8)))
            if i % 7 == 0:
                headers += [("dup", b"1"), ("dup", b"2")]
            if i % 11 == 0:
                headers.append(("null", None))
            if i % 23 == 0:
                headers = []
        out.append(Rec(key, value, headers))
    return out


# ---------------------------------------------------------------------------------------
# confluent-kafka


def admin(bootstrap: str) -> AdminClient:
    return AdminClient({"bootstrap.servers": bootstrap})


def create_topic(bootstrap: str, name: str, partitions: int, timeout: float = 30) -> None:
    a = admin(bootstrap)  # keep the client alive until the future resolves
    fs = a.create_topics([NewTopic(name, num_partitions=partitions, replication_factor=1)],
                         operation_timeout=timeout)
    fs[name].result(timeout)


def delete_topic(bootstrap: str, name: str, timeout: float = 30) -> None:
    a = admin(bootstrap)
    a.delete_topics([name], operation_timeout=timeout)[name].result(timeout)
    deadline = time.monotonic() + timeout
    while name in a.list_topics(timeout=10).topics:
        assert time.monotonic() < deadline, f"topic {name} still listed after delete"
        time.sleep(0.2)


def partition_count(bootstrap: str, topic: str, timeout: float = 20) -> int:
    """Partitions of a topic per Metadata (waits while the topic is being created)."""
    a = admin(bootstrap)
    deadline = time.monotonic() + timeout
    while True:
        md = a.list_topics(topic, timeout=10).topics.get(topic)
        if md is not None and md.error is None and md.partitions:
            return len(md.partitions)
        if time.monotonic() > deadline:
            raise AssertionError(f"topic {topic} not in metadata: {md and md.error}")
        time.sleep(0.2)


def produce(
    bootstrap: str,
    topic: str,
    records: list[Rec],
    *,
    codec: str = "none",
    acks: str = "all",
    config: dict | None = None,
    timeout: float = 60,
) -> list[Rec]:
    """Produces in order and returns the records with partition/offset/timestamp from the
    delivery reports (offset None for acks=0, where the broker does not answer)."""
    conf = {
        "bootstrap.servers": bootstrap,
        "compression.type": codec,
        "acks": acks,
        "linger.ms": 5,
        "enable.idempotence": False,
        "message.timeout.ms": int(timeout * 1000),
    }
    conf.update(config or {})
    p = Producer(conf)
    delivered: list[Rec | None] = [None] * len(records)
    errors = []

    def report(i):
        def cb(err, msg):
            if err is not None:
                errors.append((i, err))
                return
            r = records[i]
            off = msg.offset()
            ts_type, ts = msg.timestamp()
            delivered[i] = Rec(r.key, r.value, list(r.headers), ts, msg.partition(),
                               off if off is not None and off >= 0 else None, ts_type)
        return cb

    for i, r in enumerate(records):
        kwargs = {"key": r.key, "value": r.value, "on_delivery": report(i)}
        if r.headers:
            kwargs["headers"] = list(r.headers)
        if r.timestamp is not None:
            kwargs["timestamp"] = r.timestamp
        if r.partition is not None:
            kwargs["partition"] = r.partition
        while True:
            try:
                p.produce(topic, **kwargs)
                break
            except BufferError:
                p.poll(0.05)
        p.poll(0)
    left = p.flush(timeout)
    assert left == 0, f"{left} messages not delivered within {timeout}s"
    assert not errors, f"{len(errors)} delivery errors, first: {errors[:3]}"
    assert all(d is not None for d in delivered)
    return delivered  # type: ignore[return-value]


def consumer(bootstrap: str, **extra) -> Consumer:
    conf = {
        "bootstrap.servers": bootstrap,
        "group.id": unique("e2e"),  # required by the client; only assign() is used
        "enable.auto.commit": False,
        "enable.partition.eof": True,
        "auto.offset.reset": "earliest",
    }
    conf.update(extra)
    return Consumer(conf)


def consume(
    bootstrap: str,
    topic: str,
    *,
    partitions: int | None = None,
    expected: int | None = None,
    timeout: float = 60,
    config: dict | None = None,
    sort: bool = True,
) -> list[Rec]:
    """Reads every partition from the beginning until each is at its end (and at least
    `expected` records arrived). Returns records in (partition, offset) order, or with
    sort=False in the order they were read."""
    if partitions is None:
        partitions = partition_count(bootstrap, topic)
    errors = []  # the consumer's errors and the client's own (connection failures, etc.)
    c = consumer(bootstrap, error_cb=errors.append, **(config or {}))
    c.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in range(partitions)])
    got: list[Rec] = []
    at_end: set[int] = set()
    deadline = time.monotonic() + timeout
    try:
        while True:
            if len(at_end) == partitions and (expected is None or len(got) >= expected):
                break
            if time.monotonic() > deadline:
                raise AssertionError(
                    f"consumed {len(got)} records (expected {expected}) from {topic} in {timeout}s; "
                    f"partitions at end: {sorted(at_end)}/{partitions}; client errors: {errors[:5]}")
            msg = c.poll(0.2)
            if msg is None:
                continue
            if msg.error() is not None:
                if msg.error().code() == KafkaError._PARTITION_EOF:
                    at_end.add(msg.partition())
                elif msg.error().fatal():
                    raise KafkaException(msg.error())
                else:
                    errors.append(msg.error())
                continue
            at_end.discard(msg.partition())
            ts_type, ts = msg.timestamp()
            got.append(Rec(msg.key(), msg.value(), list(msg.headers() or []), ts, msg.partition(),
                           msg.offset(), ts_type))
    finally:
        c.close()
    if sort:
        got.sort(key=lambda r: (r.partition, r.offset))
    return got


# ---------------------------------------------------------------------------------------
# kcat


def kcat_produce(bootstrap: str, topic: str, records: list[Rec], *, codec: str = "none",
                 partition: int | None = None, headers: list[str] = (), acks: str = "all",
                 timeout: float = 120) -> None:
    """One record per line: 'key<TAB>value' (no tab: null key); an empty value is NULL (-Z)."""
    lines = []
    for r in records:
        assert r.value is not None or r.key is not None, "kcat cannot send an empty line"
        v = (r.value or b"")
        assert b"\n" not in v and b"\t" not in v and not (r.key and b"\t" in r.key)
        lines.append(v if r.key is None else r.key + b"\t" + v)
    args = ["-b", bootstrap, "-P", "-t", topic, "-K", "\t", "-Z", "-X", f"compression.codec={codec}",
            "-X", f"acks={acks}", "-m", "30"]
    if partition is not None:
        args += ["-p", str(partition)]
    for h in headers:
        args += ["-H", h]
    run_kcat(args, input=b"\n".join(lines) + b"\n", timeout=timeout)


def kcat_consume_json(bootstrap: str, topic: str, timeout: float = 120) -> list[dict]:
    """All records of all partitions (kcat -C -o beginning -e -J), in (partition, offset) order."""
    res = run_kcat(["-b", bootstrap, "-C", "-t", topic, "-o", "beginning", "-e", "-J", "-q", "-m", "30"],
                   timeout=timeout)
    out = [json.loads(line) for line in res.stdout.decode().splitlines() if line.strip()]
    out.sort(key=lambda m: (m["partition"], m["offset"]))
    return out


def kcat_headers(msg: dict) -> list[tuple[str, bytes | None]]:
    """kcat -J prints headers as a flat list [k, v, k, v...] (or an object in some builds)."""
    h = msg.get("headers") or []
    if isinstance(h, dict):
        return [(k, None if v is None else v.encode()) for k, v in h.items()]
    return [(h[i], None if h[i + 1] is None else h[i + 1].encode()) for i in range(0, len(h), 2)]


def kcat_consume_shape(bootstrap: str, topic: str, timeout: float = 120) -> list[tuple[int, int, int, int]]:
    """Binary-safe view through kcat: (partition, offset, key length, value length), -1 for NULL."""
    res = run_kcat(["-b", bootstrap, "-C", "-t", topic, "-o", "beginning", "-e", "-q", "-m", "30",
                    "-f", "%p %o %K %S\\n"], timeout=timeout)
    rows = [tuple(int(x) for x in line.split()) for line in res.stdout.decode().splitlines() if line.strip()]
    return sorted(rows)


# ---------------------------------------------------------------------------------------
# Comparison


def assert_offsets_contiguous(records: list[Rec], partitions: int | None = None) -> dict[int, int]:
    """Offsets of each partition are exactly 0..n-1. Returns {partition: n}."""
    by_part: dict[int, list[int]] = {}
    for r in records:
        by_part.setdefault(r.partition, []).append(r.offset)
    for p, offs in by_part.items():
        if offs != list(range(len(offs))):
            gaps = [(a, b) for a, b in zip([-1] + offs, offs) if b != a + 1][:5]
            raise AssertionError(f"partition {p}: offsets not contiguous from 0 (first breaks: {gaps})")
    if partitions is not None:
        assert set(by_part) <= set(range(partitions)), f"partitions {sorted(by_part)} outside 0..{partitions - 1}"
    return {p: len(o) for p, o in by_part.items()}


def _show(r: Rec) -> str:
    def short(b):
        return None if b is None else (b[:40] + b"..." if len(b) > 40 else b)
    return f"p{r.partition}@{r.offset} key={short(r.key)!r} value={short(r.value)!r} headers={r.headers[:4]!r}"


def assert_same_records(delivered: list[Rec], consumed: list[Rec], *, check_timestamps: bool = True) -> None:
    """Same (partition, offset) -> same key, value, headers (and timestamp)."""
    want = {(r.partition, r.offset): r for r in delivered}
    got = {(r.partition, r.offset): r for r in consumed}
    assert len(want) == len(delivered), "delivery reports repeat a (partition, offset)"
    missing = sorted(set(want) - set(got))
    extra = sorted(set(got) - set(want))
    differ = [k for k in sorted(set(want) & set(got)) if want[k].content() != got[k].content()
              or (check_timestamps and want[k].timestamp != got[k].timestamp)]
    if missing or extra or differ:
        lines = [f"{len(delivered)} delivered, {len(consumed)} consumed: {len(missing)} missing, "
                 f"{len(extra)} unexpected, {len(differ)} different"]
        lines += [f"  missing    {_show(want[k])}" for k in missing[:5]]
        lines += [f"  unexpected {_show(got[k])}" for k in extra[:5]]
        for k in differ[:5]:
            lines += [f"  want {_show(want[k])} ts={want[k].timestamp}", f"  got  {_show(got[k])} ts={got[k].timestamp}"]
        raise AssertionError("\n".join(lines))


# ---------------------------------------------------------------------------------------
# Load under faults, judged by the history checker


class Load:
    """A producer thread writing unique values with acks=all, recording every send and
    delivery in a History (history.py), the oracle every fault test ends with.

    Idempotent by default: a retried value is then never written twice and per-partition
    order is kept, so the checker holds every value, failed writes included, to at most once
    and to send order. Without idempotence it can only check offsets and placement."""

    def __init__(self, bootstrap: str, topic: str, partitions: int, rate_sleep: float = 0.002,
                 idempotent: bool = True, **conf):
        self.history = History(idempotent=idempotent)
        self.errors: list[str] = []
        self.sent = 0
        self.stop_flag = threading.Event()
        self.p = Producer({"bootstrap.servers": bootstrap, "acks": "all", "linger.ms": 2,
                           "enable.idempotence": idempotent, "message.timeout.ms": 60000,
                           "retry.backoff.ms": 50, "topic.metadata.refresh.interval.ms": 1000, **conf})
        self.topic, self.partitions, self.rate_sleep = topic, partitions, rate_sleep
        self.lock = threading.Lock()
        self.thread = threading.Thread(target=self.run, daemon=True)

    def on_delivery(self, err, msg):
        with self.lock:
            if err is not None:
                self.errors.append(str(err))
                self.history.fail(msg.partition(), msg.value())
            else:
                self.history.ack(msg.partition(), msg.offset(), msg.value())

    def run(self):
        i = 0
        while not self.stop_flag.is_set():
            value = f"v-{i:08d}".encode()
            try:
                self.p.produce(self.topic, value=value, partition=i % self.partitions,
                               on_delivery=self.on_delivery)
                with self.lock:
                    self.history.send(i % self.partitions, value)
                i += 1
            except BufferError:
                pass
            self.p.poll(0)
            time.sleep(self.rate_sleep)
        self.sent = i

    def acked(self) -> int:
        with self.lock:
            return len(self.history.acked)

    def __enter__(self):
        self.thread.start()
        return self

    def finish(self, timeout: float = 90) -> History:
        self.stop_flag.set()
        self.thread.join()
        left = self.p.flush(timeout)
        assert left == 0, f"{left} records neither delivered nor failed within {timeout}s"
        return self.history

    def __exit__(self, *exc):
        self.stop_flag.set()


def read_all(bootstrap: str, topic: str, partitions: int, history: History, timeout: float = 60) -> None:
    """Reads every partition from its beginning to its end into `history.read`, in the order
    the records were read."""
    for r in consume(bootstrap, topic, partitions=partitions, timeout=timeout, sort=False):
        history.read.append((r.partition, r.offset, r.value))
