//! One connection to one broker: frames, correlation ids, timeouts and the API versions
//! the broker advertised.

use bytes::{Buf, BufMut, Bytes, BytesMut};
use kafka_protocol::messages::{
    ApiKey, ApiVersionsRequest, ApiVersionsResponse, RequestHeader, ResponseHeader,
};
use kafka_protocol::protocol::{Decodable, Encodable, HeaderVersion, Request};
use std::collections::BTreeMap;
use std::ops::RangeInclusive;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use super::client::str_bytes;
use super::error::CliError;
use super::security::ClientSecurity;
use super::tls::Stream;

/// Largest response frame accepted (Fetch responses are capped well below this).
const MAX_FRAME: usize = 256 << 20;
const CLIENT_ID: &str = "kafscale-cli";

/// One connection to one broker, with the API versions it speaks.
pub struct Conn {
    addr: String,
    stream: Stream,
    correlation: i32,
    timeout: Duration,
    /// api key -> (min, max) as the broker advertised them.
    versions: BTreeMap<i16, (i16, i16)>,
}

impl Conn {
    /// Connects, runs the TLS handshake and asks for the API versions, then logs in with
    /// SASL, as `security` says.
    pub async fn open(
        addr: &str,
        security: &ClientSecurity,
        timeout: Duration,
    ) -> Result<Conn, CliError> {
        let connect_error = |reason: String| CliError::Connect {
            addr: addr.to_owned(),
            reason,
        };
        let no_answer = || connect_error(format!("no answer within {} ms", timeout.as_millis()));
        let tcp = match tokio::time::timeout(timeout, TcpStream::connect(addr)).await {
            Err(_) => return Err(no_answer()),
            Ok(Err(e)) => return Err(connect_error(io_reason(&e))),
            Ok(Ok(s)) => s,
        };
        // Requests are small and answered one at a time: do not wait for Nagle.
        let _ = tcp.set_nodelay(true);
        let stream = match &security.tls {
            None => Stream::Plain(tcp),
            Some(config) => {
                match tokio::time::timeout(timeout, Stream::tls(tcp, addr, config.clone())).await {
                    Err(_) => return Err(no_answer()),
                    Ok(Err(reason)) => return Err(connect_error(reason)),
                    Ok(Ok(s)) => s,
                }
            }
        };
        let mut conn = Conn {
            addr: addr.to_owned(),
            stream,
            correlation: 0,
            timeout,
            versions: BTreeMap::new(),
        };
        // Kafka's clients ask for versions before they log in; brokers answer it unauthenticated.
        conn.versions = conn.api_versions().await?;
        if let Some(login) = &security.sasl {
            super::sasl::login(&mut conn, login).await?;
        }
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
        let decode = |frame, version| {
            decode_response::<ApiVersionsResponse>(frame, ApiKey::ApiVersions, version)
        };
        let resp = match decode(frame.clone(), 3) {
            Ok(r) if r.error_code == 0 => r,
            _ => {
                let old = decode(frame, 0).map_err(|e| self.protocol_error("ApiVersions", &e))?;
                let max = old
                    .api_keys
                    .iter()
                    .find(|k| k.api_key == ApiKey::ApiVersions as i16)
                    .map_or(0, |k| k.max_version.min(3));
                let frame = self.round_trip(ApiKey::ApiVersions, max, &req).await?;
                let resp =
                    decode(frame, max).map_err(|e| self.protocol_error("ApiVersions", &e))?;
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
        decode_response::<R::Response>(frame, key, version)
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
            // TLS holds written bytes until flushed.
            self.stream.flush().await?;
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

/// Decodes a response frame (header and body) of `version`, after checking that no length or
/// count in it claims more than the frame holds.
pub fn decode_response<R: Decodable + HeaderVersion>(
    mut frame: Bytes,
    key: ApiKey,
    version: i16,
) -> Result<R, String> {
    crate::wire::check_response(&frame, key as i16, version, R::header_version(version))
        .map_err(|e| e.to_string())?;
    ResponseHeader::decode(&mut frame, R::header_version(version)).map_err(|e| e.to_string())?;
    let resp = R::decode(&mut frame, version).map_err(|e| e.to_string())?;
    if frame.has_remaining() {
        return Err(format!("{} bytes left over", frame.remaining()));
    }
    Ok(resp)
}
