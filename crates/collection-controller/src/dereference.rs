//! Dereference: which Qdrant a QdrantCollection targets, and with which key.
//!
//! The QdrantCollection's `spec.cluster` / `spec.connection` pair is resolved by the shared
//! [`reconcile_lib::target::resolve`] (a Ready QdrantCluster's status, or the connection's URL
//! and Secrets); this module only names the spec it reads.

use std::time::Duration;

use api_types::QdrantCollection;
use kube::{Client, ResourceExt};
use reconcile_lib::{
    error::Result,
    qdrant::QdrantClient,
    target::{self, TargetRef},
};

pub use reconcile_lib::target::EndpointRewrite;

/// Where the collection lives, or why that cannot be known yet.
pub enum Target {
    /// The Qdrant holding the collection.
    Ready {
        /// A client for its main endpoint.
        client: QdrantClient,
        /// For a QdrantCluster in a rolling upgrade, the image tag its pods move from
        /// (`status.rollout.fromVersion`): until the rollout ends some peers may still run it.
        upgrading_from: Option<String>,
    },
    /// Not yet: a CamelCase reason and a message for the conditions.
    Waiting {
        /// E.g. `ClusterNotReady`, `ClusterNotFound`, `SecretNotFound`.
        reason: &'static str,
        /// What is awaited, naming the object.
        message: String,
        /// True when the referenced QdrantCluster does not exist at all.
        cluster_gone: bool,
    },
}

/// Resolves the target of `qcol` (see [`reconcile_lib::target::resolve`] for the calls and
/// errors).
pub async fn resolve(
    qcol: &QdrantCollection,
    client: &Client,
    timeout: Duration,
    rewrite: Option<&EndpointRewrite>,
) -> Result<Target> {
    let ns = qcol.namespace().unwrap_or_else(|| "default".into());
    let spec = TargetRef {
        cluster: qcol.spec.cluster.as_ref(),
        connection: qcol.spec.connection.as_ref(),
    };
    Ok(
        match target::resolve(&ns, spec, client, timeout, rewrite).await? {
            target::Target::Ready(resolved) => Target::Ready {
                upgrading_from: resolved
                    .cluster
                    .as_ref()
                    .and_then(|c| c.status.as_ref())
                    .and_then(|s| s.rollout.as_ref())
                    .and_then(|r| r.from_version.clone()),
                client: resolved.client,
            },
            target::Target::Waiting {
                reason,
                message,
                cluster_gone,
            } => Target::Waiting {
                reason,
                message,
                cluster_gone,
            },
        },
    )
}
