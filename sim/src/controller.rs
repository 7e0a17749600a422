//! The fake controllers' wiring: one loop per member that follows the store's
//! watch, keeps a de-duplicated queue of work (one item per object to reconcile),
//! reads a fresh snapshot for each item, asks the pure logic in [`crate::workload`],
//! [`crate::schedule`], [`crate::kubelet`], [`crate::endpoints`],
//! [`crate::metrics`] and [`crate::autoscaler`] what to do, and writes the result through the registry store
//! (so defaulting, validation, generation and managedFields apply as to any client).
//!
//! Level-triggered: an item is reconciled from current state, so a lost or
//! coalesced event costs nothing; a watch that falls behind the (small) history
//! window resynchronises by queueing everything.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use flotilla_apiserver::registry::ResourceInfo;
use flotilla_apiserver::registry::patch::PatchType;
use flotilla_apiserver::registry::store::{DeleteOptions, Part, Store, WriteOptions};
use flotilla_apiserver::storage::{Event, EventKind, Snapshot};
use futures::{FutureExt, StreamExt};
use serde_json::{Value, json};
use tokio::sync::{mpsc, watch};
use tokio::time::Instant;

use crate::metrics::{self, Usage, UsageTable};
use crate::object::{self, controller_uid, name, str_at};
use crate::owners::Owners;
use crate::schedule::{self, NodeView};
use crate::{autoscaler, endpoints, kubelet, workload};

/// One thing to reconcile. Variants are in processing order: owners before the
/// objects they create, scheduling before the kubelet, pods before endpoints.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub enum Work {
    Deployment(String, String),
    ReplicaSet(String, String),
    StatefulSet(String, String),
    DaemonSet(String, String),
    Job(String, String),
    Schedule,
    Pod(String, String),
    Service(String, String),
    Metrics,
    Autoscaler(String, String),
}

/// What the loop needs to know besides the store.
#[derive(Debug, Clone)]
pub struct Settings {
    /// Range of the delay from binding to Running/Ready.
    pub ready_delay: (Duration, Duration),
    /// How long a Job's pod runs before it succeeds.
    pub job_duration: Duration,
    /// How often each HorizontalPodAutoscaler is synced.
    pub hpa_sync_period: Duration,
}

/// The resources the controllers touch.
struct Infos {
    deployments: Arc<ResourceInfo>,
    replicasets: Arc<ResourceInfo>,
    statefulsets: Arc<ResourceInfo>,
    daemonsets: Arc<ResourceInfo>,
    jobs: Arc<ResourceInfo>,
    pods: Arc<ResourceInfo>,
    services: Arc<ResourceInfo>,
    endpoints: Arc<ResourceInfo>,
    slices: Arc<ResourceInfo>,
    nodes: Arc<ResourceInfo>,
    hpas: Arc<ResourceInfo>,
}

/// A resource the catalogue should have and does not.
#[derive(Debug, thiserror::Error)]
#[error("the API server does not serve {0}")]
pub struct MissingResource(pub String);

impl Infos {
    fn resolve(store: &Store) -> Result<Self, MissingResource> {
        let get = |g: &str, v: &str, p: &str| {
            store
                .catalog
                .get(g, v, p)
                .ok_or_else(|| MissingResource(format!("{g}/{v}/{p}")))
        };
        Ok(Infos {
            deployments: get("apps", "v1", "deployments")?,
            replicasets: get("apps", "v1", "replicasets")?,
            statefulsets: get("apps", "v1", "statefulsets")?,
            daemonsets: get("apps", "v1", "daemonsets")?,
            jobs: get("batch", "v1", "jobs")?,
            pods: get("", "v1", "pods")?,
            services: get("", "v1", "services")?,
            endpoints: get("", "v1", "endpoints")?,
            slices: get("discovery.k8s.io", "v1", "endpointslices")?,
            nodes: get("", "v1", "nodes")?,
            hpas: get("autoscaling", "v2", "horizontalpodautoscalers")?,
        })
    }
}

/// The controller loop of one member.
pub struct Controller {
    store: Arc<Store>,
    infos: Infos,
    settings: Settings,
    usage: Arc<RwLock<UsageTable>>,
    queue: BTreeSet<Work>,
    delayed: BTreeMap<Instant, Vec<Work>>,
    /// When a bound pod starts (or a job pod finishes), by storage key.
    deadlines: HashMap<String, Instant>,
    /// The HPAs' recommendations and scale events.
    histories: autoscaler::Histories,
    /// When each HPA's periodic sync is due.
    hpa_next_sync: HashMap<(String, String), Instant>,
    /// Owned objects by their controller's uid.
    owners: Owners,
    /// When the last metrics pass ran, and whether the next one is waiting
    /// in `delayed`.
    metrics_ran: Option<Instant>,
    metrics_waiting: bool,
}

/// The shortest time between two metrics passes. A pass reads every running
/// pod, and pods change many times a second while workloads roll out; the
/// real metrics-server scrapes every 15 s or more.
const METRICS_RESOLUTION: Duration = Duration::from_secs(1);

type Failure = flotilla_apiserver::status::ApiError;

fn opts(manager: &str) -> WriteOptions {
    WriteOptions::manager(manager)
}

fn split_key(key: &str) -> Vec<&str> {
    key.trim_start_matches('/').split('/').collect()
}

