"""Start-up and shutdown: bad configuration or storage is refused with a non-zero exit and
a message that says what is wrong; a good broker exits cleanly on SIGTERM."""

from __future__ import annotations

import socket

import pytest

from harness import BrokerFailed, free_port, requires_broker, run_serve_expecting_exit, tail

pytestmark = requires_broker


def assert_refused(res, *must_mention: str) -> None:
    out = res.stdout or ""
    assert res.returncode != 0, f"exit code 0, expected a refusal; output:\n{tail(out, 40)}"
    assert out.strip(), "refused without saying why"
    for word in must_mention:
        assert word.lower() in out.lower(), f"the message does not mention {word!r}:\n{tail(out, 40)}"
    assert "panicked at" not in out, f"refusal by panic, not by a clear message:\n{tail(out, 40)}"


def write(path, text):
    path.write_text(text)
    return path


@pytest.mark.parametrize(
    "toml, key",
    [
        ("frobnicate_level = 3\n", "frobnicate_level"),
        ('"log.frobnicate.ms" = 5\n', "frobnicate"),
        ('"num.partitions" = 2\n"mesage.max.bytes" = 1000\n', "mesage"),
    ],
)
def test_unknown_key_in_config_file(tmp_path, toml, key):
    cfg = write(tmp_path / "kafscale.toml", toml)
    res = run_serve_expecting_exit(tmp_path, ["--ephemeral", "--config", str(cfg)])
    assert_refused(res, key)


def test_wrong_type_in_config_file(tmp_path):
    cfg = write(tmp_path / "kafscale.toml", '"message.max.bytes" = "big"\n')
    assert_refused(run_serve_expecting_exit(tmp_path, ["--ephemeral", "--config", str(cfg)]), "message.max.bytes")


def test_missing_config_file(tmp_path):
    missing = tmp_path / "nope.toml"
    assert_refused(run_serve_expecting_exit(tmp_path, ["--ephemeral", "--config", str(missing)]), str(missing))


@pytest.mark.parametrize(
    "properties, mention",
    [
        (None, "nope.properties"),
        ("security.protocol=SASL_PLAINTEXT\nsasl.mechanism=PLAIN\nsasl.username=a\nsasl.password=b\n", "SASL_PLAINTEXT"),
        ("security.protocol=PLAINTEXT\nsasl.frobnicate=1\n", "sasl.frobnicate"),
    ],
    ids=["missing", "wrong-protocol", "unknown-key"],
)
def test_bad_inter_broker_client_config(tmp_path, properties, mention):
    props = tmp_path / "nope.properties"
    if properties is not None:
        props.write_text(properties)
    cfg = write(tmp_path / "kafscale.toml", f'"inter.broker.client.config" = "{props}"\n')
    res = run_serve_expecting_exit(tmp_path, ["--ephemeral", "--config", str(cfg)])
    assert_refused(res, "inter.broker.client.config", mention)


def test_data_dir_under_a_regular_file(tmp_path):
    blocker = write(tmp_path / "a-file", "not a directory\n")
    res = run_serve_expecting_exit(tmp_path, ["--data-dir", str(blocker / "data")])
    assert_refused(res, str(blocker))


@pytest.mark.parametrize("var, value, mention", [
    ("KAFSCALE_FLUSH_MS", "abc", "flush"),
    ("KAFSCALE_MESSAGE_MAX_BYTES", "-5", "message"),
    ("KAFSCALE_FROBNICATE", "1", "frobnicate"),
])
def test_bad_environment(tmp_path, var, value, mention):
    res = run_serve_expecting_exit(tmp_path, ["--ephemeral"], env={var: value})
    assert_refused(res, mention)


def test_unknown_flag(tmp_path):
    assert_refused(run_serve_expecting_exit(tmp_path, ["--ephemeral", "--no-such-flag"]), "no-such-flag")


def test_listen_port_in_use(tmp_path):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        port = s.getsockname()[1]
        res = run_serve_expecting_exit(tmp_path, ["--ephemeral", "--listen", f"127.0.0.1:{port}"])
    assert_refused(res, str(port))


def test_unreachable_metadata_store(tmp_path):
    port = free_port()  # nothing listens there
    url = f"etcd://127.0.0.1:{port}"
    res = run_serve_expecting_exit(tmp_path, ["--data-dir", str(tmp_path / "d"), "--metadata", url], timeout=90)
    assert_refused(res, url)


def test_refusal_does_not_print_the_etcd_password(tmp_path):
    port = free_port()  # nothing listens there
    url = f"etcd://alice:pw-Secret-42@127.0.0.1:{port}/prod"
    res = run_serve_expecting_exit(tmp_path, ["--data-dir", str(tmp_path / "d"), "--metadata", url], timeout=90)
    assert_refused(res, f"etcd://alice:***@127.0.0.1:{port}/prod")
    assert "pw-Secret-42" not in (res.stdout or "") + (res.stderr or "")


def test_unreachable_object_store(tmp_path):
    port = free_port()  # nothing listens there
    env = {"AWS_ENDPOINT_URL": f"http://127.0.0.1:{port}", "AWS_ALLOW_HTTP": "true", "AWS_REGION": "us-east-1",
           "AWS_ACCESS_KEY_ID": "e2e", "AWS_SECRET_ACCESS_KEY": "e2e-secret"}
    res = run_serve_expecting_exit(tmp_path, ["--data-dir", str(tmp_path / "d"), "--object-store", "s3://nobucket/p"],
                                   env=env, timeout=90)
    assert_refused(res, "s3://nobucket")


def test_unknown_storage_scheme(tmp_path):
    res = run_serve_expecting_exit(tmp_path, ["--data-dir", str(tmp_path / "d"), "--object-store", "bogus://x"])
    assert_refused(res, "bogus")


def test_data_dir_in_use_by_another_broker(broker_factory, tmp_path):
    first = broker_factory()
    second = broker_factory(start=False, data_dir=first.data_dir, name="second")
    with pytest.raises(BrokerFailed, match="exited with code"):
        second.start(timeout=30)
    assert str(first.data_dir) in second.log_text(), "the refusal should name the directory in use"
    assert first.alive()


def test_http_endpoints_and_clean_sigterm(broker):
    assert broker.http_get("/healthz")[0] == 200
    assert broker.http_get("/readyz")[0] == 200
    status, metrics = broker.http_get("/metrics")
    assert status == 200 and metrics.strip(), "GET /metrics should return metrics text"
    code = broker.stop(timeout=15)
    assert not broker.needed_sigkill, "no exit within 15s of SIGTERM"
    assert code == 0, f"exit code {code} after SIGTERM"
