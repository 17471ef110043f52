//! Volume expansion: when `spec.persistence.size` grows, grow each peer's
//! PersistentVolumeClaim.
//!
//! The StatefulSet's `volumeClaimTemplates` are immutable, so the StatefulSet keeps its live
//! templates (see [`crate::build::Observed`]) and the operator patches the claims
//! `storage-<cluster>-<ordinal>` themselves; Kubernetes (the external resizer and the kubelet)
//! then grows the volume and its file system. Two parts, as everywhere in this crate:
//!
//! - [`plan`] is pure: from the observed claims and StorageClasses it decides which claims to
//!   patch to which size, which claims are still resizing (and what they wait for), or why the
//!   expansion is refused: a shrink ([`SHRINK_REFUSED`]) or a StorageClass that does not allow
//!   expansion ([`EXPANSION_NOT_SUPPORTED`]).
//! - [`expand`] reads the claims and StorageClasses, patches the claims that must grow, emits
//!   events and returns a [`VolumesProgress`] for the status.
//!
//! Which StorageClass decides: Kubernetes' own admission check (the `PersistentVolumeClaimResize`
//! plugin) lets a claim grow only when it is `Bound` and its class (the annotation
//! `volume.beta.kubernetes.io/storage-class`, else `spec.storageClassName`) is a non-empty name
//! of a StorageClass with `allowVolumeExpansion: true`. The planner applies the same rule, so a
//! refusal is reported before a patch would be rejected. A claim without a class name is judged
//! by the default StorageClass (annotation `storageclass.kubernetes.io/is-default-class:
//! "true"`, the newest one when several are marked) only while it is not bound yet, because
//! Kubernetes assigns the default class to such a claim before binding it; a bound claim without
//! a class is a pre-provisioned volume that Kubernetes never expands.

use std::{
    collections::{BTreeMap, BTreeSet},
    time::Duration,
};

use api_types::{
    QdrantCluster,
    cluster::{VolumeClaimStatus, VolumesStatus},
    conditions::{ConditionStatus, find_condition},
};
use k8s_openapi::api::{core::v1::PersistentVolumeClaim, storage::v1::StorageClass};
use kube::{
    Api, ResourceExt,
    api::{Patch, PatchParams},
};
use reconcile_lib::{
    context::{Shared, object_key},
    error::{Error, Result},
};
use rust_decimal::Decimal;
use serde_json::json;
use tracing::warn;

use crate::vocabulary::{
    reasons::CANNOT_READ_VOLUMES as CANNOT_READ, reasons::EXPANSION_NOT_SUPPORTED,
    reasons::EXPANSION_REJECTED, reasons::INVALID_SIZE, reasons::SHRINK_REFUSED,
    types::VOLUME_EXPANSION_BLOCKED,
};
use crate::{
    build::Names,
    operations::{Operation, Scope},
};

/// Annotation marking the cluster's default StorageClass (value `"true"`).
pub const DEFAULT_CLASS_ANNOTATION: &str = "storageclass.kubernetes.io/is-default-class";
/// Legacy annotation naming a claim's StorageClass; wins over `spec.storageClassName`, as in
/// Kubernetes.
pub const BETA_CLASS_ANNOTATION: &str = "volume.beta.kubernetes.io/storage-class";

/// Claim state: the claim's request was raised (now or earlier) and Kubernetes shows no resize
/// activity yet.
pub const STATE_RESIZE_REQUESTED: &str = "ResizeRequested";
/// Claim state: the claim must grow but is not `Bound` yet (Kubernetes expands bound claims
/// only); it is patched once bound.
pub const STATE_NOT_BOUND: &str = "NotBound";

/// The resource name of a volume's size in requests and capacity.
const STORAGE: &str = "storage";

/// Name of the data claim of pod `ordinal` of `qc`: `<template>-<cluster>-<ordinal>`, e.g.
/// `storage-demo-0` (`qdrant-storage-qdrant-0` for a StatefulSet adopted from the Helm
/// chart; [`api_types::cluster::QdrantClusterSpec::data_volume_claim_template`]).
pub fn claim_name(qc: &QdrantCluster, ordinal: u32) -> String {
    api_types::cluster::data_claim_name(
        qc.spec.data_volume_claim_template(),
        &qc.name_any(),
        ordinal,
    )
}

/// One claim of a pod, as read from the API server (`None`: the pod, and so its claim, does
/// not exist yet).
#[derive(Debug, Clone, PartialEq)]
pub struct ObservedClaim {
    /// Claim name, `storage-<cluster>-<ordinal>`.
    pub name: String,
    /// The live claim, if it exists.
    pub claim: Option<PersistentVolumeClaim>,
}

