"""The `kafscale` CLI over TLS and SASL (`--command-config`, Kafka's client properties), and
its `user` commands: users made over PLAINTEXT log in over SASL_SSL with SCRAM-SHA-512,
client certificates over SSL; what the CLI produced over secured listeners is read back by
confluent-kafka over PLAINTEXT. Wrong passwords and bad files fail with one clear line."""

from __future__ import annotations

from pathlib import Path

import pytest

from clients import consume, unique
from harness import requires_broker
from test_cli import assert_clean_error, cli, cli_json
from test_security import pki  # noqa: F401  (the certificates fixture)

pytestmark = requires_broker

SCRAM_JAAS = ('org.apache.kafka.common.security.scram.ScramLoginModule required '
              'username="{user}" password="{password}";')


@pytest.fixture
def secure(broker_factory, pki):  # noqa: F811
    config = f"""
"listener.security.protocol.map" = "PLAINTEXT:PLAINTEXT,SSL:SSL,SASL_SSL:SASL_SSL"
"ssl.keystore.location" = "{pki / 'server.pem'}"
"ssl.truststore.location" = "{pki / 'ca.crt'}"
"listener.name.ssl.ssl.client.auth" = "required"
"""
    return broker_factory(ephemeral=True, listeners=["SSL", "SASL_SSL"], config=config)


def addr(b, listener: str) -> str:
    return f"127.0.0.1:{b.listener_ports[listener]}"


def properties(d: Path, name: str, **props: str) -> Path:
    f = d / f"{name}.properties"
    f.write_text("# written by test_cli_security\n" +
                 "".join(f"{k.replace('_', '.')}={v}\n" for k, v in props.items()))
    return f


def sasl_ssl(d: Path, pki: Path, user: str, password: str) -> Path:  # noqa: F811
    return properties(d, f"sasl-{user}", security_protocol="SASL_SSL",
                      ssl_truststore_location=str(pki / "ca.crt"), sasl_mechanism="SCRAM-SHA-512",
                      sasl_jaas_config=SCRAM_JAAS.format(user=user, password=password))


def over(b, listener: str, config: Path, *args: str, **kw):
    """`kafscale ARGS` against one listener with a client config."""
    return cli(None, *args, "--bootstrap", addr(b, listener), "--command-config", str(config), **kw)


def produce_and_read_back(b, listener: str, config: Path, n: int) -> None:
    """The CLI creates a topic, produces `n` lines and consumes them over the listener;
    confluent-kafka reads the same records over PLAINTEXT."""
    topic = unique("cli-sec")
    over(b, listener, config, "topic", "create", topic, "--partitions", "2")
    assert topic in over(b, listener, config, "topic", "list").stdout
    lines = [f"line-{i}" for i in range(n)]
    over(b, listener, config, "produce", topic, input="".join(f"{x}\n" for x in lines).encode())
    got = over(b, listener, config, "consume", topic, "--from-beginning", "--max", str(n)).stdout
    assert sorted(got.splitlines()) == sorted(lines)
    read = consume(b.bootstrap, topic, partitions=2, expected=n)
    assert sorted(r.value.decode() for r in read) == sorted(lines)


