//! Which Qdrant a QdrantBackup or QdrantRestore works on, as clients for a run: the shared
//! resolver ([`reconcile_lib::target::resolve`]), plus the rule both kinds follow on top of it —
//! no run starts while the QdrantCluster is Scaling or Upgrading — and the per-peer clients.

use api_types::cluster::ClusterPhase;
use kube::ResourceExt;
use reconcile_lib::{
    error::Result,
    target::{self, Target, TargetRef},
};

use crate::{context::Context, run};

/// Clients for a run, or why the run must wait.
pub enum Resolution {
    /// Ready: the clients and a label for humans (`QdrantCluster ns/name`, or the URL without
    /// user name, password and query: [`reconcile_lib::redact::url`]).
    Ready {
        /// The endpoint and per-peer clients.
        source: Box<run::backup::Source>,
        /// What the target is, recorded in manifests.
        label: String,
    },
    /// Not yet: a CamelCase reason (`ClusterNotReady`, `ClusterBusy`, `SecretNotFound`,
    /// `QdrantUnreachable`, ...) and a message naming the object.
    Waiting {
        /// Condition reason.
        reason: &'static str,
        /// What is awaited.
        message: String,
    },
}

/// Resolves `target` of an object in `namespace` for a run of `work` (`backups`, `restores`,
/// used in the message). Reads the QdrantCluster and Secrets (GET), and `GET /cluster` for a
/// connection in distributed mode. Errors: Kubernetes API failures and invalid specs, as
/// [`reconcile_lib::target::resolve`].
pub async fn resolve(
    ctx: &Context,
    namespace: &str,
    target: TargetRef<'_>,
    work: &str,
) -> Result<Resolution> {
    let resolved = match target::resolve(
        namespace,
        target,
        ctx.shared.applier.client(),
        ctx.qdrant_timeout,
        ctx.rewrite.as_ref(),
    )
    .await?
    {
        Target::Ready(r) => r,
        Target::Waiting {
            reason, message, ..
        } => return Ok(Resolution::Waiting { reason, message }),
    };
    if let Some(qc) = &resolved.cluster
        && let Some(phase) = qc.status.as_ref().map(|s| s.phase)
        && matches!(phase, ClusterPhase::Scaling | ClusterPhase::Upgrading)
    {
        return Ok(Resolution::Waiting {
            reason: "ClusterBusy",
            message: format!(
                "waiting: QdrantCluster {} is {phase:?}; {work} start once it is Running",
                qc.name_any()
            ),
        });
    }
    let label = match &resolved.cluster {
        Some(qc) => format!("QdrantCluster {namespace}/{}", qc.name_any()),
        // The label goes into manifest.json, status and events: no credentials, no query.
        None => reconcile_lib::redact::url(&resolved.connection().url),
    };
    Ok(match run::source(&resolved).await {
        Ok(source) => Resolution::Ready {
            source: Box::new(source),
            label,
        },
        Err(e) => Resolution::Waiting {
            reason: "QdrantUnreachable",
            message: format!("reading the peers of the target: {e}"),
        },
    })
}
