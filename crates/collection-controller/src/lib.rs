//! The collection-controller: reconciles QdrantCollection into a collection, its payload
//! indexes and aliases in Qdrant.
//!
//! Reconcile is a named pipeline (see [`reconcile`]): validate -> dereference (which Qdrant,
//! with which key: [`dereference`]) -> build the desired Qdrant requests (pure, [`build`]) ->
//! compare with what Qdrant has ([`diff`], pure) -> apply (REST calls) -> update status
//! ([`status`]). Deletion goes through a finalizer and honours `deletionPolicy`.

pub mod build;
pub mod controller;
pub mod dereference;
pub mod diff;
pub mod reconcile;
pub mod status;

/// Field manager of every write this controller makes.
pub const FIELD_MANAGER: &str = "qdrant-collection-controller";
/// Controller name: metrics label, events' reporting controller, default Lease name.
pub const CONTROLLER_NAME: &str = "qdrant-collection-controller";
/// Finalizer that lets the controller apply `deletionPolicy` before the object goes.
pub const FINALIZER: &str = "qdrant.operator.dev/collection";
