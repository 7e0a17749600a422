//! The CronFederatedHPA controller (`cronFederatedHorizontalPodAutoscaler`):
//! runs each rule at the times its cron schedule names, in its time zone
//! ([`flotilla_api::autoscaling::cron`]). A rule aimed at a FederatedHPA
//! sets its `minReplicas` / `maxReplicas`; one aimed at a workload sets the
//! template's `spec.replicas`. Each rule's `status.executionHistories` entry
//! keeps its `nextExecutionTime` and the last successful / failed runs
//! (bounded by `successfulHistoryLimit` / `failedHistoryLimit`, default 3).
//!
//! The next run is computed when the rule is first seen and after each run;
//! the controller sleeps until the earliest one. A run is due when the stored
//! `nextExecutionTime` has passed and is still a time the (possibly edited)
//! schedule names; runs missed while the controller was down are run once.
//! Suspended rules keep their history and have no next run. Events:
//! `ScaleSucceeded`, `ScaleFailed`, `InvalidRule`.

use std::sync::Arc;
use std::time::Duration;

use flotilla_api::autoscaling::cron::{self, Schedule};
use flotilla_api::autoscaling::{
    CronFederatedHPA, CronFederatedHPARule, ExecutionHistory, FailedExecution, FederatedHPA,
    SuccessfulExecution,
};
use futures::StreamExt;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::{Timestamp, ToSpan};
use kube::api::{Patch, PatchParams};
use kube::runtime::controller::Action;
use kube::{Api, ResourceExt};
use serde_json::json;

use crate::events::{self, EventType};
use crate::propagation::{Resolver, is_not_found, spec_controller};
use crate::workqueue::RunQueued;
use crate::{Context, ControllerFuture, Error, Result};

/// The controller's name in `--controllers`.
pub const NAME: &str = "cronFederatedHorizontalPodAutoscaler";
const COMPONENT: &str = "cronfederatedhpa-controller";
const FHPA_API_VERSION: &str = "autoscaling.karmada.io/v1alpha1";

/// Starts the controller (the `cronFederatedHorizontalPodAutoscaler` entry
/// of [`crate::controllers`]).
pub fn start(ctx: Context) -> ControllerFuture {
    Box::pin(run(ctx))
}

struct CronCtx {
    ctx: Context,
    resolver: Resolver,
}

async fn run(ctx: Context) -> Result<()> {
    let api = Api::<CronFederatedHPA>::all(ctx.control_plane.clone());
    let wq = crate::workqueue::Queue::new(NAME);
    spec_controller(&wq, api)
        .run_queued(
            &wq,
            reconcile,
            error_policy,
            Arc::new(CronCtx {
                ctx,
                resolver: Resolver::default(),
            }),
        )
        .for_each(|_| async {})
        .await;
    Ok(())
}

fn error_policy(c: Arc<CronFederatedHPA>, err: &Error, _ctx: Arc<CronCtx>) -> Action {
    tracing::warn!(cronfederatedhpa = %c.name_any(), error = %err, "cronfederatedhpa failed, retrying");
    Action::requeue(Duration::from_secs(2))
}

/// What one rule's run changed.
#[derive(Debug, Default)]
struct Applied {
    replicas: Option<i32>,
    min: Option<i32>,
    max: Option<i32>,
}

/// Keeps the last `limit` entries (default 3).
fn trim<T>(v: &mut Vec<T>, limit: Option<i32>) {
    let limit = limit.unwrap_or(3).max(0) as usize;
    if v.len() > limit {
        v.drain(..v.len() - limit);
    }
}

/// Whether the rule is due: its stored next run has passed and the schedule
/// still names that time.
fn due(
    hist: &ExecutionHistory,
    schedule: &Schedule,
    tz: &k8s_openapi::jiff::tz::TimeZone,
    now: Timestamp,
) -> Option<Timestamp> {
    let at = hist.next_execution_time.as_ref()?.0;
    let before = at.checked_sub(1.second()).ok()?;
    (at <= now && schedule.next_after(tz, before) == Some(at)).then_some(at)
}

