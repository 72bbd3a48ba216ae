//! What a connection is: the listener it came in on and who the client proved to be.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use crate::config::{ListenerConfig, SecurityProtocol};
use crate::security::tls::Certificates;
use crate::security::{Principal, PrincipalRules, SaslMechanism};

/// A listener as its connections see it.
pub struct Listener {
    /// Upper case, as configured.
    pub name: String,
    pub protocol: SecurityProtocol,
    /// TLS listeners: the certificates in use, reloaded when their files change.
    pub tls: Option<Certificates>,
    /// How a client certificate's subject becomes the principal.
    pub principal_rules: Option<PrincipalRules>,
    /// SASL listeners: the mechanisms offered.
    pub sasl: Vec<SaslMechanism>,
    pub failed_auth_delay: Duration,
    /// How long a SASL session lasts (`connections.max.reauth.ms`); `None`: for ever.
    pub max_reauth: Option<Duration>,
}

impl Listener {
    /// Loads a listener's certificates: a TLS listener whose key store cannot be read does
    /// not start.
    pub fn new(config: &ListenerConfig) -> Result<Listener, String> {
        let tls = config
            .tls
            .as_ref()
            .map(Certificates::load)
            .transpose()
            .map_err(|e| format!("listener {}: {e}", config.name))?;
        Ok(Listener {
            name: config.name.clone(),
            protocol: config.protocol,
            tls,
            principal_rules: config.tls.as_ref().map(|t| t.principal_rules.clone()),
            sasl: config.sasl_mechanisms.clone(),
            failed_auth_delay: config.failed_auth_delay,
            max_reauth: config.max_reauth,
        })
    }
}

/// One connection's identity, fixed once authentication is over.
pub struct Session {
    pub listener: Arc<Listener>,
    pub peer: SocketAddr,
    pub principal: Principal,
    /// The principal and host as ACLs name them (`User:NAME`, the IP), made once per
    /// connection rather than on every authorization check of produce and fetch.
    acl_principal: String,
    acl_host: String,
}

impl Session {
    pub fn new(listener: Arc<Listener>, peer: SocketAddr, principal: Principal) -> Session {
        Session {
            acl_principal: principal.to_string(),
            acl_host: peer.ip().to_string(),
            listener,
            peer,
            principal,
        }
    }

    /// `User:NAME`, as ACL entries name principals.
    pub fn acl_principal(&self) -> &str {
        &self.acl_principal
    }

    /// The client's IP, as ACL entries name hosts.
    pub fn acl_host(&self) -> &str {
        &self.acl_host
    }

    pub fn listener_name(&self) -> &str {
        &self.listener.name
    }
}
