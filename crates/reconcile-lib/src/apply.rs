//! Server-side apply of owned children, with one field manager per controller.
//!
//! Idempotency: every applied object carries [`APPLIED_HASH_ANNOTATION`], a hash of what we
//! applied. Before applying, the live object is read: when its hash is that of the desired
//! object and every field we set still has our value ([`is_subset`]), no write is sent, so a
//! second reconcile of an unchanged object issues reads only. Otherwise the whole desired
//! object is applied with `force`: a field edited behind our back is taken back, and a field
//! we no longer send (a removed annotation, toleration or env var) is removed by the API
//! server, as server-side apply does for the fields a manager stops applying. The hash is what
//! makes removals visible: a desired object without a field is still a subset of a live one
//! that has it.

use std::fmt::Debug;

use k8s_openapi::NamespaceResourceScope;
use kube::{
    Api, Client, Resource, ResourceExt,
    api::{DeleteParams, Patch, PatchParams, PostParams},
};
use serde::{Serialize, de::DeserializeOwned};
use serde_json::Value;

use crate::error::{Error, Result};

/// Annotation on every object [`Applier::apply`] writes: the hex SHA-256 of the desired
/// object as applied (JSON, without this annotation), first 16 bytes.
pub const APPLIED_HASH_ANNOTATION: &str = "qdrant.operator.dev/applied-hash";

/// What [`Applier::apply`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// The object did not exist and was created.
    Created,
    /// The object differed from the desired state and was patched.
    Updated,
    /// The object already matched; nothing was written.
    Unchanged,
}

/// Applies desired objects in their namespace with the controller's field manager.
#[derive(Clone)]
pub struct Applier {
    client: Client,
    field_manager: String,
}

impl Applier {
    /// An applier writing as `field_manager` (e.g. `qdrant-cluster-controller`).
    pub fn new(client: Client, field_manager: impl Into<String>) -> Self {
        Self {
            client,
            field_manager: field_manager.into(),
        }
    }

    /// The field manager name.
    pub fn field_manager(&self) -> &str {
        &self.field_manager
    }

    /// The client.
    pub fn client(&self) -> &Client {
        &self.client
    }

    fn api<K>(&self, obj: &K) -> Result<Api<K>>
    where
        K: Resource<DynamicType = (), Scope = NamespaceResourceScope>,
    {
        let ns = obj.meta().namespace.as_deref().ok_or_else(|| {
            Error::InvalidSpec(format!(
                "{} has no namespace",
                obj.meta().name.as_deref().unwrap_or("object")
            ))
        })?;
        Ok(Api::namespaced(self.client.clone(), ns))
    }

    /// Server-side applies `desired` (namespaced; must carry apiVersion and kind, as
    /// k8s-openapi types do) with [`APPLIED_HASH_ANNOTATION`] added, unless the live object
    /// carries the same hash and still holds every field of it (see the module docs).
    /// Calls `GET` and, when needed, `PATCH` (`application/apply-patch+yaml`, force).
    ///
    /// Errors: the API server's answer as [`Error::Kube`]; a desired object that does not
    /// serialize as [`Error::Serialization`].
    pub async fn apply<K>(&self, desired: &K) -> Result<(K, Outcome)>
    where
        K: Resource<DynamicType = (), Scope = NamespaceResourceScope>
            + Serialize
            + DeserializeOwned
            + Clone
            + Debug,
    {
        let api = self.api(desired)?;
        let name = desired.name_any();
        let mut desired = desired.clone();
        let hash = applied_hash(&serde_json::to_value(&desired)?);
        desired
            .meta_mut()
            .annotations
            .get_or_insert_with(Default::default)
            .insert(APPLIED_HASH_ANNOTATION.to_string(), hash.clone());
        let live = api.get_opt(&name).await?;
        if let Some(live) = &live {
            let same_hash = live.annotations().get(APPLIED_HASH_ANNOTATION) == Some(&hash);
            if same_hash
                && is_subset(
                    &serde_json::to_value(&desired)?,
                    &serde_json::to_value(live)?,
                )
            {
                return Ok((live.clone(), Outcome::Unchanged));
            }
        }
        let params = PatchParams::apply(&self.field_manager).force();
        let applied = api.patch(&name, &params, &Patch::Apply(&desired)).await?;
        let outcome = if live.is_some() {
            Outcome::Updated
        } else {
            Outcome::Created
        };
        Ok((applied, outcome))
    }

