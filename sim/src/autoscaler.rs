//! The simulated members' HorizontalPodAutoscaler controller
//! (`autoscaling/v2`), playing kube-controller-manager's: every
//! [`crate::Config::hpa_sync_period`] each HPA reads its target's pods and
//! their PodMetrics, computes the replica count with the same Kubernetes
//! algorithm the FederatedHPA uses ([`flotilla_api::autoscaling::hpa`]) and
//! writes the target's `spec.replicas` and the HPA's status. Targets are
//! Deployments, StatefulSets and ReplicaSets of `apps/v1`.

use std::collections::HashMap;

use flotilla_api::autoscaling::hpa::{self, Bounds, History, Proposal};
use k8s_openapi::api::autoscaling::v2::{HorizontalPodAutoscaler, HorizontalPodAutoscalerStatus};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use serde_json::Value;

/// The target's resource (`deployments`, ...) for a scaleTargetRef kind.
pub fn target_resource(api_version: &str, kind: &str) -> Option<&'static str> {
    if api_version != "apps/v1" {
        return None;
    }
    match kind {
        "Deployment" => Some("deployments"),
        "StatefulSet" => Some("statefulsets"),
        "ReplicaSet" => Some("replicasets"),
        _ => None,
    }
}

/// What one sync decided.
#[derive(Debug, Clone, PartialEq)]
pub struct Outcome {
    /// Replicas to write to the target, when they change.
    pub scale_to: Option<i32>,
    /// The HPA's new status (with `lastScaleTime` as of the previous scale;
    /// see [`finish`]).
    pub status: HorizontalPodAutoscalerStatus,
    /// The plan's conditions, for [`finish`].
    pub conditions: Vec<hpa::Condition>,
}

/// One sync of `hpa` over `target` (both JSON) and the pods its selector
/// matches with their PodMetrics (`None` when the pod has none).
pub fn sync(
    hpa_json: &Value,
    target: &Value,
    pods: &[(&Value, Option<&Value>)],
    history: &mut History,
    now: jiff::Timestamp,
) -> Result<Outcome, serde_json::Error> {
    let h: HorizontalPodAutoscaler = serde_json::from_value(hpa_json.clone())?;
    let spec = h.spec.unwrap_or_default();
    let current = target
        .pointer("/spec/replicas")
        .and_then(Value::as_i64)
        .unwrap_or(1) as i32;
    let mut proposals = Vec::new();
    let mut metrics = Vec::new();
    for m in &spec.metrics.unwrap_or_default() {
        match hpa::resource_target(m) {
            Ok((resource, target_value)) => {
                let samples: Vec<_> = pods
                    .iter()
                    .map(|(p, pm)| {
                        let key = p
                            .pointer("/metadata/name")
                            .and_then(Value::as_str)
                            .unwrap_or_default()
                            .to_string();
                        hpa::pod_sample(key, p, *pm, &resource)
                    })
                    .collect();
                let r: Result<Proposal, String> = hpa::resource_replicas(
                    current,
                    &resource,
                    target_value,
                    &samples,
                    hpa::DEFAULT_TOLERANCE,
                )
                .map_err(|e| e.to_string());
                if let Ok(p) = &r {
                    metrics.push(hpa::metric_status(&resource, p));
                }
                proposals.push((hpa::metric_name(&resource, target_value), r));
            }
            Err(e) => proposals.push((m.type_.clone(), Err(e))),
        }
    }
    let bounds = Bounds {
        min: spec.min_replicas.unwrap_or(1),
        max: spec.max_replicas,
        behavior: spec.behavior.as_ref(),
    };
    let plan = hpa::plan(&bounds, current, &proposals, history, now.as_second());
    let old = h.status.unwrap_or_default();
    let status = HorizontalPodAutoscalerStatus {
        current_replicas: Some(
            target
                .pointer("/status/replicas")
                .and_then(Value::as_i64)
                .unwrap_or(0) as i32,
        ),
        desired_replicas: plan.desired,
        current_metrics: (!metrics.is_empty()).then_some(metrics),
        conditions: Some(hpa::status_conditions(
            old.conditions.as_deref().unwrap_or_default(),
            &plan.conditions,
            &Time(now),
        )),
        last_scale_time: old.last_scale_time,
        observed_generation: h.metadata.generation,
    };
    Ok(Outcome {
        scale_to: (plan.desired != current).then_some(plan.desired),
        status,
        conditions: plan.conditions,
    })
}

/// Completes an [`Outcome`] once the target was (or failed to be) scaled:
/// `AbleToScale` and `lastScaleTime`.
pub fn finish(
    outcome: &mut Outcome,
    old: &[k8s_openapi::api::autoscaling::v2::HorizontalPodAutoscalerCondition],
    error: Option<&str>,
    now: jiff::Timestamp,
) {
    let Some(desired) = outcome.scale_to else {
        return;
    };
    hpa::rescaled(&mut outcome.conditions, desired, error);
    outcome.status.conditions = Some(hpa::status_conditions(old, &outcome.conditions, &Time(now)));
    if error.is_none() {
        outcome.status.last_scale_time = Some(Time(now));
    }
}

/// Per-HPA memory (recommendations and scale events), by namespace/name.
pub type Histories = HashMap<(String, String), History>;

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn pod(name: &str) -> Value {
        json!({"metadata": {"name": name}, "spec": {"containers": [{"name": "c", "resources": {"requests": {"cpu": "100m"}}}]},
            "status": {"phase": "Running", "conditions": [{"type": "Ready", "status": "True"}]}})
    }

    fn usage(cpu: &str) -> Value {
        json!({"containers": [{"name": "c", "usage": {"cpu": cpu, "memory": "1Mi"}}]})
    }

    #[test]
    fn scales_a_deployment_from_pod_metrics() {
        let h = json!({"apiVersion": "autoscaling/v2", "kind": "HorizontalPodAutoscaler",
            "metadata": {"name": "web", "namespace": "d", "generation": 1},
            "spec": {"scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "web"},
                "minReplicas": 1, "maxReplicas": 5,
                "metrics": [{"type": "Resource", "resource": {"name": "cpu", "target": {"type": "Utilization", "averageUtilization": 50}}}]}});
        let target = json!({"spec": {"replicas": 2}, "status": {"replicas": 2}});
        let (a, b) = (pod("a"), pod("b"));
        let (ua, ub) = (usage("100m"), usage("100m"));
        let mut history = History::default();
        let now = jiff::Timestamp::from_second(1000).expect("valid time");
        let mut out = sync(
            &h,
            &target,
            &[(&a, Some(&ua)), (&b, Some(&ub))],
            &mut history,
            now,
        )
        .expect("present in this test");
        assert_eq!(out.scale_to, Some(4));
        assert_eq!(out.status.desired_replicas, 4);
        let cpu = out
            .status
            .current_metrics
            .as_ref()
            .expect("present in this test")[0]
            .resource
            .clone()
            .expect("present in this test");
        assert_eq!(cpu.current.average_utilization, Some(100));
        finish(&mut out, &[], None, now);
        assert_eq!(out.status.last_scale_time, Some(Time(now)));
        let able = out
            .status
            .conditions
            .as_ref()
            .expect("present in this test")
            .iter()
            .find(|c| c.type_ == "AbleToScale")
            .expect("present in this test");
        assert_eq!(able.reason.as_deref(), Some("SucceededRescale"));
        // an unknown target kind is not this module's business
        assert_eq!(target_resource("apps/v1", "DaemonSet"), None);
    }
}
