"""The container image (scripts/image.sh) run with podman: three broker containers on the host
network with etcd and SeaweedFS, configured only by KAFSCALE_* environment, serve kcat and
confluent-kafka; one is stopped with SIGTERM (`podman stop`) under load and hands over with
no client error; the broker runs as a non-root user. scripts/test.sh builds the image and
sets KAFSCALE_TEST_IMAGE; without podman it fails loudly rather than skipping."""

from __future__ import annotations

import os
import subprocess
import time
import urllib.request

import pytest
from confluent_kafka.admin import AdminClient, NewTopic

from clients import Load, read_all, unique
from harness import free_port, run_kcat

IMAGE = os.environ.get("KAFSCALE_TEST_IMAGE")
ETCD_URL = os.environ.get("KAFSCALE_TEST_ETCD_URL")
S3_URL = os.environ.get("KAFSCALE_TEST_S3_URL")

pytestmark = pytest.mark.skipif(
    not (IMAGE and ETCD_URL and S3_URL) and os.environ.get("KAFSCALE_TEST_REQUIRE_IMAGE") != "1",
    reason="no image, etcd or S3 server; ./scripts/test.sh builds the image and starts both",
)


def podman(*args: str, check: bool = True) -> str:
    res = subprocess.run(["podman", *args], capture_output=True, text=True, timeout=120)
    if check:
        assert res.returncode == 0, f"podman {' '.join(args)}: {res.stderr}"
    return res.stdout.strip()


def http_status(port: int, path: str) -> int | None:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=2) as r:
            return r.status
    except urllib.error.HTTPError as e:
        return e.code
    except OSError:
        return None


class Container:
    def __init__(self, name: str, broker_id: int, ns: str):
        self.name, self.port, self.http = name, free_port(), free_port()
        env = {
            "KAFSCALE_LISTEN": f"127.0.0.1:{self.port}",
            "KAFSCALE_HTTP_LISTEN": f"127.0.0.1:{self.http}",
            "KAFSCALE_METADATA": f"{ETCD_URL}/{ns}",
            "KAFSCALE_OBJECT_STORE": f"{S3_URL}/{ns}",
            "KAFSCALE_BROKER_ID": str(broker_id),
            "KAFSCALE_BROKER_SESSION_TIMEOUT_MS": "3000",
            "KAFSCALE_FLUSH_MS": "5",
        }
        env.update({k: v for k, v in os.environ.items() if k.startswith("AWS_")})
        flags = [a for k, v in env.items() for a in ("-e", f"{k}={v}")]
        podman("run", "-d", "--name", name, "--network", "host", *flags, IMAGE)
        deadline = time.monotonic() + 60
        while http_status(self.http, "/readyz") != 200:
            assert time.monotonic() < deadline, f"{name} not ready:\n{self.logs()[-4000:]}"
            time.sleep(0.1)

    @property
    def bootstrap(self) -> str:
        return f"127.0.0.1:{self.port}"

    def logs(self) -> str:
        """The broker logs to stderr; `podman logs` replays the container's streams as its own."""
        res = subprocess.run(["podman", "logs", self.name], capture_output=True, text=True, timeout=60)
        return res.stdout + res.stderr

    def uid(self) -> int:
        pid = podman("inspect", "-f", "{{.State.Pid}}", self.name)
        with open(f"/proc/{pid}/status") as f:
            line = next(l for l in f if l.startswith("Uid:"))
        return int(line.split()[1])


def test_three_broker_containers_serve_clients_and_hand_over_on_sigterm():
    ns = unique("img")
    names = [f"{ns}-b{i}" for i in (1, 2, 3)]
    try:
        brokers = [Container(name, i + 1, ns) for i, name in enumerate(names)]
        assert all(b.uid() == 65532 for b in brokers), "the broker must not run as root"
        topic, plain = unique("img"), unique("kcat")
        admin = AdminClient({"bootstrap.servers": brokers[0].bootstrap})
        for name, done in admin.create_topics([NewTopic(t, num_partitions=6, replication_factor=1)
                                                for t in (topic, plain)]).items():
            done.result(30)

        run_kcat(["-P", "-b", brokers[1].bootstrap, "-t", plain, "-K", ":"],
                 input=b"".join(b"k%d:kcat-%d\n" % (i, i) for i in range(100)))
        with Load(brokers[0].bootstrap, topic, 6) as load:
            deadline = time.monotonic() + 60
            while load.acked() < 300:
                assert time.monotonic() < deadline, "no records acknowledged"
                time.sleep(0.1)
            t0 = time.monotonic()
            podman("stop", "-t", "30", names[2])
            stopped_in = time.monotonic() - t0
            assert podman("inspect", "-f", "{{.State.ExitCode}}", names[2]) == "0", brokers[2].logs()
            before = load.acked()
            while load.acked() < before + 300:
                assert time.monotonic() < deadline + 60, "no records acknowledged after the hand-over"
                time.sleep(0.1)
            history = load.finish()
        assert not load.errors, f"errors visible to the producer: {load.errors[:5]}"
        assert "partition handed over" in brokers[2].logs(), brokers[2].logs()[-4000:]
        read_all(brokers[1].bootstrap, topic, 6, history)
        history.check()
        out = run_kcat(["-C", "-b", brokers[0].bootstrap, "-t", plain, "-e", "-q", "-f", "%s\n"])
        assert sorted(out.stdout.decode().split()) == sorted(f"kcat-{i}" for i in range(100))
        print(f"\n3 containers; SIGTERM hand-over took {stopped_in:.2f} s; "
              f"{len(history.acked)} records acknowledged, none lost; broker uid 65532")
    finally:
        for name in names:
            podman("rm", "-f", "-t", "0", name, check=False)
