//! The stored objects, their history of watch events, and every write: create, replace, patch
//! (server-side apply included), delete with finalizers and garbage collection.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::ops::Bound;
use std::sync::{Arc, Mutex, MutexGuard};

use http::Method;
use serde_json::{Map, Value, json};
use tokio::sync::broadcast;

use super::objects::{
    check_candidate, content_without_meta_and_status, ensure_meta, finalizers, fold_string_data,
    is_deleting, new_uid, now_rfc3339, owner_uids, partial_metadata, prepare_update,
    prune_unapplied, random_suffix, rv_of, strip_status_if_subresource, uid_of,
};
use super::request::{Coll, DeleteOptions, PatchKind, Query};
use super::response::ApiError;
use super::selectors::Selectors;
use super::{
    BROADCAST_CAPACITY, DEFAULT_HISTORY_LIMIT, FIRST_RESOURCE_VERSION, Failure, RecordedRequest,
};

/// (API path prefix such as `api/v1` or `apis/apps/v1`, plural, namespace or "", name).
pub(super) type ObjKey = (String, String, String, String);

pub(super) struct Entry {
    pub(super) obj: Value,
    /// Last applied configuration per (field manager, is `status` subresource).
    applied: BTreeMap<(String, bool), Value>,
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(super) enum EventType {
    Added,
    Modified,
    Deleted,
}

pub(super) struct StoredEvent {
    pub(super) rv: u64,
    pub(super) prefix: String,
    pub(super) plural: String,
    pub(super) namespace: String,
    pub(super) kind: EventType,
    pub(super) object: Value,
    /// The object before a `Modified` change that changed its labels, to turn the change into
    /// `ADDED`/`DELETED` for watches whose selector it starts or stops matching.
    pub(super) previous: Option<Value>,
}

pub(super) struct State {
    pub(super) objects: BTreeMap<ObjKey, Entry>,
    uids: HashMap<String, ObjKey>,
    kinds: HashMap<(String, String), String>,
    pub(super) rv: u64,
    pub(super) history: VecDeque<Arc<StoredEvent>>,
    pub(super) history_limit: usize,
    /// Every event with a `resourceVersion` above this one is still in `history`.
    pub(super) compacted_rv: u64,
    pub(super) events: broadcast::Sender<Arc<StoredEvent>>,
    pub(super) requests: Vec<RecordedRequest>,
    pub(super) failures: Vec<Failure>,
    /// `APIResourceList`s served at `/apis/{group}/{version}`, by group/version.
    pub(super) discovery: BTreeMap<String, Value>,
}

impl Default for State {
    fn default() -> Self {
        let (events, _) = broadcast::channel(BROADCAST_CAPACITY);
        Self {
            objects: BTreeMap::new(),
            uids: HashMap::new(),
            kinds: HashMap::new(),
            rv: FIRST_RESOURCE_VERSION,
            history: VecDeque::new(),
            history_limit: DEFAULT_HISTORY_LIMIT,
            compacted_rv: FIRST_RESOURCE_VERSION,
            events,
            requests: Vec::new(),
            failures: Vec::new(),
            discovery: BTreeMap::new(),
        }
    }
}

pub(super) fn lock_state(state: &Mutex<State>) -> MutexGuard<'_, State> {
    state
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

#[derive(Clone, Copy, PartialEq, Eq)]
pub(super) enum CreateMode {
    /// A `POST` (or a server-side apply that creates): drops `.status` of kinds with a status
    /// subresource, fails when the object exists.
    Api,
    /// Like `Api` but stores nothing.
    DryRun,
    /// [`FakeApiServer::insert`]: keeps everything given, overwrites an existing object.
    Seed,
}

pub(super) struct PatchOptions<'a> {
    pub(super) status_sub: bool,
    pub(super) dry_run: bool,
    pub(super) field_manager: Option<&'a str>,
}

impl State {
    fn next_rv(&mut self) -> u64 {
        self.rv += 1;
        self.rv
    }

    pub(super) fn kind_of(&self, coll: &Coll) -> String {
        self.kinds
            .get(&(coll.prefix.clone(), coll.plural.clone()))
            .cloned()
            .unwrap_or_else(|| "Unknown".to_owned())
    }

