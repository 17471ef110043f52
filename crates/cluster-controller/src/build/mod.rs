//! Build: the desired children of a QdrantCluster, each a pure function of the spec (no
//! network). One module per child resource.

pub mod config;
pub mod monitoring;
pub mod network_policy;
pub mod pdb;
pub mod secret;
pub mod served_keys;
pub mod service;
pub mod statefulset;
pub mod tls;

use std::collections::BTreeMap;

use api_types::QdrantCluster;
use k8s_openapi::{
    api::{
        apps::v1::StatefulSet,
        core::v1::{ConfigMap, PersistentVolumeClaim, Service},
        policy::v1::PodDisruptionBudget,
    },
    apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference},
};
use kube::{Resource, ResourceExt};

/// Label keys and values the operator puts on every child.
pub mod labels {
    /// `app.kubernetes.io/name`, always `qdrant`.
    pub const NAME: &str = "app.kubernetes.io/name";
    /// `app.kubernetes.io/instance`: the QdrantCluster's name.
    pub const INSTANCE: &str = "app.kubernetes.io/instance";
    /// `app.kubernetes.io/component`.
    pub const COMPONENT: &str = "app.kubernetes.io/component";
    /// `app.kubernetes.io/managed-by`.
    pub const MANAGED_BY: &str = "app.kubernetes.io/managed-by";
    /// Our managed-by value.
    pub const MANAGER: &str = "qdrant-operator";
}

/// Annotation on the pod template holding the SHA-256 of config.yaml: a config change
/// changes the template, which rolls the pods.
pub const CONFIG_HASH_ANNOTATION: &str = "qdrant.operator.dev/config-hash";

/// Names of every child of one cluster, derived from `metadata.name`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Names {
    /// The QdrantCluster's name; also the StatefulSet, client Service and PDB name.
    pub cluster: String,
    /// Namespace of the cluster and all children.
    pub namespace: String,
    /// Headless Service for peer DNS: `<cluster>-headless`.
    pub headless: String,
    /// ConfigMap with config.yaml: `<cluster>-config`.
    pub config_map: String,
    /// Generated read-write key Secret: `<cluster>-api-key`.
    pub api_key_secret: String,
    /// Generated read-only key Secret: `<cluster>-read-only-api-key`.
    pub read_only_api_key_secret: String,
    /// The keys the pods read ([`served_keys`]): `<cluster>-served-keys`.
    pub served_keys_secret: String,
    /// Generated CA Secret (`spec.tls` without `secretName`): `<cluster>-ca`.
    pub ca_secret: String,
    /// The Secret whose `tls.crt`, `tls.key` and `ca.crt` Qdrant serves:
    /// `spec.tls.secretName`, or the generated `<cluster>-tls`.
    pub tls_secret: String,
    /// `spec.tls.client.enabled`: REST and gRPC are served over TLS (`https://`).
    pub client_tls: bool,
    /// `spec.tls.p2p.enabled`: peers talk over TLS (`https://` p2p URIs).
    pub p2p_tls: bool,
}

impl Names {
    /// Names for `qc`; the namespace defaults to `default` (as kubectl does for a file
    /// without one).
    pub fn of(qc: &QdrantCluster) -> Self {
        let cluster = qc.name_any();
        let tls = qc.spec.tls();
        Self {
            namespace: qc.namespace().unwrap_or_else(|| "default".into()),
            headless: format!("{cluster}-headless"),
            config_map: format!("{cluster}-config"),
            api_key_secret: format!("{cluster}-api-key"),
            read_only_api_key_secret: format!("{cluster}-read-only-api-key"),
            served_keys_secret: format!("{cluster}-served-keys"),
            ca_secret: format!("{cluster}-ca"),
            tls_secret: tls
                .secret_name
                .clone()
                .unwrap_or_else(|| format!("{cluster}-tls")),
            client_tls: tls.client_enabled(),
            p2p_tls: tls.p2p_enabled(),
            cluster,
        }
    }

