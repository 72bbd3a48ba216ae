//! The table itself: one constant per setting (the core config structs read their defaults
//! from these), and [`SETTINGS`] listing them in the order the docs show them.

use super::{DefaultValue, FixedConfig, Kind, Scope, Section, Setting};
use crate::topic_config::ConfigType;

const MAX: i64 = i64::MAX;
const I32: i64 = i32::MAX as i64;

const fn setting(
    name: &'static str,
    section: Section,
    kind: Kind,
    default: DefaultValue,
    doc: &'static str,
) -> Setting {
    Setting {
        name,
        section,
        kind,
        default,
        doc,
        scope: Scope::Broker,
        described: false,
        per_listener: false,
    }
}

/// A listener can override it (`listener.name.NAME.SETTING`).
const fn per_listener(s: Setting) -> Setting {
    Setting {
        per_listener: true,
        ..s
    }
}

/// Reported by DescribeConfigs.
const fn described(s: Setting) -> Setting {
    Setting {
        described: true,
        ..s
    }
}

/// Reported by DescribeConfigs, and the default of a topic config.
const fn topic_default(s: Setting, topic_config: &'static str) -> Setting {
    Setting {
        described: true,
        scope: Scope::TopicDefault(topic_config),
        ..s
    }
}

const fn int(min: i64, max: i64) -> Kind {
    Kind::Int { min, max }
}

const fn long(min: i64, max: i64) -> Kind {
    Kind::Long { min, max }
}

use DefaultValue as D;
use Section as S;

// Broker.
pub const LISTEN: Setting = setting("listen", S::Broker, Kind::Text("HOST:PORT with a numeric IP"),
    D::Text("127.0.0.1:9092"), "Kafka listener");
pub const ADVERTISED_LISTENER: Setting = setting("advertised.listener", S::Broker,
    Kind::Text("HOST:PORT"), D::Unset("the bound listen address"),
    "host and port clients are told to connect to (Metadata); required with a wildcard listen");
pub const HTTP_LISTEN: Setting = setting("http.listen", S::Broker,
    Kind::Text("HOST:PORT with a numeric IP"), D::Text("127.0.0.1:9093"),
    "listener of /healthz, /readyz and /metrics");
pub const LOG_FORMAT: Setting = setting("log.format", S::Broker, Kind::OneOf(&["text", "json"]),
    D::Text("text"), "format of the broker's own log; the level comes from RUST_LOG (default info)");
pub const SOCKET_REQUEST_MAX_BYTES: Setting = described(setting("socket.request.max.bytes",
    S::Broker, int(1, MAX), D::Int(100 << 20),
    "largest request accepted; larger frames are refused before anything is allocated"));
pub const MESSAGE_MAX_BYTES: Setting = topic_default(setting("message.max.bytes", S::Broker,
    int(1, MAX), D::Int(1_048_588),
    "largest record batch accepted (at most socket.request.max.bytes); larger ones get MESSAGE_TOO_LARGE"),
    "max.message.bytes");
pub const AUTO_CREATE_TOPICS_ENABLE: Setting = described(setting("auto.create.topics.enable",
    S::Broker, Kind::Bool, D::Bool(true), "create unknown topics on metadata requests"));
pub const NUM_PARTITIONS: Setting = described(setting("num.partitions", S::Broker,
    int(1, crate::topic::MAX_PARTITIONS as i64), D::Int(1),
    "partitions of auto-created topics (and of CreateTopics asking for -1)"));

// Security: listeners as Kafka names them, TLS, SASL.
pub const LISTENERS: Setting = setting("listeners", S::Security,
    Kind::Text("NAME://HOST:PORT, comma-separated; HOST a numeric IP, empty for all interfaces"),
    D::Unset("PLAINTEXT://{listen}"),
    "the Kafka listeners; a name's protocol comes from listener.security.protocol.map");
pub const ADVERTISED_LISTENERS: Setting = setting("advertised.listeners", S::Security,
    Kind::Text("NAME://HOST:PORT, comma-separated"), D::Unset("each listener's bound address"),
    "where clients reach each listener (Metadata answers with the addresses of the listener asked)");
