//! Real Qdrant peers for the pods of a StatefulSet held by the [`FakeApiServer`]: the fake
//! keeps the API, this module plays the StatefulSet controller and the kubelet, and each pod
//! runs the real Qdrant server ([`crate::real_qdrant::binary`]) through the pod's own
//! container command (the operator's start script).
//!
//! # What it does, per StatefulSet (polled every 100 ms)
//!
//! - **StatefulSet controller.** Creates pods `0..spec.replicas` from `spec.template` (labels,
//!   `controller-revision-hash` = a hash of the template, owner reference) when missing,
//!   deletes the ordinals at or above `spec.replicas`, creates one PersistentVolumeClaim per
//!   pod from `spec.volumeClaimTemplates` (Bound, capacity = request), and writes the status:
//!   `replicas`, `readyReplicas`, `currentReplicas`, `updatedReplicas`, `currentRevision` (the
//!   first revision seen: Kubernetes never moves it under `OnDelete`,
//!   kubernetes/kubernetes#73492), `updateRevision`, `observedGeneration`. `OnDelete`: a pod is
//!   only replaced once it was deleted. Pods are created together (the `Parallel` policy the
//!   operator sets), so a new cluster forms the way it does on Kubernetes: the other pods
//!   usually try to join before pod 0 listens, exit 101 and join on their restart.
//! - **Kubelet.** Runs the first container: `command` + `args` with the pod's environment
//!   (`value`, `fieldRef` `metadata.name` / `metadata.namespace` / `status.podIP`,
//!   `secretKeyRef`, `configMapKeyRef`), its volume mounts as files on the host (see below),
//!   `restartPolicy: Always` with the kubelet's back-off (10 s, doubled, capped at 40 s), and the status: `Ready` from the container's
//!   `readinessProbe` (HTTP GET on its port, HTTPS without verifying the certificate, as the
//!   kubelet), `containerStatuses[0]` with `state`, `ready`, `restartCount` and `lastState.terminated`
//!   {`exitCode`, `reason`, `message` = the termination message file}. A deleted pod's process
//!   gets SIGTERM, then SIGKILL after 10 s.
//! - **Pod network and DNS.** Pod `i` has its own loopback address `127.77.<slot>.<i+1>`
//!   ([`RealCluster::pod_ip`]); its DNS name `<pod>.<serviceName>.<ns>.svc` and the client
//!   Service's `<sts>.<ns>.svc` (pod 0) go into `/etc/hosts` while the harness lives (so Qdrant's
//!   own p2p URIs and the operator's in-cluster URLs resolve), removed on drop; so does the
//!   short `<pod>.<serviceName>` that a pod's DNS search path completes (the Helm chart's p2p
//!   URIs use it; it is unique only among harnesses of differently named StatefulSets). The
//!   container gets `QDRANT__SERVICE__HOST=<pod IP>` so every pod can listen on the same
//!   ports, and `HOSTNAME=<pod>` as a container runtime sets it.
//! - **Update strategies.** `OnDelete` as above. `RollingUpdate` (the default when
//!   `spec.updateStrategy` is unset, as in Kubernetes): while every pod exists and is ready,
//!   the highest-ordinal pod not at the update revision is deleted (one at a time, so the next
//!   waits for the replacement to be ready), and `currentRevision` becomes the update revision
//!   once every pod is at it (`partition` and `maxUnavailable` are not modelled).
//!
//! # Volumes without mounts
//!
//! There is no container runtime: the pod's root is a directory, `<pod dir>/rootfs`. Every
//! absolute path in the container's command, args, env values and in the files of its
//! ConfigMap and Secret volumes that starts with the image's working directory ([`WORKDIR`],
//! `/qdrant`) or is [`TERMINATION_LOG`] is rewritten under that root; each volume mount is a
//! symlink there to the volume's host directory (or file, for a `subPath`): a claim's
//! directory (kept across pod restarts and recreation, [`RealCluster::wipe_volume`] empties
//! it), an `emptyDir` (new for each pod), a ConfigMap or Secret written out again before each
//! container start with the volume's `defaultMode` (0644 when unset; the Helm chart's start
//! script is executable through its 0755). The image's `./entrypoint.sh` is a stub that runs the Qdrant binary with
//! the same arguments (as the official image's does), dying with its parent process as every
//! process of a container dies with the container's first.
//!
//! # Volume snapshots
//!
//! With [`RealCluster::with_snapshots`] the harness also plays a CSI driver with snapshot
//! support ([`FAKE_CSI_DRIVER`]) and the external-snapshotter, for its own claims: a
//! `snapshot.storage.k8s.io/v1` VolumeSnapshot naming one of them in
//! `spec.source.persistentVolumeClaimName` is cut by copying the claim's directory into the
//! [`SnapshotStore`] (its class must exist with that driver, else `status.error`), with a
//! VolumeSnapshotContent and `status.readyToUse: true`; a claim created beforehand with a
//! VolumeSnapshot `dataSource` starts as a copy of it once it is ready (its pod waits until
//! then). The copy is a file copy of a running Qdrant's files, not a point-in-time block
//! snapshot: faithful only while nothing writes to the volume meanwhile.
//!
//! Needs write access to `/etc/hosts` (root, as on the project's machines and CI).

use std::{
    collections::{BTreeMap, HashMap},
    io::{Read, Seek, Write},
    net::{IpAddr, Ipv4Addr, SocketAddr, TcpListener},
    path::{Path, PathBuf},
    process::ExitStatus,
    sync::{Arc, Mutex},
    time::Duration,
};

use k8s_openapi::{
    ByteString,
    api::core::v1::{ConfigMap, Secret},
};
use serde_json::{Value, json};
use tokio::{process::Command, task::JoinHandle};

use crate::{
    apiserver::FakeApiServer,
    real_qdrant::{QdrantProcess, log_tail},
};

/// The working directory of Qdrant's image, where `./entrypoint.sh`, `config/` and the volumes
/// live.
pub const WORKDIR: &str = "/qdrant";
/// The container's termination message file (Kubernetes' default `terminationMessagePath`).
pub const TERMINATION_LOG: &str = "/dev/termination-log";
/// Environment of Qdrant's image (`RUN_MODE=production` makes Qdrant read
/// `config/production.yaml`).
const IMAGE_ENV: &[(&str, &str)] = &[("RUN_MODE", "production")];
/// The tag of this harness's lines in `/etc/hosts`.
const HOSTS_TAG: &str = "# qdrant-operator-real-cluster";
/// Where the pods' names are written.
const HOSTS_FILE: &str = "/etc/hosts";
/// First back-off before a container that exited is started again, doubled after each exit
/// up to [`MAX_RESTART_BACKOFF`] (the kubelet's CrashLoopBackOff starts at 10 s too; it caps at
/// 5 min, shortened here to keep scenarios short). Faithfulness matters: a peer that failed
/// its first join because pod 0 was not listening yet retries only once pod 0 has a Raft
/// leader (Qdrant needs about 4 s at its default tick), as in a cluster.
const RESTART_BACKOFF: Duration = Duration::from_secs(10);
/// Longest back-off between two starts.
const MAX_RESTART_BACKOFF: Duration = Duration::from_secs(40);
/// Grace period of a deleted pod's process before SIGKILL.
const TERMINATION_GRACE: Duration = Duration::from_secs(10);
/// How often the controller loop looks at the fake API server.
const TICK: Duration = Duration::from_millis(100);

