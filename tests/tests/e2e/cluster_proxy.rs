//! `clusters/NAME/proxy/...` end to end: `flotilla up` with two simulated members,
//! requests through the control plane reach a member with the member's
//! credentials and as the caller (impersonated), so the member's RBAC decides.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use flotilla_tests::{run_bounded, system_kubectl};
use serde_json::Value;

const PROXY: &str = "/apis/cluster.karmada.io/v1alpha1/clusters";

/// A running `flotilla up` (the shared harness), killed by PID when dropped.
struct Up {
    inner: flotilla_tests::up::Up,
    dir: PathBuf,
}

impl Up {
    fn start(members: usize) -> Up {
        let inner = flotilla_tests::up::Up::start_with(members, &["--nodes", "2"]);
        let dir = inner.dir.clone();
        Up { inner, dir }
    }

    fn kubeconfig(&self) -> PathBuf {
        self.inner.kubeconfig()
    }

    fn stop(&mut self) {
        if let Some(p) = self.inner.proc.as_mut() {
            p.kill();
        }
    }

    fn kubectl(&self, context: &str, args: &[&str]) -> (i32, String, String) {
        self.kubectl_stdin(context, args, None)
    }

    fn kubectl_stdin(
        &self,
        context: &str,
        args: &[&str],
        stdin: Option<&str>,
    ) -> (i32, String, String) {
        run_bounded(
            kubectl_cmd(&self.kubeconfig(), &self.dir, context).args(args),
            stdin.map(str::as_bytes),
            Duration::from_secs(30),
        )
    }
}

impl Drop for Up {
    fn drop(&mut self) {
        self.stop();
    }
}

fn kubectl_cmd(kubeconfig: &Path, dir: &Path, context: &str) -> Command {
    let mut c = Command::new(system_kubectl());
    c.env("KUBECONFIG", kubeconfig)
        .env("KUBECACHEDIR", dir.join("kcache"))
        .env_remove("HTTPS_PROXY")
        .env_remove("HTTP_PROXY")
        .args(["--context", context]);
    c
}

fn names(list: &str) -> Vec<String> {
    let list: Value = serde_json::from_str(list).expect("JSON list");
    let mut names: Vec<String> = list["items"]
        .as_array()
        .expect("items")
        .iter()
        .filter_map(|i| i["metadata"]["name"].as_str().map(String::from))
        .collect();
    names.sort();
    names
}

