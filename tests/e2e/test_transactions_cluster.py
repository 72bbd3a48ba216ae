"""Transactions across a cluster of three brokers on real etcd and SeaweedFS: the coordinator
sends the commit and abort markers (WriteTxnMarkers) to the brokers leading the other
partitions of a transaction, so a read_committed consumer sees exactly the committed records
of every partition, and offsets sent in a transaction become those of a group coordinated by
another broker when it commits; and a transaction whose coordinator is killed (kill -9) after it
prepared the commit and before every marker was written is completed by the next one. With the
raw protocol: a zombie cannot make offsets visible in a group another broker coordinates, and a
leader verifies a transactional batch with the coordinator on another broker (KIP-890), answering
NOT_ENOUGH_REPLICAS while it is gone."""

from __future__ import annotations

import json
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


# ---- the raw protocol: the steps of a transaction one at a time, as no client library
# lets a test interleave them (a zombie's request after its successor's init).

class Raw:
    """One connection speaking the Kafka protocol through kafka-python's request classes."""

    def __init__(self, addr: str):
        import socket
        from kafka.protocol.parser import KafkaProtocol
        host, port = addr.rsplit(":", 1)
        self.sock = socket.create_connection((host, int(port)), timeout=30)
        self.proto = KafkaProtocol(client_id="e2e-raw")

    def call(self, req):
        self.proto.send_request(req)
        self.sock.sendall(self.proto.send_bytes())
        while True:
            data = self.sock.recv(65536)
            assert data, "connection closed"
            for _, resp in self.proto.receive_bytes(data):
                return resp

    def close(self):
        self.sock.close()


def _coordinator(via: Raw, key: str, key_type: int) -> int:
    from kafka.protocol.find_coordinator import FindCoordinatorRequest_v1
    resp = via.call(FindCoordinatorRequest_v1(coordinator_key=key, coordinator_type=key_type))
    assert resp.error_code == 0, resp
    return resp.coordinator_id


def _init(conn: Raw, txn_id: str) -> tuple[int, int]:
    from kafka.protocol.init_producer_id import InitProducerIdRequest_v1
    resp = conn.call(InitProducerIdRequest_v1(transactional_id=txn_id, transaction_timeout_ms=60000))
    assert resp.error_code == 0, resp
    return resp.producer_id, resp.producer_epoch


def _txn_offset_commit(conn: Raw, txn_id: str, group: str, producer: tuple[int, int], topic: str,
                       partition: int, offset: int) -> int:
    from kafka.protocol.txn_offset_commit import TxnOffsetCommitRequest_v1
    resp = conn.call(TxnOffsetCommitRequest_v1(
        transactional_id=txn_id, group_id=group, producer_id=producer[0], producer_epoch=producer[1],
        topics=[(topic, [(partition, offset, "")])]))
    return resp.topics[0][1][0][1]


def _produce_txn(conn: Raw, txn_id: str, producer: tuple[int, int], topic: str, partition: int,
                 sequence: int, value: bytes) -> int:
    from kafka.protocol.produce import ProduceRequest_v3
    from kafka.record.default_records import DefaultRecordBatchBuilder
    b = DefaultRecordBatchBuilder(magic=2, compression_type=0, is_transactional=1, producer_id=producer[0],
                                  producer_epoch=producer[1], base_sequence=sequence, batch_size=1 << 20)
    b.append(0, int(time.time() * 1000), None, value, [])
    resp = conn.call(ProduceRequest_v3(transactional_id=txn_id, required_acks=-1, timeout=30000,
                                       topics=[(topic, [(partition, bytes(b.build()))])]))
    return resp.topics[0][1][0][1]


def _end(conn: Raw, txn_id: str, producer: tuple[int, int], commit: bool) -> int:
    from kafka.protocol.end_txn import EndTxnRequest_v1
    return conn.call(EndTxnRequest_v1(transactional_id=txn_id, producer_id=producer[0],
                                      producer_epoch=producer[1], committed=commit)).error_code


def _raw_cluster(broker_factory):
    brokers, topic, ld = start(broker_factory)
    conns = {int(b.name[1:]): Raw(b.bootstrap) for b in brokers}
    return brokers, topic, ld, conns


