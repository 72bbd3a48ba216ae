//! An in-memory Kubernetes API server behind `kube::Client`: objects are kept as JSON by
//! group, resource, namespace and name, and GET, POST, PATCH (apply, merge and JSON patch,
//! with the status subresource) and DELETE behave as the API server's do in the ways the
//! operator relies on: generations grow when a spec changes, finalizers hold a deleted
//! object until they are removed. Server-side apply is simulated for one field manager:
//! the applied object replaces what was there, status and server fields kept.
//!
//! Every request of the operator's client is checked against the ClusterRole of
//! `deploy/operator.yaml`, so a test fails if the operator uses a permission it is not
//! given. The test itself changes objects through the methods here, not over HTTP.

use http::{Method, Request, Response, StatusCode};
use http_body_util::BodyExt;
use k8s_openapi::api::rbac::v1::{ClusterRole, PolicyRule};
use kube::client::Body;
use kube::Resource;
use serde::de::DeserializeOwned;
use serde::Serialize;
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::convert::Infallible;
use std::sync::{Arc, Mutex};

#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
struct Key {
    group: String,
    resource: String,
    namespace: String,
    name: String,
}

/// One request the operator made.
#[derive(Debug, Clone)]
pub struct Logged {
    pub method: String,
    /// Path and query.
    pub uri: String,
    pub content_type: String,
}

#[derive(Default)]
struct State {
    objects: BTreeMap<Key, Value>,
    log: Vec<Logged>,
    revision: u64,
}

#[derive(Clone)]
pub struct FakeApi {
    state: Arc<Mutex<State>>,
    rules: Arc<Vec<PolicyRule>>,
}

/// Where a request points: `/api/v1/namespaces/NS/RES[/NAME[/SUB]]` or
/// `/apis/GROUP/VERSION/namespaces/NS/RES[/NAME[/SUB]]`.
struct Target {
    group: String,
    resource: String,
    namespace: String,
    name: Option<String>,
    sub: Option<String>,
}

fn parse_path(path: &str) -> Option<Target> {
    let parts: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    let (group, rest) = match parts.as_slice() {
        ["api", "v1", rest @ ..] => (String::new(), rest),
        ["apis", group, _version, rest @ ..] => ((*group).to_owned(), rest),
        _ => return None,
    };
    match rest {
        ["namespaces", ns, resource, more @ ..] => Some(Target {
            group,
            resource: (*resource).to_owned(),
            namespace: (*ns).to_owned(),
            name: more.first().map(|s| (*s).to_owned()),
            sub: more.get(1).map(|s| (*s).to_owned()),
        }),
        _ => None,
    }
}

fn respond(code: StatusCode, body: &Value) -> Response<Body> {
    let mut resp = Response::new(Body::from(serde_json::to_vec(body).unwrap_or_default()));
    *resp.status_mut() = code;
    resp
}

fn status_error(code: StatusCode, reason: &str, message: String) -> Response<Body> {
    respond(
        code,
        &json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
                "reason": reason, "message": message, "code": code.as_u16()}),
    )
}

/// RFC 7386 merge patch.
fn merge(target: &mut Value, patch: &Value) {
    match (target, patch) {
        (Value::Object(t), Value::Object(p)) => {
            for (k, v) in p {
                if v.is_null() {
                    t.remove(k);
                } else {
                    merge(t.entry(k.clone()).or_insert(Value::Null), v);
                }
            }
        }
        (t, p) => *t = p.clone(),
    }
}

fn key_of<K: Resource<DynamicType = ()>>(namespace: &str, name: &str) -> Key {
    Key {
        group: K::group(&()).into_owned(),
        resource: K::plural(&()).into_owned(),
        namespace: namespace.to_owned(),
        name: name.to_owned(),
    }
}

