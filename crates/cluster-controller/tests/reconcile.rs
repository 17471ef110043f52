//! Reconcile scenarios against the in-process fake API server (TESTING.md layer 3): the real
//! kube client and the controller's real reconcile function, with a stateful fake behind them.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::{sync::Arc, time::Duration};

use api_types::{
    QdrantCluster,
    cluster::ClusterPhase,
    conditions::{ConditionStatus, find_condition, types},
};
use cluster_controller::{
    build::{
        CONFIG_HASH_ANNOTATION, Names,
        served_keys::{KEYS_HASH_ANNOTATION, ServedKeys},
    },
    context::Context,
    reconcile::{error_policy, reconcile},
};
use kube::runtime::controller::Action;
use reconcile_lib::{metrics::Metrics, qdrant::RaftRole};
use serde_json::{Value, json};
use testkit::{
    apiserver::Failure,
    qdrant::{ClusterState, FakeQdrant, FakeQdrantOptions},
};

mod common;

use common::{Env, NS, QC};

fn status(qc: &QdrantCluster) -> api_types::QdrantClusterStatus {
    qc.status.clone().expect("status written")
}

fn condition(qc: &QdrantCluster, t: &str) -> api_types::Condition {
    find_condition(&status(qc).conditions, t)
        .cloned()
        .unwrap_or_else(|| panic!("condition {t} missing"))
}

fn three_node() -> Value {
    json!({"replicas": 3, "persistence": {"size": "5Gi"}, "auth": {"apiKey": {"generate": true}, "readOnlyApiKey": {"generate": true}}})
}

#[tokio::test]
async fn create_builds_every_child_with_owner_references() {
    let env = Env::without_qdrant();
    let qc = env.seed_cluster("demo", three_node());
    env.try_reconcile("demo").await.unwrap();

    let uid = qc.metadata.uid.clone().unwrap();
    let children = [
        ("v1", "configmaps", "demo-config"),
        ("v1", "services", "demo-headless"),
        ("v1", "services", "demo"),
        ("apps/v1", "statefulsets", "demo"),
        ("policy/v1", "poddisruptionbudgets", "demo"),
        ("v1", "secrets", "demo-api-key"),
        ("v1", "secrets", "demo-read-only-api-key"),
        ("v1", "secrets", "demo-served-keys"),
    ];
    for (api, plural, name) in children {
        let obj = env
            .get(api, plural, name)
            .unwrap_or_else(|| panic!("{plural}/{name} missing"));
        let owners = obj["metadata"]["ownerReferences"].as_array().unwrap();
        assert_eq!(owners.len(), 1, "{plural}/{name}");
        assert_eq!(owners[0]["uid"], json!(uid), "{plural}/{name}");
        assert_eq!(owners[0]["kind"], json!("QdrantCluster"));
        assert_eq!(owners[0]["controller"], json!(true));
    }
    // Generated keys: 64 hex characters, different from each other.
    let key = |name: &str| {
        let s = serde_json::from_value(env.get("v1", "secrets", name).unwrap()).unwrap();
        reconcile_lib::secrets::secret_value(&s, "api-key").unwrap()
    };
    assert_eq!(key("demo-api-key").len(), 64);
    assert_ne!(key("demo-api-key"), key("demo-read-only-api-key"));

    let sts = env.get("apps/v1", "statefulsets", "demo").unwrap();
    assert_eq!(sts["spec"]["replicas"], json!(3));
    assert_eq!(sts["spec"]["serviceName"], json!("demo-headless"));

    let qc = env.cluster("demo");
    let st = status(&qc);
    assert_eq!(st.phase, ClusterPhase::Creating);
    assert_eq!(st.observed_generation, qc.metadata.generation);
    assert_eq!(
        st.selector.as_deref(),
        Some("app.kubernetes.io/instance=demo,app.kubernetes.io/name=qdrant")
    );
    assert_eq!(
        st.endpoints.as_ref().unwrap().http,
        "http://demo.qdrant.svc:6333"
    );
    // Clients read the key the pods accept now: the served copy, not the generated Secret.
    let auth = st.auth.as_ref().unwrap();
    let key_ref = auth.api_key_secret_ref.as_ref().unwrap();
    assert_eq!(
        (key_ref.name.as_str(), key_ref.key.as_str()),
        ("demo-served-keys", "operator-api-key")
    );
    let ro_ref = auth.read_only_api_key_secret_ref.as_ref().unwrap();
    assert_eq!(
        (ro_ref.name.as_str(), ro_ref.key.as_str()),
        ("demo-served-keys", "read-only-api-key")
    );
    for t in [
        types::READY,
        types::PROGRESSING,
        types::DEGRADED,
        types::PAUSED,
    ] {
        condition(&qc, t);
    }
    assert_eq!(condition(&qc, types::READY).status, ConditionStatus::False);
    assert_eq!(
        condition(&qc, types::PROGRESSING).status,
        ConditionStatus::True
    );
}

