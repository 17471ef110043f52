//! `render FILE`: offline, what the operator would create or send for every document of a
//! file of mixed kinds. Nothing is read from a cluster.
//!
//! - QdrantCluster: the children the cluster-controller applies
//!   ([`cluster_controller::render::render`]).
//! - QdrantBackupSchedule: its ServiceAccount, Role, RoleBinding and CronJob
//!   ([`backup_controller::build::build`]), with the CronJob running `image`.
//! - QdrantCollection: the Qdrant requests the collection-controller sends for a new
//!   collection: `PUT /collections/{name}` with its body, one `PUT .../index` per payload
//!   index, one alias request.
//! - QdrantBackup, QdrantRestore: validated; they are runs with no children (a comment says
//!   what the run does).
//!
//! Every document is validated with the same rules the controllers use.

use api_types::{
    QdrantBackup, QdrantBackupSchedule, QdrantCollection, QdrantRestore,
    validation::{validate_backup_spec, validate_collection, validate_restore, validate_schedule},
};
use serde::Serialize;
use serde_json::{Value, json};

use crate::{API_VERSION, PluginError, Result};

/// The rendering of every document of `input` (multi-document YAML), in order, as YAML
/// documents and `#` comments. `image` is the operator image a schedule's CronJob runs.
///
/// # Errors
/// [`PluginError::Input`] naming the document (1-based) and the field: YAML that does not
/// parse, an unknown kind, a field of the wrong type, a refused spec.
pub fn render(input: &str, image: &str) -> Result<String> {
    let docs: Vec<Value> =
        serde_saphyr::from_multiple(input).map_err(|e| PluginError::Input(format!("YAML: {e}")))?;
    let mut out = String::new();
    for (i, doc) in docs.into_iter().enumerate().filter(|(_, d)| !d.is_null()) {
        let n = i + 1;
        let kind = doc
            .get("kind")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string();
        let api_version = doc.get("apiVersion").and_then(Value::as_str).unwrap_or("");
        if api_version != API_VERSION {
            return Err(PluginError::Input(format!(
                "document {n}: expected apiVersion {API_VERSION}, got {api_version:?}"
            )));
        }
        let invalid = |e: String| PluginError::Input(format!("document {n} ({kind}): {e}"));
        match kind.as_str() {
            "QdrantCluster" => {
                let yaml = serde_saphyr::to_string(&doc).map_err(|e| invalid(e.to_string()))?;
                out.push_str(
                    &cluster_controller::render::render(&yaml)
                        .map_err(|e| invalid(e.to_string()))?,
                );
            }
            "QdrantBackupSchedule" => {
                let qbs: QdrantBackupSchedule = typed(doc).map_err(invalid)?;
                validate_schedule(&qbs.spec).map_err(|e| invalid(e.to_string()))?;
                let d = backup_controller::build::build(&qbs, image);
                for obj in [
                    to_value(&d.service_account),
                    to_value(&d.role),
                    to_value(&d.role_binding),
                    to_value(&d.cron_job),
                ] {
                    push(&mut out, &obj?)?;
                }
            }
            "QdrantCollection" => {
                let qcol: QdrantCollection = typed(doc).map_err(invalid)?;
                let name = qcol.metadata.name.clone().unwrap_or_default();
                let target = qcol.spec.name_in_qdrant(&name).to_string();
                validate_collection(&qcol.spec, &target).map_err(|e| invalid(e.to_string()))?;
                out.push_str(&format!(
                    "# QdrantCollection {name}: the requests the collection-controller sends to create collection {target}\n"
                ));
                let mut requests = vec![
                    json!({"method": "PUT", "path": format!("/collections/{target}"),
                    "body": collection_controller::build::create_request(&qcol.spec)}),
                ];
                for index in &qcol.spec.payload_indexes {
                    requests.push(json!({"method": "PUT", "path": format!("/collections/{target}/index"),
                        "body": {"field_name": index.field, "field_schema": collection_controller::build::field_schema(index)}}));
                }
                if !qcol.spec.aliases.is_empty() {
                    let actions: Vec<Value> = qcol.spec.aliases.iter().map(|a| json!({"create_alias": {"collection_name": target, "alias_name": a}})).collect();
                    requests.push(json!({"method": "POST", "path": "/collections/aliases", "body": {"actions": actions}}));
                }
                for r in requests {
                    push(&mut out, &r)?;
                }
            }
            "QdrantBackup" => {
                let b: QdrantBackup = typed(doc).map_err(invalid)?;
                validate_backup_spec(&b.spec).map_err(|e| invalid(e.to_string()))?;
                let line = match b.spec.s3() {
                    Some(s3) => format!(
                        "# QdrantBackup {}: valid; a run with no children (per shard: snapshot, stream to s3://{}, manifest last)\n",
                        b.metadata.name.as_deref().unwrap_or_default(),
                        s3.bucket
                    ),
                    None => format!(
                        "# QdrantBackup {}: valid; one VolumeSnapshot per peer volume (class {})\n",
                        b.metadata.name.as_deref().unwrap_or_default(),
                        b.spec
                            .volume_snapshot
                            .as_ref()
                            .map(|v| v.class_name.as_str())
                            .unwrap_or_default()
                    ),
                };
                out.push_str(&line);
            }
            "QdrantRestore" => {
                let r: QdrantRestore = typed(doc).map_err(invalid)?;
                validate_restore(&r.spec).map_err(|e| invalid(e.to_string()))?;
                out.push_str(&format!(
                    "# QdrantRestore {}: valid; a run with no children (creates the collections, recovers each shard, checks the point counts)\n",
                    r.metadata.name.unwrap_or_default()
                ));
            }
            other => {
                return Err(PluginError::Input(format!(
                    "document {n}: kind {other:?} is not one of the operator's (QdrantCluster, QdrantCollection, QdrantBackup, QdrantBackupSchedule, QdrantRestore)"
                )));
            }
        }
    }
    if out.is_empty() {
        return Err(PluginError::Input("the file holds no document".into()));
    }
    Ok(out)
}

/// `doc` as `K`, or the path and reason of the first field that does not fit.
fn typed<K: serde::de::DeserializeOwned>(doc: Value) -> std::result::Result<K, String> {
    serde_path_to_error::deserialize(doc).map_err(|e| format!("{}: {}", e.path(), e.inner()))
}

fn to_value<T: Serialize>(obj: &T) -> Result<Value> {
    serde_json::to_value(obj).map_err(|e| PluginError::Input(e.to_string()))
}

fn push(out: &mut String, obj: &Value) -> Result<()> {
    out.push_str("---\n");
    out.push_str(&serde_saphyr::to_string(obj).map_err(|e| PluginError::Input(e.to_string()))?);
    Ok(())
}
