"""Hand-written Kafka wire encoding for the raw-socket tests.

Deliberately independent of any Kafka library, so that the tests can send exactly the
bytes they mean (including wrong ones). Only the non-flexible request versions are
covered: request header v1, ApiVersions v0, Metadata v1, CreateTopics v0-v4, Produce v3-v8,
ListOffsets v1, and the v2 record batch (magic 2).
"""

from __future__ import annotations

import socket
import struct
import time
from dataclasses import dataclass, field

# ---------------------------------------------------------------------------------------
# CRC-32C (Castagnoli), reflected polynomial 0x82F63B78, as used by record batches v2.


def _crc32c_table() -> list[int]:
    table = []
    for n in range(256):
        c = n
        for _ in range(8):
            c = (c >> 1) ^ 0x82F63B78 if c & 1 else c >> 1
        table.append(c)
    return table


_CRC32C_TABLE = _crc32c_table()


def crc32c(data: bytes, crc: int = 0) -> int:
    crc ^= 0xFFFFFFFF
    table = _CRC32C_TABLE
    for b in data:
        crc = table[(crc ^ b) & 0xFF] ^ (crc >> 8)
    return crc ^ 0xFFFFFFFF


# ---------------------------------------------------------------------------------------
# Primitive encoders


def i8(v: int) -> bytes:
    return struct.pack(">b", v)


def i16(v: int) -> bytes:
    return struct.pack(">h", v)


def i32(v: int) -> bytes:
    return struct.pack(">i", v)


def u32(v: int) -> bytes:
    return struct.pack(">I", v)


def i64(v: int) -> bytes:
    return struct.pack(">q", v)


def string(s: str) -> bytes:
    b = s.encode()
    return i16(len(b)) + b


def nullable_string(s: str | None) -> bytes:
    return i16(-1) if s is None else string(s)


def nullable_bytes(b: bytes | None) -> bytes:
    return i32(-1) if b is None else i32(len(b)) + b


def array(items, encode) -> bytes:
    return i32(len(items)) + b"".join(encode(x) for x in items)


def uvarint(v: int) -> bytes:
    assert v >= 0
    out = bytearray()
    while True:
        byte = v & 0x7F
        v >>= 7
        if v:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def varint(v: int) -> bytes:
    """Zigzag varint (32 and 64 bit alike, as long as v fits)."""
    return uvarint((v << 1) ^ (v >> 63))


# ---------------------------------------------------------------------------------------
# Decoder


class Truncated(Exception):
    pass


class Reader:
    def __init__(self, data: bytes):
        self.data = data
        self.pos = 0

    def take(self, n: int) -> bytes:
        if n < 0 or self.pos + n > len(self.data):
            raise Truncated(f"need {n} bytes at {self.pos}, have {len(self.data) - self.pos}")
        b = self.data[self.pos : self.pos + n]
        self.pos += n
        return b

    def _unpack(self, fmt: str, n: int) -> int:
        return struct.unpack(fmt, self.take(n))[0]

    def i8(self) -> int:
        return self._unpack(">b", 1)

    def i16(self) -> int:
        return self._unpack(">h", 2)

    def i32(self) -> int:
        return self._unpack(">i", 4)

    def u32(self) -> int:
        return self._unpack(">I", 4)

    def i64(self) -> int:
        return self._unpack(">q", 8)

    def boolean(self) -> bool:
        return self.i8() != 0

    def nullable_string(self) -> str | None:
        n = self.i16()
        return None if n < 0 else self.take(n).decode()

    def string(self) -> str:
        s = self.nullable_string()
        if s is None:
            raise ValueError("null where a string is required")
        return s

    def nullable_bytes(self) -> bytes | None:
        n = self.i32()
        return None if n < 0 else self.take(n)

    def array(self, decode) -> list | None:
        n = self.i32()
        return None if n < 0 else [decode(self) for _ in range(n)]

    def uvarint(self) -> int:
        shift = result = 0
        while True:
            b = self.take(1)[0]
            result |= (b & 0x7F) << shift
            if not b & 0x80:
                return result
            shift += 7
            if shift > 63:
                raise ValueError("varint too long")

    def varint(self) -> int:
        u = self.uvarint()
        return (u >> 1) ^ -(u & 1)

    def remaining(self) -> int:
        return len(self.data) - self.pos

    def expect_end(self) -> None:
        if self.remaining():
            raise ValueError(f"{self.remaining()} trailing bytes")


# ---------------------------------------------------------------------------------------
# Record batch v2


@dataclass
class Record:
    key: bytes | None
    value: bytes | None
    headers: list[tuple[str, bytes | None]] = field(default_factory=list)
    timestamp_delta: int = 0
    offset_delta: int | None = None  # None: the record's index in the batch