#[tokio::test]
async fn second_reconcile_issues_no_writes() {
    let env = Env::without_qdrant();
    env.seed_cluster("demo", three_node());
    env.try_reconcile("demo").await.unwrap();
    env.mark_statefulset_ready("demo", 0);
    env.try_reconcile("demo").await.unwrap();
    env.fake.clear_requests();
    env.try_reconcile("demo").await.unwrap();
    assert_eq!(
        env.fake.writes(),
        vec![],
        "a no-op reconcile must not write (events included)"
    );
    assert!(!env.fake.requests().is_empty(), "it did read");
}

#[tokio::test]
async fn deleted_and_edited_children_are_restored() {
    let env = Env::without_qdrant();
    env.seed_cluster("demo", three_node());
    env.try_reconcile("demo").await.unwrap();

    assert!(env.remove("v1", "services", "demo-headless"));
    env.edit("v1", "services", "demo", |s| {
        s["spec"]["type"] = json!("NodePort")
    });
    env.edit("apps/v1", "statefulsets", "demo", |s| {
        s["spec"]["replicas"] = json!(1)
    });
    env.edit("v1", "configmaps", "demo-config", |c| {
        c["data"]["production.yaml"] = json!("cluster: {enabled: false}\n")
    });
    env.try_reconcile("demo").await.unwrap();

    let headless = env
        .get("v1", "services", "demo-headless")
        .expect("headless Service restored");
    assert_eq!(headless["spec"]["clusterIP"], json!("None"));
    assert_eq!(
        env.get("v1", "services", "demo").unwrap()["spec"]["type"],
        json!("ClusterIP")
    );
    assert_eq!(
        env.get("apps/v1", "statefulsets", "demo").unwrap()["spec"]["replicas"],
        json!(3)
    );
    let config = env.get("v1", "configmaps", "demo-config").unwrap();
    assert!(
        config["data"]["production.yaml"]
            .as_str()
            .unwrap()
            .contains("enabled: true")
    );
}

#[tokio::test]
async fn deleted_generated_secret_is_recreated_but_an_existing_one_is_never_overwritten() {
    let env = Env::without_qdrant();
    env.seed_cluster("demo", three_node());
    env.try_reconcile("demo").await.unwrap();
    let before = env.get("v1", "secrets", "demo-api-key").unwrap();
    env.try_reconcile("demo").await.unwrap();
    assert_eq!(
        env.get("v1", "secrets", "demo-api-key").unwrap()["metadata"]["resourceVersion"],
        before["metadata"]["resourceVersion"]
    );
    env.remove("v1", "secrets", "demo-api-key");
    env.try_reconcile("demo").await.unwrap();
    assert!(env.get("v1", "secrets", "demo-api-key").is_some());
}

#[tokio::test]
async fn config_change_rolls_the_statefulset() {
    let env = Env::without_qdrant();
    env.seed_cluster("demo", three_node());
    env.try_reconcile("demo").await.unwrap();
    let hash = |env: &Env| {
        env.get("apps/v1", "statefulsets", "demo").unwrap()["spec"]["template"]["metadata"]["annotations"][CONFIG_HASH_ANNOTATION].clone()
    };
    let before = hash(&env);
    env.edit(QC, "qdrantclusters", "demo", |q| {
        q["spec"]["config"] = json!({"log_level": "DEBUG"})
    });
    env.try_reconcile("demo").await.unwrap();
    assert_ne!(
        hash(&env),
        before,
        "config hash on the pod template must change"
    );
    let config = env.get("v1", "configmaps", "demo-config").unwrap();
    assert!(
        config["data"]["production.yaml"]
            .as_str()
            .unwrap()
            .contains("log_level: DEBUG")
    );

    // An image change is a template change too.
    env.edit(QC, "qdrantclusters", "demo", |q| {
        q["spec"]["image"] = json!({"tag": "v1.18.1"})
    });
    env.try_reconcile("demo").await.unwrap();
    let sts = env.get("apps/v1", "statefulsets", "demo").unwrap();
    assert_eq!(
        sts["spec"]["template"]["spec"]["containers"][0]["image"],
        json!("qdrant/qdrant:v1.18.1")
    );
}