    /// `https` when client TLS is on (`spec.tls.client.enabled`), else `http`.
    pub fn client_scheme(&self) -> &'static str {
        if self.client_tls { "https" } else { "http" }
    }

    /// `https` when p2p TLS is on (`spec.tls.p2p.enabled`), else `http`.
    pub fn p2p_scheme(&self) -> &'static str {
        if self.p2p_tls { "https" } else { "http" }
    }

    /// The p2p URI of pod `ordinal` through the headless Service,
    /// e.g. `http://demo-0.demo-headless.ns.svc:6335` (`https://` with p2p TLS).
    pub fn peer_uri(&self, ordinal: u32) -> String {
        format!(
            "{}://{}-{ordinal}.{}.{}.svc:{}",
            self.p2p_scheme(),
            self.cluster,
            self.headless,
            self.namespace,
            api_types::cluster::P2P_PORT
        )
    }

    /// The ordinal of pod `<cluster>-<ordinal>` from its name; `None` for another name.
    pub fn pod_ordinal(&self, pod: &str) -> Option<u32> {
        pod.strip_prefix(&self.cluster)?
            .strip_prefix('-')?
            .parse()
            .ok()
    }

    /// The REST URL of pod `ordinal` through the headless Service,
    /// e.g. `http://demo-0.demo-headless.ns.svc:6333` (`https://` with client TLS).
    pub fn pod_http_url(&self, ordinal: u32) -> String {
        format!(
            "{}://{}-{ordinal}.{}.{}.svc:{}",
            self.client_scheme(),
            self.cluster,
            self.headless,
            self.namespace,
            api_types::cluster::HTTP_PORT
        )
    }
}

/// Labels that select the cluster's pods (stable for the cluster's lifetime).
pub fn selector_labels(qc: &QdrantCluster) -> BTreeMap<String, String> {
    BTreeMap::from([
        (labels::NAME.to_string(), "qdrant".to_string()),
        (labels::INSTANCE.to_string(), qc.name_any()),
    ])
}

/// [`selector_labels`] as a label selector string, `k1=v1,k2=v2`: for listing the pods and
/// for `status.selector` (the scale subresource).
pub fn selector_string(qc: &QdrantCluster) -> String {
    selector_labels(qc)
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join(",")
}

/// Labels of every child: the selector labels plus component and managed-by.
pub fn common_labels(qc: &QdrantCluster) -> BTreeMap<String, String> {
    let mut l = selector_labels(qc);
    l.insert(labels::COMPONENT.into(), "database".into());
    l.insert(labels::MANAGED_BY.into(), labels::MANAGER.into());
    l
}

/// The controller owner reference to `qc`, or `None` when `qc` has no uid (a file given to
/// `render` that never reached an API server).
pub fn owner_reference(qc: &QdrantCluster) -> Option<OwnerReference> {
    qc.controller_owner_ref(&())
}

/// Metadata of a child named `name`: namespace, common labels, owner reference.
pub fn child_meta(qc: &QdrantCluster, name: &str) -> ObjectMeta {
    ObjectMeta {
        name: Some(name.to_string()),
        namespace: Some(Names::of(qc).namespace),
        labels: Some(common_labels(qc)),
        owner_references: owner_reference(qc).map(|o| vec![o]),
        ..ObjectMeta::default()
    }
}

