//! DescribeConfigs and AlterConfigs through the wire, every advertised version, against an
//! in-process broker: topic and broker configs, their sources, synonyms and errors.
#![allow(clippy::unwrap_used)]

mod common;

use kafka_protocol::messages::*;

use common::admin::*;
use common::*;

async fn topic_configs(c: &mut Client, topic: &str) -> Vec<(String, String, i8)> {
    let resp: DescribeConfigsResponse = c
        .call(
            ApiKey::DescribeConfigs,
            4,
            &describe_req(2, topic, None, false, false),
        )
        .await;
    assert_eq!(resp.results[0].error_code, 0);
    resp.results[0]
        .configs
        .iter()
        .map(|c| {
            (
                c.name.to_string(),
                c.value.as_ref().unwrap().to_string(),
                c.config_source,
            )
        })
        .collect()
}

fn value_of(configs: &[(String, String, i8)], name: &str) -> (String, i8) {
    let (_, v, src) = configs.iter().find(|(n, _, _)| n == name).unwrap();
    (v.clone(), *src)
}

#[tokio::test]
async fn describe_configs_every_version() {
    let broker = start(&[("log.retention.bytes", 123_456.into())]).await;
    let mut c = Client::connect(broker.kafka_addr).await;
    assert_eq!(
        create_with_configs(&mut c, "dc", 1, &[("retention.ms", "1000")])
            .await
            .0,
        0
    );
    for v in 1..=4i16 {
        let resp: DescribeConfigsResponse = c
            .call(
                ApiKey::DescribeConfigs,
                v,
                &describe_req(2, "dc", None, true, v >= 3),
            )
            .await;
        let r = &resp.results[0];
        assert_eq!(
            (r.error_code, r.resource_type, r.resource_name.as_str()),
            (0, 2, "dc"),
            "v{v}"
        );
        let retention = config(r, "retention.ms");
        assert_eq!(retention.value.as_deref(), Some("1000"));
        assert_eq!(retention.config_source, 1, "DYNAMIC_TOPIC_CONFIG (v{v})");
        assert!(!retention.read_only);
        let names: Vec<&str> = retention.synonyms.iter().map(|s| s.name.as_str()).collect();
        assert_eq!(names, ["retention.ms", "log.retention.ms"], "v{v}");
        let policy = config(r, "cleanup.policy");
        assert_eq!(policy.value.as_deref(), Some("delete"));
        assert_eq!(policy.config_source, 5, "DEFAULT_CONFIG (v{v})");
        // The broker's log.retention.bytes provides the topic default.
        let bytes = config(r, "retention.bytes");
        assert_eq!(bytes.value.as_deref(), Some("123456"));
        assert_eq!(bytes.config_source, 4, "STATIC_BROKER_CONFIG (v{v})");
        assert_eq!(
            config(r, "max.message.bytes").value.as_deref(),
            Some("1048588")
        );
        if v >= 3 {
            assert_eq!(retention.config_type, 5, "LONG");
            assert_eq!(policy.config_type, 7, "LIST");
            assert!(retention
                .documentation
                .as_ref()
                .is_some_and(|d| !d.is_empty()));
        }
        // An empty key list means every config.
        let resp: DescribeConfigsResponse = c
            .call(
                ApiKey::DescribeConfigs,
                v,
                &describe_req(2, "dc", Some(&[]), false, false),
            )
            .await;
        assert!(resp.results[0].configs.len() > 20, "v{v}");
        // Only the asked-for keys, no synonyms unless asked.
        let resp: DescribeConfigsResponse = c
            .call(
                ApiKey::DescribeConfigs,
                v,
                &describe_req(
                    2,
                    "dc",
                    Some(&["retention.ms", "segment.bytes"]),
                    false,
                    false,
                ),
            )
            .await;
        let got: Vec<&str> = resp.results[0]
            .configs
            .iter()
            .map(|c| c.name.as_str())
            .collect();
        assert_eq!(got, ["retention.ms", "segment.bytes"], "v{v}");
        assert!(resp.results[0]
            .configs
            .iter()
            .all(|c| c.synonyms.is_empty()));
        if v >= 3 {
            assert!(resp.results[0]
                .configs
                .iter()
                .all(|c| c.documentation.is_none()));
        }
        // The broker: read-only values of the running configuration.
        for id in ["0", ""] {
            let resp: DescribeConfigsResponse = c
                .call(
                    ApiKey::DescribeConfigs,
                    v,
                    &describe_req(4, id, None, false, false),
                )
                .await;
            let r = &resp.results[0];
            assert_eq!(r.error_code, 0, "v{v}");
            let m = config(r, "message.max.bytes");
            assert_eq!(m.value.as_deref(), Some("1048588"));
            assert!(m.read_only);
            assert_eq!(m.config_source, 5);
            let lrb = config(r, "log.retention.bytes");
            assert_eq!(lrb.value.as_deref(), Some("123456"));
            assert_eq!(lrb.config_source, 4);
            // Every described setting of the registry, and Kafka's fixed ones.
            let settings = kafscale_core::settings::SETTINGS
                .iter()
                .filter(|s| s.described);
            for name in settings.map(|s| s.name).chain(
                kafscale_core::settings::FIXED_CONFIGS
                    .iter()
                    .map(|f| f.name),
            ) {
                config(r, name);
            }
        }
        // Errors per resource.
        let mut req = describe_req(2, "missing", None, false, false);
        req.resources
            .push(describe_req(4, "7", None, false, false).resources.remove(0));
        req.resources.push(
            describe_req(99, "x", None, false, false)
                .resources
                .remove(0),
        );
        let resp: DescribeConfigsResponse = c.call(ApiKey::DescribeConfigs, v, &req).await;
        let codes: Vec<i16> = resp.results.iter().map(|r| r.error_code).collect();
        assert_eq!(codes, [3, 42, 42], "v{v}");
        assert!(resp.results.iter().all(|r| r.error_message.is_some()));
    }
    broker.shutdown().await;
}

