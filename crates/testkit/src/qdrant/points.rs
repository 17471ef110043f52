//! Points: upsert, scroll, retrieve by id and random sampling, with Qdrant 1.18's REST shapes
//! (`src/actix/api/update_api.rs`, `retrieve_api.rs`, `query_api.rs`; `Record` in
//! `lib/api/src/rest/schema.rs`).
//!
//! - `PUT /collections/{c}/points` with `{"points": [{"id", "vector", "payload"?}]}` (the
//!   list form; the `batch` form is not implemented): ids are unsigned integers or UUID
//!   strings (anything else: 400 `Format error in JSON body: ..`); every vector must exist in
//!   the collection's `params.vectors` or `params.sparse_vectors` (else 400 `Wrong input: Not
//!   existing vector name error: {name}`) and a dense vector must have its size (else 400
//!   `Wrong input: Vector dimension error: expected dim: {size}, got {len}`; each row of a
//!   multivector likewise). Dense vectors of a `Cosine` vector are normalized in `f32`, as
//!   Qdrant stores them. A point stored again replaces the old one. Answers `{"operation_id",
//!   "status": "completed"}` (`acknowledged` without `wait=true`).
//! - `POST /collections/{c}/points/scroll` with `{"offset"?, "limit"? (10), "with_payload"?
//!   (true), "with_vector"? (false)}`: points in id order, numeric ids before UUIDs, from
//!   `offset` inclusive, and `next_page_offset` (the id after the page, or `null`). `filter`
//!   is accepted and ignored.
//! - `POST /collections/{c}/points` with `{"ids", "with_payload"? (true), "with_vector"?
//!   (false)}`: the stored points among `ids`, in the order asked; missing ids are left out.
//! - `POST /collections/{c}/points/query` with `{"query": {"sample": "random"}, "limit"?
//!   (10)}`: up to `limit` stored points as `{"id", "version": 0, "score": 0.0, "payload"?,
//!   "vector"?}`, spread evenly over the id order (a stand-in for Qdrant's random pick). Any
//!   other query: 400 (the fake implements only this one).
//!
//! Records are `{"id", "payload", "vector"}` with `null` for what was not asked for (`vector`
//! is the unnamed vector's list, or an object by name). Stored points count in
//! `points_count` and `POST /collections/{c}/points/count` on top of the counts set with
//! [`FakeQdrant::set_points_count`], and are not carried by the fake's snapshot files.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Instant;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, RawQuery, State as AxumState};
use axum::http::StatusCode;
use axum::response::Response;
use axum::routing::{post, put};
use serde::Deserialize;
use serde_json::{Value, json};

use super::collections::{FakeCollection, wrong_input};
use super::handle::FakeQdrant;
use super::server::{Failure, Shared, decode, reply};

/// A point id in Qdrant's order: every number before every UUID.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub(super) enum PointKey {
    Num(u64),
    Uuid(String),
}

impl PointKey {
    /// An id as Qdrant accepts it: an unsigned integer, or a UUID string (hyphenated, 36
    /// characters of hex digits and hyphens; stored lowercase, as Qdrant prints it).
    fn parse(v: &Value) -> Result<Self, Failure> {
        let bad = || {
            (
                StatusCode::BAD_REQUEST,
                format!(
                    "Format error in JSON body: data did not match any variant of untagged enum ExtendedPointId: {v}"
                ),
            )
        };
        match v {
            Value::Number(n) => n.as_u64().map(PointKey::Num).ok_or_else(bad),
            Value::String(s) => {
                let hyphens = [8, 13, 18, 23];
                let ok = s.len() == 36
                    && s.char_indices().all(|(i, c)| {
                        if hyphens.contains(&i) {
                            c == '-'
                        } else {
                            c.is_ascii_hexdigit()
                        }
                    });
                if ok {
                    Ok(PointKey::Uuid(s.to_ascii_lowercase()))
                } else {
                    Err(bad())
                }
            }
            _ => Err(bad()),
        }
    }

    fn to_json(&self) -> Value {
        match self {
            PointKey::Num(n) => json!(n),
            PointKey::Uuid(s) => json!(s),
        }
    }
}

/// A stored point: its vectors (as accepted, Cosine ones normalized) and payload object.
#[derive(Clone, Debug)]
pub(super) struct StoredPoint {
    vector: Value,
    payload: Value,
}

impl FakeQdrant {
    /// The points stored in collection `name` (written with `PUT .../points`), as `(id,
    /// record)` with the record as a scroll returns it with vectors and payload, in id order.
    ///
    /// # Panics
    /// When there is no collection `name` (a test bug).
    pub fn stored_points(&self, name: &str) -> Vec<(Value, Value)> {
        let state = self.shared.lock();
        let Some(collection) = state.collections.get(name) else {
            panic!("the fake Qdrant has no collection {name:?}");
        };
        collection
            .points
            .iter()
            .map(|(k, p)| (k.to_json(), record(k, p, true, true)))
            .collect()
    }
}

