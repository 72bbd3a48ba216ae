"""Classic consumer groups with real clients: subscribe, partition assignment across
members, committed offsets that survive the consumer and the broker."""

from __future__ import annotations

import time

from confluent_kafka import KafkaError, TopicPartition

from clients import Rec, consumer, create_topic, make_records, produce, unique
from harness import requires_broker, run_kcat

pytestmark = requires_broker


def group_consumer(bootstrap: str, group: str, **extra):
    conf = {"group.id": group, "enable.partition.eof": False, "session.timeout.ms": 6000,
            "heartbeat.interval.ms": 500}
    conf.update(extra)
    return consumer(bootstrap, **conf)


def poll_n(consumers, n: int, timeout: float = 60) -> list:
    """Polls the consumers round-robin until n distinct (partition, offset) records arrived."""
    got = []
    seen = set()
    deadline = time.monotonic() + timeout
    while len(seen) < n:
        assert time.monotonic() < deadline, f"got {len(seen)} of {n} records in {timeout}s"
        for c in consumers:
            msg = c.poll(0.1)
            if msg is None:
                continue
            if msg.error() is not None:
                assert not msg.error().fatal(), msg.error()
                continue
            got.append((c, msg))
            seen.add((msg.partition(), msg.offset()))
    return got


def test_subscribe_commit_and_resume(broker):
    bs = broker.bootstrap
    topic, group = unique("grp"), unique("g")
    create_topic(bs, topic, 3)
    first = produce(bs, topic, make_records(600, seed=31))

    c = group_consumer(bs, group, **{"enable.auto.commit": False})
    c.subscribe([topic])
    got = poll_n([c], 600)
    c.commit(asynchronous=False)
    committed = c.committed([TopicPartition(topic, p) for p in range(3)], timeout=10)
    c.close()
    assert sorted((m.partition(), m.offset()) for _, m in got) == sorted((r.partition, r.offset) for r in first)
    ends = {p: sum(r.partition == p for r in first) for p in range(3)}
    assert {tp.partition: tp.offset for tp in committed} == ends

    # A new member of the same group resumes after the committed offsets, also after a restart.
    second = produce(bs, topic, make_records(90, seed=32))
    broker.restart()
    c = group_consumer(bs, group)
    c.subscribe([topic])
    got = poll_n([c], 90)
    assert sorted((m.partition(), m.offset()) for _, m in got) == sorted((r.partition, r.offset) for r in second)
    time.sleep(1)
    assert c.poll(1) is None, "records before the committed offsets were delivered again"
    c.close()


def test_two_members_split_the_partitions(broker):
    bs = broker.bootstrap
    topic, group = unique("split"), unique("g")
    create_topic(bs, topic, 4)
    delivered = produce(bs, topic, make_records(800, seed=33))
    a = group_consumer(bs, group)
    b = group_consumer(bs, group)
    try:
        a.subscribe([topic])
        b.subscribe([topic])
        # Wait until both members hold an assignment.
        deadline = time.monotonic() + 60
        while not (a.assignment() and b.assignment()):
            assert time.monotonic() < deadline, f"assignment: a={a.assignment()} b={b.assignment()}"
            a.poll(0.1)
            b.poll(0.1)
        got = poll_n([a, b], 800)
        parts_a = {m.partition() for c, m in got if c is a}
        parts_b = {m.partition() for c, m in got if c is b}
        assert not parts_a & parts_b, f"both members read partitions {parts_a & parts_b}"
        # (a rebalance while reading may deliver a record twice, so compare sets)
        assert {(m.partition(), m.offset()) for _, m in got} == {(r.partition, r.offset) for r in delivered}
    finally:
        a.close()
        b.close()


def test_kcat_balanced_consumer(broker):
    bs = broker.bootstrap
    topic, group = unique("kcg"), unique("g")
    create_topic(bs, topic, 2)
    delivered = produce(bs, topic, [Rec(f"k{i}".encode(), f"v{i}".encode()) for i in range(200)])
    res = run_kcat(["-b", bs, "-G", group, "-o", "beginning", "-e", "-q", "-f", "%p %o %s\\n",
                    "-X", "session.timeout.ms=6000", topic], timeout=90)
    rows = sorted(tuple(line.split()) for line in res.stdout.decode().splitlines() if line.strip())
    assert rows == sorted((str(r.partition), str(r.offset), r.value.decode()) for r in delivered)


def test_unknown_group_offsets_are_unset(broker):
    bs = broker.bootstrap
    topic = unique("nocommit")
    create_topic(bs, topic, 1)
    c = group_consumer(bs, unique("fresh"))
    try:
        tp = c.committed([TopicPartition(topic, 0)], timeout=10)[0]
        assert tp.error is None or tp.error.code() == KafkaError.NO_ERROR
        assert tp.offset < 0, f"a group that never committed has offset {tp.offset}"
    finally:
        c.close()
