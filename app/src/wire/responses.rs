//! Response bodies of the APIs the command-line client calls (and a broker calls on another),
//! as the Kafka protocol specification defines them: a broker's answer is bounds-checked
//! against its entry before the kafka-protocol decoder reads it.
//!
//! `f(name, lo, hi, type)`: a field of versions lo..=hi (`UP`: and later). One field per line,
//! as in the specification; rustfmt leaves these tables alone.

use super::schema::Type::*;
use super::schema::{f, message, Message, NONE, UP};

pub(super) const RESPONSES: &[Message] = &[
    API_VERSIONS,
    METADATA,
    CREATE_TOPICS,
    DELETE_TOPICS,
    DELETE_GROUPS,
    DESCRIBE_CLUSTER,
    DESCRIBE_CONFIGS,
    DESCRIBE_GROUPS,
    FETCH,
    FIND_COORDINATOR,
    INCREMENTAL_ALTER_CONFIGS,
    LIST_GROUPS,
    LIST_OFFSETS,
    OFFSET_COMMIT,
    OFFSET_FETCH,
    PRODUCE,
    SASL_HANDSHAKE,
    SASL_AUTHENTICATE,
    DESCRIBE_USER_SCRAM_CREDENTIALS,
    ADD_PARTITIONS_TO_TXN,
    WRITE_TXN_MARKERS,
    ALTER_USER_SCRAM_CREDENTIALS,
    DESCRIBE_ACLS,
    CREATE_ACLS,
    DELETE_ACLS,
    DESCRIBE_TRANSACTIONS,
    LIST_TRANSACTIONS,
];

const API_VERSIONS: Message = message(18, "ApiVersions", (0, 4), (3, UP), &[
    f("ErrorCode", 0, UP, I16),
    f("ApiKeys", 0, UP, Array(&Struct(&[
        f("ApiKey", 0, UP, I16),
        f("MinVersion", 0, UP, I16),
        f("MaxVersion", 0, UP, I16),
    ]))),
    f("ThrottleTimeMs", 1, UP, I32),
    f("SupportedFeatures", 3, UP, Array(&Struct(&[
        f("Name", 3, UP, Str),
        f("MinVersion", 3, UP, I16),
        f("MaxVersion", 3, UP, I16),
    ]))).tagged(0),
    f("FinalizedFeaturesEpoch", 3, UP, I64).tagged(1),
    f("FinalizedFeatures", 3, UP, Array(&Struct(&[
        f("Name", 3, UP, Str),
        f("MaxVersionLevel", 3, UP, I16),
        f("MinVersionLevel", 3, UP, I16),
    ]))).tagged(2),
    f("ZkMigrationReady", 3, UP, Bool).tagged(3),
]);

const METADATA: Message = message(3, "Metadata", (0, 12), (9, UP), &[
    f("ThrottleTimeMs", 3, UP, I32),
    f("Brokers", 0, UP, Array(&Struct(&[
        f("NodeId", 0, UP, I32),
        f("Host", 0, UP, Str),
        f("Port", 0, UP, I32),
        f("Rack", 1, UP, Str).nullable(1, UP),
    ]))),
    f("ClusterId", 2, UP, Str).nullable(2, UP),
    f("ControllerId", 1, UP, I32),
    f("Topics", 0, UP, Array(&Struct(&[
        f("ErrorCode", 0, UP, I16),
        f("Name", 0, UP, Str).nullable(12, UP),
        f("TopicId", 10, UP, Uuid),
        f("IsInternal", 1, UP, Bool),
        f("Partitions", 0, UP, Array(&Struct(&[
            f("ErrorCode", 0, UP, I16),
            f("PartitionIndex", 0, UP, I32),
            f("LeaderId", 0, UP, I32),
            f("LeaderEpoch", 7, UP, I32),
            f("ReplicaNodes", 0, UP, Array(&I32)),
            f("IsrNodes", 0, UP, Array(&I32)),
            f("OfflineReplicas", 5, UP, Array(&I32)),
        ]))),
        f("TopicAuthorizedOperations", 8, UP, I32),
    ]))),
    f("ClusterAuthorizedOperations", 8, 10, I32),
]);

