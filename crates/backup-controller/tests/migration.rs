//! QdrantMigration scenarios against the fake API server and two fake Qdrants (`connection`
//! on both ends, or a QdrantCluster source): a full copy with a catch-up pass and an alias
//! switch, resumed by a fresh controller mid-copy (each batch upserted once per pass); bad
//! specs and an existing target collection as conditions; a QdrantCluster source waited for
//! until Ready. The same copy against real Qdrant servers is in `tests/migration_real.rs`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::{sync::Arc, time::Duration};

use api_types::{
    QdrantMigration,
    conditions::{ConditionStatus, find_condition},
    migration::{MigrationPhase, MigrationStage},
};
use backup_controller::migration;
use common::{Env, migration_point, seed_migration_source};
use reconcile_lib::qdrant::{QdrantClient, QdrantConnection, same_point};
use serde_json::{Value, json};
use testkit::{
    harness::Patience,
    qdrant::{FakeQdrant, FakeQdrantOptions},
};
use url::Url;

const NS: &str = "db";
const API: &str = "qdrant.operator.dev/v1alpha1";
const PATIENCE: Patience = Patience::rounds(2000, Duration::from_millis(1));

struct Fakes {
    source: FakeQdrant,
    target: FakeQdrant,
}

fn client(url: Url) -> QdrantClient {
    QdrantClient::new(&QdrantConnection::new(url)).unwrap()
}

/// Two fake Qdrants; `source.db.svc` (the QdrantCluster `source`'s endpoint, when a test
/// seeds one) is rewritten to the source fake. Two steps per reconcile.
async fn env() -> Env<Fakes> {
    let source = FakeQdrant::start(FakeQdrantOptions::default()).await;
    let target = FakeQdrant::start(FakeQdrantOptions::default()).await;
    let source_url = source.url();
    Env::new(NS, "img", Fakes { source, target }, move |ctx| {
        ctx.wait_requeue = Duration::from_millis(10);
        ctx.migration_steps_per_reconcile = 2;
        let source_url = source_url.clone();
        ctx.rewrite = Some(Arc::new(move |url: &Url| {
            if url.host_str() == Some("source.db.svc") {
                source_url.clone()
            } else {
                url.clone()
            }
        }));
    })
}

impl Env<Fakes> {
    /// Seeds QdrantMigration `name` with `spec`; `method: Stream` unless the spec names one
    /// (these scenarios are about streaming; the snapshot transfer is proven against real
    /// Qdrants in `migration_real.rs`).
    fn migration(&self, name: &str, mut spec: Value) {
        if spec.get("method").is_none() {
            spec["method"] = json!("Stream");
        }
        self.seed(json!({"apiVersion": API, "kind": "QdrantMigration",
            "metadata": {"name": name, "uid": format!("uid-{name}-0123456789")}, "spec": spec}));
    }

    fn ends(&self) -> Value {
        json!({
            "source": {"connection": {"url": self.world.source.url().to_string()}},
            "target": {"connection": {"url": self.world.target.url().to_string()}},
        })
    }

    async fn finish(&self, name: &str) -> QdrantMigration {
        self.finish_migration(name, &self.ctx, PATIENCE)
            .await
            .unwrap_or_else(|m| panic!("migration {name} did not finish: {:?}", m.status))
    }

    /// Requests `method path` the fake `q` served.
    fn served(q: &FakeQdrant, method: &str, path: &str) -> usize {
        q.requests()
            .iter()
            .filter(|(m, p)| m.as_str() == method && p == path)
            .count()
    }
}

fn ready(m: &QdrantMigration) -> (ConditionStatus, String, String) {
    let status = m.status.clone().unwrap_or_default();
    let c = find_condition(&status.conditions, "Ready").expect("a Ready condition");
    (c.status, c.reason.clone(), c.message.clone())
}

