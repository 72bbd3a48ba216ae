//! Topics: names, ids, partition counts and their configs as recorded in metadata.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

use crate::error::Error;
use crate::types::{Millis, TopicId};

pub const MAX_NAME_LEN: usize = 249;
/// Upper bound on partitions per topic; guards metadata and memory against typos.
pub const MAX_PARTITIONS: i32 = 10_000;

/// A topic as stored under `topics/<name>`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TopicRecord {
    pub id: TopicId,
    pub name: String,
    pub partitions: i32,
    #[serde(default)]
    pub configs: BTreeMap<String, String>,
    pub created_ms: Millis,
}

/// Kafka's rules for topic names: 1-249 of `[a-zA-Z0-9._-]`, not `.` or `..`.
pub fn validate_name(name: &str) -> Result<(), Error> {
    let invalid = |why: &str| Err(Error::InvalidTopic(format!("{name:?}: {why}")));
    if name.is_empty() {
        return invalid("name is empty");
    }
    if name.len() > MAX_NAME_LEN {
        return invalid("name is longer than 249 characters");
    }
    if name == "." || name == ".." {
        return invalid("name cannot be '.' or '..'");
    }
    if !name
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'_' || b == b'-')
    {
        return invalid("name may only contain ASCII letters, digits, '.', '_' and '-'");
    }
    Ok(())
}

/// Names of Kafka's internal topics. KafScale keeps what they hold in the metadata store,
/// and inter-broker requests use `__consumer_offsets` to name group coordinator shards (as
/// Kafka's transaction markers name a group's offsets partition), so no topic may be
/// created under them.
pub const RESERVED_NAMES: [&str; 2] = ["__consumer_offsets", "__transaction_state"];

/// [`validate_name`] for a topic to be created: Kafka's rules, and not a reserved name.
pub fn validate_new_name(name: &str) -> Result<(), Error> {
    validate_name(name)?;
    if RESERVED_NAMES.contains(&name) {
        return Err(Error::InvalidTopic(format!(
            "{name:?}: the name of a Kafka internal topic is reserved"
        )));
    }
    Ok(())
}

/// Checks a topic's configs: Kafka names KafScale accepts, values of the right type and
/// range (see [`crate::topic_config`]).
pub fn validate_configs(configs: &BTreeMap<String, String>) -> Result<(), Error> {
    crate::topic_config::validate_all(configs)
}

pub fn validate_partitions(count: i32) -> Result<(), Error> {
    if !(1..=MAX_PARTITIONS).contains(&count) {
        return Err(Error::InvalidPartitions(count));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        assert!(validate_name("orders.v1_x-y").is_ok());
        for bad in ["", ".", "..", "a b", "é", &"x".repeat(250)] {
            assert!(validate_name(bad).is_err(), "{bad}");
        }
        assert!(validate_new_name("orders").is_ok());
        assert!(validate_name("__consumer_offsets").is_ok());
        for reserved in RESERVED_NAMES {
            assert!(validate_new_name(reserved).is_err(), "{reserved}");
        }
        assert!(validate_partitions(0).is_err());
        assert!(validate_partitions(MAX_PARTITIONS + 1).is_err());
        assert!(validate_partitions(12).is_ok());
    }
}
