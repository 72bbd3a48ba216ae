"""Produce and consume through the real broker with real clients (librdkafka via
confluent-kafka, and kcat), then check the data read back is exactly what was written."""

from __future__ import annotations

import os
import threading
import time
import zlib

import pytest
from confluent_kafka import TIMESTAMP_CREATE_TIME, KafkaError, TopicPartition
from confluent_kafka.admin import AlterConfigOpType, ConfigEntry, ConfigResource, NewTopic, ResourceType

from clients import (
    CODECS,
    Rec,
    admin,
    assert_offsets_contiguous,
    assert_same_records,
    consume,
    consumer,
    create_topic,
    delete_topic,
    kcat_consume_json,
    kcat_consume_shape,
    kcat_headers,
    kcat_produce,
    make_records,
    partition_count,
    produce,
    unique,
)
from harness import requires_broker, run_kcat

pytestmark = requires_broker

N = int(os.environ.get("KAFSCALE_E2E_RECORDS", "3000"))


def shape(records: list[Rec]) -> list[tuple[int, int, int, int]]:
    def n(b):
        return -1 if b is None else len(b)
    return sorted((r.partition, r.offset, n(r.key), n(r.value)) for r in records)


def roundtrip(bootstrap: str, topic: str, records: list[Rec], codec: str, partitions: int | None = None) -> list[Rec]:
    delivered = produce(bootstrap, topic, records, codec=codec)
    # CreateTime topics: the produce response's log_append_time is -1, so the delivery
    # report carries the producer's own timestamp, and consumers must see the same.
    assert {r.timestamp_type for r in delivered} == {TIMESTAMP_CREATE_TIME}, "delivery reports: not CreateTime"
    parts = partition_count(bootstrap, topic)
    if partitions is not None:
        assert parts == partitions
    counts = assert_offsets_contiguous(delivered, parts)
    consumed = consume(bootstrap, topic, partitions=parts, expected=len(records))
    assert_same_records(delivered, consumed)
    assert assert_offsets_contiguous(consumed, parts) == counts
    return delivered


@pytest.mark.parametrize("codec", CODECS)
@pytest.mark.parametrize("kind", ["auto-created", "created-3-partitions"])
def test_confluent_roundtrip(broker, codec, kind):
    topic = unique(f"rt-{codec}")
    partitions = None
    if kind == "created-3-partitions":
        partitions = 3
        create_topic(broker.bootstrap, topic, 3)
    records = make_records(N, seed=zlib.crc32(f"{codec}/{kind}".encode()))
    delivered = roundtrip(broker.bootstrap, topic, records, codec, partitions)
    if partitions == 3:
        assert {r.partition for r in delivered} == {0, 1, 2}, "the partitioner should use every partition"
    # The same data through another client: kcat sees the same offsets, null keys and values.
    assert kcat_consume_shape(broker.bootstrap, topic) == shape(delivered)


@pytest.mark.parametrize("codec", CODECS)
@pytest.mark.parametrize("kind", ["auto-created", "created-3-partitions"])
def test_kcat_roundtrip(broker, codec, kind):
    topic = unique(f"kc-{codec}")
    if kind == "created-3-partitions":
        create_topic(broker.bootstrap, topic, 3)
    records = make_records(N, seed=7, printable=True)
    headers = [("origin", b"kcat"), ("codec", codec.encode())]
    kcat_produce(broker.bootstrap, topic, records, codec=codec, headers=[f"{k}={v.decode()}" for k, v in headers])
    parts = partition_count(broker.bootstrap, topic)
    if kind == "created-3-partitions":
        assert parts == 3

    msgs = kcat_consume_json(broker.bootstrap, topic)
    got = [Rec(None if m["key"] is None else m["key"].encode(),
               None if m["payload"] is None else m["payload"].encode(),
               kcat_headers(m), m["ts"], m["partition"], m["offset"]) for m in msgs]
    assert_offsets_contiguous(got, parts)
    assert len(got) == len(records)
    assert all(r.headers == headers for r in got), f"headers differ: {got[0].headers}"
    # kcat gives no delivery offsets: compare the multiset, and per key the order.
    want = sorted(((r.key or b""), r.value or b"", r.key is None, r.value is None) for r in records)
    have = sorted(((r.key or b""), r.value or b"", r.key is None, r.value is None) for r in got)
    assert want == have
    for key in {r.key for r in records if r.key is not None}:
        assert [r.value for r in records if r.key == key] == [r.value for r in got if r.key == key], key

    # And librdkafka via confluent-kafka reads the same.
    consumed = consume(broker.bootstrap, topic, partitions=parts, expected=len(records))
    assert_same_records(got, consumed)


