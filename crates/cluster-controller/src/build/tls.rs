//! TLS material of a QdrantCluster (`spec.tls`): the operator's CA and server certificate,
//! the Secrets holding them, what a served certificate must name, and when to renew it. Pure
//! (no network); the reconcile step [`crate::tls`] reads and writes the Secrets.
//!
//! Qdrant serves one certificate on every TLS port (its `tls.cert` and `tls.key`; peers and
//! clients verify against `tls.ca_cert`), so one Secret serves client and p2p traffic. It is
//! mounted whole (no `subPath`) at [`TLS_DIR`], so the kubelet refreshes the files when the
//! Secret changes and Qdrant's `tls.cert_ttl` reloads the HTTPS certificate; gRPC and p2p read
//! it only at start, which is why the pod template carries [`TLS_HASH_ANNOTATION`].
//!
//! Names (SANs) of the generated server certificate: the client Service (`<cluster>`,
//! `<cluster>.<ns>`, `<cluster>.<ns>.svc`, `<cluster>.<ns>.svc.cluster.local`) and every pod
//! through a wildcard on the headless Service (`*.<cluster>-headless.<ns>.svc` and its
//! `.cluster.local` form). A wildcard rather than one name per pod: a scale-up needs no new
//! certificate, so it does not restart every pod; and the wildcard matches only names in the
//! headless Service's own subdomain, where only this cluster's pods have DNS records.
//!
//! Keys are ECDSA P-256 (rcgen's default, with the *ring* backend). The CA is valid for 10
//! years, the server certificate for 1 year (never past the CA), both backdated by one hour
//! for clock skew.

use std::{collections::BTreeMap, fmt};

use api_types::{QdrantCluster, cluster::SecretKeyRef};
use jiff::{SignedDuration, Timestamp};
use k8s_openapi::{ByteString, api::core::v1::Secret};
use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    Issuer, KeyPair, KeyUsagePurpose, PublicKeyData,
};
use sha2::{Digest, Sha256};
use x509_parser::{
    certificate::X509Certificate, extensions::GeneralName, pem::Pem, prelude::FromDer,
};

use super::{Names, child_meta};

/// Name of the pod volume holding the serving Secret.
pub const TLS_VOLUME: &str = "tls";
/// Where the serving Secret is mounted in the Qdrant container (read-only, whole Secret).
pub const TLS_DIR: &str = "/qdrant/tls";
/// Key of the certificate (chain) in a TLS Secret: Qdrant's `tls.cert`.
pub const CERT_KEY: &str = "tls.crt";
/// Key of the private key in a TLS Secret: Qdrant's `tls.key`.
pub const PRIVATE_KEY_KEY: &str = "tls.key";
/// Key of the CA certificate in a TLS Secret: Qdrant's `tls.ca_cert`, and what clients trust.
pub const CA_KEY: &str = "ca.crt";
/// Type of both generated Secrets (what cert-manager writes too).
pub const SECRET_TYPE: &str = "kubernetes.io/tls";
/// Annotation on the pod template holding [`certificate_hash`] of the served certificate: a
/// renewed certificate changes the template, so the pods are restarted (gRPC and p2p read the
/// certificate only at start).
pub const TLS_HASH_ANNOTATION: &str = "qdrant.operator.dev/tls-hash";
/// Qdrant's `tls.cert_ttl`, in seconds: how often it re-reads the HTTPS certificate from disk.
pub const CERT_TTL_SECONDS: u64 = 3600;
/// Lifetime of the generated CA: 10 years (3650 days).
pub const CA_VALIDITY: SignedDuration = SignedDuration::from_hours(24 * 3650);
/// Lifetime of a generated server certificate: 1 year (365 days), capped at the CA's expiry.
pub const SERVER_VALIDITY: SignedDuration = SignedDuration::from_hours(24 * 365);
/// A certificate is renewed when less than this remains, whatever its lifetime: 30 days.
pub const MIN_REMAINING: SignedDuration = SignedDuration::from_hours(24 * 30);
/// `notBefore` is this far before issuance, for clocks that lag: 1 hour.
const BACKDATE: SignedDuration = SignedDuration::from_hours(1);

/// A certificate could not be made or read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TlsError {
    /// Key generation or signing failed (rcgen's message; never key material).
    #[error("cannot generate the certificate: {0}")]
    Generate(String),
    /// A PEM text is not a usable certificate or key: `what` names it (e.g. `tls.crt`).
    #[error("{what}: {reason}")]
    Invalid {
        /// Which text, e.g. `tls.key`.
        what: String,
        /// What is wrong with it.
        reason: String,
    },
}

fn invalid(what: &str, reason: impl fmt::Display) -> TlsError {
    TlsError::Invalid {
        what: what.to_string(),
        reason: reason.to_string(),
    }
}

fn generate_error(e: impl fmt::Display) -> TlsError {
    TlsError::Generate(e.to_string())
}