    /// Creates `obj` when no object of that name exists and returns the live object; never
    /// overwrites (for generated secrets, which must not change once created). A concurrent
    /// create (409 AlreadyExists) reads the winner.
    pub async fn create_if_missing<K>(&self, obj: &K) -> Result<(K, Outcome)>
    where
        K: Resource<DynamicType = (), Scope = NamespaceResourceScope>
            + Serialize
            + DeserializeOwned
            + Clone
            + Debug,
    {
        let api = self.api(obj)?;
        let name = obj.name_any();
        if let Some(live) = api.get_opt(&name).await? {
            return Ok((live, Outcome::Unchanged));
        }
        let pp = PostParams {
            field_manager: Some(self.field_manager.clone()),
            ..PostParams::default()
        };
        match api.create(&pp, obj).await {
            Ok(created) => Ok((created, Outcome::Created)),
            Err(kube::Error::Api(s)) if s.code == 409 => {
                Ok((api.get(&name).await?, Outcome::Unchanged))
            }
            Err(e) => Err(e.into()),
        }
    }

    /// Deletes the object `name` in `namespace` if it exists and is controlled by the owner
    /// with `owner_uid` (objects we did not create are left alone). Returns true when a
    /// delete was sent.
    pub async fn delete_owned<K>(
        &self,
        namespace: &str,
        name: &str,
        owner_uid: &str,
    ) -> Result<bool>
    where
        K: Resource<DynamicType = (), Scope = NamespaceResourceScope>
            + DeserializeOwned
            + Clone
            + Debug,
    {
        let api: Api<K> = Api::namespaced(self.client.clone(), namespace);
        let Some(live) = api.get_opt(name).await? else {
            return Ok(false);
        };
        if !controlled_by(&live, owner_uid) {
            return Ok(false);
        }
        delete_if_present(&api, name).await
    }

    /// Deletes the orphans among the objects of kind `K` in `namespace` that match
    /// `selector` (a label selector, e.g. the instance labels) and are controlled by the
    /// owner with `owner_uid`: every such object whose name is not in `keep` (the children
    /// built this reconcile). Objects of another owner, or none, are left alone. Lists once
    /// (`GET` with `labelSelector`), then one `DELETE` (background) per orphan. Returns the
    /// deleted names.
    ///
    /// Meant for children that are rebuilt every reconcile (ConfigMaps, Services,
    /// PodDisruptionBudgets), never for StatefulSets, Secrets or PersistentVolumeClaims,
    /// which hold state.
    ///
    /// # Errors
    /// The API server's, when listing or deleting (a 404 on delete is not an error).
    pub async fn sweep_owned<K>(
        &self,
        namespace: &str,
        selector: &str,
        owner_uid: &str,
        keep: &[&str],
    ) -> Result<Vec<String>>
    where
        K: Resource<DynamicType = (), Scope = NamespaceResourceScope>
            + DeserializeOwned
            + Clone
            + Debug,
    {
        let api: Api<K> = Api::namespaced(self.client.clone(), namespace);
        let listed = api
            .list(&kube::api::ListParams::default().labels(selector))
            .await?;
        let mut deleted = vec![];
        for obj in listed.items {
            let name = obj.name_any();
            if controlled_by(&obj, owner_uid)
                && !keep.contains(&name.as_str())
                && delete_if_present(&api, &name).await?
            {
                deleted.push(name);
            }
        }
        Ok(deleted)
    }

    /// Server-side applies `status` to the status subresource of `obj` (a namespaced custom
    /// resource). Callers send it only when it changed, so an unchanged object sees no write.
    pub async fn apply_status<K, S>(&self, obj: &K, status: &S) -> Result<K>
    where
        K: Resource<DynamicType = (), Scope = NamespaceResourceScope>
            + DeserializeOwned
            + Clone
            + Debug,
        S: Serialize,
    {
        self.apply_status_at(obj, status, None).await
    }

    /// [`Self::apply_status`] with an optimistic-concurrency precondition: with
    /// `Some(resource_version)`, the apply configuration carries `metadata.resourceVersion`, so
    /// the API server answers 409 Conflict (`Error::Kube` with an `Api` 409) when the object
    /// changed since that version was read, and writes nothing.
    pub async fn apply_status_at<K, S>(
        &self,
        obj: &K,
        status: &S,
        resource_version: Option<&str>,
    ) -> Result<K>
    where
        K: Resource<DynamicType = (), Scope = NamespaceResourceScope>
            + DeserializeOwned
            + Clone
            + Debug,
        S: Serialize,
    {
        let api = self.api(obj)?;
        let mut patch = serde_json::json!({
            "apiVersion": K::api_version(&()),
            "kind": K::kind(&()),
            "status": status,
        });
        if let Some(rv) = resource_version {
            patch["metadata"] = serde_json::json!({ "resourceVersion": rv });
        }
        let params = PatchParams::apply(&self.field_manager).force();
        Ok(api
            .patch_status(&obj.name_any(), &params, &Patch::Apply(&patch))
            .await?)
    }
}

