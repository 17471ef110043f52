//! Peer recovery end to end in-process: the real reconcile against the fake API server and a
//! fake Qdrant with one listener per pod (peer views), where pod 2's volume comes back empty.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use api_types::{cluster::ClusterPhase, conditions::ConditionStatus};
use cluster_controller::{
    build::statefulset::FRESH_STORAGE_MARKER,
    day2::recover::RECORD_KEY_PREFIX,
    vocabulary::reasons::{PEER_RECOVERY, PEER_RECOVERY_BLOCKED},
};
use common::{Env, NS, Peers, peer_uri};
use reconcile_lib::qdrant::{QdrantClient, QdrantConnection};
use serde_json::json;
use url::Url;

mod common;

/// The stale peer of pod 2 and the fresh one its empty volume gets.
const STALE: u64 = 102;
const FRESH: u64 = 103;

/// A URL where nothing listens (a crash-looping pod: connection refused).
fn closed_port() -> Url {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    drop(listener);
    Url::parse(&format!("http://127.0.0.1:{port}/")).unwrap()
}

impl Env<Peers> {
    /// Qdrant writes since the last call, as `METHOD path[?query] body`.
    fn take_writes(&self) -> Vec<String> {
        let writes = self
            .qdrant
            .recorded()
            .into_iter()
            .filter(|r| r.method != http::Method::GET)
            .map(|r| match r.query {
                Some(q) => format!("{} {}?{q}", r.method, r.path),
                None => format!("{} {}", r.method, r.path),
            })
            .collect();
        self.qdrant.clear_requests();
        writes
    }

    fn degraded(&self) -> (ConditionStatus, String, String) {
        let c = self.condition("Degraded");
        (c.status, c.reason, c.message)
    }

    async fn members(&self) -> Vec<u64> {
        let c = QdrantClient::new(&QdrantConnection::new(self.qdrant.url())).unwrap();
        c.cluster_info()
            .await
            .unwrap()
            .peers
            .keys()
            .copied()
            .collect()
    }

    /// A running 3-peer cluster with collections created through Qdrant's API.
    async fn running(&self, collections: &[(&str, u64, u64)]) {
        self.seed_cluster("demo", json!({"replicas": 3, "auth": {}}));
        self.reconcile().await;
        self.mark_statefulset_ready("demo", 3);
        self.reconcile().await;
        assert_eq!(self.qc().status.unwrap().phase, ClusterPhase::Running);
        let client = QdrantClient::new(&QdrantConnection::new(self.qdrant.url())).unwrap();
        for (name, shards, rf) in collections {
            client
                .create_collection(
                    name,
                    &json!({"vectors": {"size": 4, "distance": "Dot"},
                    "shard_number": shards, "replication_factor": rf}),
                )
                .await
                .unwrap();
        }
        // A healthy cluster: the recovery reads no placement and writes nothing.
        self.qdrant.clear_requests();
        self.reconcile().await;
        assert_eq!(self.take_writes(), Vec::<String>::new());
        assert!(
            !self
                .qdrant
                .requests()
                .iter()
                .any(|(_, p)| p.ends_with("/cluster") && p.starts_with("/collections/")),
            "no placement read without a reason"
        );
    }

    /// Pod 2's node lost its disk: the pod restarts on an empty volume, its Qdrant is refused
    /// by consensus and crash-loops (nothing listens), its container's termination message
    /// carries the start script's marker, and the StatefulSet has 2 ready pods.
    fn lose_pod_2_volume(&self) {
        self.qdrant.urls.lock().unwrap().insert(2, closed_port());
        self.fake.insert(json!({"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": "demo-2", "namespace": NS, "labels": {
                "app.kubernetes.io/name": "qdrant", "app.kubernetes.io/instance": "demo",
                "controller-revision-hash": "r1"}}}));
        self.edit("v1", "pods", "demo-2", |p| {
            p["status"] = json!({"phase": "Running", "containerStatuses": [{
                "name": "qdrant", "ready": false, "restartCount": 3, "image": "qdrant/qdrant",
                "imageID": "", "state": {"waiting": {"reason": "CrashLoopBackOff"}},
                "lastState": {"terminated": {"exitCode": 101, "reason": "Error",
                    "message": format!("{FRESH_STORAGE_MARKER}: no Raft state of a joined peer in /qdrant/storage/raft_state.json\n")}}}]});
        });
        self.mark_statefulset_ready("demo", 2);
        // Qdrant refuses the fresh peer while the stale one still lists replicas.
        let refused = self.qdrant.bootstrap_peer(FRESH, &peer_uri(2)).unwrap_err();
        assert!(refused.contains("already used by peer 102"), "{refused}");
    }

    /// Pod 2's next start is accepted: it joins as peer 103 and answers again.
    async fn pod_2_joins(&self) -> Result<(), String> {
        self.qdrant.bootstrap_peer(FRESH, &peer_uri(2))?;
        let view = self.qdrant.peer_view(FRESH).await;
        self.qdrant.urls.lock().unwrap().insert(2, view.url());
        self.qdrant.views.lock().unwrap().push(view);
        self.mark_statefulset_ready("demo", 3);
        Ok(())
    }
}

