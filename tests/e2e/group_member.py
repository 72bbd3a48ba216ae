"""One confluent-kafka (librdkafka) group member as a process of its own, so that a test
can close it (a line "close" on stdin) or kill it (SIGKILL).

Usage: group_member.py BOOTSTRAP TOPIC GROUP ASSIGNOR [INSTANCE_ID]

Writes one JSON object per line to stdout:
  {"event": "assignment", "partitions": [...], "t": monotonic seconds}  after every change
  {"event": "record", "p": partition, "o": offset, "v": value}
  {"event": "closed"}
"""

from __future__ import annotations

import json
import sys
import threading
import time

from confluent_kafka import Consumer


def emit(**kv) -> None:
    sys.stdout.write(json.dumps(kv) + "\n")
    sys.stdout.flush()


def main() -> None:
    bootstrap, topic, group, assignor = sys.argv[1:5]
    instance = sys.argv[5] if len(sys.argv) > 5 else None
    conf = {
        "bootstrap.servers": bootstrap,
        "group.id": group,
        "partition.assignment.strategy": assignor,
        "session.timeout.ms": 6000,
        "heartbeat.interval.ms": 300,
        "auto.offset.reset": "earliest",
        "enable.auto.commit": True,
        "auto.commit.interval.ms": 200,
        "enable.partition.eof": False,
        "fetch.wait.max.ms": 100,
    }
    if instance:
        conf["group.instance.id"] = instance
        conf["session.timeout.ms"] = 10000
    c = Consumer(conf)
    owned: set[int] = set()

    def report() -> None:
        emit(event="assignment", partitions=sorted(owned), t=time.monotonic())

    def on_assign(consumer, partitions):
        if assignor == "cooperative-sticky":
            owned.update(p.partition for p in partitions)
        else:
            owned.clear()
            owned.update(p.partition for p in partitions)
        report()

    def on_revoke(consumer, partitions):
        owned.difference_update(p.partition for p in partitions)
        if assignor == "cooperative-sticky":
            report()

    stop = threading.Event()
    threading.Thread(target=lambda: (sys.stdin.readline(), stop.set()), daemon=True).start()
    c.subscribe([topic], on_assign=on_assign, on_revoke=on_revoke)
    while not stop.is_set():
        msg = c.poll(0.1)
        if msg is None or msg.error() is not None:
            continue
        emit(event="record", p=msg.partition(), o=msg.offset(), v=msg.value().decode())
    c.close()
    emit(event="closed")


if __name__ == "__main__":
    main()
