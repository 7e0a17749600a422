//! The webhook server over real TLS on 127.0.0.1:0: reviews, health, metrics,
//! HTTP-level errors, the body limit, and a certificate replaced on disk being
//! presented to the next connection.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::rt::TokioIo;
use rustls::pki_types::{CertificateDer, ServerName};
use serde_json::{Value, json};

struct Ca {
    issuer: rcgen::Issuer<'static, rcgen::KeyPair>,
    pem: String,
}

fn ca() -> Ca {
    let key = rcgen::KeyPair::generate().expect("key");
    let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).expect("params");
    params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "test-ca");
    let cert = params.self_signed(&key).expect("ca");
    Ca {
        pem: cert.pem(),
        issuer: rcgen::Issuer::new(params, key),
    }
}

/// Writes a serving certificate for 127.0.0.1 signed by `ca`; returns its DER.
fn write_serving(ca: &Ca, dir: &Path, cn: &str) -> Vec<u8> {
    let key = rcgen::KeyPair::generate().expect("key");
    let mut params = rcgen::CertificateParams::new(vec!["127.0.0.1".to_string()]).expect("params");
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, cn);
    let cert = params.signed_by(&key, &ca.issuer).expect("sign");
    std::fs::write(dir.join("tls.key"), key.serialize_pem()).expect("write key");
    std::fs::write(dir.join("tls.crt"), cert.pem()).expect("write cert");
    cert.der().to_vec()
}

/// One HTTPS request on a fresh connection; (status, body, server certificate DER).
async fn request(
    ca_pem: &str,
    addr: SocketAddr,
    method: &str,
    path: &str,
    body: Vec<u8>,
) -> (u16, Vec<u8>, Vec<u8>) {
    use rustls::pki_types::pem::PemObject;
    let mut roots = rustls::RootCertStore::empty();
    roots
        .add(CertificateDer::from_pem_slice(ca_pem.as_bytes()).expect("ca pem"))
        .expect("root");
    let config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .expect("versions")
    .with_root_certificates(roots)
    .with_no_client_auth();
    let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
    let tcp = tokio::net::TcpStream::connect(addr).await.expect("connect");
    let tls = connector
        .connect(ServerName::try_from("127.0.0.1").expect("name"), tcp)
        .await
        .expect("TLS handshake");
    let peer = tls
        .get_ref()
        .1
        .peer_certificates()
        .and_then(|c| c.first())
        .map(|c| c.as_ref().to_vec())
        .unwrap_or_default();
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tls))
        .await
        .expect("http handshake");
    tokio::spawn(conn);
    let req = http::Request::builder()
        .method(method)
        .uri(path)
        .header("host", "127.0.0.1")
        .header("content-type", "application/json")
        .body(Full::new(Bytes::from(body)))
        .expect("request");
    let resp = sender.send_request(req).await.expect("response");
    let status = resp.status().as_u16();
    let bytes = resp
        .into_body()
        .collect()
        .await
        .expect("body")
        .to_bytes()
        .to_vec();
    (status, bytes, peer)
}

fn review(operation: &str, object: Value) -> Vec<u8> {
    serde_json::to_vec(&json!({
        "apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview",
        "request": {"uid": "e2e-1", "operation": operation, "namespace": "default",
                    "kind": {"group": "policy.karmada.io", "version": "v1alpha1", "kind": "PropagationPolicy"},
                    "object": object}
    }))
    .expect("json")
}

fn policy() -> Value {
    json!({"apiVersion": "policy.karmada.io/v1alpha1", "kind": "PropagationPolicy",
           "metadata": {"name": "p", "namespace": "default"},
           "spec": {"resourceSelectors": [{"apiVersion": "v1", "kind": "ConfigMap"}],
                    "placement": {"clusterAffinity": {"fieldSelector": {"matchExpressions": [
                        {"key": "foo", "operator": "In", "values": ["x"]}]}}}}})
}

