//! A small Kafka client for the command-line tool: one connection per broker, API versions
//! negotiated with ApiVersions, brokers and leaders learned from Metadata, group
//! coordinators from FindCoordinator.

use bytes::{Buf, BufMut, Bytes, BytesMut};
use kafka_protocol::messages::{
    ApiKey, ApiVersionsRequest, ApiVersionsResponse, BrokerId, FindCoordinatorRequest,
    ListOffsetsRequest, MetadataRequest, MetadataResponse, RequestHeader, ResponseHeader,
    TopicName,
};
use kafka_protocol::protocol::{Decodable, Encodable, HeaderVersion, Request, StrBytes};
use kafka_protocol::ResponseError;
use std::collections::btree_map::Entry;
use std::collections::BTreeMap;
use std::ops::RangeInclusive;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// How often a request that failed with a retriable error is tried.
pub const ATTEMPTS: u32 = 5;
/// Largest response frame accepted (Fetch responses are capped well below this).
const MAX_FRAME: usize = 256 << 20;
const CLIENT_ID: &str = "kafscale-cli";

/// An error the tool reports as one line on stderr.
#[derive(Debug, thiserror::Error)]
pub enum CliError {
    #[error("cannot connect to {addr}: {reason}")]
    Connect { addr: String, reason: String },
    #[error("connection to {addr} failed: {reason}")]
    Io { addr: String, reason: String },
    #[error("{addr} did not answer within {ms} ms")]
    Timeout { addr: String, ms: u128 },
    #[error("the broker at {addr} does not support {api} (needed by {needed_by})")]
    Unsupported {
        addr: String,
        api: String,
        needed_by: String,
    },
    #[error("unknown topic {0}")]
    UnknownTopic(String),
    #[error("{context}: {}", describe_code(*.code, .message.as_deref()))]
    Kafka {
        context: String,
        code: i16,
        message: Option<String>,
    },
    #[error("{0}")]
    Invalid(String),
}

impl CliError {
    pub fn kafka(context: impl Into<String>, code: i16, message: Option<&StrBytes>) -> CliError {
        CliError::Kafka {
            context: context.into(),
            code,
            message: message.map(|m| m.to_string()).filter(|m| !m.is_empty()),
        }
    }
}

/// `UNKNOWN_TOPIC_OR_PARTITION`, as Kafka spells its error names.
pub fn error_name(code: i16) -> String {
    match ResponseError::try_from_code(code) {
        None => "NONE".to_owned(),
        Some(ResponseError::Unknown(c)) => format!("error code {c}"),
        Some(e) => {
            let camel = e.to_string();
            let mut out = String::with_capacity(camel.len() + 8);
            for (i, ch) in camel.chars().enumerate() {
                if ch.is_ascii_uppercase() && i > 0 {
                    out.push('_');
                }
                out.push(ch.to_ascii_uppercase());
            }
            out
        }
    }
}

fn describe_code(code: i16, message: Option<&str>) -> String {
    match message {
        Some(m) => format!("{} ({m})", error_name(code)),
        None => error_name(code),
    }
}

/// Errors after which a request is worth sending again once metadata or the coordinator
/// has been looked up anew.
pub fn is_retriable(code: i16) -> bool {
    use ResponseError as R;
    [
        R::NotLeaderOrFollower,
        R::LeaderNotAvailable,
        R::CoordinatorLoadInProgress,
        R::CoordinatorNotAvailable,
        R::NotCoordinator,
    ]
    .iter()
    .any(|e| e.code() == code)
}

/// Waits a little longer after every failed attempt.
pub async fn backoff(attempt: u32) {
    tokio::time::sleep(Duration::from_millis(100 * u64::from(attempt + 1))).await;
}

pub fn str_bytes(s: &str) -> StrBytes {
    StrBytes::from_string(s.to_owned())
}

pub fn topic_name(s: &str) -> TopicName {
    TopicName(str_bytes(s))
}

/// One connection to one broker, with the API versions it speaks.
pub struct Conn {
    addr: String,
    stream: TcpStream,
    correlation: i32,
    timeout: Duration,
    /// api key -> (min, max) as the broker advertised them.
    versions: BTreeMap<i16, (i16, i16)>,
}