/// True when the owner with `owner_uid` is `obj`'s controller (`ownerReferences[].controller`).
fn controlled_by<K: Resource>(obj: &K, owner_uid: &str) -> bool {
    obj.owner_references()
        .iter()
        .any(|o| o.uid == owner_uid && o.controller == Some(true))
}

/// `DELETE` (background) of `name`: `Ok(true)` when sent, `Ok(false)` when it was gone (404).
async fn delete_if_present<K>(api: &Api<K>, name: &str) -> Result<bool>
where
    K: Resource<DynamicType = ()> + DeserializeOwned + Clone + Debug,
{
    match api.delete(name, &DeleteParams::background()).await {
        Ok(_) => Ok(true),
        Err(kube::Error::Api(s)) if s.code == 404 => Ok(false),
        Err(e) => Err(e.into()),
    }
}

/// [`APPLIED_HASH_ANNOTATION`]'s value for a desired object (its JSON, with any existing
/// hash annotation left out): 32 hex characters.
pub fn applied_hash(desired: &Value) -> String {
    use sha2::{Digest, Sha256};
    let mut v = desired.clone();
    if let Some(annotations) = v
        .pointer_mut("/metadata/annotations")
        .and_then(Value::as_object_mut)
    {
        annotations.remove(APPLIED_HASH_ANNOTATION);
    }
    let digest = Sha256::digest(v.to_string().as_bytes());
    digest[..16].iter().map(|b| format!("{b:02x}")).collect()
}

/// True when every field set in `desired` has the same value in `live`. Fields only the live
/// object has (defaults, other managers' fields, status) are ignored; an empty or null desired
/// field matches an absent one; lists must have the same length and match element-wise;
/// numbers compare by value (`1` equals `1.0`).
pub fn is_subset(desired: &Value, live: &Value) -> bool {
    match (desired, live) {
        (Value::Object(d), Value::Object(l)) => d.iter().all(|(k, dv)| match l.get(k) {
            Some(lv) => is_subset(dv, lv),
            None => is_empty(dv),
        }),
        (Value::Array(d), Value::Array(l)) => {
            d.len() == l.len() && d.iter().zip(l).all(|(a, b)| is_subset(a, b))
        }
        (Value::Number(a), Value::Number(b)) => a == b || a.as_f64() == b.as_f64(),
        (d, Value::Null) => is_empty(d),
        (d, l) => d == l,
    }
}

fn is_empty(v: &Value) -> bool {
    match v {
        Value::Null => true,
        Value::Array(a) => a.is_empty(),
        Value::Object(o) => o.values().all(is_empty),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn subset_ignores_extra_live_fields_and_empties() {
        let desired = json!({"metadata": {"name": "a", "labels": {"x": "1"}, "annotations": {}}, "spec": {"ports": [{"port": 6333}]}});
        let live = json!({"metadata": {"name": "a", "uid": "u", "labels": {"x": "1", "y": "2"}}, "spec": {"ports": [{"port": 6333, "protocol": "TCP"}], "clusterIP": "10.0.0.1"}});
        assert!(is_subset(&desired, &live));
    }

    #[test]
    fn subset_detects_changed_missing_and_reordered() {
        let desired = json!({"spec": {"replicas": 3, "ports": [{"port": 1}, {"port": 2}]}});
        assert!(!is_subset(
            &desired,
            &json!({"spec": {"replicas": 2, "ports": [{"port": 1}, {"port": 2}]}})
        ));
        assert!(!is_subset(
            &desired,
            &json!({"spec": {"ports": [{"port": 1}, {"port": 2}]}})
        ));
        assert!(!is_subset(
            &desired,
            &json!({"spec": {"replicas": 3, "ports": [{"port": 2}, {"port": 1}]}})
        ));
        assert!(!is_subset(
            &desired,
            &json!({"spec": {"replicas": 3, "ports": [{"port": 1}]}})
        ));
        assert!(is_subset(&json!({"a": 1}), &json!({"a": 1.0})));
        assert!(!is_subset(&json!({"a": "1"}), &json!({"a": 1})));
    }
}
