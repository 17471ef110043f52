//! QdrantBackups with `method: VolumeSnapshot` and QdrantRestores from them: the pure builders
//! (table tests), and the real reconciles against the fake API server and the fake Qdrant —
//! the VolumeSnapshot CRDs missing, the class missing, snapshots cut and watched to ready, a
//! CSI error, a missing claim, retention and deletion policies, and the restore's refusals.
//! The real-peer scenario (real Qdrant, the fake CSI snapshotter) is `real_volume_snapshots.rs`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::{collections::BTreeMap, sync::Arc, time::Duration};

use api_types::{
    QdrantBackup, QdrantBackupSchedule, QdrantRestore,
    backup::{BackupPhase, PeerVolumeSnapshot},
    conditions::{ConditionStatus, find_condition},
};
use backup_controller::{
    backup,
    build::volume_snapshot::{
        self as build, flush_wait, quantity_bytes, restored_claim, snapshot_name,
    },
    restore, schedule,
};
use common::Env;
use reconcile_lib::qdrant::{QdrantClient, QdrantConnection};
use serde_json::{Value, json};
use testkit::{
    harness::Patience,
    qdrant::{FakeQdrant, FakeQdrantOptions},
};
use url::Url;

const NS: &str = "vs";
const API: &str = "qdrant.operator.dev/v1alpha1";
const SNAP: &str = "snapshot.storage.k8s.io/v1";
const CLASS: &str = "csi-snapclass";
const PATIENCE: Patience = Patience::rounds(300, Duration::from_millis(100));

// ---------------------------------------------------------------------------------------------
// Pure builders
// ---------------------------------------------------------------------------------------------

fn planned(ordinal: u32) -> PeerVolumeSnapshot {
    build::plan("nightly", "demo", "storage", ordinal + 1, &BTreeMap::new())
        .pop()
        .unwrap()
}

#[test]
fn snapshot_names_are_deterministic_and_fit() {
    assert_eq!(
        snapshot_name("nightly", "storage-demo-0"),
        "nightly-storage-demo-0"
    );
    let long = "b".repeat(250);
    let a = snapshot_name(&long, "storage-demo-0");
    let b = snapshot_name(&long, "storage-demo-1");
    assert_eq!(a.len(), 253, "{a}");
    assert_ne!(a, b, "the hash keeps long names apart");
    assert_eq!(a, snapshot_name(&long, "storage-demo-0"));
}

#[test]
fn plan_is_one_snapshot_per_ordinal_with_its_peer() {
    let peers = BTreeMap::from([("demo-0".to_string(), 11), ("demo-2".to_string(), 33)]);
    let plan = build::plan("nightly", "demo", "storage", 3, &peers);
    let rows: Vec<(u32, Option<u64>, &str, &str)> = plan
        .iter()
        .map(|p| {
            (
                p.ordinal,
                p.peer_id,
                p.claim_name.as_str(),
                p.volume_snapshot_name.as_str(),
            )
        })
        .collect();
    assert_eq!(
        rows,
        [
            (0, Some(11), "storage-demo-0", "nightly-storage-demo-0"),
            (1, None, "storage-demo-1", "nightly-storage-demo-1"),
            (2, Some(33), "storage-demo-2", "nightly-storage-demo-2"),
        ]
    );
    assert!(plan.iter().all(|p| !p.ready_to_use));
}

