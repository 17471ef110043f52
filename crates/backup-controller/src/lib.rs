//! The backup-controller: QdrantBackup, QdrantBackupSchedule and QdrantRestore.
//!
//! Backups stream Qdrant snapshots into S3 multipart uploads ([`upload`]) through a client
//! bound to one bucket ([`s3`]).

pub mod s3;
pub mod upload;
