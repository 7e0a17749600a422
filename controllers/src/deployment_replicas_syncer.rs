//! The deployment replicas syncer (`deploymentReplicasSyncer`): a
//! Deployment template labelled `resourcetemplate.karmada.io/retain-replicas`
//! (by the [`crate::hpa_scale_target_marker`]) has its replicas decided by
//! the members' own HPAs. Once the template's aggregated status has caught up
//! with its generation (`status.observedGeneration == metadata.generation`)
//! and its replicas are divided among clusters that all reported a status, `spec.replicas` is set to the
//! sum of the members' replicas (`status.replicas`), so the template shows
//! what runs and a later rescheduling divides the right total.

use std::sync::Arc;
use std::time::Duration;

use flotilla_api::work::ResourceBinding;
use futures::StreamExt;
use k8s_openapi::api::apps::v1::Deployment;
use kube::api::{Patch, PatchParams};
use kube::runtime::controller::Action;
use kube::runtime::watcher;
use kube::{Api, ResourceExt};
use serde_json::json;

use crate::objectwatcher::RETAIN_REPLICAS_LABEL;
use crate::propagation::{is_conflict, is_not_found};
use crate::workqueue::RunQueued;
use crate::{Context, ControllerFuture, Error, Result};

/// The controller's name in `--controllers`.
pub const NAME: &str = "deploymentReplicasSyncer";

/// Starts the controller (the `deploymentReplicasSyncer` entry of
/// [`crate::controllers`]).
pub fn start(ctx: Context) -> ControllerFuture {
    Box::pin(run(ctx))
}

async fn run(ctx: Context) -> Result<()> {
    let api = Api::<Deployment>::all(ctx.control_plane.clone());
    let config = watcher::Config::default().labels(&format!("{RETAIN_REPLICAS_LABEL}=true"));
    let wq = crate::workqueue::Queue::new(NAME);
    wq.controller(api, config)
        .run_queued(&wq, reconcile, error_policy, Arc::new(ctx))
        .for_each(|_| async {})
        .await;
    Ok(())
}

fn error_policy(d: Arc<Deployment>, err: &Error, _ctx: Arc<Context>) -> Action {
    tracing::warn!(deployment = %d.name_any(), error = %err, "syncing replicas failed, retrying");
    Action::requeue(Duration::from_secs(1))
}

/// The replicas to write into the template, if they should change: the
/// label is set, the status observed the current generation and counts
/// different replicas.
pub fn synced_replicas(d: &Deployment) -> Option<i32> {
    if d.labels().get(RETAIN_REPLICAS_LABEL).map(String::as_str) != Some("true")
        || d.metadata.deletion_timestamp.is_some()
    {
        return None;
    }
    let status = d.status.as_ref()?;
    if status.observed_generation? != d.metadata.generation? {
        return None;
    }
    let spec = d.spec.as_ref()?.replicas.unwrap_or(1);
    let observed = status.replicas.unwrap_or(0);
    // zero is what an aggregation with no member status yet says
    (observed != spec && observed > 0).then_some(observed)
}

#[tracing::instrument(skip_all, fields(deployment = %d.name_any()))]
async fn reconcile(d: Arc<Deployment>, ctx: Arc<Context>) -> Result<Action> {
    let Some(replicas) = synced_replicas(&d) else {
        return Ok(Action::await_change());
    };
    let ns = d.namespace().unwrap_or_default();
    let name = d.name_any();
    // only a divided template: duplicated replicas are not a sum
    let binding = Api::<ResourceBinding>::namespaced(ctx.control_plane.clone(), &ns)
        .get_opt(&flotilla_api::names::binding_name("Deployment", &name))
        .await?;
    let divided = binding
        .as_ref()
        .and_then(|b| b.spec.placement.as_ref())
        .and_then(|p| p.replica_scheduling.as_ref())
        .is_some_and(|r| r.replica_scheduling_type == "Divided");
    // every scheduled cluster reported a status
    let reported = binding.as_ref().is_some_and(|b| {
        let items = b
            .status
            .as_ref()
            .map(|s| s.aggregated_status.as_slice())
            .unwrap_or_default();
        b.spec.clusters.iter().all(|c| {
            items
                .iter()
                .any(|i| i.cluster_name == c.name && i.status.is_some())
        })
    });
    if !divided || !reported {
        return Ok(Action::requeue(Duration::from_secs(2)));
    }
    let patch = json!({
        "metadata": {"resourceVersion": d.metadata.resource_version},
        "spec": {"replicas": replicas},
    });
    match Api::<Deployment>::namespaced(ctx.control_plane.clone(), &ns)
        .patch(&name, &PatchParams::default(), &Patch::Merge(&patch))
        .await
    {
        Ok(_) => {
            tracing::info!(replicas, "template replicas set to the members' sum");
            Ok(Action::await_change())
        }
        Err(e) if is_not_found(&e) => Ok(Action::await_change()),
        Err(e) if is_conflict(&e) => Ok(Action::requeue(Duration::from_millis(100))),
        Err(e) => Err(e.into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn deploy(label: bool, generation: i64, observed: i64, spec: i32, status: i32) -> Deployment {
        let mut v = json!({
            "metadata": {"name": "web", "generation": generation, "labels": {}},
            "spec": {"replicas": spec, "selector": {}, "template": {}},
            "status": {"observedGeneration": observed, "replicas": status},
        });
        if label {
            v["metadata"]["labels"][RETAIN_REPLICAS_LABEL] = json!("true");
        }
        serde_json::from_value(v).unwrap()
    }

    #[test]
    fn syncs_only_caught_up_labelled_templates() {
        assert_eq!(synced_replicas(&deploy(true, 2, 2, 4, 7)), Some(7));
        assert_eq!(synced_replicas(&deploy(true, 2, 2, 4, 4)), None);
        assert_eq!(synced_replicas(&deploy(true, 3, 2, 4, 7)), None);
        assert_eq!(synced_replicas(&deploy(false, 2, 2, 4, 7)), None);
        assert_eq!(synced_replicas(&deploy(true, 2, 2, 4, 0)), None);
    }
}