/// What the cluster-controller reads from the cluster before building (dereference step).
#[derive(Debug, Clone, Default)]
pub struct Observed {
    /// `volumeClaimTemplates` of the live StatefulSet: immutable in Kubernetes, so the
    /// desired StatefulSet keeps them once created.
    pub volume_claim_templates: Option<Vec<PersistentVolumeClaim>>,
    /// Pods the StatefulSet keeps while a scale-down drains the leaving peers (more than
    /// `spec.replicas` until the planner lets it shrink); `None` means `spec.replicas`.
    pub replicas: Option<i32>,
    /// The image the pods keep instead of `spec.image` (a refused downgrade keeps the live
    /// StatefulSet's image); `None` means `spec.image`.
    pub image: Option<String>,
    /// SHA-256 (hex) of the served certificate and CA ([`tls::certificate_hash`]) when TLS is
    /// on and the serving Secret was read; goes on the pod template as
    /// [`tls::TLS_HASH_ANNOTATION`] so a renewed certificate rolls the pods.
    pub tls_hash: Option<String>,
    /// [`served_keys::keys_hash`] of the served keys, when `<cluster>-served-keys` was read or
    /// written; goes on the pod template as [`served_keys::KEYS_HASH_ANNOTATION`] so a rotated
    /// key rolls the pods. `None` (e.g. `render`) leaves the annotation out.
    pub keys_hash: Option<String>,
    /// The namespace the operator's controllers run in (`POD_NAMESPACE`), which the
    /// NetworkPolicy lets reach REST and gRPC; `None` means [`DEFAULT_OPERATOR_NAMESPACE`].
    pub operator_namespace: Option<String>,
    /// With `spec.adoption`: what the adopted StatefulSet keeps (selector, pod management
    /// policy, where the data and snapshots live), from `crate::adoption::layout`; `None`
    /// for a cluster the operator created.
    pub adopted: Option<AdoptedLayout>,
}

/// What the build keeps of an adopted StatefulSet: the fields Kubernetes does not let
/// change, and where the data lives.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct AdoptedLayout {
    /// The live `selector.matchLabels` (they also go on the pod template).
    pub selector: BTreeMap<String, String>,
    /// The live `podManagementPolicy`.
    pub pod_management_policy: Option<String>,
    /// `subPath` of the data mount at `/qdrant/storage` (the chart mounts the claim's root).
    pub storage_sub_path: Option<String>,
    /// The mount at `/qdrant/snapshots` when it is one of the claim templates (the chart's
    /// `snapshotPersistence`); `None`: snapshots go to an emptyDir, as the chart's do without
    /// it.
    pub snapshots: Option<k8s_openapi::api::core::v1::VolumeMount>,
}

/// The namespace the install manifests put the operator in.
pub const DEFAULT_OPERATOR_NAMESPACE: &str = "qdrant-operator";

/// Every desired child of a cluster, ready to apply.
#[derive(Debug, Clone)]
pub struct Desired {
    /// config.yaml in a ConfigMap.
    pub config_map: ConfigMap,
    /// Headless Service for peer DNS.
    pub headless_service: Service,
    /// Client Service.
    pub client_service: Service,
    /// The StatefulSet of peers.
    pub statefulset: StatefulSet,
    /// PodDisruptionBudget; `None` when disabled (an existing one is then deleted).
    pub pdb: Option<PodDisruptionBudget>,
    /// NetworkPolicy; `None` unless `spec.networkPolicy.enabled` (an existing one is then
    /// deleted).
    pub network_policy: Option<k8s_openapi::api::networking::v1::NetworkPolicy>,
}

/// Builds every desired child of `qc` (validated beforehand) from its spec and what was
/// observed. Pure; generated Secrets are built separately ([`secret`]) because their value is
/// random and created only once.
///
/// Errors: [`config::ConfigError`] when `spec.config` cannot be merged or serialized.
pub fn build(qc: &QdrantCluster, observed: &Observed) -> Result<Desired, config::ConfigError> {
    let config = config::config_yaml(&qc.spec)?;
    let config_hash = config::hash(&config);
    Ok(Desired {
        config_map: config::config_map(qc, config),
        headless_service: service::headless(qc),
        client_service: service::client(qc),
        statefulset: statefulset::statefulset(qc, &config_hash, observed),
        pdb: pdb::pdb(qc),
        network_policy: network_policy::network_policy(
            qc,
            observed
                .operator_namespace
                .as_deref()
                .unwrap_or(DEFAULT_OPERATOR_NAMESPACE),
        ),
    })
}
