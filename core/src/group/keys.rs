//! Metadata store keys of consumer groups.
//!
//! ```text
//! kafscale/groups/shards/<shard:03>                                  owner broker, epoch
//! kafscale/groups/offsets/<shard:03>/<group>/<topic>/<partition:05>  committed offset
//! ```
//!
//! A group belongs to one coordinator shard (crc32c of its id modulo [`SHARDS`]); every
//! write of a shard's offsets compares the shard record's revision, so a coordinator that
//! lost the shard cannot write. Group ids may hold any character: `%` and `/` are escaped
//! so that one group's prefix never covers another's keys.

use super::types::{GroupId, OffsetKey};
use crate::types::PartitionId;

/// Number of coordinator shards. Fixed: changing it moves groups between shards.
pub const SHARDS: u32 = 16;

/// Index of a coordinator shard.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ShardId(pub u32);

impl std::fmt::Display for ShardId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(f)
    }
}

pub fn shard_of(group: &GroupId) -> ShardId {
    ShardId(crc32c::crc32c(group.0.as_bytes()) % SHARDS)
}

pub fn shard(shard: ShardId) -> String {
    format!("kafscale/groups/shards/{:03}", shard.0)
}

pub fn shards_prefix() -> String {
    "kafscale/groups/shards/".to_owned()
}

/// Parses the shard out of a shard key.
pub fn parse_shard(key: &str) -> Option<ShardId> {
    let n: u32 = key.strip_prefix("kafscale/groups/shards/")?.parse().ok()?;
    (n < SHARDS).then_some(ShardId(n))
}

pub fn shard_states_prefix(shard: ShardId) -> String {
    format!("kafscale/groups/state/{:03}/", shard.0)
}

/// Where a group's membership is persisted for the next coordinator.
pub fn group_state(group: &GroupId) -> String {
    format!(
        "{}{}",
        shard_states_prefix(shard_of(group)),
        escape(&group.0)
    )
}

/// The group of a state key.
pub fn parse_group_state(key: &str) -> Option<GroupId> {
    let rest = key.strip_prefix("kafscale/groups/state/")?;
    let (_shard, group) = rest.split_once('/')?;
    unescape(group).map(GroupId)
}

pub fn shard_offsets_prefix(shard: ShardId) -> String {
    format!("kafscale/groups/offsets/{:03}/", shard.0)
}

pub fn group_offsets_prefix(group: &GroupId) -> String {
    format!(
        "{}{}/",
        shard_offsets_prefix(shard_of(group)),
        escape(&group.0)
    )
}

pub fn offset(group: &GroupId, key: &OffsetKey) -> String {
    format!(
        "{}{}/{:05}",
        group_offsets_prefix(group),
        escape(&key.topic),
        key.partition.0
    )
}

/// The group and partition of an offset key, or None if it is not one.
pub fn parse_offset(key: &str) -> Option<(GroupId, OffsetKey)> {
    let rest = key.strip_prefix("kafscale/groups/offsets/")?;
    let mut parts = rest.split('/');
    let _shard = parts.next()?;
    let group = unescape(parts.next()?)?;
    let topic = unescape(parts.next()?)?;
    let partition = parts.next()?.parse::<i32>().ok()?;
    if parts.next().is_some() {
        return None;
    }
    Some((
        GroupId(group),
        OffsetKey {
            topic,
            partition: PartitionId(partition),
        },
    ))
}

fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '%' => out.push_str("%25"),
            '/' => out.push_str("%2F"),
            c => out.push(c),
        }
    }
    out
}

fn unescape(s: &str) -> Option<String> {
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(i) = rest.find('%') {
        out.push_str(&rest[..i]);
        let code = rest.get(i + 1..i + 3)?;
        out.push(match code {
            "25" => '%',
            "2F" => '/',
            _ => return None,
        });
        rest = &rest[i + 3..];
    }
    out.push_str(rest);
    Some(out)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn offset_keys_round_trip_and_prefixes_do_not_overlap() {
        for g in ["g", "a/b", "50%", "%2F", "grüße/%/x", ""] {
            let group = GroupId(g.to_owned());
            let key = OffsetKey {
                topic: "orders".into(),
                partition: PartitionId(7),
            };
            let k = offset(&group, &key);
            assert!(k.starts_with(&group_offsets_prefix(&group)));
            assert_eq!(parse_offset(&k), Some((group, key)));
        }
        let a = group_offsets_prefix(&GroupId("a".into()));
        let ab = offset(
            &GroupId("a/b".into()),
            &OffsetKey {
                topic: "t".into(),
                partition: PartitionId(0),
            },
        );
        assert!(!ab.starts_with(&a));
        assert_eq!(parse_offset("kafscale/groups/offsets/001/g/t/x"), None);
        assert_eq!(parse_offset("kafscale/groups/offsets/001/g%zz/t/1"), None);
    }

    #[test]
    fn shards_are_stable() {
        assert_eq!(
            shard_of(&GroupId("g".into())),
            shard_of(&GroupId("g".into()))
        );
        assert!(shard_of(&GroupId("anything".into())).0 < SHARDS);
        assert_eq!(shard(ShardId(3)), "kafscale/groups/shards/003");
        assert_eq!(parse_shard(&shard(ShardId(3))), Some(ShardId(3)));
        let g = GroupId("a/b%c".into());
        assert_eq!(parse_group_state(&group_state(&g)), Some(g));
        assert!(shard(ShardId(3)).starts_with(&shards_prefix()));
    }
}
