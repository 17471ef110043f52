//! `backup CLUSTER` and `restore BACKUP`: create a QdrantBackup or QdrantRestore now and wait
//! for the backup-controller to finish it.

use std::time::Duration;

use api_types::{
    QdrantBackup, QdrantBackupSchedule, QdrantRestore,
    backup::{BackupPhase, BackupStorage},
};
use kube::{Api, api::PostParams};
use serde_json::json;

use crate::{API_VERSION, PluginError, Result};

/// Where a backup goes: the storage of an existing QdrantBackupSchedule or QdrantBackup
/// (`spec.backupTemplate.storage`, `spec.storage`), named by `from`.
#[derive(Debug, Clone)]
pub struct StorageFrom {
    /// Name of a QdrantBackupSchedule, else of a QdrantBackup, in the same namespace.
    pub from: String,
}

/// How long to wait for a run, and how often to look.
#[derive(Debug, Clone, Copy)]
pub struct Wait {
    /// Give up after this long (the run goes on in the cluster).
    pub timeout: Duration,
    /// Poll interval.
    pub poll: Duration,
}

/// Creates QdrantBackup `name` of cluster `cluster` (every collection, or `collections`), with
/// the storage of `storage`, and waits for it unless `wait` is `None`. Returns the result:
/// phase, message, manifest key, artifacts.
///
/// # Errors
/// [`PluginError::NotFound`] for a missing storage source; [`PluginError::Run`] when the
/// backup Failed or did not finish in time; the API's errors.
pub async fn backup(
    client: &kube::Client,
    namespace: &str,
    cluster: &str,
    name: &str,
    collections: &[String],
    storage: &StorageFrom,
    wait: Option<Wait>,
) -> Result<String> {
    let storage = storage_of(client, namespace, &storage.from).await?;
    let backups: Api<QdrantBackup> = Api::namespaced(client.clone(), namespace);
    let object: QdrantBackup = serde_json::from_value(json!({
        "apiVersion": API_VERSION, "kind": "QdrantBackup",
        "metadata": {"name": name, "namespace": namespace,
                     "labels": {"app.kubernetes.io/created-by": "kubectl-qdrant"}},
        "spec": {"cluster": {"name": cluster}, "collections": collections, "storage": storage}}))
    .map_err(|e| PluginError::Input(format!("QdrantBackup {name}: {e}")))?;
    backups.create(&PostParams::default(), &object).await?;
    let Some(wait) = wait else {
        return Ok(format!("QdrantBackup {namespace}/{name} created"));
    };
    let done = poll(wait, || async {
        let b = backups.get(name).await?;
        Ok(b.status
            .filter(|s| s.phase.is_finished())
            .map(|s| (s.phase, s)))
    })
    .await?;
    let Some((phase, s)) = done else {
        return Err(PluginError::Run(format!(
            "QdrantBackup {namespace}/{name} did not finish in {:?} (it goes on: kubectl get qbak {name} -n {namespace})",
            wait.timeout
        )));
    };
    let mut out = format!(
        "QdrantBackup {namespace}/{name} {phase:?}: {}\n",
        s.message.as_deref().unwrap_or("")
    );
    if phase != BackupPhase::Succeeded {
        return Err(PluginError::Run(out.trim_end().to_string()));
    }
    if let Some(key) = &s.manifest_key {
        out.push_str(&format!("  manifest: {key}\n"));
    }
    for a in &s.artifacts {
        out.push_str(&format!(
            "  {} {}: {} bytes\n",
            a.collection,
            a.shard_id.map_or_else(
                || "(whole collection)".to_string(),
                |s| format!("shard {s}")
            ),
            a.size_bytes
        ));
    }
    Ok(out)
}

