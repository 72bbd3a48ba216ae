"""Malformed input against the real broker process, where what the process does matters:
its memory, its address-space limit, and a real client's view next to the attack. The
request-level cases (framing, versions, bad batches, acks, message.max.bytes) are Rust tests
against an in-process broker: app/tests/bad_input.rs and app/tests/bad_produce.rs. The
frames here are fixed bytes; no Kafka codec is needed to send them."""

from __future__ import annotations

import random
import socket
import struct
import threading
import time

import pytest

from clients import admin, assert_same_records, consume, create_topic, make_records, produce, unique
from harness import requires_broker

pytestmark = requires_broker

GIB = 1024 * 1024  # in KiB, as /proc/<pid>/status reports


def connect(broker, timeout: float = 10.0) -> socket.socket:
    return socket.create_connection(("127.0.0.1", broker.port), timeout=timeout)


def assert_healthy(broker) -> None:
    """The process runs, a real client (ApiVersions, Metadata) finds it as the only broker,
    and /healthz answers 200."""
    assert broker.alive(), f"broker exited with code {broker.proc.returncode}"
    md = admin(broker.bootstrap).list_topics(timeout=10)
    assert [(b.host, b.port) for b in md.brokers.values()] == [("127.0.0.1", broker.port)]
    assert broker.http_get("/healthz")[0] == 200


def read_until_closed(sock: socket.socket, timeout: float = 5.0) -> bytes | None:
    """Everything the broker sends before closing; None if it keeps the connection open."""
    data = bytearray()
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        sock.settimeout(max(0.01, deadline - time.monotonic()))
        try:
            chunk = sock.recv(65536)
        except (ConnectionResetError, BrokenPipeError):
            return bytes(data)
        except TimeoutError:
            return None
        if not chunk:
            return bytes(data)
        data += chunk
    return None


def send_quietly(sock: socket.socket, data: bytes) -> None:
    """Sends, ignoring a broker that already closed (it may stop reading at the first bad byte)."""
    try:
        sock.sendall(data)
    except (BrokenPipeError, ConnectionResetError):
        pass


def uvarint(v: int) -> bytes:
    """An unsigned varint, as compact array lengths are written."""
    out = bytearray()
    while v > 0x7F:
        out.append(v & 0x7F | 0x80)
        v >>= 7
    return bytes(out + bytes([v]))


@pytest.mark.parametrize("length", [0x7FFFFFFF, 0x40000000, 0x10000000])
def test_huge_length_prefix_is_refused_without_allocating(ephemeral_broker, length):
    b = ephemeral_broker
    assert_healthy(b)
    peak_before = b.proc_status("VmPeak")
    produce_v7_header = struct.pack(">hhih", 0, 7, 1, 1) + b"x"
    with connect(b) as c:
        send_quietly(c, struct.pack(">i", length) + produce_v7_header + bytes(1000))
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
        bodies.append(header(3, 12, True) + uvarint(n) + b"\x01\x01\x00")
        bodies.append(header(0, 9, True) + b"\x00" + struct.pack(">hi", -1, 30000) + uvarint(n))
        bodies.append(header(8, 8, True) + b"\x02g" + struct.pack(">i", -1) + b"\x01\x01" + uvarint(n))
    return [struct.pack(">i", len(b)) + b for b in bodies]


def test_hostile_counts_from_many_connections_leave_clients_unaffected(broker_factory):
    """Thousands of requests claiming billions of array elements, from many connections at
    once, at a broker limited to 4 GiB of address space while a real client produces and
    consumes: each is refused with a closed connection, the broker stays up and small, and
    the client sees no error and gets every record back."""
    b = broker_factory(ephemeral=True, memory_limit=4 << 30)
    topic = unique("hostile")
    create_topic(b.bootstrap, topic, 3)
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
