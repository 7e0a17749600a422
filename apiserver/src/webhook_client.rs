//! Calling webhooks the way kube-apiserver does (admission and CRD conversion):
//! an HTTPS POST of a JSON review to `clientConfig.url`, or to
//! `clientConfig.service` resolved through the Service's Endpoints in the store,
//! with the server certificate verified against `clientConfig.caBundle`.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use base64::Engine;
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName};
use serde_json::Value;

use crate::storage::Snapshot;

/// Why a webhook call failed.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("invalid webhook client config: {0}")]
    Config(String),
    #[error("service {namespace}/{name} has no ready endpoints")]
    NoEndpoints { namespace: String, name: String },
    #[error("failed calling webhook \"{url}\": {message}")]
    Call { url: String, message: String },
    #[error("webhook \"{url}\" timed out after {seconds}s")]
    Timeout { url: String, seconds: u64 },
}

/// Where a webhook is reached.
#[derive(Debug, Clone)]
pub struct Target {
    /// The address connected to.
    pub addr: SocketAddr,
    /// The name the server certificate must carry.
    pub server_name: String,
    /// Path and query of the request.
    pub path: String,
    /// The URL shown in messages.
    pub display: String,
    pub ca_bundle: Option<Vec<u8>>,
}

fn endpoint_address(
    snapshot: &Snapshot,
    namespace: &str,
    name: &str,
    service_port: u16,
) -> Option<SocketAddr> {
    let service = snapshot.get(&format!("/core/services/{namespace}/{name}"))?;
    let ports = service
        .kept()
        .pointer("/spec/ports")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    let port_spec = ports
        .iter()
        .find(|p| p.get("port").and_then(Value::as_u64) == Some(u64::from(service_port)));
    let port_name = port_spec
        .and_then(|p| p.get("name"))
        .and_then(Value::as_str)
        .unwrap_or("");
    let target_port = port_spec
        .and_then(|p| p.get("targetPort"))
        .and_then(Value::as_u64)
        .unwrap_or(u64::from(service_port));
    // Endpoints first, then EndpointSlices labelled with the service name.
    if let Some(ep) = snapshot.get(&format!("/core/endpoints/{namespace}/{name}")) {
        for subset in ep
            .kept()
            .get("subsets")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            let port = subset
                .get("ports")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .find(|p| p.get("name").and_then(Value::as_str).unwrap_or("") == port_name)
                .and_then(|p| p.get("port"))
                .and_then(Value::as_u64)
                .unwrap_or(target_port);
            for a in subset
                .get("addresses")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
            {
                if let Some(ip) = a
                    .get("ip")
                    .and_then(Value::as_str)
                    .and_then(|ip| ip.parse().ok())
                {
                    return Some(SocketAddr::new(ip, u16::try_from(port).ok()?));
                }
            }
        }
    }
    for kv in snapshot.range(
        &format!("/discovery.k8s.io/endpointslices/{namespace}/"),
        None,
    ) {
        let slice = kv.kept();
        if slice
            .pointer("/metadata/labels/kubernetes.io~1service-name")
            .and_then(Value::as_str)
            != Some(name)
        {
            continue;
        }
        let port = slice
            .get("ports")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .find(|p| p.get("name").and_then(Value::as_str).unwrap_or("") == port_name)
            .and_then(|p| p.get("port"))
            .and_then(Value::as_u64)
            .unwrap_or(target_port);
        for e in slice
            .get("endpoints")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            if e.pointer("/conditions/ready") == Some(&Value::Bool(false)) {
                continue;
            }
            if let Some(ip) = e
                .pointer("/addresses/0")
                .and_then(Value::as_str)
                .and_then(|ip| ip.parse().ok())
            {
                return Some(SocketAddr::new(ip, u16::try_from(port).ok()?));
            }
        }
    }
    None
}

