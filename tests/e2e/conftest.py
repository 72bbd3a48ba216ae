"""Fixtures: brokers as real processes (see harness.py), kcat, log capture on failure."""

from __future__ import annotations

import pytest

from harness import Broker, run_kcat

# ---------------------------------------------------------------------------------------
# Fixtures


@pytest.fixture
def broker_factory(request, tmp_path):
    """Returns make(**Broker kwargs) -> started Broker; all are stopped after the test."""
    brokers: list[Broker] = []
    request.node._kafscale_brokers = brokers

    def make(start: bool = True, **kwargs) -> Broker:
        kwargs.setdefault("name", f"broker{len(brokers)}")
        b = Broker(tmp_path, **kwargs)
        brokers.append(b)
        return b.start() if start else b

    yield make
    for b in brokers:
        b.stop()


@pytest.fixture
def broker(broker_factory) -> Broker:
    """A broker with a data dir (local object store + embedded metadata)."""
    return broker_factory()


@pytest.fixture
def ephemeral_broker(broker_factory) -> Broker:
    """A broker with in-memory storage."""
    return broker_factory(ephemeral=True)


@pytest.fixture(params=["data-dir", "ephemeral"])
def any_broker(request, broker_factory) -> Broker:
    return broker_factory(ephemeral=request.param == "ephemeral")


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    """Attaches the broker logs to the report of a failed test."""
    outcome = yield
    report = outcome.get_result()
    if report.failed:
        for b in getattr(item, "_kafscale_brokers", []):
            report.sections.append((f"broker log {b.name}", b.log_tail()))


# ---------------------------------------------------------------------------------------
# kcat


@pytest.fixture
def kcat():
    return run_kcat