#[tokio::test]
async fn copies_verifies_and_switches_the_alias_resuming_after_a_restart() {
    let env = env().await;
    let n = 1005u64;
    let src = client(env.world.source.url());
    let dst = client(env.world.target.url());
    seed_migration_source(&src, "articles", n).await;
    // An alias the cutover moves: it points at the old collection on the target.
    dst.create_collection("articles-v1", &common::migration_collection())
        .await
        .unwrap();
    dst.update_aliases(&[
        json!({"create_alias": {"collection_name": "articles-v1", "alias_name": "articles-live"}}),
    ])
    .await
    .unwrap();
    let mut spec = env.ends();
    spec["collections"] = json!([{"name": "articles", "targetName": "articles-v2"}]);
    spec["batchSize"] = json!(100);
    spec["catchUp"] = json!(true);
    spec["verify"] = json!({"sampleSize": 50});
    spec["aliasSwitch"] = json!({"alias": "articles-live"});
    env.migration("m", spec);

    // The first controller: three reconciles (the plan; the start and a batch; two batches).
    let first = env.ctx.clone();
    for _ in 0..3 {
        let m = Arc::new(env.current::<QdrantMigration>("m"));
        migration::reconcile(m, first.clone()).await.unwrap();
    }
    let mid = env.current::<QdrantMigration>("m").status.unwrap();
    let c = &mid.collections[0];
    println!(
        "before the restart: stage {:?}, {} of {:?} points copied, cursor {:?}, {} batches",
        c.stage, c.points_copied, c.points_total, c.offset, c.batches
    );
    assert_eq!(mid.phase, MigrationPhase::Running);
    assert_eq!(c.stage, MigrationStage::Copying);
    assert_eq!(c.points_total, Some(n));
    assert_eq!(c.points_copied, 300, "three batches of 100");
    assert_eq!(c.offset.as_deref(), Some("300"), "the next point to read");
    assert_eq!(mid.progress.as_deref(), Some("300/1005"));
    assert_eq!(
        Env::served(&env.world.target, "PUT", "/collections/articles-v2/points"),
        3
    );

    // A fresh controller process (a restart, or a new leader) resumes at the cursor.
    let second = env.controller();
    let done = env
        .finish_migration("m", &second, PATIENCE)
        .await
        .unwrap_or_else(|m| panic!("did not finish: {:?}", m.status));
    let status = done.status.clone().unwrap();
    let c = &status.collections[0];
    println!(
        "after: phase {:?}, {} copied + {} again in the catch-up pass, {} batches, counts {:?}/{:?}, {:?} sampled, {:?} mismatches",
        status.phase,
        c.points_copied,
        c.catch_up_points,
        c.batches,
        c.verified_source_count,
        c.verified_target_count,
        c.sampled_points,
        c.sample_mismatches
    );
    assert_eq!(
        status.phase,
        MigrationPhase::Succeeded,
        "{:?}",
        status.message
    );
    assert_eq!(ready(&done).0, ConditionStatus::True);
    assert_eq!(c.stage, MigrationStage::Succeeded);
    assert_eq!((c.points_copied, c.catch_up_points), (n, n));
    // Each pass: ceil(1005 / 100) = 11 batches, each upserted exactly once (none redone after
    // the restart).
    assert_eq!(c.batches, 22);
    assert_eq!(
        Env::served(&env.world.target, "PUT", "/collections/articles-v2/points"),
        22
    );
    assert_eq!(
        Env::served(
            &env.world.source,
            "POST",
            "/collections/articles/points/scroll"
        ),
        22
    );
    assert_eq!(
        (c.verified_source_count, c.verified_target_count),
        (Some(n), Some(n))
    );
    assert_eq!((c.sampled_points, c.sample_mismatches), (Some(50), Some(0)));
    assert_eq!(c.offset, None);
    // Every point identical on both sides, the UUID ids included.
    let source_points = env.world.source.stored_points("articles");
    let target_points = env.world.target.stored_points("articles-v2");
    assert_eq!(source_points.len(), target_points.len());
    for ((sid, sp), (tid, tp)) in source_points.iter().zip(&target_points) {
        assert_eq!(sid, tid);
        assert!(same_point(sp, tp), "{sp} vs {tp}");
    }
    assert_eq!(
        target_points.last().unwrap().0,
        migration_point(n - 1, n)["id"]
    );
    // The target collection has the source's vectors and the migration's mark.
    let created = env.world.target.collection("articles-v2").unwrap();
    assert_eq!(
        created["config"]["params"]["vectors"],
        env.world.source.collection("articles").unwrap()["config"]["params"]["vectors"]
    );
    assert_eq!(
        created["config"]["metadata"]["qdrant.operator.dev/migration"],
        json!("uid-m-0123456789")
    );
    // The cutover: the alias moved; the old collection is still there.
    assert!(
        env.world
            .target
            .aliases()
            .contains(&("articles-live".to_string(), "articles-v2".to_string()))
    );
    assert!(env.world.target.collection("articles-v1").is_some());
    assert_eq!(status.switched_alias.as_deref(), Some("articles-live"));
    assert!(env.has_event("Succeeded", "m", "1005 points"));
    // Finished: another reconcile touches neither Qdrant nor the object.
    let (before_s, before_t) = (
        env.world.source.requests().len(),
        env.world.target.requests().len(),
    );
    let writes = env.writes_excluding_events();
    migration::reconcile(Arc::new(done), second).await.unwrap();
    assert_eq!(env.world.source.requests().len(), before_s);
    assert_eq!(env.world.target.requests().len(), before_t);
    assert_eq!(env.writes_excluding_events(), writes);
}

