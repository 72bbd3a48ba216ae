"""Idempotent producers (confluent-kafka, enable.idempotence=true): exactly once per partition
while commits are applied but reported as failed (the test broker `kafscale-faulty` with
FAULT_METADATA_LOST_REPLY_EVERY), and across a change of leader in a cluster."""

from __future__ import annotations

import os
import signal
import time

import pytest
from confluent_kafka import Producer

from clients import create_topic, read_all, unique
from history import History
from harness import FAULTY_BIN

N = 20_000
PARTITIONS = 3


def produce_numbered(bootstrap: str, topic: str, n: int, idempotent: bool, during=None,
                     rounds: int = 1) -> tuple[History, list[str]]:
    """Produces 0..n round-robin over the partitions, in `rounds` rounds that each wait for
    their records to be delivered (more rounds: more, smaller flushes). Returns the history
    of sends and deliveries (for history.py, the oracle) and the delivery errors."""
    # A request timeout shorter than the injected outage (1.2 s): the producer retries
    # batches whose commit the broker is still resolving, and which did commit.
    p = Producer({"bootstrap.servers": bootstrap, "acks": "all", "linger.ms": 2,
                  "enable.idempotence": idempotent, "message.timeout.ms": 120000,
                  "request.timeout.ms": 500, "retry.backoff.ms": 20, "batch.num.messages": 200})
    history = History(idempotent=idempotent)
    errors: list[str] = []

    def cb(err, msg):
        if err is not None:
            errors.append(str(err))
            history.fail(msg.partition(), msg.value())
        else:
            history.ack(msg.partition(), msg.offset(), msg.value())

    for i in range(n):
        value = f"{i:08d}".encode()
        while True:
            try:
                p.produce(topic, value=value, partition=i % PARTITIONS, on_delivery=cb)
                history.send(i % PARTITIONS, value)
                break
            except BufferError:
                p.poll(0.05)
        p.poll(0)
        if during is not None and i == n // 2:
            during()
        if (i + 1) % max(1, n // rounds) == 0:
            p.flush(120)
    assert p.flush(120) == 0
    return history, errors


def assert_exactly_once_in_order(bootstrap: str, topic: str, history: History, n: int) -> None:
    """Every record acknowledged, and the log holds each once, in the order sent."""
    assert history.idempotent
    assert len(history.acked) == n, f"{n - len(history.acked)} records not acknowledged"
    read_all(bootstrap, topic, PARTITIONS, history, timeout=120)
    history.check()


FAULTS = dict(binary=FAULTY_BIN, env={"FAULT_METADATA_LOST_REPLY_EVERY": "3"}, config='"flush.ms" = 2\n')


def test_idempotent_producer_is_exactly_once_when_commit_replies_are_lost(broker_factory):
    b = broker_factory(**FAULTS)
    topic = unique("idem")
    create_topic(b.bootstrap, topic, PARTITIONS)
    history, errors = produce_numbered(b.bootstrap, topic, N, idempotent=True)
    assert not errors, errors[:5]
    lost = b.log_text().count("reply is lost")
    assert lost >= 3, f"the fault fired {lost} times; the test proves nothing"
    assert_exactly_once_in_order(b.bootstrap, topic, history, N)
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
    history, errors = produce_numbered(b.bootstrap, topic, 600, idempotent=False, rounds=3)
    print(f"\ndelivery errors: {len(errors)} {errors[:3]}")
    lost = b.log_text().count("reply is lost")
    assert lost >= 1, "the fault never fired"
    read_all(b.bootstrap, topic, PARTITIONS, history, timeout=120)
    history.check()  # duplicates are legal here, losses and misplacements are not
    duplicates = history.duplicated_values()
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
    history, errors = produce_numbered(bootstrap, topic, N, idempotent=True, during=lambda: brokers[1].kill())
    assert not errors, errors[:5]
    assert_exactly_once_in_order(brokers[0].bootstrap, topic, history, N)