const CREATE_TOPICS: Message = message(19, "CreateTopics", (0, 7), (5, UP), &[
    f("ThrottleTimeMs", 2, UP, I32),
    f("Topics", 0, UP, Array(&Struct(&[
        f("Name", 0, UP, Str),
        f("TopicId", 7, UP, Uuid),
        f("ErrorCode", 0, UP, I16),
        f("ErrorMessage", 1, UP, Str).nullable(0, UP),
        f("TopicConfigErrorCode", 5, UP, I16).tagged(0),
        f("NumPartitions", 5, UP, I32),
        f("ReplicationFactor", 5, UP, I16),
        f("Configs", 5, UP, Array(&Struct(&[
            f("Name", 5, UP, Str),
            f("Value", 5, UP, Str).nullable(5, UP),
            f("ReadOnly", 5, UP, Bool),
            f("ConfigSource", 5, UP, I8),
            f("IsSensitive", 5, UP, Bool),
        ]))).nullable(5, UP),
    ]))),
]);

const DELETE_TOPICS: Message = message(20, "DeleteTopics", (0, 6), (4, UP), &[
    f("ThrottleTimeMs", 1, UP, I32),
    f("Responses", 0, UP, Array(&Struct(&[
        f("Name", 0, UP, Str).nullable(6, UP),
        f("TopicId", 6, UP, Uuid),
        f("ErrorCode", 0, UP, I16),
        f("ErrorMessage", 5, UP, Str).nullable(5, UP),
    ]))),
]);

const ADD_PARTITIONS_TO_TXN: Message = message(24, "AddPartitionsToTxn", (0, 5), (3, UP), &[
    f("ThrottleTimeMs", 0, UP, I32),
    f("ErrorCode", 4, UP, I16),
    f("ResultsByTransaction", 4, UP, Array(&Struct(&[
        f("TransactionalId", 4, UP, Str),
        f("TopicResults", 4, UP, Array(&Struct(&[
            f("Name", 0, UP, Str),
            f("ResultsByPartition", 0, UP, Array(&Struct(&[
                f("PartitionIndex", 0, UP, I32),
                f("PartitionErrorCode", 0, UP, I16),
            ]))),
        ]))),
    ]))),
    f("ResultsByTopicV3AndBelow", 0, 3, Array(&Struct(&[
        f("Name", 0, UP, Str),
        f("ResultsByPartition", 0, UP, Array(&Struct(&[
            f("PartitionIndex", 0, UP, I32),
            f("PartitionErrorCode", 0, UP, I16),
        ]))),
    ]))),
]);

const WRITE_TXN_MARKERS: Message = message(27, "WriteTxnMarkers", (0, 1), (1, UP), &[
    f("Markers", 0, UP, Array(&Struct(&[
        f("ProducerId", 0, UP, I64),
        f("Topics", 0, UP, Array(&Struct(&[
            f("Name", 0, UP, Str),
            f("Partitions", 0, UP, Array(&Struct(&[
                f("PartitionIndex", 0, UP, I32),
                f("ErrorCode", 0, UP, I16),
            ]))),
        ]))),
    ]))),
]);

const DELETE_GROUPS: Message = message(42, "DeleteGroups", (0, 2), (2, UP), &[
    f("ThrottleTimeMs", 0, UP, I32),
    f("Results", 0, UP, Array(&Struct(&[
        f("GroupId", 0, UP, Str),
        f("ErrorCode", 0, UP, I16),
    ]))),
]);

