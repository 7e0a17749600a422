//! Matching unit tests, and calls to a real HTTPS webhook server on 127.0.0.1
//! (certificates made with rcgen at run time; the CA's PEM is the caBundle).

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use base64::Engine;
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use serde_json::{Value, json};

use super::matching::{self, Hook};
use super::*;
use crate::registry::builtin;
use crate::storage::KeyValue;

// ---------- fixtures ----------

fn snapshot(objects: Vec<(String, Value)>) -> Snapshot {
    let mut map = imbl::OrdMap::new();
    for (i, (key, value)) in objects.into_iter().enumerate() {
        let key: std::sync::Arc<str> = std::sync::Arc::from(key.as_str());
        map.insert(
            key.clone(),
            KeyValue::new(key, std::sync::Arc::new(value), i as u64 + 1),
        );
    }
    Snapshot { map, revision: 100 }
}

fn info(plural: &str) -> ResourceInfo {
    builtin::resources()
        .into_iter()
        .find(|r| r.plural == plural)
        .expect("built-in resource")
}

fn alice() -> User {
    User {
        name: "alice".into(),
        uid: "u-1".into(),
        groups: vec!["dev".into(), "system:authenticated".into()],
        extra: Default::default(),
    }
}

fn hook_of(spec: &Value) -> Hook<'_> {
    Hook {
        configuration: "c",
        index: 0,
        spec,
    }
}

fn rule(ops: &[&str], groups: &[&str], versions: &[&str], resources: &[&str]) -> Value {
    json!({"operations": ops, "apiGroups": groups, "apiVersions": versions, "resources": resources})
}

// ---------- rules ----------

#[test]
fn rules_match_operations_groups_versions_resources() {
    let user = alice();
    let pods = info("pods");
    let deployments = info("deployments");
    let mut create = Attributes::new(Operation::Create, &pods, "p", &user);
    create.namespace = Some("default");
    let mut update = create;
    update.operation = Operation::Update;
    let mut status = update;
    status.subresource = Some("status");
    let mut deploy = create;
    deploy.info = &deployments;

    let spec = json!({"name": "h", "rules": [rule(&["CREATE"], &[""], &["v1"], &["pods"])]});
    let h = hook_of(&spec);
    assert!(matching::match_rules(&h, &create).is_some());
    assert!(matching::match_rules(&h, &update).is_none());
    assert!(matching::match_rules(&h, &status).is_none());
    assert!(matching::match_rules(&h, &deploy).is_none());

    let spec = json!({"name": "h", "rules": [rule(&["*"], &["*"], &["*"], &["*"])]});
    let h = hook_of(&spec);
    assert!(matching::match_rules(&h, &update).is_some());
    assert!(matching::match_rules(&h, &deploy).is_some());
    assert!(
        matching::match_rules(&h, &status).is_none(),
        "`*` names main resources only"
    );

    let spec = json!({"name": "h", "rules": [rule(&["UPDATE"], &[""], &["v1"], &["pods/status"])]});
    let h = hook_of(&spec);
    let inv = matching::match_rules(&h, &status).expect("pods/status matches");
    assert_eq!(inv.subresource, "status");
    assert_eq!(inv.kind.kind, "Pod");
    assert!(matching::match_rules(&h, &update).is_none());

    let spec = json!({"name": "h", "rules": [rule(&["UPDATE"], &[""], &["v1"], &["*/*"])]});
    let h = hook_of(&spec);
    assert!(matching::match_rules(&h, &status).is_some());
    assert!(matching::match_rules(&h, &update).is_some());

    let spec = json!({"name": "h", "rules": [rule(&["UPDATE"], &[""], &["v1"], &["pods/*"])]});
    let h = hook_of(&spec);
    assert!(matching::match_rules(&h, &status).is_some());

    let spec =
        json!({"name": "h", "rules": [rule(&["CREATE"], &["apps"], &["v1"], &["deployments"])]});
    let h = hook_of(&spec);
    assert!(matching::match_rules(&h, &deploy).is_some());
    assert!(matching::match_rules(&h, &create).is_none());

    let mut scale = update;
    scale.info = &deployments;
    scale.subresource = Some("scale");
    let spec = json!({"name": "h", "rules": [rule(&["UPDATE"], &["apps"], &["v1"], &["deployments/scale"])]});
    let inv = matching::match_rules(&hook_of(&spec), &scale).expect("scale matches");
    assert_eq!(inv.kind.group, "autoscaling");
    assert_eq!(inv.kind.kind, "Scale");
}

#[test]
fn rules_match_scope() {
    let user = alice();
    let pods = info("pods");
    let namespaces = info("namespaces");
    let nodes = info("nodes");
    let mut pod = Attributes::new(Operation::Create, &pods, "p", &user);
    pod.namespace = Some("default");
    let mut ns = Attributes::new(Operation::Update, &namespaces, "default", &user);
    ns.namespace = Some("default");
    let node = Attributes::new(Operation::Create, &nodes, "n1", &user);

    let with_scope = |scope: &str| {
        let mut r = rule(&["*"], &["*"], &["*"], &["*"]);
        r["scope"] = json!(scope);
        json!({"name": "h", "rules": [r]})
    };
    let namespaced = with_scope("Namespaced");
    let cluster = with_scope("Cluster");
    let any = with_scope("*");
    let m = |spec: &Value, a: &Attributes<'_>| matching::match_rules(&hook_of(spec), a).is_some();
    assert!(m(&namespaced, &pod));
    assert!(!m(&namespaced, &ns), "a Namespace is cluster-scoped");
    assert!(!m(&namespaced, &node));
    assert!(!m(&cluster, &pod));
    assert!(m(&cluster, &ns));
    assert!(m(&cluster, &node));
    assert!(m(&any, &pod) && m(&any, &ns) && m(&any, &node));
}

