//! What every reconcile of a QdrantCluster shares: the controller's clients and settings.

use std::{sync::Arc, time::Duration};

use reconcile_lib::{context::Shared, metrics::Metrics};

use crate::peers::{self, PeerUrlResolver};

/// What every reconcile shares.
pub struct Context {
    /// Applier, events, metrics and backoff, as every controller has them.
    pub shared: Shared,
    /// Where each pod's Qdrant REST endpoint is.
    pub peer_urls: PeerUrlResolver,
    /// Timeout of each Qdrant request.
    pub qdrant_timeout: Duration,
    /// Periodic resync interval: drift is repaired at least this often.
    pub resync: Duration,
    /// Requeue while a scale-down drains peers or a rolling restart runs.
    pub scale_down_requeue: Duration,
    /// Requeue while PersistentVolumeClaims resize (claims are not watched).
    pub volume_requeue: Duration,
    /// The namespace the operator runs in (`POD_NAMESPACE`): the QdrantCluster NetworkPolicy
    /// lets its pods reach REST and gRPC. `None`: `qdrant-operator`.
    pub operator_namespace: Option<String>,
}

impl Context {
    /// A context for `client` with in-cluster peer URLs, 5 s Qdrant timeout and a 5 min resync.
    pub fn new(client: kube::Client, metrics: Arc<Metrics>) -> Self {
        Self {
            shared: Shared::new(
                client,
                crate::FIELD_MANAGER,
                crate::CONTROLLER_NAME,
                metrics,
            ),
            peer_urls: peers::in_cluster_resolver(),
            qdrant_timeout: Duration::from_secs(5),
            resync: Duration::from_secs(300),
            scale_down_requeue: Duration::from_secs(10),
            volume_requeue: Duration::from_secs(15),
            operator_namespace: None,
        }
    }
}
