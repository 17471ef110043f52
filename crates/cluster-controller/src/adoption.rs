//! Taking over an existing StatefulSet (`spec.adoption`), e.g. one installed with Qdrant's Helm
//! chart, without restarting a pod or losing a volume.
//!
//! [`check`] (pure) decides, before anything is applied, whether the live StatefulSet
//! `<cluster>` is this QdrantCluster's own ([`Verdict::Own`]), one to take over in this
//! reconcile ([`Verdict::TakeOver`]) or one that must be left alone ([`Verdict::Refused`]).
//! A StatefulSet the QdrantCluster does not control is never written without
//! `spec.adoption`: an operator that silently seized a Helm release's StatefulSet would
//! restart its pods on a template the release never had.
//!
//! What cannot change on a StatefulSet (selector, `serviceName`, claim templates,
//! `podManagementPolicy`) is kept: [`layout`] reads it from the live object for the build.
//! The peers keep their identities because every pod keeps its name, its claim and its
//! storage directory (the mount's `subPath`): Qdrant reads its peer id and Raft state from
//! there, and a p2p URI that changes form on restart (the chart's
//! `http://<pod>.<cluster>-headless:6335`, the operator's `...<ns>.svc:6335`) is updated in
//! consensus by the peer itself.
//!
//! The takeover write ([`take_over`]) replaces the StatefulSet (`PUT`, with its
//! `resourceVersion`) instead of applying it: server-side apply would keep every field the
//! chart's manager set and ours omits (the chart's ConfigMap mounts, its `production.yaml`,
//! which Qdrant reads after `config.yaml`, its probes), merging two pod templates into one.
//! The same write sets the `OnDelete` update strategy, so Kubernetes replaces no pod; the
//! reconcile that takes over runs no disruptive operation, and later reconciles move the pods
//! onto the operator's template one at a time through the rollout health gate.

use api_types::{
    QdrantCluster,
    conditions::{ConditionStatus, find_condition},
};
use k8s_openapi::{
    api::{
        apps::v1::StatefulSet,
        core::v1::{Container, PodSpec, VolumeMount},
    },
    apimachinery::pkg::apis::meta::v1::ManagedFieldsEntry,
};
use kube::{Api, ResourceExt, api::PostParams};
use reconcile_lib::{context::Shared, error::Result};

use crate::{
    build::{
        AdoptedLayout, Names,
        config::{SNAPSHOTS_PATH, STORAGE_PATH},
        selector_labels,
        statefulset::{DEFAULT_UID, pod_security_context},
    },
    vocabulary::{reasons, types},
};

/// Where the Helm chart mounts its API key file (`service.api_key` as `local.yaml`).
const HELM_API_KEY_FILE: &str = "/qdrant/config/local.yaml";

/// What to do with the live StatefulSet `<cluster>`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// None exists yet (and none is to be adopted), or this QdrantCluster controls it: build
    /// and apply as usual.
    Own,
    /// `spec.adoption` names it, it is controlled by nobody and its shape fits: replace it
    /// with the desired one in this reconcile ([`take_over`]), which then runs no
    /// disruptive operation. The message is for the Normal event `Adopted`.
    TakeOver(String),
    /// Leave it alone: nothing is applied. Reason and message for conditions Adopted and
    /// Ready (the message names the field to change).
    Refused {
        /// One of [`reasons::STATEFULSET_NOT_FOUND`], [`reasons::STATEFULSET_NOT_OWNED`],
        /// [`reasons::OWNED_BY_ANOTHER_CONTROLLER`], [`reasons::SHAPE_MISMATCH`].
        reason: &'static str,
        /// What differs and what to do.
        message: String,
    },
}

