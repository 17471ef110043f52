//! Backup and restore scenarios: the real reconcile functions against the fake Kubernetes API
//! server, a 3-peer fake Qdrant (one fake plus peer views), and a real S3 server (moto, see
//! `common/s3.rs`).

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::{collections::BTreeMap, sync::Arc, time::Duration};

use api_types::{QdrantBackup, QdrantRestore, backup::BackupPhase, conditions::ConditionStatus};
use backup_controller::{backup, context::Context, manifest, restore, s3::Bucket};
use common::{
    Env,
    faults::{FaultPlan, FaultyProxy},
    s3::{S3Server, server},
};
use futures::StreamExt;
use kube::{Api, api::DeleteParams};
use reconcile_lib::qdrant::{QdrantClient, QdrantConnection};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use testkit::{
    harness::Patience,
    qdrant::{ClusterState, FakeQdrant, FakeQdrantOptions},
};
use url::Url;

const NS: &str = "db";
const API: &str = "qdrant.operator.dev/v1alpha1";
/// How long a backup or restore may run: 600 reconciles, 100 ms apart.
const PATIENCE: Patience = Patience::rounds(600, Duration::from_millis(100));

/// A fake Qdrant cluster of `peers` peers (ids 1..=n): the main fake answers as peer 1, views
/// answer as the others.
struct FakeCluster {
    main: FakeQdrant,
    views: Vec<FakeQdrant>,
}

impl FakeCluster {
    async fn start(peers: u64) -> Self {
        let main = FakeQdrant::start(FakeQdrantOptions::default()).await;
        // Qdrant copies a restored replica to the shard's other replicas on its own.
        main.set_transfers_complete_instantly(true);
        let all: Vec<(u64, String)> = (1..=peers)
            .map(|i| (i, format!("http://demo-{}.demo-headless:6335/", i - 1)))
            .collect();
        main.set_cluster(ClusterState {
            peer_id: 1,
            peers: all.clone(),
            leader: Some(1),
            ..ClusterState::default()
        });
        let mut views = vec![];
        for i in 2..=peers {
            views.push(main.peer_view(i).await);
        }
        FakeCluster { main, views }
    }

    fn url_of_peer(&self, id: u64) -> Url {
        if id == 1 {
            self.main.url()
        } else {
            self.views[(id - 2) as usize].url()
        }
    }

    fn client(&self) -> QdrantClient {
        QdrantClient::new(&QdrantConnection::new(self.main.url())).unwrap()
    }
}

/// The S3 side: the server and the test's fresh bucket.
struct Storage {
    s3: S3Server,
    bucket: String,
}

/// Two clusters (`demo`: 3 peers, `restored`: 2 peers), their QdrantClusters in the fake API
/// server, the S3 credentials Secret and a fresh bucket. Every controller process (its own
/// task registry) reaches the fakes through the in-cluster URLs, rewritten.
async fn env(source: &FakeCluster, target: &FakeCluster) -> Env<Storage> {
    let s3 = server();
    let bucket = s3.new_bucket("").await.location().bucket.clone();
    let mut rewrites: BTreeMap<String, Url> = BTreeMap::new();
    rewrites.insert("demo.db.svc".into(), source.main.url());
    rewrites.insert("restored.db.svc".into(), target.main.url());
    for (cluster, fake, n) in [("demo", source, 3u64), ("restored", target, 2)] {
        for i in 1..=n {
            rewrites.insert(
                format!("{cluster}-{}.{cluster}-headless.db.svc", i - 1),
                fake.url_of_peer(i),
            );
        }
    }
    let rewrites = Arc::new(rewrites);
    let env = Env::new(NS, "img", Storage { s3, bucket }, move |ctx| {
        ctx.wait_requeue = Duration::from_millis(100);
        ctx.retry_backoff = Duration::from_millis(10);
        let rewrites = rewrites.clone();
        ctx.rewrite = Some(Arc::new(move |url: &Url| {
            url.host_str()
                .and_then(|h| rewrites.get(h))
                .cloned()
                .unwrap_or_else(|| url.clone())
        }));
    });
    for (cluster, n) in [("demo", 3u64), ("restored", 2)] {
        let peers: Vec<Value> = (1..=n)
            .map(|i| {
                json!({"pod": format!("{cluster}-{}", i - 1), "peerId": i,
                       "uri": format!("http://{cluster}-{}.{cluster}-headless:6335/", i - 1),
                       "url": format!("http://{cluster}-{}.{cluster}-headless.db.svc:6333", i - 1)})
            })
            .collect();
        env.seed_with_status(
            json!({"apiVersion": API, "kind": "QdrantCluster",
                "metadata": {"name": cluster}, "spec": {"replicas": n}}),
            |qc| {
                let generation = qc["metadata"]["generation"].clone();
                json!({
                    "phase": "Running",
                    "conditions": [{"type": "Ready", "status": "True", "reason": "x", "message": "",
                                    "observedGeneration": generation, "lastTransitionTime": "2026-01-01T00:00:00Z"}],
                    "endpoints": {"http": format!("http://{cluster}.db.svc:6333"), "grpc": format!("http://{cluster}.db.svc:6334")},
                    "peers": peers,
                })
            },
        );
    }
    let s3 = &env.world.s3;
    env.seed(json!({"apiVersion": "v1", "kind": "Secret",
        "metadata": {"name": "s3-credentials"},
        "stringData": {"AWS_ACCESS_KEY_ID": s3.access_key_id, "AWS_SECRET_ACCESS_KEY": s3.secret_access_key}}));
    env
}

