//! Request bodies of the APIs the broker serves or will serve (SASL, ACLs, SCRAM users,
//! transactions), as the Kafka protocol specification defines them. The bounds checker walks a
//! request against its entry before the kafka-protocol decoder reads it.
//!
//! `f(name, lo, hi, type)`: a field of versions lo..=hi (`UP`: and later). One field per line,
//! as in the specification; rustfmt leaves these tables alone.

use super::schema::Type::*;
use super::schema::{f, message, Message, NONE, UP};

pub(super) const REQUESTS: &[Message] = &[
    PRODUCE,
    FETCH,
    LIST_OFFSETS,
    METADATA,
    OFFSET_COMMIT,
    OFFSET_FETCH,
    FIND_COORDINATOR,
    JOIN_GROUP,
    HEARTBEAT,
    LEAVE_GROUP,
    SYNC_GROUP,
    DESCRIBE_GROUPS,
    LIST_GROUPS,
    SASL_HANDSHAKE,
    API_VERSIONS,
    CREATE_TOPICS,
    DELETE_TOPICS,
    DELETE_RECORDS,
    INIT_PRODUCER_ID,
    OFFSET_FOR_LEADER_EPOCH,
    ADD_PARTITIONS_TO_TXN,
    ADD_OFFSETS_TO_TXN,
    END_TXN,
    WRITE_TXN_MARKERS,
    TXN_OFFSET_COMMIT,
    DESCRIBE_ACLS,
    CREATE_ACLS,
    DELETE_ACLS,
    DESCRIBE_CONFIGS,
    ALTER_CONFIGS,
    SASL_AUTHENTICATE,
    CREATE_PARTITIONS,
    DELETE_GROUPS,
    INCREMENTAL_ALTER_CONFIGS,
    OFFSET_DELETE,
    DESCRIBE_USER_SCRAM_CREDENTIALS,
    ALTER_USER_SCRAM_CREDENTIALS,
    DESCRIBE_CLUSTER,
    DESCRIBE_PRODUCERS,
    DESCRIBE_TRANSACTIONS,
    LIST_TRANSACTIONS,
    DESCRIBE_TOPIC_PARTITIONS,
];

const PRODUCE: Message = message(0, "Produce", (0, 11), (9, UP), &[
    f("TransactionalId", 3, UP, Str).nullable(3, UP),
    f("Acks", 0, UP, I16),
    f("TimeoutMs", 0, UP, I32),
    f("TopicData", 0, UP, Array(&Struct(&[
        f("Name", 0, UP, Str),
        f("PartitionData", 0, UP, Array(&Struct(&[
            f("Index", 0, UP, I32),
            f("Records", 0, UP, Records).nullable(0, UP),
        ]))),
    ]))),
]);

const FETCH: Message = message(1, "Fetch", (0, 17), (12, UP), &[
    f("ClusterId", 12, UP, Str).nullable(12, UP).tagged(0),
    f("ReplicaId", 0, 14, I32),
    f("ReplicaState", 15, UP, Struct(&[
        f("ReplicaId", 15, UP, I32),
        f("ReplicaEpoch", 15, UP, I64),
    ])).tagged(1),
    f("MaxWaitMs", 0, UP, I32),
    f("MinBytes", 0, UP, I32),
    f("MaxBytes", 3, UP, I32),
    f("IsolationLevel", 4, UP, I8),
    f("SessionId", 7, UP, I32),
    f("SessionEpoch", 7, UP, I32),
    f("Topics", 0, UP, Array(&Struct(&[
        f("Topic", 0, 12, Str),
        f("TopicId", 13, UP, Uuid),
        f("Partitions", 0, UP, Array(&Struct(&[
            f("Partition", 0, UP, I32),
            f("CurrentLeaderEpoch", 9, UP, I32),
            f("FetchOffset", 0, UP, I64),
            f("LastFetchedEpoch", 12, UP, I32),
            f("LogStartOffset", 5, UP, I64),
            f("PartitionMaxBytes", 0, UP, I32),
            f("ReplicaDirectoryId", 17, UP, Uuid).tagged(0),
        ]))),
    ]))),
    f("ForgottenTopicsData", 7, UP, Array(&Struct(&[
        f("Topic", 7, 12, Str),
        f("TopicId", 13, UP, Uuid),
        f("Partitions", 7, UP, Array(&I32)),
    ]))),
    f("RackId", 11, UP, Str),
]);

