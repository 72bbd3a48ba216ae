//! CreateAcls, DescribeAcls and DeleteAcls: ACLs in the metadata store, enforced by every
//! broker (each keeps a copy current through a watch). Creating and deleting needs ALTER on
//! the cluster, describing DESCRIBE, as in Kafka. The wire codes of Kafka's ACL enums are
//! translated in `crate::acl_codes`.

use kafka_protocol::messages::create_acls_response::AclCreationResult;
use kafka_protocol::messages::delete_acls_response::{
    DeleteAclsFilterResult, DeleteAclsMatchingAcl,
};
use kafka_protocol::messages::describe_acls_response::{AclDescription, DescribeAclsResource};
use kafka_protocol::messages::{
    ApiKey, CreateAclsRequest, CreateAclsResponse, DeleteAclsRequest, DeleteAclsResponse,
    DescribeAclsRequest, DescribeAclsResponse,
};
use kafka_protocol::protocol::StrBytes;
use kafscale_core::acl::{
    AclBinding, AclEntry, AclFilter, Operation, ResourcePattern, ResourceType,
};
use kafscale_core::acl_store;
use std::collections::BTreeMap;
use std::sync::Arc;

use super::str_bytes;
use crate::acl_codes::{
    operation, operation_code, pattern_filter, pattern_type, pattern_type_code, permission,
    permission_code, resource_type, resource_type_code, ANY,
};
use crate::audit::Change;
use crate::context::Context;
use crate::errors::{RequestError, NO_ERROR};
use crate::server::session::Session;

fn invalid(what: &str) -> RequestError {
    RequestError::Invalid(what.to_owned())
}

/// A binding to create, checked as Kafka checks it (v1+, where the pattern type is given).
#[allow(clippy::too_many_arguments)]
fn binding(
    resource: i8,
    name: &str,
    pattern: i8,
    principal: &str,
    host: &str,
    op: i8,
    perm: i8,
) -> Result<AclBinding, RequestError> {
    let resource_type = resource_type(resource).ok_or_else(|| invalid("unknown resource type"))?;
    let pattern_type =
        pattern_type(pattern).ok_or_else(|| invalid("pattern type must be LITERAL or PREFIXED"))?;
    if name.is_empty() {
        return Err(invalid("empty resource name"));
    }
    if resource_type == ResourceType::Cluster && name != kafscale_core::acl::CLUSTER_NAME {
        return Err(invalid("the cluster resource is named kafka-cluster"));
    }
    if !principal.starts_with("User:") || principal.len() == 5 {
        return Err(invalid("principal must be User:NAME or User:*"));
    }
    Ok(AclBinding {
        pattern: ResourcePattern {
            resource_type,
            name: name.to_owned(),
            pattern_type,
        },
        entry: AclEntry {
            principal: principal.to_owned(),
            host: if host.is_empty() {
                "*".to_owned()
            } else {
                host.to_owned()
            },
            operation: operation(op).ok_or_else(|| invalid("unknown operation"))?,
            permission: permission(perm)
                .ok_or_else(|| invalid("permission must be ALLOW or DENY"))?,
        },
    })
}

/// The filter of a DescribeAcls request or of one DeleteAcls filter: the two wire types
/// carry the same fields.
macro_rules! filter_of {
    ($f:expr) => {
        filter(
            $f.resource_type_filter,
            $f.resource_name_filter.as_ref(),
            $f.pattern_type_filter,
            $f.principal_filter.as_ref(),
            $f.host_filter.as_ref(),
            $f.operation,
            $f.permission_type,
        )
    };
}

/// A filter of DescribeAcls or DeleteAcls.
#[allow(clippy::too_many_arguments)]
fn filter(
    resource: i8,
    name: Option<&StrBytes>,
    pattern: i8,
    principal: Option<&StrBytes>,
    host: Option<&StrBytes>,
    op: i8,
    perm: i8,
) -> Result<AclFilter, RequestError> {
    let any_or = |code: i8, parse: &dyn Fn(i8) -> bool| code == ANY || parse(code);
    if !any_or(resource, &|c| resource_type(c).is_some())
        || !any_or(op, &|c| operation(c).is_some())
        || !any_or(perm, &|c| permission(c).is_some())
    {
        return Err(invalid(
            "unknown resource type, operation or permission in filter",
        ));
    }
    let pattern = pattern_filter(pattern).ok_or_else(|| invalid("unknown pattern type"))?;
    Ok(AclFilter {
        resource_type: resource_type(resource),
        name: name.map(|n| n.to_string()),
        pattern,
        principal: principal.map(|p| p.to_string()),
        host: host.map(|h| h.to_string()),
        operation: operation(op),
        permission: permission(perm),
    })
}

fn denied() -> RequestError {
    RequestError::ClusterAuthorizationFailed
}

fn store_error(e: kafscale_core::ports::MetadataError) -> RequestError {
    RequestError::Core(e.into())
}

