//! Shared test support: the S3 server and a fault-injecting proxy in front of it.

pub mod faults;
pub mod s3;
