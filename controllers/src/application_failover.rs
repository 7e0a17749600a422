//! The application failover controller (`applicationFailover`, with the
//! `Failover` gate): a binding whose policy sets `failover.application` is
//! evicted from a cluster where its workload has been reported `Unhealthy`
//! (`status.aggregatedStatus[].health`) for `decisionConditions.tolerationSeconds`
//! (300 by default) without a break. The eviction is a graceful eviction task
//! with reason `ApplicationFailure`, the policy's `purgeMode` (`Never` sets
//! `suppressDeletion: true`) and `gracePeriodSeconds`, and — when the policy
//! has `statePreservation` rules — the values read from the old cluster's
//! status in `preservedLabelState`. The scheduler then moves the replicas.
//! As in Karmada, how long a workload has been unhealthy is kept in memory:
//! a restart starts counting again.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use flotilla_api::failover::{
    DEFAULT_APPLICATION_TOLERATION_SECONDS, Eviction, PRODUCER_CRB_APPLICATION_FAILOVER,
    PRODUCER_RB_APPLICATION_FAILOVER, PURGE_MODE_GRACEFULLY, REASON_APPLICATION_FAILURE,
    application_unhealthy_clusters, evict_cluster, preserved_label_state,
};
use futures::StreamExt;
use k8s_openapi::jiff::Timestamp;
use kube::runtime::controller::Action;
use kube::{Api, ResourceExt};

use crate::events::{EventType, record, reference};
use crate::propagation::BindingResource;
use crate::workqueue::RunQueued;
use crate::{Context, ControllerFuture, Error, Result};

/// Starts the controller (the `applicationFailover` entry of
/// [`crate::controllers`]); it idles unless the `Failover` gate is on.
pub fn start(ctx: Context) -> ControllerFuture {
    if !ctx.config.feature_gates.enabled(crate::features::FAILOVER) {
        tracing::info!("Failover gate is off; application failover controller not started");
        return Box::pin(async { Ok(()) });
    }
    crate::for_both_binding_kinds!(run, ctx)
}

/// When each (binding, cluster) was first seen unhealthy.
type Unhealthy = Mutex<HashMap<(String, String), Timestamp>>;

struct FailoverCtx {
    ctx: Context,
    unhealthy: Unhealthy,
}

async fn run<B: BindingResource>(ctx: Context) -> Result<()> {
    let cp = ctx.control_plane.clone();
    let wq = crate::workqueue::Queue::new("applicationFailover");
    crate::propagation::shared_controller(
        &wq,
        &ctx,
        Api::<B>::all(cp),
        crate::propagation::every_change,
    )
    .with_config(crate::propagation::status_controller_config())
    .run_queued(
        &wq,
        reconcile::<B>,
        error_policy::<B>,
        Arc::new(FailoverCtx {
            ctx,
            unhealthy: Mutex::new(HashMap::new()),
        }),
    )
    .for_each(|_| async {})
    .await;
    Ok(())
}

fn error_policy<B: BindingResource>(b: Arc<B>, err: &Error, _ctx: Arc<FailoverCtx>) -> Action {
    tracing::warn!(binding = %b.name_any(), error = %err, "application failover failed, retrying");
    Action::requeue(Duration::from_secs(1))
}

/// Updates the unhealthy-since map for one binding and returns the clusters
/// unhealthy for at least `toleration`, and the time until the next one is.
fn due_clusters(
    map: &Unhealthy,
    key: &str,
    unhealthy: &[String],
    toleration: Duration,
    now: Timestamp,
) -> (Vec<String>, Option<Duration>) {
    let mut map = map.lock().unwrap_or_else(|e| e.into_inner());
    map.retain(|(k, c), _| k != key || unhealthy.contains(c));
    let mut due = Vec::new();
    let mut next: Option<Duration> = None;
    for c in unhealthy {
        let since = *map.entry((key.to_string(), c.clone())).or_insert(now);
        let for_how_long = Duration::try_from(now.duration_since(since)).unwrap_or(Duration::ZERO);
        if for_how_long >= toleration {
            due.push(c.clone());
        } else {
            let left = toleration - for_how_long;
            next = Some(next.map_or(left, |n| n.min(left)));
        }
    }
    (due, next)
}

