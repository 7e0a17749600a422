//! `flotilla <subcommand>`: thin mains over the flotilla libraries.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::Context;

mod clusters;
mod deploy;
mod deploy_files;
mod get;
mod status;
mod up;
mod webhook;
use clap::{Parser, Subcommand, ValueEnum};

#[derive(Parser)]
#[command(
    name = "flotilla",
    version,
    about = "A multi-cluster Kubernetes control plane that speaks the Karmada API"
)]
struct Cli {
    /// Log format.
    #[arg(long, global = true, value_enum, default_value_t = LogFormat::Text)]
    log_format: LogFormat,
    #[command(subcommand)]
    command: Command,
}

#[derive(Clone, Copy, ValueEnum)]
enum LogFormat {
    Text,
    Json,
}

#[derive(Clone, Copy, ValueEnum)]
enum StorageKind {
    /// Embedded durable storage (redb) in the data directory.
    Redb,
    /// In memory only: nothing survives a restart.
    Memory,
    /// An etcd cluster (--etcd-servers), which several API servers can share.
    Etcd,
}

/// Which control plane a command talks to.
#[derive(clap::Args)]
struct ControlPlane {
    /// Kubeconfig of the control plane (default: KUBECONFIG or ~/.kube/config).
    #[arg(long)]
    kubeconfig: Option<PathBuf>,
    /// Context in that kubeconfig.
    #[arg(long)]
    context: Option<String>,
}

impl ControlPlane {
    async fn client(&self) -> anyhow::Result<kube::Client> {
        clusters::control_plane(self.kubeconfig.as_deref(), self.context.as_deref()).await
    }
}

/// Flags shared by the API server subcommands.
#[derive(clap::Args)]
struct ServerArgs {
    /// Directory for certificates, the kubeconfig and the database.
    #[arg(long, env = "FLOTILLA_DATA_DIR")]
    data_dir: Option<PathBuf>,
    /// Address to listen on (port 0 picks a free port; see DATA_DIR/kubeconfig).
    #[arg(long)]
    bind: Option<SocketAddr>,
    /// Storage backend.
    #[arg(long, value_enum, default_value_t = StorageKind::Redb)]
    storage: StorageKind,
    /// etcd client URLs, comma-separated (with --storage etcd).
    #[arg(long, value_delimiter = ',', default_value = "http://127.0.0.1:2379")]
    etcd_servers: Vec<String>,
    /// Prefix of every key written to etcd.
    #[arg(long, default_value = "/registry")]
    etcd_prefix: String,
    /// CA bundle that signed etcd's serving certificates (required for https:// servers).
    #[arg(long)]
    etcd_cafile: Option<PathBuf>,
    /// Client certificate for etcd (with --etcd-keyfile).
    #[arg(long, requires = "etcd_keyfile")]
    etcd_certfile: Option<PathBuf>,
    /// Client key for etcd (with --etcd-certfile).
    #[arg(long, requires = "etcd_certfile")]
    etcd_keyfile: Option<PathBuf>,
    /// How often to compact etcd's history to what it was one interval before
    /// (e.g. 5m, 30s; 0 leaves compaction to etcd).
    #[arg(long, default_value = "5m", value_parser = parse_interval)]
    etcd_compaction_interval: std::time::Duration,
    /// Events kept for watches that resume from an older resourceVersion.
    #[arg(long, default_value_t = 50_000)]
    watch_history: usize,
    /// Memory those events may hold, in MiB (estimated: mostly their JSON);
    /// the oldest go first when either limit is reached.
    #[arg(long, value_name = "MIB", default_value_t = 2)]
    watch_history_mib: usize,
    /// Trust a front proxy (an aggregating API server) whose client certificate
    /// is signed by this CA; it names users in X-Remote-User/X-Remote-Group.
    #[arg(long)]
    requestheader_client_ca_file: Option<PathBuf>,
    /// Common names accepted for the front proxy's certificate (default: any).
    #[arg(long, value_delimiter = ',')]
    requestheader_allowed_names: Vec<String>,
    /// Extra names for the serving certificate (e.g. its Service's `NAME.NAMESPACE.svc`).
    #[arg(long = "tls-san", value_delimiter = ',')]
    tls_sans: Vec<String>,
}

