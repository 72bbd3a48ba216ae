//! The Kubernetes objects of a `KafscaleCluster`: a StatefulSet of brokers, a headless
//! Service that gives each broker a stable address, a bootstrap Service for clients, and a
//! PodDisruptionBudget. All are owned by the cluster, so deleting it deletes them.

use k8s_openapi::api::apps::v1::{
    RollingUpdateStatefulSetStrategy, StatefulSet, StatefulSetSpec, StatefulSetUpdateStrategy,
};
use k8s_openapi::api::core::v1::{
    Capabilities, Container, ContainerPort, EmptyDirVolumeSource, EnvVar, HTTPGetAction,
    PodSecurityContext, PodSpec, PodTemplateSpec, Probe, SeccompProfile, SecurityContext, Service,
    ServicePort, ServiceSpec, Volume, VolumeMount,
};
use k8s_openapi::api::policy::v1::{PodDisruptionBudget, PodDisruptionBudgetSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta, OwnerReference};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use std::collections::BTreeMap;

use crate::crd::KafscaleCluster;

/// The user and group of the broker image (`scripts/image.sh`, `deploy/Dockerfile`).
const BROKER_UID: i64 = 65532;

/// Names of a cluster's objects.
pub struct Names {
    pub statefulset: String,
    pub headless: String,
    pub bootstrap: String,
    pub pdb: String,
}

impl Names {
    pub fn of(cluster: &str) -> Names {
        Names {
            statefulset: format!("{cluster}-broker"),
            headless: format!("{cluster}-brokers"),
            bootstrap: format!("{cluster}-bootstrap"),
            pdb: format!("{cluster}-brokers"),
        }
    }
}

/// The labels that select a cluster's broker pods.
pub fn selector(cluster: &str) -> BTreeMap<String, String> {
    BTreeMap::from([
        ("app.kubernetes.io/name".to_owned(), "kafscale".to_owned()),
        ("app.kubernetes.io/instance".to_owned(), cluster.to_owned()),
        (
            "app.kubernetes.io/component".to_owned(),
            "broker".to_owned(),
        ),
    ])
}

fn labels(cluster: &str) -> BTreeMap<String, String> {
    let mut l = selector(cluster);
    l.insert(
        "app.kubernetes.io/managed-by".to_owned(),
        crate::FIELD_MANAGER.to_owned(),
    );
    l
}

fn meta(cluster: &KafscaleCluster, name: &str, owner: &OwnerReference) -> ObjectMeta {
    ObjectMeta {
        name: Some(name.to_owned()),
        namespace: cluster.metadata.namespace.clone(),
        labels: Some(labels(cluster.metadata.name.as_deref().unwrap_or_default())),
        owner_references: Some(vec![owner.clone()]),
        ..Default::default()
    }
}

fn port(name: &str, port: u16) -> ServicePort {
    ServicePort {
        name: Some(name.to_owned()),
        port: i32::from(port),
        target_port: Some(IntOrString::String(name.to_owned())),
        ..Default::default()
    }
}

/// Gives every broker the DNS name `<pod>.<headless>.<namespace>.svc`, which it advertises.
/// Not-ready brokers keep their names, so a client that learned one from Metadata gets a
/// Kafka error (and looks the leader up again) rather than a DNS failure.
pub fn headless_service(c: &KafscaleCluster, names: &Names, owner: &OwnerReference) -> Service {
    let name = c.metadata.name.as_deref().unwrap_or_default();
    let l = &c.spec.listeners;
    Service {
        metadata: meta(c, &names.headless, owner),
        spec: Some(ServiceSpec {
            cluster_ip: Some("None".to_owned()),
            publish_not_ready_addresses: Some(true),
            selector: Some(selector(name)),
            ports: Some(
                kafka_ports(c)
                    .into_iter()
                    .chain([port("http", l.http_port)])
                    .collect(),
            ),
            ..Default::default()
        }),
        status: None,
    }
}

/// Where clients connect first: any ready broker.
pub fn bootstrap_service(c: &KafscaleCluster, names: &Names, owner: &OwnerReference) -> Service {
    let name = c.metadata.name.as_deref().unwrap_or_default();
    Service {
        metadata: meta(c, &names.bootstrap, owner),
        spec: Some(ServiceSpec {
            type_: Some("ClusterIP".to_owned()),
            selector: Some(selector(name)),
            ports: Some(kafka_ports(c)),
            ..Default::default()
        }),
        status: None,
    }
}

/// The Kafka port, then those of the additional listeners, named after them.
pub fn kafka_ports(c: &KafscaleCluster) -> Vec<ServicePort> {
    let l = &c.spec.listeners;
    let mut ports = vec![port("kafka", l.kafka_port)];
    for a in &l.additional {
        ports.push(port(&port_name(&a.name), a.port));
    }
    ports
}

/// A Service port name of a listener: `SASL_SSL` is `sasl-ssl` (lower case and dashes).
fn port_name(listener: &str) -> String {
    listener.to_lowercase().replace('_', "-")
}

