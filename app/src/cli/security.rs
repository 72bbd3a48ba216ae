//! How the CLI's client connects: Kafka's client properties (`--command-config FILE`),
//! checked once into [`ClientSecurity`] so that a typo or a missing file is reported before
//! anything is sent. Names are Kafka's, with librdkafka's aliases where Kafka's tools and
//! librdkafka users would otherwise have to rewrite their files.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::properties::{parse_jaas, parse_properties, LoginModule};
use super::tls;
use crate::config::SecurityProtocol;
use crate::security::SaslMechanism;

/// Why a client configuration cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read {path}: {reason}")]
    Read { path: String, reason: String },
    #[error("{file}: {reason}")]
    Syntax { file: String, reason: String },
    #[error("unknown client property {key} (supported: {})", KEYS.join(", "))]
    UnknownKey { key: String },
    #[error("{key}: {reason}")]
    Invalid { key: String, reason: String },
}

/// The properties a `--command-config` file may set.
const KEYS: [&str; 13] = [
    "security.protocol",
    "ssl.truststore.location",
    "ssl.truststore.type",
    "ssl.ca.location",
    "ssl.keystore.location",
    "ssl.keystore.type",
    "ssl.certificate.location",
    "ssl.key.location",
    "ssl.endpoint.identification.algorithm",
    "sasl.mechanism",
    "sasl.username",
    "sasl.password",
    "sasl.jaas.config",
];

fn invalid(key: &str, reason: impl Into<String>) -> ConfigError {
    ConfigError::Invalid {
        key: key.to_owned(),
        reason: reason.into(),
    }
}

/// A SASL login. The password is kept out of `Debug`.
#[derive(Clone, PartialEq, Eq)]
pub struct SaslLogin {
    pub mechanism: SaslMechanism,
    pub username: String,
    pub password: String,
}

impl std::fmt::Debug for SaslLogin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SaslLogin")
            .field("mechanism", &self.mechanism)
            .field("username", &self.username)
            .finish_non_exhaustive()
    }
}

/// The TLS side of a configuration, as files; [`tls::client_config`] loads them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsFiles {
    /// PEM file of the CAs the brokers' certificates must chain to.
    pub truststore: PathBuf,
    /// The client's certificate chain and key, when the brokers ask for one.
    pub identity: Option<Identity>,
    /// Whether the broker's certificate must name the host connected to
    /// (`ssl.endpoint.identification.algorithm=https`, Kafka's default).
    pub verify_hostname: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Identity {
    /// One PEM file with the key and the chain (`ssl.keystore.location`).
    Keystore(PathBuf),
    /// `ssl.certificate.location` and `ssl.key.location`.
    Separate { certificate: PathBuf, key: PathBuf },
}

/// Everything a connection needs to reach and log in to a broker.
#[derive(Debug, Clone)]
pub struct ClientSecurity {
    pub protocol: SecurityProtocol,
    /// Loaded once, shared by every connection of a command.
    pub tls: Option<Arc<rustls::ClientConfig>>,
    pub sasl: Option<SaslLogin>,
}

impl Default for ClientSecurity {
    /// PLAINTEXT without authentication, as without `--command-config`.
    fn default() -> ClientSecurity {
        ClientSecurity {
            protocol: SecurityProtocol::Plaintext,
            tls: None,
            sasl: None,
        }
    }
}

impl ClientSecurity {
    /// Reads and checks a `--command-config` file; files it names are loaded now.
    pub fn load(path: &Path) -> Result<ClientSecurity, ConfigError> {
        let file = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|e| ConfigError::Read {
            path: file.clone(),
            reason: e.to_string().to_lowercase(),
        })?;
        let props = parse_properties(&text).map_err(|reason| ConfigError::Syntax {
            file: file.clone(),
            reason,
        })?;
        ClientSecurity::from_properties(&props)
    }

    pub fn from_properties(
        props: &BTreeMap<String, String>,
    ) -> Result<ClientSecurity, ConfigError> {
        ClientSecurity::from_properties_with(props, &crate::security::tls::read)
    }

    /// [`ClientSecurity::from_properties`] with the files the properties name read by
    /// `read` (the operator reads them from the keys of a Secret).
    pub fn from_properties_with(
        props: &BTreeMap<String, String>,
        read: tls::ReadFile<'_>,
    ) -> Result<ClientSecurity, ConfigError> {
        let settings = Settings::check(props)?;
        let tls = match &settings.tls {
            Some(files) => Some(Arc::new(
                tls::client_config_with(files, read).map_err(|reason| invalid("ssl", reason))?,
            )),
            None => None,
        };
        Ok(ClientSecurity {
            protocol: settings.protocol,
            tls,
            sasl: settings.sasl,
        })
    }
}

/// The checked settings, before any file is read.
#[derive(Debug, PartialEq, Eq)]
pub struct Settings {
    pub protocol: SecurityProtocol,
    pub tls: Option<TlsFiles>,
    pub sasl: Option<SaslLogin>,
}

