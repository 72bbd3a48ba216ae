//! The operator's own connection to a cluster: the bootstrap Service, on the port of
//! `spec.adminClient` (or the Kafka port), with the client properties its Secret holds, read
//! by the CLI's `--command-config` code (`kafscale::cli::security`), so that the operator
//! accepts exactly what `kafscale --command-config` accepts.

use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::ByteString;
use kafscale::cli::client::ClientSecurity;
use kafscale::cli::properties::parse_properties;
use kube::api::Api;
use kube::ResourceExt;
use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

use super::resources::Names;
use crate::admin::Target;
use crate::crd::KafscaleCluster;
use crate::{Context, Error};

/// The port the operator connects to: the admin client's listener, else the Kafka port.
pub fn admin_port(cluster: &KafscaleCluster) -> u16 {
    cluster
        .spec
        .admin_client
        .as_ref()
        .and_then(|a| a.port)
        .unwrap_or(cluster.spec.listeners.kafka_port)
}

/// `host:port` of a cluster's bootstrap Service on the operator's port.
pub fn admin_address(cluster: &KafscaleCluster) -> String {
    let ns = cluster.namespace().unwrap_or_else(|| "default".into());
    format!(
        "{}.{ns}.svc:{}",
        Names::of(&cluster.name_any()).bootstrap,
        admin_port(cluster)
    )
}

/// Where and how the operator reaches `cluster`.
pub async fn target(ctx: &Context, cluster: &KafscaleCluster) -> Result<Target, Error> {
    let port = admin_port(cluster);
    let l = &cluster.spec.listeners;
    if port != l.kafka_port && l.additional.iter().all(|a| a.port != port) {
        return Err(Error::InvalidSpec(format!(
            "adminClient.port {port} is not the port of a listener (listeners.kafkaPort or listeners.additional)"
        )));
    }
    let bootstrap = admin_address(cluster);
    let Some(spec) = &cluster.spec.admin_client else {
        return Ok(Target::plaintext(&bootstrap));
    };
    let ns = cluster.namespace().unwrap_or_else(|| "default".into());
    let problem = |problem: String| Error::Secret {
        namespace: ns.clone(),
        name: spec.secret_name.clone(),
        problem,
    };
    let secrets: Api<Secret> = Api::namespaced(ctx.client.clone(), &ns);
    let data = secrets
        .get_opt(&spec.secret_name)
        .await?
        .ok_or_else(|| problem("not found".into()))?
        .data
        .unwrap_or_default();
    let security = security(&data, &spec.properties_key).map_err(problem)?;
    Ok(Target {
        bootstrap,
        security: Arc::new(security),
    })
}

/// The client security of a Secret's data: the properties under `key`, and the files they
/// name read from the Secret's other keys.
pub fn security(data: &BTreeMap<String, ByteString>, key: &str) -> Result<ClientSecurity, String> {
    let text = data.get(key).ok_or_else(|| format!("has no key {key}"))?;
    let text = std::str::from_utf8(&text.0).map_err(|_| format!("key {key} is not UTF-8"))?;
    let props = parse_properties(text).map_err(|e| format!("{key}: {e}"))?;
    let read = |path: &Path| {
        let name = path.to_string_lossy();
        data.get(name.as_ref())
            .map(|b| b.0.clone())
            .ok_or_else(|| format!("{key} names {name}, which is not a key of the Secret"))
    };
    ClientSecurity::from_properties_with(&props, &read).map_err(|e| format!("{key}: {e}"))
}
