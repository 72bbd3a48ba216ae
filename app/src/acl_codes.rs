//! Kafka's wire codes and names of the ACL enums (ResourceType, PatternType, AclOperation,
//! AclPermissionType), translated to and from the domain's types in `kafscale_core::acl`.
//! The ACL handlers and `kafscale acl` both use this module; no other place knows the
//! numbers.
//!
//! ```
//! use kafscale::acl_codes;
//! use kafscale_core::acl::Operation;
//! assert_eq!(acl_codes::operation_code(Operation::Read), 3);
//! assert_eq!(acl_codes::operation(3), Some(Operation::Read));
//! assert_eq!(acl_codes::parse_operation("describe_configs"), Some(Operation::DescribeConfigs));
//! assert_eq!(acl_codes::operation_name(Operation::DescribeConfigs), "DESCRIBE_CONFIGS");
//! ```

use kafscale_core::acl::{Operation, PatternFilter, PatternType, Permission, ResourceType};

// In each of Kafka's enums 0 is UNKNOWN and 1 is ANY (only meaningful in filters).
pub const ANY: i8 = 1;
/// The pattern type filter MATCH: the bindings that would apply to the named resource.
pub const PATTERN_MATCH: i8 = 2;

const RESOURCE_TYPES: [(i8, ResourceType, &str); 4] = [
    (2, ResourceType::Topic, "TOPIC"),
    (3, ResourceType::Group, "GROUP"),
    (4, ResourceType::Cluster, "CLUSTER"),
    (5, ResourceType::TransactionalId, "TRANSACTIONAL_ID"),
];

const PATTERN_TYPES: [(i8, PatternType, &str); 2] = [
    (3, PatternType::Literal, "LITERAL"),
    (4, PatternType::Prefixed, "PREFIXED"),
];

const OPERATIONS: [(i8, Operation, &str); 11] = [
    (2, Operation::All, "ALL"),
    (3, Operation::Read, "READ"),
    (4, Operation::Write, "WRITE"),
    (5, Operation::Create, "CREATE"),
    (6, Operation::Delete, "DELETE"),
    (7, Operation::Alter, "ALTER"),
    (8, Operation::Describe, "DESCRIBE"),
    (9, Operation::ClusterAction, "CLUSTER_ACTION"),
    (10, Operation::DescribeConfigs, "DESCRIBE_CONFIGS"),
    (11, Operation::AlterConfigs, "ALTER_CONFIGS"),
    (12, Operation::IdempotentWrite, "IDEMPOTENT_WRITE"),
];

const PERMISSIONS: [(i8, Permission, &str); 2] = [
    (2, Permission::Deny, "DENY"),
    (3, Permission::Allow, "ALLOW"),
];

fn by_code<T: Copy>(table: &[(i8, T, &str)], code: i8) -> Option<T> {
    table
        .iter()
        .find(|(c, _, _)| *c == code)
        .map(|(_, t, _)| *t)
}

/// Every value of the domain enums is in its table, so the lookups below cannot miss; 0
/// (UNKNOWN) would only come from a table left incomplete.
fn of<T: Copy + PartialEq>(table: &[(i8, T, &'static str)], value: T) -> (i8, &'static str) {
    table
        .iter()
        .find(|(_, t, _)| *t == value)
        .map_or((0, "UNKNOWN"), |(c, _, n)| (*c, *n))
}

pub fn resource_type(code: i8) -> Option<ResourceType> {
    by_code(&RESOURCE_TYPES, code)
}

pub fn resource_type_code(t: ResourceType) -> i8 {
    of(&RESOURCE_TYPES, t).0
}

pub fn resource_type_name(t: ResourceType) -> &'static str {
    of(&RESOURCE_TYPES, t).1
}

pub fn pattern_type(code: i8) -> Option<PatternType> {
    by_code(&PATTERN_TYPES, code)
}

pub fn pattern_type_code(t: PatternType) -> i8 {
    of(&PATTERN_TYPES, t).0
}

pub fn pattern_type_name(t: PatternType) -> &'static str {
    of(&PATTERN_TYPES, t).1
}

/// A pattern type filter of DescribeAcls or DeleteAcls.
pub fn pattern_filter(code: i8) -> Option<PatternFilter> {
    match code {
        ANY => Some(PatternFilter::Any),
        PATTERN_MATCH => Some(PatternFilter::Match),
        code => pattern_type(code).map(PatternFilter::Exactly),
    }
}

pub fn pattern_filter_code(f: PatternFilter) -> i8 {
    match f {
        PatternFilter::Any => ANY,
        PatternFilter::Match => PATTERN_MATCH,
        PatternFilter::Exactly(t) => pattern_type_code(t),
    }
}

pub fn operation(code: i8) -> Option<Operation> {
    by_code(&OPERATIONS, code)
}

/// Kafka's number of an operation (also its bit in authorized-operations fields).
pub fn operation_code(o: Operation) -> i8 {
    of(&OPERATIONS, o).0
}

pub fn operation_name(o: Operation) -> &'static str {
    of(&OPERATIONS, o).1
}

/// An operation as people write it: `READ`, `Read`, `describe-configs`, `DescribeConfigs`.
pub fn parse_operation(text: &str) -> Option<Operation> {
    let wanted = squash(text);
    OPERATIONS
        .iter()
        .find(|(_, _, name)| squash(name) == wanted)
        .map(|(_, o, _)| *o)
}

fn squash(text: &str) -> String {
    text.chars()
        .filter(|c| *c != '_' && *c != '-')
        .map(|c| c.to_ascii_lowercase())
        .collect()
}

pub fn permission(code: i8) -> Option<Permission> {
    by_code(&PERMISSIONS, code)
}

pub fn permission_code(p: Permission) -> i8 {
    of(&PERMISSIONS, p).0
}

pub fn permission_name(p: Permission) -> &'static str {
    of(&PERMISSIONS, p).1
}

/// The code of an optional filter field: the value's, or ANY.
pub fn or_any<T>(value: Option<T>, code: fn(T) -> i8) -> i8 {
    value.map_or(ANY, code)
}

#[cfg(test)]
mod tests {
    use super::*;
    use kafscale_core::acl::ResourceType;

    #[test]
    fn codes_round_trip() {
        for t in ResourceType::ALL {
            assert_eq!(resource_type(resource_type_code(t)), Some(t));
        }
        for (_, o, name) in OPERATIONS {
            assert_eq!(operation(operation_code(o)), Some(o));
            assert_eq!(parse_operation(name), Some(o));
        }
        for (_, p, _) in PERMISSIONS {
            assert_eq!(permission(permission_code(p)), Some(p));
        }
        for f in [
            PatternFilter::Any,
            PatternFilter::Match,
            PatternFilter::Exactly(PatternType::Literal),
            PatternFilter::Exactly(PatternType::Prefixed),
        ] {
            assert_eq!(pattern_filter(pattern_filter_code(f)), Some(f));
        }
        assert_eq!(resource_type(ANY), None);
        assert_eq!(operation(0), None);
    }

    #[test]
    fn operations_parse_as_kafka_tools_spell_them() {
        assert_eq!(parse_operation("Read"), Some(Operation::Read));
        assert_eq!(
            parse_operation("IdempotentWrite"),
            Some(Operation::IdempotentWrite)
        );
        assert_eq!(
            parse_operation("alter-configs"),
            Some(Operation::AlterConfigs)
        );
        assert_eq!(parse_operation("reed"), None);
    }
}
