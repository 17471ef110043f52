//! TLS of a QdrantCluster (`spec.tls`): builder assertions, and scenarios of the real reconcile
//! against the in-process fake API server (TESTING.md layers 1 and 3): generated Secrets,
//! renewal, user Secrets, what status publishes and how the other controllers read it, and the
//! p2p refusal.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::{sync::Arc, time::Duration};

use api_types::{
    QdrantCluster,
    collection::ClusterRef,
    conditions::{ConditionStatus, find_condition, types},
    validation::validate_cluster,
};
use cluster_controller::{
    build::{
        self, Names, Observed,
        tls::{
            self as material, KeyedCertificate, SecretMaterial, TLS_HASH_ANNOTATION,
            certificate_hash, generate_ca, inspect, issue_server_certificate, issued_by, load_ca,
        },
    },
    vocabulary::reasons::{TLS_P2P_IMMUTABLE, TLS_SECRET_INVALID, TLS_SECRET_NOT_FOUND},
};
use jiff::{SignedDuration, Timestamp};
use k8s_openapi::api::{
    apps::v1::StatefulSet,
    core::v1::{Container, Secret},
};
use reconcile_lib::{
    qdrant::RaftRole,
    target::{Target, TargetRef, resolve},
};
use serde_json::{Value, json};
use testkit::qdrant::{ClusterState, FakeQdrant, FakeQdrantOptions};

mod common;

use common::{Env, NS, QC};

const DAY: SignedDuration = SignedDuration::from_hours(24);

// ---------------------------------------------------------------------------------------------
// Builders

fn qc(spec: Value) -> QdrantCluster {
    serde_json::from_value(json!({
        "apiVersion": QC, "kind": "QdrantCluster",
        "metadata": {"name": "demo", "namespace": "prod", "uid": "1234"},
        "spec": spec,
    }))
    .unwrap()
}

fn statefulset(qc: &QdrantCluster, observed: &Observed) -> StatefulSet {
    build::build(qc, observed).unwrap().statefulset
}

fn qdrant_container(sts: &StatefulSet) -> Container {
    sts.spec
        .as_ref()
        .unwrap()
        .template
        .spec
        .as_ref()
        .unwrap()
        .containers
        .iter()
        .find(|c| c.name == "qdrant")
        .unwrap()
        .clone()
}

fn template_annotation(sts: &StatefulSet, key: &str) -> Option<String> {
    sts.spec
        .as_ref()
        .unwrap()
        .template
        .metadata
        .as_ref()
        .unwrap()
        .annotations
        .as_ref()
        .unwrap()
        .get(key)
        .cloned()
}

