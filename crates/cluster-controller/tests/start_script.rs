//! The pod start script and the cluster ConfigMap's member list (peer recovery, builder
//! layer): the script runs in a real `sh` against a temporary volume, ConfigMap directory and
//! termination log, with `./entrypoint.sh` replaced by a stub that prints Qdrant's arguments
//! and then runs the test's `stub-action` (standing for what Qdrant did before it stopped).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;

use api_types::QdrantCluster;
use cluster_controller::build::{
    self, Names, Observed,
    config::{BOOTSTRAP_PEERS_KEY, CONFIG_KEY, bootstrap_peers},
    statefulset::{
        BOOTSTRAP_ATTEMPTS_FILE, BOOTSTRAP_PEERS_FILE, CLUSTER_INFO_DIR, FRESH_STORAGE_MARKER,
        RAFT_STATE_FILE, TERMINATION_LOG, start_script,
    },
};
use serde_json::{Value, json};

const POD0: &str = "http://demo-0.demo-headless.prod.svc:6335";
const POD1: &str = "http://demo-1.demo-headless.prod.svc:6335";
const POD2: &str = "http://demo-2.demo-headless.prod.svc:6335";

/// Raft state of a peer that joined (term 3), as Qdrant 1.18 writes it (compact JSON,
/// `Persistent` in `lib/storage/src/content_manager/consensus/persistent.rs`).
const JOINED: &str = r#"{"state":{"hard_state":{"term":3,"vote":11,"commit":42},"conf_state":{"voters":[11,12],"learners":[],"voters_outgoing":[],"learners_next":[],"auto_leave":false}},"latest_snapshot_meta":{"term":0,"index":0},"apply_progress_queue":null,"peer_address_by_id":{"11":"http://demo-0.demo-headless.prod.svc:6335/"},"peer_metadata_by_id":{},"this_peer_id":11}"#;
/// Raft state written by a start whose join was refused: term 0.
const NEVER_JOINED: &str = r#"{"state":{"hard_state":{"term":0,"vote":0,"commit":0},"conf_state":{"voters":[],"learners":[],"voters_outgoing":[],"learners_next":[],"auto_leave":false}},"latest_snapshot_meta":{"term":0,"index":0},"apply_progress_queue":null,"peer_address_by_id":{},"peer_metadata_by_id":{},"this_peer_id":77}"#;

fn qc(spec: Value, status: Value) -> QdrantCluster {
    serde_json::from_value(json!({
        "apiVersion": "qdrant.operator.dev/v1alpha1", "kind": "QdrantCluster",
        "metadata": {"name": "demo", "namespace": "prod", "uid": "1234", "generation": 1},
        "spec": spec, "status": status,
    }))
    .unwrap()
}

fn peers_status(pods: &[&str]) -> Value {
    let peers: Vec<Value> = pods
        .iter()
        .enumerate()
        .map(|(i, pod)| json!({"pod": pod, "peerId": 10 + i, "uri": "x"}))
        .collect();
    json!({"peers": peers})
}

/// One pod: a temporary root standing for `/qdrant` plus the termination log.
struct Pod {
    dir: tempfile::TempDir,
    script: String,
}

/// What one start did.
#[derive(Debug)]
struct Start {
    /// Qdrant's arguments, `None` when the script exited without starting it.
    args: Option<String>,
    /// The script's exit code (the container's).
    code: Option<i32>,
    /// The termination message file's content.
    termination: String,
    stderr: String,
}

