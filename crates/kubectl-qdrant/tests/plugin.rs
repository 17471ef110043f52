//! `kubectl qdrant` against the fake API server and a fake Qdrant modelling three peers.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use kubectl_qdrant::{PluginError, pause, plan, render, runs, status};
use reconcile_lib::qdrant::{QdrantClient, QdrantConnection, RaftRole};
use serde_json::json;
use testkit::{
    apiserver::FakeApiServer,
    qdrant::{ClusterState, FakeQdrant, FakeQdrantOptions},
};

const NS: &str = "qdrant";
const API: &str = "qdrant.operator.dev/v1alpha1";

fn peer_uri(i: u64) -> String {
    format!("http://demo-{i}.demo-headless.{NS}.svc:6335/")
}

/// A fake Qdrant answering as peer 100 of peers 100, 101, 102 (pods demo-0..2), and a client.
async fn qdrant() -> (FakeQdrant, QdrantClient) {
    let fake = FakeQdrant::start(FakeQdrantOptions {
        cluster: Some(ClusterState {
            peer_id: 100,
            peers: (0..3).map(|i| (100 + i, peer_uri(i))).collect(),
            leader: Some(100),
            role: Some(RaftRole::Leader),
            term: 1,
            commit: 1,
            pending_operations: 0,
        }),
        ..FakeQdrantOptions::default()
    })
    .await;
    let client = QdrantClient::new(&QdrantConnection::new(fake.url())).unwrap();
    (fake, client)
}

/// QdrantCluster `demo` with 3 ready peers as the cluster-controller reports them.
fn seed_cluster(api: &FakeApiServer) {
    api.insert(json!({"apiVersion": API, "kind": "QdrantCluster",
        "metadata": {"name": "demo", "namespace": NS}, "spec": {"replicas": 3},
        "status": {"phase": "Running", "version": "v1.18.3", "replicas": 3, "readyReplicas": 3,
            "readyReplicasText": "3/3", "raftLeader": 100,
            "peers": (0..3).map(|i| json!({"pod": format!("demo-{i}"), "peerId": 100 + i,
                "uri": peer_uri(i), "raftRole": if i == 0 { "Leader" } else { "Follower" },
                "zone": if i == 2 { "zone-b" } else { "zone-a" }})).collect::<Vec<_>>(),
            "conditions": [
                {"type": "Ready", "status": "True", "reason": "AllPeersReady", "message": "3 of 3 peers ready", "lastTransitionTime": "2026-12-01T00:00:00Z"},
                {"type": "Progressing", "status": "True", "reason": "Rebalancing", "message": "moving shard 1 of collection docs", "lastTransitionTime": "2026-12-01T00:00:00Z"}
            ]}}));
}

#[tokio::test]
async fn status_shows_peers_shards_conditions_and_what_the_operator_waits_for() {
    let api = FakeApiServer::new();
    seed_cluster(&api);
    let (_fake, q) = qdrant().await;
    q.create_collection(
        "docs",
        &json!({"vectors": {"size": 4, "distance": "Cosine"}, "shard_number": 3}),
    )
    .await
    .unwrap();
    let migration = |name: &str, source: serde_json::Value, target: serde_json::Value| {
        json!({"apiVersion": API, "kind": "QdrantMigration",
            "metadata": {"name": name, "namespace": NS},
            "spec": {"source": source, "target": target},
            "status": {"phase": "Running", "progress": "1280/3000"}})
    };
    let helm = json!({"connection": {"url": "http://qdrant.helm.svc:6333"}});
    api.insert(migration(
        "from-helm",
        helm.clone(),
        json!({"cluster": {"name": "demo"}}),
    ));
    api.insert(migration(
        "elsewhere",
        helm,
        json!({"cluster": {"name": "other"}}),
    ));
    let out = status::report(&api.client(), NS, "demo", Some(&q))
        .await
        .unwrap();
    println!("{out}");
    assert!(out.contains("zone zone-b"), "{out}");
    assert!(
        out.contains("from-helm") && out.contains("into this cluster: Running, 1280/3000 points"),
        "{out}"
    );
    assert!(!out.contains("elsewhere"), "{out}");
    for line in [
        "QdrantCluster qdrant/demo",
        "phase Running, version v1.18.3, peers ready 3/3",
        "demo-0",
        "peer 100",
        "Leader (leader)",
        "docs: shard",
        "Active",
        "TRANSFERS",
        "Progressing (Rebalancing): moving shard 1 of collection docs",
    ] {
        assert!(out.contains(line), "missing {line:?} in:\n{out}");
    }
    // Every shard of docs is listed under exactly one peer.
    let shard_lines: usize = out
        .lines()
        .filter(|l| l.trim_start().starts_with("docs: "))
        .map(|l| l.matches("shard ").count())
        .sum();
    assert_eq!(shard_lines, 3, "{out}");

    let missing = status::report(&api.client(), NS, "nope", None).await;
    assert!(
        matches!(missing, Err(PluginError::NotFound { .. })),
        "{missing:?}"
    );
}

