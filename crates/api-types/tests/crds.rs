//! CRD checks (TESTING.md layer 2): `crds/` is fresh, every schema is structural, and the
//! schema and CEL rules accept good objects and refuse bad ones — the same verdicts an API
//! server gives, evaluated here by a JSON-schema validator and by kube's CEL implementation.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::PathBuf;

use common::with;
use serde_json::{Value, json};

mod common;

fn crd_schema() -> Value {
    schema_of(0)
}

/// The openAPIV3Schema of the `i`-th CRD of `api_types::crd::all()` (0 QdrantCluster,
/// 1 QdrantCollection).
fn schema_of(i: usize) -> Value {
    let crd = api_types::crd::all().remove(i).1;
    let v = serde_json::to_value(&crd.spec.versions[0].schema).unwrap();
    v["openAPIV3Schema"].clone()
}

fn good() -> Value {
    json!({
        "apiVersion": "qdrant.operator.dev/v1alpha1",
        "kind": "QdrantCluster",
        "metadata": {"name": "demo", "namespace": "default"},
        "spec": {
            "replicas": 3,
            "image": {"repository": "qdrant/qdrant", "tag": "v1.18.0", "pullPolicy": "IfNotPresent"},
            "persistence": {"size": "5Gi", "accessModes": ["ReadWriteOnce"], "retainOnDelete": true},
            "auth": {"apiKey": {"generate": true}, "readOnlyApiKey": {"generate": true}},
            "service": {"type": "ClusterIP"},
            "config": {"log_level": "INFO", "storage": {"performance": {"max_search_threads": 2}}}
        }
    })
}

fn schema_errors(obj: &Value) -> Vec<String> {
    common::schema_errors(&crd_schema(), obj)
}

fn cel_errors(obj: &Value, old: Option<&Value>) -> Vec<String> {
    common::cel_errors(&crd_schema(), obj, old)
}

#[test]
fn crds_directory_is_fresh() {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../crds");
    for (file, crd) in api_types::crd::all() {
        let want = api_types::crd::to_yaml(&crd).unwrap();
        let have = std::fs::read_to_string(dir.join(file)).unwrap_or_default();
        assert!(
            have == want,
            "crds/{file} is stale: run `just crds` and commit the result"
        );
    }
}

#[test]
fn schemas_are_structural() {
    let v = crd_schema();
    let violations =
        api_types::crd::structural_violations(&v, &[".properties.spec.properties.config"]);
    // The walker reports paths from the schema root; `config` is the one intended free-form node.
    let violations: Vec<_> = violations
        .into_iter()
        .filter(|p| !p.starts_with(".spec.config:"))
        .collect();
    assert!(
        violations.is_empty(),
        "not structural:\n{}",
        violations.join("\n")
    );
}

#[test]
fn structural_check_catches_what_it_claims() {
    let bad = json!({
        "type": "object",
        "properties": {
            "a": {"description": "no type"},
            "b": {"type": "object", "properties": {"x": {"type": "string"}}, "additionalProperties": true},
            "c": {"type": "object", "x-kubernetes-preserve-unknown-fields": true}
        }
    });
    let v = api_types::crd::structural_violations(&bad, &[]);
    assert!(v.iter().any(|p| p.starts_with(".a: missing type")), "{v:?}");
    assert!(
        v.iter().any(|p| p.starts_with(".b: additionalProperties")),
        "{v:?}"
    );
    assert!(
        v.iter().any(|p| p.starts_with(".c: x-kubernetes-preserve")),
        "{v:?}"
    );
}

#[test]
fn only_config_preserves_unknown_fields() {
    let text = serde_json::to_string(&crd_schema()).unwrap();
    assert_eq!(
        text.matches("x-kubernetes-preserve-unknown-fields").count(),
        1
    );
    let config = &crd_schema()["properties"]["spec"]["properties"]["config"];
    assert_eq!(config["x-kubernetes-preserve-unknown-fields"], json!(true));
    assert_eq!(config["type"], json!("object"));
}

