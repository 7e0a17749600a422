//! The etcd store against a real etcd (Debian's `etcd-server`, installed by
//! `scripts/install-etcd` when missing): each test starts its own etcd on free
//! loopback ports with a temporary data directory and kills it by PID.

use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use futures::StreamExt;
use serde_json::json;

use super::{Config, EtcdStore};
use crate::storage::conformance;
use crate::storage::{Error, EventKind, Precondition, Storage};

/// An etcd server of this test's own.
struct TestEtcd {
    child: Child,
    url: String,
    _dir: tempfile::TempDir,
}

impl Drop for TestEtcd {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("free port")
        .port()
}

impl TestEtcd {
    fn start() -> TestEtcd {
        TestEtcd::start_with("http", &[])
    }

    /// Starts etcd serving clients over `scheme`, with extra flags.
    fn start_with(scheme: &str, extra: &[String]) -> TestEtcd {
        let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../scripts/install-etcd");
        let status = Command::new(script).status().expect("run install-etcd");
        assert!(status.success(), "installing etcd failed");
        let mut last_error = String::new();
        for _ in 0..5 {
            let dir = tempfile::tempdir().expect("temp dir");
            let (client, peer) = (free_port(), free_port());
            let url = format!("{scheme}://127.0.0.1:{client}");
            let peer_url = format!("http://127.0.0.1:{peer}");
            let log = std::fs::File::create(dir.path().join("etcd.log")).expect("log");
            let mut child = Command::new("etcd")
                .arg("--name=test")
                .arg(format!("--data-dir={}", dir.path().join("data").display()))
                .arg(format!("--listen-client-urls={url}"))
                .arg(format!("--advertise-client-urls={url}"))
                .arg(format!("--listen-peer-urls={peer_url}"))
                .arg(format!("--initial-advertise-peer-urls={peer_url}"))
                .arg(format!("--initial-cluster=test={peer_url}"))
                .args(extra)
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(log)
                .spawn()
                .expect("start etcd");
            let deadline = Instant::now() + Duration::from_secs(20);
            let ready = loop {
                if let Ok(Some(_)) = child.try_wait() {
                    break false;
                }
                let log = std::fs::read_to_string(dir.path().join("etcd.log")).unwrap_or_default();
                // "serving insecure client requests on …" or, with TLS, "serving
                // client requests on …".
                if log.contains("client requests on") {
                    break true;
                }
                if Instant::now() > deadline {
                    let _ = child.kill();
                    let _ = child.wait();
                    break false;
                }
                std::thread::sleep(Duration::from_millis(50));
            };
            if ready {
                return TestEtcd {
                    child,
                    url,
                    _dir: dir,
                };
            }
            last_error = std::fs::read_to_string(dir.path().join("etcd.log")).unwrap_or_default();
        }
        panic!("etcd did not start: {last_error}");
    }

    fn config(&self) -> Config {
        Config {
            endpoints: vec![self.url.clone()],
            connect_timeout: Duration::from_secs(20),
            ..Config::default()
        }
    }
}

fn obj(name: &str, v: i64) -> serde_json::Value {
    json!({"metadata": {"name": name}, "v": v})
}

async fn next_event(
    w: &mut futures::stream::BoxStream<'static, crate::storage::Result<crate::storage::Event>>,
) -> crate::storage::Event {
    tokio::time::timeout(Duration::from_secs(10), w.next())
        .await
        .expect("event in time")
        .expect("stream open")
        .expect("event")
}

#[tokio::test]
async fn conformance_suite() {
    let etcd = TestEtcd::start();
    let store = EtcdStore::open(etcd.config()).await.expect("open");
    conformance::run_all(&store).await;
    conformance::parsed_forms(&store).await;
    // Kept under the prefix without a resourceVersion; read back with the key's
    // mod revision as its resourceVersion.
    let kv = store.snapshot().get("/t/a").cloned().expect("a");
    assert_eq!(
        kv.value()["metadata"]["resourceVersion"],
        kv.mod_revision.to_string()
    );
    let raw = store
        .client
        .kv_client()
        .get("/registry/t/a", None)
        .await
        .expect("raw get");
    let raw = raw.kvs().first().expect("stored under the prefix");
    assert_eq!(raw.mod_revision() as u64, kv.mod_revision);
    let stored: serde_json::Value = serde_json::from_slice(raw.value()).expect("json");
    assert!(
        stored["metadata"].get("resourceVersion").is_none(),
        "{stored}"
    );
    assert_eq!(stored["v"], 2);
}