impl Controller {
    /// A controller over `store`; fails when a needed kind is not served.
    pub fn new(
        store: Arc<Store>,
        settings: Settings,
        usage: Arc<RwLock<UsageTable>>,
    ) -> Result<Self, MissingResource> {
        Ok(Controller {
            infos: Infos::resolve(&store)?,
            store,
            settings,
            usage,
            queue: BTreeSet::new(),
            delayed: BTreeMap::new(),
            deadlines: HashMap::new(),
            histories: HashMap::new(),
            hpa_next_sync: HashMap::new(),
            owners: Owners::default(),
            metrics_ran: None,
            metrics_waiting: false,
        })
    }

    /// Runs until `shutdown` turns true; `kicks` ask for metrics to be recomputed.
    pub async fn run(
        mut self,
        mut shutdown: watch::Receiver<bool>,
        mut kicks: mpsc::UnboundedReceiver<()>,
    ) {
        'outer: loop {
            let snapshot = self.store.storage.snapshot();
            self.enqueue_all(&snapshot);
            let mut events = match self.store.storage.watch("/".to_string(), snapshot.revision) {
                Ok(s) => s,
                Err(e) => {
                    tracing::warn!(error = %e, "sim: watch failed; retrying");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            };
            loop {
                // Take every event already waiting, then work.
                loop {
                    match events.next().now_or_never() {
                        Some(Some(Ok(event))) => self.on_event(&event),
                        Some(Some(Err(e))) => {
                            tracing::debug!(error = %e, "sim: watch fell behind; resynchronising");
                            continue 'outer;
                        }
                        Some(None) => continue 'outer,
                        None => break,
                    }
                }
                self.promote_due();
                while let Some(work) = self.queue.pop_first() {
                    if *shutdown.borrow() {
                        return;
                    }
                    self.process(work).await;
                }
                let wake = self
                    .delayed
                    .first_key_value()
                    .map(|(t, _)| *t)
                    .unwrap_or_else(|| Instant::now() + Duration::from_secs(3600));
                tokio::select! {
                    _ = shutdown.changed() => return,
                    event = events.next() => match event {
                        Some(Ok(event)) => self.on_event(&event),
                        Some(Err(e)) => {
                            tracing::debug!(error = %e, "sim: watch fell behind; resynchronising");
                            continue 'outer;
                        }
                        None => continue 'outer,
                    },
                    kick = kicks.recv() => match kick {
                        Some(()) => { self.queue.insert(Work::Metrics); }
                        None => return,
                    },
                    _ = tokio::time::sleep_until(wake) => {}
                }
            }
        }
    }

    fn later(&mut self, after: Duration, work: Work) {
        self.delayed
            .entry(Instant::now() + after)
            .or_default()
            .push(work);
    }

    fn promote_due(&mut self) {
        let now = Instant::now();
        while let Some(entry) = self.delayed.first_entry() {
            if *entry.key() > now {
                break;
            }
            for w in entry.remove() {
                self.queue.insert(w);
            }
        }
    }

    fn enqueue_all(&mut self, snapshot: &Snapshot) {
        self.owners.rebuild(snapshot);
        for kv in snapshot.range("/", None) {
            self.enqueue_for(&kv.key, kv.kept(), None);
        }
        self.queue.insert(Work::Schedule);
        self.queue.insert(Work::Metrics);
    }

    fn on_event(&mut self, event: &Event) {
        let prev = event.prev_object();
        let prev = prev.as_deref();
        let object = event.object();
        let now = (event.kind != EventKind::Deleted).then_some(object.as_ref());
        self.owners.record(&event.key, now);
        if event.kind == EventKind::Deleted {
            self.deadlines.remove(event.key.as_ref());
            if event.key.starts_with("/core/pods/") {
                // Room on a node may let a pending pod in; and the pod leaves
                // its Services' endpoints (as a new pod would join them).
                self.queue.insert(Work::Schedule);
                self.enqueue_for(&event.key, &object, None);
                return;
            }
        }
        self.enqueue_for(&event.key, &object, prev);
    }

