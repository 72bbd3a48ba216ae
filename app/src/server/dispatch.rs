//! Request dispatch: the guards around decoding (frame length, known API, version range,
//! bounds check, panic guard), the handler tasks and response encoding. What is decoded and
//! which handler runs come from the API table (`apis.rs`).

use bytes::{BufMut, Bytes, BytesMut};
use kafka_protocol::messages::{ApiKey, RequestHeader, ResponseHeader};
use kafka_protocol::protocol::{Decodable, Encodable, StrBytes};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::Arc;
use std::time::Instant;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

pub use super::apis::Request;

use super::apis;
use super::error_codes::ErrorCodes;
use super::session::Session;
use super::versions;
use crate::context::Context;
use crate::handlers;

/// What the writer does with a finished request.
#[derive(Debug)]
pub enum Reply {
    Frame(Bytes),
    /// acks=0 produce: nothing is sent.
    None,
    Close(String),
}

/// Why a frame could not be turned into a request. Each closes the connection.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FrameError {
    #[error("frame of {0} bytes is shorter than a request header")]
    Short(usize),
    #[error("unknown api key {0}")]
    UnknownApi(i16),
    #[error("unsupported api {0:?}")]
    UnsupportedApi(ApiKey),
    #[error("unsupported version {version} of {api:?}")]
    UnsupportedVersion { api: ApiKey, version: i16 },
    #[error("malformed request: {0}")]
    Malformed(String),
}

impl FrameError {
    /// The `reason` label of `kafscale_refused_requests`.
    pub fn reason(&self) -> &'static str {
        match self {
            FrameError::Short(_) | FrameError::Malformed(_) => "malformed",
            FrameError::UnknownApi(_) | FrameError::UnsupportedApi(_) => "unknown_api",
            FrameError::UnsupportedVersion { .. } => "unsupported_version",
        }
    }
}

/// Decodes with a guard: malformed input must never take the broker down, even if a decoder
/// panics on it. (Allocation failures cannot be caught; `wire::check_request` has already
/// made sure no count in the frame exceeds its bytes.)
pub(super) fn decode<T: Decodable>(frame: &mut Bytes, version: i16) -> Result<T, FrameError> {
    match catch_unwind(AssertUnwindSafe(|| T::decode(frame, version))) {
        Ok(Ok(v)) => Ok(v),
        Ok(Err(e)) => Err(FrameError::Malformed(e.to_string())),
        Err(_) => Err(FrameError::Malformed("decoder panicked".to_owned())),
    }
}

pub fn encode<R: Encodable>(api_key: ApiKey, version: i16, correlation_id: i32, body: &R) -> Reply {
    // ApiVersions responses always use header v0 so that clients can parse them before they
    // know which versions the broker speaks.
    let header_version = if api_key == ApiKey::ApiVersions {
        0
    } else {
        api_key.response_header_version(version)
    };
    let mut buf = BytesMut::with_capacity(64);
    buf.put_i32(0);
    let mut header = ResponseHeader::default();
    header.correlation_id = correlation_id;
    if let Err(e) = header.encode(&mut buf, header_version) {
        return Reply::Close(format!("cannot encode response header: {e}"));
    }
    if let Err(e) = body.encode(&mut buf, version) {
        return Reply::Close(format!(
            "cannot encode {api_key:?} v{version} response: {e}"
        ));
    }
    let len = (buf.len() - 4) as i32;
    buf[0..4].copy_from_slice(&len.to_be_bytes());
    Reply::Frame(buf.freeze())
}

/// A reply that is already known, queued like any handler's.
pub(super) fn ready(reply: Reply) -> JoinHandle<Reply> {
    tokio::spawn(async move { reply })
}

/// A frame taken apart: the API, its version, the header and the body.
#[derive(Debug)]
pub struct Decoded {
    pub api_key: ApiKey,
    pub version: i16,
    pub correlation_id: i32,
    /// The client id of the request header, which DescribeGroups shows.
    pub client_id: Option<StrBytes>,
    /// `None` for an ApiVersions request of a version we do not speak: it gets a v0 answer.
    pub request: Option<Request>,
    /// Bytes the request is counted as while it is in flight: its frame and an estimate of
    /// what its decoded form holds.
    pub weight: usize,
}

