//! Backup and restore against real Qdrant peers (`../shared/qdrant/qdrant`): a 3-peer cluster
//! and a 2-peer cluster, each brought up by the cluster-controller's own reconcile against the
//! fake API server with [`RealCluster`] playing the StatefulSet controller and the kubelet; the
//! backup-controller's reconcile then streams shard snapshots to the S3 server
//! (`common/s3.rs`, moto on 127.0.0.1) and restores them into the other cluster, Qdrant
//! itself downloading each snapshot by presigned URL. The clusters use generated API keys,
//! read by every controller from their Secrets, as in a cluster.
//!
//! Without the Qdrant binary the scenario prints a SKIP line and passes.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::{Duration, Instant};

use api_types::backup::{BackupPhase, RecoveryMethodUsed};
use common::{
    Env,
    real::{Clusters, PHASE_TIMEOUT},
    s3::server,
};
use serde_json::{Value, json};
use testkit::{
    harness::{Harness, Patience},
    real_cluster::RealCluster,
    real_qdrant,
};

const NS: &str = "rp-backup";
const API: &str = "qdrant.operator.dev/v1alpha1";
/// A backup or a restore: reconciled every 100 ms for up to [`PHASE_TIMEOUT`].
const PATIENCE: Patience = Patience::timeout(PHASE_TIMEOUT, Duration::from_millis(100));