/// The real peers of one StatefulSet. Dropping it kills every process and removes its
/// `/etc/hosts` lines.
pub struct RealCluster {
    inner: Arc<Inner>,
    task: JoinHandle<()>,
}

struct Inner {
    api: FakeApiServer,
    binary: PathBuf,
    namespace: String,
    name: String,
    slot: u8,
    dir: tempfile::TempDir,
    pods: Mutex<HashMap<u32, PodHandle>>,
    /// Ordinals the StatefulSet controller leaves alone for now (a volume being wiped).
    paused: Mutex<std::collections::HashSet<u32>>,
    /// The fake CSI snapshotter's store, once [`RealCluster::with_snapshots`] turned it on.
    snapshots: Mutex<Option<SnapshotStore>>,
}

/// The CSI driver name of [`RealCluster`]'s fake snapshotter: a VolumeSnapshotClass must name
/// it in `driver` for the snapshotter to take its snapshots.
pub const FAKE_CSI_DRIVER: &str = "fake.csi.qdrant.operator.dev";

/// Where the fake CSI snapshotter of [`RealCluster::with_snapshots`] keeps its snapshots: one
/// directory per VolumeSnapshotContent, outliving the clusters whose claims were snapshotted
/// (as a storage system's snapshots outlive the volumes). Cloning shares the store; the last
/// clone dropped removes it.
#[derive(Clone)]
pub struct SnapshotStore {
    dir: Arc<tempfile::TempDir>,
}

impl SnapshotStore {
    /// An empty store in a new temporary directory. Errors: the directory cannot be made.
    pub fn new() -> Result<Self, String> {
        let dir = tempfile::Builder::new()
            .prefix("fake-csi-snapshots-")
            .tempdir()
            .map_err(|e| e.to_string())?;
        Ok(Self { dir: Arc::new(dir) })
    }

    /// The directory of VolumeSnapshotContent `content`.
    pub fn content_dir(&self, content: &str) -> PathBuf {
        self.dir.path().join(content)
    }
}

/// A pod the harness runs.
struct PodHandle {
    uid: String,
    stop: tokio::sync::watch::Sender<Stop>,
    task: JoinHandle<()>,
}

/// What the kubelet loop of a pod is asked to do.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Stop {
    /// Keep running.
    Run,
    /// The pod was deleted: SIGTERM, grace period, SIGKILL; then end.
    Delete,
    /// Kill the process now (SIGKILL) and let the restart policy start it again.
    Crash,
}

impl RealCluster {
    /// Starts the harness for StatefulSet `namespace/name` in `api` (which may not exist yet),
    /// running `binary` for each pod.
    ///
    /// Errors: no free address slot, or `/etc/hosts` cannot be written.
    pub fn start(
        api: &FakeApiServer,
        namespace: &str,
        name: &str,
        binary: &Path,
        max_pods: u32,
    ) -> Result<Self, String> {
        let dir = tempfile::Builder::new()
            .prefix("real-cluster-")
            .tempdir()
            .map_err(|e| e.to_string())?;
        let slot = reserve_slot(namespace, name, max_pods)?;
        let inner = Arc::new(Inner {
            api: api.clone(),
            binary: binary.to_path_buf(),
            namespace: namespace.to_owned(),
            name: name.to_owned(),
            slot,
            dir,
            pods: Mutex::new(HashMap::new()),
            paused: Mutex::new(std::collections::HashSet::new()),
            snapshots: Mutex::new(None),
        });
        let task = tokio::spawn(controller_loop(inner.clone()));
        Ok(Self { inner, task })
    }

    /// Turns on the fake CSI snapshotter for this StatefulSet's claims, keeping snapshots in
    /// `store` (see the module documentation, "Volume snapshots").
    pub fn with_snapshots(self, store: &SnapshotStore) -> Self {
        *self
            .inner
            .snapshots
            .lock()
            .unwrap_or_else(|e| e.into_inner()) = Some(store.clone());
        self
    }

    /// The loopback address of pod `ordinal`.
    pub fn pod_ip(&self, ordinal: u32) -> IpAddr {
        pod_ip(self.inner.slot, ordinal)
    }

    /// The host directory of pod `ordinal`'s claim of template `claim` (e.g. `storage`).
    pub fn volume_dir(&self, claim: &str, ordinal: u32) -> PathBuf {
        self.inner
            .claim_dir(&format!("{claim}-{}-{ordinal}", self.inner.name))
    }

    /// The Qdrant log of pod `ordinal` (every container start appends to it).
    pub fn log_path(&self, ordinal: u32) -> PathBuf {
        self.inner.pod_dir(ordinal).join("container.log")
    }

    /// The last `lines` lines of pod `ordinal`'s log.
    pub fn log_tail(&self, ordinal: u32, lines: usize) -> String {
        log_tail(&self.log_path(ordinal), lines)
    }

    /// The REST requests pod `ordinal`'s Qdrant served, from its access log, as
    /// `(method, path with query, status)`, in order, over every container start of the pod.
    pub fn requests(&self, ordinal: u32) -> Vec<(String, String, u16)> {
        let text = std::fs::read_to_string(self.log_path(ordinal)).unwrap_or_default();
        text.lines()
            .filter(|l| l.contains("actix_web::middleware::logger"))
            .filter_map(|l| {
                // ... 127.0.0.1 "POST /collections/c/cluster HTTP/1.1" 200 ...
                let (_, rest) = l.split_once('"')?;
                let (request, after) = rest.split_once('"')?;
                let mut parts = request.split_whitespace();
                let (method, path) = (parts.next()?, parts.next()?);
                let status = after.split_whitespace().next()?.parse().ok()?;
                Some((method.to_owned(), path.to_owned(), status))
            })
            .collect()
    }

    /// Kills pod `ordinal`'s Qdrant process with SIGKILL, as a crash or an OOM kill would (the
    /// container's first process, the start script, sees it stop); the kubelet records the
    /// termination and starts the container again (storage intact).
    pub fn crash(&self, ordinal: u32) {
        if let Some(pod) = self.lock().get(&ordinal) {
            let _ = pod.stop.send(Stop::Crash);
        }
    }

