//! The work status controller (`workStatus`): watches the member objects
//! that Works put there and
//!
//! - records each one's reflected status and health in the Work's
//!   `status.manifestStatuses` ([`flotilla_api::interpreter::reflect_status`],
//!   [`flotilla_api::interpreter::healthy`]);
//! - puts it back when someone changed or deleted it by hand (drift is
//!   reverted with the same apply as the execution controller, and counted
//!   in [`drift_reverted_total`]).
//!
//! For every (cluster, kind) that some Work carries, one watch on the member,
//! limited to objects labelled `karmada.io/managed=true`, feeds a cache and
//! wakes the owning Work (named by the object's `work.karmada.io/namespace`
//! and `work.karmada.io/name` annotations), as Karmada's work status
//! controller does with its member informers.

use std::collections::HashMap;
use std::hash::{Hash, Hasher};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use flotilla_api::cluster::Cluster;
use flotilla_api::interpreter::{healthy, reflect_status};
use flotilla_api::raw::RawJson;
use flotilla_api::render::{WORK_NAME_ANNOTATION, WORK_NAMESPACE_ANNOTATION};
use flotilla_api::work::{
    CONDITION_APPLIED, MANAGED_LABEL, ManifestStatus, ResourceIdentifier, Work,
};
use futures::StreamExt;
use kube::api::{Patch, PatchParams};
use kube::runtime::controller::{Action, Controller};
use kube::runtime::reflector::{ObjectRef, Store};
use kube::runtime::{WatchStreamExt, reflector, watcher};
use kube::{Api, ResourceExt};
use serde_json::{Value, json};
use tokio::sync::mpsc;

use crate::compact::CompactObject;
use crate::execution::{Target, is_ready, target};
use crate::objectwatcher::{self, needs_update, retain};
use crate::propagation::{
    Resolver, Served, cache_ready, cluster_connection_hash, is_not_found, manifest_key,
    watch_shared, works_of_cluster,
};
use crate::workqueue::RunQueued;
use crate::{Context, ControllerFuture, Error, Result};

/// `flotilla_drift_reverted_total{member_cluster}`.
static DRIFT_REVERTED: std::sync::LazyLock<prometheus::IntCounterVec> = std::sync::LazyLock::new(
    || {
        crate::metrics::counter_vec(
            "flotilla_drift_reverted_total",
            "Member objects put back as their Work says after a hand edit or deletion, by member cluster.",
            &["member_cluster"],
        )
    },
);

/// How many member objects were put back after a hand edit or deletion,
/// since the process started.
pub fn drift_reverted_total() -> u64 {
    use prometheus::core::Collector;
    DRIFT_REVERTED
        .collect()
        .iter()
        .flat_map(|f| f.get_metric())
        .map(|m| m.get_counter().get_value() as u64)
        .sum()
}

/// Starts the controller (the `workStatus` entry of [`crate::controllers`]).
pub fn start(ctx: Context) -> ControllerFuture {
    Box::pin(run(ctx, Served::Push))
}

/// A watch of one kind in one member.
struct MemberWatch {
    /// The member's objects, kept as their JSON (parsed when looked at).
    store: Store<CompactObject>,
    task: tokio::task::JoinHandle<()>,
    /// The member endpoint it was started against.
    endpoint: String,
    /// The kind watched.
    resource: kube::api::ApiResource,
}

impl Drop for MemberWatch {
    fn drop(&mut self) {
        self.task.abort();
    }
}

type WatchKey = (String, String, String);

struct StatusCtx {
    ctx: Context,
    clusters: Store<Cluster>,
    resolver: Resolver,
    watches: Mutex<HashMap<WatchKey, Arc<MemberWatch>>>,
    wake: mpsc::UnboundedSender<ObjectRef<Work>>,
    served: Served,
}

fn work_hash(w: &Work) -> Option<u64> {
    let mut h = std::collections::hash_map::DefaultHasher::new();
    serde_json::to_string(&w.spec).ok()?.hash(&mut h);
    w.metadata.deletion_timestamp.is_some().hash(&mut h);
    // Applied flipping to True is when a missing object becomes drift
    w.status
        .as_ref()
        .and_then(|s| s.conditions.iter().find(|c| c.type_ == CONDITION_APPLIED))
        .map(|c| c.status.clone())
        .hash(&mut h);
    Some(h.finish())
}

