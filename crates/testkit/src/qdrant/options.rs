//! Options of a fake start: keys, cluster state, readiness.

use reconcile_lib::qdrant::RaftRole;

/// How a [`FakeQdrant`](super::FakeQdrant) starts.
#[derive(Clone, Debug)]
pub struct FakeQdrantOptions {
    /// `service.api_key`: when set, every non-health request needs it (or the read-only key).
    pub api_key: Option<String>,
    /// `service.read_only_api_key`: allows GETs only.
    pub read_only_api_key: Option<String>,
    /// Cluster mode state; `None` answers `{"status": "disabled"}` on `GET /cluster`.
    pub cluster: Option<ClusterState>,
    /// Whether `GET /readyz` answers 200 (true) or 503 (false).
    pub ready: bool,
    /// The version `GET /` reports, [`FAKE_QDRANT_VERSION`](super::FAKE_QDRANT_VERSION)
    /// (1.18.3) by default. From `1.19` on the fake also takes and stores Qdrant 1.19's
    /// `memory` placements and `payload` storage params; before, it drops them, as a real
    /// 1.18.3 does (unknown fields are ignored).
    pub version: String,
}

impl Default for FakeQdrantOptions {
    /// No keys, a single-node cluster ([`ClusterState::default`]), ready, version 1.18.3.
    fn default() -> Self {
        Self {
            api_key: None,
            read_only_api_key: None,
            cluster: Some(ClusterState::default()),
            ready: true,
            version: super::FAKE_QDRANT_VERSION.to_owned(),
        }
    }
}

/// What `GET /cluster` reports in cluster mode.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ClusterState {
    /// The answering peer's id.
    pub peer_id: u64,
    /// Every peer: (peer id, p2p URI such as `http://qdrant-0.qdrant-headless:6335/`).
    pub peers: Vec<(u64, String)>,
    /// `raft_info.leader` (`null` when `None`).
    pub leader: Option<u64>,
    /// `raft_info.role` of the answering peer (`null` when `None`).
    pub role: Option<RaftRole>,
    /// `raft_info.term`.
    pub term: u64,
    /// `raft_info.commit`.
    pub commit: u64,
    /// `raft_info.pending_operations`.
    pub pending_operations: u64,
}

impl ClusterState {
    /// A one-peer cluster whose only peer `peer_id` at `uri` is the leader (term 1, commit 1).
    pub fn single(peer_id: u64, uri: impl Into<String>) -> Self {
        Self {
            peer_id,
            peers: vec![(peer_id, uri.into())],
            leader: Some(peer_id),
            role: Some(RaftRole::Leader),
            term: 1,
            commit: 1,
            pending_operations: 0,
        }
    }
}

impl Default for ClusterState {
    /// [`ClusterState::single`] with peer 1 at `http://qdrant-0.qdrant-headless:6335/`.
    fn default() -> Self {
        Self::single(1, "http://qdrant-0.qdrant-headless:6335/")
    }
}