#[tokio::test]
async fn pause_stops_changes() {
    let env = Env::without_qdrant();
    env.seed_cluster("demo", three_node());
    env.try_reconcile("demo").await.unwrap();
    env.edit(QC, "qdrantclusters", "demo", |q| {
        q["metadata"]["annotations"] = json!({"qdrant.operator.dev/paused": "true"});
        q["spec"]["replicas"] = json!(5);
    });
    env.fake.clear_requests();
    env.try_reconcile("demo").await.unwrap();
    let writes = env.writes_excluding_events();
    assert!(
        writes
            .iter()
            .all(|w| w.ends_with("/qdrantclusters/demo/status")),
        "only status may be written: {writes:?}"
    );
    assert_eq!(
        env.get("apps/v1", "statefulsets", "demo").unwrap()["spec"]["replicas"],
        json!(3)
    );
    let qc = env.cluster("demo");
    assert_eq!(status(&qc).phase, ClusterPhase::Paused);
    assert_eq!(condition(&qc, types::PAUSED).status, ConditionStatus::True);

    // Unpause: the change goes through.
    env.edit(QC, "qdrantclusters", "demo", |q| {
        q["metadata"]["annotations"] = json!({})
    });
    env.try_reconcile("demo").await.unwrap();
    assert_eq!(
        env.get("apps/v1", "statefulsets", "demo").unwrap()["spec"]["replicas"],
        json!(5)
    );
    assert_eq!(
        condition(&env.cluster("demo"), types::PAUSED).status,
        ConditionStatus::False
    );
}

#[tokio::test]
async fn conflicts_and_server_errors_are_retried_with_backoff() {
    for code in [409, 500, 503] {
        let env = Env::without_qdrant();
        env.seed_cluster("demo", three_node());
        env.fake.fail_next(Failure {
            method: Some(http::Method::PATCH),
            path_contains: Some("statefulsets".into()),
            status: code,
            times: 2,
        });
        let qc = Arc::new(env.cluster("demo"));
        let err = env
            .try_reconcile("demo")
            .await
            .expect_err("injected failure surfaces");
        assert!(err.is_transient(), "{code} must be transient: {err}");
        let first = error_policy(qc.clone(), &err, env.ctx.clone());
        let err = env
            .try_reconcile("demo")
            .await
            .expect_err("second injected failure");
        let second = error_policy(qc.clone(), &err, env.ctx.clone());
        assert_ne!(first, second, "backoff delay changes between attempts");
        // Default backoff: 1 s, doubling, with up to one base delay of jitter.
        let in_range = |a: &Action, lo: u64, hi: u64| {
            (lo..=hi).any(|ms| *a == Action::requeue(Duration::from_millis(ms)))
        };
        assert!(
            !in_range(&first, 0, 999),
            "first delay is at least the 1 s minimum: {first:?}"
        );
        env.try_reconcile("demo")
            .await
            .expect("succeeds once the API server recovers");
        assert!(
            env.get("apps/v1", "statefulsets", "demo").is_some(),
            "{code}"
        );
    }
}

#[tokio::test]
async fn bad_spec_sets_a_condition_and_applies_nothing() {
    let env = Env::without_qdrant();
    env.seed_cluster(
        "bad",
        json!({"replicas": 3, "config": {"service": {"api_key": "hunter2"}}}),
    );
    env.try_reconcile("bad")
        .await
        .expect("a bad spec is not an error to retry");
    let qc = env.cluster("bad");
    assert_eq!(status(&qc).phase, ClusterPhase::Failed);
    let ready = condition(&qc, types::READY);
    assert_eq!(ready.status, ConditionStatus::False);
    assert_eq!(ready.reason, "InvalidSpec");
    assert!(
        ready.message.contains("spec.config.service.api_key"),
        "{}",
        ready.message
    );
    assert!(env.get("apps/v1", "statefulsets", "bad").is_none());
    assert!(env.get("v1", "configmaps", "bad-config").is_none());
    assert!(
        env.events()
            .iter()
            .any(|e| e["reason"] == json!("InvalidSpec"))
    );
    // Reported once: the next reconcile writes nothing.
    env.fake.clear_requests();
    env.try_reconcile("bad").await.unwrap();
    assert_eq!(env.fake.writes(), vec![]);
}

