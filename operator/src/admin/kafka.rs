//! [`KafkaAdmin`] over the Kafka protocol, with the client of the `kafscale` CLI: topics go
//! through the same code as `kafscale topic create|describe|alter|delete`, SCRAM
//! credentials through that of `kafscale user create|delete`, ACLs through that of
//! `kafscale acl add|list|remove`.

use async_trait::async_trait;
use kafka_protocol::messages::create_partitions_request::CreatePartitionsTopic;
use kafka_protocol::messages::{ApiKey, CreatePartitionsRequest};
use kafscale::cli::acl;
use kafscale::cli::client::{topic_name, CliError, Client};
use kafscale::cli::topic::{self, AlterArgs, CreateArgs, TopicCommand};
use kafscale::cli::user::{self, NewCredential, RESOURCE_NOT_FOUND};
use kafscale::security::scram::MIN_ITERATIONS;
use kafscale::security::SaslMechanism;
use kafscale_core::acl::{AclBinding, AclFilter, PatternFilter};
use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use super::acl_rules;
use super::{AdminError, ConfigChanges, KafkaAdmin, NewTopic, ScramCredential, Target, TopicState};
use crate::crd::{AclRule, ScramMechanism};

/// How long a connection or an answer may take.
const TIMEOUT: Duration = Duration::from_secs(30);

/// The real admin client: one connection per call, opened to the bootstrap Service with the
/// cluster's admin client security, so a broker that went away is never reused.
#[derive(Debug, Default)]
pub struct KafkaClientAdmin;

async fn connect(target: &Target) -> Result<Client, AdminError> {
    Client::connect_secure(&target.bootstrap, target.security.clone(), TIMEOUT)
        .await
        .map_err(|e| admin_error(&target.bootstrap, e))
}

fn admin_error(bootstrap: &str, e: CliError) -> AdminError {
    if let CliError::Unsupported { api, .. } = &e {
        return AdminError::Unsupported { what: api.clone() };
    }
    if e.is_transport() {
        AdminError::Unreachable {
            bootstrap: bootstrap.to_owned(),
            reason: e.to_string(),
        }
    } else {
        AdminError::Refused(e.to_string())
    }
}

/// Runs one `kafscale topic` command and returns its JSON output.
async fn topic_command(
    target: &Target,
    cmd: TopicCommand,
) -> Result<serde_json::Value, AdminError> {
    let mut client = connect(target).await?;
    topic::run(&mut client, cmd)
        .await
        .map(|out| out.json)
        .map_err(|e| admin_error(&target.bootstrap, e))
}

/// Partitions and topic-level configs from the JSON of `kafscale topic describe`.
fn topic_state(described: &serde_json::Value) -> Result<TopicState, AdminError> {
    let partitions = described["partitions"]
        .as_array()
        .ok_or_else(|| AdminError::Refused("topic describe: no partitions".into()))?
        .len();
    let mut configs = BTreeMap::new();
    if let Some(all) = described["configs"].as_object() {
        for (name, c) in all {
            // Only configs set on the topic are the operator's; the others are defaults.
            if c["source"] == "topic" {
                if let Some(v) = c["value"].as_str() {
                    configs.insert(name.clone(), v.to_owned());
                }
            }
        }
    }
    Ok(TopicState {
        partitions: i32::try_from(partitions)
            .map_err(|_| AdminError::Refused("topic describe: too many partitions".into()))?,
        configs,
    })
}

fn sasl_mechanism(m: ScramMechanism) -> SaslMechanism {
    match m {
        ScramMechanism::ScramSha256 => SaslMechanism::ScramSha256,
        ScramMechanism::ScramSha512 => SaslMechanism::ScramSha512,
    }
}

#[async_trait]
impl KafkaAdmin for KafkaClientAdmin {
    async fn describe_topic(
        &self,
        target: &Target,
        name: &str,
    ) -> Result<Option<TopicState>, AdminError> {
        let mut client = connect(target).await?;
        match topic::run(&mut client, TopicCommand::Describe { name: name.into() }).await {
            Ok(out) => topic_state(&out.json).map(Some),
            Err(CliError::UnknownTopic(_)) => Ok(None),
            Err(e) => Err(admin_error(&target.bootstrap, e)),
        }
    }

    async fn create_topic(&self, target: &Target, new: &NewTopic) -> Result<(), AdminError> {
        let args = CreateArgs {
            name: new.name.clone(),
            partitions: Some(new.partitions),
            replication_factor: None,
            config: new.configs.clone().into_iter().collect(),
        };
        topic_command(target, TopicCommand::Create(args))
            .await
            .map(drop)
    }

