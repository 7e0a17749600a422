//! One reflector cache per kind for every controller of a process.
//!
//! Each controller used to start its own watch and keep its own cache of
//! the kinds it reads: in a controller manager running the whole pipeline,
//! every Work was held six times (binding and binding status for both
//! binding kinds, execution, work status), every binding seven times and
//! every Cluster nine times. [`SharedCaches`] keeps one watch and one cache
//! per (kind, URL) and fans the changed objects out to each subscriber,
//! which filters them with its own predicate ([`SharedCaches::subscribe`]).
//!
//! Objects are shared as `Arc`s: the cache, the subscribers' streams and the
//! reconcilers all point at the same copy. What no controller reads is
//! dropped before an object enters the cache ([`strip`]).

use std::any::{Any, TypeId};
use std::collections::HashMap;
use std::fmt::Debug;
use std::sync::{Arc, Mutex};

use futures::StreamExt;
use kube::runtime::reflector::{self, ObjectRef, Store};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Api, Resource, ResourceExt};
use serde::de::DeserializeOwned;
use tokio::sync::mpsc;

type Entries = Arc<Mutex<HashMap<(TypeId, String), Arc<dyn Any + Send + Sync>>>>;

/// The process-wide caches (one per [`crate::Context`]); cheap to clone.
#[derive(Clone, Default)]
pub struct SharedCaches {
    entries: Entries,
}

/// An object that changed, as sent to each subscriber.
pub struct Change<K> {
    /// The object (the cached copy; the last one seen if deleted).
    pub object: Arc<K>,
    /// Whether it was deleted.
    pub deleted: bool,
}

impl<K> Clone for Change<K> {
    fn clone(&self) -> Self {
        Change {
            object: self.object.clone(),
            deleted: self.deleted,
        }
    }
}

/// One watch, its cache and the subscribers it feeds.
struct Entry<K: Resource<DynamicType = ()> + Clone + 'static> {
    store: Store<K>,
    subscribers: Mutex<Vec<mpsc::UnboundedSender<Change<K>>>>,
}

impl<K: Resource<DynamicType = ()> + Clone + 'static> Entry<K> {
    fn subscribers(&self) -> std::sync::MutexGuard<'_, Vec<mpsc::UnboundedSender<Change<K>>>> {
        self.subscribers.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// Drops what no controller reads from an object before it is cached:
/// `managedFields` (server-side apply bookkeeping, often larger than the
/// object) and the `kubectl.kubernetes.io/last-applied-configuration`
/// annotation (a second copy of the object as last applied by kubectl).
pub fn strip<K: Resource>(obj: &mut K) {
    obj.meta_mut().managed_fields = None;
    if let Some(a) = obj.meta_mut().annotations.as_mut() {
        a.remove(LAST_APPLIED_ANNOTATION);
    }
}

/// kubectl's record of the last applied configuration.
pub const LAST_APPLIED_ANNOTATION: &str = "kubectl.kubernetes.io/last-applied-configuration";