#[tokio::test]
async fn missing_user_secret_blocks_with_a_condition() {
    let env = Env::without_qdrant();
    env.seed_cluster("byo", json!({"replicas": 1, "auth": {"apiKey": {"secretKeyRef": {"name": "my-key", "key": "token"}}}}));
    env.try_reconcile("byo").await.unwrap();
    assert!(
        env.get("v1", "secrets", "my-key").is_none(),
        "a referenced Secret is never created"
    );
    assert!(env.get("v1", "secrets", "byo-api-key").is_none());
    let ready = condition(&env.cluster("byo"), types::READY);
    assert_eq!(ready.reason, "SecretNotFound");
    assert!(ready.message.contains("my-key"));
    let sts = env.get("apps/v1", "statefulsets", "byo").unwrap();
    let env_vars = sts["spec"]["template"]["spec"]["containers"][0]["env"]
        .as_array()
        .unwrap();
    let key_var = env_vars
        .iter()
        .find(|e| e["name"] == json!("QDRANT__SERVICE__API_KEY"))
        .unwrap();
    assert_eq!(
        key_var["valueFrom"]["secretKeyRef"],
        json!({"name": "byo-served-keys", "key": "api-key", "optional": false}),
        "the pods read the operator's copy"
    );
    assert!(
        env.get("v1", "secrets", "byo-served-keys").is_none(),
        "nothing to serve yet"
    );
    // Once the user creates it, the block clears and the key is served.
    env.fake.insert(json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "my-key", "namespace": NS}, "data": {"token": "czNjcjN0"}}));
    env.try_reconcile("byo").await.unwrap();
    assert_ne!(
        condition(&env.cluster("byo"), types::READY).reason,
        "SecretNotFound"
    );
    assert_eq!(served(&env, "byo").api_key, "s3cr3t");
}

fn served(env: &Env, cluster: &str) -> ServedKeys {
    let s = env
        .get("v1", "secrets", &format!("{cluster}-served-keys"))
        .expect("served keys");
    ServedKeys::from_secret(&serde_json::from_value(s).unwrap()).unwrap()
}

fn template_keys_hash(env: &Env, cluster: &str) -> String {
    env.get("apps/v1", "statefulsets", cluster).unwrap()["spec"]["template"]["metadata"]
        ["annotations"][KEYS_HASH_ANNOTATION]
        .as_str()
        .unwrap()
        .to_owned()
}

/// Pods `0..n` of `cluster` as the StatefulSet controller would have created them from the
/// current template (its keys-hash annotation).
fn pods_from_template(env: &Env, cluster: &str, n: u32) {
    let hash = template_keys_hash(env, cluster);
    for i in 0..n {
        let name = format!("{cluster}-{i}");
        env.remove("v1", "pods", &name);
        env.fake.insert(json!({"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": name, "namespace": NS,
                "labels": {"app.kubernetes.io/name": "qdrant", "app.kubernetes.io/instance": cluster},
                "annotations": {KEYS_HASH_ANNOTATION: hash}},
            "spec": {"containers": [{"name": "qdrant", "image": "qdrant/qdrant"}]}}));
    }
}

/// Every stored object but Secrets, as text: where a key must never appear.
fn everything_but_secrets(env: &Env) -> String {
    let mut out = String::new();
    for (api, plural) in [
        (QC, "qdrantclusters"),
        ("apps/v1", "statefulsets"),
        ("v1", "configmaps"),
        ("v1", "pods"),
        ("v1", "events"),
        ("events.k8s.io/v1", "events"),
    ] {
        for o in env.list(api, plural) {
            out.push_str(&o.to_string());
        }
    }
    out
}

