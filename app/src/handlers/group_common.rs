//! Conversions shared by the consumer-group handlers: Kafka's sentinels ("" and -1) become
//! `Option` on the way in and come back on the way out.

use kafka_protocol::messages::GroupId as WireGroupId;
use kafka_protocol::protocol::StrBytes;

use kafscale_core::group::{GenerationId, GroupId, InstanceId, MemberId};

use super::str_bytes;

pub(crate) fn group_id(g: &WireGroupId) -> GroupId {
    GroupId(g.0.to_string())
}

pub(crate) fn wire_group(g: &GroupId) -> WireGroupId {
    WireGroupId(str_bytes(g.0.clone()))
}

/// "" means "no member id yet".
pub(crate) fn member_id(s: &StrBytes) -> Option<MemberId> {
    (!s.is_empty()).then(|| MemberId(s.to_string()))
}

pub(crate) fn member_or_empty(s: &StrBytes) -> MemberId {
    MemberId(s.to_string())
}

pub(crate) fn instance_id(s: &Option<StrBytes>) -> Option<InstanceId> {
    s.as_ref()
        .filter(|s| !s.is_empty())
        .map(|s| InstanceId(s.to_string()))
}

/// The static member id of a request whose versions from `since` on carry one.
pub(crate) fn instance_since(version: i16, since: i16, s: &Option<StrBytes>) -> Option<InstanceId> {
    if version >= since {
        instance_id(s)
    } else {
        None
    }
}

/// A negative generation means "not a member" (simple commits, admin tools).
pub(crate) fn generation(g: i32) -> Option<GenerationId> {
    (g >= 0).then_some(GenerationId(g))
}

pub(crate) fn opt_str(s: &Option<String>) -> Option<StrBytes> {
    s.as_ref().map(|s| str_bytes(s.clone()))
}

pub(crate) fn instance_str(i: &Option<InstanceId>) -> Option<StrBytes> {
    i.as_ref().map(|i| str_bytes(i.0.clone()))
}
