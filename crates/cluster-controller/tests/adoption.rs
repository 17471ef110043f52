//! `spec.adoption` against the fake API server (TESTING.md layer 3): what the cluster-controller
//! does with a StatefulSet it does not control. Every refusal writes nothing but the
//! QdrantCluster's status and one Warning event; the takeover replaces the StatefulSet once
//! and keeps what Kubernetes does not let change. The takeover against real peers is
//! `real_adoption.rs`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use api_types::conditions::{ConditionStatus, types::READY};
use cluster_controller::vocabulary::types::ADOPTED;
use serde_json::{Value, json};

mod common;

use common::{Env, NS, helm::helm_release};

/// Seeds the Helm release `demo` (3 pods) and returns its StatefulSet's resourceVersion.
fn seed_release(env: &Env) -> String {
    for obj in helm_release(NS, "demo", 3) {
        env.seed(obj);
    }
    env.sts()["metadata"]["resourceVersion"]
        .as_str()
        .unwrap()
        .to_owned()
}

/// Writes other than the QdrantCluster's status and events.
fn child_writes(env: &Env) -> Vec<String> {
    env.writes_excluding_events()
        .into_iter()
        .filter(|w| !w.contains("qdrantclusters"))
        .collect()
}

fn adopt() -> Value {
    json!({"replicas": 3, "auth": {}, "adoption": {"statefulSetName": "demo"}})
}

#[tokio::test]
async fn an_unowned_statefulset_is_never_taken_without_adoption() {
    let env = Env::without_qdrant();
    let rv = seed_release(&env);
    env.seed_cluster("demo", json!({"replicas": 3, "auth": {}}));
    env.fake.clear_requests();
    env.reconcile().await;

    let ready = env.condition(READY);
    assert_eq!(ready.status, ConditionStatus::False);
    assert_eq!(ready.reason, "StatefulSetNotOwned");
    assert!(
        ready
            .message
            .contains("spec.adoption.statefulSetName: demo"),
        "{}",
        ready.message
    );
    assert!(env.try_condition(ADOPTED).is_none(), "no adoption asked");
    assert_eq!(env.sts()["metadata"]["resourceVersion"], json!(rv));
    assert_eq!(child_writes(&env), Vec::<String>::new());
    assert_eq!(env.event_count("StatefulSetNotOwned"), 1);
    // Reported once.
    env.reconcile().await;
    assert_eq!(env.event_count("StatefulSetNotOwned"), 1);
}

#[tokio::test]
async fn every_shape_difference_is_named_and_nothing_is_written() {
    let env = Env::without_qdrant();
    let rv = seed_release(&env);
    env.edit("apps/v1", "statefulsets", "demo", |s| {
        let c = &mut s["spec"]["template"]["spec"]["containers"][0];
        c["volumeMounts"]
            .as_array_mut()
            .unwrap()
            .push(json!({"name": "qdrant-secret", "mountPath": "/qdrant/config/local.yaml", "subPath": "local.yaml"}));
        c["securityContext"]["runAsUser"] = json!(0);
        s["spec"]["template"]["spec"]["volumes"]
            .as_array_mut()
            .unwrap()
            .push(json!({"name": "qdrant-secret", "secret": {"secretName": "demo-apikey"}}));
    });
    let rv_edited = env.sts()["metadata"]["resourceVersion"].clone();
    assert_ne!(rv_edited, json!(rv));
    env.seed_cluster(
        "demo",
        json!({"replicas": 2, "auth": {}, "adoption": {"statefulSetName": "demo", "volumeClaimTemplate": "data"}}),
    );
    env.fake.clear_requests();
    env.reconcile().await;

    let adopted = env.condition(ADOPTED);
    assert_eq!(adopted.status, ConditionStatus::False);
    assert_eq!(adopted.reason, "ShapeMismatch");
    for part in [
        "runs 3 pods and spec.replicas is 2",
        "set spec.adoption.volumeClaimTemplate to \"qdrant-storage\"",
        "name demo-apikey, key api-key",
        "runs as uid 0",
    ] {
        assert!(
            adopted.message.contains(part),
            "{part:?} in {}",
            adopted.message
        );
    }
    assert_eq!(env.condition(READY).reason, "ShapeMismatch");
    assert_eq!(env.sts()["metadata"]["resourceVersion"], rv_edited);
    assert_eq!(child_writes(&env), Vec::<String>::new());
}

#[tokio::test]
async fn a_generated_key_on_a_release_without_one_is_refused() {
    let env = Env::without_qdrant();
    seed_release(&env);
    // No `auth`: the default generates a key, which the chart's pods do not ask for.
    env.seed_cluster(
        "demo",
        json!({"replicas": 3, "adoption": {"statefulSetName": "demo"}}),
    );
    env.reconcile().await;
    let adopted = env.condition(ADOPTED);
    assert_eq!(adopted.reason, "ShapeMismatch");
    assert!(
        adopted.message.contains("set spec.auth to {}"),
        "{}",
        adopted.message
    );
}