const DESCRIBE_CLUSTER: Message = message(60, "DescribeCluster", (0, 2), (0, UP), &[
    f("ThrottleTimeMs", 0, UP, I32),
    f("ErrorCode", 0, UP, I16),
    f("ErrorMessage", 0, UP, Str).nullable(0, UP),
    f("EndpointType", 1, UP, I8),
    f("ClusterId", 0, UP, Str),
    f("ControllerId", 0, UP, I32),
    f("Brokers", 0, UP, Array(&Struct(&[
        f("BrokerId", 0, UP, I32),
        f("Host", 0, UP, Str),
        f("Port", 0, UP, I32),
        f("Rack", 0, UP, Str).nullable(0, UP),
        f("IsFenced", 2, UP, Bool),
    ]))),
    f("ClusterAuthorizedOperations", 0, UP, I32),
]);

const DESCRIBE_CONFIGS: Message = message(32, "DescribeConfigs", (0, 4), (4, UP), &[
    f("ThrottleTimeMs", 0, UP, I32),
    f("Results", 0, UP, Array(&Struct(&[
        f("ErrorCode", 0, UP, I16),
        f("ErrorMessage", 0, UP, Str).nullable(0, UP),
        f("ResourceType", 0, UP, I8),
        f("ResourceName", 0, UP, Str),
        f("Configs", 0, UP, Array(&Struct(&[
            f("Name", 0, UP, Str),
            f("Value", 0, UP, Str).nullable(0, UP),
            f("ReadOnly", 0, UP, Bool),
            f("IsDefault", 0, 0, Bool),
            f("ConfigSource", 1, UP, I8),
            f("IsSensitive", 0, UP, Bool),
            f("Synonyms", 1, UP, Array(&Struct(&[
                f("Name", 1, UP, Str),
                f("Value", 1, UP, Str).nullable(0, UP),
                f("Source", 1, UP, I8),
            ]))),
            f("ConfigType", 3, UP, I8),
            f("Documentation", 3, UP, Str).nullable(0, UP),
        ]))),
    ]))),
]);

const DESCRIBE_GROUPS: Message = message(15, "DescribeGroups", (0, 6), (5, UP), &[
    f("ThrottleTimeMs", 1, UP, I32),
    f("Groups", 0, UP, Array(&Struct(&[
        f("ErrorCode", 0, UP, I16),
        f("ErrorMessage", 6, UP, Str).nullable(6, UP),
        f("GroupId", 0, UP, Str),
        f("GroupState", 0, UP, Str),
        f("ProtocolType", 0, UP, Str),
        f("ProtocolData", 0, UP, Str),
        f("Members", 0, UP, Array(&Struct(&[
            f("MemberId", 0, UP, Str),
            f("GroupInstanceId", 4, UP, Str).nullable(4, UP),
            f("ClientId", 0, UP, Str),
            f("ClientHost", 0, UP, Str),
            f("MemberMetadata", 0, UP, Bytes),
            f("MemberAssignment", 0, UP, Bytes),
        ]))),
        f("AuthorizedOperations", 3, UP, I32),
    ]))),
]);

const FETCH: Message = message(1, "Fetch", (0, 17), (12, UP), &[
    f("ThrottleTimeMs", 1, UP, I32),
    f("ErrorCode", 7, UP, I16),
    f("SessionId", 7, UP, I32),
    f("Responses", 0, UP, Array(&Struct(&[
        f("Topic", 0, 12, Str),
        f("TopicId", 13, UP, Uuid),
        f("Partitions", 0, UP, Array(&Struct(&[
            f("PartitionIndex", 0, UP, I32),
            f("ErrorCode", 0, UP, I16),
            f("HighWatermark", 0, UP, I64),
            f("LastStableOffset", 4, UP, I64),
            f("LogStartOffset", 5, UP, I64),
            f("DivergingEpoch", 12, UP, Struct(&[
                f("Epoch", 12, UP, I32),
                f("EndOffset", 12, UP, I64),
            ])).tagged(0),
            f("CurrentLeader", 12, UP, Struct(&[
                f("LeaderId", 12, UP, I32),
                f("LeaderEpoch", 12, UP, I32),
            ])).tagged(1),
            f("SnapshotId", 12, UP, Struct(&[
                f("EndOffset", 0, UP, I64),
                f("Epoch", 0, UP, I32),
            ])).tagged(2),
            f("AbortedTransactions", 4, UP, Array(&Struct(&[
                f("ProducerId", 4, UP, I64),
                f("FirstOffset", 4, UP, I64),
            ]))).nullable(4, UP),
            f("PreferredReadReplica", 11, UP, I32),
            f("Records", 0, UP, Records).nullable(0, UP),
        ]))),
    ]))),
    f("NodeEndpoints", 16, UP, Array(&Struct(&[
        f("NodeId", 16, UP, I32),
        f("Host", 16, UP, Str),
        f("Port", 16, UP, I32),
        f("Rack", 16, UP, Str).nullable(16, UP),
    ]))).tagged(0),
]);

