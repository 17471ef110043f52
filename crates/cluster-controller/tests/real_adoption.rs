//! Adopting a Qdrant installed with the official Helm chart (`spec.adoption`), against real
//! Qdrant peers (TESTING.md, layers 3 and 4).
//!
//! The release is what `helm install qdrant qdrant/qdrant --set replicaCount=3` renders
//! (chart templates `statefulset.yaml`, `configmap.yaml`, `service*.yaml`, default values),
//! written here by hand: StatefulSet `qdrant` with the chart's three selector labels, the
//! `RollingUpdate` strategy it leaves to Kubernetes' default, claim template `qdrant-storage`
//! mounted at the claim's root, and the chart's `initialize.sh`, which starts each peer with a
//! short p2p URI (`http://qdrant-<i>.qdrant-headless:6335`) found through `$HOSTNAME`.
//! [`RealCluster`] runs those pods as it runs the operator's, through the pods' own command.
//!
//! Without the Qdrant binary the scenario prints a SKIP line and passes.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::{
    collections::BTreeMap,
    sync::Arc,
    time::{Duration, Instant},
};

use api_types::{QdrantCluster, cluster::ClusterPhase, conditions::find_condition};
use cluster_controller::{
    build::Names, context::Context, reconcile::reconcile, vocabulary::types::ADOPTED,
};
use reconcile_lib::{
    metrics::Metrics,
    qdrant::{QdrantClient, QdrantConnection},
};
use serde_json::{Value, json};
use testkit::{
    harness::{Harness, Patience, repeat_until},
    real_cluster::RealCluster,
    real_qdrant,
};
use url::Url;

mod common;

use common::helm::{helm_release, selector};

const NS: &str = "rp-adopt";
const NAME: &str = "qdrant";
const TEST: &str = "adopt_helm_release";
/// How long one phase may take on a loaded 2-core machine.
const PHASE_TIMEOUT: Duration = Duration::from_secs(240);

struct World {
    harness: Harness,
    peers: RealCluster,
    started: Instant,
}

impl World {
    fn log(&self, what: &str) {
        println!(
            "[{TEST}] {:>6.1}s {what}",
            self.started.elapsed().as_secs_f64()
        );
    }

    fn controller(&self) -> Arc<Context> {
        let mut ctx = Context::new(self.harness.client(), Arc::new(Metrics::new("test")));
        ctx.qdrant_timeout = Duration::from_secs(20);
        Arc::new(ctx)
    }

    fn pod(&self, ordinal: u32) -> Value {
        self.harness
            .get("v1", "pods", &format!("{NAME}-{ordinal}"))
            .unwrap_or(Value::Null)
    }

    fn sts(&self) -> Value {
        self.harness
            .get("apps/v1", "statefulsets", NAME)
            .unwrap_or(Value::Null)
    }

    /// (uid, restartCount, controller-revision-hash) of pods 0..n.
    fn pods(&self, n: u32) -> Vec<(String, u64, String)> {
        (0..n)
            .map(|o| {
                let p = self.pod(o);
                (
                    p["metadata"]["uid"].as_str().unwrap_or_default().to_owned(),
                    p["status"]["containerStatuses"][0]["restartCount"]
                        .as_u64()
                        .unwrap_or(0),
                    p["metadata"]["labels"]["controller-revision-hash"]
                        .as_str()
                        .unwrap_or_default()
                        .to_owned(),
                )
            })
            .collect()
    }

    fn all_ready(&self, n: u32) -> bool {
        (0..n).all(|o| {
            self.pod(o)["status"]["conditions"]
                .as_array()
                .is_some_and(|cs| {
                    cs.iter()
                        .any(|c| c["type"] == "Ready" && c["status"] == "True")
                })
        })
    }

    fn client(&self, ordinal: u32) -> QdrantClient {
        let names = Names::of(&self.harness.current::<QdrantCluster>(NAME));
        let url = Url::parse(&names.pod_http_url(ordinal)).unwrap();
        QdrantClient::new(&QdrantConnection::new(url).with_timeout(Duration::from_secs(30)))
            .unwrap()
    }

    /// Peer id of pod `ordinal` and the p2p URIs consensus lists, as pod `ordinal` sees them.
    async fn peer(&self, ordinal: u32) -> (u64, BTreeMap<u64, String>) {
        let info = self.client(ordinal).cluster_info().await.unwrap();
        let uris = info
            .peers
            .iter()
            .map(|(id, p)| (*id, p.uri.clone()))
            .collect();
        (info.peer_id.unwrap(), uris)
    }

    async fn counts(&self, n: u32) -> Vec<u64> {
        let mut out = vec![];
        for o in 0..n {
            out.push(self.client(o).count_points("vectors", true).await.unwrap());
        }
        out
    }

    /// The last 30 lines of every pod's log, for a failure message.
    fn logs(&self) -> String {
        (0..4)
            .map(|i| format!("--- pod {i}\n{}", self.peers.log_tail(i, 30)))
            .collect::<Vec<_>>()
            .join("\n")
    }

