//! The StatefulSet of Qdrant peers.
//!
//! Every pod runs in cluster mode. In a new cluster pod 0 starts with `--uri` (its own p2p
//! address) and the others with `--bootstrap` pointing at pod 0 plus their own `--uri`; once
//! the cluster formed, every pod bootstraps from a listed member, so a pod whose volume came
//! back empty never founds a second cluster ([`start_script`]). Once a peer has Raft state on
//! its volume, Qdrant ignores `--bootstrap` on restart. Pods start in parallel so a full
//! restart cannot deadlock waiting for pod 0 to be Ready (it needs quorum).

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
            SecretVolumeSource, SecurityContext, TopologySpreadConstraint, Volume, VolumeMount,
            VolumeResourceRequirements, WeightedPodAffinityTerm,
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
    secret::{KeyKind, key_refs},
    selector_labels, served_keys,
    tls::{TLS_DIR, TLS_HASH_ANNOTATION, TLS_VOLUME},
};

/// Name of the Qdrant container.
pub const CONTAINER: &str = "qdrant";
/// Name of the data volume (and its claim template) of a cluster the operator created; an
/// adopted StatefulSet keeps its own (`spec.adoption.volumeClaimTemplate`).
pub const STORAGE_VOLUME: &str = api_types::cluster::DATA_VOLUME_CLAIM_TEMPLATE;
/// The emptyDir of Qdrant's snapshots directory in an adopted StatefulSet whose snapshots
/// were not on a claim.
pub const SNAPSHOTS_VOLUME: &str = "snapshots";
/// Where Qdrant writes `.qdrant-initialized` (an emptyDir; the root filesystem is read-only).
pub const INIT_FILE: &str = "/qdrant/init/.qdrant-initialized";
/// Default uid of the Qdrant process (the image's unprivileged user).
pub const DEFAULT_UID: i64 = 1000;
/// Group of the user of Qdrant's unprivileged image (`qdrant`, uid and gid 1000): the
/// process's group when neither the pod nor the container sets `runAsGroup`.
pub const IMAGE_GID: i64 = 1000;
/// Default gid of the Qdrant process.
pub const DEFAULT_GID: i64 = 2000;
/// Default fsGroup of the volumes.
pub const DEFAULT_FS_GROUP: i64 = 3000;
/// Mode of the files of the TLS Secret volume (`tls.key` among them): read for the owner
/// (root) and the group, which the kubelet sets to the pod's fsGroup; nothing for others.
pub const TLS_FILE_MODE: i32 = 0o440;

/// First line of the Qdrant container's termination message when the pod's volume lost the
/// data of a consensus member: the instance stopped with no Raft state of a joined peer on the
/// volume (no `raft_state.json`, nor Qdrant's legacy `raft_state`, or one whose
/// `hard_state.term` is still 0) although the cluster ConfigMap's member list
/// ([`BOOTSTRAP_PEERS_FILE`]) names this pod, i.e. the pod had reported itself as a member
/// before. A pod's first start (never listed) and a crash of a peer that joined (its state is
/// on the volume when it stops) never write it. The start script writes it once Qdrant
/// stopped; the peer recovery ([`crate::recover`]) reads it from the Pod's status.
pub const FRESH_STORAGE_MARKER: &str = "qdrant-operator: fresh storage";
/// Qdrant's Raft state on the data volume (`storage_path/raft_state.json`, Qdrant's
/// `Persistent::load_or_init`).
pub const RAFT_STATE_FILE: &str = "/qdrant/storage/raft_state.json";
/// Where the cluster ConfigMap is mounted as a directory (no subPath, so the kubelet refreshes
/// its files when the ConfigMap changes).
pub const CLUSTER_INFO_DIR: &str = "/qdrant/cluster-info";
/// The ConfigMap's [`super::config::BOOTSTRAP_PEERS_KEY`] as the start script reads it.
pub const BOOTSTRAP_PEERS_FILE: &str = "/qdrant/cluster-info/bootstrap-peers";
/// How many starts of this pod picked a bootstrap peer (in the `init` emptyDir, which survives
/// container restarts), so each restart tries the next listed peer.
pub const BOOTSTRAP_ATTEMPTS_FILE: &str = "/qdrant/init/bootstrap-attempts";
/// The container's termination message file (Kubernetes' default `terminationMessagePath`).
pub const TERMINATION_LOG: &str = "/dev/termination-log";

