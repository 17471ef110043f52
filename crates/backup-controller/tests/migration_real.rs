//! The QdrantMigration real-peer scenario: two real single-node Qdrant 1.18.3 servers
//! (`testkit::real_qdrant`, the binary of `../shared/qdrant/`), the source with an API key
//! read from a Secret; a QdrantMigration with `connection` on both ends through the fake API
//! server, reconciled until Succeeded with a fresh controller taking over mid-copy. Asserts
//! exact counts equal on both sides, every point identical (vectors and payload, read back by
//! id), and — from each server's own request telemetry (`GET /telemetry`) — that every batch
//! was scrolled and upserted exactly once. Prints the counts. Without the binary it prints a
//! SKIP line.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::{sync::Arc, time::Duration};

use api_types::{
    QdrantMigration,
    migration::{MigrationMethodUsed, MigrationPhase, MigrationStage},
};
use backup_controller::migration;
use common::{Env, seed_migration_source};
use reconcile_lib::qdrant::{QdrantClient, same_point};
use serde_json::{Value, json};
use testkit::{
    harness::Patience,
    real_qdrant::{self, SingleNode, SingleNodeOptions},
};

const NS: &str = "db";
const API: &str = "qdrant.operator.dev/v1alpha1";
const SOURCE_KEY: &str = "source-read-write-key";

/// Requests `route` answered with 200, from the server's REST telemetry (Qdrant counts each
/// route by its pattern, e.g. `PUT /collections/{collection_name}/points`).
async fn served(node: &SingleNode, key: Option<&str>, route: &str) -> u64 {
    let mut req = reqwest::Client::new().get(node.url.join("telemetry").unwrap());
    if let Some(key) = key {
        req = req.header("api-key", key);
    }
    let body: Value = req.send().await.unwrap().json().await.unwrap();
    body["result"]["requests"]["rest"]["responses"][route]["200"]["count"]
        .as_u64()
        .unwrap_or(0)
}

/// Seeds the source's key Secret and QdrantMigration `name` copying `articles` from `source`
/// (with [`SOURCE_KEY`]) into `articles-copy` on `target`, 200 points sampled, plus the fields
/// of `extra` (e.g. `method`).
fn seed_articles_copy(
    env: &Env<()>,
    name: &str,
    (source, target): (&SingleNode, &SingleNode),
    extra: Value,
) {
    env.seed(
        json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "source-key"},
        "stringData": {"api-key": SOURCE_KEY}}),
    );
    let mut spec = json!({
        "source": {"connection": {"url": source.url.to_string(),
                                  "apiKeySecretRef": {"name": "source-key", "key": "api-key"}}},
        "target": {"connection": {"url": target.url.to_string()}},
        "collections": [{"name": "articles", "targetName": "articles-copy"}],
        "verify": {"sampleSize": 200},
    });
    for (k, v) in extra.as_object().into_iter().flatten() {
        spec[k] = v.clone();
    }
    env.seed(json!({"apiVersion": API, "kind": "QdrantMigration",
        "metadata": {"name": name, "uid": format!("uid-{name}-0123456789")}, "spec": spec}));
}

