//! `status CLUSTER`: what a QdrantCluster is and does, from its status (written by the
//! cluster-controller) and, given a Qdrant URL, from Qdrant itself.

use std::{collections::BTreeMap, fmt::Write as _};

use api_types::{QdrantCluster, QdrantMigration, conditions::ConditionStatus};
use cluster_controller::{
    day2::plan::CollectionPlacement, observe::not_installed_is_empty, scale::observe_placement,
};
use kube::Api;
use reconcile_lib::qdrant::QdrantClient;

use crate::{PluginError, Result};

/// The report of QdrantCluster `namespace/name`:
///
/// - phase, version, ready peers and endpoints;
/// - one line per peer (pod, peer id, Raft role, leader mark, zone with `spec.zoneAware`)
///   from `status.peers`;
/// - every condition (type, status, reason, message);
/// - what the operator waits for: the messages of the conditions that say work is under way
///   or refused (Progressing, Reconciling, Stalled, Degraded and the refusal conditions when
///   True, a refused adoption), and the rollout, rebalance and volume progress;
/// - the QdrantMigrations that read from or write to the cluster (`LIST qdrantmigrations` in
///   its namespace): name, direction, phase and progress;
/// - with `qdrant` (a client to any peer, e.g. through `kubectl port-forward`): per peer, its
///   shard replicas with their states, and the running shard transfers
///   (`GET /collections`, `GET /collections/{c}`, `GET /collections/{c}/cluster`).
///
/// # Errors
/// [`PluginError::NotFound`] when the cluster does not exist; the API's or Qdrant's errors.
pub async fn report(
    client: &kube::Client,
    namespace: &str,
    name: &str,
    qdrant: Option<&QdrantClient>,
) -> Result<String> {
    let qc = crate::get_cluster(client, namespace, name).await?;
    let placement = match qdrant {
        Some(q) => Some(observe_placement(q).await?),
        None => None,
    };
    let migrations: Api<QdrantMigration> = Api::namespaced(client.clone(), namespace);
    let migrations = not_installed_is_empty(migrations.list(&Default::default()).await)?;
    let mut out = format_report(&qc, placement.as_ref());
    out.push_str(&format_migrations(name, &migrations));
    Ok(out)
}

/// Pure: the MIGRATIONS section of [`report`]: one line per QdrantMigration whose
/// `spec.source.cluster` or `spec.target.cluster` is `cluster`, e.g. `articles-from-helm
/// into this cluster: Running, 1280/3000 points`.
pub fn format_migrations(cluster: &str, migrations: &[QdrantMigration]) -> String {
    let is = |e: &api_types::migration::MigrationEndpoint| {
        e.cluster.as_ref().is_some_and(|c| c.name == cluster)
    };
    let mut out = String::from("\nMIGRATIONS\n");
    let mine: Vec<&QdrantMigration> = migrations
        .iter()
        .filter(|m| m.spec.involves_cluster(cluster))
        .collect();
    if mine.is_empty() {
        out.push_str("  (none)\n");
    }
    for m in mine {
        let direction = match (is(&m.spec.source), is(&m.spec.target)) {
            (true, true) => "within this cluster",
            (true, false) => "from this cluster",
            _ => "into this cluster",
        };
        let st = m.status.clone().unwrap_or_default();
        let progress = st
            .progress
            .as_deref()
            .map_or_else(|| "-".to_string(), |p| format!("{p} points"));
        let _ = writeln!(
            out,
            "  {:<24} {direction}: {:?}, {progress}{}",
            m.metadata.name.as_deref().unwrap_or_default(),
            st.phase,
            st.message
                .as_deref()
                .map(|msg| format!(" ({msg})"))
                .unwrap_or_default()
        );
    }
    out
}

