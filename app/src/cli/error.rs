//! The errors of the command-line tool, each printed as one line, and Kafka error codes
//! as Kafka names them.

use kafka_protocol::protocol::StrBytes;
use kafka_protocol::ResponseError;

/// An error the tool reports as one line on stderr.
#[derive(Debug, thiserror::Error)]
pub enum CliError {
    #[error("cannot connect to {addr}: {reason}")]
    Connect { addr: String, reason: String },
    #[error("connection to {addr} failed: {reason}")]
    Io { addr: String, reason: String },
    #[error("{addr} did not answer within {ms} ms")]
    Timeout { addr: String, ms: u128 },
    #[error("the broker at {addr} does not support {api} (needed by {needed_by})")]
    Unsupported {
        addr: String,
        api: String,
        needed_by: String,
    },
    /// The broker refused the login; retrying with the same credentials will not help.
    #[error("authentication of {user} ({mechanism}) at {addr} failed: {reason}")]
    Authentication {
        addr: String,
        user: String,
        mechanism: String,
        reason: String,
    },
    #[error(transparent)]
    Config(#[from] super::security::ConfigError),
    #[error("unknown topic {0}")]
    UnknownTopic(String),
    #[error("{context}: {}", describe_code(*.code, .message.as_deref()))]
    Kafka {
        context: String,
        code: i16,
        message: Option<String>,
    },
    #[error("{0}")]
    Invalid(String),
}

impl CliError {
    /// The broker could not be reached or did not answer: after looking the leader up
    /// again, another attempt may reach a broker that does.
    pub fn is_transport(&self) -> bool {
        matches!(
            self,
            CliError::Connect { .. } | CliError::Io { .. } | CliError::Timeout { .. }
        )
    }

    pub fn kafka(context: impl Into<String>, code: i16, message: Option<&StrBytes>) -> CliError {
        CliError::Kafka {
            context: context.into(),
            code,
            message: message.map(|m| m.to_string()).filter(|m| !m.is_empty()),
        }
    }
}

pub use crate::errors::error_name;

fn describe_code(code: i16, message: Option<&str>) -> String {
    match message {
        Some(m) => format!("{} ({m})", error_name(code)),
        None => error_name(code),
    }
}

/// Errors after which a request is worth sending again once metadata or the coordinator
/// has been looked up anew.
pub fn is_retriable(code: i16) -> bool {
    use ResponseError as R;
    [
        R::NotLeaderOrFollower,
        R::LeaderNotAvailable,
        R::CoordinatorLoadInProgress,
        R::CoordinatorNotAvailable,
        R::NotCoordinator,
    ]
    .iter()
    .any(|e| e.code() == code)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cli::client::str_bytes;

    #[test]
    fn error_names_are_kafka_style() {
        assert_eq!(error_name(3), "UNKNOWN_TOPIC_OR_PARTITION");
        assert_eq!(error_name(40), "INVALID_CONFIG");
        assert_eq!(error_name(0), "NONE");
        assert_eq!(error_name(-1), "UNKNOWN_SERVER_ERROR");
        assert_eq!(error_name(30000), "error code 30000");
    }

    #[test]
    fn kafka_errors_read_as_one_line() {
        let e = CliError::kafka("create topic t", 40, Some(&str_bytes("bad value")));
        assert_eq!(e.to_string(), "create topic t: INVALID_CONFIG (bad value)");
        let e = CliError::kafka("create topic t", 36, None);
        assert_eq!(e.to_string(), "create topic t: TOPIC_ALREADY_EXISTS");
    }

    #[test]
    fn only_leader_and_coordinator_moves_are_retried() {
        for code in [5, 6, 14, 15, 16] {
            assert!(is_retriable(code), "{code}");
        }
        for code in [0, 1, 3, 7, 40] {
            assert!(!is_retriable(code), "{code}");
        }
    }
}
