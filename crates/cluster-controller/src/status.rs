//! Update status: the QdrantCluster status as a pure function of what was observed, so it is
//! tested without a cluster; the reconcile patches it only when it differs.

use api_types::{
    QdrantCluster, QdrantClusterStatus,
    cluster::{AuthStatus, ClusterPhase, Endpoints, GRPC_PORT, HTTP_PORT, SecretKeyRef},
    conditions::{ConditionStatus, set_condition, types},
};
use k8s_openapi::api::apps::v1::StatefulSet;
use reconcile_lib::conditions::{Kstatus, new_condition, set_kstatus};

use crate::{
    build::{
        Names,
        secret::{KeyKind, key_refs},
        selector_string, served_keys,
    },
    vocabulary::{
        reasons::{
            self, DOWNGRADE_REFUSED, PEER_RECOVERY, PEER_RECOVERY_BLOCKED, SCALE_DOWN_REFUSED,
        },
        types::{self as own, SCALE_DOWN_BLOCKED, UPGRADE_BLOCKED, VOLUME_EXPANSION_BLOCKED},
    },
};

/// Everything the status is computed from.
#[derive(Debug, Clone, Default)]
pub struct Inputs {
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
    pub peers: Option<Result<crate::peers::PeersObservation, String>>,
    /// A scale-down holding pods above `spec.replicas`.
    pub scale_down: Option<crate::scale::ScaleDownProgress>,
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
    /// The monitoring objects of `spec.monitoring` (condition MonitoringReady); `None` when
    /// monitoring is off or the step did not run.
    pub monitoring: Option<crate::monitoring::MonitoringProgress>,
    /// Qdrant 1.19 quotas of `spec.config.storage.quotas` (condition QuotasApplied); `None`
    /// when the step did not run (the condition keeps its last value).
    pub quotas: Option<crate::quotas::QuotasProgress>,
    /// The zone balance of `spec.zoneAware` (condition ZoneSpread, `status.peers[].zone`);
    /// `None` when zone awareness is off or the step did not run (then the last zones and
    /// condition are kept).
    pub zones: Option<crate::zones::ZoneProgress>,
    /// Condition Adopted of `spec.adoption` ([`crate::adoption::report`]); `None` without
    /// `spec.adoption` or when the StatefulSet was not looked at (the last value is kept).
    pub adoption: Option<crate::adoption::Report>,
}

impl Inputs {
    /// The inputs of a reconcile that stopped on a permanent problem (`reason`, `message`)
    /// before the StatefulSet was read or applied: the last known rest is kept.
    pub fn blocked(blocked: Option<(String, String)>) -> Self {
        Self {
            blocked,
            ..Self::default()
        }
    }
}

/// The status for `qc` given `inputs`, one concern after another in a fixed precedence (later
/// ones refine what earlier ones set): the gate (paused, invalid, blocked before the
/// StatefulSet was read), the pod counts and phase, then each operation's report (scale-down,
/// rollout, rebalance, downgrade, degraded and peer recovery, volumes), then Qdrant's peers.
/// Conditions keep their `lastTransitionTime` unless their status changes; peers keep their
/// last known value when Qdrant could not be asked.
pub fn compute(qc: &QdrantCluster, inputs: &Inputs) -> QdrantClusterStatus {
    let mut draft = Draft::new(qc, inputs);
    if inputs.paused {
        draft.paused();
        draft.kstatus(inputs);
        return draft.st;
    }
    draft.set(types::PAUSED, False, reasons::NOT_PAUSED, String::new());
    if let Some(message) = &inputs.invalid {
        draft.invalid(message);
        draft.kstatus(inputs);
        return draft.st;
    }
    // A permanent failure before the StatefulSet could be read: keep what was known.
    if inputs.statefulset.is_none()
        && let Some(blocked) = &inputs.blocked
    {
        draft.blocked_early(blocked);
        draft.adoption(inputs);
        draft.kstatus(inputs);
        return draft.st;
    }
    let pods = Pods::of(qc, inputs);
    draft.peers_and_phase(qc, inputs, &pods);
    draft.scale_down(inputs);
    draft.rollout(inputs, &pods);
    draft.rebalance(inputs, &pods);
    draft.downgrade(inputs);
    draft.degraded(inputs, &pods);
    draft.recovery(inputs);
    draft.volumes(inputs);
    draft.monitoring(qc, inputs);
    draft.quotas(inputs);
    draft.zones(qc, inputs, &pods);
    draft.adoption(inputs);
    // Peers keep their last known value when Qdrant could not be asked.
    if let Some(Ok(p)) = &inputs.peers {
        draft.st.peers = p.peers.clone();
        draft.st.raft_leader = p.leader;
    }
    peer_zones(qc, inputs, &mut draft.st.peers);
    draft.kstatus(inputs);
    draft.st
}

