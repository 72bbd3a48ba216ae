//! IncrementalAlterConfigs through the wire, every advertised version, against an in-process
//! broker, and a topic config (max.message.bytes) that takes effect when changed.
#![allow(clippy::unwrap_used)]

mod common;

use kafka_protocol::messages::*;
use kafka_protocol::records::Compression;

use common::admin::*;
use common::*;

fn incremental_req(
    resource_type: i8,
    name: &str,
    ops: &[(&str, i8, Option<&str>)],
    validate_only: bool,
) -> IncrementalAlterConfigsRequest {
    let mut r = incremental_alter_configs_request::AlterConfigsResource::default();
    r.resource_type = resource_type;
    r.resource_name = s(name);
    r.configs = ops
        .iter()
        .map(|(k, op, v)| {
            let mut cfg = incremental_alter_configs_request::AlterableConfig::default();
            cfg.name = s(k);
            cfg.config_operation = *op;
            cfg.value = v.map(s);
            cfg
        })
        .collect();
    let mut req = IncrementalAlterConfigsRequest::default();
    req.resources = vec![r];
    req.validate_only = validate_only;
    req
}

#[tokio::test]
async fn incremental_alter_configs_every_version() {
    let broker = start(&[]).await;
    let mut c = Client::connect(broker.kafka_addr).await;
    for v in 0..=1i16 {
        let topic = format!("iac-v{v}");
        assert_eq!(
            create_with_configs(
                &mut c,
                &topic,
                1,
                &[("segment.ms", "5000"), ("retention.bytes", "1000")]
            )
            .await
            .0,
            0
        );
        let call = |ops: Vec<(&'static str, i8, Option<&'static str>)>, validate_only: bool| {
            incremental_req(2, &topic, &ops, validate_only)
        };
        // SET and DELETE together; other configs stay.
        let resp: IncrementalAlterConfigsResponse = c
            .call(
                ApiKey::IncrementalAlterConfigs,
                v,
                &call(
                    vec![("retention.ms", 0, Some("120000")), ("segment.ms", 1, None)],
                    false,
                ),
            )
            .await;
        assert_eq!(
            resp.responses[0].error_code, 0,
            "{:?}",
            resp.responses[0].error_message
        );
        let configs = broker.ctx.log.topic(&topic).unwrap().configs;
        assert_eq!(
            configs.get("retention.ms").map(String::as_str),
            Some("120000")
        );
        assert_eq!(
            configs.get("retention.bytes").map(String::as_str),
            Some("1000")
        );
        assert!(!configs.contains_key("segment.ms"));
        // APPEND to a list config (already there: kept once).
        let resp: IncrementalAlterConfigsResponse = c
            .call(
                ApiKey::IncrementalAlterConfigs,
                v,
                &call(vec![("cleanup.policy", 2, Some("delete"))], false),
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
                .get("cleanup.policy")
                .map(String::as_str),
            Some("delete")
        );
        // Errors: APPEND on a non-list, compact, unknown name, bad op, duplicate, null SET.
        for (ops, code, needle) in [
            (
                vec![("retention.ms", 2, Some("5"))],
                40,
                "only to list configs",
            ),
            (
                vec![("cleanup.policy", 2, Some("shred"))],
                40,
                "cleanup.policy",
            ),
            (
                vec![("cleanup.policy", 3, Some("delete"))],
                40,
                "at least one value",
            ),
            (
                vec![("bogus.config", 0, Some("1"))],
                40,
                "unknown topic config",
            ),
            (
                vec![("retention.ms", 9, Some("1"))],
                42,
                "unknown operation",
            ),
            (
                vec![("retention.ms", 0, Some("1")), ("retention.ms", 1, None)],
                42,
                "more than once",
            ),
            (vec![("retention.ms", 0, None)], 42, "null"),
        ] {
            let resp: IncrementalAlterConfigsResponse = c
                .call(
                    ApiKey::IncrementalAlterConfigs,
                    v,
                    &call(ops.clone(), false),
                )
                .await;
            let r = &resp.responses[0];
            assert_eq!(r.error_code, code, "v{v} {ops:?}");
            let msg = r.error_message.as_ref().unwrap().to_string();
            assert!(msg.contains(needle), "{ops:?}: {msg}");
        }
        // validate_only: checked, not applied.
        let resp: IncrementalAlterConfigsResponse = c
            .call(
                ApiKey::IncrementalAlterConfigs,
                v,
                &call(vec![("retention.ms", 0, Some("1"))], true),
            )
            .await;
        assert_eq!(resp.responses[0].error_code, 0);
        let resp: IncrementalAlterConfigsResponse = c
            .call(
                ApiKey::IncrementalAlterConfigs,
                v,
                &call(vec![("retention.ms", 0, Some("x"))], true),
            )
            .await;
        assert_eq!(resp.responses[0].error_code, 40);
        assert_eq!(
            broker
                .ctx
                .log
                .topic(&topic)
                .unwrap()
                .configs
                .get("retention.ms")
                .map(String::as_str),
            Some("120000")
        );
        // Broker configs: read-only.
        let resp: IncrementalAlterConfigsResponse = c
            .call(
                ApiKey::IncrementalAlterConfigs,
                v,
                &incremental_req(4, "0", &[("log.retention.ms", 0, Some("5"))], false),
            )
            .await;
        assert_eq!(resp.responses[0].error_code, 42);
        assert_eq!(resp.responses[0].resource_type, 4);
    }
    broker.shutdown().await;
}

#[tokio::test]
async fn topic_max_message_bytes_is_enforced_and_can_change() {
    let broker = start(&[]).await;
    let mut c = Client::connect(broker.kafka_addr).await;
    assert_eq!(
        create_with_configs(&mut c, "mmb", 1, &[("max.message.bytes", "200")])
            .await
            .0,
        0
    );
    led(&mut c, "mmb", 1).await;
    let big = batch(20, 0, Compression::None);
    let small = batch(1, 0, Compression::None);
    assert!(big.len() > 200 && small.len() <= 200);
    let req = produce_request("mmb", 0, -1, big.clone());
    let resp: ProduceResponse = c.call(ApiKey::Produce, 9, &req).await;
    let p = &resp.responses[0].partition_responses[0];
    assert_eq!(p.error_code, 10, "MESSAGE_TOO_LARGE");
    assert!(p
        .error_message
        .as_ref()
        .is_some_and(|m| m.contains("max.message.bytes")));
    assert_eq!(produce_led(&mut c, "mmb", 0, small).await, (0, 0));
    // Raised: the big batch goes in.
    let resp: IncrementalAlterConfigsResponse = c
        .call(
            ApiKey::IncrementalAlterConfigs,
            1,
            &incremental_req(2, "mmb", &[("max.message.bytes", 0, Some("100000"))], false),
        )
        .await;
    assert_eq!(resp.responses[0].error_code, 0);
    assert_eq!(produce_led(&mut c, "mmb", 0, big).await, (0, 1));
    broker.shutdown().await;
}
