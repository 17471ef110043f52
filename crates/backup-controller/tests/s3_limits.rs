//! Every S3 request has a bounded time and a bounded number of attempts: against an endpoint
//! that accepts connections and never answers (a blackhole), calls fail with a timeout after
//! `max_attempts` attempts instead of hanging the reconcile that made them.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::{
    sync::{
        Arc,
        atomic::{AtomicUsize, Ordering},
    },
    time::Duration,
};

use backup_controller::s3::{Bucket, S3Limits, S3Location, StaticCredentials};
use tokio::{io::AsyncReadExt, net::TcpListener};

/// A server that reads requests and never answers; counts the requests it was sent.
async fn blackhole() -> (String, Arc<AtomicUsize>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let requests = Arc::new(AtomicUsize::new(0));
    let seen = requests.clone();
    tokio::spawn(async move {
        loop {
            let Ok((mut conn, _)) = listener.accept().await else {
                return;
            };
            let seen = seen.clone();
            tokio::spawn(async move {
                let mut buf = vec![0u8; 64 * 1024];
                let mut counted = false;
                while let Ok(n) = conn.read(&mut buf).await {
                    if n == 0 {
                        return;
                    }
                    if !counted {
                        counted = true;
                        seen.fetch_add(1, Ordering::SeqCst);
                    }
                }
            });
        }
    });
    (format!("http://{addr}"), requests)
}

async fn bucket(endpoint: String, limits: S3Limits) -> Bucket {
    Bucket::connect_with(
        S3Location {
            bucket: "backups".into(),
            prefix: String::new(),
            region: "us-east-1".into(),
            endpoint: Some(endpoint),
            force_path_style: true,
        },
        Some(StaticCredentials {
            access_key_id: "AKIDEXAMPLE".into(),
            secret_access_key: "secret".into(),
            session_token: None,
        }),
        limits,
    )
    .await
}

const LIMITS: S3Limits = S3Limits {
    connect: Duration::from_secs(2),
    attempt: Duration::from_millis(300),
    data_attempt: Duration::from_millis(600),
    max_attempts: 3,
};

#[tokio::test]
async fn a_blackholed_endpoint_fails_each_call_after_its_attempts() {
    let (endpoint, requests) = blackhole().await;
    let bucket = bucket(endpoint, LIMITS).await;
    // A generous deadline: only a hang (no timeout at all) reaches it.
    let deadline = Duration::from_secs(120);

    let err = tokio::time::timeout(deadline, bucket.check())
        .await
        .expect("HeadBucket hung")
        .unwrap_err();
    assert!(err.detail.to_lowercase().contains("timeout"), "{err}");
    assert_eq!(requests.load(Ordering::SeqCst), 3, "three attempts");

    let err = tokio::time::timeout(
        deadline,
        bucket.upload_part("k", "upload-1", 1, bytes::Bytes::from_static(b"part")),
    )
    .await
    .expect("UploadPart hung")
    .unwrap_err();
    assert_eq!(err.operation, "UploadPart");
    assert!(err.detail.to_lowercase().contains("timeout"), "{err}");
    assert_eq!(requests.load(Ordering::SeqCst), 6, "three more attempts");

    let err = tokio::time::timeout(deadline, bucket.get_object_stream("k"))
        .await
        .expect("GetObject hung")
        .err()
        .expect("GetObject answered");
    assert!(err.detail.to_lowercase().contains("timeout"), "{err}");
}
