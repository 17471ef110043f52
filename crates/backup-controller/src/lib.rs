//! The backup-controller: QdrantBackup, QdrantBackupSchedule and QdrantRestore.
//!
//! - [`backup`]: one backup run (Qdrant snapshots → S3, verified, manifest last).
//! - [`restore`]: one restore run (manifest → collections, presigned URL or upload).
//! - [`manifest`]: the `manifest.json` format.
//! - [`upload`]: streaming multipart upload with size and SHA-256.
//! - [`s3`]: a client bound to one bucket and prefix.

pub mod backup;
pub mod manifest;
pub mod restore;
pub mod s3;
pub mod upload;