#[test]
fn the_volume_snapshot_names_its_claim_and_class_and_has_no_owner() {
    let qbak: QdrantBackup = serde_json::from_value(json!({
        "apiVersion": API, "kind": "QdrantBackup",
        "metadata": {"name": "nightly", "namespace": NS, "uid": "u-1"},
        "spec": {"cluster": {"name": "demo"}, "method": "VolumeSnapshot",
                 "volumeSnapshot": {"className": CLASS}}}))
    .unwrap();
    let vs =
        serde_json::to_value(build::volume_snapshot(&qbak, "demo", &planned(1), CLASS)).unwrap();
    assert_eq!(vs["apiVersion"], SNAP);
    assert_eq!(vs["kind"], "VolumeSnapshot");
    assert_eq!(vs["metadata"]["name"], "nightly-storage-demo-1");
    assert_eq!(vs["metadata"]["namespace"], NS);
    assert_eq!(vs["spec"]["volumeSnapshotClassName"], CLASS);
    assert_eq!(
        vs["spec"]["source"],
        json!({"persistentVolumeClaimName": "storage-demo-1"})
    );
    assert_eq!(
        vs["metadata"]["labels"]["qdrant.operator.dev/backup"],
        "nightly"
    );
    assert_eq!(
        vs["metadata"]["labels"]["qdrant.operator.dev/cluster"],
        "demo"
    );
    assert_eq!(
        vs["metadata"]["annotations"]["qdrant.operator.dev/ordinal"],
        "1"
    );
    assert!(vs["metadata"]["ownerReferences"].is_null(), "{vs}");
}

#[test]
fn observe_reads_ready_size_content_and_error() {
    let p = planned(0);
    let seen = build::observe(
        &p,
        &json!({"status": {"readyToUse": true, "restoreSize": "1Gi",
                            "boundVolumeSnapshotContentName": "snapcontent-1"}}),
    );
    assert!(seen.ready_to_use);
    assert_eq!(seen.restore_size.as_deref(), Some("1Gi"));
    assert_eq!(
        seen.bound_volume_snapshot_content_name.as_deref(),
        Some("snapcontent-1")
    );
    assert_eq!(seen.error, None);
    let failed = build::observe(
        &p,
        &json!({"status": {"readyToUse": false, "error": {"message": "quota exceeded"}}}),
    );
    assert!(!failed.ready_to_use);
    assert_eq!(failed.error.as_deref(), Some("quota exceeded"));
    let fresh = build::observe(&p, &json!({"spec": {}}));
    assert_eq!(fresh, p);
}

#[test]
fn flush_wait_is_the_longest_interval_plus_a_second() {
    let cases: &[(&[Value], u64)] = &[
        (&[], 1),
        (&[json!({})], 6),
        (&[json!({"optimizer_config": {"flush_interval_sec": 2}})], 3),
        (
            &[
                json!({"optimizer_config": {"flush_interval_sec": 2}}),
                json!({"optimizer_config": {"flush_interval_sec": 30}}),
                json!({}),
            ],
            31,
        ),
    ];
    for (configs, seconds) in cases {
        assert_eq!(
            flush_wait(configs.iter()),
            Duration::from_secs(*seconds),
            "{configs:?}"
        );
    }
}

#[test]
fn quantities_in_bytes() {
    for (q, bytes) in [
        ("1Gi", 1u128 << 30),
        ("10Gi", 10 << 30),
        ("500M", 500_000_000),
        ("1.5Gi", 3 << 29),
        ("1073741824", 1 << 30),
        ("2k", 2000),
    ] {
        assert_eq!(quantity_bytes(q), Ok(bytes), "{q}");
    }
    assert!(quantity_bytes("1Zi").unwrap_err().contains("1Zi"));
    assert!(quantity_bytes("Gi").is_ok_and(|b| b == 0));
}

