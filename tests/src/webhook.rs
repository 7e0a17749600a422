//! A real HTTPS admission webhook server for the end-to-end tests: listens on
//! `127.0.0.1:0` with a serving certificate from its own CA (made with rcgen at
//! run time), answers AdmissionReview v1 requests with what a handler decides, and
//! records every review it receives.
//!
//! The server runs on its own tokio runtime; [`WebhookServer::stop`] (or dropping
//! it) shuts that runtime down, which closes the listening socket, so later calls
//! are refused.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use base64::Engine;
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::{TokioExecutor, TokioIo};
use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use serde_json::{Value, json};

/// One AdmissionReview received.
#[derive(Debug, Clone)]
pub struct Seen {
    /// Path of the request (without the query).
    pub path: String,
    /// The query string (kube-apiserver sends `timeout=Ns`).
    pub query: String,
    /// The whole AdmissionReview as sent.
    pub review: Value,
}

impl Seen {
    /// `review.request`.
    pub fn request(&self) -> &Value {
        &self.review["request"]
    }
}

/// What the webhook answers to one review.
#[derive(Debug, Clone)]
pub struct Answer {
    /// The AdmissionReview `response` without `uid` (filled in from the request).
    pub response: Value,
    /// How long to wait before answering.
    pub delay: Duration,
}

impl From<Value> for Answer {
    fn from(response: Value) -> Self {
        Answer {
            response,
            delay: Duration::ZERO,
        }
    }
}

/// `{"allowed": true}`.
pub fn allow() -> Value {
    json!({"allowed": true})
}

/// A denial with a `status` of the given code, reason and message.
pub fn deny(code: u16, reason: &str, message: &str) -> Value {
    json!({
        "allowed": false,
        "status": {"code": code, "reason": reason, "message": message},
    })
}

/// An allowing answer carrying a JSONPatch (`patchType: JSONPatch`, base64).
pub fn patch(ops: Value) -> Value {
    json!({
        "allowed": true,
        "patchType": "JSONPatch",
        "patch": base64::engine::general_purpose::STANDARD.encode(ops.to_string()),
    })
}

type Handler = dyn Fn(&Seen) -> Answer + Send + Sync;

/// A running webhook server.
pub struct WebhookServer {
    addr: SocketAddr,
    ca_pem: String,
    seen: Arc<Mutex<Vec<Seen>>>,
    runtime: Option<tokio::runtime::Runtime>,
}

/// CA certificate PEM and the serving certificate chain and key, valid for `names`
/// (a fresh CA each call).
pub fn certificates(
    names: &[&str],
) -> (String, Vec<CertificateDer<'static>>, PrivateKeyDer<'static>) {
    let ca_key = KeyPair::generate().expect("CA key");
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).expect("CA params");
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    // a name of its own, so that another test CA is not even a candidate issuer
    static SERIAL: AtomicUsize = AtomicUsize::new(0);
    let n = SERIAL.fetch_add(1, Ordering::Relaxed);
    ca_params.distinguished_name.push(
        DnType::CommonName,
        format!("flotilla-tests webhook CA {}-{n}", std::process::id()),
    );
    ca_params.key_usages = vec![
        rcgen::KeyUsagePurpose::KeyCertSign,
        rcgen::KeyUsagePurpose::CrlSign,
        rcgen::KeyUsagePurpose::DigitalSignature,
    ];
    let ca_cert = ca_params.self_signed(&ca_key).expect("CA certificate");
    let issuer = Issuer::new(ca_params, ca_key);

    let key = KeyPair::generate().expect("serving key");
    let names: Vec<String> = names.iter().map(|s| s.to_string()).collect();
    let mut params = CertificateParams::new(names).expect("serving params");
    params
        .distinguished_name
        .push(DnType::CommonName, "flotilla-tests webhook");
    params.extended_key_usages = vec![rcgen::ExtendedKeyUsagePurpose::ServerAuth];
    let cert = params
        .signed_by(&key, &issuer)
        .expect("serving certificate");
    let key_der = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der()));
    (ca_cert.pem(), vec![cert.der().clone()], key_der)
}

