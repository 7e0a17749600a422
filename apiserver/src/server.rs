//! The server: data directory, certificates, storage, TLS listener, authentication,
//! and the per-connection HTTP/1.1 + HTTP/2 service. Start at [`run`].

pub mod auth;
pub mod authz;
pub mod legacy_tokens;
pub mod pki;
pub mod service_account;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio::net::TcpListener;

use crate::endpoints::{self, Api};
use crate::metrics::Metrics;
use crate::registry::Catalog;
use crate::registry::store::Store;
use crate::status::ApiError;
use crate::storage::{self, Storage};

/// Which storage backend to use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Backend {
    /// Embedded durable storage (redb) in the data directory.
    #[default]
    Redb,
    /// Nothing kept across restarts.
    Memory,
    /// An etcd cluster, possibly shared with other API servers ([`Config::etcd`]).
    Etcd,
}

/// Concurrent streams of one HTTP/2 connection (kube-apiserver's default).
pub const HTTP2_MAX_STREAMS: u32 = 1000;

/// How to run an API server.
#[derive(Debug, Clone)]
pub struct Config {
    pub data_dir: PathBuf,
    pub bind: SocketAddr,
    pub backend: Backend,
    /// The events kept for watches resuming from the past (a number and the
    /// memory they may hold).
    pub watch_history: storage::cache::HistoryLimit,
    /// Which objects the storage's cache keeps parsed besides their JSON
    /// (the embedded backends; etcd's cache keeps the listed ones).
    pub keep_parsed: storage::KeepParsed,
    /// Where the [`Backend::Etcd`] storage is.
    pub etcd: storage::etcd::Config,
    /// Name of the kubeconfig context written to `DATA_DIR/kubeconfig`.
    pub context: String,
    /// Trust a front proxy (an aggregating API server) with this CA.
    pub request_header: Option<auth::RequestHeader>,
    /// Extra names (DNS or IP) for the serving certificate, e.g. `svc.ns.svc`.
    pub extra_sans: Vec<String>,
    /// What this server serves.
    pub role: Role,
    /// Reads member credentials Secrets from the host control plane, for the
    /// `clusters/NAME/proxy` subresource of [`Role::Aggregated`].
    pub member_credentials: Option<crate::cluster_proxy::CredentialsSource>,
    /// The unified view's settings ([`Role::Aggregated`]).
    pub unified: crate::unified::Config,
}

/// The kinds of API server flotilla runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Role {
    /// A Kubernetes API server: every built-in kind, CRDs, aggregation.
    #[default]
    Host,
    /// Karmada's aggregated API server: `cluster.karmada.io` Clusters, registered on
    /// a host through an APIService and trusting its front proxy.
    Aggregated,
}

impl Config {
    pub fn new(data_dir: impl Into<PathBuf>) -> Self {
        Config {
            data_dir: data_dir.into(),
            bind: SocketAddr::from(([127, 0, 0, 1], 6443)),
            backend: Backend::Redb,
            watch_history: storage::kv::Config::default().history,
            keep_parsed: storage::KeepParsed::default(),
            etcd: storage::etcd::Config::default(),
            request_header: None,
            extra_sans: Vec::new(),
            role: Role::Host,
            context: "flotilla".into(),
            member_credentials: None,
            unified: crate::unified::Config::default(),
        }
    }

    pub fn bind(mut self, bind: SocketAddr) -> Self {
        self.bind = bind;
        self
    }

    pub fn backend(mut self, backend: Backend) -> Self {
        self.backend = backend;
        self
    }
}