#[tokio::test]
async fn every_collection_of_the_source_is_copied_when_none_is_listed() {
    let env = env().await;
    let src = client(env.world.source.url());
    seed_migration_source(&src, "a", 30).await;
    seed_migration_source(&src, "b", 7).await;
    let mut spec = env.ends();
    spec["batchSize"] = json!(10);
    env.migration("all", spec);
    let done = env.finish("all").await;
    let status = done.status.unwrap();
    assert_eq!(
        status.phase,
        MigrationPhase::Succeeded,
        "{:?}",
        status.message
    );
    let names: Vec<_> = status
        .collections
        .iter()
        .map(|c| c.target_name.as_str())
        .collect();
    assert_eq!(names, ["a", "b"]);
    assert_eq!(status.progress.as_deref(), Some("37/37"));
    for (name, n) in [("a", 30), ("b", 7)] {
        assert_eq!(env.world.target.stored_points(name).len(), n);
    }
}

#[tokio::test]
async fn bad_specs_fail_with_a_condition_naming_the_field() {
    let env = env().await;
    // The same Qdrant on both ends without new names (the schema cannot see this).
    let mut same = env.ends();
    same["target"] = same["source"].clone();
    env.migration("same", same);
    // A batch size the schema would refuse (the fake API server does not check schemas).
    let mut zero = env.ends();
    zero["batchSize"] = json!(0);
    env.migration("zero", zero);
    for (name, field) in [
        ("same", "spec.target: is the same Qdrant"),
        ("zero", "spec.batchSize"),
    ] {
        let m = env.finish(name).await;
        assert_eq!(m.status.as_ref().unwrap().phase, MigrationPhase::Failed);
        let (status, reason, message) = ready(&m);
        assert_eq!(
            (status, reason.as_str()),
            (ConditionStatus::False, "InvalidSpec")
        );
        assert!(message.contains(field), "{name}: {message}");
        assert!(env.has_event("InvalidSpec", name, field));
    }
    // Nothing was asked of either Qdrant.
    assert!(env.world.source.requests().is_empty());
    assert!(env.world.target.requests().is_empty());
}

#[tokio::test]
async fn snapshot_is_refused_when_a_peer_does_not_answer_and_auto_streams_instead() {
    let env = env().await;
    let src = client(env.world.source.url());
    let dst = client(env.world.target.url());
    seed_migration_source(&src, "articles", 20).await;
    // The fakes report peers under in-cluster names that do not resolve here.
    let mut spec = env.ends();
    spec["collections"] = json!([{"name": "articles"}]);
    spec["method"] = json!("Snapshot");
    env.migration("by-snapshot", spec.clone());
    let m = env.finish("by-snapshot").await;
    let (_, reason, message) = ready(&m);
    assert_eq!(m.status.unwrap().phase, MigrationPhase::Failed);
    assert_eq!(reason, "SnapshotNotPossible", "{message}");
    assert!(message.contains("does not answer"), "{message}");
    assert!(
        dst.collection_info("articles").await.unwrap().is_none(),
        "refused before the target was touched"
    );

    spec["method"] = json!("Auto");
    spec["collections"] = json!([{"name": "articles", "targetName": "articles-auto"}]);
    env.migration("auto", spec);
    let m = env.finish("auto").await;
    let status = m.status.unwrap();
    assert_eq!(status.phase, MigrationPhase::Succeeded);
    let c = &status.collections[0];
    assert_eq!(
        c.method,
        Some(api_types::migration::MigrationMethodUsed::Stream)
    );
    assert_eq!(dst.count_points("articles-auto", true).await.unwrap(), 20);
}

#[tokio::test]
async fn an_existing_target_collection_is_left_alone_and_a_missing_source_fails() {
    let env = env().await;
    let src = client(env.world.source.url());
    let dst = client(env.world.target.url());
    seed_migration_source(&src, "articles", 20).await;
    dst.create_collection("articles", &common::migration_collection())
        .await
        .unwrap();
    let mut spec = env.ends();
    spec["collections"] = json!([{"name": "articles"}]);
    env.migration("exists", spec);
    let m = env.finish("exists").await;
    let (_, reason, message) = ready(&m);
    assert_eq!(reason, "CollectionExists", "{message}");
    assert!(
        message.contains("articles already exists on the target"),
        "{message}"
    );
    assert_eq!(
        env.world.target.stored_points("articles").len(),
        0,
        "nothing written"
    );
    assert_eq!(
        Env::served(&env.world.target, "PUT", "/collections/articles/points"),
        0
    );

    let mut spec = env.ends();
    spec["collections"] = json!([{"name": "nope"}]);
    env.migration("missing", spec);
    let m = env.finish("missing").await;
    let (_, reason, message) = ready(&m);
    assert_eq!(reason, "CollectionNotFound");
    assert!(
        message.contains("nope (spec.collections) does not exist on the source"),
        "{message}"
    );
    let c = &m.status.unwrap().collections[0];
    assert_eq!(c.stage, MigrationStage::Failed);
}

