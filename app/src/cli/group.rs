//! `kafscale group ...`: ListGroups on every broker; DescribeGroups, OffsetFetch,
//! DeleteGroups and OffsetCommit at the group's coordinator; ListOffsets for log ends.

use bytes::{Buf, Bytes};
use clap::Subcommand;
use kafka_protocol::messages::{
    ApiKey, ConsumerProtocolAssignment, DeleteGroupsRequest, DescribeGroupsRequest, GroupId,
    ListGroupsRequest, OffsetFetchRequest,
};
use kafka_protocol::protocol::Decodable;
use serde_json::json;
use std::collections::{BTreeMap, BTreeSet};

use super::client::{backoff, is_retriable, str_bytes, CliError, Client, OffsetSpec, ATTEMPTS};
use super::group_reset::{self, ResetArgs};
use super::table::{fields, Table};
use super::Output;

const GROUP_ID_NOT_FOUND: i16 = 69;

#[derive(Subcommand, Debug)]
pub enum GroupCommand {
    /// List consumer groups
    List,
    /// State, members, assignments, committed offsets and lag of a group
    Describe { group: String },
    /// Delete an empty group and its committed offsets
    Delete { group: String },
    /// Move a group's committed offsets (only while the group has no members)
    ResetOffsets(ResetArgs),
}

pub async fn run(client: &mut Client, cmd: GroupCommand) -> Result<Output, CliError> {
    match cmd {
        GroupCommand::List => list(client).await,
        GroupCommand::Describe { group } => describe(client, &group).await,
        GroupCommand::Delete { group } => delete(client, &group).await,
        GroupCommand::ResetOffsets(args) => group_reset::reset_offsets(client, &args).await,
    }
}

async fn list(client: &mut Client) -> Result<Output, CliError> {
    client.metadata(Some(&[])).await?;
    let ids: Vec<i32> = client.brokers().map(|b| b.id).collect();
    // Each coordinator knows only its own groups.
    let mut groups: BTreeMap<String, (String, Option<String>)> = BTreeMap::new();
    for id in ids {
        let conn = client.broker(id).await?;
        let v = conn.version(ApiKey::ListGroups, 0..=4, "group list")?;
        let resp = conn.call(v, &ListGroupsRequest::default()).await?;
        if resp.error_code != 0 {
            return Err(CliError::kafka(
                format!("ListGroups on broker {id}"),
                resp.error_code,
                None,
            ));
        }
        for g in resp.groups {
            let state = (v >= 4).then(|| g.group_state.to_string());
            groups.insert(
                g.group_id.0.to_string(),
                (g.protocol_type.to_string(), state),
            );
        }
    }
    let mut table = Table::new(&["GROUP", "STATE", "PROTOCOL TYPE"]);
    let mut items = Vec::new();
    for (id, (ptype, state)) in &groups {
        table.row(vec![
            id.clone(),
            state.clone().unwrap_or_else(|| "-".into()),
            ptype.clone(),
        ]);
        items.push(json!({ "group": id, "state": state, "protocol_type": ptype }));
    }
    Ok(Output {
        text: if groups.is_empty() {
            "no groups\n".into()
        } else {
            table.render()
        },
        json: json!({ "groups": items }),
    })
}

pub(crate) struct Member {
    id: String,
    instance: Option<String>,
    client_id: String,
    host: String,
    /// topic -> partitions; `None` when the assignment is not the consumer protocol's.
    assignment: Option<BTreeMap<String, Vec<i32>>>,
}

pub(crate) struct Described {
    pub(crate) state: String,
    protocol_type: String,
    protocol: String,
    pub(crate) members: Vec<Member>,
}