#[test]
fn statefulset_with_client_and_p2p_tls() {
    let q =
        qc(json!({"replicas": 3, "tls": {"client": {"enabled": true}, "p2p": {"enabled": true}}}));
    let observed = Observed {
        tls_hash: Some("abc".into()),
        ..Observed::default()
    };
    let sts = statefulset(&q, &observed);
    let c = qdrant_container(&sts);

    let tls_mount = c
        .volume_mounts
        .as_ref()
        .unwrap()
        .iter()
        .find(|m| m.name == "tls")
        .expect("tls mount");
    assert_eq!(tls_mount.mount_path, "/qdrant/tls");
    assert_eq!(tls_mount.read_only, Some(true));
    assert_eq!(
        tls_mount.sub_path, None,
        "a subPath would never see renewals"
    );
    let volume = sts
        .spec
        .as_ref()
        .unwrap()
        .template
        .spec
        .as_ref()
        .unwrap()
        .volumes
        .as_ref()
        .unwrap()
        .iter()
        .find(|v| v.name == "tls")
        .unwrap()
        .clone();
    assert_eq!(
        volume.secret.as_ref().unwrap().secret_name.as_deref(),
        Some("demo-tls")
    );
    // tls.key is not world-readable: owner and group only, the group being the pod's
    // fsGroup, which the Qdrant process (uid 1000) gets as a supplementary group.
    assert_eq!(volume.secret.as_ref().unwrap().default_mode, Some(0o440));
    let pod_sc = sts.spec.as_ref().unwrap().template.spec.as_ref().unwrap();
    let pod_sc = pod_sc.security_context.as_ref().unwrap();
    assert_eq!(pod_sc.fs_group, Some(build::statefulset::DEFAULT_FS_GROUP));
    assert_eq!(pod_sc.run_as_user, Some(build::statefulset::DEFAULT_UID));

    for probe in [&c.startup_probe, &c.readiness_probe] {
        let get = probe.as_ref().unwrap().http_get.as_ref().unwrap();
        assert_eq!(get.scheme.as_deref(), Some("HTTPS"));
    }
    let script = &c.args.as_ref().unwrap()[0];
    assert!(
        script.contains("\"https://${POD_NAME}.demo-headless.prod.svc:6335\""),
        "{script}"
    );
    assert!(
        script.contains("\"https://demo-0.demo-headless.prod.svc:6335\""),
        "{script}"
    );
    assert!(!script.contains("http://"), "{script}");
    assert_eq!(
        template_annotation(&sts, TLS_HASH_ANNOTATION).as_deref(),
        Some("abc")
    );

    let names = Names::of(&q);
    assert_eq!(
        names.peer_uri(2),
        "https://demo-2.demo-headless.prod.svc:6335"
    );
    assert_eq!(
        names.pod_http_url(1),
        "https://demo-1.demo-headless.prod.svc:6333"
    );
}

#[test]
fn statefulset_with_p2p_only_and_a_user_secret() {
    let q = qc(json!({"replicas": 2, "tls": {"p2p": {"enabled": true}, "secretName": "mine"}}));
    let sts = statefulset(&q, &Observed::default());
    let c = qdrant_container(&sts);
    // REST stays plain: HTTP probes and URLs, while p2p URIs are https.
    for probe in [&c.startup_probe, &c.readiness_probe] {
        assert_eq!(
            probe
                .as_ref()
                .unwrap()
                .http_get
                .as_ref()
                .unwrap()
                .scheme
                .as_deref(),
            Some("HTTP")
        );
    }
    assert!(
        c.args.as_ref().unwrap()[0].contains("\"https://${POD_NAME}.demo-headless.prod.svc:6335\"")
    );
    let volume = sts
        .spec
        .as_ref()
        .unwrap()
        .template
        .spec
        .as_ref()
        .unwrap()
        .volumes
        .as_ref()
        .unwrap()
        .iter()
        .find(|v| v.name == "tls")
        .unwrap()
        .clone();
    assert_eq!(volume.secret.unwrap().secret_name.as_deref(), Some("mine"));
    let names = Names::of(&q);
    assert_eq!(
        names.pod_http_url(0),
        "http://demo-0.demo-headless.prod.svc:6333"
    );
    // No hash observed yet (the Secret was not read): no annotation.
    assert_eq!(template_annotation(&sts, TLS_HASH_ANNOTATION), None);
}

#[test]
fn statefulset_without_tls_has_no_tls_parts() {
    let q = qc(json!({"replicas": 3}));
    let sts = statefulset(&q, &Observed::default());
    let c = qdrant_container(&sts);
    assert!(
        c.volume_mounts
            .as_ref()
            .unwrap()
            .iter()
            .all(|m| m.name != "tls")
    );
    let volumes = sts
        .spec
        .as_ref()
        .unwrap()
        .template
        .spec
        .as_ref()
        .unwrap()
        .volumes
        .clone()
        .unwrap();
    assert!(volumes.iter().all(|v| v.name != "tls"));
    assert_eq!(
        c.readiness_probe
            .unwrap()
            .http_get
            .unwrap()
            .scheme
            .as_deref(),
        Some("HTTP")
    );
    assert!(c.args.unwrap()[0].contains("\"http://${POD_NAME}.demo-headless.prod.svc:6335\""));
    assert_eq!(template_annotation(&sts, TLS_HASH_ANNOTATION), None);
    let yaml = build::config::config_yaml(&q.spec).unwrap();
    assert!(!yaml.contains("tls"), "{yaml}");
}

