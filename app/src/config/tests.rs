#![allow(clippy::unwrap_used)]
use super::*;
use kafscale_core::settings::{self, Section, SETTINGS};

fn env(vars: &[(&str, &str)]) -> Env {
    let vars: Vec<(String, String)> = vars
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    // A prefix no real process uses, filled from the given pairs only.
    Env::prefixed("KSTEST_").filter_map(move |k| {
        let k = k.as_str().to_owned();
        vars.iter()
            .any(|(name, _)| name.eq_ignore_ascii_case(&k))
            .then(|| k.into())
    })
}

#[test]
fn layers_override_in_order() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("k.toml");
    std::fs::write(
        &file,
        "flush.ms = 5\n\"num.partitions\" = 3\nephemeral = true\n\"produce.buffer.max.bytes\" = 1048576\n",
    )
    .unwrap();
    let mut flags = BTreeMap::new();
    flags.insert("flush.ms".into(), serde_json::json!(9));
    let c = load(Some(&file), env(&[]), flags).unwrap();
    assert_eq!(c.log.flush_ms, 9);
    assert_eq!(c.log.max_buffered_bytes, 1 << 20);
    assert_eq!(c.num_partitions, 3);
    assert_eq!(c.object_store_url, "memory://");
}

#[test]
fn unknown_keys_and_bad_values_are_rejected() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("k.toml");
    std::fs::write(&file, "flush.mss = 5\n").unwrap();
    let err = load(Some(&file), env(&[]), BTreeMap::new()).unwrap_err();
    assert!(err.to_string().contains("flush.mss"), "{err}");
    let mut flags = BTreeMap::new();
    flags.insert("flush.ms".into(), serde_json::json!("abc"));
    let err = load(None, env(&[]), flags).unwrap_err();
    assert!(err.to_string().contains("flush.ms"), "{err}");
    let mut flags = BTreeMap::new();
    flags.insert("listen".into(), serde_json::json!("nonsense"));
    assert!(load(None, env(&[]), flags).is_err());
    assert!(load(
        Some(Path::new("/nonexistent/k.toml")),
        env(&[]),
        BTreeMap::new()
    )
    .is_err());
}

#[test]
fn defaults_use_the_data_dir() {
    let c = load(None, env(&[]), BTreeMap::new()).unwrap();
    assert!(c.object_store_url.starts_with("file://"));
    assert!(c.object_store_url.ends_with("kafscale-data/objects"));
    assert!(c.metadata_url.ends_with("kafscale-data/metadata"));
    assert_eq!(c.listeners.len(), 1);
    assert_eq!(c.listeners[0].name, "PLAINTEXT");
    assert_eq!(c.listeners[0].bind.port(), 9092);
    assert_eq!(c.http_listen.port(), 9093);
    assert!(c.auto_create_topics);
}

fn flags(pairs: &[(&str, serde_json::Value)]) -> BTreeMap<String, serde_json::Value> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.clone()))
        .collect()
}

fn load_flags(pairs: &[(&str, serde_json::Value)]) -> Result<Config, ConfigError> {
    let mut all = flags(&[("ephemeral", true.into())]);
    all.extend(flags(pairs));
    load(None, env(&[]), all)
}

#[test]
fn defaults_come_from_the_registry() {
    let c = load_flags(&[]).unwrap();
    let log = LogConfig::default();
    assert_eq!(c.log.max_batch_bytes, 1_048_588);
    assert_eq!(c.log.max_batch_bytes, log.max_batch_bytes);
    assert_eq!(c.log.flush_bytes, log.flush_bytes);
    assert_eq!(c.log.default_retention_ms, log.default_retention_ms);
    assert_eq!(c.log.segment_bytes, log.segment_bytes);
    assert_eq!(c.log.producer_expiration_ms, log.producer_expiration_ms);
    let cluster = ClusterConfig::default();
    assert_eq!(c.cluster.lease_ttl, cluster.lease_ttl);
    assert_eq!(c.cluster.max_moves, cluster.max_moves);
    assert_eq!(c.cluster.broker_id, None);
    assert_eq!(c.max_request_bytes, 100 << 20);
    assert_eq!(c.num_partitions, 1);
    assert_eq!(c.group_initial_rebalance_delay_ms, 3_000);
    assert_eq!(c.object_store_retry.attempts, 3);
    assert_eq!(c.log_format, LogFormat::Text);
    // Every documented default is what an empty configuration yields.
    for s in SETTINGS {
        if let (Some(v), false) = (s.default_value(), c.values.is_set(s)) {
            assert_eq!(c.values.effective(s), Some(v), "{}", s.name);
        }
    }
}