#[tokio::test]
async fn a_cluster_source_is_waited_for_until_ready() {
    let env = env().await;
    let src = client(env.world.source.url());
    seed_migration_source(&src, "articles", 25).await;
    env.seed(json!({"apiVersion": API, "kind": "QdrantCluster",
        "metadata": {"name": "source"}, "spec": {"replicas": 1}}));
    let spec = json!({
        "source": {"cluster": {"name": "source"}},
        "target": {"connection": {"url": env.world.target.url().to_string()}},
        "collections": [{"name": "articles"}],
        "batchSize": 10,
    });
    env.migration("from-cluster", spec);
    let seeded = env.world.source.requests().len();
    for _ in 0..3 {
        let m = Arc::new(env.current::<QdrantMigration>("from-cluster"));
        migration::reconcile(m, env.ctx.clone()).await.unwrap();
    }
    let m = env.current::<QdrantMigration>("from-cluster");
    assert_eq!(m.status.as_ref().unwrap().phase, MigrationPhase::Pending);
    let (status, reason, message) = ready(&m);
    assert_eq!(
        (status, reason.as_str()),
        (ConditionStatus::False, "ClusterNotReady")
    );
    assert!(
        message.starts_with("spec.source: waiting for QdrantCluster source"),
        "{message}"
    );
    assert_eq!(
        env.world.source.requests().len(),
        seeded,
        "nothing asked of the source"
    );
    assert!(env.world.target.requests().is_empty());
    // The cluster becomes Ready for its generation, with its endpoint in status.
    env.edit(API, "qdrantclusters", "source", |qc| {
        let generation = qc["metadata"]["generation"].clone();
        qc["status"] = json!({
            "phase": "Running",
            "conditions": [{"type": "Ready", "status": "True", "reason": "x", "message": "",
                            "observedGeneration": generation, "lastTransitionTime": "2026-01-01T00:00:00Z"}],
            "endpoints": {"http": "http://source.db.svc:6333", "grpc": "http://source.db.svc:6334"},
        });
    });
    let done = env.finish("from-cluster").await;
    let status = done.status.unwrap();
    assert_eq!(
        status.phase,
        MigrationPhase::Succeeded,
        "{:?}",
        status.message
    );
    assert_eq!(env.world.target.stored_points("articles").len(), 25);
}

#[tokio::test]
async fn a_paused_migration_sends_nothing_until_the_annotation_goes() {
    let env = env().await;
    let src = client(env.world.source.url());
    seed_migration_source(&src, "articles", 12).await;
    let mut spec = env.ends();
    spec["collections"] = json!([{"name": "articles"}]);
    env.seed(json!({"apiVersion": API, "kind": "QdrantMigration",
        "metadata": {"name": "held", "uid": "uid-held-0123456789",
                     "annotations": {"qdrant.operator.dev/paused": "true"}},
        "spec": spec}));
    let seeded = env.world.source.requests().len();
    for _ in 0..3 {
        let m = Arc::new(env.current::<QdrantMigration>("held"));
        migration::reconcile(m, env.ctx.clone()).await.unwrap();
    }
    let m = env.current::<QdrantMigration>("held");
    let status = m.status.unwrap();
    let paused = find_condition(&status.conditions, "Paused").unwrap();
    assert_eq!(
        (paused.status, paused.reason.as_str()),
        (ConditionStatus::True, "PauseAnnotationSet")
    );
    assert_eq!(status.phase, MigrationPhase::Pending);
    assert_eq!(env.world.source.requests().len(), seeded);
    assert!(env.world.target.requests().is_empty());
    env.edit(API, "qdrantmigrations", "held", |m| {
        m["metadata"]["annotations"] = json!({});
    });
    let done = env.finish("held").await;
    let status = done.status.unwrap();
    assert_eq!(
        status.phase,
        MigrationPhase::Succeeded,
        "{:?}",
        status.message
    );
    let paused = find_condition(&status.conditions, "Paused").unwrap();
    assert_eq!(paused.status, ConditionStatus::False);
    assert_eq!(env.world.target.stored_points("articles").len(), 12);
}
