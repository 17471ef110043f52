//! Health-gated rolling restarts and upgrades, and opt-in rebalancing, end to end in-process:
//! the real reconcile against the fake API server (playing the StatefulSet controller by hand:
//! pods, revisions, recreation after a delete) and a fake Qdrant answering as three peers.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;

use api_types::{QdrantCluster, cluster::ClusterPhase, conditions::ConditionStatus};
use cluster_controller::vocabulary::types::UPGRADE_BLOCKED;
use common::{Env, NS, Peers, QC, peer_uri};
use reconcile_lib::qdrant::{QdrantClient, QdrantConnection};
use serde_json::{Value, json};

mod common;

impl Env<Peers> {
    fn sts_image(&self) -> String {
        self.sts()["spec"]["template"]["spec"]["containers"][0]["image"]
            .as_str()
            .unwrap()
            .to_owned()
    }

    /// Plays the StatefulSet controller's status: `updateRevision` is `update`;
    /// `currentRevision` stays `r1`, as Kubernetes leaves it with `OnDelete`
    /// (kubernetes/kubernetes#73492).
    fn sts_status(&self, update: &str) {
        let pods = self.pods();
        let updated = pods
            .iter()
            .filter(|(_, rev, _)| rev.as_str() == update)
            .count();
        let ready = pods.iter().filter(|(_, _, r)| *r).count();
        self.edit("apps/v1", "statefulsets", "demo", |s| {
            let generation = s["metadata"]["generation"].clone();
            s["status"] = json!({"replicas": 3, "readyReplicas": ready, "updatedReplicas": updated,
                "currentRevision": "r1", "updateRevision": update, "observedGeneration": generation});
        });
    }

    /// Creates (or replaces) pod `ordinal` at `revision`, running the StatefulSet's image.
    fn pod(&self, ordinal: u32, revision: &str, ready: bool) {
        let _ = self.remove("v1", "pods", &format!("demo-{ordinal}"));
        let image = self.sts_image();
        self.fake.insert(json!({"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": format!("demo-{ordinal}"), "namespace": NS,
                "labels": {"app.kubernetes.io/name": "qdrant", "app.kubernetes.io/instance": "demo",
                    "app.kubernetes.io/component": "database",
                    "controller-revision-hash": revision}},
            "spec": {"containers": [{"name": "qdrant", "image": image}]},
            "status": {"conditions": [{"type": "Ready", "status": if ready {"True"} else {"False"}}]}}));
    }

    /// Pods as (ordinal, revision, ready), sorted by ordinal.
    fn pods(&self) -> Vec<(u32, String, bool)> {
        let mut out: Vec<_> = self
            .list("v1", "pods")
            .into_iter()
            .map(|p| {
                let name = p["metadata"]["name"].as_str().unwrap();
                let ordinal = name.strip_prefix("demo-").unwrap().parse().unwrap();
                let rev = p["metadata"]["labels"]["controller-revision-hash"]
                    .as_str()
                    .unwrap()
                    .to_owned();
                let ready = p["status"]["conditions"][0]["status"] == "True";
                (ordinal, rev, ready)
            })
            .collect();
        out.sort();
        out
    }

    fn pod_deletes(&self) -> Vec<String> {
        self.fake
            .writes()
            .into_iter()
            .filter(|r| r.method == http::Method::DELETE && r.path.contains("/pods/"))
            .map(|r| r.path.rsplit('/').next().unwrap().to_owned())
            .collect()
    }

    fn rollout(&self) -> Option<api_types::cluster::RolloutStatus> {
        self.qc().status.unwrap().rollout
    }

    /// A running 3-peer cluster at revision r1 with one collection (3 shards, RF 2).
    async fn running(&self) {
        self.seed_cluster(
            "demo",
            json!({"replicas": 3, "auth": {}, "image": {"tag": "v1.18.0"}}),
        );
        self.reconcile().await;
        for i in 0..3 {
            self.pod(i, "r1", true);
        }
        self.sts_status("r1");
        self.reconcile().await;
        assert_eq!(self.qc().status.unwrap().phase, ClusterPhase::Running);
        let client = QdrantClient::new(&QdrantConnection::new(self.qdrant.url())).unwrap();
        client
            .create_collection("docs", &json!({"vectors": {"size": 4, "distance": "Dot"}, "shard_number": 3, "replication_factor": 2}))
            .await
            .unwrap();
        self.fake.clear_requests();
    }

    fn set_tag(&self, tag: &str) {
        self.edit_kind::<QdrantCluster>("demo", |q| {
            q["spec"]["image"]["tag"] = json!(tag);
            let g = q["metadata"]["generation"].as_i64().unwrap_or(1);
            q["metadata"]["generation"] = json!(g + 1);
        });
    }
}

