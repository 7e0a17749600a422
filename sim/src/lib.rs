//! flotilla-sim: simulated member clusters — flotilla's API server plus fake
//! workload controllers, in the spirit of KWOK.
//!
//! [`start`] runs one member in-process: an API server (memory storage by default,
//! redb optional) on a private loopback port, a front proxy on the member's public
//! port ([`proxy`], where faults are injected), N Nodes, and one controller loop
//! ([`controller`]) that plays kube-controller-manager, kube-scheduler, the kubelets
//! and metrics-server from the store's watch:
//!
//! - Deployments get ReplicaSets `<deployment>-<pod-template-hash>` and those get
//!   Pods; rolling updates and scaling follow maxSurge/maxUnavailable; statuses
//!   (replicas, ready, available, updated, observedGeneration, conditions) are set
//!   as kube's controllers set them, so `kubectl rollout status` finishes;
//!   StatefulSets (ordinal pods), DaemonSets (a pod per node) and Jobs (pods that
//!   succeed) likewise ([`workload`]).
//! - Pods are scheduled onto nodes with room for their requests ([`schedule`]) or
//!   stay Pending with `PodScheduled=False`; bound pods become Running and Ready
//!   after a delay with IPs and container statuses ([`kubelet`]).
//! - Services get Endpoints and EndpointSlices from their ready pods ([`endpoints`]).
//! - `metrics.k8s.io/v1beta1` pods and nodes are served as CRD-backed objects kept
//!   current from configurable usage ([`metrics`]; settable per workload with the
//!   `sim.flotilla.io/cpu-usage` / `memory-usage` annotations).
//! - `autoscaling/v2` HorizontalPodAutoscalers scale their Deployments,
//!   StatefulSets and ReplicaSets from those metrics ([`autoscaler`]).
//!
//! Start at [`start`] and [`Member`]:
//!
//! ```no_run
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! use std::time::Duration;
//! use flotilla_sim::{Config, Resources, Usage};
//!
//! let member = flotilla_sim::start(
//!     Config::new("member1", "/tmp/member1")
//!         .nodes(3)
//!         .node_capacity(Resources { cpu_millis: 4000, memory_bytes: 16 << 30, pods: 110 })
//!         .zone("zone-a"),
//! )
//! .await?;
//! println!("{} at {} (kubeconfig {})", member.name(), member.url(), member.kubeconfig().display());
//! member.set_label_usage("app=web", Usage::new(250, 128 << 20))?;
//! member.set_latency(Duration::from_millis(200)); // slow
//! member.set_unreachable(true); // connections refused, same port later
//! member.set_unreachable(false);
//! member.stop().await;
//! # Ok(())
//! # }
//! ```

pub mod autoscaler;
pub mod controller;
pub mod endpoints;
pub mod kubelet;
pub mod metrics;
pub mod object;
pub mod owners;
pub mod proxy;
pub mod quantity;
pub mod schedule;
pub mod workload;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use flotilla_apiserver::registry::store::{Part, Store, WriteOptions};
use flotilla_apiserver::server::{self, Backend, pki};
use serde_json::Value;
use tokio::sync::{mpsc, oneshot, watch};
use tokio::task::JoinHandle;

pub use metrics::Usage;
pub use proxy::Faults;
pub use schedule::Resources;

/// How to run one simulated member.
#[derive(Debug, Clone)]
pub struct Config {
    /// The member's name: node names, kubeconfig context.
    pub name: String,
    /// Where the API server keeps its certificates, tokens, kubeconfig (and data with redb).
    pub data_dir: PathBuf,
    /// Storage backend; memory by default.
    pub backend: Backend,
    /// The public port on 127.0.0.1; 0 picks a free one.
    pub port: u16,
    /// Number of nodes.
    pub nodes: usize,
    /// Capacity (= allocatable) of each node.
    pub node_capacity: Resources,
    /// `topology.kubernetes.io/region` of the nodes.
    pub region: Option<String>,
    /// `topology.kubernetes.io/zone` of the nodes.
    pub zone: Option<String>,
    /// Watch events kept for clients resuming a watch; small keeps an idle member small.
    pub watch_history: usize,
    /// A bound pod becomes Running/Ready after a delay drawn from this range.
    pub ready_delay: (Duration, Duration),
    /// How long a Job's pod runs before it succeeds.
    pub job_duration: Duration,
    /// Usage of each running pod unless set otherwise at run time.
    pub default_usage: Usage,
    /// Usage of each node besides its pods.
    pub node_base_usage: Usage,
    /// How often each HorizontalPodAutoscaler is synced (Kubernetes'
    /// `--horizontal-pod-autoscaler-sync-period` is 15 s; the simulation's 2 s).
    pub hpa_sync_period: Duration,
}