#[tokio::test]
async fn serves_reviews_health_metrics_and_errors() {
    let dir = tempfile::tempdir().expect("tmp");
    let ca = ca();
    write_serving(&ca, dir.path(), "first");
    let config = flotilla_webhook::Config::new(
        "127.0.0.1:0".parse().expect("addr"),
        dir.path().join("tls.crt"),
        dir.path().join("tls.key"),
    )
    .max_body_bytes(64 * 1024)
    .health_probe_bind("127.0.0.1:0".parse().expect("addr"));
    let server = flotilla_webhook::bind(config).await.expect("bind");
    let addr = server.local_addr;
    assert_eq!(server.plain_addrs().len(), 1);
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(server.serve(async move {
        let _ = stopped.await;
    }));
    let call = |method: &'static str, path: &'static str, body: Vec<u8>| {
        let pem = ca.pem.clone();
        async move {
            tokio::time::timeout(
                Duration::from_secs(5),
                request(&pem, addr, method, path, body),
            )
            .await
            .expect("answered in time")
        }
    };

    // Mutation: allowed with a patch.
    let (code, body, _) = call(
        "POST",
        "/mutate-propagationpolicy",
        review("CREATE", policy()),
    )
    .await;
    assert_eq!(code, 200);
    let v: Value = serde_json::from_slice(&body).expect("json");
    assert_eq!(v["response"]["uid"], "e2e-1");
    assert_eq!(v["response"]["allowed"], true);
    assert_eq!(v["response"]["patchType"], "JSONPatch");

    // Validation: denied with Karmada's message and the field cause.
    let (code, body, _) = call(
        "POST",
        "/validate-propagationpolicy",
        review("CREATE", policy()),
    )
    .await;
    assert_eq!(code, 200);
    let v: Value = serde_json::from_slice(&body).expect("json");
    assert_eq!(v["response"]["allowed"], false, "{v}");
    assert_eq!(v["response"]["status"]["code"], 403);

    // HTTP-level errors are Status bodies, never a dropped connection.
    let (code, body, _) = call("POST", "/validate-nothing", review("CREATE", policy())).await;
    assert_eq!(code, 404);
    let v: Value = serde_json::from_slice(&body).expect("json");
    assert_eq!(v["kind"], "Status");
    let (code, _, _) = call("GET", "/validate-propagationpolicy", Vec::new()).await;
    assert_eq!(code, 405);
    let (code, _, _) = call("POST", "/validate-propagationpolicy", b"{nope".to_vec()).await;
    assert_eq!(code, 400);
    let (code, body, _) = call(
        "POST",
        "/validate-propagationpolicy",
        vec![b' '; 100 * 1024],
    )
    .await;
    assert_eq!(code, 413, "{}", String::from_utf8_lossy(&body));

    // Health on the HTTPS port and on the plain probe port.
    let (code, body, _) = call("GET", "/healthz", Vec::new()).await;
    assert_eq!((code, body.as_slice()), (200, &b"ok"[..]));
    let (code, _, _) = call("GET", "/readyz", Vec::new()).await;
    assert_eq!(code, 200);

    // Metrics count what happened.
    let (code, body, _) = call("GET", "/metrics", Vec::new()).await;
    assert_eq!(code, 200);
    let text = String::from_utf8(body).expect("utf8");
    assert!(text.contains("webhook_admission_requests_total{kind=\"PropagationPolicy\",operation=\"CREATE\",result=\"patched\"} 1"), "{text}");
    assert!(
        text.contains(
            "webhook_admission_rejections_total{kind=\"PropagationPolicy\",operation=\"CREATE\"} 1"
        ),
        "{text}"
    );
    assert!(
        text.contains("webhook_admission_duration_seconds_bucket"),
        "{text}"
    );
    assert!(
        text.contains("webhook_http_requests_total{code=\"404\",path=\"other\"} 1"),
        "{text}"
    );

    let _ = stop.send(());
    tokio::time::timeout(Duration::from_secs(5), task)
        .await
        .expect("stops in time")
        .expect("serve task");
}

#[tokio::test]
async fn a_replaced_certificate_is_presented_to_new_connections() {
    let dir = tempfile::tempdir().expect("tmp");
    let ca = ca();
    let first = write_serving(&ca, dir.path(), "first");
    let config = flotilla_webhook::Config::new(
        "127.0.0.1:0".parse().expect("addr"),
        dir.path().join("tls.crt"),
        dir.path().join("tls.key"),
    );
    let server = flotilla_webhook::bind(config).await.expect("bind");
    let addr = server.local_addr;
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(server.serve(async move {
        let _ = stopped.await;
    }));
    let timeout = Duration::from_secs(5);
    let (_, _, seen) = tokio::time::timeout(
        timeout,
        request(&ca.pem, addr, "GET", "/healthz", Vec::new()),
    )
    .await
    .expect("in time");
    assert_eq!(seen, first);

    let second = write_serving(&ca, dir.path(), "second-with-a-longer-name");
    assert_ne!(first, second);
    let (code, _, seen) = tokio::time::timeout(
        timeout,
        request(&ca.pem, addr, "GET", "/healthz", Vec::new()),
    )
    .await
    .expect("in time");
    assert_eq!(code, 200);
    assert_eq!(
        seen, second,
        "the new certificate is served without a restart"
    );

    let _ = stop.send(());
    let _ = tokio::time::timeout(timeout, task).await;
}
