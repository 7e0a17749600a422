//! The execution controller (`execution`): applies each Work's manifests to
//! its member cluster (Push clusters; the agent does it for Pull clusters)
//! through [`crate::objectwatcher`], and reports the `Applied` and
//! `Dispatching` conditions, as Karmada's `pkg/controllers/execution`.
//!
//! A Work with `suspendDispatching` is left alone (`Dispatching=False`). A
//! Work being deleted has its member objects deleted (only those carrying
//! `karmada.io/managed: "true"`), or kept and stripped of Karmada's labels
//! with `preserveResourcesOnDeletion`; its finalizer is removed after. While
//! the cluster is not Ready, applying and deleting wait (a cluster that is
//! gone or being deleted releases its Works at once).
//!
//! Only changes of a Work's spec, finalizers or deletion wake this
//! controller; status writes by the work-status controller do not.

use std::collections::HashMap;
use std::hash::{Hash, Hasher};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use flotilla_api::cluster::Cluster;
use flotilla_api::names::cluster_of_execution_space;
use flotilla_api::work::{CONDITION_APPLIED, EXECUTION_CONTROLLER_FINALIZER, Work};
use futures::StreamExt;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use kube::api::{Patch, PatchParams};
use kube::runtime::controller::{Action, Controller};
use kube::runtime::reflector::{ObjectRef, Store};
use kube::{Api, ResourceExt};
use serde_json::json;

use crate::cluster::reconcile::ready_condition;
use crate::objectwatcher::{self, ApplyError};
use crate::propagation::{
    Resolver, Served, cache_ready, cluster_connection_hash, condition, is_not_found, set_condition,
    set_finalizer, watch_shared, works_of_cluster,
};
use crate::workqueue::RunQueued;
use crate::{Context, ControllerFuture, Error, Result};

/// The `Dispatching` condition type.
pub const CONDITION_DISPATCHING: &str = "Dispatching";

/// Starts the execution controller (the `execution` entry of [`crate::controllers`]).
pub fn start(ctx: Context) -> ControllerFuture {
    Box::pin(run(ctx, Served::Push))
}

pub(crate) struct ExecCtx {
    pub ctx: Context,
    pub clusters: Store<Cluster>,
    pub resolver: Resolver,
    pub served: Served,
    /// The conditions this controller last wrote per Work (`namespace/name`):
    /// the cache may not have seen its own last write yet, and comparing with
    /// a stale copy would skip turning `Applied` back to True after a failure.
    pub written: Mutex<HashMap<String, Vec<Condition>>>,
}

/// What of a Work the execution controller acts on.
fn work_spec_hash(w: &Work) -> Option<u64> {
    let mut h = std::collections::hash_map::DefaultHasher::new();
    w.spec.hash_text(&mut h);
    w.finalizers().hash(&mut h);
    w.metadata.deletion_timestamp.is_some().hash(&mut h);
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
    let (works, work_stream) = watch_shared(&ctx, served.works(cp), work_spec_hash);
    let cached = works.clone();
    let wq = crate::workqueue::Queue::new("execution");
    Controller::for_shared_stream(wq.shared_objects(work_stream), works)
        .watches_shared_stream(
            cluster_changes,
            wq.mapper(move |c: Arc<Cluster>| works_of_cluster(&cached, c.name())),
        )
        .run_queued(
            &wq,
            reconcile,
            error_policy,
            Arc::new(ExecCtx {
                ctx,
                clusters,
                resolver: Resolver::default(),
                served,
                written: Mutex::new(HashMap::new()),
            }),
        )
        .for_each(|r| async move {
            if let Err(e) = r {
                tracing::debug!(error = %e, "execution controller");
            }
        })
        .await;
    Ok(())
}

fn error_policy(w: Arc<Work>, err: &Error, _ctx: Arc<ExecCtx>) -> Action {
    tracing::warn!(work = %w.name_any(), namespace = ?w.namespace(), error = %err, "execution failed, retrying");
    Action::requeue(Duration::from_millis(500))
}