/// A consumer-protocol assignment: a version, then the assignment in that version.
fn decode_assignment(mut bytes: Bytes) -> Option<BTreeMap<String, Vec<i32>>> {
    if bytes.is_empty() {
        return Some(BTreeMap::new());
    }
    if bytes.remaining() < 2 {
        return None;
    }
    // Newer versions only add fields at the end; read what this crate knows.
    let version = bytes.get_i16().clamp(0, 3);
    crate::wire::check_data(
        crate::wire::Data::ConsumerProtocolAssignment,
        version,
        &bytes,
    )
    .ok()?;
    let a = ConsumerProtocolAssignment::decode(&mut bytes, version).ok()?;
    let mut out: BTreeMap<String, Vec<i32>> = BTreeMap::new();
    for tp in a.assigned_partitions {
        out.entry(tp.topic.0.to_string())
            .or_default()
            .extend(tp.partitions);
    }
    for parts in out.values_mut() {
        parts.sort_unstable();
    }
    Some(out)
}

/// DescribeGroups at the coordinator; `None` for a group that does not exist.
pub(crate) async fn describe_group(
    client: &mut Client,
    group: &str,
) -> Result<Option<Described>, CliError> {
    for attempt in 0..ATTEMPTS {
        let coordinator = client.coordinator(group).await?;
        let conn = client.broker(coordinator).await?;
        let v = conn.version(ApiKey::DescribeGroups, 0..=5, "group commands")?;
        let mut req = DescribeGroupsRequest::default();
        req.groups = vec![GroupId(str_bytes(group))];
        let resp = conn.call(v, &req).await?;
        let Some(g) = resp.groups.into_iter().next() else {
            return Err(CliError::Invalid("empty DescribeGroups response".into()));
        };
        if is_retriable(g.error_code) && attempt + 1 < ATTEMPTS {
            backoff(attempt).await;
            continue;
        }
        if g.error_code == GROUP_ID_NOT_FOUND {
            return Ok(None);
        }
        if g.error_code != 0 {
            return Err(CliError::kafka(
                format!("group {group}"),
                g.error_code,
                g.error_message.as_ref(),
            ));
        }
        let consumer = g.protocol_type.as_str() == "consumer";
        let members = g
            .members
            .into_iter()
            .map(|m| Member {
                id: m.member_id.to_string(),
                instance: m.group_instance_id.map(|i| i.to_string()),
                client_id: m.client_id.to_string(),
                host: m.client_host.to_string(),
                assignment: if consumer {
                    decode_assignment(m.member_assignment)
                } else {
                    None
                },
            })
            .collect();
        return Ok(Some(Described {
            state: g.group_state.to_string(),
            protocol_type: g.protocol_type.to_string(),
            protocol: g.protocol_data.to_string(),
            members,
        }));
    }
    Err(CliError::Invalid(format!(
        "no coordinator for group {group}"
    )))
}

/// Committed offsets of a group (all topics, or one), by topic and partition.
async fn committed(
    client: &mut Client,
    group: &str,
    topic: Option<&str>,
) -> Result<BTreeMap<String, BTreeMap<i32, i64>>, CliError> {
    for attempt in 0..ATTEMPTS {
        let coordinator = client.coordinator(group).await?;
        let conn = client.broker(coordinator).await?;
        // v2 is the first that can ask for every topic; v8 moved to a list of groups.
        let v = conn.version(ApiKey::OffsetFetch, 2..=7, "group commands")?;
        let mut req = OffsetFetchRequest::default();
        req.group_id = GroupId(str_bytes(group));
        req.topics = None;
        let resp = conn.call(v, &req).await?;
        if is_retriable(resp.error_code) && attempt + 1 < ATTEMPTS {
            backoff(attempt).await;
            continue;
        }
        if resp.error_code != 0 {
            return Err(CliError::kafka(
                format!("offsets of group {group}"),
                resp.error_code,
                None,
            ));
        }
        let mut out: BTreeMap<String, BTreeMap<i32, i64>> = BTreeMap::new();
        for t in resp.topics {
            let name = t.name.0.to_string();
            if topic.is_some_and(|want| want != name) {
                continue;
            }
            for p in t.partitions {
                if p.error_code == 0 && p.committed_offset >= 0 {
                    out.entry(name.clone())
                        .or_default()
                        .insert(p.partition_index, p.committed_offset);
                }
            }
        }
        return Ok(out);
    }
    Err(CliError::Invalid(format!(
        "no coordinator for group {group}"
    )))
}

