//! Kafka's ACL model and its authorization rule, with no wire types: bindings of a resource
//! pattern to an entry (principal, host, operation, allow or deny), and the decision Kafka's
//! authorizer makes from them.
//!
//! The decision, as Kafka's `StandardAuthorizer` makes it:
//! - a super user may do anything;
//! - the bindings that apply are those whose pattern matches the resource (a literal name,
//!   the literal `*`, or a prefix) and whose entry matches the principal (or `User:*`) and
//!   the client's host (or `*`);
//! - a matching DENY of the operation (or ALL) refuses;
//! - a matching ALLOW of the operation (or ALL, or an operation that implies it: READ,
//!   WRITE, DELETE and ALTER imply DESCRIBE; ALTER_CONFIGS implies DESCRIBE_CONFIGS) allows;
//! - with no binding on the resource at all, `allow.everyone.if.no.acl.found` decides.
//!
//! ```
//! use kafscale_core::acl::*;
//!
//! let bindings = vec![AclBinding {
//!     pattern: ResourcePattern::prefixed(ResourceType::Topic, "orders-"),
//!     entry: AclEntry::allow("User:alice", Operation::Write),
//! }];
//! let acls = AclSet::new(bindings);
//! let policy = Policy { super_users: vec![], allow_if_no_acl: false };
//! let topic = Resource::new(ResourceType::Topic, "orders-eu");
//! assert!(acls.authorize(&policy, "User:alice", "10.0.0.1", Operation::Write, &topic));
//! assert!(acls.authorize(&policy, "User:alice", "10.0.0.1", Operation::Describe, &topic));
//! assert!(!acls.authorize(&policy, "User:alice", "10.0.0.1", Operation::Read, &topic));
//! assert!(!acls.authorize(&policy, "User:bob", "10.0.0.1", Operation::Write, &topic));
//! ```

use serde::{Deserialize, Serialize};

/// What an ACL protects.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum ResourceType {
    Topic,
    Group,
    Cluster,
    TransactionalId,
}

impl ResourceType {
    pub const ALL: [ResourceType; 4] = [
        ResourceType::Topic,
        ResourceType::Group,
        ResourceType::Cluster,
        ResourceType::TransactionalId,
    ];
}

/// The one name of the cluster resource, as Kafka names it.
pub const CLUSTER_NAME: &str = "kafka-cluster";
/// A literal name matching every resource of its type.
pub const WILDCARD: &str = "*";

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum PatternType {
    Literal,
    Prefixed,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum Operation {
    All,
    Read,
    Write,
    Create,
    Delete,
    Alter,
    Describe,
    ClusterAction,
    DescribeConfigs,
    AlterConfigs,
    IdempotentWrite,
}

impl Operation {
    /// Whether an ACL granting `self` allows `wanted`.
    fn allows(self, wanted: Operation) -> bool {
        self == wanted
            || self == Operation::All
            || (wanted == Operation::Describe
                && matches!(
                    self,
                    Operation::Read | Operation::Write | Operation::Delete | Operation::Alter
                ))
            || (wanted == Operation::DescribeConfigs && self == Operation::AlterConfigs)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum Permission {
    Allow,
    Deny,
}

/// A resource pattern: which resources a binding covers.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct ResourcePattern {
    pub resource_type: ResourceType,
    pub name: String,
    pub pattern_type: PatternType,
}

impl ResourcePattern {
    pub fn literal(resource_type: ResourceType, name: &str) -> ResourcePattern {
        ResourcePattern {
            resource_type,
            name: name.to_owned(),
            pattern_type: PatternType::Literal,
        }
    }

    pub fn prefixed(resource_type: ResourceType, prefix: &str) -> ResourcePattern {
        ResourcePattern {
            resource_type,
            name: prefix.to_owned(),
            pattern_type: PatternType::Prefixed,
        }
    }

    /// Whether this pattern covers the resource.
    pub fn matches(&self, resource: &Resource) -> bool {
        self.resource_type == resource.resource_type
            && match self.pattern_type {
                PatternType::Literal => self.name == WILDCARD || self.name == resource.name,
                PatternType::Prefixed => resource.name.starts_with(&self.name),
            }
    }
}

/// Who may (or may not) do what from where.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct AclEntry {
    /// `User:NAME`, or `User:*` for everyone.
    pub principal: String,
    /// An IP address, or `*` for any host.
    pub host: String,
    pub operation: Operation,
    pub permission: Permission,
}

impl AclEntry {
    pub fn allow(principal: &str, operation: Operation) -> AclEntry {
        AclEntry {
            principal: principal.to_owned(),
            host: WILDCARD.to_owned(),
            operation,
            permission: Permission::Allow,
        }
    }

    pub fn deny(principal: &str, operation: Operation) -> AclEntry {
        AclEntry {
            permission: Permission::Deny,
            ..AclEntry::allow(principal, operation)
        }
    }

    fn applies_to(&self, principal: &str, host: &str) -> bool {
        (self.principal == principal || self.principal == "User:*")
            && (self.host == WILDCARD || self.host == host)
    }
}

/// One ACL.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct AclBinding {
    pub pattern: ResourcePattern,
    pub entry: AclEntry,
}

