"""Listeners, TLS and SASL with real clients: one broker with PLAINTEXT, SSL (client
certificates required), SASL_SSL and SASL_PLAINTEXT listeners, certificates made here with
openssl, SCRAM users created with confluent-kafka's AdminClient. Each client and mechanism
produces and reads back; wrong passwords, unknown users, strangers' certificates and
plaintext on a TLS port are refused without affecting anything else."""

from __future__ import annotations

import json
import os
import shutil
import socket
import ssl
import subprocess
import time
from pathlib import Path

import pytest
from confluent_kafka import KafkaError, KafkaException, Producer
from confluent_kafka.admin import (AdminClient, ScramCredentialInfo, ScramMechanism,
                                   UserScramCredentialDeletion, UserScramCredentialUpsertion)

from clients import assert_same_records, consume, create_topic, make_records, produce, unique
from harness import run_kcat

LISTENERS = ["SSL", "SASL_SSL", "SASL_PLAINTEXT"]


def openssl(*args: str, cwd: Path) -> None:
    res = subprocess.run(["openssl", *args], cwd=cwd, capture_output=True, timeout=60)
    assert res.returncode == 0, f"openssl {' '.join(args)}: {res.stderr.decode(errors='replace')}"


def make_cert(d: Path, name: str, subject: str, ca: str | None, *, server: bool = False) -> Path:
    """A key and a certificate signed by `ca` (self-signed CA when None); returns the PEM
    file holding the key and the certificate, as ssl.keystore.location takes it."""
    openssl("req", "-newkey", "rsa:2048", "-nodes", "-keyout", f"{name}.key", "-subj", subject,
            "-out", f"{name}.csr", cwd=d)
    ext = d / f"{name}.ext"
    if ca is None:
        ext.write_text("basicConstraints=critical,CA:TRUE\nkeyUsage=critical,keyCertSign,cRLSign\n")
        openssl("x509", "-req", "-in", f"{name}.csr", "-signkey", f"{name}.key", "-days", "30",
                "-extfile", str(ext), "-out", f"{name}.crt", cwd=d)
    else:
        ext.write_text("subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth\n" if server
                       else "extendedKeyUsage=clientAuth\n")
        openssl("x509", "-req", "-in", f"{name}.csr", "-CA", f"{ca}.crt", "-CAkey", f"{ca}.key",
                "-CAcreateserial", "-days", "30", "-extfile", str(ext), "-out", f"{name}.crt", cwd=d)
    pem = d / f"{name}.pem"
    pem.write_text((d / f"{name}.key").read_text() + (d / f"{name}.crt").read_text())
    return pem


@pytest.fixture(scope="module")
def pki(tmp_path_factory) -> Path:
    d = tmp_path_factory.mktemp("pki")
    make_cert(d, "ca", "/CN=KafScale Test CA", None)
    make_cert(d, "server", "/CN=localhost", "ca", server=True)
    make_cert(d, "alice", "/C=US/O=Example/OU=eng/CN=alice", "ca")
    make_cert(d, "stranger-ca", "/CN=Someone Else", None)
    make_cert(d, "stranger", "/CN=mallory", "stranger-ca")
    return d