pub const LISTENER_SECURITY_PROTOCOL_MAP: Setting = setting("listener.security.protocol.map",
    S::Security, Kind::Text("NAME:PROTOCOL, comma-separated"),
    D::Text("PLAINTEXT:PLAINTEXT,SSL:SSL,SASL_PLAINTEXT:SASL_PLAINTEXT,SASL_SSL:SASL_SSL"),
    "the security protocol of each listener name: PLAINTEXT, SSL, SASL_PLAINTEXT or SASL_SSL");
pub const INTER_BROKER_LISTENER_NAME: Setting = setting("inter.broker.listener.name",
    S::Security, Kind::Text("a listener name"), D::Unset("the first listener"),
    "the listener brokers reach each other on (transaction markers and the verification of transactional batches); must name a listener");
pub const INTER_BROKER_CLIENT_CONFIG: Setting = setting("inter.broker.client.config",
    S::Security, Kind::Text("a file"), D::Unset("none: PLAINTEXT"),
    "client properties (the CLI's --command-config format: security.protocol, sasl.*, ssl.*) with which this broker connects to the others on the inter-broker listener; needed when that listener is not PLAINTEXT, and its security.protocol must be the listener's");
pub const SSL_KEYSTORE_TYPE: Setting = per_listener(setting("ssl.keystore.type", S::Security,
    Kind::OneOf(&["PEM"]), D::Text("PEM"), "format of the key store; PEM only"));
pub const SSL_KEYSTORE_LOCATION: Setting = per_listener(setting("ssl.keystore.location",
    S::Security, Kind::Text("a file"), D::Unset("none"),
    "PEM file with the private key and the certificate chain; reloaded when it changes"));
pub const SSL_KEYSTORE_CERTIFICATE_CHAIN: Setting = per_listener(setting(
    "ssl.keystore.certificate.chain", S::Security, Kind::Text("PEM text"), D::Unset("none"),
    "the certificate chain itself, instead of ssl.keystore.location"));
pub const SSL_KEYSTORE_KEY: Setting = per_listener(setting("ssl.keystore.key", S::Security,
    Kind::Text("PEM text"), D::Unset("none"),
    "the private key itself (unencrypted PKCS#8, PKCS#1 or SEC1), with ssl.keystore.certificate.chain"));
pub const SSL_TRUSTSTORE_TYPE: Setting = per_listener(setting("ssl.truststore.type",
    S::Security, Kind::OneOf(&["PEM"]), D::Text("PEM"), "format of the trust store; PEM only"));
pub const SSL_TRUSTSTORE_LOCATION: Setting = per_listener(setting("ssl.truststore.location",
    S::Security, Kind::Text("a file"), D::Unset("none"),
    "PEM file of the CA certificates client certificates are checked against; reloaded when it changes"));
pub const SSL_TRUSTSTORE_CERTIFICATES: Setting = per_listener(setting(
    "ssl.truststore.certificates", S::Security, Kind::Text("PEM text"), D::Unset("none"),
    "the CA certificates themselves, instead of ssl.truststore.location"));
pub const SSL_CLIENT_AUTH: Setting = per_listener(setting("ssl.client.auth", S::Security,
    Kind::OneOf(&["none", "requested", "required"]), D::Text("none"),
    "whether TLS clients present a certificate; its subject is then the principal"));
pub const SSL_PRINCIPAL_MAPPING_RULES: Setting = per_listener(setting(
    "ssl.principal.mapping.rules", S::Security,
    Kind::Text("DEFAULT or RULE:pattern/replacement/[LU], comma-separated"), D::Text("DEFAULT"),
    "how a client certificate's subject becomes the principal's name, as Kafka's rules"));
pub const SSL_ENABLED_PROTOCOLS: Setting = per_listener(setting("ssl.enabled.protocols",
    S::Security, Kind::Text("TLSv1.2 and/or TLSv1.3, comma-separated"), D::Text("TLSv1.2,TLSv1.3"),
    "TLS versions accepted"));