#[tracing::instrument(skip_all, fields(binding = %b.name_any()))]
async fn reconcile<B: BindingResource>(b: Arc<B>, fctx: Arc<FailoverCtx>) -> Result<Action> {
    let key = format!("{}/{}", b.namespace().unwrap_or_default(), b.name_any());
    let spec = b.spec();
    let behavior = spec.failover.as_ref().and_then(|f| f.application.as_ref());
    let Some(behavior) = behavior.filter(|_| b.meta().deletion_timestamp.is_none()) else {
        let mut map = fctx.unhealthy.lock().unwrap_or_else(|e| e.into_inner());
        map.retain(|(k, _), _| *k != key);
        return Ok(Action::await_change());
    };
    let toleration = Duration::from_secs(
        behavior
            .decision_conditions
            .toleration_seconds
            .unwrap_or(DEFAULT_APPLICATION_TOLERATION_SECONDS)
            .max(0) as u64,
    );
    let now = Timestamp::now();
    let unhealthy = application_unhealthy_clusters(spec, b.status());
    let (due, next) = due_clusters(&fctx.unhealthy, &key, &unhealthy, toleration, now);
    let next_action = next.map_or_else(Action::await_change, |d| {
        Action::requeue(d + Duration::from_millis(100))
    });
    if due.is_empty() {
        return Ok(next_action);
    }
    let purge_mode = Some(behavior.purge_mode.as_str())
        .filter(|m| !m.is_empty())
        .unwrap_or(PURGE_MODE_GRACEFULLY);
    let producer = if B::CLUSTER_SCOPED {
        PRODUCER_CRB_APPLICATION_FAILOVER
    } else {
        PRODUCER_RB_APPLICATION_FAILOVER
    };
    let mut new_spec = spec.clone();
    for cluster in &due {
        let state = behavior
            .state_preservation
            .as_ref()
            .and_then(|sp| {
                let status = b
                    .status()?
                    .aggregated_status
                    .iter()
                    .find(|i| &i.cluster_name == cluster)?
                    .status
                    .clone()?;
                Some(preserved_label_state(&sp.rules, &status))
            })
            .unwrap_or_default();
        evict_cluster(
            &mut new_spec,
            &Eviction {
                cluster,
                purge_mode,
                reason: REASON_APPLICATION_FAILURE,
                message: format!(
                    "the workload has been unhealthy in cluster {cluster} for more than {}s",
                    toleration.as_secs()
                ),
                producer,
                grace_period_seconds: behavior.grace_period_seconds,
                preserved_label_state: state,
                now,
            },
        );
    }
    if new_spec == *spec {
        return Ok(next_action);
    }
    if let Some(action) =
        crate::propagation::write_eviction(&fctx.ctx.control_plane, &*b, &new_spec).await?
    {
        return Ok(action);
    }
    {
        let mut map = fctx.unhealthy.lock().unwrap_or_else(|e| e.into_inner());
        map.retain(|(k, c), _| !(*k == key && due.contains(c)));
    }
    tracing::info!(clusters = ?due, purge_mode, "application failover: evicted unhealthy clusters");
    let r = &spec.resource;
    record(
        &fctx.ctx.control_plane,
        producer,
        reference(&r.api_version, &r.kind, &r.namespace, &r.name, &r.uid),
        EventType::Warning,
        "EvictWorkloadFromClusterSucceed",
        &format!(
            "Application failover: evicted from clusters {} (unhealthy for {}s).",
            due.join(", "),
            toleration.as_secs()
        ),
    )
    .await;
    Ok(next_action)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unhealthy_time_is_counted_without_breaks() {
        let map = Unhealthy::default();
        let t = |s: &str| -> Timestamp { s.parse().unwrap() };
        let tol = Duration::from_secs(60);
        let u = vec!["m1".to_string()];
        let (due, next) = due_clusters(&map, "ns/b", &u, tol, t("2026-01-01T00:00:00Z"));
        assert!(due.is_empty());
        assert_eq!(next, Some(tol));
        let (due, next) = due_clusters(&map, "ns/b", &u, tol, t("2026-01-01T00:00:40Z"));
        assert!(due.is_empty());
        assert_eq!(next, Some(Duration::from_secs(20)));
        // healthy again: the count restarts
        due_clusters(&map, "ns/b", &[], tol, t("2026-01-01T00:00:50Z"));
        let (due, _) = due_clusters(&map, "ns/b", &u, tol, t("2026-01-01T00:01:00Z"));
        assert!(due.is_empty());
        let (due, _) = due_clusters(&map, "ns/b", &u, tol, t("2026-01-01T00:02:00Z"));
        assert_eq!(due, vec!["m1"]);
        // other bindings are not touched
        due_clusters(&map, "ns/other", &u, tol, t("2026-01-01T00:02:00Z"));
        assert_eq!(map.lock().unwrap().len(), 2);
    }
}
