//! Reconcile scenarios of the collection-controller: the real reconcile function against the
//! in-process fake Kubernetes API server and the fake Qdrant (TESTING.md layers 3 and 4).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::{ops::Deref, sync::Arc, time::Duration};

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
    qdrant::{ApiKey, QdrantClient, QdrantConnection},
};
use serde_json::{Value, json};
use testkit::{
    harness::{Harness, qdrant_reads, qdrant_writes},
    qdrant::{FakeQdrant, FakeQdrantOptions},
    real_qdrant::{self, SingleNode, SingleNodeOptions},
};
use url::Url;

const NS: &str = "search";
const API: &str = "qdrant.operator.dev/v1alpha1";
const KEY: &str = "s3cr3t-key";

/// One test's world: the harness (dereferenced to: `env.fake`, `env.get(..)`, ...), the fake
/// Qdrant, a controller context, and where its endpoints lead.
struct Env {
    harness: Harness,
    qdrant: FakeQdrant,
    ctx: Arc<Context>,
    /// The Qdrant every endpoint is rewritten to (the fake's unless [`env_at`] named another)
    /// and the key in the `demo-api-key` Secret.
    target: (Url, String),
}

impl Deref for Env {
    type Target = Harness;

    fn deref(&self) -> &Harness {
        &self.harness
    }
}

async fn env() -> Env {
    env_at(None).await
}

/// An environment whose endpoints all lead to `target` (URL, API key): a real Qdrant; `None`
/// for the fake (which is started either way, and stays idle with a real target).
async fn env_at(target: Option<(Url, String)>) -> Env {
    env_with(target, FakeQdrantOptions::default().version).await
}

/// [`env_at`] with a fake Qdrant that reports `version` (and behaves as that version where
/// the fake models a difference, e.g. 1.19's `memory`).
async fn env_with(target: Option<(Url, String)>, version: String) -> Env {
    let harness = Harness::new(NS);
    let qdrant = FakeQdrant::start(FakeQdrantOptions {
        api_key: Some(KEY.into()),
        version,
        ..FakeQdrantOptions::default()
    })
    .await;
    let target = target.unwrap_or_else(|| (qdrant.url(), KEY.to_string()));
    let mut ctx = Context::new(harness.client(), Arc::new(Metrics::new("test")));
    let url = target.0.clone();
    ctx.rewrite = Some(Arc::new(move |_| url.clone()));
    ctx.deletion_timeout = Duration::from_secs(600);
    let env = Env {
        harness,
        qdrant,
        ctx: Arc::new(ctx),
        target,
    };
    env.seed(json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "demo-api-key"}, "stringData": {"api-key": env.target.1}}));
    env
}

impl Env {
    /// A client for the Qdrant the controller talks to, with its key (plays an application).
    fn qdrant_client(&self) -> QdrantClient {
        let conn = QdrantConnection::new(self.target.0.clone())
            .with_api_key(ApiKey::new(self.target.1.clone()));
        QdrantClient::new(&conn).unwrap()
    }

    fn uid(&self, name: &str) -> String {
        self.stored(name).unwrap().metadata.uid.unwrap()
    }

    /// The QdrantCluster `demo` with the status its controller writes: Running and Ready, or
    /// Creating.
    fn cluster(&self, ready: bool) {
        self.seed_with_status(
            json!({"apiVersion": API, "kind": "QdrantCluster", "metadata": {"name": "demo"},
                "spec": {"replicas": 3}}),
            |qc| {
                let generation = qc["metadata"]["generation"].clone();
                json!({
                    "phase": if ready { "Running" } else { "Creating" },
                    "conditions": [{"type": "Ready", "status": if ready { "True" } else { "False" }, "reason": "x", "message": "",
                                    "observedGeneration": generation, "lastTransitionTime": "2026-01-01T00:00:00Z"}],
                    "endpoints": {"http": "http://demo.search.svc:6333", "grpc": "http://demo.search.svc:6334"},
                    "auth": {"apiKeySecretRef": {"name": "demo-api-key", "key": "api-key"}},
                })
            },
        );
    }