/// Committed offsets of one topic for a group, by partition.
pub async fn committed_offsets(
    client: &mut Client,
    group: &str,
    topic: &str,
) -> Result<BTreeMap<i32, i64>, CliError> {
    Ok(committed(client, group, Some(topic))
        .await?
        .remove(topic)
        .unwrap_or_default())
}

async fn describe(client: &mut Client, group: &str) -> Result<Output, CliError> {
    let described = describe_group(client, group).await?;
    let offsets = committed(client, group, None).await?;
    let described = match described {
        Some(d) if !(d.state == "Dead" && offsets.is_empty()) => d,
        _ if !offsets.is_empty() => Described {
            state: "Empty".into(),
            protocol_type: String::new(),
            protocol: String::new(),
            members: Vec::new(),
        },
        _ => return Err(CliError::Invalid(format!("unknown group {group}"))),
    };
    // Every partition that is assigned or has a committed offset.
    let mut owner: BTreeMap<(String, i32), String> = BTreeMap::new();
    for m in &described.members {
        for (t, parts) in m.assignment.iter().flatten() {
            for p in parts {
                owner.insert((t.clone(), *p), m.id.clone());
            }
        }
    }
    let mut rows: BTreeSet<(String, i32)> = owner.keys().cloned().collect();
    for (t, parts) in &offsets {
        rows.extend(parts.keys().map(|p| (t.clone(), *p)));
    }
    let mut log_end: BTreeMap<(String, i32), i64> = BTreeMap::new();
    let topics: BTreeSet<String> = rows.iter().map(|(t, _)| t.clone()).collect();
    for t in &topics {
        let parts: Vec<i32> = rows
            .iter()
            .filter(|(rt, _)| rt == t)
            .map(|(_, p)| *p)
            .collect();
        match client.list_offsets(t, &parts, OffsetSpec::Latest).await {
            Ok(ends) => {
                for (p, o) in ends {
                    log_end.insert((t.clone(), p), o);
                }
            }
            // A deleted topic keeps its committed offsets; it simply has no log end.
            Err(CliError::UnknownTopic(_)) => {}
            Err(e) => return Err(e),
        }
    }

    let mut text = fields(&[
        ("group", group.to_owned()),
        ("state", described.state.clone()),
        (
            "protocol",
            if described.protocol_type.is_empty() {
                "-".to_owned()
            } else {
                format!("{} ({})", described.protocol_type, described.protocol)
            },
        ),
        ("members", described.members.len().to_string()),
    ]);
    let mut members_json = Vec::new();
    if !described.members.is_empty() {
        let mut t = Table::new(&["MEMBER", "INSTANCE", "CLIENT ID", "HOST", "ASSIGNMENT"]);
        for m in &described.members {
            let assignment = match &m.assignment {
                None => "-".to_owned(),
                Some(a) if a.is_empty() => "none".to_owned(),
                Some(a) => a
                    .iter()
                    .map(|(t, ps)| {
                        let ps: Vec<String> = ps.iter().map(i32::to_string).collect();
                        format!("{t}:{}", ps.join(","))
                    })
                    .collect::<Vec<_>>()
                    .join(" "),
            };
            t.row(vec![
                m.id.clone(),
                m.instance.clone().unwrap_or_else(|| "-".into()),
                m.client_id.clone(),
                m.host.clone(),
                assignment,
            ]);
            members_json.push(json!({
                "member_id": m.id,
                "group_instance_id": m.instance,
                "client_id": m.client_id,
                "client_host": m.host,
                "assignment": m.assignment.as_ref().map(|a| a
                    .iter()
                    .map(|(t, ps)| json!({ "topic": t, "partitions": ps }))
                    .collect::<Vec<_>>()),
            }));
        }
        text.push('\n');
        text.push_str(&t.render());
    }
    let mut offsets_json = Vec::new();
    if !rows.is_empty() {
        let mut t = Table::new(&[
            "TOPIC",
            "PARTITION",
            "COMMITTED",
            "LOG END",
            "LAG",
            "MEMBER",
        ]);
        for key in &rows {
            let (topic, p) = key;
            let c = offsets.get(topic).and_then(|m| m.get(p)).copied();
            let end = log_end.get(key).copied();
            let lag = match (c, end) {
                (Some(c), Some(e)) => Some((e - c).max(0)),
                // Nothing committed yet: everything up to the log end is still to be read.
                (None, Some(e)) => Some(e),
                _ => None,
            };
            let m = owner.get(key);
            let show = |v: Option<i64>| v.map_or("-".to_owned(), |v| v.to_string());
            t.row(vec![
                topic.clone(),
                p.to_string(),
                show(c),
                show(end),
                show(lag),
                m.cloned().unwrap_or_else(|| "-".into()),
            ]);
            offsets_json.push(json!({
                "topic": topic,
                "partition": p,
                "committed_offset": c,
                "log_end_offset": end,
                "lag": lag,
                "member_id": m,
            }));
        }
        text.push('\n');
        text.push_str(&t.render());
    }
    let total_lag: i64 = offsets_json.iter().filter_map(|o| o["lag"].as_i64()).sum();
    Ok(Output {
        text,
        json: json!({
            "group": group,
            "state": described.state,
            "protocol_type": described.protocol_type,
            "protocol": described.protocol,
            "members": members_json,
            "offsets": offsets_json,
            "total_lag": total_lag,
        }),
    })
}