/// Voluntary evictions (node drains) take one broker at a time.
pub fn pdb(c: &KafscaleCluster, names: &Names, owner: &OwnerReference) -> PodDisruptionBudget {
    let name = c.metadata.name.as_deref().unwrap_or_default();
    PodDisruptionBudget {
        metadata: meta(c, &names.pdb, owner),
        spec: Some(PodDisruptionBudgetSpec {
            max_unavailable: Some(IntOrString::Int(1)),
            selector: Some(LabelSelector {
                match_labels: Some(selector(name)),
                match_expressions: None,
            }),
            ..Default::default()
        }),
        status: None,
    }
}

fn http_probe(path: &str, period: i32, failures: i32) -> Probe {
    Probe {
        http_get: Some(HTTPGetAction {
            path: Some(path.to_owned()),
            port: IntOrString::String("http".to_owned()),
            ..Default::default()
        }),
        period_seconds: Some(period),
        failure_threshold: Some(failures),
        timeout_seconds: Some(3),
        ..Default::default()
    }
}

fn empty_dir(name: &str) -> Volume {
    Volume {
        name: name.to_owned(),
        empty_dir: Some(EmptyDirVolumeSource::default()),
        ..Default::default()
    }
}

fn mount(name: &str, path: &str) -> VolumeMount {
    VolumeMount {
        name: name.to_owned(),
        mount_path: path.to_owned(),
        ..Default::default()
    }
}

/// The brokers' pod template: the broker image's non-root user on a read-only root, probes
/// on the HTTP listener, and time enough after SIGTERM to hand partitions over.
fn pod_template(c: &KafscaleCluster, env: Vec<EnvVar>, grace_secs: i64) -> PodTemplateSpec {
    let name = c.metadata.name.as_deref().unwrap_or_default();
    let l = &c.spec.listeners;
    let container = Container {
        name: "broker".to_owned(),
        image: Some(c.spec.image.clone()),
        image_pull_policy: c.spec.image_pull_policy.clone(),
        args: Some(vec!["serve".to_owned()]),
        env: Some(env),
        ports: Some(
            kafka_ports(c)
                .into_iter()
                .chain([port("http", l.http_port)])
                .map(|p| ContainerPort {
                    name: p.name,
                    container_port: p.port,
                    ..Default::default()
                })
                .collect(),
        ),
        // /readyz fails from the moment SIGTERM starts the hand-over, so the bootstrap
        // Service stops sending clients to a broker that is leaving.
        readiness_probe: Some(http_probe("/readyz", 5, 2)),
        liveness_probe: Some(http_probe("/healthz", 10, 6)),
        resources: c.spec.resources.clone(),
        security_context: Some(SecurityContext {
            allow_privilege_escalation: Some(false),
            read_only_root_filesystem: Some(true),
            run_as_non_root: Some(true),
            capabilities: Some(Capabilities {
                drop: Some(vec!["ALL".to_owned()]),
                add: None,
            }),
            ..Default::default()
        }),
        volume_mounts: Some(vec![
            mount("data", "/var/lib/kafscale"),
            mount("tmp", "/tmp"),
        ]),
        ..Default::default()
    };
    PodTemplateSpec {
        metadata: Some(ObjectMeta {
            labels: Some(labels(name)),
            ..Default::default()
        }),
        spec: Some(PodSpec {
            containers: vec![container],
            termination_grace_period_seconds: Some(grace_secs),
            security_context: Some(PodSecurityContext {
                run_as_user: Some(BROKER_UID),
                run_as_group: Some(BROKER_UID),
                fs_group: Some(BROKER_UID),
                run_as_non_root: Some(true),
                seccomp_profile: Some(SeccompProfile {
                    type_: "RuntimeDefault".to_owned(),
                    localhost_profile: None,
                }),
                ..Default::default()
            }),
            volumes: Some(vec![empty_dir("data"), empty_dir("tmp")]),
            ..Default::default()
        }),
    }
}

/// The brokers. Pods start and stop in parallel (brokers have no state to order), but a
/// template change (image, config) rolls them one at a time whatever the pod management
/// policy: the StatefulSet stops the highest-numbered old pod, starts its replacement and
/// waits for its readiness before the next.
pub fn statefulset(
    c: &KafscaleCluster,
    names: &Names,
    owner: &OwnerReference,
    env: Vec<EnvVar>,
    grace_secs: i64,
) -> StatefulSet {
    let name = c.metadata.name.as_deref().unwrap_or_default();
    StatefulSet {
        metadata: meta(c, &names.statefulset, owner),
        spec: Some(StatefulSetSpec {
            replicas: Some(c.spec.brokers),
            service_name: Some(names.headless.clone()),
            pod_management_policy: Some("Parallel".to_owned()),
            selector: LabelSelector {
                match_labels: Some(selector(name)),
                match_expressions: None,
            },
            update_strategy: Some(StatefulSetUpdateStrategy {
                type_: Some("RollingUpdate".to_owned()),
                // One pod at a time is the default; maxUnavailable is behind a feature gate.
                rolling_update: Some(RollingUpdateStatefulSetStrategy {
                    max_unavailable: None,
                    partition: Some(0),
                }),
            }),
            template: pod_template(c, env, grace_secs),
            ..Default::default()
        }),
        status: None,
    }
}
