//! One reconcile of a QdrantBackupSchedule, as a named pipeline:
//! validate -> build -> apply -> retention -> update status.
//!
//! - **Validate** ([`validate_schedule`], [`validate_name`]): a refused spec becomes
//!   `Ready=False` with reason `InvalidSpec` and a message naming the field, plus one Warning
//!   event; nothing is applied (children of an earlier valid spec are left as they are, and
//!   the CronJob's pods refuse to create backups from an invalid spec).
//! - **Build** ([`crate::build`], pure) and **apply**: the ServiceAccount, Role, RoleBinding
//!   and CronJob, by server-side apply; a child that already matches is not written.
//! - **Retention** ([`crate::retention`], pure): the schedule's QdrantBackups (label
//!   `qdrant.operator.dev/schedule`, controller owner reference to this schedule) are listed
//!   and those the rules select are deleted, each with a Normal event naming it. Deleting a
//!   QdrantBackup lets the backup-controller apply its `deletionPolicy` to the S3 objects.
//! - **Status**: written only when it changed, so a resync of an unchanged schedule sends
//!   reads only.
//!
//! The pause annotation stops everything but the `Paused` condition. No finalizer: every
//! child and every backup has an owner reference to the schedule and is garbage-collected.

use std::sync::Arc;

use api_types::{
    QdrantBackup, QdrantBackupSchedule, QdrantBackupScheduleStatus,
    backup::BackupPhase,
    conditions::{ConditionStatus, find_condition, set_condition},
    is_paused,
    validation::{FieldError, ValidationErrors, validate_schedule},
};
use jiff::Timestamp;
use k8s_openapi::api::core::v1::ObjectReference;
use kube::{
    Api, Resource, ResourceExt,
    api::{DeleteParams, ListParams, Preconditions},
    runtime::{
        controller::Action,
        events::{Event, EventType, Recorder, Reporter},
    },
};
use reconcile_lib::{
    apply::Outcome as ApplyOutcome,
    conditions::{Kstatus, new_condition, set_kstatus},
    context::object_key,
    error::{Error, Result},
};
use tracing::{info, warn};

use crate::{
    build::{self, MAX_SCHEDULE_NAME_LEN, Names, backup_selector},
    context::{CONTROLLER_NAME, Context},
    retention::{self, BackupInfo},
};

/// Condition types of a QdrantBackupSchedule.
pub mod types {
    pub use api_types::conditions::types::{PAUSED, READY};
    /// `spec.suspend` is true: the CronJob creates no backups (retention still runs).
    pub const SUSPENDED: &str = "Suspended";
}

/// Condition reasons of a QdrantBackupSchedule.
pub mod reasons {
    /// Ready: the CronJob and its RBAC are applied.
    pub const CRON_JOB_APPLIED: &str = "CronJobApplied";
    /// Ready: the spec was refused.
    pub const INVALID_SPEC: &str = "InvalidSpec";
    /// Suspended True.
    pub const SUSPENDED: &str = "SuspendedBySpec";
    /// Suspended False.
    pub const NOT_SUSPENDED: &str = "NotSuspended";
    /// Paused True.
    pub const PAUSED: &str = api_types::conditions::reasons::PAUSE_ANNOTATION_SET;
    /// Paused False.
    pub const NOT_PAUSED: &str = api_types::conditions::reasons::NOT_PAUSED;
    /// Any condition before it was first observed.
    pub const NOT_OBSERVED: &str = "NotObserved";
}

/// Reconciles one QdrantBackupSchedule (the function the Controller runs).
///
/// Transient failures (API 409/429/5xx, unreachable) are returned for the error policy to
/// retry with backoff; permanent ones (e.g. 403 when the controller may not create the Role)
/// are written as `Ready=False` and retried at the resync interval.
pub async fn reconcile(qbs: Arc<QdrantBackupSchedule>, ctx: Arc<Context>) -> Result<Action> {
    let _measure = ctx.shared.metrics.reconcile_started();
    match reconcile_inner(&qbs, &ctx).await {
        Ok(action) => {
            ctx.shared.on_success(&*qbs);
            Ok(action)
        }
        Err(e) if !e.is_transient() => {
            warn!(schedule = %object_key(&*qbs), error = %e, "reconcile failed permanently");
            ctx.shared.metrics.reconcile_failed(e.metric_label());
            let outcome = Outcome::Failed {
                reason: e.metric_label().to_string(),
                message: e.to_string(),
            };
            write_status(&qbs, &ctx, &outcome).await?;
            Ok(Action::requeue(ctx.resync))
        }
        Err(e) => Err(e),
    }
}