#[tokio::test]
async fn pause_and_resume_set_and_remove_the_annotation_on_any_kind() {
    let api = FakeApiServer::new();
    api.insert(json!({"apiVersion": API, "kind": "QdrantBackup",
        "metadata": {"name": "nightly-1", "namespace": NS},
        "spec": {"cluster": {"name": "demo"}, "storage": {"s3": {"bucket": "b", "credentialsSecretRef": {"name": "s3"}}}}}));
    let out = pause::set(&api.client(), NS, "qbak", "nightly-1", true)
        .await
        .unwrap();
    assert_eq!(out, "QdrantBackup qdrant/nightly-1 paused");
    let annotations = |api: &FakeApiServer| {
        api.get(API, "qdrantbackups", Some(NS), "nightly-1")
            .unwrap()["metadata"]["annotations"]
            .clone()
    };
    assert_eq!(annotations(&api)["qdrant.operator.dev/paused"], "true");
    pause::set(&api.client(), NS, "QdrantBackup", "nightly-1", false)
        .await
        .unwrap();
    assert!(
        annotations(&api)
            .get("qdrant.operator.dev/paused")
            .is_none(),
        "{}",
        annotations(&api)
    );

    let unknown = pause::set(&api.client(), NS, "deployment", "x", true)
        .await
        .unwrap_err();
    assert!(
        unknown.to_string().contains("qc, qcol, qbak, qbs, qrs"),
        "{unknown}"
    );
    let missing = pause::set(&api.client(), NS, "qc", "nope", true).await;
    assert!(
        matches!(missing, Err(PluginError::NotFound { .. })),
        "{missing:?}"
    );
}

