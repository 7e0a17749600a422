//! The admission webhook's round trip over real HTTPS on 127.0.0.1: reviews of
//! a PropagationPolicy (mutating and validating paths alternately) sent at a
//! fixed rate on an open-loop schedule over kept-alive connections, as an API
//! server calls a webhook. Latency is from sending a request to having read
//! the whole response.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http1::SendRequest;
use hyper_util::rt::TokioIo;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName};

/// Round-trip percentiles at one rate.
pub struct Figures {
    pub rate: u32,
    pub requests: usize,
    pub p50: Duration,
    pub p99: Duration,
    pub max: Duration,
}

type Pool = Arc<Mutex<Vec<SendRequest<Full<Bytes>>>>>;

async fn connect(
    connector: &tokio_rustls::TlsConnector,
    addr: SocketAddr,
) -> SendRequest<Full<Bytes>> {
    let tcp = tokio::net::TcpStream::connect(addr).await.expect("connect");
    let _ = tcp.set_nodelay(true);
    let tls = connector
        .connect(ServerName::try_from("127.0.0.1").expect("name"), tcp)
        .await
        .expect("TLS");
    let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tls))
        .await
        .expect("HTTP handshake");
    tokio::spawn(conn);
    sender
}

fn review(i: usize) -> Vec<u8> {
    serde_json::to_vec(&serde_json::json!({
        "apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview",
        "request": {
            "uid": format!("bench-{i}"), "operation": "CREATE", "namespace": "default",
            "kind": {"group": "policy.karmada.io", "version": "v1alpha1", "kind": "PropagationPolicy"},
            "resource": {"group": "policy.karmada.io", "version": "v1alpha1", "resource": "propagationpolicies"},
            "name": format!("nginx-{i}"),
            "object": {
                "apiVersion": "policy.karmada.io/v1alpha1", "kind": "PropagationPolicy",
                "metadata": {"name": format!("nginx-{i}"), "namespace": "default",
                             "labels": {"propagationpolicy.karmada.io/permanent-id": "3c5ff9a2-5a7c-4b62-9b0e-1a2b3c4d5e6f"}},
                "spec": {
                    "resourceSelectors": [{"apiVersion": "apps/v1", "kind": "Deployment", "name": "nginx"}],
                    "placement": {
                        "clusterAffinity": {"clusterNames": ["member1", "member2"]},
                        "spreadConstraints": [{"spreadByField": "cluster", "minGroups": 1, "maxGroups": 2}],
                        "replicaScheduling": {"replicaSchedulingType": "Divided",
                            "weightPreference": {"staticWeightList": [
                                {"targetCluster": {"clusterNames": ["member1"]}, "weight": 1},
                                {"targetCluster": {"clusterNames": ["member2"]}, "weight": 1}]}}
                    }
                }
            }
        }
    }))
    .expect("review json")
}

/// Runs `flotilla_webhook` in process and measures `seconds` of reviews at `rate` per second.
pub async fn round_trip(rate: u32, seconds: u32) -> Figures {
    let dir = tempfile::tempdir().expect("tempdir");
    let ca_pem = flotilla_apiserver::server::pki::ensure_serving(
        dir.path(),
        "bench-ca",
        "tls",
        &["127.0.0.1".to_string()],
    )
    .expect("certificates");
    let server = flotilla_webhook::bind(flotilla_webhook::Config::new(
        "127.0.0.1:0".parse().expect("addr"),
        dir.path().join("tls.crt"),
        dir.path().join("tls.key"),
    ))
    .await
    .expect("webhook");
    let addr = server.local_addr;
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(server.serve(async move {
        let _ = stopped.await;
    }));

    let mut roots = rustls::RootCertStore::empty();
    roots
        .add(CertificateDer::from_pem_slice(ca_pem.as_bytes()).expect("ca"))
        .expect("root");
    let config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .expect("versions")
    .with_root_certificates(roots)
    .with_no_client_auth();
    let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
    let pool: Pool = Arc::new(Mutex::new(Vec::new()));
    for _ in 0..4 {
        let c = connect(&connector, addr).await;
        pool.lock().expect("pool").push(c);
    }
    let bodies: Arc<Vec<Vec<u8>>> = Arc::new((0..64).map(review).collect());

    let total = (rate * seconds) as usize;
    let interval = Duration::from_secs_f64(1.0 / f64::from(rate));
    let start = Instant::now() + Duration::from_millis(50);
    let mut handles = Vec::with_capacity(total);
    for i in 0..total {
        tokio::time::sleep_until((start + interval * i as u32).into()).await;
        let (pool, connector, bodies) = (pool.clone(), connector.clone(), bodies.clone());
        handles.push(tokio::spawn(async move {
            let path = if i % 2 == 0 {
                "/mutate-propagationpolicy"
            } else {
                "/validate-propagationpolicy"
            };
            let req = http::Request::builder()
                .method("POST")
                .uri(path)
                .header("host", "127.0.0.1")
                .header("content-type", "application/json")
                .body(Full::new(Bytes::from(bodies[i % bodies.len()].clone())))
                .expect("request");
            let t = Instant::now();
            let taken = pool.lock().expect("pool").pop();
            let mut sender = match taken {
                Some(s) => s,
                None => connect(&connector, addr).await,
            };
            let resp = sender.send_request(req).await.expect("response");
            assert_eq!(resp.status(), 200);
            let _ = resp.into_body().collect().await.expect("body");
            let elapsed = t.elapsed();
            pool.lock().expect("pool").push(sender);
            elapsed
        }));
    }
    let mut lat = Vec::with_capacity(total);
    for h in handles {
        lat.push(h.await.expect("request task"));
    }
    lat.sort();
    let _ = stop.send(());
    let _ = task.await;
    Figures {
        rate,
        requests: total,
        p50: crate::percentile(&lat, 0.50),
        p99: crate::percentile(&lat, 0.99),
        max: lat.last().copied().unwrap_or_default(),
    }
}
