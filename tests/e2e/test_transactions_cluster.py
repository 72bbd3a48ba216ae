"""Transactions across a cluster of three brokers on real etcd and SeaweedFS: the coordinator
sends the commit and abort markers (WriteTxnMarkers) to the brokers leading the other
partitions of a transaction, so a read_committed consumer sees exactly the committed records
of every partition, and offsets sent in a transaction become those of a group coordinated by
another broker when it commits; and a transaction whose coordinator is killed (kill -9) after it
prepared the commit and before every marker was written is completed by the next one."""

from __future__ import annotations

import os
import signal
import threading
import time

from confluent_kafka import Consumer, Producer, TopicPartition
from confluent_kafka.admin import AdminClient

from clients import unique
from test_cluster import CLUSTER_CONFIG, cluster_args, create, leaders, pytestmark, spread_ok, wait_for  # noqa: F401
from test_cluster import ETCD_URL
from test_transactions import read, values

CONFIG = CLUSTER_CONFIG + '"transaction.abort.timed.out.transaction.cleanup.interval.ms" = 200\n'
PARTITIONS = 6


def start(broker_factory):
    ns = unique("txc")
    brokers = [broker_factory(args=cluster_args(ETCD_URL, ns, i + 1), config=CONFIG, name=f"b{i + 1}")
               for i in range(3)]
    topic = unique("txc")
    create(brokers[0].bootstrap, topic, PARTITIONS)
    ld = wait_for("2 partitions per broker", lambda: spread_ok(brokers[0].bootstrap, topic, {1, 2, 3}, 2))
    return brokers, topic, ld


def producer(bootstrap: str, txn_id: str) -> Producer:
    p = Producer({"bootstrap.servers": bootstrap, "transactional.id": txn_id, "linger.ms": 5,
                  "transaction.timeout.ms": 60000})
    p.init_transactions(30)
    return p


def send(p: Producer, topic: str, tag: str) -> list[bytes]:
    """One record per partition, all delivered; their values."""
    sent = []
    for part in range(PARTITIONS):
        v = f"{tag}-{part}".encode()
        p.produce(topic, value=v, partition=part)
        sent.append(v)
    assert p.flush(30) == 0
    return sent


def coordinator(brokers, outcome: str):
    """The broker that counted a transaction with this outcome (its coordinator)."""
    counted = [b for b in brokers if b.alive() and b.metric("kafscale_transactions_total", f'outcome="{outcome}"') > 0]
    assert len(counted) == 1, [b.name for b in counted]
    return counted[0]


def test_markers_reach_partitions_led_by_other_brokers(broker_factory):
    brokers, topic, ld = start(broker_factory)
    b1 = brokers[0]
    p = producer(b1.bootstrap, unique("tid"))
    committed: list[bytes] = []
    for round_, commit in enumerate([True, False, True]):
        p.begin_transaction()
        sent = send(p, topic, f"r{round_}")
        t0 = time.monotonic()
        if commit:
            p.commit_transaction(30)
            committed += sent
        else:
            p.abort_transaction(30)
        took = time.monotonic() - t0
        print(f"\n{'commit' if commit else 'abort'} over {PARTITIONS} partitions on 3 brokers: {took * 1000:.0f} ms")
        assert took < 5, f"ending the transaction took {took:.1f} s"
    coord = coordinator(brokers, "commit")
    assert set(ld.values()) - {int(coord.name[1:])}, "some partitions are led elsewhere"
    got = read(b1.bootstrap, topic, PARTITIONS, "read_committed", expect=len(committed), timeout=30)
    assert sorted(values(got)) == sorted(committed)
    every = read(b1.bootstrap, topic, PARTITIONS, "read_uncommitted", expect=3 * PARTITIONS, timeout=30)
    assert len(every) == 3 * PARTITIONS
    # Markers written by WriteTxnMarkers take offsets too: one per transaction per partition.
    for part in range(PARTITIONS):
        offsets = sorted(o for q, o, _ in every if q == part)
        assert offsets == [0, 2, 4], (part, offsets)


def test_offsets_reach_a_group_coordinated_by_another_broker(broker_factory):
    brokers, topic, _ = start(broker_factory)
    b1 = brokers[0]
    p = producer(b1.bootstrap, unique("tid"))
    p.begin_transaction()
    send(p, topic, "first")
    p.commit_transaction(30)
    txn_coord = int(coordinator(brokers, "commit").name[1:])
    admin = AdminClient({"bootstrap.servers": b1.bootstrap})

    def group_coordinator(g: str) -> int:
        return admin.describe_consumer_groups([g])[g].result(10).coordinator.id

    group = next(g for g in (unique("grp") for _ in range(64)) if group_coordinator(g) != txn_coord)
    c = Consumer({"bootstrap.servers": b1.bootstrap, "group.id": group,
                  "enable.auto.commit": False, "auto.offset.reset": "earliest"})
    meta = c.consumer_group_metadata()

    def committed() -> int:
        return c.committed([TopicPartition(topic, 0)], timeout=10)[0].offset

    p.begin_transaction()
    send(p, topic, "aborted")
    p.send_offsets_to_transaction([TopicPartition(topic, 0, 5)], meta, 30)
    p.abort_transaction(30)
    assert committed() < 0
    p.begin_transaction()
    send(p, topic, "committed")
    p.send_offsets_to_transaction([TopicPartition(topic, 0, 7)], meta, 30)
    p.commit_transaction(30)
    assert wait_for("the group's offset", lambda: committed() == 7, timeout=10)
    c.close()


def test_a_new_coordinator_completes_a_commit_its_killed_predecessor_prepared(broker_factory):
    brokers, topic, ld = start(broker_factory)
    txn_id = unique("tid")
    # A first transaction tells which broker coordinates the id.
    p = producer(brokers[0].bootstrap, txn_id)
    p.begin_transaction()
    first = send(p, topic, "first")
    p.commit_transaction(30)
    coord = coordinator(brokers, "commit")
    coord_id = int(coord.name[1:])
    # A broker leading partitions of the transaction is paused, so the coordinator prepares
    # the commit and then waits on its markers: that is when it is killed.
    other = next(b for b in brokers if b is not coord)
    paused = next(b for b in brokers if b is not coord and b is not other)
    assert [q for q, l in ld.items() if l == int(paused.name[1:])]
    p.begin_transaction()
    second = send(p, topic, "second")
    os.kill(paused.pid, signal.SIGSTOP)
    outcome: list[object] = []
    ending = threading.Thread(target=lambda: outcome.append(_commit(p)), daemon=True)
    try:
        ending.start()
        wait_for("the commit to be prepared", lambda: "PrepareCommit" in _state(other, txn_id), timeout=20)
        coord.kill()
    finally:
        os.kill(paused.pid, signal.SIGCONT)
    t0 = time.monotonic()
    ending.join(60)
    assert outcome == [None], outcome
    took = time.monotonic() - t0
    got = read(other.bootstrap, topic, PARTITIONS, "read_committed", expect=2 * PARTITIONS, timeout=30)
    assert sorted(values(got)) == sorted(first + second)
    print(f"\ncommit completed by the new coordinator {took:.1f} s after the kill -9 of broker {coord_id}")


def _commit(p: Producer) -> object:
    try:
        p.commit_transaction(60)
        return None
    except Exception as e:  # reported by the assertion on the outcome
        return e


def _state(via, txn_id: str) -> str:
    """The transaction's state as its coordinator describes it (the CLI asks the
    coordinator, found by FindCoordinator through `via`)."""
    from test_cli import cli
    res = cli(via, "transactions", "describe", txn_id, check=False, timeout=10)
    return res.stdout
