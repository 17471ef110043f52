//! Publish what a reconcile found: the status computed by [`crate::status::compute`], patched
//! only when it differs from the stored one, and the status and event of a closed gate.

use std::time::Duration;

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

/// A StatefulSet left alone ([`crate::adoption::Verdict::Refused`]): Ready and Progressing
/// False with `reason` and `message`, condition Adopted False when `spec.adoption` is set
/// (`adopted`), a Warning event the first time this refusal is reported, nothing applied, a
/// look again within 30 seconds (the StatefulSet is not watched before it is owned).
///
/// # Errors
/// The API server's, patching the status.
pub async fn refused_adoption(
    qc: &QdrantCluster,
    ctx: &Context,
    reason: &str,
    message: &str,
    adopted: Option<crate::adoption::Report>,
) -> Result<Action> {
    let inputs = status::Inputs {
        blocked: Some((reason.to_string(), message.to_string())),
        adoption: adopted,
        ..status::Inputs::default()
    };
    refusal(qc, ctx, &inputs, (reason, "Adopt", message)).await?;
    Ok(Action::requeue(ctx.resync.min(Duration::from_secs(30))))
}

/// Publishes `inputs` (whose Ready condition says `reason` and `message`) and, unless the
/// stored Ready condition already said so, one Warning event `reason` for `action`.
async fn refusal(
    qc: &QdrantCluster,
    ctx: &Context,
    inputs: &status::Inputs,
    (reason, action, message): (&str, &str, &str),
) -> Result<()> {
    let ready = api_types::conditions::types::READY;
    let first_time = !reported(qc, ready, reason, message);
    status(qc, ctx, inputs).await?;
    if first_time {
        ctx.shared
            .events
            .warning(qc, reason, action, message.to_string())
            .await;
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
            let inputs = status::Inputs {
                invalid: Some(message.clone()),
                ..status::Inputs::default()
            };
            refusal(
                qc,
                ctx,
                &inputs,
                (reasons::INVALID_SPEC, "Validate", &message),
            )
            .await?;
        }
    }
    Ok(Action::requeue(ctx.resync))
}
