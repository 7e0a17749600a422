//! Wiring of the cluster controller: a kube-runtime `Controller` over
//! Clusters, and the Pull-cluster monitor loop.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use flotilla_api::cluster::{CLUSTER_CONTROLLER_FINALIZER, Cluster, SYNC_MODE_PULL};
use flotilla_api::names::{NAMESPACE_KARMADA_CLUSTER, execution_space_name};
use futures::StreamExt;
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::Namespace;
use k8s_openapi::jiff::Timestamp;
use kube::api::{
    ApiResource, DeleteParams, DynamicObject, GroupVersionKind, ListParams, Patch, PatchParams,
    PostParams,
};
use kube::runtime::controller::Action;
use kube::{Api, Client, ResourceExt};
use serde_json::json;

use super::reconcile;
use crate::workqueue::RunQueued;
use crate::{Context, ControllerFuture, Error, Result};

/// Label Karmada puts on its system objects (`karmada.io/system: "true"`).
pub const LABEL_KARMADA_SYSTEM: &str = "karmada.io/system";

/// Starts the controller (the `cluster` entry of [`crate::controllers`]).
pub fn start(ctx: Context) -> ControllerFuture {
    Box::pin(run(ctx))
}

async fn run(ctx: Context) -> Result<()> {
    let api: Api<Cluster> = Api::all(ctx.control_plane.clone());
    let monitor = tokio::spawn(monitor_loop(ctx.clone()));
    // Karmada starts its NoExecute taint manager with the cluster controller
    let taint_manager = ctx.config.taint_eviction_enabled().then(|| {
        tracing::info!("failover on: starting the NoExecute taint manager");
        tokio::spawn(crate::taint_manager::start(ctx.clone()))
    });
    let wq = crate::workqueue::Queue::new("cluster");
    // over the process's shared cache of Clusters
    crate::propagation::shared_controller(&wq, &ctx, api, crate::propagation::every_change)
        .run_queued(&wq, reconcile_cluster, error_policy, Arc::new(ctx))
        .for_each(|res| async move {
            if let Err(e) = res {
                tracing::debug!(error = %e, "cluster reconcile failed");
            }
        })
        .await;
    monitor.abort();
    if let Some(t) = taint_manager {
        t.abort();
    }
    Ok(())
}

fn error_policy(cluster: Arc<Cluster>, err: &Error, _ctx: Arc<Context>) -> Action {
    tracing::warn!(cluster = %cluster.name_any(), error = %err, "cluster reconcile failed, retrying");
    Action::requeue(Duration::from_secs(1))
}

fn is_not_found(e: &kube::Error) -> bool {
    matches!(e, kube::Error::Api(s) if s.code == 404)
}

fn is_conflict(e: &kube::Error) -> bool {
    matches!(e, kube::Error::Api(s) if s.code == 409)
}

#[tracing::instrument(skip_all, fields(cluster = %cluster.name_any()))]
async fn reconcile_cluster(cluster: Arc<Cluster>, ctx: Arc<Context>) -> Result<Action> {
    let name = cluster.name_any();
    let api: Api<Cluster> = Api::all(ctx.control_plane.clone());
    if cluster.metadata.deletion_timestamp.is_some() {
        super::metrics::forget(&name);
        if !cluster
            .finalizers()
            .iter()
            .any(|f| f == CLUSTER_CONTROLLER_FINALIZER)
        {
            return Ok(Action::await_change());
        }
        return remove_cluster(&ctx.control_plane, &cluster).await;
    }
    if !cluster
        .finalizers()
        .iter()
        .any(|f| f == CLUSTER_CONTROLLER_FINALIZER)
    {
        let mut finalizers = cluster.finalizers().to_vec();
        finalizers.push(CLUSTER_CONTROLLER_FINALIZER.to_string());
        let patch = json!({"metadata": {"finalizers": finalizers, "resourceVersion": cluster.resource_version()}});
        return match api
            .patch(&name, &PatchParams::default(), &Patch::Merge(&patch))
            .await
        {
            // the change comes back through the watch
            Ok(_) => Ok(Action::await_change()),
            Err(e) if is_conflict(&e) => Ok(Action::requeue(Duration::from_millis(100))),
            Err(e) if is_not_found(&e) => Ok(Action::await_change()),
            Err(e) => Err(e.into()),
        };
    }
    super::metrics::record(&cluster);
    let requeue = ensure_execution_space(&ctx.control_plane, &name).await?;
    if let Some(taints) =
        reconcile::desired_taints(&cluster.spec.taints, reconcile::ready_condition(&cluster))
    {
        let mut updated = (*cluster).clone();
        updated.spec.taints = taints;
        updated.status = None;
        tracing::info!(cluster = %name, taints = ?updated.spec.taints.iter().map(|t| &t.key).collect::<Vec<_>>(), "updating cluster taints");
        match api.replace(&name, &PostParams::default(), &updated).await {
            Ok(_) => {}
            Err(e) if is_conflict(&e) => return Ok(Action::requeue(Duration::from_millis(100))),
            Err(e) => return Err(e.into()),
        }
    }
    Ok(requeue.unwrap_or_else(|| Action::requeue(Duration::from_secs(60))))
}