/// A certificate and its private key, both PEM. `Debug` never shows the key.
#[derive(Clone, PartialEq, Eq)]
pub struct KeyedCertificate {
    /// `-----BEGIN CERTIFICATE-----` block(s).
    pub cert_pem: String,
    /// `-----BEGIN PRIVATE KEY-----` block (PKCS#8).
    pub key_pem: String,
}

impl fmt::Debug for KeyedCertificate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KeyedCertificate")
            .field("cert_pem", &format!("{} bytes", self.cert_pem.len()))
            .field("key_pem", &"***")
            .finish()
    }
}

/// What was read back from a certificate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertificateInfo {
    /// Start of validity.
    pub not_before: Timestamp,
    /// End of validity.
    pub not_after: Timestamp,
    /// DNS names of the subjectAltName extension, as written (wildcards included).
    pub dns_names: Vec<String>,
    /// basicConstraints CA:true.
    pub is_ca: bool,
}

impl CertificateInfo {
    /// The validity period, `notAfter - notBefore`.
    pub fn lifetime(&self) -> SignedDuration {
        self.not_after.duration_since(self.not_before)
    }
}

/// The DER of the first `CERTIFICATE` block of `pem`.
fn first_certificate_der(pem: &str) -> Result<Vec<u8>, String> {
    for block in Pem::iter_from_buffer(pem.as_bytes()) {
        let block = block.map_err(|e| format!("not valid PEM: {e}"))?;
        if block.label == "CERTIFICATE" {
            return Ok(block.contents);
        }
    }
    Err("contains no -----BEGIN CERTIFICATE----- block".into())
}

fn parse_der(der: &[u8]) -> Result<X509Certificate<'_>, String> {
    X509Certificate::from_der(der)
        .map(|(_, c)| c)
        .map_err(|e| format!("not an X.509 certificate: {e}"))
}

fn timestamp(t: x509_parser::time::ASN1Time) -> Result<Timestamp, String> {
    Timestamp::from_second(t.timestamp()).map_err(|e| format!("validity out of range: {e}"))
}

fn info_of(cert: &X509Certificate<'_>) -> Result<CertificateInfo, String> {
    let dns_names = cert
        .subject_alternative_name()
        .map_err(|e| format!("invalid subjectAltName: {e}"))?
        .map(|san| {
            san.value
                .general_names
                .iter()
                .filter_map(|n| match n {
                    GeneralName::DNSName(d) => Some((*d).to_string()),
                    _ => None,
                })
                .collect()
        })
        .unwrap_or_default();
    Ok(CertificateInfo {
        not_before: timestamp(cert.validity().not_before)?,
        not_after: timestamp(cert.validity().not_after)?,
        dns_names,
        is_ca: cert.is_ca(),
    })
}

/// Reads validity, DNS names and CA flag of the first certificate in `cert_pem` (a chain
/// starts with the leaf). Errors: a message saying why it is not a certificate.
pub fn inspect(cert_pem: &str) -> Result<CertificateInfo, String> {
    let der = first_certificate_der(cert_pem)?;
    info_of(&parse_der(&der)?)
}

/// True when the first certificate of `cert_pem` names `ca_cert_pem`'s subject as issuer and
/// its signature verifies with that CA's public key (x509-parser with *ring*).
pub fn issued_by(cert_pem: &str, ca_cert_pem: &str) -> bool {
    let (Ok(der), Ok(ca_der)) = (
        first_certificate_der(cert_pem),
        first_certificate_der(ca_cert_pem),
    ) else {
        return false;
    };
    let (Ok(cert), Ok(ca)) = (parse_der(&der), parse_der(&ca_der)) else {
        return false;
    };
    cert.issuer().as_raw() == ca.subject().as_raw()
        && cert.verify_signature(Some(ca.public_key())).is_ok()
}

/// True when `key_pem` is the private key of the first certificate of `cert_pem`.
pub fn key_matches(cert_pem: &str, key_pem: &str) -> bool {
    let (Ok(der), Ok(key)) = (first_certificate_der(cert_pem), KeyPair::from_pem(key_pem)) else {
        return false;
    };
    parse_der(&der)
        .is_ok_and(|c| c.public_key().subject_public_key.data.as_ref() == key.der_bytes())
}

fn to_time(t: Timestamp) -> Result<time::OffsetDateTime, TlsError> {
    time::OffsetDateTime::from_unix_timestamp(t.as_second()).map_err(generate_error)
}

fn add(t: Timestamp, d: SignedDuration) -> Result<Timestamp, TlsError> {
    t.checked_add(d).map_err(generate_error)
}

