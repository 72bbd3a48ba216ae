"""Compacted topics as Kafka Connect, Schema Registry and Kafka Streams create them
(`cleanup.policy` compact or compact,delete): accepted and described, records without a key
refused per record (KIP-467), and a compact-only topic never loses data to time or size
retention. (Removing older values of a key is not done yet: every record is kept, which
readers of a compacted topic cannot tell from a log not yet cleaned.)"""

from __future__ import annotations

import time

from confluent_kafka import Consumer, KafkaError, Producer, TopicPartition
from confluent_kafka.admin import ConfigResource, NewTopic, ResourceType

from clients import Rec, admin, consume, produce, unique
from harness import requires_broker

pytestmark = requires_broker

FAST_RETENTION = '"log.retention.check.interval.ms" = 300\n'


def create(bootstrap: str, name: str, configs: dict) -> None:
    a = admin(bootstrap)
    a.create_topics([NewTopic(name, 1, 1, config=configs)])[name].result(30)


def test_keyless_records_are_refused_and_keyed_ones_kept(broker_factory):
    b = broker_factory(ephemeral=True)
    topic = unique("connect-offsets")
    create(b.bootstrap, topic, {"cleanup.policy": "compact"})
    res = ConfigResource(ResourceType.TOPIC, topic)
    a = admin(b.bootstrap)
    policy = a.describe_configs([res])[res].result(30)["cleanup.policy"]
    assert policy.value == "compact"

    # The way Kafka Connect uses its offset topic: one key per source partition, updated.
    updates = [Rec(key=f"source-{i % 10}".encode(), value=f'{{"position": {i}}}'.encode()) for i in range(200)]
    updates.append(Rec(key=b"source-3", value=None))  # a tombstone is fine: it has a key
    produce(b.bootstrap, topic, updates)
    latest: dict[bytes, bytes | None] = {}
    for r in consume(b.bootstrap, topic, partitions=1, expected=len(updates)):
        latest[r.key] = r.value
    assert latest[b"source-3"] is None
    assert latest[b"source-9"] == b'{"position": 199}'

    errors = []
    p = Producer({"bootstrap.servers": b.bootstrap, "enable.idempotence": False, "message.timeout.ms": 10000})
    p.produce(topic, value=b"no key", on_delivery=lambda err, msg: errors.append(err))
    p.flush(15)
    assert len(errors) == 1 and errors[0] is not None and errors[0].code() == KafkaError.INVALID_RECORD, errors
    # (librdkafka reports the code only; the per-record error KIP-467 adds is in the
    # response's record_errors, checked in app/tests.)


def test_compact_only_topics_are_kept_from_time_retention(broker_factory):
    b = broker_factory(config=FAST_RETENTION)
    compacted, deleted = unique("compacted"), unique("deleted")
    create(b.bootstrap, compacted, {"cleanup.policy": "compact", "retention.ms": "1000"})
    create(b.bootstrap, deleted, {"cleanup.policy": "compact,delete", "retention.ms": "1000"})
    hour_ago = int(time.time() * 1000) - 3_600_000
    old = [Rec(key=f"k{i}".encode(), value=b"v", timestamp=hour_ago) for i in range(50)]
    produce(b.bootstrap, compacted, old)
    produce(b.bootstrap, deleted, old)
    # compact,delete: retention applies, the old records go.
    c = Consumer({"bootstrap.servers": b.bootstrap, "group.id": unique("w")})
    try:
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            if c.get_watermark_offsets(TopicPartition(deleted, 0), timeout=5)[0] == 50:
                break
            time.sleep(0.3)
        assert c.get_watermark_offsets(TopicPartition(deleted, 0), timeout=5) == (0 + 50, 50)
        # compact alone: several retention rounds later, everything is still there.
        assert c.get_watermark_offsets(TopicPartition(compacted, 0), timeout=5) == (0, 50)
    finally:
        c.close()
    assert len(consume(b.bootstrap, compacted, partitions=1, expected=50)) == 50
