//! The TLS step of a reconcile (`spec.tls`): makes sure the Secret Qdrant serves exists and is
//! current, and reports what the rest of the reconcile needs (the status, the CA the operator
//! trusts, the certificate hash for the pod template).
//!
//! - Generated (no `spec.tls.secretName`): the CA Secret `<cluster>-ca` is created once and never
//!   written again (a CA Secret the user created before is used as it is); the serving Secret
//!   `<cluster>-tls` is created, and replaced when [`renewal`] says so (near expiry,
//!   names not covered, not issued by the current CA). Events `CertificateIssued` and
//!   `CertificateRenewed`.
//! - User (`spec.tls.secretName`): the Secret is only read. It must hold `tls.crt`, `tls.key` and
//!   `ca.crt`, a readable unexpired certificate that covers the names peers and the operator dial;
//!   otherwise the cluster is blocked with reason [`TLS_SECRET_NOT_FOUND`] or
//!   [`TLS_SECRET_INVALID`] (the message names `spec.tls.secretName` and what is missing).
//! - `spec.tls.p2p.enabled` differing from `status.tls.p2p` is refused ([`TLS_P2P_IMMUTABLE`]):
//!   nothing is applied until it is set back (the CRD's CEL rule refuses it first; this guards
//!   clusters whose CRD predates the rule).
//!
//! Calls the Kubernetes API only: `GET` Secrets, `POST` (create) the generated ones, `PATCH`
//! (server-side apply) the serving Secret on renewal, and events. Key material is never logged
//! nor put in a message.

use api_types::{QdrantCluster, cluster::TlsStatus, conditions::types};
use jiff::Timestamp;
use k8s_openapi::api::core::v1::Secret;
use kube::{Api, ResourceExt};
use reconcile_lib::{
    apply::Outcome,
    context::{Shared, object_key},
    error::Result,
};
use tracing::info;

use crate::build::{
    Names,
    tls::{
        CA_KEY, CERT_KEY, LoadedCa, PRIVATE_KEY_KEY, Renewal, SecretMaterial, ca_expires_soon,
        ca_secret, ca_secret_ref, certificate_hash, generate_ca, inspect, issue_server_certificate,
        load_ca, renewal, required_names, server_secret, uncovered,
    },
};
use crate::vocabulary::{
    reasons::TLS_CA_EXPIRING, reasons::TLS_CERTIFICATE_ERROR, reasons::TLS_P2P_IMMUTABLE,
    reasons::TLS_SECRET_INVALID, reasons::TLS_SECRET_NOT_FOUND,
};

/// What the TLS step found or did.
#[derive(Debug, Clone, Default)]
pub struct TlsOutcome {
    /// `status.tls`: client/p2p as in the spec (the previous value when `refused`), the serving
    /// Secret, where `ca.crt` is, and the generated certificate's expiry.
    pub status: TlsStatus,
    /// PEM of `ca.crt` of the serving Secret, for the operator's own Qdrant client
    /// (`PeerAccess::ca_pem`); `Some` only with client TLS on and a readable Secret.
    pub ca_pem: Option<Vec<u8>>,
    /// [`certificate_hash`] of the served `tls.crt` and `ca.crt`, for `Observed::tls_hash`;
    /// `None` with TLS off or while the serving Secret is incomplete.
    pub cert_hash: Option<String>,
    /// Reason and message when TLS keeps the cluster from being ready.
    pub blocked: Option<(String, String)>,
    /// The spec asks for a change that is refused ([`TLS_P2P_IMMUTABLE`]): apply nothing.
    pub refused: bool,
}

fn blocked(reason: &str, message: String) -> Option<(String, String)> {
    Some((reason.to_string(), message))
}

fn scheme(tls: bool) -> &'static str {
    if tls { "https" } else { "http" }
}

/// True when `secret` is controlled by `qc` (a controller owner reference with its uid).
fn owned_by(secret: &Secret, qc: &QdrantCluster) -> bool {
    let uid = qc.uid();
    secret
        .owner_references()
        .iter()
        .any(|o| o.controller == Some(true) && Some(&o.uid) == uid.as_ref())
}

/// Runs the TLS step for `qc` at the current time. See the module docs for what it reads and
/// writes.
///
/// Errors: Kubernetes API failures (transient ones are retried by the error policy). Problems
/// with the Secrets' content are reported in [`TlsOutcome::blocked`], never as errors.
pub async fn reconcile(qc: &QdrantCluster, shared: &Shared, names: &Names) -> Result<TlsOutcome> {
    reconcile_at(qc, shared, names, Timestamp::now()).await
}

