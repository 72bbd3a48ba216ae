//! `kafscale acl ...`: ACLs through CreateAcls, DescribeAcls and DeleteAcls, in the spirit
//! of Kafka's `kafka-acls.sh`: the flags, the filters they mean, and the output. The
//! requests themselves are in `acl_api` (re-exported here for the operator).

use clap::{ArgGroup, Args, Subcommand};
use kafscale_core::acl::{
    AclBinding, AclEntry, AclFilter, Operation, PatternFilter, PatternType, Permission,
    ResourcePattern, ResourceType, CLUSTER_NAME,
};
use serde_json::json;

pub use super::acl_api::{create, delete, describe, exactly};
use super::client::{CliError, Client};
use super::table::Table;
use super::Output;
use crate::acl_codes as codes;

#[derive(Subcommand, Debug)]
pub enum AclCommand {
    /// Allow (or with --deny, deny) a principal operations on a resource
    Add(AddArgs),
    /// List the ACLs matching the filter (no resource: every resource)
    List(FilterArgs),
    /// Remove the ACLs matching the filter (--all to remove every ACL)
    Remove(RemoveArgs),
}

/// One resource; which flag is given names its type.
#[derive(Args, Debug, Clone, Default)]
pub struct ResourceArgs {
    /// A topic (with --prefixed: a prefix of topic names)
    #[arg(long, value_name = "NAME")]
    pub topic: Option<String>,
    /// A consumer group (with --prefixed: a prefix of group names)
    #[arg(long, value_name = "NAME")]
    pub group: Option<String>,
    /// The cluster resource (kafka-cluster)
    #[arg(long)]
    pub cluster: bool,
    /// A transactional id (with --prefixed: a prefix of them)
    #[arg(long, value_name = "NAME")]
    pub transactional_id: Option<String>,
}

impl ResourceArgs {
    fn resource(&self) -> Option<(ResourceType, String)> {
        let named = |t, n: &Option<String>| n.clone().map(|n| (t, n));
        named(ResourceType::Topic, &self.topic)
            .or_else(|| named(ResourceType::Group, &self.group))
            .or_else(|| named(ResourceType::TransactionalId, &self.transactional_id))
            .or_else(|| {
                self.cluster
                    .then(|| (ResourceType::Cluster, CLUSTER_NAME.to_owned()))
            })
    }
}

const RESOURCE_FLAGS: [&str; 4] = ["topic", "group", "cluster", "transactional_id"];

#[derive(Args, Debug, Clone)]
#[command(group(ArgGroup::new("resource").required(true).args(RESOURCE_FLAGS)))]
pub struct AddArgs {
    /// User:NAME, or User:* for everyone
    #[arg(long, value_parser = parse_principal)]
    pub principal: String,
    /// The client address the ACL applies to
    #[arg(long, default_value = "*")]
    pub host: String,
    /// READ, WRITE, CREATE, DELETE, ALTER, DESCRIBE, CLUSTER_ACTION, DESCRIBE_CONFIGS,
    /// ALTER_CONFIGS, IDEMPOTENT_WRITE or ALL; repeat for several
    #[arg(long = "operation", required = true, value_parser = parse_operation)]
    pub operations: Vec<Operation>,
    #[command(flatten)]
    pub resource: ResourceArgs,
    /// The name is a prefix: the ACL covers every resource whose name starts with it
    #[arg(long)]
    pub prefixed: bool,
    /// Deny instead of allow
    #[arg(long)]
    pub deny: bool,
}

#[derive(Args, Debug, Clone, Default)]
#[command(group(ArgGroup::new("resource").args(RESOURCE_FLAGS)))]
pub struct FilterArgs {
    /// Only the ACLs of this principal
    #[arg(long, value_parser = parse_principal)]
    pub principal: Option<String>,
    #[command(flatten)]
    pub resource: ResourceArgs,
    /// Only prefixed ACLs [default with a resource: literal ACLs of that exact name]
    #[arg(long, conflicts_with = "matching")]
    pub prefixed: bool,
    /// Every ACL that applies to the named resource: literal, wildcard and prefixed
    #[arg(long = "match", id = "matching")]
    pub matching: bool,
}

#[derive(Args, Debug, Clone)]
#[command(group(ArgGroup::new("what").required(true).multiple(true)
    .args(["principal", "topic", "group", "cluster", "transactional_id", "all"])))]
pub struct RemoveArgs {
    #[command(flatten)]
    pub filter: FilterArgs,
    /// Remove every ACL of the cluster
    #[arg(long, conflicts_with_all = ["principal", "topic", "group", "cluster", "transactional_id"])]
    pub all: bool,
}

