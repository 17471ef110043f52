//! The `QdrantCluster` kind (short name `qc`): a Qdrant cluster in distributed mode, reconciled
//! by the cluster-controller into a ConfigMap, Secrets, Services, a StatefulSet and a
//! PodDisruptionBudget.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{
    Affinity, Container, EnvVar, LocalObjectReference, PodSecurityContext, ResourceRequirements,
    SecurityContext, Toleration, TopologySpreadConstraint, Volume, VolumeMount,
};
use kube::{CustomResource, KubeSchema};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::conditions::Condition;

/// The Qdrant version this operator is tested with; the default `spec.image.tag`.
pub const DEFAULT_QDRANT_TAG: &str = "v1.18.3";
/// Qdrant's REST port.
pub const HTTP_PORT: i32 = 6333;
/// Qdrant's gRPC port.
pub const GRPC_PORT: i32 = 6334;
/// Qdrant's peer-to-peer (Raft consensus and shard transfer) port.
pub const P2P_PORT: i32 = 6335;
/// Name of the StatefulSet's claim template of each peer's data volume (Qdrant's storage and
/// snapshots directories) in a cluster the operator created. An adopted StatefulSet keeps its
/// own ([`QdrantClusterSpec::data_volume_claim_template`]).
pub const DATA_VOLUME_CLAIM_TEMPLATE: &str = "storage";

/// Default of `spec.adoption.volumeClaimTemplate`: the claim template Qdrant's Helm chart gives
/// the data volume (its `persistence.storageVolumeName` default).
pub const HELM_DATA_VOLUME_CLAIM_TEMPLATE: &str = "qdrant-storage";

/// The PersistentVolumeClaim of pod `<cluster>-<ordinal>`'s data volume, as the StatefulSet
/// controller names it: `<template>-<cluster>-<ordinal>`, e.g. `storage-demo-0`, where
/// `template` is [`QdrantClusterSpec::data_volume_claim_template`].
pub fn data_claim_name(template: &str, cluster: &str, ordinal: u32) -> String {
    format!("{template}-{cluster}-{ordinal}")
}

/// Regular expression of a Kubernetes resource quantity (as `resource.Quantity` parses it).
pub const QUANTITY_PATTERN: &str = r"^(\+|-)?(([0-9]+(\.[0-9]*)?)|(\.[0-9]+))(([KMGTPE]i)|[numkMGTPE]|([eE](\+|-)?(([0-9]+(\.[0-9]*)?)|(\.[0-9]+))))?$";

/// Desired state of a Qdrant cluster.
// kube-derive takes one `printcolumn(...)` per column.
#[allow(clippy::duplicated_attributes)]
#[derive(CustomResource, KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[kube(
    group = "qdrant.operator.dev",
    version = "v1alpha1",
    kind = "QdrantCluster",
    namespaced,
    status = "QdrantClusterStatus",
    shortname = "qc",
    category = "qdrant",
    derive = "PartialEq",
    doc = "A Qdrant vector database cluster running in distributed mode (Raft consensus between peers), managed by the qdrant-operator cluster-controller.",
    scale(
        spec_replicas_path = ".spec.replicas",
        status_replicas_path = ".status.replicas",
        label_selector_path = ".status.selector"
    ),
    printcolumn(
        name = "Phase",
        type_ = "string",
        json_path = ".status.phase",
        description = "Lifecycle phase"
    ),
    printcolumn(
        name = "Ready",
        type_ = "string",
        json_path = ".status.readyReplicasText",
        description = "Ready pods / desired pods"
    ),
    printcolumn(
        name = "Version",
        type_ = "string",
        json_path = ".status.version",
        description = "Qdrant version (image tag) running"
    ),
    printcolumn(
        name = "Age",
        type_ = "date",
        json_path = ".metadata.creationTimestamp"
    )
)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = kube::core::Rule::new("(has(self.tls) && has(self.tls.p2p) && self.tls.p2p.enabled) == (has(oldSelf.tls) && has(oldSelf.tls.p2p) && oldSelf.tls.p2p.enabled)").message("spec.tls.p2p.enabled cannot change after creation: peers are registered in consensus under their http:// or https:// p2p URI"))]
#[x_kube(validation = kube::core::Rule::new("has(self.adoption) == has(oldSelf.adoption) && (!has(self.adoption) || self.adoption == oldSelf.adoption)").message("spec.adoption is set when the QdrantCluster is created and cannot change after: the StatefulSet keeps the adopted claim template and selector for its lifetime"))]
pub struct QdrantClusterSpec {
    /// Container image of Qdrant.
    #[serde(default)]
    pub image: ImageSpec,

