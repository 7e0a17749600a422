//! What the propagation controllers share: the two binding kinds behind one
//! trait, API resolution for any kind (control plane or member), and the
//! watch predicates that keep noisy updates from waking every binding.
//!
//! The pipeline, as in Karmada (each step a controller of its own module):
//!
//! 1. [`crate::detector`] claims resource templates for (Cluster)PropagationPolicies
//!    and writes (Cluster)ResourceBindings;
//! 2. [`crate::scheduler`] fills `spec.clusters`;
//! 3. [`crate::binding`] renders one Work per target cluster (overrides applied);
//! 4. [`crate::execution`] applies each Work's manifest to its member;
//! 5. [`crate::work_status`] reflects member objects' status into Works and
//!    reverts drift;
//! 6. [`crate::binding_status`] aggregates Work statuses into the binding and
//!    the resource template.

use std::collections::HashMap;
use std::fmt::Debug;
use std::hash::{Hash, Hasher};
use std::sync::{Arc, Mutex};

use flotilla_api::cluster::Cluster;
use flotilla_api::policy::{
    CLUSTER_PROPAGATION_POLICY_PERMANENT_ID_LABEL, PROPAGATION_POLICY_PERMANENT_ID_LABEL,
};
use flotilla_api::render::{
    BINDING_NAME_ANNOTATION, BINDING_NAMESPACE_ANNOTATION, CLUSTER_BINDING_NAME_ANNOTATION,
};
use flotilla_api::work::{
    BINDING_CONTROLLER_FINALIZER, CLUSTER_RESOURCE_BINDING_CONTROLLER_FINALIZER,
    CLUSTER_RESOURCE_BINDING_PERMANENT_ID_LABEL, ClusterResourceBinding,
    RESOURCE_BINDING_PERMANENT_ID_LABEL, ResourceBinding, ResourceBindingSpec,
    ResourceBindingStatus, Work,
};
use kube::api::{ApiResource, DynamicObject, GroupVersionKind};
use kube::discovery::{ApiCapabilities, Scope};
use kube::runtime::reflector::{ObjectRef, Store};
use kube::{Api, Client, Resource, ResourceExt};
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value;

use crate::Result;

/// ResourceBinding and ClusterResourceBinding, so that each binding
/// controller is written once and started for both kinds.
pub trait BindingResource:
    Resource<DynamicType = ()> + Clone + Debug + Serialize + DeserializeOwned + Send + Sync + 'static
{
    /// Whether this is the cluster-scoped kind.
    const CLUSTER_SCOPED: bool;
    /// The permanent-id label of this kind (`resourcebinding.karmada.io/permanent-id`, ...).
    const ID_LABEL: &'static str;
    /// The binding controller's finalizer for this kind.
    const FINALIZER: &'static str;
    /// The spec.
    fn spec(&self) -> &ResourceBindingSpec;
    /// The spec, mutable.
    fn spec_mut(&mut self) -> &mut ResourceBindingSpec;
    /// The status, if any.
    fn status(&self) -> Option<&ResourceBindingStatus>;
    /// Replaces the status.
    fn set_status(&mut self, status: ResourceBindingStatus);
    /// The Api in which an object of this kind named in `namespace` lives.
    fn api(client: Client, namespace: &str) -> Api<Self>;
}

impl BindingResource for ResourceBinding {
    const CLUSTER_SCOPED: bool = false;
    const ID_LABEL: &'static str = RESOURCE_BINDING_PERMANENT_ID_LABEL;
    const FINALIZER: &'static str = BINDING_CONTROLLER_FINALIZER;
    fn spec(&self) -> &ResourceBindingSpec {
        &self.spec
    }
    fn spec_mut(&mut self) -> &mut ResourceBindingSpec {
        &mut self.spec
    }
    fn status(&self) -> Option<&ResourceBindingStatus> {
        self.status.as_ref()
    }
    fn set_status(&mut self, status: ResourceBindingStatus) {
        self.status = Some(status);
    }
    fn api(client: Client, namespace: &str) -> Api<Self> {
        Api::namespaced(client, namespace)
    }
}

