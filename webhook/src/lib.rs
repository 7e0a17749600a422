//! flotilla's admission webhook server, the counterpart of `karmada-webhook`:
//! an HTTPS server answering AdmissionReview v1 at Karmada's webhook paths
//! (validation and defaulting of every Karmada policy kind, deletion
//! protection) and the ConversionReview of the binding kinds at `/convert`.
//!
//! Start at [`serve`] (or [`bind`] then [`Server::serve`] to learn the bound
//! port first). The review logic is in [`handler`] (pure, over bytes), the
//! certificate that follows its files in [`tls`], the counters in [`metrics`].
//! The one rule set that reads cluster state, ResourceInterpreterCustomization
//! ([`customization`]), gets the stored customizations listed through
//! [`Config::kubeconfig`] (or the in-cluster configuration) before its review is
//! handled.
//! `/healthz`, `/readyz` and `/metrics` are served on the HTTPS port and, when
//! configured, on plain-HTTP probe and metrics addresses as Karmada's flags
//! `--health-probe-bind-address` and `--metrics-bind-address` do.
//!
//! ```no_run
//! # async fn run() -> Result<(), flotilla_webhook::Error> {
//! let config = flotilla_webhook::Config::new(
//!     "127.0.0.1:8443".parse().expect("address"),
//!     "/var/run/webhook/tls.crt",
//!     "/var/run/webhook/tls.key",
//! );
//! flotilla_webhook::serve(config, std::future::pending()).await
//! # }
//! ```

use std::convert::Infallible;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::{TokioExecutor, TokioIo};
use serde_json::Value;
use tokio::net::TcpListener;

pub mod configuration;
pub mod customization;
pub mod handler;
pub mod metrics;
pub mod tls;

/// The largest review body accepted (kube-apiserver's own request limit is 3 MiB).
pub const DEFAULT_MAX_BODY_BYTES: usize = 3 * 1024 * 1024;

/// Server failures.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The certificate or key cannot be used.
    #[error(transparent)]
    Tls(#[from] tls::Error),
    /// The kubeconfig cannot be read or used.
    #[error("kubeconfig {path}: {message}")]
    Kubeconfig {
        /// The file.
        path: PathBuf,
        /// Why.
        message: String,
    },
    /// An address cannot be listened on.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// Why.
        #[source]
        source: std::io::Error,
    },
}

/// Result of this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// How the webhook server runs.
#[derive(Debug, Clone)]
pub struct Config {
    /// HTTPS address for reviews (and health and metrics).
    pub bind: SocketAddr,
    /// PEM certificate chain, reloaded when it changes.
    pub cert_file: PathBuf,
    /// PEM private key, reloaded when it changes.
    pub key_file: PathBuf,
    /// Plain-HTTP address for `/healthz` and `/readyz` only.
    pub health_probe_bind: Option<SocketAddr>,
    /// Plain-HTTP address for `/metrics` only.
    pub metrics_bind: Option<SocketAddr>,
    /// Largest request body accepted; larger ones get 413.
    pub max_body_bytes: usize,
    /// Switches of the admission rules.
    pub options: handler::Options,
    /// Kubeconfig of the API server whose ResourceInterpreterCustomizations
    /// the rules read (`--kubeconfig`); without one the in-cluster
    /// configuration is tried.
    pub kubeconfig: Option<PathBuf>,
}

impl Config {
    /// Reviews on `bind` with the given certificate and key files.
    pub fn new(
        bind: SocketAddr,
        cert_file: impl Into<PathBuf>,
        key_file: impl Into<PathBuf>,
    ) -> Self {
        Config {
            bind,
            cert_file: cert_file.into(),
            key_file: key_file.into(),
            health_probe_bind: None,
            metrics_bind: None,
            max_body_bytes: DEFAULT_MAX_BODY_BYTES,
            options: handler::Options::default(),
            kubeconfig: None,
        }
    }

    /// Reads cluster state (existing ResourceInterpreterCustomizations) through this kubeconfig.
    pub fn kubeconfig(mut self, path: impl Into<PathBuf>) -> Self {
        self.kubeconfig = Some(path.into());
        self
    }

    /// Accept ClusterTaintPolicies with NoExecute taints (`--allow-no-execute-taint-policy`).
    pub fn allow_no_execute_taint_policy(mut self, allow: bool) -> Self {
        self.options.allow_no_execute_taint_policy = allow;
        self
    }

    /// Also serve `/healthz` and `/readyz` over plain HTTP on `addr`.
    pub fn health_probe_bind(mut self, addr: SocketAddr) -> Self {
        self.health_probe_bind = Some(addr);
        self
    }

    /// Also serve `/metrics` over plain HTTP on `addr`.
    pub fn metrics_bind(mut self, addr: SocketAddr) -> Self {
        self.metrics_bind = Some(addr);
        self
    }

    /// The body size limit.
    pub fn max_body_bytes(mut self, bytes: usize) -> Self {
        self.max_body_bytes = bytes;
        self
    }
}

/// Which routes a listener answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Surface {
    /// Reviews, health and metrics (the HTTPS port).
    All,
    /// `/healthz`, `/readyz`, `/livez`.
    Health,
    /// `/metrics`.
    Metrics,
}

