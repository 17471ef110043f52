//! Day-2 scenarios against real Qdrant peers (TESTING.md, layers 3 and 4 together).
//!
//! The real reconcile runs against the fake API server; [`RealCluster`] plays the StatefulSet
//! controller and the kubelet, running the real Qdrant server (`../shared/qdrant/qdrant`) for
//! each pod through the pod's own start script, each peer on its own loopback address under
//! its headless-Service name. The controller reaches the pods with its in-cluster resolver
//! (`<pod>.<cluster>-headless.<ns>.svc`), exactly as in a cluster. Every scenario counts the
//! points with an exact count before and after and prints both; each uses its own namespace,
//! so scenarios may run at once.
//!
//! Without the Qdrant binary each scenario prints a SKIP line and passes.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::{
    ops::Deref,
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use api_types::{QdrantCluster, cluster::ClusterPhase};
use cluster_controller::{
    build::{Names, statefulset::FRESH_STORAGE_MARKER},
    context::Context,
    reconcile::reconcile,
};
use common::Env;
use reconcile_lib::qdrant::{QdrantClient, QdrantConnection};
use serde_json::json;
use testkit::{
    harness::{Harness, Patience, repeat_until},
    real_cluster::RealCluster,
    real_qdrant,
};
use url::Url;

mod common;

/// How long one phase of a scenario may take on a loaded 2-core machine.
const PHASE_TIMEOUT: Duration = Duration::from_secs(240);

/// One scenario's world: the crate's [`Env`] (the fake API server in the scenario's own
/// namespace, a controller, the real peers as its Qdrant side), the scenario's name and clock,
/// and the API key the test's own requests send.
struct Scenario {
    env: Env<RealCluster>,
    test: &'static str,
    started: Instant,
    /// The API key the test's own requests send (`None`: none).
    key: Mutex<Option<String>>,
}

impl Deref for Scenario {
    type Target = Env<RealCluster>;

    fn deref(&self) -> &Env<RealCluster> {
        &self.env
    }
}

impl Scenario {
    /// Creates QdrantCluster `demo` with `spec` in namespace `ns` and its real peers, or `None`
    /// (after the SKIP line) without the Qdrant binary. Every controller of the scenario (as
    /// after a restart or a leader change: no memory but what it observes) gives Qdrant 20 s.
    fn new(test: &'static str, ns: &str, spec: serde_json::Value) -> Option<Self> {
        let _ = rustls::crypto::ring::default_provider().install_default();
        let Some(binary) = real_qdrant::binary() else {
            println!("{}", real_qdrant::skip_line(test));
            return None;
        };
        let harness = Harness::new(ns);
        harness.seed_spec::<QdrantCluster>("demo", spec);
        let peers = RealCluster::start(&harness.fake, ns, "demo", &binary, 4).unwrap();
        Some(Self {
            env: Env::with_harness(harness, peers, |ctx: &mut Context| {
                ctx.qdrant_timeout = Duration::from_secs(20);
            }),
            test,
            started: Instant::now(),
            key: Mutex::new(None),
        })
    }

    fn log(&self, what: &str) {
        println!(
            "[{}] {:>6.1}s {what}",
            self.test,
            self.started.elapsed().as_secs_f64()
        );
    }

    /// Reconciles (with `ctx`) every 250 ms until `done` holds for the stored cluster; panics
    /// after [`PHASE_TIMEOUT`] with the status and the peers' logs.
    async fn drive_with(&self, ctx: &Arc<Context>, what: &str, done: impl Fn(&Self) -> bool) {
        let outcome = repeat_until(
            Patience::timeout(PHASE_TIMEOUT, Duration::from_millis(250)),
            async || {
                if let Err(e) = reconcile(Arc::new(self.qc()), ctx.clone()).await {
                    self.log(&format!("reconcile error (retried): {e}"));
                }
                done(self)
            },
        )
        .await;
        match outcome {
            Ok(took) => self.log(&format!("{what}: done in {:.1}s", took.as_secs_f64())),
            Err(_) => {
                let logs: Vec<String> = (0..4)
                    .map(|i| format!("--- pod {i}\n{}", self.qdrant.log_tail(i, 40)))
                    .collect();
                panic!(
                    "[{}] {what}: not done after {PHASE_TIMEOUT:?}\nstatus: {}\nsts status: {}\npods: {}\n{}",
                    self.test,
                    serde_json::to_string_pretty(&self.qc().status).unwrap(),
                    self.sts()["status"],
                    self.pods_summary(),
                    logs.join("\n")
                );
            }
        }
    }

    async fn drive(&self, what: &str, done: impl Fn(&Self) -> bool) {
        self.drive_with(&self.ctx, what, done).await;
    }

    fn pods_summary(&self) -> String {
        self.list("v1", "pods")
            .iter()
            .map(|p| {
                format!(
                    "{} ready={} restarts={} last={}",
                    p["metadata"]["name"],
                    p["status"]["containerStatuses"][0]["ready"],
                    p["status"]["containerStatuses"][0]["restartCount"],
                    p["status"]["containerStatuses"][0]["lastState"]
                )
            })
            .collect::<Vec<_>>()
            .join("; ")
    }

    fn phase(&self) -> ClusterPhase {
        self.qc().status.map(|s| s.phase).unwrap_or_default()
    }

