"""Consumer groups through kcat's balanced consumer, and a group that never committed.
(The confluent-kafka, kafka-python, aiokafka and kafkajs group tests are in
test_groups_confluent.py and test_groups_clients.py.)"""

from __future__ import annotations

from confluent_kafka import KafkaError, TopicPartition

from clients import Rec, consumer, create_topic, produce, unique
from harness import requires_broker, run_kcat

pytestmark = requires_broker


def test_kcat_balanced_consumer(broker):
    bs = broker.bootstrap
    topic, group = unique("kcg"), unique("g")
    create_topic(bs, topic, 2)
    delivered = produce(bs, topic, [Rec(f"k{i}".encode(), f"v{i}".encode()) for i in range(200)])
    res = run_kcat(["-b", bs, "-G", group, "-o", "beginning", "-e", "-q", "-f", "%p %o %s\\n",
                    "-X", "session.timeout.ms=6000", topic], timeout=90)
    rows = sorted(tuple(line.split()) for line in res.stdout.decode().splitlines() if line.strip())
    assert rows == sorted((str(r.partition), str(r.offset), r.value.decode()) for r in delivered)


def test_unknown_group_offsets_are_unset(broker):
    bs = broker.bootstrap
    topic = unique("nocommit")
    create_topic(bs, topic, 1)
    c = consumer(bs, **{"group.id": unique("fresh")})
    try:
        tp = c.committed([TopicPartition(topic, 0)], timeout=10)[0]
        assert tp.error is None or tp.error.code() == KafkaError.NO_ERROR
        assert tp.offset < 0, f"a group that never committed has offset {tp.offset}"
    finally:
        c.close()
