//! The graceful eviction controller (`gracefulEviction`, gated by
//! `GracefulEviction`): for each binding with `spec.gracefulEvictionTasks`,
//! ends the tasks whose replacement is healthy (the scheduler has seen the
//! current generation and every cluster of `spec.clusters` reports the
//! workload healthy with its replicas ready), whose grace period
//! (`gracePeriodSeconds`, else `--graceful-eviction-timeout`) ran out, or
//! whose `suppressDeletion` the user set to false
//! ([`flotilla_api::failover::assess_eviction_tasks`]). The binding
//! controller then deletes the old cluster's Work, and the execution
//! controller the member objects once the cluster is reachable again.

use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::jiff::Timestamp;
use kube::api::{Patch, PatchParams};
use kube::runtime::controller::Action;
use kube::{Api, ResourceExt};
use serde_json::json;

use flotilla_api::failover::assess_eviction_tasks;

use crate::propagation::{BindingResource, is_conflict, is_not_found};
use crate::workqueue::RunQueued;
use crate::{Context, ControllerFuture, Error, Result};

/// Starts the controller (the `gracefulEviction` entry of [`crate::controllers`]);
/// it idles when the `GracefulEviction` gate is off.
pub fn start(ctx: Context) -> ControllerFuture {
    if !ctx
        .config
        .feature_gates
        .enabled(crate::features::GRACEFUL_EVICTION)
    {
        tracing::info!("GracefulEviction gate is off; graceful eviction controller not started");
        return Box::pin(async { Ok(()) });
    }
    crate::for_both_binding_kinds!(run, ctx)
}

async fn run<B: BindingResource>(ctx: Context) -> Result<()> {
    let cp = ctx.control_plane.clone();
    // status changes matter: the aggregated health decides
    let wq = crate::workqueue::Queue::new("gracefulEviction");
    crate::propagation::shared_controller(
        &wq,
        &ctx,
        Api::<B>::all(cp),
        crate::propagation::every_change,
    )
    .with_config(crate::propagation::status_controller_config())
    .run_queued(&wq, reconcile::<B>, error_policy::<B>, Arc::new(ctx))
    .for_each(|_| async {})
    .await;
    Ok(())
}

fn error_policy<B: BindingResource>(b: Arc<B>, err: &Error, _ctx: Arc<Context>) -> Action {
    tracing::warn!(binding = %b.name_any(), error = %err, "graceful eviction failed, retrying");
    Action::requeue(Duration::from_secs(1))
}

#[tracing::instrument(skip_all, fields(binding = %b.name_any()))]
async fn reconcile<B: BindingResource>(b: Arc<B>, ctx: Arc<Context>) -> Result<Action> {
    let spec = b.spec();
    if b.meta().deletion_timestamp.is_some() || spec.graceful_eviction_tasks.is_empty() {
        return Ok(Action::await_change());
    }
    let generation = b.meta().generation.unwrap_or_default();
    let scheduled = b
        .status()
        .is_some_and(|s| s.scheduler_observed_generation == generation);
    let assessment = assess_eviction_tasks(
        spec,
        b.status(),
        scheduled,
        ctx.config.graceful_eviction_timeout,
        Timestamp::now(),
    );
    let next = assessment
        .recheck_after
        .map_or_else(Action::await_change, |d| {
            Action::requeue(d + Duration::from_millis(100))
        });
    if assessment.done.is_empty() {
        return Ok(next);
    }
    let api = B::api(
        ctx.control_plane.clone(),
        &b.namespace().unwrap_or_default(),
    );
    let patch = json!({
        "metadata": {"resourceVersion": b.meta().resource_version},
        "spec": {"gracefulEvictionTasks": assessment.kept},
    });
    match api
        .patch(
            &b.name_any(),
            &PatchParams::default(),
            &Patch::Merge(&patch),
        )
        .await
    {
        Ok(_) => {
            let items: Vec<String> = b
                .status()
                .map(|s| {
                    s.aggregated_status
                        .iter()
                        .map(|i| format!("{}:{}:{:?}", i.cluster_name, i.health, i.status))
                        .collect()
                })
                .unwrap_or_default();
            tracing::info!(
                clusters = ?assessment.done,
                targets = ?spec.clusters.iter().map(|c| (&c.name, c.replicas)).collect::<Vec<_>>(),
                generation,
                ?items,
                "graceful eviction done"
            );
            Ok(next)
        }
        Err(e) if is_not_found(&e) => Ok(Action::await_change()),
        Err(e) if is_conflict(&e) => Ok(Action::requeue(Duration::from_millis(100))),
        Err(e) => Err(e.into()),
    }
}