pub async fn create(
    ctx: Arc<Context>,
    session: Arc<Session>,
    _version: i16,
    req: CreateAclsRequest,
) -> CreateAclsResponse {
    let allowed = ctx.cluster_authorized(&session, Operation::Alter);
    let checked: Vec<Result<AclBinding, RequestError>> = req
        .creations
        .iter()
        .map(|c| {
            if !allowed {
                return Err(denied());
            }
            binding(
                c.resource_type,
                c.resource_name.as_str(),
                c.resource_pattern_type,
                c.principal.as_str(),
                c.host.as_str(),
                c.operation,
                c.permission_type,
            )
        })
        .collect();
    let valid: Vec<AclBinding> = checked
        .iter()
        .filter_map(|c| c.as_ref().ok().cloned())
        .collect();
    // One transaction for every valid creation; its failure is each one's.
    let stored: Result<(), (i16, String)> = if valid.is_empty() {
        Ok(())
    } else {
        acl_store::create(ctx.meta.as_ref(), &valid)
            .await
            .map_err(|e| failure(&store_error(e)))
    };
    let mut resp = CreateAclsResponse::default();
    for c in checked {
        let outcome = c.map_err(|e| failure(&e)).and_then(|b| {
            stored.clone()?;
            crate::audit::changed(
                &ctx,
                &session,
                Change {
                    api: ApiKey::CreateAcls,
                    what: "acl",
                    resource: &format!("{b:?}"),
                    code: NO_ERROR,
                },
            );
            Ok(())
        });
        let mut r = AclCreationResult::default();
        if let Err((code, message)) = outcome {
            r.error_code = code;
            r.error_message = Some(str_bytes(message));
        }
        resp.results.push(r);
    }
    resp
}

/// An error as a result carries it, for results that share one failure.
fn failure(e: &RequestError) -> (i16, String) {
    (e.code(), e.to_string())
}

pub async fn describe(
    ctx: Arc<Context>,
    session: Arc<Session>,
    _version: i16,
    req: DescribeAclsRequest,
) -> DescribeAclsResponse {
    let mut resp = DescribeAclsResponse::default();
    let outcome = async {
        if !ctx.cluster_authorized(&session, Operation::Describe) {
            return Err(denied());
        }
        let f = filter_of!(req)?;
        let all = acl_store::read_all(ctx.meta.as_ref())
            .await
            .map_err(store_error)?;
        let mut by_pattern: BTreeMap<ResourcePattern, Vec<AclEntry>> = BTreeMap::new();
        for b in all.into_iter().filter(|b| f.matches(b)) {
            by_pattern.entry(b.pattern).or_default().push(b.entry);
        }
        Ok(by_pattern)
    }
    .await;
    match outcome {
        Ok(by_pattern) => {
            resp.resources = by_pattern
                .into_iter()
                .map(|(p, entries)| {
                    let mut r = DescribeAclsResource::default();
                    r.resource_type = resource_type_code(p.resource_type);
                    r.resource_name = str_bytes(p.name);
                    r.pattern_type = pattern_type_code(p.pattern_type);
                    r.acls = entries
                        .into_iter()
                        .map(|e| {
                            let mut d = AclDescription::default();
                            d.principal = str_bytes(e.principal);
                            d.host = str_bytes(e.host);
                            d.operation = operation_code(e.operation);
                            d.permission_type = permission_code(e.permission);
                            d
                        })
                        .collect();
                    r
                })
                .collect();
        }
        Err(e) => {
            resp.error_code = e.code();
            resp.error_message = Some(str_bytes(e.to_string()));
        }
    }
    resp
}

pub async fn delete(
    ctx: Arc<Context>,
    session: Arc<Session>,
    _version: i16,
    req: DeleteAclsRequest,
) -> DeleteAclsResponse {
    let mut resp = DeleteAclsResponse::default();
    let allowed = ctx.cluster_authorized(&session, Operation::Alter);
    let all: Result<Vec<AclBinding>, (i16, String)> = if allowed {
        acl_store::read_all(ctx.meta.as_ref())
            .await
            .map_err(|e| failure(&store_error(e)))
    } else {
        Err(failure(&denied()))
    };
    for f in &req.filters {
        let mut r = DeleteAclsFilterResult::default();
        let outcome = async {
            let all = all.as_ref().map_err(Clone::clone)?;
            let f = filter_of!(f).map_err(|e| failure(&e))?;
            let matching: Vec<AclBinding> = all.iter().filter(|b| f.matches(b)).cloned().collect();
            acl_store::delete(ctx.meta.as_ref(), &matching)
                .await
                .map_err(|e| failure(&store_error(e)))?;
            Ok::<_, (i16, String)>(matching)
        }
        .await;
        match outcome {
            Ok(matching) => {
                r.matching_acls = matching
                    .into_iter()
                    .map(|b| {
                        crate::audit::changed(
                            &ctx,
                            &session,
                            Change {
                                api: ApiKey::DeleteAcls,
                                what: "acl",
                                resource: &format!("{b:?}"),
                                code: NO_ERROR,
                            },
                        );
                        let mut m = DeleteAclsMatchingAcl::default();
                        m.resource_type = resource_type_code(b.pattern.resource_type);
                        m.resource_name = str_bytes(b.pattern.name);
                        m.pattern_type = pattern_type_code(b.pattern.pattern_type);
                        m.principal = str_bytes(b.entry.principal);
                        m.host = str_bytes(b.entry.host);
                        m.operation = operation_code(b.entry.operation);
                        m.permission_type = permission_code(b.entry.permission);
                        m
                    })
                    .collect();
            }
            Err((code, message)) => {
                r.error_code = code;
                r.error_message = Some(str_bytes(message));
            }
        }
        resp.filter_results.push(r);
    }
    resp
}