/// The error policy: count the error and requeue after this object's next backoff delay.
pub fn error_policy(qbs: Arc<QdrantBackupSchedule>, error: &Error, ctx: Arc<Context>) -> Action {
    ctx.shared.on_error(&*qbs, error)
}

/// `metadata.name` becomes the CronJob's name, which Kubernetes limits to
/// [`MAX_SCHEDULE_NAME_LEN`] characters.
pub fn validate_name(qbs: &QdrantBackupSchedule) -> Result<(), ValidationErrors> {
    let name = qbs.name_any();
    if name.len() > MAX_SCHEDULE_NAME_LEN {
        return Err(ValidationErrors(vec![FieldError {
            field: "metadata.name".into(),
            message: format!(
                "must be at most {MAX_SCHEDULE_NAME_LEN} characters (the CronJob takes this name), got {}",
                name.len()
            ),
        }]));
    }
    Ok(())
}

/// What one reconcile found, for [`compute_status`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// The pause annotation is set; nothing was applied.
    Paused,
    /// The spec was refused (the message names the field).
    Invalid(String),
    /// A permanent API error (reason: the error's metric label).
    Failed {
        /// CamelCase reason.
        reason: String,
        /// The error.
        message: String,
    },
    /// The children are applied and retention ran.
    Applied(Observed),
}

/// What an applied reconcile observed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Observed {
    /// Name of the CronJob.
    pub cron_job_name: String,
    /// The CronJob's `status.lastScheduleTime` (RFC 3339), if it ran yet.
    pub last_schedule_time: Option<String>,
    /// The schedule's backups left after retention.
    pub kept: Vec<BackupInfo>,
}

async fn write_status(qbs: &QdrantBackupSchedule, ctx: &Context, outcome: &Outcome) -> Result<()> {
    let new = compute_status(qbs, outcome);
    if qbs.status.as_ref() != Some(&new) {
        ctx.shared.applier.apply_status(qbs, &new).await?;
    }
    Ok(())
}

async fn reconcile_inner(qbs: &QdrantBackupSchedule, ctx: &Context) -> Result<Action> {
    // Paused: nothing is applied or deleted; only the Paused condition is written.
    if is_paused(&qbs.metadata) {
        write_status(qbs, ctx, &Outcome::Paused).await?;
        return Ok(Action::requeue(ctx.resync));
    }

    // Validate (pure).
    if let Err(errs) = validate_schedule(&qbs.spec).and(validate_name(qbs)) {
        let message = errs.to_string();
        let first_time = !status_says_invalid(qbs, &message);
        write_status(qbs, ctx, &Outcome::Invalid(message.clone())).await?;
        if first_time {
            ctx.shared
                .events
                .warning(qbs, "InvalidSpec", "Validate", message)
                .await;
        }
        return Ok(Action::requeue(ctx.resync));
    }

    // Build (pure), then apply: the pods' identity before the CronJob that uses it.
    let names = Names::of(qbs);
    let desired = build::build(qbs, &ctx.image);
    let applier = &ctx.shared.applier;
    applier.apply(&desired.service_account).await?;
    applier.apply(&desired.role).await?;
    applier.apply(&desired.role_binding).await?;
    let (cron_job, outcome) = applier.apply(&desired.cron_job).await?;
    match outcome {
        ApplyOutcome::Created => {
            info!(schedule = %object_key(qbs), "CronJob created");
            ctx.shared
                .events
                .normal(
                    qbs,
                    "CronJobCreated",
                    "Create",
                    format!(
                        "created CronJob {} ({})",
                        names.cron_job(),
                        describe_schedule(qbs)
                    ),
                )
                .await;
        }
        ApplyOutcome::Updated => {
            info!(schedule = %object_key(qbs), "CronJob updated");
            ctx.shared
                .events
                .normal(
                    qbs,
                    "CronJobUpdated",
                    "Update",
                    format!(
                        "updated CronJob {} ({})",
                        names.cron_job(),
                        describe_schedule(qbs)
                    ),
                )
                .await;
        }
        ApplyOutcome::Unchanged => {}
    }
    let last_schedule_time = cron_job
        .status
        .as_ref()
        .and_then(|s| s.last_schedule_time.as_ref())
        .map(|t| t.0.to_string());

    // Retention.
    let kept = enforce_retention(qbs, ctx, &names).await?;

    write_status(
        qbs,
        ctx,
        &Outcome::Applied(Observed {
            cron_job_name: names.cron_job().to_string(),
            last_schedule_time,
            kept,
        }),
    )
    .await?;
    Ok(Action::requeue(ctx.resync))
}