@pytest.fixture
def secure(broker_factory, pki, tmp_path):
    config = f"""
"listener.security.protocol.map" = "PLAINTEXT:PLAINTEXT,SSL:SSL,SASL_SSL:SASL_SSL,SASL_PLAINTEXT:SASL_PLAINTEXT"
"ssl.keystore.location" = "{pki / 'server.pem'}"
"ssl.truststore.location" = "{pki / 'ca.crt'}"
"listener.name.ssl.ssl.client.auth" = "required"
"listener.name.ssl.ssl.principal.mapping.rules" = "RULE:^CN=([^,]+),.*$/$1/"
"listener.name.sasl_plaintext.sasl.enabled.mechanisms" = "SCRAM-SHA-256"
"audit.log.file" = "{tmp_path / 'audit.log'}"
# librdkafka retries failed logins many times a second from the one test address: without
# this the escalating wait (tested in security::limiter) would outlast the test's timeouts.
"connection.failed.authentication.delay.ms" = 0
"""
    b = broker_factory(ephemeral=True, listeners=LISTENERS, config=config)
    b.audit_path = tmp_path / "audit.log"
    a = AdminClient({"bootstrap.servers": b.bootstrap})
    upserts = [UserScramCredentialUpsertion("alice", ScramCredentialInfo(ScramMechanism.SCRAM_SHA_512, 8192), b"alice-secret"),
               UserScramCredentialUpsertion("alice", ScramCredentialInfo(ScramMechanism.SCRAM_SHA_256, 4096), b"alice-secret"),
               UserScramCredentialUpsertion("bob", ScramCredentialInfo(ScramMechanism.SCRAM_SHA_256, 4096), b"bob-secret")]
    for user, f in a.alter_user_scram_credentials(upserts).items():
        f.result(30)
    return b


def addr(b, listener: str) -> str:
    return f"127.0.0.1:{b.listener_ports[listener]}"


def sasl(b, listener: str, mechanism: str, user: str, password: str, pki: Path) -> dict:
    conf = {"bootstrap.servers": addr(b, listener), "security.protocol": listener,
            "sasl.mechanism": mechanism, "sasl.username": user, "sasl.password": password}
    if listener == "SASL_SSL":
        conf["ssl.ca.location"] = str(pki / "ca.crt")
    return conf


def mtls(b, pki: Path, who: str = "alice", ca: str = "ca") -> dict:
    return {"bootstrap.servers": addr(b, "SSL"), "security.protocol": "SSL",
            "ssl.ca.location": str(pki / f"{ca}.crt"), "ssl.certificate.location": str(pki / f"{who}.crt"),
            "ssl.key.location": str(pki / f"{who}.key")}


def round_trip(conf: dict, topic: str, n: int, seed: int) -> None:
    bootstrap = conf["bootstrap.servers"]
    extra = {k: v for k, v in conf.items() if k != "bootstrap.servers"}
    delivered = produce(bootstrap, topic, make_records(n, seed=seed), config=extra)
    got = consume(bootstrap, topic, partitions=2, expected=n, config=extra)
    assert_same_records([r for r in delivered], [r for r in got if (r.partition, r.offset) in
                                                 {(d.partition, d.offset) for d in delivered}])


def test_confluent_kafka_over_every_listener_and_mechanism(secure, pki):
    b = secure
    cases = [
        ("SASL_SSL SCRAM-SHA-512", sasl(b, "SASL_SSL", "SCRAM-SHA-512", "alice", "alice-secret", pki)),
        ("SASL_SSL SCRAM-SHA-256", sasl(b, "SASL_SSL", "SCRAM-SHA-256", "bob", "bob-secret", pki)),
        ("SASL_SSL PLAIN", sasl(b, "SASL_SSL", "PLAIN", "alice", "alice-secret", pki)),
        ("SASL_PLAINTEXT SCRAM-SHA-256", sasl(b, "SASL_PLAINTEXT", "SCRAM-SHA-256", "bob", "bob-secret", pki)),
        ("SSL client certificate", mtls(b, pki)),
    ]
    for i, (what, conf) in enumerate(cases):
        topic = unique("sec")
        create_topic(b.bootstrap, topic, 2)
        try:
            round_trip(conf, topic, 200, seed=i)
        except Exception as e:  # name the case that failed
            raise AssertionError(f"{what}: {e}") from e
    # Metadata on a listener names the brokers' addresses on that same listener.
    md = AdminClient(sasl(b, "SASL_SSL", "SCRAM-SHA-512", "alice", "alice-secret", pki)).list_topics(timeout=20)
    assert [f"{x.host}:{x.port}" for x in md.brokers.values()] == [addr(b, "SASL_SSL")]
    assert b.metric("kafscale_authentications_total", 'outcome="success"') >= len(cases)


