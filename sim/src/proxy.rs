//! The member's front door and its fault injection.
//!
//! A member's API server listens on a private loopback port; clients reach it
//! through this TCP proxy on the member's public port, which is what lets a member
//! be made unreachable (the listener is closed and every connection dropped; the
//! same port is bound again on recovery), slow (every chunk is held back by the
//! latency, as on a long link, in both directions) or failing (connections are
//! answered by a TLS endpoint with the member's serving certificate that replies
//! `503 ServiceUnavailable` to every request) — with no hook in the API server.
//! TLS passes through untouched otherwise, so client certificates still
//! authenticate.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::Full;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, watch};
use tokio::time::Instant;

/// The faults a member shows to its clients.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Faults {
    /// Refuse connections and drop open ones.
    pub unreachable: bool,
    /// Added to every chunk of traffic in each direction.
    pub latency: Duration,
    /// Answer every request with 503.
    pub failing: bool,
}

impl Faults {
    /// Reads faults from text, one `key: value` per line (`#` starts a
    /// comment): `unreachable: true|false`, `failing: true|false`,
    /// `latency: 2s` (units `ms` or `s`, `0` for none). Keys left out are
    /// off; an unknown key or a bad value is an error naming the line.
    pub fn parse(text: &str) -> Result<Faults, String> {
        let mut f = Faults::default();
        for (i, raw) in text.lines().enumerate() {
            let line = raw.split('#').next().unwrap_or_default().trim();
            if line.is_empty() {
                continue;
            }
            let bad = |why: &str| format!("line {}: {why}: {raw:?}", i + 1);
            let (key, value) = line
                .split_once(':')
                .ok_or_else(|| bad("expected `key: value`"))?;
            let value = value.trim();
            let flag = || match value {
                "true" => Ok(true),
                "false" => Ok(false),
                _ => Err(bad("expected true or false")),
            };
            match key.trim() {
                "unreachable" => f.unreachable = flag()?,
                "failing" => f.failing = flag()?,
                "latency" => {
                    let (number, scale) = if let Some(n) = value.strip_suffix("ms") {
                        (n, 1e-3)
                    } else if let Some(n) = value.strip_suffix('s') {
                        (n, 1.0)
                    } else if value == "0" {
                        ("0", 1.0)
                    } else {
                        return Err(bad("expected a duration such as 500ms or 2s"));
                    };
                    let n: f64 = number
                        .trim()
                        .parse()
                        .map_err(|_| bad("expected a duration such as 500ms or 2s"))?;
                    f.latency = Duration::try_from_secs_f64(n * scale)
                        .map_err(|_| bad("expected a duration such as 500ms or 2s"))?;
                }
                _ => return Err(bad("unknown fault (unreachable, latency, failing)")),
            }
        }
        Ok(f)
    }
}

/// Serves the public port until `shutdown` turns true.
pub async fn run(
    listener: TcpListener,
    inner: SocketAddr,
    tls: Arc<rustls::ServerConfig>,
    mut faults: watch::Receiver<Faults>,
    mut shutdown: watch::Receiver<bool>,
) {
    let addr = match listener.local_addr() {
        Ok(a) => a,
        Err(e) => {
            tracing::error!(error = %e, "sim proxy: no local address");
            return;
        }
    };
    let mut listener = Some(listener);
    loop {
        if *shutdown.borrow() {
            return;
        }
        let current = *faults.borrow_and_update();
        if current.unreachable {
            listener = None;
            tokio::select! {
                changed = faults.changed() => if changed.is_err() { return },
                _ = shutdown.changed() => return,
            }
            continue;
        }
        if listener.is_none() {
            match TcpListener::bind(addr).await {
                Ok(l) => listener = Some(l),
                Err(e) => {
                    tracing::warn!(%addr, error = %e, "sim proxy: cannot bind again; retrying");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            }
        }
        let Some(l) = listener.as_ref() else {
            continue;
        };
        tokio::select! {
            changed = faults.changed() => if changed.is_err() { return },
            _ = shutdown.changed() => return,
            accepted = l.accept() => match accepted {
                Ok((tcp, _)) => {
                    let _ = tcp.set_nodelay(true);
                    tokio::spawn(connection(tcp, inner, tls.clone(), faults.clone(), shutdown.clone()));
                }
                Err(e) => tracing::debug!(error = %e, "sim proxy: accept failed"),
            },
        }
    }
}

async fn connection(
    tcp: TcpStream,
    inner: SocketAddr,
    tls: Arc<rustls::ServerConfig>,
    mut faults: watch::Receiver<Faults>,
    mut shutdown: watch::Receiver<bool>,
) {
    let start = *faults.borrow_and_update();
    let for_pipe = faults.clone();
    let work = async move {
        if start.failing {
            serve_unavailable(tcp, tls).await;
        } else {
            pipe(tcp, inner, for_pipe).await;
        }
    };
    let dropped = async {
        loop {
            if faults.changed().await.is_err() {
                std::future::pending::<()>().await;
            }
            let now = *faults.borrow();
            if now.unreachable || now.failing != start.failing {
                return;
            }
        }
    };
    tokio::select! {
        _ = work => {}
        _ = dropped => {}
        _ = shutdown.changed() => {}
    }
}

/// Copies one direction, holding every chunk back by the current latency from
/// when it arrived.
async fn delayed_copy(
    mut from: tokio::net::tcp::OwnedReadHalf,
    mut to: tokio::net::tcp::OwnedWriteHalf,
    faults: watch::Receiver<Faults>,
) {
    let (tx, mut rx) = mpsc::channel::<(Instant, Bytes)>(64);
    let reader = async move {
        let mut buf = vec![0u8; 16 * 1024];
        loop {
            match from.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    let chunk = Bytes::copy_from_slice(&buf[..n]);
                    if tx.send((Instant::now(), chunk)).await.is_err() {
                        break;
                    }
                }
            }
        }
    };
    let writer = async move {
        while let Some((arrived, chunk)) = rx.recv().await {
            let latency = faults.borrow().latency;
            if !latency.is_zero() {
                tokio::time::sleep_until(arrived + latency).await;
            }
            if to.write_all(&chunk).await.is_err() {
                return;
            }
        }
        let _ = to.shutdown().await;
    };
    tokio::join!(reader, writer);
}