#[test]
fn a_restored_claim_starts_from_its_snapshot_and_is_big_enough() {
    let mut s = planned(2);
    s.restore_size = Some("20Gi".into());
    let claim = restored_claim(
        NS,
        &s,
        "10Gi",
        Some("fast"),
        &["ReadWriteOnce".to_string()],
        BTreeMap::new(),
    )
    .unwrap();
    let v = serde_json::to_value(&claim).unwrap();
    assert_eq!(v["metadata"]["name"], "storage-demo-2");
    assert_eq!(
        v["spec"]["dataSource"],
        json!({"apiGroup": "snapshot.storage.k8s.io", "kind": "VolumeSnapshot",
               "name": "nightly-storage-demo-2"})
    );
    assert_eq!(v["spec"]["resources"]["requests"]["storage"], "20Gi");
    assert_eq!(v["spec"]["storageClassName"], "fast");
    assert_eq!(v["spec"]["accessModes"], json!(["ReadWriteOnce"]));
    // The cluster's size wins when it is the larger.
    s.restore_size = Some("1Gi".into());
    let claim = restored_claim(NS, &s, "10Gi", None, &[], BTreeMap::new()).unwrap();
    let v = serde_json::to_value(&claim).unwrap();
    assert_eq!(v["spec"]["resources"]["requests"]["storage"], "10Gi");
    assert!(v["spec"]["storageClassName"].is_null());
}

// ---------------------------------------------------------------------------------------------
// Reconcile scenarios against the fake API server
// ---------------------------------------------------------------------------------------------

/// A Ready 2-peer QdrantCluster `demo` answered by one fake Qdrant (collection `docs` with
/// 1234 points, segments flushed every second), its two data claims.
async fn env() -> Env<FakeQdrant> {
    let fake = FakeQdrant::start(FakeQdrantOptions::default()).await;
    let url = fake.url();
    let env = Env::new(NS, "img", fake, move |ctx| {
        ctx.wait_requeue = Duration::from_millis(100);
        let url = url.clone();
        ctx.rewrite = Some(Arc::new(move |_: &Url| url.clone()));
    });
    let client = QdrantClient::new(&QdrantConnection::new(env.world.url())).unwrap();
    client
        .create_collection(
            "docs",
            &json!({"vectors": {"size": 4, "distance": "Dot"},
                    "optimizers_config": {"flush_interval_sec": 1}}),
        )
        .await
        .unwrap();
    env.world.set_points_count("docs", 1234);
    let peers: Vec<Value> = (0..2)
        .map(|i| {
            json!({"pod": format!("demo-{i}"), "peerId": 100 + i,
                   "uri": format!("http://demo-{i}.demo-headless.{NS}.svc:6335"),
                   "url": format!("http://demo-{i}.demo-headless.{NS}.svc:6333")})
        })
        .collect();
    env.seed_with_status(
        json!({"apiVersion": API, "kind": "QdrantCluster", "metadata": {"name": "demo"},
               "spec": {"replicas": 2}}),
        |qc| {
            json!({"phase": "Running",
                "conditions": [{"type": "Ready", "status": "True", "reason": "x", "message": "",
                    "observedGeneration": qc["metadata"]["generation"],
                    "lastTransitionTime": "2026-01-01T00:00:00Z"}],
                "endpoints": {"http": format!("http://demo.{NS}.svc:6333"),
                              "grpc": format!("http://demo.{NS}.svc:6334")},
                "peers": peers})
        },
    );
    for i in 0..2 {
        env.seed(json!({"apiVersion": "v1", "kind": "PersistentVolumeClaim",
            "metadata": {"name": format!("storage-demo-{i}")},
            "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}}},
            "status": {"phase": "Bound", "capacity": {"storage": "1Gi"}}}));
    }
    env
}

/// What installing the external-snapshotter's CRDs changes: discovery serves the group.
fn install_snapshot_crds(env: &Env<FakeQdrant>) {
    env.fake.serve_api_group(
        SNAP,
        &[
            ("volumesnapshots", "VolumeSnapshot", true),
            ("volumesnapshotclasses", "VolumeSnapshotClass", false),
            ("volumesnapshotcontents", "VolumeSnapshotContent", false),
        ],
    );
}

fn install_class(env: &Env<FakeQdrant>, deletion_policy: &str) {
    env.fake
        .insert(json!({"apiVersion": SNAP, "kind": "VolumeSnapshotClass",
        "metadata": {"name": CLASS}, "driver": "csi.example.com",
        "deletionPolicy": deletion_policy}));
}