def test_restart_keeps_data_and_offsets_continue(broker):
    bs = broker.bootstrap
    topics = {unique(f"rs-{codec}"): codec for codec in CODECS}
    created = unique("rs-created")
    create_topic(bs, created, 3)
    topics[created] = "zstd"
    delivered = {t: produce(bs, t, make_records(800, seed=i), codec=c) for i, (t, c) in enumerate(topics.items())}
    parts = {t: partition_count(bs, t) for t in topics}
    assert parts[created] == 3

    exit_codes = []
    for round_ in range(2):
        broker.restart()
        exit_codes.append(broker.last_exit_code)
        for t in topics:
            assert partition_count(bs, t) == parts[t], f"{t}: partition count changed over restart"
            consumed = consume(bs, t, partitions=parts[t], expected=len(delivered[t]))
            assert_same_records(delivered[t], consumed)
            assert_offsets_contiguous(consumed)
        # New produces continue at the next offsets of each partition.
        for i, t in enumerate(topics):
            ends = {p: sum(1 for r in delivered[t] if r.partition == p) for p in range(parts[t])}
            more = produce(bs, t, make_records(200, seed=100 + 10 * round_ + i), codec=topics[t])
            for p in range(parts[t]):
                offs = [r.offset for r in more if r.partition == p]
                assert offs == list(range(ends[p], ends[p] + len(offs))), f"{t}[{p}] after restart: {offs[:5]}"
            delivered[t] += more
    for t in topics:
        assert_same_records(delivered[t], consume(bs, t, partitions=parts[t], expected=len(delivered[t])))
    assert exit_codes == [0, 0], f"SIGTERM should give a clean exit: exit codes {exit_codes}"


def test_acknowledged_data_survives_sigkill(broker):
    bs = broker.bootstrap
    topic = unique("crash")
    create_topic(bs, topic, 2)
    delivered = produce(bs, topic, make_records(1500, seed=3), codec="lz4", acks="all")
    broker.restart(hard=True)
    assert_same_records(delivered, consume(bs, topic, partitions=2, expected=len(delivered)))
    more = produce(bs, topic, make_records(100, seed=4), codec="lz4", acks="all")
    for p in (0, 1):
        before = sum(1 for r in delivered if r.partition == p)
        assert min((r.offset for r in more if r.partition == p), default=before) == before


@pytest.mark.parametrize("acks", ["0", "1", "all"])
def test_acks(broker, acks):
    bs = broker.bootstrap
    topic = unique(f"acks{acks}")
    create_topic(bs, topic, 1)
    records = make_records(2000, seed=11)
    for r in records:
        r.partition = 0
    delivered = produce(bs, topic, records, codec="snappy", acks=acks)
    consumed = consume(bs, topic, partitions=1, expected=len(records))
    assert len(consumed) == len(records), f"acks={acks}: {len(consumed)} of {len(records)} records stored"
    assert [r.content() for r in consumed] == [r.content() for r in records], "order or content differs"
    assert_offsets_contiguous(consumed)
    # With acks=0 the broker sends no response (test_bad_input checks that on the wire), so
    # delivery reports carry no broker offsets (librdkafka fills in some local ones): skip them.
    if acks != "0":
        assert [r.offset for r in delivered] == list(range(len(records)))
        assert_same_records(delivered, consumed)