BATCH_HEADER_LEN = 61  # baseOffset .. records count
CRC_START = 21  # the CRC covers attributes (byte 21) to the end of the batch


def encode_record(rec: Record, offset_delta: int) -> bytes:
    body = bytearray()
    body += i8(0)  # attributes (unused)
    body += varint(rec.timestamp_delta)
    body += varint(offset_delta)
    for part in (rec.key, rec.value):
        body += varint(-1) if part is None else varint(len(part)) + part
    body += varint(len(rec.headers))
    for hk, hv in rec.headers:
        kb = hk.encode()
        body += varint(len(kb)) + kb
        body += varint(-1) if hv is None else varint(len(hv)) + hv
    return varint(len(body)) + bytes(body)


def build_record_batch(
    records: list[Record],
    *,
    base_offset: int = 0,
    base_timestamp: int | None = None,
    attributes: int = 0,
    producer_id: int = -1,
    producer_epoch: int = -1,
    base_sequence: int = -1,
    partition_leader_epoch: int = -1,
    magic: int = 2,
    crc: int | None = None,
) -> bytes:
    """An uncompressed v2 record batch; `crc` overrides the computed CRC (for tests)."""
    if base_timestamp is None:
        base_timestamp = int(time.time() * 1000)
    encoded = b"".join(
        encode_record(r, i if r.offset_delta is None else r.offset_delta)
        for i, r in enumerate(records)
    )
    last_offset_delta = max(
        (i if r.offset_delta is None else r.offset_delta for i, r in enumerate(records)),
        default=0,
    )
    max_ts = base_timestamp + max((r.timestamp_delta for r in records), default=0)
    after_crc = (
        i16(attributes)
        + i32(last_offset_delta)
        + i64(base_timestamp)
        + i64(max_ts)
        + i64(producer_id)
        + i16(producer_epoch)
        + i32(base_sequence)
        + i32(len(records))
        + encoded
    )
    if crc is None:
        crc = crc32c(after_crc)
    after_length = i32(partition_leader_epoch) + i8(magic) + u32(crc) + after_crc
    return i64(base_offset) + i32(len(after_length)) + after_length


def decode_record_batch(data: bytes) -> dict:
    """Decodes one uncompressed v2 batch (and checks its framing, not its CRC)."""
    r = Reader(data)
    batch = {
        "base_offset": r.i64(),
        "batch_length": r.i32(),
        "partition_leader_epoch": r.i32(),
        "magic": r.i8(),
        "crc": r.u32(),
    }
    if batch["batch_length"] != len(data) - 12:
        raise ValueError(f"batch_length {batch['batch_length']} != {len(data) - 12}")
    batch["crc_ok"] = crc32c(data[CRC_START:]) == batch["crc"]
    for name, read in (
        ("attributes", r.i16),
        ("last_offset_delta", r.i32),
        ("base_timestamp", r.i64),
        ("max_timestamp", r.i64),
        ("producer_id", r.i64),
        ("producer_epoch", r.i16),
        ("base_sequence", r.i32),
        ("count", r.i32),
    ):
        batch[name] = read()
    if batch["attributes"] & 0x7:
        raise ValueError("compressed batches are not decoded here")
    records = []
    for _ in range(batch["count"]):
        length = r.varint()
        rr = Reader(r.take(length))
        rr.i8()
        ts_delta = rr.varint()
        off_delta = rr.varint()
        key_len = rr.varint()
        key = None if key_len < 0 else rr.take(key_len)
        val_len = rr.varint()
        value = None if val_len < 0 else rr.take(val_len)
        headers = []
        for _ in range(rr.varint()):
            hk = rr.take(rr.varint()).decode()
            hl = rr.varint()
            headers.append((hk, None if hl < 0 else rr.take(hl)))
        rr.expect_end()
        records.append(Record(key, value, headers, ts_delta, off_delta))
    r.expect_end()
    batch["records"] = records
    return batch


def corrupt_crc(batch: bytes) -> bytes:
    """Flips one bit in the last byte (inside the CRC-covered part), keeping the framing."""
    return batch[:-1] + bytes([batch[-1] ^ 0x01])


# ---------------------------------------------------------------------------------------
# Requests and responses

API_PRODUCE = 0
API_FETCH = 1
API_LIST_OFFSETS = 2
API_METADATA = 3
API_API_VERSIONS = 18
API_CREATE_TOPICS = 19
API_DELETE_TOPICS = 20