def test_kcat_over_sasl_ssl_and_mutual_tls(secure, pki):
    b = secure
    for args in (
        ["-b", addr(b, "SASL_SSL"), "-X", "security.protocol=SASL_SSL", "-X", "sasl.mechanism=SCRAM-SHA-512",
         "-X", "sasl.username=alice", "-X", "sasl.password=alice-secret", "-X", f"ssl.ca.location={pki / 'ca.crt'}"],
        ["-b", addr(b, "SSL"), "-X", "security.protocol=SSL", "-X", f"ssl.ca.location={pki / 'ca.crt'}",
         "-X", f"ssl.certificate.location={pki / 'alice.crt'}", "-X", f"ssl.key.location={pki / 'alice.key'}"],
    ):
        topic = unique("kcat-sec")
        create_topic(b.bootstrap, topic, 1)
        lines = [f"line-{i}" for i in range(50)]
        run_kcat([*args, "-P", "-t", topic], input="\n".join(lines).encode() + b"\n")
        out = run_kcat([*args, "-C", "-t", topic, "-e", "-q", "-o", "beginning"]).stdout.decode().split()
        assert out == lines


def test_kafka_python_and_aiokafka_log_in_with_scram(secure, pki):
    import asyncio

    import aiokafka
    import kafka

    b = secure
    topic = unique("py-sec")
    create_topic(b.bootstrap, topic, 1)
    ctx = ssl.create_default_context(cafile=str(pki / "ca.crt"))
    p = kafka.KafkaProducer(bootstrap_servers=addr(b, "SASL_SSL"), security_protocol="SASL_SSL",
                            sasl_mechanism="SCRAM-SHA-256", sasl_plain_username="bob",
                            sasl_plain_password="bob-secret", ssl_context=ctx)
    for i in range(20):
        p.send(topic, f"kp-{i}".encode()).get(30)
    p.close()

    async def aio() -> list[bytes]:
        c = aiokafka.AIOKafkaConsumer(topic, bootstrap_servers=addr(b, "SASL_SSL"), security_protocol="SASL_SSL",
                                      sasl_mechanism="SCRAM-SHA-512", sasl_plain_username="alice",
                                      sasl_plain_password="alice-secret", ssl_context=ctx,
                                      auto_offset_reset="earliest")
        await c.start()
        try:
            got = []
            while len(got) < 20:
                batch = await c.getmany(timeout_ms=1000)
                got += [m.value for msgs in batch.values() for m in msgs]
            return got
        finally:
            await c.stop()

    assert asyncio.run(asyncio.wait_for(aio(), 60)) == [f"kp-{i}".encode() for i in range(20)]


def test_kafkajs_logs_in_with_scram_and_plain_over_sasl_ssl(secure, pki):
    here = Path(__file__).parent
    if not (here / "node_modules" / "kafkajs").is_dir() or shutil.which("node") is None:
        pytest.fail("kafkajs not installed (scripts/test.sh installs it with npm)")
    b = secure
    for mechanism, user, password in (("scram-sha-512", "alice", "alice-secret"),
                                      ("scram-sha-256", "bob", "bob-secret"),
                                      ("plain", "alice", "alice-secret")):
        topic = unique("js-sec")
        create_topic(b.bootstrap, topic, 1)
        res = subprocess.run(["node", str(here / "kafkajs_sasl.js"), addr(b, "SASL_SSL"), str(pki / "ca.crt"),
                              mechanism, user, password, topic, unique("js-g"), "30"],
                             cwd=here, capture_output=True, text=True, timeout=120,
                             env={**os.environ, "KAFKAJS_NO_PARTITIONER_WARNING": "1"})
        assert res.returncode == 0, f"kafkajs {mechanism}: {res.stderr[-3000:]}"
        received = json.loads(res.stdout.strip().splitlines()[-1])["received"]
        assert sorted(received) == sorted(f"js-{i}" for i in range(30)), mechanism


