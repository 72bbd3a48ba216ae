"""Observability as operators see it: the Grafana dashboard queries only metrics that a live
broker exports (so it cannot drift from the code), and `--log-format json` logs JSON lines."""

from __future__ import annotations

import json
import re

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


def test_dashboard_metrics_exist_on_a_live_broker(ephemeral_broker: Broker, kcat):
    b = ephemeral_broker
    payload = b"".join(b"record %d\n" % i for i in range(200))
    kcat(["-b", b.bootstrap, "-P", "-t", "dash", "-p", "0"], input=payload)
    out = kcat(["-b", b.bootstrap, "-C", "-t", "dash", "-p", "0", "-o", "beginning", "-e", "-q"]).stdout
    assert out.count(b"\n") == 200
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