    /// Number of Qdrant peers (pods). Each peer holds a share of the shards. Also the target of
    /// `kubectl scale`. Scaling down is safe: shard replicas on the leaving peers (highest
    /// ordinal first) are moved to the remaining ones and each peer leaves consensus before its
    /// pod goes; a scale-down that would lose data is refused (condition ScaleDownBlocked).
    #[serde(default = "default_replicas")]
    #[schemars(range(min = 1, max = 100))]
    pub replicas: i32,

    /// CPU and memory requests and limits of the Qdrant container.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resources: Option<ResourceRequirements>,

    /// Storage of each peer: one PersistentVolumeClaim per pod.
    #[serde(default)]
    pub persistence: PersistenceSpec,

    /// Free-form Qdrant configuration merged into config.yaml (see Qdrant's configuration
    /// reference). Keys the operator owns are refused: cluster.enabled, cluster.p2p.port,
    /// service.http_port, service.grpc_port, service.host, service.api_key,
    /// service.read_only_api_key, service.jwt_rbac, service.enable_tls, cluster.p2p.enable_tls,
    /// tls, storage.storage_path, storage.snapshots_path.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "crate::schema::preserve_unknown_object")]
    pub config: Option<serde_json::Value>,

    /// API keys. By default the operator generates a read-write key into a Secret.
    #[serde(default)]
    pub auth: AuthSpec,

    /// The client Service (REST 6333, gRPC 6334).
    #[serde(default)]
    pub service: ServiceSpec,

    /// PodDisruptionBudget of the peers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pod_disruption_budget: Option<PodDisruptionBudgetSpec>,

    /// NetworkPolicy of the peers (networking.k8s.io/v1). Off by default; recommended on
    /// wherever the cluster network enforces NetworkPolicies.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub network_policy: Option<NetworkPolicySpec>,

    /// Prometheus monitoring of the peers through the prometheus-operator. Off by default.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub monitoring: Option<MonitoringSpec>,

    /// Node selector of the pods.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node_selector: Option<BTreeMap<String, String>>,

    /// Tolerations of the pods.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tolerations: Option<Vec<Toleration>>,

    /// Affinity of the pods. When unset, the operator prefers (soft anti-affinity) to place
    /// peers on different nodes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub affinity: Option<Affinity>,

    /// Topology spread constraints of the pods.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub topology_spread_constraints: Option<Vec<TopologySpreadConstraint>>,

    /// PriorityClass of the pods.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub priority_class_name: Option<String>,

    /// Pod-level settings: metadata, security context, service account, environment, sidecars,
    /// init containers, extra volumes.
    #[serde(default)]
    pub pod: PodSpec,

    /// TLS for client traffic (REST and gRPC) and for peer-to-peer traffic (consensus and
    /// shard transfers). Off unless enabled.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls: Option<TlsSpec>,

    /// Shard rebalancing after a scale-up (opt-in).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rebalance: Option<RebalanceSpec>,

    /// How pods are restarted when the image or configuration changes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rollout: Option<RolloutSpec>,

    /// Zone-aware shard placement. When true, the operator reads the zone of each pod's node
    /// (the Node label named by `zoneTopologyKey`) and moves shard replicas
    /// (`move_shard`, one at a time) so that no shard with two or more replicas has all of
    /// them in one zone, as long as another zone has a peer; scale-down drains, the opt-in
    /// rebalance and peer recovery prefer target peers in zones the shard is not in yet. When
    /// `topologySpreadConstraints` is unset it also adds a soft topology spread of the pods
    /// over the zones (maxSkew 1, ScheduleAnyway). Progress is condition ZoneSpread and
    /// `status.peers[].zone`. Default false: no Node is read and the StatefulSet is unchanged.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub zone_aware: bool,

    /// The Node label whose value is a node's zone, read when `zoneAware` is true. Default
    /// `topology.kubernetes.io/zone`, the well-known label cloud providers set.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(
        length(min = 1, max = 317),
        regex(
            pattern = r"^([a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*/)?[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?$"
        )
    )]
    pub zone_topology_key: Option<String>,

    /// Take over a StatefulSet that already runs Qdrant, e.g. one installed with Qdrant's Helm
    /// chart (`helm install qdrant qdrant/qdrant` makes StatefulSet `qdrant`), instead of
    /// creating one. The takeover restarts no pod: the StatefulSet keeps its pods, claims,
    /// selector and peer identities, switches to the `OnDelete` update strategy in the same
    /// write, and gets this QdrantCluster as its controller owner. The operator then moves
    /// the pods onto its own pod template one at a time through the rollout health gate, and
    /// manages the cluster like one it created. Refused with condition `Adopted` False (and
    /// nothing written) when the StatefulSet cannot be taken over as it is: the reason names
    /// what differs. Set at creation; cannot change after.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub adoption: Option<AdoptionSpec>,
}