/// A concrete resource a request touches.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Resource {
    pub resource_type: ResourceType,
    pub name: String,
}

impl Resource {
    pub fn new(resource_type: ResourceType, name: &str) -> Resource {
        Resource {
            resource_type,
            name: name.to_owned(),
        }
    }

    pub fn cluster() -> Resource {
        Resource::new(ResourceType::Cluster, CLUSTER_NAME)
    }
}

/// The broker's authorization settings.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Policy {
    /// Principals (`User:NAME`) allowed everything.
    pub super_users: Vec<String>,
    /// Whether a resource without any binding is open to everyone.
    pub allow_if_no_acl: bool,
}

/// Every ACL of the cluster, as one broker holds it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AclSet {
    bindings: Vec<AclBinding>,
}

impl AclSet {
    pub fn new(mut bindings: Vec<AclBinding>) -> AclSet {
        bindings.sort();
        bindings.dedup();
        AclSet { bindings }
    }

    pub fn bindings(&self) -> &[AclBinding] {
        &self.bindings
    }

    /// Kafka's decision for `principal` at `host` doing `operation` on `resource`.
    pub fn authorize(
        &self,
        policy: &Policy,
        principal: &str,
        host: &str,
        operation: Operation,
        resource: &Resource,
    ) -> bool {
        if policy.super_users.iter().any(|s| s == principal) {
            return true;
        }
        let mut on_resource = self
            .bindings
            .iter()
            .filter(|b| b.pattern.matches(resource))
            .peekable();
        if on_resource.peek().is_none() {
            return policy.allow_if_no_acl;
        }
        let mut allowed = false;
        for b in on_resource.filter(|b| b.entry.applies_to(principal, host)) {
            match b.entry.permission {
                Permission::Deny
                    if b.entry.operation == operation || b.entry.operation == Operation::All =>
                {
                    return false;
                }
                Permission::Deny => {}
                Permission::Allow => allowed |= b.entry.operation.allows(operation),
            }
        }
        allowed
    }
}

/// How a filter's name applies (Kafka's pattern type filter).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PatternFilter {
    /// Any pattern type, with the name exactly.
    Any,
    /// The bindings that would apply to the named resource: the literal name, the literal
    /// `*`, and every prefix of it.
    Match,
    Exactly(PatternType),
}

/// Which bindings DescribeAcls and DeleteAcls mean; `None` fields match anything.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AclFilter {
    pub resource_type: Option<ResourceType>,
    pub name: Option<String>,
    pub pattern: PatternFilter,
    pub principal: Option<String>,
    pub host: Option<String>,
    pub operation: Option<Operation>,
    pub permission: Option<Permission>,
}

