//! Every key KafScale writes to the metadata store, in one place. Numbers are zero-padded so
//! that byte order is numeric order; names of groups and topics inside group keys are escaped
//! (`%` and `/`). The layout, with the record each key holds, is in [`super`]'s docs.

use crate::group::keys::ShardId;
use crate::group::{GroupId, OffsetKey};
use crate::types::{BrokerId, Offset, PartitionId, PartitionKey, TopicId};

pub const ROOT: &str = "kafscale/";

// ---- topics and partitions ------------------------------------------------------------

pub fn topics_prefix() -> String {
    format!("{ROOT}topics/")
}

pub fn topic(name: &str) -> String {
    format!("{ROOT}topics/{name}")
}

pub fn leaders_prefix() -> String {
    format!("{ROOT}leaders/")
}

pub fn topic_leaders_prefix(topic: TopicId) -> String {
    format!("{ROOT}leaders/{topic}/")
}

pub fn leader(p: PartitionKey) -> String {
    format!("{ROOT}leaders/{}/{:05}", p.topic, p.partition.0)
}

/// Parses the partition out of a leader key.
pub fn parse_leader(key: &str) -> Option<PartitionKey> {
    parse_topic_partition(key.strip_prefix(ROOT)?.strip_prefix("leaders/")?)
}

pub fn checkpoints_prefix() -> String {
    format!("{ROOT}checkpoints/")
}

pub fn topic_checkpoints_prefix(topic: TopicId) -> String {
    format!("{ROOT}checkpoints/{topic}/")
}

pub fn checkpoint(p: PartitionKey) -> String {
    format!("{ROOT}checkpoints/{}/{:05}", p.topic, p.partition.0)
}

pub fn parse_checkpoint(key: &str) -> Option<PartitionKey> {
    parse_topic_partition(key.strip_prefix(ROOT)?.strip_prefix("checkpoints/")?)
}

pub fn segments_prefix() -> String {
    format!("{ROOT}segments/")
}

pub fn topic_segments_prefix(topic: TopicId) -> String {
    format!("{ROOT}segments/{topic}/")
}

pub fn partition_segments_prefix(p: PartitionKey) -> String {
    format!("{ROOT}segments/{}/{:05}/", p.topic, p.partition.0)
}

pub fn segment(p: PartitionKey, base: Offset) -> String {
    format!("{}{:020}", partition_segments_prefix(p), base.0)
}

/// Parses the partition and base offset out of a segment key.
pub fn parse_segment(key: &str) -> Option<(PartitionKey, Offset)> {
    let rest = key.strip_prefix(ROOT)?.strip_prefix("segments/")?;
    let (partition, base) = rest.rsplit_once('/')?;
    Some((
        parse_topic_partition(partition)?,
        Offset(base.parse().ok()?),
    ))
}

/// Parses `<topic id>/<partition>`.
pub fn parse_topic_partition(rest: &str) -> Option<PartitionKey> {
    let (topic, partition) = rest.split_once('/')?;
    Some(PartitionKey {
        topic: TopicId(uuid::Uuid::parse_str(topic).ok()?),
        partition: PartitionId(partition.parse().ok()?),
    })
}

// ---- flushes and fences ------------------------------------------------------------------

pub fn flushes_prefix() -> String {
    format!("{ROOT}flushes/")
}

pub fn broker_flushes_prefix(broker: BrokerId) -> String {
    format!("{ROOT}flushes/{}/", broker.0)
}

/// The flush records of one incarnation of a broker.
pub fn incarnation_flushes_prefix(broker: BrokerId, incarnation: u64) -> String {
    format!("{ROOT}flushes/{}/{incarnation:016x}/", broker.0)
}

pub fn flush(broker: BrokerId, incarnation: u64, seq: u64) -> String {
    format!(
        "{}{seq:020}",
        incarnation_flushes_prefix(broker, incarnation)
    )
}

