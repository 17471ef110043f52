//! Diff: what it takes to bring an existing Qdrant collection in line with its spec. Pure: it
//! compares the spec with what Qdrant 1.18 returned and says which writes to make; the caller
//! makes them.
//!
//! Inputs are Qdrant's own responses: `result.config` and `result.payload_schema` of
//! `GET /collections/{name}`, and `result.aliases` of `GET /aliases` (see [`Actual`]).
//! Outputs (see [`Diff`]):
//! - `update`: one `PATCH /collections/{name}` body with every changeable field that differs;
//! - `drift`: fields Qdrant cannot change in place, reported (condition `ConfigDrift`), never
//!   "fixed" by recreating anything;
//! - payload indexes to delete (`DELETE /collections/{name}/index/{field}`) and to create
//!   (`PUT /collections/{name}/index`);
//! - the actions of one `POST /collections/aliases`.
//!
//! Deletions are limited to what the object declared before ([`Actual::declared`], the
//! record in the collection's metadata, see [`crate::ownership`]): an index or alias is
//! deleted only when it was declared before and the spec no longer lists it. Indexes and
//! aliases created outside the operator are never deleted, whatever the spec lists.
//!
//! Rules:
//! - Only what the spec sets is compared. An unset field means "whatever Qdrant has", so
//!   removing a setting from the spec (say `quantizationConfig`) is not a change: Qdrant keeps
//!   its current value and nothing is written. This is deliberate: turning a setting off or
//!   back to a default is an explicit spec value where Qdrant has one (`onDisk: false`, ...),
//!   and "the field disappeared" can also mean an older client or a partial manifest, which
//!   must never rewrite or drop anything in Qdrant.
//! - Numbers compare by value (`1 == 1.0`; floats Qdrant stores as `f32`, like a scalar
//!   quantization `quantile`, compare within 1e-6 relative), and JSON `null` counts as absent.
//! - Immutable in Qdrant (reported as drift): vector size, distance, datatype, multivector; a
//!   named vector missing in Qdrant or present in Qdrant but not in the spec; unnamed vs named
//!   vectors; a sparse vector missing (or present only in Qdrant, when the spec lists sparse
//!   vectors); `shard_number`; `sharding_method`; `wal_config`.
//! - Changeable (`update`): `params.{replication_factor, write_consistency_factor,
//!   on_disk_payload, payload}`, `hnsw_config`, `optimizers_config` (`optimizer_config` in `GET`),
//!   `quantization_config`, `strict_mode_config`, per vector `vectors.{name}.{on_disk, memory,
//!   hnsw_config, quantization_config}` (the unnamed vector is `""`), and
//!   `sparse_vectors.{name}.{index, modifier}`. Qdrant merges every one of these blocks into its current
//!   value, so only the differing keys are sent; quantization is replaced whole by Qdrant, so
//!   the body keeps Qdrant's other keys of the same kind.
//! - Output is sorted (drift by field, indexes by field name, aliases by name): the same input
//!   always gives the same output.

use std::collections::{BTreeMap, BTreeSet};

use api_types::collection::{
    FieldDrift, PayloadIndex, QdrantCollectionSpec, SparseVectorParams, VectorParams,
};
use serde_json::{Map, Number, Value};

use crate::{build, ownership::Declared};

/// What Qdrant has, as it returned it.
#[derive(Debug, Clone, Copy)]
pub struct Actual<'a> {
    /// `result.config` of `GET /collections/{name}`: `{"params": {"vectors", "shard_number",
    /// "sharding_method"?, "replication_factor", "write_consistency_factor",
    /// "on_disk_payload", "sparse_vectors"?}, "hnsw_config", "optimizer_config", "wal_config",
    /// "quantization_config" (null when off), "strict_mode_config"?}`.
    pub config: &'a Value,
    /// `result.payload_schema` of `GET /collections/{name}`: `{field: {"data_type":
    /// "keyword", "params"?: {"type": "keyword", ...}, "points": 0}}`.
    pub payload_schema: &'a BTreeMap<String, Value>,
    /// Every alias in Qdrant as `(alias_name, collection_name)`, from `GET /aliases`.
    pub aliases: &'a [(String, String)],
    /// The payload indexes and aliases this object declared before (the
    /// `qdrant.operator.dev/declared` metadata of a collection it owns; empty for one it
    /// creates or adopts now): the only ones a diff may delete.
    pub declared: &'a Declared,
}

