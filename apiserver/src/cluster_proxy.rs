//! The `clusters/NAME/proxy/...` subresource of Karmada's aggregated API server:
//! a request to `/apis/cluster.karmada.io/v1alpha1/clusters/NAME/proxy/PATH` is
//! forwarded to `PATH` under the member's `spec.apiEndpoint`, authenticated with the
//! bearer token and CA bundle of the Cluster's `spec.secretRef` Secret, and made
//! **as the caller**: `Impersonate-User` / `Impersonate-Group` carry the user this
//! server received, so the member's own RBAC decides. Watches stream and upgrade
//! requests are spliced end to end. Start at [`proxy`].
//!
//! The Secret lives on the host control plane, not in this server's store; a
//! [`CredentialsSource`] (set in `server::Config`) reads it.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use base64::Engine;
use bytes::Bytes;
use http::{HeaderValue, Response, header};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName};
use serde_json::Value;

use crate::aggregator::{self, ForwardError};
use crate::endpoints::Body;
use crate::server::auth::User;
use crate::status::ApiError;

/// What reaching a member takes: a bearer token and the CA (PEM) its serving
/// certificate chains to.
#[derive(Clone, PartialEq, Eq)]
pub struct Credentials {
    /// The bearer token (the Secret's `token`).
    pub token: String,
    /// PEM certificates (the Secret's `caBundle`); empty: none given.
    pub ca_bundle: Vec<u8>,
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Credentials")
            .field("token", &"<redacted>")
            .field("ca_bundle_len", &self.ca_bundle.len())
            .finish()
    }
}

impl Credentials {
    /// The credentials in a Secret object (`data.token`, `data.caBundle`, base64 as
    /// stored), or None when it has no token.
    pub fn from_secret(secret: &Value) -> Option<Credentials> {
        let field = |key: &str| -> Option<Vec<u8>> {
            let b64 = secret.pointer(&format!("/data/{key}"))?.as_str()?;
            base64::engine::general_purpose::STANDARD.decode(b64).ok()
        };
        let token = String::from_utf8(field("token")?).ok()?.trim().to_string();
        if token.is_empty() {
            return None;
        }
        Some(Credentials {
            token,
            ca_bundle: field("caBundle").unwrap_or_default(),
        })
    }
}

/// The answer of a [`CredentialsSource`]: `Ok(None)` when the Secret does not exist.
pub type CredentialsFuture =
    Pin<Box<dyn Future<Output = Result<Option<Credentials>, String>> + Send>>;

/// Reads a member's credentials Secret `(namespace, name)` from the host control
/// plane (in-process in `flotilla up`, through a kubeconfig otherwise).
#[derive(Clone)]
pub struct CredentialsSource(Arc<dyn Fn(String, String) -> CredentialsFuture + Send + Sync>);

impl CredentialsSource {
    /// Wraps a lookup function.
    pub fn new(
        lookup: impl Fn(String, String) -> CredentialsFuture + Send + Sync + 'static,
    ) -> Self {
        CredentialsSource(Arc::new(lookup))
    }

    /// The credentials in Secret `namespace/name`.
    pub async fn get(&self, namespace: &str, name: &str) -> Result<Option<Credentials>, String> {
        (self.0)(namespace.to_string(), name.to_string()).await
    }
}

impl std::fmt::Debug for CredentialsSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("CredentialsSource")
    }
}

/// Where and how a member is reached.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoint {
    /// `host:port` dialled.
    pub authority: String,
    /// The host, as the server certificate must name it (no brackets).
    pub host: String,
    pub port: u16,
    /// A path prefix of the endpoint (`""` for none), without a trailing slash.
    pub prefix: String,
}