impl BindingResource for ClusterResourceBinding {
    const CLUSTER_SCOPED: bool = true;
    const ID_LABEL: &'static str = CLUSTER_RESOURCE_BINDING_PERMANENT_ID_LABEL;
    const FINALIZER: &'static str = CLUSTER_RESOURCE_BINDING_CONTROLLER_FINALIZER;
    fn spec(&self) -> &ResourceBindingSpec {
        &self.spec.0
    }
    fn spec_mut(&mut self) -> &mut ResourceBindingSpec {
        &mut self.spec.0
    }
    fn status(&self) -> Option<&ResourceBindingStatus> {
        self.status.as_ref()
    }
    fn set_status(&mut self, status: ResourceBindingStatus) {
        self.status = Some(status);
    }
    fn api(client: Client, _namespace: &str) -> Api<Self> {
        Api::all(client)
    }
}

/// The binding's permanent id (empty when not yet stamped).
pub fn permanent_id<B: BindingResource>(binding: &B) -> String {
    binding
        .labels()
        .get(B::ID_LABEL)
        .cloned()
        .unwrap_or_default()
}

/// Whether a (Cluster)PropagationPolicy still claims the binding (Karmada
/// schedules only claimed bindings, or those a MultiClusterService manages).
pub fn is_claimed(labels: &std::collections::BTreeMap<String, String>) -> bool {
    labels.contains_key(PROPAGATION_POLICY_PERMANENT_ID_LABEL)
        || labels.contains_key(CLUSTER_PROPAGATION_POLICY_PERMANENT_ID_LABEL)
        || labels.contains_key("binding.karmada.io/managed-by")
}

/// The binding a Work belongs to, from the annotations the binding controller
/// stamps on it (`resourcebinding.karmada.io/namespace|name`, or
/// `clusterresourcebinding.karmada.io/name`).
pub fn binding_of_work<B: BindingResource>(work: &Work) -> Option<ObjectRef<B>> {
    let a = work.annotations();
    if B::CLUSTER_SCOPED {
        a.get(CLUSTER_BINDING_NAME_ANNOTATION)
            .map(|name| ObjectRef::new(name))
    } else {
        let name = a.get(BINDING_NAME_ANNOTATION)?;
        let ns = a.get(BINDING_NAMESPACE_ANNOTATION)?;
        Some(ObjectRef::new(name).within(ns))
    }
}

/// A hash of what scheduling and overrides read from a Cluster: labels,
/// spec, API enablements and whether it is being deleted — not the heartbeat
/// fields that change every status update.
pub fn cluster_placement_hash(cluster: &Cluster) -> Option<u64> {
    let mut h = std::collections::hash_map::DefaultHasher::new();
    cluster.labels().hash(&mut h);
    serde_json::to_string(&cluster.spec).ok()?.hash(&mut h);
    serde_json::to_string(&cluster.status.as_ref().map(|s| &s.api_enablements))
        .ok()?
        .hash(&mut h);
    cluster.metadata.deletion_timestamp.is_some().hash(&mut h);
    Some(h.finish())
}

/// A hash of an object without its status and the metadata every write
/// changes (`resourceVersion`, `managedFields`): a controller watching with
/// this predicate is not woken by status updates, its own or others'.
pub fn spec_hash<K: Serialize>(obj: &K) -> Option<u64> {
    Some(value_spec_hash(serde_json::to_value(obj).ok()?))
}

/// [`spec_hash`] of an object already parsed.
pub fn value_spec_hash(mut v: Value) -> u64 {
    if let Some(m) = v.as_object_mut() {
        m.remove("status");
        if let Some(meta) = m.get_mut("metadata").and_then(Value::as_object_mut) {
            meta.remove("resourceVersion");
            meta.remove("managedFields");
        }
    }
    let mut h = std::collections::hash_map::DefaultHasher::new();
    v.to_string().hash(&mut h);
    h.finish()
}