/// Creates `karmada-es-<cluster>` (labelled `karmada.io/system: "true"`);
/// asks for a retry while an old one is still terminating.
async fn ensure_execution_space(cp: &Client, cluster: &str) -> Result<Option<Action>> {
    let ns_api: Api<Namespace> = Api::all(cp.clone());
    let ns_name = execution_space_name(cluster);
    match ns_api.get_opt(&ns_name).await? {
        Some(ns) if ns.metadata.deletion_timestamp.is_some() => {
            Ok(Some(Action::requeue(Duration::from_secs(1))))
        }
        Some(_) => Ok(None),
        None => {
            let ns: Namespace = serde_json::from_value(json!({
                "metadata": {"name": ns_name, "labels": {LABEL_KARMADA_SYSTEM: "true"}}
            }))?;
            match ns_api.create(&PostParams::default(), &ns).await {
                Ok(_) => {
                    tracing::info!(cluster, namespace = %ns_name, "created execution namespace");
                    Ok(None)
                }
                Err(e) if is_conflict(&e) => Ok(None),
                Err(e) => Err(e.into()),
            }
        }
    }
}

fn work_api(cp: &Client, namespace: &str) -> Api<DynamicObject> {
    let ar = ApiResource::from_gvk_with_plural(
        &GroupVersionKind::gvk("work.karmada.io", "v1alpha1", "Work"),
        "works",
    );
    Api::namespaced_with(cp.clone(), namespace, &ar)
}

/// Karmada `removeCluster`: add the terminating NoExecute taint, strip Work finalizers when no agent will (Pull,
/// not Ready), delete the execution namespace, wait until it is gone and no
/// binding targets the cluster, then drop the finalizer.
async fn remove_cluster(cp: &Client, cluster: &Cluster) -> Result<Action> {
    let name = cluster.name_any();
    let api: Api<Cluster> = Api::all(cp.clone());
    if let Some(taints) = reconcile::terminating_taints(&cluster.spec.taints, Timestamp::now()) {
        let mut updated = cluster.clone();
        updated.spec.taints = taints;
        updated.status = None;
        match api.replace(&name, &PostParams::default(), &updated).await {
            Ok(_) => tracing::info!(cluster = %name, "added terminating taint"),
            Err(e) if is_conflict(&e) => return Ok(Action::requeue(Duration::from_millis(100))),
            Err(e) if is_not_found(&e) => return Ok(Action::await_change()),
            Err(e) => return Err(e.into()),
        }
    }
    let ns_name = execution_space_name(&name);
    let works = work_api(cp, &ns_name);
    match works.list(&ListParams::default()).await {
        Ok(list) => {
            let strip = reconcile::strip_work_finalizers(cluster);
            for w in list.items {
                let wname = w.name_any();
                if strip && !w.finalizers().is_empty() {
                    let patch = json!({"metadata": {"finalizers": null}});
                    if let Err(e) = works
                        .patch(&wname, &PatchParams::default(), &Patch::Merge(&patch))
                        .await
                        && !is_not_found(&e)
                    {
                        return Err(e.into());
                    }
                }
                if w.metadata.deletion_timestamp.is_none()
                    && let Err(e) = works.delete(&wname, &DeleteParams::default()).await
                    && !is_not_found(&e)
                {
                    return Err(e.into());
                }
            }
        }
        Err(e) if is_not_found(&e) => {}
        Err(e) => return Err(e.into()),
    }
    let ns_api: Api<Namespace> = Api::all(cp.clone());
    if let Some(ns) = ns_api.get_opt(&ns_name).await? {
        if ns.metadata.deletion_timestamp.is_none() {
            match ns_api.delete(&ns_name, &DeleteParams::default()).await {
                Ok(_) => {
                    tracing::info!(cluster = %name, namespace = %ns_name, "deleting execution namespace")
                }
                Err(e) if is_not_found(&e) => {}
                Err(e) => return Err(e.into()),
            }
        }
        return Ok(Action::requeue(Duration::from_millis(500)));
    }
    if targeted_by_bindings(cp, &name).await? {
        return Ok(Action::requeue(Duration::from_secs(2)));
    }
    let finalizers: Vec<&String> = cluster
        .finalizers()
        .iter()
        .filter(|f| *f != CLUSTER_CONTROLLER_FINALIZER)
        .collect();
    let patch = json!({"metadata": {"finalizers": finalizers, "resourceVersion": cluster.resource_version()}});
    match api
        .patch(&name, &PatchParams::default(), &Patch::Merge(&patch))
        .await
    {
        Ok(_) => {
            tracing::info!(cluster = %name, "cluster removed");
            Ok(Action::await_change())
        }
        Err(e) if is_not_found(&e) => Ok(Action::await_change()),
        Err(e) if is_conflict(&e) => Ok(Action::requeue(Duration::from_millis(100))),
        Err(e) => Err(e.into()),
    }
}

