//! Every condition type and reason the cluster-controller writes on a QdrantCluster, in one
//! place: what `kubectl get qdrantcluster -o yaml` can show. The shared types (Ready,
//! Progressing, Degraded, Paused) come from [`api_types::conditions::types`]; the types here
//! are this controller's own. Pure: no I/O.

use api_types::QdrantCluster;

/// Condition types of this controller (besides Ready, Progressing, Degraded and Paused).
pub mod types {
    /// A scale-down is refused (the message names collections and shards).
    pub const SCALE_DOWN_BLOCKED: &str = "ScaleDownBlocked";
    /// An image change is refused (a downgrade across minor versions).
    pub const UPGRADE_BLOCKED: &str = "UpgradeBlocked";
    /// Growing the volumes to `spec.persistence.size` is refused (a shrink, a StorageClass
    /// without `allowVolumeExpansion: true`, a rejected patch); the reason is one of the
    /// volume reasons below and the message names the field, the claims and the StorageClass.
    pub const VOLUME_EXPANSION_BLOCKED: &str = "VolumeExpansionBlocked";
    /// `spec.monitoring`: the PodMonitor and PrometheusRule are applied (True), or the
    /// prometheus-operator CRDs are missing (False). Absent while monitoring was never on.
    pub const MONITORING_READY: &str = "MonitoringReady";
    /// `spec.config.storage.quotas`: Qdrant enforces it (True), or why not (False). Absent
    /// while the cluster never had quotas.
    pub const QUOTAS_APPLIED: &str = "QuotasApplied";
    /// `spec.zoneAware`: every shard with two or more replicas has replicas in at least two
    /// zones (True), or not yet, or cannot be (False; the reason says why). Absent while
    /// zone awareness was never on.
    pub const ZONE_SPREAD: &str = "ZoneSpread";
    /// `spec.adoption`: the named StatefulSet was taken over (True), or why it is left alone
    /// (False; nothing is applied). Absent without `spec.adoption`.
    pub const ADOPTED: &str = "Adopted";
}

/// Condition reasons, grouped by what sets them.
pub mod reasons {
    // Gate: paused and invalid.
    pub use api_types::conditions::reasons::{NOT_PAUSED, PAUSE_ANNOTATION_SET};
    /// Ready, Progressing and Degraded seen for the first time while paused.
    pub const PAUSED: &str = "Paused";
    /// Ready False, Progressing False: the spec was refused (the message names the field).
    pub const INVALID_SPEC: &str = "InvalidSpec";

    // Peers and phases.
    /// Ready True: every peer ready.
    pub const ALL_PEERS_READY: &str = "AllPeersReady";
    /// Progressing False: the cluster matches its spec.
    pub const RECONCILED: &str = "Reconciled";
    /// Phase Creating.
    pub const CREATING: &str = "Creating";
    /// Phase Scaling; also Ready False during a scale-down.
    pub const SCALING: &str = "Scaling";
    /// Phase Upgrading while the StatefulSet rolls.
    pub const ROLLING_UPDATE: &str = "RollingUpdate";
    /// Phase Degraded, and Degraded True: fewer peers ready than wanted.
    pub const PEERS_NOT_READY: &str = "PeersNotReady";
    /// Phase Pending.
    pub const PENDING: &str = "Pending";
    /// Phase Failed.
    pub const FAILED: &str = "Failed";
    /// Degraded False.
    pub const AS_EXPECTED: &str = "AsExpected";
    /// False of a refusal condition (ScaleDownBlocked, UpgradeBlocked, VolumeExpansionBlocked).
    pub const NOT_BLOCKED: &str = "NotBlocked";

    // Scale-down.
    /// ScaleDownBlocked True.
    pub const SCALE_DOWN_REFUSED: &str = "ScaleDownRefused";
    /// Ready False and Progressing False of a refused scale-down.
    pub const SCALE_DOWN_BLOCKED: &str = super::types::SCALE_DOWN_BLOCKED;
    /// Progressing True while peers drain.
    pub const SCALING_DOWN: &str = "ScalingDown";

    // Rollout and upgrade.
    /// Ready False and Progressing True while the image changes.
    pub const UPGRADING: &str = "Upgrading";
    /// Ready False and Progressing True while pods restart at the same image.
    pub const ROLLING_RESTART: &str = "RollingRestart";
    /// Degraded True: a restarted pod did not come back in time.
    pub const ROLLOUT_STUCK: &str = "RolloutStuck";
    /// UpgradeBlocked True (and Progressing False) for a refused downgrade.
    pub const DOWNGRADE_REFUSED: &str = "DowngradeRefused";

    // Rebalance.
    /// Progressing True while shards move.
    pub const REBALANCING: &str = "Rebalancing";

    // Peer recovery.
    /// Degraded True while a pod whose volume came back empty gets its shards back.
    pub const PEER_RECOVERY: &str = "PeerRecovery";
    /// Degraded True: the recovery is refused (the message says why).
    pub const PEER_RECOVERY_BLOCKED: &str = "PeerRecoveryBlocked";