impl Config {
    /// Defaults: memory storage, any port, 3 nodes of 8 CPUs, 32 GiB and 110 pods,
    /// 0–100 ms to ready, 200 ms jobs, 1024 watch events of history.
    pub fn new(name: impl Into<String>, data_dir: impl Into<PathBuf>) -> Self {
        Config {
            name: name.into(),
            data_dir: data_dir.into(),
            backend: Backend::Memory,
            port: 0,
            nodes: 3,
            node_capacity: Resources {
                cpu_millis: 8000,
                memory_bytes: 32 << 30,
                pods: 110,
            },
            region: None,
            zone: None,
            watch_history: 1024,
            ready_delay: (Duration::ZERO, Duration::from_millis(100)),
            job_duration: Duration::from_millis(200),
            default_usage: Usage::new(10, 32 << 20),
            node_base_usage: Usage::new(100, 512 << 20),
            hpa_sync_period: Duration::from_secs(2),
        }
    }

    /// Sets the storage backend.
    pub fn backend(mut self, backend: Backend) -> Self {
        self.backend = backend;
        self
    }

    /// Sets the public port (0: any free one).
    pub fn port(mut self, port: u16) -> Self {
        self.port = port;
        self
    }

    /// Sets the number of nodes.
    pub fn nodes(mut self, nodes: usize) -> Self {
        self.nodes = nodes;
        self
    }

    /// Sets each node's capacity.
    pub fn node_capacity(mut self, capacity: Resources) -> Self {
        self.node_capacity = capacity;
        self
    }

    /// Sets the nodes' region label.
    pub fn region(mut self, region: impl Into<String>) -> Self {
        self.region = Some(region.into());
        self
    }

    /// Sets the nodes' zone label.
    pub fn zone(mut self, zone: impl Into<String>) -> Self {
        self.zone = Some(zone.into());
        self
    }

    /// Sets how many watch events are kept.
    pub fn watch_history(mut self, events: usize) -> Self {
        self.watch_history = events;
        self
    }

    /// Sets the range of the delay before a bound pod is Running and Ready.
    pub fn ready_delay(mut self, min: Duration, max: Duration) -> Self {
        self.ready_delay = (min, max.max(min));
        self
    }

    /// Sets how long Job pods run.
    pub fn job_duration(mut self, duration: Duration) -> Self {
        self.job_duration = duration;
        self
    }

    /// Sets how often HorizontalPodAutoscalers are synced.
    pub fn hpa_sync_period(mut self, period: Duration) -> Self {
        self.hpa_sync_period = period;
        self
    }

    /// Sets the default usage of a running pod.
    pub fn default_usage(mut self, usage: Usage) -> Self {
        self.default_usage = usage;
        self
    }
}

