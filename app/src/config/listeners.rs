//! Kafka's listener settings: `listeners`, `advertised.listeners`,
//! `listener.security.protocol.map`, and the TLS and SASL settings each listener sees (its
//! `listener.name.NAME.` overrides, else the broker-wide values). Without `listeners` the
//! broker has one PLAINTEXT listener on `listen`, as before listeners existed.

use std::net::{IpAddr, Ipv4Addr, SocketAddr, ToSocketAddrs};
use std::path::PathBuf;
use std::time::Duration;

use kafscale_core::settings::{self as s, Setting};

use super::{ConfigError, Values};
use crate::security::{ClientAuth, PrincipalRules, SaslMechanism, TlsVersion};

fn invalid(message: impl Into<String>) -> ConfigError {
    ConfigError::Invalid(message.into())
}

/// How a listener's connections are secured, as Kafka names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SecurityProtocol {
    Plaintext,
    Ssl,
    SaslPlaintext,
    SaslSsl,
}

impl SecurityProtocol {
    pub fn parse(text: &str) -> Option<SecurityProtocol> {
        match text.trim().to_ascii_uppercase().as_str() {
            "PLAINTEXT" => Some(SecurityProtocol::Plaintext),
            "SSL" => Some(SecurityProtocol::Ssl),
            "SASL_PLAINTEXT" => Some(SecurityProtocol::SaslPlaintext),
            "SASL_SSL" => Some(SecurityProtocol::SaslSsl),
            _ => None,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            SecurityProtocol::Plaintext => "PLAINTEXT",
            SecurityProtocol::Ssl => "SSL",
            SecurityProtocol::SaslPlaintext => "SASL_PLAINTEXT",
            SecurityProtocol::SaslSsl => "SASL_SSL",
        }
    }

    pub fn tls(self) -> bool {
        matches!(self, SecurityProtocol::Ssl | SecurityProtocol::SaslSsl)
    }

    pub fn sasl(self) -> bool {
        matches!(
            self,
            SecurityProtocol::SaslPlaintext | SecurityProtocol::SaslSsl
        )
    }
}

/// PEM material, from a file (watched for changes) or given inline.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Pem {
    File(PathBuf),
    Inline(String),
}

