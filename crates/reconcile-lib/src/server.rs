//! The small HTTP server every controller runs for Prometheus and the kubelet probes.
//!
//! Routes (HTTP/1.1, plain text):
//! - `GET /metrics`: [`Metrics::encode`] as `application/openmetrics-text; version=1.0.0;
//!   charset=utf-8`; 500 if encoding fails.
//! - `GET /healthz` (liveness): `200 ok` while the process serves HTTP and no reconcile has
//!   run longer than [`Metrics::stall_after`] (15 min by default); else `503` naming the
//!   oldest reconcile's age, so the kubelet restarts a wedged controller.
//! - `GET /readyz`: `200 ok` once [`Health::set_ready`]`(true)`, else `503 not ready`
//!   (readiness). [`crate::runtime`] marks a replica ready as soon as it can talk to the API
//!   server, whether it leads or stands by, so a Deployment rollout completes.
//!
//! Anything else is 404. Use [`serve`] in production, or [`bind`] then [`Server::serve`] to learn
//! the bound address first (port 0 in tests).

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use tokio::net::TcpListener;

use crate::metrics::Metrics;

/// Content type of `GET /metrics`.
pub const OPENMETRICS_CONTENT_TYPE: &str =
    "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// Readiness shared between the runtime and the HTTP server.
///
/// A cheap `Clone` handle on one atomic flag; starts not ready.
#[derive(Clone, Debug, Default)]
pub struct Health {
    ready: Arc<AtomicBool>,
}

impl Health {
    /// A new handle, not ready.
    pub fn new() -> Self {
        Self::default()
    }

    /// Makes `GET /readyz` answer 200 (`true`) or 503 (`false`).
    pub fn set_ready(&self, ready: bool) {
        self.ready.store(ready, Ordering::Release);
    }

    /// The current readiness.
    pub fn is_ready(&self) -> bool {
        self.ready.load(Ordering::Acquire)
    }
}

#[derive(Clone)]
struct AppState {
    metrics: Arc<Metrics>,
    health: Health,
}

/// The axum router with `/metrics`, `/healthz` and `/readyz`, for embedding in another server.
pub fn router(metrics: Arc<Metrics>, health: Health) -> Router {
    Router::new()
        .route("/metrics", get(metrics_handler))
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .with_state(AppState { metrics, health })
}

async fn metrics_handler(State(state): State<AppState>) -> Response {
    match state.metrics.encode() {
        Ok(text) => ([(header::CONTENT_TYPE, OPENMETRICS_CONTENT_TYPE)], text).into_response(),
        Err(e) => (
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("encoding metrics failed: {e}\n"),
        )
            .into_response(),
    }
}

async fn healthz(State(state): State<AppState>) -> (StatusCode, String) {
    match state.metrics.stalled() {
        None => (StatusCode::OK, "ok\n".into()),
        Some(age) => (
            StatusCode::SERVICE_UNAVAILABLE,
            format!(
                "wedged: a reconcile has been running for {} s (limit {} s)\n",
                age.as_secs(),
                state.metrics.stall_after().as_secs()
            ),
        ),
    }
}

async fn readyz(State(state): State<AppState>) -> (StatusCode, &'static str) {
    if state.health.is_ready() {
        (StatusCode::OK, "ok\n")
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, "not ready\n")
    }
}

/// A bound, not yet serving, listener; from [`bind`].
#[derive(Debug)]
pub struct Server {
    listener: TcpListener,
    local_addr: SocketAddr,
}

/// Binds a TCP listener on `addr` (e.g. `0.0.0.0:8080`, or `127.0.0.1:0` for an ephemeral
/// port in tests) without serving yet.
///
/// # Errors
/// The `io::Error` of `bind(2)` (address in use, permission denied, ...).
pub async fn bind(addr: SocketAddr) -> io::Result<Server> {
    let listener = TcpListener::bind(addr).await?;
    let local_addr = listener.local_addr()?;
    Ok(Server {
        listener,
        local_addr,
    })
}