/// Backup of a 3-shard, replication-factor-2 collection on 3 real peers to S3, then restore
/// into a 2-peer cluster under a new name by presigned URL, with exact point counts.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn backup_on_three_peers_then_restore_into_two_by_presigned_url() {
    let Some(binary) = real_qdrant::binary() else {
        println!(
            "{}",
            real_qdrant::skip_line("backup_on_three_peers_then_restore_into_two")
        );
        return;
    };
    reconcile_lib::runtime::install_crypto_provider();
    let harness = Harness::new(NS);
    for (name, replicas) in [("demo", 3), ("restored", 2)] {
        harness.seed(json!({"apiVersion": API, "kind": "QdrantCluster",
            "metadata": {"name": name}, "spec": {"replicas": replicas}}));
    }
    let _source = RealCluster::start(&harness.fake, NS, "demo", &binary, 3).unwrap();
    let _target = RealCluster::start(&harness.fake, NS, "restored", &binary, 2).unwrap();
    let clusters = Clusters::new(&harness, "backup_restore");
    // The backup-controller: its waits polled every 100 ms.
    let env = Env::with_harness(harness, "img", clusters, |ctx| {
        ctx.wait_requeue = Duration::from_millis(100);
    });
    env.up(&[("demo", 3), ("restored", 2)]).await;

    env.client("demo", 0)
        .create_collection(
            "docs",
            &json!({"vectors": {"size": 8, "distance": "Cosine"}, "shard_number": 3,
                    "replication_factor": 2, "hnsw_config": {"m": 24}}),
        )
        .await
        .unwrap();
    real_qdrant::write_points(&env.connection("demo", 0), "docs", 0..3000, 8)
        .await
        .unwrap();
    let before = env.count("demo", "docs").await;
    assert_eq!(before, 3000);
    let placement = env.active("demo", "docs").await;
    env.log(&format!(
        "docs on demo: {before} points, replicas {placement:?}"
    ));

    let s3 = server();
    let bucket = s3.new_bucket("").await.location().bucket.clone();
    env.seed(json!({"apiVersion": "v1", "kind": "Secret",
        "metadata": {"name": "s3-credentials", "namespace": NS},
        "stringData": {"AWS_ACCESS_KEY_ID": s3.access_key_id,
                       "AWS_SECRET_ACCESS_KEY": s3.secret_access_key}}));
    let storage = json!({"s3": {"bucket": bucket, "prefix": "qdrant", "endpoint": s3.endpoint,
        "forcePathStyle": true, "region": s3.region,
        "credentialsSecretRef": {"name": "s3-credentials"}}});
    env.seed(json!({"apiVersion": API, "kind": "QdrantBackup",
        "metadata": {"name": "nightly", "namespace": NS},
        "spec": {"cluster": {"name": "demo"}, "collections": ["docs"], "storage": storage}}));

    let started = Instant::now();
    let b = env
        .finish_backup("nightly", &env.ctx, PATIENCE)
        .await
        .unwrap_or_else(|_| panic!("backup did not finish"));
    let status = b.status.unwrap();
    assert_eq!(status.phase, BackupPhase::Succeeded, "{:?}", status.message);
    env.log(&format!(
        "backup Succeeded in {:.1}s: {:?}",
        started.elapsed().as_secs_f64(),
        status
            .artifacts
            .iter()
            .map(|a| serde_json::to_value(a).unwrap())
            .collect::<Vec<Value>>()
    ));
    assert_eq!(status.artifacts.len(), 3, "one snapshot per shard");
    assert_eq!(status.qdrant_version.as_deref(), Some("1.18.3"));
    let objects = s3.bucket(&bucket, "").await.list_objects("").await.unwrap();
    let snapshots: Vec<_> = objects
        .iter()
        .filter(|(k, _)| k.ends_with(".snapshot"))
        .collect();
    assert_eq!(snapshots.len(), 3, "{objects:?}");
    assert!(snapshots.iter().all(|(_, size)| *size > 0), "{objects:?}");
    // The source is untouched: same placement, same count, no snapshot left on any peer.
    assert_eq!(env.active("demo", "docs").await, placement);
    assert_eq!(env.count("demo", "docs").await, before);
    for ordinal in 0..3 {
        for shard in 0..3 {
            let left = env
                .client("demo", ordinal)
                .list_shard_snapshots("docs", shard)
                .await
                .unwrap_or_default();
            assert!(left.is_empty(), "pod {ordinal} shard {shard}: {left:?}");
        }
    }

    env.seed(json!({"apiVersion": API, "kind": "QdrantRestore",
        "metadata": {"name": "back", "namespace": NS},
        "spec": {"source": {"backupRef": {"name": "nightly"}}, "cluster": {"name": "restored"},
                 "collections": [{"name": "docs", "newName": "docs-copy"}]}}));
    let started = Instant::now();
    let r = env
        .finish_restore("back", &env.ctx, PATIENCE)
        .await
        .unwrap_or_else(|_| panic!("restore did not finish"));
    let rs = r.status.unwrap();
    assert_eq!(rs.phase, BackupPhase::Succeeded, "{:?}", rs.message);
    let col = &rs.collections[0];
    env.log(&format!(
        "restore Succeeded in {:.1}s: {}",
        started.elapsed().as_secs_f64(),
        serde_json::to_string(col).unwrap()
    ));
    assert_eq!((col.shards_total, col.shards_restored), (3, 3));
    assert_eq!(col.method, Some(RecoveryMethodUsed::PresignedUrl));
    let after = env.count("restored", "docs-copy").await;
    println!("[backup_restore] points of docs: before {before}, after restore {after}");
    assert_eq!(after, before);
    // Asked of the other peer too (each answers from its own replicas where it has them).
    let through_pod_1 = env
        .client("restored", 1)
        .count_points("docs-copy", true)
        .await
        .unwrap();
    assert_eq!(through_pod_1, before);
    assert_eq!(
        (col.expected_points, col.restored_points),
        (Some(before), Some(after))
    );
    // Every shard has an Active replica on the 2-peer cluster, and the config came along.
    let restored = env.active("restored", "docs-copy").await;
    env.log(&format!("docs-copy on restored: replicas {restored:?}"));
    for shard in 0..3 {
        assert!(
            restored.iter().any(|(s, _)| *s == shard),
            "shard {shard} Active: {restored:?}"
        );
    }
    let info = env
        .client("restored", 0)
        .collection_info("docs-copy")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        info.config["params"]["shard_number"], 3,
        "{:?}",
        info.config
    );
    assert_eq!(info.config["hnsw_config"]["m"], 24, "{:?}", info.config);
}
