//! `render`: the 3-node example becomes the objects of a hand-written 3-node guide; bad input
//! names the field and exits non-zero.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::process::Command;

use serde_json::Value;

fn example(name: &str) -> String {
    std::fs::read_to_string(format!(
        "{}/../../examples/{name}",
        env!("CARGO_MANIFEST_DIR")
    ))
    .unwrap()
}

fn docs(yaml: &str) -> Vec<Value> {
    serde_saphyr::from_multiple::<Value>(yaml)
        .unwrap()
        .into_iter()
        .filter(|d| !d.is_null())
        .collect()
}

#[test]
fn three_node_example_renders_the_guide_objects() {
    let out = cluster_controller::render::render(&example("qdrantcluster-3-node.yaml")).unwrap();
    let docs = docs(&out);
    let kinds: Vec<_> = docs
        .iter()
        .map(|d| {
            format!(
                "{}/{}",
                d["kind"].as_str().unwrap(),
                d["metadata"]["name"].as_str().unwrap()
            )
        })
        .collect();
    assert_eq!(
        kinds,
        [
            "ConfigMap/demo-config",
            "Service/demo-headless",
            "Service/demo",
            "StatefulSet/demo",
            "PodDisruptionBudget/demo"
        ]
    );

    let config = docs[0]["data"]["production.yaml"].as_str().unwrap();
    let config: Value = serde_saphyr::from_str(config).unwrap();
    assert_eq!(config["cluster"]["enabled"], Value::Bool(true));
    assert_eq!(config["cluster"]["p2p"]["port"], 6335);
    assert_eq!(docs[1]["spec"]["clusterIP"], "None");
    assert_eq!(docs[2]["spec"]["type"], "ClusterIP");
    let sts = &docs[3];
    assert_eq!(sts["spec"]["replicas"], 3);
    assert_eq!(
        sts["spec"]["volumeClaimTemplates"][0]["spec"]["resources"]["requests"]["storage"],
        "5Gi"
    );
    let script = sts["spec"]["template"]["spec"]["containers"][0]["args"][0]
        .as_str()
        .unwrap();
    // A new cluster: pods other than 0 bootstrap from pod 0.
    assert!(script.contains("bootstrap=\"http://demo-0.demo-headless.default.svc:6335\""));
    // Generated keys are announced, never printed.
    assert!(out.contains("# Secret demo-api-key (key \"api-key\") is generated"));
    assert!(out.contains("# Secret demo-read-only-api-key"));
    assert!(!docs.iter().any(|d| d["kind"] == "Secret"));
}

#[test]
fn single_example_renders_without_pdb() {
    let out = cluster_controller::render::render(&example("qdrantcluster-single.yaml")).unwrap();
    let kinds: Vec<_> = docs(&out)
        .iter()
        .map(|d| d["kind"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(kinds, ["ConfigMap", "Service", "Service", "StatefulSet"]);
}

#[test]
fn bad_input_names_the_field() {
    let base =
        "apiVersion: qdrant.operator.dev/v1alpha1\nkind: QdrantCluster\nmetadata:\n  name: x\n";
    let err = |spec: &str| {
        cluster_controller::render::render(&format!("{base}spec:\n{spec}"))
            .unwrap_err()
            .to_string()
    };
    let e = err("  replicas: three\n");
    assert!(e.contains("spec.replicas"), "{e}");
    let e = err("  replicas: 0\n");
    assert!(
        e.contains("spec.replicas: must be between 1 and 100"),
        "{e}"
    );
    let e = err("  service:\n    type: ExternalName\n");
    assert!(e.contains("spec.service.type"), "{e}");
    let e = err("  config:\n    service:\n      api_key: secret\n");
    assert!(
        e.contains("spec.config.service.api_key: is owned by the operator"),
        "{e}"
    );
    let e = cluster_controller::render::render(
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: x\n",
    )
    .unwrap_err()
    .to_string();
    assert!(
        e.contains("expected apiVersion qdrant.operator.dev/v1alpha1 and kind QdrantCluster"),
        "{e}"
    );
    let e = cluster_controller::render::render("a: [unclosed\n")
        .unwrap_err()
        .to_string();
    assert!(!e.is_empty());
}

#[test]
fn the_binary_exits_non_zero_on_bad_input_and_zero_on_good() {
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("bad.yaml");
    std::fs::write(&bad, "apiVersion: qdrant.operator.dev/v1alpha1\nkind: QdrantCluster\nmetadata:\n  name: x\nspec:\n  persistence:\n    size: lots\n").unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_cluster-controller"))
        .args(["render", "-f"])
        .arg(&bad)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("spec.persistence.size"), "{stderr}");
    assert!(out.stdout.is_empty());

    let good = format!(
        "{}/../../examples/qdrantcluster-3-node.yaml",
        env!("CARGO_MANIFEST_DIR")
    );
    let out = Command::new(env!("CARGO_BIN_EXE_cluster-controller"))
        .args(["render", "-f", &good])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("kind: StatefulSet"));
}
