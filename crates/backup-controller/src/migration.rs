//! Reconciling a QdrantMigration: Pending → Running (→ Verifying) → Succeeded | Failed, a
//! bounded amount of work per reconcile.
//!
//! The pipeline of each reconcile:
//! 1. **dereference**: a fresh GET of the object (the cache may lag the status this
//!    controller wrote a moment ago, and the cursor must be the latest); the pause
//!    annotation holds a migration that is not finished (condition `Paused`);
//! 2. **validate** ([`validate_migration`]): bad input fails the migration at once with
//!    reason `InvalidSpec` and a message naming the field;
//! 3. **resolve** both ends ([`reconcile_lib::target::resolve`]): a QdrantCluster must be
//!    Ready for its current generation, Secrets must exist, else the migration waits (its
//!    phase unchanged, Ready False with the reason, e.g. `ClusterNotReady`, message prefixed
//!    `spec.source:` or `spec.target:`);
//! 4. **plan** (Pending only): the collections (`spec.collections`, or `GET /collections` on
//!    the source), each `Pending`; phase Running;
//! 5. **steps** ([`crate::run::migrate`]), at most [`Context::migration_steps_per_reconcile`]
//!    of them, the status written after each (so a restarted controller redoes at most the
//!    batch that was in flight, and upserting it again is harmless);
//! 6. once every collection is Succeeded: the alias switch (`spec.aliasSwitch`), then phase
//!    Succeeded. Requeued after [`Context::migration_requeue`] while work remains.
//!
//! A failure that needs the user (`CollectionNotFound`, `CollectionExists`,
//! `PointCountMismatch`, `SampleMismatch`, a Qdrant 4xx) fails the migration; one that may
//! pass (Qdrant unreachable, 5xx, 429) leaves the cursor as it was, says so in Ready
//! (`QdrantUnavailable`) and retries after [`Context::wait_requeue`]. Deleting a
//! QdrantMigration stops it; nothing is deleted on either Qdrant (no finalizer).

use std::sync::Arc;

use api_types::{
    QdrantMigration,
    conditions::{
        find_condition,
        reasons::{NOT_PAUSED, PAUSE_ANNOTATION_SET},
    },
    migration::{
        MigrationCollectionStatus, MigrationMethod, MigrationMethodUsed, MigrationPhase,
        MigrationStage, QdrantMigrationStatus,
    },
    validation::validate_migration,
};
use kube::{Api, ResourceExt, runtime::controller::Action};
use reconcile_lib::{
    conditions::{ConditionStatus, Kstatus, new_condition, set_condition, set_kstatus, types},
    error::{Error, Result},
    target::{self, Target, TargetRef},
};

use crate::{
    context::Context,
    phase::now,
    run::migrate::{self, Sides, StepFailure},
};

/// Condition reasons of a QdrantMigration (besides the waiting reasons of
/// [`reconcile_lib::target::resolve`] and the failure reasons of [`StepFailure`]).
pub mod reasons {
    /// Copying.
    pub const RUNNING: &str = "MigrationRunning";
    /// Verifying counts and samples.
    pub const VERIFYING: &str = "MigrationVerifying";
    /// Every collection copied and verified.
    pub const SUCCEEDED: &str = "MigrationSucceeded";
    /// The spec is invalid (the message names the field).
    pub const INVALID_SPEC: &str = "InvalidSpec";
    /// A Qdrant answered a transient error; the step is retried.
    pub const QDRANT_UNAVAILABLE: &str = "QdrantUnavailable";
}

/// Reconciles one QdrantMigration (the function the Controller runs).
///
/// # Errors
/// Kubernetes API failures (reading the object, the QdrantClusters and Secrets, writing the
/// status), retried by the error policy with the object's backoff.
pub async fn reconcile(qm: Arc<QdrantMigration>, ctx: Arc<Context>) -> Result<Action> {
    let _measure = ctx.shared.metrics.reconcile_started();
    let action = sync(&qm, &ctx).await?;
    ctx.shared.on_success(&*qm);
    Ok(action)
}

