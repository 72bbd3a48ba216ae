//! Who a client is and how it proved it: TLS (with client certificates), SASL (PLAIN,
//! SCRAM-SHA-256/512) and the principal each yields, as Kafka defines them.

pub mod limiter;
pub mod principal;
pub mod sasl;
pub mod scram;
pub mod tls;

pub use principal::PrincipalRules;

/// Whether a TLS listener asks clients for a certificate (`ssl.client.auth`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClientAuth {
    None,
    /// Asked for; a client without one connects as `User:ANONYMOUS`.
    Requested,
    Required,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TlsVersion {
    V1_2,
    V1_3,
}

impl TlsVersion {
    pub fn parse(text: &str) -> Option<TlsVersion> {
        match text {
            "TLSv1.2" => Some(TlsVersion::V1_2),
            "TLSv1.3" => Some(TlsVersion::V1_3),
            _ => None,
        }
    }
}

/// A SASL mechanism this broker speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum SaslMechanism {
    Plain,
    ScramSha256,
    ScramSha512,
}

impl SaslMechanism {
    pub const ALL: [SaslMechanism; 3] = [
        SaslMechanism::Plain,
        SaslMechanism::ScramSha256,
        SaslMechanism::ScramSha512,
    ];

    pub fn parse(text: &str) -> Option<SaslMechanism> {
        SaslMechanism::ALL.into_iter().find(|m| m.name() == text)
    }

    pub fn name(self) -> &'static str {
        match self {
            SaslMechanism::Plain => "PLAIN",
            SaslMechanism::ScramSha256 => "SCRAM-SHA-256",
            SaslMechanism::ScramSha512 => "SCRAM-SHA-512",
        }
    }

    /// The mechanism of Kafka's `ScramMechanism` code (the SCRAM user APIs).
    pub fn from_scram_code(code: i8) -> Option<SaslMechanism> {
        match code {
            1 => Some(SaslMechanism::ScramSha256),
            2 => Some(SaslMechanism::ScramSha512),
            _ => None,
        }
    }

    /// Kafka's `ScramMechanism` code; 0 (UNKNOWN) for PLAIN.
    pub fn scram_code(self) -> i8 {
        match self {
            SaslMechanism::Plain => 0,
            SaslMechanism::ScramSha256 => 1,
            SaslMechanism::ScramSha512 => 2,
        }
    }

    /// The SCRAM variant, `None` for PLAIN.
    pub fn scram(self) -> Option<scram::Hash> {
        match self {
            SaslMechanism::Plain => None,
            SaslMechanism::ScramSha256 => Some(scram::Hash::Sha256),
            SaslMechanism::ScramSha512 => Some(scram::Hash::Sha512),
        }
    }
}

/// Who a connection acts as: Kafka's `User:NAME` principal.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Principal {
    pub name: String,
}

impl Principal {
    /// A client that has not authenticated: PLAINTEXT, or TLS without a certificate.
    pub fn anonymous() -> Principal {
        Principal::user("ANONYMOUS")
    }

    pub fn user(name: &str) -> Principal {
        Principal {
            name: name.to_owned(),
        }
    }
}

impl std::fmt::Display for Principal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "User:{}", self.name)
    }
}