#[test]
fn cluster_proxy_reaches_members_as_the_caller() {
    let up = Up::start(2);

    // The control plane's proxy lists member1's nodes, the same as member1 itself.
    let (code, through_proxy, err) = up.kubectl(
        "flotilla",
        &[
            "get",
            "--raw",
            &format!("{PROXY}/member1/proxy/api/v1/nodes"),
        ],
    );
    assert_eq!(code, 0, "{err}");
    let (code, direct, err) = up.kubectl("member1", &["get", "--raw", "/api/v1/nodes"]);
    assert_eq!(code, 0, "{err}");
    assert!(!names(&direct).is_empty(), "member1 has nodes: {direct}");
    assert_eq!(names(&through_proxy), names(&direct));
    // member2 is a different member (its own nodes, same count).
    let (code, out, err) = up.kubectl(
        "flotilla",
        &["get", "--raw", &format!("{PROXY}/member2/proxy/version")],
    );
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("gitVersion"), "{out}");

    // A query string and a write pass through: a namespace created in member2 only.
    let (code, _, err) = up.kubectl_stdin(
        "flotilla",
        &[
            "create",
            "--raw",
            &format!("{PROXY}/member2/proxy/api/v1/namespaces?fieldManager=proxy-test"),
            "-f",
            "-",
        ],
        Some(r#"{"apiVersion":"v1","kind":"Namespace","metadata":{"name":"via-proxy"}}"#),
    );
    assert_eq!(code, 0, "{err}");
    let (code, _, err) = up.kubectl("member2", &["get", "namespace", "via-proxy"]);
    assert_eq!(code, 0, "{err}");

    // A watch streams through both proxies.
    let mut watch = kubectl_cmd(&up.kubeconfig(), &up.dir, "flotilla")
        .args([
            "get",
            "--raw",
            &format!("{PROXY}/member1/proxy/api/v1/namespaces?watch=true"),
        ])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("watch");
    let stdout = watch.stdout.take().expect("stdout");
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let first = rx.recv_timeout(Duration::from_secs(10));
    let _ = watch.kill();
    let _ = watch.wait();
    let first = first.expect("a watch event through the proxy");
    assert!(first.contains("\"type\":\"ADDED\""), "{first}");

    // Unknown cluster: 404 from the aggregated server.
    let (code, _, err) = up.kubectl(
        "flotilla",
        &["get", "--raw", &format!("{PROXY}/nope/proxy/api/v1/nodes")],
    );
    assert_ne!(code, 0);
    assert!(
        err.contains("NotFound") && err.contains("\"nope\" not found"),
        "{err}"
    );

    // alice may not use the proxy on the control plane until bound there...
    let (code, _, err) = up.kubectl(
        "flotilla",
        &[
            "--as=alice",
            "get",
            "--raw",
            &format!("{PROXY}/member1/proxy/api/v1/nodes"),
        ],
    );
    assert_ne!(code, 0);
    assert!(
        err.contains("User \"alice\" cannot get resource \"clusters/proxy\""),
        "{err}"
    );
    let host_rbac = "apiVersion: rbac.authorization.k8s.io/v1\nkind: ClusterRole\nmetadata: {name: cluster-proxy}\n\
        rules: [{apiGroups: [cluster.karmada.io], resources: [clusters/proxy], verbs: [get, list, create]}]\n---\n\
        apiVersion: rbac.authorization.k8s.io/v1\nkind: ClusterRoleBinding\nmetadata: {name: alice-cluster-proxy}\n\
        roleRef: {apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: cluster-proxy}\n\
        subjects: [{apiGroup: rbac.authorization.k8s.io, kind: User, name: alice}]\n";
    let (code, _, err) = up.kubectl_stdin("flotilla", &["apply", "-f", "-"], Some(host_rbac));
    assert_eq!(code, 0, "{err}");

    // ...and then the member decides, as alice: 403 until bound in the member.
    let (code, _, err) = up.kubectl(
        "flotilla",
        &[
            "--as=alice",
            "get",
            "--raw",
            &format!("{PROXY}/member1/proxy/api/v1/nodes"),
        ],
    );
    assert_ne!(code, 0);
    assert!(
        err.contains("nodes is forbidden: User \"alice\" cannot list resource \"nodes\""),
        "{err}"
    );
    let member_rbac = "apiVersion: rbac.authorization.k8s.io/v1\nkind: ClusterRole\nmetadata: {name: node-reader}\n\
        rules: [{apiGroups: [\"\"], resources: [nodes], verbs: [get, list]}]\n---\n\
        apiVersion: rbac.authorization.k8s.io/v1\nkind: ClusterRoleBinding\nmetadata: {name: alice-node-reader}\n\
        roleRef: {apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: node-reader}\n\
        subjects: [{apiGroup: rbac.authorization.k8s.io, kind: User, name: alice}]\n";
    let (code, _, err) = up.kubectl_stdin("member1", &["apply", "-f", "-"], Some(member_rbac));
    assert_eq!(code, 0, "{err}");
    let (code, out, err) = up.kubectl(
        "flotilla",
        &[
            "--as=alice",
            "get",
            "--raw",
            &format!("{PROXY}/member1/proxy/api/v1/nodes"),
        ],
    );
    assert_eq!(code, 0, "{err}");
    assert_eq!(names(&out), names(&direct));
    // The binding is member1's only: member2 still refuses alice.
    let (code, _, err) = up.kubectl(
        "flotilla",
        &[
            "--as=alice",
            "get",
            "--raw",
            &format!("{PROXY}/member2/proxy/api/v1/nodes"),
        ],
    );
    assert_ne!(code, 0);
    assert!(
        err.contains("Forbidden") || err.contains("forbidden"),
        "{err}"
    );

    // A member that does not answer: 503 with a clear message.
    let dead = "apiVersion: cluster.karmada.io/v1alpha1\nkind: Cluster\nmetadata: {name: gone}\n\
        spec: {syncMode: Push, apiEndpoint: \"https://127.0.0.1:1\", secretRef: {namespace: karmada-cluster, name: member1}}\n";
    let (code, _, err) = up.kubectl_stdin("flotilla", &["create", "-f", "-"], Some(dead));
    assert_eq!(code, 0, "{err}");
    let (code, _, err) = up.kubectl(
        "flotilla",
        &["get", "--raw", &format!("{PROXY}/gone/proxy/api/v1/nodes")],
    );
    assert_ne!(code, 0);
    assert!(
        err.contains("ServiceUnavailable")
            && err.contains("cluster \"gone\" is unreachable")
            && err.contains("connection refused"),
        "{err}"
    );
}

