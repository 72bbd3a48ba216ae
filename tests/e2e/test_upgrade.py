"""A rolling upgrade under load, on real etcd and SeaweedFS: two brokers of the previous
version are replaced one at a time by this version while an idempotent producer writes, and
on the way a broker of the previous version takes over, after a kill -9, partitions that this
version wrote (its flush objects and checkpoint sections). Nothing acknowledged is lost and the
history checker passes (docs/operations.md, "Upgrades").

Opt-in: it needs a broker binary of the previous version, which CI does not build.

    git worktree add /tmp/prev 938dddc && (cd /tmp/prev && cargo build -p kafscale)
    KAFSCALE_PREVIOUS_BIN=/tmp/prev/target/debug/kafscale ./scripts/test.sh -k test_upgrade -s
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from clients import Load, read_all, unique
from harness import BIN
from test_cluster import CLUSTER_CONFIG, ETCD_URL, cluster_args, create, spread_ok, wait_for
from test_cluster import pytestmark as cluster_marks

PREVIOUS = os.environ.get("KAFSCALE_PREVIOUS_BIN")
pytestmark = [cluster_marks, pytest.mark.skipif(not PREVIOUS, reason="KAFSCALE_PREVIOUS_BIN not set")]

PARTITIONS = 4
STEP = 400  # acknowledged records between steps


def test_rolling_upgrade_under_load(broker_factory):
    ns = unique("upg")
    b1, b2 = (broker_factory(args=cluster_args(ETCD_URL, ns, i), config=CLUSTER_CONFIG, name=f"b{i}",
                             binary=Path(PREVIOUS)) for i in (1, 2))
    topic = unique("upg")
    create(b1.bootstrap, topic, PARTITIONS)
    wait_for("2 partitions per broker", lambda: spread_ok(b1.bootstrap, topic, {1, 2}, 2), timeout=60)
    with Load(f"{b1.bootstrap},{b2.bootstrap}", topic, PARTITIONS) as load:
        def progress(what: str) -> None:
            target = load.acked() + STEP
            wait_for(what, lambda: load.acked() >= target, timeout=120)

        progress("records through two brokers of the previous version")
        # b1 is upgraded; b2 (previous) leads everything meanwhile, then b1 takes its share
        # back and writes in this version's formats.
        b1.stop()
        b1.binary = BIN
        b1.start()
        wait_for("partitions back on the upgraded broker", lambda: spread_ok(b2.bootstrap, topic, {1, 2}, 2),
                 timeout=60)
        progress("records through the upgraded broker")
        # The upgraded broker dies: the previous version takes over what it wrote.
        b1.kill()
        wait_for("the previous version leading every partition",
                 lambda: spread_ok(b2.bootstrap, topic, {2}, PARTITIONS), timeout=60)
        progress("records after the previous version took over")
        b1.start()
        wait_for("partitions back on b1", lambda: spread_ok(b2.bootstrap, topic, {1, 2}, 2), timeout=60)
        # b2 is upgraded.
        b2.stop()
        b2.binary = BIN
        b2.start()
        wait_for("partitions spread over the upgraded brokers",
                 lambda: spread_ok(b1.bootstrap, topic, {1, 2}, 2), timeout=60)
        progress("records through two upgraded brokers")
        history = load.finish()
    read_all(b1.bootstrap, topic, PARTITIONS, history)
    history.check()
    print(f"\nrolling upgrade: {len(history.acked)} acknowledged records read back, "
          f"{len(load.errors)} failed sends (indeterminate)")
