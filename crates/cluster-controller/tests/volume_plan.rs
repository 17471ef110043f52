//! The volume-expansion planner (pure, no network): which claims grow, which are still
//! resizing and why, and when the expansion is refused.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use cluster_controller::{
    vocabulary::reasons::{EXPANSION_NOT_SUPPORTED, INVALID_SIZE, SHRINK_REFUSED},
    volumes::{
        ObservedClaim, STATE_NOT_BOUND, STATE_RESIZE_REQUESTED, VolumePlan, claim_state,
        classes_to_read, default_class, plan,
    },
};
use k8s_openapi::api::{core::v1::PersistentVolumeClaim, storage::v1::StorageClass};
use serde_json::{Value, json};

/// A claim of pod `i` of cluster `demo` with `request`, `capacity` (only a bound claim has
/// one), StorageClass `class` (`None`: no `storageClassName`), `phase` and extra status.
fn claim(i: i32, request: &str, capacity: Option<&str>, class: Option<&str>) -> Value {
    let mut c = json!({
        "apiVersion": "v1", "kind": "PersistentVolumeClaim",
        "metadata": {"name": format!("storage-demo-{i}"), "namespace": "qdrant"},
        "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": request}}},
        "status": {"phase": if capacity.is_some() { "Bound" } else { "Pending" }},
    });
    if let Some(cap) = capacity {
        c["status"]["capacity"] = json!({"storage": cap});
    }
    if let Some(class) = class {
        c["spec"]["storageClassName"] = json!(class);
    }
    c
}

fn observed(claims: Vec<Option<Value>>) -> Vec<ObservedClaim> {
    claims
        .into_iter()
        .enumerate()
        .map(|(i, c)| ObservedClaim {
            name: format!("storage-demo-{i}"),
            claim: c.map(|c| serde_json::from_value(c).unwrap()),
        })
        .collect()
}

fn class(name: &str, allow: Option<bool>, default: bool, created: &str) -> StorageClass {
    let mut c = json!({
        "apiVersion": "storage.k8s.io/v1", "kind": "StorageClass",
        "metadata": {"name": name, "creationTimestamp": created},
        "provisioner": "ebs.csi.aws.com",
    });
    if let Some(a) = allow {
        c["allowVolumeExpansion"] = json!(a);
    }
    if default {
        c["metadata"]["annotations"] =
            json!({"storageclass.kubernetes.io/is-default-class": "true"});
    }
    serde_json::from_value(c).unwrap()
}

fn expandable() -> Vec<StorageClass> {
    vec![class("standard", Some(true), false, "2024-01-01T00:00:00Z")]
}

fn bound(i: i32, size: &str) -> Option<Value> {
    Some(claim(i, size, Some(size), Some("standard")))
}

fn patched(p: &VolumePlan) -> Vec<(String, String, String)> {
    p.patches
        .iter()
        .map(|c| (c.name.clone(), c.from.clone(), c.to.clone()))
        .collect()
}

fn states(p: &VolumePlan) -> Vec<(String, String)> {
    p.pending
        .iter()
        .map(|c| (c.name.clone(), c.state.clone()))
        .collect()
}

fn pair(name: &str, state: &str) -> (String, String) {
    (name.to_string(), state.to_string())
}

#[test]
fn growing_patches_every_bound_claim_and_reports_it_pending() {
    let claims = observed(vec![bound(0, "10Gi"), bound(1, "10Gi"), bound(2, "10Gi")]);
    let p = plan("20Gi", &claims, &expandable());
    assert_eq!(p.refusal, None);
    assert_eq!(
        patched(&p),
        (0..3)
            .map(|i| (format!("storage-demo-{i}"), "10Gi".into(), "20Gi".into()))
            .collect::<Vec<_>>()
    );
    assert_eq!(
        states(&p),
        (0..3)
            .map(|i| pair(&format!("storage-demo-{i}"), STATE_RESIZE_REQUESTED))
            .collect::<Vec<_>>()
    );
    assert!(
        p.pending
            .iter()
            .all(|c| c.capacity.as_deref() == Some("10Gi"))
    );
    let status = p.status().unwrap();
    assert_eq!(status.requested_size, "20Gi");
    assert_eq!(
        status.message,
        "expanding volumes to 20Gi (spec.persistence.size): storage-demo-0 (ResizeRequested), \
         storage-demo-1 (ResizeRequested), storage-demo-2 (ResizeRequested)"
    );
    let want = classes_to_read("20Gi", &claims);
    assert_eq!(want.names.into_iter().collect::<Vec<_>>(), ["standard"]);
    assert!(!want.default);
}