/// Decides what to do with `live` (the StatefulSet `<cluster>` before apply; `None` when it
/// does not exist). Reads `spec.adoption`, `spec.replicas`, `spec.auth.apiKey`, `spec.tls`,
/// the stored condition Adopted, and of the live object its owner references, `spec.replicas`,
/// `serviceName`, selector, claim templates and the Qdrant container's mounts, probes and
/// security context. Pure.
pub fn check(qc: &QdrantCluster, names: &Names, live: Option<&StatefulSet>) -> Verdict {
    let adoption = qc.spec.adoption.as_ref();
    let Some(live) = live else {
        // Once taken over, a deleted StatefulSet is recreated like any other child (on the
        // adopted claim template, so the retained claims are used again).
        return match adoption {
            Some(a) if !was_adopted(qc) => Verdict::Refused {
                reason: reasons::STATEFULSET_NOT_FOUND,
                message: format!(
                    "spec.adoption.statefulSetName {}: no StatefulSet {} in namespace {} to take over; nothing is created until it exists",
                    a.stateful_set_name, a.stateful_set_name, names.namespace
                ),
            },
            _ => Verdict::Own,
        };
    };
    let uid = qc.uid();
    let controller = live
        .owner_references()
        .iter()
        .find(|o| o.controller == Some(true));
    if let Some(owner) = controller {
        if uid.as_deref() == Some(owner.uid.as_str()) {
            return Verdict::Own;
        }
        return Verdict::Refused {
            reason: reasons::OWNED_BY_ANOTHER_CONTROLLER,
            message: format!(
                "StatefulSet {}/{} is controlled by {} {} (uid {}): nothing is applied; a StatefulSet has one controller",
                names.namespace, names.cluster, owner.kind, owner.name, owner.uid
            ),
        };
    }
    if adoption.is_none() {
        return Verdict::Refused {
            reason: reasons::STATEFULSET_NOT_OWNED,
            message: format!(
                "StatefulSet {}/{} exists and no QdrantCluster controls it (installed by Helm or by hand?): nothing is applied; to take it over, create the QdrantCluster with spec.adoption.statefulSetName: {}",
                names.namespace, names.cluster, names.cluster
            ),
        };
    };
    let problems = shape_problems(qc, names, live);
    if !problems.is_empty() {
        return Verdict::Refused {
            reason: reasons::SHAPE_MISMATCH,
            message: format!(
                "StatefulSet {}/{} cannot be taken over as it is, so nothing is written: {}",
                names.namespace,
                names.cluster,
                problems.join("; ")
            ),
        };
    }
    let replicas = live_replicas(live);
    Verdict::TakeOver(format!(
        "took over StatefulSet {}/{}: its {replicas} pods keep running on their claims {}-{}-<ordinal>; the update strategy is now OnDelete, and the pods move to the operator's template one at a time through the rollout health gate",
        names.namespace,
        names.cluster,
        qc.spec.data_volume_claim_template(),
        names.cluster
    ))
}

/// Condition Adopted as [`check`]'s verdict makes it: `None` without `spec.adoption` (no
/// condition is written).
pub fn report(qc: &QdrantCluster, names: &Names, verdict: &Verdict) -> Option<Report> {
    qc.spec.adoption.as_ref()?;
    Some(match verdict {
        Verdict::Own | Verdict::TakeOver(_) => Report {
            status: ConditionStatus::True,
            reason: reasons::ADOPTED,
            message: format!(
                "StatefulSet {}/{} was taken over; the operator manages it as one it created",
                names.namespace, names.cluster
            ),
        },
        Verdict::Refused { reason, message } => Report {
            status: ConditionStatus::False,
            reason,
            message: message.clone(),
        },
    })
}

/// Condition Adopted, for [`crate::status`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Report {
    /// True once taken over, False while refused.
    pub status: ConditionStatus,
    /// [`reasons::ADOPTED`] or the refusal's reason.
    pub reason: &'static str,
    /// What was taken over, or what differs.
    pub message: String,
}

/// Condition Adopted was True once: the StatefulSet was taken over before.
fn was_adopted(qc: &QdrantCluster) -> bool {
    qc.status.as_ref().is_some_and(|s| {
        find_condition(&s.conditions, types::ADOPTED)
            .is_some_and(|c| c.status == ConditionStatus::True)
    })
}

fn live_replicas(live: &StatefulSet) -> i32 {
    live.spec.as_ref().and_then(|s| s.replicas).unwrap_or(1)
}

fn pod_spec(live: &StatefulSet) -> Option<&PodSpec> {
    live.spec.as_ref()?.template.spec.as_ref()
}

/// The container that mounts `/qdrant/storage` (the chart names it `qdrant`, like ours).
fn qdrant_container(live: &StatefulSet) -> Option<&Container> {
    pod_spec(live)?.containers.iter().find(|c| {
        c.volume_mounts
            .iter()
            .flatten()
            .any(|m| m.mount_path.trim_end_matches('/') == STORAGE_PATH)
    })
}

