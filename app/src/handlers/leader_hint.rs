//! The not-leader hint (KIP-951): with a NOT_LEADER_OR_FOLLOWER answer, Produce v10+ and
//! Fetch v12+ name the partition's current leader and epoch, and list the endpoints of the
//! leaders they named, so the client goes there without a metadata round trip. Produce and
//! Fetch carry the same fields in types of their own; this builds both.

use kafka_protocol::messages::{fetch_response, produce_response, BrokerId};
use kafscale_core::PartitionKey;

use super::str_bytes;
use crate::context::{BrokerEndpoint, Context};

/// The leaders named in one response, for its node endpoints.
#[derive(Default)]
pub(crate) struct LeaderHints {
    named: Vec<BrokerEndpoint>,
}

impl LeaderHints {
    /// Sets `current_leader` to the partition's leader and epoch, if a live leader is known,
    /// and remembers the leader's endpoint.
    pub fn name_leader<L: WireLeader>(
        &mut self,
        ctx: &Context,
        listener: &str,
        key: PartitionKey,
        current_leader: &mut L,
    ) {
        let Some((epoch, leader)) = ctx.current_leader(key, listener) else {
            return;
        };
        current_leader.set(BrokerId(leader.id), epoch);
        self.remember(leader);
    }

    fn remember(&mut self, leader: BrokerEndpoint) {
        if !self.named.iter().any(|b| b.id == leader.id) {
            self.named.push(leader);
        }
    }

    /// The endpoints of the leaders named, once each, in the order they were first named.
    pub fn endpoints<E: WireEndpoint>(self) -> Vec<E> {
        self.named.into_iter().map(E::from_broker).collect()
    }
}

/// A response's `current_leader` field.
pub(crate) trait WireLeader {
    fn set(&mut self, id: BrokerId, epoch: i32);
}

/// A response's node endpoint.
pub(crate) trait WireEndpoint {
    fn from_broker(b: BrokerEndpoint) -> Self;
}

macro_rules! wire_hint_types {
    ($($leader:ty, $endpoint:ty);* $(;)?) => {$(
        impl WireLeader for $leader {
            fn set(&mut self, id: BrokerId, epoch: i32) {
                self.leader_id = id;
                self.leader_epoch = epoch;
            }
        }

        impl WireEndpoint for $endpoint {
            fn from_broker(b: BrokerEndpoint) -> Self {
                let mut e = Self::default();
                e.node_id = BrokerId(b.id);
                e.host = str_bytes(b.host);
                e.port = b.port;
                e.rack = b.rack.map(str_bytes);
                e
            }
        }
    )*};
}

wire_hint_types!(
    produce_response::LeaderIdAndEpoch, produce_response::NodeEndpoint;
    fetch_response::LeaderIdAndEpoch, fetch_response::NodeEndpoint;
);

#[cfg(test)]
mod tests {
    use super::*;

    fn broker(id: i32) -> BrokerEndpoint {
        BrokerEndpoint {
            id,
            host: format!("b{id}"),
            port: 9092 + id,
            rack: (id == 2).then(|| "r".to_owned()),
        }
    }

    #[test]
    fn each_leader_is_listed_once_in_the_order_first_named() {
        let mut hints = LeaderHints::default();
        for id in [2, 1, 2, 1, 3] {
            hints.remember(broker(id));
        }
        let produce: Vec<produce_response::NodeEndpoint> = hints.endpoints();
        let ids: Vec<i32> = produce.iter().map(|e| e.node_id.0).collect();
        assert_eq!(ids, vec![2, 1, 3]);
        assert_eq!(produce[0].host.as_str(), "b2");
        assert_eq!(produce[0].port, 9094);
        assert_eq!(produce[0].rack.as_deref(), Some("r"));
        assert_eq!(produce[1].rack, None);
    }

    #[test]
    fn produce_and_fetch_get_the_same_leader_fields() {
        let mut p = produce_response::LeaderIdAndEpoch::default();
        let mut f = fetch_response::LeaderIdAndEpoch::default();
        p.set(BrokerId(4), 7);
        f.set(BrokerId(4), 7);
        assert_eq!((p.leader_id, p.leader_epoch), (BrokerId(4), 7));
        assert_eq!((f.leader_id, f.leader_epoch), (p.leader_id, p.leader_epoch));
        let mut hints = LeaderHints::default();
        hints.remember(broker(4));
        let fetch: Vec<fetch_response::NodeEndpoint> = hints.endpoints();
        assert_eq!(fetch[0].node_id, BrokerId(4));
        assert_eq!(fetch[0].host.as_str(), "b4");
    }
}