/// Whether a ResourceBinding or ClusterResourceBinding still lists the cluster
/// in `spec.clusters` (binding APIs not installed count as none).
async fn targeted_by_bindings(cp: &Client, cluster: &str) -> Result<bool> {
    for kind in ["ResourceBinding", "ClusterResourceBinding"] {
        let plural = format!("{}s", kind.to_lowercase());
        let ar = ApiResource::from_gvk_with_plural(
            &GroupVersionKind::gvk("work.karmada.io", "v1alpha2", kind),
            &plural,
        );
        let api: Api<DynamicObject> = Api::all_with(cp.clone(), &ar);
        let list = match api.list(&ListParams::default()).await {
            Ok(l) => l,
            Err(e) if is_not_found(&e) => continue,
            Err(e) => return Err(e.into()),
        };
        let hit = list.items.iter().any(|b| {
            b.data
                .pointer("/spec/clusters")
                .and_then(|c| c.as_array())
                .is_some_and(|cs| {
                    cs.iter()
                        .any(|c| c.get("name").and_then(|n| n.as_str()) == Some(cluster))
                })
        });
        if hit {
            return Ok(true);
        }
    }
    Ok(false)
}

/// Every `cluster_monitor_period`: Karmada `monitorClusterHealth` for Pull
/// clusters (Lease in `karmada-cluster` named after the cluster).
async fn monitor_loop(ctx: Context) {
    let api: Api<Cluster> = Api::all(ctx.control_plane.clone());
    let leases: Api<Lease> = Api::namespaced(ctx.control_plane.clone(), NAMESPACE_KARMADA_CLUSTER);
    let mut health: HashMap<String, reconcile::HealthData> = HashMap::new();
    let mut tick = tokio::time::interval(ctx.config.cluster_monitor_period);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let clusters = match api.list(&ListParams::default()).await {
            Ok(l) => l.items,
            Err(e) => {
                tracing::warn!(error = %e, "listing clusters failed");
                continue;
            }
        };
        health.retain(|name, _| clusters.iter().any(|c| c.name_any() == *name));
        for cluster in clusters {
            let name = cluster.name_any();
            let renew = if cluster.spec.sync_mode == SYNC_MODE_PULL {
                match leases.get_opt(&name).await {
                    Ok(l) => l
                        .and_then(|l| l.spec)
                        .and_then(|s| s.renew_time)
                        .map(|t| t.0),
                    Err(e) => {
                        tracing::warn!(cluster = %name, error = %e, "reading lease failed");
                        None
                    }
                }
            } else {
                None
            };
            let (data, update) = reconcile::monitor(
                &cluster,
                health.get(&name),
                renew,
                Timestamp::now(),
                ctx.config.cluster_monitor_grace_period,
                ctx.config.cluster_startup_grace_period,
            );
            health.insert(name.clone(), data);
            if let Some(cond) = update {
                tracing::info!(cluster = %name, reason = %cond.reason, "cluster stopped reporting, marking Ready=Unknown");
                let mut updated = cluster.clone();
                let mut status = updated.status.clone().unwrap_or_default();
                crate::cluster_status::reconcile::set_condition(&mut status.conditions, cond);
                updated.status = Some(status);
                if let Err(e) = api
                    .replace_status(&name, &PostParams::default(), &updated)
                    .await
                {
                    tracing::warn!(cluster = %name, error = %e, "writing Ready=Unknown failed");
                    health.remove(&name);
                }
            }
        }
    }
}
