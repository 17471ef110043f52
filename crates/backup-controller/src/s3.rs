//! The S3 side of backups and restores: a client for one bucket and key prefix (from
//! `spec.storage.s3`), and the object operations the pipeline needs: multipart uploads (see
//! [`crate::upload`]), small JSON objects (the manifest), streaming reads, presigned GET URLs,
//! listing and deletion.
//!
//! Errors are [`S3Error`]: the S3 error code and message (e.g. `NoSuchBucket`,
//! `InvalidAccessKeyId`, `SignatureDoesNotMatch`) with the operation and the object named.
//! Credentials never appear in an error, a log line or a status.

use std::{fmt, time::Duration};

use aws_sdk_s3::{
    Client,
    config::{
        BehaviorVersion, ConfigBag, Credentials, Intercept, Region, RuntimeComponents,
        interceptors::BeforeDeserializationInterceptorContextMut, retry::RetryConfig,
        timeout::TimeoutConfig,
    },
    error::{DisplayErrorContext, ProvideErrorMetadata, SdkError},
    presigning::PresigningConfig,
    primitives::{ByteStream, SdkBody},
    types::{Delete, ObjectIdentifier},
};
use bytes::Bytes;
use futures::{StreamExt, stream::BoxStream};

/// Static S3 credentials read from the Secret named in `spec.storage.s3.credentialsSecretRef`.
/// `Debug` prints the access key id only.
#[derive(Clone)]
pub struct StaticCredentials {
    /// `AWS_ACCESS_KEY_ID`-style key id.
    pub access_key_id: String,
    /// The secret key; never logged.
    pub secret_access_key: String,
    /// Optional session token (temporary credentials); never logged.
    pub session_token: Option<String>,
}

impl fmt::Debug for StaticCredentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StaticCredentials")
            .field("access_key_id", &self.access_key_id)
            .field("secret_access_key", &"<redacted>")
            .finish()
    }
}

/// Where and how to reach the bucket: the resolved form of `spec.storage.s3`.
#[derive(Debug, Clone)]
pub struct S3Location {
    /// Bucket name (`spec.storage.s3.bucket`).
    pub bucket: String,
    /// Key prefix without leading or trailing `/` (`spec.storage.s3.prefix`); may be empty.
    pub prefix: String,
    /// Region (`spec.storage.s3.region`).
    pub region: String,
    /// Endpoint URL of an S3-compatible store (`spec.storage.s3.endpoint`); `None` = AWS.
    pub endpoint: Option<String>,
    /// Path-style addressing (`spec.storage.s3.forcePathStyle`).
    pub force_path_style: bool,
}

impl S3Location {
    /// The full object key of `relative` under the prefix: `prefix/relative`.
    pub fn key(&self, relative: &str) -> String {
        let relative = relative.trim_start_matches('/');
        if self.prefix.is_empty() {
            relative.to_string()
        } else {
            format!("{}/{relative}", self.prefix)
        }
    }

    /// `s3://bucket/key`, for status and messages.
    pub fn url(&self, key: &str) -> String {
        format!("s3://{}/{key}", self.bucket)
    }
}

/// An S3 operation that failed: which operation on which object, and S3's code and message.
#[derive(Debug, thiserror::Error)]
#[error("S3 {operation} {target}: {detail}")]
pub struct S3Error {
    /// The S3 API operation, e.g. `UploadPart`.
    pub operation: &'static str,
    /// `s3://bucket/key` or `s3://bucket`.
    pub target: String,
    /// S3's error code when it sent one (`NoSuchBucket`, `AccessDenied`, ...).
    pub code: Option<String>,
    /// S3's code and message, or the transport error.
    pub detail: String,
}

