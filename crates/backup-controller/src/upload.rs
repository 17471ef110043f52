//! Streams bytes (a Qdrant snapshot download) into one S3 object with a multipart upload,
//! computing size and SHA-256 on the way.
//!
//! Memory stays flat whatever the size: at most `concurrency` parts are in flight and one part
//! is being filled, in `concurrency + 1` part buffers reused from part to part, so the peak is
//! about `part_size × (concurrency + 1)`. An object smaller
//! than one part is written with a single `PutObject`. On any failure (the source stream
//! errors or ends early, S3 refuses a part, the work is cancelled) the multipart upload is
//! aborted, so S3 keeps no parts and no partial object, and the error says which side failed.

use std::fmt;

use bytes::{Bytes, BytesMut};
use futures::{Stream, StreamExt, stream::FuturesUnordered};
use sha2::{Digest, Sha256};
use tokio_util::sync::CancellationToken;

use crate::s3::{Bucket, S3Error, UploadedPart};

/// S3's smallest part size (except the last part): 5 MiB.
pub const MIN_PART_SIZE: usize = 5 * 1024 * 1024;

/// S3's largest number of parts in one upload.
pub const MAX_PARTS: usize = 10_000;

/// The largest part this controller holds in memory: `spec.upload.partSizeMiB`'s maximum
/// (512 MiB). A part size grown for a large source stops here, so no length a server claims
/// can make the controller allocate more than `MAX_PART_SIZE × (concurrency + 1)`.
pub const MAX_PART_SIZE: usize = api_types::backup::MAX_PART_SIZE_MIB as usize * 1024 * 1024;

/// Part size and parallelism (`spec.upload.partSizeMiB`, `spec.upload.concurrency`).
#[derive(Debug, Clone, Copy)]
pub struct UploadSettings {
    /// Bytes per part, at least [`MIN_PART_SIZE`].
    pub part_size: usize,
    /// Parts uploading at once, at least 1.
    pub concurrency: usize,
}

impl Default for UploadSettings {
    fn default() -> Self {
        UploadSettings::from_mib(
            api_types::backup::DEFAULT_PART_SIZE_MIB,
            api_types::backup::DEFAULT_UPLOAD_CONCURRENCY,
        )
    }
}

/// The part size used for a source of `expected_len` bytes: the configured size (at least
/// [`MIN_PART_SIZE`]), grown to a whole number of MiB when the source would otherwise need
/// more than [`MAX_PARTS`] parts, but never past [`MAX_PART_SIZE`] (nor below the configured
/// size).
pub fn effective_part_size(settings: UploadSettings, expected_len: Option<u64>) -> usize {
    const MIB: u64 = 1024 * 1024;
    let needed = expected_len.map_or(0, |len| {
        len.div_ceil(MAX_PARTS as u64).next_multiple_of(MIB)
    });
    let configured = settings.part_size.max(MIN_PART_SIZE);
    configured.max(
        usize::try_from(needed)
            .unwrap_or(usize::MAX)
            .min(MAX_PART_SIZE),
    )
}

impl UploadSettings {
    /// From the CRD's `partSizeMiB` and `concurrency`, clamped to what S3 allows.
    pub fn from_mib(part_size_mib: u32, concurrency: u32) -> Self {
        UploadSettings {
            part_size: (part_size_mib as usize * 1024 * 1024).max(MIN_PART_SIZE),
            concurrency: (concurrency as usize).max(1),
        }
    }
}

/// What landed in S3.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Uploaded {
    /// The object key.
    pub key: String,
    /// Bytes written (and confirmed by `HeadObject`).
    pub size: u64,
    /// SHA-256 of the bytes, lowercase hex.
    pub sha256: String,
    /// Parts used (1 for a single `PutObject`).
    pub parts: usize,
}