const LIST_OFFSETS: Message = message(2, "ListOffsets", (0, 10), (6, UP), &[
    f("ReplicaId", 0, UP, I32),
    f("IsolationLevel", 2, UP, I8),
    f("Topics", 0, UP, Array(&Struct(&[
        f("Name", 0, UP, Str),
        f("Partitions", 0, UP, Array(&Struct(&[
            f("PartitionIndex", 0, UP, I32),
            f("CurrentLeaderEpoch", 4, UP, I32),
            f("Timestamp", 0, UP, I64),
            f("MaxNumOffsets", 0, 0, I32),
        ]))),
    ]))),
    f("TimeoutMs", 10, UP, I32),
]);

const METADATA: Message = message(3, "Metadata", (0, 12), (9, UP), &[
    f("Topics", 0, UP, Array(&Struct(&[
        f("TopicId", 10, UP, Uuid),
        f("Name", 0, UP, Str).nullable(10, UP),
    ]))).nullable(1, UP),
    f("AllowAutoTopicCreation", 4, UP, Bool),
    f("IncludeClusterAuthorizedOperations", 8, 10, Bool),
    f("IncludeTopicAuthorizedOperations", 8, UP, Bool),
]);

const OFFSET_COMMIT: Message = message(8, "OffsetCommit", (0, 9), (8, UP), &[
    f("GroupId", 0, UP, Str),
    f("GenerationIdOrMemberEpoch", 1, UP, I32),
    f("MemberId", 1, UP, Str),
    f("GroupInstanceId", 7, UP, Str).nullable(7, UP),
    f("RetentionTimeMs", 2, 4, I64),
    f("Topics", 0, UP, Array(&Struct(&[
        f("Name", 0, UP, Str),
        f("Partitions", 0, UP, Array(&Struct(&[
            f("PartitionIndex", 0, UP, I32),
            f("CommittedOffset", 0, UP, I64),
            f("CommittedLeaderEpoch", 6, UP, I32),
            f("CommitTimestamp", 1, 1, I64),
            f("CommittedMetadata", 0, UP, Str).nullable(0, UP),
        ]))),
    ]))),
]);

const OFFSET_FETCH: Message = message(9, "OffsetFetch", (0, 9), (6, UP), &[
    f("GroupId", 0, 7, Str),
    f("Topics", 0, 7, Array(&Struct(&[
        f("Name", 0, 7, Str),
        f("PartitionIndexes", 0, 7, Array(&I32)),
    ]))).nullable(2, 7),
    f("Groups", 8, UP, Array(&Struct(&[
        f("GroupId", 8, UP, Str),
        f("MemberId", 9, UP, Str).nullable(9, UP),
        f("MemberEpoch", 9, UP, I32),
        f("Topics", 8, UP, Array(&Struct(&[
            f("Name", 8, UP, Str),
            f("PartitionIndexes", 8, UP, Array(&I32)),
        ]))).nullable(8, UP),
    ]))),
    f("RequireStable", 7, UP, Bool),
]);

const FIND_COORDINATOR: Message = message(10, "FindCoordinator", (0, 6), (3, UP), &[
    f("Key", 0, 3, Str),
    f("KeyType", 1, UP, I8),
    f("CoordinatorKeys", 4, UP, Array(&Str)),
]);

