//! Memory placement (Qdrant 1.19's `memory: cold | cached | pinned`) for the server at hand.
//! Pure: no network.
//!
//! Qdrant 1.19 takes `memory` on dense vectors, HNSW graphs, quantized vectors, sparse indexes,
//! payload storage and payload indexes, and deprecates the flags it replaces (`on_disk`,
//! `always_ram`, `on_disk_payload`). An older Qdrant silently ignores an unknown `memory` key
//! (seen on 1.18.3: the create answers 200 and the vectors stay in RAM), so sending it there
//! would both lose the user's intent and make every resync `PATCH` again. For such a server
//! [`for_server`] lowers the spec to the deprecated flags, using Qdrant 1.19's own reading of
//! them (`Memory::from_on_disk`, `Memory::from_on_disk_heap` and the `always_ram` rule in
//! Qdrant's `lib/segment/src/types.rs`):
//!
//! | component                       | Cold                   | Cached                  | Pinned              |
//! |---------------------------------|------------------------|-------------------------|---------------------|
//! | dense vectors (`vectors.*`)     | `on_disk: true`        | `on_disk: false`        | refused by schema   |
//! | HNSW graph (`hnsw*`)            | `on_disk: true`        | `on_disk: false`        | needs 1.19          |
//! | payload storage (`payload`)     | `on_disk_payload: true`| `on_disk_payload: false`| refused by schema   |
//! | sparse index (`sparseVectors.*.index`) | `on_disk: true` | needs 1.19              | `on_disk: false`    |
//! | quantized vectors (`quantization*`) | needs 1.19         | needs 1.19              | `always_ram: true`  |
//! | payload index (`params.memory`) | `on_disk: true`        | needs 1.19              | `on_disk: false`    |
//!
//! A placement with no older equivalent is refused for that server with [`Unsupported`], which
//! names every such field, rather than approximated.

use std::{borrow::Cow, fmt};

use api_types::collection::{
    HnswConfig, Memory, QdrantCollectionSpec, QuantizationConfig, SparseIndexConfig,
};
use serde_json::Value;

/// The first Qdrant version that knows `memory`: 1.19.
pub const MEMORY_SINCE: (u64, u64) = (1, 19);

/// True when the spec sets `memory` anywhere (including a payload index's `params.memory`):
/// only then does the reconcile need the server's version.
pub fn uses_memory(spec: &QdrantCollectionSpec) -> bool {
    let hnsw = |h: &Option<HnswConfig>| h.as_ref().is_some_and(|h| h.memory.is_some());
    let quantization = |q: &Option<QuantizationConfig>| {
        q.as_ref().is_some_and(|q| quantization_memory(q).is_some())
    };
    spec.vectors
        .iter()
        .chain(spec.named_vectors.iter().flat_map(|m| m.values()))
        .any(|v| v.memory.is_some() || hnsw(&v.hnsw) || quantization(&v.quantization))
        || hnsw(&spec.hnsw_config)
        || quantization(&spec.quantization_config)
        || spec
            .sparse_vectors
            .iter()
            .flat_map(|m| m.values())
            .any(|s| s.index.as_ref().is_some_and(|i| i.memory.is_some()))
        || spec.payload.as_ref().is_some_and(|p| p.memory.is_some())
        || spec
            .payload_indexes
            .iter()
            .any(|i| i.params.as_ref().and_then(|p| p.get("memory")).is_some())
}

/// True when a server of version `(major, minor)` takes `memory` as is.
pub fn knows_memory(version: (u64, u64)) -> bool {
    version >= MEMORY_SINCE
}

pub use reconcile_lib::qdrant::minor_version as parse_version;

/// Fields whose placement the server cannot take, and the server's version.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unsupported {
    /// The version the placement was lowered for, as the server (or the rollout) reported it.
    pub server: String,
    /// `(spec path, placement)` of each field with no older equivalent, in spec order.
    pub fields: Vec<(String, Memory)>,
}

impl fmt::Display for Unsupported {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let fields: Vec<String> = self
            .fields
            .iter()
            .map(|(path, m)| format!("{path}: {m:?}"))
            .collect();
        write!(
            f,
            "{} needs Qdrant {}.{} or newer (this Qdrant is {}): before 1.19 only the deprecated \
             flags exist, and they have no equivalent for this placement; choose another \
             placement or upgrade the cluster",
            fields.join(", "),
            MEMORY_SINCE.0,
            MEMORY_SINCE.1,
            self.server
        )
    }
}

