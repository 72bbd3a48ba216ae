//! `kafscale group reset-offsets`: moves a group's committed offsets of one topic to the log
//! start, the log end or an offset, only while the group has no members (as Kafka
//! requires), and the offset commit outside the group that `consume --group` uses too.

use clap::{ArgGroup, Args};
use kafka_protocol::messages::offset_commit_request::{
    OffsetCommitRequestPartition, OffsetCommitRequestTopic,
};
use kafka_protocol::messages::{ApiKey, GroupId, OffsetCommitRequest};
use serde_json::json;
use std::collections::BTreeMap;

use super::client::{
    backoff, is_retriable, str_bytes, topic_name, CliError, Client, OffsetSpec, ATTEMPTS,
};
use super::group::{committed_offsets, describe_group};
use super::table::Table;
use super::Output;

#[derive(Args, Debug)]
#[command(group(ArgGroup::new("target").required(true).args(["to_earliest", "to_latest", "to_offset"])))]
pub struct ResetArgs {
    pub group: String,
    /// Topic whose offsets move
    #[arg(long)]
    pub topic: String,
    /// Only these partitions (repeatable) [default: all]
    #[arg(long)]
    pub partition: Vec<i32>,
    /// To the log start
    #[arg(long)]
    pub to_earliest: bool,
    /// To the log end
    #[arg(long)]
    pub to_latest: bool,
    /// To this offset (kept within the log start and end)
    #[arg(long, value_name = "OFFSET")]
    pub to_offset: Option<i64>,
    /// Show what would change without committing
    #[arg(long)]
    pub dry_run: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ResetTarget {
    Earliest,
    Latest,
    Offset(i64),
}

impl ResetArgs {
    pub fn target(&self) -> ResetTarget {
        match (self.to_earliest, self.to_latest, self.to_offset) {
            (true, _, _) => ResetTarget::Earliest,
            (_, true, _) => ResetTarget::Latest,
            (_, _, Some(o)) => ResetTarget::Offset(o),
            // clap requires one of the three.
            _ => ResetTarget::Latest,
        }
    }
}

/// The offset a partition moves to: the target, kept within [log start, log end] as Kafka
/// does.
pub fn reset_to(target: ResetTarget, earliest: i64, latest: i64) -> i64 {
    match target {
        ResetTarget::Earliest => earliest,
        ResetTarget::Latest => latest,
        ResetTarget::Offset(o) => o.clamp(earliest, latest.max(earliest)),
    }
}

pub async fn reset_offsets(client: &mut Client, args: &ResetArgs) -> Result<Output, CliError> {
    let group = args.group.as_str();
    if let Some(d) = describe_group(client, group).await? {
        if d.state != "Empty" && d.state != "Dead" {
            return Err(CliError::Invalid(format!(
                "group {group} is {} with {} member{}: offsets can be reset only while it is empty (stop its consumers first)",
                d.state,
                d.members.len(),
                if d.members.len() == 1 { "" } else { "s" },
            )));
        }
    }
    let info = client.topic(&args.topic).await?;
    let parts: Vec<i32> = if args.partition.is_empty() {
        info.partitions.iter().map(|p| p.id).collect()
    } else {
        for p in &args.partition {
            if !info.partitions.iter().any(|i| i.id == *p) {
                return Err(CliError::Invalid(format!(
                    "topic {} has no partition {p}",
                    args.topic
                )));
            }
        }
        args.partition.clone()
    };
    let earliest = client
        .list_offsets(&args.topic, &parts, OffsetSpec::Earliest)
        .await?;
    let latest = client
        .list_offsets(&args.topic, &parts, OffsetSpec::Latest)
        .await?;
    let current = committed_offsets(client, group, &args.topic).await?;
    let target = args.target();
    let mut new: BTreeMap<i32, i64> = BTreeMap::new();
    for p in &parts {
        let e = earliest.get(p).copied().unwrap_or(0);
        let l = latest.get(p).copied().unwrap_or(e);
        new.insert(*p, reset_to(target, e, l));
    }
    if !args.dry_run {
        commit(client, group, &args.topic, &new).await?;
    }
    let mut table = Table::new(&["TOPIC", "PARTITION", "PREVIOUS", "NEW"]);
    let mut items = Vec::new();
    for (p, o) in &new {
        let prev = current.get(p).copied();
        table.row(vec![
            args.topic.clone(),
            p.to_string(),
            prev.map_or("-".to_owned(), |v| v.to_string()),
            o.to_string(),
        ]);
        items.push(json!({ "partition": p, "previous_offset": prev, "new_offset": o }));
    }
    let head = if args.dry_run {
        format!("dry run: offsets of group {group} would become (nothing committed)\n")
    } else {
        format!("reset offsets of group {group}\n")
    };
    Ok(Output {
        text: format!("{head}{}", table.render()),
        json: json!({
            "group": group,
            "topic": args.topic,
            "dry_run": args.dry_run,
            "partitions": items,
        }),
    })
}

/// Commits offsets as a client outside the group (generation -1, no member id), which a
/// coordinator accepts only while the group has no members.
pub async fn commit(
    client: &mut Client,
    group: &str,
    topic: &str,
    offsets: &BTreeMap<i32, i64>,
) -> Result<(), CliError> {
    for attempt in 0..ATTEMPTS {
        let coordinator = client.coordinator(group).await?;
        let conn = client.broker(coordinator).await?;
        let v = conn.version(ApiKey::OffsetCommit, 2..=8, "offset commit")?;
        let mut t = OffsetCommitRequestTopic::default();
        t.name = topic_name(topic);
        t.partitions = offsets
            .iter()
            .map(|(p, o)| {
                let mut cp = OffsetCommitRequestPartition::default();
                cp.partition_index = *p;
                cp.committed_offset = *o;
                cp.committed_leader_epoch = -1;
                cp.committed_metadata = Some(str_bytes(""));
                cp
            })
            .collect();
        let mut req = OffsetCommitRequest::default();
        req.group_id = GroupId(str_bytes(group));
        req.generation_id_or_member_epoch = -1;
        req.member_id = str_bytes("");
        if v <= 4 {
            req.retention_time_ms = -1;
        }
        req.topics = vec![t];
        let resp = conn.call(v, &req).await?;
        let mut retry = false;
        for t in &resp.topics {
            for p in &t.partitions {
                if p.error_code == 0 {
                    continue;
                }
                if is_retriable(p.error_code) && attempt + 1 < ATTEMPTS {
                    retry = true;
                } else {
                    return Err(CliError::kafka(
                        format!(
                            "cannot commit offset of {topic}/{} for group {group}",
                            p.partition_index
                        ),
                        p.error_code,
                        None,
                    ));
                }
            }
        }
        if !retry {
            return Ok(());
        }
        backoff(attempt).await;
    }
    Err(CliError::Invalid(format!(
        "no coordinator for group {group}"
    )))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reset_targets_stay_inside_the_log() {
        assert_eq!(reset_to(ResetTarget::Earliest, 5, 10), 5);
        assert_eq!(reset_to(ResetTarget::Latest, 5, 10), 10);
        assert_eq!(reset_to(ResetTarget::Offset(7), 5, 10), 7);
        assert_eq!(reset_to(ResetTarget::Offset(2), 5, 10), 5);
        assert_eq!(reset_to(ResetTarget::Offset(99), 5, 10), 10);
        assert_eq!(reset_to(ResetTarget::Offset(3), 0, 0), 0);
    }
}