/// The address of a `type: ExternalName` Service: its `externalName` looked up
/// in DNS (bounded) on the Service's port. None for other Services or when the name
/// does not resolve (then the Endpoints of the same name are used, which is how the
/// embedded default serves Karmada's `externalName` manifests).
async fn external_address(
    snapshot: &Snapshot,
    namespace: &str,
    name: &str,
    port: u16,
) -> Option<SocketAddr> {
    let service = snapshot.get(&format!("/core/services/{namespace}/{name}"))?;
    if service.kept().pointer("/spec/type").and_then(Value::as_str) != Some("ExternalName") {
        return None;
    }
    let host = service
        .kept()
        .pointer("/spec/externalName")
        .and_then(Value::as_str)?
        .trim_end_matches('.')
        .to_string();
    let lookup = tokio::net::lookup_host((host.as_str(), port));
    match tokio::time::timeout(Duration::from_secs(2), lookup).await {
        Ok(Ok(mut addrs)) => addrs.next(),
        _ => {
            tracing::debug!(%namespace, %name, %host, "externalName does not resolve; using endpoints");
            None
        }
    }
}

/// Resolves a `clientConfig` (admissionregistration / apiextensions shape).
pub async fn resolve(client_config: &Value, snapshot: &Snapshot) -> Result<Target, Error> {
    let ca_bundle = match client_config.get("caBundle").and_then(Value::as_str) {
        Some(b) if !b.is_empty() => Some(
            base64::engine::general_purpose::STANDARD
                .decode(b)
                .map_err(|_| Error::Config("caBundle is not valid base64".into()))?,
        ),
        _ => None,
    };
    if let Some(url) = client_config.get("url").and_then(Value::as_str) {
        let rest = url
            .strip_prefix("https://")
            .ok_or_else(|| Error::Config(format!("url \"{url}\" must use https")))?;
        let (authority, path) = match rest.find('/') {
            Some(i) => (&rest[..i], rest[i..].to_string()),
            None => (rest, "/".to_string()),
        };
        let (host, port) = match authority.rsplit_once(':') {
            Some((h, p)) if !h.ends_with(']') || authority.starts_with('[') => (
                h.trim_matches(|c| c == '[' || c == ']').to_string(),
                p.parse::<u16>()
                    .map_err(|_| Error::Config(format!("bad port in \"{url}\"")))?,
            ),
            _ => (
                authority.trim_matches(|c| c == '[' || c == ']').to_string(),
                443,
            ),
        };
        let addr = tokio::net::lookup_host((host.as_str(), port))
            .await
            .ok()
            .and_then(|mut a| a.next())
            .ok_or_else(|| Error::Call {
                url: url.to_string(),
                message: format!("cannot resolve host \"{host}\""),
            })?;
        return Ok(Target {
            addr,
            server_name: host,
            path,
            display: url.to_string(),
            ca_bundle,
        });
    }
    let service = client_config
        .get("service")
        .ok_or_else(|| Error::Config("one of url or service is required".into()))?;
    let namespace = service
        .get("namespace")
        .and_then(Value::as_str)
        .unwrap_or("default")
        .to_string();
    let name = service
        .get("name")
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_string();
    let port = service.get("port").and_then(Value::as_u64).unwrap_or(443);
    let port = u16::try_from(port)
        .map_err(|_| Error::Config(format!("service port {port} is out of range")))?;
    let path = service
        .get("path")
        .and_then(Value::as_str)
        .unwrap_or("/")
        .to_string();
    let external = external_address(snapshot, &namespace, &name, port).await;
    let addr = match external {
        Some(addr) => addr,
        None => endpoint_address(snapshot, &namespace, &name, port).ok_or_else(|| {
            Error::NoEndpoints {
                namespace: namespace.clone(),
                name: name.clone(),
            }
        })?,
    };
    Ok(Target {
        addr,
        server_name: format!("{name}.{namespace}.svc"),
        display: format!("https://{name}.{namespace}.svc:{port}{path}"),
        path,
        ca_bundle,
    })
}

/// TLS client settings shared by every connection made with the same ones:
/// a `ClientConfig` carries a session cache of about 200 KB, and building one
/// parses certificates. Keyed by what they are built from.
static TLS_CONFIGS: std::sync::LazyLock<
    std::sync::Mutex<std::collections::HashMap<Vec<u8>, Arc<rustls::ClientConfig>>>,
> = std::sync::LazyLock::new(Default::default);

/// Distinct settings kept; past it they are built again.
const MAX_TLS_CONFIGS: usize = 64;

