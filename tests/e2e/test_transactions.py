"""Transactions with confluent-kafka: a transactional producer's committed records are read by
read_committed consumers and its aborted ones never are (read_uncommitted consumers see both,
and neither sees the markers); a second producer with the same transactional.id fences the
first; an abandoned transaction is aborted after its timeout; offsets sent with
send_offsets_to_transaction become the group's only when the transaction commits. kafkajs,
with its own transaction API, sees the same."""

from __future__ import annotations

import json
import shutil
import subprocess
import time
from pathlib import Path

import pytest
from confluent_kafka import Consumer, KafkaException, Producer, TopicPartition

from clients import create_topic, unique
from test_cli import cli, cli_json

HERE = Path(__file__).resolve().parent

# The coordinator looks for expired transactions this often.
CONFIG = '"transaction.abort.timed.out.transaction.cleanup.interval.ms" = 200\n"flush.ms" = 5\n'


@pytest.fixture
def txn_broker(broker_factory):
    return broker_factory(config=CONFIG)


def txn_producer(bootstrap: str, txn_id: str, **extra) -> Producer:
    conf = {"bootstrap.servers": bootstrap, "transactional.id": txn_id, "linger.ms": 5}
    conf.update(extra)
    p = Producer(conf)
    p.init_transactions(30)
    return p


def read(bootstrap: str, topic: str, partitions: int, isolation: str, expect: int | None = None,
         timeout: float = 30) -> list[tuple[int, int, bytes]]:
    """(partition, offset, value) of every record a consumer with this isolation level reads,
    until the end of each partition (or `expect` records)."""
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": unique("reader"),
                  "isolation.level": isolation, "enable.auto.commit": False,
                  "enable.partition.eof": True, "auto.offset.reset": "earliest"})
    c.assign([TopicPartition(topic, p, 0) for p in range(partitions)])
    out: list[tuple[int, int, bytes]] = []
    at_end: set[int] = set()
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            m = c.poll(0.2)
            if m is None:
                continue
            if m.error():
                if m.error().code() == -191:  # _PARTITION_EOF
                    at_end.add(m.partition())
                    if len(at_end) == partitions and (expect is None or len(out) >= expect):
                        break
                    continue
                raise KafkaException(m.error())
            at_end.discard(m.partition())
            out.append((m.partition(), m.offset(), m.value()))
            if expect is not None and len(out) >= expect and len(at_end) == partitions:
                break
    finally:
        c.close()
    return out


def values(records) -> list[bytes]:
    return [v for _, _, v in records]


def test_committed_records_are_read_and_aborted_ones_are_not(txn_broker):
    topic = unique("txn")
    create_topic(txn_broker.bootstrap, topic, 2)
    p = txn_producer(txn_broker.bootstrap, unique("tid"))
    sent: list[tuple[int, bytes, bool]] = []  # (partition, value, committed), in send order
    for round_, commit in enumerate([True, False, True, False, True]):
        p.begin_transaction()
        for i in range(20):
            v = f"{round_}-{commit}-{i:03d}".encode()
            p.produce(topic, value=v, partition=i % 2)
            sent.append((i % 2, v, commit))
        if commit:
            p.commit_transaction(30)
        else:
            # Delivered first: librdkafka drops what it has not sent yet when aborting.
            assert p.flush(30) == 0
            p.abort_transaction(30)

    every = read(txn_broker.bootstrap, topic, 2, "read_uncommitted", expect=100)
    committed = read(txn_broker.bootstrap, topic, 2, "read_committed", expect=60)
    for part in (0, 1):
        # Both outcomes, in send order; the markers are not records but take offsets.
        mine = [(o, v) for q, o, v in every if q == part]
        assert [v for _, v in mine] == [v for q, v, _ in sent if q == part]
        offsets = [o for o, _ in mine]
        assert offsets[-1] - offsets[0] + 1 == len(offsets) + 4, "one marker per transaction"
        # Committed records only, in send order.
        got = [v for q, _, v in committed if q == part]
        assert got == [v for q, v, ok in sent if q == part and ok]
    assert txn_broker.metric("kafscale_transactions_total", 'outcome="commit"') == 3
    assert txn_broker.metric("kafscale_transactions_total", 'outcome="abort"') == 2


