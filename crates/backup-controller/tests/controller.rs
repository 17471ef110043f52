//! The three kube-runtime Controllers of this crate running against the fake API server: an
//! undecodable QdrantBackup (an integer past u32, as written before the CRDs bounded them)
//! stalls none of the watches; it gets a Warning event, the other objects are reconciled.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::{sync::Arc, time::Duration};

use backup_controller::{context::Context, controller};
use reconcile_lib::{guard, metrics::Metrics, runtime::Shutdown};
use serde_json::json;
use testkit::{apiserver::FakeApiServer, eventually};

const API: &str = "qdrant.operator.dev/v1alpha1";

#[tokio::test]
async fn an_undecodable_backup_stalls_no_controller() {
    let fake = FakeApiServer::new();
    let storage = json!({"s3": {"bucket": "b", "credentialsSecretRef": {"name": "s3"}}});
    fake.insert(json!({"apiVersion": API, "kind": "QdrantBackup",
        "metadata": {"name": "broken", "namespace": "ns"},
        "spec": {"cluster": {"name": "demo"}, "storage": storage,
                 "upload": {"partSizeMiB": 5_000_000_000_u64}}}));
    let ctx = Context::new(fake.client(), Arc::new(Metrics::new("test")), "img");
    let (trigger, shutdown) = Shutdown::channel();
    let run = tokio::spawn(controller::run(
        fake.client(),
        Some("ns".into()),
        Arc::new(ctx),
        shutdown,
    ));
    fake.insert(json!({"apiVersion": API, "kind": "QdrantBackup",
        "metadata": {"name": "good", "namespace": "ns"},
        "spec": {"cluster": {"name": "demo"}, "storage": storage}}));
    eventually("the good backup's status", || {
        fake.get(API, "qdrantbackups", Some("ns"), "good")
            .is_some_and(|b| b["status"]["phase"].is_string())
    })
    .await;
    eventually("a Warning event on the broken backup", || {
        fake.has_event("ns", guard::INVALID_OBJECT, "broken", "5000000000")
    })
    .await;
    assert!(
        fake.get(API, "qdrantbackups", Some("ns"), "broken")
            .unwrap()["status"]
            .is_null(),
        "the broken backup is left alone"
    );
    trigger.trigger();
    tokio::time::timeout(Duration::from_secs(10), run)
        .await
        .expect("stops on shutdown")
        .unwrap();
}