fn mount_at<'a>(container: &'a Container, path: &str) -> Option<&'a VolumeMount> {
    container
        .volume_mounts
        .iter()
        .flatten()
        .find(|m| m.mount_path.trim_end_matches('/') == path)
}

fn claim_templates(live: &StatefulSet) -> Vec<String> {
    live.spec
        .as_ref()
        .and_then(|s| s.volume_claim_templates.as_ref())
        .into_iter()
        .flatten()
        .filter_map(|t| t.metadata.name.clone())
        .collect()
}

/// Every way `live` differs from what the QdrantCluster can take over, each naming the
/// field to change.
fn shape_problems(qc: &QdrantCluster, names: &Names, live: &StatefulSet) -> Vec<String> {
    let mut out = Vec::new();
    let spec = live.spec.as_ref();
    let replicas = live_replicas(live);
    if replicas != qc.spec.replicas {
        out.push(format!(
            "it runs {replicas} pods and spec.replicas is {}: set spec.replicas to {replicas} (scale after the takeover)",
            qc.spec.replicas
        ));
    }
    let service = spec
        .and_then(|s| s.service_name.clone())
        .unwrap_or_default();
    if service != names.headless {
        out.push(format!(
            "its serviceName is {service:?}, and the operator's peers are found through the headless Service {:?} (serviceName cannot change)",
            names.headless
        ));
    }
    let selector = spec
        .and_then(|s| s.selector.match_labels.clone())
        .unwrap_or_default();
    let ours = selector_labels(qc);
    let missing: Vec<String> = ours
        .iter()
        .filter(|(k, v)| selector.get(*k) != Some(*v))
        .map(|(k, v)| format!("{k}={v}"))
        .collect();
    let expressions = spec.is_some_and(|s| {
        s.selector
            .match_expressions
            .as_ref()
            .is_some_and(|e| !e.is_empty())
    });
    if !missing.is_empty() || expressions {
        out.push(format!(
            "its selector ({}) must contain {} and no matchExpressions, the labels the operator's Services and pod lists select by (the selector cannot change; the Helm chart's has them when the release is named after the QdrantCluster)",
            selector
                .iter()
                .map(|(k, v)| format!("{k}={v}"))
                .collect::<Vec<_>>()
                .join(","),
            missing.join(",")
        ));
    }
    let template = qc.spec.data_volume_claim_template();
    let templates = claim_templates(live);
    let container = qdrant_container(live);
    match container.and_then(|c| mount_at(c, STORAGE_PATH)) {
        None => out.push(format!(
            "no container mounts {STORAGE_PATH}: there is no Qdrant data volume to keep"
        )),
        Some(m) if !templates.contains(&m.name) => out.push(format!(
            "{STORAGE_PATH} is volume {:?}, which is not one of its claim templates ({}): the data would not outlive the pods",
            m.name,
            templates.join(", ")
        )),
        Some(m) if m.name != template => out.push(format!(
            "{STORAGE_PATH} is on claim template {:?} and spec.adoption.volumeClaimTemplate is {template:?}: set spec.adoption.volumeClaimTemplate to {:?}",
            m.name, m.name
        )),
        Some(_) => {}
    }
    if let Some(container) = container {
        let serves_key = mount_at(container, HELM_API_KEY_FILE).is_some()
            || container.env.iter().flatten().any(|e| {
                e.name == "QDRANT__SERVICE__API_KEY"
                    && (e.value.is_some() || e.value_from.is_some())
            });
        let key_secret = mount_at(container, HELM_API_KEY_FILE)
            .and_then(|m| {
                pod_spec(live)?
                    .volumes
                    .iter()
                    .flatten()
                    .find(|v| v.name == m.name)?
                    .secret
                    .as_ref()?
                    .secret_name
                    .clone()
            })
            .unwrap_or_else(|| "<secret>".into());
        match (serves_key, qc.spec.auth.api_key.is_some()) {
            (true, false) => out.push(format!(
                "its pods require an API key and spec.auth.apiKey is not set: set spec.auth.apiKey.secretKeyRef to the same key (the Helm chart's is name {key_secret}, key api-key) so the operator and your clients keep using it"
            )),
            (false, true) => out.push(
                "its pods serve without an API key and spec.auth.apiKey is set (a generated key is the default): set spec.auth to {} to keep serving without one (clients would otherwise be refused once the pods move to the operator's template), and add a key after the takeover".into(),
            ),
            _ => {}
        }
        let https = container
            .readiness_probe
            .as_ref()
            .and_then(|p| p.http_get.as_ref())
            .and_then(|h| h.scheme.as_deref())
            .is_some_and(|s| s.eq_ignore_ascii_case("https"));
        let client_tls = names.client_tls;
        if https != client_tls {
            out.push(format!(
                "its readiness probe uses {} and spec.tls.client.enabled is {client_tls}: set spec.tls to serve as the pods do",
                if https { "HTTPS" } else { "HTTP" }
            ));
        }
        let uid = |c: &Container| {
            c.security_context
                .as_ref()
                .and_then(|s| s.run_as_user)
                .or_else(|| pod_spec(live)?.security_context.as_ref()?.run_as_user)
        };
        let live_uid = uid(container);
        // The operator's template: the container's uid, else the pod's (both defaulted).
        let desired_uid = qc
            .spec
            .pod
            .container_security_context
            .as_ref()
            .map_or(Some(DEFAULT_UID), |c| c.run_as_user)
            .or_else(|| pod_security_context(qc, names).run_as_user);
        if let (Some(have), Some(want)) = (live_uid, desired_uid)
            && have != want
        {
            out.push(format!(
                "its Qdrant runs as uid {have} and the operator's template as uid {want}: set spec.pod.containerSecurityContext.runAsUser to {have}, so the restarted peers can still write their files"
            ));
        }
    }
    out
}