    // Volume expansion (VolumeExpansionBlocked True, and Progressing).
    /// Progressing True while claims resize and nothing else progresses.
    pub const EXPANDING_VOLUMES: &str = "ExpandingVolumes";
    /// `spec.persistence.size` is smaller than a claim's request: volumes never shrink.
    pub const SHRINK_REFUSED: &str = "ShrinkRefused";
    /// The claim's StorageClass is missing or has no `allowVolumeExpansion: true`.
    pub const EXPANSION_NOT_SUPPORTED: &str = "ExpansionNotSupported";
    /// The API server refused the patch of a claim's request.
    pub const EXPANSION_REJECTED: &str = "ExpansionRejected";
    /// `spec.persistence.size` or a claim's quantity does not parse.
    pub const INVALID_SIZE: &str = "InvalidSize";
    /// The claims or their StorageClass could not be read (a permanent API error).
    pub const CANNOT_READ_VOLUMES: &str = "CannotReadVolumes";

    // Monitoring.
    /// MonitoringReady True.
    pub const MONITORING_APPLIED: &str = "MonitoringApplied";
    /// MonitoringReady False: no `monitoring.coreos.com/v1` PodMonitor or PrometheusRule kind.
    pub const PROMETHEUS_OPERATOR_MISSING: &str = "PrometheusOperatorMissing";
    /// MonitoringReady False: `spec.monitoring` was turned off (its objects are deleted).
    pub const MONITORING_DISABLED: &str = "MonitoringDisabled";

    // Quotas.
    /// QuotasApplied True: `GET /quotas` reports the spec's config.
    pub const QUOTAS_APPLIED: &str = "QuotasApplied";
    /// QuotasApplied False: some pod runs a Qdrant before 1.19, which has no quotas.
    pub const QUOTAS_NEED_NEWER_QDRANT: &str = "QuotasNeedNewerQdrant";
    /// QuotasApplied False: the pods are rolling; quotas wait for the rollout to end.
    pub const QUOTAS_WAITING_FOR_ROLLOUT: &str = "WaitingForRollout";
    /// QuotasApplied False: `storage.quotas` was removed from the spec; Qdrant's are disabled.
    pub const QUOTAS_REMOVED: &str = "QuotasRemoved";
    // Zones (ZoneSpread, and Progressing).
    /// ZoneSpread True: every shard with two or more replicas is in two zones or more.
    pub const REPLICAS_SPREAD: &str = "ReplicasSpread";
    /// ZoneSpread False: some shards have every replica in one zone (the message names them
    /// and the move under way).
    pub const SHARDS_IN_ONE_ZONE: &str = "ShardsInOneZone";
    /// ZoneSpread False: some pod's zone is unknown (not scheduled, its node lacks the
    /// `spec.zoneTopologyKey` label, or the node cannot be read).
    pub const ZONES_UNKNOWN: &str = "ZonesUnknown";
    /// ZoneSpread False: every peer is in one zone, so there is nowhere to spread to.
    pub const SINGLE_ZONE: &str = "SingleZone";
    /// ZoneSpread False: `spec.zoneAware` was turned off.
    pub const ZONE_AWARENESS_DISABLED: &str = "ZoneAwarenessDisabled";
    /// Progressing True while a shard replica moves into another zone.
    pub const SPREADING_ZONES: &str = "SpreadingZones";

    // Adoption (Adopted, and Ready False while refused).
    /// Adopted True: the StatefulSet is controlled by this QdrantCluster.
    pub const ADOPTED: &str = super::types::ADOPTED;
    /// Adopted False: `spec.adoption` names a StatefulSet that does not exist.
    pub const STATEFULSET_NOT_FOUND: &str = "StatefulSetNotFound";
    /// Ready False: StatefulSet `<cluster>` exists, nothing controls it, and `spec.adoption`
    /// is not set (the operator never seizes it silently).
    pub const STATEFULSET_NOT_OWNED: &str = "StatefulSetNotOwned";
    /// Adopted and Ready False: StatefulSet `<cluster>` has another controller.
    pub const OWNED_BY_ANOTHER_CONTROLLER: &str = "OwnedByAnotherController";
    /// Adopted False: the StatefulSet cannot be taken over as it is (the message lists every
    /// difference and the field to change).
    pub const SHAPE_MISMATCH: &str = "ShapeMismatch";

    // TLS (Ready False).
    /// The Secret named in `spec.tls.secretName` does not exist.
    pub const TLS_SECRET_NOT_FOUND: &str = "TlsSecretNotFound";
    /// A TLS Secret lacks a key, or its certificate is unreadable, expired or does not cover
    /// the names clients dial.
    pub const TLS_SECRET_INVALID: &str = "TlsSecretInvalid";
    /// `spec.tls.p2p.enabled` differs from what the cluster was created with.
    pub const TLS_P2P_IMMUTABLE: &str = "TlsP2pImmutable";
    /// The generated CA expires within 30 days; it must be replaced by hand.
    pub const TLS_CA_EXPIRING: &str = "TlsCaExpiring";
    /// A certificate could not be generated or signed.
    pub const TLS_CERTIFICATE_ERROR: &str = "TlsCertificateError";
}

/// True when condition `type_` of `qc`'s stored status already says `reason` with `message`,
/// so a Warning event for the same refusal is not repeated. Reads `status.conditions` only.
pub fn reported(qc: &QdrantCluster, type_: &str, reason: &str, message: &str) -> bool {
    qc.status.as_ref().is_some_and(|s| {
        api_types::conditions::condition_says(&s.conditions, type_, reason, message)
    })
}
