//! What the cluster-controller's reconcile tests share: [`Env`], the [`Harness`] (fake API
//! server, namespace `qdrant`) with this controller's context and reconcile function, and the
//! Qdrant side of each file's world (none, one fake answering for every pod, or a fake with
//! one view per pod); and a fake Qdrant answering as a three-peer cluster.
//!
//! A test file adds its own helpers with an `impl Env<...>` block of its own: `Env` is a type
//! of the file's crate, like every module of it.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

pub mod helm;
pub mod placement;

use std::{
    collections::BTreeMap,
    ops::Deref,
    sync::{Arc, Mutex},
};

use api_types::{Condition, QdrantCluster, conditions::find_condition};
use cluster_controller::{context::Context, peers::PeerUrlResolver, reconcile::reconcile};
use kube::runtime::controller::Action;
use reconcile_lib::{metrics::Metrics, qdrant::RaftRole};
use serde_json::{Value, json};
use testkit::{
    apiserver::FakeApiServer,
    harness::{Harness, qdrant_writes},
    qdrant::{ClusterState, FakeQdrant, FakeQdrantOptions},
};
use url::Url;

/// Namespace of every test cluster.
pub const NS: &str = "qdrant";
/// apiVersion of the operator's kinds.
pub const QC: &str = "qdrant.operator.dev/v1alpha1";

/// The p2p URI of pod `i` of cluster `demo`.
pub fn peer_uri(i: u64) -> String {
    format!("http://demo-{i}.demo-headless.{NS}.svc:6335/")
}

/// A fake Qdrant in cluster mode with peers 100, 101, 102 (pods 0, 1, 2), answering as 100,
/// the leader.
pub async fn three_peer_qdrant() -> FakeQdrant {
    let peers: Vec<(u64, String)> = (0..3).map(|i| (100 + i, peer_uri(i))).collect();
    FakeQdrant::start(FakeQdrantOptions {
        cluster: Some(ClusterState {
            peer_id: 100,
            peers,
            leader: Some(100),
            role: Some(RaftRole::Leader),
            term: 1,
            commit: 1,
            pending_operations: 0,
        }),
        ..FakeQdrantOptions::default()
    })
    .await
}

/// A fresh controller (as after a restart or a new leader) reaching pods through `urls`: no
/// memory but what it observes.
pub fn context(fake: &FakeApiServer, urls: PeerUrlResolver) -> Arc<Context> {
    let mut ctx = Context::new(fake.client(), Arc::new(Metrics::new("test")));
    ctx.peer_urls = urls;
    Arc::new(ctx)
}

/// How each controller context of an [`Env`] is set up beyond [`Context::new`].
type Configure = Arc<dyn Fn(&mut Context) + Send + Sync>;

/// One test's world: the harness (dereferenced to: `env.fake`, `env.get(..)`,
/// `env.current::<K>(..)` ...), a controller context, and the Qdrant side `Q` of the file.
pub struct Env<Q = ()> {
    pub harness: Harness,
    pub ctx: Arc<Context>,
    pub qdrant: Q,
    configure: Configure,
}

impl<Q> Deref for Env<Q> {
    type Target = Harness;

    fn deref(&self) -> &Harness {
        &self.harness
    }
}

impl<Q> Env<Q> {
    /// An empty fake API server, namespace [`NS`], and a controller set up by `configure`
    /// (as are those of [`Env::controller`]).
    pub fn new(qdrant: Q, configure: impl Fn(&mut Context) + Send + Sync + 'static) -> Self {
        Self::with_harness(Harness::new(NS), qdrant, configure)
    }

    /// [`Env::new`] over `harness` (its fake and namespace), for a Qdrant side that needs the
    /// fake API server to start (real peers).
    pub fn with_harness(
        harness: Harness,
        qdrant: Q,
        configure: impl Fn(&mut Context) + Send + Sync + 'static,
    ) -> Self {
        let configure: Configure = Arc::new(configure);
        let ctx = controller(&harness, &configure);
        Self {
            harness,
            ctx,
            qdrant,
            configure,
        }
    }

    /// A fresh controller (as after a restart or a new leader), set up as [`Env::ctx`]: no
    /// memory but what it observes.
    pub fn controller(&self) -> Arc<Context> {
        controller(&self.harness, &self.configure)
    }

    /// The stored QdrantCluster `name`.
    pub fn cluster(&self, name: &str) -> QdrantCluster {
        self.harness.current(name)
    }

    /// The stored QdrantCluster `demo` (not `current`: that is the harness's, for any kind).
    pub fn qc(&self) -> QdrantCluster {
        self.cluster("demo")
    }

    /// Seeds QdrantCluster `name` with `spec`.
    pub fn seed_cluster(&self, name: &str, spec: Value) -> QdrantCluster {
        self.harness.seed_spec(name, spec)
    }

    /// One reconcile of QdrantCluster `name` by [`Env::ctx`].
    pub async fn try_reconcile(&self, name: &str) -> Result<Action, reconcile_lib::error::Error> {
        reconcile(Arc::new(self.cluster(name)), self.ctx.clone()).await
    }

