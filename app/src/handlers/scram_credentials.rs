//! AlterUserScramCredentials and DescribeUserScramCredentials: SCRAM users in the metadata
//! store. Clients send a salted password (never the password); the broker keeps only the
//! stored and server keys derived from it. Results come one per user, as Kafka gives them.

use kafka_protocol::messages::alter_user_scram_credentials_response::AlterUserScramCredentialsResult;
use kafka_protocol::messages::describe_user_scram_credentials_response::{
    CredentialInfo, DescribeUserScramCredentialsResult,
};
use kafka_protocol::messages::{
    AlterUserScramCredentialsRequest, AlterUserScramCredentialsResponse, ApiKey,
    DescribeUserScramCredentialsRequest, DescribeUserScramCredentialsResponse,
};
use kafscale_core::users::{self, CredentialChange, UserError};
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use super::str_bytes;
use crate::audit::Change;
use crate::context::Context;
use crate::errors::RequestError;
use crate::security::scram::{self, MAX_ITERATIONS, MIN_ITERATIONS};
use crate::security::SaslMechanism;
use crate::server::session::Session;
use kafscale_core::acl::Operation;

/// One entry of a request, checked.
type Entry = Result<(SaslMechanism, CredentialChange), RequestError>;

/// The change one entry asks for, checked.
fn checked(user: &str, code: i8, upsert: Option<(i32, &[u8], &[u8])>) -> Entry {
    if user.is_empty() {
        return Err(RequestError::UnacceptableCredential(
            "empty user name".into(),
        ));
    }
    let m = SaslMechanism::from_scram_code(code).ok_or(RequestError::UnsupportedSaslMechanism)?;
    let Some((iterations, salt, salted)) = upsert else {
        return Ok((m, CredentialChange::Delete));
    };
    let hash = m.scram().ok_or(RequestError::UnsupportedSaslMechanism)?;
    let iterations = u32::try_from(iterations)
        .ok()
        .filter(|i| (MIN_ITERATIONS..=MAX_ITERATIONS).contains(i))
        .ok_or_else(|| {
            RequestError::UnacceptableCredential(format!(
                "iterations must be in [{MIN_ITERATIONS}, {MAX_ITERATIONS}]"
            ))
        })?;
    if salt.is_empty() || salted.len() != hash.output_len() {
        return Err(RequestError::UnacceptableCredential(
            "a salt and a salted password of the mechanism's length are required".into(),
        ));
    }
    Ok((
        m,
        CredentialChange::Upsert(scram::credential(hash, salted, salt, iterations)),
    ))
}

pub async fn alter(
    ctx: Arc<Context>,
    session: Arc<Session>,
    _version: i16,
    req: AlterUserScramCredentialsRequest,
) -> AlterUserScramCredentialsResponse {
    // Every entry, by user, in request order; a (user, mechanism) named twice is refused.
    let mut by_user: BTreeMap<String, Vec<Entry>> = BTreeMap::new();
    let mut order = Vec::new();
    let entries = req
        .deletions
        .iter()
        .map(|d| (d.name.to_string(), d.mechanism, None))
        .chain(req.upsertions.iter().map(|u| {
            (
                u.name.to_string(),
                u.mechanism,
                Some((u.iterations, &u.salt[..], &u.salted_password[..])),
            )
        }));
    let mut seen = BTreeSet::new();
    let allowed = ctx.cluster_authorized(&session, Operation::Alter);
    for (user, code, upsert) in entries {
        if !by_user.contains_key(&user) {
            order.push(user.clone());
        }
        let entry = if !allowed {
            Err(RequestError::ClusterAuthorizationFailed)
        } else if seen.insert((user.clone(), code)) {
            checked(&user, code, upsert)
        } else {
            Err(RequestError::DuplicateResource(format!(
                "user {user} is named twice for one mechanism"
            )))
        };
        by_user.entry(user).or_default().push(entry);
    }
    let mut resp = AlterUserScramCredentialsResponse::default();
    for user in order {
        let entries = by_user.remove(&user).unwrap_or_default();
        let outcome = apply(&ctx, &user, entries).await;
        let mut r = AlterUserScramCredentialsResult::default();
        r.user = str_bytes(user.clone());
        if let Err(e) = &outcome {
            r.error_code = e.code();
            r.error_message = Some(str_bytes(e.to_string()));
        }
        crate::audit::changed(
            &ctx,
            &session,
            Change {
                api: ApiKey::AlterUserScramCredentials,
                what: "user",
                resource: &user,
                code: r.error_code,
            },
        );
        resp.results.push(r);
    }
    resp
}

/// A user's entries: all refused if any is invalid, else applied in order.
async fn apply(ctx: &Context, user: &str, entries: Vec<Entry>) -> Result<(), RequestError> {
    let changes = entries.into_iter().collect::<Result<Vec<_>, _>>()?;
    for (mechanism, change) in changes {
        users::change(ctx.meta.as_ref(), user, mechanism.name(), change)
            .await
            .map_err(|e| match e {
                UserError::NoSuchCredential { .. } => RequestError::ResourceNotFound(e.to_string()),
                UserError::Store(e) => RequestError::Core(e.into()),
            })?;
    }
    Ok(())
}

pub async fn describe(
    ctx: Arc<Context>,
    session: Arc<Session>,
    _version: i16,
    req: DescribeUserScramCredentialsRequest,
) -> DescribeUserScramCredentialsResponse {
    let mut resp = DescribeUserScramCredentialsResponse::default();
    if !ctx.cluster_authorized(&session, Operation::Describe) {
        let e = RequestError::ClusterAuthorizationFailed;
        resp.error_code = e.code();
        resp.error_message = Some(str_bytes(e.to_string()));
        return resp;
    }
    let all = match users::list(ctx.meta.as_ref()).await {
        Ok(all) => all,
        Err(e) => {
            let e = RequestError::Core(e.into());
            resp.error_code = e.code();
            resp.error_message = Some(str_bytes(e.to_string()));
            return resp;
        }
    };
    let wanted: Vec<String> = match &req.users {
        None => all.keys().cloned().collect(),
        Some(names) => names.iter().map(|n| n.name.to_string()).collect(),
    };
    let mut seen = BTreeSet::new();
    for user in wanted {
        let mut r = DescribeUserScramCredentialsResult::default();
        r.user = str_bytes(user.clone());
        let outcome = if !seen.insert(user.clone()) {
            Err(RequestError::DuplicateResource(format!(
                "user {user} is named twice"
            )))
        } else {
            all.get(&user)
                .ok_or_else(|| RequestError::ResourceNotFound(format!("no such user: {user}")))
        };
        match outcome {
            Ok(record) => {
                r.credential_infos = record
                    .scram
                    .iter()
                    .filter_map(|(name, c)| {
                        let m = SaslMechanism::parse(name)?;
                        let mut info = CredentialInfo::default();
                        info.mechanism = m.scram_code();
                        info.iterations = i32::try_from(c.iterations).unwrap_or(i32::MAX);
                        Some(info)
                    })
                    .collect();
            }
            Err(e) => {
                r.error_code = e.code();
                r.error_message = Some(str_bytes(e.to_string()));
            }
        }
        resp.results.push(r);
    }
    resp
}
