"""The admin APIs through a real broker process with confluent-kafka's AdminClient (librdkafka)
and kcat: topics, configs, partitions, record deletion, cluster description."""

from __future__ import annotations

import json
import time

import pytest
from confluent_kafka import KafkaError, KafkaException, TopicPartition
from confluent_kafka.admin import (
    AlterConfigOpType,
    ConfigEntry,
    ConfigResource,
    ConfigSource,
    NewPartitions,
    NewTopic,
    OffsetSpec,
    ResourceType,
)

from clients import Rec, admin, consume, create_topic, delete_topic, partition_count, produce, unique
from harness import requires_broker, run_kcat

pytestmark = requires_broker

TIMEOUT = 30


def error_of(future) -> KafkaError:
    with pytest.raises(KafkaException) as info:
        future.result(TIMEOUT)
    return info.value.args[0]


def topic_configs(a, topic: str) -> dict[str, ConfigEntry]:
    res = ConfigResource(ResourceType.TOPIC, topic)
    return a.describe_configs([res])[res].result(TIMEOUT)


def records(n: int, tag: str) -> list[Rec]:
    return [Rec(f"k{i}".encode(), f"{tag}-{i}".encode(), [], None, None, None, None) for i in range(n)]


def wait_led(bootstrap: str, topic: str, partitions: int) -> None:
    """Waits until Metadata shows a leader for every partition: the controller assigns new
    partitions shortly after the request that made them."""
    a = admin(bootstrap)
    deadline = time.monotonic() + TIMEOUT
    while True:
        t = a.list_topics(topic, timeout=10).topics.get(topic)
        parts = [] if t is None or t.error is not None else list(t.partitions.values())
        if len(parts) == partitions and all(p.error is None and p.leader >= 0 for p in parts):
            return
        assert time.monotonic() < deadline, f"{topic}: partitions without a leader"
        time.sleep(0.1)


@pytest.fixture
def bootstrap(broker_factory) -> str:
    return broker_factory(ephemeral=True, config='"log.retention.bytes" = 1073741824\n').bootstrap


def test_create_topics_validate_only_and_invalid_configs(bootstrap):
    a = admin(bootstrap)
    name = unique("adm-create")
    # validate_only: accepted, nothing created.
    fs = a.create_topics([NewTopic(name, 3, 1, config={"retention.ms": "3600000"})],
                         validate_only=True, operation_timeout=TIMEOUT)
    assert fs[name].result(TIMEOUT) is None
    assert name not in a.list_topics(timeout=10).topics
    # Invalid configs: INVALID_CONFIG with a message saying what is wrong, nothing created.
    for config, needle in [
        ({"cleanup.policy": "shred"}, "cleanup.policy"),
        ({"retention.ms": "soon"}, "retention.ms"),
        ({"no.such.config": "1"}, "unknown topic config"),
        ({"message.timestamp.type": "BrokerTime"}, "message.timestamp.type"),
    ]:
        fs = a.create_topics([NewTopic(name, 1, 1, config=config)], operation_timeout=TIMEOUT)
        err = error_of(fs[name])
        assert err.code() == KafkaError.INVALID_CONFIG, (config, err)
        assert needle in err.str(), (config, err.str())
    assert name not in a.list_topics(timeout=10).topics
    # Created for real, with its configs; creating it again (even validate_only) fails.
    fs = a.create_topics([NewTopic(name, 3, 1, config={"retention.ms": "3600000"})], operation_timeout=TIMEOUT)
    fs[name].result(TIMEOUT)
    assert partition_count(bootstrap, name) == 3
    assert topic_configs(a, name)["retention.ms"].value == "3600000"
    for validate_only in (False, True):
        fs = a.create_topics([NewTopic(name, 1, 1)], validate_only=validate_only, operation_timeout=TIMEOUT)
        assert error_of(fs[name]).code() == KafkaError.TOPIC_ALREADY_EXISTS
    # Invalid names and partition counts.
    fs = a.create_topics([NewTopic("bad/name", 1, 1)], operation_timeout=TIMEOUT)
    assert error_of(fs["bad/name"]).code() == KafkaError.TOPIC_EXCEPTION


