//! `kafscale cluster info`: DescribeCluster where the broker serves it, else Metadata; and
//! the API versions of the bootstrap broker.

use clap::Subcommand;
use kafka_protocol::messages::{ApiKey, DescribeClusterRequest};
use serde_json::json;

use super::client::{BrokerInfo, CliError, Client};
use super::table::{fields, Table};
use super::Output;

#[derive(Subcommand, Debug)]
pub enum ClusterCommand {
    /// Brokers, controller, cluster id and the API versions of the bootstrap broker
    Info,
}

pub async fn run(client: &mut Client, cmd: ClusterCommand) -> Result<Output, CliError> {
    match cmd {
        ClusterCommand::Info => info(client).await,
    }
}

struct Cluster {
    id: Option<String>,
    controller: Option<i32>,
    brokers: Vec<BrokerInfo>,
    source: &'static str,
}

async fn describe_cluster(client: &mut Client) -> Result<Option<Cluster>, CliError> {
    let conn = client.bootstrap();
    if !conn.supports(ApiKey::DescribeCluster) {
        return Ok(None);
    }
    let v = conn.version(ApiKey::DescribeCluster, 0..=1, "cluster info")?;
    let mut req = DescribeClusterRequest::default();
    if v >= 1 {
        req.endpoint_type = 1; // brokers, not controllers
    }
    let resp = conn.call(v, &req).await?;
    if resp.error_code != 0 {
        return Err(CliError::kafka(
            "DescribeCluster",
            resp.error_code,
            resp.error_message.as_ref(),
        ));
    }
    let mut brokers: Vec<BrokerInfo> = resp
        .brokers
        .iter()
        .map(|b| BrokerInfo {
            id: b.broker_id.0,
            host: b.host.to_string(),
            port: b.port,
            rack: b.rack.as_ref().map(|r| r.to_string()),
        })
        .collect();
    brokers.sort_by_key(|b| b.id);
    Ok(Some(Cluster {
        id: Some(resp.cluster_id.to_string()),
        controller: (resp.controller_id.0 >= 0).then_some(resp.controller_id.0),
        brokers,
        source: "DescribeCluster",
    }))
}

async fn info(client: &mut Client) -> Result<Output, CliError> {
    let cluster = match describe_cluster(client).await? {
        Some(c) => c,
        None => {
            client.metadata(Some(&[])).await?;
            let mut brokers: Vec<BrokerInfo> = client.brokers().cloned().collect();
            brokers.sort_by_key(|b| b.id);
            Cluster {
                id: client.cluster_id.clone(),
                controller: client.controller_id,
                brokers,
                source: "Metadata",
            }
        }
    };
    let conn = client.bootstrap();
    let addr = conn.addr().to_owned();
    let mut apis = Table::new(&["API", "KEY", "MIN", "MAX"]);
    let mut api_json = Vec::new();
    for (&key, &(min, max)) in conn.versions() {
        let name = ApiKey::try_from(key)
            .map(|k| format!("{k:?}"))
            .unwrap_or_else(|_| format!("unknown ({key})"));
        apis.row(vec![
            name.clone(),
            key.to_string(),
            min.to_string(),
            max.to_string(),
        ]);
        api_json.push(json!({ "api": name, "key": key, "min_version": min, "max_version": max }));
    }
    let mut brokers = Table::new(&["ID", "HOST", "PORT", "RACK"]);
    let mut broker_json = Vec::new();
    for b in &cluster.brokers {
        brokers.row(vec![
            b.id.to_string(),
            b.host.clone(),
            b.port.to_string(),
            b.rack.clone().unwrap_or_else(|| "-".to_owned()),
        ]);
        broker_json.push(json!({ "id": b.id, "host": b.host, "port": b.port, "rack": b.rack }));
    }
    let mut text = fields(&[
        (
            "cluster id",
            cluster.id.clone().unwrap_or_else(|| "-".into()),
        ),
        (
            "controller",
            cluster
                .controller
                .map_or_else(|| "-".into(), |c| c.to_string()),
        ),
        ("brokers", cluster.brokers.len().to_string()),
    ]);
    text.push('\n');
    text.push_str(&brokers.render());
    text.push_str(&format!("\nAPI versions of {addr}:\n"));
    text.push_str(&apis.render());
    Ok(Output {
        text,
        json: json!({
            "cluster_id": cluster.id,
            "controller_id": cluster.controller,
            "brokers": broker_json,
            "source": cluster.source,
            "api_versions": { "broker": addr, "apis": api_json },
        }),
    })
}