impl AclFilter {
    pub fn matches(&self, b: &AclBinding) -> bool {
        let p = &b.pattern;
        let e = &b.entry;
        let name_ok = match (&self.name, self.pattern) {
            (None, PatternFilter::Exactly(t)) => p.pattern_type == t,
            (None, _) => true,
            (Some(name), PatternFilter::Any) => p.name == *name,
            (Some(name), PatternFilter::Exactly(t)) => p.pattern_type == t && p.name == *name,
            (Some(name), PatternFilter::Match) => match p.pattern_type {
                PatternType::Literal => p.name == *name || p.name == WILDCARD,
                PatternType::Prefixed => name.starts_with(&p.name),
            },
        };
        name_ok
            && self.resource_type.is_none_or(|t| t == p.resource_type)
            && self.principal.as_ref().is_none_or(|x| *x == e.principal)
            && self.host.as_ref().is_none_or(|x| *x == e.host)
            && self.operation.is_none_or(|x| x == e.operation)
            && self.permission.is_none_or(|x| x == e.permission)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy() -> Policy {
        Policy {
            super_users: vec!["User:admin".into()],
            allow_if_no_acl: false,
        }
    }

    fn topic(name: &str) -> Resource {
        Resource::new(ResourceType::Topic, name)
    }

    #[test]
    fn deny_wins_over_allow_and_wildcards_match() {
        let acls = AclSet::new(vec![
            AclBinding {
                pattern: ResourcePattern::literal(ResourceType::Topic, WILDCARD),
                entry: AclEntry::allow("User:*", Operation::Read),
            },
            AclBinding {
                pattern: ResourcePattern::prefixed(ResourceType::Topic, "secret-"),
                entry: AclEntry::deny("User:bob", Operation::All),
            },
        ]);
        let p = policy();
        assert!(acls.authorize(&p, "User:bob", "1.2.3.4", Operation::Read, &topic("public")));
        assert!(!acls.authorize(
            &p,
            "User:bob",
            "1.2.3.4",
            Operation::Read,
            &topic("secret-x")
        ));
        assert!(acls.authorize(
            &p,
            "User:carol",
            "1.2.3.4",
            Operation::Read,
            &topic("secret-x")
        ));
        assert!(!acls.authorize(
            &p,
            "User:carol",
            "1.2.3.4",
            Operation::Write,
            &topic("public")
        ));
        assert!(acls.authorize(
            &p,
            "User:admin",
            "1.2.3.4",
            Operation::Write,
            &topic("secret-x")
        ));
    }

    #[test]
    fn hosts_and_implied_operations() {
        let acls = AclSet::new(vec![AclBinding {
            pattern: ResourcePattern::literal(ResourceType::Topic, "t"),
            entry: AclEntry {
                host: "10.0.0.1".into(),
                ..AclEntry::allow("User:alice", Operation::AlterConfigs)
            },
        }]);
        let p = policy();
        assert!(acls.authorize(
            &p,
            "User:alice",
            "10.0.0.1",
            Operation::DescribeConfigs,
            &topic("t")
        ));
        assert!(!acls.authorize(
            &p,
            "User:alice",
            "10.0.0.2",
            Operation::AlterConfigs,
            &topic("t")
        ));
        assert!(!acls.authorize(
            &p,
            "User:alice",
            "10.0.0.1",
            Operation::Describe,
            &topic("t")
        ));
    }

    #[test]
    fn resources_without_acls_follow_the_policy() {
        let acls = AclSet::default();
        let open = Policy {
            allow_if_no_acl: true,
            ..policy()
        };
        assert!(!acls.authorize(&policy(), "User:x", "h", Operation::Read, &topic("t")));
        assert!(acls.authorize(&open, "User:x", "h", Operation::Read, &topic("t")));
        // A binding on another resource type does not count.
        let groups_only = AclSet::new(vec![AclBinding {
            pattern: ResourcePattern::literal(ResourceType::Group, "t"),
            entry: AclEntry::allow("User:y", Operation::Read),
        }]);
        assert!(groups_only.authorize(&open, "User:x", "h", Operation::Read, &topic("t")));
    }
}