#[tokio::test]
async fn backup_uses_a_schedules_storage_and_waits_for_the_result() {
    let api = FakeApiServer::new();
    api.insert(json!({"apiVersion": API, "kind": "QdrantBackupSchedule",
        "metadata": {"name": "nightly", "namespace": NS},
        "spec": {"schedule": "0 3 * * *", "backupTemplate": {"cluster": {"name": "demo"},
            "storage": {"s3": {"bucket": "qdrant-backups", "prefix": "prod", "credentialsSecretRef": {"name": "s3"}}}}}}));
    // The backup-controller's part: finish the backup once it exists.
    let controller = {
        let api = api.clone();
        tokio::spawn(async move {
            loop {
                if api.get(API, "qdrantbackups", Some(NS), "now").is_some() {
                    api.edit(API, "qdrantbackups", Some(NS), "now", |b| {
                        b["status"] = json!({"phase": "Succeeded", "message": "3 shards of 1 collection",
                            "manifestKey": "prod/qdrant/now/abc-1/manifest.json",
                            "artifacts": [{"collection": "docs", "shardId": 0, "key": "k", "sizeBytes": 1024,
                                           "sha256": "00", "durationMillis": 5}]});
                    });
                    return;
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        })
    };
    let wait = runs::Wait {
        timeout: Duration::from_secs(10),
        poll: Duration::from_millis(20),
    };
    let storage = runs::StorageFrom {
        from: "nightly".into(),
    };
    let out = runs::backup(
        &api.client(),
        NS,
        "demo",
        "now",
        &["docs".into()],
        &storage,
        Some(wait),
    )
    .await
    .unwrap();
    controller.await.unwrap();
    assert!(
        out.contains("QdrantBackup qdrant/now Succeeded: 3 shards of 1 collection"),
        "{out}"
    );
    assert!(
        out.contains("manifest: prod/qdrant/now/abc-1/manifest.json"),
        "{out}"
    );
    assert!(out.contains("docs shard 0: 1024 bytes"), "{out}");
    let created = api.get(API, "qdrantbackups", Some(NS), "now").unwrap();
    assert_eq!(created["spec"]["storage"]["s3"]["prefix"], "prod");
    assert_eq!(created["spec"]["collections"], json!(["docs"]));

    // A failed run is an error, with its message; a missing source is named.
    api.insert(json!({"apiVersion": API, "kind": "QdrantBackup", "metadata": {"name": "bad", "namespace": NS},
        "spec": {"cluster": {"name": "demo"}, "storage": {"s3": {"bucket": "b", "credentialsSecretRef": {"name": "s3"}}}},
        "status": {"phase": "Failed", "message": "bucket not found"}}));
    let missing = runs::backup(
        &api.client(),
        NS,
        "demo",
        "x",
        &[],
        &runs::StorageFrom {
            from: "nowhere".into(),
        },
        None,
    )
    .await;
    assert!(
        matches!(missing, Err(PluginError::NotFound { .. })),
        "{missing:?}"
    );
    let restore = runs::restore(&api.client(), NS, "bad", "demo", "r", &["=x".into()], None).await;
    assert!(
        restore
            .unwrap_err()
            .to_string()
            .contains("expected NAME or NAME=NEW_NAME")
    );
    let timeout = runs::Wait {
        timeout: Duration::from_millis(100),
        poll: Duration::from_millis(20),
    };
    let pending = runs::restore(
        &api.client(),
        NS,
        "bad",
        "demo",
        "r",
        &["docs=copy".into()],
        Some(timeout),
    )
    .await;
    assert!(pending.unwrap_err().to_string().contains("did not finish"));
    let restore = api.get(API, "qdrantrestores", Some(NS), "r").unwrap();
    assert_eq!(
        restore["spec"]["collections"],
        json!([{"name": "docs", "newName": "copy"}])
    );
}

#[tokio::test]
async fn scale_down_plan_previews_the_planner_to_the_end_or_its_refusal() {
    let api = FakeApiServer::new();
    seed_cluster(&api);
    let (_fake, q) = qdrant().await;
    q.create_collection(
        "docs",
        &json!({"vectors": {"size": 4, "distance": "Cosine"}, "shard_number": 3}),
    )
    .await
    .unwrap();
    let out = plan::report(&api.client(), NS, "demo", &q, 2)
        .await
        .unwrap();
    println!("{out}");
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(
        lines[0], "scale-down of QdrantCluster qdrant/demo from 3 to 2 pods:",
        "{out}"
    );
    assert!(
        lines
            .iter()
            .any(|l| l.contains("move shard") && l.contains("from peer 102")),
        "{out}"
    );
    assert!(
        out.contains("remove peer 102 (pod demo-2) from consensus"),
        "{out}"
    );
    assert!(out.contains("StatefulSet shrinks to 2 pods"), "{out}");
    assert!(lines.last().unwrap().ends_with("done: 2 pods"), "{out}");
    // Nothing was changed in Qdrant.
    let view = cluster_controller::scale::observe(&q).await.unwrap();
    assert_eq!(view.members.len(), 3);

    let refused = plan::report(&api.client(), NS, "demo", &q, 0)
        .await
        .unwrap();
    assert!(refused.contains("refused:"), "{refused}");
    let not_down = plan::report(&api.client(), NS, "demo", &q, 3)
        .await
        .unwrap_err();
    assert!(
        not_down.to_string().contains("goes below that"),
        "{not_down}"
    );
}

#[test]
fn render_covers_every_kind_of_a_mixed_file_and_names_a_bad_document() {
    let file = r#"
apiVersion: qdrant.operator.dev/v1alpha1
kind: QdrantCluster
metadata: {name: demo, namespace: qdrant}
spec: {replicas: 3}
---
apiVersion: qdrant.operator.dev/v1alpha1
kind: QdrantCollection
metadata: {name: docs, namespace: qdrant}
spec:
  cluster: {name: demo}
  vectors: {size: 4, distance: Cosine}
  payloadIndexes: [{field: lang, schema: Keyword}]
  aliases: [docs-live]
---
apiVersion: qdrant.operator.dev/v1alpha1
kind: QdrantBackupSchedule
metadata: {name: nightly, namespace: qdrant}
spec:
  schedule: "0 3 * * *"
  backupTemplate:
    cluster: {name: demo}
    storage: {s3: {bucket: qdrant-backups, credentialsSecretRef: {name: s3}}}
"#;
    let out = render::render(file, "example/operator:1").unwrap();
    for part in [
        "kind: StatefulSet",
        "kind: PodDisruptionBudget",
        "path: /collections/docs\n",
        "path: /collections/docs/index",
        "alias_name: docs-live",
        "kind: ServiceAccount",
        "kind: RoleBinding",
        "kind: CronJob",
        "image: example/operator:1",
    ] {
        assert!(out.contains(part), "missing {part:?} in:\n{out}");
    }
    let tls = render::render(
        "apiVersion: qdrant.operator.dev/v1alpha1\nkind: QdrantCluster\nmetadata: {name: demo, namespace: qdrant}\nspec: {replicas: 3, tls: {client: {enabled: true}}}\n",
        "img",
    )
    .unwrap();
    assert!(
        tls.contains("# Secrets demo-ca (the generated CA: tls.crt, tls.key) and demo-tls (keys tls.crt, tls.key, ca.crt; type kubernetes.io/tls;"),
        "{tls}"
    );
    assert!(
        tls.contains("demo.qdrant.svc and every <pod>.demo-headless.qdrant.svc"),
        "{tls}"
    );
    let monitored = render::render(
        "apiVersion: qdrant.operator.dev/v1alpha1\nkind: QdrantCluster\nmetadata: {name: demo, namespace: qdrant}\nspec: {replicas: 3, auth: {apiKey: {generate: true}}, monitoring: {enabled: true, interval: 15s, labels: {release: prom}}}\n",
        "img",
    )
    .unwrap();
    for part in [
        "kind: PodMonitor",
        "kind: PrometheusRule",
        "grafana_dashboard: \"1\"",
        "key: operator-api-key",
        "release: prom",
    ] {
        assert!(
            monitored.contains(part),
            "missing {part:?} in:\n{monitored}"
        );
    }
    let bad = render::render(
        "apiVersion: qdrant.operator.dev/v1alpha1\nkind: QdrantCluster\nmetadata: {name: a}\nspec: {replicas: 1}\n---\napiVersion: qdrant.operator.dev/v1alpha1\nkind: QdrantBackupSchedule\nmetadata: {name: s}\nspec: {schedule: nope, backupTemplate: {cluster: {name: a}, storage: {s3: {bucket: b, credentialsSecretRef: {name: s}}}}}\n",
        "img",
    )
    .unwrap_err();
    assert!(
        bad.to_string()
            .starts_with("document 2 (QdrantBackupSchedule): "),
        "{bad}"
    );
    assert!(bad.to_string().contains("schedule"), "{bad}");
    let foreign = render::render(
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: x}\n",
        "img",
    )
    .unwrap_err();
    assert!(foreign.to_string().contains("document 1"), "{foreign}");
}