    pub(super) fn take_failure(&mut self, method: &Method, path: &str) -> Option<u16> {
        let index = self.failures.iter().position(|rule| {
            rule.method.as_ref().is_none_or(|m| m == method)
                && rule
                    .path_contains
                    .as_deref()
                    .is_none_or(|needle| path.contains(needle))
        })?;
        let rule = &mut self.failures[index];
        let status = rule.status;
        rule.times = rule.times.saturating_sub(1);
        if rule.times == 0 {
            self.failures.remove(index);
        }
        Some(status)
    }

    /// Records an event (the current `self.rv`) in the history and fans it out.
    fn emit(&mut self, key: &ObjKey, kind: EventType, object: Value, previous: Option<Value>) {
        let event = Arc::new(StoredEvent {
            rv: self.rv,
            prefix: key.0.clone(),
            plural: key.1.clone(),
            namespace: key.2.clone(),
            kind,
            object,
            previous,
        });
        self.history.push_back(Arc::clone(&event));
        while self.history.len() > self.history_limit {
            if let Some(old) = self.history.pop_front() {
                self.compacted_rv = old.rv;
            }
        }
        if self.history_limit == 0 {
            self.compacted_rv = self.rv;
        }
        // An error only means that no watch is open.
        let _ = self.events.send(event);
    }

