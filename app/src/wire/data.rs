//! Data structures carried inside other messages: the consumer protocol's subscription
//! (JoinGroup member metadata) and assignment (SyncGroup member assignment).
//!
//! `f(name, lo, hi, type)`: a field of versions lo..=hi (`UP`: and later). One field per line,
//! as in the specification; rustfmt leaves these tables alone.

use super::schema::Type::*;
use super::schema::{f, message, Message, NONE, UP};

pub(super) const DATA: &[Message] = &[
    CONSUMER_PROTOCOL_SUBSCRIPTION,
    CONSUMER_PROTOCOL_ASSIGNMENT,
];

pub(super) const CONSUMER_PROTOCOL_SUBSCRIPTION: Message = message(-1, "ConsumerProtocolSubscription", (0, 3), NONE, &[
    f("Topics", 0, UP, Array(&Str)),
    f("UserData", 0, UP, Bytes).nullable(0, UP),
    f("OwnedPartitions", 1, UP, Array(&Struct(&[
        f("Topic", 1, UP, Str),
        f("Partitions", 1, UP, Array(&I32)),
    ]))),
    f("GenerationId", 2, UP, I32),
    f("RackId", 3, UP, Str).nullable(3, UP),
]);

pub(super) const CONSUMER_PROTOCOL_ASSIGNMENT: Message = message(-1, "ConsumerProtocolAssignment", (0, 3), NONE, &[
    f("AssignedPartitions", 0, UP, Array(&Struct(&[
        f("Topic", 0, UP, Str),
        f("Partitions", 0, UP, Array(&I32)),
    ]))),
    f("UserData", 0, UP, Bytes).nullable(0, UP),
]);
