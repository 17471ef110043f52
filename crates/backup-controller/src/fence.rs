//! Status writes of a backup or restore task, fenced to the run the task started.
//!
//! A task outlives nothing it should not: losing the Lease cancels it ([`crate::jobs`]). But a
//! leader that is cut off from the API server learns of its loss late, and its task may still
//! be uploading when the new leader has already resumed the backup as the next attempt (or
//! failed the restore as `Interrupted`). So every status write of a task goes through a
//! [`Fence`]: it reads the object fresh, checks that its status still describes the run the
//! task started ([`RunObject::run_token`]: the same phase, `attempt` and `startTime`),
//! and server-side applies with that read's `resourceVersion` as a precondition, so a change
//! in between makes the write fail (409) instead of overwriting it; the fence then reads again.
//! A task whose run is no longer the object's is [`FenceError::Superseded`]: it stops and
//! removes what it wrote itself.

use std::future::Future;

use api_types::backup::BackupPhase;
use kube::{Api, ResourceExt};
use reconcile_lib::{apply::Applier, error::Error};
use tokio::sync::mpsc::UnboundedReceiver;
use tokio_util::sync::CancellationToken;
use tracing::warn;

use crate::phase::{RunObject, RunToken};

/// How many times a write is retried after a 409 (the object changed between the read and the
/// write, e.g. a label edit) before the write is given up as failed.
const MAX_CONFLICTS: usize = 5;

/// Why a fenced write was not made.
#[derive(Debug, thiserror::Error)]
pub enum FenceError {
    /// The object no longer describes this task's run: another process resumed it as a new
    /// attempt, or ended it, or the object is gone. The message says which.
    #[error("superseded: {0}")]
    Superseded(String),
    /// The read or the write failed (API server unreachable, 409s past [`MAX_CONFLICTS`]).
    #[error("{0}")]
    Failed(Error),
}

/// The status writer of one task (cheap to clone).
#[derive(Clone)]
pub struct Fence<K: RunObject> {
    api: Api<K>,
    applier: Applier,
    name: String,
    uid: Option<String>,
    token: Option<RunToken>,
}

impl<K: RunObject> Fence<K> {
    /// A fence for the run `obj` describes now (`obj` as written when the run started: phase
    /// Running with its attempt and start time).
    pub fn new(applier: &Applier, obj: &K) -> Self {
        let ns = obj.namespace().unwrap_or_else(|| "default".into());
        Fence {
            api: Api::namespaced(applier.client().clone(), &ns),
            applier: applier.clone(),
            name: obj.name_any(),
            uid: obj.meta().uid.clone(),
            token: obj.status().map(K::run_token),
        }
    }

    /// Writes `status` (server-side apply of the status subresource) if the object still
    /// describes this run: GET the object, compare [`RunObject::run_token`], apply with the
    /// read's `resourceVersion`; on 409 read and compare again (up to [`MAX_CONFLICTS`]).
    pub async fn write(&self, status: &K::Status) -> Result<(), FenceError> {
        self.write_checked(status).await
    }

    /// [`Self::write`] of a status that starts a new run of this task (its next attempt): once
    /// written, the fence guards the new run.
    pub async fn write_next(&mut self, status: &K::Status) -> Result<(), FenceError> {
        self.write_checked(status).await?;
        self.token = Some(K::run_token(status));
        Ok(())
    }

    /// Drives `run` to its end while its progress reports (`progress`) reach status: each is
    /// applied to `status` by `update` (false: nothing changed, nothing written) and written
    /// through the fence. Superseded: `cancel` fires (the run aborts its work and returns),
    /// later reports are dropped, and the reason comes back beside the run's outcome. A write
    /// that fails otherwise is logged; the run goes on.
    pub async fn drive<P, O>(
        &self,
        run: impl Future<Output = O>,
        progress: &mut UnboundedReceiver<P>,
        cancel: &CancellationToken,
        status: &mut K::Status,
        mut update: impl FnMut(&mut K::Status, P) -> bool,
    ) -> (O, Option<String>) {
        let mut superseded = None;
        tokio::pin!(run);
        let outcome = loop {
            tokio::select! {
                outcome = &mut run => break outcome,
                Some(report) = progress.recv(), if superseded.is_none() => {
                    if !update(status, report) {
                        continue;
                    }
                    match self.write(status).await {
                        Ok(()) => {}
                        Err(FenceError::Superseded(why)) => {
                            superseded = Some(why);
                            cancel.cancel();
                        }
                        Err(e) => warn!(kind = K::ACTION, error = %e, "writing progress failed"),
                    }
                }
            }
        };
        (outcome, superseded)
    }

    async fn write_checked(&self, status: &K::Status) -> Result<(), FenceError> {
        for _ in 0..=MAX_CONFLICTS {
            let fresh = match self.api.get_opt(&self.name).await {
                Ok(Some(fresh)) => fresh,
                Ok(None) => return Err(FenceError::Superseded("the object was deleted".into())),
                Err(e) => return Err(FenceError::Failed(e.into())),
            };
            if fresh.meta().uid != self.uid {
                return Err(FenceError::Superseded(
                    "the object was deleted and created again".into(),
                ));
            }
            let now = fresh.status().map(K::run_token);
            if now != self.token {
                return Err(FenceError::Superseded(describe(&self.token, &now)));
            }
            let rv = fresh.resource_version();
            match self
                .applier
                .apply_status_at(&fresh, status, rv.as_deref())
                .await
            {
                Ok(_) => return Ok(()),
                Err(Error::Kube(kube::Error::Api(e))) if e.code == 409 => continue,
                Err(e) => return Err(FenceError::Failed(e)),
            }
        }
        Err(FenceError::Failed(Error::Waiting(format!(
            "the object changed during each of {} status writes",
            MAX_CONFLICTS + 1
        ))))
    }
}

/// What happened to the run, for the superseded task's log and event.
fn describe(mine: &Option<RunToken>, now: &Option<RunToken>) -> String {
    match (mine, now) {
        (Some(mine), Some(now)) if now.attempt != mine.attempt => format!(
            "attempt {} was taken over as attempt {} (now {:?}) by another controller process",
            mine.attempt, now.attempt, now.phase
        ),
        (_, Some(now)) if now.phase != BackupPhase::Running => format!(
            "the run was ended by another controller process (now {:?})",
            now.phase
        ),
        _ => "the run was restarted by another controller process".into(),
    }
}
