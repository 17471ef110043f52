//! The long-running work behind QdrantBackup and QdrantRestore, free of Kubernetes: each run
//! talks to Qdrant and S3 only, reports progress through a callback, and returns an outcome or
//! a failure with a CamelCase reason. The reconcilers start runs as tasks ([`crate::jobs`]).

pub mod backup;
pub mod migrate;
pub mod restore;

use std::collections::BTreeMap;

use reconcile_lib::{qdrant::QdrantError, target::Resolved};
use url::Url;

use crate::run::backup::Source;

/// The clients of a resolved target: its endpoint, and one client per peer. Peers come from
/// the QdrantCluster's `status.peers[].url`; for a `connection` in distributed mode they are
/// derived from `GET /cluster` (each peer's p2p URI host, with the connection URL's scheme and
/// port), which assumes every peer serves REST on the same port as the connection URL.
///
/// Errors: `GET /cluster` failures (connection only), invalid client settings.
pub async fn source(resolved: &Resolved) -> Result<Source, QdrantError> {
    let mut peers = BTreeMap::new();
    for (id, url) in peer_urls(resolved).await? {
        peers.insert(id, resolved.client_for(url)?);
    }
    Ok(Source {
        endpoint: resolved.client.clone(),
        peers,
    })
}

/// The REST URL of each peer of a resolved target, by peer id: the QdrantCluster's
/// `status.peers[].url`, or for a `connection` each peer of `GET /cluster` (see [`source`];
/// a single node in cluster mode is its one peer; none when cluster mode is off).
///
/// Errors: `GET /cluster` failures (connection only).
pub async fn peer_urls(resolved: &Resolved) -> Result<BTreeMap<u64, Url>, QdrantError> {
    let mut out: BTreeMap<u64, Url> = resolved.peer_urls.iter().cloned().collect();
    if resolved.cluster.is_none() {
        let info = resolved.client.cluster_info().await?;
        let base = resolved.connection().url.clone();
        for (id, peer) in &info.peers {
            if let Some(url) = rest_url_of(&base, &peer.uri) {
                out.insert(*id, url);
            }
        }
    }
    Ok(out)
}

/// `base` with the host of the p2p URI `uri` (e.g. `http://qdrant-1.qdrant-headless:6335/`).
fn rest_url_of(base: &Url, uri: &str) -> Option<Url> {
    let host = Url::parse(uri).ok()?.host_str()?.to_string();
    let mut url = base.clone();
    url.set_host(Some(&host)).ok()?;
    Some(url)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rest_url_takes_the_peer_host_and_the_connection_port() {
        let base = Url::parse("https://qdrant.example:6333/").unwrap_or_else(|_| unreachable!());
        let url = rest_url_of(&base, "http://qdrant-2.qdrant-headless:6335/");
        assert_eq!(
            url.map(|u| u.to_string()),
            Some("https://qdrant-2.qdrant-headless:6333/".to_string())
        );
        assert_eq!(rest_url_of(&base, "not a url"), None);
    }
}