#[test]
fn match_policy_equivalent_tries_other_versions() {
    let user = alice();
    let deployments = info("deployments");
    let versions = vec!["v1".to_string(), "v1beta1".to_string()];
    let mut a = Attributes::new(Operation::Create, &deployments, "d", &user);
    a.namespace = Some("default");
    a.other_versions = &versions;
    let spec = json!({"name": "h", "rules": [rule(&["CREATE"], &["apps"], &["v1beta1"], &["deployments"])]});
    let inv = matching::match_rules(&hook_of(&spec), &a).expect("equivalent match");
    assert_eq!(inv.resource.version, "v1beta1");
    assert_eq!(inv.kind.version, "v1beta1");
    assert_eq!(inv.kind.kind, "Deployment");

    let mut exact = spec.clone();
    exact["matchPolicy"] = json!("Exact");
    assert!(matching::match_rules(&hook_of(&exact), &a).is_none());
}

#[test]
fn configuration_kinds_are_exempt() {
    let user = alice();
    let m = info("mutatingwebhookconfigurations");
    let v = info("validatingwebhookconfigurations");
    let p = info("pods");
    assert!(matching::is_exempt(&Attributes::new(
        Operation::Create,
        &m,
        "x",
        &user
    )));
    assert!(matching::is_exempt(&Attributes::new(
        Operation::Delete,
        &v,
        "x",
        &user
    )));
    assert!(!matching::is_exempt(&Attributes::new(
        Operation::Create,
        &p,
        "x",
        &user
    )));
}

// ---------- selectors ----------

fn namespaces_snapshot() -> Snapshot {
    snapshot(vec![
        (
            "/core/namespaces/prod".into(),
            json!({"metadata": {"name": "prod", "labels": {"env": "prod", "team": "a"}}}),
        ),
        (
            "/core/namespaces/dev".into(),
            json!({"metadata": {"name": "dev", "labels": {"env": "dev"}}}),
        ),
    ])
}

#[test]
fn namespace_selector() {
    let snap = namespaces_snapshot();
    let user = alice();
    let pods = info("pods");
    let nodes = info("nodes");
    let namespaces = info("namespaces");
    let spec = json!({"name": "h", "rules": [rule(&["*"], &["*"], &["*"], &["*"])],
        "namespaceSelector": {"matchLabels": {"env": "prod"}}});
    let h = hook_of(&spec);
    let in_ns = |ns: &'static str| {
        let mut a = Attributes::new(Operation::Create, &pods, "p", &user);
        a.namespace = Some(ns);
        a
    };
    let ok = |a: &Attributes<'_>, o: Option<&Value>| matching::namespace_matches(&h, a, o, &snap);
    assert_eq!(ok(&in_ns("prod"), None), Ok(true));
    assert_eq!(ok(&in_ns("dev"), None), Ok(false));
    let missing = ok(&in_ns("nope"), None).expect_err("missing namespace");
    assert_eq!(missing.code, 404);
    assert_eq!(missing.message, "namespaces \"nope\" not found");
    // Cluster-scoped objects are never excluded.
    let node = Attributes::new(Operation::Create, &nodes, "n", &user);
    assert_eq!(ok(&node, None), Ok(true));
    // A Namespace being created or updated is matched on its own new labels.
    let new_ns = json!({"metadata": {"name": "fresh", "labels": {"env": "prod"}}});
    let create_ns = Attributes::new(Operation::Create, &namespaces, "fresh", &user);
    assert_eq!(ok(&create_ns, Some(&new_ns)), Ok(true));
    let relabel = json!({"metadata": {"name": "prod", "labels": {"env": "staging"}}});
    let update_ns = Attributes::new(Operation::Update, &namespaces, "prod", &user);
    assert_eq!(ok(&update_ns, Some(&relabel)), Ok(false));
    // A Namespace being deleted is matched on its stored labels.
    let delete_ns = Attributes::new(Operation::Delete, &namespaces, "prod", &user);
    assert_eq!(ok(&delete_ns, None), Ok(true));

    // Expressions.
    let spec = json!({"name": "h", "namespaceSelector": {"matchExpressions": [
        {"key": "env", "operator": "NotIn", "values": ["dev"]},
        {"key": "team", "operator": "Exists"},
        {"key": "frozen", "operator": "DoesNotExist"},
        {"key": "env", "operator": "In", "values": ["prod", "staging"]}]}});
    let h = hook_of(&spec);
    assert_eq!(
        matching::namespace_matches(&h, &in_ns("prod"), None, &snap),
        Ok(true)
    );
    assert_eq!(
        matching::namespace_matches(&h, &in_ns("dev"), None, &snap),
        Ok(false)
    );
    let bad = json!({"name": "h", "namespaceSelector": {"matchExpressions": [{"key": "a", "operator": "Near"}]}});
    let e = matching::namespace_matches(&hook_of(&bad), &in_ns("prod"), None, &snap)
        .expect_err("bad operator");
    assert_eq!(e.code, 500);
}

