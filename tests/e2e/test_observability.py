"""Observability as operators see it: the Grafana dashboard queries only metrics that a live
broker exports (so it cannot drift from the code), the series the issue asks for appear with
sane values after traffic, and `--log-format json` logs JSON lines."""

from __future__ import annotations

import json
import re
import time

from confluent_kafka import Consumer, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

from harness import REPO, Broker, requires_broker

pytestmark = requires_broker

DASHBOARD = REPO / "deploy" / "grafana" / "kafscale.json"
METRIC = re.compile(r"\bkafscale_[a-z0-9_]+")
BY_CLAUSE = re.compile(r"\bby\s*\(([^)]*)\)")
LEGEND_LABEL = re.compile(r"\{\{\s*([a-zA-Z_][a-zA-Z0-9_]*)\s*\}\}")
# Labels that Prometheus or the histogram encoding add, not the broker's own.
IMPLICIT_LABELS = {"le", "instance", "job"}


def dashboard_queries(dash: dict) -> list[tuple[str, str]]:
    """(panel title, query) for every target of every panel, rows included, and every
    template variable query."""
    out = []

    def walk(panels):
        for p in panels:
            for t in p.get("targets", []):
                out.append((p.get("title", ""), t.get("expr", ""), t.get("legendFormat", "")))
            walk(p.get("panels", []))

    walk(dash.get("panels", []))
    for v in dash.get("templating", {}).get("list", []):
        q = v.get("query")
        if v.get("type") == "query":
            out.append((f"variable {v['name']}", q["query"] if isinstance(q, dict) else q, ""))
    return out


def exported(metrics_text: str) -> dict[str, set[str]]:
    """Sample name -> label names seen on it, from Prometheus text exposition."""
    out: dict[str, set[str]] = {}
    for line in metrics_text.splitlines():
        if not line or line.startswith("#"):
            continue
        m = re.match(r"([a-zA-Z_:][a-zA-Z0-9_:]*)(\{([^}]*)\})?\s", line)
        assert m, f"unparsable metrics line: {line!r}"
        labels = out.setdefault(m.group(1), set())
        if m.group(3):
            labels.update(kv.split("=", 1)[0].strip() for kv in m.group(3).split(",") if kv.strip())
    return out


def test_dashboard_is_valid_grafana_json():
    dash = json.loads(DASHBOARD.read_text())
    assert dash["title"] and dash["uid"] and isinstance(dash["schemaVersion"], int)
    variables = {v["name"]: v for v in dash["templating"]["list"]}
    ds = variables.get("datasource")
    assert ds and ds["type"] == "datasource" and ds["query"] == "prometheus", \
        "the dashboard needs a Prometheus datasource variable"
    ids = set()
    for p in dash["panels"]:
        assert p["id"] not in ids, f"duplicate panel id {p['id']}"
        ids.add(p["id"])
        assert {"h", "w", "x", "y"} <= p["gridPos"].keys(), p["title"]
        if p["type"] == "row":
            continue
        assert p["datasource"]["uid"] == "${datasource}", f"{p['title']}: not on the datasource variable"
        assert p["targets"], f"{p['title']}: no query"
        for t in p["targets"]:
            assert t["datasource"]["uid"] == "${datasource}", f"{p['title']}: target not on the variable"
            assert t["expr"].count("(") == t["expr"].count(")"), f"{p['title']}: unbalanced {t['expr']}"


def samples(metrics_text: str) -> dict[str, list[tuple[dict[str, str], float]]]:
    """Sample name -> [(labels, value)], from Prometheus text exposition."""
    out: dict[str, list[tuple[dict[str, str], float]]] = {}
    for line in metrics_text.splitlines():
        if not line or line.startswith("#"):
            continue
        m = re.match(r"([a-zA-Z_:][a-zA-Z0-9_:]*)(\{([^}]*)\})?\s+(\S+)", line)
        assert m, f"unparsable metrics line: {line!r}"
        labels = dict(re.findall(r'([a-zA-Z_][a-zA-Z0-9_]*)="([^"]*)"', m.group(3) or ""))
        out.setdefault(m.group(1), []).append((labels, float(m.group(4))))
    return out


