"""A cluster of brokers sharing one etcd and one bucket (scripts/test.sh starts etcd and
SeaweedFS): leadership spread and agreed on, failover after kill -9 and SIGSTOP with every
acknowledged record kept at its offset, brokers joining and leaving (SIGTERM) under load,
and an etcd restart under load. Each test uses its own etcd key prefix and object prefix."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import time
from pathlib import Path

import pytest
from confluent_kafka import Consumer, KafkaException, Producer
from confluent_kafka.admin import AdminClient, NewTopic

from clients import Load, read_all, unique
from harness import free_port

ETCD_URL = os.environ.get("KAFSCALE_TEST_ETCD_URL")
S3_URL = os.environ.get("KAFSCALE_TEST_S3_URL")
REQUIRED = os.environ.get("KAFSCALE_TEST_REQUIRE_ETCD") == "1"
LEASE_MS = 3000

pytestmark = pytest.mark.skipif(
    not (ETCD_URL and S3_URL) and not REQUIRED,
    reason="no etcd / S3 server; ./scripts/test.sh starts both",
)


def cluster_args(etcd_url: str, namespace: str, broker_id: int, extra: list[str] | None = None) -> list[str]:
    return ["--metadata", f"{etcd_url}/{namespace}", "--object-store", f"{S3_URL}/{namespace}",
            "--broker-id", str(broker_id)] + (extra or [])


CLUSTER_CONFIG = f"""
"broker.session.timeout.ms" = {LEASE_MS}
"flush.ms" = 5
"group.initial.rebalance.delay.ms" = 0
"""


def start_cluster(broker_factory, n: int, etcd_url: str | None = None, namespace: str | None = None):
    namespace = namespace or unique("cl")
    url = etcd_url or ETCD_URL
    return [broker_factory(args=cluster_args(url, namespace, i + 1), config=CLUSTER_CONFIG, name=f"b{i + 1}")
            for i in range(n)], namespace


def leaders(bootstrap: str, topic: str) -> dict[int, int]:
    md = AdminClient({"bootstrap.servers": bootstrap}).list_topics(topic, timeout=10)
    t = md.topics[topic]
    return {p: pm.leader for p, pm in t.partitions.items()}


def controller(bootstrap: str) -> int:
    return AdminClient({"bootstrap.servers": bootstrap}).list_topics(timeout=10).controller_id


def live_brokers(bootstrap: str) -> set[int]:
    return set(AdminClient({"bootstrap.servers": bootstrap}).list_topics(timeout=10).brokers)


def wait_for(what: str, cond, timeout: float = 30.0, step: float = 0.1):
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        try:
            last = cond()
            if last:
                return last
        except Exception as e:  # a broker mid-failover may not answer: try again
            last = e
        time.sleep(step)
    raise AssertionError(f"timed out waiting for {what}; last: {last!r}")


def create(bootstrap: str, topic: str, partitions: int) -> None:
    admin = AdminClient({"bootstrap.servers": bootstrap})  # must outlive the future
    futures = admin.create_topics([NewTopic(topic, num_partitions=partitions, replication_factor=1)])
    futures[topic].result(30)


def etcd_txns(etcd_url: str) -> float:
    """Transactions etcd has answered OK (its own /metrics on the client port)."""
    import urllib.request
    with urllib.request.urlopen(etcd_url.replace("etcd://", "http://") + "/metrics", timeout=5) as r:
        text = r.read().decode()
    return sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines()
               if line.startswith("grpc_server_handled_total{") and 'grpc_method="Txn"' in line
               and 'grpc_code="OK"' in line)


def spread_ok(bootstrap: str, topic: str, brokers: set[int], per: int) -> dict[int, int] | None:
    ld = leaders(bootstrap, topic)
    counts = {b: sum(1 for l in ld.values() if l == b) for b in brokers}
    return ld if all(n == per for n in counts.values()) and set(ld.values()) <= brokers else None


def test_three_brokers_spread_leadership_and_agree(broker_factory):
    (b1, b2, b3), _ = start_cluster(broker_factory, 3)
    wait_for("three live brokers", lambda: live_brokers(b1.bootstrap) == {1, 2, 3})
    topic = unique("spread")
    create(b2.bootstrap, topic, 12)
    ld = wait_for("4 partitions led by each broker",
                  lambda: spread_ok(b1.bootstrap, topic, {1, 2, 3}, 4))
    for b in (b2, b3):
        assert wait_for(f"{b.name} agreeing", lambda: leaders(b.bootstrap, topic) == ld)
    with Load(b1.bootstrap, topic, 12, rate_sleep=0.0005) as load:
        wait_for("first acknowledgements", lambda: load.acked() >= 100, timeout=60)
        txns0, acked0, t0 = etcd_txns(ETCD_URL), load.acked(), time.monotonic()
        wait_for("2000 acknowledged records", lambda: load.acked() >= 2000, timeout=60)
        txns1, acked1, t1 = etcd_txns(ETCD_URL), load.acked(), time.monotonic()
        history = load.finish()
    assert not load.errors, load.errors[:5]
    secs = t1 - t0
    print(f"\netcd under load (3 brokers, 12 partitions, flush.ms 5): {(txns1 - txns0) / secs:.0f} txn/s "
          f"for {(acked1 - acked0) / secs:.0f} acknowledged records/s")
    read_all(b3.bootstrap, topic, 12, history)
    history.check()


def failover_seconds(b, topic: str, gone: int, t0: float) -> float:
    wait_for(f"partitions of broker {gone} to move",
             lambda: all(l not in (gone, -1) for l in leaders(b.bootstrap, topic).values()),
             timeout=30, step=0.05)
    return time.monotonic() - t0


@pytest.mark.parametrize("idempotent", [True, False], ids=["idempotent", "plain"])
def test_kill9_of_a_leader_under_load_loses_nothing(broker_factory, idempotent):
    (b1, b2, b3), _ = start_cluster(broker_factory, 3)
    topic = unique("kill")
    create(b1.bootstrap, topic, 6)
    wait_for("2 partitions per broker", lambda: spread_ok(b1.bootstrap, topic, {1, 2, 3}, 2))
    with Load(b1.bootstrap, topic, 6, idempotent=idempotent) as load:
        wait_for("records acknowledged", lambda: load.acked() >= 500, timeout=60)
        t0 = time.monotonic()
        b2.kill()
        took = failover_seconds(b1, topic, 2, t0)
        before = load.acked()
        wait_for("records acknowledged after the failover", lambda: load.acked() >= before + 500, timeout=60)
        history = load.finish()
    print(f"\nfailover after kill -9: {took:.2f} s (lease {LEASE_MS} ms)")
    assert took < LEASE_MS / 1000 + 5, f"failover took {took:.1f} s"
    read_all(b1.bootstrap, topic, 6, history)
    history.check()
    print(f"acked {len(history.acked)}, failed {len(history.failed)}, read {len(history.read)}, "
          f"duplicated values {history.duplicated_values()}")


def test_sigstopped_leader_is_fenced_and_its_late_writes_never_appear(broker_factory):
    (b1, b2), _ = start_cluster(broker_factory, 2)
    topic = unique("stop")
    create(b1.bootstrap, topic, 4)
    wait_for("2 partitions per broker", lambda: spread_ok(b1.bootstrap, topic, {1, 2}, 2))
    with Load(b1.bootstrap, topic, 4) as load:
        wait_for("records acknowledged", lambda: load.acked() >= 300, timeout=60)
        os.kill(b2.pid, signal.SIGSTOP)
        try:
            t0 = time.monotonic()
            took = failover_seconds(b1, topic, 2, t0)
            before = load.acked()
            wait_for("writes to the new leader", lambda: load.acked() >= before + 300, timeout=60)
        finally:
            os.kill(b2.pid, signal.SIGCONT)
        # The paused broker wakes up with flushes in hand: they must be fenced.
        wait_for("the old leader to notice", lambda: "lease lost" in b2.log_text()
                 or "fenced" in b2.log_text() or "moved away" in b2.log_text(), timeout=20)
        before = load.acked()
        wait_for("more writes after SIGCONT", lambda: load.acked() >= before + 300, timeout=60)
        history = load.finish()
    print(f"\nfailover after SIGSTOP: {took:.2f} s")
    read_all(b1.bootstrap, topic, 4, history)
    history.check()
    # It rejoins: the cluster balances again over both brokers.
    wait_for("the woken broker to lead again", lambda: spread_ok(b1.bootstrap, topic, {1, 2}, 2), timeout=30)


def test_join_and_sigterm_handover_under_load(broker_factory):
    (b1, b2), ns = start_cluster(broker_factory, 2)
    topic = unique("join")
    create(b1.bootstrap, topic, 12)
    wait_for("6 partitions per broker", lambda: spread_ok(b1.bootstrap, topic, {1, 2}, 6))
    with Load(b1.bootstrap, topic, 12) as load:
        wait_for("records acknowledged", lambda: load.acked() >= 300, timeout=60)
        b3 = broker_factory(args=cluster_args(ETCD_URL, ns, 3), config=CLUSTER_CONFIG, name="b3")
        wait_for("the new broker to receive its share",
                 lambda: spread_ok(b1.bootstrap, topic, {1, 2, 3}, 4), timeout=30)
        before = load.acked()
        wait_for("records acknowledged", lambda: load.acked() >= before + 300, timeout=60)
        t0 = time.monotonic()
        b1.proc.send_signal(signal.SIGTERM)
        code = b1.proc.wait(30)
        took = failover_seconds(b2, topic, 1, t0)
        assert code == 0, b1.log_tail()
        before = load.acked()
        wait_for("records acknowledged after the hand-over", lambda: load.acked() >= before + 300, timeout=60)
        history = load.finish()
    print(f"\nhand-over after SIGTERM: {took:.2f} s")
    assert not load.errors, f"errors visible to the producer: {load.errors[:5]}"
    read_all(b2.bootstrap, topic, 12, history)
    history.check()
    assert "partition handed over" in b1.log_text()


def test_sigterm_turns_readyz_503_first_and_exits_within_the_drain_bound(broker_factory):
    """Shutdown tells probes first: /readyz answers 503 "shutting down" (and /healthz 200)
    while the broker drains. The other broker is the controller and is SIGSTOPped, so nobody
    moves this one's partitions: the drain lasts until the controller's lease runs out or
    shutdown.drain.timeout.ms passes, and the broker still exits within that bound plus the
    bounded close of its connections."""
    drain_ms = 4000
    config = CLUSTER_CONFIG + f'"shutdown.drain.timeout.ms" = {drain_ms}\n'
    ns = unique("drain")
    b2 = broker_factory(args=cluster_args(ETCD_URL, ns, 2), config=config, name="b2")
    wait_for("b2 to be the controller", lambda: controller(b2.bootstrap) == 2)
    b1 = broker_factory(args=cluster_args(ETCD_URL, ns, 1), config=config, name="b1")
    topic = unique("drain")
    create(b1.bootstrap, topic, 4)
    wait_for("2 partitions per broker", lambda: spread_ok(b1.bootstrap, topic, {1, 2}, 2))
    assert controller(b1.bootstrap) == 2
    assert b1.http_get("/readyz")[0] == 200
    b2.proc.send_signal(signal.SIGSTOP)
    try:
        t0 = time.monotonic()
        b1.proc.send_signal(signal.SIGTERM)
        status, body = wait_for("/readyz 503", lambda: (r := b1.http_get("/readyz"))[0] == 503 and r,
                                timeout=5, step=0.02)
        draining_for = time.monotonic() - t0
        assert "shutting down" in body, body
        assert b1.http_get("/healthz")[0] == 200, "probes must keep answering while draining"
        code = b1.proc.wait(drain_ms / 1000 + 20)
        took = time.monotonic() - t0
    finally:
        b2.proc.send_signal(signal.SIGCONT)
    print(f"\n/readyz 503 after {draining_for:.2f} s; exit after {took:.2f} s (drain bound {drain_ms / 1000:.0f} s)")
    assert code == 0, b1.log_tail()
    assert took < drain_ms / 1000 + 15, b1.log_tail()
    assert "drain" in b1.log_text()


@pytest.fixture
def own_etcd(tmp_path):
    """An etcd of this test's own, so that it can be restarted."""
    etcd = shutil.which("etcd")
    if etcd is None:
        pytest.skip("no etcd binary")
    client, peer = free_port(), free_port()
    data = tmp_path / "etcd-data"
    cmd = [etcd, "--name", "t", "--data-dir", str(data),
           "--listen-client-urls", f"http://127.0.0.1:{client}",
           "--advertise-client-urls", f"http://127.0.0.1:{client}",
           "--listen-peer-urls", f"http://127.0.0.1:{peer}",
           "--initial-advertise-peer-urls", f"http://127.0.0.1:{peer}",
           "--initial-cluster", f"t=http://127.0.0.1:{peer}"]
    log = open(tmp_path / "etcd.log", "ab")
    state = {}

    def start():
        state["proc"] = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        import socket
        wait_for("etcd", lambda: socket.create_connection(("127.0.0.1", client), timeout=1).close() or True)

    def stop():
        p = state.get("proc")
        if p and p.poll() is None:
            p.kill()
            p.wait()

    start()
    yield f"etcd://127.0.0.1:{client}", start, stop
    stop()
    log.close()