/// Parses a Cluster's `spec.apiEndpoint` (`https://HOST[:PORT][/PREFIX]`).
pub fn parse_endpoint(api_endpoint: &str) -> Result<Endpoint, String> {
    let uri: http::Uri = api_endpoint
        .parse()
        .map_err(|e| format!("invalid apiEndpoint \"{api_endpoint}\": {e}"))?;
    if uri.scheme_str() != Some("https") {
        return Err(format!("apiEndpoint \"{api_endpoint}\" must use https"));
    }
    let authority = uri
        .authority()
        .ok_or_else(|| format!("apiEndpoint \"{api_endpoint}\" has no host"))?;
    let port = authority.port_u16().unwrap_or(443);
    let host = authority
        .host()
        .trim_start_matches('[')
        .trim_end_matches(']')
        .to_string();
    let authority = if host.contains(':') {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    };
    Ok(Endpoint {
        authority,
        host,
        port,
        prefix: uri.path().trim_end_matches('/').to_string(),
    })
}

/// The path and query forwarded to the member: `prefix + rest + ?query`.
pub fn target_path(prefix: &str, rest: &str, query: Option<&str>) -> String {
    let rest = if rest.starts_with('/') {
        rest.to_string()
    } else {
        format!("/{rest}")
    };
    match query {
        Some(q) if !q.is_empty() => format!("{prefix}{rest}?{q}"),
        _ => format!("{prefix}{rest}"),
    }
}

/// The raw path after `.../clusters/NAME/proxy` in a request path (`""` when none).
pub fn rest_of_path<'a>(path: &'a str, cluster: &str) -> Option<&'a str> {
    let marker = format!("/clusters/{cluster}/proxy");
    let at = path.find(&marker)?;
    let rest = &path[at + marker.len()..];
    (rest.is_empty() || rest.starts_with('/')).then_some(rest)
}

fn tls_config(ca_bundle: &[u8], insecure: bool) -> Result<rustls::ClientConfig, String> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = rustls::ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?;
    let builder = if insecure {
        builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(aggregator::AcceptAny(provider)))
    } else {
        let mut roots = rustls::RootCertStore::empty();
        for cert in CertificateDer::pem_slice_iter(ca_bundle) {
            roots
                .add(cert.map_err(|e| format!("caBundle: {e}"))?)
                .map_err(|e| format!("caBundle: {e}"))?;
        }
        if roots.is_empty() {
            return Err("the cluster's secret has no caBundle".into());
        }
        builder.with_root_certificates(roots)
    };
    Ok(builder.with_no_client_auth())
}

/// Dials the member and opens an HTTP/1.1 connection (upgrades allowed).
async fn connect(
    endpoint: &Endpoint,
    tls: rustls::ClientConfig,
) -> Result<hyper::client::conn::http1::SendRequest<aggregator::OutBody>, String> {
    let addr = endpoint.authority.as_str();
    let tcp = tokio::time::timeout(Duration::from_secs(5), tokio::net::TcpStream::connect(addr))
        .await
        .map_err(|_| format!("dial tcp {addr}: i/o timeout"))?
        .map_err(|e| {
            let why = match e.kind() {
                std::io::ErrorKind::ConnectionRefused => "connection refused".to_string(),
                _ => e.to_string(),
            };
            format!("dial tcp {addr}: connect: {why}")
        })?;
    let _ = tcp.set_nodelay(true);
    let name = ServerName::try_from(endpoint.host.clone()).map_err(|e| e.to_string())?;
    let stream = tokio::time::timeout(
        Duration::from_secs(5),
        tokio_rustls::TlsConnector::from(Arc::new(tls)).connect(name, tcp),
    )
    .await
    .map_err(|_| format!("tls handshake with {addr}: timeout"))?
    .map_err(|e| format!("tls: {e}"))?;
    let (sender, conn) =
        hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream))
            .await
            .map_err(|e| e.to_string())?;
    tokio::spawn(async move {
        let _ = conn.with_upgrades().await;
    });
    Ok(sender)
}

fn unreachable_member(cluster: &str, why: &str) -> ApiError {
    ApiError::unavailable(format!(
        "cluster \"{cluster}\" is unreachable through its proxy: {why}"
    ))
}

