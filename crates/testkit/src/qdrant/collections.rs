//! Collections, payload indexes, aliases and point counts.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Instant;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, RawQuery, State as AxumState};
use axum::http::StatusCode;
use axum::response::Response;
use axum::routing::{delete, get, post, put};
use serde_json::{Value, json};

use super::ALREADY_EXISTS_STATUS;
use super::handle::FakeQdrant;
use super::model;
use super::points::{PointKey, StoredPoint, no_points};
use super::server::{Failure, Shared, State, decode, ok, reply, validated};
use super::shards::{
    FakeTransfer, get_collection_cluster, initial_placement, update_collection_cluster,
};

impl FakeQdrant {
    /// The collection `name` (exact name, aliases are not resolved) as `GET
    /// /collections/{name}` returns it in `result`, or `None` when there is none.
    pub fn collection(&self, name: &str) -> Option<Value> {
        let state = self.shared.lock();
        state.collections.get(name).map(|c| c.info())
    }

    /// Names of every collection, sorted.
    pub fn collection_names(&self) -> Vec<String> {
        self.shared.lock().collections.keys().cloned().collect()
    }

    /// Sets the `points_count` reported for collection `name` (as if points were written),
    /// spread evenly over its shards (the first shards get one more when it does not divide).
    ///
    /// # Panics
    /// When there is no collection `name` (a test bug).
    pub fn set_points_count(&self, name: &str, points: u64) {
        let mut state = self.shared.lock();
        match state.collections.get_mut(name) {
            Some(collection) => collection.set_points(points),
            None => panic!("the fake Qdrant has no collection {name:?}"),
        }
    }

    /// Sets the points of one shard of collection `name` (every replica of a shard holds the
    /// same points in the fake).
    ///
    /// # Panics
    /// When there is no collection `name` or no shard `shard_id` in it (a test bug).
    pub fn set_shard_points(&self, name: &str, shard_id: u32, points: u64) {
        let mut state = self.shared.lock();
        let Some(collection) = state.collections.get_mut(name) else {
            panic!("the fake Qdrant has no collection {name:?}");
        };
        if !collection.shards.contains_key(&shard_id) {
            panic!("collection {name:?} of the fake Qdrant has no shard {shard_id}");
        }
        collection.shard_points.insert(shard_id, points);
    }

    /// The points of each shard of collection `name`, by shard id.
    ///
    /// # Panics
    /// When there is no collection `name` (a test bug).
    pub fn shard_points(&self, name: &str) -> BTreeMap<u32, u64> {
        let state = self.shared.lock();
        let Some(collection) = state.collections.get(name) else {
            panic!("the fake Qdrant has no collection {name:?}");
        };
        collection
            .shards
            .keys()
            .map(|shard| (*shard, collection.points_of(*shard)))
            .collect()
    }

    /// Changes collection `name`'s stored `config` (the object `GET` returns as
    /// `result.config`) behind the operator's back, e.g. `|c| c["hnsw_config"]["m"] =
    /// json!(32)`. Nothing is validated: later `PATCH`es merge into whatever `f` left.
    ///
    /// # Panics
    /// When there is no collection `name` (a test bug).
    pub fn edit_collection_config(&self, name: &str, f: impl FnOnce(&mut Value)) {
        let mut state = self.shared.lock();
        match state.collections.get_mut(name) {
            Some(collection) => f(&mut collection.config),
            None => panic!("the fake Qdrant has no collection {name:?}"),
        }
    }

    /// Every alias as `(alias_name, collection_name)`, sorted by alias name.
    pub fn aliases(&self) -> Vec<(String, String)> {
        self.shared
            .lock()
            .aliases
            .iter()
            .map(|(alias, collection)| (alias.clone(), collection.clone()))
            .collect()
    }
}

// ---------------------------------------------------------------------------------------------
// Collections, payload indexes and aliases
// ---------------------------------------------------------------------------------------------

/// One collection of the fake.
pub(super) struct FakeCollection {
    /// `result.config` as `GET /collections/{name}` returns it.
    pub(super) config: Value,
    /// Payload indexes by field: `{data_type, params?, points}`.
    pub(super) payload_schema: BTreeMap<String, Value>,
    /// Points by shard id (every replica of a shard holds the same points); a shard without
    /// an entry has none.
    pub(super) shard_points: BTreeMap<u32, u64>,
    /// Points set while the collection has no shard (custom sharding).
    pub(super) unplaced_points: u64,
    /// Sequence number reported by index operations.
    pub(super) operation_id: u64,
    /// Shard id → replicas: peer id → replica state (one of [`REPLICA_STATES`]).
    pub(super) shards: BTreeMap<u32, BTreeMap<u64, &'static str>>,
    /// Shard transfers in progress, in start order.
    pub(super) transfers: Vec<FakeTransfer>,
    /// Points written with `PUT /collections/{c}/points`, by id ([`super::points`]).
    pub(super) points: BTreeMap<PointKey, StoredPoint>,
}

