//! Reconcile scenarios of the collection-controller: the real reconcile function against the
//! in-process fake Kubernetes API server and the fake Qdrant (TESTING.md layers 3 and 4).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::{sync::Arc, time::Duration};

use api_types::{
    QdrantCollection,
    collection::CollectionPhase,
    conditions::{ConditionStatus, find_condition},
};
use collection_controller::{
    reconcile::{Context, reconcile},
    status::types,
};
use kube::{Api, api::DeleteParams};
use reconcile_lib::{
    metrics::Metrics,
    testing::{
        apiserver::FakeApiServer,
        qdrant::{FakeQdrant, FakeQdrantOptions},
    },
};
use serde_json::{Value, json};

const NS: &str = "search";
const API: &str = "qdrant.operator.dev/v1alpha1";
const KEY: &str = "s3cr3t-key";

struct Env {
    fake: FakeApiServer,
    qdrant: FakeQdrant,
    ctx: Arc<Context>,
}

async fn env() -> Env {
    let fake = FakeApiServer::new();
    let qdrant = FakeQdrant::start(FakeQdrantOptions {
        api_key: Some(KEY.into()),
        ..FakeQdrantOptions::default()
    })
    .await;
    let mut ctx = Context::new(fake.client(), Arc::new(Metrics::new("test")));
    let url = qdrant.url();
    ctx.rewrite = Some(Arc::new(move |_| url.clone()));
    ctx.deletion_timeout = Duration::from_secs(600);
    let env = Env {
        fake,
        qdrant,
        ctx: Arc::new(ctx),
    };
    env.fake.insert(json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "demo-api-key", "namespace": NS}, "stringData": {"api-key": KEY}}));
    env
}

impl Env {
    fn cluster(&self, ready: bool) {
        let mut qc = self.fake.insert(json!({
            "apiVersion": API, "kind": "QdrantCluster",
            "metadata": {"name": "demo", "namespace": NS},
            "spec": {"replicas": 3},
        }));
        let generation = qc["metadata"]["generation"].clone();
        qc["status"] = json!({
            "phase": if ready { "Running" } else { "Creating" },
            "conditions": [{"type": "Ready", "status": if ready { "True" } else { "False" }, "reason": "x", "message": "",
                            "observedGeneration": generation, "lastTransitionTime": "2026-01-01T00:00:00Z"}],
            "endpoints": {"http": "http://demo.search.svc:6333", "grpc": "http://demo.search.svc:6334"},
            "auth": {"apiKeySecretRef": {"name": "demo-api-key", "key": "api-key"}},
        });
        self.fake.insert(qc);
    }

    fn collection(&self, name: &str, spec: Value) {
        self.fake.insert(json!({"apiVersion": API, "kind": "QdrantCollection", "metadata": {"name": name, "namespace": NS}, "spec": spec}));
    }

    fn current(&self, name: &str) -> Option<QdrantCollection> {
        self.fake
            .get(API, "qdrantcollections", Some(NS), name)
            .map(|v| serde_json::from_value(v).unwrap())
    }

    async fn reconcile(
        &self,
        name: &str,
    ) -> Result<kube::runtime::controller::Action, reconcile_lib::error::Error> {
        reconcile(Arc::new(self.current(name).unwrap()), self.ctx.clone()).await
    }

    /// Reconciles until the finalizer is in place and one sync ran (the finalizer helper adds
    /// the finalizer in its own pass).
    async fn sync(&self, name: &str) {
        self.reconcile(name).await.unwrap();
        self.reconcile(name).await.unwrap();
    }

    fn qdrant_writes(&self) -> Vec<String> {
        self.qdrant
            .requests()
            .into_iter()
            .filter(|(m, _)| m != http::Method::GET)
            .map(|(m, p)| format!("{m} {p}"))
            .collect()
    }

    fn qdrant_reads(&self) -> Vec<String> {
        self.qdrant
            .requests()
            .into_iter()
            .filter(|(m, _)| m == http::Method::GET)
            .map(|(_, p)| p)
            .collect()
    }