def test_etcd_restart_under_load(broker_factory, own_etcd):
    url, start_etcd, stop_etcd = own_etcd
    (b1, b2), _ = start_cluster(broker_factory, 2, etcd_url=url)
    topic = unique("etcd")
    create(b1.bootstrap, topic, 4)
    wait_for("2 partitions per broker", lambda: spread_ok(b1.bootstrap, topic, {1, 2}, 2))
    with Load(b1.bootstrap, topic, 4) as load:
        wait_for("records acknowledged", lambda: load.acked() >= 300, timeout=60)
        stop_etcd()
        time.sleep(1.0)
        # No commit, no ack: nothing new is acknowledged while etcd is down.
        frozen = load.acked()
        time.sleep(2.0)
        assert load.acked() <= frozen + 5, "acknowledged without a metadata commit?"
        assert b1.http_get("/readyz")[0] == 503
        start_etcd()
        before = load.acked()
        wait_for("writes acknowledged after etcd returned", lambda: load.acked() >= before + 300, timeout=60)
        wait_for("ready again", lambda: b1.http_get("/readyz")[0] == 200 and b2.http_get("/readyz")[0] == 200)
        history = load.finish()
    read_all(b1.bootstrap, topic, 4, history)
    history.check()


def etcd_compact(etcd_url: str) -> int:
    """Compacts etcd's history up to its current revision (the JSON gateway of the client
    port); returns that revision."""
    import json
    import urllib.request
    base = etcd_url.replace("etcd://", "http://")

    def post(path: str, body: dict) -> dict:
        req = urllib.request.Request(base + path, data=json.dumps(body).encode(),
                                     headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(req, timeout=5) as r:
            return json.loads(r.read())

    # "AA==" is the key b"\0": a range that only yields the header with the revision.
    revision = int(post("/v3/kv/range", {"key": "AA=="})["header"]["revision"])
    post("/v3/kv/compaction", {"revision": str(revision), "physical": True})
    return revision


def test_etcd_compaction_under_load_and_a_failover_after_it(broker_factory, own_etcd):
    url, _, _ = own_etcd
    (b1, b2), _ = start_cluster(broker_factory, 2, etcd_url=url)
    topic = unique("compact")
    create(b1.bootstrap, topic, 4)
    wait_for("2 partitions per broker", lambda: spread_ok(b1.bootstrap, topic, {1, 2}, 2))
    with Load(b1.bootstrap, topic, 4) as load:
        # The history of every key the brokers watch is compacted away, several times.
        for _ in range(3):
            before = load.acked()
            wait_for("records acknowledged", lambda: load.acked() >= before + 200, timeout=60)
            etcd_compact(url)
        # The surviving broker must still see the change through its watches.
        b2.proc.kill()
        b2.proc.wait()
        wait_for("b1 to lead everything", lambda: spread_ok(b1.bootstrap, topic, {1}, 4), timeout=30)
        before = load.acked()
        wait_for("records acknowledged after the failover", lambda: load.acked() >= before + 300, timeout=60)
        history = load.finish()
    read_all(b1.bootstrap, topic, 4, history)
    history.check()
    assert b1.http_get("/readyz")[0] == 200


def object_lists(broker) -> float:
    status, text = broker.http_get("/metrics")
    assert status == 200
    return sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines()
               if line.startswith("kafscale_object_store_requests_total{")
               and 'op="list"' in line and 'result="ok"' in line)