impl FakeApi {
    pub fn new() -> FakeApi {
        let manifest = std::fs::read_to_string(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../deploy/operator.yaml"
        ))
        .expect("deploy/operator.yaml");
        let role: ClusterRole = crate::manifests::documents(&manifest)
            .into_iter()
            .find(|d| d["kind"] == "ClusterRole")
            .map(|d| serde_json::from_value(d).expect("a ClusterRole"))
            .expect("deploy/operator.yaml has a ClusterRole");
        FakeApi {
            state: Arc::new(Mutex::new(State::default())),
            rules: Arc::new(role.rules.unwrap_or_default()),
        }
    }

    /// A client whose requests this fake serves, with the operator's permissions.
    pub fn client(&self) -> kube::Client {
        let fake = self.clone();
        let service = tower::service_fn(move |req: Request<Body>| {
            let fake = fake.clone();
            async move { Ok::<_, Infallible>(fake.handle(req).await) }
        });
        kube::Client::new(service, "default")
    }

    fn allowed(&self, group: &str, resource: &str, verb: &str) -> bool {
        self.rules.iter().any(|r| {
            r.api_groups
                .as_deref()
                .unwrap_or_default()
                .iter()
                .any(|g| g == group)
                && r.resources
                    .as_deref()
                    .unwrap_or_default()
                    .iter()
                    .any(|x| x == resource)
                && r.verbs.iter().any(|v| v == verb)
        })
    }

    async fn handle(&self, req: Request<Body>) -> Response<Body> {
        let (parts, body) = req.into_parts();
        let bytes = body
            .collect()
            .await
            .map(|b| b.to_bytes())
            .unwrap_or_default();
        let body: Option<Value> = serde_json::from_slice(&bytes).ok();
        let path = parts.uri.path().to_owned();
        let content_type = parts
            .headers
            .get(http::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned();
        let mut state = self.state.lock().expect("fake api lock");
        state.log.push(Logged {
            method: parts.method.to_string(),
            uri: parts.uri.to_string(),
            content_type: content_type.clone(),
        });
        let Some(t) = parse_path(&path) else {
            return status_error(
                StatusCode::NOT_FOUND,
                "NotFound",
                format!("no route {path}"),
            );
        };
        let verb = match (&parts.method, &t.name) {
            (&Method::GET, Some(_)) => "get",
            (&Method::GET, None) => "list",
            (&Method::POST, _) => "create",
            (&Method::PATCH, _) => "patch",
            (&Method::PUT, _) => "update",
            (&Method::DELETE, _) => "delete",
            _ => "unknown",
        };
        let resource = match &t.sub {
            Some(sub) => format!("{}/{sub}", t.resource),
            None => t.resource.clone(),
        };
        if !self.allowed(&t.group, &resource, verb) {
            return status_error(
                StatusCode::FORBIDDEN,
                "Forbidden",
                format!(
                    "{verb} {resource} in group {:?} is not granted by deploy/operator.yaml",
                    t.group
                ),
            );
        }
        let key = Key {
            group: t.group.clone(),
            resource: t.resource.clone(),
            namespace: t.namespace.clone(),
            name: t
                .name
                .clone()
                .or_else(|| {
                    body.as_ref()
                        .and_then(|b| b["metadata"]["name"].as_str().map(str::to_owned))
                })
                .unwrap_or_default(),
        };
        match (parts.method, t.name.is_some()) {
            (Method::GET, true) => match state.objects.get(&key) {
                Some(obj) => respond(StatusCode::OK, obj),
                None => status_error(
                    StatusCode::NOT_FOUND,
                    "NotFound",
                    format!("{} {} not found", t.resource, key.name),
                ),
            },
            (Method::GET, false) => {
                let items: Vec<Value> = state
                    .objects
                    .iter()
                    .filter(|(k, _)| {
                        k.group == t.group && k.resource == t.resource && k.namespace == t.namespace
                    })
                    .map(|(_, v)| v.clone())
                    .collect();
                respond(
                    StatusCode::OK,
                    &json!({"kind": "List", "apiVersion": "v1", "metadata": {"resourceVersion": state.revision.to_string()}, "items": items}),
                )
            }
            (Method::PATCH, true) => {
                let existing = state.objects.get(&key).cloned();
                let is_apply = content_type.starts_with("application/apply-patch");
                if existing.is_none()
                    && !(is_apply && self.allowed(&t.group, &t.resource, "create"))
                {
                    return status_error(
                        StatusCode::NOT_FOUND,
                        "NotFound",
                        format!("{} {} not found", t.resource, key.name),
                    );
                }
                let patch = body.unwrap_or(Value::Null);
                let mut obj = existing.clone().unwrap_or_else(|| json!({}));
                if t.sub.as_deref() == Some("status") {
                    merge(&mut obj, &json!({"status": patch["status"].clone()}));
                } else if is_apply {
                    let mut applied = patch;
                    if let Some(old) = &existing {
                        for f in [
                            "uid",
                            "creationTimestamp",
                            "generation",
                            "finalizers",
                            "deletionTimestamp",
                        ] {
                            if !old["metadata"][f].is_null() {
                                applied["metadata"][f] = old["metadata"][f].clone();
                            }
                        }
                        if !old["status"].is_null() {
                            applied["status"] = old["status"].clone();
                        }
                    }
                    obj = applied;
                } else if content_type.starts_with("application/json-patch") {
                    let ops: json_patch::Patch = match serde_json::from_value(patch) {
                        Ok(p) => p,
                        Err(e) => {
                            return status_error(
                                StatusCode::BAD_REQUEST,
                                "BadRequest",
                                e.to_string(),
                            )
                        }
                    };
                    // The API server treats an absent list as null for a `test` op.
                    if obj["metadata"].get("finalizers").is_none() {
                        obj["metadata"]["finalizers"] = Value::Null;
                    }
                    if let Err(e) = json_patch::patch(&mut obj, &ops) {
                        return status_error(
                            StatusCode::UNPROCESSABLE_ENTITY,
                            "Invalid",
                            e.to_string(),
                        );
                    }
                } else {
                    merge(&mut obj, &patch);
                }
                let stored = state.store(key.clone(), obj, existing.as_ref());
                respond(StatusCode::OK, &stored)
            }
            (Method::POST, false) => {
                if state.objects.contains_key(&key) {
                    return status_error(
                        StatusCode::CONFLICT,
                        "AlreadyExists",
                        format!("{} exists", key.name),
                    );
                }
                let stored = state.store(key, body.unwrap_or(Value::Null), None);
                respond(StatusCode::CREATED, &stored)
            }
            (Method::DELETE, true) => match state.delete(&key) {
                Some(obj) => respond(StatusCode::OK, &obj),
                None => status_error(
                    StatusCode::NOT_FOUND,
                    "NotFound",
                    format!("{} not found", key.name),
                ),
            },
            (m, _) => status_error(
                StatusCode::METHOD_NOT_ALLOWED,
                "MethodNotAllowed",
                format!("{m} {path}"),
            ),
        }
    }

    /// Stores an object as a user would create or replace it (no permission check).
    pub fn put<K: Resource<DynamicType = ()> + Serialize>(&self, obj: &K) {
        let meta = obj.meta();
        let key = key_of::<K>(
            meta.namespace.as_deref().unwrap_or("default"),
            meta.name.as_deref().unwrap_or_default(),
        );
        let value = serde_json::to_value(obj).expect("serializable");
        let mut state = self.state.lock().expect("fake api lock");
        let existing = state.objects.get(&key).cloned();
        state.store(key, value, existing.as_ref());
    }

    pub fn get<K: Resource<DynamicType = ()> + DeserializeOwned>(
        &self,
        ns: &str,
        name: &str,
    ) -> Option<K> {
        let state = self.state.lock().expect("fake api lock");
        state
            .objects
            .get(&key_of::<K>(ns, name))
            .map(|v| serde_json::from_value(v.clone()).expect("stored object parses as its type"))
    }

    /// Deletes as `kubectl delete` does: with finalizers the object only gets a deletion
    /// timestamp. Returns whether it is gone.
    pub fn delete<K: Resource<DynamicType = ()>>(&self, ns: &str, name: &str) -> bool {
        let mut state = self.state.lock().expect("fake api lock");
        let key = key_of::<K>(ns, name);
        state.delete(&key);
        !state.objects.contains_key(&key)
    }

    /// Sets an object's status, as another controller (the StatefulSet controller) would.
    pub fn set_status<K: Resource<DynamicType = ()>>(&self, ns: &str, name: &str, status: Value) {
        let mut state = self.state.lock().expect("fake api lock");
        if let Some(obj) = state.objects.get_mut(&key_of::<K>(ns, name)) {
            obj["status"] = status;
        }
    }

    /// The operator's requests so far, then forgets them.
    pub fn take_log(&self) -> Vec<Logged> {
        std::mem::take(&mut self.state.lock().expect("fake api lock").log)
    }
}

