//! API aggregation: APIService objects (apiregistration.k8s.io/v1) with a
//! `spec.service` make this server a front proxy for that group/version, as
//! kube-aggregator does. Requests are forwarded over HTTPS to the Service's
//! endpoints with the front-proxy client certificate and the caller's identity in
//! `X-Remote-User` / `X-Remote-Group`; responses (watches included) stream back.
//! Discovery and the OpenAPI v3 index include the remote groups, and a loop keeps
//! each APIService's `Available` condition current.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures::StreamExt;
use http::{HeaderValue, Request, Response, StatusCode, header};
use http_body::Frame;
use http_body_util::{BodyExt, Full, StreamBody};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use serde_json::{Value, json};

use crate::endpoints::Body;
use crate::server::auth::User;
use crate::status::ApiError;
use crate::storage::Snapshot;
use crate::webhook_client;

/// The storage prefix of APIService objects.
const PREFIX: &str = "/apiregistration.k8s.io/apiservices/";

/// The identity this server presents to aggregated servers.
#[derive(Clone)]
pub struct ProxyIdentity {
    pub cert_pem: String,
    pub key_pem: String,
}

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// The body of a forwarded request.
pub(crate) type OutBody = http_body_util::combinators::UnsyncBoxBody<Bytes, BoxError>;

/// A remote group/version and where it is served.
#[derive(Debug, Clone)]
pub struct Remote {
    pub name: String,
    pub group: String,
    pub version: String,
    pub client_config: Value,
    pub insecure: bool,
    pub group_priority: i64,
    pub version_priority: i64,
}

fn remote_of(object: &Value) -> Option<Remote> {
    let spec = object.get("spec")?;
    let service = spec.get("service").filter(|s| !s.is_null())?;
    let mut client_config = json!({"service": service});
    if let Some(ca) = spec.get("caBundle").and_then(Value::as_str) {
        client_config["caBundle"] = json!(ca);
    }
    Some(Remote {
        name: object
            .pointer("/metadata/name")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string(),
        group: spec
            .get("group")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string(),
        version: spec
            .get("version")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string(),
        client_config,
        insecure: spec.get("insecureSkipTLSVerify") == Some(&Value::Bool(true)),
        group_priority: spec
            .get("groupPriorityMinimum")
            .and_then(Value::as_i64)
            .unwrap_or(0),
        version_priority: spec
            .get("versionPriority")
            .and_then(Value::as_i64)
            .unwrap_or(0),
    })
}

/// Every remote group/version registered, highest priority first.
pub fn remotes(snapshot: &Snapshot) -> Vec<Remote> {
    let mut out: Vec<Remote> = snapshot
        .range(PREFIX, None)
        .filter_map(|kv| remote_of(kv.kept()))
        .collect();
    out.sort_by(|a, b| {
        b.group_priority
            .cmp(&a.group_priority)
            .then(a.group.cmp(&b.group))
            .then(b.version_priority.cmp(&a.version_priority))
    });
    out
}

/// The remote serving `group/version`, if one is registered.
pub fn remote_for(snapshot: &Snapshot, group: &str, version: &str) -> Option<Remote> {
    snapshot
        .get(&format!("{PREFIX}{version}.{group}"))
        .and_then(|kv| remote_of(kv.kept()))
}

/// Accepts any server certificate (`insecureSkipTLSVerify`).
#[derive(Debug)]
pub(crate) struct AcceptAny(pub(crate) Arc<rustls::crypto::CryptoProvider>);