/// The writes that bring Qdrant in line with the spec, and what cannot be brought in line.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Diff {
    /// Body of `PATCH /collections/{name}` with every changeable field whose value differs
    /// (`{"params"?, "hnsw_config"?, "optimizers_config"?, "quantization_config"?,
    /// "strict_mode_config"?, "vectors"?: {name: {..}}, "sparse_vectors"?: {name: {"index"}}}`);
    /// `None` when nothing is to change.
    pub update: Option<Value>,
    /// Fields Qdrant cannot change in place, sorted by spec path (`spec.vectors.size`,
    /// `spec.namedVectors.image.distance`, `spec.shardNumber`, ...), with the desired and the
    /// actual value as JSON text (`null` when absent), in Qdrant's spelling.
    pub drift: Vec<FieldDrift>,
    /// `(field_name, field_schema)` of each payload index to create with
    /// `PUT /collections/{name}/index`, sorted by field name.
    pub create_indexes: Vec<(String, Value)>,
    /// Payload indexes to delete with `DELETE /collections/{name}/index/{field}`, sorted:
    /// those declared before and no longer in the spec, and those of the spec whose type or
    /// params changed (these are also in `create_indexes`; delete first).
    pub delete_indexes: Vec<String>,
    /// Actions of one `POST /collections/aliases` (`{"actions": [...]}`): `{"delete_alias":
    /// {"alias_name"}}` for aliases of this collection declared before that the spec no longer
    /// lists, then per
    /// spec alias in name order either `{"create_alias": {"collection_name", "alias_name"}}`
    /// or, for an alias pointing at another collection, `delete_alias` then `create_alias`.
    /// Aliases the spec does not name and did not declare before are left alone.
    pub alias_actions: Vec<Value>,
}

impl Diff {
    /// True when Qdrant must be written to (update, indexes or aliases). Drift alone is not a
    /// write: it is only reported.
    pub fn needs_writes(&self) -> bool {
        self.update.is_some()
            || !self.create_indexes.is_empty()
            || !self.delete_indexes.is_empty()
            || !self.alias_actions.is_empty()
    }
}

/// Compares the spec of collection `collection_name` with what Qdrant has. See the module
/// documentation for the rules.
pub fn diff(spec: &QdrantCollectionSpec, collection_name: &str, actual: &Actual) -> Diff {
    let config = actual.config;
    let params = field(config, "params");
    let mut update = Map::new();
    let mut drift = vec![];

    dense_vectors(
        spec,
        params.and_then(|p| field(p, "vectors")),
        &mut update,
        &mut drift,
    );
    if let Some(sparse) = &spec.sparse_vectors {
        sparse_vectors(
            sparse,
            params.and_then(|p| field(p, "sparse_vectors")),
            &mut update,
            &mut drift,
        );
    }
    collection_params(spec, params, &mut update, &mut drift);

    if let Some(h) = &spec.hnsw_config {
        let changed = changed_keys(&build::hnsw_config(h), field(config, "hnsw_config"));
        insert_nonempty(&mut update, "hnsw_config", changed);
    }
    if let Some(o) = &spec.optimizers_config {
        // `GET` spells the block `optimizer_config`, requests `optimizers_config`.
        let changed = changed_keys(
            &build::optimizers_config(o),
            field(config, "optimizer_config"),
        );
        insert_nonempty(&mut update, "optimizers_config", changed);
    }
    if let Some(w) = &spec.wal_config {
        let actual_wal = field(config, "wal_config");
        for (key, want) in object_entries(&build::wal_config(w)) {
            let have = actual_wal.and_then(|a| field(a, key));
            if !have.is_some_and(|h| json_eq(want, h)) {
                push_drift(
                    &mut drift,
                    format!("spec.walConfig.{}", camel(key)),
                    want,
                    have,
                );
            }
        }
    }
    if let Some(q) = spec
        .quantization_config
        .as_ref()
        .and_then(build::quantization_config)
        && let Some(patch) = quantization_patch(&q, field(config, "quantization_config"))
    {
        update.insert("quantization_config".into(), patch);
    }
    if let Some(s) = &spec.strict_mode_config {
        let changed = changed_keys(
            &build::strict_mode_config(s),
            field(config, "strict_mode_config"),
        );
        insert_nonempty(&mut update, "strict_mode_config", changed);
    }

    drift.sort_by(|a, b| a.field.cmp(&b.field));
    let (create_indexes, delete_indexes) = payload_indexes(
        &spec.payload_indexes,
        actual.payload_schema,
        actual.declared,
    );
    Diff {
        update: (!update.is_empty()).then_some(Value::Object(update)),
        drift,
        create_indexes,
        delete_indexes,
        alias_actions: alias_actions(
            &spec.aliases,
            collection_name,
            actual.aliases,
            actual.declared,
        ),
    }
}