/// A claim whose `spec.resources.requests.storage` must be raised.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClaimPatch {
    /// Claim name.
    pub name: String,
    /// Its current request, as written in the claim (e.g. `10Gi`).
    pub from: String,
    /// The new request: `spec.persistence.size` as written in the spec (e.g. `20Gi`).
    pub to: String,
}

/// Why the expansion cannot proceed: a reason (one of the constants of this module) and a
/// message for humans naming the spec field, the claims and the StorageClass.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    /// CamelCase reason, e.g. [`SHRINK_REFUSED`].
    pub reason: &'static str,
    /// What is refused and what to do about it.
    pub message: String,
}

/// What [`plan`] decided for one reconcile.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct VolumePlan {
    /// `spec.persistence.size` as written in the spec.
    pub requested_size: String,
    /// Claims to patch now (bound, below the requested size, expandable). Empty on refusal.
    pub patches: Vec<ClaimPatch>,
    /// Claims not at the requested size, in ordinal order, with what each waits for: the
    /// claims patched now ([`STATE_RESIZE_REQUESTED`]), claims still resizing (`Resizing`,
    /// `FileSystemResizePending`, `ControllerResizeError`, `NodeResizeError`, or a value of
    /// `status.allocatedResourceStatuses.storage` such as `NodeResizePending`), claims not
    /// bound yet ([`STATE_NOT_BOUND`]), or on refusal the claims concerned with the refusal
    /// reason as their state.
    pub pending: Vec<VolumeClaimStatus>,
    /// Per pending claim, a detail worth a human's attention (a resize error's message).
    pub details: BTreeMap<String, String>,
    /// Set when the expansion is refused; then nothing is patched.
    pub refusal: Option<Refusal>,
}

impl VolumePlan {
    /// One line for humans: the refusal's message, or which claims are expanding and what
    /// each waits for; empty when every claim has the requested size.
    pub fn message(&self) -> String {
        if let Some(r) = &self.refusal {
            return r.message.clone();
        }
        if self.pending.is_empty() {
            return String::new();
        }
        let claims = self
            .pending
            .iter()
            .map(|c| match self.details.get(&c.name) {
                Some(d) => format!("{} ({}: {d})", c.name, c.state),
                None => format!("{} ({})", c.name, c.state),
            })
            .collect::<Vec<_>>()
            .join(", ");
        format!(
            "expanding volumes to {} (spec.persistence.size): {claims}",
            self.requested_size
        )
    }

    /// `status.volumes`: `None` when every existing claim has the requested size and nothing
    /// is refused.
    pub fn status(&self) -> Option<VolumesStatus> {
        if self.pending.is_empty() && self.refusal.is_none() {
            return None;
        }
        Some(VolumesStatus {
            requested_size: self.requested_size.clone(),
            pending: self.pending.clone(),
            message: self.message(),
        })
    }
}

/// The StorageClasses [`plan`] needs: those named by claims that must grow, and whether the
/// default class is needed (a claim that must grow has no class name and is not bound yet).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ClassesToRead {
    /// StorageClass names to read.
    pub names: BTreeSet<String>,
    /// Read every StorageClass to find the default one.
    pub default: bool,
}

/// What [`expand`] observed and did, for the status: `status` becomes `status.volumes`;
/// `blocked` (reason, message) sets condition [`VOLUME_EXPANSION_BLOCKED`] True.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct VolumesProgress {
    /// `status.volumes`; `None` when every existing claim has the requested size.
    pub status: Option<VolumesStatus>,
    /// Why the expansion is refused (reason, message); `None` when it is not.
    pub blocked: Option<(String, String)>,
}

impl VolumesProgress {
    /// True while claims are being expanded (and nothing is refused): the reconcile requeues
    /// sooner, since claims are not watched.
    pub fn resizing(&self) -> bool {
        self.blocked.is_none() && self.status.as_ref().is_some_and(|s| !s.pending.is_empty())
    }

    /// The message for the Progressing condition while [`resizing`](Self::resizing).
    pub fn message(&self) -> String {
        self.status
            .as_ref()
            .map(|s| s.message.clone())
            .unwrap_or_default()
    }
}

