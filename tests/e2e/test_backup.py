"""Metadata backup and restore (`kafscale metadata backup|restore`) on real etcd and
SeaweedFS: after etcd and its data are lost, a backup restored into a fresh etcd brings back
the topics, every record (read from the bucket at its offset) and the committed offsets of
consumer groups, and re-attaches the records acknowledged after the backup from the flush
objects in the bucket; what it cannot re-attach (a topic created after the backup) is
reported."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import time

import pytest
from confluent_kafka import Consumer, TopicPartition

from clients import assert_same_records, consume, create_topic, make_records, produce, unique
from harness import BIN, Etcd, requires_broker

S3_URL = os.environ.get("KAFSCALE_TEST_S3_URL")
# Records the idempotent producer writes after the backup (more for a measurement:
# KAFSCALE_TEST_BACKUP_AFTER=100000 ./scripts/test.sh -k test_backup -s).
AFTER = int(os.environ.get("KAFSCALE_TEST_BACKUP_AFTER", "200"))

pytestmark = [
    requires_broker,
    pytest.mark.skipif(not S3_URL and os.environ.get("KAFSCALE_TEST_REQUIRE_S3") != "1",
                       reason="no S3 server; ./scripts/test.sh starts SeaweedFS"),
]


def kafscale(*args: str, check: bool = True) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith("KAFSCALE_")}
    res = subprocess.run([str(BIN), *args], capture_output=True, text=True, timeout=120, env=env)
    if check:
        assert res.returncode == 0, f"kafscale {' '.join(args)} exited {res.returncode}: {res.stderr}"
    return res


def commit(bootstrap: str, group: str, parts: list[TopicPartition]) -> None:
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": group, "enable.auto.commit": False})
    try:
        c.commit(offsets=parts, asynchronous=False)
    finally:
        c.close()


def committed(bootstrap: str, group: str, parts: list[TopicPartition]) -> dict[tuple[str, int], int]:
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": group, "enable.auto.commit": False})
    try:
        return {(tp.topic, tp.partition): tp.offset for tp in c.committed(parts, timeout=30)}
    finally:
        c.close()


def test_a_backup_restored_into_a_fresh_etcd_brings_back_topics_records_and_offsets(broker_factory, tmp_path):
    ns = unique("bk")
    store = f"{S3_URL}/{ns}"
    backup = f"{S3_URL}/{ns}-backups/metadata.kmb"
    topics = {unique("orders"): 3, unique("audit"): 1}
    orders, audit = topics
    group = unique("billing")

    old = Etcd(tmp_path, name="etcd-old").start()
    try:
        args = ["--metadata", f"{old.url}/{ns}", "--object-store", store]
        b1 = broker_factory(args=args, name="b1")
        produced = {}
        for i, (topic, n) in enumerate(topics.items()):
            create_topic(b1.bootstrap, topic, n)
            produced[topic] = produce(b1.bootstrap, topic, make_records(300, seed=i))
        parts = [TopicPartition(t, p, 40 + p) for t, n in topics.items() for p in range(n)]
        commit(b1.bootstrap, group, parts)
        want = {(tp.topic, tp.partition): tp.offset for tp in parts}
        assert committed(b1.bootstrap, group, parts) == want
        # A backup of the running cluster, then more records that it does not hold: from an
        # idempotent producer and a plain one, on the first broker and, after a hand-over
        # (new leader epochs), on a second; a topic and a group's offsets after the backup.
        out = kafscale("metadata", "backup", "--metadata", f"{old.url}/{ns}", "--to", backup).stdout
        assert "backed up" in out, out
        before = {t: len(r) for t, r in produced.items()}
        produced[orders] += produce(b1.bootstrap, orders, make_records(AFTER, seed=10),
                                    config={"enable.idempotence": True})
        produced[audit] += produce(b1.bootstrap, audit, make_records(100, seed=11))
        created_later = unique("later")
        create_topic(b1.bootstrap, created_later, 2)
        produce(b1.bootstrap, created_later, make_records(50, seed=12))
        commit(b1.bootstrap, unique("later-group"), [TopicPartition(orders, 0, 7)])
        b2 = broker_factory(args=args, name="b2")
        assert b1.stop() == 0  # hands its partitions over to b2
        produced[orders] += produce(b2.bootstrap, orders, make_records(100, seed=13))
        assert b2.stop() == 0
        # An existing backup is never replaced.
        again = kafscale("metadata", "backup", "--metadata", f"{old.url}/{ns}", "--to", backup, check=False)
        assert again.returncode != 0 and "cannot write" in again.stderr, again.stderr
    finally:
        old.stop()
    shutil.rmtree(old.data)  # etcd and its data are gone

    fresh = Etcd(tmp_path, name="etcd-new").start()
    try:
        t0 = time.monotonic()
        res = kafscale("metadata", "restore", "--metadata", f"{fresh.url}/{ns}", "--from", backup,
                       "--object-store", store, "--json")
        took = time.monotonic() - t0
        report = json.loads(res.stdout)
        assert report["restore"]["restored"] > 0 and report["restore"]["leased_left_out"] >= 2, report
        assert report["bucket"]["missing"] == [], report
        recovery = report["recovery"]
        # Every partition written after the backup continues from where the backup left it.
        ends = {(r["topic"], r["partition"]): (r["from"], r["to"]) for r in recovery["reattached"]}
        for topic, n in topics.items():
            for p in range(n):
                offsets = [r.offset for r in produced[topic] if r.partition == p]
                old_count = sum(1 for r in produced[topic][:before[topic]] if r.partition == p)
                if len(offsets) > old_count:
                    assert ends[(topic, p)] == (old_count, len(offsets)), (topic, p, recovery)
        # The topic created after the backup cannot be (objects carry its id, not its name
        # or configs): its chunks are reported, none silently dropped.
        assert recovery["unknown"] and all("not in the backup" in u["reason"] for u in recovery["unknown"])
        assert sum(u["last_offset"] - u["first_offset"] + 1 for u in recovery["unknown"]) == 50, recovery
        assert "offsets" in report["lost"], report
        refused = kafscale("metadata", "restore", "--metadata", f"{fresh.url}/{ns}", "--from", backup,
                           check=False)
        assert refused.returncode != 0 and "empty" in refused.stderr, refused.stderr

        b3 = broker_factory(args=["--metadata", f"{fresh.url}/{ns}", "--object-store", store], name="b3")
        for topic, n in topics.items():
            got = consume(b3.bootstrap, topic, partitions=n, expected=len(produced[topic]))
            assert_same_records(produced[topic], got)
        assert committed(b3.bootstrap, group, parts) == want
        after = sum(len(r) for r in produced.values()) - sum(before.values())
        print(f"\nrestored {report['restore']['restored']} keys and re-attached {after} records "
              f"acknowledged after the backup ({len(recovery['reattached'])} partitions, "
              f"{recovery['objects_read']} objects read) in {took:.2f} s; "
              f"{sum(before.values())} records from before it and {len(want)} committed offsets back; "
              f"{len(recovery['unknown'])} chunks of a topic created after the backup reported")
    finally:
        fresh.stop()


def test_a_damaged_backup_is_refused_and_restores_nothing(tmp_path):
    etcd = Etcd(tmp_path).start()
    try:
        ns = unique("bk")
        path = tmp_path / "metadata.kmb"
        kafscale("metadata", "backup", "--metadata", f"{etcd.url}/{ns}", "--to", str(path))
        data = bytearray(path.read_bytes())
        data[len(data) // 2] ^= 0xFF
        path.write_bytes(bytes(data))
        res = kafscale("metadata", "restore", "--metadata", f"{etcd.url}/{ns}-restored", "--from", str(path),
                       check=False)
        assert res.returncode != 0 and "not a valid metadata backup" in res.stderr, res.stderr
        empty = kafscale("metadata", "backup", "--metadata", f"{etcd.url}/{ns}-restored",
                         "--to", str(tmp_path / "after.kmb")).stdout
        assert "backed up 0 keys" in empty, empty
    finally:
        etcd.stop()
