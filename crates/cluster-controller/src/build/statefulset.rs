//! The StatefulSet of Qdrant peers.
//!
//! Every pod runs in cluster mode. Pod 0 starts with `--uri` (its own p2p address) and the
//! others with `--bootstrap` pointing at pod 0 plus their own `--uri`; once a peer has Raft
//! state on its volume, Qdrant ignores `--bootstrap` on restart. Pods start in parallel so a
//! full restart cannot deadlock waiting for pod 0 to be Ready (it needs quorum).

use std::collections::BTreeMap;

use api_types::{
    QdrantCluster,
    cluster::{GRPC_PORT, HTTP_PORT, P2P_PORT},
};
use k8s_openapi::{
    api::{
        apps::v1::{
            StatefulSet, StatefulSetPersistentVolumeClaimRetentionPolicy, StatefulSetSpec,
            StatefulSetUpdateStrategy,
        },
        core::v1::{
            Affinity, Capabilities, ConfigMapVolumeSource, Container, ContainerPort,
            EmptyDirVolumeSource, EnvVar, EnvVarSource, HTTPGetAction, ObjectFieldSelector,
            PersistentVolumeClaim, PersistentVolumeClaimSpec, PodAffinityTerm, PodAntiAffinity,
            PodSecurityContext, PodSpec, PodTemplateSpec, Probe, SeccompProfile, SecretKeySelector,
            SecurityContext, Volume, VolumeMount, VolumeResourceRequirements,
            WeightedPodAffinityTerm,
        },
    },
    apimachinery::pkg::{
        api::resource::Quantity,
        apis::meta::v1::{LabelSelector, ObjectMeta},
        util::intstr::IntOrString,
    },
};

use super::{
    CONFIG_HASH_ANNOTATION, Names, Observed, child_meta, common_labels,
    config::{CONFIG_KEY, SNAPSHOTS_PATH, STORAGE_PATH},
    secret::key_refs,
    selector_labels,
};

/// Name of the Qdrant container.
pub const CONTAINER: &str = "qdrant";
/// Name of the data volume (and its claim template).
pub const STORAGE_VOLUME: &str = "storage";
/// Where Qdrant writes `.qdrant-initialized` (an emptyDir; the root filesystem is read-only).
pub const INIT_FILE: &str = "/qdrant/init/.qdrant-initialized";
/// Default uid of the Qdrant process (the image's unprivileged user).
pub const DEFAULT_UID: i64 = 1000;
/// Default gid of the Qdrant process.
pub const DEFAULT_GID: i64 = 2000;
/// Default fsGroup of the volumes.
pub const DEFAULT_FS_GROUP: i64 = 3000;

/// The shell command starting Qdrant: pod 0 with `--uri`, the others with `--bootstrap` to
/// pod 0 and their own `--uri`, both through the headless Service.
pub fn start_script(names: &Names) -> String {
    let self_uri = format!(
        "http://${{POD_NAME}}.{}.{}.svc:{P2P_PORT}",
        names.headless, names.namespace
    );
    format!(
        "set -e\n\
         if [ \"${{POD_NAME##*-}}\" = \"0\" ]; then\n  \
           exec ./entrypoint.sh --uri \"{self_uri}\"\n\
         else\n  \
           exec ./entrypoint.sh --bootstrap \"{}\" --uri \"{self_uri}\"\n\
         fi\n",
        names.peer_uri(0)
    )
}

fn http_probe(path: &str, period: i32, failure: i32) -> Probe {
    Probe {
        http_get: Some(HTTPGetAction {
            path: Some(path.to_string()),
            port: IntOrString::String("http".into()),
            scheme: Some("HTTP".into()),
            ..HTTPGetAction::default()
        }),
        period_seconds: Some(period),
        timeout_seconds: Some(3),
        failure_threshold: Some(failure),
        ..Probe::default()
    }
}

/// `restricted`-compatible pod security context (used unless `spec.pod.securityContext`).
pub fn default_pod_security_context() -> PodSecurityContext {
    PodSecurityContext {
        run_as_non_root: Some(true),
        run_as_user: Some(DEFAULT_UID),
        run_as_group: Some(DEFAULT_GID),
        fs_group: Some(DEFAULT_FS_GROUP),
        fs_group_change_policy: Some("OnRootMismatch".into()),
        seccomp_profile: Some(SeccompProfile {
            type_: "RuntimeDefault".into(),
            localhost_profile: None,
        }),
        ..PodSecurityContext::default()
    }
}

/// `restricted`-compatible container security context (used unless
/// `spec.pod.containerSecurityContext`).
pub fn default_container_security_context() -> SecurityContext {
    SecurityContext {
        allow_privilege_escalation: Some(false),
        privileged: Some(false),
        read_only_root_filesystem: Some(true),
        run_as_non_root: Some(true),
        run_as_user: Some(DEFAULT_UID),
        run_as_group: Some(DEFAULT_GID),
        capabilities: Some(Capabilities {
            drop: Some(vec!["ALL".into()]),
            add: None,
        }),
        seccomp_profile: Some(SeccompProfile {
            type_: "RuntimeDefault".into(),
            localhost_profile: None,
        }),
        ..SecurityContext::default()
    }
}