#[tokio::test]
async fn an_empty_volume_rejoins_fresh_and_gets_its_shards_back() {
    let env = Env::with_peer_views().await;
    env.running(&[("double", 3, 2), ("other", 1, 1)]).await;
    // Round robin over 100, 101, 102: shard 1 on 102 and 100, shard 2 on 101 and 102.
    let before = env.qdrant.placement("double");
    assert_eq!(
        before[&1].iter().map(|(p, _)| *p).collect::<Vec<_>>(),
        [100, STALE]
    );
    env.lose_pod_2_volume();
    // A write to shard 2 failed since: its stale replica is Dead; shard 1's still says Active.
    env.qdrant.set_replica_state("double", 2, STALE, "Dead");

    // 1. The stale peer's shards are recorded in Qdrant's cluster metadata first.
    env.take_writes();
    env.reconcile().await;
    let key = format!("{RECORD_KEY_PREFIX}{STALE}");
    assert_eq!(
        env.take_writes(),
        [format!("PUT /cluster/metadata/keys/{key}?wait=true")]
    );
    assert_eq!(
        env.qdrant.cluster_metadata()[&key],
        json!({"ordinal": 2, "stale_peer": STALE, "shards": {"double": [1, 2]}})
    );
    let (status, reason, message) = env.degraded();
    assert_eq!(
        (status, reason.as_str()),
        (ConditionStatus::True, PEER_RECOVERY)
    );
    assert!(message.contains("empty volume"), "{message}");
    assert_eq!(env.event_count("StalePeerDetected"), 1);

    // 2. Its replicas are dropped, one per collection and reconcile.
    env.reconcile().await;
    assert_eq!(env.take_writes(), ["POST /collections/double/cluster"]);
    assert!(
        env.degraded()
            .2
            .contains("drop the replica of shard 1 of collection double on peer 102"),
        "{:?}",
        env.degraded()
    );
    env.reconcile().await;
    assert_eq!(env.take_writes(), ["POST /collections/double/cluster"]);
    assert!(
        env.qdrant
            .placement("double")
            .values()
            .all(|rs| rs.iter().all(|(p, _)| *p != STALE))
    );
    assert_eq!(env.event_count("StaleReplicaDropped"), 2);

    // 3. The emptied stale peer leaves consensus, without force.
    env.reconcile().await;
    assert_eq!(env.take_writes(), ["DELETE /cluster/peer/102"]);
    assert_eq!(env.members().await, [100, 101]);
    assert_eq!(env.event_count("StalePeerRemoved"), 1);

    // 4. Until the pod restarts and joins, the recovery waits and says so.
    env.reconcile().await;
    assert_eq!(env.take_writes(), Vec::<String>::new());
    assert!(
        env.degraded()
            .2
            .contains("waiting for pod ordinal 2 to join"),
        "{:?}",
        env.degraded()
    );
    env.pod_2_joins().await.unwrap();
    assert_eq!(env.members().await, [100, 101, FRESH]);

    // 5. The recorded shards are copied to the new peer, one transfer per collection.
    env.reconcile().await;
    assert_eq!(env.take_writes(), ["POST /collections/double/cluster"]);
    let (_, reason, message) = env.degraded();
    assert_eq!(reason, PEER_RECOVERY);
    assert!(
        message.contains("replicate shard 1 of collection double from peer 100 to peer 103"),
        "{message}"
    );
    assert_eq!(env.event_count("ShardReplicated"), 1);
    // While it runs nothing is issued again, by this controller or a fresh one.
    env.reconcile().await;
    assert_eq!(
        env.take_writes(),
        Vec::<String>::new(),
        "never a transfer twice"
    );
    assert!(
        env.degraded()
            .2
            .contains("waiting for the replication of shard 1"),
        "{:?}",
        env.degraded()
    );
    let fresh = env.controller();
    env.reconcile_with(&fresh).await;
    assert_eq!(
        env.take_writes(),
        Vec::<String>::new(),
        "nor after a restart"
    );

    assert_eq!(env.qdrant.complete_transfers(), 1);
    env.reconcile_with(&fresh).await;
    assert_eq!(env.take_writes(), ["POST /collections/double/cluster"]);
    assert!(
        env.degraded()
            .2
            .contains("replicate shard 2 of collection double from peer 101 to peer 103"),
        "{:?}",
        env.degraded()
    );
    assert_eq!(env.qdrant.complete_transfers(), 1);

    // 6. Done: the record is deleted, and the cluster is healthy again.
    env.reconcile().await;
    assert_eq!(
        env.take_writes(),
        [format!("DELETE /cluster/metadata/keys/{key}?wait=true")]
    );
    assert_eq!(env.event_count("PeerRecovered"), 1);
    env.reconcile().await;
    assert_eq!(env.take_writes(), Vec::<String>::new());
    let (status, reason, _) = env.degraded();
    assert_eq!(
        (status, reason.as_str()),
        (ConditionStatus::False, "AsExpected")
    );
    assert_eq!(env.qc().status.unwrap().phase, ClusterPhase::Running);

    let after = env.qdrant.placement("double");
    let active = |shard: u32| -> Vec<(u64, String)> { after[&shard].clone() };
    assert_eq!(active(0), [(100, "Active".into()), (101, "Active".into())]);
    assert_eq!(
        active(1),
        [(100, "Active".into()), (FRESH, "Active".into())]
    );
    assert_eq!(
        active(2),
        [(101, "Active".into()), (FRESH, "Active".into())]
    );
    assert!(env.qdrant.cluster_metadata().is_empty());
    // The ConfigMap lists the members pod 0 would bootstrap from, pod 2 included again.
    let cm = env.get("v1", "configmaps", "demo-config").unwrap();
    assert_eq!(
        cm["data"]["bootstrap-peers"],
        json!(format!(
            "{}\n{}\n{}\n",
            peer_uri(0).trim_end_matches('/'),
            peer_uri(1).trim_end_matches('/'),
            peer_uri(2).trim_end_matches('/')
        ))
    );
}

