//! Safe scale-down end to end in-process: the real reconcile against the fake API server and a
//! fake Qdrant modelling three peers with shard placement and transfers.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use api_types::{QdrantCluster, cluster::ClusterPhase, conditions::ConditionStatus};
use cluster_controller::vocabulary::types::SCALE_DOWN_BLOCKED;
use common::Env;
use reconcile_lib::qdrant::{QdrantClient, QdrantConnection};
use serde_json::json;
use testkit::qdrant::FakeQdrant;

mod common;

impl Env<FakeQdrant> {
    fn sts_replicas(&self) -> i64 {
        self.sts()["spec"]["replicas"].as_i64().unwrap()
    }

    /// A running 3-peer cluster with collections created through Qdrant's API.
    async fn running(&self, collections: &[(&str, u64, u64)]) {
        self.seed_cluster("demo", json!({"replicas": 3, "auth": {}}));
        self.reconcile().await;
        self.mark_ready();
        self.reconcile().await;
        assert_eq!(self.qc().status.unwrap().phase, ClusterPhase::Running);
        let client = QdrantClient::new(&QdrantConnection::new(self.qdrant.url())).unwrap();
        for (name, shards, rf) in collections {
            client
                .create_collection(name, &json!({"vectors": {"size": 4, "distance": "Dot"}, "shard_number": shards, "replication_factor": rf}))
                .await
                .unwrap();
        }
    }

    fn scale_to(&self, n: i64) {
        self.edit_spec::<QdrantCluster>("demo", |s| s["replicas"] = json!(n));
    }

    /// Every replica of every shard of `collection`, as (shard, peer).
    fn replicas(&self, collection: &str) -> Vec<(u32, u64)> {
        self.qdrant
            .placement(collection)
            .into_iter()
            .flat_map(|(shard, rs)| rs.into_iter().map(move |(peer, _)| (shard, peer)))
            .collect()
    }
}

#[tokio::test]
async fn scale_3_to_2_moves_the_shards_then_removes_the_peer_then_shrinks() {
    let env = Env::with_one_fake().await;
    env.running(&[("single", 3, 1), ("double", 3, 2)]).await;
    assert!(
        env.replicas("single").iter().any(|(_, p)| *p == 102),
        "peer 102 holds data before"
    );
    let shards_before: Vec<u32> = env.qdrant.placement("single").keys().copied().collect();

    env.scale_to(2);
    env.qdrant.clear_requests();
    env.reconcile().await;
    assert_eq!(env.sts_replicas(), 3, "no pod goes before its shards");
    let first_ops = env.qdrant_writes();
    assert!(
        !first_ops.is_empty()
            && first_ops
                .iter()
                .all(|w| w.starts_with("POST /collections/")),
        "{first_ops:?}"
    );
    let st = env.qc().status.unwrap();
    assert_eq!(st.phase, ClusterPhase::Scaling);
    let progressing = env.condition("Progressing");
    assert_eq!(
        (progressing.status, progressing.reason.as_str()),
        (ConditionStatus::True, "ScalingDown")
    );
    assert!(
        !progressing.message.is_empty(),
        "status says what is happening"
    );

    // While transfers run, nothing is issued again.
    env.qdrant.clear_requests();
    env.reconcile().await;
    assert_eq!(
        env.qdrant_writes(),
        Vec::<String>::new(),
        "never a transfer twice"
    );
    assert!(
        env.condition("Progressing")
            .message
            .contains("waiting for the move of shard"),
        "{}",
        env.condition("Progressing").message
    );

    // Drive the drain to its end: complete transfers between reconciles.
    let mut deletes = vec![];
    for _ in 0..20 {
        env.qdrant.complete_transfers();
        env.qdrant.clear_requests();
        env.reconcile().await;
        deletes.extend(
            env.qdrant_writes()
                .into_iter()
                .filter(|w| w.starts_with("DELETE /cluster/peer/")),
        );
        if env.sts_replicas() == 2 {
            break;
        }
        assert_eq!(env.sts_replicas(), 3);
    }
    assert_eq!(env.sts_replicas(), 2, "shrunk once drained and removed");
    assert_eq!(
        deletes,
        ["DELETE /cluster/peer/102"],
        "the peer left consensus exactly once, without force"
    );
    for c in ["single", "double"] {
        assert!(
            env.replicas(c).iter().all(|(_, p)| *p != 102),
            "{c}: nothing left on the leaving peer"
        );
        let shards: Vec<u32> = env.qdrant.placement(c).keys().copied().collect();
        assert_eq!(shards, shards_before, "{c}: every shard still exists");
    }
    for (shard, rs) in env.qdrant.placement("double") {
        assert_eq!(rs.len(), 2, "shard {shard} of double keeps 2 replicas");
        assert!(rs.iter().all(|(_, state)| state == "Active"));
    }
    assert!(
        env.events()
            .iter()
            .any(|e| e["reason"] == json!("ScaledDown"))
    );
}