def value(have: dict, name: str, **labels: str) -> float:
    """Sum of the samples of `name` whose labels include `labels`."""
    return sum(v for l, v in have.get(name, []) if all(l.get(k) == w for k, w in labels.items()))


TOPIC, GROUP, RECORDS, COMMITTED = "obs", "obs-group", 100, 60


def traffic(b: Broker) -> None:
    """Produces RECORDS records to 2 partitions of TOPIC, reads them back in GROUP and commits
    COMMITTED of partition 0's records; then one fetch out of range (a response error)."""
    admin = AdminClient({"bootstrap.servers": b.bootstrap})
    admin.create_topics([NewTopic(TOPIC, 2, 1)])[TOPIC].result(30)
    p = Producer({"bootstrap.servers": b.bootstrap, "linger.ms": 5})
    for i in range(RECORDS):
        p.produce(TOPIC, b"v" * 100, partition=i % 2)
    assert p.flush(30) == 0
    c = Consumer({"bootstrap.servers": b.bootstrap, "group.id": GROUP, "enable.auto.commit": False,
                  "auto.offset.reset": "earliest"})
    c.assign([TopicPartition(TOPIC, 0, 0), TopicPartition(TOPIC, 1, 0)])
    got, deadline = 0, time.time() + 30
    while got < RECORDS and time.time() < deadline:
        got += sum(1 for m in c.consume(100, 0.5) if m.error() is None)
    assert got == RECORDS
    c.commit(offsets=[TopicPartition(TOPIC, 0, COMMITTED // 2), TopicPartition(TOPIC, 1, RECORDS // 2)],
             asynchronous=False)
    c.close()
    # Far beyond the end: the broker answers OFFSET_OUT_OF_RANGE, the client resets.
    c = Consumer({"bootstrap.servers": b.bootstrap, "group.id": GROUP + "-oor", "auto.offset.reset": "earliest"})
    c.assign([TopicPartition(TOPIC, 0, 1_000_000)])
    got, deadline = 0, time.time() + 30
    while got == 0 and time.time() < deadline:
        got += sum(1 for m in c.consume(100, 0.5) if m.error() is None)
    c.close()


def test_series_appear_with_sane_values(ephemeral_broker: Broker):
    b = ephemeral_broker
    traffic(b)
    status, text = b.http_get("/metrics")
    assert status == 200
    have = samples(text)
    # Requests by API, their latency and the errors of their responses.
    assert value(have, "kafscale_requests_total", api="Produce") >= 1
    assert value(have, "kafscale_request_duration_seconds_count", api="Produce") >= 1
    assert 0 < value(have, "kafscale_request_duration_seconds_sum", api="Produce") < 60
    assert value(have, "kafscale_request_duration_seconds_count", api="Fetch") >= 1
    assert value(have, "kafscale_request_errors_total", api="Fetch", error="OffsetOutOfRange") >= 1
    assert value(have, "kafscale_request_errors_total", api="Produce") == 0
    # Traffic per topic: every record counted once on the way in, at least once on the way out.
    assert value(have, "kafscale_topic_produced_records_total", topic=TOPIC) == RECORDS
    assert value(have, "kafscale_topic_produced_bytes_total", topic=TOPIC) >= RECORDS * 100
    assert value(have, "kafscale_topic_fetched_records_total", topic=TOPIC) >= RECORDS
    assert value(have, "kafscale_topic_fetched_bytes_total", topic=TOPIC) >= RECORDS * 100
    # A single broker leads everything: at least the 2 partitions of TOPIC.
    assert value(have, "kafscale_partitions_led") >= 2
    # The metadata store did committed transactions (topic creation, flushes, offsets).
    assert value(have, "kafscale_metadata_requests_total", op="txn", result="ok") >= 3
    assert value(have, "kafscale_metadata_request_duration_seconds_count", op="txn") >= 3
    assert value(have, "kafscale_metadata_txn_ops_total") >= 3
    assert value(have, "kafscale_connections_total") >= 2
    assert value(have, "kafscale_open_connections") >= 0
    # Everything produced is committed, so no produced bytes are held any more.
    assert value(have, "kafscale_produce_buffered_bytes") == 0
    # Lag: log end (50 per partition) minus the committed offset.
    assert value(have, "kafscale_consumer_group_lag", group=GROUP, topic=TOPIC, partition="0") == \
        RECORDS // 2 - COMMITTED // 2
    assert value(have, "kafscale_consumer_group_lag", group=GROUP, topic=TOPIC, partition="1") == 0
    # More records in, lag follows at the next scrape.
    p = Producer({"bootstrap.servers": b.bootstrap})
    for _ in range(10):
        p.produce(TOPIC, b"more", partition=1)
    assert p.flush(30) == 0
    have = samples(b.http_get("/metrics")[1])
    assert value(have, "kafscale_consumer_group_lag", group=GROUP, topic=TOPIC, partition="1") == 10


def test_dashboard_metrics_exist_on_a_live_broker(ephemeral_broker: Broker, kcat):
    b = ephemeral_broker
    payload = b"".join(b"record %d\n" % i for i in range(200))
    kcat(["-b", b.bootstrap, "-P", "-t", "dash", "-p", "0"], input=payload)
    out = kcat(["-b", b.bootstrap, "-C", "-t", "dash", "-p", "0", "-o", "beginning", "-e", "-q"]).stdout
    assert out.count(b"\n") == 200
    # Groups with committed offsets and a response error, so that lag and error series exist.
    traffic(b)
    status, text = b.http_get("/metrics")
    assert status == 200
    have = exported(text)

    dash = json.loads(DASHBOARD.read_text())
    queries = dashboard_queries(dash)
    assert len(queries) >= 10
    missing, bad_labels = [], []
    for title, expr, legend in queries:
        names = set(METRIC.findall(expr))
        assert names, f"{title}: query uses no kafscale metric: {expr}"
        missing += [f"{title}: {n}" for n in sorted(names) if n not in have]
        # Labels grouped on or shown in the legend must exist on at least one metric of the
        # query, or the panel shows one unlabeled series.
        labels = {l.strip() for g in BY_CLAUSE.findall(expr) for l in g.split(",") if l.strip()}
        labels |= set(LEGEND_LABEL.findall(legend))
        on_metrics = set().union(*(have.get(n, set()) for n in names))
        bad_labels += [f"{title}: {l}" for l in sorted(labels - IMPLICIT_LABELS - on_metrics)]
    assert not missing, "dashboard queries metrics the broker does not export:\n" + "\n".join(missing)
    assert not bad_labels, "dashboard uses labels the metrics do not have:\n" + "\n".join(bad_labels)


def log_lines(b: Broker) -> list[str]:
    """The broker's own output lines (stdout and stderr; it writes logs to stderr and
    nothing to stdout), without the harness's start marker."""
    return [l for l in b.log_text().splitlines() if l.strip() and not l.startswith("===== start")]


def traffic_then_stop(b: Broker, kcat) -> list[str]:
    kcat(["-b", b.bootstrap, "-P", "-t", "logs"], input=b"one\ntwo\n")
    assert b.stop() == 0
    lines = log_lines(b)
    assert len(lines) >= 3, "expected start, topic creation and shutdown to be logged"
    return lines


def test_json_log_format(broker_factory, kcat):
    b = broker_factory(ephemeral=True, args=["--log-format", "json"], env={"RUST_LOG": "info"})
    for line in traffic_then_stop(b, kcat):
        try:
            obj = json.loads(line)
        except json.JSONDecodeError:
            raise AssertionError(f"not a JSON log line: {line!r}") from None
        assert isinstance(obj, dict), line
        assert obj.get("level") in {"TRACE", "DEBUG", "INFO", "WARN", "ERROR"}, line
        message = obj.get("message", obj.get("fields", {}).get("message"))
        assert isinstance(message, str) and message, f"no message: {line!r}"


def test_text_log_format_is_the_default(broker_factory, kcat):
    b = broker_factory(ephemeral=True, env={"RUST_LOG": "info"})
    for line in traffic_then_stop(b, kcat):
        try:
            obj = json.loads(line)
        except json.JSONDecodeError:
            continue
        assert not isinstance(obj, dict), f"default log format looks like JSON: {line!r}"
    assert any("broker started" in l for l in log_lines(b))
