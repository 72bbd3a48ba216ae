"""Malformed and invalid input over raw sockets. After each case the broker must still be
alive and answer a fresh connection, and bad input must never be stored."""

from __future__ import annotations

import random
import struct
import threading
import time

import pytest

import kafka_wire as kw
from clients import assert_same_records, consume, create_topic as create_topic_admin, make_records, produce, unique
from harness import requires_broker

pytestmark = requires_broker

GIB = 1024 * 1024  # in KiB, as /proc/<pid>/status reports
REQUIRED_APIS = {
    kw.API_PRODUCE: "Produce",
    kw.API_FETCH: "Fetch",
    kw.API_LIST_OFFSETS: "ListOffsets",
    kw.API_METADATA: "Metadata",
    kw.API_API_VERSIONS: "ApiVersions",
    kw.API_CREATE_TOPICS: "CreateTopics",
    kw.API_DELETE_TOPICS: "DeleteTopics",
}


def connect(broker, timeout: float = 10.0) -> kw.Conn:
    return kw.Conn("127.0.0.1", broker.port, timeout=timeout)


def assert_healthy(broker) -> None:
    """The process runs, and a fresh connection gets good ApiVersions and Metadata answers."""
    assert broker.alive(), f"broker exited with code {broker.proc.returncode}"
    with connect(broker) as c:
        error, apis = c.api_versions(0)
        assert error == kw.ERR_NONE
        missing = [name for key, name in REQUIRED_APIS.items() if key not in apis]
        assert not missing, f"ApiVersions lacks {missing}"
        md = c.metadata(None)
        assert [(b["host"], b["port"]) for b in md["brokers"]] == [("127.0.0.1", broker.port)]
    assert broker.http_get("/healthz")[0] == 200


def read_until_closed(c: kw.Conn, timeout: float = 5.0) -> bytes | None:
    """Everything the broker sends before closing; None if it keeps the connection open."""
    data = bytearray()
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        c.sock.settimeout(max(0.01, deadline - time.monotonic()))
        try:
            chunk = c.sock.recv(65536)
        except (ConnectionResetError, BrokenPipeError):
            return bytes(data)
        except TimeoutError:
            return None
        if not chunk:
            return bytes(data)
        data += chunk
    return None


def send_quietly(c: kw.Conn, data: bytes) -> None:
    """Sends, ignoring a broker that already closed (it may stop reading at the first bad byte)."""
    try:
        c.send_raw(data)
    except (BrokenPipeError, ConnectionResetError):
        pass


def produce_version(broker) -> int:
    with connect(broker) as c:
        _, apis = c.api_versions(0)
    lo, hi = apis[kw.API_PRODUCE]
    assert hi >= 3, f"Produce versions {lo}-{hi}: need v3+ (record batches v2)"
    return min(hi, 8)  # v9+ are flexible; this helper speaks v3-v8


def create_topic(broker, name: str, partitions: int = 1) -> None:
    with connect(broker) as c:
        assert c.create_topic(name, partitions) == kw.ERR_NONE
        # Wait until the topic is served (Metadata shows a leader for every partition).
        deadline = time.monotonic() + 10
        while True:
            t = c.metadata([name])["topics"][0]
            if t["error"] == 0 and len(t["partitions"]) == partitions and all(p["leader"] >= 0 for p in t["partitions"]):
                return
            assert time.monotonic() < deadline, f"topic {name} not ready: {t}"
            time.sleep(0.1)


def latest_offset(broker, topic: str, partition: int = 0) -> int:
    with connect(broker) as c:
        res = c.list_offsets(topic, partition, -1)
    assert res["error"] == 0, res
    return res["offset"]


def batch(n: int = 3, value_size: int = 10) -> bytes:
    return kw.build_record_batch([kw.Record(f"k{i}".encode(), bytes([65 + i % 26]) * value_size,
                                            [("h", b"v")]) for i in range(n)])


# ---------------------------------------------------------------------------------------
# Framing


@pytest.mark.parametrize("seed", range(4))
def test_random_bytes(ephemeral_broker, seed):
    rnd = random.Random(seed)
    with connect(ephemeral_broker) as bystander:
        bystander.api_versions(0)
        # 1. A negative length prefix followed by noise: must be refused.
        with connect(ephemeral_broker) as c:
            send_quietly(c, bytes([0x80 | rnd.randrange(128)]) + rnd.randbytes(rnd.randrange(3, 65536)))
            assert read_until_closed(c) == b"", "a negative frame length must close the connection"
        # 2. Well-framed garbage and pure noise: whatever the broker answers, it must survive.
        for _ in range(5):
            with connect(ephemeral_broker) as c:
                body = rnd.randbytes(rnd.randrange(0, 2048))
                send_quietly(c, kw.i32(len(body)) + body)
                send_quietly(c, rnd.randbytes(rnd.randrange(1, 4096)))
                read_until_closed(c, timeout=0.5)
        # A connection that was open all along is unaffected.
        assert bystander.api_versions(0)[0] == kw.ERR_NONE
    assert_healthy(ephemeral_broker)