def test_describe_configs_values_sources_defaults(bootstrap):
    a = admin(bootstrap)
    name = unique("adm-describe")
    a.create_topics([NewTopic(name, 1, 1, config={"retention.ms": "3600000", "segment.ms": "7200000"})],
                    operation_timeout=TIMEOUT)[name].result(TIMEOUT)
    configs = topic_configs(a, name)
    r = configs["retention.ms"]
    assert (r.value, r.source, r.is_default, r.is_read_only) == ("3600000", ConfigSource.DYNAMIC_TOPIC_CONFIG.value, False, False)
    assert configs["segment.ms"].value == "7200000"
    policy = configs["cleanup.policy"]
    assert (policy.value, policy.source) == ("delete", ConfigSource.DEFAULT_CONFIG.value)
    assert configs["max.message.bytes"].value == "1048588"
    assert configs["min.insync.replicas"].value == "1"
    # Set in the broker's configuration file: the topic default comes from it.
    rb = configs["retention.bytes"]
    assert (rb.value, rb.source) == ("1073741824", ConfigSource.STATIC_BROKER_CONFIG.value)
    # Synonyms: the topic's own value, then the broker setting behind the default.
    res = ConfigResource(ResourceType.TOPIC, name)
    configs = a.describe_configs([res], request_timeout=TIMEOUT)[res].result(TIMEOUT)
    syn = configs["retention.ms"].synonyms
    assert list(syn) == ["retention.ms", "log.retention.ms"], syn
    # The broker: read-only values from its running configuration.
    res = ConfigResource(ResourceType.BROKER, "0")
    broker = a.describe_configs([res])[res].result(TIMEOUT)
    assert broker["message.max.bytes"].value == "1048588"
    assert broker["message.max.bytes"].is_read_only
    assert broker["log.retention.bytes"].value == "1073741824"
    assert broker["log.retention.bytes"].source == ConfigSource.STATIC_BROKER_CONFIG.value
    assert broker["log.retention.ms"].value == str(7 * 24 * 3600 * 1000)
    assert broker["broker.id"].value == "0"
    # An unknown topic.
    res = ConfigResource(ResourceType.TOPIC, unique("adm-missing"))
    assert error_of(a.describe_configs([res])[res]).code() == KafkaError.UNKNOWN_TOPIC_OR_PART


def test_legacy_topic_configs_are_accepted_and_described(bootstrap):
    """Configs Kafka 3.x still accepts though they no longer act (librdkafka's test 0092 sets
    message.format.version): accepted, stored and described, as Kafka does."""
    a = admin(bootstrap)
    name = unique("adm-legacy")
    a.create_topics([NewTopic(name, 1, 1, config={"message.format.version": "0.10.0",
                                                  "message.timestamp.difference.max.ms": "60000"})],
                    operation_timeout=TIMEOUT)[name].result(TIMEOUT)
    configs = topic_configs(a, name)
    assert configs["message.format.version"].value == "0.10.0"
    assert configs["message.format.version"].source == ConfigSource.DYNAMIC_TOPIC_CONFIG.value
    assert configs["message.timestamp.difference.max.ms"].value == "60000"
    for default in ("message.downconversion.enable", "remote.storage.enable", "local.retention.ms",
                    "leader.replication.throttled.replicas"):
        assert configs[default].source == ConfigSource.DEFAULT_CONFIG.value, default
    produce(bootstrap, name, records(3, "legacy"))
    assert len(consume(bootstrap, name, partitions=1, expected=3)) == 3