impl FakeCollection {
    /// The collection info as `GET /collections/{name}` returns it in `result`.
    fn info(&self) -> Value {
        json!({
            "status": "green",
            "optimizer_status": "ok",
            "indexed_vectors_count": 0,
            "points_count": self.points_count(),
            "segments_count": segments_count(&self.config),
            "config": self.config,
            "payload_schema": self.payload_schema,
            "update_queue": {"length": 0},
        })
    }
}

/// Segments Qdrant creates: per shard, `default_segment_number`, or CPUs / 2 clamped to 2..=8
/// when that is 0 (2 here). Custom sharding creates no shard until a shard key exists.
fn segments_count(config: &Value) -> u64 {
    let params = &config["params"];
    if params["sharding_method"] == "custom" {
        return 0;
    }
    let shards = params["shard_number"].as_u64().unwrap_or(1);
    let per_shard = match config["optimizer_config"]["default_segment_number"].as_u64() {
        Some(0) | None => 2,
        Some(n) => n,
    };
    shards * per_shard
}

pub(super) fn collection_routes() -> Router<Arc<Shared>> {
    Router::new()
        .route("/collections", get(list_collections))
        .route("/aliases", get(list_all_aliases))
        // Static before `{name}`: POST is the alias API, every other method is the collection
        // named `aliases`, as in Qdrant (actix tries each method-guarded route in turn).
        .route(
            "/collections/aliases",
            post(update_aliases)
                .get(get_collection_aliases_named)
                .put(create_collection_aliases_named)
                .patch(update_collection_aliases_named)
                .delete(delete_collection_aliases_named),
        )
        .route(
            "/collections/{name}",
            get(get_collection)
                .put(create_collection)
                .patch(update_collection)
                .delete(delete_collection),
        )
        .route("/collections/{name}/aliases", get(list_collection_aliases))
        .route(
            "/collections/{name}/cluster",
            get(get_collection_cluster).post(update_collection_cluster),
        )
        .route("/collections/{name}/index", put(create_index))
        .route("/collections/{name}/index/{field}", delete(delete_index))
        .route("/collections/{name}/points/count", post(count_points))
}

/// Decodes a collection body as the fake's version reads it: before 1.19 without the 1.19
/// fields ([`drop_1_19_fields`](super::server::drop_1_19_fields)). A body without them is
/// decoded as sent, so errors keep Qdrant's line and column.
fn decode_for_version<T: serde::de::DeserializeOwned>(
    shared: &Shared,
    body: &[u8],
) -> Result<T, Failure> {
    if shared.lock().since_1_19 {
        return decode(body);
    }
    let Ok(mut value) = serde_json::from_slice::<Value>(body) else {
        return decode(body);
    };
    if !super::server::drop_1_19_fields(&mut value) {
        return decode(body);
    }
    decode(&serde_json::to_vec(&value).unwrap_or_default())
}

pub(super) fn collection_not_found(name: &str) -> Failure {
    (
        StatusCode::NOT_FOUND,
        format!("Not found: Collection `{name}` doesn't exist!"),
    )
}

pub(super) fn wrong_input(message: impl std::fmt::Display) -> Failure {
    (StatusCode::BAD_REQUEST, format!("Wrong input: {message}"))
}

impl State {
    /// The collection name `name` refers to: itself, or the collection of alias `name`.
    pub(super) fn resolve(&self, name: &str) -> Result<String, Failure> {
        let real = self.aliases.get(name).map_or(name, String::as_str);
        if self.collections.contains_key(real) {
            Ok(real.to_owned())
        } else {
            Err(collection_not_found(real))
        }
    }

    pub(super) fn resolve_mut(&mut self, name: &str) -> Result<&mut FakeCollection, Failure> {
        let real = self.resolve(name)?;
        self.collections
            .get_mut(&real)
            .ok_or_else(|| collection_not_found(&real))
    }

    /// Shards of a new auto-sharded collection when the request sets none: one per peer in
    /// cluster mode, else 1.
    fn default_shard_number(&self) -> u32 {
        self.cluster.as_ref().map_or(1, |c| {
            u32::try_from(c.peers.len().max(1)).unwrap_or(u32::MAX)
        })
    }
}

