//! Which Qdrant an object targets, and with which key: the `cluster` / `connection` pair that
//! QdrantCollection, QdrantBackup and QdrantRestore share.
//!
//! With `cluster`, the QdrantCluster must be Ready for its current generation; its
//! `status.endpoints.http`, `status.peers[].url`, the Secret named in
//! `status.auth.apiKeySecretRef` and, when `status.tls.client` is true, the CA certificate named
//! in `status.tls.caSecretRef` are used (coordination through status only, never by calling the
//! cluster-controller). With `connection`, the URL, the key Secret and the CA Secret come from
//! the spec.

use std::{sync::Arc, time::Duration};

use api_types::{
    QdrantCluster,
    cluster::SecretKeyRef,
    collection::{ClusterRef, Connection},
    conditions::{is_true_for_generation, types},
};
use k8s_openapi::api::core::v1::Secret;
use kube::{Api, Client};
use url::Url;

use crate::{
    error::{Error, Result},
    qdrant::{ApiKey, QdrantClient, QdrantConnection, QdrantError},
};

/// Rewrites an endpoint URL before connecting (tests point cluster endpoints at a fake).
pub type EndpointRewrite = Arc<dyn Fn(&Url) -> Url + Send + Sync>;

/// The `cluster` / `connection` fields of a spec (exactly one is set).
#[derive(Clone, Copy, Debug)]
pub struct TargetRef<'a> {
    /// `spec.cluster`: a QdrantCluster in the object's namespace.
    pub cluster: Option<&'a ClusterRef>,
    /// `spec.connection`: any reachable Qdrant.
    pub connection: Option<&'a Connection>,
}

/// A resolved target: the main endpoint, and what is needed to talk to single peers.
#[derive(Debug)]
pub struct Resolved {
    /// Client for the target's main endpoint (the cluster's client Service, or the
    /// connection URL).
    pub client: QdrantClient,
    /// The QdrantCluster, when the target is one (its status holds peers and phase).
    pub cluster: Option<QdrantCluster>,
    /// `(peer id, REST URL)` of each peer the QdrantCluster publishes in `status.peers`
    /// (rewritten like the endpoint). Empty for a connection.
    pub peer_urls: Vec<(u64, Url)>,
    template: QdrantConnection,
}

impl Resolved {
    /// A client for another URL of the same Qdrant (one peer), with the same API key, CA
    /// bundle and timeout. Errors: [`QdrantError::Config`] for invalid TLS settings.
    pub fn client_for(&self, url: Url) -> Result<QdrantClient, QdrantError> {
        let mut conn = self.template.clone();
        conn.url = url;
        QdrantClient::new(&conn)
    }

    /// The connection settings of the main endpoint (URL, key, CA bundle, timeout).
    pub fn connection(&self) -> &QdrantConnection {
        &self.template
    }
}

/// Where the object's Qdrant is, or why that cannot be known yet.
#[derive(Debug)]
pub enum Target {
    /// Ready to talk to.
    Ready(Box<Resolved>),
    /// Not yet: a CamelCase reason and a message for the conditions.
    Waiting {
        /// E.g. `ClusterNotReady`, `ClusterNotFound`, `SecretNotFound`.
        reason: &'static str,
        /// What is awaited, naming the object.
        message: String,
        /// True when the referenced QdrantCluster does not exist at all.
        cluster_gone: bool,
    },
}

fn waiting(reason: &'static str, message: String) -> Target {
    Target::Waiting {
        reason,
        message,
        cluster_gone: false,
    }
}

/// Reads `key` of Secret `r` in `namespace`; `None` when the Secret or key is missing or empty.
pub async fn secret_value(
    client: &Client,
    namespace: &str,
    r: &SecretKeyRef,
) -> Result<Option<String>> {
    let api: Api<Secret> = Api::namespaced(client.clone(), namespace);
    let Some(secret) = api.get_opt(&r.name).await? else {
        return Ok(None);
    };
    Ok(crate::secrets::secret_value(&secret, &r.key))
}

fn parse_url(url: &str, field: &str, rewrite: Option<&EndpointRewrite>) -> Result<Url> {
    let url = Url::parse(url)
        .map_err(|e| Error::InvalidSpec(format!("{field}: {url:?} is not a URL: {e}")))?;
    Ok(match rewrite {
        Some(rewrite) => rewrite(&url),
        None => url,
    })
}