#[tokio::test]
async fn migration_between_real_qdrants_copies_every_point_once_and_resumes_after_a_restart() {
    let test = "migration_between_real_qdrants_copies_every_point_once_and_resumes_after_a_restart";
    let Some(binary) = real_qdrant::binary() else {
        println!("{}", real_qdrant::skip_line(test));
        return;
    };
    reconcile_lib::qdrant::ensure_default_crypto_provider();
    let source = SingleNode::start(
        &binary,
        SingleNodeOptions {
            api_key: Some(SOURCE_KEY.into()),
            ..SingleNodeOptions::default()
        },
    )
    .await
    .unwrap();
    let target = SingleNode::start(&binary, SingleNodeOptions::default())
        .await
        .unwrap();
    let src = QdrantClient::new(&source.connection()).unwrap();
    let dst = QdrantClient::new(&target.connection()).unwrap();
    let n = 3000u64;
    seed_migration_source(&src, "articles", n).await;
    src.create_payload_index("articles", "tags", &json!("keyword"))
        .await
        .unwrap();
    src.create_payload_index(
        "articles",
        "n",
        &json!({"type": "integer", "lookup": false, "range": true}),
    )
    .await
    .unwrap();
    let before = src.count_points("articles", true).await.unwrap();
    println!("[{test}] source {}: {before} points (exact)", source.url);
    assert_eq!(before, n);

    let env: Env<()> = Env::new(NS, "img", (), |ctx| {
        ctx.wait_requeue = Duration::from_millis(50);
        ctx.migration_steps_per_reconcile = 3;
    });
    seed_articles_copy(
        &env,
        "to-new",
        (&source, &target),
        json!({"method": "Stream", "batchSize": 256, "aliasSwitch": {"alias": "articles-live"}}),
    );

    // The first controller process: a few reconciles, then it is gone.
    for _ in 0..3 {
        let m = Arc::new(env.current::<QdrantMigration>("to-new"));
        migration::reconcile(m, env.ctx.clone()).await.unwrap();
    }
    let mid = env.current::<QdrantMigration>("to-new").status.unwrap();
    let c = &mid.collections[0];
    let mid_target = dst.count_points("articles-copy", true).await.unwrap();
    println!(
        "[{test}] before the restart: {} of {:?} copied, cursor {:?}, {} batches; target holds {mid_target}",
        c.points_copied, c.points_total, c.offset, c.batches
    );
    assert_eq!(c.stage, MigrationStage::Copying);
    // The plan, then the start and 2 batches, then 3 batches: 5 batches of 256.
    assert_eq!((c.batches, c.points_copied), (5, 5 * 256));
    assert_eq!(
        mid_target, c.points_copied,
        "the cursor is what the target holds"
    );
    assert_eq!(c.offset.as_deref(), Some("1280"));

    // A new controller process resumes at the recorded cursor.
    let second = env.controller();
    let done = env
        .finish_migration(
            "to-new",
            &second,
            Patience::timeout(Duration::from_secs(300), Duration::from_millis(10)),
        )
        .await
        .unwrap_or_else(|m| panic!("did not finish: {:?}", m.status));
    let status = done.status.clone().unwrap();
    let c = &status.collections[0];
    assert_eq!(
        status.phase,
        MigrationPhase::Succeeded,
        "{:?}",
        status.message
    );
    let (source_after, target_after) = (
        src.count_points("articles", true).await.unwrap(),
        dst.count_points("articles-copy", true).await.unwrap(),
    );
    println!(
        "[{test}] after: phase {:?}; exact counts: source {source_after}, target {target_after}; status: {} copied in {} batches, verified {:?}/{:?}, {:?} sampled, {:?} mismatches; {}",
        status.phase,
        c.points_copied,
        c.batches,
        c.verified_source_count,
        c.verified_target_count,
        c.sampled_points,
        c.sample_mismatches,
        status.message.clone().unwrap_or_default()
    );
    assert_eq!((source_after, target_after), (n, n));
    assert_eq!(
        (c.verified_source_count, c.verified_target_count),
        (Some(n), Some(n))
    );
    assert_eq!(
        (c.sampled_points, c.sample_mismatches),
        (Some(200), Some(0))
    );
    // ceil(3000 / 256) = 12 batches: each scrolled and upserted once, before and after the
    // restart together (the servers' own counts).
    assert_eq!(c.batches, 12);
    let scrolls = served(
        &source,
        Some(SOURCE_KEY),
        "POST /collections/{collection_name}/points/scroll",
    )
    .await;
    let upserts = served(&target, None, "PUT /collections/{collection_name}/points").await;
    println!("[{test}] source served {scrolls} scrolls, target {upserts} upserts");
    assert_eq!((scrolls, upserts), (12, 12));
    // Every point identical, read back by id from both servers.
    let ids: Vec<Value> = (0..n)
        .map(|i| common::migration_point(i, n)["id"].clone())
        .collect();
    let mut compared = 0;
    for chunk in ids.chunks(500) {
        let a = src.retrieve_points("articles", chunk).await.unwrap();
        let b = dst.retrieve_points("articles-copy", chunk).await.unwrap();
        assert_eq!((a.len(), b.len()), (chunk.len(), chunk.len()));
        for p in &a {
            let q = b.iter().find(|q| q["id"] == p["id"]).unwrap();
            assert!(same_point(p, q), "{p} vs {q}");
            compared += 1;
        }
    }
    println!("[{test}] {compared} points compared by id: identical");
    // The copy has the source's vectors; the alias on the target points at it.
    let (s_info, t_info) = (
        src.collection_info("articles").await.unwrap().unwrap(),
        dst.collection_info("articles-copy").await.unwrap().unwrap(),
    );
    assert_eq!(
        s_info.config["params"]["vectors"],
        t_info.config["params"]["vectors"]
    );
    assert_eq!(
        s_info.config["params"]["sparse_vectors"],
        t_info.config["params"]["sparse_vectors"]
    );
    // The payload indexes too, with their parameters (their point counts are the servers').
    let indexes = |schema: &std::collections::BTreeMap<String, Value>| {
        schema
            .iter()
            .map(|(f, i)| (f.clone(), i["data_type"].clone(), i["params"].clone()))
            .collect::<Vec<_>>()
    };
    println!(
        "[{test}] payload indexes: source {:?}, target {:?}",
        indexes(&s_info.payload_schema),
        indexes(&t_info.payload_schema)
    );
    assert_eq!(s_info.payload_schema.len(), 2);
    assert_eq!(
        indexes(&s_info.payload_schema),
        indexes(&t_info.payload_schema)
    );
    let aliases = dst.list_aliases().await.unwrap();
    assert!(
        aliases
            .iter()
            .any(|a| a.alias_name == "articles-live" && a.collection_name == "articles-copy"),
        "{aliases:?}"
    );
    // The source was only read.
    assert_eq!(
        served(
            &source,
            Some(SOURCE_KEY),
            "PUT /collections/{collection_name}/points"
        )
        .await,
        6,
        "the test's own 6 seeding batches"
    );
}