async fn pipe(client: TcpStream, inner: SocketAddr, faults: watch::Receiver<Faults>) {
    let upstream = match TcpStream::connect(inner).await {
        Ok(s) => s,
        Err(e) => {
            tracing::debug!(error = %e, "sim proxy: API server unreachable");
            return;
        }
    };
    let _ = upstream.set_nodelay(true);
    let (cr, cw) = client.into_split();
    let (ur, uw) = upstream.into_split();
    tokio::join!(
        delayed_copy(cr, uw, faults.clone()),
        delayed_copy(ur, cw, faults)
    );
}

/// The body of every answer of a failing member.
pub const UNAVAILABLE: &str = r#"{"kind":"Status","apiVersion":"v1","metadata":{},"status":"Failure","message":"the server is currently unable to handle the request (simulated failure)","reason":"ServiceUnavailable","details":{"retryAfterSeconds":1},"code":503}"#;

async fn serve_unavailable(tcp: TcpStream, tls: Arc<rustls::ServerConfig>) {
    let acceptor = tokio_rustls::TlsAcceptor::from(tls);
    let Ok(stream) = acceptor.accept(tcp).await else {
        return;
    };
    let service = service_fn(|_req: hyper::Request<hyper::body::Incoming>| async {
        let response = hyper::Response::builder()
            .status(503)
            .header("content-type", "application/json")
            .header("retry-after", "1")
            .body(Full::new(Bytes::from_static(UNAVAILABLE.as_bytes())));
        Ok::<_, Infallible>(response.unwrap_or_else(|_| {
            let mut r = hyper::Response::new(Full::new(Bytes::new()));
            *r.status_mut() = hyper::StatusCode::SERVICE_UNAVAILABLE;
            r
        }))
    });
    let builder = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new());
    let _ = builder
        .serve_connection(TokioIo::new(stream), service)
        .await;
}

/// The TLS configuration of the failing endpoint: the member's serving certificate.
pub fn tls_config(
    cert_pem: &str,
    ca_pem: &str,
    key_pem: &str,
) -> Result<rustls::ServerConfig, String> {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let cert = CertificateDer::from_pem_slice(cert_pem.as_bytes()).map_err(|e| e.to_string())?;
    let ca = CertificateDer::from_pem_slice(ca_pem.as_bytes()).map_err(|e| e.to_string())?;
    let key = PrivateKeyDer::from_pem_slice(key_pem.as_bytes()).map_err(|e| e.to_string())?;
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .with_no_client_auth()
        .with_single_cert(vec![cert, ca], key)
        .map_err(|e| e.to_string())?;
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(config)
}

#[cfg(test)]
mod fault_text_tests {
    use super::*;

    #[test]
    fn faults_parse_from_text() {
        let f = Faults::parse("# slow link\nlatency: 1.5s\nfailing: true\n").unwrap();
        assert_eq!(f.latency, Duration::from_millis(1500));
        assert!(f.failing && !f.unreachable);
        assert_eq!(Faults::parse("").unwrap(), Faults::default());
        assert_eq!(
            Faults::parse("latency: 250ms").unwrap().latency,
            Duration::from_millis(250)
        );
        for bad in ["latency: soon", "failing: yes", "slow: true", "nonsense"] {
            let e = Faults::parse(bad).unwrap_err();
            assert!(e.starts_with("line 1:"), "{bad}: {e}");
        }
    }
}