    /// Queues what a change to the object at `key` affects.
    fn enqueue_for(&mut self, key: &str, object: &Value, prev: Option<&Value>) {
        let parts = split_key(key);
        let ns_name = || {
            (
                parts.get(2).copied().unwrap_or("").to_string(),
                parts.get(3).copied().unwrap_or("").to_string(),
            )
        };
        let owner = |kind: &str| -> Option<String> {
            object
                .pointer("/metadata/ownerReferences")
                .and_then(Value::as_array)?
                .iter()
                .find(|r| {
                    r.get("controller") == Some(&Value::Bool(true)) && str_at(r, "/kind") == kind
                })
                .map(|r| str_at(r, "/name").to_string())
        };
        if parts.first() == Some(&"apps") && metrics::usage_annotations_changed(object, prev) {
            self.queue.insert(Work::Metrics);
        }
        match (parts.first().copied(), parts.get(1).copied()) {
            (Some("autoscaling"), Some("horizontalpodautoscalers")) => {
                let (ns, n) = ns_name();
                self.queue.insert(Work::Autoscaler(ns, n));
            }
            (Some("apps"), Some("deployments")) => {
                let (ns, n) = ns_name();
                self.queue.insert(Work::Deployment(ns, n));
            }
            (Some("apps"), Some("replicasets")) => {
                let (ns, n) = ns_name();
                if let Some(d) = owner("Deployment") {
                    self.queue.insert(Work::Deployment(ns.clone(), d));
                }
                self.queue.insert(Work::ReplicaSet(ns, n));
            }
            (Some("apps"), Some("statefulsets")) => {
                let (ns, n) = ns_name();
                self.queue.insert(Work::StatefulSet(ns, n));
            }
            (Some("apps"), Some("daemonsets")) => {
                let (ns, n) = ns_name();
                self.queue.insert(Work::DaemonSet(ns, n));
            }
            (Some("batch"), Some("jobs")) => {
                let (ns, n) = ns_name();
                self.queue.insert(Work::Job(ns, n));
            }
            (Some("core"), Some("pods")) => {
                let (ns, n) = ns_name();
                for (kind, make) in [
                    ("ReplicaSet", Work::ReplicaSet as fn(String, String) -> Work),
                    ("StatefulSet", Work::StatefulSet),
                    ("DaemonSet", Work::DaemonSet),
                    ("Job", Work::Job),
                ] {
                    if let Some(o) = owner(kind) {
                        self.queue.insert(make(ns.clone(), o));
                    }
                }
                let unbound = str_at(object, "/spec/nodeName").is_empty();
                let freed = prev.is_some_and(|p| !object::pod_terminal(p))
                    && (object::pod_terminal(object)
                        || prev.is_some()
                            && object.pointer("/metadata/deletionTimestamp").is_some());
                if unbound
                    || freed
                    || prev.is_none_or(|p| {
                        str_at(p, "/spec/nodeName") != str_at(object, "/spec/nodeName")
                    })
                {
                    self.queue.insert(Work::Schedule);
                }
                let view = |p: &Value| {
                    (
                        str_at(p, "/status/podIP").to_string(),
                        object::pod_ready(p),
                        object::labels(p),
                        str_at(p, "/status/phase").to_string(),
                    )
                };
                if prev.is_none_or(|p| view(p) != view(object))
                    || object.pointer("/metadata/deletionTimestamp").is_some()
                {
                    let snapshot = self.store.storage.snapshot();
                    let prefix = self.infos.services.prefix(Some(&ns));
                    for kv in snapshot.range(&prefix, None) {
                        if endpoints::managed(kv.kept()) {
                            self.queue
                                .insert(Work::Service(ns.clone(), name(kv.kept()).to_string()));
                        }
                    }
                    self.queue.insert(Work::Metrics);
                }
                self.queue.insert(Work::Pod(ns, n));
            }
            (Some("core"), Some("services" | "endpoints")) => {
                let (ns, n) = ns_name();
                self.queue.insert(Work::Service(ns, n));
            }
            (Some("discovery.k8s.io"), Some("endpointslices")) => {
                let svc = str_at(object, "/metadata/labels/kubernetes.io~1service-name");
                if !svc.is_empty() {
                    self.queue.insert(Work::Service(
                        object::namespace(object).to_string(),
                        svc.to_string(),
                    ));
                }
            }
            (Some("core"), Some("nodes")) => {
                self.queue.insert(Work::Schedule);
                self.queue.insert(Work::Metrics);
                let snapshot = self.store.storage.snapshot();
                for kv in snapshot.range(&self.infos.daemonsets.prefix(None), None) {
                    self.queue.insert(Work::DaemonSet(
                        object::namespace(kv.kept()).to_string(),
                        name(kv.kept()).to_string(),
                    ));
                }
            }
            _ => {}
        }
    }

    async fn process(&mut self, work: Work) {
        let result = match &work {
            Work::Deployment(ns, n) => self.deployment(ns, n).await,
            Work::ReplicaSet(ns, n) => self.replica_set(ns, n).await,
            Work::StatefulSet(ns, n) => self.stateful_set(ns, n).await,
            Work::DaemonSet(ns, n) => self.daemon_set(ns, n).await,
            Work::Job(ns, n) => self.job(ns, n).await,
            Work::Schedule => self.schedule().await,
            Work::Pod(ns, n) => self.pod(ns, n).await,
            Work::Service(ns, n) => self.service(ns, n).await,
            Work::Metrics => {
                let now = Instant::now();
                match self.metrics_ran.map(|t| t + METRICS_RESOLUTION) {
                    Some(next) if now < next => {
                        if !self.metrics_waiting {
                            self.metrics_waiting = true;
                            self.later(next - now, Work::Metrics);
                        }
                        Ok(())
                    }
                    _ => {
                        self.metrics_waiting = false;
                        self.metrics_ran = Some(now);
                        self.metrics().await
                    }
                }
            }
            Work::Autoscaler(ns, n) => self.autoscaler(ns, n).await,
        };
        if let Err(e) = result {
            if e.code == 404 {
                return;
            }
            tracing::debug!(?work, error = %e.message, "sim: reconcile failed; retrying");
            self.later(Duration::from_millis(100), work);
        }
    }

    fn get(&self, info: &ResourceInfo, ns: &str, n: &str) -> Option<Arc<Value>> {
        let ns = if info.namespaced { Some(ns) } else { None };
        self.store
            .storage
            .snapshot()
            .get(&info.key(ns, n))
            .map(|kv| kv.value())
    }

    fn owned_pods(
        &self,
        snapshot: &Snapshot,
        ns: &str,
        kind: &str,
        owner: &Value,
    ) -> Vec<Arc<Value>> {
        self.owners
            .owned(snapshot, &self.infos.pods.prefix(Some(ns)), kind, owner)
    }

