"""The broker process harness and the kcat runner used by the end-to-end tests.

KAFSCALE_BIN names the binary (scripts/test.sh sets it); otherwise target/debug/kafscale
is used. Test modules that need a broker set `pytestmark = requires_broker`: without a
binary they are skipped, unless KAFSCALE_E2E_REQUIRE_BROKER=1 (as in scripts/test.sh),
where a missing binary is an error.
"""

from __future__ import annotations

import os
import random
import resource
import shutil
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
BIN = Path(os.environ.get("KAFSCALE_BIN") or REPO / "target" / "debug" / "kafscale")
# The same broker with faults injected into its ports (testkit/src/bin/faulty_broker.rs),
# built next to it by `cargo build --workspace`.
FAULTY_BIN = BIN.with_name("kafscale-faulty")
REQUIRE_BROKER = os.environ.get("KAFSCALE_E2E_REQUIRE_BROKER") == "1"
READY_TIMEOUT = float(os.environ.get("KAFSCALE_E2E_READY_TIMEOUT", "30"))
STOP_TIMEOUT = 15.0
LOG_TAIL_LINES = 150


def broker_binary_present() -> bool:
    return BIN.is_file() and os.access(BIN, os.X_OK)


requires_broker = pytest.mark.skipif(
    not broker_binary_present() and not REQUIRE_BROKER,
    reason=f"no broker binary at {BIN} (build it with cargo build, or set KAFSCALE_BIN)",
)


# Ports handed out by free_port in this process; none is handed out twice.
_HANDED_OUT: set[int] = set()


def free_port() -> int:
    """A loopback port nothing listens on, below the kernel's ephemeral range (32768 and
    up on Linux) and SeaweedFS's (scripts/seaweedfs.sh: 20000 and up), so that neither an
    outgoing connection nor the S3 server takes it before the broker binds it. Asking the
    kernel for port 0 instead gave two calls the same port once (the first was closed before
    the second asked), and a broker then listened twice on it."""
    for _ in range(1000):
        port = random.randrange(10000, 20000)
        if port in _HANDED_OUT:
            continue
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
        _HANDED_OUT.add(port)
        return port
    raise RuntimeError("no free loopback port in 10000-19999")


def tail(text: str, lines: int = LOG_TAIL_LINES) -> str:
    parts = text.splitlines()
    cut = "" if len(parts) <= lines else f"[... {len(parts) - lines} earlier lines]\n"
    return cut + "\n".join(parts[-lines:])


class BrokerFailed(Exception):
    pass