    /// Loses pod `ordinal`'s data volume, as a node whose local disk died: the process is
    /// killed, the claim's directory emptied, and the pod deleted (the StatefulSet controller
    /// recreates it on the empty volume).
    pub async fn wipe_volume(&self, claim: &str, ordinal: u32) {
        self.inner.paused().insert(ordinal);
        let pod = format!("{}-{ordinal}", self.inner.name);
        self.inner
            .api
            .remove("v1", "pods", Some(&self.inner.namespace), &pod);
        let handle = self.lock().remove(&ordinal);
        if let Some(pod) = handle {
            let _ = pod.stop.send(Stop::Delete);
            let _ = pod.task.await;
        }
        let dir = self.volume_dir(claim, ordinal);
        let _ = std::fs::remove_dir_all(&dir);
        let _ = std::fs::create_dir_all(&dir);
        self.inner.paused().remove(&ordinal);
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<u32, PodHandle>> {
        self.inner.pods.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl Drop for RealCluster {
    fn drop(&mut self) {
        self.task.abort();
        // Dropping the handles aborts their tasks, whose processes are killed on drop.
        for (_, pod) in self.lock().drain() {
            pod.task.abort();
        }
        release_slot(self.inner.slot);
    }
}

fn pod_ip(slot: u8, ordinal: u32) -> IpAddr {
    IpAddr::V4(Ipv4Addr::new(
        127,
        77,
        slot,
        u8::try_from(ordinal + 1).unwrap_or(u8::MAX),
    ))
}

impl Inner {
    fn paused(&self) -> std::sync::MutexGuard<'_, std::collections::HashSet<u32>> {
        self.paused.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn pod_name(&self, ordinal: u32) -> String {
        format!("{}-{ordinal}", self.name)
    }

    fn pod_dir(&self, ordinal: u32) -> PathBuf {
        self.dir.path().join("pods").join(self.pod_name(ordinal))
    }

    fn claim_dir(&self, claim: &str) -> PathBuf {
        self.dir.path().join("claims").join(claim)
    }

    fn sts(&self) -> Option<Value> {
        self.api
            .get("apps/v1", "statefulsets", Some(&self.namespace), &self.name)
    }

    /// Secret `name` of the namespace, decoded.
    fn secret(&self, name: &str) -> Result<Secret, String> {
        let obj = self
            .api
            .get("v1", "secrets", Some(&self.namespace), name)
            .ok_or_else(|| format!("Secret {name} not found"))?;
        serde_json::from_value(obj).map_err(|e| format!("Secret {name}: {e}"))
    }

    /// ConfigMap `name` of the namespace, decoded.
    fn config_map(&self, name: &str) -> Result<ConfigMap, String> {
        let obj = self
            .api
            .get("v1", "configmaps", Some(&self.namespace), name)
            .ok_or_else(|| format!("ConfigMap {name} not found"))?;
        serde_json::from_value(obj).map_err(|e| format!("ConfigMap {name}: {e}"))
    }

    fn pod(&self, ordinal: u32) -> Option<Value> {
        self.api
            .get("v1", "pods", Some(&self.namespace), &self.pod_name(ordinal))
    }

    fn edit_pod_status(&self, ordinal: u32, uid: &str, f: impl FnOnce(&mut Value)) {
        self.api.edit(
            "v1",
            "pods",
            Some(&self.namespace),
            &self.pod_name(ordinal),
            |pod| {
                if pod["metadata"]["uid"].as_str() == Some(uid) {
                    f(&mut pod["status"]);
                }
            },
        );
    }
}

// ---------------------------------------------------------------------------------------------
// /etc/hosts
// ---------------------------------------------------------------------------------------------

/// Picks a free `127.77.<slot>.0/24` (no harness line in `/etc/hosts` names it and its first
/// address's Qdrant ports are free), and writes the DNS names of pods `0..max_pods` of
/// `namespace/name` there, under an exclusive lock of the file.
fn reserve_slot(namespace: &str, name: &str, max_pods: u32) -> Result<u8, String> {
    with_hosts(|text| {
        // Lines of harnesses whose process is gone (killed before it could clean up) would
        // shadow these names: drop them.
        *text = text
            .lines()
            .filter(|l| {
                let Some((_, tag)) = l.split_once(HOSTS_TAG) else {
                    return true;
                };
                let pid = tag
                    .split_whitespace()
                    .nth(1)
                    .and_then(|p| p.parse::<u32>().ok());
                pid.is_some_and(|pid| Path::new("/proc").join(pid.to_string()).exists())
            })
            .map(|l| format!("{l}\n"))
            .collect();
        let start = (std::process::id() % 250) as u8;
        for i in 0..250u16 {
            let slot = ((u16::from(start) + i) % 250 + 1) as u8;
            let taken = format!("{HOSTS_TAG} {slot} ");
            if text.lines().any(|l| l.contains(&taken)) {
                continue;
            }
            let tag = format!("{HOSTS_TAG} {slot} {}", std::process::id());
            let free = [6333, 6334, 6335]
                .iter()
                .all(|port| TcpListener::bind(SocketAddr::new(pod_ip(slot, 0), *port)).is_ok());
            if !free {
                continue;
            }
            let service = format!("{name}-headless");
            let mut lines = String::new();
            for ordinal in 0..max_pods {
                let short = format!("{name}-{ordinal}.{service}");
                let host = format!("{short}.{namespace}.svc");
                lines.push_str(&format!(
                    "{} {host} {host}.cluster.local {short} {tag}\n",
                    pod_ip(slot, ordinal)
                ));
            }
            let client = format!("{name}.{namespace}.svc");
            lines.push_str(&format!(
                "{} {client} {client}.cluster.local {tag}\n",
                pod_ip(slot, 0)
            ));
            if !text.ends_with('\n') && !text.is_empty() {
                text.push('\n');
            }
            text.push_str(&lines);
            return Ok(slot);
        }
        Err("no free 127.77.x.0/24 slot for the pods' addresses".into())
    })
}

fn release_slot(slot: u8) {
    let tag = format!("{HOSTS_TAG} {slot} {}", std::process::id());
    let _ = with_hosts(|text| {
        *text = text
            .lines()
            .filter(|l| !l.ends_with(&tag))
            .map(|l| format!("{l}\n"))
            .collect();
        Ok(())
    });
}

/// Runs `f` on `/etc/hosts`' text under an exclusive lock and writes the result back in place.
fn with_hosts<T>(f: impl FnOnce(&mut String) -> Result<T, String>) -> Result<T, String> {
    let mut file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(HOSTS_FILE)
        .map_err(|e| {
            format!("{HOSTS_FILE}: {e} (the real-peer harness needs to write the pods' names)")
        })?;
    file.lock()
        .map_err(|e| format!("locking {HOSTS_FILE}: {e}"))?;
    let mut text = String::new();
    file.read_to_string(&mut text)
        .map_err(|e| format!("{HOSTS_FILE}: {e}"))?;
    let out = f(&mut text)?;
    file.set_len(0).map_err(|e| e.to_string())?;
    file.rewind().map_err(|e| e.to_string())?;
    file.write_all(text.as_bytes()).map_err(|e| e.to_string())?;
    Ok(out)
}

// ---------------------------------------------------------------------------------------------
// StatefulSet controller
// ---------------------------------------------------------------------------------------------

async fn controller_loop(inner: Arc<Inner>) {
    let mut current_revision: Option<String> = None;
    loop {
        if let Some(sts) = inner.sts() {
            sync(&inner, &sts, &mut current_revision);
        }
        tokio::time::sleep(TICK).await;
    }
}

/// The revision hash of a pod template: 10 hex digits of a stable hash of its JSON.
fn revision(template: &Value) -> String {
    // FNV-1a: stable across processes and Rust versions (unlike `DefaultHasher`).
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for byte in template.to_string().bytes() {
        hash ^= u64::from(byte);
        hash = hash.wrapping_mul(0x0100_0000_01b3);
    }
    format!("{:010x}", hash & 0xff_ffff_ffff)
}

fn sync(inner: &Arc<Inner>, sts: &Value, current_revision: &mut Option<String>) {
    let replicas = sts["spec"]["replicas"].as_u64().unwrap_or(1) as u32;
    let template = &sts["spec"]["template"];
    let update = format!("{}-{}", inner.name, revision(template));
    let current = current_revision
        .get_or_insert_with(|| update.clone())
        .clone();
    let mut pods = inner.pods.lock().unwrap_or_else(|e| e.into_inner());

    // Pods deleted through the API (or finished) are stopped and forgotten.
    pods.retain(|ordinal, handle| {
        let alive = inner
            .pod(*ordinal)
            .is_some_and(|p| p["metadata"]["uid"].as_str() == Some(handle.uid.as_str()));
        if !alive {
            let _ = handle.stop.send(Stop::Delete);
        }
        alive || !handle.task.is_finished()
    });
    let deleting: Vec<u32> = pods
        .iter()
        .filter(|(o, h)| {
            inner
                .pod(**o)
                .is_none_or(|p| p["metadata"]["uid"].as_str() != Some(h.uid.as_str()))
        })
        .map(|(o, _)| *o)
        .collect();

    let store = inner
        .snapshots
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .clone();
    if let Some(store) = &store {
        take_snapshots(inner, store);
    }
    let paused = inner.paused().clone();
    for ordinal in 0..replicas {
        if paused.contains(&ordinal) {
            continue;
        }
        if !ensure_claims(inner, sts, ordinal, store.as_ref()) {
            continue; // a claim waits for its snapshot: the pod waits too
        }
        if deleting.contains(&ordinal) {
            continue; // the old process is still stopping
        }
        if let Some(pod) = inner.pod(ordinal) {
            // A pod the harness did not create (or from before): run it.
            if let std::collections::hash_map::Entry::Vacant(slot) = pods.entry(ordinal) {
                let uid = pod["metadata"]["uid"]
                    .as_str()
                    .unwrap_or_default()
                    .to_owned();
                slot.insert(spawn_pod(inner, ordinal, uid, pod));
            }
            continue;
        }
        let pod = inner.api.insert(new_pod(inner, sts, ordinal, &update));
        let uid = pod["metadata"]["uid"]
            .as_str()
            .unwrap_or_default()
            .to_owned();
        pods.insert(ordinal, spawn_pod(inner, ordinal, uid, pod));
    }
    // Scale-down: ordinals at or above replicas go (their claims stay).
    for (ordinal, _) in pods.iter().filter(|(o, _)| **o >= replicas) {
        inner.api.remove(
            "v1",
            "pods",
            Some(&inner.namespace),
            &inner.pod_name(*ordinal),
        );
    }
    drop(pods);
    let rolling_update = sts["spec"]["updateStrategy"]["type"]
        .as_str()
        .is_none_or(|t| t == "RollingUpdate");
    if rolling_update {
        roll_one(inner, replicas, &update);
    }

    let listed: Vec<Value> = (0..replicas.max(16)).filter_map(|o| inner.pod(o)).collect();
    let ready = listed.iter().filter(|p| pod_ready(p)).count();
    let rev = |p: &Value| {
        p["metadata"]["labels"]["controller-revision-hash"]
            .as_str()
            .map(str::to_owned)
    };
    let updated = listed
        .iter()
        .filter(|p| rev(p).as_deref() == Some(update.as_str()))
        .count();
    // Under RollingUpdate Kubernetes moves `currentRevision` once every pod is updated.
    let current = if rolling_update && updated == listed.len() && listed.len() == replicas as usize
    {
        *current_revision = Some(update.clone());
        update.clone()
    } else {
        current
    };
    let currents = listed
        .iter()
        .filter(|p| rev(p).as_deref() == Some(current.as_str()))
        .count();
    let status = json!({
        "replicas": listed.len(),
        "readyReplicas": ready,
        "availableReplicas": ready,
        "currentReplicas": currents,
        "updatedReplicas": updated,
        "currentRevision": current,
        "updateRevision": update,
        "observedGeneration": sts["metadata"]["generation"],
    });
    if sts["status"] != status {
        inner.api.edit(
            "apps/v1",
            "statefulsets",
            Some(&inner.namespace),
            &inner.name,
            |s| s["status"] = status,
        );
    }
}

/// The `RollingUpdate` strategy's step: while every pod `0..replicas` exists and is ready,
/// deletes the highest-ordinal one not at `update` (the loop recreates it at `update`).
fn roll_one(inner: &Inner, replicas: u32, update: &str) {
    let pods: Vec<Value> = (0..replicas).filter_map(|o| inner.pod(o)).collect();
    if pods.len() != replicas as usize || !pods.iter().all(pod_ready) {
        return;
    }
    let outdated = (0..replicas).rev().find(|o| {
        pods[*o as usize]["metadata"]["labels"]["controller-revision-hash"].as_str() != Some(update)
    });
    if let Some(ordinal) = outdated {
        inner.api.remove(
            "v1",
            "pods",
            Some(&inner.namespace),
            &inner.pod_name(ordinal),
        );
    }
}

fn pod_ready(pod: &Value) -> bool {
    pod["status"]["conditions"].as_array().is_some_and(|cs| {
        cs.iter()
            .any(|c| c["type"] == "Ready" && c["status"] == "True")
    })
}

/// Makes sure pod `ordinal`'s claims exist (created from the templates when missing, as the
/// StatefulSet controller does; an existing claim is adopted by name). A claim created
/// beforehand with a VolumeSnapshot `dataSource` starts as a copy of that snapshot once it is
/// ready; until then (or without a snapshotter) it stays Pending and `false` is returned.
fn ensure_claims(inner: &Inner, sts: &Value, ordinal: u32, store: Option<&SnapshotStore>) -> bool {
    let Some(templates) = sts["spec"]["volumeClaimTemplates"].as_array() else {
        return true;
    };
    let mut ready = true;
    for template in templates {
        let Some(claim) = template["metadata"]["name"].as_str() else {
            continue;
        };
        let name = format!("{claim}-{}", inner.pod_name(ordinal));
        let dir = inner.claim_dir(&name);
        if let Some(pvc) = inner.api.get(
            "v1",
            "persistentvolumeclaims",
            Some(&inner.namespace),
            &name,
        ) {
            if !dir.exists() {
                ready &= provision_existing(inner, &pvc, &dir, store);
            }
            continue;
        }
        let _ = std::fs::create_dir_all(&dir);
        let mut spec = template["spec"].clone();
        spec["volumeName"] = json!(format!("pv-{}-{name}", inner.namespace));
        let mut labels = template["metadata"]["labels"].clone();
        if labels.is_null() {
            labels = json!({});
        }
        inner.api.insert(json!({
            "apiVersion": "v1", "kind": "PersistentVolumeClaim",
            "metadata": {"name": name, "namespace": inner.namespace, "labels": labels},
            "spec": spec,
            "status": {"phase": "Bound",
                "accessModes": template["spec"]["accessModes"],
                "capacity": {"storage": template["spec"]["resources"]["requests"]["storage"]}},
        }));
    }
    ready
}

// ---------------------------------------------------------------------------------------------
// Volume snapshots (a CSI driver with snapshot support, and the external-snapshotter)
// ---------------------------------------------------------------------------------------------

/// Provisions the volume of claim `pvc` that someone else created (the operator's restore):
/// empty, or, with a `dataSource` of kind VolumeSnapshot, a copy of that snapshot's content.
/// Then the claim is Bound. `false` while it must wait (snapshot not ready, no snapshotter).
fn provision_existing(
    inner: &Inner,
    pvc: &Value,
    dir: &Path,
    store: Option<&SnapshotStore>,
) -> bool {
    let source = &pvc["spec"]["dataSource"];
    if source["kind"] == "VolumeSnapshot" {
        let Some(store) = store else {
            return false;
        };
        let Some(content) = source["name"].as_str().and_then(|snapshot| {
            let vs = inner.api.get(
                "snapshot.storage.k8s.io/v1",
                "volumesnapshots",
                Some(&inner.namespace),
                snapshot,
            )?;
            (vs["status"]["readyToUse"] == true)
                .then(|| {
                    vs["status"]["boundVolumeSnapshotContentName"]
                        .as_str()
                        .map(str::to_owned)
                })
                .flatten()
        }) else {
            return false;
        };
        if copy_dir(&store.content_dir(&content), dir).is_err() {
            let _ = std::fs::remove_dir_all(dir);
            return false;
        }
    } else if std::fs::create_dir_all(dir).is_err() {
        return false;
    }
    let name = pvc["metadata"]["name"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    let volume = format!("pv-{}-{name}", inner.namespace);
    inner.api.edit(
        "v1",
        "persistentvolumeclaims",
        Some(&inner.namespace),
        &name,
        |claim| {
            claim["spec"]["volumeName"] = json!(volume);
            claim["status"] = json!({"phase": "Bound",
                "accessModes": claim["spec"]["accessModes"],
                "capacity": {"storage": claim["spec"]["resources"]["requests"]["storage"]}});
        },
    );
    true
}

/// The external-snapshotter and the CSI driver for this StatefulSet's claims: every
/// VolumeSnapshot of the namespace whose `spec.source.persistentVolumeClaimName` is one of
/// this harness's claims and that is neither ready nor failed is cut now: its class must exist
/// with driver [`FAKE_CSI_DRIVER`] (else `status.error`, as the snapshotter reports it); the
/// claim's directory is copied into the store, a VolumeSnapshotContent bound to it (its
/// `status.snapshotHandle` is the copy's path), and the snapshot's status says
/// `readyToUse: true` with `boundVolumeSnapshotContentName` and `restoreSize`.
fn take_snapshots(inner: &Inner, store: &SnapshotStore) {
    let group = "snapshot.storage.k8s.io/v1";
    for vs in inner
        .api
        .list(group, "volumesnapshots", Some(&inner.namespace))
    {
        if vs["status"]["readyToUse"] == true || vs["status"]["error"].is_object() {
            continue;
        }
        let Some(claim) = vs["spec"]["source"]["persistentVolumeClaimName"].as_str() else {
            continue;
        };
        let claim_dir = inner.claim_dir(claim);
        if !claim_dir.exists() {
            continue; // not one of this harness's claims
        }
        let name = vs["metadata"]["name"]
            .as_str()
            .unwrap_or_default()
            .to_owned();
        let uid = vs["metadata"]["uid"]
            .as_str()
            .unwrap_or_default()
            .to_owned();
        let class_name = vs["spec"]["volumeSnapshotClassName"]
            .as_str()
            .unwrap_or_default()
            .to_owned();
        let class = inner
            .api
            .get(group, "volumesnapshotclasses", None, &class_name);
        let failure = match &class {
            None => Some(format!(
                "failed to get input parameters to create snapshot {name}: \"volumesnapshotclass.snapshot.storage.k8s.io \\\"{class_name}\\\" not found\""
            )),
            Some(c) if c["driver"] != FAKE_CSI_DRIVER => Some(format!(
                "snapshot controller failed to update {name}: driver {} of VolumeSnapshotClass {class_name} does not match the volume's driver {FAKE_CSI_DRIVER}",
                c["driver"]
            )),
            Some(_) => None,
        };
        let pvc = inner.api.get(
            "v1",
            "persistentvolumeclaims",
            Some(&inner.namespace),
            claim,
        );
        let failure = failure.or_else(|| {
            pvc.is_none().then(|| {
                format!("failed to take snapshot {name}: PersistentVolumeClaim {claim} not found")
            })
        });
        let content = format!("snapcontent-{uid}");
        let copied = match failure {
            Some(message) => Err(message),
            None => copy_dir(&claim_dir, &store.content_dir(&content))
                .map_err(|e| format!("failed to take snapshot {name}: copying the volume: {e}")),
        };
        let at = now();
        let status = match copied {
            Err(message) => json!({"readyToUse": false,
                "error": {"message": message, "time": at}}),
            Ok(()) => {
                let size = pvc
                    .as_ref()
                    .map(|p| p["status"]["capacity"]["storage"].clone())
                    .unwrap_or(Value::Null);
                inner.api.insert(json!({
                    "apiVersion": group, "kind": "VolumeSnapshotContent",
                    "metadata": {"name": content},
                    "spec": {
                        "deletionPolicy": class.as_ref().map(|c| c["deletionPolicy"].clone()),
                        "driver": FAKE_CSI_DRIVER,
                        "source": {"volumeHandle": format!("pv-{}-{claim}", inner.namespace)},
                        "volumeSnapshotClassName": class_name,
                        "volumeSnapshotRef": {"kind": "VolumeSnapshot", "name": name,
                            "namespace": inner.namespace, "uid": uid},
                    },
                    "status": {"readyToUse": true, "creationTime": jiff::Timestamp::now().as_nanosecond() as i64,
                        "snapshotHandle": store.content_dir(&content).display().to_string()},
                }));
                json!({"readyToUse": true, "boundVolumeSnapshotContentName": content,
                    "creationTime": at, "restoreSize": size})
            }
        };
        inner.api.edit(
            group,
            "volumesnapshots",
            Some(&inner.namespace),
            &name,
            |v| {
                if v["metadata"]["uid"] == uid.as_str() {
                    v["status"] = status;
                }
            },
        );
    }
}

/// Copies directory `from` to `to` (created), recursively: files, directories and symlinks.
fn copy_dir(from: &Path, to: &Path) -> std::io::Result<()> {
    std::fs::create_dir_all(to)?;
    for entry in std::fs::read_dir(from)? {
        let entry = entry?;
        let target = to.join(entry.file_name());
        let kind = entry.file_type()?;
        if kind.is_dir() {
            copy_dir(&entry.path(), &target)?;
        } else if kind.is_symlink() {
            std::os::unix::fs::symlink(std::fs::read_link(entry.path())?, &target)?;
        } else {
            std::fs::copy(entry.path(), &target)?;
        }
    }
    Ok(())
}

fn new_pod(inner: &Inner, sts: &Value, ordinal: u32, revision: &str) -> Value {
    let template = &sts["spec"]["template"];
    let name = inner.pod_name(ordinal);
    let mut metadata = template["metadata"].clone();
    if !metadata.is_object() {
        metadata = json!({});
    }
    metadata["name"] = json!(name);
    metadata["namespace"] = json!(inner.namespace);
    if !metadata["labels"].is_object() {
        metadata["labels"] = json!({});
    }
    metadata["labels"]["controller-revision-hash"] = json!(revision);
    metadata["labels"]["statefulset.kubernetes.io/pod-name"] = json!(name);
    metadata["labels"]["apps.kubernetes.io/pod-index"] = json!(ordinal.to_string());
    metadata["ownerReferences"] = json!([{
        "apiVersion": "apps/v1", "kind": "StatefulSet", "name": inner.name,
        "uid": sts["metadata"]["uid"], "controller": true, "blockOwnerDeletion": true,
    }]);
    let mut spec = template["spec"].clone();
    spec["hostname"] = json!(name);
    spec["subdomain"] = sts["spec"]["serviceName"].clone();
    spec["nodeName"] = json!(format!("node-{ordinal}"));
    json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": metadata,
        "spec": spec,
        "status": {"phase": "Pending", "podIP": pod_ip(inner.slot, ordinal).to_string(),
            "conditions": [{"type": "Ready", "status": "False"}]},
    })
}

// ---------------------------------------------------------------------------------------------
// Kubelet
// ---------------------------------------------------------------------------------------------

fn spawn_pod(inner: &Arc<Inner>, ordinal: u32, uid: String, pod: Value) -> PodHandle {
    let (stop, stop_rx) = tokio::sync::watch::channel(Stop::Run);
    let task = tokio::spawn(kubelet(inner.clone(), ordinal, uid.clone(), pod, stop_rx));
    PodHandle { uid, stop, task }
}

/// One container instance's outcome.
struct Terminated {
    exit_code: i64,
    reason: &'static str,
    message: String,
}

async fn kubelet(
    inner: Arc<Inner>,
    ordinal: u32,
    uid: String,
    pod: Value,
    mut stop: tokio::sync::watch::Receiver<Stop>,
) {
    let pod_dir = inner.pod_dir(ordinal);
    // A new pod: new emptyDirs, a fresh root (the log goes on: `RealCluster::requests`).
    for dir in ["rootfs", "empty", "volumes"] {
        let _ = std::fs::remove_dir_all(pod_dir.join(dir));
    }
    let _ = std::fs::create_dir_all(&pod_dir);
    let rootfs = pod_dir.join("rootfs");
    let log = pod_dir.join("container.log");
    let mut restarts = 0u32;
    let mut last: Option<Terminated> = None;
    loop {
        if *stop.borrow() == Stop::Delete {
            return;
        }
        let started = now();
        let process = match start_container(&inner, ordinal, &pod, &rootfs, &log) {
            Ok(p) => p,
            Err(e) => {
                note(&log, &format!("cannot start: {e}"));
                last = Some(Terminated {
                    exit_code: 128,
                    reason: "StartError",
                    message: e,
                });
                tokio::time::sleep(RESTART_BACKOFF).await;
                continue;
            }
        };
        let _ = stop.borrow_and_update();
        let mut process = process;
        set_container_status(
            &inner,
            ordinal,
            &uid,
            restarts,
            &last,
            Some(&started),
            false,
        );
        let probe = readiness_probe(&pod, pod_ip(inner.slot, ordinal));
        let mut ready = false;
        let outcome = loop {
            tokio::select! {
                status = process.wait() => break Outcome::Exited(status.ok()),
                changed = stop.changed() => {
                    let what = if changed.is_err() { Stop::Delete } else { *stop.borrow() };
                    match what {
                        Stop::Run => {}
                        Stop::Crash => { crash(&mut process).await; break Outcome::Exited(process.wait().await.ok()); }
                        Stop::Delete => { terminate(&mut process).await; break Outcome::Deleted; }
                    }
                }
                () = tokio::time::sleep(Duration::from_millis(500)) => {
                    let now = match &probe { Some(p) => p.check().await, None => true };
                    if now != ready {
                        ready = now;
                        set_container_status(&inner, ordinal, &uid, restarts, &last, Some(&started), ready);
                    }
                }
            }
        };
        let status = match outcome {
            Outcome::Deleted => return,
            Outcome::Exited(status) => status,
        };
        let message = std::fs::read_to_string(rootfs.join(TERMINATION_LOG.trim_start_matches('/')))
            .unwrap_or_default();
        let exit_code = exit_code(status);
        last = Some(Terminated {
            exit_code,
            reason: if exit_code == 0 { "Completed" } else { "Error" },
            message,
        });
        restarts += 1;
        set_container_status(&inner, ordinal, &uid, restarts, &last, None, false);
        note(&log, &format!("container exited with {exit_code}"));
        let backoff = RESTART_BACKOFF
            .saturating_mul(1 << restarts.saturating_sub(1).min(8))
            .min(MAX_RESTART_BACKOFF);
        tokio::select! {
            () = tokio::time::sleep(backoff) => {}
            _ = stop.changed() => {}
        }
    }
}

/// Appends a line of the harness's own to a pod's log.
fn note(log: &Path, line: &str) {
    let _ = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(log)
        .and_then(|mut f| writeln!(f, "[real-cluster] {line}"));
}

/// Now, to the second (as the API server's timestamps).
fn now() -> String {
    jiff::Timestamp::from_second(jiff::Timestamp::now().as_second())
        .map(|t| t.to_string())
        .unwrap_or_default()
}

enum Outcome {
    Exited(Option<ExitStatus>),
    Deleted,
}

/// Kubernetes' exit code: the process's, or 128 + the signal that killed it.
fn exit_code(status: Option<ExitStatus>) -> i64 {
    use std::os::unix::process::ExitStatusExt;
    match status {
        Some(s) => s
            .code()
            .map(i64::from)
            .or_else(|| s.signal().map(|sig| 128 + i64::from(sig)))
            .unwrap_or(-1),
        None => -1,
    }
}

/// A crash of the container's Qdrant: SIGKILL to the container process's children (the
/// start script runs Qdrant as its child and then records how it stopped), or to the process
/// itself when it has none (a command that `exec`s Qdrant).
async fn crash(process: &mut QdrantProcess) {
    let children = process.id().map(children_of).unwrap_or_default();
    if children.is_empty() {
        process.kill().await;
        return;
    }
    for pid in children {
        let _ = Command::new("kill")
            .arg("-KILL")
            .arg(pid.to_string())
            .status()
            .await;
    }
}

/// The processes whose parent is `pid` (from `/proc/<pid>/stat`).
fn children_of(pid: u32) -> Vec<u32> {
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    dir.filter_map(|e| {
        let child: u32 = e.ok()?.file_name().to_str()?.parse().ok()?;
        let stat = std::fs::read_to_string(format!("/proc/{child}/stat")).ok()?;
        // `pid (comm) state ppid ...`; comm may hold spaces and parentheses.
        let (_, rest) = stat.rsplit_once(')')?;
        let ppid: u32 = rest.split_whitespace().nth(1)?.parse().ok()?;
        (ppid == pid).then_some(child)
    })
    .collect()
}

/// SIGTERM, up to [`TERMINATION_GRACE`] to exit, then SIGKILL.
async fn terminate(process: &mut QdrantProcess) {
    if let Some(pid) = process.id() {
        let _ = Command::new("kill")
            .arg("-TERM")
            .arg(pid.to_string())
            .status()
            .await;
        if tokio::time::timeout(TERMINATION_GRACE, process.wait())
            .await
            .is_ok()
        {
            return;
        }
    }
    process.kill().await;
}

fn set_container_status(
    inner: &Inner,
    ordinal: u32,
    uid: &str,
    restarts: u32,
    last: &Option<Terminated>,
    started_at: Option<&str>,
    ready: bool,
) {
    let flag = if ready { "True" } else { "False" };
    let state = match started_at {
        Some(at) => json!({"running": {"startedAt": at}}),
        None => json!({"waiting": {"reason": "CrashLoopBackOff"}}),
    };
    let last_state = match last {
        Some(t) => json!({"terminated": {"exitCode": t.exit_code, "reason": t.reason,
            "message": t.message, "finishedAt": now()}}),
        None => json!({}),
    };
    let ip = pod_ip(inner.slot, ordinal).to_string();
    inner.edit_pod_status(ordinal, uid, |status| {
        *status = json!({
            "phase": "Running",
            "podIP": ip,
            "conditions": [
                {"type": "Ready", "status": flag},
                {"type": "ContainersReady", "status": flag},
            ],
            "containerStatuses": [{
                "name": status["containerStatuses"][0]["name"].as_str().unwrap_or("qdrant"),
                "ready": ready, "started": started_at.is_some(),
                "restartCount": restarts, "state": state, "lastState": last_state,
                "image": "", "imageID": "",
            }],
        });
    });
}

/// The first container's readiness probe (HTTP GET), pointed at the pod's address.
struct Probe {
    url: String,
    client: reqwest::Client,
}

impl Probe {
    async fn check(&self) -> bool {
        matches!(self.client.get(&self.url).send().await, Ok(r) if r.status().is_success())
    }
}

fn readiness_probe(pod: &Value, ip: IpAddr) -> Option<Probe> {
    let container = &pod["spec"]["containers"][0];
    let get = &container["readinessProbe"]["httpGet"];
    if !get.is_object() {
        return None;
    }
    let port = match &get["port"] {
        Value::Number(n) => n.as_u64(),
        Value::String(name) => container["ports"].as_array().and_then(|ports| {
            ports
                .iter()
                .find(|p| p["name"].as_str() == Some(name))
                .and_then(|p| p["containerPort"].as_u64())
        }),
        _ => None,
    }?;
    let scheme = get["scheme"].as_str().unwrap_or("HTTP").to_lowercase();
    let path = get["path"].as_str().unwrap_or("/");
    reconcile_lib::qdrant::ensure_default_crypto_provider();
    let client = reqwest::Client::builder()
        .danger_accept_invalid_certs(true)
        .timeout(Duration::from_secs(3))
        .build()
        .ok()?;
    Some(Probe {
        url: format!("{scheme}://{ip}:{port}{path}"),
        client,
    })
}

/// Rewrites the image's absolute paths under the pod's root.
struct Rewrite {
    rootfs: String,
}

impl Rewrite {
    fn apply(&self, s: &str) -> String {
        s.replace(
            &format!("{WORKDIR}/"),
            &format!("{}{WORKDIR}/", self.rootfs),
        )
        .replace(
            TERMINATION_LOG,
            &format!("{}{TERMINATION_LOG}", self.rootfs),
        )
    }

    fn host(&self, path: &str) -> PathBuf {
        PathBuf::from(format!("{}{path}", self.rootfs))
    }
}

/// Lays out the pod's root (volumes, entrypoint stub, termination log) and starts the first
/// container's process.
fn start_container(
    inner: &Inner,
    ordinal: u32,
    pod: &Value,
    rootfs: &Path,
    log: &Path,
) -> Result<QdrantProcess, String> {
    let rw = Rewrite {
        rootfs: rootfs.display().to_string(),
    };
    let io = |e: std::io::Error| e.to_string();
    std::fs::create_dir_all(rw.host(WORKDIR)).map_err(io)?;
    std::fs::create_dir_all(rw.host("/dev")).map_err(io)?;
    // A new termination message file for each container instance.
    std::fs::write(rw.host(TERMINATION_LOG), b"").map_err(io)?;
    let entrypoint = rw.host(&format!("{WORKDIR}/entrypoint.sh"));
    std::fs::write(
        &entrypoint,
        // Qdrant dies with its parent, as every process of a container dies with its first.
        format!(
            "#!/bin/sh\nexec setpriv --pdeathsig KILL -- '{}' \"$@\"\n",
            inner.binary.display()
        ),
    )
    .map_err(io)?;
    set_mode(&entrypoint, 0o755)?;

    let spec = &pod["spec"];
    let container = &spec["containers"][0];
    let volumes: BTreeMap<String, Value> = spec["volumes"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|v| Some((v["name"].as_str()?.to_owned(), v.clone())))
        .collect();
    let pod_dir = inner.pod_dir(ordinal);
    for mount in container["volumeMounts"].as_array().into_iter().flatten() {
        let (Some(name), Some(path)) = (mount["name"].as_str(), mount["mountPath"].as_str()) else {
            continue;
        };
        if !path.starts_with(WORKDIR) {
            continue; // e.g. /tmp: the host's own
        }
        let source = volume_dir(inner, ordinal, &pod_dir, name, volumes.get(name), &rw)?;
        let target = match mount["subPath"].as_str() {
            Some(sub) => {
                let t = source.join(sub);
                if !t.exists() {
                    std::fs::create_dir_all(&t).map_err(io)?;
                }
                t
            }
            None => source,
        };
        let link = rw.host(path);
        if let Some(parent) = link.parent() {
            std::fs::create_dir_all(parent).map_err(io)?;
        }
        let _ = std::fs::remove_file(&link);
        std::os::unix::fs::symlink(&target, &link).map_err(io)?;
    }

    let strings = |v: &Value| -> Vec<String> {
        v.as_array()
            .into_iter()
            .flatten()
            .filter_map(|s| s.as_str().map(|s| rw.apply(s)))
            .collect()
    };
    let mut argv = strings(&container["command"]);
    argv.extend(strings(&container["args"]));
    if argv.is_empty() {
        return Err("the container has no command (the image's entrypoint is not modelled)".into());
    }
    // The process dies with the test (a test killed by a timeout cannot run its destructors;
    // the signal survives the start script's `exec`s).
    let mut cmd = Command::new("setpriv");
    cmd.arg("--pdeathsig")
        .arg("KILL")
        .arg("--")
        .args(&argv)
        .current_dir(rw.host(WORKDIR))
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("HOME", rw.host(WORKDIR));
    for (k, v) in IMAGE_ENV {
        cmd.env(k, v);
    }
    let ip = pod_ip(inner.slot, ordinal).to_string();
    for var in container["env"].as_array().into_iter().flatten() {
        let Some(name) = var["name"].as_str() else {
            continue;
        };
        let value = env_value(inner, ordinal, &ip, var)?;
        cmd.env(name, rw.apply(&value));
    }
    // The pod network: every pod on its own address, so all can use the same ports.
    cmd.env("QDRANT__SERVICE__HOST", &ip)
        .env("QDRANT__TELEMETRY_DISABLED", "true")
        .env("HOSTNAME", inner.pod_name(ordinal));
    QdrantProcess::spawn(cmd, log).map_err(|e| format!("spawning {argv:?}: {e}"))
}

fn set_mode(path: &Path, mode: u32) -> Result<(), String> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).map_err(|e| e.to_string())
}