/// The [`AdoptedLayout`] of `live` for a QdrantCluster with `spec.adoption`; `None` without
/// `spec.adoption` or without a live StatefulSet (a recreated one gets the chart's layout:
/// the claim's root at `/qdrant/storage`, snapshots on an emptyDir). Pure.
pub fn layout(qc: &QdrantCluster, live: Option<&StatefulSet>) -> Option<AdoptedLayout> {
    qc.spec.adoption.as_ref()?;
    let Some(live) = live else {
        return Some(AdoptedLayout {
            selector: selector_labels(qc),
            ..AdoptedLayout::default()
        });
    };
    let spec = live.spec.as_ref();
    let container = qdrant_container(live);
    let templates = claim_templates(live);
    Some(AdoptedLayout {
        selector: spec
            .and_then(|s| s.selector.match_labels.clone())
            .unwrap_or_else(|| selector_labels(qc)),
        pod_management_policy: spec.and_then(|s| s.pod_management_policy.clone()),
        storage_sub_path: container
            .and_then(|c| mount_at(c, STORAGE_PATH))
            .and_then(|m| m.sub_path.clone()),
        snapshots: container
            .and_then(|c| mount_at(c, SNAPSHOTS_PATH))
            .filter(|m| templates.contains(&m.name))
            .cloned(),
    })
}

/// The takeover write: replaces the live StatefulSet with `desired` (`PUT
/// apps/v1 statefulsets/<name>` with the live `resourceVersion`, so a concurrent change
/// fails with 409 and is retried) and resets `managedFields` (`[{}]`), so the chart's field
/// manager owns nothing the operator's next server-side apply would have to fight. Returns
/// the replaced object.
///
/// # Errors
/// The API server's: 409 when the StatefulSet changed since it was read, 422 when an
/// immutable field differs (which [`check`] rules out).
pub async fn take_over(
    shared: &Shared,
    desired: &StatefulSet,
    live: &StatefulSet,
) -> Result<StatefulSet> {
    let ns = live.namespace().unwrap_or_default();
    let api: Api<StatefulSet> = Api::namespaced(shared.applier.client().clone(), &ns);
    let mut obj = desired.clone();
    obj.metadata.resource_version = live.metadata.resource_version.clone();
    obj.metadata.managed_fields = Some(vec![ManagedFieldsEntry::default()]);
    obj.status = None;
    let params = PostParams {
        field_manager: Some(shared.applier.field_manager().to_string()),
        ..PostParams::default()
    };
    Ok(api.replace(&live.name_any(), &params, &obj).await?)
}
