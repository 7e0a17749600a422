//! End-to-end tests of service-account tokens and the delegated reviews: the real
//! `flotilla apiserver` binary driven by the machine's kubectl.
//!
//! `kubectl create token` issues a token (a JWT the server signs with
//! `DATA_DIR/sa.key`); the ServiceAccount then runs kubectl with `--token` through a
//! kubeconfig that carries no credentials of its own. Tokens that must fail —
//! expired, forged, signed by another key, meant for another audience, of a deleted
//! ServiceAccount — get kubectl's `Unauthorized`; a client certificate from another
//! CA is refused. TokenReview, SubjectAccessReview and LocalSubjectAccessReview are
//! created with `kubectl create -f` and their answers read back with `-o json`.
//! Every wait is bounded; every process is killed by PID.

use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

use base64::Engine;
use flotilla_tests::{ApiServer, run_bounded, system_kubectl};
use ring::signature::{ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair};
use serde_json::{Value, json};

/// Upper bound for one kubectl invocation.
const CMD_TIMEOUT: Duration = Duration::from_secs(60);

const UNAUTHORIZED: &str = "error: You must be logged in to the server (Unauthorized)";
const SA_USER: &str = "system:serviceaccount:default:sa1";

/// One fresh server and the machine's kubectl.
struct Session {
    srv: ApiServer,
    kubectl: PathBuf,
    /// A kubeconfig with the server and its CA but no user credentials.
    bare_kubeconfig: PathBuf,
    /// The CA (base64 PEM) as the admin kubeconfig has it.
    ca_data: String,
}

impl Session {
    fn new() -> Session {
        let srv = ApiServer::start();
        let admin_config = std::fs::read_to_string(&srv.kubeconfig).expect("kubeconfig");
        let ca_data = admin_config
            .lines()
            .find_map(|l| l.trim().strip_prefix("certificate-authority-data: "))
            .expect("certificate-authority-data in kubeconfig")
            .to_string();
        let bare_kubeconfig = srv.dir.join("bare-kubeconfig");
        std::fs::write(&bare_kubeconfig, kubeconfig(&srv.url, &ca_data, "{}"))
            .expect("write bare kubeconfig");
        let s = Session {
            srv,
            kubectl: system_kubectl(),
            bare_kubeconfig,
            ca_data,
        };
        // a warm discovery cache, as in the rbac tests
        s.admin(&["get", "namespaces"]);
        s
    }

    fn run_with(&self, kubeconfig: Option<&PathBuf>, args: &[&str]) -> (i32, String, String) {
        let mut c: Command = self.srv.kubectl(&self.kubectl);
        c.arg("--request-timeout=30s");
        if let Some(k) = kubeconfig {
            c.env("KUBECONFIG", k);
        }
        c.args(args);
        run_bounded(&mut c, None, CMD_TIMEOUT)
    }

    /// Runs kubectl as the admin, asserts success, returns stdout.
    #[track_caller]
    fn admin(&self, args: &[&str]) -> String {
        let (code, out, err) = self.run_with(None, args);
        assert!(
            code == 0,
            "kubectl {args:?} failed ({code})\nstdout: {out}\nstderr: {err}"
        );
        out
    }

    /// Runs kubectl with a bearer token and no other credentials.
    fn with_token(&self, token: &str, args: &[&str]) -> (i32, String, String) {
        let flag = format!("--token={token}");
        let mut a = vec![flag.as_str()];
        a.extend_from_slice(args);
        self.run_with(Some(&self.bare_kubeconfig), &a)
    }

    /// Asserts that `token` is refused with kubectl's `Unauthorized`.
    #[track_caller]
    fn unauthorized(&self, token: &str, what: &str) {
        let (code, out, err) = self.with_token(token, &["get", "pods"]);
        assert!(
            code != 0 && err.trim_end() == UNAUTHORIZED,
            "{what}: want {UNAUTHORIZED:?}, got exit {code}\nstdout: {out}\nstderr: {err}"
        );
    }