    /// Running with `n` ready replicas, every pod answering for the current generation.
    fn running_with(&self, n: i32) -> bool {
        let qc = self.qc();
        let Some(st) = qc.status.as_ref() else {
            return false;
        };
        st.phase == ClusterPhase::Running
            && st.ready_replicas == n
            && st.peers.len() == n as usize
            && st.observed_generation == qc.metadata.generation
    }

    fn names(&self) -> Names {
        Names::of(&self.qc())
    }

    /// A connection to pod `ordinal` as the operator makes it (through its DNS name).
    fn pod(&self, ordinal: u32) -> QdrantConnection {
        let url = Url::parse(&self.names().pod_http_url(ordinal)).unwrap();
        QdrantConnection::new(url)
            .with_timeout(Duration::from_secs(30))
            .with_optional_api_key(self.key.lock().unwrap().clone())
    }

    fn client(&self, ordinal: u32) -> QdrantClient {
        QdrantClient::new(&self.pod(ordinal)).unwrap()
    }

    /// Creates `name` with `shards` shards and replication factor `rf` and writes `points`
    /// points; returns the exact count Qdrant then reports.
    async fn collection(&self, name: &str, shards: u32, rf: u32, points: u64) -> u64 {
        self.client(0)
            .create_collection(
                name,
                &json!({"vectors": {"size": 8, "distance": "Cosine"},
                    "shard_number": shards, "replication_factor": rf}),
            )
            .await
            .unwrap();
        real_qdrant::write_points(&self.pod(0), name, 0..points, 8)
            .await
            .unwrap();
        let count = self.count(0, name).await;
        assert_eq!(count, points, "{name}: every written point is counted");
        count
    }

    /// The exact point count of `collection` asked of pod `ordinal`.
    async fn count(&self, ordinal: u32, collection: &str) -> u64 {
        self.client(ordinal)
            .count_points(collection, true)
            .await
            .unwrap()
    }

    /// (shard, peer, state) of every replica of `collection`, from pod `ordinal`'s view.
    async fn replicas(&self, ordinal: u32, collection: &str) -> Vec<(u32, u64, String)> {
        let info = self
            .client(ordinal)
            .collection_cluster_info(collection)
            .await
            .unwrap();
        info.replicas()
            .into_iter()
            .map(|(s, p, st)| (s, p, st.to_owned()))
            .collect()
    }

    /// The peer ids in consensus, from pod `ordinal`.
    async fn consensus(&self, ordinal: u32) -> Vec<u64> {
        let info = self.client(ordinal).cluster_info().await.unwrap();
        info.peers.keys().copied().collect()
    }

    fn peer_ids(&self) -> Vec<(String, u64)> {
        self.qc()
            .status
            .map(|s| s.peers.iter().map(|p| (p.pod.clone(), p.peer_id)).collect())
            .unwrap_or_default()
    }

    /// Every write request (not GET) the pods served, as (method, path, status).
    fn writes(&self) -> Vec<(String, String, u16)> {
        (0..4)
            .flat_map(|i| self.qdrant.requests(i))
            .filter(|(m, _, _)| m != "GET")
            .collect()
    }

    /// Pod `ordinal`'s Qdrant container: (restartCount, lastState.terminated.message).
    fn container(&self, ordinal: u32) -> (u64, String) {
        let pod = self
            .get("v1", "pods", &format!("demo-{ordinal}"))
            .unwrap_or_default();
        let status = &pod["status"]["containerStatuses"][0];
        (
            status["restartCount"].as_u64().unwrap_or(0),
            status["lastState"]["terminated"]["message"]
                .as_str()
                .unwrap_or_default()
                .to_owned(),
        )
    }

    /// (shard, peer) of every `Active` replica of `collection`, sorted, from pod `ordinal`.
    async fn active(&self, ordinal: u32, collection: &str) -> Vec<(u32, u64)> {
        self.client(ordinal)
            .collection_cluster_info(collection)
            .await
            .unwrap()
            .active_replicas()
    }

    async fn up(&self, n: i32) {
        self.drive(&format!("{n} peers Running"), |e| e.running_with(n))
            .await;
    }
}

fn print_counts(test: &str, collection: &str, before: u64, after: u64) {
    println!("[{test}] points of {collection}: before {before}, after {after}");
}