impl S3Error {
    fn from_sdk<E>(
        operation: &'static str,
        target: String,
        err: SdkError<E, aws_sdk_s3::config::http::HttpResponse>,
    ) -> Self
    where
        E: ProvideErrorMetadata + std::error::Error + 'static,
    {
        // HEAD answers carry no body, so no S3 error code: name the HTTP status instead.
        let status_code = err.raw_response().map(|r| r.status().as_u16());
        let code = err.code().map(str::to_string).or(match status_code {
            Some(403) => Some("Forbidden".to_string()),
            Some(404) => Some("NotFound".to_string()),
            _ => None,
        });
        let detail = match (code.as_deref(), err.message()) {
            (Some(code), Some(message)) => format!("{code}: {message}"),
            (Some(code), None) => match status_code {
                Some(status) => format!("{code} (HTTP {status})"),
                None => code.to_string(),
            },
            _ => DisplayErrorContext(&err).to_string(),
        };
        S3Error {
            operation,
            target,
            code,
            detail,
        }
    }

    /// Whether trying again later may succeed: no S3 error code (a transport error or a
    /// timeout), or one of S3's own "try again" codes (`InternalError`, `ServiceUnavailable`,
    /// `SlowDown`, `RequestTimeout`, ...). Refused credentials, a missing bucket or key are not.
    pub fn is_transient(&self) -> bool {
        match self.code.as_deref() {
            None => true,
            Some(code) => matches!(
                code,
                "InternalError"
                    | "ServiceUnavailable"
                    | "SlowDown"
                    | "RequestTimeout"
                    | "OperationAborted"
                    | "Throttling"
                    | "ThrottlingException"
            ),
        }
    }

    fn other(operation: &'static str, target: String, detail: impl fmt::Display) -> Self {
        S3Error {
            operation,
            target,
            code: None,
            detail: detail.to_string(),
        }
    }
}

/// The limits of every S3 request a [`Bucket`] sends, so a blackholed or stalled endpoint fails
/// a reconcile or a run with an error instead of hanging it (and shutdown with it).
///
/// Requests are retried by the SDK's standard retry strategy (throttling, 5xx, timeouts and
/// transport errors; exponential backoff with jitter) up to `max_attempts` in all. A body that
/// stops moving mid-transfer is cut by the SDK's stalled-stream protection (on by default).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct S3Limits {
    /// TCP and TLS connect timeout. Default 10 s.
    pub connect: Duration,
    /// One attempt of a small request (HeadBucket, manifests, listing, deletion, multipart
    /// create/complete/abort), answer included. Default 30 s.
    pub attempt: Duration,
    /// One attempt of a data request (`UploadPart` with its body; `GetObject` until the body
    /// starts). Default 5 min: a 512 MiB part (the largest) at about 2 MiB/s.
    pub data_attempt: Duration,
    /// Attempts of every request, the first included. Default 3.
    pub max_attempts: u32,
    /// Largest reply body read for a small request (listings, error documents, multipart
    /// answers), bytes; a longer one fails the request instead of being buffered. Default
    /// 16 MiB (a full `ListObjectsV2` page of 1,000 keys is well under 1 MiB). `GetObject`
    /// bodies are streamed and not limited here.
    pub max_reply_bytes: u64,
}

/// The longest wait of the SDK's standard retry strategy before a retry (its `max_backoff`).
const MAX_RETRY_WAIT: Duration = Duration::from_secs(20);

impl Default for S3Limits {
    fn default() -> Self {
        S3Limits {
            connect: Duration::from_secs(10),
            attempt: Duration::from_secs(30),
            data_attempt: Duration::from_secs(300),
            max_attempts: 3,
            max_reply_bytes: 16 * 1024 * 1024,
        }
    }
}

impl S3Limits {
    /// Each attempt is bounded by `attempt`; the whole operation by every attempt plus the
    /// waits between them (the standard retry strategy waits at most 20 s before a retry), so
    /// the operation limit never cuts the attempts short.
    fn timeouts(&self, attempt: Duration) -> TimeoutConfig {
        let attempts = self.max_attempts.max(1);
        TimeoutConfig::builder()
            .connect_timeout(self.connect)
            .operation_attempt_timeout(attempt)
            .operation_timeout(
                (attempt + self.connect) * attempts + MAX_RETRY_WAIT * (attempts - 1),
            )
            .build()
    }
}

