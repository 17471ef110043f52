//! Update status: the QdrantCluster status as a pure function of what was observed, so it is
//! tested without a cluster; the reconcile patches it only when it differs.

use std::collections::BTreeMap;

use api_types::{
    QdrantCluster, QdrantClusterStatus,
    cluster::{
        AuthStatus, ClusterPhase, Endpoints, GRPC_PORT, HTTP_PORT, PeerStatus, SecretKeyRef,
    },
    conditions::{ConditionStatus, set_condition, types},
};
use k8s_openapi::api::apps::v1::StatefulSet;
use reconcile_lib::conditions::new_condition;

use crate::build::{
    Names,
    secret::{KeyKind, key_refs},
    selector_string, served_keys,
};

/// What the Qdrant peers reported (`GET /cluster` on each pod).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct PeersObservation {
    /// Peers, ordered by pod name.
    pub peers: Vec<PeerStatus>,
    /// Raft leader peer id, if any peer reported one.
    pub leader: Option<u64>,
    /// `raft_info.pending_operations` each pod reported, by pod ordinal (pods that did not
    /// answer are absent).
    pub pending_operations: BTreeMap<u32, u64>,
    /// Consensus members, peer id -> p2p URI (`peers` of `GET /cluster`), as the
    /// lowest-ordinal pod that answered sees them.
    pub members: BTreeMap<u64, String>,
}

/// Condition type: a scale-down is refused (the message names collections and shards).
pub const SCALE_DOWN_BLOCKED: &str = "ScaleDownBlocked";
/// Reason of [`SCALE_DOWN_BLOCKED`] when True.
pub const SCALE_DOWN_REFUSED: &str = "ScaleDownRefused";
/// Condition type: growing the volumes to `spec.persistence.size` is refused (a shrink, a
/// StorageClass without `allowVolumeExpansion: true`, a rejected patch); the reason is one of
/// the refusal reasons of [`crate::volumes`] and the message names the field, the claims and the
/// StorageClass.
pub const VOLUME_EXPANSION_BLOCKED: &str = "VolumeExpansionBlocked";
pub use crate::rollout::UPGRADE_BLOCKED;

/// A scale-down in progress: what it does or waits for, or why it is refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScaleDownProgress {
    /// For humans: the planner's step message.
    pub message: String,
    /// True when refused.
    pub blocked: bool,
}

/// True when the status already reports this refusal (so the Warning event is not repeated).
pub fn scale_down_refusal_reported(qc: &QdrantCluster, message: &str) -> bool {
    reported(qc, SCALE_DOWN_BLOCKED, SCALE_DOWN_REFUSED, message)
}

/// True when condition `type_` of the stored status already says `reason` with `message` (so
/// a Warning event for the same refusal is not repeated).
pub fn reported(qc: &QdrantCluster, type_: &str, reason: &str, message: &str) -> bool {
    qc.status.as_ref().is_some_and(|s| {
        api_types::conditions::condition_says(&s.conditions, type_, reason, message)
    })
}

/// Everything the status is computed from.
#[derive(Debug, Clone, Default)]
pub struct Observation {
    /// The pause annotation is set.
    pub paused: bool,
    /// The spec was refused: the message names the field.
    pub invalid: Option<String>,
    /// A problem that keeps the cluster from progressing (e.g. a referenced Secret is
    /// missing): reason and message.
    pub blocked: Option<(String, String)>,
    /// The live StatefulSet after apply.
    pub statefulset: Option<StatefulSet>,
    /// Qdrant's view, when it could be read; `Err` holds why it could not.
    pub peers: Option<Result<PeersObservation, String>>,
    /// A scale-down holding pods above `spec.replicas`.
    pub scale_down: Option<ScaleDownProgress>,
    /// TLS in use (`status.tls`, from [`crate::tls`]); `None` when not observed (then the
    /// last published value is kept).
    pub tls: Option<api_types::cluster::TlsStatus>,
    /// Volume expansion of the claims to `spec.persistence.size`; `None` when not observed
    /// (then `status.volumes` and condition VolumeExpansionBlocked keep their last value).
    pub volumes: Option<crate::volumes::VolumesProgress>,
    /// A rolling restart or upgrade in progress.
    pub rollout: Option<crate::rollout::RolloutProgress>,
    /// A refused downgrade (the pods keep their image).
    pub downgrade: Option<crate::rollout::DowngradeRefusal>,
    /// Shard moves of an opt-in rebalance.
    pub rebalance: Option<api_types::cluster::RebalanceStatus>,
    /// A peer recovery in progress (a pod whose volume came back empty), or its refusal:
    /// condition Degraded True with reason `PeerRecovery` / `PeerRecoveryBlocked`.
    pub recovery: Option<crate::recover::RecoveryProgress>,
}

