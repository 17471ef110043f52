//! Ownership: which QdrantCollection owns a collection in Qdrant, and which payload indexes
//! and aliases that object declared. Pure: it reads and writes the collection's own
//! `metadata` (Qdrant 1.18), no network.
//!
//! Two keys of the collection metadata belong to the operator:
//!
//! ```json
//! "metadata": {
//!   "qdrant.operator.dev/owner": {"namespace": "search", "name": "articles", "uid": "<metadata.uid>"},
//!   "qdrant.operator.dev/declared": {"payloadIndexes": ["category", "year"], "aliases": ["articles-current"]}
//! }
//! ```
//!
//! They are written in the body of `PUT /collections/{name}` when the operator creates the
//! collection, and with `PATCH /collections/{name}` `{"metadata": {..}}` otherwise. Qdrant
//! keeps every other key of the metadata: a PATCH sets the keys it names (each value replaced
//! whole) and removes those it sets to `null`; `GET /collections/{name}` returns the map as
//! `result.config.metadata` (absent when the collection never had any).
//!
//! Policy (see [`claim`]):
//! - a collection the operator creates is marked as owned by the object that created it;
//! - an existing collection without an owner mark is adopted: marked by the first object that
//!   syncs it (with a `CollectionAdopted` event); nothing it held before counts as declared;
//! - a collection marked by another object (another `uid`), or whose owner key holds something
//!   the operator did not write, is refused: no write, never deleted by this object.
//!
//! The declared record is what makes deletions safe: an index or alias is deleted only when
//! the record lists it and the spec no longer does, so what applications (or another
//! operator) created beside the spec stays.

use std::{collections::BTreeSet, fmt};

use api_types::{QdrantCollection, collection::QdrantCollectionSpec};
use kube::ResourceExt;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// Metadata key listing the payload indexes and aliases the owner declared ([`Declared`]).
pub use api_types::collection::DECLARED_METADATA_KEY as DECLARED_KEY;
/// Metadata key naming the owning QdrantCollection ([`Owner`]).
pub use api_types::collection::OWNER_METADATA_KEY as OWNER_KEY;

/// The QdrantCollection that owns a collection: the value of [`OWNER_KEY`].
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct Owner {
    /// Its namespace.
    pub namespace: String,
    /// Its name.
    pub name: String,
    /// Its `metadata.uid`: what ownership is decided by (a re-created object of the same
    /// name is another object).
    pub uid: String,
}

impl Owner {
    /// The owner identity of `qcol`; `None` when it has no `metadata.uid` (an object the API
    /// server did not store).
    pub fn of(qcol: &QdrantCollection) -> Option<Self> {
        Some(Self {
            namespace: qcol.namespace().unwrap_or_else(|| "default".into()),
            name: qcol.name_any(),
            uid: qcol.uid()?,
        })
    }
}

impl fmt::Display for Owner {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{} (uid {})", self.namespace, self.name, self.uid)
    }
}

/// The payload index fields and aliases an object declared: the value of [`DECLARED_KEY`],
/// `{"payloadIndexes": [..], "aliases": [..]}`, each sorted.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, Default)]
#[serde(rename_all = "camelCase")]
pub struct Declared {
    /// Payload index field names.
    #[serde(default)]
    pub payload_indexes: BTreeSet<String>,
    /// Alias names.
    #[serde(default)]
    pub aliases: BTreeSet<String>,
}

impl Declared {
    /// What `spec` declares now: its `payloadIndexes[].field` and `aliases`.
    pub fn of(spec: &QdrantCollectionSpec) -> Self {
        Self {
            payload_indexes: spec
                .payload_indexes
                .iter()
                .map(|i| i.field.clone())
                .collect(),
            aliases: spec.aliases.iter().cloned().collect(),
        }
    }

    /// Everything either declares.
    pub fn union(&self, other: &Self) -> Self {
        Self {
            payload_indexes: self
                .payload_indexes
                .union(&other.payload_indexes)
                .cloned()
                .collect(),
            aliases: self.aliases.union(&other.aliases).cloned().collect(),
        }
    }
}

/// Who holds a collection, as its metadata says.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Claim {
    /// Marked as owned by this object; what it declared so far (empty when the record is
    /// missing or unreadable: nothing is deleted on its account).
    Ours(Declared),
    /// No owner mark (or a `null` one): free to adopt.
    Unmarked,
    /// Marked by someone else: who, as text for conditions and events (`search/articles (uid
    /// ..)`, or the raw value of [`OWNER_KEY`] when it is not one this operator writes).
    Foreign(String),
}

/// Who holds the collection whose `result.config` of `GET /collections/{name}` is `config`,
/// seen from `me`.
pub fn claim(config: &Value, me: &Owner) -> Claim {
    let metadata = config.get("metadata").and_then(Value::as_object);
    let Some(owner) = metadata
        .and_then(|m| m.get(OWNER_KEY))
        .filter(|v| !v.is_null())
    else {
        return Claim::Unmarked;
    };
    match Owner::deserialize(owner) {
        Ok(o) if o.uid == me.uid => Claim::Ours(
            metadata
                .and_then(|m| m.get(DECLARED_KEY))
                .and_then(|d| Declared::deserialize(d).ok())
                .unwrap_or_default(),
        ),
        Ok(o) => Claim::Foreign(o.to_string()),
        Err(_) => Claim::Foreign(format!("{OWNER_KEY}: {owner}")),
    }
}

/// The `metadata` object that marks a collection as owned by `owner`, having declared
/// `declared`: for the `PUT /collections/{name}` body or a `PATCH /collections/{name}`
/// (which leaves the collection's other metadata keys alone).
pub fn mark(owner: &Owner, declared: &Declared) -> Value {
    let mut m = Map::new();
    m.insert(OWNER_KEY.into(), serde_json::json!(owner));
    m.insert(DECLARED_KEY.into(), serde_json::json!(declared));
    Value::Object(m)
}

/// The `metadata` of a `PATCH /collections/{name}` that removes both operator keys (a `null`
/// value removes a key), releasing the collection for another object to adopt.
pub fn release() -> Value {
    let mut m = Map::new();
    m.insert(OWNER_KEY.into(), Value::Null);
    m.insert(DECLARED_KEY.into(), Value::Null);
    Value::Object(m)
}