/// Parses (broker, incarnation, seq) out of a flush record key.
pub fn parse_flush(key: &str) -> Option<(BrokerId, u64, u64)> {
    let rest = key.strip_prefix(ROOT)?.strip_prefix("flushes/")?;
    let mut parts = rest.split('/');
    let broker = BrokerId(parts.next()?.parse().ok()?);
    let incarnation = u64::from_str_radix(parts.next()?, 16).ok()?;
    let seq = parts.next()?.parse().ok()?;
    parts.next().is_none().then_some((broker, incarnation, seq))
}

pub fn fences_prefix() -> String {
    format!("{ROOT}fences/")
}

pub fn fence(broker: BrokerId) -> String {
    format!("{ROOT}fences/{}", broker.0)
}

pub fn producer_ids() -> String {
    format!("{ROOT}producer-ids")
}

/// Written while the store refuses writes for lack of space, to notice when it takes them
/// again.
pub fn store_probe() -> String {
    format!("{ROOT}probe")
}

// ---- cluster ------------------------------------------------------------------------------

pub fn brokers_prefix() -> String {
    format!("{ROOT}brokers/")
}

pub fn broker(id: BrokerId) -> String {
    format!("{ROOT}brokers/{}", id.0)
}

pub fn parse_broker(key: &str) -> Option<BrokerId> {
    key.strip_prefix(ROOT)?
        .strip_prefix("brokers/")?
        .parse()
        .ok()
        .map(BrokerId)
}

pub fn controller() -> String {
    format!("{ROOT}controller")
}

pub fn moves_prefix() -> String {
    format!("{ROOT}moves/")
}

pub fn move_key(p: PartitionKey) -> String {
    format!("{ROOT}moves/{}/{:05}", p.topic, p.partition.0)
}

pub fn parse_move(key: &str) -> Option<PartitionKey> {
    parse_topic_partition(key.strip_prefix(ROOT)?.strip_prefix("moves/")?)
}

// ---- consumer groups ----------------------------------------------------------------------

pub fn shards_prefix() -> String {
    format!("{ROOT}groups/shards/")
}

pub fn shard(shard: ShardId) -> String {
    format!("{ROOT}groups/shards/{:03}", shard.0)
}

pub fn parse_shard(key: &str) -> Option<ShardId> {
    let n: u32 = key
        .strip_prefix(ROOT)?
        .strip_prefix("groups/shards/")?
        .parse()
        .ok()?;
    (n < crate::group::keys::SHARDS).then_some(ShardId(n))
}

pub fn shard_states_prefix(shard: ShardId) -> String {
    format!("{ROOT}groups/state/{:03}/", shard.0)
}

pub fn group_state(group: &GroupId) -> String {
    format!(
        "{}{}",
        shard_states_prefix(crate::group::keys::shard_of(group)),
        escape(&group.0)
    )
}

pub fn parse_group_state(key: &str) -> Option<GroupId> {
    let rest = key.strip_prefix(ROOT)?.strip_prefix("groups/state/")?;
    let (_shard, group) = rest.split_once('/')?;
    unescape(group).map(GroupId)
}

pub fn shard_offsets_prefix(shard: ShardId) -> String {
    format!("{ROOT}groups/offsets/{:03}/", shard.0)
}

