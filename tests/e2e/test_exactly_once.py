"""Exactly-once consume-transform-produce through broker faults, three brokers on real etcd
and SeaweedFS: workers in one consumer group (read_committed, no auto-commit), each with a
transactional producer of its own, copy every input record to the output with a mark added
and commit the input offsets inside the same transaction (send_offsets_to_transaction), while
the broker coordinating their transactional ids and partition leaders are killed with
kill -9 and restarted, or SIGSTOPped past their lease and woken. Afterwards a read_committed
reader finds every input record's result exactly once, in input order per partition, and
the group's committed offsets at the end of the input.

The default run (CI) copies 10,000 records through one kill -9 of a coordinator and one
SIGSTOP; `KAFSCALE_EOS_RECORDS=100000 KAFSCALE_EOS_ROUNDS=8` is the long run (CONTRIBUTING.md).
"""

from __future__ import annotations

import logging
import os
import random
import signal
import threading
import time
from collections import Counter

import pytest
from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaError, KafkaException, Producer, TopicPartition
from confluent_kafka.admin import AdminClient

from clients import unique
from test_cli import cli_json
from test_cluster import CLUSTER_CONFIG, ETCD_URL, LEASE_MS, cluster_args, create, leaders, pytestmark, spread_ok, wait_for  # noqa: F401
from test_transactions import read

RECORDS = int(os.environ.get("KAFSCALE_EOS_RECORDS", "10000"))
ROUNDS = int(os.environ.get("KAFSCALE_EOS_ROUNDS", "2"))
PARTITIONS = 6
WORKERS = 3
BATCH = 500
ABORT_EVERY = 8
CONFIG = CLUSTER_CONFIG + '"transaction.abort.timed.out.transaction.cleanup.interval.ms" = 200\n'
# The faults, in turn: kill -9 of a transaction coordinator, SIGSTOP past the lease of one,
# kill -9 of a partition leader coordinating none of the workers' ids, SIGSTOP of the
# consumer group's coordinator.
FAULTS = ["kill-txn-coordinator", "stop-txn-coordinator", "kill-leader", "stop-group-coordinator"]
CALL_TIMEOUT = 60


class Fatal(Exception):
    """The producer (or the worker's state) cannot go on: the worker starts over."""


class Run:
    """What the workers share: the topics, progress, the gate the fault rounds open, counts."""

    def __init__(self, bootstrap: str, source: str, sink: str, group: str, end: dict[int, int]):
        self.bootstrap, self.source, self.sink, self.group, self.end = bootstrap, source, sink, group, end
        self.lock = threading.Lock()
        self.done = threading.Event()
        self.committed: dict[int, int] = {}  # input partition -> offset committed by a transaction
        self.copied = 0  # records in committed transactions (duplicates would count twice)
        self.gate = RECORDS  # no transaction begins past this many copied records
        self.counts = Counter()
        self.errors: list[str] = []
        self.t0 = time.monotonic()
        # KAFSCALE_EOS_CLIENT_LOG=FILE: librdkafka's transaction log of the workers' producers.
        self.client_log = {}
        if os.environ.get("KAFSCALE_EOS_CLIENT_LOG"):
            log = logging.getLogger("eos-clients")
            log.addHandler(logging.FileHandler(os.environ["KAFSCALE_EOS_CLIENT_LOG"]))
            log.setLevel(logging.DEBUG)
            self.client_log = {"debug": "eos,protocol", "logger": log}

    def count(self, what: str, n: int = 1) -> None:
        with self.lock:
            self.counts[what] += n

    def note(self, text: str) -> None:
        with self.lock:
            self.errors.append(text)

    def slow(self, tid: str, what: str, t0: float, err) -> None:
        """Notes a call that failed or took long (shown when the test fails or prints)."""
        took = time.monotonic() - t0
        if err is not None or took > 5:
            self.note(f"{t0 - self.t0:.1f}s {tid} {what} {took:.1f}s: {err}")

    def gated(self) -> bool:
        with self.lock:
            return self.copied >= self.gate

    def on_commit(self, offsets: dict[int, int], records: int) -> None:
        with self.lock:
            self.copied += records
            self.counts["transactions committed"] += 1
            for p, o in offsets.items():
                assert o > self.committed.get(p, -1), f"partition {p}: offset {o} committed twice"
                self.committed[p] = o
            if all(self.committed.get(p) == e for p, e in self.end.items()):
                self.done.set()


class Crash(Exception):
    """The worker dies mid-transaction: its producer is left open, a zombie."""


