//! The backup-controller: QdrantBackup, QdrantBackupSchedule, QdrantRestore and
//! QdrantMigration.
//!
//! - [`run`]: one backup run (Qdrant snapshots → S3, verified, manifest last) and one restore
//!   run (manifest → collections, by presigned URL or streamed upload).
//! - [`manifest`]: the `manifest.json` format.
//! - [`upload`]: streaming multipart upload with size and SHA-256.
//! - [`s3`]: a client bound to one bucket and prefix.
//! - [`migration`]: copying collections between Qdrants (scroll → upsert, verified), a bounded
//!   step per reconcile with the cursor in status ([`run::migrate`]).

pub mod backup;
pub mod build;
pub mod context;
pub mod controller;
pub mod create_backup;
pub mod fence;
pub mod jobs;
pub mod manifest;
pub mod migration;
pub mod phase;
pub mod restore;
pub mod retention;
pub mod run;
pub mod s3;
pub mod schedule;
pub mod storage;
pub mod target;
pub mod upload;
pub mod volume_restore;
pub mod volume_snapshots;