impl Conn {
    pub async fn open(addr: &str, timeout: Duration) -> Result<Conn, CliError> {
        let connect = tokio::time::timeout(timeout, TcpStream::connect(addr)).await;
        let stream = match connect {
            Err(_) => {
                return Err(CliError::Connect {
                    addr: addr.to_owned(),
                    reason: format!("no answer within {} ms", timeout.as_millis()),
                })
            }
            Ok(Err(e)) => {
                return Err(CliError::Connect {
                    addr: addr.to_owned(),
                    reason: io_reason(&e),
                })
            }
            Ok(Ok(s)) => s,
        };
        // Requests are small and answered one at a time: do not wait for Nagle.
        let _ = stream.set_nodelay(true);
        let mut conn = Conn {
            addr: addr.to_owned(),
            stream,
            correlation: 0,
            timeout,
            versions: BTreeMap::new(),
        };
        conn.versions = conn.api_versions().await?;
        Ok(conn)
    }

    pub fn addr(&self) -> &str {
        &self.addr
    }

    /// The (min, max) versions the broker advertised, by api key.
    pub fn versions(&self) -> &BTreeMap<i16, (i16, i16)> {
        &self.versions
    }

    pub fn supports(&self, key: ApiKey) -> bool {
        self.versions.contains_key(&(key as i16))
    }

    /// The highest version both the broker and this client speak, within `ours`.
    pub fn version(
        &self,
        key: ApiKey,
        ours: RangeInclusive<i16>,
        needed_by: &str,
    ) -> Result<i16, CliError> {
        let unsupported = || CliError::Unsupported {
            addr: self.addr.clone(),
            api: format!("{key:?}"),
            needed_by: needed_by.to_owned(),
        };
        let &(min, max) = self.versions.get(&(key as i16)).ok_or_else(unsupported)?;
        let v = max.min(*ours.end());
        if v < min || v < *ours.start() {
            return Err(unsupported());
        }
        Ok(v)
    }

    async fn api_versions(&mut self) -> Result<BTreeMap<i16, (i16, i16)>, CliError> {
        let mut req = ApiVersionsRequest::default();
        req.client_software_name = str_bytes(CLIENT_ID);
        req.client_software_version = str_bytes(env!("CARGO_PKG_VERSION"));
        let frame = self.round_trip(ApiKey::ApiVersions, 3, &req).await?;
        // A broker that does not speak v3 answers with a v0 body (UNSUPPORTED_VERSION and
        // its own range); ask again in a version it lists.
        let resp = match decode_response::<ApiVersionsResponse>(frame.clone(), 3) {
            Ok(r) if r.error_code == 0 => r,
            _ => {
                let old = decode_response::<ApiVersionsResponse>(frame, 0)
                    .map_err(|e| self.protocol_error("ApiVersions", &e))?;
                let max = old
                    .api_keys
                    .iter()
                    .find(|k| k.api_key == ApiKey::ApiVersions as i16)
                    .map_or(0, |k| k.max_version.min(3));
                let frame = self.round_trip(ApiKey::ApiVersions, max, &req).await?;
                let resp = decode_response::<ApiVersionsResponse>(frame, max)
                    .map_err(|e| self.protocol_error("ApiVersions", &e))?;
                if resp.error_code != 0 {
                    return Err(CliError::kafka(
                        format!("ApiVersions to {}", self.addr),
                        resp.error_code,
                        None,
                    ));
                }
                resp
            }
        };
        Ok(resp
            .api_keys
            .iter()
            .map(|k| (k.api_key, (k.min_version, k.max_version)))
            .collect())
    }

    fn protocol_error(&self, api: &str, e: &str) -> CliError {
        CliError::Io {
            addr: self.addr.clone(),
            reason: format!("cannot decode the {api} response: {e}"),
        }
    }