/// Soft anti-affinity: prefer one peer per node (used unless `spec.affinity`).
pub fn default_affinity(qc: &QdrantCluster) -> Affinity {
    Affinity {
        pod_anti_affinity: Some(PodAntiAffinity {
            preferred_during_scheduling_ignored_during_execution: Some(vec![
                WeightedPodAffinityTerm {
                    weight: 100,
                    pod_affinity_term: PodAffinityTerm {
                        label_selector: Some(LabelSelector {
                            match_labels: Some(selector_labels(qc)),
                            match_expressions: None,
                        }),
                        topology_key: "kubernetes.io/hostname".into(),
                        ..PodAffinityTerm::default()
                    },
                },
            ]),
            required_during_scheduling_ignored_during_execution: None,
        }),
        ..Affinity::default()
    }
}

fn env(qc: &QdrantCluster) -> Vec<EnvVar> {
    let mut env = vec![
        EnvVar {
            name: "POD_NAME".into(),
            value_from: Some(EnvVarSource {
                field_ref: Some(ObjectFieldSelector {
                    field_path: "metadata.name".into(),
                    api_version: None,
                }),
                ..EnvVarSource::default()
            }),
            value: None,
        },
        EnvVar {
            name: "QDRANT_INIT_FILE_PATH".into(),
            value: Some(INIT_FILE.into()),
            value_from: None,
        },
    ];
    for key in key_refs(qc) {
        env.push(EnvVar {
            name: key.kind.env_var().into(),
            value_from: Some(EnvVarSource {
                secret_key_ref: Some(SecretKeySelector {
                    name: key.secret.name.clone(),
                    key: key.secret.key.clone(),
                    optional: Some(false),
                }),
                ..EnvVarSource::default()
            }),
            value: None,
        });
    }
    env.extend(qc.spec.pod.env.iter().cloned());
    env
}

fn mount(name: &str, path: &str, sub_path: Option<&str>, read_only: bool) -> VolumeMount {
    VolumeMount {
        name: name.into(),
        mount_path: path.into(),
        sub_path: sub_path.map(Into::into),
        read_only: read_only.then_some(true),
        ..VolumeMount::default()
    }
}

fn qdrant_container(qc: &QdrantCluster, names: &Names) -> Container {
    let spec = &qc.spec;
    let mut mounts = vec![
        mount(STORAGE_VOLUME, STORAGE_PATH, Some("storage"), false),
        mount(STORAGE_VOLUME, SNAPSHOTS_PATH, Some("snapshots"), false),
        mount(
            "config",
            &format!("/qdrant/config/{CONFIG_KEY}"),
            Some(CONFIG_KEY),
            true,
        ),
        mount("init", "/qdrant/init", None, false),
        mount("tmp", "/tmp", None, false),
    ];
    mounts.extend(spec.pod.extra_volume_mounts.iter().cloned());
    let port = |name: &str, p: i32| ContainerPort {
        name: Some(name.into()),
        container_port: p,
        protocol: Some("TCP".into()),
        ..ContainerPort::default()
    };
    Container {
        name: CONTAINER.into(),
        image: Some(spec.image.reference()),
        image_pull_policy: spec.image.pull_policy.map(|p| p.as_str().to_string()),
        command: Some(vec!["/bin/sh".into(), "-c".into()]),
        args: Some(vec![start_script(names)]),
        env: Some(env(qc)),
        ports: Some(vec![
            port("http", HTTP_PORT),
            port("grpc", GRPC_PORT),
            port("p2p", P2P_PORT),
        ]),
        // Up to 10 minutes to load collections from disk on start.
        startup_probe: Some(http_probe("/healthz", 5, 120)),
        // Ready once the peer joined consensus and its shards are loaded.
        readiness_probe: Some(http_probe("/readyz", 5, 3)),
        resources: spec.resources.clone(),
        security_context: Some(
            spec.pod
                .container_security_context
                .clone()
                .unwrap_or_else(default_container_security_context),
        ),
        volume_mounts: Some(mounts),
        ..Container::default()
    }
}

/// The claim template of the data volume from `spec.persistence`.
pub fn volume_claim_template(qc: &QdrantCluster) -> PersistentVolumeClaim {
    let p = &qc.spec.persistence;
    PersistentVolumeClaim {
        metadata: ObjectMeta {
            name: Some(STORAGE_VOLUME.into()),
            labels: Some(selector_labels(qc)),
            ..ObjectMeta::default()
        },
        spec: Some(PersistentVolumeClaimSpec {
            access_modes: Some(
                p.access_modes
                    .iter()
                    .map(|m| m.as_str().to_string())
                    .collect(),
            ),
            storage_class_name: p.storage_class_name.clone(),
            resources: Some(VolumeResourceRequirements {
                requests: Some(BTreeMap::from([(
                    "storage".to_string(),
                    Quantity(p.size.clone()),
                )])),
                limits: None,
            }),
            ..PersistentVolumeClaimSpec::default()
        }),
        status: None,
    }
}