/// Caps the reply body of every request of the client it is added to at `max` bytes: a
/// `Content-Length` above it fails the request before anything is read, and a body without one
/// is cut (the read fails) once it passes `max`. So a hostile or broken endpoint cannot make
/// the controller buffer an unbounded XML document.
#[derive(Debug)]
struct ReplyLimit {
    max: u64,
}

impl Intercept for ReplyLimit {
    fn name(&self) -> &'static str {
        "ReplyLimit"
    }

    fn modify_before_deserialization(
        &self,
        context: &mut BeforeDeserializationInterceptorContextMut<'_>,
        _runtime_components: &RuntimeComponents,
        _cfg: &mut ConfigBag,
    ) -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
        let response = context.response_mut();
        let declared = response
            .headers()
            .get("content-length")
            .and_then(|v| v.parse::<u64>().ok());
        if let Some(len) = declared
            && len > self.max
        {
            return Err(format!(
                "the reply body is {len} bytes, more than the {} this client reads",
                self.max
            )
            .into());
        }
        let max = usize::try_from(self.max).unwrap_or(usize::MAX);
        let body = std::mem::replace(response.body_mut(), SdkBody::taken());
        *response.body_mut() = SdkBody::from_body_1_x(http_body_util::Limited::new(body, max));
        Ok(())
    }
}

/// A client bound to one bucket and prefix.
#[derive(Clone)]
pub struct Bucket {
    /// Small requests ([`S3Limits::attempt`]).
    client: Client,
    /// `UploadPart` and `GetObject` ([`S3Limits::data_attempt`]).
    data: Client,
    location: S3Location,
}

impl fmt::Debug for Bucket {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Bucket")
            .field("location", &self.location)
            .finish()
    }
}

/// A part uploaded to a multipart upload: its number and ETag.
#[derive(Debug, Clone)]
pub struct UploadedPart {
    /// 1-based part number.
    pub number: i32,
    /// The ETag S3 returned for the part.
    pub etag: String,
}

impl Bucket {
    /// Builds a client for `location`. With `credentials` the static key is used; without, the
    /// AWS default chain (environment, web identity / IRSA, ECS, instance metadata) of the
    /// controller's pod. Default [`S3Limits`]. No request is sent.
    pub async fn connect(location: S3Location, credentials: Option<StaticCredentials>) -> Self {
        Self::connect_with(location, credentials, S3Limits::default()).await
    }

    /// [`Self::connect`] with explicit request limits.
    pub async fn connect_with(
        location: S3Location,
        credentials: Option<StaticCredentials>,
        limits: S3Limits,
    ) -> Self {
        let mut loader = aws_config::defaults(BehaviorVersion::latest())
            .region(Region::new(location.region.clone()));
        if let Some(c) = credentials {
            loader = loader.credentials_provider(Credentials::new(
                c.access_key_id,
                c.secret_access_key,
                c.session_token,
                None,
                "kubernetes-secret",
            ));
        }
        let sdk = loader.load().await;
        let mut config = aws_sdk_s3::config::Builder::from(&sdk)
            .force_path_style(location.force_path_style)
            .retry_config(RetryConfig::standard().with_max_attempts(limits.max_attempts.max(1)));
        if let Some(endpoint) = &location.endpoint {
            config = config.endpoint_url(endpoint);
        }
        let client = |attempt| config.clone().timeout_config(limits.timeouts(attempt));
        Bucket {
            client: Client::from_conf(
                client(limits.attempt)
                    .interceptor(ReplyLimit {
                        max: limits.max_reply_bytes,
                    })
                    .build(),
            ),
            data: Client::from_conf(client(limits.data_attempt).build()),
            location,
        }
    }