/// `method: Auto` between two real Qdrants of the same version in cluster mode copies by shard
/// snapshots: each of 3 shards is snapshotted on the source (behind an API key), recovered by
/// the target from the source's snapshot URL with that key, and deleted from the source; no
/// point is scrolled or upserted by the controller (the servers' own telemetry), the counts
/// and 200 sampled points agree, the payload index is there, and no snapshot is left on the
/// source.
#[tokio::test]
async fn auto_migration_between_real_qdrants_of_one_version_copies_by_shard_snapshots() {
    let test = "auto_migration_between_real_qdrants_copies_by_shard_snapshots";
    let Some(binary) = real_qdrant::binary() else {
        println!("{}", real_qdrant::skip_line(test));
        return;
    };
    reconcile_lib::qdrant::ensure_default_crypto_provider();
    let cluster = |api_key: Option<String>| SingleNodeOptions {
        api_key,
        cluster: true,
        ..SingleNodeOptions::default()
    };
    let source = SingleNode::start(&binary, cluster(Some(SOURCE_KEY.into())))
        .await
        .unwrap();
    let target = SingleNode::start(&binary, cluster(None)).await.unwrap();
    let src = QdrantClient::new(&source.connection()).unwrap();
    let dst = QdrantClient::new(&target.connection()).unwrap();
    let n = 2000u64;
    let mut body = common::migration_collection();
    body["shard_number"] = json!(3);
    src.create_collection("articles", &body).await.unwrap();
    let points: Vec<Value> = (0..n).map(|i| common::migration_point(i, n)).collect();
    for batch in points.chunks(500) {
        src.upsert_points("articles", batch).await.unwrap();
    }
    src.create_payload_index("articles", "tags", &json!("keyword"))
        .await
        .unwrap();
    let before = src.count_points("articles", true).await.unwrap();
    assert_eq!(before, n);

    let env: Env<()> = Env::new(NS, "img", (), |ctx| {
        ctx.wait_requeue = Duration::from_millis(200);
    });
    seed_articles_copy(&env, "by-snapshot", (&source, &target), json!({}));
    let done = env
        .finish_migration(
            "by-snapshot",
            &env.ctx,
            Patience::timeout(Duration::from_secs(300), Duration::from_millis(10)),
        )
        .await
        .unwrap_or_else(|m| panic!("did not finish: {:?}", m.status));
    let status = done.status.clone().unwrap();
    let c = &status.collections[0];
    let after = dst.count_points("articles-copy", true).await.unwrap();
    println!(
        "[{test}] phase {:?}, method {:?}, shards {}/{:?}; exact counts: source {before}, target {after}; {:?} sampled, {:?} mismatches; {}",
        status.phase,
        c.method,
        c.shards_copied,
        c.shards_total,
        c.sampled_points,
        c.sample_mismatches,
        c.message.clone().unwrap_or_default()
    );
    assert_eq!(
        status.phase,
        MigrationPhase::Succeeded,
        "{:?}",
        status.message
    );
    assert_eq!(c.method, Some(MigrationMethodUsed::Snapshot));
    assert_eq!((c.shards_copied, c.shards_total), (3, Some(3)));
    assert_eq!(after, n);
    assert_eq!(
        (c.sampled_points, c.sample_mismatches),
        (Some(200), Some(0))
    );
    let scrolls = served(
        &source,
        Some(SOURCE_KEY),
        "POST /collections/{collection_name}/points/scroll",
    )
    .await;
    let upserts = served(&target, None, "PUT /collections/{collection_name}/points").await;
    let recoveries = served(
        &target,
        None,
        "PUT /collections/{collection_name}/shards/{shard}/snapshots/recover",
    )
    .await;
    println!(
        "[{test}] source served {scrolls} scrolls; target {upserts} upserts, {recoveries} shard recoveries"
    );
    assert_eq!((scrolls, upserts, recoveries), (0, 0, 3));
    let info = dst.collection_info("articles-copy").await.unwrap().unwrap();
    assert!(info.payload_schema.contains_key("tags"));
    for shard in 0..3 {
        let left = src.list_shard_snapshots("articles", shard).await.unwrap();
        assert!(
            left.is_empty(),
            "shard {shard}: {left:?} left on the source"
        );
    }
}