/// `spec.adoption`: which existing StatefulSet to take over, and where its data lives.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct AdoptionSpec {
    /// Name of the StatefulSet to take over, in the QdrantCluster's namespace. Must equal
    /// `metadata.name`: the operator names the StatefulSet, its pods (`<name>-<ordinal>`), the
    /// headless Service (`<name>-headless`) and the client Service after the QdrantCluster,
    /// which is how the peers already know each other. Qdrant's Helm chart uses the same names
    /// when the release name contains `qdrant` (or with `fullnameOverride`).
    #[schemars(length(min = 1, max = 52))]
    pub stateful_set_name: String,

    /// Name of the StatefulSet's claim template of the peers' data volume (the one mounted at
    /// `/qdrant/storage`). Claim templates cannot change, so the adopted one is kept and the
    /// claims `<template>-<name>-<ordinal>` keep their data. Default `qdrant-storage`, the
    /// Helm chart's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 63))]
    pub volume_claim_template: Option<String>,
}

/// Default of `spec.zoneTopologyKey`: the well-known Kubernetes zone label.
pub const DEFAULT_ZONE_TOPOLOGY_KEY: &str = "topology.kubernetes.io/zone";

/// TLS of a cluster. Qdrant serves one certificate on every TLS-enabled port (its `tls.cert`,
/// `tls.key`, `tls.ca_cert` settings), so one certificate source serves both client and p2p
/// traffic.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
pub struct TlsSpec {
    /// HTTPS for REST and TLS for gRPC (Qdrant's `service.enable_tls`). May be turned on or
    /// off later: the pods restart one at a time.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client: Option<TlsEndpointSpec>,
    /// TLS between peers (Qdrant's `cluster.p2p.enable_tls`); peers verify each other against
    /// `ca.crt`. Fixed at creation: peers are known to consensus by their p2p URI.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub p2p: Option<TlsEndpointSpec>,
    /// A `kubernetes.io/tls` Secret in the namespace with `tls.crt`, `tls.key` and `ca.crt`
    /// (what cert-manager writes). Its certificate must name the client Service and every
    /// pod through the headless Service (`<cluster>-<i>.<cluster>-headless.<ns>.svc`). Unset:
    /// the operator generates a CA into `<cluster>-ca` and a server certificate into
    /// `<cluster>-tls`, and renews the server certificate before it expires.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 253))]
    pub secret_name: Option<String>,
}

impl TlsSpec {
    /// True when client TLS is on.
    pub fn client_enabled(&self) -> bool {
        self.client.as_ref().is_some_and(|c| c.enabled)
    }
    /// True when p2p TLS is on.
    pub fn p2p_enabled(&self) -> bool {
        self.p2p.as_ref().is_some_and(|c| c.enabled)
    }
    /// True when any TLS is on (a certificate is needed).
    pub fn any_enabled(&self) -> bool {
        self.client_enabled() || self.p2p_enabled()
    }
}

/// One TLS-capable kind of traffic.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema, Default)]
#[serde(rename_all = "camelCase")]
pub struct TlsEndpointSpec {
    /// Turn TLS on for this traffic.
    #[serde(default)]
    pub enabled: bool,
}

/// Shard rebalancing after a scale-up.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema, Default)]
#[serde(rename_all = "camelCase")]
pub struct RebalanceSpec {
    /// Once every pod is Ready and no restart or scale-down runs, move shard replicas
    /// (`move_shard`, one transfer at a time per collection) until each peer holds an even
    /// share. Default false: new peers stay empty until collections are created or moved by
    /// hand.
    #[serde(default)]
    pub enabled: bool,
}

/// How pods are restarted.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema, Default)]
#[serde(rename_all = "camelCase")]
pub struct RolloutSpec {
    /// Seconds a restarted pod may take to be Ready again with `/readyz` passing before the
    /// rollout stops with condition Degraded (default 600). The rollout is never pushed past
    /// a pod that did not come back.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 30, max = 86400))]
    pub pod_ready_timeout_seconds: Option<i64>,
}

