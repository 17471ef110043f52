//! Builder tests (TESTING.md layer 1): targeted assertions on what matters in each child, plus
//! two small reviewed snapshots (config.yaml and the start script).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use api_types::QdrantCluster;
use cluster_controller::build::{self, Names, Observed, statefulset};
use k8s_openapi::api::core::v1::Container;
use serde_json::{Value, json};

fn qc(spec: Value) -> QdrantCluster {
    let mut qc: QdrantCluster = serde_json::from_value(json!({
        "apiVersion": "qdrant.operator.dev/v1alpha1", "kind": "QdrantCluster",
        "metadata": {"name": "demo", "namespace": "prod", "uid": "1234"},
        "spec": spec,
    }))
    .unwrap();
    qc.metadata.generation = Some(1);
    qc
}

fn three_node() -> QdrantCluster {
    qc(json!({"replicas": 3, "persistence": {"size": "5Gi"},
        "auth": {"apiKey": {"generate": true}, "readOnlyApiKey": {"generate": true}}}))
}

fn qdrant_container(qc: &QdrantCluster) -> Container {
    let sts = build::build(qc, &Observed::default()).unwrap().statefulset;
    sts.spec
        .unwrap()
        .template
        .spec
        .unwrap()
        .containers
        .into_iter()
        .find(|c| c.name == "qdrant")
        .unwrap()
}