#[test]
fn object_selector_matches_new_or_old() {
    let spec = json!({"name": "h", "objectSelector": {"matchLabels": {"app": "web"}}});
    let h = hook_of(&spec);
    let web = json!({"metadata": {"labels": {"app": "web"}}});
    let db = json!({"metadata": {"labels": {"app": "db"}}});
    let bare = json!({"metadata": {}});
    assert_eq!(matching::object_matches(&h, Some(&web), None), Ok(true));
    assert_eq!(matching::object_matches(&h, Some(&db), None), Ok(false));
    assert_eq!(
        matching::object_matches(&h, Some(&db), Some(&web)),
        Ok(true)
    );
    assert_eq!(matching::object_matches(&h, None, Some(&web)), Ok(true));
    assert_eq!(matching::object_matches(&h, Some(&bare), None), Ok(false));
    assert_eq!(matching::object_matches(&h, None, None), Ok(false));
    let empty = json!({"name": "h", "objectSelector": {}});
    assert_eq!(
        matching::object_matches(&hook_of(&empty), None, None),
        Ok(true)
    );
}

#[test]
fn selector_errors_only_count_for_matching_rules() {
    let snap = namespaces_snapshot();
    let user = alice();
    let pods = info("pods");
    let mut a = Attributes::new(Operation::Create, &pods, "p", &user);
    a.namespace = Some("missing");
    let spec = json!({"name": "h", "rules": [rule(&["DELETE"], &[""], &["v1"], &["pods"])],
        "namespaceSelector": {"matchLabels": {"env": "prod"}}});
    assert_eq!(
        matching::should_call(&hook_of(&spec), &a, None, &snap),
        Ok(None)
    );
    let spec = json!({"name": "h", "rules": [rule(&["CREATE"], &[""], &["v1"], &["pods"])],
        "namespaceSelector": {"matchLabels": {"env": "prod"}}});
    assert_eq!(
        matching::should_call(&hook_of(&spec), &a, None, &snap).map_err(|e| e.code),
        Err(404)
    );
}

#[test]
fn denial_status() {
    let e = review::denial("v.example.com", Some(&json!({"message": "no thanks"})));
    assert_eq!(
        e.message,
        "admission webhook \"v.example.com\" denied the request: no thanks"
    );
    assert_eq!(e.code, 400);
    let e = review::denial("v.example.com", None);
    assert_eq!(
        e.message,
        "admission webhook \"v.example.com\" denied the request without explanation"
    );
    let e = review::denial(
        "v.example.com",
        Some(&json!({"code": 200, "reason": "Forbidden"})),
    );
    assert_eq!(e.code, 400, "codes below 400 are raised to 400");
    assert_eq!(e.reason, "Forbidden");
    assert_eq!(
        e.message,
        "admission webhook \"v.example.com\" denied the request: Forbidden"
    );
    let e = review::denial(
        "v.example.com",
        Some(&json!({"code": 422, "reason": "Invalid", "message": "bad",
        "details": {"causes": [{"field": "spec.x", "message": "too big", "reason": "FieldValueInvalid"}]}})),
    );
    assert_eq!(e.code, 422);
    assert_eq!(e.reason, "Invalid");
    assert_eq!(
        e.details.map(|d| d.causes[0].field.clone()),
        Some("spec.x".to_string())
    );
}

#[test]
fn verify_checks_answers() {
    let ok = json!({"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview",
        "response": {"uid": "1", "allowed": true}});
    assert!(review::verify("v1", "1", false, &ok).is_ok());
    let e = review::verify("v1", "2", false, &ok).expect_err("uid mismatch");
    assert_eq!(
        e,
        "received invalid webhook response: expected response.uid=\"2\", got \"1\""
    );
    let wrong_kind = json!({"apiVersion": "v1", "kind": "Status", "response": {"uid": "1"}});
    assert!(
        review::verify("v1", "1", false, &wrong_kind)
            .expect_err("kind")
            .contains("expected webhook response of admission.k8s.io/v1, Kind=AdmissionReview")
    );
    let absent = json!({"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview"});
    assert_eq!(
        review::verify("v1", "1", false, &absent).expect_err("absent"),
        "received invalid webhook response: webhook response was absent"
    );
    let patch = base64::engine::general_purpose::STANDARD.encode(b"[]");
    let patched = json!({"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview",
        "response": {"uid": "1", "allowed": true, "patch": patch}});
    assert!(
        review::verify("v1", "1", true, &patched)
            .expect_err("no type")
            .contains("response.patch but not response.patchType")
    );
    assert!(
        review::verify("v1", "1", false, &patched)
            .expect_err("validating")
            .contains("validating webhook may not return response.patch")
    );
    let v1beta1 = json!({"response": {"allowed": true, "patch": patch}});
    assert_eq!(
        review::verify("v1beta1", "x", true, &v1beta1)
            .map(|r| r.patch)
            .ok()
            .flatten(),
        Some(json!([]))
    );
}

// ---------- a real HTTPS webhook server ----------

struct Tls {
    ca_pem: String,
    server: Arc<rustls::ServerConfig>,
}

