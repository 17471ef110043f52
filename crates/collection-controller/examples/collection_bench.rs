//! `just bench`: sync of N QdrantCollections (default 1,000; env `BENCH_COLLECTIONS`) against
//! the fake Qdrant: time of a full pass, requests to Qdrant and writes to Kubernetes per
//! unchanged collection on a resync (goal: one read, zero writes), peak RSS.
//!
//! The fake API server and the fake Qdrant run in a child process (this binary with
//! `--serve-fakes N`), reached over HTTP on 127.0.0.1, so the peak RSS printed is the
//! controller side's alone. It prints figures; it asserts nothing about time.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;

use api_types::QdrantCollection;
use collection_controller::reconcile::{Context, reconcile};
use kube::Api;
use reconcile_lib::metrics::Metrics;
use serde_json::json;
use testkit::{
    apiserver::FakeApiServer,
    bench::{FakeProcess, peak_rss_kib, reconcile_all, serve_commands},
    qdrant::{FakeQdrant, FakeQdrantOptions},
};

const CONCURRENCY: usize = 16;
const NAMESPACES: usize = 20;
const KEY: &str = "bench-key";

/// Child: one Ready QdrantCluster (with its key Secret) per namespace, `n` collections spread
/// over them, and a fake Qdrant. Prints "<apiserver addr> <qdrant url>"; the command `stats`
/// answers "<k8s writes> <qdrant reads> <qdrant writes>".
async fn serve_fakes(n: usize) {
    let fake = FakeApiServer::new();
    for ns in 0..NAMESPACES {
        let ns = format!("ns-{ns}");
        fake.insert(json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "demo-api-key", "namespace": ns}, "stringData": {"api-key": KEY}}));
        let mut qc = fake.insert(
            json!({"apiVersion": "qdrant.operator.dev/v1alpha1", "kind": "QdrantCluster",
            "metadata": {"name": "demo", "namespace": ns}, "spec": {"replicas": 3}}),
        );
        let generation = qc["metadata"]["generation"].clone();
        qc["status"] = json!({
            "conditions": [{"type": "Ready", "status": "True", "reason": "AllPeersReady", "message": "",
                            "observedGeneration": generation, "lastTransitionTime": "2026-01-01T00:00:00Z"}],
            "endpoints": {"http": format!("http://demo.{ns}.svc:6333"), "grpc": format!("http://demo.{ns}.svc:6334")},
            "auth": {"apiKeySecretRef": {"name": "demo-api-key", "key": "api-key"}},
        });
        fake.insert(qc);
    }
    for i in 0..n {
        fake.insert(json!({
            "apiVersion": "qdrant.operator.dev/v1alpha1", "kind": "QdrantCollection",
            "metadata": {"name": format!("col-{i:04}"), "namespace": format!("ns-{}", i % NAMESPACES)},
            "spec": {"cluster": {"name": "demo"}, "vectors": {"size": 768, "distance": "Cosine"},
                     "replicationFactor": 2, "hnswConfig": {"m": 32},
                     "quantizationConfig": {"scalar": {"type": "Int8", "quantile": 0.99}},
                     "payloadIndexes": [{"field": "category", "schema": "Keyword"}]},
        }));
    }
    let qdrant = FakeQdrant::start(FakeQdrantOptions {
        api_key: Some(KEY.into()),
        ..FakeQdrantOptions::default()
    })
    .await;
    let addr = fake.serve("127.0.0.1:0".parse().unwrap()).await.unwrap();
    println!("{addr} {}", qdrant.url());
    tokio::task::spawn_blocking(move || {
        serve_commands(|_| {
            let requests = qdrant.requests();
            let reads = requests
                .iter()
                .filter(|(m, _)| m == http::Method::GET)
                .count();
            format!(
                "{} {} {}",
                fake.writes().len(),
                reads,
                requests.len() - reads
            )
        })
    })
    .await
    .unwrap();
}

async fn pass(api: &Api<QdrantCollection>, ctx: &Arc<Context>) -> (usize, f64) {
    let (n, failed, secs) = reconcile_all(api, CONCURRENCY, |obj| reconcile(obj, ctx.clone()))
        .await
        .unwrap();
    assert_eq!(failed, 0, "reconcile errors in the benchmark");
    (n, secs)
}

#[tokio::main]
async fn main() {
    reconcile_lib::runtime::install_crypto_provider();
    let args: Vec<String> = std::env::args().collect();
    if args.get(1).map(String::as_str) == Some("--serve-fakes") {
        serve_fakes(args[2].parse().unwrap()).await;
        return;
    }
    let n: usize = std::env::var("BENCH_COLLECTIONS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1000);
    let (mut fakes, line) = FakeProcess::spawn(&["--serve-fakes", &n.to_string()]).unwrap();
    let mut parts = line.split_whitespace();
    let apiserver = parts.next().unwrap().to_string();
    let qdrant_url: url::Url = parts.next().unwrap().parse().unwrap();
    let mut stats = || {
        let answer = fakes.query("stats").unwrap();
        let v: Vec<usize> = answer
            .split_whitespace()
            .map(|x| x.parse().unwrap())
            .collect();
        (v[0], v[1], v[2])
    };

    let client = reconcile_lib::runtime::client_for(kube::Config::new(
        format!("http://{apiserver}").parse().unwrap(),
    ))
    .unwrap();
    let mut ctx = Context::new(client.clone(), Arc::new(Metrics::new("bench")));
    ctx.rewrite = Some(Arc::new(move |_| qdrant_url.clone()));
    let ctx = Arc::new(ctx);
    let api: Api<QdrantCollection> = Api::all(client);
    let rss_start = peak_rss_kib();

    // The first pass adds the finalizer; the second creates the collections.
    let (_, finalizers) = pass(&api, &ctx).await;
    let (count, create) = pass(&api, &ctx).await;
    let (k1, r1, w1) = stats();
    let (_, resync) = pass(&api, &ctx).await;
    let (k2, r2, w2) = stats();

    let per = |x: usize| x as f64 / count as f64;
    println!(
        "collection-controller: {count} QdrantCollections in {NAMESPACES} namespaces, fake API server and fake Qdrant over HTTP on 127.0.0.1 (separate process), concurrency {CONCURRENCY}"
    );
    println!(
        "  first sync (finalizer pass + create pass): {:8.2} s  ({:7.1} collections/s); Qdrant {r1} reads, {w1} writes; Kubernetes {k1} writes",
        finalizers + create,
        count as f64 / (finalizers + create)
    );
    println!(
        "  resync of unchanged collections:           {resync:8.2} s  ({:7.1} collections/s)",
        count as f64 / resync
    );
    println!(
        "    per collection: {:.2} Qdrant reads, {:.2} Qdrant writes, {:.2} Kubernetes writes  [goal: 1 read, 0 writes]",
        per(r2 - r1),
        per(w2 - w1),
        per(k2 - k1)
    );
    println!(
        "  controller peak RSS: {:8.1} MiB  (at start {:.1} MiB)",
        peak_rss_kib() as f64 / 1024.0,
        rss_start as f64 / 1024.0
    );
}