/// A rotated user key: the served Secret keeps the old key as alt while the pods roll (and a
/// fresh controller reads it back), the template hash moves at each step, the old key is
/// dropped once every pod runs the new one, and no key value lands anywhere but Secrets.
#[tokio::test]
async fn a_rotated_key_is_remembered_in_the_served_secret_until_every_pod_runs_it() {
    let env = Env::without_qdrant();
    let secret = |value: &str| {
        json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "my-key", "namespace": NS},
            "data": {"token": base64(value)}})
    };
    env.fake.insert(secret("old-key-value"));
    env.seed_cluster("byo", json!({"replicas": 3, "auth": {"apiKey": {"secretKeyRef": {"name": "my-key", "key": "token"}},
        "oldKeyGracePeriodSeconds": 120}}));
    env.try_reconcile("byo").await.unwrap();
    let first = served(&env, "byo");
    assert_eq!(
        (first.api_key.as_str(), first.alt_api_key.as_str()),
        ("old-key-value", "old-key-value")
    );
    let h1 = template_keys_hash(&env, "byo");
    pods_from_template(&env, "byo", 3);
    env.try_reconcile("byo").await.unwrap();
    env.fake.clear_requests();
    env.try_reconcile("byo").await.unwrap();
    assert_eq!(
        env.writes_excluding_events(),
        Vec::<String>::new(),
        "settled: no writes"
    );

    // The user rotates the key.
    env.remove("v1", "secrets", "my-key");
    env.fake.insert(secret("new-key-value"));
    env.try_reconcile("byo").await.unwrap();
    let rotating = served(&env, "byo");
    assert_eq!(rotating.api_key, "new-key-value");
    assert_eq!(
        operator_key(&env, "byo"),
        "old-key-value",
        "status.auth points every client at the key the old pods still accept"
    );
    assert_eq!(
        rotating.alt_api_key, "old-key-value",
        "the old key, remembered"
    );
    assert_eq!(rotating.salt, first.salt);
    let h2 = template_keys_hash(&env, "byo");
    assert_ne!(h2, h1, "the template changes: the pods roll");
    assert!(env.has_event("ApiKeyRotating", "byo", "previous"));

    // A fresh controller mid-roll (one pod restarted) changes nothing: the state is in the
    // Secret and the pods.
    env.edit("v1", "pods", "byo-2", |p| {
        p["metadata"]["annotations"][KEYS_HASH_ANNOTATION] = json!(h2)
    });
    let fresh = env.controller();
    reconcile(Arc::new(env.cluster("byo")), fresh)
        .await
        .unwrap();
    assert_eq!(served(&env, "byo"), rotating);
    assert_eq!(template_keys_hash(&env, "byo"), h2);

    // Every pod runs the new state: the old key's grace period (2 minutes here) starts,
    // the template stays, and the controller comes back when it ends.
    pods_from_template(&env, "byo", 3);
    let action = env.try_reconcile("byo").await.unwrap();
    let grace = served(&env, "byo");
    assert_eq!(grace.alt_api_key, "old-key-value", "still accepted");
    assert_eq!(
        operator_key(&env, "byo"),
        "new-key-value",
        "every pod accepts it now"
    );
    assert!(grace.rolled_out_at.is_some());
    assert_eq!(template_keys_hash(&env, "byo"), h2);
    assert!(env.has_event("ApiKeyRolledOut", "byo", "switch clients"));
    assert_eq!(
        action,
        Action::requeue(Duration::from_secs(120)),
        "back when the grace period ends (before the 5-minute resync)"
    );
    // A shorter grace period (0: at once) drops the old key, which rolls once more.
    env.edit(QC, "qdrantclusters", "byo", |q| {
        q["spec"]["auth"]["oldKeyGracePeriodSeconds"] = json!(0)
    });
    env.try_reconcile("byo").await.unwrap();
    let dropped = served(&env, "byo");
    assert_eq!(dropped.api_key, "new-key-value");
    assert_eq!(dropped.alt_api_key, "new-key-value");
    let h3 = template_keys_hash(&env, "byo");
    assert!(h3 != h2 && h3 != h1);
    assert!(env.has_event("OldApiKeyDropped", "byo", "dropped"));

    pods_from_template(&env, "byo", 3);
    env.try_reconcile("byo").await.unwrap();
    assert_eq!(served(&env, "byo"), dropped);
    assert_eq!(template_keys_hash(&env, "byo"), h3);

    let text = everything_but_secrets(&env);
    for key in [
        "old-key-value",
        "new-key-value",
        &base64("old-key-value"),
        &base64("new-key-value"),
    ] {
        assert!(!text.contains(key), "{key} found outside Secrets");
    }
}

/// The value behind the cluster's `status.auth.apiKeySecretRef`: the key the collection and
/// backup controllers send.
fn operator_key(env: &Env, name: &str) -> String {
    let qc = env.cluster(name);
    let key_ref = status(&qc).auth.unwrap().api_key_secret_ref.unwrap();
    let secret = env.get("v1", "secrets", &key_ref.name).unwrap();
    let encoded = secret["data"][&key_ref.key].as_str().unwrap().to_string();
    use base64::Engine;
    String::from_utf8(
        base64::engine::general_purpose::STANDARD
            .decode(encoded)
            .unwrap(),
    )
    .unwrap()
}

fn base64(s: &str) -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode(s)
}

#[tokio::test]
async fn disabling_the_pdb_deletes_it() {
    let env = Env::without_qdrant();
    env.seed_cluster("demo", three_node());
    env.try_reconcile("demo").await.unwrap();
    assert!(
        env.get("policy/v1", "poddisruptionbudgets", "demo")
            .is_some()
    );
    env.edit(QC, "qdrantclusters", "demo", |q| {
        q["spec"]["podDisruptionBudget"] = json!({"enabled": false})
    });
    env.try_reconcile("demo").await.unwrap();
    assert!(
        env.get("policy/v1", "poddisruptionbudgets", "demo")
            .is_none()
    );
}