    fn collection(&self, name: &str, spec: Value) {
        self.seed(json!({"apiVersion": API, "kind": "QdrantCollection", "metadata": {"name": name}, "spec": spec}));
    }

    /// The stored QdrantCollection `name`, if any.
    fn stored(&self, name: &str) -> Option<QdrantCollection> {
        self.try_current(name)
    }

    async fn reconcile(
        &self,
        name: &str,
    ) -> Result<kube::runtime::controller::Action, reconcile_lib::error::Error> {
        reconcile(Arc::new(self.stored(name).unwrap()), self.ctx.clone()).await
    }

    /// Reconciles until the finalizer is in place and one sync ran (the finalizer helper adds
    /// the finalizer in its own pass).
    async fn sync(&self, name: &str) {
        self.reconcile(name).await.unwrap();
        self.reconcile(name).await.unwrap();
    }

    fn qdrant_writes(&self) -> Vec<String> {
        qdrant_writes(&self.qdrant)
    }

    fn qdrant_reads(&self) -> Vec<String> {
        qdrant_reads(&self.qdrant)
    }

    fn condition(&self, name: &str, t: &str) -> api_types::Condition {
        let q = self.stored(name).unwrap();
        find_condition(&q.status.unwrap().conditions, t)
            .cloned()
            .unwrap_or_else(|| panic!("{t} missing"))
    }