impl Env<Storage> {
    fn storage(&self) -> Value {
        let s3 = &self.world.s3;
        json!({"s3": {"bucket": self.world.bucket, "prefix": "qdrant", "endpoint": s3.endpoint,
                      "forcePathStyle": true, "region": s3.region,
                      "credentialsSecretRef": {"name": "s3-credentials"}}})
    }

    fn backup(&self, name: &str, spec: Value) {
        self.seed(json!({"apiVersion": API, "kind": "QdrantBackup",
            "metadata": {"name": name, "uid": format!("uid-{name}-0123456789")}, "spec": spec}));
    }

    /// Reconciles the backup until its phase is final (the run is a background task).
    async fn run_backup(&self, name: &str) -> QdrantBackup {
        self.run_backup_in(name, &self.ctx).await
    }

    /// [`Self::run_backup`] by the controller process `ctx`.
    async fn run_backup_in(&self, name: &str, ctx: &Arc<Context>) -> QdrantBackup {
        self.finish_backup(name, ctx, PATIENCE)
            .await
            .unwrap_or_else(|b| panic!("backup {name} did not finish: {:?}", b.status))
    }

    async fn run_restore(&self, name: &str) -> QdrantRestore {
        self.run_restore_in(name, &self.ctx).await
    }

    /// [`Self::run_restore`] by the controller process `ctx`.
    async fn run_restore_in(&self, name: &str, ctx: &Arc<Context>) -> QdrantRestore {
        self.finish_restore(name, ctx, PATIENCE)
            .await
            .unwrap_or_else(|r| panic!("restore {name} did not finish: {:?}", r.status))
    }

    /// The test's bucket.
    async fn bucket(&self) -> Bucket {
        self.world.s3.bucket(&self.world.bucket, "").await
    }

    async fn objects(&self) -> Vec<(String, u64)> {
        self.bucket().await.list_objects("").await.unwrap()
    }

    async fn uploads(&self) -> Vec<(String, String)> {
        self.bucket()
            .await
            .list_multipart_uploads("")
            .await
            .unwrap()
    }

    async fn sha_of(&self, key: &str) -> String {
        let (_, mut stream) = self.bucket().await.get_object_stream(key).await.unwrap();
        let mut h = Sha256::new();
        while let Some(c) = stream.next().await {
            h.update(c.unwrap());
        }
        hex::encode(h.finalize())
    }

    /// `reason note` of every event, core (`v1`) ones first.
    fn events(&self) -> Vec<String> {
        self.list("v1", "events")
            .into_iter()
            .chain(self.harness.events())
            .map(|e| {
                format!(
                    "{} {}",
                    e["reason"].as_str().unwrap_or_default(),
                    e["note"]
                        .as_str()
                        .or(e["message"].as_str())
                        .unwrap_or_default()
                )
            })
            .collect()
    }
}

