"""Configuration keys take effect (file < environment precedence, auto-create, partitions)."""

from __future__ import annotations

import time

import pytest

import kafka_wire as kw
from clients import Rec, assert_same_records, consume, make_records, partition_count, produce, unique
from harness import requires_broker

pytestmark = requires_broker


def metadata_topic(broker, name: str) -> dict:
    with kw.Conn("127.0.0.1", broker.port) as c:
        return c.metadata([name])["topics"][0]


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
    for _ in range(3):  # asking again must not create it either
        t = metadata_topic(b, name)
        assert t["error"] == kw.ERR_UNKNOWN_TOPIC_OR_PARTITION, t
        time.sleep(0.2)
    with kw.Conn("127.0.0.1", b.port) as c:
        assert name not in [t["name"] for t in c.metadata(None)["topics"]]
        assert c.create_topic(name, 2) == kw.ERR_NONE  # explicit creation still works
        assert c.create_topic(name, 2) == kw.ERR_TOPIC_ALREADY_EXISTS
    assert partition_count(b.bootstrap, name) == 2


def test_auto_create_default_on(ephemeral_broker):
    name = unique("auto")
    deadline = time.monotonic() + 10
    while True:
        t = metadata_topic(ephemeral_broker, name)
        if t["error"] == 0 and t["partitions"]:
            break
        # LEADER_NOT_AVAILABLE (5) while the topic is being created
        assert t["error"] in (0, 5), t
        assert time.monotonic() < deadline, t
        time.sleep(0.1)
    assert len(t["partitions"]) >= 1


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