/// [`spec_hash`] of a Work, reading its manifests' text as it is (a Work's
/// status changes, which this leaves out, are most of its updates).
pub fn work_spec_hash(w: &Work) -> Option<u64> {
    let mut meta = w.metadata.clone();
    meta.resource_version = None;
    meta.managed_fields = None;
    let mut h = std::collections::hash_map::DefaultHasher::new();
    serde_json::to_string(&meta).ok()?.hash(&mut h);
    w.spec.hash_text(&mut h);
    Some(h.finish())
}

/// Starts `$run::<ResourceBinding>` and `$run::<ClusterResourceBinding>`
/// side by side: a binding controller's `start` for both kinds.
#[macro_export]
macro_rules! for_both_binding_kinds {
    ($run:ident, $ctx:expr) => {{
        let ctx: $crate::Context = $ctx;
        Box::pin(async move {
            futures::try_join!(
                $run::<flotilla_api::work::ResourceBinding>(ctx.clone()),
                $run::<flotilla_api::work::ClusterResourceBinding>(ctx)
            )
            .map(|_| ())
        })
    }};
}

/// No hash: every event passes (see [`watch_cached`]).
pub fn every_change<K>(_: &K) -> Option<u64> {
    None
}

/// A cache of everything `api` lists, and the stream of the objects that
/// changed by `predicate` ([`every_change`] for all of them), to feed a
/// controller's `watches_stream`. The stream drives the cache.
pub fn watch_cached<K>(
    api: Api<K>,
    predicate: fn(&K) -> Option<u64>,
) -> (
    Store<K>,
    impl futures::Stream<Item = Result<K, kube::runtime::watcher::Error>> + Send + 'static,
)
where
    K: Resource<DynamicType = ()> + Clone + Debug + DeserializeOwned + Send + Sync + 'static,
{
    use kube::runtime::{WatchStreamExt, reflector, watcher};
    let (store, writer) = reflector::store();
    let stream = reflector(
        writer,
        watcher(api, watcher::Config::default()).modify(|o| o.managed_fields_mut().clear()),
    )
    .default_backoff()
    .touched_objects()
    .predicate_filter(predicate, kube::runtime::PredicateConfig::default());
    (store, stream)
}

/// [`watch_cached`] on the process's shared cache of the kind
/// ([`crate::shared_cache`]): the cache is the one every other controller of
/// the process reads, the stream this subscriber's own, filtered by
/// `predicate` (deleted objects always pass).
pub fn watch_shared<K>(
    ctx: &crate::Context,
    api: Api<K>,
    predicate: fn(&K) -> Option<u64>,
) -> (
    Store<K>,
    impl futures::Stream<Item = Arc<K>> + Send + 'static,
)
where
    K: Resource<DynamicType = ()> + Clone + Debug + DeserializeOwned + Send + Sync + 'static,
{
    let (store, changes) = ctx.caches.subscribe(api);
    (store, crate::shared_cache::filtered(changes, predicate))
}

/// A controller over the process's shared cache of `api`'s kind, woken by
/// the changes `predicate` sees ([`spec_hash`]: not by status updates).
pub fn shared_controller<K>(
    queue: &crate::workqueue::Queue,
    ctx: &crate::Context,
    api: Api<K>,
    predicate: fn(&K) -> Option<u64>,
) -> kube::runtime::Controller<K>
where
    K: Resource<DynamicType = ()> + Clone + Debug + DeserializeOwned + Send + Sync + 'static,
{
    let (store, changes) = watch_shared(ctx, api, predicate);
    kube::runtime::Controller::for_shared_stream(queue.shared_objects(changes), store)
}