    /// The username `kubectl auth whoami` reports for `token`.
    #[track_caller]
    fn whoami(&self, token: &str) -> Value {
        let (code, out, err) = self.with_token(token, &["auth", "whoami", "-o", "json"]);
        assert!(
            code == 0,
            "whoami failed ({code})\nstdout: {out}\nstderr: {err}"
        );
        serde_json::from_str(&out).unwrap_or_else(|e| panic!("whoami -o json: {e}: {out}"))
    }

    /// `kubectl create -f` of `object` as the admin, answer as JSON.
    #[track_caller]
    fn create_json(&self, name: &str, object: &Value) -> Value {
        let path = self.srv.dir.join(format!("{name}.json"));
        std::fs::write(&path, object.to_string()).expect("write object");
        let file = path.display().to_string();
        let out = self.admin(&["create", "-f", &file, "-o", "json"]);
        serde_json::from_str(&out).unwrap_or_else(|e| panic!("{name} -o json: {e}: {out}"))
    }

    /// ServiceAccount `sa1` in `default` with a token from `kubectl create token`.
    fn service_account_with_token(&self) -> String {
        self.admin(&["create", "serviceaccount", "sa1"]);
        let token = self.admin(&["create", "token", "sa1"]).trim().to_string();
        assert_eq!(token.split('.').count(), 3, "a JWT: {token}");
        token
    }
}

fn kubeconfig(url: &str, ca_data: &str, user: &str) -> String {
    format!(
        "apiVersion: v1\nkind: Config\nclusters:\n- name: c\n  cluster:\n    server: {url}\n    certificate-authority-data: {ca_data}\nusers:\n- name: u\n  user: {user}\ncontexts:\n- name: c\n  context:\n    cluster: c\n    user: u\ncurrent-context: c\n"
    )
}

fn b64url(bytes: &[u8]) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

fn unb64url(text: &str) -> Vec<u8> {
    base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(text)
        .expect("base64url")
}

/// The claims of a JWT (unverified).
fn claims_of(token: &str) -> Value {
    let payload = token.split('.').nth(1).expect("claims part");
    serde_json::from_slice(&unb64url(payload)).expect("claims JSON")
}

/// A JWT with `claims`, signed ES256 by `key`.
fn sign(key: &EcdsaKeyPair, header: &str, claims: &Value) -> String {
    let input = format!("{header}.{}", b64url(claims.to_string().as_bytes()));
    let rng = ring::rand::SystemRandom::new();
    let sig = key.sign(&rng, input.as_bytes()).expect("sign");
    format!("{input}.{}", b64url(sig.as_ref()))
}

/// The server's own signing key, read from its data directory.
fn server_key(dir: &std::path::Path) -> EcdsaKeyPair {
    let pem = std::fs::read_to_string(dir.join("sa.key")).expect("sa.key");
    let b64: String = pem
        .lines()
        .filter(|l| !l.starts_with("-----"))
        .collect::<Vec<_>>()
        .concat();
    let der = base64::engine::general_purpose::STANDARD
        .decode(b64)
        .expect("PEM body");
    let rng = ring::rand::SystemRandom::new();
    EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &der, &rng).expect("P-256 key")
}

fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_secs() as i64
}

// ---------------------------------------------------------------------------
// Tests
// ---------------------------------------------------------------------------