/// The cluster a Work is for, if this controller serves it.
pub(crate) enum Target {
    /// Not a Work of an execution namespace, or of a cluster served elsewhere.
    NotOurs,
    /// The Cluster object does not exist (any more).
    Gone,
    /// The cluster.
    Cluster(Arc<Cluster>),
}

pub(crate) fn target(clusters: &Store<Cluster>, served: &Served, w: &Work) -> Target {
    let Some(name) = w
        .namespace()
        .as_deref()
        .and_then(cluster_of_execution_space)
        .map(str::to_string)
    else {
        return Target::NotOurs;
    };
    match clusters.get(&ObjectRef::new(&name)) {
        None => Target::Gone,
        Some(c) if !served.serves(&c) => Target::NotOurs,
        Some(c) => Target::Cluster(c),
    }
}

pub(crate) fn is_ready(c: &Cluster) -> bool {
    ready_condition(c).is_some_and(|r| r.status == "True")
}

#[tracing::instrument(skip_all, fields(work = %w.name_any(), namespace = ?w.namespace()))]
async fn reconcile(w: Arc<Work>, ectx: Arc<ExecCtx>) -> Result<Action> {
    if !cache_ready(&ectx.clusters).await {
        return Ok(Action::requeue(Duration::from_millis(200)));
    }
    let cp = ectx.ctx.control_plane.clone();
    let api: Api<Work> = Api::namespaced(cp, &w.namespace().unwrap_or_default());
    let found = target(&ectx.clusters, &ectx.served, &w);
    tracing::debug!(
        target = match &found {
            Target::NotOurs => "not ours",
            Target::Gone => "cluster gone",
            Target::Cluster(c) if is_ready(c) => "ready cluster",
            Target::Cluster(_) => "cluster not ready",
        },
        "reconciling work"
    );
    let cluster = match found {
        Target::NotOurs => return Ok(Action::await_change()),
        Target::Gone => {
            if w.metadata.deletion_timestamp.is_some() {
                return remove_finalizer(&api, &w).await;
            }
            // the Cluster may not be registered yet; its arrival wakes us too
            return Ok(Action::requeue(Duration::from_secs(5)));
        }
        Target::Cluster(c) => c,
    };
    let has_finalizer = w
        .finalizers()
        .iter()
        .any(|f| f == EXECUTION_CONTROLLER_FINALIZER);
    if w.metadata.deletion_timestamp.is_some() {
        forget(&ectx, &w);
        if !has_finalizer {
            return Ok(Action::await_change());
        }
        if cluster.metadata.deletion_timestamp.is_none() {
            if !is_ready(&cluster) {
                return Ok(Action::requeue(Duration::from_secs(2)));
            }
            let member = ectx.served.member(&ectx.ctx, &cluster).await?;
            let preserve = w.spec.preserve_resources_on_deletion.unwrap_or(false);
            for manifest in &w.spec.workload.manifests {
                let manifest = manifest.value();
                objectwatcher::remove(&member, &ectx.resolver, cluster.name(), &manifest, preserve)
                    .await
                    .map_err(apply_error)?;
            }
        }
        return remove_finalizer(&api, &w).await;
    }
    if !has_finalizer {
        return set_finalizer(&api, &*w, EXECUTION_CONTROLLER_FINALIZER, true).await;
    }
    let mut conditions = w
        .status
        .as_ref()
        .map(|s| s.conditions.clone())
        .unwrap_or_default();
    if w.spec.suspend_dispatching.unwrap_or(false) {
        set_condition(
            &mut conditions,
            condition(
                CONDITION_DISPATCHING,
                false,
                "SuspendDispatching",
                "Work dispatching is in a suspended state.",
                None,
            ),
        );
        write_conditions(&ectx, &api, &w, conditions).await?;
        return Ok(Action::await_change());
    }
    if !is_ready(&cluster) {
        return Ok(Action::requeue(Duration::from_secs(2)));
    }
    set_condition(
        &mut conditions,
        condition(
            CONDITION_DISPATCHING,
            true,
            "Dispatching",
            "Work is being dispatched to member clusters.",
            None,
        ),
    );
    let member = ectx.served.member(&ectx.ctx, &cluster).await?;
    tracing::debug!(endpoint = %cluster.spec.api_endpoint, "applying");
    let total = w.spec.workload.manifests.len();
    let syncing = std::time::Instant::now();
    let mut errors = Vec::new();
    for manifest in &w.spec.workload.manifests {
        let manifest = manifest.value();
        if let Err(e) =
            objectwatcher::apply(&member, &ectx.resolver, cluster.name(), &manifest).await
        {
            errors.push(e.to_string());
        }
    }
    let applied = if errors.is_empty() {
        condition(
            CONDITION_APPLIED,
            true,
            "AppliedSuccessful",
            "Manifest has been successfully applied",
            None,
        )
    } else {
        condition(
            CONDITION_APPLIED,
            false,
            "AppliedFailed",
            &format!(
                "Failed to apply all manifests ({}/{total}): {}",
                total - errors.len(),
                errors.join(", ")
            ),
            None,
        )
    };
    SYNC_DURATION
        .with_label_values(&[crate::metrics::result(errors.is_empty())])
        .observe(syncing.elapsed().as_secs_f64());
    set_condition(&mut conditions, applied);
    write_conditions(&ectx, &api, &w, conditions).await?;
    if errors.is_empty() {
        Ok(Action::await_change())
    } else {
        // e.g. the namespace is not in the member yet, or a conflict: retry
        tracing::info!(errors = ?errors, "work not fully applied");
        Ok(Action::requeue(Duration::from_millis(500)))
    }
}