    async fn create_partitions(
        &self,
        target: &Target,
        name: &str,
        total: i32,
    ) -> Result<(), AdminError> {
        let mut client = connect(target).await?;
        let mut t = CreatePartitionsTopic::default();
        t.name = topic_name(name);
        t.count = total;
        let mut req = CreatePartitionsRequest::default();
        req.topics = vec![t];
        req.timeout_ms = TIMEOUT.as_millis() as i32;
        let resp = async {
            let conn = client.controller().await?;
            let v = conn.version(ApiKey::CreatePartitions, 0..=3, "partition increase")?;
            conn.call(v, &req).await
        }
        .await
        .map_err(|e| admin_error(&target.bootstrap, e))?;
        match resp.results.first() {
            Some(r) if r.error_code == 0 => Ok(()),
            Some(r) => Err(admin_error(
                &target.bootstrap,
                CliError::kafka(
                    format!("cannot raise partitions of {name} to {total}"),
                    r.error_code,
                    r.error_message.as_ref(),
                ),
            )),
            None => Err(AdminError::Refused(
                "empty CreatePartitions response".into(),
            )),
        }
    }

    async fn alter_topic_configs(
        &self,
        target: &Target,
        name: &str,
        changes: &ConfigChanges,
    ) -> Result<(), AdminError> {
        let args = AlterArgs {
            name: name.to_owned(),
            config: changes.set.clone().into_iter().collect(),
            delete_config: changes.delete.clone(),
        };
        topic_command(target, TopicCommand::Alter(args))
            .await
            .map(drop)
    }

    async fn delete_topic(&self, target: &Target, name: &str) -> Result<(), AdminError> {
        let mut client = connect(target).await?;
        match topic::run(&mut client, TopicCommand::Delete { name: name.into() }).await {
            Ok(_) | Err(CliError::UnknownTopic(_)) => Ok(()),
            Err(e) => Err(admin_error(&target.bootstrap, e)),
        }
    }

    async fn upsert_scram_credential(
        &self,
        target: &Target,
        credential: &ScramCredential,
    ) -> Result<(), AdminError> {
        let mut client = connect(target).await?;
        let new = NewCredential {
            user: &credential.user,
            mechanism: sasl_mechanism(credential.mechanism),
            password: &credential.password,
            // Kafka's default; the CRD has no field for it.
            iterations: MIN_ITERATIONS,
        };
        user::upsert(&mut client, &new)
            .await
            .map_err(|e| admin_error(&target.bootstrap, e))
    }

    async fn delete_scram_credential(
        &self,
        target: &Target,
        name: &str,
        mechanism: ScramMechanism,
    ) -> Result<(), AdminError> {
        let mut client = connect(target).await?;
        match user::delete(&mut client, name, &[sasl_mechanism(mechanism)]).await {
            Ok(())
            | Err(CliError::Kafka {
                code: RESOURCE_NOT_FOUND,
                ..
            }) => Ok(()),
            Err(e) => Err(admin_error(&target.bootstrap, e)),
        }
    }

    /// Drift correction: the user's ACLs in the cluster (found by principal) become the
    /// spec's, whoever added or removed some since.
    async fn set_acls(
        &self,
        target: &Target,
        user: &str,
        acls: &[AclRule],
    ) -> Result<(), AdminError> {
        let wanted: BTreeSet<AclBinding> = acl_rules::bindings(user, acls)?.into_iter().collect();
        let mut client = connect(target).await?;
        let filter = AclFilter {
            resource_type: None,
            name: None,
            pattern: PatternFilter::Any,
            principal: Some(acl_rules::principal(user)),
            host: None,
            operation: None,
            permission: None,
        };
        let current: BTreeSet<AclBinding> = match acl::describe(&mut client, &filter).await {
            Ok(found) => found.into_iter().collect(),
            // A broker without ACL APIs holds no ACLs: none is already the state.
            Err(CliError::Unsupported { .. }) if wanted.is_empty() => return Ok(()),
            Err(e) => return Err(admin_error(&target.bootstrap, e)),
        };
        let missing: Vec<AclBinding> = wanted.difference(&current).cloned().collect();
        let extra: Vec<AclFilter> = current.difference(&wanted).map(acl::exactly).collect();
        acl::create(&mut client, &missing)
            .await
            .map_err(|e| admin_error(&target.bootstrap, e))?;
        acl::delete(&mut client, &extra)
            .await
            .map(drop)
            .map_err(|e| admin_error(&target.bootstrap, e))
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use serde_json::json;

    #[test]
    fn only_configs_set_on_the_topic_are_its_own() {
        let described = json!({
            "partitions": [{"partition": 0}, {"partition": 1}],
            "configs": {
                "retention.ms": {"value": "1000", "source": "topic"},
                "cleanup.policy": {"value": "delete", "source": "default"},
                "max.message.bytes": {"value": "1048588", "source": "static broker"},
            }
        });
        let state = topic_state(&described).unwrap();
        assert_eq!(state.partitions, 2);
        assert_eq!(
            state.configs,
            BTreeMap::from([("retention.ms".to_owned(), "1000".to_owned())])
        );
    }
}