/// [`reconcile`] with the time given: `now` decides renewals and the validity of new
/// certificates.
pub async fn reconcile_at(
    qc: &QdrantCluster,
    shared: &Shared,
    names: &Names,
    now: Timestamp,
) -> Result<TlsOutcome> {
    let spec = qc.spec.tls();
    let mut out = TlsOutcome {
        status: TlsStatus {
            client: spec.client_enabled(),
            p2p: spec.p2p_enabled(),
            ..TlsStatus::default()
        },
        ..TlsOutcome::default()
    };

    if let Some(prev) = qc.status.as_ref().and_then(|s| s.tls.as_ref())
        && prev.p2p != out.status.p2p
    {
        let message = format!(
            "spec.tls.p2p.enabled cannot change after creation: the peers are registered in \
             consensus under {}:// p2p URIs; set spec.tls.p2p.enabled back to {} (nothing is \
             applied until then)",
            scheme(prev.p2p),
            prev.p2p
        );
        if !crate::vocabulary::reported(qc, types::READY, TLS_P2P_IMMUTABLE, &message) {
            shared
                .events
                .warning(qc, TLS_P2P_IMMUTABLE, "Validate", message.clone())
                .await;
        }
        return Ok(TlsOutcome {
            status: prev.clone(),
            blocked: blocked(TLS_P2P_IMMUTABLE, message),
            refused: true,
            ..TlsOutcome::default()
        });
    }
    if !spec.any_enabled() {
        return Ok(out);
    }
    out.status.certificate_secret_name = Some(names.tls_secret.clone());
    out.status.ca_secret_ref = Some(ca_secret_ref(names));

    let secrets: Api<Secret> = Api::namespaced(shared.applier.client().clone(), &names.namespace);
    let served = match &spec.secret_name {
        Some(name) => user_secret(qc, &secrets, names, name, now, &mut out).await?,
        None => generated(qc, shared, &secrets, names, now, &mut out).await?,
    };
    if let Some(m) = served
        && let (Some(cert), Some(ca)) = (&m.cert_pem, &m.ca_pem)
    {
        out.cert_hash = Some(certificate_hash(cert, ca));
        if names.client_tls {
            out.ca_pem = Some(ca.clone().into_bytes());
        }
    }
    Ok(out)
}

/// The user's Secret `name` (`spec.tls.secretName`): read and checked, never written.
async fn user_secret(
    qc: &QdrantCluster,
    secrets: &Api<Secret>,
    names: &Names,
    name: &str,
    now: Timestamp,
    out: &mut TlsOutcome,
) -> Result<Option<SecretMaterial>> {
    let Some(secret) = secrets.get_opt(name).await? else {
        out.blocked = blocked(
            TLS_SECRET_NOT_FOUND,
            format!(
                "Secret {name} (spec.tls.secretName) not found in namespace {}: expected a \
                 kubernetes.io/tls Secret with {CERT_KEY}, {PRIVATE_KEY_KEY} and {CA_KEY}",
                names.namespace
            ),
        );
        return Ok(None);
    };
    let m = SecretMaterial::of(&secret);
    let missing = m.missing_keys();
    if !missing.is_empty() {
        out.blocked = blocked(
            TLS_SECRET_INVALID,
            format!(
                "Secret {name} (spec.tls.secretName) has no {} (missing or empty): Qdrant \
                 needs {CERT_KEY}, {PRIVATE_KEY_KEY} and {CA_KEY}",
                missing.join(", ")
            ),
        );
        return Ok(None);
    }
    let cert = m.cert_pem.as_deref().unwrap_or_default();
    let problem = match inspect(cert) {
        Err(e) => Some(format!("its {CERT_KEY} is unusable: {e}")),
        Ok(info) if info.not_after <= now => {
            Some(format!("its certificate expired at {}", info.not_after))
        }
        Ok(info) => {
            let missing = uncovered(&info.dns_names, &required_names(names, qc.spec.replicas));
            (!missing.is_empty()).then(|| {
                format!(
                    "its certificate does not cover {} (subjectAltName DNS names; a wildcard \
                     *.{}.{}.svc covers every pod)",
                    missing.join(", "),
                    names.headless,
                    names.namespace
                )
            })
        }
    };
    if let Some(problem) = problem {
        out.blocked = blocked(
            TLS_SECRET_INVALID,
            format!("Secret {name} (spec.tls.secretName): {problem}"),
        );
    }
    Ok(Some(m))
}

