//! What the multi-cluster service controllers share ([`crate::service_export`],
//! [`crate::endpointslice_collect`], [`crate::service_import`],
//! [`crate::endpointslice_dispatch`], [`crate::multicluster_service`]).
//!
//! Each of them is level-triggered: its watches (on the control plane and,
//! for the collectors, on every member) feed caches and poke one
//! [`Poke`]; [`sync_loop`] then computes the whole desired state from the
//! caches with the pure functions of [`flotilla_api::multicluster`] and makes
//! the stored objects match it with [`converge`]: create what is missing,
//! patch what differs, delete what this controller owns and no longer wants.
//! Ownership is the `endpointslice.karmada.io/managed-by` label; objects of
//! the same name owned by someone else are left alone. A pass that finds
//! everything current writes nothing.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::fmt::Debug;
use std::future::Future;
use std::hash::Hash;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, LazyLock};
use std::time::Duration;

use flotilla_api::multicluster::MANAGED_BY_LABEL;
use futures::StreamExt;
use kube::api::{ApiResource, DeleteParams, DynamicObject, Patch, PatchParams, PostParams};
use kube::runtime::controller::Action;
use kube::runtime::reflector::{self, Store};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Api, Client, Resource, ResourceExt};
use prometheus::IntGaugeVec;
use serde::de::DeserializeOwned;
use serde_json::{Value, json};
use tokio::sync::Notify;

use crate::propagation::{is_conflict, is_not_found, str_at};
use crate::{Result, metrics};

/// How often a controller looks at everything again even without events.
pub const RESYNC: Duration = Duration::from_secs(30);

/// The gauges of the multi-cluster service controllers.
pub struct Families {
    /// `mcs_exported_services{cluster,source}`: Services a member exports
    /// (ServiceExport, or MultiClusterService provider).
    pub exported_services: IntGaugeVec,
    /// `mcs_collected_endpoints{cluster,source}`: endpoints collected from a
    /// member into the control plane.
    pub collected_endpoints: IntGaugeVec,
    /// `mcs_dispatched_endpoints{cluster,controller}`: endpoints dispatched
    /// into an importing member.
    pub dispatched_endpoints: IntGaugeVec,
    /// `mcs_dispatched_endpointslices{cluster,controller}`: EndpointSlices
    /// dispatched into an importing member.
    pub dispatched_slices: IntGaugeVec,
}

/// The families, registered on first use.
pub static FAMILIES: LazyLock<Families> = LazyLock::new(|| Families {
    exported_services: metrics::gauge_vec(
        "mcs_exported_services",
        "Services exported from a member cluster, by how they are exported (ServiceExport or MultiClusterService).",
        &["cluster", "source"],
    ),
    collected_endpoints: metrics::gauge_vec(
        "mcs_collected_endpoints",
        "Endpoints of exported Services collected from a member cluster into the control plane.",
        &["cluster", "source"],
    ),
    dispatched_endpoints: metrics::gauge_vec(
        "mcs_dispatched_endpoints",
        "Endpoints of imported Services dispatched into a member cluster.",
        &["cluster", "controller"],
    ),
    dispatched_slices: metrics::gauge_vec(
        "mcs_dispatched_endpointslices",
        "EndpointSlices of imported Services dispatched into a member cluster.",
        &["cluster", "controller"],
    ),
});

/// Sets `gauge{labels..., last}` for every key of `values`, and zero for the
/// label sets it had before and no longer has.
pub fn set_gauges(
    gauge: &IntGaugeVec,
    previous: &mut HashSet<Vec<String>>,
    values: BTreeMap<Vec<String>, i64>,
) {
    for stale in previous.iter() {
        if !values.contains_key(stale) {
            let l: Vec<&str> = stale.iter().map(String::as_str).collect();
            gauge.with_label_values(&l).set(0);
        }
    }
    previous.clear();
    for (labels, v) in values {
        let l: Vec<&str> = labels.iter().map(String::as_str).collect();
        gauge.with_label_values(&l).set(v);
        previous.insert(labels);
    }
}