/// Why an upload failed; the multipart upload has been aborted in every case.
#[derive(Debug, thiserror::Error)]
pub enum UploadError {
    /// The source (Qdrant's download) failed or ended early.
    #[error("reading the snapshot failed after {bytes} bytes: {message}")]
    Source {
        /// Bytes received before the failure.
        bytes: u64,
        /// The source's error.
        message: String,
    },
    /// S3 refused an operation.
    #[error(transparent)]
    S3(#[from] S3Error),
    /// The object in S3 does not have the size that was streamed.
    #[error("{key}: S3 reports {actual} bytes, {expected} were uploaded")]
    SizeMismatch {
        /// The object key.
        key: String,
        /// Bytes streamed.
        expected: u64,
        /// Bytes S3 holds.
        actual: u64,
    },
    /// The source is larger than `part_size × 10 000`.
    #[error("the snapshot exceeds {max} bytes, the most {parts} parts of {part_size} bytes can hold; raise spec.upload.partSizeMiB", max = MAX_PARTS as u64 * *part_size as u64, parts = MAX_PARTS)]
    TooLarge {
        /// The part size in use.
        part_size: usize,
    },
    /// The work was cancelled (leadership lost, shutdown, the backup deleted).
    #[error("cancelled")]
    Cancelled,
}

/// Uploads `source` to `key` in `bucket` (see the module docs). `expected_len`, when known
/// (Qdrant's `Content-Length`), is checked against the bytes received: a stream that ends
/// early is a [`UploadError::Source`] failure, never a short object.
///
/// Calls: `CreateMultipartUpload`, `UploadPart` ×N, `CompleteMultipartUpload`, then
/// `HeadObject` to confirm the size; or `PutObject` + `HeadObject` when the source fits one
/// part. `AbortMultipartUpload` on failure.
pub async fn upload_stream<S, E>(
    bucket: &Bucket,
    key: &str,
    source: S,
    expected_len: Option<u64>,
    settings: UploadSettings,
    cancel: &CancellationToken,
) -> Result<Uploaded, UploadError>
where
    S: Stream<Item = Result<Bytes, E>> + Unpin,
    E: fmt::Display,
{
    let mut upload = MultipartState {
        bucket,
        key,
        upload_id: None,
    };
    match stream_parts(&mut upload, source, expected_len, settings, cancel).await {
        Ok(done) => Ok(done),
        Err(e) => {
            upload.abort().await;
            Err(e)
        }
    }
}

struct MultipartState<'a> {
    bucket: &'a Bucket,
    key: &'a str,
    upload_id: Option<String>,
}

impl MultipartState<'_> {
    async fn id(&mut self) -> Result<String, S3Error> {
        if let Some(id) = &self.upload_id {
            return Ok(id.clone());
        }
        let id = self.bucket.create_multipart_upload(self.key).await?;
        self.upload_id = Some(id.clone());
        Ok(id)
    }

    /// Aborts the upload, retrying a few times: parts left behind cost money and are
    /// invisible to `ListObjects`.
    async fn abort(&mut self) {
        let Some(id) = self.upload_id.take() else {
            return;
        };
        for attempt in 0..3u64 {
            match self.bucket.abort_multipart_upload(self.key, &id).await {
                Ok(()) => return,
                Err(e) => {
                    tracing::warn!(key = self.key, error = %e, attempt, "aborting the multipart upload failed");
                    tokio::time::sleep(std::time::Duration::from_millis(200 * (attempt + 1))).await;
                }
            }
        }
    }
}

/// Uploads one part and hands its buffer back, so the caller can reuse the allocation once
/// S3's client has let go of it.
async fn send_part(
    bucket: &Bucket,
    key: &str,
    upload_id: String,
    number: i32,
    body: Bytes,
) -> (Result<UploadedPart, S3Error>, Bytes) {
    let result = bucket
        .upload_part(key, &upload_id, number, body.clone())
        .await;
    (result, body)
}

/// Part buffers of `part_size` bytes, reused: a fresh allocation per part (16 MiB by default)
/// makes the allocator keep freed parts around in per-thread arenas, so resident memory grew
/// with the snapshot size; reusing at most `concurrency + 1` buffers keeps it flat.
struct PartBuffers {
    part_size: usize,
    free: Vec<BytesMut>,
}

impl PartBuffers {
    fn take(&mut self) -> BytesMut {
        self.free
            .pop()
            .unwrap_or_else(|| BytesMut::with_capacity(self.part_size))
    }

    /// Takes back a sent part's buffer when nothing else holds it.
    fn give_back(&mut self, body: Bytes) {
        if let Ok(mut buf) = body.try_into_mut() {
            buf.clear();
            if buf.capacity() >= self.part_size {
                self.free.push(buf);
            }
        }
    }
}