#[tokio::test]
async fn a_new_controller_mid_drain_resumes_without_duplicating_transfers() {
    let env = Env::with_one_fake().await;
    env.running(&[("single", 3, 1)]).await;
    env.scale_to(2);
    env.reconcile().await;
    let issued = env
        .qdrant
        .recorded()
        .iter()
        .filter(|r| r.method == http::Method::POST)
        .count();
    assert!(issued > 0);

    // The old leader is gone; a new one starts from nothing but observation.
    let fresh = env.controller();
    env.qdrant.clear_requests();
    env.reconcile_with(&fresh).await;
    assert_eq!(
        env.qdrant_writes(),
        Vec::<String>::new(),
        "transfers under way are not issued again"
    );
    for _ in 0..20 {
        env.qdrant.complete_transfers();
        env.reconcile_with(&fresh).await;
        if env.sts_replicas() == 2 {
            break;
        }
    }
    assert_eq!(env.sts_replicas(), 2);
    assert!(env.replicas("single").iter().all(|(_, p)| *p != 102));
}

#[tokio::test]
async fn a_refused_scale_down_keeps_the_statefulset_and_says_why() {
    let env = Env::with_one_fake().await;
    env.running(&[("triple", 2, 3)]).await;
    env.scale_to(2);
    env.qdrant.clear_requests();
    env.reconcile().await;
    assert_eq!(env.sts_replicas(), 3);
    assert_eq!(
        env.qdrant_writes(),
        Vec::<String>::new(),
        "nothing is moved when refused"
    );
    let blocked = env.condition(SCALE_DOWN_BLOCKED);
    assert_eq!(blocked.status, ConditionStatus::True);
    assert!(
        blocked.message.contains("triple"),
        "names the collection: {}",
        blocked.message
    );
    assert_eq!(env.condition("Ready").status, ConditionStatus::False);
    let warnings = env.events_with_reason("ScaleDownBlocked");
    assert_eq!(warnings.len(), 1);

    // Reported once; going back to 3 clears it.
    env.reconcile().await;
    let warnings = env.events_with_reason("ScaleDownBlocked").len();
    assert_eq!(warnings, 1, "the same refusal is not announced twice");
    env.scale_to(3);
    env.reconcile().await;
    assert_eq!(
        env.condition(SCALE_DOWN_BLOCKED).status,
        ConditionStatus::False
    );
    assert_eq!(env.sts_replicas(), 3);
}

#[tokio::test]
async fn an_unreachable_qdrant_holds_the_size() {
    let env = Env::with_one_fake().await;
    env.running(&[("single", 3, 1)]).await;
    env.scale_to(2);
    env.qdrant.fail_next("/cluster", 503, 5);
    env.reconcile().await;
    assert_eq!(env.sts_replicas(), 3);
    assert!(
        env.condition("Progressing")
            .message
            .contains("cannot reach Qdrant"),
        "{}",
        env.condition("Progressing").message
    );
}