/// Start-up and serving failures.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("cannot create data directory {path}: {source}")]
    DataDir {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error(transparent)]
    Pki(#[from] pki::Error),
    #[error("service-account signing key sa.key: {0}")]
    ServiceAccountKey(#[source] service_account::Error),
    #[error("storage: {0}")]
    Storage(#[from] storage::Error),
    #[error("TLS configuration: {0}")]
    Tls(String),
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },
    #[error("creating system namespaces: {0}")]
    Bootstrap(ApiError),
}

/// Opens the configured storage backend.
pub async fn open_storage(config: &Config) -> Result<Arc<dyn Storage>, Error> {
    let kv = storage::kv::Config {
        keep_parsed: config.keep_parsed,
        ..storage::kv::Config::default().history(config.watch_history)
    };
    Ok(match config.backend {
        Backend::Memory => Arc::new(storage::kv::KvStore::open(storage::memory::Memory, kv)?),
        Backend::Redb => {
            let backend = storage::redb::Redb::open(&config.data_dir.join("flotilla.redb"))?;
            Arc::new(storage::kv::KvStore::open(backend, kv)?)
        }
        Backend::Etcd => {
            let etcd = storage::etcd::Config {
                history: config.watch_history,
                ..config.etcd.clone()
            };
            Arc::new(storage::etcd::EtcdStore::open(etcd).await?)
        }
    })
}

fn tls_config(
    pki: &pki::Pki,
    request_header: Option<&auth::RequestHeader>,
) -> Result<rustls::ServerConfig, Error> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let tls = |e: &dyn std::fmt::Display| Error::Tls(e.to_string());
    let mut roots = rustls::RootCertStore::empty();
    let ca = CertificateDer::from_pem_slice(pki.ca_cert_pem.as_bytes()).map_err(|e| tls(&e))?;
    roots.add(ca.clone()).map_err(|e| tls(&e))?;
    if let Some(rh) = request_header {
        for cert in CertificateDer::pem_slice_iter(rh.ca_pem.as_bytes()) {
            roots.add(cert.map_err(|e| tls(&e))?).map_err(|e| tls(&e))?;
        }
    }
    let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(
        Arc::new(roots),
        provider.clone(),
    )
    .allow_unauthenticated()
    .build()
    .map_err(|e| tls(&e))?;
    let cert =
        CertificateDer::from_pem_slice(pki.server_cert_pem.as_bytes()).map_err(|e| tls(&e))?;
    let key = PrivateKeyDer::from_pem_slice(pki.server_key_pem.as_bytes()).map_err(|e| tls(&e))?;
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| tls(&e))?
        .with_client_cert_verifier(verifier)
        .with_single_cert(vec![cert, ca], key)
        .map_err(|e| tls(&e))?;
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(config)
}

/// The registry store over the configured storage, with the system namespaces created.
pub async fn open_store(config: &Config) -> Result<Arc<Store>, Error> {
    open_metered_store(config, Arc::new(Metrics::new(component(config.role)))).await
}

/// The `component` label of a server's metrics.
fn component(role: Role) -> &'static str {
    match role {
        Role::Host => "apiserver",
        Role::Aggregated => "aggregated-apiserver",
    }
}

/// [`open_store`] with storage writes timed into `metrics`.
async fn open_metered_store(config: &Config, metrics: Arc<Metrics>) -> Result<Arc<Store>, Error> {
    let storage: Arc<dyn Storage> = Arc::new(crate::storage::metered::Metered::new(
        open_storage(config).await?,
        metrics,
    ));
    let catalog = match config.role {
        Role::Host => Catalog::builtin(),
        Role::Aggregated => Catalog::aggregated(),
    };
    let store = Store::new(storage, Arc::new(catalog));
    store
        .ensure_system_namespaces()
        .await
        .map_err(Error::Bootstrap)?;
    if config.backend == Backend::Etcd {
        // Other API servers on the same etcd create CRDs too: serve them as they appear.
        tokio::spawn(store.clone().follow_crds());
    }
    store.load_crds().await;
    ensure_bootstrap_policy(&store).await?;
    Ok(store)
}

