//! The phase, `message`, `Ready` condition and completion time that QdrantBackup and
//! QdrantRestore status share, and the status writes both reconcilers make with them.

use std::fmt::Debug;

use api_types::{
    QdrantBackup, QdrantRestore,
    backup::{BackupPhase, QdrantBackupStatus, QdrantRestoreStatus},
    conditions::{
        Condition, find_condition,
        reasons::{NOT_PAUSED, PAUSE_ANNOTATION_SET},
    },
};
use k8s_openapi::NamespaceResourceScope;
use kube::{Resource, runtime::controller::Action};
use reconcile_lib::{
    conditions::{
        ConditionStatus, Kstatus, new_condition, now_seconds, set_condition, set_kstatus, types,
    },
    error::Result,
};
use serde::{Serialize, de::DeserializeOwned};

use crate::context::Context;

/// The status fields every run kind has.
pub struct PhaseFields<'a> {
    /// `status.observedGeneration`.
    pub observed_generation: &'a mut Option<i64>,
    /// `status.phase`.
    pub phase: &'a mut BackupPhase,
    /// `status.message`.
    pub message: &'a mut Option<String>,
    /// `status.conditions`.
    pub conditions: &'a mut Vec<Condition>,
    /// `status.completionTime`.
    pub completion_time: &'a mut Option<String>,
}

/// A kind whose object is one run (QdrantBackup, QdrantRestore).
pub trait RunObject:
    Resource<DynamicType = (), Scope = NamespaceResourceScope> + Clone + DeserializeOwned + Debug
{
    /// Its status type.
    type Status: Clone + Default + PartialEq + Serialize;
    /// The `action` of its events (`Backup`, `Restore`).
    const ACTION: &'static str;
    /// The live status, if any.
    fn status(&self) -> Option<&Self::Status>;
    /// The shared fields of `status`.
    fn fields(status: &mut Self::Status) -> PhaseFields<'_>;
    /// Which run `status` describes: its phase, `status.attempt` (a restore has no attempts:
    /// 0) and `status.startTime`. A task may write status only while this is the token it
    /// started with ([`crate::fence`]).
    fn run_token(status: &Self::Status) -> RunToken;
}

/// The run a status belongs to (see [`RunObject::run_token`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunToken {
    /// `status.phase`.
    pub phase: BackupPhase,
    /// `status.attempt` (backups; 0 for restores).
    pub attempt: u32,
    /// `status.startTime`.
    pub start_time: Option<String>,
}

impl RunObject for QdrantBackup {
    type Status = QdrantBackupStatus;
    const ACTION: &'static str = "Backup";
    fn status(&self) -> Option<&QdrantBackupStatus> {
        self.status.as_ref()
    }
    fn fields(s: &mut QdrantBackupStatus) -> PhaseFields<'_> {
        PhaseFields {
            observed_generation: &mut s.observed_generation,
            phase: &mut s.phase,
            message: &mut s.message,
            conditions: &mut s.conditions,
            completion_time: &mut s.completion_time,
        }
    }
    fn run_token(s: &QdrantBackupStatus) -> RunToken {
        RunToken {
            phase: s.phase,
            attempt: s.attempt,
            start_time: s.start_time.clone(),
        }
    }
}

impl RunObject for QdrantRestore {
    type Status = QdrantRestoreStatus;
    const ACTION: &'static str = "Restore";
    fn status(&self) -> Option<&QdrantRestoreStatus> {
        self.status.as_ref()
    }
    fn fields(s: &mut QdrantRestoreStatus) -> PhaseFields<'_> {
        PhaseFields {
            observed_generation: &mut s.observed_generation,
            phase: &mut s.phase,
            message: &mut s.message,
            conditions: &mut s.conditions,
            completion_time: &mut s.completion_time,
        }
    }
    fn run_token(s: &QdrantRestoreStatus) -> RunToken {
        RunToken {
            phase: s.phase,
            attempt: 0,
            start_time: s.start_time.clone(),
        }
    }
}

/// How long the run of `status` has taken: from `status.startTime` to now (zero when it has
/// no start time or it does not parse). For the run-duration metrics.
pub fn run_duration<K: RunObject>(status: &K::Status) -> std::time::Duration {
    K::run_token(status)
        .start_time
        .and_then(|t| t.parse::<jiff::Timestamp>().ok())
        .and_then(|start| {
            std::time::Duration::try_from(jiff::Timestamp::now().duration_since(start)).ok()
        })
        .unwrap_or_default()
}

/// Now, RFC 3339 to the second, for start and completion times.
pub fn now() -> String {
    now_seconds().to_string()
}

