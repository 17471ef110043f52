//! A Qdrant that lies about its replies cannot make the client buffer without bound: a body
//! longer than `max_reply_bytes` (streamed forever, chunked) or a `Content-Length` past it fails
//! as `Unreachable`, naming the limit, after reading at most the limit.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use reconcile_lib::qdrant::{QdrantClient, QdrantConnection, QdrantError};
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::TcpListener,
};
use url::Url;

/// Serves every connection with `head` and then, while the client reads, `body()` chunks.
async fn liar(head: &'static str, endless: bool) -> (Url, tokio::sync::watch::Receiver<u64>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = Url::parse(&format!("http://{}/", listener.local_addr().unwrap())).unwrap();
    let (sent_tx, sent_rx) = tokio::sync::watch::channel(0u64);
    tokio::spawn(async move {
        loop {
            let Ok((mut socket, _)) = listener.accept().await else {
                return;
            };
            let sent = sent_tx.clone();
            tokio::spawn(async move {
                let mut request = [0u8; 4096];
                let _ = socket.read(&mut request).await;
                if socket.write_all(head.as_bytes()).await.is_err() {
                    return;
                }
                if !endless {
                    let _ = socket
                        .write_all(br#"{"result":{"collections":[]},"status":"ok","time":0.0}"#)
                        .await;
                    return;
                }
                // `{"result": "aaaa...` for ever, 64 KiB per chunk.
                let chunk = format!("{:x}\r\n{}\r\n", 65536, "a".repeat(65536));
                let mut total = 0u64;
                if socket
                    .write_all(b"11\r\n{\"result\": \"aaaaa\r\n")
                    .await
                    .is_err()
                {
                    return;
                }
                while socket.write_all(chunk.as_bytes()).await.is_ok() {
                    total += 65536;
                    sent.send_replace(total);
                }
            });
        }
    });
    (url, sent_rx)
}

fn client(url: Url) -> QdrantClient {
    QdrantClient::new(
        &QdrantConnection::new(url)
            .with_timeout(Duration::from_secs(20))
            .with_max_reply_bytes(1024 * 1024),
    )
    .unwrap()
}

#[tokio::test]
async fn an_endless_reply_fails_at_the_limit() {
    let (url, sent) = liar(
        "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ntransfer-encoding: chunked\r\n\r\n",
        true,
    )
    .await;
    let err = client(url).collections().await.unwrap_err();
    match &err {
        QdrantError::Unreachable { message, .. } => {
            assert!(message.contains("longer than 1048576 bytes"), "{message}");
        }
        other => panic!("{other:?}"),
    }
    // The client stopped reading soon after the limit (the server's socket buffers hold a
    // little more).
    assert!(
        *sent.borrow() < 64 * 1024 * 1024,
        "{} bytes sent",
        *sent.borrow()
    );
}

#[tokio::test]
async fn a_content_length_past_the_limit_fails_before_reading() {
    let (url, _) = liar(
        "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: 1099511627776\r\n\r\n",
        false,
    )
    .await;
    let err = client(url).collections().await.unwrap_err();
    assert!(
        matches!(&err, QdrantError::Unreachable { message, .. } if message.contains("longer than 1048576 bytes")),
        "{err:?}"
    );
}