#[tokio::test]
async fn an_upgrade_restarts_one_pod_at_a_time_highest_ordinal_first() {
    let env = Env::with_peer_views().await;
    env.running().await;

    env.set_tag("v1.18.2");
    env.reconcile().await;
    assert_eq!(env.sts_image(), "qdrant/qdrant:v1.18.2");
    assert_eq!(
        env.sts()["spec"]["updateStrategy"]["type"],
        "OnDelete",
        "Kubernetes must never replace pods on its own"
    );
    assert!(env.pod_deletes().is_empty());

    let mut order = vec![];
    for round in 0..3 {
        // The StatefulSet controller has seen the new template.
        env.sts_status("r2");
        env.reconcile().await;
        let deleted = env.pod_deletes();
        assert_eq!(
            deleted.len(),
            1,
            "round {round}: exactly one pod at a time: {deleted:?}"
        );
        order.push(deleted[0].clone());
        let st = env.qc().status.unwrap();
        assert_eq!(st.phase, ClusterPhase::Upgrading);
        let r = st.rollout.unwrap();
        assert_eq!(r.restarting_pod.as_deref(), Some(deleted[0].as_str()));
        assert_eq!(r.to_version.as_deref(), Some("v1.18.2"));
        assert_eq!(r.from_version.as_deref(), Some("v1.18.0"));
        assert_eq!(env.condition("Progressing").reason, "Upgrading");
        let ordinal: u32 = deleted[0].strip_prefix("demo-").unwrap().parse().unwrap();
        env.fake.clear_requests();

        // The pod is gone: nothing else moves, and a fresh controller knows what it awaits.
        assert!(env.get("v1", "pods", &deleted[0]).is_none());
        env.sts_status("r2");
        env.reconcile_with(&env.controller()).await;
        assert!(env.pod_deletes().is_empty());
        let r = env.rollout().unwrap();
        assert!(
            r.message
                .contains(&format!("waiting for pod {} to exist", deleted[0])),
            "{}",
            r.message
        );

        // Back but not Ready yet: still waiting.
        env.pod(ordinal, "r2", false);
        env.sts_status("r2");
        env.reconcile().await;
        assert!(env.pod_deletes().is_empty());
        assert!(env.rollout().unwrap().message.contains("to be Ready"));

        env.pod(ordinal, "r2", true);
    }
    assert_eq!(order, ["demo-2", "demo-1", "demo-0"]);

    env.sts_status("r2");
    env.reconcile().await;
    let st = env.qc().status.unwrap();
    assert_eq!(st.rollout, None);
    assert_eq!(st.phase, ClusterPhase::Running);
    assert_eq!(st.version.as_deref(), Some("v1.18.2"));
    assert!(env.pod_deletes().is_empty());
}

#[tokio::test]
async fn no_pod_is_restarted_while_a_shard_replica_is_not_active() {
    let env = Env::with_peer_views().await;
    env.running().await;
    env.set_tag("v1.18.1");
    env.reconcile().await;
    env.qdrant.set_replica_state("docs", 1, 101, "Partial");
    env.sts_status("r2");
    env.reconcile().await;
    assert!(env.pod_deletes().is_empty());
    let msg = env.rollout().unwrap().message;
    assert!(
        msg.contains("shard 1 of collection docs to be Active on peer 101"),
        "{msg}"
    );
    assert_eq!(env.qc().status.unwrap().phase, ClusterPhase::Upgrading);

    env.qdrant.set_replica_state("docs", 1, 101, "Active");
    env.reconcile().await;
    assert_eq!(env.pod_deletes(), ["demo-2"]);
}

