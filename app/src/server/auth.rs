//! The SASL phase of a connection on a SASL listener. Until the client has authenticated,
//! only ApiVersions, SaslHandshake and SaslAuthenticate are served; anything else closes
//! the connection, as in Kafka. Each step is answered before the next frame is read, so
//! the exchange sees frames strictly in order; answers still go through the connection's
//! writer, behind any answer queued before them.
//!
//! SaslHandshake v0 is followed by raw SASL tokens (size-prefixed, no Kafka header), v1 by
//! SaslAuthenticate requests; both are served.
//!
//! Re-authentication (KIP-368): with `connections.max.reauth.ms`, a login lasts that long,
//! and SaslAuthenticate v1+ tells the client so (`session_lifetime_ms`). Before then the
//! client runs SaslHandshake v1 and SaslAuthenticate again on the same connection; the
//! connection hands the handshake here (`Start::Renew`). The mechanism and the principal
//! must stay the same: anything else is refused and the connection closed, as in Kafka.

use bytes::{BufMut, Bytes, BytesMut};
use kafka_protocol::messages::{ApiKey, SaslAuthenticateResponse, SaslHandshakeResponse};
use std::sync::Arc;
use tokio::io::AsyncRead;
use tokio::time::Instant;

use super::apis::Request;
use super::connection::{read_frame, Queue};
use super::dispatch::{self, encode, ready, Decoded, Reply};
use super::session::Session;
use crate::context::Context;
use crate::errors::RequestError;
use crate::handlers::str_bytes;
use crate::security::sasl::{Exchange, HandshakeError, Step, FAILED};
use crate::security::{Principal, SaslMechanism};

/// A raw SASL token frame (after a v0 handshake): its size, then the token.
fn raw_frame(token: &[u8]) -> Reply {
    let mut buf = BytesMut::with_capacity(4 + token.len());
    buf.put_u32(token.len() as u32);
    buf.put_slice(token);
    Reply::Frame(buf.freeze())
}

/// A finished login: who the client is, and until when.
#[derive(Debug, Clone)]
pub(super) struct Login {
    pub principal: Principal,
    pub mechanism: SaslMechanism,
    /// When the session ends (`connections.max.reauth.ms` after the login); `None`: never.
    pub expires: Option<Instant>,
    /// Whether the client was told the session's lifetime and so can re-authenticate: it
    /// used SaslHandshake v1 and SaslAuthenticate v1 or later.
    pub renewable: bool,
}

impl Login {
    pub fn expired(&self, now: Instant) -> bool {
        self.expires.is_some_and(|at| now >= at)
    }
}

/// How an exchange begins.
pub(super) enum Start<'a> {
    /// The connection's first login: frames are read from the start.
    Fresh,
    /// A re-authentication: the connection has read this SaslHandshake (v1 or later).
    Renew {
        handshake: Box<Decoded>,
        previous: &'a Login,
    },
}

