//! Typed errors shared by the controllers, and the error policy: transient errors requeue
//! with exponential backoff (per object), permanent ones become a condition and wait for a
//! spec change.

use std::{collections::HashMap, hash::Hash, sync::Mutex, time::Duration};

use backon::{BackoffBuilder, ExponentialBackoff, ExponentialBuilder};

use crate::qdrant::QdrantError;

/// Everything a reconcile can fail with.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A Kubernetes API call failed (`kube::Error`; 409, 429 and 5xx are transient).
    #[error("Kubernetes API call failed: {0}")]
    Kube(#[from] kube::Error),
    /// The spec cannot be applied; the message names the field. Permanent until the spec
    /// changes.
    #[error("invalid spec: {0}")]
    InvalidSpec(String),
    /// Qdrant answered with an error or could not be reached.
    #[error("Qdrant: {0}")]
    Qdrant(#[from] QdrantError),
    /// An object could not be (de)serialized.
    #[error("serialization: {0}")]
    Serialization(#[from] serde_json::Error),
    /// Something the object depends on is not there yet (a Secret, a Ready cluster); retried.
    #[error("waiting: {0}")]
    Waiting(String),
}

impl Error {
    /// Transient errors are retried with backoff; permanent ones are reported as a condition.
    /// Kubernetes: 409 Conflict, 429, 5xx and transport errors are transient; other API
    /// statuses (400, 403, 404, 422) are permanent for this attempt.
    pub fn is_transient(&self) -> bool {
        match self {
            Error::Kube(kube::Error::Api(s)) => s.code == 409 || s.code == 429 || s.code >= 500,
            Error::Kube(_) => true,
            Error::InvalidSpec(_) | Error::Serialization(_) => false,
            Error::Qdrant(q) => q.is_transient(),
            Error::Waiting(_) => true,
        }
    }

    /// Low-cardinality label for the `reason` of the error metric, and the CamelCase reason
    /// of the condition it becomes.
    pub fn metric_label(&self) -> &'static str {
        match self {
            Error::Kube(kube::Error::Api(s)) if s.code == 409 => "KubeConflict",
            Error::Kube(kube::Error::Api(s)) if s.code >= 500 => "KubeServerError",
            Error::Kube(kube::Error::Api(_)) => "KubeApiError",
            Error::Kube(_) => "KubeUnreachable",
            Error::InvalidSpec(_) => "InvalidSpec",
            Error::Qdrant(q) => q.reason(),
            Error::Serialization(_) => "SerializationError",
            Error::Waiting(_) => "Waiting",
        }
    }
}

/// Result of a reconcile step.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Per-object exponential backoff for the error policy (backon's exponential builder with
/// jitter; defaults: 1 s doubling to at most 5 min). Call [`Backoff::next_delay`] on each
/// failure of an object and [`Backoff::reset`] when it reconciles cleanly.
pub struct Backoff<K> {
    builder: ExponentialBuilder,
    state: Mutex<HashMap<K, ExponentialBackoff>>,
}

impl<K: Eq + Hash + Clone> Default for Backoff<K> {
    fn default() -> Self {
        Self::new(Duration::from_secs(1), Duration::from_secs(300))
    }
}

impl<K: Eq + Hash + Clone> Backoff<K> {
    /// Backoff starting at `min`, doubling per consecutive failure, capped at `max`, with jitter.
    pub fn new(min: Duration, max: Duration) -> Self {
        Self {
            builder: ExponentialBuilder::default()
                .with_min_delay(min)
                .with_max_delay(max)
                .with_factor(2.0)
                .with_jitter()
                .without_max_times(),
            state: Mutex::new(HashMap::new()),
        }
    }

    /// The delay before retrying `key` after one more consecutive failure.
    pub fn next_delay(&self, key: &K) -> Duration {
        let mut state = self.state.lock().unwrap_or_else(|p| p.into_inner());
        let it = state
            .entry(key.clone())
            .or_insert_with(|| self.builder.build());
        it.next().unwrap_or(Duration::from_secs(300))
    }

    /// Forget the failures of `key` (it reconciled cleanly).
    pub fn reset(&self, key: &K) {
        let mut state = self.state.lock().unwrap_or_else(|p| p.into_inner());
        state.remove(key);
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn api_error(code: u16) -> Error {
        Error::Kube(kube::Error::Api(Box::new(
            kube::core::Status::failure("x", "y").with_code(code),
        )))
    }

    #[test]
    fn classification() {
        assert!(api_error(409).is_transient());
        assert!(api_error(500).is_transient());
        assert!(api_error(503).is_transient());
        assert!(api_error(429).is_transient());
        assert!(!api_error(422).is_transient());
        assert!(!api_error(403).is_transient());
        assert!(!Error::InvalidSpec("spec.replicas".into()).is_transient());
        assert_eq!(api_error(409).metric_label(), "KubeConflict");
        assert_eq!(api_error(503).metric_label(), "KubeServerError");
    }

    #[test]
    fn backoff_grows_per_object_and_resets() {
        let b = Backoff::new(Duration::from_millis(100), Duration::from_secs(10));
        let d1 = b.next_delay(&"a");
        let d2 = b.next_delay(&"a");
        let d3 = b.next_delay(&"a");
        // Jitter adds up to one more base delay; doubling still dominates.
        assert!(
            d1 >= Duration::from_millis(100) && d1 < Duration::from_millis(200),
            "{d1:?}"
        );
        assert!(d3 > d1, "{d1:?} {d2:?} {d3:?}");
        assert!(b.next_delay(&"b") < Duration::from_millis(200));
        b.reset(&"a");
        assert!(b.next_delay(&"a") < Duration::from_millis(200));
        for _ in 0..20 {
            assert!(b.next_delay(&"a") <= Duration::from_secs(20));
        }
    }
}
