//! One connection's SASL exchange: SaslHandshake picks a mechanism among those the listener
//! enables, then SaslAuthenticate rounds carry PLAIN or SCRAM messages until the client is
//! in or refused. Every mechanism checks the SCRAM users in the metadata store (PLAIN
//! recomputes the stored key from the password), so a user created through one broker can
//! log in on every broker at once.

use kafscale_core::ports::MetadataStore;
use kafscale_core::users::{self, ScramCredential};

use super::scram::{self, ScramError, ServerPending};
use super::{Principal, SaslMechanism};

/// Where the exchange stands.
#[derive(Debug, Default)]
enum State {
    #[default]
    Start,
    Chosen(SaslMechanism),
    Scram(SaslMechanism, Box<ServerPending>),
    Finished,
}

/// What one SaslAuthenticate round gives.
#[derive(Debug)]
pub enum Step {
    /// Send these bytes and expect another round.
    Challenge(Vec<u8>),
    /// In: send these bytes (possibly empty), the connection now acts as the principal.
    Done(Principal, Vec<u8>),
    /// Refused; the text is for the log, the client sees [`FAILED`].
    Failed(String),
}

/// What a client is told when authentication fails, whatever the reason.
pub const FAILED: &str = "Authentication failed: Invalid username or password";

#[derive(Debug)]
pub struct Exchange {
    enabled: Vec<SaslMechanism>,
    state: State,
}

/// Why a handshake is refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HandshakeError {
    /// Not enabled here: the client is told which are.
    Unsupported,
    /// A second handshake in the same exchange.
    IllegalState,
}

impl Exchange {
    pub fn new(enabled: Vec<SaslMechanism>) -> Exchange {
        Exchange {
            enabled,
            state: State::Start,
        }
    }

    pub fn enabled(&self) -> &[SaslMechanism] {
        &self.enabled
    }

    pub fn handshake(&mut self, mechanism: &str) -> Result<SaslMechanism, HandshakeError> {
        if !matches!(self.state, State::Start) {
            return Err(HandshakeError::IllegalState);
        }
        let chosen = SaslMechanism::parse(mechanism)
            .filter(|m| self.enabled.contains(m))
            .ok_or(HandshakeError::Unsupported)?;
        self.state = State::Chosen(chosen);
        Ok(chosen)
    }

    /// Whether a handshake has chosen a mechanism and the exchange is not over.
    pub fn in_progress(&self) -> bool {
        matches!(self.state, State::Chosen(_) | State::Scram(..))
    }

    /// One round. `secret` seeds the decoy salts of unknown users (the same on every
    /// broker: see `users::decoy_secret`).
    pub async fn step(&mut self, store: &dyn MetadataStore, secret: &[u8], bytes: &[u8]) -> Step {
        match std::mem::take(&mut self.state) {
            State::Chosen(SaslMechanism::Plain) => {
                self.state = State::Finished;
                plain(store, bytes).await
            }
            State::Chosen(mechanism) => {
                let Some(hash) = mechanism.scram() else {
                    return Step::Failed("no such mechanism".to_owned());
                };
                let first = match scram::parse_client_first(bytes) {
                    Ok(first) => first,
                    Err(e) => {
                        self.state = State::Finished;
                        return Step::Failed(e.to_string());
                    }
                };
                let credential = match lookup(store, &first.user, mechanism).await {
                    Ok(c) => c,
                    Err(e) => {
                        self.state = State::Finished;
                        return Step::Failed(e);
                    }
                };
                let (message, pending) = scram::server_first(hash, first, credential, secret);
                self.state = State::Scram(mechanism, Box::new(pending));
                Step::Challenge(message)
            }
            State::Scram(mechanism, pending) => {
                self.state = State::Finished;
                let user = pending.user().to_owned();
                match pending.finish(bytes) {
                    Ok(message) => Step::Done(Principal::user(&user), message),
                    Err(ScramError::InvalidCredentials) => Step::Failed(format!(
                        "{} authentication of {user:?} failed: invalid credentials",
                        mechanism.name()
                    )),
                    Err(e) => {
                        Step::Failed(format!("{} exchange of {user:?}: {e}", mechanism.name()))
                    }
                }
            }
            State::Start | State::Finished => {
                self.state = State::Finished;
                Step::Failed("SaslAuthenticate without a SaslHandshake".to_owned())
            }
        }
    }
}

/// The user's credential of the mechanism, `None` if there is no such user or credential.
async fn lookup(
    store: &dyn MetadataStore,
    user: &str,
    mechanism: SaslMechanism,
) -> Result<Option<ScramCredential>, String> {
    let record = users::get(store, user)
        .await
        .map_err(|e| format!("cannot read user {user:?}: {e}"))?;
    Ok(record.and_then(|mut r| r.scram.remove(mechanism.name())))
}

/// PLAIN (RFC 4616): `authzid NUL user NUL password`, checked against any of the user's
/// SCRAM credentials by recomputing its stored key.
async fn plain(store: &dyn MetadataStore, bytes: &[u8]) -> Step {
    let mut parts = bytes.split(|b| *b == 0);
    let (Some(authzid), Some(user), Some(password), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Step::Failed("malformed PLAIN message".to_owned());
    };
    let (Ok(authzid), Ok(user)) = (std::str::from_utf8(authzid), std::str::from_utf8(user)) else {
        return Step::Failed("PLAIN user name is not UTF-8".to_owned());
    };
    if !authzid.is_empty() && authzid != user {
        return Step::Failed(format!("PLAIN: {user:?} cannot act as {authzid:?}"));
    }
    let record = match users::get(store, user).await {
        Ok(record) => record,
        Err(e) => return Step::Failed(format!("cannot read user {user:?}: {e}")),
    };
    let checked = record.and_then(|r| {
        SaslMechanism::ALL.iter().find_map(|m| {
            let hash = m.scram()?;
            let credential = r.scram.get(m.name())?;
            let salted =
                scram::salted_password(hash, password, &credential.salt, credential.iterations);
            let computed =
                scram::credential(hash, &salted, &credential.salt, credential.iterations);
            Some(computed.stored_key == credential.stored_key)
        })
    });
    match checked {
        Some(true) => Step::Done(Principal::user(user), Vec::new()),
        Some(false) => Step::Failed(format!(
            "PLAIN authentication of {user:?} failed: invalid credentials"
        )),
        None => {
            // As costly as a real check, so that timing does not tell unknown users apart.
            let _ = scram::salted_password(
                scram::Hash::Sha512,
                password,
                b"decoy",
                scram::MIN_ITERATIONS,
            );
            Step::Failed(format!(
                "PLAIN authentication of {user:?} failed: invalid credentials"
            ))
        }
    }
}