def test_log_append_time_and_timestamp_bounds(bootstrap):
    """message.timestamp.type LogAppendTime: records carry the broker's time whatever the
    producer said (and the produce response gives it); message.timestamp.before.max.ms refuses
    CreateTime records older than that with INVALID_TIMESTAMP, wherever they are in a batch."""
    from confluent_kafka import TIMESTAMP_LOG_APPEND_TIME, Consumer, Producer, TopicPartition

    a = admin(bootstrap)
    stamped, bounded = unique("adm-lat"), unique("adm-bound")
    fs = a.create_topics([NewTopic(stamped, 1, 1, config={"message.timestamp.type": "LogAppendTime"}),
                          NewTopic(bounded, 1, 1, config={"message.timestamp.before.max.ms": "60000"})],
                         operation_timeout=TIMEOUT)
    for f in fs.values():
        f.result(TIMEOUT)
    before = int(time.time() * 1000)
    produce(bootstrap, stamped, [Rec(b"k", b"v", [], 1_000, 0, None, None) for _ in range(5)])
    after = int(time.time() * 1000)
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": unique("g")})
    c.assign([TopicPartition(stamped, 0, 0)])
    got = []
    deadline = time.monotonic() + TIMEOUT
    while len(got) < 5 and time.monotonic() < deadline:
        m = c.poll(0.5)
        if m is not None and m.error() is None:
            got.append(m.timestamp())
    c.close()
    assert len(got) == 5
    assert all(kind == TIMESTAMP_LOG_APPEND_TIME and before - 1000 <= ts <= after + 1000 for kind, ts in got), got

    errors = []
    p = Producer({"bootstrap.servers": bootstrap, "enable.idempotence": False, "message.timeout.ms": 10000})
    # Separate batches: the check is per batch.
    p.produce(bounded, b"old", timestamp=1_000, on_delivery=lambda err, msg: errors.append(err))
    p.flush(15)
    p.produce(bounded, b"now", on_delivery=lambda err, msg: errors.append(err))
    p.flush(15)
    assert [e.code() if e else None for e in errors] == [KafkaError.INVALID_TIMESTAMP, None], errors
    # One batch whose first and last records are recent and whose middle one is not: every
    # record is checked, and the batch is refused whole, as Kafka does.
    errors.clear()
    # The batch is sent when it holds the three records (a 200 ms linger split it once under
    # load, the first record going alone).
    p = Producer({"bootstrap.servers": bootstrap, "enable.idempotence": False, "linger.ms": 5000,
                  "batch.num.messages": 3, "message.timeout.ms": 10000, "compression.type": "lz4"})
    now = int(time.time() * 1000)
    for ts in (now, 1_000, now):
        p.produce(bounded, b"x", timestamp=ts, on_delivery=lambda err, msg: errors.append(err))
    p.flush(15)
    assert [e.code() if e else None for e in errors] == [KafkaError.INVALID_TIMESTAMP] * 3, errors