/// Sets the member's credentials and the caller's identity on forwarded headers:
/// `Authorization: Bearer TOKEN` and the caller as impersonation headers
/// ([`impersonate`]).
pub fn set_identity(headers: &mut http::HeaderMap, token: &str, user: &User) -> Result<(), String> {
    aggregator::strip_identity_headers(headers);
    let bearer = HeaderValue::from_str(&format!("Bearer {token}"))
        .map_err(|_| "the cluster's token is not a valid header value".to_string())?;
    headers.insert(header::AUTHORIZATION, bearer);
    HeaderValue::from_str(&user.name)
        .map_err(|_| format!("user name \"{}\" is not a valid header value", user.name))?;
    impersonate(headers, user);
    Ok(())
}

/// Adds the caller's identity as impersonation headers: `Impersonate-User`, one
/// `Impersonate-Group` per group (`system:authenticated` and
/// `system:unauthenticated` are implied and left out, as Karmada does),
/// `Impersonate-Uid`, and `Impersonate-Extra-KEY` per extra value.
pub fn impersonate(headers: &mut http::HeaderMap, user: &User) {
    if let Ok(v) = HeaderValue::from_str(&user.name) {
        headers.insert("impersonate-user", v);
    }
    for g in &user.groups {
        if g == "system:authenticated" || g == "system:unauthenticated" {
            continue;
        }
        if let Ok(v) = HeaderValue::from_str(g) {
            headers.append("impersonate-group", v);
        }
    }
    if !user.uid.is_empty()
        && let Ok(v) = HeaderValue::from_str(&user.uid)
    {
        headers.insert("impersonate-uid", v);
    }
    for (key, values) in &user.extra {
        let name = format!(
            "impersonate-extra-{}",
            crate::server::auth::escape_extra_key(key)
        );
        let Ok(name) = http::HeaderName::from_bytes(name.as_bytes()) else {
            continue;
        };
        for value in values {
            if let Ok(v) = HeaderValue::from_str(value) {
                headers.append(name.clone(), v);
            }
        }
    }
}