def auth_error(conf: dict) -> str:
    """The error a producer reports when it cannot authenticate."""
    errors = []
    conf = dict(conf, error_cb=errors.append, **{"message.timeout.ms": 5000})
    p = Producer(conf)
    p.produce("whatever", b"x")
    p.flush(8)
    assert errors, "no error reported"
    return str(errors[0])


def test_bad_credentials_are_refused_alike_and_audited(secure, pki):
    b = secure
    wrong = auth_error(sasl(b, "SASL_SSL", "SCRAM-SHA-512", "alice", "nope", pki))
    unknown = auth_error(sasl(b, "SASL_SSL", "SCRAM-SHA-512", "nobody", "nope", pki))
    plain = auth_error(sasl(b, "SASL_SSL", "PLAIN", "alice", "nope", pki))
    for e in (wrong, unknown, plain):
        assert "Authentication failed: Invalid username or password" in e, e
    # Not enabled on SASL_PLAINTEXT (only SCRAM-SHA-256 is).
    disabled = auth_error(sasl(b, "SASL_PLAINTEXT", "SCRAM-SHA-512", "alice", "alice-secret", pki))
    assert "SCRAM-SHA-512" in disabled or "mechanism" in disabled.lower(), disabled
    assert b.metric("kafscale_authentications_total", 'outcome="failure"') >= 3
    log = b.log_path.read_text()
    assert log.count("authentication failed") >= 3
    assert '"nobody"' in log and "invalid credentials" in log
    # The audit trail has its own file: one JSON line per event, none in the broker's log.
    events = [json.loads(line)["fields"] for line in b.audit_path.read_text().splitlines()]
    failures = [e for e in events if e.get("event") == "authentication" and e.get("outcome") == "failure"]
    assert len(failures) >= 3 and all(e["listener"] in ("SASL_SSL", "SASL_PLAINTEXT") for e in failures)
    assert any(e.get("event") == "change" and e.get("what") == "user" for e in events)
    assert '"authentication"' not in log
    # Everyone else is unaffected.
    topic = unique("after-bad")
    create_topic(b.bootstrap, topic, 2)
    round_trip(sasl(b, "SASL_SSL", "SCRAM-SHA-256", "bob", "bob-secret", pki), topic, 20, seed=9)
    events = [json.loads(line)["fields"] for line in b.audit_path.read_text().splitlines()]
    assert any(e.get("outcome") == "success" and e.get("principal") == "User:bob" for e in events)