/// A watch feeding a cache and poking a [`Notify`] on every change; knows
/// whether its first list is done. Stopped when dropped.
pub struct Watch<K>
where
    K: Resource + Clone + 'static,
    K::DynamicType: Eq + Hash + Clone,
{
    /// The cache.
    pub store: Store<K>,
    ready: Arc<AtomicBool>,
    task: tokio::task::JoinHandle<()>,
}

impl<K> Drop for Watch<K>
where
    K: Resource + Clone + 'static,
    K::DynamicType: Eq + Hash + Clone,
{
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl<K> Watch<K>
where
    K: Resource + Clone + Debug + DeserializeOwned + Send + Sync + 'static,
    K::DynamicType: Eq + Hash + Clone + Default + Send + Sync,
{
    /// Watches `api` (filtered by `config`).
    pub fn start(api: Api<K>, config: watcher::Config, notify: Arc<Poke>) -> Self {
        Self::start_with(api, config, K::DynamicType::default(), notify)
    }
}

impl<K> Watch<K>
where
    K: Resource + Clone + Debug + DeserializeOwned + Send + Sync + 'static,
    K::DynamicType: Eq + Hash + Clone + Send + Sync,
{
    /// Watches `api` (filtered by `config`) of a dynamic kind.
    pub fn start_with(
        api: Api<K>,
        config: watcher::Config,
        dyntype: K::DynamicType,
        notify: Arc<Poke>,
    ) -> Self {
        let writer = reflector::store::Writer::new(dyntype);
        let store = writer.as_reader();
        let ready = Arc::new(AtomicBool::new(false));
        let done = ready.clone();
        let stream = reflector::reflector(
            writer,
            watcher(api, config).modify(|o| o.managed_fields_mut().clear()),
        )
        .default_backoff();
        let task = tokio::spawn(async move {
            let mut stream = std::pin::pin!(stream);
            while let Some(ev) = stream.next().await {
                match ev {
                    Ok(watcher::Event::InitDone) => {
                        done.store(true, Ordering::Release);
                        notify.poke();
                    }
                    Ok(watcher::Event::Init | watcher::Event::InitApply(_)) => {}
                    Ok(_) => notify.poke(),
                    Err(e) => tracing::debug!(error = %e, "watch failed, retrying"),
                }
            }
        });
        Watch { store, ready, task }
    }

    /// Whether the first list has been cached.
    pub fn ready(&self) -> bool {
        self.ready.load(Ordering::Acquire) && !self.task.is_finished()
    }
}

/// A cached object as JSON (apiVersion and kind may be missing).
pub fn as_value<K: serde::Serialize>(obj: &K) -> Value {
    serde_json::to_value(obj).unwrap_or(Value::Null)
}

/// The wake-up of a [`sync_loop`]: watches poke it, and each poke is a
/// trigger of the controller's one-key queue (`workqueue_*` families; a
/// poke while a pass is waiting is not a second add).
pub struct Poke {
    notify: Notify,
    queue: crate::workqueue::Queue,
}

/// The key of the one item a [`sync_loop`] works on: the whole state.
const PASS_KEY: &str = "pass";

impl Poke {
    /// The wake-up of the controller `controller`.
    pub fn new(controller: &'static str) -> Self {
        Poke {
            notify: Notify::new(),
            queue: crate::workqueue::Queue::new(controller),
        }
    }

    /// Asks for a pass.
    pub fn poke(&self) {
        self.queue.trigger(PASS_KEY);
        self.notify.notify_one();
    }
}

/// Runs `sync` whenever `poke` is poked (a burst of pokes is one pass), and
/// every [`RESYNC`]. An error or a requeue runs it again shortly. Each pass
/// is counted and timed as a reconcile of `controller`.
pub async fn sync_loop<C, F, Fut>(
    controller: &'static str,
    poke: Arc<Poke>,
    state: Arc<C>,
    sync: F,
) -> Result<()>
where
    C: Send + Sync + 'static,
    F: Fn(Arc<C>) -> Fut + Send + Sync + Clone + 'static,
    Fut: Future<Output = Result<Action>> + Send + 'static,
{
    let mut pass = metrics::reconciled(controller, move |_: Arc<()>, c: Arc<C>| sync.clone()(c));
    poke.poke();
    loop {
        tokio::select! {
            _ = poke.notify.notified() => {}
            _ = tokio::time::sleep(RESYNC) => poke.queue.trigger(PASS_KEY),
        }
        // let a burst of events land in the caches first
        tokio::time::sleep(Duration::from_millis(5)).await;
        poke.queue.start(PASS_KEY);
        let out = pass(Arc::new(()), state.clone()).await;
        poke.queue.finish(PASS_KEY, out.is_err());
        match out {
            Ok(a) if a == Action::await_change() => {}
            Ok(_) => {
                tokio::time::sleep(Duration::from_millis(200)).await;
                poke.poke();
            }
            Err(e) => {
                tracing::warn!(controller, error = %e, "sync failed, retrying");
                tokio::time::sleep(Duration::from_millis(500)).await;
                poke.poke();
            }
        }
    }
}

/// (namespace, name).
pub type Key = (String, String);

fn key_of(v: &Value) -> Key {
    (
        str_at(v, "/metadata/namespace").to_string(),
        str_at(v, "/metadata/name").to_string(),
    )
}

/// The `endpointslice.karmada.io/managed-by` label of an object ("" when absent).
pub fn owner_of(v: &Value) -> &str {
    v.pointer("/metadata/labels")
        .and_then(|l| l.get(MANAGED_BY_LABEL))
        .and_then(Value::as_str)
        .unwrap_or_default()
}

/// How [`converge`] compares and updates objects of one kind.
pub struct Kind {
    /// The kind.
    pub resource: ApiResource,
    /// Whether the stored object already is what is desired.
    pub up_to_date: fn(stored: &Value, desired: &Value) -> bool,
    /// The merge patch that makes a stored object the desired one.
    pub patch: fn(desired: &Value) -> Value,
}

/// What [`converge`] wrote.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Written {
    /// Objects created.
    pub created: usize,
    /// Objects patched.
    pub updated: usize,
    /// Objects deleted.
    pub deleted: usize,
}