/// A CA and a serving certificate for 127.0.0.1 and hook.test.svc.
fn make_tls() -> Tls {
    use rcgen::{
        BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair, KeyUsagePurpose,
    };
    let ca_key = KeyPair::generate().expect("ca key");
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).expect("ca params");
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca_params
        .distinguished_name
        .push(DnType::CommonName, "admission-test-ca");
    ca_params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    let ca_cert = ca_params.self_signed(&ca_key).expect("ca cert");
    let ca_pem = ca_cert.pem();
    let issuer = Issuer::from_ca_cert_pem(&ca_pem, ca_key).expect("issuer");
    let key = KeyPair::generate().expect("key");
    let params = CertificateParams::new(vec!["127.0.0.1".to_string(), "hook.test.svc".to_string()])
        .expect("params");
    let cert = params.signed_by(&key, &issuer).expect("cert");
    let server = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .expect("versions")
    .with_no_client_auth()
    .with_single_cert(
        vec![CertificateDer::from(cert.der().to_vec())],
        PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der())),
    )
    .expect("server config");
    Tls {
        ca_pem,
        server: Arc::new(server),
    }
}

type Seen = Arc<Mutex<Vec<(String, Value)>>>;

struct WebhookServer {
    addr: SocketAddr,
    ca_pem: String,
    seen: Seen,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for WebhookServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl WebhookServer {
    fn requests(&self, path: &str) -> Vec<Value> {
        self.seen
            .lock()
            .expect("seen")
            .iter()
            .filter(|(p, _)| p == path)
            .map(|(_, r)| r.clone())
            .collect()
    }

    fn url(&self, path: &str) -> String {
        format!("https://{}{path}", self.addr)
    }
}

fn encode_patch(ops: Value) -> String {
    base64::engine::general_purpose::STANDARD.encode(serde_json::to_vec(&ops).expect("patch"))
}

/// What the test server answers on each path.
fn answer(path: &str, review: &Value) -> Value {
    let request = &review["request"];
    let uid = request["uid"].clone();
    let labels = request.pointer("/object/metadata/labels").cloned();
    let label = |k: &str| labels.as_ref().and_then(|l| l.get(k)).cloned();
    let response = match path {
        "/allow" | "/slow" | "/reinvoke" => json!({"uid": uid, "allowed": true}),
        "/deny" => json!({"uid": uid, "allowed": false, "status": {"message": "no thanks"}}),
        "/deny-bare" => json!({"uid": uid, "allowed": false}),
        "/deny-403" => json!({"uid": uid, "allowed": false,
            "status": {"code": 403, "reason": "Forbidden", "message": "forbidden by policy"},
            "warnings": ["denied with a warning"]}),
        "/warn" => {
            json!({"uid": uid, "allowed": true, "warnings": ["first warning", "second warning"]})
        }
        "/bad-uid" => json!({"uid": "not-the-uid", "allowed": true}),
        "/label-a" => json!({"uid": uid, "allowed": true, "patchType": "JSONPatch",
            "warnings": ["from a"],
            "patch": encode_patch(json!([{"op": "add", "path": "/metadata/labels/step", "value": "a"}]))}),
        // Only works after /label-a: the `test` operation checks the order.
        "/label-b" => json!({"uid": uid, "allowed": true, "patchType": "JSONPatch",
            "patch": encode_patch(json!([
                {"op": "test", "path": "/metadata/labels/step", "value": "a"},
                {"op": "replace", "path": "/metadata/labels/step", "value": "b"},
                {"op": "add", "path": "/metadata/labels/b", "value": "yes"}]))}),
        "/add-x" if label("x").is_none() => {
            json!({"uid": uid, "allowed": true, "patchType": "JSONPatch",
                "patch": encode_patch(json!([{"op": "add", "path": "/metadata/labels/x", "value": "1"}]))})
        }
        "/add-x" => json!({"uid": uid, "allowed": true}),
        _ => json!({"uid": uid, "allowed": false, "status": {"message": "unknown path"}}),
    };
    json!({"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview", "response": response})
}

async fn start_server() -> WebhookServer {
    let tls = make_tls();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    let acceptor = tokio_rustls::TlsAcceptor::from(tls.server.clone());
    let seen: Seen = Arc::default();
    let seen_in = seen.clone();
    let task = tokio::spawn(async move {
        loop {
            let Ok((tcp, _)) = listener.accept().await else {
                return;
            };
            let acceptor = acceptor.clone();
            let seen = seen_in.clone();
            tokio::spawn(async move {
                let Ok(stream) = acceptor.accept(tcp).await else {
                    return;
                };
                let service =
                    hyper::service::service_fn(move |req: http::Request<hyper::body::Incoming>| {
                        let seen = seen.clone();
                        async move {
                            let path = req.uri().path().to_string();
                            let query = req.uri().query().unwrap_or("").to_string();
                            let body = req.into_body().collect().await?.to_bytes();
                            let review: Value =
                                serde_json::from_slice(&body).unwrap_or(Value::Null);
                            let mut recorded = review.clone();
                            recorded["query"] = json!(query);
                            seen.lock().expect("seen").push((path.clone(), recorded));
                            if path == "/slow" {
                                tokio::time::sleep(Duration::from_secs(3)).await;
                            }
                            let out =
                                serde_json::to_vec(&answer(&path, &review)).unwrap_or_default();
                            Ok::<_, hyper::Error>(
                                http::Response::builder()
                                    .header("content-type", "application/json")
                                    .body(Full::new(Bytes::from(out)))
                                    .expect("response"),
                            )
                        }
                    });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(hyper_util::rt::TokioIo::new(stream), service)
                    .await;
            });
        }
    });
    WebhookServer {
        addr,
        ca_pem: tls.ca_pem,
        seen,
        task,
    }
}

fn ca_bundle(pem: &str) -> String {
    base64::engine::general_purpose::STANDARD.encode(pem)
}

/// A webhook on configmaps (CREATE, UPDATE, DELETE) at `url`, plus `extra` fields.
fn webhook(name: &str, url: &str, ca_pem: &str, extra: Value) -> Value {
    let mut h = json!({
        "name": name,
        "clientConfig": {"url": url, "caBundle": ca_bundle(ca_pem)},
        "rules": [rule(&["CREATE", "UPDATE", "DELETE"], &[""], &["v1"], &["configmaps"])],
        "sideEffects": "None",
        "admissionReviewVersions": ["v1"],
    });
    if let (Some(h), Some(extra)) = (h.as_object_mut(), extra.as_object()) {
        for (k, v) in extra {
            h.insert(k.clone(), v.clone());
        }
    }
    h
}

fn configuration(mutating: bool, name: &str, webhooks: Vec<Value>) -> (String, Value) {
    let (prefix, kind) = if mutating {
        (matching::MUTATING_PREFIX, "MutatingWebhookConfiguration")
    } else {
        (
            matching::VALIDATING_PREFIX,
            "ValidatingWebhookConfiguration",
        )
    };
    (
        format!("{prefix}{name}"),
        json!({"apiVersion": "admissionregistration.k8s.io/v1", "kind": kind,
            "metadata": {"name": name}, "webhooks": webhooks}),
    )
}

fn configmap() -> Value {
    json!({"apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {"name": "cm", "namespace": "default", "labels": {"app": "web"}},
        "data": {"k": "v"}})
}

const LIMIT: Duration = Duration::from_secs(15);

async fn run_mutate(snap: &Snapshot, dry_run: bool) -> Result<Admitted> {
    let user = alice();
    let cms = info("configmaps");
    let mut attrs = Attributes::new(Operation::Create, &cms, "cm", &user);
    attrs.namespace = Some("default");
    attrs.dry_run = dry_run;
    tokio::time::timeout(LIMIT, mutate(snap, &attrs, Some(configmap())))
        .await
        .expect("mutate finished in time")
}

async fn run_validate(snap: &Snapshot, dry_run: bool) -> Result<Vec<String>> {
    let user = alice();
    let cms = info("configmaps");
    let object = configmap();
    let mut attrs = Attributes::new(Operation::Create, &cms, "cm", &user);
    attrs.namespace = Some("default");
    attrs.dry_run = dry_run;
    attrs.object = Some(&object);
    tokio::time::timeout(LIMIT, validate(snap, &attrs))
        .await
        .expect("validate finished in time")
}

#[tokio::test]
async fn mutating_patches_apply_in_order_across_configurations() {
    let s = start_server().await;
    // Configuration names decide the order, not insertion order.
    let snap = snapshot(vec![
        configuration(
            true,
            "20-second",
            vec![webhook(
                "b.example.com",
                &s.url("/label-b"),
                &s.ca_pem,
                json!({}),
            )],
        ),
        configuration(
            true,
            "10-first",
            vec![webhook(
                "a.example.com",
                &s.url("/label-a"),
                &s.ca_pem,
                json!({}),
            )],
        ),
    ]);
    let admitted = run_mutate(&snap, false).await.expect("admitted");
    let object = admitted.object.expect("object");
    assert_eq!(
        object["metadata"]["labels"],
        json!({"app": "web", "step": "b", "b": "yes"})
    );
    assert_eq!(object["data"], json!({"k": "v"}));
    assert_eq!(admitted.warnings, vec!["from a".to_string()]);

    // The request kube-apiserver would send.
    let sent = s.requests("/label-a");
    assert_eq!(sent.len(), 1);
    let r = &sent[0];
    assert_eq!(r["apiVersion"], "admission.k8s.io/v1");
    assert_eq!(r["kind"], "AdmissionReview");
    assert_eq!(r["query"], "timeout=10s");
    let req = &r["request"];
    assert!(req["uid"].as_str().is_some_and(|u| !u.is_empty()));
    assert_eq!(
        req["kind"],
        json!({"group": "", "version": "v1", "kind": "ConfigMap"})
    );
    assert_eq!(
        req["resource"],
        json!({"group": "", "version": "v1", "resource": "configmaps"})
    );
    assert_eq!(req["requestKind"], req["kind"]);
    assert_eq!(req["requestResource"], req["resource"]);
    assert!(req.get("subResource").is_none());
    assert_eq!(req["name"], "cm");
    assert_eq!(req["namespace"], "default");
    assert_eq!(req["operation"], "CREATE");
    assert_eq!(
        req["userInfo"],
        json!({"username": "alice", "uid": "u-1", "groups": ["dev", "system:authenticated"]})
    );
    assert_eq!(req["object"], configmap());
    assert_eq!(req["oldObject"], Value::Null);
    assert_eq!(req["dryRun"], false);
    assert_eq!(
        req["options"],
        json!({"kind": "CreateOptions", "apiVersion": "meta.k8s.io/v1"})
    );
    // The second webhook saw the first one's patch.
    let second = s.requests("/label-b");
    assert_eq!(
        second[0]["request"]["object"]["metadata"]["labels"]["step"],
        "a"
    );
}

#[tokio::test]
async fn mutating_denial_and_bad_patch_order() {
    let s = start_server().await;
    // /label-b before /label-a: its `test` operation fails → 500, not a call error.
    let snap = snapshot(vec![configuration(
        true,
        "only",
        vec![webhook(
            "b.example.com",
            &s.url("/label-b"),
            &s.ca_pem,
            json!({"failurePolicy": "Ignore"}),
        )],
    )]);
    let e = run_mutate(&snap, false).await.expect_err("patch fails");
    assert_eq!(e.error.code, 500);
    assert!(
        e.error.message.starts_with("Internal error occurred: "),
        "{}",
        e.error.message
    );

    let snap = snapshot(vec![configuration(
        true,
        "deny",
        vec![webhook(
            "deny.example.com",
            &s.url("/deny-403"),
            &s.ca_pem,
            json!({}),
        )],
    )]);
    let e = run_mutate(&snap, false).await.expect_err("denied");
    assert_eq!(e.error.code, 403);
    assert_eq!(e.error.reason, "Forbidden");
    assert_eq!(
        e.error.message,
        "admission webhook \"deny.example.com\" denied the request: forbidden by policy"
    );
    assert_eq!(e.warnings, vec!["denied with a warning".to_string()]);
}

#[tokio::test]
async fn validating_denials_surface_as_kube_does() {
    let s = start_server().await;
    let cases = [
        (
            "/deny",
            400,
            "",
            "admission webhook \"v.example.com\" denied the request: no thanks",
        ),
        (
            "/deny-bare",
            400,
            "",
            "admission webhook \"v.example.com\" denied the request without explanation",
        ),
        (
            "/deny-403",
            403,
            "Forbidden",
            "admission webhook \"v.example.com\" denied the request: forbidden by policy",
        ),
    ];
    for (path, code, reason, message) in cases {
        let snap = snapshot(vec![configuration(
            false,
            "v",
            vec![
                webhook("w.example.com", &s.url("/warn"), &s.ca_pem, json!({})),
                webhook("v.example.com", &s.url(path), &s.ca_pem, json!({})),
            ],
        )]);
        let e = run_validate(&snap, false).await.expect_err("denied");
        assert_eq!(e.error.code, code, "{path}");
        assert_eq!(e.error.reason, reason, "{path}");
        assert_eq!(e.error.message, message, "{path}");
        assert!(
            e.warnings.contains(&"first warning".to_string()),
            "{path}: warnings of the other webhook are kept"
        );
        let status = ApiError::from(e).to_status();
        assert_eq!(status["message"], message);
    }
}

#[tokio::test]
async fn validating_webhooks_all_called_and_warnings_returned() {
    let s = start_server().await;
    let snap = snapshot(vec![
        configuration(
            false,
            "a",
            vec![webhook(
                "w.example.com",
                &s.url("/warn"),
                &s.ca_pem,
                json!({}),
            )],
        ),
        configuration(
            false,
            "b",
            vec![webhook(
                "ok.example.com",
                &s.url("/allow"),
                &s.ca_pem,
                json!({}),
            )],
        ),
    ]);
    let warnings = run_validate(&snap, false).await.expect("allowed");
    assert_eq!(warnings, vec!["first warning", "second warning"]);
    assert_eq!(s.requests("/allow").len(), 1);
    assert_eq!(s.requests("/warn").len(), 1);
    // A webhook whose rules do not match is not called.
    let user = alice();
    let secrets = info("secrets");
    let mut attrs = Attributes::new(Operation::Create, &secrets, "s", &user);
    attrs.namespace = Some("default");
    let warnings = tokio::time::timeout(LIMIT, validate(&snap, &attrs))
        .await
        .expect("in time")
        .expect("allowed");
    assert!(warnings.is_empty());
    assert_eq!(s.requests("/allow").len(), 1);
}

#[tokio::test]
async fn webhook_down_fail_and_ignore() {
    let s = start_server().await;
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        l.local_addr().expect("addr").port()
    };
    let url = format!("https://127.0.0.1:{port}/allow");
    let expected = format!(
        "Internal error occurred: failed calling webhook \"down.example.com\": failed to call webhook: Post \"{url}?timeout=10s\": dial tcp 127.0.0.1:{port}: connect: connection refused"
    );
    for mutating in [true, false] {
        let snap = snapshot(vec![configuration(
            mutating,
            "down",
            vec![webhook("down.example.com", &url, &s.ca_pem, json!({}))],
        )]);
        let e = if mutating {
            run_mutate(&snap, false).await.map(|_| ())
        } else {
            run_validate(&snap, false).await.map(|_| ())
        }
        .expect_err("fail closed");
        assert_eq!(e.error.code, 500);
        assert_eq!(e.error.reason, "InternalError");
        assert_eq!(e.error.message, expected);

        let snap = snapshot(vec![configuration(
            mutating,
            "down",
            vec![webhook(
                "down.example.com",
                &url,
                &s.ca_pem,
                json!({"failurePolicy": "Ignore"}),
            )],
        )]);
        if mutating {
            let admitted = run_mutate(&snap, false).await.expect("fail open");
            assert_eq!(admitted.object, Some(configmap()));
        } else {
            run_validate(&snap, false).await.expect("fail open");
        }
    }
}