impl Settings {
    pub fn check(props: &BTreeMap<String, String>) -> Result<Settings, ConfigError> {
        if let Some(key) = props.keys().find(|k| !KEYS.contains(&k.as_str())) {
            return Err(ConfigError::UnknownKey { key: key.clone() });
        }
        let get = |k: &str| get(props, k);
        let protocol = match get("security.protocol") {
            None => SecurityProtocol::Plaintext,
            Some(p) => SecurityProtocol::parse(p).ok_or_else(|| {
                invalid(
                    "security.protocol",
                    format!("{p:?} is not PLAINTEXT, SSL, SASL_PLAINTEXT or SASL_SSL"),
                )
            })?,
        };
        // Settings that the protocol would ignore are refused: a forgotten
        // security.protocol would otherwise connect in plain text without a word.
        if !protocol.tls() {
            if let Some(k) = props.keys().find(|k| k.starts_with("ssl.")) {
                return Err(invalid(k, "needs security.protocol SSL or SASL_SSL"));
            }
        }
        if !protocol.sasl() {
            if let Some(k) = props.keys().find(|k| k.starts_with("sasl.")) {
                return Err(invalid(
                    k,
                    "needs security.protocol SASL_PLAINTEXT or SASL_SSL",
                ));
            }
        }
        let tls = protocol.tls().then(|| tls_files(props)).transpose()?;
        let sasl = protocol.sasl().then(|| sasl_login(props)).transpose()?;
        Ok(Settings {
            protocol,
            tls,
            sasl,
        })
    }
}

fn get<'a>(props: &'a BTreeMap<String, String>, key: &str) -> Option<&'a str> {
    props.get(key).map(String::as_str)
}

fn tls_files(props: &BTreeMap<String, String>) -> Result<TlsFiles, ConfigError> {
    let get = |k: &str| get(props, k);
    for key in ["ssl.truststore.type", "ssl.keystore.type"] {
        if let Some(t) = get(key).filter(|t| !t.eq_ignore_ascii_case("PEM")) {
            return Err(invalid(
                key,
                format!("{t} files are not supported, only PEM"),
            ));
        }
    }
    let truststore =
        match (get("ssl.truststore.location"), get("ssl.ca.location")) {
            (Some(_), Some(_)) => {
                return Err(invalid(
                    "ssl.ca.location",
                    "set either ssl.truststore.location or ssl.ca.location",
                ))
            }
            (Some(p), None) | (None, Some(p)) => PathBuf::from(p),
            (None, None) => return Err(invalid(
                "ssl.truststore.location",
                "required with SSL: a PEM file of the CAs that signed the brokers' certificates",
            )),
        };
    let identity = match (
        get("ssl.keystore.location"),
        get("ssl.certificate.location"),
        get("ssl.key.location"),
    ) {
        (None, None, None) => None,
        (Some(k), None, None) => Some(Identity::Keystore(k.into())),
        (None, Some(c), Some(k)) => Some(Identity::Separate {
            certificate: c.into(),
            key: k.into(),
        }),
        (Some(_), _, _) => {
            return Err(invalid(
                "ssl.keystore.location",
                "set either it or ssl.certificate.location and ssl.key.location",
            ))
        }
        (None, Some(_), None) => {
            return Err(invalid(
                "ssl.key.location",
                "required with ssl.certificate.location",
            ))
        }
        (None, None, Some(_)) => {
            return Err(invalid(
                "ssl.certificate.location",
                "required with ssl.key.location",
            ))
        }
    };
    let verify_hostname = match get("ssl.endpoint.identification.algorithm") {
        None => true,
        Some(a) if a.eq_ignore_ascii_case("https") => true,
        Some(a) if a.is_empty() || a.eq_ignore_ascii_case("none") => false,
        Some(a) => {
            return Err(invalid(
                "ssl.endpoint.identification.algorithm",
                format!("{a:?} is not https or empty"),
            ))
        }
    };
    Ok(TlsFiles {
        truststore,
        identity,
        verify_hostname,
    })
}