/// JSON equality for comparing the spec with Qdrant: numbers by value (`1 == 1.0`, floats
/// within 1e-6 relative, since Qdrant stores some as `f32`), object keys whose value is
/// `null` count as absent, everything else exactly.
pub fn json_eq(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => number_eq(x, y),
        (Value::Array(x), Value::Array(y)) => {
            x.len() == y.len() && x.iter().zip(y).all(|(x, y)| json_eq(x, y))
        }
        (Value::Object(x), Value::Object(y)) => {
            let x_in_y = x
                .iter()
                .filter(|(_, v)| !v.is_null())
                .all(|(k, v)| y.get(k).is_some_and(|w| json_eq(v, w)));
            let y_in_x = y
                .iter()
                .filter(|(_, w)| !w.is_null())
                .all(|(k, _)| x.get(k).is_some_and(|v| !v.is_null()));
            x_in_y && y_in_x
        }
        _ => a == b,
    }
}

fn number_eq(x: &Number, y: &Number) -> bool {
    if let (Some(x), Some(y)) = (x.as_u64(), y.as_u64()) {
        return x == y;
    }
    if let (Some(x), Some(y)) = (x.as_i64(), y.as_i64()) {
        return x == y;
    }
    match (x.as_f64(), y.as_f64()) {
        (Some(x), Some(y)) => x == y || (x - y).abs() <= 1e-6 * x.abs().max(y.abs()),
        _ => false,
    }
}

/// True when every key `desired` sets has the same value in `actual`, recursively; keys only
/// `actual` has do not matter.
fn covers(desired: &Value, actual: &Value) -> bool {
    match (desired, actual) {
        (Value::Object(d), Value::Object(a)) => d
            .iter()
            .all(|(k, dv)| a.get(k).is_some_and(|av| covers(dv, av))),
        _ => json_eq(desired, actual),
    }
}

/// `value[key]`, with JSON `null` read as absent.
fn field<'v>(value: &'v Value, key: &str) -> Option<&'v Value> {
    value.get(key).filter(|v| !v.is_null())
}

fn object_entries(value: &Value) -> impl Iterator<Item = (&String, &Value)> {
    value.as_object().into_iter().flatten()
}

/// The entries of `desired` (an object) whose value differs from `actual`'s (absent counts
/// as different).
fn changed_keys(desired: &Value, actual: Option<&Value>) -> Map<String, Value> {
    object_entries(desired)
        .filter(|(k, want)| {
            !actual
                .and_then(|a| field(a, k))
                .is_some_and(|have| json_eq(want, have))
        })
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect()
}

fn insert_nonempty(obj: &mut Map<String, Value>, key: &str, value: Map<String, Value>) {
    if !value.is_empty() {
        obj.insert(key.into(), Value::Object(value));
    }
}

fn push_drift(drift: &mut Vec<FieldDrift>, path: String, desired: &Value, actual: Option<&Value>) {
    drift.push(FieldDrift {
        field: path,
        desired: desired.to_string(),
        actual: actual.unwrap_or(&Value::Null).to_string(),
    });
}