#[test]
fn the_tls_volume_and_mount_path_are_reserved() {
    let q = qc(json!({"pod": {
        "extraVolumes": [{"name": "tls", "emptyDir": {}}],
        "extraVolumeMounts": [{"name": "x", "mountPath": "/qdrant/tls/extra"}],
    }}));
    let err = validate_cluster(&q.spec).unwrap_err().to_string();
    assert!(err.contains("spec.pod.extraVolumes[0].name"), "{err}");
    assert!(
        err.contains("spec.pod.extraVolumeMounts[0].mountPath"),
        "{err}"
    );
}

// ---------------------------------------------------------------------------------------------
// Reconcile scenarios

fn env() -> Env {
    // No pod is reachable in these scenarios unless a test says so.
    Env::new((), |ctx| ctx.peer_urls = Arc::new(|_, _| None))
}

impl Env {
    fn material(&self, name: &str) -> SecretMaterial {
        SecretMaterial::of(&self.current::<Secret>(name))
    }

    fn config(&self) -> Value {
        let cm = self.get("v1", "configmaps", "demo-config").unwrap();
        serde_saphyr::from_str(cm["data"]["production.yaml"].as_str().unwrap()).unwrap()
    }

    fn put_secret(&self, name: &str, data: &[(&str, &str)]) {
        let data: serde_json::Map<String, Value> = data
            .iter()
            .map(|(k, v)| ((*k).to_string(), json!(v)))
            .collect();
        self.seed(json!({
            "apiVersion": "v1", "kind": "Secret", "type": "kubernetes.io/tls",
            "metadata": {"name": name}, "stringData": data,
        }));
    }
}

fn ready(qc: &QdrantCluster) -> api_types::Condition {
    find_condition(&qc.status.as_ref().unwrap().conditions, types::READY)
        .cloned()
        .unwrap()
}

fn both_tls() -> Value {
    json!({"replicas": 3, "tls": {"client": {"enabled": true}, "p2p": {"enabled": true}}})
}

fn ca_of(env: &Env) -> material::LoadedCa {
    load_ca(env.material("demo-ca").keyed().unwrap()).unwrap()
}

#[tokio::test]
async fn generated_secrets_are_created_once_and_a_second_reconcile_writes_nothing() {
    let env = env();
    let qc = env.seed_cluster("demo", both_tls());
    env.reconcile().await;

    let uid = qc.metadata.uid.clone().unwrap();
    for name in ["demo-ca", "demo-tls"] {
        let s = env
            .try_current::<Secret>(name)
            .unwrap_or_else(|| panic!("{name} missing"));
        assert_eq!(s.type_.as_deref(), Some("kubernetes.io/tls"), "{name}");
        let owner = &s.metadata.owner_references.as_ref().unwrap()[0];
        assert_eq!(owner.uid, uid, "{name}");
        assert_eq!(owner.controller, Some(true), "{name}");
        assert!(SecretMaterial::of(&s).missing_keys().is_empty(), "{name}");
    }
    let ca = ca_of(&env);
    let served = env.material("demo-tls");
    let cert = served.cert_pem.clone().unwrap();
    assert!(issued_by(&cert, &ca.material.cert_pem));
    assert_eq!(
        served.ca_pem.as_deref(),
        Some(ca.material.cert_pem.as_str())
    );
    assert!(
        inspect(&cert)
            .unwrap()
            .dns_names
            .contains(&"*.demo-headless.qdrant.svc".to_string())
    );

    // The pods serve it: mounted, hashed on the template, named in config.yaml.
    let sts = env.current::<StatefulSet>("demo");
    assert_eq!(
        template_annotation(&sts, TLS_HASH_ANNOTATION),
        Some(certificate_hash(&cert, &ca.material.cert_pem))
    );
    let config = env.config();
    assert_eq!(config["service"]["enable_tls"], json!(true));
    assert_eq!(config["cluster"]["p2p"]["enable_tls"], json!(true));
    assert_eq!(config["tls"]["cert"], json!("/qdrant/tls/tls.crt"));
    assert_eq!(env.events_with_reason("CertificateIssued").len(), 1);
    assert_eq!(
        env.events_with_reason("CertificateAuthorityCreated").len(),
        1
    );

    // Steady state: reads only.
    env.mark_statefulset_ready("demo", 0);
    env.reconcile().await;
    let versions = |env: &Env| {
        ["demo-ca", "demo-tls"].map(|n| env.current::<Secret>(n).metadata.resource_version)
    };
    let before = versions(&env);
    env.fake.clear_requests();
    env.reconcile().await;
    assert_eq!(
        env.fake.writes(),
        vec![],
        "a no-op reconcile must not write"
    );
    assert_eq!(versions(&env), before);
    assert_eq!(env.events_with_reason("CertificateIssued").len(), 1);
}