impl SharedCaches {
    fn lock(
        &self,
    ) -> std::sync::MutexGuard<'_, HashMap<(TypeId, String), Arc<dyn Any + Send + Sync>>> {
        self.entries.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The cache of everything `api` lists, shared with every other
    /// subscriber of the same kind and URL, and a channel of the objects
    /// that change from now on (deleted ones included). The channel starts
    /// with every object already cached, so a late subscriber misses
    /// nothing. The watch starts with the first subscriber and stops when
    /// the last one is gone.
    pub fn subscribe<K>(&self, api: Api<K>) -> (Store<K>, mpsc::UnboundedReceiver<Change<K>>)
    where
        K: Resource<DynamicType = ()> + Clone + Debug + DeserializeOwned + Send + Sync + 'static,
    {
        let key = (TypeId::of::<K>(), api.resource_url().to_string());
        let (tx, rx) = mpsc::unbounded_channel();
        let mut entries = self.lock();
        if let Some(entry) = entries
            .get(&key)
            .cloned()
            .and_then(|e| e.downcast::<Entry<K>>().ok())
        {
            let mut subscribers = entry.subscribers();
            for object in entry.store.state() {
                let _ = tx.send(Change {
                    object,
                    deleted: false,
                });
            }
            subscribers.push(tx);
            return (entry.store.clone(), rx);
        }
        let writer = reflector::store::Writer::<K>::default();
        let store = writer.as_reader();
        let entry = Arc::new(Entry {
            store: store.clone(),
            subscribers: Mutex::new(vec![tx]),
        });
        entries.insert(key.clone(), entry.clone());
        drop(entries);
        let stream = reflector::reflector(
            writer,
            watcher(api, watcher::Config::default()).modify(strip),
        )
        .default_backoff();
        let registry = self.clone();
        tokio::spawn(async move {
            let mut stream = std::pin::pin!(stream);
            // what the cache held when a (re)list began
            let mut before_list: Vec<Arc<K>> = Vec::new();
            while let Some(event) = stream.next().await {
                let changes = match event {
                    // the reflector has just put this very object in the store
                    Ok(watcher::Event::Apply(o)) => vec![Change {
                        object: entry
                            .store
                            .get(&ObjectRef::from_obj(&o))
                            .unwrap_or_else(|| Arc::new(o)),
                        deleted: false,
                    }],
                    Ok(watcher::Event::Delete(o)) => vec![Change {
                        object: Arc::new(o),
                        deleted: true,
                    }],
                    // A (re)list: the store takes the listed objects only at
                    // its end, so they are sent then, when a reconciler
                    // looking one up finds it (sent earlier, one created while
                    // the watch was down was looked up, not found, and never
                    // reconciled). Whatever the list no longer has was deleted.
                    Ok(watcher::Event::Init) => {
                        before_list = entry.store.state();
                        continue;
                    }
                    Ok(watcher::Event::InitApply(_)) => continue,
                    Ok(watcher::Event::InitDone) => {
                        relisted(std::mem::take(&mut before_list), entry.store.state())
                    }
                    Err(e) => {
                        tracing::warn!(url = %key.1, error = %e, "shared watch failed, retrying");
                        continue;
                    }
                };
                let mut subscribers = entry.subscribers();
                subscribers.retain(|s| changes.iter().all(|c| s.send(c.clone()).is_ok()));
                if subscribers.is_empty() {
                    drop(subscribers);
                    // lock order: the registry, then the entry
                    let mut entries = registry.lock();
                    if entry.subscribers().is_empty() {
                        let ours = entries.get(&key).is_some_and(|e| {
                            std::ptr::eq(
                                Arc::as_ptr(e) as *const (),
                                Arc::as_ptr(&entry) as *const (),
                            )
                        });
                        if ours {
                            entries.remove(&key);
                        }
                        return;
                    }
                }
            }
        });
        (store, rx)
    }
}

/// The changes a (re)list makes: every object now cached (each subscriber's
/// filter passes those it has seen unchanged), and the deletion of those
/// cached `before` that the list no longer has.
fn relisted<K>(before: Vec<Arc<K>>, now: Vec<Arc<K>>) -> Vec<Change<K>>
where
    K: Resource<DynamicType = ()> + Clone,
{
    let listed: std::collections::HashSet<ObjectRef<K>> =
        now.iter().map(|o| ObjectRef::from_obj(&**o)).collect();
    let gone: Vec<Change<K>> = before
        .into_iter()
        .filter(|o| !listed.contains(&ObjectRef::from_obj(&**o)))
        .map(|object| Change {
            object,
            deleted: true,
        })
        .collect();
    now.into_iter()
        .map(|object| Change {
            object,
            deleted: false,
        })
        .chain(gone)
        .collect()
}