/// Default of `spec.rollout.podReadyTimeoutSeconds`.
pub const DEFAULT_POD_READY_TIMEOUT_SECONDS: i64 = 600;

impl QdrantClusterSpec {
    /// The TLS settings, defaulted (all off).
    pub fn tls(&self) -> TlsSpec {
        self.tls.clone().unwrap_or_default()
    }
    /// `spec.rebalance.enabled`.
    pub fn rebalance_enabled(&self) -> bool {
        self.rebalance.as_ref().is_some_and(|r| r.enabled)
    }
    /// `spec.zoneTopologyKey` or its default ([`DEFAULT_ZONE_TOPOLOGY_KEY`]).
    pub fn zone_topology_key(&self) -> &str {
        self.zone_topology_key
            .as_deref()
            .unwrap_or(DEFAULT_ZONE_TOPOLOGY_KEY)
    }
    /// The claim template of the peers' data volume: `spec.adoption.volumeClaimTemplate`
    /// (default [`HELM_DATA_VOLUME_CLAIM_TEMPLATE`]) for an adopted StatefulSet, else
    /// [`DATA_VOLUME_CLAIM_TEMPLATE`].
    pub fn data_volume_claim_template(&self) -> &str {
        match &self.adoption {
            Some(a) => a
                .volume_claim_template
                .as_deref()
                .unwrap_or(HELM_DATA_VOLUME_CLAIM_TEMPLATE),
            None => DATA_VOLUME_CLAIM_TEMPLATE,
        }
    }
    /// `spec.rollout.podReadyTimeoutSeconds` or its default.
    pub fn pod_ready_timeout_seconds(&self) -> i64 {
        self.rollout
            .as_ref()
            .and_then(|r| r.pod_ready_timeout_seconds)
            .unwrap_or(DEFAULT_POD_READY_TIMEOUT_SECONDS)
    }
}

fn default_replicas() -> i32 {
    1
}

/// Container image of Qdrant.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ImageSpec {
    /// Image repository.
    #[serde(default = "default_repository")]
    #[schemars(length(min = 1))]
    pub repository: String,
    /// Image tag; the Qdrant version. Defaults to the version this operator is tested with.
    #[serde(default = "default_tag")]
    #[schemars(length(min = 1))]
    pub tag: String,
    /// Image pull policy: Always, IfNotPresent or Never. Defaults to Kubernetes' choice.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pull_policy: Option<PullPolicy>,
    /// Secrets holding registry credentials to pull the image.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub pull_secrets: Vec<LocalObjectReference>,
}

impl Default for ImageSpec {
    fn default() -> Self {
        Self {
            repository: default_repository(),
            tag: default_tag(),
            pull_policy: None,
            pull_secrets: vec![],
        }
    }
}

impl ImageSpec {
    /// `repository:tag`.
    pub fn reference(&self) -> String {
        format!("{}:{}", self.repository, self.tag)
    }
}

fn default_repository() -> String {
    "qdrant/qdrant".into()
}
fn default_tag() -> String {
    DEFAULT_QDRANT_TAG.into()
}

/// Image pull policy.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, JsonSchema)]
#[schemars(transform = crate::schema::without_description)]
pub enum PullPolicy {
    /// Pull on every start.
    Always,
    /// Pull when the node lacks the image.
    IfNotPresent,
    /// Never pull.
    Never,
}

impl PullPolicy {
    /// The Kubernetes spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Always => "Always",
            Self::IfNotPresent => "IfNotPresent",
            Self::Never => "Never",
        }
    }
}

/// Storage of each peer.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct PersistenceSpec {
    /// Size of each peer's volume, a Kubernetes quantity such as `10Gi`. May grow later: the
    /// operator then patches every PersistentVolumeClaim (the StatefulSet's claim templates
    /// are immutable), which needs a StorageClass with `allowVolumeExpansion: true`. Shrinking
    /// is refused (condition VolumeExpansionBlocked).
    #[serde(default = "default_size")]
    #[schemars(length(max = 64))]
    #[schemars(regex(
        pattern = r"^(\+|-)?(([0-9]+(\.[0-9]*)?)|(\.[0-9]+))(([KMGTPE]i)|[numkMGTPE]|([eE](\+|-)?(([0-9]+(\.[0-9]*)?)|(\.[0-9]+))))?$"
    ))]
    #[x_kube(validation = kube::core::Rule::new("quantity(self).isGreaterThan(quantity('0'))").message("persistence.size must be greater than zero"))]
    pub size: String,
    /// StorageClass of the volumes; the cluster default when unset. Immutable.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 253))]
    #[x_kube(validation = kube::core::Rule::new("self == oldSelf").message("persistence.storageClassName is immutable"))]
    pub storage_class_name: Option<String>,
    /// Access modes of the volumes.
    #[serde(default = "default_access_modes")]
    #[schemars(length(min = 1))]
    pub access_modes: Vec<AccessMode>,
    /// Keep the PersistentVolumeClaims when the cluster is deleted or scaled down (default
    /// true): data outlives the QdrantCluster unless you opt out.
    #[serde(default = "default_true")]
    pub retain_on_delete: bool,
}