/// The settings built from `key` (everything `build` reads), built once.
pub(crate) fn shared_tls_config(
    key: Vec<u8>,
    build: impl FnOnce() -> Result<rustls::ClientConfig, String>,
) -> Result<Arc<rustls::ClientConfig>, String> {
    if let Some(config) = TLS_CONFIGS.lock().expect("TLS settings lock").get(&key) {
        return Ok(config.clone());
    }
    let config = Arc::new(build()?);
    let mut configs = TLS_CONFIGS.lock().expect("TLS settings lock");
    if configs.len() >= MAX_TLS_CONFIGS {
        configs.clear();
    }
    configs.insert(key, config.clone());
    Ok(config)
}

fn tls_config(ca_bundle: Option<&[u8]>) -> Result<rustls::ClientConfig, String> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut roots = rustls::RootCertStore::empty();
    if let Some(pem) = ca_bundle {
        for cert in CertificateDer::pem_slice_iter(pem) {
            let cert = cert.map_err(|e| format!("caBundle: {e}"))?;
            roots.add(cert).map_err(|e| format!("caBundle: {e}"))?;
        }
    }
    Ok(rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .with_root_certificates(roots)
        .with_no_client_auth())
}

/// A connect failure worded as Go's net package words it (`dial tcp ADDR: connect:
/// connection refused`), which is what kube-apiserver's messages show.
fn dial_error(addr: SocketAddr, e: &std::io::Error) -> String {
    let why = match e.kind() {
        std::io::ErrorKind::ConnectionRefused => "connection refused".to_string(),
        std::io::ErrorKind::TimedOut => "i/o timeout".to_string(),
        _ => e.to_string(),
    };
    format!("dial tcp {addr}: connect: {why}")
}

/// POSTs `body` as JSON and returns the JSON answer.
/// Idle HTTP/1.1 connections to webhooks, by address, server name and CA: a TLS
/// handshake per call would cost more than the call itself.
type Sender = hyper::client::conn::http1::SendRequest<Full<Bytes>>;

static IDLE: std::sync::LazyLock<std::sync::Mutex<std::collections::HashMap<String, Vec<Sender>>>> =
    std::sync::LazyLock::new(Default::default);

/// Idle connections kept per webhook.
const MAX_IDLE: usize = 16;

/// A new TLS connection to a webhook; errors worded as kube-apiserver words them.
async fn connect(target: &Target) -> Result<Sender, String> {
    let ca = target.ca_bundle.as_deref();
    let key = [b"webhook\0".as_slice(), ca.unwrap_or_default()].concat();
    let config = shared_tls_config(key, || tls_config(ca))?;
    let tcp = tokio::net::TcpStream::connect(target.addr)
        .await
        .map_err(|e| dial_error(target.addr, &e))?;
    let name = ServerName::try_from(target.server_name.clone()).map_err(|e| e.to_string())?;
    let tls = tokio_rustls::TlsConnector::from(config)
        .connect(name, tcp)
        .await
        .map_err(|e| format!("tls: {e}"))?;
    let (sender, conn) = hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(tls))
        .await
        .map_err(|e| e.to_string())?;
    tokio::spawn(conn);
    Ok(sender)
}

fn pool_key(target: &Target) -> String {
    use std::hash::{Hash, Hasher};
    let mut h = std::collections::hash_map::DefaultHasher::new();
    target.ca_bundle.hash(&mut h);
    format!("{}|{}|{:x}", target.addr, target.server_name, h.finish())
}

fn take_idle(key: &str) -> Option<Sender> {
    let mut idle = IDLE.lock().expect("webhook pool lock");
    let list = idle.get_mut(key)?;
    while let Some(sender) = list.pop() {
        if sender.is_ready() {
            return Some(sender);
        }
    }
    None
}

fn put_idle(key: String, sender: Sender) {
    if sender.is_closed() {
        return;
    }
    let mut idle = IDLE.lock().expect("webhook pool lock");
    let list = idle.entry(key).or_default();
    if list.len() < MAX_IDLE {
        list.push(sender);
    }
}