#[tokio::test]
async fn a_near_expiry_certificate_is_renewed_and_rolls_the_pods_while_the_ca_is_untouched() {
    let env = env();
    env.seed_cluster("demo", both_tls());
    env.reconcile().await;
    let ca_before = env.current::<Secret>("demo-ca");
    let ca = ca_of(&env);
    let first_hash =
        template_annotation(&env.current::<StatefulSet>("demo"), TLS_HASH_ANNOTATION).unwrap();

    // A certificate of this CA issued 300 days ago: 65 days left, under a third of a year.
    let names = Names::of(&env.qc());
    let old = issue_server_certificate(&ca, &names, Timestamp::now() - 300 * DAY).unwrap();
    env.edit("v1", "secrets", "demo-tls", |s| {
        s["data"] = json!({});
        s["stringData"] = json!({
            "tls.crt": old.cert_pem, "tls.key": old.key_pem, "ca.crt": ca.material.cert_pem,
        });
    });
    env.reconcile().await;
    let old_hash = certificate_hash(&old.cert_pem, &ca.material.cert_pem);

    let served = env.material("demo-tls");
    let cert = served.cert_pem.clone().unwrap();
    assert_ne!(cert, old.cert_pem, "the certificate was renewed");
    assert_ne!(
        served.key_pem.as_deref(),
        Some(old.key_pem.as_str()),
        "with a new key"
    );
    assert!(issued_by(&cert, &ca.material.cert_pem), "by the same CA");
    let not_after = inspect(&cert).unwrap().not_after;
    assert!(not_after > Timestamp::now() + 364 * DAY);

    // The CA Secret was not written.
    let ca_after = env.current::<Secret>("demo-ca");
    assert_eq!(
        ca_after.metadata.resource_version,
        ca_before.metadata.resource_version
    );
    assert_eq!(ca_after.data, ca_before.data);

    // The pods roll to the new certificate.
    let new_hash = certificate_hash(&cert, &ca.material.cert_pem);
    assert_ne!(new_hash, old_hash);
    assert_ne!(new_hash, first_hash);
    assert_eq!(
        template_annotation(&env.current::<StatefulSet>("demo"), TLS_HASH_ANNOTATION),
        Some(new_hash)
    );
    let status = env.qc().status.unwrap().tls.unwrap();
    assert_eq!(status.not_after, Some(not_after.to_string()));
    let renewed = env.events_with_reason("CertificateRenewed");
    assert_eq!(renewed.len(), 1);
    assert!(
        renewed[0]["note"].as_str().unwrap().contains("expires at"),
        "{}",
        renewed[0]["note"]
    );
    assert!(!renewed[0]["note"].as_str().unwrap().contains("PRIVATE KEY"));
}