struct State {
    metrics: metrics::Metrics,
    max_body_bytes: usize,
    options: handler::Options,
    /// The API server the rules read cluster state from, when there is one.
    client: Option<kube::Client>,
}

/// A client for `kubeconfig`, or the in-cluster one when none is given
/// (`None` when not running in a cluster).
async fn api_client(kubeconfig: Option<&std::path::Path>) -> Result<Option<kube::Client>> {
    let Some(path) = kubeconfig else {
        return Ok(kube::Config::incluster()
            .ok()
            .and_then(|c| kube::Client::try_from(c).ok()));
    };
    let fail = |message: String| Error::Kubeconfig {
        path: path.to_path_buf(),
        message,
    };
    let file = kube::config::Kubeconfig::read_from(path).map_err(|e| fail(e.to_string()))?;
    let config = kube::Config::from_custom_kubeconfig(file, &Default::default())
        .await
        .map_err(|e| fail(e.to_string()))?;
    kube::Client::try_from(config)
        .map(Some)
        .map_err(|e| fail(e.to_string()))
}

/// The stored ResourceInterpreterCustomizations as JSON, or why not.
async fn list_customizations(client: Option<&kube::Client>) -> Option<Result<Vec<Value>, String>> {
    let client = client?;
    let api: kube::Api<flotilla_api::config::ResourceInterpreterCustomization> =
        kube::Api::all(client.clone());
    Some(
        api.list(&Default::default())
            .await
            .map_err(|e| e.to_string())
            .and_then(|list| {
                list.items
                    .iter()
                    .map(|c| serde_json::to_value(c).map_err(|e| e.to_string()))
                    .collect()
            }),
    )
}

/// A bound webhook server, not yet accepting connections.
pub struct Server {
    listener: TcpListener,
    acceptor: tokio_rustls::TlsAcceptor,
    plain: Vec<(TcpListener, Surface)>,
    state: Arc<State>,
    /// The address reviews are served on (its port is real when 0 was asked for).
    pub local_addr: SocketAddr,
}

impl std::fmt::Debug for Server {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Server")
            .field("local_addr", &self.local_addr)
            .finish_non_exhaustive()
    }
}

async fn listen(addr: SocketAddr) -> Result<TcpListener> {
    TcpListener::bind(addr)
        .await
        .map_err(|source| Error::Bind { addr, source })
}

/// Loads the certificate and binds every configured address.
pub async fn bind(config: Config) -> Result<Server> {
    let resolver = Arc::new(tls::ReloadingResolver::new(
        &config.cert_file,
        &config.key_file,
    )?);
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(resolver.server_config()?));
    let listener = listen(config.bind).await?;
    let local_addr = listener.local_addr().map_err(|source| Error::Bind {
        addr: config.bind,
        source,
    })?;
    let mut plain = Vec::new();
    if let Some(addr) = config.health_probe_bind {
        plain.push((listen(addr).await?, Surface::Health));
    }
    if let Some(addr) = config.metrics_bind {
        plain.push((listen(addr).await?, Surface::Metrics));
    }
    Ok(Server {
        listener,
        acceptor,
        plain,
        state: Arc::new(State {
            metrics: metrics::Metrics::new(),
            max_body_bytes: config.max_body_bytes,
            options: config.options,
            client: api_client(config.kubeconfig.as_deref()).await?,
        }),
        local_addr,
    })
}

/// Binds and serves until `shutdown` completes.
pub async fn serve(config: Config, shutdown: impl std::future::Future<Output = ()>) -> Result<()> {
    bind(config).await?.serve(shutdown).await;
    Ok(())
}

impl Server {
    /// The addresses of the plain-HTTP probe and metrics listeners, in that order.
    pub fn plain_addrs(&self) -> Vec<SocketAddr> {
        self.plain
            .iter()
            .filter_map(|(l, _)| l.local_addr().ok())
            .collect()
    }

    /// Accepts connections until `shutdown` completes; connections already
    /// open finish their requests on their own tasks.
    pub async fn serve(self, shutdown: impl std::future::Future<Output = ()>) {
        let (stop, _) = tokio::sync::watch::channel(());
        let mut plain_tasks = Vec::new();
        for (listener, surface) in self.plain {
            let state = self.state.clone();
            let mut stopped = stop.subscribe();
            plain_tasks.push(tokio::spawn(async move {
                loop {
                    let accepted = tokio::select! {
                        _ = stopped.changed() => break,
                        a = listener.accept() => a,
                    };
                    let tcp = match accepted {
                        Ok((tcp, _)) => tcp,
                        Err(e) => {
                            tracing::warn!(error = %e, "accept failed");
                            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                            continue;
                        }
                    };
                    let state = state.clone();
                    tokio::spawn(serve_connection(TokioIo::new(tcp), state, surface));
                }
            }));
        }
        if let Ok(addr) = self.listener.local_addr() {
            tracing::info!(%addr, "webhook serving");
        }
        tokio::pin!(shutdown);
        loop {
            let accepted = tokio::select! {
                _ = &mut shutdown => break,
                a = self.listener.accept() => a,
            };
            let (tcp, peer) = match accepted {
                Ok(a) => a,
                Err(e) => {
                    // Out of file descriptors and the like: do not spin.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                    continue;
                }
            };
            let _ = tcp.set_nodelay(true);
            let acceptor = self.acceptor.clone();
            let state = self.state.clone();
            tokio::spawn(async move {
                match acceptor.accept(tcp).await {
                    Ok(tls) => serve_connection(TokioIo::new(tls), state, Surface::All).await,
                    Err(e) => tracing::debug!(%peer, error = %e, "TLS handshake failed"),
                }
            });
        }
        drop(stop);
        for t in plain_tasks {
            let _ = t.await;
        }
    }
}

