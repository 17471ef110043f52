//! One reconcile of a QdrantCollection, as a named pipeline:
//! validate -> dereference -> claim ([`crate::ownership`]) -> build -> diff -> apply -> update
//! status.
//!
//! Validate, claim, build and diff never touch the network. A resync of a collection that
//! matches its spec sends one read to Qdrant (two when aliases are declared) and no write,
//! and leaves the status untouched. A collection owned by another object is read, never
//! written. Deletion runs through the finalizer [`crate::FINALIZER`] and honours
//! `deletionPolicy`, for a collection this object owns only.

use std::{sync::Arc, time::Duration};

use api_types::{
    QdrantCollection,
    collection::{DeletionPolicy, QdrantCollectionSpec},
    is_paused,
    validation::validate_collection,
};
use kube::{
    Api, ResourceExt,
    runtime::{controller::Action, finalizer::Event as FinalizerEvent},
};
use reconcile_lib::{
    context::{Shared, object_key},
    error::{Error, Result},
    metrics::Metrics,
    qdrant::{CollectionInfo, QdrantClient, QdrantError},
};
use serde_json::Value;
use tracing::{info, warn};

use crate::{
    build,
    dereference::{self, EndpointRewrite, Target},
    diff::{self, Actual},
    memory,
    ownership::{self, Claim, Declared, Owner},
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

/// True when the status's Ready condition already carries `message` (an event for it was sent).
fn ready_message_is(qcol: &QdrantCollection, message: &str) -> bool {
    qcol.status.as_ref().is_some_and(|s| {
        api_types::conditions::find_condition(&s.conditions, status::types::READY)
            .is_some_and(|c| c.message == message)
    })
}

async fn sync(qcol: &QdrantCollection, ctx: &Context) -> Result<Action> {
    if is_paused(&qcol.metadata) {
        write_status(qcol, ctx, &Outcome::Paused).await?;
        return Ok(Action::requeue(ctx.resync));
    }
    let default_name = qcol.name_any();
    if let Err(e) = validate_collection(&qcol.spec, qcol.spec.name_in_qdrant(&default_name)) {
        let msg = e.to_string();
        let already = ready_message_is(qcol, &msg);
        write_status(qcol, ctx, &Outcome::Invalid(msg.clone())).await?;
        if !already {
            ctx.shared
                .events
                .warning(qcol, "InvalidSpec", "Validate", msg)
                .await;
        }
        return Ok(Action::requeue(ctx.resync));
    }
    let (client, upgrading_from) = match resolve(qcol, ctx).await? {
        Target::Ready {
            client,
            upgrading_from,
        } => (client, upgrading_from),
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
    match sync_collection(qcol, ctx, &client, upgrading_from.as_deref()).await {
        Ok(Outcome::NeedsNewerQdrant(msg)) => {
            let already = ready_message_is(qcol, &msg);
            write_status(qcol, ctx, &Outcome::NeedsNewerQdrant(msg.clone())).await?;
            if !already {
                warn!(collection = %object_key(qcol), message = %msg, "placement needs a newer Qdrant");
                ctx.shared
                    .events
                    .warning(qcol, status::NEEDS_NEWER_QDRANT, "Sync", msg)
                    .await;
            }
            Ok(Action::requeue(ctx.resync))
        }
        Ok(outcome) => {
            if let Outcome::OwnedByAnotherObject { name, owner } = &outcome {
                // Warn once per owner, not at every resync.
                let msg = status::owned_elsewhere(name, owner);
                if !ready_message_is(qcol, &msg) {
                    warn!(collection = %object_key(qcol), %name, %owner, "owned by another object");
                    ctx.shared
                        .events
                        .warning(qcol, status::OWNED_BY_ANOTHER_OBJECT, "Sync", msg)
                        .await;
                }
            }
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

/// Creates the collection when missing (marked as owned by `qcol`), adopts an unmarked one,
/// refuses one marked by another object ([`Outcome::OwnedByAnotherObject`], no write), then
/// converges settings, payload indexes and aliases. Calls `GET /collections/{name}`, `GET
/// /aliases` (only when aliases are declared now or were before), and only the writes the
/// diff asks for. The declared record ([`ownership::DECLARED_KEY`]) is widened before any
/// index or alias write (in the same `PATCH` as the settings) and narrowed to the spec after
/// the deletions succeeded, so nothing the operator created is ever unrecorded while it
/// exists.
async fn sync_collection(
    qcol: &QdrantCollection,
    ctx: &Context,
    client: &QdrantClient,
    upgrading_from: Option<&str>,
) -> Result<Outcome, QdrantError> {
    let default_name = qcol.name_any();
    let name = qcol.spec.name_in_qdrant(&default_name).to_string();
    let Some(me) = Owner::of(qcol) else {
        return Ok(Outcome::Invalid(
            "metadata.uid is missing: the owner of a collection is recorded by uid".into(),
        ));
    };
    let spec = match spec_for_server(&qcol.spec, client, upgrading_from).await? {
        Ok(spec) => spec,
        Err(unsupported) => return Ok(Outcome::NeedsNewerQdrant(unsupported.to_string())),
    };
    let desired = Declared::of(&qcol.spec);
    let mut wrote = false;
    let mut changes = vec![];
    // What the collection's record says this object declared, and whether it must be
    // (re)marked; `None` for a collection adopted now (nothing declared before).
    let (mut info, recorded) = match client.collection_info(&name).await? {
        Some(info) => match ownership::claim(&info.config, &me) {
            Claim::Ours(declared) => (info, Some(declared)),
            Claim::Unmarked => (info, None),
            Claim::Foreign(owner) => return Ok(Outcome::OwnedByAnotherObject { name, owner }),
        },
        None => {
            let mut body = build::create_request(&spec);
            body["metadata"] = ownership::mark(&me, &desired);
            client.create_collection(&name, &body).await?;
            wrote = true;
            info!(collection = %object_key(qcol), %name, "collection created");
            ctx.shared
                .events
                .normal(
                    qcol,
                    "CollectionCreated",
                    "Create",
                    format!("created collection {name} in Qdrant, marked as owned by {me}"),
                )
                .await;
            let info =
                client
                    .collection_info(&name)
                    .await?
                    .ok_or_else(|| QdrantError::NotFound {
                        message: format!("collection {name} vanished right after it was created"),
                    })?;
            kept_the_mark(&name, &info, &me)?;
            (info, Some(desired.clone()))
        }
    };
    let adopting = recorded.is_none();
    let before = recorded.clone().unwrap_or_default();
    // Recorded while the writes run: what was declared before and what is declared now.
    let during = before.union(&desired);

    let aliases: Vec<(String, String)> = if during.aliases.is_empty() {
        vec![]
    } else {
        client
            .list_aliases()
            .await?
            .into_iter()
            .map(|a| (a.alias_name, a.collection_name))
            .collect()
    };
    let d = diff::diff(
        &spec,
        &name,
        &Actual {
            config: &info.config,
            payload_schema: &info.payload_schema,
            aliases: &aliases,
            declared: &before,
        },
    );

    let mut update = d.update.clone();
    if recorded.as_ref() != Some(&during) {
        let body = update.get_or_insert_with(|| serde_json::json!({}));
        body["metadata"] = ownership::mark(&me, &during);
    }
    if let Some(update) = &update {
        client.update_collection(&name, update).await?;
        wrote = true;
        if d.update.is_some() {
            changes.push("settings updated".to_string());
        }
        if adopting {
            info!(collection = %object_key(qcol), %name, "collection adopted");
            ctx.shared
                .events
                .normal(
                    qcol,
                    "CollectionAdopted",
                    "Adopt",
                    format!(
                        "collection {name} existed in Qdrant without an owner: adopted, marked \
                         as owned by {me}; its indexes and aliases the spec does not list stay"
                    ),
                )
                .await;
        }
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
    if during != desired {
        let body = serde_json::json!({"metadata": ownership::mark(&me, &desired)});
        client.update_collection(&name, &body).await?;
        wrote = true;
    }
    if d.needs_writes() {
        wrote = true;
        let summary = changes.join(", ");
        info!(collection = %object_key(qcol), %name, %summary, "synced");
        ctx.shared
            .events
            .normal(qcol, "CollectionSynced", "Sync", summary)
            .await;
    }
    if (update.is_some() || d.needs_writes())
        && let Some(fresh) = client.collection_info(&name).await?
    {
        if adopting {
            kept_the_mark(&name, &fresh, &me)?;
        }
        info = fresh;
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

/// Checks that Qdrant kept the owner mark just written (a Qdrant without collection
/// metadata drops it silently, and would be re-adopted at every resync and never deleted).
///
/// # Errors
/// `UnexpectedResponse` (permanent) naming the metadata key when the mark is not there.
fn kept_the_mark(name: &str, info: &CollectionInfo, me: &Owner) -> Result<(), QdrantError> {
    if matches!(ownership::claim(&info.config, me), Claim::Ours(_)) {
        return Ok(());
    }
    Err(QdrantError::UnexpectedResponse {
        status: 200,
        detail: format!(
            "collection {name} does not keep the owner mark {} in its metadata (collection \
             metadata needs a Qdrant that supports it, such as 1.18)",
            ownership::OWNER_KEY
        ),
        body: info
            .config
            .get("metadata")
            .map_or_else(|| "no metadata".into(), Value::to_string),
    })
}

/// Deletion. Only a collection marked as owned by this object ([`ownership::OWNER_KEY`]) is
/// touched. Retain leaves the collection and removes the mark (`PATCH /collections/{name}`
/// `{"metadata": {owner: null, declared: null}}`, one try), so another QdrantCollection can
/// adopt it later. Delete reads the collection (`GET /collections/{name}`) and deletes it
/// (`DELETE /collections/{name}`) only when this object owns it: one owned by another
/// object, or without a mark, stays in Qdrant (Warning event `CollectionNotDeleted` naming
/// the owner) and the finalizer is removed all the same. A Qdrant that cannot be reached is
/// retried with backoff until `deletion_timeout` after the deletion request (or at once when
/// the QdrantCluster itself is gone); then the finalizer is removed anyway with a Warning
/// event, leaving the collection in place.
async fn cleanup(qcol: &QdrantCollection, ctx: &Context) -> Result<Action> {
    let default_name = qcol.name_any();
    let name = qcol.spec.name_in_qdrant(&default_name).to_string();
    if qcol.spec.deletion_policy == DeletionPolicy::Retain {
        let note = match release(qcol, ctx, &name).await {
            Ok(true) => format!(
                "deletionPolicy Retain: collection {name} stays in Qdrant; its owner mark was \
                 removed, so another QdrantCollection can adopt it"
            ),
            Ok(false) => format!("deletionPolicy Retain: collection {name} stays in Qdrant"),
            Err(why) => format!(
                "deletionPolicy Retain: collection {name} stays in Qdrant, still marked as owned \
                 by this object ({why}); another QdrantCollection is refused it until its \
                 metadata key {key} is removed",
                key = ownership::OWNER_KEY
            ),
        };
        ctx.shared
            .events
            .normal(qcol, "CollectionRetained", "Delete", note)
            .await;
        return Ok(Action::await_change());
    }
    write_status(qcol, ctx, &Outcome::Deleting { name: name.clone() }).await?;
    let overdue = qcol.metadata.deletion_timestamp.as_ref().is_some_and(|t| {
        let age = jiff::Timestamp::now().duration_since(t.0);
        age.as_secs_f64() >= ctx.deletion_timeout.as_secs_f64()
    });
    let target = match resolve(qcol, ctx).await {
        Ok(t) => t,
        Err(e) if overdue => return give_up(qcol, ctx, &name, e.to_string()).await,
        Err(e) => return Err(e),
    };
    let client = match target {
        Target::Ready { client, .. } => client,
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
    let claim = match client.collection_info(&name).await {
        Ok(None) => return Ok(Action::await_change()),
        Ok(Some(info)) => match Owner::of(qcol) {
            Some(me) => ownership::claim(&info.config, &me),
            None => Claim::Unmarked,
        },
        Err(e) if e.is_transient() && !overdue => return Err(Error::Qdrant(e)),
        Err(e) => return give_up(qcol, ctx, &name, e.to_string()).await,
    };
    match claim {
        Claim::Ours(_) => {}
        Claim::Foreign(owner) => {
            let why = format!("it is owned by QdrantCollection {owner}");
            return give_up(qcol, ctx, &name, why).await;
        }
        Claim::Unmarked => {
            let why = format!(
                "it carries no owner mark (metadata key {}): only a collection this object \
                 created or adopted is deleted",
                ownership::OWNER_KEY
            );
            return give_up(qcol, ctx, &name, why).await;
        }
    }
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

/// Removes this object's owner mark and declared record from collection `name` (deletion with
/// Retain): `Ok(true)` when removed, `Ok(false)` when there was nothing of this object's to
/// remove (no such collection, unmarked, or owned by another object), `Err` with the reason
/// when Qdrant could not be asked.
async fn release(qcol: &QdrantCollection, ctx: &Context, name: &str) -> Result<bool, String> {
    let Some(me) = Owner::of(qcol) else {
        return Ok(false);
    };
    let client = match resolve(qcol, ctx).await.map_err(|e| e.to_string())? {
        Target::Ready { client, .. } => client,
        Target::Waiting { message, .. } => return Err(message),
    };
    let Some(info) = client
        .collection_info(name)
        .await
        .map_err(|e| e.to_string())?
    else {
        return Ok(false);
    };
    if !matches!(ownership::claim(&info.config, &me), Claim::Ours(_)) {
        return Ok(false);
    }
    let body = serde_json::json!({"metadata": ownership::release()});
    client
        .update_collection(name, &body)
        .await
        .map_err(|e| e.to_string())?;
    Ok(true)
}

/// The spec as the target can take it ([`memory::for_server`]). Only a spec that sets a
/// `memory` placement asks the server its version (`GET /`); during a QdrantCluster's rolling
/// upgrade the older of that and the version the pods move from counts (a tag that is not a
/// version, e.g. `latest`, counts as older than 1.19), so no 1.19-only field is sent while a
/// peer may still run the old version.
async fn spec_for_server<'a>(
    spec: &'a QdrantCollectionSpec,
    client: &QdrantClient,
    upgrading_from: Option<&str>,
) -> Result<Result<std::borrow::Cow<'a, QdrantCollectionSpec>, memory::Unsupported>, QdrantError> {
    if !memory::uses_memory(spec) {
        return Ok(Ok(std::borrow::Cow::Borrowed(spec)));
    }
    let served = client.version().await?.version;
    let mut version = memory::parse_version(&served).unwrap_or((0, 0));
    let mut text = served;
    if let Some(from) = upgrading_from {
        let old = memory::parse_version(from).unwrap_or((0, 0));
        if old < version {
            version = old;
            text = format!("{from}, the version a rolling upgrade moves from");
        }
    }
    Ok(memory::for_server(spec, version, &text))
}

/// The Qdrant `qcol` targets (see [`dereference::resolve`]).
async fn resolve(qcol: &QdrantCollection, ctx: &Context) -> Result<Target> {
    dereference::resolve(
        qcol,
        ctx.shared.applier.client(),
        ctx.qdrant_timeout,
        ctx.rewrite.as_ref(),
    )
    .await
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