#[tokio::test]
async fn a_certificate_from_another_ca_is_replaced_and_a_foreign_serving_secret_is_left_alone() {
    let env = env();
    env.seed_cluster("demo", both_tls());
    env.reconcile().await;
    let ca = ca_of(&env);
    let names = Names::of(&env.qc());
    let stranger = load_ca(generate_ca(&names, Timestamp::now()).unwrap()).unwrap();
    let foreign = issue_server_certificate(&stranger, &names, Timestamp::now()).unwrap();
    env.edit("v1", "secrets", "demo-tls", |s| {
        s["data"] = json!({});
        s["stringData"] = json!({
            "tls.crt": foreign.cert_pem, "tls.key": foreign.key_pem, "ca.crt": ca.material.cert_pem,
        });
    });
    env.reconcile().await;
    let cert = env.material("demo-tls").cert_pem.unwrap();
    assert!(issued_by(&cert, &ca.material.cert_pem));

    // A serving Secret the operator did not create is never overwritten.
    env.edit("v1", "secrets", "demo-tls", |s| {
        s["metadata"]["ownerReferences"] = json!([]);
        s["data"] = json!({});
        s["stringData"] =
            json!({"tls.crt": foreign.cert_pem, "tls.key": foreign.key_pem, "ca.crt": "x"});
    });
    env.reconcile().await;
    assert_eq!(
        env.material("demo-tls").cert_pem,
        Some(foreign.cert_pem.clone())
    );
    let c = ready(&env.qc());
    assert_eq!(c.reason, TLS_SECRET_INVALID);
    assert!(
        c.message.contains("spec.tls.secretName: demo-tls"),
        "{}",
        c.message
    );
}

#[tokio::test]
async fn a_user_secret_missing_keys_or_names_is_a_condition_not_a_panic() {
    let env = env();
    env.seed_cluster(
        "demo",
        json!({"replicas": 2, "tls": {"client": {"enabled": true}, "secretName": "mine"}}),
    );

    // Missing Secret.
    env.reconcile().await;
    let c = ready(&env.qc());
    assert_eq!(c.status, ConditionStatus::False);
    assert_eq!(c.reason, TLS_SECRET_NOT_FOUND);
    assert!(
        c.message.contains("Secret mine (spec.tls.secretName)"),
        "{}",
        c.message
    );

    // Missing keys (the key text never shows up in the message).
    let ca = load_ca(generate_ca(&Names::of(&env.qc()), Timestamp::now()).unwrap()).unwrap();
    let server = issue_server_certificate(&ca, &Names::of(&env.qc()), Timestamp::now()).unwrap();
    env.put_secret("mine", &[("tls.crt", &server.cert_pem)]);
    env.reconcile().await;
    let c = ready(&env.qc());
    assert_eq!(c.reason, TLS_SECRET_INVALID);
    assert!(c.message.contains("spec.tls.secretName"), "{}", c.message);
    assert!(c.message.contains("tls.key, ca.crt"), "{}", c.message);
    assert!(!c.message.contains("BEGIN"), "{}", c.message);
    // The operator generates nothing in user mode.
    assert!(env.try_current::<Secret>("demo-ca").is_none());
    assert!(env.try_current::<Secret>("demo-tls").is_none());
    // The pods mount the user's Secret; without a complete Secret there is no hash yet.
    let sts = env.current::<StatefulSet>("demo");
    assert_eq!(template_annotation(&sts, TLS_HASH_ANNOTATION), None);

    // A certificate for another headless Service does not cover the pods.
    let mut params_names = Names::of(&env.qc());
    params_names.headless = "elsewhere".into();
    let narrow = issue_server_certificate(&ca, &params_names, Timestamp::now()).unwrap();
    env.remove("v1", "secrets", "mine");
    env.put_secret(
        "mine",
        &[
            ("tls.crt", &narrow.cert_pem),
            ("tls.key", &narrow.key_pem),
            ("ca.crt", &ca.material.cert_pem),
        ],
    );
    env.reconcile().await;
    let c = ready(&env.qc());
    assert_eq!(c.reason, TLS_SECRET_INVALID);
    assert!(
        c.message.contains(
            "does not cover demo-0.demo-headless.qdrant.svc, demo-1.demo-headless.qdrant.svc"
        ),
        "{}",
        c.message
    );

    // A complete Secret (as cert-manager writes it): served, hashed, published, not blocked.
    env.remove("v1", "secrets", "mine");
    env.put_secret(
        "mine",
        &[
            ("tls.crt", &server.cert_pem),
            ("tls.key", &server.key_pem),
            ("ca.crt", &ca.material.cert_pem),
        ],
    );
    env.reconcile().await;
    let qc = env.qc();
    assert!(!ready(&qc).reason.starts_with("Tls"), "{:?}", ready(&qc));
    let tls = qc.status.unwrap().tls.unwrap();
    assert_eq!(tls.certificate_secret_name.as_deref(), Some("mine"));
    assert_eq!(tls.ca_secret_ref.as_ref().unwrap().name, "mine");
    assert_eq!(
        tls.not_after, None,
        "expiry is published for generated certificates only"
    );
    assert_eq!(
        template_annotation(&env.current::<StatefulSet>("demo"), TLS_HASH_ANNOTATION),
        Some(certificate_hash(&server.cert_pem, &ca.material.cert_pem))
    );
    // The user's Secret was never written.
    assert!(
        env.fake
            .writes()
            .iter()
            .all(|w| !w.path.ends_with("/secrets/mine"))
    );
    assert!(env.try_current::<Secret>("demo-ca").is_none());
}