#[test]
fn every_setting_is_accepted_with_its_default() {
    for s in SETTINGS {
        let Some(v) = s.default_value() else { continue };
        if s.name == "ephemeral" || s.name == "data.dir" {
            continue; // tied to each other: checked below
        }
        let c = load_flags(&[(s.name, v.to_string().into())]);
        assert!(c.is_ok(), "{}: {:?}", s.name, c.err());
    }
    assert!(load(None, env(&[]), flags(&[("data.dir", "d".into())])).is_ok());
}

#[test]
fn ranges_are_checked_with_the_key_and_range_named() {
    for (key, value, expected) in [
        (
            "broker.session.timeout.ms",
            "999",
            "an integer in [1000, 300000]",
        ),
        ("flush.bytes", "0", "an integer of at least 1"),
        ("group.initial.rebalance.delay.ms", "300001", "[0, 300000]"),
        ("log.segment.bytes", "4294967296", "[1, 4294967295]"),
        ("num.partitions", "0", "[1, 10000]"),
        ("broker.id", "-2", "[-1, 2147483647]"),
        ("log.format", "xml", "one of text, json"),
        ("auto.create.topics.enable", "maybe", "true or false"),
    ] {
        let err = load_flags(&[(key, value.into())]).unwrap_err().to_string();
        assert!(err.contains(key) && err.contains(expected), "{err}");
    }
    let err = load_flags(&[("broker.rack", serde_json::json!(["a", "b"]))]).unwrap_err();
    assert!(
        err.to_string()
            .contains("broker.rack: expected a rack name"),
        "{err}"
    );
    let err = load_flags(&[
        ("message.max.bytes", 2_000.into()),
        ("socket.request.max.bytes", 1_000.into()),
    ])
    .unwrap_err();
    assert!(
        err.to_string().contains("socket.request.max.bytes"),
        "{err}"
    );
    let err = load_flags(&[("listen", "0.0.0.0:9092".into())]).unwrap_err();
    assert!(err.to_string().contains("advertised.listener"), "{err}");
    let c = load_flags(&[
        ("listen", "0.0.0.0:9092".into()),
        ("advertised.listener", "[::1]:19092".into()),
        ("broker.id", (-1).into()),
        ("log.retention.ms", (-1).into()),
    ])
    .unwrap();
    assert_eq!(c.listeners[0].advertised, Some(("::1".into(), 19092)));
    assert_eq!(c.cluster.broker_id, None);
    assert_eq!(c.log.default_retention_ms, -1);
}

#[test]
fn unknown_keys_are_rejected_in_every_layer() {
    let err = load_flags(&[("mesage.max.bytes", 5.into())]).unwrap_err();
    assert!(err.to_string().contains("mesage.max.bytes"), "{err}");
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("k.toml");
    std::fs::write(&file, "frobnicate_level = 3\n[log]\nflush = 1\n").unwrap();
    let err = load(Some(&file), env(&[]), BTreeMap::new()).unwrap_err();
    assert!(err.to_string().contains("frobnicate_level"), "{err}");
    // Settings of every section are known; topic configs are not broker settings.
    for section in Section::ALL {
        assert!(SETTINGS.iter().any(|s| s.section == section), "{section:?}");
    }
    assert!(settings::find("retention.ms").is_none());
    let err = load_flags(&[("retention.ms", 5.into())]).unwrap_err();
    assert!(err.to_string().contains("unknown setting"), "{err}");
}

#[test]
fn ephemeral_excludes_the_store_settings() {
    for key in ["data.dir", "object.store", "metadata"] {
        let err = load_flags(&[(key, "x".into())]).unwrap_err();
        assert!(err.to_string().contains("ephemeral"), "{err}");
    }
    let c = load(
        None,
        env(&[]),
        flags(&[
            ("object.store", "memory://".into()),
            ("data.dir", "/d".into()),
        ]),
    )
    .unwrap();
    assert_eq!(c.object_store_url, "memory://");
    assert_eq!(c.metadata_url, "embedded:///d/metadata");
}