/// Lists the schedule's backups, deletes those retention selects (an event each) and returns
/// the others. Backups already being deleted are neither counted nor deleted again.
async fn enforce_retention(
    qbs: &QdrantBackupSchedule,
    ctx: &Context,
    names: &Names,
) -> Result<Vec<BackupInfo>> {
    let api: Api<QdrantBackup> =
        Api::namespaced(ctx.shared.applier.client().clone(), &names.namespace);
    let list = api
        .list(&ListParams::default().labels(&backup_selector(&names.schedule)))
        .await?;
    let now = Timestamp::now();
    let uid = qbs.uid();
    let mut refs = std::collections::BTreeMap::new();
    let mut infos = vec![];
    for b in list.items {
        let controlled = b
            .owner_references()
            .iter()
            .any(|o| Some(&o.uid) == uid.as_ref() && o.controller == Some(true));
        if !controlled || b.metadata.deletion_timestamp.is_some() {
            continue;
        }
        let info = backup_info(&b, now);
        refs.insert(info.name.clone(), b.object_ref(&()));
        infos.push(info);
    }
    let Some(rules) = &qbs.spec.retention else {
        return Ok(infos);
    };
    let deletions = retention::to_delete(&infos, rules, now).map_err(Error::InvalidSpec)?;
    for d in &deletions {
        let backup_ref = refs.get(&d.name).cloned().unwrap_or_default();
        let params = DeleteParams {
            preconditions: Some(Preconditions {
                uid: backup_ref.uid.clone(),
                resource_version: None,
            }),
            ..DeleteParams::background()
        };
        match api.delete(&d.name, &params).await {
            Ok(_) => {
                info!(schedule = %object_key(qbs), backup = %d.name, rule = %d.rule, "retention deleted a backup");
                deletion_event(
                    ctx,
                    qbs,
                    backup_ref,
                    format!("deleted QdrantBackup {} ({})", d.name, d.rule),
                )
                .await;
            }
            // Gone already, or replaced by another object of the same name: nothing to do.
            Err(kube::Error::Api(s)) if s.code == 404 || s.code == 409 => {}
            Err(e) => return Err(e.into()),
        }
    }
    infos.retain(|i| !deletions.iter().any(|d| d.name == i.name));
    Ok(infos)
}

/// A Normal event `BackupDeleted` on the schedule with the deleted QdrantBackup as its
/// `related` object. Published with its own recorder: the shared one aggregates events of the
/// same reason on the same object into a series that keeps the first note, which would hide
/// the names of all deleted backups but the first. Failure is logged, not returned.
async fn deletion_event(
    ctx: &Context,
    qbs: &QdrantBackupSchedule,
    backup: ObjectReference,
    note: String,
) {
    let reporter = Reporter {
        controller: CONTROLLER_NAME.to_string(),
        instance: std::env::var("POD_NAME").ok(),
    };
    let recorder = Recorder::new(ctx.shared.applier.client().clone(), reporter);
    let ev = Event {
        type_: EventType::Normal,
        reason: "BackupDeleted".into(),
        note: Some(note),
        action: "Delete".into(),
        secondary: Some(backup),
    };
    if let Err(e) = recorder.publish(&ev, &qbs.object_ref(&())).await {
        warn!(error = %e, "could not publish event");
    }
}

/// Retention's view of one QdrantBackup; a backup without a creation time counts as created
/// `now` (the newest, so never deleted by age).
pub fn backup_info(b: &QdrantBackup, now: Timestamp) -> BackupInfo {
    BackupInfo {
        name: b.name_any(),
        created: b.metadata.creation_timestamp.as_ref().map_or(now, |t| t.0),
        phase: b.status.as_ref().map(|s| s.phase).unwrap_or_default(),
    }
}

fn status_says_invalid(qbs: &QdrantBackupSchedule, message: &str) -> bool {
    qbs.status.as_ref().is_some_and(|s| {
        api_types::conditions::condition_says(
            &s.conditions,
            types::READY,
            reasons::INVALID_SPEC,
            message,
        )
    })
}

/// `"0 2 * * *" in Europe/Berlin`, for messages.
fn describe_schedule(qbs: &QdrantBackupSchedule) -> String {
    match &qbs.spec.time_zone {
        Some(tz) => format!("schedule {:?} in {tz}", qbs.spec.schedule),
        None => format!("schedule {:?}", qbs.spec.schedule),
    }
}

