//! `pause KIND NAME` / `resume KIND NAME`: the annotation `qdrant.operator.dev/paused` on any
//! kind of the operator (a merge patch of `metadata.annotations`, field manager
//! `kubectl-qdrant`).

use kube::{
    Api,
    api::{DynamicObject, Patch, PatchParams},
    core::{ApiResource, GroupVersionKind},
};
use serde_json::json;

use crate::{PluginError, Result};

/// The kinds that take the pause annotation, with the names `kubectl` accepts for them
/// (kind, plural, singular, short name).
pub const KINDS: &[(&str, &str, &str, &str)] = &[
    ("QdrantCluster", "qdrantclusters", "qdrantcluster", "qc"),
    (
        "QdrantCollection",
        "qdrantcollections",
        "qdrantcollection",
        "qcol",
    ),
    ("QdrantBackup", "qdrantbackups", "qdrantbackup", "qbak"),
    (
        "QdrantBackupSchedule",
        "qdrantbackupschedules",
        "qdrantbackupschedule",
        "qbs",
    ),
    ("QdrantRestore", "qdrantrestores", "qdrantrestore", "qrs"),
];

/// The kind named by `name` (kind, plural, singular or short name, any case).
///
/// # Errors
/// [`PluginError::Input`] naming the accepted names.
pub fn kind_of(name: &str) -> Result<&'static str> {
    let lower = name.to_ascii_lowercase();
    KINDS
        .iter()
        .find(|(kind, plural, singular, short)| {
            kind.to_ascii_lowercase() == lower
                || *plural == lower
                || *singular == lower
                || *short == lower
        })
        .map(|(kind, ..)| *kind)
        .ok_or_else(|| {
            let names: Vec<&str> = KINDS.iter().map(|k| k.3).collect();
            PluginError::Input(format!(
                "unknown kind {name:?}: expected one of the operator's kinds ({})",
                names.join(", ")
            ))
        })
}

/// Sets (`paused`) or removes the pause annotation on `kind` `namespace/name`. Returns e.g.
/// `QdrantCluster ns/demo paused`.
///
/// # Errors
/// [`PluginError::NotFound`] when the object does not exist, else the API's error.
pub async fn set(
    client: &kube::Client,
    namespace: &str,
    kind: &str,
    name: &str,
    paused: bool,
) -> Result<String> {
    let kind = kind_of(kind)?;
    let resource = ApiResource::from_gvk(&GroupVersionKind::gvk(
        "qdrant.operator.dev",
        "v1alpha1",
        kind,
    ));
    let api: Api<DynamicObject> = Api::namespaced_with(client.clone(), namespace, &resource);
    let value = if paused { json!("true") } else { json!(null) };
    let patch = json!({"metadata": {"annotations": {api_types::PAUSED_ANNOTATION: value}}});
    match api.patch(name, &params(), &Patch::Merge(&patch)).await {
        Ok(_) => Ok(format!(
            "{kind} {namespace}/{name} {}",
            if paused { "paused" } else { "resumed" }
        )),
        Err(kube::Error::Api(e)) if e.code == 404 => Err(PluginError::NotFound {
            kind: kind.to_string(),
            namespace: namespace.to_string(),
            name: name.to_string(),
        }),
        Err(e) => Err(e.into()),
    }
}

/// The patch parameters of every write of the plugin: field manager `kubectl-qdrant`.
pub fn params() -> PatchParams {
    PatchParams {
        field_manager: Some("kubectl-qdrant".into()),
        ..PatchParams::default()
    }
}
