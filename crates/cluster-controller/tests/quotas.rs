//! Qdrant 1.19 quotas from `spec.config.storage.quotas` (the quotas operation), against the
//! fake API server and the fake Qdrant answering as 1.19 or as 1.18.3: applied with one
//! `PUT /quotas` when `GET /quotas` differs, never while the pods roll or a pod runs a Qdrant
//! before 1.19, disabled once when removed from the spec, and free for a cluster without them.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use api_types::conditions::ConditionStatus;
use common::{Env, NS, QC, peer_uri};
use reconcile_lib::qdrant::RaftRole;
use serde_json::{Value, json};
use testkit::qdrant::{ClusterState, FakeQdrant, FakeQdrantOptions};

/// Three peers (pods 0-2) answering through one fake of Qdrant `version`.
async fn env(version: &str) -> Env<FakeQdrant> {
    let qdrant = FakeQdrant::start(FakeQdrantOptions {
        cluster: Some(ClusterState {
            peer_id: 100,
            peers: (0..3).map(|i| (100 + i, peer_uri(i))).collect(),
            leader: Some(100),
            role: Some(RaftRole::Leader),
            term: 1,
            commit: 1,
            pending_operations: 0,
        }),
        version: version.into(),
        ..FakeQdrantOptions::default()
    })
    .await;
    let url = qdrant.url();
    Env::new(qdrant, move |ctx| {
        let url = url.clone();
        ctx.peer_urls = std::sync::Arc::new(move |_, _| Some(url.clone()));
    })
}

fn with_quotas(quotas: Value) -> Value {
    json!({"replicas": 3, "config": {"storage": {"quotas": quotas}}})
}

/// The `/quotas` requests the fake served, as `METHOD /quotas`.
fn quota_requests(env: &Env<FakeQdrant>) -> Vec<String> {
    env.qdrant
        .requests()
        .into_iter()
        .filter(|(_, p)| p == "/quotas")
        .map(|(m, p)| format!("{m} {p}"))
        .collect()
}

fn quotas_condition(env: &Env<FakeQdrant>) -> (ConditionStatus, String, String) {
    let c = env.condition("QuotasApplied");
    (c.status, c.reason, c.message)
}

/// Created, ready, reconciled until settled (the ConfigMap learns the ready peers on the
/// second pass after the pods are ready).
async fn running(env: &Env<FakeQdrant>, spec: Value) {
    env.seed_cluster("demo", spec);
    env.reconcile().await;
    env.mark_ready();
    env.reconcile().await;
    env.reconcile().await;
}

#[tokio::test]
async fn quotas_are_applied_once_changed_and_removed_through_the_api() {
    let env = env("1.19.0").await;
    running(
        &env,
        with_quotas(json!({"enabled": true, "max_disk_usage_percent": 85})),
    )
    .await;
    // The config file carries them too (Qdrant reads it on a peer's first start).
    let cm = env.get("v1", "configmaps", "demo-config").unwrap();
    let file = cm["data"]["production.yaml"].as_str().unwrap();
    assert!(file.contains("max_disk_usage_percent: 85"), "{file}");
    assert_eq!(
        env.qdrant.quotas(),
        Some(json!({"enabled": true, "max_disk_usage_percent": 85}))
    );
    let (status, reason, message) = quotas_condition(&env);
    assert_eq!(
        (status, reason.as_str()),
        (ConditionStatus::True, "QuotasApplied")
    );
    assert!(message.contains("enabled, disk 85%"), "{message}");
    assert_eq!(
        quota_requests(&env)
            .iter()
            .filter(|r| r.starts_with("PUT"))
            .count(),
        1
    );
    assert_eq!(env.events_with_reason("QuotasApplied").len(), 1);

    // A resync reads, writes nothing.
    env.qdrant.clear_requests();
    let writes = env.writes_excluding_events().len();
    env.reconcile().await;
    assert_eq!(quota_requests(&env), ["GET /quotas"]);
    let all = env.writes_excluding_events();
    assert_eq!(
        all.len(),
        writes,
        "status unchanged: {:?}",
        &all[writes.min(all.len())..]
    );

    // A change of the spec: one PUT with the whole new config, once the StatefulSet observed
    // its new template (the config file changes too, which rolls the pods).
    env.edit(QC, "qdrantclusters", "demo", |q| {
        q["spec"]["config"]["storage"]["quotas"] =
            json!({"enabled": true, "max_disk_usage_percent": 90, "max_resident_memory_percent": 80});
    });
    env.qdrant.clear_requests();
    env.reconcile().await;
    env.mark_ready();
    env.reconcile().await;
    assert_eq!(
        env.qdrant.quotas(),
        Some(
            json!({"enabled": true, "max_disk_usage_percent": 90, "max_resident_memory_percent": 80})
        )
    );

    // Removed from the spec: disabled once, then no more requests.
    env.edit(QC, "qdrantclusters", "demo", |q| {
        q["spec"]["config"] = json!({});
    });
    env.reconcile().await;
    env.mark_ready();
    env.reconcile().await;
    assert_eq!(env.qdrant.quotas(), Some(json!({"enabled": false})));
    let (status, reason, _) = quotas_condition(&env);
    assert_eq!(
        (status, reason.as_str()),
        (ConditionStatus::False, "QuotasRemoved")
    );
    env.qdrant.clear_requests();
    env.reconcile().await;
    assert_eq!(quota_requests(&env), Vec::<String>::new());
}

