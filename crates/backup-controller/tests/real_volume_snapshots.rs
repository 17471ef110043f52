//! VolumeSnapshot backup and restore against real Qdrant peers (`../shared/qdrant/qdrant`): a
//! 2-peer QdrantCluster brought up by the cluster-controller's reconcile, with
//! [`RealCluster`] playing the StatefulSet controller, the kubelet and (with
//! [`RealCluster::with_snapshots`]) a CSI driver with snapshot support. The backup-controller's
//! reconcile takes one VolumeSnapshot per peer volume; the cluster is then lost with its
//! claims, and a QdrantRestore brings it back under the same name on claims that start from
//! the snapshots (`dataSource`), with exact point counts through each peer before and after.
//!
//! Without the Qdrant binary the scenario prints a SKIP line and passes.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::{
    sync::Arc,
    time::{Duration, Instant},
};

use api_types::{
    QdrantBackup, QdrantCluster, QdrantRestore, backup::BackupPhase, conditions::find_condition,
};
use backup_controller::restore;
use cluster_controller::reconcile as cluster;
use common::{
    Env,
    real::{Clusters, PHASE_TIMEOUT},
};
use kube::{
    Api,
    api::{DeleteParams, ListParams},
};
use serde_json::json;
use testkit::{
    harness::{Harness, Patience, repeat_until},
    real_cluster::{FAKE_CSI_DRIVER, RealCluster, SnapshotStore},
    real_qdrant,
};

const NS: &str = "rp-vsnap";
const API: &str = "qdrant.operator.dev/v1alpha1";
const SNAP: &str = "snapshot.storage.k8s.io/v1";
const PATIENCE: Patience = Patience::timeout(PHASE_TIMEOUT, Duration::from_millis(100));
const POINTS: u64 = 2000;

