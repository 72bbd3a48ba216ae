//! A Kafka cluster in memory behind `KafkaAdmin`: topics with partitions and configs, SCRAM
//! credentials and ACLs. Tests change it behind the operator's back to check drift.

use async_trait::async_trait;
use kafscale::cli::client::ClientSecurity;
use kafscale_operator::admin::{
    AdminError, ConfigChanges, KafkaAdmin, NewTopic, ScramCredential, Target, TopicState,
};
use kafscale_operator::crd::{AclRule, ScramMechanism};
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

#[derive(Default)]
pub struct FakeKafka {
    /// The bootstrap address it answers at; others are unreachable.
    pub bootstrap: String,
    pub topics: Mutex<BTreeMap<String, TopicState>>,
    pub credentials: Mutex<BTreeMap<(String, ScramMechanism), String>>,
    pub acls: Mutex<BTreeMap<String, Vec<AclRule>>>,
    /// The client security of the last call.
    pub security: Mutex<Option<Arc<ClientSecurity>>>,
}

impl FakeKafka {
    pub fn at(bootstrap: &str) -> FakeKafka {
        FakeKafka {
            bootstrap: bootstrap.to_owned(),
            ..Default::default()
        }
    }

    fn reach(&self, t: &Target) -> Result<(), AdminError> {
        *self.security.lock().unwrap() = Some(t.security.clone());
        if t.bootstrap == self.bootstrap {
            return Ok(());
        }
        Err(AdminError::Unreachable {
            bootstrap: t.bootstrap.clone(),
            reason: "no such cluster".into(),
        })
    }

    pub fn topic(&self, name: &str) -> Option<TopicState> {
        self.topics.lock().unwrap().get(name).cloned()
    }
}

#[async_trait]
impl KafkaAdmin for FakeKafka {
    async fn describe_topic(
        &self,
        t: &Target,
        topic: &str,
    ) -> Result<Option<TopicState>, AdminError> {
        self.reach(t)?;
        Ok(self.topic(topic))
    }

    async fn create_topic(&self, t: &Target, topic: &NewTopic) -> Result<(), AdminError> {
        self.reach(t)?;
        let mut topics = self.topics.lock().unwrap();
        if topics.contains_key(&topic.name) {
            return Err(AdminError::Refused("TOPIC_ALREADY_EXISTS".into()));
        }
        topics.insert(
            topic.name.clone(),
            TopicState {
                partitions: topic.partitions,
                configs: topic.configs.clone(),
            },
        );
        Ok(())
    }

    async fn create_partitions(
        &self,
        t: &Target,
        topic: &str,
        total: i32,
    ) -> Result<(), AdminError> {
        self.reach(t)?;
        let mut topics = self.topics.lock().unwrap();
        let t = topics
            .get_mut(topic)
            .ok_or_else(|| AdminError::Refused("UNKNOWN_TOPIC_OR_PARTITION".into()))?;
        if total <= t.partitions {
            return Err(AdminError::Refused("INVALID_PARTITIONS".into()));
        }
        t.partitions = total;
        Ok(())
    }

    async fn alter_topic_configs(
        &self,
        t: &Target,
        topic: &str,
        changes: &ConfigChanges,
    ) -> Result<(), AdminError> {
        self.reach(t)?;
        let mut topics = self.topics.lock().unwrap();
        let t = topics
            .get_mut(topic)
            .ok_or_else(|| AdminError::Refused("UNKNOWN_TOPIC_OR_PARTITION".into()))?;
        t.configs.extend(changes.set.clone());
        for k in &changes.delete {
            t.configs.remove(k);
        }
        Ok(())
    }

    async fn delete_topic(&self, t: &Target, topic: &str) -> Result<(), AdminError> {
        self.reach(t)?;
        self.topics.lock().unwrap().remove(topic);
        Ok(())
    }

    async fn upsert_scram_credential(
        &self,
        t: &Target,
        c: &ScramCredential,
    ) -> Result<(), AdminError> {
        self.reach(t)?;
        self.credentials
            .lock()
            .unwrap()
            .insert((c.user.clone(), c.mechanism), c.password.clone());
        Ok(())
    }

    async fn delete_scram_credential(
        &self,
        t: &Target,
        user: &str,
        m: ScramMechanism,
    ) -> Result<(), AdminError> {
        self.reach(t)?;
        self.credentials
            .lock()
            .unwrap()
            .remove(&(user.to_owned(), m));
        Ok(())
    }

    async fn set_acls(&self, t: &Target, user: &str, acls: &[AclRule]) -> Result<(), AdminError> {
        self.reach(t)?;
        let mut all = self.acls.lock().unwrap();
        if acls.is_empty() {
            all.remove(user);
        } else {
            all.insert(user.to_owned(), acls.to_vec());
        }
        Ok(())
    }
}
