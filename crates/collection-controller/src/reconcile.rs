//! One reconcile of a QdrantCollection, as a named pipeline:
//! validate -> dereference -> build -> diff -> apply -> update status.
//!
//! Validate, build and diff never touch the network. A resync of a collection that matches
//! its spec sends one read to Qdrant (two when the spec manages aliases) and no write, and
//! leaves the status untouched. Deletion runs through the finalizer
//! [`crate::FINALIZER`] and honours `deletionPolicy`.

use std::{sync::Arc, time::Duration};

use api_types::{
    QdrantCollection, collection::DeletionPolicy, is_paused, validation::validate_collection,
};
use kube::{
    Api, ResourceExt,
    runtime::{controller::Action, finalizer::Event as FinalizerEvent},
};
use reconcile_lib::{
    context::{Shared, object_key},
    error::{Error, Result},
    metrics::Metrics,
    qdrant::{QdrantClient, QdrantError},
};
use tracing::{info, warn};

use crate::{
    build,
    dereference::{self, EndpointRewrite, Target},
    diff::{self, Actual},
    status::{self, Outcome},
};

/// What every reconcile shares.
pub struct Context {
    /// Applier, events, metrics and backoff, as every controller has them.
    pub shared: Shared,
    /// Timeout of each Qdrant request.
    pub qdrant_timeout: Duration,
    /// Periodic resync: changes made behind the operator's back are found at least this often.
    pub resync: Duration,
    /// Requeue while waiting for the cluster or a Secret.
    pub wait_requeue: Duration,
    /// How long a deletion with `deletionPolicy: Delete` keeps retrying an unreachable Qdrant
    /// before the finalizer is removed anyway (with a Warning event and the collection left).
    pub deletion_timeout: Duration,
    /// Rewrites endpoint URLs before connecting (tests).
    pub rewrite: Option<EndpointRewrite>,
}

impl Context {
    /// Defaults: 10 s Qdrant timeout, 5 min resync, 15 s wait requeue, 10 min deletion timeout.
    pub fn new(client: kube::Client, metrics: Arc<Metrics>) -> Self {
        Self {
            shared: Shared::new(
                client,
                crate::FIELD_MANAGER,
                crate::CONTROLLER_NAME,
                metrics,
            ),
            qdrant_timeout: Duration::from_secs(10),
            resync: Duration::from_secs(300),
            wait_requeue: Duration::from_secs(15),
            deletion_timeout: Duration::from_secs(600),
            rewrite: None,
        }
    }
}

/// Reconciles one QdrantCollection (the function the Controller runs): adds the finalizer,
/// then syncs, or on deletion applies `deletionPolicy` and removes the finalizer.
pub async fn reconcile(qcol: Arc<QdrantCollection>, ctx: Arc<Context>) -> Result<Action> {
    let _measure = ctx.shared.metrics.reconcile_started();
    let ns = qcol.namespace().unwrap_or_else(|| "default".into());
    let api: Api<QdrantCollection> = Api::namespaced(ctx.shared.applier.client().clone(), &ns);
    ctx.shared
        .reconcile_with_finalizer(&api, crate::FINALIZER, qcol.clone(), |event| async {
            match event {
                FinalizerEvent::Apply(q) => sync(&q, &ctx).await,
                FinalizerEvent::Cleanup(q) => cleanup(&q, &ctx).await,
            }
        })
        .await
}

/// The error policy: count the error and requeue after this object's next backoff delay.
pub fn error_policy(qcol: Arc<QdrantCollection>, error: &Error, ctx: Arc<Context>) -> Action {
    ctx.shared.on_error(&*qcol, error)
}

async fn write_status(qcol: &QdrantCollection, ctx: &Context, outcome: &Outcome) -> Result<()> {
    let new = status::compute(qcol, outcome);
    if qcol.status.as_ref() != Some(&new) {
        ctx.shared.applier.apply_status(qcol, &new).await?;
    }
    Ok(())
}