/// Collection `docs`: 3 shards, replication factor 2, 300 points, on the 3-peer source.
async fn seed(source: &FakeCluster) {
    source
        .client()
        .create_collection(
            "docs",
            &json!({"vectors": {"size": 4, "distance": "Cosine"}, "shard_number": 3,
                    "replication_factor": 2, "hnsw_config": {"m": 32}}),
        )
        .await
        .unwrap();
    source.main.set_points_count("docs", 300);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn backup_of_a_multi_shard_collection_then_restore_into_another_cluster() {
    let source = FakeCluster::start(3).await;
    let target = FakeCluster::start(2).await;
    seed(&source).await;
    let env = env(&source, &target).await;
    env.backup(
        "nightly",
        json!({"cluster": {"name": "demo"}, "collections": ["docs"], "storage": env.storage()}),
    );
    let b = env.run_backup("nightly").await;
    let status = b.status.unwrap();
    assert_eq!(status.phase, BackupPhase::Succeeded, "{:?}", status.message);

    // One object per shard plus the manifest, under prefix/namespace/name/uid-attempt/.
    let dir = "qdrant/db/nightly/uid-nigh-1";
    let objects = env.objects().await;
    let keys: Vec<&str> = objects.iter().map(|(k, _)| k.as_str()).collect();
    assert_eq!(
        keys,
        vec![
            format!("{dir}/docs/shard-0.snapshot"),
            format!("{dir}/docs/shard-1.snapshot"),
            format!("{dir}/docs/shard-2.snapshot"),
            format!("{dir}/manifest.json"),
        ]
    );
    assert_eq!(
        status.manifest_key.as_deref(),
        Some(&*format!("{dir}/manifest.json"))
    );
    assert_eq!(status.artifacts.len(), 3);
    assert_eq!(status.qdrant_version.as_deref(), Some("1.18.3"));

    // The manifest's checksums are those of the objects; each shard from a distinct peer.
    let b = env.bucket().await;
    let m = manifest::parse(
        &b.get_small_object(&format!("{dir}/manifest.json"), 1 << 20)
            .await
            .unwrap(),
    )
    .unwrap();
    assert_eq!(m.collections.len(), 1);
    let c = &m.collections[0];
    assert_eq!(
        (c.shard_number, c.replication_factor, c.points_count),
        (3, 2, 300)
    );
    assert_eq!(c.config["hnsw_config"]["m"], 32);
    let mut peers = vec![];
    for shard in &c.shards {
        let key = format!("{dir}/{}", shard.key);
        assert_eq!(env.sha_of(&key).await, shard.sha256, "{key}");
        let size = objects.iter().find(|(k, _)| *k == key).unwrap().1;
        assert_eq!(size, shard.size_bytes);
        peers.push(shard.peer_id.unwrap());
    }
    peers.sort_unstable();
    peers.dedup();
    assert_eq!(peers.len(), 3, "shards spread over the peers: {peers:?}");
    // The snapshots were deleted from Qdrant.
    for peer in 1..=3 {
        for shard in 0..3 {
            assert!(
                source
                    .main
                    .snapshot_names(peer, "docs", Some(shard))
                    .is_empty()
            );
        }
    }
    assert!(env.events().iter().any(|e| e.starts_with("Succeeded")));

    // Restore into the 2-peer cluster under a new name, through presigned URLs.
    env.fake
        .insert(json!({"apiVersion": API, "kind": "QdrantRestore",
        "metadata": {"name": "back", "namespace": NS, "uid": "uid-restore-1"},
        "spec": {"source": {"backupRef": {"name": "nightly"}}, "cluster": {"name": "restored"},
                 "collections": [{"name": "docs", "newName": "docs-copy"}]}}));
    let r = env.run_restore("back").await;
    let rs = r.status.unwrap();
    assert_eq!(rs.phase, BackupPhase::Succeeded, "{:?}", rs.message);
    let col = &rs.collections[0];
    assert_eq!((col.shards_total, col.shards_restored), (3, 3));
    assert_eq!(
        (col.expected_points, col.restored_points),
        (Some(300), Some(300))
    );
    assert_eq!(
        col.method,
        Some(api_types::backup::RecoveryMethodUsed::PresignedUrl)
    );
    let restored = target.main.collection("docs-copy").unwrap();
    let original = source.main.collection("docs").unwrap();
    assert_eq!(restored["config"]["params"], original["config"]["params"]);
    assert_eq!(
        restored["config"]["hnsw_config"],
        original["config"]["hnsw_config"]
    );
    let locations = target.main.recovered_from();
    assert_eq!(locations.len(), 3);
    assert!(
        locations.iter().all(|l| l.contains("X-Amz-Signature=")),
        "{locations:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restore_falls_back_to_upload_when_qdrant_cannot_download() {
    let source = FakeCluster::start(3).await;
    let target = FakeCluster::start(2).await;
    seed(&source).await;
    let env = env(&source, &target).await;
    env.backup(
        "b1",
        json!({"cluster": {"name": "demo"}, "storage": env.storage()}),
    );
    assert_eq!(
        env.run_backup("b1").await.status.unwrap().phase,
        BackupPhase::Succeeded
    );
    target.main.set_snapshot_url_recovery(false);
    let manifest_key = env
        .current::<QdrantBackup>("b1")
        .status
        .unwrap()
        .manifest_key
        .unwrap();
    // From the S3 manifest directly (no QdrantBackup needed).
    let mut storage = env.storage()["s3"].clone();
    storage["prefix"] = json!("elsewhere");
    env.fake
        .insert(json!({"apiVersion": API, "kind": "QdrantRestore",
        "metadata": {"name": "up", "namespace": NS, "uid": "uid-restore-2"},
        "spec": {"source": {"s3": {"storage": storage, "manifestKey": manifest_key}},
                 "cluster": {"name": "restored"}}}));
    let rs = env.run_restore("up").await.status.unwrap();
    assert_eq!(rs.phase, BackupPhase::Succeeded, "{:?}", rs.message);
    assert_eq!(
        rs.collections[0].method,
        Some(api_types::backup::RecoveryMethodUsed::Upload)
    );
    assert_eq!(rs.collections[0].restored_points, Some(300));
    assert_eq!(target.main.recoveries().len(), 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn s3_failing_mid_upload_every_attempt_leaves_no_parts_and_fails_after_three() {
    let source = FakeCluster::start(3).await;
    let target = FakeCluster::start(2).await;
    seed(&source).await;
    source.main.set_snapshot_padding(12 * 1024 * 1024);
    let env = env(&source, &target).await;
    let proxy = FaultyProxy::start(
        &env.world.s3.endpoint,
        FaultPlan {
            matching: "partNumber=2".into(),
            from: 1,
        },
    )
    .await;
    let mut storage = env.storage();
    storage["s3"]["endpoint"] = json!(proxy.endpoint);
    env.backup(
        "faulty",
        json!({"cluster": {"name": "demo"}, "storage": storage, "upload": {"partSizeMiB": 5, "concurrency": 1}}),
    );
    let status = env.run_backup("faulty").await.status.unwrap();
    assert_eq!(status.phase, BackupPhase::Failed);
    let message = status.message.clone().unwrap();
    assert!(
        message.contains("UploadPart")
            && message.contains("InternalError")
            && message.ends_with("(attempt 3 of 3; giving up)"),
        "{message}"
    );
    // Each attempt is in status, and the retries were announced (the event recorder folds
    // repeats of one reason into one event series).
    let failed: Vec<(u32, &str)> = status
        .failed_attempts
        .iter()
        .map(|f| (f.attempt, f.reason.as_str()))
        .collect();
    assert_eq!(failed, [(1, "S3Error"), (2, "S3Error"), (3, "S3Error")]);
    let events = env.events();
    assert!(
        events
            .iter()
            .any(|e| e.starts_with("Retrying attempt 1 failed (S3Error: ")),
        "{events:?}"
    );
    assert!(status.manifest_key.is_none());
    assert!(
        env.uploads().await.is_empty(),
        "multipart uploads left behind"
    );
    assert!(env.objects().await.is_empty(), "objects left behind");
    for peer in 1..=3 {
        for shard in 0..3 {
            assert!(
                source
                    .main
                    .snapshot_names(peer, "docs", Some(shard))
                    .is_empty()
            );
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_download_cut_off_is_retried_as_a_new_attempt_that_succeeds() {
    let source = FakeCluster::start(3).await;
    let target = FakeCluster::start(2).await;
    seed(&source).await;
    source.main.set_snapshot_padding(8 * 1024 * 1024);
    // Peer 1's next download breaks off (attempt 1 meets it; attempt 2 does not).
    source.main.fail_download_after(6 * 1024 * 1024);
    let env = env(&source, &target).await;
    env.backup(
        "cut",
        json!({"cluster": {"name": "demo"}, "storage": env.storage(), "upload": {"partSizeMiB": 5}}),
    );
    let status = env.run_backup("cut").await.status.unwrap();
    assert_eq!(status.phase, BackupPhase::Succeeded, "{:?}", status.message);
    assert_eq!(status.attempt, 2);
    assert_eq!(status.failed_attempts.len(), 1);
    let failed = &status.failed_attempts[0];
    assert_eq!(
        (failed.attempt, failed.reason.as_str()),
        (1, "SnapshotDownloadFailed")
    );
    assert!(
        failed
            .message
            .contains("downloading the snapshot of collection docs shard"),
        "{}",
        failed.message
    );
    let events = env.events();
    assert!(
        events.iter().any(
            |e| e.starts_with("Retrying attempt 1 failed (SnapshotDownloadFailed: ")
                && e.contains("attempt 2 starts in 0 s")
        ),
        "{events:?}"
    );
    // Nothing of attempt 1 is left: no open upload, only attempt 2's objects.
    assert!(env.uploads().await.is_empty());
    let keys: Vec<String> = env.objects().await.into_iter().map(|(k, _)| k).collect();
    assert_eq!(keys.len(), 4, "{keys:?}");
    assert!(
        keys.iter()
            .all(|k| k.starts_with("qdrant/db/cut/uid-cut--2/")),
        "{keys:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_inputs_fail_with_a_message_naming_the_cause() {
    let source = FakeCluster::start(3).await;
    let target = FakeCluster::start(2).await;
    seed(&source).await;
    let env = env(&source, &target).await;

    let mut storage = env.storage();
    storage["s3"]["bucket"] = json!("no-such-bucket-anywhere");
    env.backup(
        "nobucket",
        json!({"cluster": {"name": "demo"}, "storage": storage}),
    );
    let s = env.run_backup("nobucket").await.status.unwrap();
    assert_eq!(s.phase, BackupPhase::Failed);
    assert!(
        s.message
            .as_deref()
            .unwrap()
            .contains("no-such-bucket-anywhere"),
        "{:?}",
        s.message
    );
    assert_eq!(s.conditions[0].reason, "BucketNotFound");
    // kstatus: a failed run is Stalled (Flux and `kstatus` report it as failed).
    let stalled = s.conditions.iter().find(|c| c.type_ == "Stalled").unwrap();
    assert_eq!(
        (stalled.status, stalled.reason.as_str()),
        (ConditionStatus::True, "BucketNotFound")
    );

    env.fake.insert(json!({"apiVersion": "v1", "kind": "Secret",
        "metadata": {"name": "wrong", "namespace": NS},
        "stringData": {"AWS_ACCESS_KEY_ID": env.world.s3.access_key_id, "AWS_SECRET_ACCESS_KEY": "not-the-secret"}}));
    let mut storage = env.storage();
    storage["s3"]["credentialsSecretRef"] = json!({"name": "wrong"});
    env.backup(
        "wrongkey",
        json!({"cluster": {"name": "demo"}, "storage": storage}),
    );
    let s = env.run_backup("wrongkey").await.status.unwrap();
    assert_eq!(s.phase, BackupPhase::Failed);
    assert_eq!(s.conditions[0].reason, "S3AccessDenied", "{:?}", s.message);
    assert!(!s.message.as_deref().unwrap().contains("not-the-secret"));

    env.backup(
        "nocol",
        json!({"cluster": {"name": "demo"}, "collections": ["missing"], "storage": env.storage()}),
    );
    let s = env.run_backup("nocol").await.status.unwrap();
    assert_eq!(s.phase, BackupPhase::Failed);
    assert_eq!(s.conditions[0].reason, "CollectionNotFound");
    assert!(
        s.message.as_deref().unwrap().contains("collection missing"),
        "{:?}",
        s.message
    );
    assert!(env.objects().await.is_empty());
}

/// The pause annotation holds a QdrantBackup and a QdrantRestore back, as on every kind:
/// Paused True, nothing started (no snapshot in Qdrant, nothing in S3), the phase kept.
/// Removing the annotation lets each run to Succeeded, and Paused turns False.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_pause_annotation_holds_backups_and_restores_back() {
    let source = FakeCluster::start(3).await;
    let target = FakeCluster::start(2).await;
    seed(&source).await;
    let env = env(&source, &target).await;
    let paused = json!({"qdrant.operator.dev/paused": "true"});
    env.fake.insert(json!({"apiVersion": API, "kind": "QdrantBackup",
        "metadata": {"name": "held", "namespace": NS, "uid": "uid-held-0123456789", "annotations": paused},
        "spec": {"cluster": {"name": "demo"}, "collections": ["docs"], "storage": env.storage()}}));
    for _ in 0..3 {
        let b = env.current::<QdrantBackup>("held");
        backup::reconcile(Arc::new(b), env.ctx.clone())
            .await
            .unwrap();
    }
    let condition = |conditions: &[api_types::Condition], t: &str| {
        conditions
            .iter()
            .find(|c| c.type_ == t)
            .map(|c| (c.status, c.reason.clone()))
    };
    let s = env.current::<QdrantBackup>("held").status.unwrap();
    assert_eq!(s.phase, BackupPhase::Pending);
    assert_eq!(
        condition(&s.conditions, "Paused"),
        Some((ConditionStatus::True, "PauseAnnotationSet".into()))
    );
    assert!(
        env.objects().await.is_empty(),
        "a paused backup wrote to S3"
    );
    let snapshots: Vec<_> = [&source.main]
        .into_iter()
        .chain(&source.views)
        .flat_map(|q| q.requests())
        .filter(|(_, path)| path.contains("/snapshots"))
        .collect();
    assert!(
        snapshots.is_empty(),
        "a paused backup asked Qdrant: {snapshots:?}"
    );

    env.edit(API, "qdrantbackups", "held", |b| {
        b["metadata"]["annotations"] = json!({});
    });
    let s = env.run_backup("held").await.status.unwrap();
    assert_eq!(s.phase, BackupPhase::Succeeded, "{:?}", s.message);
    // kstatus: a succeeded run is Current (neither Reconciling nor Stalled).
    for t in ["Reconciling", "Stalled"] {
        assert_eq!(
            condition(&s.conditions, t).map(|c| c.0),
            Some(ConditionStatus::False),
            "{t}"
        );
    }
    assert_eq!(
        condition(&s.conditions, "Paused"),
        Some((ConditionStatus::False, "NotPaused".into()))
    );

    env.fake.insert(json!({"apiVersion": API, "kind": "QdrantRestore",
        "metadata": {"name": "held-back", "namespace": NS, "uid": "uid-held-restore", "annotations": paused},
        "spec": {"source": {"backupRef": {"name": "held"}}, "cluster": {"name": "restored"},
                 "collections": [{"name": "docs", "newName": "docs-held"}]}}));
    for _ in 0..3 {
        let r = env.current::<QdrantRestore>("held-back");
        restore::reconcile(Arc::new(r), env.ctx.clone())
            .await
            .unwrap();
    }
    let s = env.current::<QdrantRestore>("held-back").status.unwrap();
    assert_eq!(s.phase, BackupPhase::Pending);
    assert_eq!(
        condition(&s.conditions, "Paused"),
        Some((ConditionStatus::True, "PauseAnnotationSet".into()))
    );
    assert!(
        target.main.collection("docs-held").is_none(),
        "a paused restore created the collection"
    );
    env.edit(API, "qdrantrestores", "held-back", |r| {
        r["metadata"]["annotations"] = json!({});
    });
    let s = env.run_restore("held-back").await.status.unwrap();
    assert_eq!(s.phase, BackupPhase::Succeeded, "{:?}", s.message);
    assert!(target.main.collection("docs-held").is_some());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn waits_while_the_cluster_scales_and_for_the_secret() {
    let source = FakeCluster::start(3).await;
    let target = FakeCluster::start(2).await;
    seed(&source).await;
    let env = env(&source, &target).await;
    let mut qc = env.get(API, "qdrantclusters", "demo").unwrap();
    qc["status"]["phase"] = json!("Scaling");
    env.fake.insert(qc);
    env.backup(
        "later",
        json!({"cluster": {"name": "demo"}, "storage": env.storage()}),
    );
    for _ in 0..3 {
        let b = env.current::<QdrantBackup>("later");
        backup::reconcile(Arc::new(b), env.ctx.clone())
            .await
            .unwrap();
    }
    let s = env.current::<QdrantBackup>("later").status.unwrap();
    assert_eq!(s.phase, BackupPhase::Pending);
    assert_eq!(s.conditions[0].reason, "ClusterBusy");
    assert!(s.message.unwrap().contains("Scaling"));

    let mut storage = env.storage();
    storage["s3"]["credentialsSecretRef"] = json!({"name": "absent"});
    env.backup(
        "nosecret",
        json!({"connection": {"url": "http://demo.db.svc:6333"}, "storage": storage}),
    );
    for _ in 0..2 {
        let b = env.current::<QdrantBackup>("nosecret");
        backup::reconcile(Arc::new(b), env.ctx.clone())
            .await
            .unwrap();
    }
    let s = env.current::<QdrantBackup>("nosecret").status.unwrap();
    assert_eq!(s.phase, BackupPhase::Pending);
    assert_eq!(s.conditions[0].reason, "SecretNotFound");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_interrupted_backup_resumes_as_a_new_attempt_and_deletion_follows_the_policy() {
    let source = FakeCluster::start(3).await;
    let target = FakeCluster::start(2).await;
    seed(&source).await;
    let env = env(&source, &target).await;
    env.backup(
        "again",
        json!({"cluster": {"name": "demo"}, "storage": env.storage(), "deletionPolicy": "Delete"}),
    );
    // A previous leader got as far as attempt 1 and left a partial object behind.
    let mut obj = env.get(API, "qdrantbackups", "again").unwrap();
    obj["metadata"]["finalizers"] = json!(["qdrant.operator.dev/backup"]);
    obj["status"] = json!({"phase": "Running", "attempt": 1});
    env.fake.insert(obj);
    let b = env.bucket().await;
    b.put_object(
        "qdrant/db/again/uid-agai-1/docs/shard-0.snapshot",
        bytes::Bytes::from_static(b"partial"),
        "application/octet-stream",
    )
    .await
    .unwrap();

    let s = env.run_backup("again").await.status.unwrap();
    assert_eq!(s.phase, BackupPhase::Succeeded, "{:?}", s.message);
    assert_eq!(s.attempt, 2);
    let keys: Vec<String> = env.objects().await.into_iter().map(|(k, _)| k).collect();
    assert!(
        keys.iter()
            .all(|k| k.starts_with("qdrant/db/again/uid-agai-2/")),
        "{keys:?}"
    );
    assert_eq!(keys.len(), 4);

    // deletionPolicy Delete: deleting the QdrantBackup deletes its objects, but not while a
    // restore that reads it has not finished.
    let mut reading = env
        .fake
        .insert(json!({"apiVersion": API, "kind": "QdrantRestore",
        "metadata": {"name": "reading", "namespace": NS},
        "spec": {"source": {"backupRef": {"name": "again"}}, "cluster": {"name": "restored"}}}));
    reading["status"] = json!({"phase": "Running"});
    env.fake.insert(reading.clone());
    let api: Api<QdrantBackup> = Api::namespaced(env.fake.client(), NS);
    api.delete("again", &DeleteParams::default()).await.unwrap();
    let err = backup::reconcile(
        Arc::new(env.current::<QdrantBackup>("again")),
        env.ctx.clone(),
    )
    .await
    .unwrap_err();
    assert!(
        err.to_string()
            .contains("while QdrantRestore reading reads it"),
        "{err}"
    );
    assert_eq!(
        env.objects().await.len(),
        4,
        "nothing deleted under a running restore"
    );
    reading["status"] = json!({"phase": "Succeeded"});
    env.fake.insert(reading);
    let b = env.current::<QdrantBackup>("again");
    backup::reconcile(Arc::new(b), env.ctx.clone())
        .await
        .unwrap();
    assert!(env.get(API, "qdrantbackups", "again").is_none());
    assert!(env.objects().await.is_empty());
}

/// A leader cut off from the API server learns of its loss late: its task is still uploading
/// when the next leader resumes the backup as attempt 2. The old task is fenced off at its next
/// status write: it stops, removes what it wrote, and attempt 2 is the only one in S3.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_leader_change_mid_backup_leaves_one_attempt_and_nothing_orphaned() {
    let source = FakeCluster::start(3).await;
    let target = FakeCluster::start(2).await;
    seed(&source).await;
    let env = env(&source, &target).await;
    env.backup(
        "handover",
        json!({"cluster": {"name": "demo"}, "storage": env.storage(), "deletionPolicy": "Delete"}),
    );
    // The old leader's snapshot of shard 1 waits, on whichever peer it is taken.
    let held: Vec<_> = std::iter::once(&source.main)
        .chain(&source.views)
        .map(|peer| peer.hold_next("/collections/docs/shards/1/snapshots"))
        .collect();
    let old = env.ctx.clone();
    let uid = "uid-handover-0123456789";
    for _ in 0..3 {
        let _ = backup::reconcile(
            Arc::new(env.current::<QdrantBackup>("handover")),
            old.clone(),
        )
        .await;
    }
    futures::future::select_all(held.iter().map(|h| Box::pin(h.reached()))).await;
    testkit::eventually("attempt 1 recorded shard 0", || {
        let s = env
            .current::<QdrantBackup>("handover")
            .status
            .unwrap_or_default();
        s.attempt == 1 && s.artifacts.len() == 1
    })
    .await;
    assert!(old.jobs.is_running(uid));

    // The new leader resumes it and finishes attempt 2 while the old task is held.
    let new = env.controller();
    let s = env.run_backup_in("handover", &new).await.status.unwrap();
    assert_eq!(s.phase, BackupPhase::Succeeded, "{:?}", s.message);
    assert_eq!(s.attempt, 2);

    // The old task goes on: its next status write finds attempt 2 and it steps aside.
    for h in &held {
        h.release();
    }
    testkit::eventually("the old task ended", || !old.jobs.is_running(uid)).await;
    let s = env.current::<QdrantBackup>("handover").status.unwrap();
    assert_eq!(
        (s.phase, s.attempt),
        (BackupPhase::Succeeded, 2),
        "{:?}",
        s.message
    );
    assert_eq!(s.artifacts.len(), 3);
    let keys: Vec<String> = env.objects().await.into_iter().map(|(k, _)| k).collect();
    assert_eq!(
        keys.len(),
        4,
        "3 shards and the manifest of attempt 2: {keys:?}"
    );
    assert!(
        keys.iter()
            .all(|k| k.starts_with("qdrant/db/handover/uid-hand-2/")),
        "{keys:?}"
    );
    assert!(
        env.uploads().await.is_empty(),
        "no multipart upload left open"
    );
    let events = env.events();
    assert!(
        events.iter().any(|e| e.starts_with("Superseded ")
            && e.contains("attempt 1 was taken over as attempt 2 (now Succeeded)")),
        "{events:?}"
    );
}

/// A collection created in the target after the restore checked the name (here: while the
/// restore's first write to it is held) is left as it is: the restore fails with
/// `CollectionExists` instead of recovering the snapshot over it. Also: the owner mark of the
/// source's QdrantCollection does not come along.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_collection_created_during_a_restore_is_never_overwritten() {
    let (unused_source, unused_target) = (FakeCluster::start(3).await, FakeCluster::start(2).await);
    let env = env(&unused_source, &unused_target).await;
    // Single-node source and target: a whole-collection snapshot.
    let source = FakeQdrant::start(FakeQdrantOptions::default()).await;
    source.set_cluster_disabled();
    let client = QdrantClient::new(&QdrantConnection::new(source.url())).unwrap();
    client
        .create_collection(
            "docs",
            &json!({"vectors": {"size": 4, "distance": "Cosine"},
                    "metadata": {"team": "search", "qdrant.operator.dev/owner":
                        {"namespace": NS, "name": "docs", "uid": "uid-of-the-source-object"}}}),
        )
        .await
        .unwrap();
    source.set_points_count("docs", 300);
    // A connection URL with credentials in it: they never reach manifest.json or status.
    let mut with_credentials = source.url();
    with_credentials.set_username("backup").unwrap();
    with_credentials.set_password(Some("s3cr3t")).unwrap();
    env.backup(
        "single",
        json!({"connection": {"url": with_credentials.to_string()}, "storage": env.storage()}),
    );
    let s = env.run_backup("single").await.status.unwrap();
    assert_eq!(s.phase, BackupPhase::Succeeded, "{:?}", s.message);
    let manifest_key = s.manifest_key.clone().unwrap();
    let bucket = env.bucket().await;
    let manifest: Value = serde_json::from_slice(
        &bucket
            .get_small_object(&manifest_key, 1 << 20)
            .await
            .unwrap(),
    )
    .unwrap();
    let mut shown = source.url();
    shown.set_username("redacted").unwrap();
    assert_eq!(manifest["source"], json!(shown.to_string()));
    let everything = format!("{manifest} {:?} {:?}", s, env.events());
    assert!(!everything.contains("s3cr3t"), "{everything}");

    let target = FakeQdrant::start(FakeQdrantOptions::default()).await;
    target.set_cluster_disabled();
    let restore = |name: &str, collections: Value| {
        env.fake
            .insert(json!({"apiVersion": API, "kind": "QdrantRestore",
            "metadata": {"name": name, "namespace": NS},
            "spec": {"source": {"s3": {"storage": env.storage()["s3"], "manifestKey": manifest_key}},
                     "connection": {"url": target.url().to_string()}, "collections": collections}}));
    };
    // The restore's first write to the target collection waits; meanwhile an application
    // creates a collection of that name with 5 points of its own.
    let held = target.hold_next_with(axum::http::Method::PUT, "/collections/docs");
    restore("raced", json!([]));
    let raced = async { env.run_restore("raced").await };
    let meanwhile = async {
        held.reached().await;
        let app = QdrantClient::new(&QdrantConnection::new(target.url())).unwrap();
        app.create_collection(
            "docs",
            &json!({"vectors": {"size": 4, "distance": "Cosine"}}),
        )
        .await
        .unwrap();
        target.set_points_count("docs", 5);
        held.release();
    };
    let (r, ()) = tokio::join!(raced, meanwhile);
    let r = r.status.unwrap();
    assert_eq!(r.phase, BackupPhase::Failed);
    let ready = r.conditions.iter().find(|c| c.type_ == "Ready").unwrap();
    assert_eq!(ready.reason, "CollectionExists", "{}", ready.message);
    assert_eq!(
        target.shard_points("docs").values().sum::<u64>(),
        5,
        "untouched"
    );
    assert!(target.recoveries().is_empty(), "no recovery over it");

    // Restored under a free name: the user's metadata comes along, the owner mark does not.
    restore(
        "renamed",
        json!([{"name": "docs", "newName": "docs-restored"}]),
    );
    let r = env.run_restore("renamed").await.status.unwrap();
    assert_eq!(r.phase, BackupPhase::Succeeded, "{:?}", r.message);
    let restored = target.collection("docs-restored").unwrap();
    assert_eq!(restored["config"]["metadata"], json!({"team": "search"}));

    // Qdrant echoes the presigned URL when it cannot download it (here: the object is gone):
    // its signature reaches neither status nor events.
    let snapshot = manifest["collections"][0]["shards"][0]["key"]
        .as_str()
        .unwrap();
    let directory = manifest_key.rsplit_once('/').unwrap().0;
    bucket
        .delete_objects(&[format!("{directory}/{snapshot}")])
        .await
        .unwrap();
    env.fake
        .insert(json!({"apiVersion": API, "kind": "QdrantRestore",
        "metadata": {"name": "signed", "namespace": NS},
        "spec": {"source": {"s3": {"storage": env.storage()["s3"], "manifestKey": manifest_key}},
                 "connection": {"url": target.url().to_string()}, "recoveryMethod": "PresignedUrl",
                 "collections": [{"name": "docs", "newName": "docs-signed"}]}}));
    let r = env.run_restore("signed").await;
    let status = r.status.clone().unwrap();
    assert_eq!(status.phase, BackupPhase::Failed);
    let message = status.message.clone().unwrap();
    assert!(
        message.contains("recovery from the presigned URL failed") && message.contains("?redacted"),
        "{message}"
    );
    let everything = format!("{:?} {:?}", status, env.events());
    for secret in [
        "X-Amz-Signature",
        "X-Amz-Credential",
        env.world.s3.access_key_id.as_str(),
    ] {
        assert!(!everything.contains(secret), "{secret} in {everything}");
    }
}

/// A restore whose process lost leadership unnoticed: the new leader fails it as
/// `Interrupted` (collections may be partial); the old task, held inside a shard recovery, is
/// fenced off at its next status write: it ends (the request it had in flight may still land),
/// never reports Succeeded over the new leader's verdict, and names the collections it touched
/// in a Warning event.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_leader_change_mid_restore_stops_the_old_task() {
    let source = FakeCluster::start(3).await;
    let target = FakeCluster::start(2).await;
    seed(&source).await;
    let env = env(&source, &target).await;
    env.backup(
        "base",
        json!({"cluster": {"name": "demo"}, "storage": env.storage()}),
    );
    let s = env.run_backup("base").await.status.unwrap();
    assert_eq!(s.phase, BackupPhase::Succeeded, "{:?}", s.message);

    // The old leader's second shard recovery waits, on whichever target peer it is sent to.
    let held: Vec<_> = std::iter::once(&target.main)
        .chain(&target.views)
        .map(|peer| peer.hold_next("/collections/docs/shards/1/snapshots/recover"))
        .collect();
    env.fake
        .insert(json!({"apiVersion": API, "kind": "QdrantRestore",
        "metadata": {"name": "handover", "namespace": NS, "uid": "uid-restore-handover"},
        "spec": {"source": {"backupRef": {"name": "base"}}, "cluster": {"name": "restored"}}}));
    let old = env.ctx.clone();
    for _ in 0..3 {
        let _ = restore::reconcile(
            Arc::new(env.current::<QdrantRestore>("handover")),
            old.clone(),
        )
        .await;
    }
    futures::future::select_all(held.iter().map(|h| Box::pin(h.reached()))).await;
    assert!(old.jobs.is_running("uid-restore-handover"));

    // The new leader finds it Running with no task of its own.
    let new = env.controller();
    let r = env.run_restore_in("handover", &new).await.status.unwrap();
    assert_eq!(r.phase, BackupPhase::Failed);
    let reason = &r
        .conditions
        .iter()
        .find(|c| c.type_ == "Ready")
        .unwrap()
        .reason;
    assert_eq!(reason, "Interrupted", "{:?}", r.message);

    for h in &held {
        h.release();
    }
    testkit::eventually("the old task ended", || {
        !old.jobs.is_running("uid-restore-handover")
    })
    .await;
    let after = env.current::<QdrantRestore>("handover").status.unwrap();
    assert_eq!(after.phase, BackupPhase::Failed, "{:?}", after.message);
    assert_eq!(after.message, r.message, "the new leader's verdict stands");
    let events = env.events();
    assert!(
        events.iter().any(|e| e.starts_with(
            "Superseded the run was ended by another controller process (now Failed)"
        ) && e.contains("[docs]")),
        "{events:?}"
    );
    assert!(
        !events.iter().any(|e| e.starts_with("Succeeded restored")),
        "{events:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deleting_a_retained_backup_keeps_its_objects() {
    let source = FakeCluster::start(3).await;
    let target = FakeCluster::start(2).await;
    seed(&source).await;
    let env = env(&source, &target).await;
    env.backup(
        "keep",
        json!({"cluster": {"name": "demo"}, "storage": env.storage()}),
    );
    assert_eq!(
        env.run_backup("keep").await.status.unwrap().phase,
        BackupPhase::Succeeded
    );
    let before = env.objects().await;
    let api: Api<QdrantBackup> = Api::namespaced(env.fake.client(), NS);
    api.delete("keep", &DeleteParams::default()).await.unwrap();
    backup::reconcile(
        Arc::new(env.current::<QdrantBackup>("keep")),
        env.ctx.clone(),
    )
    .await
    .unwrap();
    assert!(env.get(API, "qdrantbackups", "keep").is_none());
    assert_eq!(env.objects().await, before);
}