/// Creates QdrantRestore `name` of backup `backup` into cluster `cluster`, restoring each of
/// `collections` (`name` or `name=new-name`; empty: every collection of the backup), and
/// waits for it unless `wait` is `None`.
///
/// # Errors
/// [`PluginError::Input`] for a bad `collections` entry; [`PluginError::Run`] when the restore
/// Failed or did not finish in time; the API's errors.
pub async fn restore(
    client: &kube::Client,
    namespace: &str,
    backup: &str,
    cluster: &str,
    name: &str,
    collections: &[String],
    wait: Option<Wait>,
) -> Result<String> {
    let mut selected = vec![];
    for c in collections {
        let (from, to) = c
            .split_once('=')
            .map_or((c.as_str(), None), |(a, b)| (a, Some(b)));
        if from.is_empty() || to.is_some_and(str::is_empty) {
            return Err(PluginError::Input(format!(
                "--collection {c:?}: expected NAME or NAME=NEW_NAME"
            )));
        }
        selected.push(match to {
            Some(to) => json!({"name": from, "newName": to}),
            None => json!({"name": from}),
        });
    }
    let restores: Api<QdrantRestore> = Api::namespaced(client.clone(), namespace);
    let object: QdrantRestore = serde_json::from_value(json!({
        "apiVersion": API_VERSION, "kind": "QdrantRestore",
        "metadata": {"name": name, "namespace": namespace,
                     "labels": {"app.kubernetes.io/created-by": "kubectl-qdrant"}},
        "spec": {"source": {"backupRef": {"name": backup}}, "cluster": {"name": cluster},
                 "collections": selected}}))
    .map_err(|e| PluginError::Input(format!("QdrantRestore {name}: {e}")))?;
    restores.create(&PostParams::default(), &object).await?;
    let Some(wait) = wait else {
        return Ok(format!("QdrantRestore {namespace}/{name} created"));
    };
    let done = poll(wait, || async {
        let r = restores.get(name).await?;
        Ok(r.status.filter(|s| s.phase.is_finished()))
    })
    .await?;
    let Some(s) = done else {
        return Err(PluginError::Run(format!(
            "QdrantRestore {namespace}/{name} did not finish in {:?} (it goes on: kubectl get qrs {name} -n {namespace})",
            wait.timeout
        )));
    };
    let mut out = format!(
        "QdrantRestore {namespace}/{name} {:?}: {}\n",
        s.phase,
        s.message.as_deref().unwrap_or("")
    );
    if s.phase != BackupPhase::Succeeded {
        return Err(PluginError::Run(out.trim_end().to_string()));
    }
    for c in &s.collections {
        out.push_str(&format!(
            "  {}: {}/{} shards, {} points\n",
            c.target_name,
            c.shards_restored,
            c.shards_total,
            c.restored_points
                .map_or_else(|| "?".to_string(), |p| p.to_string())
        ));
    }
    Ok(out)
}

/// The storage of QdrantBackupSchedule `from` (its backup template's), else of QdrantBackup
/// `from`.
async fn storage_of(client: &kube::Client, namespace: &str, from: &str) -> Result<BackupStorage> {
    let schedules: Api<QdrantBackupSchedule> = Api::namespaced(client.clone(), namespace);
    let no_storage = |what: &str| {
        PluginError::Input(format!(
            "{what} {from} (--storage-from) has no S3 storage (method VolumeSnapshot)"
        ))
    };
    if let Some(s) = schedules.get_opt(from).await? {
        return s
            .spec
            .backup_template
            .storage
            .ok_or_else(|| no_storage("QdrantBackupSchedule"));
    }
    let backups: Api<QdrantBackup> = Api::namespaced(client.clone(), namespace);
    match backups.get_opt(from).await? {
        Some(b) => b.spec.storage.ok_or_else(|| no_storage("QdrantBackup")),
        None => Err(PluginError::NotFound {
            kind: "QdrantBackupSchedule or QdrantBackup (--storage-from)".into(),
            namespace: namespace.into(),
            name: from.into(),
        }),
    }
}

/// Calls `check` every `wait.poll` until it returns `Some`, or `None` after `wait.timeout`.
async fn poll<T, F, Fut>(wait: Wait, mut check: F) -> Result<Option<T>>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<Option<T>>>,
{
    let deadline = tokio::time::Instant::now() + wait.timeout;
    loop {
        if let Some(done) = check().await? {
            return Ok(Some(done));
        }
        if tokio::time::Instant::now() >= deadline {
            return Ok(None);
        }
        tokio::time::sleep(wait.poll).await;
    }
}