fn record(key: &PointKey, point: &StoredPoint, payload: bool, vector: bool) -> Value {
    json!({
        "id": key.to_json(),
        "payload": if payload { point.payload.clone() } else { Value::Null },
        "vector": if vector { point.vector.clone() } else { Value::Null },
    })
}

pub(super) fn point_routes() -> Router<Arc<Shared>> {
    Router::new()
        .route("/collections/{name}/points", put(upsert).post(retrieve))
        .route("/collections/{name}/points/scroll", post(scroll))
        .route("/collections/{name}/points/query", post(query))
}

#[derive(Deserialize)]
struct UpsertRequest {
    points: Vec<PointStruct>,
}

#[derive(Deserialize)]
struct PointStruct {
    id: Value,
    vector: Value,
    #[serde(default)]
    payload: Option<serde_json::Map<String, Value>>,
}

#[derive(Deserialize)]
struct ScrollRequest {
    #[serde(default)]
    offset: Option<Value>,
    #[serde(default)]
    limit: Option<usize>,
    #[serde(default)]
    with_payload: Option<bool>,
    #[serde(default)]
    with_vector: Option<bool>,
    #[serde(default)]
    #[allow(dead_code, reason = "accepted and ignored, as documented")]
    filter: Option<Value>,
}

#[derive(Deserialize)]
struct RetrieveRequest {
    ids: Vec<Value>,
    #[serde(default)]
    with_payload: Option<bool>,
    #[serde(default)]
    with_vector: Option<bool>,
}

#[derive(Deserialize)]
struct QueryRequest {
    #[serde(default)]
    query: Option<Value>,
    #[serde(default)]
    limit: Option<usize>,
    #[serde(default)]
    with_payload: Option<bool>,
    #[serde(default)]
    with_vector: Option<bool>,
}

/// The dense parameters `(size, distance, multivector)` of vector `name` ("" = unnamed), or
/// `None` for a sparse vector; `Err` for a vector the collection does not have.
fn vector_params(config: &Value, name: &str) -> Result<Option<(u64, String, bool)>, Failure> {
    let vectors = &config["params"]["vectors"];
    let dense = if vectors.get("size").is_some_and(Value::is_u64) {
        (name.is_empty()).then_some(vectors)
    } else {
        vectors.get(name)
    };
    if let Some(p) = dense {
        let size = p["size"].as_u64().unwrap_or(0);
        let distance = p["distance"].as_str().unwrap_or_default().to_owned();
        let multi = p.get("multivector_config").is_some_and(|m| !m.is_null());
        return Ok(Some((size, distance, multi)));
    }
    if config["params"]["sparse_vectors"].get(name).is_some() {
        return Ok(None);
    }
    Err(wrong_input(format!(
        "Not existing vector name error: {name}"
    )))
}

/// A dense vector checked against `size`, normalized for Cosine in `f32`.
fn dense(v: &Value, size: u64, cosine: bool) -> Result<Value, Failure> {
    let Some(items) = v.as_array() else {
        return Err((
            StatusCode::BAD_REQUEST,
            format!("Format error in JSON body: expected a vector, got {v}"),
        ));
    };
    if u64::try_from(items.len()).unwrap_or(u64::MAX) != size {
        return Err(wrong_input(format!(
            "Vector dimension error: expected dim: {size}, got {}",
            items.len()
        )));
    }
    #[allow(clippy::cast_possible_truncation, reason = "Qdrant stores f32")]
    let values: Vec<f32> = items
        .iter()
        .map(|x| x.as_f64().unwrap_or(0.0) as f32)
        .collect();
    let values = if cosine {
        let norm = values.iter().map(|x| x * x).sum::<f32>().sqrt();
        if norm > f32::EPSILON {
            values.iter().map(|x| x / norm).collect()
        } else {
            values
        }
    } else {
        values
    };
    // As Qdrant prints an f32: its shortest decimal form (`0.1`, not `0.10000000149011612`).
    let shown: Vec<Value> = values
        .iter()
        .map(|x| {
            x.to_string()
                .parse::<f64>()
                .ok()
                .and_then(serde_json::Number::from_f64)
                .map_or(Value::Null, Value::Number)
        })
        .collect();
    Ok(Value::Array(shown))
}

/// One named (or, with `name == ""`, the unnamed) vector of a point, checked and stored.
fn one_vector(config: &Value, name: &str, v: &Value) -> Result<Value, Failure> {
    match vector_params(config, name)? {
        None => Ok(v.clone()),
        Some((size, distance, multi)) => {
            let cosine = distance == "Cosine";
            if multi {
                let rows = v.as_array().cloned().unwrap_or_default();
                let rows: Result<Vec<Value>, Failure> =
                    rows.iter().map(|r| dense(r, size, cosine)).collect();
                Ok(Value::Array(rows?))
            } else {
                dense(v, size, cosine)
            }
        }
    }
}