/// Generates a self-signed CA for the cluster: CN `<cluster> CA`, OU `<namespace>`, O
/// `qdrant-operator`; CA:true with path length 0 (it signs server certificates only); valid
/// from `now` - 1 h for [`CA_VALIDITY`]. Errors: [`TlsError::Generate`].
pub fn generate_ca(names: &Names, now: Timestamp) -> Result<KeyedCertificate, TlsError> {
    let mut params = CertificateParams::default();
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, format!("{} CA", names.cluster));
    dn.push(DnType::OrganizationalUnitName, names.namespace.clone());
    dn.push(DnType::OrganizationName, "qdrant-operator");
    params.distinguished_name = dn;
    params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    params.not_before = to_time(add(now, -BACKDATE)?)?;
    params.not_after = to_time(add(now, CA_VALIDITY)?)?;
    let key = KeyPair::generate().map_err(generate_error)?;
    let cert = params.self_signed(&key).map_err(generate_error)?;
    Ok(KeyedCertificate {
        cert_pem: cert.pem(),
        key_pem: key.serialize_pem(),
    })
}

/// A CA read back from its PEM texts, ready to sign.
#[derive(Debug, Clone)]
pub struct LoadedCa {
    /// The PEM texts.
    pub material: KeyedCertificate,
    /// What the CA certificate says.
    pub info: CertificateInfo,
}

/// Checks that `material` is a CA certificate (CA:true) with its private key.
/// Errors: [`TlsError::Invalid`] naming `tls.crt` or `tls.key`.
pub fn load_ca(material: KeyedCertificate) -> Result<LoadedCa, TlsError> {
    let info = inspect(&material.cert_pem).map_err(|e| invalid(CERT_KEY, e))?;
    if !info.is_ca {
        return Err(invalid(CERT_KEY, "is not a CA certificate (CA:true)"));
    }
    if !key_matches(&material.cert_pem, &material.key_pem) {
        return Err(invalid(
            PRIVATE_KEY_KEY,
            "is not the private key of the CA certificate in tls.crt",
        ));
    }
    Ok(LoadedCa { material, info })
}

/// The DNS names a generated server certificate carries (see the module docs).
pub fn san_names(names: &Names) -> Vec<String> {
    let (c, ns, h) = (&names.cluster, &names.namespace, &names.headless);
    vec![
        c.clone(),
        format!("{c}.{ns}"),
        format!("{c}.{ns}.svc"),
        format!("{c}.{ns}.svc.cluster.local"),
        format!("*.{h}.{ns}.svc"),
        format!("*.{h}.{ns}.svc.cluster.local"),
    ]
}

/// The names a served certificate must cover for `replicas` pods: every pod through the
/// headless Service (`<cluster>-<i>.<cluster>-headless.<ns>.svc`: peers dial these p2p URIs,
/// the operator these REST URLs) and, with client TLS on, the client Service as published in
/// `status.endpoints` (`<cluster>.<ns>.svc`).
pub fn required_names(names: &Names, replicas: i32) -> Vec<String> {
    let mut out = vec![];
    if names.client_tls {
        out.push(format!("{}.{}.svc", names.cluster, names.namespace));
    }
    for i in 0..replicas.max(0) {
        out.push(format!(
            "{}-{i}.{}.{}.svc",
            names.cluster, names.headless, names.namespace
        ));
    }
    out
}

/// True when `name` is one of `dns_names` (ASCII case-insensitive), or is matched by a
/// wildcard in them: `*.rest` matches `label.rest` where `label` is one non-empty DNS label,
/// as TLS clients match (RFC 6125 6.4.3, whole left-most label only).
pub fn covers(dns_names: &[String], name: &str) -> bool {
    dns_names.iter().any(|san| {
        if san.eq_ignore_ascii_case(name) {
            return true;
        }
        match (san.strip_prefix("*."), name.split_once('.')) {
            (Some(rest), Some((label, name_rest))) => {
                !label.is_empty() && !label.contains('*') && rest.eq_ignore_ascii_case(name_rest)
            }
            _ => false,
        }
    })
}

/// The names of `required` that `dns_names` does not cover (see [`covers`]), in order.
pub fn uncovered(dns_names: &[String], required: &[String]) -> Vec<String> {
    required
        .iter()
        .filter(|n| !covers(dns_names, n))
        .cloned()
        .collect()
}

/// Issues a server certificate for the cluster, signed by `ca`: the [`san_names`], CN
/// `<cluster>`, CA:false, digitalSignature, extended key usages serverAuth and clientAuth (a
/// peer may present it), a new key, valid from `now` - 1 h for [`SERVER_VALIDITY`] but never
/// past the CA's `notAfter`. Errors: [`TlsError`] when the CA cannot sign.
pub fn issue_server_certificate(
    ca: &LoadedCa,
    names: &Names,
    now: Timestamp,
) -> Result<KeyedCertificate, TlsError> {
    let ca_key =
        KeyPair::from_pem(&ca.material.key_pem).map_err(|e| invalid(PRIVATE_KEY_KEY, e))?;
    let issuer = Issuer::from_ca_cert_pem(&ca.material.cert_pem, ca_key)
        .map_err(|e| invalid(CERT_KEY, e))?;
    let mut params = CertificateParams::new(san_names(names)).map_err(generate_error)?;
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, names.cluster.clone());
    params.distinguished_name = dn;
    params.is_ca = IsCa::ExplicitNoCa;
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    params.extended_key_usages = vec![
        ExtendedKeyUsagePurpose::ServerAuth,
        ExtendedKeyUsagePurpose::ClientAuth,
    ];
    params.use_authority_key_identifier_extension = true;
    params.not_before = to_time(add(now, -BACKDATE)?)?;
    params.not_after = to_time(add(now, SERVER_VALIDITY)?.min(ca.info.not_after))?;
    let key = KeyPair::generate().map_err(generate_error)?;
    let cert = params.signed_by(&key, &issuer).map_err(generate_error)?;
    Ok(KeyedCertificate {
        cert_pem: cert.pem(),
        key_pem: key.serialize_pem(),
    })
}