const FIND_COORDINATOR: Message = message(10, "FindCoordinator", (0, 6), (3, UP), &[
    f("ThrottleTimeMs", 1, UP, I32),
    f("ErrorCode", 0, 3, I16),
    f("ErrorMessage", 1, 3, Str).nullable(1, 3),
    f("NodeId", 0, 3, I32),
    f("Host", 0, 3, Str),
    f("Port", 0, 3, I32),
    f("Coordinators", 4, UP, Array(&Struct(&[
        f("Key", 4, UP, Str),
        f("NodeId", 4, UP, I32),
        f("Host", 4, UP, Str),
        f("Port", 4, UP, I32),
        f("ErrorCode", 4, UP, I16),
        f("ErrorMessage", 4, UP, Str).nullable(4, UP),
    ]))),
]);

const INCREMENTAL_ALTER_CONFIGS: Message = message(44, "IncrementalAlterConfigs", (0, 1), (1, UP), &[
    f("ThrottleTimeMs", 0, UP, I32),
    f("Responses", 0, UP, Array(&Struct(&[
        f("ErrorCode", 0, UP, I16),
        f("ErrorMessage", 0, UP, Str).nullable(0, UP),
        f("ResourceType", 0, UP, I8),
        f("ResourceName", 0, UP, Str),
    ]))),
]);

const LIST_GROUPS: Message = message(16, "ListGroups", (0, 5), (3, UP), &[
    f("ThrottleTimeMs", 1, UP, I32),
    f("ErrorCode", 0, UP, I16),
    f("Groups", 0, UP, Array(&Struct(&[
        f("GroupId", 0, UP, Str),
        f("ProtocolType", 0, UP, Str),
        f("GroupState", 4, UP, Str),
        f("GroupType", 5, UP, Str),
    ]))),
]);

const LIST_OFFSETS: Message = message(2, "ListOffsets", (0, 10), (6, UP), &[
    f("ThrottleTimeMs", 2, UP, I32),
    f("Topics", 0, UP, Array(&Struct(&[
        f("Name", 0, UP, Str),
        f("Partitions", 0, UP, Array(&Struct(&[
            f("PartitionIndex", 0, UP, I32),
            f("ErrorCode", 0, UP, I16),
            f("OldStyleOffsets", 0, 0, Array(&I64)),
            f("Timestamp", 1, UP, I64),
            f("Offset", 1, UP, I64),
            f("LeaderEpoch", 4, UP, I32),
        ]))),
    ]))),
]);

const OFFSET_COMMIT: Message = message(8, "OffsetCommit", (0, 9), (8, UP), &[
    f("ThrottleTimeMs", 3, UP, I32),
    f("Topics", 0, UP, Array(&Struct(&[
        f("Name", 0, UP, Str),
        f("Partitions", 0, UP, Array(&Struct(&[
            f("PartitionIndex", 0, UP, I32),
            f("ErrorCode", 0, UP, I16),
        ]))),
    ]))),
]);

