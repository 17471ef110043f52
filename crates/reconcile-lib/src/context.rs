//! What every controller's reconcile context holds, and the error policy they share.

use std::sync::Arc;

use kube::{Client, ResourceExt, runtime::controller::Action};
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
}

/// `namespace/name` of an object, for logs and backoff bookkeeping.
pub fn object_key<K: ResourceExt>(obj: &K) -> String {
    format!("{}/{}", obj.namespace().unwrap_or_default(), obj.name_any())
}
