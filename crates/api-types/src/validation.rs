//! Spec validation beyond the schema.
//!
//! The API server enforces the schema (types, enums, ranges, CEL rules), but `render` reads
//! files that never went through an API server, and some rules cannot be written in the schema
//! (keys inside the free-form `config` are invisible to CEL). [`validate_cluster`] repeats the
//! schema's rules and adds those, so the controller and `render` refuse the same input with
//! the same message, which always names the field.

use std::fmt;

use serde_json::Value;

use crate::cluster::{KeySource, QUANTITY_PATTERN, QdrantClusterSpec, ServiceType};

/// One problem with a spec: the field path (e.g. `spec.config.service.api_key`) and what was
/// expected.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldError {
    /// Path of the offending field from the object root.
    pub field: String,
    /// What is wrong and what was expected.
    pub message: String,
}

impl fmt::Display for FieldError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.field, self.message)
    }
}

/// Every problem found in a spec (never empty when returned as an error).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct ValidationErrors(pub Vec<FieldError>);

impl fmt::Display for ValidationErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let parts: Vec<String> = self.0.iter().map(ToString::to_string).collect();
        f.write_str(&parts.join("; "))
    }
}

/// Keys of Qdrant's config.yaml the operator sets itself, with what to use instead.
pub const OPERATOR_OWNED_CONFIG_KEYS: &[(&str, &str)] = &[
    (
        "cluster.enabled",
        "the operator always runs Qdrant in cluster mode",
    ),
    ("cluster.p2p.port", "the p2p port is fixed at 6335"),
    ("cluster.p2p.enable_tls", "set spec.tls.p2p instead"),
    ("service.http_port", "the REST port is fixed at 6333"),
    ("service.grpc_port", "the gRPC port is fixed at 6334"),
    (
        "service.host",
        "Qdrant must listen on all interfaces in a pod",
    ),
    (
        "service.api_key",
        "set spec.auth.apiKey instead; keys never go into a ConfigMap",
    ),
    (
        "service.read_only_api_key",
        "set spec.auth.readOnlyApiKey instead; keys never go into a ConfigMap",
    ),
    ("service.jwt_rbac", "not supported by the operator yet"),
    ("service.enable_tls", "set spec.tls.client instead"),
    ("tls", "set spec.tls instead"),
    (
        "storage.storage_path",
        "the data volume is mounted by the operator",
    ),
    (
        "storage.snapshots_path",
        "the snapshots path is set by the operator",
    ),
];

/// Environment variables the operator sets on the Qdrant container.
pub const OPERATOR_OWNED_ENV: &[&str] = &[
    "POD_NAME",
    "QDRANT__SERVICE__API_KEY",
    "QDRANT__SERVICE__READ_ONLY_API_KEY",
    "QDRANT_INIT_FILE_PATH",
];

/// Volume names the operator uses in the pod template.
pub const OPERATOR_OWNED_VOLUMES: &[&str] = &["storage", "config", "init", "tmp"];

/// Paths the operator mounts in the Qdrant container.
pub const OPERATOR_OWNED_MOUNT_PATHS: &[&str] = &[
    "/qdrant/storage",
    "/qdrant/snapshots",
    "/qdrant/config",
    "/qdrant/init",
    "/tmp",
];

/// Labels the operator uses to select its pods; `spec.pod.labels` cannot set them.
pub const SELECTOR_LABEL_KEYS: &[&str] = &["app.kubernetes.io/name", "app.kubernetes.io/instance"];