#[tokio::test]
async fn replicas_share_one_etcd() {
    let etcd = TestEtcd::start();
    let a = EtcdStore::open(etcd.config()).await.expect("open a");
    let b = EtcdStore::open(etcd.config()).await.expect("open b");

    // A watch on B sees a write through A, at the same revision.
    let mut watch_b = b.watch("/w/".into(), b.current_revision()).expect("watch");
    let written = a.create("/w/x".into(), obj("x", 1)).await.expect("create");
    let seen = next_event(&mut watch_b).await;
    assert_eq!(seen.kind, EventKind::Added);
    assert_eq!(seen.revision, written.mod_revision);
    assert_eq!(seen.object()["v"], 1);

    // A consistent read on B follows A's acknowledged write.
    let updated = a
        .update(
            "/w/x".into(),
            obj("x", 2),
            Precondition {
                revision: Some(written.mod_revision),
            },
        )
        .await
        .expect("update");
    b.sync().await.expect("sync");
    let on_b = b.snapshot().get("/w/x").cloned().expect("on b");
    assert_eq!(on_b.mod_revision, updated.mod_revision);
    assert_eq!(on_b.value()["v"], 2);

    // etcd refuses a write from a stale view on the other replica.
    assert!(matches!(
        b.update(
            "/w/x".into(),
            obj("x", 3),
            Precondition {
                revision: Some(written.mod_revision),
            },
        )
        .await,
        Err(Error::Conflict { actual, .. }) if actual == updated.mod_revision
    ));
    let deleted = b
        .delete(
            "/w/x".into(),
            Precondition {
                revision: Some(updated.mod_revision),
            },
        )
        .await
        .expect("delete");
    assert_eq!(deleted.value()["v"], 2);
    a.sync().await.expect("sync a");
    assert!(a.snapshot().get("/w/x").is_none());

    // A past state for a continue token issued by the other replica comes from etcd,
    // only the keys after the token's, as they were then.
    for name in ["p1", "p2", "p3"] {
        a.create(format!("/w/{name}"), obj(name, 1))
            .await
            .expect("create");
    }
    let at = a.current_revision();
    a.update("/w/p3".into(), obj("p3", 9), Precondition::default())
        .await
        .expect("update");
    a.create("/w/p4".into(), obj("p4", 1))
        .await
        .expect("create");
    b.sync().await.expect("sync b");
    assert!(b.snapshot_at(at).is_none());
    let page = b
        .past("/w/".into(), Some("/w/p1".into()), at)
        .await
        .expect("past")
        .expect("not compacted");
    let keys: Vec<String> = page
        .range("/w/", None)
        .map(|kv| kv.key.to_string())
        .collect();
    assert_eq!(keys, ["/w/p2", "/w/p3"]);
    assert_eq!(page.get("/w/p3").expect("p3").value()["v"], 1);
    for name in ["p1", "p2", "p3", "p4"] {
        a.delete(format!("/w/{name}"), Precondition::default())
            .await
            .expect("delete");
    }

    // A replica started later loads everything at the same revision.
    a.create("/w/y".into(), obj("y", 1))
        .await
        .expect("create y");
    let last = a.current_revision();
    drop(a);
    let c = EtcdStore::open(etcd.config()).await.expect("open c");
    assert!(c.current_revision() >= last);
    assert_eq!(c.snapshot().count("/w/"), 1);
    assert_eq!(
        c.snapshot().get("/w/y").expect("y").value()["metadata"]["resourceVersion"],
        last.to_string()
    );
}

#[tokio::test]
async fn sync_follows_writes_outside_the_prefix() {
    let etcd = TestEtcd::start();
    let a = EtcdStore::open(Config {
        prefix: "/one".into(),
        ..etcd.config()
    })
    .await
    .expect("open a");
    let b = EtcdStore::open(Config {
        prefix: "/two/".into(),
        ..etcd.config()
    })
    .await
    .expect("open b");
    for i in 0..3 {
        a.create(format!("/k/{i}"), obj("k", i))
            .await
            .expect("create");
    }
    // B's keyspace did not change, but etcd's revision did: B catches up through a
    // progress notification and still sees none of A's keys.
    b.sync().await.expect("sync");
    assert!(b.current_revision() >= a.current_revision());
    assert_eq!(b.snapshot().count("/"), 0);
    b.create("/k/0".into(), obj("other", 1))
        .await
        .expect("same key, other prefix");
    assert_eq!(a.snapshot().get("/k/0").expect("a's").value()["v"], 0);
}

