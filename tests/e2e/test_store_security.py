"""The broker's own connections to its stores, against real servers: an etcd of the test's
own with TLS and client certificates (--client-cert-auth), one with users and
authentication on, and a SeaweedFS serving S3 over HTTPS. Certificates are made with
openssl (test_security.make_cert). A broker with the right certificates and password
produces and reads back; one without them refuses to start, at once, saying why."""

from __future__ import annotations

import os
import re
import subprocess
import time
from pathlib import Path

import pytest

from clients import assert_same_records, consume, create_topic, make_records, produce, unique
from harness import BIN, Etcd, run_serve_expecting_exit
from test_s3 import start_seaweedfs
from test_security import make_cert

# A refusal must come at once, not after retries: well under the harness's ready timeout.
FAST_FAILURE_SECS = 20


@pytest.fixture(scope="module")
def pki(tmp_path_factory) -> Path:
    d = tmp_path_factory.mktemp("store-pki")
    make_cert(d, "ca", "/CN=KafScale Store CA", None)
    make_cert(d, "server", "/CN=localhost", "ca", server=True)
    make_cert(d, "client", "/CN=kafscale-broker", "ca")
    make_cert(d, "stranger-ca", "/CN=Someone Else", None)
    return d


def round_trip(bootstrap: str, n: int = 200, seed: int = 41) -> None:
    topic = unique("store-sec")
    create_topic(bootstrap, topic, 2)
    delivered = produce(bootstrap, topic, make_records(n, seed=seed))
    assert_same_records(delivered, consume(bootstrap, topic, partitions=2, expected=n))


def refused(tmp_path: Path, args: list[str], env: dict[str, str] | None = None) -> str:
    """Runs a broker that must refuse to start; returns its output."""
    started = time.monotonic()
    res = run_serve_expecting_exit(tmp_path, args, env=env, timeout=60)
    elapsed = time.monotonic() - started
    assert res.returncode != 0, res.stdout
    assert elapsed < FAST_FAILURE_SECS, f"took {elapsed:.1f}s to refuse:\n{res.stdout}"
    return res.stdout


# ---------------------------------------------------------------------------------------
# etcd over TLS with client certificates


@pytest.fixture
def tls_etcd(tmp_path, pki):
    etcd = Etcd(tmp_path, name="etcd-tls", tls=pki).start()
    yield etcd
    etcd.stop()


def etcd_tls_config(pki: Path, ca: str = "ca", client: bool = True) -> str:
    config = f'"etcd.tls.ca.file" = "{pki / (ca + ".crt")}"\n'
    if client:
        config += f'"etcd.tls.cert.file" = "{pki / "client.crt"}"\n"etcd.tls.key.file" = "{pki / "client.key"}"\n'
    return config


def test_broker_on_etcd_over_mutual_tls(broker_factory, tls_etcd, pki):
    # https:// in the url and the CA bundle: both select TLS.
    b = broker_factory(args=["--metadata", f"etcd://https://{tls_etcd.endpoint}/tls"],
                       config=etcd_tls_config(pki))
    round_trip(b.bootstrap)
    # The broker's keys are in that etcd, under the prefix.
    assert "tls/kafscale/cluster" in tls_etcd.ctl("get", "tls/", "--prefix", "--keys-only")
    b.stop()
    again = broker_factory(args=["--metadata", f"{tls_etcd.url}/tls"], config=etcd_tls_config(pki),
                           data_dir=b.data_dir, name="again")
    round_trip(again.bootstrap, seed=42)


def test_etcd_refuses_a_broker_without_its_client_certificate(tls_etcd, pki, tmp_path):
    (tmp_path / "no-client.toml").write_text(etcd_tls_config(pki, client=False))
    out = refused(tmp_path, ["--metadata", tls_etcd.url, "--object-store", "memory://",
                             "--config", str(tmp_path / "no-client.toml")])
    # With TLS 1.3 the server refuses a missing client certificate after the client has
    # finished its handshake: the client sees the alert (BadCertificate) or, when the
    # connection is torn down first, only a closed connection or a broken pipe (each seen in
    # fresh-clone runs). Either way the broker does not start.
    if "BadCertificate" in out:
        assert "TLS refused" in out and "etcd.tls.cert.file" in out, out
    else:
        assert "metadata store" in out and "etcd.tls.cert.file" in out, out


def test_a_broker_refuses_an_etcd_its_ca_did_not_sign(tls_etcd, pki, tmp_path):
    (tmp_path / "stranger.toml").write_text(etcd_tls_config(pki, ca="stranger-ca"))
    out = refused(tmp_path, ["--metadata", tls_etcd.url, "--object-store", "memory://",
                             "--config", str(tmp_path / "stranger.toml")])
    assert "invalid peer certificate: UnknownIssuer" in out, out
    assert "etcd.tls.ca.file" in out, out
    # Plain gRPC to a TLS port: refused, not hung.
    out = refused(tmp_path, ["--metadata", tls_etcd.url, "--object-store", "memory://"])
    assert "metadata store" in out, out


def test_tls_settings_are_checked_at_start(tmp_path, pki):
    out = refused(tmp_path, ["--metadata", "etcd://127.0.0.1:1", "--object-store", "memory://",
                             "--set", f"etcd.tls.ca.file={pki / 'client.key'}"])
    assert "etcd.tls.ca.file" in out and "no certificate found" in out, out
    out = refused(tmp_path, ["--metadata", "etcd://127.0.0.1:1", "--object-store", "memory://",
                             "--set", f"etcd.tls.cert.file={pki / 'client.crt'}"])
    assert "etcd.tls.cert.file and etcd.tls.key.file" in out, out
    out = refused(tmp_path, ["--metadata", "etcd://http://127.0.0.1:1", "--object-store", "memory://",
                             "--set", f"etcd.tls.ca.file={pki / 'ca.crt'}"])
    assert "http://" in out, out
    out = refused(tmp_path, ["--ephemeral", "--set", f"etcd.tls.ca.file={pki / 'ca.crt'}"])
    assert "etcd.tls.ca.file is set but metadata is not an etcd:// url" in out, out