impl Default for PersistenceSpec {
    fn default() -> Self {
        Self {
            size: default_size(),
            storage_class_name: None,
            access_modes: default_access_modes(),
            retain_on_delete: true,
        }
    }
}

fn default_size() -> String {
    "10Gi".into()
}
fn default_access_modes() -> Vec<AccessMode> {
    vec![AccessMode::ReadWriteOnce]
}
fn default_true() -> bool {
    true
}

/// Access mode of a PersistentVolumeClaim.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, JsonSchema)]
pub enum AccessMode {
    /// Mounted read-write by a single node.
    ReadWriteOnce,
    /// Mounted read-write by a single pod.
    ReadWriteOncePod,
    /// Mounted read-only by many nodes.
    ReadOnlyMany,
    /// Mounted read-write by many nodes.
    ReadWriteMany,
}

impl AccessMode {
    /// The Kubernetes spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::ReadWriteOnce => "ReadWriteOnce",
            Self::ReadWriteOncePod => "ReadWriteOncePod",
            Self::ReadOnlyMany => "ReadOnlyMany",
            Self::ReadWriteMany => "ReadWriteMany",
        }
    }
}

/// API keys of the cluster. Keys are passed to Qdrant through environment variables from
/// Secrets; they never appear in a ConfigMap, in status or in logs.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = kube::core::Rule::new("!has(self.readOnlyApiKey) || has(self.apiKey)").message("auth.readOnlyApiKey requires auth.apiKey"))]
pub struct AuthSpec {
    /// The read-write API key (`service.api_key`). Omit `auth.apiKey` to run without
    /// authentication (not recommended). The pods read it from the operator's copy, Secret
    /// `<cluster>-served-keys`, which follows a rotated key without a refused request.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub api_key: Option<KeySource>,
    /// The read-only API key (`service.read_only_api_key`). Optional. Qdrant has no second
    /// read-only key: a rotated read-only key rolls the pods once, and read-only clients see
    /// the old key refused by the pods already restarted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub read_only_api_key: Option<KeySource>,
    /// After a rotated read-write key reached every pod, how long the previous key stays
    /// accepted (as Qdrant's `alt_api_key`) before a second roll drops it: the time your clients
    /// have to switch to the new key. Default 3600 (1 hour); 0 drops it at once (a leaked key).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0, max = 2592000))]
    pub old_key_grace_period_seconds: Option<i64>,
}

/// Default of `spec.auth.oldKeyGracePeriodSeconds`.
pub const DEFAULT_OLD_KEY_GRACE_PERIOD_SECONDS: i64 = 3600;

impl AuthSpec {
    /// `spec.auth.oldKeyGracePeriodSeconds` or its default, as a duration (negative values,
    /// which the schema refuses, count as 0).
    pub fn old_key_grace_period(&self) -> std::time::Duration {
        let secs = self
            .old_key_grace_period_seconds
            .unwrap_or(DEFAULT_OLD_KEY_GRACE_PERIOD_SECONDS);
        std::time::Duration::from_secs(u64::try_from(secs).unwrap_or(0))
    }
}

impl Default for AuthSpec {
    fn default() -> Self {
        Self {
            api_key: Some(KeySource::generated()),
            read_only_api_key: None,
            old_key_grace_period_seconds: None,
        }
    }
}

/// Where a key comes from: generated by the operator into a Secret it owns, or read from a key
/// of an existing Secret in the namespace. Exactly one of `generate: true` or `secretKeyRef`.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = kube::core::Rule::new("(has(self.generate) && self.generate) != has(self.secretKeyRef)").message("set exactly one of generate: true or secretKeyRef"))]
pub struct KeySource {
    /// Generate a random key into a Secret named `<cluster>-api-key` (or `<cluster>-read-only-api-key`)
    /// with key `api-key`. The value is created once and never changed by the operator; to
    /// rotate it, delete that Secret (a new key is generated) or write a new value into it.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub generate: bool,
    /// Use this key of an existing Secret in the cluster's namespace. The Secret is watched: a
    /// new value rolls the pods one at a time, the previous read-write key staying accepted
    /// (Qdrant's `alt_api_key`) until every pod runs the new one, then dropped by a second
    /// roll.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret_key_ref: Option<SecretKeyRef>,
}

