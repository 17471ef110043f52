//! The precedence of the status, as a table: for each combination of gate, pods and
//! operation reports, which phase and which reasons Ready, Progressing and Degraded show.
//! Pure: `status::compute` with no cluster.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use api_types::{
    QdrantCluster, QdrantClusterStatus,
    cluster::{ClusterPhase, RebalanceStatus, RolloutStatus},
    conditions::{ConditionStatus, find_condition, types},
};
use cluster_controller::{
    recover::RecoveryProgress,
    rollout::{DowngradeRefusal, RolloutProgress},
    scale::ScaleDownProgress,
    status::{Inputs, compute},
    vocabulary::types::{SCALE_DOWN_BLOCKED, UPGRADE_BLOCKED, ZONE_SPREAD},
    zones::ZoneProgress,
};
use k8s_openapi::api::apps::v1::StatefulSet;
use serde_json::json;

/// A 3-peer cluster that was running before (`status.version` set).
fn cluster() -> QdrantCluster {
    let mut qc: QdrantCluster = serde_json::from_value(json!({
        "apiVersion": "qdrant.operator.dev/v1alpha1", "kind": "QdrantCluster",
        "metadata": {"name": "demo", "namespace": "ns", "generation": 2},
        "spec": {"replicas": 3}}))
    .unwrap();
    qc.status = Some(QdrantClusterStatus {
        version: Some("v1.18.3".into()),
        ..QdrantClusterStatus::default()
    });
    qc
}

/// The applied StatefulSet with `replicas` pods, `ready` of them ready, `updated` at the
/// update revision.
fn sts(replicas: i32, ready: i32, updated: i32) -> StatefulSet {
    serde_json::from_value(json!({"metadata": {"name": "demo", "generation": 1},
        "spec": {"replicas": replicas, "selector": {}, "template": {}, "serviceName": "demo-headless"},
        "status": {"replicas": replicas, "readyReplicas": ready, "updatedReplicas": updated,
            "updateRevision": "r2", "observedGeneration": 1}}))
    .unwrap()
}

fn rollout(stuck: Option<&str>) -> RolloutProgress {
    RolloutProgress {
        status: RolloutStatus {
            update_revision: "r2".into(),
            updated_replicas: 1,
            message: "restarting demo-2".into(),
            ..RolloutStatus::default()
        },
        stuck: stuck.map(str::to_owned),
    }
}

fn scale_down(blocked: bool) -> ScaleDownProgress {
    ScaleDownProgress {
        message: "draining peer 3".into(),
        blocked,
    }
}

fn downgrade() -> DowngradeRefusal {
    DowngradeRefusal {
        keep_image: "qdrant/qdrant:v1.18.3".into(),
        message: "spec.image.tag v1.17.0 is a downgrade".into(),
    }
}

fn rebalance() -> RebalanceStatus {
    RebalanceStatus {
        message: "moving shard 0".into(),
        ..RebalanceStatus::default()
    }
}

/// A zone balance report: `moving` while a replica moves into another zone.
fn zones(spread: bool, moving: bool) -> ZoneProgress {
    ZoneProgress {
        zones: [("demo-0", "a"), ("demo-1", "a"), ("demo-2", "b")]
            .into_iter()
            .map(|(p, z)| (p.to_owned(), z.to_owned()))
            .collect(),
        spread,
        reason: if spread {
            "ReplicasSpread"
        } else {
            "ShardsInOneZone"
        },
        message: "collection docs shard 0: every replica in zone a".into(),
        moving,
    }
}

fn recovery(blocked: bool) -> RecoveryProgress {
    RecoveryProgress {
        message: "copying shards to the new peer".into(),
        blocked,
    }
}

/// `(status, reason)` of condition `t`.
fn says(st: &QdrantClusterStatus, t: &str) -> (ConditionStatus, String) {
    let c = find_condition(&st.conditions, t).unwrap_or_else(|| panic!("no {t}"));
    (c.status, c.reason.clone())
}