def closed_without_answer(port: int, payload: bytes) -> bool:
    """Sends bytes and reports whether the broker closed the connection without a Kafka answer."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
        s.sendall(payload)
        s.settimeout(10)
        try:
            data = s.recv(4096)
        except ConnectionResetError:
            return True
        # A TLS alert is all a TLS listener may answer with; never a Kafka frame.
        return data == b"" or data[:1] == b"\x15"


def test_plaintext_and_strangers_on_tls_listeners_get_a_closed_connection(secure, pki):
    b = secure
    api_versions = bytes.fromhex("0000001a" "0012" "0003" "00000001" "0006" "6b6361742d" "00" "036b6300" "00")
    for listener in ("SSL", "SASL_SSL"):
        assert closed_without_answer(b.listener_ports[listener], api_versions)
        assert closed_without_answer(b.listener_ports[listener], b"\x16\x03\x01garbage" * 10)
    # A request before authentication on a SASL listener closes the connection too.
    metadata_v1 = bytes.fromhex("0000000e" "0003" "0001" "00000007" "0002" "6b63" "ffffffff")
    assert closed_without_answer(b.listener_ports["SASL_PLAINTEXT"], metadata_v1)
    # A certificate from another CA, and none at all, on the mTLS listener.
    stranger = auth_error(mtls(b, pki, who="stranger"))
    assert "SSL" in stranger or "handshake" in stranger.lower(), stranger
    no_cert = {k: v for k, v in mtls(b, pki).items() if k not in ("ssl.certificate.location", "ssl.key.location")}
    assert auth_error(no_cert)
    assert "TLS handshake failed" in b.log_path.read_text()
    # The broker still serves everyone else.
    topic = unique("after-strangers")
    create_topic(b.bootstrap, topic, 2)
    round_trip(mtls(b, pki), topic, 20, seed=3)


def test_scram_credentials_are_described_and_deleted(secure, pki):
    b = secure
    a = AdminClient({"bootstrap.servers": b.bootstrap})
    desc = {u: f.result(30) for u, f in a.describe_user_scram_credentials(["alice", "bob"]).items()}
    alice = sorted((i.mechanism, i.iterations) for i in desc["alice"].scram_credential_infos)
    assert alice == sorted([(ScramMechanism.SCRAM_SHA_256, 4096), (ScramMechanism.SCRAM_SHA_512, 8192)])
    with pytest.raises(KafkaException):
        a.describe_user_scram_credentials(["ghost"])["ghost"].result(30)
    for f in a.alter_user_scram_credentials([UserScramCredentialDeletion("bob", ScramMechanism.SCRAM_SHA_256)]).values():
        f.result(30)
    assert "Invalid username or password" in auth_error(sasl(b, "SASL_SSL", "SCRAM-SHA-256", "bob", "bob-secret", pki))
    bad = a.alter_user_scram_credentials(
        [UserScramCredentialUpsertion("eve", ScramCredentialInfo(ScramMechanism.SCRAM_SHA_256, 1000), b"pw")])
    with pytest.raises(KafkaException) as e:
        bad["eve"].result(30)
    assert e.value.args[0].code() == KafkaError.UNACCEPTABLE_CREDENTIAL


def served_serial(port: int, ca: Path) -> int:
    ctx = ssl.create_default_context(cafile=str(ca))
    with socket.create_connection(("127.0.0.1", port), timeout=10) as raw:
        with ctx.wrap_socket(raw, server_hostname="localhost") as s:
            der = s.getpeercert(binary_form=True)
    out = subprocess.run(["openssl", "x509", "-inform", "DER", "-noout", "-serial"], input=der,
                         capture_output=True, check=True).stdout.decode()
    return int(out.strip().split("=")[1], 16)


def test_certificates_rotate_under_a_running_producer(secure, pki):
    b = secure
    port = b.listener_ports["SASL_SSL"]
    before = served_serial(port, pki / "ca.crt")
    topic = unique("rotate")
    create_topic(b.bootstrap, topic, 2)
    conf = sasl(b, "SASL_SSL", "SCRAM-SHA-512", "alice", "alice-secret", pki)
    errors = []
    p = Producer(dict(conf, error_cb=errors.append, **{"linger.ms": 5}))
    delivered = []
    deadline = time.monotonic() + 60
    rotated = False
    i = 0
    while time.monotonic() < deadline:
        p.produce(topic, f"r-{i}".encode(), on_delivery=lambda err, msg: delivered.append(err))
        p.poll(0.01)
        i += 1
        if not rotated and i == 100:
            # A new certificate for the same name, written over the key store in one rename.
            fresh = make_cert(pki, "server2", "/CN=localhost", "ca", server=True)
            fresh.replace(pki / "server.pem")
            rotated = True
        if rotated and served_serial(port, pki / "ca.crt") != before:
            break
        time.sleep(0.01)
    assert rotated and served_serial(port, pki / "ca.crt") != before, "certificate not reloaded within 60 s"
    for _ in range(100):
        p.produce(topic, f"r-{i}".encode(), on_delivery=lambda err, msg: delivered.append(err))
        i += 1
    assert p.flush(30) == 0
    assert errors == [] and all(e is None for e in delivered) and len(delivered) == i
    assert "TLS certificates reloaded" in b.log_path.read_text()
