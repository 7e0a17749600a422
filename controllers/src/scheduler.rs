//! The scheduler (`scheduler`): fills `spec.clusters` of claimed
//! (Cluster)ResourceBindings with [`flotilla_api::scheduling::schedule`].
//!
//! When a binding is scheduled follows Karmada's scheduler
//! (`pkg/scheduler/scheduler.go` `doScheduleBinding`): never scheduled yet;
//! placement changed (it differs from the `policy.karmada.io/applied-placement`
//! annotation); replicas changed (Divided); `rescheduleTriggeredAt` later
//! than the last scheduling; a target cluster gone or being deleted; and
//! always for Duplicated and non-workload bindings, so that cluster label
//! and taint changes move them. A Divided binding keeps its assignment
//! otherwise (a new cluster does not take replicas from running ones).
//!
//! Cluster changes wake every binding, but only changes of what scheduling
//! reads (labels, spec, API enablements, deletion), not status heartbeats.
//! The result goes to `spec.clusters` with the applied-placement annotation,
//! then the `Scheduled` condition, `schedulerObservedGeneration`,
//! `lastScheduledTime` and `schedulerObservingAffinityName` to the status;
//! a failure is also an Event on the template.

use std::sync::Arc;
use std::time::Duration;

use flotilla_api::cluster::Cluster;
use flotilla_api::policy::{APPLIED_PLACEMENT_ANNOTATION, REPLICA_SCHEDULING_DUPLICATED};
use flotilla_api::scheduling::{
    REASON_SUCCESS, SUCCESS_MESSAGE, ScheduleError, ScheduleInput, reschedule_required, schedule,
};
use flotilla_api::work::{CONDITION_SCHEDULED, ResourceBindingSpec, ResourceBindingStatus};
use futures::StreamExt;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::api::{Patch, PatchParams};
use kube::runtime::controller::Action;
use kube::runtime::reflector::{ObjectRef, Store};
use kube::{Api, ResourceExt};
use serde_json::json;

use crate::events::{EventType, record, reference};
use crate::overlay::Overlay;
use crate::priority_gate::PriorityGate;
use crate::propagation::{
    BindingResource, cache_ready, cluster_placement_hash, condition, is_claimed, is_conflict,
    is_not_found, set_condition, shared_controller, spec_hash, watch_shared,
};
use crate::workqueue::RunQueued;
use crate::{Context, ControllerFuture, Error, Result};

/// The scheduler name bindings carry by default.
pub const DEFAULT_SCHEDULER: &str = "default-scheduler";

/// Starts the scheduler (the `scheduler` entry of [`crate::controllers`]).
pub fn start(ctx: Context) -> ControllerFuture {
    let gate = PriorityGate::new(ctx.config.concurrent_schedule_syncs);
    Box::pin(async move {
        futures::try_join!(
            run::<flotilla_api::work::ResourceBinding>(ctx.clone(), gate.clone()),
            run::<flotilla_api::work::ClusterResourceBinding>(ctx, gate)
        )
        .map(|_| ())
    })
}

/// How many bindings are scheduled at once by default
/// (`--concurrent-schedule-syncs`). Karmada's scheduler has one worker; a
/// scheduling pass here waits for two API writes, and a single worker could
/// not keep up with 20 new bindings a second on a loaded control plane
/// (100 members on two busy cores: about 0.5 s a pass). Bindings beyond
/// this many wait, and go highest priority first.
pub const DEFAULT_CONCURRENT_SCHEDULE_SYNCS: u16 = 16;

struct SchedCtx<B: BindingResource> {
    ctx: Context,
    clusters: Store<Cluster>,
    /// Bindings as the scheduler last wrote them (its cache lags).
    written: Overlay<B>,
    /// The queue order of scheduling passes (shared by both binding kinds).
    gate: PriorityGate,
}

async fn run<B: BindingResource>(ctx: Context, gate: PriorityGate) -> Result<()> {
    let cp = ctx.control_plane.clone();
    let (clusters, cluster_changes) = watch_shared(
        &ctx,
        Api::<Cluster>::all(cp.clone()),
        cluster_placement_hash,
    );
    let wq = crate::workqueue::Queue::new("scheduler");
    let controller = shared_controller(&wq, &ctx, Api::<B>::all(cp), spec_hash::<B>);
    // the first passes find the clusters cached, so that the bindings that
    // piled up meanwhile queue up together and go in priority order
    // (polled: several waiters on one store may not all be woken)
    while !cache_ready(&clusters).await {}
    let bindings = controller.store();
    let written = Overlay::new(controller.store());
    controller
        .watches_shared_stream(
            cluster_changes,
            wq.mapper(move |_cluster: Arc<Cluster>| {
                bindings
                    .state()
                    .iter()
                    .map(|b| ObjectRef::from_obj(&**b))
                    .collect::<Vec<_>>()
            }),
        )
        .run_queued(
            &wq,
            reconcile::<B>,
            error_policy::<B>,
            Arc::new(SchedCtx {
                ctx,
                clusters,
                written,
                gate,
            }),
        )
        .for_each(|_| async {})
        .await;
    Ok(())
}