#[test]
fn config_yaml_snapshot() {
    let yaml = build::config::config_yaml(&qc(json!({"config": {"log_level": "INFO", "storage": {"performance": {"max_search_threads": 2}}}})).spec).unwrap();
    insta::assert_snapshot!(yaml, @r#"
    cluster:
      enabled: true
      p2p:
        port: 6335
    log_level: INFO
    service:
      grpc_port: 6334
      host: "0.0.0.0"
      http_port: 6333
    storage:
      performance:
        max_search_threads: 2
      snapshots_path: /qdrant/snapshots
      storage_path: /qdrant/storage
    "#);
}

#[test]
fn start_script_snapshot() {
    insta::assert_snapshot!(statefulset::start_script(&Names::of(&three_node())), @r#"
    set -e
    self="http://${POD_NAME}.demo-headless.prod.svc:6335"
    joined() {
      [ -f /qdrant/storage/raft_state ] || { [ -f /qdrant/storage/raft_state.json ] && ! grep -q '"hard_state":{"term":0,' /qdrant/storage/raft_state.json; }
    }
    member=0
    if [ -s /qdrant/cluster-info/bootstrap-peers ] && grep -q -F "//${POD_NAME}." /qdrant/cluster-info/bootstrap-peers; then
      member=1
    fi
    stopped() {
      if [ "$member" = 1 ] && ! joined; then
        echo "qdrant-operator: fresh storage: no Raft state of a joined peer in /qdrant/storage/raft_state.json, and the cluster lists this pod as a member" 2>/dev/null >/dev/termination-log || true
      fi
      exit "$1"
    }
    bootstrap=""
    if [ -s /qdrant/cluster-info/bootstrap-peers ]; then
      candidates=$(grep -v -F "//${POD_NAME}." /qdrant/cluster-info/bootstrap-peers || true)
      if [ -n "$candidates" ]; then
        attempt=$(cat /qdrant/init/bootstrap-attempts 2>/dev/null || echo 0)
        case "$attempt" in ''|*[!0-9]*) attempt=0 ;; esac
        echo $((attempt + 1)) 2>/dev/null >/qdrant/init/bootstrap-attempts || true
        count=$(printf '%s\n' "$candidates" | wc -l)
        bootstrap=$(printf '%s\n' "$candidates" | sed -n "$((attempt % count + 1))p")
      elif ! joined; then
        echo "the cluster exists but /qdrant/cluster-info/bootstrap-peers lists no other peer to join through; not founding a new cluster" >&2
        stopped 1
      fi
    elif [ "${POD_NAME##*-}" != "0" ]; then
      bootstrap="http://demo-0.demo-headless.prod.svc:6335"
    fi
    if [ -n "$bootstrap" ]; then
      set -- --bootstrap "$bootstrap" --uri "$self"
    else
      set -- --uri "$self"
    fi
    # The trap is set before Qdrant starts: a SIGTERM in between is kept and passed on.
    qdrant=""
    term=""
    trap 'term=1; [ -z "$qdrant" ] || kill -TERM "$qdrant" 2>/dev/null || true' TERM INT
    ./entrypoint.sh "$@" &
    qdrant=$!
    [ -z "$term" ] || kill -TERM "$qdrant" 2>/dev/null || true
    while :; do
      if wait "$qdrant"; then status=0; else status=$?; fi
      kill -0 "$qdrant" 2>/dev/null || break
    done
    stopped "$status"
    "#);
}

#[test]
fn start_script_picks_uri_for_pod_zero_and_bootstrap_for_the_others() {
    // Run the script in a real shell on a new cluster (no member list yet): the volume and
    // the termination log live in a temporary directory, `./entrypoint.sh` prints its
    // arguments. (tests/start_script.rs covers formed clusters and empty volumes.)
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().display().to_string();
    let script = statefulset::start_script(&Names::of(&three_node()))
        .replace("/qdrant/", &format!("{root}/"))
        .replace(
            statefulset::TERMINATION_LOG,
            &format!("{root}/termination-log"),
        );
    let entrypoint = dir.path().join("entrypoint.sh");
    std::fs::write(&entrypoint, "#!/bin/sh\necho \"$@\"\n").unwrap();
    std::fs::set_permissions(
        &entrypoint,
        std::os::unix::fs::PermissionsExt::from_mode(0o755),
    )
    .unwrap();
    let run = |pod: &str| {
        let out = std::process::Command::new("sh")
            .arg("-c")
            .arg(&script)
            .current_dir(dir.path())
            .env("POD_NAME", pod)
            .output()
            .unwrap();
        String::from_utf8(out.stdout).unwrap().trim().to_string()
    };
    assert_eq!(
        run("demo-0"),
        "--uri http://demo-0.demo-headless.prod.svc:6335"
    );
    assert_eq!(
        run("demo-1"),
        "--bootstrap http://demo-0.demo-headless.prod.svc:6335 --uri http://demo-1.demo-headless.prod.svc:6335"
    );
    assert_eq!(
        run("demo-10"),
        "--bootstrap http://demo-0.demo-headless.prod.svc:6335 --uri http://demo-10.demo-headless.prod.svc:6335"
    );
}

#[test]
fn statefulset_shape() {
    let qc = three_node();
    let sts = build::build(&qc, &Observed::default()).unwrap().statefulset;
    assert_eq!(
        sts.metadata.owner_references.as_ref().unwrap()[0].uid,
        "1234"
    );
    let spec = sts.spec.unwrap();
    assert_eq!(spec.replicas, Some(3));
    assert_eq!(spec.service_name.as_deref(), Some("demo-headless"));
    assert_eq!(spec.pod_management_policy.as_deref(), Some("Parallel"));
    let retention = spec.persistent_volume_claim_retention_policy.unwrap();
    assert_eq!(
        (
            retention.when_deleted.as_deref(),
            retention.when_scaled.as_deref()
        ),
        (Some("Retain"), Some("Retain"))
    );
    let pvc = &spec.volume_claim_templates.as_ref().unwrap()[0];
    let pvc_spec = pvc.spec.as_ref().unwrap();
    assert_eq!(pvc.metadata.name.as_deref(), Some("storage"));
    assert_eq!(
        pvc_spec
            .resources
            .as_ref()
            .unwrap()
            .requests
            .as_ref()
            .unwrap()["storage"]
            .0,
        "5Gi"
    );
    assert_eq!(
        pvc_spec.access_modes,
        Some(vec!["ReadWriteOnce".to_string()])
    );
    let selector = spec.selector.match_labels.unwrap();
    let template_labels = spec
        .template
        .metadata
        .as_ref()
        .unwrap()
        .labels
        .clone()
        .unwrap();
    assert!(
        selector
            .iter()
            .all(|(k, v)| template_labels.get(k) == Some(v)),
        "template carries the selector labels"
    );
    let pod = spec.template.spec.unwrap();
    assert_eq!(pod.enable_service_links, Some(false));
    assert_eq!(pod.automount_service_account_token, Some(false));
    let psc = pod.security_context.unwrap();
    assert_eq!(psc.run_as_non_root, Some(true));
    assert_eq!(psc.seccomp_profile.unwrap().type_, "RuntimeDefault");
    // Default soft anti-affinity across nodes.
    let anti = pod.affinity.unwrap().pod_anti_affinity.unwrap();
    let term = &anti
        .preferred_during_scheduling_ignored_during_execution
        .unwrap()[0];
    assert_eq!(
        term.pod_affinity_term.topology_key,
        "kubernetes.io/hostname"
    );
    assert!(
        anti.required_during_scheduling_ignored_during_execution
            .is_none()
    );
    let volumes: Vec<_> = pod.volumes.unwrap().into_iter().map(|v| v.name).collect();
    assert_eq!(volumes, ["config", "init", "tmp"]);
}

#[test]
fn qdrant_container_shape() {
    let c = qdrant_container(&three_node());
    assert_eq!(c.image.as_deref(), Some("qdrant/qdrant:v1.18.3"));
    let ports: Vec<_> = c
        .ports
        .unwrap()
        .into_iter()
        .map(|p| (p.name.unwrap(), p.container_port))
        .collect();
    assert_eq!(
        ports,
        [
            ("http".into(), 6333),
            ("grpc".into(), 6334),
            ("p2p".into(), 6335)
        ]
    );
    assert_eq!(
        c.command,
        Some(vec!["/bin/sh".to_string(), "-c".to_string()])
    );
    let startup = c.startup_probe.unwrap().http_get.unwrap();
    assert_eq!(startup.path.as_deref(), Some("/healthz"));
    let readiness = c.readiness_probe.unwrap().http_get.unwrap();
    assert_eq!(readiness.path.as_deref(), Some("/readyz"));
    assert!(
        c.liveness_probe.is_none(),
        "no liveness probe: a busy indexer must not be killed"
    );
    let sc = c.security_context.unwrap();
    assert_eq!(sc.allow_privilege_escalation, Some(false));
    assert_eq!(sc.read_only_root_filesystem, Some(true));
    assert_eq!(sc.capabilities.unwrap().drop, Some(vec!["ALL".to_string()]));
    let env = c.env.unwrap();
    let names: Vec<_> = env.iter().map(|e| e.name.as_str()).collect();
    assert_eq!(
        names,
        [
            "POD_NAME",
            "QDRANT_INIT_FILE_PATH",
            "QDRANT__SERVICE__API_KEY",
            "QDRANT__SERVICE__ALT_API_KEY",
            "QDRANT__SERVICE__READ_ONLY_API_KEY"
        ]
    );
    // Every key comes from the operator's served copy, never from the spec's Secrets.
    let refs: Vec<_> = env[2..]
        .iter()
        .map(|e| {
            let r = e
                .value_from
                .as_ref()
                .unwrap()
                .secret_key_ref
                .as_ref()
                .unwrap();
            (r.name.as_str(), r.key.as_str(), r.optional)
        })
        .collect();
    assert_eq!(
        refs,
        [
            ("demo-served-keys", "api-key", Some(false)),
            ("demo-served-keys", "alt-api-key", Some(false)),
            ("demo-served-keys", "read-only-api-key", Some(false)),
        ]
    );
    assert!(
        env.iter()
            .all(|e| e.value.as_deref().is_none_or(|v| !v.contains("api"))),
        "no key value inline"
    );
    let mounts: Vec<_> = c
        .volume_mounts
        .unwrap()
        .into_iter()
        .map(|m| (m.mount_path, m.sub_path))
        .collect();
    assert_eq!(
        mounts,
        [
            ("/qdrant/storage".into(), Some("storage".into())),
            ("/qdrant/snapshots".into(), Some("snapshots".into())),
            (
                "/qdrant/config/production.yaml".into(),
                Some("production.yaml".into())
            ),
            ("/qdrant/init".into(), None),
            ("/tmp".into(), None),
            ("/qdrant/cluster-info".into(), None),
        ]
    );
}

#[test]
fn user_pod_settings_are_honoured() {
    let qc = qc(json!({
        "replicas": 2,
        "image": {"repository": "registry.local/qdrant", "tag": "v1.18.1", "pullPolicy": "Always", "pullSecrets": [{"name": "regcred"}]},
        "persistence": {"size": "20Gi", "storageClassName": "fast", "retainOnDelete": false},
        "auth": {"apiKey": {"secretKeyRef": {"name": "mine", "key": "k"}}},
        "nodeSelector": {"pool": "db"},
        "tolerations": [{"key": "db", "operator": "Exists"}],
        "affinity": {"nodeAffinity": {}},
        "priorityClassName": "high",
        "pod": {
            "annotations": {"a": "1"}, "labels": {"team": "search"}, "serviceAccountName": "qsa",
            "env": [{"name": "QDRANT__LOG_LEVEL", "value": "DEBUG"}],
            "sidecars": [{"name": "exporter", "image": "busybox"}],
            "initContainers": [{"name": "warm", "image": "busybox"}],
            "extraVolumes": [{"name": "certs", "emptyDir": {}}],
            "extraVolumeMounts": [{"name": "certs", "mountPath": "/certs"}]
        }
    }));
    api_types::validation::validate_cluster(&qc.spec).unwrap();
    let sts = build::build(&qc, &Observed::default()).unwrap().statefulset;
    let spec = sts.spec.unwrap();
    assert_eq!(
        spec.persistent_volume_claim_retention_policy
            .unwrap()
            .when_scaled
            .as_deref(),
        Some("Delete")
    );
    assert_eq!(
        spec.volume_claim_templates.unwrap()[0]
            .spec
            .as_ref()
            .unwrap()
            .storage_class_name
            .as_deref(),
        Some("fast")
    );
    let meta = spec.template.metadata.unwrap();
    assert_eq!(meta.labels.unwrap()["team"], "search");
    let annotations = meta.annotations.unwrap();
    assert_eq!(annotations["a"], "1");
    assert_eq!(annotations[build::CONFIG_HASH_ANNOTATION].len(), 64);
    let pod = spec.template.spec.unwrap();
    assert_eq!(
        pod.containers
            .iter()
            .map(|c| c.name.as_str())
            .collect::<Vec<_>>(),
        ["qdrant", "exporter"]
    );
    assert_eq!(pod.init_containers.unwrap()[0].name, "warm");
    assert_eq!(pod.service_account_name.as_deref(), Some("qsa"));
    assert_eq!(pod.node_selector.unwrap()["pool"], "db");
    assert_eq!(pod.tolerations.unwrap()[0].key.as_deref(), Some("db"));
    assert!(
        pod.affinity.unwrap().pod_anti_affinity.is_none(),
        "user affinity replaces the default"
    );
    assert_eq!(pod.priority_class_name.as_deref(), Some("high"));
    assert_eq!(pod.image_pull_secrets.unwrap()[0].name, "regcred");
    assert!(pod.volumes.unwrap().iter().any(|v| v.name == "certs"));
    let c = &pod.containers[0];
    assert_eq!(c.image.as_deref(), Some("registry.local/qdrant:v1.18.1"));
    assert_eq!(c.image_pull_policy.as_deref(), Some("Always"));
    let env = c.env.as_ref().unwrap();
    assert!(env.iter().any(|e| e.name == "QDRANT__LOG_LEVEL"));
    assert!(
        !env.iter()
            .any(|e| e.name == "QDRANT__SERVICE__READ_ONLY_API_KEY")
    );
    assert!(
        c.volume_mounts
            .as_ref()
            .unwrap()
            .iter()
            .any(|m| m.mount_path == "/certs")
    );
}

#[test]
fn live_claim_templates_win_over_the_spec() {
    let mut qc = three_node();
    let observed = Observed {
        volume_claim_templates: Some(vec![statefulset::volume_claim_template(&qc)]),
        ..Observed::default()
    };
    qc.spec.persistence.size = "50Gi".into();
    let sts = build::build(&qc, &observed).unwrap().statefulset;
    let pvc = &sts.spec.unwrap().volume_claim_templates.unwrap()[0];
    assert_eq!(
        pvc.spec
            .as_ref()
            .unwrap()
            .resources
            .as_ref()
            .unwrap()
            .requests
            .as_ref()
            .unwrap()["storage"]
            .0,
        "5Gi"
    );
}

#[test]
fn services_shape() {
    let d = build::build(&three_node(), &Observed::default()).unwrap();
    let h = d.headless_service.spec.unwrap();
    assert_eq!(h.cluster_ip.as_deref(), Some("None"));
    assert_eq!(h.publish_not_ready_addresses, Some(true));
    assert_eq!(
        h.ports.unwrap().iter().map(|p| p.port).collect::<Vec<_>>(),
        [6333, 6334, 6335]
    );
    let c = d.client_service.spec.unwrap();
    assert_eq!(c.type_.as_deref(), Some("ClusterIP"));
    assert_eq!(
        c.ports.unwrap().iter().map(|p| p.port).collect::<Vec<_>>(),
        [6333, 6334],
        "p2p is not exposed to clients"
    );

    let lb = qc(
        json!({"service": {"type": "LoadBalancer", "annotations": {"x": "y"}, "labels": {"l": "v"}, "loadBalancerSourceRanges": ["10.0.0.0/8"]}}),
    );
    let svc = build::build(&lb, &Observed::default())
        .unwrap()
        .client_service;
    assert_eq!(svc.metadata.annotations.unwrap()["x"], "y");
    let labels = svc.metadata.labels.unwrap();
    assert_eq!(labels["l"], "v");
    assert_eq!(labels["app.kubernetes.io/name"], "qdrant");
    let spec = svc.spec.unwrap();
    assert_eq!(spec.type_.as_deref(), Some("LoadBalancer"));
    assert_eq!(
        spec.load_balancer_source_ranges,
        Some(vec!["10.0.0.0/8".to_string()])
    );
}

#[test]
fn pdb_defaults() {
    assert!(
        build::build(&qc(json!({"replicas": 1})), &Observed::default())
            .unwrap()
            .pdb
            .is_none()
    );
    let pdb = build::build(&three_node(), &Observed::default())
        .unwrap()
        .pdb
        .unwrap();
    let spec = pdb.spec.unwrap();
    assert_eq!(
        spec.max_unavailable,
        Some(k8s_openapi::apimachinery::pkg::util::intstr::IntOrString::Int(1))
    );
    assert!(
        spec.selector
            .unwrap()
            .match_labels
            .unwrap()
            .contains_key("app.kubernetes.io/instance")
    );
    let forced =
        qc(json!({"replicas": 1, "podDisruptionBudget": {"enabled": true, "maxUnavailable": 2}}));
    assert!(
        build::build(&forced, &Observed::default())
            .unwrap()
            .pdb
            .is_some()
    );
    let off = qc(json!({"replicas": 3, "podDisruptionBudget": {"enabled": false}}));
    assert!(
        build::build(&off, &Observed::default())
            .unwrap()
            .pdb
            .is_none()
    );
}

#[test]
fn no_secret_material_in_the_config_map() {
    let d = build::build(&three_node(), &Observed::default()).unwrap();
    let yaml = &d.config_map.data.unwrap()["production.yaml"];
    assert!(!yaml.contains("api_key"));
    assert_eq!(d.config_map.metadata.name.as_deref(), Some("demo-config"));
}

/// The lists that guard `spec.pod` against the operator's own settings are what the builder
/// sets: every mount path, volume and environment variable of the Qdrant container (with
/// auth and TLS on) is owned, and `spec.pod` cannot set any of them.
#[test]
fn owned_lists_cover_what_the_builder_sets() {
    use api_types::validation::{
        OPERATOR_OWNED_ENV, OPERATOR_OWNED_MOUNT_PATHS, OPERATOR_OWNED_VOLUMES,
    };
    let q = qc(json!({"replicas": 3,
        "auth": {"apiKey": {"generate": true}, "readOnlyApiKey": {"generate": true}},
        "tls": {"client": {"enabled": true}, "p2p": {"enabled": true}}}));
    let observed = Observed {
        tls_hash: Some("abc".into()),
        ..Observed::default()
    };
    let sts = build::build(&q, &observed).unwrap().statefulset;
    let pod = sts.spec.unwrap().template.spec.unwrap();
    let c = pod.containers.iter().find(|c| c.name == "qdrant").unwrap();
    let mounts = c.volume_mounts.clone().unwrap();
    assert!(mounts.iter().any(|m| m.mount_path == "/qdrant/tls"));
    for m in &mounts {
        assert!(
            OPERATOR_OWNED_MOUNT_PATHS
                .iter()
                .any(|p| m.mount_path == *p || m.mount_path.starts_with(&format!("{p}/"))),
            "{} is mounted by the builder but not in OPERATOR_OWNED_MOUNT_PATHS",
            m.mount_path
        );
        assert!(
            OPERATOR_OWNED_VOLUMES.contains(&m.name.as_str()),
            "volume {} is not in OPERATOR_OWNED_VOLUMES",
            m.name
        );
        // And the validation refuses a user mount there.
        let user = qc(json!({"replicas": 3, "pod": {
            "extraVolumes": [{"name": "mine", "emptyDir": {}}],
            "extraVolumeMounts": [{"name": "mine", "mountPath": m.mount_path}]}}));
        let err = api_types::validation::validate_cluster(&user.spec).unwrap_err();
        assert_eq!(err.0[0].field, "spec.pod.extraVolumeMounts[0].mountPath");
    }
    for v in pod.volumes.unwrap() {
        assert!(
            OPERATOR_OWNED_VOLUMES.contains(&v.name.as_str()),
            "volume {} is not in OPERATOR_OWNED_VOLUMES",
            v.name
        );
    }
    let env = c.env.clone().unwrap();
    assert!(env.len() >= 4, "{env:?}");
    for e in &env {
        assert!(
            OPERATOR_OWNED_ENV.contains(&e.name.as_str()),
            "{} is set by the builder but not in OPERATOR_OWNED_ENV",
            e.name
        );
        let user = qc(json!({"replicas": 3, "pod": {"env": [{"name": e.name, "value": "x"}]}}));
        let err = api_types::validation::validate_cluster(&user.spec).unwrap_err();
        assert_eq!(err.0[0].field, "spec.pod.env[0].name", "{}", e.name);
    }
}

/// `spec.zoneAware` adds a soft spread of the pods over the zones unless the user gave
/// constraints; off, the StatefulSet is exactly what it was (no roll for existing clusters).
#[test]
fn zone_aware_adds_a_soft_zone_spread_unless_the_user_gave_constraints() {
    let pod_spec = |qc: &QdrantCluster| {
        build::build(qc, &Observed::default())
            .unwrap()
            .statefulset
            .spec
            .unwrap()
            .template
            .spec
            .unwrap()
    };
    let base = json!({"replicas": 3, "persistence": {"size": "5Gi"}});
    let off = pod_spec(&qc(base.clone()));
    assert_eq!(off.topology_spread_constraints, None);

    let mut on = base.clone();
    on["zoneAware"] = json!(true);
    let spread = pod_spec(&qc(on.clone()))
        .topology_spread_constraints
        .unwrap();
    assert_eq!(spread.len(), 1);
    let c = &spread[0];
    assert_eq!(c.topology_key, "topology.kubernetes.io/zone");
    assert_eq!(c.max_skew, 1);
    assert_eq!(c.when_unsatisfiable, "ScheduleAnyway");
    let labels = c.label_selector.as_ref().unwrap().match_labels.clone();
    assert_eq!(
        labels,
        Some(build::selector_labels(&qc(on.clone()))),
        "spreads this cluster's pods"
    );

    let mut custom_key = on.clone();
    custom_key["zoneTopologyKey"] = json!("example.com/room");
    let spread = pod_spec(&qc(custom_key))
        .topology_spread_constraints
        .unwrap();
    assert_eq!(spread[0].topology_key, "example.com/room");

    // The user's constraints (even none at all) win.
    let mut user = on.clone();
    user["topologySpreadConstraints"] = json!([{"maxSkew": 2,
        "topologyKey": "kubernetes.io/hostname", "whenUnsatisfiable": "DoNotSchedule"}]);
    let spread = pod_spec(&qc(user)).topology_spread_constraints.unwrap();
    assert_eq!(spread.len(), 1);
    assert_eq!(spread[0].topology_key, "kubernetes.io/hostname");
    let mut none = on;
    none["topologySpreadConstraints"] = json!([]);
    assert_eq!(
        pod_spec(&qc(none)).topology_spread_constraints,
        Some(vec![])
    );

    // Off: the StatefulSet equals the one built before the field existed.
    let mut explicit_off = base.clone();
    explicit_off["zoneAware"] = json!(false);
    assert_eq!(
        build::build(&qc(explicit_off), &Observed::default())
            .unwrap()
            .statefulset,
        build::build(&qc(base), &Observed::default())
            .unwrap()
            .statefulset
    );
}