/// The exact value of a Kubernetes quantity such as `10Gi`, `10737418240`, `1.5G`, `500m` or
/// `1e3` (for storage: bytes), so sizes compare by value: `10Gi` equals `10737418240` and is
/// more than `10G`. The grammar is checked with [`api_types::validation::is_quantity`]; the
/// arithmetic is exact decimal ([`Decimal`], 28 significant digits, enough for any volume).
/// `None` when `q` is not a quantity or its value does not fit.
pub fn quantity_value(q: &str) -> Option<Decimal> {
    let q = q.trim();
    if !api_types::validation::is_quantity(q) {
        return None;
    }
    let (negative, body) = match q.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, q.strip_prefix('+').unwrap_or(q)),
    };
    let end = body
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(body.len());
    let (number, suffix) = body.split_at(end);
    let number = number.strip_suffix('.').unwrap_or(number);
    let number = if number.starts_with('.') {
        format!("0{number}")
    } else {
        number.to_string()
    };
    let value = Decimal::from_str_exact(&number).ok()?;
    let binary = |power: u32| Some(Decimal::from(1u64 << (10 * power)));
    let factor = match suffix {
        "" => Some(Decimal::ONE),
        "Ki" => binary(1),
        "Mi" => binary(2),
        "Gi" => binary(3),
        "Ti" => binary(4),
        "Pi" => binary(5),
        "Ei" => binary(6),
        "n" => power_of_ten(-9),
        "u" => power_of_ten(-6),
        "m" => power_of_ten(-3),
        "k" => power_of_ten(3),
        "M" => power_of_ten(6),
        "G" => power_of_ten(9),
        "T" => power_of_ten(12),
        "P" => power_of_ten(15),
        "E" => power_of_ten(18),
        exponent => power_of_ten(exponent.get(1..)?.parse().ok()?),
    }?;
    let v = value.checked_mul(factor)?;
    Some(if negative { -v } else { v })
}

fn power_of_ten(n: i32) -> Option<Decimal> {
    if n >= 0 {
        let v = 10i128.checked_pow(u32::try_from(n).ok()?)?;
        Decimal::try_from_i128_with_scale(v, 0).ok()
    } else {
        let scale = n.unsigned_abs();
        (scale <= 28).then(|| Decimal::new(1, scale))
    }
}

fn request(pvc: &PersistentVolumeClaim) -> Option<&str> {
    pvc.spec
        .as_ref()?
        .resources
        .as_ref()?
        .requests
        .as_ref()?
        .get(STORAGE)
        .map(|q| q.0.as_str())
}

fn capacity(pvc: &PersistentVolumeClaim) -> Option<&str> {
    pvc.status
        .as_ref()?
        .capacity
        .as_ref()?
        .get(STORAGE)
        .map(|q| q.0.as_str())
}

fn is_bound(pvc: &PersistentVolumeClaim) -> bool {
    pvc.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Bound")
}

/// The claim's class as Kubernetes reads it: the beta annotation, else `spec.storageClassName`
/// (`None`: neither is set; `Some("")`: explicitly no class).
fn class_of(pvc: &PersistentVolumeClaim) -> Option<&str> {
    pvc.annotations()
        .get(BETA_CLASS_ANNOTATION)
        .map(String::as_str)
        .or_else(|| pvc.spec.as_ref()?.storage_class_name.as_deref())
}

/// The default StorageClass among `classes`: annotated `is-default-class: "true"`, the newest
/// (then the first by name) when several are, as Kubernetes picks it.
pub fn default_class(classes: &[StorageClass]) -> Option<&StorageClass> {
    classes
        .iter()
        .filter(|c| {
            c.annotations()
                .get(DEFAULT_CLASS_ANNOTATION)
                .is_some_and(|v| v == "true")
        })
        .min_by(|a, b| {
            let time = |c: &StorageClass| c.metadata.creation_timestamp.as_ref().map(|t| t.0);
            time(b)
                .cmp(&time(a))
                .then_with(|| a.name_any().cmp(&b.name_any()))
        })
}