async fn serve_connection<I>(io: I, state: Arc<State>, surface: Surface)
where
    I: hyper::rt::Read + hyper::rt::Write + Unpin + Send + 'static,
{
    let service = service_fn(move |req: Request<Incoming>| {
        let state = state.clone();
        async move { Ok::<_, Infallible>(respond(&state, req, surface).await) }
    });
    let builder = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new());
    if let Err(e) = builder.serve_connection(io, service).await {
        tracing::debug!(error = %e, "connection ended with an error");
    }
}

fn reply(code: u16, content_type: &str, body: Bytes) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(body));
    *response.status_mut() =
        http::StatusCode::from_u16(code).unwrap_or(http::StatusCode::INTERNAL_SERVER_ERROR);
    if let Ok(v) = http::HeaderValue::from_str(content_type) {
        response.headers_mut().insert(http::header::CONTENT_TYPE, v);
    }
    response
}

fn json_reply(code: u16, body: &Value) -> Response<Full<Bytes>> {
    let bytes = serde_json::to_vec(body).unwrap_or_default();
    reply(code, "application/json", Bytes::from(bytes))
}

fn status_reply(code: u16, reason: &str, message: &str) -> Response<Full<Bytes>> {
    json_reply(code, &handler::status_body(code, reason, message))
}

async fn respond(state: &State, req: Request<Incoming>, surface: Surface) -> Response<Full<Bytes>> {
    let path = req.uri().path().to_string();
    let response = route(state, req, surface, &path).await;
    state
        .metrics
        .http_request(&path, response.status().as_u16());
    response
}

async fn route(
    state: &State,
    req: Request<Incoming>,
    surface: Surface,
    path: &str,
) -> Response<Full<Bytes>> {
    let health = matches!(surface, Surface::All | Surface::Health);
    let metrics = matches!(surface, Surface::All | Surface::Metrics);
    match path {
        "/healthz" | "/readyz" | "/livez" if health => {
            reply(200, "text/plain", Bytes::from_static(b"ok"))
        }
        "/metrics" if metrics => reply(
            200,
            "text/plain; version=0.0.4",
            Bytes::from(state.metrics.render()),
        ),
        _ if surface == Surface::All && handler::find_route(path).is_some() => {
            review(state, req, path).await
        }
        _ => status_reply(
            404,
            "NotFound",
            &format!("the webhook serves no path {path:?}"),
        ),
    }
}

async fn review(state: &State, req: Request<Incoming>, path: &str) -> Response<Full<Bytes>> {
    if req.method() != http::Method::POST {
        return status_reply(
            405,
            "MethodNotAllowed",
            &format!("{path} accepts POST only"),
        );
    }
    let too_large = || {
        status_reply(
            413,
            "RequestEntityTooLarge",
            &format!(
                "the request body is larger than {} bytes",
                state.max_body_bytes
            ),
        )
    };
    let declared = req
        .headers()
        .get(http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<usize>().ok());
    if declared.is_some_and(|n| n > state.max_body_bytes) {
        return too_large();
    }
    let body = match Limited::new(req.into_body(), state.max_body_bytes)
        .collect()
        .await
    {
        Ok(b) => b.to_bytes(),
        Err(e) if e.is::<http_body_util::LengthLimitError>() => return too_large(),
        Err(e) => {
            return status_reply(400, "BadRequest", &format!("reading the request body: {e}"));
        }
    };
    let started = Instant::now();
    let new_id = uuid::Uuid::new_v4().to_string();
    let lookups = handler::Lookups {
        customizations: if handler::needs_customizations(path) {
            list_customizations(state.client.as_ref()).await
        } else {
            None
        },
    };
    // The handler is written not to panic; should it anyway, the caller gets a
    // Status instead of a dropped connection.
    let answer = match std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        handler::handle_in(path, &body, &new_id, &state.options, &lookups)
    })) {
        Ok(answer) => answer,
        Err(_) => {
            tracing::error!(path, "review handler panicked");
            return status_reply(
                500,
                "InternalError",
                "the webhook failed to handle the review",
            );
        }
    };
    let seconds = started.elapsed().as_secs_f64();
    if let Some(outcome) = &answer.outcome {
        state.metrics.observe(outcome, seconds);
        tracing::debug!(
            path,
            kind = %outcome.kind,
            operation = %outcome.operation,
            result = outcome.result.as_str(),
            "review answered"
        );
    }
    json_reply(answer.status, &answer.body)
}
