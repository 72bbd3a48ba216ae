//! Coordinator shards of consumer groups, and their keys (defined in `schema::keys`).
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

use super::types::GroupId;

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

// The keys themselves live with every other key, in the schema.
pub use crate::schema::keys::{
    group_offsets_prefix, group_state, offset, parse_group_state, parse_offset, parse_shard, shard,
    shard_offsets_prefix, shard_states_prefix, shards_prefix,
};

#[cfg(test)]
mod tests {
    use super::*;

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