/// The shell command starting Qdrant (`/bin/sh` of Qdrant's Debian image).
///
/// - Qdrant runs as the script's child (SIGTERM and SIGINT reach it as SIGTERM, as a child
///   started in the background ignores SIGINT; its exit status is the container's), so that once it stopped the script can tell whether the
///   volume lost a member's data: no Raft state of a joined peer on it although the member
///   list names this pod. Then [`FRESH_STORAGE_MARKER`] goes to the termination message, so
///   the operator can tell a volume that came back empty from a pod that is merely down or
///   crashed. Checking at the end, not at the start, is what keeps a healthy peer from looking
///   like a lost one: its first instance starts on an empty volume, but holds its joined state
///   when it later crashes.
/// - A state with term 0 (a start whose join did not complete: the bootstrap peer was not
///   listening yet, or refused it) is left in place: Qdrant 1.18 treats it as a new deployment
///   and bootstraps again with the same peer id (`Consensus::new`, `is_new_deployment`).
/// - Once the cluster formed, the ConfigMap lists its members' p2p URIs
///   ([`BOOTSTRAP_PEERS_FILE`]): every pod, pod 0 included, bootstraps from one of them other
///   than itself, the next one on each restart. Pod 0 on an empty volume therefore joins the
///   existing cluster instead of founding a second one (Qdrant treats a start without
///   `--bootstrap` as the first peer of a new deployment). When the list names no other peer
///   and the volume is fresh, the script exits and the pod retries later.
/// - Before that (a new cluster): pod 0 starts with `--uri` only and founds it, the others
///   bootstrap from pod 0.
///
/// Every pod passes its own `--uri` through the headless Service (`https://` when
/// `spec.tls.p2p` is enabled). Qdrant ignores `--bootstrap` once its volume holds the Raft
/// state of a joined peer (it only asks that peer for unknown peer addresses).
pub fn start_script(names: &Names) -> String {
    let self_uri = format!(
        "{}://${{POD_NAME}}.{}.{}.svc:{P2P_PORT}",
        names.p2p_scheme(),
        names.headless,
        names.namespace
    );
    let legacy_state = RAFT_STATE_FILE.trim_end_matches(".json");
    r#"set -e
self="__SELF__"
joined() {
  [ -f __LEGACY__ ] || { [ -f __STATE__ ] && ! grep -q '"hard_state":{"term":0,' __STATE__; }
}
member=0
if [ -s __PEERS__ ] && grep -q -F "//${POD_NAME}." __PEERS__; then
  member=1
fi
stopped() {
  if [ "$member" = 1 ] && ! joined; then
    echo "__MARKER__: no Raft state of a joined peer in __STATE__, and the cluster lists this pod as a member" 2>/dev/null >__TERMLOG__ || true
  fi
  exit "$1"
}
bootstrap=""
if [ -s __PEERS__ ]; then
  candidates=$(grep -v -F "//${POD_NAME}." __PEERS__ || true)
  if [ -n "$candidates" ]; then
    attempt=$(cat __ATTEMPTS__ 2>/dev/null || echo 0)
    case "$attempt" in ''|*[!0-9]*) attempt=0 ;; esac
    echo $((attempt + 1)) 2>/dev/null >__ATTEMPTS__ || true
    count=$(printf '%s\n' "$candidates" | wc -l)
    bootstrap=$(printf '%s\n' "$candidates" | sed -n "$((attempt % count + 1))p")
  elif ! joined; then
    echo "the cluster exists but __PEERS__ lists no other peer to join through; not founding a new cluster" >&2
    stopped 1
  fi
elif [ "${POD_NAME##*-}" != "0" ]; then
  bootstrap="__POD0__"
fi
if [ -n "$bootstrap" ]; then
  set -- --bootstrap "$bootstrap" --uri "$self"
else
  set -- --uri "$self"
fi
# The trap is set before Qdrant starts: a SIGTERM in between is kept and passed on.
qdrant=""
term=""
trap 'term=1; [ -z "$qdrant" ] || kill -TERM "$qdrant" 2>/dev/null || true' TERM INT
./entrypoint.sh "$@" &
qdrant=$!
[ -z "$term" ] || kill -TERM "$qdrant" 2>/dev/null || true
while :; do
  if wait "$qdrant"; then status=0; else status=$?; fi
  kill -0 "$qdrant" 2>/dev/null || break
done
stopped "$status"
"#
    .replace("__SELF__", &self_uri)
    .replace("__LEGACY__", legacy_state)
    .replace("__STATE__", RAFT_STATE_FILE)
    .replace("__MARKER__", FRESH_STORAGE_MARKER)
    .replace("__TERMLOG__", TERMINATION_LOG)
    .replace("__PEERS__", BOOTSTRAP_PEERS_FILE)
    .replace("__ATTEMPTS__", BOOTSTRAP_ATTEMPTS_FILE)
    .replace("__POD0__", &names.peer_uri(0))
}

