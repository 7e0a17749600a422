//! The storage conformance suite, run against every backend.

use std::time::Duration;

use futures::StreamExt;
use serde_json::json;

use super::{Error, EventKind, Precondition, Storage};

fn obj(name: &str, v: i64) -> serde_json::Value {
    json!({"metadata": {"name": name}, "v": v})
}

/// The cache keeps most objects as JSON alone and the listed kinds parsed too;
/// both read back as what was written, in reads and in watch events.
pub async fn parsed_forms(s: &dyn Storage) {
    let from = s.current_revision();
    let deployment = "/apps/deployments/default/web".to_string();
    let role = "/rbac.authorization.k8s.io/clusterroles/view".to_string();
    let written = s
        .create(deployment.clone(), obj("web", 1))
        .await
        .expect("create");
    assert!(
        written.parsed().is_some(),
        "a write's result is at hand parsed"
    );
    s.create(role.clone(), obj("view", 2))
        .await
        .expect("create");
    let snapshot = s.snapshot();
    let web = snapshot.get(&deployment).expect("web");
    assert!(web.parsed().is_none(), "a Deployment is kept as JSON only");
    assert_eq!(web.value()["v"], 1);
    assert_eq!(
        web.value()["metadata"]["resourceVersion"],
        web.mod_revision.to_string()
    );
    assert_eq!(
        serde_json::from_slice::<serde_json::Value>(&web.json.bytes()).expect("json"),
        *written.value()
    );
    let view = snapshot.get(&role).expect("view");
    assert!(view.parsed().is_some(), "a ClusterRole is kept parsed");
    assert_eq!(view.kept()["v"], 2);

    s.update(deployment.clone(), obj("web", 3), Precondition::default())
        .await
        .expect("update");
    let events: Vec<_> = s
        .watch("/".into(), from)
        .expect("watch")
        .take(3)
        .map(|e| e.expect("event"))
        .collect()
        .await;
    assert!(events[0].parsed().is_none());
    assert!(events[1].parsed().is_some());
    assert_eq!(events[2].object()["v"], 3);
    assert_eq!(events[2].prev_object().expect("prev")["v"], 1);
    s.delete(deployment, Precondition::default())
        .await
        .expect("delete");
    s.delete(role, Precondition::default())
        .await
        .expect("delete");
}