def test_list_offsets(broker):
    bs = broker.bootstrap
    topic = unique("times")
    create_topic(bs, topic, 1)
    n = 1000
    base = int(time.time() * 1000) - 3_600_000
    records = make_records(n, seed=5)
    for i, r in enumerate(records):
        r.timestamp, r.partition = base + 10 * i, 0
    delivered = produce(bs, topic, records, codec="gzip", config={"linger.ms": 50})
    assert [r.timestamp for r in delivered] == [base + 10 * i for i in range(n)]

    c = consumer(bs)
    try:
        assert c.get_watermark_offsets(TopicPartition(topic, 0), timeout=10, cached=False) == (0, n)
        cases = {
            base - 1000: 0,  # before everything
            base: 0,
            base + 10 * 500: 500,  # exactly a record's timestamp
            base + 10 * 500 + 5: 501,  # between two records: the next one
            base + 10 * (n - 1): n - 1,
            base + 10 * (n - 1) + 1: -1,  # after everything: none (OFFSET_END)
        }
        for ts, want in cases.items():
            res = c.offsets_for_times([TopicPartition(topic, 0, ts)], timeout=10)
            assert res[0].error is None, res[0].error
            assert res[0].offset == want, f"offsets_for_times({ts - base:+d} ms from first) = {res[0].offset}, want {want}"
    finally:
        c.close()
    out = run_kcat(["-b", bs, "-Q", "-t", f"{topic}:0:{base + 10 * 250 + 1}"]).stdout.decode()
    assert "offset 251" in out, out


def test_delete_and_recreate_starts_empty(broker):
    bs = broker.bootstrap
    topic = unique("del")
    create_topic(bs, topic, 2)
    produce(bs, topic, make_records(300, seed=8), codec="zstd")
    delete_topic(bs, topic)
    create_topic(bs, topic, 2)
    c = consumer(bs)
    try:
        for p in (0, 1):
            assert c.get_watermark_offsets(TopicPartition(topic, p), timeout=10, cached=False) == (0, 0)
    finally:
        c.close()
    assert consume(bs, topic, partitions=2) == []
    fresh = make_records(50, seed=9)
    delivered = produce(bs, topic, fresh, codec="zstd")
    assert sorted(r.offset for r in delivered if r.partition == 0) == list(range(sum(r.partition == 0 for r in delivered)))
    assert_same_records(delivered, consume(bs, topic, partitions=2, expected=50))
    # A deleted topic stays deleted over a restart.
    gone = unique("gone")
    create_topic(bs, gone, 1)
    delete_topic(bs, gone)
    broker.restart()
    assert gone not in consumer_topics(bs)
    assert_same_records(delivered, consume(bs, topic, partitions=2, expected=50))


def consumer_topics(bootstrap: str) -> set[str]:
    return set(admin(bootstrap).list_topics(timeout=10).topics)


def test_many_partitions(broker):
    bs = broker.bootstrap
    topic = unique("wide")
    parts = 64
    create_topic(bs, topic, parts)
    assert partition_count(bs, topic) == parts
    records = make_records(parts * 30, seed=12)
    for i, r in enumerate(records[: parts * 20]):
        r.partition = i % parts  # explicit partitions; the rest by key
    delivered = produce(bs, topic, records, codec="lz4")
    counts = assert_offsets_contiguous(delivered, parts)
    assert set(counts) == set(range(parts))
    assert_same_records(delivered, consume(bs, topic, partitions=parts, expected=len(records)))
    c = consumer(bs)
    try:
        for p in range(parts):
            assert c.get_watermark_offsets(TopicPartition(topic, p), timeout=10, cached=False) == (0, counts[p])
    finally:
        c.close()