    /// The entries of a collection (all namespaces when `coll.namespace` is `None`), in key
    /// order, starting after `after` (namespace, name) when given.
    pub(super) fn collection<'a>(
        &'a self,
        coll: &'a Coll,
        after: Option<(&str, &str)>,
    ) -> impl Iterator<Item = (&'a ObjKey, &'a Entry)> + 'a {
        let ns = coll.namespace.clone().unwrap_or_default();
        let start = match after {
            Some((ans, aname)) => Bound::Excluded((
                coll.prefix.clone(),
                coll.plural.clone(),
                ans.to_owned(),
                aname.to_owned(),
            )),
            None => Bound::Included((coll.prefix.clone(), coll.plural.clone(), ns, String::new())),
        };
        self.objects
            .range((start, Bound::Unbounded))
            .take_while(move |(key, _)| {
                key.0 == coll.prefix
                    && key.1 == coll.plural
                    && coll.namespace.as_ref().is_none_or(|ns| &key.2 == ns)
            })
    }

    pub(super) fn list_page(
        &self,
        coll: &Coll,
        query: &Query,
        meta_only: bool,
    ) -> Result<Value, ApiError> {
        let selectors = Selectors::parse(query)?;
        let limit = query
            .get("limit")
            .and_then(|v| v.parse::<usize>().ok())
            .filter(|l| *l > 0);
        let token = query.get("continue").filter(|t| !t.is_empty());
        let (list_rv, after) = match token {
            Some(token) => {
                let mut parts = token.splitn(3, '/');
                match (
                    parts.next().map(str::parse::<u64>),
                    parts.next(),
                    parts.next(),
                ) {
                    (Some(Ok(rv)), Some(ns), Some(name)) => (rv, Some((ns, name))),
                    _ => {
                        return Err(ApiError::new(
                            400,
                            format!("invalid continue token {token:?}"),
                        ));
                    }
                }
            }
            None => (self.rv, None),
        };
        let mut items = Vec::new();
        let mut next = None;
        for (key, entry) in self.collection(coll, after) {
            if !selectors.matches(&entry.obj) {
                continue;
            }
            if limit.is_some_and(|l| items.len() >= l) {
                next = items
                    .last()
                    .map(|(k, _): &(&ObjKey, Value)| format!("{list_rv}/{}/{}", k.2, k.3));
                break;
            }
            let item = if meta_only {
                partial_metadata(&entry.obj)
            } else {
                entry.obj.clone()
            };
            items.push((key, item));
        }
        let mut metadata = json!({ "resourceVersion": list_rv.to_string() });
        if let Some(next) = next {
            metadata["continue"] = Value::String(next);
        }
        let (api_version, kind) = if meta_only {
            (
                "meta.k8s.io/v1".to_owned(),
                "PartialObjectMetadataList".to_owned(),
            )
        } else {
            (
                coll.api_version.clone(),
                format!("{}List", self.kind_of(coll)),
            )
        };
        Ok(json!({
            "apiVersion": api_version,
            "kind": kind,
            "metadata": metadata,
            "items": items.into_iter().map(|(_, item)| item).collect::<Vec<_>>(),
        }))
    }

    pub(super) fn create(
        &mut self,
        coll: &Coll,
        mut obj: Value,
        mode: CreateMode,
    ) -> Result<Value, ApiError> {
        if !obj.is_object() {
            return Err(ApiError::new(400, "the body must be a JSON object".into()));
        }
        fold_string_data(&coll.plural, &mut obj);
        let api_version = obj.get("apiVersion").and_then(Value::as_str);
        let kind = obj.get("kind").and_then(Value::as_str).map(str::to_owned);
        let (Some(api_version), Some(kind)) = (api_version, kind) else {
            return Err(ApiError::new(
                400,
                "Object 'Kind' or 'apiVersion' is missing in the body".into(),
            ));
        };
        if api_version != coll.api_version {
            return Err(ApiError::new(
                400,
                format!(
                    "the API version in the data ({api_version}) does not match the expected API version ({})",
                    coll.api_version
                ),
            ));
        }
        if mode == CreateMode::Api || mode == CreateMode::DryRun {
            strip_status_if_subresource(&mut obj, &coll.plural);
        }
        let Some(meta) = ensure_meta(&mut obj) else {
            return Err(ApiError::new(400, "metadata must be an object".into()));
        };
        let body_ns = meta.get("namespace").and_then(Value::as_str).unwrap_or("");
        match &coll.namespace {
            Some(ns) => {
                if !body_ns.is_empty() && body_ns != ns {
                    return Err(ApiError::new(
                        400,
                        "the namespace of the provided object does not match the namespace sent on the request".into(),
                    ));
                }
                meta.insert("namespace".into(), Value::String(ns.clone()));
            }
            None if !body_ns.is_empty() => {
                return Err(ApiError::new(
                    400,
                    format!(
                        "the object has namespace {body_ns:?} but the request path is cluster-scoped"
                    ),
                ));
            }
            None => {}
        }
        let name = match meta
            .get("name")
            .and_then(Value::as_str)
            .filter(|n| !n.is_empty())
        {
            Some(name) => name.to_owned(),
            None => match meta
                .get("generateName")
                .and_then(Value::as_str)
                .filter(|n| !n.is_empty())
            {
                Some(prefix) => {
                    let prefix = prefix.to_owned();
                    let mut name = format!("{prefix}{}", random_suffix());
                    while self.objects.contains_key(&coll.key(&name)) {
                        name = format!("{prefix}{}", random_suffix());
                    }
                    meta.insert("name".into(), Value::String(name.clone()));
                    name
                }
                None => {
                    return Err(ApiError::new(
                        422,
                        format!(
                            "{} is invalid: metadata.name: Required value: name or generateName is required",
                            coll.qualified()
                        ),
                    ));
                }
            },
        };
        let key = coll.key(&name);
        let previous = self.objects.get(&key).map(|e| e.obj.clone());
        if previous.is_some() && mode != CreateMode::Seed {
            return Err(ApiError::already_exists(coll, &name));
        }
        let seed = mode == CreateMode::Seed;
        meta.remove("managedFields");
        if !seed {
            meta.remove("deletionTimestamp");
            meta.remove("deletionGracePeriodSeconds");
        }
        if !seed || !meta.get("uid").is_some_and(Value::is_string) {
            meta.insert("uid".into(), Value::String(new_uid()));
        }
        if !seed || !meta.get("creationTimestamp").is_some_and(Value::is_string) {
            meta.insert("creationTimestamp".into(), Value::String(now_rfc3339()));
        }
        if !seed || !meta.get("generation").is_some_and(Value::is_u64) {
            meta.insert("generation".into(), json!(1));
        }
        if mode == CreateMode::DryRun {
            meta.remove("resourceVersion");
            return Ok(obj);
        }
        let rv = self.next_rv();
        let uid = meta
            .get("uid")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned();
        meta.insert("resourceVersion".into(), Value::String(rv.to_string()));
        if let Some(previous) = &previous
            && let Some(old_uid) = uid_of(previous)
        {
            self.uids.remove(old_uid);
        }
        self.uids.insert(uid, key.clone());
        self.kinds
            .insert((coll.prefix.clone(), coll.plural.clone()), kind);
        self.objects.insert(
            key.clone(),
            Entry {
                obj: obj.clone(),
                applied: BTreeMap::new(),
            },
        );
        let event = if previous.is_some() {
            EventType::Modified
        } else {
            EventType::Added
        };
        self.emit(&key, event, obj.clone(), previous);
        Ok(obj)
    }

    /// Stores `new` (already prepared) for the existing object `key`, unless it equals the
    /// stored object. Bumps `generation` and `resourceVersion`, emits `MODIFIED`, and removes
    /// the object when it is being deleted and has no finalizers left. Returns the result.
    pub(super) fn commit(&mut self, key: &ObjKey, mut new: Value, dry_run: bool) -> Value {
        fold_string_data(&key.1, &mut new);
        let Some(entry) = self.objects.get(key) else {
            return new;
        };
        if new == entry.obj {
            return new;
        }
        let old = entry.obj.clone();
        let old_generation = old
            .pointer("/metadata/generation")
            .and_then(Value::as_i64)
            .unwrap_or(0);
        let generation =
            if content_without_meta_and_status(&new) == content_without_meta_and_status(&old) {
                old_generation
            } else {
                old_generation + 1
            };
        if let Some(meta) = ensure_meta(&mut new) {
            meta.insert("generation".into(), json!(generation));
        }
        if dry_run {
            return new;
        }
        let rv = self.next_rv();
        if let Some(meta) = ensure_meta(&mut new) {
            meta.insert("resourceVersion".into(), Value::String(rv.to_string()));
        }
        if is_deleting(&new) && finalizers(&new).is_empty() {
            self.objects.remove(key);
            if let Some(uid) = uid_of(&new) {
                self.uids.remove(uid);
            }
            self.emit(key, EventType::Deleted, new.clone(), None);
            if let Some(uid) = uid_of(&new) {
                self.collect_garbage(uid, false);
            }
            return new;
        }
        if let Some(entry) = self.objects.get_mut(key) {
            entry.obj = new.clone();
        }
        // The previous object only matters to watches whose label selector it starts or
        // stops matching; keeping it only when labels changed halves the history's memory.
        let labels_changed = old.pointer("/metadata/labels") != new.pointer("/metadata/labels");
        self.emit(
            key,
            EventType::Modified,
            new.clone(),
            labels_changed.then_some(old),
        );
        new
    }

    pub(super) fn replace(
        &mut self,
        coll: &Coll,
        name: &str,
        body: Value,
        status_sub: bool,
        dry_run: bool,
    ) -> Result<Value, ApiError> {
        let key = coll.key(name);
        let live = self
            .objects
            .get(&key)
            .map(|e| e.obj.clone())
            .ok_or_else(|| ApiError::not_found(coll, name))?;
        check_candidate(coll, name, &live, &body)?;
        let new = prepare_update(&live, body, &coll.plural, status_sub);
        Ok(self.commit(&key, new, dry_run))
    }

    pub(super) fn patch(
        &mut self,
        coll: &Coll,
        name: &str,
        kind: PatchKind,
        patch: Value,
        opts: &PatchOptions<'_>,
    ) -> Result<Value, ApiError> {
        let key = coll.key(name);
        let live = self.objects.get(&key).map(|e| e.obj.clone());
        let candidate = match (kind, live.as_ref()) {
            (PatchKind::Apply, _) => return self.apply(coll, name, patch, opts),
            (_, None) => return Err(ApiError::not_found(coll, name)),
            (PatchKind::Merge, Some(live)) => {
                let mut candidate = live.clone();
                json_patch::merge(&mut candidate, &patch);
                candidate
            }
            (PatchKind::Json, Some(live)) => {
                let ops: json_patch::Patch = serde_json::from_value(patch)
                    .map_err(|e| ApiError::new(400, format!("invalid JSON patch: {e}")))?;
                // The API server's JSON patch (evanphx/json-patch) lets `test` with value null
                // pass on an absent path (kube's finalizer helper relies on it); the
                // json-patch crate does not, so such tests are checked here and dropped.
                let mut kept = Vec::with_capacity(ops.0.len());
                for op in ops.0 {
                    if let json_patch::PatchOperation::Test(t) = &op
                        && t.value.is_null()
                    {
                        let present = live.pointer(t.path.as_str()).filter(|v| !v.is_null());
                        if let Some(v) = present {
                            return Err(ApiError::new(
                                422,
                                format!(
                                    "the JSON patch failed: test at {} expected null, found {v}",
                                    t.path
                                ),
                            ));
                        }
                        continue;
                    }
                    kept.push(op);
                }
                let ops = json_patch::Patch(kept);
                let mut candidate = live.clone();
                json_patch::patch(&mut candidate, &ops)
                    .map_err(|e| ApiError::new(422, format!("the JSON patch failed: {e}")))?;
                candidate
            }
        };
        let Some(live) = live else {
            return Err(ApiError::not_found(coll, name));
        };
        check_candidate(coll, name, &live, &candidate)?;
        let new = prepare_update(&live, candidate, &coll.plural, opts.status_sub);
        Ok(self.commit(&key, new, opts.dry_run))
    }

    /// Server-side apply (see the module documentation for the simplified semantics).
    fn apply(
        &mut self,
        coll: &Coll,
        name: &str,
        mut config: Value,
        opts: &PatchOptions<'_>,
    ) -> Result<Value, ApiError> {
        let Some(manager) = opts.field_manager.filter(|m| !m.is_empty()) else {
            return Err(ApiError::new(
                400,
                "PATCH, fieldManager is required for apply requests".into(),
            ));
        };
        if !config.is_object()
            || config.get("apiVersion").and_then(Value::as_str).is_none()
            || config.get("kind").and_then(Value::as_str).is_none()
        {
            return Err(ApiError::new(
                400,
                "an apply configuration must be an object with apiVersion and kind".into(),
            ));
        }
        let Some(meta) = ensure_meta(&mut config) else {
            return Err(ApiError::new(400, "metadata must be an object".into()));
        };
        match meta.get("name").and_then(Value::as_str) {
            Some(n) if n != name => {
                return Err(ApiError::new(
                    400,
                    format!(
                        "the name of the object ({n}) does not match the name on the URL ({name})"
                    ),
                ));
            }
            Some(_) => {}
            None => {
                meta.insert("name".into(), Value::String(name.to_owned()));
            }
        }
        let key = coll.key(name);
        let manager_key = (manager.to_owned(), opts.status_sub);
        let Some(entry) = self.objects.get(&key) else {
            if opts.status_sub {
                return Err(ApiError::not_found(coll, name));
            }
            let mut create_body = config.clone();
            if let Some(meta) = ensure_meta(&mut create_body) {
                meta.remove("resourceVersion");
            }
            let mode = if opts.dry_run {
                CreateMode::DryRun
            } else {
                CreateMode::Api
            };
            let created = self.create(coll, create_body, mode)?;
            if let Some(entry) = self.objects.get_mut(&key) {
                entry.applied.insert(manager_key, config);
            }
            return Ok(created);
        };
        let live = entry.obj.clone();
        let empty = Value::Object(Map::new());
        let previous = entry.applied.get(&manager_key).unwrap_or(&empty);
        let others: Vec<&Value> = entry
            .applied
            .iter()
            .filter(|(k, _)| **k != manager_key)
            .map(|(_, v)| v)
            .collect();
        let mut candidate = live.clone();
        prune_unapplied(&mut candidate, previous, &config, &others, &mut Vec::new());
        json_patch::merge(&mut candidate, &config);
        check_candidate(coll, name, &live, &candidate)?;
        let new = prepare_update(&live, candidate, &coll.plural, opts.status_sub);
        if !opts.dry_run
            && let Some(entry) = self.objects.get_mut(&key)
        {
            entry.applied.insert(manager_key, config);
        }
        Ok(self.commit(&key, new, opts.dry_run))
    }

    /// An API `DELETE` of one object.
    pub(super) fn delete_api(
        &mut self,
        coll: &Coll,
        name: &str,
        opts: &DeleteOptions,
    ) -> Result<Value, ApiError> {
        let key = coll.key(name);
        let live = self
            .objects
            .get(&key)
            .map(|e| e.obj.clone())
            .ok_or_else(|| ApiError::not_found(coll, name))?;
        if let Some(uid) = &opts.precondition_uid
            && uid_of(&live) != Some(uid.as_str())
        {
            return Err(ApiError::new(
                409,
                format!(
                    "Operation cannot be fulfilled on {} {name:?}: Precondition failed: UID in precondition: {uid}, UID in object meta: {}",
                    coll.qualified(),
                    uid_of(&live).unwrap_or_default()
                ),
            )
            .with_details(coll, name));
        }
        if let Some(rv) = &opts.precondition_rv
            && rv_of(&live) != Some(rv.as_str())
        {
            return Err(ApiError::conflict(coll, name));
        }
        Ok(self.delete(&key, opts.dry_run, opts.orphan).unwrap_or(live))
    }

    pub(super) fn delete_collection(
        &mut self,
        coll: &Coll,
        query: &Query,
        opts: &DeleteOptions,
    ) -> Result<Value, ApiError> {
        let selectors = Selectors::parse(query)?;
        let keys: Vec<ObjKey> = self
            .collection(coll, None)
            .filter(|(_, entry)| selectors.matches(&entry.obj))
            .map(|(key, _)| key.clone())
            .collect();
        let items: Vec<Value> = keys
            .iter()
            .filter_map(|key| self.delete(key, opts.dry_run, opts.orphan))
            .collect();
        Ok(json!({
            "apiVersion": coll.api_version,
            "kind": format!("{}List", self.kind_of(coll)),
            "metadata": { "resourceVersion": self.rv.to_string() },
            "items": items,
        }))
    }

    /// Deletes an object: marks it with `deletionTimestamp` when it has finalizers, removes it
    /// otherwise. Returns the resulting (or removed) object.
    fn delete(&mut self, key: &ObjKey, dry_run: bool, orphan: bool) -> Option<Value> {
        let live = self.objects.get(key)?.obj.clone();
        if finalizers(&live).is_empty() {
            if dry_run {
                return Some(live);
            }
            return self.remove_now(key, orphan);
        }
        if is_deleting(&live) {
            return Some(live);
        }
        let mut new = live;
        if let Some(meta) = ensure_meta(&mut new) {
            meta.insert("deletionTimestamp".into(), Value::String(now_rfc3339()));
            meta.insert("deletionGracePeriodSeconds".into(), json!(0));
        }
        Some(self.commit(key, new, dry_run))
    }

    /// Removes an object at once, emits `DELETED`, then garbage-collects its dependents.
    pub(super) fn remove_now(&mut self, key: &ObjKey, orphan: bool) -> Option<Value> {
        let mut obj = self.objects.remove(key)?.obj;
        let rv = self.next_rv();
        if let Some(meta) = ensure_meta(&mut obj) {
            meta.insert("resourceVersion".into(), Value::String(rv.to_string()));
        }
        let uid = uid_of(&obj).map(str::to_owned);
        if let Some(uid) = &uid {
            self.uids.remove(uid);
        }
        self.emit(key, EventType::Deleted, obj.clone(), None);
        if let Some(uid) = uid {
            self.collect_garbage(&uid, orphan);
        }
        Some(obj)
    }

    /// Background cascading deletion of the dependents of a removed owner: a dependent that
    /// still has another existing owner (or every dependent, when `orphan`) only loses the
    /// reference; the others are deleted (honoring their finalizers).
    fn collect_garbage(&mut self, owner_uid: &str, orphan: bool) {
        let dependents: Vec<ObjKey> = self
            .objects
            .iter()
            .filter(|(_, entry)| owner_uids(&entry.obj).any(|uid| uid == owner_uid))
            .map(|(key, _)| key.clone())
            .collect();
        for key in dependents {
            let Some(obj) = self.objects.get(&key).map(|e| e.obj.clone()) else {
                continue;
            };
            let other_owner_alive = owner_uids(&obj)
                .filter(|uid| *uid != owner_uid)
                .any(|uid| self.uids.contains_key(uid));
            if orphan || other_owner_alive {
                let mut new = obj;
                if let Some(meta) = ensure_meta(&mut new) {
                    let refs: Vec<Value> = meta
                        .get("ownerReferences")
                        .and_then(Value::as_array)
                        .map(|refs| {
                            refs.iter()
                                .filter(|r| r.get("uid").and_then(Value::as_str) != Some(owner_uid))
                                .cloned()
                                .collect()
                        })
                        .unwrap_or_default();
                    if refs.is_empty() {
                        meta.remove("ownerReferences");
                    } else {
                        meta.insert("ownerReferences".into(), Value::Array(refs));
                    }
                }
                self.commit(&key, new, false);
            } else {
                self.delete(&key, false, false);
            }
        }
    }
}
