"""Metadata backup and restore (`kafscale metadata backup|restore`) on real etcd and
SeaweedFS: after etcd and its data are lost, a backup restored into a fresh etcd brings back
the topics, every record (read from the bucket at its offset) and the committed offsets of
consumer groups. What was written after the backup is not recovered yet: the restore lists
the objects that hold it."""

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
    group = unique("billing")

    old = Etcd(tmp_path, name="etcd-old").start()
    try:
        b1 = broker_factory(args=["--metadata", f"{old.url}/{ns}", "--object-store", store], name="b1")
        produced = {}
        for i, (topic, n) in enumerate(topics.items()):
            create_topic(b1.bootstrap, topic, n)
            produced[topic] = produce(b1.bootstrap, topic, make_records(300, seed=i))
        parts = [TopicPartition(t, p, 40 + p) for t, n in topics.items() for p in range(n)]
        c = Consumer({"bootstrap.servers": b1.bootstrap, "group.id": group, "enable.auto.commit": False})
        try:
            c.commit(offsets=parts, asynchronous=False)
        finally:
            c.close()
        want = {(tp.topic, tp.partition): tp.offset for tp in parts}
        assert committed(b1.bootstrap, group, parts) == want
        # A backup of the running cluster, then more records that it cannot hold.
        out = kafscale("metadata", "backup", "--metadata", f"{old.url}/{ns}", "--to", backup).stdout
        assert "backed up" in out, out
        first = next(iter(topics))
        later = produce(b1.bootstrap, first, make_records(100, seed=99))
        assert b1.stop() == 0
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
        # The records acknowledged after the backup are reported, not silently dropped.
        assert report["bucket"]["newer_unreferenced"], report
        refused = kafscale("metadata", "restore", "--metadata", f"{fresh.url}/{ns}", "--from", backup,
                           check=False)
        assert refused.returncode != 0 and "empty" in refused.stderr, refused.stderr

        b2 = broker_factory(args=["--metadata", f"{fresh.url}/{ns}", "--object-store", store], name="b2")
        for topic, n in topics.items():
            got = consume(b2.bootstrap, topic, partitions=n, expected=len(produced[topic]))
            assert_same_records(produced[topic], got)
        assert committed(b2.bootstrap, group, parts) == want
        print(f"\nrestored {report['restore']['restored']} keys in {took:.2f} s; "
              f"{sum(len(r) for r in produced.values())} records and {len(want)} committed offsets back; "
              f"{len(later)} records acknowledged after the backup not restored, in "
              f"{len(report['bucket']['newer_unreferenced'])} objects reported")
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
