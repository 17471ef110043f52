//! The streaming multipart upload against a real S3 server (moto; see `common/s3.rs`).

#![allow(clippy::expect_used, clippy::unwrap_used)]

mod common;

use backup_controller::{
    s3::Bucket,
    upload::{UploadError, UploadSettings, upload_stream},
};
use bytes::Bytes;
use common::{
    faults::{FaultPlan, FaultyProxy},
    s3::server,
};
use futures::{StreamExt, stream};
use sha2::{Digest, Sha256};
use tokio_util::sync::CancellationToken;

const MIB: usize = 1024 * 1024;

/// `len` deterministic bytes in 64 KiB chunks; fails with "boom" after `fail_after` bytes.
fn source(
    len: usize,
    fail_after: Option<usize>,
) -> impl futures::Stream<Item = Result<Bytes, String>> + Unpin {
    let chunk = 64 * 1024;
    let mut sent = 0usize;
    stream::iter(std::iter::from_fn(move || {
        if let Some(f) = fail_after
            && sent >= f
        {
            sent = usize::MAX;
            return Some(Err("boom".to_string()));
        }
        if sent >= len {
            return None;
        }
        let n = chunk.min(len - sent);
        let bytes: Vec<u8> = (sent..sent + n).map(|i| (i % 251) as u8).collect();
        sent += n;
        Some(Ok(Bytes::from(bytes)))
    }))
    .fuse()
}

fn sha_of(len: usize) -> String {
    let bytes: Vec<u8> = (0..len).map(|i| (i % 251) as u8).collect();
    hex::encode(Sha256::digest(&bytes))
}

fn settings() -> UploadSettings {
    UploadSettings {
        part_size: 5 * MIB,
        concurrency: 2,
    }
}

async fn download_sha(bucket: &Bucket, key: &str) -> (u64, String) {
    let (_, mut s) = bucket.get_object_stream(key).await.unwrap();
    let mut h = Sha256::new();
    let mut n = 0u64;
    while let Some(c) = s.next().await {
        let c = c.unwrap();
        n += c.len() as u64;
        h.update(&c);
    }
    (n, hex::encode(h.finalize()))
}

#[tokio::test]
async fn small_object_is_one_put() {
    let bucket = server().new_bucket("backups").await;
    let key = bucket.location().key("small.snapshot");
    let cancel = CancellationToken::new();
    let len = 100_000;
    let up = upload_stream(
        &bucket,
        &key,
        source(len, None),
        Some(len as u64),
        settings(),
        &cancel,
    )
    .await
    .unwrap();
    assert_eq!(up.parts, 1);
    assert_eq!(up.size, len as u64);
    assert_eq!(up.sha256, sha_of(len));
    assert_eq!(download_sha(&bucket, &key).await, (len as u64, sha_of(len)));
    assert_eq!(key, "backups/small.snapshot");
}

#[tokio::test]
async fn large_object_is_multipart_with_matching_bytes() {
    let bucket = server().new_bucket("").await;
    let key = bucket.location().key("big.snapshot");
    let len = 12 * MIB + 12_345;
    let up = upload_stream(
        &bucket,
        &key,
        source(len, None),
        Some(len as u64),
        settings(),
        &CancellationToken::new(),
    )
    .await
    .unwrap();
    assert_eq!(up.parts, 3);
    assert_eq!((up.size, up.sha256.clone()), (len as u64, sha_of(len)));
    assert_eq!(download_sha(&bucket, &key).await, (len as u64, sha_of(len)));
    assert!(bucket.list_multipart_uploads("").await.unwrap().is_empty());
}

#[tokio::test]
async fn source_failure_midway_aborts_and_leaves_nothing() {
    let bucket = server().new_bucket("").await;
    let key = bucket.location().key("broken.snapshot");
    let err = upload_stream(
        &bucket,
        &key,
        source(20 * MIB, Some(11 * MIB)),
        Some(20 * MIB as u64),
        settings(),
        &CancellationToken::new(),
    )
    .await
    .unwrap_err();
    match &err {
        UploadError::Source { bytes, message } => {
            assert_eq!(*bytes, 11 * MIB as u64);
            assert!(message.contains("boom"), "{message}");
        }
        other => panic!("expected a source error, got {other}"),
    }
    assert!(bucket.list_multipart_uploads("").await.unwrap().is_empty());
    assert!(bucket.list_objects("").await.unwrap().is_empty());
}

#[tokio::test]
async fn short_source_is_an_error_not_a_short_object() {
    let bucket = server().new_bucket("").await;
    let key = bucket.location().key("short.snapshot");
    let err = upload_stream(
        &bucket,
        &key,
        source(6 * MIB, None),
        Some(8 * MIB as u64),
        settings(),
        &CancellationToken::new(),
    )
    .await
    .unwrap_err();
    assert!(
        err.to_string()
            .contains("ended after 6291456 of 8388608 bytes"),
        "{err}"
    );
    assert!(bucket.list_multipart_uploads("").await.unwrap().is_empty());
    assert!(bucket.list_objects("").await.unwrap().is_empty());
}