use ConditionStatus::{False, True, Unknown};

/// What the StatefulSet says about the pods, for the phase and the Ready condition.
struct Pods {
    /// `spec.replicas` of the QdrantCluster.
    desired: i32,
    /// `status` of the applied StatefulSet.
    sts: k8s_openapi::api::apps::v1::StatefulSetStatus,
    /// `spec.replicas` of the applied StatefulSet (more than `desired` while peers drain).
    sts_replicas: i32,
    /// Some pod is not at the update revision, or the StatefulSet's status is behind.
    rolling: bool,
    /// The StatefulSet has not reached its own `spec.replicas`.
    scaling: bool,
    /// Every pod ready, none outdated, at the desired count.
    all_ready: bool,
    /// The cluster was running once (`status.version` set, or a running phase).
    was_running: bool,
}

impl Pods {
    fn of(qc: &QdrantCluster, inputs: &Inputs) -> Self {
        let desired = qc.spec.replicas;
        let sts = inputs.statefulset.as_ref();
        let status = sts.and_then(|s| s.status.clone()).unwrap_or_default();
        let generation = sts.and_then(|s| s.metadata.generation);
        let sts_replicas = sts
            .and_then(|s| s.spec.as_ref())
            .and_then(|s| s.replicas)
            .unwrap_or(desired);
        let observed_current =
            status.observed_generation.is_some() && status.observed_generation >= generation;
        // With the OnDelete strategy Kubernetes (before 1.36) never moves `currentRevision`
        // to `updateRevision` (kubernetes/kubernetes#73492), so outdated pods are counted
        // through `updatedReplicas` (pods at the update revision) instead.
        let rolling = !observed_current || status.updated_replicas.unwrap_or(0) < status.replicas;
        let scaling = status.replicas != sts_replicas;
        let ready = status.ready_replicas.unwrap_or(0);
        let all_ready =
            sts.is_some() && !rolling && !scaling && ready >= desired && status.replicas == desired;
        let prev = qc.status.as_ref();
        // Once all peers were ready, `version` is set: a cluster coming back from Paused or
        // Failed is not "Creating" again.
        let was_running = prev.is_some_and(|p| {
            p.version.is_some()
                || matches!(
                    p.phase,
                    ClusterPhase::Running
                        | ClusterPhase::Scaling
                        | ClusterPhase::Upgrading
                        | ClusterPhase::Degraded
                )
        });
        Self {
            desired,
            sts: status,
            sts_replicas,
            rolling,
            scaling,
            all_ready,
            was_running,
        }
    }

    fn ready(&self) -> i32 {
        self.sts.ready_replicas.unwrap_or(0)
    }
}

/// The status being computed, with the condition setter every concern uses.
struct Draft {
    st: QdrantClusterStatus,
    generation: Option<i64>,
}