pub const SASL_ENABLED_MECHANISMS: Setting = per_listener(setting("sasl.enabled.mechanisms",
    S::Security, Kind::Text("PLAIN, SCRAM-SHA-256, SCRAM-SHA-512, comma-separated"),
    D::Text("PLAIN,SCRAM-SHA-256,SCRAM-SHA-512"),
    "SASL mechanisms offered on SASL listeners; every one checks the SCRAM users in the metadata store"));
pub const CONNECTION_FAILED_AUTHENTICATION_DELAY_MS: Setting = per_listener(setting(
    "connection.failed.authentication.delay.ms", S::Security, int(0, 60_000), D::Int(100),
    "how long a failed authentication waits before its answer and the close; an address that keeps failing waits twice as long each time, up to 10 s (0: no wait)"));
// Described: Kafka reports it, and clients read it (librdkafka's test 0142 runs only where
// it is set).
pub const CONNECTIONS_MAX_REAUTH_MS: Setting = described(per_listener(setting(
    "connections.max.reauth.ms", S::Security, long(0, MAX), D::Int(0),
    "lifetime of a SASL session (KIP-368): clients that support it re-authenticate on the same connection before it ends; a connection whose session has ended is closed at its next request, one that cannot re-authenticate (SaslAuthenticate v0) when it ends (0: sessions never end)")));
pub const AUTHORIZER_CLASS_NAME: Setting = setting("authorizer.class.name", S::Security,
    Kind::Text("acl, or Kafka's kafka.security.authorizer.AclAuthorizer or org.apache.kafka.metadata.authorizer.StandardAuthorizer"),
    D::Unset("none: every client may do everything"),
    "turns ACL enforcement on (ACLs are kept in the metadata store and apply on every broker)");
pub const SUPER_USERS: Setting = setting("super.users", S::Security,
    Kind::Text("User:NAME, separated by semicolons"), D::Unset("none"),
    "principals allowed everything when ACLs are enforced");
pub const ALLOW_EVERYONE_IF_NO_ACL_FOUND: Setting = setting("allow.everyone.if.no.acl.found",
    S::Security, Kind::Bool, D::Bool(false),
    "whether a resource no ACL names is open to everyone when ACLs are enforced");
pub const AUDIT_LOG_FILE: Setting = setting("audit.log.file", S::Security, Kind::Text("a file"),
    D::Unset("the broker's own log"),
    "file the audit trail (authentications, denials, changes of topics, configs, groups, ACLs and users) is appended to, one JSON line per event");
pub const AUDIT_LOG_ALLOWS: Setting = setting("audit.log.allows", S::Security, Kind::Bool,
    D::Bool(false),
    "whether the audit trail records authorization checks that are allowed too, not only denials (one event per check: many on a busy broker)");
pub const ENCRYPTION_KEYS: Setting = setting("encryption.keys", S::Security, Kind::Text("a file"),
    D::Unset("objects are stored unencrypted"),
    "key file for encryption at rest: one `ID:BASE64` line per 32-byte AES-256 key; the last line's key seals new objects, every key opens them (rotate by appending a line; the file is reread when it changes)");
pub const ENCRYPTION_ALLOW_UNENCRYPTED: Setting = setting("encryption.allow.unencrypted", S::Security,
    Kind::Bool, D::Bool(true),
    "whether objects without encryption (written before encryption.keys was set) are read as they are; false once every object is sealed makes an unencrypted object in the bucket an error");

// Cluster.
pub const BROKER_ID: Setting = described(setting("broker.id", S::Cluster, int(-1, I32),
    D::Unset("the lowest id no live broker holds"),
    "id of this broker; -1 or unset: allocated at registration. A restarted broker with a fixed id waits (up to two broker.session.timeout.ms) for its predecessor's registration to expire"));
pub const BROKER_RACK: Setting = setting("broker.rack", S::Cluster, Kind::Text("a rack name"),
    D::Unset("none"), "rack of this broker, returned in Metadata");