    /// The bucket and prefix this client writes to.
    pub fn location(&self) -> &S3Location {
        &self.location
    }

    fn target(&self, key: &str) -> String {
        self.location.url(key)
    }

    /// `HeadBucket`: checks the bucket exists and the credentials may use it.
    ///
    /// Errors: `NoSuchBucket`/`NotFound` (HeadBucket has no body, so the code is the HTTP
    /// status text), `Forbidden`, `InvalidAccessKeyId`, transport errors.
    pub async fn check(&self) -> Result<(), S3Error> {
        self.client
            .head_bucket()
            .bucket(&self.location.bucket)
            .send()
            .await
            .map_err(|e| {
                let mut err = S3Error::from_sdk("HeadBucket", self.target(""), e);
                if err.code.as_deref() == Some("NotFound") {
                    err.detail = format!("bucket {} does not exist", self.location.bucket);
                }
                err
            })?;
        Ok(())
    }

    /// `CreateMultipartUpload` for `key` (a full key, see [`S3Location::key`]); the upload id.
    pub async fn create_multipart_upload(&self, key: &str) -> Result<String, S3Error> {
        let out = self
            .client
            .create_multipart_upload()
            .bucket(&self.location.bucket)
            .key(key)
            .send()
            .await
            .map_err(|e| S3Error::from_sdk("CreateMultipartUpload", self.target(key), e))?;
        out.upload_id().map(str::to_string).ok_or_else(|| {
            S3Error::other(
                "CreateMultipartUpload",
                self.target(key),
                "no upload id in the answer",
            )
        })
    }

    /// `UploadPart` number `number` (1-based) of `upload_id` with `body`.
    pub async fn upload_part(
        &self,
        key: &str,
        upload_id: &str,
        number: i32,
        body: Bytes,
    ) -> Result<UploadedPart, S3Error> {
        let out = self
            .data
            .upload_part()
            .bucket(&self.location.bucket)
            .key(key)
            .upload_id(upload_id)
            .part_number(number)
            .body(ByteStream::from(body))
            .send()
            .await
            .map_err(|e| S3Error::from_sdk("UploadPart", self.target(key), e))?;
        let etag = out.e_tag().map(str::to_string).ok_or_else(|| {
            S3Error::other("UploadPart", self.target(key), "no ETag in the answer")
        })?;
        Ok(UploadedPart { number, etag })
    }

    /// `CompleteMultipartUpload` with `parts` (any order; sorted here).
    pub async fn complete_multipart_upload(
        &self,
        key: &str,
        upload_id: &str,
        mut parts: Vec<UploadedPart>,
    ) -> Result<(), S3Error> {
        use aws_sdk_s3::types::{CompletedMultipartUpload, CompletedPart};
        parts.sort_by_key(|p| p.number);
        let completed = CompletedMultipartUpload::builder()
            .set_parts(Some(
                parts
                    .into_iter()
                    .map(|p| {
                        CompletedPart::builder()
                            .part_number(p.number)
                            .e_tag(p.etag)
                            .build()
                    })
                    .collect(),
            ))
            .build();
        self.client
            .complete_multipart_upload()
            .bucket(&self.location.bucket)
            .key(key)
            .upload_id(upload_id)
            .multipart_upload(completed)
            .send()
            .await
            .map_err(|e| S3Error::from_sdk("CompleteMultipartUpload", self.target(key), e))?;
        Ok(())
    }

    /// `AbortMultipartUpload`: S3 discards every uploaded part.
    pub async fn abort_multipart_upload(&self, key: &str, upload_id: &str) -> Result<(), S3Error> {
        self.client
            .abort_multipart_upload()
            .bucket(&self.location.bucket)
            .key(key)
            .upload_id(upload_id)
            .send()
            .await
            .map_err(|e| S3Error::from_sdk("AbortMultipartUpload", self.target(key), e))?;
        Ok(())
    }

