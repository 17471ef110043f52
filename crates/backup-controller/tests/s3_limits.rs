//! Every S3 request has a bounded time, a bounded number of attempts and a bounded reply:
//! against an endpoint that accepts connections and never answers (a blackhole), calls fail
//! with a timeout after `max_attempts` attempts instead of hanging the reconcile that made
//! them; against one that answers a listing with a huge (valid) document, the listing fails
//! instead of being buffered.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::{
    sync::{
        Arc,
        atomic::{AtomicUsize, Ordering},
    },
    time::Duration,
};

use backup_controller::s3::{Bucket, S3Limits, S3Location, StaticCredentials};
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::TcpListener,
};

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
    max_reply_bytes: 16 * 1024 * 1024,
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

/// A server that answers every request with a valid `ListObjectsV2` page of `keys` keys (about
/// 50 bytes each), with a `Content-Length` or chunked.
async fn huge_listing(keys: usize, chunked: bool) -> String {
    let mut xml = String::from(
        r#"<?xml version="1.0" encoding="UTF-8"?><ListBucketResult xmlns="http://s3.amazonaws.com/doc/2006-03-01/"><Name>backups</Name><Prefix></Prefix><MaxKeys>1000</MaxKeys><IsTruncated>false</IsTruncated>"#,
    );
    for i in 0..keys {
        xml.push_str(&format!(
            "<Contents><Key>k{i:08}</Key><Size>1</Size></Contents>"
        ));
    }
    xml.push_str("</ListBucketResult>");
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let xml = Arc::new(xml);
    tokio::spawn(async move {
        while let Ok((mut conn, _)) = listener.accept().await {
            let xml = xml.clone();
            tokio::spawn(async move {
                let mut buf = vec![0u8; 64 * 1024];
                let _ = conn.read(&mut buf).await;
                let head = if chunked {
                    "HTTP/1.1 200 OK\r\nContent-Type: application/xml\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n".to_string()
                } else {
                    format!(
                        "HTTP/1.1 200 OK\r\nContent-Type: application/xml\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                        xml.len()
                    )
                };
                if conn.write_all(head.as_bytes()).await.is_err() {
                    return;
                }
                for piece in xml.as_bytes().chunks(16 * 1024) {
                    let sent = if chunked {
                        let mut framed = format!("{:x}\r\n", piece.len()).into_bytes();
                        framed.extend_from_slice(piece);
                        framed.extend_from_slice(b"\r\n");
                        conn.write_all(&framed).await
                    } else {
                        conn.write_all(piece).await
                    };
                    if sent.is_err() {
                        return;
                    }
                }
                if chunked {
                    let _ = conn.write_all(b"0\r\n\r\n").await;
                }
            });
        }
    });
    format!("http://{addr}")
}

#[tokio::test]
async fn a_listing_larger_than_the_reply_limit_fails_instead_of_being_buffered() {
    const KEYS: usize = 40_000; // about 2 MiB of XML
    let small = S3Limits {
        max_reply_bytes: 256 * 1024,
        max_attempts: 1,
        ..LIMITS
    };
    for chunked in [false, true] {
        let endpoint = huge_listing(KEYS, chunked).await;
        // Under the default limit the document is read: it is a valid listing.
        let listed = bucket(endpoint.clone(), LIMITS)
            .await
            .list_objects("")
            .await
            .unwrap();
        assert_eq!(listed.len(), KEYS);
        let err = bucket(endpoint, small)
            .await
            .list_objects("")
            .await
            .unwrap_err();
        let expected = if chunked {
            "length limit exceeded"
        } else {
            "more than the 262144 this client reads"
        };
        assert!(err.detail.contains(expected), "chunked {chunked}: {err}");
    }
}