impl ServerArgs {
    fn config(
        self,
        role: flotilla_apiserver::server::Role,
        default_dir: &str,
        default_bind: &str,
    ) -> anyhow::Result<flotilla_apiserver::server::Config> {
        let data_dir = self.data_dir.unwrap_or_else(|| PathBuf::from(default_dir));
        let bind = match self.bind {
            Some(b) => b,
            None => default_bind.parse().context("default bind address")?,
        };
        let mut config = flotilla_apiserver::server::Config::new(data_dir)
            .bind(bind)
            .backend(match self.storage {
                StorageKind::Redb => flotilla_apiserver::server::Backend::Redb,
                StorageKind::Memory => flotilla_apiserver::server::Backend::Memory,
                StorageKind::Etcd => flotilla_apiserver::server::Backend::Etcd,
            });
        config.watch_history = flotilla_apiserver::storage::cache::HistoryLimit {
            events: self.watch_history,
            bytes: self.watch_history_mib.saturating_mul(1 << 20),
        };
        let read = |flag: &str, path: Option<&PathBuf>| -> anyhow::Result<Option<String>> {
            path.map(|p| {
                std::fs::read_to_string(p)
                    .with_context(|| format!("reading --{flag} {}", p.display()))
            })
            .transpose()
        };
        let tls = flotilla_apiserver::storage::etcd::Tls {
            ca_pem: read("etcd-cafile", self.etcd_cafile.as_ref())?,
            cert_pem: read("etcd-certfile", self.etcd_certfile.as_ref())?,
            key_pem: read("etcd-keyfile", self.etcd_keyfile.as_ref())?,
        };
        let https = self.etcd_servers.iter().any(|s| s.starts_with("https://"));
        if https && tls.ca_pem.is_none() {
            anyhow::bail!("--etcd-cafile is required for https:// etcd servers");
        }
        config.etcd = flotilla_apiserver::storage::etcd::Config {
            endpoints: self.etcd_servers,
            prefix: self.etcd_prefix,
            tls: (https || tls.ca_pem.is_some() || tls.cert_pem.is_some()).then_some(tls),
            compaction_interval: Some(self.etcd_compaction_interval).filter(|i| !i.is_zero()),
            ..config.etcd
        };
        config.extra_sans = self.tls_sans;
        config.role = role;
        if let Some(path) = self.requestheader_client_ca_file {
            let ca_pem = std::fs::read_to_string(&path).with_context(|| {
                format!("reading --requestheader-client-ca-file {}", path.display())
            })?;
            config.request_header = Some(flotilla_apiserver::server::auth::RequestHeader {
                ca_pem,
                allowed_names: self.requestheader_allowed_names,
            });
        }
        Ok(config)
    }
}

/// A duration flag: `5m`, `30s`, `1h30m`, or `0`.
fn parse_interval(text: &str) -> Result<std::time::Duration, String> {
    if text.trim() == "0" {
        return Ok(std::time::Duration::ZERO);
    }
    let parsed: jiff::SignedDuration = text
        .parse()
        .map_err(|e| format!("{text:?} is not a duration like 5m or 30s: {e}"))?;
    std::time::Duration::try_from(parsed).map_err(|_| format!("{text:?} is negative"))
}