const OFFSET_FETCH: Message = message(9, "OffsetFetch", (0, 9), (6, UP), &[
    f("ThrottleTimeMs", 3, UP, I32),
    f("Topics", 0, 7, Array(&Struct(&[
        f("Name", 0, 7, Str),
        f("Partitions", 0, 7, Array(&Struct(&[
            f("PartitionIndex", 0, 7, I32),
            f("CommittedOffset", 0, 7, I64),
            f("CommittedLeaderEpoch", 5, 7, I32),
            f("Metadata", 0, 7, Str).nullable(0, 7),
            f("ErrorCode", 0, 7, I16),
        ]))),
    ]))),
    f("ErrorCode", 2, 7, I16),
    f("Groups", 8, UP, Array(&Struct(&[
        f("GroupId", 8, UP, Str),
        f("Topics", 8, UP, Array(&Struct(&[
            f("Name", 8, UP, Str),
            f("Partitions", 8, UP, Array(&Struct(&[
                f("PartitionIndex", 8, UP, I32),
                f("CommittedOffset", 8, UP, I64),
                f("CommittedLeaderEpoch", 8, UP, I32),
                f("Metadata", 8, UP, Str).nullable(8, UP),
                f("ErrorCode", 8, UP, I16),
            ]))),
        ]))),
        f("ErrorCode", 8, UP, I16),
    ]))),
]);

const PRODUCE: Message = message(0, "Produce", (0, 11), (9, UP), &[
    f("Responses", 0, UP, Array(&Struct(&[
        f("Name", 0, UP, Str),
        f("PartitionResponses", 0, UP, Array(&Struct(&[
            f("Index", 0, UP, I32),
            f("ErrorCode", 0, UP, I16),
            f("BaseOffset", 0, UP, I64),
            f("LogAppendTimeMs", 2, UP, I64),
            f("LogStartOffset", 5, UP, I64),
            f("RecordErrors", 8, UP, Array(&Struct(&[
                f("BatchIndex", 8, UP, I32),
                f("BatchIndexErrorMessage", 8, UP, Str).nullable(8, UP),
            ]))),
            f("ErrorMessage", 8, UP, Str).nullable(8, UP),
            f("CurrentLeader", 10, UP, Struct(&[
                f("LeaderId", 10, UP, I32),
                f("LeaderEpoch", 10, UP, I32),
            ])).tagged(0),
        ]))),
    ]))),
    f("ThrottleTimeMs", 1, UP, I32),
    f("NodeEndpoints", 10, UP, Array(&Struct(&[
        f("NodeId", 10, UP, I32),
        f("Host", 10, UP, Str),
        f("Port", 10, UP, I32),
        f("Rack", 10, UP, Str).nullable(10, UP),
    ]))).tagged(0),
]);

const SASL_HANDSHAKE: Message = message(17, "SaslHandshake", (0, 1), NONE, &[
    f("ErrorCode", 0, UP, I16),
    f("Mechanisms", 0, UP, Array(&Str)),
]);

const SASL_AUTHENTICATE: Message = message(36, "SaslAuthenticate", (0, 2), (2, UP), &[
    f("ErrorCode", 0, UP, I16),
    f("ErrorMessage", 0, UP, Str).nullable(0, UP),
    f("AuthBytes", 0, UP, Bytes),
    f("SessionLifetimeMs", 1, UP, I64),
]);

const DESCRIBE_USER_SCRAM_CREDENTIALS: Message = message(50, "DescribeUserScramCredentials", (0, 0), (0, UP), &[
    f("ThrottleTimeMs", 0, UP, I32),
    f("ErrorCode", 0, UP, I16),
    f("ErrorMessage", 0, UP, Str).nullable(0, UP),
    f("Results", 0, UP, Array(&Struct(&[
        f("User", 0, UP, Str),
        f("ErrorCode", 0, UP, I16),
        f("ErrorMessage", 0, UP, Str).nullable(0, UP),
        f("CredentialInfos", 0, UP, Array(&Struct(&[
            f("Mechanism", 0, UP, I8),
            f("Iterations", 0, UP, I32),
        ]))),
    ]))),
]);

