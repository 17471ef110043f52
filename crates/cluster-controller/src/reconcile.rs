//! One reconcile of a QdrantCluster, as a pipeline:
//!
//! gate ([`crate::gate`]) -> observe the StatefulSet ([`crate::observe`]) -> whose it is
//! ([`crate::adoption`]: a StatefulSet this cluster does not control is left alone, or taken
//! over with `spec.adoption` in a reconcile of its own) -> API keys and TLS
//! ([`crate::keys`], [`crate::tls`]) -> the operations that shape the StatefulSet
//! (scale-down, downgrade refusal) -> build (pure, [`crate::build`]) -> apply the children as
//! one set ([`crate::children`]) -> observe Qdrant -> the operations after apply (volume
//! expansion, peer recovery, rollout, rebalance, zone balance) -> status, computed once
//! ([`crate::status`]).
//!
//! The operations run through one [`Driver`] in that declared order, with its rules: at most
//! one disruptive step per reconcile (scale-down > recovery > rollout > rebalance > zone
//! balance), Qdrant
//! errors reported as the operation's progress, one requeue. Apply writes only what differs,
//! so a reconcile of an unchanged cluster issues no writes; the status is patched only when
//! it changed.

use std::{sync::Arc, time::Duration};

use api_types::QdrantCluster;
use kube::runtime::controller::Action;
use reconcile_lib::{
    context::object_key,
    error::{Error, Result},
};
use tracing::{info, warn};

use crate::{
    adoption::{self, Verdict},
    build::{self, Names, Observed},
    children,
    context::Context,
    gate,
    monitoring::Monitoring,
    observe,
    operations::{Driver, Scope},
    peers::PeerAccess,
    publish,
    quotas::Quotas,
    rebalance::Rebalance,
    recover::Recovery,
    rollout::{Downgrade, Rollout},
    scale::ScaleDown,
    status,
    vocabulary::reasons,
    volumes::VolumeExpansion,
    zones::ZoneBalance,
};

/// Reconciles one QdrantCluster (the function the Controller runs).
///
/// Transient failures (API 409/429/5xx, unreachable) are returned for the error policy to
/// retry with backoff; permanent ones are written as the Ready condition and retried at the
/// resync interval.
pub async fn reconcile(qc: Arc<QdrantCluster>, ctx: Arc<Context>) -> Result<Action> {
    let _measure = ctx.shared.metrics.reconcile_started();
    // On the heap: the pipeline's future is large (every operation's state), too large for
    // the stack of a test's or a small runtime's thread.
    match Box::pin(reconcile_inner(&qc, &ctx)).await {
        Ok(action) => {
            ctx.shared.on_success(&*qc);
            Ok(action)
        }
        Err(e) if !e.is_transient() => {
            warn!(cluster = %object_key(&*qc), error = %e, "reconcile failed permanently");
            ctx.shared.metrics.reconcile_failed(e.metric_label());
            let blocked = Some((e.metric_label().to_string(), e.to_string()));
            publish::status(&qc, &ctx, &status::Inputs::blocked(blocked)).await?;
            Ok(Action::requeue(ctx.resync))
        }
        Err(e) => Err(e),
    }
}

/// The error policy: count the error and requeue after this object's next backoff delay.
pub fn error_policy(qc: Arc<QdrantCluster>, error: &Error, ctx: Arc<Context>) -> Action {
    ctx.shared.on_error(&*qc, error)
}