impl rustls::client::danger::ServerCertVerifier for AcceptAny {
    fn verify_server_cert(
        &self,
        _: &CertificateDer<'_>,
        _: &[CertificateDer<'_>],
        _: &ServerName<'_>,
        _: &[u8],
        _: rustls::pki_types::UnixTime,
    ) -> Result<rustls::client::danger::ServerCertVerified, rustls::Error> {
        Ok(rustls::client::danger::ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

fn tls_config(
    target: &webhook_client::Target,
    insecure: bool,
    identity: &ProxyIdentity,
) -> Result<rustls::ClientConfig, String> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = rustls::ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?;
    let builder = if insecure {
        builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(AcceptAny(provider)))
    } else {
        let mut roots = rustls::RootCertStore::empty();
        for cert in CertificateDer::pem_slice_iter(target.ca_bundle.as_deref().unwrap_or_default())
        {
            roots
                .add(cert.map_err(|e| e.to_string())?)
                .map_err(|e| e.to_string())?;
        }
        builder.with_root_certificates(roots)
    };
    let certs: Vec<CertificateDer<'static>> =
        CertificateDer::pem_slice_iter(identity.cert_pem.as_bytes())
            .collect::<Result<_, _>>()
            .map_err(|e| e.to_string())?;
    let key =
        PrivateKeyDer::from_pem_slice(identity.key_pem.as_bytes()).map_err(|e| e.to_string())?;
    builder
        .with_client_auth_cert(certs, key)
        .map_err(|e| e.to_string())
}

/// Opens an HTTP/1.1 connection to a remote's endpoint.
async fn connect(
    remote: &Remote,
    snapshot: &Snapshot,
    identity: &ProxyIdentity,
) -> Result<hyper::client::conn::http1::SendRequest<OutBody>, String> {
    let target = webhook_client::resolve(&remote.client_config, snapshot)
        .await
        .map_err(|e| e.to_string())?;
    let key = [
        b"aggregator\0".as_slice(),
        &[u8::from(remote.insecure)],
        target.ca_bundle.as_deref().unwrap_or_default(),
        b"\0",
        identity.cert_pem.as_bytes(),
    ]
    .concat();
    let config =
        webhook_client::shared_tls_config(key, || tls_config(&target, remote.insecure, identity))?;
    let tcp = tokio::time::timeout(
        Duration::from_secs(5),
        tokio::net::TcpStream::connect(target.addr),
    )
    .await
    .map_err(|_| format!("dial tcp {}: i/o timeout", target.addr))?
    .map_err(|e| format!("dial tcp {}: {e}", target.addr))?;
    let name = ServerName::try_from(target.server_name.clone()).map_err(|e| e.to_string())?;
    let tls = tokio_rustls::TlsConnector::from(config)
        .connect(name, tcp)
        .await
        .map_err(|e| format!("tls: {e}"))?;
    let (sender, conn) = hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(tls))
        .await
        .map_err(|e| e.to_string())?;
    tokio::spawn(async move {
        let _ = conn.with_upgrades().await;
    });
    Ok(sender)
}

fn unavailable(remote: &Remote, why: &str) -> ApiError {
    ApiError::unavailable(format!(
        "the server is currently unable to handle the request ({}/{}: {why})",
        remote.group, remote.version
    ))
}

/// Whether a request asks to switch protocols (`Connection: Upgrade`), as exec,
/// attach and port-forward do.
pub fn is_upgrade(headers: &http::HeaderMap) -> bool {
    headers.contains_key(header::UPGRADE)
        && headers
            .get_all(header::CONNECTION)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .any(|t| t.trim().eq_ignore_ascii_case("upgrade"))
}

/// Removes the headers that name or act on behalf of a user (credentials,
/// front-proxy and impersonation headers) and the hop-by-hop ones, keeping
/// `Connection`/`Upgrade` on an upgrade request.
pub(crate) fn strip_identity_headers(headers: &mut http::HeaderMap) {
    let upgrade = is_upgrade(headers);
    for h in [header::AUTHORIZATION, header::HOST] {
        headers.remove(h);
    }
    if !upgrade {
        headers.remove(header::CONNECTION);
    }
    let named: Vec<header::HeaderName> = headers
        .keys()
        .filter(|k| {
            let k = k.as_str();
            k.starts_with("x-remote-") || k.starts_with("impersonate-")
        })
        .cloned()
        .collect();
    for h in named {
        headers.remove(h);
    }
}

/// Why forwarding a request failed.
#[derive(Debug, thiserror::Error)]
pub(crate) enum ForwardError {
    /// The client asked for an upgrade on a connection that cannot be upgraded
    /// (HTTP/2, or a request made in-process).
    #[error("upgrade requests are only supported over HTTP/1.1")]
    UpgradeUnsupported,
    /// The backend did not answer.
    #[error("{0}")]
    Send(#[source] hyper::Error),
}

/// Sends a prepared request (path-only URI, headers set) on `sender` and streams
/// the answer back. An upgrade request whose backend answers
/// `101 Switching Protocols` is spliced end to end: once both sides have
/// switched, bytes are copied in both directions until either closes.
pub(crate) async fn forward<B>(
    sender: &mut hyper::client::conn::http1::SendRequest<OutBody>,
    mut parts: http::request::Parts,
    body: B,
) -> Result<Response<Body>, ForwardError>
where
    B: http_body::Body<Data = Bytes> + Send + 'static,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let client_upgrade = if is_upgrade(&parts.headers) {
        Some(
            parts
                .extensions
                .remove::<hyper::upgrade::OnUpgrade>()
                .ok_or(ForwardError::UpgradeUnsupported)?,
        )
    } else {
        None
    };
    // HTTP/2 pseudo-headers are gone; a request over HTTP/1.1 needs a version it knows.
    parts.version = http::Version::HTTP_11;
    let body: OutBody = body.map_err(Into::into).boxed_unsync();
    let mut response = sender
        .send_request(Request::from_parts(parts, body))
        .await
        .map_err(ForwardError::Send)?;
    if let Some(client_upgrade) = client_upgrade
        && response.status() == StatusCode::SWITCHING_PROTOCOLS
    {
        let backend_upgrade = hyper::upgrade::on(&mut response);
        tokio::spawn(async move {
            match futures::future::try_join(client_upgrade, backend_upgrade).await {
                Ok((client, backend)) => {
                    let mut client = hyper_util::rt::TokioIo::new(client);
                    let mut backend = hyper_util::rt::TokioIo::new(backend);
                    if let Err(e) = tokio::io::copy_bidirectional(&mut client, &mut backend).await {
                        tracing::debug!(error = %e, "upgraded connection ended");
                    }
                }
                Err(e) => tracing::debug!(error = %e, "upgrade failed"),
            }
        });
        let (parts, _) = response.into_parts();
        return Ok(Response::from_parts(
            parts,
            Full::new(Bytes::new()).boxed_unsync(),
        ));
    }
    let (parts, incoming) = response.into_parts();
    let stream = incoming
        .into_data_stream()
        .take_while(|chunk| futures::future::ready(chunk.is_ok()))
        .filter_map(|chunk| {
            futures::future::ready(
                chunk
                    .ok()
                    .map(|b| Ok::<_, std::convert::Infallible>(Frame::data(b))),
            )
        });
    Ok(Response::from_parts(
        parts,
        StreamBody::new(stream).boxed_unsync(),
    ))
}