/// Scale-down 3 → 2 with a replication-factor-1 and a replication-factor-2 collection: the
/// leaving peer's replicas move (or, where the other peers already hold the shard, are
/// dropped), the peer leaves consensus, then the pod goes. A fresh controller takes over
/// mid-drain and carries on from what it observes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scale_down_3_to_2_rf1_and_rf2_with_a_controller_restart_mid_drain() {
    let Some(env) = Scenario::new(
        "scale_down_3_to_2",
        "rp-scale-3to2",
        json!({"replicas": 3, "auth": {}}),
    ) else {
        return;
    };
    env.up(3).await;
    let single = env.collection("single", 3, 1, 3000).await;
    let double = env.collection("double", 3, 2, 2000).await;
    let leaving = peer_of(&env, "demo-2");
    assert!(
        env.replicas(0, "single")
            .await
            .iter()
            .any(|(_, p, _)| *p == leaving),
        "the leaving peer holds a shard before"
    );
    let mut on_leaving = 0;
    for name in ["single", "double"] {
        on_leaving += env
            .replicas(0, name)
            .await
            .iter()
            .filter(|(_, p, _)| *p == leaving)
            .count();
    }
    env.edit_spec::<QdrantCluster>("demo", |s| s["replicas"] = json!(2));
    // The first controller issues the first step, then "restarts".
    env.drive("first drain step", |e| e.phase() == ClusterPhase::Scaling)
        .await;
    let fresh = env.controller();
    env.drive_with(&fresh, "drained and shrunk to 2", |e| e.running_with(2))
        .await;
    for (name, before, rf) in [("single", single, 1), ("double", double, 2)] {
        let after = env.count(0, name).await;
        print_counts(env.test, name, before, after);
        assert_eq!(after, before);
        let replicas = env.replicas(0, name).await;
        assert!(
            replicas
                .iter()
                .all(|(_, p, s)| *p != leaving && s == "Active"),
            "{name}: no replica left on the removed peer, all Active: {replicas:?}"
        );
        assert_eq!(
            replicas.len(),
            3 * rf,
            "{name}: every shard keeps {rf} copies"
        );
    }
    assert!(!env.consensus(0).await.contains(&leaving));
    assert_eq!(env.sts()["spec"]["replicas"], 2);
    // No step issued twice: one accepted operation per replica the leaving peer held, one
    // accepted peer removal, across both controllers (from the peers' access logs).
    let writes = env.writes();
    let ops: Vec<_> = writes
        .iter()
        .filter(|(m, p, _)| m == "POST" && p.ends_with("/cluster"))
        .collect();
    let removals: Vec<_> = writes
        .iter()
        .filter(|(m, p, _)| m == "DELETE" && p.starts_with("/cluster/peer/"))
        .collect();
    println!(
        "[{}] operations issued: {ops:?}; peer removals: {removals:?}",
        env.test
    );
    assert_eq!(ops.len(), on_leaving, "{ops:?}");
    assert!(ops.iter().all(|(_, _, status)| *status == 200), "{ops:?}");
    assert_eq!(removals.len(), 1, "{removals:?}");
    assert_eq!(removals[0].2, 200);
}

/// Scale-down 3 → 1 with a replication-factor-2 collection: a shard's two copies cannot stay
/// on one peer, so the controller refuses (condition), keeps all three pods and loses no point.
/// Once the collection's replication factor is lowered to 1, the same scale-down drains both
/// leaving peers onto pod 0.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scale_down_3_to_1_is_refused_for_rf2_and_runs_once_rf_is_1() {
    let Some(env) = Scenario::new(
        "scale_down_3_to_1",
        "rp-scale-3to1",
        json!({"replicas": 3, "auth": {}}),
    ) else {
        return;
    };
    env.up(3).await;
    let before = env.collection("mirrored", 3, 2, 2000).await;
    env.edit_spec::<QdrantCluster>("demo", |s| s["replicas"] = json!(1));
    env.drive("refusal reported", |e| {
        e.try_condition("ScaleDownBlocked")
            .is_some_and(|c| c.status == api_types::conditions::ConditionStatus::True)
    })
    .await;
    let blocked = env.condition("ScaleDownBlocked");
    println!("[{}] ScaleDownBlocked: {}", env.test, blocked.message);
    assert!(
        blocked.message.contains("replication factor 2"),
        "{}",
        blocked.message
    );
    assert_eq!(env.sts()["spec"]["replicas"], 3, "no pod goes");
    assert_eq!(env.consensus(0).await.len(), 3, "no peer removed");
    let refused = env.count(0, "mirrored").await;
    print_counts(env.test, "mirrored (refused)", before, refused);
    assert_eq!(refused, before);

    // The user lowers the replication factor (PATCH /collections/{c}).
    env.client(0)
        .update_collection("mirrored", &json!({"params": {"replication_factor": 1}}))
        .await
        .unwrap();
    env.drive("drained onto pod 0", |e| e.running_with(1)).await;
    let after = env.count(0, "mirrored").await;
    print_counts(env.test, "mirrored", before, after);
    assert_eq!(after, before);
    assert_eq!(env.consensus(0).await.len(), 1);
    let replicas = env.replicas(0, "mirrored").await;
    assert_eq!(
        replicas.len(),
        3,
        "one Active copy of each shard: {replicas:?}"
    );
}

/// The peer of every pod, by pod name, from the stored status.
fn peer_of(env: &Scenario, pod: &str) -> u64 {
    env.peer_ids()
        .into_iter()
        .find(|(p, _)| p == pod)
        .map(|(_, id)| id)
        .unwrap()
}

