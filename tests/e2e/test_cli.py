"""The `kafscale` command-line tool (topic, group, cluster, produce, consume) against a real
broker process, cross-checked with confluent-kafka (librdkafka)."""

from __future__ import annotations

import json
import os
import socket
import struct
import subprocess
import threading
import time

from confluent_kafka import Consumer, TopicPartition
from confluent_kafka.admin import ConfigResource

from clients import Rec, admin, consume, create_topic, partition_count, produce, unique
from harness import BIN, free_port, requires_broker

pytestmark = requires_broker

# The first rebalance of a group waits this long for more members.
GROUP_CONFIG = "\"group.initial.rebalance.delay.ms\" = 300\n"


def cli(broker, *args: str, input: bytes | None = None, timeout: float = 60,
        check: bool = True) -> subprocess.CompletedProcess:
    """Runs `kafscale ARGS --bootstrap <broker>`; output as text (bytes in, text out)."""
    cmd = [str(BIN), *args]
    if broker is not None:
        cmd += ["--bootstrap", broker.bootstrap]
    env = {k: v for k, v in os.environ.items() if not k.startswith("KAFSCALE_")}
    res = subprocess.run(cmd, input=input, capture_output=True, timeout=timeout, env=env)
    res.stdout = res.stdout.decode(errors="replace")
    res.stderr = res.stderr.decode(errors="replace")
    if check:
        assert res.returncode == 0, f"{' '.join(cmd)} exited {res.returncode}\nstderr: {res.stderr}"
    return res


def cli_json(broker, *args: str, **kw):
    return json.loads(cli(broker, *args, "--json", **kw).stdout)


def assert_clean_error(res: subprocess.CompletedProcess, *needles: str) -> None:
    """Non-zero exit, one `error: ...` line on stderr that contains every needle, no panic."""
    assert res.returncode != 0, f"expected a failure, got exit 0: {res.stdout}"
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), f"stderr: {res.stderr!r}"
    for n in needles:
        assert n in lines[0], f"{n!r} not in {lines[0]!r}"
    for bad in ("panicked", "RUST_BACKTRACE", "stack backtrace", "Error {", "Custom {"):
        assert bad not in res.stderr


# ---------------------------------------------------------------------------------------
# topics


def test_topic_create_list_describe_delete(broker):
    topic = unique("cli-topic")
    res = cli(broker, "topic", "create", topic, "--partitions", "3", "--config", "retention.ms=86400000")
    assert f"created topic {topic} with 3 partitions" in res.stdout
    # Another client sees what the CLI created.
    assert partition_count(broker.bootstrap, topic) == 3

    listed = cli(broker, "topic", "list").stdout.splitlines()
    assert listed[0].split() == ["TOPIC", "PARTITIONS", "TOPIC", "ID"]
    row = next(line.split() for line in listed if line.startswith(topic + " "))
    assert row[1] == "3"
    j = cli_json(broker, "topic", "list")
    entry = next(t for t in j["topics"] if t["name"] == topic)
    assert entry["partitions"] == 3 and len(entry["topic_id"]) == 36

    produce(broker.bootstrap, topic, [Rec(b"k", f"v{i}".encode(), partition=1) for i in range(5)])
    d = cli_json(broker, "topic", "describe", topic)
    assert d["name"] == topic and d["topic_id"] == entry["topic_id"]
    parts = {p["partition"]: p for p in d["partitions"]}
    assert sorted(parts) == [0, 1, 2]
    for p in parts.values():
        assert p["leader"] == 0 and isinstance(p["leader_epoch"], int) and p["leader_epoch"] >= 0
        assert p["earliest_offset"] == 0
    assert [parts[i]["latest_offset"] for i in range(3)] == [0, 5, 0]
    text = cli(broker, "topic", "describe", topic).stdout
    assert f"topic:      {topic}" in text and "LEADER EPOCH" in text

    assert cli(broker, "topic", "delete", topic).stdout.strip() == f"deleted topic {topic}"
    assert topic not in [t["name"] for t in cli_json(broker, "topic", "list")["topics"]]
    assert topic not in admin(broker.bootstrap).list_topics(timeout=10).topics
    assert_clean_error(cli(broker, "topic", "delete", topic, check=False), f"unknown topic {topic}")


