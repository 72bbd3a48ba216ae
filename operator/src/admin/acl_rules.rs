//! The CRD's ACL rules (shaped after Strimzi's) as the domain's ACL bindings: one binding
//! per operation of a rule, for the principal `User:NAME`.

use kafscale_core::acl::{
    AclBinding, AclEntry, Operation, PatternType, Permission, ResourcePattern, ResourceType,
    CLUSTER_NAME,
};

use super::AdminError;
use crate::crd::{AclOperation, AclPatternType, AclResourceType, AclRule, AclType};

pub fn principal(user: &str) -> String {
    format!("User:{user}")
}

/// Every binding the rules mean for `user`; a rule on a named resource type without a
/// name is refused rather than widened to every resource.
pub fn bindings(user: &str, rules: &[AclRule]) -> Result<Vec<AclBinding>, AdminError> {
    let mut out = Vec::new();
    for rule in rules {
        let resource_type = resource_type(rule.resource.kind);
        let name = match (resource_type, &rule.resource.name) {
            (ResourceType::Cluster, _) => CLUSTER_NAME.to_owned(),
            (_, Some(name)) if !name.is_empty() => name.clone(),
            (t, _) => {
                return Err(AdminError::Refused(format!(
                    "an ACL on a {t:?} resource needs a name"
                )))
            }
        };
        let pattern = ResourcePattern {
            resource_type,
            name,
            pattern_type: match rule.resource.pattern_type {
                AclPatternType::Literal => PatternType::Literal,
                AclPatternType::Prefix => PatternType::Prefixed,
            },
        };
        let permission = match rule.effect {
            AclType::Allow => Permission::Allow,
            AclType::Deny => Permission::Deny,
        };
        for &op in &rule.operations {
            out.push(AclBinding {
                pattern: pattern.clone(),
                entry: AclEntry {
                    principal: principal(user),
                    host: rule.host.clone(),
                    operation: operation(op),
                    permission,
                },
            });
        }
    }
    Ok(out)
}

fn resource_type(t: AclResourceType) -> ResourceType {
    match t {
        AclResourceType::Topic => ResourceType::Topic,
        AclResourceType::Group => ResourceType::Group,
        AclResourceType::Cluster => ResourceType::Cluster,
        AclResourceType::TransactionalId => ResourceType::TransactionalId,
    }
}

fn operation(o: AclOperation) -> Operation {
    match o {
        AclOperation::All => Operation::All,
        AclOperation::Read => Operation::Read,
        AclOperation::Write => Operation::Write,
        AclOperation::Create => Operation::Create,
        AclOperation::Delete => Operation::Delete,
        AclOperation::Alter => Operation::Alter,
        AclOperation::Describe => Operation::Describe,
        AclOperation::ClusterAction => Operation::ClusterAction,
        AclOperation::DescribeConfigs => Operation::DescribeConfigs,
        AclOperation::AlterConfigs => Operation::AlterConfigs,
        AclOperation::IdempotentWrite => Operation::IdempotentWrite,
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use serde_json::json;

    fn rule(v: serde_json::Value) -> AclRule {
        serde_json::from_value(v).unwrap()
    }

    #[test]
    fn one_binding_per_operation_with_the_rules_pattern_host_and_effect() {
        let rules = [
            rule(json!({
                "resource": {"type": "topic", "name": "orders-", "patternType": "prefix"},
                "operations": ["Read", "Describe"],
            })),
            rule(json!({
                "resource": {"type": "cluster"},
                "operations": ["IdempotentWrite"],
                "host": "10.0.0.1",
                "type": "deny",
            })),
        ];
        let b = bindings("alice", &rules).unwrap();
        assert_eq!(b.len(), 3);
        assert_eq!(
            b[0].pattern,
            ResourcePattern::prefixed(ResourceType::Topic, "orders-")
        );
        assert_eq!(b[0].entry, AclEntry::allow("User:alice", Operation::Read));
        assert_eq!(
            b[2].pattern,
            ResourcePattern::literal(ResourceType::Cluster, CLUSTER_NAME)
        );
        assert_eq!(
            (b[2].entry.host.as_str(), b[2].entry.permission),
            ("10.0.0.1", Permission::Deny)
        );
    }

    #[test]
    fn a_named_resource_without_a_name_is_refused() {
        let r = rule(json!({"resource": {"type": "group"}, "operations": ["Read"]}));
        let err = bindings("alice", &[r]).unwrap_err();
        assert_eq!(err.to_string(), "an ACL on a Group resource needs a name");
    }
}