    /// `ListMultipartUploads` under `prefix` (a full key prefix): `(key, upload id)` pairs of
    /// uploads started and neither completed nor aborted.
    pub async fn list_multipart_uploads(
        &self,
        prefix: &str,
    ) -> Result<Vec<(String, String)>, S3Error> {
        let mut uploads = vec![];
        let mut key_marker: Option<String> = None;
        let mut id_marker: Option<String> = None;
        loop {
            let out = self
                .client
                .list_multipart_uploads()
                .bucket(&self.location.bucket)
                .prefix(prefix)
                .set_key_marker(key_marker.take())
                .set_upload_id_marker(id_marker.take())
                .send()
                .await
                .map_err(|e| S3Error::from_sdk("ListMultipartUploads", self.target(prefix), e))?;
            for u in out.uploads() {
                if let (Some(k), Some(id)) = (u.key(), u.upload_id()) {
                    uploads.push((k.to_string(), id.to_string()));
                }
            }
            if out.is_truncated() != Some(true) {
                return Ok(uploads);
            }
            key_marker = out.next_key_marker().map(str::to_string);
            id_marker = out.next_upload_id_marker().map(str::to_string);
            if key_marker.is_none() {
                return Ok(uploads);
            }
        }
    }

    /// `PutObject` of a small object held in memory (the manifest).
    pub async fn put_object(
        &self,
        key: &str,
        body: Bytes,
        content_type: &str,
    ) -> Result<(), S3Error> {
        self.client
            .put_object()
            .bucket(&self.location.bucket)
            .key(key)
            .content_type(content_type)
            .body(ByteStream::from(body))
            .send()
            .await
            .map_err(|e| S3Error::from_sdk("PutObject", self.target(key), e))?;
        Ok(())
    }

    /// `HeadObject`: the object's size in bytes, or `None` when there is no such object.
    pub async fn object_size(&self, key: &str) -> Result<Option<u64>, S3Error> {
        match self
            .client
            .head_object()
            .bucket(&self.location.bucket)
            .key(key)
            .send()
            .await
        {
            Ok(out) => Ok(Some(
                u64::try_from(out.content_length().unwrap_or(0)).unwrap_or(0),
            )),
            Err(e) if e.as_service_error().is_some_and(|s| s.is_not_found()) => Ok(None),
            Err(e) => Err(S3Error::from_sdk("HeadObject", self.target(key), e)),
        }
    }

    /// `GetObject` of a whole small object into memory (the manifest); at most `limit` bytes.
    pub async fn get_small_object(&self, key: &str, limit: usize) -> Result<Bytes, S3Error> {
        let (_, mut stream) = self.get_object_stream(key).await?;
        let mut buf = bytes::BytesMut::new();
        while let Some(chunk) = stream.next().await {
            let chunk = chunk?;
            if buf.len() + chunk.len() > limit {
                return Err(S3Error::other(
                    "GetObject",
                    self.target(key),
                    format!("object larger than {limit} bytes"),
                ));
            }
            buf.extend_from_slice(&chunk);
        }
        Ok(buf.freeze())
    }

    /// `GetObject` as a stream of chunks, with the object's length. Nothing is buffered
    /// beyond the transport's own chunks.
    pub async fn get_object_stream(
        &self,
        key: &str,
    ) -> Result<(u64, BoxStream<'static, Result<Bytes, S3Error>>), S3Error> {
        let out = self
            .data
            .get_object()
            .bucket(&self.location.bucket)
            .key(key)
            .send()
            .await
            .map_err(|e| S3Error::from_sdk("GetObject", self.target(key), e))?;
        let len = u64::try_from(out.content_length().unwrap_or(0)).unwrap_or(0);
        let target = self.target(key);
        let stream = futures::stream::unfold(Some(out.body), move |body| {
            let target = target.clone();
            async move {
                let mut body = body?;
                match body.next().await {
                    None => None,
                    Some(Ok(chunk)) => Some((Ok(chunk), Some(body))),
                    Some(Err(e)) => Some((Err(S3Error::other("GetObject", target, e)), None)),
                }
            }
        });
        Ok((len, stream.boxed()))
    }