#[derive(Subcommand)]
enum Command {
    /// Start the embedded control plane and keep it running (Ctrl-C stops it).
    Up {
        /// Directory for all state; the kubeconfig is written to DIR/kubeconfig.
        #[arg(long, env = "FLOTILLA_HOME", default_value = ".flotilla")]
        dir: PathBuf,
        /// Address of the host API server.
        #[arg(long, default_value = "127.0.0.1:6443")]
        bind: SocketAddr,
        /// Number of simulated member clusters (member1..N).
        #[arg(long, default_value_t = 3)]
        members: usize,
        /// Nodes per simulated member.
        #[arg(long, default_value_t = 3)]
        nodes: usize,
        /// Longest simulated container start, in milliseconds: a member pod
        /// turns Running and Ready a random 0..=MS ms after it is bound to a node.
        #[arg(long, value_name = "MS", default_value_t = 100)]
        pod_ready_delay: u64,
        /// Controllers to run in process, in Karmada's syntax (`*` for all,
        /// `name` to enable, `-name` to disable), e.g. `*,-detector` to run
        /// the detector as a separate `flotilla controller-manager`.
        #[arg(long, value_delimiter = ',', default_value = "*")]
        controllers: Vec<String>,
        /// Serve the admission webhook in-process; `--webhook=false` only
        /// registers it (run `flotilla webhook --cert-dir DIR/webhook` yourself).
        #[arg(long, default_value_t = true, action = clap::ArgAction::Set, num_args = 0..=1, default_missing_value = "true")]
        webhook: bool,
        /// Let the embedded webhook accept ClusterTaintPolicies with NoExecute
        /// taints (Karmada's webhook `--allow-no-execute-taint-policy`).
        #[arg(long, default_value_t = false, action = clap::ArgAction::Set, num_args = 0..=1, default_missing_value = "true")]
        allow_no_execute_taint_policy: bool,
        /// Cluster failover: `--feature-gates=Failover=true
        /// --enable-no-execute-taint-eviction` (both off by default, as in Karmada).
        #[command(flatten)]
        failover: flotilla_controllers::flags::FailoverFlags,
        /// Print every component's metrics URL and write a Prometheus
        /// configuration scraping them to DIR/prometheus/prometheus.yml.
        #[arg(long)]
        metrics: bool,
    },
    /// One-screen health of a running `flotilla up`: components answering,
    /// clusters Ready, bindings scheduled, Works applied (exit status 1 when
    /// a component is down).
    Status {
        /// The directory `flotilla up` runs in.
        #[arg(long, env = "FLOTILLA_HOME", default_value = ".flotilla")]
        dir: PathBuf,
    },
    /// Run the Kubernetes-compatible API server.
    Apiserver {
        #[command(flatten)]
        server: ServerArgs,
    },
    /// Join a member cluster (Push mode) to the control plane of the current kubeconfig.
    Join {
        /// The member's name (a DNS label of at most 48 characters).
        name: String,
        /// Kubeconfig of the member cluster (its user must have a bearer token).
        #[arg(long)]
        cluster_kubeconfig: PathBuf,
        /// Context of the member kubeconfig to use.
        #[arg(long)]
        cluster_context: Option<String>,
        #[command(flatten)]
        cp: ControlPlane,
    },
    /// Remove a member cluster from the control plane.
    Unjoin {
        name: String,
        #[command(flatten)]
        cp: ControlPlane,
    },
    /// Mark a member cluster unschedulable.
    Cordon {
        name: String,
        #[command(flatten)]
        cp: ControlPlane,
    },
    /// Mark a member cluster schedulable again.
    Uncordon {
        name: String,
        #[command(flatten)]
        cp: ControlPlane,
    },
    /// Show member clusters (`flotilla get clusters`), or any resource of every
    /// member through the unified view, with a CLUSTER column (`flotilla get pods -A`).
    Get {
        /// What to show: `clusters`, or a member resource (`pods`, `deploy`, ...).
        what: String,
        /// Every namespace.
        #[arg(short = 'A', long)]
        all_namespaces: bool,
        /// The namespace (default: `default`).
        #[arg(short = 'n', long)]
        namespace: Option<String>,
        /// Label selector.
        #[arg(short = 'l', long)]
        selector: Option<String>,
        /// Only these clusters (comma-separated).
        #[arg(long, value_delimiter = ',')]
        clusters: Vec<String>,
        /// Output: wide, yaml, json or name (default: a table).
        #[arg(short = 'o', long, default_value = "")]
        output: String,
        #[command(flatten)]
        cp: ControlPlane,
    },
    /// Run the controllers (cluster, status, namespace sync, propagation) against a control plane.
    ControllerManager {
        #[command(flatten)]
        cp: ControlPlane,
        #[command(flatten)]
        flags: flotilla_controllers::flags::Flags,
        /// Leader election: only the replica holding the Lease
        /// `karmada-controller-manager` runs controllers.
        #[command(flatten)]
        leader_election: flotilla_controllers::leader_election::LeaderElectionFlags,
        /// Where `/metrics`, `/healthz` and `/readyz` are served over HTTP
        /// (Karmada's flag): `host:port`, `:port` for every interface, `0` for off.
        #[arg(long, default_value = ":8080")]
        metrics_bind_address: String,
    },
    /// Pull mode: run next to a member, register it and report its status and Lease.
    Agent {
        /// The member's cluster name on the control plane.
        #[arg(long)]
        cluster_name: String,
        /// Kubeconfig of the control plane.
        #[arg(long)]
        control_plane: PathBuf,
        /// Kubeconfig of the member (default: the in-cluster service account,
        /// when the agent runs as a pod in the member).
        #[arg(long)]
        member: Option<PathBuf>,
        #[command(flatten)]
        flags: flotilla_controllers::flags::Flags,
        /// Leader election: only the replica holding the Lease
        /// `karmada-agent-<cluster-name>` (on the control plane) acts.
        #[command(flatten)]
        leader_election: flotilla_controllers::leader_election::LeaderElectionFlags,
        /// Where `/metrics`, `/healthz` and `/readyz` are served over HTTP
        /// (Karmada's flag): `host:port`, `:port` for every interface, `0` for off.
        #[arg(long, default_value = ":8080")]
        metrics_bind_address: String,
    },
    /// Make (once) the CA, serving certificates, front-proxy client
    /// certificate and kubeconfigs of a production installation, and print
    /// them as the Secrets the manifests in deploy/ mount, or list the files.
    Certs {
        #[command(flatten)]
        certs: CertArgs,
        /// `secrets`: print the Secrets (YAML); `files`: list the files.
        #[arg(long, value_enum, default_value_t = deploy::CertsFormat::Files)]
        format: deploy::CertsFormat,
    },
    /// Render everything an installation needs (deploy/overlays/<mode> with
    /// certificates, caBundles, images and addresses filled in), into a
    /// directory or, one part at a time, to stdout. Nothing is downloaded.
    Init {
        /// Where the components run.
        #[arg(long, value_enum, default_value_t = deploy::Mode::HostCluster)]
        mode: deploy::Mode,
        #[command(flatten)]
        certs: CertArgs,
        /// Directory to write (host.yaml, control-plane.yaml, admin.kubeconfig;
        /// in standalone mode also rootfs/ with units, keys and kubeconfigs).
        #[arg(long, default_value = "flotilla-deploy")]
        output: PathBuf,
        /// Print only this part to stdout instead of writing the directory.
        #[arg(long, value_enum)]
        stdout: Option<deploy::Part>,
        /// Image of the flotilla binary (built from the Containerfile).
        #[arg(long, default_value = deploy::FLOTILLA_IMAGE)]
        image: String,
        /// Image of etcd (host-cluster mode), from your registry.
        #[arg(long, default_value = deploy::ETCD_IMAGE)]
        etcd_image: String,
        /// Standalone: the machines' IP addresses (the components' Endpoints,
        /// and names in the API server's certificate).
        #[arg(long, value_delimiter = ',', default_value = "127.0.0.1")]
        advertise_address: Vec<std::net::IpAddr>,
        /// Standalone: the external etcd cluster's endpoints (docs/etcd.md).
        #[arg(long, default_value = "http://127.0.0.1:2379")]
        etcd_servers: String,
    },
    /// Run one simulated member cluster (an API server with fake workload controllers).
    Sim {
        /// The member's name.
        #[arg(long, default_value = "member1")]
        name: String,
        /// Directory for its certificates and kubeconfig.
        #[arg(long)]
        data_dir: PathBuf,
        /// Number of nodes.
        #[arg(long, default_value_t = 3)]
        nodes: usize,
        /// Longest simulated container start, in milliseconds: a member pod
        /// turns Running and Ready a random 0..=MS ms after it is bound to a node.
        #[arg(long, value_name = "MS", default_value_t = 100)]
        pod_ready_delay: u64,
        /// Port to listen on (0: a free one; reuse a port to come back at the same address).
        #[arg(long, default_value_t = 0)]
        port: u16,
        /// Storage backend: memory (the default; a restart starts empty) or
        /// redb (objects survive a restart, like a real cluster that was cut off).
        #[arg(long, value_enum, default_value_t = StorageKind::Memory)]
        storage: StorageKind,
        /// A file of faults to show clients, followed while running
        /// (`latency: 2s`, `failing: true`, `unreachable: true`, one per
        /// line; an absent or empty file means none).
        #[arg(long)]
        faults_file: Option<PathBuf>,
    },
    /// Run the admission webhook (validation and defaulting of the Karmada API,
    /// binding conversion at /convert) over HTTPS.
    Webhook {
        #[command(flatten)]
        args: webhook::Args,
    },
    /// Run Karmada's aggregated API server (cluster.karmada.io Clusters and the
    /// search.karmada.io unified view), to be registered on a host API server
    /// with APIServices.
    AggregatedApiserver {
        #[command(flatten)]
        server: ServerArgs,
        /// Kubeconfig of the host control plane, read for member credentials
        /// (Secrets named by each Cluster's secretRef) by `clusters/NAME/proxy`
        /// and the unified view.
        #[arg(long)]
        host_kubeconfig: Option<PathBuf>,
        /// Unified view: seconds a member may take before it is reported missing.
        #[arg(long, default_value_t = 5.0)]
        member_timeout: f64,
        /// Unified view: never answer from the caches (every read live).
        #[arg(long)]
        force_live_reads: bool,
        /// Unified view: fail requests (503) when any member is missing, instead
        /// of answering for the others with a Warning.
        #[arg(long)]
        strict_partial: bool,
    },
}