fn parse_principal(text: &str) -> Result<String, String> {
    match text.strip_prefix("User:") {
        Some(name) if !name.is_empty() => Ok(text.to_owned()),
        _ => Err(format!("{text:?} is not User:NAME or User:*")),
    }
}

fn parse_operation(text: &str) -> Result<Operation, String> {
    codes::parse_operation(text).ok_or_else(|| format!("unknown operation {text}"))
}

impl FilterArgs {
    /// The filter these flags mean; without a resource the name matches any.
    pub fn filter(&self) -> AclFilter {
        let resource = self.resource.resource();
        let pattern = match (self.prefixed, self.matching, &resource) {
            (true, _, _) => PatternFilter::Exactly(PatternType::Prefixed),
            (_, true, _) => PatternFilter::Match,
            // As kafka-acls.sh: a named resource means its literal ACLs.
            (_, _, Some(_)) => PatternFilter::Exactly(PatternType::Literal),
            (_, _, None) => PatternFilter::Any,
        };
        AclFilter {
            resource_type: resource.as_ref().map(|(t, _)| *t),
            name: resource.map(|(_, n)| n),
            pattern,
            principal: self.principal.clone(),
            host: None,
            operation: None,
            permission: None,
        }
    }
}

impl AddArgs {
    /// One binding per operation; flags built in code rather than parsed may lack the
    /// resource clap requires.
    pub fn bindings(&self) -> Result<Vec<AclBinding>, CliError> {
        let Some((resource_type, name)) = self.resource.resource() else {
            return Err(CliError::Invalid(
                "acl add needs --topic, --group, --cluster or --transactional-id".into(),
            ));
        };
        let pattern = ResourcePattern {
            resource_type,
            name,
            pattern_type: if self.prefixed {
                PatternType::Prefixed
            } else {
                PatternType::Literal
            },
        };
        let permission = if self.deny {
            Permission::Deny
        } else {
            Permission::Allow
        };
        Ok(self
            .operations
            .iter()
            .map(|&operation| AclBinding {
                pattern: pattern.clone(),
                entry: AclEntry {
                    principal: self.principal.clone(),
                    host: self.host.clone(),
                    operation,
                    permission,
                },
            })
            .collect())
    }
}

pub async fn run(client: &mut Client, cmd: AclCommand) -> Result<Output, CliError> {
    match cmd {
        AclCommand::Add(args) => {
            let bindings = args.bindings()?;
            create(client, &bindings).await?;
            Ok(render("added", &bindings))
        }
        AclCommand::List(args) => {
            let found = describe(client, &args.filter()).await?;
            let text = if found.is_empty() {
                "no ACLs\n".to_owned()
            } else {
                table(&found)
            };
            let items: Vec<serde_json::Value> = found.iter().map(to_json).collect();
            Ok(Output {
                text,
                json: json!({ "acls": items }),
            })
        }
        AclCommand::Remove(args) => {
            let removed = delete(client, &[args.filter.filter()]).await?;
            Ok(render("removed", &removed))
        }
    }
}

/// `added 2 ACLs` and their table; JSON `{"added": [...]}`.
fn render(verb: &str, bindings: &[AclBinding]) -> Output {
    let n = bindings.len();
    let mut text = format!("{verb} {n} ACL{}\n", if n == 1 { "" } else { "s" });
    if n > 0 {
        text.push_str(&table(bindings));
    }
    let items: Vec<serde_json::Value> = bindings.iter().map(to_json).collect();
    Output {
        text,
        json: json!({ verb: items }),
    }
}

fn table(bindings: &[AclBinding]) -> String {
    let mut table = Table::new(&[
        "PRINCIPAL",
        "HOST",
        "OPERATION",
        "PERMISSION",
        "RESOURCE",
        "NAME",
        "PATTERN",
    ]);
    for b in bindings {
        table.row(vec![
            b.entry.principal.clone(),
            b.entry.host.clone(),
            codes::operation_name(b.entry.operation).to_owned(),
            codes::permission_name(b.entry.permission).to_owned(),
            codes::resource_type_name(b.pattern.resource_type).to_owned(),
            b.pattern.name.clone(),
            codes::pattern_type_name(b.pattern.pattern_type).to_owned(),
        ]);
    }
    table.render()
}

fn to_json(b: &AclBinding) -> serde_json::Value {
    json!({
        "principal": b.entry.principal,
        "host": b.entry.host,
        "operation": codes::operation_name(b.entry.operation),
        "permission": codes::permission_name(b.entry.permission),
        "resource_type": codes::resource_type_name(b.pattern.resource_type),
        "name": b.pattern.name,
        "pattern_type": codes::pattern_type_name(b.pattern.pattern_type),
    })
}