pub const BROKER_SESSION_TIMEOUT_MS: Setting = setting("broker.session.timeout.ms", S::Cluster,
    long(1_000, 300_000), D::Int(10_000),
    "lease of the broker's registration (etcd counts whole seconds): a broker that stops renewing it is gone, and its partitions move, after about this long");
pub const CONTROLLER_MAX_MOVES: Setting = setting("controller.max.moves", S::Cluster,
    int(1, MAX), D::Int(8),
    "partition hand-overs under way at once when the controller balances (orphaned partitions are reassigned at once, without this bound)");
pub const METADATA_STATUS_INTERVAL_MS: Setting = setting("metadata.status.interval.ms",
    S::Cluster, long(1, MAX), D::Int(5_000),
    "how often the broker reads the metadata store's status (database size, alarms) for /readyz and kafscale_metadata_store_*");
pub const METADATA_COMPACTION_INTERVAL_MS: Setting = setting("metadata.compaction.interval.ms",
    S::Cluster, long(1, MAX), D::Int(60_000),
    "how often the controller compacts the metadata store's history (etcd keeps every revision until compacted)");
pub const METADATA_COMPACTION_RETENTION_MS: Setting = setting(
    "metadata.compaction.retention.ms", S::Cluster, long(0, MAX), D::Int(300_000),
    "history kept by a compaction: it compacts up to the revision seen this long ago, so a watch that fell behind by less resumes without a full reload");
pub const METADATA_BACKUP_INTERVAL_MS: Setting = setting("metadata.backup.interval.ms",
    S::Cluster, long(0, MAX), D::Int(3_600_000),
    "how often the controller writes a backup of the metadata (one revision) to the object store, under _backups/metadata/ (0: never); restore one with kafscale metadata restore");
pub const METADATA_BACKUP_RETENTION: Setting = setting("metadata.backup.retention",
    S::Cluster, int(1, 100_000), D::Int(24),
    "metadata backups the controller keeps in the object store: the newest ones");
pub const SHUTDOWN_DRAIN_TIMEOUT_MS: Setting = setting("shutdown.drain.timeout.ms", S::Cluster,
    long(0, MAX), D::Int(30_000),
    "on SIGTERM, how long the broker waits for its partitions to be handed over before it flushes and leaves anyway");

// Storage.
pub const DATA_DIR: Setting = setting("data.dir", S::Storage, Kind::Text("a directory"),
    D::Text("kafscale-data"),
    "local object store (objects/) and embedded metadata (metadata/), relative to the working directory");
pub const EPHEMERAL: Setting = setting("ephemeral", S::Storage, Kind::Bool, D::Bool(false),
    "memory for both stores, nothing survives a restart; cannot be combined with data.dir, object.store or metadata");
pub const OBJECT_STORE: Setting = setting("object.store", S::Storage,
    Kind::Text("memory://, file:///abs/dir or s3://bucket[/prefix]"),
    D::Unset("file://<data.dir>/objects"), "object store URL");
pub const METADATA: Setting = setting("metadata", S::Storage,
    Kind::Text("memory://, embedded:///abs/dir or etcd://[user:password@][https://]host:port[,[https://]host:port...][/prefix]"),
    D::Unset("embedded://<data.dir>/metadata"),
    "metadata store URL; etcd is checked at start-up and every key lives under prefix/, so clusters can share an etcd");
pub const OBJECT_STORE_TIMEOUT_MS: Setting = setting("object.store.timeout.ms", S::Storage,
    long(1, MAX), D::Int(30_000), "bound on one object-store request");
pub const OBJECT_STORE_RETRIES: Setting = setting("object.store.retries", S::Storage,
    int(0, u32::MAX as i64 - 1), D::Int(2), "retries of idempotent object-store requests");

// Storage: the broker's own connections to etcd and S3.
pub const ETCD_TLS_CA_FILE: Setting = setting("etcd.tls.ca.file", S::Storage,
    Kind::Text("a PEM file"), D::Unset("the system's roots, with https:// endpoints"),
    "CA certificates etcd's server certificates are checked against; turns TLS towards etcd on (endpoints written https:// do too)");