fn error_policy<B: BindingResource>(b: Arc<B>, err: &Error, _ctx: Arc<SchedCtx<B>>) -> Action {
    tracing::warn!(binding = %b.name_any(), error = %err, "scheduling failed, retrying");
    Action::requeue(Duration::from_secs(1))
}

/// Why a binding needs a scheduling pass now, if it does.
fn schedule_reason(
    spec: &ResourceBindingSpec,
    status: Option<&ResourceBindingStatus>,
    applied_placement: Option<&str>,
    clusters: &[Arc<Cluster>],
) -> Option<&'static str> {
    let scheduled_once =
        status.is_some_and(|s| s.conditions.iter().any(|c| c.type_ == CONDITION_SCHEDULED));
    if !scheduled_once {
        return Some("first schedule");
    }
    let placement = serde_json::to_string(&spec.placement.clone().unwrap_or_default()).ok();
    if applied_placement != placement.as_deref() {
        return Some("placement changed");
    }
    if reschedule_required(spec, status) {
        return Some("reschedule triggered");
    }
    let gone = spec.clusters.iter().any(|t| {
        !clusters
            .iter()
            .any(|c| c.name_any() == t.name && c.metadata.deletion_timestamp.is_none())
    });
    if gone {
        return Some("target cluster removed");
    }
    let workload = spec.replicas > 0 || spec.replica_requirements.is_some();
    let duplicated = spec
        .placement
        .as_ref()
        .is_none_or(|p| p.replica_scheduling_type() == REPLICA_SCHEDULING_DUPLICATED);
    if !workload || duplicated {
        return Some("duplicated");
    }
    let assigned: i32 = spec.clusters.iter().map(|c| c.replicas).sum();
    if assigned != spec.replicas {
        return Some("replicas changed");
    }
    None
}

