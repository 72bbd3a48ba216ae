"""Consumer groups with kafka-python, aiokafka and kafkajs: two members of one group split
a topic's partitions between them and consume every record exactly once."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import subprocess
import threading
import time
from pathlib import Path

import pytest

from clients import create_topic, unique
from harness import requires_broker

pytestmark = requires_broker

HERE = Path(__file__).resolve().parent
BROKER_CONFIG = "\"group.initial.rebalance.delay.ms\" = 300\n"
PARTITIONS = 4
COUNT = 40


@pytest.fixture
def group_broker(broker_factory):
    return broker_factory(ephemeral=True, config=BROKER_CONFIG)


def check_split(assignments: list[list[int]], received: list[list[str]]) -> None:
    assert all(assignments), f"a member got no partition: {assignments}"
    assert sorted(p for a in assignments for p in a) == list(range(PARTITIONS)), assignments
    values = [v for r in received for v in r]
    assert sorted(values) == sorted(f"{i}" for i in range(COUNT)) or \
        sorted(values) == sorted(f"js-{i}" for i in range(COUNT)), "records lost or duplicated"
    assert all(received), f"a member consumed nothing: {[len(r) for r in received]}"


def wait_balanced(assignments, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while not (all(assignments) and sum(len(a) for a in assignments) == PARTITIONS):
        assert time.monotonic() < deadline, f"no balanced assignment: {assignments}"
        time.sleep(0.1)


def test_kafka_python_group_of_two(group_broker):
    from kafka import KafkaConsumer, KafkaProducer

    bootstrap = group_broker.bootstrap
    topic, group = unique("kp"), unique("g")
    create_topic(bootstrap, topic, PARTITIONS)
    assignments: list[list[int]] = [[], []]
    received: list[list[str]] = [[], []]
    stop = threading.Event()

    def member(i: int) -> None:
        c = KafkaConsumer(topic, bootstrap_servers=bootstrap, group_id=group, auto_offset_reset="earliest",
                          session_timeout_ms=6000, heartbeat_interval_ms=300, consumer_timeout_ms=200)
        try:
            while not stop.is_set():
                for msg in c.poll(timeout_ms=100).values():
                    received[i].extend(m.value.decode() for m in msg)
                assignments[i] = sorted(tp.partition for tp in c.assignment())
        finally:
            c.close()

    threads = [threading.Thread(target=member, args=(i,), daemon=True) for i in range(2)]
    for t in threads:
        t.start()
    try:
        wait_balanced(assignments)
        p = KafkaProducer(bootstrap_servers=bootstrap)
        for i in range(COUNT):
            p.send(topic, str(i).encode(), partition=i % PARTITIONS)
        p.flush(30)
        p.close()
        deadline = time.monotonic() + 60
        while sum(len(r) for r in received) < COUNT:
            assert time.monotonic() < deadline, f"received {[len(r) for r in received]}"
            time.sleep(0.1)
    finally:
        stop.set()
        for t in threads:
            t.join(30)
    check_split(assignments, received)


def test_aiokafka_group_of_two(group_broker):
    from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

    bootstrap = group_broker.bootstrap
    topic, group = unique("aio"), unique("g")
    create_topic(bootstrap, topic, PARTITIONS)
    assignments: list[list[int]] = [[], []]
    received: list[list[str]] = [[], []]

    async def run() -> None:
        consumers = [AIOKafkaConsumer(topic, bootstrap_servers=bootstrap, group_id=group,
                                      auto_offset_reset="earliest", session_timeout_ms=6000,
                                      heartbeat_interval_ms=300) for _ in range(2)]
        for c in consumers:
            await c.start()
        stop = asyncio.Event()

        async def member(i: int) -> None:
            while not stop.is_set():
                batches = await consumers[i].getmany(timeout_ms=100)
                for msgs in batches.values():
                    received[i].extend(m.value.decode() for m in msgs)
                assignments[i] = sorted(tp.partition for tp in consumers[i].assignment())

        tasks = [asyncio.create_task(member(i)) for i in range(2)]
        try:
            deadline = time.monotonic() + 60
            while not (all(assignments) and sum(len(a) for a in assignments) == PARTITIONS):
                assert time.monotonic() < deadline, f"no balanced assignment: {assignments}"
                await asyncio.sleep(0.1)
            producer = AIOKafkaProducer(bootstrap_servers=bootstrap)
            await producer.start()
            for i in range(COUNT):
                await producer.send(topic, str(i).encode(), partition=i % PARTITIONS)
            await producer.flush()
            await producer.stop()
            while sum(len(r) for r in received) < COUNT:
                assert time.monotonic() < deadline, f"received {[len(r) for r in received]}"
                await asyncio.sleep(0.1)
        finally:
            stop.set()
            await asyncio.gather(*tasks, return_exceptions=True)
            for c in consumers:
                await c.stop()

    asyncio.run(run())
    check_split(assignments, received)


def test_kafkajs_group_of_two(group_broker):
    node_modules = HERE / "node_modules" / "kafkajs"
    if not node_modules.is_dir() or shutil.which("node") is None:
        pytest.skip("kafkajs not installed (scripts/test.sh installs it with npm)")
    bootstrap = group_broker.bootstrap
    topic, group = unique("js"), unique("g")
    create_topic(bootstrap, topic, PARTITIONS)
    res = subprocess.run(["node", str(HERE / "kafkajs_group.js"), bootstrap, topic, group, str(COUNT)],
                         cwd=HERE, capture_output=True, text=True, timeout=120,
                         env={**os.environ, "KAFKAJS_NO_PARTITIONER_WARNING": "1"})
    assert res.returncode == 0, f"kafkajs failed:\n{res.stderr[-4000:]}"
    summary = json.loads(res.stdout.strip().splitlines()[-1])
    received = [[r["v"] for r in member] for member in summary["received"]]
    check_split(summary["assignments"], received)