ERR_NONE = 0
ERR_CORRUPT_MESSAGE = 2
ERR_UNKNOWN_TOPIC_OR_PARTITION = 3
ERR_MESSAGE_TOO_LARGE = 10
ERR_INVALID_REQUIRED_ACKS = 21
ERR_UNSUPPORTED_VERSION = 35
ERR_TOPIC_ALREADY_EXISTS = 36
ERR_INVALID_RECORD = 87


def request_header_v1(api_key: int, api_version: int, correlation_id: int, client_id: str | None) -> bytes:
    return i16(api_key) + i16(api_version) + i32(correlation_id) + nullable_string(client_id)


def frame(payload: bytes) -> bytes:
    return i32(len(payload)) + payload


def api_versions_v0_body() -> bytes:
    return b""


def parse_api_versions_v0(body: bytes) -> tuple[int, dict[int, tuple[int, int]]]:
    """ApiVersions v0 body: int16 error, array of (int16 key, int16 min, int16 max)."""
    r = Reader(body)
    error = r.i16()
    keys = r.array(lambda r: (r.i16(), r.i16(), r.i16())) or []
    r.expect_end()
    return error, {k: (lo, hi) for k, lo, hi in keys}


def metadata_v1_body(topics: list[str] | None = None) -> bytes:
    return i32(-1) if topics is None else array(topics, string)


def parse_metadata_v1(body: bytes) -> dict:
    r = Reader(body)
    brokers = r.array(lambda r: {"node_id": r.i32(), "host": r.string(), "port": r.i32(), "rack": r.nullable_string()})
    controller_id = r.i32()

    def partition(r):
        return {
            "error": r.i16(),
            "index": r.i32(),
            "leader": r.i32(),
            "replicas": r.array(Reader.i32),
            "isr": r.array(Reader.i32),
        }

    topics = r.array(
        lambda r: {"error": r.i16(), "name": r.string(), "internal": r.boolean(), "partitions": r.array(partition)}
    )
    r.expect_end()
    return {"brokers": brokers, "controller_id": controller_id, "topics": topics}


def create_topics_body(name: str, partitions: int, version: int, replication: int = 1,
                       timeout_ms: int = 10000) -> bytes:
    """CreateTopics v0-v4 (non-flexible) request body for one topic."""
    assert 0 <= version <= 4
    topic = string(name) + i32(partitions) + i16(replication) + i32(0) + i32(0)  # no assignments, configs
    body = i32(1) + topic + i32(timeout_ms)
    if version >= 1:
        body += i8(0)  # validate_only
    return body


def parse_create_topics(body: bytes, version: int) -> dict[str, int]:
    r = Reader(body)
    if version >= 2:
        r.i32()  # throttle_time_ms

    def topic(r):
        name, error = r.string(), r.i16()
        if version >= 1:
            r.nullable_string()  # error_message
        return name, error

    res = r.array(topic) or []
    r.expect_end()
    return dict(res)


def produce_body(
    topic: str, partition: int, records: bytes | None, *, acks: int = -1, timeout_ms: int = 10000,
    transactional_id: str | None = None,
) -> bytes:
    """Produce v3-v8 (non-flexible) request body for one partition."""
    part = i32(partition) + nullable_bytes(records)
    return nullable_string(transactional_id) + i16(acks) + i32(timeout_ms) + i32(1) + string(topic) + i32(1) + part


def parse_produce_response(body: bytes, version: int) -> dict[tuple[str, int], dict]:
    """Produce response v0-v8 -> {(topic, partition): fields}."""
    r = Reader(body)
    out = {}
    for _ in range(r.i32()):
        name = r.string()
        for _ in range(r.i32()):
            p = {"index": r.i32(), "error": r.i16(), "base_offset": r.i64()}
            if version >= 2:
                p["log_append_time"] = r.i64()
            if version >= 5:
                p["log_start_offset"] = r.i64()
            if version >= 8:
                p["record_errors"] = r.array(lambda r: (r.i32(), r.nullable_string()))
                p["error_message"] = r.nullable_string()
            out[(name, p["index"])] = p
    if version >= 1:
        r.i32()  # throttle_time_ms
    r.expect_end()
    return out


def list_offsets_v1_body(topic: str, partition: int, timestamp: int) -> bytes:
    return i32(-1) + i32(1) + string(topic) + i32(1) + i32(partition) + i64(timestamp)


def parse_list_offsets_v1(body: bytes) -> dict[tuple[str, int], dict]:
    r = Reader(body)
    out = {}
    for _ in range(r.i32()):
        name = r.string()
        for _ in range(r.i32()):
            p = {"index": r.i32(), "error": r.i16(), "timestamp": r.i64(), "offset": r.i64()}
            out[(name, p["index"])] = p
    r.expect_end()
    return out


# ---------------------------------------------------------------------------------------
# A blocking client connection


class Closed(Exception):
    """The broker closed the connection (EOF or reset)."""