/// What one claim waits for while below the requested size, and a detail for humans (the
/// resize error's message). Errors come first, then the file-system step, then the resize in
/// progress, then `status.allocatedResourceStatuses.storage`, else [`STATE_RESIZE_REQUESTED`].
pub fn claim_state(pvc: &PersistentVolumeClaim) -> (String, Option<String>) {
    let status = pvc.status.as_ref();
    let conditions = status
        .and_then(|s| s.conditions.as_deref())
        .unwrap_or_default();
    let active = |t: &str| {
        conditions
            .iter()
            .find(|c| c.type_ == t && c.status == "True")
    };
    for error in ["ControllerResizeError", "NodeResizeError"] {
        if let Some(c) = active(error) {
            return (
                error.to_string(),
                c.message.clone().filter(|m| !m.is_empty()),
            );
        }
    }
    let allocated = status
        .and_then(|s| s.allocated_resource_statuses.as_ref())
        .and_then(|a| a.get(STORAGE))
        .cloned();
    if let Some(a) = &allocated
        && (a.ends_with("Failed") || a.ends_with("Infeasible"))
    {
        return (a.clone(), None);
    }
    if active("FileSystemResizePending").is_some() {
        return (
            "FileSystemResizePending".to_string(),
            Some("the file system grows when the pod (re)mounts the volume".to_string()),
        );
    }
    if active("Resizing").is_some() {
        return ("Resizing".to_string(), None);
    }
    match allocated {
        Some(a) if !a.is_empty() => (a, None),
        _ => (STATE_RESIZE_REQUESTED.to_string(), None),
    }
}

/// Which StorageClasses [`plan`] must see for `size` (`spec.persistence.size`) and `claims`:
/// the classes of the claims whose request is below `size`, and the default class when such a
/// claim names no class and is not bound yet. Pure.
pub fn classes_to_read(size: &str, claims: &[ObservedClaim]) -> ClassesToRead {
    let mut out = ClassesToRead::default();
    let Some(target) = quantity_value(size) else {
        return out;
    };
    for pvc in claims.iter().filter_map(|c| c.claim.as_ref()) {
        let grows = request(pvc)
            .and_then(quantity_value)
            .is_some_and(|r| r < target);
        if !grows {
            continue;
        }
        match class_of(pvc) {
            Some(name) if !name.is_empty() => {
                out.names.insert(name.to_string());
            }
            Some(_) => {}
            None if is_bound(pvc) => {}
            None => out.default = true,
        }
    }
    out
}

enum Verdict {
    /// At the requested size (or a fresh claim being provisioned at it): nothing to report.
    Done,
    /// Request already at or above the target, capacity not yet.
    Resizing,
    /// Request above the target.
    Shrink(String),
    /// Request below the target.
    Grow(String),
    /// A quantity that cannot be parsed.
    Unreadable(String),
}