const ALTER_USER_SCRAM_CREDENTIALS: Message = message(51, "AlterUserScramCredentials", (0, 0), (0, UP), &[
    f("ThrottleTimeMs", 0, UP, I32),
    f("Results", 0, UP, Array(&Struct(&[
        f("User", 0, UP, Str),
        f("ErrorCode", 0, UP, I16),
        f("ErrorMessage", 0, UP, Str).nullable(0, UP),
    ]))),
]);

const DESCRIBE_ACLS: Message = message(29, "DescribeAcls", (0, 3), (2, UP), &[
    f("ThrottleTimeMs", 0, UP, I32),
    f("ErrorCode", 0, UP, I16),
    f("ErrorMessage", 0, UP, Str).nullable(0, UP),
    f("Resources", 0, UP, Array(&Struct(&[
        f("ResourceType", 0, UP, I8),
        f("ResourceName", 0, UP, Str),
        f("PatternType", 1, UP, I8),
        f("Acls", 0, UP, Array(&Struct(&[
            f("Principal", 0, UP, Str),
            f("Host", 0, UP, Str),
            f("Operation", 0, UP, I8),
            f("PermissionType", 0, UP, I8),
        ]))),
    ]))),
]);

const CREATE_ACLS: Message = message(30, "CreateAcls", (0, 3), (2, UP), &[
    f("ThrottleTimeMs", 0, UP, I32),
    f("Results", 0, UP, Array(&Struct(&[
        f("ErrorCode", 0, UP, I16),
        f("ErrorMessage", 0, UP, Str).nullable(0, UP),
    ]))),
]);

const DELETE_ACLS: Message = message(31, "DeleteAcls", (0, 3), (2, UP), &[
    f("ThrottleTimeMs", 0, UP, I32),
    f("FilterResults", 0, UP, Array(&Struct(&[
        f("ErrorCode", 0, UP, I16),
        f("ErrorMessage", 0, UP, Str).nullable(0, UP),
        f("MatchingAcls", 0, UP, Array(&Struct(&[
            f("ErrorCode", 0, UP, I16),
            f("ErrorMessage", 0, UP, Str).nullable(0, UP),
            f("ResourceType", 0, UP, I8),
            f("ResourceName", 0, UP, Str),
            f("PatternType", 1, UP, I8),
            f("Principal", 0, UP, Str),
            f("Host", 0, UP, Str),
            f("Operation", 0, UP, I8),
            f("PermissionType", 0, UP, I8),
        ]))),
    ]))),
]);

const DESCRIBE_TRANSACTIONS: Message = message(65, "DescribeTransactions", (0, 0), (0, UP), &[
    f("ThrottleTimeMs", 0, UP, I32),
    f("TransactionStates", 0, UP, Array(&Struct(&[
        f("ErrorCode", 0, UP, I16),
        f("TransactionalId", 0, UP, Str),
        f("TransactionState", 0, UP, Str),
        f("TransactionTimeoutMs", 0, UP, I32),
        f("TransactionStartTimeMs", 0, UP, I64),
        f("ProducerId", 0, UP, I64),
        f("ProducerEpoch", 0, UP, I16),
        f("Topics", 0, UP, Array(&Struct(&[
            f("Topic", 0, UP, Str),
            f("Partitions", 0, UP, Array(&I32)),
        ]))),
    ]))),
]);

const LIST_TRANSACTIONS: Message = message(66, "ListTransactions", (0, 2), (0, UP), &[
    f("ThrottleTimeMs", 0, UP, I32),
    f("ErrorCode", 0, UP, I16),
    f("UnknownStateFilters", 0, UP, Array(&Str)),
    f("TransactionStates", 0, UP, Array(&Struct(&[
        f("TransactionalId", 0, UP, Str),
        f("ProducerId", 0, UP, I64),
        f("TransactionState", 0, UP, Str),
    ]))),
]);