impl Pod {
    fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().display().to_string();
        let script = start_script(&Names::of(&qc(json!({"replicas": 3}), json!({}))));
        // Every path the script touches must be one we redirect.
        for path in [
            RAFT_STATE_FILE,
            BOOTSTRAP_PEERS_FILE,
            BOOTSTRAP_ATTEMPTS_FILE,
            TERMINATION_LOG,
        ] {
            assert!(script.contains(path), "{path} in the script");
        }
        let script = script
            .replace("/qdrant/", &format!("{root}/"))
            .replace(TERMINATION_LOG, &format!("{root}/termination-log"));
        for sub in ["storage", "init", "cluster-info"] {
            std::fs::create_dir_all(dir.path().join(sub)).unwrap();
        }
        let entrypoint = dir.path().join("entrypoint.sh");
        std::fs::write(
            &entrypoint,
            "#!/bin/sh\necho \"$@\" > qdrant-args\nif [ -f stub-action ]; then . ./stub-action; fi\n",
        )
        .unwrap();
        std::fs::set_permissions(
            &entrypoint,
            std::os::unix::fs::PermissionsExt::from_mode(0o755),
        )
        .unwrap();
        Self { dir, script }
    }

    fn path(&self, qdrant_path: &str) -> std::path::PathBuf {
        self.dir
            .path()
            .join(qdrant_path.strip_prefix("/qdrant/").unwrap())
    }

    fn write(&self, qdrant_path: &str, content: &str) {
        std::fs::write(self.path(qdrant_path), content).unwrap();
    }

    fn read(&self, qdrant_path: &str) -> Option<String> {
        std::fs::read_to_string(self.path(qdrant_path)).ok()
    }

    /// What the stub Qdrant does after printing its arguments (shell code; `exit N` ends it).
    fn qdrant_does(&self, action: &str) {
        std::fs::write(self.dir.path().join("stub-action"), action).unwrap();
    }

    fn members(&self, uris: &[&str]) {
        let list: String = uris.iter().map(|u| format!("{u}\n")).collect();
        self.write(BOOTSTRAP_PEERS_FILE, &list);
    }

    fn start(&self, pod: &str) -> Start {
        let read = |p: &Path| std::fs::read_to_string(p).unwrap_or_default();
        let _ = std::fs::remove_file(self.dir.path().join("qdrant-args"));
        let _ = std::fs::remove_file(self.dir.path().join("termination-log"));
        let out = std::process::Command::new("sh")
            .arg("-c")
            .arg(&self.script)
            .current_dir(self.dir.path())
            .env("POD_NAME", pod)
            .output()
            .unwrap();
        let args = self.dir.path().join("qdrant-args");
        let started = args.exists();
        Start {
            args: started.then(|| read(&args).trim().to_owned()),
            code: out.status.code(),
            termination: read(&self.dir.path().join("termination-log")),
            stderr: String::from_utf8(out.stderr).unwrap(),
        }
    }
}

fn bootstrap(from: &str, pod: &str) -> Option<String> {
    Some(format!(
        "--bootstrap {from} --uri http://{pod}.demo-headless.prod.svc:6335"
    ))
}

fn uri_only(pod: &str) -> Option<String> {
    Some(format!("--uri http://{pod}.demo-headless.prod.svc:6335"))
}

#[test]
fn a_new_cluster_is_founded_by_pod_zero() {
    let pod = Pod::new();
    let start = pod.start("demo-0");
    assert_eq!(start.args, uri_only("demo-0"));
    assert_eq!(start.code, Some(0));
    // A first start: the empty volume is no sign of a lost one.
    assert_eq!(start.termination, "", "{start:?}");
    assert_eq!(pod.start("demo-2").args, bootstrap(POD0, "demo-2"));
}

#[test]
fn pod_zero_on_an_empty_volume_joins_the_formed_cluster_instead_of_founding_one() {
    let pod = Pod::new();
    pod.members(&[POD0, POD1, POD2]);
    // Qdrant writes a term-0 state, its join is refused (another peer still holds the URI's
    // shards) and it exits 101.
    pod.qdrant_does(&format!(
        "echo '{NEVER_JOINED}' > storage/raft_state.json; exit 101"
    ));
    let first = pod.start("demo-0");
    assert_eq!(first.args, bootstrap(POD1, "demo-0"));
    assert_eq!(
        first.code,
        Some(101),
        "Qdrant's exit code is the container's"
    );
    // A listed member stopped without a joined state: its volume lost the member's data.
    assert!(
        first.termination.starts_with(FRESH_STORAGE_MARKER),
        "{first:?}"
    );
    // The next start tries the next member, then wraps around; the term-0 state stays for
    // Qdrant to bootstrap again with the same peer id.
    let second = pod.start("demo-0");
    assert_eq!(second.args, bootstrap(POD2, "demo-0"));
    assert!(second.termination.starts_with(FRESH_STORAGE_MARKER));
    assert_eq!(
        pod.read(RAFT_STATE_FILE).as_deref().map(str::trim),
        Some(NEVER_JOINED)
    );
    assert_eq!(pod.start("demo-0").args, bootstrap(POD1, "demo-0"));
}