/// A probe of `path` on the REST port; HTTPS when client TLS is on (the kubelet does not
/// verify the certificate).
fn http_probe(path: &str, period: i32, failure: i32, https: bool) -> Probe {
    Probe {
        http_get: Some(HTTPGetAction {
            path: Some(path.to_string()),
            port: IntOrString::String("http".into()),
            scheme: Some(if https { "HTTPS" } else { "HTTP" }.into()),
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

/// The pod security context: `spec.pod.securityContext`, or [`default_pod_security_context`].
/// With TLS on, a user context without `fsGroup` gets one (the container's `runAsGroup`, else
/// the pod's, else the image's group [`IMAGE_GID`]) with `fsGroupChangePolicy:
/// OnRootMismatch`, so Qdrant can read the TLS files, which are mode [`TLS_FILE_MODE`]
/// (group-readable only).
pub fn pod_security_context(qc: &QdrantCluster, names: &Names) -> PodSecurityContext {
    let Some(mut sc) = qc.spec.pod.security_context.clone() else {
        return default_pod_security_context();
    };
    if (names.client_tls || names.p2p_tls) && sc.fs_group.is_none() {
        let container_group = qc
            .spec
            .pod
            .container_security_context
            .as_ref()
            .and_then(|c| c.run_as_group);
        sc.fs_group = Some(container_group.or(sc.run_as_group).unwrap_or(IMAGE_GID));
        sc.fs_group_change_policy
            .get_or_insert_with(|| "OnRootMismatch".into());
    }
    sc
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

/// The pods' topology spread constraints: `spec.topologySpreadConstraints` when set (an
/// empty list included); otherwise, with `spec.zoneAware`, one soft constraint spreading the
/// pods over the zones (`topologyKey: spec.zoneTopologyKey`, `maxSkew: 1`,
/// `whenUnsatisfiable: ScheduleAnyway`, the pods' selector labels); otherwise none, so a
/// cluster without `zoneAware` keeps its StatefulSet unchanged.
pub fn topology_spread_constraints(qc: &QdrantCluster) -> Option<Vec<TopologySpreadConstraint>> {
    let spec = &qc.spec;
    if spec.topology_spread_constraints.is_some() || !spec.zone_aware {
        return spec.topology_spread_constraints.clone();
    }
    Some(vec![TopologySpreadConstraint {
        max_skew: 1,
        topology_key: spec.zone_topology_key().to_owned(),
        when_unsatisfiable: "ScheduleAnyway".into(),
        label_selector: Some(LabelSelector {
            match_labels: Some(selector_labels(qc)),
            match_expressions: None,
        }),
        ..TopologySpreadConstraint::default()
    }])
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
    // The keys come from the operator's copy (`<cluster>-served-keys`), never straight from
    // the spec's Secrets: a rotated key reaches a pod only when the operator has made sure
    // every pod accepts the key it sends (`super::served_keys`).
    let names = Names::of(qc);
    let from_served = |name: &str, key: &str| EnvVar {
        name: name.into(),
        value_from: Some(EnvVarSource {
            secret_key_ref: Some(SecretKeySelector {
                name: names.served_keys_secret.clone(),
                key: key.into(),
                optional: Some(false),
            }),
            ..EnvVarSource::default()
        }),
        value: None,
    };
    for key in key_refs(qc) {
        match key.kind {
            KeyKind::ReadWrite => {
                env.push(from_served(key.kind.env_var(), served_keys::API_KEY));
                env.push(from_served(
                    served_keys::ALT_API_KEY_ENV,
                    served_keys::ALT_API_KEY,
                ));
            }
            KeyKind::ReadOnly => {
                env.push(from_served(
                    key.kind.env_var(),
                    served_keys::READ_ONLY_API_KEY,
                ));
            }
        }
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

fn qdrant_container(qc: &QdrantCluster, names: &Names, observed: &Observed) -> Container {
    let spec = &qc.spec;
    let claim = spec.data_volume_claim_template();
    // An adopted StatefulSet keeps where its data lives (the chart mounts the claim's root);
    // snapshots stay on their claim, else go to an emptyDir as the chart's do.
    let (storage, snapshots) = match &observed.adopted {
        Some(layout) => (
            mount(
                claim,
                STORAGE_PATH,
                layout.storage_sub_path.as_deref(),
                false,
            ),
            layout
                .snapshots
                .clone()
                .unwrap_or_else(|| mount(SNAPSHOTS_VOLUME, SNAPSHOTS_PATH, None, false)),
        ),
        None => (
            mount(claim, STORAGE_PATH, Some("storage"), false),
            mount(claim, SNAPSHOTS_PATH, Some("snapshots"), false),
        ),
    };
    let mut mounts = vec![
        storage,
        snapshots,
        mount(
            "config",
            &format!("/qdrant/config/{CONFIG_KEY}"),
            Some(CONFIG_KEY),
            true,
        ),
        mount("init", "/qdrant/init", None, false),
        mount("tmp", "/tmp", None, false),
        // The whole ConfigMap as files, for the start script's bootstrap peers.
        mount("config", CLUSTER_INFO_DIR, None, true),
    ];
    if names.client_tls || names.p2p_tls {
        // The whole Secret, no subPath: the kubelet refreshes the files when it changes.
        mounts.push(mount(TLS_VOLUME, TLS_DIR, None, true));
    }
    mounts.extend(spec.pod.extra_volume_mounts.iter().cloned());
    let port = |name: &str, p: i32| ContainerPort {
        name: Some(name.into()),
        container_port: p,
        protocol: Some("TCP".into()),
        ..ContainerPort::default()
    };
    Container {
        name: CONTAINER.into(),
        image: Some(
            observed
                .image
                .clone()
                .unwrap_or_else(|| spec.image.reference()),
        ),
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
        startup_probe: Some(http_probe("/healthz", 5, 120, names.client_tls)),
        // Ready once the peer joined consensus and its shards are loaded.
        readiness_probe: Some(http_probe("/readyz", 5, 3, names.client_tls)),
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
            name: Some(qc.spec.data_volume_claim_template().into()),
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
/// `observed.volume_claim_templates` (immutable once created) win over the spec's. With
/// `spec.tls` on: the serving Secret mounted read-only at `/qdrant/tls`, HTTPS probes when
/// client TLS is on, and `observed.tls_hash` on the pod template.
pub fn statefulset(qc: &QdrantCluster, config_hash: &str, observed: &Observed) -> StatefulSet {
    let spec = &qc.spec;
    let names = Names::of(qc);

    let mut pod_labels = spec.pod.labels.clone();
    pod_labels.extend(common_labels(qc));
    // The pods must keep matching an adopted StatefulSet's selector, which cannot change.
    let selector = match &observed.adopted {
        Some(layout) => {
            pod_labels.extend(layout.selector.clone());
            layout.selector.clone()
        }
        None => selector_labels(qc),
    };
    let mut pod_annotations = spec.pod.annotations.clone();
    pod_annotations.insert(CONFIG_HASH_ANNOTATION.into(), config_hash.into());
    if let Some(hash) = &observed.tls_hash {
        pod_annotations.insert(TLS_HASH_ANNOTATION.into(), hash.clone());
    }
    if let Some(hash) = &observed.keys_hash
        && !key_refs(qc).is_empty()
    {
        pod_annotations.insert(served_keys::KEYS_HASH_ANNOTATION.into(), hash.clone());
    }

    let mut containers = vec![qdrant_container(qc, &names, observed)];
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
    if names.client_tls || names.p2p_tls {
        volumes.push(Volume {
            name: TLS_VOLUME.into(),
            secret: Some(SecretVolumeSource {
                secret_name: Some(names.tls_secret.clone()),
                // Owner and group only: the kubelet gives the files the pod's fsGroup
                // (`DEFAULT_FS_GROUP` by default, which the Qdrant user is a member of), so
                // the private key is not world-readable.
                default_mode: Some(TLS_FILE_MODE),
                optional: Some(false),
                ..SecretVolumeSource::default()
            }),
            ..Volume::default()
        });
    }
    if observed
        .adopted
        .as_ref()
        .is_some_and(|l| l.snapshots.is_none())
    {
        volumes.push(Volume {
            name: SNAPSHOTS_VOLUME.into(),
            empty_dir: Some(EmptyDirVolumeSource::default()),
            ..Volume::default()
        });
    }
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
            pod_management_policy: Some(
                observed
                    .adopted
                    .as_ref()
                    .and_then(|l| l.pod_management_policy.clone())
                    .unwrap_or_else(|| "Parallel".into()),
            ),
            selector: LabelSelector {
                match_labels: Some(selector),
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
                    security_context: Some(pod_security_context(qc, &names)),
                    node_selector: spec.node_selector.clone(),
                    tolerations: spec.tolerations.clone(),
                    affinity: Some(
                        spec.affinity
                            .clone()
                            .unwrap_or_else(|| default_affinity(qc)),
                    ),
                    topology_spread_constraints: topology_spread_constraints(qc),
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