/// Runs every check against a fresh, empty store.
pub async fn run_all(s: &dyn Storage) {
    let base = s.current_revision();
    let a = s
        .create("/t/a".into(), obj("a", 1))
        .await
        .expect("create a");
    assert_eq!(a.mod_revision, base + 1);
    assert_eq!(
        a.value()["metadata"]["resourceVersion"],
        (base + 1).to_string()
    );
    assert!(matches!(
        s.create("/t/a".into(), obj("a", 2)).await,
        Err(Error::AlreadyExists { .. })
    ));

    let stale = Precondition {
        revision: Some(a.mod_revision + 100),
    };
    assert!(matches!(
        s.update("/t/a".into(), obj("a", 2), stale).await,
        Err(Error::Conflict { .. })
    ));
    let a2 = s
        .update(
            "/t/a".into(),
            obj("a", 2),
            Precondition {
                revision: Some(a.mod_revision),
            },
        )
        .await
        .expect("update");
    assert!(a2.mod_revision > a.mod_revision);
    assert!(matches!(
        s.update("/t/zz".into(), obj("zz", 1), Precondition::default())
            .await,
        Err(Error::NotFound { .. })
    ));

    s.create("/t/b".into(), obj("b", 1))
        .await
        .expect("create b");
    s.create("/u/c".into(), obj("c", 1))
        .await
        .expect("create c");
    let snap = s.snapshot();
    let names: Vec<String> = snap
        .range("/t/", None)
        .map(|kv| kv.key.to_string())
        .collect();
    assert_eq!(names, vec!["/t/a", "/t/b"]);
    assert_eq!(snap.range("/t/", Some("/t/a")).count(), 1);

    // Watch from the first revision replays history, then follows live events.
    let mut w = s.watch("/t/".into(), base).expect("watch");
    let e1 = w.next().await.expect("event").expect("ok");
    assert_eq!((e1.kind, e1.revision), (EventKind::Added, base + 1));
    let e2 = w.next().await.expect("event").expect("ok");
    assert_eq!(e2.kind, EventKind::Modified);
    assert!(e2.prev.is_some());
    let e3 = w.next().await.expect("event").expect("ok");
    assert_eq!(&*e3.key, "/t/b");
    let deleted = s
        .delete("/t/b".into(), Precondition::default())
        .await
        .expect("delete");
    let e4 = tokio::time::timeout(Duration::from_secs(5), w.next())
        .await
        .expect("in time")
        .expect("event")
        .expect("ok");
    assert_eq!(
        (e4.kind, e4.revision),
        (EventKind::Deleted, deleted.mod_revision)
    );
    assert!(s.snapshot().get("/t/b").is_none());
    assert!(matches!(
        s.delete("/t/b".into(), Precondition::default()).await,
        Err(Error::NotFound { .. })
    ));

    // Old snapshots stay readable while retained.
    let old = s.snapshot();
    s.retain_snapshot(&old);
    s.create("/t/d".into(), obj("d", 1))
        .await
        .expect("create d");
    let again = s.snapshot_at(old.revision).expect("retained");
    assert!(again.get("/t/d").is_none());

    // Concurrent writers all land, with distinct revisions.
    let writes = (0..64).map(|i| s.create(format!("/c/{i:03}"), obj("c", i)));
    let results = futures::future::join_all(writes).await;
    let mut revs: Vec<u64> = results
        .into_iter()
        .map(|r| r.expect("create").mod_revision)
        .collect();
    revs.sort_unstable();
    revs.dedup();
    assert_eq!(revs.len(), 64);
    assert_eq!(s.snapshot().count("/c/"), 64);
}

/// A watch from before the kept window is refused as compacted.
pub async fn compaction(s: &dyn Storage) {
    for i in 0..20 {
        s.create(format!("/k/{i}"), obj("k", i))
            .await
            .expect("create");
    }
    assert!(matches!(
        s.watch("/k/".into(), 1),
        Err(Error::Compacted { .. })
    ));
    assert!(s.watch("/k/".into(), s.current_revision()).is_ok());
}

#[cfg(test)]
mod tests {
    use super::super::kv::{Config, KvStore};
    use super::*;

    #[tokio::test]
    async fn memory_backend() {
        let s = KvStore::open(super::super::memory::Memory, Config::default()).expect("open");
        run_all(&s).await;
        parsed_forms(&s).await;
        let small = KvStore::open(
            super::super::memory::Memory,
            Config::default().history(super::super::cache::HistoryLimit {
                events: 5,
                bytes: usize::MAX,
            }),
        )
        .expect("open");
        compaction(&small).await;
    }

    #[tokio::test]
    async fn redb_backend_and_restart() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("db.redb");
        let last = {
            let s = KvStore::open(
                super::super::redb::Redb::open(&path).expect("redb"),
                Config::default(),
            )
            .expect("open");
            run_all(&s).await;
            s.current_revision()
        };
        let s = KvStore::open(
            super::super::redb::Redb::open(&path).expect("redb"),
            Config::default(),
        )
        .expect("reopen");
        assert_eq!(s.current_revision(), last);
        assert_eq!(s.snapshot().count("/c/"), 64);
        let next = s
            .create("/t/new".into(), obj("n", 1))
            .await
            .expect("create");
        assert_eq!(next.mod_revision, last + 1);
        // A watch resuming exactly at the restart point is served.
        assert!(s.watch("/t/".into(), last).is_ok());
        assert!(matches!(
            s.watch("/t/".into(), last - 1),
            Err(Error::Compacted { .. })
        ));
    }
}
