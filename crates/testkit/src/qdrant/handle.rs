//! The handle of a running listener: start, peer views, keys, readiness.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use tokio::task::JoinHandle;
use url::Url;

use super::DEFAULT_SNAPSHOT_PADDING;
use super::options::FakeQdrantOptions;
use super::server::{Listener, Shared, State, serve};

/// A running fake Qdrant listener; stops when dropped. All setters take effect on the next
/// request. [`FakeQdrant::start`] makes the main listener; [`FakeQdrant::peer_view`] makes
/// others on the same state, each answering as one peer.
pub struct FakeQdrant {
    url: Url,
    pub(super) shared: Arc<Shared>,
    server: JoinHandle<()>,
    /// This listener's id (0 for the main listener), scoping its injected faults.
    pub(super) listener: usize,
    /// The peer this listener answers as; `None`: [`ClusterState::peer_id`].
    peer: Option<u64>,
}

impl FakeQdrant {
    /// Starts the fake on `127.0.0.1` on a free port, in the current tokio runtime.
    ///
    /// # Panics
    /// When no local port can be bound (a broken test environment); see [`Self::try_start`].
    pub async fn start(opts: FakeQdrantOptions) -> Self {
        match Self::try_start(opts).await {
            Ok(fake) => fake,
            Err(e) => panic!("cannot start the fake Qdrant on 127.0.0.1: {e}"),
        }
    }

    /// Like [`Self::start`], returning the bind error instead of panicking.
    ///
    /// # Errors
    /// The I/O error from binding or inspecting the listener.
    pub async fn try_start(opts: FakeQdrantOptions) -> std::io::Result<Self> {
        let shared = Arc::new(Shared {
            state: Mutex::new(State {
                api_key: opts.api_key,
                read_only_api_key: opts.read_only_api_key,
                standalone_peer_id: opts.cluster.as_ref().map_or(1, |c| c.peer_id),
                cluster: opts.cluster,
                ready: opts.ready,
                since_1_19: super::server::is_1_19_or_later(&opts.version),
                quotas: None,
                version: opts.version,
                requests: Vec::new(),
                faults: Vec::new(),
                collections: BTreeMap::new(),
                aliases: BTreeMap::new(),
                transfers_complete_instantly: false,
                next_listener: 0,
                snapshots: BTreeMap::new(),
                snapshot_padding: DEFAULT_SNAPSHOT_PADDING,
                snapshot_url_recovery: true,
                download_faults: Vec::new(),
                recoveries: Vec::new(),
                uploads: 0,
                cluster_metadata: BTreeMap::new(),
            }),
        });
        let listener = Arc::new(Listener {
            shared: shared.clone(),
            id: 0,
            peer: None,
        });
        let (url, server) = serve(listener).await?;
        Ok(Self {
            url,
            shared,
            server,
            listener: 0,
            peer: None,
        })
    }

    /// Another listener on a new `127.0.0.1` port sharing this fake's state (collections,
    /// placement, keys, snapshots, recorded requests), answering every request as peer `peer_id`:
    /// `GET /cluster` reports it (`Leader` when it is
    /// [`ClusterState::leader`](super::ClusterState::leader), else `Follower`), `GET
    /// /collections/{c}/cluster` splits local and remote replicas for it, and snapshots are
    /// created, listed, served, recovered and deleted in its own snapshot directory. A 3-peer
    /// cluster is one fake whose [`ClusterState::peers`](super::ClusterState::peers) are 1, 2 and 3
    /// (answering as 1) plus views for 2 and 3. The view stops when dropped; the listeners are
    /// independent otherwise.
    ///
    /// Requests are recorded in one shared log
    /// ([`RecordedRequest::peer_id`](super::RecordedRequest::peer_id) tells which peer answered).
    /// Faults injected through a handle ([`Self::fail_next`], [`Self::delay_next`],
    /// [`Self::fail_download_after`]) apply to that handle's listener only; every other setter
    /// changes the shared state.
    ///
    /// # Panics
    /// When no local port can be bound; see [`Self::try_peer_view`].
    pub async fn peer_view(&self, peer_id: u64) -> FakeQdrant {
        match self.try_peer_view(peer_id).await {
            Ok(view) => view,
            Err(e) => panic!("cannot start a fake Qdrant peer view on 127.0.0.1: {e}"),
        }
    }

    /// Like [`Self::peer_view`], returning the bind error instead of panicking.
    ///
    /// # Errors
    /// The I/O error from binding or inspecting the listener.
    pub async fn try_peer_view(&self, peer_id: u64) -> std::io::Result<FakeQdrant> {
        let id = {
            let mut state = self.shared.lock();
            state.next_listener += 1;
            state.next_listener
        };
        let listener = Arc::new(Listener {
            shared: self.shared.clone(),
            id,
            peer: Some(peer_id),
        });
        let (url, server) = serve(listener).await?;
        Ok(FakeQdrant {
            url,
            shared: self.shared.clone(),
            server,
            listener: id,
            peer: Some(peer_id),
        })
    }

    /// The peer this listener answers as now.
    pub fn peer_id(&self) -> u64 {
        self.peer
            .unwrap_or_else(|| self.shared.lock().this_peer_id())
    }

    /// Base URL, `http://127.0.0.1:<port>/`.
    pub fn url(&self) -> Url {
        self.url.clone()
    }

    /// The cluster-wide quota config last stored by `PUT /quotas` (Qdrant 1.19 and later), as
    /// `GET /quotas` reports it in `config`; `None` until one was set.
    pub fn quotas(&self) -> Option<serde_json::Value> {
        self.shared.lock().quotas.clone()
    }

    /// Sets or clears `service.api_key`.
    pub fn set_api_key(&self, key: Option<&str>) {
        self.shared.lock().api_key = key.map(str::to_owned);
    }

    /// Sets or clears `service.read_only_api_key`.
    pub fn set_read_only_api_key(&self, key: Option<&str>) {
        self.shared.lock().read_only_api_key = key.map(str::to_owned);
    }

    /// Makes `GET /readyz` answer 200 (true) or 503 (false).
    pub fn set_ready(&self, ready: bool) {
        self.shared.lock().ready = ready;
    }
}

impl Drop for FakeQdrant {
    fn drop(&mut self) {
        self.server.abort();
    }
}

impl std::fmt::Debug for FakeQdrant {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FakeQdrant")
            .field("url", &self.url.as_str())
            .field("peer", &self.peer)
            .finish_non_exhaustive()
    }
}
