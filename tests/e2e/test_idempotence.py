"""Idempotent producers (confluent-kafka, enable.idempotence=true): exactly once per partition
while commits are applied but reported as failed (the test broker `kafscale-faulty` with
FAULT_METADATA_LOST_REPLY_EVERY), and across a change of leader in a cluster."""

from __future__ import annotations

import os
import signal
import time

import pytest
from confluent_kafka import Consumer, KafkaError, Producer, TopicPartition

from clients import create_topic, unique
from harness import FAULTY_BIN

N = 20_000
PARTITIONS = 3


def produce_numbered(bootstrap: str, topic: str, n: int, idempotent: bool, during=None,
                     rounds: int = 1) -> list[str]:
    """Produces 0..n round-robin over the partitions, in `rounds` rounds that each wait for
    their records to be delivered (more rounds: more, smaller flushes)."""
    # A request timeout shorter than the injected outage (1.2 s): the producer retries
    # batches whose commit the broker is still resolving, and which did commit.
    p = Producer({"bootstrap.servers": bootstrap, "acks": "all", "linger.ms": 2,
                  "enable.idempotence": idempotent, "message.timeout.ms": 120000,
                  "request.timeout.ms": 500, "retry.backoff.ms": 20, "batch.num.messages": 200})
    errors: list[str] = []

    def cb(err, msg):
        if err is not None:
            errors.append(str(err))

    for i in range(n):
        while True:
            try:
                p.produce(topic, value=f"{i:08d}".encode(), partition=i % PARTITIONS, on_delivery=cb)
                break
            except BufferError:
                p.poll(0.05)
        p.poll(0)
        if during is not None and i == n // 2:
            during()
        if (i + 1) % max(1, n // rounds) == 0:
            p.flush(120)
    assert p.flush(120) == 0
    return errors


def read_values(bootstrap: str, topic: str) -> dict[int, list[int]]:
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": unique("r"), "enable.auto.commit": False,
                  "enable.partition.eof": True, "auto.offset.reset": "earliest"})
    c.assign([TopicPartition(topic, p, 0) for p in range(PARTITIONS)])
    out: dict[int, list[int]] = {p: [] for p in range(PARTITIONS)}
    at_end: set[int] = set()
    deadline = time.monotonic() + 120
    try:
        while len(at_end) < PARTITIONS:
            assert time.monotonic() < deadline, "reading back timed out"
            msg = c.poll(0.2)
            if msg is None:
                continue
            if msg.error() is not None:
                if msg.error().code() == KafkaError._PARTITION_EOF:
                    at_end.add(msg.partition())
                continue
            at_end.discard(msg.partition())
            out[msg.partition()].append(int(msg.value()))
    finally:
        c.close()
    return out


def assert_exactly_once_in_order(values: dict[int, list[int]], n: int) -> None:
    for p, vs in values.items():
        expected = list(range(p, n, PARTITIONS))
        assert vs == expected, (f"partition {p}: {len(vs)} records, {len(vs) - len(set(vs))} duplicates, "
                                f"{len(set(expected) - set(vs))} missing, in order: {vs == sorted(vs)}")


FAULTS = dict(binary=FAULTY_BIN, env={"FAULT_METADATA_LOST_REPLY_EVERY": "3"}, config='"flush.ms" = 2\n')


def test_idempotent_producer_is_exactly_once_when_commit_replies_are_lost(broker_factory):
    b = broker_factory(**FAULTS)
    topic = unique("idem")
    create_topic(b.bootstrap, topic, PARTITIONS)
    errors = produce_numbered(b.bootstrap, topic, N, idempotent=True)
    assert not errors, errors[:5]
    lost = b.log_text().count("reply is lost")
    assert lost >= 3, f"the fault fired {lost} times; the test proves nothing"
    assert_exactly_once_in_order(read_values(b.bootstrap, topic), N)
    print(f"\n{N} records, {lost} commit replies lost, no duplicates")


def test_without_idempotence_the_same_faults_duplicate(broker_factory):
    """The control: the fault really makes clients retry committed batches."""
    b = broker_factory(**FAULTS)
    topic = unique("dup")
    create_topic(b.bootstrap, topic, PARTITIONS)
    # Far fewer records than the idempotent runs: without idempotence every retry is a new
    # append, so each lost reply costs another outage and the run slows down the more it
    # retries (20,000 records did not finish in minutes on a busy machine). A few rounds
    # (a few flushes, so the fault fires) already leave duplicates behind.
    errors = produce_numbered(b.bootstrap, topic, 600, idempotent=False, rounds=3)
    print(f"\ndelivery errors: {len(errors)} {errors[:3]}")
    lost = b.log_text().count("reply is lost")
    assert lost >= 1, "the fault never fired"
    values = read_values(b.bootstrap, topic)
    duplicates = sum(len(vs) - len(set(vs)) for vs in values.values())
    print({p: (len(vs), len(set(vs))) for p, vs in values.items()})
    assert duplicates > 0, "no duplicates without idempotence: the injected faults did not bite"
    print(f"\nwithout idempotence: {duplicates} duplicates")


ETCD_URL = os.environ.get("KAFSCALE_TEST_ETCD_URL")
S3_URL = os.environ.get("KAFSCALE_TEST_S3_URL")


@pytest.mark.skipif(not (ETCD_URL and S3_URL) and os.environ.get("KAFSCALE_TEST_REQUIRE_ETCD") != "1",
                    reason="no etcd / S3 server; ./scripts/test.sh starts both")
def test_idempotent_producer_is_exactly_once_across_a_leader_kill(broker_factory):
    ns = unique("idemcl")
    config = '"broker.session.timeout.ms" = 3000\n"flush.ms" = 2\n'
    brokers = [broker_factory(args=["--metadata", f"{ETCD_URL}/{ns}", "--object-store", f"{S3_URL}/{ns}",
                                    "--broker-id", str(i)], config=config, name=f"b{i}") for i in (1, 2)]
    topic = unique("idemcl")
    create_topic(brokers[0].bootstrap, topic, PARTITIONS)
    time.sleep(1.0)
    bootstrap = ",".join(b.bootstrap for b in brokers)
    errors = produce_numbered(bootstrap, topic, N, idempotent=True, during=lambda: brokers[1].kill())
    assert not errors, errors[:5]
    assert_exactly_once_in_order(read_values(brokers[0].bootstrap, topic), N)