#[tokio::test]
async fn old_watches_come_from_etcd_until_compacted() {
    let etcd = TestEtcd::start();
    let store = EtcdStore::open(Config {
        history: crate::storage::cache::HistoryLimit {
            events: 5,
            bytes: usize::MAX,
        },
        ..etcd.config()
    })
    .await
    .expect("open");
    let base = store.current_revision();
    for i in 0..20 {
        store
            .create(format!("/k/{i:02}"), obj("k", i))
            .await
            .expect("create");
    }
    // Older than the kept window: etcd replays it, previous values included.
    store
        .update("/k/00".into(), obj("k", 100), Precondition::default())
        .await
        .expect("update");
    let mut old = store.watch("/k/".into(), base).expect("watch");
    let first = next_event(&mut old).await;
    assert_eq!((first.kind, first.revision), (EventKind::Added, base + 1));
    assert_eq!(&*first.key, "/k/00");
    for _ in 1..20 {
        next_event(&mut old).await;
    }
    let modified = next_event(&mut old).await;
    assert_eq!(modified.kind, EventKind::Modified);
    assert_eq!(modified.prev_object().expect("prev")["v"], 0);
    // A watch that reports progress (the API's) resumes from etcd too.
    let mut old = store.watch_progress("/k/".into(), base).expect("watch");
    let first = next_event(&mut old).await;
    assert_eq!((first.kind, first.revision), (EventKind::Added, base + 1));

    // Once etcd has compacted it, the watch fails as compacted (410 Gone).
    let current = store.current_revision();
    store.compact(current).await.expect("compact");
    let mut gone = store.watch("/k/".into(), base).expect("watch");
    let answer = tokio::time::timeout(Duration::from_secs(10), gone.next())
        .await
        .expect("in time")
        .expect("an item");
    assert!(
        matches!(answer, Err(Error::Compacted { oldest, .. }) if oldest >= current),
        "{answer:?}"
    );
    // Past states are gone too.
    assert!(
        store
            .past("/k/".into(), None, base + 1)
            .await
            .expect("past")
            .is_none()
    );
    // A watch from now is served.
    let mut now = store.watch("/k/".into(), current).expect("watch now");
    store
        .delete("/k/01".into(), Precondition::default())
        .await
        .expect("delete");
    let deleted = next_event(&mut now).await;
    assert_eq!(deleted.kind, EventKind::Deleted);
    assert_eq!(deleted.object()["v"], 1);
}

#[tokio::test]
async fn tls_with_client_certificates() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let pki_dir = tempfile::tempdir().expect("temp dir");
    // A CA, a serving certificate for 127.0.0.1 and a client certificate.
    crate::server::pki::ensure(pki_dir.path(), "127.0.0.1", &[]).expect("pki");
    let file = |name: &str| pki_dir.path().join(name);
    let etcd = TestEtcd::start_with(
        "https",
        &[
            format!("--cert-file={}", file("apiserver.crt").display()),
            format!("--key-file={}", file("apiserver.key").display()),
            format!("--trusted-ca-file={}", file("ca.crt").display()),
            "--client-cert-auth".to_string(),
        ],
    );
    let read = |name: &str| std::fs::read_to_string(file(name)).expect("pem");
    let tls = |cert: bool| super::Tls {
        ca_pem: Some(read("ca.crt")),
        cert_pem: cert.then(|| read("admin.crt")),
        key_pem: cert.then(|| read("admin.key")),
    };
    let store = EtcdStore::open(Config {
        tls: Some(tls(true)),
        ..etcd.config()
    })
    .await
    .expect("open over TLS");
    let kv = store
        .create("/t/tls".into(), obj("tls", 1))
        .await
        .expect("create over TLS");
    store.sync().await.expect("sync over TLS");
    assert_eq!(
        store.snapshot().get("/t/tls").expect("stored").mod_revision,
        kv.mod_revision
    );
    // Without a client certificate etcd refuses the connection.
    let refused = EtcdStore::open(Config {
        tls: Some(tls(false)),
        connect_timeout: Duration::from_secs(1),
        ..etcd.config()
    })
    .await;
    assert!(matches!(refused, Err(Error::Unavailable(_))));
}