/// The three keys of a TLS Secret as text (`None` when missing, empty or not UTF-8). `Debug`
/// never shows the private key.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct SecretMaterial {
    /// `tls.crt`.
    pub cert_pem: Option<String>,
    /// `tls.key`.
    pub key_pem: Option<String>,
    /// `ca.crt`.
    pub ca_pem: Option<String>,
}

impl fmt::Debug for SecretMaterial {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let len = |v: &Option<String>| v.as_ref().map(|s| format!("{} bytes", s.len()));
        f.debug_struct("SecretMaterial")
            .field("cert_pem", &len(&self.cert_pem))
            .field("key_pem", &self.key_pem.as_ref().map(|_| "***"))
            .field("ca_pem", &len(&self.ca_pem))
            .finish()
    }
}

impl SecretMaterial {
    /// The keys of `secret` (`data`, else `stringData`).
    pub fn of(secret: &Secret) -> Self {
        let get = |k: &str| reconcile_lib::secrets::secret_value(secret, k);
        Self {
            cert_pem: get(CERT_KEY),
            key_pem: get(PRIVATE_KEY_KEY),
            ca_pem: get(CA_KEY),
        }
    }

    /// The keys Qdrant needs that are missing or empty, in the order tls.crt, tls.key, ca.crt.
    pub fn missing_keys(&self) -> Vec<&'static str> {
        [
            (CERT_KEY, &self.cert_pem),
            (PRIVATE_KEY_KEY, &self.key_pem),
            (CA_KEY, &self.ca_pem),
        ]
        .into_iter()
        .filter(|(_, v)| v.is_none())
        .map(|(k, _)| k)
        .collect()
    }

    /// The certificate and key, when both are present.
    pub fn keyed(&self) -> Option<KeyedCertificate> {
        Some(KeyedCertificate {
            cert_pem: self.cert_pem.clone()?,
            key_pem: self.key_pem.clone()?,
        })
    }
}

/// Why a generated server certificate is replaced.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RenewReason {
    /// A key is missing or tls.crt is not a certificate.
    Unreadable(String),
    /// tls.key is not the key of tls.crt.
    KeyMismatch,
    /// tls.crt was not signed by the current CA, or ca.crt is not the current CA.
    NotIssuedByCa,
    /// These required names are not covered.
    NamesNotCovered(Vec<String>),
    /// Less than a third of the lifetime, or less than [`MIN_REMAINING`], remains.
    ExpiresSoon {
        /// The current certificate's `notAfter`.
        not_after: Timestamp,
    },
}

impl fmt::Display for RenewReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Unreadable(why) => write!(f, "the certificate cannot be read: {why}"),
            Self::KeyMismatch => write!(f, "tls.key does not belong to tls.crt"),
            Self::NotIssuedByCa => write!(f, "it was not issued by the current CA"),
            Self::NamesNotCovered(n) => {
                write!(f, "it does not cover {}", n.join(", "))
            }
            Self::ExpiresSoon { not_after } => write!(f, "it expires at {not_after}"),
        }
    }
}

/// The renewal decision for a generated server certificate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Renewal {
    /// The certificate is good; `not_after` is its expiry.
    Keep {
        /// The certificate's `notAfter`.
        not_after: Timestamp,
    },
    /// Issue a new certificate.
    Renew(RenewReason),
}

/// True when less than a third of `info`'s lifetime, or less than [`MIN_REMAINING`], is
/// left at `now`.
pub fn expires_soon(info: &CertificateInfo, now: Timestamp) -> bool {
    let remaining = info.not_after.duration_since(now);
    let third = info
        .lifetime()
        .checked_div(3)
        .unwrap_or(SignedDuration::ZERO);
    remaining < third || remaining < MIN_REMAINING
}