def test_a_second_producer_fences_the_first(txn_broker):
    topic = unique("zombie")
    create_topic(txn_broker.bootstrap, topic, 1)
    tid = unique("tid")
    old = txn_producer(txn_broker.bootstrap, tid)
    old.begin_transaction()
    old.produce(topic, value=b"zombie-1")
    old.flush(30)
    new = txn_producer(txn_broker.bootstrap, tid)
    # The old producer's transaction was aborted; its commit is refused as fenced.
    old.produce(topic, value=b"zombie-2")
    with pytest.raises(KafkaException) as fenced:
        old.commit_transaction(30)
    err = fenced.value.args[0]
    assert err.fatal() or "fenced" in str(err).lower(), str(err)
    new.begin_transaction()
    new.produce(topic, value=b"live")
    new.commit_transaction(30)
    committed = read(txn_broker.bootstrap, topic, 1, "read_committed", expect=1)
    assert values(committed) == [b"live"]


def test_an_abandoned_transaction_is_aborted_after_its_timeout(txn_broker):
    topic = unique("abandoned")
    create_topic(txn_broker.bootstrap, topic, 1)
    left = txn_producer(txn_broker.bootstrap, unique("tid"), **{"transaction.timeout.ms": 1500})
    left.begin_transaction()
    left.produce(topic, value=b"left-open")
    left.flush(30)
    # Another producer commits after it: read_committed consumers wait for the open
    # transaction until the coordinator aborts it.
    other = txn_producer(txn_broker.bootstrap, unique("tid"))
    other.begin_transaction()
    other.produce(topic, value=b"after")
    other.commit_transaction(30)
    started = time.monotonic()
    committed = read(txn_broker.bootstrap, topic, 1, "read_committed", expect=1, timeout=30)
    assert values(committed) == [b"after"]
    waited = time.monotonic() - started
    assert txn_broker.metric("kafscale_transactions_timed_out_total") >= 1
    print(f"\nthe abandoned transaction held read_committed readers for {waited:.1f} s")


def test_offsets_sent_in_a_transaction_become_the_groups_on_commit(txn_broker):
    topic = unique("offsets")
    create_topic(txn_broker.bootstrap, topic, 1)
    group = unique("group")
    c = Consumer({"bootstrap.servers": txn_broker.bootstrap, "group.id": group,
                  "enable.auto.commit": False, "auto.offset.reset": "earliest"})
    c.assign([TopicPartition(topic, 0, 0)])
    # read_uncommitted: OffsetFetch without require_stable, answered while a transaction
    # has offsets pending.
    plain = Consumer({"bootstrap.servers": txn_broker.bootstrap, "group.id": group,
                      "isolation.level": "read_uncommitted"})
    p = txn_producer(txn_broker.bootstrap, unique("tid"))

    def committed(consumer=c, timeout: float = 10) -> int:
        return consumer.committed([TopicPartition(topic, 0)], timeout=timeout)[0].offset

    meta = c.consumer_group_metadata()
    p.begin_transaction()
    p.produce(topic, value=b"x")
    p.send_offsets_to_transaction([TopicPartition(topic, 0, 5)], meta, 30)
    p.abort_transaction(30)
    assert committed() < 0
    p.begin_transaction()
    p.produce(topic, value=b"y")
    p.send_offsets_to_transaction([TopicPartition(topic, 0, 7)], meta, 30)
    assert committed(plain) < 0
    # A read_committed consumer (require_stable) is told UNSTABLE_OFFSET_COMMIT and waits
    # for the transaction to end (KIP-447), as against Kafka.
    with pytest.raises(KafkaException, match="Timed out"):
        committed(timeout=2)
    p.commit_transaction(30)
    assert committed() == 7
    assert committed(plain) == 7
    c.close()
    plain.close()