fn vs_backup(name: &str, deletion_policy: &str) -> Value {
    json!({"apiVersion": API, "kind": "QdrantBackup",
        "metadata": {"name": name, "finalizers": ["qdrant.operator.dev/backup"]},
        "spec": {"cluster": {"name": "demo"}, "method": "VolumeSnapshot",
                 "volumeSnapshot": {"className": CLASS}, "deletionPolicy": deletion_policy}})
}

impl Env<FakeQdrant> {
    async fn reconcile_backup(&self, name: &str) {
        let b = self.current::<QdrantBackup>(name);
        backup::reconcile(Arc::new(b), self.ctx.clone())
            .await
            .unwrap();
    }

    fn ready(&self, name: &str) -> (ConditionStatus, String, String) {
        let st = self.current::<QdrantBackup>(name).status.unwrap();
        let c = find_condition(&st.conditions, "Ready").unwrap().clone();
        (c.status, c.reason, c.message)
    }

    fn snapshots(&self) -> Vec<String> {
        self.names(SNAP, "volumesnapshots")
    }

    /// The CSI driver's answer: every VolumeSnapshot ready, bound to a content.
    fn snapshotter_cuts_all(&self) {
        for name in self.snapshots() {
            self.edit(SNAP, "volumesnapshots", &name, |vs| {
                vs["status"] = json!({"readyToUse": true, "restoreSize": "1Gi",
                    "boundVolumeSnapshotContentName": format!("snapcontent-{name}")});
            });
        }
    }

    /// Reconciles `name` until its VolumeSnapshots exist (the flush wait is over).
    async fn until_snapshots_created(&self, name: &str) {
        self.reconcile_until(
            name,
            PATIENCE,
            async |b| {
                let _ = backup::reconcile(b, self.ctx.clone()).await;
            },
            |_: &QdrantBackup| self.snapshots().len() == 2,
        )
        .await
        .unwrap_or_else(|b| panic!("no VolumeSnapshots: {:?}", b.status));
    }
}