#[tokio::test]
async fn slow_webhook_times_out_per_failure_policy() {
    let s = start_server().await;
    for (policy, fails) in [("Fail", true), ("Ignore", false)] {
        let snap = snapshot(vec![configuration(
            false,
            "slow",
            vec![webhook(
                "slow.example.com",
                &s.url("/slow"),
                &s.ca_pem,
                json!({"timeoutSeconds": 1, "failurePolicy": policy}),
            )],
        )]);
        let started = std::time::Instant::now();
        let result = run_validate(&snap, false).await;
        assert!(
            started.elapsed() < Duration::from_secs(3),
            "timed out at 1s"
        );
        if fails {
            let e = result.expect_err("timeout fails closed");
            assert_eq!(e.error.code, 500);
            assert_eq!(
                e.error.message,
                format!(
                    "Internal error occurred: failed calling webhook \"slow.example.com\": failed to call webhook: Post \"{}?timeout=1s\": context deadline exceeded",
                    s.url("/slow")
                )
            );
        } else {
            result.expect("timeout ignored");
        }
    }
}

#[tokio::test]
async fn dry_run_needs_side_effect_free_webhooks() {
    let s = start_server().await;
    for mutating in [true, false] {
        let snap = snapshot(vec![configuration(
            mutating,
            "se",
            vec![webhook(
                "se.example.com",
                &s.url("/allow"),
                &s.ca_pem,
                json!({"sideEffects": "Unknown", "failurePolicy": "Ignore"}),
            )],
        )]);
        let e = if mutating {
            run_mutate(&snap, true).await.map(|_| ())
        } else {
            run_validate(&snap, true).await.map(|_| ())
        }
        .expect_err("dry run refused");
        assert_eq!(e.error.code, 400);
        assert_eq!(e.error.reason, "BadRequest");
        assert_eq!(
            e.error.message,
            "admission webhook \"se.example.com\" does not support dry run"
        );
        assert!(s.requests("/allow").is_empty(), "the webhook is not called");
    }
    // Side effects Some: not a dry run → called.
    let snap = snapshot(vec![configuration(
        false,
        "se",
        vec![webhook(
            "se.example.com",
            &s.url("/allow"),
            &s.ca_pem,
            json!({"sideEffects": "Some"}),
        )],
    )]);
    run_validate(&snap, false).await.expect("allowed");
    assert_eq!(s.requests("/allow").len(), 1);
    // NoneOnDryRun: called, and told it is a dry run.
    let snap = snapshot(vec![configuration(
        false,
        "se",
        vec![webhook(
            "se.example.com",
            &s.url("/allow"),
            &s.ca_pem,
            json!({"sideEffects": "NoneOnDryRun"}),
        )],
    )]);
    run_validate(&snap, true).await.expect("allowed");
    let sent = s.requests("/allow");
    assert_eq!(sent.len(), 2);
    assert_eq!(sent[1]["request"]["dryRun"], true);
    assert_eq!(sent[1]["request"]["options"]["dryRun"], json!(["All"]));
}