/// The host directory of volume `name` of the pod, (re)materialized.
fn volume_dir(
    inner: &Inner,
    ordinal: u32,
    pod_dir: &Path,
    name: &str,
    volume: Option<&Value>,
    rw: &Rewrite,
) -> Result<PathBuf, String> {
    let io = |e: std::io::Error| e.to_string();
    let volume = volume.cloned().unwrap_or(Value::Null);
    let mode = |source: &Value| {
        source["defaultMode"]
            .as_u64()
            .and_then(|m| u32::try_from(m).ok())
            .unwrap_or(0o644)
    };
    if let Some(cm) = volume["configMap"]["name"].as_str() {
        let cm = inner
            .config_map(cm)
            .map_err(|e| format!("volume {name}: {e}"))?;
        let files = cm
            .data
            .unwrap_or_default()
            .into_iter()
            .map(|(k, v)| (k, v.into_bytes()));
        return write_files(pod_dir, name, files, mode(&volume["configMap"]), rw);
    }
    if let Some(secret) = volume["secret"]["secretName"].as_str() {
        let secret = inner
            .secret(secret)
            .map_err(|e| format!("volume {name}: {e}"))?;
        let files = secret
            .data
            .unwrap_or_default()
            .into_iter()
            .map(|(k, ByteString(v))| (k, v));
        return write_files(pod_dir, name, files, mode(&volume["secret"]), rw);
    }
    if volume["emptyDir"].is_object() {
        let dir = pod_dir.join("empty").join(name);
        std::fs::create_dir_all(&dir).map_err(io)?;
        return Ok(dir);
    }
    // A claim from the StatefulSet's templates (or a named claim).
    let claim = volume["persistentVolumeClaim"]["claimName"]
        .as_str()
        .map(str::to_owned)
        .unwrap_or_else(|| format!("{name}-{}", inner.pod_name(ordinal)));
    let dir = inner.claim_dir(&claim);
    std::fs::create_dir_all(&dir).map_err(io)?;
    Ok(dir)
}