/// The error policy: count the error and requeue after this object's next backoff delay.
pub fn error_policy(qm: Arc<QdrantMigration>, error: &Error, ctx: Arc<Context>) -> Action {
    ctx.shared.on_error(&*qm, error)
}

/// `status` with `phase`, `message`, `progress` and the Ready condition (True only when
/// Succeeded, with `reason`), kstatus conditions, a Paused condition turned False, and the
/// completion time once final.
pub fn with_phase(
    qm: &QdrantMigration,
    mut status: QdrantMigrationStatus,
    phase: MigrationPhase,
    reason: &str,
    message: &str,
) -> QdrantMigrationStatus {
    let generation = qm.metadata.generation;
    status.observed_generation = generation;
    status.phase = phase;
    status.message = Some(message.to_string());
    if !status.collections.is_empty() {
        let (copied, total) = migrate::totals(&status.collections);
        status.progress = Some(format!("{copied}/{total}"));
    }
    set_condition(
        &mut status.conditions,
        new_condition(
            types::READY,
            ConditionStatus::from_bool(phase == MigrationPhase::Succeeded),
            reason,
            message,
            generation,
        ),
    );
    let state = match phase {
        MigrationPhase::Failed => Kstatus::stalled(reason, message),
        MigrationPhase::Succeeded => Kstatus::current(reason),
        _ => Kstatus::reconciling(reason, message),
    };
    set_kstatus(&mut status.conditions, generation, &state);
    if find_condition(&status.conditions, types::PAUSED).is_some() {
        set_condition(
            &mut status.conditions,
            new_condition(
                types::PAUSED,
                ConditionStatus::False,
                NOT_PAUSED,
                "",
                generation,
            ),
        );
    }
    if phase.is_finished() && status.completion_time.is_none() {
        status.completion_time = Some(now());
    }
    status
}

/// The phase while work remains: Verifying when the current collection is being verified.
fn working_phase(status: &QdrantMigrationStatus) -> (MigrationPhase, &'static str) {
    let verifying = migrate::current(&status.collections)
        .is_some_and(|i| status.collections[i].stage == MigrationStage::Verifying);
    if verifying {
        (MigrationPhase::Verifying, reasons::VERIFYING)
    } else {
        (MigrationPhase::Running, reasons::RUNNING)
    }
}

/// The status writer of one reconcile: server-side apply with the last read's
/// `resourceVersion` as a precondition (a 409 means another writer moved the object on; the
/// reconcile ends with the error and starts again from a fresh read).
struct Writer<'a> {
    ctx: &'a Context,
    obj: QdrantMigration,
}

impl Writer<'_> {
    async fn write(&mut self, status: &QdrantMigrationStatus) -> Result<()> {
        if self.obj.status.as_ref() == Some(status) {
            return Ok(());
        }
        let rv = self.obj.resource_version();
        self.obj = self
            .ctx
            .shared
            .applier
            .apply_status_at(&self.obj, status, rv.as_deref())
            .await?;
        Ok(())
    }

    async fn fail(
        &mut self,
        status: QdrantMigrationStatus,
        reason: &str,
        message: &str,
    ) -> Result<Action> {
        let status = with_phase(&self.obj, status, MigrationPhase::Failed, reason, message);
        self.write(&status).await?;
        self.ctx
            .shared
            .events
            .warning(&self.obj, reason, "Migration", message.to_string())
            .await;
        Ok(Action::await_change())
    }

    /// Not started or not going on yet: the phase as it is, Ready False with `reason`.
    async fn wait(
        &mut self,
        status: QdrantMigrationStatus,
        reason: &str,
        message: &str,
    ) -> Result<Action> {
        let phase = status.phase;
        let status = with_phase(&self.obj, status, phase, reason, message);
        self.write(&status).await?;
        Ok(Action::requeue(self.ctx.wait_requeue))
    }
}