#[tracing::instrument(skip_all, fields(binding = %b.name_any()))]
async fn reconcile<B: BindingResource>(b: Arc<B>, sctx: Arc<SchedCtx<B>>) -> Result<Action> {
    let b = sctx.written.newest_of(b);
    let started = std::time::Instant::now();
    let spec = b.spec();
    if b.meta().deletion_timestamp.is_some()
        || !is_claimed(b.labels())
        || (!spec.scheduler_name.is_empty() && spec.scheduler_name != DEFAULT_SCHEDULER)
        || spec
            .suspension
            .as_ref()
            .and_then(|s| s.scheduling)
            .unwrap_or(false)
    {
        return Ok(Action::await_change());
    }
    // never schedule against an empty cache: that would look like "no cluster fits"
    if !cache_ready(&sctx.clusters).await {
        return Ok(Action::requeue(Duration::from_millis(200)));
    }
    let cached = sctx.clusters.state();
    let generation = b.meta().generation.unwrap_or_default();
    let status = b.status().cloned().unwrap_or_default();
    let applied = b
        .annotations()
        .get(APPLIED_PLACEMENT_ANNOTATION)
        .map(String::as_str);
    let api = B::api(
        sctx.ctx.control_plane.clone(),
        &b.namespace().unwrap_or_default(),
    );
    let name = b.name_any();

    let Some(why) = schedule_reason(spec, b.status(), applied, &cached) else {
        if status.scheduler_observed_generation != generation {
            let mut s = status.clone();
            s.scheduler_observed_generation = generation;
            return patch_status(
                &sctx.written,
                &api,
                &name,
                b.meta().resource_version.as_deref(),
                &s,
            )
            .await;
        }
        return Ok(Action::await_change());
    };
    drop(cached);
    // wait for this binding's turn: higher schedulePriority first
    let priority = spec.schedule_priority.as_ref().map_or(0, |p| p.priority);
    let _turn = sctx.gate.turn(priority).await;
    // the clusters as they are now, after the wait
    let clusters: Vec<Cluster> = sctx
        .clusters
        .state()
        .iter()
        .map(|c| (**c).clone())
        .collect();
    let fresh = reschedule_required(spec, b.status());
    let algorithm = std::time::Instant::now();
    let result = schedule(&ScheduleInput {
        spec,
        status: b.status(),
        clusters: &clusters,
        estimates: None,
        fresh,
    });
    METRICS.algorithm(algorithm.elapsed());
    let scheduled = result.is_ok();
    let placement = serde_json::to_string(&spec.placement.clone().unwrap_or_default())?;
    let mut new_status = status.clone();
    let mut resource_version = b.meta().resource_version.clone();
    match result {
        Ok(r) => {
            let changed = r.clusters != spec.clusters || applied != Some(placement.as_str());
            let mut new_generation = generation;
            if changed {
                tracing::info!(reason = why, clusters = ?r.clusters.iter().map(|c| (&c.name, c.replicas)).collect::<Vec<_>>(), "scheduled");
                let patch = json!({
                    "metadata": {"annotations": {APPLIED_PLACEMENT_ANNOTATION: placement}},
                    "spec": {"clusters": r.clusters},
                });
                let updated = match api
                    .patch(&name, &PatchParams::default(), &Patch::Merge(&patch))
                    .await
                {
                    Ok(u) => u,
                    Err(e) if is_not_found(&e) => return Ok(Action::await_change()),
                    Err(e) => return Err(e.into()),
                };
                new_generation = updated.meta().generation.unwrap_or(generation);
                resource_version = updated.meta().resource_version.clone();
                sctx.written.record(updated);
            }
            let cond_changed = set_condition(
                &mut new_status.conditions,
                condition(
                    CONDITION_SCHEDULED,
                    true,
                    REASON_SUCCESS,
                    SUCCESS_MESSAGE,
                    None,
                ),
            );
            if changed || cond_changed || new_status.last_scheduled_time.is_none() || fresh {
                new_status.last_scheduled_time = Some(Time(k8s_openapi::jiff::Timestamp::now()));
            }
            new_status.scheduler_observed_generation = new_generation;
            new_status.scheduler_observed_affinity_name = r.affinity_name;
        }
        Err(err) => {
            tracing::info!(reason = why, error = %err, "binding cannot be scheduled");
            if matches!(err, ScheduleError::NoClusterFit(_)) && !spec.clusters.is_empty() {
                let patch = json!({"spec": {"clusters": null}});
                let updated = api
                    .patch(&name, &PatchParams::default(), &Patch::Merge(&patch))
                    .await?;
                resource_version = updated.meta().resource_version.clone();
                sctx.written.record(updated);
            }
            let cond_changed = set_condition(
                &mut new_status.conditions,
                condition(
                    CONDITION_SCHEDULED,
                    false,
                    err.reason(),
                    &err.to_string(),
                    None,
                ),
            );
            new_status.scheduler_observed_generation = generation;
            if cond_changed {
                let r = &spec.resource;
                let message = format!("failed to schedule: {err}");
                record(
                    &sctx.ctx.control_plane,
                    DEFAULT_SCHEDULER,
                    reference(&r.api_version, &r.kind, &r.namespace, &r.name, &r.uid),
                    EventType::Warning,
                    "ScheduleBindingFailed",
                    &message,
                )
                .await;
            }
        }
    }
    METRICS.attempt(why, scheduled, started.elapsed());
    if new_status != status {
        let action = patch_status(
            &sctx.written,
            &api,
            &name,
            resource_version.as_deref(),
            &new_status,
        )
        .await?;
        if action != Action::await_change() {
            return Ok(action);
        }
    }
    // an unschedulable binding is tried again now and then, as Karmada does
    let failed = new_status
        .conditions
        .iter()
        .any(|c| c.type_ == CONDITION_SCHEDULED && c.status != "True");
    Ok(if failed {
        Action::requeue(Duration::from_secs(30))
    } else {
        Action::await_change()
    })
}

/// Writes the scheduler's own status fields, guarded by `resource_version`
/// (the binding status controller writes `conditions` too): a stale copy
/// gets a conflict and a quick retry instead of dropping `FullyApplied`.
async fn patch_status<B: BindingResource>(
    written: &Overlay<B>,
    api: &Api<B>,
    name: &str,
    resource_version: Option<&str>,
    status: &ResourceBindingStatus,
) -> Result<Action> {
    let patch = json!({
        "metadata": {"resourceVersion": resource_version},
        "status": {
            "conditions": status.conditions,
            "schedulerObservedGeneration": status.scheduler_observed_generation,
            "lastScheduledTime": status.last_scheduled_time,
            "schedulerObservingAffinityName": status.scheduler_observed_affinity_name,
        },
    });
    match api
        .patch_status(name, &PatchParams::default(), &Patch::Merge(&patch))
        .await
    {
        Ok(updated) => {
            written.record(updated);
            Ok(Action::await_change())
        }
        Err(e) if is_not_found(&e) => Ok(Action::await_change()),
        Err(e) if is_conflict(&e) => Ok(Action::requeue(Duration::from_millis(50))),
        Err(e) => Err(e.into()),
    }
}

