//! Reaching members: one pooled kube-rs client per member cluster (keep-alive
//! connections, unlike Karmada's connection per request), built from the Cluster
//! object and its credentials Secret, rebuilt when either changes. Requests made
//! on a user's behalf carry the caller's identity as impersonation headers; the
//! cache's own requests (and SubjectAccessReviews) carry none.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderValue, Request, Response};
use http_body_util::BodyExt;
use serde_json::Value;

use crate::cluster_proxy::{Credentials, CredentialsSource};
use crate::server::auth::User;

/// A member's client and where it points.
#[derive(Clone)]
pub struct Member {
    pub name: String,
    pub client: kube::Client,
    /// What the client was built from (endpoint, secret, TLS choice).
    pub fingerprint: String,
}

/// Why a member could not be reached.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{0}")]
pub struct Unreachable(pub String);

/// Builds and keeps member clients.
pub struct Members {
    credentials: Option<CredentialsSource>,
    clients: Mutex<HashMap<String, Member>>,
}

impl Members {
    pub fn new(credentials: Option<CredentialsSource>) -> Self {
        Members {
            credentials,
            clients: Mutex::new(HashMap::new()),
        }
    }

    /// The client for `cluster` (a Cluster object), built or reused.
    pub async fn get(&self, cluster: &Value) -> Result<Member, Unreachable> {
        let name = cluster
            .pointer("/metadata/name")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string();
        let endpoint = cluster
            .pointer("/spec/apiEndpoint")
            .and_then(Value::as_str)
            .filter(|e| !e.is_empty())
            .ok_or_else(|| Unreachable("the cluster has no spec.apiEndpoint".into()))?
            .to_string();
        let secret_ns = cluster
            .pointer("/spec/secretRef/namespace")
            .and_then(Value::as_str)
            .unwrap_or("");
        let secret_name = cluster
            .pointer("/spec/secretRef/name")
            .and_then(Value::as_str)
            .unwrap_or("");
        if secret_name.is_empty() {
            return Err(Unreachable("the cluster has no spec.secretRef".into()));
        }
        let source = self
            .credentials
            .as_ref()
            .ok_or_else(|| Unreachable("this server cannot read member credentials".into()))?;
        let creds = source
            .get(secret_ns, secret_name)
            .await
            .map_err(|e| Unreachable(format!("reading secret {secret_ns}/{secret_name}: {e}")))?
            .ok_or_else(|| {
                Unreachable(format!(
                    "secret {secret_ns}/{secret_name} does not exist or has no token"
                ))
            })?;
        let insecure =
            cluster.pointer("/spec/insecureSkipTLSVerification") == Some(&Value::Bool(true));
        let fingerprint = format!(
            "{endpoint}|{insecure}|{}|{}",
            crate::unified::resource_version::scope_hash(&[&creds.token]),
            creds.ca_bundle.len()
        );
        if let Some(m) = self.lock().get(&name)
            && m.fingerprint == fingerprint
        {
            return Ok(m.clone());
        }
        let client = build_client(&endpoint, &creds, insecure)?;
        let member = Member {
            name: name.clone(),
            client,
            fingerprint,
        };
        self.lock().insert(name, member.clone());
        Ok(member)
    }