    /// Replaces an object's status when it differs.
    async fn write_status(
        &self,
        info: &ResourceInfo,
        current: &Value,
        status: Value,
        manager: &str,
    ) -> Result<(), Failure> {
        if current.get("status") == Some(&status) {
            return Ok(());
        }
        let mut next = current.clone();
        next["status"] = status;
        if let Some(m) = next.get_mut("metadata").and_then(Value::as_object_mut) {
            m.remove("resourceVersion");
            m.remove("managedFields");
        }
        let ns = object::namespace(current);
        let ns = if ns.is_empty() { None } else { Some(ns) };
        self.store
            .update(info, ns, name(current), next, Part::Status, &opts(manager))
            .await
            .map(|_| ())
    }

    async fn patch(
        &self,
        info: &ResourceInfo,
        ns: &str,
        n: &str,
        body: Value,
        part: Part,
        manager: &str,
    ) -> Result<(), Failure> {
        let ns = if info.namespaced { Some(ns) } else { None };
        self.store
            .patch(info, ns, n, PatchType::Merge, &body, part, &opts(manager))
            .await
            .map(|_| ())
    }

    /// Creates `object`, and indexes it under its owner at once (its watch
    /// event may come after the owner's next reconcile).
    async fn create(
        &mut self,
        info: &ResourceInfo,
        ns: &str,
        object: Value,
    ) -> Result<(), Failure> {
        let ns = if info.namespaced { Some(ns) } else { None };
        match self
            .store
            .create(info, ns, object, &opts("kube-controller-manager"))
            .await
        {
            Ok(created) => {
                self.owners
                    .record(&info.key(ns, name(&created)), Some(&created));
                Ok(())
            }
            Err(e) if e.reason == "AlreadyExists" => Ok(()),
            Err(e) => Err(e),
        }
    }

    async fn delete(&self, info: &ResourceInfo, ns: &str, n: &str) -> Result<(), Failure> {
        let ns = if info.namespaced { Some(ns) } else { None };
        match self
            .store
            .delete(info, ns, n, &DeleteOptions::default())
            .await
        {
            Ok(_) => Ok(()),
            Err(e) if e.code == 404 => Ok(()),
            Err(e) => Err(e),
        }
    }

    async fn deployment(&mut self, ns: &str, n: &str) -> Result<(), Failure> {
        let Some(d) = self.get(&self.infos.deployments, ns, n) else {
            return Ok(());
        };
        if object::deleting(&d) {
            return Ok(());
        }
        let snapshot = self.store.storage.snapshot();
        let owned = self.owners.owned(
            &snapshot,
            &self.infos.replicasets.prefix(Some(ns)),
            "Deployment",
            &d,
        );
        let refs: Vec<&Value> = owned.iter().map(|v| v.as_ref()).collect();
        let plan = workload::plan_deployment(&d, &refs);
        let rs_info = self.infos.replicasets.clone();
        for action in plan.actions {
            match action {
                workload::RsAction::Create(rs) => self.create(&rs_info, ns, rs).await?,
                workload::RsAction::Scale {
                    name: rs,
                    replicas,
                    annotations,
                } => {
                    let body = json!({"metadata": {"annotations": annotations}, "spec": {"replicas": replicas}});
                    self.patch(
                        &rs_info,
                        ns,
                        &rs,
                        body,
                        Part::Main,
                        "kube-controller-manager",
                    )
                    .await?;
                }
                workload::RsAction::Delete(rs) => self.delete(&rs_info, ns, &rs).await?,
            }
        }
        if let Some(rev) = plan.revision
            && str_at(
                &d,
                "/metadata/annotations/deployment.kubernetes.io~1revision",
            ) != rev
        {
            let body =
                json!({"metadata": {"annotations": {"deployment.kubernetes.io/revision": rev}}});
            self.patch(
                &self.infos.deployments,
                ns,
                n,
                body,
                Part::Main,
                "kube-controller-manager",
            )
            .await?;
        }
        let d = self.get(&self.infos.deployments, ns, n).unwrap_or(d);
        self.write_status(
            &self.infos.deployments,
            &d,
            plan.status,
            "kube-controller-manager",
        )
        .await
    }

    async fn replica_set(&mut self, ns: &str, n: &str) -> Result<(), Failure> {
        let Some(rs) = self.get(&self.infos.replicasets, ns, n) else {
            return Ok(());
        };
        if object::deleting(&rs) {
            return Ok(());
        }
        let snapshot = self.store.storage.snapshot();
        let pods = self.owned_pods(&snapshot, ns, "ReplicaSet", &rs);
        let refs: Vec<&Value> = pods.iter().map(|v| v.as_ref()).collect();
        let plan = workload::plan_replica_set(&rs, &refs, jiff::Timestamp::now());
        let pods_info = self.infos.pods.clone();
        for _ in 0..plan.create.min(500) {
            let pod = workload::pod_from_template(
                rs.pointer("/spec/template").unwrap_or(&Value::Null),
                ns,
                object::controller_ref("apps/v1", "ReplicaSet", &rs),
                &[],
                None,
                &format!("{n}-"),
            );
            self.create(&pods_info, ns, pod).await?;
        }
        for p in &plan.delete {
            self.delete(&pods_info, ns, p).await?;
        }
        if let Some(s) = plan.recheck_seconds {
            self.later(
                Duration::from_secs(s as u64),
                Work::ReplicaSet(ns.into(), n.into()),
            );
        }
        self.write_status(
            &self.infos.replicasets,
            &rs,
            plan.status,
            "kube-controller-manager",
        )
        .await
    }

