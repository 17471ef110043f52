//! What every Qdrant operator controller shares.
//!
//! - [`cli`]: the common `run` flags and process life cycle of every controller binary.
//! - [`runtime`]: Kubernetes client construction, Lease leader election, graceful shutdown.
//! - [`apply`]: server-side apply of owned children with a per-controller field manager.
//! - [`conditions`]: Kubernetes-shaped conditions whose `lastTransitionTime` only moves on change.
//! - [`context`]: what every reconcile context holds, and the shared error policy.
//! - [`error`]: typed errors, transient vs permanent, and the requeue/backoff policy.
//! - [`metrics`] and [`server`]: Prometheus metrics, `/metrics`, `/healthz`, `/readyz`.
//! - [`telemetry`]: tracing (human or JSON) and OTLP export.
//! - [`secrets`]: reading values out of Secrets.
//! - [`events`]: Kubernetes events.
//! - [`qdrant`]: the Qdrant REST client for cluster endpoints.
//!
//! The test fakes (a Kubernetes API server, a Qdrant server) and the real-Qdrant helpers are in
//! the `testkit` crate, a dev-dependency of the controllers.

pub mod apply;
pub mod cli;
pub mod conditions;
pub mod context;
pub mod depth;
pub mod error;
pub mod events;
pub mod guard;
pub mod metrics;
pub mod qdrant;
pub mod redact;
pub mod runtime;
pub mod secrets;
pub mod server;
pub mod target;
pub mod telemetry;