async fn delete(client: &mut Client, group: &str) -> Result<Output, CliError> {
    for attempt in 0..ATTEMPTS {
        let coordinator = client.coordinator(group).await?;
        let conn = client.broker(coordinator).await?;
        let v = conn.version(ApiKey::DeleteGroups, 0..=2, "group delete")?;
        let mut req = DeleteGroupsRequest::default();
        req.groups_names = vec![GroupId(str_bytes(group))];
        let resp = conn.call(v, &req).await?;
        let Some(r) = resp.results.into_iter().next() else {
            return Err(CliError::Invalid("empty DeleteGroups response".into()));
        };
        match r.error_code {
            0 => {
                return Ok(Output {
                    text: format!("deleted group {group}\n"),
                    json: json!({ "group": group, "deleted": true }),
                })
            }
            GROUP_ID_NOT_FOUND => return Err(CliError::Invalid(format!("unknown group {group}"))),
            code if is_retriable(code) && attempt + 1 < ATTEMPTS => backoff(attempt).await,
            code => {
                return Err(CliError::kafka(
                    format!("cannot delete group {group}"),
                    code,
                    None,
                ))
            }
        }
    }
    Err(CliError::Invalid(format!(
        "no coordinator for group {group}"
    )))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cli::client::topic_name;
    use bytes::BytesMut;
    use kafka_protocol::messages::consumer_protocol_assignment::TopicPartition;
    use kafka_protocol::protocol::Encodable;

    #[test]
    fn assignments_decode_with_their_version_prefix() {
        let mut a = ConsumerProtocolAssignment::default();
        let mut tp = TopicPartition::default();
        tp.topic = topic_name("orders");
        tp.partitions = vec![2, 0];
        a.assigned_partitions = vec![tp];
        let mut buf = BytesMut::new();
        buf.extend_from_slice(&1i16.to_be_bytes());
        a.encode(&mut buf, 1).expect("encode");
        let decoded = decode_assignment(buf.freeze()).expect("decode");
        assert_eq!(decoded.get("orders"), Some(&vec![0, 2]));
        assert_eq!(decode_assignment(Bytes::new()), Some(BTreeMap::new()));
        assert_eq!(decode_assignment(Bytes::from_static(&[0])), None);
    }
}