/// A config change rolls the pods one at a time through the health gate while reads keep
/// answering (a client retrying across the Ready pods, as through the Service).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_config_change_rolls_one_pod_at_a_time_while_reads_answer() {
    let Some(env) = Scenario::new(
        "rolling_config",
        "rp-roll",
        json!({"replicas": 3, "auth": {}}),
    ) else {
        return;
    };
    env.up(3).await;
    let before = env.collection("items", 3, 2, 2000).await;
    let revision = env.sts()["status"]["updateRevision"].clone();
    let peers_before = env.peer_ids();
    env.edit_spec::<QdrantCluster>("demo", |s| {
        s["config"] = json!({"storage": {"performance": {"max_search_threads": 1}}})
    });

    let harness = env.harness.clone();
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let names = env.names();
    let reader = {
        let stop = stop.clone();
        tokio::spawn(async move {
            let (mut reads, mut failures, mut max_unready) = (0u64, vec![], 0usize);
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                let pods = harness.list("v1", "pods");
                let ready: Vec<u32> = pods
                    .iter()
                    .filter(|p| {
                        p["status"]["conditions"].as_array().is_some_and(|cs| {
                            cs.iter()
                                .any(|c| c["type"] == "Ready" && c["status"] == "True")
                        })
                    })
                    .filter_map(|p| names.pod_ordinal(p["metadata"]["name"].as_str()?))
                    .collect();
                max_unready = max_unready.max(3usize.saturating_sub(ready.len()));
                let mut answer = None;
                for ordinal in &ready {
                    let url = Url::parse(&names.pod_http_url(*ordinal)).unwrap();
                    let client = QdrantClient::new(
                        &QdrantConnection::new(url).with_timeout(Duration::from_secs(5)),
                    )
                    .unwrap();
                    if let Ok(n) = client.count_points("items", true).await {
                        answer = Some(n);
                        break;
                    }
                }
                reads += 1;
                if answer != Some(before) {
                    failures.push(format!(
                        "read {reads}: {answer:?} from Ready pods {ready:?}"
                    ));
                }
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            (reads, failures, max_unready)
        })
    };
    env.drive("every pod restarted with the new config", |e| {
        e.running_with(3)
            && e.sts()["status"]["updateRevision"] != revision
            && e.sts()["status"]["updatedReplicas"] == 3
    })
    .await;
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let (reads, failures, max_unready) = reader.await.unwrap();
    println!(
        "[{}] reads during the roll: {reads}, failed: {}, most pods unready at once: {max_unready}",
        env.test,
        failures.len()
    );
    assert!(reads > 0);
    assert!(failures.is_empty(), "{failures:?}");
    assert!(max_unready <= 1, "one pod at a time");
    let deletions: Vec<_> = env
        .fake
        .requests()
        .into_iter()
        .filter(|r| r.method == http::Method::DELETE && r.path.contains("/pods/"))
        .collect();
    assert_eq!(deletions.len(), 3, "each pod deleted once: {deletions:?}");
    assert_eq!(env.peer_ids(), peers_before, "restarts keep the peers");
    let after = env.count(0, "items").await;
    print_counts(env.test, "items", before, after);
    assert_eq!(after, before);
}

/// Opt-in rebalance after 2 → 3: the new peer gets an even share of the shards.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rebalance_after_scaling_2_to_3_moves_shards_onto_the_new_peer() {
    let Some(env) = Scenario::new(
        "rebalance",
        "rp-rebalance",
        json!({"replicas": 2, "auth": {}, "rebalance": {"enabled": true}}),
    ) else {
        return;
    };
    env.up(2).await;
    let before = env.collection("items", 6, 1, 3000).await;
    env.edit_spec::<QdrantCluster>("demo", |s| s["replicas"] = json!(3));
    env.drive("3 peers Running", |e| e.running_with(3)).await;
    let new = peer_of(&env, "demo-2");
    let started = Instant::now();
    loop {
        let replicas = env.replicas(0, "items").await;
        let on_new = replicas
            .iter()
            .filter(|(_, p, s)| *p == new && s == "Active")
            .count();
        if on_new == 2 && replicas.len() == 6 && replicas.iter().all(|(_, _, s)| s == "Active") {
            break;
        }
        assert!(
            started.elapsed() < PHASE_TIMEOUT,
            "not rebalanced: {replicas:?}"
        );
        let _ = reconcile(Arc::new(env.qc()), env.ctx.clone()).await;
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    env.log("rebalanced: 2 of 6 shards on the new peer");
    let after = env.count(2, "items").await;
    print_counts(env.test, "items", before, after);
    assert_eq!(after, before);
}