/// Writes `files` into a fresh directory for volume `name` (paths inside rewritten), each
/// with permissions `mode`.
fn write_files(
    pod_dir: &Path,
    name: &str,
    files: impl Iterator<Item = (String, Vec<u8>)>,
    mode: u32,
    rw: &Rewrite,
) -> Result<PathBuf, String> {
    let io = |e: std::io::Error| e.to_string();
    let dir = pod_dir.join("volumes").join(name);
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).map_err(io)?;
    for (key, bytes) in files {
        let bytes = match String::from_utf8(bytes) {
            Ok(text) => rw.apply(&text).into_bytes(),
            Err(e) => e.into_bytes(),
        };
        std::fs::write(dir.join(&key), bytes).map_err(io)?;
        set_mode(&dir.join(&key), mode)?;
    }
    Ok(dir)
}

fn env_value(inner: &Inner, ordinal: u32, ip: &str, var: &Value) -> Result<String, String> {
    if let Some(v) = var["value"].as_str() {
        return Ok(v.to_owned());
    }
    let from = &var["valueFrom"];
    if let Some(field) = from["fieldRef"]["fieldPath"].as_str() {
        return match field {
            "metadata.name" => Ok(inner.pod_name(ordinal)),
            "metadata.namespace" => Ok(inner.namespace.clone()),
            "status.podIP" => Ok(ip.to_owned()),
            other => Err(format!("fieldRef {other} is not modelled")),
        };
    }
    if let (Some(secret), Some(key)) = (
        from["secretKeyRef"]["name"].as_str(),
        from["secretKeyRef"]["key"].as_str(),
    ) {
        let value = inner
            .secret(secret)?
            .data
            .and_then(|d| d.get(key).cloned())
            .ok_or_else(|| format!("key {key} not in Secret {secret}"))?;
        return String::from_utf8(value.0).map_err(|e| e.to_string());
    }
    if let (Some(cm), Some(key)) = (
        from["configMapKeyRef"]["name"].as_str(),
        from["configMapKeyRef"]["key"].as_str(),
    ) {
        return inner
            .config_map(cm)?
            .data
            .and_then(|d| d.get(key).cloned())
            .ok_or_else(|| format!("key {key} not in ConfigMap {cm}"));
    }
    Ok(String::new())
}
