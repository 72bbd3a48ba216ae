"""`kafscale acl add|list|remove` against a broker that enforces ACLs: what the CLI adds,
confluent-kafka clients (SCRAM users on SASL_PLAINTEXT) are then allowed or denied by; the
CLI lists and removes it again; a user who is not a super user gets one clear
authorization error. The CLI runs as the operators do, over the PLAINTEXT listener whose
ANONYMOUS principal is a super user (see test_acl.py)."""

from __future__ import annotations

from pathlib import Path

from confluent_kafka import KafkaError

from clients import create_topic, unique
from harness import requires_broker
from test_acl import client_conf, produce_one, secured  # noqa: F401  (the broker fixture)
from test_cli import assert_clean_error, cli, cli_json

pytestmark = requires_broker

SCRAM_JAAS = ('org.apache.kafka.common.security.scram.ScramLoginModule required '
              'username="{user}" password="{user}-pw";')


def as_user(d: Path, user: str) -> Path:
    """A client config logging in as `user` on the SASL_PLAINTEXT listener."""
    f = d / f"{user}.properties"
    f.write_text("security.protocol=SASL_PLAINTEXT\nsasl.mechanism=SCRAM-SHA-256\n"
                 f"sasl.jaas.config={SCRAM_JAAS.format(user=user)}\n")
    return f


def test_an_acl_added_with_the_cli_is_enforced_listed_and_removed(secured):  # noqa: F811
    b = secured
    t = unique("cli-acl")
    create_topic(b.bootstrap, t, 1)
    alice, bob = client_conf(b, "alice"), client_conf(b, "bob")
    assert produce_one(alice, t).code() == KafkaError.TOPIC_AUTHORIZATION_FAILED

    added = cli(b, "acl", "add", "--principal", "User:alice", "--operation", "WRITE", "--topic", t)
    assert added.stdout.startswith("added 1 ACL\n") and "User:alice" in added.stdout
    assert produce_one(alice, t) is None
    assert produce_one(bob, t).code() == KafkaError.TOPIC_AUTHORIZATION_FAILED

    listed = cli_json(b, "acl", "list", "--topic", t)["acls"]
    assert listed == [{"principal": "User:alice", "host": "*", "operation": "WRITE", "permission": "ALLOW",
                       "resource_type": "TOPIC", "name": t, "pattern_type": "LITERAL"}]
    table = cli(b, "acl", "list", "--principal", "User:alice").stdout
    assert "PRINCIPAL" in table and t in table

    # A bare remove is refused rather than removing every ACL.
    bare = cli(b, "acl", "remove", check=False)
    assert bare.returncode != 0 and "--all" in bare.stderr
    removed = cli_json(b, "acl", "remove", "--principal", "User:alice", "--topic", t)["removed"]
    assert [r["name"] for r in removed] == [t]
    assert cli(b, "acl", "list", "--topic", t).stdout == "no ACLs\n"
    assert produce_one(alice, t).code() == KafkaError.TOPIC_AUTHORIZATION_FAILED


def test_a_user_who_is_not_a_super_user_gets_a_clear_authorization_error(secured, tmp_path):  # noqa: F811
    b = secured
    sasl = f"127.0.0.1:{b.listener_ports['SASL_PLAINTEXT']}"
    res = cli(None, "acl", "add", "--principal", "User:alice", "--operation", "ALL", "--cluster",
              "--bootstrap", sasl, "--command-config", str(as_user(tmp_path, "alice")), check=False)
    assert res.returncode == 1
    assert_clean_error(res, "CLUSTER_AUTHORIZATION_FAILED")
    res = cli(None, "acl", "list", "--bootstrap", sasl, "--command-config", str(as_user(tmp_path, "bob")),
              check=False)
    assert_clean_error(res, "CLUSTER_AUTHORIZATION_FAILED")