#[tokio::test]
async fn an_unanswering_peer_holds_the_rollout() {
    let env = Env::with_peer_views().await;
    env.running().await;
    env.set_tag("v1.18.1");
    env.reconcile().await;
    env.sts_status("r2");
    // Pod 1's Qdrant does not answer (/readyz and GET /cluster).
    let mut urls = env.qdrant.urls.lock().unwrap().clone();
    urls.insert(1, url::Url::parse("http://127.0.0.1:9/").unwrap());
    let ctx = common::context(
        &env.fake,
        Arc::new(move |_, ordinal| urls.get(&ordinal).cloned()),
    );
    env.reconcile_with(&ctx).await;
    assert!(env.pod_deletes().is_empty());
    let msg = env.rollout().unwrap().message;
    assert!(msg.contains("/readyz on pod demo-1"), "{msg}");
}

#[tokio::test]
async fn a_running_backup_defers_restarts() {
    let env = Env::with_peer_views().await;
    env.running().await;
    env.fake.insert(json!({"apiVersion": QC, "kind": "QdrantBackup",
        "metadata": {"name": "nightly-1", "namespace": NS},
        "spec": {"cluster": {"name": "demo"}, "storage": {"s3": {"bucket": "b", "credentialsSecretRef": {"name": "s3"}}}},
        "status": {"phase": "Running"}}));
    // A backup of another cluster does not count.
    env.fake.insert(json!({"apiVersion": QC, "kind": "QdrantBackup",
        "metadata": {"name": "other-1", "namespace": NS},
        "spec": {"cluster": {"name": "other"}, "storage": {"s3": {"bucket": "b", "credentialsSecretRef": {"name": "s3"}}}},
        "status": {"phase": "Running"}}));
    env.set_tag("v1.18.1");
    env.reconcile().await;
    env.sts_status("r2");
    env.reconcile().await;
    assert!(env.pod_deletes().is_empty());
    let msg = env.rollout().unwrap().message;
    assert!(msg.contains("QdrantBackup nightly-1"), "{msg}");
    assert!(!msg.contains("other-1"), "{msg}");

    env.edit(QC, "qdrantbackups", "nightly-1", |b| {
        b["status"]["phase"] = json!("Succeeded");
    });
    env.reconcile().await;
    assert_eq!(env.pod_deletes(), ["demo-2"]);
}

#[tokio::test]
async fn a_migration_reading_or_writing_the_cluster_defers_restarts() {
    let env = Env::with_peer_views().await;
    env.running().await;
    let migration = |name: &str, source: Value, target: Value, phase: &str| {
        json!({"apiVersion": QC, "kind": "QdrantMigration",
            "metadata": {"name": name, "namespace": NS},
            "spec": {"source": source, "target": target},
            "status": {"phase": phase}})
    };
    let helm = json!({"connection": {"url": "http://qdrant.other.svc:6333"}});
    let demo = json!({"cluster": {"name": "demo"}});
    env.fake.insert(migration(
        "from-helm",
        helm.clone(),
        demo.clone(),
        "Running",
    ));
    env.fake.insert(migration(
        "to-helm",
        demo.clone(),
        helm.clone(),
        "Verifying",
    ));
    // Finished, or about other clusters: they do not count.
    env.fake
        .insert(migration("done", helm.clone(), demo.clone(), "Succeeded"));
    env.fake.insert(migration(
        "elsewhere",
        helm.clone(),
        json!({"cluster": {"name": "other"}}),
        "Running",
    ));
    env.set_tag("v1.18.1");
    env.reconcile().await;
    env.sts_status("r2");
    env.reconcile().await;
    assert!(env.pod_deletes().is_empty());
    let msg = env.rollout().unwrap().message;
    for name in ["QdrantMigration from-helm", "QdrantMigration to-helm"] {
        assert!(msg.contains(name), "{name} in {msg}");
    }
    assert!(!msg.contains("done") && !msg.contains("elsewhere"), "{msg}");

    for name in ["from-helm", "to-helm"] {
        env.edit(QC, "qdrantmigrations", name, |m| {
            m["status"]["phase"] = json!("Succeeded");
        });
    }
    env.reconcile().await;
    assert_eq!(env.pod_deletes(), ["demo-2"]);
}