/// How many writes [`converge`] keeps in flight.
pub const WRITE_CONCURRENCY: usize = 16;

enum Op {
    Create(String, Box<DynamicObject>),
    Patch(Key, Value),
    Delete(Key),
}

/// Makes the objects of `kind` that `owner` owns (label
/// `endpointslice.karmada.io/managed-by`) exactly `desired`: creates the
/// missing ones, patches those that differ, deletes those no longer desired,
/// [`WRITE_CONCURRENCY`] writes at a time. `stored` is every cached object of
/// the kind that may clash (an object of the same namespace and name owned
/// by someone else is left alone).
pub async fn converge(
    client: &Client,
    kind: &Kind,
    owner: &str,
    stored: &[Value],
    desired: Vec<Value>,
) -> Result<Written> {
    let stored: HashMap<Key, &Value> = stored.iter().map(|v| (key_of(v), v)).collect();
    let mut wanted: HashSet<Key> = HashSet::new();
    let mut ops = Vec::new();
    for mut d in desired {
        let key = key_of(&d);
        if !wanted.insert(key.clone()) {
            continue;
        }
        match stored.get(&key) {
            Some(s) if owner_of(s) != owner => {
                tracing::debug!(name = %key.1, namespace = %key.0, owner = owner_of(s), "owned by another controller, left alone");
            }
            Some(s) => {
                if !(kind.up_to_date)(s, &d) {
                    ops.push(Op::Patch(key, (kind.patch)(&d)));
                }
            }
            None => {
                if let Some(m) = d.as_object_mut() {
                    m.insert("apiVersion".into(), json!(kind.resource.api_version));
                    m.insert("kind".into(), json!(kind.resource.kind));
                }
                ops.push(Op::Create(key.0, Box::new(serde_json::from_value(d)?)));
            }
        }
    }
    for (key, s) in &stored {
        if owner_of(s) == owner && !wanted.contains(key) {
            ops.push(Op::Delete(key.clone()));
        }
    }
    let api = |ns: &str| -> Api<DynamicObject> {
        if ns.is_empty() {
            Api::all_with(client.clone(), &kind.resource)
        } else {
            Api::namespaced_with(client.clone(), ns, &kind.resource)
        }
    };
    let results: Vec<Result<Written>> = futures::stream::iter(ops)
        .map(|op| {
            let api = &api;
            async move {
                let mut w = Written::default();
                let res = match op {
                    Op::Create(ns, obj) => api(&ns)
                        .create(&PostParams::default(), &obj)
                        .await
                        .map(|_| w.created = 1),
                    Op::Patch((ns, name), patch) => api(&ns)
                        .patch(&name, &PatchParams::default(), &Patch::Merge(&patch))
                        .await
                        .map(|_| w.updated = 1),
                    Op::Delete((ns, name)) => api(&ns)
                        .delete(&name, &DeleteParams::background())
                        .await
                        .map(|_| w.deleted = 1),
                };
                match res {
                    Ok(()) => Ok(w),
                    // gone already, or there already (not cached yet, or
                    // someone else's): the next pass sees it
                    Err(e) if is_not_found(&e) || is_conflict(&e) => Ok(w),
                    Err(e) => Err(e.into()),
                }
            }
        })
        .buffer_unordered(WRITE_CONCURRENCY)
        .collect()
        .await;
    let mut written = Written::default();
    for r in results {
        let w = r?;
        written.created += w.created;
        written.updated += w.updated;
        written.deleted += w.deleted;
    }
    Ok(written)
}

