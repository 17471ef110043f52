//! One reconcile of a QdrantCluster, as a named pipeline:
//! validate -> dereference -> build -> apply -> update status.
//!
//! Validate and build never touch the network. Apply reads each child and writes only what
//! differs, so a reconcile of an unchanged cluster issues no writes; the status is patched
//! only when it changed.

use std::{sync::Arc, time::Duration};

use api_types::{QdrantCluster, is_paused, validation::validate_cluster};
use k8s_openapi::api::{
    apps::v1::StatefulSet,
    core::v1::{ConfigMap, Service},
    policy::v1::PodDisruptionBudget,
};
use kube::{Api, ResourceExt, runtime::controller::Action};
use reconcile_lib::{
    apply::Outcome,
    context::{Shared, object_key},
    error::{Error, Result},
    metrics::Metrics,
};
use tracing::{info, warn};

use crate::{
    build::{self, Names, Observed},
    peers::{self, PeerAccess, PeerUrlResolver},
    rebalance, rollout,
    scale::{self, ScaleDecision},
    status::{self, Observation},
};

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
        }
    }
}

/// Reconciles one QdrantCluster (the function the Controller runs).
///
/// Transient failures (API 409/429/5xx, unreachable) are returned for the error policy to
/// retry with backoff; permanent ones are written as the Ready condition and retried at the
/// resync interval.
pub async fn reconcile(qc: Arc<QdrantCluster>, ctx: Arc<Context>) -> Result<Action> {
    let _measure = ctx.shared.metrics.reconcile_started();
    match reconcile_inner(&qc, &ctx).await {
        Ok(action) => {
            ctx.shared.on_success(&*qc);
            Ok(action)
        }
        Err(e) if !e.is_transient() => {
            warn!(cluster = %object_key(&*qc), error = %e, "reconcile failed permanently");
            ctx.shared.metrics.reconcile_failed(e.metric_label());
            let obs = Observation {
                blocked: Some((e.metric_label().to_string(), e.to_string())),
                ..Observation::default()
            };
            update_status(&qc, &ctx, &obs).await?;
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
    // Paused: nothing is applied; only the Paused condition is written.
    if is_paused(&qc.metadata) {
        update_status(
            qc,
            ctx,
            &Observation {
                paused: true,
                ..Observation::default()
            },
        )
        .await?;
        return Ok(Action::requeue(ctx.resync));
    }

    // Validate (pure).
    if let Err(errs) = validate_cluster(&qc.spec).and(validate_name(qc)) {
        let message = errs.to_string();
        let first_time = !status::reported(
            qc,
            api_types::conditions::types::READY,
            "InvalidSpec",
            &message,
        );
        update_status(
            qc,
            ctx,
            &Observation {
                invalid: Some(message.clone()),
                ..Observation::default()
            },
        )
        .await?;
        if first_time {
            ctx.shared
                .events
                .warning(qc, "InvalidSpec", "Validate", message)
                .await;
        }
        return Ok(Action::requeue(ctx.resync));
    }

    // Dereference: what the build depends on.
    let names = Names::of(qc);
    let client = ctx.shared.applier.client().clone();
    let sts_api: Api<StatefulSet> = Api::namespaced(client.clone(), &names.namespace);
    let live_sts = sts_api.get_opt(&names.cluster).await?;
    let mut observed = Observed {
        replicas: None,
        image: None,
        tls_hash: None,
        keys_hash: None,
        volume_claim_templates: live_sts
            .as_ref()
            .and_then(|s| s.spec.as_ref())
            .and_then(|s| s.volume_claim_templates.clone()),
    };

    // API keys: the spec's Secrets (generated ones created once), and the served copy the
    // pods read, which follows a rotated key one roll at a time.
    let keys = crate::keys::reconcile(qc, &ctx.shared, &names, live_sts.as_ref()).await?;
    let mut blocked = keys.blocked.clone();
    observed.keys_hash = keys.keys_hash.clone();
    let api_key = keys.operator_key.clone();

    // TLS (spec.tls): the generated CA and server certificate, or the user's Secret. A refused
    // p2p change applies nothing.
    let tls = crate::tls::reconcile(qc, &ctx.shared, &names).await?;
    if tls.refused {
        update_status(
            qc,
            ctx,
            &Observation {
                blocked: tls.blocked,
                ..Observation::default()
            },
        )
        .await?;
        return Ok(Action::requeue(ctx.resync));
    }
    if blocked.is_none() {
        blocked = tls.blocked.clone();
    }
    observed.tls_hash = tls.cert_hash.clone();

    // How the operator reaches each pod's Qdrant.
    let access = PeerAccess {
        resolve: ctx.peer_urls.clone(),
        api_key: api_key.clone(),
        ca_pem: tls.ca_pem.clone(),
        timeout: ctx.qdrant_timeout,
    };

    // Backups and restores of this cluster that are Running: drains and restarts wait for
    // them. Listed only when disruptive work may be due.
    let live_replicas = live_sts
        .as_ref()
        .and_then(|s| s.spec.as_ref())
        .and_then(|s| s.replicas);
    let shrinking = live_replicas.is_some_and(|current| current > qc.spec.replicas);
    let busy = if shrinking
        || qc.spec.rebalance_enabled()
        || rollout::may_be_rolling(qc, live_sts.as_ref())
    {
        rollout::busy_with(&client, &names).await?
    } else {
        vec![]
    };

    // Scale-down: the StatefulSet keeps its pods until Qdrant has drained the leaving peers.
    let mut scale_down = None;
    if let Some(current) = live_replicas
        && current > qc.spec.replicas
    {
        let (replicas, progress) = scale_down_step(qc, ctx, &names, current, &access, &busy).await;
        observed.replicas = Some(replicas);
        scale_down = progress;
    }

    // Upgrade: a downgrade across minor versions is refused; the pods keep their image.
    let downgrade = rollout::check_downgrade(qc, live_sts.as_ref());
    if let Some(refusal) = &downgrade {
        observed.image = Some(refusal.keep_image.clone());
        if !status::reported(
            qc,
            rollout::UPGRADE_BLOCKED,
            rollout::DOWNGRADE_REFUSED,
            &refusal.message,
        ) {
            ctx.shared
                .events
                .warning(qc, "DowngradeRefused", "Upgrade", refusal.message.clone())
                .await;
        }
    }

    // Build (pure).
    let desired = build::build(qc, &observed).map_err(|e| Error::InvalidSpec(e.to_string()))?;

    // Apply.
    let mut changes = vec![];
    let mut note = |kind: &str, name: String, outcome: Outcome| {
        if outcome != Outcome::Unchanged {
            changes.push(format!(
                "{kind} {name} {}",
                if outcome == Outcome::Created {
                    "created"
                } else {
                    "updated"
                }
            ));
        }
    };
    note(
        "ConfigMap",
        desired.config_map.name_any(),
        apply::<ConfigMap>(ctx, &desired.config_map).await?.1,
    );
    note(
        "Service",
        desired.headless_service.name_any(),
        apply::<Service>(ctx, &desired.headless_service).await?.1,
    );
    note(
        "Service",
        desired.client_service.name_any(),
        apply::<Service>(ctx, &desired.client_service).await?.1,
    );
    let (sts, outcome) = apply::<StatefulSet>(ctx, &desired.statefulset).await?;
    note("StatefulSet", sts.name_any(), outcome);
    match &desired.pdb {
        Some(pdb) => note(
            "PodDisruptionBudget",
            pdb.name_any(),
            apply::<PodDisruptionBudget>(ctx, pdb).await?.1,
        ),
        None => {
            let uid = qc.uid().unwrap_or_default();
            if ctx
                .shared
                .applier
                .delete_owned::<PodDisruptionBudget>(&names.namespace, &names.cluster, &uid)
                .await?
            {
                changes.push(format!("PodDisruptionBudget {} deleted", names.cluster));
            }
        }
    }
    if !changes.is_empty() {
        let summary = changes.join(", ");
        info!(cluster = %object_key(qc), %summary, "applied");
        ctx.shared
            .events
            .normal(qc, "Applied", "Apply", summary)
            .await;
    }

    // Volume expansion: grow the claims of the pods the StatefulSet keeps to
    // spec.persistence.size (its claim templates are immutable).
    let pods = sts
        .spec
        .as_ref()
        .and_then(|s| s.replicas)
        .unwrap_or(qc.spec.replicas);
    let volumes = crate::volumes::expand(&ctx.shared, qc, pods).await?;

    // Observe Qdrant once pods are ready.
    let ready = sts
        .status
        .as_ref()
        .and_then(|s| s.ready_replicas)
        .unwrap_or(0);
    let peers = if ready > 0 {
        Some(peers::observe(&names, qc.spec.replicas, &access).await)
    } else {
        None
    };
    if let Some(Err(e)) = &peers {
        warn!(cluster = %object_key(qc), error = %e, "could not read peers from Qdrant");
    }

    // Peer recovery: a pod whose volume came back empty rejoins with a fresh peer id and gets
    // its shards back; never during a scale-down.
    let recovery = if scale_down.is_none() {
        crate::recover::step(qc, ctx, &names, &access, peers.as_ref()).await?
    } else {
        None
    };

    // Rolling restart: one pod at a time, only while the whole cluster is healthy; never
    // during a scale-down or a peer recovery.
    let rollout = if scale_down.is_none() && recovery.is_none() {
        let observed = peers.as_ref().and_then(|p| p.as_ref().ok());
        rollout::step(qc, ctx, &names, &sts, &access, observed, &busy).await?
    } else {
        None
    };

    // Rebalance (opt-in): only a settled cluster with every peer known moves shards.
    let all_ready = ready == qc.spec.replicas;
    let rebalance = match &peers {
        Some(Ok(observed))
            if qc.spec.rebalance_enabled()
                && all_ready
                && scale_down.is_none()
                && rollout.is_none()
                && recovery.is_none()
                && busy.is_empty()
                && observed.peers.len() == usize::try_from(qc.spec.replicas).unwrap_or(0) =>
        {
            let peers = rebalance::peers_of(&names, &observed.peers);
            match rebalance::step(&names, &access, &peers).await {
                Ok(r) => r,
                Err(e) => {
                    warn!(cluster = %object_key(qc), error = %e, "cannot rebalance");
                    None
                }
            }
        }
        _ => None,
    };

    let moving = rebalance
        .as_ref()
        .is_some_and(|r| !r.planned.is_empty() || !r.active.is_empty());
    let requeue = if scale_down.is_some() || rollout.is_some() || recovery.is_some() || moving {
        ctx.scale_down_requeue
    } else {
        ctx.resync
    };
    let requeue = if volumes.resizing() {
        requeue.min(ctx.volume_requeue)
    } else {
        requeue
    };
    // An old API key's grace period ends: drop it on time (at least a second from now).
    let requeue = match keys.recheck {
        Some(rest) => requeue.min(rest.max(Duration::from_secs(1))),
        None => requeue,
    };
    update_status(
        qc,
        ctx,
        &Observation {
            blocked,
            statefulset: Some(sts),
            peers,
            scale_down,
            rollout,
            downgrade,
            rebalance,
            recovery,
            volumes: Some(volumes),
            tls: Some(tls.status),
            ..Observation::default()
        },
    )
    .await?;
    Ok(Action::requeue(requeue))
}

/// One step of a scale-down from `current` pods: the pods to keep, and the progress to
/// report (`None` once the StatefulSet may shrink). Qdrant is asked through pod 0, which
/// never leaves. A refusal is reported (condition ScaleDownBlocked, a Warning event when the
/// reason changes), never an error; an unreachable Qdrant keeps the current size.
async fn scale_down_step(
    qc: &QdrantCluster,
    ctx: &Context,
    names: &Names,
    current: i32,
    access: &PeerAccess,
    busy: &[String],
) -> (i32, Option<status::ScaleDownProgress>) {
    if !busy.is_empty() {
        let message = format!(
            "holding {current} pods: waiting for {} to finish before draining peers (no \
             scale-down during backups and restores)",
            busy.join(", ")
        );
        return (
            current,
            Some(status::ScaleDownProgress {
                message,
                blocked: false,
            }),
        );
    }
    let decision = match access.client(names, 0) {
        Ok(client) => scale::step(names, current, qc.spec.replicas, &client).await,
        Err(e) => Err(e),
    };
    match decision {
        Ok(ScaleDecision::Shrink { replicas }) => {
            ctx.shared
                .events
                .normal(qc, "ScaledDown", "Scale", format!("peers above ordinal {} drained and removed from consensus; StatefulSet shrinks to {replicas}", replicas - 1))
                .await;
            (replicas, None)
        }
        Ok(ScaleDecision::Hold {
            replicas,
            message,
            blocked,
        }) => {
            if blocked && !status::scale_down_refusal_reported(qc, &message) {
                ctx.shared
                    .events
                    .warning(qc, "ScaleDownBlocked", "Scale", message.clone())
                    .await;
            }
            (
                replicas,
                Some(status::ScaleDownProgress { message, blocked }),
            )
        }
        Err(e) => {
            warn!(cluster = %object_key(qc), error = %e, "cannot plan the scale-down");
            let message =
                format!("holding {current} pods: cannot reach Qdrant to plan the scale-down: {e}");
            (
                current,
                Some(status::ScaleDownProgress {
                    message,
                    blocked: false,
                }),
            )
        }
    }
}

async fn apply<K>(ctx: &Context, obj: &K) -> Result<(K, Outcome)>
where
    K: kube::Resource<DynamicType = (), Scope = k8s_openapi::NamespaceResourceScope>
        + serde::Serialize
        + serde::de::DeserializeOwned
        + Clone
        + std::fmt::Debug,
{
    ctx.shared.applier.apply(obj).await
}

async fn update_status(qc: &QdrantCluster, ctx: &Context, obs: &Observation) -> Result<()> {
    let new = status::compute(qc, obs);
    if status::changed(qc, &new) {
        ctx.shared.applier.apply_status(qc, &new).await?;
    }
    Ok(())
}

/// `metadata.name` must leave room for the children's names: the StatefulSet's pods and
/// their `controller-revision-hash` label limit it to 52 characters.
pub fn validate_name(qc: &QdrantCluster) -> Result<(), api_types::validation::ValidationErrors> {
    let name = qc.name_any();
    if name.len() > 52 {
        return Err(api_types::validation::ValidationErrors(vec![
            api_types::validation::FieldError {
                field: "metadata.name".into(),
                message: format!(
                    "must be at most 52 characters (the StatefulSet's limit), got {}",
                    name.len()
                ),
            },
        ]));
    }
    Ok(())
}
