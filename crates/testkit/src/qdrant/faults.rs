//! Recorded requests and injected faults: failures, delays, held requests.

use std::sync::Arc;
use std::time::Duration;

use axum::extract::Request;
use axum::http::{Method, StatusCode, header};

use super::handle::FakeQdrant;
use super::server::State;

/// One request as the fake received it (recorded before authentication, so refused requests
/// are included).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RecordedRequest {
    /// HTTP method.
    pub method: Method,
    /// Path, without the query.
    pub path: String,
    /// Raw query string, if any.
    pub query: Option<String>,
    /// The `api-key` header, if sent.
    pub api_key: Option<String>,
    /// The `Authorization` header, if sent.
    pub authorization: Option<String>,
    /// The peer the request was answered as: the main listener's
    /// [`ClusterState::peer_id`](super::ClusterState::peer_id) at that time, or a
    /// [`FakeQdrant::peer_view`]'s peer.
    pub peer_id: u64,
}

impl FakeQdrant {
    /// The next `times` requests to this listener whose path contains `path_contains` (after
    /// authentication) fail with `status` and Qdrant's error shape for it: a JSON envelope whose message is
    /// prefixed as Qdrant does (`Service internal error: ` for 500, `Not found: ` for 404,
    /// ...), or the plain-text body for 401. An invalid status code is treated as 500.
    pub fn fail_next(&self, path_contains: &str, status: u16, times: usize) {
        let status = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        self.add_fault(None, path_contains, FaultKind::Status(status), times);
    }

    /// The next `times` requests to this listener whose path contains `path_contains` (after
    /// authentication) are answered normally, but only after `delay` (to exercise client
    /// timeouts).
    pub fn delay_next(&self, path_contains: &str, delay: Duration, times: usize) {
        self.add_fault(None, path_contains, FaultKind::Delay(delay), times);
    }

    /// The next request to this listener whose path contains `path_contains` (after
    /// authentication) waits until [`HeldRequest::release`] is called, then is answered
    /// normally (to stop a run at a known point, e.g. a controller task mid-download).
    pub fn hold_next(&self, path_contains: &str) -> HeldRequest {
        self.hold(None, path_contains)
    }

    /// [`Self::hold_next`] for a request with `method` only (e.g. the `PUT` that creates a
    /// collection, not the `GET` of the same path).
    pub fn hold_next_with(&self, method: Method, path_contains: &str) -> HeldRequest {
        self.hold(Some(method), path_contains)
    }

    fn hold(&self, method: Option<Method>, path_contains: &str) -> HeldRequest {
        let held = HeldRequest {
            reached: Arc::new(tokio::sync::Notify::new()),
            released: Arc::new(tokio::sync::Semaphore::new(0)),
        };
        self.add_fault(method, path_contains, FaultKind::Hold(held.clone()), 1);
        held
    }

    fn add_fault(
        &self,
        method: Option<Method>,
        path_contains: &str,
        kind: FaultKind,
        times: usize,
    ) {
        if times > 0 {
            self.shared.lock().faults.push(Fault {
                listener: self.listener,
                method,
                path_contains: path_contains.to_owned(),
                kind,
                remaining: times,
            });
        }
    }

    /// Every request so far, to every listener, as (method, path), in arrival order.
    pub fn requests(&self) -> Vec<(Method, String)> {
        self.shared
            .lock()
            .requests
            .iter()
            .map(|r| (r.method.clone(), r.path.clone()))
            .collect()
    }

    /// Every request so far with the headers that matter, in arrival order.
    pub fn recorded(&self) -> Vec<RecordedRequest> {
        self.shared.lock().requests.clone()
    }

    /// Forgets the recorded requests.
    pub fn clear_requests(&self) {
        self.shared.lock().requests.clear();
    }
}

pub(super) fn record(req: &Request) -> RecordedRequest {
    let header_text = |name: &str| {
        req.headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
    };
    RecordedRequest {
        method: req.method().clone(),
        path: req.uri().path().to_owned(),
        query: req.uri().query().map(str::to_owned),
        api_key: header_text(reconcile_lib::qdrant::API_KEY_HEADER),
        authorization: header_text(header::AUTHORIZATION.as_str()),
        peer_id: 0,
    }
}

impl State {
    /// Consumes one use of the first fault of `listener` matching `path`.
    pub(super) fn take_fault(
        &mut self,
        listener: usize,
        method: &Method,
        path: &str,
    ) -> Option<FaultKind> {
        let index = self.faults.iter().position(|f| {
            f.listener == listener
                && f.remaining > 0
                && f.method.as_ref().is_none_or(|m| m == method)
                && path.contains(&f.path_contains)
        })?;
        let fault = &mut self.faults[index];
        fault.remaining -= 1;
        let kind = fault.kind.clone();
        if fault.remaining == 0 {
            self.faults.remove(index);
        }
        Some(kind)
    }
}

pub(super) struct Fault {
    /// The listener whose requests it applies to.
    listener: usize,
    /// The method it applies to; `None`: any.
    method: Option<Method>,
    path_contains: String,
    kind: FaultKind,
    remaining: usize,
}

#[derive(Clone)]
pub(super) enum FaultKind {
    Status(StatusCode),
    Delay(Duration),
    Hold(HeldRequest),
}

/// A request held by [`FakeQdrant::hold_next`]: wait until it arrives, then let it go on.
#[derive(Clone)]
pub struct HeldRequest {
    pub(super) reached: Arc<tokio::sync::Notify>,
    pub(super) released: Arc<tokio::sync::Semaphore>,
}

impl HeldRequest {
    /// Waits until the held request has arrived (returns at once if it already has).
    pub async fn reached(&self) {
        self.reached.notified().await;
    }

    /// Lets the held request be answered (before or after it arrived).
    pub fn release(&self) {
        self.released.add_permits(1);
    }
}