#[tokio::test]
async fn reinvocation_if_needed_runs_once_more() {
    let s = start_server().await;
    for (policy, calls) in [("IfNeeded", 2), ("Never", 1)] {
        s.seen.lock().expect("seen").clear();
        let snap = snapshot(vec![
            configuration(
                true,
                "a",
                vec![webhook(
                    "r.example.com",
                    &s.url("/reinvoke"),
                    &s.ca_pem,
                    json!({"reinvocationPolicy": policy}),
                )],
            ),
            configuration(
                true,
                "b",
                vec![webhook(
                    "x.example.com",
                    &s.url("/add-x"),
                    &s.ca_pem,
                    json!({"reinvocationPolicy": "IfNeeded"}),
                )],
            ),
        ]);
        let admitted = run_mutate(&snap, false).await.expect("admitted");
        assert_eq!(
            admitted.object.expect("object")["metadata"]["labels"]["x"],
            "1"
        );
        let sent = s.requests("/reinvoke");
        assert_eq!(sent.len(), calls, "{policy}");
        if calls == 2 {
            assert_eq!(sent[1]["request"]["object"]["metadata"]["labels"]["x"], "1");
        }
        // x.example.com changed the object itself, nothing after it did: not reinvoked.
        assert_eq!(s.requests("/add-x").len(), 1, "{policy}");
    }
}