class Worker(threading.Thread):
    """Kafka's exactly-once loop: consume a batch, produce its results and the batch's
    offsets in one transaction, commit. An abortable error aborts and rewinds the consumer to
    the group's committed offsets; a fatal one (or a fenced producer) starts over with a new
    producer and consumer. A rebalance aborts the open transaction: the partitions' new owner
    starts from the committed offsets. Every ABORT_EVERY-th transaction or so is aborted on
    purpose, and told to `crash`, the worker leaves its producer mid-transaction and starts
    over; the zombie's commit afterwards must be fenced."""

    def __init__(self, run: Run, index: int):
        super().__init__(daemon=True, name=f"eos-worker-{index}")
        self.run_, self.index = run, index
        self.tid = f"{run.group}-tid-{index}"
        self.crash = threading.Event()
        self.rnd = random.Random(f"{run.group}-{index}")
        self.producer: Producer | None = None
        self.consumer: Consumer | None = None
        self.zombie: Producer | None = None
        self.in_txn = False
        self.rebalanced = False

    def run(self) -> None:
        while not self.run_.done.is_set():
            try:
                self.session()
            except Crash:
                self.run_.count("worker crashes")
            except Fatal as e:
                self.run_.count("workers restarted")
                self.run_.note(f"{self.tid}: {e}")
            except Exception as e:  # anything unexpected: start over, and say so
                self.run_.count("workers restarted")
                self.run_.note(f"{self.tid}: unexpected {e!r}")
            finally:
                self.close()

    def close(self) -> None:
        if self.consumer is not None:
            try:
                self.consumer.close()
            except Exception:
                pass
        self.consumer = self.producer = None
        self.in_txn = False

    def session(self) -> None:
        r = self.run_
        self.producer = Producer({"bootstrap.servers": r.bootstrap, "transactional.id": self.tid,
                                  "linger.ms": 5, "transaction.timeout.ms": 20000, **r.client_log})
        self.retry(lambda: self.producer.init_transactions(CALL_TIMEOUT), "init_transactions")
        if self.zombie is not None:
            self.bury()
        self.consumer = Consumer({"bootstrap.servers": r.bootstrap, "group.id": r.group,
                                  "isolation.level": "read_committed", "enable.auto.commit": False,
                                  "auto.offset.reset": "earliest", "session.timeout.ms": 10000,
                                  "max.poll.interval.ms": 120000})
        self.consumer.subscribe([r.source], on_assign=self.on_assign, on_revoke=self.on_revoke,
                                on_lost=self.on_revoke)
        while not r.done.is_set():
            if r.gated():
                time.sleep(0.05)  # the gate reopens soon (max.poll.interval.ms is far)
                continue
            self.rebalanced = False
            msgs = self.consumer.consume(BATCH, 0.2)
            if self.rebalanced:
                # A batch that straddles a rebalance is dropped, and read again from the
                # committed offsets (no transaction is open while consuming).
                self.rewind()
                continue
            batch = []
            for m in msgs:
                if m.error() is None:
                    batch.append(m)
                elif not m.error().retriable() and m.error().code() != KafkaError._PARTITION_EOF:
                    r.note(f"{self.tid}: consume error {m.error()}")
            if batch:
                self.transaction(batch)
        self.abort("leaving")

    def bury(self) -> None:
        """The zombie left by a crash tries to commit after its successor's InitProducerId."""
        zombie, self.zombie = self.zombie, None
        try:
            zombie.commit_transaction(CALL_TIMEOUT)
            self.run_.note(f"{self.tid}: the zombie's commit succeeded")
            self.run_.count("zombie commits")
        except KafkaException as e:
            self.run_.count("zombies fenced" if e.args[0].fatal() else "zombies refused")

    def on_assign(self, consumer, partitions) -> None:
        self.rebalanced = True
        self.run_.count("assignments")

    def on_revoke(self, consumer, partitions) -> None:
        self.rebalanced = True
        self.abort("rebalance")

    def transaction(self, batch) -> None:
        r, p = self.run_, self.producer
        offsets: dict[int, int] = {}
        on_purpose = self.rnd.randrange(ABORT_EVERY) == 0
        try:
            p.begin_transaction()
            self.in_txn = True
            for m in batch:
                p.produce(r.sink, key=m.key(), value=m.value() + b"!", partition=m.partition())
                offsets[m.partition()] = m.offset() + 1
            tps = [TopicPartition(r.source, q, o) for q, o in sorted(offsets.items())]
            self.retry(lambda: p.send_offsets_to_transaction(
                tps, self.consumer.consumer_group_metadata(), CALL_TIMEOUT), "send_offsets_to_transaction")
            if self.crash.is_set():
                self.crash.clear()
                p.flush(CALL_TIMEOUT)
                self.zombie, self.producer, self.in_txn = p, None, False
                raise Crash()
            if on_purpose:
                self.abort("on purpose")
                r.count("transactions aborted on purpose")
                self.rewind()
                return
            self.retry(lambda: p.commit_transaction(CALL_TIMEOUT), "commit_transaction")
        except KafkaException as e:
            err = e.args[0]
            if err.fatal() or not err.txn_requires_abort():
                raise Fatal(f"{err}") from None
            r.count("abortable errors")
            self.abort(f"abortable {err}")
            self.rewind()
            return
        self.in_txn = False
        r.on_commit(offsets, len(batch))

    def retry(self, call, what: str) -> None:
        """A call repeated while it fails with a retriable error (librdkafka's contract)."""
        deadline = time.monotonic() + 4 * CALL_TIMEOUT
        while True:
            t0 = time.monotonic()
            try:
                out = call()
                self.run_.slow(self.tid, what, t0, None)
                return out
            except KafkaException as e:
                err = e.args[0]
                self.run_.slow(self.tid, what, t0, err)
                if not err.retriable() or err.fatal() or err.txn_requires_abort() or time.monotonic() > deadline:
                    raise
                self.run_.count(f"{what} retried")
                time.sleep(0.1)

    def abort(self, why: str) -> None:
        if not self.in_txn or self.producer is None:
            return
        try:
            self.retry(lambda: self.producer.abort_transaction(CALL_TIMEOUT), "abort_transaction")
        except KafkaException as e:
            raise Fatal(f"abort ({why}): {e.args[0]}") from None
        self.in_txn = False
        self.run_.count("transactions aborted")

    def rewind(self) -> None:
        """Back to the group's committed offsets: the aborted batch is read again."""
        c = self.consumer
        deadline = time.monotonic() + 2 * CALL_TIMEOUT
        while True:
            try:
                for tp in c.committed(c.assignment(), timeout=10):
                    c.seek(TopicPartition(tp.topic, tp.partition, tp.offset if tp.offset >= 0 else OFFSET_BEGINNING))
                return
            except KafkaException as e:
                if time.monotonic() > deadline:
                    raise Fatal(f"rewind: {e.args[0]}") from None
                time.sleep(0.2)