#[test]
fn names_columns_and_subresources() {
    let crd = api_types::crd::all().remove(0).1;
    assert_eq!(crd.spec.names.short_names, Some(vec!["qc".to_string()]));
    assert_eq!(crd.spec.names.categories, Some(vec!["qdrant".to_string()]));
    let version = &crd.spec.versions[0];
    let cols: Vec<_> = version
        .additional_printer_columns
        .as_ref()
        .unwrap()
        .iter()
        .map(|c| c.name.as_str())
        .collect();
    assert_eq!(cols, ["Phase", "Ready", "Version", "Age"]);
    let sub = version.subresources.as_ref().unwrap();
    assert!(sub.status.is_some());
    let scale = sub.scale.as_ref().unwrap();
    assert_eq!(scale.spec_replicas_path, ".spec.replicas");
    assert_eq!(scale.status_replicas_path, ".status.replicas");
    assert_eq!(
        scale.label_selector_path.as_deref(),
        Some(".status.selector")
    );
    let conditions = &crd_schema()["properties"]["status"]["properties"]["conditions"];
    assert_eq!(conditions["x-kubernetes-list-type"], json!("map"));
    assert_eq!(conditions["x-kubernetes-list-map-keys"], json!(["type"]));
}

#[test]
fn every_field_has_a_description() {
    fn walk(node: &Value, path: &str, missing: &mut Vec<String>) {
        if let Some(props) = node.get("properties").and_then(Value::as_object) {
            for (k, v) in props {
                let p = format!("{path}.{k}");
                if v.get("description").is_none()
                    && !["apiVersion", "kind", "metadata"].contains(&k.as_str())
                {
                    missing.push(p.clone());
                }
                walk(v, &p, missing);
            }
        }
        if let Some(items) = node.get("items") {
            walk(items, &format!("{path}[]"), missing);
        }
    }
    let mut missing = vec![];
    // Our own fields: spec and status, excluding the embedded Kubernetes core types, whose
    // descriptions come from k8s-openapi.
    walk(&crd_schema()["properties"]["spec"], "spec", &mut missing);
    walk(
        &crd_schema()["properties"]["status"],
        "status",
        &mut missing,
    );
    assert!(
        missing.is_empty(),
        "fields without description: {missing:?}"
    );
}

#[test]
fn good_object_passes_schema_and_cel() {
    assert_eq!(schema_errors(&good()), Vec::<String>::new());
    assert_eq!(cel_errors(&good(), None), Vec::<String>::new());
}

#[test]
fn schema_refuses_replicas_zero_and_unknown_enums() {
    let e = schema_errors(&with(good(), "/spec/replicas", json!(0)));
    assert!(e.iter().any(|m| m.starts_with("/spec/replicas")), "{e:?}");
    let e = schema_errors(&with(good(), "/spec/service/type", json!("ExternalName")));
    assert!(
        e.iter().any(|m| m.starts_with("/spec/service/type")),
        "{e:?}"
    );
    let e = schema_errors(&with(good(), "/spec/image/pullPolicy", json!("Sometimes")));
    assert!(
        e.iter().any(|m| m.starts_with("/spec/image/pullPolicy")),
        "{e:?}"
    );
    let e = schema_errors(&with(good(), "/spec/persistence/size", json!("5 gigs")));
    assert!(
        e.iter().any(|m| m.starts_with("/spec/persistence/size")),
        "{e:?}"
    );
    let e = schema_errors(&with(
        good(),
        "/spec/persistence/accessModes",
        json!(["ReadWriteSometimes"]),
    ));
    assert!(
        e.iter()
            .any(|m| m.starts_with("/spec/persistence/accessModes")),
        "{e:?}"
    );
}