/// Runs the exchange. Returns the login, or `None` when the connection is to be closed
/// (after the answers already queued are written).
pub(super) async fn authenticate<R: AsyncRead + Unpin>(
    ctx: &Arc<Context>,
    reader: &mut R,
    session: &Arc<Session>,
    queue: &Queue,
    start: Start<'_>,
) -> Option<Login> {
    let listener = &session.listener;
    let peer = session.peer;
    let (mut pending, previous) = match start {
        Start::Fresh => (None, None),
        Start::Renew {
            handshake,
            previous,
        } => (Some(*handshake), Some(previous)),
    };
    let log = Audit {
        ctx,
        session,
        renew: previous.is_some(),
    };
    // A re-authentication keeps the mechanism of the login it renews.
    let mut exchange = Exchange::new(match previous {
        Some(p) => vec![p.mechanism],
        None => listener.sasl.clone(),
    });
    let mut mechanism = None;
    // Set by a v0 handshake: the next frames are raw tokens.
    let mut raw = false;
    // Kafka's rule: the client can re-authenticate if any SaslAuthenticate was v1 or later.
    let mut authenticate_v1 = false;
    let max = ctx.config.max_request_bytes;
    loop {
        let decoded = match pending.take() {
            Some(decoded) => decoded,
            None => {
                let frame = match read_frame(reader, max, if raw { 0 } else { 8 }).await {
                    Ok(Some(frame)) => frame,
                    Ok(None) => return None,
                    Err(reason) => {
                        tracing::warn!(%peer, %reason, "bad frame during authentication; closing connection");
                        return None;
                    }
                };
                if raw {
                    let step = exchange
                        .step(ctx.meta.as_ref(), &ctx.sasl_secret, &frame)
                        .await;
                    match step {
                        Step::Challenge(token) => {
                            if !queue.push(ready(raw_frame(&token)), 1).await {
                                return None;
                            }
                        }
                        Step::Done(principal, token) => {
                            let login = log.succeeded(principal, mechanism?, false)?;
                            return queue
                                .push(ready(raw_frame(&token)), 1)
                                .await
                                .then_some(login);
                        }
                        Step::Failed(reason) => {
                            log.failed(&reason).await;
                            return None;
                        }
                    }
                    continue;
                }
                match dispatch::decode_frame(frame) {
                    Ok(decoded) => decoded,
                    Err(error) => {
                        tracing::warn!(%peer, %error, "bad request during authentication; closing connection");
                        ctx.metrics.refused_request(error.reason());
                        return None;
                    }
                }
            }
        };
        let (version, correlation_id) = (decoded.version, decoded.correlation_id);
        match &decoded.request {
            None | Some(Request::ApiVersions(_)) => {
                if !queue
                    .push(
                        dispatch::dispatch(ctx, decoded, session, &mut Default::default()).await,
                        1,
                    )
                    .await
                {
                    return None;
                }
            }
            Some(Request::SaslHandshake(req)) => {
                ctx.metrics.request(ApiKey::SaslHandshake);
                let mut resp = SaslHandshakeResponse::default();
                resp.mechanisms = exchange
                    .enabled()
                    .iter()
                    .map(|m| str_bytes(m.name()))
                    .collect();
                let outcome = exchange.handshake(req.mechanism.as_str());
                resp.error_code = match &outcome {
                    Ok(_) => 0,
                    Err(HandshakeError::Unsupported) => {
                        RequestError::UnsupportedSaslMechanism.code()
                    }
                    Err(HandshakeError::IllegalState) => RequestError::IllegalSaslState.code(),
                };
                let reply = encode(ApiKey::SaslHandshake, version, correlation_id, &resp);
                let sent = queue.push(ready(reply), 1).await;
                match outcome {
                    Ok(chosen) => mechanism = Some(chosen),
                    Err(e) => {
                        tracing::warn!(%peer, listener = %listener.name, mechanism = %req.mechanism.as_str(), error = ?e, renew = log.renew, "SASL handshake refused; closing connection");
                        log.audit(None, &format!("handshake refused: {e:?}"));
                        return None;
                    }
                }
                if !sent {
                    return None;
                }
                raw = version == 0;
            }
            Some(Request::SaslAuthenticate(req)) => {
                ctx.metrics.request(ApiKey::SaslAuthenticate);
                authenticate_v1 |= version >= 1;
                let bytes: Bytes = req.auth_bytes.clone();
                let step = if exchange.in_progress() {
                    exchange
                        .step(ctx.meta.as_ref(), &ctx.sasl_secret, &bytes)
                        .await
                } else {
                    Step::Failed("SaslAuthenticate before SaslHandshake".to_owned())
                };
                let mut resp = SaslAuthenticateResponse::default();
                let reply = |resp: &SaslAuthenticateResponse| {
                    ready(encode(
                        ApiKey::SaslAuthenticate,
                        version,
                        correlation_id,
                        resp,
                    ))
                };
                let refusal = match step {
                    Step::Challenge(token) => {
                        resp.auth_bytes = token.into();
                        if !queue.push(reply(&resp), 1).await {
                            return None;
                        }
                        continue;
                    }
                    Step::Done(principal, token) => {
                        match previous.filter(|p| p.principal != principal) {
                            // Kafka refuses to change principals on a connection.
                            Some(p) => Refusal {
                                reason: format!(
                                    "re-authentication as {principal}, not {}",
                                    p.principal
                                ),
                                message: "Cannot change principals during re-authentication",
                            },
                            None => {
                                let login =
                                    log.succeeded(principal, mechanism?, authenticate_v1)?;
                                if version >= 1 {
                                    resp.session_lifetime_ms = lifetime_ms(listener.max_reauth);
                                }
                                resp.auth_bytes = token.into();
                                return queue.push(reply(&resp), 1).await.then_some(login);
                            }
                        }
                    }
                    Step::Failed(reason) => Refusal {
                        reason,
                        message: FAILED,
                    },
                };
                log.failed(&refusal.reason).await;
                let e = RequestError::SaslAuthenticationFailed(refusal.message);
                resp.error_code = e.code();
                resp.error_message = Some(str_bytes(e.to_string()));
                queue.push(reply(&resp), 1).await;
                return None;
            }
            Some(_) => {
                tracing::warn!(%peer, listener = %listener.name, api = ?decoded.api_key, renew = log.renew, "request during authentication; closing connection");
                ctx.metrics.refused_request("unauthenticated");
                if log.renew {
                    log.audit(
                        None,
                        &format!("{:?} during re-authentication", decoded.api_key),
                    );
                }
                return None;
            }
        }
    }
}

