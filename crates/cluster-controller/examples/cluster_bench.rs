//! `just bench`: reconcile throughput, writes of a no-op resync, and peak RSS of the
//! controller, with N QdrantClusters (default 1,000; env `BENCH_CLUSTERS`) in a fake API
//! server.
//!
//! The fake API server runs in a child process (this binary with `--serve-fake N`) and is
//! reached over HTTP on 127.0.0.1, so the peak RSS printed is the controller side's alone: the
//! real kube client and the real reconcile function, as the Controller runs them. It prints
//! figures; it asserts nothing about time.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;

use api_types::QdrantCluster;
use cluster_controller::{context::Context, reconcile::reconcile};
use kube::Api;
use reconcile_lib::metrics::Metrics;
use serde_json::json;
use testkit::{
    apiserver::FakeApiServer,
    bench::{FakeProcess, peak_rss_kib, reconcile_all, serve_commands},
};

const CONCURRENCY: usize = 16;

/// Child: a fake API server seeded with `n` clusters; `writes` answers "<writes> <events>".
async fn serve_fake(n: usize) {
    let fake = FakeApiServer::new();
    for i in 0..n {
        fake.insert(json!({
            "apiVersion": "qdrant.operator.dev/v1alpha1", "kind": "QdrantCluster",
            "metadata": {"name": format!("qc-{i:04}"), "namespace": format!("ns-{}", i % 50)},
            "spec": {"replicas": 3, "persistence": {"size": "5Gi"},
                     "auth": {"apiKey": {"generate": true}, "readOnlyApiKey": {"generate": true}}},
        }));
    }
    let addr = fake.serve("127.0.0.1:0".parse().unwrap()).await.unwrap();
    println!("{addr}");
    tokio::task::spawn_blocking(move || {
        serve_commands(|_| {
            let w = fake.writes();
            format!(
                "{} {}",
                w.len(),
                w.iter().filter(|r| r.path.contains("/events")).count()
            )
        })
    })
    .await
    .unwrap();
}

async fn pass(api: &Api<QdrantCluster>, ctx: &Arc<Context>) -> (usize, f64) {
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
    if args.get(1).map(String::as_str) == Some("--serve-fake") {
        serve_fake(args[2].parse().unwrap()).await;
        return;
    }
    let n: usize = std::env::var("BENCH_CLUSTERS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1000);
    let (mut fakes, addr) = FakeProcess::spawn(&["--serve-fake", &n.to_string()]).unwrap();
    let mut writes = || {
        let answer = fakes.query("writes").unwrap();
        let mut it = answer
            .split_whitespace()
            .map(|x| x.parse::<usize>().unwrap());
        (it.next().unwrap(), it.next().unwrap())
    };

    let client = reconcile_lib::runtime::client_for(kube::Config::new(
        format!("http://{addr}").parse().unwrap(),
    ))
    .unwrap();
    let ctx = Arc::new(Context::new(
        client.clone(),
        Arc::new(Metrics::new("bench")),
    ));
    let api: Api<QdrantCluster> = Api::all(client);
    let rss_start = peak_rss_kib();

    let (count, first) = pass(&api, &ctx).await;
    let (w1, e1) = writes();
    let (_, second) = pass(&api, &ctx).await;
    let (w2, e2) = writes();

    println!(
        "cluster-controller: {count} QdrantClusters, fake API server over HTTP on 127.0.0.1 (separate process), concurrency {CONCURRENCY}"
    );
    println!(
        "  first full reconcile:   {first:8.2} s  ({:7.1} clusters/s), {w1} writes ({e1} of them events)",
        count as f64 / first
    );
    println!(
        "  no-op resync:           {second:8.2} s  ({:7.1} clusters/s), {} writes ({} events)  [goal: 0]",
        count as f64 / second,
        w2 - w1,
        e2 - e1
    );
    println!(
        "  controller peak RSS:    {:8.1} MiB  (at start {:.1} MiB)  [goal: < 30 MiB]",
        peak_rss_kib() as f64 / 1024.0,
        rss_start as f64 / 1024.0
    );
}