/// A TLS server on 127.0.0.1 that answers any request with `101 Switching
/// Protocols` and then echoes bytes; returns (port, CA PEM, the head of the last
/// request for `/echo`).
fn start_echo_backend(
    runtime: &tokio::runtime::Runtime,
) -> (u16, String, std::sync::Arc<std::sync::Mutex<String>>) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let (ca_pem, chain, key) = flotilla_tests::webhook::certificates(&["127.0.0.1"]);
    let provider = std::sync::Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("TLS versions")
        .with_no_client_auth()
        .with_single_cert(chain, key)
        .expect("TLS config");
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    let acceptor = tokio_rustls::TlsAcceptor::from(std::sync::Arc::new(config));
    let listener = runtime
        .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
        .expect("bind");
    let port = listener.local_addr().expect("addr").port();
    let seen = std::sync::Arc::new(std::sync::Mutex::new(String::new()));
    let recorded = seen.clone();
    runtime.spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            let Ok(mut tls) = acceptor.accept(tcp).await else {
                continue;
            };
            let recorded = recorded.clone();
            tokio::spawn(async move {
                let mut head = Vec::new();
                let mut byte = [0u8; 1];
                while !head.ends_with(b"\r\n\r\n") {
                    if tls.read_exact(&mut byte).await.is_err() {
                        return;
                    }
                    head.push(byte[0]);
                }
                // The cluster status controller polls too; keep the test's request.
                if head.starts_with(b"GET /echo") {
                    *recorded.lock().expect("lock") = String::from_utf8_lossy(&head).into_owned();
                }
                let _ = tls
                    .write_all(b"HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: echo\r\n\r\n")
                    .await;
                let mut buf = [0u8; 1024];
                while let Ok(n) = tls.read(&mut buf).await {
                    if n == 0 || tls.write_all(&buf[..n]).await.is_err() {
                        break;
                    }
                    let _ = tls.flush().await;
                }
            });
        }
    });
    (port, ca_pem, seen)
}

#[test]
fn upgrade_requests_are_spliced_end_to_end() {
    use base64::Engine;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let up = Up::start(0);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let (port, ca_pem, seen) = start_echo_backend(&runtime);
    let b64 = |s: &str| base64::engine::general_purpose::STANDARD.encode(s);
    let registration = format!(
        "apiVersion: v1\nkind: Secret\nmetadata: {{name: echo, namespace: karmada-cluster}}\n\
         data: {{token: {}, caBundle: {}}}\n---\n\
         apiVersion: cluster.karmada.io/v1alpha1\nkind: Cluster\nmetadata: {{name: echo}}\n\
         spec: {{syncMode: Push, apiEndpoint: \"https://127.0.0.1:{port}\", secretRef: {{namespace: karmada-cluster, name: echo}}}}\n",
        b64("echo-token"),
        b64(&ca_pem)
    );
    let (code, _, err) = up.kubectl_stdin("flotilla", &["apply", "-f", "-"], Some(&registration));
    assert_eq!(code, 0, "{err}");

    // A raw HTTP/1.1 upgrade request to the control plane, as the admin.
    let host_dir = up.dir.join("apiserver");
    let kubeconfig = std::fs::read_to_string(up.kubeconfig()).expect("kubeconfig");
    let server = kubeconfig
        .lines()
        .find_map(|l| l.trim().strip_prefix("server: "))
        .expect("server")
        .trim_start_matches("https://")
        .to_string();
    let read = |name: &str| std::fs::read(host_dir.join(name)).expect(name);
    use rustls::pki_types::pem::PemObject;
    let mut roots = rustls::RootCertStore::empty();
    roots
        .add(rustls::pki_types::CertificateDer::from_pem_slice(&read("ca.crt")).expect("ca"))
        .expect("root");
    let certs =
        vec![rustls::pki_types::CertificateDer::from_pem_slice(&read("admin.crt")).expect("cert")];
    let key = rustls::pki_types::PrivateKeyDer::from_pem_slice(&read("admin.key")).expect("key");
    let provider = std::sync::Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("TLS versions")
        .with_root_certificates(roots)
        .with_client_auth_cert(certs, key)
        .expect("client config");
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    let echoed = runtime.block_on(async move {
        tokio::time::timeout(Duration::from_secs(10), async move {
            let tcp = tokio::net::TcpStream::connect(&server).await.expect("connect");
            let name = rustls::pki_types::ServerName::try_from("127.0.0.1").expect("name");
            let mut tls = tokio_rustls::TlsConnector::from(std::sync::Arc::new(config))
                .connect(name, tcp)
                .await
                .expect("tls");
            let request = format!(
                "GET {PROXY}/echo/proxy/echo?x=1 HTTP/1.1\r\nHost: {server}\r\nConnection: Upgrade\r\nUpgrade: echo\r\n\r\n"
            );
            tls.write_all(request.as_bytes()).await.expect("write");
            let mut head = Vec::new();
            let mut byte = [0u8; 1];
            while !head.ends_with(b"\r\n\r\n") {
                tls.read_exact(&mut byte).await.expect("response head");
                head.push(byte[0]);
            }
            let head = String::from_utf8_lossy(&head).into_owned();
            assert!(head.starts_with("HTTP/1.1 101"), "{head}");
            tls.write_all(b"ping\n").await.expect("write");
            tls.flush().await.expect("flush");
            let mut buf = [0u8; 5];
            tls.read_exact(&mut buf).await.expect("echo");
            String::from_utf8_lossy(&buf).into_owned()
        })
        .await
        .expect("the upgraded connection answered in time")
    });
    assert_eq!(echoed, "ping\n");
    let head = seen.lock().expect("lock").to_ascii_lowercase();
    assert!(head.starts_with("get /echo?x=1 http/1.1"), "{head}");
    assert!(head.contains("authorization: bearer echo-token"), "{head}");
    assert!(head.contains("impersonate-user: "), "{head}");
    assert!(head.contains("upgrade: echo"), "{head}");
}