/// `snake_case` (Qdrant) to `camelCase` (spec), e.g. `wal_capacity_mb` -> `walCapacityMb`.
fn camel(snake: &str) -> String {
    let mut out = String::with_capacity(snake.len());
    let mut upper = false;
    for c in snake.chars() {
        if c == '_' {
            upper = true;
        } else if upper {
            out.extend(c.to_uppercase());
            upper = false;
        } else {
            out.push(c);
        }
    }
    out
}

/// The `quantization_config` to send when `desired` (one `{kind: {..}}`) is not what Qdrant
/// has: Qdrant replaces quantization whole, so keys the spec leaves unset keep Qdrant's value
/// when the kind stays the same. `None` when Qdrant already has it.
fn quantization_patch(desired: &Value, actual: Option<&Value>) -> Option<Value> {
    if actual.is_some_and(|a| covers(desired, a)) {
        return None;
    }
    let (kind, want) = object_entries(desired).next()?;
    let mut merged: Map<String, Value> = actual
        .and_then(|a| field(a, kind))
        .and_then(Value::as_object)
        .map(|m| {
            m.iter()
                .filter(|(_, v)| !v.is_null())
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect()
        })
        .unwrap_or_default();
    for (k, v) in object_entries(want) {
        merged.insert(k.clone(), v.clone());
    }
    let mut out = Map::new();
    out.insert(kind.clone(), Value::Object(merged));
    Some(Value::Object(out))
}

/// `params.vectors` holds one unnamed vector (`{"size": .., "distance": ..}`) rather than a
/// map of named ones.
fn is_single(vectors: &Value) -> bool {
    vectors.get("size").is_some_and(Value::is_number)
}

fn dense_vectors(
    spec: &QdrantCollectionSpec,
    actual: Option<&Value>,
    update: &mut Map<String, Value>,
    drift: &mut Vec<FieldDrift>,
) {
    // A collection without dense vectors has `"vectors": {}`.
    let empty = Value::Object(Map::new());
    let actual = actual.unwrap_or(&empty);
    let mut patch = Map::new();
    if let Some(v) = &spec.vectors {
        if is_single(actual) {
            dense_vector("spec.vectors", "", v, actual, &mut patch, drift);
        } else {
            push_drift(
                drift,
                "spec.vectors".into(),
                &build::vector_params(v),
                Some(actual),
            );
        }
    } else if let Some(named) = &spec.named_vectors {
        if is_single(actual) {
            push_drift(
                drift,
                "spec.namedVectors".into(),
                &build::named_vectors(named),
                Some(actual),
            );
        } else {
            for (name, v) in named {
                let path = format!("spec.namedVectors.{name}");
                match field(actual, name) {
                    Some(a) => dense_vector(&path, name, v, a, &mut patch, drift),
                    None => push_drift(drift, path, &build::vector_params(v), None),
                }
            }
            for (name, a) in object_entries(actual) {
                if !named.contains_key(name) && !a.is_null() {
                    push_drift(
                        drift,
                        format!("spec.namedVectors.{name}"),
                        &Value::Null,
                        Some(a),
                    );
                }
            }
        }
    }
    insert_nonempty(update, "vectors", patch);
}