impl KeySource {
    /// A key the operator generates.
    pub fn generated() -> Self {
        Self {
            generate: true,
            secret_key_ref: None,
        }
    }
}

/// A key of a Secret in the same namespace.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct SecretKeyRef {
    /// Name of the Secret.
    #[schemars(length(min = 1, max = 253))]
    pub name: String,
    /// Key within the Secret's data.
    #[schemars(length(min = 1))]
    pub key: String,
}

/// The client Service.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = kube::core::Rule::new("!has(self.loadBalancerSourceRanges) || size(self.loadBalancerSourceRanges) == 0 || (has(self.type) && self.type == 'LoadBalancer')").message("service.loadBalancerSourceRanges requires service.type LoadBalancer"))]
pub struct ServiceSpec {
    /// Service type: ClusterIP (default), NodePort or LoadBalancer.
    #[serde(default, rename = "type")]
    pub type_: ServiceType,
    /// Annotations of the client Service (e.g. for a cloud load balancer).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,
    /// Labels of the client Service.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, String>,
    /// CIDRs allowed to reach a LoadBalancer Service.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 64))]
    pub load_balancer_source_ranges: Vec<String>,
}

/// Kubernetes Service type.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, JsonSchema, Default)]
pub enum ServiceType {
    /// Reachable inside the cluster only.
    #[default]
    ClusterIP,
    /// Exposed on each node's IP at a static port.
    NodePort,
    /// Exposed through a cloud load balancer.
    LoadBalancer,
}

impl ServiceType {
    /// The Kubernetes spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::ClusterIP => "ClusterIP",
            Self::NodePort => "NodePort",
            Self::LoadBalancer => "LoadBalancer",
        }
    }
}

/// NetworkPolicy `<cluster>` of the peers: with it, the p2p port 6335 accepts only the
/// cluster's own pods, and REST (6333) and gRPC (6334) accept only `allowedClients` and the
/// operator's namespace (its controllers create collections, take backups and read
/// `/cluster`). Other ingress to the pods is denied; egress is not restricted.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema, Default)]
#[serde(rename_all = "camelCase")]
pub struct NetworkPolicySpec {
    /// Create the NetworkPolicy (default false). Turning it off deletes the one the operator
    /// created.
    #[serde(default)]
    pub enabled: bool,
    /// Who else may reach REST and gRPC: NetworkPolicy peers, as in a NetworkPolicy's
    /// `ingress[].from` (`podSelector` in the cluster's namespace, `namespaceSelector`, both
    /// together, or `ipBlock`). Empty: only the operator's namespace. Prometheus scraping
    /// `/metrics` on 6333 needs an entry too.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub allowed_clients: Vec<k8s_openapi::api::networking::v1::NetworkPolicyPeer>,
}

/// Prometheus monitoring (`monitoring.coreos.com/v1`, the prometheus-operator's CRDs): a
/// PodMonitor `<cluster>` scraping every peer's `/metrics` (with the read-only key when the
/// cluster has one, else the operator's key; over https with client TLS), a PrometheusRule
/// `<cluster>` with alerts (peer down, consensus not working, pending consensus operations,
/// shard replicas not Active, a transfer stuck, disk and memory near the limit), and a Grafana
/// dashboard ConfigMap `<cluster>-dashboard` (label `grafana_dashboard: "1"`). Without the
/// CRDs, condition MonitoringReady is False (reason `PrometheusOperatorMissing`).
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema, Default)]
#[serde(rename_all = "camelCase")]
pub struct MonitoringSpec {
    /// Create the monitoring objects (default false). Turning it off deletes them.
    #[serde(default)]
    pub enabled: bool,
    /// Scrape interval, a Prometheus duration (default `30s`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = r"^[0-9]+(ms|s|m|h)$"))]
    pub interval: Option<String>,
    /// Labels added to the PodMonitor and PrometheusRule, e.g. `release: kube-prometheus-stack`
    /// when Prometheus selects monitors by label.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, String>,
}