impl WebhookServer {
    /// Starts a server whose certificate is valid for `127.0.0.1` and `names`
    /// (e.g. `hook.default.svc` for a `clientConfig.service`), answering with
    /// `handler`.
    pub fn start_for(
        names: &[&str],
        handler: impl Fn(&Seen) -> Answer + Send + Sync + 'static,
    ) -> WebhookServer {
        let mut all = vec!["127.0.0.1"];
        all.extend_from_slice(names);
        let (ca_pem, chain, key) = certificates(&all);
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut config = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .expect("TLS versions")
            .with_no_client_auth()
            .with_single_cert(chain, key)
            .expect("TLS server config");
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));

        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .expect("webhook runtime");
        let listener = runtime
            .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
            .expect("bind webhook listener");
        let addr = listener.local_addr().expect("webhook address");
        let seen: Arc<Mutex<Vec<Seen>>> = Arc::default();
        let handler: Arc<Handler> = Arc::new(handler);
        let recorded = seen.clone();
        runtime.spawn(async move {
            loop {
                let Ok((tcp, _peer)) = listener.accept().await else {
                    continue;
                };
                let acceptor = acceptor.clone();
                let handler = handler.clone();
                let recorded = recorded.clone();
                tokio::spawn(async move {
                    let Ok(tls) = acceptor.accept(tcp).await else {
                        return;
                    };
                    let service = service_fn(move |req: Request<Incoming>| {
                        let handler = handler.clone();
                        let recorded = recorded.clone();
                        async move {
                            Ok::<_, std::convert::Infallible>(
                                answer(req, &*handler, &recorded).await,
                            )
                        }
                    });
                    let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                        .serve_connection(TokioIo::new(tls), service)
                        .await;
                });
            }
        });
        WebhookServer {
            addr,
            ca_pem,
            seen,
            runtime: Some(runtime),
        }
    }

    /// Starts a server valid for `127.0.0.1` only.
    pub fn start(handler: impl Fn(&Seen) -> Answer + Send + Sync + 'static) -> WebhookServer {
        WebhookServer::start_for(&[], handler)
    }

    /// The port it listens on (on 127.0.0.1).
    pub fn port(&self) -> u16 {
        self.addr.port()
    }

    /// `https://127.0.0.1:PORT{path}`.
    pub fn url(&self, path: &str) -> String {
        format!("https://{}{path}", self.addr)
    }

    /// The CA certificate, PEM.
    pub fn ca_pem(&self) -> &str {
        &self.ca_pem
    }

    /// The CA certificate as a webhook configuration's `caBundle` (base64 of the PEM).
    pub fn ca_bundle(&self) -> String {
        base64::engine::general_purpose::STANDARD.encode(self.ca_pem.as_bytes())
    }

    /// Every review received so far, in arrival order.
    pub fn seen(&self) -> Vec<Seen> {
        self.seen.lock().expect("seen lock").clone()
    }

    /// Reviews received on `path`.
    pub fn seen_at(&self, path: &str) -> Vec<Seen> {
        self.seen().into_iter().filter(|s| s.path == path).collect()
    }

    /// Forgets the reviews received so far.
    pub fn clear(&self) {
        self.seen.lock().expect("seen lock").clear();
    }

    /// Waits (at most `timeout`) until `pred` holds for the reviews received.
    pub fn wait_for(&self, timeout: Duration, pred: impl Fn(&[Seen]) -> bool) -> bool {
        let deadline = Instant::now() + timeout;
        loop {
            if pred(&self.seen()) {
                return true;
            }
            if Instant::now() > deadline {
                return false;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Stops serving: the listener is closed and open connections dropped.
    pub fn stop(&mut self) {
        if let Some(rt) = self.runtime.take() {
            rt.shutdown_timeout(Duration::from_secs(5));
        }
    }
}

impl Drop for WebhookServer {
    fn drop(&mut self) {
        self.stop();
    }
}

async fn answer(
    req: Request<Incoming>,
    handler: &Handler,
    recorded: &Mutex<Vec<Seen>>,
) -> Response<Full<Bytes>> {
    let path = req.uri().path().to_string();
    let query = req.uri().query().unwrap_or("").to_string();
    let reply = |code: u16, body: Vec<u8>| {
        Response::builder()
            .status(code)
            .header("content-type", "application/json")
            .body(Full::new(Bytes::from(body)))
            .expect("response")
    };
    let body = match req.into_body().collect().await {
        Ok(b) => b.to_bytes(),
        Err(e) => return reply(400, e.to_string().into_bytes()),
    };
    let review: Value = match serde_json::from_slice(&body) {
        Ok(v) => v,
        Err(e) => return reply(400, format!("not JSON: {e}").into_bytes()),
    };
    let seen = Seen {
        path,
        query,
        review,
    };
    recorded.lock().expect("seen lock").push(seen.clone());
    let Answer {
        mut response,
        delay,
    } = handler(&seen);
    if !delay.is_zero() {
        tokio::time::sleep(delay).await;
    }
    response["uid"] = seen.review["request"]["uid"].clone();
    let api_version = seen.review["apiVersion"]
        .as_str()
        .unwrap_or("admission.k8s.io/v1")
        .to_string();
    // Answer in the kind of review that came (AdmissionReview or ConversionReview).
    let kind = seen.review["kind"]
        .as_str()
        .unwrap_or("AdmissionReview")
        .to_string();
    let out = json!({
        "apiVersion": api_version,
        "kind": kind,
        "response": response,
    });
    reply(200, serde_json::to_vec(&out).expect("JSON"))
}