@pytest.mark.parametrize("length", [0x7FFFFFFF, 0x40000000, 0x10000000])
def test_huge_length_prefix_is_refused_without_allocating(ephemeral_broker, length):
    b = ephemeral_broker
    assert_healthy(b)
    peak_before = b.proc_status("VmPeak")
    with connect(b) as c:
        send_quietly(c, struct.pack(">i", length) + kw.request_header_v1(kw.API_PRODUCE, 7, 1, "x") + bytes(1000))
        data = read_until_closed(c)
        assert data is not None, f"the broker kept the connection open after a {length:#x}-byte frame header"
        assert data == b"", "no response expected"
    rss, peak = b.proc_status("VmRSS"), b.proc_status("VmPeak")
    assert rss < GIB // 4, f"VmRSS {rss} KiB after a {length:#x}-byte frame header"
    assert peak - peak_before < GIB // 2, f"VmPeak grew by {peak - peak_before} KiB: the frame buffer was allocated"
    assert_healthy(b)


def hostile_count_frames() -> list[bytes]:
    """Requests whose array counts claim far more elements than their bytes hold: the frames
    of the report that aborted the broker (Metadata v4 and v12, Produce v9, JoinGroup v5),
    each with several extreme counts, classic (i32) and compact (varint)."""
    def header(api: int, version: int, flexible: bool) -> bytes:
        return struct.pack(">hhih", api, version, 1, 4) + b"kcat" + (b"\x00" if flexible else b"")

    bodies = []
    for n in (0x7FFFFFFF, 0x7FFFFF00, 0x10000000, -2, -0x80000000):
        bodies.append(header(3, 4, False) + struct.pack(">i", n) + b"\x01")
        bodies.append(header(11, 5, False) + b"\x00\x01g" + struct.pack(">ii", 6000, 30000)
                      + b"\x00\x00\xff\xff\x00\x08consumer" + struct.pack(">i", n))
        bodies.append(header(1, 11, False) + struct.pack(">iiiibii", -1, 500, 1, 1 << 20, 0, 0, -1)
                      + struct.pack(">i", n))
    for n in (0xFFFFFFFF, 0x7FFFFFFF, 0x10000000):
        bodies.append(header(3, 12, True) + kw.uvarint(n) + b"\x01\x01\x00")
        bodies.append(header(0, 9, True) + b"\x00" + struct.pack(">hi", -1, 30000) + kw.uvarint(n))
        bodies.append(header(8, 8, True) + b"\x02g" + struct.pack(">i", -1) + b"\x01\x01" + kw.uvarint(n))
    return [kw.i32(len(b)) + b for b in bodies]


def test_hostile_counts_from_many_connections_leave_clients_unaffected(broker_factory):
    """Thousands of requests claiming billions of array elements, from many connections at
    once, at a broker limited to 4 GiB of address space while a real client produces and
    consumes: each is refused with a closed connection, the broker stays up and small, and
    the client sees no error and gets every record back."""
    b = broker_factory(ephemeral=True, memory_limit=4 << 30)
    topic = unique("hostile")
    create_topic_admin(b.bootstrap, topic, 3)
    frames = hostile_count_frames()
    sent, failures = [0], []
    lock = threading.Lock()
    client_done = threading.Event()

    def attack(seed: int) -> None:
        rnd = random.Random(seed)
        while not client_done.is_set() or sent[0] < 3000:
            try:
                with connect(b) as c:
                    send_quietly(c, rnd.choice(frames))
                    answer = read_until_closed(c)
                if answer != b"":
                    failures.append(f"answer {answer!r}" if answer else "connection left open")
            except OSError as e:
                failures.append(f"{type(e).__name__}: {e}")
            with lock:
                sent[0] += 1
            if failures or not b.alive():
                return

    attackers = [threading.Thread(target=attack, args=(i,)) for i in range(8)]
    for t in attackers:
        t.start()
    try:
        records = make_records(3000, seed=18)
        delivered = produce(b.bootstrap, topic, records, config={"partitioner": "murmur2_random"})
        consumed = consume(b.bootstrap, topic, partitions=3, expected=len(records))
    finally:
        client_done.set()
        for t in attackers:
            t.join(timeout=120)
    assert not failures, failures[:5]
    assert_same_records(delivered, consumed)
    assert sent[0] >= 3000
    assert_healthy(b)
    refused = b.metric("kafscale_refused_requests_total", 'reason="malformed"')
    assert refused >= sent[0], f"{refused} refusals counted for {sent[0]} hostile requests"
    peak = b.proc_status("VmHWM")
    assert peak < GIB // 2, f"peak RSS {peak} KiB"
    print(f"\n{sent[0]} hostile requests refused; peak RSS {peak // 1024} MiB")


