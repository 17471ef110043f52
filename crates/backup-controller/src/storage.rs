//! From `storage.s3` of a spec to a [`Bucket`]: reads the credentials Secret (never logs it).

use api_types::{backup::S3Storage, cluster::SecretKeyRef};
use kube::Client;
use reconcile_lib::{error::Result, target::secret_value};

use crate::s3::{Bucket, S3Location, StaticCredentials};

/// A bucket client, or why there is none yet.
pub enum Storage {
    /// Ready to use.
    Ready(Bucket),
    /// The credentials Secret or one of its keys is missing: a CamelCase reason and a message
    /// naming the Secret and key (never a value).
    Waiting {
        /// `SecretNotFound`.
        reason: &'static str,
        /// Which Secret and key.
        message: String,
    },
}

/// The [`S3Location`] of `s3` (`spec.storage.s3` or `spec.source.s3.storage`).
pub fn location(s3: &S3Storage) -> S3Location {
    S3Location {
        bucket: s3.bucket.clone(),
        prefix: s3
            .prefix
            .clone()
            .unwrap_or_default()
            .trim_matches('/')
            .to_string(),
        region: s3.region.clone(),
        endpoint: s3.endpoint.clone(),
        force_path_style: s3.force_path_style,
    }
}

/// Connects to `s3` with the credentials Secret it names in `namespace` (GET Secret), or the
/// pod's ambient AWS credentials when it names none. Errors: Kubernetes API failures.
pub async fn connect(client: &Client, namespace: &str, s3: &S3Storage) -> Result<Storage> {
    let credentials = match &s3.credentials_secret_ref {
        None => None,
        Some(r) => {
            let read = |key: &str| {
                let r = SecretKeyRef {
                    name: r.name.clone(),
                    key: key.to_string(),
                };
                async move { secret_value(client, namespace, &r).await }
            };
            let missing = |key: &str| Storage::Waiting {
                reason: "SecretNotFound",
                message: format!(
                    "Secret {} with key {key} (S3 credentials, spec.storage.s3.credentialsSecretRef) not found in namespace {namespace}",
                    r.name
                ),
            };
            let Some(access_key_id) = read(&r.access_key_id_key).await? else {
                return Ok(missing(&r.access_key_id_key));
            };
            let Some(secret_access_key) = read(&r.secret_access_key_key).await? else {
                return Ok(missing(&r.secret_access_key_key));
            };
            let session_token = match &r.session_token_key {
                Some(k) => match read(k).await? {
                    Some(t) => Some(t),
                    None => return Ok(missing(k)),
                },
                None => None,
            };
            Some(StaticCredentials {
                access_key_id,
                secret_access_key,
                session_token,
            })
        }
    };
    Ok(Storage::Ready(
        Bucket::connect(location(s3), credentials).await,
    ))
}