/// Creates kube-apiserver's default RBAC roles and bindings when missing.
async fn ensure_bootstrap_policy(store: &Store) -> Result<(), Error> {
    if let Some(info) = store
        .catalog
        .get("rbac.authorization.k8s.io", "v1", "clusterroles")
    {
        // Roles created below aggregate; so may ones stored before a restart.
        store.aggregate_cluster_roles(&info).await;
    }
    for (key, object) in authz::bootstrap_policy() {
        if store.storage.snapshot().get(&key).is_some() {
            continue;
        }
        let mut parts = key.trim_start_matches('/').split('/');
        let (Some(group), Some(plural)) = (parts.next(), parts.next()) else {
            continue;
        };
        let Some(info) = store.catalog.find_resource(group, plural) else {
            continue;
        };
        let opts = crate::registry::store::WriteOptions::manager("flotilla-apiserver");
        match store.create(&info, None, object, &opts).await {
            Ok(_) => {}
            Err(e) if e.reason == "AlreadyExists" => {}
            Err(e) => return Err(Error::Bootstrap(e)),
        }
    }
    if let Some(info) = store
        .catalog
        .get("rbac.authorization.k8s.io", "v1", "clusterroles")
    {
        store.aggregate_cluster_roles(&info).await;
    }
    Ok(())
}

/// A server that is bound and ready; [`Server::serve`] runs it.
pub struct Server {
    listener: TcpListener,
    acceptor: tokio_rustls::TlsAcceptor,
    api: Arc<Api>,
    request_header: Option<auth::RequestHeader>,
    pub local_addr: SocketAddr,
    pub kubeconfig: PathBuf,
}

/// Prepares everything and binds the listener; the kubeconfig is written last, so
/// its appearance means the server accepts connections.
pub async fn bind(config: Config) -> Result<Server, Error> {
    std::fs::create_dir_all(&config.data_dir).map_err(|source| Error::DataDir {
        path: config.data_dir.clone(),
        source,
    })?;
    let bind_host = config.bind.ip().to_string();
    let pki = pki::ensure(&config.data_dir, &bind_host, &config.extra_sans)?;
    let tokens = auth::Tokens::load(&pki.tokens_file).unwrap_or_default();
    let signer = service_account::Signer::from_pem(&pki.service_account_key_pem)
        .map_err(Error::ServiceAccountKey)?;
    let authenticator = Arc::new(auth::Authenticator::new(tokens, Some(signer)));
    let metrics = Arc::new(Metrics::new(component(config.role)));
    let store = open_metered_store(&config, metrics.clone()).await?;
    let listener = TcpListener::bind(config.bind)
        .await
        .map_err(|source| Error::Bind {
            addr: config.bind,
            source,
        })?;
    let local_addr = listener.local_addr().map_err(|source| Error::Bind {
        addr: config.bind,
        source,
    })?;
    let host = if local_addr.ip().is_unspecified() {
        "127.0.0.1".to_string()
    } else {
        local_addr.ip().to_string()
    };
    let address = if local_addr.is_ipv6() {
        format!("[{host}]:{}", local_addr.port())
    } else {
        format!("{host}:{}", local_addr.port())
    };
    tokio::spawn(crate::registry::gc::run(store.clone()));
    tokio::spawn(legacy_tokens::run(
        store.clone(),
        service_account::Signer::from_pem(&pki.service_account_key_pem)
            .map_err(Error::ServiceAccountKey)?,
        pki.ca_cert_pem.clone(),
    ));
    tokio::spawn(crate::aggregator::availability::run(
        store.clone(),
        crate::aggregator::ProxyIdentity {
            cert_pem: pki.front_proxy_client_cert_pem.clone(),
            key_pem: pki.front_proxy_client_key_pem.clone(),
        },
    ));
    let mut api = Api::build(store, address.clone());
    api.proxy_identity = Some(crate::aggregator::ProxyIdentity {
        cert_pem: pki.front_proxy_client_cert_pem.clone(),
        key_pem: pki.front_proxy_client_key_pem.clone(),
    });
    api.authenticator = authenticator;
    api.metrics = metrics;
    if config.backend == Backend::Redb {
        api.storage_file = Some(config.data_dir.join("flotilla.redb"));
    }
    api.member_credentials = config.member_credentials.clone();
    if config.role == Role::Aggregated {
        let unified = crate::unified::Unified::new(
            api.store.clone(),
            config.member_credentials.clone(),
            config.unified.clone(),
        );
        tokio::spawn(unified.clone().run());
        api.unified = Some(unified);
    }
    let api = Arc::new(api);
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(tls_config(
        &pki,
        config.request_header.as_ref(),
    )?));
    let kubeconfig = config.data_dir.join("kubeconfig");
    pki::write_atomic(
        &kubeconfig,
        pki::kubeconfig(&pki, &format!("https://{address}"), &config.context).as_bytes(),
    )?;
    tracing::info!(addr = %local_addr, kubeconfig = %kubeconfig.display(), "apiserver listening");
    Ok(Server {
        listener,
        acceptor,
        api,
        request_header: config.request_header.clone(),
        local_addr,
        kubeconfig,
    })
}