#[tokio::test]
async fn a_pod_that_does_not_come_back_stops_the_rollout() {
    let env = Env::with_peer_views().await;
    env.running().await;
    env.set_tag("v1.18.1");
    env.reconcile().await;
    env.sts_status("r2");
    env.reconcile().await;
    assert_eq!(env.pod_deletes(), ["demo-2"]);
    env.fake.clear_requests();
    assert!(env.get("v1", "pods", "demo-2").is_none());
    env.pod(2, "r2", false);

    // Pretend the restart happened 11 minutes ago (timeout 600 s by default).
    let long_ago = jiff::Timestamp::now() - jiff::SignedDuration::from_secs(660);
    env.edit(QC, "qdrantclusters", "demo", |q| {
        q["status"]["rollout"]["restartedAt"] = json!(long_ago.to_string());
    });
    env.reconcile().await;
    env.reconcile().await;
    assert!(
        env.pod_deletes().is_empty(),
        "never pushed past a stuck pod"
    );
    let st = env.qc().status.unwrap();
    assert_eq!(st.phase, ClusterPhase::Degraded);
    let degraded = env.condition("Degraded");
    assert_eq!(degraded.status, ConditionStatus::True);
    assert_eq!(degraded.reason, "RolloutStuck");
    assert!(
        degraded.message.contains("pod demo-2 is not back"),
        "{}",
        degraded.message
    );
    assert_eq!(
        st.rollout.unwrap().restarting_pod.as_deref(),
        Some("demo-2")
    );

    // Once the pod is back, the rollout goes on.
    env.pod(2, "r2", true);
    env.reconcile().await;
    assert_eq!(env.pod_deletes(), ["demo-1"]);
    assert_eq!(env.condition("Degraded").status, ConditionStatus::False);
}

#[tokio::test]
async fn a_downgrade_across_minor_versions_is_refused() {
    let env = Env::with_peer_views().await;
    env.running().await;
    env.set_tag("v1.17.4");
    env.reconcile().await;
    assert_eq!(env.sts_image(), "qdrant/qdrant:v1.18.0");
    let c = env.condition(UPGRADE_BLOCKED);
    assert_eq!(c.status, ConditionStatus::True);
    assert_eq!(c.reason, "DowngradeRefused");
    assert!(
        c.message.contains("spec.image.tag v1.17.4"),
        "{}",
        c.message
    );
    let st = env.qc().status.unwrap();
    assert_eq!(st.version.as_deref(), Some("v1.18.0"));
    assert_eq!(env.condition("Progressing").reason, "DowngradeRefused");
    assert!(env.pod_deletes().is_empty());
    let events: Vec<Value> = env.events();
    assert!(
        events.iter().any(|e| e["reason"] == "DowngradeRefused"),
        "{events:?}"
    );

    // A second reconcile writes nothing new.
    env.fake.clear_requests();
    env.reconcile().await;
    assert_eq!(env.fake.writes().len(), 0, "{:?}", env.fake.writes());

    // A patch-level downgrade within the same minor is allowed.
    env.set_tag("v1.18.0-unprivileged");
    env.reconcile().await;
    assert_eq!(env.sts_image(), "qdrant/qdrant:v1.18.0-unprivileged");
    assert_eq!(
        env.condition(UPGRADE_BLOCKED).status,
        ConditionStatus::False
    );
}