/// Zone-aware replicas (`spec.zoneAware`): a 2-peer cluster in zone a (RealCluster puts pod
/// `i` on node `node-{i}`; the Nodes are seeded with zone labels, node-2 in zone b) holds a
/// replication-factor-2 collection, so both copies of every shard are in zone a. Scaling to 3
/// with `zoneAware` on adds pod 2 in zone b, rolls the two old pods once (the default zone
/// spread changes the pod template), then moves one replica of each shard into zone b, until
/// condition ZoneSpread is True. Checked from every real peer's `GET /collections/{c}/cluster`:
/// every shard has Active replicas in both zones; exact point counts through every peer are
/// the count before.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn zone_aware_moves_a_replica_of_every_shard_into_the_second_zone() {
    let Some(env) = Scenario::new("zone_aware", "rp-zones", json!({"replicas": 2, "auth": {}}))
    else {
        return;
    };
    for (i, zone) in [(0, "zone-a"), (1, "zone-a"), (2, "zone-b")] {
        env.fake.insert(json!({"apiVersion": "v1", "kind": "Node",
            "metadata": {"name": format!("node-{i}"), "labels": {
                "topology.kubernetes.io/zone": zone, "kubernetes.io/hostname": format!("node-{i}")}}}));
    }
    env.up(2).await;
    let before = env.collection("spread", 2, 2, 2000).await;
    let in_a = [peer_of(&env, "demo-0"), peer_of(&env, "demo-1")];
    let start = env.active(0, "spread").await;
    println!("[{}] placement before (shard, peer): {start:?}", env.test);
    assert_eq!(start.len(), 4, "2 shards x 2 Active copies: {start:?}");
    assert!(
        start.iter().all(|(_, p)| in_a.contains(p)),
        "every replica in zone a"
    );

    env.edit_spec::<QdrantCluster>("demo", |s| {
        s["replicas"] = json!(3);
        s["zoneAware"] = json!(true);
    });
    env.drive("3 peers Running with ZoneSpread=True/ReplicasSpread", |e| {
        e.running_with(3)
            && e.try_condition("ZoneSpread").is_some_and(|c| {
                c.status == api_types::conditions::ConditionStatus::True
                    && c.reason == "ReplicasSpread"
            })
    })
    .await;
    let spread = env.condition("ZoneSpread");
    println!("[{}] ZoneSpread: {}", env.test, spread.message);
    // Every peer's view settles on the finished moves (each peer applies consensus on its own).
    let started = Instant::now();
    for ordinal in 0..3 {
        while env.replicas(ordinal, "spread").await.len() != 4 {
            assert!(
                started.elapsed() < PHASE_TIMEOUT,
                "pod {ordinal}'s view did not settle: {:?}",
                env.replicas(ordinal, "spread").await
            );
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    }
    let zone_of: std::collections::BTreeMap<u64, String> = env
        .qc()
        .status
        .unwrap()
        .peers
        .iter()
        .map(|p| (p.peer_id, p.zone.clone().expect("status.peers[].zone")))
        .collect();
    println!("[{}] status.peers zones: {zone_of:?}", env.test);
    assert_eq!(zone_of[&in_a[0]], "zone-a");
    assert_eq!(zone_of[&in_a[1]], "zone-a");
    assert_eq!(zone_of[&peer_of(&env, "demo-2")], "zone-b");
    for ordinal in 0..3 {
        let replicas = env.replicas(ordinal, "spread").await;
        println!(
            "[{}] placement seen by pod {ordinal}: {replicas:?}",
            env.test
        );
        assert_eq!(
            replicas.len(),
            4,
            "every shard keeps 2 copies: {replicas:?}"
        );
        assert!(
            replicas.iter().all(|(_, _, s)| s == "Active"),
            "{replicas:?}"
        );
        for shard in 0..2 {
            let zones: std::collections::BTreeSet<&str> = replicas
                .iter()
                .filter(|(s, _, _)| *s == shard)
                .map(|(_, p, _)| zone_of[p].as_str())
                .collect();
            assert_eq!(
                zones,
                ["zone-a", "zone-b"].into(),
                "shard {shard} in both zones (pod {ordinal}'s view): {replicas:?}"
            );
        }
        let after = env.count(ordinal, "spread").await;
        print_counts(
            env.test,
            &format!("spread (through pod {ordinal})"),
            before,
            after,
        );
        assert_eq!(after, before);
    }
    // Turning zoneAware on added the default zone spread to the pod template, so the two
    // pods created before it were restarted once each through the health gate.
    let spread_template = &env.sts()["spec"]["template"]["spec"]["topologySpreadConstraints"];
    assert_eq!(
        spread_template[0]["topologyKey"],
        "topology.kubernetes.io/zone"
    );
    let restarts: Vec<String> = env
        .fake
        .writes()
        .into_iter()
        .filter(|r| r.method == http::Method::DELETE && r.path.contains("/pods/"))
        .map(|r| r.path.rsplit('/').next().unwrap_or_default().to_owned())
        .collect();
    println!("[{}] pods restarted by the rollout: {restarts:?}", env.test);
    assert_eq!(restarts.len(), 2, "{restarts:?}");
    let ops: Vec<_> = env
        .writes()
        .into_iter()
        .filter(|(m, p, _)| m == "POST" && p.starts_with("/collections/spread/cluster"))
        .collect();
    println!("[{}] shard operations issued: {ops:?}", env.test);
    assert_eq!(ops.len(), 2, "one move per shard, none repeated: {ops:?}");
    assert!(ops.iter().all(|(_, _, status)| *status == 200), "{ops:?}");
}

/// Generated TLS: real Qdrant serves https on every pod and talks to its peers over TLS with
/// the operator's certificates; the cluster forms and answers a client that trusts the CA.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn generated_tls_for_clients_and_peers() {
    let Some(env) = Scenario::new(
        "generated_tls",
        "rp-tls",
        json!({"replicas": 3, "auth": {}, "tls": {"client": {"enabled": true}, "p2p": {"enabled": true}}}),
    ) else {
        return;
    };
    env.up(3).await;
    let st = env.qc().status.unwrap();
    let tls = st.tls.clone().unwrap();
    assert!(tls.client && tls.p2p, "{tls:?}");
    assert!(
        st.peers.iter().all(|p| p.uri.starts_with("https://")),
        "{:?}",
        st.peers
    );
    let ca_ref = tls.ca_secret_ref.unwrap();
    let secret: k8s_openapi::api::core::v1::Secret = env.current(&ca_ref.name);
    let ca = secret.data.unwrap().remove(&ca_ref.key).unwrap().0;
    let conn = |i: u32| {
        let url = Url::parse(&env.names().pod_http_url(i)).unwrap();
        assert_eq!(url.scheme(), "https");
        QdrantConnection::new(url).with_ca_bundle_pem(ca.clone())
    };
    let client = QdrantClient::new(&conn(0)).unwrap();
    client
        .create_collection("items", &json!({"vectors": {"size": 8, "distance": "Cosine"}, "shard_number": 3, "replication_factor": 2}))
        .await
        .unwrap();
    real_qdrant::write_points(&conn(0), "items", 0..1000, 8)
        .await
        .unwrap();
    // Replicas on other peers were written over p2p TLS; every pod answers over https.
    for i in 0..3 {
        let n = QdrantClient::new(&conn(i))
            .unwrap()
            .count_points("items", true)
            .await
            .unwrap();
        print_counts(env.test, &format!("items via pod {i}"), 1000, n);
        assert_eq!(n, 1000);
    }
    let plain = Url::parse(&env.names().pod_http_url(0).replace("https://", "http://")).unwrap();
    assert!(
        QdrantClient::new(&QdrantConnection::new(plain))
            .unwrap()
            .readyz()
            .await
            .is_err(),
        "plain http is not served"
    );
}