/// Runs the controller for the Works of `served` (the agent passes its Pull
/// cluster).
pub async fn run(ctx: Context, served: Served) -> Result<()> {
    let cp = ctx.control_plane.clone();
    let (clusters, cluster_changes) = watch_shared(
        &ctx,
        Api::<Cluster>::all(cp.clone()),
        cluster_connection_hash,
    );
    let (works, work_stream) = watch_shared(&ctx, served.works(cp), work_hash);
    let (wake, woken) = mpsc::unbounded_channel();
    let woken = tokio_stream::wrappers::UnboundedReceiverStream::new(woken);
    let cached = works.clone();
    let wq = crate::workqueue::Queue::new("workStatus");
    Controller::for_shared_stream(wq.shared_objects(work_stream), works)
        .watches_shared_stream(
            cluster_changes,
            wq.mapper(move |c: Arc<Cluster>| works_of_cluster(&cached, c.name())),
        )
        .reconcile_on(wq.refs(woken))
        .with_config(crate::propagation::status_controller_config())
        .run_queued(
            &wq,
            reconcile,
            error_policy,
            Arc::new(StatusCtx {
                ctx,
                clusters,
                resolver: Resolver::default(),
                watches: Mutex::default(),
                wake,
                served,
            }),
        )
        .for_each(|_| async {})
        .await;
    Ok(())
}

/// How often an applied Work's member status is looked at again without an event.
const RESYNC_PERIOD: Duration = Duration::from_secs(20);

fn error_policy(w: Arc<Work>, err: &Error, _ctx: Arc<StatusCtx>) -> Action {
    tracing::warn!(work = %w.name_any(), error = %err, "work status failed, retrying");
    Action::requeue(Duration::from_secs(1))
}

/// The watch of `kind` in `cluster`, started on first use (and again when the
/// member's endpoint changed or the watch ended).
async fn member_watch(
    sctx: &StatusCtx,
    cluster: &Cluster,
    api_version: &str,
    kind: &str,
) -> Result<Arc<MemberWatch>> {
    let key = (
        cluster.name().to_string(),
        api_version.to_string(),
        kind.to_string(),
    );
    if let Some(w) = sctx.watches.lock().ok().and_then(|m| m.get(&key).cloned())
        && w.endpoint == cluster.spec.api_endpoint
        && !w.task.is_finished()
    {
        return Ok(w);
    }
    let member = sctx.served.member(&sctx.ctx, cluster).await?;
    let resolved = sctx
        .resolver
        .resolve(cluster.name(), &member, api_version, kind)
        .await?;
    let api: Api<CompactObject> = Api::all_with(member, &resolved.resource);
    let writer = reflector::store::Writer::new(resolved.resource.clone());
    let store = writer.as_reader();
    let wc = watcher::Config::default().labels(&format!("{MANAGED_LABEL}=true"));
    let wake = sctx.wake.clone();
    let stream = reflector(
        writer,
        watcher(api, wc).modify(|o| {
            o.trim_metadata(&[WORK_NAMESPACE_ANNOTATION, WORK_NAME_ANNOTATION]);
        }),
    )
    .default_backoff()
    .touched_objects();
    let task = tokio::spawn(async move {
        let mut stream = std::pin::pin!(stream);
        while let Some(ev) = stream.next().await {
            let Ok(obj) = ev else { continue };
            let a = obj.annotations();
            if let (Some(ns), Some(name)) = (
                a.get(WORK_NAMESPACE_ANNOTATION),
                a.get(WORK_NAME_ANNOTATION),
            ) && wake.send(ObjectRef::new(name).within(ns)).is_err()
            {
                return;
            }
        }
    });
    let w = Arc::new(MemberWatch {
        store,
        task,
        endpoint: cluster.spec.api_endpoint.clone(),
        resource: resolved.resource.clone(),
    });
    if let Ok(mut m) = sctx.watches.lock() {
        m.insert(key, w.clone());
    }
    Ok(w)
}

