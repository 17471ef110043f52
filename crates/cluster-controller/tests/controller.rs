//! The real kube-runtime Controller (watches, owned children, graceful shutdown) running
//! against the in-process fake API server: the wiring of `controller::run`, not just the
//! reconcile function.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::{sync::Arc, time::Duration};

use cluster_controller::{controller, reconcile::Context};
use reconcile_lib::{
    guard,
    metrics::Metrics,
    runtime::Shutdown,
    testing::{apiserver::FakeApiServer, eventually},
};
use serde_json::json;

#[tokio::test]
async fn the_controller_reconciles_on_watch_events_and_stops_on_shutdown() {
    let fake = FakeApiServer::new();
    let mut ctx = Context::new(fake.client(), Arc::new(Metrics::new("test")));
    // A resync far away: anything that happens below is driven by watch events.
    ctx.resync = Duration::from_secs(3600);
    let (trigger, shutdown) = Shutdown::channel();
    let run = tokio::spawn(controller::run(
        fake.client(),
        Some("ns".into()),
        Arc::new(ctx),
        shutdown,
    ));

    fake.insert(
        json!({"apiVersion": "qdrant.operator.dev/v1alpha1", "kind": "QdrantCluster",
        "metadata": {"name": "demo", "namespace": "ns"}, "spec": {"replicas": 3}}),
    );
    eventually("the StatefulSet", || {
        fake.get("apps/v1", "statefulsets", Some("ns"), "demo")
            .is_some()
    })
    .await;
    eventually("the status", || {
        fake.get(
            "qdrant.operator.dev/v1alpha1",
            "qdrantclusters",
            Some("ns"),
            "demo",
        )
        .is_some_and(|q| q["status"]["phase"] == json!("Creating"))
    })
    .await;

    // An owned child deleted behind the controller's back comes back through the owns() watch.
    fake.remove("v1", "services", Some("ns"), "demo-headless");
    eventually("the headless Service restored", || {
        fake.get("v1", "services", Some("ns"), "demo-headless")
            .is_some()
    })
    .await;

    // A spec change is picked up from the watch.
    fake.edit(
        "qdrant.operator.dev/v1alpha1",
        "qdrantclusters",
        Some("ns"),
        "demo",
        |q| q["spec"]["replicas"] = json!(5),
    );
    eventually("the StatefulSet scaled", || {
        fake.get("apps/v1", "statefulsets", Some("ns"), "demo")
            .is_some_and(|s| s["spec"]["replicas"] == json!(5))
    })
    .await;

    // Objects in other namespaces are not this controller's business.
    fake.insert(
        json!({"apiVersion": "qdrant.operator.dev/v1alpha1", "kind": "QdrantCluster",
        "metadata": {"name": "elsewhere", "namespace": "other"}, "spec": {"replicas": 1}}),
    );

    trigger.trigger();
    tokio::time::timeout(Duration::from_secs(10), run)
        .await
        .expect("stops on shutdown")
        .unwrap();
    assert!(
        fake.get("apps/v1", "statefulsets", Some("other"), "elsewhere")
            .is_none()
    );
}

/// A stored QdrantCluster the controller cannot decode (`replicas` past i32, as written before
/// the CRD bounded it) does not stop the watch: the other clusters are reconciled, the bad one
/// gets a Warning event naming the problem, and once fixed it is reconciled too.
#[tokio::test]
async fn an_undecodable_cluster_does_not_stall_the_others() {
    let fake = FakeApiServer::new();
    fake.insert(
        json!({"apiVersion": "qdrant.operator.dev/v1alpha1", "kind": "QdrantCluster",
        "metadata": {"name": "broken", "namespace": "ns"}, "spec": {"replicas": 5_000_000_000_u64}}),
    );
    let mut ctx = Context::new(fake.client(), Arc::new(Metrics::new("test")));
    ctx.resync = Duration::from_secs(3600);
    let (trigger, shutdown) = Shutdown::channel();
    let run = tokio::spawn(controller::run(
        fake.client(),
        Some("ns".into()),
        Arc::new(ctx),
        shutdown,
    ));
    fake.insert(
        json!({"apiVersion": "qdrant.operator.dev/v1alpha1", "kind": "QdrantCluster",
        "metadata": {"name": "good", "namespace": "ns"}, "spec": {"replicas": 3}}),
    );
    eventually("the good cluster's StatefulSet", || {
        fake.get("apps/v1", "statefulsets", Some("ns"), "good")
            .is_some()
    })
    .await;
    eventually("a Warning event on the broken cluster", || {
        fake.has_event("ns", guard::INVALID_OBJECT, "broken", "5000000000")
    })
    .await;
    assert!(
        fake.get("apps/v1", "statefulsets", Some("ns"), "broken")
            .is_none()
    );
    // Fixed: reconciled like any other.
    fake.edit(
        "qdrant.operator.dev/v1alpha1",
        "qdrantclusters",
        Some("ns"),
        "broken",
        |q| q["spec"]["replicas"] = json!(1),
    );
    eventually("the fixed cluster's StatefulSet", || {
        fake.get("apps/v1", "statefulsets", Some("ns"), "broken")
            .is_some()
    })
    .await;
    trigger.trigger();
    tokio::time::timeout(Duration::from_secs(10), run)
        .await
        .expect("stops on shutdown")
        .unwrap();
}