#[test]
fn cel_refuses_ambiguous_key_sources() {
    let both = with(
        good(),
        "/spec/auth/apiKey",
        json!({"generate": true, "secretKeyRef": {"name": "s", "key": "k"}}),
    );
    let e = cel_errors(&both, None);
    assert!(e.iter().any(|m| m.contains("exactly one")), "{e:?}");
    let neither = with(good(), "/spec/auth/apiKey", json!({}));
    assert!(
        cel_errors(&neither, None)
            .iter()
            .any(|m| m.contains("exactly one"))
    );
    let from_secret = with(
        good(),
        "/spec/auth/apiKey",
        json!({"secretKeyRef": {"name": "s", "key": "k"}}),
    );
    assert_eq!(cel_errors(&from_secret, None), Vec::<String>::new());
}

#[test]
fn cel_refuses_read_only_key_without_read_write_key() {
    let mut v = good();
    v["spec"]["auth"].as_object_mut().unwrap().remove("apiKey");
    let e = cel_errors(&v, None);
    assert!(
        e.iter().any(|m| m.contains("readOnlyApiKey requires")),
        "{e:?}"
    );
}

#[test]
fn cel_refuses_source_ranges_without_load_balancer() {
    let v = with(
        good(),
        "/spec/service",
        json!({"type": "ClusterIP", "loadBalancerSourceRanges": ["10.0.0.0/8"]}),
    );
    assert!(
        cel_errors(&v, None)
            .iter()
            .any(|m| m.contains("LoadBalancer"))
    );
    let v = with(
        good(),
        "/spec/service",
        json!({"type": "LoadBalancer", "loadBalancerSourceRanges": ["10.0.0.0/8"]}),
    );
    assert_eq!(cel_errors(&v, None), Vec::<String>::new());
}

#[test]
fn cel_refuses_zero_size_and_storage_class_change() {
    let v = with(good(), "/spec/persistence/size", json!("0Gi"));
    assert!(
        cel_errors(&v, None)
            .iter()
            .any(|m| m.contains("greater than zero"))
    );
    let old = with(good(), "/spec/persistence/storageClassName", json!("fast"));
    let new = with(good(), "/spec/persistence/storageClassName", json!("slow"));
    let e = cel_errors(&new, Some(&old));
    assert!(e.iter().any(|m| m.contains("immutable")), "{e:?}");
    assert_eq!(cel_errors(&old, Some(&old)), Vec::<String>::new());
}

#[test]
fn operator_owned_config_key_is_refused_by_validation() {
    // Keys inside the free-form `config` are invisible to CEL (preserve-unknown-fields), so
    // the controller and `render` refuse them; the schema lets them through.
    let v = with(
        good(),
        "/spec/config",
        json!({"service": {"api_key": "hunter2"}, "cluster": {"enabled": false}}),
    );
    assert_eq!(schema_errors(&v), Vec::<String>::new());
    let cluster: api_types::QdrantCluster = serde_json::from_value(v).unwrap();
    let err = api_types::validation::validate_cluster(&cluster.spec).unwrap_err();
    let fields: Vec<_> = err.0.iter().map(|e| e.field.as_str()).collect();
    assert_eq!(
        fields,
        ["spec.config.cluster.enabled", "spec.config.service.api_key"]
    );
    assert!(err.to_string().contains("set spec.auth.apiKey instead"));
}