#[test]
fn service_account_bound_to_view_reads_its_namespace_only() {
    let s = Session::new();
    s.admin(&["create", "namespace", "other"]);
    let token = s.service_account_with_token();
    s.admin(&[
        "create",
        "rolebinding",
        "sa1-view",
        "--clusterrole=view",
        "--serviceaccount=default:sa1",
    ]);
    s.admin(&["run", "p1", "--image=nginx", "--restart=Never"]);

    // who the token is
    let me = s.whoami(&token);
    assert_eq!(me["status"]["userInfo"]["username"], SA_USER, "{me}");
    let groups = &me["status"]["userInfo"]["groups"];
    for g in [
        "system:serviceaccounts",
        "system:serviceaccounts:default",
        "system:authenticated",
    ] {
        assert!(
            groups.as_array().is_some_and(|a| a.iter().any(|x| x == g)),
            "{g} in {me}"
        );
    }
    let uid = s
        .admin(&[
            "get",
            "serviceaccount",
            "sa1",
            "-o",
            "jsonpath={.metadata.uid}",
        ])
        .trim()
        .to_string();
    assert_eq!(me["status"]["userInfo"]["uid"], uid.as_str(), "{me}");

    // reads in its namespace
    let (code, out, err) = s.with_token(&token, &["get", "pods", "-o", "name"]);
    assert!(code == 0, "list pods: {code}\n{out}\n{err}");
    assert_eq!(out.trim(), "pod/p1");

    // 403 elsewhere and on create
    let (code, _, err) = s.with_token(&token, &["get", "pods", "-n", "other"]);
    assert_ne!(code, 0);
    assert_eq!(
        err.trim_end(),
        format!(
            "Error from server (Forbidden): pods is forbidden: User \"{SA_USER}\" cannot list resource \"pods\" in API group \"\" in the namespace \"other\""
        )
    );
    let (code, _, err) = s.with_token(&token, &["create", "configmap", "c1", "--from-literal=a=b"]);
    assert_ne!(code, 0);
    assert!(
        err.contains(&format!(
            "configmaps is forbidden: User \"{SA_USER}\" cannot create resource \"configmaps\" in API group \"\" in the namespace \"default\""
        )),
        "{err}"
    );

    // the ServiceAccount deleted: the token is dead, also after a same-name recreate
    s.admin(&["delete", "serviceaccount", "sa1"]);
    s.unauthorized(&token, "token of a deleted ServiceAccount");
    s.admin(&["create", "serviceaccount", "sa1"]);
    s.unauthorized(&token, "token of a deleted then recreated ServiceAccount");
    // a new token for the new one works again
    let fresh = s.admin(&["create", "token", "sa1"]).trim().to_string();
    let (code, out, err) = s.with_token(&fresh, &["get", "pods", "-o", "name"]);
    assert!(code == 0 && out.trim() == "pod/p1", "{code}\n{out}\n{err}");
}

#[test]
fn token_request_fields_and_limits() {
    let s = Session::new();
    let token = s.service_account_with_token();
    let claims = claims_of(&token);
    assert_eq!(claims["sub"], SA_USER);
    assert_eq!(
        claims["iss"],
        "https://kubernetes.default.svc.cluster.local"
    );
    assert_eq!(
        claims["aud"],
        json!(["https://kubernetes.default.svc.cluster.local"])
    );
    let lifetime = claims["exp"].as_i64().unwrap_or(0) - claims["iat"].as_i64().unwrap_or(0);
    assert_eq!(lifetime, 3600, "default expirationSeconds: {claims}");
    assert_eq!(claims["kubernetes.io"]["serviceaccount"]["name"], "sa1");

    let long = s.admin(&["create", "token", "sa1", "--duration=2h"]);
    let c = claims_of(long.trim());
    assert_eq!(
        c["exp"].as_i64().unwrap_or(0) - c["iat"].as_i64().unwrap_or(0),
        7200
    );

    // issuer discovery: the key set verifies the token; service accounts may read it
    let config: Value =
        serde_json::from_str(&s.admin(&["get", "--raw", "/.well-known/openid-configuration"]))
            .expect("openid-configuration JSON");
    assert_eq!(
        config["issuer"],
        "https://kubernetes.default.svc.cluster.local"
    );
    assert_eq!(
        config["jwks_uri"],
        format!("{}/openid/v1/jwks", s.srv.url).as_str()
    );
    let (code, out, err) = s.with_token(&token, &["get", "--raw", "/openid/v1/jwks"]);
    assert!(code == 0, "jwks as the service account: {code}\n{err}");
    let jwks: Value = serde_json::from_str(&out).expect("jwks JSON");
    let jwk = &jwks["keys"][0];
    assert_eq!(
        (jwk["kty"].as_str(), jwk["alg"].as_str()),
        (Some("EC"), Some("ES256"))
    );
    let mut point = vec![4u8];
    point.extend(unb64url(jwk["x"].as_str().expect("x")));
    point.extend(unb64url(jwk["y"].as_str().expect("y")));
    let parts: Vec<&str> = token.split('.').collect();
    ring::signature::UnparsedPublicKey::new(&ring::signature::ECDSA_P256_SHA256_FIXED, &point)
        .verify(
            format!("{}.{}", parts[0], parts[1]).as_bytes(),
            &unb64url(parts[2]),
        )
        .expect("the token verifies with the published key");

    // kube's minimum is ten minutes
    let (code, _, err) = s.run_with(None, &["create", "token", "sa1", "--duration=5m"]);
    assert_ne!(code, 0);
    assert!(
        err.contains("may not specify a duration less than 10 minutes"),
        "{err}"
    );
    // no such ServiceAccount
    let (code, _, err) = s.run_with(None, &["create", "token", "nope"]);
    assert_ne!(code, 0);
    assert!(err.contains("serviceaccounts \"nope\" not found"), "{err}");
}