const JOIN_GROUP: Message = message(11, "JoinGroup", (0, 9), (6, UP), &[
    f("GroupId", 0, UP, Str),
    f("SessionTimeoutMs", 0, UP, I32),
    f("RebalanceTimeoutMs", 1, UP, I32),
    f("MemberId", 0, UP, Str),
    f("GroupInstanceId", 5, UP, Str).nullable(5, UP),
    f("ProtocolType", 0, UP, Str),
    f("Protocols", 0, UP, Array(&Struct(&[
        f("Name", 0, UP, Str),
        f("Metadata", 0, UP, Bytes),
    ]))),
    f("Reason", 8, UP, Str).nullable(8, UP),
]);

const HEARTBEAT: Message = message(12, "Heartbeat", (0, 4), (4, UP), &[
    f("GroupId", 0, UP, Str),
    f("GenerationId", 0, UP, I32),
    f("MemberId", 0, UP, Str),
    f("GroupInstanceId", 3, UP, Str).nullable(3, UP),
]);

const LEAVE_GROUP: Message = message(13, "LeaveGroup", (0, 5), (4, UP), &[
    f("GroupId", 0, UP, Str),
    f("MemberId", 0, 2, Str),
    f("Members", 3, UP, Array(&Struct(&[
        f("MemberId", 3, UP, Str),
        f("GroupInstanceId", 3, UP, Str).nullable(3, UP),
        f("Reason", 5, UP, Str).nullable(5, UP),
    ]))),
]);

const SYNC_GROUP: Message = message(14, "SyncGroup", (0, 5), (4, UP), &[
    f("GroupId", 0, UP, Str),
    f("GenerationId", 0, UP, I32),
    f("MemberId", 0, UP, Str),
    f("GroupInstanceId", 3, UP, Str).nullable(3, UP),
    f("ProtocolType", 5, UP, Str).nullable(5, UP),
    f("ProtocolName", 5, UP, Str).nullable(5, UP),
    f("Assignments", 0, UP, Array(&Struct(&[
        f("MemberId", 0, UP, Str),
        f("Assignment", 0, UP, Bytes),
    ]))),
]);

const DESCRIBE_GROUPS: Message = message(15, "DescribeGroups", (0, 6), (5, UP), &[
    f("Groups", 0, UP, Array(&Str)),
    f("IncludeAuthorizedOperations", 3, UP, Bool),
]);

const LIST_GROUPS: Message = message(16, "ListGroups", (0, 5), (3, UP), &[
    f("StatesFilter", 4, UP, Array(&Str)),
    f("TypesFilter", 5, UP, Array(&Str)),
]);

const SASL_HANDSHAKE: Message = message(17, "SaslHandshake", (0, 1), NONE, &[
    f("Mechanism", 0, UP, Str),
]);

const API_VERSIONS: Message = message(18, "ApiVersions", (0, 4), (3, UP), &[
    f("ClientSoftwareName", 3, UP, Str),
    f("ClientSoftwareVersion", 3, UP, Str),
]);

const CREATE_TOPICS: Message = message(19, "CreateTopics", (0, 7), (5, UP), &[
    f("Topics", 0, UP, Array(&Struct(&[
        f("Name", 0, UP, Str),
        f("NumPartitions", 0, UP, I32),
        f("ReplicationFactor", 0, UP, I16),
        f("Assignments", 0, UP, Array(&Struct(&[
            f("PartitionIndex", 0, UP, I32),
            f("BrokerIds", 0, UP, Array(&I32)),
        ]))),
        f("Configs", 0, UP, Array(&Struct(&[
            f("Name", 0, UP, Str),
            f("Value", 0, UP, Str).nullable(0, UP),
        ]))),
    ]))),
    f("timeoutMs", 0, UP, I32),
    f("validateOnly", 1, UP, Bool),
]);

const DELETE_TOPICS: Message = message(20, "DeleteTopics", (0, 6), (4, UP), &[
    f("Topics", 6, UP, Array(&Struct(&[
        f("Name", 6, UP, Str).nullable(6, UP),
        f("TopicId", 6, UP, Uuid),
    ]))),
    f("TopicNames", 0, 5, Array(&Str)),
    f("TimeoutMs", 0, UP, I32),
]);

