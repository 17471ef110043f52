//! The collection-controller: reconciles QdrantCollection into a collection, its payload
//! indexes and aliases in Qdrant.
//!
//! Reconcile is a named pipeline (see [`reconcile`]): validate -> dereference (which Qdrant,
//! with which key: [`dereference`]) -> build the desired Qdrant requests (pure, [`build`]) ->
//! compare with what Qdrant has ([`diff`], pure; both from the spec as the server's version
//! can take it, [`memory`]) -> apply (REST calls) -> update status
//! ([`status`]). Deletion goes through a finalizer and honours `deletionPolicy`.
//!
//! Each collection records its owning QdrantCollection and what that object declared in its
//! Qdrant metadata ([`ownership`]): a collection owned by another object is never written to
//! nor deleted, and only declared indexes and aliases are ever deleted.

pub mod build;
pub mod controller;
pub mod dereference;
pub mod diff;
pub mod memory;
pub mod ownership;
pub mod reconcile;
pub mod status;

/// Field manager of every write this controller makes.
pub const FIELD_MANAGER: &str = "qdrant-collection-controller";
/// Controller name: metrics label, events' reporting controller, default Lease name.
pub const CONTROLLER_NAME: &str = "qdrant-collection-controller";
/// Finalizer that lets the controller apply `deletionPolicy` before the object goes.
pub const FINALIZER: &str = "qdrant.operator.dev/collection";