impl Server {
    /// The address actually bound (with the real port when 0 was asked for).
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// Serves the routes until `shutdown` resolves, then stops accepting and returns once the
    /// open connections have finished their current request.
    ///
    /// # Errors
    /// An `io::Error` from the underlying axum/hyper server loop.
    pub async fn serve(
        self,
        metrics: Arc<Metrics>,
        health: Health,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> io::Result<()> {
        axum::serve(self.listener, router(metrics, health))
            .with_graceful_shutdown(shutdown)
            .await
    }
}

/// Binds `addr` and serves `/metrics`, `/healthz` and `/readyz` until `shutdown` resolves.
///
/// # Errors
/// Binding errors (see [`bind`]) and server-loop errors (see [`Server::serve`]).
pub async fn serve(
    addr: SocketAddr,
    metrics: Arc<Metrics>,
    health: Health,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> io::Result<()> {
    bind(addr).await?.serve(metrics, health, shutdown).await
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;
    use std::io::{Read, Write};
    use std::time::Duration;

    struct Reply {
        status: u16,
        headers: Vec<(String, String)>,
        body: String,
    }

    impl Reply {
        fn header(&self, name: &str) -> Option<&str> {
            self.headers
                .iter()
                .find(|(k, _)| k.eq_ignore_ascii_case(name))
                .map(|(_, v)| v.as_str())
        }
    }

    /// A hand-written HTTP/1.1 GET over a blocking std socket (off the runtime threads).
    async fn get(addr: SocketAddr, path: &str) -> Reply {
        let path = path.to_owned();
        tokio::task::spawn_blocking(move || {
            let mut s = std::net::TcpStream::connect(addr).unwrap();
            write!(
                s,
                "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
            )
            .unwrap();
            let mut raw = String::new();
            s.read_to_string(&mut raw).unwrap();
            let (head, body) = raw.split_once("\r\n\r\n").unwrap();
            let mut lines = head.split("\r\n");
            let status = lines.next().unwrap().split(' ').nth(1).unwrap();
            let headers = lines
                .filter_map(|l| l.split_once(':'))
                .map(|(k, v)| (k.trim().to_owned(), v.trim().to_owned()))
                .collect();
            Reply {
                status: status.parse().unwrap(),
                headers,
                body: body.to_owned(),
            }
        })
        .await
        .unwrap()
    }

    /// A reconcile that never returns fails `/healthz` once it is older than the limit; the
    /// probe passes again when it ends.
    #[tokio::test]
    async fn healthz_fails_while_a_reconcile_is_wedged() {
        let metrics = Arc::new(
            Metrics::new("backup-controller").with_stall_after(Duration::from_millis(200)),
        );
        let server = bind("127.0.0.1:0".parse().unwrap()).await.unwrap();
        let addr = server.local_addr();
        let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
        let task = tokio::spawn(server.serve(metrics.clone(), Health::new(), async move {
            let _ = stop_rx.await;
        }));
        let wedged = metrics.reconcile_started();
        assert_eq!(get(addr, "/healthz").await.status, 200, "young reconcile");
        tokio::time::sleep(Duration::from_millis(300)).await;
        let r = get(addr, "/healthz").await;
        assert_eq!(r.status, 503);
        assert!(
            r.body
                .starts_with("wedged: a reconcile has been running for "),
            "{}",
            r.body
        );
        drop(wedged);
        assert_eq!(get(addr, "/healthz").await.status, 200);
        let _ = stop_tx.send(());
        task.await.unwrap().unwrap();
    }

    #[tokio::test]
    async fn routes_answer_over_real_http() {
        let metrics = Arc::new(Metrics::new("cluster-controller"));
        let health = Health::new();
        let server = bind("127.0.0.1:0".parse().unwrap()).await.unwrap();
        let addr = server.local_addr();
        assert_ne!(addr.port(), 0);
        let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
        let task = tokio::spawn(server.serve(metrics.clone(), health.clone(), async move {
            let _ = stop_rx.await;
        }));

        let r = get(addr, "/healthz").await;
        assert_eq!(r.status, 200);
        assert_eq!(r.body, "ok\n");

        let r = get(addr, "/readyz").await;
        assert_eq!(r.status, 503);
        health.set_ready(true);
        let r = get(addr, "/readyz").await;
        assert_eq!(r.status, 200);
        assert_eq!(r.body, "ok\n");

        metrics.set_leader(true);
        {
            let _t = metrics.reconcile_started();
        }
        let r = get(addr, "/metrics").await;
        assert_eq!(r.status, 200);
        assert_eq!(r.header("content-type"), Some(OPENMETRICS_CONTENT_TYPE));
        assert!(r.body.ends_with("# EOF\n"), "{}", r.body);
        assert!(
            r.body
                .lines()
                .any(|l| l == r#"qdrant_operator_leader{controller="cluster-controller"} 1"#),
            "{}",
            r.body
        );
        assert!(
            r.body
                .lines()
                .any(|l| l
                    == r#"qdrant_operator_reconcile_total{controller="cluster-controller"} 1"#),
            "{}",
            r.body
        );

        assert_eq!(get(addr, "/nope").await.status, 404);

        stop_tx.send(()).unwrap();
        tokio::time::timeout(std::time::Duration::from_secs(5), task)
            .await
            .expect("server stops on shutdown")
            .unwrap()
            .unwrap();
        // The port is closed afterwards.
        assert!(std::net::TcpStream::connect(addr).is_err());
    }

    #[tokio::test]
    async fn bind_reports_address_in_use() {
        let first = bind("127.0.0.1:0".parse().unwrap()).await.unwrap();
        let err = bind(first.local_addr()).await.unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::AddrInUse);
    }
}
