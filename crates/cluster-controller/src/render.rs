//! `cluster-controller render -f FILE`: the objects the controller would apply for a
//! QdrantCluster file, as multi-document YAML, with no cluster needed (for review and GitOps).
//!
//! It runs the controller's own validate and build steps. What a file cannot give is left
//! out and said so in comments: owner references (the object has no uid before it reaches an
//! API server) and generated API key values (random, created once by the controller, never
//! printed).

use api_types::{QdrantCluster, validation::validate_cluster};
use serde::Serialize;

use crate::{
    build::{self, Observed, secret},
    gate::validate_name,
};

/// Why a file could not be rendered. Every variant names the field or document at fault.
#[derive(Debug, thiserror::Error)]
pub enum RenderError {
    /// The text is not YAML.
    #[error("{0}")]
    Yaml(String),
    /// A document is not a QdrantCluster of `qdrant.operator.dev/v1alpha1`.
    #[error("document {doc}: {message}")]
    NotAQdrantCluster {
        /// 1-based document index.
        doc: usize,
        /// What was found.
        message: String,
    },
    /// A field has the wrong shape: `path: problem`.
    #[error("document {doc}: {path}: {message}")]
    Field {
        /// 1-based document index.
        doc: usize,
        /// Field path, e.g. `spec.replicas`.
        path: String,
        /// What serde found wrong.
        message: String,
    },
    /// The spec was refused by validation (each field named).
    #[error("document {doc}: {errors}")]
    Invalid {
        /// 1-based document index.
        doc: usize,
        /// Every refused field.
        errors: api_types::validation::ValidationErrors,
    },
    /// The documents contain no QdrantCluster.
    #[error("no QdrantCluster in the input")]
    Empty,
    /// Output could not be produced.
    #[error("{0}")]
    Output(String),
}

/// Parses every YAML document of `input` as a QdrantCluster (field errors carry the path).
pub fn parse(input: &str) -> Result<Vec<QdrantCluster>, RenderError> {
    let docs: Vec<serde_json::Value> =
        serde_saphyr::from_multiple(input).map_err(|e| RenderError::Yaml(e.to_string()))?;
    let mut out = vec![];
    for (i, doc) in docs.into_iter().enumerate().filter(|(_, d)| !d.is_null()) {
        let n = i + 1;
        let api_version = doc.get("apiVersion").and_then(|v| v.as_str()).unwrap_or("");
        let kind = doc.get("kind").and_then(|v| v.as_str()).unwrap_or("");
        if api_version != "qdrant.operator.dev/v1alpha1" || kind != "QdrantCluster" {
            return Err(RenderError::NotAQdrantCluster {
                doc: n,
                message: format!(
                    "expected apiVersion qdrant.operator.dev/v1alpha1 and kind QdrantCluster, got {api_version:?} {kind:?}"
                ),
            });
        }
        if doc
            .pointer("/metadata/name")
            .and_then(|v| v.as_str())
            .is_none_or(str::is_empty)
        {
            return Err(RenderError::Field {
                doc: n,
                path: "metadata.name".into(),
                message: "is required".into(),
            });
        }
        let qc: QdrantCluster =
            serde_path_to_error::deserialize(doc).map_err(|e| RenderError::Field {
                doc: n,
                path: e.path().to_string(),
                message: e.inner().to_string(),
            })?;
        out.push(qc);
    }
    if out.is_empty() {
        return Err(RenderError::Empty);
    }
    Ok(out)
}

fn push_doc<T: Serialize>(out: &mut String, obj: &T) -> Result<(), RenderError> {
    out.push_str("---\n");
    out.push_str(&serde_saphyr::to_string(obj).map_err(|e| RenderError::Output(e.to_string()))?);
    Ok(())
}

/// Renders every QdrantCluster of `input` into the objects the controller applies, in apply
/// order: ConfigMap, headless Service, client Service, StatefulSet, PodDisruptionBudget,
/// NetworkPolicy, then the monitoring objects (PodMonitor, PrometheusRule, dashboard).
pub fn render(input: &str) -> Result<String, RenderError> {
    let clusters = parse(input)?;
    let mut out = String::new();
    for (i, qc) in clusters.iter().enumerate() {
        validate_cluster(&qc.spec)
            .and(validate_name(qc))
            .map_err(|errors| RenderError::Invalid { doc: i + 1, errors })?;
        // An adopted StatefulSet as a takeover would write it (the chart's layout: its
        // selector is read from the live object, so the cluster's own stands in).
        let observed = Observed {
            adopted: crate::adoption::layout(qc, None),
            ..Observed::default()
        };
        let desired =
            build::build(qc, &observed).map_err(|e| RenderError::Output(e.to_string()))?;
        let names = build::Names::of(qc);
        out.push_str(&format!(
            "# Rendered by qdrant-operator cluster-controller for QdrantCluster {}/{}.\n\
             # Owner references are added by the controller (this object has no uid yet).\n",
            names.namespace, names.cluster
        ));
        for key in secret::key_refs(qc) {
            if key.generated {
                out.push_str(&format!(
                    "# Secret {} (key {:?}) is generated by the controller on first reconcile; its value is never rendered.\n",
                    key.secret.name, key.secret.key
                ));
            } else {
                out.push_str(&format!(
                    "# Secret {} (key {:?}) must exist: it is read, never written.\n",
                    key.secret.name, key.secret.key
                ));
            }
        }
        let tls = qc.spec.tls();
        if tls.any_enabled() {
            let keys = "keys tls.crt, tls.key, ca.crt; type kubernetes.io/tls";
            match &tls.secret_name {
                Some(name) => out.push_str(&format!(
                    "# Secret {name} ({keys}) must exist: its certificate names {}.{}.svc and every pod as <pod>.{}.{}.svc; it is read, never written.\n",
                    names.cluster, names.namespace, names.headless, names.namespace
                )),
                None => out.push_str(&format!(
                    "# Secrets {} (the generated CA: tls.crt, tls.key) and {} ({keys}; the server certificate for {}.{}.svc and every <pod>.{}.{}.svc, renewed before expiry) are generated by the controller; their values are never rendered.\n",
                    names.ca_secret, names.tls_secret, names.cluster, names.namespace, names.headless, names.namespace
                )),
            }
        }
        if !secret::key_refs(qc).is_empty() {
            out.push_str(&format!(
                "# Secret {} (the keys the pods read, following rotations) is written by the controller; its value is never rendered.\n",
                names.served_keys_secret
            ));
        }
        // Destructured without `..`: a child added to the build must be rendered too.
        let build::Desired {
            config_map,
            headless_service,
            client_service,
            statefulset,
            pdb,
            network_policy,
        } = &desired;
        push_doc(&mut out, config_map)?;
        push_doc(&mut out, headless_service)?;
        push_doc(&mut out, client_service)?;
        push_doc(&mut out, statefulset)?;
        if let Some(pdb) = pdb {
            push_doc(&mut out, pdb)?;
        }
        if let Some(policy) = network_policy {
            push_doc(&mut out, policy)?;
        }
        // spec.monitoring: applied by the monitoring step (prometheus-operator kinds).
        if let Some(monitor) = build::monitoring::pod_monitor(qc) {
            push_doc(&mut out, &monitor)?;
        }
        if let Some(rule) = build::monitoring::prometheus_rule(qc) {
            push_doc(&mut out, &rule)?;
        }
        if let Some(board) = build::monitoring::dashboard(qc) {
            push_doc(&mut out, &board)?;
        }
    }
    Ok(out)
}
