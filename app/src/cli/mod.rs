//! The admin and quick-use commands of the `kafscale` binary. They speak the Kafka protocol
//! to any broker (KafScale or not), print aligned tables by default and JSON with `--json`,
//! and report failures as one line on stderr with a non-zero exit.
//!
//! ```text
//! kafscale topic create orders --partitions 3 --config retention.ms=86400000
//! kafscale topic describe orders
//! printf 'k1:v1\nk2:v2\n' | kafscale produce orders --key-separator :
//! kafscale consume orders --from-beginning --max 2 --print-key
//! kafscale group describe billing --json
//! kafscale transactions describe payments-1
//! kafscale user create alice --password-file alice.pw --mechanism SCRAM-SHA-512
//! kafscale acl add --principal User:alice --operation READ --topic orders
//! kafscale topic list --command-config client.properties
//! ```

pub mod acl;
pub mod acl_api;
pub mod client;
pub mod cluster;
pub mod conn;
pub mod consume;
pub mod error;
pub mod group;
pub mod group_reset;
pub mod metadata;
pub mod produce;
pub mod properties;
pub mod sasl;
pub mod security;
pub mod table;
pub mod tls;
pub mod topic;
pub mod transactions;
pub mod user;

use clap::{Args, Subcommand};
use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use client::{CliError, Client};
use security::ClientSecurity;

/// Options every client command takes.
#[derive(Args, Debug, Clone)]
pub struct Connection {
    /// Broker to connect to first, HOST:PORT
    #[arg(long, global = true, default_value = "127.0.0.1:9092")]
    pub bootstrap: String,
    /// Print JSON instead of tables
    #[arg(long, global = true)]
    pub json: bool,
    /// How long to wait for a connection or an answer, in milliseconds
    #[arg(long, global = true, default_value_t = 30_000, value_name = "MS")]
    pub request_timeout_ms: u64,
    /// Kafka client properties for TLS and SASL (security.protocol, ssl.*, sasl.*), as
    /// Kafka's tools take them
    #[arg(long, global = true, value_name = "FILE")]
    pub command_config: Option<PathBuf>,
}

/// The client commands, flattened into the binary's top-level commands.
#[derive(Subcommand, Debug)]
pub enum Command {
    /// Create, list, describe, alter and delete topics
    Topic {
        #[command(flatten)]
        conn: Connection,
        #[command(subcommand)]
        cmd: topic::TopicCommand,
    },
    /// List, describe and delete consumer groups; reset their offsets
    Group {
        #[command(flatten)]
        conn: Connection,
        #[command(subcommand)]
        cmd: group::GroupCommand,
    },
    /// List and describe transactional ids and their transactions
    Transactions {
        #[command(flatten)]
        conn: Connection,
        #[command(subcommand)]
        cmd: transactions::TransactionsCommand,
    },
    /// Brokers, controller, cluster id and supported API versions
    Cluster {
        #[command(flatten)]
        conn: Connection,
        #[command(subcommand)]
        cmd: cluster::ClusterCommand,
    },
    /// Create, list, describe and delete SCRAM users
    User {
        #[command(flatten)]
        conn: Connection,
        #[command(subcommand)]
        cmd: user::UserCommand,
    },
    /// Add, list and remove ACLs
    Acl {
        #[command(flatten)]
        conn: Connection,
        #[command(subcommand)]
        cmd: acl::AclCommand,
    },
    /// Produce the lines of stdin to a topic (acks=all)
    Produce(produce::ProduceArgs),
    /// Print a topic's records
    Consume(consume::ConsumeArgs),
    /// Back up the cluster's metadata, or restore a backup (talks to the metadata store)
    Metadata {
        /// Print JSON instead of text
        #[arg(long, global = true)]
        json: bool,
        #[command(subcommand)]
        cmd: metadata::MetadataCommand,
    },
}

/// What a command prints: a table for people, a JSON value for programs.
#[derive(Debug)]
pub struct Output {
    pub text: String,
    pub json: serde_json::Value,
}