#[tracing::instrument(skip_all, fields(work = %w.name_any(), namespace = ?w.namespace()))]
async fn reconcile(w: Arc<Work>, sctx: Arc<StatusCtx>) -> Result<Action> {
    if !cache_ready(&sctx.clusters).await {
        return Ok(Action::requeue(Duration::from_millis(200)));
    }
    if w.metadata.deletion_timestamp.is_some() || w.spec.suspend_dispatching.unwrap_or(false) {
        return Ok(Action::await_change());
    }
    let Target::Cluster(cluster) = target(&sctx.clusters, &sctx.served, &w) else {
        return Ok(Action::await_change());
    };
    if !is_ready(&cluster) {
        return Ok(Action::requeue(Duration::from_secs(5)));
    }
    let applied = w
        .status
        .as_ref()
        .and_then(|s| s.conditions.iter().find(|c| c.type_ == CONDITION_APPLIED))
        .is_some_and(|c| c.status == "True");
    let mut statuses = Vec::new();
    let mut retry = false;
    for (ordinal, manifest) in w.spec.workload.manifests.iter().enumerate() {
        let manifest = &manifest.value();
        let (api_version, kind, namespace, name) = manifest_key(manifest);
        let watch = member_watch(&sctx, &cluster, &api_version, &kind).await?;
        // a member that does not answer must not hold the reconcile
        if !cache_ready(&watch.store).await {
            retry = true;
            continue;
        }
        let mut key = ObjectRef::new_with(&name, watch.store_dyntype());
        if !namespace.is_empty() {
            key = key.within(&namespace);
        }
        let observed = watch.store.get(&key);
        let Some(observed) = observed else {
            if applied {
                // deleted by hand: put it back
                revert(&sctx, &cluster, &w, ordinal, manifest, "deleted").await?;
            }
            continue;
        };
        let observed = observed.value()?;
        if applied && needs_update(&retain(manifest, &observed), &observed) {
            revert(&sctx, &cluster, &w, ordinal, manifest, "changed").await?;
        }
        let (group, version) = match api_version.split_once('/') {
            Some((g, v)) => (g.to_string(), v.to_string()),
            None => (String::new(), api_version.clone()),
        };
        statuses.push(ManifestStatus {
            identifier: ResourceIdentifier {
                ordinal: ordinal as i32,
                group,
                version,
                kind: kind.clone(),
                resource: watch.resource_plural(),
                namespace: namespace.clone(),
                name: name.clone(),
            },
            status: reflect_status(&observed).map(RawJson::from),
            health: if healthy(&observed) {
                "Healthy"
            } else {
                "Unhealthy"
            }
            .to_string(),
        });
    }
    let current = w
        .status
        .as_ref()
        .map(|s| s.manifest_statuses.clone())
        .unwrap_or_default();
    if current != statuses {
        let api: Api<Work> = Api::namespaced(
            sctx.ctx.control_plane.clone(),
            &w.namespace().unwrap_or_default(),
        );
        let patch = json!({"status": {"manifestStatuses": statuses}});
        match api
            .patch_status(
                &w.name_any(),
                &PatchParams::default(),
                &Patch::Merge(&patch),
            )
            .await
        {
            Ok(_) => {}
            Err(e) if is_not_found(&e) => return Ok(Action::await_change()),
            Err(e) => return Err(e.into()),
        }
    }
    Ok(if retry {
        Action::requeue(Duration::from_millis(200))
    } else {
        // a safety net, like an informer resync: after a control-plane
        // restart a member's status change was seen to go unreflected (the
        // SIGKILL rounds of tests/tests/e2e/failover.rs); look again now and then
        Action::requeue(RESYNC_PERIOD)
    })
}

async fn revert(
    sctx: &StatusCtx,
    cluster: &Cluster,
    w: &Work,
    ordinal: usize,
    manifest: &Value,
    how: &str,
) -> Result<()> {
    // the cached Work may be older than the server's: restoring from it
    // would undo a legitimate update, or bring back an object the execution
    // controller just removed for a Work being deleted
    let api: Api<Work> = Api::namespaced(
        sctx.ctx.control_plane.clone(),
        &w.namespace().unwrap_or_default(),
    );
    let fresh = api.get_opt(&w.name_any()).await?;
    let current = fresh
        .as_ref()
        .filter(|f| f.metadata.deletion_timestamp.is_none())
        .and_then(|f| f.spec.workload.manifests.get(ordinal));
    if current.is_none_or(|c| *c != *manifest) {
        return Ok(());
    }
    let member = sctx.served.member(&sctx.ctx, cluster).await?;
    let (_, kind, namespace, name) = manifest_key(manifest);
    match objectwatcher::apply(&member, &sctx.resolver, cluster.name(), manifest).await {
        Ok(objectwatcher::Applied::Unchanged) => Ok(()),
        Ok(_) => {
            DRIFT_REVERTED.with_label_values(&[cluster.name()]).inc();
            tracing::info!(
                cluster = cluster.name(),
                kind,
                namespace,
                name,
                how,
                "member object drifted; restored"
            );
            Ok(())
        }
        Err(objectwatcher::ApplyError::Kube(e)) => Err(e.into()),
        Err(e) => Err(Error::InvalidConfig(e.to_string())),
    }
}

impl MemberWatch {
    fn store_dyntype(&self) -> kube::api::ApiResource {
        self.resource.clone()
    }
    fn resource_plural(&self) -> String {
        self.resource.plural.clone()
    }
}
