//! Test kit of the Qdrant operator, for tests and benchmarks only: a dev-dependency of the
//! controllers (and of `reconcile-lib`'s integration tests), never a normal dependency.
//!
//! In-process fakes: a Kubernetes API server ([`apiserver`]) and a Qdrant server ([`qdrant`]),
//! implementing only what the controllers call, with the real wire shapes and error codes. And
//! the real thing where the machine has it: Qdrant server processes ([`real_qdrant`]),
//! single-node or as the peers of a StatefulSet the fake API server holds ([`real_cluster`]).
//! [`harness`] is what every controller's reconcile tests do with the fake API server (seed,
//! read typed, edit, events, polling loops), generic over the kind.
//! [`bench`](mod@bench) runs fakes in a child process for the benchmarks; [`eventually`] polls a
//! condition.

pub mod apiserver;
pub mod bench;
pub mod harness;
pub mod kstatus;
pub mod qdrant;
pub mod real_cluster;
pub mod real_qdrant;

use std::time::Duration;

/// Polls `check` every 50 ms until it holds; panics naming `what` after 10 s.
pub async fn eventually(what: &str, mut check: impl FnMut() -> bool) {
    for _ in 0..200 {
        if check() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("timed out waiting for {what}");
}