async fn sync(qcol: &QdrantCollection, ctx: &Context) -> Result<Action> {
    if is_paused(&qcol.metadata) {
        write_status(qcol, ctx, &Outcome::Paused).await?;
        return Ok(Action::requeue(ctx.resync));
    }
    let default_name = qcol.name_any();
    if let Err(e) = validate_collection(&qcol.spec, qcol.spec.name_in_qdrant(&default_name)) {
        let msg = e.to_string();
        let already = qcol.status.as_ref().is_some_and(|s| {
            api_types::conditions::find_condition(&s.conditions, status::types::READY)
                .is_some_and(|c| c.message == msg)
        });
        write_status(qcol, ctx, &Outcome::Invalid(msg.clone())).await?;
        if !already {
            ctx.shared
                .events
                .warning(qcol, "InvalidSpec", "Validate", msg)
                .await;
        }
        return Ok(Action::requeue(ctx.resync));
    }
    let client = match dereference::resolve(
        qcol,
        ctx.shared.applier.client(),
        ctx.qdrant_timeout,
        ctx.rewrite.as_ref(),
    )
    .await?
    {
        Target::Ready(c) => c,
        Target::Waiting {
            reason, message, ..
        } => {
            write_status(
                qcol,
                ctx,
                &Outcome::Waiting {
                    reason: reason.into(),
                    message,
                },
            )
            .await?;
            return Ok(Action::requeue(ctx.wait_requeue));
        }
    };
    match sync_collection(qcol, ctx, &client).await {
        Ok(outcome) => {
            write_status(qcol, ctx, &outcome).await?;
            Ok(Action::requeue(ctx.resync))
        }
        Err(e) => {
            // Qdrant's own message goes into the conditions; transient errors also back off.
            let outcome = Outcome::QdrantError {
                reason: e.reason().into(),
                message: e.to_string(),
            };
            write_status(qcol, ctx, &outcome).await?;
            if e.is_transient() {
                Err(Error::Qdrant(e))
            } else {
                warn!(collection = %object_key(qcol), error = %e, "Qdrant refused the request");
                Ok(Action::requeue(ctx.resync))
            }
        }
    }
}

/// Creates the collection when missing, then converges settings, payload indexes and
/// aliases. Calls `GET /collections/{name}`, `GET /aliases` (only when aliases are managed),
/// and only the writes the diff asks for.
async fn sync_collection(
    qcol: &QdrantCollection,
    ctx: &Context,
    client: &QdrantClient,
) -> Result<Outcome, QdrantError> {
    let default_name = qcol.name_any();
    let name = qcol.spec.name_in_qdrant(&default_name).to_string();
    let mut wrote = false;
    let mut info = match client.collection_info(&name).await? {
        Some(info) => info,
        None => {
            client
                .create_collection(&name, &build::create_request(&qcol.spec))
                .await?;
            wrote = true;
            info!(collection = %object_key(qcol), %name, "collection created");
            ctx.shared
                .events
                .normal(
                    qcol,
                    "CollectionCreated",
                    "Create",
                    format!("created collection {name} in Qdrant"),
                )
                .await;
            client
                .collection_info(&name)
                .await?
                .ok_or_else(|| QdrantError::NotFound {
                    message: format!("collection {name} vanished right after it was created"),
                })?
        }
    };

    let managed_before = qcol
        .status
        .as_ref()
        .map(|s| s.aliases.clone())
        .unwrap_or_default();
    let manage_aliases = !qcol.spec.aliases.is_empty() || !managed_before.is_empty();
    let aliases: Vec<(String, String)> = if manage_aliases {
        client
            .list_aliases()
            .await?
            .into_iter()
            .map(|a| (a.alias_name, a.collection_name))
            .collect()
    } else {
        vec![]
    };
    // Payload indexes follow the same rule: matched only when declared now or before, so
    // adopting a collection never drops the indexes its application created.
    let indexes_before = qcol
        .status
        .as_ref()
        .map(|s| s.payload_indexes.clone())
        .unwrap_or_default();
    let manage_indexes = !qcol.spec.payload_indexes.is_empty() || !indexes_before.is_empty();
    let unmanaged = std::collections::BTreeMap::new();
    let payload_schema = if manage_indexes {
        &info.payload_schema
    } else {
        &unmanaged
    };
    let d = diff::diff(
        &qcol.spec,
        &name,
        &Actual {
            config: &info.config,
            payload_schema,
            aliases: &aliases,
        },
    );

    if d.needs_writes() {
        let mut changes = vec![];
        if let Some(update) = &d.update {
            client.update_collection(&name, update).await?;
            changes.push("settings updated".to_string());
        }
        for field in &d.delete_indexes {
            client.delete_payload_index(&name, field).await?;
            changes.push(format!("index {field} deleted"));
        }
        for (field, schema) in &d.create_indexes {
            client.create_payload_index(&name, field, schema).await?;
            changes.push(format!("index {field} created"));
        }
        if !d.alias_actions.is_empty() {
            client.update_aliases(&d.alias_actions).await?;
            changes.push("aliases updated".to_string());
        }
        wrote = true;
        let summary = changes.join(", ");
        info!(collection = %object_key(qcol), %name, %summary, "synced");
        ctx.shared
            .events
            .normal(qcol, "CollectionSynced", "Sync", summary)
            .await;
        if let Some(fresh) = client.collection_info(&name).await? {
            info = fresh;
        }
    }
    let first_drift =
        !d.drift.is_empty() && qcol.status.as_ref().is_none_or(|s| s.drift != d.drift);
    if first_drift {
        let fields: Vec<_> = d.drift.iter().map(|f| f.field.as_str()).collect();
        ctx.shared
            .events
            .warning(
                qcol,
                "ConfigDrift",
                "Compare",
                format!("cannot change in place: {}", fields.join(", ")),
            )
            .await;
    }
    let payload_indexes = qcol
        .spec
        .payload_indexes
        .iter()
        .map(|i| i.field.clone())
        .collect();
    Ok(Outcome::Synced {
        name,
        info: Box::new(info),
        drift: d.drift,
        wrote,
        aliases: qcol.spec.aliases.clone(),
        payload_indexes,
    })
}