/// Flags of `flotilla certs` and `flotilla init`.
#[derive(clap::Args)]
struct CertArgs {
    /// The PKI directory: keys and certificates are made once and reused.
    #[arg(long, default_value = "flotilla-pki")]
    pki_dir: PathBuf,
    /// Extra names and addresses of the API server's certificate (how
    /// clients outside the host reach it: a load balancer, a node address).
    #[arg(long, value_delimiter = ',')]
    apiserver_san: Vec<String>,
    /// The API server URL for clients outside the host, in the admin's and
    /// agents' kubeconfigs (default: host-cluster https://127.0.0.1:5443,
    /// for `kubectl port-forward`; standalone the first --advertise-address).
    #[arg(long)]
    server: Option<String>,
    /// Also make the kubeconfig of the pull-mode agent of this cluster.
    #[arg(long)]
    agent: Option<String>,
}

impl CertArgs {
    /// In standalone mode every machine runs an API server, and the
    /// components talk to the local one; clients outside use the first
    /// address (or --server).
    fn options(&self, mode: deploy::Mode, addresses: &[std::net::IpAddr]) -> deploy::CertOptions {
        let port = deploy::APISERVER_PORT;
        let url = |ip: &std::net::IpAddr| match ip {
            std::net::IpAddr::V6(v6) => format!("https://[{v6}]:{port}"),
            std::net::IpAddr::V4(v4) => format!("https://{v4}:{port}"),
        };
        let mut sans = self.apiserver_san.clone();
        let (component, admin) = match (mode, addresses.first()) {
            (deploy::Mode::Standalone, Some(first)) => {
                sans.extend(addresses.iter().map(std::net::IpAddr::to_string));
                (format!("https://127.0.0.1:{port}"), url(first))
            }
            _ => (
                format!(
                    "https://karmada-apiserver.{}.svc.cluster.local:{port}",
                    deploy::NAMESPACE
                ),
                format!("https://127.0.0.1:{port}"),
            ),
        };
        deploy::CertOptions {
            dir: self.pki_dir.clone(),
            apiserver_sans: sans,
            component_server: component,
            admin_server: self.server.clone().unwrap_or(admin),
            agent: self.agent.clone(),
        }
    }
}

