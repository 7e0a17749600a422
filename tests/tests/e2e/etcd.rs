//! Two `flotilla apiserver` replicas on one etcd (`--storage etcd`): a write through
//! one is seen by a kube-rs watch on the other and by kubectl there, CRDs created
//! through one are served by the other, and killing a replica loses nothing: the
//! other still serves everything, and the restarted one serves it too. A server that
//! compacts etcd answers 410 Gone for watches from compacted revisions.
//!
//! etcd is Debian's `etcd-server`, installed by `scripts/install-etcd` when missing,
//! started on free loopback ports and killed by PID.

use std::path::Path;
use std::time::Duration;

use flotilla_tests::etcd::Etcd;
use flotilla_tests::up::wait_for;
use flotilla_tests::{ApiServer, run, system_kubectl};
use futures::StreamExt;
use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::{Api, ListParams, WatchEvent, WatchParams};
use kube::{Client, Config};
use tokio::sync::mpsc;

async fn client(server: &ApiServer) -> Client {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let kubeconfig = kube::config::Kubeconfig::read_from(&server.kubeconfig).expect("kubeconfig");
    let config = Config::from_custom_kubeconfig(kubeconfig, &Default::default())
        .await
        .expect("config");
    Client::try_from(config).expect("client")
}

/// Gives a second replica the first one's CA, certificates, keys and tokens.
fn share_pki(from: &Path, to: &Path) {
    for entry in std::fs::read_dir(from).expect("data dir") {
        let path = entry.expect("entry").path();
        let shared = path
            .extension()
            .is_some_and(|e| e == "crt" || e == "key" || e == "csv");
        if shared {
            std::fs::copy(&path, to.join(path.file_name().expect("name"))).expect("copy");
        }
    }
}

/// kubectl against `server`; (code, stdout, stderr).
fn k(server: &ApiServer, args: &[&str]) -> (i32, String, String) {
    run(server.kubectl(&system_kubectl()).args(args))
}

fn k_ok(server: &ApiServer, args: &[&str]) -> String {
    let (code, out, err) = k(server, args);
    assert_eq!(code, 0, "kubectl {args:?} failed: {err}");
    out
}

/// Waits until the watch has reported an ADDED `name`.
async fn seen(events: &mut mpsc::UnboundedReceiver<(String, String)>, name: &str) -> String {
    tokio::time::timeout(Duration::from_secs(20), async {
        loop {
            let (kind, got) = events.recv().await.expect("watch still open");
            if kind == "ADDED" && got == name {
                return got;
            }
        }
    })
    .await
    .unwrap_or_else(|_| panic!("the watch on the other replica did not report {name}"))
}

const CRD: &str = r#"{
  "apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
  "metadata": {"name": "widgets.example.com"},
  "spec": {"group": "example.com", "scope": "Namespaced",
    "names": {"plural": "widgets", "singular": "widget", "kind": "Widget"},
    "versions": [{"name": "v1", "served": true, "storage": true,
      "schema": {"openAPIV3Schema": {"type": "object", "x-kubernetes-preserve-unknown-fields": true}}}]}
}"#;

const WIDGET: &str = r#"{"apiVersion": "example.com/v1", "kind": "Widget",
  "metadata": {"name": "w1", "namespace": "default"}, "spec": {"size": 3}}"#;

