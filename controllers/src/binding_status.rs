//! The binding status controller (`bindingStatus`): gathers the statuses
//! the work-status controller recorded in a binding's Works into the
//! binding's `status.aggregatedStatus` (one item per cluster, sorted) and
//! `FullyApplied` condition, and then aggregates them into the resource
//! template's own `status` ([`flotilla_api::interpreter::aggregate`]: sums
//! for Deployments and the other workloads, Job completion, LoadBalancer
//! ingress, Pod phase, ...), so that `kubectl get deploy` on the control
//! plane shows the replicas running across the members. As in Karmada,
//! the template is written only after the binding was scheduled, only
//! through `/status`, only when it changes, and only for kinds with an
//! aggregation. A member whose Ready condition is not True has its item
//! marked `health: Unknown` and is left out of the template's status, so the
//! template shows what is known to run ([`flotilla_api::failover::degrade_unready`]).

use std::sync::Arc;
use std::time::Duration;

use flotilla_api::cluster::Cluster;
use flotilla_api::failover::{degrade_unready, unready_clusters};
use flotilla_api::interpreter::{aggregate, aggregated_status_item, fully_applied};
use flotilla_api::names::cluster_of_execution_space;
use flotilla_api::work::{CONDITION_APPLIED, CONDITION_FULLY_APPLIED, Work};
use futures::StreamExt;
use kube::api::{Patch, PatchParams};
use kube::runtime::controller::Action;
use kube::runtime::reflector::{ObjectRef, Store};
use kube::{Api, ResourceExt};
use serde_json::json;

use crate::overlay::Overlay;
use crate::propagation::{
    BindingResource, Resolver, binding_of_work, cache_ready, condition, every_change, is_conflict,
    is_not_found, now_rfc3339, permanent_id, set_condition, shared_controller, watch_shared,
};
use crate::workqueue::RunQueued;
use crate::{Context, ControllerFuture, Error, Result};

/// Starts the controller (the `bindingStatus` entry of [`crate::controllers`]).
pub fn start(ctx: Context) -> ControllerFuture {
    crate::for_both_binding_kinds!(run, ctx)
}

struct StatusCtx<B: BindingResource> {
    ctx: Context,
    works: Store<Work>,
    clusters: Store<Cluster>,
    resolver: Resolver,
    /// Bindings as this controller last wrote them (its cache lags).
    written: Overlay<B>,
}

/// Changes only when a cluster's Ready status does.
fn ready_hash(c: &Cluster) -> Option<u64> {
    use std::hash::{Hash, Hasher};
    let mut h = std::collections::hash_map::DefaultHasher::new();
    unready_clusters([c]).hash(&mut h);
    Some(h.finish())
}

async fn run<B: BindingResource>(ctx: Context) -> Result<()> {
    let cp = ctx.control_plane.clone();
    let (works, work_changes) = watch_shared(&ctx, Api::<Work>::all(cp.clone()), every_change);
    // a member that stops answering (or comes back) changes what is known
    let (clusters, cluster_changes) =
        watch_shared(&ctx, Api::<Cluster>::all(cp.clone()), ready_hash);
    let wq = crate::workqueue::Queue::new("bindingStatus");
    let controller = shared_controller(&wq, &ctx, Api::<B>::all(cp), every_change);
    let bindings = controller.store();
    let written = Overlay::new(controller.store());
    controller
        .watches_shared_stream(
            work_changes,
            wq.mapper(|w: Arc<Work>| binding_of_work::<B>(&w)),
        )
        .watches_shared_stream(
            cluster_changes,
            wq.mapper(move |c: Arc<Cluster>| {
                let name = c.name_any();
                bindings
                    .state()
                    .iter()
                    .filter(|b| {
                        b.status().is_some_and(|s| {
                            s.aggregated_status.iter().any(|i| i.cluster_name == name)
                        })
                    })
                    .map(|b| ObjectRef::from_obj(&**b))
                    .collect::<Vec<_>>()
            }),
        )
        .with_config(crate::propagation::status_controller_config())
        .run_queued(
            &wq,
            reconcile::<B>,
            error_policy::<B>,
            Arc::new(StatusCtx {
                ctx,
                works,
                clusters,
                resolver: Resolver::default(),
                written,
            }),
        )
        .for_each(|_| async {})
        .await;
    Ok(())
}

fn error_policy<B: BindingResource>(b: Arc<B>, err: &Error, _ctx: Arc<StatusCtx<B>>) -> Action {
    tracing::warn!(binding = %b.name_any(), error = %err, "binding status failed, retrying");
    Action::requeue(Duration::from_secs(1))
}

