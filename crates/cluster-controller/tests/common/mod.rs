//! What the day-2 scenario tests share: a fake Qdrant answering as a three-peer cluster, a
//! controller context pointed at it, and reads of the stored QdrantCluster.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;

use api_types::{Condition, QdrantCluster, conditions::find_condition};
use cluster_controller::{context::Context, peers::PeerUrlResolver, reconcile::reconcile};
use reconcile_lib::{metrics::Metrics, qdrant::RaftRole};
use testkit::{
    apiserver::FakeApiServer,
    qdrant::{ClusterState, FakeQdrant, FakeQdrantOptions},
};

/// Namespace of every test cluster.
pub const NS: &str = "qdrant";
/// apiVersion of the operator's kinds.
pub const QC: &str = "qdrant.operator.dev/v1alpha1";

/// The p2p URI of pod `i` of cluster `demo`.
pub fn peer_uri(i: u64) -> String {
    format!("http://demo-{i}.demo-headless.{NS}.svc:6335/")
}

/// A fake Qdrant in cluster mode with peers 100, 101, 102 (pods 0, 1, 2), answering as 100,
/// the leader.
pub async fn three_peer_qdrant() -> FakeQdrant {
    let peers: Vec<(u64, String)> = (0..3).map(|i| (100 + i, peer_uri(i))).collect();
    FakeQdrant::start(FakeQdrantOptions {
        cluster: Some(ClusterState {
            peer_id: 100,
            peers,
            leader: Some(100),
            role: Some(RaftRole::Leader),
            term: 1,
            commit: 1,
            pending_operations: 0,
        }),
        ..FakeQdrantOptions::default()
    })
    .await
}

/// A fresh controller (as after a restart or a new leader) reaching pods through `urls`: no
/// memory but what it observes.
pub fn context(fake: &FakeApiServer, urls: PeerUrlResolver) -> Arc<Context> {
    let mut ctx = Context::new(fake.client(), Arc::new(Metrics::new("test")));
    ctx.peer_urls = urls;
    Arc::new(ctx)
}

/// The stored QdrantCluster `demo`.
pub fn current(fake: &FakeApiServer) -> QdrantCluster {
    serde_json::from_value(fake.get(QC, "qdrantclusters", Some(NS), "demo").unwrap()).unwrap()
}

/// One reconcile of `demo` by `ctx`, which must succeed.
pub async fn reconcile_demo(fake: &FakeApiServer, ctx: &Arc<Context>) {
    reconcile(Arc::new(current(fake)), ctx.clone())
        .await
        .unwrap();
}

/// Condition `type_` of `demo`'s status (it must exist).
pub fn condition(fake: &FakeApiServer, type_: &str) -> Condition {
    find_condition(&current(fake).status.unwrap().conditions, type_)
        .cloned()
        .unwrap()
}

/// The requests to `qdrant` that change something, as `METHOD /path`.
pub fn qdrant_writes(qdrant: &FakeQdrant) -> Vec<String> {
    qdrant
        .requests()
        .into_iter()
        .filter(|(m, _)| m != http::Method::GET)
        .map(|(m, p)| format!("{m} {p}"))
        .collect()
}