/// Karmada's `work_sync_workload_duration_seconds{result}`.
static SYNC_DURATION: std::sync::LazyLock<prometheus::HistogramVec> =
    std::sync::LazyLock::new(|| {
        crate::metrics::histogram_vec(
            "work_sync_workload_duration_seconds",
            "Duration in seconds to sync the workload of a Work to its member cluster, by result.",
            &["result"],
            crate::metrics::LATENCY_BUCKETS,
        )
    });

fn apply_error(e: ApplyError) -> Error {
    match e {
        ApplyError::Kube(k) => Error::Kube(k),
        other => Error::InvalidConfig(other.to_string()),
    }
}

async fn write_conditions(
    ectx: &ExecCtx,
    api: &Api<Work>,
    w: &Work,
    conditions: Vec<Condition>,
) -> Result<()> {
    let key = format!("{}/{}", w.namespace().unwrap_or_default(), w.name_any());
    let last = ectx
        .written
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .get(&key)
        .cloned();
    let known = last.or_else(|| w.status.as_ref().map(|s| s.conditions.clone()));
    if known.as_ref() == Some(&conditions) {
        return Ok(());
    }
    let patch = json!({"status": {"conditions": conditions}});
    match api
        .patch_status(
            &w.name_any(),
            &PatchParams::default(),
            &Patch::Merge(&patch),
        )
        .await
    {
        Ok(_) => {
            ectx.written
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .insert(key, conditions);
            Ok(())
        }
        Err(e) if is_not_found(&e) => Ok(()),
        Err(e) => Err(e.into()),
    }
}

async fn remove_finalizer(api: &Api<Work>, w: &Work) -> Result<Action> {
    set_finalizer(api, w, EXECUTION_CONTROLLER_FINALIZER, false).await
}

/// Forgets what was written for a Work that is going away.
fn forget(ectx: &ExecCtx, w: &Work) {
    let key = format!("{}/{}", w.namespace().unwrap_or_default(), w.name_any());
    ectx.written
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .remove(&key);
}