    /// A presigned `GetObject` URL for `key`, valid for `expires_in`. Signed locally; no
    /// request is sent.
    pub async fn presigned_get(&self, key: &str, expires_in: Duration) -> Result<String, S3Error> {
        let config = PresigningConfig::expires_in(expires_in)
            .map_err(|e| S3Error::other("GetObject", self.target(key), e))?;
        let req = self
            .client
            .get_object()
            .bucket(&self.location.bucket)
            .key(key)
            .presigned(config)
            .await
            .map_err(|e| S3Error::from_sdk("GetObject", self.target(key), e))?;
        Ok(req.uri().to_string())
    }

    /// `ListObjectsV2` under `prefix` (a full key prefix): every key with its size.
    pub async fn list_objects(&self, prefix: &str) -> Result<Vec<(String, u64)>, S3Error> {
        let mut keys = vec![];
        let mut token: Option<String> = None;
        loop {
            let out = self
                .client
                .list_objects_v2()
                .bucket(&self.location.bucket)
                .prefix(prefix)
                .set_continuation_token(token.take())
                .send()
                .await
                .map_err(|e| S3Error::from_sdk("ListObjectsV2", self.target(prefix), e))?;
            for o in out.contents() {
                if let Some(k) = o.key() {
                    let size = u64::try_from(o.size().unwrap_or(0)).unwrap_or(0);
                    keys.push((k.to_string(), size));
                }
            }
            match out.next_continuation_token() {
                Some(t) if out.is_truncated() == Some(true) => token = Some(t.to_string()),
                _ => return Ok(keys),
            }
        }
    }

    /// `DeleteObjects` for `keys` (batches of 1000, S3's limit). Keys that do not exist count
    /// as deleted, as in S3.
    pub async fn delete_objects(&self, keys: &[String]) -> Result<(), S3Error> {
        for batch in keys.chunks(1000) {
            let objects = batch
                .iter()
                .map(|k| ObjectIdentifier::builder().key(k).build())
                .collect::<Result<Vec<_>, _>>()
                .map_err(|e| S3Error::other("DeleteObjects", self.target(""), e))?;
            let delete = Delete::builder()
                .set_objects(Some(objects))
                .quiet(true)
                .build()
                .map_err(|e| S3Error::other("DeleteObjects", self.target(""), e))?;
            let out = self
                .client
                .delete_objects()
                .bucket(&self.location.bucket)
                .delete(delete)
                .send()
                .await
                .map_err(|e| S3Error::from_sdk("DeleteObjects", self.target(""), e))?;
            if let Some(err) = out.errors().first() {
                return Err(S3Error {
                    operation: "DeleteObjects",
                    target: self.target(err.key().unwrap_or_default()),
                    code: err.code().map(str::to_string),
                    detail: format!(
                        "{}: {}",
                        err.code().unwrap_or("Error"),
                        err.message().unwrap_or_default()
                    ),
                });
            }
        }
        Ok(())
    }

    /// Deletes every object under `prefix` and aborts every unfinished multipart upload there.
    pub async fn delete_prefix(&self, prefix: &str) -> Result<usize, S3Error> {
        for (key, id) in self.list_multipart_uploads(prefix).await? {
            self.abort_multipart_upload(&key, &id).await?;
        }
        let keys: Vec<String> = self
            .list_objects(prefix)
            .await?
            .into_iter()
            .map(|(k, _)| k)
            .collect();
        self.delete_objects(&keys).await?;
        Ok(keys.len())
    }
}