/// The StatefulSet `<cluster>`: `spec.replicas` peers with the config mounted, keys from
/// Secrets in env, probes on `/healthz` (startup) and `/readyz` (readiness), the scheduling
/// fields of the spec, and one claim per pod. `config_hash` goes on the pod template.
/// `observed.volume_claim_templates` (immutable once created) win over the spec's.
pub fn statefulset(qc: &QdrantCluster, config_hash: &str, observed: &Observed) -> StatefulSet {
    let spec = &qc.spec;
    let names = Names::of(qc);

    let mut pod_labels = spec.pod.labels.clone();
    pod_labels.extend(common_labels(qc));
    let mut pod_annotations = spec.pod.annotations.clone();
    pod_annotations.insert(CONFIG_HASH_ANNOTATION.into(), config_hash.into());

    let mut containers = vec![qdrant_container(qc, &names)];
    containers.extend(spec.pod.sidecars.iter().cloned());

    let mut volumes = vec![
        Volume {
            name: "config".into(),
            config_map: Some(ConfigMapVolumeSource {
                name: names.config_map.clone(),
                default_mode: Some(0o444),
                ..ConfigMapVolumeSource::default()
            }),
            ..Volume::default()
        },
        Volume {
            name: "init".into(),
            empty_dir: Some(EmptyDirVolumeSource::default()),
            ..Volume::default()
        },
        Volume {
            name: "tmp".into(),
            empty_dir: Some(EmptyDirVolumeSource::default()),
            ..Volume::default()
        },
    ];
    volumes.extend(spec.pod.extra_volumes.iter().cloned());

    let retention = if spec.persistence.retain_on_delete {
        "Retain"
    } else {
        "Delete"
    };

    StatefulSet {
        metadata: child_meta(qc, &names.cluster),
        spec: Some(StatefulSetSpec {
            replicas: Some(observed.replicas.unwrap_or(spec.replicas)),
            service_name: Some(names.headless.clone()),
            pod_management_policy: Some("Parallel".into()),
            selector: LabelSelector {
                match_labels: Some(selector_labels(qc)),
                match_expressions: None,
            },
            // The controller restarts pods itself, one at a time and only while the whole
            // cluster is healthy (`crate::rollout`); Kubernetes never replaces a pod on its own.
            update_strategy: Some(StatefulSetUpdateStrategy {
                type_: Some("OnDelete".into()),
                rolling_update: None,
            }),
            persistent_volume_claim_retention_policy: Some(
                StatefulSetPersistentVolumeClaimRetentionPolicy {
                    when_deleted: Some(retention.into()),
                    when_scaled: Some(retention.into()),
                },
            ),
            template: PodTemplateSpec {
                metadata: Some(ObjectMeta {
                    labels: Some(pod_labels),
                    annotations: Some(pod_annotations),
                    ..ObjectMeta::default()
                }),
                spec: Some(PodSpec {
                    containers,
                    init_containers: (!spec.pod.init_containers.is_empty())
                        .then(|| spec.pod.init_containers.clone()),
                    volumes: Some(volumes),
                    image_pull_secrets: (!spec.image.pull_secrets.is_empty())
                        .then(|| spec.image.pull_secrets.clone()),
                    service_account_name: spec.pod.service_account_name.clone(),
                    // Qdrant does not talk to the Kubernetes API; a user-chosen service
                    // account keeps its token for sidecars.
                    automount_service_account_token: spec
                        .pod
                        .service_account_name
                        .is_none()
                        .then_some(false),
                    // Service links would inject QDRANT_* variables that Qdrant reads as config.
                    enable_service_links: Some(false),
                    security_context: Some(
                        spec.pod
                            .security_context
                            .clone()
                            .unwrap_or_else(default_pod_security_context),
                    ),
                    node_selector: spec.node_selector.clone(),
                    tolerations: spec.tolerations.clone(),
                    affinity: Some(
                        spec.affinity
                            .clone()
                            .unwrap_or_else(|| default_affinity(qc)),
                    ),
                    topology_spread_constraints: spec.topology_spread_constraints.clone(),
                    priority_class_name: spec.priority_class_name.clone(),
                    termination_grace_period_seconds: Some(60),
                    ..PodSpec::default()
                }),
            },
            volume_claim_templates: Some(
                observed
                    .volume_claim_templates
                    .clone()
                    .unwrap_or_else(|| vec![volume_claim_template(qc)]),
            ),
            ..StatefulSetSpec::default()
        }),
        status: None,
    }
}
