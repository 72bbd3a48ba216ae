//! The broker resource of AlterConfigs and IncrementalAlterConfigs: Kafka's dynamic broker
//! configs (kept in the metadata store, shown by DescribeConfigs, recorded only) are
//! accepted per broker and as every broker's default; KafScale's own settings are read-only.
#![allow(clippy::unwrap_used)]

mod common;

use kafka_protocol::messages::*;

use common::admin::*;
use common::*;

fn broker_alter(name: &str, configs: &[(&str, &str)], validate_only: bool) -> AlterConfigsRequest {
    let mut r = alter_configs_request::AlterConfigsResource::default();
    r.resource_type = 4;
    r.resource_name = s(name);
    r.configs = configs
        .iter()
        .map(|(k, v)| {
            let mut c = alter_configs_request::AlterableConfig::default();
            c.name = s(k);
            c.value = Some(s(v));
            c
        })
        .collect();
    let mut req = AlterConfigsRequest::default();
    req.resources = vec![r];
    req.validate_only = validate_only;
    req
}

fn broker_incremental(name: &str, ops: &[(&str, i8, &str)]) -> IncrementalAlterConfigsRequest {
    let mut r = incremental_alter_configs_request::AlterConfigsResource::default();
    r.resource_type = 4;
    r.resource_name = s(name);
    r.configs = ops
        .iter()
        .map(|(k, op, v)| {
            let mut c = incremental_alter_configs_request::AlterableConfig::default();
            c.name = s(k);
            c.config_operation = *op;
            c.value = Some(s(v));
            c
        })
        .collect();
    let mut req = IncrementalAlterConfigsRequest::default();
    req.resources = vec![r];
    req
}

/// (value, source, read-only) of a broker config, with its synonyms' sources.
async fn described(c: &mut Client, name: &str) -> (String, i8, bool, Vec<i8>) {
    let resp: DescribeConfigsResponse = c
        .call(
            ApiKey::DescribeConfigs,
            4,
            &describe_req(4, "0", Some(&[name]), true, true),
        )
        .await;
    let r = &resp.results[0];
    assert_eq!(r.error_code, 0, "{:?}", r.error_message);
    let e = config(r, name);
    assert!(
        e.documentation
            .as_ref()
            .is_some_and(|d| d.starts_with("recorded only")),
        "{:?}",
        e.documentation
    );
    (
        e.value.as_ref().unwrap().to_string(),
        e.config_source,
        e.read_only,
        e.synonyms.iter().map(|s| s.source).collect(),
    )
}

#[tokio::test]
async fn dynamic_broker_configs_are_kept_and_described() {
    let broker = start(&[]).await;
    let mut c = Client::connect(broker.kafka_addr).await;
    let relogin = "sasl.kerberos.min.time.before.relogin";
    assert_eq!(
        described(&mut c, relogin).await,
        ("60000".into(), 5, false, vec![5])
    );
    let mut before = "60000".to_string();
    for v in 0..=2i16 {
        // What librdkafka's test 0081 sends; validate_only writes nothing.
        let value = format!("5800{v}");
        for validate_only in [true, false] {
            let resp: AlterConfigsResponse = c
                .call(
                    ApiKey::AlterConfigs,
                    v,
                    &broker_alter("0", &[(relogin, &value)], validate_only),
                )
                .await;
            assert_eq!(resp.responses[0].error_code, 0, "v{v}");
            let now = described(&mut c, relogin).await;
            if validate_only {
                assert_eq!(now.0, before);
            } else {
                assert_eq!(now, (value.clone(), 2, false, vec![2, 5]));
            }
        }
        before = value;
    }
    // Every broker's default, under this broker's own value.
    let resp: IncrementalAlterConfigsResponse = c
        .call(
            ApiKey::IncrementalAlterConfigs,
            1,
            &broker_incremental("", &[(relogin, 0, "59000"), ("background.threads", 0, "9")]),
        )
        .await;
    assert_eq!(resp.responses[0].error_code, 0);
    assert_eq!(
        described(&mut c, relogin).await,
        ("58002".into(), 2, false, vec![2, 3, 5])
    );
    assert_eq!(
        described(&mut c, "background.threads").await,
        ("9".into(), 3, false, vec![3, 5])
    );
    let resp: IncrementalAlterConfigsResponse = c
        .call(
            ApiKey::IncrementalAlterConfigs,
            1,
            &broker_incremental("0", &[(relogin, 1, "")]),
        )
        .await;
    assert_eq!(resp.responses[0].error_code, 0);
    assert_eq!(described(&mut c, relogin).await.0, "59000");
    // Read-only settings, unknown names, bad values and other brokers: INVALID_REQUEST.
    for (name, config, value, needle) in [
        ("0", "num.partitions", "3", "read-only"),
        ("0", "log.cleanup.policy", "compact", "read-only"),
        ("0", "no.such.config", "1", "not a broker config"),
        ("0", "background.threads", "0", "background.threads"),
        ("7", relogin, "1", "unexpected broker id"),
    ] {
        let resp: AlterConfigsResponse = c
            .call(
                ApiKey::AlterConfigs,
                2,
                &broker_alter(name, &[(config, value)], false),
            )
            .await;
        let r = &resp.responses[0];
        assert_eq!(r.error_code, 42, "{config}");
        let msg = r.error_message.as_ref().unwrap().to_string();
        assert!(msg.contains(needle), "{msg}");
    }
    broker.shutdown().await;
}