pub const ETCD_TLS_CERT_FILE: Setting = setting("etcd.tls.cert.file", S::Storage,
    Kind::Text("a PEM file"), D::Unset("none"),
    "client certificate (chain) the broker shows etcd, for etcd's --client-cert-auth; with etcd.tls.key.file");
pub const ETCD_TLS_KEY_FILE: Setting = setting("etcd.tls.key.file", S::Storage,
    Kind::Text("a PEM file"), D::Unset("none"),
    "unencrypted private key (PKCS#8, PKCS#1 or SEC1) of etcd.tls.cert.file");
pub const ETCD_USERNAME: Setting = setting("etcd.username", S::Storage, Kind::Text("a user name"),
    D::Unset("none, or user:password@ in the metadata url"),
    "etcd user the broker authenticates as; with etcd.password");
pub const ETCD_PASSWORD: Setting = setting("etcd.password", S::Storage, Kind::Text("a password"),
    D::Unset("none"),
    "password of etcd.username; KAFSCALE_ETCD_PASSWORD keeps it off command lines and out of files");
pub const S3_TLS_CA_FILE: Setting = setting("s3.tls.ca.file", S::Storage,
    Kind::Text("a PEM file"), D::Unset("the system's roots"),
    "CA certificates trusted for an https:// S3 endpoint (AWS_ENDPOINT_URL), besides the system's roots");
pub const S3_SSE_TYPE: Setting = setting("s3.sse.type", S::Storage,
    Kind::OneOf(&["AES256", "aws:kms"]), D::Unset("none: the bucket's default encryption"),
    "server-side encryption asked for on every object written: AES256 (SSE-S3) or aws:kms (SSE-KMS)");
pub const S3_SSE_KMS_KEY_ID: Setting = setting("s3.sse.kms.key.id", S::Storage,
    Kind::Text("a KMS key id, ARN or alias"), D::Unset("the account's aws/s3 key"),
    "KMS key of s3.sse.type aws:kms");

// Log.
pub const FLUSH_MS: Setting = setting("flush.ms", S::Log, long(0, MAX), D::Int(0),
    "how long a flush may wait to gather batches (0: start as soon as the previous one is done; 100-250 on real S3 trades latency for fewer PUTs)");
pub const FLUSH_BYTES: Setting = setting("flush.bytes", S::Log, long(1, MAX), D::Int(4 << 20),
    "pending bytes that start a flush early");
pub const CACHE_BYTES: Setting = setting("cache.bytes", S::Log, long(1, MAX), D::Int(256 << 20),
    "chunk and segment-block cache for reads");
pub const PRODUCE_BUFFER_MAX_BYTES: Setting = setting("produce.buffer.max.bytes", S::Log,
    long(1, MAX), D::Int(256 << 20),
    "produced bytes the broker holds at most, pending or in flushes under way; beyond it, connections sending Produce are not read until flushes finish");
pub const READ_AHEAD_BYTES: Setting = setting("read.ahead.bytes", S::Log, long(0, MAX),
    D::Int(1 << 20), "segment bytes read beyond a fetch's need into the cache");
pub const LOG_SEGMENT_BYTES: Setting = topic_default(setting("log.segment.bytes", S::Log,
    int(1, u32::MAX as i64), D::Int(64 << 20), "segment.bytes of topics that do not set it: the largest segment a merge or a clean builds"),
    "segment.bytes");
pub const SEGMENT_BLOCK_BYTES: Setting = setting("segment.block.bytes", S::Log, long(1, MAX),
    D::Int(64 << 10), "block size of the segment index (fetch granularity)");
pub const COMPACTION_MIN_BYTES: Setting = setting("compaction.min.bytes", S::Log, long(0, MAX),
    D::Int(4 << 20), "unmerged chunk bytes of a partition that start a merge");
pub const LOG_CLEANER_DEDUPE_BUFFER_SIZE: Setting = described(setting(
    "log.cleaner.dedupe.buffer.size", S::Log, long(1 << 20, MAX), D::Int(128 << 20),
    "memory for the key map of one clean of a compacted partition (32 bytes a key); a partition with more distinct keys in its dirty segments is cleaned in several passes"));