#[tokio::test]
async fn crds_missing_then_class_missing_wait_then_snapshots_are_cut_and_ready() {
    let env = env().await;
    env.seed(vs_backup("nightly", "Retain"));

    // No snapshot.storage.k8s.io/v1 served: Pending, a condition says why, nothing created.
    env.reconcile_backup("nightly").await;
    let b = env.current::<QdrantBackup>("nightly");
    assert_eq!(b.status.as_ref().unwrap().phase, BackupPhase::Pending);
    let (status, reason, message) = env.ready("nightly");
    assert_eq!(
        (status, reason.as_str()),
        (ConditionStatus::False, "VolumeSnapshotCRDsMissing")
    );
    assert!(message.contains("snapshot.storage.k8s.io/v1"), "{message}");
    assert!(env.snapshots().is_empty());
    // Waiting writes nothing more on a second look.
    env.fake.clear_requests();
    env.reconcile_backup("nightly").await;
    assert_eq!(env.writes_excluding_events(), Vec::<String>::new());

    // The CRDs, but no such class.
    install_snapshot_crds(&env);
    env.reconcile_backup("nightly").await;
    let (_, reason, message) = env.ready("nightly");
    assert_eq!(reason, "VolumeSnapshotClassNotFound");
    assert!(
        message.contains("VolumeSnapshotClass csi-snapclass (spec.volumeSnapshot.className)"),
        "{message}"
    );
    assert_eq!(
        env.current::<QdrantBackup>("nightly").status.unwrap().phase,
        BackupPhase::Pending
    );

    // The class: counts taken, Running until the flush interval has passed.
    install_class(&env, "Delete");
    env.reconcile_backup("nightly").await;
    let st = env.current::<QdrantBackup>("nightly").status.unwrap();
    assert_eq!(st.phase, BackupPhase::Running, "{:?}", st.message);
    assert_eq!(
        st.point_counts
            .iter()
            .map(|c| (c.name.as_str(), c.points))
            .collect::<Vec<_>>(),
        [("docs", 1234)]
    );
    assert_eq!(
        st.volume_snapshots
            .iter()
            .map(|s| (s.claim_name.as_str(), s.peer_id))
            .collect::<Vec<_>>(),
        [("storage-demo-0", Some(100)), ("storage-demo-1", Some(101))]
    );
    assert!(st.flushed_after.is_some());

    env.until_snapshots_created("nightly").await;
    let vs = env
        .get(SNAP, "volumesnapshots", "nightly-storage-demo-0")
        .unwrap();
    assert_eq!(
        vs["spec"]["source"]["persistentVolumeClaimName"],
        "storage-demo-0"
    );
    assert_eq!(vs["spec"]["volumeSnapshotClassName"], CLASS);
    env.reconcile_backup("nightly").await;
    assert_eq!(env.ready("nightly").1, "VolumeSnapshotsPending");

    env.snapshotter_cuts_all();
    env.reconcile_backup("nightly").await;
    let st = env.current::<QdrantBackup>("nightly").status.unwrap();
    assert_eq!(st.phase, BackupPhase::Succeeded, "{:?}", st.message);
    assert!(st.volume_snapshots.iter().all(|s| s.ready_to_use));
    assert_eq!(
        st.volume_snapshots[1]
            .bound_volume_snapshot_content_name
            .as_deref(),
        Some("snapcontent-nightly-storage-demo-1")
    );
    let (status, reason, message) = env.ready("nightly");
    assert_eq!(
        (status, reason.as_str()),
        (ConditionStatus::True, "BackupSucceeded")
    );
    assert!(message.contains("docs 1234"), "{message}");
    // Final: another reconcile writes nothing.
    env.fake.clear_requests();
    env.reconcile_backup("nightly").await;
    assert_eq!(env.writes_excluding_events(), Vec::<String>::new());
}

#[tokio::test]
async fn a_csi_error_fails_the_backup_naming_the_snapshot() {
    let env = env().await;
    install_snapshot_crds(&env);
    install_class(&env, "Delete");
    env.seed(vs_backup("nightly", "Retain"));
    env.until_snapshots_created("nightly").await;
    env.edit(SNAP, "volumesnapshots", "nightly-storage-demo-1", |vs| {
        vs["status"] = json!({"readyToUse": false,
            "error": {"message": "failed to take snapshot: quota exceeded"}});
    });
    env.reconcile_backup("nightly").await;
    let st = env.current::<QdrantBackup>("nightly").status.unwrap();
    assert_eq!(st.phase, BackupPhase::Failed);
    let (_, reason, message) = env.ready("nightly");
    assert_eq!(reason, "VolumeSnapshotFailed");
    assert!(
        message.contains("nightly-storage-demo-1") && message.contains("quota exceeded"),
        "{message}"
    );
}

#[tokio::test]
async fn a_missing_claim_fails_and_no_snapshot_is_taken() {
    let env = env().await;
    install_snapshot_crds(&env);
    install_class(&env, "Delete");
    env.remove("v1", "persistentvolumeclaims", "storage-demo-1");
    env.seed(vs_backup("nightly", "Retain"));
    env.reconcile_backup("nightly").await;
    let (_, reason, message) = env.ready("nightly");
    assert_eq!(reason, "ClaimNotFound");
    assert!(message.contains("storage-demo-1"), "{message}");
    assert!(env.snapshots().is_empty());
}