#[test]
fn precedence_table() {
    use ConditionStatus::{False, True, Unknown};
    let blocked = || {
        Some((
            "SecretNotFound".to_string(),
            "Secret team-key is missing".to_string(),
        ))
    };
    // (what, inputs, phase, Ready, Progressing, Degraded)
    type Row = (
        &'static str,
        Inputs,
        ClusterPhase,
        (ConditionStatus, &'static str),
        (ConditionStatus, &'static str),
        (ConditionStatus, &'static str),
    );
    let rows: Vec<Row> = vec![
        (
            "pause wins over an invalid spec",
            Inputs {
                paused: true,
                invalid: Some("spec.replicas: must be > 0".into()),
                ..Inputs::default()
            },
            ClusterPhase::Paused,
            (Unknown, "Paused"),
            (Unknown, "Paused"),
            (Unknown, "Paused"),
        ),
        (
            "an invalid spec applies nothing",
            Inputs {
                invalid: Some("spec.replicas: must be > 0".into()),
                statefulset: Some(sts(3, 3, 3)),
                ..Inputs::default()
            },
            ClusterPhase::Failed,
            (False, "InvalidSpec"),
            (False, "InvalidSpec"),
            (Unknown, "InvalidSpec"),
        ),
        (
            "blocked before the StatefulSet was read",
            Inputs {
                blocked: blocked(),
                ..Inputs::default()
            },
            ClusterPhase::Failed,
            (False, "SecretNotFound"),
            (False, "SecretNotFound"),
            (Unknown, "SecretNotFound"),
        ),
        (
            "all peers ready",
            Inputs {
                statefulset: Some(sts(3, 3, 3)),
                ..Inputs::default()
            },
            ClusterPhase::Running,
            (True, "AllPeersReady"),
            (False, "Reconciled"),
            (False, "AsExpected"),
        ),
        (
            "a blocking problem beats the rollout",
            Inputs {
                blocked: blocked(),
                statefulset: Some(sts(3, 3, 1)),
                rollout: Some(rollout(None)),
                ..Inputs::default()
            },
            ClusterPhase::Upgrading,
            (False, "SecretNotFound"),
            (False, "SecretNotFound"),
            (False, "AsExpected"),
        ),
        (
            "a scale-down beats the rollout",
            Inputs {
                statefulset: Some(sts(4, 4, 4)),
                scale_down: Some(scale_down(false)),
                rollout: Some(rollout(None)),
                ..Inputs::default()
            },
            ClusterPhase::Scaling,
            (False, "Scaling"),
            (True, "ScalingDown"),
            (False, "AsExpected"),
        ),
        (
            "a refused scale-down",
            Inputs {
                statefulset: Some(sts(4, 4, 4)),
                scale_down: Some(scale_down(true)),
                ..Inputs::default()
            },
            ClusterPhase::Degraded,
            (False, "ScaleDownBlocked"),
            (False, "ScaleDownBlocked"),
            (True, "PeersNotReady"),
        ),
        (
            "a rolling restart",
            Inputs {
                statefulset: Some(sts(3, 3, 1)),
                rollout: Some(rollout(None)),
                ..Inputs::default()
            },
            ClusterPhase::Upgrading,
            (False, "RollingRestart"),
            (True, "RollingRestart"),
            (False, "AsExpected"),
        ),
        (
            "a stuck rollout is Degraded",
            Inputs {
                statefulset: Some(sts(3, 2, 1)),
                rollout: Some(rollout(Some("demo-2 not back in 600 s"))),
                ..Inputs::default()
            },
            ClusterPhase::Degraded,
            (False, "RollingRestart"),
            (True, "RollingRestart"),
            (True, "RolloutStuck"),
        ),
        (
            "a refused downgrade when nothing else progresses",
            Inputs {
                statefulset: Some(sts(3, 3, 3)),
                downgrade: Some(downgrade()),
                ..Inputs::default()
            },
            ClusterPhase::Running,
            (True, "AllPeersReady"),
            (False, "DowngradeRefused"),
            (False, "AsExpected"),
        ),
        (
            "a rollout speaks over a refused downgrade",
            Inputs {
                statefulset: Some(sts(3, 3, 1)),
                downgrade: Some(downgrade()),
                rollout: Some(rollout(None)),
                ..Inputs::default()
            },
            ClusterPhase::Upgrading,
            (False, "RollingRestart"),
            (True, "RollingRestart"),
            (False, "AsExpected"),
        ),
        (
            "a rebalance of a ready cluster",
            Inputs {
                statefulset: Some(sts(3, 3, 3)),
                rebalance: Some(rebalance()),
                ..Inputs::default()
            },
            ClusterPhase::Running,
            (True, "AllPeersReady"),
            (True, "Rebalancing"),
            (False, "AsExpected"),
        ),
        (
            "a replica moving into another zone in a ready cluster",
            Inputs {
                statefulset: Some(sts(3, 3, 3)),
                zones: Some(zones(false, true)),
                ..Inputs::default()
            },
            ClusterPhase::Running,
            (True, "AllPeersReady"),
            (True, "SpreadingZones"),
            (False, "AsExpected"),
        ),
        (
            "shards in one zone but nothing moving (waiting) do not progress",
            Inputs {
                statefulset: Some(sts(3, 3, 3)),
                zones: Some(zones(false, false)),
                ..Inputs::default()
            },
            ClusterPhase::Running,
            (True, "AllPeersReady"),
            (False, "Reconciled"),
            (False, "AsExpected"),
        ),
        (
            "a rollout speaks over a zone move",
            Inputs {
                statefulset: Some(sts(3, 2, 1)),
                rollout: Some(rollout(None)),
                zones: Some(zones(false, true)),
                ..Inputs::default()
            },
            ClusterPhase::Upgrading,
            (False, "RollingRestart"),
            (True, "RollingRestart"),
            (True, "PeersNotReady"),
        ),
        (
            "a peer recovery makes a running cluster Degraded",
            Inputs {
                statefulset: Some(sts(3, 3, 3)),
                recovery: Some(recovery(false)),
                ..Inputs::default()
            },
            ClusterPhase::Degraded,
            (True, "AllPeersReady"),
            (False, "Reconciled"),
            (True, "PeerRecovery"),
        ),
        (
            "a refused peer recovery",
            Inputs {
                statefulset: Some(sts(3, 2, 3)),
                recovery: Some(recovery(true)),
                ..Inputs::default()
            },
            ClusterPhase::Degraded,
            (False, "PeersNotReady"),
            (True, "PeersNotReady"),
            (True, "PeerRecoveryBlocked"),
        ),
    ];
    let mut wrong = vec![];
    for (what, inputs, phase, ready, progressing, degraded) in rows {
        let qc = cluster();
        let st = compute(&qc, &inputs);
        let got = (
            st.phase,
            says(&st, types::READY),
            says(&st, types::PROGRESSING),
            says(&st, types::DEGRADED),
        );
        let want = (
            phase,
            (ready.0, ready.1.to_string()),
            (progressing.0, progressing.1.to_string()),
            (degraded.0, degraded.1.to_string()),
        );
        if got != want {
            wrong.push(format!("{what}:\n  want {want:?}\n  got  {got:?}"));
        }
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}

/// The refusal conditions are False (NotBlocked) unless their operation refuses.
#[test]
fn refusal_conditions_follow_their_operation() {
    let qc = cluster();
    let calm = compute(
        &qc,
        &Inputs {
            statefulset: Some(sts(3, 3, 3)),
            ..Inputs::default()
        },
    );
    assert_eq!(
        says(&calm, SCALE_DOWN_BLOCKED),
        (ConditionStatus::False, "NotBlocked".into())
    );
    assert_eq!(
        says(&calm, UPGRADE_BLOCKED),
        (ConditionStatus::False, "NotBlocked".into())
    );
    let refused = compute(
        &qc,
        &Inputs {
            statefulset: Some(sts(4, 4, 4)),
            scale_down: Some(scale_down(true)),
            downgrade: Some(downgrade()),
            ..Inputs::default()
        },
    );
    assert_eq!(
        says(&refused, SCALE_DOWN_BLOCKED),
        (ConditionStatus::True, "ScaleDownRefused".into())
    );
    assert_eq!(
        says(&refused, UPGRADE_BLOCKED),
        (ConditionStatus::True, "DowngradeRefused".into())
    );
}

/// kstatus' `Reconciling` and `Stalled` (what Flux and `kstatus` read), from the same
/// inputs: which one is True, with which reason; `None` when both are False.
#[test]
fn kstatus_table() {
    use api_types::conditions::types::{RECONCILING, STALLED};
    let blocked = || {
        Some((
            "SecretNotFound".to_string(),
            "Secret team-key is missing".to_string(),
        ))
    };
    let mut creating = cluster();
    creating.status = None;
    /// (what, cluster, inputs, the True one of Reconciling/Stalled and its reason)
    type Row = (
        &'static str,
        QdrantCluster,
        Inputs,
        Option<(&'static str, &'static str)>,
    );
    let rows: Vec<Row> = vec![
        (
            "paused",
            cluster(),
            Inputs {
                paused: true,
                ..Inputs::default()
            },
            None,
        ),
        (
            "invalid",
            cluster(),
            Inputs {
                invalid: Some("spec.replicas: must be > 0".into()),
                ..Inputs::default()
            },
            Some((STALLED, "InvalidSpec")),
        ),
        (
            "blocked early",
            cluster(),
            Inputs {
                blocked: blocked(),
                ..Inputs::default()
            },
            Some((STALLED, "SecretNotFound")),
        ),
        (
            "blocked",
            cluster(),
            Inputs {
                blocked: blocked(),
                statefulset: Some(sts(3, 3, 3)),
                ..Inputs::default()
            },
            Some((STALLED, "SecretNotFound")),
        ),
        (
            "creating",
            creating,
            Inputs {
                statefulset: Some(sts(3, 0, 3)),
                ..Inputs::default()
            },
            Some((RECONCILING, "Creating")),
        ),
        (
            "all ready",
            cluster(),
            Inputs {
                statefulset: Some(sts(3, 3, 3)),
                ..Inputs::default()
            },
            None,
        ),
        (
            "rolling",
            cluster(),
            Inputs {
                statefulset: Some(sts(3, 3, 1)),
                rollout: Some(rollout(None)),
                ..Inputs::default()
            },
            Some((RECONCILING, "RollingRestart")),
        ),
        (
            "stuck rollout",
            cluster(),
            Inputs {
                statefulset: Some(sts(3, 2, 1)),
                rollout: Some(rollout(Some("demo-2 not back"))),
                ..Inputs::default()
            },
            Some((STALLED, "RolloutStuck")),
        ),
        (
            "draining",
            cluster(),
            Inputs {
                statefulset: Some(sts(4, 4, 4)),
                scale_down: Some(scale_down(false)),
                ..Inputs::default()
            },
            Some((RECONCILING, "ScalingDown")),
        ),
        (
            "refused scale-down",
            cluster(),
            Inputs {
                statefulset: Some(sts(4, 4, 4)),
                scale_down: Some(scale_down(true)),
                ..Inputs::default()
            },
            Some((STALLED, "ScaleDownRefused")),
        ),
        (
            "refused downgrade",
            cluster(),
            Inputs {
                statefulset: Some(sts(3, 3, 3)),
                downgrade: Some(downgrade()),
                ..Inputs::default()
            },
            Some((STALLED, "DowngradeRefused")),
        ),
        (
            "rebalancing",
            cluster(),
            Inputs {
                statefulset: Some(sts(3, 3, 3)),
                rebalance: Some(rebalance()),
                ..Inputs::default()
            },
            Some((RECONCILING, "Rebalancing")),
        ),
        (
            "recovering",
            cluster(),
            Inputs {
                statefulset: Some(sts(3, 3, 3)),
                recovery: Some(recovery(false)),
                ..Inputs::default()
            },
            Some((RECONCILING, "PeerRecovery")),
        ),
        (
            "refused recovery",
            cluster(),
            Inputs {
                statefulset: Some(sts(3, 2, 3)),
                recovery: Some(recovery(true)),
                ..Inputs::default()
            },
            Some((STALLED, "PeerRecoveryBlocked")),
        ),
    ];
    let mut wrong = vec![];
    for (what, qc, inputs, want) in rows {
        let st = compute(&qc, &inputs);
        let got =
            testkit::kstatus::verdict(&st.conditions).unwrap_or_else(|e| panic!("{what}: {e}"));
        let want = want.map(|(t, reason)| (t, reason.to_string()));
        if got != want {
            wrong.push(format!("{what}: want {want:?}, got {got:?}"));
        }
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}

/// ZoneSpread follows the zone balance; `status.peers[].zone` its zones, kept while it did
/// not run; both go once `spec.zoneAware` is off.
#[test]
fn zone_spread_condition_and_peer_zones() {
    use api_types::cluster::PeerStatus;
    let peer = |i: u32| PeerStatus {
        pod: format!("demo-{i}"),
        peer_id: 100 + u64::from(i),
        uri: format!("http://demo-{i}.demo-headless:6335"),
        url: None,
        raft_role: None,
        zone: None,
    };
    let observed = || {
        Some(Ok(cluster_controller::peers::PeersObservation {
            peers: (0..3).map(peer).collect(),
            ..Default::default()
        }))
    };
    let mut qc = cluster();
    // Never zone-aware: no condition, no zones.
    let st = compute(
        &qc,
        &Inputs {
            statefulset: Some(sts(3, 3, 3)),
            peers: observed(),
            ..Inputs::default()
        },
    );
    assert!(find_condition(&st.conditions, ZONE_SPREAD).is_none());
    assert!(st.peers.iter().all(|p| p.zone.is_none()));

    qc.spec.zone_aware = true;
    let spread = compute(
        &qc,
        &Inputs {
            statefulset: Some(sts(3, 3, 3)),
            peers: observed(),
            zones: Some(zones(true, false)),
            ..Inputs::default()
        },
    );
    assert_eq!(
        says(&spread, ZONE_SPREAD),
        (ConditionStatus::True, "ReplicasSpread".into())
    );
    let got: Vec<_> = spread.peers.iter().map(|p| p.zone.clone()).collect();
    assert_eq!(got, [Some("a".into()), Some("a".into()), Some("b".into())]);

    // The balance did not run (another operation held the cluster): the zones stay.
    qc.status = Some(spread.clone());
    let kept = compute(
        &qc,
        &Inputs {
            statefulset: Some(sts(3, 3, 3)),
            peers: observed(),
            ..Inputs::default()
        },
    );
    assert_eq!(kept.peers, spread.peers);
    assert_eq!(says(&kept, ZONE_SPREAD), says(&spread, ZONE_SPREAD));

    // Turned off: the condition says so, the zones go.
    qc.spec.zone_aware = false;
    let off = compute(
        &qc,
        &Inputs {
            statefulset: Some(sts(3, 3, 3)),
            peers: observed(),
            ..Inputs::default()
        },
    );
    assert_eq!(
        says(&off, ZONE_SPREAD),
        (ConditionStatus::False, "ZoneAwarenessDisabled".into())
    );
    assert!(off.peers.iter().all(|p| p.zone.is_none()));
}