/// One dense vector present on both sides: immutable fields to `drift`, changeable ones to
/// `patch[name]` (`PATCH` `vectors.{name}`). The vector's `hnsw`/`quantization` compare with
/// the vector's own override in Qdrant (`params.vectors.{name}.hnsw_config`, ...), which is
/// what the `PATCH` sets, not with the collection-wide values.
fn dense_vector(
    path: &str,
    name: &str,
    spec: &VectorParams,
    actual: &Value,
    patch: &mut Map<String, Value>,
    drift: &mut Vec<FieldDrift>,
) {
    let want = build::vector_params(spec);
    for key in ["size", "distance"] {
        if let Some(w) = want.get(key) {
            let have = field(actual, key);
            if !have.is_some_and(|h| json_eq(w, h)) {
                push_drift(drift, format!("{path}.{key}"), w, have);
            }
        }
    }
    if let Some(d) = spec.datatype {
        let w = Value::from(build::datatype(d));
        // No datatype in Qdrant means float32.
        let have = field(actual, "datatype")
            .cloned()
            .unwrap_or_else(|| Value::from("float32"));
        if !json_eq(&w, &have) {
            push_drift(drift, format!("{path}.datatype"), &w, Some(&have));
        }
    }
    if let Some(m) = &spec.multivector {
        let w = build::multivector_config(m);
        let have = field(actual, "multivector_config");
        if !have.is_some_and(|h| covers(&w, h)) {
            push_drift(drift, format!("{path}.multivector"), &w, have);
        }
    }

    let mut changes = Map::new();
    if let Some(on_disk) = spec.on_disk
        && field(actual, "on_disk").and_then(Value::as_bool) != Some(on_disk)
    {
        changes.insert("on_disk".into(), on_disk.into());
    }
    if let Some(memory) = spec.memory
        && field(actual, "memory").and_then(Value::as_str) != Some(memory.as_qdrant())
    {
        changes.insert("memory".into(), memory.as_qdrant().into());
    }
    if let Some(h) = &spec.hnsw {
        let changed = changed_keys(&build::hnsw_config(h), field(actual, "hnsw_config"));
        insert_nonempty(&mut changes, "hnsw_config", changed);
    }
    if let Some(q) = spec
        .quantization
        .as_ref()
        .and_then(build::quantization_config)
        && let Some(p) = quantization_patch(&q, field(actual, "quantization_config"))
    {
        changes.insert("quantization_config".into(), p);
    }
    insert_nonempty(patch, name, changes);
}

fn sparse_vectors(
    spec: &BTreeMap<String, SparseVectorParams>,
    actual: Option<&Value>,
    update: &mut Map<String, Value>,
    drift: &mut Vec<FieldDrift>,
) {
    let have = actual
        .and_then(Value::as_object)
        .cloned()
        .unwrap_or_default();
    let mut patch = Map::new();
    for (name, sp) in spec {
        let path = format!("spec.sparseVectors.{name}");
        let Some(a) = have.get(name).filter(|a| !a.is_null()) else {
            push_drift(drift, path, &build::sparse_vector_params(sp), None);
            continue;
        };
        let mut entry = Map::new();
        if let Some(m) = sp.modifier {
            // Changeable in place: Qdrant applies IDF at query time, so a PATCH of
            // `sparse_vectors.{name}.modifier` touches no stored data. No modifier in Qdrant
            // means "none".
            let w = Value::from(build::sparse_modifier(m));
            let h = field(a, "modifier")
                .cloned()
                .unwrap_or_else(|| Value::from("none"));
            if !json_eq(&w, &h) {
                entry.insert("modifier".into(), w);
            }
        }
        if let Some(i) = &sp.index {
            let changed = changed_keys(&build::sparse_index(i), field(a, "index"));
            if !changed.is_empty() {
                entry.insert("index".into(), Value::Object(changed));
            }
        }
        if !entry.is_empty() {
            patch.insert(name.clone(), Value::Object(entry));
        }
    }
    for (name, a) in &have {
        if !spec.contains_key(name) && !a.is_null() {
            push_drift(
                drift,
                format!("spec.sparseVectors.{name}"),
                &Value::Null,
                Some(a),
            );
        }
    }
    insert_nonempty(update, "sparse_vectors", patch);
}

fn collection_params(
    spec: &QdrantCollectionSpec,
    actual: Option<&Value>,
    update: &mut Map<String, Value>,
    drift: &mut Vec<FieldDrift>,
) {
    let get = |key: &str| actual.and_then(|p| field(p, key));
    if let Some(n) = spec.shard_number {
        let w = Value::from(n);
        let have = get("shard_number");
        if !have.is_some_and(|h| json_eq(&w, h)) {
            push_drift(drift, "spec.shardNumber".into(), &w, have);
        }
    }
    if let Some(m) = spec.sharding_method {
        let w = Value::from(build::sharding_method(m));
        // `GET` omits sharding_method when it was never set: auto.
        let have = get("sharding_method")
            .cloned()
            .unwrap_or_else(|| Value::from("auto"));
        if !json_eq(&w, &have) {
            push_drift(drift, "spec.shardingMethod".into(), &w, Some(&have));
        }
    }
    let mut want = Map::new();
    if let Some(r) = spec.replication_factor {
        want.insert("replication_factor".into(), r.into());
    }
    if let Some(w) = spec.write_consistency_factor {
        want.insert("write_consistency_factor".into(), w.into());
    }
    if let Some(o) = spec.on_disk_payload {
        want.insert("on_disk_payload".into(), o.into());
    }
    let mut changed = changed_keys(&Value::Object(want), actual);
    if let Some(p) = spec.payload.as_ref().and_then(build::payload_storage)
        && !get("payload").is_some_and(|have| covers(&p, have))
    {
        changed.insert("payload".into(), p);
    }
    insert_nonempty(update, "params", changed);
}