#[test]
fn equal_size_plans_nothing_and_reads_no_storage_class() {
    let claims = observed(vec![bound(0, "10Gi"), bound(1, "10Gi")]);
    // No StorageClass at all: it is not needed when nothing grows.
    let p = plan("10Gi", &claims, &[]);
    assert_eq!(
        p,
        VolumePlan {
            requested_size: "10Gi".into(),
            ..VolumePlan::default()
        }
    );
    assert_eq!(p.status(), None);
    assert_eq!(p.message(), "");
    let want = classes_to_read("10Gi", &claims);
    assert!(want.names.is_empty() && !want.default);
}

#[test]
fn sizes_compare_by_value_not_by_text() {
    // 10Gi written in bytes, in the request and in the capacity.
    let bytes = observed(vec![
        Some(claim(
            0,
            "10737418240",
            Some("10737418240"),
            Some("standard"),
        )),
        Some(claim(1, "10Gi", Some("10737418240"), Some("standard"))),
        Some(claim(2, "10240Mi", Some("10Gi"), Some("standard"))),
    ]);
    let p = plan("10Gi", &bytes, &expandable());
    assert!(
        p.patches.is_empty() && p.pending.is_empty() && p.refusal.is_none(),
        "{p:?}"
    );

    let p = plan("20Gi", &bytes, &expandable());
    assert_eq!(
        patched(&p),
        [
            ("storage-demo-0".into(), "10737418240".into(), "20Gi".into()),
            ("storage-demo-1".into(), "10Gi".into(), "20Gi".into()),
            ("storage-demo-2".into(), "10240Mi".into(), "20Gi".into()),
        ]
    );

    // 10G (decimal) is less than 10Gi (binary): growing from 10G to 10Gi is a growth.
    let decimal = observed(vec![Some(claim(0, "10G", Some("10G"), Some("standard")))]);
    assert_eq!(plan("10Gi", &decimal, &expandable()).patches.len(), 1);
    // And 10Gi -> 10G is a shrink.
    let binary = observed(vec![bound(0, "10Gi")]);
    assert_eq!(
        plan("10G", &binary, &expandable()).refusal.unwrap().reason,
        SHRINK_REFUSED
    );
}

#[test]
fn a_capacity_rounded_up_by_the_provisioner_still_gets_the_request_raised() {
    let claims = observed(vec![Some(claim(0, "10Gi", Some("12Gi"), Some("standard")))]);
    let p = plan("11Gi", &claims, &expandable());
    assert_eq!(
        patched(&p),
        [("storage-demo-0".into(), "10Gi".into(), "11Gi".into())]
    );
    // Once the request is 11Gi, the 12Gi capacity already covers it.
    let claims = observed(vec![Some(claim(0, "11Gi", Some("12Gi"), Some("standard")))]);
    assert_eq!(plan("11Gi", &claims, &expandable()).status(), None);
}

#[test]
fn shrinking_is_refused_naming_the_field_the_claims_and_their_size() {
    let claims = observed(vec![bound(0, "10Gi"), bound(1, "10Gi"), None]);
    let p = plan("5Gi", &claims, &expandable());
    let r = p.refusal.clone().unwrap();
    assert_eq!(r.reason, SHRINK_REFUSED);
    assert_eq!(
        r.message,
        "spec.persistence.size 5Gi is smaller than PersistentVolumeClaim storage-demo-0 requests \
         10Gi, storage-demo-1 requests 10Gi: volumes cannot shrink; set spec.persistence.size to \
         at least 10Gi"
    );
    assert!(p.patches.is_empty());
    assert_eq!(
        states(&p),
        [
            pair("storage-demo-0", SHRINK_REFUSED),
            pair("storage-demo-1", SHRINK_REFUSED)
        ]
    );
    let status = p.status().unwrap();
    assert_eq!(status.message, r.message);
    assert_eq!(status.requested_size, "5Gi");
}