/// Forwards a request to its remote and streams the answer back.
pub async fn proxy<B>(
    remote: &Remote,
    snapshot: &Snapshot,
    identity: &ProxyIdentity,
    req: Request<B>,
    user: &User,
) -> Result<Response<Body>, ApiError>
where
    B: http_body::Body<Data = Bytes> + Send + 'static,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let mut sender = connect(remote, snapshot, identity)
        .await
        .map_err(|e| unavailable(remote, &e))?;
    let (mut parts, body) = req.into_parts();
    strip_identity_headers(&mut parts.headers);
    if let Ok(v) = HeaderValue::from_str(&user.name) {
        parts.headers.insert("x-remote-user", v);
    }
    for g in &user.groups {
        if let Ok(v) = HeaderValue::from_str(g) {
            parts.headers.append("x-remote-group", v);
        }
    }
    for (key, values) in &user.extra {
        let name = format!(
            "x-remote-extra-{}",
            crate::server::auth::escape_extra_key(key)
        );
        let Ok(name) = http::HeaderName::from_bytes(name.as_bytes()) else {
            continue;
        };
        for value in values {
            if let Ok(v) = HeaderValue::from_str(value) {
                parts.headers.append(name.clone(), v);
            }
        }
    }
    parts
        .headers
        .insert(header::HOST, HeaderValue::from_static("localhost"));
    let path = parts
        .uri
        .path_and_query()
        .map(|p| p.as_str().to_string())
        .unwrap_or_else(|| "/".into());
    parts.uri = path
        .parse()
        .map_err(|_| ApiError::bad_request("invalid request path"))?;
    forward(&mut sender, parts, body)
        .await
        .map_err(|e| match e {
            ForwardError::UpgradeUnsupported => not_implemented(&e),
            ForwardError::Send(e) => unavailable(remote, &e.to_string()),
        })
}

/// 501 for what the proxy cannot do.
pub(crate) fn not_implemented(e: &dyn std::fmt::Display) -> ApiError {
    ApiError::new(501, "NotImplemented", e.to_string())
}

/// GETs a path on a remote (discovery, health), as the front proxy.
pub async fn get(
    remote: &Remote,
    snapshot: &Snapshot,
    identity: &ProxyIdentity,
    path: &str,
    accept: &str,
) -> Result<Value, String> {
    let mut sender = connect(remote, snapshot, identity).await?;
    let request = Request::get(path)
        .header(header::HOST, "localhost")
        .header(header::ACCEPT, accept)
        .header("x-remote-user", "system:kube-aggregator")
        .header("x-remote-group", "system:masters")
        .body(
            Full::new(Bytes::new())
                .map_err(|never| -> BoxError { match never {} })
                .boxed_unsync(),
        )
        .map_err(|e| e.to_string())?;
    let response = tokio::time::timeout(Duration::from_secs(5), sender.send_request(request))
        .await
        .map_err(|_| "timed out".to_string())?
        .map_err(|e| e.to_string())?;
    let status = response.status();
    let body = response
        .into_body()
        .collect()
        .await
        .map_err(|e| e.to_string())?
        .to_bytes();
    if status != StatusCode::OK {
        return Err(format!("{path} answered {status}"));
    }
    serde_json::from_slice(&body).map_err(|e| e.to_string())
}

/// Aggregated discovery documents of remotes, cached briefly.
#[derive(Default)]
pub struct DiscoveryCache {
    entries: Mutex<HashMap<String, (Instant, Option<Value>)>>,
}