def test_incremental_alter_configs(bootstrap):
    a = admin(bootstrap)
    name = unique("adm-incr")
    a.create_topics([NewTopic(name, 1, 1, config={"segment.ms": "7200000", "retention.bytes": "5000000"})],
                    operation_timeout=TIMEOUT)[name].result(TIMEOUT)

    def alter(*entries, validate_only=False):
        res = ConfigResource(ResourceType.TOPIC, name, incremental_configs=list(entries))
        return a.incremental_alter_configs([res], validate_only=validate_only)[res]

    set_ret = ConfigEntry("retention.ms", "120000", incremental_operation=AlterConfigOpType.SET)
    del_seg = ConfigEntry("segment.ms", None, incremental_operation=AlterConfigOpType.DELETE)
    alter(set_ret, del_seg).result(TIMEOUT)
    configs = topic_configs(a, name)
    assert (configs["retention.ms"].value, configs["retention.ms"].source) == ("120000", ConfigSource.DYNAMIC_TOPIC_CONFIG.value)
    assert (configs["segment.ms"].value, configs["segment.ms"].source) == ("604800000", ConfigSource.DEFAULT_CONFIG.value)
    assert configs["retention.bytes"].value == "5000000", "untouched configs stay"
    # validate_only: checked but not applied.
    alter(ConfigEntry("retention.ms", "1000", incremental_operation=AlterConfigOpType.SET), validate_only=True).result(TIMEOUT)
    assert topic_configs(a, name)["retention.ms"].value == "120000"
    # Errors, each with a clear message; nothing changes.
    for entry, code, needle in [
        (ConfigEntry("cleanup.policy", "shred", incremental_operation=AlterConfigOpType.APPEND),
         KafkaError.INVALID_CONFIG, "cleanup.policy"),
        (ConfigEntry("retention.ms", "5", incremental_operation=AlterConfigOpType.APPEND),
         KafkaError.INVALID_CONFIG, "only to list configs"),
        (ConfigEntry("retention.ms", "-7", incremental_operation=AlterConfigOpType.SET),
         KafkaError.INVALID_CONFIG, "retention.ms"),
        (ConfigEntry("made.up.config", "1", incremental_operation=AlterConfigOpType.SET),
         KafkaError.INVALID_CONFIG, "unknown topic config"),
    ]:
        err = error_of(alter(entry))
        assert err.code() == code, (entry, err)
        assert needle in err.str(), err.str()
    assert topic_configs(a, name)["retention.ms"].value == "120000"
    # The broker's settings are read-only; Kafka's dynamic broker configs without a KafScale
    # setting are kept and described (recorded only).
    res = ConfigResource(ResourceType.BROKER, "0", incremental_configs=[
        ConfigEntry("log.retention.ms", "1000", incremental_operation=AlterConfigOpType.SET)])
    err = error_of(a.incremental_alter_configs([res])[res])
    assert err.code() == KafkaError.INVALID_REQUEST
    assert "read-only" in err.str()
    res = ConfigResource(ResourceType.BROKER, "0", incremental_configs=[
        ConfigEntry("background.threads", "9", incremental_operation=AlterConfigOpType.SET)])
    a.incremental_alter_configs([res])[res].result(TIMEOUT)
    res = ConfigResource(ResourceType.BROKER, "0")
    threads = a.describe_configs([res])[res].result(TIMEOUT)["background.threads"]
    assert (threads.value, threads.source, threads.is_read_only) == (
        "9", ConfigSource.DYNAMIC_BROKER_CONFIG.value, False)
    res = ConfigResource(ResourceType.BROKER, "0", incremental_configs=[
        ConfigEntry("background.threads", None, incremental_operation=AlterConfigOpType.DELETE)])
    a.incremental_alter_configs([res])[res].result(TIMEOUT)
    res = ConfigResource(ResourceType.BROKER, "0")
    threads = a.describe_configs([res])[res].result(TIMEOUT)["background.threads"]
    assert (threads.value, threads.source) == ("10", ConfigSource.DEFAULT_CONFIG.value)


def test_alter_configs_replaces_the_set(bootstrap):
    a = admin(bootstrap)
    name = unique("adm-alter")
    a.create_topics([NewTopic(name, 1, 1, config={"segment.ms": "7200000"})],
                    operation_timeout=TIMEOUT)[name].result(TIMEOUT)
    res = ConfigResource(ResourceType.TOPIC, name, set_config={"retention.ms": "86400000", "max.message.bytes": "500000"})
    with pytest.warns(DeprecationWarning):
        fs = a.alter_configs([res])
    fs[res].result(TIMEOUT)
    configs = topic_configs(a, name)
    assert configs["retention.ms"].value == "86400000"
    assert configs["max.message.bytes"].value == "500000"
    assert configs["segment.ms"].source == ConfigSource.DEFAULT_CONFIG.value, "replaced, so back to the default"
    bad = ConfigResource(ResourceType.TOPIC, name, set_config={"cleanup.policy": "shred"})
    with pytest.warns(DeprecationWarning):
        err = error_of(a.alter_configs([bad])[bad])
    assert err.code() == KafkaError.INVALID_CONFIG
    assert topic_configs(a, name)["retention.ms"].value == "86400000"