/// `status` with `phase`, `message` and the Ready condition (True only when Succeeded, with
/// `reason`), for `obj`'s generation; a final phase stamps the completion time once.
pub fn with_phase<K: RunObject>(
    obj: &K,
    mut status: K::Status,
    phase: BackupPhase,
    reason: &str,
    message: &str,
) -> K::Status {
    let generation = obj.meta().generation;
    let f = K::fields(&mut status);
    *f.observed_generation = generation;
    *f.phase = phase;
    *f.message = Some(message.to_string());
    set_condition(
        f.conditions,
        new_condition(
            types::READY,
            ConditionStatus::from_bool(phase == BackupPhase::Succeeded),
            reason,
            message,
            generation,
        ),
    );
    if phase.is_finished() && f.completion_time.is_none() {
        *f.completion_time = Some(now());
    }
    // kstatus: a run under way reconciles, a failed one stalls, a succeeded one is Current.
    let state = match phase {
        BackupPhase::Pending | BackupPhase::Running => Kstatus::reconciling(reason, message),
        BackupPhase::Failed => Kstatus::stalled(reason, message),
        BackupPhase::Succeeded => Kstatus::current(reason),
    };
    set_kstatus(f.conditions, generation, &state);
    // A run moves on only when not paused: a Paused condition left from a pause turns False.
    if find_condition(f.conditions, types::PAUSED).is_some() {
        set_condition(
            f.conditions,
            new_condition(
                types::PAUSED,
                ConditionStatus::False,
                NOT_PAUSED,
                "",
                generation,
            ),
        );
    }
    status
}

/// True when the pause annotation (`qdrant.operator.dev/paused: "true"`) holds `obj` back:
/// the annotation is set, the run is not finished, and no task of this process runs it. A task
/// that runs goes on (a pause is not a cancel: delete the object to stop it); a Pending run is
/// not started, and a Running one whose task is gone is neither resumed nor given up on.
pub fn held_by_pause<K: RunObject>(obj: &K, ctx: &Context) -> bool {
    let mut status = obj.status().cloned();
    let phase = status.as_mut().map(|s| *K::fields(s).phase);
    let uid = obj.meta().uid.clone().unwrap_or_default();
    api_types::is_paused(obj.meta())
        && !phase.is_some_and(BackupPhase::is_finished)
        && !ctx.jobs.is_running(&uid)
}

/// The status of a run held by the pause annotation ([`held_by_pause`]): condition Paused True
/// (reason `PauseAnnotationSet`), everything else as it was. Waits for a change: removing
/// the annotation is one.
///
/// # Errors
/// The API server's, writing the status.
pub async fn paused<K: RunObject>(obj: &K, ctx: &Context) -> Result<Action> {
    let mut status = obj.status().cloned().unwrap_or_default();
    let generation = obj.meta().generation;
    let message = format!(
        "annotation {} is \"true\": the {} is not started, resumed or retried",
        api_types::PAUSED_ANNOTATION,
        K::ACTION.to_lowercase()
    );
    set_condition(
        K::fields(&mut status).conditions,
        new_condition(
            types::PAUSED,
            ConditionStatus::True,
            PAUSE_ANNOTATION_SET,
            &message,
            generation,
        ),
    );
    set_kstatus(
        K::fields(&mut status).conditions,
        generation,
        &Kstatus::current(types::PAUSED),
    );
    write(obj, ctx, &status).await?;
    Ok(Action::await_change())
}

/// Writes `status` (server-side apply of the status subresource) unless it is unchanged.
pub async fn write<K: RunObject>(obj: &K, ctx: &Context, status: &K::Status) -> Result<()> {
    if obj.status() != Some(status) {
        ctx.shared.applier.apply_status(obj, status).await?;
    }
    Ok(())
}

/// Phase Failed for good with `reason` and `message`, and a Warning event.
pub async fn fail_now<K: RunObject>(
    obj: &K,
    ctx: &Context,
    status: K::Status,
    reason: &str,
    message: &str,
) -> Result<Action> {
    write(
        obj,
        ctx,
        &with_phase(obj, status, BackupPhase::Failed, reason, message),
    )
    .await?;
    ctx.shared
        .events
        .warning(obj, reason, K::ACTION, message.to_string())
        .await;
    Ok(Action::await_change())
}

/// Phase Pending with `reason` and `message`; requeued after [`Context::wait_requeue`].
pub async fn wait<K: RunObject>(
    obj: &K,
    ctx: &Context,
    status: K::Status,
    reason: &str,
    message: &str,
) -> Result<Action> {
    write(
        obj,
        ctx,
        &with_phase(obj, status, BackupPhase::Pending, reason, message),
    )
    .await?;
    Ok(Action::requeue(ctx.wait_requeue))
}