pub const LOG_CLEANER_BACKOFF_MS: Setting = described(setting("log.cleaner.backoff.ms", S::Log,
    long(1, MAX), D::Int(15_000),
    "how often the partitions of compacted topics are checked for cleaning"));
pub const LOG_RETENTION_MS: Setting = topic_default(setting("log.retention.ms", S::Log,
    long(i64::MIN, MAX), D::Int(7 * 24 * 3600 * 1000),
    "retention.ms of topics that do not set it; negative = unlimited"), "retention.ms");
pub const LOG_RETENTION_BYTES: Setting = topic_default(setting("log.retention.bytes", S::Log,
    long(i64::MIN, MAX), D::Int(-1),
    "retention.bytes of topics that do not set it; negative = unlimited"), "retention.bytes");
pub const LOG_RETENTION_CHECK_INTERVAL_MS: Setting = described(setting(
    "log.retention.check.interval.ms", S::Log, long(1, MAX), D::Int(60_000),
    "how often retention is enforced"));
pub const CHECKPOINT_INTERVAL_MS: Setting = setting("checkpoint.interval.ms", S::Log,
    long(1, MAX), D::Int(30_000),
    "how often a broker checkpoints each partition it leads that took flushes since the last (the state that replaces the flush records before it)");
pub const CHECKPOINT_MAX_RECORDS: Setting = setting("checkpoint.max.records", S::Log,
    long(1, MAX), D::Int(256),
    "flush records of this broker not yet covered by a checkpoint that start a checkpoint round early (bounds the metadata a takeover reads)");
pub const GC_INTERVAL_MS: Setting = setting("gc.interval.ms", S::Log, long(1, MAX),
    D::Int(300_000), "how often unreferenced objects are collected");
pub const GC_GRACE_MS: Setting = setting("gc.grace.ms", S::Log, long(0, MAX), D::Int(600_000),
    "objects younger than this are never collected; it must exceed the longest time from an object's upload to the commit that references it (with 0 the collector can delete an object between the two: no cluster should use 0)");
pub const PRODUCER_ID_EXPIRATION_MS: Setting = setting("producer.id.expiration.ms", S::Log,
    int(1, MAX), D::Int(86_400_000),
    "an idempotent producer idle this long is forgotten by a partition");

// Consumer groups.
pub const GROUP_INITIAL_REBALANCE_DELAY_MS: Setting = described(setting(
    "group.initial.rebalance.delay.ms", S::Group, int(0, 300_000), D::Int(3_000),
    "how long the first join of an empty group waits for more members"));

pub const TRANSACTION_MAX_TIMEOUT_MS: Setting = described(setting(
    "transaction.max.timeout.ms", S::Group, int(1, i32::MAX as i64), D::Int(900_000),
    "the longest transaction.timeout.ms a transactional producer may ask for"));

pub const TRANSACTION_CLEANUP_INTERVAL_MS: Setting = described(setting(
    "transaction.abort.timed.out.transaction.cleanup.interval.ms", S::Group,
    int(1, 3_600_000), D::Int(10_000),
    "how often the transaction coordinator aborts transactions that outlived their timeout"));