impl DiscoveryCache {
    /// The `APIGroupDiscovery` items a remote serves for its group (None when it does
    /// not answer).
    pub async fn group(
        &self,
        remote: &Remote,
        snapshot: &Snapshot,
        identity: &ProxyIdentity,
    ) -> Option<Value> {
        if let Some((at, doc)) = self
            .entries
            .lock()
            .expect("discovery cache")
            .get(&remote.name)
            && at.elapsed() < Duration::from_secs(5)
        {
            return doc.clone();
        }
        let accept = "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList";
        let doc = get(remote, snapshot, identity, "/apis", accept)
            .await
            .ok()
            .and_then(|d| {
                d.get("items").and_then(Value::as_array).and_then(|items| {
                    items
                        .iter()
                        .find(|i| {
                            i.pointer("/metadata/name").and_then(Value::as_str)
                                == Some(&remote.group)
                        })
                        .cloned()
                })
            });
        self.entries
            .lock()
            .expect("discovery cache")
            .insert(remote.name.clone(), (Instant::now(), doc.clone()));
        doc
    }
}

pub mod availability {
    //! Keeps each APIService's `Available` condition current: local ones are
    //! available; remote ones when their group/version answers discovery.
    //! Also registers a local APIService for every built-in group/version.

    use std::sync::Arc;
    use std::time::Duration;

    use serde_json::{Value, json};

    use super::{PREFIX, ProxyIdentity, remote_of};
    use crate::registry::meta;
    use crate::registry::store::{Part, Store, WriteOptions};

    fn condition(available: bool, reason: &str, message: &str) -> Value {
        json!({"type": "Available", "status": if available { "True" } else { "False" }, "reason": reason, "message": message})
    }

    /// Creates `v1.`, `v1.apps`, ... for the built-in group/versions when missing.
    async fn register_local(store: &Store) {
        let Some(info) = store
            .catalog
            .get("apiregistration.k8s.io", "v1", "apiservices")
        else {
            return;
        };
        for (group, versions) in store.catalog.groups() {
            for (i, version) in versions.iter().enumerate() {
                let name = format!("{version}.{group}");
                if store
                    .storage
                    .snapshot()
                    .get(&format!("{PREFIX}{name}"))
                    .is_some()
                {
                    continue;
                }
                // Custom resources are registered too, as kube's autoregistration does.
                let object = json!({
                    "apiVersion": "apiregistration.k8s.io/v1", "kind": "APIService",
                    "metadata": {"name": name, "labels": {"kube-aggregator.kubernetes.io/automanaged": "onstart"}},
                    "spec": {"group": group, "version": version, "groupPriorityMinimum": 18000, "versionPriority": 15 - i as i64},
                });
                let _ = store
                    .create(
                        &info,
                        None,
                        object,
                        &WriteOptions::manager("kube-aggregator"),
                    )
                    .await;
            }
        }
    }

    /// Runs until the process ends.
    pub async fn run(store: Arc<Store>, identity: ProxyIdentity) {
        register_local(&store).await;
        let Some(info) = store
            .catalog
            .get("apiregistration.k8s.io", "v1", "apiservices")
        else {
            return;
        };
        loop {
            register_local(&store).await;
            let snapshot = store.storage.snapshot();
            let services: Vec<Value> = snapshot
                .range(PREFIX, None)
                .map(|kv| Arc::unwrap_or_clone(kv.value()))
                .collect();
            for svc in services {
                let name = meta::meta_str(&svc, "name").to_string();
                let wanted = match remote_of(&svc) {
                    None => condition(true, "Local", "Local APIServices are always available"),
                    Some(remote) => match super::get(
                        &remote,
                        &snapshot,
                        &identity,
                        &format!("/apis/{}/{}", remote.group, remote.version),
                        "application/json",
                    )
                    .await
                    {
                        Ok(_) => condition(true, "Passed", "all checks passed"),
                        Err(e) => condition(
                            false,
                            "FailedDiscoveryCheck",
                            &format!("failing or missing response from {}: {e}", remote.name),
                        ),
                    },
                };
                let current = svc.pointer("/status/conditions/0");
                let same = current.is_some_and(|c| {
                    c.get("status") == wanted.get("status")
                        && c.get("reason") == wanted.get("reason")
                });
                if same {
                    continue;
                }
                let mut status = wanted;
                status["lastTransitionTime"] = json!(meta::now_rfc3339());
                let patch = json!({"status": {"conditions": [status]}});
                if let Err(e) = store
                    .patch(
                        &info,
                        None,
                        &name,
                        crate::registry::patch::PatchType::Merge,
                        &patch,
                        Part::Status,
                        &WriteOptions::manager("kube-aggregator"),
                    )
                    .await
                {
                    tracing::debug!(apiservice = %name, error = %e, "updating APIService status failed");
                }
            }
            tokio::time::sleep(Duration::from_secs(5)).await;
        }
    }
}