def test_a_zombie_cannot_make_its_offsets_visible_in_a_group_on_another_broker(broker_factory):
    from kafka.protocol.add_offsets_to_txn import AddOffsetsToTxnRequest_v1
    brokers, topic, _, conns = _raw_cluster(broker_factory)
    txn_id = unique("tid")
    tc = conns[_coordinator(conns[1], txn_id, 1)]
    group = next(g for g in (unique("grp") for _ in range(64))
                 if _coordinator(conns[1], g, 0) != _coordinator(conns[1], txn_id, 1))
    gc = conns[_coordinator(conns[1], group, 0)]
    zombie = _init(tc, txn_id)
    # The zombie stages an offset in the group without adding the group to a transaction
    # (so no marker of its epoch reaches the group's broker), then a new producer of the
    # transactional id fences it and commits an offset of another partition.
    assert _txn_offset_commit(gc, txn_id, group, zombie, topic, 0, 70) == 0
    current = _init(tc, txn_id)
    assert current[0] == zombie[0] and current[1] > zombie[1]
    resp = tc.call(AddOffsetsToTxnRequest_v1(transactional_id=txn_id, producer_id=current[0],
                                             producer_epoch=current[1], group_id=group))
    assert resp.error_code == 0
    assert _txn_offset_commit(gc, txn_id, group, current, topic, 1, 90) == 0
    assert _end(tc, txn_id, current, True) == 0
    c = Consumer({"bootstrap.servers": brokers[0].bootstrap, "group.id": group, "enable.auto.commit": False})

    def committed(p: int) -> int:
        return c.committed([TopicPartition(topic, p)], timeout=10)[0].offset

    assert wait_for("the new producer's offset", lambda: committed(1) == 90, timeout=10)
    assert committed(0) < 0, "the zombie's staged offset became visible"
    # The group's broker has seen the newer epoch: the zombie is refused there
    # (INVALID_PRODUCER_EPOCH at TxnOffsetCommit v1), though it does not coordinate the id.
    assert _txn_offset_commit(gc, txn_id, group, zombie, topic, 0, 71) == 47
    c.close()


def test_a_leader_verifies_the_transaction_with_a_coordinator_on_another_broker(broker_factory):
    from kafka.protocol.add_partitions_to_txn import AddPartitionsToTxnRequest_v1
    brokers, topic, ld, conns = _raw_cluster(broker_factory)
    txn_id = unique("tid")
    coord = _coordinator(conns[1], txn_id, 1)
    tc = conns[coord]
    added, other = [p for p, leader in sorted(ld.items()) if leader != coord][:2]
    producer = _init(tc, txn_id)
    resp = tc.call(AddPartitionsToTxnRequest_v1(transactional_id=txn_id, producer_id=producer[0],
                                                producer_epoch=producer[1], topics=[(topic, [added])]))
    assert resp.results[0][1][0][1] == 0, resp
    # Added: appended by its leader, which asked the coordinator. Never added: refused
    # (INVALID_TXN_STATE) by its leader, which does not coordinate the transactional id.
    assert _produce_txn(conns[ld[added]], txn_id, producer, topic, added, 0, b"in") == 0
    assert _produce_txn(conns[ld[other]], txn_id, producer, topic, other, 0, b"outside") == 48
    assert _end(tc, txn_id, producer, True) == 0
    # The commit marker ended the transaction in the partition: a late batch of the same
    # producer and epoch is verified again, and refused.
    assert _produce_txn(conns[ld[added]], txn_id, producer, topic, added, 1, b"late") == 48
    got = read(brokers[0].bootstrap, topic, PARTITIONS, "read_uncommitted", expect=1, timeout=30)
    assert values(got) == [b"in"]


