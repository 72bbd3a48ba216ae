#![allow(clippy::unwrap_used)]
use super::*;
use crate::topic_config::TOPIC_CONFIGS;

#[test]
fn names_are_unique_and_defaults_fit_their_kind() {
    for (i, s) in SETTINGS.iter().enumerate() {
        assert!(
            SETTINGS[..i].iter().all(|o| o.name != s.name),
            "{} twice",
            s.name
        );
        assert!(find_fixed(s.name).is_none(), "{} is also fixed", s.name);
        assert!(!s.doc.is_empty() && !s.doc.ends_with('.'), "{}", s.name);
        if let Some(v) = s.default_value() {
            assert_eq!(s.parse(&v.to_string()), Ok(v), "{}", s.name);
        }
        match s.kind {
            Kind::Int { .. } | Kind::Long { .. } => {
                assert!(
                    matches!(s.default, DefaultValue::Int(_) | DefaultValue::Unset(_)),
                    "{}",
                    s.name
                )
            }
            Kind::Bool => assert!(matches!(s.default, DefaultValue::Bool(_)), "{}", s.name),
            Kind::OneOf(_) | Kind::Text(_) => {
                assert!(
                    matches!(s.default, DefaultValue::Text(_) | DefaultValue::Unset(_)),
                    "{}",
                    s.name
                )
            }
        }
    }
}

#[test]
fn message_max_bytes_is_kafkas_default() {
    assert_eq!(MESSAGE_MAX_BYTES.default_int(), 1_048_588);
    assert_eq!(crate::log::LogConfig::default().max_batch_bytes, 1_048_588);
}

#[test]
fn ranges_are_enforced_and_named() {
    let s = find("broker.session.timeout.ms").unwrap();
    assert_eq!(s.parse("1000"), Ok(Value::Int(1000)));
    let err = s.parse("999").unwrap_err();
    assert_eq!(
        err.to_string(),
        "broker.session.timeout.ms: expected an integer in [1000, 300000], got \"999\""
    );
    assert!(s.parse("ten").is_err());
    let err = find("flush.bytes").unwrap().parse("0").unwrap_err();
    assert!(err.to_string().contains("at least 1"), "{err}");
    assert_eq!(
        find("log.retention.ms").unwrap().parse("-5"),
        Ok(Value::Int(-5))
    );
    let format = find("log.format").unwrap();
    assert_eq!(format.parse("json"), Ok(Value::Text("json".into())));
    assert!(format
        .parse("xml")
        .unwrap_err()
        .to_string()
        .contains("text, json"));
    let b = find("ephemeral").unwrap();
    assert_eq!(b.parse("TRUE"), Ok(Value::Bool(true)));
    assert!(b.parse("yes").is_err());
    assert!(find("no.such.setting").is_none());
}

/// Scopes meet: every broker synonym of a topic config names a setting or a fixed config
/// (or a Kafka config KafScale has neither for, with a fixed topic default), and every
/// setting that provides a topic default is that config's synonym.
#[test]
fn topic_synonyms_resolve_in_the_registry() {
    let log = crate::log::LogConfig::default();
    for d in TOPIC_CONFIGS {
        let Some(synonym) = d.broker_synonym else {
            continue;
        };
        if let Some(s) = find(synonym) {
            assert_eq!(s.scope, Scope::TopicDefault(d.name), "{synonym}");
            assert_eq!(d.default_value(&log), s.default_text(), "{}", d.name);
        } else if let Some(f) = find_fixed(synonym) {
            assert_eq!(d.default_value(&log), f.value, "{}", d.name);
        } else {
            assert!(!d.follows_broker(), "{} follows {synonym}", d.name);
        }
    }
    for s in SETTINGS {
        if let Scope::TopicDefault(topic) = s.scope {
            let d = crate::topic_config::find(topic).unwrap();
            assert_eq!(d.broker_synonym, Some(s.name));
            assert!(d.follows_broker(), "{topic}");
        }
    }
}
