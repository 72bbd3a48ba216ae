"""Checks of the hand-written wire helpers themselves (no broker needed)."""

import struct

import pytest

import kafka_wire as kw


@pytest.mark.parametrize(
    "data, crc",
    [
        (b"", 0x00000000),
        (b"123456789", 0xE3069283),
        (b"a", 0xC1D04330),
        # RFC 3720 (iSCSI) B.4 test vectors
        (bytes(32), 0x8A9136AA),
        (b"\xff" * 32, 0x62A8AB43),
        (bytes(range(32)), 0x46DD794E),
        (bytes(range(31, -1, -1)), 0x113FDB5C),
    ],
)
def test_crc32c_known_vectors(data, crc):
    assert kw.crc32c(data) == crc


def test_crc32c_is_incremental():
    data = b"The quick brown fox jumps over the lazy dog"
    assert kw.crc32c(data[10:], kw.crc32c(data[:10])) == kw.crc32c(data)


@pytest.mark.parametrize(
    "value, encoded",
    [(0, b"\x00"), (-1, b"\x01"), (1, b"\x02"), (-2, b"\x03"), (63, b"\x7e"), (-64, b"\x7f"),
     (64, b"\x80\x01"), (300, b"\xd8\x04"), (2**31 - 1, b"\xfe\xff\xff\xff\x0f"),
     (-(2**31), b"\xff\xff\xff\xff\x0f")],
)
def test_zigzag_varint(value, encoded):
    assert kw.varint(value) == encoded
    assert kw.Reader(encoded).varint() == value


def test_record_batch_round_trip():
    records = [
        kw.Record(b"k1", b"v1", [("h", b"x"), ("empty", b""), ("null", None)], timestamp_delta=0),
        kw.Record(None, b"no key", [], timestamp_delta=5),
        kw.Record(b"tomb", None, [], timestamp_delta=7),
        kw.Record(b"", b"", [], timestamp_delta=3),
        kw.Record(b"big", bytes(range(256)) * 40, [], timestamp_delta=1),
    ]
    data = kw.build_record_batch(records, base_offset=42, base_timestamp=1_700_000_000_000)
    b = kw.decode_record_batch(data)
    assert b["crc_ok"]
    assert b["base_offset"] == 42
    assert b["magic"] == 2
    assert b["count"] == 5
    assert b["last_offset_delta"] == 4
    assert b["base_timestamp"] == 1_700_000_000_000
    assert b["max_timestamp"] == 1_700_000_000_007
    assert b["producer_id"] == -1 and b["producer_epoch"] == -1 and b["base_sequence"] == -1
    for want, got, i in zip(records, b["records"], range(5)):
        assert (got.key, got.value, got.headers, got.timestamp_delta, got.offset_delta) == (
            want.key, want.value, want.headers, want.timestamp_delta, i)


def test_record_batch_layout():
    data = kw.build_record_batch([kw.Record(b"k", b"v")], base_timestamp=0)
    # baseOffset(8) batchLength(4) epoch(4) magic(1) crc(4) | attributes...
    assert struct.unpack(">i", data[8:12])[0] == len(data) - 12
    assert data[16] == 2
    assert struct.unpack(">I", data[17:21])[0] == kw.crc32c(data[kw.CRC_START:])
    # Record: length 8 (zigzag 0x10), attributes 0, ts delta 0, offset delta 0,
    # key len 1 (0x02) 'k', value len 1 (0x02) 'v', 0 headers
    assert data[kw.BATCH_HEADER_LEN:] == b"\x10\x00\x00\x00\x02k\x02v\x00"


def test_corrupt_crc_keeps_framing_but_breaks_crc():
    data = kw.build_record_batch([kw.Record(b"k", b"value")])
    bad = kw.corrupt_crc(data)
    assert len(bad) == len(data)
    assert kw.decode_record_batch(data)["crc_ok"]
    assert not kw.decode_record_batch(bad)["crc_ok"]


def test_request_encoding():
    hdr = kw.request_header_v1(18, 0, 7, "c")
    assert hdr == b"\x00\x12\x00\x00\x00\x00\x00\x07\x00\x01c"
    assert kw.frame(hdr) == b"\x00\x00\x00\x0b" + hdr
    assert kw.request_header_v1(3, 1, 1, None)[-2:] == b"\xff\xff"
    body = kw.produce_body("t", 0, b"xyz", acks=1, timeout_ms=1000)
    assert body == (b"\xff\xff" + b"\x00\x01" + b"\x00\x00\x03\xe8" + b"\x00\x00\x00\x01" + b"\x00\x01t"
                    + b"\x00\x00\x00\x01" + b"\x00\x00\x00\x00" + b"\x00\x00\x00\x03xyz")


def test_response_parsing():
    body = kw.i16(35) + kw.i32(2) + kw.i16(18) + kw.i16(0) + kw.i16(3) + kw.i16(0) + kw.i16(3) + kw.i16(9)
    assert kw.parse_api_versions_v0(body) == (35, {18: (0, 3), 0: (3, 9)})
    part = kw.i32(0) + kw.i16(2) + kw.i64(-1) + kw.i64(-1) + kw.i64(0)
    resp = kw.i32(1) + kw.string("t") + kw.i32(1) + part + kw.i32(0)
    assert kw.parse_produce_response(resp, 7)[("t", 0)]["error"] == 2
    with pytest.raises(ValueError):
        kw.parse_produce_response(resp, 4)  # v4 has no log_start_offset: trailing bytes


def test_create_topics_encoding():
    v0 = kw.create_topics_body("t", 3, 0, timeout_ms=5)
    assert v0 == (kw.i32(1) + kw.string("t") + kw.i32(3) + kw.i16(1) + kw.i32(0) + kw.i32(0) + kw.i32(5))
    assert kw.create_topics_body("t", 3, 2, timeout_ms=5) == v0 + b"\x00"  # validate_only
    resp_v2 = kw.i32(0) + kw.i32(1) + kw.string("t") + kw.i16(36) + kw.nullable_string("exists")
    assert kw.parse_create_topics(resp_v2, 2) == {"t": 36}
    assert kw.parse_create_topics(kw.i32(1) + kw.string("t") + kw.i16(0), 0) == {"t": 0}