impl Draft {
    /// The fields every status has: endpoints, selector, auth, and the last known rest.
    fn new(qc: &QdrantCluster, inputs: &Inputs) -> Self {
        let prev = qc.status.clone().unwrap_or_default();
        let names = Names::of(qc);
        let endpoint = |port: i32| {
            // https:// for both with `spec.tls.client` (Qdrant's service.enable_tls).
            let scheme = names.client_scheme();
            format!(
                "{scheme}://{}.{}.svc:{port}",
                names.cluster, names.namespace
            )
        };
        let st = QdrantClusterStatus {
            observed_generation: qc.metadata.generation,
            conditions: prev.conditions.clone(),
            selector: Some(selector_string(qc)),
            endpoints: Some(Endpoints {
                http: endpoint(HTTP_PORT),
                grpc: endpoint(GRPC_PORT),
            }),
            auth: auth_status(qc),
            version: prev.version.clone(),
            peers: prev.peers.clone(),
            raft_leader: prev.raft_leader,
            tls: inputs.tls.clone().or_else(|| prev.tls.clone()),
            // Last known expansion progress; replaced whenever the claims were observed.
            volumes: prev.volumes.clone(),
            // Last known counts; replaced whenever the StatefulSet was observed.
            replicas: prev.replicas,
            ready_replicas: prev.ready_replicas,
            ready_replicas_text: prev.ready_replicas_text.clone(),
            ..QdrantClusterStatus::default()
        };
        Self {
            st,
            generation: qc.metadata.generation,
        }
    }

    fn set(&mut self, type_: &str, status: ConditionStatus, reason: &str, message: String) {
        set_condition(
            &mut self.st.conditions,
            new_condition(type_, status, reason, message, self.generation),
        );
    }

    fn has(&self, type_: &str) -> bool {
        api_types::conditions::find_condition(&self.st.conditions, type_).is_some()
    }

    /// Paused True; phase Paused; Ready, Progressing and Degraded Unknown on first sight.
    fn paused(&mut self) {
        let message = format!(
            "annotation {} is \"true\": no changes are applied",
            api_types::PAUSED_ANNOTATION
        );
        self.set(types::PAUSED, True, reasons::PAUSE_ANNOTATION_SET, message);
        self.st.phase = ClusterPhase::Paused;
        for t in [types::READY, types::PROGRESSING, types::DEGRADED] {
            if !self.has(t) {
                let message = "reconciliation is paused".to_string();
                self.set(t, Unknown, reasons::PAUSED, message);
            }
        }
    }

    /// Ready False, Progressing False, Degraded Unknown, all InvalidSpec; phase Failed.
    fn invalid(&mut self, message: &str) {
        let fix = "fix the spec; nothing is applied until then".to_string();
        self.set(
            types::READY,
            False,
            reasons::INVALID_SPEC,
            message.to_string(),
        );
        self.set(types::PROGRESSING, False, reasons::INVALID_SPEC, fix);
        self.set(
            types::DEGRADED,
            Unknown,
            reasons::INVALID_SPEC,
            String::new(),
        );
        self.st.phase = ClusterPhase::Failed;
    }

    /// Ready and Progressing False with the problem; Degraded Unknown on first sight; phase
    /// Failed.
    fn blocked_early(&mut self, (reason, message): &(String, String)) {
        self.set(types::READY, False, reason, message.clone());
        self.set(types::PROGRESSING, False, reason, message.clone());
        if !self.has(types::DEGRADED) {
            self.set(types::DEGRADED, Unknown, reason, String::new());
        }
        self.st.phase = ClusterPhase::Failed;
    }

    /// Counts, version, phase, and Ready/Progressing from the pods (or the blocking
    /// problem).
    fn peers_and_phase(&mut self, qc: &QdrantCluster, inputs: &Inputs, pods: &Pods) {
        let desired = pods.desired;
        self.st.replicas = pods.sts.replicas;
        self.st.ready_replicas = pods.ready();
        self.st.ready_replicas_text = Some(format!("{}/{desired}", pods.ready()));
        if pods.all_ready {
            // A refused downgrade keeps the pods on the live image: report what runs.
            self.st.version = Some(
                inputs
                    .downgrade
                    .as_ref()
                    .and_then(|d| crate::rollout::image_tag(&d.keep_image))
                    .map_or_else(|| qc.spec.image.tag.clone(), str::to_owned),
            );
        }
        self.st.phase = if pods.all_ready {
            ClusterPhase::Running
        } else if !pods.was_running {
            ClusterPhase::Creating
        } else if pods.scaling {
            ClusterPhase::Scaling
        } else if pods.rolling {
            ClusterPhase::Upgrading
        } else {
            ClusterPhase::Degraded
        };
        if let Some((reason, message)) = &inputs.blocked {
            self.set(types::READY, False, reason, message.clone());
            self.set(types::PROGRESSING, False, reason, message.clone());
            return;
        }
        let ready_message = format!("{} of {desired} peers ready", pods.ready());
        if pods.all_ready {
            self.set(types::READY, True, reasons::ALL_PEERS_READY, ready_message);
            let message = "the cluster matches its spec".to_string();
            self.set(types::PROGRESSING, False, reasons::RECONCILED, message);
        } else {
            let reason = phase_reason(self.st.phase);
            self.set(types::READY, False, reason, ready_message);
            let message = progress_message(self.st.phase, &pods.sts, desired);
            self.set(types::PROGRESSING, True, reason, message);
        }
    }

