//! Spec validation beyond the schema.
//!
//! The API server enforces the schema (types, enums, ranges, CEL rules), but `render` reads
//! files that never went through an API server, and some rules cannot be written in the schema
//! (keys inside the free-form `config` are invisible to CEL). [`validate_cluster`] repeats the
//! schema's rules and adds those, so the controller and `render` refuse the same input with
//! the same message, which always names the field. [`validate_backup_spec`],
//! [`validate_schedule`] and [`validate_restore`] do the same for the backup kinds, with a real
//! cron parser and time zone database behind them.

use std::fmt;

use serde_json::Value;

use crate::{
    backup::{
        BackupMethod, CRON_MACROS, MAX_PART_SIZE_MIB, MAX_PREFIX_LEN,
        MAX_PRESIGNED_URL_EXPIRY_SECONDS, MAX_UPLOAD_CONCURRENCY, MIN_PART_SIZE_MIB,
        MIN_PRESIGNED_URL_EXPIRY_SECONDS, QdrantBackupScheduleSpec, QdrantBackupSpec,
        QdrantRestoreSpec, S3Storage,
    },
    cluster::{KeySource, QUANTITY_PATTERN, QdrantClusterSpec, ServiceType},
};

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
    (
        "cluster.peer_id",
        "every pod would get the same peer id; Qdrant picks a unique one per peer",
    ),
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
    (
        "service.alt_api_key",
        "the operator sets it while a rotated spec.auth.apiKey rolls out",
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

/// Environment variables the operator sets on the Qdrant container. `spec.pod.env` cannot set
/// them, nor any variable that sets an [`OPERATOR_OWNED_CONFIG_KEYS`] key
/// ([`env_config_key`]).
pub const OPERATOR_OWNED_ENV: &[&str] = &[
    "POD_NAME",
    "QDRANT__SERVICE__API_KEY",
    "QDRANT__SERVICE__ALT_API_KEY",
    "QDRANT__SERVICE__READ_ONLY_API_KEY",
    "QDRANT_INIT_FILE_PATH",
];

/// The key of Qdrant's configuration that environment variable `name` sets, dotted and in
/// lower case (`QDRANT__SERVICE__HTTP_PORT` → `service.http_port`), or `None` for a variable
/// Qdrant does not read as configuration. Qdrant 1.18 merges `Environment::with_prefix
/// ("QDRANT").separator("__")` (config-rs, `Settings::new` in `src/settings.rs`) over its
/// config files: the prefix is matched and the keys are read case-insensitively.
pub fn env_config_key(name: &str) -> Option<String> {
    let lower = name.to_ascii_lowercase();
    let rest = lower.strip_prefix("qdrant__")?;
    let parts: Vec<&str> = rest.split("__").collect();
    if parts.iter().any(|p| p.is_empty()) {
        return None;
    }
    Some(parts.join("."))
}

/// The operator-owned config key that `key` (dotted) is or lies under, with why it is owned.
fn owned_config_key(key: &str) -> Option<(&'static str, &'static str)> {
    OPERATOR_OWNED_CONFIG_KEYS
        .iter()
        .find(|(owned, _)| key == *owned || key.starts_with(&format!("{owned}.")))
        .copied()
}

/// Volume names the operator uses in the pod template.
pub const OPERATOR_OWNED_VOLUMES: &[&str] = &["storage", "config", "init", "tmp", "tls"];

/// Paths the operator mounts in the Qdrant container (a test ties this list to the builder's
/// mounts); `spec.pod.extraVolumeMounts` cannot mount at or under them.
pub const OPERATOR_OWNED_MOUNT_PATHS: &[&str] = &[
    "/qdrant/storage",
    "/qdrant/snapshots",
    "/qdrant/config",
    "/qdrant/cluster-info",
    "/qdrant/init",
    "/qdrant/tls",
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
            if let Some(q) = lookup(spec.config.as_ref(), "storage.quotas") {
                for (field, message) in quota_errors(q) {
                    err(&field, message);
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
        let owned = env_config_key(&e.name)
            .and_then(|key| owned_config_key(&key).map(|(owned, why)| (key, owned, why)));
        if let Some((key, owned, why)) = owned {
            err(
                &format!("spec.pod.env[{i}].name"),
                format!(
                    "{} sets Qdrant's {key}, and {owned} is owned by the operator: {why}",
                    e.name
                ),
            );
        } else if OPERATOR_OWNED_ENV.contains(&e.name.as_str()) {
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

    if let Some(key) = &spec.zone_topology_key
        && let Err(why) = validate_label_key(key)
    {
        err("spec.zoneTopologyKey", why);
    }

    if errs.is_empty() {
        Ok(())
    } else {
        Err(ValidationErrors(errs))
    }
}

/// Checks a Kubernetes label key (`[prefix/]name`, as `kubectl label` accepts it): the
/// optional prefix a DNS subdomain of at most 253 characters, the name 1-63 characters of
/// `[A-Za-z0-9-_.]` that start and end with a letter or digit.
///
/// # Errors
/// What is wrong with `key`, for a message naming the field.
pub fn validate_label_key(key: &str) -> Result<(), String> {
    let (prefix, name) = match key.rsplit_once('/') {
        Some((p, n)) => (Some(p), n),
        None => (None, key),
    };
    let alnum = |c: char| c.is_ascii_alphanumeric();
    let edges_ok = |s: &str, ok: &dyn Fn(char) -> bool| {
        s.chars().next().is_some_and(ok) && s.chars().last().is_some_and(ok)
    };
    if name.is_empty() || name.len() > 63 {
        return Err(format!(
            "{key:?} is not a label key: the name part must be 1-63 characters"
        ));
    }
    if !edges_ok(name, &alnum)
        || !name
            .chars()
            .all(|c| alnum(c) || matches!(c, '-' | '_' | '.'))
    {
        return Err(format!(
            "{key:?} is not a label key: the name part may hold letters, digits, '-', '_' and \
             '.', and must start and end with a letter or digit"
        ));
    }
    if let Some(prefix) = prefix {
        let lower = |c: char| c.is_ascii_lowercase() || c.is_ascii_digit();
        let good = !prefix.is_empty()
            && prefix.len() <= 253
            && prefix.split('.').all(|label| {
                !label.is_empty()
                    && label.len() <= 63
                    && edges_ok(label, &lower)
                    && label.chars().all(|c| lower(c) || c == '-')
            });
        if !good {
            return Err(format!(
                "{key:?} is not a label key: the prefix before '/' must be a DNS subdomain \
                 (lowercase letters, digits, '-' and '.', at most 253 characters)"
            ));
        }
    }
    Ok(())
}

/// Looks a dotted key up in a JSON object (`"service.api_key"`).
/// Problems with `spec.config.storage.quotas` (Qdrant 1.19's `QuotaConfig`, applied with
/// `PUT /quotas`): a mapping of `enabled` (boolean), `max_resident_memory_percent` and
/// `max_disk_usage_percent` (integers 1–100) and `release_margin_percent` (0–100), as
/// `(field path, message)`.
fn quota_errors(quotas: &Value) -> Vec<(String, String)> {
    let path = "spec.config.storage.quotas";
    let Some(map) = quotas.as_object() else {
        return vec![(
            path.into(),
            format!("must be a mapping, got {}", json_kind(quotas)),
        )];
    };
    let mut errs = vec![];
    for (key, value) in map {
        let field = format!("{path}.{key}");
        let range = match key.as_str() {
            "enabled" => {
                if !value.is_boolean() {
                    errs.push((
                        field,
                        format!("must be a boolean, got {}", json_kind(value)),
                    ));
                }
                continue;
            }
            "max_resident_memory_percent" | "max_disk_usage_percent" => 1..=100,
            "release_margin_percent" => 0..=100,
            _ => {
                errs.push((
                    field,
                    "is not a Qdrant quota setting (enabled, max_resident_memory_percent, \
                     max_disk_usage_percent, release_margin_percent)"
                        .into(),
                ));
                continue;
            }
        };
        if value.is_null() {
            continue;
        }
        if !value.as_u64().is_some_and(|n| range.contains(&n)) {
            errs.push((
                field,
                format!(
                    "must be an integer from {} to {}, got {value}",
                    range.start(),
                    range.end()
                ),
            ));
        }
    }
    errs
}

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
    if let Some(n) = &spec.collection_name
        && let Err(e) = validate_collection_name(n)
    {
        err("spec.collectionName".into(), e);
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
    check_memory(spec, &vectors, &mut err);
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
        if let Some(memory) = idx.params.as_ref().and_then(|p| p.get("memory")) {
            if !matches!(memory.as_str(), Some("cold" | "cached" | "pinned")) {
                err(
                    format!("spec.payloadIndexes[{i}].params.memory"),
                    format!("must be cold, cached or pinned (Qdrant's spelling), got {memory}"),
                );
            }
            if idx.params.as_ref().and_then(|p| p.get("on_disk")).is_some() {
                err(
                    format!("spec.payloadIndexes[{i}].params.memory"),
                    "set memory or the deprecated on_disk, not both".into(),
                );
            }
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

/// The schema's rules on Qdrant 1.19 `memory` fields: never beside the deprecated flag it
/// replaces (`onDisk`, `alwaysRam`, `onDiskPayload`), and not Pinned for dense vectors or
/// payloads (Qdrant refuses both). `vectors` are the spec's dense vectors with their paths.
fn check_memory(
    spec: &crate::collection::QdrantCollectionSpec,
    vectors: &[(String, &crate::collection::VectorParams)],
    err: &mut impl FnMut(String, String),
) {
    use crate::collection::{HnswConfig, Memory, QuantizationConfig};
    let mut both = |path: String, memory: Option<Memory>, legacy: bool, legacy_name: &str| {
        if memory.is_some() && legacy {
            err(
                path,
                format!("set memory or the deprecated {legacy_name}, not both"),
            );
        }
    };
    let hnsw = |h: &Option<HnswConfig>| h.as_ref().map(|h| (h.memory, h.on_disk.is_some()));
    let quantization = |q: &Option<QuantizationConfig>| {
        q.as_ref().and_then(|q| {
            q.scalar
                .as_ref()
                .map(|s| ("scalar", s.memory, s.always_ram.is_some()))
                .or_else(|| {
                    q.product
                        .as_ref()
                        .map(|p| ("product", p.memory, p.always_ram.is_some()))
                })
                .or_else(|| {
                    q.binary
                        .as_ref()
                        .map(|b| ("binary", b.memory, b.always_ram.is_some()))
                })
        })
    };
    let mut pinned = vec![];
    for (path, v) in vectors {
        both(
            format!("{path}.memory"),
            v.memory,
            v.on_disk.is_some(),
            "onDisk",
        );
        if v.memory == Some(Memory::Pinned) {
            pinned.push(format!("{path}.memory"));
        }
        if let Some((m, legacy)) = hnsw(&v.hnsw) {
            both(format!("{path}.hnsw.memory"), m, legacy, "onDisk");
        }
        if let Some((kind, m, legacy)) = quantization(&v.quantization) {
            both(
                format!("{path}.quantization.{kind}.memory"),
                m,
                legacy,
                "alwaysRam",
            );
        }
    }
    if let Some((m, legacy)) = hnsw(&spec.hnsw_config) {
        both("spec.hnswConfig.memory".into(), m, legacy, "onDisk");
    }
    if let Some((kind, m, legacy)) = quantization(&spec.quantization_config) {
        both(
            format!("spec.quantizationConfig.{kind}.memory"),
            m,
            legacy,
            "alwaysRam",
        );
    }
    for (name, s) in spec.sparse_vectors.iter().flatten() {
        if let Some(i) = &s.index {
            both(
                format!("spec.sparseVectors.{name}.index.memory"),
                i.memory,
                i.on_disk.is_some(),
                "onDisk",
            );
        }
    }
    let payload_memory = spec.payload.as_ref().and_then(|p| p.memory);
    both(
        "spec.payload.memory".into(),
        payload_memory,
        spec.on_disk_payload.is_some(),
        "onDiskPayload",
    );
    if payload_memory == Some(Memory::Pinned) {
        err(
            "spec.payload.memory".into(),
            "Pinned is not supported for payload storage (use Cold or Cached)".into(),
        );
    }
    for path in pinned {
        err(
            path,
            "Pinned is not supported for dense vector storage (use Cold or Cached)".into(),
        );
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

/// Characters Qdrant refuses in a collection name (`validate_collection_name` in Qdrant's
/// `common::validation`).
pub const COLLECTION_NAME_FORBIDDEN_CHARS: &[char] =
    &['<', '>', ':', '"', '/', '\\', '|', '?', '*', '\0', '\u{1F}'];

/// Checks a collection name as Qdrant does when creating a collection: 1 to 255 characters,
/// none of `< > : " / \ | ? *` or control characters NUL and 0x1F; also not `.` or `..`
/// (Qdrant names a directory after the collection).
///
/// Errors: what is wrong, without the field path (callers add it).
pub fn validate_collection_name(name: &str) -> Result<(), String> {
    if name.is_empty() {
        return Err("collection name must not be empty".into());
    }
    if name.chars().count() > 255 {
        return Err(format!(
            "collection name must be at most 255 characters, got {}",
            name.chars().count()
        ));
    }
    if let Some(c) = name
        .chars()
        .find(|c| COLLECTION_NAME_FORBIDDEN_CHARS.contains(c))
    {
        return Err(format!(
            "collection name {name:?} must not contain {c:?} (Qdrant refuses < > : \" / \\ | ? * and control characters)"
        ));
    }
    if name == "." || name == ".." {
        return Err(format!("collection name must not be {name:?}"));
    }
    Ok(())
}

/// Checks an S3 bucket name against S3's naming rules for general purpose buckets: 3-63
/// characters of lowercase letters, digits, `.` and `-`; starts and ends with a letter or
/// digit; no `..`; not formatted as an IPv4 address; none of the reserved prefixes (`xn--`,
/// `sthree-`, `amzn-s3-demo-`) or suffixes (`-s3alias`, `--ol-s3`, `.mrap`, `--x-s3`,
/// `--table-s3`).
///
/// Errors: what is wrong, without the field path.
pub fn validate_bucket_name(bucket: &str) -> Result<(), String> {
    if !(3..=63).contains(&bucket.len()) {
        return Err(format!(
            "must be 3 to 63 characters long, got {} ({bucket:?})",
            bucket.len()
        ));
    }
    if let Some(c) = bucket
        .chars()
        .find(|c| !(c.is_ascii_lowercase() || c.is_ascii_digit() || *c == '.' || *c == '-'))
    {
        return Err(format!(
            "{bucket:?} contains {c:?}: only lowercase letters, digits, '.' and '-' are allowed"
        ));
    }
    let alnum = |c: Option<char>| c.is_some_and(|c| c.is_ascii_lowercase() || c.is_ascii_digit());
    if !alnum(bucket.chars().next()) || !alnum(bucket.chars().last()) {
        return Err(format!(
            "{bucket:?} must start and end with a lowercase letter or digit"
        ));
    }
    if bucket.contains("..") {
        return Err(format!(
            "{bucket:?} must not contain two adjacent periods (..)"
        ));
    }
    let parts: Vec<&str> = bucket.split('.').collect();
    if parts.len() == 4
        && parts
            .iter()
            .all(|p| !p.is_empty() && p.chars().all(|c| c.is_ascii_digit()))
    {
        return Err(format!("{bucket:?} must not be formatted as an IP address"));
    }
    for prefix in ["xn--", "sthree-", "amzn-s3-demo-"] {
        if bucket.starts_with(prefix) {
            return Err(format!(
                "{bucket:?} must not start with {prefix:?} (reserved by S3)"
            ));
        }
    }
    for suffix in ["-s3alias", "--ol-s3", ".mrap", "--x-s3", "--table-s3"] {
        if bucket.ends_with(suffix) {
            return Err(format!(
                "{bucket:?} must not end with {suffix:?} (reserved by S3)"
            ));
        }
    }
    Ok(())
}

/// Checks a key prefix: at most [`MAX_PREFIX_LEN`] bytes, no leading `/`, no `..` segment.
///
/// Errors: what is wrong, without the field path.
pub fn validate_key_prefix(prefix: &str) -> Result<(), String> {
    if prefix.len() > MAX_PREFIX_LEN {
        return Err(format!(
            "must be at most {MAX_PREFIX_LEN} bytes, got {}",
            prefix.len()
        ));
    }
    if prefix.starts_with('/') {
        return Err(format!(
            "{prefix:?} must not start with '/' (write e.g. \"qdrant/prod\")"
        ));
    }
    if prefix.split('/').any(|seg| seg == "..") {
        return Err(format!("{prefix:?} must not contain a \"..\" segment"));
    }
    if prefix.chars().any(char::is_control) {
        return Err(format!("{prefix:?} must not contain control characters"));
    }
    Ok(())
}

/// Checks an S3 endpoint: an absolute `http://` or `https://` URL with a host, without
/// credentials, query or fragment.
///
/// Errors: what is wrong, without the field path.
pub fn validate_endpoint(endpoint: &str) -> Result<(), String> {
    let url = url::Url::parse(endpoint).map_err(|e| {
        format!("must be an http:// or https:// URL such as http://minio.minio.svc:9000, got {endpoint:?} ({e})")
    })?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(format!(
            "must be an http:// or https:// URL, got scheme {:?}",
            url.scheme()
        ));
    }
    if url.host_str().is_none_or(str::is_empty) {
        return Err(format!("must name a host, got {endpoint:?}"));
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err("must not contain credentials; use credentialsSecretRef".into());
    }
    if url.query().is_some() || url.fragment().is_some() {
        return Err(format!(
            "must not have a query or fragment, got {endpoint:?}"
        ));
    }
    Ok(())
}

/// Parses `retention.maxAge`: a whole number (no sign, no leading zero) followed by `m`
/// (minutes), `h` (hours), `d` (days of 24 hours) or `w` (weeks), e.g. `30m`, `12h`, `7d`,
/// `2w`.
///
/// Errors: what is wrong, without the field path.
pub fn parse_max_age(s: &str) -> Result<jiff::SignedDuration, String> {
    const EXPECTED: &str =
        "expected a whole number followed by m, h, d or w, e.g. 30m, 12h, 7d, 2w";
    let Some(unit) = s.chars().last() else {
        return Err(format!("must not be empty: {EXPECTED}"));
    };
    let digits = &s[..s.len() - unit.len_utf8()];
    let secs_per_unit: i64 = match unit {
        'm' => 60,
        'h' => 3600,
        'd' => 86_400,
        'w' => 604_800,
        _ => return Err(format!("{s:?} does not end in a unit: {EXPECTED}")),
    };
    if digits.is_empty() || !digits.chars().all(|c| c.is_ascii_digit()) {
        return Err(format!("{s:?} is not a duration: {EXPECTED}"));
    }
    if digits.starts_with('0') {
        return Err(format!(
            "{s:?} must be positive and have no leading zero: {EXPECTED}"
        ));
    }
    let n: i64 = digits.parse().map_err(|_| format!("{s:?} is too large"))?;
    let secs = n
        .checked_mul(secs_per_unit)
        .ok_or_else(|| format!("{s:?} is too large"))?;
    Ok(jiff::SignedDuration::from_secs(secs))
}

/// One field of a five-field cron expression: name, bounds, and whether month or weekday
/// names are allowed.
struct CronField {
    name: &'static str,
    min: u32,
    max: u32,
    names: &'static [&'static str],
}

const MONTH_NAMES: &[&str] = &[
    "jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec",
];
const WEEKDAY_NAMES: &[&str] = &["sun", "mon", "tue", "wed", "thu", "fri", "sat"];

const CRON_FIELDS: [CronField; 5] = [
    CronField {
        name: "minute",
        min: 0,
        max: 59,
        names: &[],
    },
    CronField {
        name: "hour",
        min: 0,
        max: 23,
        names: &[],
    },
    CronField {
        name: "day-of-month",
        min: 1,
        max: 31,
        names: &[],
    },
    CronField {
        name: "month",
        min: 1,
        max: 12,
        names: MONTH_NAMES,
    },
    CronField {
        name: "day-of-week",
        min: 0,
        max: 6,
        names: WEEKDAY_NAMES,
    },
];

impl CronField {
    /// A number or (for month and weekday) a three-letter name, within bounds.
    fn value(&self, token: &str, item: &str) -> Result<u32, String> {
        let v = if !token.is_empty() && token.chars().all(|c| c.is_ascii_digit()) {
            token
                .parse::<u32>()
                .map_err(|_| format!("{} field {item:?}: {token} is too large", self.name))?
        } else if let Some(i) = self
            .names
            .iter()
            .position(|n| n.eq_ignore_ascii_case(token))
        {
            // Names count from the field's minimum (jan = 1, sun = 0).
            u32::try_from(i).unwrap_or(0) + self.min
        } else {
            let names = if self.names.is_empty() {
                String::new()
            } else {
                format!(" or a name ({})", self.names.join(", "))
            };
            return Err(format!(
                "{} field {item:?}: {token:?} is not a number{names} (Kubernetes CronJobs do not support L, W, # or other extensions)",
                self.name
            ));
        };
        if v < self.min || v > self.max {
            return Err(format!(
                "{} field {item:?}: {v} is out of range {}-{}",
                self.name, self.min, self.max
            ));
        }
        Ok(v)
    }

    /// One comma-separated item: `*`, `?`, `N`, `N-M`, each optionally followed by `/step`
    /// (the grammar of the standard parser Kubernetes CronJobs use).
    fn check_item(&self, item: &str) -> Result<(), String> {
        let (range, step) = match item.split_once('/') {
            Some((r, s)) => (r, Some(s)),
            None => (item, None),
        };
        if let Some(step) = step {
            let ok = !step.is_empty()
                && step.chars().all(|c| c.is_ascii_digit())
                && step.parse::<u32>().is_ok_and(|n| n > 0);
            if !ok {
                return Err(format!(
                    "{} field {item:?}: the step after / must be a positive number",
                    self.name
                ));
            }
        }
        if range == "*" || range == "?" {
            return Ok(());
        }
        match range.split_once('-') {
            Some((lo, hi)) => {
                let (lo, hi) = (self.value(lo, item)?, self.value(hi, item)?);
                if lo > hi {
                    return Err(format!(
                        "{} field {item:?}: range start {lo} is after its end {hi}",
                        self.name
                    ));
                }
            }
            None => {
                self.value(range, item)?;
            }
        }
        Ok(())
    }
}

/// Checks a cron schedule as a Kubernetes CronJob accepts it: exactly five space-separated
/// fields (minute, hour, day-of-month, month, day-of-week; numbers, `*`, `?`, ranges `a-b`,
/// steps `/n`, lists `a,b`, month and weekday names) or one of [`CRON_MACROS`], and no `TZ=` /
/// `CRON_TZ=` prefix. The expression is then parsed by `croner`.
///
/// Errors: what is wrong, without the field path.
pub fn validate_cron_schedule(schedule: &str) -> Result<(), String> {
    let s = schedule.trim();
    if s.is_empty() {
        return Err(
            "must not be empty: expected 5 fields (minute hour day-of-month month day-of-week), e.g. \"0 2 * * *\"".into(),
        );
    }
    if s.starts_with("TZ=") || s.starts_with("CRON_TZ=") {
        return Err(format!(
            "{schedule:?} must not start with TZ= or CRON_TZ=: set spec.timeZone instead"
        ));
    }
    let pattern = if s.starts_with('@') {
        if !CRON_MACROS.contains(&s) {
            return Err(format!(
                "{schedule:?} is not a supported macro: expected one of {}",
                CRON_MACROS.join(", ")
            ));
        }
        // croner knows every macro but @midnight, which means @daily.
        if s == "@midnight" { "@daily" } else { s }.to_string()
    } else {
        let fields: Vec<&str> = s.split(' ').filter(|f| !f.is_empty()).collect();
        if fields.len() != 5 {
            let hint = if fields.len() == 6 {
                " (a seconds field is not supported)"
            } else {
                ""
            };
            return Err(format!(
                "{schedule:?} has {} fields{hint}: expected exactly 5 space-separated fields (minute hour day-of-month month day-of-week) or one of {}",
                fields.len(),
                CRON_MACROS.join(", ")
            ));
        }
        for (field, text) in CRON_FIELDS.iter().zip(&fields) {
            for item in text.split(',') {
                field.check_item(item)?;
            }
        }
        // `?` means `*` in every field of the standard parser; croner allows it in the day
        // fields only.
        fields.join(" ").replace('?', "*")
    };
    croner::parser::CronParser::builder()
        .seconds(croner::parser::Seconds::Disallowed)
        .year(croner::parser::Year::Disallowed)
        // `5/15` (from 5 to the end, every 15) is standard; croner calls it sloppy.
        .sloppy_ranges(true)
        .build()
        .parse(&pattern)
        .map(|_| ())
        .map_err(|e| format!("{schedule:?} is not a valid cron expression: {e}"))
}

/// Checks a time zone as a Kubernetes CronJob's `timeZone`: an IANA name from the time zone
/// database (bundled into the binary), spelled exactly (names are case-sensitive on the API
/// server), not `Local`.
///
/// Errors: what is wrong, without the field path.
pub fn validate_time_zone(tz: &str) -> Result<(), String> {
    if tz.is_empty() {
        return Err("must not be empty: expected an IANA time zone such as Europe/Berlin".into());
    }
    if tz.eq_ignore_ascii_case("local") {
        return Err(
            "must be an explicit IANA time zone such as Europe/Berlin or UTC, not Local".into(),
        );
    }
    let zone = jiff::tz::TimeZone::get(tz).map_err(|_| {
        format!("{tz:?} is not a known IANA time zone: expected a name such as Europe/Berlin, America/New_York or UTC")
    })?;
    match zone.iana_name() {
        Some(name) if name != tz && name.eq_ignore_ascii_case(tz) => Err(format!(
            "{tz:?} is not spelled as in the time zone database: use {name:?}"
        )),
        _ => Ok(()),
    }
}

/// Collects field errors.
#[derive(Default)]
struct Errors(Vec<FieldError>);

impl Errors {
    fn add(&mut self, field: impl Into<String>, message: impl Into<String>) {
        self.0.push(FieldError {
            field: field.into(),
            message: message.into(),
        });
    }

    fn check(&mut self, field: impl Into<String>, result: Result<(), String>) {
        if let Err(m) = result {
            self.add(field, m);
        }
    }

    fn into_result(self) -> Result<(), ValidationErrors> {
        if self.0.is_empty() {
            Ok(())
        } else {
            Err(ValidationErrors(self.0))
        }
    }
}

fn check_target(
    cluster: Option<&crate::collection::ClusterRef>,
    connection: Option<&crate::collection::Connection>,
    path: &str,
    errs: &mut Errors,
) {
    if cluster.is_some() == connection.is_some() {
        errs.add(path, "set exactly one of cluster or connection");
    }
    if let Some(c) = cluster
        && c.name.is_empty()
    {
        errs.add(format!("{path}.cluster.name"), "must not be empty");
    }
    if let Some(c) = connection
        && !(c.url.starts_with("http://") || c.url.starts_with("https://"))
    {
        errs.add(
            format!("{path}.connection.url"),
            format!("must start with http:// or https://, got {:?}", c.url),
        );
    }
}

fn check_s3(s3: &S3Storage, path: &str, errs: &mut Errors) {
    errs.check(format!("{path}.bucket"), validate_bucket_name(&s3.bucket));
    if let Some(p) = &s3.prefix {
        errs.check(format!("{path}.prefix"), validate_key_prefix(p));
    }
    if s3.region.is_empty() || s3.region.len() > 64 || s3.region.contains(char::is_whitespace) {
        errs.add(
            format!("{path}.region"),
            format!(
                "must be a region name of 1-64 characters without spaces, e.g. us-east-1, got {:?}",
                s3.region
            ),
        );
    }
    if let Some(e) = &s3.endpoint {
        errs.check(format!("{path}.endpoint"), validate_endpoint(e));
    }
    if let Some(c) = &s3.credentials_secret_ref {
        let p = format!("{path}.credentialsSecretRef");
        for (field, value) in [
            ("name", Some(&c.name)),
            ("accessKeyIdKey", Some(&c.access_key_id_key)),
            ("secretAccessKeyKey", Some(&c.secret_access_key_key)),
            ("sessionTokenKey", c.session_token_key.as_ref()),
        ] {
            if value.is_some_and(String::is_empty) {
                errs.add(format!("{p}.{field}"), "must not be empty");
            }
        }
    }
}

fn check_backup(spec: &QdrantBackupSpec, path: &str, errs: &mut Errors) {
    check_target(spec.cluster.as_ref(), spec.connection.as_ref(), path, errs);
    let mut seen = std::collections::BTreeSet::new();
    for (i, c) in spec.collections.iter().enumerate() {
        errs.check(
            format!("{path}.collections[{i}]"),
            validate_collection_name(c),
        );
        if !seen.insert(c.as_str()) {
            errs.add(
                format!("{path}.collections[{i}]"),
                format!("{c:?} is listed twice"),
            );
        }
    }
    match (spec.method, &spec.storage) {
        (BackupMethod::Snapshot, Some(storage)) => {
            check_s3(&storage.s3, &format!("{path}.storage.s3"), errs);
        }
        (BackupMethod::Snapshot, None) => {
            errs.add(
                format!("{path}.storage"),
                "required when method is Snapshot (the default)",
            );
        }
        (BackupMethod::VolumeSnapshot, _) => {
            match &spec.volume_snapshot {
                Some(v) if v.class_name.is_empty() => {
                    errs.add(
                        format!("{path}.volumeSnapshot.className"),
                        "must not be empty",
                    );
                }
                Some(_) => {}
                None => errs.add(
                    format!("{path}.volumeSnapshot"),
                    "required when method is VolumeSnapshot (the VolumeSnapshotClass in className)",
                ),
            }
            if spec.cluster.is_none() {
                errs.add(
                    format!("{path}.cluster"),
                    "required when method is VolumeSnapshot: only the volumes of a QdrantCluster managed by the operator can be snapshotted",
                );
            }
        }
    }
    if let Some(u) = &spec.upload {
        if !(MIN_PART_SIZE_MIB..=MAX_PART_SIZE_MIB).contains(&u.part_size_mib) {
            errs.add(
                format!("{path}.upload.partSizeMiB"),
                format!(
                    "must be between {MIN_PART_SIZE_MIB} and {MAX_PART_SIZE_MIB} (MiB), got {}",
                    u.part_size_mib
                ),
            );
        }
        if !(1..=MAX_UPLOAD_CONCURRENCY).contains(&u.concurrency) {
            errs.add(
                format!("{path}.upload.concurrency"),
                format!(
                    "must be between 1 and {MAX_UPLOAD_CONCURRENCY}, got {}",
                    u.concurrency
                ),
            );
        }
    }
}

/// Validates a QdrantBackup spec beyond the schema (for the controller, and for specs that
/// never went through an API server). Errors list every offending field.
pub fn validate_backup_spec(spec: &QdrantBackupSpec) -> Result<(), ValidationErrors> {
    let mut errs = Errors::default();
    check_backup(spec, "spec", &mut errs);
    errs.into_result()
}

/// Validates a QdrantBackupSchedule spec beyond the schema: the cron expression (as a
/// Kubernetes CronJob accepts it), the time zone, retention, and the backup template.
/// Errors list every offending field.
pub fn validate_schedule(spec: &QdrantBackupScheduleSpec) -> Result<(), ValidationErrors> {
    let mut errs = Errors::default();
    errs.check("spec.schedule", validate_cron_schedule(&spec.schedule));
    if let Some(tz) = &spec.time_zone {
        errs.check("spec.timeZone", validate_time_zone(tz));
    }
    check_backup(&spec.backup_template, "spec.backupTemplate", &mut errs);
    if let Some(r) = &spec.retention {
        if r.keep_last.is_none() && r.max_age.is_none() {
            errs.add("spec.retention", "set keepLast, maxAge or both");
        }
        if r.keep_last == Some(0) {
            errs.add("spec.retention.keepLast", "must be at least 1, got 0");
        }
        if let Some(age) = &r.max_age
            && let Err(e) = parse_max_age(age)
        {
            errs.add("spec.retention.maxAge", e);
        }
    }
    for (field, v) in [
        (
            "spec.successfulJobsHistoryLimit",
            spec.successful_jobs_history_limit,
        ),
        (
            "spec.failedJobsHistoryLimit",
            spec.failed_jobs_history_limit,
        ),
    ] {
        if !(0..=100).contains(&v) {
            errs.add(field, format!("must be between 0 and 100, got {v}"));
        }
    }
    if let Some(d) = spec.starting_deadline_seconds
        && d < 0
    {
        errs.add(
            "spec.startingDeadlineSeconds",
            format!("must not be negative, got {d}"),
        );
    }
    errs.into_result()
}

/// Validates a QdrantRestore spec beyond the schema: one source, one target, valid and
/// distinct collection names. Errors list every offending field.
pub fn validate_restore(spec: &QdrantRestoreSpec) -> Result<(), ValidationErrors> {
    let mut errs = Errors::default();
    let source = &spec.source;
    if source.backup_ref.is_some() == source.s3.is_some() {
        errs.add("spec.source", "set exactly one of backupRef or s3");
    }
    if let Some(b) = &source.backup_ref
        && b.name.is_empty()
    {
        errs.add("spec.source.backupRef.name", "must not be empty");
    }
    if let Some(s3) = &source.s3 {
        check_s3(&s3.storage, "spec.source.s3.storage", &mut errs);
        let key = &s3.manifest_key;
        if key.is_empty() || key.len() > 1024 || key.starts_with('/') {
            errs.add(
                "spec.source.s3.manifestKey",
                format!(
                    "must be an object key of 1-1024 bytes without a leading '/', e.g. a QdrantBackup's status.manifestKey, got {key:?}"
                ),
            );
        }
    }
    check_target(
        spec.cluster.as_ref(),
        spec.connection.as_ref(),
        "spec",
        &mut errs,
    );
    check_collection_list(
        spec.collections
            .iter()
            .map(|c| (c.name.as_str(), c.new_name.as_deref())),
        "newName",
        "restores into",
        &mut errs,
    );
    if !(MIN_PRESIGNED_URL_EXPIRY_SECONDS..=MAX_PRESIGNED_URL_EXPIRY_SECONDS)
        .contains(&spec.presigned_url_expiry_seconds)
    {
        errs.add(
            "spec.presignedUrlExpirySeconds",
            format!(
                "must be between {MIN_PRESIGNED_URL_EXPIRY_SECONDS} and {MAX_PRESIGNED_URL_EXPIRY_SECONDS} (7 days), got {}",
                spec.presigned_url_expiry_seconds
            ),
        );
    }
    errs.into_result()
}

/// `spec.collections` of a restore or a migration, given as `(name, rename)` pairs (`rename`
/// is the entry's `rename_field`: `newName`, `targetName`): every name and rename a valid
/// collection name, no name listed twice, and no two entries with the same target name (the
/// rename, else the name), reported on the field that gives it as "`{verb}` {target}, as
/// spec.collections[j] does".
fn check_collection_list<'a>(
    entries: impl Iterator<Item = (&'a str, Option<&'a str>)>,
    rename_field: &str,
    verb: &str,
    errs: &mut Errors,
) {
    let mut names = std::collections::BTreeSet::new();
    let mut targets: std::collections::BTreeMap<&str, usize> = std::collections::BTreeMap::new();
    for (i, (name, rename)) in entries.enumerate() {
        errs.check(
            format!("spec.collections[{i}].name"),
            validate_collection_name(name),
        );
        if !names.insert(name) {
            errs.add(
                format!("spec.collections[{i}].name"),
                format!("{name:?} is listed twice"),
            );
        }
        if let Some(n) = rename {
            errs.check(
                format!("spec.collections[{i}].{rename_field}"),
                validate_collection_name(n),
            );
        }
        let target = rename.unwrap_or(name);
        if let Some(j) = targets.get(target) {
            let field = if rename.is_some() {
                rename_field
            } else {
                "name"
            };
            errs.add(
                format!("spec.collections[{i}].{field}"),
                format!(
                    "{verb} {target:?}, as spec.collections[{j}] does: each collection needs its own target name"
                ),
            );
        } else {
            targets.insert(target, i);
        }
    }
}

/// Validates a QdrantMigration spec beyond the schema: one source and one target, each with
/// exactly one of cluster or connection; valid and distinct collection and target names;
/// `batchSize` and `verify.sampleSize` in range; `aliasSwitch` with exactly one collection and
/// a valid alias name that is not the collection's own; a source and target that are not the
/// same Qdrant with the same collection names (that would copy a collection onto itself).
/// Errors list every offending field.
pub fn validate_migration(
    spec: &crate::migration::QdrantMigrationSpec,
) -> Result<(), ValidationErrors> {
    use crate::migration::{MAX_BATCH_SIZE, MAX_SAMPLE_SIZE};
    let mut errs = Errors::default();
    check_target(
        spec.source.cluster.as_ref(),
        spec.source.connection.as_ref(),
        "spec.source",
        &mut errs,
    );
    check_target(
        spec.target.cluster.as_ref(),
        spec.target.connection.as_ref(),
        "spec.target",
        &mut errs,
    );
    check_collection_list(
        spec.collections
            .iter()
            .map(|c| (c.name.as_str(), c.target_name.as_deref())),
        "targetName",
        "copies into",
        &mut errs,
    );
    let same_qdrant = match (
        (&spec.source.cluster, &spec.source.connection),
        (&spec.target.cluster, &spec.target.connection),
    ) {
        ((Some(a), None), (Some(b), None)) => a.name == b.name,
        ((None, Some(a)), (None, Some(b))) => {
            a.url.trim_end_matches('/') == b.url.trim_end_matches('/')
        }
        _ => false,
    };
    if same_qdrant
        && (spec.collections.is_empty()
            || spec.collections.iter().any(|c| c.target_name() == c.name))
    {
        errs.add(
            "spec.target",
            "is the same Qdrant as spec.source: give every entry of spec.collections a targetName of its own (a collection cannot be copied onto itself)",
        );
    }
    if !(1..=MAX_BATCH_SIZE).contains(&spec.batch_size) {
        errs.add(
            "spec.batchSize",
            format!(
                "must be between 1 and {MAX_BATCH_SIZE} (points), got {}",
                spec.batch_size
            ),
        );
    }
    if let Some(v) = &spec.verify
        && v.sample_size > MAX_SAMPLE_SIZE
    {
        errs.add(
            "spec.verify.sampleSize",
            format!(
                "must be between 0 and {MAX_SAMPLE_SIZE}, got {}",
                v.sample_size
            ),
        );
    }
    if let Some(a) = &spec.alias_switch {
        if spec.collections.len() != 1 {
            errs.add(
                "spec.aliasSwitch",
                format!(
                    "needs exactly one entry in spec.collections (the alias points to one collection), got {}",
                    spec.collections.len()
                ),
            );
        }
        errs.check("spec.aliasSwitch.alias", validate_collection_name(&a.alias));
        if spec.collections.iter().any(|c| c.target_name() == a.alias) {
            errs.add(
                "spec.aliasSwitch.alias",
                "an alias cannot have the name of the collection it points to",
            );
        }
    }
    errs.into_result()
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

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod backup_tests {
    use super::*;

    #[test]
    fn cron_accepts_what_a_cronjob_accepts() {
        for ok in [
            "0 2 * * *",
            "*/15 * * * *",
            "0 0 1,15 * *",
            "30 4 * * 1-5",
            "0 3 * * SUN",
            "0 3 * * mon-fri",
            "0 0 1 JAN,jul *",
            "5/10 * * * *",
            "0 0 ? * *",
            "0  2  *  *  *",
            "59 23 31 12 6",
            "@daily",
            "@midnight",
            "@hourly",
            "@weekly",
            "@monthly",
            "@yearly",
            "@annually",
        ] {
            assert_eq!(validate_cron_schedule(ok), Ok(()), "{ok}");
        }
    }

    #[test]
    fn cron_refuses_what_a_cronjob_refuses() {
        for (bad, why) in [
            ("", "must not be empty"),
            ("0 0 2 * * *", "a seconds field is not supported"),
            ("0 2 * *", "has 4 fields"),
            ("0 0 2 * * * 2030", "has 7 fields"),
            ("TZ=UTC 0 2 * * *", "set spec.timeZone instead"),
            (
                "CRON_TZ=Europe/Berlin 0 2 * * *",
                "set spec.timeZone instead",
            ),
            ("@every 1h", "not a supported macro"),
            ("@reboot", "not a supported macro"),
            ("@DAILY", "not a supported macro"),
            ("60 * * * *", "minute field \"60\": 60 is out of range 0-59"),
            ("0 24 * * *", "out of range 0-23"),
            ("0 0 0 * *", "out of range 1-31"),
            ("0 0 * 13 *", "out of range 1-12"),
            (
                "0 0 * * 7",
                "day-of-week field \"7\": 7 is out of range 0-6",
            ),
            ("0 0 L * *", "not a number"),
            ("0 0 * * 5L", "not a number"),
            ("0 0 * * 1#2", "not a number"),
            ("0 0 15W * *", "not a number"),
            ("0 MON * * *", "\"MON\" is not a number"),
            ("*/0 * * * *", "step after / must be a positive number"),
            ("10-5 * * * *", "range start 10 is after its end 5"),
            ("a b c d e", "not a number"),
        ] {
            let e = validate_cron_schedule(bad).unwrap_err();
            assert!(e.contains(why), "{bad:?}: {e}");
        }
    }

    #[test]
    fn time_zones_are_real_iana_names() {
        for ok in [
            "Europe/Berlin",
            "America/New_York",
            "UTC",
            "Etc/UTC",
            "Asia/Kolkata",
        ] {
            assert_eq!(validate_time_zone(ok), Ok(()), "{ok}");
        }
        for (bad, why) in [
            ("Europe/Atlantis", "not a known IANA time zone"),
            ("", "must not be empty"),
            ("Local", "not Local"),
            ("CEST", "not a known IANA time zone"),
            ("+02:00", "not a known IANA time zone"),
            ("europe/berlin", "use \"Europe/Berlin\""),
        ] {
            let e = validate_time_zone(bad).unwrap_err();
            assert!(e.contains(why), "{bad:?}: {e}");
        }
    }

    #[test]
    fn the_time_zone_database_is_bundled() {
        // The controller image has no /usr/share/zoneinfo: the bundled copy must be there, and
        // spell names canonically like the system one.
        let db = jiff::tz::TimeZoneDatabase::bundled();
        let tz = db.get("europe/berlin").unwrap();
        assert_eq!(tz.iana_name(), Some("Europe/Berlin"));
        assert!(db.get("Europe/Atlantis").is_err());
    }

    #[test]
    fn max_age() {
        use jiff::SignedDuration;
        assert_eq!(parse_max_age("30m"), Ok(SignedDuration::from_mins(30)));
        assert_eq!(parse_max_age("12h"), Ok(SignedDuration::from_hours(12)));
        assert_eq!(parse_max_age("7d"), Ok(SignedDuration::from_hours(7 * 24)));
        assert_eq!(
            parse_max_age("2w"),
            Ok(SignedDuration::from_hours(2 * 7 * 24))
        );
        for bad in [
            "",
            "7",
            "d",
            "0d",
            "07d",
            "-1d",
            "+1d",
            "1.5d",
            "7 d",
            "7D",
            "1y",
            "30s",
            "1h30m",
            "99999999999999999999d",
            "9223372036854775807w",
        ] {
            let e = parse_max_age(bad).unwrap_err();
            assert!(!e.is_empty(), "{bad:?}");
        }
        assert!(
            parse_max_age("1y")
                .unwrap_err()
                .contains("e.g. 30m, 12h, 7d, 2w")
        );
    }

    #[test]
    fn bucket_names() {
        for ok in ["qdrant-backups", "my.bucket.name", "abc", "a1-b2.c3", "123"] {
            assert_eq!(validate_bucket_name(ok), Ok(()), "{ok}");
        }
        for (bad, why) in [
            ("ab", "3 to 63 characters"),
            (&"a".repeat(64), "3 to 63 characters"),
            ("My-Bucket", "contains 'M'"),
            ("under_score", "contains '_'"),
            ("-leading", "start and end"),
            ("trailing.", "start and end"),
            ("two..dots", "two adjacent periods"),
            ("192.168.5.4", "IP address"),
            ("xn--bucket", "must not start with \"xn--\""),
            ("sthree-bucket", "must not start with \"sthree-\""),
            ("bucket-s3alias", "must not end with \"-s3alias\""),
            ("bucket--ol-s3", "must not end with \"--ol-s3\""),
        ] {
            let e = validate_bucket_name(bad).unwrap_err();
            assert!(e.contains(why), "{bad:?}: {e}");
        }
    }

    #[test]
    fn prefixes_and_endpoints() {
        for ok in ["", "qdrant", "qdrant/prod/", "a..b/c", "x/.../y"] {
            assert_eq!(validate_key_prefix(ok), Ok(()), "{ok}");
        }
        for bad in ["/qdrant", "..", "a/../b", "a/..", "../a"] {
            assert!(validate_key_prefix(bad).is_err(), "{bad}");
        }
        for ok in [
            "http://minio.minio.svc:9000",
            "https://s3.eu-central-1.amazonaws.com",
            "https://acct.r2.cloudflarestorage.com/",
        ] {
            assert_eq!(validate_endpoint(ok), Ok(()), "{ok}");
        }
        for (bad, why) in [
            ("minio:9000", "http:// or https://"),
            ("ftp://minio", "got scheme \"ftp\""),
            ("http://", "http:// or https://"),
            ("http://user:pw@minio:9000", "credentialsSecretRef"),
            ("http://minio:9000/?x=1", "query or fragment"),
        ] {
            let e = validate_endpoint(bad).unwrap_err();
            assert!(e.contains(why), "{bad:?}: {e}");
        }
    }

    #[test]
    fn collection_names_follow_qdrant() {
        for ok in ["articles", "Articles-v2", "a.b_c", "ünïcode", "with space"] {
            assert_eq!(validate_collection_name(ok), Ok(()), "{ok}");
        }
        for bad in [
            "", "a/b", "a:b", "a*", "a?", "<a>", "a|b", "a\\b", "a\"b", "a\0", ".", "..",
        ] {
            assert!(validate_collection_name(bad).is_err(), "{bad:?}");
        }
        assert!(validate_collection_name(&"x".repeat(256)).is_err());
        assert_eq!(validate_collection_name(&"x".repeat(255)), Ok(()));
    }

    #[test]
    fn collection_spec_names_are_checked_like_qdrant() {
        let spec: crate::collection::QdrantCollectionSpec =
            serde_json::from_value(serde_json::json!({
                "cluster": {"name": "demo"},
                "collectionName": "a/b"
            }))
            .unwrap();
        let err = validate_collection(&spec, "a/b").unwrap_err();
        assert_eq!(fields(err.clone()), ["spec.collectionName"]);
        assert!(err.to_string().contains("must not contain '/'"), "{err}");
    }

    fn backup() -> QdrantBackupSpec {
        serde_json::from_value(serde_json::json!({
            "cluster": {"name": "demo"},
            "collections": ["articles", "products"],
            "storage": {"s3": {
                "bucket": "qdrant-backups",
                "prefix": "prod",
                "endpoint": "http://minio.minio.svc:9000",
                "forcePathStyle": true,
                "credentialsSecretRef": {"name": "s3-credentials"}
            }},
            "upload": {"partSizeMiB": 32, "concurrency": 4}
        }))
        .unwrap()
    }

    fn fields(e: ValidationErrors) -> Vec<String> {
        e.0.into_iter().map(|e| e.field).collect()
    }

    #[test]
    fn volume_snapshot_backups_need_a_class_and_a_cluster() {
        let mut spec = backup();
        spec.method = BackupMethod::VolumeSnapshot;
        spec.storage = None;
        spec.cluster = None;
        spec.connection = Some(crate::collection::Connection {
            url: "http://q:6333".into(),
            api_key_secret_ref: None,
            tls: None,
        });
        let err = validate_backup_spec(&spec).unwrap_err();
        assert_eq!(fields(err), ["spec.volumeSnapshot", "spec.cluster"]);
        spec.connection = None;
        spec.cluster = backup().cluster;
        spec.volume_snapshot = Some(crate::backup::VolumeSnapshotOptions {
            class_name: String::new(),
        });
        let err = validate_backup_spec(&spec).unwrap_err();
        assert_eq!(fields(err), ["spec.volumeSnapshot.className"]);
        spec.volume_snapshot = Some(crate::backup::VolumeSnapshotOptions {
            class_name: "csi-snapclass".into(),
        });
        assert_eq!(validate_backup_spec(&spec), Ok(()));
        // The default method still needs its storage.
        spec.method = BackupMethod::Snapshot;
        assert_eq!(
            fields(validate_backup_spec(&spec).unwrap_err()),
            ["spec.storage"]
        );
    }

    #[test]
    fn backup_spec_names_every_bad_field() {
        assert_eq!(validate_backup_spec(&backup()), Ok(()));
        let mut spec = backup();
        spec.connection = Some(crate::collection::Connection {
            url: "qdrant:6333".into(),
            api_key_secret_ref: None,
            tls: None,
        });
        spec.collections = vec!["a/b".into(), "x".into(), "x".into()];
        let s3 = &mut spec.storage.as_mut().unwrap().s3;
        s3.bucket = "Bad_Bucket".into();
        s3.prefix = Some("/abs".into());
        s3.endpoint = Some("minio:9000".into());
        spec.upload = Some(crate::backup::UploadOptions {
            part_size_mib: 4,
            concurrency: 0,
        });
        let err = validate_backup_spec(&spec).unwrap_err();
        assert_eq!(
            fields(err.clone()),
            [
                "spec",
                "spec.connection.url",
                "spec.collections[0]",
                "spec.collections[2]",
                "spec.storage.s3.bucket",
                "spec.storage.s3.prefix",
                "spec.storage.s3.endpoint",
                "spec.upload.partSizeMiB",
                "spec.upload.concurrency",
            ]
        );
        let text = err.to_string();
        assert!(
            text.contains("spec: set exactly one of cluster or connection"),
            "{text}"
        );
        assert!(
            text.contains("spec.collections[2]: \"x\" is listed twice"),
            "{text}"
        );
        assert!(
            text.contains("spec.upload.partSizeMiB: must be between 5 and 512"),
            "{text}"
        );
    }

    #[test]
    fn schedule_names_every_bad_field() {
        let good: QdrantBackupScheduleSpec = serde_json::from_value(serde_json::json!({
            "schedule": "0 2 * * *",
            "timeZone": "Europe/Berlin",
            "backupTemplate": serde_json::to_value(backup()).unwrap(),
            "retention": {"keepLast": 7, "maxAge": "30d"}
        }))
        .unwrap();
        assert_eq!(validate_schedule(&good), Ok(()));
        assert_eq!(good.successful_jobs_history_limit, 3);
        assert_eq!(good.failed_jobs_history_limit, 1);

        let mut spec = good.clone();
        spec.schedule = "0 0 2 * * *".into();
        spec.time_zone = Some("Mars/Olympus_Mons".into());
        spec.backup_template.storage.as_mut().unwrap().s3.bucket = "a..b".into();
        spec.retention = Some(crate::backup::Retention {
            keep_last: Some(0),
            max_age: Some("1y".into()),
        });
        spec.starting_deadline_seconds = Some(-1);
        let err = validate_schedule(&spec).unwrap_err();
        assert_eq!(
            fields(err.clone()),
            [
                "spec.schedule",
                "spec.timeZone",
                "spec.backupTemplate.storage.s3.bucket",
                "spec.retention.keepLast",
                "spec.retention.maxAge",
                "spec.startingDeadlineSeconds",
            ]
        );
        assert!(err.to_string().contains("a seconds field is not supported"));

        spec.retention = Some(crate::backup::Retention {
            keep_last: None,
            max_age: None,
        });
        let err = validate_schedule(&spec).unwrap_err();
        assert!(
            err.to_string()
                .contains("spec.retention: set keepLast, maxAge or both"),
            "{err}"
        );
    }

    fn restore() -> QdrantRestoreSpec {
        serde_json::from_value(serde_json::json!({
            "source": {"backupRef": {"name": "demo-manual"}},
            "cluster": {"name": "demo-restored"},
            "collections": [{"name": "articles", "newName": "articles-restored"}, {"name": "products"}]
        }))
        .unwrap()
    }

    #[test]
    fn restore_defaults_and_good_spec() {
        let spec = restore();
        assert_eq!(validate_restore(&spec), Ok(()));
        assert_eq!(spec.presigned_url_expiry_seconds, 3600);
        assert_eq!(spec.recovery_method, crate::backup::RecoveryMethod::Auto);
    }

    #[test]
    fn restore_refuses_target_collisions() {
        let mut spec = restore();
        // products -> articles-restored collides with articles -> articles-restored.
        spec.collections[1].new_name = Some("articles-restored".into());
        let err = validate_restore(&spec).unwrap_err();
        assert_eq!(fields(err.clone()), ["spec.collections[1].newName"]);
        assert!(
            err.to_string()
                .contains("restores into \"articles-restored\", as spec.collections[0] does"),
            "{err}"
        );

        // A rename onto another entry's own name collides too.
        let mut spec = restore();
        spec.collections[0].new_name = Some("products".into());
        let err = validate_restore(&spec).unwrap_err();
        assert_eq!(fields(err), ["spec.collections[1].name"]);

        // Swapping two names is fine: the targets differ.
        let mut spec = restore();
        spec.collections[0].new_name = Some("products".into());
        spec.collections[1].new_name = Some("articles".into());
        assert_eq!(validate_restore(&spec), Ok(()));

        let mut spec = restore();
        spec.collections[0].new_name = Some("bad/name".into());
        spec.collections[1].name = "articles".into();
        let err = validate_restore(&spec).unwrap_err();
        assert_eq!(
            fields(err),
            ["spec.collections[0].newName", "spec.collections[1].name"]
        );
    }

    #[test]
    fn restore_needs_one_source_and_one_target() {
        let mut spec = restore();
        spec.source.s3 = Some(crate::backup::S3Source {
            storage: backup().storage.unwrap().s3,
            manifest_key: "/prod/manifest.json".into(),
        });
        spec.connection = Some(crate::collection::Connection {
            url: "http://q:6333".into(),
            api_key_secret_ref: None,
            tls: None,
        });
        spec.presigned_url_expiry_seconds = 10;
        let err = validate_restore(&spec).unwrap_err();
        assert_eq!(
            fields(err.clone()),
            [
                "spec.source",
                "spec.source.s3.manifestKey",
                "spec",
                "spec.presignedUrlExpirySeconds"
            ]
        );
        assert!(
            err.to_string()
                .contains("spec.source: set exactly one of backupRef or s3")
        );

        let mut spec = restore();
        spec.source.backup_ref = None;
        let err = validate_restore(&spec).unwrap_err();
        assert_eq!(fields(err), ["spec.source"]);
    }
}