@pytest.mark.parametrize("length", [0, 1, 7, -1])
def test_frame_too_short_for_a_header(ephemeral_broker, length):
    with connect(ephemeral_broker) as c:
        send_quietly(c, struct.pack(">i", length) + bytes(max(length, 0)))
        assert read_until_closed(c) == b""
    assert_healthy(ephemeral_broker)


@pytest.mark.parametrize("sent", [0, 2, 10, 99])
def test_truncated_frame_then_close(ephemeral_broker, sent):
    payload = (kw.request_header_v1(kw.API_METADATA, 1, 5, "trunc") + kw.metadata_v1_body(None)).ljust(100, b"\0")
    with connect(ephemeral_broker) as c:  # declares 100 bytes, sends `sent` of them, closes
        c.send_raw(struct.pack(">i", len(payload)) + payload[:sent])
    time.sleep(0.2)
    assert_healthy(ephemeral_broker)


def test_unknown_api_key_closes_connection(ephemeral_broker):
    with connect(ephemeral_broker) as c:
        c.send(999, 0, b"")
        assert read_until_closed(c) == b"", "unknown API key: close the connection, no response"
    assert_healthy(ephemeral_broker)


def test_unsupported_version_of_other_api_closes_connection(ephemeral_broker):
    with connect(ephemeral_broker) as c:
        c.send(kw.API_METADATA, 99, kw.metadata_v1_body(None))
        assert read_until_closed(c) == b""
    assert_healthy(ephemeral_broker)


@pytest.mark.parametrize("style", ["header-v1", "header-v2-flexible-body"])
def test_api_versions_unsupported_version(ephemeral_broker, style):
    with connect(ephemeral_broker) as c:
        if style == "header-v1":
            c.send(kw.API_API_VERSIONS, 99, b"", correlation_id=4242)
        else:  # what a newer client sends: header v2 (tagged fields) and a flexible body
            header = kw.request_header_v1(kw.API_API_VERSIONS, 99, 4242, "newer-client") + b"\x00"
            body = kw.uvarint(13) + b"kafscale-e2e" + kw.uvarint(4) + b"9.9" + b"\x00"
            c.send_raw(kw.frame(header + body))
        # Response header v0 (correlation id only) and the v0 body, so any client can read it.
        error, apis = kw.parse_api_versions_v0(c.recv_response(4242))
        assert error == kw.ERR_UNSUPPORTED_VERSION
        assert kw.API_API_VERSIONS in apis
        lo, hi = apis[kw.API_API_VERSIONS]
        assert lo == 0 and 3 <= hi < 99, f"ApiVersions range {lo}-{hi}"
        missing = [name for key, name in REQUIRED_APIS.items() if key not in apis]
        assert not missing, f"ApiVersions lacks {missing}"
        # Clients retry on the same connection with a version in the range.
        error, _ = c.api_versions(0)
        assert error == kw.ERR_NONE
    assert_healthy(ephemeral_broker)


def test_pipelined_requests_are_answered_in_order(ephemeral_broker):
    with connect(ephemeral_broker) as c:
        ids = [c.send(kw.API_API_VERSIONS, 0, b""), c.send(kw.API_METADATA, 1, kw.metadata_v1_body(None)),
               c.send(kw.API_API_VERSIONS, 0, b"")]
        kw.parse_api_versions_v0(c.recv_response(ids[0]))
        kw.parse_metadata_v1(c.recv_response(ids[1]))
        kw.parse_api_versions_v0(c.recv_response(ids[2]))


# ---------------------------------------------------------------------------------------
# Produce validation


def test_valid_hand_built_batch_is_accepted(ephemeral_broker):
    """Baseline for the cases below: the hand-built batch is good."""
    v = produce_version(ephemeral_broker)
    create_topic(ephemeral_broker, "good")
    with connect(ephemeral_broker) as c:
        first = c.produce("good", 0, batch(3), version=v)
        second = c.produce("good", 0, batch(2), version=v)
    assert (first["error"], first["base_offset"]) == (0, 0), first
    assert (second["error"], second["base_offset"]) == (0, 3), second
    assert latest_offset(ephemeral_broker, "good") == 5