    fn condition(&self, name: &str, t: &str) -> api_types::Condition {
        let q = self.current(name).unwrap();
        find_condition(&q.status.unwrap().conditions, t)
            .cloned()
            .unwrap_or_else(|| panic!("{t} missing"))
    }

    async fn delete(&self, name: &str) {
        let api: Api<QdrantCollection> = Api::namespaced(self.fake.client(), NS);
        api.delete(name, &DeleteParams::default()).await.unwrap();
    }
}

fn articles() -> Value {
    json!({
        "cluster": {"name": "demo"},
        "vectors": {"size": 768, "distance": "Cosine"},
        "shardNumber": 6, "replicationFactor": 2,
        "quantizationConfig": {"scalar": {"type": "Int8", "quantile": 0.99, "alwaysRam": true}},
        "hnswConfig": {"m": 32},
        "payloadIndexes": [{"field": "category", "schema": "Keyword"}, {"field": "year", "schema": "Integer"}],
        "aliases": ["articles-current"],
    })
}

#[tokio::test]
async fn waits_while_the_cluster_is_not_ready() {
    let env = env().await;
    env.cluster(false);
    env.collection("articles", articles());
    env.sync("articles").await;
    let q = env.current("articles").unwrap();
    assert_eq!(q.status.as_ref().unwrap().phase, CollectionPhase::Waiting);
    let ready = env.condition("articles", types::READY);
    assert_eq!(
        (ready.status, ready.reason.as_str()),
        (ConditionStatus::False, "ClusterNotReady")
    );
    assert!(
        env.qdrant.requests().is_empty(),
        "nothing is sent to Qdrant before the cluster is Ready"
    );
}

#[tokio::test]
async fn creates_the_collection_with_the_key_and_endpoint_from_cluster_status() {
    let env = env().await;
    env.cluster(true);
    env.collection("articles", articles());
    env.sync("articles").await;

    let q = env.current("articles").unwrap();
    assert_eq!(
        q.metadata.finalizers,
        Some(vec![collection_controller::FINALIZER.to_string()])
    );
    let info = env
        .qdrant
        .collection("articles")
        .expect("collection created in Qdrant");
    let params = &info["config"]["params"];
    assert_eq!(params["vectors"]["size"], json!(768));
    assert_eq!(params["vectors"]["distance"], json!("Cosine"));
    assert_eq!(params["shard_number"], json!(6));
    assert_eq!(params["replication_factor"], json!(2));
    assert_eq!(info["config"]["hnsw_config"]["m"], json!(32));
    assert_eq!(
        info["config"]["quantization_config"]["scalar"]["type"],
        json!("int8")
    );
    let schema = info["payload_schema"].as_object().unwrap();
    assert_eq!(schema.keys().collect::<Vec<_>>(), ["category", "year"]);
    assert!(
        env.qdrant
            .aliases()
            .contains(&("articles-current".to_string(), "articles".to_string()))
    );
    // The key from the cluster's Secret was sent (the fake refuses anything else).
    assert!(
        env.qdrant
            .recorded()
            .iter()
            .all(|r| r.path.starts_with("/collections") || r.path.starts_with("/aliases"))
    );

    let st = q.status.unwrap();
    assert_eq!(st.phase, CollectionPhase::Ready);
    assert_eq!(st.collection_name.as_deref(), Some("articles"));
    assert_eq!(st.collection_status.as_deref(), Some("green"));
    assert!(st.last_sync_time.is_some());
    assert_eq!(
        env.condition("articles", types::READY).status,
        ConditionStatus::True
    );
    assert_eq!(
        env.condition("articles", types::SYNCED).status,
        ConditionStatus::True
    );
    assert_eq!(
        env.condition("articles", types::CONFIG_DRIFT).status,
        ConditionStatus::False
    );
}