impl State {
    /// Stores `obj` with the fields the API server sets; removes an object being deleted
    /// whose last finalizer is gone. Returns the object as of this request (the API server
    /// answers the patch that removes the last finalizer with the object).
    fn store(&mut self, key: Key, mut obj: Value, existing: Option<&Value>) -> Value {
        self.revision += 1;
        let meta = &mut obj["metadata"];
        meta["name"] = json!(key.name);
        meta["namespace"] = json!(key.namespace);
        meta["resourceVersion"] = json!(self.revision.to_string());
        let generation = match existing {
            None => 1,
            Some(old) => {
                let g = old["metadata"]["generation"].as_i64().unwrap_or(1);
                if old["spec"] != obj["spec"] {
                    g + 1
                } else {
                    g
                }
            }
        };
        let meta = &mut obj["metadata"];
        meta["generation"] = json!(generation);
        if meta["uid"].is_null() {
            meta["uid"] = json!(format!("uid-{}-{}", key.name, self.revision));
        }
        if meta["creationTimestamp"].is_null() {
            meta["creationTimestamp"] = json!("2026-01-01T00:00:00Z");
        }
        let finalizers_left = meta["finalizers"].as_array().is_some_and(|f| !f.is_empty());
        if meta["finalizers"].is_null() {
            meta.as_object_mut().map(|m| m.remove("finalizers"));
        }
        if !meta["deletionTimestamp"].is_null() && !finalizers_left {
            self.objects.remove(&key);
            return obj;
        }
        self.objects.insert(key, obj.clone());
        obj
    }

    fn delete(&mut self, key: &Key) -> Option<Value> {
        let obj = self.objects.get_mut(key)?;
        if obj["metadata"]["finalizers"]
            .as_array()
            .is_some_and(|f| !f.is_empty())
        {
            obj["metadata"]["deletionTimestamp"] = json!("2026-01-01T00:00:01Z");
            return Some(obj.clone());
        }
        self.objects.remove(key)
    }
}