#[tokio::test]
async fn a_missing_statefulset_is_not_created_and_another_controller_keeps_its_own() {
    let env = Env::without_qdrant();
    env.seed_cluster("demo", adopt());
    env.reconcile().await;
    let adopted = env.condition(ADOPTED);
    assert_eq!(
        (adopted.status, adopted.reason.as_str()),
        (ConditionStatus::False, "StatefulSetNotFound")
    );
    assert!(env.sts().is_null(), "nothing created");

    seed_release(&env);
    env.edit("apps/v1", "statefulsets", "demo", |s| {
        s["metadata"]["ownerReferences"] = json!([{"apiVersion": "example.com/v1", "kind": "Other",
            "name": "other", "uid": "u-1", "controller": true}]);
    });
    let rv = env.sts()["metadata"]["resourceVersion"].clone();
    env.reconcile().await;
    let adopted = env.condition(ADOPTED);
    assert_eq!(adopted.reason, "OwnedByAnotherController");
    assert!(
        adopted.message.contains("Other other"),
        "{}",
        adopted.message
    );
    assert_eq!(env.sts()["metadata"]["resourceVersion"], rv);
}

#[tokio::test]
async fn adoption_must_name_the_clusters_own_statefulset() {
    let env = Env::without_qdrant();
    seed_release(&env);
    env.seed_cluster(
        "demo",
        json!({"replicas": 3, "auth": {}, "adoption": {"statefulSetName": "qdrant"}}),
    );
    env.reconcile().await;
    let ready = env.condition(READY);
    assert_eq!(ready.reason, "InvalidSpec");
    assert!(
        ready
            .message
            .contains("spec.adoption.statefulSetName: must equal metadata.name \"demo\""),
        "{}",
        ready.message
    );
}

#[tokio::test]
async fn the_takeover_replaces_the_statefulset_once_and_keeps_what_cannot_change() {
    let env = Env::without_qdrant();
    seed_release(&env);
    let qc = env.seed_cluster("demo", adopt());
    env.fake.clear_requests();
    env.reconcile().await;

    let sts = env.sts();
    assert_eq!(
        sts["metadata"]["ownerReferences"][0]["uid"],
        json!(qc.metadata.uid)
    );
    assert_eq!(sts["spec"]["updateStrategy"]["type"], "OnDelete");
    assert_eq!(sts["spec"]["podManagementPolicy"], "Parallel");
    assert_eq!(
        sts["spec"]["selector"]["matchLabels"],
        common::helm::selector("demo")
    );
    let template = &sts["spec"]["template"];
    assert_eq!(template["metadata"]["labels"]["app"], "qdrant");
    assert!(template["metadata"]["annotations"]["checksum/config"].is_null());
    assert!(template["spec"]["serviceAccountName"].is_null());
    let mounts = &template["spec"]["containers"][0]["volumeMounts"];
    let at = |path: &str| {
        mounts
            .as_array()
            .unwrap()
            .iter()
            .find(|m| m["mountPath"] == path)
            .cloned()
            .unwrap_or(Value::Null)
    };
    assert_eq!(
        at("/qdrant/storage"),
        json!({"name": "qdrant-storage", "mountPath": "/qdrant/storage"}),
        "the claim's root, as the chart mounts it"
    );
    assert_eq!(at("/qdrant/snapshots")["name"], "snapshots");
    // The operator's config file, from its own ConfigMap, not the chart's.
    assert_eq!(at("/qdrant/config/production.yaml")["name"], "config");
    assert!(at("/qdrant/config/initialize.sh").is_null());
    assert_eq!(
        sts["spec"]["volumeClaimTemplates"][0]["metadata"]["name"],
        "qdrant-storage"
    );
    let puts: Vec<String> = child_writes(&env)
        .into_iter()
        .filter(|w| w.starts_with("PUT") && w.contains("statefulsets"))
        .collect();
    assert_eq!(puts.len(), 1, "{puts:?}");
    assert_eq!(env.condition(ADOPTED).status, ConditionStatus::True);
    assert!(env.has_event("Adopted", "demo", "keep running"));

    // Owned from now on: applied, never replaced again.
    env.fake.clear_requests();
    env.reconcile().await;
    assert!(
        !child_writes(&env)
            .iter()
            .any(|w| w.starts_with("PUT") && w.contains("statefulsets")),
        "{:?}",
        child_writes(&env)
    );
    assert_eq!(env.condition(ADOPTED).status, ConditionStatus::True);
    assert_eq!(env.event_count("Adopted"), 1);
}