#[tokio::test]
async fn rebalance_moves_shards_onto_a_new_peer_one_transfer_at_a_time() {
    let env = Env::with_peer_views().await;
    // The collection was created while the cluster had two peers.
    env.qdrant
        .set_peers((0..2).map(|i| (100 + i, peer_uri(i))).collect());
    env.running().await;
    env.qdrant
        .set_peers((0..3).map(|i| (100 + i, peer_uri(i))).collect());
    let count_on = |peer: u64| {
        env.qdrant
            .placement("docs")
            .values()
            .flatten()
            .filter(|(p, _)| *p == peer)
            .count()
    };
    assert_eq!(count_on(102), 0);

    // Off by default: nothing moves.
    env.qdrant.clear_requests();
    env.reconcile().await;
    assert!(env.qc().status.unwrap().rebalance.is_none());
    assert!(env.qdrant_writes().is_empty());

    env.edit(QC, "qdrantclusters", "demo", |q| {
        q["spec"]["rebalance"] = json!({"enabled": true});
    });
    let mut moves = 0;
    for _ in 0..10 {
        env.qdrant.clear_requests();
        env.reconcile().await;
        let writes = env.qdrant_writes();
        let st = env.qc().status.unwrap();
        let Some(r) = st.rebalance else {
            assert!(writes.is_empty());
            break;
        };
        assert!(
            writes.len() <= 1,
            "one transfer at a time per collection: {writes:?}"
        );
        if let Some(w) = writes.first() {
            assert_eq!(w, "POST /collections/docs/cluster");
            assert_eq!(r.planned.len(), 1);
            assert_eq!(r.planned[0].to_peer_id, 102);
            assert_eq!(env.condition("Progressing").reason, "Rebalancing");
            moves += 1;
            // While the transfer runs, nothing new is issued.
            env.qdrant.clear_requests();
            env.reconcile().await;
            assert!(env.qdrant_writes().is_empty());
            let r = env.qc().status.unwrap().rebalance.unwrap();
            assert_eq!(r.active.len(), 1, "{r:?}");
            assert!(r.planned.is_empty());
            env.qdrant.complete_transfers();
        }
    }
    // 3 shards with 2 replicas each over 3 peers: 2 each.
    assert_eq!(moves, 2);
    for peer in [100, 101, 102] {
        assert_eq!(count_on(peer), 2, "{:?}", env.qdrant.placement("docs"));
    }
    let st = env.qc().status.unwrap();
    assert_eq!(st.rebalance, None);
    assert_eq!(st.phase, ClusterPhase::Running);
}

#[tokio::test]
async fn a_running_restore_defers_a_scale_down() {
    let env = Env::with_peer_views().await;
    env.running().await;
    env.fake
        .insert(json!({"apiVersion": QC, "kind": "QdrantRestore",
        "metadata": {"name": "restore-1", "namespace": NS},
        "spec": {"cluster": {"name": "demo"}, "source": {"backup": {"name": "b"}}},
        "status": {"phase": "Running"}}));
    env.edit(QC, "qdrantclusters", "demo", |q| {
        q["spec"]["replicas"] = json!(2);
    });
    env.qdrant.clear_requests();
    env.reconcile().await;
    assert!(
        env.qdrant_writes().is_empty(),
        "no drain while a restore runs"
    );
    assert_eq!(env.sts()["spec"]["replicas"], 3);
    let st = env.qc().status.unwrap();
    assert_eq!(st.phase, ClusterPhase::Scaling);
    let msg = env.condition("Progressing").message;
    assert!(msg.contains("waiting for QdrantRestore restore-1"), "{msg}");

    env.edit(QC, "qdrantrestores", "restore-1", |r| {
        r["status"]["phase"] = json!("Succeeded");
    });
    env.reconcile().await;
    assert!(
        env.qdrant_writes()
            .iter()
            .any(|w| w == "POST /collections/docs/cluster"),
        "the drain starts once the restore is over: {:?}",
        env.qdrant_writes()
    );
}