/// Karmada's scheduler metrics.
struct SchedulerMetrics {
    attempts: prometheus::IntCounterVec,
    e2e: prometheus::HistogramVec,
    algorithm: prometheus::HistogramVec,
}

static METRICS: std::sync::LazyLock<SchedulerMetrics> = std::sync::LazyLock::new(|| {
    SchedulerMetrics {
        attempts: crate::metrics::counter_vec(
            "karmada_scheduler_schedule_attempts_total",
            "Number of attempts to schedule a binding, by result and schedule type.",
            &["result", "schedule_type"],
        ),
        e2e: crate::metrics::histogram_vec(
            "karmada_scheduler_e2e_scheduling_duration_seconds",
            "End-to-end scheduling latency in seconds (algorithm and binding writes), by result and schedule type.",
            &["result", "schedule_type"],
            crate::metrics::LATENCY_BUCKETS,
        ),
        algorithm: crate::metrics::histogram_vec(
            "karmada_scheduler_scheduling_algorithm_duration_seconds",
            "Scheduling algorithm latency in seconds, by step.",
            &["schedule_step"],
            crate::metrics::LATENCY_BUCKETS,
        ),
    }
});

impl SchedulerMetrics {
    fn algorithm(&self, elapsed: Duration) {
        self.algorithm
            .with_label_values(&["Schedule"])
            .observe(elapsed.as_secs_f64());
    }

    /// One scheduling pass, for the reason [`schedule_reason`] gave.
    fn attempt(&self, why: &str, scheduled: bool, elapsed: Duration) {
        let schedule_type = match why {
            "first schedule" => "FirstSchedule",
            "replicas changed" => "ScaleSchedule",
            _ => "ReconcileSchedule",
        };
        let result = if scheduled { "scheduled" } else { "error" };
        self.attempts
            .with_label_values(&[result, schedule_type])
            .inc();
        self.e2e
            .with_label_values(&[result, schedule_type])
            .observe(elapsed.as_secs_f64());
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use flotilla_api::work::TargetCluster;

    fn scheduled() -> ResourceBindingStatus {
        ResourceBindingStatus {
            conditions: vec![condition(CONDITION_SCHEDULED, true, "Success", "", None)],
            ..Default::default()
        }
    }

    #[test]
    fn divided_bindings_keep_their_assignment_until_something_changes() {
        let placement: flotilla_api::policy::Placement = serde_json::from_value(json!({
            "replicaScheduling": {"replicaSchedulingType": "Divided",
                                  "replicaDivisionPreference": "Weighted"}
        }))
        .unwrap();
        let applied = serde_json::to_string(&placement).unwrap();
        let mut spec = ResourceBindingSpec {
            replicas: 3,
            placement: Some(placement),
            clusters: vec![TargetCluster::new("m1", 3)],
            ..Default::default()
        };
        let cluster: Cluster = serde_json::from_value(json!({
            "apiVersion": "cluster.karmada.io/v1alpha1", "kind": "Cluster",
            "metadata": {"name": "m1"}, "spec": {"syncMode": "Push"}
        }))
        .unwrap();
        let clusters = vec![Arc::new(cluster)];
        let st = scheduled();
        assert_eq!(
            schedule_reason(&spec, None, Some(&applied), &clusters),
            Some("first schedule")
        );
        assert_eq!(
            schedule_reason(&spec, Some(&st), Some(&applied), &clusters),
            None
        );
        assert_eq!(
            schedule_reason(&spec, Some(&st), Some("{}"), &clusters),
            Some("placement changed")
        );
        spec.replicas = 4;
        assert_eq!(
            schedule_reason(&spec, Some(&st), Some(&applied), &clusters),
            Some("replicas changed")
        );
        spec.replicas = 3;
        spec.clusters = vec![TargetCluster::new("gone", 3)];
        assert_eq!(
            schedule_reason(&spec, Some(&st), Some(&applied), &clusters),
            Some("target cluster removed")
        );
    }
}