/// Plans one step of the volume expansion to `size` (`spec.persistence.size`) over `claims`
/// (the claims of pods `0..replicas`, in ordinal order; `None` for a pod not created yet,
/// which is skipped: the StatefulSet creates its claim from the live claim template, at the
/// old size, and a later reconcile grows it) and `classes` (the StorageClasses read, at least
/// those [`classes_to_read`] asks for; a class missing from it does not exist). Pure.
///
/// Sizes are compared by value (`10Gi` equals `10737418240`). A claim must grow when its
/// request is below `size`: it is patched if it is `Bound` and its StorageClass allows
/// expansion. A claim whose request is at `size` but whose `status.capacity.storage` is not
/// yet is reported as resizing. The whole step is refused, and nothing patched, when
/// `size` is below any claim's request ([`SHRINK_REFUSED`]), when a claim that must grow has
/// no StorageClass allowing expansion ([`EXPANSION_NOT_SUPPORTED`]), or when a quantity cannot
/// be parsed ([`INVALID_SIZE`]).
pub fn plan(size: &str, claims: &[ObservedClaim], classes: &[StorageClass]) -> VolumePlan {
    let mut out = VolumePlan {
        requested_size: size.to_string(),
        ..VolumePlan::default()
    };
    let Some(target) = quantity_value(size) else {
        out.refusal = Some(Refusal {
            reason: INVALID_SIZE,
            message: format!(
                "spec.persistence.size {size:?} is not a Kubernetes quantity this controller can compare"
            ),
        });
        return out;
    };

    let existing: Vec<(&str, &PersistentVolumeClaim)> = claims
        .iter()
        .filter_map(|c| c.claim.as_ref().map(|p| (c.name.as_str(), p)))
        .collect();
    let verdicts: Vec<Verdict> = existing
        .iter()
        .map(|(_, pvc)| {
            let Some(req) = request(pvc) else {
                return Verdict::Unreadable(String::new());
            };
            let Some(r) = quantity_value(req) else {
                return Verdict::Unreadable(req.to_string());
            };
            if r > target {
                return Verdict::Shrink(req.to_string());
            }
            if r < target {
                return Verdict::Grow(req.to_string());
            }
            let big_enough = capacity(pvc)
                .and_then(quantity_value)
                .is_some_and(|c| c >= target);
            if !is_bound(pvc) || big_enough {
                Verdict::Done
            } else {
                Verdict::Resizing
            }
        })
        .collect();
    let claim_status = |pvc: &PersistentVolumeClaim, name: &str, state: &str| VolumeClaimStatus {
        name: name.to_string(),
        capacity: capacity(pvc).map(str::to_string),
        state: state.to_string(),
    };

    // A quantity that cannot be compared: nothing is decided.
    let unreadable: Vec<String> = existing
        .iter()
        .zip(&verdicts)
        .filter_map(|((name, _), v)| match v {
            Verdict::Unreadable(q) if q.is_empty() => {
                Some(format!("{name} (no spec.resources.requests.storage)"))
            }
            Verdict::Unreadable(q) => Some(format!("{name} ({q:?})")),
            _ => None,
        })
        .collect();
    if !unreadable.is_empty() {
        out.refusal = Some(Refusal {
            reason: INVALID_SIZE,
            message: format!(
                "cannot compare spec.persistence.size {size} with the request of PersistentVolumeClaim {}",
                unreadable.join(", ")
            ),
        });
        return out;
    }

    // Never shrink: refuse the whole step.
    let shrinking: Vec<(&str, &PersistentVolumeClaim, &String)> = existing
        .iter()
        .zip(&verdicts)
        .filter_map(|((name, pvc), v)| match v {
            Verdict::Shrink(req) => Some((*name, *pvc, req)),
            _ => None,
        })
        .collect();
    if !shrinking.is_empty() {
        let list = shrinking
            .iter()
            .map(|(name, _, req)| format!("{name} requests {req}"))
            .collect::<Vec<_>>()
            .join(", ");
        let largest = shrinking
            .iter()
            .filter_map(|(_, _, req)| quantity_value(req).map(|q| (q, *req)))
            .max_by(|a, b| a.0.cmp(&b.0))
            .map(|(_, req)| req.clone())
            .unwrap_or_default();
        out.pending = shrinking
            .iter()
            .map(|(name, pvc, _)| claim_status(pvc, name, SHRINK_REFUSED))
            .collect();
        out.refusal = Some(Refusal {
            reason: SHRINK_REFUSED,
            message: format!(
                "spec.persistence.size {size} is smaller than PersistentVolumeClaim {list}: \
                 volumes cannot shrink; set spec.persistence.size to at least {largest}"
            ),
        });
        return out;
    }

    // Every claim that must grow needs a StorageClass that allows expansion.
    let default = default_class(classes);
    let find = |name: &str| classes.iter().find(|c| c.name_any() == name);
    // Problem text -> claims it concerns, so one class is named once.
    let mut problems: BTreeMap<String, Vec<&str>> = BTreeMap::new();
    for ((name, pvc), v) in existing.iter().zip(&verdicts) {
        if !matches!(v, Verdict::Grow(_)) {
            continue;
        }
        let problem = match class_of(pvc) {
            Some(class) if !class.is_empty() => match find(class) {
                None => Some(format!("StorageClass {class} does not exist")),
                Some(sc) if sc.allow_volume_expansion != Some(true) => Some(format!(
                    "StorageClass {class} does not set allowVolumeExpansion: true"
                )),
                Some(_) => None,
            },
            Some(_) => Some(
                "storageClassName \"\" (a pre-provisioned volume without StorageClass) cannot be expanded"
                    .to_string(),
            ),
            None if is_bound(pvc) => Some(
                "bound without a StorageClass (a pre-provisioned volume) cannot be expanded"
                    .to_string(),
            ),
            None => match default {
                None => Some(format!(
                    "no storageClassName and no default StorageClass (annotation {DEFAULT_CLASS_ANNOTATION}: \"true\")"
                )),
                Some(sc) if sc.allow_volume_expansion != Some(true) => Some(format!(
                    "the default StorageClass {} does not set allowVolumeExpansion: true",
                    sc.name_any()
                )),
                Some(_) => None,
            },
        };
        if let Some(p) = problem {
            problems.entry(p).or_default().push(name);
        }
    }
    if !problems.is_empty() {
        let why = problems
            .iter()
            .map(|(p, names)| format!("PersistentVolumeClaim {}: {p}", names.join(", ")))
            .collect::<Vec<_>>()
            .join("; ");
        let concerned: BTreeSet<&str> = problems.values().flatten().copied().collect();
        out.pending = existing
            .iter()
            .filter(|(name, _)| concerned.contains(name))
            .map(|(name, pvc)| claim_status(pvc, name, EXPANSION_NOT_SUPPORTED))
            .collect();
        out.refusal = Some(Refusal {
            reason: EXPANSION_NOT_SUPPORTED,
            message: format!(
                "spec.persistence.size {size} cannot be applied: {why}; the claims keep their size"
            ),
        });
        return out;
    }

    for ((name, pvc), v) in existing.iter().zip(&verdicts) {
        match v {
            Verdict::Done | Verdict::Shrink(_) | Verdict::Unreadable(_) => {}
            Verdict::Grow(req) if is_bound(pvc) => {
                out.patches.push(ClaimPatch {
                    name: name.to_string(),
                    from: req.clone(),
                    to: size.to_string(),
                });
                out.pending
                    .push(claim_status(pvc, name, STATE_RESIZE_REQUESTED));
            }
            Verdict::Grow(_) => out.pending.push(claim_status(pvc, name, STATE_NOT_BOUND)),
            Verdict::Resizing => {
                let (state, detail) = claim_state(pvc);
                if let Some(d) = detail {
                    out.details.insert(name.to_string(), d);
                }
                out.pending.push(claim_status(pvc, name, &state));
            }
        }
    }
    out
}

