//! The four Controllers (QdrantBackup, QdrantBackupSchedule, QdrantRestore, QdrantMigration),
//! and how they run together under the shared runtime: one process, one Lease, one reconcile
//! context.

use std::sync::Arc;

use api_types::{QdrantBackup, QdrantBackupSchedule, QdrantMigration, QdrantRestore};
use k8s_openapi::api::batch::v1::CronJob;
use kube::{
    Api, Client, Resource,
    core::DeserializeGuard,
    runtime::{Controller, watcher},
};
use reconcile_lib::{guard, runtime::Shutdown};

use crate::{backup, context::Context, migration, restore, schedule};

fn api<K>(client: &Client, namespace: Option<&str>) -> Api<K>
where
    K: Resource<Scope = k8s_openapi::NamespaceResourceScope, DynamicType = ()>,
{
    match namespace {
        Some(ns) => Api::namespaced(client.clone(), ns),
        None => Api::all(client.clone()),
    }
}

/// The context's shared parts, for [`guard`].
fn shared(ctx: &Context) -> &reconcile_lib::context::Shared {
    &ctx.shared
}

/// Runs the four controllers until `shutdown` fires (in `namespace`, or all namespaces). When
/// it fires, the backups and restores running in this process are cancelled at once (their
/// uploads are aborted, their status stays Running so the next leader resumes them) while the
/// controllers drain; a task that is late anyway is fenced off by [`crate::fence`].
///
/// Watches: QdrantBackups, QdrantRestores, QdrantMigrations, QdrantBackupSchedules with their
/// owned CronJobs and QdrantBackups (retention and status follow the backups a schedule created). The custom
/// resources are watched through kube's `DeserializeGuard`: one that cannot be decoded gets a
/// Warning event ([`reconcile_lib::guard`]) and stalls no other.
pub async fn run(client: Client, namespace: Option<String>, ctx: Arc<Context>, shutdown: Shutdown) {
    let ns = namespace.as_deref();
    let backups = {
        let shutdown = shutdown.clone();
        Controller::new(
            api::<DeserializeGuard<QdrantBackup>>(&client, ns),
            watcher::Config::default(),
        )
        .graceful_shutdown_on(async move { shutdown.wait().await })
        .run(
            guard::reconciler(backup::reconcile, shared),
            guard::error_policy(backup::error_policy, shared),
            ctx.clone(),
        )
    };
    let restores = {
        let shutdown = shutdown.clone();
        Controller::new(
            api::<DeserializeGuard<QdrantRestore>>(&client, ns),
            watcher::Config::default(),
        )
        .graceful_shutdown_on(async move { shutdown.wait().await })
        .run(
            guard::reconciler(restore::reconcile, shared),
            guard::error_policy(restore::error_policy, shared),
            ctx.clone(),
        )
    };
    let migrations = {
        let shutdown = shutdown.clone();
        Controller::new(
            api::<DeserializeGuard<QdrantMigration>>(&client, ns),
            watcher::Config::default(),
        )
        .graceful_shutdown_on(async move { shutdown.wait().await })
        .run(
            guard::reconciler(migration::reconcile, shared),
            guard::error_policy(migration::error_policy, shared),
            ctx.clone(),
        )
    };
    let schedules = {
        let shutdown = shutdown.clone();
        Controller::new(
            api::<DeserializeGuard<QdrantBackupSchedule>>(&client, ns),
            watcher::Config::default(),
        )
        .owns(api::<CronJob>(&client, ns), watcher::Config::default())
        .owns(
            api::<DeserializeGuard<QdrantBackup>>(&client, ns),
            watcher::Config::default(),
        )
        .graceful_shutdown_on(async move { shutdown.wait().await })
        .run(
            guard::reconciler(schedule::reconcile, shared),
            guard::error_policy(schedule::error_policy, shared),
            ctx.clone(),
        )
    };
    // The tasks stop as soon as leadership is lost or shutdown starts, not after the
    // controllers have drained: a new leader may already be resuming their runs.
    let stop_tasks = async {
        shutdown.wait().await;
        ctx.jobs.cancel_all().await;
    };
    tokio::join!(
        guard::drain(backups),
        guard::drain(restores),
        guard::drain(migrations),
        guard::drain(schedules),
        stop_tasks
    );
}
