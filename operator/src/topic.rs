//! Reconciling a `KafscaleTopic` through the Kafka admin API: create it if missing, raise
//! its partitions (never lower them: Kafka cannot), make its configs those of the spec
//! (which also puts back changes made with other tools), and delete it when the resource
//! is deleted (a finalizer holds the resource until the topic is gone).

use kube::api::Api;
use kube::runtime::controller::Action;
use kube::runtime::finalizer::{finalizer, Event};
use kube::ResourceExt;
use std::sync::Arc;

use crate::admin::{ConfigChanges, NewTopic, TopicState};
use crate::crd::{
    conditions, ConditionStatus, KafscaleTopic, KafscaleTopicSpec, KafscaleTopicStatus,
};
use crate::{cluster, status, Context, Error};

pub const FINALIZER: &str = "kafscale.io/topic";

/// What it takes to bring the topic in line with its spec.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Plan {
    Create(NewTopic),
    Update {
        /// The partition count to raise the topic to.
        raise_partitions: Option<i32>,
        /// The partitions the topic keeps when the spec asks for fewer.
        decrease_refused: Option<i32>,
        configs: ConfigChanges,
    },
}

/// Compares the spec with the topic as the cluster has it (`None`: there is no topic).
pub fn plan(name: &str, spec: &KafscaleTopicSpec, actual: Option<&TopicState>) -> Plan {
    let Some(actual) = actual else {
        return Plan::Create(NewTopic {
            name: name.to_owned(),
            partitions: spec.partitions,
            configs: spec.config.clone(),
        });
    };
    let set = spec
        .config
        .iter()
        .filter(|(k, v)| actual.configs.get(*k) != Some(*v))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    let delete = actual
        .configs
        .keys()
        .filter(|k| !spec.config.contains_key(*k))
        .cloned()
        .collect();
    Plan::Update {
        raise_partitions: (spec.partitions > actual.partitions).then_some(spec.partitions),
        decrease_refused: (spec.partitions < actual.partitions).then_some(actual.partitions),
        configs: ConfigChanges { set, delete },
    }
}

pub async fn reconcile(topic: Arc<KafscaleTopic>, ctx: Arc<Context>) -> Result<Action, Error> {
    let ns = topic.namespace().ok_or(Error::MissingField("namespace"))?;
    let api: Api<KafscaleTopic> = Api::namespaced(ctx.client.clone(), &ns);
    finalizer(&api, FINALIZER, topic, |event| async {
        match event {
            Event::Apply(t) => apply(&api, &t, &ctx).await,
            Event::Cleanup(t) => cleanup(&t, &ctx).await,
        }
    })
    .await
    .map_err(|e| Error::Finalizer(Box::new(e)))
}

/// Brings the topic in line and reports the result in its status.
async fn apply(
    api: &Api<KafscaleTopic>,
    topic: &KafscaleTopic,
    ctx: &Context,
) -> Result<Action, Error> {
    let previous = topic.status.clone().unwrap_or_default();
    let generation = topic.metadata.generation;
    let name = topic.topic_name();
    let (condition, partitions, action) = match sync(topic, ctx).await {
        Ok((partitions, None)) => {
            let c = conditions::ready(
                &previous.conditions,
                ConditionStatus::True,
                "Ready",
                format!("topic {name} has {partitions} partitions and the configs of the spec"),
                generation,
            );
            (c, Some(partitions), Action::requeue(status::RESYNC))
        }
        Ok((partitions, Some(refused))) => {
            let message = format!("the spec asks for {} partitions but topic {name} has {refused}; Kafka cannot remove partitions, so the topic keeps {refused}", topic.spec.partitions);
            let c = conditions::ready(
                &previous.conditions,
                ConditionStatus::False,
                "PartitionDecreaseRefused",
                message,
                generation,
            );
            (c, Some(partitions), Action::requeue(status::RESYNC))
        }
        Err(e) => {
            tracing::warn!(topic = %name, error = %e, "topic reconcile failed");
            let (c, action) = status::failed(&previous.conditions, generation, &e);
            (c, previous.partitions, action)
        }
    };
    let new_status = KafscaleTopicStatus {
        conditions: vec![condition],
        observed_generation: generation,
        partitions,
        topic_name: Some(name),
    };
    status::write(api, &topic.name_any(), &new_status).await?;
    Ok(action)
}