def test_create_partitions_then_produce_to_a_new_one(bootstrap):
    a = admin(bootstrap)
    name = unique("adm-parts")
    create_topic(bootstrap, name, 1)
    # validate_only changes nothing; not growing is INVALID_PARTITIONS.
    a.create_partitions([NewPartitions(name, 3)], validate_only=True)[name].result(TIMEOUT)
    assert partition_count(bootstrap, name) == 1
    err = error_of(a.create_partitions([NewPartitions(name, 1)])[name])
    assert err.code() == KafkaError.INVALID_PARTITIONS
    assert "must be larger" in err.str()
    a.create_partitions([NewPartitions(name, 3)])[name].result(TIMEOUT)
    deadline = time.monotonic() + TIMEOUT
    while partition_count(bootstrap, name) != 3:
        assert time.monotonic() < deadline
        time.sleep(0.2)
    recs = records(20, "p2")
    for r in recs:
        r.partition = 2
    delivered = produce(bootstrap, name, recs)
    assert {r.partition for r in delivered} == {2}
    assert [r.offset for r in delivered] == list(range(20))
    consumed = consume(bootstrap, name, partitions=3, expected=20)
    assert [(r.partition, r.offset, r.value) for r in consumed] == [(2, i, f"p2-{i}".encode()) for i in range(20)]
    missing = unique("adm-none")
    err = error_of(a.create_partitions([NewPartitions(missing, 2)])[missing])
    assert err.code() == KafkaError.UNKNOWN_TOPIC_OR_PART


def test_delete_records_moves_the_low_watermark(bootstrap):
    a = admin(bootstrap)
    name = unique("adm-delrec")
    create_topic(bootstrap, name, 1)
    recs = records(10, "d")
    for r in recs:
        r.partition = 0
    produce(bootstrap, name, recs)
    tp = TopicPartition(name, 0, 4)
    result = a.delete_records([tp])[tp].result(TIMEOUT)
    assert result.low_watermark == 4
    earliest = TopicPartition(name, 0)
    offsets = a.list_offsets({earliest: OffsetSpec.earliest()})[earliest].result(TIMEOUT)
    assert offsets.offset == 4
    latest = a.list_offsets({earliest: OffsetSpec.latest()})[earliest].result(TIMEOUT)
    assert latest.offset == 10
    # A consumer from the beginning starts at the new low watermark.
    consumed = consume(bootstrap, name, partitions=1, expected=6)
    assert [(r.offset, r.value) for r in consumed] == [(i, f"d-{i}".encode()) for i in range(4, 10)]
    # Beyond the high watermark: OFFSET_OUT_OF_RANGE; -1 (OFFSET_END): everything.
    beyond = TopicPartition(name, 0, 11)
    assert error_of(a.delete_records([beyond])[beyond]).code() == KafkaError.OFFSET_OUT_OF_RANGE
    everything = TopicPartition(name, 0, -1)
    assert a.delete_records([everything])[everything].result(TIMEOUT).low_watermark == 10
    offsets = a.list_offsets({earliest: OffsetSpec.earliest()})[earliest].result(TIMEOUT)
    assert offsets.offset == 10


def test_describe_cluster(broker_factory):
    b = broker_factory(ephemeral=True)
    a = admin(b.bootstrap)
    desc = a.describe_cluster(include_authorized_operations=False).result(TIMEOUT)
    assert desc.cluster_id
    assert desc.controller is not None and desc.controller.id == 0
    assert [(n.id, n.host, n.port) for n in desc.nodes] == [(0, "127.0.0.1", b.port)]
    assert desc.authorized_operations is None
    with_ops = a.describe_cluster(include_authorized_operations=True).result(TIMEOUT)
    assert with_ops.authorized_operations, "every operation is allowed"


def test_describe_topics_and_delete_topics(bootstrap):
    from confluent_kafka import TopicCollection
    a = admin(bootstrap)
    name = unique("adm-topics")
    create_topic(bootstrap, name, 4)
    wait_led(bootstrap, name, 4)
    desc = a.describe_topics(TopicCollection([name]))[name].result(TIMEOUT)
    assert [p.id for p in desc.partitions] == [0, 1, 2, 3]
    assert all(p.leader.id == 0 and [r.id for r in p.isr] == [0] for p in desc.partitions)
    assert not desc.topic_id.__str__().startswith("AAAAAAAAAAAAAAAAAAAAAA")
    delete_topic(bootstrap, name)
    assert name not in a.list_topics(timeout=10).topics
    err = error_of(a.describe_topics(TopicCollection([name]))[name])
    assert err.code() == KafkaError.UNKNOWN_TOPIC_OR_PART


