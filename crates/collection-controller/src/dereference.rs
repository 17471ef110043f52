//! Dereference: which Qdrant a QdrantCollection targets, and with which key.
//!
//! With `spec.cluster`, the QdrantCluster must be Ready for its current generation; its
//! `status.endpoints.http` and the Secret named in `status.auth.apiKeySecretRef` are used
//! (coordination through status only, never by calling the cluster-controller). With
//! `spec.connection`, the URL, the key Secret and the CA Secret come from the spec.

use std::{sync::Arc, time::Duration};

use api_types::{
    QdrantCluster, QdrantCollection,
    cluster::SecretKeyRef,
    conditions::{is_true_for_generation, types},
};
use k8s_openapi::api::core::v1::Secret;
use kube::{Api, Client, ResourceExt};
use reconcile_lib::{
    error::{Error, Result},
    qdrant::{ApiKey, QdrantClient, QdrantConnection},
};
use url::Url;

/// Rewrites an endpoint URL before connecting (tests point cluster endpoints at a fake).
pub type EndpointRewrite = Arc<dyn Fn(&Url) -> Url + Send + Sync>;

/// Where the collection lives, or why that cannot be known yet.
pub enum Target {
    /// A client for the Qdrant holding the collection.
    Ready(QdrantClient),
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
async fn secret_value(
    client: &Client,
    namespace: &str,
    r: &SecretKeyRef,
) -> Result<Option<String>> {
    let api: Api<Secret> = Api::namespaced(client.clone(), namespace);
    let Some(secret) = api.get_opt(&r.name).await? else {
        return Ok(None);
    };
    Ok(reconcile_lib::secrets::secret_value(&secret, &r.key))
}

/// Resolves the target of `qcol`. Reads the QdrantCluster (GET) and Secrets (GET); builds a
/// client with `timeout`. Errors: Kubernetes API failures; a malformed URL is
/// [`Error::InvalidSpec`] naming the field.
pub async fn resolve(
    qcol: &QdrantCollection,
    client: &Client,
    timeout: Duration,
    rewrite: Option<&EndpointRewrite>,
) -> Result<Target> {
    let ns = qcol.namespace().unwrap_or_else(|| "default".into());
    let (url, field, key_ref, ca_ref) = if let Some(cluster) = &qcol.spec.cluster {
        let api: Api<QdrantCluster> = Api::namespaced(client.clone(), &ns);
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
        let key_ref = status.auth.and_then(|a| a.api_key_secret_ref);
        (
            endpoints.http,
            "status.endpoints.http of the QdrantCluster",
            key_ref,
            None,
        )
    } else if let Some(conn) = &qcol.spec.connection {
        let ca = conn.tls.as_ref().and_then(|t| t.ca_secret_ref.clone());
        (
            conn.url.clone(),
            "spec.connection.url",
            conn.api_key_secret_ref.clone(),
            ca,
        )
    } else {
        return Err(Error::InvalidSpec(
            "spec: set exactly one of cluster or connection".into(),
        ));
    };

    let mut url = Url::parse(&url)
        .map_err(|e| Error::InvalidSpec(format!("{field}: {url:?} is not a URL: {e}")))?;
    if let Some(rewrite) = rewrite {
        url = rewrite(&url);
    }
    let mut conn = QdrantConnection::new(url).with_timeout(timeout);
    if let Some(r) = key_ref {
        match secret_value(client, &ns, &r).await? {
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
        match secret_value(client, &ns, &r).await? {
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
    Ok(Target::Ready(QdrantClient::new(&conn)?))
}
