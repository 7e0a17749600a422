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
//!
//! An entry also goes once the cache has caught up, whether or not the object
//! is reconciled again: a controller whose predicate ignores the status never
//! looks again at an object whose status it wrote. Every write sweeps such
//! entries (at most once per [`Overlay::SWEEP_EVERY`]); without that, a
//! binding status controller kept a second copy of every binding (about
//! 6 MiB of 1,000 at 100 members, heaptrack).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use kube::runtime::reflector::{ObjectRef, Store};
use kube::{Resource, ResourceExt};

/// The objects a controller wrote, by namespace and name, until its cache has them.
pub struct Overlay<K: Resource<DynamicType = ()> + Clone + 'static> {
    cache: Store<K>,
    written: Mutex<Written<K>>,
}

struct Written<K: Resource<DynamicType = ()> + 'static> {
    by_name: HashMap<ObjectRef<K>, (Instant, Arc<K>)>,
    swept: Instant,
}

fn object_ref<K: Resource<DynamicType = ()>>(namespace: Option<&str>, name: &str) -> ObjectRef<K> {
    let r = ObjectRef::new(name);
    match namespace {
        Some(ns) => r.within(ns),
        None => r,
    }
}

fn revision<K: Resource>(obj: &K) -> Option<u64> {
    obj.meta().resource_version.as_deref()?.parse().ok()
}

/// Whether the written copy is still newer than the cached one (None: not
/// cached yet). Only integers compare; otherwise the cache is trusted.
fn mine_is_newer<K: Resource>(mine: &K, cached: Option<&K>) -> bool {
    match cached {
        None => true,
        Some(c) => match (revision(mine), revision(c)) {
            (Some(m), Some(c)) => m > c,
            _ => false,
        },
    }
}

impl<K: Resource<DynamicType = ()> + Clone + 'static> Overlay<K> {
    /// How long a write waits for the cache to confirm it.
    pub const MAX_AGE: Duration = Duration::from_secs(30);
    /// How often a write sweeps out the entries the cache has caught up with.
    pub const SWEEP_EVERY: Duration = Duration::from_secs(1);

    /// An overlay over `cache`, the reflector cache the controller reads.
    pub fn new(cache: Store<K>) -> Self {
        Overlay {
            cache,
            written: Mutex::new(Written {
                by_name: HashMap::new(),
                swept: Instant::now(),
            }),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Written<K>> {
        self.written.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Remembers what a write returned.
    pub fn record(&self, written: K) {
        let k = object_ref(written.meta().namespace.as_deref(), &written.name_any());
        let mut w = self.lock();
        w.by_name.insert(k, (Instant::now(), Arc::new(written)));
        if w.swept.elapsed() >= Self::SWEEP_EVERY {
            w.swept = Instant::now();
            let cache = &self.cache;
            w.by_name.retain(|k, (at, mine)| {
                at.elapsed() < Self::MAX_AGE && mine_is_newer(&**mine, cache.get(k).as_deref())
            });
        }
    }

    /// Forgets the object (deleted, or found gone).
    pub fn forget(&self, namespace: Option<&str>, name: &str) {
        self.lock().by_name.remove(&object_ref(namespace, name));
    }

    /// The newer of the cached copy and the last write of the object named
    /// `namespace/name`; None when neither exists.
    pub fn newest(
        &self,
        namespace: Option<&str>,
        name: &str,
        cached: Option<Arc<K>>,
    ) -> Option<Arc<K>> {
        let k = object_ref(namespace, name);
        let mut written = self.lock();
        let Some((at, mine)) = written.by_name.get(&k) else {
            return cached;
        };
        if at.elapsed() < Self::MAX_AGE && mine_is_newer(&**mine, cached.as_deref()) {
            return Some(mine.clone());
        }
        written.by_name.remove(&k);
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
            .by_name
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
    use kube::runtime::reflector::store::Writer;
    use kube::runtime::watcher;

    use super::*;

    fn named(name: &str, rv: &str, data: &str) -> ConfigMap {
        ConfigMap {
            metadata: ObjectMeta {
                name: Some(name.into()),
                namespace: Some("ns".into()),
                resource_version: Some(rv.into()),
                ..Default::default()
            },
            data: Some([("k".to_string(), data.to_string())].into()),
            ..Default::default()
        }
    }

    fn cm(rv: &str, data: &str) -> ConfigMap {
        named("c", rv, data)
    }

    fn overlay() -> (Writer<ConfigMap>, Overlay<ConfigMap>) {
        let writer = Writer::default();
        let overlay = Overlay::new(writer.as_reader());
        (writer, overlay)
    }

    #[test]
    fn the_newer_copy_wins_and_the_cache_takes_over() {
        let (_cache, o) = overlay();
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
        let (_cache, o) = overlay();
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

    #[test]
    fn a_write_sweeps_out_what_the_cache_has_caught_up_with() {
        let (mut cache, o) = overlay();
        o.record(named("caught-up", "7", "mine"));
        o.record(named("behind", "8", "mine"));
        cache.apply_watcher_event(&watcher::Event::Apply(named("caught-up", "7", "mine")));
        cache.apply_watcher_event(&watcher::Event::Apply(named("behind", "5", "old")));
        // not swept yet: the last sweep was less than SWEEP_EVERY ago
        o.record(named("new", "9", "mine"));
        assert_eq!(o.pending().len(), 3);
        o.lock().swept = Instant::now()
            .checked_sub(Overlay::<ConfigMap>::SWEEP_EVERY)
            .expect("an instant a second ago");
        o.record(named("newer", "10", "mine"));
        let mut left: Vec<_> = o.pending().iter().map(|c| c.name_any()).collect();
        left.sort();
        assert_eq!(left, ["behind", "new", "newer"]);
    }
}