class Conn:
    def __init__(self, host: str, port: int, timeout: float = 10.0, client_id: str | None = "kafscale-e2e"):
        self.sock = socket.create_connection((host, port), timeout=timeout)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.timeout = timeout
        self.client_id = client_id
        self.next_correlation = 1
        self._apis: dict[int, tuple[int, int]] | None = None

    def close(self) -> None:
        self.sock.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def send_raw(self, data: bytes) -> None:
        self.sock.sendall(data)

    def send(self, api_key: int, api_version: int, body: bytes, correlation_id: int | None = None) -> int:
        if correlation_id is None:
            correlation_id = self.next_correlation
            self.next_correlation += 1
        self.send_raw(frame(request_header_v1(api_key, api_version, correlation_id, self.client_id) + body))
        return correlation_id

    def _recv_exact(self, n: int, deadline: float) -> bytes:
        buf = bytearray()
        while len(buf) < n:
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError(f"timed out with {len(buf)}/{n} bytes")
            self.sock.settimeout(left)
            try:
                chunk = self.sock.recv(n - len(buf))
            except (ConnectionResetError, BrokenPipeError) as e:
                raise Closed(str(e)) from e
            except socket.timeout as e:
                raise TimeoutError(f"timed out with {len(buf)}/{n} bytes") from e
            if not chunk:
                raise Closed(f"EOF after {len(buf)}/{n} bytes")
            buf += chunk
        return bytes(buf)

    def recv_frame(self, timeout: float | None = None) -> bytes:
        deadline = time.monotonic() + (self.timeout if timeout is None else timeout)
        (size,) = struct.unpack(">i", self._recv_exact(4, deadline))
        if size < 4 or size > 512 * 1024 * 1024:
            raise ValueError(f"implausible response size {size}")
        return self._recv_exact(size, deadline)

    def recv_response(self, expected_correlation: int, timeout: float | None = None) -> bytes:
        """Reads one response with header v0 (non-flexible) and returns its body."""
        data = self.recv_frame(timeout)
        (corr,) = struct.unpack(">i", data[:4])
        if corr != expected_correlation:
            raise AssertionError(f"correlation id {corr}, expected {expected_correlation}")
        return data[4:]

    def request(self, api_key: int, api_version: int, body: bytes, timeout: float | None = None) -> bytes:
        return self.recv_response(self.send(api_key, api_version, body), timeout)

    def wait_closed(self, timeout: float = 5.0) -> bool:
        """True if the broker closes the connection within `timeout` (any data is discarded)."""
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                return False
            self.sock.settimeout(left)
            try:
                if not self.sock.recv(65536):
                    return True
            except (ConnectionResetError, BrokenPipeError):
                return True
            except socket.timeout:
                return False

    # Convenience calls ---------------------------------------------------------------

    def api_versions(self, version: int = 0) -> tuple[int, dict[int, tuple[int, int]]]:
        return parse_api_versions_v0(self.request(API_API_VERSIONS, version, api_versions_v0_body()))

    def metadata(self, topics: list[str] | None = None) -> dict:
        return parse_metadata_v1(self.request(API_METADATA, 1, metadata_v1_body(topics)))

    def pick_version(self, api_key: int, lo: int, hi: int) -> int:
        """The highest version in both [lo, hi] (what this helper speaks) and the broker's range."""
        if self._apis is None:
            error, self._apis = self.api_versions(0)
            assert error == ERR_NONE
        assert api_key in self._apis, f"the broker does not advertise API {api_key}"
        b_lo, b_hi = self._apis[api_key]
        v = min(hi, b_hi)
        assert v >= max(lo, b_lo), f"API {api_key}: broker advertises v{b_lo}-{b_hi}, helper speaks v{lo}-{hi}"
        return v

    def create_topic(self, name: str, partitions: int = 1) -> int:
        v = self.pick_version(API_CREATE_TOPICS, 0, 4)
        return parse_create_topics(self.request(API_CREATE_TOPICS, v, create_topics_body(name, partitions, v)), v)[name]

    def produce(self, topic: str, partition: int, records: bytes | None, *, acks: int = -1,
                version: int | None = None) -> dict:
        if version is None:
            version = self.pick_version(API_PRODUCE, 3, 8)
        body = produce_body(topic, partition, records, acks=acks)
        return parse_produce_response(self.request(API_PRODUCE, version, body), version)[(topic, partition)]

    def list_offsets(self, topic: str, partition: int, timestamp: int) -> dict:
        body = list_offsets_v1_body(topic, partition, timestamp)
        return parse_list_offsets_v1(self.request(API_LIST_OFFSETS, 1, body))[(topic, partition)]
