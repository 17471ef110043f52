//! `kubectl qdrant`: the Qdrant operator from the command line.
//!
//! Each subcommand is a function of this library over a [`kube::Client`] (and, where Qdrant
//! is asked, a [`reconcile_lib::qdrant::QdrantClient`]) that returns the text it prints, so it
//! is tested against the fake API server and the fake Qdrant:
//!
//! - [`status`]: a QdrantCluster's peers, Raft roles, conditions and what the operator waits
//!   for; with a Qdrant URL also the shard replicas per peer and the running transfers.
//! - [`runs`]: a QdrantBackup of a cluster now, or a QdrantRestore of a backup, waited for.
//! - [`pause`]: set or remove the pause annotation on any kind of the operator.
//! - [`plan`]: what a scale-down to N peers would move, or why the operator would refuse it,
//!   from the operator's own pure planner.
//! - [`render`]: the objects the operator would create for a file of mixed kinds, offline.

pub mod pause;
pub mod plan;
pub mod render;
pub mod runs;
pub mod status;

/// What a subcommand can fail with.
#[derive(Debug, thiserror::Error)]
pub enum PluginError {
    /// The Kubernetes API refused or could not be reached.
    #[error("Kubernetes API: {0}")]
    Kube(#[from] kube::Error),
    /// Qdrant refused or could not be reached.
    #[error("Qdrant: {0}")]
    Qdrant(#[from] reconcile_lib::qdrant::QdrantError),
    /// The named object does not exist.
    #[error("{kind} {namespace}/{name} not found")]
    NotFound {
        /// Its kind.
        kind: String,
        /// Its namespace.
        namespace: String,
        /// Its name.
        name: String,
    },
    /// The input (a flag, a file) is not usable; the message names it.
    #[error("{0}")]
    Input(String),
    /// A waited-for run did not finish in time, or failed.
    #[error("{0}")]
    Run(String),
}

/// Result of a subcommand: the text to print.
pub type Result<T, E = PluginError> = std::result::Result<T, E>;

/// The API group and version of every kind of the operator.
pub const API_VERSION: &str = "qdrant.operator.dev/v1alpha1";

/// QdrantCluster `namespace/name`.
///
/// # Errors
/// [`PluginError::NotFound`] when it does not exist; the API's errors.
pub async fn get_cluster(
    client: &kube::Client,
    namespace: &str,
    name: &str,
) -> Result<api_types::QdrantCluster> {
    let api: kube::Api<api_types::QdrantCluster> = kube::Api::namespaced(client.clone(), namespace);
    api.get_opt(name)
        .await?
        .ok_or_else(|| PluginError::NotFound {
            kind: "QdrantCluster".into(),
            namespace: namespace.into(),
            name: name.into(),
        })
}
