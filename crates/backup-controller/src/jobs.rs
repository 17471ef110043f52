//! Backups and restores running in this process.
//!
//! A reconcile never blocks on a transfer: it starts the run as a tokio task registered here
//! under the object's UID and returns. The task writes the object's status itself as it
//! progresses and when it ends. A Running object whose UID is not registered was started by
//! another process (a previous leader): the reconcile then cleans up and starts a new attempt.
//! Losing leadership or shutting down cancels every task ([`Jobs::cancel_all`]); cancelled
//! uploads are aborted before the task ends. A task that runs on regardless (its process
//! learned of the lost Lease late) is stopped by its fenced status writes ([`crate::fence`]).

use std::{
    collections::HashMap,
    future::Future,
    sync::{Arc, Mutex, MutexGuard, PoisonError},
};

use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

type Running = HashMap<String, (CancellationToken, JoinHandle<()>)>;

/// The registry (cheap to clone; clones share it).
#[derive(Clone, Default)]
pub struct Jobs {
    running: Arc<Mutex<Running>>,
    root: CancellationToken,
}

impl Jobs {
    fn lock(&self) -> MutexGuard<'_, Running> {
        self.running.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The registry with the tasks that have ended removed.
    fn live(&self) -> MutexGuard<'_, Running> {
        let mut running = self.lock();
        running.retain(|_, (_, handle)| !handle.is_finished());
        running
    }

    /// True while a task for `uid` runs in this process.
    pub fn is_running(&self, uid: &str) -> bool {
        self.live().contains_key(uid)
    }

    /// Starts `work(cancel)` for `uid` unless one is already running; false when it was.
    pub fn start<F, Fut>(&self, uid: &str, work: F) -> bool
    where
        F: FnOnce(CancellationToken) -> Fut,
        Fut: Future<Output = ()> + Send + 'static,
    {
        let mut running = self.live();
        if running.contains_key(uid) {
            return false;
        }
        let cancel = self.root.child_token();
        let handle = tokio::spawn(work(cancel.clone()));
        running.insert(uid.to_string(), (cancel, handle));
        true
    }

    /// Cancels the task for `uid` and waits for it to finish its cleanup.
    pub async fn cancel(&self, uid: &str) {
        let entry = self.lock().remove(uid);
        if let Some((cancel, handle)) = entry {
            cancel.cancel();
            let _ = handle.await;
        }
    }

    /// Cancels every task and waits for them (shutdown, lost leadership).
    pub async fn cancel_all(&self) {
        self.root.cancel();
        let handles: Vec<_> = self.lock().drain().map(|(_, (_, h))| h).collect();
        for handle in handles {
            let _ = handle.await;
        }
    }
}