async fn list_collections(AxumState(shared): AxumState<Arc<Shared>>) -> Response {
    let started = Instant::now();
    let names: Vec<Value> = shared
        .lock()
        .collections
        .keys()
        .map(|name| json!({ "name": name }))
        .collect();
    ok(json!({ "collections": names }), started)
}

/// `/collections/aliases` with a method other than POST: the collection named `aliases`.
async fn get_collection_aliases_named(shared: AxumState<Arc<Shared>>) -> Response {
    get_collection(shared, Path("aliases".to_owned())).await
}

async fn create_collection_aliases_named(shared: AxumState<Arc<Shared>>, body: Bytes) -> Response {
    create_collection(shared, Path("aliases".to_owned()), body).await
}

async fn update_collection_aliases_named(shared: AxumState<Arc<Shared>>, body: Bytes) -> Response {
    update_collection(shared, Path("aliases".to_owned()), body).await
}

async fn delete_collection_aliases_named(shared: AxumState<Arc<Shared>>) -> Response {
    delete_collection(shared, Path("aliases".to_owned())).await
}

async fn get_collection(
    AxumState(shared): AxumState<Arc<Shared>>,
    Path(name): Path<String>,
) -> Response {
    let started = Instant::now();
    let state = shared.lock();
    let result = state
        .resolve(&name)
        .and_then(|real| {
            state
                .collections
                .get(&real)
                .ok_or_else(|| collection_not_found(&real))
        })
        .map(FakeCollection::info);
    reply(result, started)
}

async fn create_collection(
    AxumState(shared): AxumState<Arc<Shared>>,
    Path(name): Path<String>,
    body: Bytes,
) -> Response {
    let started = Instant::now();
    let result = (|| -> Result<Value, Failure> {
        let request: model::CreateCollection = decode_for_version(&shared, &body)?;
        validated(request.validate())?;
        request.check_vector_names().map_err(wrong_input)?;
        let mut state = shared.lock();
        if state.collections.contains_key(&name) {
            return Err((
                ALREADY_EXISTS_STATUS,
                format!("Wrong input: Collection `{name}` already exists!"),
            ));
        }
        if state.aliases.contains_key(&name) {
            return Err(wrong_input(format!(
                "Can't create collection with name {name}. Alias with the same name already exists"
            )));
        }
        let config = request.into_config(state.default_shard_number());
        let shards = initial_placement(&config, &state.peer_ids());
        state.collections.insert(
            name.clone(),
            FakeCollection {
                config,
                payload_schema: BTreeMap::new(),
                shard_points: BTreeMap::new(),
                unplaced_points: 0,
                operation_id: 0,
                shards,
                transfers: Vec::new(),
                points: no_points(),
            },
        );
        Ok(json!(true))
    })();
    reply(result, started)
}

async fn update_collection(
    AxumState(shared): AxumState<Arc<Shared>>,
    Path(name): Path<String>,
    body: Bytes,
) -> Response {
    let started = Instant::now();
    let result = (|| -> Result<Value, Failure> {
        let request: model::UpdateCollection = decode_for_version(&shared, &body)?;
        validated(request.validate())?;
        let mut state = shared.lock();
        let collection = state.resolve_mut(&name)?;
        request.apply(&mut collection.config).map_err(wrong_input)?;
        Ok(json!(true))
    })();
    reply(result, started)
}

async fn delete_collection(
    AxumState(shared): AxumState<Arc<Shared>>,
    Path(name): Path<String>,
) -> Response {
    let started = Instant::now();
    let mut state = shared.lock();
    state.aliases.retain(|_, collection| *collection != name);
    let existed = state.collections.remove(&name).is_some();
    ok(json!(existed), started)
}

/// `{"aliases": [...]}` for `(alias, collection)` pairs, listed by collection then alias.
fn alias_list<'a>(pairs: impl Iterator<Item = (&'a String, &'a String)>) -> Value {
    let mut pairs: Vec<_> = pairs.collect();
    pairs.sort_by(|a, b| (a.1, a.0).cmp(&(b.1, b.0)));
    let aliases: Vec<Value> = pairs
        .into_iter()
        .map(|(alias, collection)| json!({"alias_name": alias, "collection_name": collection}))
        .collect();
    json!({ "aliases": aliases })
}

async fn list_all_aliases(AxumState(shared): AxumState<Arc<Shared>>) -> Response {
    let started = Instant::now();
    let state = shared.lock();
    let pairs = state
        .aliases
        .iter()
        .filter(|(_, collection)| state.collections.contains_key(*collection));
    ok(alias_list(pairs), started)
}

