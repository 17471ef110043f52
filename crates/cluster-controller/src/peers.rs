//! Reads Qdrant's own view of the cluster: `GET /cluster` on each pod (through the headless
//! Service), authenticated with the cluster's read-write API key.

use std::{collections::BTreeMap, sync::Arc, time::Duration};

use api_types::cluster::PeerStatus;
use reconcile_lib::qdrant::{QdrantClient, QdrantConnection, QdrantError};
use url::Url;

use crate::build::Names;

/// What the Qdrant peers reported (`GET /cluster` on each pod).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct PeersObservation {
    /// Peers, ordered by pod name.
    pub peers: Vec<PeerStatus>,
    /// Raft leader peer id, if any peer reported one.
    pub leader: Option<u64>,
    /// `raft_info.pending_operations` each pod reported, by pod ordinal (pods that did not
    /// answer are absent).
    pub pending_operations: BTreeMap<u32, u64>,
    /// Consensus members, peer id -> p2p URI (`peers` of `GET /cluster`), as the
    /// lowest-ordinal pod that answered sees them.
    pub members: BTreeMap<u64, String>,
}

/// Maps a pod (by ordinal) to its Qdrant REST URL. In a cluster: the pod's DNS name through the
/// headless Service; tests point it at a fake Qdrant.
pub type PeerUrlResolver = Arc<dyn Fn(&Names, u32) -> Option<Url> + Send + Sync>;

/// The in-cluster resolver: `http://<cluster>-<i>.<cluster>-headless.<ns>.svc:6333`.
pub fn in_cluster_resolver() -> PeerUrlResolver {
    Arc::new(|names: &Names, ordinal: u32| Url::parse(&names.pod_http_url(ordinal)).ok())
}

/// How the operator reaches the pods' Qdrant REST API: where each pod is, which key to send,
/// which CA to trust, how long to wait.
#[derive(Clone)]
pub struct PeerAccess {
    /// Maps a pod ordinal to its REST URL.
    pub resolve: PeerUrlResolver,
    /// The cluster's read-write API key (`spec.auth.apiKey`), when it has one.
    pub api_key: Option<String>,
    /// PEM CA bundle to verify the pods' certificates against (client TLS on).
    pub ca_pem: Option<Vec<u8>>,
    /// Timeout of each request.
    pub timeout: Duration,
}

impl PeerAccess {
    /// A REST client for pod `ordinal`.
    ///
    /// Errors: [`QdrantError::Config`] when the pod has no URL or the connection settings are
    /// invalid.
    pub fn client(&self, names: &Names, ordinal: u32) -> Result<QdrantClient, QdrantError> {
        let url = (self.resolve)(names, ordinal).ok_or_else(|| QdrantError::Config {
            message: format!("no URL for pod {}-{ordinal}", names.cluster),
        })?;
        let mut conn = QdrantConnection::new(url)
            .with_timeout(self.timeout)
            .with_optional_api_key(self.api_key.clone());
        if let Some(pem) = &self.ca_pem {
            conn = conn.with_ca_bundle_pem(pem.clone());
        }
        QdrantClient::new(&conn)
    }

    /// The REST URL of pod `ordinal`, as a string, when it has one.
    pub fn url(&self, names: &Names, ordinal: u32) -> Option<String> {
        (self.resolve)(names, ordinal).map(|u| u.to_string())
    }
}

/// Asks pods `0..replicas` for `GET /cluster` and combines their answers: each pod reports its
/// own peer id, Raft role and pending operations; the URIs and the consensus members come from
/// the lowest-ordinal answer's peer map; the leader from any pod. Each
/// peer's `url` is the REST URL `access` gives for its pod (the headless Service in a cluster).
///
/// Errors: a message when no pod answered (every pod's error is summarized).
pub async fn observe(
    names: &Names,
    replicas: i32,
    access: &PeerAccess,
) -> Result<PeersObservation, String> {
    let mut peers = vec![];
    let mut leader = None;
    let mut pending_operations = std::collections::BTreeMap::new();
    let mut members = None;
    let mut errors = vec![];
    for ordinal in 0..u32::try_from(replicas.max(0)).unwrap_or(0) {
        let pod = format!("{}-{ordinal}", names.cluster);
        let url = access.url(names, ordinal);
        let info = match access.client(names, ordinal) {
            Ok(c) => c.cluster_info().await,
            Err(e) => Err(e),
        };
        match info {
            Ok(info) => {
                let Some(peer_id) = info.peer_id else {
                    errors.push(format!("{pod}: cluster mode is {}", info.status));
                    continue;
                };
                let raft = info.raft_info.as_ref();
                leader = leader.or(raft.and_then(|r| r.leader));
                if let Some(r) = raft {
                    pending_operations.insert(ordinal, r.pending_operations);
                }
                members.get_or_insert_with(|| {
                    info.peers
                        .iter()
                        .map(|(id, p)| (*id, p.uri.clone()))
                        .collect()
                });
                peers.push(PeerStatus {
                    pod,
                    peer_id,
                    uri: info
                        .peers
                        .get(&peer_id)
                        .map(|p| p.uri.clone())
                        .unwrap_or_default(),
                    url,
                    raft_role: raft.and_then(|r| r.role).map(|r| format!("{r:?}")),
                    zone: None,
                });
            }
            Err(e) => errors.push(format!("{pod}: {e}")),
        }
    }
    if peers.is_empty() && !errors.is_empty() {
        return Err(errors.join("; "));
    }
    Ok(PeersObservation {
        peers,
        leader,
        pending_operations,
        members: members.unwrap_or_default(),
    })
}