/// Pure: the text of [`report`] for `qc` and, when Qdrant was asked, its `placement`.
pub fn format_report(
    qc: &QdrantCluster,
    placement: Option<&BTreeMap<String, CollectionPlacement>>,
) -> String {
    let mut out = String::new();
    let ns = qc.metadata.namespace.clone().unwrap_or_default();
    let name = qc.metadata.name.clone().unwrap_or_default();
    let st = qc.status.clone().unwrap_or_default();
    let _ = writeln!(out, "QdrantCluster {ns}/{name}");
    let _ = writeln!(
        out,
        "  phase {:?}, version {}, peers ready {}",
        st.phase,
        st.version.as_deref().unwrap_or("-"),
        st.ready_replicas_text.as_deref().unwrap_or("-")
    );
    if let Some(e) = &st.endpoints {
        let _ = writeln!(out, "  endpoints: {} (REST), {} (gRPC)", e.http, e.grpc);
    }
    let _ = writeln!(out, "\nPEERS");
    if st.peers.is_empty() {
        let _ = writeln!(out, "  (none reported yet)");
    }
    for p in &st.peers {
        let leader = if st.raft_leader == Some(p.peer_id) {
            " (leader)"
        } else {
            ""
        };
        let zone = p
            .zone
            .as_deref()
            .map(|z| format!(" zone {z}"))
            .unwrap_or_default();
        let _ = writeln!(
            out,
            "  {:<24} peer {:<20} {}{leader}{zone}",
            p.pod,
            p.peer_id,
            p.raft_role.as_deref().unwrap_or("-")
        );
        if let Some(placement) = placement {
            for line in shards_on(placement, p.peer_id) {
                let _ = writeln!(out, "      {line}");
            }
        }
    }
    if let Some(placement) = placement {
        let transfers: Vec<String> = placement
            .iter()
            .flat_map(|(c, p)| {
                p.transfers.iter().map(move |t| {
                    format!("{c} shard {}: peer {} -> peer {}", t.shard_id, t.from, t.to)
                })
            })
            .collect();
        let _ = writeln!(out, "\nTRANSFERS");
        if transfers.is_empty() {
            let _ = writeln!(out, "  (none)");
        }
        for t in transfers {
            let _ = writeln!(out, "  {t}");
        }
    }
    let _ = writeln!(out, "\nCONDITIONS");
    for c in &st.conditions {
        let _ = writeln!(
            out,
            "  {:<24} {:<8} {:<24} {}",
            c.type_,
            format!("{:?}", c.status),
            c.reason,
            c.message
        );
    }
    let waits = waiting_for(qc);
    let _ = writeln!(out, "\nWAITING FOR");
    if waits.is_empty() {
        let _ = writeln!(out, "  nothing: the cluster matches its spec");
    }
    for w in waits {
        let _ = writeln!(out, "  {w}");
    }
    out
}

/// Pure: what the operator waits for or refuses, from `qc`'s status, most important first.
pub fn waiting_for(qc: &QdrantCluster) -> Vec<String> {
    let Some(st) = &qc.status else {
        return vec!["the cluster-controller to write a first status".into()];
    };
    let mut out = vec![];
    for t in [
        "Stalled",
        "ScaleDownBlocked",
        "UpgradeBlocked",
        "VolumeExpansionBlocked",
        "Degraded",
        "Progressing",
    ] {
        if let Some(c) = st
            .conditions
            .iter()
            .find(|c| c.type_ == t && c.status == ConditionStatus::True && !c.message.is_empty())
            && !out.iter().any(|o: &String| o.ends_with(&c.message))
        {
            out.push(format!("{t} ({}): {}", c.reason, c.message));
        }
    }
    if let Some(c) = st
        .conditions
        .iter()
        .find(|c| c.type_ == "Adopted" && c.status == ConditionStatus::False)
        && !out.iter().any(|o: &String| o.ends_with(&c.message))
    {
        out.push(format!("Adopted ({}): {}", c.reason, c.message));
    }
    if let Some(r) = &st.rollout {
        out.push(format!(
            "rollout to {}: {} pods updated; {}",
            r.update_revision, r.updated_replicas, r.message
        ));
    }
    if let Some(r) = &st.rebalance {
        out.push(format!("rebalance: {}", r.message));
    }
    if let Some(v) = &st.volumes {
        out.push(format!("volumes: {}", v.message));
    }
    out
}

/// The replicas `peer` holds, one line per collection: `docs: shard 0 Active, shard 2 Dead`.
fn shards_on(placement: &BTreeMap<String, CollectionPlacement>, peer: u64) -> Vec<String> {
    placement
        .iter()
        .filter_map(|(collection, p)| {
            let shards: Vec<String> = p
                .shards
                .iter()
                .filter_map(|(id, replicas)| {
                    replicas
                        .iter()
                        .find(|r| r.peer == peer)
                        .map(|r| format!("shard {id} {}", String::from(r.state.clone())))
                })
                .collect();
            (!shards.is_empty()).then(|| format!("{collection}: {}", shards.join(", ")))
        })
        .collect()
}

/// The key the operator itself sends to the cluster's Qdrant: the Secret key that
/// `status.auth.apiKeySecretRef` names (the served keys Secret). `None` when the cluster has
/// no key.
///
/// # Errors
/// [`PluginError::NotFound`] for a missing cluster or Secret; the API's errors.
pub async fn cluster_api_key(
    client: &kube::Client,
    namespace: &str,
    name: &str,
) -> Result<Option<String>> {
    let qc = crate::get_cluster(client, namespace, name).await?;
    let Some(r) = qc
        .status
        .and_then(|s| s.auth)
        .and_then(|a| a.api_key_secret_ref)
    else {
        return Ok(None);
    };
    let secrets: Api<k8s_openapi::api::core::v1::Secret> =
        Api::namespaced(client.clone(), namespace);
    let secret = secrets
        .get_opt(&r.name)
        .await?
        .ok_or_else(|| PluginError::NotFound {
            kind: "Secret".into(),
            namespace: namespace.into(),
            name: r.name.clone(),
        })?;
    Ok(reconcile_lib::secrets::secret_value(&secret, &r.key))
}
