//! The real kube-runtime Controller running against the fake API server and the fake Qdrant:
//! a QdrantCluster becoming Ready wakes the collections that point at it (the watches()
//! mapping), with no resync involved, and undecodable objects of either kind stall neither.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::{sync::Arc, time::Duration};

use collection_controller::{controller, reconcile::Context};
use reconcile_lib::{guard, metrics::Metrics, runtime::Shutdown};
use serde_json::json;
use testkit::{
    apiserver::FakeApiServer,
    eventually,
    qdrant::{FakeQdrant, FakeQdrantOptions},
};

#[tokio::test]
async fn a_cluster_becoming_ready_wakes_its_collections() {
    let fake = FakeApiServer::new();
    // Stored objects the controller cannot decode (integers past u32 / i32, as written before
    // the CRDs bounded them): both watches go on for every other object.
    fake.insert(
        json!({"apiVersion": "qdrant.operator.dev/v1alpha1", "kind": "QdrantCollection",
        "metadata": {"name": "broken", "namespace": "ns"},
        "spec": {"cluster": {"name": "demo"}, "vectors": {"size": 4, "distance": "Dot"},
                 "shardNumber": 5_000_000_000_u64}}),
    );
    fake.insert(
        json!({"apiVersion": "qdrant.operator.dev/v1alpha1", "kind": "QdrantCluster",
        "metadata": {"name": "broken-cluster", "namespace": "ns"}, "spec": {"replicas": 5_000_000_000_u64}}),
    );
    let qdrant = FakeQdrant::start(FakeQdrantOptions::default()).await;
    let mut ctx = Context::new(fake.client(), Arc::new(Metrics::new("test")));
    ctx.resync = Duration::from_secs(3600);
    ctx.wait_requeue = Duration::from_secs(3600);
    let url = qdrant.url();
    ctx.rewrite = Some(Arc::new(move |_| url.clone()));
    let (trigger, shutdown) = Shutdown::channel();
    let run = tokio::spawn(controller::run(
        fake.client(),
        None,
        Arc::new(ctx),
        shutdown,
    ));

    fake.insert(
        json!({"apiVersion": "qdrant.operator.dev/v1alpha1", "kind": "QdrantCluster",
        "metadata": {"name": "demo", "namespace": "ns"}, "spec": {"replicas": 1}}),
    );
    fake.insert(
        json!({"apiVersion": "qdrant.operator.dev/v1alpha1", "kind": "QdrantCollection",
        "metadata": {"name": "articles", "namespace": "ns"},
        "spec": {"cluster": {"name": "demo"}, "vectors": {"size": 4, "distance": "Dot"}}}),
    );
    eventually("the collection to wait", || {
        fake.get(
            "qdrant.operator.dev/v1alpha1",
            "qdrantcollections",
            Some("ns"),
            "articles",
        )
        .is_some_and(|q| q["status"]["phase"] == json!("Waiting"))
    })
    .await;
    assert!(qdrant.collection("articles").is_none());

    // The cluster-controller (not running here) would write this status.
    fake.edit("qdrant.operator.dev/v1alpha1", "qdrantclusters", Some("ns"), "demo", |q| {
        let generation = q["metadata"]["generation"].clone();
        q["status"] = json!({
            "conditions": [{"type": "Ready", "status": "True", "reason": "AllPeersReady", "message": "",
                            "observedGeneration": generation, "lastTransitionTime": "2026-01-01T00:00:00Z"}],
            "endpoints": {"http": "http://demo.ns.svc:6333", "grpc": "http://demo.ns.svc:6334"},
        });
    });
    eventually("the collection in Qdrant", || {
        qdrant.collection("articles").is_some()
    })
    .await;
    eventually("phase Ready", || {
        fake.get(
            "qdrant.operator.dev/v1alpha1",
            "qdrantcollections",
            Some("ns"),
            "articles",
        )
        .is_some_and(|q| q["status"]["phase"] == json!("Ready"))
    })
    .await;

    eventually("a Warning event on the broken collection", || {
        fake.has_event("ns", guard::INVALID_OBJECT, "broken", "5000000000")
    })
    .await;
    assert!(qdrant.collection("broken").is_none());

    trigger.trigger();
    tokio::time::timeout(Duration::from_secs(10), run)
        .await
        .expect("stops on shutdown")
        .unwrap();
}