def test_only_the_controller_collects_garbage_and_its_successor_takes_over(broker_factory):
    namespace = unique("gc")
    config = CLUSTER_CONFIG + '"gc.interval.ms" = 200\n'
    brokers = [broker_factory(args=cluster_args(ETCD_URL, namespace, i + 1), config=config, name=f"b{i + 1}")
               for i in range(2)]
    by_id = {i + 1: b for i, b in enumerate(brokers)}
    admin = AdminClient({"bootstrap.servers": brokers[0].bootstrap})
    controller = admin.describe_cluster().result(10).controller.id
    other = next(i for i in by_id if i != controller)
    # One LIST of the bucket per interval serves the cluster: the controller's.
    base = {i: object_lists(b) for i, b in by_id.items()}
    wait_for("the controller to collect", lambda: object_lists(by_id[controller]) >= base[controller] + 3)
    assert object_lists(by_id[other]) == base[other]
    # The controller dies: its successor collects from then on.
    by_id[controller].proc.kill()
    by_id[controller].proc.wait()
    wait_for("the successor to collect", lambda: object_lists(by_id[other]) >= base[other] + 3, timeout=30)


def coordinator_of(bootstrap: str, group: str) -> int:
    admin = AdminClient({"bootstrap.servers": bootstrap})
    return admin.describe_consumer_groups([group])[group].result(10).coordinator.id