/// Validates a QdrantCluster spec. Errors list every offending field at once.
pub fn validate_cluster(spec: &QdrantClusterSpec) -> Result<(), ValidationErrors> {
    let mut errs = vec![];
    let mut err = |field: &str, message: String| {
        errs.push(FieldError {
            field: field.to_string(),
            message,
        })
    };

    if !(1..=100).contains(&spec.replicas) {
        err(
            "spec.replicas",
            format!("must be between 1 and 100, got {}", spec.replicas),
        );
    }
    if spec.image.repository.is_empty() {
        err("spec.image.repository", "must not be empty".into());
    }
    if spec.image.tag.is_empty() {
        err("spec.image.tag", "must not be empty".into());
    }
    if !is_quantity(&spec.persistence.size) || quantity_is_zero(&spec.persistence.size) {
        err(
            "spec.persistence.size",
            format!(
                "must be a positive Kubernetes quantity such as 10Gi, got {:?}",
                spec.persistence.size
            ),
        );
    }
    if spec.persistence.access_modes.is_empty() {
        err(
            "spec.persistence.accessModes",
            "must list at least one access mode".into(),
        );
    }

    match &spec.config {
        None => {}
        Some(Value::Object(_)) => {
            for (key, why) in OPERATOR_OWNED_CONFIG_KEYS {
                if let Some(v) = lookup(spec.config.as_ref(), key)
                    && !v.is_null()
                {
                    err(
                        &format!("spec.config.{key}"),
                        format!("is owned by the operator: {why}"),
                    );
                }
            }
        }
        Some(other) => err(
            "spec.config",
            format!(
                "must be a mapping of Qdrant configuration keys, got {}",
                json_kind(other)
            ),
        ),
    }

    for (field, source) in [
        ("spec.auth.apiKey", &spec.auth.api_key),
        ("spec.auth.readOnlyApiKey", &spec.auth.read_only_api_key),
    ] {
        if let Some(KeySource {
            generate,
            secret_key_ref,
        }) = source
            && *generate == secret_key_ref.is_some()
        {
            err(
                field,
                "set exactly one of generate: true or secretKeyRef".into(),
            );
        }
    }
    if spec.auth.read_only_api_key.is_some() && spec.auth.api_key.is_none() {
        err(
            "spec.auth.readOnlyApiKey",
            "requires spec.auth.apiKey".into(),
        );
    }

    if !spec.service.load_balancer_source_ranges.is_empty()
        && spec.service.type_ != ServiceType::LoadBalancer
    {
        err(
            "spec.service.loadBalancerSourceRanges",
            "requires spec.service.type LoadBalancer".into(),
        );
    }
    if let Some(pdb) = &spec.pod_disruption_budget
        && let Some(m) = pdb.max_unavailable
        && m < 1
    {
        err(
            "spec.podDisruptionBudget.maxUnavailable",
            format!("must be at least 1, got {m}"),
        );
    }

    for (i, e) in spec.pod.env.iter().enumerate() {
        if OPERATOR_OWNED_ENV.contains(&e.name.as_str()) {
            err(
                &format!("spec.pod.env[{i}].name"),
                format!("{} is set by the operator", e.name),
            );
        }
    }
    for key in SELECTOR_LABEL_KEYS {
        if spec.pod.labels.contains_key(*key) {
            err(
                &format!("spec.pod.labels.{key}"),
                "is a selector label set by the operator".into(),
            );
        }
    }
    for (i, v) in spec.pod.extra_volumes.iter().enumerate() {
        if OPERATOR_OWNED_VOLUMES.contains(&v.name.as_str()) {
            err(
                &format!("spec.pod.extraVolumes[{i}].name"),
                format!(
                    "{:?} is a volume of the operator; choose another name",
                    v.name
                ),
            );
        }
    }
    for (i, m) in spec.pod.extra_volume_mounts.iter().enumerate() {
        if OPERATOR_OWNED_MOUNT_PATHS
            .iter()
            .any(|p| m.mount_path == *p || m.mount_path.starts_with(&format!("{p}/")))
        {
            err(
                &format!("spec.pod.extraVolumeMounts[{i}].mountPath"),
                format!("{} is mounted by the operator", m.mount_path),
            );
        }
    }
    for (field, list) in [
        ("spec.pod.sidecars", &spec.pod.sidecars),
        ("spec.pod.initContainers", &spec.pod.init_containers),
    ] {
        for (i, c) in list.iter().enumerate() {
            if c.name == "qdrant" {
                err(
                    &format!("{field}[{i}].name"),
                    "\"qdrant\" is the operator's container; choose another name".into(),
                );
            }
        }
    }

    if errs.is_empty() {
        Ok(())
    } else {
        Err(ValidationErrors(errs))
    }
}

/// Looks a dotted key up in a JSON object (`"service.api_key"`).
fn lookup<'a>(root: Option<&'a Value>, dotted: &str) -> Option<&'a Value> {
    dotted.split('.').try_fold(root?, |v, k| v.get(k))
}

fn json_kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "a list",
        Value::Object(_) => "a mapping",
    }
}

/// True when `s` matches the Kubernetes quantity grammar ([`QUANTITY_PATTERN`]), checked by
/// hand so this crate needs no regex engine: sign, digits with an optional fraction, then an
/// optional binary/decimal suffix or exponent.
pub fn is_quantity(s: &str) -> bool {
    debug_assert!(QUANTITY_PATTERN.starts_with('^'));
    let s = s.strip_prefix(['+', '-']).unwrap_or(s);
    let num_end = s
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(s.len());
    let (num, suffix) = s.split_at(num_end);
    if !valid_decimal(num) {
        return false;
    }
    match suffix {
        "" | "Ki" | "Mi" | "Gi" | "Ti" | "Pi" | "Ei" | "n" | "u" | "m" | "k" | "M" | "G" | "T"
        | "P" | "E" => true,
        exp if exp.starts_with(['e', 'E']) => {
            let rest = &exp[1..];
            let rest = rest.strip_prefix(['+', '-']).unwrap_or(rest);
            valid_decimal(rest)
        }
        _ => false,
    }
}

fn valid_decimal(num: &str) -> bool {
    let mut parts = num.splitn(2, '.');
    let int = parts.next().unwrap_or("");
    let frac = parts.next();
    let digits = |p: &str| p.chars().all(|c| c.is_ascii_digit());
    match frac {
        None => !int.is_empty() && digits(int),
        Some(f) => (!int.is_empty() || !f.is_empty()) && digits(int) && digits(f),
    }
}