def test_kcat_lists_brokers_topics_partitions_and_leaders(broker_factory):
    b = broker_factory(ephemeral=True)
    names = [unique("adm-kcat"), unique("adm-kcat")]
    for n, parts in zip(names, (1, 3)):
        create_topic(b.bootstrap, n, parts)
        wait_led(b.bootstrap, n, parts)
    out = json.loads(run_kcat(["-b", b.bootstrap, "-L", "-J"]).stdout)
    assert [(br["id"], br["name"]) for br in out["brokers"]] == [(0, f"127.0.0.1:{b.port}")]
    topics = {t["topic"]: t for t in out["topics"]}
    for n, parts in zip(names, (1, 3)):
        t = topics[n]
        assert [p["partition"] for p in t["partitions"]] == list(range(parts))
        for p in t["partitions"]:
            assert p["leader"] == 0
            assert [r["id"] for r in p["replicas"]] == [0]
            assert [r["id"] for r in p["isrs"]] == [0]
            assert "error" not in p
    # The plain listing too.
    text = run_kcat(["-b", b.bootstrap, "-L", "-t", names[1]]).stdout.decode()
    assert "1 brokers:" in text and f"broker 0 at 127.0.0.1:{b.port}" in text
    assert f'topic "{names[1]}" with 3 partitions:' in text
    for p in range(3):
        assert f"partition {p}, leader 0, replicas: 0, isrs: 0" in text


def test_delete_records_survives_a_restart(broker_factory):
    b = broker_factory()  # data dir: local object store + embedded metadata
    name = unique("adm-delrec-durable")
    create_topic(b.bootstrap, name, 1)
    recs = records(30, "r")
    for r in recs:
        r.partition = 0
    produce(b.bootstrap, name, recs)
    tp = TopicPartition(name, 0, 17)
    a = admin(b.bootstrap)  # kept alive until its future resolves
    assert a.delete_records([tp])[tp].result(TIMEOUT).low_watermark == 17
    b.restart()
    a = admin(b.bootstrap)
    earliest = TopicPartition(name, 0)
    assert a.list_offsets({earliest: OffsetSpec.earliest()})[earliest].result(TIMEOUT).offset == 17
    consumed = consume(b.bootstrap, name, partitions=1, expected=13)
    assert [r.offset for r in consumed] == list(range(17, 30))


def test_consumer_validates_its_position_across_a_leader_epoch_change(broker_factory):
    """After a restart the partition has a new leader epoch; librdkafka then checks its
    position with OffsetForLeaderEpoch and must see no truncation and lose nothing."""
    from clients import consumer
    b = broker_factory()
    name = unique("adm-epoch")
    create_topic(b.bootstrap, name, 1)
    first = records(10, "a")
    for r in first:
        r.partition = 0
    produce(b.bootstrap, name, first)
    c = consumer(b.bootstrap, **{"topic.metadata.refresh.interval.ms": 500})
    got: list[tuple[int, bytes]] = []
    errors = []
    try:
        c.assign([TopicPartition(name, 0, 0)])

        def poll_until(n: int):
            deadline = time.monotonic() + 60
            while len(got) < n:
                assert time.monotonic() < deadline, f"got {len(got)} of {n}; errors {errors[:5]}"
                m = c.poll(0.2)
                if m is None:
                    continue
                if m.error() is not None:
                    if m.error().code() != KafkaError._PARTITION_EOF:
                        errors.append(m.error())
                    continue
                got.append((m.offset(), m.value()))

        poll_until(10)
        b.restart()
        second = records(10, "b")
        for r in second:
            r.partition = 0
        produce(b.bootstrap, name, second)
        poll_until(20)
    finally:
        c.close()
    assert got == [(i, f"a-{i}".encode()) for i in range(10)] + [(10 + i, f"b-{i}".encode()) for i in range(10)]
    truncation = [e for e in errors if "truncat" in e.str().lower()]
    assert not truncation, truncation
    # The restarted broker was asked for the end offset of the old epoch.
    status, text = b.http_get("/metrics")
    assert status == 200
    asked = [line for line in text.splitlines() if 'api="OffsetForLeaderEpoch"' in line and not line.startswith("#")]
    assert asked and float(asked[0].split()[-1]) >= 1, asked
