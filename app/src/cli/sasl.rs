//! Logging a connection in with SASL, as Kafka's clients do: SaslHandshake v1 names the
//! mechanism, then SaslAuthenticate carries each message of the exchange. SCRAM is the
//! broker's own implementation's client side (`security::scram::ScramClient`), so the two
//! ends cannot drift apart.

use bytes::Bytes;
use kafka_protocol::messages::{ApiKey, SaslAuthenticateRequest, SaslHandshakeRequest};

use super::client::{error_name, str_bytes};
use super::conn::Conn;
use super::error::CliError;
use super::security::SaslLogin;
use crate::security::scram::ScramClient;

/// Authenticates `conn` as `login`; the connection may be used for anything afterwards.
pub async fn login(conn: &mut Conn, login: &SaslLogin) -> Result<(), CliError> {
    let mechanism = login.mechanism.name();
    let addr = conn.addr().to_owned();
    let failed = |reason: String| CliError::Authentication {
        addr: addr.clone(),
        user: login.username.clone(),
        mechanism: mechanism.to_owned(),
        reason,
    };
    let v = conn.version(ApiKey::SaslHandshake, 1..=1, "SASL authentication")?;
    let mut req = SaslHandshakeRequest::default();
    req.mechanism = str_bytes(mechanism);
    let resp = conn.call(v, &req).await?;
    if resp.error_code != 0 {
        let offered: Vec<String> = resp.mechanisms.iter().map(|m| m.to_string()).collect();
        return Err(failed(if offered.is_empty() {
            format!("{} (is this a SASL listener?)", error_name(resp.error_code))
        } else {
            format!(
                "{}: the listener offers {}",
                error_name(resp.error_code),
                offered.join(", ")
            )
        }));
    }
    match login.mechanism.scram() {
        None => {
            let mut message = vec![0u8];
            message.extend_from_slice(login.username.as_bytes());
            message.push(0);
            message.extend_from_slice(login.password.as_bytes());
            step(conn, message, &failed).await?;
        }
        Some(hash) => {
            let mut scram = ScramClient::new(hash, &login.username, &login.password);
            let server_first = step(conn, scram.first(), &failed).await?;
            let client_final = scram
                .respond(&server_first)
                .map_err(|e| failed(e.to_string()))?;
            let server_final = step(conn, client_final, &failed).await?;
            // The server proves it knew the credential: a broker that merely accepted us
            // could be an impostor.
            scram.verify(&server_final).map_err(|_| {
                failed(
                    "the broker's final SCRAM message does not prove it knows the credential"
                        .into(),
                )
            })?;
        }
    }
    Ok(())
}

/// One SaslAuthenticate round trip; the broker refusing becomes `failed(its reason)`.
async fn step(
    conn: &mut Conn,
    message: Vec<u8>,
    failed: &(dyn Fn(String) -> CliError + Sync),
) -> Result<Bytes, CliError> {
    let v = conn.version(ApiKey::SaslAuthenticate, 0..=2, "SASL authentication")?;
    let mut req = SaslAuthenticateRequest::default();
    req.auth_bytes = Bytes::from(message);
    let resp = conn.call(v, &req).await?;
    if resp.error_code != 0 {
        let name = error_name(resp.error_code);
        return Err(failed(match resp.error_message.filter(|m| !m.is_empty()) {
            Some(m) => format!("{name} ({m})"),
            None => name,
        }));
    }
    Ok(resp.auth_bytes)
}