/// PodDisruptionBudget of the peers (policy/v1).
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct PodDisruptionBudgetSpec {
    /// Create the budget. Defaults to true when replicas >= 2.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub enabled: Option<bool>,
    /// Peers that may be voluntarily disrupted at once (default 1).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1))]
    pub max_unavailable: Option<i32>,
}

/// Pod-level settings.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema, Default)]
#[serde(rename_all = "camelCase")]
pub struct PodSpec {
    /// Extra annotations of the pods.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,
    /// Extra labels of the pods (the operator's selector labels cannot be overridden).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, String>,
    /// Pod security context. Defaults to one that meets the `restricted` Pod Security
    /// Standard (non-root uid 1000, fsGroup 3000, RuntimeDefault seccomp).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub security_context: Option<PodSecurityContext>,
    /// Security context of the Qdrant container. Defaults to `restricted`-compatible (no
    /// privilege escalation, all capabilities dropped, read-only root filesystem).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub container_security_context: Option<SecurityContext>,
    /// ServiceAccount of the pods. Without it, no API token is mounted (Qdrant does not use
    /// the Kubernetes API); with it, the token is mounted for sidecars that need one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service_account_name: Option<String>,
    /// Extra environment variables of the Qdrant container (e.g. `QDRANT__LOG_LEVEL`). Names
    /// the operator sets (POD_NAME, QDRANT_INIT_FILE_PATH) are refused, and so is any
    /// `QDRANT__...` variable setting a config key the operator owns (Qdrant reads
    /// `QDRANT__A__B` as `a.b`: `QDRANT__CLUSTER__ENABLED`, `QDRANT__SERVICE__HTTP_PORT`,
    /// `QDRANT__SERVICE__API_KEY`, ...).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub env: Vec<EnvVar>,
    /// Extra containers running beside Qdrant.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub sidecars: Vec<Container>,
    /// Containers run before Qdrant starts.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub init_containers: Vec<Container>,
    /// Extra volumes of the pods.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub extra_volumes: Vec<Volume>,
    /// Extra volume mounts of the Qdrant container.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub extra_volume_mounts: Vec<VolumeMount>,
}

/// Lifecycle phase of a QdrantCluster, for humans; automation reads the conditions.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, JsonSchema, Default)]
pub enum ClusterPhase {
    /// Not reconciled yet.
    #[default]
    Pending,
    /// First start: pods are coming up.
    Creating,
    /// All peers ready.
    Running,
    /// The number of peers is changing.
    Scaling,
    /// Pods are being replaced with a new version or configuration.
    Upgrading,
    /// Running with fewer ready peers than desired.
    Degraded,
    /// The spec cannot be applied (see the Ready condition's message).
    Failed,
    /// The pause annotation is set.
    Paused,
}

/// Observed state of a Qdrant cluster. Written by the cluster-controller only.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema, Default)]
#[serde(rename_all = "camelCase")]
pub struct QdrantClusterStatus {
    /// The `metadata.generation` last reconciled.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// Lifecycle phase, for humans.
    #[serde(default)]
    pub phase: ClusterPhase,
    /// Conditions: Ready, Progressing, Degraded, Paused.
    #[serde(default)]
    #[schemars(schema_with = "crate::conditions::conditions_schema")]
    pub conditions: Vec<Condition>,
    /// Pods of the StatefulSet.
    #[serde(default)]
    pub replicas: i32,
    /// Pods that pass their readiness probe.
    #[serde(default)]
    pub ready_replicas: i32,
    /// `ready/desired`, for `kubectl get`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ready_replicas_text: Option<String>,
    /// Qdrant version (image tag) of the running pods.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
    /// Label selector of the pods, for the scale subresource.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub selector: Option<String>,
    /// In-cluster endpoints of the client Service.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub endpoints: Option<Endpoints>,
    /// Where the API keys the pods accept now are: Secret `<name>-served-keys`, keys
    /// `operator-api-key` (during a key rotation the previous key until every pod runs the new
    /// one) and `read-only-api-key`. The collection and backup controllers read them here.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub auth: Option<AuthStatus>,
    /// Qdrant peers as Qdrant reports them (`GET /cluster` on each pod).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub peers: Vec<PeerStatus>,
    /// Peer id of the Raft leader.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub raft_leader: Option<u64>,
    /// A rolling restart or upgrade in progress (absent when every pod runs the current
    /// revision).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rollout: Option<RolloutStatus>,
    /// Shard moves of an opt-in rebalance (absent when balanced or disabled).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rebalance: Option<RebalanceStatus>,
    /// Volume expansion of the PersistentVolumeClaims (absent when every claim has the
    /// requested size).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub volumes: Option<VolumesStatus>,
    /// TLS in use: where the CA certificate is, for clients and the other controllers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls: Option<TlsStatus>,
}