    /// The credentials source (for the cluster proxy).
    pub fn credentials(&self) -> Option<&CredentialsSource> {
        self.credentials.as_ref()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Member>> {
        self.clients.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// A client of one member over HTTP/2 when the member offers it (ALPN), so
/// that the unified view's watches of every kind of a member (eleven with
/// `flotilla up`'s default registry) and its live reads share one connection
/// instead of holding one HTTP/1.1 connection each, with its TLS state and
/// buffers. A member that only speaks HTTP/1.1 is served over that.
fn build_client(
    endpoint: &str,
    creds: &Credentials,
    insecure: bool,
) -> Result<kube::Client, Unreachable> {
    use kube::client::ConfigExt;
    use rustls::pki_types::CertificateDer;
    use rustls::pki_types::pem::PemObject;
    let url: http::Uri = endpoint
        .parse()
        .map_err(|e| Unreachable(format!("invalid apiEndpoint \"{endpoint}\": {e}")))?;
    let mut config = kube::Config::new(url);
    config.accept_invalid_certs = insecure;
    let roots: Vec<Vec<u8>> = CertificateDer::pem_slice_iter(&creds.ca_bundle)
        .filter_map(Result::ok)
        .map(|c| c.as_ref().to_vec())
        .collect();
    if !roots.is_empty() {
        config.root_cert = Some(roots);
    }
    let bearer = HeaderValue::from_str(&format!("Bearer {}", creds.token))
        .map_err(|_| Unreachable("the cluster's token is not a valid header value".into()))?;
    config.headers = vec![(http::header::AUTHORIZATION, bearer)];
    let failed = |e: kube::Error| Unreachable(format!("client: {e}"));
    let mut tls = config.rustls_client_config().map_err(failed)?;
    // a few sessions to resume; rustls's default room for 256, allocated up
    // front, took 14 KB a member (heaptrack)
    tls.resumption = rustls::client::Resumption::in_memory_sessions(4);
    let mut http = hyper_util::client::legacy::connect::HttpConnector::new();
    http.enforce_http(false);
    http.set_connect_timeout(Some(Duration::from_secs(5)));
    let https = hyper_rustls::HttpsConnectorBuilder::new()
        .with_tls_config(tls)
        .https_or_http()
        .enable_http1()
        .enable_http2()
        .wrap_connector(http);
    let client: hyper_util::client::legacy::Client<_, kube::client::Body> =
        hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
            .build(https);
    let service = tower::ServiceBuilder::new()
        .layer(config.base_uri_layer())
        .layer(config.extra_headers_layer().map_err(failed)?)
        .service(client);
    Ok(kube::Client::new(service, config.default_namespace))
}

/// Adds the caller's identity as impersonation headers (the cluster proxy's).
pub use crate::cluster_proxy::impersonate;

/// A member's answer, read whole.
pub struct Answer {
    pub status: http::StatusCode,
    pub headers: http::HeaderMap,
    pub body: Bytes,
}

impl Answer {
    /// The body as JSON (Null when it is not).
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or(Value::Null)
    }

    /// The message of a `Status` body, or the HTTP status.
    pub fn message(&self) -> String {
        self.json()
            .get("message")
            .and_then(Value::as_str)
            .map(str::to_string)
            .unwrap_or_else(|| format!("HTTP {}", self.status))
    }
}

/// Sends a request to a member (as `user` when given) and returns the response
/// unread, for streaming.
pub async fn send(
    member: &Member,
    method: http::Method,
    path_and_query: &str,
    accept: &str,
    user: Option<&User>,
    body: Vec<u8>,
    content_type: Option<&str>,
) -> Result<Response<kube::client::Body>, Unreachable> {
    let mut req = Request::builder()
        .method(method)
        .uri(path_and_query)
        .header(http::header::ACCEPT, accept)
        .body(kube::client::Body::from(body))
        .map_err(|e| Unreachable(format!("request: {e}")))?;
    if let Some(ct) = content_type.and_then(|c| HeaderValue::from_str(c).ok()) {
        req.headers_mut().insert(http::header::CONTENT_TYPE, ct);
    }
    if let Some(user) = user {
        impersonate(req.headers_mut(), user);
    }
    member
        .client
        .send(req)
        .await
        .map_err(|e| Unreachable(describe(&e)))
}

/// Sends a request and reads the whole answer within `timeout`.
pub async fn call(
    member: &Member,
    method: http::Method,
    path_and_query: &str,
    user: Option<&User>,
    body: Vec<u8>,
    timeout: Duration,
) -> Result<Answer, Unreachable> {
    let fut = async {
        let content_type = (!body.is_empty()).then_some("application/json");
        let resp = send(
            member,
            method,
            path_and_query,
            "application/json",
            user,
            body,
            content_type,
        )
        .await?;
        let (parts, body) = resp.into_parts();
        let body = body
            .collect()
            .await
            .map_err(|e| Unreachable(format!("reading the answer: {e}")))?
            .to_bytes();
        Ok(Answer {
            status: parts.status,
            headers: parts.headers,
            body,
        })
    };
    tokio::time::timeout(timeout, fut)
        .await
        .map_err(|_| Unreachable(format!("no answer within {}s", timeout.as_secs_f64())))?
}

/// A short human reason for a client error (the innermost cause).
fn describe(e: &kube::Error) -> String {
    let mut text = e.to_string();
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        text = s.to_string();
        source = s.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A member that offers HTTP/2 is read over HTTP/2: every watch and read
    /// of the unified view shares one connection to it, and the server takes
    /// as many concurrent streams on it as kube-apiserver does.
    #[tokio::test]
    async fn member_clients_speak_http2() {
        let _ = rustls::crypto::ring::default_provider().install_default();
        let dir = tempfile::tempdir().expect("tempdir");
        let config = crate::server::Config::new(dir.path())
            .bind(std::net::SocketAddr::from(([127, 0, 0, 1], 0)))
            .backend(crate::server::Backend::Memory);
        let server = crate::server::bind(config).await.expect("member server");
        let endpoint = format!("https://{}", server.local_addr);
        let kubeconfig = std::fs::read_to_string(&server.kubeconfig).expect("kubeconfig");
        let token = kubeconfig
            .lines()
            .find_map(|l| l.trim().strip_prefix("token: "))
            .map(|t| t.trim_matches('"').to_string())
            .expect("a token");
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let serving = tokio::spawn(server.serve(async {
            let _ = stopped.await;
        }));
        let creds = Credentials {
            token,
            ca_bundle: std::fs::read(dir.path().join("ca.crt")).expect("ca.crt"),
        };
        let client = build_client(&endpoint, &creds, false).expect("client");
        let request = http::Request::get("/api/v1/namespaces")
            .body(kube::client::Body::empty())
            .expect("request");
        let response = client.send(request).await.expect("a response");
        assert_eq!(response.status(), http::StatusCode::OK);
        assert_eq!(response.version(), http::Version::HTTP_2);

        // more watches than hyper's default of 200 streams a connection (the
        // server takes kube-apiserver's 1,000), and a read beside them: it
        // would wait for a free stream forever at 200
        let beside_watches = async {
            let mut watches = Vec::new();
            for i in 0..250 {
                let request = http::Request::get(format!(
                    "/api/v1/namespaces/ns-{i}/configmaps?watch=1&timeoutSeconds=60"
                ))
                .body(kube::client::Body::empty())
                .expect("request");
                let watch = client.send(request).await.expect("a watch");
                assert_eq!(watch.status(), http::StatusCode::OK);
                watches.push(watch);
            }
            let request = http::Request::get("/api/v1/namespaces")
                .body(kube::client::Body::empty())
                .expect("request");
            let response = client.send(request).await.expect("a response");
            assert_eq!(response.status(), http::StatusCode::OK);
            watches
        };
        let watches = tokio::time::timeout(Duration::from_secs(20), beside_watches)
            .await
            .expect("250 watches and a read beside them are answered");
        drop(watches);
        let _ = stop.send(());
        let _ = serving.await;
    }
}