def test_produce_with_bad_crc_is_corrupt_message(ephemeral_broker):
    v = produce_version(ephemeral_broker)
    create_topic(ephemeral_broker, "crc")
    with connect(ephemeral_broker) as c:
        assert c.produce("crc", 0, batch(3), version=v)["error"] == 0
        bad = c.produce("crc", 0, kw.corrupt_crc(batch(4)), version=v)
        assert bad["error"] == kw.ERR_CORRUPT_MESSAGE, bad
        # The connection stays usable, and nothing of the bad batch was stored.
        after = c.produce("crc", 0, batch(1), version=v)
        assert (after["error"], after["base_offset"]) == (0, 3), after
    assert latest_offset(ephemeral_broker, "crc") == 4
    assert_healthy(ephemeral_broker)


@pytest.mark.parametrize("how", ["wrong-length-field", "truncated-records", "magic-1"])
def test_produce_with_malformed_batch_is_rejected(ephemeral_broker, how):
    v = produce_version(ephemeral_broker)
    create_topic(ephemeral_broker, "malformed")
    good = batch(3)
    if how == "wrong-length-field":
        bad = good[:8] + kw.i32(len(good) - 12 + 50) + good[12:]
    elif how == "truncated-records":
        bad = good[:-5]
    else:
        bad = kw.build_record_batch([kw.Record(b"k", b"v")], magic=1)
    with connect(ephemeral_broker) as c:
        res = c.produce("malformed", 0, bad, version=v)
        assert res["error"] in (kw.ERR_CORRUPT_MESSAGE, kw.ERR_INVALID_RECORD), res
    assert latest_offset(ephemeral_broker, "malformed") == 0
    assert_healthy(ephemeral_broker)


def test_produce_invalid_acks(ephemeral_broker):
    v = produce_version(ephemeral_broker)
    create_topic(ephemeral_broker, "acks")
    with connect(ephemeral_broker) as c:
        res = c.produce("acks", 0, batch(2), acks=5, version=v)
        assert res["error"] == kw.ERR_INVALID_REQUIRED_ACKS, res
    assert latest_offset(ephemeral_broker, "acks") == 0
    assert_healthy(ephemeral_broker)


def test_acks_0_gets_no_response_and_bad_acks_0_closes(ephemeral_broker):
    v = produce_version(ephemeral_broker)
    create_topic(ephemeral_broker, "fire")
    with connect(ephemeral_broker) as c:
        c.send(kw.API_PRODUCE, v, kw.produce_body("fire", 0, batch(2), acks=0))
        corr = c.send(kw.API_API_VERSIONS, 0, b"")
        # The next frame answers the ApiVersions request: acks=0 produces get no response.
        kw.parse_api_versions_v0(c.recv_response(corr))
    deadline = time.monotonic() + 10
    while latest_offset(ephemeral_broker, "fire") != 2:
        assert time.monotonic() < deadline, "acks=0 batch not stored"
        time.sleep(0.1)
    with connect(ephemeral_broker) as c:
        c.send(kw.API_PRODUCE, v, kw.produce_body("fire", 0, kw.corrupt_crc(batch(2)), acks=0))
        assert read_until_closed(c) == b"", "a failed acks=0 produce closes the connection"
    assert latest_offset(ephemeral_broker, "fire") == 2
    assert_healthy(ephemeral_broker)


def test_produce_to_unknown_partition(ephemeral_broker):
    v = produce_version(ephemeral_broker)
    create_topic(ephemeral_broker, "one", 1)
    with connect(ephemeral_broker) as c:
        res = c.produce("one", 7, batch(1), version=v)
        assert res["error"] == kw.ERR_UNKNOWN_TOPIC_OR_PARTITION, res
    assert_healthy(ephemeral_broker)


MAX_BYTES = 10000


@pytest.mark.parametrize("via", ["config-file", "env"])
def test_batch_over_message_max_bytes(broker_factory, via):
    if via == "config-file":
        b = broker_factory(ephemeral=True, config=f'"message.max.bytes" = {MAX_BYTES}\n')
    else:
        b = broker_factory(ephemeral=True, env={"KAFSCALE_MESSAGE_MAX_BYTES": str(MAX_BYTES)})
    v = produce_version(b)
    create_topic(b, "limit")
    with connect(b) as c:
        small = c.produce("limit", 0, batch(1, value_size=1000), version=v)
        assert small["error"] == 0, small
        one_big = c.produce("limit", 0, batch(1, value_size=2 * MAX_BYTES), version=v)
        assert one_big["error"] == kw.ERR_MESSAGE_TOO_LARGE, one_big
        many_small = batch(20, value_size=1000)  # the limit applies to the whole batch
        assert len(many_small) > MAX_BYTES
        res = c.produce("limit", 0, many_small, version=v)
        assert res["error"] == kw.ERR_MESSAGE_TOO_LARGE, res
    assert latest_offset(b, "limit") == 1
    assert_healthy(b)
