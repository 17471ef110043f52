//! Publish what a reconcile found: the status computed by [`crate::status::compute`], patched
//! only when it differs from the stored one, and the status and event of a closed gate.

use api_types::QdrantCluster;
use kube::runtime::controller::Action;
use reconcile_lib::error::Result;

use crate::{
    context::Context,
    gate::Gate,
    status,
    vocabulary::{reasons, reported},
};

/// Computes the status of `qc` from `inputs` and server-side applies it to the status
/// subresource when it differs from the stored one (an unchanged cluster sees no write), and
/// counts the cluster under its phase (`qdrant_operator_clusters`).
///
/// # Errors
/// The API server's, patching the status.
pub async fn status(qc: &QdrantCluster, ctx: &Context, inputs: &status::Inputs) -> Result<()> {
    let new = status::compute(qc, inputs);
    let key = reconcile_lib::context::object_key(qc);
    ctx.shared
        .metrics
        .cluster_phase(&key, Some(&format!("{:?}", new.phase)));
    if status::changed(qc, &new) {
        ctx.shared.applier.apply_status(qc, &new).await?;
    }
    Ok(())
}

/// A closed gate: the Paused or InvalidSpec status (a Warning event the first time a spec
/// error is reported), nothing applied, a look again at the resync.
///
/// # Errors
/// The API server's, patching the status.
pub async fn closed(qc: &QdrantCluster, ctx: &Context, gate: Gate) -> Result<Action> {
    match gate {
        Gate::Paused => {
            let inputs = status::Inputs {
                paused: true,
                ..status::Inputs::default()
            };
            status(qc, ctx, &inputs).await?;
        }
        Gate::Invalid(message) => {
            let ready = api_types::conditions::types::READY;
            let first_time = !reported(qc, ready, reasons::INVALID_SPEC, &message);
            let inputs = status::Inputs {
                invalid: Some(message.clone()),
                ..status::Inputs::default()
            };
            status(qc, ctx, &inputs).await?;
            if first_time {
                ctx.shared
                    .events
                    .warning(qc, reasons::INVALID_SPEC, "Validate", message)
                    .await;
            }
        }
    }
    Ok(Action::requeue(ctx.resync))
}
