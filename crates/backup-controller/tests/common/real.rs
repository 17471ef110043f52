//! Real Qdrant peers for the backup-controller's scenarios: the cluster-controller that brings
//! [`testkit::real_cluster::RealCluster`]s up through its own reconcile, and clients for their
//! pods with the clusters' generated API keys.

use std::{
    sync::Arc,
    time::{Duration, Instant},
};

use api_types::{QdrantCluster, cluster::ClusterPhase};
use cluster_controller::{build::Names, context::Context as ClusterContext, reconcile as cluster};
use k8s_openapi::api::core::v1::Secret;
use reconcile_lib::{
    metrics::Metrics,
    qdrant::{QdrantClient, QdrantConnection},
    secrets::secret_value,
};
use testkit::harness::{Harness, Patience, repeat_until};
use url::Url;

use super::Env;

/// How long one phase may take on a loaded 2-core machine.
pub const PHASE_TIMEOUT: Duration = Duration::from_secs(240);

/// The cluster-controller that brings the clusters up, and the scenario's clock.
pub struct Clusters {
    /// The cluster-controller's context.
    pub ctx: Arc<ClusterContext>,
    /// When the scenario started.
    pub started: Instant,
    /// The scenario's tag in its log lines, e.g. `backup_restore`.
    pub tag: &'static str,
}

impl Clusters {
    /// A cluster-controller (20 s Qdrant timeout) against `harness`'s fake API server.
    pub fn new(harness: &Harness, tag: &'static str) -> Self {
        let mut ctx = ClusterContext::new(harness.client(), Arc::new(Metrics::new("test")));
        ctx.qdrant_timeout = Duration::from_secs(20);
        Self {
            ctx: Arc::new(ctx),
            started: Instant::now(),
            tag,
        }
    }
}

impl Env<Clusters> {
    pub fn log(&self, what: &str) {
        println!(
            "[{}] {:>6.1}s {what}",
            self.world.tag,
            self.world.started.elapsed().as_secs_f64()
        );
    }

    pub fn qc(&self, name: &str) -> QdrantCluster {
        self.current(name)
    }

    /// Runs the cluster-controller's reconcile on every cluster until each is Running with
    /// all its peers ready.
    pub async fn up(&self, clusters: &[(&str, i32)]) {
        let outcome = repeat_until(
            Patience::timeout(PHASE_TIMEOUT, Duration::from_millis(250)),
            async || {
                let mut all = true;
                for (name, n) in clusters {
                    let qc = self.qc(name);
                    if let Err(e) = cluster::reconcile(Arc::new(qc), self.world.ctx.clone()).await {
                        self.log(&format!("{name}: reconcile error (retried): {e}"));
                    }
                    let st = self.qc(name).status.unwrap_or_default();
                    all &= st.phase == ClusterPhase::Running
                        && st.ready_replicas == *n
                        && st.peers.len() == *n as usize;
                }
                all
            },
        )
        .await;
        match outcome {
            Ok(took) => self.log(&format!(
                "clusters Running: done in {:.1}s",
                took.as_secs_f64()
            )),
            Err(_) => panic!(
                "clusters not Running after {PHASE_TIMEOUT:?}: {:?}",
                clusters
                    .iter()
                    .map(|(c, _)| self.qc(c).status)
                    .collect::<Vec<_>>()
            ),
        }
    }

    /// A client for cluster `name`'s pod `ordinal`, with the cluster's generated API key.
    pub fn connection(&self, name: &str, ordinal: u32) -> QdrantConnection {
        let names = Names::of(&self.qc(name));
        let secret: Secret = self.current(&names.api_key_secret);
        QdrantConnection::new(Url::parse(&names.pod_http_url(ordinal)).unwrap())
            .with_optional_api_key(secret_value(&secret, "api-key"))
            .with_timeout(Duration::from_secs(30))
    }

    pub fn client(&self, name: &str, ordinal: u32) -> QdrantClient {
        QdrantClient::new(&self.connection(name, ordinal)).unwrap()
    }

    /// (shard, peer) of every `Active` replica of `collection` in cluster `name`, sorted.
    pub async fn active(&self, name: &str, collection: &str) -> Vec<(u32, u64)> {
        self.client(name, 0)
            .collection_cluster_info(collection)
            .await
            .unwrap()
            .active_replicas()
    }

    pub async fn count(&self, name: &str, collection: &str) -> u64 {
        self.client(name, 0)
            .count_points(collection, true)
            .await
            .unwrap()
    }
}