def fill(bootstrap: str, topic: str) -> dict[int, list[bytes]]:
    """RECORDS unique values spread over the partitions by an idempotent producer; the
    values of each partition in offset order."""
    p = Producer({"bootstrap.servers": bootstrap, "enable.idempotence": True, "linger.ms": 20})
    sent: dict[int, list[bytes]] = {q: [] for q in range(PARTITIONS)}
    failed: list[str] = []

    def report(err, msg):
        if err is not None:
            failed.append(str(err))

    for i in range(RECORDS):
        q = i % PARTITIONS
        v = f"rec-{i:08d}".encode()
        while True:
            try:
                p.produce(topic, key=str(i).encode(), value=v, partition=q, on_delivery=report)
                break
            except BufferError:
                p.poll(0.1)
        sent[q].append(v)
    assert p.flush(60) == 0 and not failed, failed[:5]
    return sent


def coordinator_of(brokers, tid: str) -> int:
    via = next(b for b in brokers if b.alive())
    return wait_for(f"the coordinator of {tid}",
                    lambda: cli_json(via, "transactions", "describe", tid, timeout=20)["coordinator"], timeout=60)


def group_coordinator(brokers, group: str) -> int:
    via = next(b for b in brokers if b.alive())
    admin = AdminClient({"bootstrap.servers": via.bootstrap})
    return wait_for(f"the coordinator of {group}",
                    lambda: admin.describe_consumer_groups([group])[group].result(10).coordinator.id, timeout=60)


def fault(brokers, run: Run, workers: list[Worker], kind: str, rnd: random.Random) -> str:
    """One fault; returns what it did. Waits until every broker serves again."""
    tids = [coordinator_of(brokers, w.tid) for w in workers]
    if kind.endswith("txn-coordinator"):
        target = rnd.choice(tids)
    elif kind == "kill-leader":
        others = [i for i in (1, 2, 3) if i not in tids]
        target = rnd.choice(others or [1, 2, 3])
    else:
        target = group_coordinator(brokers, run.group)
    b = brokers[target - 1]
    if kind.startswith("kill"):
        b.kill()
        run.count("kills")
        time.sleep(rnd.uniform(0.2, LEASE_MS / 1000 + 1))
        b.start()
        return f"kill -9 of broker {target} ({kind})"
    os.kill(b.pid, signal.SIGSTOP)
    run.count("stops")
    try:
        time.sleep(LEASE_MS / 1000 + 2)
    finally:
        os.kill(b.pid, signal.SIGCONT)
    return f"SIGSTOP of broker {target} ({kind}) for {LEASE_MS / 1000 + 2:.0f} s"


