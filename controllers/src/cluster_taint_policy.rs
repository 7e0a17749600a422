//! The cluster taint policy controller (`clusterTaintPolicy`): keeps every
//! Cluster's taints in line with the ClusterTaintPolicies that target it
//! ([`flotilla_api::failover::policy_taints`]): a policy's taints are added
//! when its `addOnConditions` match the cluster's status conditions and
//! removed when its `removeOnConditions` match. Deleting a policy leaves the
//! taints it added, as in Karmada. Triggers: any Cluster change (conditions
//! included) and any policy change (every cluster is looked at again).

use std::sync::Arc;
use std::time::Duration;

use flotilla_api::cluster::Cluster;
use flotilla_api::failover::{ClusterTaintPolicy, ClusterTaintPolicySpec, policy_taints};
use futures::StreamExt;
use k8s_openapi::jiff::Timestamp;
use kube::api::PostParams;
use kube::runtime::controller::Action;
use kube::runtime::reflector::{ObjectRef, Store};
use kube::runtime::watcher;
use kube::{Api, ResourceExt};

use crate::propagation::{cache_ready, every_change, is_conflict, is_not_found, watch_cached};
use crate::workqueue::RunQueued;
use crate::{Context, ControllerFuture, Error, Result};

/// Starts the controller (the `clusterTaintPolicy` entry of [`crate::controllers`]).
pub fn start(ctx: Context) -> ControllerFuture {
    Box::pin(run(ctx))
}

struct TaintCtx {
    ctx: Context,
    policies: Store<ClusterTaintPolicy>,
}

async fn run(ctx: Context) -> Result<()> {
    let cp = ctx.control_plane.clone();
    let (policies, policy_changes) =
        watch_cached(Api::<ClusterTaintPolicy>::all(cp.clone()), every_change);
    let wq = crate::workqueue::Queue::new("clusterTaintPolicy");
    let controller = wq.controller(Api::<Cluster>::all(cp), watcher::Config::default());
    let clusters = controller.store();
    controller
        .watches_stream(
            policy_changes,
            wq.mapper(move |_: ClusterTaintPolicy| {
                clusters
                    .state()
                    .iter()
                    .map(|c| ObjectRef::from_obj(&**c))
                    .collect::<Vec<_>>()
            }),
        )
        .run_queued(
            &wq,
            reconcile,
            error_policy,
            Arc::new(TaintCtx { ctx, policies }),
        )
        .for_each(|_| async {})
        .await;
    Ok(())
}

fn error_policy(c: Arc<Cluster>, err: &Error, _ctx: Arc<TaintCtx>) -> Action {
    tracing::warn!(cluster = %c.name_any(), error = %err, "cluster taint policy failed, retrying");
    Action::requeue(Duration::from_secs(1))
}

#[tracing::instrument(skip_all, fields(cluster = %cluster.name_any()))]
async fn reconcile(cluster: Arc<Cluster>, tctx: Arc<TaintCtx>) -> Result<Action> {
    if cluster.metadata.deletion_timestamp.is_some() {
        return Ok(Action::await_change());
    }
    if !cache_ready(&tctx.policies).await {
        return Ok(Action::requeue(Duration::from_millis(200)));
    }
    let mut policies: Vec<Arc<ClusterTaintPolicy>> = tctx
        .policies
        .state()
        .into_iter()
        .filter(|p| p.metadata.deletion_timestamp.is_none())
        .collect();
    policies.sort_by_key(|p| p.name_any());
    let specs: Vec<&ClusterTaintPolicySpec> = policies.iter().map(|p| &p.spec).collect();
    let Some(taints) = policy_taints(&cluster, &specs, Timestamp::now()) else {
        return Ok(Action::await_change());
    };
    let name = cluster.name_any();
    let mut updated = (*cluster).clone();
    updated.spec.taints = taints;
    updated.status = None;
    tracing::info!(cluster = %name, taints = ?updated.spec.taints.iter().map(|t| format!("{}:{}", t.key, t.effect)).collect::<Vec<_>>(), "applying cluster taint policies");
    let api: Api<Cluster> = Api::all(tctx.ctx.control_plane.clone());
    match api.replace(&name, &PostParams::default(), &updated).await {
        Ok(_) => Ok(Action::await_change()),
        Err(e) if is_conflict(&e) => Ok(Action::requeue(Duration::from_millis(100))),
        Err(e) if is_not_found(&e) => Ok(Action::await_change()),
        Err(e) => Err(e.into()),
    }
}