/// `spec.networkPolicy`: off by default; on, the NetworkPolicy `<cluster>` lets the p2p port
/// take only the cluster's pods, and REST/gRPC only the allowed clients and the operator's
/// namespace (`POD_NAMESPACE`, here `ops`); turned off again, it is deleted.
#[tokio::test]
async fn the_network_policy_lets_in_only_peers_clients_and_the_operator() {
    let env = Env::without_qdrant();
    let mut ctx = Context::new(env.fake.client(), Arc::new(Metrics::new("test")));
    ctx.operator_namespace = Some("ops".into());
    let ctx = Arc::new(ctx);
    let reconcile_demo = || async { reconcile(Arc::new(env.cluster("demo")), ctx.clone()).await };
    env.seed_cluster("demo", three_node());
    reconcile_demo().await.unwrap();
    assert!(
        env.get("networking.k8s.io/v1", "networkpolicies", "demo")
            .is_none()
    );

    env.edit(QC, "qdrantclusters", "demo", |q| {
        q["spec"]["networkPolicy"] = json!({"enabled": true,
            "allowedClients": [{"namespaceSelector": {"matchLabels": {"team": "search"}}}]});
    });
    reconcile_demo().await.unwrap();
    let policy = env
        .get("networking.k8s.io/v1", "networkpolicies", "demo")
        .unwrap();
    let pods = json!({"matchLabels": {"app.kubernetes.io/instance": "demo", "app.kubernetes.io/name": "qdrant"}});
    assert_eq!(policy["spec"]["podSelector"], pods);
    assert_eq!(policy["spec"]["policyTypes"], json!(["Ingress"]));
    assert_eq!(
        policy["spec"]["ingress"],
        json!([
            {"from": [{"podSelector": pods}], "ports": [{"port": 6335, "protocol": "TCP"}]},
            {"from": [
                {"namespaceSelector": {"matchLabels": {"team": "search"}}},
                {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "ops"}}}
             ],
             "ports": [{"port": 6333, "protocol": "TCP"}, {"port": 6334, "protocol": "TCP"}]}
        ])
    );
    assert_eq!(policy["metadata"]["ownerReferences"][0]["name"], "demo");
    // A no-op resync writes nothing.
    let before = env.writes_excluding_events().len();
    reconcile_demo().await.unwrap();
    assert_eq!(env.writes_excluding_events().len(), before);

    env.edit(QC, "qdrantclusters", "demo", |q| {
        q["spec"]["networkPolicy"]["enabled"] = json!(false);
    });
    reconcile_demo().await.unwrap();
    assert!(
        env.get("networking.k8s.io/v1", "networkpolicies", "demo")
            .is_none()
    );
}

/// `spec.monitoring`: a PodMonitor scraping every peer with the read-only key (Qdrant answers
/// 401 without one), a PrometheusRule with the alerts, a dashboard ConfigMap, and
/// MonitoringReady True. Without the prometheus-operator CRDs (404), MonitoringReady False
/// says so and the cluster is reconciled as usual. Turned off: all three are deleted.
#[tokio::test]
async fn monitoring_scrapes_with_the_read_only_key_and_says_when_the_crds_are_missing() {
    let env = Env::without_qdrant();
    env.fake.insert(json!({"apiVersion": "v1", "kind": "Secret",
        "metadata": {"name": "ro", "namespace": NS}, "stringData": {"key": "read-only"}}));
    env.seed_cluster(
        "demo",
        json!({"replicas": 3,
        "auth": {"apiKey": {"generate": true}, "readOnlyApiKey": {"secretKeyRef": {"name": "ro", "key": "key"}}},
        "monitoring": {"enabled": true, "interval": "15s", "labels": {"release": "prom"}}}),
    );
    env.try_reconcile("demo").await.unwrap();
    let monitor = env
        .get("monitoring.coreos.com/v1", "podmonitors", "demo")
        .unwrap();
    assert_eq!(monitor["metadata"]["labels"]["release"], "prom");
    assert_eq!(
        monitor["spec"]["selector"]["matchLabels"]["app.kubernetes.io/instance"],
        "demo"
    );
    assert_eq!(
        monitor["spec"]["namespaceSelector"],
        json!({"matchNames": [NS]})
    );
    assert_eq!(
        monitor["spec"]["podMetricsEndpoints"],
        json!([{"port": "http", "path": "/metrics", "interval": "15s", "scheme": "http",
            "authorization": {"type": "Bearer", "credentials": {"name": "demo-served-keys", "key": "read-only-api-key"}}}])
    );
    let rule = env
        .get("monitoring.coreos.com/v1", "prometheusrules", "demo")
        .unwrap();
    let alerts: Vec<&str> = rule["spec"]["groups"][0]["rules"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["alert"].as_str().unwrap())
        .collect();
    assert_eq!(
        alerts,
        vec![
            "QdrantPeerDown",
            "QdrantConsensusNotWorking",
            "QdrantPendingConsensusOperations",
            "QdrantShardReplicasNotActive",
            "QdrantShardTransferStuck",
            "QdrantDiskNearlyFull",
            "QdrantMemoryNearLimit"
        ]
    );
    let board = env.get("v1", "configmaps", "demo-dashboard").unwrap();
    assert_eq!(board["metadata"]["labels"]["grafana_dashboard"], "1");
    let json: serde_json::Value =
        serde_json::from_str(board["data"]["demo-dashboard.json"].as_str().unwrap()).unwrap();
    assert!(json["panels"].as_array().unwrap().len() >= 6);
    let ready = |env: &Env| {
        let qc = env.cluster("demo");
        let c = api_types::conditions::find_condition(
            &qc.status.unwrap().conditions,
            "MonitoringReady",
        )
        .cloned()
        .unwrap();
        (c.status, c.reason)
    };
    assert_eq!(
        ready(&env),
        (ConditionStatus::True, "MonitoringApplied".into())
    );
    // A no-op resync writes nothing.
    let before = env.writes_excluding_events().len();
    env.try_reconcile("demo").await.unwrap();
    assert_eq!(env.writes_excluding_events().len(), before);

    // No prometheus-operator: the kinds answer 404; the rest goes on.
    env.fake
        .remove("monitoring.coreos.com/v1", "podmonitors", Some(NS), "demo");
    // The PodMonitor's GET and apply PATCH (the PrometheusRule is not tried after).
    env.fake.fail_next(Failure {
        method: None,
        path_contains: Some("/apis/monitoring.coreos.com/".into()),
        status: 404,
        times: 2,
    });
    env.try_reconcile("demo").await.unwrap();
    assert_eq!(
        ready(&env),
        (ConditionStatus::False, "PrometheusOperatorMissing".into())
    );
    assert!(env.get("apps/v1", "statefulsets", "demo").is_some());

    // Off: everything it created goes.
    env.fake.edit(QC, "qdrantclusters", Some(NS), "demo", |q| {
        q["spec"]["monitoring"]["enabled"] = json!(false);
    });
    env.try_reconcile("demo").await.unwrap();
    assert!(env.get("v1", "configmaps", "demo-dashboard").is_none());
    assert!(
        env.get("monitoring.coreos.com/v1", "prometheusrules", "demo")
            .is_none()
    );
    assert_eq!(
        ready(&env),
        (ConditionStatus::False, "MonitoringDisabled".into())
    );
    // Cleaned up: later reconciles ask nothing about monitoring.
    env.fake.clear_requests();
    env.try_reconcile("demo").await.unwrap();
    let asked: Vec<String> = env
        .fake
        .requests()
        .into_iter()
        .map(|r| r.path)
        .filter(|p| p.contains("monitoring.coreos.com") || p.ends_with("/demo-dashboard"))
        .collect();
    assert!(asked.is_empty(), "{asked:?}");
}