#[test]
fn one_larger_claim_refuses_the_whole_step_and_nothing_is_patched() {
    let claims = observed(vec![bound(0, "10Gi"), bound(1, "30Gi"), bound(2, "10Gi")]);
    let p = plan("20Gi", &claims, &expandable());
    let r = p.refusal.clone().unwrap();
    assert_eq!(r.reason, SHRINK_REFUSED);
    assert!(
        r.message.contains("storage-demo-1 requests 30Gi"),
        "{}",
        r.message
    );
    assert!(r.message.contains("at least 30Gi"), "{}", r.message);
    assert!(!r.message.contains("storage-demo-0"), "{}", r.message);
    assert!(
        p.patches.is_empty(),
        "no claim grows while another would shrink"
    );
    assert_eq!(states(&p), [pair("storage-demo-1", SHRINK_REFUSED)]);
}

#[test]
fn mixed_claims_patch_only_those_below_and_report_those_still_resizing() {
    let mut resizing = claim(0, "20Gi", Some("10Gi"), Some("standard"));
    resizing["status"]["conditions"] = json!([{"type": "Resizing", "status": "True"}]);
    let claims = observed(vec![
        Some(resizing),
        bound(1, "10Gi"),
        bound(2, "20Gi"),
        None,
    ]);
    let p = plan("20Gi", &claims, &expandable());
    assert_eq!(p.refusal, None);
    assert_eq!(
        patched(&p),
        [("storage-demo-1".into(), "10Gi".into(), "20Gi".into())]
    );
    assert_eq!(
        states(&p),
        [
            pair("storage-demo-0", "Resizing"),
            pair("storage-demo-1", STATE_RESIZE_REQUESTED)
        ]
    );
}

#[test]
fn a_claim_not_created_yet_is_skipped() {
    let claims = observed(vec![bound(0, "10Gi"), None, None]);
    let p = plan("20Gi", &claims, &expandable());
    assert_eq!(
        patched(&p),
        [("storage-demo-0".into(), "10Gi".into(), "20Gi".into())]
    );
    assert_eq!(states(&p), [pair("storage-demo-0", STATE_RESIZE_REQUESTED)]);

    let none = observed(vec![None, None]);
    assert_eq!(plan("20Gi", &none, &[]).status(), None);
}

#[test]
fn a_storage_class_without_allow_volume_expansion_refuses_naming_the_class() {
    let claims = observed(vec![bound(0, "10Gi"), bound(1, "10Gi")]);
    for allow in [None, Some(false)] {
        let classes = vec![class("standard", allow, false, "2024-01-01T00:00:00Z")];
        let p = plan("20Gi", &claims, &classes);
        let r = p.refusal.clone().unwrap();
        assert_eq!(r.reason, EXPANSION_NOT_SUPPORTED);
        assert_eq!(
            r.message,
            "spec.persistence.size 20Gi cannot be applied: PersistentVolumeClaim storage-demo-0, \
             storage-demo-1: StorageClass standard does not set allowVolumeExpansion: true; the \
             claims keep their size"
        );
        assert!(p.patches.is_empty());
        assert_eq!(
            states(&p),
            [
                pair("storage-demo-0", EXPANSION_NOT_SUPPORTED),
                pair("storage-demo-1", EXPANSION_NOT_SUPPORTED)
            ]
        );
    }
    // A class that was not found (the caller read every class named).
    let p = plan("20Gi", &claims, &[]);
    let r = p.refusal.unwrap();
    assert_eq!(r.reason, EXPANSION_NOT_SUPPORTED);
    assert!(
        r.message.contains("StorageClass standard does not exist"),
        "{}",
        r.message
    );
}

#[test]
fn the_class_only_matters_for_claims_that_must_grow() {
    let classes = vec![class(
        "standard",
        Some(false),
        false,
        "2024-01-01T00:00:00Z",
    )];
    let claims = observed(vec![bound(0, "20Gi"), bound(1, "20Gi")]);
    assert_eq!(plan("20Gi", &claims, &classes).status(), None);
}

