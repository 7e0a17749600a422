//! APIService aggregation: a second flotilla API server, trusting the first one's
//! front-proxy CA, serves a group the first proxies to it — discovery, OpenAPI,
//! create, list, watch and RBAC all through the first server with stock kubectl.

use std::io::Write;
use std::process::Stdio;
use std::time::{Duration, Instant};

use base64::Engine;
use flotilla_tests::{ApiServer, run, system_kubectl};

const CRD: &str = r#"{"apiVersion":"apiextensions.k8s.io/v1","kind":"CustomResourceDefinition",
 "metadata":{"name":"widgets.example.flotilla.io"},
 "spec":{"group":"example.flotilla.io","scope":"Namespaced",
  "names":{"plural":"widgets","singular":"widget","kind":"Widget","shortNames":["wd"]},
  "versions":[{"name":"v1","served":true,"storage":true,
   "schema":{"openAPIV3Schema":{"type":"object","properties":{"spec":{"type":"object","properties":{"size":{"type":"integer"}}}}}},
   "additionalPrinterColumns":[{"name":"Size","type":"integer","jsonPath":".spec.size"}]}]}}"#;

fn apply(server: &ApiServer, manifest: &str) -> (i32, String, String) {
    let mut child = server
        .kubectl(&system_kubectl())
        .args(["apply", "-f", "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("kubectl");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(manifest.as_bytes())
        .expect("write");
    let out = child.wait_with_output().expect("kubectl output");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// The text of a log without terminal colour codes (`ESC [ ... m`).
fn strip_ansi(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            for c in chars.by_ref() {
                if c == 'm' {
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}

fn kubectl(server: &ApiServer, args: &[&str]) -> (i32, String, String) {
    run(server.kubectl(&system_kubectl()).args(args))
}

#[test]
fn apiservice_proxies_a_remote_group() {
    let host = ApiServer::start();
    let front_proxy_ca = host.dir.join("front-proxy-ca.crt");
    let remote = ApiServer::start_with(&[
        "--tls-san",
        "widgets.kube-system.svc",
        "--requestheader-client-ca-file",
        front_proxy_ca.to_str().expect("utf-8 path"),
        "--requestheader-allowed-names",
        "front-proxy-client",
    ]);
    let (code, _, err) = apply(&remote, CRD);
    assert_eq!(code, 0, "{err}");

    let port = remote.addr().rsplit(':').next().expect("port").to_string();
    let ca = std::fs::read(remote.dir.join("ca.crt")).expect("remote CA");
    let ca_b64 = base64::engine::general_purpose::STANDARD.encode(ca);
    let registration = format!(
        "apiVersion: v1\nkind: Service\nmetadata: {{name: widgets, namespace: kube-system}}\nspec: {{ports: [{{port: 443, targetPort: {port}}}]}}\n---\n\
         apiVersion: v1\nkind: Endpoints\nmetadata: {{name: widgets, namespace: kube-system}}\nsubsets: [{{addresses: [{{ip: 127.0.0.1}}], ports: [{{port: {port}}}]}}]\n---\n\
         apiVersion: apiregistration.k8s.io/v1\nkind: APIService\nmetadata: {{name: v1.example.flotilla.io}}\n\
         spec: {{group: example.flotilla.io, version: v1, service: {{namespace: kube-system, name: widgets, port: 443}}, caBundle: {ca_b64}, groupPriorityMinimum: 1000, versionPriority: 15}}\n"
    );
    let (code, _, err) = apply(&host, &registration);
    assert_eq!(code, 0, "{err}");

    // The availability check marks it Available.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let (_, out, _) = kubectl(
            &host,
            &[
                "get",
                "apiservice",
                "v1.example.flotilla.io",
                "-o",
                "jsonpath={.status.conditions[0].status}",
            ],
        );
        if out == "True" {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "APIService never became Available: {out}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }

    // Discovery, OpenAPI (create without --validate=false), create, list with printer columns.
    let (code, out, err) = kubectl(&host, &["api-resources", "--api-group=example.flotilla.io"]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("widgets") && out.contains("wd"), "{out}");
    let (code, out, err) = apply(
        &host,
        "apiVersion: example.flotilla.io/v1\nkind: Widget\nmetadata: {name: w1, namespace: default}\nspec: {size: 3}\n",
    );
    assert_eq!(code, 0, "{err}");
    assert_eq!(out.trim(), "widget.example.flotilla.io/w1 created");
    let (_, out, _) = kubectl(&host, &["get", "wd"]);
    let header: Vec<&str> = out
        .lines()
        .next()
        .expect("header")
        .split_whitespace()
        .collect();
    assert_eq!(header, ["NAME", "SIZE"]);
    assert!(out.contains("w1") && out.contains('3'), "{out}");
    // It is stored in the remote server.
    let (_, out, _) = kubectl(
        &remote,
        &["get", "widgets", "w1", "-o", "jsonpath={.spec.size}"],
    );
    assert_eq!(out, "3");

    // A watch through the proxy sees a change.
    let mut watch = host
        .kubectl(&system_kubectl())
        .args([
            "get",
            "wd",
            "w1",
            "-w",
            "-o",
            "jsonpath={.metadata.labels.color}{\"\\n\"}",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("watch");
    std::thread::sleep(Duration::from_millis(800));
    let (code, _, err) = kubectl(&host, &["label", "wd", "w1", "color=blue"]);
    assert_eq!(code, 0, "{err}");
    let stdout = watch.stdout.take().expect("stdout");
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        use std::io::BufRead;
        for line in std::io::BufReader::new(stdout)
            .lines()
            .map_while(Result::ok)
        {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let seen = (0..20).find_map(|_| {
        rx.recv_timeout(Duration::from_millis(500))
            .ok()
            .filter(|l| l == "blue")
    });
    let _ = watch.kill();
    let _ = watch.wait();
    assert_eq!(
        seen.as_deref(),
        Some("blue"),
        "the watch through the proxy did not deliver the update"
    );

    // RBAC is enforced by the front server before proxying.
    let (code, _, err) = kubectl(&host, &["get", "wd", "--as=alice"]);
    assert_eq!(code, 1);
    assert!(
        err.contains("widgets.example.flotilla.io is forbidden: User \"alice\" cannot list resource \"widgets\""),
        "{err}"
    );

    // The backend sees the caller in the front-proxy headers: alice, bound on the
    // host, with the group she is impersonated into.
    let rbac = "apiVersion: rbac.authorization.k8s.io/v1\nkind: ClusterRole\nmetadata: {name: widget-maker}\n\
        rules: [{apiGroups: [example.flotilla.io], resources: [widgets], verbs: [create, get, list]}]\n---\n\
        apiVersion: rbac.authorization.k8s.io/v1\nkind: ClusterRoleBinding\nmetadata: {name: alice-widget-maker}\n\
        roleRef: {apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: widget-maker}\n\
        subjects: [{apiGroup: rbac.authorization.k8s.io, kind: User, name: alice}]\n";
    let (code, _, err) = apply(&host, rbac);
    assert_eq!(code, 0, "{err}");
    // Impersonation from the kubeconfig (kubectl 1.33 has no --as-user-extra flag).
    let admin = std::fs::read_to_string(&host.kubeconfig).expect("kubeconfig");
    let mut as_alice = String::new();
    for line in admin.lines() {
        as_alice.push_str(line);
        as_alice.push('\n');
        if line.starts_with("    client-key-data:") {
            as_alice.push_str(
                "    as: alice\n    as-groups: [devs]\n    as-user-extra:\n      team: [blue]\n",
            );
        }
    }
    let as_alice_path = host.dir.join("as-alice-kubeconfig");
    std::fs::write(&as_alice_path, as_alice).expect("write kubeconfig");
    let mut create = host.kubectl(&system_kubectl());
    create
        .env("KUBECONFIG", &as_alice_path)
        .args(["create", "-f", "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = create.spawn().expect("kubectl create");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(b"apiVersion: example.flotilla.io/v1\nkind: Widget\nmetadata: {name: by-alice, namespace: default}\nspec: {size: 1}\n")
        .expect("write");
    let out = child.wait_with_output().expect("kubectl output");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let log = strip_ansi(&remote.log_text());
    let audit = log
        .lines()
        .find(|l| {
            l.contains("mutating request") && l.contains("/widgets") && l.contains("user=alice")
        })
        .map(str::to_string);
    let audit = audit.unwrap_or_else(|| panic!("no audit line for alice: {log}"));
    assert!(
        audit.contains("groups=devs,system:authenticated"),
        "the backend saw other groups: {audit}"
    );
    // ...and her extras, sent as X-Remote-Extra-Team.
    assert!(
        audit.contains("extra=team=blue"),
        "the backend did not see the extra: {audit}"
    );

    // The backend trusts those headers only from the front proxy's certificate.
    let widgets = format!(
        "{}/apis/example.flotilla.io/v1/namespaces/default/widgets",
        remote.url
    );
    let remote_ca = remote.dir.join("ca.crt");
    let curl = |extra: &[&str]| -> (i32, String) {
        let (code, out, err) = run(std::process::Command::new("curl")
            .args([
                "-sS",
                "-o",
                "/dev/null",
                "-w",
                "%{http_code}",
                "--max-time",
                "10",
            ])
            .arg("--cacert")
            .arg(&remote_ca)
            .args([
                "-H",
                "X-Remote-User: admin",
                "-H",
                "X-Remote-Group: system:masters",
            ])
            .args(extra)
            .arg(&widgets));
        (code, format!("{out}{err}"))
    };
    let cert = |name: &str| {
        host.dir
            .join(name)
            .to_str()
            .expect("utf-8 path")
            .to_string()
    };
    // With the front proxy's client certificate: accepted (the control case).
    let (code, out) = curl(&[
        "--cert",
        &cert("front-proxy-client.crt"),
        "--key",
        &cert("front-proxy-client.key"),
    ]);
    assert_eq!((code, out.as_str()), (0, "200"));
    // Without a certificate, the headers name nobody: 401.
    let (code, out) = curl(&[]);
    assert_eq!((code, out.as_str()), (0, "401"));
    // A client certificate from another CA (the host's admin): TLS failure or 401.
    let (code, out) = curl(&["--cert", &cert("admin.crt"), "--key", &cert("admin.key")]);
    assert!(
        code != 0 || out == "401",
        "a foreign certificate was accepted: {code} {out}"
    );

    // When the remote is gone, requests fail with 503 and the APIService turns unavailable.
    drop(remote);
    let (code, _, err) = kubectl(&host, &["get", "wd", "w1"]);
    assert_eq!(code, 1);
    assert!(err.contains("ServiceUnavailable"), "{err}");
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let (_, out, _) = kubectl(
            &host,
            &[
                "get",
                "apiservice",
                "v1.example.flotilla.io",
                "-o",
                "jsonpath={.status.conditions[0].status}/{.status.conditions[0].reason}",
            ],
        );
        if out == "False/FailedDiscoveryCheck" {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "APIService never became unavailable: {out}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}