    /// Sends a request in `version` and decodes its response.
    pub async fn call<R: Request>(
        &mut self,
        version: i16,
        req: &R,
    ) -> Result<R::Response, CliError> {
        let key = ApiKey::try_from(R::KEY)
            .map_err(|_| CliError::Invalid(format!("unknown api key {}", R::KEY)))?;
        let frame = self.round_trip(key, version, req).await?;
        decode_response::<R::Response>(frame, version)
            .map_err(|e| self.protocol_error(&format!("{key:?} v{version}"), &e))
    }

    /// Sends a request and returns the response frame after its size prefix.
    async fn round_trip<R: Encodable + HeaderVersion>(
        &mut self,
        key: ApiKey,
        version: i16,
        req: &R,
    ) -> Result<Bytes, CliError> {
        self.correlation += 1;
        let mut header = RequestHeader::default();
        header.request_api_key = key as i16;
        header.request_api_version = version;
        header.correlation_id = self.correlation;
        header.client_id = Some(str_bytes(CLIENT_ID));
        let mut buf = BytesMut::with_capacity(128);
        buf.put_i32(0);
        let encoded = header
            .encode(&mut buf, R::header_version(version))
            .and_then(|_| req.encode(&mut buf, version));
        if let Err(e) = encoded {
            return Err(CliError::Invalid(format!(
                "cannot encode {key:?} v{version}: {e}"
            )));
        }
        let len = (buf.len() - 4) as i32;
        buf[0..4].copy_from_slice(&len.to_be_bytes());
        let addr = self.addr.clone();
        let ms = self.timeout.as_millis();
        let correlation = self.correlation;
        let exchange = async {
            self.stream.write_all(&buf).await?;
            let mut len = [0u8; 4];
            self.stream.read_exact(&mut len).await?;
            let len = i32::from_be_bytes(len);
            if len < 4 || len as usize > MAX_FRAME {
                return Err(std::io::Error::other(format!(
                    "response frame of {len} bytes"
                )));
            }
            let mut body = vec![0u8; len as usize];
            self.stream.read_exact(&mut body).await?;
            Ok(Bytes::from(body))
        };
        let frame = match tokio::time::timeout(self.timeout, exchange).await {
            Err(_) => return Err(CliError::Timeout { addr, ms }),
            Ok(Err(e)) => {
                let reason = if e.kind() == std::io::ErrorKind::UnexpectedEof {
                    format!("the broker closed the connection ({key:?} v{version})")
                } else {
                    io_reason(&e)
                };
                return Err(CliError::Io { addr, reason });
            }
            Ok(Ok(f)) => f,
        };
        let got = i32::from_be_bytes([frame[0], frame[1], frame[2], frame[3]]);
        if got != correlation {
            return Err(CliError::Io {
                addr,
                reason: format!("response to request {got} while waiting for {correlation}"),
            });
        }
        Ok(frame)
    }
}

/// An I/O error as a short lowercase phrase, without Rust's "(os error N)".
fn io_reason(e: &std::io::Error) -> String {
    let text = e.to_string().to_lowercase();
    match text.find(" (os error") {
        Some(i) => text[..i].to_owned(),
        None => text,
    }
}

/// Decodes a response frame (header and body) of `version`.
fn decode_response<R: Decodable + HeaderVersion>(
    mut frame: Bytes,
    version: i16,
) -> Result<R, String> {
    ResponseHeader::decode(&mut frame, R::header_version(version)).map_err(|e| e.to_string())?;
    let resp = R::decode(&mut frame, version).map_err(|e| e.to_string())?;
    if frame.has_remaining() {
        return Err(format!("{} bytes left over", frame.remaining()));
    }
    Ok(resp)
}

/// A partition as Metadata describes it.
#[derive(Debug, Clone)]
pub struct PartitionInfo {
    pub id: i32,
    /// `None` when the partition has no leader right now.
    pub leader: Option<i32>,
    pub leader_epoch: i32,
    pub replicas: Vec<i32>,
    pub isr: Vec<i32>,
    pub error_code: i16,
}

#[derive(Debug, Clone)]
pub struct TopicInfo {
    pub name: String,
    pub id: uuid::Uuid,
    pub internal: bool,
    pub partitions: Vec<PartitionInfo>,
}

#[derive(Debug, Clone)]
pub struct BrokerInfo {
    pub id: i32,
    pub host: String,
    pub port: i32,
    pub rack: Option<String>,
}

