//! Watch streams: events filtered and rendered as lines, bookmarks, the end of a watch.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use serde_json::{Value, json};
use tokio::sync::broadcast;

use super::objects::partial_metadata;
use super::request::Coll;
use super::response::{ApiError, status_body};
use super::selectors::Selectors;
use super::state::{EventType, State, StoredEvent, lock_state};

pub(super) struct WatchFilter {
    pub(super) coll: Coll,
    pub(super) selectors: Selectors,
    pub(super) meta_only: bool,
    pub(super) kind: String,
}

impl WatchFilter {
    pub(super) fn line(&self, event_type: &str, obj: &Value) -> Bytes {
        let object = if self.meta_only {
            partial_metadata(obj)
        } else {
            obj.clone()
        };
        to_line(&json!({ "type": event_type, "object": object }))
    }

    pub(super) fn bookmark(&self, rv: u64, initial_events_end: bool) -> Bytes {
        let (api_version, kind) = if self.meta_only {
            (
                "meta.k8s.io/v1".to_owned(),
                "PartialObjectMetadata".to_owned(),
            )
        } else {
            (self.coll.api_version.clone(), self.kind.clone())
        };
        let mut metadata = json!({ "resourceVersion": rv.to_string() });
        if initial_events_end {
            metadata["annotations"] = json!({ "k8s.io/initial-events-end": "true" });
        }
        to_line(&json!({
            "type": "BOOKMARK",
            "object": { "apiVersion": api_version, "kind": kind, "metadata": metadata },
        }))
    }

    /// The line this watch sees for `event`, if any; a `MODIFIED` object that starts or stops
    /// matching the selectors is seen as `ADDED` or `DELETED`.
    pub(super) fn render(&self, event: &StoredEvent) -> Option<Bytes> {
        if event.prefix != self.coll.prefix
            || event.plural != self.coll.plural
            || self
                .coll
                .namespace
                .as_ref()
                .is_some_and(|ns| *ns != event.namespace)
        {
            return None;
        }
        let now = self.selectors.matches(&event.object);
        let event_type = match event.kind {
            EventType::Added => now.then_some("ADDED"),
            EventType::Deleted => now.then_some("DELETED"),
            EventType::Modified => {
                let before = event
                    .previous
                    .as_ref()
                    .map_or(now, |p| self.selectors.matches(p));
                match (before, now) {
                    (true, true) => Some("MODIFIED"),
                    (false, true) => Some("ADDED"),
                    (true, false) => Some("DELETED"),
                    (false, false) => None,
                }
            }
        }?;
        Some(self.line(event_type, &event.object))
    }
}

pub(super) struct WatchStream {
    pub(super) pending: VecDeque<Bytes>,
    pub(super) rx: Option<broadcast::Receiver<Arc<StoredEvent>>>,
    pub(super) deadline: tokio::time::Instant,
    pub(super) filter: WatchFilter,
    pub(super) bookmarks: bool,
    pub(super) state: Arc<Mutex<State>>,
}

impl WatchStream {
    /// At the timeout: drains what was already sent, adds a closing bookmark when bookmarks
    /// were asked for, and ends.
    pub(super) fn finish(&mut self) {
        let Some(mut rx) = self.rx.take() else {
            return;
        };
        // Events are sent under the lock: holding it, the channel has every event up to `rv`.
        let state = lock_state(&self.state);
        loop {
            match rx.try_recv() {
                Ok(event) => {
                    if let Some(line) = self.filter.render(&event) {
                        self.pending.push_back(line);
                    }
                }
                Err(broadcast::error::TryRecvError::Lagged(_)) => {
                    self.pending.push_back(gone_line(state.rv, state.rv));
                    return;
                }
                Err(_) => break,
            }
        }
        if self.bookmarks {
            self.pending
                .push_back(self.filter.bookmark(state.rv, false));
        }
    }
}

pub(super) fn gone_line(requested: u64, oldest: u64) -> Bytes {
    let status = status_body(&ApiError::new(
        410,
        format!("too old resource version: {requested} ({oldest})"),
    ));
    to_line(&json!({ "type": "ERROR", "object": status }))
}

fn to_line(value: &Value) -> Bytes {
    let mut line = serde_json::to_vec(value).unwrap_or_default();
    line.push(b'\n');
    Bytes::from(line)
}