#[tokio::test]
async fn quotas_wait_while_the_pods_roll() {
    let env = env("1.19.0").await;
    env.seed_cluster("demo", with_quotas(json!({"enabled": true})));
    env.reconcile().await;
    env.mark_ready();
    // A pod is not at the update revision yet.
    env.edit("apps/v1", "statefulsets", "demo", |s| {
        s["status"]["updateRevision"] = json!("r2");
        s["status"]["updatedReplicas"] = json!(1);
    });
    env.reconcile().await;
    let (status, reason, _) = quotas_condition(&env);
    assert_eq!(
        (status, reason.as_str()),
        (ConditionStatus::False, "WaitingForRollout")
    );
    assert_eq!(quota_requests(&env), Vec::<String>::new());
    assert_eq!(env.qdrant.quotas(), None);
    // Every pod at the update revision: applied, although `currentRevision` stays behind
    // (with `OnDelete`, Kubernetes before 1.36 never moves it).
    env.edit("apps/v1", "statefulsets", "demo", |s| {
        s["status"]["updatedReplicas"] = json!(3);
    });
    env.reconcile().await;
    let (status, reason, _) = quotas_condition(&env);
    assert_eq!(
        (status, reason.as_str()),
        (ConditionStatus::True, "QuotasApplied")
    );
    assert_eq!(env.qdrant.quotas(), Some(json!({"enabled": true})));
}

#[tokio::test]
async fn a_qdrant_before_1_19_gets_no_quota_request_and_a_condition_says_why() {
    let env = env("1.18.3").await;
    running(
        &env,
        with_quotas(json!({"enabled": true, "max_resident_memory_percent": 90})),
    )
    .await;
    let (status, reason, message) = quotas_condition(&env);
    assert_eq!(
        (status, reason.as_str()),
        (ConditionStatus::False, "QuotasNeedNewerQdrant")
    );
    assert!(message.contains("pod demo-0 runs 1.18.3"), "{message}");
    assert_eq!(quota_requests(&env), Vec::<String>::new());
    // The cluster itself is unaffected.
    let ready = env.condition("Ready");
    assert_eq!(ready.status, ConditionStatus::True, "{ready:?}");
    // Removed from the spec: nothing to disable on 1.18, and then no more version requests.
    env.edit(QC, "qdrantclusters", "demo", |q| {
        q["spec"]["config"] = json!({});
    });
    env.reconcile().await;
    env.mark_ready();
    env.reconcile().await;
    let (status, reason, _) = quotas_condition(&env);
    assert_eq!(
        (status, reason.as_str()),
        (ConditionStatus::False, "QuotasRemoved")
    );
    env.qdrant.clear_requests();
    env.reconcile().await;
    assert!(
        !env.qdrant.requests().iter().any(|(_, p)| p == "/"),
        "no version asked"
    );
    assert_eq!(quota_requests(&env), Vec::<String>::new());
}

#[tokio::test]
async fn a_cluster_without_quotas_costs_no_request() {
    let env = env("1.19.0").await;
    running(&env, json!({"replicas": 3})).await;
    assert_eq!(quota_requests(&env), Vec::<String>::new());
    assert!(env.try_condition("QuotasApplied").is_none());
    let versions = env
        .qdrant
        .requests()
        .into_iter()
        .filter(|(_, p)| p == "/")
        .count();
    assert_eq!(versions, 0, "no version asked");
    let _ = NS;
}

#[tokio::test]
async fn a_bad_quota_is_refused_naming_the_field() {
    let env = env("1.19.0").await;
    env.seed_cluster(
        "demo",
        with_quotas(json!({"enabled": "yes", "max_disk_usage_percent": 0, "max_cpu": 5})),
    );
    env.reconcile().await;
    let ready = env.condition("Ready");
    assert_eq!(ready.reason, "InvalidSpec");
    for part in [
        "spec.config.storage.quotas.enabled: must be a boolean",
        "spec.config.storage.quotas.max_disk_usage_percent: must be an integer from 1 to 100, got 0",
        "spec.config.storage.quotas.max_cpu: is not a Qdrant quota setting",
    ] {
        assert!(ready.message.contains(part), "{part}: {}", ready.message);
    }
    assert_eq!(quota_requests(&env), Vec::<String>::new());
}