async fn stream_parts<S, E>(
    upload: &mut MultipartState<'_>,
    mut source: S,
    expected_len: Option<u64>,
    settings: UploadSettings,
    cancel: &CancellationToken,
) -> Result<Uploaded, UploadError>
where
    S: Stream<Item = Result<Bytes, E>> + Unpin,
    E: fmt::Display,
{
    let part_size = effective_part_size(settings, expected_len);
    // A source announced as larger than any upload can hold fails before a byte is read or
    // a buffer allocated.
    if expected_len.is_some_and(|len| len > MAX_PARTS as u64 * part_size as u64) {
        return Err(UploadError::TooLarge { part_size });
    }
    let concurrency = settings.concurrency.max(1);
    let bucket = upload.bucket;
    let key = upload.key;
    let mut hasher = Sha256::new();
    let mut received: u64 = 0;
    let mut buffers = PartBuffers {
        part_size,
        free: vec![],
    };
    let mut buffer = buffers.take();
    let mut next_part: i32 = 1;
    let mut done_parts: Vec<UploadedPart> = vec![];
    let mut in_flight = FuturesUnordered::new();

    loop {
        let chunk = tokio::select! {
            biased;
            () = cancel.cancelled() => return Err(UploadError::Cancelled),
            Some((result, body)) = in_flight.next(), if !in_flight.is_empty() => {
                buffers.give_back(body);
                done_parts.push(result?);
                continue;
            }
            chunk = source.next() => chunk,
        };
        let Some(chunk) = chunk else { break };
        let chunk = chunk.map_err(|e| UploadError::Source {
            bytes: received,
            message: e.to_string(),
        })?;
        received += chunk.len() as u64;
        hasher.update(&chunk);
        let mut rest: &[u8] = &chunk;
        while !rest.is_empty() {
            let take = (part_size - buffer.len()).min(rest.len());
            buffer.extend_from_slice(&rest[..take]);
            rest = &rest[take..];
            if buffer.len() < part_size {
                continue;
            }
            if next_part as usize > MAX_PARTS {
                return Err(UploadError::TooLarge { part_size });
            }
            // Wait for a slot before starting another part: bounded memory.
            while in_flight.len() >= concurrency {
                tokio::select! {
                    biased;
                    () = cancel.cancelled() => return Err(UploadError::Cancelled),
                    Some((result, body)) = in_flight.next() => {
                        buffers.give_back(body);
                        done_parts.push(result?);
                    }
                }
            }
            let body = std::mem::replace(&mut buffer, buffers.take()).freeze();
            let id = upload.id().await?;
            let number = next_part;
            next_part += 1;
            in_flight.push(send_part(bucket, key, id, number, body));
        }
    }

    if let Some(expected) = expected_len
        && expected != received
    {
        return Err(UploadError::Source {
            bytes: received,
            message: format!("the download ended after {received} of {expected} bytes"),
        });
    }

    let sha256 = hex::encode(hasher.finalize());
    let parts;
    if upload.upload_id.is_none() {
        // Smaller than one part: one PutObject.
        bucket
            .put_object(key, buffer.freeze(), "application/octet-stream")
            .await?;
        parts = 1;
    } else {
        if !buffer.is_empty() {
            let id = upload.id().await?;
            let number = next_part;
            let body = buffer.split().freeze();
            in_flight.push(send_part(bucket, key, id, number, body));
        }
        while let Some((result, _)) = tokio::select! {
            biased;
            () = cancel.cancelled() => return Err(UploadError::Cancelled),
            r = in_flight.next() => r,
        } {
            done_parts.push(result?);
        }
        parts = done_parts.len();
        let id = upload.id().await?;
        bucket
            .complete_multipart_upload(key, &id, done_parts)
            .await?;
        upload.upload_id = None;
    }

    let actual = bucket.object_size(key).await?.unwrap_or(0);
    if actual != received {
        return Err(UploadError::SizeMismatch {
            key: key.to_string(),
            expected: received,
            actual,
        });
    }
    Ok(Uploaded {
        key: key.to_string(),
        size: received,
        sha256,
        parts,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIB: usize = 1024 * 1024;

    #[test]
    fn part_size_grows_only_when_ten_thousand_parts_are_not_enough() {
        let s = UploadSettings::from_mib(8, 3);
        assert_eq!(effective_part_size(s, None), 8 * MIB);
        assert_eq!(effective_part_size(s, Some(1024 * MIB as u64)), 8 * MIB);
        // Exactly 10,000 parts of 8 MiB still fit.
        assert_eq!(effective_part_size(s, Some(80_000 * MIB as u64)), 8 * MIB);
        // One byte more needs 9 MiB parts (whole MiB).
        assert_eq!(
            effective_part_size(s, Some(80_000 * MIB as u64 + 1)),
            9 * MIB
        );
        // 200 GiB: 21 MiB parts (20.48 rounded up).
        assert_eq!(
            effective_part_size(s, Some(200 * 1024 * MIB as u64)),
            21 * MIB
        );
        // A claimed length no upload can hold stops growing the part at 512 MiB.
        assert_eq!(effective_part_size(s, Some(1 << 60)), MAX_PART_SIZE);
        assert_eq!(MAX_PART_SIZE, 512 * MIB);
        // Below S3's minimum is raised to it.
        assert_eq!(
            effective_part_size(
                UploadSettings {
                    part_size: 1,
                    concurrency: 1
                },
                None
            ),
            MIN_PART_SIZE
        );
    }
}