fn apply(server: &ApiServer, manifest: &str) {
    let path = server.dir.join(format!("manifest-{}.json", manifest.len()));
    std::fs::write(&path, manifest).expect("manifest");
    k_ok(server, &["apply", "-f", path.to_str().expect("path")]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_replicas_share_one_etcd() {
    let etcd = Etcd::start();
    let args = ["--storage", "etcd", "--etcd-servers", etcd.url.as_str()];
    let mut a = ApiServer::start_with(&args);
    let a_dir = a.dir.clone();
    let b = ApiServer::start_prepared(&args, |dir| share_pki(&a_dir, dir));

    // A kube-rs watch on B, from the resourceVersion of a list on B.
    let on_b: Api<ConfigMap> = Api::namespaced(client(&b).await, "default");
    let listed = on_b.list(&ListParams::default()).await.expect("list on b");
    let rv = listed.metadata.resource_version.expect("list rv");
    let mut stream = on_b
        .watch(&WatchParams::default().timeout(280), &rv)
        .await
        .expect("watch on b")
        .boxed();
    let (tx, mut events) = mpsc::unbounded_channel();
    let watching = tokio::spawn(async move {
        while let Some(Ok(event)) = stream.next().await {
            let (kind, cm) = match event {
                WatchEvent::Added(cm) => ("ADDED", cm),
                WatchEvent::Modified(cm) => ("MODIFIED", cm),
                WatchEvent::Deleted(cm) => ("DELETED", cm),
                _ => continue,
            };
            let _ = tx.send((kind.to_string(), cm.metadata.name.unwrap_or_default()));
        }
    });

    // A write through A is seen by the watch on B, with the same resourceVersion.
    k_ok(&a, &["create", "configmap", "c1", "--from-literal=k=v"]);
    seen(&mut events, "c1").await;
    let rv_a = k_ok(
        &a,
        &[
            "get",
            "configmap",
            "c1",
            "-o",
            "jsonpath={.metadata.resourceVersion}",
        ],
    );
    let rv_b = k_ok(
        &b,
        &[
            "get",
            "configmap",
            "c1",
            "-o",
            "jsonpath={.metadata.resourceVersion}",
        ],
    );
    assert_eq!(rv_a, rv_b);

    // A write through B is read back through A at once (a consistent read).
    k_ok(&b, &["create", "configmap", "c2", "--from-literal=k=v"]);
    assert_eq!(
        k_ok(&a, &["get", "configmap", "c2", "-o", "jsonpath={.data.k}"]),
        "v"
    );
    seen(&mut events, "c2").await;

    // A paginated list started on A continues on B.
    let on_a: Api<ConfigMap> = Api::namespaced(client(&a).await, "default");
    let all: Vec<String> = on_a
        .list(&ListParams::default())
        .await
        .expect("list on a")
        .items
        .into_iter()
        .filter_map(|cm| cm.metadata.name)
        .collect();
    let first = on_a
        .list(&ListParams::default().limit(1))
        .await
        .expect("first page on a");
    let token = first.metadata.continue_.clone().expect("a continue token");
    let rest = on_b
        .list(&ListParams::default().limit(100).continue_token(&token))
        .await
        .expect("the rest on b");
    let paged: Vec<String> = first
        .items
        .into_iter()
        .chain(rest.items)
        .filter_map(|cm| cm.metadata.name)
        .collect();
    assert_eq!(paged, all);
    assert!(all.len() >= 2, "{all:?}");

    // A CRD created through A is served by B too.
    apply(&a, CRD);
    wait_for(Duration::from_secs(20), "B to serve widgets", || {
        let (code, out, err) = k(&b, &["get", "widgets"]);
        if code == 0 { Ok(out) } else { Err(err) }
    });
    apply(&b, WIDGET);
    assert_eq!(
        k_ok(&a, &["get", "widget", "w1", "-o", "jsonpath={.spec.size}"]),
        "3"
    );

    // Kill A: B still serves everything and takes writes.
    a.kill();
    let names = k_ok(
        &b,
        &[
            "get",
            "configmaps",
            "-o",
            "jsonpath={.items[*].metadata.name}",
        ],
    );
    for name in ["c1", "c2"] {
        assert!(names.split_whitespace().any(|n| n == name), "{names}");
    }
    assert_eq!(
        k_ok(&b, &["get", "widget", "w1", "-o", "jsonpath={.spec.size}"]),
        "3"
    );
    k_ok(&b, &["create", "configmap", "c3", "--from-literal=k=v"]);
    seen(&mut events, "c3").await;

    // The restarted A serves everything, including what was written while it was down.
    a.restart();
    let names = k_ok(
        &a,
        &[
            "get",
            "configmaps",
            "-o",
            "jsonpath={.items[*].metadata.name}",
        ],
    );
    for name in ["c1", "c2", "c3"] {
        assert!(names.split_whitespace().any(|n| n == name), "{names}");
    }
    assert_eq!(
        k_ok(&a, &["get", "widget", "w1", "-o", "jsonpath={.spec.size}"]),
        "3"
    );
    k_ok(&a, &["create", "configmap", "c4", "--from-literal=k=v"]);
    seen(&mut events, "c4").await;

    watching.abort();
    drop(etcd);
}

/// With `--etcd-compaction-interval` the server compacts etcd itself; a watch from a
/// revision both out of its memory window and compacted in etcd answers 410 Gone.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn compacted_revisions_answer_410() {
    let etcd = Etcd::start();
    let server = ApiServer::start_with(&[
        "--storage",
        "etcd",
        "--etcd-servers",
        etcd.url.as_str(),
        "--etcd-compaction-interval",
        "1s",
        "--watch-history",
        "5",
    ]);
    let rv: u64 = k_ok(
        &server,
        &[
            "create",
            "configmap",
            "first",
            "-o",
            "jsonpath={.metadata.resourceVersion}",
        ],
    )
    .parse()
    .expect("resourceVersion");
    for i in 0..10 {
        k_ok(&server, &["create", "configmap", &format!("c{i}")]);
    }
    let api: Api<ConfigMap> = Api::namespaced(client(&server).await, "default");
    let from = (rv - 1).to_string();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        // Until etcd is compacted, etcd replays the old events (first is ADDED).
        let answer = match api.watch(&WatchParams::default().timeout(10), &from).await {
            Err(kube::Error::Api(status)) => Some(status.code),
            Err(e) => panic!("watch failed: {e}"),
            Ok(stream) => {
                let mut stream = stream.boxed();
                match tokio::time::timeout(Duration::from_secs(5), stream.next()).await {
                    Ok(Some(Ok(WatchEvent::Error(status)))) => Some(status.code),
                    Ok(Some(Ok(WatchEvent::Added(cm)))) => {
                        assert_eq!(cm.metadata.name.as_deref(), Some("first"));
                        None
                    }
                    other => panic!("unexpected watch answer: {other:?}"),
                }
            }
        };
        if let Some(code) = answer {
            assert_eq!(code, 410);
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "etcd was not compacted within 30 s: {}",
            server.log_text()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // A watch from now still works.
    let now = api
        .list(&ListParams::default())
        .await
        .expect("list")
        .metadata
        .resource_version
        .expect("rv");
    let mut stream = api
        .watch(&WatchParams::default().timeout(10), &now)
        .await
        .expect("watch from now")
        .boxed();
    k_ok(&server, &["create", "configmap", "late"]);
    match tokio::time::timeout(Duration::from_secs(10), stream.next()).await {
        Ok(Some(Ok(WatchEvent::Added(cm)))) => {
            assert_eq!(cm.metadata.name.as_deref(), Some("late"))
        }
        other => panic!("unexpected watch answer: {other:?}"),
    }
    drop(etcd);
}