/// Adds (`add`) or removes `finalizer` on `obj` with a merge patch guarded by
/// its resourceVersion. A conflict asks for a quick retry; a vanished object
/// is done.
pub async fn set_finalizer<K>(
    api: &Api<K>,
    obj: &K,
    finalizer: &str,
    add: bool,
) -> Result<kube::runtime::controller::Action>
where
    K: Resource + Clone + Debug + DeserializeOwned,
{
    use kube::runtime::controller::Action;
    let mut finalizers: Vec<String> = obj
        .meta()
        .finalizers
        .iter()
        .flatten()
        .filter(|f| *f != finalizer)
        .cloned()
        .collect();
    if add {
        finalizers.push(finalizer.to_string());
    }
    let patch = serde_json::json!({"metadata": {
        "finalizers": finalizers,
        "resourceVersion": obj.meta().resource_version,
    }});
    let name = obj.meta().name.clone().unwrap_or_default();
    match api
        .patch(
            &name,
            &kube::api::PatchParams::default(),
            &kube::api::Patch::Merge(&patch),
        )
        .await
    {
        Ok(_) => Ok(Action::await_change()),
        Err(e) if is_not_found(&e) => Ok(Action::await_change()),
        Err(e) if is_conflict(&e) => Ok(Action::requeue(std::time::Duration::from_millis(50))),
        Err(e) => Err(e.into()),
    }
}

/// A controller over `api` woken only by changes [`spec_hash`] sees, and its
/// cache; its triggers are counted in `queue`.
pub fn spec_controller<K>(
    queue: &crate::workqueue::Queue,
    api: Api<K>,
) -> kube::runtime::Controller<K>
where
    K: Resource<DynamicType = ()>
        + Clone
        + Debug
        + Serialize
        + DeserializeOwned
        + Send
        + Sync
        + 'static,
{
    use kube::runtime::{WatchStreamExt, reflector, watcher};
    let (store, writer) = reflector::store();
    let stream = reflector(
        writer,
        watcher(api, watcher::Config::default()).modify(|o| o.managed_fields_mut().clear()),
    )
    .default_backoff()
    .touched_objects()
    .predicate_filter(spec_hash::<K>, kube::runtime::PredicateConfig::default());
    kube::runtime::Controller::for_stream(queue.objects(stream), store)
}

/// Which member clusters a Work controller serves: every Push cluster (the
/// controller manager), or the one Pull cluster an agent runs next to, through
/// the agent's own client.
#[derive(Clone)]
pub enum Served {
    /// Push clusters, reached with the clients of [`crate::member::MemberClients`].
    Push,
    /// One Pull cluster (`flotilla agent`).
    Pull {
        /// The cluster's name.
        cluster: String,
        /// The agent's client to its member.
        member: Client,
    },
}

impl Served {
    /// The Works this controller watches: all, or the agent's execution namespace.
    pub fn works(&self, control_plane: Client) -> Api<Work> {
        match self {
            Served::Push => Api::all(control_plane),
            Served::Pull { cluster, .. } => Api::namespaced(
                control_plane,
                &flotilla_api::names::execution_space_name(cluster),
            ),
        }
    }

    /// Whether a cluster is one this controller applies to.
    pub fn serves(&self, cluster: &Cluster) -> bool {
        match self {
            Served::Push => cluster.spec.sync_mode != flotilla_api::cluster::SYNC_MODE_PULL,
            Served::Pull { cluster: name, .. } => cluster.name() == name,
        }
    }

    /// The client to `cluster`.
    pub async fn member(&self, ctx: &crate::Context, cluster: &Cluster) -> Result<Client> {
        match self {
            Served::Push => ctx.members.get(cluster).await,
            Served::Pull { member, .. } => Ok(member.clone()),
        }
    }
}

/// A hash of what applying to a Cluster depends on: endpoint, secret,
/// readiness, sync mode and deletion. Works of a cluster are looked at again
/// when it changes (e.g. the member came back, at a new address).
pub fn cluster_connection_hash(cluster: &Cluster) -> Option<u64> {
    let mut h = std::collections::hash_map::DefaultHasher::new();
    serde_json::to_string(&cluster.spec).ok()?.hash(&mut h);
    crate::cluster::reconcile::ready_condition(cluster)
        .map(|c| c.status.clone())
        .hash(&mut h);
    cluster.metadata.deletion_timestamp.is_some().hash(&mut h);
    Some(h.finish())
}