#[tracing::instrument(skip_all, fields(binding = %b.name_any()))]
async fn reconcile<B: BindingResource>(b: Arc<B>, sctx: Arc<StatusCtx<B>>) -> Result<Action> {
    let b = sctx.written.newest_of(b);
    if b.meta().deletion_timestamp.is_some() {
        return Ok(Action::await_change());
    }
    if !cache_ready(&sctx.works).await {
        return Ok(Action::requeue(Duration::from_millis(200)));
    }
    let id = permanent_id(&*b);
    if id.is_empty() {
        return Ok(Action::await_change());
    }
    let spec = b.spec();
    let r = &spec.resource;
    let mut items: Vec<_> = sctx
        .works
        .state()
        .iter()
        .filter(|w| {
            w.labels().get(B::ID_LABEL) == Some(&id) && w.metadata.deletion_timestamp.is_none()
        })
        .filter_map(|w| {
            let cluster = cluster_of_execution_space(w.namespace().as_deref()?)?.to_string();
            let status = w.status.as_ref();
            let applied =
                status.and_then(|s| s.conditions.iter().find(|c| c.type_ == CONDITION_APPLIED));
            let manifest = status.and_then(|s| {
                s.manifest_statuses
                    .iter()
                    .find(|m| m.identifier.kind == r.kind && m.identifier.name == r.name)
            });
            Some(aggregated_status_item(&cluster, applied, manifest))
        })
        .collect();
    items.sort_by(|a, b| a.cluster_name.cmp(&b.cluster_name));
    let unready = unready_clusters(sctx.clusters.state().iter().map(|c| &**c));
    let reachable = degrade_unready(&mut items, &unready);
    let mut expected: Vec<String> = spec.clusters.iter().map(|c| c.name.clone()).collect();
    for s in &spec.required_by {
        for c in &s.clusters {
            if !expected.contains(&c.name) {
                expected.push(c.name.clone());
            }
        }
    }
    let (ok, reason, message) = fully_applied(&expected, &items);
    let old = b.status().cloned().unwrap_or_default();
    let mut new = old.clone();
    new.aggregated_status = items.clone();
    set_condition(
        &mut new.conditions,
        condition(CONDITION_FULLY_APPLIED, ok, reason, message, None),
    );
    if new != old {
        let api = B::api(
            sctx.ctx.control_plane.clone(),
            &b.namespace().unwrap_or_default(),
        );
        // guarded by the resourceVersion: `conditions` is shared with the
        // scheduler, and a stale copy must not drop its `Scheduled`
        let patch = json!({
            "metadata": {"resourceVersion": b.meta().resource_version},
            "status": {"aggregatedStatus": new.aggregated_status, "conditions": new.conditions},
        });
        match api
            .patch_status(
                &b.name_any(),
                &PatchParams::default(),
                &Patch::Merge(&patch),
            )
            .await
        {
            Ok(written) => sctx.written.record(written),
            Err(e) if is_not_found(&e) => {
                sctx.written.forget(b.namespace().as_deref(), &b.name_any());
                return Ok(Action::await_change());
            }
            Err(e) if is_conflict(&e) => return Ok(Action::requeue(Duration::from_millis(50))),
            Err(e) => return Err(e.into()),
        }
    }
    if old.last_scheduled_time.is_none() {
        return Ok(Action::await_change());
    }
    aggregate_into_template(&sctx, r, &reachable).await?;
    Ok(Action::await_change())
}

/// Writes the aggregated status into the template's `/status` when the kind
/// has an aggregation and the result differs.
async fn aggregate_into_template<B: BindingResource>(
    sctx: &StatusCtx<B>,
    r: &flotilla_api::work::ObjectReference,
    items: &[flotilla_api::work::AggregatedStatusItem],
) -> Result<()> {
    let cp = sctx.ctx.control_plane.clone();
    let resolved = match sctx
        .resolver
        .resolve("", &cp, &r.api_version, &r.kind)
        .await
    {
        Ok(res) => res,
        Err(Error::Kube(e)) if is_not_found(&e) => return Ok(()),
        Err(e) => return Err(e),
    };
    let api = resolved.api(cp, &r.namespace);
    let Some(template) = api.get_opt(&r.name).await? else {
        return Ok(());
    };
    if template.metadata.uid.as_deref() != Some(r.uid.as_str()) && !r.uid.is_empty() {
        return Ok(());
    }
    let mut value = serde_json::to_value(&template)?;
    if let Some(m) = value.as_object_mut() {
        m.insert("apiVersion".into(), json!(r.api_version));
        m.insert("kind".into(), json!(r.kind));
    }
    let Some(updated) = aggregate(&value, items, &now_rfc3339()) else {
        return Ok(());
    };
    let status = updated.get("status").cloned().unwrap_or_else(|| json!({}));
    let old = value.get("status").cloned().unwrap_or_else(|| json!({}));
    if old == status {
        return Ok(());
    }
    // a merge patch that also removes the fields the aggregation dropped
    let mut patch_status = status.as_object().cloned().unwrap_or_default();
    for key in old
        .as_object()
        .map(|o| o.keys().cloned().collect::<Vec<_>>())
        .unwrap_or_default()
    {
        patch_status.entry(key).or_insert(serde_json::Value::Null);
    }
    tracing::debug!(template = %r.name, status = %status, "aggregated status into the template");
    let patch = json!({ "status": patch_status });
    match api
        .patch_status(&r.name, &PatchParams::default(), &Patch::Merge(&patch))
        .await
    {
        Ok(_) => Ok(()),
        // no status subresource, or the template is gone
        Err(e) if is_not_found(&e) => Ok(()),
        Err(e) => Err(e.into()),
    }
}