#[test]
fn operator_owned_config_keys_cannot_be_set_through_the_environment() {
    // Qdrant reads QDRANT__A__B as config key a.b, case-insensitively: the same owned keys
    // guard spec.pod.env as spec.config.
    let env = json!([
        {"name": "QDRANT__CLUSTER__ENABLED", "value": "false"},
        {"name": "QDRANT__SERVICE__HTTP_PORT", "value": "7000"},
        {"name": "qdrant__storage__storage_path", "value": "/elsewhere"},
        {"name": "QDRANT__SERVICE__API_KEY", "value": "hunter2"},
        {"name": "QDRANT__TLS__CERT", "value": "/mine.pem"},
        {"name": "POD_NAME", "value": "x"},
        {"name": "QDRANT__LOG_LEVEL", "value": "DEBUG"},
        {"name": "QDRANT__STORAGE__PERFORMANCE__MAX_SEARCH_THREADS", "value": "2"},
        {"name": "QDRANT_SERVICE_HTTP_PORT", "value": "7000"}
    ]);
    let v = with(good(), "/spec/pod", json!({"env": env}));
    assert_eq!(schema_errors(&v), Vec::<String>::new());
    let cluster: api_types::QdrantCluster = serde_json::from_value(v).unwrap();
    let err = api_types::validation::validate_cluster(&cluster.spec).unwrap_err();
    let fields: Vec<_> = err.0.iter().map(|e| e.field.as_str()).collect();
    assert_eq!(
        fields,
        [
            "spec.pod.env[0].name",
            "spec.pod.env[1].name",
            "spec.pod.env[2].name",
            "spec.pod.env[3].name",
            "spec.pod.env[4].name",
            "spec.pod.env[5].name",
        ],
        "{err}"
    );
    let text = err.to_string();
    assert!(
        text.contains("QDRANT__SERVICE__HTTP_PORT sets Qdrant's service.http_port, and service.http_port is owned by the operator: the REST port is fixed at 6333"),
        "{text}"
    );
    assert!(text.contains("set spec.auth.apiKey instead"), "{text}");
    assert!(
        text.contains("sets Qdrant's tls.cert, and tls is owned"),
        "{text}"
    );
    assert!(text.contains("POD_NAME is set by the operator"), "{text}");
}

/// Every 32-bit integer of every CRD is bounded by its type (the API server checks `maximum`,
/// not `format`), nested Kubernetes types (probes, ports, security contexts) included.
#[test]
fn every_32_bit_integer_has_a_maximum() {
    fn walk(node: &Value, path: &str, out: &mut Vec<String>, seen: &mut usize) {
        match node {
            Value::Object(obj) => {
                let format = obj.get("format").and_then(Value::as_str);
                if obj.get("type").and_then(Value::as_str) == Some("integer")
                    && matches!(format, Some("int32" | "uint32"))
                {
                    *seen += 1;
                    let limit = if format == Some("int32") {
                        f64::from(i32::MAX)
                    } else {
                        f64::from(u32::MAX)
                    };
                    match obj.get("maximum").and_then(Value::as_f64) {
                        Some(m) if m <= limit => {}
                        other => out.push(format!("{path}: maximum {other:?}")),
                    }
                }
                for (k, v) in obj {
                    walk(v, &format!("{path}/{k}"), out, seen);
                }
            }
            Value::Array(items) => {
                for (i, v) in items.iter().enumerate() {
                    walk(v, &format!("{path}/{i}"), out, seen);
                }
            }
            _ => {}
        }
    }
    let mut unbounded = vec![];
    let mut seen = 0;
    for (file, crd) in api_types::crd::all() {
        walk(
            &serde_json::to_value(&crd).unwrap(),
            file,
            &mut unbounded,
            &mut seen,
        );
    }
    assert!(seen > 20, "{seen} 32-bit integers");
    assert_eq!(unbounded, Vec::<String>::new());
}

#[test]
fn day2_fields_pass_schema_and_cel() {
    let v = with(
        good(),
        "/spec/tls",
        json!({"client": {"enabled": true}, "p2p": {"enabled": true}, "secretName": "demo-cert"}),
    );
    let v = with(v, "/spec/rebalance", json!({"enabled": true}));
    let v = with(v, "/spec/rollout", json!({"podReadyTimeoutSeconds": 900}));
    assert_eq!(schema_errors(&v), Vec::<String>::new());
    assert_eq!(cel_errors(&v, Some(&v)), Vec::<String>::new());
    let short = with(
        good(),
        "/spec/rollout",
        json!({"podReadyTimeoutSeconds": 5}),
    );
    assert!(!schema_errors(&short).is_empty());
}