/// Forwards a `clusters/NAME/proxy/...` request to the member `cluster` describes,
/// as `user`; `rest` is the raw path after `/proxy`.
pub async fn proxy<B>(
    cluster: &Value,
    credentials: Option<&CredentialsSource>,
    mut parts: http::request::Parts,
    body: B,
    rest: &str,
    user: &User,
) -> Result<Response<Body>, ApiError>
where
    B: http_body::Body<Data = Bytes> + Send + 'static,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let name = cluster
        .pointer("/metadata/name")
        .and_then(Value::as_str)
        .unwrap_or("");
    let unreachable = |why: &str| unreachable_member(name, why);
    let api_endpoint = cluster
        .pointer("/spec/apiEndpoint")
        .and_then(Value::as_str)
        .filter(|e| !e.is_empty())
        .ok_or_else(|| unreachable("the cluster has no spec.apiEndpoint"))?;
    let endpoint = parse_endpoint(api_endpoint).map_err(|e| unreachable(&e))?;
    let secret_ns = cluster
        .pointer("/spec/secretRef/namespace")
        .and_then(Value::as_str)
        .unwrap_or("");
    let secret_name = cluster
        .pointer("/spec/secretRef/name")
        .and_then(Value::as_str)
        .unwrap_or("");
    if secret_name.is_empty() {
        return Err(unreachable("the cluster has no spec.secretRef"));
    }
    let source = credentials.ok_or_else(|| {
        unreachable("this server cannot read member credentials (no host control plane configured)")
    })?;
    let creds = source
        .get(secret_ns, secret_name)
        .await
        .map_err(|e| unreachable(&format!("reading secret {secret_ns}/{secret_name}: {e}")))?
        .ok_or_else(|| {
            unreachable(&format!(
                "secret {secret_ns}/{secret_name} does not exist or has no token"
            ))
        })?;
    let insecure = cluster.pointer("/spec/insecureSkipTLSVerification") == Some(&Value::Bool(true));
    let tls = tls_config(&creds.ca_bundle, insecure).map_err(|e| unreachable(&e))?;

    set_identity(&mut parts.headers, &creds.token, user).map_err(ApiError::bad_request)?;
    let host = HeaderValue::from_str(&endpoint.authority)
        .map_err(|_| unreachable("invalid apiEndpoint host"))?;
    parts.headers.insert(header::HOST, host);
    let path = target_path(&endpoint.prefix, rest, parts.uri.query());
    parts.uri = path
        .parse()
        .map_err(|_| ApiError::bad_request("invalid proxy path"))?;
    tracing::debug!(cluster = %name, user = %user.name, %path, "proxying to member");

    let mut sender = connect(&endpoint, tls).await.map_err(|e| unreachable(&e))?;
    aggregator::forward(&mut sender, parts, body)
        .await
        .map_err(|e| match e {
            ForwardError::UpgradeUnsupported => aggregator::not_implemented(&e),
            ForwardError::Send(e) => unreachable(&e.to_string()),
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn endpoints_and_paths() {
        let e = parse_endpoint("https://127.0.0.1:6443").expect("valid");
        assert_eq!(
            (
                e.authority.as_str(),
                e.host.as_str(),
                e.port,
                e.prefix.as_str()
            ),
            ("127.0.0.1:6443", "127.0.0.1", 6443, "")
        );
        let e = parse_endpoint("https://[::1]/k8s/").expect("valid");
        assert_eq!(
            (e.authority.as_str(), e.host.as_str(), e.prefix.as_str()),
            ("[::1]:443", "::1", "/k8s")
        );
        assert!(parse_endpoint("http://example.com").is_err());
        assert_eq!(
            target_path("/k8s", "/api/v1/nodes", Some("watch=true")),
            "/k8s/api/v1/nodes?watch=true"
        );
        assert_eq!(target_path("", "", None), "/");
        assert_eq!(
            rest_of_path(
                "/apis/cluster.karmada.io/v1alpha1/clusters/m1/proxy/api/v1/nodes",
                "m1"
            ),
            Some("/api/v1/nodes")
        );
        assert_eq!(
            rest_of_path("/apis/cluster.karmada.io/v1alpha1/clusters/m1/proxy", "m1"),
            Some("")
        );
        assert_eq!(
            rest_of_path("/apis/cluster.karmada.io/v1alpha1/clusters/m1/proxyx", "m1"),
            None
        );
    }

    #[test]
    fn secrets_and_identity() {
        let secret = json!({"data": {"token": "dG9r", "caBundle": "Y2E="}});
        let c = Credentials::from_secret(&secret).expect("credentials");
        assert_eq!(
            (c.token.as_str(), c.ca_bundle.as_slice()),
            ("tok", &b"ca"[..])
        );
        assert!(Credentials::from_secret(&json!({"data": {}})).is_none());

        let mut headers = http::HeaderMap::new();
        headers.insert("authorization", HeaderValue::from_static("Bearer caller"));
        headers.insert("impersonate-user", HeaderValue::from_static("mallory"));
        headers.insert("x-remote-user", HeaderValue::from_static("mallory"));
        let user = User {
            name: "alice".into(),
            uid: String::new(),
            groups: vec!["dev".into(), "system:authenticated".into()],
            extra: Default::default(),
        };
        set_identity(&mut headers, "tok", &user).expect("identity");
        assert_eq!(headers["authorization"], "Bearer tok");
        assert_eq!(headers["impersonate-user"], "alice");
        let groups: Vec<_> = headers.get_all("impersonate-group").iter().collect();
        assert_eq!(groups, ["dev"]);
        assert!(!headers.contains_key("x-remote-user"));
    }
}
