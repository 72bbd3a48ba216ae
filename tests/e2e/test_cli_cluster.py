"""The `kafscale` command-line tool on a cluster of three brokers (etcd + S3, started by
scripts/test.sh): requests go to each partition's leader, to the controller and to the
group's coordinator, whichever broker the tool was pointed at."""

from __future__ import annotations

import os
import subprocess
import time

import pytest

from clients import unique
from harness import BIN
from test_cli import cli, cli_json
from test_cluster import ETCD_URL, REQUIRED, S3_URL, leaders, start_cluster, wait_for

pytestmark = pytest.mark.skipif(
    not (ETCD_URL and S3_URL) and not REQUIRED,
    reason="no etcd / S3 server; ./scripts/test.sh starts both",
)


def test_cli_on_three_brokers(broker_factory):
    brokers, _ = start_cluster(broker_factory, 3)
    b1, b2, b3 = brokers
    wait_for("three brokers in cluster info",
             lambda: len(cli_json(b1, "cluster", "info")["brokers"]) == 3)
    info = cli_json(b2, "cluster", "info")
    assert {(b["id"], b["port"]) for b in info["brokers"]} == {(1, b1.port), (2, b2.port), (3, b3.port)}
    assert info["controller_id"] in {1, 2, 3} and info["cluster_id"]

    topic = unique("cli-cluster")
    cli(b3, "topic", "create", topic, "--partitions", "6")

    def spread():
        d = cli_json(b1, "topic", "describe", topic)
        return d if {p["leader"] for p in d["partitions"]} == {1, 2, 3} else None

    d = wait_for("leaders on every broker", spread, timeout=60)
    by_partition = {p["partition"]: p["leader"] for p in d["partitions"]}
    assert by_partition == leaders(b1.bootstrap, topic), "the CLI and librdkafka disagree on leaders"

    # Produced through one broker, read back through another: every record once.
    lines = [f"k{i}:v{i}" for i in range(300)]
    cli(b2, "produce", topic, "--key-separator", ":", input=("\n".join(lines) + "\n").encode())
    out = cli(b3, "consume", topic, "--from-beginning", "--max", "300", "--print-key").stdout
    assert sorted(out.splitlines()) == sorted(line.replace(":", "\t") for line in lines)
    ends = {p["partition"]: p["latest_offset"] for p in cli_json(b2, "topic", "describe", topic)["partitions"]}
    assert sum(ends.values()) == 300 and sum(1 for n in ends.values() if n > 0) >= 3

    # A group's offsets committed through one broker are seen through another.
    group = unique("cli-cluster-group")
    cli(b1, "consume", topic, "--group", group, "--from-beginning", "--max", "300")
    g = cli_json(b2, "group", "describe", group)
    assert g["state"] == "Empty" and g["total_lag"] == 0
    assert {o["partition"]: o["committed_offset"] for o in g["offsets"]} == {p: n for p, n in ends.items() if n > 0}
    reset = cli_json(b3, "group", "reset-offsets", group, "--topic", topic, "--to-earliest")
    assert all(p["new_offset"] == 0 for p in reset["partitions"])
    assert cli_json(b1, "group", "describe", group)["total_lag"] == 300

    cli(b2, "topic", "delete", topic)
    wait_for("topic gone from every broker",
             lambda: all(topic not in [t["name"] for t in cli_json(b, "topic", "list")["topics"]] for b in brokers))


def test_cli_consume_follows_a_failover(broker_factory):
    brokers, _ = start_cluster(broker_factory, 3)
    b1 = brokers[0]
    topic = unique("cli-failover")
    cli(b1, "topic", "create", topic, "--partitions", "6")

    def spread():
        d = cli_json(b1, "topic", "describe", topic)
        return d if {p["leader"] for p in d["partitions"]} == {1, 2, 3} else None

    wait_for("leaders on every broker", spread, timeout=60)
    first = [f"before {i}" for i in range(120)]
    cli(b1, "produce", topic, input=("\n".join(first) + "\n").encode())

    # A consumer through broker 1 that waits for 240 records.
    cmd = [str(BIN), "consume", topic, "--bootstrap", b1.bootstrap, "--from-beginning", "--max", "240",
           "--timeout-ms", "60000"]
    env = {k: v for k, v in os.environ.items() if not k.startswith("KAFSCALE_")}
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)
    try:
        time.sleep(1.0)
        brokers[2].kill()  # broker 3 leads some partitions the consumer is reading
        wait_for("partitions of broker 3 taken over",
                 lambda: {p["leader"] for p in cli_json(b1, "topic", "describe", topic)["partitions"]} <= {1, 2},
                 timeout=60)
        second = [f"after {i}" for i in range(120)]
        cli(b1, "produce", topic, input=("\n".join(second) + "\n").encode())
        out, err = proc.communicate(timeout=90)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 0, err.decode()
    assert sorted(out.decode().splitlines()) == sorted(first + second)