/// Whether the server certificate in `served` (the generated serving Secret) must be replaced
/// at `now`, checked in this order: a key missing or unreadable; tls.key not matching tls.crt;
/// not signed by `ca` (or ca.crt not `ca`); a name of [`san_names`] or `required` not
/// covered; [`expires_soon`]. An expiring certificate is kept when a new one could not last
/// longer (it already ends with the CA), so an expiring CA does not cause a renewal at every
/// reconcile (see [`ca_expires_soon`]).
pub fn renewal(
    served: &SecretMaterial,
    ca: &LoadedCa,
    names: &Names,
    required: &[String],
    now: Timestamp,
) -> Renewal {
    let (Some(cert), Some(key), Some(ca_pem)) = (&served.cert_pem, &served.key_pem, &served.ca_pem)
    else {
        return Renewal::Renew(RenewReason::Unreadable(format!(
            "missing {}",
            served.missing_keys().join(", ")
        )));
    };
    let info = match inspect(cert) {
        Ok(i) => i,
        Err(e) => return Renewal::Renew(RenewReason::Unreadable(format!("tls.crt {e}"))),
    };
    if !key_matches(cert, key) {
        return Renewal::Renew(RenewReason::KeyMismatch);
    }
    if ca_pem.trim() != ca.material.cert_pem.trim() || !issued_by(cert, &ca.material.cert_pem) {
        return Renewal::Renew(RenewReason::NotIssuedByCa);
    }
    let mut wanted = san_names(names);
    wanted.extend(required.iter().cloned());
    let missing = uncovered(&info.dns_names, &wanted);
    if !missing.is_empty() {
        return Renewal::Renew(RenewReason::NamesNotCovered(missing));
    }
    if expires_soon(&info, now) && ca.info.not_after > info.not_after {
        return Renewal::Renew(RenewReason::ExpiresSoon {
            not_after: info.not_after,
        });
    }
    Renewal::Keep {
        not_after: info.not_after,
    }
}

/// True when the CA has less than [`MIN_REMAINING`] left at `now`: server certificates can no
/// longer be renewed for long, and the CA must be replaced (not automated).
pub fn ca_expires_soon(ca: &LoadedCa, now: Timestamp) -> bool {
    ca.info.not_after.duration_since(now) < MIN_REMAINING
}

fn tls_secret(qc: &QdrantCluster, name: &str, cert: &KeyedCertificate, ca_pem: &str) -> Secret {
    let data = BTreeMap::from([
        (
            CERT_KEY.to_string(),
            ByteString(cert.cert_pem.clone().into_bytes()),
        ),
        (
            PRIVATE_KEY_KEY.to_string(),
            ByteString(cert.key_pem.clone().into_bytes()),
        ),
        (CA_KEY.to_string(), ByteString(ca_pem.as_bytes().to_vec())),
    ]);
    Secret {
        metadata: child_meta(qc, name),
        type_: Some(SECRET_TYPE.into()),
        data: Some(data),
        ..Secret::default()
    }
}

/// The CA Secret `<cluster>-ca` (type `kubernetes.io/tls`: `tls.crt` and `ca.crt` the CA
/// certificate, `tls.key` its key; usable as a cert-manager CA issuer). Created once, never
/// overwritten by the operator.
pub fn ca_secret(qc: &QdrantCluster, ca: &KeyedCertificate) -> Secret {
    tls_secret(qc, &Names::of(qc).ca_secret, ca, &ca.cert_pem)
}

/// The serving Secret `<cluster>-tls` (type `kubernetes.io/tls`: `tls.crt`, `tls.key`, and
/// `ca.crt` = `ca_cert_pem`), mounted into every pod.
pub fn server_secret(qc: &QdrantCluster, server: &KeyedCertificate, ca_cert_pem: &str) -> Secret {
    tls_secret(qc, &Names::of(qc).tls_secret, server, ca_cert_pem)
}

/// Where clients find the CA to trust: `ca.crt` of the serving Secret (`status.tls.caSecretRef`).
pub fn ca_secret_ref(names: &Names) -> SecretKeyRef {
    SecretKeyRef {
        name: names.tls_secret.clone(),
        key: CA_KEY.into(),
    }
}