/// The Works in a cluster's execution namespace, from a Work cache.
pub fn works_of_cluster(works: &Store<Work>, cluster: &str) -> Vec<ObjectRef<Work>> {
    let ns = flotilla_api::names::execution_space_name(cluster);
    works
        .state()
        .iter()
        .filter(|w| w.namespace().as_deref() == Some(ns.as_str()))
        .map(|w| ObjectRef::from_obj(&**w))
        .collect()
}

/// Whether a reflector cache has finished its first list, waiting at most
/// 100 ms. Reconcilers call this instead of awaiting
/// `Store::wait_until_ready` directly: when many reconciles wait on one
/// store at once, kube-runtime wakes only the last of them, and the others
/// would wait forever. A `false` answer means "requeue shortly".
pub async fn cache_ready<K>(store: &Store<K>) -> bool
where
    K: kube::Resource + Clone + 'static,
    K::DynamicType: Eq + std::hash::Hash + Clone,
{
    matches!(
        tokio::time::timeout(
            std::time::Duration::from_millis(100),
            store.wait_until_ready()
        )
        .await,
        Ok(Ok(()))
    )
}

/// The controller configuration of the status controllers: a burst of
/// status changes of one object (a member rolling out its pods) becomes one
/// reconcile, and so one write, instead of one per change.
pub fn status_controller_config() -> kube::runtime::controller::Config {
    kube::runtime::controller::Config::default().debounce(std::time::Duration::from_millis(30))
}

/// Whether `err` is a 404 from the API.
pub fn is_not_found(err: &kube::Error) -> bool {
    matches!(err, kube::Error::Api(s) if s.code == 404)
}

/// Whether `err` is a 409 (conflict or already exists) from the API.
pub fn is_conflict(err: &kube::Error) -> bool {
    matches!(err, kube::Error::Api(s) if s.code == 409)
}

/// A resolved kind: how to reach it and whether it is namespaced.
#[derive(Clone, Debug)]
pub struct Resolved {
    /// Group, version, kind and plural.
    pub resource: ApiResource,
    /// Whether objects of this kind live in namespaces.
    pub namespaced: bool,
}

impl Resolved {
    /// The Api for an object in `namespace` (ignored for cluster-scoped kinds).
    pub fn api(&self, client: Client, namespace: &str) -> Api<DynamicObject> {
        if self.namespaced && !namespace.is_empty() {
            Api::namespaced_with(client, namespace, &self.resource)
        } else {
            Api::all_with(client, &self.resource)
        }
    }
}

/// (server, apiVersion, kind).
type ResolveKey = (String, String, String);

/// Resolves `apiVersion` + `kind` to a resource through a server's discovery,
/// caching answers per (server, apiVersion, kind). Misses are not cached (a
/// CRD may appear later); [`Resolver::forget`] drops an entry after a 404.
#[derive(Clone, Default)]
pub struct Resolver {
    cache: Arc<Mutex<HashMap<ResolveKey, Resolved>>>,
}

impl Resolver {
    /// Resolves on the server `client` talks to, named `server` in the cache.
    pub async fn resolve(
        &self,
        server: &str,
        client: &Client,
        api_version: &str,
        kind: &str,
    ) -> Result<Resolved> {
        let key = (
            server.to_string(),
            api_version.to_string(),
            kind.to_string(),
        );
        if let Some(hit) = self.cache.lock().ok().and_then(|c| c.get(&key).cloned()) {
            return Ok(hit);
        }
        let (group, version) = match api_version.split_once('/') {
            Some((g, v)) => (g, v),
            None => ("", api_version),
        };
        let gvk = GroupVersionKind::gvk(group, version, kind);
        let (resource, caps): (ApiResource, ApiCapabilities) =
            kube::discovery::pinned_kind(client, &gvk).await?;
        let resolved = Resolved {
            resource,
            namespaced: caps.scope == Scope::Namespaced,
        };
        if let Ok(mut c) = self.cache.lock() {
            c.insert(key, resolved.clone());
        }
        Ok(resolved)
    }