async fn list_collection_aliases(
    AxumState(shared): AxumState<Arc<Shared>>,
    Path(name): Path<String>,
) -> Response {
    let started = Instant::now();
    let state = shared.lock();
    let pairs = state
        .aliases
        .iter()
        .filter(|(_, collection)| **collection == name);
    ok(alias_list(pairs), started)
}

async fn update_aliases(AxumState(shared): AxumState<Arc<Shared>>, body: Bytes) -> Response {
    let started = Instant::now();
    let result = (|| -> Result<Value, Failure> {
        let request: model::ChangeAliasesOperation = decode(&body)?;
        let mut state = shared.lock();
        // In order, without rollback: Qdrant persists each action before the next one.
        for action in request.actions {
            match action {
                model::AliasOperations::Create(op) => {
                    let model::CreateAlias {
                        collection_name,
                        alias_name,
                    } = op.create_alias;
                    if !state.collections.contains_key(&collection_name) {
                        return Err(collection_not_found(&collection_name));
                    }
                    if state.collections.contains_key(&alias_name) {
                        return Err((
                            ALREADY_EXISTS_STATUS,
                            format!("Wrong input: Collection `{alias_name}` already exists!"),
                        ));
                    }
                    state.aliases.insert(alias_name, collection_name);
                }
                model::AliasOperations::Delete(op) => {
                    state.aliases.remove(&op.delete_alias.alias_name);
                }
                model::AliasOperations::Rename(op) => {
                    let model::RenameAlias {
                        old_alias_name,
                        new_alias_name,
                    } = op.rename_alias;
                    let Some(collection) = state.aliases.remove(&old_alias_name) else {
                        return Err((
                            StatusCode::NOT_FOUND,
                            format!("Not found: Alias {old_alias_name} does not exists!"),
                        ));
                    };
                    state.aliases.insert(new_alias_name, collection);
                }
            }
        }
        Ok(json!(true))
    })();
    reply(result, started)
}

/// `UpdateResult` of an index operation: `completed` with `wait=true`, else `acknowledged`.
fn index_update_result(collection: &mut FakeCollection, query: Option<&str>) -> Value {
    collection.operation_id += 1;
    let wait = query.is_some_and(|q| q.split('&').any(|pair| pair == "wait=true"));
    json!({
        "operation_id": collection.operation_id,
        "status": if wait { "completed" } else { "acknowledged" },
    })
}

async fn create_index(
    AxumState(shared): AxumState<Arc<Shared>>,
    Path(name): Path<String>,
    RawQuery(query): RawQuery,
    body: Bytes,
) -> Response {
    let started = Instant::now();
    let result = (|| -> Result<Value, Failure> {
        let request: model::CreateFieldIndex = decode(&body)?;
        let mut state = shared.lock();
        let collection = state.resolve_mut(&name)?;
        let Some(schema) = request.field_schema else {
            return Err((
                StatusCode::BAD_REQUEST,
                "Bad request: Can't auto-detect field type, please specify `field_schema` in the request"
                    .to_owned(),
            ));
        };
        collection
            .payload_schema
            .insert(request.field_name, schema.index_info());
        Ok(index_update_result(collection, query.as_deref()))
    })();
    reply(result, started)
}

async fn delete_index(
    AxumState(shared): AxumState<Arc<Shared>>,
    Path((name, field)): Path<(String, String)>,
    RawQuery(query): RawQuery,
) -> Response {
    let started = Instant::now();
    let result = (|| -> Result<Value, Failure> {
        let mut state = shared.lock();
        let collection = state.resolve_mut(&name)?;
        collection.payload_schema.remove(&field);
        Ok(index_update_result(collection, query.as_deref()))
    })();
    reply(result, started)
}

/// `POST /collections/{c}/points/count` (`count_points` in `src/actix/api/count_api.rs`):
/// the collection's points over all shards; `filter` and `shard_key` are accepted and
/// ignored (the fake has no points to filter).
pub(super) async fn count_points(
    AxumState(shared): AxumState<Arc<Shared>>,
    Path(name): Path<String>,
    body: Bytes,
) -> Response {
    let started = Instant::now();
    let result = (|| -> Result<Value, Failure> {
        let _request: model::CountRequest = decode(&body)?;
        let state = shared.lock();
        let (_, collection) = state.collection_of(&name)?;
        Ok(json!({ "count": collection.points_count() }))
    })();
    reply(result, started)
}