# ---------------------------------------------------------------------------------------
# etcd users


@pytest.fixture
def auth_etcd(tmp_path):
    etcd = Etcd(tmp_path, name="etcd-auth").start()
    etcd.ctl("user", "add", "root", "--new-user-password=root-secret")
    etcd.ctl("user", "grant-role", "root", "root")
    etcd.ctl("auth", "enable")
    yield etcd
    etcd.stop()


def test_broker_with_an_etcd_user_and_password(broker_factory, auth_etcd):
    # The password from the environment, the user from the configuration.
    b = broker_factory(args=["--metadata", auth_etcd.url], config='"etcd.username" = "root"\n',
                       env={"KAFSCALE_ETCD_PASSWORD": "root-secret"})
    round_trip(b.bootstrap)


def test_a_wrong_etcd_password_is_a_clear_fatal_error(auth_etcd, tmp_path):
    out = refused(tmp_path, ["--metadata", auth_etcd.url, "--object-store", "memory://",
                             "--set", "etcd.username=root"], env={"KAFSCALE_ETCD_PASSWORD": "wrong"})
    assert "authentication failed" in out and "etcd.password" in out, out
    assert "wrong" not in out, "the password is never printed"
    out = refused(tmp_path, ["--metadata", auth_etcd.url, "--object-store", "memory://"])
    assert "user name is empty" in out, out
    out = refused(tmp_path, ["--metadata", auth_etcd.url, "--object-store", "memory://",
                             "--set", "etcd.username=root"])
    assert "etcd.username is set without etcd.password" in out, out


# ---------------------------------------------------------------------------------------
# S3 over HTTPS, server-side encryption


@pytest.fixture
def tls_weed(tmp_path, pki):
    yield from start_seaweedfs(tmp_path, "tls-bucket", tls=pki)


def s3_curl(env: dict[str, str], pki: Path, *args: str) -> str:
    """curl signing as the broker does (SigV4), trusting the test CA."""
    res = subprocess.run(["curl", "-sS", "--cacert", str(pki / "ca.crt"), "--aws-sigv4",
                          f"aws:amz:{env['AWS_REGION']}:s3", "--user",
                          f"{env['AWS_ACCESS_KEY_ID']}:{env['AWS_SECRET_ACCESS_KEY']}", *args],
                         capture_output=True, text=True, timeout=30)
    assert res.returncode == 0, res.stderr
    return res.stdout


def encryption_of(env: dict[str, str], pki: Path, key: str) -> str | None:
    head = s3_curl(env, pki, "-I", f"{env['AWS_ENDPOINT_URL']}/tls-bucket/{key}")
    assert head.startswith("HTTP/") and " 200" in head.splitlines()[0], f"{key}: {head}"
    m = re.search(r"^x-amz-server-side-encryption: *(\S+)", head, re.M | re.I)
    return m.group(1) if m else None


def test_broker_on_s3_over_https_with_sse_s3(broker_factory, tls_weed, pki, tmp_path):
    _, env = tls_weed
    config = f'"s3.tls.ca.file" = "{pki / "ca.crt"}"\n"s3.sse.type" = "AES256"\n'
    b = broker_factory(args=["--object-store", "s3://tls-bucket/sse"], config=config, env=env)
    round_trip(b.bootstrap, n=500)
    b.stop()
    listing = s3_curl(env, pki, f"{env['AWS_ENDPOINT_URL']}/tls-bucket")
    keys = [k for k in re.findall(r"<Key>([^<]+)</Key>", listing) if k.startswith("sse/")]
    assert keys, listing
    assert {k: encryption_of(env, pki, k) for k in keys} == {k: "AES256" for k in keys}
    # The header is the broker's doing: an object written without it has none.
    (tmp_path / "plain").write_text("x")
    s3_curl(env, pki, "-T", str(tmp_path / "plain"), f"{env['AWS_ENDPOINT_URL']}/tls-bucket/plain")
    assert encryption_of(env, pki, "plain") is None
    # `kafscale metadata backup` reads the same settings from --config.
    (tmp_path / "stores.toml").write_text(config)
    res = subprocess.run([str(BIN), "metadata", "backup", "--metadata", f"embedded://{b.data_dir}/metadata",
                          "--to", "s3://tls-bucket/backups/one.kmb", "--config", str(tmp_path / "stores.toml")],
                         # Like `serve`, it takes every KAFSCALE_* variable as a setting.
                         env={**{k: v for k, v in os.environ.items() if not k.startswith("KAFSCALE_")}, **env},
                         capture_output=True, text=True, timeout=60)
    assert res.returncode == 0, res.stdout + res.stderr
    assert encryption_of(env, pki, "backups/one.kmb") == "AES256"


def test_a_broker_without_the_ca_refuses_the_s3_server(tls_weed, tmp_path):
    _, env = tls_weed
    out = refused(tmp_path, ["--object-store", "s3://tls-bucket/no-ca", "--metadata", "memory://"], env=env)
    assert "invalid peer certificate: UnknownIssuer" in out and "s3.tls.ca.file" in out, out