const DELETE_RECORDS: Message = message(21, "DeleteRecords", (0, 2), (2, UP), &[
    f("Topics", 0, UP, Array(&Struct(&[
        f("Name", 0, UP, Str),
        f("Partitions", 0, UP, Array(&Struct(&[
            f("PartitionIndex", 0, UP, I32),
            f("Offset", 0, UP, I64),
        ]))),
    ]))),
    f("TimeoutMs", 0, UP, I32),
]);

const INIT_PRODUCER_ID: Message = message(22, "InitProducerId", (0, 5), (2, UP), &[
    f("TransactionalId", 0, UP, Str).nullable(0, UP),
    f("TransactionTimeoutMs", 0, UP, I32),
    f("ProducerId", 3, UP, I64),
    f("ProducerEpoch", 3, UP, I16),
]);

const OFFSET_FOR_LEADER_EPOCH: Message = message(23, "OffsetForLeaderEpoch", (0, 4), (4, UP), &[
    f("ReplicaId", 3, UP, I32),
    f("Topics", 0, UP, Array(&Struct(&[
        f("Topic", 0, UP, Str),
        f("Partitions", 0, UP, Array(&Struct(&[
            f("Partition", 0, UP, I32),
            f("CurrentLeaderEpoch", 2, UP, I32),
            f("LeaderEpoch", 0, UP, I32),
        ]))),
    ]))),
]);

const ADD_PARTITIONS_TO_TXN: Message = message(24, "AddPartitionsToTxn", (0, 5), (3, UP), &[
    f("Transactions", 4, UP, Array(&Struct(&[
        f("TransactionalId", 4, UP, Str),
        f("ProducerId", 4, UP, I64),
        f("ProducerEpoch", 4, UP, I16),
        f("VerifyOnly", 4, UP, Bool),
        f("Topics", 4, UP, Array(&Struct(&[
            f("Name", 0, UP, Str),
            f("Partitions", 0, UP, Array(&I32)),
        ]))),
    ]))),
    f("V3AndBelowTransactionalId", 0, 3, Str),
    f("V3AndBelowProducerId", 0, 3, I64),
    f("V3AndBelowProducerEpoch", 0, 3, I16),
    f("V3AndBelowTopics", 0, 3, Array(&Struct(&[
        f("Name", 0, UP, Str),
        f("Partitions", 0, UP, Array(&I32)),
    ]))),
]);

const ADD_OFFSETS_TO_TXN: Message = message(25, "AddOffsetsToTxn", (0, 4), (3, UP), &[
    f("TransactionalId", 0, UP, Str),
    f("ProducerId", 0, UP, I64),
    f("ProducerEpoch", 0, UP, I16),
    f("GroupId", 0, UP, Str),
]);

const END_TXN: Message = message(26, "EndTxn", (0, 5), (3, UP), &[
    f("TransactionalId", 0, UP, Str),
    f("ProducerId", 0, UP, I64),
    f("ProducerEpoch", 0, UP, I16),
    f("Committed", 0, UP, Bool),
]);

const WRITE_TXN_MARKERS: Message = message(27, "WriteTxnMarkers", (0, 1), (1, UP), &[
    f("Markers", 0, UP, Array(&Struct(&[
        f("ProducerId", 0, UP, I64),
        f("ProducerEpoch", 0, UP, I16),
        f("TransactionResult", 0, UP, Bool),
        f("Topics", 0, UP, Array(&Struct(&[
            f("Name", 0, UP, Str),
            f("PartitionIndexes", 0, UP, Array(&I32)),
        ]))),
        f("CoordinatorEpoch", 0, UP, I32),
    ]))),
]);