def test_ephemeral_roundtrip_and_forgets_on_restart(ephemeral_broker):
    bs = ephemeral_broker.bootstrap
    topic = unique("eph")
    create_topic(bs, topic, 3)
    roundtrip(bs, topic, make_records(1000, seed=13), "zstd", 3)
    ephemeral_broker.restart()
    assert topic not in consumer_topics(bs), "an --ephemeral broker keeps nothing over a restart"


def test_fetch_long_polls_instead_of_spinning(broker):
    """An idle consumer at the end of a partition must not make the broker spin: Fetch
    waits (max_wait_ms) for data, and new data is delivered promptly when it comes."""
    bs = broker.bootstrap
    topic = unique("idle")
    create_topic(bs, topic, 1)
    produce(bs, topic, [Rec(b"k", b"first", partition=0)])
    c = consumer(bs, **{"fetch.wait.max.ms": 500, "enable.partition.eof": False})
    try:
        c.assign([TopicPartition(topic, 0, 1)])
        cpu0 = cpu_seconds(broker.pid)
        deadline = time.monotonic() + 3
        while time.monotonic() < deadline:
            assert c.poll(0.2) is None
        spent = cpu_seconds(broker.pid) - cpu0
        assert spent < 0.75, f"broker used {spent:.2f}s CPU in 3s with one idle consumer: fetch is not long-polling"
        t0 = time.monotonic()
        produce(bs, topic, [Rec(b"k", b"second", partition=0)])
        while True:
            msg = c.poll(0.1)
            if msg is not None and msg.error() is None:
                break
            assert time.monotonic() - t0 < 5, "new record not delivered to a waiting consumer within 5s"
        assert (msg.offset(), msg.value()) == (1, b"second")
    finally:
        c.close()


def cpu_seconds(pid: int) -> float:
    fields = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def test_fetch_returns_a_batch_larger_than_max_bytes(broker):
    """KIP-74: a fetch returns at least one whole batch even above the byte limits."""
    bs = broker.bootstrap
    topic = unique("big")
    create_topic(bs, topic, 1)
    records = [Rec(f"k{i}".encode(), bytes([i]) * 400_000, [("i", str(i).encode())], partition=0) for i in range(5)]
    delivered = produce(bs, topic, records, config={"linger.ms": 0, "batch.size": 1})  # one record per batch
    consumed = consume(bs, topic, partitions=1, expected=5,
                       config={"fetch.max.bytes": 10_000, "message.max.bytes": 10_000,
                               "max.partition.fetch.bytes": 10_000})
    assert_same_records(delivered, consumed)


