//! The audit trail: one structured event per authentication, on the `kafscale::audit`
//! target, so that it can be routed apart from the broker's own log (with `RUST_LOG` and
//! `log.format=json` it is one JSON line each).

use kafscale_core::acl::{Operation, Resource};

use crate::security::Principal;
use crate::server::session::Session;

/// An authentication succeeded (`principal` set) or failed (with the reason, which the
/// client is never told).
pub fn authentication(session: &Session, principal: Option<&Principal>, detail: &str) {
    let outcome = if principal.is_some() {
        "success"
    } else {
        "failure"
    };
    tracing::info!(
        target: "kafscale::audit",
        event = "authentication",
        outcome,
        principal = %principal.map(ToString::to_string).unwrap_or_default(),
        client = %session.peer,
        listener = %session.listener.name,
        protocol = session.listener.protocol.name(),
        detail,
    );
}

/// A request (or part of one) refused by the ACLs.
pub fn denied(session: &Session, operation: Operation, resource: &Resource) {
    tracing::info!(
        target: "kafscale::audit",
        event = "authorization",
        outcome = "denied",
        principal = %session.principal,
        client = %session.peer,
        listener = %session.listener.name,
        operation = ?operation,
        resource_type = ?resource.resource_type,
        resource = %resource.name,
    );
}

/// A change of ACLs, topics, configs, users or groups, by whom.
pub fn changed(session: &Session, what: &str, resource: &str, outcome: &str) {
    tracing::info!(
        target: "kafscale::audit",
        event = "change",
        what,
        resource,
        outcome,
        principal = %session.principal,
        client = %session.peer,
        listener = %session.listener.name,
    );
}