#[tokio::test]
async fn invalid_answers_and_untrusted_certificates_are_call_failures() {
    let s = start_server().await;
    let snap = snapshot(vec![configuration(
        false,
        "uid",
        vec![webhook(
            "uid.example.com",
            &s.url("/bad-uid"),
            &s.ca_pem,
            json!({}),
        )],
    )]);
    let e = run_validate(&snap, false).await.expect_err("bad uid");
    assert_eq!(e.error.code, 500);
    assert!(
        e.error.message.starts_with(
            "Internal error occurred: failed calling webhook \"uid.example.com\": received invalid webhook response: expected response.uid="
        ),
        "{}",
        e.error.message
    );

    let other_ca = make_tls().ca_pem;
    let snap = snapshot(vec![configuration(
        false,
        "tls",
        vec![webhook(
            "tls.example.com",
            &s.url("/allow"),
            &other_ca,
            json!({}),
        )],
    )]);
    let e = run_validate(&snap, false).await.expect_err("untrusted");
    assert_eq!(e.error.code, 500);
    assert!(e.error.message.contains("tls"), "{}", e.error.message);
    assert!(s.requests("/allow").is_empty());
}

#[tokio::test]
async fn service_client_config_resolves_through_endpoints() {
    let s = start_server().await;
    let port = s.addr.port();
    let mut hook = webhook("svc.example.com", "", &s.ca_pem, json!({}));
    hook["clientConfig"] = json!({
        "service": {"namespace": "test", "name": "hook", "port": 443, "path": "/allow"},
        "caBundle": ca_bundle(&s.ca_pem),
    });
    let snap = snapshot(vec![
        configuration(false, "svc", vec![hook]),
        (
            "/core/services/test/hook".into(),
            json!({"metadata": {"name": "hook", "namespace": "test"},
                "spec": {"ports": [{"port": 443, "targetPort": port}]}}),
        ),
        (
            "/core/endpoints/test/hook".into(),
            json!({"metadata": {"name": "hook", "namespace": "test"},
                "subsets": [{"addresses": [{"ip": "127.0.0.1"}], "ports": [{"port": port}]}]}),
        ),
    ]);
    run_validate(&snap, false).await.expect("allowed");
    assert_eq!(s.requests("/allow").len(), 1);

    // No endpoints: the service is named in the error.
    let mut hook = webhook("svc.example.com", "", &s.ca_pem, json!({}));
    hook["clientConfig"] = json!({
        "service": {"namespace": "test", "name": "gone", "port": 443, "path": "/allow"},
        "caBundle": ca_bundle(&s.ca_pem),
    });
    let snap = snapshot(vec![configuration(false, "svc", vec![hook])]);
    let e = run_validate(&snap, false).await.expect_err("no endpoints");
    assert_eq!(
        e.error.message,
        "Internal error occurred: failed calling webhook \"svc.example.com\": failed to call webhook: Post \"https://gone.test.svc:443/allow?timeout=10s\": no endpoints available for service \"gone\""
    );
}

