//! The cluster-controller: reconciles QdrantCluster into a running Qdrant cluster.
//!
//! Reconcile is a named pipeline (see [`reconcile`]): validate -> dereference (read the live
//! StatefulSet and Secrets) -> build (pure, one module per child in [`build`]) -> apply
//! (server-side apply, field manager [`FIELD_MANAGER`]) -> update status ([`status`]).

pub mod adoption;
pub mod build;
pub mod children;
pub mod context;
pub mod controller;
pub mod day2;
pub mod gate;
pub mod keys;
pub mod monitoring;
pub mod observe;
pub mod operations;
pub mod peers;
pub mod pods;
pub mod publish;
pub mod quotas;
pub mod rebalance;
pub mod reconcile;
pub mod recover;
pub mod render;
pub mod rollout;
pub mod scale;
pub mod status;
pub mod tls;
pub mod vocabulary;
pub mod volumes;
pub mod zones;

/// Field manager of every write this controller makes.
pub const FIELD_MANAGER: &str = "qdrant-cluster-controller";
/// Controller name: metrics label, events' reporting controller, default Lease name.
pub const CONTROLLER_NAME: &str = "qdrant-cluster-controller";