/// The generated CA and serving Secrets: the CA created once, the server certificate created
/// or renewed. Returns what the serving Secret holds afterwards.
async fn generated(
    qc: &QdrantCluster,
    shared: &Shared,
    secrets: &Api<Secret>,
    names: &Names,
    now: Timestamp,
    out: &mut TlsOutcome,
) -> Result<Option<SecretMaterial>> {
    let Some(ca) = certificate_authority(qc, shared, secrets, names, now, out).await? else {
        // Keep serving what exists; nothing can be issued without a CA.
        return Ok(secrets
            .get_opt(&names.tls_secret)
            .await?
            .map(|s| SecretMaterial::of(&s)));
    };
    if ca_expires_soon(&ca, now) && out.blocked.is_none() {
        out.blocked = blocked(
            TLS_CA_EXPIRING,
            format!(
                "the CA in Secret {} (generated for spec.tls) expires at {}: server \
                 certificates cannot outlive it; replace the CA (see the TLS runbook)",
                names.ca_secret, ca.info.not_after
            ),
        );
    }

    let live = secrets.get_opt(&names.tls_secret).await?;
    let reason = match &live {
        None => None,
        Some(s) if !owned_by(s, qc) => {
            out.blocked = blocked(
                TLS_SECRET_INVALID,
                format!(
                    "Secret {} exists but was not created by the operator for this cluster: set \
                     spec.tls.secretName: {} to serve it, or delete it to have one generated",
                    names.tls_secret, names.tls_secret
                ),
            );
            return Ok(live.as_ref().map(SecretMaterial::of));
        }
        Some(s) => {
            let m = SecretMaterial::of(s);
            match renewal(
                &m,
                &ca,
                names,
                &required_names(names, qc.spec.replicas),
                now,
            ) {
                Renewal::Keep { not_after } => {
                    out.status.not_after = Some(not_after.to_string());
                    return Ok(Some(m));
                }
                Renewal::Renew(reason) => Some(reason),
            }
        }
    };

    let server = match issue_server_certificate(&ca, names, now) {
        Ok(s) => s,
        Err(e) => {
            out.blocked = blocked(
                TLS_CERTIFICATE_ERROR,
                format!(
                    "cannot issue the server certificate for Secret {}: {e}",
                    names.tls_secret
                ),
            );
            return Ok(live.as_ref().map(SecretMaterial::of));
        }
    };
    let desired = server_secret(qc, &server, &ca.material.cert_pem);
    let (written, event) = match reason {
        None => {
            let (s, outcome) = shared.applier.create_if_missing(&desired).await?;
            let event = (outcome == Outcome::Created).then(|| {
                (
                    "CertificateIssued",
                    format!(
                        "issued the server certificate in Secret {} (CA in Secret {})",
                        names.tls_secret, names.ca_secret
                    ),
                )
            });
            (s, event)
        }
        Some(reason) => {
            let (s, _) = shared.applier.apply(&desired).await?;
            let event = Some((
                "CertificateRenewed",
                format!(
                    "renewed the server certificate in Secret {} because {reason}; the pods \
                     restart one at a time to serve it",
                    names.tls_secret
                ),
            ));
            (s, event)
        }
    };
    let m = SecretMaterial::of(&written);
    if let Some(info) = m.cert_pem.as_deref().and_then(|c| inspect(c).ok()) {
        out.status.not_after = Some(info.not_after.to_string());
    }
    if let Some((reason, message)) = event {
        info!(cluster = %object_key(qc), %message, "TLS");
        shared.events.normal(qc, reason, "Issue", message).await;
    }
    Ok(Some(m))
}

/// The CA from Secret `<cluster>-ca`, generated and created when missing (never overwritten).
/// `None` (and `out.blocked` set) when the Secret exists but holds no usable CA.
async fn certificate_authority(
    qc: &QdrantCluster,
    shared: &Shared,
    secrets: &Api<Secret>,
    names: &Names,
    now: Timestamp,
    out: &mut TlsOutcome,
) -> Result<Option<LoadedCa>> {
    let live = match secrets.get_opt(&names.ca_secret).await? {
        Some(s) => s,
        None => {
            let ca = match generate_ca(names, now) {
                Ok(ca) => ca,
                Err(e) => {
                    out.blocked = blocked(
                        TLS_CERTIFICATE_ERROR,
                        format!("cannot generate the CA for Secret {}: {e}", names.ca_secret),
                    );
                    return Ok(None);
                }
            };
            let (s, outcome) = shared
                .applier
                .create_if_missing(&ca_secret(qc, &ca))
                .await?;
            if outcome == Outcome::Created {
                let message = format!("generated the cluster's CA in Secret {}", names.ca_secret);
                info!(cluster = %object_key(qc), %message, "TLS");
                shared
                    .events
                    .normal(qc, "CertificateAuthorityCreated", "Issue", message)
                    .await;
            }
            s
        }
    };
    let invalid = |what: String| {
        blocked(
            TLS_SECRET_INVALID,
            format!(
                "Secret {} (the CA of spec.tls) {what}; it is never overwritten: fix it, or \
                 delete it to have a new CA generated (then restart all pods at once, see the \
                 TLS runbook)",
                names.ca_secret
            ),
        )
    };
    let m = SecretMaterial::of(&live);
    let Some(keyed) = m.keyed() else {
        out.blocked = invalid(format!(
            "has no {} (missing or empty)",
            m.missing_keys()
                .into_iter()
                .filter(|k| *k != CA_KEY)
                .collect::<Vec<_>>()
                .join(", ")
        ));
        return Ok(None);
    };
    match load_ca(keyed) {
        Ok(ca) => Ok(Some(ca)),
        Err(e) => {
            out.blocked = invalid(format!("holds no usable CA: {e}"));
            Ok(None)
        }
    }
}