const TXN_OFFSET_COMMIT: Message = message(28, "TxnOffsetCommit", (0, 4), (3, UP), &[
    f("TransactionalId", 0, UP, Str),
    f("GroupId", 0, UP, Str),
    f("ProducerId", 0, UP, I64),
    f("ProducerEpoch", 0, UP, I16),
    f("GenerationId", 3, UP, I32),
    f("MemberId", 3, UP, Str),
    f("GroupInstanceId", 3, UP, Str).nullable(3, UP),
    f("Topics", 0, UP, Array(&Struct(&[
        f("Name", 0, UP, Str),
        f("Partitions", 0, UP, Array(&Struct(&[
            f("PartitionIndex", 0, UP, I32),
            f("CommittedOffset", 0, UP, I64),
            f("CommittedLeaderEpoch", 2, UP, I32),
            f("CommittedMetadata", 0, UP, Str).nullable(0, UP),
        ]))),
    ]))),
]);

const DESCRIBE_ACLS: Message = message(29, "DescribeAcls", (0, 3), (2, UP), &[
    f("ResourceTypeFilter", 0, UP, I8),
    f("ResourceNameFilter", 0, UP, Str).nullable(0, UP),
    f("PatternTypeFilter", 1, UP, I8),
    f("PrincipalFilter", 0, UP, Str).nullable(0, UP),
    f("HostFilter", 0, UP, Str).nullable(0, UP),
    f("Operation", 0, UP, I8),
    f("PermissionType", 0, UP, I8),
]);

const CREATE_ACLS: Message = message(30, "CreateAcls", (0, 3), (2, UP), &[
    f("Creations", 0, UP, Array(&Struct(&[
        f("ResourceType", 0, UP, I8),
        f("ResourceName", 0, UP, Str),
        f("ResourcePatternType", 1, UP, I8),
        f("Principal", 0, UP, Str),
        f("Host", 0, UP, Str),
        f("Operation", 0, UP, I8),
        f("PermissionType", 0, UP, I8),
    ]))),
]);

const DELETE_ACLS: Message = message(31, "DeleteAcls", (0, 3), (2, UP), &[
    f("Filters", 0, UP, Array(&Struct(&[
        f("ResourceTypeFilter", 0, UP, I8),
        f("ResourceNameFilter", 0, UP, Str).nullable(0, UP),
        f("PatternTypeFilter", 1, UP, I8),
        f("PrincipalFilter", 0, UP, Str).nullable(0, UP),
        f("HostFilter", 0, UP, Str).nullable(0, UP),
        f("Operation", 0, UP, I8),
        f("PermissionType", 0, UP, I8),
    ]))),
]);

const DESCRIBE_CONFIGS: Message = message(32, "DescribeConfigs", (0, 4), (4, UP), &[
    f("Resources", 0, UP, Array(&Struct(&[
        f("ResourceType", 0, UP, I8),
        f("ResourceName", 0, UP, Str),
        f("ConfigurationKeys", 0, UP, Array(&Str)).nullable(0, UP),
    ]))),
    f("IncludeSynonyms", 1, UP, Bool),
    f("IncludeDocumentation", 3, UP, Bool),
]);

const ALTER_CONFIGS: Message = message(33, "AlterConfigs", (0, 2), (2, UP), &[
    f("Resources", 0, UP, Array(&Struct(&[
        f("ResourceType", 0, UP, I8),
        f("ResourceName", 0, UP, Str),
        f("Configs", 0, UP, Array(&Struct(&[
            f("Name", 0, UP, Str),
            f("Value", 0, UP, Str).nullable(0, UP),
        ]))),
    ]))),
    f("ValidateOnly", 0, UP, Bool),
]);

const SASL_AUTHENTICATE: Message = message(36, "SaslAuthenticate", (0, 2), (2, UP), &[
    f("AuthBytes", 0, UP, Bytes),
]);

const CREATE_PARTITIONS: Message = message(37, "CreatePartitions", (0, 3), (2, UP), &[
    f("Topics", 0, UP, Array(&Struct(&[
        f("Name", 0, UP, Str),
        f("Count", 0, UP, I32),
        f("Assignments", 0, UP, Array(&Struct(&[
            f("BrokerIds", 0, UP, Array(&I32)),
        ]))).nullable(0, UP),
    ]))),
    f("TimeoutMs", 0, UP, I32),
    f("ValidateOnly", 0, UP, Bool),
]);