@pytest.mark.timeout(240 + RECORDS // 100 + 30 * ROUNDS)
def test_consume_transform_produce_is_exactly_once_through_kills_and_stops(broker_factory):
    ns = unique("eos")
    brokers = [broker_factory(args=cluster_args(ETCD_URL, ns, i + 1), config=CONFIG, name=f"b{i + 1}")
               for i in range(3)]
    bootstrap = ",".join(b.bootstrap for b in brokers)
    source, sink = unique("eos-in"), unique("eos-out")
    for t in (source, sink):
        create(brokers[0].bootstrap, t, PARTITIONS)
        wait_for(f"{t} spread", lambda: spread_ok(brokers[0].bootstrap, t, {1, 2, 3}, PARTITIONS // 3))
    t0 = time.monotonic()
    sent = fill(bootstrap, source)
    end = {q: len(v) for q, v in sent.items()}
    print(f"\n{RECORDS} input records in {time.monotonic() - t0:.1f} s")

    run = Run(bootstrap, source, sink, unique("eos-group"), end)
    rnd = random.Random(os.environ.get("KAFSCALE_EOS_SEED", "14"))
    # Each fault round begins once this share of the input is copied; the gate holds the
    # workers there so that every round falls inside the copy.
    steps = [RECORDS * (k + 1) // (ROUNDS + 1) for k in range(ROUNDS)]
    run.gate = steps[0] if steps else RECORDS
    workers = [Worker(run, i) for i in range(WORKERS)]
    t0 = time.monotonic()
    for w in workers:  # one after another: the group rebalances as each joins
        w.start()
        time.sleep(0.5)
    done_faults = []
    for k, step in enumerate(steps):
        wait_for(f"{step} records copied", lambda: run.copied >= step or run.done.is_set(), timeout=300, step=0.05)
        with run.lock:
            run.gate = steps[k + 1] if k + 1 < len(steps) else RECORDS
        time.sleep(rnd.uniform(0.05, 0.3))  # inside the transactions the gate let go
        at = time.monotonic() - run.t0
        done_faults.append(f"{at:.1f}s " + fault(brokers, run, workers, FAULTS[k % len(FAULTS)], rnd))
        workers[k % WORKERS].crash.set()  # and a worker dies mid-transaction and starts over
    assert run.done.wait(120 + RECORDS / 100), (
        f"copy not finished: {run.copied} records, committed {run.committed}, end {end}, "
        f"counts {dict(run.counts)}, faults {done_faults}, errors {run.errors[:20]}")
    took = time.monotonic() - t0
    for w in workers:
        w.join(60)

    # The group's committed offsets are the input's end offsets.
    check = Consumer({"bootstrap.servers": bootstrap, "group.id": run.group, "isolation.level": "read_committed"})
    committed = {tp.partition: tp.offset for tp in
                 check.committed([TopicPartition(source, q) for q in range(PARTITIONS)], timeout=30)}
    check.close()
    assert committed == end, (committed, end)

    # Every input record's result exactly once, in input order per partition.
    got = read(bootstrap, sink, PARTITIONS, "read_committed", expect=RECORDS, timeout=60 + RECORDS / 1000)
    by_partition: dict[int, list[bytes]] = {q: [] for q in range(PARTITIONS)}
    for q, _, v in got:
        by_partition[q].append(v)
    want = Counter(v + b"!" for vs in sent.values() for v in vs)
    seen = Counter(v for _, _, v in got)
    missing = sorted(want - seen)
    duplicated = sorted(v for v, n in seen.items() if n > 1)
    phantom = sorted(set(seen) - set(want))
    every = read(bootstrap, sink, PARTITIONS, "read_uncommitted", timeout=60 + RECORDS / 1000)
    counts = dict(run.counts)
    print(f"input {RECORDS}, output committed {len(got)}, read_uncommitted {len(every)} "
          f"(aborted records {len(every) - len(got)}), copy {took:.1f} s; faults: {done_faults}; "
          f"counts {counts}; worker errors {len(run.errors)}: {run.errors[:20]}")
    assert not missing and not duplicated and not phantom, (
        f"missing {len(missing)} {missing[:5]}, duplicated {len(duplicated)} {duplicated[:5]}, "
        f"phantom {len(phantom)} {phantom[:5]}; output leaders as each broker sees them: "
        f"{ {b.name: leaders(b.bootstrap, sink) for b in brokers} }")
    for q in range(PARTITIONS):
        assert by_partition[q] == [v + b"!" for v in sent[q]], f"partition {q} out of input order"
    assert len(every) >= len(got)
    assert counts.get("kills", 0) + counts.get("stops", 0) == ROUNDS
    assert not counts.get("zombie commits"), run.errors
