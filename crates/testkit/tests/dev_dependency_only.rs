//! testkit is a dev-dependency only: a controller (or reconcile-lib) that listed it as a
//! normal or build dependency would ship the fakes in its binary. Read from `cargo metadata`,
//! which sees every dependency table (`[dependencies]`, `[build-dependencies]`,
//! `[target.'cfg(..)'.dependencies]`, renamed ones) the way Cargo resolves them.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;
use std::process::Command;

use serde_json::Value;

#[test]
fn testkit_is_only_ever_a_dev_dependency() {
    let workspace = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let output = Command::new(cargo)
        .args([
            "metadata",
            "--format-version",
            "1",
            "--no-deps",
            "--offline",
        ])
        .arg("--manifest-path")
        .arg(workspace.join("Cargo.toml"))
        .output()
        .expect("cargo metadata runs");
    assert!(
        output.status.success(),
        "cargo metadata failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let metadata: Value = serde_json::from_slice(&output.stdout).expect("cargo metadata is JSON");

    let mut dev_users = Vec::new();
    for package in metadata["packages"].as_array().expect("packages") {
        let name = package["name"].as_str().expect("package name");
        for dependency in package["dependencies"].as_array().expect("dependencies") {
            if dependency["name"] != "testkit" {
                continue;
            }
            let kind = dependency["kind"].as_str().unwrap_or("normal");
            assert_eq!(
                kind, "dev",
                "{name} lists testkit as a {kind} dependency; it may only be a \
                 [dev-dependencies] entry"
            );
            dev_users.push(name.to_owned());
        }
    }

    // The check above saw the crates that do use it (a renamed or moved crate would
    // otherwise make it pass on nothing).
    dev_users.sort();
    for expected in [
        "backup-controller",
        "cluster-controller",
        "collection-controller",
        "reconcile-lib",
    ] {
        assert!(
            dev_users.iter().any(|user| user == expected),
            "{expected} should take testkit as a dev-dependency; seen in {dev_users:?}"
        );
    }
}