#[tokio::test]
async fn a_shard_only_the_lost_peer_held_blocks_the_recovery_and_keeps_the_peer() {
    let env = Env::with_peer_views().await;
    // "single": one replica per shard; shard 2 lives on 102 only.
    env.running(&[("single", 3, 1), ("double", 3, 2)]).await;
    assert_eq!(
        env.qdrant.placement("single")[&2],
        [(STALE, "Active".to_owned())]
    );
    env.lose_pod_2_volume();
    env.take_writes();

    env.reconcile().await;
    assert_eq!(
        env.take_writes(),
        [format!(
            "PUT /cluster/metadata/keys/{RECORD_KEY_PREFIX}{STALE}?wait=true"
        )]
    );
    env.reconcile().await;
    assert_eq!(
        env.take_writes(),
        Vec::<String>::new(),
        "nothing dropped or removed"
    );
    let (status, reason, message) = env.degraded();
    assert_eq!(
        (status, reason.as_str()),
        (ConditionStatus::True, PEER_RECOVERY_BLOCKED)
    );
    assert!(
        message.contains("collection single shard 2") && message.contains("stale peers are kept"),
        "{message}"
    );
    assert!(!message.contains("collection double"), "{message}");
    assert_eq!(env.members().await, [100, 101, STALE]);
    assert_eq!(env.event_count("PeerRecoveryBlocked"), 1);
    // The pod still cannot join.
    assert!(env.pod_2_joins().await.is_err());

    // Reported once, not repeated.
    env.reconcile().await;
    assert_eq!(env.take_writes(), Vec::<String>::new());
    assert_eq!(env.event_count("PeerRecoveryBlocked"), 1);

    // The user gives the lost collection up (or restores it elsewhere): the recovery goes on.
    let client = QdrantClient::new(&QdrantConnection::new(env.qdrant.url())).unwrap();
    assert!(client.delete_collection("single").await.unwrap());
    env.take_writes();
    env.reconcile().await;
    assert_eq!(env.take_writes(), ["POST /collections/double/cluster"]);
    assert_eq!(env.degraded().1, PEER_RECOVERY);
}

#[tokio::test]
async fn a_pod_that_is_merely_down_is_left_alone() {
    let env = Env::with_peer_views().await;
    env.running(&[("double", 3, 2)]).await;
    // Pod 2 does not answer, but it shows no sign of an empty volume: it was OOM-killed.
    env.qdrant.urls.lock().unwrap().insert(2, closed_port());
    env.fake.insert(json!({"apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": "demo-2", "namespace": NS, "labels": {
            "app.kubernetes.io/name": "qdrant", "app.kubernetes.io/instance": "demo",
            "controller-revision-hash": "r1"}}}));
    env.edit("v1", "pods", "demo-2", |p| {
        p["status"] = json!({"phase": "Running", "containerStatuses": [{
            "name": "qdrant", "ready": false, "restartCount": 1, "image": "qdrant/qdrant",
            "imageID": "", "state": {"waiting": {"reason": "CrashLoopBackOff"}},
            "lastState": {"terminated": {"exitCode": 137, "reason": "OOMKilled"}}}]});
    });
    env.mark_statefulset_ready("demo", 2);
    env.take_writes();
    for _ in 0..3 {
        env.reconcile().await;
    }
    assert_eq!(env.take_writes(), Vec::<String>::new());
    assert_eq!(env.members().await, [100, 101, STALE]);
    assert_eq!(env.degraded().1, "PeersNotReady");
    assert!(env.qdrant.cluster_metadata().is_empty());
}