pub fn group_offsets_prefix(group: &GroupId) -> String {
    format!(
        "{}{}/",
        shard_offsets_prefix(crate::group::keys::shard_of(group)),
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

pub fn parse_offset(key: &str) -> Option<(GroupId, OffsetKey)> {
    let rest = key.strip_prefix(ROOT)?.strip_prefix("groups/offsets/")?;
    let mut parts = rest.split('/');
    let _shard = parts.next()?;
    let group = unescape(parts.next()?)?;
    Some((GroupId(group), parse_offset_key(parts)?))
}

/// `<topic>/<partition>`, the end of an offset key.
fn parse_offset_key<'a>(mut parts: impl Iterator<Item = &'a str>) -> Option<OffsetKey> {
    let topic = unescape(parts.next()?)?;
    let partition = parts.next()?.parse::<i32>().ok()?;
    if parts.next().is_some() {
        return None;
    }
    Some(OffsetKey {
        topic,
        partition: PartitionId(partition),
    })
}

// ---- transactions -------------------------------------------------------------------------

/// The transactional ids of one coordinator shard (the shard of the id, as for groups).
pub fn shard_txns_prefix(shard: ShardId) -> String {
    format!("{ROOT}txns/{:03}/", shard.0)
}

pub fn txn(transactional_id: &str) -> String {
    let shard = crate::group::keys::shard_of(&GroupId(transactional_id.to_owned()));
    format!("{}{}", shard_txns_prefix(shard), escape(transactional_id))
}

pub fn parse_txn(key: &str) -> Option<String> {
    let rest = key.strip_prefix(ROOT)?.strip_prefix("txns/")?;
    let (_shard, id) = rest.split_once('/')?;
    unescape(id)
}

/// Offsets a producer committed in a transaction (TxnOffsetCommit), staged until its
/// commit moves them to the group's offsets or its abort drops them.
pub fn group_txn_offsets_prefix(group: &GroupId, producer_id: i64) -> String {
    format!("{}{producer_id}/", group_all_txn_offsets_prefix(group))
}

/// The offsets every producer staged in a group.
pub fn group_all_txn_offsets_prefix(group: &GroupId) -> String {
    format!(
        "{ROOT}groups/txn-offsets/{:03}/{}/",
        crate::group::keys::shard_of(group).0,
        escape(&group.0)
    )
}

pub fn shard_txn_offsets_prefix(shard: ShardId) -> String {
    format!("{ROOT}groups/txn-offsets/{:03}/", shard.0)
}

pub fn txn_offset(group: &GroupId, producer_id: i64, key: &OffsetKey) -> String {
    format!(
        "{}{}/{:05}",
        group_txn_offsets_prefix(group, producer_id),
        escape(&key.topic),
        key.partition.0
    )
}

/// Parses (group, producer id, partition) out of a staged transactional offset key.
pub fn parse_txn_offset(key: &str) -> Option<(GroupId, i64, OffsetKey)> {
    let rest = key
        .strip_prefix(ROOT)?
        .strip_prefix("groups/txn-offsets/")?;
    let mut parts = rest.split('/');
    let _shard = parts.next()?;
    let group = unescape(parts.next()?)?;
    let producer_id = parts.next()?.parse().ok()?;
    Some((GroupId(group), producer_id, parse_offset_key(parts)?))
}

// ---- ACLs ---------------------------------------------------------------------------------

pub fn acls_prefix() -> String {
    format!("{ROOT}acls/")
}

/// One key per binding, made of its parts, so that creating a binding twice is one key.
pub fn acl(binding: &crate::acl::AclBinding) -> String {
    let p = &binding.pattern;
    let e = &binding.entry;
    format!(
        "{ROOT}acls/{:?}/{:?}/{}/{}/{}/{:?}/{:?}",
        p.resource_type,
        p.pattern_type,
        escape(&p.name),
        escape(&e.principal),
        escape(&e.host),
        e.operation,
        e.permission
    )
}

// ---- dynamic broker configs --------------------------------------------------------------

/// The dynamic configs AlterConfigs set for one broker.
pub fn broker_configs(id: BrokerId) -> String {
    format!("{ROOT}configs/brokers/{}", id.0)
}

/// The dynamic configs AlterConfigs set for every broker (Kafka's resource name "").
pub fn broker_configs_default() -> String {
    format!("{ROOT}configs/brokers/default")
}

// ---- users ------------------------------------------------------------------------------

pub fn users_prefix() -> String {
    format!("{ROOT}users/")
}

pub fn user(name: &str) -> String {
    format!("{ROOT}users/{}", escape(name))
}

/// A random value every broker shares: the seed of the salts shown for unknown SCRAM users.
pub fn scram_decoy_secret() -> String {
    format!("{ROOT}secrets/scram-decoy")
}

pub fn parse_user(key: &str) -> Option<String> {
    unescape(key.strip_prefix(ROOT)?.strip_prefix("users/")?)
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

// ---- the object store ---------------------------------------------------------------------

/// Prefix of every data object in the object store.
pub const DATA_PREFIX: &str = "data/";

/// Key of a flush object: unique per broker and flush (a UUIDv7, whose timestamp tells
/// garbage collection the object's age).
pub fn flush_object(broker: BrokerId, id: uuid::Uuid) -> String {
    format!("{DATA_PREFIX}{broker}/{}.ksf", id.simple())
}

/// Key of a checkpoint object (the chunk lists and producer states of a checkpoint round).
pub fn checkpoint_object(broker: BrokerId, id: uuid::Uuid) -> String {
    format!("{DATA_PREFIX}{broker}/{}.ksc", id.simple())
}

// ---- the layout of the first release, read only to migrate it -----------------------------

pub mod legacy {
    use super::ROOT;

    pub fn partitions_prefix() -> String {
        format!("{ROOT}partitions/")
    }

    pub fn chunks_prefix() -> String {
        format!("{ROOT}chunks/")
    }

    pub fn producers_prefix() -> String {
        format!("{ROOT}producers/")
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn keys_round_trip_and_sort() {
        let p = PartitionKey {
            topic: TopicId::random(),
            partition: PartitionId(7),
        };
        let a = segment(p, Offset(9));
        let b = segment(p, Offset(10));
        assert!(a < b);
        assert_eq!(parse_segment(&b), Some((p, Offset(10))));
        assert_eq!(parse_checkpoint(&checkpoint(p)), Some(p));
        assert_eq!(parse_leader(&leader(p)), Some(p));
        assert_eq!(parse_leader(&checkpoint(p)), None);
        let f = flush(BrokerId(3), 0xabc, 42);
        assert!(f.starts_with(&incarnation_flushes_prefix(BrokerId(3), 0xabc)));
        assert!(f.starts_with(&broker_flushes_prefix(BrokerId(3))));
        assert!(flush(BrokerId(3), 0xabc, 9) < f);
        assert_eq!(parse_flush(&f), Some((BrokerId(3), 0xabc, 42)));
        assert_eq!(parse_broker(&broker(BrokerId(12))), Some(BrokerId(12)));
        assert_eq!(parse_broker("kafscale/brokers/x"), None);
        assert_eq!(parse_move(&move_key(p)), Some(p));
    }

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
        assert_eq!(shard(ShardId(3)), "kafscale/groups/shards/003");
        assert_eq!(parse_shard(&shard(ShardId(3))), Some(ShardId(3)));
        let g = GroupId("a/b%c".into());
        assert_eq!(parse_group_state(&group_state(&g)), Some(g));
        assert!(shard(ShardId(3)).starts_with(&shards_prefix()));
    }

    #[test]
    fn transaction_keys_round_trip() {
        for id in ["app-1", "a/b", "50%", ""] {
            let k = txn(id);
            assert_eq!(parse_txn(&k).as_deref(), Some(id));
            let shard = crate::group::keys::shard_of(&GroupId(id.to_owned()));
            assert!(k.starts_with(&shard_txns_prefix(shard)));
        }
        let group = GroupId("g/1".into());
        let key = OffsetKey {
            topic: "in%".into(),
            partition: PartitionId(3),
        };
        let k = txn_offset(&group, 42, &key);
        assert!(k.starts_with(&group_txn_offsets_prefix(&group, 42)));
        assert!(!k.starts_with(&group_txn_offsets_prefix(&group, 4)));
        assert_eq!(parse_txn_offset(&k), Some((group, 42, key)));
    }
}