fn alter_req(
    resource_type: i8,
    name: &str,
    configs: &[(&str, Option<&str>)],
    validate_only: bool,
) -> AlterConfigsRequest {
    let mut r = alter_configs_request::AlterConfigsResource::default();
    r.resource_type = resource_type;
    r.resource_name = s(name);
    r.configs = configs
        .iter()
        .map(|(k, v)| {
            let mut cfg = alter_configs_request::AlterableConfig::default();
            cfg.name = s(k);
            cfg.value = v.map(s);
            cfg
        })
        .collect();
    let mut req = AlterConfigsRequest::default();
    req.resources = vec![r];
    req.validate_only = validate_only;
    req
}

#[tokio::test]
async fn alter_configs_every_version() {
    let broker = start(&[]).await;
    let mut c = Client::connect(broker.kafka_addr).await;
    for v in 0..=2i16 {
        let topic = format!("ac-v{v}");
        assert_eq!(
            create_with_configs(&mut c, &topic, 1, &[("segment.ms", "5000")])
                .await
                .0,
            0
        );
        // Replace: segment.ms goes back to its default, retention.ms is set.
        let resp: AlterConfigsResponse = c
            .call(
                ApiKey::AlterConfigs,
                v,
                &alter_req(
                    2,
                    &topic,
                    &[
                        ("retention.ms", Some("60000")),
                        ("max.message.bytes", Some("2000")),
                    ],
                    false,
                ),
            )
            .await;
        assert_eq!(
            resp.responses[0].error_code, 0,
            "v{v}: {:?}",
            resp.responses[0].error_message
        );
        assert_eq!(resp.responses[0].resource_name.as_str(), topic);
        let record = broker.ctx.log.topic(&topic).unwrap();
        assert_eq!(
            record.configs.get("retention.ms").map(String::as_str),
            Some("60000")
        );
        assert!(!record.configs.contains_key("segment.ms"));
        let described = topic_configs(&mut c, &topic).await;
        assert_eq!(value_of(&described, "retention.ms"), ("60000".into(), 1));
        assert_eq!(value_of(&described, "segment.ms"), ("604800000".into(), 5));
        // validate_only changes nothing; invalid values and names are INVALID_CONFIG.
        let resp: AlterConfigsResponse = c
            .call(
                ApiKey::AlterConfigs,
                v,
                &alter_req(2, &topic, &[("retention.ms", Some("1"))], true),
            )
            .await;
        assert_eq!(resp.responses[0].error_code, 0);
        assert_eq!(
            broker
                .ctx
                .log
                .topic(&topic)
                .unwrap()
                .configs
                .get("retention.ms")
                .map(String::as_str),
            Some("60000")
        );
        for (k, val, needle) in [
            ("retention.ms", "-5", "retention.ms"),
            ("cleanup.policy", "shred", "cleanup.policy"),
            ("no.such.thing", "1", "unknown topic config"),
        ] {
            let resp: AlterConfigsResponse = c
                .call(
                    ApiKey::AlterConfigs,
                    v,
                    &alter_req(2, &topic, &[(k, Some(val))], false),
                )
                .await;
            let r = &resp.responses[0];
            assert_eq!(r.error_code, 40, "v{v} {k}={val}");
            let msg = r.error_message.as_ref().unwrap().to_string();
            assert!(msg.contains(needle), "{msg}");
        }
        assert_eq!(broker.ctx.log.topic(&topic).unwrap().configs.len(), 2);
        // Broker configs are read-only; unknown topics are unknown.
        let resp: AlterConfigsResponse = c
            .call(
                ApiKey::AlterConfigs,
                v,
                &alter_req(4, "0", &[("message.max.bytes", Some("5"))], false),
            )
            .await;
        assert_eq!(resp.responses[0].error_code, 42);
        assert!(resp.responses[0]
            .error_message
            .as_ref()
            .unwrap()
            .contains("read-only"));
        let resp: AlterConfigsResponse = c
            .call(
                ApiKey::AlterConfigs,
                v,
                &alter_req(2, "nope", &[("retention.ms", Some("5"))], false),
            )
            .await;
        assert_eq!(resp.responses[0].error_code, 3);
    }
    broker.shutdown().await;
}