/// Failures starting a member.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("starting the API server: {0}")]
    Server(#[source] Box<server::Error>),
    #[error("certificates: {0}")]
    Pki(#[from] pki::Error),
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },
    #[error("TLS: {0}")]
    Tls(String),
    #[error("creating {what}: {message}")]
    Bootstrap { what: String, message: String },
    #[error(transparent)]
    MissingResource(#[from] controller::MissingResource),
    #[error("cannot run the member's runtime: {0}")]
    Runtime(#[source] std::io::Error),
    #[error("the member stopped while starting")]
    Stopped,
    #[error("invalid label selector {0:?}: use k=v[,k2=v2]")]
    Selector(String),
}

impl From<server::Error> for Error {
    fn from(e: server::Error) -> Self {
        Error::Server(Box::new(e))
    }
}

/// Results of this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// A running simulated member; see [`start`]. Dropping it stops the member in
/// the background; [`Member::stop`] waits until it has stopped.
pub struct Member {
    running: Running,
    shutdown: watch::Sender<bool>,
    done: Option<oneshot::Receiver<()>>,
}

impl Drop for Member {
    fn drop(&mut self) {
        let _ = self.shutdown.send(true);
    }
}

impl std::fmt::Debug for Member {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Member")
            .field("name", &self.running.name)
            .field("url", &self.running.url)
            .finish_non_exhaustive()
    }
}

/// Node `i` of member `member`: `<member>-node-<i>`.
pub fn node_name(member: &str, i: usize) -> String {
    format!("{member}-node-{i}")
}

/// Starts a member: API server, front proxy, nodes, metrics CRDs and controllers.
/// Returns once the member answers on [`Member::url`].
///
/// The member runs on its own thread with its own single-threaded Tokio runtime,
/// so that [`Member::stop`] ends everything it started — including the API
/// server's background loops, which have no shutdown of their own — and releases
/// its storage (a redb member can be started again on the same directory).
pub async fn start(config: Config) -> Result<Member> {
    let (ready_tx, ready_rx) = oneshot::channel::<Result<Running>>();
    let (shutdown, shutdown_rx) = watch::channel(false);
    let (done_tx, done_rx) = oneshot::channel::<()>();
    let thread_name = format!("sim-{}", config.name);
    std::thread::Builder::new()
        .name(thread_name)
        .spawn(move || {
            let runtime = match tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            {
                Ok(r) => r,
                Err(e) => {
                    let _ = ready_tx.send(Err(Error::Runtime(e)));
                    return;
                }
            };
            runtime.block_on(async move {
                match run(config, shutdown_rx.clone()).await {
                    Ok((running, tasks)) => {
                        let _ = ready_tx.send(Ok(running));
                        let mut stop = shutdown_rx;
                        let _ = stop.wait_for(|s| *s).await;
                        for task in tasks {
                            let _ = tokio::time::timeout(Duration::from_secs(5), task).await;
                        }
                    }
                    Err(e) => {
                        let _ = ready_tx.send(Err(e));
                    }
                }
            });
            // Dropping the runtime cancels whatever is left (connections, the API
            // server's garbage collector and APIService availability loops).
            drop(runtime);
            let _ = done_tx.send(());
        })
        .map_err(Error::Runtime)?;
    let running = ready_rx.await.map_err(|_| Error::Stopped)??;
    Ok(Member {
        running,
        shutdown,
        done: Some(done_rx),
    })
}

/// What a started member hands back to its [`Member`] handle.
struct Running {
    name: String,
    url: String,
    addr: SocketAddr,
    ca_pem: String,
    token: String,
    kubeconfig: PathBuf,
    data_dir: PathBuf,
    store: Arc<Store>,
    faults: watch::Sender<Faults>,
    usage: Arc<RwLock<metrics::UsageTable>>,
    kick: mpsc::UnboundedSender<()>,
}

/// Sets a member up on the current runtime; answers its handle's parts and tasks.
async fn run(
    config: Config,
    shutdown_rx: watch::Receiver<bool>,
) -> Result<(Running, Vec<JoinHandle<()>>)> {
    let mut server_config = server::Config::new(&config.data_dir)
        .bind(SocketAddr::from(([127, 0, 0, 1], 0)))
        .backend(config.backend);
    server_config.watch_history = flotilla_apiserver::storage::cache::HistoryLimit {
        events: config.watch_history,
        ..Default::default()
    };
    // The fake workload controllers read every object again and again.
    server_config.keep_parsed = flotilla_apiserver::storage::KeepParsed::All;
    server_config.context = config.name.clone();
    let server = server::bind(server_config).await?;
    let inner = server.local_addr;
    let store = server.api().store.clone();
    let pki = pki::ensure(&config.data_dir, "127.0.0.1", &[])?;

    let public = SocketAddr::from(([127, 0, 0, 1], config.port));
    let listener = tokio::net::TcpListener::bind(public)
        .await
        .map_err(|source| Error::Bind {
            addr: public,
            source,
        })?;
    let addr = listener.local_addr().map_err(|source| Error::Bind {
        addr: public,
        source,
    })?;
    let url = format!("https://{addr}");
    let kubeconfig = config.data_dir.join("kubeconfig");
    pki::write_atomic(
        &kubeconfig,
        pki::kubeconfig(&pki, &url, &config.name).as_bytes(),
    )?;
    let tls = proxy::tls_config(&pki.server_cert_pem, &pki.ca_cert_pem, &pki.server_key_pem)
        .map_err(Error::Tls)?;

    ensure_metrics_crds(&store).await?;
    ensure_nodes(&store, &config).await?;

    let (faults, faults_rx) = watch::channel(Faults::default());
    let (kick, kicks) = mpsc::unbounded_channel();
    let usage = Arc::new(RwLock::new(metrics::UsageTable {
        default: config.default_usage,
        node_base: config.node_base_usage,
        ..Default::default()
    }));
    let controller = controller::Controller::new(
        store.clone(),
        controller::Settings {
            ready_delay: config.ready_delay,
            job_duration: config.job_duration,
            hpa_sync_period: config.hpa_sync_period,
        },
        usage.clone(),
    )?;
    let mut tasks = Vec::new();
    let mut stop = shutdown_rx.clone();
    tasks.push(tokio::spawn(async move {
        server
            .serve(async move {
                let _ = stop.wait_for(|s| *s).await;
            })
            .await;
    }));
    tasks.push(tokio::spawn(controller.run(shutdown_rx.clone(), kicks)));
    tasks.push(tokio::spawn(proxy::run(
        listener,
        inner,
        Arc::new(tls),
        faults_rx,
        shutdown_rx,
    )));
    tracing::info!(member = %config.name, %url, "sim: member started");
    let running = Running {
        name: config.name,
        url,
        addr,
        ca_pem: pki.ca_cert_pem,
        token: pki.admin_token,
        kubeconfig,
        data_dir: config.data_dir,
        store,
        faults,
        usage,
        kick,
    };
    Ok((running, tasks))
}

async fn ensure_metrics_crds(store: &Arc<Store>) -> Result<()> {
    let Some(info) = store
        .catalog
        .get("apiextensions.k8s.io", "v1", "customresourcedefinitions")
    else {
        return Err(controller::MissingResource("customresourcedefinitions".into()).into());
    };
    // metrics.k8s.io, and the multi-cluster services API (ServiceExport,
    // ServiceImport) that clusters joined to Karmada have installed
    let mcs = flotilla_api::crd_values()
        .into_iter()
        .map(|(_, crd)| crd)
        .filter(|crd| object::str_at(crd, "/spec/group") == "multicluster.x-k8s.io");
    for crd in metrics::crds().into_iter().chain(mcs) {
        let name = object::name(&crd).to_string();
        if store
            .storage
            .snapshot()
            .get(&info.key(None, &name))
            .is_some()
        {
            continue;
        }
        match store
            .create(&info, None, crd, &WriteOptions::manager("flotilla-sim"))
            .await
        {
            Ok(_) => {}
            Err(e) if e.reason == "AlreadyExists" => {}
            Err(e) => {
                return Err(Error::Bootstrap {
                    what: name,
                    message: e.message,
                });
            }
        }
    }
    Ok(())
}

async fn ensure_nodes(store: &Arc<Store>, config: &Config) -> Result<()> {
    let info = store
        .catalog
        .get("", "v1", "nodes")
        .ok_or_else(|| controller::MissingResource("nodes".into()))?;
    let opts = WriteOptions::manager("kubelet");
    let bootstrap = |what: &str, e: flotilla_apiserver::status::ApiError| Error::Bootstrap {
        what: what.to_string(),
        message: e.message,
    };
    for i in 0..config.nodes {
        let name = node_name(&config.name, i);
        let node = kubelet::node(
            &name,
            i,
            &config.node_capacity,
            config.region.as_deref(),
            config.zone.as_deref(),
        );
        let current = match store.get(&info, None, &name).await {
            Ok(n) => n,
            Err(e) if e.code == 404 => store
                .create(&info, None, node.clone(), &opts)
                .await
                .map_err(|e| bootstrap(&name, e))?,
            Err(e) => return Err(bootstrap(&name, e)),
        };
        let mut next: Value = (*current).clone();
        next["status"] = node["status"].clone();
        if let Some(m) = next.get_mut("metadata").and_then(Value::as_object_mut) {
            m.remove("resourceVersion");
        }
        store
            .update(&info, None, &name, next, Part::Status, &opts)
            .await
            .map_err(|e| bootstrap(&name, e))?;
    }
    Ok(())
}

impl Member {
    /// The member's name.
    pub fn name(&self) -> &str {
        &self.running.name
    }

    /// `https://127.0.0.1:PORT`.
    pub fn url(&self) -> &str {
        &self.running.url
    }

    /// The public address (kept across [`Member::set_unreachable`]).
    pub fn addr(&self) -> SocketAddr {
        self.running.addr
    }

    /// The PEM of the CA that signed the serving certificate.
    pub fn ca_pem(&self) -> &str {
        &self.running.ca_pem
    }

    /// A bearer token of the admin (group `system:masters`).
    pub fn token(&self) -> &str {
        &self.running.token
    }

    /// `DATA_DIR/kubeconfig`, with context [`Member::name`].
    pub fn kubeconfig(&self) -> &Path {
        &self.running.kubeconfig
    }

    /// The data directory (also holds `ca.crt` and `tokens.csv`).
    pub fn data_dir(&self) -> &Path {
        &self.running.data_dir
    }

    /// The member's registry store, for in-process reads and writes.
    pub fn store(&self) -> &Arc<Store> {
        &self.running.store
    }

    fn update_faults(&self, f: impl FnOnce(&mut Faults)) {
        self.running.faults.send_modify(f);
    }

    /// Unreachable: the port is closed (connections refused) and open connections
    /// dropped; reachable again on the same port.
    pub fn set_unreachable(&self, unreachable: bool) {
        self.update_faults(|f| f.unreachable = unreachable);
    }

    /// Delays all traffic by `latency` each way (zero: none).
    pub fn set_latency(&self, latency: Duration) {
        self.update_faults(|f| f.latency = latency);
    }

    /// Failing: every request gets `503 ServiceUnavailable`.
    pub fn set_failing(&self, failing: bool) {
        self.update_faults(|f| f.failing = failing);
    }

    /// Sets every fault at once.
    pub fn set_faults(&self, faults: Faults) {
        self.update_faults(|f| *f = faults);
    }

    /// The faults in force.
    pub fn faults(&self) -> Faults {
        *self.running.faults.borrow()
    }

    fn with_usage(&self, f: impl FnOnce(&mut metrics::UsageTable)) {
        if let Ok(mut table) = self.running.usage.write() {
            f(&mut table);
        }
        let _ = self.running.kick.send(());
    }

    /// Sets the usage one pod reports.
    pub fn set_pod_usage(&self, namespace: &str, pod: &str, usage: Usage) {
        self.with_usage(|t| {
            t.pods
                .insert((namespace.to_string(), pod.to_string()), usage);
        });
    }

    /// Sets the usage of the pods matching an equality selector (`app=web,tier=fe`);
    /// later rules win over earlier ones, per-pod settings over both.
    pub fn set_label_usage(&self, selector: &str, usage: Usage) -> Result<()> {
        let parsed =
            metrics::parse_selector(selector).ok_or_else(|| Error::Selector(selector.into()))?;
        self.with_usage(|t| t.rules.push((parsed, usage)));
        Ok(())
    }

    /// Sets the usage of pods nothing else applies to.
    pub fn set_default_usage(&self, usage: Usage) {
        self.with_usage(|t| t.default = usage);
    }

    /// Forgets per-pod and per-label usage.
    pub fn clear_usage(&self) {
        self.with_usage(|t| {
            t.pods.clear();
            t.rules.clear();
        });
    }

    /// Stops the controllers, the proxy (dropping connections) and the API server,
    /// and waits (at most ten seconds) until the member's runtime is gone.
    pub async fn stop(mut self) {
        let _ = self.shutdown.send(true);
        if let Some(done) = self.done.take()
            && tokio::time::timeout(Duration::from_secs(10), done)
                .await
                .is_err()
        {
            tracing::warn!(member = %self.running.name, "sim: member did not stop in time");
        }
    }
}