/// Children are applied as one set, then the owned orphans are swept: a ConfigMap and a
/// Service with the cluster's instance labels and owner UID that the build no longer makes are
/// deleted. Kept: an owned Secret (state is never swept), a labelled ConfigMap without an owner
/// (someone else's), and one owned by another object.
#[tokio::test]
async fn owned_orphans_are_swept_and_nothing_else() {
    let env = Env::without_qdrant();
    env.seed_cluster("demo", three_node());
    env.try_reconcile("demo").await.unwrap();
    let live = env.cluster("demo");
    let uid = live.metadata.uid.clone().unwrap();
    let labels = json!({"app.kubernetes.io/name": "qdrant", "app.kubernetes.io/instance": "demo"});
    let owner = |uid: &str| {
        json!([{"apiVersion": QC, "kind": "QdrantCluster", "name": "demo", "uid": uid,
            "controller": true, "blockOwnerDeletion": true}])
    };
    let object = |api_version: &str, kind: &str, name: &str, owners: Value| {
        json!({"apiVersion": api_version, "kind": kind,
            "metadata": {"name": name, "namespace": NS, "labels": labels, "ownerReferences": owners}})
    };
    env.fake
        .insert(object("v1", "ConfigMap", "demo-old-config", owner(&uid)));
    let mut service = object("v1", "Service", "demo-old-service", owner(&uid));
    service["spec"] = json!({"ports": [{"port": 1}]});
    env.fake.insert(service);
    env.fake
        .insert(object("v1", "Secret", "demo-old-secret", owner(&uid)));
    env.fake
        .insert(object("v1", "ConfigMap", "someone-elses", json!([])));
    env.fake.insert(object(
        "v1",
        "ConfigMap",
        "other-owner",
        owner("another-uid"),
    ));

    env.try_reconcile("demo").await.unwrap();
    assert!(env.get("v1", "configmaps", "demo-old-config").is_none());
    assert!(env.get("v1", "services", "demo-old-service").is_none());
    for (plural, name) in [
        ("secrets", "demo-old-secret"),
        ("configmaps", "someone-elses"),
        ("configmaps", "other-owner"),
        ("configmaps", "demo-config"),
        ("services", "demo"),
        ("services", "demo-headless"),
    ] {
        assert!(
            env.get("v1", plural, name).is_some(),
            "{plural}/{name} was deleted"
        );
    }
    // Nothing left to sweep: the next reconcile writes nothing.
    let before = env.writes_excluding_events().len();
    env.try_reconcile("demo").await.unwrap();
    assert_eq!(env.writes_excluding_events().len(), before);
}