/// A source announced (Qdrant's `Content-Length`) as larger than any upload can hold, e.g. a
/// server that lies: refused before anything is read or allocated (a part size grown for it
/// would be 100 TiB), with nothing left in S3.
#[tokio::test]
async fn a_source_claiming_an_impossible_length_is_refused_before_reading() {
    let bucket = server().new_bucket("").await;
    let key = bucket.location().key("liar.snapshot");
    let read = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let counted = read.clone();
    let source = source(MIB, None).inspect(move |_| {
        counted.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    });
    let err = upload_stream(
        &bucket,
        &key,
        source,
        Some(1 << 60),
        settings(),
        &CancellationToken::new(),
    )
    .await
    .unwrap_err();
    assert!(
        matches!(err, UploadError::TooLarge { part_size } if part_size == 512 * MIB),
        "{err}"
    );
    assert!(
        err.to_string().contains("raise spec.upload.partSizeMiB"),
        "{err}"
    );
    assert_eq!(
        read.load(std::sync::atomic::Ordering::Relaxed),
        0,
        "nothing read"
    );
    assert!(bucket.list_multipart_uploads("").await.unwrap().is_empty());
    assert!(bucket.list_objects("").await.unwrap().is_empty());
}

#[tokio::test]
async fn s3_failing_midway_aborts_and_leaves_no_parts() {
    let s3 = server();
    let direct = s3.new_bucket("").await;
    let bucket_name = direct.location().bucket.clone();
    // The third part fails, every time it is retried.
    let proxy = FaultyProxy::start(
        &s3.endpoint,
        FaultPlan {
            matching: "partNumber=3".into(),
            from: 1,
        },
    )
    .await;
    let mut location = s3.location(&bucket_name, "");
    location.endpoint = Some(proxy.endpoint.clone());
    let bucket = Bucket::connect(location, Some(s3.credentials())).await;
    let key = bucket.location().key("faulty.snapshot");
    let err = upload_stream(
        &bucket,
        &key,
        source(18 * MIB, None),
        Some(18 * MIB as u64),
        settings(),
        &CancellationToken::new(),
    )
    .await
    .unwrap_err();
    assert!(matches!(err, UploadError::S3(_)), "{err}");
    assert!(err.to_string().contains("UploadPart"), "{err}");
    assert!(err.to_string().contains("InternalError"), "{err}");
    assert!(proxy.failed() >= 1);
    assert!(direct.list_multipart_uploads("").await.unwrap().is_empty());
    assert!(direct.list_objects("").await.unwrap().is_empty());
}

#[tokio::test]
async fn cancel_aborts() {
    let bucket = server().new_bucket("").await;
    let key = bucket.location().key("cancelled.snapshot");
    let cancel = CancellationToken::new();
    // A source that yields 6 MiB and then waits forever; cancelled while waiting.
    let head = source(6 * MIB, None);
    let pending = stream::pending::<Result<Bytes, String>>();
    let src = head.chain(pending);
    let c2 = cancel.clone();
    tokio::spawn(async move {
        tokio::time::sleep(std::time::Duration::from_millis(1500)).await;
        c2.cancel();
    });
    let err = upload_stream(&bucket, &key, src, None, settings(), &cancel)
        .await
        .unwrap_err();
    assert!(matches!(err, UploadError::Cancelled), "{err}");
    assert!(bucket.list_multipart_uploads("").await.unwrap().is_empty());
}

#[tokio::test]
async fn wrong_credentials_and_missing_bucket_name_the_cause() {
    let s3 = server();
    let good = s3.new_bucket("").await;
    let mut creds = s3.credentials();
    creds.secret_access_key = "not-the-secret".into();
    let bad = Bucket::connect(good.location().clone(), Some(creds)).await;
    let err = bad.check().await.unwrap_err().to_string();
    assert!(err.contains("HeadBucket"), "{err}");
    let err = upload_stream(
        &bad,
        "x",
        source(10, None),
        None,
        settings(),
        &CancellationToken::new(),
    )
    .await
    .unwrap_err()
    .to_string();
    assert!(err.contains("SignatureDoesNotMatch"), "{err}");

    let missing = Bucket::connect(
        s3.location("no-such-bucket-here", ""),
        Some(s3.credentials()),
    )
    .await;
    let err = missing.check().await.unwrap_err().to_string();
    assert!(err.contains("no-such-bucket-here"), "{err}");
    let err = upload_stream(
        &missing,
        "x",
        source(10, None),
        None,
        settings(),
        &CancellationToken::new(),
    )
    .await
    .unwrap_err()
    .to_string();
    assert!(err.contains("NoSuchBucket"), "{err}");
}

#[tokio::test]
async fn presigned_url_downloads_without_credentials() {
    let bucket = server().new_bucket("p").await;
    let key = bucket.location().key("obj");
    bucket
        .put_object(&key, Bytes::from_static(b"hello"), "text/plain")
        .await
        .unwrap();
    let url = bucket
        .presigned_get(&key, std::time::Duration::from_secs(60))
        .await
        .unwrap();
    let body = reqwest::get(&url).await.unwrap();
    assert_eq!(body.status(), 200);
    assert_eq!(body.bytes().await.unwrap().as_ref(), b"hello");
    let tampered = url.replace("X-Amz-Credential=", "X-Amz-Credential=AKIAWRONG");
    assert_eq!(reqwest::get(&tampered).await.unwrap().status(), 403);
}