#[test]
fn a_peer_that_joined_and_then_crashed_is_not_marked_although_it_started_empty() {
    // The first instance of a listed pod on an empty volume joins (Qdrant replaced the old
    // peer, which held no shards), then is killed: its state is on the volume.
    let pod = Pod::new();
    pod.members(&[POD0, POD1, POD2]);
    pod.qdrant_does(&format!(
        "echo '{JOINED}' > storage/raft_state.json; exit 137"
    ));
    let start = pod.start("demo-1");
    assert_eq!(start.code, Some(137));
    assert_eq!(start.termination, "", "{start:?}");
}

#[test]
fn a_first_start_whose_join_fails_is_not_marked() {
    // Scale-up: pod 2 is not listed yet; its bootstrap peer is not listening (exit 101).
    let pod = Pod::new();
    pod.members(&[POD0, POD1]);
    pod.qdrant_does(&format!(
        "echo '{NEVER_JOINED}' > storage/raft_state.json; exit 101"
    ));
    let start = pod.start("demo-2");
    assert_eq!(start.code, Some(101));
    assert_eq!(start.termination, "", "{start:?}");
}

#[test]
fn sigterm_reaches_qdrant_and_its_exit_code_is_the_containers() {
    let pod = Pod::new();
    pod.write(RAFT_STATE_FILE, JOINED);
    // The stub stands for Qdrant's graceful shutdown: on SIGTERM it records it and exits 0.
    pod.qdrant_does(
        "trap 'echo term > got-signal; exit 0' TERM\necho started > qdrant-up\nwhile :; do sleep 0.1; done",
    );
    let root = pod.dir.path();
    let mut child = std::process::Command::new("sh")
        .arg("-c")
        .arg(&pod.script)
        .current_dir(root)
        .env("POD_NAME", "demo-1")
        .spawn()
        .unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while !root.join("qdrant-up").exists() {
        assert!(
            std::time::Instant::now() < deadline,
            "the stub never started"
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    let pid = child.id().to_string();
    assert!(
        std::process::Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .unwrap()
            .success()
    );
    let status = child.wait().unwrap();
    assert_eq!(
        std::fs::read_to_string(root.join("got-signal"))
            .ok()
            .as_deref(),
        Some("term\n")
    );
    assert_eq!(status.code(), Some(0), "{status:?}");
}

#[test]
fn a_joined_peer_starts_without_the_marker() {
    let pod = Pod::new();
    pod.members(&[POD0, POD1, POD2]);
    pod.write(RAFT_STATE_FILE, JOINED);
    let start = pod.start("demo-0");
    // Qdrant ignores --bootstrap with joined Raft state (it only asks that peer for unknown
    // addresses).
    assert_eq!(start.args, bootstrap(POD1, "demo-0"));
    assert_eq!(start.termination, "");
    // Qdrant's legacy CBOR state counts as joined too.
    let legacy = Pod::new();
    legacy.write(RAFT_STATE_FILE.trim_end_matches(".json"), "cbor");
    assert_eq!(legacy.start("demo-1").termination, "");
}

#[test]
fn other_pods_bootstrap_from_a_listed_member_other_than_themselves() {
    let pod = Pod::new();
    // Pod 0 is not listed (it is down): pod 2 joins through pod 1.
    pod.members(&[POD1, POD2]);
    assert_eq!(pod.start("demo-2").args, bootstrap(POD1, "demo-2"));
    // demo-1 is not mistaken for demo-10.
    let ten = Pod::new();
    ten.members(&[POD1, "http://demo-10.demo-headless.prod.svc:6335"]);
    assert_eq!(ten.start("demo-10").args, bootstrap(POD1, "demo-10"));
}

#[test]
fn an_empty_volume_with_no_other_member_listed_waits_instead_of_founding_a_cluster() {
    let pod = Pod::new();
    pod.members(&[POD0]);
    let start = pod.start("demo-0");
    assert_eq!(start.args, None);
    assert!(
        start.stderr.contains("not founding a new cluster"),
        "{start:?}"
    );
    assert!(start.termination.starts_with(FRESH_STORAGE_MARKER));
    // With its Raft state, the same pod starts (the state decides, not the arguments).
    pod.write(RAFT_STATE_FILE, JOINED);
    assert_eq!(pod.start("demo-0").args, uri_only("demo-0"));
}

#[test]
fn a_broken_attempt_counter_or_termination_log_does_not_stop_the_start() {
    let pod = Pod::new();
    pod.members(&[POD0, POD1, POD2]);
    pod.write(BOOTSTRAP_ATTEMPTS_FILE, "garbage");
    assert_eq!(pod.start("demo-2").args, bootstrap(POD0, "demo-2"));
    // No writable termination log (e.g. a runtime without one): Qdrant still starts.
    let root = pod.dir.path().display().to_string();
    let script = pod.script.replace(
        &format!("{root}/termination-log"),
        &format!("{root}/missing/dir/termination-log"),
    );
    let out = std::process::Command::new("sh")
        .arg("-c")
        .arg(&script)
        .current_dir(pod.dir.path())
        .env("POD_NAME", "demo-2")
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
}

// ----- The member list in the ConfigMap -------------------------------------------------------

fn config_map_data(qc: &QdrantCluster) -> std::collections::BTreeMap<String, String> {
    build::build(qc, &Observed::default())
        .unwrap()
        .config_map
        .data
        .unwrap()
}

#[test]
fn the_config_map_lists_the_reporting_members_once_the_cluster_formed() {
    // A new cluster: no list, pod 0 founds it.
    let new = qc(json!({"replicas": 3}), json!({}));
    assert_eq!(bootstrap_peers(&new), None);
    assert!(!config_map_data(&new).contains_key(BOOTSTRAP_PEERS_KEY));

    // Pods that reported, by ordinal; pods beyond spec.replicas and foreign names left out.
    let formed = qc(
        json!({"replicas": 3}),
        peers_status(&["demo-2", "demo-0", "demo-5", "other-1"]),
    );
    let list = format!("{POD0}\n{POD2}\n");
    assert_eq!(bootstrap_peers(&formed).as_deref(), Some(list.as_str()));
    let data = config_map_data(&formed);
    assert_eq!(data.get(BOOTSTRAP_PEERS_KEY), Some(&list));

    // The list is not config.yaml: the config hash, hence the pods, do not change with it.
    let hash = |q: &QdrantCluster| {
        build::build(q, &Observed::default())
            .unwrap()
            .statefulset
            .spec
            .unwrap()
            .template
            .metadata
            .unwrap()
            .annotations
            .unwrap()["qdrant.operator.dev/config-hash"]
            .clone()
    };
    assert_eq!(hash(&new), hash(&formed));
    assert_eq!(data[CONFIG_KEY], config_map_data(&new)[CONFIG_KEY]);

    // One pod: its only peer can only found the cluster anew.
    let single = qc(json!({"replicas": 1}), peers_status(&["demo-0"]));
    assert_eq!(bootstrap_peers(&single), None);
}

#[test]
fn the_config_map_is_mounted_whole_for_the_script() {
    let sts = build::build(&qc(json!({"replicas": 3}), json!({})), &Observed::default())
        .unwrap()
        .statefulset;
    let pod = sts.spec.unwrap().template.spec.unwrap();
    let container = pod.containers.iter().find(|c| c.name == "qdrant").unwrap();
    let mount = container
        .volume_mounts
        .as_ref()
        .unwrap()
        .iter()
        .find(|m| m.mount_path == CLUSTER_INFO_DIR)
        .unwrap();
    // No subPath (the kubelet refreshes the files), read-only, from the config ConfigMap.
    assert_eq!(
        (
            mount.name.as_str(),
            mount.sub_path.as_deref(),
            mount.read_only
        ),
        ("config", None, Some(true))
    );
    assert_eq!(
        BOOTSTRAP_PEERS_FILE,
        format!("{CLUSTER_INFO_DIR}/{BOOTSTRAP_PEERS_KEY}")
    );
    let volume = pod
        .volumes
        .unwrap()
        .into_iter()
        .find(|v| v.name == "config")
        .unwrap();
    assert_eq!(volume.config_map.unwrap().name, "demo-config");
    // The default termination message path and policy: the marker reaches the Pod status.
    assert_eq!(container.termination_message_path, None);
    assert_eq!(container.termination_message_policy, None);
}