/// A TLS listener's certificates and rules.
#[derive(Debug, Clone)]
pub struct TlsConfig {
    /// The private key and certificate chain: one file holding both, or the two inline.
    pub keystore: Keystore,
    /// CA certificates client certificates are checked against.
    pub truststore: Option<Pem>,
    pub client_auth: ClientAuth,
    pub principal_rules: PrincipalRules,
    pub versions: Vec<TlsVersion>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Keystore {
    /// One PEM file with the key and the chain.
    File(PathBuf),
    Inline {
        chain: String,
        key: String,
    },
}

/// One Kafka listener.
#[derive(Debug, Clone)]
pub struct ListenerConfig {
    /// Upper case, as Kafka names listeners.
    pub name: String,
    pub bind: SocketAddr,
    /// Where clients reach it; `None` = the bound address.
    pub advertised: Option<(String, u16)>,
    pub protocol: SecurityProtocol,
    pub tls: Option<TlsConfig>,
    /// Offered on SASL listeners, in the configured order.
    pub sasl_mechanisms: Vec<SaslMechanism>,
    pub failed_auth_delay: Duration,
    /// SASL listeners: how long a session lasts before the client must re-authenticate
    /// (`connections.max.reauth.ms`); `None`: for ever.
    pub max_reauth: Option<Duration>,
}

/// `NAME://HOST:PORT, ...` as (name, host, port).
fn parse_endpoints(
    setting: &Setting,
    text: &str,
) -> Result<Vec<(String, String, u16)>, ConfigError> {
    let mut out: Vec<(String, String, u16)> = Vec::new();
    for item in text.split(',').map(str::trim).filter(|i| !i.is_empty()) {
        let bad = || {
            invalid(format!(
                "{}: expected NAME://HOST:PORT, got {item:?}",
                setting.name
            ))
        };
        let (name, address) = item.split_once("://").ok_or_else(bad)?;
        let (host, port) = address.rsplit_once(':').ok_or_else(bad)?;
        let port: u16 = port.parse().map_err(|_| bad())?;
        let name = name.trim().to_ascii_uppercase();
        if name.is_empty() {
            return Err(bad());
        }
        if out.iter().any(|(n, _, _)| *n == name) {
            return Err(invalid(format!(
                "{}: listener {name} is named twice",
                setting.name
            )));
        }
        let host = host
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_owned();
        out.push((name, host, port));
    }
    if out.is_empty() {
        return Err(invalid(format!("{}: no listener given", setting.name)));
    }
    Ok(out)
}

/// A bind address: empty host = every interface; a name is resolved.
fn bind_addr(name: &str, host: &str, port: u16) -> Result<SocketAddr, ConfigError> {
    if host.is_empty() {
        return Ok(SocketAddr::new(IpAddr::V4(Ipv4Addr::UNSPECIFIED), port));
    }
    if let Ok(ip) = host.parse::<IpAddr>() {
        return Ok(SocketAddr::new(ip, port));
    }
    (host, port)
        .to_socket_addrs()
        .ok()
        .and_then(|mut addrs| addrs.next())
        .ok_or_else(|| {
            invalid(format!(
                "listeners: cannot resolve {host:?} of listener {name}"
            ))
        })
}

fn protocol_map(v: &Values) -> Result<Vec<(String, SecurityProtocol)>, ConfigError> {
    let setting = &s::LISTENER_SECURITY_PROTOCOL_MAP;
    let text = v.text(setting).unwrap_or_default();
    text.split(',')
        .map(str::trim)
        .filter(|i| !i.is_empty())
        .map(|item| {
            let (name, protocol) = item.split_once(':').ok_or_else(|| {
                invalid(format!(
                    "{}: expected NAME:PROTOCOL, got {item:?}",
                    setting.name
                ))
            })?;
            let protocol = SecurityProtocol::parse(protocol).ok_or_else(|| {
                invalid(format!(
                    "{}: unknown protocol {protocol:?} (PLAINTEXT, SSL, SASL_PLAINTEXT, SASL_SSL)",
                    setting.name
                ))
            })?;
            Ok((name.trim().to_ascii_uppercase(), protocol))
        })
        .collect()
}

/// The listener brokers reach each other on: `inter.broker.listener.name` (checked by
/// [`listeners`]), else the first.
pub fn inter_broker_listener(v: &Values, listeners: &[ListenerConfig]) -> String {
    let named = v.text(&s::INTER_BROKER_LISTENER_NAME);
    listeners
        .iter()
        .find(|l| {
            named
                .as_deref()
                .is_some_and(|n| l.name.eq_ignore_ascii_case(n))
        })
        .or(listeners.first())
        .map(|l| l.name.clone())
        .unwrap_or_default()
}

/// The listeners, with what each one's protocol needs checked: a TLS listener without a key
/// store or a SASL listener without a mechanism is refused here, not at the first client.
pub fn listeners(v: &Values) -> Result<Vec<ListenerConfig>, ConfigError> {
    let endpoints = match v.text(&s::LISTENERS) {
        Some(text) => {
            for legacy in [&s::LISTEN, &s::ADVERTISED_LISTENER] {
                if v.is_set(legacy) {
                    return Err(invalid(format!(
                        "{} cannot be combined with listeners; use listeners and advertised.listeners",
                        legacy.name
                    )));
                }
            }
            parse_endpoints(&s::LISTENERS, &text)?
                .into_iter()
                .map(|(name, host, port)| Ok((bind_addr(&name, &host, port)?, name)))
                .collect::<Result<Vec<_>, ConfigError>>()?
        }
        None => {
            let listen = v.text(&s::LISTEN).unwrap_or_default();
            let bind = listen.parse().map_err(|_| {
                invalid(format!(
                    "listen: expected HOST:PORT with a numeric IP, got {listen:?}"
                ))
            })?;
            vec![(bind, "PLAINTEXT".to_owned())]
        }
    };
    let mut advertised: Vec<(String, String, u16)> = match v.text(&s::ADVERTISED_LISTENERS) {
        Some(text) => {
            if v.is_set(&s::ADVERTISED_LISTENER) {
                return Err(invalid(
                    "advertised.listener cannot be combined with advertised.listeners",
                ));
            }
            parse_endpoints(&s::ADVERTISED_LISTENERS, &text)?
        }
        None => Vec::new(),
    };
    if let Some(a) = v.text(&s::ADVERTISED_LISTENER) {
        let (host, port) = super::sections::parse_host_port(s::ADVERTISED_LISTENER.name, &a)?;
        advertised.push(("PLAINTEXT".to_owned(), host, port));
    }
    for (name, _, _) in &advertised {
        if !endpoints.iter().any(|(_, n)| n == name) {
            return Err(invalid(format!(
                "advertised.listeners: {name} is not one of the listeners"
            )));
        }
    }
    for name in v.overridden_listeners() {
        if !endpoints.iter().any(|(_, n)| n == name) {
            return Err(invalid(format!(
                "listener.name.{}.*: {name} is not one of the listeners",
                name.to_ascii_lowercase()
            )));
        }
    }
    if let Some(name) = v.text(&s::INTER_BROKER_LISTENER_NAME) {
        if !endpoints.iter().any(|(_, n)| n.eq_ignore_ascii_case(&name)) {
            return Err(invalid(format!(
                "inter.broker.listener.name: {name} is not one of the listeners"
            )));
        }
    }
    let map = protocol_map(v)?;
    endpoints
        .into_iter()
        .map(|(bind, name)| {
            let protocol = map
                .iter()
                .find(|(n, _)| *n == name)
                .map(|(_, p)| *p)
                .ok_or_else(|| {
                    invalid(format!(
                        "listener {name} has no protocol in listener.security.protocol.map"
                    ))
                })?;
            let advertised = advertised
                .iter()
                .find(|(n, _, _)| *n == name)
                .map(|(_, host, port)| (host.clone(), *port));
            if advertised.is_none() && bind.ip().is_unspecified() {
                return Err(invalid(format!(
                    "listener {name} binds a wildcard address: advertised.listeners must say where clients reach it"
                )));
            }
            let tls = protocol.tls().then(|| tls_config(v, &name)).transpose()?;
            let sasl_mechanisms = if protocol.sasl() {
                sasl_mechanisms(v, &name)?
            } else {
                Vec::new()
            };
            Ok(ListenerConfig {
                failed_auth_delay: Duration::from_millis(
                    v.listener_int(&name, &s::CONNECTION_FAILED_AUTHENTICATION_DELAY_MS) as u64,
                ),
                max_reauth: match v.listener_int(&name, &s::CONNECTIONS_MAX_REAUTH_MS) {
                    ms if ms > 0 && protocol.sasl() => Some(Duration::from_millis(ms as u64)),
                    _ => None,
                },
                name,
                bind,
                advertised,
                protocol,
                tls,
                sasl_mechanisms,
            })
        })
        .collect()
}

fn tls_config(v: &Values, listener: &str) -> Result<TlsConfig, ConfigError> {
    let text = |setting: &Setting| v.listener_text(listener, setting);
    let keystore = match (
        text(&s::SSL_KEYSTORE_LOCATION),
        text(&s::SSL_KEYSTORE_CERTIFICATE_CHAIN),
        text(&s::SSL_KEYSTORE_KEY),
    ) {
        (Some(path), None, None) => Keystore::File(PathBuf::from(path)),
        (None, Some(chain), Some(key)) => Keystore::Inline { chain, key },
        (None, None, None) => {
            return Err(invalid(format!(
                "listener {listener} uses TLS: ssl.keystore.location (or ssl.keystore.certificate.chain and ssl.keystore.key) is required"
            )))
        }
        _ => {
            return Err(invalid(format!(
                "listener {listener}: give ssl.keystore.location, or ssl.keystore.certificate.chain with ssl.keystore.key, not a mix"
            )))
        }
    };
    let truststore = match (
        text(&s::SSL_TRUSTSTORE_LOCATION),
        text(&s::SSL_TRUSTSTORE_CERTIFICATES),
    ) {
        (Some(path), None) => Some(Pem::File(PathBuf::from(path))),
        (None, Some(pem)) => Some(Pem::Inline(pem)),
        (None, None) => None,
        (Some(_), Some(_)) => {
            return Err(invalid(format!(
                "listener {listener}: give ssl.truststore.location or ssl.truststore.certificates, not both"
            )))
        }
    };
    let client_auth = match text(&s::SSL_CLIENT_AUTH).as_deref() {
        Some("required") => ClientAuth::Required,
        Some("requested") => ClientAuth::Requested,
        _ => ClientAuth::None,
    };
    if client_auth != ClientAuth::None && truststore.is_none() {
        return Err(invalid(format!(
            "listener {listener}: ssl.client.auth={} needs a trust store (ssl.truststore.location)",
            text(&s::SSL_CLIENT_AUTH).unwrap_or_default()
        )));
    }
    let rules = text(&s::SSL_PRINCIPAL_MAPPING_RULES).unwrap_or_default();
    let principal_rules = PrincipalRules::parse(&rules)
        .map_err(|e| invalid(format!("ssl.principal.mapping.rules: {e}")))?;
    let versions = word_list(
        listener,
        &s::SSL_ENABLED_PROTOCOLS,
        &text(&s::SSL_ENABLED_PROTOCOLS).unwrap_or_default(),
        TlsVersion::parse,
    )?;
    Ok(TlsConfig {
        keystore,
        truststore,
        client_auth,
        principal_rules,
        versions,
    })
}

fn sasl_mechanisms(v: &Values, listener: &str) -> Result<Vec<SaslMechanism>, ConfigError> {
    let text = v
        .listener_text(listener, &s::SASL_ENABLED_MECHANISMS)
        .unwrap_or_default();
    word_list(
        listener,
        &s::SASL_ENABLED_MECHANISMS,
        &text,
        SaslMechanism::parse,
    )
}

/// A comma-separated list of words a setting takes, each parsed, at least one.
fn word_list<T>(
    listener: &str,
    setting: &Setting,
    text: &str,
    parse: fn(&str) -> Option<T>,
) -> Result<Vec<T>, ConfigError> {
    let items = text
        .split(',')
        .map(str::trim)
        .filter(|w| !w.is_empty())
        .map(|w| {
            parse(w).ok_or_else(|| {
                invalid(format!(
                    "{}: {w:?} is not supported ({})",
                    setting.name,
                    setting.allowed()
                ))
            })
        })
        .collect::<Result<Vec<_>, _>>()?;
    if items.is_empty() {
        return Err(invalid(format!(
            "listener {listener}: {} names none",
            setting.name
        )));
    }
    Ok(items)
}