/// `spec.zoneAware` against the fake API server and a fake Qdrant of three peers: off, the
/// controller reads no Node and writes no condition; on, it reads each pod's Node, moves one
/// replica per reconcile into zone b (the shards were all created on the two zone-a peers)
/// until condition ZoneSpread is True, and reports the zones in `status.peers`.
#[tokio::test]
async fn zone_aware_spreads_every_shard_over_two_zones_one_move_at_a_time() {
    let env = Env::with_peer_views().await;
    // The collection was created while only the two zone-a peers existed.
    env.qdrant
        .set_peers((0..2).map(|i| (100 + i, peer_uri(i))).collect());
    env.running().await;
    env.qdrant
        .set_peers((0..3).map(|i| (100 + i, peer_uri(i))).collect());
    for (i, zone) in [(0, "a"), (1, "a"), (2, "b")] {
        env.fake.insert(json!({"apiVersion": "v1", "kind": "Node",
            "metadata": {"name": format!("node-{i}"),
                "labels": {"topology.kubernetes.io/zone": zone, "kubernetes.io/hostname": format!("node-{i}")}}}));
        env.edit("v1", "pods", &format!("demo-{i}"), |p| {
            p["spec"]["nodeName"] = json!(format!("node-{i}"));
        });
    }
    let zones_of_shards = || -> Vec<Vec<&str>> {
        env.qdrant
            .placement("docs")
            .values()
            .map(|rs| {
                let mut z: Vec<&str> = rs
                    .iter()
                    .map(|(p, _)| if *p == 102 { "b" } else { "a" })
                    .collect();
                z.sort_unstable();
                z
            })
            .collect()
    };
    assert_eq!(zones_of_shards(), vec![vec!["a", "a"]; 3]);
    let node_reads = |env: &Env<Peers>| {
        env.fake
            .requests()
            .into_iter()
            .filter(|r| r.path.starts_with("/api/v1/nodes"))
            .count()
    };

    // Off (the default): no Node is read, nothing moves, no ZoneSpread condition.
    env.fake.clear_requests();
    env.qdrant.clear_requests();
    env.reconcile().await;
    assert_eq!(node_reads(&env), 0);
    assert!(env.qdrant_writes().is_empty());
    assert!(env.try_condition("ZoneSpread").is_none());
    assert!(
        env.sts()["spec"]["template"]["spec"]["topologySpreadConstraints"].is_null(),
        "no spread added while off"
    );

    env.edit(QC, "qdrantclusters", "demo", |q| {
        q["spec"]["zoneAware"] = json!(true);
    });
    // The default zone spread changes the pod template: nothing moves until the StatefulSet
    // has observed it (and, in a cluster, the rollout has restarted the pods).
    env.qdrant.clear_requests();
    env.reconcile().await;
    assert!(env.qdrant_writes().is_empty(), "{:?}", env.qdrant_writes());
    env.sts_status("r1");
    let mut moves = 0;
    for _ in 0..10 {
        env.fake.clear_requests();
        env.qdrant.clear_requests();
        env.reconcile().await;
        assert!(node_reads(&env) > 0, "the zones are read");
        let writes = env.qdrant_writes();
        assert!(writes.len() <= 1, "one move per reconcile: {writes:?}");
        let spread = env.condition("ZoneSpread");
        println!(
            "reconcile: writes {writes:?}; ZoneSpread {:?}/{}: {}",
            spread.status, spread.reason, spread.message
        );
        if spread.status == ConditionStatus::True {
            assert!(writes.is_empty());
            break;
        }
        assert_eq!(spread.reason, "ShardsInOneZone");
        if !writes.is_empty() {
            assert_eq!(writes[0], "POST /collections/docs/cluster");
            assert_eq!(env.condition("Progressing").reason, "SpreadingZones");
            moves += 1;
            // While the transfer runs nothing new is issued.
            env.qdrant.clear_requests();
            env.reconcile().await;
            assert!(env.qdrant_writes().is_empty());
            env.qdrant.complete_transfers();
        }
    }
    assert_eq!(moves, 3, "one move per shard");
    assert_eq!(env.condition("ZoneSpread").reason, "ReplicasSpread");
    assert_eq!(zones_of_shards(), vec![vec!["a", "b"]; 3]);
    for rs in env.qdrant.placement("docs").values() {
        assert_eq!(rs.len(), 2, "every shard keeps its two copies: {rs:?}");
    }
    let st = env.qc().status.unwrap();
    let zones: Vec<(String, Option<String>)> = st
        .peers
        .iter()
        .map(|p| (p.pod.clone(), p.zone.clone()))
        .collect();
    assert_eq!(
        zones,
        [("demo-0", "a"), ("demo-1", "a"), ("demo-2", "b")]
            .map(|(p, z)| (p.to_owned(), Some(z.to_owned())))
    );
    let spread = &env.sts()["spec"]["template"]["spec"]["topologySpreadConstraints"];
    assert_eq!(spread[0]["topologyKey"], "topology.kubernetes.io/zone");
    assert_eq!(spread[0]["whenUnsatisfiable"], "ScheduleAnyway");

    // Settled: a further reconcile writes nothing to Qdrant.
    env.qdrant.clear_requests();
    env.reconcile().await;
    assert!(env.qdrant_writes().is_empty());
}