#[tokio::test]
async fn an_unchanged_collection_costs_reads_only() {
    let env = env().await;
    env.cluster(true);
    let mut spec = articles();
    spec.as_object_mut().unwrap().remove("aliases");
    env.collection("plain", spec);
    env.sync("plain").await;
    env.reconcile("plain").await.unwrap();
    env.qdrant.clear_requests();
    env.fake.clear_requests();
    env.reconcile("plain").await.unwrap();
    assert_eq!(env.qdrant_writes(), Vec::<String>::new());
    assert_eq!(
        env.qdrant_reads(),
        ["/collections/plain"],
        "one read per resync without aliases"
    );
    assert_eq!(env.fake.writes(), vec![], "status unchanged, no event");

    // With aliases managed, one more read (GET /aliases) and still no write.
    env.collection("articles", articles());
    env.sync("articles").await;
    env.reconcile("articles").await.unwrap();
    env.qdrant.clear_requests();
    env.fake.clear_requests();
    env.reconcile("articles").await.unwrap();
    assert_eq!(env.qdrant_writes(), Vec::<String>::new());
    assert_eq!(env.qdrant_reads(), ["/collections/articles", "/aliases"]);
    assert_eq!(env.fake.writes(), vec![]);
}

#[tokio::test]
async fn a_change_behind_the_back_is_repaired() {
    let env = env().await;
    env.cluster(true);
    env.collection("articles", articles());
    env.sync("articles").await;
    env.qdrant.edit_collection_config("articles", |c| {
        c["hnsw_config"]["m"] = json!(8);
        c["params"]["replication_factor"] = json!(1);
    });
    env.qdrant.clear_requests();
    env.reconcile("articles").await.unwrap();
    assert_eq!(env.qdrant_writes(), ["PATCH /collections/articles"]);
    let info = env.qdrant.collection("articles").unwrap();
    assert_eq!(info["config"]["hnsw_config"]["m"], json!(32));
    assert_eq!(info["config"]["params"]["replication_factor"], json!(2));
}

#[tokio::test]
async fn a_spec_change_of_a_mutable_field_is_applied_in_place() {
    let env = env().await;
    env.cluster(true);
    env.collection("articles", articles());
    env.sync("articles").await;
    env.fake
        .edit(API, "qdrantcollections", Some(NS), "articles", |q| {
            q["spec"]["optimizersConfig"] = json!({"indexingThreshold": 20000});
        });
    env.qdrant.clear_requests();
    env.reconcile("articles").await.unwrap();
    assert_eq!(env.qdrant_writes(), ["PATCH /collections/articles"]);
    assert_eq!(
        env.qdrant.collection("articles").unwrap()["config"]["optimizer_config"]["indexing_threshold"],
        json!(20000)
    );
}

#[tokio::test]
async fn immutable_drift_is_reported_never_fixed() {
    let env = env().await;
    env.cluster(true);
    env.collection("articles", articles());
    env.sync("articles").await;
    env.fake
        .edit(API, "qdrantcollections", Some(NS), "articles", |q| {
            q["spec"]["vectors"]["size"] = json!(1024);
            q["spec"]["shardNumber"] = json!(3);
        });
    env.qdrant.clear_requests();
    env.reconcile("articles").await.unwrap();
    assert_eq!(
        env.qdrant_writes(),
        Vec::<String>::new(),
        "nothing is recreated or deleted"
    );
    let drift = env.condition("articles", types::CONFIG_DRIFT);
    assert_eq!(drift.status, ConditionStatus::True);
    assert!(
        drift.message.contains("spec.vectors.size")
            && drift.message.contains("1024")
            && drift.message.contains("768"),
        "{}",
        drift.message
    );
    assert!(
        drift.message.contains("spec.shardNumber"),
        "{}",
        drift.message
    );
    let st = env.current("articles").unwrap().status.unwrap();
    assert_eq!(st.drift.len(), 2);
    assert_eq!(
        env.condition("articles", types::READY).status,
        ConditionStatus::True,
        "the collection still serves"
    );
    assert!(
        env.fake
            .list("events.k8s.io/v1", "events", Some(NS))
            .iter()
            .any(|e| e["reason"] == json!("ConfigDrift"))
    );
}