/// Resolves one end (`spec.source` or `spec.target`, named by `field`), or the reason and
/// message to wait with.
async fn resolve(
    ctx: &Context,
    ns: &str,
    end: &api_types::migration::MigrationEndpoint,
    field: &str,
) -> Result<std::result::Result<reconcile_lib::target::Resolved, (&'static str, String)>> {
    let target = TargetRef {
        cluster: end.cluster.as_ref(),
        connection: end.connection.as_ref(),
    };
    match target::resolve(
        ns,
        target,
        ctx.shared.applier.client(),
        ctx.migration_timeout,
        ctx.rewrite.as_ref(),
    )
    .await
    {
        Ok(Target::Ready(r)) => Ok(Ok(*r)),
        Ok(Target::Waiting {
            reason, message, ..
        }) => Ok(Err((reason, format!("{field}: {message}")))),
        Err(Error::InvalidSpec(m)) => Ok(Err((reasons::INVALID_SPEC, format!("{field}: {m}")))),
        Err(e) => Err(e),
    }
}

async fn sync(qm: &QdrantMigration, ctx: &Context) -> Result<Action> {
    // 1. dereference: the latest status (and cursor), not the cache's.
    let ns = qm.namespace().unwrap_or_else(|| "default".into());
    let api: Api<QdrantMigration> = Api::namespaced(ctx.shared.applier.client().clone(), &ns);
    let Some(fresh) = api.get_opt(&qm.name_any()).await? else {
        return Ok(Action::await_change());
    };
    let status = fresh.status.clone().unwrap_or_default();
    if status.phase.is_finished() {
        return Ok(Action::await_change());
    }
    let mut w = Writer { ctx, obj: fresh };
    if api_types::is_paused(&w.obj.metadata) {
        let mut status = status;
        let generation = w.obj.metadata.generation;
        let message = format!(
            "annotation {} is \"true\": the migration is not started or continued",
            api_types::PAUSED_ANNOTATION
        );
        set_condition(
            &mut status.conditions,
            new_condition(
                types::PAUSED,
                ConditionStatus::True,
                PAUSE_ANNOTATION_SET,
                &message,
                generation,
            ),
        );
        set_kstatus(
            &mut status.conditions,
            generation,
            &Kstatus::current(types::PAUSED),
        );
        w.write(&status).await?;
        return Ok(Action::await_change());
    }
    // 2. validate.
    let spec = w.obj.spec.clone();
    if let Err(e) = validate_migration(&spec) {
        return w.fail(status, reasons::INVALID_SPEC, &e.to_string()).await;
    }
    // 3. resolve both ends.
    let source = match resolve(ctx, &ns, &spec.source, "spec.source").await? {
        Ok(c) => c,
        Err((reasons::INVALID_SPEC, m)) => return w.fail(status, reasons::INVALID_SPEC, &m).await,
        Err((reason, m)) => return w.wait(status, reason, &m).await,
    };
    let target = match resolve(ctx, &ns, &spec.target, "spec.target").await? {
        Ok(c) => c,
        Err((reasons::INVALID_SPEC, m)) => return w.fail(status, reasons::INVALID_SPEC, &m).await,
        Err((reason, m)) => return w.wait(status, reason, &m).await,
    };
    let sides = Sides { source, target };
    let mut status = status;
    // 4. plan.
    if status.phase == MigrationPhase::Pending {
        let pairs: Vec<(String, String)> = if spec.collections.is_empty() {
            match sides.source.client.collections().await {
                Ok(names) => names.into_iter().map(|n| (n.clone(), n)).collect(),
                Err(e) => {
                    let m = format!("spec.source: GET /collections: {e}");
                    return w.wait(status, reasons::QDRANT_UNAVAILABLE, &m).await;
                }
            }
        } else {
            spec.collections
                .iter()
                .map(|c| (c.name.clone(), c.target_name().to_string()))
                .collect()
        };
        status.collections = pairs
            .iter()
            .map(|(s, t)| MigrationCollectionStatus::pending(s, t))
            .collect();
        status.start_time = Some(now());
        let message = format!(
            "copying {} collection(s): {}",
            pairs.len(),
            pairs
                .iter()
                .map(|(s, _)| s.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        );
        let status = with_phase(
            &w.obj,
            status,
            MigrationPhase::Running,
            reasons::RUNNING,
            &message,
        );
        w.write(&status).await?;
        ctx.shared
            .events
            .normal(&w.obj, "Started", "Migration", message)
            .await;
        return Ok(Action::requeue(ctx.migration_requeue));
    }
    // 5. steps.
    let uid = w.obj.uid().unwrap_or_default();
    let sample_size = spec.verify.clone().unwrap_or_default().sample_size;
    for _ in 0..ctx.migration_steps_per_reconcile.max(1) {
        let Some(i) = migrate::current(&status.collections) else {
            break;
        };
        let mut c = status.collections[i].clone();
        let snapshot = c.method == Some(MigrationMethodUsed::Snapshot);
        let fallback = spec.method == MigrationMethod::Auto;
        let mut waiting = false;
        let step = match c.stage {
            MigrationStage::Pending => migrate::start(&sides, &uid, spec.method, &mut c).await,
            MigrationStage::Copying if snapshot => {
                migrate::copy_shard(&sides, spec.catch_up, fallback, &mut c)
                    .await
                    .map(|moved| waiting = !moved)
            }
            MigrationStage::Copying | MigrationStage::CatchingUp => {
                migrate::copy_batch(&sides, spec.batch_size, spec.catch_up, &mut c).await
            }
            MigrationStage::Verifying => migrate::verify(&sides, sample_size, &mut c).await,
            // `current` never returns a Succeeded one; a Failed one is final.
            MigrationStage::Succeeded | MigrationStage::Failed => Err(StepFailure {
                reason: "Failed",
                message: c.message.clone().unwrap_or_default(),
                transient: false,
            }),
        };
        match step {
            Ok(()) => {
                status.collections[i] = c;
                let (phase, reason) = working_phase(&status);
                let message = status.collections[i].message.clone().unwrap_or_default();
                let message = format!("{}: {message}", status.collections[i].name);
                status = with_phase(&w.obj, status, phase, reason, &message);
                w.write(&status).await?;
                if waiting {
                    // Qdrant copies the recovered shards to their other replicas: look again
                    // in a while rather than asking in a tight loop.
                    return Ok(Action::requeue(ctx.wait_requeue));
                }
            }
            Err(f) if f.transient => {
                return w
                    .wait(
                        status,
                        reasons::QDRANT_UNAVAILABLE,
                        &format!("{} (retrying)", f.message),
                    )
                    .await;
            }
            Err(f) => {
                c.stage = MigrationStage::Failed;
                c.message = Some(f.message.clone());
                status.collections[i] = c;
                return w.fail(status, f.reason, &f.message).await;
            }
        }
    }
    if migrate::current(&status.collections).is_some() {
        return Ok(Action::requeue(ctx.migration_requeue));
    }
    // 6. alias switch, then done.
    if let Some(a) = &spec.alias_switch
        && status.switched_alias.is_none()
        && let Some(c) = status.collections.first()
    {
        let collection = c.target_name.clone();
        match migrate::switch_alias(&sides.target.client, &a.alias, &collection).await {
            Ok(()) => status.switched_alias = Some(a.alias.clone()),
            Err(f) if f.transient => {
                return w
                    .wait(
                        status,
                        reasons::QDRANT_UNAVAILABLE,
                        &format!("{} (retrying)", f.message),
                    )
                    .await;
            }
            Err(f) => return w.fail(status, f.reason, &f.message).await,
        }
    }
    let (copied, _) = migrate::totals(&status.collections);
    let mut message = format!(
        "copied and verified {} collection(s), {copied} points",
        status.collections.len()
    );
    if let Some(alias) = &status.switched_alias {
        message.push_str(&format!(
            "; alias {alias} points to {}",
            status.collections[0].target_name
        ));
    }
    let status = with_phase(
        &w.obj,
        status,
        MigrationPhase::Succeeded,
        reasons::SUCCEEDED,
        &message,
    );
    w.write(&status).await?;
    ctx.shared
        .events
        .normal(&w.obj, "Succeeded", "Migration", message)
        .await;
    Ok(Action::await_change())
}