    async fn delete(&self, name: &str) {
        let api: Api<QdrantCollection> = Api::namespaced(self.client(), NS);
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
    let q = env.stored("articles").unwrap();
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

    let q = env.stored("articles").unwrap();
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
    env.edit(API, "qdrantcollections", "articles", |q| {
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
    env.edit(API, "qdrantcollections", "articles", |q| {
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
    let st = env.stored("articles").unwrap().status.unwrap();
    assert_eq!(st.drift.len(), 2);
    assert_eq!(
        env.condition("articles", types::READY).status,
        ConditionStatus::True,
        "the collection still serves"
    );
    assert!(
        env.events()
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

    env.edit(API, "qdrantcollections", "articles", |q| {
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

/// The payload index fields of collection `name`, sorted, as Qdrant reports them.
async fn index_fields(client: &QdrantClient, name: &str) -> Vec<String> {
    let info = client.collection_info(name).await.unwrap().unwrap();
    info.payload_schema.keys().cloned().collect()
}

/// The aliases of collection `name`, sorted.
async fn alias_names(client: &QdrantClient, name: &str) -> Vec<String> {
    let mut names: Vec<String> = client
        .collection_aliases(name)
        .await
        .unwrap()
        .into_iter()
        .map(|a| a.alias_name)
        .collect();
    names.sort();
    names
}

/// The operator's owner mark on collection `name` (`null` when there is none).
async fn owner_mark(client: &QdrantClient, name: &str) -> Value {
    let info = client.collection_info(name).await.unwrap().unwrap();
    info.config["metadata"][collection_controller::ownership::OWNER_KEY].clone()
}

/// An application creates collection `name` with a `tenant` index and alias `{name}-live`,
/// before any operator.
async fn created_by_an_application(client: &QdrantClient, name: &str) {
    client
        .create_collection(
            name,
            &json!({"vectors": {"size": 4, "distance": "Dot"}, "metadata": {"team": "search"}}),
        )
        .await
        .unwrap();
    client
        .create_payload_index(name, "tenant", &json!("keyword"))
        .await
        .unwrap();
    client
        .update_aliases(&[json!({"create_alias": {"collection_name": name, "alias_name": format!("{name}-live")}})])
        .await
        .unwrap();
}

#[tokio::test]
async fn adopting_a_collection_marks_it_and_leaves_undeclared_indexes_and_aliases_alone() {
    let env = env().await;
    env.cluster(true);
    let app = env.qdrant_client();
    created_by_an_application(&app, "legacy").await;

    env.collection("adopt", json!({"cluster": {"name": "demo"}, "collectionName": "legacy", "vectors": {"size": 4, "distance": "Dot"}}));
    env.qdrant.clear_requests();
    env.sync("adopt").await;
    assert_eq!(
        env.qdrant_writes(),
        ["PATCH /collections/legacy"],
        "only the owner mark is written"
    );
    let metadata = app.collection_info("legacy").await.unwrap().unwrap().config["metadata"].clone();
    assert_eq!(
        metadata,
        json!({
            "team": "search",
            "qdrant.operator.dev/owner": {"namespace": NS, "name": "adopt", "uid": env.uid("adopt")},
            "qdrant.operator.dev/declared": {"payloadIndexes": [], "aliases": []},
        }),
        "the application's own metadata stays"
    );
    assert!(env.has_event("CollectionAdopted", "adopt", "legacy"));
    assert_eq!(
        env.condition("adopt", types::READY).status,
        ConditionStatus::True
    );

    // Declaring others creates them and leaves the application's.
    env.edit(API, "qdrantcollections", "adopt", |q| {
        q["spec"]["payloadIndexes"] =
            json!([{"field": "year", "schema": "Integer"}, {"field": "lang", "schema": "Keyword"}]);
        q["spec"]["aliases"] = json!(["legacy-v2"]);
    });
    env.reconcile("adopt").await.unwrap();
    assert_eq!(
        index_fields(&app, "legacy").await,
        ["lang", "tenant", "year"]
    );
    assert_eq!(
        alias_names(&app, "legacy").await,
        ["legacy-live", "legacy-v2"]
    );

    // Removing a declared one deletes it, and only it.
    env.edit(API, "qdrantcollections", "adopt", |q| {
        q["spec"]["payloadIndexes"] = json!([{"field": "lang", "schema": "Keyword"}]);
        q["spec"]["aliases"] = json!([]);
    });
    env.reconcile("adopt").await.unwrap();
    assert_eq!(index_fields(&app, "legacy").await, ["lang", "tenant"]);
    assert_eq!(alias_names(&app, "legacy").await, ["legacy-live"]);
    let declared = app.collection_info("legacy").await.unwrap().unwrap().config["metadata"]
        ["qdrant.operator.dev/declared"]
        .clone();
    assert_eq!(declared, json!({"payloadIndexes": ["lang"], "aliases": []}));

    // Nothing declared any more: everything left stays, and a resync writes nothing.
    env.edit(API, "qdrantcollections", "adopt", |q| {
        q["spec"]["payloadIndexes"] = json!([]);
    });
    env.reconcile("adopt").await.unwrap();
    assert_eq!(index_fields(&app, "legacy").await, ["tenant"]);
    env.qdrant.clear_requests();
    env.reconcile("adopt").await.unwrap();
    assert_eq!(env.qdrant_writes(), Vec::<String>::new());
}

/// Two QdrantCollections (`first`, `second`, both `deletionPolicy: Delete`) name collection
/// `collection` of the Qdrant `env` leads to; checks only through Qdrant's API, so it runs
/// against the fake and a real Qdrant alike.
async fn two_objects_one_collection(env: &Env, collection: &str) {
    env.cluster(true);
    let qdrant = env.qdrant_client();
    env.collection("first", json!({"cluster": {"name": "demo"}, "collectionName": collection,
        "vectors": {"size": 4, "distance": "Dot"}, "hnswConfig": {"m": 16}, "deletionPolicy": "Delete"}));
    env.sync("first").await;
    assert_eq!(
        owner_mark(&qdrant, collection).await,
        json!({"namespace": NS, "name": "first", "uid": env.uid("first")}),
        "a collection the operator creates is marked as owned by its object"
    );

    // The second one would change hnsw m, add an index and an alias: refused, nothing written.
    env.collection("second", json!({"cluster": {"name": "demo"}, "collectionName": collection,
        "vectors": {"size": 4, "distance": "Dot"}, "hnswConfig": {"m": 48},
        "payloadIndexes": [{"field": "tenant", "schema": "Keyword"}], "aliases": [format!("{collection}-alias")],
        "deletionPolicy": "Delete"}));
    env.sync("second").await;
    env.reconcile("second").await.unwrap();
    let ready = env.condition("second", types::READY);
    assert_eq!(
        (ready.status, ready.reason.as_str()),
        (ConditionStatus::False, "OwnedByAnotherObject")
    );
    let first = format!("{NS}/first (uid {})", env.uid("first"));
    assert!(ready.message.contains(&first), "{}", ready.message);
    assert_eq!(
        env.condition("second", types::SYNCED).reason,
        "OwnedByAnotherObject"
    );
    assert_eq!(
        env.stored("second").unwrap().status.unwrap().phase,
        CollectionPhase::Failed
    );
    let info = qdrant.collection_info(collection).await.unwrap().unwrap();
    assert_eq!(info.config["hnsw_config"]["m"], json!(16), "no write");
    assert!(info.payload_schema.is_empty(), "no index");
    assert_eq!(alias_names(&qdrant, collection).await, Vec::<String>::new());
    let warnings = env
        .events()
        .iter()
        .filter(|e| {
            e["reason"] == json!("OwnedByAnotherObject")
                && e["regarding"]["name"] == json!("second")
        })
        .count();
    assert_eq!(warnings, 1, "warned once, not at every resync");

    // Deleting the second leaves the collection (the finalizer still completes).
    env.delete("second").await;
    env.reconcile("second").await.unwrap();
    assert!(env.stored("second").is_none(), "finalizer removed");
    assert!(qdrant.collection_info(collection).await.unwrap().is_some());
    assert!(env.has_event("CollectionNotDeleted", "second", &first));
    env.reconcile("first").await.unwrap();
    assert_eq!(
        env.condition("first", types::READY).status,
        ConditionStatus::True
    );

    // Deleting the owner deletes it.
    env.delete("first").await;
    env.reconcile("first").await.unwrap();
    assert!(env.stored("first").is_none());
    assert!(qdrant.collection_info(collection).await.unwrap().is_none());
}

#[tokio::test]
async fn a_second_object_on_the_same_collection_is_refused_and_never_deletes_it() {
    let env = env().await;
    two_objects_one_collection(&env, "shared").await;
    // On the fake, also: the refused object sent reads only.
    let env = env_at(None).await;
    env.cluster(true);
    env.collection("first", json!({"cluster": {"name": "demo"}, "collectionName": "shared", "vectors": {"size": 4, "distance": "Dot"}}));
    env.sync("first").await;
    env.collection("second", json!({"cluster": {"name": "demo"}, "collectionName": "shared", "vectors": {"size": 4, "distance": "Dot"}, "hnswConfig": {"m": 48}}));
    env.qdrant.clear_requests();
    env.sync("second").await;
    assert_eq!(env.qdrant_writes(), Vec::<String>::new());
    assert_eq!(
        env.qdrant_reads(),
        ["/collections/shared"],
        "one read, in the sync after the finalizer pass"
    );
}

/// A real Qdrant for a controller test: `QDRANT_URL` (with `QDRANT_API_KEY`) when set, else
/// a single node started from the test binary (stopped when the returned node drops), else
/// `None` with the skip line printed.
async fn real_target(test: &str) -> Option<((Url, String), Option<SingleNode>)> {
    let env = |name: &str| std::env::var(name).ok().filter(|v| !v.trim().is_empty());
    if let Some(url) = env("QDRANT_URL") {
        let url = Url::parse(url.trim()).unwrap();
        return Some(((url, env("QDRANT_API_KEY").unwrap_or_default()), None));
    }
    let Some(binary) = real_qdrant::binary() else {
        println!("{}", real_qdrant::skip_line(test));
        return None;
    };
    let node = SingleNode::start(
        &binary,
        SingleNodeOptions {
            api_key: Some(KEY.into()),
            read_only_api_key: None,
            cluster: false,
        },
    )
    .await
    .unwrap_or_else(|e| panic!("[{test}] starting {}: {e}", binary.display()));
    Some(((node.url.clone(), KEY.to_string()), Some(node)))
}

#[tokio::test]
async fn a_second_object_on_the_same_collection_is_refused_on_a_real_qdrant() {
    let test = "a_second_object_on_the_same_collection_is_refused_on_a_real_qdrant";
    let Some((target, _node)) = real_target(test).await else {
        return;
    };
    println!("[{test}] running against the REAL Qdrant at {}", target.0);
    let env = env_at(Some(target)).await;
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    two_objects_one_collection(&env, &format!("op-owner-{}-{nanos}", std::process::id())).await;
    assert!(env.qdrant.requests().is_empty(), "the fake stayed idle");
}

#[tokio::test]
async fn a_connection_edited_to_a_collection_owned_elsewhere_is_refused() {
    let env = env().await;
    // A second Qdrant ("q2"), reached by its own URL; "q1" is the environment's fake.
    let q2 = FakeQdrant::start(FakeQdrantOptions {
        api_key: Some(KEY.into()),
        ..FakeQdrantOptions::default()
    })
    .await;
    let mut ctx = Context::new(env.fake.client(), Arc::new(Metrics::new("test")));
    let (q1_url, q2_url) = (env.qdrant.url(), q2.url());
    ctx.rewrite = Some(Arc::new(move |u: &Url| {
        if u.host_str() == Some("q2.example") {
            q2_url.clone()
        } else {
            q1_url.clone()
        }
    }));
    let ctx = Arc::new(ctx);
    let run = |name: &'static str| {
        let ctx = ctx.clone();
        let obj = env.stored(name).unwrap();
        async move { reconcile(Arc::new(obj), ctx).await.unwrap() }
    };
    let on = |url: &str| {
        json!({"connection": {"url": url, "apiKeySecretRef": {"name": "demo-api-key", "key": "api-key"}},
               "collectionName": "docs", "vectors": {"size": 4, "distance": "Dot"}, "deletionPolicy": "Delete"})
    };
    env.collection("theirs", on("http://q2.example:6333"));
    env.collection("ours", on("http://q1.example:6333"));
    for name in ["theirs", "theirs", "ours", "ours"] {
        run(name).await;
    }
    assert!(env.qdrant.collection("docs").is_some() && q2.collection("docs").is_some());

    env.edit(API, "qdrantcollections", "ours", |q| {
        q["spec"]["connection"]["url"] = json!("http://q2.example:6333");
        q["spec"]["hnswConfig"] = json!({"m": 48});
    });
    q2.clear_requests();
    run("ours").await;
    let ready = env.condition("ours", types::READY);
    assert_eq!(ready.reason, "OwnedByAnotherObject");
    let theirs = format!("{NS}/theirs (uid {})", env.uid("theirs"));
    assert!(ready.message.contains(&theirs), "{}", ready.message);
    assert!(
        q2.requests().iter().all(|(m, _)| m == http::Method::GET),
        "no write to the other object's collection: {:?}",
        q2.requests()
    );

    env.delete("ours").await;
    run("ours").await;
    assert!(env.stored("ours").is_none(), "finalizer removed");
    assert!(
        q2.collection("docs").is_some(),
        "the other object's collection stays"
    );
    assert!(
        q2.requests().iter().all(|(m, _)| m == http::Method::GET),
        "{:?}",
        q2.requests()
    );
}

#[tokio::test]
async fn retain_releases_the_mark_so_a_new_object_adopts_the_collection() {
    let env = env().await;
    env.cluster(true);
    let app = env.qdrant_client();
    env.collection("old", json!({"cluster": {"name": "demo"}, "collectionName": "kept", "vectors": {"size": 4, "distance": "Dot"},
        "payloadIndexes": [{"field": "year", "schema": "Integer"}]}));
    env.sync("old").await;
    env.delete("old").await;
    env.reconcile("old").await.unwrap();
    assert!(env.stored("old").is_none());
    let info = app.collection_info("kept").await.unwrap().unwrap();
    assert_eq!(
        info.config["metadata"],
        json!({}),
        "owner mark and record removed"
    );
    assert_eq!(
        index_fields(&app, "kept").await,
        ["year"],
        "Retain keeps the data"
    );
    assert!(env.has_event("CollectionRetained", "old", "owner mark was removed"));

    // An object re-created under the same name is another object (another uid): it adopts.
    env.collection("old", json!({"cluster": {"name": "demo"}, "collectionName": "kept", "vectors": {"size": 4, "distance": "Dot"}}));
    env.sync("old").await;
    assert_eq!(
        env.condition("old", types::READY).status,
        ConditionStatus::True
    );
    assert_eq!(owner_mark(&app, "kept").await["uid"], json!(env.uid("old")));
    assert_eq!(
        index_fields(&app, "kept").await,
        ["year"],
        "not declared by the new object: kept"
    );
}

#[tokio::test]
async fn delete_leaves_a_collection_it_never_marked() {
    let env = env().await;
    env.cluster(true);
    let app = env.qdrant_client();
    env.collection(
        "late",
        json!({"cluster": {"name": "demo"}, "collectionName": "appdata",
        "vectors": {"size": 4, "distance": "Dot"}, "deletionPolicy": "Delete"}),
    );
    // The finalizer is added, then (before any sync) an application creates the collection
    // and the object is deleted: it never adopted it, so it does not delete it.
    env.reconcile("late").await.unwrap();
    created_by_an_application(&app, "appdata").await;
    env.delete("late").await;
    env.reconcile("late").await.unwrap();
    assert!(env.stored("late").is_none());
    assert!(app.collection_info("appdata").await.unwrap().is_some());
    assert!(env.has_event("CollectionNotDeleted", "late", "no owner mark"));
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
        env.stored("articles").is_none(),
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
    assert!(env.stored("articles").is_none());
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
    env.remove(API, "qdrantclusters", "demo");
    env.delete("articles").await;
    env.reconcile("articles").await.unwrap();
    assert!(env.stored("articles").is_none());
    assert!(
        env.events()
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
        env.stored("articles").is_some(),
        "finalizer kept while retrying"
    );
    // After the deletion timeout the finalizer goes, with a Warning, and the data stays.
    let mut ctx = Context::new(env.fake.client(), Arc::new(Metrics::new("test")));
    let url = env.qdrant.url();
    ctx.rewrite = Some(Arc::new(move |_| url.clone()));
    ctx.deletion_timeout = Duration::ZERO;
    reconcile(Arc::new(env.stored("articles").unwrap()), Arc::new(ctx))
        .await
        .unwrap();
    assert!(env.stored("articles").is_none());
    assert!(
        env.events()
            .iter()
            .any(|e| e["reason"] == json!("CollectionNotDeleted"))
    );
}

#[tokio::test]
async fn a_wrong_api_key_becomes_a_condition_with_qdrants_message() {
    let env = env().await;
    env.cluster(true);
    env.edit("v1", "secrets", "demo-api-key", |s| {
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
        env.stored("articles").unwrap().status.unwrap().phase,
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
    env.edit(API, "qdrantcollections", "multi", |q| {
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
        env.stored("ext")
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
    env.edit(API, "qdrantcollections", "articles", |q| {
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

// ----- Memory placement (Qdrant 1.19 `memory`) ---------------------------------------------

/// A spec with a placement on every component that has an older equivalent.
fn placed() -> Value {
    json!({
        "cluster": {"name": "demo"},
        "vectors": {"size": 4, "distance": "Dot", "memory": "Cold",
                    "hnsw": {"memory": "Cached"}},
        "sparseVectors": {"text": {"index": {"memory": "Pinned"}}},
        "quantizationConfig": {"scalar": {"type": "Int8", "memory": "Pinned"}},
        "payload": {"memory": "Cached"},
    })
}

/// What `GET /collections/{name}` must show for [`placed`]: on a server that knows `memory`
/// (1.19 on) the placements themselves; before, the deprecated flags they were lowered to.
fn assert_placed(config: &Value, knows_memory: bool) {
    let params = &config["params"];
    if knows_memory {
        assert_eq!(params["vectors"]["memory"], json!("cold"), "{config}");
        assert_eq!(
            params["vectors"]["hnsw_config"]["memory"],
            json!("cached"),
            "{config}"
        );
        assert_eq!(
            params["sparse_vectors"]["text"]["index"]["memory"],
            json!("pinned"),
            "{config}"
        );
        assert_eq!(
            config["quantization_config"]["scalar"]["memory"],
            json!("pinned"),
            "{config}"
        );
        assert_eq!(params["payload"]["memory"], json!("cached"), "{config}");
    } else {
        assert_eq!(params["vectors"]["on_disk"], json!(true), "{config}");
        assert_eq!(
            params["vectors"]["hnsw_config"]["on_disk"],
            json!(false),
            "{config}"
        );
        assert_eq!(
            params["sparse_vectors"]["text"]["index"]["on_disk"],
            json!(false),
            "{config}"
        );
        assert_eq!(
            config["quantization_config"]["scalar"]["always_ram"],
            json!(true),
            "{config}"
        );
        assert_eq!(params["on_disk_payload"], json!(false), "{config}");
        assert!(
            !config.to_string().contains("\"memory\""),
            "no memory key reached a server that ignores it: {config}"
        );
    }
}

/// Creates [`placed`] as `name` in the fake, checks what it holds, then resyncs: the resync
/// must write nothing (the lowered or native placement is what Qdrant reports back).
async fn placed_round_trip(env: &Env, name: &str, knows_memory: bool) {
    env.cluster(true);
    env.collection(name, placed());
    env.sync(name).await;
    let ready = env.condition(name, types::READY);
    assert_eq!(ready.status, ConditionStatus::True, "{ready:?}");
    let config = env.qdrant.collection(name).unwrap()["config"].clone();
    assert_placed(&config, knows_memory);
    let writes = env.qdrant_writes();
    let status = env.stored(name).unwrap().status;
    env.reconcile(name).await.unwrap();
    assert_eq!(env.qdrant_writes(), writes, "the resync wrote");
    assert_eq!(
        env.stored(name).unwrap().status,
        status,
        "the resync changed the status"
    );
}

#[tokio::test]
async fn memory_placements_are_lowered_for_qdrant_1_18_and_converge() {
    let env = env().await;
    placed_round_trip(&env, "placed", false).await;
}

#[tokio::test]
async fn memory_placements_are_sent_as_is_to_qdrant_1_19_and_converge() {
    let env = env_with(None, "1.19.0".into()).await;
    placed_round_trip(&env, "placed", true).await;
    let config = env.qdrant.collection("placed").unwrap()["config"].clone();
    assert!(
        config["params"]["vectors"].get("on_disk").is_none(),
        "no deprecated flag sent: {config}"
    );
}

#[tokio::test]
async fn memory_placements_on_a_real_qdrant_converge() {
    let test = "memory_placements_on_a_real_qdrant_converge";
    let Some((target, _node)) = real_target(test).await else {
        return;
    };
    println!("[{test}] running against the REAL Qdrant at {}", target.0);
    let env = env_at(Some(target)).await;
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    let name = format!("op-placed-{}-{nanos}", std::process::id());
    env.cluster(true);
    env.collection(&name, placed());
    env.sync(&name).await;
    assert_eq!(
        env.condition(&name, types::READY).status,
        ConditionStatus::True,
        "{:?}",
        env.condition(&name, types::READY)
    );
    let client = env.qdrant_client();
    let served = client.version().await.unwrap().version;
    let knows = collection_controller::memory::parse_version(&served)
        .is_some_and(collection_controller::memory::knows_memory);
    let info = client.collection_info(&name).await.unwrap().unwrap();
    println!(
        "[{test}] Qdrant {served}: vectors {}, hnsw {}, sparse index {}, quantization {}, payload on_disk {}",
        info.config["params"]["vectors"],
        info.config["params"]["vectors"]["hnsw_config"],
        info.config["params"]["sparse_vectors"]["text"]["index"],
        info.config["quantization_config"],
        info.config["params"]["on_disk_payload"]
    );
    assert_placed(&info.config, knows);
    // Converged: the diff of the spec (as this server takes it) against what the real server
    // reports back asks for no write, so no resync PATCHes again.
    let spec: api_types::QdrantCollectionSpec = serde_json::from_value(placed()).unwrap();
    let version = collection_controller::memory::parse_version(&served).unwrap();
    let for_server = collection_controller::memory::for_server(&spec, version, &served).unwrap();
    let d = collection_controller::diff::diff(
        &for_server,
        &name,
        &collection_controller::diff::Actual {
            config: &info.config,
            payload_schema: &info.payload_schema,
            aliases: &[],
            declared: &collection_controller::ownership::Declared::default(),
        },
    );
    assert_eq!(d.update, None, "{}", info.config);
    assert!(d.drift.is_empty(), "{:?}", d.drift);
    let status_before = env.stored(&name).unwrap().status;
    env.reconcile(&name).await.unwrap();
    assert_eq!(
        env.stored(&name).unwrap().status,
        status_before,
        "a resync of a converged collection changes nothing"
    );
    client.delete_collection(&name).await.unwrap();
    assert!(env.qdrant.requests().is_empty(), "the fake stayed idle");
}

#[tokio::test]
async fn a_placement_without_an_older_equivalent_is_a_condition_and_writes_nothing() {
    let env = env().await;
    env.cluster(true);
    env.collection(
        "pinned",
        json!({"cluster": {"name": "demo"}, "vectors": {"size": 4, "distance": "Dot", "hnsw": {"memory": "Pinned"}},
               "quantizationConfig": {"binary": {"memory": "Cold"}}}),
    );
    env.sync("pinned").await;
    let ready = env.condition("pinned", types::READY);
    assert_eq!(ready.status, ConditionStatus::False);
    assert_eq!(ready.reason, "NeedsNewerQdrant");
    assert!(
        ready.message.contains("spec.vectors.hnsw.memory: Pinned"),
        "{}",
        ready.message
    );
    assert!(
        ready
            .message
            .contains("spec.quantizationConfig.binary.memory: Cold"),
        "{}",
        ready.message
    );
    assert!(ready.message.contains("1.18.3"), "{}", ready.message);
    assert_eq!(
        env.stored("pinned").unwrap().status.unwrap().phase,
        CollectionPhase::Failed
    );
    assert_eq!(env.qdrant_writes(), Vec::<String>::new(), "nothing written");
    assert_eq!(env.qdrant.collection_names(), Vec::<String>::new());
    assert_eq!(env.events_with_reason("NeedsNewerQdrant").len(), 1);
    env.reconcile("pinned").await.unwrap();
    assert_eq!(
        env.events_with_reason("NeedsNewerQdrant").len(),
        1,
        "warned once"
    );
}

#[tokio::test]
async fn during_a_rolling_upgrade_from_1_18_the_placements_are_lowered() {
    // The server already answers 1.19 (the pod behind the Service is upgraded), but the
    // cluster's pods move from 1.18.3: some peers may still run it.
    let env = env_with(None, "1.19.0".into()).await;
    env.seed_with_status(
        json!({"apiVersion": API, "kind": "QdrantCluster", "metadata": {"name": "demo"}, "spec": {"replicas": 3}}),
        |qc| {
            let generation = qc["metadata"]["generation"].clone();
            json!({
                "phase": "Upgrading",
                "conditions": [{"type": "Ready", "status": "True", "reason": "x", "message": "",
                                "observedGeneration": generation, "lastTransitionTime": "2026-01-01T00:00:00Z"}],
                "endpoints": {"http": "http://demo.search.svc:6333", "grpc": "http://demo.search.svc:6334"},
                "auth": {"apiKeySecretRef": {"name": "demo-api-key", "key": "api-key"}},
                "rollout": {"updateRevision": "demo-2", "updatedReplicas": 1, "fromVersion": "v1.18.3", "toVersion": "v1.19.0", "message": ""},
            })
        },
    );
    env.collection("placed", placed());
    env.sync("placed").await;
    let config = env.qdrant.collection("placed").unwrap()["config"].clone();
    assert_placed(&config, false);
}