#[tokio::test]
async fn indexes_and_aliases_converge() {
    let env = env().await;
    env.cluster(true);
    env.collection("articles", articles());
    env.collection("other", json!({"cluster": {"name": "demo"}, "vectors": {"size": 4, "distance": "Dot"}, "aliases": ["shared"]}));
    env.sync("articles").await;
    env.sync("other").await;
    assert!(
        env.qdrant
            .aliases()
            .contains(&("shared".to_string(), "other".to_string()))
    );

    env.fake.edit(API, "qdrantcollections", Some(NS), "articles", |q| {
        q["spec"]["payloadIndexes"] = json!([{"field": "year", "schema": "Integer"}, {"field": "lang", "schema": "Keyword", "params": {"is_tenant": true}}]);
        q["spec"]["aliases"] = json!(["shared", "articles-v2"]);
    });
    env.qdrant.clear_requests();
    env.reconcile("articles").await.unwrap();
    let schema = env.qdrant.collection("articles").unwrap()["payload_schema"].clone();
    let mut fields: Vec<_> = schema.as_object().unwrap().keys().cloned().collect();
    fields.sort();
    assert_eq!(fields, ["lang", "year"]);
    let mut aliases = env.qdrant.aliases();
    aliases.sort();
    assert_eq!(
        aliases,
        [
            ("articles-v2".to_string(), "articles".to_string()),
            ("shared".to_string(), "articles".to_string())
        ]
    );
    let alias_posts = env
        .qdrant_writes()
        .iter()
        .filter(|w| w.ends_with("/collections/aliases"))
        .count();
    assert_eq!(alias_posts, 1, "aliases change in one atomic request");
}

#[tokio::test]
async fn adopting_a_collection_leaves_unlisted_indexes_and_aliases_alone() {
    let env = env().await;
    env.cluster(true);
    // An application created the collection, an index and an alias before the operator.
    env.collection("seed", json!({"cluster": {"name": "demo"}, "collectionName": "legacy", "vectors": {"size": 4, "distance": "Dot"},
        "payloadIndexes": [{"field": "tenant", "schema": "Keyword"}], "aliases": ["legacy-live"]}));
    env.sync("seed").await;
    env.fake.remove(API, "qdrantcollections", Some(NS), "seed");

    env.collection("adopt", json!({"cluster": {"name": "demo"}, "collectionName": "legacy", "vectors": {"size": 4, "distance": "Dot"}}));
    env.qdrant.clear_requests();
    env.sync("adopt").await;
    assert_eq!(
        env.qdrant_writes(),
        Vec::<String>::new(),
        "nothing the spec does not mention is touched"
    );
    assert!(
        env.qdrant.collection("legacy").unwrap()["payload_schema"]
            .get("tenant")
            .is_some()
    );
    assert!(
        env.qdrant
            .aliases()
            .contains(&("legacy-live".to_string(), "legacy".to_string()))
    );

    // Once indexes are listed, they are matched; removing them all later still matches.
    env.fake
        .edit(API, "qdrantcollections", Some(NS), "adopt", |q| {
            q["spec"]["payloadIndexes"] = json!([{"field": "year", "schema": "Integer"}])
        });
    env.reconcile("adopt").await.unwrap();
    let schema = env.qdrant.collection("legacy").unwrap()["payload_schema"].clone();
    assert_eq!(
        schema.as_object().unwrap().keys().collect::<Vec<_>>(),
        ["year"]
    );
    env.fake
        .edit(API, "qdrantcollections", Some(NS), "adopt", |q| {
            q["spec"]["payloadIndexes"] = json!([])
        });
    env.reconcile("adopt").await.unwrap();
    assert!(
        env.qdrant.collection("legacy").unwrap()["payload_schema"]
            .as_object()
            .unwrap()
            .is_empty()
    );
}