#[test]
fn expired_forged_and_foreign_tokens_are_unauthorized() {
    let s = Session::new();
    let token = s.service_account_with_token();
    let parts: Vec<&str> = token.split('.').collect();
    let claims = claims_of(&token);

    // the server's key signs a token of our own making: accepted while valid ...
    let key = server_key(&s.srv.dir);
    let valid = sign(&key, parts[0], &claims);
    assert_eq!(s.whoami(&valid)["status"]["userInfo"]["username"], SA_USER);
    // ... and refused once expired
    let mut expired = claims.clone();
    expired["iat"] = json!(now() - 7200);
    expired["nbf"] = json!(now() - 7200);
    expired["exp"] = json!(now() - 3600);
    s.unauthorized(&sign(&key, parts[0], &expired), "expired token");

    // altered claims under the original signature
    let mut altered = claims.clone();
    altered["exp"] = json!(now() + 100_000);
    let forged = format!(
        "{}.{}.{}",
        parts[0],
        b64url(altered.to_string().as_bytes()),
        parts[2]
    );
    s.unauthorized(&forged, "altered claims");
    // a corrupted signature
    let mut sig = unb64url(parts[2]);
    sig[0] ^= 1;
    s.unauthorized(
        &format!("{}.{}.{}", parts[0], parts[1], b64url(&sig)),
        "corrupted signature",
    );
    // signed by another key
    let rng = ring::rand::SystemRandom::new();
    let pkcs8 = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &rng).expect("key");
    let other = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, pkcs8.as_ref(), &rng)
        .expect("key");
    s.unauthorized(&sign(&other, parts[0], &claims), "another key");
    // alg none
    let none = format!("{}.{}.", b64url(br#"{"alg":"none"}"#), parts[1]);
    s.unauthorized(&none, "alg none");
    // meant for another audience
    let foreign = s.admin(&["create", "token", "sa1", "--audience=vault"]);
    s.unauthorized(foreign.trim(), "another audience");
    // garbage
    s.unauthorized("eyJ.eyJ.abc", "garbage");
    // the original still works
    assert_eq!(s.whoami(&token)["status"]["userInfo"]["username"], SA_USER);
}

#[test]
fn client_certificate_from_another_ca_is_rejected() {
    use rcgen::{
        BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    };
    let s = Session::new();
    // another CA with the server CA's very name: only the signature tells them apart
    let ca_key = KeyPair::generate().expect("key");
    let mut ca = CertificateParams::new(Vec::<String>::new()).expect("params");
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca.distinguished_name
        .push(DnType::CommonName, "flotilla-ca");
    let ca_cert = ca.self_signed(&ca_key).expect("CA");
    let issuer = Issuer::from_ca_cert_pem(&ca_cert.pem(), ca_key).expect("issuer");
    let key = KeyPair::generate().expect("key");
    let mut params = CertificateParams::new(Vec::<String>::new()).expect("params");
    params.distinguished_name.push(DnType::CommonName, "admin");
    params
        .distinguished_name
        .push(DnType::OrganizationName, "system:masters");
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
    let cert = params.signed_by(&key, &issuer).expect("client cert");
    let b64 = |t: &str| base64::engine::general_purpose::STANDARD.encode(t.as_bytes());
    let path = s.srv.dir.join("foreign-kubeconfig");
    std::fs::write(
        &path,
        kubeconfig(
            &s.srv.url,
            &s.ca_data,
            &format!(
                "{{client-certificate-data: {}, client-key-data: {}}}",
                b64(&cert.pem()),
                b64(&key.serialize_pem())
            ),
        ),
    )
    .expect("write kubeconfig");
    let (code, out, err) = s.run_with(Some(&path), &["get", "pods"]);
    assert_ne!(code, 0, "a foreign client certificate was accepted: {out}");
    // The handshake fails on the server's side; kubectl sees the TLS alert, or,
    // when its request races the alert, the connection closing.
    let lower = err.to_lowercase();
    eprintln!("foreign client certificate: {err}");
    assert!(
        [
            "certificate",
            "tls",
            "unauthorized",
            "eof",
            "connection reset",
            "broken pipe",
            "unable to connect"
        ]
        .iter()
        .any(|w| lower.contains(w)),
        "{err}"
    );
}

#[test]
fn token_review_and_subject_access_reviews() {
    let s = Session::new();
    let token = s.service_account_with_token();
    s.admin(&[
        "create",
        "rolebinding",
        "sa1-view",
        "--clusterrole=view",
        "--serviceaccount=default:sa1",
    ]);

    // TokenReview
    let review = |token: &str, audiences: Option<&[&str]>| {
        let mut spec = json!({"token": token});
        if let Some(a) = audiences {
            spec["audiences"] = json!(a);
        }
        json!({"apiVersion": "authentication.k8s.io/v1", "kind": "TokenReview", "spec": spec})
    };
    let ok = s.create_json("tr-ok", &review(&token, None));
    assert_eq!(ok["kind"], "TokenReview");
    assert_eq!(ok["status"]["authenticated"], true, "{ok}");
    assert_eq!(ok["status"]["user"]["username"], SA_USER, "{ok}");
    assert!(
        ok["status"]["user"]["groups"]
            .as_array()
            .is_some_and(|g| g.iter().any(|x| x == "system:serviceaccounts:default")),
        "{ok}"
    );
    assert_eq!(
        ok["status"]["audiences"],
        json!(["https://kubernetes.default.svc.cluster.local"])
    );
    let bad = s.create_json("tr-bad", &review("eyJ.eyJ.nope", None));
    assert_ne!(bad["status"]["authenticated"], true, "{bad}");
    assert!(
        bad["status"]["error"]
            .as_str()
            .is_some_and(|e| !e.is_empty()),
        "{bad}"
    );
    let other_aud = s.create_json("tr-aud", &review(&token, Some(&["vault"])));
    assert_ne!(other_aud["status"]["authenticated"], true, "{other_aud}");
    let vault = s.admin(&["create", "token", "sa1", "--audience=vault"]);
    let for_vault = s.create_json("tr-vault", &review(vault.trim(), Some(&["vault"])));
    assert_eq!(for_vault["status"]["authenticated"], true, "{for_vault}");
    assert_eq!(for_vault["status"]["audiences"], json!(["vault"]));

    // SubjectAccessReview
    let sar = |namespace: &str, verb: &str, resource: &str| {
        json!({
            "apiVersion": "authorization.k8s.io/v1",
            "kind": "SubjectAccessReview",
            "spec": {
                "user": SA_USER,
                "groups": ["system:serviceaccounts", "system:serviceaccounts:default"],
                "resourceAttributes": {"namespace": namespace, "verb": verb, "resource": resource},
            },
        })
    };
    let yes = s.create_json("sar-yes", &sar("default", "list", "pods"));
    assert_eq!(yes["kind"], "SubjectAccessReview");
    assert_eq!(yes["status"]["allowed"], true, "{yes}");
    assert!(
        yes["status"]["reason"]
            .as_str()
            .is_some_and(|r| r.contains("sa1-view")),
        "{yes}"
    );
    let no = s.create_json("sar-no", &sar("other", "list", "pods"));
    assert_eq!(no["status"]["allowed"], false, "{no}");
    let no = s.create_json("sar-create", &sar("default", "create", "configmaps"));
    assert_eq!(no["status"]["allowed"], false, "{no}");
    // no user and no groups: 422
    let path = s.srv.dir.join("sar-nobody.json");
    std::fs::write(
        &path,
        json!({"apiVersion": "authorization.k8s.io/v1", "kind": "SubjectAccessReview",
            "spec": {"resourceAttributes": {"verb": "get", "resource": "pods"}}})
        .to_string(),
    )
    .expect("write");
    let file = path.display().to_string();
    let (code, _, err) = s.run_with(None, &["create", "-f", &file]);
    assert_ne!(code, 0);
    assert!(
        err.contains("at least one of user or group must be specified"),
        "{err}"
    );

    // LocalSubjectAccessReview
    let local = |verb: &str, resource: &str| {
        json!({
            "apiVersion": "authorization.k8s.io/v1",
            "kind": "LocalSubjectAccessReview",
            "metadata": {"namespace": "default"},
            "spec": {
                "user": SA_USER,
                "resourceAttributes": {"namespace": "default", "verb": verb, "resource": resource},
            },
        })
    };
    let yes = s.create_json("lsar-yes", &local("get", "pods"));
    assert_eq!(yes["kind"], "LocalSubjectAccessReview");
    assert_eq!(yes["status"]["allowed"], true, "{yes}");
    let no = s.create_json("lsar-no", &local("delete", "pods"));
    assert_eq!(no["status"]["allowed"], false, "{no}");
}

/// `kubectl create token --bound-object-kind Pod|Secret`: the token names the
/// object under `kubernetes.io`, the object must exist when the token is asked
/// for, and the token stops working once the object is deleted (or recreated,
/// with another uid).
#[test]
fn bound_tokens_live_with_their_object() {
    let s = Session::new();
    s.admin(&["create", "serviceaccount", "sa1"]);
    s.admin(&["run", "web", "--image=nginx", "--restart=Never"]);
    let pod_uid = s
        .admin(&["get", "pod", "web", "-o", "jsonpath={.metadata.uid}"])
        .trim()
        .to_string();
    assert!(!pod_uid.is_empty());
    let token = s
        .admin(&[
            "create",
            "token",
            "sa1",
            "--bound-object-kind=Pod",
            "--bound-object-name=web",
        ])
        .trim()
        .to_string();
    let claims = claims_of(&token);
    assert_eq!(
        claims["kubernetes.io"]["pod"],
        json!({"name": "web", "uid": pod_uid}),
        "{claims}"
    );
    assert_eq!(claims["kubernetes.io"]["serviceaccount"]["name"], "sa1");
    let who = s.whoami(&token);
    assert_eq!(who["status"]["userInfo"]["username"], SA_USER, "{who}");
    assert_eq!(
        who["status"]["userInfo"]["extra"]["authentication.kubernetes.io/pod-name"],
        json!(["web"]),
        "{who}"
    );

    // No such object: the object's own 404; another uid: 409; a kind tokens
    // cannot be bound to: 400.
    let (code, _, err) = s.run_with(
        None,
        &[
            "create",
            "token",
            "sa1",
            "--bound-object-kind=Pod",
            "--bound-object-name=nope",
        ],
    );
    assert_ne!(code, 0);
    assert!(err.contains("pods \"nope\" not found"), "{err}");
    let (code, _, err) = s.run_with(
        None,
        &[
            "create",
            "token",
            "sa1",
            "--bound-object-kind=Pod",
            "--bound-object-name=web",
            "--bound-object-uid=00000000-0000-0000-0000-000000000000",
        ],
    );
    assert_ne!(code, 0);
    assert!(
        err.contains("Operation cannot be fulfilled on Pod \"web\": the UID in the bound object reference (00000000-0000-0000-0000-000000000000) does not match the UID in record"),
        "{err}"
    );
    let bad = json!({
        "apiVersion": "authentication.k8s.io/v1", "kind": "TokenRequest",
        "spec": {"boundObjectRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "web"}},
    });
    let path = s.srv.dir.join("bound-deployment.json");
    std::fs::write(&path, bad.to_string()).expect("write request");
    let (code, out, err) = s.run_with(
        None,
        &[
            "create",
            "--raw",
            "/api/v1/namespaces/default/serviceaccounts/sa1/token",
            "-f",
            &path.display().to_string(),
        ],
    );
    assert_ne!(code, 0, "{out}");
    assert!(
        err.contains(
            "cannot bind token for serviceaccount \"sa1\" to object of type apps/v1, Kind=Deployment"
        ),
        "{err}"
    );

    // A Secret-bound token dies with its Secret.
    s.admin(&[
        "create",
        "secret",
        "generic",
        "holder",
        "--from-literal=a=b",
    ]);
    let secret_token = s
        .admin(&[
            "create",
            "token",
            "sa1",
            "--bound-object-kind=Secret",
            "--bound-object-name=holder",
        ])
        .trim()
        .to_string();
    assert_eq!(
        claims_of(&secret_token)["kubernetes.io"]["secret"]["name"],
        "holder"
    );
    assert_eq!(
        s.whoami(&secret_token)["status"]["userInfo"]["username"],
        SA_USER
    );
    s.admin(&["delete", "secret", "holder"]);
    s.unauthorized(&secret_token, "token bound to a deleted Secret");

    // Deleted, then recreated under the same name with another uid: refused.
    s.admin(&["delete", "pod", "web", "--wait=false"]);
    let gone = Instant::now() + Duration::from_secs(30);
    while s.run_with(None, &["get", "pod", "web", "-o", "name"]).0 == 0 {
        assert!(Instant::now() < gone, "pod web was not deleted");
        std::thread::sleep(Duration::from_millis(100));
    }
    s.unauthorized(&token, "token bound to a deleted Pod");
    s.admin(&["run", "web", "--image=nginx", "--restart=Never"]);
    s.unauthorized(&token, "token bound to a recreated Pod");
    // A fresh token for the new Pod works.
    let fresh = s
        .admin(&[
            "create",
            "token",
            "sa1",
            "--bound-object-kind=Pod",
            "--bound-object-name=web",
        ])
        .trim()
        .to_string();
    assert_eq!(s.whoami(&fresh)["status"]["userInfo"]["username"], SA_USER);
}

/// A `kubernetes.io/service-account-token` Secret gets a token filled in (with
/// `ca.crt` and `namespace`); the token authenticates as the ServiceAccount
/// until the Secret is deleted.
#[test]
fn legacy_secret_tokens_work_until_the_secret_goes() {
    let s = Session::new();
    // The Secret first: it waits for its ServiceAccount.
    let secret = json!({
        "apiVersion": "v1", "kind": "Secret", "type": "kubernetes.io/service-account-token",
        "metadata": {"name": "sa1-token", "namespace": "default",
                     "annotations": {"kubernetes.io/service-account.name": "sa1"}},
    });
    s.create_json("sa1-token", &secret);
    s.admin(&["create", "serviceaccount", "sa1"]);
    let sa_uid = s
        .admin(&[
            "get",
            "serviceaccount",
            "sa1",
            "-o",
            "jsonpath={.metadata.uid}",
        ])
        .trim()
        .to_string();
    let deadline = Instant::now() + Duration::from_secs(30);
    let filled = loop {
        let out = s.admin(&["get", "secret", "sa1-token", "-o", "json"]);
        let v: Value = serde_json::from_str(&out).expect("secret JSON");
        if v["data"]["token"].is_string() {
            break v;
        }
        assert!(
            Instant::now() < deadline,
            "the token controller did not fill in the Secret: {v}"
        );
        std::thread::sleep(Duration::from_millis(100));
    };
    assert_eq!(
        filled["metadata"]["annotations"]["kubernetes.io/service-account.uid"],
        sa_uid.as_str()
    );
    let decode = |k: &str| {
        String::from_utf8(
            base64::engine::general_purpose::STANDARD
                .decode(filled["data"][k].as_str().unwrap_or_default())
                .expect("base64"),
        )
        .expect("utf-8")
    };
    assert_eq!(decode("namespace"), "default");
    assert!(decode("ca.crt").starts_with("-----BEGIN CERTIFICATE-----"));
    let token = decode("token");
    let claims = claims_of(&token);
    assert_eq!(claims["iss"], "kubernetes/serviceaccount", "{claims}");
    assert_eq!(
        claims["kubernetes.io/serviceaccount/secret.name"],
        "sa1-token"
    );
    assert_eq!(claims["sub"], SA_USER);
    assert_eq!(s.whoami(&token)["status"]["userInfo"]["username"], SA_USER);

    s.admin(&["delete", "secret", "sa1-token"]);
    s.unauthorized(&token, "token of a deleted Secret");
}