#[test]
fn listeners_take_kafkas_names_and_overrides() {
    let c = load_flags(&[
        (
            "listeners",
            "PLAINTEXT://127.0.0.1:9092, sasl_ssl://:9094,INTERNAL://127.0.0.1:9095".into(),
        ),
        (
            "advertised.listeners",
            "SASL_SSL://kafka.example.com:9094".into(),
        ),
        (
            "listener.security.protocol.map",
            "PLAINTEXT:PLAINTEXT,SASL_SSL:SASL_SSL,INTERNAL:SSL".into(),
        ),
        ("ssl.keystore.location", "/etc/kafscale/broker.pem".into()),
        ("listener.name.internal.ssl.client.auth", "required".into()),
        (
            "listener.name.internal.ssl.truststore.location",
            "/etc/kafscale/ca.pem".into(),
        ),
        (
            "listener.name.sasl_ssl.sasl.enabled.mechanisms",
            "SCRAM-SHA-512".into(),
        ),
    ])
    .unwrap();
    let names: Vec<_> = c.listeners.iter().map(|l| l.name.as_str()).collect();
    assert_eq!(names, ["PLAINTEXT", "SASL_SSL", "INTERNAL"]);
    let [plain, sasl, internal] = &c.listeners[..] else {
        panic!("three listeners")
    };
    assert!(plain.tls.is_none() && plain.sasl_mechanisms.is_empty());
    assert!(sasl.bind.ip().is_unspecified());
    assert_eq!(sasl.advertised, Some(("kafka.example.com".into(), 9094)));
    assert_eq!(
        sasl.sasl_mechanisms,
        [crate::security::SaslMechanism::ScramSha512]
    );
    assert_eq!(
        sasl.tls.as_ref().unwrap().client_auth,
        crate::security::ClientAuth::None
    );
    let tls = internal.tls.as_ref().unwrap();
    assert_eq!(tls.client_auth, crate::security::ClientAuth::Required);
    assert_eq!(
        tls.truststore,
        Some(super::Pem::File("/etc/kafscale/ca.pem".into()))
    );
    assert!(internal.sasl_mechanisms.is_empty());
}

#[test]
fn listener_mistakes_are_refused_with_the_reason() {
    let cases: &[(&[(&str, &str)], &str)] = &[
        (
            &[(
                "listeners",
                "PLAINTEXT://127.0.0.1:9092,PLAINTEXT://127.0.0.1:9093",
            )],
            "named twice",
        ),
        (&[("listeners", "127.0.0.1:9092")], "NAME://HOST:PORT"),
        (&[("listeners", "FOO://127.0.0.1:9092")], "no protocol"),
        (
            &[("listeners", "SSL://127.0.0.1:9092")],
            "ssl.keystore.location",
        ),
        (&[("listeners", "SASL_SSL://:9092")], "advertised.listeners"),
        (
            &[
                ("listeners", "PLAINTEXT://127.0.0.1:9092"),
                ("listen", "127.0.0.1:9092"),
            ],
            "cannot be combined",
        ),
        (
            &[
                ("listeners", "PLAINTEXT://127.0.0.1:9092"),
                ("advertised.listeners", "SSL://h:1"),
            ],
            "not one of the listeners",
        ),
        (
            &[("listener.name.ssl.ssl.client.auth", "required")],
            "not one of the listeners",
        ),
        (
            &[("listener.name.ssl.no.such.setting", "x")],
            "unknown setting",
        ),
        (
            &[("listener.security.protocol.map", "PLAINTEXT:TLS")],
            "unknown protocol",
        ),
        (
            &[
                ("listeners", "SSL://127.0.0.1:9092"),
                ("ssl.keystore.location", "k"),
                ("ssl.client.auth", "required"),
            ],
            "trust store",
        ),
        (
            &[
                ("listeners", "SASL_PLAINTEXT://127.0.0.1:9092"),
                ("sasl.enabled.mechanisms", "GSSAPI"),
            ],
            "not supported",
        ),
        (
            &[
                ("listeners", "SSL://127.0.0.1:9092"),
                ("ssl.keystore.location", "k"),
                ("ssl.enabled.protocols", "TLSv1.1"),
            ],
            "not supported",
        ),
    ];
    for (pairs, expected) in cases {
        let flags: Vec<(&str, serde_json::Value)> =
            pairs.iter().map(|(k, v)| (*k, (*v).into())).collect();
        let err = load_flags(&flags).unwrap_err().to_string();
        assert!(err.contains(expected), "{pairs:?}: {err}");
    }
}

#[test]
fn listener_overrides_come_from_the_environment_too() {
    // KAFSCALE_LISTENER_NAME_SASL_PLAINTEXT_SASL_ENABLED_MECHANISMS reaches the parser with
    // every underscore a dot; the listener name is what is left of the longest setting.
    let c = load_flags(&[
        ("listeners", "SASL_PLAINTEXT://127.0.0.1:9092".into()),
        (
            "listener.name.sasl.plaintext.sasl.enabled.mechanisms",
            "PLAIN".into(),
        ),
    ])
    .unwrap();
    assert_eq!(
        c.listeners[0].sasl_mechanisms,
        [crate::security::SaslMechanism::Plain]
    );
}