/// A Succeeded VolumeSnapshot backup `name` of schedule `nightly` created `hours` ago, with
/// the backup finalizer, and its two VolumeSnapshots.
fn seed_scheduled(env: &Env<FakeQdrant>, name: &str, hours: i64, policy: &str, owner: &str) {
    let created = jiff::Timestamp::now() - jiff::SignedDuration::from_hours(hours);
    let created = jiff::Timestamp::from_second(created.as_second()).unwrap();
    let mut obj = vs_backup(name, policy);
    obj["metadata"] = json!({"name": name, "creationTimestamp": created.to_string(),
        "labels": {"qdrant.operator.dev/schedule": "nightly"},
        "finalizers": ["qdrant.operator.dev/backup"],
        "ownerReferences": [{"apiVersion": API, "kind": "QdrantBackupSchedule", "name": "nightly",
                             "uid": owner, "controller": true}]});
    let snapshots: Vec<Value> = (0..2)
        .map(|i| {
            let vs = format!("{name}-storage-demo-{i}");
            env.seed(json!({"apiVersion": SNAP, "kind": "VolumeSnapshot",
                "metadata": {"name": vs, "labels": {"qdrant.operator.dev/backup": name}},
                "spec": {"volumeSnapshotClassName": CLASS,
                         "source": {"persistentVolumeClaimName": format!("storage-demo-{i}")}},
                "status": {"readyToUse": true}}));
            json!({"ordinal": i, "claimName": format!("storage-demo-{i}"),
                   "volumeSnapshotName": vs, "readyToUse": true})
        })
        .collect();
    obj["status"] = json!({"phase": "Succeeded", "volumeSnapshots": snapshots});
    env.seed(obj);
}

#[tokio::test]
async fn retention_deletes_old_volume_snapshots_and_retain_keeps_them() {
    let env = env().await;
    install_snapshot_crds(&env);
    install_class(&env, "Delete");
    let template = vs_backup("x", "Delete")["spec"].clone();
    let schedule = env.seed(json!({"apiVersion": API, "kind": "QdrantBackupSchedule",
        "metadata": {"name": "nightly"},
        "spec": {"schedule": "0 2 * * *", "backupTemplate": template,
                 "retention": {"keepLast": 1}}}));
    let uid = schedule["metadata"]["uid"].as_str().unwrap().to_string();
    seed_scheduled(&env, "nightly-1", 50, "Delete", &uid);
    seed_scheduled(&env, "nightly-2", 26, "Retain", &uid);
    seed_scheduled(&env, "nightly-3", 2, "Delete", &uid);

    let qbs = env.current::<QdrantBackupSchedule>("nightly");
    schedule::reconcile(Arc::new(qbs), env.ctx.clone())
        .await
        .unwrap();
    // Both older backups are being deleted (their finalizer holds them)...
    for old in ["nightly-1", "nightly-2"] {
        let b = env.current::<QdrantBackup>(old);
        assert!(
            b.metadata.deletion_timestamp.is_some(),
            "{old} not deleted by retention"
        );
        env.reconcile_backup(old).await;
        assert!(
            env.try_current::<QdrantBackup>(old).is_none(),
            "{old}: finalizer not removed"
        );
    }
    // ...Delete took its VolumeSnapshots along, Retain kept them; the newest is untouched.
    assert_eq!(
        env.snapshots(),
        [
            "nightly-2-storage-demo-0",
            "nightly-2-storage-demo-1",
            "nightly-3-storage-demo-0",
            "nightly-3-storage-demo-1",
        ]
    );
    assert!(env.try_current::<QdrantBackup>("nightly-3").is_some());
}

