"""The broker in production mode: metadata in a real etcd (started by scripts/test.sh),
records in the S3 server."""

from __future__ import annotations

import os

import pytest

from clients import assert_same_records, consume, create_topic, make_records, produce, unique

ETCD_URL = os.environ.get("KAFSCALE_TEST_ETCD_URL")
S3_URL = os.environ.get("KAFSCALE_TEST_S3_URL")
REQUIRED = os.environ.get("KAFSCALE_TEST_REQUIRE_ETCD") == "1"

pytestmark = pytest.mark.skipif(
    not (ETCD_URL and S3_URL) and not REQUIRED,
    reason="no etcd / S3 server; ./scripts/test.sh starts both",
)


def test_produce_consume_restart_on_etcd_and_s3(broker_factory):
    assert ETCD_URL and S3_URL, "KAFSCALE_TEST_ETCD_URL and KAFSCALE_TEST_S3_URL must be set"
    # A fresh etcd namespace is not available yet (no key prefix option), so topics get
    # unique names and the broker a unique object prefix.
    args = ["--metadata", ETCD_URL, "--object-store", f"{S3_URL}/{unique('etcd')}"]
    b = broker_factory(ephemeral=False, args=args)
    topic = unique("etcd")
    create_topic(b.bootstrap, topic, 2)
    delivered = produce(b.bootstrap, topic, make_records(1000, seed=21), codec="zstd")
    assert_same_records(delivered, consume(b.bootstrap, topic, partitions=2, expected=1000))
    b.restart()
    assert_same_records(delivered, consume(b.bootstrap, topic, partitions=2, expected=1000))
    ends = {}
    for r in delivered:
        ends[r.partition] = max(ends.get(r.partition, -1), r.offset)
    more = produce(b.bootstrap, topic, make_records(10, seed=22))
    assert all(r.offset is not None and r.offset > ends.get(r.partition, -1) for r in more)