def test_a_leader_answers_retriably_while_the_coordinator_is_gone(broker_factory):
    from kafka.protocol.add_partitions_to_txn import AddPartitionsToTxnRequest_v1
    brokers, topic, ld, conns = _raw_cluster(broker_factory)
    txn_id = unique("tid")
    coord = _coordinator(conns[1], txn_id, 1)
    part = next(p for p, leader in sorted(ld.items()) if leader != coord)
    producer = _init(conns[coord], txn_id)
    resp = conns[coord].call(AddPartitionsToTxnRequest_v1(
        transactional_id=txn_id, producer_id=producer[0], producer_epoch=producer[1], topics=[(topic, [part])]))
    assert resp.results[0][1][0][1] == 0, resp
    conns[coord].close()
    by_id = {int(b.name[1:]): b for b in brokers}
    by_id[coord].kill()
    survivor = next(b for i, b in by_id.items() if i != coord)
    # The coordinator cannot be asked: NOT_ENOUGH_REPLICAS, which producers retry. Once a new
    # coordinator has the transactional id, the same batch is verified and appended.
    codes = []

    def appended() -> bool:
        leader = leaders(survivor.bootstrap, topic).get(part)
        if leader is None or leader == coord:
            return False
        codes.append(_produce_txn(conns[leader], txn_id, producer, topic, part, 0, b"after"))
        return codes[-1] == 0

    t0 = time.monotonic()
    assert wait_for("the batch to be verified by the new coordinator", appended, timeout=30, step=0.3)
    assert set(codes) <= {0, 6, 19}, codes  # NOT_LEADER_OR_FOLLOWER while partitions move
    assert codes[0] == 19, codes
    print(f"\nverified by the new coordinator {time.monotonic() - t0:.1f} s after the kill -9, codes {codes}")
    new = _coordinator(conns[int(survivor.name[1:])], txn_id, 1)
    assert new != coord
    assert _end(conns[new], txn_id, producer, True) == 0
    got = read(survivor.bootstrap, topic, PARTITIONS, "read_committed", expect=1, timeout=30)
    assert values(got) == [b"after"]


def test_markers_travel_on_a_sasl_inter_broker_listener(broker_factory, tmp_path):
    """With the inter-broker listener SASL_PLAINTEXT (SCRAM), brokers log in to each other with
    the client properties of `inter.broker.client.config`: markers reach partitions led by
    other brokers, and their audit trails show the brokers' own principal logging in."""
    from confluent_kafka.admin import ScramCredentialInfo, ScramMechanism, UserScramCredentialUpsertion

    client = tmp_path / "inter-broker.properties"
    client.write_text("security.protocol=SASL_PLAINTEXT\nsasl.mechanism=SCRAM-SHA-256\n"
                      "sasl.username=interbroker\nsasl.password=inter-secret\n")
    ns = unique("txs")
    brokers = []
    for i in range(3):
        config = CONFIG + f"""
"listener.security.protocol.map" = "PLAINTEXT:PLAINTEXT,SASL_PLAINTEXT:SASL_PLAINTEXT"
"listener.name.sasl_plaintext.sasl.enabled.mechanisms" = "SCRAM-SHA-256"
"inter.broker.listener.name" = "SASL_PLAINTEXT"
"inter.broker.client.config" = "{client}"
"audit.log.file" = "{tmp_path / f'audit-{i + 1}.log'}"
"""
        brokers.append(broker_factory(args=cluster_args(ETCD_URL, ns, i + 1), config=config, name=f"b{i + 1}",
                                      listeners=["SASL_PLAINTEXT"]))
    b1 = brokers[0]
    admin = AdminClient({"bootstrap.servers": b1.bootstrap})
    upsert = UserScramCredentialUpsertion("interbroker", ScramCredentialInfo(ScramMechanism.SCRAM_SHA_256, 4096),
                                          b"inter-secret")
    for f in admin.alter_user_scram_credentials([upsert]).values():
        f.result(30)
    topic = unique("txs")
    create(b1.bootstrap, topic, PARTITIONS)
    wait_for("2 partitions per broker", lambda: spread_ok(b1.bootstrap, topic, {1, 2, 3}, 2))
    p = producer(b1.bootstrap, unique("tid"))
    p.begin_transaction()
    committed = send(p, topic, "sasl")
    p.commit_transaction(30)
    p.begin_transaction()
    send(p, topic, "aborted")
    p.abort_transaction(30)
    got = read(b1.bootstrap, topic, PARTITIONS, "read_committed", expect=len(committed), timeout=30)
    assert sorted(values(got)) == sorted(committed)
    logins = []
    for i in range(3):
        path = tmp_path / f"audit-{i + 1}.log"
        for line in (path.read_text().splitlines() if path.exists() else []):
            e = json.loads(line)["fields"]
            if e.get("event") == "authentication" and e.get("principal") == "User:interbroker":
                logins.append((i + 1, e["outcome"], e["listener"]))
    assert logins and all(o == "success" and lst == "SASL_PLAINTEXT" for _, o, lst in logins), logins
