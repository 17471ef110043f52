//! The Helm chart `deploy/helm/qdrant-operator`: its default render is the kustomize base
//! object for object, its values reach what they claim to, and its templates use only the
//! documented features.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::{
    collections::{BTreeMap, BTreeSet},
    path::PathBuf,
    process::Command,
};

use chart_render::{Chart, Document, Release};
use serde_json::{Value, json};

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn chart_dir() -> PathBuf {
    repo().join("deploy/helm/qdrant-operator")
}

fn chart() -> Chart {
    Chart::load(&chart_dir()).unwrap()
}

fn render(overrides: Value) -> Vec<Value> {
    chart()
        .render(&overrides, &Release::default())
        .unwrap_or_else(|e| panic!("the chart does not render with {overrides}: {e}"))
        .into_iter()
        .map(|d: Document| d.object)
        .collect()
}

/// apiVersion/kind/namespace/name.
fn key(o: &Value) -> String {
    let s = |p: &str| {
        o.pointer(p)
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_owned()
    };
    format!(
        "{}/{}/{}/{}",
        s("/apiVersion"),
        s("/kind"),
        s("/metadata/namespace"),
        s("/metadata/name")
    )
}

fn by_key(objects: Vec<Value>, what: &str) -> BTreeMap<String, Value> {
    let mut out = BTreeMap::new();
    for o in objects {
        let k = key(&o);
        assert!(out.insert(k.clone(), o).is_none(), "{what}: {k} twice");
    }
    out
}

fn of_kind<'a>(objects: &'a [Value], kind: &str) -> Vec<&'a Value> {
    objects.iter().filter(|o| o["kind"] == kind).collect()
}

fn deployments(objects: &[Value]) -> Vec<&Value> {
    of_kind(objects, "Deployment")
}

fn container(deployment: &Value) -> &Value {
    let cs = deployment["spec"]["template"]["spec"]["containers"]
        .as_array()
        .unwrap();
    assert_eq!(cs.len(), 1, "{}", key(deployment));
    &cs[0]
}

fn env<'a>(deployment: &'a Value, name: &str) -> Option<&'a Value> {
    container(deployment)["env"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["name"] == name)
        .map(|e| &e["value"])
}

/// The JSON pointers where `a` and `b` differ (at most a few dozen, for the message); numbers
/// compare by value.
fn differences(a: &Value, b: &Value, path: &str, out: &mut Vec<String>) {
    if out.len() > 40 {
        return;
    }
    match (a, b) {
        (Value::Object(x), Value::Object(y)) => {
            let keys: BTreeSet<&String> = x.keys().chain(y.keys()).collect();
            for k in keys {
                let p = format!("{path}/{k}");
                match (x.get(k), y.get(k)) {
                    (Some(u), Some(v)) => differences(u, v, &p, out),
                    (Some(u), None) => out.push(format!("{p}: only in the chart: {u}")),
                    (None, Some(v)) => out.push(format!("{p}: only in kustomize: {v}")),
                    (None, None) => {}
                }
            }
        }
        (Value::Array(x), Value::Array(y)) if x.len() == y.len() => {
            for (i, (u, v)) in x.iter().zip(y).enumerate() {
                differences(u, v, &format!("{path}/{i}"), out);
            }
        }
        // JSON numbers: `65536.0` (crdgen writes f64 schema bounds so) is kustomize's `65536`.
        (Value::Number(x), Value::Number(y)) if x.as_f64() == y.as_f64() => {}
        _ if a != b => out.push(format!("{path}: chart {a} vs kustomize {b}")),
        _ => {}
    }
}

fn kustomize_base() -> Vec<Value> {
    kustomize("deploy/base")
}