def test_group_continues_after_its_coordinators_broker_is_killed(broker_factory):
    brokers, _ = start_cluster(broker_factory, 3)
    by_id = {i + 1: b for i, b in enumerate(brokers)}
    topic, group = unique("coord"), unique("g")
    create(brokers[0].bootstrap, topic, 6)
    wait_for("2 partitions per broker", lambda: spread_ok(brokers[0].bootstrap, topic, {1, 2, 3}, 2))
    p = Producer({"bootstrap.servers": brokers[0].bootstrap, "acks": "all", "linger.ms": 5})
    for i in range(3000):
        p.produce(topic, value=f"r-{i:05d}".encode(), partition=i % 6)
        p.poll(0)
    assert p.flush(60) == 0
    bootstrap = ",".join(b.bootstrap for b in brokers)
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": group, "enable.auto.commit": False,
                  "auto.offset.reset": "earliest", "session.timeout.ms": 10000,
                  "heartbeat.interval.ms": 500})
    c.subscribe([topic])
    seen: list[bytes] = []
    uncommitted: set[bytes] = set()
    commit_errors: list[int] = []

    def consume_until(n: int, timeout: float = 60):
        deadline = time.monotonic() + timeout
        while len(set(seen)) < n:
            assert time.monotonic() < deadline, f"consumed {len(set(seen))} of {n}"
            msg = c.poll(0.2)
            if msg is None or msg.error() is not None:
                continue
            seen.append(msg.value())
            try:
                c.commit(message=msg, asynchronous=False)
            except KafkaException as e:
                # Recorded and asserted on below: what could not be committed may be read
                # again.
                uncommitted.add(msg.value())
                commit_errors.append(e.args[0].code())

    try:
        consume_until(1000)
        coordinator = coordinator_of(brokers[0].bootstrap, group)
        survivor = next(b for i, b in by_id.items() if i != coordinator)
        by_id[coordinator].kill()
        t0 = time.monotonic()
        consume_until(3000, timeout=90)
        took = time.monotonic() - t0
        new = wait_for("a new coordinator", lambda: (lambda c2: c2 if c2 != coordinator else None)(
            coordinator_of(survivor.bootstrap, group)))
    finally:
        c.close()
    print(f"\ncoordinator {coordinator} killed; group continued on {new}; the rest consumed in {took:.1f} s")
    # Every record, and again only what could not be committed (commits are synchronous,
    # so nothing committed is read again).
    assert set(seen) == {f"r-{i:05d}".encode() for i in range(3000)}, f"{len(set(seen))} distinct"
    again = {v for v in seen if seen.count(v) > 1}
    assert again <= uncommitted, f"committed records read again: {sorted(again - uncommitted)[:5]}"
    print(f"commit errors during the move: {commit_errors}, records read twice: {len(again)}")
    # The group's membership moved with it: the member carried on in its generation.
    assert not commit_errors, f"commits failed across the coordinator move: {commit_errors}"
    # The committed offsets survived the move: a new member of the group starts at the end.
    admin = AdminClient({"bootstrap.servers": survivor.bootstrap})
    offsets = admin.list_consumer_group_offsets(
        [__import__("confluent_kafka").ConsumerGroupTopicPartitions(group)])[group].result(10)
    assert sum(tp.offset for tp in offsets.topic_partitions) == 3000