#[test]
fn the_beta_annotation_names_the_class_before_storage_class_name() {
    let mut c = claim(0, "10Gi", Some("10Gi"), Some("standard"));
    c["metadata"]["annotations"] = json!({"volume.beta.kubernetes.io/storage-class": "legacy"});
    let claims = observed(vec![Some(c)]);
    assert_eq!(
        classes_to_read("20Gi", &claims)
            .names
            .into_iter()
            .collect::<Vec<_>>(),
        ["legacy"]
    );
    let p = plan("20Gi", &claims, &expandable());
    assert!(
        p.refusal
            .unwrap()
            .message
            .contains("StorageClass legacy does not exist")
    );
}

#[test]
fn a_claim_without_class_waiting_to_bind_is_judged_by_the_default_class() {
    // Not bound, no storageClassName: Kubernetes gives it the default class before binding.
    let claims = observed(vec![Some(claim(0, "10Gi", None, None)), bound(1, "10Gi")]);
    let want = classes_to_read("20Gi", &claims);
    assert!(want.default);
    assert_eq!(want.names.into_iter().collect::<Vec<_>>(), ["standard"]);

    let mut classes = expandable();
    classes.push(class("fast", Some(true), true, "2024-01-01T00:00:00Z"));
    let p = plan("20Gi", &claims, &classes);
    assert_eq!(p.refusal, None);
    // Kubernetes expands bound claims only: the unbound one waits, the bound one grows.
    assert_eq!(
        patched(&p),
        [("storage-demo-1".into(), "10Gi".into(), "20Gi".into())]
    );
    assert_eq!(
        states(&p),
        [
            pair("storage-demo-0", STATE_NOT_BOUND),
            pair("storage-demo-1", STATE_RESIZE_REQUESTED)
        ]
    );

    // The default class does not allow expansion: refused, naming it.
    let mut classes = expandable();
    classes.push(class("slow", None, true, "2024-01-01T00:00:00Z"));
    let r = plan("20Gi", &claims, &classes).refusal.unwrap();
    assert_eq!(r.reason, EXPANSION_NOT_SUPPORTED);
    assert!(
        r.message.contains(
            "storage-demo-0: the default StorageClass slow does not set allowVolumeExpansion: true"
        ),
        "{}",
        r.message
    );

    // No default class at all.
    let r = plan("20Gi", &claims, &expandable()).refusal.unwrap();
    assert_eq!(r.reason, EXPANSION_NOT_SUPPORTED);
    assert!(
        r.message.contains("no default StorageClass"),
        "{}",
        r.message
    );
}

#[test]
fn the_newest_default_class_wins_as_in_kubernetes() {
    let classes = vec![
        class("old", Some(false), true, "2023-01-01T00:00:00Z"),
        class("new", Some(true), true, "2024-06-01T00:00:00Z"),
        class("plain", Some(true), false, "2025-01-01T00:00:00Z"),
    ];
    assert_eq!(
        default_class(&classes).unwrap().metadata.name.as_deref(),
        Some("new")
    );
    let claims = observed(vec![Some(claim(0, "10Gi", None, None))]);
    assert_eq!(plan("20Gi", &claims, &classes).refusal, None);
    assert_eq!(default_class(&classes[2..]), None);
}

#[test]
fn a_bound_claim_without_class_is_a_pre_provisioned_volume_and_cannot_grow() {
    let claims = observed(vec![Some(claim(0, "10Gi", Some("10Gi"), None))]);
    let want = classes_to_read("20Gi", &claims);
    assert!(want.names.is_empty() && !want.default);
    let mut classes = expandable();
    classes.push(class("fast", Some(true), true, "2024-01-01T00:00:00Z"));
    let r = plan("20Gi", &claims, &classes).refusal.unwrap();
    assert_eq!(r.reason, EXPANSION_NOT_SUPPORTED);
    assert!(
        r.message.contains("bound without a StorageClass"),
        "{}",
        r.message
    );

    let claims = observed(vec![Some(claim(0, "10Gi", Some("10Gi"), Some("")))]);
    let r = plan("20Gi", &claims, &classes).refusal.unwrap();
    assert_eq!(r.reason, EXPANSION_NOT_SUPPORTED);
    assert!(r.message.contains("storageClassName \"\""), "{}", r.message);
}