    /// Waits (no controller involved) until `done` holds.
    async fn wait(&self, what: &str, done: impl Fn(&Self) -> bool) {
        let outcome = repeat_until(
            Patience::timeout(PHASE_TIMEOUT, Duration::from_millis(250)),
            async || done(self),
        )
        .await;
        match outcome {
            Ok(took) => self.log(&format!("{what}: done in {:.1}s", took.as_secs_f64())),
            Err(_) => panic!(
                "[{TEST}] {what}: not after {PHASE_TIMEOUT:?}\nsts status: {}\npods: {:?}\n{}",
                self.sts()["status"],
                self.pods(4),
                self.logs()
            ),
        }
    }

    /// Reconciles with `ctx` every 250 ms until `done` holds for the stored cluster.
    async fn drive(&self, ctx: &Arc<Context>, what: &str, done: impl Fn(&QdrantCluster) -> bool) {
        let outcome = self
            .harness
            .reconcile_until(
                NAME,
                Patience::timeout(PHASE_TIMEOUT, Duration::from_millis(250)),
                async |qc: Arc<QdrantCluster>| {
                    if let Err(e) = reconcile(qc, ctx.clone()).await {
                        self.log(&format!("reconcile error (retried): {e}"));
                    }
                },
                done,
            )
            .await;
        match outcome {
            Ok(_) => self.log(&format!("{what}: done")),
            Err(qc) => panic!(
                "[{TEST}] {what}: not after {PHASE_TIMEOUT:?}\nstatus: {}\nsts status: {}\npods: {:?}\n{}",
                serde_json::to_string_pretty(&qc.status).unwrap(),
                self.sts()["status"],
                self.pods(4),
                self.logs()
            ),
        }
    }
}

fn running_with(qc: &QdrantCluster, n: i32) -> bool {
    qc.status.as_ref().is_some_and(|s| {
        s.phase == ClusterPhase::Running
            && s.ready_replicas == n
            && s.peers.len() == n as usize
            && s.observed_generation == qc.metadata.generation
            && s.rollout.is_none()
    })
}

