//! The audit trail: one structured event per authentication and re-authentication, per
//! authorization denial (and, with `audit.log.allows`, per allowed check), and per change of
//! topics, records, configs, groups, ACLs and users. Events go to the `kafscale::audit`
//! target, so that they can be routed apart from the broker's own log (`audit.log.file`,
//! or `RUST_LOG` with `log.format=json`: one JSON line each), and each is counted in
//! `kafscale_audit_events_total{event,outcome}`.
//!
//! Every event names the time (added by the subscriber), the principal, the client address
//! (with its port, which tells connections apart), the listener and the outcome.

use kafka_protocol::messages::ApiKey;
use kafscale_core::acl::{Operation, Resource};

use crate::context::Context;
use crate::errors::{error_name, NO_ERROR};
use crate::security::Principal;
use crate::server::session::Session;

const TARGET: &str = "kafscale::audit";

/// An authentication succeeded (`principal` set) or failed (with the reason, which the
/// client is never told).
pub fn authentication(
    ctx: &Context,
    session: &Session,
    principal: Option<&Principal>,
    detail: &str,
) {
    login(ctx, "authentication", session, principal, detail);
}

/// A re-authentication (KIP-368) on a connection that was authenticated already.
pub fn reauthentication(
    ctx: &Context,
    session: &Session,
    principal: Option<&Principal>,
    detail: &str,
) {
    login(ctx, "reauthentication", session, principal, detail);
}

fn login(
    ctx: &Context,
    event: &'static str,
    session: &Session,
    principal: Option<&Principal>,
    detail: &str,
) {
    let outcome = if principal.is_some() {
        "success"
    } else {
        "failure"
    };
    ctx.metrics.audited(event, outcome);
    tracing::info!(
        target: TARGET,
        event,
        outcome,
        principal = %principal.map(ToString::to_string).unwrap_or_default(),
        client = %session.peer,
        listener = %session.listener.name,
        protocol = session.listener.protocol.name(),
        detail,
    );
}

/// An authorization check: every denial, and allowed checks when `audit.log.allows` is on.
pub fn authorization(
    ctx: &Context,
    session: &Session,
    operation: Operation,
    resource: &Resource,
    allowed: bool,
) {
    let outcome = if allowed { "allowed" } else { "denied" };
    ctx.metrics.audited("authorization", outcome);
    tracing::info!(
        target: TARGET,
        event = "authorization",
        outcome,
        principal = %session.principal,
        client = %session.peer,
        listener = %session.listener.name,
        operation = ?operation,
        resource_type = ?resource.resource_type,
        resource = %resource.name,
    );
}

/// One resource a request changed, or tried to.
pub struct Change<'a> {
    /// The API of the request.
    pub api: ApiKey,
    /// What kind of resource: `topic`, `partitions`, `records`, `config`, `group`,
    /// `offsets`, `acl`, `user`.
    pub what: &'static str,
    pub resource: &'a str,
    /// The Kafka error code of this resource's outcome; `NO_ERROR` for success.
    pub code: i16,
}

/// A change of a topic, config, group, ACL or user, by whom, and how it ended: `success`,
/// or Kafka's name of the error (`TOPIC_ALREADY_EXISTS`).
pub fn changed(ctx: &Context, session: &Session, change: Change<'_>) {
    let outcome = if change.code == NO_ERROR {
        "success".to_owned()
    } else {
        error_name(change.code)
    };
    ctx.metrics.audited("change", &outcome);
    tracing::info!(
        target: TARGET,
        event = "change",
        api = ?change.api,
        what = change.what,
        resource = change.resource,
        outcome,
        principal = %session.principal,
        client = %session.peer,
        listener = %session.listener.name,
    );
}

/// The changes of one request: one event per resource, with its outcome.
pub fn changes<'a>(
    ctx: &Context,
    session: &Session,
    api: ApiKey,
    what: &'static str,
    outcomes: impl IntoIterator<Item = (&'a str, i16)>,
) {
    for (resource, code) in outcomes {
        changed(
            ctx,
            session,
            Change {
                api,
                what,
                resource,
                code,
            },
        );
    }
}