/// Decodes one frame (without its size prefix). Pure and total: any input gives a value or
/// an error, never a panic; the fuzz target `fuzz/fuzz_targets/frame.rs` holds it to that.
pub fn decode_frame(mut frame: Bytes) -> Result<Decoded, FrameError> {
    if frame.len() < 8 {
        return Err(FrameError::Short(frame.len()));
    }
    let raw_key = i16::from_be_bytes([frame[0], frame[1]]);
    let version = i16::from_be_bytes([frame[2], frame[3]]);
    let correlation_id = i32::from_be_bytes([frame[4], frame[5], frame[6], frame[7]]);
    let api_key = ApiKey::try_from(raw_key).map_err(|_| FrameError::UnknownApi(raw_key))?;
    let Some((min, max)) = versions::supported(api_key) else {
        return Err(FrameError::UnsupportedApi(api_key));
    };
    if version < min || version > max {
        if api_key == ApiKey::ApiVersions {
            return Ok(Decoded {
                api_key,
                version,
                correlation_id,
                client_id: None,
                request: None,
                weight: frame.len(),
            });
        }
        return Err(FrameError::UnsupportedVersion {
            api: api_key,
            version,
        });
    }
    if api_key == ApiKey::Produce && version < 3 {
        // Advertised so that old librdkafka enables compression; v0-2 carry message sets
        // older than magic 2, which are not supported.
        return Err(FrameError::UnsupportedVersion {
            api: api_key,
            version,
        });
    }
    let header_version = api_key.request_header_version(version);
    // Every length and count is checked against the bytes that remain before the decoder
    // sizes anything by it: a decoder allocates what a count claims.
    let checked = crate::wire::check_request(&frame, raw_key, version, header_version)
        .map_err(|e| FrameError::Malformed(e.to_string()))?;
    let weight = checked.decoded_bytes(frame.len());
    let header: RequestHeader = decode(&mut frame, header_version)?;
    let request = apis::decode_body(api_key, &mut frame, version)?;
    Ok(Decoded {
        api_key,
        version,
        correlation_id: header.correlation_id,
        client_id: header.client_id,
        request: Some(request),
        weight,
    })
}

/// Records the request's latency and the error codes of its response.
fn observe<R: ErrorCodes>(ctx: &Context, key: ApiKey, started: Instant, resp: &R) {
    let mut codes = Vec::new();
    resp.error_codes(&mut codes);
    ctx.metrics.responded(key, started.elapsed(), &codes);
}

/// A request's header fields and origin, which its handler and its reply need.
pub(super) struct Call {
    pub key: ApiKey,
    pub version: i16,
    pub correlation_id: i32,
    client_id: Option<StrBytes>,
    pub session: Arc<Session>,
    /// Its place in the connection's order, if it takes one (see [`Sequence`]).
    pub turn: Option<Turn>,
}

/// Makes the requests of one connection take effect in the order they were sent, as Kafka
/// promises (it serves a connection one request at a time): each request that changes or
/// reads shared state (commits, group and admin operations, metadata, offsets) starts only
/// once the one sent before it has finished. Produce and Fetch stay out of the chain so that
/// they overlap: a produce's order-sensitive part (staging its batches) runs in arrival
/// order before the next frame is read, after the request in the chain before it has
/// finished ([`Sequence::settle`]: a produce to a topic the same connection just created
/// finds it), and a fetch only reads.
#[derive(Default)]
pub struct Sequence {
    previous: Option<oneshot::Receiver<()>>,
}

/// A request's place in its connection's [`Sequence`].
pub struct Turn {
    after: Option<oneshot::Receiver<()>>,
    done: oneshot::Sender<()>,
}

impl Sequence {
    /// Waits until the last request that took a turn has finished (at once if none is
    /// running).
    pub async fn settle(&mut self) {
        if let Some(previous) = self.previous.take() {
            // Sent or dropped: either way that request is over, and so is every one before.
            let _ = previous.await;
        }
    }

    fn next(&mut self) -> Turn {
        let (done, finished) = oneshot::channel();
        Turn {
            after: self.previous.replace(finished),
            done,
        }
    }
}

