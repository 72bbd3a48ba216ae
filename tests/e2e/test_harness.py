"""Checks of the process harness itself, against a fake broker script (no real broker needed)."""

import signal
import sys
import textwrap

import pytest

from harness import Broker, BrokerFailed

FAKE = textwrap.dedent(
    """\
    #!{python}
    # A stand-in for `kafscale serve`: listens on --listen and answers /healthz on --http-listen.
    import argparse, http.server, os, signal, socket, sys, threading, time
    p = argparse.ArgumentParser()
    p.add_argument("cmd")
    p.add_argument("--listen"); p.add_argument("--http-listen"); p.add_argument("--data-dir")
    p.add_argument("--ephemeral", action="store_true"); p.add_argument("--config")
    a = p.parse_args()
    mode = os.environ.get("FAKE_MODE", "ok")
    print("fake broker starting", mode, flush=True)
    print("env:", sorted(k for k in os.environ if k.startswith("KAFSCALE_")), flush=True)
    if mode == "exit":
        print("error: cannot open data dir", file=sys.stderr, flush=True)
        sys.exit(3)
    if mode == "stubborn":
        signal.signal(signal.SIGTERM, lambda *_: print("ignoring SIGTERM", flush=True))
    else:
        signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    h, port = a.listen.rsplit(":", 1)
    s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind((h, int(port))); s.listen()
    if mode != "no-http":
        class H(http.server.BaseHTTPRequestHandler):
            def do_GET(self):
                self.send_response(200 if self.path == "/healthz" else 404); self.end_headers()
            def log_message(self, *args): pass
        hh, hp = a.http_listen.rsplit(":", 1)
        http.server.HTTPServer.allow_reuse_address = True
        srv = http.server.HTTPServer((hh, int(hp)), H)
        threading.Thread(target=srv.serve_forever, daemon=True).start()
    while True:
        time.sleep(0.1)
    """
)


@pytest.fixture
def fake_bin(tmp_path):
    path = tmp_path / "fake-kafscale"
    path.write_text(FAKE.format(python=sys.executable))
    path.chmod(0o755)
    return path


def test_start_ready_stop_restart(tmp_path, fake_bin):
    b = Broker(tmp_path, binary=fake_bin)
    b.start(timeout=10)
    assert b.alive()
    assert b.http_get("/healthz")[0] == 200
    port, pid = b.port, b.pid
    b.restart()
    assert b.alive() and b.port == port and b.pid != pid
    assert b.stop() == 0 and not b.needed_sigkill
    assert b.log_text().count("fake broker starting") == 2
    assert "--data-dir" in b.log_text()


def test_exit_before_ready_shows_log(tmp_path, fake_bin):
    b = Broker(tmp_path, binary=fake_bin, env={"FAKE_MODE": "exit"})
    with pytest.raises(BrokerFailed, match="exited with code 3(.|\n)*cannot open data dir"):
        b.start(timeout=10)


def test_not_ready_times_out_and_is_stopped(tmp_path, fake_bin):
    b = Broker(tmp_path, binary=fake_bin, env={"FAKE_MODE": "no-http"}, ephemeral=True)
    with pytest.raises(BrokerFailed, match="/healthz not answering"):
        b.start(timeout=2)
    assert not b.alive()


def test_sigkill_after_sigterm_timeout(tmp_path, fake_bin):
    b = Broker(tmp_path, binary=fake_bin, env={"FAKE_MODE": "stubborn"})
    b.start(timeout=10)
    assert b.stop(timeout=1) == -signal.SIGKILL
    assert b.needed_sigkill


def test_parent_kafscale_env_is_not_inherited(tmp_path, fake_bin, monkeypatch):
    # The broker rejects unknown KAFSCALE_* keys, so the runner's own (KAFSCALE_BIN...) must not leak.
    monkeypatch.setenv("KAFSCALE_SOMETHING", "x")
    b = Broker(tmp_path, binary=fake_bin, env={"KAFSCALE_FLUSH_MS": "5"})
    b.start(timeout=10)
    b.stop()
    assert "env: ['KAFSCALE_FLUSH_MS']" in b.log_text()