/// A healthy peer whose Qdrant process is killed (crash, OOM kill) on its first container
/// instance, with its storage intact, comes back as the same peer: no recovery, no replica
/// dropped or moved, no peer removed. (Its first instance started on an empty volume; the
/// start script marks a lost volume only from the state the instance stopped with.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crashed_peer_with_its_storage_comes_back_as_the_same_peer() {
    let Some(env) = Scenario::new(
        "crash_restart",
        "rp-crash",
        json!({"replicas": 3, "auth": {}}),
    ) else {
        return;
    };
    env.up(3).await;
    let before = env.collection("kept", 3, 2, 3000).await;
    let peers = env.peer_ids();
    let placement = env.active(0, "kept").await;
    let crashed = peer_of(&env, "demo-1");
    assert!(
        placement.iter().any(|(_, p)| *p == crashed),
        "the crashed peer holds replicas: {placement:?}"
    );
    let (restarts, _) = env.container(1);
    let writes_before = env.writes().len();

    env.qdrant.crash(1);
    env.drive("pod 1 restarted and Running again", |e| {
        e.container(1).0 > restarts && e.running_with(3)
    })
    .await;
    // The controller keeps reconciling for a while: nothing may follow.
    let settle = Instant::now();
    while settle.elapsed() < Duration::from_secs(5) {
        reconcile(Arc::new(env.qc()), env.ctx.clone()).await.ok();
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    let (_, message) = env.container(1);
    println!("[{}] pod 1 termination message: {message:?}", env.test);
    assert!(!message.contains(FRESH_STORAGE_MARKER), "{message}");
    assert_eq!(env.peer_ids(), peers, "every pod is the same peer");
    let mut consensus = env.consensus(0).await;
    consensus.sort_unstable();
    let mut expected: Vec<u64> = peers.iter().map(|(_, p)| *p).collect();
    expected.sort_unstable();
    assert_eq!(consensus, expected, "no peer removed or added");
    // Replicas on the restarted peer may show Dead or Partial for a moment before Qdrant
    // itself brings them back (the controller does nothing here).
    let mut active = env.active(0, "kept").await;
    let started = Instant::now();
    while active != placement && started.elapsed() < PHASE_TIMEOUT {
        tokio::time::sleep(Duration::from_millis(250)).await;
        active = env.active(0, "kept").await;
    }
    assert_eq!(active, placement, "no replica dropped or moved");
    let after = env.count(0, "kept").await;
    print_counts(env.test, "kept", before, after);
    assert_eq!(after, before);
    let issued: Vec<_> = env.writes().split_off(writes_before);
    println!("[{}] writes after the crash: {issued:?}", env.test);
    assert!(
        issued.iter().all(|(_, path, _)| !path.contains("/cluster")),
        "no peer removal, recovery record or shard operation: {issued:?}"
    );
    let degraded = env.condition("Degraded");
    assert_ne!(degraded.reason, "PeerRecovery", "{degraded:?}");
}

/// A peer whose volume is lost (the claim comes back empty) rejoins as a new peer: the
/// controller drops the stale peer's replicas, removes it from consensus, and once the pod
/// joined with a new peer id copies its shards back. No point is lost (replication factor 2).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wiped_volume_rejoins_as_a_new_peer_and_gets_its_shards_back() {
    let Some(env) = Scenario::new(
        "wiped_volume",
        "rp-wiped",
        json!({"replicas": 3, "auth": {}}),
    ) else {
        return;
    };
    env.up(3).await;
    let before = env.collection("restored", 3, 2, 3000).await;
    let stale = peer_of(&env, "demo-2");
    let placement = env.active(0, "restored").await;
    let lost: Vec<u32> = placement
        .iter()
        .filter(|(_, p)| *p == stale)
        .map(|(s, _)| *s)
        .collect();
    assert!(!lost.is_empty(), "pod 2 holds replicas: {placement:?}");
    let writes_before = env.writes().len();

    env.qdrant.wipe_volume("storage", 2).await;
    env.drive("pod 2 rejoined as a new peer", |e| {
        e.running_with(3)
            && e.peer_ids()
                .iter()
                .any(|(p, id)| p == "demo-2" && *id != stale)
    })
    .await;
    let fresh = peer_of(&env, "demo-2");
    // Then the controller copies the lost shards to the new peer (reconciling as it goes).
    let mut active = Vec::new();
    let started = Instant::now();
    while started.elapsed() < PHASE_TIMEOUT {
        reconcile(Arc::new(env.qc()), env.ctx.clone()).await.ok();
        active = env.active(0, "restored").await;
        let back = lost.iter().all(|s| active.contains(&(*s, fresh)));
        if back && active.len() == placement.len() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    println!(
        "[{}] stale peer {stale}, new peer {fresh}; lost shards {lost:?}; placement before {placement:?}, after {active:?}",
        env.test
    );
    for shard in &lost {
        assert!(
            active.contains(&(*shard, fresh)),
            "shard {shard} back on the new peer: {active:?}"
        );
    }
    assert_eq!(
        active.len(),
        placement.len(),
        "rf Active copies of every shard: {active:?}"
    );
    assert!(
        !env.consensus(0).await.contains(&stale),
        "the stale peer left consensus"
    );
    let after = env.count(0, "restored").await;
    print_counts(env.test, "restored", before, after);
    assert_eq!(after, before);
    let issued: Vec<_> = env.writes().split_off(writes_before);
    let removals: Vec<_> = issued
        .iter()
        .filter(|(m, p, _)| m == "DELETE" && p.starts_with("/cluster/peer/"))
        .collect();
    println!("[{}] writes after the loss: {issued:?}", env.test);
    assert_eq!(
        removals.len(),
        1,
        "one removal of the stale peer: {removals:?}"
    );
    let shard_ops = issued
        .iter()
        .filter(|(m, p, _)| m == "POST" && p == "/collections/restored/cluster")
        .count();
    assert_eq!(
        shard_ops,
        2 * lost.len(),
        "one drop and one replicate per lost replica, none twice: {issued:?}"
    );
    assert!(removals[0].1.starts_with(&format!("/cluster/peer/{stale}")));
}