/// Deletion: Retain leaves the collection; Delete deletes it. A Qdrant that cannot be
/// reached is retried with backoff until `deletion_timeout` after the deletion request (or at
/// once when the QdrantCluster itself is gone); then the finalizer is removed anyway with a
/// Warning event, leaving the collection in place.
async fn cleanup(qcol: &QdrantCollection, ctx: &Context) -> Result<Action> {
    let default_name = qcol.name_any();
    let name = qcol.spec.name_in_qdrant(&default_name).to_string();
    if qcol.spec.deletion_policy == DeletionPolicy::Retain {
        ctx.shared
            .events
            .normal(
                qcol,
                "CollectionRetained",
                "Delete",
                format!("deletionPolicy Retain: collection {name} stays in Qdrant"),
            )
            .await;
        return Ok(Action::await_change());
    }
    write_status(qcol, ctx, &Outcome::Deleting { name: name.clone() }).await?;
    let overdue = qcol.metadata.deletion_timestamp.as_ref().is_some_and(|t| {
        let age = jiff::Timestamp::now().duration_since(t.0);
        age.as_secs_f64() >= ctx.deletion_timeout.as_secs_f64()
    });
    let target = match dereference::resolve(
        qcol,
        ctx.shared.applier.client(),
        ctx.qdrant_timeout,
        ctx.rewrite.as_ref(),
    )
    .await
    {
        Ok(t) => t,
        Err(e) if overdue => return give_up(qcol, ctx, &name, e.to_string()).await,
        Err(e) => return Err(e),
    };
    let client = match target {
        Target::Ready(c) => c,
        Target::Waiting {
            message,
            cluster_gone: true,
            ..
        } => return give_up(qcol, ctx, &name, message).await,
        Target::Waiting { message, .. } if overdue => {
            return give_up(qcol, ctx, &name, message).await;
        }
        Target::Waiting { message, .. } => return Err(Error::Waiting(message)),
    };
    match client.delete_collection(&name).await {
        Ok(_) => {
            ctx.shared
                .events
                .normal(
                    qcol,
                    "CollectionDeleted",
                    "Delete",
                    format!("deletionPolicy Delete: collection {name} deleted from Qdrant"),
                )
                .await;
            Ok(Action::await_change())
        }
        Err(e) if e.is_transient() && !overdue => Err(Error::Qdrant(e)),
        Err(e) => give_up(qcol, ctx, &name, e.to_string()).await,
    }
}

/// Ends a deletion that cannot delete: a Warning event, the finalizer goes, the data stays.
async fn give_up(
    qcol: &QdrantCollection,
    ctx: &Context,
    name: &str,
    why: String,
) -> Result<Action> {
    ctx.shared
        .events
        .warning(
            qcol,
            "CollectionNotDeleted",
            "Delete",
            format!("collection {name} was not deleted: {why}"),
        )
        .await;
    Ok(Action::await_change())
}
