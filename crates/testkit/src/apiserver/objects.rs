//! Helpers on stored objects: metadata, status, the fields a write may change, names and uids.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};

use kube::core::{ApiResource, GroupVersionKind};
use serde_json::{Map, Value, json};

use super::KINDS_WITHOUT_STATUS;
use super::request::Coll;
use super::response::ApiError;

/// A Secret's write-only `stringData` merged into `data` (base64), as the API server stores
/// it: its values win over `data`'s for the same key, and `stringData` is never returned.
pub(super) fn fold_string_data(plural: &str, obj: &mut Value) {
    use base64::Engine as _;
    if plural != "secrets" {
        return;
    }
    let Some(Value::Object(strings)) = obj.as_object_mut().and_then(|o| o.remove("stringData"))
    else {
        return;
    };
    let Some(o) = obj.as_object_mut() else {
        return;
    };
    let data = o.entry("data").or_insert_with(|| json!({}));
    if !data.is_object() {
        *data = json!({});
    }
    for (key, value) in strings {
        if let (Some(value), Some(data)) = (value.as_str(), data.as_object_mut()) {
            let encoded = base64::engine::general_purpose::STANDARD.encode(value);
            data.insert(key, Value::String(encoded));
        }
    }
}

pub(super) fn has_status_subresource(plural: &str) -> bool {
    !KINDS_WITHOUT_STATUS.contains(&plural)
}

pub(super) fn strip_status_if_subresource(obj: &mut Value, plural: &str) {
    if has_status_subresource(plural)
        && let Some(map) = obj.as_object_mut()
    {
        map.remove("status");
    }
}

/// `obj.metadata` as a map, created when absent; `None` when `obj` is not an object.
pub(super) fn ensure_meta(obj: &mut Value) -> Option<&mut Map<String, Value>> {
    let map = obj.as_object_mut()?;
    let meta = map
        .entry("metadata")
        .or_insert_with(|| Value::Object(Map::new()));
    if !meta.is_object() {
        *meta = Value::Object(Map::new());
    }
    meta.as_object_mut()
}

pub(super) fn uid_of(obj: &Value) -> Option<&str> {
    obj.pointer("/metadata/uid").and_then(Value::as_str)
}

pub(super) fn rv_of(obj: &Value) -> Option<&str> {
    obj.pointer("/metadata/resourceVersion")
        .and_then(Value::as_str)
}

pub(super) fn is_deleting(obj: &Value) -> bool {
    obj.pointer("/metadata/deletionTimestamp")
        .is_some_and(|v| !v.is_null())
}

pub(super) fn finalizers(obj: &Value) -> Vec<&str> {
    obj.pointer("/metadata/finalizers")
        .and_then(Value::as_array)
        .map(|f| f.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default()
}

pub(super) fn owner_uids(obj: &Value) -> impl Iterator<Item = &str> {
    obj.pointer("/metadata/ownerReferences")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|r| r.get("uid").and_then(Value::as_str))
}

pub(super) fn content_without_meta_and_status(obj: &Value) -> BTreeMap<&String, &Value> {
    obj.as_object()
        .map(|m| {
            m.iter()
                .filter(|(k, _)| *k != "metadata" && *k != "status")
                .collect()
        })
        .unwrap_or_default()
}

/// Checks an update's candidate against the URL and the live object: an object, same name and
/// namespace, and `metadata.resourceVersion` (when set) equal to the live one.
pub(super) fn check_candidate(
    coll: &Coll,
    name: &str,
    live: &Value,
    candidate: &Value,
) -> Result<(), ApiError> {
    if !candidate.is_object() {
        return Err(ApiError::new(
            400,
            "the object must be a JSON object".into(),
        ));
    }
    if let Some(n) = candidate.pointer("/metadata/name").and_then(Value::as_str)
        && n != name
    {
        return Err(ApiError::new(
            400,
            format!("the name of the object ({n}) does not match the name on the URL ({name})"),
        ));
    }
    if let (Some(ns), Some(body_ns)) = (
        &coll.namespace,
        candidate
            .pointer("/metadata/namespace")
            .and_then(Value::as_str),
    ) && !body_ns.is_empty()
        && body_ns != ns
    {
        return Err(ApiError::new(
            400,
            "the namespace of the provided object does not match the namespace sent on the request"
                .into(),
        ));
    }
    if let Some(rv) = candidate
        .pointer("/metadata/resourceVersion")
        .and_then(Value::as_str)
        .filter(|rv| !rv.is_empty())
        && Some(rv) != rv_of(live)
    {
        return Err(ApiError::conflict(coll, name));
    }
    Ok(())
}

