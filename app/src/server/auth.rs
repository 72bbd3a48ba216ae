//! The SASL phase of a connection on a SASL listener. Until the client has authenticated,
//! only ApiVersions, SaslHandshake and SaslAuthenticate are served; anything else closes
//! the connection, as in Kafka. Each step is answered before the next frame is read, so
//! the exchange sees frames strictly in order; answers still go through the connection's
//! writer, behind any ApiVersions answer sent before them.
//!
//! SaslHandshake v0 is followed by raw SASL tokens (size-prefixed, no Kafka header), v1 by
//! SaslAuthenticate requests; both are served.

use bytes::{BufMut, Bytes, BytesMut};
use kafka_protocol::messages::{ApiKey, SaslAuthenticateResponse, SaslHandshakeResponse};
use std::sync::Arc;
use tokio::io::AsyncRead;
use tokio::task::JoinHandle;

use super::apis::Request;
use super::connection::read_frame;
use super::dispatch::{self, encode, ready, Reply};
use super::session::Session;
use crate::context::Context;
use crate::errors::RequestError;
use crate::handlers::str_bytes;
use crate::security::sasl::{Exchange, HandshakeError, Step, FAILED};
use crate::security::Principal;

/// Queues an answer behind those already queued; `false` once the writer is gone.
pub(super) type Send<'a> = &'a mut (dyn FnMut(JoinHandle<Reply>) -> bool + std::marker::Send);

/// A raw SASL token frame (after a v0 handshake): its size, then the token.
fn raw_frame(token: &[u8]) -> Reply {
    let mut buf = BytesMut::with_capacity(4 + token.len());
    buf.put_u32(token.len() as u32);
    buf.put_slice(token);
    Reply::Frame(buf.freeze())
}

/// Runs the exchange. Returns the authenticated principal, or `None` when the connection
/// is to be closed (after the answers already queued are written).
pub(super) async fn authenticate<R: AsyncRead + Unpin>(
    ctx: &Arc<Context>,
    reader: &mut R,
    provisional: &Arc<Session>,
    send: Send<'_>,
) -> Option<Principal> {
    let listener = &provisional.listener;
    let peer = provisional.peer;
    let mut exchange = Exchange::new(listener.sasl.clone());
    // Set by a v0 handshake: the next frames are raw tokens.
    let mut raw = false;
    let max = ctx.config.max_request_bytes;
    loop {
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
                    if !send(ready(raw_frame(&token))) {
                        return None;
                    }
                }
                Step::Done(principal, token) => {
                    authenticated(ctx, provisional, &principal);
                    return send(ready(raw_frame(&token))).then_some(principal);
                }
                Step::Failed(reason) => {
                    failed(ctx, provisional, &reason).await;
                    return None;
                }
            }
            continue;
        }
        let decoded = match dispatch::decode_frame(frame) {
            Ok(decoded) => decoded,
            Err(error) => {
                tracing::warn!(%peer, %error, "bad request during authentication; closing connection");
                ctx.metrics.refused_request(error.reason());
                return None;
            }
        };
        let (version, correlation_id) = (decoded.version, decoded.correlation_id);
        match &decoded.request {
            None | Some(Request::ApiVersions(_)) => {
                if !send(dispatch::dispatch(ctx, decoded, provisional)) {
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
                let sent = send(ready(encode(
                    ApiKey::SaslHandshake,
                    version,
                    correlation_id,
                    &resp,
                )));
                if let Err(e) = outcome {
                    tracing::warn!(%peer, listener = %listener.name, mechanism = %req.mechanism.as_str(), error = ?e, "SASL handshake refused; closing connection");
                    crate::audit::authentication(
                        provisional,
                        None,
                        &format!("handshake refused: {e:?}"),
                    );
                    return None;
                }
                if !sent {
                    return None;
                }
                raw = version == 0;
            }
            Some(Request::SaslAuthenticate(req)) => {
                ctx.metrics.request(ApiKey::SaslAuthenticate);
                let bytes: Bytes = req.auth_bytes.clone();
                let step = if exchange.in_progress() {
                    exchange
                        .step(ctx.meta.as_ref(), &ctx.sasl_secret, &bytes)
                        .await
                } else {
                    Step::Failed("SaslAuthenticate before SaslHandshake".to_owned())
                };
                let mut resp = SaslAuthenticateResponse::default();
                match step {
                    Step::Challenge(token) => {
                        resp.auth_bytes = token.into();
                        if !send(ready(encode(
                            ApiKey::SaslAuthenticate,
                            version,
                            correlation_id,
                            &resp,
                        ))) {
                            return None;
                        }
                    }
                    Step::Done(principal, token) => {
                        resp.auth_bytes = token.into();
                        authenticated(ctx, provisional, &principal);
                        let sent = send(ready(encode(
                            ApiKey::SaslAuthenticate,
                            version,
                            correlation_id,
                            &resp,
                        )));
                        return sent.then_some(principal);
                    }
                    Step::Failed(reason) => {
                        failed(ctx, provisional, &reason).await;
                        let e = RequestError::SaslAuthenticationFailed(FAILED);
                        resp.error_code = e.code();
                        resp.error_message = Some(str_bytes(e.to_string()));
                        send(ready(encode(
                            ApiKey::SaslAuthenticate,
                            version,
                            correlation_id,
                            &resp,
                        )));
                        return None;
                    }
                }
            }
            Some(_) => {
                tracing::warn!(%peer, listener = %listener.name, api = ?decoded.api_key, "request before authentication; closing connection");
                ctx.metrics.refused_request("unauthenticated");
                return None;
            }
        }
    }
}

fn authenticated(ctx: &Context, session: &Session, principal: &Principal) {
    ctx.metrics.authentication_succeeded();
    tracing::debug!(peer = %session.peer, listener = %session.listener.name, %principal, "authenticated");
    crate::audit::authentication(session, Some(principal), "authenticated");
}

/// A refusal: logged and audited with its reason, then held for the listener's delay, or
/// longer for an address that keeps failing (`LoginLimiter`), so that guessing passwords
/// is slow. Successful logins from the same address are not held.
async fn failed(ctx: &Context, session: &Session, reason: &str) {
    tracing::warn!(peer = %session.peer, listener = %session.listener.name, %reason, "authentication failed");
    ctx.metrics.authentication_failed();
    let now = std::time::Instant::now();
    ctx.logins.failed(session.peer.ip(), now);
    crate::audit::authentication(session, None, reason);
    let wait = ctx
        .logins
        .penalty(session.peer.ip(), now, session.listener.failed_auth_delay);
    tokio::time::sleep(wait).await;
}