impl Env<Clusters> {
    /// Per peer of cluster `demo`: (exact count through that pod, points in its local shards).
    async fn counts(&self, collection: &str) -> Vec<(u64, u64)> {
        let mut out = vec![];
        for ordinal in 0..2 {
            let client = self.client("demo", ordinal);
            let through = client.count_points(collection, true).await.unwrap();
            let local: u64 = client
                .collection_cluster_info(collection)
                .await
                .unwrap()
                .local_shards
                .iter()
                .map(|s| s.points_count)
                .sum();
            out.push((through, local));
        }
        out
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn volume_snapshots_of_two_peers_restored_into_the_same_cluster() {
    let Some(binary) = real_qdrant::binary() else {
        println!(
            "{}",
            real_qdrant::skip_line("volume_snapshots_of_two_peers_restored_into_the_same_cluster")
        );
        return;
    };
    reconcile_lib::runtime::install_crypto_provider();
    let harness = Harness::new(NS);
    // The external-snapshotter's CRDs and a class for the fake CSI driver.
    harness.fake.serve_api_group(
        SNAP,
        &[
            ("volumesnapshots", "VolumeSnapshot", true),
            ("volumesnapshotclasses", "VolumeSnapshotClass", false),
            ("volumesnapshotcontents", "VolumeSnapshotContent", false),
        ],
    );
    harness
        .fake
        .insert(json!({"apiVersion": SNAP, "kind": "VolumeSnapshotClass",
        "metadata": {"name": "fake-snapclass"}, "driver": FAKE_CSI_DRIVER,
        "deletionPolicy": "Retain"}));
    harness.seed(json!({"apiVersion": API, "kind": "QdrantCluster",
        "metadata": {"name": "demo"}, "spec": {"replicas": 2}}));
    let store = SnapshotStore::new().unwrap();
    let source = RealCluster::start(&harness.fake, NS, "demo", &binary, 2)
        .unwrap()
        .with_snapshots(&store);
    let clusters = Clusters::new(&harness, "volume_snapshots");
    let env = Env::with_harness(harness, "img", clusters, |ctx| {
        ctx.wait_requeue = Duration::from_millis(100);
    });
    env.up(&[("demo", 2)]).await;

    // 4 shards, replication factor 1: each peer holds its own half of the points.
    env.client("demo", 0)
        .create_collection(
            "docs",
            &json!({"vectors": {"size": 8, "distance": "Cosine"}, "shard_number": 4,
                    "replication_factor": 1}),
        )
        .await
        .unwrap();
    real_qdrant::write_points(&env.connection("demo", 0), "docs", 0..POINTS, 8)
        .await
        .unwrap();
    let before = env.counts("docs").await;
    env.log(&format!(
        "docs on demo: (count through pod, points in its local shards) per pod: {before:?}"
    ));
    assert!(
        before.iter().all(|(through, _)| *through == POINTS),
        "{before:?}"
    );
    assert_eq!(before.iter().map(|(_, local)| local).sum::<u64>(), POINTS);
    assert!(
        before.iter().all(|(_, local)| *local > 0),
        "both volumes hold points"
    );

    env.seed(json!({"apiVersion": API, "kind": "QdrantBackup",
        "metadata": {"name": "nightly"},
        "spec": {"cluster": {"name": "demo"}, "method": "VolumeSnapshot",
                 "volumeSnapshot": {"className": "fake-snapclass"}, "collections": ["docs"]}}));
    let started = Instant::now();
    let b = env
        .finish_backup("nightly", &env.ctx, PATIENCE)
        .await
        .unwrap_or_else(|b| panic!("backup did not finish: {:?}", b.status));
    let st = b.status.unwrap();
    assert_eq!(st.phase, BackupPhase::Succeeded, "{:?}", st.message);
    env.log(&format!(
        "backup Succeeded in {:.1}s: {}",
        started.elapsed().as_secs_f64(),
        serde_json::to_string(&st.volume_snapshots).unwrap()
    ));
    assert_eq!(
        st.volume_snapshots.len(),
        2,
        "one VolumeSnapshot per peer volume"
    );
    assert!(st.volume_snapshots.iter().all(|s| s.ready_to_use));
    assert_eq!(
        st.point_counts
            .iter()
            .map(|c| (c.name.as_str(), c.points))
            .collect::<Vec<_>>(),
        [("docs", POINTS)]
    );
    for s in &st.volume_snapshots {
        let content = s.bound_volume_snapshot_content_name.as_deref().unwrap();
        let copy = store.content_dir(content);
        assert!(
            copy.join("storage/raft_state.json").exists(),
            "{}: the snapshot holds the peer's Raft state",
            copy.display()
        );
    }
    // The source is untouched.
    assert_eq!(env.counts("docs").await, before);

    // The cluster is lost: its peers stop, the QdrantCluster is deleted (its children go with
    // it), and so are its claims.
    drop(source);
    let clusters_api: Api<QdrantCluster> = Api::namespaced(env.harness.client(), NS);
    clusters_api
        .delete("demo", &DeleteParams::background())
        .await
        .unwrap();
    for ordinal in 0..2 {
        env.remove(
            "v1",
            "persistentvolumeclaims",
            &format!("storage-demo-{ordinal}"),
        );
        env.remove("v1", "pods", &format!("demo-{ordinal}"));
    }
    assert!(env.try_current::<QdrantCluster>("demo").is_none());
    assert_eq!(
        env.get("apps/v1", "statefulsets", "demo"),
        None,
        "the StatefulSet went with its QdrantCluster"
    );
    env.log("demo lost with its claims");

    // Restore: the cluster again, paused, and a QdrantRestore of the backup.
    env.seed(json!({"apiVersion": API, "kind": "QdrantCluster",
        "metadata": {"name": "demo", "annotations": {"qdrant.operator.dev/paused": "true"}},
        "spec": {"replicas": 2}}));
    env.seed(json!({"apiVersion": API, "kind": "QdrantRestore",
        "metadata": {"name": "back"},
        "spec": {"source": {"backupRef": {"name": "nightly"}}, "cluster": {"name": "demo"}}}));
    let r = env
        .reconcile_until(
            "back",
            PATIENCE,
            async |r| {
                let _ = restore::reconcile(r, env.ctx.clone()).await;
            },
            |r: &QdrantRestore| {
                r.status
                    .as_ref()
                    .is_some_and(|s| s.phase != BackupPhase::Pending)
            },
        )
        .await
        .unwrap_or_else(|r| panic!("restore did not start: {:?}", r.status));
    let st = r.status.unwrap();
    let ready = find_condition(&st.conditions, "Ready").unwrap();
    assert_eq!(ready.reason, "WaitingForUnpause", "{}", ready.message);
    let claims: Api<k8s_openapi::api::core::v1::PersistentVolumeClaim> =
        Api::namespaced(env.harness.client(), NS);
    let restored_claims = claims.list(&ListParams::default()).await.unwrap().items;
    assert_eq!(
        restored_claims
            .iter()
            .map(|c| {
                let source = c.spec.as_ref().unwrap().data_source.as_ref().unwrap();
                (c.metadata.name.clone().unwrap(), source.name.clone())
            })
            .collect::<Vec<_>>(),
        [
            (
                "storage-demo-0".to_string(),
                "nightly-storage-demo-0".to_string()
            ),
            (
                "storage-demo-1".to_string(),
                "nightly-storage-demo-1".to_string()
            ),
        ]
    );
    env.log("claims created from the VolumeSnapshots; unpausing demo");

    let _target = RealCluster::start(&env.fake, NS, "demo", &binary, 2)
        .unwrap()
        .with_snapshots(&store);
    env.edit(API, "qdrantclusters", "demo", |qc| {
        qc["metadata"]["annotations"] = json!({});
    });
    let started = Instant::now();
    let outcome = repeat_until(
        Patience::timeout(PHASE_TIMEOUT, Duration::from_millis(250)),
        async || {
            let qc = env.current::<QdrantCluster>("demo");
            if let Err(e) = cluster::reconcile(Arc::new(qc), env.world.ctx.clone()).await {
                env.log(&format!("demo: reconcile error (retried): {e}"));
            }
            let r = env.current::<QdrantRestore>("back");
            let _ = restore::reconcile(Arc::new(r), env.ctx.clone()).await;
            env.current::<QdrantRestore>("back")
                .status
                .is_some_and(|s| s.phase.is_finished())
        },
    )
    .await;
    let st = env.current::<QdrantRestore>("back").status.unwrap();
    assert!(outcome.is_ok(), "restore did not finish: {st:?}");
    assert_eq!(st.phase, BackupPhase::Succeeded, "{:?}", st.message);
    env.log(&format!(
        "restore Succeeded in {:.1}s: {}",
        started.elapsed().as_secs_f64(),
        st.message.clone().unwrap_or_default()
    ));
    let after = env.counts("docs").await;
    println!(
        "[volume_snapshots] points of docs per pod (through the pod, in its local shards): before {before:?}, after restore {after:?}"
    );
    assert_eq!(after, before, "every peer came back with its own shards");
    assert_eq!(
        st.collections
            .iter()
            .map(|c| (c.name.as_str(), c.restored_points))
            .collect::<Vec<_>>(),
        [("docs", Some(POINTS))]
    );
    // The same peers came back: same ids as the backup recorded.
    let peers: Vec<u64> = env
        .current::<QdrantCluster>("demo")
        .status
        .unwrap()
        .peers
        .iter()
        .map(|p| p.peer_id)
        .collect();
    let recorded: Vec<u64> = env
        .current::<QdrantBackup>("nightly")
        .status
        .unwrap()
        .volume_snapshots
        .iter()
        .filter_map(|s| s.peer_id)
        .collect();
    let (mut peers, mut recorded) = (peers, recorded);
    peers.sort_unstable();
    recorded.sort_unstable();
    assert_eq!(peers, recorded, "the restored peers are the backed-up ones");
}