def test_users_made_over_plaintext_log_in_over_sasl_ssl(secure, pki, tmp_path):  # noqa: F811
    b = secure
    pw = tmp_path / "alice.pw"
    pw.write_text("alice-secret\n")
    cli(b, "user", "create", "alice", "--password-file", str(pw), "--mechanism", "SCRAM-SHA-512",
        "--iterations", "8192")
    cli(b, "user", "create", "bob", "--password", "bob-secret", "--mechanism", "SCRAM-SHA-256")
    assert cli_json(b, "user", "list") == {"users": [
        {"user": "alice", "credentials": [{"mechanism": "SCRAM-SHA-512", "iterations": 8192}]},
        {"user": "bob", "credentials": [{"mechanism": "SCRAM-SHA-256", "iterations": 4096}]},
    ]}
    table = cli(b, "user", "describe", "alice").stdout.splitlines()
    assert table[0].split() == ["USER", "MECHANISM", "ITERATIONS"]
    assert table[1].split() == ["alice", "SCRAM-SHA-512", "8192"]

    produce_and_read_back(b, "SASL_SSL", sasl_ssl(tmp_path, pki, "alice", "alice-secret"), 50)
    # librdkafka's property names work as well as the JAAS line.
    bob = properties(tmp_path, "bob", security_protocol="SASL_SSL", ssl_ca_location=str(pki / "ca.crt"),
                     sasl_mechanism="SCRAM-SHA-256", sasl_username="bob", sasl_password="bob-secret")
    info = over(b, "SASL_SSL", bob, "cluster", "info", "--json").stdout
    assert '"port": %s' % b.listener_ports["SASL_SSL"] in info, info

    # Deleting the credential ends alice's logins.
    cli(b, "user", "delete", "alice")
    res = over(b, "SASL_SSL", sasl_ssl(tmp_path, pki, "alice", "alice-secret"), "topic", "list",
               check=False)
    assert_clean_error(res, "authentication of alice (SCRAM-SHA-512)", "SASL_AUTHENTICATION_FAILED")
    assert [u["user"] for u in cli_json(b, "user", "list")["users"]] == ["bob"]


def test_cli_over_ssl_with_a_client_certificate(secure, pki, tmp_path):  # noqa: F811
    b = secure
    mtls = properties(tmp_path, "mtls", security_protocol="SSL",
                      ssl_truststore_location=str(pki / "ca.crt"),
                      ssl_keystore_location=str(pki / "alice.pem"))
    produce_and_read_back(b, "SSL", mtls, 30)
    separate = properties(tmp_path, "separate", security_protocol="SSL",
                          ssl_ca_location=str(pki / "ca.crt"),
                          ssl_certificate_location=str(pki / "alice.crt"),
                          ssl_key_location=str(pki / "alice.key"))
    over(b, "SSL", separate, "topic", "list")
    # The broker requires a certificate: without one the command fails, cleanly.
    bare = properties(tmp_path, "bare", security_protocol="SSL",
                      ssl_truststore_location=str(pki / "ca.crt"))
    res = over(b, "SSL", bare, "topic", "list", check=False)
    assert_clean_error(res, addr(b, "SSL"))
    # A trust store without the brokers' CA refuses the broker.
    stranger = properties(tmp_path, "stranger", security_protocol="SSL",
                          ssl_truststore_location=str(pki / "stranger-ca.crt"),
                          ssl_keystore_location=str(pki / "alice.pem"))
    assert_clean_error(over(b, "SSL", stranger, "topic", "list", check=False),
                       "TLS handshake failed", "UnknownIssuer")


def test_a_wrong_password_is_one_clear_error(secure, pki, tmp_path):  # noqa: F811
    b = secure
    cli(b, "user", "create", "carol", "--password", "right", "--mechanism", "SCRAM-SHA-512")
    res = over(b, "SASL_SSL", sasl_ssl(tmp_path, pki, "carol", "wrong"), "topic", "list", check=False)
    assert_clean_error(res, "authentication of carol (SCRAM-SHA-512)", "SASL_AUTHENTICATION_FAILED")
    # The right one works on the same broker afterwards.
    over(b, "SASL_SSL", sasl_ssl(tmp_path, pki, "carol", "right"), "topic", "list")


def test_bad_client_configs_are_one_clear_error(secure, pki, tmp_path):  # noqa: F811
    b = secure
    typo = properties(tmp_path, "typo", security_protocol="SASL_SSL", sasl_mechansim="PLAIN")
    assert_clean_error(over(b, "SASL_SSL", typo, "topic", "list", check=False),
                       "unknown client property sasl.mechansim")
    # SSL settings with a protocol that would ignore them.
    forgot = properties(tmp_path, "forgot", ssl_truststore_location=str(pki / "ca.crt"))
    assert_clean_error(over(b, "SSL", forgot, "topic", "list", check=False),
                       "ssl.truststore.location: needs security.protocol SSL or SASL_SSL")
    assert_clean_error(cli(b, "topic", "list", "--command-config", str(tmp_path / "absent"),
                           check=False), "cannot read", "absent")
    assert_clean_error(cli(b, "user", "create", "x", "--password", "p", "--iterations", "10",
                           check=False), "iterations must be in [4096, 16384]")