#[tracing::instrument(skip_all, fields(cronfederatedhpa = %c.name_any()))]
async fn reconcile(c: Arc<CronFederatedHPA>, cctx: Arc<CronCtx>) -> Result<Action> {
    if c.metadata.deletion_timestamp.is_some() {
        return Ok(Action::await_change());
    }
    let cp = cctx.ctx.control_plane.clone();
    let ns = c.namespace().unwrap_or_default();
    let name = c.name_any();
    let reference = events::reference(
        FHPA_API_VERSION,
        "CronFederatedHPA",
        &ns,
        &name,
        c.metadata.uid.as_deref().unwrap_or_default(),
    );
    let old = c.status.clone().unwrap_or_default();
    let now = Timestamp::now();
    let mut histories = Vec::new();
    let mut wake: Option<Timestamp> = None;
    for rule in &c.spec.rules {
        let mut hist = old
            .execution_histories
            .iter()
            .find(|h| h.rule_name == rule.name)
            .cloned()
            .unwrap_or_else(|| ExecutionHistory {
                rule_name: rule.name.clone(),
                ..Default::default()
            });
        if rule.suspend == Some(true) {
            hist.next_execution_time = None;
            histories.push(hist);
            continue;
        }
        let parsed = Schedule::parse(&rule.schedule)
            .and_then(|s| Ok((s, cron::time_zone(rule.time_zone.as_deref())?)));
        let (schedule, tz) = match parsed {
            Ok(p) => p,
            Err(e) => {
                let message = e.to_string();
                if hist.failed_executions.last().map(|f| &f.message) != Some(&message) {
                    events::record(
                        &cp,
                        COMPONENT,
                        reference.clone(),
                        EventType::Warning,
                        "InvalidRule",
                        &format!("rule {}: {message}", rule.name),
                    )
                    .await;
                    hist.failed_executions.push(FailedExecution {
                        schedule_time: Time(now),
                        execution_time: Time(now),
                        message,
                    });
                    trim(&mut hist.failed_executions, rule.failed_history_limit);
                }
                hist.next_execution_time = None;
                histories.push(hist);
                continue;
            }
        };
        if let Some(at) = due(&hist, &schedule, &tz, now) {
            match execute(&cctx, &c, rule).await {
                Ok(applied) => {
                    let message = format!(
                        "rule {} scaled {} {} ({})",
                        rule.name,
                        c.spec.scale_target_ref.kind,
                        c.spec.scale_target_ref.name,
                        describe(&applied)
                    );
                    tracing::info!(rule = %rule.name, "cron rule ran");
                    events::record(
                        &cp,
                        COMPONENT,
                        reference.clone(),
                        EventType::Normal,
                        "ScaleSucceeded",
                        &message,
                    )
                    .await;
                    hist.successful_executions.push(SuccessfulExecution {
                        schedule_time: Time(at),
                        execution_time: Time(now),
                        applied_replicas: applied.replicas,
                        applied_max_replicas: applied.max,
                        applied_min_replicas: applied.min,
                    });
                    trim(
                        &mut hist.successful_executions,
                        rule.successful_history_limit,
                    );
                }
                Err(message) => {
                    events::record(
                        &cp,
                        COMPONENT,
                        reference.clone(),
                        EventType::Warning,
                        "ScaleFailed",
                        &format!("rule {}: {message}", rule.name),
                    )
                    .await;
                    hist.failed_executions.push(FailedExecution {
                        schedule_time: Time(at),
                        execution_time: Time(now),
                        message,
                    });
                    trim(&mut hist.failed_executions, rule.failed_history_limit);
                }
            }
        }
        let stored = hist.next_execution_time.as_ref().map(|t| t.0);
        let next = match stored {
            // keep a still-valid future run (the schedule was not edited)
            Some(t) if t > now && due(&hist, &schedule, &tz, t).is_some() => Some(t),
            _ => schedule.next_after(&tz, now),
        };
        hist.next_execution_time = next.map(Time);
        if let Some(n) = next {
            wake = Some(wake.map_or(n, |w| w.min(n)));
        }
        histories.push(hist);
    }
    if histories != old.execution_histories {
        let patch = json!({"status": {"executionHistories": histories}});
        match Api::<CronFederatedHPA>::namespaced(cp.clone(), &ns)
            .patch_status(&name, &PatchParams::default(), &Patch::Merge(&patch))
            .await
        {
            Ok(_) => {}
            Err(e) if is_not_found(&e) => return Ok(Action::await_change()),
            Err(e) => return Err(e.into()),
        }
    }
    Ok(match wake {
        Some(w) => {
            let millis = (w.as_millisecond() - Timestamp::now().as_millisecond()).max(0) as u64;
            // a little after the minute, so the run is due when we wake
            Action::requeue(Duration::from_millis(millis + 50).min(Duration::from_secs(3600)))
        }
        None => Action::await_change(),
    })
}