#[tokio::test]
async fn deletion_retain_keeps_the_collection() {
    let env = env().await;
    env.cluster(true);
    env.collection("articles", articles());
    env.sync("articles").await;
    env.delete("articles").await;
    env.reconcile("articles").await.unwrap();
    assert!(
        env.current("articles").is_none(),
        "finalizer removed, object gone"
    );
    assert!(
        env.qdrant.collection("articles").is_some(),
        "Retain leaves the data"
    );
}

#[tokio::test]
async fn deletion_delete_removes_the_collection() {
    let env = env().await;
    env.cluster(true);
    let mut spec = articles();
    spec["deletionPolicy"] = json!("Delete");
    env.collection("articles", spec);
    env.sync("articles").await;
    env.delete("articles").await;
    env.reconcile("articles").await.unwrap();
    assert!(env.current("articles").is_none());
    assert!(
        env.qdrant.collection("articles").is_none(),
        "Delete removes the data"
    );
}

#[tokio::test]
async fn a_gone_cluster_does_not_block_deletion() {
    let env = env().await;
    env.cluster(true);
    let mut spec = articles();
    spec["deletionPolicy"] = json!("Delete");
    env.collection("articles", spec);
    env.sync("articles").await;
    env.fake.remove(API, "qdrantclusters", Some(NS), "demo");
    env.delete("articles").await;
    env.reconcile("articles").await.unwrap();
    assert!(env.current("articles").is_none());
    assert!(
        env.fake
            .list("events.k8s.io/v1", "events", Some(NS))
            .iter()
            .any(|e| e["reason"] == json!("CollectionNotDeleted"))
    );
}

#[tokio::test]
async fn an_unreachable_qdrant_retries_deletion_then_gives_up() {
    let env = env().await;
    env.cluster(true);
    let mut spec = articles();
    spec["deletionPolicy"] = json!("Delete");
    env.collection("articles", spec);
    env.sync("articles").await;
    env.qdrant.fail_next("/collections/articles", 503, 100);
    env.delete("articles").await;
    let err = env
        .reconcile("articles")
        .await
        .expect_err("transient: retried with backoff");
    assert!(err.is_transient());
    assert!(
        env.current("articles").is_some(),
        "finalizer kept while retrying"
    );
    // After the deletion timeout the finalizer goes, with a Warning, and the data stays.
    let mut ctx = Context::new(env.fake.client(), Arc::new(Metrics::new("test")));
    let url = env.qdrant.url();
    ctx.rewrite = Some(Arc::new(move |_| url.clone()));
    ctx.deletion_timeout = Duration::ZERO;
    reconcile(Arc::new(env.current("articles").unwrap()), Arc::new(ctx))
        .await
        .unwrap();
    assert!(env.current("articles").is_none());
    assert!(
        env.fake
            .list("events.k8s.io/v1", "events", Some(NS))
            .iter()
            .any(|e| e["reason"] == json!("CollectionNotDeleted"))
    );
}

#[tokio::test]
async fn a_wrong_api_key_becomes_a_condition_with_qdrants_message() {
    let env = env().await;
    env.cluster(true);
    env.fake
        .edit("v1", "secrets", Some(NS), "demo-api-key", |s| {
            s["stringData"]["api-key"] = json!("wrong")
        });
    env.collection("articles", articles());
    env.sync("articles").await;
    let ready = env.condition("articles", types::READY);
    assert_eq!(ready.status, ConditionStatus::False);
    assert_eq!(ready.reason, "QdrantUnauthorized");
    assert!(
        ready.message.contains("Invalid API key"),
        "{}",
        ready.message
    );
    assert_eq!(
        env.current("articles").unwrap().status.unwrap().phase,
        CollectionPhase::Failed
    );
}