    /// ScaleDownBlocked, and Ready/Progressing while a scale-down holds pods.
    fn scale_down(&mut self, inputs: &Inputs) {
        match &inputs.scale_down {
            Some(p) if p.blocked => {
                self.set(
                    SCALE_DOWN_BLOCKED,
                    True,
                    SCALE_DOWN_REFUSED,
                    p.message.clone(),
                );
                self.set(
                    types::READY,
                    False,
                    reasons::SCALE_DOWN_BLOCKED,
                    p.message.clone(),
                );
                let (progressing, message) = (types::PROGRESSING, p.message.clone());
                self.set(progressing, False, reasons::SCALE_DOWN_BLOCKED, message);
            }
            Some(p) => {
                self.set(
                    SCALE_DOWN_BLOCKED,
                    False,
                    reasons::NOT_BLOCKED,
                    String::new(),
                );
                self.set(types::READY, False, reasons::SCALING, p.message.clone());
                self.set(
                    types::PROGRESSING,
                    True,
                    reasons::SCALING_DOWN,
                    p.message.clone(),
                );
                self.st.phase = ClusterPhase::Scaling;
            }
            None => self.set(
                SCALE_DOWN_BLOCKED,
                False,
                reasons::NOT_BLOCKED,
                String::new(),
            ),
        }
    }

    /// `status.rollout`, and phase Upgrading with Ready/Progressing unless a scale-down or a
    /// blocking problem speaks.
    fn rollout(&mut self, inputs: &Inputs, pods: &Pods) {
        let Some(r) = &inputs.rollout else { return };
        self.st.rollout = Some(r.status.clone());
        if inputs.scale_down.is_some() || inputs.blocked.is_some() {
            return;
        }
        self.st.phase = ClusterPhase::Upgrading;
        let reason = if r.status.to_version.is_some() {
            reasons::UPGRADING
        } else {
            reasons::ROLLING_RESTART
        };
        let message = format!(
            "{} of {} pods updated: {}",
            r.status.updated_replicas, pods.sts_replicas, r.status.message
        );
        self.set(types::READY, False, reason, message.clone());
        self.set(types::PROGRESSING, True, reason, message);
    }

    /// `status.rebalance`, and Progressing while shards move in a ready cluster.
    fn rebalance(&mut self, inputs: &Inputs, pods: &Pods) {
        let Some(r) = &inputs.rebalance else { return };
        self.st.rebalance = Some(r.clone());
        if pods.all_ready && inputs.blocked.is_none() {
            self.set(
                types::PROGRESSING,
                True,
                reasons::REBALANCING,
                r.message.clone(),
            );
        }
    }

    /// UpgradeBlocked, and Progressing False for a refused downgrade when nothing else
    /// progresses.
    fn downgrade(&mut self, inputs: &Inputs) {
        let Some(d) = &inputs.downgrade else {
            self.set(UPGRADE_BLOCKED, False, reasons::NOT_BLOCKED, String::new());
            return;
        };
        self.set(UPGRADE_BLOCKED, True, DOWNGRADE_REFUSED, d.message.clone());
        if inputs.blocked.is_none() && inputs.scale_down.is_none() && inputs.rollout.is_none() {
            self.set(
                types::PROGRESSING,
                False,
                DOWNGRADE_REFUSED,
                d.message.clone(),
            );
        }
    }