fn check_vectors(config: &Value, vector: &Value) -> Result<Value, Failure> {
    match vector {
        Value::Object(by_name) => {
            let mut out = serde_json::Map::new();
            for (name, v) in by_name {
                out.insert(name.clone(), one_vector(config, name, v)?);
            }
            Ok(Value::Object(out))
        }
        v => one_vector(config, "", v),
    }
}

async fn upsert(
    AxumState(shared): AxumState<Arc<Shared>>,
    Path(name): Path<String>,
    RawQuery(query): RawQuery,
    body: Bytes,
) -> Response {
    let started = Instant::now();
    let result = (|| -> Result<Value, Failure> {
        let request: UpsertRequest = decode(&body)?;
        let mut state = shared.lock();
        let collection = state.resolve_mut(&name)?;
        // Checked whole before anything is stored, as Qdrant validates the batch first.
        let mut checked = Vec::with_capacity(request.points.len());
        for p in request.points {
            let key = PointKey::parse(&p.id)?;
            let vector = check_vectors(&collection.config, &p.vector)?;
            let payload = Value::Object(p.payload.unwrap_or_default());
            checked.push((key, StoredPoint { vector, payload }));
        }
        collection.points.extend(checked);
        collection.operation_id += 1;
        let wait = query
            .as_deref()
            .is_some_and(|q| q.split('&').any(|pair| pair == "wait=true"));
        Ok(json!({
            "operation_id": collection.operation_id,
            "status": if wait { "completed" } else { "acknowledged" },
        }))
    })();
    reply(result, started)
}

async fn scroll(
    AxumState(shared): AxumState<Arc<Shared>>,
    Path(name): Path<String>,
    body: Bytes,
) -> Response {
    let started = Instant::now();
    let result = (|| -> Result<Value, Failure> {
        let request: ScrollRequest = decode(&body)?;
        let state = shared.lock();
        let (_, collection) = state.collection_of(&name)?;
        let from = request.offset.as_ref().map(PointKey::parse).transpose()?;
        let limit = request.limit.unwrap_or(10);
        let (payload, vector) = (
            request.with_payload.unwrap_or(true),
            request.with_vector.unwrap_or(false),
        );
        let mut iter = match &from {
            Some(k) => collection.points.range(k.clone()..),
            None => collection.points.range(..),
        };
        let points: Vec<Value> = iter
            .by_ref()
            .take(limit)
            .map(|(k, p)| record(k, p, payload, vector))
            .collect();
        let next = iter.next().map(|(k, _)| k.to_json());
        Ok(json!({ "points": points, "next_page_offset": next }))
    })();
    reply(result, started)
}

async fn retrieve(
    AxumState(shared): AxumState<Arc<Shared>>,
    Path(name): Path<String>,
    body: Bytes,
) -> Response {
    let started = Instant::now();
    let result = (|| -> Result<Value, Failure> {
        let request: RetrieveRequest = decode(&body)?;
        let state = shared.lock();
        let (_, collection) = state.collection_of(&name)?;
        let (payload, vector) = (
            request.with_payload.unwrap_or(true),
            request.with_vector.unwrap_or(false),
        );
        let mut out = vec![];
        for id in &request.ids {
            let key = PointKey::parse(id)?;
            if let Some(p) = collection.points.get(&key) {
                out.push(record(&key, p, payload, vector));
            }
        }
        Ok(Value::Array(out))
    })();
    reply(result, started)
}

async fn query(
    AxumState(shared): AxumState<Arc<Shared>>,
    Path(name): Path<String>,
    body: Bytes,
) -> Response {
    let started = Instant::now();
    let result = (|| -> Result<Value, Failure> {
        let request: QueryRequest = decode(&body)?;
        if request.query != Some(json!({"sample": "random"})) {
            return Err((
                StatusCode::BAD_REQUEST,
                "Bad request: the fake Qdrant implements only the query {\"sample\": \"random\"}"
                    .to_owned(),
            ));
        }
        let state = shared.lock();
        let (_, collection) = state.collection_of(&name)?;
        let limit = request.limit.unwrap_or(10);
        let (payload, vector) = (
            request.with_payload.unwrap_or(false),
            request.with_vector.unwrap_or(false),
        );
        let total = collection.points.len();
        let picks = limit.min(total);
        let keys: Vec<&PointKey> = collection.points.keys().collect();
        let points: Vec<Value> = (0..picks)
            .map(|i| keys[i * total / picks])
            .map(|k| {
                let mut r = record(k, &collection.points[k], payload, vector);
                r["version"] = json!(0);
                r["score"] = json!(0.0);
                r
            })
            .collect();
        Ok(json!({ "points": points }))
    })();
    reply(result, started)
}

/// The stored points of a new collection: none.
pub(super) fn no_points() -> BTreeMap<PointKey, StoredPoint> {
    BTreeMap::new()
}

impl FakeCollection {
    /// Points written with `PUT .../points`.
    pub(super) fn stored_points_count(&self) -> u64 {
        u64::try_from(self.points.len()).unwrap_or(u64::MAX)
    }
}