impl BrokerInfo {
    pub fn addr(&self) -> String {
        format!("{}:{}", self.host, self.port)
    }
}

/// Which offset ListOffsets should look up.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OffsetSpec {
    Earliest,
    Latest,
}

impl OffsetSpec {
    fn timestamp(self) -> i64 {
        match self {
            OffsetSpec::Earliest => -2,
            OffsetSpec::Latest => -1,
        }
    }
}

/// Connections to the brokers of one cluster.
pub struct Client {
    timeout: Duration,
    bootstrap: Conn,
    /// Connections by broker id, opened on first use.
    conns: BTreeMap<i32, Conn>,
    brokers: BTreeMap<i32, BrokerInfo>,
    pub controller_id: Option<i32>,
    pub cluster_id: Option<String>,
}

impl Client {
    pub async fn connect(bootstrap: &str, timeout: Duration) -> Result<Client, CliError> {
        let conn = Conn::open(bootstrap, timeout).await?;
        Ok(Client {
            timeout,
            bootstrap: conn,
            conns: BTreeMap::new(),
            brokers: BTreeMap::new(),
            controller_id: None,
            cluster_id: None,
        })
    }

    pub fn bootstrap(&mut self) -> &mut Conn {
        &mut self.bootstrap
    }

    pub fn brokers(&self) -> impl Iterator<Item = &BrokerInfo> {
        self.brokers.values()
    }

    /// Metadata for the given topics (`None`: all), never creating topics. Also refreshes
    /// what the client knows of brokers and the controller.
    pub async fn metadata(
        &mut self,
        topics: Option<&[String]>,
    ) -> Result<MetadataResponse, CliError> {
        // v4 is the first that can ask not to auto-create topics.
        let v = self
            .bootstrap
            .version(ApiKey::Metadata, 4..=12, "every command")?;
        let mut req = MetadataRequest::default();
        req.allow_auto_topic_creation = false;
        req.topics = topics.map(|names| {
            names
                .iter()
                .map(|n| {
                    let mut t =
                        kafka_protocol::messages::metadata_request::MetadataRequestTopic::default();
                    t.name = Some(topic_name(n));
                    t
                })
                .collect()
        });
        let resp = self.bootstrap.call(v, &req).await?;
        for b in &resp.brokers {
            let info = BrokerInfo {
                id: b.node_id.0,
                host: b.host.to_string(),
                port: b.port,
                rack: b.rack.as_ref().map(|r| r.to_string()),
            };
            // A broker that moved gets a new connection.
            if self
                .brokers
                .get(&info.id)
                .is_some_and(|old| old.addr() != info.addr())
            {
                self.conns.remove(&info.id);
            }
            self.brokers.insert(info.id, info);
        }
        self.controller_id = (resp.controller_id.0 >= 0).then_some(resp.controller_id.0);
        self.cluster_id = resp.cluster_id.as_ref().map(|c| c.to_string());
        Ok(resp)
    }

    /// One topic's partitions and leaders; an unknown topic is an error.
    pub async fn topic(&mut self, name: &str) -> Result<TopicInfo, CliError> {
        for attempt in 0..ATTEMPTS {
            let resp = self.metadata(Some(&[name.to_owned()])).await?;
            let Some(t) = resp.topics.into_iter().next() else {
                return Err(CliError::UnknownTopic(name.to_owned()));
            };
            let info = topic_info(t);
            match info {
                Ok(info) if info.partitions.iter().all(|p| p.leader.is_some()) => return Ok(info),
                Ok(info) if attempt + 1 == ATTEMPTS => return Ok(info),
                Ok(_) => {}
                Err(3) => return Err(CliError::UnknownTopic(name.to_owned())),
                Err(code) if is_retriable(code) && attempt + 1 < ATTEMPTS => {}
                Err(code) => return Err(CliError::kafka(format!("topic {name}"), code, None)),
            }
            backoff(attempt).await;
        }
        Err(CliError::UnknownTopic(name.to_owned()))
    }