    /// Degraded from the pods and a stuck rollout (which also makes the phase Degraded).
    fn degraded(&mut self, inputs: &Inputs, pods: &Pods) {
        let stuck = inputs.rollout.as_ref().and_then(|r| r.stuck.clone());
        let short = pods.ready() < pods.desired.min(self.st.replicas);
        let degraded = self.st.phase == ClusterPhase::Degraded
            || stuck.is_some()
            || (pods.was_running && !pods.all_ready && short);
        let (reason, message) = match (&stuck, degraded) {
            (Some(m), _) => (reasons::ROLLOUT_STUCK, m.clone()),
            (None, true) => (
                reasons::PEERS_NOT_READY,
                format!("{} of {} peers ready", pods.ready(), pods.desired),
            ),
            (None, false) => (reasons::AS_EXPECTED, String::new()),
        };
        if stuck.is_some() {
            self.st.phase = ClusterPhase::Degraded;
        }
        self.set(
            types::DEGRADED,
            ConditionStatus::from_bool(degraded),
            reason,
            message,
        );
    }

    /// Degraded True while a peer recovery runs or is refused (phase Running becomes
    /// Degraded).
    fn recovery(&mut self, inputs: &Inputs) {
        let Some(r) = &inputs.recovery else { return };
        let reason = if r.blocked {
            PEER_RECOVERY_BLOCKED
        } else {
            PEER_RECOVERY
        };
        self.set(types::DEGRADED, True, reason, r.message.clone());
        if self.st.phase == ClusterPhase::Running {
            self.st.phase = ClusterPhase::Degraded;
        }
    }

    /// kstatus' `Reconciling` and `Stalled`, from the conditions computed before: Stalled
    /// for a refused spec, a blocking problem, a refused day-2 step (ScaleDownBlocked,
    /// UpgradeBlocked, VolumeExpansionBlocked) and a stuck rollout or refused recovery;
    /// Reconciling while Progressing is True, a peer recovery runs, or Ready is not True; both
    /// False when paused or done.
    fn kstatus(&mut self, inputs: &Inputs) {
        let find = |t: &str| api_types::conditions::find_condition(&self.st.conditions, t);
        let is_true = |t: &str| find(t).filter(|c| c.status == True);
        let refusal = [
            SCALE_DOWN_BLOCKED,
            UPGRADE_BLOCKED,
            VOLUME_EXPANSION_BLOCKED,
        ]
        .into_iter()
        .find_map(is_true)
        .or_else(|| {
            is_true(types::DEGRADED)
                .filter(|c| c.reason == reasons::ROLLOUT_STUCK || c.reason == PEER_RECOVERY_BLOCKED)
        });
        let ready = find(types::READY);
        let state = if inputs.paused {
            Kstatus::current(reasons::PAUSED)
        } else if let Some(c) = refusal {
            Kstatus::stalled(&c.reason, &c.message)
        } else if let Some(c) =
            ready.filter(|_| inputs.invalid.is_some() || inputs.blocked.is_some())
        {
            Kstatus::stalled(&c.reason, &c.message)
        } else if let Some(c) = is_true(types::PROGRESSING)
            .or_else(|| is_true(types::DEGRADED).filter(|c| c.reason == PEER_RECOVERY))
        {
            Kstatus::reconciling(&c.reason, &c.message)
        } else if let Some(c) = ready.filter(|c| c.status != True) {
            Kstatus::reconciling(&c.reason, &c.message)
        } else {
            Kstatus::current(reasons::RECONCILED)
        };
        set_kstatus(&mut self.st.conditions, self.generation, &state);
    }

    /// MonitoringReady from the monitoring step; once `spec.monitoring` is off, False with
    /// reason `MonitoringDisabled` (only when the condition was written before).
    fn monitoring(&mut self, qc: &QdrantCluster, inputs: &Inputs) {
        match &inputs.monitoring {
            Some(m) => {
                let status = ConditionStatus::from_bool(m.ready);
                self.set(own::MONITORING_READY, status, &m.reason, m.message.clone());
            }
            None if !crate::build::monitoring::enabled(qc) && self.has(own::MONITORING_READY) => {
                let message = "spec.monitoring is off; its PodMonitor, PrometheusRule and dashboard are deleted";
                self.set(
                    own::MONITORING_READY,
                    False,
                    reasons::MONITORING_DISABLED,
                    message.into(),
                );
            }
            None => {}
        }
    }