/// SHA-256 (hex, 64 characters) of the served certificate and its CA (`tls.crt`, a newline,
/// `ca.crt`): the value of [`TLS_HASH_ANNOTATION`]. A new certificate or a new CA changes it.
pub fn certificate_hash(cert_pem: &str, ca_pem: &str) -> String {
    let mut h = Sha256::new();
    h.update(cert_pem.trim().as_bytes());
    h.update(b"\n");
    h.update(ca_pem.trim().as_bytes());
    hex::encode(h.finalize())
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use std::sync::Arc;

    use rustls::{
        RootCertStore,
        client::{WebPkiServerVerifier, danger::ServerCertVerifier},
        pki_types::{CertificateDer, ServerName, UnixTime, pem::PemObject},
    };
    use serde_json::json;

    use super::*;

    const DAY: SignedDuration = SignedDuration::from_hours(24);

    fn qc(tls: serde_json::Value) -> QdrantCluster {
        serde_json::from_value(json!({
            "apiVersion": "qdrant.operator.dev/v1alpha1", "kind": "QdrantCluster",
            "metadata": {"name": "demo", "namespace": "prod", "uid": "1234"},
            "spec": {"replicas": 3, "tls": tls},
        }))
        .unwrap()
    }

    fn names() -> Names {
        Names::of(&qc(
            json!({"client": {"enabled": true}, "p2p": {"enabled": true}}),
        ))
    }

    fn now() -> Timestamp {
        Timestamp::from_second(1_750_000_000).unwrap()
    }

    fn ca_at(t: Timestamp) -> LoadedCa {
        load_ca(generate_ca(&names(), t).unwrap()).unwrap()
    }

    fn served(server: &KeyedCertificate, ca: &LoadedCa) -> SecretMaterial {
        SecretMaterial {
            cert_pem: Some(server.cert_pem.clone()),
            key_pem: Some(server.key_pem.clone()),
            ca_pem: Some(ca.material.cert_pem.clone()),
        }
    }

    /// What a rustls client (the operator's Qdrant client, Qdrant's p2p client) decides for
    /// `server_name` at `at`, trusting only `ca`.
    fn rustls_verifies(
        server: &KeyedCertificate,
        ca: &KeyedCertificate,
        server_name: &str,
        at: Timestamp,
    ) -> Result<(), rustls::Error> {
        let mut roots = RootCertStore::empty();
        roots
            .add(CertificateDer::from_pem_slice(ca.cert_pem.as_bytes()).unwrap())
            .unwrap();
        let verifier = WebPkiServerVerifier::builder_with_provider(
            Arc::new(roots),
            Arc::new(rustls::crypto::ring::default_provider()),
        )
        .build()
        .unwrap();
        let leaf = CertificateDer::from_pem_slice(server.cert_pem.as_bytes()).unwrap();
        verifier
            .verify_server_cert(
                &leaf,
                &[],
                &ServerName::try_from(server_name.to_string()).unwrap(),
                &[],
                UnixTime::since_unix_epoch(std::time::Duration::from_secs(
                    u64::try_from(at.as_second()).unwrap(),
                )),
            )
            .map(|_| ())
    }

    #[test]
    fn server_certificate_chains_to_the_ca_for_every_name_clients_dial() {
        let ca = ca_at(now());
        let server = issue_server_certificate(&ca, &names(), now()).unwrap();
        assert!(issued_by(&server.cert_pem, &ca.material.cert_pem));
        assert!(key_matches(&server.cert_pem, &server.key_pem));
        for name in [
            "demo",
            "demo.prod",
            "demo.prod.svc",
            "demo.prod.svc.cluster.local",
            "demo-0.demo-headless.prod.svc",
            "demo-17.demo-headless.prod.svc",
            "demo-2.demo-headless.prod.svc.cluster.local",
        ] {
            rustls_verifies(&server, &ca.material, name, now())
                .unwrap_or_else(|e| panic!("{name}: {e}"));
        }
        // The wildcard covers one label of the headless Service only.
        for name in [
            "other.prod.svc",
            "a.b.demo-headless.prod.svc",
            "demo-headless.prod.svc",
            "demo-0.other-headless.prod.svc",
        ] {
            assert!(
                rustls_verifies(&server, &ca.material, name, now()).is_err(),
                "{name} must not verify"
            );
        }
        // Past its expiry, or trusted against another CA, it does not verify.
        assert!(
            rustls_verifies(&server, &ca.material, "demo.prod.svc", now() + 366 * DAY).is_err()
        );
        let other = ca_at(now());
        assert!(rustls_verifies(&server, &other.material, "demo.prod.svc", now()).is_err());
        assert!(!issued_by(&server.cert_pem, &other.material.cert_pem));
    }

    #[test]
    fn validity_periods_and_names() {
        let ca = ca_at(now());
        assert!(ca.info.is_ca);
        assert_eq!(ca.info.not_before, now() - SignedDuration::from_hours(1));
        assert_eq!(ca.info.not_after, now() + 3650 * DAY);
        let server = issue_server_certificate(&ca, &names(), now()).unwrap();
        let info = inspect(&server.cert_pem).unwrap();
        assert!(!info.is_ca);
        assert_eq!(info.not_after, now() + 365 * DAY);
        assert_eq!(
            info.dns_names,
            vec![
                "demo",
                "demo.prod",
                "demo.prod.svc",
                "demo.prod.svc.cluster.local",
                "*.demo-headless.prod.svc",
                "*.demo-headless.prod.svc.cluster.local",
            ]
        );
        // Never past the CA.
        let old_ca = ca_at(now() - 3500 * DAY);
        let capped = issue_server_certificate(&old_ca, &names(), now()).unwrap();
        assert_eq!(
            inspect(&capped.cert_pem).unwrap().not_after,
            old_ca.info.not_after
        );
    }

    #[test]
    fn name_coverage_follows_tls_wildcard_rules() {
        let sans = vec![
            "demo.prod.svc".to_string(),
            "*.demo-headless.prod.svc".to_string(),
        ];
        assert!(covers(&sans, "DEMO.prod.svc"));
        assert!(covers(&sans, "demo-4.demo-headless.prod.svc"));
        assert!(!covers(&sans, "x.demo-4.demo-headless.prod.svc"));
        assert!(!covers(&sans, "demo-headless.prod.svc"));
        assert!(!covers(&sans, ".demo-headless.prod.svc"));
        assert!(!covers(&sans, "demo.prod"));
        let n = names();
        assert_eq!(
            required_names(&n, 2),
            vec![
                "demo.prod.svc",
                "demo-0.demo-headless.prod.svc",
                "demo-1.demo-headless.prod.svc"
            ]
        );
        // p2p only: the client Service is not dialled over TLS.
        let p2p_only = Names::of(&qc(json!({"p2p": {"enabled": true}})));
        assert_eq!(
            required_names(&p2p_only, 1),
            vec!["demo-0.demo-headless.prod.svc"]
        );
        // A certificate naming each pod explicitly (as a cert-manager user may write it).
        let explicit = vec![
            "demo.prod.svc".to_string(),
            "demo-0.demo-headless.prod.svc".to_string(),
        ];
        assert_eq!(
            uncovered(&explicit, &required_names(&n, 2)),
            vec!["demo-1.demo-headless.prod.svc"]
        );
    }

    #[test]
    fn a_fresh_certificate_is_kept() {
        let ca = ca_at(now());
        let server = issue_server_certificate(&ca, &names(), now()).unwrap();
        assert_eq!(
            renewal(
                &served(&server, &ca),
                &ca,
                &names(),
                &required_names(&names(), 3),
                now()
            ),
            Renewal::Keep {
                not_after: now() + 365 * DAY
            }
        );
    }

    #[test]
    fn renewal_at_a_third_of_the_lifetime() {
        let ca = ca_at(now());
        let server = issue_server_certificate(&ca, &names(), now()).unwrap();
        let info = inspect(&server.cert_pem).unwrap();
        let material = served(&server, &ca);
        let decide = |at: Timestamp| renewal(&material, &ca, &names(), &[], at);
        // Lifetime 365 days + 1 h (backdated): a third is 121 days 16 h 20 min.
        let third = info.lifetime().checked_div(3).unwrap();
        let boundary = info.not_after - third;
        assert!(matches!(decide(boundary), Renewal::Keep { .. }));
        assert_eq!(
            decide(boundary + SignedDuration::from_secs(1)),
            Renewal::Renew(RenewReason::ExpiresSoon {
                not_after: info.not_after
            })
        );
        assert!(matches!(decide(now() + 200 * DAY), Renewal::Keep { .. }));
        assert!(matches!(decide(info.not_after + DAY), Renewal::Renew(_)));
    }

    #[test]
    fn renewal_with_less_than_30_days_left_of_a_short_certificate() {
        // A 60-day certificate: a third (20 days) is less than 30 days, so 30 days rules.
        let ca = ca_at(now() - 3650 * DAY + 60 * DAY);
        let server = issue_server_certificate(&ca, &names(), now()).unwrap();
        let info = inspect(&server.cert_pem).unwrap();
        assert_eq!(info.not_after, ca.info.not_after);
        let material = served(&server, &ca);
        // Capped at the CA's expiry: renewing cannot help, so it is kept (no renewal loop)...
        let at = info.not_after - 29 * DAY;
        assert!(matches!(
            renewal(&material, &ca, &names(), &[], at),
            Renewal::Keep { .. }
        ));
        assert!(ca_expires_soon(&ca, at));
        assert!(!ca_expires_soon(&ca, info.not_after - 31 * DAY));
        // ...while against a longer-lived CA the same 30-day rule renews it.
        let long_ca = ca_at(now());
        let mut short = CertificateParams::new(san_names(&names())).unwrap();
        short.not_before = to_time(now()).unwrap();
        short.not_after = to_time(now() + 60 * DAY).unwrap();
        let key = KeyPair::generate().unwrap();
        let issuer = Issuer::from_ca_cert_pem(
            &long_ca.material.cert_pem,
            KeyPair::from_pem(&long_ca.material.key_pem).unwrap(),
        )
        .unwrap();
        let cert = short.signed_by(&key, &issuer).unwrap();
        let material = served(
            &KeyedCertificate {
                cert_pem: cert.pem(),
                key_pem: key.serialize_pem(),
            },
            &long_ca,
        );
        let end = now() + 60 * DAY;
        assert!(matches!(
            renewal(&material, &long_ca, &names(), &[], end - 30 * DAY),
            Renewal::Keep { .. }
        ));
        assert_eq!(
            renewal(
                &material,
                &long_ca,
                &names(),
                &[],
                end - 30 * DAY + SignedDuration::from_secs(1)
            ),
            Renewal::Renew(RenewReason::ExpiresSoon { not_after: end })
        );
    }

    #[test]
    fn a_certificate_from_another_ca_is_renewed() {
        let ca = ca_at(now());
        let other = ca_at(now());
        let foreign = issue_server_certificate(&other, &names(), now()).unwrap();
        // Signed by another CA, even when ca.crt claims the current one.
        assert_eq!(
            renewal(&served(&foreign, &ca), &ca, &names(), &[], now()),
            Renewal::Renew(RenewReason::NotIssuedByCa)
        );
        // Signed by the current CA but published with another ca.crt.
        let ours = issue_server_certificate(&ca, &names(), now()).unwrap();
        assert_eq!(
            renewal(&served(&ours, &other), &ca, &names(), &[], now()),
            Renewal::Renew(RenewReason::NotIssuedByCa)
        );
    }

    #[test]
    fn unreadable_mismatched_or_narrow_certificates_are_renewed() {
        let ca = ca_at(now());
        let server = issue_server_certificate(&ca, &names(), now()).unwrap();
        let mut m = served(&server, &ca);
        m.key_pem = None;
        assert_eq!(
            renewal(&m, &ca, &names(), &[], now()),
            Renewal::Renew(RenewReason::Unreadable("missing tls.key".into()))
        );
        let mut m = served(&server, &ca);
        m.cert_pem = Some("garbage".into());
        assert!(matches!(
            renewal(&m, &ca, &names(), &[], now()),
            Renewal::Renew(RenewReason::Unreadable(_))
        ));
        let mut m = served(&server, &ca);
        m.key_pem = Some(KeyPair::generate().unwrap().serialize_pem());
        assert_eq!(
            renewal(&m, &ca, &names(), &[], now()),
            Renewal::Renew(RenewReason::KeyMismatch)
        );
        // A certificate for another cluster name does not cover this one's names.
        let mut other_names = names();
        other_names.cluster = "other".into();
        other_names.headless = "other-headless".into();
        let narrow = issue_server_certificate(&ca, &other_names, now()).unwrap();
        match renewal(
            &served(&narrow, &ca),
            &ca,
            &names(),
            &required_names(&names(), 1),
            now(),
        ) {
            Renewal::Renew(RenewReason::NamesNotCovered(n)) => {
                assert!(n.contains(&"demo.prod.svc".to_string()), "{n:?}");
                assert!(
                    n.contains(&"demo-0.demo-headless.prod.svc".to_string()),
                    "{n:?}"
                );
            }
            other => panic!("expected NamesNotCovered, got {other:?}"),
        }
    }

    #[test]
    fn load_ca_refuses_a_leaf_or_a_foreign_key() {
        let ca = ca_at(now());
        let server = issue_server_certificate(&ca, &names(), now()).unwrap();
        assert!(matches!(
            load_ca(server.clone()),
            Err(TlsError::Invalid { what, .. }) if what == "tls.crt"
        ));
        let wrong_key = KeyedCertificate {
            cert_pem: ca.material.cert_pem.clone(),
            key_pem: server.key_pem.clone(),
        };
        assert!(matches!(
            load_ca(wrong_key),
            Err(TlsError::Invalid { what, .. }) if what == "tls.key"
        ));
    }

    #[test]
    fn secrets_have_the_three_keys_type_and_owner() {
        let q = qc(json!({"client": {"enabled": true}}));
        let ca = ca_at(now());
        let server = issue_server_certificate(&ca, &names(), now()).unwrap();
        let s = server_secret(&q, &server, &ca.material.cert_pem);
        assert_eq!(s.metadata.name.as_deref(), Some("demo-tls"));
        assert_eq!(s.type_.as_deref(), Some("kubernetes.io/tls"));
        let m = SecretMaterial::of(&s);
        assert!(m.missing_keys().is_empty());
        assert_eq!(m.ca_pem.as_deref(), Some(ca.material.cert_pem.as_str()));
        let owner = &s.metadata.owner_references.as_ref().unwrap()[0];
        assert_eq!(owner.uid, "1234");
        assert_eq!(owner.controller, Some(true));
        let c = ca_secret(&q, &ca.material);
        assert_eq!(c.metadata.name.as_deref(), Some("demo-ca"));
        let m = SecretMaterial::of(&c);
        assert_eq!(m.cert_pem, m.ca_pem);
        assert_eq!(m.keyed().unwrap(), ca.material);
        // The key never shows in Debug output.
        assert!(!format!("{m:?}").contains("PRIVATE KEY"));
        assert!(!format!("{:?}", ca.material).contains("PRIVATE KEY"));
        // A user Secret missing keys names them.
        let partial = SecretMaterial {
            cert_pem: Some("x".into()),
            ..SecretMaterial::default()
        };
        assert_eq!(partial.missing_keys(), vec!["tls.key", "ca.crt"]);
        // The user's secretName is the serving Secret.
        let user = Names::of(&qc(
            json!({"client": {"enabled": true}, "secretName": "mine"}),
        ));
        assert_eq!(user.tls_secret, "mine");
        assert_eq!(ca_secret_ref(&user).name, "mine");
        assert_eq!(ca_secret_ref(&user).key, "ca.crt");
    }

    #[test]
    fn hash_changes_with_the_certificate_or_the_ca() {
        let a = certificate_hash("cert-a", "ca");
        assert_eq!(a.len(), 64);
        assert_eq!(a, certificate_hash("cert-a\n", "ca\n"));
        assert_ne!(a, certificate_hash("cert-b", "ca"));
        assert_ne!(a, certificate_hash("cert-a", "ca2"));
    }
}
