//! One object the controller cannot decode never stalls it for every other object.
//!
//! kube decodes a whole list (and each watch event) at once: a single stored object that does
//! not fit the Rust type (an integer past its range written before the CRD bounded it, a
//! field of the wrong type written with validation off) would fail every list of the kind and
//! stop the controller's watch for all objects. Controllers therefore watch
//! [`DeserializeGuard`]`<K>` (kube's error boundary: the object, or its metadata and the
//! decoding error) and hand the decodable ones to their reconcile; an undecodable one gets a
//! Warning event naming the error ([`invalid_object`]) and is left alone until it changes.

use std::{future::Future, sync::Arc};

use futures::future::BoxFuture;
use kube::{
    Resource,
    core::{DeserializeGuard, error_boundary::InvalidObject},
    runtime::controller::Action,
};

use crate::{
    context::Shared,
    error::{Error, Result},
};

/// Reason of the Warning event on an object the controller cannot decode.
pub const INVALID_OBJECT: &str = "InvalidObject";

/// Reports an object that failed to decode: a Warning event [`INVALID_OBJECT`] on it (from
/// its metadata) whose note is `the object cannot be decoded (fix or delete it): <error>`
/// (serde's message names the field, e.g. `invalid value: integer `5000000000`, expected i32`),
/// a failed-reconcile metric with that reason, and a log line. Returns
/// [`Action::await_change`]: nothing is retried until the object is edited.
pub async fn invalid_object<K>(
    shared: &Shared,
    obj: &DeserializeGuard<K>,
    invalid: &InvalidObject,
) -> Action
where
    K: Resource<DynamicType = ()>,
{
    let key = crate::context::object_key(obj);
    tracing::warn!(object = %key, error = %invalid.error, "cannot decode the object; ignoring it until it changes");
    shared.metrics.reconcile_failed(INVALID_OBJECT);
    shared
        .events
        .warning(
            obj,
            INVALID_OBJECT,
            "Decode",
            format!(
                "the object cannot be decoded (fix or delete it): {}",
                invalid.error
            ),
        )
        .await;
    Action::await_change()
}

/// The decodable object of `guarded`, or the decoding error.
pub fn decoded<K: Clone>(guarded: &Arc<DeserializeGuard<K>>) -> Result<Arc<K>, &InvalidObject> {
    match &guarded.0 {
        Ok(obj) => Ok(Arc::new(obj.clone())),
        Err(invalid) => Err(invalid),
    }
}

/// The reconcile function for a `Controller` of [`DeserializeGuard`]`<K>`: `reconcile` for a
/// decodable object, [`invalid_object`] (through the context's [`Shared`], found by `shared`)
/// for one that is not.
pub fn reconciler<K, C, F, Fut>(
    reconcile: F,
    shared: fn(&C) -> &Shared,
) -> impl Fn(Arc<DeserializeGuard<K>>, Arc<C>) -> BoxFuture<'static, Result<Action>>
where
    K: Resource<DynamicType = ()> + Clone + Send + Sync + 'static,
    C: Send + Sync + 'static,
    F: Fn(Arc<K>, Arc<C>) -> Fut + Clone + Send + Sync + 'static,
    Fut: Future<Output = Result<Action>> + Send + 'static,
{
    move |obj, ctx| {
        let reconcile = reconcile.clone();
        Box::pin(async move {
            match decoded(&obj) {
                Ok(k) => reconcile(k, ctx).await,
                Err(invalid) => Ok(invalid_object(shared(&ctx), &obj, invalid).await),
            }
        })
    }
}

/// The error policy for a `Controller` of [`DeserializeGuard`]`<K>`: `policy` for a decodable
/// object, the shared backoff ([`Shared::on_error`]) otherwise.
pub fn error_policy<K, C>(
    policy: fn(Arc<K>, &Error, Arc<C>) -> Action,
    shared: fn(&C) -> &Shared,
) -> impl Fn(Arc<DeserializeGuard<K>>, &Error, Arc<C>) -> Action
where
    K: Resource<DynamicType = ()> + Clone,
{
    move |obj: Arc<DeserializeGuard<K>>, error: &Error, ctx: Arc<C>| match decoded(&obj) {
        Ok(k) => policy(k, error, ctx),
        Err(_) => shared(&ctx).on_error(&*obj, error),
    }
}

/// Drives a Controller's result stream to its end (the controller's graceful shutdown): a
/// debug line per reconciled object, a warning per failed reconcile (the error policy has
/// already counted and requeued it). Every controller's `run` ends with it.
pub async fn drain<K, S>(results: S)
where
    K: Resource + std::fmt::Debug,
    S: futures::Stream<
            Item = std::result::Result<
                (kube::runtime::reflector::ObjectRef<K>, Action),
                kube::runtime::controller::Error<Error, kube::runtime::watcher::Error>,
            >,
        >,
{
    use futures::StreamExt;
    results
        .for_each(|res| async move {
            match res {
                Ok((obj, _)) => tracing::debug!(object = %obj, "reconciled"),
                Err(e) => tracing::warn!(error = %e, "reconcile error"),
            }
        })
        .await;
}