def test_kafkajs_transactions(txn_broker):
    """kafkajs's transaction(), send, sendOffsets, commit and abort: its read_committed
    consumer (readUncommitted false) reads the committed records only, its read_uncommitted
    one all of them, and the group's offset is the one sent in the last committed
    transaction. confluent-kafka's read_committed consumer agrees."""
    if not (HERE / "node_modules" / "kafkajs").is_dir() or shutil.which("node") is None:
        pytest.fail("kafkajs not installed (scripts/test.sh installs it with npm)")
    topic, group = unique("kafkajs-txn"), unique("kafkajs-group")
    create_topic(txn_broker.bootstrap, topic, 1)
    res = subprocess.run(["node", str(HERE / "kafkajs_txn.js"), txn_broker.bootstrap, topic, group],
                         capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, f"kafkajs failed:\n{res.stderr[-4000:]}"
    got = json.loads(res.stdout.strip().splitlines()[-1])
    c1, a1, c2 = ([f"{name}-{i}" for i in range(5)] for name in ("c1", "a1", "c2"))
    assert got["committed"] == c1 + c2
    assert got["uncommitted"] == c1 + a1 + c2
    assert got["offset"] == 5
    committed = read(txn_broker.bootstrap, topic, 1, "read_committed", expect=10)
    assert [v.decode() for v in values(committed)] == c1 + c2


@pytest.mark.parametrize("hard", [False, True], ids=["graceful", "kill-9"])
def test_transaction_state_survives_a_restart(broker_factory, hard):
    """Committed, aborted and open transactions across a restart: the aborted ranges and the
    open transaction's first offset come back from the checkpoint (graceful) or from the
    flush objects' indexes (kill -9), and the coordinator's record of the open one lets it
    time out afterwards."""
    b = broker_factory(config=CONFIG)
    topic = unique("restart")
    create_topic(b.bootstrap, topic, 1)
    p = txn_producer(b.bootstrap, unique("tid"))
    p.begin_transaction()
    p.produce(topic, value=b"c1")
    p.commit_transaction(30)
    p.begin_transaction()
    p.produce(topic, value=b"a1")
    assert p.flush(30) == 0
    p.abort_transaction(30)
    left = txn_producer(b.bootstrap, unique("tid"), **{"transaction.timeout.ms": 3000})
    left.begin_transaction()
    left.produce(topic, value=b"open")
    assert left.flush(30) == 0
    b.restart(hard=hard)
    # Until the open transaction times out, read_committed readers stop before it.
    committed = read(b.bootstrap, topic, 1, "read_committed", expect=1, timeout=30)
    assert values(committed) == [b"c1"]
    p2 = txn_producer(b.bootstrap, unique("tid"))
    p2.begin_transaction()
    p2.produce(topic, value=b"c2")
    p2.commit_transaction(30)
    committed = read(b.bootstrap, topic, 1, "read_committed", expect=2, timeout=30)
    assert values(committed) == [b"c1", b"c2"]
    every = read(b.bootstrap, topic, 1, "read_uncommitted", expect=4, timeout=30)
    assert values(every) == [b"c1", b"a1", b"open", b"c2"]


def test_the_cli_lists_and_describes_transactional_ids(txn_broker):
    topic = unique("cli")
    create_topic(txn_broker.bootstrap, topic, 2)
    done, open_ = unique("done"), unique("open")
    p = txn_producer(txn_broker.bootstrap, done)
    p.begin_transaction()
    p.produce(topic, value=b"v", partition=0)
    p.commit_transaction(30)
    q = txn_producer(txn_broker.bootstrap, open_)
    q.begin_transaction()
    q.produce(topic, value=b"w", partition=1)
    assert q.flush(30) == 0
    listed = {t["transactional_id"]: t for t in cli_json(txn_broker, "transactions", "list")["transactions"]}
    assert listed[done]["state"] == "CompleteCommit"
    assert listed[open_]["state"] == "Ongoing"
    described = cli_json(txn_broker, "transactions", "describe", open_)
    assert described["state"] == "Ongoing"
    assert described["partitions"] == [f"{topic}-1"]
    assert described["producer_epoch"] == 0
    text = cli(txn_broker, "transactions", "describe", done).stdout
    assert "CompleteCommit" in text
    missing = cli(txn_broker, "transactions", "describe", "nobody", check=False)
    assert missing.returncode != 0 and "TRANSACTIONAL_ID_NOT_FOUND" in missing.stderr, missing.stderr
    q.abort_transaction(30)