    async fn stateful_set(&mut self, ns: &str, n: &str) -> Result<(), Failure> {
        let Some(sts) = self.get(&self.infos.statefulsets, ns, n) else {
            return Ok(());
        };
        if object::deleting(&sts) {
            return Ok(());
        }
        let snapshot = self.store.storage.snapshot();
        let pods = self.owned_pods(&snapshot, ns, "StatefulSet", &sts);
        let refs: Vec<&Value> = pods.iter().map(|v| v.as_ref()).collect();
        let plan = workload::plan_stateful_set(&sts, &refs);
        let owner_info = self.infos.statefulsets.clone();
        self.apply_pod_plan(
            &owner_info,
            &sts,
            ns,
            plan.create,
            &plan.delete,
            plan.status,
        )
        .await
    }

    async fn daemon_set(&mut self, ns: &str, n: &str) -> Result<(), Failure> {
        let Some(ds) = self.get(&self.infos.daemonsets, ns, n) else {
            return Ok(());
        };
        if object::deleting(&ds) {
            return Ok(());
        }
        let snapshot = self.store.storage.snapshot();
        let pods = self.owned_pods(&snapshot, ns, "DaemonSet", &ds);
        let refs: Vec<&Value> = pods.iter().map(|v| v.as_ref()).collect();
        let nodes: Vec<Value> = snapshot
            .range(&self.infos.nodes.prefix(None), None)
            .map(|kv| Arc::unwrap_or_clone(kv.value()))
            .collect();
        let plan = workload::plan_daemon_set(&ds, &refs, &nodes);
        let owner_info = self.infos.daemonsets.clone();
        self.apply_pod_plan(&owner_info, &ds, ns, plan.create, &plan.delete, plan.status)
            .await
    }

    async fn job(&mut self, ns: &str, n: &str) -> Result<(), Failure> {
        let Some(job) = self.get(&self.infos.jobs, ns, n) else {
            return Ok(());
        };
        if object::deleting(&job) {
            return Ok(());
        }
        let snapshot = self.store.storage.snapshot();
        let pods = self.owned_pods(&snapshot, ns, "Job", &job);
        let refs: Vec<&Value> = pods.iter().map(|v| v.as_ref()).collect();
        let plan = workload::plan_job(&job, &refs);
        let owner_info = self.infos.jobs.clone();
        self.apply_pod_plan(
            &owner_info,
            &job,
            ns,
            plan.create,
            &plan.delete,
            plan.status,
        )
        .await
    }

    /// Creates and deletes an owner's pods as its plan says, then records the
    /// owner's new status.
    async fn apply_pod_plan(
        &mut self,
        owner_info: &ResourceInfo,
        owner: &Value,
        ns: &str,
        create: Vec<Value>,
        delete: &[String],
        status: Value,
    ) -> Result<(), Failure> {
        let pods_info = self.infos.pods.clone();
        for pod in create {
            self.create(&pods_info, ns, pod).await?;
        }
        for p in delete {
            self.delete(&pods_info, ns, p).await?;
        }
        self.write_status(owner_info, owner, status, "kube-controller-manager")
            .await
    }