/// One step of the volume expansion of `qc` over the claims of pods `0..pods` (the pods the
/// StatefulSet keeps). Reads each claim (`GET` PersistentVolumeClaim `storage-<cluster>-<i>`
/// in the cluster's namespace) and, only when a claim must grow, its StorageClass (`GET`
/// `storage.k8s.io/v1` StorageClass by name, or `LIST` of all of them to find the default
/// one); plans with [`plan`] against `spec.persistence.size`; raises
/// `spec.resources.requests.storage` of each claim to grow with a JSON merge patch (field
/// manager [`crate::FIELD_MANAGER`]), which touches that one field of an object the
/// StatefulSet controller created, without taking ownership of an applied configuration that
/// later applies would have to repeat. Events: Normal `VolumeExpansionStarted` naming the
/// claims patched by this step (a claim is patched once: afterwards its request is the new
/// size), Normal `VolumeExpansionCompleted` when the last claim reaches the size, Warning
/// `VolumeExpansionBlocked` when a refusal appears or changes.
///
/// Errors: transient API errors (409, 429, 5xx, unreachable) as [`Error::Kube`] for the error
/// policy to retry. Permanent ones are not errors: a refused read becomes the refusal
/// [`CANNOT_READ`], a refused patch [`EXPANSION_REJECTED`]; a claim deleted before its patch
/// (404) is skipped until it exists again.
pub async fn expand(shared: &Shared, qc: &QdrantCluster, pods: i32) -> Result<VolumesProgress> {
    let size = qc.spec.persistence.size.as_str();
    let names = Names::of(qc);
    let client = shared.applier.client().clone();
    let claims_api: Api<PersistentVolumeClaim> = Api::namespaced(client.clone(), &names.namespace);

    let observed = match read(&claims_api, &client, qc, size, pods).await {
        Ok(o) => o,
        Err(e) if !e.is_transient() => {
            let message = format!(
                "cannot read the PersistentVolumeClaims or their StorageClass to apply spec.persistence.size {size}: {e}"
            );
            // Nothing was observed: keep the last known progress.
            let last = qc.status.as_ref().and_then(|s| s.volumes.clone());
            return Ok(refused(shared, qc, last, CANNOT_READ, message).await);
        }
        Err(e) => return Err(e),
    };
    let (claims, classes) = observed;
    let plan = plan(size, &claims, &classes);

    if let Some(r) = &plan.refusal {
        return Ok(refused(shared, qc, plan.status(), r.reason, r.message.clone()).await);
    }

    let Patched {
        gone,
        refused_claims,
        rejected,
    } = patch_claims(shared, qc, &claims_api, &plan).await?;

    let mut status = plan.status();
    if let Some(s) = &mut status {
        s.pending.retain(|c| !gone.contains(&c.name));
        for c in &mut s.pending {
            if refused_claims.contains(&c.name) {
                c.state = EXPANSION_REJECTED.to_string();
            }
        }
    }
    if let Some(message) = rejected {
        if let Some(s) = &mut status {
            s.message = message.clone();
        }
        return Ok(refused(shared, qc, status, EXPANSION_REJECTED, message).await);
    }

    // Completed: claims were growing (not merely listed by a refusal) and none is left.
    let was_expanding = qc.status.as_ref().is_some_and(|s| {
        s.volumes.as_ref().is_some_and(|v| !v.pending.is_empty())
            && !find_condition(&s.conditions, VOLUME_EXPANSION_BLOCKED)
                .is_some_and(|c| c.status == ConditionStatus::True)
    });
    let status = status.filter(|s| !s.pending.is_empty());
    if status.is_none() && was_expanding {
        shared
            .events
            .normal(
                qc,
                "VolumeExpansionCompleted",
                "ExpandVolume",
                format!("every PersistentVolumeClaim has {size} (spec.persistence.size)"),
            )
            .await;
    }
    Ok(VolumesProgress {
        status,
        blocked: None,
    })
}