/// Whether every label of `desired` is on `stored` with the same value.
pub fn labels_match(stored: &Value, desired: &Value) -> bool {
    desired
        .pointer("/metadata/labels")
        .and_then(Value::as_object)
        .is_none_or(|want| {
            want.iter()
                .all(|(k, v)| stored.pointer("/metadata/labels").and_then(|l| l.get(k)) == Some(v))
        })
}

/// [`Kind`] of the Works the dispatchers write (compared by spec and labels).
pub fn work_kind() -> Kind {
    Kind {
        resource: ApiResource::erase::<flotilla_api::work::Work>(&()),
        up_to_date: |s, d| s.get("spec") == d.get("spec") && labels_match(s, d),
        patch: |d| json!({"metadata": {"labels": d.pointer("/metadata/labels")}, "spec": d.get("spec")}),
    }
}

/// A Work as JSON for [`converge`].
pub fn work_value(w: &flotilla_api::work::Work) -> Value {
    as_value(w)
}

/// The status conditions of a cached object.
pub fn conditions_of(v: &Value) -> Vec<k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition> {
    v.pointer("/status/conditions")
        .cloned()
        .and_then(|c| serde_json::from_value(c).ok())
        .unwrap_or_default()
}

/// The objects of a cache as JSON.
pub fn values<K>(store: &Store<K>) -> Vec<Value>
where
    K: Resource + Clone + serde::Serialize + 'static,
    K::DynamicType: Eq + Hash + Clone,
{
    store.state().iter().map(|o| as_value(&**o)).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_match_is_a_subset_check() {
        let stored = json!({"metadata": {"labels": {"a": "1", "b": "2"}}});
        assert!(labels_match(
            &stored,
            &json!({"metadata": {"labels": {"a": "1"}}})
        ));
        assert!(!labels_match(
            &stored,
            &json!({"metadata": {"labels": {"a": "2"}}})
        ));
        assert!(labels_match(&stored, &json!({"metadata": {}})));
    }

    #[test]
    fn stale_gauges_are_zeroed() {
        let g = metrics::gauge_vec("mcs_test_gauge", "test", &["cluster"]);
        let mut prev = HashSet::new();
        set_gauges(&g, &mut prev, BTreeMap::from([(vec!["m1".to_string()], 3)]));
        assert_eq!(g.with_label_values(&["m1"]).get(), 3);
        set_gauges(&g, &mut prev, BTreeMap::from([(vec!["m2".to_string()], 1)]));
        assert_eq!(g.with_label_values(&["m1"]).get(), 0);
        assert_eq!(g.with_label_values(&["m2"]).get(), 1);
    }
}