/// The status after `outcome`. Conditions keep their transition time unless their status
/// changes, and nothing else depends on the clock, so an unchanged schedule produces an
/// identical status. Every condition is set on first sight.
pub fn compute_status(qbs: &QdrantBackupSchedule, outcome: &Outcome) -> QdrantBackupScheduleStatus {
    let prev = qbs.status.clone().unwrap_or_default();
    let generation = qbs.metadata.generation;
    let mut st = QdrantBackupScheduleStatus {
        observed_generation: generation,
        ..prev.clone()
    };
    let mut set = |t: &str, s: ConditionStatus, reason: &str, message: String| {
        set_condition(
            &mut st.conditions,
            new_condition(t, s, reason, message, generation),
        );
    };
    let paused = matches!(outcome, Outcome::Paused);
    if paused {
        set(
            types::PAUSED,
            ConditionStatus::True,
            reasons::PAUSED,
            format!(
                "annotation {}=true: the CronJob is left as it is and retention is not enforced",
                api_types::PAUSED_ANNOTATION
            ),
        );
    } else {
        set(
            types::PAUSED,
            ConditionStatus::False,
            reasons::NOT_PAUSED,
            String::new(),
        );
    }
    match outcome {
        Outcome::Paused => {}
        Outcome::Invalid(message) => set(
            types::READY,
            ConditionStatus::False,
            reasons::INVALID_SPEC,
            message.clone(),
        ),
        Outcome::Failed { reason, message } => {
            set(
                types::READY,
                ConditionStatus::False,
                reason,
                message.clone(),
            );
        }
        Outcome::Applied(obs) => {
            set(
                types::READY,
                ConditionStatus::True,
                reasons::CRON_JOB_APPLIED,
                format!(
                    "CronJob {} creates a QdrantBackup on {}",
                    obs.cron_job_name,
                    describe_schedule(qbs)
                ),
            );
            if qbs.spec.suspend {
                set(
                    types::SUSPENDED,
                    ConditionStatus::True,
                    reasons::SUSPENDED,
                    "spec.suspend is true: no new backups are created; retention still applies"
                        .into(),
                );
            } else {
                set(
                    types::SUSPENDED,
                    ConditionStatus::False,
                    reasons::NOT_SUSPENDED,
                    String::new(),
                );
            }
            st.cron_job_name = Some(obs.cron_job_name.clone());
            if obs.last_schedule_time.is_some() {
                st.last_schedule_time = obs.last_schedule_time.clone();
            }
            let newest = |only_succeeded: bool| {
                obs.kept
                    .iter()
                    .filter(|b| !only_succeeded || b.phase == BackupPhase::Succeeded)
                    .max_by(|a, b| (a.created, &a.name).cmp(&(b.created, &b.name)))
                    .map(|b| b.name.clone())
            };
            st.last_backup = newest(false);
            st.last_successful_backup = newest(true);
            st.backups = u32::try_from(obs.kept.len()).unwrap_or(u32::MAX);
        }
    }
    for t in [types::READY, types::SUSPENDED, types::PAUSED] {
        if find_condition(&st.conditions, t).is_none() {
            set_condition(
                &mut st.conditions,
                new_condition(
                    t,
                    ConditionStatus::Unknown,
                    reasons::NOT_OBSERVED,
                    String::new(),
                    generation,
                ),
            );
        }
    }
    // kstatus: a refused spec or a permanent API error stalls; an applied schedule is Current.
    let ready = find_condition(&st.conditions, types::READY)
        .map(|c| (c.reason.clone(), c.message.clone()))
        .unwrap_or_default();
    let state = match outcome {
        Outcome::Paused => Kstatus::current(types::PAUSED),
        Outcome::Invalid(_) | Outcome::Failed { .. } => Kstatus::stalled(&ready.0, &ready.1),
        Outcome::Applied(_) => Kstatus::current(&ready.0),
    };
    set_kstatus(&mut st.conditions, generation, &state);
    st
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use serde_json::json;

    use super::*;

    fn schedule(name: &str, suspend: bool) -> QdrantBackupSchedule {
        serde_json::from_value(json!({
            "apiVersion": "qdrant.operator.dev/v1alpha1",
            "kind": "QdrantBackupSchedule",
            "metadata": {"name": name, "namespace": "search", "uid": "u", "generation": 3},
            "spec": {
                "schedule": "0 2 * * *",
                "timeZone": "Europe/Berlin",
                "suspend": suspend,
                "backupTemplate": {"cluster": {"name": "demo"}, "storage": {"s3": {"bucket": "b-1"}}}
            }
        }))
        .unwrap()
    }

    fn info(name: &str, at: &str, phase: BackupPhase) -> BackupInfo {
        BackupInfo {
            name: name.into(),
            created: at.parse().unwrap(),
            phase,
        }
    }

    fn cond<'a>(
        st: &'a QdrantBackupScheduleStatus,
        t: &str,
    ) -> &'a api_types::conditions::Condition {
        find_condition(&st.conditions, t).unwrap()
    }

    #[test]
    fn applied_status() {
        let qbs = schedule("nightly", false);
        let obs = Observed {
            cron_job_name: "nightly".into(),
            last_schedule_time: Some("2026-03-10T01:00:00Z".into()),
            kept: vec![
                info("nightly-3", "2026-03-10T01:00:00Z", BackupPhase::Running),
                info("nightly-1", "2026-03-08T01:00:00Z", BackupPhase::Succeeded),
                info("nightly-2", "2026-03-09T01:00:00Z", BackupPhase::Succeeded),
            ],
        };
        let st = compute_status(&qbs, &Outcome::Applied(obs.clone()));
        assert_eq!(st.observed_generation, Some(3));
        assert_eq!(st.cron_job_name.as_deref(), Some("nightly"));
        assert_eq!(
            st.last_schedule_time.as_deref(),
            Some("2026-03-10T01:00:00Z")
        );
        assert_eq!(st.last_backup.as_deref(), Some("nightly-3"));
        assert_eq!(st.last_successful_backup.as_deref(), Some("nightly-2"));
        assert_eq!(st.backups, 3);
        let ready = cond(&st, types::READY);
        assert_eq!(ready.status, ConditionStatus::True);
        assert_eq!(ready.reason, "CronJobApplied");
        assert_eq!(
            ready.message,
            "CronJob nightly creates a QdrantBackup on schedule \"0 2 * * *\" in Europe/Berlin"
        );
        assert_eq!(cond(&st, types::SUSPENDED).status, ConditionStatus::False);
        assert_eq!(cond(&st, types::PAUSED).status, ConditionStatus::False);

        // The same observation again: the identical status (no write).
        let mut again = qbs.clone();
        again.status = Some(st.clone());
        assert_eq!(compute_status(&again, &Outcome::Applied(obs.clone())), st);

        // The CronJob lost its lastScheduleTime (re-created): the last known one stays.
        let obs2 = Observed {
            last_schedule_time: None,
            ..obs
        };
        assert_eq!(
            compute_status(&again, &Outcome::Applied(obs2))
                .last_schedule_time
                .as_deref(),
            Some("2026-03-10T01:00:00Z")
        );
    }

    #[test]
    fn suspended_and_empty() {
        let qbs = schedule("nightly", true);
        let st = compute_status(
            &qbs,
            &Outcome::Applied(Observed {
                cron_job_name: "nightly".into(),
                last_schedule_time: None,
                kept: vec![],
            }),
        );
        let s = cond(&st, types::SUSPENDED);
        assert_eq!(
            (s.status, s.reason.as_str()),
            (ConditionStatus::True, "SuspendedBySpec")
        );
        assert_eq!(cond(&st, types::READY).status, ConditionStatus::True);
        assert_eq!(st.last_backup, None);
        assert_eq!(st.last_successful_backup, None);
        assert_eq!(st.backups, 0);
    }

    #[test]
    fn invalid_and_paused_set_every_condition() {
        let qbs = schedule("nightly", false);
        let st = compute_status(&qbs, &Outcome::Invalid("spec.schedule: bad".into()));
        let ready = cond(&st, types::READY);
        assert_eq!(
            (ready.status, ready.reason.as_str(), ready.message.as_str()),
            (ConditionStatus::False, "InvalidSpec", "spec.schedule: bad")
        );
        assert_eq!(cond(&st, types::SUSPENDED).status, ConditionStatus::Unknown);
        assert_eq!(st.cron_job_name, None);

        let st = compute_status(&qbs, &Outcome::Paused);
        assert_eq!(cond(&st, types::PAUSED).status, ConditionStatus::True);
        assert_eq!(cond(&st, types::READY).status, ConditionStatus::Unknown);
    }

    #[test]
    fn name_length() {
        assert!(validate_name(&schedule(&"a".repeat(52), false)).is_ok());
        let e = validate_name(&schedule(&"a".repeat(53), false)).unwrap_err();
        assert!(
            e.to_string()
                .starts_with("metadata.name: must be at most 52"),
            "{e}"
        );
    }
}