/// The spec to build requests and diffs from for a server of `version` (`(major, minor)`,
/// with `server` its text for messages): the spec itself when it sets no `memory` or the
/// server knows `memory`, else a copy with every `memory` replaced by the deprecated flag of
/// the table in the module documentation.
///
/// # Errors
/// [`Unsupported`] naming every placement without an older equivalent.
pub fn for_server<'a>(
    spec: &'a QdrantCollectionSpec,
    version: (u64, u64),
    server: &str,
) -> Result<Cow<'a, QdrantCollectionSpec>, Unsupported> {
    if knows_memory(version) || !uses_memory(spec) {
        return Ok(Cow::Borrowed(spec));
    }
    let mut lowered = spec.clone();
    let mut refused = vec![];
    let mut vectors: Vec<(String, &mut api_types::collection::VectorParams)> = vec![];
    if let Some(v) = lowered.vectors.as_mut() {
        vectors.push(("spec.vectors".into(), v));
    }
    for (name, v) in lowered.named_vectors.iter_mut().flatten() {
        vectors.push((format!("spec.namedVectors.{name}"), v));
    }
    for (path, v) in vectors {
        if let Some(m) = v.memory.take() {
            match m {
                Memory::Cold => v.on_disk = Some(true),
                Memory::Cached => v.on_disk = Some(false),
                Memory::Pinned => refused.push((format!("{path}.memory"), m)),
            }
        }
        lower_hnsw(v.hnsw.as_mut(), &format!("{path}.hnsw"), &mut refused);
        lower_quantization(
            v.quantization.as_mut(),
            &format!("{path}.quantization"),
            &mut refused,
        );
    }
    lower_hnsw(
        lowered.hnsw_config.as_mut(),
        "spec.hnswConfig",
        &mut refused,
    );
    lower_quantization(
        lowered.quantization_config.as_mut(),
        "spec.quantizationConfig",
        &mut refused,
    );
    for (name, s) in lowered.sparse_vectors.iter_mut().flatten() {
        if let Some(i) = s.index.as_mut() {
            lower_sparse_index(i, &format!("spec.sparseVectors.{name}.index"), &mut refused);
        }
    }
    if let Some(m) = lowered.payload.take().and_then(|p| p.memory) {
        match m {
            Memory::Cold => lowered.on_disk_payload = Some(true),
            Memory::Cached => lowered.on_disk_payload = Some(false),
            Memory::Pinned => refused.push(("spec.payload.memory".into(), m)),
        }
    }
    for (i, index) in lowered.payload_indexes.iter_mut().enumerate() {
        let Some(params) = index.params.as_mut().and_then(Value::as_object_mut) else {
            continue;
        };
        let Some(memory) = params.remove("memory") else {
            continue;
        };
        let path = format!("spec.payloadIndexes[{i}].params.memory");
        match memory.as_str() {
            Some("cold") => {
                params.insert("on_disk".into(), true.into());
            }
            Some("pinned") => {
                params.insert("on_disk".into(), false.into());
            }
            // Validation refuses any other value; "cached" has no older equivalent.
            _ => refused.push((path, Memory::Cached)),
        }
    }
    if refused.is_empty() {
        Ok(Cow::Owned(lowered))
    } else {
        Err(Unsupported {
            server: server.to_string(),
            fields: refused,
        })
    }
}

fn lower_hnsw(h: Option<&mut HnswConfig>, path: &str, refused: &mut Vec<(String, Memory)>) {
    let Some(h) = h else { return };
    match h.memory.take() {
        Some(Memory::Cold) => h.on_disk = Some(true),
        Some(Memory::Cached) => h.on_disk = Some(false),
        Some(m @ Memory::Pinned) => refused.push((format!("{path}.memory"), m)),
        None => {}
    }
}

fn lower_sparse_index(i: &mut SparseIndexConfig, path: &str, refused: &mut Vec<(String, Memory)>) {
    match i.memory.take() {
        Some(Memory::Cold) => i.on_disk = Some(true),
        Some(Memory::Pinned) => i.on_disk = Some(false),
        Some(m @ Memory::Cached) => refused.push((format!("{path}.memory"), m)),
        None => {}
    }
}

fn lower_quantization(
    q: Option<&mut QuantizationConfig>,
    path: &str,
    refused: &mut Vec<(String, Memory)>,
) {
    let Some(q) = q else { return };
    let slots = [
        q.scalar
            .as_mut()
            .map(|s| ("scalar", &mut s.memory, &mut s.always_ram)),
        q.product
            .as_mut()
            .map(|p| ("product", &mut p.memory, &mut p.always_ram)),
        q.binary
            .as_mut()
            .map(|b| ("binary", &mut b.memory, &mut b.always_ram)),
    ];
    for (kind, memory, always_ram) in slots.into_iter().flatten() {
        match memory.take() {
            Some(Memory::Pinned) => *always_ram = Some(true),
            Some(m) => refused.push((format!("{path}.{kind}.memory"), m)),
            None => {}
        }
    }
}

fn quantization_memory(q: &QuantizationConfig) -> Option<Memory> {
    q.scalar
        .as_ref()
        .and_then(|s| s.memory)
        .or_else(|| q.product.as_ref().and_then(|p| p.memory))
        .or_else(|| q.binary.as_ref().and_then(|b| b.memory))
}