impl Server {
    /// The endpoints' shared state (for in-process use).
    pub fn api(&self) -> Arc<Api> {
        self.api.clone()
    }

    /// Accepts connections until `shutdown` completes.
    pub async fn serve(self, shutdown: impl std::future::Future<Output = ()>) {
        tokio::pin!(shutdown);
        loop {
            let accepted = tokio::select! {
                _ = &mut shutdown => break,
                a = self.listener.accept() => a,
            };
            let (tcp, peer) = match accepted {
                Ok(a) => a,
                Err(e) => {
                    tracing::warn!(error = %e, "accept failed");
                    continue;
                }
            };
            let _ = tcp.set_nodelay(true);
            let acceptor = self.acceptor.clone();
            let api = self.api.clone();
            let request_header = self.request_header.clone();
            tokio::spawn(async move {
                let tls = match acceptor.accept(tcp).await {
                    Ok(t) => t,
                    Err(e) => {
                        tracing::debug!(%peer, error = %e, "TLS handshake failed");
                        return;
                    }
                };
                let peer_identity = tls
                    .get_ref()
                    .1
                    .peer_certificates()
                    .and_then(|c| c.first())
                    .map_or(auth::Peer::Anonymous, |c| {
                        auth::classify_peer(c.as_ref(), request_header.as_ref())
                    });
                let service = service_fn(move |req: hyper::Request<hyper::body::Incoming>| {
                    let api = api.clone();
                    let peer_identity = peer_identity.clone();
                    // Boxed: an HTTP/1.1 connection keeps room for its
                    // request's future from start to end, and the handler's
                    // (every endpoint's state) is tens of KB; boxed, an idle
                    // connection keeps a pointer.
                    Box::pin(async move {
                        let started = Instant::now();
                        let method = req.method().clone();
                        let path = req.uri().path().to_string();
                        let labels = request_labels(&api, &req);
                        let in_flight = api.metrics.in_flight(&labels);
                        let authorization = req
                            .headers()
                            .get(http::header::AUTHORIZATION)
                            .and_then(|v| v.to_str().ok())
                            .map(str::to_string);
                        let cert_user = match &peer_identity {
                            auth::Peer::User(u) => Some(u.clone()),
                            auth::Peer::FrontProxy => auth::user_from_headers(req.headers()),
                            auth::Peer::Anonymous => None,
                        };
                        let user = auth::authenticate(
                            &api.authenticator,
                            &api.store.storage.snapshot(),
                            cert_user.as_ref(),
                            authorization.as_deref(),
                        );
                        let who = user.as_ref().map(|u| u.name.clone()).unwrap_or_default();
                        let groups = user
                            .as_ref()
                            .map(|u| u.groups.join(","))
                            .unwrap_or_default();
                        let extra = user
                            .as_ref()
                            .map(|u| {
                                u.extra
                                    .iter()
                                    .map(|(k, v)| format!("{k}={}", v.join("|")))
                                    .collect::<Vec<_>>()
                                    .join(";")
                            })
                            .unwrap_or_default();
                        let response = match user {
                            // A front proxy has authorized the request before forwarding it.
                            Some(user) if peer_identity == auth::Peer::FrontProxy => {
                                endpoints::handle(&api, req, Some(Arc::new(user))).await
                            }
                            Some(user) => match admit_request(&api, user, req) {
                                Ok((user, req)) => {
                                    endpoints::handle(&api, req, Some(Arc::new(user))).await
                                }
                                Err(e) => endpoints::error_response(&e),
                            },
                            None => endpoints::error_response(&ApiError::unauthorized()),
                        };
                        drop(in_flight);
                        let code = response.status().as_u16();
                        api.metrics.observe(&labels, code, started.elapsed());
                        let response = if labels.long_running() && code < 300 {
                            // Open until the client or the server ends the stream.
                            let open = api.metrics.long_running(&labels);
                            response.map(|body| {
                                use http_body_util::BodyExt;
                                body.map_frame(move |frame| {
                                    let _ = &open;
                                    frame
                                })
                                .boxed_unsync()
                            })
                        } else {
                            response
                        };
                        let elapsed_ms = started.elapsed().as_secs_f64() * 1000.0;
                        if matches!(
                            method,
                            http::Method::POST
                                | http::Method::PUT
                                | http::Method::PATCH
                                | http::Method::DELETE
                        ) {
                            // The audit trail: who changed what, with what result.
                            tracing::info!(target: "audit", user = %who, %groups, %extra, %method, %path, code, "mutating request");
                        }
                        tracing::debug!(%method, %path, code, elapsed_ms, "request");
                        Ok::<_, std::convert::Infallible>(response)
                    })
                });
                let mut builder =
                    hyper_util::server::conn::auto::Builder::new(TokioExecutor::new());
                // kube-apiserver's --http2-max-streams-per-connection: a
                // client-go controller's watches share one connection
                builder.http2().max_concurrent_streams(HTTP2_MAX_STREAMS);
                if let Err(e) = builder
                    .serve_connection_with_upgrades(TokioIo::new(tls), service)
                    .await
                {
                    tracing::debug!(%peer, error = %e, "connection ended with an error");
                }
            });
        }
    }
}