    /// One reconcile of `demo` by [`Env::ctx`], which must succeed.
    pub async fn reconcile(&self) -> Action {
        self.reconcile_with(&self.ctx).await
    }

    /// One reconcile of `demo` by `ctx`, which must succeed.
    pub async fn reconcile_with(&self, ctx: &Arc<Context>) -> Action {
        reconcile(Arc::new(self.qc()), ctx.clone()).await.unwrap()
    }

    /// Condition `type_` of `demo`'s status (it must exist).
    pub fn condition(&self, type_: &str) -> Condition {
        self.try_condition(type_)
            .unwrap_or_else(|| panic!("condition {type_} missing"))
    }

    /// Condition `type_` of `demo`'s status, if it has a status with one.
    pub fn try_condition(&self, type_: &str) -> Option<Condition> {
        find_condition(&self.qc().status?.conditions, type_).cloned()
    }

    /// StatefulSet `demo` (`null` while there is none).
    pub fn sts(&self) -> Value {
        self.get("apps/v1", "statefulsets", "demo")
            .unwrap_or(Value::Null)
    }

    /// Plays the StatefulSet controller: StatefulSet `name` has all its replicas at revision
    /// `r1`, `ready` of them Ready, for its current generation.
    pub fn mark_statefulset_ready(&self, name: &str, ready: i64) {
        self.set_statefulset_status(name, Some(ready));
    }

    /// [`Env::mark_statefulset_ready`] of `demo` with every replica Ready.
    pub fn mark_ready(&self) {
        self.set_statefulset_status("demo", None);
    }

    /// `ready` Ready replicas, or all of them.
    fn set_statefulset_status(&self, name: &str, ready: Option<i64>) {
        self.edit("apps/v1", "statefulsets", name, |s| {
            let replicas = s["spec"]["replicas"].as_i64().unwrap();
            let generation = s["metadata"]["generation"].clone();
            s["status"] = json!({
                "replicas": replicas, "readyReplicas": ready.unwrap_or(replicas),
                "updatedReplicas": replicas, "currentRevision": "r1", "updateRevision": "r1",
                "observedGeneration": generation,
            });
        });
    }
}

fn controller(harness: &Harness, configure: &Configure) -> Arc<Context> {
    let mut ctx = Context::new(harness.client(), Arc::new(Metrics::new("test")));
    configure(&mut ctx);
    Arc::new(ctx)
}

impl Env {
    /// No Qdrant: the controller's own in-cluster peer URLs (which resolve nowhere here).
    pub fn without_qdrant() -> Self {
        Self::new((), |_| {})
    }
}

impl Env<FakeQdrant> {
    /// [`three_peer_qdrant`], reached by the controller at the one URL for every pod.
    pub async fn with_one_fake() -> Self {
        let qdrant = three_peer_qdrant().await;
        let url = qdrant.url();
        Self::new(qdrant, move |ctx| {
            let url = url.clone();
            ctx.peer_urls = Arc::new(move |_, _| Some(url.clone()));
        })
    }

    /// The requests to the fake Qdrant that change something ([`qdrant_writes`]).
    pub fn qdrant_writes(&self) -> Vec<String> {
        qdrant_writes(&self.qdrant)
    }
}

/// [`three_peer_qdrant`] answering as pod 0 and one view per other pod, each at its own URL.
pub struct Peers {
    /// Answers as peer 100 (pod 0), and holds the state every view answers from.
    pub main: FakeQdrant,
    /// Answer as the other pods' peers (more may be added: a pod that rejoins).
    pub views: Mutex<Vec<FakeQdrant>>,
    /// Pod ordinal -> the REST URL the controller reaches it at (changed by tests: a pod
    /// that stops answering, a new peer).
    pub urls: Arc<Mutex<BTreeMap<u32, Url>>>,
}

/// `env.qdrant.placement(..)` and the like reach the main fake.
impl Deref for Peers {
    type Target = FakeQdrant;

    fn deref(&self) -> &FakeQdrant {
        &self.main
    }
}

impl Env<Peers> {
    /// [`Peers`] of peers 100 (pod 0), 101 (pod 1), 102 (pod 2); every controller resolves
    /// pod `i` through [`Peers::urls`] as it is at the time.
    pub async fn with_peer_views() -> Self {
        let main = three_peer_qdrant().await;
        let v1 = main.peer_view(101).await;
        let v2 = main.peer_view(102).await;
        let urls = Arc::new(Mutex::new(BTreeMap::from([
            (0, main.url()),
            (1, v1.url()),
            (2, v2.url()),
        ])));
        let resolve = urls.clone();
        Self::new(
            Peers {
                main,
                views: Mutex::new(vec![v1, v2]),
                urls,
            },
            move |ctx| {
                let urls = resolve.clone();
                ctx.peer_urls =
                    Arc::new(move |_, ordinal| urls.lock().unwrap().get(&ordinal).cloned());
            },
        )
    }

    /// The requests to the main fake Qdrant that change something ([`qdrant_writes`]).
    pub fn qdrant_writes(&self) -> Vec<String> {
        qdrant_writes(&self.qdrant.main)
    }
}