def test_topic_configs_describe_and_alter(broker):
    topic = unique("cli-cfg")
    cli(broker, "topic", "create", topic, "--partitions", "1", "--config", "retention.ms=3600000")
    d = cli_json(broker, "topic", "describe", topic)
    assert d["configs"]["retention.ms"]["value"] == "3600000"
    assert d["configs"]["retention.ms"]["source"] == "topic"

    out = cli(broker, "topic", "alter", topic, "--config", "retention.ms=7200000").stdout
    assert out.strip() == f"altered topic {topic}: set retention.ms=7200000"
    assert cli_json(broker, "topic", "describe", topic)["configs"]["retention.ms"]["value"] == "7200000"
    # A Kafka client reads the altered value too.
    a = admin(broker.bootstrap)  # alive until the future resolves
    [fut] = a.describe_configs([ConfigResource(ConfigResource.Type.TOPIC, topic)]).values()
    assert fut.result(10)["retention.ms"].value == "7200000"

    cli(broker, "topic", "alter", topic, "--delete-config", "retention.ms")
    after = cli_json(broker, "topic", "describe", topic)["configs"].get("retention.ms")
    assert after is None or (after["source"] != "topic" and after["value"] != "7200000")

    res = cli(broker, "topic", "alter", topic, "--config", "retention.ms=soon", check=False)
    assert_clean_error(res, f"cannot alter topic {topic}", "INVALID_CONFIG")


# ---------------------------------------------------------------------------------------
# produce and consume


def test_cli_produce_then_confluent_consume(broker):
    topic = unique("cli-prod")
    create_topic(broker.bootstrap, topic, 3)
    lines = [f"key-{i % 7}:value {i}: with a colon" for i in range(200)] + ["no separator here"]
    res = cli(broker, "produce", topic, "--key-separator", ":", "--verbose",
              input=("\n".join(lines) + "\n").encode())
    acked = [line.rsplit("/", 1)[1].split("@") for line in res.stdout.splitlines()]
    assert len(acked) == len(lines)

    got = consume(broker.bootstrap, topic, partitions=3, expected=len(lines))
    assert len(got) == len(lines)
    # The --verbose offsets are those the consumer sees.
    assert sorted((int(p), int(o)) for p, o in acked) == sorted((r.partition, r.offset) for r in got)
    expected = sorted((f"key-{i % 7}".encode(), f"value {i}: with a colon".encode()) for i in range(200))
    expected.append((None, b"no separator here"))
    assert sorted(((r.key, r.value) for r in got), key=repr) == sorted(expected, key=repr)
    # Records of one key share a partition, in the order they were written.
    by_key: dict[bytes, set[int]] = {}
    for r in got:
        if r.key is not None:
            by_key.setdefault(r.key, set()).add(r.partition)
    assert all(len(ps) == 1 for ps in by_key.values()), by_key
    for key in by_key:
        values = [r.value for r in sorted(got, key=lambda r: r.offset) if r.key == key]
        assert values == [f"value {i}: with a colon".encode() for i in range(200) if f"key-{i % 7}".encode() == key]

    # --partition puts everything in one partition.
    cli(broker, "produce", topic, "--partition", "2", input=b"a\nb\nc\n")
    tail = [r for r in consume(broker.bootstrap, topic, partitions=3, expected=len(lines) + 3)
            if r.value in (b"a", b"b", b"c")]
    assert [(r.partition, r.value) for r in tail] == [(2, b"a"), (2, b"b"), (2, b"c")]


def test_confluent_produce_then_cli_consume(broker):
    topic = unique("cli-cons")
    create_topic(broker.bootstrap, topic, 2)
    records = [Rec(f"k{i}".encode(), f"line {i}".encode(), partition=i % 2) for i in range(60)]
    delivered = produce(broker.bootstrap, topic, records)

    out = cli(broker, "consume", topic, "--from-beginning", "--max", "60", "--print-key").stdout
    assert sorted(out.splitlines()) == sorted(f"k{i}\tline {i}" for i in range(60))

    # One partition, in offset order, as JSON lines.
    lines = cli(broker, "consume", topic, "--from-beginning", "--partition", "1", "--max", "30",
                "--json").stdout.splitlines()
    got = [json.loads(line) for line in lines]
    want = sorted((r for r in delivered if r.partition == 1), key=lambda r: r.offset)
    assert [(g["partition"], g["offset"], g["key"], g["value"]) for g in got] == \
        [(1, r.offset, r.key.decode(), r.value.decode()) for r in want]

    # --max stops early; without it the command ends after --timeout-ms of silence.
    assert len(cli(broker, "consume", topic, "--from-beginning", "--max", "5").stdout.splitlines()) == 5
    t0 = time.monotonic()
    res = cli(broker, "consume", topic, "--timeout-ms", "1500")
    assert res.stdout == "" and 1.0 < time.monotonic() - t0 < 20