#[tokio::test]
async fn a_refused_request_is_a_condition_not_a_retry_loop() {
    let env = env().await;
    env.cluster(true);
    env.collection(
        "bad",
        json!({"cluster": {"name": "demo"}, "vectors": {"size": 4, "distance": "Dot"}}),
    );
    env.reconcile("bad").await.unwrap();
    env.qdrant.fail_next("/collections/bad", 400, 1);
    let result = env.reconcile("bad").await;
    assert!(result.is_ok(), "a 4xx is permanent: {result:?}");
    let ready = env.condition("bad", types::READY);
    assert_eq!(
        (ready.status, ready.reason.as_str()),
        (ConditionStatus::False, "QdrantBadRequest")
    );
    assert!(!ready.message.is_empty());
}

#[tokio::test]
async fn a_named_vector_missing_in_qdrant_is_drift() {
    let env = env().await;
    env.cluster(true);
    env.collection(
        "multi",
        json!({"cluster": {"name": "demo"}, "namedVectors": {"a": {"size": 4, "distance": "Dot"}}}),
    );
    env.sync("multi").await;
    env.fake
        .edit(API, "qdrantcollections", Some(NS), "multi", |q| {
            q["spec"]["namedVectors"]["b"] = json!({"size": 8, "distance": "Cosine"});
        });
    env.qdrant.clear_requests();
    env.reconcile("multi").await.unwrap();
    assert_eq!(env.qdrant_writes(), Vec::<String>::new());
    let drift = env.condition("multi", types::CONFIG_DRIFT);
    assert!(
        drift.message.contains("spec.namedVectors.b"),
        "{}",
        drift.message
    );
}

#[tokio::test]
async fn an_unreachable_qdrant_is_transient_with_a_condition() {
    let env = env().await;
    env.cluster(true);
    env.collection("articles", articles());
    env.reconcile("articles").await.unwrap();
    env.qdrant.fail_next("/collections/articles", 503, 1);
    let err = env.reconcile("articles").await.expect_err("transient");
    assert!(err.is_transient());
    let ready = env.condition("articles", types::READY);
    assert_eq!(ready.status, ConditionStatus::False);
    assert!(ready.reason.starts_with("Qdrant"), "{}", ready.reason);
    env.reconcile("articles").await.expect("recovers");
    assert_eq!(
        env.condition("articles", types::READY).status,
        ConditionStatus::True
    );
}

#[tokio::test]
async fn a_connection_target_uses_its_url_and_key_secret() {
    let env = env().await;
    env.fake.insert(json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "helm-key", "namespace": NS}, "stringData": {"token": KEY}}));
    env.collection("ext", json!({
        "connection": {"url": "http://qdrant.other.svc:6333", "apiKeySecretRef": {"name": "helm-key", "key": "token"}},
        "collectionName": "external_docs",
        "vectors": {"size": 4, "distance": "Euclid"},
    }));
    env.sync("ext").await;
    assert!(env.qdrant.collection("external_docs").is_some());
    assert_eq!(
        env.current("ext")
            .unwrap()
            .status
            .unwrap()
            .collection_name
            .as_deref(),
        Some("external_docs")
    );

    env.collection("nokey", json!({"connection": {"url": "http://q:6333", "apiKeySecretRef": {"name": "missing", "key": "k"}}, "vectors": {"size": 4, "distance": "Dot"}}));
    env.sync("nokey").await;
    assert_eq!(
        env.condition("nokey", types::READY).reason,
        "SecretNotFound"
    );
}

#[tokio::test]
async fn pause_stops_syncing() {
    let env = env().await;
    env.cluster(true);
    env.collection("articles", articles());
    env.sync("articles").await;
    env.fake
        .edit(API, "qdrantcollections", Some(NS), "articles", |q| {
            q["metadata"]["annotations"] = json!({"qdrant.operator.dev/paused": "true"});
            q["spec"]["hnswConfig"] = json!({"m": 64});
        });
    env.qdrant.clear_requests();
    env.reconcile("articles").await.unwrap();
    assert!(env.qdrant.requests().is_empty());
    assert_eq!(
        env.condition("articles", types::PAUSED).status,
        ConditionStatus::True
    );
}