/// What [`patch_claims`] did: claims gone before their patch (404), claims whose patch was
/// refused, and the first refusal's message.
struct Patched {
    gone: BTreeSet<String>,
    refused_claims: BTreeSet<String>,
    rejected: Option<String>,
}

/// Sends the planned patches (`spec.resources.requests.storage`, merge patch as the
/// controller's field manager) and one `VolumeExpansionStarted` event for the claims patched
/// now.
///
/// Errors: the first transient API error (the rest are not sent); a permanent refusal is
/// recorded in [`Patched`] instead.
async fn patch_claims(
    shared: &Shared,
    qc: &QdrantCluster,
    claims_api: &Api<PersistentVolumeClaim>,
    plan: &VolumePlan,
) -> Result<Patched> {
    let size = plan.requested_size.as_str();
    let params = PatchParams {
        field_manager: Some(crate::FIELD_MANAGER.to_string()),
        ..PatchParams::default()
    };
    let mut rejected: Option<String> = None;
    let mut gone = BTreeSet::new();
    let mut refused_claims = BTreeSet::new();
    let mut started = Vec::new();
    let mut failed = None;
    for p in &plan.patches {
        let body = json!({"spec": {"resources": {"requests": {STORAGE: p.to}}}});
        match claims_api
            .patch(&p.name, &params, &Patch::Merge(&body))
            .await
        {
            Ok(_) => started.push(p),
            Err(kube::Error::Api(s)) if s.code == 404 => {
                gone.insert(p.name.clone());
            }
            Err(e) => {
                let e = Error::from(e);
                if e.is_transient() {
                    failed = Some(e);
                    break;
                }
                warn!(cluster = %object_key(qc), claim = %p.name, error = %e, "patch of the claim refused");
                refused_claims.insert(p.name.clone());
                rejected.get_or_insert_with(|| {
                    format!(
                        "the API server refused to raise PersistentVolumeClaim {} from {} to {} (spec.persistence.size): {e}",
                        p.name, p.from, p.to
                    )
                });
            }
        }
    }
    // One event for the claims patched now (kube's recorder folds events of the same reason
    // into one series and keeps the first note, so one event per claim would hide the others).
    if !started.is_empty() {
        let claims = started
            .iter()
            .map(|p| format!("{} from {}", p.name, p.from))
            .collect::<Vec<_>>()
            .join(", ");
        shared
            .events
            .normal(
                qc,
                "VolumeExpansionStarted",
                "ExpandVolume",
                format!("PersistentVolumeClaim {claims} grows to {size} (spec.persistence.size)"),
            )
            .await;
    }
    match failed {
        Some(e) => Err(e),
        None => Ok(Patched {
            gone,
            refused_claims,
            rejected,
        }),
    }
}

async fn read(
    claims_api: &Api<PersistentVolumeClaim>,
    client: &kube::Client,
    qc: &QdrantCluster,
    size: &str,
    pods: i32,
) -> Result<(Vec<ObservedClaim>, Vec<StorageClass>)> {
    let mut claims = Vec::new();
    for ordinal in 0..u32::try_from(pods).unwrap_or(0) {
        let name = claim_name(qc, ordinal);
        let claim = claims_api.get_opt(&name).await?;
        claims.push(ObservedClaim { name, claim });
    }
    let want = classes_to_read(size, &claims);
    let classes_api: Api<StorageClass> = Api::all(client.clone());
    let classes = if want.default {
        classes_api.list(&Default::default()).await?.items
    } else {
        let mut out = Vec::new();
        for name in &want.names {
            if let Some(sc) = classes_api.get_opt(name).await? {
                out.push(sc);
            }
        }
        out
    };
    Ok((claims, classes))
}

