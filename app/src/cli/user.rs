//! `kafscale user ...`: SCRAM users through AlterUserScramCredentials and
//! DescribeUserScramCredentials. The salt and the salted password are computed here, as
//! Kafka's tools do: the password itself never leaves this process.

use clap::{Args, Subcommand};
use kafka_protocol::messages::alter_user_scram_credentials_request::{
    ScramCredentialDeletion, ScramCredentialUpsertion,
};
use kafka_protocol::messages::describe_user_scram_credentials_request::UserName;
use kafka_protocol::messages::{
    AlterUserScramCredentialsRequest, ApiKey, DescribeUserScramCredentialsRequest,
};
use serde_json::json;
use std::path::PathBuf;

use super::client::{str_bytes, CliError, Client};
use super::table::Table;
use super::Output;
use crate::security::scram::{random_bytes, salted_password, MAX_ITERATIONS, MIN_ITERATIONS};
use crate::security::SaslMechanism;

/// Kafka's RESOURCE_NOT_FOUND: no such user, or no credential of that mechanism.
pub const RESOURCE_NOT_FOUND: i16 = 91;

#[derive(Subcommand, Debug)]
pub enum UserCommand {
    /// Create a SCRAM user, or replace its credential of that mechanism
    Create(CreateArgs),
    /// List SCRAM users and their mechanisms
    List,
    /// The mechanisms and iteration counts of a user's credentials
    Describe { name: String },
    /// Delete a user's credential of one mechanism, or all of them
    Delete {
        name: String,
        /// Only this mechanism [default: every credential of the user]
        #[arg(long, value_parser = parse_scram)]
        mechanism: Option<SaslMechanism>,
    },
}

#[derive(Args, Debug)]
#[command(group(clap::ArgGroup::new("secret").required(true).args(["password", "password_file"])))]
pub struct CreateArgs {
    pub name: String,
    /// The password (visible to other local users in the process list; see --password-file)
    #[arg(long)]
    pub password: Option<String>,
    /// A file whose first line is the password
    #[arg(long, value_name = "FILE")]
    pub password_file: Option<PathBuf>,
    /// SCRAM-SHA-256 or SCRAM-SHA-512
    #[arg(long, value_parser = parse_scram, default_value = "SCRAM-SHA-512")]
    pub mechanism: SaslMechanism,
    /// PBKDF2 iterations, 4096 to 16384
    #[arg(long, default_value_t = MIN_ITERATIONS)]
    pub iterations: u32,
}

fn parse_scram(text: &str) -> Result<SaslMechanism, String> {
    SaslMechanism::parse(text)
        .filter(|m| m.scram().is_some())
        .ok_or_else(|| format!("{text} is not SCRAM-SHA-256 or SCRAM-SHA-512"))
}

fn mechanism_of(code: i8) -> String {
    SaslMechanism::from_scram_code(code)
        .map_or(format!("unknown ({code})"), |m| m.name().to_owned())
}

/// A credential to create or replace.
pub struct NewCredential<'a> {
    pub user: &'a str,
    pub mechanism: SaslMechanism,
    pub password: &'a str,
    pub iterations: u32,
}

pub async fn run(client: &mut Client, cmd: UserCommand) -> Result<Output, CliError> {
    match cmd {
        UserCommand::Create(args) => {
            let password = password(&args)?;
            let new = NewCredential {
                user: &args.name,
                mechanism: args.mechanism,
                password: &password,
                iterations: args.iterations,
            };
            upsert(client, &new).await?;
            let mechanism = args.mechanism.name();
            Ok(Output {
                text: format!(
                    "set {mechanism} credential of user {} ({} iterations)\n",
                    args.name, args.iterations
                ),
                json: json!({ "user": args.name, "mechanism": mechanism, "iterations": args.iterations }),
            })
        }
        UserCommand::List => list(client, None).await,
        UserCommand::Describe { name } => list(client, Some(name)).await,
        UserCommand::Delete { name, mechanism } => {
            let mechanisms = match mechanism {
                Some(m) => vec![m],
                None => describe(client, Some(&name))
                    .await?
                    .into_iter()
                    .flat_map(|u| u.credentials)
                    .filter_map(|(m, _)| SaslMechanism::parse(&m))
                    .collect(),
            };
            delete(client, &name, &mechanisms).await?;
            let names: Vec<&str> = mechanisms.iter().map(|m| m.name()).collect();
            Ok(Output {
                text: format!(
                    "deleted {} credential of user {name}\n",
                    names.join(" and ")
                ),
                json: json!({ "user": name, "deleted": names }),
            })
        }
    }
}

/// The password of `create`: from the flag, or the first line of the file.
fn password(args: &CreateArgs) -> Result<String, CliError> {
    let password = match (&args.password, &args.password_file) {
        (Some(p), _) => p.clone(),
        (None, Some(file)) => {
            let text = std::fs::read_to_string(file)
                .map_err(|e| CliError::Invalid(format!("cannot read {}: {e}", file.display())))?;
            text.lines().next().unwrap_or_default().to_owned()
        }
        (None, None) => return Err(CliError::Invalid("no password given".into())),
    };
    if password.is_empty() {
        return Err(CliError::Invalid("the password is empty".into()));
    }
    Ok(password)
}