impl Turn {
    /// Runs `work` once the request before has finished; the next one starts when `work`
    /// has finished (or was dropped).
    pub async fn run<F: std::future::Future>(self, work: F) -> F::Output {
        if let Some(after) = self.after {
            // Sent or dropped: either way the request before is over.
            let _ = after.await;
        }
        let out = work.await;
        drop(self.done);
        out
    }
}

/// Whether requests of this API wait their turn on their connection.
fn in_sequence(key: ApiKey) -> bool {
    !matches!(key, ApiKey::Produce | ApiKey::Fetch | ApiKey::ApiVersions)
}

impl Call {
    pub fn client_id(&self) -> String {
        self.client_id
            .as_ref()
            .map(|c| c.to_string())
            .unwrap_or_default()
    }

    /// The client's host as Kafka shows it in DescribeGroups, "/1.2.3.4".
    pub fn host(&self) -> String {
        format!("/{}", self.session.peer.ip())
    }
}

pub(super) fn spawn_handler<R, F>(
    ctx: &Arc<Context>,
    call: &Call,
    turn: Option<Turn>,
    fut: F,
) -> JoinHandle<Reply>
where
    R: Encodable + ErrorCodes,
    F: std::future::Future<Output = R> + Send + 'static,
{
    let ctx = ctx.clone();
    let (key, version, corr) = (call.key, call.version, call.correlation_id);
    let started = Instant::now();
    tokio::spawn(async move {
        let resp = match turn {
            Some(turn) => turn.run(fut).await,
            None => fut.await,
        };
        observe(&ctx, key, started, &resp);
        encode(key, version, corr, &resp)
    })
}

/// Produce: staging has run already, in arrival order; only the wait for the commit is
/// deferred to the task.
pub(super) fn spawn_staged(
    ctx: &Arc<Context>,
    call: Call,
    staged: handlers::produce::Staged,
) -> JoinHandle<Reply> {
    let ctx = ctx.clone();
    let started = Instant::now();
    tokio::spawn(async move {
        match staged.finish().await {
            handlers::produce::Outcome::Respond(resp) => {
                observe(&ctx, call.key, started, &resp);
                encode(call.key, call.version, call.correlation_id, &resp)
            }
            handlers::produce::Outcome::Silent => Reply::None,
            handlers::produce::Outcome::Close(reason) => Reply::Close(reason),
        }
    })
}

/// Starts the handling of a decoded request of a connection, in its place in the
/// connection's `sequence`. Returns at once, but for a produce: once it is staged.
pub async fn dispatch(
    ctx: &Arc<Context>,
    decoded: Decoded,
    session: &Arc<Session>,
    sequence: &mut Sequence,
) -> JoinHandle<Reply> {
    let Decoded {
        api_key: key,
        version,
        correlation_id,
        client_id,
        request,
        weight: _,
    } = decoded;
    let Some(request) = request else {
        return ready(handlers::api_versions::unsupported_version(correlation_id));
    };
    ctx.metrics.request(key);
    let call = Call {
        key,
        version,
        correlation_id,
        client_id,
        session: session.clone(),
        turn: in_sequence(key).then(|| sequence.next()),
    };
    apis::route(ctx, call, request).await
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use std::sync::Mutex;

    /// Requests in sequence finish in the order they were given turns, however the runtime
    /// schedules their tasks and however long each takes.
    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn turns_run_in_the_order_they_were_taken() {
        let log = Arc::new(Mutex::new(Vec::new()));
        let mut sequence = Sequence::default();
        let turns: Vec<Turn> = (0..200).map(|_| sequence.next()).collect();
        let mut tasks = Vec::new();
        // Spawned last first, and the early ones slowest.
        for (i, turn) in turns.into_iter().enumerate().rev() {
            let log = log.clone();
            tasks.push(tokio::spawn(turn.run(async move {
                if i % 7 == 0 {
                    tokio::time::sleep(std::time::Duration::from_millis(2)).await;
                }
                log.lock().unwrap().push(i);
            })));
        }
        for t in tasks {
            t.await.unwrap();
        }
        assert_eq!(*log.lock().unwrap(), (0..200).collect::<Vec<_>>());
        assert!(in_sequence(ApiKey::OffsetCommit) && in_sequence(ApiKey::CreateTopics));
        assert!(!in_sequence(ApiKey::Produce) && !in_sequence(ApiKey::Fetch));
    }
}