# ---------------------------------------------------------------------------------------
# groups


def live_consumer(broker, topic: str, group: str, **extra) -> Consumer:
    conf = {
        "bootstrap.servers": broker.bootstrap,
        "group.id": group,
        "client.id": "cli-e2e-client",
        "enable.auto.commit": False,
        "auto.offset.reset": "earliest",
        "session.timeout.ms": 10000,
    }
    conf.update(extra)
    c = Consumer(conf)
    c.subscribe([topic])
    return c


def poll_records(c: Consumer, n: int, timeout: float = 60) -> list:
    got = []
    deadline = time.monotonic() + timeout
    while len(got) < n:
        assert time.monotonic() < deadline, f"got {len(got)} of {n} records"
        msg = c.poll(0.2)
        if msg is None or msg.error() is not None:
            continue
        got.append(msg)
    return got


def test_group_describe_lag_and_reset_offsets(broker_factory):
    broker = broker_factory(config=GROUP_CONFIG)
    topic, group = unique("cli-grp"), unique("cli-group")
    create_topic(broker.bootstrap, topic, 2)
    produce(broker.bootstrap, topic, [Rec(None, f"r{i}".encode(), partition=i % 2) for i in range(20)])

    c = live_consumer(broker, topic, group)
    try:
        msgs = poll_records(c, 20)
        # Commit 4 on partition 0 and 7 on partition 1: lag 6 and 3.
        c.commit(offsets=[TopicPartition(topic, 0, 4), TopicPartition(topic, 1, 7)], asynchronous=False)
        assert {m.partition() for m in msgs} == {0, 1}

        d = cli_json(broker, "group", "describe", group)
        assert d["group"] == group and d["state"] == "Stable"
        assert d["protocol_type"] == "consumer" and d["protocol"] in ("range", "roundrobin", "cooperative-sticky")
        assert len(d["members"]) == 1
        m = d["members"][0]
        assert m["client_id"] == "cli-e2e-client" and m["client_host"] == "/127.0.0.1"
        assert m["assignment"] == [{"topic": topic, "partitions": [0, 1]}]
        offsets = {(o["topic"], o["partition"]): o for o in d["offsets"]}
        assert offsets[(topic, 0)] == {"topic": topic, "partition": 0, "committed_offset": 4,
                                      "log_end_offset": 10, "lag": 6, "member_id": m["member_id"]}
        assert (offsets[(topic, 1)]["committed_offset"], offsets[(topic, 1)]["lag"]) == (7, 3)
        assert d["total_lag"] == 9
        text = cli(broker, "group", "describe", group).stdout
        assert "state:    Stable" in text and "cli-e2e-client" in text and "LAG" in text

        listed = cli_json(broker, "group", "list")["groups"]
        assert {"group": group, "state": "Stable", "protocol_type": "consumer"} in listed

        # Kafka refuses to move the offsets of a group with members.
        res = cli(broker, "group", "reset-offsets", group, "--topic", topic, "--to-earliest", check=False)
        assert_clean_error(res, f"group {group} is Stable", "empty")
    finally:
        c.close()

    deadline = time.monotonic() + 30
    while cli_json(broker, "group", "describe", group)["state"] != "Empty":
        assert time.monotonic() < deadline, "group not Empty after its member left"
        time.sleep(0.2)

    dry = cli_json(broker, "group", "reset-offsets", group, "--topic", topic, "--to-offset", "2", "--dry-run")
    assert dry["dry_run"] is True
    assert {p["partition"]: (p["previous_offset"], p["new_offset"]) for p in dry["partitions"]} == \
        {0: (4, 2), 1: (7, 2)}
    assert cli_json(broker, "group", "describe", group)["total_lag"] == 9, "a dry run changed offsets"

    out = cli(broker, "group", "reset-offsets", group, "--topic", topic, "--to-offset", "2").stdout
    assert out.splitlines()[0] == f"reset offsets of group {group}"
    rows = [line.split() for line in out.splitlines()[2:]]
    assert rows == [[topic, "0", "4", "2"], [topic, "1", "7", "2"]]

    # A consumer of the group starts where the reset put it.
    c = live_consumer(broker, topic, group, **{"auto.offset.reset": "latest"})
    try:
        first: dict[int, int] = {}
        deadline = time.monotonic() + 60
        while len(first) < 2:
            assert time.monotonic() < deadline, f"first offsets seen: {first}"
            msg = c.poll(0.2)
            if msg is not None and msg.error() is None:
                first.setdefault(msg.partition(), msg.offset())
        assert first == {0: 2, 1: 2}
    finally:
        c.close()

    # --to-latest on a group that never existed creates its offsets; then delete it.
    other = unique("cli-new-group")
    j = cli_json(broker, "group", "reset-offsets", other, "--topic", topic, "--to-latest")
    assert {p["partition"]: p["new_offset"] for p in j["partitions"]} == {0: 10, 1: 10}
    assert cli_json(broker, "group", "describe", other)["total_lag"] == 0
    assert cli(broker, "group", "delete", other).stdout.strip() == f"deleted group {other}"
    assert_clean_error(cli(broker, "group", "describe", other, check=False), f"unknown group {other}")


