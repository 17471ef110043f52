//! What every controller's reconcile context holds, and the error policy they share.

use std::{fmt::Debug, future::Future, sync::Arc};

use kube::{
    Api, Client, Resource, ResourceExt,
    runtime::{
        controller::Action,
        finalizer::{self, Event as FinalizerEvent},
    },
};
use serde::{Serialize, de::DeserializeOwned};
use tracing::warn;

use crate::{
    apply::Applier,
    error::{Backoff, Error},
    events::Events,
    metrics::Metrics,
};

/// The parts of a reconcile context every controller has.
pub struct Shared {
    /// Server-side apply and status writes with the controller's field manager.
    pub applier: Applier,
    /// Kubernetes events, reported as the controller.
    pub events: Events,
    /// Prometheus metrics.
    pub metrics: Arc<Metrics>,
    /// Per-object backoff of the error policy, keyed by `namespace/name`.
    pub backoff: Backoff<String>,
}

impl Shared {
    /// Writes as `field_manager`, reports events as `controller`, default backoff (1 s doubling
    /// to 5 min, with jitter).
    pub fn new(
        client: Client,
        field_manager: &str,
        controller: &str,
        metrics: Arc<Metrics>,
    ) -> Self {
        Self {
            applier: Applier::new(client.clone(), field_manager),
            events: Events::new(client, controller),
            metrics,
            backoff: Backoff::default(),
        }
    }

    /// The error policy: count the error by reason, log it, and requeue the object after its
    /// next backoff delay.
    pub fn on_error<K: ResourceExt>(&self, obj: &K, error: &Error) -> Action {
        self.metrics.reconcile_failed(error.metric_label());
        let key = object_key(obj);
        let delay = self.backoff.next_delay(&key);
        warn!(object = %key, %error, ?delay, "reconcile failed; retrying");
        Action::requeue(delay)
    }

    /// Forget the object's failures after a clean reconcile.
    pub fn on_success<K: ResourceExt>(&self, obj: &K) {
        self.backoff.reset(&object_key(obj));
    }

    /// Runs one reconcile of `obj` under finalizer `name` (kube's finalizer helper: adds the
    /// finalizer first, calls `handle` with `Apply` while the object lives and with `Cleanup`
    /// once it is being deleted, then removes the finalizer), resets the object's backoff on
    /// success, and maps the helper's errors to [`Error`] (a failed finalizer PATCH is
    /// [`Error::Kube`]).
    pub async fn reconcile_with_finalizer<K, F, Fut>(
        &self,
        api: &Api<K>,
        name: &str,
        obj: Arc<K>,
        handle: F,
    ) -> Result<Action, Error>
    where
        K: Resource<DynamicType = ()> + Clone + DeserializeOwned + Serialize + Debug,
        F: FnOnce(FinalizerEvent<K>) -> Fut,
        Fut: Future<Output = Result<Action, Error>>,
    {
        match finalizer::finalizer(api, name, obj.clone(), handle).await {
            Ok(action) => {
                self.on_success(&*obj);
                Ok(action)
            }
            Err(finalizer::Error::ApplyFailed(e) | finalizer::Error::CleanupFailed(e)) => Err(e),
            Err(finalizer::Error::AddFinalizer(e) | finalizer::Error::RemoveFinalizer(e)) => {
                Err(Error::Kube(e))
            }
            Err(e) => Err(Error::InvalidSpec(e.to_string())),
        }
    }
}

/// `namespace/name` of an object, for logs and backoff bookkeeping.
pub fn object_key<K: ResourceExt>(obj: &K) -> String {
    format!("{}/{}", obj.namespace().unwrap_or_default(), obj.name_any())
}