    /// The connection to a broker, opened on first use.
    pub async fn broker(&mut self, id: i32) -> Result<&mut Conn, CliError> {
        if !self.brokers.contains_key(&id) {
            self.metadata(Some(&[])).await?;
        }
        let addr = match self.brokers.get(&id) {
            Some(b) => b.addr(),
            None => {
                return Err(CliError::Invalid(format!(
                    "broker {id} is not in the cluster metadata"
                )))
            }
        };
        match self.conns.entry(id) {
            Entry::Occupied(e) => Ok(e.into_mut()),
            Entry::Vacant(v) => {
                let conn = Conn::open(&addr, self.timeout).await?;
                Ok(v.insert(conn))
            }
        }
    }

    /// Forgets a broker's connection (after an I/O error or a change of leader).
    pub fn forget(&mut self, id: i32) {
        self.conns.remove(&id);
    }

    /// The controller, where topics are created and deleted.
    pub async fn controller(&mut self) -> Result<&mut Conn, CliError> {
        if self.controller_id.is_none() {
            self.metadata(Some(&[])).await?;
        }
        match self.controller_id {
            Some(id) => self.broker(id).await,
            // No controller known: any broker forwards or answers NOT_CONTROLLER.
            None => Ok(&mut self.bootstrap),
        }
    }

    /// The broker id of a group's coordinator.
    pub async fn coordinator(&mut self, group: &str) -> Result<i32, CliError> {
        let v = self
            .bootstrap
            .version(ApiKey::FindCoordinator, 0..=6, "group commands")?;
        for attempt in 0..ATTEMPTS {
            let mut req = FindCoordinatorRequest::default();
            if v >= 4 {
                req.coordinator_keys = vec![str_bytes(group)];
            } else {
                req.key = str_bytes(group);
            }
            let resp = self.bootstrap.call(v, &req).await?;
            let (code, message, node, host, port) = if v >= 4 {
                match resp.coordinators.into_iter().next() {
                    Some(c) => (c.error_code, c.error_message, c.node_id, c.host, c.port),
                    None => {
                        return Err(CliError::Invalid(format!(
                            "FindCoordinator for group {group}: empty answer"
                        )))
                    }
                }
            } else {
                (
                    resp.error_code,
                    resp.error_message,
                    resp.node_id,
                    resp.host,
                    resp.port,
                )
            };
            if code == 0 {
                let info = BrokerInfo {
                    id: node.0,
                    host: host.to_string(),
                    port,
                    rack: None,
                };
                if self
                    .brokers
                    .get(&info.id)
                    .is_none_or(|old| old.addr() != info.addr())
                {
                    self.conns.remove(&info.id);
                    self.brokers.insert(info.id, info);
                }
                return Ok(node.0);
            }
            if !is_retriable(code) || attempt + 1 == ATTEMPTS {
                return Err(CliError::kafka(
                    format!("coordinator of group {group}"),
                    code,
                    message.as_ref(),
                ));
            }
            backoff(attempt).await;
        }
        Err(CliError::Invalid(format!(
            "no coordinator for group {group}"
        )))
    }