#[test]
fn a_fresh_claim_being_provisioned_at_the_size_is_not_pending() {
    let claims = observed(vec![Some(claim(0, "20Gi", None, Some("standard")))]);
    assert_eq!(plan("20Gi", &claims, &expandable()).status(), None);
}

#[test]
fn an_unbound_claim_below_the_size_waits_to_be_bound() {
    let claims = observed(vec![Some(claim(0, "10Gi", None, Some("standard")))]);
    let p = plan("20Gi", &claims, &expandable());
    assert!(p.patches.is_empty());
    assert_eq!(states(&p), [pair("storage-demo-0", STATE_NOT_BOUND)]);
}

fn resizing_claim(status: Value) -> PersistentVolumeClaim {
    let mut c = claim(0, "20Gi", Some("10Gi"), Some("standard"));
    for (k, v) in status.as_object().unwrap() {
        c["status"][k] = v.clone();
    }
    serde_json::from_value(c).unwrap()
}

#[test]
fn resizing_states_come_from_conditions_and_allocated_resource_statuses() {
    let cases: Vec<(Value, &str, Option<&str>)> = vec![
        (json!({}), STATE_RESIZE_REQUESTED, None),
        (
            json!({"conditions": [{"type": "Resizing", "status": "True"}]}),
            "Resizing",
            None,
        ),
        (
            json!({"conditions": [{"type": "Resizing", "status": "False"}]}),
            STATE_RESIZE_REQUESTED,
            None,
        ),
        (
            json!({"allocatedResourceStatuses": {"storage": "ControllerResizeInProgress"}}),
            "ControllerResizeInProgress",
            None,
        ),
        (
            json!({"allocatedResourceStatuses": {"storage": "NodeResizePending"},
                   "conditions": [{"type": "FileSystemResizePending", "status": "True"}]}),
            "FileSystemResizePending",
            Some("the file system grows when the pod (re)mounts the volume"),
        ),
        (
            json!({"conditions": [{"type": "Resizing", "status": "True"},
                                  {"type": "ControllerResizeError", "status": "True", "message": "quota exceeded"}]}),
            "ControllerResizeError",
            Some("quota exceeded"),
        ),
        (
            json!({"conditions": [{"type": "NodeResizeError", "status": "True", "message": "resize2fs failed"}]}),
            "NodeResizeError",
            Some("resize2fs failed"),
        ),
        (
            json!({"allocatedResourceStatuses": {"storage": "NodeResizeFailed"},
                   "conditions": [{"type": "FileSystemResizePending", "status": "True"}]}),
            "NodeResizeFailed",
            None,
        ),
        (
            json!({"allocatedResourceStatuses": {"storage": "ControllerResizeInfeasible"}}),
            "ControllerResizeInfeasible",
            None,
        ),
    ];
    for (status, state, detail) in cases {
        let pvc = resizing_claim(status.clone());
        assert_eq!(
            claim_state(&pvc),
            (state.to_string(), detail.map(str::to_string)),
            "{status}"
        );
    }
}

#[test]
fn a_resize_error_is_reported_with_its_message_but_refuses_nothing() {
    let mut c = claim(0, "20Gi", Some("10Gi"), Some("standard"));
    c["status"]["conditions"] = json!([{"type": "ControllerResizeError", "status": "True",
        "message": "quota exceeded"}]);
    let claims = observed(vec![Some(c), bound(1, "20Gi")]);
    let p = plan("20Gi", &claims, &[]);
    assert_eq!(p.refusal, None, "Kubernetes retries a failed resize");
    assert!(p.patches.is_empty(), "the request is already raised");
    assert_eq!(
        states(&p),
        [pair("storage-demo-0", "ControllerResizeError")]
    );
    assert_eq!(
        p.status().unwrap().message,
        "expanding volumes to 20Gi (spec.persistence.size): storage-demo-0 \
         (ControllerResizeError: quota exceeded)"
    );
}

#[test]
fn an_unparseable_size_is_refused_not_guessed() {
    let claims = observed(vec![bound(0, "10Gi")]);
    let r = plan("ten", &claims, &expandable()).refusal.unwrap();
    assert_eq!(r.reason, INVALID_SIZE);
    assert!(
        r.message.contains("spec.persistence.size \"ten\""),
        "{}",
        r.message
    );
    assert!(classes_to_read("ten", &claims).names.is_empty());
}