/// Applies the plan; returns the partitions the topic has now and, when the spec asks
/// for fewer, the count it keeps.
async fn sync(topic: &KafscaleTopic, ctx: &Context) -> Result<(i32, Option<i32>), Error> {
    let ns = topic.namespace().ok_or(Error::MissingField("namespace"))?;
    let target = cluster::find_target(ctx, &ns, &topic.spec.cluster_ref)
        .await?
        .ok_or_else(|| Error::ClusterNotFound(topic.spec.cluster_ref.clone()))?;
    let name = topic.topic_name();
    let actual = ctx.admin.describe_topic(&target, &name).await?;
    match plan(&name, &topic.spec, actual.as_ref()) {
        Plan::Create(new) => {
            tracing::info!(topic = %name, partitions = new.partitions, "creating topic");
            ctx.admin.create_topic(&target, &new).await?;
            Ok((new.partitions, None))
        }
        Plan::Update {
            raise_partitions,
            decrease_refused,
            configs,
        } => {
            let mut partitions = actual.map_or(0, |a| a.partitions);
            if let Some(total) = raise_partitions {
                tracing::info!(topic = %name, from = partitions, to = total, "raising partitions");
                ctx.admin.create_partitions(&target, &name, total).await?;
                partitions = total;
            }
            if !configs.is_empty() {
                tracing::info!(topic = %name, set = ?configs.set.keys(), delete = ?configs.delete, "setting topic configs");
                ctx.admin
                    .alter_topic_configs(&target, &name, &configs)
                    .await?;
            }
            Ok((partitions, decrease_refused))
        }
    }
}

/// Deletes the topic. Without its cluster there is nothing left to delete.
async fn cleanup(topic: &KafscaleTopic, ctx: &Context) -> Result<Action, Error> {
    let ns = topic.namespace().ok_or(Error::MissingField("namespace"))?;
    let name = topic.topic_name();
    match cluster::find_target(ctx, &ns, &topic.spec.cluster_ref).await? {
        Some(target) => {
            tracing::info!(topic = %name, "deleting topic");
            ctx.admin.delete_topic(&target, &name).await?;
        }
        None => {
            tracing::info!(topic = %name, cluster = %topic.spec.cluster_ref, "cluster gone, nothing to delete")
        }
    }
    Ok(Action::await_change())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    fn spec(partitions: i32, config: &[(&str, &str)]) -> KafscaleTopicSpec {
        KafscaleTopicSpec {
            cluster_ref: "c".into(),
            topic_name: None,
            partitions,
            config: config
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        }
    }

    fn state(partitions: i32, config: &[(&str, &str)]) -> TopicState {
        TopicState {
            partitions,
            configs: config
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        }
    }

    #[test]
    fn a_missing_topic_is_created_as_specified() {
        let p = plan("t", &spec(3, &[("retention.ms", "1000")]), None);
        assert_eq!(
            p,
            Plan::Create(NewTopic {
                name: "t".into(),
                partitions: 3,
                configs: BTreeMap::from([("retention.ms".into(), "1000".into())]),
            })
        );
    }

    #[test]
    fn partitions_are_raised_never_lowered() {
        let Plan::Update {
            raise_partitions,
            decrease_refused,
            ..
        } = plan("t", &spec(5, &[]), Some(&state(3, &[])))
        else {
            panic!("expected an update");
        };
        assert_eq!((raise_partitions, decrease_refused), (Some(5), None));
        let Plan::Update {
            raise_partitions,
            decrease_refused,
            ..
        } = plan("t", &spec(2, &[]), Some(&state(3, &[])))
        else {
            panic!("expected an update");
        };
        assert_eq!((raise_partitions, decrease_refused), (None, Some(3)));
    }

    #[test]
    fn configs_changed_or_added_elsewhere_are_put_back() {
        let desired = spec(
            1,
            &[("retention.ms", "1000"), ("max.message.bytes", "2000")],
        );
        let actual = state(
            1,
            &[
                ("retention.ms", "5"),
                ("max.message.bytes", "2000"),
                ("segment.ms", "9"),
            ],
        );
        let Plan::Update { configs, .. } = plan("t", &desired, Some(&actual)) else {
            panic!("expected an update");
        };
        assert_eq!(
            configs.set,
            BTreeMap::from([("retention.ms".into(), "1000".into())])
        );
        assert_eq!(configs.delete, vec!["segment.ms".to_owned()]);
    }
}