/// A rolling restart or upgrade.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema, Default)]
#[serde(rename_all = "camelCase")]
pub struct RolloutStatus {
    /// The StatefulSet revision (`status.updateRevision`) every pod is being moved to.
    pub update_revision: String,
    /// Pods already at the update revision.
    #[serde(default)]
    pub updated_replicas: i32,
    /// Image tag the pods run before the rollout, when the rollout is an upgrade.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub from_version: Option<String>,
    /// Image tag the rollout moves to, when the rollout is an upgrade.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub to_version: Option<String>,
    /// The pod deleted last by the operator, until it is back and healthy.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub restarting_pod: Option<String>,
    /// When the operator deleted `restartingPod` (RFC 3339).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub restarted_at: Option<String>,
    /// What the rollout does or waits for now.
    #[serde(default)]
    pub message: String,
}

/// One shard replica move.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ShardMove {
    /// Collection name.
    pub collection: String,
    /// Shard id.
    pub shard_id: u32,
    /// Peer id the replica leaves.
    pub from_peer_id: u64,
    /// Peer id the replica goes to.
    pub to_peer_id: u64,
}

/// Progress of a rebalance.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema, Default)]
#[serde(rename_all = "camelCase")]
pub struct RebalanceStatus {
    /// Moves issued by the last reconcile (at most one per collection).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub planned: Vec<ShardMove>,
    /// Transfers Qdrant reports as running (`shard_transfers`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub active: Vec<ShardMove>,
    /// What the rebalance does or waits for now.
    #[serde(default)]
    pub message: String,
}

/// Volume expansion progress.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema, Default)]
#[serde(rename_all = "camelCase")]
pub struct VolumesStatus {
    /// The size asked for (`spec.persistence.size`).
    pub requested_size: String,
    /// Claims not yet at the requested size.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub pending: Vec<VolumeClaimStatus>,
    /// What the expansion does or waits for, or why it cannot proceed.
    #[serde(default)]
    pub message: String,
}

/// One PersistentVolumeClaim being expanded.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema, Default)]
#[serde(rename_all = "camelCase")]
pub struct VolumeClaimStatus {
    /// Claim name.
    pub name: String,
    /// `status.capacity.storage` of the claim, when reported.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub capacity: Option<String>,
    /// What the claim waits for (e.g. `Resizing`, `FileSystemResizePending`).
    #[serde(default)]
    pub state: String,
}

/// TLS in use.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema, Default)]
#[serde(rename_all = "camelCase")]
pub struct TlsStatus {
    /// Client traffic (REST and gRPC) is TLS.
    #[serde(default)]
    pub client: bool,
    /// Peer-to-peer traffic is TLS.
    #[serde(default)]
    pub p2p: bool,
    /// The CA certificate clients verify the server against (`ca.crt` of the serving Secret).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ca_secret_ref: Option<SecretKeyRef>,
    /// The Secret whose `tls.crt` and `tls.key` Qdrant serves.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub certificate_secret_name: Option<String>,
    /// Expiry of the served certificate (RFC 3339), when the operator generated it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub not_after: Option<String>,
}

/// In-cluster endpoints of the client Service.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Endpoints {
    /// REST endpoint, e.g. `http://my-cluster.ns.svc:6333`.
    pub http: String,
    /// gRPC endpoint, e.g. `http://my-cluster.ns.svc:6334`.
    pub grpc: String,
}

/// Where the cluster's API keys are.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct AuthStatus {
    /// The read-write key.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub api_key_secret_ref: Option<SecretKeyRef>,
    /// The read-only key.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub read_only_api_key_secret_ref: Option<SecretKeyRef>,
}

/// One Qdrant peer.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct PeerStatus {
    /// Pod running the peer.
    pub pod: String,
    /// Qdrant peer id.
    pub peer_id: u64,
    /// The peer's p2p URI.
    pub uri: String,
    /// REST URL of this peer's pod (through the headless Service), for controllers that must
    /// talk to one peer, e.g. for shard snapshots.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    /// Raft role as the peer reports it (Leader, Follower, Candidate, PreCandidate), when known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub raft_role: Option<String>,
    /// Zone of the pod's node (the value of its `spec.zoneTopologyKey` label), when
    /// `spec.zoneAware` is true and the node has that label.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub zone: Option<String>,
}