/// Creates the credential or replaces the user's credential of that mechanism.
pub async fn upsert(client: &mut Client, new: &NewCredential<'_>) -> Result<(), CliError> {
    let Some(hash) = new.mechanism.scram() else {
        return Err(CliError::Invalid(format!(
            "{} is not a SCRAM mechanism",
            new.mechanism.name()
        )));
    };
    if !(MIN_ITERATIONS..=MAX_ITERATIONS).contains(&new.iterations) {
        return Err(CliError::Invalid(format!(
            "iterations must be in [{MIN_ITERATIONS}, {MAX_ITERATIONS}]"
        )));
    }
    let salt = random_bytes(32);
    let mut u = ScramCredentialUpsertion::default();
    u.name = str_bytes(new.user);
    u.mechanism = new.mechanism.scram_code();
    u.iterations = new.iterations as i32;
    u.salted_password =
        salted_password(hash, new.password.as_bytes(), &salt, new.iterations).into();
    u.salt = salt.into();
    let mut req = AlterUserScramCredentialsRequest::default();
    req.upsertions = vec![u];
    alter(client, new.user, req).await
}

/// Deletes the user's credentials of `mechanisms`; RESOURCE_NOT_FOUND when one is absent.
pub async fn delete(
    client: &mut Client,
    user: &str,
    mechanisms: &[SaslMechanism],
) -> Result<(), CliError> {
    let mut req = AlterUserScramCredentialsRequest::default();
    req.deletions = mechanisms
        .iter()
        .map(|m| {
            let mut d = ScramCredentialDeletion::default();
            d.name = str_bytes(user);
            d.mechanism = m.scram_code();
            d
        })
        .collect();
    alter(client, user, req).await
}

async fn alter(
    client: &mut Client,
    user: &str,
    req: AlterUserScramCredentialsRequest,
) -> Result<(), CliError> {
    let conn = client.bootstrap();
    let v = conn.version(ApiKey::AlterUserScramCredentials, 0..=0, "user commands")?;
    let resp = conn.call(v, &req).await?;
    match resp.results.iter().find(|r| r.error_code != 0) {
        Some(r) => Err(CliError::kafka(
            format!("user {user}"),
            r.error_code,
            r.error_message.as_ref(),
        )),
        None => Ok(()),
    }
}

/// A user's credentials: (mechanism, iterations).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserInfo {
    pub name: String,
    pub credentials: Vec<(String, i32)>,
}

/// The given user (an unknown one is an error), or every user.
pub async fn describe(client: &mut Client, user: Option<&str>) -> Result<Vec<UserInfo>, CliError> {
    let conn = client.bootstrap();
    let v = conn.version(ApiKey::DescribeUserScramCredentials, 0..=0, "user commands")?;
    let mut req = DescribeUserScramCredentialsRequest::default();
    req.users = user.map(|u| {
        let mut n = UserName::default();
        n.name = str_bytes(u);
        vec![n]
    });
    let resp = conn.call(v, &req).await?;
    if resp.error_code != 0 {
        return Err(CliError::kafka(
            "describe users",
            resp.error_code,
            resp.error_message.as_ref(),
        ));
    }
    let mut users = Vec::new();
    for r in resp.results {
        if r.error_code != 0 {
            return Err(CliError::kafka(
                format!("user {}", r.user),
                r.error_code,
                r.error_message.as_ref(),
            ));
        }
        users.push(UserInfo {
            name: r.user.to_string(),
            credentials: r
                .credential_infos
                .iter()
                .map(|c| (mechanism_of(c.mechanism), c.iterations))
                .collect(),
        });
    }
    users.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(users)
}

async fn list(client: &mut Client, user: Option<String>) -> Result<Output, CliError> {
    let users = describe(client, user.as_deref()).await?;
    let mut table = Table::new(&["USER", "MECHANISM", "ITERATIONS"]);
    let mut items = Vec::new();
    for u in &users {
        let mut credentials = Vec::new();
        for (mechanism, iterations) in &u.credentials {
            table.row(vec![
                u.name.clone(),
                mechanism.clone(),
                iterations.to_string(),
            ]);
            credentials.push(json!({ "mechanism": mechanism, "iterations": iterations }));
        }
        items.push(json!({ "user": u.name, "credentials": credentials }));
    }
    let text = if users.is_empty() {
        "no users\n".to_owned()
    } else {
        table.render()
    };
    // `describe NAME` prints the one user; `list` every user.
    let json = match user {
        Some(_) => items.into_iter().next().unwrap_or_default(),
        None => json!({ "users": items }),
    };
    Ok(Output { text, json })
}