async fn reconcile_inner(qc: &QdrantCluster, ctx: &Context) -> Result<Action> {
    if let Some(gate) = gate::check(qc) {
        return publish::closed(qc, ctx, gate).await;
    }
    let names = Names::of(qc);
    let mut observation = observe::statefulset(&ctx.shared, &names).await?;
    // A StatefulSet this cluster does not control is taken over only with spec.adoption.
    let verdict = adoption::check(qc, &names, observation.live.as_ref());
    let adopted = adoption::report(qc, &names, &verdict);
    if let Verdict::Refused { reason, message } = &verdict {
        return publish::refused_adoption(qc, ctx, reason, message, adopted).await;
    }
    // API keys (the served copy follows a rotated key one roll at a time) and TLS; a refused
    // p2p change applies nothing.
    let keys = crate::keys::reconcile(qc, &ctx.shared, &names, observation.live.as_ref()).await?;
    let tls = crate::tls::reconcile(qc, &ctx.shared, &names).await?;
    if tls.refused {
        publish::status(qc, ctx, &status::Inputs::blocked(tls.blocked)).await?;
        return Ok(Action::requeue(ctx.resync));
    }
    observe::running_jobs(&mut observation, qc, &ctx.shared, &names).await?;
    let access = PeerAccess {
        resolve: ctx.peer_urls.clone(),
        api_key: keys.operator_key.clone(),
        ca_pem: tls.ca_pem.clone(),
        timeout: ctx.qdrant_timeout,
    };
    let mut driver = Driver::new();
    let before = Scope {
        qc,
        names: &names,
        ctx,
        access: &access,
        observation: &observation,
    };
    let scale_down = driver.run(&before, &ScaleDown).await?;
    let downgrade = driver.run(&before, &Downgrade).await?;
    let desired = build::build(
        qc,
        &Observed {
            replicas: scale_down.as_ref().map(|s| s.replicas),
            image: downgrade.as_ref().map(|d| d.keep_image.clone()),
            tls_hash: tls.cert_hash.clone(),
            keys_hash: keys.keys_hash.clone(),
            volume_claim_templates: observation.claim_templates(),
            operator_namespace: ctx.operator_namespace.clone(),
            adopted: adoption::layout(qc, observation.live.as_ref()),
        },
    )
    .map_err(|e| Error::InvalidSpec(e.to_string()))?;
    let taking_over = match (&verdict, observation.live.as_ref()) {
        (Verdict::TakeOver(message), Some(live)) => Some((message.clone(), live.clone())),
        _ => None,
    };
    if let Some((_, live)) = &taking_over {
        adoption::take_over(&ctx.shared, &desired.statefulset, live).await?;
    }
    let applied = children::apply(&ctx.shared, qc, &names, desired).await?;
    observe::after_apply(&mut observation, qc, &names, applied, &access).await;
    if let Some((message, _)) = taking_over {
        // The takeover is a step of its own: no operation may restart or move anything in
        // the reconcile that changed the StatefulSet's owner and template.
        info!(cluster = %object_key(qc), %message, "adopted");
        ctx.shared
            .events
            .normal(qc, reasons::ADOPTED, "Adopt", message)
            .await;
        let inputs = status::Inputs {
            statefulset: observation.applied,
            peers: observation.peers,
            tls: Some(tls.status),
            adoption: adopted,
            ..status::Inputs::default()
        };
        publish::status(qc, ctx, &inputs).await?;
        return Ok(Action::requeue(Duration::from_secs(5)));
    }
    let after = Scope {
        qc,
        names: &names,
        ctx,
        access: &access,
        observation: &observation,
    };
    let volumes = driver.run(&after, &VolumeExpansion).await?;
    let monitoring = driver.run(&after, &Monitoring).await?;
    let quotas = driver.run(&after, &Quotas).await?;
    let recovery = driver.run(&after, &Recovery).await?;
    let rollout = driver.run(&after, &Rollout).await?;
    let rebalance = driver.run(&after, &Rebalance).await?;
    let zones = driver.run(&after, &ZoneBalance).await?;

    // An old API key's grace period ends: drop it on time (at least a second from now).
    let requeue = driver.requeue(ctx.resync);
    let requeue = keys.recheck.map_or(requeue, |rest| {
        requeue.min(rest.max(Duration::from_secs(1)))
    });
    let inputs = status::Inputs {
        blocked: keys.blocked.or(tls.blocked),
        statefulset: observation.applied,
        peers: observation.peers,
        scale_down: scale_down.and_then(|s| s.progress),
        rollout,
        downgrade,
        rebalance,
        recovery,
        volumes,
        monitoring,
        quotas,
        zones,
        tls: Some(tls.status),
        adoption: adopted,
        ..status::Inputs::default()
    };
    publish::status(qc, ctx, &inputs).await?;
    Ok(Action::requeue(requeue))
}