fn describe(a: &Applied) -> String {
    let mut parts = Vec::new();
    if let Some(r) = a.replicas {
        parts.push(format!("replicas {r}"));
    }
    if let Some(m) = a.min {
        parts.push(format!("minReplicas {m}"));
    }
    if let Some(m) = a.max {
        parts.push(format!("maxReplicas {m}"));
    }
    parts.join(", ")
}

/// Runs one rule against the target; the error is the history message.
async fn execute(
    cctx: &CronCtx,
    c: &CronFederatedHPA,
    rule: &CronFederatedHPARule,
) -> std::result::Result<Applied, String> {
    let cp = cctx.ctx.control_plane.clone();
    let ns = c.namespace().unwrap_or_default();
    let r = &c.spec.scale_target_ref;
    let api_version = r.api_version.clone().unwrap_or_else(|| "apps/v1".into());
    if api_version == FHPA_API_VERSION {
        let api = Api::<FederatedHPA>::namespaced(cp, &ns);
        let fhpa = api
            .get_opt(&r.name)
            .await
            .map_err(|e| e.to_string())?
            .ok_or_else(|| format!("FederatedHPA {} not found", r.name))?;
        let min = rule.target_min_replicas;
        let max = rule.target_max_replicas;
        let mut spec = serde_json::Map::new();
        if let Some(m) = min
            && fhpa.spec.min_replicas != Some(m)
        {
            spec.insert("minReplicas".into(), json!(m));
        }
        if let Some(m) = max
            && fhpa.spec.max_replicas != m
        {
            spec.insert("maxReplicas".into(), json!(m));
        }
        if !spec.is_empty() {
            api.patch(
                &r.name,
                &PatchParams::default(),
                &Patch::Merge(&json!({ "spec": spec })),
            )
            .await
            .map_err(|e| e.to_string())?;
        }
        return Ok(Applied {
            replicas: None,
            min,
            max,
        });
    }
    let replicas = rule
        .target_replicas
        .ok_or_else(|| "targetReplicas is not set".to_string())?;
    let api = cctx
        .resolver
        .resolve("", &cp, &api_version, &r.kind)
        .await
        .map_err(|e| format!("{} {api_version}: {e}", r.kind))?
        .api(cp, &ns);
    api.patch(
        &r.name,
        &PatchParams::default(),
        &Patch::Merge(&json!({"spec": {"replicas": replicas}})),
    )
    .await
    .map_err(|e| e.to_string())?;
    Ok(Applied {
        replicas: Some(replicas),
        min: None,
        max: None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn due_only_for_a_passed_time_the_schedule_names() {
        let s = Schedule::parse("*/5 * * * *").unwrap();
        let tz = cron::time_zone(None).unwrap();
        let at: Timestamp = "2026-01-01T10:05:00Z".parse().unwrap();
        let h = ExecutionHistory {
            rule_name: "r".into(),
            next_execution_time: Some(Time(at)),
            ..Default::default()
        };
        let later: Timestamp = "2026-01-01T10:05:10Z".parse().unwrap();
        assert_eq!(due(&h, &s, &tz, later), Some(at));
        let earlier: Timestamp = "2026-01-01T10:04:10Z".parse().unwrap();
        assert_eq!(due(&h, &s, &tz, earlier), None);
        // the schedule was edited: 10:05 is no longer a run time
        let hourly = Schedule::parse("0 * * * *").unwrap();
        assert_eq!(due(&h, &hourly, &tz, later), None);
        let mut v = vec![1, 2, 3, 4];
        trim(&mut v, Some(2));
        assert_eq!(v, vec![3, 4]);
        trim(&mut v, None);
        assert_eq!(v.len(), 2);
    }
}