/// Resolves `target` of an object in `namespace`. Reads the QdrantCluster (GET) and Secrets
/// (GET: the API key, and the CA bundle of `spec.connection.tls` or of a cluster's
/// `status.tls.caSecretRef` when `status.tls.client` is true); builds clients with `timeout`.
/// Errors: Kubernetes API failures; a malformed URL is [`Error::InvalidSpec`] naming the field;
/// neither or both of cluster and connection is [`Error::InvalidSpec`].
pub async fn resolve(
    namespace: &str,
    target: TargetRef<'_>,
    client: &Client,
    timeout: Duration,
    rewrite: Option<&EndpointRewrite>,
) -> Result<Target> {
    let ns = namespace;
    let mut peer_urls = vec![];
    let (url, key_ref, ca_ref, cluster) = match (target.cluster, target.connection) {
        (Some(cluster), None) => {
            let api: Api<QdrantCluster> = Api::namespaced(client.clone(), ns);
            let Some(qc) = api.get_opt(&cluster.name).await? else {
                return Ok(Target::Waiting {
                    reason: "ClusterNotFound",
                    message: format!(
                        "QdrantCluster {} (spec.cluster.name) not found in namespace {ns}",
                        cluster.name
                    ),
                    cluster_gone: true,
                });
            };
            let status = qc.status.clone().unwrap_or_default();
            if !is_true_for_generation(&status.conditions, types::READY, qc.metadata.generation) {
                return Ok(waiting(
                    "ClusterNotReady",
                    format!("waiting for QdrantCluster {} to be Ready", cluster.name),
                ));
            }
            let Some(endpoints) = status.endpoints else {
                return Ok(waiting(
                    "ClusterNotReady",
                    format!("QdrantCluster {} publishes no endpoints yet", cluster.name),
                ));
            };
            for peer in &status.peers {
                if let Some(u) = &peer.url {
                    peer_urls.push((
                        peer.peer_id,
                        parse_url(u, "status.peers[].url of the QdrantCluster", rewrite)?,
                    ));
                }
            }
            let url = parse_url(
                &endpoints.http,
                "status.endpoints.http of the QdrantCluster",
                rewrite,
            )?;
            let key_ref = status.auth.and_then(|a| a.api_key_secret_ref);
            // Client TLS: trust exactly the cluster's CA (`ca.crt` of its serving Secret).
            let ca_ref = match status.tls.filter(|t| t.client) {
                Some(tls) => match tls.ca_secret_ref {
                    Some(r) => Some(r),
                    None => {
                        return Ok(waiting(
                            "ClusterNotReady",
                            format!(
                                "QdrantCluster {} serves TLS but publishes no status.tls.caSecretRef yet",
                                cluster.name
                            ),
                        ));
                    }
                },
                None => None,
            };
            (url, key_ref, ca_ref, Some(qc))
        }
        (None, Some(conn)) => {
            let ca = conn.tls.as_ref().and_then(|t| t.ca_secret_ref.clone());
            let url = parse_url(&conn.url, "spec.connection.url", rewrite)?;
            (url, conn.api_key_secret_ref.clone(), ca, None)
        }
        _ => {
            return Err(Error::InvalidSpec(
                "spec: set exactly one of cluster or connection".into(),
            ));
        }
    };

    let mut conn = QdrantConnection::new(url).with_timeout(timeout);
    if let Some(r) = key_ref {
        match secret_value(client, ns, &r).await? {
            Some(k) => conn = conn.with_api_key(ApiKey::new(k)),
            None => {
                return Ok(waiting(
                    "SecretNotFound",
                    format!(
                        "Secret {} with key {} (API key) not found in namespace {ns}",
                        r.name, r.key
                    ),
                ));
            }
        }
    }
    if let Some(r) = ca_ref {
        match secret_value(client, ns, &r).await? {
            Some(pem) => conn = conn.with_ca_bundle_pem(pem.into_bytes()),
            None => {
                return Ok(waiting(
                    "SecretNotFound",
                    format!(
                        "Secret {} with key {} (CA bundle) not found in namespace {ns}",
                        r.name, r.key
                    ),
                ));
            }
        }
    }
    Ok(Target::Ready(Box::new(Resolved {
        client: QdrantClient::new(&conn)?,
        cluster,
        peer_urls,
        template: conn,
    })))
}
