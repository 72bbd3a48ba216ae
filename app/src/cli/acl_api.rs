//! The requests behind `kafscale acl`: CreateAcls, DescribeAcls and DeleteAcls with the
//! domain's ACL types on this side and the wire codes of `crate::acl_codes` on the other.
//! The operator keeps a user's ACLs equal to its spec with these.

use kafka_protocol::messages::create_acls_request::AclCreation;
use kafka_protocol::messages::delete_acls_request::DeleteAclsFilter;
use kafka_protocol::messages::{ApiKey, CreateAclsRequest, DeleteAclsRequest, DescribeAclsRequest};
use kafka_protocol::protocol::StrBytes;
use kafscale_core::acl::{AclBinding, AclEntry, AclFilter, PatternFilter, ResourcePattern};

use super::client::{str_bytes, CliError, Client};
use crate::acl_codes as codes;

/// The versions of the three ACL APIs this client speaks (v1 added pattern types).
const VERSIONS: std::ops::RangeInclusive<i16> = 1..=3;

/// The filter that matches exactly this binding and nothing else.
pub fn exactly(b: &AclBinding) -> AclFilter {
    AclFilter {
        resource_type: Some(b.pattern.resource_type),
        name: Some(b.pattern.name.clone()),
        pattern: PatternFilter::Exactly(b.pattern.pattern_type),
        principal: Some(b.entry.principal.clone()),
        host: Some(b.entry.host.clone()),
        operation: Some(b.entry.operation),
        permission: Some(b.entry.permission),
    }
}

/// Creates the bindings (existing ones are no error); the first refusal is the error.
pub async fn create(client: &mut Client, bindings: &[AclBinding]) -> Result<(), CliError> {
    if bindings.is_empty() {
        return Ok(());
    }
    let mut req = CreateAclsRequest::default();
    req.creations = bindings
        .iter()
        .map(|b| {
            let mut c = AclCreation::default();
            c.resource_type = codes::resource_type_code(b.pattern.resource_type);
            c.resource_name = str_bytes(&b.pattern.name);
            c.resource_pattern_type = codes::pattern_type_code(b.pattern.pattern_type);
            c.principal = str_bytes(&b.entry.principal);
            c.host = str_bytes(&b.entry.host);
            c.operation = codes::operation_code(b.entry.operation);
            c.permission_type = codes::permission_code(b.entry.permission);
            c
        })
        .collect();
    let conn = client.bootstrap();
    let v = conn.version(ApiKey::CreateAcls, VERSIONS, "acl add")?;
    let resp = conn.call(v, &req).await?;
    match resp.results.iter().find(|r| r.error_code != 0) {
        Some(r) => Err(CliError::kafka(
            "add ACLs",
            r.error_code,
            r.error_message.as_ref(),
        )),
        None => Ok(()),
    }
}

/// A filter as DescribeAcls carries it; DeleteAcls carries the same fields.
fn describe_request(f: &AclFilter) -> DescribeAclsRequest {
    let text = |s: &Option<String>| s.as_deref().map(str_bytes);
    let mut req = DescribeAclsRequest::default();
    req.resource_type_filter = codes::or_any(f.resource_type, codes::resource_type_code);
    req.resource_name_filter = text(&f.name);
    req.pattern_type_filter = codes::pattern_filter_code(f.pattern);
    req.principal_filter = text(&f.principal);
    req.host_filter = text(&f.host);
    req.operation = codes::or_any(f.operation, codes::operation_code);
    req.permission_type = codes::or_any(f.permission, codes::permission_code);
    req
}

fn delete_filter(f: &AclFilter) -> DeleteAclsFilter {
    let r = describe_request(f);
    let mut d = DeleteAclsFilter::default();
    d.resource_type_filter = r.resource_type_filter;
    d.resource_name_filter = r.resource_name_filter;
    d.pattern_type_filter = r.pattern_type_filter;
    d.principal_filter = r.principal_filter;
    d.host_filter = r.host_filter;
    d.operation = r.operation;
    d.permission_type = r.permission_type;
    d
}

/// The bindings matching the filter, in the broker's order.
pub async fn describe(
    client: &mut Client,
    filter: &AclFilter,
) -> Result<Vec<AclBinding>, CliError> {
    let req = describe_request(filter);
    let conn = client.bootstrap();
    let v = conn.version(ApiKey::DescribeAcls, VERSIONS, "acl list")?;
    let resp = conn.call(v, &req).await?;
    if resp.error_code != 0 {
        return Err(CliError::kafka(
            "list ACLs",
            resp.error_code,
            resp.error_message.as_ref(),
        ));
    }
    let mut out = Vec::new();
    for r in &resp.resources {
        for a in &r.acls {
            out.push(decode(&Fields {
                resource_type: r.resource_type,
                name: &r.resource_name,
                pattern_type: r.pattern_type,
                principal: &a.principal,
                host: &a.host,
                operation: a.operation,
                permission: a.permission_type,
            })?);
        }
    }
    Ok(out)
}

/// Deletes every binding matching one of the filters and returns them.
pub async fn delete(
    client: &mut Client,
    filters: &[AclFilter],
) -> Result<Vec<AclBinding>, CliError> {
    if filters.is_empty() {
        return Ok(Vec::new());
    }
    let mut req = DeleteAclsRequest::default();
    req.filters = filters.iter().map(delete_filter).collect();
    let conn = client.bootstrap();
    let v = conn.version(ApiKey::DeleteAcls, VERSIONS, "acl remove")?;
    let resp = conn.call(v, &req).await?;
    let mut out = Vec::new();
    for r in &resp.filter_results {
        if r.error_code != 0 {
            return Err(CliError::kafka(
                "remove ACLs",
                r.error_code,
                r.error_message.as_ref(),
            ));
        }
        for m in &r.matching_acls {
            out.push(decode(&Fields {
                resource_type: m.resource_type,
                name: &m.resource_name,
                pattern_type: m.pattern_type,
                principal: &m.principal,
                host: &m.host,
                operation: m.operation,
                permission: m.permission_type,
            })?);
        }
    }
    Ok(out)
}

/// One binding as DescribeAcls and DeleteAcls answer it.
struct Fields<'a> {
    resource_type: i8,
    name: &'a StrBytes,
    pattern_type: i8,
    principal: &'a StrBytes,
    host: &'a StrBytes,
    operation: i8,
    permission: i8,
}

fn decode(f: &Fields<'_>) -> Result<AclBinding, CliError> {
    let unknown = |what: &str, code: i8| {
        CliError::Invalid(format!(
            "the broker answered an unknown ACL {what} ({code})"
        ))
    };
    Ok(AclBinding {
        pattern: ResourcePattern {
            resource_type: codes::resource_type(f.resource_type)
                .ok_or_else(|| unknown("resource type", f.resource_type))?,
            name: f.name.to_string(),
            pattern_type: codes::pattern_type(f.pattern_type)
                .ok_or_else(|| unknown("pattern type", f.pattern_type))?,
        },
        entry: AclEntry {
            principal: f.principal.to_string(),
            host: f.host.to_string(),
            operation: codes::operation(f.operation)
                .ok_or_else(|| unknown("operation", f.operation))?,
            permission: codes::permission(f.permission)
                .ok_or_else(|| unknown("permission", f.permission))?,
        },
    })
}
