//! The checked-in manifests: the CRDs are those the Rust types generate, and every object
//! of `deploy/operator.yaml` parses as its typed Kubernetes object.

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{Namespace, ServiceAccount};
use k8s_openapi::api::rbac::v1::{ClusterRole, ClusterRoleBinding};
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use serde::Deserialize;
use serde_json::Value;
use std::path::PathBuf;

fn deploy_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../deploy")
}

/// The documents of a multi-document YAML file, as JSON.
pub fn documents(yaml: &str) -> Vec<Value> {
    serde_yaml::Deserializer::from_str(yaml)
        .map(|doc| Value::deserialize(doc).expect("valid YAML"))
        .filter(|v| !v.is_null())
        .collect()
}

#[test]
fn crd_manifests_are_current() {
    let dir = deploy_dir().join("crds");
    let update = std::env::var("KAFSCALE_UPDATE_DOCS").as_deref() == Ok("1");
    let mut stale = Vec::new();
    for (file, yaml) in kafscale_operator::crd::manifests().unwrap() {
        let path = dir.join(file);
        if std::fs::read_to_string(&path).ok().as_deref() == Some(yaml.as_str()) {
            continue;
        }
        if update {
            std::fs::create_dir_all(&dir).unwrap();
            std::fs::write(&path, yaml).unwrap();
        } else {
            stale.push(file);
        }
    }
    assert!(
        stale.is_empty(),
        "deploy/crds/{stale:?} are stale: regenerate them with \
         `KAFSCALE_UPDATE_DOCS=1 cargo test -p kafscale-operator crd_manifests` \
         (or `kafscale-operator crds --dir deploy/crds`)"
    );
}

#[test]
fn crd_manifests_parse_as_crds_with_status_and_schema() {
    for (file, _) in kafscale_operator::crd::manifests().unwrap() {
        let text = std::fs::read_to_string(deploy_dir().join("crds").join(file)).unwrap();
        let docs = documents(&text);
        assert_eq!(docs.len(), 1, "{file}");
        let crd: CustomResourceDefinition = serde_json::from_value(docs[0].clone()).unwrap();
        assert_eq!(crd.spec.group, "kafscale.io");
        assert_eq!(crd.spec.scope, "Namespaced");
        let version = &crd.spec.versions[0];
        assert_eq!(version.name, "v1alpha1");
        assert!(
            version.subresources.as_ref().unwrap().status.is_some(),
            "{file}"
        );
        let schema = version
            .schema
            .as_ref()
            .unwrap()
            .open_api_v3_schema
            .as_ref()
            .unwrap();
        let props = schema.properties.as_ref().unwrap();
        let status = props["status"].properties.as_ref().unwrap();
        assert!(status.contains_key("conditions"), "{file}");
        assert!(status.contains_key("observedGeneration"), "{file}");
    }
}

#[test]
fn operator_manifest_parses_as_typed_objects() {
    let text = std::fs::read_to_string(deploy_dir().join("operator.yaml")).unwrap();
    let docs = documents(&text);
    let kinds: Vec<&str> = docs.iter().map(|d| d["kind"].as_str().unwrap()).collect();
    assert_eq!(
        kinds,
        [
            "Namespace",
            "ServiceAccount",
            "ClusterRole",
            "ClusterRoleBinding",
            "Deployment"
        ]
    );
    let ns: Namespace = serde_json::from_value(docs[0].clone()).unwrap();
    let sa: ServiceAccount = serde_json::from_value(docs[1].clone()).unwrap();
    let role: ClusterRole = serde_json::from_value(docs[2].clone()).unwrap();
    let binding: ClusterRoleBinding = serde_json::from_value(docs[3].clone()).unwrap();
    let deploy: Deployment = serde_json::from_value(docs[4].clone()).unwrap();
    let ns_name = ns.metadata.name.unwrap();
    assert_eq!(sa.metadata.namespace.as_deref(), Some(ns_name.as_str()));
    assert_eq!(binding.role_ref.name, role.metadata.name.unwrap());
    let subject = &binding.subjects.unwrap()[0];
    assert_eq!(Some(&subject.name), sa.metadata.name.as_ref());
    let pod = deploy.spec.unwrap().template.spec.unwrap();
    assert_eq!(pod.service_account_name, sa.metadata.name);
    assert_eq!(pod.security_context.unwrap().run_as_non_root, Some(true));
    assert_eq!(
        pod.containers[0].args.as_deref(),
        Some(&["run".to_owned()][..])
    );
}