#[tokio::test]
async fn status_publishes_the_ca_and_https_endpoints_and_the_other_controllers_use_them() {
    let mut env = env();
    env.seed_cluster(
        "demo",
        json!({"replicas": 1, "auth": {}, "tls": {"client": {"enabled": true}}}),
    );

    // The operator's own client trusts the CA (its PEM must parse even for this http fake).
    let fake_qdrant = FakeQdrant::start(FakeQdrantOptions {
        cluster: Some(ClusterState {
            peer_id: 7,
            peers: vec![(7, "http://demo-0.demo-headless.qdrant.svc:6335/".into())],
            leader: Some(7),
            role: Some(RaftRole::Leader),
            term: 1,
            commit: 1,
            pending_operations: 0,
        }),
        ..FakeQdrantOptions::default()
    })
    .await;
    let url = fake_qdrant.url();
    Arc::get_mut(&mut env.ctx).unwrap().peer_urls = Arc::new(move |_, _| Some(url.clone()));

    env.reconcile().await;
    env.mark_statefulset_ready("demo", 1);
    env.reconcile().await;

    let qc = env.qc();
    let st = qc.status.clone().unwrap();
    let endpoints = st.endpoints.unwrap();
    assert_eq!(endpoints.http, "https://demo.qdrant.svc:6333");
    assert_eq!(endpoints.grpc, "https://demo.qdrant.svc:6334");
    let tls = st.tls.unwrap();
    assert!(tls.client);
    assert!(!tls.p2p);
    let ca_ref = tls.ca_secret_ref.unwrap();
    assert_eq!(
        (ca_ref.name.as_str(), ca_ref.key.as_str()),
        ("demo-tls", "ca.crt")
    );
    assert_eq!(tls.certificate_secret_name.as_deref(), Some("demo-tls"));
    let not_after: Timestamp = tls.not_after.unwrap().parse().unwrap();
    assert!(not_after > Timestamp::now() + 364 * DAY);
    assert_eq!(st.peers.len(), 1, "peers were read with the CA bundle set");
    assert_eq!(st.peers[0].peer_id, 7);
    assert_eq!(ready(&qc).status, ConditionStatus::True, "{:?}", ready(&qc));

    // The collection and backup controllers' resolver: https endpoint, trusting exactly ca.crt.
    let cluster = ClusterRef {
        name: "demo".into(),
    };
    let target = TargetRef {
        cluster: Some(&cluster),
        connection: None,
    };
    let client = env.fake.client();
    let Target::Ready(resolved) = resolve(NS, target, &client, Duration::from_secs(5), None)
        .await
        .unwrap()
    else {
        panic!("the cluster is Ready");
    };
    assert_eq!(
        resolved.connection().url.as_str(),
        "https://demo.qdrant.svc:6333/"
    );
    let ca = env.material("demo-ca").cert_pem.unwrap();
    assert_eq!(
        resolved.connection().ca_bundle_pem.as_deref(),
        Some(ca.as_bytes())
    );

    // Without the CA Secret the resolver waits instead of trusting the system roots.
    env.remove("v1", "secrets", "demo-tls");
    match resolve(NS, target, &client, Duration::from_secs(5), None)
        .await
        .unwrap()
    {
        Target::Waiting {
            reason, message, ..
        } => {
            assert_eq!(reason, "SecretNotFound");
            assert!(message.contains("demo-tls"), "{message}");
        }
        Target::Ready(_) => panic!("must wait for the CA"),
    }
}