    /// QuotasApplied from the quotas step.
    fn quotas(&mut self, inputs: &Inputs) {
        if let Some(q) = &inputs.quotas {
            let status = ConditionStatus::from_bool(q.applied);
            self.set(own::QUOTAS_APPLIED, status, &q.reason, q.message.clone());
        }
    }

    /// ZoneSpread from the zone balance, and Progressing True (`SpreadingZones`) while it
    /// moves a replica in a ready cluster; once `spec.zoneAware` is off, False with reason
    /// `ZoneAwarenessDisabled` (only when the condition was written before).
    /// Condition Adopted, as [`crate::adoption::report`] made it.
    fn adoption(&mut self, inputs: &Inputs) {
        if let Some(a) = &inputs.adoption {
            self.set(
                crate::vocabulary::types::ADOPTED,
                a.status,
                a.reason,
                a.message.clone(),
            );
        }
    }

    fn zones(&mut self, qc: &QdrantCluster, inputs: &Inputs, pods: &Pods) {
        match &inputs.zones {
            Some(z) => {
                let status = ConditionStatus::from_bool(z.spread);
                self.set(own::ZONE_SPREAD, status, z.reason, z.message.clone());
                if z.moving && pods.all_ready && inputs.blocked.is_none() {
                    let message = z.message.clone();
                    self.set(types::PROGRESSING, True, reasons::SPREADING_ZONES, message);
                }
            }
            None if !qc.spec.zone_aware && self.has(own::ZONE_SPREAD) => {
                let message = "spec.zoneAware is off: shard replicas are placed without \
                               regard to zones";
                self.set(
                    own::ZONE_SPREAD,
                    False,
                    reasons::ZONE_AWARENESS_DISABLED,
                    message.into(),
                );
            }
            None => {}
        }
    }

    /// `status.volumes`, VolumeExpansionBlocked, and Progressing while claims resize.
    fn volumes(&mut self, inputs: &Inputs) {
        if let Some(v) = &inputs.volumes {
            self.st.volumes = v.status.clone();
            let (status, reason, message) = match &v.blocked {
                Some((reason, message)) => (True, reason.as_str(), message.clone()),
                None => (False, reasons::NOT_BLOCKED, String::new()),
            };
            self.set(VOLUME_EXPANSION_BLOCKED, status, reason, message);
        }
        volume_conditions(
            &mut self.st.conditions,
            inputs.volumes.as_ref(),
            self.generation,
        );
    }
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
                reasons::NOT_BLOCKED,
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
        Some(c) if c.reason != reasons::RECONCILED => return,
        _ => (reasons::EXPANDING_VOLUMES.to_string(), v.message()),
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

/// `status.peers[].zone`: with `spec.zoneAware`, the zone the zone balance read for each
/// peer's pod, else the last known zone of the same pod; without it, none.
fn peer_zones(qc: &QdrantCluster, inputs: &Inputs, peers: &mut [api_types::cluster::PeerStatus]) {
    let last: std::collections::BTreeMap<String, String> = qc
        .status
        .iter()
        .flat_map(|s| &s.peers)
        .filter_map(|p| Some((p.pod.clone(), p.zone.clone()?)))
        .collect();
    for p in peers {
        p.zone = if !qc.spec.zone_aware {
            None
        } else if let Some(z) = &inputs.zones {
            z.zones.get(&p.pod).cloned()
        } else {
            last.get(&p.pod).cloned()
        };
    }
}

fn phase_reason(phase: ClusterPhase) -> &'static str {
    match phase {
        ClusterPhase::Creating => reasons::CREATING,
        ClusterPhase::Scaling => reasons::SCALING,
        ClusterPhase::Upgrading => reasons::ROLLING_UPDATE,
        ClusterPhase::Degraded => reasons::PEERS_NOT_READY,
        ClusterPhase::Running => reasons::ALL_PEERS_READY,
        ClusterPhase::Pending => reasons::PENDING,
        ClusterPhase::Failed => reasons::FAILED,
        ClusterPhase::Paused => reasons::PAUSED,
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