/// The status for `qc` given `obs`. Conditions keep their `lastTransitionTime` unless their
/// status changes; peers keep their last known value when Qdrant could not be asked.
pub fn compute(qc: &QdrantCluster, obs: &Observation) -> QdrantClusterStatus {
    let prev = qc.status.clone().unwrap_or_default();
    let generation = qc.metadata.generation;
    let names = Names::of(qc);
    let mut st = QdrantClusterStatus {
        observed_generation: generation,
        conditions: prev.conditions.clone(),
        selector: Some(selector_string(qc)),
        endpoints: Some(Endpoints {
            // https:// for both with `spec.tls.client` (Qdrant's service.enable_tls).
            http: format!(
                "{}://{}.{}.svc:{HTTP_PORT}",
                names.client_scheme(),
                names.cluster,
                names.namespace
            ),
            grpc: format!(
                "{}://{}.{}.svc:{GRPC_PORT}",
                names.client_scheme(),
                names.cluster,
                names.namespace
            ),
        }),
        auth: auth_status(qc),
        version: prev.version.clone(),
        peers: prev.peers.clone(),
        raft_leader: prev.raft_leader,
        tls: obs.tls.clone().or_else(|| prev.tls.clone()),
        // Last known expansion progress; replaced below whenever the claims were observed.
        volumes: prev.volumes.clone(),
        // Last known counts; replaced below whenever the StatefulSet was observed.
        replicas: prev.replicas,
        ready_replicas: prev.ready_replicas,
        ready_replicas_text: prev.ready_replicas_text.clone(),
        ..QdrantClusterStatus::default()
    };
    let mut set = |type_: &str, status: ConditionStatus, reason: &str, message: String| {
        set_condition(
            &mut st.conditions,
            new_condition(type_, status, reason, message, generation),
        );
    };

    if obs.paused {
        set(
            types::PAUSED,
            ConditionStatus::True,
            "PauseAnnotationSet",
            format!(
                "annotation {} is \"true\": no changes are applied",
                api_types::PAUSED_ANNOTATION
            ),
        );
        st.phase = ClusterPhase::Paused;
        // Every condition is set on first sight.
        for t in [types::READY, types::PROGRESSING, types::DEGRADED] {
            if api_types::conditions::find_condition(&st.conditions, t).is_none() {
                set_condition(
                    &mut st.conditions,
                    new_condition(
                        t,
                        ConditionStatus::Unknown,
                        "Paused",
                        "reconciliation is paused",
                        generation,
                    ),
                );
            }
        }
        return st;
    }
    set(
        types::PAUSED,
        ConditionStatus::False,
        "NotPaused",
        String::new(),
    );

    if let Some(msg) = &obs.invalid {
        set(
            types::READY,
            ConditionStatus::False,
            "InvalidSpec",
            msg.clone(),
        );
        set(
            types::PROGRESSING,
            ConditionStatus::False,
            "InvalidSpec",
            "fix the spec; nothing is applied until then".into(),
        );
        set(
            types::DEGRADED,
            ConditionStatus::Unknown,
            "InvalidSpec",
            String::new(),
        );
        st.phase = ClusterPhase::Failed;
        return st;
    }

    // A permanent failure before the StatefulSet could be read: keep what was known.
    if obs.statefulset.is_none()
        && let Some((reason, message)) = &obs.blocked
    {
        let degraded_known =
            api_types::conditions::find_condition(&prev.conditions, types::DEGRADED).is_some();
        set(
            types::READY,
            ConditionStatus::False,
            reason,
            message.clone(),
        );
        set(
            types::PROGRESSING,
            ConditionStatus::False,
            reason,
            message.clone(),
        );
        if !degraded_known {
            set(
                types::DEGRADED,
                ConditionStatus::Unknown,
                reason,
                String::new(),
            );
        }
        st.phase = ClusterPhase::Failed;
        return st;
    }

    let desired = qc.spec.replicas;
    let sts_status = obs
        .statefulset
        .as_ref()
        .and_then(|s| s.status.clone())
        .unwrap_or_default();
    let sts_generation = obs.statefulset.as_ref().and_then(|s| s.metadata.generation);
    let sts_spec_replicas = obs
        .statefulset
        .as_ref()
        .and_then(|s| s.spec.as_ref())
        .and_then(|s| s.replicas)
        .unwrap_or(desired);
    st.replicas = sts_status.replicas;
    st.ready_replicas = sts_status.ready_replicas.unwrap_or(0);
    st.ready_replicas_text = Some(format!("{}/{}", st.ready_replicas, desired));

    let observed_current = sts_status.observed_generation.is_some()
        && sts_status.observed_generation >= sts_generation;
    // With the OnDelete strategy Kubernetes (before 1.36) never moves `currentRevision` to
    // `updateRevision` (kubernetes/kubernetes#73492), so outdated pods are counted through
    // `updatedReplicas` (pods at the update revision) instead.
    let rolling =
        !observed_current || sts_status.updated_replicas.unwrap_or(0) < sts_status.replicas;
    let scaling = sts_status.replicas != sts_spec_replicas;
    let all_ready = obs.statefulset.is_some()
        && !rolling
        && !scaling
        && st.ready_replicas >= desired
        && st.replicas == desired;
    // Once all peers were ready, `version` is set: a cluster coming back from Paused or Failed
    // is not "Creating" again.
    let was_running = prev.version.is_some()
        || matches!(
            prev.phase,
            ClusterPhase::Running
                | ClusterPhase::Scaling
                | ClusterPhase::Upgrading
                | ClusterPhase::Degraded
        );

    if all_ready {
        // A refused downgrade keeps the pods on the live image: report what runs.
        st.version = Some(
            obs.downgrade
                .as_ref()
                .and_then(|d| crate::rollout::image_tag(&d.keep_image))
                .map_or_else(|| qc.spec.image.tag.clone(), str::to_owned),
        );
    }

    if let Some((reason, message)) = &obs.blocked {
        set(
            types::READY,
            ConditionStatus::False,
            reason,
            message.clone(),
        );
        set(
            types::PROGRESSING,
            ConditionStatus::False,
            reason,
            message.clone(),
        );
    }

    st.phase = if all_ready {
        ClusterPhase::Running
    } else if !was_running {
        ClusterPhase::Creating
    } else if scaling {
        ClusterPhase::Scaling
    } else if rolling {
        ClusterPhase::Upgrading
    } else {
        ClusterPhase::Degraded
    };

    if obs.blocked.is_none() {
        let (ready, reason, message) = if all_ready {
            (
                ConditionStatus::True,
                "AllPeersReady",
                format!("{desired} of {desired} peers ready"),
            )
        } else {
            (
                ConditionStatus::False,
                phase_reason(st.phase),
                format!("{} of {desired} peers ready", st.ready_replicas),
            )
        };
        set(types::READY, ready, reason, message);
        if all_ready {
            set(
                types::PROGRESSING,
                ConditionStatus::False,
                "Reconciled",
                "the cluster matches its spec".into(),
            );
        } else {
            set(
                types::PROGRESSING,
                ConditionStatus::True,
                phase_reason(st.phase),
                progress_message(st.phase, &sts_status, desired),
            );
        }
    }
    match &obs.scale_down {
        Some(p) if p.blocked => {
            set(
                SCALE_DOWN_BLOCKED,
                ConditionStatus::True,
                SCALE_DOWN_REFUSED,
                p.message.clone(),
            );
            set(
                types::READY,
                ConditionStatus::False,
                "ScaleDownBlocked",
                p.message.clone(),
            );
            set(
                types::PROGRESSING,
                ConditionStatus::False,
                "ScaleDownBlocked",
                p.message.clone(),
            );
        }
        Some(p) => {
            set(
                SCALE_DOWN_BLOCKED,
                ConditionStatus::False,
                "NotBlocked",
                String::new(),
            );
            set(
                types::READY,
                ConditionStatus::False,
                "Scaling",
                p.message.clone(),
            );
            set(
                types::PROGRESSING,
                ConditionStatus::True,
                "ScalingDown",
                p.message.clone(),
            );
            st.phase = ClusterPhase::Scaling;
        }
        None => set(
            SCALE_DOWN_BLOCKED,
            ConditionStatus::False,
            "NotBlocked",
            String::new(),
        ),
    }
    if let Some(r) = &obs.rollout {
        st.rollout = Some(r.status.clone());
        if obs.scale_down.is_none() && obs.blocked.is_none() {
            st.phase = ClusterPhase::Upgrading;
            let reason = if r.status.to_version.is_some() {
                "Upgrading"
            } else {
                "RollingRestart"
            };
            let message = format!(
                "{} of {} pods updated: {}",
                r.status.updated_replicas, sts_spec_replicas, r.status.message
            );
            set(
                types::READY,
                ConditionStatus::False,
                reason,
                message.clone(),
            );
            set(types::PROGRESSING, ConditionStatus::True, reason, message);
        }
    }
    if let Some(r) = &obs.rebalance {
        st.rebalance = Some(r.clone());
        if all_ready && obs.blocked.is_none() {
            set(
                types::PROGRESSING,
                ConditionStatus::True,
                "Rebalancing",
                r.message.clone(),
            );
        }
    }
    match &obs.downgrade {
        Some(d) => {
            set(
                UPGRADE_BLOCKED,
                ConditionStatus::True,
                crate::rollout::DOWNGRADE_REFUSED,
                d.message.clone(),
            );
            if obs.blocked.is_none() && obs.scale_down.is_none() && obs.rollout.is_none() {
                set(
                    types::PROGRESSING,
                    ConditionStatus::False,
                    crate::rollout::DOWNGRADE_REFUSED,
                    d.message.clone(),
                );
            }
        }
        None => set(
            UPGRADE_BLOCKED,
            ConditionStatus::False,
            "NotBlocked",
            String::new(),
        ),
    }
    let stuck = obs.rollout.as_ref().and_then(|r| r.stuck.clone());
    let degraded = st.phase == ClusterPhase::Degraded
        || stuck.is_some()
        || (was_running && !all_ready && st.ready_replicas < desired.min(st.replicas));
    let (reason, message) = match (&stuck, degraded) {
        (Some(m), _) => ("RolloutStuck", m.clone()),
        (None, true) => (
            "PeersNotReady",
            format!("{} of {desired} peers ready", st.ready_replicas),
        ),
        (None, false) => ("AsExpected", String::new()),
    };
    if stuck.is_some() {
        st.phase = ClusterPhase::Degraded;
    }
    set(
        types::DEGRADED,
        ConditionStatus::from_bool(degraded),
        reason,
        message,
    );
    // Peer recovery: Degraded says what it does or waits for, or why it is refused.
    if let Some(r) = &obs.recovery {
        let reason = if r.blocked {
            crate::recover::PEER_RECOVERY_BLOCKED
        } else {
            crate::recover::PEER_RECOVERY
        };
        set(
            types::DEGRADED,
            ConditionStatus::True,
            reason,
            r.message.clone(),
        );
        if st.phase == ClusterPhase::Running {
            st.phase = ClusterPhase::Degraded;
        }
    }

    // Volume expansion: its own condition; while claims resize, Progressing says which.
    if let Some(v) = &obs.volumes {
        st.volumes = v.status.clone();
        let (status, reason, message) = match &v.blocked {
            Some((reason, message)) => (ConditionStatus::True, reason.as_str(), message.clone()),
            None => (ConditionStatus::False, "NotBlocked", String::new()),
        };
        set(VOLUME_EXPANSION_BLOCKED, status, reason, message);
    }
    volume_conditions(&mut st.conditions, obs.volumes.as_ref(), generation);

    // Peers keep their last known value when Qdrant could not be asked.
    if let Some(Ok(p)) = &obs.peers {
        st.peers = p.peers.clone();
        st.raft_leader = p.leader;
    }
    st
}