/// The metric labels of a request (what it addresses, by kube-apiserver's names).
fn request_labels<B>(api: &Api, req: &http::Request<B>) -> crate::metrics::RequestLabels {
    let query = crate::endpoints::request_info::parse_query(req.uri().query());
    let route = crate::endpoints::request_info::parse(req.method(), req.uri().path(), &query);
    let apply = req
        .headers()
        .get(http::header::CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes().starts_with(b"application/apply-patch"));
    api.metrics
        .labels(&api.catalog, req.method(), &route, apply)
}

/// Applies impersonation and RBAC authorization to an authenticated request;
/// answers the effective user and the request without impersonation headers.
fn admit_request<B>(
    api: &Api,
    user: auth::User,
    mut req: http::Request<B>,
) -> Result<(auth::User, http::Request<B>), ApiError> {
    let snapshot = api.store.storage.snapshot();
    let user = match authz::impersonate(&snapshot, &user, req.headers())? {
        Some(impersonated) => impersonated,
        None => user,
    };
    authz::strip_impersonation_headers(req.headers_mut());
    let query = crate::endpoints::request_info::parse_query(req.uri().query());
    let path = req.uri().path().to_string();
    let route = crate::endpoints::request_info::parse(req.method(), &path, &query);
    let attrs = authz::Attributes::from_request(req.method(), &path, &route, &query);
    let serves_rbac = api
        .catalog
        .get("rbac.authorization.k8s.io", "v1", "clusterroles")
        .is_some();
    let policy = if serves_rbac {
        &snapshot
    } else {
        authz::bootstrap_snapshot()
    };
    let decision = authz::authorize(policy, &user, &attrs);
    if !decision.allowed {
        return Err(authz::forbidden(&attrs, &user, &decision.reason));
    }
    Ok((user, req))
}

/// Runs an API server until `shutdown` completes.
pub async fn run(
    config: Config,
    shutdown: impl std::future::Future<Output = ()>,
) -> Result<(), Error> {
    bind(config).await?.serve(shutdown).await;
    Ok(())
}