#[tokio::test]
async fn delete_and_configuration_kinds() {
    let s = start_server().await;
    let snap = snapshot(vec![configuration(
        true,
        "x",
        vec![webhook(
            "x.example.com",
            &s.url("/add-x"),
            &s.ca_pem,
            json!({}),
        )],
    )]);
    // DELETE: no object to patch; the webhook sees oldObject and DeleteOptions.
    let user = alice();
    let cms = info("configmaps");
    let old = configmap();
    let mut attrs = Attributes::new(Operation::Delete, &cms, "cm", &user);
    attrs.namespace = Some("default");
    attrs.old_object = Some(&old);
    let e = tokio::time::timeout(LIMIT, mutate(&snap, &attrs, None))
        .await
        .expect("in time")
        .expect_err("a patch on DELETE is refused");
    assert_eq!(
        e.error.message,
        "Internal error occurred: admission webhook \"x.example.com\" attempted to modify the object, which is not supported for this operation"
    );
    let sent = s.requests("/add-x");
    assert_eq!(sent[0]["request"]["operation"], "DELETE");
    assert_eq!(sent[0]["request"]["object"], Value::Null);
    assert_eq!(sent[0]["request"]["oldObject"], configmap());
    assert_eq!(sent[0]["request"]["options"]["kind"], "DeleteOptions");

    // Webhook configurations themselves are never sent to webhooks.
    let mwc = info("mutatingwebhookconfigurations");
    let attrs = Attributes::new(Operation::Create, &mwc, "x", &user);
    let all = json!({"name": "all.example.com", "clientConfig": {"url": s.url("/deny")},
        "rules": [rule(&["*"], &["*"], &["*"], &["*"])], "sideEffects": "None", "admissionReviewVersions": ["v1"]});
    let snap = snapshot(vec![configuration(false, "all", vec![all])]);
    tokio::time::timeout(LIMIT, validate(&snap, &attrs))
        .await
        .expect("in time")
        .expect("exempt");
}

#[tokio::test]
async fn equivalent_match_sends_and_returns_converted_objects() {
    let s = start_server().await;
    let mut hook = webhook("eq.example.com", &s.url("/label-a"), &s.ca_pem, json!({}));
    hook["rules"] = json!([rule(&["CREATE"], &["apps"], &["v1beta1"], &["deployments"])]);
    let snap = snapshot(vec![configuration(true, "eq", vec![hook])]);
    let user = alice();
    let deployments = info("deployments");
    let versions = vec!["v1".to_string(), "v1beta1".to_string()];
    let mut attrs = Attributes::new(Operation::Create, &deployments, "web", &user);
    attrs.namespace = Some("default");
    attrs.other_versions = &versions;
    let object = json!({"apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": "web", "namespace": "default", "labels": {}}});
    let admitted = tokio::time::timeout(LIMIT, mutate(&snap, &attrs, Some(object)))
        .await
        .expect("in time")
        .expect("admitted");
    let out = admitted.object.expect("object");
    assert_eq!(out["apiVersion"], "apps/v1");
    assert_eq!(out["metadata"]["labels"]["step"], "a");
    let sent = s.requests("/label-a");
    let req = &sent[0]["request"];
    assert_eq!(req["object"]["apiVersion"], "apps/v1beta1");
    assert_eq!(req["kind"]["version"], "v1beta1");
    assert_eq!(req["resource"]["version"], "v1beta1");
    assert_eq!(req["requestKind"]["version"], "v1");
    assert_eq!(req["requestResource"]["version"], "v1");

    // matchPolicy Exact: not called.
    let mut hook = webhook(
        "eq.example.com",
        &s.url("/label-a"),
        &s.ca_pem,
        json!({"matchPolicy": "Exact"}),
    );
    hook["rules"] = json!([rule(&["CREATE"], &["apps"], &["v1beta1"], &["deployments"])]);
    let snap = snapshot(vec![configuration(true, "eq", vec![hook])]);
    let object =
        json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web"}});
    tokio::time::timeout(LIMIT, mutate(&snap, &attrs, Some(object)))
        .await
        .expect("in time")
        .expect("admitted");
    assert_eq!(s.requests("/label-a").len(), 1);
}