const DELETE_GROUPS: Message = message(42, "DeleteGroups", (0, 2), (2, UP), &[
    f("GroupsNames", 0, UP, Array(&Str)),
]);

const INCREMENTAL_ALTER_CONFIGS: Message = message(44, "IncrementalAlterConfigs", (0, 1), (1, UP), &[
    f("Resources", 0, UP, Array(&Struct(&[
        f("ResourceType", 0, UP, I8),
        f("ResourceName", 0, UP, Str),
        f("Configs", 0, UP, Array(&Struct(&[
            f("Name", 0, UP, Str),
            f("ConfigOperation", 0, UP, I8),
            f("Value", 0, UP, Str).nullable(0, UP),
        ]))),
    ]))),
    f("ValidateOnly", 0, UP, Bool),
]);

const OFFSET_DELETE: Message = message(47, "OffsetDelete", (0, 0), NONE, &[
    f("GroupId", 0, UP, Str),
    f("Topics", 0, UP, Array(&Struct(&[
        f("Name", 0, UP, Str),
        f("Partitions", 0, UP, Array(&Struct(&[
            f("PartitionIndex", 0, UP, I32),
        ]))),
    ]))),
]);

const DESCRIBE_USER_SCRAM_CREDENTIALS: Message = message(50, "DescribeUserScramCredentials", (0, 0), (0, UP), &[
    f("Users", 0, UP, Array(&Struct(&[
        f("Name", 0, UP, Str),
    ]))).nullable(0, UP),
]);

const ALTER_USER_SCRAM_CREDENTIALS: Message = message(51, "AlterUserScramCredentials", (0, 0), (0, UP), &[
    f("Deletions", 0, UP, Array(&Struct(&[
        f("Name", 0, UP, Str),
        f("Mechanism", 0, UP, I8),
    ]))),
    f("Upsertions", 0, UP, Array(&Struct(&[
        f("Name", 0, UP, Str),
        f("Mechanism", 0, UP, I8),
        f("Iterations", 0, UP, I32),
        f("Salt", 0, UP, Bytes),
        f("SaltedPassword", 0, UP, Bytes),
    ]))),
]);

const DESCRIBE_CLUSTER: Message = message(60, "DescribeCluster", (0, 2), (0, UP), &[
    f("IncludeClusterAuthorizedOperations", 0, UP, Bool),
    f("EndpointType", 1, UP, I8),
    f("IncludeFencedBrokers", 2, UP, Bool),
]);

const DESCRIBE_PRODUCERS: Message = message(61, "DescribeProducers", (0, 0), (0, UP), &[
    f("Topics", 0, UP, Array(&Struct(&[
        f("Name", 0, UP, Str),
        f("PartitionIndexes", 0, UP, Array(&I32)),
    ]))),
]);

const DESCRIBE_TRANSACTIONS: Message = message(65, "DescribeTransactions", (0, 0), (0, UP), &[
    f("TransactionalIds", 0, UP, Array(&Str)),
]);

const LIST_TRANSACTIONS: Message = message(66, "ListTransactions", (0, 2), (0, UP), &[
    f("StateFilters", 0, UP, Array(&Str)),
    f("ProducerIdFilters", 0, UP, Array(&I64)),
    f("DurationFilter", 1, UP, I64),
    f("TransactionalIdPattern", 2, UP, Str).nullable(2, UP),
]);

const DESCRIBE_TOPIC_PARTITIONS: Message = message(75, "DescribeTopicPartitions", (0, 0), (0, UP), &[
    f("Topics", 0, UP, Array(&Struct(&[
        f("Name", 0, UP, Str),
    ]))),
    f("ResponsePartitionLimit", 0, UP, I32),
    f("Cursor", 0, UP, Struct(&[
        f("TopicName", 0, UP, Str),
        f("PartitionIndex", 0, UP, I32),
    ])).nullable(0, UP),
]);