fn quantity_is_zero(s: &str) -> bool {
    let digits: String = s
        .chars()
        .take_while(|c| c.is_ascii_digit() || *c == '.' || *c == '+' || *c == '-')
        .collect();
    digits
        .chars()
        .all(|c| c == '0' || c == '.' || c == '+' || c == '-')
}

/// Validates a QdrantCollection spec beyond the schema (for the controller, and for specs
/// that never went through an API server). Errors list every offending field.
///
/// `name` is the collection's name in Qdrant (`spec.collectionName`, else metadata.name).
pub fn validate_collection(
    spec: &crate::collection::QdrantCollectionSpec,
    name: &str,
) -> Result<(), ValidationErrors> {
    let mut errs = vec![];
    let mut err = |field: String, message: String| errs.push(FieldError { field, message });
    if spec.cluster.is_some() == spec.connection.is_some() {
        err(
            "spec".into(),
            "set exactly one of cluster or connection".into(),
        );
    }
    if let Some(c) = &spec.connection
        && !(c.url.starts_with("http://") || c.url.starts_with("https://"))
    {
        err(
            "spec.connection.url".into(),
            format!("must start with http:// or https://, got {:?}", c.url),
        );
    }
    if spec.vectors.is_some() && spec.named_vectors.is_some() {
        err(
            "spec.namedVectors".into(),
            "set vectors (one unnamed vector) or namedVectors, not both".into(),
        );
    }
    let mut vectors: Vec<(String, &crate::collection::VectorParams)> = vec![];
    if let Some(v) = &spec.vectors {
        vectors.push(("spec.vectors".into(), v));
    }
    for (name, v) in spec.named_vectors.iter().flatten() {
        if name.is_empty() {
            err(
                "spec.namedVectors".into(),
                "vector names must not be empty".into(),
            );
        }
        vectors.push((format!("spec.namedVectors.{name}"), v));
    }
    for (path, v) in &vectors {
        if v.size == 0 {
            err(format!("{path}.size"), "must be at least 1".into());
        }
        for (q, qpath) in [(&v.quantization, "quantization")] {
            if let Some(q) = q {
                check_quantization(q, &format!("{path}.{qpath}"), &mut err);
            }
        }
    }
    if let Some(q) = &spec.quantization_config {
        check_quantization(q, "spec.quantizationConfig", &mut err);
    }
    let mut seen = std::collections::BTreeSet::new();
    for (i, idx) in spec.payload_indexes.iter().enumerate() {
        if idx.field.is_empty() {
            err(
                format!("spec.payloadIndexes[{i}].field"),
                "must not be empty".into(),
            );
        }
        if !seen.insert(idx.field.as_str()) {
            err(
                format!("spec.payloadIndexes[{i}].field"),
                format!("{:?} is listed twice", idx.field),
            );
        }
        if let Some(p) = &idx.params
            && !p.is_object()
        {
            err(
                format!("spec.payloadIndexes[{i}].params"),
                "must be a mapping".into(),
            );
        }
    }
    let mut seen = std::collections::BTreeSet::new();
    for (i, a) in spec.aliases.iter().enumerate() {
        if a.is_empty() {
            err(format!("spec.aliases[{i}]"), "must not be empty".into());
        }
        if !seen.insert(a.as_str()) {
            err(
                format!("spec.aliases[{i}]"),
                format!("{a:?} is listed twice"),
            );
        }
        if a == name {
            err(
                format!("spec.aliases[{i}]"),
                "an alias cannot have the collection's own name".into(),
            );
        }
    }
    if errs.is_empty() {
        Ok(())
    } else {
        Err(ValidationErrors(errs))
    }
}

fn check_quantization(
    q: &crate::collection::QuantizationConfig,
    path: &str,
    err: &mut impl FnMut(String, String),
) {
    let set = [q.scalar.is_some(), q.product.is_some(), q.binary.is_some()]
        .iter()
        .filter(|b| **b)
        .count();
    if set != 1 {
        err(
            path.to_string(),
            "set exactly one of scalar, product or binary".into(),
        );
    }
    if let Some(s) = &q.scalar
        && let Some(quantile) = s.quantile
        && !(0.5..=1.0).contains(&quantile)
    {
        err(
            format!("{path}.scalar.quantile"),
            format!("must be between 0.5 and 1, got {quantile}"),
        );
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn quantities() {
        for ok in [
            "10Gi", "5Gi", "1", "1.5", ".5Ti", "100M", "1e3", "2E+2", "+1Ki",
        ] {
            assert!(is_quantity(ok), "{ok}");
        }
        for bad in ["", "Gi", "10GB", "10 Gi", "1..2", "abc", "1e", "10gi"] {
            assert!(!is_quantity(bad), "{bad}");
        }
        assert!(quantity_is_zero("0Gi"));
        assert!(quantity_is_zero("0.0"));
        assert!(!quantity_is_zero("0.5Gi"));
    }
}