/// Why an exchange is refused: `reason` for the log and the audit trail, `message` for the
/// client.
struct Refusal {
    reason: String,
    message: &'static str,
}

/// `session_lifetime_ms` of SaslAuthenticate: the credentials (SCRAM users) never expire,
/// so it is `connections.max.reauth.ms`, 0 when sessions never end.
fn lifetime_ms(max_reauth: Option<std::time::Duration>) -> i64 {
    max_reauth.map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

/// Where an exchange's outcome is logged, counted and audited.
struct Audit<'a> {
    ctx: &'a Context,
    session: &'a Session,
    /// A re-authentication rather than the connection's first login.
    renew: bool,
}

impl Audit<'_> {
    fn audit(&self, principal: Option<&Principal>, detail: &str) {
        if self.renew {
            crate::audit::reauthentication(self.ctx, self.session, principal, detail);
        } else {
            crate::audit::authentication(self.ctx, self.session, principal, detail);
        }
    }

    /// A login is done: its session starts now. `None` only if no handshake chose a
    /// mechanism, which the exchange does not allow.
    fn succeeded(
        &self,
        principal: Principal,
        mechanism: SaslMechanism,
        renewable: bool,
    ) -> Option<Login> {
        let session = self.session;
        self.ctx.metrics.authentication_succeeded();
        tracing::debug!(peer = %session.peer, listener = %session.listener.name, %principal, renew = self.renew, "authenticated");
        self.audit(
            Some(&principal),
            if self.renew {
                "re-authenticated"
            } else {
                "authenticated"
            },
        );
        Some(Login {
            principal,
            mechanism,
            expires: session.listener.max_reauth.map(|d| Instant::now() + d),
            renewable,
        })
    }

    /// A refusal: logged and audited with its reason, then held for the listener's delay,
    /// or longer for an address that keeps failing (`LoginLimiter`), so that guessing
    /// passwords is slow. Successful logins from the same address are not held.
    async fn failed(&self, reason: &str) {
        let (ctx, session) = (self.ctx, self.session);
        tracing::warn!(peer = %session.peer, listener = %session.listener.name, %reason, renew = self.renew, "authentication failed");
        ctx.metrics.authentication_failed();
        let now = std::time::Instant::now();
        ctx.logins.failed(session.peer.ip(), now);
        self.audit(None, reason);
        let wait = ctx
            .logins
            .penalty(session.peer.ip(), now, session.listener.failed_auth_delay);
        tokio::time::sleep(wait).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn session_lifetime_is_the_configured_maximum() {
        assert_eq!(lifetime_ms(None), 0);
        assert_eq!(lifetime_ms(Some(Duration::from_millis(2_000))), 2_000);
    }

    #[tokio::test(start_paused = true)]
    async fn a_login_expires_at_its_lifetime() {
        let login = Login {
            principal: Principal::user("alice"),
            mechanism: SaslMechanism::ScramSha512,
            expires: Some(Instant::now() + Duration::from_secs(2)),
            renewable: true,
        };
        assert!(!login.expired(Instant::now()));
        tokio::time::advance(Duration::from_secs(2)).await;
        assert!(login.expired(Instant::now()));
        let forever = Login {
            expires: None,
            ..login
        };
        assert!(!forever.expired(Instant::now() + Duration::from_secs(1 << 30)));
    }
}