/// VolumeExpansionBlocked set on first sight (False until the claims are observed), and the
/// Progressing condition while claims resize: True with reason `ExpandingVolumes` and the claims
/// in its message when nothing else progresses, the claims appended to the message when
/// something else does; left alone when Progressing is False for a blocking reason.
fn volume_conditions(
    conditions: &mut Vec<api_types::Condition>,
    volumes: Option<&crate::volumes::VolumesProgress>,
    generation: Option<i64>,
) {
    if api_types::conditions::find_condition(conditions, VOLUME_EXPANSION_BLOCKED).is_none() {
        set_condition(
            conditions,
            new_condition(
                VOLUME_EXPANSION_BLOCKED,
                ConditionStatus::False,
                "NotBlocked",
                String::new(),
                generation,
            ),
        );
    }
    let Some(v) = volumes.filter(|v| v.resizing()) else {
        return;
    };
    let progressing =
        api_types::conditions::find_condition(conditions, types::PROGRESSING).cloned();
    let (reason, message) = match progressing {
        Some(c) if c.status == ConditionStatus::True => {
            (c.reason, format!("{}; {}", c.message, v.message()))
        }
        Some(c) if c.reason != "Reconciled" => return,
        _ => ("ExpandingVolumes".to_string(), v.message()),
    };
    set_condition(
        conditions,
        new_condition(
            types::PROGRESSING,
            ConditionStatus::True,
            &reason,
            message,
            generation,
        ),
    );
}