#[test]
fn cel_refuses_turning_p2p_tls_on_or_off_after_creation() {
    let on = with(good(), "/spec/tls", json!({"p2p": {"enabled": true}}));
    let off = with(good(), "/spec/tls", json!({"client": {"enabled": true}}));
    for (old, new) in [(&good(), &on), (&on, &off), (&on, &good())] {
        let e = cel_errors(new, Some(old));
        assert!(
            e.iter()
                .any(|m| m.contains("spec.tls.p2p.enabled cannot change")),
            "{e:?}"
        );
    }
    // Client TLS may change; p2p may be set at creation.
    assert_eq!(cel_errors(&off, Some(&good())), Vec::<String>::new());
    assert_eq!(cel_errors(&on, None), Vec::<String>::new());
    assert_eq!(cel_errors(&on, Some(&on)), Vec::<String>::new());
}

#[test]
fn cel_keeps_spec_adoption_as_it_was_created() {
    let adopt = with(good(), "/spec/adoption", json!({"statefulSetName": "demo"}));
    let other_template = with(
        good(),
        "/spec/adoption",
        json!({"statefulSetName": "demo", "volumeClaimTemplate": "data"}),
    );
    for (old, new) in [
        (&adopt, &good()),
        (&good(), &adopt),
        (&adopt, &other_template),
    ] {
        let e = cel_errors(new, Some(old));
        assert!(
            e.iter().any(|m| m.contains("spec.adoption is set when")),
            "{e:?}"
        );
    }
    assert_eq!(cel_errors(&adopt, None), Vec::<String>::new());
    assert_eq!(cel_errors(&adopt, Some(&adopt)), Vec::<String>::new());
    assert_eq!(cel_errors(&good(), Some(&good())), Vec::<String>::new());
    assert_eq!(schema_errors(&adopt), Vec::<String>::new());
    let empty = with(good(), "/spec/adoption", json!({"statefulSetName": ""}));
    assert!(!schema_errors(&empty).is_empty());
}

#[test]
fn a_fixed_peer_id_is_refused() {
    let v = with(good(), "/spec/config", json!({"cluster": {"peer_id": 7}}));
    let cluster: api_types::QdrantCluster = serde_json::from_value(v).unwrap();
    let err = api_types::validation::validate_cluster(&cluster.spec).unwrap_err();
    assert_eq!(err.0[0].field, "spec.config.cluster.peer_id");
    assert!(err.to_string().contains("same peer id"), "{err}");
}

#[test]
fn zone_fields_pass_and_a_bad_zone_key_is_refused_by_schema_and_validation() {
    let v = with(good(), "/spec/zoneAware", json!(true));
    let v = with(v, "/spec/zoneTopologyKey", json!("example.com/rack-zone"));
    assert_eq!(schema_errors(&v), Vec::<String>::new());
    let cluster: api_types::QdrantCluster = serde_json::from_value(v).unwrap();
    assert!(cluster.spec.zone_aware);
    assert_eq!(cluster.spec.zone_topology_key(), "example.com/rack-zone");
    assert!(api_types::validation::validate_cluster(&cluster.spec).is_ok());
    let default: api_types::QdrantCluster = serde_json::from_value(good()).unwrap();
    assert!(!default.spec.zone_aware);
    assert_eq!(
        default.spec.zone_topology_key(),
        "topology.kubernetes.io/zone"
    );

    for bad in ["-zone", "Example.com/zone", "a/", "zone with space", "a//b"] {
        let v = with(good(), "/spec/zoneTopologyKey", json!(bad));
        assert!(!schema_errors(&v).is_empty(), "schema accepts {bad:?}");
        let cluster: api_types::QdrantCluster = serde_json::from_value(v).unwrap();
        let err = api_types::validation::validate_cluster(&cluster.spec).unwrap_err();
        assert_eq!(err.0[0].field, "spec.zoneTopologyKey", "{bad:?}: {err}");
        assert!(err.to_string().contains("not a label key"), "{err}");
    }
}
