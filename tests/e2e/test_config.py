"""Configuration keys take effect (file < environment precedence, auto-create, partitions)."""

from __future__ import annotations

import time

import pytest
from confluent_kafka import Consumer, KafkaError, KafkaException, Producer, TopicPartition
from confluent_kafka.admin import NewTopic

from clients import Rec, admin, assert_same_records, consume, create_topic, make_records, partition_count, produce, unique
from harness import requires_broker

pytestmark = requires_broker


@pytest.mark.parametrize("via", ["env", "config-file"])
def test_num_partitions_for_auto_created_topics(broker_factory, via):
    if via == "env":
        b = broker_factory(ephemeral=True, env={"KAFSCALE_NUM_PARTITIONS": "4"})
    else:
        b = broker_factory(ephemeral=True, config='"num.partitions" = 4\n')
    topic = unique("auto4")
    delivered = produce(b.bootstrap, topic, make_records(400, seed=1))
    assert partition_count(b.bootstrap, topic) == 4
    assert {r.partition for r in delivered} == {0, 1, 2, 3}
    assert_same_records(delivered, consume(b.bootstrap, topic, partitions=4, expected=400))


def test_environment_overrides_config_file(broker_factory):
    b = broker_factory(ephemeral=True, config='"num.partitions" = 2\n', env={"KAFSCALE_NUM_PARTITIONS": "5"})
    topic = unique("prec")
    produce(b.bootstrap, topic, [Rec(b"k", b"v")])
    assert partition_count(b.bootstrap, topic) == 5


def test_auto_create_disabled(broker_factory):
    b = broker_factory(ephemeral=True, config='"auto.create.topics.enable" = false\n')
    name = unique("noauto")
    a = admin(b.bootstrap)  # librdkafka asks for auto-creation (allow.auto.create.topics)
    for _ in range(3):  # asking again must not create it either
        t = a.list_topics(name, timeout=10).topics[name]
        assert t.error is not None and t.error.code() == KafkaError.UNKNOWN_TOPIC_OR_PART, t.error
        time.sleep(0.2)
    assert name not in a.list_topics(timeout=10).topics
    create_topic(b.bootstrap, name, 2)  # explicit creation still works
    again = a.create_topics([NewTopic(name, num_partitions=2, replication_factor=1)])[name]
    with pytest.raises(KafkaException) as exists:
        again.result(30)
    assert exists.value.args[0].code() == KafkaError.TOPIC_ALREADY_EXISTS, exists.value
    assert partition_count(b.bootstrap, name) == 2


def test_auto_create_default_on(ephemeral_broker):
    # partition_count asks for the topic through a real client, which requests auto-creation,
    # and waits while it is being created.
    assert partition_count(ephemeral_broker.bootstrap, unique("auto")) >= 1


MAX_BYTES = 10000


def produce_outcomes(bootstrap: str, topic: str, values: list[bytes]) -> list[int | None]:
    """Error code per record (None: delivered), sent together so that they share a batch."""
    p = Producer({"bootstrap.servers": bootstrap, "acks": "all", "linger.ms": 500,
                  "enable.idempotence": False, "message.timeout.ms": 30000})
    outcomes: list[int | None] = [None] * len(values)

    def report(i):
        def cb(err, _msg):
            outcomes[i] = None if err is None else err.code()
        return cb

    for i, v in enumerate(values):
        p.produce(topic, value=v, partition=0, on_delivery=report(i))
    assert p.flush(60) == 0
    return outcomes


@pytest.mark.parametrize("via", ["config-file", "env"])
def test_message_max_bytes_reaches_the_broker(broker_factory, via):
    """The limit given through the process applies; its semantics are tested in Rust
    (app/tests/bad_produce.rs)."""
    if via == "config-file":
        b = broker_factory(ephemeral=True, config=f'"message.max.bytes" = {MAX_BYTES}\n')
    else:
        b = broker_factory(ephemeral=True, env={"KAFSCALE_MESSAGE_MAX_BYTES": str(MAX_BYTES)})
    topic = unique("limit")
    create_topic(b.bootstrap, topic, 1)
    assert produce_outcomes(b.bootstrap, topic, [b"s" * 1000]) == [None]
    too_large = KafkaError.MSG_SIZE_TOO_LARGE
    assert produce_outcomes(b.bootstrap, topic, [b"B" * (2 * MAX_BYTES)]) == [too_large]
    # The limit applies to the whole batch: twenty records that fit alone do not together.
    assert produce_outcomes(b.bootstrap, topic, [b"m" * 1000] * 20) == [too_large] * 20
    c = Consumer({"bootstrap.servers": b.bootstrap, "group.id": unique("wm")})
    try:
        assert c.get_watermark_offsets(TopicPartition(topic, 0), timeout=10) == (0, 1)
    finally:
        c.close()


@pytest.mark.parametrize("flush", [{"KAFSCALE_FLUSH_MS": "0"}, {"KAFSCALE_FLUSH_MS": "200", "KAFSCALE_FLUSH_BYTES": "1"},
                                   {"KAFSCALE_FLUSH_MS": "50", "KAFSCALE_FLUSH_BYTES": "100000000"}])
def test_flush_settings(broker_factory, flush):
    b = broker_factory(env=flush)
    topic = unique("flush")
    records = make_records(500, seed=2)
    t0 = time.monotonic()
    delivered = produce(b.bootstrap, topic, records, codec="lz4")
    elapsed = time.monotonic() - t0
    assert elapsed < 30, f"500 records took {elapsed:.1f}s with {flush}"
    assert_same_records(delivered, consume(b.bootstrap, topic, expected=500))
    b.restart()
    assert_same_records(delivered, consume(b.bootstrap, topic, expected=500))
