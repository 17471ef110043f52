//! Backups and restores running in this process.
//!
//! A reconcile never blocks on a transfer: it starts the run as a tokio task registered here
//! under the object's UID and returns. The task writes the object's status itself as it
//! progresses and when it ends. A Running object whose UID is not registered was started by
//! another process (a previous leader): the reconcile then cleans up and starts a new attempt.
//! Losing leadership or shutting down cancels every task ([`Jobs::cancel_all`]); cancelled
//! uploads are aborted before the task ends.

use std::{
    collections::HashMap,
    future::Future,
    sync::{Arc, Mutex, PoisonError},
};

use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

#[derive(Default)]
struct Inner {
    running: HashMap<String, (CancellationToken, JoinHandle<()>)>,
}

/// The registry (cheap to clone; clones share it).
#[derive(Clone, Default)]
pub struct Jobs {
    inner: Arc<Mutex<Inner>>,
    root: CancellationToken,
}

impl Jobs {
    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// True while a task for `uid` runs in this process.
    pub fn is_running(&self, uid: &str) -> bool {
        let mut inner = self.lock();
        inner.running.retain(|_, (_, handle)| !handle.is_finished());
        inner.running.contains_key(uid)
    }

    /// Starts `work(cancel)` for `uid` unless one is already running; false when it was.
    pub fn start<F, Fut>(&self, uid: &str, work: F) -> bool
    where
        F: FnOnce(CancellationToken) -> Fut,
        Fut: Future<Output = ()> + Send + 'static,
    {
        let mut inner = self.lock();
        inner.running.retain(|_, (_, handle)| !handle.is_finished());
        if inner.running.contains_key(uid) {
            return false;
        }
        let cancel = self.root.child_token();
        let handle = tokio::spawn(work(cancel.clone()));
        inner.running.insert(uid.to_string(), (cancel, handle));
        true
    }

    /// Cancels the task for `uid` and waits for it to finish its cleanup.
    pub async fn cancel(&self, uid: &str) {
        let entry = self.lock().running.remove(uid);
        if let Some((cancel, handle)) = entry {
            cancel.cancel();
            let _ = handle.await;
        }
    }

    /// Cancels every task and waits for them (shutdown, lost leadership).
    pub async fn cancel_all(&self) {
        self.root.cancel();
        let handles: Vec<_> = self.lock().running.drain().map(|(_, (_, h))| h).collect();
        for handle in handles {
            let _ = handle.await;
        }
    }

    /// Number of tasks running.
    pub fn len(&self) -> usize {
        let mut inner = self.lock();
        inner.running.retain(|_, (_, handle)| !handle.is_finished());
        inner.running.len()
    }

    /// True when no task runs.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}