#[tokio::test]
async fn ready_pods_make_the_cluster_running_with_peers_from_qdrant() {
    let mut env = Env::without_qdrant();
    env.seed_cluster("demo", three_node());
    env.try_reconcile("demo").await.unwrap();

    // One fake Qdrant per pod, each answering GET /cluster as that peer, requiring the
    // generated key.
    let key = {
        let s = serde_json::from_value(env.get("v1", "secrets", "demo-api-key").unwrap()).unwrap();
        reconcile_lib::secrets::secret_value(&s, "api-key").unwrap()
    };
    let names = Names::of(&env.cluster("demo"));
    let peers: Vec<(u64, String)> = (0..3)
        .map(|i| (100 + i as u64, format!("{}/", names.peer_uri(i))))
        .collect();
    let mut fakes = vec![];
    for i in 0..3u64 {
        let state = ClusterState {
            peer_id: 100 + i,
            peers: peers.clone(),
            leader: Some(100),
            role: Some(if i == 0 {
                RaftRole::Leader
            } else {
                RaftRole::Follower
            }),
            term: 2,
            commit: 10,
            pending_operations: 0,
        };
        fakes.push(
            FakeQdrant::start(FakeQdrantOptions {
                api_key: Some(key.clone()),
                cluster: Some(state),
                ..FakeQdrantOptions::default()
            })
            .await,
        );
    }
    let urls: Vec<_> = fakes.iter().map(FakeQdrant::url).collect();
    Arc::get_mut(&mut env.ctx).unwrap().peer_urls =
        Arc::new(move |_, i| urls.get(i as usize).cloned());

    env.mark_statefulset_ready("demo", 3);
    env.try_reconcile("demo").await.unwrap();
    let qc = env.cluster("demo");
    let st = status(&qc);
    assert_eq!(st.phase, ClusterPhase::Running);
    assert_eq!(st.ready_replicas, 3);
    assert_eq!(st.ready_replicas_text.as_deref(), Some("3/3"));
    assert_eq!(
        st.version.as_deref(),
        Some(api_types::cluster::DEFAULT_QDRANT_TAG)
    );
    assert_eq!(condition(&qc, types::READY).status, ConditionStatus::True);
    assert_eq!(
        condition(&qc, types::PROGRESSING).status,
        ConditionStatus::False
    );
    assert_eq!(st.raft_leader, Some(100));
    let got: Vec<_> = st
        .peers
        .iter()
        .map(|p| (p.pod.as_str(), p.peer_id, p.raft_role.as_deref()))
        .collect();
    assert_eq!(
        got,
        [
            ("demo-0", 100, Some("Leader")),
            ("demo-1", 101, Some("Follower")),
            ("demo-2", 102, Some("Follower"))
        ]
    );
    assert_eq!(
        st.peers[1].uri,
        "http://demo-1.demo-headless.qdrant.svc:6335/"
    );
    // The REST URL of each pod, as the resolver gives it (the fake Qdrants here).
    assert_eq!(st.peers[1].url.as_deref(), Some(fakes[1].url().as_str()));
    assert!(
        fakes
            .iter()
            .all(|f| f.requests().iter().any(|(_, p)| p == "/cluster"))
    );

    // A peer going unready after Running is Degraded.
    env.mark_statefulset_ready("demo", 2);
    env.try_reconcile("demo").await.unwrap();
    let qc = env.cluster("demo");
    assert_eq!(status(&qc).phase, ClusterPhase::Degraded);
    assert_eq!(
        condition(&qc, types::DEGRADED).status,
        ConditionStatus::True
    );
    assert_eq!(condition(&qc, types::READY).status, ConditionStatus::False);

    // Paused and resumed, a cluster that once ran is Degraded, not back to Creating.
    env.edit(QC, "qdrantclusters", "demo", |q| {
        q["metadata"]["annotations"] = json!({"qdrant.operator.dev/paused": "true"})
    });
    env.try_reconcile("demo").await.unwrap();
    assert_eq!(status(&env.cluster("demo")).phase, ClusterPhase::Paused);
    assert_eq!(
        status(&env.cluster("demo")).ready_replicas,
        2,
        "counts kept while paused"
    );
    env.edit(QC, "qdrantclusters", "demo", |q| {
        q["metadata"]["annotations"] = json!({})
    });
    env.try_reconcile("demo").await.unwrap();
    assert_eq!(status(&env.cluster("demo")).phase, ClusterPhase::Degraded);
}