async fn refused(
    shared: &Shared,
    qc: &QdrantCluster,
    status: Option<VolumesStatus>,
    reason: &str,
    message: String,
) -> VolumesProgress {
    if !crate::vocabulary::reported(qc, VOLUME_EXPANSION_BLOCKED, reason, &message) {
        shared
            .events
            .warning(
                qc,
                VOLUME_EXPANSION_BLOCKED,
                "ExpandVolume",
                message.clone(),
            )
            .await;
    }
    VolumesProgress {
        status,
        blocked: Some((reason.to_string(), message)),
    }
}

/// The volume expansion operation ([`expand`]): the claims of the pods the applied
/// StatefulSet keeps grow to `spec.persistence.size`. Not disruptive: it runs beside any
/// other step. While claims resize it looks again after `volume_requeue` (claims are not
/// watched).
pub struct VolumeExpansion;

impl Operation for VolumeExpansion {
    const NAME: &'static str = "volume expansion";
    const DISRUPTIVE: bool = false;
    type Progress = VolumesProgress;

    fn wanted(&self, scope: &Scope<'_>) -> bool {
        scope.observation.applied.is_some()
    }

    async fn step(&self, scope: &Scope<'_>) -> Result<Option<VolumesProgress>> {
        let pods = scope
            .observation
            .applied
            .as_ref()
            .and_then(|s| s.spec.as_ref())
            .and_then(|s| s.replicas)
            .unwrap_or(scope.qc.spec.replicas);
        Ok(Some(expand(&scope.ctx.shared, scope.qc, pods).await?))
    }

    /// Only a resize under way is a step (a settled or refused expansion is not).
    fn holds(&self, v: &VolumesProgress) -> bool {
        v.resizing()
    }

    fn requeue(&self, scope: &Scope<'_>, v: &VolumesProgress) -> Option<Duration> {
        v.resizing().then_some(scope.ctx.volume_requeue)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    #[test]
    fn claim_names_follow_the_statefulset_convention() {
        let qc = |name: &str, adoption: serde_json::Value| {
            let mut qc = QdrantCluster::new(
                name,
                serde_json::from_value(json!({"adoption": adoption})).unwrap(),
            );
            qc.metadata.namespace = Some("ns".into());
            qc
        };
        assert_eq!(claim_name(&qc("demo", json!(null)), 0), "storage-demo-0");
        assert_eq!(claim_name(&qc("a-b", json!(null)), 12), "storage-a-b-12");
        let helm = json!({"statefulSetName": "qdrant"});
        assert_eq!(
            claim_name(&qc("qdrant", helm), 1),
            "qdrant-storage-qdrant-1"
        );
        let own = json!({"statefulSetName": "q", "volumeClaimTemplate": "data"});
        assert_eq!(claim_name(&qc("q", own), 0), "data-q-0");
    }

    #[test]
    fn quantities_compare_by_value() {
        let q = |s: &str| quantity_value(s).unwrap();
        assert_eq!(q("10Gi"), Decimal::from(10_737_418_240u64));
        assert_eq!(q("10737418240"), q("10Gi"));
        assert!(q("10737418240") >= q("10Gi") && q("10737418240") <= q("10Gi"));
        assert!(q("10737418241") > q("10Gi"));
        assert!(q("10737418239") < q("10Gi"));
        assert_eq!(q("1.5Gi"), Decimal::from(1_610_612_736u64));
        assert_eq!(q(".5Ki"), Decimal::from(512));
        assert_eq!(q("5."), Decimal::from(5));
        assert_eq!(q("+1k"), Decimal::from(1000));
        assert_eq!(q("-1k"), Decimal::from(-1000));
        assert_eq!(q("500m"), Decimal::new(5, 1));
        assert_eq!(q("1E3"), Decimal::from(1000));
        assert_eq!(q("1e-3"), q("1m"));
        assert_eq!(q("1Ei"), Decimal::from(1u64 << 60));
        assert!(quantity_value("1e1.5").is_none());
        assert!(quantity_value("1e99").is_none(), "does not fit");
        assert!(quantity_value("10 Gi").is_none());
        assert!(quantity_value("10GB").is_none());
        assert_eq!(q("10Gi"), q("10737418240"));
        assert_eq!(q("1Gi"), q("1024Mi"));
        assert_eq!(q("1G"), q("1000M"));
        assert_eq!(q("1e3"), q("1k"));
        assert!(q("10Gi") > q("10G"));
        assert!(q("20Gi") > q("10737418240"));
        assert!(q("1.5Gi") > q("1Gi"));
        assert!(q("1Ti") > q("1000Gi"));
        assert!(quantity_value("ten").is_none());
        assert!(quantity_value("").is_none());
    }
}