    /// Offsets of the given partitions of a topic (earliest or latest), asked of each
    /// partition's leader, retried after a change of leader.
    pub async fn list_offsets(
        &mut self,
        topic: &str,
        partitions: &[i32],
        spec: OffsetSpec,
    ) -> Result<BTreeMap<i32, i64>, CliError> {
        let mut out = BTreeMap::new();
        let mut pending: Vec<i32> = partitions.to_vec();
        for attempt in 0..ATTEMPTS {
            let info = self.topic(topic).await?;
            let mut by_leader: BTreeMap<i32, Vec<i32>> = BTreeMap::new();
            let mut retry = Vec::new();
            for p in &pending {
                match info.partitions.iter().find(|i| i.id == *p) {
                    None => {
                        return Err(CliError::Invalid(format!(
                            "topic {topic} has no partition {p}"
                        )))
                    }
                    Some(PartitionInfo {
                        leader: Some(l), ..
                    }) => by_leader.entry(*l).or_default().push(*p),
                    Some(_) => retry.push(*p),
                }
            }
            for (leader, parts) in by_leader {
                let conn = self.broker(leader).await?;
                let v = conn.version(ApiKey::ListOffsets, 1..=7, "offsets")?;
                let mut req = ListOffsetsRequest::default();
                req.replica_id = BrokerId(-1);
                let mut t =
                    kafka_protocol::messages::list_offsets_request::ListOffsetsTopic::default();
                t.name = topic_name(topic);
                t.partitions = parts
                    .iter()
                    .map(|p| {
                        let mut lp = kafka_protocol::messages::list_offsets_request::ListOffsetsPartition::default();
                        lp.partition_index = *p;
                        lp.current_leader_epoch = -1;
                        lp.timestamp = spec.timestamp();
                        lp
                    })
                    .collect();
                req.topics = vec![t];
                let resp = conn.call(v, &req).await?;
                for t in resp.topics {
                    for p in t.partitions {
                        if p.error_code == 0 {
                            out.insert(p.partition_index, p.offset);
                        } else if is_retriable(p.error_code) && attempt + 1 < ATTEMPTS {
                            retry.push(p.partition_index);
                        } else if p.error_code == 3 {
                            return Err(CliError::UnknownTopic(topic.to_owned()));
                        } else {
                            return Err(CliError::kafka(
                                format!("offsets of {topic}/{}", p.partition_index),
                                p.error_code,
                                None,
                            ));
                        }
                    }
                }
            }
            if retry.is_empty() {
                return Ok(out);
            }
            pending = retry;
            backoff(attempt).await;
        }
        Err(CliError::Invalid(format!(
            "no leader for partitions {pending:?} of {topic}"
        )))
    }
}

/// A Metadata topic as `TopicInfo`, or its error code.
fn topic_info(
    t: kafka_protocol::messages::metadata_response::MetadataResponseTopic,
) -> Result<TopicInfo, i16> {
    if t.error_code != 0 {
        return Err(t.error_code);
    }
    let mut partitions: Vec<PartitionInfo> = t
        .partitions
        .into_iter()
        .map(|p| PartitionInfo {
            id: p.partition_index,
            leader: (p.leader_id.0 >= 0).then_some(p.leader_id.0),
            leader_epoch: p.leader_epoch,
            replicas: p.replica_nodes.iter().map(|b| b.0).collect(),
            isr: p.isr_nodes.iter().map(|b| b.0).collect(),
            error_code: p.error_code,
        })
        .collect();
    partitions.sort_by_key(|p| p.id);
    Ok(TopicInfo {
        name: t.name.map(|n| n.0.to_string()).unwrap_or_default(),
        id: t.topic_id,
        internal: t.is_internal,
        partitions,
    })
}

/// Topics of a Metadata response that carry no error, sorted by name.
pub fn topics_of(resp: MetadataResponse) -> Vec<TopicInfo> {
    let mut out: Vec<TopicInfo> = resp
        .topics
        .into_iter()
        .filter_map(|t| topic_info(t).ok())
        .collect();
    out.sort_by(|a, b| a.name.cmp(&b.name));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_names_are_kafka_style() {
        assert_eq!(error_name(3), "UNKNOWN_TOPIC_OR_PARTITION");
        assert_eq!(error_name(40), "INVALID_CONFIG");
        assert_eq!(error_name(0), "NONE");
        assert_eq!(error_name(-1), "UNKNOWN_SERVER_ERROR");
        assert_eq!(error_name(30000), "error code 30000");
    }

    #[test]
    fn kafka_errors_read_as_one_line() {
        let e = CliError::kafka("create topic t", 40, Some(&str_bytes("bad value")));
        assert_eq!(e.to_string(), "create topic t: INVALID_CONFIG (bad value)");
        let e = CliError::kafka("create topic t", 36, None);
        assert_eq!(e.to_string(), "create topic t: TOPIC_ALREADY_EXISTS");
    }

    #[test]
    fn only_leader_and_coordinator_moves_are_retried() {
        for code in [5, 6, 14, 15, 16] {
            assert!(is_retriable(code), "{code}");
        }
        for code in [0, 1, 3, 7, 40] {
            assert!(!is_retriable(code), "{code}");
        }
    }
}
