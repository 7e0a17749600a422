//! The kube clients the controllers talk through, to the control plane and to
//! members: kube's own layers (TLS, timeouts, base URI, authentication, extra
//! headers) over a connection pool of our own.
//!
//! kube's default pool keeps every connection a burst of concurrent requests
//! opened, idle, for 90 s, and hyper lets each connection's read buffer grow
//! to 400 KB after a large response and keeps it while the connection idles.
//! A 100-member run that fell behind ended with 400 connections from the
//! controllers to their own API server (in one process with it, so with the
//! server's side of each too) and 460 to members, each with its buffers and
//! TLS state. This pool keeps at most [`IDLE_CONNECTIONS_PER_SERVER`] idle
//! connections to a server, for [`IDLE_CONNECTION_TIMEOUT`], and a
//! connection's read buffer grows to at most [`READ_BUFFER_MAX`].
//!
//! Each client's TLS configuration remembers [`TLS_SESSIONS_KEPT`] sessions
//! to resume. rustls's default room for 256, allocated up front, took 14 KB
//! a client: 1.5 MiB for the clients to 100 members (heaptrack), for
//! connections that live long anyway.
//!
//! The clients speak HTTP/1.1, as kube's. HTTP/2 (one connection for every
//! request and watch to a server, as client-go) was measured too: it took the
//! propagation pipeline's median from 10 ms to 160 ms from a template to its
//! binding at 100 members, as every watch and write shares one connection
//! task (docs/benchmarks.md).

use std::time::Duration;

use kube::Client;

use crate::Result;

/// Idle HTTP/1.1 connections kept to one server between requests.
pub const IDLE_CONNECTIONS_PER_SERVER: usize = 4;
/// How long an idle connection is kept.
pub const IDLE_CONNECTION_TIMEOUT: Duration = Duration::from_secs(30);
/// The most an HTTP/1.1 connection's read buffer grows to.
pub const READ_BUFFER_MAX: usize = 64 << 10;
/// TLS sessions a client keeps to resume.
pub const TLS_SESSIONS_KEPT: usize = 4;

/// `config`'s TLS client configuration, keeping [`TLS_SESSIONS_KEPT`]
/// sessions to resume.
fn tls_config(config: &kube::Config) -> Result<rustls::ClientConfig> {
    use kube::client::ConfigExt;

    let mut tls = config.rustls_client_config()?;
    tls.resumption = rustls::client::Resumption::in_memory_sessions(TLS_SESSIONS_KEPT);
    Ok(tls)
}

/// A client for `config`; a server reached through `proxy_url` gets kube's
/// own client.
pub fn build(config: kube::Config) -> Result<Client> {
    use kube::client::ConfigExt;
    use tower::{BoxError, ServiceBuilder};

    if config.proxy_url.is_some() {
        return Ok(Client::try_from(config)?);
    }
    let mut http = hyper_util::client::legacy::connect::HttpConnector::new();
    http.enforce_http(false);
    let mut https = hyper_rustls::HttpsConnectorBuilder::new()
        .with_tls_config(tls_config(&config)?)
        .https_or_http();
    if let Some(name) = &config.tls_server_name {
        let name = rustls_pki_types::ServerName::try_from(name.clone())
            .map_err(|e| crate::Error::InvalidConfig(format!("tls-server-name {name:?}: {e}")))?;
        https = https.with_server_name_resolver(hyper_rustls::FixedServerNameResolver::new(name));
    }
    let https = https.enable_http1().wrap_connector(http);
    let mut connector = hyper_timeout::TimeoutConnector::new(https);
    connector.set_connect_timeout(config.connect_timeout);
    connector.set_read_timeout(config.read_timeout);
    connector.set_write_timeout(config.write_timeout);
    let pool = hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
        .pool_timer(hyper_util::rt::TokioTimer::new())
        .pool_idle_timeout(IDLE_CONNECTION_TIMEOUT)
        .pool_max_idle_per_host(IDLE_CONNECTIONS_PER_SERVER)
        .http1_max_buf_size(READ_BUFFER_MAX)
        .build(connector);
    let service = ServiceBuilder::new()
        .layer(config.base_uri_layer())
        .option_layer(config.auth_layer()?)
        .layer(config.extra_headers_layer()?)
        .map_err(BoxError::from)
        .service(pool);
    Ok(Client::new(service, config.default_namespace))
}