#[tokio::test]
async fn a_restore_refuses_another_cluster_name_and_existing_claims() {
    let env = env().await;
    install_snapshot_crds(&env);
    install_class(&env, "Delete");
    seed_scheduled(&env, "nightly", 1, "Retain", "none");
    let restore = |name: &str, cluster: &str| {
        json!({"apiVersion": API, "kind": "QdrantRestore",
            "metadata": {"name": name, "finalizers": ["qdrant.operator.dev/restore"]},
            "spec": {"source": {"backupRef": {"name": "nightly"}}, "cluster": {"name": cluster}}})
    };
    let run = async |name: &str| {
        let r = env.current::<QdrantRestore>(name);
        restore::reconcile(Arc::new(r), env.ctx.clone())
            .await
            .unwrap();
        let st = env.current::<QdrantRestore>(name).status.unwrap();
        let c = find_condition(&st.conditions, "Ready").unwrap().clone();
        (st.phase, c.reason, c.message)
    };
    // Another name: the volumes' Raft state names demo's peer URIs.
    env.seed(restore("elsewhere", "copy"));
    let (phase, reason, message) = run("elsewhere").await;
    assert_eq!(
        (phase, reason.as_str()),
        (BackupPhase::Failed, "PeerIdentityMismatch")
    );
    assert!(message.contains("QdrantCluster demo"), "{message}");
    // The right name, but demo still has its claims (and is not paused).
    env.seed(restore("back", "demo"));
    let (phase, reason, message) = run("back").await;
    assert_eq!(
        (phase, reason.as_str()),
        (BackupPhase::Failed, "ClaimExists")
    );
    assert!(message.contains("storage-demo-0"), "{message}");
    // Nothing was created or overwritten.
    let claim = env
        .get("v1", "persistentvolumeclaims", "storage-demo-0")
        .unwrap();
    assert!(claim["spec"]["dataSource"].is_null());
}

#[tokio::test]
async fn a_restore_creates_the_claims_of_a_paused_cluster_from_the_snapshots() {
    let env = env().await;
    install_snapshot_crds(&env);
    install_class(&env, "Delete");
    seed_scheduled(&env, "nightly", 1, "Retain", "none");
    // demo is gone with its claims, and created again, paused.
    env.remove(API, "qdrantclusters", "demo");
    for i in 0..2 {
        env.remove("v1", "persistentvolumeclaims", &format!("storage-demo-{i}"));
    }
    env.seed(json!({"apiVersion": API, "kind": "QdrantCluster",
        "metadata": {"name": "demo", "annotations": {"qdrant.operator.dev/paused": "true"}},
        "spec": {"replicas": 2, "persistence": {"size": "2Gi", "storageClassName": "fast"}}}));
    env.seed(json!({"apiVersion": API, "kind": "QdrantRestore",
        "metadata": {"name": "back", "finalizers": ["qdrant.operator.dev/restore"]},
        "spec": {"source": {"backupRef": {"name": "nightly"}}, "cluster": {"name": "demo"}}}));
    let r = env.current::<QdrantRestore>("back");
    restore::reconcile(Arc::new(r), env.ctx.clone())
        .await
        .unwrap();
    let st = env.current::<QdrantRestore>("back").status.unwrap();
    assert_eq!(st.phase, BackupPhase::Running, "{:?}", st.message);
    let ready = find_condition(&st.conditions, "Ready").unwrap();
    assert_eq!(ready.reason, "WaitingForUnpause");
    assert!(
        ready
            .message
            .contains("remove the annotation qdrant.operator.dev/paused")
    );
    for i in 0..2 {
        let claim = env
            .get("v1", "persistentvolumeclaims", &format!("storage-demo-{i}"))
            .unwrap();
        assert_eq!(
            claim["spec"]["dataSource"],
            json!({"apiGroup": "snapshot.storage.k8s.io", "kind": "VolumeSnapshot",
                   "name": format!("nightly-storage-demo-{i}")})
        );
        assert_eq!(claim["spec"]["resources"]["requests"]["storage"], "2Gi");
        assert_eq!(claim["spec"]["storageClassName"], "fast");
        assert_eq!(
            claim["metadata"]["labels"]["qdrant.operator.dev/restore"],
            "back"
        );
    }
    // While paused: no further write.
    env.fake.clear_requests();
    let r = env.current::<QdrantRestore>("back");
    restore::reconcile(Arc::new(r), env.ctx.clone())
        .await
        .unwrap();
    assert_eq!(env.writes_excluding_events(), Vec::<String>::new());
}