fn phase_reason(phase: ClusterPhase) -> &'static str {
    match phase {
        ClusterPhase::Creating => "Creating",
        ClusterPhase::Scaling => "Scaling",
        ClusterPhase::Upgrading => "RollingUpdate",
        ClusterPhase::Degraded => "PeersNotReady",
        ClusterPhase::Running => "AllPeersReady",
        ClusterPhase::Pending => "Pending",
        ClusterPhase::Failed => "Failed",
        ClusterPhase::Paused => "Paused",
    }
}

fn progress_message(
    phase: ClusterPhase,
    s: &k8s_openapi::api::apps::v1::StatefulSetStatus,
    desired: i32,
) -> String {
    match phase {
        ClusterPhase::Scaling => format!("scaling from {} to {desired} peers", s.replicas),
        ClusterPhase::Upgrading => format!(
            "{} of {} pods updated",
            s.updated_replicas.unwrap_or(0),
            s.replicas
        ),
        _ => format!("{} of {desired} peers ready", s.ready_replicas.unwrap_or(0)),
    }
}

/// Where clients of the cluster (the collection and backup controllers among them) read its
/// keys: the served Secret's [`served_keys::OPERATOR_API_KEY`] (during a key rotation the key
/// every pod accepts, not the spec's new one) and its read-only key.
fn auth_status(qc: &QdrantCluster) -> Option<AuthStatus> {
    let keys = key_refs(qc);
    if keys.is_empty() {
        return None;
    }
    let served = Names::of(qc).served_keys_secret;
    let has = |k: KeyKind| keys.iter().any(|r| r.kind == k);
    let entry = |key: &str| SecretKeyRef {
        name: served.clone(),
        key: key.to_string(),
    };
    Some(AuthStatus {
        api_key_secret_ref: has(KeyKind::ReadWrite).then(|| entry(served_keys::OPERATOR_API_KEY)),
        read_only_api_key_secret_ref: has(KeyKind::ReadOnly)
            .then(|| entry(served_keys::READ_ONLY_API_KEY)),
    })
}

/// True when the status differs from the stored one in anything but condition timestamps
/// that [`compute`] would have kept anyway (it keeps them), i.e. a patch is needed.
pub fn changed(qc: &QdrantCluster, new: &QdrantClusterStatus) -> bool {
    qc.status.as_ref() != Some(new)
}