/// `(create, delete)`: spec indexes missing or different in Qdrant are created (a different
/// one is deleted first); Qdrant indexes declared before and no longer in the spec are
/// deleted; the others are left alone. The first spec entry of a field wins (validation
/// refuses duplicates).
fn payload_indexes(
    spec: &[PayloadIndex],
    actual: &BTreeMap<String, Value>,
    declared: &Declared,
) -> (Vec<(String, Value)>, Vec<String>) {
    let mut desired: BTreeMap<&str, &PayloadIndex> = BTreeMap::new();
    for idx in spec {
        desired.entry(idx.field.as_str()).or_insert(idx);
    }
    let mut create = vec![];
    let mut delete = vec![];
    for (name, idx) in &desired {
        match actual.get(*name) {
            Some(info) if index_matches(idx, info) => {}
            Some(_) => {
                delete.push((*name).to_string());
                create.push(((*name).to_string(), build::field_schema(idx)));
            }
            None => create.push(((*name).to_string(), build::field_schema(idx))),
        }
    }
    for name in actual.keys() {
        if !desired.contains_key(name.as_str()) && declared.payload_indexes.contains(name) {
            delete.push(name.clone());
        }
    }
    delete.sort();
    (create, delete)
}

/// Same type, and the same params once both are normalized the way Qdrant reports them.
fn index_matches(spec: &PayloadIndex, info: &Value) -> bool {
    let kind = spec.schema.as_qdrant();
    info.get("data_type").and_then(Value::as_str) == Some(kind)
        && json_eq(
            &normalized_index_params(kind, spec.params.as_ref()),
            &normalized_index_params(kind, field(info, "params")),
        )
}

/// Index params without `type` and nulls (`GET` spells unset integer/float/datetime options
/// as `null`), with the defaults `GET` fills in (a text index always shows its `tokenizer`,
/// `word` unless set).
fn normalized_index_params(kind: &str, params: Option<&Value>) -> Value {
    let mut obj: Map<String, Value> = object_entries(params.unwrap_or(&Value::Null))
        .filter(|(k, v)| *k != "type" && !v.is_null())
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    if kind == "text" {
        obj.entry("tokenizer").or_insert_with(|| "word".into());
    }
    Value::Object(obj)
}

fn alias_actions(
    spec: &[String],
    collection: &str,
    actual: &[(String, String)],
    declared: &Declared,
) -> Vec<Value> {
    let desired: BTreeSet<&str> = spec.iter().map(String::as_str).collect();
    let current: BTreeMap<&str, &str> = actual
        .iter()
        .map(|(alias, coll)| (alias.as_str(), coll.as_str()))
        .collect();
    let mut actions = vec![];
    for (alias, coll) in &current {
        if *coll == collection && !desired.contains(alias) && declared.aliases.contains(*alias) {
            actions.push(delete_alias(alias));
        }
    }
    for alias in &desired {
        match current.get(alias) {
            Some(coll) if *coll == collection => {}
            Some(_) => {
                actions.push(delete_alias(alias));
                actions.push(create_alias(alias, collection));
            }
            None => actions.push(create_alias(alias, collection)),
        }
    }
    actions
}

fn create_alias(alias: &str, collection: &str) -> Value {
    serde_json::json!({"create_alias": {"collection_name": collection, "alias_name": alias}})
}

fn delete_alias(alias: &str) -> Value {
    serde_json::json!({"delete_alias": {"alias_name": alias}})
}