/// `kubectl kustomize <dir>` (relative to the repository) as JSON objects.
fn kustomize(dir: &str) -> Vec<Value> {
    let out = Command::new("kubectl")
        .arg("kustomize")
        .arg(repo().join(dir))
        .output()
        .unwrap_or_else(|e| {
            panic!(
                "cannot run `kubectl kustomize {dir}` ({e}): this test renders the kustomize \
                 manifests and needs kubectl (client only) on PATH; install it (CI machines \
                 have it)"
            )
        });
    assert!(
        out.status.success(),
        "`kubectl kustomize {dir}` failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout).unwrap();
    chart_render::parse_documents(&text, &format!("kubectl kustomize {dir}")).unwrap()
}

/// The namespaced overlay: every controller watches team-a and team-b, bound there by
/// RoleBindings to its ClusterRole; no ClusterRoleBinding is left but the cluster-controller's
/// StorageClass and Node reads and the backup-controller's VolumeSnapshotClass read (all three
/// kinds are cluster-scoped); everything else is the base's.
#[test]
fn the_namespaced_overlay_grants_only_the_watched_namespaces() {
    let objects = kustomize("deploy/overlays/namespaced");
    let cluster_bindings: Vec<&str> = of_kind(&objects, "ClusterRoleBinding")
        .iter()
        .map(|b| b["metadata"]["name"].as_str().unwrap())
        .collect();
    assert_eq!(
        cluster_bindings,
        vec![
            "qdrant-operator-backup-controller-volumesnapshotclasses",
            "qdrant-operator-cluster-controller-nodes",
            "qdrant-operator-cluster-controller-storageclasses"
        ]
    );
    let nodes = of_kind(&objects, "ClusterRole")
        .into_iter()
        .find(|r| r["metadata"]["name"] == "qdrant-operator-cluster-controller-nodes")
        .unwrap();
    assert_eq!(
        nodes["rules"],
        json!([{"apiGroups": [""], "resources": ["nodes"], "verbs": ["get"]}])
    );
    let classes = of_kind(&objects, "ClusterRole")
        .into_iter()
        .find(|r| {
            r["metadata"]["name"] == "qdrant-operator-backup-controller-volumesnapshotclasses"
        })
        .unwrap();
    assert_eq!(
        classes["rules"],
        json!([{"apiGroups": ["snapshot.storage.k8s.io"], "resources": ["volumesnapshotclasses"], "verbs": ["get"]}])
    );
    let storage = of_kind(&objects, "ClusterRole")
        .into_iter()
        .find(|r| r["metadata"]["name"] == "qdrant-operator-cluster-controller-storageclasses")
        .unwrap();
    assert_eq!(
        storage["rules"],
        json!([{"apiGroups": ["storage.k8s.io"], "resources": ["storageclasses"], "verbs": ["get", "list"]}])
    );
    for controller in ["cluster", "collection", "backup"] {
        for ns in ["team-a", "team-b"] {
            let binding = of_kind(&objects, "RoleBinding")
                .into_iter()
                .find(|b| {
                    b["metadata"]["namespace"] == ns
                        && b["metadata"]["name"]
                            == format!("qdrant-operator-{controller}-controller")
                })
                .unwrap_or_else(|| {
                    panic!("no RoleBinding for the {controller}-controller in {ns}")
                });
            assert_eq!(binding["roleRef"]["kind"], "ClusterRole");
            assert_eq!(
                binding["roleRef"]["name"],
                format!("qdrant-operator-{controller}-controller")
            );
            assert_eq!(
                binding["subjects"],
                json!([{"kind": "ServiceAccount", "name": format!("{controller}-controller"), "namespace": "qdrant-operator"}])
            );
        }
    }
    for d in deployments(&objects) {
        assert_eq!(
            env(d, "WATCH_NAMESPACES"),
            Some(&json!("team-a,team-b")),
            "{}",
            d["metadata"]["name"]
        );
    }
    // The rest is the base: the same Deployments, ServiceAccounts, Roles and CRDs.
    let base = kustomize_base();
    for kind in [
        "Deployment",
        "ServiceAccount",
        "Role",
        "CustomResourceDefinition",
        "Namespace",
    ] {
        assert_eq!(
            of_kind(&objects, kind).len(),
            of_kind(&base, kind).len(),
            "{kind}"
        );
    }
}

#[test]
fn default_render_is_the_kustomize_base_object_for_object() {
    let chart = by_key(render(json!({})), "chart");
    let base = by_key(kustomize_base(), "kustomize");
    let only_chart: Vec<_> = chart.keys().filter(|k| !base.contains_key(*k)).collect();
    let only_base: Vec<_> = base.keys().filter(|k| !chart.contains_key(*k)).collect();
    assert!(
        only_chart.is_empty() && only_base.is_empty(),
        "objects only in the chart: {only_chart:#?}\nobjects only in kustomize: {only_base:#?}"
    );
    let mut problems = vec![];
    for (k, c) in &chart {
        let mut d = vec![];
        differences(c, &base[k], "", &mut d);
        if !d.is_empty() {
            problems.push(format!("{k}:\n  {}", d.join("\n  ")));
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
    let mut kinds: BTreeMap<&str, usize> = BTreeMap::new();
    for o in chart.values() {
        *kinds.entry(o["kind"].as_str().unwrap()).or_default() += 1;
    }
    eprintln!("chart == kustomize base: {} objects {kinds:?}", chart.len());
    // What the base installs; a new object in either shows up above, this pins the count.
    assert_eq!(chart.len(), 28, "{kinds:?}");
}

#[test]
fn chart_crds_are_crds_dir_with_the_part_of_label() {
    let chart = chart();
    let names: Vec<String> = chart
        .crds
        .iter()
        .map(|(p, _)| p.trim_start_matches("crds/").to_owned())
        .collect();
    let mut want: Vec<String> = std::fs::read_dir(repo().join("crds"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n != "kustomization.yaml")
        .collect();
    want.sort();
    assert_eq!(names, want, "run `just crds`");
    for (path, text) in &chart.crds {
        let mut ours = chart_render::parse_documents(text, path).unwrap();
        let file = repo().join(path);
        let mut plain =
            chart_render::parse_documents(&std::fs::read_to_string(&file).unwrap(), path).unwrap();
        assert_eq!((ours.len(), plain.len()), (1, 1), "{path}");
        plain[0]["metadata"]["labels"] = json!({"app.kubernetes.io/part-of": "qdrant-operator"});
        assert!(
            ours.remove(0) == plain.remove(0),
            "deploy/helm/qdrant-operator/{path} is stale: run `just crds` and commit"
        );
        assert!(
            text.starts_with("# Generated by `just crds`"),
            "{path}: not written by crdgen"
        );
    }
}

#[test]
fn chart_metadata_and_image_match_the_base() {
    let chart = chart();
    let m = &chart.metadata;
    assert_eq!(m["apiVersion"], "v2");
    assert_eq!(m["name"], "qdrant-operator");
    assert_eq!(m["version"], "0.1.0");
    let base =
        std::fs::read_to_string(repo().join("deploy/base/cluster-controller/deployment.yaml"))
            .unwrap();
    let base: Value = serde_saphyr::from_str(&base).unwrap();
    let image = base["spec"]["template"]["spec"]["containers"][0]["image"]
        .as_str()
        .unwrap();
    let (repository, tag) = image.rsplit_once(':').unwrap();
    assert_eq!(m["appVersion"], tag, "appVersion is the base's image tag");
    assert_eq!(chart.values["image"]["repository"], repository);
    assert_eq!(chart.values["image"]["tag"], tag);
}

#[test]
fn image_reaches_every_controller_and_the_backup_cronjobs() {
    let objects = render(
        json!({"image": {"repository": "registry.example/qop", "tag": "9.9.9", "pullPolicy": "Always"}}),
    );
    let ds = deployments(&objects);
    assert_eq!(ds.len(), 3);
    for d in &ds {
        assert_eq!(
            container(d)["image"],
            "registry.example/qop:9.9.9",
            "{}",
            key(d)
        );
        assert_eq!(container(d)["imagePullPolicy"], "Always", "{}", key(d));
    }
    let backup = ds
        .iter()
        .find(|d| d["metadata"]["name"] == "backup-controller")
        .unwrap();
    assert_eq!(
        env(backup, "OPERATOR_IMAGE"),
        Some(&json!("registry.example/qop:9.9.9"))
    );
    // Only the tag: the default repository.
    let objects = render(json!({"image": {"tag": "0.2.0"}}));
    for d in deployments(&objects) {
        assert_eq!(
            container(d)["image"],
            "ghcr.io/qdrant-operator/qdrant-operator:0.2.0"
        );
        if d["metadata"]["name"] == "backup-controller" {
            assert_eq!(
                env(d, "OPERATOR_IMAGE"),
                Some(&json!("ghcr.io/qdrant-operator/qdrant-operator:0.2.0"))
            );
        }
    }
}

#[test]
fn watch_namespace_reaches_every_controller() {
    for d in deployments(&render(json!({}))) {
        assert_eq!(env(d, "WATCH_NAMESPACE"), None, "default: all namespaces");
        assert_eq!(env(d, "WATCH_NAMESPACES"), None, "default: all namespaces");
    }
    let objects = render(json!({"watchNamespace": "team-a"}));
    let ds = deployments(&objects);
    assert_eq!(ds.len(), 3);
    for d in ds {
        assert_eq!(
            env(d, "WATCH_NAMESPACE"),
            Some(&json!("team-a")),
            "{}",
            key(d)
        );
    }
    let objects = render(json!({"watchNamespaces": "team-a,team-b"}));
    for d in deployments(&objects) {
        assert_eq!(
            env(d, "WATCH_NAMESPACES"),
            Some(&json!("team-a,team-b")),
            "{}",
            key(d)
        );
        assert_eq!(env(d, "WATCH_NAMESPACE"), None, "{}", key(d));
    }
}

#[test]
fn log_level_reaches_every_controller() {
    let objects = render(json!({"logLevel": "info,kube=debug"}));
    for d in deployments(&objects) {
        assert_eq!(
            env(d, "RUST_LOG"),
            Some(&json!("info,kube=debug")),
            "{}",
            key(d)
        );
    }
}

#[test]
fn replicas_and_resources_per_controller() {
    let resources = json!({"requests": {"cpu": "1", "memory": "1Gi"}, "limits": {"memory": "2Gi"}});
    let objects = render(json!({
        "clusterController": {"replicas": 3},
        "collectionController": {"replicas": 1, "resources": resources},
        "backupController": {"replicas": 5},
    }));
    let get = |name: &str| {
        deployments(&objects)
            .into_iter()
            .find(|d| d["metadata"]["name"] == name)
            .unwrap()
            .clone()
    };
    assert_eq!(get("cluster-controller")["spec"]["replicas"], 3);
    assert_eq!(get("collection-controller")["spec"]["replicas"], 1);
    assert_eq!(get("backup-controller")["spec"]["replicas"], 5);
    assert_eq!(
        container(&get("collection-controller"))["resources"],
        resources
    );
    // The others keep the base's.
    assert_eq!(
        container(&get("cluster-controller"))["resources"],
        json!({"requests": {"cpu": "50m", "memory": "64Mi"}, "limits": {"memory": "256Mi"}})
    );
    assert_eq!(
        container(&get("backup-controller"))["resources"]["limits"]["memory"],
        "512Mi"
    );
}

#[test]
fn service_monitors_scrape_the_metrics_services() {
    assert!(of_kind(&render(json!({})), "ServiceMonitor").is_empty());
    let objects = render(
        json!({"metrics": {"serviceMonitor": {"enabled": true, "labels": {"release": "prom"}, "interval": "15s"}}}),
    );
    let monitors = of_kind(&objects, "ServiceMonitor");
    assert_eq!(monitors.len(), 3);
    let services = of_kind(&objects, "Service");
    for m in monitors {
        assert_eq!(m["apiVersion"], "monitoring.coreos.com/v1");
        assert_eq!(m["metadata"]["namespace"], "qdrant-operator");
        assert_eq!(m["metadata"]["labels"]["release"], "prom");
        assert_eq!(
            m["metadata"]["labels"]["app.kubernetes.io/part-of"],
            "qdrant-operator"
        );
        assert_eq!(
            m["spec"]["namespaceSelector"]["matchNames"],
            json!(["qdrant-operator"])
        );
        let selector = m["spec"]["selector"]["matchLabels"].as_object().unwrap();
        let matched: Vec<_> = services
            .iter()
            .filter(|s| {
                s["metadata"]["namespace"] == "qdrant-operator"
                    && selector
                        .iter()
                        .all(|(k, v)| &s["metadata"]["labels"][k] == v)
            })
            .collect();
        assert_eq!(matched.len(), 1, "{} selects {matched:?}", key(m));
        let port = &m["spec"]["endpoints"][0];
        assert_eq!(port["port"], matched[0]["spec"]["ports"][0]["name"]);
        assert_eq!(port["path"], "/metrics");
        assert_eq!(port["interval"], "15s");
    }
    // Without the Services there is nothing to scrape: neither is rendered.
    let objects = render(
        json!({"metrics": {"service": {"enabled": false}, "serviceMonitor": {"enabled": true}}}),
    );
    assert!(of_kind(&objects, "Service").is_empty());
    assert!(of_kind(&objects, "ServiceMonitor").is_empty());
    assert_eq!(deployments(&objects).len(), 3);
}

#[test]
fn namespace_name_and_creation() {
    let objects = render(json!({"namespace": {"create": false, "name": "ops"}}));
    assert!(of_kind(&objects, "Namespace").is_empty());
    for o in &objects {
        let kind = o["kind"].as_str().unwrap();
        let cluster_scoped = [
            "CustomResourceDefinition",
            "ClusterRole",
            "ClusterRoleBinding",
        ];
        if cluster_scoped.contains(&kind) {
            assert!(o["metadata"].get("namespace").is_none(), "{}", key(o));
        } else {
            assert_eq!(o["metadata"]["namespace"], "ops", "{}", key(o));
        }
        if let Some(subjects) = o["subjects"].as_array() {
            for s in subjects {
                assert_eq!(s["namespace"], "ops", "{}", key(o));
            }
        }
    }
    let objects = render(json!({"namespace": {"name": "ops"}}));
    let ns = of_kind(&objects, "Namespace");
    assert_eq!(ns.len(), 1);
    assert_eq!(ns[0]["metadata"]["name"], "ops");
    assert_eq!(
        ns[0]["metadata"]["labels"]["pod-security.kubernetes.io/enforce"],
        "restricted"
    );
}

#[test]
fn every_object_is_part_of_qdrant_operator_but_no_selector_is() {
    let all_on = json!({"metrics": {"serviceMonitor": {"enabled": true}}});
    for o in render(all_on) {
        assert_eq!(
            o["metadata"]["labels"]["app.kubernetes.io/part-of"],
            "qdrant-operator",
            "{}",
            key(&o)
        );
        for p in ["/spec/selector", "/spec/selector/matchLabels"] {
            if let Some(sel) = o.pointer(p).and_then(Value::as_object) {
                assert!(
                    !sel.contains_key("app.kubernetes.io/part-of"),
                    "{}{p}",
                    key(&o)
                );
            }
        }
    }
}

#[test]
fn templates_use_only_the_documented_features() {
    let chart = chart();
    assert!(!chart.templates.is_empty());
    let mut problems = vec![];
    for (path, text) in &chart.templates {
        for v in chart_render::template_violations(text) {
            problems.push(format!("{path}: {v}"));
        }
    }
    assert!(
        problems.is_empty(),
        "templates use features outside the documented list (chart README, \
         chart_render::ALLOWED_FUNCTIONS):\n{}",
        problems.join("\n")
    );
    // The chart README lists exactly the functions the renderer provides.
    let readme = std::fs::read_to_string(chart_dir().join("README.md")).unwrap();
    for f in chart_render::ALLOWED_FUNCTIONS
        .iter()
        .chain(chart_render::ALLOWED_ACTIONS)
    {
        assert!(
            readme.contains(&format!("`{f}`")),
            "the chart README does not list `{f}`"
        );
    }
}

#[test]
fn missing_values_are_errors_not_empty_strings() {
    // A typo in a template would print `<no value>` (Helm: an empty string); here it fails.
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    std::fs::write(
        dir.join("Chart.yaml"),
        "apiVersion: v2\nname: t\nversion: 0.1.0\n",
    )
    .unwrap();
    std::fs::write(dir.join("values.yaml"), "image: {tag: x}\n").unwrap();
    std::fs::create_dir(dir.join("templates")).unwrap();
    std::fs::write(
        dir.join("templates/a.yaml"),
        "kind: A\nimage: {{ .Values.imag }}\n",
    )
    .unwrap();
    let err = chart_render::render(dir, &json!({}))
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("templates/a.yaml") && err.contains("missing value"),
        "{err}"
    );
}
