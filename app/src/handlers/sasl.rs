//! SaslHandshake and SaslAuthenticate outside of an exchange: on a listener without SASL,
//! or after the connection has authenticated when re-authentication is off
//! (`connections.max.reauth.ms` = 0) or not asked for with SaslHandshake v1. The exchange
//! itself, first login and re-authentication, is run by the connection (`server::auth`).

use kafka_protocol::messages::{
    SaslAuthenticateRequest, SaslAuthenticateResponse, SaslHandshakeRequest, SaslHandshakeResponse,
};
use std::sync::Arc;

use super::str_bytes;
use crate::context::Context;
use crate::errors::RequestError;
use crate::server::session::Session;

pub async fn handshake(
    _ctx: Arc<Context>,
    _session: Arc<Session>,
    _version: i16,
    _req: SaslHandshakeRequest,
) -> SaslHandshakeResponse {
    let mut resp = SaslHandshakeResponse::default();
    resp.error_code = RequestError::IllegalSaslState.code();
    resp
}

pub async fn authenticate(
    _ctx: Arc<Context>,
    _session: Arc<Session>,
    _version: i16,
    _req: SaslAuthenticateRequest,
) -> SaslAuthenticateResponse {
    let mut resp = SaslAuthenticateResponse::default();
    let e = RequestError::IllegalSaslState;
    resp.error_code = e.code();
    resp.error_message = Some(str_bytes(e.to_string()));
    resp
}
