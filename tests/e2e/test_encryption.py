"""Encryption at rest (`encryption.keys`): what lands in the bucket is sealed, reads back
through the broker, stays readable after the key is rotated, and a flipped byte in an
object is an error, never data."""

from __future__ import annotations

import base64
import json
import os
import time
import urllib.parse
import urllib.request
from pathlib import Path

from confluent_kafka import Consumer, TopicPartition

from clients import Rec, assert_same_records, consume, create_topic, produce, unique
from test_s3 import s3_args

MARKER = b"PLAINTEXT-MARKER"


def key_line(key_id: str) -> str:
    return f"{key_id}:{base64.b64encode(os.urandom(32)).decode()}\n"


def marked_records(n: int, tag: str) -> list[Rec]:
    # Incompressible enough to be recognisable, and never compressed (codec none).
    return [Rec(key=f"k{i % 20}".encode(), value=MARKER + f"-{tag}-{i:06d}-".encode() + os.urandom(200))
            for i in range(n)]


def filer_url() -> str:
    """SeaweedFS's filer (scripts/seaweedfs.sh puts it at the S3 port + 3): it lists and reads
    the bucket's objects as they are stored."""
    s3 = urllib.parse.urlparse(os.environ["AWS_ENDPOINT_URL"])
    return f"http://{s3.hostname}:{s3.port + 3}"


def bucket_objects(prefix: str) -> dict[str, bytes]:
    """Every object under s3://BUCKET/prefix, read raw through the filer."""
    bucket = os.environ["KAFSCALE_TEST_S3_URL"].removeprefix("s3://").split("/")[0]
    out: dict[str, bytes] = {}
    pending = [f"/buckets/{bucket}/{prefix}/"]
    while pending:
        path = pending.pop()
        req = urllib.request.Request(filer_url() + urllib.parse.quote(path) + "?limit=10000",
                                     headers={"Accept": "application/json"})
        listing = json.load(urllib.request.urlopen(req, timeout=10))
        for entry in listing.get("Entries") or []:
            full = entry["FullPath"]
            if entry.get("Mode", 0) & 0o20000000000:  # a directory
                pending.append(full + "/")
            else:
                with urllib.request.urlopen(filer_url() + urllib.parse.quote(full), timeout=10) as r:
                    out[full] = r.read()
    return out


def assert_nothing_read(bootstrap: str, topic: str, partitions: int, seconds: float = 8) -> None:
    """A consumer from offset 0 gets no record (errors are what it should get)."""
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": unique("g"), "enable.auto.commit": False})
    try:
        c.assign([TopicPartition(topic, p, 0) for p in range(partitions)])
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            m = c.poll(0.5)
            assert m is None or m.error() is not None, f"a record was served: {m.value()[:40]!r}"
    finally:
        c.close()


def test_objects_are_sealed_in_the_bucket_and_survive_key_rotation(broker_factory, tmp_path):
    keys = tmp_path / "keys"
    keys.write_text(key_line("k1"))
    prefix = unique("enc")
    b = broker_factory(args=s3_args(prefix) + ["--set", f"encryption.keys={keys}"])
    topic = unique("sealed")
    create_topic(b.bootstrap, topic, 2)
    first = produce(b.bootstrap, topic, marked_records(1500, "one"))
    assert_same_records(first, consume(b.bootstrap, topic, partitions=2, expected=1500))

    objects = bucket_objects(prefix)
    assert objects, "nothing in the bucket"
    assert not [k for k, v in objects.items() if MARKER in v], "plaintext records in the bucket"
    sealed = {k for k, v in objects.items() if v[:4] == b"KSEO"}
    assert sealed == set(objects), f"unsealed objects: {set(objects) - sealed}"
    assert {v[8:10] for v in objects.values()} == {b"k1"}

    # Rotation: a second key appended; the running broker picks it up (the file is reread
    # when it changes) and seals new objects with it.
    keys.write_text(keys.read_text() + key_line("k2"))
    time.sleep(3)
    second = produce(b.bootstrap, topic, marked_records(500, "two"))
    rotated = {k: v for k, v in bucket_objects(prefix).items() if k not in objects}
    assert rotated and all(v[:4] == b"KSEO" and v[8:10] == b"k2" for v in rotated.values()), \
        {k: v[:12] for k, v in rotated.items()}
    assert not [k for k, v in rotated.items() if MARKER in v]

    # A fresh process, an empty cache: everything comes back from the bucket, under both keys.
    b.restart()
    assert_same_records(first + second, consume(b.bootstrap, topic, partitions=2, expected=2000))

    # Without the key the older objects were sealed with, they are refused, not misread.
    keys.write_text(key_line("k3"))
    b.restart()
    assert_nothing_read(b.bootstrap, topic, 2)
    assert "does not hold" in b.log_text()


def test_a_flipped_byte_is_an_error_not_data(broker_factory, tmp_path):
    keys = tmp_path / "keys"
    keys.write_text(key_line("k1"))
    b = broker_factory(args=["--set", f"encryption.keys={keys}"])
    topic = unique("tamper")
    create_topic(b.bootstrap, topic, 1)
    produce(b.bootstrap, topic, marked_records(400, "t"))
    b.stop()

    files = [p for p in Path(b.data_dir).rglob("*") if p.is_file() and p.read_bytes()[:4] == b"KSEO"]
    assert files, "no sealed objects in the data dir"
    assert not [p for p in files if MARKER in p.read_bytes()]
    # The flush object holding the records (the largest sealed object): one bit of its first
    # block, where the first batch lies, is flipped.
    target = max(files, key=lambda p: p.stat().st_size)
    raw = bytearray(target.read_bytes())
    raw[80 + 100] ^= 0x01
    target.write_bytes(bytes(raw))

    b.start()
    assert_nothing_read(b.bootstrap, topic, 1)
    assert "fails authentication" in b.log_text(), b.log_tail()


def test_turning_encryption_on_keeps_old_data_readable_unless_refused(broker_factory, tmp_path):
    """Objects written before encryption.keys was set are read as they are (the migration
    path); with encryption.allow.unencrypted false they are refused, so an object planted in
    the bucket unencrypted is an error, not data."""
    b = broker_factory()
    topic = unique("migrate")
    create_topic(b.bootstrap, topic, 1)
    before = produce(b.bootstrap, topic, marked_records(100, "plain"))
    b.stop()
    keys = tmp_path / "keys"
    keys.write_text(key_line("k1"))
    b.extra_args += ["--set", f"encryption.keys={keys}"]
    b.start()
    after = produce(b.bootstrap, topic, marked_records(100, "sealed"))
    b.restart()
    assert_same_records(before + after, consume(b.bootstrap, topic, partitions=1, expected=200))

    b.stop()
    b.extra_args += ["--set", "encryption.allow.unencrypted=false"]
    b.start()
    assert_nothing_read(b.bootstrap, topic, 1)
    assert "is not encrypted, and encryption.allow.unencrypted is false" in b.log_text(), b.log_tail()