#[tokio::test]
async fn a_p2p_change_is_refused_and_nothing_is_applied() {
    let env = env();
    env.seed_cluster(
        "demo",
        json!({"replicas": 3, "tls": {"p2p": {"enabled": true}}}),
    );
    env.reconcile().await;
    assert!(env.qc().status.unwrap().tls.unwrap().p2p);
    let config_before = env.config();

    // The CRD's CEL rule refuses this at the API server; the fake has no CEL, so the
    // controller's own guard is what is tested.
    env.edit(QC, "qdrantclusters", "demo", |q| {
        q["spec"]["tls"] = json!({"client": {"enabled": true}});
    });
    env.fake.clear_requests();
    env.reconcile().await;
    let qc = env.qc();
    let c = ready(&qc);
    assert_eq!(c.status, ConditionStatus::False);
    assert_eq!(c.reason, TLS_P2P_IMMUTABLE);
    assert!(c.message.contains("spec.tls.p2p.enabled"), "{}", c.message);
    assert!(c.message.contains("back to true"), "{}", c.message);
    let writes: Vec<String> = env
        .fake
        .writes()
        .into_iter()
        .filter(|r| !r.path.contains("/events"))
        .map(|r| r.path)
        .collect();
    assert!(
        writes
            .iter()
            .all(|p| p.ends_with("/qdrantclusters/demo/status")),
        "only status may be written: {writes:?}"
    );
    assert_eq!(env.config(), config_before, "config.yaml keeps p2p TLS");
    assert!(
        qc.status.unwrap().tls.unwrap().p2p,
        "status keeps what runs"
    );
    assert_eq!(env.events_with_reason(TLS_P2P_IMMUTABLE).len(), 1);
    env.reconcile().await;
    assert_eq!(
        env.events_with_reason(TLS_P2P_IMMUTABLE).len(),
        1,
        "one Warning per refusal"
    );

    // Set back: reconciled again.
    env.edit(QC, "qdrantclusters", "demo", |q| {
        q["spec"]["tls"] = json!({"p2p": {"enabled": true}});
    });
    env.reconcile().await;
    assert_ne!(ready(&env.qc()).reason, TLS_P2P_IMMUTABLE);

    // The other direction: a cluster created without TLS cannot turn p2p TLS on.
    let env = self::env();
    env.seed_cluster("demo", json!({"replicas": 1}));
    env.reconcile().await;
    let tls = env.qc().status.unwrap().tls.unwrap();
    assert!(!tls.client && !tls.p2p);
    assert_eq!(tls.ca_secret_ref, None);
    env.edit(QC, "qdrantclusters", "demo", |q| {
        q["spec"]["tls"] = json!({"p2p": {"enabled": true}});
    });
    env.reconcile().await;
    assert_eq!(ready(&env.qc()).reason, TLS_P2P_IMMUTABLE);
    assert!(
        env.try_current::<Secret>("demo-ca").is_none(),
        "nothing generated for a refused spec"
    );
}