pub async fn post_json(target: &Target, body: &Value, timeout: Duration) -> Result<Value, Error> {
    let url = target.display.clone();
    let call = |message: String| Error::Call {
        url: url.clone(),
        message,
    };
    let work = async {
        let key = pool_key(target);
        let pooled = take_idle(&key);
        let reused = pooled.is_some();
        let mut sender = match pooled {
            Some(sender) => sender,
            None => connect(target).await.map_err(&call)?,
        };
        let bytes = serde_json::to_vec(body).map_err(|e| call(e.to_string()))?;
        let request = http::Request::post(&target.path)
            .header(http::header::HOST, target.server_name.as_str())
            .header(http::header::CONTENT_TYPE, "application/json")
            .header(http::header::ACCEPT, "application/json")
            .body(Full::new(Bytes::from(bytes)))
            .map_err(|e| call(e.to_string()))?;
        let response = match sender.send_request(request.clone()).await {
            Ok(r) => r,
            // A kept connection the webhook closed meanwhile: once more on a new one.
            Err(_) if reused => {
                sender = connect(target).await.map_err(&call)?;
                sender
                    .send_request(request)
                    .await
                    .map_err(|e| call(e.to_string()))?
            }
            Err(e) => return Err(call(e.to_string())),
        };
        let status = response.status();
        let body = response
            .into_body()
            .collect()
            .await
            .map_err(|e| call(e.to_string()))?
            .to_bytes();
        // The connection is free again: keep it for the next call to this webhook.
        put_idle(key, sender);
        if !status.is_success() {
            return Err(call(format!(
                "the server responded with status {status}: {}",
                String::from_utf8_lossy(&body)
            )));
        }
        serde_json::from_slice(&body).map_err(|e| call(format!("invalid JSON answer: {e}")))
    };
    match tokio::time::timeout(timeout, work).await {
        Ok(r) => r,
        Err(_) => Err(Error::Timeout {
            url: target.display.clone(),
            seconds: timeout.as_secs(),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::Storage;
    use crate::storage::kv::{Config, KvStore};
    use serde_json::json;

    #[tokio::test]
    async fn external_name_services_fall_back_to_endpoints() {
        let store = KvStore::open(crate::storage::memory::Memory, Config::default()).expect("open");
        let ns = "karmada-system";
        let name = "karmada-aggregated-apiserver";
        store
            .create(
                format!("/core/services/{ns}/{name}"),
                json!({"metadata": {"name": name, "namespace": ns},
                       "spec": {"type": "ExternalName",
                                "externalName": "karmada-aggregated-apiserver.karmada-system.svc.cluster.local"}}),
            )
            .await
            .expect("service");
        store
            .create(
                format!("/core/endpoints/{ns}/{name}"),
                json!({"metadata": {"name": name, "namespace": ns},
                       "subsets": [{"addresses": [{"ip": "127.0.0.1"}], "ports": [{"port": 7443}]}]}),
            )
            .await
            .expect("endpoints");
        let config = json!({"service": {"namespace": ns, "name": name, "port": 443}});
        let target = resolve(&config, &store.snapshot()).await.expect("resolved");
        assert_eq!(target.addr, "127.0.0.1:7443".parse().expect("addr"));
        assert_eq!(target.server_name, format!("{name}.{ns}.svc"));

        // A resolvable externalName is used as is, on the Service's port.
        let other = KvStore::open(crate::storage::memory::Memory, Config::default()).expect("open");
        other
            .create(
                format!("/core/services/{ns}/{name}"),
                json!({"metadata": {"name": name, "namespace": ns},
                       "spec": {"type": "ExternalName", "externalName": "localhost"}}),
            )
            .await
            .expect("service");
        let target = resolve(&config, &other.snapshot()).await.expect("resolved");
        assert_eq!(target.addr.port(), 443);
        assert!(target.addr.ip().is_loopback(), "{target:?}");
    }

    /// Connections made with the same TLS settings share one `ClientConfig`
    /// (and its session cache); other settings get their own.
    #[test]
    fn tls_settings_are_built_once_per_key() {
        let _ = rustls::crypto::ring::default_provider().install_default();
        let built = std::sync::atomic::AtomicUsize::new(0);
        let build = || {
            built.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            tls_config(None)
        };
        let a = shared_tls_config(b"test\0one".to_vec(), build).expect("settings");
        let b = shared_tls_config(b"test\0one".to_vec(), build).expect("settings");
        let c = shared_tls_config(b"test\0two".to_vec(), build).expect("settings");
        assert!(Arc::ptr_eq(&a, &b));
        assert!(!Arc::ptr_eq(&a, &c));
        assert_eq!(built.load(std::sync::atomic::Ordering::SeqCst), 2);
    }
}
