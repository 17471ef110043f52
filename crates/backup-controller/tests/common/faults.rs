//! A fault-injecting HTTP proxy in front of the S3 server: forwards every request unchanged
//! (the `Host` header too, so SigV4 signatures stay valid) and answers a chosen request with an
//! S3-style 500 error, to fail an upload midway through.

#![allow(dead_code, clippy::expect_used, clippy::unwrap_used)]

use std::sync::{
    Arc,
    atomic::{AtomicUsize, Ordering},
};

use axum::{
    Router,
    body::Body,
    extract::{Request, State},
    response::Response,
};
use futures::TryStreamExt;

/// Which requests fail.
#[derive(Clone)]
pub struct FaultPlan {
    /// A request whose `path?query` contains this fails ...
    pub matching: String,
    /// ... from the n-th such request (1-based) on, every time (so SDK retries fail too).
    pub from: usize,
}

struct Shared {
    upstream: String,
    plan: FaultPlan,
    seen: AtomicUsize,
    failed: AtomicUsize,
    http: reqwest::Client,
}

/// A running proxy.
pub struct FaultyProxy {
    pub endpoint: String,
    shared: Arc<Shared>,
}

impl FaultyProxy {
    pub async fn start(upstream: &str, plan: FaultPlan) -> Self {
        let shared = Arc::new(Shared {
            upstream: upstream.trim_end_matches('/').to_string(),
            plan,
            seen: AtomicUsize::new(0),
            failed: AtomicUsize::new(0),
            http: reqwest::Client::new(),
        });
        let app = Router::new().fallback(forward).with_state(shared.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await });
        FaultyProxy {
            endpoint: format!("http://{addr}"),
            shared,
        }
    }

    /// Requests answered with the injected error.
    pub fn failed(&self) -> usize {
        self.shared.failed.load(Ordering::SeqCst)
    }
}

async fn forward(State(shared): State<Arc<Shared>>, req: Request) -> Response {
    let path = req
        .uri()
        .path_and_query()
        .map(|p| p.as_str().to_string())
        .unwrap_or_default();
    if path.contains(&shared.plan.matching) {
        let n = shared.seen.fetch_add(1, Ordering::SeqCst) + 1;
        if n >= shared.plan.from {
            shared.failed.fetch_add(1, Ordering::SeqCst);
            // Drain the body as S3 would before answering.
            let _ = axum::body::to_bytes(req.into_body(), usize::MAX).await;
            return Response::builder()
                .status(500)
                .header("content-type", "application/xml")
                .body(Body::from(
                    "<?xml version=\"1.0\" encoding=\"UTF-8\"?><Error><Code>InternalError</Code>\
                     <Message>injected failure</Message></Error>",
                ))
                .unwrap();
        }
    }
    let (parts, body) = req.into_parts();
    let url = format!("{}{path}", shared.upstream);
    let mut out = shared.http.request(parts.method.clone(), url);
    for (name, value) in &parts.headers {
        out = out.header(name, value);
    }
    let body = reqwest::Body::wrap_stream(body.into_data_stream());
    let resp = match out.body(body).send().await {
        Ok(r) => r,
        Err(e) => {
            return Response::builder()
                .status(502)
                .body(Body::from(e.to_string()))
                .unwrap();
        }
    };
    let mut builder = Response::builder().status(resp.status());
    for (name, value) in resp.headers() {
        builder = builder.header(name, value);
    }
    builder
        .body(Body::from_stream(
            resp.bytes_stream().map_err(std::io::Error::other),
        ))
        .unwrap()
}