/// The object to store for an update of `live` with `candidate`: for the `status`
/// subresource, `live` with `candidate`'s status; otherwise `candidate` with `live`'s status
/// (for kinds with a status subresource). Server-managed metadata always comes from `live`.
pub(super) fn prepare_update(
    live: &Value,
    candidate: Value,
    plural: &str,
    status_sub: bool,
) -> Value {
    let mut new = if status_sub {
        let mut new = live.clone();
        if let Some(map) = new.as_object_mut() {
            match candidate.get("status") {
                Some(status) if !status.is_null() => {
                    map.insert("status".into(), status.clone());
                }
                _ => {
                    map.remove("status");
                }
            }
        }
        new
    } else {
        let mut new = candidate;
        if let Some(map) = new.as_object_mut() {
            if has_status_subresource(plural) {
                match live.get("status") {
                    Some(status) => {
                        map.insert("status".into(), status.clone());
                    }
                    None => {
                        map.remove("status");
                    }
                }
            }
            for field in ["apiVersion", "kind"] {
                if !map.get(field).is_some_and(Value::is_string)
                    && let Some(value) = live.get(field)
                {
                    map.insert(field.into(), value.clone());
                }
            }
        }
        new
    };
    if let Some(meta) = ensure_meta(&mut new) {
        meta.remove("managedFields");
        for field in [
            "name",
            "namespace",
            "uid",
            "creationTimestamp",
            "deletionTimestamp",
            "deletionGracePeriodSeconds",
            "generation",
            "resourceVersion",
        ] {
            match live.get("metadata").and_then(|m| m.get(field)) {
                Some(value) => {
                    meta.insert(field.into(), value.clone());
                }
                None => {
                    meta.remove(field);
                }
            }
        }
    }
    new
}

/// Removes from `live` the fields that `previous` (this manager's last applied configuration)
/// has and `config` (its new one) omits, unless another manager's configuration has them.
pub(super) fn prune_unapplied(
    live: &mut Value,
    previous: &Value,
    config: &Value,
    others: &[&Value],
    path: &mut Vec<String>,
) {
    let (Some(live_map), Some(prev_map)) = (live.as_object_mut(), previous.as_object()) else {
        return;
    };
    let empty = Value::Object(Map::new());
    for (key, prev_value) in prev_map {
        path.push(key.clone());
        let new_value = config.get(key).filter(|v| !v.is_null());
        match (prev_value, new_value) {
            (Value::Object(_), Some(new_value)) if new_value.is_object() => {
                if let Some(live_value) = live_map.get_mut(key) {
                    prune_unapplied(live_value, prev_value, new_value, others, path);
                }
            }
            (Value::Object(_), None) => {
                if let Some(live_value) = live_map.get_mut(key) {
                    prune_unapplied(live_value, prev_value, &empty, others, path);
                }
                let now_empty = live_map
                    .get(key)
                    .and_then(Value::as_object)
                    .is_some_and(Map::is_empty);
                if now_empty && !others.iter().any(|o| has_path(o, path)) {
                    live_map.remove(key);
                }
            }
            (_, None) if !others.iter().any(|o| has_path(o, path)) => {
                live_map.remove(key);
            }
            _ => {}
        }
        path.pop();
    }
}

fn has_path(value: &Value, path: &[String]) -> bool {
    let mut current = value;
    for key in path {
        match current.get(key) {
            Some(next) if !next.is_null() => current = next,
            _ => return false,
        }
    }
    true
}

pub(super) fn partial_metadata(obj: &Value) -> Value {
    json!({
        "apiVersion": "meta.k8s.io/v1",
        "kind": "PartialObjectMetadata",
        "metadata": obj.get("metadata").cloned().unwrap_or_else(|| json!({})),
    })
}

pub(super) fn plural_of(api_version: &str, kind: &str) -> String {
    let (group, version) = api_version.rsplit_once('/').unwrap_or(("", api_version));
    ApiResource::from_gvk(&GroupVersionKind::gvk(group, version, kind)).plural
}

pub(super) fn now_rfc3339() -> String {
    jiff::Timestamp::now()
        .strftime("%Y-%m-%dT%H:%M:%SZ")
        .to_string()
}

static COUNTER: AtomicU64 = AtomicU64::new(1);

fn splitmix64(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
    x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    x ^ (x >> 31)
}

/// A UUID-shaped uid, unique in the process (the last 48 bits are a counter).
pub(super) fn new_uid() -> String {
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let r = splitmix64(n);
    format!(
        "{:08x}-{:04x}-4{:03x}-8{:03x}-{:012x}",
        r >> 32,
        (r >> 16) & 0xffff,
        r & 0xfff,
        (r >> 20) & 0xfff,
        n & 0xffff_ffff_ffff
    )
}

/// Five characters from the alphabet the real server uses for `generateName`.
pub(super) fn random_suffix() -> String {
    const ALPHABET: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";
    let mut r = splitmix64(COUNTER.fetch_add(1, Ordering::Relaxed) ^ 0x5eed);
    (0..5)
        .map(|_| {
            let c = ALPHABET[(r % ALPHABET.len() as u64) as usize];
            r /= ALPHABET.len() as u64;
            char::from(c)
        })
        .collect()
}

pub(super) fn version_info() -> Value {
    json!({
        "major": "1",
        "minor": "33",
        "gitVersion": "v1.33.0-fake",
        "gitCommit": "0000000000000000000000000000000000000000",
        "gitTreeState": "clean",
        "buildDate": "2025-01-01T00:00:00Z",
        "goVersion": "go1.24.0",
        "compiler": "gc",
        "platform": "linux/amd64",
    })
}