/// A 3-peer Helm release with 3000 points (3 shards, replication factor 2) is taken over by a
/// QdrantCluster with `spec.adoption`: the takeover restarts no pod (their uids and restart
/// counts stay), keeps every claim and peer id; the operator then moves the pods to its own
/// template one at a time (each pod restarts once, with the same peer id, on the same claim,
/// under the operator's p2p URI), and manages the cluster as its own: it scales it to 4.
/// Points are counted exactly through every pod before, after the takeover, after the move
/// and after the scale-up.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_helm_release_is_taken_over_without_a_restart_then_managed() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let Some(binary) = real_qdrant::binary() else {
        println!("{}", real_qdrant::skip_line(TEST));
        return;
    };
    let harness = Harness::new(NS);
    let peers = RealCluster::start(&harness.fake, NS, NAME, &binary, 4).unwrap();
    let w = World {
        harness,
        peers,
        started: Instant::now(),
    };
    for obj in helm_release(NS, NAME, 3) {
        w.harness.seed(obj);
    }
    w.wait("the Helm release's 3 pods ready", |w| w.all_ready(3))
        .await;

    // The harness plays RollingUpdate as Kubernetes does: a `helm upgrade` that changes the
    // pod template replaces every pod (this is what the takeover must not cause).
    let helm_pods = w.pods(3);
    w.harness.edit("apps/v1", "statefulsets", NAME, |s| {
        s["spec"]["template"]["metadata"]["annotations"]["checksum/config"] = json!("decaf");
    });
    w.wait("helm upgrade rolled the 3 pods", |w| {
        let now = w.pods(3);
        w.all_ready(3) && now.iter().zip(&helm_pods).all(|(a, b)| a.0 != b.0)
    })
    .await;

    // Data, through the Helm release.
    let seed = json!({"replicas": 3, "auth": {}, "adoption": {"statefulSetName": NAME}});
    let raw = QdrantClient::new(&QdrantConnection::new(
        Url::parse(&format!("http://{NAME}-0.{NAME}-headless.{NS}.svc:6333")).unwrap(),
    ))
    .unwrap();
    repeat_until(
        Patience::timeout(PHASE_TIMEOUT, Duration::from_millis(500)),
        async || {
            raw.cluster_info().await.is_ok_and(|c| {
                c.peers.len() == 3 && c.raft_info.is_some_and(|r| r.leader.is_some())
            })
        },
    )
    .await
    .expect("3 peers with a leader");
    raw.create_collection(
        "vectors",
        &json!({"vectors": {"size": 8, "distance": "Cosine"},
            "shard_number": 3, "replication_factor": 2}),
    )
    .await
    .unwrap();
    let conn = QdrantConnection::new(
        Url::parse(&format!("http://{NAME}-0.{NAME}-headless.{NS}.svc:6333")).unwrap(),
    )
    .with_timeout(Duration::from_secs(30));
    real_qdrant::write_points(&conn, "vectors", 0..3000, 8)
        .await
        .unwrap();
    w.harness.seed_spec::<QdrantCluster>(NAME, seed);
    let before = w.counts(3).await;
    let mut ids = vec![];
    for o in 0..3 {
        ids.push(w.peer(o).await.0);
    }
    let (_, uris_before) = w.peer(0).await;
    let claims_before = w.harness.names("v1", "persistentvolumeclaims");
    let running = w.pods(3);
    w.log(&format!(
        "before: points through each pod {before:?}, peer ids {ids:?}, uris {uris_before:?}, claims {claims_before:?}"
    ));
    assert_eq!(before, vec![3000; 3]);
    assert!(uris_before.values().all(|u| !u.contains(".svc")));

    // The takeover: one reconcile.
    let ctx = w.controller();
    reconcile(Arc::new(w.harness.current(NAME)), ctx.clone())
        .await
        .unwrap();
    let qc: QdrantCluster = w.harness.current(NAME);
    let adopted = find_condition(&qc.status.as_ref().unwrap().conditions, ADOPTED)
        .cloned()
        .expect("condition Adopted");
    assert_eq!(adopted.reason, "Adopted", "{adopted:?}");
    let sts = w.sts();
    let owner = &sts["metadata"]["ownerReferences"][0];
    assert_eq!(owner["uid"], json!(qc.metadata.uid), "{sts}");
    assert_eq!(owner["controller"], json!(true));
    assert_eq!(sts["spec"]["updateStrategy"]["type"], "OnDelete");
    assert_eq!(sts["spec"]["selector"]["matchLabels"], selector(NAME));
    assert_eq!(
        sts["spec"]["volumeClaimTemplates"][0]["metadata"]["name"],
        "qdrant-storage"
    );
    let template = &sts["spec"]["template"];
    assert!(
        template["metadata"]["annotations"]["checksum/config"].is_null()
            && template["spec"]["serviceAccountName"].is_null()
            && template["spec"]["initContainers"].is_null(),
        "nothing of the chart's pod template is left: {template}"
    );
    assert!(w.harness.has_event("Adopted", NAME, "keep running"));
    // Give the harness's StatefulSet controller time to act on the new object.
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(w.pods(3), running, "the takeover restarted no pod");
    let after_takeover = w.counts(3).await;
    w.log(&format!(
        "after the takeover: same pods {:?}, points {after_takeover:?}",
        running.iter().map(|p| &p.0).collect::<Vec<_>>()
    ));
    assert_eq!(after_takeover, before);

    // The operator moves the pods to its template through the rollout gate.
    w.drive(&ctx, "pods on the operator's template", |qc| {
        running_with(qc, 3)
    })
    .await;
    let moved = w.pods(3);
    let update = w.sts()["status"]["updateRevision"]
        .as_str()
        .unwrap()
        .to_owned();
    for (o, (now, then)) in moved.iter().zip(&running).enumerate() {
        assert_ne!(now.0, then.0, "pod {o} was replaced by the rollout");
        assert_eq!(now.2, update, "pod {o} runs the operator's template");
    }
    let mut ids_after = vec![];
    for o in 0..3 {
        ids_after.push(w.peer(o).await.0);
    }
    let (_, uris_after) = w.peer(0).await;
    let after = w.counts(3).await;
    let claims_after = w.harness.names("v1", "persistentvolumeclaims");
    w.log(&format!(
        "after the move: points {after:?}, peer ids {ids_after:?}, uris {uris_after:?}, claims {claims_after:?}"
    ));
    assert_eq!(ids_after, ids, "every pod kept its peer id");
    assert_eq!(
        uris_after.keys().collect::<Vec<_>>(),
        uris_before.keys().collect::<Vec<_>>(),
        "consensus has the same 3 peers"
    );
    assert!(
        uris_after
            .values()
            .all(|u| u.contains(&format!(".{NS}.svc:"))),
        "each restarted peer registered itself under the operator's p2p URI: {uris_after:?}"
    );
    assert_eq!(claims_after, claims_before, "no claim was added or lost");
    assert_eq!(after, before);

    // Managed as its own: scale to 4.
    w.harness
        .edit_spec::<QdrantCluster>(NAME, |s| s["replicas"] = json!(4));
    w.drive(&ctx, "scaled to 4", |qc| running_with(qc, 4)).await;
    let scaled = w.counts(4).await;
    w.log(&format!("after scaling to 4: points {scaled:?}"));
    assert_eq!(scaled, vec![3000; 4]);
    assert!(
        w.harness
            .names("v1", "persistentvolumeclaims")
            .contains(&format!("qdrant-storage-{NAME}-3")),
        "the new pod's claim comes from the adopted template"
    );
}