/// Every REST request the pods served, as (method, path, status), pod by pod.
fn all_requests(env: &Scenario) -> Vec<Vec<(String, String, u16)>> {
    (0..3).map(|i| env.qdrant.requests(i)).collect()
}

/// Value of `key` in the served-keys Secret.
fn served(env: &Scenario, key: &str) -> Option<String> {
    let s = env.get("v1", "secrets", "demo-served-keys")?;
    reconcile_lib::secrets::secret_value(&serde_json::from_value(s).ok()?, key)
}

/// Rotating the user's key Secret of a 3-peer cluster with data: the controller serves the
/// new key with the old one as `alt_api_key`, rolls the pods one at a time through the health
/// gate (a fresh controller taking over after the first restart), sends the old key until
/// every pod runs the new one. Then both keys read every pod (the grace period), and once the
/// user sets the grace period to 0 a second roll drops the old key. No request of the
/// operator is refused (the pods' access logs show no 401/403 between the rotation and the
/// end), every pod answers the new key at the end and refuses the old one, and no point is
/// lost.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rotated_api_key_rolls_through_the_gate_without_a_refused_request() {
    let Some(env) = Scenario::new(
        "key_rotation",
        "rp-key-rotation",
        json!({"replicas": 3, "auth": {"apiKey": {"secretKeyRef": {"name": "team-key", "key": "token"}},
            "oldKeyGracePeriodSeconds": 3600}}),
    ) else {
        return;
    };
    let (old_key, new_key) = ("old-0123456789abcdef", "new-fedcba9876543210");
    let user_secret = |value: &str| {
        json!({"apiVersion": "v1", "kind": "Secret",
            "metadata": {"name": "team-key", "namespace": "rp-key-rotation"},
            "stringData": {"token": value}})
    };
    env.fake.insert(user_secret(old_key));
    *env.key.lock().unwrap() = Some(old_key.to_owned());
    env.up(3).await;
    let before = env.collection("items", 3, 2, 2000).await;
    let revision = env.sts()["status"]["updateRevision"].clone();
    let before_rotation: Vec<usize> = all_requests(&env).iter().map(Vec::len).collect();
    // Every pod instance seen while the key rolls (name, uid), and the most pods not Ready at once.
    let seen = std::sync::Mutex::new(std::collections::BTreeSet::new());
    let max_unready = std::sync::atomic::AtomicUsize::new(0);
    let watch_pods = |e: &Scenario| {
        let pods = e.list("v1", "pods");
        let ready = pods
            .iter()
            .filter(|p| {
                p["status"]["conditions"].as_array().is_some_and(|cs| {
                    cs.iter()
                        .any(|c| c["type"] == "Ready" && c["status"] == "True")
                })
            })
            .count();
        max_unready.fetch_max(3 - ready.min(3), std::sync::atomic::Ordering::Relaxed);
        let mut seen = seen.lock().unwrap();
        for p in &pods {
            seen.insert((
                p["metadata"]["name"].to_string(),
                p["metadata"]["uid"].to_string(),
            ));
        }
    };
    watch_pods(&env);

    // The user rotates the key (as `kubectl apply` of the Secret would).
    let rotated = Instant::now();
    env.remove("v1", "secrets", "team-key");
    env.fake.insert(user_secret(new_key));
    env.drive("the first pod restarted with the new key", |e| {
        watch_pods(e);
        e.qc()
            .status
            .and_then(|s| s.rollout)
            .is_some_and(|r| r.restarting_pod.is_some())
    })
    .await;
    assert_eq!(served(&env, "api-key").as_deref(), Some(new_key));
    assert_eq!(served(&env, "alt-api-key").as_deref(), Some(old_key));
    // Mid-roll, the key that status.auth points clients at (the collection and backup
    // controllers read it) is the old one, and every pod that is up accepts it: the ones not
    // restarted yet and the one that came back with the new key.
    let key_ref = env
        .qc()
        .status
        .unwrap()
        .auth
        .unwrap()
        .api_key_secret_ref
        .unwrap();
    assert_eq!(key_ref.name, "demo-served-keys");
    let clients_key = served(&env, &key_ref.key);
    assert_eq!(clients_key.as_deref(), Some(old_key));
    let saved = env.key.lock().unwrap().replace(old_key.to_owned());
    let restarting = env
        .qc()
        .status
        .and_then(|s| s.rollout)
        .and_then(|r| r.restarting_pod);
    for ordinal in 0..3 {
        if restarting.as_deref() != Some(&format!("demo-{ordinal}")) {
            assert_eq!(env.count(ordinal, "items").await, before, "demo-{ordinal}");
        }
    }
    *env.key.lock().unwrap() = saved;
    // A new controller (a restart or a leader change) carries on from the served Secret and
    // the pods.
    let fresh = env.controller();
    let template_hash = |e: &Scenario| {
        e.sts()["spec"]["template"]["metadata"]["annotations"]["qdrant.operator.dev/keys-hash"]
            .clone()
    };
    let every_pod_at_template = |e: &Scenario| {
        let hash = template_hash(e);
        let pods = e.list("v1", "pods");
        pods.len() == 3
            && pods
                .iter()
                .all(|p| p["metadata"]["annotations"]["qdrant.operator.dev/keys-hash"] == hash)
    };
    env.drive_with(
        &fresh,
        "every pod runs the new key, the old one kept",
        |e| {
            watch_pods(e);
            served(e, "rolled-out-at").is_some() && every_pod_at_template(e) && e.running_with(3)
        },
    )
    .await;
    // The grace period: every pod accepts both keys (the old one as alt_api_key).
    for key in [old_key, new_key] {
        *env.key.lock().unwrap() = Some(key.to_owned());
        for ordinal in 0..3 {
            assert_eq!(env.count(ordinal, "items").await, before, "demo-{ordinal}");
        }
    }
    *env.key.lock().unwrap() = None;
    let rolled_out = rotated.elapsed();
    // The user shortens the grace period: the old key is dropped by a second roll.
    env.edit_spec::<QdrantCluster>("demo", |s| s["auth"]["oldKeyGracePeriodSeconds"] = json!(0));
    env.drive_with(&fresh, "the old key dropped and rolled again", |e| {
        watch_pods(e);
        served(e, "alt-api-key").as_deref() == Some(new_key)
            && every_pod_at_template(e)
            && e.running_with(3)
            && e.sts()["status"]["updatedReplicas"] == 3
            && e.sts()["status"]["updateRevision"] != revision
            && e.qc().status.is_some_and(|s| s.rollout.is_none())
    })
    .await;
    let took = rotated.elapsed();

    // What the pods served from the rotation to now: the operator's requests, the probes, and
    // the test's reads with either key during the grace period.
    let during: Vec<(String, String, u16)> = all_requests(&env)
        .into_iter()
        .zip(&before_rotation)
        .flat_map(|(r, n)| r.into_iter().skip(*n))
        .collect();
    let mut by_status = std::collections::BTreeMap::new();
    for (_, _, status) in &during {
        *by_status.entry(*status).or_insert(0u32) += 1;
    }
    // Pod restarts: the instances seen (name and uid) of each pod beyond its first one. A pod
    // deleted in the first roll may come back straight at the final state when the other pods
    // already run the new key (the old key is dropped meanwhile), so 5 or 6 in all.
    let mut per_pod = std::collections::BTreeMap::new();
    for (pod, _) in seen.lock().unwrap().iter() {
        *per_pod
            .entry(pod.trim_matches('"').to_owned())
            .or_insert(0usize) += 1;
    }
    let per_pod: std::collections::BTreeMap<String, usize> =
        per_pod.into_iter().map(|(p, n)| (p, n - 1)).collect();
    let restarts: usize = per_pod.values().sum();
    println!(
        "[{}] first roll done after {:.1}s, rotation done after {:.1}s: {} requests to the pods, by status {by_status:?}; {restarts} pod restarts {per_pod:?}, at most {} pod(s) not Ready at once",
        env.test,
        rolled_out.as_secs_f64(),
        took.as_secs_f64(),
        during.len(),
        max_unready.load(std::sync::atomic::Ordering::Relaxed)
    );
    let refused: Vec<_> = during
        .iter()
        .filter(|(_, _, s)| *s == 401 || *s == 403)
        .collect();
    assert!(refused.is_empty(), "refused operator requests: {refused:?}");
    assert!(!during.is_empty());
    assert_eq!(per_pod.len(), 3);
    assert!(
        per_pod.values().all(|n| (1..=2).contains(n)) && restarts > 3,
        "every pod restarted, some twice (the old key dropped by a second roll): {per_pod:?}"
    );
    assert_eq!(
        max_unready.load(std::sync::atomic::Ordering::Relaxed),
        1,
        "one pod at a time"
    );

    // The new key reads every pod; the old one is refused everywhere.
    *env.key.lock().unwrap() = Some(new_key.to_owned());
    for ordinal in 0..3 {
        let after = env.count(ordinal, "items").await;
        print_counts(env.test, &format!("items on demo-{ordinal}"), before, after);
        assert_eq!(after, before);
    }
    *env.key.lock().unwrap() = Some(old_key.to_owned());
    for ordinal in 0..3 {
        let refused = env.client(ordinal).count_points("items", true).await;
        assert!(
            matches!(
                refused,
                Err(reconcile_lib::qdrant::QdrantError::Unauthorized { .. })
            ),
            "demo-{ordinal} with the old key: {refused:?}"
        );
        let last = env.qdrant.requests(ordinal).pop();
        assert!(
            last.as_ref()
                .is_some_and(|(_, _, s)| *s == 401 || *s == 403),
            "the access log records refusals (so none above means none): {last:?}"
        );
    }
}