#[tokio::test]
async fn client_tls_can_be_turned_on_later_and_reuses_the_generated_ca() {
    let env = env();
    env.seed_cluster("demo", json!({"replicas": 1}));
    env.reconcile().await;
    let plain_config = env.config();
    assert_eq!(plain_config.get("tls"), None);
    env.edit(QC, "qdrantclusters", "demo", |q| {
        q["spec"]["tls"] = json!({"client": {"enabled": true}});
    });
    env.reconcile().await;
    assert_eq!(env.config()["service"]["enable_tls"], json!(true));
    let ca = env.material("demo-ca");
    // Off and on again: the CA stays, so clients that trusted it keep trusting it.
    env.edit(QC, "qdrantclusters", "demo", |q| {
        q["spec"]["tls"] = json!({"client": {"enabled": false}});
    });
    env.reconcile().await;
    assert_eq!(env.config().get("tls"), None);
    assert_eq!(
        env.qc().status.unwrap().endpoints.unwrap().http,
        "http://demo.qdrant.svc:6333"
    );
    env.edit(QC, "qdrantclusters", "demo", |q| {
        q["spec"]["tls"] = json!({"client": {"enabled": true}});
    });
    env.reconcile().await;
    assert_eq!(env.material("demo-ca"), ca);
}

#[test]
fn keyed_certificate_debug_hides_the_key() {
    let k = KeyedCertificate {
        cert_pem: "cert".into(),
        key_pem: "-----BEGIN PRIVATE KEY-----".into(),
    };
    assert!(!format!("{k:?}").contains("PRIVATE"));
}

/// A user pod security context without `fsGroup` gets one with TLS on (the container's
/// `runAsGroup`, else the pod's, else the image's gid 1000): the TLS files are mode 0440, so
/// without a group the kubelet would leave them root's alone. One that sets it is kept, and
/// without TLS nothing is added.
#[test]
fn a_user_security_context_gets_an_fs_group_for_the_tls_files() {
    let pod_sc = |spec: Value| {
        let sts = statefulset(&qc(spec), &Observed::default());
        sts.spec
            .unwrap()
            .template
            .spec
            .unwrap()
            .security_context
            .unwrap()
    };
    let tls = json!({"client": {"enabled": true}});
    let own = pod_sc(
        json!({"replicas": 1, "tls": tls, "pod": {"securityContext": {"runAsUser": 1000, "runAsNonRoot": true}}}),
    );
    assert_eq!(own.fs_group, Some(build::statefulset::IMAGE_GID));
    assert_eq!(
        own.fs_group_change_policy.as_deref(),
        Some("OnRootMismatch")
    );
    let grouped = pod_sc(json!({"replicas": 1, "tls": tls, "pod": {
        "securityContext": {"runAsUser": 1000, "runAsGroup": 4000},
        "containerSecurityContext": {"runAsGroup": 5000}}}));
    assert_eq!(grouped.fs_group, Some(5000), "the container's group wins");
    let pod_group = pod_sc(json!({"replicas": 1, "tls": tls, "pod": {
        "securityContext": {"runAsUser": 1000, "runAsGroup": 4000}}}));
    assert_eq!(pod_group.fs_group, Some(4000));
    let set = pod_sc(json!({"replicas": 1, "tls": tls, "pod": {
        "securityContext": {"runAsUser": 1000, "fsGroup": 7000, "fsGroupChangePolicy": "Always"}}}));
    assert_eq!(set.fs_group, Some(7000));
    assert_eq!(set.fs_group_change_policy.as_deref(), Some("Always"));
    let plain = pod_sc(json!({"replicas": 1, "pod": {"securityContext": {"runAsUser": 1000}}}));
    assert_eq!(plain.fs_group, None, "no TLS: the user's context as given");
}
