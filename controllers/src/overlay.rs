//! A controller's own writes laid over its lagging reflector cache.
//!
//! A controller reconciles from its cache, and the cache sees the
//! controller's own last write only when the watch event arrives. Under load
//! that takes long enough for the next reconcile of the same object to start
//! from the old copy: it would write again what it already wrote, create an
//! object that exists (409), or send a stale `resourceVersion` (409) and
//! retry, each a wasted request to the API server. [`Overlay`] keeps the
//! object each successful write returned until the cache has caught up, and
//! [`Overlay::newest`] hands the reconcile whichever copy is newer.
//!
//! Newer means a higher `resourceVersion`. Kubernetes asks clients to treat
//! resourceVersions as opaque; flotilla's API server (like kube-apiserver on
//! etcd) issues increasing integers, so the comparison is made only when both
//! parse as integers, and the cache is trusted otherwise. An entry that the
//! cache has not confirmed within [`Overlay::MAX_AGE`] (the object was
//! deleted meanwhile, say) is dropped.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use kube::{Resource, ResourceExt};

/// The objects a controller wrote, by `namespace/name`, until its cache has them.
pub struct Overlay<K> {
    written: Mutex<HashMap<String, (Instant, Arc<K>)>>,
}

impl<K> Default for Overlay<K> {
    fn default() -> Self {
        Overlay {
            written: Mutex::new(HashMap::new()),
        }
    }
}

fn key(namespace: Option<&str>, name: &str) -> String {
    format!("{}/{name}", namespace.unwrap_or_default())
}

fn revision<K: Resource>(obj: &K) -> Option<u64> {
    obj.meta().resource_version.as_deref()?.parse().ok()
}

impl<K: Resource + Clone> Overlay<K> {
    /// How long a write waits for the cache to confirm it.
    pub const MAX_AGE: Duration = Duration::from_secs(30);

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, (Instant, Arc<K>)>> {
        self.written.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Remembers what a write returned.
    pub fn record(&self, written: K) {
        let k = key(written.meta().namespace.as_deref(), &written.name_any());
        self.lock().insert(k, (Instant::now(), Arc::new(written)));
    }

    /// Forgets the object (deleted, or found gone).
    pub fn forget(&self, namespace: Option<&str>, name: &str) {
        self.lock().remove(&key(namespace, name));
    }

    /// The newer of the cached copy and the last write of the object named
    /// `namespace/name`; None when neither exists.
    pub fn newest(
        &self,
        namespace: Option<&str>,
        name: &str,
        cached: Option<Arc<K>>,
    ) -> Option<Arc<K>> {
        let k = key(namespace, name);
        let mut written = self.lock();
        let Some((at, mine)) = written.get(&k) else {
            return cached;
        };
        let mine_newer = match &cached {
            None => true,
            Some(c) => match (revision(&**mine), revision(&**c)) {
                (Some(m), Some(c)) => m > c,
                _ => false,
            },
        };
        if mine_newer && at.elapsed() < Self::MAX_AGE {
            return Some(mine.clone());
        }
        written.remove(&k);
        cached
    }

    /// [`Overlay::newest`] for an object the cache handed to a reconcile.
    pub fn newest_of(&self, cached: Arc<K>) -> Arc<K> {
        let namespace = cached.meta().namespace.clone();
        let name = cached.name_any();
        self.newest(namespace.as_deref(), &name, Some(cached.clone()))
            .unwrap_or(cached)
    }

    /// Objects written and not yet in the cache, for lookups by label.
    pub fn pending(&self) -> Vec<Arc<K>> {
        self.lock()
            .values()
            .filter(|(at, _)| at.elapsed() < Self::MAX_AGE)
            .map(|(_, k)| k.clone())
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use k8s_openapi::api::core::v1::ConfigMap;
    use kube::api::ObjectMeta;

    use super::*;

    fn cm(rv: &str, data: &str) -> ConfigMap {
        ConfigMap {
            metadata: ObjectMeta {
                name: Some("c".into()),
                namespace: Some("ns".into()),
                resource_version: Some(rv.into()),
                ..Default::default()
            },
            data: Some([("k".to_string(), data.to_string())].into()),
            ..Default::default()
        }
    }

    #[test]
    fn the_newer_copy_wins_and_the_cache_takes_over() {
        let o = Overlay::default();
        assert!(o.newest(Some("ns"), "c", None).is_none());
        o.record(cm("7", "mine"));
        // the cache has not seen the write: ours
        let stale = Arc::new(cm("5", "old"));
        assert_eq!(
            o.newest_of(stale.clone())
                .metadata
                .resource_version
                .as_deref(),
            Some("7")
        );
        // not in the cache at all (just created): ours
        assert!(o.newest(Some("ns"), "c", None).is_some());
        assert_eq!(o.pending().len(), 1);
        // the cache caught up (or someone wrote after us): the cache, and the entry goes
        let fresh = Arc::new(cm("9", "theirs"));
        assert_eq!(
            o.newest_of(fresh).metadata.resource_version.as_deref(),
            Some("9")
        );
        assert_eq!(
            o.newest_of(stale).metadata.resource_version.as_deref(),
            Some("5")
        );
        assert!(o.pending().is_empty());
    }

    #[test]
    fn opaque_versions_trust_the_cache_and_forget_drops() {
        let o = Overlay::default();
        o.record(cm("abc", "mine"));
        let cached = Arc::new(cm("5", "cache"));
        assert_eq!(
            o.newest_of(cached).metadata.resource_version.as_deref(),
            Some("5")
        );
        o.record(cm("8", "mine"));
        o.forget(Some("ns"), "c");
        assert!(o.newest(Some("ns"), "c", None).is_none());
    }
}