fn init_tracing(format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Text => builder.init(),
        LogFormat::Json => builder.json().init(),
    }
}

/// Serves the controllers' metrics at `--metrics-bind-address` unless it is
/// `0`, saying where on stderr.
async fn serve_metrics(flag: String) -> anyhow::Result<()> {
    let addr = flotilla_controllers::metrics::parse_bind_address(&flag)
        .map_err(|e| anyhow::anyhow!("--metrics-bind-address: {e}"))?;
    if let Some(addr) = addr {
        let bound = flotilla_controllers::metrics::serve(addr)
            .await
            .with_context(|| format!("serving metrics on {addr} (--metrics-bind-address)"))?;
        eprintln!("flotilla: metrics on http://{bound}/metrics");
    }
    Ok(())
}

/// Applies the faults written in `path` to the member whenever the file
/// changes (checked every 200 ms); a file that does not parse is reported
/// and leaves the faults as they were.
async fn follow_faults(member: &flotilla_sim::Member, path: &std::path::Path) {
    let mut last: Option<String> = None;
    loop {
        let text = std::fs::read_to_string(path).unwrap_or_default();
        if last.as_deref() != Some(text.as_str()) {
            match flotilla_sim::Faults::parse(&text) {
                Ok(faults) => {
                    member.set_faults(faults);
                    println!(
                        "faults: latency {:?}, failing {}, unreachable {}",
                        faults.latency, faults.failing, faults.unreachable
                    );
                }
                Err(e) => eprintln!("flotilla sim: {}: {e}", path.display()),
            }
            last = Some(text);
        }
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
}

/// Runs `work` until it ends or a shutdown signal arrives; with an election,
/// only while this process holds the Lease (a lost lease is an error, so the
/// process exits and a restart makes it a candidate again).
async fn run_elected<W>(
    client: kube::Client,
    election: Option<flotilla_controllers::leader_election::Config>,
    work: impl FnOnce() -> W,
) -> flotilla_controllers::Result<()>
where
    W: std::future::Future<Output = flotilla_controllers::Result<()>>,
{
    match election {
        Some(config) => {
            flotilla_controllers::leader_election::Elector::new(client, config)
                .lead(work, shutdown_signal())
                .await
        }
        None => {
            tokio::select! {
                r = work() => r,
                () = shutdown_signal() => Ok(()),
            }
        }
    }
}

async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(s) => s,
                Err(_) => {
                    let _ = ctrl_c.await;
                    return;
                }
            };
        tokio::select! {
            _ = ctrl_c => {},
            _ = term.recv() => {},
        }
    }
    #[cfg(not(unix))]
    {
        let _ = ctrl_c.await;
    }
}

