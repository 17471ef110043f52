//! In-process fakes for tests and benchmarks: a Kubernetes API server ([`apiserver`]) and a
//! Qdrant server ([`qdrant`]). They implement only what the controllers call, with the real
//! wire shapes and error codes.

pub mod apiserver;
pub mod bench;
pub mod qdrant;
