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
import struct
import subprocess
import time
from collections import Counter
from pathlib import Path

import pytest
from confluent_kafka import Consumer, KafkaError, KafkaException, Producer
from confluent_kafka.admin import (AdminClient, AlterConfigOpType, ConfigEntry, ConfigResource,
                                   NewTopic, ResourceType, ScramCredentialInfo, ScramMechanism,
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


def start_secure(broker_factory, pki: Path, tmp_path: Path, extra: str = ""):
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
{extra}
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


@pytest.fixture
def secure(broker_factory, pki, tmp_path):
    return start_secure(broker_factory, pki, tmp_path)


REAUTH_MS = 2000


@pytest.fixture
def reauth(broker_factory, pki, tmp_path):
    """The same broker, with SASL_SSL sessions of 2 s (KIP-368)."""
    return start_secure(broker_factory, pki, tmp_path,
                        f'"listener.name.sasl_ssl.connections.max.reauth.ms" = {REAUTH_MS}')


def audit_events(b) -> list[dict]:
    return [json.loads(line)["fields"] for line in b.audit_path.read_text().splitlines()]


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


def test_confluent_kafka_re_authenticates_on_the_same_connection(reauth, pki):
    """librdkafka re-authenticates (KIP-368) before each 2 s session ends: 10 s of producing
    and consuming go through without an error, on connections that each log in several
    times."""
    b = reauth
    conf = sasl(b, "SASL_SSL", "SCRAM-SHA-512", "alice", "alice-secret", pki)
    topic = unique("reauth")
    create_topic(b.bootstrap, topic, 2)
    errors, failed = [], []
    p = Producer(dict(conf, error_cb=errors.append, **{"linger.ms": 5}))
    c = Consumer(dict(conf, error_cb=errors.append, **{
        "group.id": unique("reauth"), "auto.offset.reset": "earliest"}))
    c.subscribe([topic])
    got: set[bytes] = set()

    def take(timeout: float) -> None:
        m = c.poll(timeout)
        if m is None:
            return
        if m.error():
            errors.append(m.error())
        else:
            got.add(m.value())

    sent = 0
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        p.produce(topic, f"r-{sent}".encode(), on_delivery=lambda err, _m: err and failed.append(err))
        sent += 1
        p.poll(0)
        take(0.02)
    assert p.flush(30) == 0
    want = {f"r-{i}".encode() for i in range(sent)}
    end = time.monotonic() + 30
    while got != want and time.monotonic() < end:
        take(0.5)
    c.close()
    assert not failed and not errors, (failed, errors)
    assert got == want, f"{len(want - got)} of {sent} records not consumed"
    reauths = [e for e in audit_events(b) if e.get("event") == "reauthentication"]
    assert reauths and all(e["outcome"] == "success" and e["principal"] == "User:alice"
                           for e in reauths), reauths
    # Several re-authentications on one connection (one client address and port).
    per_connection = Counter(e["client"] for e in reauths)
    assert per_connection.most_common(1)[0][1] >= 3, per_connection
    assert b.metric("kafscale_audit_events_total",
                    'event="reauthentication",outcome="success"') == len(reauths)
    assert b.metric("kafscale_refused_requests_total", 'reason="expired_session"') == 0


class RawClient:
    """Kafka frames by hand over TLS (request header v1), for what no client library does:
    staying past its session, or re-authenticating as someone else."""

    def __init__(self, port: int, pki: Path):
        context = ssl.create_default_context(cafile=str(pki / "ca.crt"))
        raw = socket.create_connection(("127.0.0.1", port), timeout=10)
        self.sock = context.wrap_socket(raw, server_hostname="localhost")
        self.correlation = 0

    def send(self, api_key: int, version: int, body: bytes) -> None:
        self.correlation += 1
        frame = struct.pack(">hhih", api_key, version, self.correlation, 3) + b"raw" + body
        self.sock.sendall(struct.pack(">i", len(frame)) + frame)

    def receive(self) -> bytes | None:
        """The next response's body (after the correlation id), or None once closed."""
        size = self._exact(4)
        if size is None:
            return None
        payload = self._exact(struct.unpack(">i", size)[0])
        assert payload is not None
        assert struct.unpack(">i", payload[:4])[0] == self.correlation
        return payload[4:]

    def _exact(self, n: int) -> bytes | None:
        data = b""
        while len(data) < n:
            try:
                chunk = self.sock.recv(n - len(data))
            except (ConnectionResetError, ssl.SSLError):
                return None
            if not chunk:
                return None
            data += chunk
        return data

    def login(self, user: str, password: str) -> tuple[int, str | None, int]:
        """SaslHandshake v1 (PLAIN) and SaslAuthenticate v1: error code, error message and
        session lifetime."""
        self.send(17, 1, struct.pack(">h", 5) + b"PLAIN")
        handshake = self.receive()
        assert handshake is not None and struct.unpack(">h", handshake[:2])[0] == 0
        token = f"\0{user}\0{password}".encode()
        self.send(36, 1, struct.pack(">i", len(token)) + token)
        body = self.receive()
        assert body is not None
        error, length = struct.unpack(">hh", body[:4])
        message = None if length < 0 else body[4:4 + length].decode()
        rest = body[4 + max(length, 0):]
        token_len = struct.unpack(">i", rest[:4])[0]
        lifetime = struct.unpack(">q", rest[4 + max(token_len, 0):][:8])[0]
        return error, message, lifetime

    def metadata(self) -> bytes | None:
        """Metadata v1 for every topic: its body, or None if the broker closed instead."""
        self.send(3, 1, struct.pack(">i", -1))
        return self.receive()


def test_a_client_that_does_not_re_authenticate_is_disconnected_after_expiry(reauth, pki):
    b = reauth
    c = RawClient(b.listener_ports["SASL_SSL"], pki)
    error, message, lifetime = c.login("alice", "alice-secret")
    assert (error, message, lifetime) == (0, "", REAUTH_MS)  # Kafka's empty message, not null
    assert c.metadata() is not None
    time.sleep(REAUTH_MS / 1000 + 0.5)
    assert c.metadata() is None, "served after the session ended"
    assert b.metric("kafscale_refused_requests_total", 'reason="expired_session"') == 1
    # Everyone else is unaffected.
    assert RawClient(b.listener_ports["SASL_SSL"], pki).login("alice", "alice-secret")[0] == 0


def test_re_authentication_as_another_user_is_refused(reauth, pki):
    b = reauth
    c = RawClient(b.listener_ports["SASL_SSL"], pki)
    assert c.login("alice", "alice-secret")[0] == 0
    error, message, _ = c.login("bob", "bob-secret")
    assert error == 58 and "Cannot change principals" in message, (error, message)  # SASL_AUTHENTICATION_FAILED
    assert c.metadata() is None, "still served after a refused re-authentication"
    refused = [e for e in audit_events(b)
               if e.get("event") == "reauthentication" and e.get("outcome") == "failure"]
    assert len(refused) == 1 and "User:bob" in refused[0]["detail"], refused
    assert refused[0]["listener"] == "SASL_SSL" and refused[0]["client"].startswith("127.0.0.1:")


def test_changes_of_topics_configs_and_groups_are_audited_and_counted(secure, pki):
    b = secure
    conf = sasl(b, "SASL_SSL", "SCRAM-SHA-512", "alice", "alice-secret", pki)
    a = AdminClient(conf)
    topic, group = unique("audited"), unique("audited-group")
    a.create_topics([NewTopic(topic, num_partitions=1, replication_factor=1)])[topic].result(30)
    with pytest.raises(KafkaException, match="TOPIC_ALREADY_EXISTS"):
        a.create_topics([NewTopic(topic, num_partitions=1, replication_factor=1)])[topic].result(30)
    res = ConfigResource(ResourceType.TOPIC, topic, incremental_configs=[
        ConfigEntry("retention.ms", "3600000", incremental_operation=AlterConfigOpType.SET)])
    a.incremental_alter_configs([res])[res].result(30)
    # A dynamic broker config: audited apart from topics.
    res = ConfigResource(ResourceType.BROKER, "0", incremental_configs=[
        ConfigEntry("num.io.threads", "4", incremental_operation=AlterConfigOpType.SET)])
    a.incremental_alter_configs([res])[res].result(30)
    # A group with a committed offset and no members, then deleted.
    produce(conf["bootstrap.servers"], topic, make_records(1, seed=1),
            config={k: v for k, v in conf.items() if k != "bootstrap.servers"})
    c = Consumer(dict(conf, **{"group.id": group, "auto.offset.reset": "earliest",
                               "enable.auto.commit": False}))
    c.subscribe([topic])
    m = None
    for _ in range(60):
        m = c.poll(0.5)
        if m is not None and not m.error():
            break
    assert m is not None and not m.error()
    c.commit(message=m, asynchronous=False)
    c.close()
    a.delete_consumer_groups([group])[group].result(30)

    changes = [e for e in audit_events(b) if e.get("event") == "change"]

    def outcomes(api: str, resource: str) -> list[str]:
        mine = [e for e in changes if e["api"] == api and e["resource"] == resource]
        for e in mine:
            assert e["principal"] == "User:alice" and e["listener"] == "SASL_SSL", e
            assert e["client"].startswith("127.0.0.1:"), e
        return [e["outcome"] for e in mine]

    assert outcomes("CreateTopics", topic) == ["success", "TOPIC_ALREADY_EXISTS"]
    assert outcomes("IncrementalAlterConfigs", topic) == ["success"]
    assert outcomes("IncrementalAlterConfigs", "0") == ["success"]
    assert [e["what"] for e in changes if e["resource"] == "0"] == ["broker config"]
    assert outcomes("DeleteGroups", group) == ["success"]
    assert all(e["what"] for e in changes)
    assert b.metric("kafscale_audit_events_total", 'event="change",outcome="success"') >= 3
    assert b.metric("kafscale_audit_events_total", 'event="change",outcome="TOPIC_ALREADY_EXISTS"') == 1