#[tokio::main]
async fn main() {
    if let Err(e) = run().await {
        // A plain message naming the problem, whatever RUST_BACKTRACE says.
        eprintln!("error: {e:#}");
        std::process::exit(1);
    }
}

async fn run() -> anyhow::Result<()> {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let cli = Cli::parse();
    init_tracing(cli.log_format);
    match cli.command {
        Command::Up {
            dir,
            bind,
            members,
            nodes,
            pod_ready_delay,
            controllers,
            webhook,
            metrics,
            allow_no_execute_taint_policy,
            failover,
        } => {
            flotilla_controllers::enabled_controllers(&controllers)?;
            up::run(
                up::Options {
                    dir,
                    bind,
                    members,
                    nodes,
                    pod_ready_delay: std::time::Duration::from_millis(pod_ready_delay),
                    controllers,
                    webhook,
                    metrics,
                    allow_no_execute_taint_policy,
                    failover,
                },
                shutdown_signal(),
            )
            .await?;
        }
        Command::Join {
            name,
            cluster_kubeconfig,
            cluster_context,
            cp,
        } => {
            clusters::join(
                cp.client().await?,
                &name,
                &cluster_kubeconfig,
                cluster_context.as_deref(),
            )
            .await?;
        }
        Command::Unjoin { name, cp } => clusters::unjoin(cp.client().await?, &name).await?,
        Command::Cordon { name, cp } => clusters::cordon(cp.client().await?, &name, true).await?,
        Command::Uncordon { name, cp } => {
            clusters::cordon(cp.client().await?, &name, false).await?
        }
        Command::Get {
            what,
            all_namespaces,
            namespace,
            selector,
            clusters: only,
            output,
            cp,
        } => match what.as_str() {
            "clusters" | "cluster" => clusters::get_clusters(cp.client().await?).await?,
            other => {
                let opts = get::Options {
                    resource: other.to_string(),
                    namespace,
                    all_namespaces,
                    selector,
                    clusters: only,
                    output,
                };
                get::run(cp.client().await?, &opts).await?
            }
        },
        Command::Status { dir } => print!("{}", status::run(&dir).await?),
        Command::ControllerManager {
            cp,
            flags,
            leader_election,
            metrics_bind_address,
        } => {
            flotilla_controllers::enabled_controllers(&flags.controllers)?;
            let election = leader_election
                .config(flotilla_controllers::leader_election::CONTROLLER_MANAGER_LEASE)?;
            serve_metrics(metrics_bind_address).await?;
            let ctx =
                flotilla_controllers::context::Context::new(cp.client().await?, flags.config());
            let controllers = flags.controllers.clone();
            let work = move || async move { flotilla_controllers::run(ctx, &controllers).await };
            // its own client (connection), as client-go's leader election
            // has: renewals never wait behind the controllers' requests
            let election_client = cp.client().await?;
            run_elected(election_client, election, work)
                .await
                .context("controllers failed")?;
        }
        Command::Agent {
            cluster_name,
            control_plane,
            member,
            flags,
            leader_election,
            metrics_bind_address,
        } => {
            let election = leader_election.config(
                &flotilla_controllers::leader_election::agent_lease(&cluster_name),
            )?;
            serve_metrics(metrics_bind_address).await?;
            let cp = clusters::control_plane(Some(&control_plane), None).await?;
            let member = match member {
                Some(path) => clusters::control_plane(Some(&path), None).await?,
                None => kube::Client::try_default()
                    .await
                    .context("no --member kubeconfig and no in-cluster service account")?,
            };
            let options = flotilla_controllers::agent::AgentOptions::new(flags.config());
            let election_client = clusters::control_plane(Some(&control_plane), None).await?;
            let work = move || async move {
                flotilla_controllers::agent::run_agent(cp, member, &cluster_name, options).await
            };
            run_elected(election_client, election, work)
                .await
                .context("agent failed")?;
        }
        Command::Certs { certs, format } => {
            let bundle = deploy::ensure_bundle(&certs.options(deploy::Mode::HostCluster, &[]))?;
            match format {
                deploy::CertsFormat::Secrets => {
                    print!("{}", deploy::to_yaml(&deploy::secrets(&bundle))?)
                }
                deploy::CertsFormat::Files => {
                    let kubeconfigs: std::collections::BTreeMap<String, String> = bundle
                        .kubeconfigs
                        .iter()
                        .map(|(user, text)| {
                            (format!("kubeconfigs/{user}.kubeconfig"), text.clone())
                        })
                        .collect();
                    deploy::write_files(&certs.pki_dir, &kubeconfigs)?;
                    for name in kubeconfigs.keys() {
                        println!("{}", certs.pki_dir.join(name).display());
                    }
                    let dir = certs.pki_dir.display();
                    for (sub, names) in [
                        (
                            "apiserver",
                            bundle.apiserver.keys().cloned().collect::<Vec<_>>(),
                        ),
                        (
                            "aggregated-apiserver",
                            bundle.aggregated.keys().cloned().collect(),
                        ),
                        ("webhook", bundle.webhook.keys().cloned().collect()),
                    ] {
                        for n in names {
                            println!("{dir}/{sub}/{n}");
                        }
                    }
                }
            }
        }
        Command::Init {
            mode,
            certs,
            output,
            stdout,
            image,
            etcd_image,
            advertise_address,
            etcd_servers,
        } => {
            let opts = deploy::InitOptions {
                mode,
                certs: certs.options(mode, &advertise_address),
                image,
                etcd_image,
                advertise_addresses: advertise_address,
                etcd_servers,
            };
            let files = deploy::init(&opts)?;
            match stdout {
                Some(part) => {
                    let name = match part {
                        deploy::Part::Host => "host.yaml",
                        deploy::Part::ControlPlane => "control-plane.yaml",
                    };
                    let text = files.get(name).with_context(|| {
                        format!("--stdout {name}: there is no such part in {mode:?} mode")
                    })?;
                    print!("{text}");
                }
                None => {
                    deploy::write_files(&output, &files)?;
                    println!("wrote {} files to {}", files.len(), output.display());
                    for name in files.keys().filter(|n| !n.starts_with("rootfs/")) {
                        println!("  {}", output.join(name).display());
                    }
                }
            }
        }
        Command::Sim {
            name,
            data_dir,
            nodes,
            pod_ready_delay,
            port,
            storage,
            faults_file,
        } => {
            let backend = match storage {
                StorageKind::Redb => flotilla_apiserver::server::Backend::Redb,
                StorageKind::Memory => flotilla_apiserver::server::Backend::Memory,
                StorageKind::Etcd => {
                    anyhow::bail!("a simulated member stores in memory or redb, not etcd")
                }
            };
            let member = flotilla_sim::start(
                flotilla_sim::Config::new(&name, &data_dir)
                    .nodes(nodes)
                    .ready_delay(
                        std::time::Duration::ZERO,
                        std::time::Duration::from_millis(pod_ready_delay),
                    )
                    .port(port)
                    .backend(backend),
            )
            .await
            .context("starting the simulated member")?;
            println!(
                "member {name} serves at {} (kubeconfig: {})",
                member.url(),
                member.kubeconfig().display()
            );
            match faults_file {
                Some(path) => {
                    tokio::select! {
                        _ = follow_faults(&member, &path) => {}
                        _ = shutdown_signal() => {}
                    }
                }
                None => shutdown_signal().await,
            }
            member.stop().await;
        }
        Command::Webhook { args } => {
            let config = args.config()?;
            let server = flotilla_webhook::bind(config)
                .await
                .context("starting the webhook")?;
            println!("webhook serving at https://{}", server.local_addr);
            server.serve(shutdown_signal()).await;
        }
        Command::Apiserver { server } => {
            let config = server.config(
                flotilla_apiserver::server::Role::Host,
                ".flotilla/apiserver",
                "127.0.0.1:6443",
            )?;
            flotilla_apiserver::server::run(config, shutdown_signal())
                .await
                .context("apiserver failed")?;
        }
        Command::AggregatedApiserver {
            server,
            host_kubeconfig,
            member_timeout,
            force_live_reads,
            strict_partial,
        } => {
            let mut config = server.config(
                flotilla_apiserver::server::Role::Aggregated,
                ".flotilla/aggregated-apiserver",
                "127.0.0.1:7443",
            )?;
            if let Some(path) = host_kubeconfig {
                config.member_credentials = Some(host_credentials(&path).await?);
            }
            config.unified.member_timeout =
                std::time::Duration::from_secs_f64(member_timeout.clamp(0.1, 300.0));
            config.unified.force_live = force_live_reads;
            config.unified.strict = strict_partial;
            flotilla_apiserver::server::run(config, shutdown_signal())
                .await
                .context("aggregated apiserver failed")?;
        }
    }
    Ok(())
}