def test_concurrent_producers_get_distinct_contiguous_offsets(broker):
    bs = broker.bootstrap
    topic = unique("conc")
    create_topic(bs, topic, 2)
    results: dict[int, list[Rec]] = {}

    def run(n):
        recs = make_records(1500, seed=200 + n)
        for i, r in enumerate(recs):
            r.partition = i % 2
            r.headers = [("producer", str(n).encode()), ("i", str(i).encode())]
        results[n] = produce(bs, topic, recs, codec=["none", "lz4", "zstd", "gzip"][n])

    threads = [threading.Thread(target=run, args=(n,)) for n in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert sorted(results) == [0, 1, 2, 3], "a producer thread failed (see output)"
    delivered = [r for n in sorted(results) for r in results[n]]
    assert_offsets_contiguous(sorted(delivered, key=lambda r: (r.partition, r.offset)), 2)
    consumed = consume(bs, topic, partitions=2, expected=len(delivered))
    assert_same_records(delivered, consumed)
    for n in results:  # each producer's records keep their order within a partition
        for p in (0, 1):
            mine = [r.offset for r in results[n] if r.partition == p]
            assert mine == sorted(mine)


def test_consume_from_an_offset_inside_a_batch(broker):
    bs = broker.bootstrap
    topic = unique("mid")
    create_topic(bs, topic, 1)
    records = make_records(1000, seed=21)
    for r in records:
        r.partition = 0
    delivered = produce(bs, topic, records, codec="zstd", config={"linger.ms": 100})
    for start in (0, 1, 333, 999):
        c = consumer(bs)
        try:
            c.assign([TopicPartition(topic, 0, start)])
            got = []
            while len(got) < 1000 - start:
                msg = c.poll(5)
                assert msg is not None, f"from {start}: stalled after {len(got)} records"
                if msg.error() is None:
                    got.append(msg)
            assert got[0].offset() == start
            assert [(m.offset(), m.key(), m.value()) for m in got] == [
                (r.offset, r.key, r.value) for r in delivered[start:]]
        finally:
            c.close()


def test_out_of_range_offset_is_reset(broker):
    bs = broker.bootstrap
    topic = unique("oor")
    create_topic(bs, topic, 1)
    produce(bs, topic, [Rec(b"k", f"v{i}".encode(), partition=0) for i in range(10)])
    for reset, want in (("earliest", 0), ("latest", 10)):
        c = consumer(bs, **{"auto.offset.reset": reset, "enable.partition.eof": True})
        try:
            c.assign([TopicPartition(topic, 0, 1_000_000)])
            deadline = time.monotonic() + 15
            first = None
            while first is None:
                assert time.monotonic() < deadline, f"auto.offset.reset={reset}: no reset from offset 1000000"
                msg = c.poll(0.5)
                if msg is None:
                    continue
                if msg.error() is None or msg.error().code() == KafkaError._PARTITION_EOF:  # a record, or EOF where it reset to
                    first = msg.offset()
            assert first == want, f"auto.offset.reset={reset}: resumed at {first}"
        finally:
            c.close()


def _stored_bytes(data_dir) -> int:
    return sum(p.stat().st_size for p in data_dir.rglob("*") if p.is_file())


@pytest.mark.parametrize("codec", ["lz4", "zstd", "gzip", "snappy"])
def test_topic_compression_type_stores_in_its_codec(broker_factory, codec):
    """compression.type names the codec batches are stored in: records produced uncompressed
    come back identical (confluent-kafka and kcat), and what is stored is compressed."""
    b = broker_factory()
    topic = unique(f"codec-{codec}")
    a = admin(b.bootstrap)
    a.create_topics([NewTopic(topic, 2, 1, config={"compression.type": codec})])[topic].result(30)
    # Compressible values, a few headers, keys and nulls among them.
    records = [Rec(key=None if i % 9 == 0 else f"key-{i % 37}".encode(),
                   value=None if i % 17 == 3 else (f"value {i} " * 60).encode(),
                   headers=[("h", str(i).encode())] if i % 5 == 0 else [])
               for i in range(2000)]
    raw = sum(len(r.value or b"") for r in records)
    before = _stored_bytes(b.data_dir)
    delivered = produce(b.bootstrap, topic, records, codec="none")
    assert_same_records(delivered, consume(b.bootstrap, topic, partitions=2, expected=2000))
    stored = _stored_bytes(b.data_dir) - before
    assert stored < raw / 4, f"{codec}: {stored} bytes stored for {raw} bytes of values"
    by_kcat = kcat_consume_json(b.bootstrap, topic)
    assert len(by_kcat) == 2000
    assert sorted(m["payload"] or "" for m in by_kcat) == sorted((r.value or b"").decode() for r in records)
    # Back to the producer's codec: new batches are stored as sent.
    res = ConfigResource(ResourceType.TOPIC, topic, incremental_configs=[
        ConfigEntry("compression.type", "producer", incremental_operation=AlterConfigOpType.SET)])
    a.incremental_alter_configs([res])[res].result(30)
    time.sleep(0.5)
    before = _stored_bytes(b.data_dir)
    produce(b.bootstrap, topic, records[:500], codec="none")
    assert _stored_bytes(b.data_dir) - before > sum(len(r.value or b"") for r in records[:500])