def test_cli_consume_with_group_resumes(broker):
    topic, group = unique("cli-cg"), unique("cli-cg-group")
    create_topic(broker.bootstrap, topic, 1)
    cli(broker, "produce", topic, input=b"".join(f"m{i}\n".encode() for i in range(10)))
    first = cli(broker, "consume", topic, "--group", group, "--from-beginning", "--max", "4").stdout
    assert first.splitlines() == ["m0", "m1", "m2", "m3"]
    # The next run of the same group goes on where the first stopped.
    second = cli(broker, "consume", topic, "--group", group, "--max", "3").stdout
    assert second.splitlines() == ["m4", "m5", "m6"]
    # And a real client of that group sees the committed position.
    c = Consumer({"bootstrap.servers": broker.bootstrap, "group.id": group})
    try:
        [tp] = c.committed([TopicPartition(topic, 0)], timeout=10)
        assert tp.offset == 7
    finally:
        c.close()


# ---------------------------------------------------------------------------------------
# cluster


def test_cluster_info(broker):
    text = cli(broker, "cluster", "info").stdout
    assert "cluster id:" in text and "controller: 0" in text and f"API versions of {broker.bootstrap}" in text
    j = cli_json(broker, "cluster", "info")
    assert j["controller_id"] == 0 and j["cluster_id"] and j["source"] == "DescribeCluster"
    assert j["brokers"] == [{"id": 0, "host": "127.0.0.1", "port": broker.port, "rack": None}]
    apis = {a["api"]: a for a in j["api_versions"]["apis"]}
    assert apis["Produce"]["max_version"] >= 9 and apis["Metadata"]["min_version"] <= 4
    assert {"ApiVersions", "Fetch", "FindCoordinator", "CreateTopics"} <= set(apis)
    # The same cluster id as a Kafka client reads from Metadata.
    assert admin(broker.bootstrap).list_topics(timeout=10).cluster_id == j["cluster_id"]


# ---------------------------------------------------------------------------------------
# errors


def test_produce_creates_a_missing_topic_where_the_broker_auto_creates(broker_factory):
    """As Kafka's console producer: the topic appears with the broker's num.partitions when
    auto.create.topics.enable is on (the default), and is a clean error when it is off."""
    b = broker_factory(ephemeral=True, config='"num.partitions" = 3\n')
    topic = unique("cli-auto")
    cli(b, "produce", topic, input=b"one\ntwo\n")
    assert len(admin(b.bootstrap).list_topics(topic, timeout=10).topics[topic].partitions) == 3
    out = cli(b, "consume", topic, "--from-beginning", "--max", "2").stdout
    assert sorted(out.splitlines()) == ["one", "two"]

    off = broker_factory(ephemeral=True, config='"auto.create.topics.enable" = false\n')
    missing = unique("cli-noauto")
    assert_clean_error(cli(off, "produce", missing, input=b"x\n", check=False), f"unknown topic {missing}")
    assert missing not in admin(off.bootstrap).list_topics(timeout=10).topics