    /// Drops a cached answer (after the server said the resource is gone).
    pub fn forget(&self, server: &str, api_version: &str, kind: &str) {
        if let Ok(mut c) = self.cache.lock() {
            c.remove(&(
                server.to_string(),
                api_version.to_string(),
                kind.to_string(),
            ));
        }
    }
}

/// The string at a JSON pointer, or "".
pub fn str_at<'a>(v: &'a Value, pointer: &str) -> &'a str {
    v.pointer(pointer)
        .and_then(Value::as_str)
        .unwrap_or_default()
}

/// `apiVersion`, `kind`, namespace and name of a manifest.
pub fn manifest_key(v: &Value) -> (String, String, String, String) {
    (
        str_at(v, "/apiVersion").to_string(),
        str_at(v, "/kind").to_string(),
        str_at(v, "/metadata/namespace").to_string(),
        str_at(v, "/metadata/name").to_string(),
    )
}

/// The current time in RFC 3339 (seconds), as Kubernetes writes condition times.
pub fn now_rfc3339() -> String {
    k8s_openapi::jiff::Timestamp::now()
        .round(k8s_openapi::jiff::Unit::Second)
        .map(|t| t.to_string())
        .unwrap_or_else(|_| k8s_openapi::jiff::Timestamp::now().to_string())
}

/// Sets (or replaces) condition `cond` in `conditions`, keeping
/// `lastTransitionTime` when the status did not change. Returns whether
/// anything changed.
pub fn set_condition(
    conditions: &mut Vec<k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition>,
    mut cond: k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition,
) -> bool {
    if let Some(old) = conditions.iter_mut().find(|c| c.type_ == cond.type_) {
        if old.status == cond.status
            && old.reason == cond.reason
            && old.message == cond.message
            && old.observed_generation == cond.observed_generation
        {
            return false;
        }
        if old.status == cond.status {
            cond.last_transition_time = old.last_transition_time.clone();
        }
        *old = cond;
        return true;
    }
    conditions.push(cond);
    true
}

/// A condition stamped now.
pub fn condition(
    type_: &str,
    status: bool,
    reason: &str,
    message: &str,
    observed_generation: Option<i64>,
) -> k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition {
    k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition {
        type_: type_.to_string(),
        status: if status { "True" } else { "False" }.to_string(),
        reason: reason.to_string(),
        message: message.to_string(),
        observed_generation,
        last_transition_time: k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(
            k8s_openapi::jiff::Timestamp::now(),
        ),
    }
}

/// Writes an eviction's outcome — `spec.clusters` and
/// `spec.gracefulEvictionTasks` of `spec` — to the binding `b`, guarded by
/// its resourceVersion. `None` when written; otherwise what the reconcile
/// answers instead: the binding is gone, or changed meanwhile (try again).
pub async fn write_eviction<B: BindingResource>(
    client: &Client,
    b: &B,
    spec: &ResourceBindingSpec,
) -> Result<Option<kube::runtime::controller::Action>> {
    use kube::runtime::controller::Action;
    let api = B::api(client.clone(), &b.namespace().unwrap_or_default());
    let patch = serde_json::json!({
        "metadata": {"resourceVersion": b.meta().resource_version},
        "spec": {
            "clusters": spec.clusters,
            "gracefulEvictionTasks": spec.graceful_eviction_tasks,
        },
    });
    match api
        .patch(
            &b.name_any(),
            &kube::api::PatchParams::default(),
            &kube::api::Patch::Merge(&patch),
        )
        .await
    {
        Ok(_) => Ok(None),
        Err(e) if is_not_found(&e) => Ok(Some(Action::await_change())),
        Err(e) if is_conflict(&e) => {
            Ok(Some(Action::requeue(std::time::Duration::from_millis(100))))
        }
        Err(e) => Err(e.into()),
    }
}