    /// Binds every pending pod that fits somewhere; marks the others unschedulable.
    async fn schedule(&mut self) -> Result<(), Failure> {
        let snapshot = self.store.storage.snapshot();
        let mut nodes: Vec<NodeView> = snapshot
            .range(&self.infos.nodes.prefix(None), None)
            .filter(|kv| !object::deleting(kv.kept()))
            .map(|kv| NodeView::from_node(kv.kept()))
            .collect();
        let mut pending = Vec::new();
        for kv in snapshot.range(&self.infos.pods.prefix(None), None) {
            let pod = kv.kept();
            if object::pod_terminal(pod) || object::deleting(pod) {
                continue;
            }
            let node = str_at(pod, "/spec/nodeName");
            if node.is_empty() {
                let scheduler = str_at(pod, "/spec/schedulerName");
                if scheduler.is_empty() || scheduler == "default-scheduler" {
                    pending.push(kv.value());
                }
            } else if let Some(n) = nodes.iter_mut().find(|n| n.name == node) {
                n.requested.add(&schedule::pod_requests(pod));
            }
        }
        pending.sort_by(|a, b| {
            (str_at(a, "/metadata/creationTimestamp"), name(a))
                .cmp(&(str_at(b, "/metadata/creationTimestamp"), name(b)))
        });
        let mut first_error = None;
        for pod in pending {
            let ns = object::namespace(&pod).to_string();
            let n = name(&pod).to_string();
            match schedule::schedule(&pod, &nodes) {
                Ok(i) => {
                    let body = json!({
                        "metadata": {"resourceVersion": str_at(&pod, "/metadata/resourceVersion")},
                        "spec": {"nodeName": nodes[i].name},
                    });
                    match self
                        .patch(
                            &self.infos.pods,
                            &ns,
                            &n,
                            body,
                            Part::Main,
                            "kube-scheduler",
                        )
                        .await
                    {
                        Ok(()) => nodes[i].requested.add(&schedule::pod_requests(&pod)),
                        Err(e) if e.code == 404 || e.code == 409 => {}
                        Err(e) => {
                            first_error.get_or_insert(e);
                        }
                    }
                }
                Err(why) => {
                    let already = object::conditions(&pod).iter().any(|c| {
                        str_at(c, "/type") == "PodScheduled"
                            && str_at(c, "/status") == "False"
                            && str_at(c, "/message") == why.message
                    });
                    if !already {
                        let status = kubelet::unschedulable_status(&pod, &why.message);
                        if let Err(e) = self
                            .write_status(&self.infos.pods, &pod, status, "kube-scheduler")
                            .await
                            && e.code != 404
                        {
                            first_error.get_or_insert(e);
                        }
                    }
                }
            }
        }
        match first_error {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }

    /// The kubelet: starts bound pods after the configured delay and finishes Job pods.
    async fn pod(&mut self, ns: &str, n: &str) -> Result<(), Failure> {
        let Some(pod) = self.get(&self.infos.pods, ns, n) else {
            return Ok(());
        };
        let key = self.infos.pods.key(Some(ns), n);
        let node_name = str_at(&pod, "/spec/nodeName").to_string();
        if node_name.is_empty() || object::deleting(&pod) || object::pod_terminal(&pod) {
            return Ok(());
        }
        let Some(node) = self.get(&self.infos.nodes, "", &node_name) else {
            return Ok(());
        };
        let phase = str_at(&pod, "/status/phase").to_string();
        let now = Instant::now();
        match phase.as_str() {
            "Pending" | "" => {
                let (lo, hi) = self.settings.ready_delay;
                let deadline = *self.deadlines.entry(key.clone()).or_insert_with(|| {
                    let delay = if hi > lo {
                        rand::random_range(lo..=hi)
                    } else {
                        lo
                    };
                    now + delay
                });
                if deadline > now {
                    self.later(deadline - now, Work::Pod(ns.into(), n.into()));
                    return Ok(());
                }
                let host_ip = node
                    .pointer("/status/addresses")
                    .and_then(Value::as_array)
                    .and_then(|a| a.iter().find(|x| str_at(x, "/type") == "InternalIP"))
                    .map(|x| str_at(x, "/address").to_string())
                    .unwrap_or_default();
                let pod_ip = if pod.pointer("/spec/hostNetwork") == Some(&Value::Bool(true)) {
                    host_ip.clone()
                } else {
                    let snapshot = self.store.storage.snapshot();
                    let used: HashSet<String> = snapshot
                        .range(&self.infos.pods.prefix(None), None)
                        .filter(|kv| {
                            str_at(kv.kept(), "/spec/nodeName") == node_name
                                && !object::pod_terminal(kv.kept())
                        })
                        .map(|kv| str_at(kv.kept(), "/status/podIP").to_string())
                        .collect();
                    kubelet::allocate_pod_ip(str_at(&node, "/spec/podCIDR"), &used)
                        .unwrap_or_default()
                };
                self.deadlines.remove(&key);
                let status = kubelet::running_status(&pod, &host_ip, &pod_ip);
                self.write_status(&self.infos.pods, &pod, status, "kubelet")
                    .await
            }
            "Running" if controller_uid(&pod, "Job").is_some() => {
                let duration = self.settings.job_duration;
                let deadline = *self.deadlines.entry(key.clone()).or_insert(now + duration);
                if deadline > now {
                    self.later(deadline - now, Work::Pod(ns.into(), n.into()));
                    return Ok(());
                }
                self.deadlines.remove(&key);
                let status = kubelet::succeeded_status(&pod);
                self.write_status(&self.infos.pods, &pod, status, "kubelet")
                    .await
            }
            _ => Ok(()),
        }
    }

    /// Keeps a Service's Endpoints and EndpointSlices current.
    async fn service(&mut self, ns: &str, n: &str) -> Result<(), Failure> {
        let snapshot = self.store.storage.snapshot();
        let service = self.get(&self.infos.services, ns, n);
        let slices_info = self.infos.slices.clone();
        let existing: Vec<Arc<Value>> = snapshot
            .range(&slices_info.prefix(Some(ns)), None)
            .filter(|kv| {
                str_at(kv.kept(), "/metadata/labels/kubernetes.io~1service-name") == n
                    && str_at(
                        kv.kept(),
                        "/metadata/labels/endpointslice.kubernetes.io~1managed-by",
                    ) == endpoints::CONTROLLER
            })
            .map(|kv| kv.value())
            .collect();
        let ep_info = self.infos.endpoints.clone();
        let Some(service) = service.filter(|s| endpoints::managed(s) && !object::deleting(s))
        else {
            for s in &existing {
                self.delete(&slices_info, ns, name(s)).await?;
            }
            if self.get(&ep_info, ns, n).is_some()
                && self.get(&self.infos.services, ns, n).is_none()
            {
                self.delete(&ep_info, ns, n).await?;
            }
            return Ok(());
        };
        let pods: Vec<Arc<Value>> = snapshot
            .range(&self.infos.pods.prefix(Some(ns)), None)
            .map(|kv| kv.value())
            .collect();
        let refs: Vec<&Value> = pods.iter().map(|v| v.as_ref()).collect();
        let zones: BTreeMap<String, String> = snapshot
            .range(&self.infos.nodes.prefix(None), None)
            .filter_map(|kv| {
                let z = str_at(kv.kept(), "/metadata/labels/topology.kubernetes.io~1zone");
                (!z.is_empty()).then(|| (name(kv.kept()).to_string(), z.to_string()))
            })
            .collect();
        // Endpoints.
        let desired = endpoints::endpoints(&service, &refs);
        match self.get(&ep_info, ns, n) {
            None => self.create(&ep_info, ns, desired).await?,
            Some(current) => {
                if current.get("subsets") != desired.get("subsets")
                    || object::labels(&current) != object::labels(&desired)
                {
                    let mut next = (*current).clone();
                    next["metadata"]["labels"] = desired["metadata"]["labels"].clone();
                    match desired.get("subsets") {
                        Some(s) => next["subsets"] = s.clone(),
                        None => {
                            if let Some(m) = next.as_object_mut() {
                                m.remove("subsets");
                            }
                        }
                    }
                    self.store
                        .update(
                            &ep_info,
                            Some(ns),
                            n,
                            next,
                            Part::Main,
                            &opts("kube-controller-manager"),
                        )
                        .await?;
                }
            }
        }
        // EndpointSlices: reuse existing ones in name order, create or delete the rest.
        let desired = endpoints::endpoint_slices(&service, &refs, &zones);
        let mut existing = existing;
        existing.sort_by(|a, b| name(a).cmp(name(b)));
        for (i, want) in desired.into_iter().enumerate() {
            match existing.get(i) {
                Some(have) if endpoints::slice_matches(have, &want) => {}
                Some(have) => {
                    let mut next = (**have).clone();
                    next["metadata"]["labels"] = want["metadata"]["labels"].clone();
                    next["endpoints"] = want["endpoints"].clone();
                    next["ports"] = want["ports"].clone();
                    self.store
                        .update(
                            &slices_info,
                            Some(ns),
                            name(have),
                            next,
                            Part::Main,
                            &opts("endpointslice-controller"),
                        )
                        .await?;
                }
                None => self.create(&slices_info, ns, want).await?,
            }
        }
        let keep = endpoints::endpoint_slices(&service, &refs, &zones).len();
        for extra in existing.iter().skip(keep) {
            self.delete(&slices_info, ns, name(extra)).await?;
        }
        Ok(())
    }

    /// A pod's controlling owners, nearest first (ReplicaSet, then its
    /// Deployment; or the StatefulSet, DaemonSet or Job).
    fn owner_chain(&self, snapshot: &Snapshot, pod: &Value) -> Vec<Arc<Value>> {
        let ns = object::namespace(pod);
        // the stored objects are shared, never copied: this runs for every
        // pod on every metrics pass
        let mut out: Vec<Arc<Value>> = Vec::new();
        for _ in 0..2 {
            let current: &Value = out.last().map_or(pod, |o| o.as_ref());
            let Some(owner) = current
                .pointer("/metadata/ownerReferences")
                .and_then(Value::as_array)
                .and_then(|refs| {
                    refs.iter()
                        .find(|r| r.get("controller") == Some(&Value::Bool(true)))
                })
            else {
                break;
            };
            let info = match str_at(owner, "/kind") {
                "ReplicaSet" => &self.infos.replicasets,
                "Deployment" => &self.infos.deployments,
                "StatefulSet" => &self.infos.statefulsets,
                "DaemonSet" => &self.infos.daemonsets,
                "Job" => &self.infos.jobs,
                _ => break,
            };
            let key = info.key(Some(ns), str_at(owner, "/name"));
            let Some(kv) = snapshot.get(&key) else {
                break;
            };
            out.push(kv.value());
        }
        out
    }

    /// One sync of a HorizontalPodAutoscaler, then the next in
    /// `hpa_sync_period`.
    async fn autoscaler(&mut self, ns: &str, n: &str) -> Result<(), Failure> {
        let key = (ns.to_string(), n.to_string());
        let Some(h) = self.get(&self.infos.hpas, ns, n) else {
            self.histories.remove(&key);
            self.hpa_next_sync.remove(&key);
            return Ok(());
        };
        if object::deleting(&h) {
            self.histories.remove(&key);
            self.hpa_next_sync.remove(&key);
            return Ok(());
        }
        // one timer per HPA: a sync woken by a watch event does not start another
        let now_instant = Instant::now();
        if self
            .hpa_next_sync
            .get(&key)
            .is_none_or(|due| *due <= now_instant)
        {
            self.hpa_next_sync
                .insert(key.clone(), now_instant + self.settings.hpa_sync_period);
            self.later(
                self.settings.hpa_sync_period,
                Work::Autoscaler(key.0.clone(), key.1.clone()),
            );
        }
        let api_version = str_at(&h, "/spec/scaleTargetRef/apiVersion");
        let kind = str_at(&h, "/spec/scaleTargetRef/kind");
        let Some(info) = autoscaler::target_resource(api_version, kind).map(|r| match r {
            "deployments" => self.infos.deployments.clone(),
            "statefulsets" => self.infos.statefulsets.clone(),
            _ => self.infos.replicasets.clone(),
        }) else {
            return Ok(());
        };
        let Some(target) = self.get(&info, ns, str_at(&h, "/spec/scaleTargetRef/name")) else {
            return Ok(());
        };
        let snapshot = self.store.storage.snapshot();
        let pm_info = self
            .store
            .catalog
            .get(metrics::GROUP, metrics::VERSION, "pods");
        let selector = target.pointer("/spec/selector");
        let pods: Vec<Arc<Value>> = snapshot
            .range(&self.infos.pods.prefix(Some(ns)), None)
            .filter(|kv| object::selector_matches(selector, &object::labels(kv.kept())))
            .map(|kv| kv.value())
            .collect();
        let pod_metrics: Vec<Option<Arc<Value>>> = pods
            .iter()
            .map(|p| {
                let info = pm_info.as_ref()?;
                snapshot
                    .get(&info.key(Some(ns), name(p)))
                    .map(|kv| kv.value())
            })
            .collect();
        let pairs: Vec<(&Value, Option<&Value>)> = pods
            .iter()
            .zip(&pod_metrics)
            .map(|(p, m)| (p.as_ref(), m.as_deref()))
            .collect();
        let now = jiff::Timestamp::now();
        let history = self.histories.entry(key).or_default();
        let Ok(mut outcome) = autoscaler::sync(&h, &target, &pairs, history, now) else {
            return Ok(());
        };
        let old_conditions: Vec<_> = h
            .pointer("/status/conditions")
            .cloned()
            .and_then(|c| serde_json::from_value(c).ok())
            .unwrap_or_default();
        if let Some(replicas) = outcome.scale_to {
            let scaled = self
                .patch(
                    &info,
                    ns,
                    name(&target),
                    json!({"spec": {"replicas": replicas}}),
                    Part::Main,
                    "horizontal-pod-autoscaler",
                )
                .await;
            let error = scaled.as_ref().err().map(|e| e.message.clone());
            autoscaler::finish(&mut outcome, &old_conditions, error.as_deref(), now);
        }
        let status = serde_json::to_value(&outcome.status).unwrap_or_default();
        let h = self.get(&self.infos.hpas, ns, n).unwrap_or(h);
        self.write_status(&self.infos.hpas, &h, status, "horizontal-pod-autoscaler")
            .await
    }

    /// Keeps PodMetrics and NodeMetrics current.
    async fn metrics(&mut self) -> Result<(), Failure> {
        let Some(pm_info) = self
            .store
            .catalog
            .get(metrics::GROUP, metrics::VERSION, "pods")
        else {
            return Ok(());
        };
        let Some(nm_info) = self
            .store
            .catalog
            .get(metrics::GROUP, metrics::VERSION, "nodes")
        else {
            return Ok(());
        };
        let snapshot = self.store.storage.snapshot();
        let table = self.usage.read().map(|t| t.clone()).unwrap_or_default();
        let mut per_node: HashMap<String, Usage> = HashMap::new();
        let mut wanted: HashMap<String, Value> = HashMap::new();
        for kv in snapshot.range(&self.infos.pods.prefix(None), None) {
            let pod = kv.kept();
            if str_at(pod, "/status/phase") != "Running" || object::deleting(pod) {
                continue;
            }
            let usage = if table
                .pods
                .contains_key(&(object::namespace(pod).to_string(), name(pod).to_string()))
            {
                table.for_pod(pod)
            } else {
                let owners = self.owner_chain(&snapshot, pod);
                let mut annotated: Vec<&Value> = vec![pod];
                annotated.extend(owners.iter().map(|o| o.as_ref()));
                metrics::annotated_usage(&annotated, table.for_pod(pod))
            };
            let node = per_node
                .entry(str_at(pod, "/spec/nodeName").to_string())
                .or_default();
            node.cpu_millis += usage.cpu_millis;
            node.memory_bytes += usage.memory_bytes;
            wanted.insert(
                pm_info.key(Some(object::namespace(pod)), name(pod)),
                metrics::pod_metrics(pod, usage),
            );
        }
        for kv in snapshot.range(&self.infos.nodes.prefix(None), None) {
            let mut usage = per_node.get(name(kv.kept())).copied().unwrap_or_default();
            usage.cpu_millis += table.node_base.cpu_millis;
            usage.memory_bytes += table.node_base.memory_bytes;
            wanted.insert(
                nm_info.key(None, name(kv.kept())),
                metrics::node_metrics(kv.kept(), usage),
            );
        }
        let mut first_error = None;
        let mut record = |r: Result<(), Failure>| {
            if let Err(e) = r {
                first_error.get_or_insert(e);
            }
        };
        for info in [&pm_info, &nm_info] {
            for kv in snapshot.range(&info.prefix(None), None) {
                if !wanted.contains_key(kv.key.as_ref()) {
                    let ns = object::namespace(kv.kept()).to_string();
                    record(self.delete(info, &ns, name(kv.kept())).await);
                }
            }
        }
        for (key, want) in wanted {
            let info = if key.starts_with(&pm_info.prefix(None)) {
                &pm_info
            } else {
                &nm_info
            };
            let ns = object::namespace(&want).to_string();
            match snapshot.get(&key) {
                Some(have) if metrics::same(&have.value(), &want) => {}
                Some(have) => {
                    let mut next = want.clone();
                    next["metadata"] = have.value()["metadata"].clone();
                    next["metadata"]["labels"] = want["metadata"]["labels"].clone();
                    if let Some(m) = next.get_mut("metadata").and_then(Value::as_object_mut) {
                        m.remove("resourceVersion");
                        m.remove("managedFields");
                    }
                    let ns_opt = if info.namespaced {
                        Some(ns.as_str())
                    } else {
                        None
                    };
                    record(
                        self.store
                            .update(
                                info,
                                ns_opt,
                                name(&want),
                                next,
                                Part::Main,
                                &opts("metrics-server"),
                            )
                            .await
                            .map(|_| ()),
                    );
                }
                None => record(self.create(info, &ns, want).await),
            }
        }
        match first_error {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }
}