class Broker:
    """One broker process. `start()` waits until it serves Kafka and /healthz."""

    def __init__(
        self,
        workdir: Path,
        *,
        ephemeral: bool = False,
        data_dir: Path | None = None,
        args: list[str] | None = None,
        env: dict[str, str] | None = None,
        config: str | None = None,
        name: str = "broker",
        binary: Path | None = None,
        memory_limit: int | None = None,
        listeners: list[str] | None = None,
    ):
        self.workdir = workdir
        self.binary = Path(binary) if binary is not None else BIN
        # Address-space limit (RLIMIT_AS, bytes): an allocation beyond it fails, and a failed
        # allocation aborts a Rust process.
        self.memory_limit = memory_limit
        self.name = name
        self.ephemeral = ephemeral
        self.data_dir = None if ephemeral else (data_dir or workdir / f"{name}-data")
        self.extra_args = list(args or [])
        self.env = dict(env or {})
        self.config_path = None
        if config is not None:
            self.config_path = workdir / f"{name}.toml"
            self.config_path.write_text(config)
        self.port = free_port()
        self.http_port = free_port()
        # Named listeners besides PLAINTEXT (which stays on `port`, the one readiness
        # checks): each gets a port, and `listeners` replaces `--listen`.
        self.listener_ports = {name.upper(): free_port() for name in (listeners or [])}
        self.log_path = workdir / f"{name}.log"
        self.proc: subprocess.Popen | None = None
        self.starts = 0
        self.last_exit_code: int | None = None
        self.needed_sigkill = False

    # -- addresses -------------------------------------------------------------------
    @property
    def bootstrap(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def http(self) -> str:
        return f"http://127.0.0.1:{self.http_port}"

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def command(self) -> list[str]:
        if self.listener_ports:
            listeners = ",".join([f"PLAINTEXT://{self.bootstrap}"] +
                                 [f"{n}://127.0.0.1:{p}" for n, p in self.listener_ports.items()])
            cmd = [str(self.binary), "serve", "--set", f"listeners={listeners}"]
        else:
            cmd = [str(self.binary), "serve", "--listen", self.bootstrap]
        cmd += ["--http-listen", f"127.0.0.1:{self.http_port}"]
        if self.ephemeral:
            cmd.append("--ephemeral")
        else:
            cmd += ["--data-dir", str(self.data_dir)]
        if self.config_path is not None:
            cmd += ["--config", str(self.config_path)]
        return cmd + self.extra_args

    # -- lifecycle -------------------------------------------------------------------
    def start(self, timeout: float = READY_TIMEOUT) -> Broker:
        if not os.access(self.binary, os.X_OK):
            raise BrokerFailed(f"no broker binary at {self.binary}")
        assert not self.alive(), "already running"
        env = {k: v for k, v in os.environ.items() if not k.startswith("KAFSCALE_")}
        env.setdefault("RUST_BACKTRACE", "1")
        env.update(self.env)
        self.starts += 1
        with open(self.log_path, "ab") as log:
            log.write(f"\n===== start #{self.starts}: {' '.join(self.command())}\n".encode())
            log.flush()
            self.proc = subprocess.Popen(
                self.command(), cwd=self.workdir, env=env, stdin=subprocess.DEVNULL,
                stdout=log, stderr=subprocess.STDOUT, preexec_fn=self._limits,
            )
        self.wait_ready(timeout)
        return self

    def _limits(self) -> None:
        if self.memory_limit is not None:
            resource.setrlimit(resource.RLIMIT_AS, (self.memory_limit, self.memory_limit))

    def wait_ready(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        kafka_ok = health_ok = False
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise BrokerFailed(
                    f"{self.name} exited with code {self.proc.returncode} before it was ready\n{self.log_tail()}")
            if not kafka_ok:
                try:
                    socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
                    kafka_ok = True
                except OSError:
                    pass
            if not health_ok:
                health_ok = self.http_get("/healthz")[0] == 200
            if kafka_ok and health_ok:
                return
            time.sleep(0.05)
        what = [w for w, ok in (("kafka port", kafka_ok), ("/healthz", health_ok)) if not ok]
        self.stop()
        raise BrokerFailed(f"{self.name} not ready after {timeout:.0f}s ({' and '.join(what)} not answering)\n"
                           f"{self.log_tail()}")

    def http_get(self, path: str, timeout: float = 2.0) -> tuple[int | None, str]:
        try:
            with urllib.request.urlopen(self.http + path, timeout=timeout) as resp:
                return resp.status, resp.read().decode(errors="replace")
        except urllib.error.HTTPError as e:
            return e.code, e.read().decode(errors="replace")
        except OSError:
            return None, ""

    def metric(self, name: str, labels: str = "") -> float:
        """Sum of a metric's samples whose label text contains `labels`."""
        status, text = self.http_get("/metrics")
        assert status == 200, text
        total = 0.0
        for line in text.splitlines():
            if line.startswith(name) and labels in line:
                total += float(line.rsplit(" ", 1)[1])
        return total

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def stop(self, timeout: float = STOP_TIMEOUT) -> int | None:
        """SIGTERM, then SIGKILL after `timeout`. Returns the exit code (None if not running)."""
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.needed_sigkill = True
                self.proc.kill()
                self.proc.wait()
        self.last_exit_code = self.proc.returncode
        self.proc = None
        return self.last_exit_code

    def kill(self) -> None:
        """SIGKILL: a crash, no chance to flush."""
        if self.alive():
            self.proc.kill()
            self.proc.wait()
        self.proc = None

    def restart(self, hard: bool = False) -> Broker:
        """Stops (SIGTERM, or SIGKILL if hard) and starts again on the same ports and data dir."""
        self.kill() if hard else self.stop()
        return self.start()

    # -- inspection ------------------------------------------------------------------
    def log_text(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def log_tail(self, lines: int = LOG_TAIL_LINES) -> str:
        return f"----- {self.log_path} (last lines) -----\n{tail(self.log_text(), lines)}"

    def proc_status(self, field: str) -> int:
        """A /proc/<pid>/status memory field (VmRSS, VmHWM, VmPeak, ...) in KiB."""
        for line in Path(f"/proc/{self.pid}/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1])
        raise KeyError(field)


# ---------------------------------------------------------------------------------------
# etcd


class Etcd:
    """An etcd process of a test's (or a benchmark's) own, on loopback ports of its own, so
    that it can be killed, restarted, or started with a small `--quota-backend-bytes`."""

    def __init__(self, workdir: Path, *, quota_bytes: int | None = None, name: str = "etcd",
                 tls: Path | None = None):
        """`tls`: a directory with ca.crt, server.crt/.key and client.crt/.key; clients must
        then show a certificate the CA signed (etcd's --client-cert-auth)."""
        binary = shutil.which("etcd")
        if binary is None:
            raise FileNotFoundError("no etcd binary (apt-get install etcd-server)")
        self.client, self.peer = free_port(), free_port()
        self.tls = tls
        # With TLS the client port wants certificates; metrics get a plain port of their own.
        self.metrics_port = free_port() if tls else self.client
        scheme = "https" if tls else "http"
        self.data = workdir / f"{name}-data"
        self.log_path = workdir / f"{name}.log"
        self.cmd = [binary, "--name", name, "--data-dir", str(self.data),
                    "--listen-client-urls", f"{scheme}://127.0.0.1:{self.client}",
                    "--advertise-client-urls", f"{scheme}://127.0.0.1:{self.client}",
                    "--listen-peer-urls", f"http://127.0.0.1:{self.peer}",
                    "--initial-advertise-peer-urls", f"http://127.0.0.1:{self.peer}",
                    "--initial-cluster", f"{name}=http://127.0.0.1:{self.peer}"]
        if quota_bytes is not None:
            self.cmd.append(f"--quota-backend-bytes={quota_bytes}")
        if tls:
            self.cmd += ["--cert-file", str(tls / "server.crt"), "--key-file", str(tls / "server.key"),
                         "--trusted-ca-file", str(tls / "ca.crt"), "--client-cert-auth",
                         "--listen-metrics-urls", f"http://127.0.0.1:{self.metrics_port}"]
        self.proc: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        """The broker's `--metadata` URL (add `/prefix` for a key prefix)."""
        return f"etcd://127.0.0.1:{self.client}"

    @property
    def endpoint(self) -> str:
        return f"127.0.0.1:{self.client}"

    def start(self, timeout: float = 30) -> Etcd:
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(self.cmd, stdout=log, stderr=subprocess.STDOUT,
                                         stdin=subprocess.DEVNULL)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"etcd exited: {tail(self.log_path.read_text(), 30)}")
            try:
                if self.metrics_text():
                    return self
            except OSError:
                pass
            time.sleep(0.2)
        raise RuntimeError("etcd did not become healthy")

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()

    def ctl(self, *args: str, check: bool = True, input: str | None = None) -> str:
        """Runs etcdctl (v3 API) against this etcd; returns its output. `input` goes to its
        standard input (a value too large for the command line)."""
        tls = [] if self.tls is None else [
            f"--cacert={self.tls / 'ca.crt'}", f"--cert={self.tls / 'client.crt'}",
            f"--key={self.tls / 'client.key'}"]
        scheme = "https://" if self.tls else ""
        res = subprocess.run(["etcdctl", f"--endpoints={scheme}{self.endpoint}", *tls, *args],
                             env={**os.environ, "ETCDCTL_API": "3"}, capture_output=True,
                             text=True, timeout=60, input=input)
        if check and res.returncode != 0:
            raise RuntimeError(f"etcdctl {' '.join(args)}: {res.stderr.strip()}")
        return res.stdout + res.stderr

    def metrics_text(self) -> str:
        with urllib.request.urlopen(f"http://127.0.0.1:{self.metrics_port}/metrics", timeout=5) as r:
            return r.read().decode()

    def metrics(self) -> dict[str, float]:
        """etcd's own counters that measure what clients write: puts, transactions, bytes
        received, and the size of its database."""
        want = {
            "etcd_mvcc_put_total": None,
            "etcd_mvcc_delete_total": None,
            'grpc_server_handled_total{grpc_code="OK",grpc_method="Txn"': "txn",
            "etcd_network_client_grpc_received_bytes_total": None,
            "etcd_mvcc_db_total_size_in_bytes": None,
            "etcd_mvcc_db_total_size_in_use_in_bytes": None,
            "etcd_debugging_mvcc_keys_total": None,
            "etcd_debugging_mvcc_current_revision": None,
        }
        out = {(alias or name): 0.0 for name, alias in want.items()}
        for line in self.metrics_text().splitlines():
            for name, alias in want.items():
                if line.startswith(name) and (len(line) == len(name) or line[len(name)] in " {,"):
                    out[alias or name] += float(line.rsplit(" ", 1)[1])
        return out


# ---------------------------------------------------------------------------------------
# kcat


def run_kcat(args: list[str], *, input: bytes | None = None, timeout: float = 60.0,
             check: bool = True) -> subprocess.CompletedProcess:
    """Runs kcat with a timeout; on failure raises with its output."""
    cmd = ["kcat", *args]
    try:
        res = subprocess.run(cmd, input=input, capture_output=True, timeout=timeout)
    except subprocess.TimeoutExpired as e:
        raise AssertionError(
            f"kcat timed out after {timeout}s: {' '.join(cmd)}\nstderr:\n{(e.stderr or b'').decode(errors='replace')[-4000:]}"
        ) from None
    if check and res.returncode != 0:
        raise AssertionError(
            f"kcat exited {res.returncode}: {' '.join(cmd)}\nstderr:\n{res.stderr.decode(errors='replace')[-4000:]}")
    return res


def run_serve_expecting_exit(workdir: Path, args: list[str], *, env: dict[str, str] | None = None,
                             timeout: float = 30.0) -> subprocess.CompletedProcess:
    """Runs `kafscale serve` on free ports with extra args; fails if it is still running
    (i.e. it started instead of refusing) after `timeout`. Output is stdout+stderr."""
    cmd = [str(BIN), "serve"]
    for flag in ("--listen", "--http-listen"):
        if flag not in args:
            cmd += [flag, f"127.0.0.1:{free_port()}"]
    cmd += args
    full_env = {k: v for k, v in os.environ.items() if not k.startswith("KAFSCALE_")}
    full_env.update(env or {})
    try:
        return subprocess.run(cmd, cwd=workdir, env=full_env, stdin=subprocess.DEVNULL,
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=timeout)
    except subprocess.TimeoutExpired as e:
        out = e.output.decode(errors="replace") if isinstance(e.output, bytes) else (e.output or "")
        raise AssertionError(f"broker still running after {timeout}s: {' '.join(cmd)}\n{tail(out)}") from None