/// Runs a client command and returns the process exit code.
pub fn run(cmd: Command) -> ExitCode {
    let runtime = match crate::serve::runtime(false) {
        Ok(r) => r,
        Err(code) => return code,
    };
    match runtime.block_on(execute(cmd)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

async fn execute(cmd: Command) -> Result<(), CliError> {
    let (json, output) = match cmd {
        Command::Topic { conn, cmd } => {
            let mut client = connect(&conn).await?;
            let out = topic::run(&mut client, cmd).await?;
            (conn.json, out)
        }
        Command::Group { conn, cmd } => {
            let mut client = connect(&conn).await?;
            let out = group::run(&mut client, cmd).await?;
            (conn.json, out)
        }
        Command::Transactions { conn, cmd } => {
            let mut client = connect(&conn).await?;
            let out = transactions::run(&mut client, cmd).await?;
            (conn.json, out)
        }
        Command::Cluster { conn, cmd } => {
            let mut client = connect(&conn).await?;
            let out = cluster::run(&mut client, cmd).await?;
            (conn.json, out)
        }
        Command::User { conn, cmd } => {
            let mut client = connect(&conn).await?;
            let out = user::run(&mut client, cmd).await?;
            (conn.json, out)
        }
        Command::Acl { conn, cmd } => {
            let mut client = connect(&conn).await?;
            let out = acl::run(&mut client, cmd).await?;
            (conn.json, out)
        }
        Command::Metadata { json, cmd } => (json, metadata::run(cmd).await?),
        Command::Produce(args) => {
            let mut client = connect(&args.conn).await?;
            return produce::produce(&mut client, &args).await;
        }
        Command::Consume(args) => {
            let mut client = connect(&args.conn).await?;
            return consume::consume(&mut client, &args).await;
        }
    };
    if json {
        let text = serde_json::to_string_pretty(&output.json)
            .map_err(|e| CliError::Invalid(format!("cannot render JSON: {e}")))?;
        emit(format!("{text}\n").as_bytes())
    } else {
        emit(output.text.as_bytes())
    }
}

async fn connect(conn: &Connection) -> Result<Client, CliError> {
    let security = match &conn.command_config {
        Some(path) => ClientSecurity::load(path)?,
        None => ClientSecurity::default(),
    };
    Client::connect_secure(
        &conn.bootstrap,
        Arc::new(security),
        Duration::from_millis(conn.request_timeout_ms.max(1)),
    )
    .await
}

/// Writes to stdout; a closed pipe (`| head`) ends the output quietly.
pub fn emit(bytes: &[u8]) -> Result<(), CliError> {
    let mut out = std::io::stdout().lock();
    match out.write_all(bytes).and_then(|_| out.flush()) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
        Err(e) => Err(CliError::Invalid(format!("cannot write to stdout: {e}"))),
    }
}

/// `key=value` of `--config`.
pub fn parse_key_value(s: &str) -> Result<(String, String), String> {
    match s.split_once('=') {
        Some((k, v)) if !k.is_empty() => Ok((k.to_owned(), v.to_owned())),
        _ => Err(format!("expected KEY=VALUE, got {s:?}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct TestCli {
        #[command(subcommand)]
        cmd: Command,
    }

    fn parse(args: &[&str]) -> Result<Command, clap::Error> {
        TestCli::try_parse_from(std::iter::once("kafscale").chain(args.iter().copied()))
            .map(|c| c.cmd)
    }

    #[test]
    fn key_values() {
        assert_eq!(
            parse_key_value("retention.ms=100"),
            Ok(("retention.ms".into(), "100".into()))
        );
        assert_eq!(parse_key_value("a=b=c"), Ok(("a".into(), "b=c".into())));
        assert_eq!(parse_key_value("k="), Ok(("k".into(), "".into())));
        assert!(parse_key_value("novalue").is_err());
        assert!(parse_key_value("=v").is_err());
    }

    #[test]
    fn connection_flags_go_anywhere_and_default() {
        let Ok(Command::Topic { conn, .. }) = parse(&["topic", "list"]) else {
            panic!("topic list")
        };
        assert_eq!(conn.bootstrap, "127.0.0.1:9092");
        assert!(!conn.json);
        let Ok(Command::Topic { conn, .. }) =
            parse(&["topic", "list", "--bootstrap", "h:1", "--json"])
        else {
            panic!("flags after the subcommand")
        };
        assert_eq!(conn.bootstrap, "h:1");
        assert!(conn.json);
        let Ok(Command::Group { conn, .. }) = parse(&["group", "--bootstrap", "h:2", "list"])
        else {
            panic!("flags before the subcommand")
        };
        assert_eq!(conn.bootstrap, "h:2");
    }

    #[test]
    fn topic_create_takes_configs() {
        let Ok(Command::Topic {
            cmd: topic::TopicCommand::Create(c),
            ..
        }) = parse(&[
            "topic",
            "create",
            "t",
            "--partitions",
            "3",
            "--config",
            "a=1",
            "--config",
            "b=2",
        ])
        else {
            panic!("topic create")
        };
        assert_eq!(c.name, "t");
        assert_eq!(c.partitions, Some(3));
        assert_eq!(
            c.config,
            vec![("a".into(), "1".into()), ("b".into(), "2".into())]
        );
        assert!(parse(&["topic", "create", "t", "--config", "oops"]).is_err());
    }

    #[test]
    fn reset_offsets_needs_exactly_one_target() {
        assert!(parse(&["group", "reset-offsets", "g", "--topic", "t"]).is_err());
        assert!(parse(&[
            "group",
            "reset-offsets",
            "g",
            "--topic",
            "t",
            "--to-earliest",
            "--to-latest"
        ])
        .is_err());
        let Ok(Command::Group {
            cmd: group::GroupCommand::ResetOffsets(r),
            ..
        }) = parse(&[
            "group",
            "reset-offsets",
            "g",
            "--topic",
            "t",
            "--to-offset",
            "5",
            "--dry-run",
        ])
        else {
            panic!("reset-offsets")
        };
        assert_eq!(r.target(), group_reset::ResetTarget::Offset(5));
        assert!(r.dry_run);
    }

    #[test]
    fn topic_alter_needs_a_change() {
        assert!(parse(&["topic", "alter", "t"]).is_err());
        assert!(parse(&["topic", "alter", "t", "--delete-config", "retention.ms"]).is_ok());
    }

    #[test]
    fn acl_flags() {
        let Ok(Command::Acl {
            cmd: acl::AclCommand::Add(a),
            ..
        }) = parse(&[
            "acl",
            "add",
            "--principal",
            "User:alice",
            "--operation",
            "Read",
            "--operation",
            "DESCRIBE",
            "--topic",
            "orders-",
            "--prefixed",
        ])
        else {
            panic!("acl add")
        };
        assert_eq!(a.bindings().map(|b| b.len()).ok(), Some(2));
        // A resource is required, and only one; the principal must be User:...
        assert!(parse(&["acl", "add", "--principal", "User:a", "--operation", "READ"]).is_err());
        let both = ["--topic", "t", "--group", "g"];
        let add = ["acl", "add", "--principal", "User:a", "--operation", "READ"];
        assert!(parse(&[&add[..], &both[..]].concat()).is_err());
        assert!(parse(&[
            "acl",
            "add",
            "--principal",
            "alice",
            "--operation",
            "READ",
            "--cluster"
        ])
        .is_err());
        assert!(parse(&[
            "acl",
            "add",
            "--principal",
            "User:a",
            "--operation",
            "REED",
            "--cluster"
        ])
        .is_err());
        // A bare remove would remove everything: it needs a filter or --all.
        assert!(parse(&["acl", "remove"]).is_err());
        assert!(parse(&["acl", "remove", "--all"]).is_ok());
        assert!(parse(&["acl", "remove", "--all", "--topic", "t"]).is_err());
        assert!(parse(&["acl", "remove", "--principal", "User:a"]).is_ok());
        assert!(parse(&["acl", "list"]).is_ok());
        assert!(parse(&["acl", "list", "--topic", "t", "--prefixed", "--match"]).is_err());
    }

    #[test]
    fn consume_flags() {
        let Ok(Command::Consume(c)) = parse(&[
            "consume",
            "t",
            "--from-beginning",
            "--max",
            "10",
            "--partition",
            "2",
            "--print-key",
            "--timeout-ms",
            "500",
        ]) else {
            panic!("consume")
        };
        assert!(c.from_beginning && c.print_key);
        assert_eq!((c.max, c.partition, c.timeout_ms), (Some(10), Some(2), 500));
    }
}
