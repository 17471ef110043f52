//! Dispatch of a request: each path and method routed to the state, injected failures, and
//! watches.

use std::collections::VecDeque;
use std::convert::Infallible;
use std::fmt::Display;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderValue, Method, Request, Response, StatusCode, header};
use http_body_util::{BodyExt, StreamBody};
use hyper::body::{Body as HttpBody, Frame};
use tokio::sync::broadcast;

use super::objects::{has_status_subresource, partial_metadata, version_info};
use super::request::{Coll, DeleteOptions, Incoming, PatchKind, Query, Route, parse_json};
use super::response::{ApiError, error_response, json_response, method_not_allowed};
use super::selectors::Selectors;
use super::state::{CreateMode, PatchOptions, lock_state};
use super::watch::{WatchFilter, WatchStream, gone_line};
use super::{DEFAULT_WATCH_TIMEOUT_SECS, FakeApiServer, RecordedRequest, ResponseBody};

impl FakeApiServer {
    /// Answers one HTTP request.
    pub(super) async fn handle<B>(&self, req: Request<B>) -> Response<ResponseBody>
    where
        B: HttpBody<Data = Bytes>,
        B::Error: Display,
    {
        let (parts, body) = req.into_parts();
        let header_str = |name: header::HeaderName| {
            parts
                .headers
                .get(name)
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned)
        };
        let recorded = RecordedRequest {
            method: parts.method.clone(),
            path: parts.uri.path().to_owned(),
            query: parts
                .uri
                .query()
                .filter(|q| !q.is_empty())
                .map(str::to_owned),
            content_type: header_str(header::CONTENT_TYPE),
        };
        let accept = header_str(header::ACCEPT).unwrap_or_default();
        let body = match body.collect().await {
            Ok(collected) => collected.to_bytes(),
            Err(error) => {
                self.lock().requests.push(recorded);
                return error_response(&ApiError::new(
                    400,
                    format!("reading the request body: {error}"),
                ));
            }
        };
        let injected = {
            let mut state = self.lock();
            let injected = state.take_failure(&recorded.method, &recorded.path);
            state.requests.push(recorded.clone());
            injected
        };
        if let Some(code) = injected {
            return error_response(&ApiError::new(
                code,
                format!("injected failure for {} {}", recorded.method, recorded.path),
            ));
        }
        let request = Incoming {
            method: recorded.method,
            path: recorded.path,
            query: Query::parse(recorded.query.as_deref()),
            content_type: recorded.content_type,
            meta_only: accept.contains("as=PartialObjectMetadata"),
            body,
        };
        match self.route(&request) {
            Ok(response) => response,
            Err(error) => error_response(&error),
        }
    }

    fn route(&self, req: &Incoming) -> Result<Response<ResponseBody>, ApiError> {
        if req.path == "/version" && req.method == Method::GET {
            return Ok(json_response(StatusCode::OK, &version_info()));
        }
        if req.method == Method::GET
            && let Some(group_version) = req.path.trim_end_matches('/').strip_prefix("/apis/")
        {
            let served = self.lock().discovery.get(group_version).cloned();
            if let Some(list) = served {
                return Ok(json_response(StatusCode::OK, &list));
            }
        }
        let Some(route) = Route::parse(&req.path) else {
            return Err(ApiError::new(
                404,
                format!(
                    "the server could not find the requested resource ({})",
                    req.path
                ),
            ));
        };
        if let Some(sub) = &route.subresource
            && (sub != "status" || !has_status_subresource(&route.coll.plural))
        {
            return Err(ApiError::new(
                404,
                format!(
                    "the server could not find the requested resource ({} {}/{})",
                    route.coll.qualified(),
                    route.name.as_deref().unwrap_or_default(),
                    sub
                ),
            ));
        }
        let dry_run = req.query.get("dryRun").is_some_and(|v| v == "All");
        let method = &req.method;
        match route.name.as_deref() {
            None if *method == Method::GET => {
                let watch = req
                    .query
                    .get("watch")
                    .is_some_and(|v| v == "true" || v == "1");
                if watch {
                    self.watch(&route.coll, req)
                } else {
                    let list = self
                        .lock()
                        .list_page(&route.coll, &req.query, req.meta_only)?;
                    Ok(json_response(StatusCode::OK, &list))
                }
            }
            None if *method == Method::POST => {
                let body = parse_json(&req.body)?;
                if body
                    .pointer("/metadata/resourceVersion")
                    .is_some_and(|rv| !rv.is_null() && rv.as_str().is_some_and(|s| !s.is_empty()))
                {
                    return Err(ApiError::new(
                        500,
                        "resourceVersion should not be set on objects to be created".into(),
                    ));
                }
                let mode = if dry_run {
                    CreateMode::DryRun
                } else {
                    CreateMode::Api
                };
                let created = self.lock().create(&route.coll, body, mode)?;
                Ok(json_response(StatusCode::CREATED, &created))
            }
            None if *method == Method::DELETE => {
                let opts = DeleteOptions::parse(&req.body, dry_run)?;
                let list = self
                    .lock()
                    .delete_collection(&route.coll, &req.query, &opts)?;
                Ok(json_response(StatusCode::OK, &list))
            }
            None => Err(method_not_allowed(method)),
            Some(name) => {
                let status_sub = route.subresource.is_some();
                let key = route.coll.key(name);
                let result = match *method {
                    Method::GET => {
                        let state = self.lock();
                        state
                            .objects
                            .get(&key)
                            .map(|e| e.obj.clone())
                            .ok_or_else(|| ApiError::not_found(&route.coll, name))?
                    }
                    Method::PUT => {
                        let body = parse_json(&req.body)?;
                        self.lock()
                            .replace(&route.coll, name, body, status_sub, dry_run)?
                    }
                    Method::PATCH => {
                        let kind = PatchKind::from_content_type(req.content_type.as_deref())?;
                        let body = parse_json(&req.body)?;
                        self.lock().patch(
                            &route.coll,
                            name,
                            kind,
                            body,
                            &PatchOptions {
                                status_sub,
                                dry_run,
                                field_manager: req.query.get("fieldManager"),
                            },
                        )?
                    }
                    Method::DELETE if !status_sub => {
                        let opts = DeleteOptions::parse(&req.body, dry_run)?;
                        self.lock().delete_api(&route.coll, name, &opts)?
                    }
                    _ => return Err(method_not_allowed(method)),
                };
                let result = if req.meta_only {
                    partial_metadata(&result)
                } else {
                    result
                };
                Ok(json_response(StatusCode::OK, &result))
            }
        }
    }

    /// Opens a watch: computes the first lines under the lock, then streams.
    fn watch(&self, coll: &Coll, req: &Incoming) -> Result<Response<ResponseBody>, ApiError> {
        let query = &req.query;
        let timeout = query
            .get("timeoutSeconds")
            .and_then(|v| v.parse::<u64>().ok())
            .unwrap_or(DEFAULT_WATCH_TIMEOUT_SECS);
        let send_initial = query.get("sendInitialEvents").is_some_and(|v| v == "true");
        let bookmarks = query
            .get("allowWatchBookmarks")
            .is_some_and(|v| v == "true");
        let from = match query.get("resourceVersion").filter(|v| !v.is_empty()) {
            None | Some("0") => None,
            Some(v) => Some(v.parse::<u64>().map_err(|_| {
                ApiError::new(400, format!("invalid resourceVersion {v:?}: not a number"))
            })?),
        };
        let state = self.lock();
        let filter = WatchFilter {
            coll: coll.clone(),
            selectors: Selectors::parse(query)?,
            meta_only: req.meta_only,
            kind: state.kind_of(coll),
        };
        let mut pending = VecDeque::new();
        let mut rx = None;
        match from {
            Some(from) if !send_initial => {
                if from < state.compacted_rv {
                    pending.push_back(gone_line(from, state.compacted_rv));
                } else {
                    for event in state.history.iter().filter(|e| e.rv > from) {
                        if let Some(line) = filter.render(event) {
                            pending.push_back(line);
                        }
                    }
                    rx = Some(state.events.subscribe());
                }
            }
            _ => {
                for (_, entry) in state.collection(coll, None) {
                    if filter.selectors.matches(&entry.obj) {
                        pending.push_back(filter.line("ADDED", &entry.obj));
                    }
                }
                if send_initial {
                    pending.push_back(filter.bookmark(state.rv, true));
                }
                rx = Some(state.events.subscribe());
            }
        }
        drop(state);
        let stream = WatchStream {
            pending,
            rx,
            deadline: tokio::time::Instant::now() + Duration::from_secs(timeout),
            filter,
            bookmarks,
            state: Arc::clone(&self.state),
        };
        let frames = futures::stream::unfold(stream, |mut stream| async move {
            loop {
                if let Some(line) = stream.pending.pop_front() {
                    return Some((Ok::<_, Infallible>(Frame::data(line)), stream));
                }
                let rx = stream.rx.as_mut()?;
                match tokio::time::timeout_at(stream.deadline, rx.recv()).await {
                    Ok(Ok(event)) => {
                        if let Some(line) = stream.filter.render(&event) {
                            stream.pending.push_back(line);
                        }
                    }
                    Ok(Err(broadcast::error::RecvError::Lagged(_))) => {
                        let rv = lock_state(&stream.state).rv;
                        stream.pending.push_back(gone_line(rv, rv));
                        stream.rx = None;
                    }
                    Ok(Err(broadcast::error::RecvError::Closed)) => stream.rx = None,
                    Err(_elapsed) => stream.finish(),
                }
            }
        });
        let mut response = Response::new(StreamBody::new(frames).boxed_unsync());
        response.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        Ok(response)
    }
}