fn sasl_login(props: &BTreeMap<String, String>) -> Result<SaslLogin, ConfigError> {
    let get = |k: &str| get(props, k);
    let mechanism = get("sasl.mechanism").ok_or_else(|| {
        invalid(
            "sasl.mechanism",
            "required with SASL: PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512",
        )
    })?;
    let mechanism = SaslMechanism::parse(mechanism).ok_or_else(|| {
        invalid(
            "sasl.mechanism",
            format!("{mechanism} is not PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512"),
        )
    })?;
    let (username, password) = match (
        get("sasl.jaas.config"),
        get("sasl.username"),
        get("sasl.password"),
    ) {
        (Some(line), None, None) => {
            let jaas = parse_jaas(line).map_err(|e| invalid("sasl.jaas.config", e))?;
            let fits = match jaas.module {
                LoginModule::Plain => mechanism == SaslMechanism::Plain,
                LoginModule::Scram => mechanism != SaslMechanism::Plain,
            };
            if !fits {
                return Err(invalid(
                    "sasl.jaas.config",
                    format!(
                        "its login module does not go with sasl.mechanism {}",
                        mechanism.name()
                    ),
                ));
            }
            (jaas.username, jaas.password)
        }
        (None, Some(u), Some(p)) => (u.to_owned(), p.to_owned()),
        (Some(_), _, _) => {
            return Err(invalid(
                "sasl.jaas.config",
                "set either it or sasl.username and sasl.password",
            ))
        }
        (None, _, _) => {
            return Err(invalid(
                "sasl.username",
                "SASL needs sasl.username and sasl.password, or sasl.jaas.config",
            ))
        }
    };
    Ok(SaslLogin {
        mechanism,
        username,
        password,
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn check(text: &str) -> Result<Settings, ConfigError> {
        Settings::check(&parse_properties(text).unwrap())
    }

    #[test]
    fn nothing_set_is_plaintext() {
        let s = check("").unwrap();
        assert_eq!(
            (s.protocol, s.tls, s.sasl),
            (SecurityProtocol::Plaintext, None, None)
        );
    }

    #[test]
    fn sasl_ssl_with_jaas_or_librdkafka_names() {
        let s = check(
            "security.protocol=SASL_SSL\nsasl.mechanism=SCRAM-SHA-512\nssl.truststore.location=/ca.pem\n\
             sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required \
             username=\"alice\" password=\"s3cret\";\n",
        )
        .unwrap();
        assert_eq!(s.protocol, SecurityProtocol::SaslSsl);
        let tls = s.tls.unwrap();
        assert_eq!(tls.truststore, PathBuf::from("/ca.pem"));
        assert!(tls.verify_hostname && tls.identity.is_none());
        let login = s.sasl.unwrap();
        assert_eq!(login.mechanism, SaslMechanism::ScramSha512);
        assert_eq!(
            (login.username.as_str(), login.password.as_str()),
            ("alice", "s3cret")
        );
        assert!(!format!("{login:?}").contains("s3cret"));

        let s = check(
            "security.protocol=sasl_plaintext\nsasl.mechanism=PLAIN\nsasl.username=bob\nsasl.password=pw\n",
        )
        .unwrap();
        assert_eq!(s.sasl.unwrap().username, "bob");
    }

    #[test]
    fn ssl_identities_and_hostname_checks() {
        let s = check(
            "security.protocol=SSL\nssl.ca.location=/ca\nssl.certificate.location=/c\nssl.key.location=/k\n\
             ssl.endpoint.identification.algorithm=\n",
        )
        .unwrap();
        let tls = s.tls.unwrap();
        assert!(!tls.verify_hostname);
        assert_eq!(
            tls.identity,
            Some(Identity::Separate {
                certificate: "/c".into(),
                key: "/k".into()
            })
        );
        let s = check("security.protocol=SSL\nssl.truststore.location=/ca\nssl.keystore.location=/ks\nssl.keystore.type=PEM\n").unwrap();
        assert_eq!(
            s.tls.unwrap().identity,
            Some(Identity::Keystore("/ks".into()))
        );
    }

    #[test]
    fn mistakes_name_the_key() {
        for (text, key) in [
            ("bootstrap.server=x\n", "bootstrap.server"),
            ("security.protocol=TLS\n", "security.protocol"),
            ("ssl.truststore.location=/ca\n", "ssl.truststore.location"),
            ("sasl.mechanism=PLAIN\n", "sasl.mechanism"),
            ("security.protocol=SSL\n", "ssl.truststore.location"),
            ("security.protocol=SSL\nssl.ca.location=/c\nssl.keystore.type=JKS\n", "ssl.keystore.type"),
            ("security.protocol=SSL\nssl.ca.location=/c\nssl.certificate.location=/c\n", "ssl.key.location"),
            ("security.protocol=SASL_SSL\nssl.ca.location=/c\nsasl.username=a\nsasl.password=b\n", "sasl.mechanism"),
            ("security.protocol=SASL_PLAINTEXT\nsasl.mechanism=GSSAPI\n", "sasl.mechanism"),
            ("security.protocol=SASL_PLAINTEXT\nsasl.mechanism=PLAIN\nsasl.username=a\n", "sasl.username"),
            (
                "security.protocol=SASL_PLAINTEXT\nsasl.mechanism=PLAIN\nsasl.jaas.config=\
                 org.apache.kafka.common.security.scram.ScramLoginModule required username=a password=b;\n",
                "sasl.jaas.config",
            ),
        ] {
            let e = check(text).unwrap_err().to_string();
            assert!(e.starts_with(&format!("{key}:")) || e.contains(&format!("property {key} ")), "{text}: {e}");
        }
    }
}