/// Every broker setting, in the order the docs list them.
pub const SETTINGS: &[Setting] = &[
    LISTEN,
    ADVERTISED_LISTENER,
    HTTP_LISTEN,
    LOG_FORMAT,
    SOCKET_REQUEST_MAX_BYTES,
    MESSAGE_MAX_BYTES,
    AUTO_CREATE_TOPICS_ENABLE,
    NUM_PARTITIONS,
    BROKER_ID,
    BROKER_RACK,
    BROKER_SESSION_TIMEOUT_MS,
    CONTROLLER_MAX_MOVES,
    METADATA_STATUS_INTERVAL_MS,
    METADATA_COMPACTION_INTERVAL_MS,
    METADATA_COMPACTION_RETENTION_MS,
    METADATA_BACKUP_INTERVAL_MS,
    METADATA_BACKUP_RETENTION,
    SHUTDOWN_DRAIN_TIMEOUT_MS,
    DATA_DIR,
    EPHEMERAL,
    OBJECT_STORE,
    METADATA,
    OBJECT_STORE_TIMEOUT_MS,
    OBJECT_STORE_RETRIES,
    ETCD_TLS_CA_FILE,
    ETCD_TLS_CERT_FILE,
    ETCD_TLS_KEY_FILE,
    ETCD_USERNAME,
    ETCD_PASSWORD,
    S3_TLS_CA_FILE,
    S3_SSE_TYPE,
    S3_SSE_KMS_KEY_ID,
    FLUSH_MS,
    FLUSH_BYTES,
    CACHE_BYTES,
    PRODUCE_BUFFER_MAX_BYTES,
    READ_AHEAD_BYTES,
    LOG_SEGMENT_BYTES,
    SEGMENT_BLOCK_BYTES,
    COMPACTION_MIN_BYTES,
    LOG_CLEANER_DEDUPE_BUFFER_SIZE,
    LOG_CLEANER_BACKOFF_MS,
    LOG_RETENTION_MS,
    LOG_RETENTION_BYTES,
    LOG_RETENTION_CHECK_INTERVAL_MS,
    CHECKPOINT_INTERVAL_MS,
    CHECKPOINT_MAX_RECORDS,
    GC_INTERVAL_MS,
    GC_GRACE_MS,
    PRODUCER_ID_EXPIRATION_MS,
    GROUP_INITIAL_REBALANCE_DELAY_MS,
    TRANSACTION_MAX_TIMEOUT_MS,
    TRANSACTION_CLEANUP_INTERVAL_MS,
    LISTENERS,
    ADVERTISED_LISTENERS,
    LISTENER_SECURITY_PROTOCOL_MAP,
    INTER_BROKER_LISTENER_NAME,
    INTER_BROKER_CLIENT_CONFIG,
    SSL_KEYSTORE_TYPE,
    SSL_KEYSTORE_LOCATION,
    SSL_KEYSTORE_CERTIFICATE_CHAIN,
    SSL_KEYSTORE_KEY,
    SSL_TRUSTSTORE_TYPE,
    SSL_TRUSTSTORE_LOCATION,
    SSL_TRUSTSTORE_CERTIFICATES,
    SSL_CLIENT_AUTH,
    SSL_PRINCIPAL_MAPPING_RULES,
    SSL_ENABLED_PROTOCOLS,
    SASL_ENABLED_MECHANISMS,
    CONNECTION_FAILED_AUTHENTICATION_DELAY_MS,
    CONNECTIONS_MAX_REAUTH_MS,
    AUTHORIZER_CLASS_NAME,
    SUPER_USERS,
    ALLOW_EVERYONE_IF_NO_ACL_FOUND,
    AUDIT_LOG_FILE,
    AUDIT_LOG_ALLOWS,
    ENCRYPTION_KEYS,
    ENCRYPTION_ALLOW_UNENCRYPTED,
];

const fn fixed(
    name: &'static str,
    value: &'static str,
    config_type: ConfigType,
    doc: &'static str,
) -> FixedConfig {
    FixedConfig {
        name,
        value,
        config_type,
        doc,
    }
}

/// Kafka broker configs reported with the one value KafScale supports.
pub const FIXED_CONFIGS: &[FixedConfig] = &[
    fixed("default.replication.factor", "1", ConfigType::Int,
        "replication is done by the object store"),
    fixed("log.cleanup.policy", "delete", ConfigType::List,
        "the default of new topics; a topic sets compact or compact,delete with cleanup.policy"),
    fixed("compression.type", "producer", ConfigType::String,
        "the default of new topics (batches stored as sent); a topic sets a codec with compression.type"),
    fixed("log.message.timestamp.type", "CreateTime", ConfigType::String,
        "the default of new topics; a topic sets LogAppendTime with message.timestamp.type"),
];