def test_clear_errors(broker):
    missing = unique("no-such-topic")
    for args in (("topic", "describe", missing), ("consume", missing, "--max", "1"),
                 ("group", "reset-offsets", unique("g"), "--topic", missing, "--to-earliest")):
        assert_clean_error(cli(broker, *args, check=False), f"unknown topic {missing}")
    # Nothing was created on the way.
    assert missing not in admin(broker.bootstrap).list_topics(timeout=10).topics

    bad = unique("bad-config")
    res = cli(broker, "topic", "create", bad, "--config", "retention.ms=forever", check=False)
    assert_clean_error(res, f"cannot create topic {bad}", "INVALID_CONFIG", "retention.ms")
    taken = unique("taken")
    cli(broker, "topic", "create", taken)
    assert_clean_error(cli(broker, "topic", "create", taken, check=False), "TOPIC_ALREADY_EXISTS")
    assert_clean_error(cli(broker, "group", "describe", unique("nobody"), check=False), "unknown group")
    assert_clean_error(cli(broker, "consume", taken, "--partition", "9", check=False), "no partition 9")

    # Nothing listens on that port.
    port = free_port()
    res = cli(None, "topic", "list", "--bootstrap", f"127.0.0.1:{port}", check=False)
    assert_clean_error(res, f"cannot connect to 127.0.0.1:{port}")
    res = cli(None, "cluster", "info", "--bootstrap", "not a host", check=False)
    assert_clean_error(res, "cannot connect to not a host")
    # Bad arguments are refused by the parser, with usage, exit 2.
    res = cli(broker, "topic", "create", taken, "--config", "novalue", check=False)
    assert res.returncode == 2 and "KEY=VALUE" in res.stderr


def serve_answers(answer) -> tuple[int, threading.Event]:
    """A fake broker on a free port: for each request frame, `answer(api_key, version,
    correlation_id)` gives the response body (after the correlation id), or None to close."""
    listener = socket.create_server(("127.0.0.1", 0))
    port = listener.getsockname()[1]
    stop = threading.Event()

    def handle(conn: socket.socket) -> None:
        with conn:
            while not stop.is_set():
                head = conn.recv(4, socket.MSG_WAITALL)
                if len(head) < 4:
                    return
                frame = conn.recv(struct.unpack(">i", head)[0], socket.MSG_WAITALL)
                api, version, corr = struct.unpack(">hhi", frame[:8])
                body = answer(api, version, corr)
                if body is None:
                    return
                out = struct.pack(">i", corr) + body
                conn.sendall(struct.pack(">i", len(out)) + out)

    def run() -> None:
        listener.settimeout(0.2)
        with listener:
            while not stop.is_set():
                try:
                    conn, _ = listener.accept()
                except TimeoutError:
                    continue
                threading.Thread(target=handle, args=(conn,), daemon=True).start()

    threading.Thread(target=run, daemon=True).start()
    return port, stop


def uvarint(v: int) -> bytes:
    out = bytearray()
    while v >= 0x80:
        out.append((v & 0x7F) | 0x80)
        v >>= 7
    out.append(v)
    return bytes(out)


def api_versions_v3(apis: list[tuple[int, int, int]]) -> bytes:
    body = struct.pack(">h", 0) + uvarint(len(apis) + 1)
    for key, lo, hi in apis:
        body += struct.pack(">hhh", key, lo, hi) + b"\x00"
    return body + struct.pack(">i", 0) + b"\x00"


def test_hostile_broker_answers_are_clean_errors():
    """Answers whose arrays claim billions of elements make the CLI fail with an error line,
    never an allocation abort: first in ApiVersions itself, then in Metadata after a valid
    ApiVersions."""
    def hostile_api_versions(api, version, corr):
        return struct.pack(">h", 0) + uvarint(0xFFFFFFFF) + bytes(8)

    def hostile_metadata(api, version, corr):
        if api == 18:
            return api_versions_v3([(18, 0, 3), (3, 0, 12)])
        # Metadata v12 response (header v1: a tagged-field count first): throttle, then a
        # brokers array of 2^31 - 2 elements in a few bytes.
        return b"\x00" + struct.pack(">i", 0) + uvarint(0x7FFFFFFF) + bytes(8)

    for answer, api in ((hostile_api_versions, "ApiVersions"), (hostile_metadata, "Metadata")):
        port, stop = serve_answers(answer)
        try:
            res = cli(None, "topic", "list", "--bootstrap", f"127.0.0.1:{port}", check=False, timeout=30)
        finally:
            stop.set()
        assert res.returncode not in (-6, 134), f"the CLI aborted: {res.stderr[-400:]}"
        assert_clean_error(res, f"cannot decode the {api}")