/// How long a member credentials Secret read from the host is reused.
const CREDENTIALS_TTL: Duration = Duration::from_secs(5);

/// Member credentials read from the host control plane with kube-rs, each
/// Secret at most once per [`CREDENTIALS_TTL`].
async fn host_credentials(
    kubeconfig: &std::path::Path,
) -> anyhow::Result<flotilla_apiserver::cluster_proxy::CredentialsSource> {
    use k8s_openapi::api::core::v1::Secret;
    let config = kube::config::Kubeconfig::read_from(kubeconfig)
        .with_context(|| format!("reading --host-kubeconfig {}", kubeconfig.display()))?;
    let config = kube::Config::from_custom_kubeconfig(config, &Default::default())
        .await
        .context("host kubeconfig")?;
    let client = kube::Client::try_from(config).context("host client")?;
    // A unified list reads every member's Secret: each is read from the host
    // at most once per CREDENTIALS_TTL (a rotated token is used after that).
    type Cached = Option<flotilla_apiserver::cluster_proxy::Credentials>;
    let read: Arc<Mutex<HashMap<(String, String), (Instant, Cached)>>> = Arc::default();
    Ok(flotilla_apiserver::cluster_proxy::CredentialsSource::new(
        move |namespace, name| {
            let secrets: kube::Api<Secret> = kube::Api::namespaced(client.clone(), &namespace);
            let read = read.clone();
            Box::pin(async move {
                let key = (namespace, name);
                let lock = || read.lock().unwrap_or_else(|e| e.into_inner());
                if let Some((at, creds)) = lock().get(&key)
                    && at.elapsed() < CREDENTIALS_TTL
                {
                    return Ok(creds.clone());
                }
                let secret = secrets.get_opt(&key.1).await.map_err(|e| e.to_string())?;
                let value = serde_json::to_value(secret).map_err(|e| e.to_string())?;
                let creds = flotilla_apiserver::cluster_proxy::Credentials::from_secret(&value);
                lock().insert(key, (Instant::now(), creds.clone()));
                Ok(creds)
            })
        },
    ))
}