/// The objects of a subscription that changed by `predicate` (see
/// [`crate::propagation::every_change`], [`crate::propagation::spec_hash`]):
/// like kube-runtime's `predicate_filter`, an object passes when the hash
/// differs from the last one this subscriber saw of it (or is `None`).
/// Deleted objects always pass, so that whoever owns them can put them back.
pub fn filtered<K>(
    rx: mpsc::UnboundedReceiver<Change<K>>,
    predicate: fn(&K) -> Option<u64>,
) -> impl futures::Stream<Item = Arc<K>> + Send + 'static
where
    K: Resource<DynamicType = ()> + Clone + Send + Sync + 'static,
{
    let mut seen: HashMap<ObjectRef<K>, (Option<String>, u64)> = HashMap::new();
    tokio_stream::wrappers::UnboundedReceiverStream::new(rx).filter_map(move |change| {
        let obj = change.object;
        let key = ObjectRef::from_obj(&*obj);
        let pass = if change.deleted {
            seen.remove(&key);
            true
        } else {
            match predicate(&obj) {
                None => true,
                Some(h) => {
                    let uid = obj.uid();
                    match seen.insert(key, (uid.clone(), h)) {
                        Some((old_uid, old)) => old != h || old_uid != uid,
                        None => true,
                    }
                }
            }
        };
        std::future::ready(pass.then_some(obj))
    })
}

#[cfg(test)]
mod tests {
    use futures::StreamExt;
    use k8s_openapi::api::core::v1::ConfigMap;
    use kube::api::ObjectMeta;

    use super::*;

    fn cm(name: &str, data: &str, rv: &str) -> Arc<ConfigMap> {
        Arc::new(ConfigMap {
            metadata: ObjectMeta {
                name: Some(name.into()),
                namespace: Some("ns".into()),
                uid: Some(format!("uid-{name}")),
                resource_version: Some(rv.into()),
                ..Default::default()
            },
            data: Some([("k".to_string(), data.to_string())].into()),
            ..Default::default()
        })
    }

    fn data_hash(c: &ConfigMap) -> Option<u64> {
        use std::hash::{Hash, Hasher};
        let mut h = std::collections::hash_map::DefaultHasher::new();
        c.data.hash(&mut h);
        Some(h.finish())
    }

    #[tokio::test]
    async fn each_subscriber_sees_what_its_predicate_calls_a_change() {
        let (tx, rx) = mpsc::unbounded_channel();
        let mut changes = std::pin::pin!(filtered(rx, data_hash));
        let send = |object: Arc<ConfigMap>, deleted: bool| {
            tx.send(Change { object, deleted }).unwrap();
        };
        send(cm("a", "1", "1"), false); // new: passes
        send(cm("a", "1", "2"), false); // same data, new resourceVersion: filtered
        send(cm("a", "2", "3"), false); // changed: passes
        send(cm("b", "1", "4"), false); // another object: passes
        send(cm("a", "2", "5"), true); // deleted: passes though unchanged
        send(cm("a", "2", "6"), false); // created again: passes
        drop(tx);
        let mut seen = Vec::new();
        while let Some(c) = changes.next().await {
            seen.push(c.metadata.resource_version.clone().unwrap());
        }
        assert_eq!(seen, vec!["1", "3", "4", "5", "6"]);
    }

    /// A relist sends everything cached after it (the filter drops what a
    /// subscriber saw unchanged) and the deletion of what it no longer has.
    #[test]
    fn a_relist_sends_the_listed_objects_and_the_vanished_ones() {
        let before = vec![cm("a", "1", "1"), cm("b", "1", "2")];
        let now = vec![cm("b", "2", "5"), cm("c", "1", "6")];
        let changes: Vec<(String, String, bool)> = relisted(before, now)
            .into_iter()
            .map(|c| {
                (
                    c.object.name_any(),
                    c.object.metadata.resource_version.clone().unwrap(),
                    c.deleted,
                )
            })
            .collect();
        let expected = [("b", "5", false), ("c", "6", false), ("a", "1", true)];
        assert_eq!(
            changes,
            expected.map(|(n, rv, d)| (n.to_string(), rv.to_string(), d))
        );
    }
}
